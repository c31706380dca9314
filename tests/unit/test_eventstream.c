/*
 * Unit tests for the EventStream decoder (src/eventstream/). Every upstream fixture is decoded whole,
 * one byte at a time, split once at every offset and at random split points (fixed seed), and each
 * frame is compared with frames_expected.json (parsed with yajl's tree API) or, for the two SYNTHETIC
 * files, with their README description. Negative vectors cover every K2A_EES_* code. The encoder and
 * the random round trip are in test_eventstream_encode.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <dirent.h>
#include <yajl/yajl_tree.h>
#include <zlib.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "core/rand.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"

/* ---- helpers ---------------------------------------------------------------------------------- */

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

static uint32_t get_be32(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* Recomputes both CRCs of the frame at p from its declared total_length (which must fit the buffer). */
static void fix_crcs(uint8_t *p)
{
    uint32_t total = (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
    put_be32(p + 8, (uint32_t)crc32(0, p, 8));
    put_be32(p + total - 4, (uint32_t)crc32(0, p, total - 4));
}

/* Builds a frame from a raw header block and payload, with correct CRCs. Returns its length. */
static size_t craft(uint8_t *out, const void *hdr, size_t hlen, const void *payload, size_t plen)
{
    size_t total = 16 + hlen + plen;
    put_be32(out, (uint32_t)total);
    put_be32(out + 4, (uint32_t)hlen);
    if (hlen != 0)
        memcpy(out + 12, hdr, hlen);
    if (plen != 0)
        memcpy(out + 12 + hlen, payload, plen);
    fix_crcs(out);
    return total;
}

/* A recorded frame: a copy of the frame's bytes and the decoded frame with pointers rebased into the copy. */
typedef struct {
    k2a_es_frame_t f;
    uint8_t *bytes;
    size_t offset;
    bool in_chunk;
} rec_frame_t;

typedef struct {
    rec_frame_t *v;
    size_t n, cap;
    size_t next_offset; /* stream offset of the next frame */
    const char *chunk;  /* chunk being fed and its stream offset */
    size_t chunk_len, chunk_off;
    size_t stop_after; /* 0: never stop; else return 7 after this many frames */
} rec_t;

static const char *rebase(const char *p, const char *from, const uint8_t *to)
{
    return p == NULL ? NULL : (const char *)to + (p - from);
}

static int on_record(void *ctx, const k2a_es_frame_t *f)
{
    rec_t *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = realloc(r->v, r->cap * sizeof(*r->v));
        assert_non_null(r->v);
    }
    rec_frame_t *rf = &r->v[r->n++];
    const char *start = f->payload - K2A_ES_PRELUDE_SIZE - f->headers_length;
    rf->bytes = malloc(f->total_length);
    assert_non_null(rf->bytes);
    memcpy(rf->bytes, start, f->total_length);
    rf->f = *f;
    rf->f.payload = rebase(f->payload, start, rf->bytes);
    for (size_t i = 0; i < f->nheaders; ++i) {
        rf->f.headers[i].name = rebase(f->headers[i].name, start, rf->bytes);
        if (f->headers[i].type == K2A_ES_BYTES || f->headers[i].type == K2A_ES_STRING || f->headers[i].type == K2A_ES_UUID)
            rf->f.headers[i].v.s.base = rebase(f->headers[i].v.s.base, start, rf->bytes);
    }
    rf->offset = r->next_offset;
    r->next_offset += f->total_length;
    /* zero copy: a frame lying whole inside the fed chunk is handed out in place, any other from the decoder's buffer */
    rf->in_chunk = rf->offset >= r->chunk_off && rf->offset + f->total_length <= r->chunk_off + r->chunk_len;
    bool points_in_chunk = start >= r->chunk && start < r->chunk + r->chunk_len;
    assert_true(points_in_chunk == rf->in_chunk);
    if (r->stop_after != 0 && r->n == r->stop_after)
        return 7;
    return 0;
}

static void rec_free(rec_t *r)
{
    for (size_t i = 0; i < r->n; ++i)
        free(r->v[i].bytes);
    free(r->v);
    memset(r, 0, sizeof(*r));
}

typedef struct {
    int rc;           /* first non-zero feed result, else 0 */
    bool has_partial; /* at the end */
    uint64_t frames, bytes;
    size_t buf_cap;
} outcome_t;

/* Feeds data cut at the sorted offsets cuts[0..ncuts) and records the frames. After an error the remaining pieces
 * are still fed and must return the same (sticky) value. */
static outcome_t decode_cuts(const char *data, size_t len, const size_t *cuts, size_t ncuts, size_t max_frame, rec_t *rec)
{
    k2a_es_decoder_t d;
    outcome_t o = {0};
    k2a_es_decoder_init(&d, max_frame);
    size_t off = 0;
    for (size_t i = 0; i <= ncuts; ++i) {
        size_t end = i < ncuts ? cuts[i] : len;
        assert_true(end >= off && end <= len);
        rec->chunk = data + off;
        rec->chunk_off = off;
        rec->chunk_len = end - off;
        uint64_t frames_before = d.frames;
        int r = k2a_es_decoder_feed(&d, data + off, end - off, on_record, rec);
        if (o.rc != 0) {
            assert_int_equal(r, o.rc); /* sticky */
            assert_true(d.frames == frames_before);
        } else {
            o.rc = r;
        }
        off = end;
    }
    o.has_partial = k2a_es_decoder_has_partial(&d);
    o.frames = d.frames;
    o.bytes = d.bytes;
    o.buf_cap = d.buf_cap;
    assert_int_equal(d.frames, rec->n);
    if (o.rc == 0)
        assert_int_equal(k2a_es_decoder_finish(&d), o.has_partial ? K2A_EES_TRUNCATED : 0);
    else
        assert_int_equal(k2a_es_decoder_finish(&d), o.rc);
    k2a_es_decoder_dispose(&d);
    return o;
}

static size_t random_cuts(size_t len, size_t *cuts, size_t max_cuts)
{
    if (len < 2)
        return 0;
    size_t n = 1 + rnd_below(max_cuts);
    for (size_t i = 0; i < n; ++i)
        cuts[i] = 1 + rnd_below(len - 1);
    for (size_t i = 1; i < n; ++i) /* insertion sort: n is small */
        for (size_t j = i; j > 0 && cuts[j - 1] > cuts[j]; --j) {
            size_t t = cuts[j];
            cuts[j] = cuts[j - 1];
            cuts[j - 1] = t;
        }
    return n;
}

static void assert_same_frames(const rec_t *a, const rec_t *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; ++i) {
        const k2a_es_frame_t *x = &a->v[i].f, *y = &b->v[i].f;
        assert_int_equal(a->v[i].offset, b->v[i].offset);
        assert_int_equal(x->total_length, y->total_length);
        assert_memory_equal(a->v[i].bytes, b->v[i].bytes, x->total_length);
        assert_int_equal(x->headers_length, y->headers_length);
        assert_int_equal(x->prelude_crc, y->prelude_crc);
        assert_int_equal(x->message_crc, y->message_crc);
        assert_int_equal(x->nheaders, y->nheaders);
        for (size_t j = 0; j < x->nheaders; ++j) {
            assert_int_equal(x->headers[j].name_len, y->headers[j].name_len);
            assert_memory_equal(x->headers[j].name, y->headers[j].name, x->headers[j].name_len);
            assert_int_equal(x->headers[j].type, y->headers[j].type);
        }
        assert_int_equal(x->payload_len, y->payload_len);
        assert_memory_equal(x->payload, y->payload, x->payload_len);
    }
}

typedef void (*check_frames_fn)(const rec_t *rec, const void *expect);

/* Decodes data whole, one byte at a time, split once at every offset, and with 100 random multi-point splits; checks
 * each decoding with check() and against the whole decoding. Returns nothing: every decoding must consume everything. */
static void decode_all_ways(const char *data, size_t len, check_frames_fn check, const void *expect)
{
    rec_t whole = {0}, r = {0};
    outcome_t o = decode_cuts(data, len, NULL, 0, 0, &whole);
    assert_int_equal(o.rc, 0);
    assert_false(o.has_partial);
    assert_int_equal(o.bytes, len);
    assert_int_equal(o.buf_cap, 0); /* whole frames in one chunk: never copied, nothing allocated */
    for (size_t i = 0; i < whole.n; ++i)
        assert_true(whole.v[i].in_chunk);
    check(&whole, expect);

    size_t *cuts = malloc(len * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; ++i)
        cuts[i] = i + 1;
    o = decode_cuts(data, len, cuts, len - 1, 0, &r); /* one byte at a time */
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.bytes, len);
    check(&r, expect);
    assert_same_frames(&whole, &r);
    rec_free(&r);

    for (size_t at = 1; at < len; ++at) { /* one cut, at every offset */
        o = decode_cuts(data, len, &at, 1, 0, &r);
        assert_int_equal(o.rc, 0);
        assert_same_frames(&whole, &r);
        rec_free(&r);
    }

    rng_state = 0x6b326131; /* fixed seed */
    for (int round = 0; round < 100; ++round) {
        size_t n = random_cuts(len, cuts, round < 50 ? 8 : 100);
        o = decode_cuts(data, len, cuts, n, 0, &r);
        assert_int_equal(o.rc, 0);
        assert_false(o.has_partial);
        check(&r, expect);
        assert_same_frames(&whole, &r);
        rec_free(&r);
    }
    free(cuts);
    rec_free(&whole);
}

/* ---- fixtures vs frames_expected.json ---------------------------------------------------------- */

static unsigned long hex_field(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    const char *s = YAJL_GET_STRING(yajl_tree_get(obj, path, yajl_t_string));
    assert_non_null(s);
    assert_int_equal(strlen(s), 8);
    return strtoul(s, NULL, 16);
}

static void check_against_json(const rec_t *rec, const void *expect)
{
    yajl_val file = (yajl_val)expect;
    const char *frames_path[] = {"frames", NULL};
    yajl_val frames = yajl_tree_get(file, frames_path, yajl_t_array);
    assert_non_null(frames);
    assert_int_equal(rec->n, YAJL_GET_ARRAY(frames)->len);
    for (size_t i = 0; i < rec->n; ++i) {
        yajl_val jf = YAJL_GET_ARRAY(frames)->values[i];
        const k2a_es_frame_t *f = &rec->v[i].f;
        const char *p_off[] = {"offset", NULL}, *p_tl[] = {"total_length", NULL}, *p_hl[] = {"headers_length", NULL},
                   *p_pok[] = {"prelude_crc_ok", NULL}, *p_mok[] = {"message_crc_ok", NULL}, *p_h[] = {"headers", NULL},
                   *p_pl[] = {"payload_utf8", NULL};
        assert_int_equal(rec->v[i].offset, YAJL_GET_INTEGER(yajl_tree_get(jf, p_off, yajl_t_number)));
        assert_int_equal(f->total_length, YAJL_GET_INTEGER(yajl_tree_get(jf, p_tl, yajl_t_number)));
        assert_int_equal(f->headers_length, YAJL_GET_INTEGER(yajl_tree_get(jf, p_hl, yajl_t_number)));
        assert_true(YAJL_IS_TRUE(yajl_tree_get(jf, p_pok, yajl_t_true)));
        assert_true(YAJL_IS_TRUE(yajl_tree_get(jf, p_mok, yajl_t_true)));
        assert_int_equal(f->prelude_crc, hex_field(jf, "prelude_crc"));
        assert_int_equal(f->message_crc, hex_field(jf, "message_crc"));
        yajl_val h = yajl_tree_get(jf, p_h, yajl_t_object);
        assert_non_null(h);
        assert_int_equal(f->nheaders, YAJL_GET_OBJECT(h)->len);
        for (size_t j = 0; j < f->nheaders; ++j) { /* same names, same order, string values */
            const char *name = YAJL_GET_OBJECT(h)->keys[j];
            const char *value = YAJL_GET_STRING(YAJL_GET_OBJECT(h)->values[j]);
            assert_non_null(value);
            assert_int_equal(f->headers[j].name_len, strlen(name));
            assert_memory_equal(f->headers[j].name, name, strlen(name));
            assert_int_equal(f->headers[j].type, K2A_ES_STRING);
            assert_int_equal(f->headers[j].v.s.len, strlen(value));
            assert_memory_equal(f->headers[j].v.s.base, value, strlen(value));
            size_t len;
            const char *v = k2a_es_frame_header_str(f, name, &len);
            assert_ptr_equal(v, f->headers[j].v.s.base);
            assert_int_equal(len, strlen(value));
        }
        const char *payload = YAJL_GET_STRING(yajl_tree_get(jf, p_pl, yajl_t_string));
        assert_non_null(payload);
        assert_int_equal(f->payload_len, strlen(payload));
        assert_memory_equal(f->payload, payload, f->payload_len);
    }
}

static void test_fixtures_match_expected_json(void **state)
{
    size_t jlen;
    char *json = read_file(UPSTREAM "frames_expected.json", &jlen);
    char err[256];
    yajl_val root = yajl_tree_parse(json, err, sizeof(err));
    assert_non_null(root);
    assert_true(YAJL_IS_OBJECT(root));
    assert_int_equal(YAJL_GET_OBJECT(root)->len, 3);
    size_t total_frames = 0;
    for (size_t i = 0; i < YAJL_GET_OBJECT(root)->len; ++i) {
        char path[512];
        snprintf(path, sizeof(path), UPSTREAM "%s", YAJL_GET_OBJECT(root)->keys[i]);
        size_t len;
        char *data = read_file(path, &len);
        const char *p_size[] = {"size", NULL};
        assert_int_equal(len, YAJL_GET_INTEGER(yajl_tree_get(YAJL_GET_OBJECT(root)->values[i], p_size, yajl_t_number)));
        decode_all_ways(data, len, check_against_json, YAJL_GET_OBJECT(root)->values[i]);
        const char *p_frames[] = {"frames", NULL};
        total_frames += YAJL_GET_ARRAY(yajl_tree_get(YAJL_GET_OBJECT(root)->values[i], p_frames, yajl_t_array))->len;
        free(data);
    }
    assert_int_equal(total_frames, 2 + 5 + 21);
    /* every .bin in the folder is covered: a JSON key here, or one of the two SYNTHETIC files of the next test */
    DIR *dir = opendir(UPSTREAM);
    assert_non_null(dir);
    size_t nbin = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n < 4 || strcmp(e->d_name + n - 4, ".bin") != 0)
            continue;
        ++nbin;
        const char *p_key[] = {e->d_name, NULL};
        bool in_json = yajl_tree_get(root, p_key, yajl_t_object) != NULL;
        bool synthetic = strcmp(e->d_name, "SYNTHETIC_text_tooluse_metering_contextusage.bin") == 0 ||
                         strcmp(e->d_name, "SYNTHETIC_text_then_exception.bin") == 0;
        if (!in_json && !synthetic)
            fail_msg("fixture %s is not covered by the tests", e->d_name);
    }
    closedir(dir);
    assert_int_equal(nbin, 5);
    yajl_tree_free(root);
    free(json);
}

/* ---- the two SYNTHETIC files (not in the JSON): checked against their README description ---------- */

typedef struct {
    size_t n;
    const char *const *event_types; /* :event-type, or :exception-type for an exception frame */
    const char *const *payloads;
} synthetic_t;

static void check_synthetic(const rec_t *rec, const void *expect)
{
    const synthetic_t *s = expect;
    assert_int_equal(rec->n, s->n);
    for (size_t i = 0; i < s->n; ++i) {
        const k2a_es_frame_t *f = &rec->v[i].f;
        size_t len, ml, cl;
        const char *mt = k2a_es_frame_header_str(f, ":message-type", &ml);
        const char *ct = k2a_es_frame_header_str(f, ":content-type", &cl);
        assert_non_null(ct);
        assert_int_equal(cl, strlen("application/json"));
        assert_memory_equal(ct, "application/json", cl);
        assert_non_null(mt);
        bool exc = ml == 9 && memcmp(mt, "exception", 9) == 0;
        const char *et = k2a_es_frame_header_str(f, exc ? ":exception-type" : ":event-type", &len);
        assert_non_null(et);
        if (!exc) {
            assert_int_equal(ml, 5);
            assert_memory_equal(mt, "event", 5);
        }
        assert_int_equal(len, strlen(s->event_types[i]));
        assert_memory_equal(et, s->event_types[i], len);
        assert_int_equal(f->payload_len, strlen(s->payloads[i]));
        assert_memory_equal(f->payload, s->payloads[i], f->payload_len);
    }
}

static void test_synthetic_fixtures(void **state)
{
    static const char *const types1[] = {"assistantResponseEvent", "toolUseEvent",  "toolUseEvent",     "toolUseEvent",
                                         "toolUseEvent",           "meteringEvent", "contextUsageEvent"};
    static const char *const payloads1[] = {
        "{\"content\":\"Let me check the weather.\"}",
        "{\"name\":\"get_weather\",\"toolUseId\":\"tooluse_SynthAbCdEfGhIjKlMnOpQr\"}",
        "{\"name\":\"get_weather\",\"toolUseId\":\"tooluse_SynthAbCdEfGhIjKlMnOpQr\",\"input\":\"{\\\"city\\\":\"}",
        "{\"name\":\"get_weather\",\"toolUseId\":\"tooluse_SynthAbCdEfGhIjKlMnOpQr\",\"input\":\"\\\"\xe5\xb7\xb4\xe9\xbb\x8e\\\"}"
        "\"}",
        "{\"name\":\"get_weather\",\"toolUseId\":\"tooluse_SynthAbCdEfGhIjKlMnOpQr\",\"stop\":true}",
        "{\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0.0123}",
        "{\"contextUsagePercentage\":1.25}"};
    static const char *const types2[] = {"assistantResponseEvent", "ContentLengthExceededException"};
    static const char *const payloads2[] = {"{\"content\":\"Partial answer\"}",
                                            "{\"message\": \"Response exceeded the maximum content length.\"}"};
    const synthetic_t s1 = {7, types1, payloads1}, s2 = {2, types2, payloads2};
    size_t len;
    char *data = read_file(UPSTREAM "SYNTHETIC_text_tooluse_metering_contextusage.bin", &len);
    assert_int_equal(len, 1154);
    decode_all_ways(data, len, check_synthetic, &s1);
    free(data);
    data = read_file(UPSTREAM "SYNTHETIC_text_then_exception.bin", &len);
    assert_int_equal(len, 320);
    decode_all_ways(data, len, check_synthetic, &s2);
    free(data);
}

/* ---- negative vectors ------------------------------------------------------------------------- */

static const char *const all_fixtures[] = {"kiro2api_text_2frames_303B.bin", "kiro2api_jsontext_5frames_674B.bin",
                                           "kiro2api_cjk_text_then_tooluse_21frames_2738B.bin",
                                           "SYNTHETIC_text_tooluse_metering_contextusage.bin", "SYNTHETIC_text_then_exception.bin"};

/* Decodes data whole and one byte at a time; both must end with `want` after delivering `frames` frames. */
static void expect_error(const void *data, size_t len, size_t max_frame, int want, size_t frames)
{
    rec_t r = {0};
    outcome_t o = decode_cuts(data, len, NULL, 0, max_frame, &r);
    assert_int_equal(o.rc, want);
    assert_int_equal(o.frames, frames);
    rec_free(&r);
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; ++i)
        cuts[i] = i + 1;
    o = decode_cuts(data, len, cuts, len > 1 ? len - 1 : 0, max_frame, &r);
    assert_int_equal(o.rc, want);
    assert_int_equal(o.frames, frames);
    rec_free(&r);
    free(cuts);
    k2a_es_frame_t f;
    size_t off = 0;
    for (size_t i = 0; i < frames; ++i)
        off += (size_t)k2a_es_decode_frame((const char *)data + off, len - off, max_frame, &f);
    assert_int_equal(k2a_es_decode_frame((const char *)data + off, len - off, max_frame, &f), want);
}

static void test_error_short_frame(void **state)
{
    for (uint32_t total = 0; total < 16; ++total) {
        uint8_t p[16] = {0};
        put_be32(p, total);
        put_be32(p + 8, (uint32_t)crc32(0, p, 8));
        expect_error(p, sizeof(p), 0, K2A_EES_SHORT_FRAME, 0);
    }
    /* detected from the first 4 bytes alone */
    uint8_t p[4] = {0, 0, 0, 15};
    expect_error(p, sizeof(p), 0, K2A_EES_SHORT_FRAME, 0);
    /* the smallest legal frame: 16 bytes, no headers, no payload */
    uint8_t min[16];
    assert_int_equal(craft(min, NULL, 0, NULL, 0), 16);
    k2a_es_frame_t f;
    assert_int_equal(k2a_es_decode_frame(min, 16, 0, &f), 16);
    assert_int_equal(f.nheaders, 0);
    assert_int_equal(f.payload_len, 0);
}

static int on_frame_fail(void *ctx, const k2a_es_frame_t *f)
{
    fail_msg("no frame expected");
    return 0;
}

static void test_error_oversize_before_buffering(void **state)
{
    /* a prelude declaring 16 MiB + 1 with a correct prelude CRC */
    uint8_t p[12];
    put_be32(p, K2A_ES_DEFAULT_MAX_FRAME + 1);
    put_be32(p + 4, 0);
    put_be32(p + 8, (uint32_t)crc32(0, p, 8));
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    assert_int_equal(d.max_frame, K2A_ES_DEFAULT_MAX_FRAME);
    for (size_t i = 0; i < 3; ++i)
        assert_int_equal(k2a_es_decoder_feed(&d, p + i, 1, on_frame_fail, NULL), 0);
    assert_int_equal(k2a_es_decoder_feed(&d, p + 3, 1, on_frame_fail, NULL), K2A_EES_OVERSIZE); /* at the 4th byte */
    assert_null(d.buf); /* nothing beyond the length field was ever buffered */
    assert_int_equal(d.buf_cap, 0);
    assert_int_equal(k2a_es_decoder_feed(&d, p + 4, 8, on_frame_fail, NULL), K2A_EES_OVERSIZE);
    k2a_es_decoder_dispose(&d);
    /* whole: the same, without allocating */
    k2a_es_decoder_init(&d, 0);
    assert_int_equal(k2a_es_decoder_feed(&d, p, sizeof(p), on_frame_fail, NULL), K2A_EES_OVERSIZE);
    assert_null(d.buf);
    k2a_es_decoder_dispose(&d);
    expect_error(p, sizeof(p), 0, K2A_EES_OVERSIZE, 0);

    /* a configured maximum: 150 lets the 143-byte frame of the real capture through and stops at the 160-byte one */
    size_t len;
    char *data = read_file(UPSTREAM "kiro2api_text_2frames_303B.bin", &len);
    expect_error(data, len, 150, K2A_EES_OVERSIZE, 1);
    expect_error(data, len, 142, K2A_EES_OVERSIZE, 0);
    rec_t r = {0};
    outcome_t o = decode_cuts(data, len, NULL, 0, 160, &r); /* the limit is inclusive */
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.frames, 2);
    rec_free(&r);
    free(data);
}

/* A frame of exactly the maximum (16 MiB) is accepted, and assembled from 16 KiB reads in one buffer sized to it. */
static void test_max_size_frame_grown_once(void **state)
{
    size_t plen = K2A_ES_DEFAULT_MAX_FRAME - 16 - 37 - 33 - 22; /* the three event headers take 92 bytes */
    char *payload = malloc(plen);
    for (size_t i = 0; i < plen; ++i)
        payload[i] = (char)(i * 7);
    k2a_buf_t b = K2A_BUF_INIT(0);
    assert_int_equal(k2a_es_encode_event(&b, "assistantResponseEvent", payload, plen), 0);
    assert_int_equal(b.len, K2A_ES_DEFAULT_MAX_FRAME);
    size_t *cuts = malloc((b.len / 16384 + 1) * sizeof(*cuts)), n = 0;
    for (size_t off = 16384; off < b.len; off += 16384)
        cuts[n++] = off;
    rec_t r = {0};
    outcome_t o = decode_cuts(b.base, b.len, cuts, n, 0, &r);
    assert_int_equal(o.rc, 0);
    assert_int_equal(o.frames, 1);
    assert_int_equal(o.buf_cap, K2A_ES_DEFAULT_MAX_FRAME);
    assert_int_equal(r.v[0].f.payload_len, plen);
    assert_memory_equal(r.v[0].f.payload, payload, plen);
    rec_free(&r);
    /* one byte more than a smaller configured maximum */
    expect_error(b.base, 64, K2A_ES_DEFAULT_MAX_FRAME - 1, K2A_EES_OVERSIZE, 0);
    free(cuts);
    free(payload);
    k2a_buf_dispose(&b);
}

static void test_error_header_overrun(void **state)
{
    uint8_t f[512];
    size_t n;
    /* headers_length > total_length - 16 (prelude CRC correct) */
    const uint8_t hdr[] = {1, 'a', 0};
    n = craft(f, hdr, sizeof(hdr), "xy", 2);
    put_be32(f + 4, (uint32_t)n - 16 + 1);
    fix_crcs(f);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    /* a string value running past the header block (the frame's payload follows, so only the block bounds it) */
    const uint8_t s[] = {1, 'a', 7, 0, 10, 'x', 'y', 'z'};
    n = craft(f, s, sizeof(s), "0123456789", 10);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    /* the 2-byte length itself cut by the block end */
    const uint8_t s2[] = {1, 'a', 6, 0};
    n = craft(f, s2, sizeof(s2), "0123456789", 10);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    /* a fixed-size value cut: LONG needs 8 bytes, 7 left; UUID needs 16, 15 left; BYTE needs 1, 0 left */
    const uint8_t l[] = {1, 'a', 5, 1, 2, 3, 4, 5, 6, 7};
    n = craft(f, l, sizeof(l), "p", 1);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    uint8_t u[3 + 15] = {1, 'u', 9};
    n = craft(f, u, sizeof(u), "p", 1);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    const uint8_t by[] = {1, 'a', 0, 1, 'b', 2};
    n = craft(f, by, sizeof(by), "", 0);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    /* a name running past the block, and a name with no room for its type byte */
    const uint8_t nm[] = {5, 'a', 'b'};
    n = craft(f, nm, sizeof(nm), "payload", 7);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    const uint8_t nt[] = {2, 'a', 'b'};
    n = craft(f, nt, sizeof(nt), "payload", 7);
    expect_error(f, n, 0, K2A_EES_HEADER_OVERRUN, 0);
    /* a value that ends exactly at the block end is fine */
    const uint8_t ok[] = {1, 'a', 7, 0, 3, 'x', 'y', 'z'};
    n = craft(f, ok, sizeof(ok), "p", 1);
    k2a_es_frame_t fr;
    assert_int_equal(k2a_es_decode_frame(f, n, 0, &fr), (intptr_t)n);
    assert_int_equal(fr.headers[0].v.s.len, 3);
}

static void test_error_bad_header_type_and_name(void **state)
{
    uint8_t f[128];
    size_t n;
    for (unsigned t = 10; t < 256; t += 245) { /* 10 and 255 */
        const uint8_t h[] = {1, 'a', (uint8_t)t, 0, 0, 0, 0};
        n = craft(f, h, sizeof(h), "{}", 2);
        expect_error(f, n, 0, K2A_EES_HEADER_TYPE, 0);
    }
    /* a bad type in the second header, after a good one */
    const uint8_t h2[] = {1, 'a', 0, 1, 'b', 42};
    n = craft(f, h2, sizeof(h2), "", 0);
    expect_error(f, n, 0, K2A_EES_HEADER_TYPE, 0);
    /* empty header name, first and second position */
    const uint8_t e1[] = {0, 7, 0, 0};
    n = craft(f, e1, sizeof(e1), "{}", 2);
    expect_error(f, n, 0, K2A_EES_HEADER_NAME, 0);
    const uint8_t e2[] = {1, 'a', 1, 0, 0};
    n = craft(f, e2, sizeof(e2), "{}", 2);
    expect_error(f, n, 0, K2A_EES_HEADER_NAME, 0);
}

static void test_error_too_many_headers(void **state)
{
    uint8_t hdr[3 * (K2A_ES_MAX_HEADERS + 1)], f[256];
    for (size_t i = 0; i < K2A_ES_MAX_HEADERS + 1; ++i) {
        hdr[3 * i] = 1;
        hdr[3 * i + 1] = 'h';
        hdr[3 * i + 2] = K2A_ES_BOOL_TRUE;
    }
    size_t n = craft(f, hdr, sizeof(hdr), "", 0);
    expect_error(f, n, 0, K2A_EES_TOO_MANY_HEADERS, 0);
    n = craft(f, hdr, sizeof(hdr) - 3, "", 0); /* exactly the maximum */
    k2a_es_frame_t fr;
    assert_int_equal(k2a_es_decode_frame(f, n, 0, &fr), (intptr_t)n);
    assert_int_equal(fr.nheaders, K2A_ES_MAX_HEADERS);
}

/* Every single-byte corruption of every real fixture is caught: frames before the damaged one are delivered, then the
 * decoder stops with the error the damaged byte calls for (length field: short/oversize/prelude CRC; rest of prelude:
 * prelude CRC; anywhere after: message CRC). */
static void test_error_corruption_every_byte(void **state)
{
    rng_state = 0xc0ffee;
    for (size_t fi = 0; fi < sizeof(all_fixtures) / sizeof(all_fixtures[0]); ++fi) {
        char path[512];
        snprintf(path, sizeof(path), UPSTREAM "%s", all_fixtures[fi]);
        size_t len;
        char *data = read_file(path, &len);
        size_t frame_start = 0, frame_index = 0;
        uint32_t total = 0;
        for (size_t pos = 0; pos < len; ++pos) {
            if (pos == 0 || pos == frame_start + total) {
                if (pos != 0) {
                    frame_start = pos;
                    ++frame_index;
                }
                total = get_be32(data + pos);
            }
            uint8_t flip = (uint8_t)(1 + rnd_below(255));
            data[pos] ^= flip;
            int want;
            size_t rel = pos - frame_start;
            if (rel < 4) {
                uint32_t t = get_be32(data + frame_start);
                want = t < 16 ? K2A_EES_SHORT_FRAME : t > K2A_ES_DEFAULT_MAX_FRAME ? K2A_EES_OVERSIZE : K2A_EES_PRELUDE_CRC;
            } else {
                want = rel < 12 ? K2A_EES_PRELUDE_CRC : K2A_EES_MESSAGE_CRC;
            }
            rec_t r = {0};
            size_t cut = 1 + rnd_below(len - 1);
            outcome_t o = decode_cuts(data, len, NULL, 0, 0, &r);
            assert_int_equal(o.rc, want);
            assert_int_equal(o.frames, frame_index);
            rec_free(&r);
            o = decode_cuts(data, len, &cut, 1, 0, &r);
            assert_int_equal(o.rc, want);
            assert_int_equal(o.frames, frame_index);
            rec_free(&r);
            data[pos] ^= flip;
        }
        free(data);
    }
}

/* The two CRC errors on a real frame, explicitly, and stickiness: after an error a valid frame is not decoded. */
static void test_error_crc_sticky(void **state)
{
    size_t len;
    char *data = read_file(UPSTREAM "kiro2api_jsontext_5frames_674B.bin", &len);
    data[200] ^= 0x01; /* inside frame 2's payload: message CRC */
    expect_error(data, len, 0, K2A_EES_MESSAGE_CRC, 1);
    data[200] ^= 0x01;
    data[123 + 9] ^= 0x80; /* frame 2's prelude CRC field */
    expect_error(data, len, 0, K2A_EES_PRELUDE_CRC, 1);
    data[123 + 9] ^= 0x80;
    data[len - 1] ^= 0x10; /* the last frame's message CRC field */
    expect_error(data, len, 0, K2A_EES_MESSAGE_CRC, 4);
    data[len - 1] ^= 0x10;

    k2a_es_decoder_t d;
    rec_t r = {0};
    k2a_es_decoder_init(&d, 0);
    uint8_t bad[4] = {0, 0, 0, 1};
    assert_int_equal(k2a_es_decoder_feed(&d, bad, 4, on_record, &r), K2A_EES_SHORT_FRAME);
    r.chunk = data;
    r.chunk_len = len;
    assert_int_equal(k2a_es_decoder_feed(&d, data, len, on_record, &r), K2A_EES_SHORT_FRAME);
    assert_int_equal(k2a_es_decoder_feed(&d, NULL, 0, on_record, &r), K2A_EES_SHORT_FRAME);
    assert_int_equal(d.frames, 0);
    assert_int_equal(r.n, 0);
    k2a_es_decoder_dispose(&d);
    free(data);
}

static void test_truncated_has_partial(void **state)
{
    size_t len;
    char *data = read_file(UPSTREAM "kiro2api_cjk_text_then_tooluse_21frames_2738B.bin", &len);
    /* cut inside the last frame's CRC, inside its payload, inside its prelude, right after a frame boundary + 1 */
    k2a_es_frame_t f;
    size_t last = 0, off = 0, nframes = 0;
    rng_state = 0x7a11;
    while (off < len) {
        last = off;
        off += (size_t)k2a_es_decode_frame(data + off, len - off, 0, &f);
        ++nframes;
    }
    assert_int_equal(nframes, 21);
    const size_t ends[] = {len - 1, len - 20, last + 11, last + 3, last + 1};
    for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); ++i) {
        rec_t r = {0};
        size_t cut = 1 + rnd_below(ends[i] - 1);
        for (int split = 0; split < 2; ++split) {
            outcome_t o = decode_cuts(data, ends[i], &cut, split, 0, &r); /* finish() == TRUNCATED checked inside */
            assert_int_equal(o.rc, 0);
            assert_true(o.has_partial);
            assert_int_equal(o.frames, 20);
            rec_free(&r);
        }
        assert_int_equal(k2a_es_decode_frame(data + last, ends[i] - last, 0, &f), K2A_EINCOMPLETE);
    }
    /* every proper prefix of a single frame is INCOMPLETE for decode_frame */
    assert_true(get_be32(data) > 100);
    for (size_t n = 0; n < get_be32(data); ++n)
        assert_int_equal(k2a_es_decode_frame(data, n, 0, &f), K2A_EINCOMPLETE);
    /* an empty stream is not truncated */
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    assert_false(k2a_es_decoder_has_partial(&d));
    assert_int_equal(k2a_es_decoder_finish(&d), 0);
    k2a_es_decoder_dispose(&d);
    free(data);
}

static void test_callback_stop(void **state)
{
    size_t len;
    char *data = read_file(UPSTREAM "kiro2api_jsontext_5frames_674B.bin", &len);
    for (int split = 0; split < 2; ++split) {
        rec_t r = {0};
        r.stop_after = 2;
        size_t cut = 200;                                         /* inside frame 2 */
        outcome_t o = decode_cuts(data, len, &cut, split, 0, &r); /* the stop is sticky (checked inside) */
        assert_int_equal(o.rc, 7);
        assert_int_equal(o.frames, 2);
        rec_free(&r);
    }
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_match_expected_json),
        cmocka_unit_test(test_synthetic_fixtures),
        cmocka_unit_test(test_error_short_frame),
        cmocka_unit_test(test_error_oversize_before_buffering),
        cmocka_unit_test(test_max_size_frame_grown_once),
        cmocka_unit_test(test_error_header_overrun),
        cmocka_unit_test(test_error_bad_header_type_and_name),
        cmocka_unit_test(test_error_too_many_headers),
        cmocka_unit_test(test_error_corruption_every_byte),
        cmocka_unit_test(test_error_crc_sticky),
        cmocka_unit_test(test_truncated_has_partial),
        cmocka_unit_test(test_callback_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
