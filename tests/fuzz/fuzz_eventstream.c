/*
 * libFuzzer target for the EventStream decoder. Input layout: byte 0 = control (bits 0-3: number of
 * split points; bits 4-6: frame maximum, 0 = default 16 MiB; bit 7: repair the CRCs of the frames the
 * stream declares, so that mutations reach the header parser instead of dying at the CRC checks), then
 * two bytes per split point (big-endian offsets, taken modulo the stream length + 1), then the stream.
 * The stream is decoded whole, in the chosen pieces, and frame by frame with k2a_es_decode_frame; all
 * three must agree on the frames and the final error, and every decoded frame must re-encode to exactly
 * its own bytes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"

#define CHECK(c)                                                                                                                   \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                                  \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

typedef struct {
    k2a_buf_t log; /* canonical description of every frame seen */
    k2a_buf_t reenc;
} run_t;

static void describe(k2a_buf_t *log, const k2a_es_frame_t *f)
{
    k2a_buf_appendf(log, "frame %u %u %08x %08x %zu\n", f->total_length, f->headers_length, f->prelude_crc, f->message_crc,
                    f->nheaders);
    for (size_t i = 0; i < f->nheaders; ++i) {
        const k2a_es_header_t *h = &f->headers[i];
        k2a_buf_appendf(log, " %d ", (int)h->type);
        k2a_buf_append(log, h->name, h->name_len);
        switch (h->type) {
        case K2A_ES_BOOL_TRUE:
        case K2A_ES_BOOL_FALSE:
            CHECK(h->v.b == (h->type == K2A_ES_BOOL_TRUE));
            break;
        case K2A_ES_BYTES:
        case K2A_ES_STRING:
        case K2A_ES_UUID:
            k2a_buf_appendf(log, "=%u:", h->v.s.len);
            k2a_buf_append(log, h->v.s.base, h->v.s.len);
            break;
        default:
            k2a_buf_appendf(log, "=%lld", (long long)h->v.i);
        }
    }
    k2a_buf_appendf(log, "\npayload %zu:", f->payload_len);
    k2a_buf_append(log, f->payload, f->payload_len);
}

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    run_t *r = ctx;
    describe(&r->log, f);
    /* the frame's bytes are contiguous: prelude + headers precede the payload, the CRC follows it */
    const char *start = f->payload - K2A_ES_PRELUDE_SIZE - f->headers_length;
    k2a_buf_reset(&r->reenc);
    CHECK(k2a_es_encode(&r->reenc, f->headers, f->nheaders, f->payload, f->payload_len) == 0);
    CHECK(r->reenc.len == f->total_length);
    CHECK(memcmp(r->reenc.base, start, f->total_length) == 0);
    return 0;
}

static void run_init(run_t *r)
{
    k2a_buf_init(&r->log, 0);
    k2a_buf_init(&r->reenc, 0);
}

static void run_dispose(run_t *r)
{
    k2a_buf_dispose(&r->log);
    k2a_buf_dispose(&r->reenc);
}

typedef struct {
    int rc;
    int finish;
    uint64_t frames, bytes;
} result_t;

static result_t decode(const uint8_t *s, size_t len, const size_t *cuts, size_t ncuts, size_t max_frame, run_t *run)
{
    k2a_es_decoder_t d;
    result_t res = {0};
    k2a_es_decoder_init(&d, max_frame);
    size_t off = 0;
    for (size_t i = 0; i <= ncuts; ++i) {
        size_t end = i < ncuts ? cuts[i] : len;
        int r = k2a_es_decoder_feed(&d, s + off, end - off, on_frame, run);
        if (res.rc == 0)
            res.rc = r;
        else
            CHECK(r == res.rc); /* sticky */
        off = end;
    }
    res.finish = k2a_es_decoder_finish(&d);
    CHECK(res.rc == 0 ? (res.finish == (k2a_es_decoder_has_partial(&d) ? K2A_EES_TRUNCATED : 0)) : res.finish == res.rc);
    res.frames = d.frames;
    res.bytes = d.bytes;
    if (d.buf != NULL)
        CHECK(d.buf_cap <= d.max_frame);
    k2a_es_decoder_dispose(&d);
    return res;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* Rewrites the prelude and message CRCs of every frame the stream declares (as far as its bytes go). */
static void repair_crcs(uint8_t *s, size_t len)
{
    size_t off = 0;
    while (len - off >= K2A_ES_PRELUDE_SIZE) {
        uint8_t *p = s + off;
        uint32_t total = be32(p);
        put32(p + 8, (uint32_t)crc32(0, p, 8));
        if (total < K2A_ES_MIN_FRAME || total > len - off)
            break;
        put32(p + total - 4, (uint32_t)crc32(0, p, total - 4));
        off += total;
    }
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t ncuts = data[0] & 15, sel = (data[0] >> 4) & 7;
    size_t max_frame = sel == 0 ? 0 : 16 + (sel - 1) * 97; /* default 16 MiB, or 16..598 bytes */
    if (size < 1 + 2 * ncuts)
        return 0;
    size_t len = size - 1 - 2 * ncuts;
    uint8_t *s = malloc(len != 0 ? len : 1); /* a copy of exactly len bytes, so ASan sees any overread */
    if (len != 0)
        memcpy(s, data + 1 + 2 * ncuts, len);
    if (data[0] & 0x80)
        repair_crcs(s, len);
    size_t cuts[15];
    for (size_t i = 0; i < ncuts; ++i)
        cuts[i] = len == 0 ? 0 : ((size_t)data[1 + 2 * i] << 8 | data[2 + 2 * i]) % (len + 1);
    qsort(cuts, ncuts, sizeof(cuts[0]), cmp_size);

    run_t whole, split, single;
    run_init(&whole);
    run_init(&split);
    run_init(&single);
    result_t a = decode(s, len, NULL, 0, max_frame, &whole);
    result_t b = decode(s, len, cuts, ncuts, max_frame, &split);
    CHECK(a.rc == b.rc);
    CHECK(a.finish == b.finish);
    CHECK(a.frames == b.frames);
    CHECK(a.bytes == b.bytes);
    CHECK(whole.log.len == split.log.len && (whole.log.len == 0 || memcmp(whole.log.base, split.log.base, whole.log.len) == 0));

    /* the stateless single-frame decoder agrees too */
    size_t off = 0;
    uint64_t frames = 0;
    intptr_t r = 0;
    k2a_es_frame_t f;
    while (off < len && (r = k2a_es_decode_frame(s + off, len - off, max_frame, &f)) > 0) {
        on_frame(&single, &f);
        off += (size_t)r;
        ++frames;
    }
    CHECK(frames == a.frames);
    CHECK(off == a.bytes);
    if (off < len) {
        /* a whole-decode error is decode_frame's error; a partial tail is its INCOMPLETE */
        CHECK(r == (a.rc != 0 ? a.rc : K2A_EINCOMPLETE));
        CHECK(a.rc != 0 || a.finish == K2A_EES_TRUNCATED);
    } else {
        CHECK(a.rc == 0 && a.finish == 0);
    }
    CHECK(single.log.len == whole.log.len && (whole.log.len == 0 || memcmp(whole.log.base, single.log.base, whole.log.len) == 0));
    run_dispose(&whole);
    run_dispose(&split);
    run_dispose(&single);
    free(s);
    return 0;
}
