/*
 * The fixed stack's share of one stream-small request, measured apart from the gateway: what yajl, zlib and OpenSSL
 * cost for the same bytes when nothing else runs. Each part is one noinline function doing exactly the library work
 * of one request, so that `valgrind --tool=callgrind bench_floor N` then `callgrind_annotate --inclusive=yes` gives
 * its instructions (divide by N):
 *   floor_yajl      yajl lexing + parsing the 2 KB stream-small body (bench/harness.py anthropic_small), every callback
 *                   a no-op that accepts (the floor of any yajl-based decoder of this body)
 *   floor_decode    the gateway's own Anthropic decoder on the same body (yajl + its callbacks + the IR in an arena)
 *   floor_crc       zlib crc32_z as the EventStream decoder calls it: twice per frame (prelude, then the rest) over the
 *                   23 frames of the answer (20 assistantResponseEvent of 16 bytes of text, metadataEvent,
 *                   contextUsageEvent, meteringEvent)
 *   floor_sha       SHA-256 of a client key through EVP with a fetched digest, twice (the key check, the sticky key)
 * Without valgrind it prints the nanoseconds per call of each (wall clock, best of 5; informative only).
 * Usage: bench_floor [iterations, default 20000]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include <yajl/yajl_parse.h>
#include <zlib.h>
#include "convert/anthropic_req.h"
#include "core/arena.h"
#include "core/buf.h"
#include "eventstream/eventstream.h"

#define BODY_SIZE 2048

static k2a_buf_t body = K2A_BUF_INIT(0), frames = K2A_BUF_INIT(0);
static EVP_MD *sha256;
static volatile unsigned long sink;

/* The body bench/harness.py's anthropic_small builds: model, max_tokens, stream, a filler system prompt padding the whole
 * to 2048 bytes, one user message with the simulator's directives. */
static void build_body(void)
{
    static const char filler[] = "You are a helpful assistant. Answer briefly and precisely; cite the file and the line you mean. ";
    static const char head[] = "{\"model\": \"claude-sonnet-4-5\", \"max_tokens\": 1024, \"stream\": true, \"system\": \"";
    static const char tail[] = "\", \"messages\": [{\"role\": \"user\", \"content\": \"Say something. [[sim:usage credits=0]] "
                               "[[sim:text frames=20 size=16]]\"}]}";
    size_t fill = BODY_SIZE - (sizeof(head) - 1) - (sizeof(tail) - 1);
    k2a_buf_append(&body, head, sizeof(head) - 1);
    for (size_t i = 0; i < fill; ++i)
        k2a_buf_append(&body, &filler[i % (sizeof(filler) - 1)], 1);
    k2a_buf_append(&body, tail, sizeof(tail) - 1);
}

static void build_frames(void)
{
    for (int i = 0; i < 20; ++i) {
        char payload[64];
        int n = snprintf(payload, sizeof(payload), "{\"content\":\"%.16s\"}", &"abcdefghijklmnopqrstuvwxyz0123456789"[i]);
        k2a_es_encode_event(&frames, "assistantResponseEvent", payload, (size_t)n);
    }
    static const char meta[] = "{\"stopReason\":\"end_turn\"}", ctx[] = "{\"contextUsagePercentage\":0.4131}",
                      meter[] = "{\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0}";
    k2a_es_encode_event(&frames, "metadataEvent", meta, sizeof(meta) - 1);
    k2a_es_encode_event(&frames, "contextUsageEvent", ctx, sizeof(ctx) - 1);
    k2a_es_encode_event(&frames, "meteringEvent", meter, sizeof(meter) - 1);
}

static int cb_null(void *c)
{
    (void)c;
    return 1;
}
static int cb_bool(void *c, int v)
{
    (void)c, (void)v;
    return 1;
}
static int cb_int(void *c, long long v)
{
    (void)c, (void)v;
    return 1;
}
static int cb_double(void *c, double v)
{
    (void)c, (void)v;
    return 1;
}
static int cb_str(void *c, const unsigned char *s, size_t n)
{
    (void)c, (void)s, (void)n;
    return 1;
}
static const yajl_callbacks noop_callbacks = {cb_null, cb_bool, cb_int,  cb_double, NULL,   cb_str,
                                              cb_null, cb_str,  cb_null, cb_null,   cb_null};

static __attribute__((noinline)) void floor_yajl(void)
{
    yajl_handle h = yajl_alloc(&noop_callbacks, NULL, NULL);
    if (h == NULL || yajl_parse(h, (const unsigned char *)body.base, body.len) != yajl_status_ok ||
        yajl_complete_parse(h) != yajl_status_ok)
        abort();
    yajl_free(h);
}

static __attribute__((noinline)) void floor_decode(void)
{
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    k2a_ir_request_t ir;
    k2a_convert_error_t err;
    if (k2a_anthropic_decode(body.base, body.len, NULL, &arena, &ir, &err) != 0)
        abort();
    sink += ir.nmessages;
    k2a_arena_dispose(&arena);
}

static __attribute__((noinline)) void floor_crc(void)
{
    const unsigned char *p = (const unsigned char *)frames.base, *end = p + frames.len;
    unsigned long c = 0;
    while (p < end) {
        uint32_t total = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        uLong c8 = crc32_z(0, p, 8);
        c += crc32_z(c8, p + 8, total - 12);
        p += total;
    }
    sink += c;
}

static __attribute__((noinline)) void floor_sha(void)
{
    static const char key[] = "sk-kiro2api-bench-0123456789abcdef0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned n;
    for (int i = 0; i < 2; ++i) {
        if (EVP_Digest(key, sizeof(key) - 1, d, &n, sha256, NULL) != 1)
            abort();
        sink += d[0];
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void timed(const char *name, void (*fn)(void), long iters)
{
    double best = 1e9;
    for (int run = 0; run < 5; ++run) {
        double t0 = now();
        for (long i = 0; i < iters; ++i)
            fn();
        double t = (now() - t0) / (double)iters;
        if (t < best)
            best = t;
    }
    printf("%-13s %8.0f ns per request\n", name, best * 1e9);
}

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000;
    if (iters <= 0)
        iters = 1;
    build_body();
    build_frames();
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256 == NULL)
        abort();
    printf("body %zu bytes, answer %zu bytes in 23 frames, %ld iterations\n", body.len, frames.len, iters);
    timed("floor_yajl", floor_yajl, iters);
    timed("floor_decode", floor_decode, iters);
    timed("floor_crc", floor_crc, iters);
    timed("floor_sha", floor_sha, iters);
    EVP_MD_free(sha256);
    k2a_buf_dispose(&body);
    k2a_buf_dispose(&frames);
    return sink == 42 ? 1 : 0;
}
