/*
 * Unit tests for the EventStream encoder (src/eventstream/): re-encoding every upstream fixture frame
 * gives its exact bytes, all ten header types with extreme values survive encode → decode, invalid
 * headers are rejected without touching the output, and a seeded random encoder → decoder round trip
 * (3000 frames, random header types and sizes) is fed whole and in random splits; the decoder finds a frame's
 * :message-type and :event-type in its pass over the headers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "core/rand.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"

static uint64_t rng_state;
static uint64_t rnd(void) /* splitmix64: deterministic for a fixed seed */
{
    return k2a_splitmix64(&rng_state);
}
static size_t rnd_below(size_t n)
{
    return n == 0 ? 0 : (size_t)(rnd() % n);
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc(n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, n, fp), (size_t)n);
    fclose(fp);
    p[n] = '\0';
    *len = (size_t)n;
    return p;
}

static const char *const all_fixtures[] = {"kiro2api_text_2frames_303B.bin", "kiro2api_jsontext_5frames_674B.bin",
                                           "kiro2api_cjk_text_then_tooluse_21frames_2738B.bin",
                                           "SYNTHETIC_text_tooluse_metering_contextusage.bin", "SYNTHETIC_text_then_exception.bin"};

/* Re-encoding every decoded fixture frame (generic encoder, and the event/exception helpers) gives the same bytes. */
/* Re-encoding every decoded fixture frame (generic encoder, and the event/exception helpers) gives the same bytes. */
static void test_encoder_reproduces_fixtures(void **state)
{
    for (size_t i = 0; i < sizeof(all_fixtures) / sizeof(all_fixtures[0]); ++i) {
        char path[512];
        snprintf(path, sizeof(path), UPSTREAM "%s", all_fixtures[i]);
        size_t len;
        char *data = read_file(path, &len);
        k2a_buf_t generic = K2A_BUF_INIT(0), helper = K2A_BUF_INIT(0);
        for (size_t off = 0; off < len;) {
            k2a_es_frame_t f;
            intptr_t n = k2a_es_decode_frame(data + off, len - off, 0, &f);
            assert_true(n > 0);
            assert_int_equal(k2a_es_encode(&generic, f.headers, f.nheaders, f.payload, f.payload_len), 0);
            size_t l1, l2;
            const char *et = k2a_es_frame_header_str(&f, ":event-type", &l1),
                       *xt = k2a_es_frame_header_str(&f, ":exception-type", &l2);
            char type[64];
            if (et != NULL) {
                snprintf(type, sizeof(type), "%.*s", (int)l1, et);
                assert_int_equal(k2a_es_encode_event(&helper, type, f.payload, f.payload_len), 0);
            } else {
                assert_non_null(xt);
                snprintf(type, sizeof(type), "%.*s", (int)l2, xt);
                assert_int_equal(k2a_es_encode_exception(&helper, type, f.payload, f.payload_len), 0);
            }
            off += (size_t)n;
        }
        assert_int_equal(generic.len, len);
        assert_memory_equal(generic.base, data, len);
        assert_int_equal(helper.len, len);
        assert_memory_equal(helper.base, data, len);
        k2a_buf_dispose(&generic);
        k2a_buf_dispose(&helper);
        free(data);
    }
}

/* Every header type with its extreme values survives encode → decode; the wire bytes of each value are as specified. */
static void test_encoder_all_header_types(void **state)
{
    static const uint8_t uuid[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff};
    static const char bytes[] = {0, 'a', (char)0xff};
    k2a_es_header_t h[] = {
        k2a_es_header_bool("t", true),
        k2a_es_header_bool("f", false),
        k2a_es_header_byte("b", INT8_MIN),
        k2a_es_header_short("s", INT16_MIN),
        k2a_es_header_int("i", INT32_MIN),
        k2a_es_header_long("l", INT64_MIN),
        k2a_es_header_bytes("y", bytes, 3),
        k2a_es_header_string("str", "v\xc3\xa9"),
        k2a_es_header_timestamp("ts", 1732608000123LL),
        k2a_es_header_uuid("u", uuid),
        k2a_es_header_long("lmax", INT64_MAX),
        k2a_es_header_string("empty", ""),
        k2a_es_header_byte("bmax", 127),
        k2a_es_header_short("smax", INT16_MAX),
        k2a_es_header_int("imax", INT32_MAX),
        k2a_es_header_bytes("ey", NULL, 0),
    };
    const size_t nh = sizeof(h) / sizeof(h[0]);
    k2a_buf_t b = K2A_BUF_INIT(0);
    assert_int_equal(k2a_es_encode(&b, h, nh, "pl", 2), 0);
    /* header block: for each header 1 + name + 1 + value */
    size_t expect_hlen = 0;
    static const size_t vsize[] = {0, 0, 1, 2, 4, 8, 5, 5, 8, 16, 8, 2, 1, 2, 4, 2};
    for (size_t i = 0; i < nh; ++i)
        expect_hlen += 2 + h[i].name_len + vsize[i];
    assert_int_equal(b.len, 16 + expect_hlen + 2);

    k2a_es_frame_t f;
    assert_int_equal(k2a_es_decode_frame(b.base, b.len, 0, &f), (intptr_t)b.len);
    assert_int_equal(f.headers_length, expect_hlen);
    assert_int_equal(f.nheaders, nh);
    for (size_t i = 0; i < nh; ++i) {
        assert_int_equal(f.headers[i].type, h[i].type);
        assert_int_equal(f.headers[i].name_len, h[i].name_len);
        assert_memory_equal(f.headers[i].name, h[i].name, h[i].name_len);
        switch (h[i].type) {
        case K2A_ES_BOOL_TRUE:
        case K2A_ES_BOOL_FALSE:
            assert_int_equal(f.headers[i].v.b, h[i].type == K2A_ES_BOOL_TRUE);
            break;
        case K2A_ES_BYTES:
        case K2A_ES_STRING:
        case K2A_ES_UUID:
            assert_int_equal(f.headers[i].v.s.len, h[i].v.s.len);
            if (h[i].v.s.len != 0)
                assert_memory_equal(f.headers[i].v.s.base, h[i].v.s.base, h[i].v.s.len);
            break;
        default:
            assert_true(f.headers[i].v.i == h[i].v.i);
        }
    }
    /* spot-check the wire: the INT32_MIN header "i" is 01 'i' 04 80 00 00 00 */
    const uint8_t want_i[] = {1, 'i', 4, 0x80, 0, 0, 0};
    assert_non_null(memmem(b.base, b.len, want_i, sizeof(want_i)));
    const uint8_t want_ts[] = {2, 't', 's', 8, 0, 0, 0x01, 0x93, 0x67, 0x7c, 0x00, 0x7b}; /* 1732608000123 */
    assert_non_null(memmem(b.base, b.len, want_ts, sizeof(want_ts)));
    /* lookups */
    assert_ptr_equal(k2a_es_frame_header(&f, "ts"), &f.headers[8]);
    assert_null(k2a_es_frame_header(&f, "nope"));
    assert_null(k2a_es_frame_header(&f, "st")); /* no prefix match of "str" */
    size_t len = 99;
    assert_null(k2a_es_frame_header_str(&f, "ts", &len)); /* present but not a string */
    assert_int_equal(len, 0);
    k2a_buf_dispose(&b);
}

static void test_encoder_rejects_invalid(void **state)
{
    static const uint8_t uuid[16] = {0};
    char longname[300];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    char *bigval = malloc(65537);
    memset(bigval, 'v', 65536);
    bigval[65536] = '\0';
    k2a_buf_t b = K2A_BUF_INIT(0);
    assert_int_equal(k2a_es_encode_event(&b, "x", "{}", 2), 0);
    size_t before = b.len;

    k2a_es_header_t h = k2a_es_header_string("", "v"); /* empty name */
    assert_int_equal(k2a_es_encode(&b, &h, 1, NULL, 0), K2A_EINVAL);
    h = k2a_es_header_string(longname, "v"); /* 299-byte name */
    assert_int_equal(h.name_len, 0);
    assert_int_equal(k2a_es_encode(&b, &h, 1, NULL, 0), K2A_EINVAL);
    h = k2a_es_header_string("n", "v");
    h.type = (k2a_es_header_type_t)10; /* unknown type */
    assert_int_equal(k2a_es_encode(&b, &h, 1, NULL, 0), K2A_EINVAL);
    h = k2a_es_header_string("n", bigval); /* 65536-byte string */
    assert_int_equal(k2a_es_encode(&b, &h, 1, NULL, 0), K2A_EINVAL);
    h = k2a_es_header_uuid("u", uuid);
    h.v.s.len = 15;
    assert_int_equal(k2a_es_encode(&b, &h, 1, NULL, 0), K2A_EINVAL);
    k2a_es_header_t many[K2A_ES_MAX_HEADERS + 1];
    for (size_t i = 0; i < K2A_ES_MAX_HEADERS + 1; ++i)
        many[i] = k2a_es_header_bool("b", true);
    assert_int_equal(k2a_es_encode(&b, many, K2A_ES_MAX_HEADERS + 1, NULL, 0), K2A_EINVAL);
    assert_int_equal(b.len, before); /* nothing appended on failure */

    /* limits that are fine: 255-byte name, 65535-byte string, 32 headers */
    longname[255] = '\0';
    bigval[65535] = '\0';
    k2a_es_header_t ok[2] = {k2a_es_header_string(longname, bigval), k2a_es_header_int("n", 1)};
    assert_int_equal(k2a_es_encode(&b, ok, 2, NULL, 0), 0);
    assert_int_equal(k2a_es_encode(&b, many, K2A_ES_MAX_HEADERS, NULL, 0), 0);
    k2a_es_frame_t f;
    intptr_t n = k2a_es_decode_frame(b.base + before, b.len - before, 0, &f);
    assert_int_equal(n, 16 + 2 + 255 + 2 + 65535 + 7);
    assert_int_equal(f.headers[0].v.s.len, 65535);
    assert_int_equal(k2a_es_decode_frame(b.base + before + n, b.len - before - n, 0, &f), 16 + 32 * 3);
    assert_int_equal(f.nheaders, 32);

    /* the output buffer's own maximum */
    k2a_buf_t small = K2A_BUF_INIT(40);
    assert_int_equal(k2a_es_encode_event(&small, "assistantResponseEvent", "{}", 2), K2A_ETOOBIG);
    assert_int_equal(small.len, 0);
    k2a_buf_dispose(&small);
    k2a_buf_dispose(&b);
    free(bigval);
}

/* ---- random round trip ------------------------------------------------------------------------- */

#define RT_FRAMES 3000

typedef struct {
    k2a_es_header_t h[K2A_ES_MAX_HEADERS];
    size_t nh;
    char *payload;
    size_t plen;
    char *scratch; /* backing store for names and values */
} rt_frame_t;

/* Generates frame i deterministically (so the checker can regenerate it instead of storing it). */
static void rt_generate(size_t i, rt_frame_t *g)
{
    rng_state = 0x5eed0000 + i * 0x1000193;
    char *s = g->scratch;
    g->nh = rnd_below(8) == 0 ? rnd_below(K2A_ES_MAX_HEADERS + 1) : rnd_below(5);
    for (size_t j = 0; j < g->nh; ++j) {
        k2a_es_header_t *h = &g->h[j];
        memset(h, 0, sizeof(*h));
        h->name_len = (uint8_t)(rnd_below(4) == 0 ? 1 + rnd_below(255) : 1 + rnd_below(16));
        for (size_t k = 0; k < h->name_len; ++k)
            s[k] = (char)rnd();
        h->name = s;
        s += h->name_len;
        h->type = (k2a_es_header_type_t)rnd_below(10);
        uint64_t v = rnd();
        switch (h->type) {
        case K2A_ES_BOOL_TRUE:
        case K2A_ES_BOOL_FALSE:
            h->v.b = h->type == K2A_ES_BOOL_TRUE;
            break;
        case K2A_ES_BYTE:
            h->v.i = (int8_t)v;
            break;
        case K2A_ES_SHORT:
            h->v.i = (int16_t)v;
            break;
        case K2A_ES_INT:
            h->v.i = (int32_t)v;
            break;
        case K2A_ES_LONG:
        case K2A_ES_TIMESTAMP:
            h->v.i = (int64_t)v;
            break;
        default: {
            size_t len = h->type == K2A_ES_UUID ? 16 : rnd_below(100) == 0 ? rnd_below(65536) : rnd_below(64);
            for (size_t k = 0; k < len; ++k)
                s[k] = (char)(v >> (k % 8 * 8)) ^ (char)k;
            h->v.s.base = s;
            h->v.s.len = (uint32_t)len;
            s += len;
        }
        }
    }
    g->plen = rnd_below(200) == 0 ? rnd_below(300000) : rnd_below(2048);
    g->payload = s;
    uint64_t v = rnd();
    for (size_t k = 0; k < g->plen; ++k)
        s[k] = (char)(v >> (k % 8 * 8)) + (char)(k / 8);
}

typedef struct {
    rt_frame_t g;
    size_t next;
} rt_check_t;

static int on_rt_frame(void *ctx, const k2a_es_frame_t *f)
{
    rt_check_t *c = ctx;
    rt_generate(c->next++, &c->g);
    assert_int_equal(f->nheaders, c->g.nh);
    for (size_t j = 0; j < f->nheaders; ++j) {
        const k2a_es_header_t *x = &f->headers[j], *y = &c->g.h[j];
        assert_int_equal(x->name_len, y->name_len);
        assert_memory_equal(x->name, y->name, x->name_len);
        assert_int_equal(x->type, y->type);
        switch (x->type) {
        case K2A_ES_BOOL_TRUE:
        case K2A_ES_BOOL_FALSE:
            assert_int_equal(x->v.b, y->v.b);
            break;
        case K2A_ES_BYTES:
        case K2A_ES_STRING:
        case K2A_ES_UUID:
            assert_int_equal(x->v.s.len, y->v.s.len);
            if (x->v.s.len != 0)
                assert_memory_equal(x->v.s.base, y->v.s.base, x->v.s.len);
            break;
        default:
            assert_true(x->v.i == y->v.i);
        }
    }
    assert_int_equal(f->payload_len, c->g.plen);
    if (f->payload_len != 0)
        assert_memory_equal(f->payload, c->g.payload, f->payload_len);
    return 0;
}

static void test_random_roundtrip(void **state)
{
    rt_check_t c;
    memset(&c, 0, sizeof(c));
    c.g.scratch = malloc(K2A_ES_MAX_HEADERS * (255 + 65535) + 300000);
    assert_non_null(c.g.scratch);
    k2a_buf_t stream = K2A_BUF_INIT(0);
    for (size_t i = 0; i < RT_FRAMES; ++i) {
        rt_generate(i, &c.g);
        assert_int_equal(k2a_es_encode(&stream, c.g.h, c.g.nh, c.g.payload, c.g.plen), 0);
    }
    for (int mode = 0; mode < 4; ++mode) {
        k2a_es_decoder_t d;
        k2a_es_decoder_init(&d, 0);
        c.next = 0;
        uint64_t split_rng = 0x51117 + mode;
        for (size_t off = 0; off < stream.len;) {
            size_t n;
            uint64_t save = rng_state;
            rng_state = split_rng;
            switch (mode) {
            case 0: /* whole */
                n = stream.len;
                break;
            case 1: /* tiny pieces */
                n = 1 + rnd_below(16);
                break;
            case 2: /* socket-read sized */
                n = 1 + rnd_below(16384);
                break;
            default: /* mixed */
                n = rnd_below(2) ? 1 + rnd_below(64) : 1 + rnd_below(100000);
            }
            split_rng = rng_state;
            rng_state = save;
            if (n > stream.len - off)
                n = stream.len - off;
            assert_int_equal(k2a_es_decoder_feed(&d, stream.base + off, n, on_rt_frame, &c), 0);
            off += n;
        }
        assert_int_equal(c.next, RT_FRAMES);
        assert_int_equal(d.frames, RT_FRAMES);
        assert_int_equal(d.bytes, stream.len);
        assert_int_equal(k2a_es_decoder_finish(&d), 0);
        if (mode == 0)
            assert_int_equal(d.buf_cap, 0);
        k2a_es_decoder_dispose(&d);
    }
    k2a_buf_dispose(&stream);
    free(c.g.scratch);
}

/* The frame's :message-type and :event-type, found in the decoder's pass over the headers: the first STRING header of
 * each name (a header of another type with the name is passed over), NULL with length 0 when none; names that only
 * start or end the same do not match. Decoded whole and through the streaming decoder, split at every offset. */
typedef struct st_types_expect_t {
    const char *mt, *et;
    size_t calls;
} types_expect_t;

static int on_types_frame(void *ctx, const k2a_es_frame_t *f)
{
    types_expect_t *e = ctx;
    ++e->calls;
    if (e->mt == NULL) {
        assert_null(f->message_type);
        assert_int_equal(f->message_type_len, 0);
    } else {
        assert_int_equal(f->message_type_len, strlen(e->mt));
        assert_memory_equal(f->message_type, e->mt, strlen(e->mt));
    }
    if (e->et == NULL) {
        assert_null(f->event_type);
        assert_int_equal(f->event_type_len, 0);
    } else {
        assert_int_equal(f->event_type_len, strlen(e->et));
        assert_memory_equal(f->event_type, e->et, strlen(e->et));
    }
    return 0;
}

static void check_types(const k2a_es_header_t *h, size_t nh, const char *mt, const char *et)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    assert_int_equal(k2a_es_encode(&b, h, nh, "{}", 2), 0);
    types_expect_t e = {mt, et, 0};
    k2a_es_frame_t f;
    assert_int_equal(k2a_es_decode_frame(b.base, b.len, 0, &f), (intptr_t)b.len);
    on_types_frame(&e, &f);
    for (size_t cut = 0; cut <= b.len; ++cut) {
        k2a_es_decoder_t d;
        k2a_es_decoder_init(&d, 0);
        e.calls = 0;
        assert_int_equal(k2a_es_decoder_feed(&d, b.base, cut, on_types_frame, &e), 0);
        assert_int_equal(k2a_es_decoder_feed(&d, b.base + cut, b.len - cut, on_types_frame, &e), 0);
        assert_int_equal(e.calls, 1);
        k2a_es_decoder_dispose(&d);
    }
    k2a_buf_dispose(&b);
}

static void test_decoder_frame_types(void **state)
{
    (void)state;
    k2a_es_header_t plain[] = {k2a_es_header_string(":event-type", "assistantResponseEvent"),
                               k2a_es_header_string(":content-type", "application/json"),
                               k2a_es_header_string(":message-type", "event")};
    check_types(plain, 3, "event", "assistantResponseEvent");
    k2a_es_header_t none[] = {k2a_es_header_string(":content-type", "application/json"),
                              k2a_es_header_string(":exception-type", "ThrottlingException")};
    check_types(none, 2, NULL, NULL);
    check_types(NULL, 0, NULL, NULL);
    k2a_es_header_t firsts[] = {k2a_es_header_int(":message-type", 7),
                                k2a_es_header_bytes(":event-type", "raw", 3),
                                k2a_es_header_string(":message-type", "exception"),
                                k2a_es_header_string(":event-type", "second"),
                                k2a_es_header_string(":message-type", "event"),
                                k2a_es_header_string(":event-type", "third")};
    check_types(firsts, 6, "exception", "second");
    k2a_es_header_t near[] = {k2a_es_header_string(":message-typ", "a"),  k2a_es_header_string(":message-types", "b"),
                              k2a_es_header_string("message-type:", "c"), k2a_es_header_string(":event-typ", "d"),
                              k2a_es_header_string(":event-types", "e"),  k2a_es_header_string(";event-type", "f"),
                              k2a_es_header_string(":Event-type", "g")};
    check_types(near, 7, NULL, NULL);
    k2a_es_header_t empty[] = {k2a_es_header_string(":message-type", ""), k2a_es_header_string(":event-type", "")};
    check_types(empty, 2, "", "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encoder_reproduces_fixtures), cmocka_unit_test(test_encoder_all_header_types),
        cmocka_unit_test(test_encoder_rejects_invalid),     cmocka_unit_test(test_random_roundtrip),
        cmocka_unit_test(test_decoder_frame_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
