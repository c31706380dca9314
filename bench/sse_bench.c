/*
 * Response-path micro-benchmark: the cost of (1) the Anthropic SSE writer per event (text deltas, CJK text deltas,
 * tool input deltas), (2) the Kiro event parser per decoded frame (assistantResponseEvent, toolUseEvent piece) with
 * a sink that does nothing, and (3) the whole path per frame: EventStream decode + parse + SSE bytes. Each case runs
 * 7 times; the best and the median ns per event/frame are printed. Release build only counts:
 *   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2 && ./build/bench/bench_sse
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "convert/anthropic_resp.h"
#include "convert/kiro_resp.h"
#include "core/buf.h"
#include "core/log.h"
#include "eventstream/eventstream.h"

#define RUNS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, double *per, size_t bytes_per)
{
    qsort(per, RUNS, sizeof(double), cmp_double);
    if (bytes_per != 0)
        printf("%-44s best %7.1f ns  median %7.1f ns  (%zu output bytes each)\n", name, per[0], per[RUNS / 2], bytes_per);
    else
        printf("%-44s best %7.1f ns  median %7.1f ns\n", name, per[0], per[RUNS / 2]);
}

static void fixed_random(void *ctx, void *buf, size_t len)
{
    memset(buf, 7, len);
}

/* ---------- (1) SSE writer ---------- */

static void bench_writer(const char *name, k2a_ir_block_kind_t kind, const char *text, size_t n_events)
{
    double per[RUNS];
    size_t bytes_per = 0;
    for (int run = 0; run < RUNS; ++run) {
        k2a_buf_t out;
        k2a_buf_init(&out, 0);
        k2a_anthropic_sse_t w;
        k2a_anthropic_sse_init(&w, &out, K2A_STRLIT("claude-sonnet-4-20250514"), fixed_random, NULL);
        k2a_ir_event_t start = {.type = K2A_EV_BLOCK_START, .index = 0, .block = kind};
        if (kind == K2A_BLOCK_TOOL_USE) {
            start.tool_id = K2A_STRLIT("tooluse_1DCqyICMR-CfTS36UNNiwA");
            start.tool_name = K2A_STRLIT("Write");
        }
        k2a_anthropic_sse_on_event(&w, &start);
        k2a_ir_event_t ev = {.type = K2A_EV_DELTA, .index = 0, .block = kind, .text = k2a_cstr(text)};
        k2a_buf_reset(&out);
        double t0 = now_ns();
        for (size_t i = 0; i < n_events; ++i) {
            k2a_anthropic_sse_on_event(&w, &ev);
            if ((i & 63) == 63) { /* the HTTP layer sends and resets the buffer after each frame; every 64 events here */
                if (bytes_per == 0)
                    bytes_per = out.len / 64;
                k2a_buf_reset(&out);
            }
        }
        per[run] = (now_ns() - t0) / (double)n_events;
        k2a_buf_dispose(&out);
    }
    report(name, per, bytes_per);
}

/* ---------- (2)(3) parser ---------- */

static int null_sink(void *ctx, const k2a_ir_event_t *ev)
{
    return 0;
}

typedef struct st_frames_t {
    k2a_buf_t bytes;        /* the encoded body */
    k2a_es_frame_t *frames; /* decoded, borrowing from bytes */
    size_t n;
    size_t has_first; /* frames[0] is a different (start) frame */
    size_t total;     /* frames per run */
} frames_t;

/* total frames to run; only `encode` of them are encoded (a parser-only run needs just the ring) */
static void make_frames(frames_t *fs, const char *event_type, const char *payload, size_t total, size_t encode,
                        const char *first_payload)
{
    size_t n = encode;
    fs->total = total + (first_payload != NULL);
    k2a_buf_init(&fs->bytes, 0);
    if (first_payload != NULL)
        k2a_es_encode_event(&fs->bytes, event_type, first_payload, strlen(first_payload));
    for (size_t i = 0; i < n; ++i)
        k2a_es_encode_event(&fs->bytes, event_type, payload, strlen(payload));
    fs->n = n + (first_payload != NULL);
    fs->has_first = first_payload != NULL;
    size_t ndecoded = fs->n < 257 ? fs->n : 257;
    fs->frames = calloc(ndecoded, sizeof(*fs->frames));
    size_t off = 0;
    for (size_t i = 0; i < ndecoded; ++i) {
        intptr_t r = k2a_es_decode_frame(fs->bytes.base + off, fs->bytes.len - off, 0, &fs->frames[i]);
        if (r <= 0) {
            fprintf(stderr, "decode failed\n");
            exit(1);
        }
        off += (size_t)r;
    }
}

static void free_frames(frames_t *fs)
{
    free(fs->frames);
    k2a_buf_dispose(&fs->bytes);
}

static k2a_kiro_resp_config_t bench_cfg(void)
{
    k2a_kiro_resp_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.input_tokens = 100;
    cfg.max_tool_input = (size_t)1 << 40;
    return cfg;
}

/* Frames are handed to the parser from a small ring of decoded frames (as in production, where a frame was just
 * decoded and is hot in the cache); a k2a_es_frame_t is over 1 KiB, so 500 000 of them would measure page faults. */
static void bench_parser(const char *name, const frames_t *fs)
{
    double per[RUNS];
    k2a_kiro_resp_config_t cfg = bench_cfg();
    size_t first = fs->has_first, ring = 256;
    for (int run = 0; run < RUNS; ++run) {
        k2a_kiro_resp_t p;
        if (k2a_kiro_resp_init(&p, &cfg, null_sink, NULL) != 0)
            abort();
        double t0 = now_ns();
        if (first)
            k2a_kiro_resp_on_frame(&p, &fs->frames[0]);
        for (size_t i = first; i < fs->total; ++i)
            k2a_kiro_resp_on_frame(&p, &fs->frames[first + (i % ring)]);
        per[run] = (now_ns() - t0) / (double)fs->total;
        k2a_kiro_resp_dispose(&p);
    }
    report(name, per, 0);
}

static int on_decoded(void *ctx, const k2a_es_frame_t *f)
{
    return k2a_kiro_resp_on_frame(ctx, f);
}

/* decode + parse + SSE for a whole body fed in 16 KiB reads, output buffer reset after every read */
static void bench_full(const char *name, const frames_t *fs)
{
    double per[RUNS];
    k2a_kiro_resp_config_t cfg = bench_cfg();
    for (int run = 0; run < RUNS; ++run) {
        k2a_buf_t out;
        k2a_buf_init(&out, 0);
        k2a_anthropic_sse_t w;
        k2a_anthropic_sse_init(&w, &out, K2A_STRLIT("claude-sonnet-4-20250514"), fixed_random, NULL);
        k2a_kiro_resp_t p;
        if (k2a_kiro_resp_init(&p, &cfg, k2a_anthropic_sse_on_event, &w) != 0)
            abort();
        k2a_es_decoder_t d;
        k2a_es_decoder_init(&d, 0);
        double t0 = now_ns();
        k2a_kiro_resp_start(&p);
        for (size_t off = 0; off < fs->bytes.len; off += 16384) {
            size_t n = fs->bytes.len - off < 16384 ? fs->bytes.len - off : 16384;
            k2a_es_decoder_feed(&d, fs->bytes.base + off, n, on_decoded, &p);
            k2a_buf_reset(&out);
        }
        per[run] = (now_ns() - t0) / (double)fs->n;
        k2a_es_decoder_dispose(&d);
        k2a_kiro_resp_dispose(&p);
        k2a_buf_dispose(&out);
    }
    report(name, per, 0);
}

int main(int argc, char **argv)
{
    /* optional argument: "writer", "parser" or "full" runs one section (for profiling) */
    const char *only = argc > 1 ? argv[1] : NULL;
    /* the parser logs nothing on these paths, but keep warnings off the measurements */
    k2a_log_configure(K2A_LOG_ERROR, K2A_LOG_TEXT, true, NULL);
    const size_t N = 2000000;
    if (only == NULL || strcmp(only, "writer") == 0) {
        printf("## SSE writer, per event (%zu events per run, %d runs)\n", N, RUNS);
        bench_writer("text_delta, 24 B ASCII", K2A_BLOCK_TEXT, "Let me check the weather", N);
        bench_writer("text_delta, 5 CJK chars (15 B)", K2A_BLOCK_TEXT, "我来创建一", N);
        bench_writer(
            "text_delta, 200 B code with quotes/newlines", K2A_BLOCK_TEXT,
            "    if (x == \"a\") {\n        return \"b\";\n    }\n    printf(\"%d\\n\", y);\n    for (int i = 0; i < n; ++i) {\n"
            "        s += \"\\\"\" + t[i] + \"\\\"\";\n    }\n    return s; /* done */\n  ",
            N);
        bench_writer("input_json_delta, 32 B JSON piece", K2A_BLOCK_TOOL_USE, "{\"file_path\":\"/tmp/a.txt\",\"con", N);
    }

    const size_t F = 500000;
    printf("\n## Kiro event parser, per frame (%zu frames per run, sink does nothing)\n", F);
    frames_t text, cjk, tool;
    size_t enc = only != NULL && strcmp(only, "parser") == 0 ? 300 : F;
    make_frames(&text, "assistantResponseEvent", "{\"content\":\"Let me check the weather\"}", F, enc, NULL);
    make_frames(&cjk, "assistantResponseEvent", "{\"content\":\"我来创建一\"}", F, enc, NULL);
    make_frames(
        &tool, "toolUseEvent",
        "{\"name\":\"Write\",\"toolUseId\":\"tooluse_1DCqyICMR-CfTS36UNNiwA\",\"input\":\"{\\\"file_path\\\":\\\"/tmp/a\\\",\"}", F,
        enc, "{\"name\":\"Write\",\"toolUseId\":\"tooluse_1DCqyICMR-CfTS36UNNiwA\"}");
    if (only == NULL || strcmp(only, "parser") == 0) {
        bench_parser("assistantResponseEvent, 24 B text", &text);
        bench_parser("assistantResponseEvent, 5 CJK chars", &cjk);
        bench_parser("toolUseEvent input piece (name+id repeated)", &tool);
    }

    if (only == NULL || strcmp(only, "full") == 0) {
        printf("\n## Whole path per frame: EventStream decode + parse + Anthropic SSE (16 KiB reads)\n");
        bench_full("assistantResponseEvent, 24 B text", &text);
        bench_full("toolUseEvent input piece", &tool);
    }
    free_frames(&text);
    free_frames(&cjk);
    free_frames(&tool);
    return 0;
}
