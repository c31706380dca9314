/*
 * Micro-benchmark of the OpenAI codecs: request decoding (k2a_openai_decode) of three shapes — the real SDK
 * tool follow-up, a 200-turn tool-calling conversation, and a request carrying a 4 MiB base64 image — and the
 * streaming writer (text deltas -> chat.completion.chunk bytes). Prints the best of 7 rounds per case, next to yajl
 * parsing the same body with no-op callbacks (the floor). malloc is tuned as in src/main.c.
 * Usage: bench_openai [seconds per case, default 1]
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_parse.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/errors.h"
#include "convert/openai_req.h"
#include "convert/openai_resp.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int noop0(void *c)
{
    return 1;
}
static int noop1(void *c, int b)
{
    return 1;
}
static int noop2(void *c, const char *s, size_t l)
{
    return 1;
}
static int noop3(void *c, const unsigned char *s, size_t l)
{
    return 1;
}
static const yajl_callbacks noop_callbacks = {noop0, noop1, NULL, NULL, noop2, noop3, noop0, noop3, noop0, noop0, noop0};

/* The machine is shared and noisy: each case runs ROUNDS rounds and reports the fastest (the least disturbed). */
#define ROUNDS 7

static double round_decode(const char *name, const char *body, size_t len, double secs, bool floor)
{
    k2a_arena_t arena;
    k2a_ir_request_t req;
    k2a_convert_error_t err;
    size_t iters = 0;
    double t0 = now(), t;
    do {
        for (int i = 0; i < 8; ++i) {
            if (floor) {
                yajl_handle h = yajl_alloc(&noop_callbacks, NULL, NULL);
                if (yajl_parse(h, (const unsigned char *)body, len) != yajl_status_ok || yajl_complete_parse(h) != yajl_status_ok)
                    exit(1);
                yajl_free(h);
                continue;
            }
            k2a_arena_init(&arena, 0);
            int r = k2a_openai_decode(body, len, NULL, &arena, &req, &err);
            if (r != 0) {
                fprintf(stderr, "%s: %s %s\n", name, k2a_errname(r), err.message);
                exit(1);
            }
            k2a_arena_dispose(&arena);
        }
        iters += 8;
    } while ((t = now() - t0) < secs);
    return t / iters;
}

static void bench_decode(const char *name, const char *body, size_t len, double secs)
{
    const char *only = getenv("BENCH_ONLY");
    if (only != NULL && strstr(name, only) == NULL)
        return;
    double best = 1e9, best_floor = 1e9;
    for (int r = 0; r < ROUNDS; ++r) {
        /* BENCH_NOFLOOR=1 skips the yajl floor (to profile the decoder alone) */
        double d = round_decode(name, body, len, secs / ROUNDS, false),
               f = getenv("BENCH_NOFLOOR") != NULL ? 1e9 : round_decode(name, body, len, secs / ROUNDS, true);
        best = d < best ? d : best;
        best_floor = f < best_floor ? f : best_floor;
    }
    if (best_floor > 1e8)
        printf("decode %-20s %8zu B  %9.1f us  %6.0f MB/s\n", name, len, best * 1e6, len / best / 1e6);
    else
        printf("decode %-20s %8zu B  %9.1f us  %6.0f MB/s   (yajl with no-op callbacks: %9.1f us, %6.0f MB/s)\n", name, len,
               best * 1e6, len / best / 1e6, best_floor * 1e6, len / best_floor / 1e6);
}

static void bench_stream(double secs)
{
    const char *only = getenv("BENCH_ONLY");
    if (only != NULL && strstr("stream", only) == NULL)
        return;
    k2a_buf_t out;
    k2a_openai_stream_t w;
    k2a_ir_event_t ev;
    k2a_buf_init(&out, 0);
    if (k2a_openai_stream_init(&w, &out, "chatcmpl-bench00000000000000000", 1700000000, k2a_cstr("claude-sonnet-4-5"), true) != 0)
        abort();
    memset(&ev, 0, sizeof(ev));
    ev.type = K2A_EV_DELTA;
    ev.block = K2A_BLOCK_TEXT;
    ev.text = k2a_cstr("The quick brown fox jumps over the \"lazy\" dog.\n");
    double best = 1e9;
    size_t chunk = 0;
    for (int r = 0; r < ROUNDS; ++r) {
        size_t iters = 0;
        double t0 = now(), t;
        do {
            for (int i = 0; i < 1024; ++i) {
                k2a_openai_stream_on_event(&w, &ev);
                chunk = out.len;
                k2a_buf_reset(&out);
            }
            iters += 1024;
        } while ((t = now() - t0) < secs / ROUNDS);
        best = t / iters < best ? t / iters : best;
    }
    printf("stream text delta %zu B -> %zu B chunk  %6.1f ns/event  %6.0f MB/s written\n", ev.text.len, chunk, best * 1e9,
           chunk / best / 1e6);
    k2a_openai_stream_dispose(&w);
    k2a_buf_dispose(&out);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    /* as src/main.c does: freed request memory stays in the process */
    mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
    mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    k2a_buf_t b;

    const char *sdk =
        "{\"model\":\"gpt-4o-mini\",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"
        "\"Get weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"location\":{\"type\":\"string\"}},"
        "\"required\":[\"location\"]}}}],\"messages\":[{\"role\":\"user\",\"content\":\"What is the weather in Paris?\"},"
        "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[{\"id\":\"call_W00a6G0HUz9g6oqZ2DY7BBF8\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"location\\\":\\\"Paris\\\"}\"}}],"
        "\"parsed\":null},{\"role\":\"tool\",\"tool_call_id\":\"call_W00a6G0HUz9g6oqZ2DY7BBF8\",\"content\":\"18C sunny\"}]}";
    bench_decode("sdk-tool-7", sdk, strlen(sdk), secs);

    k2a_buf_init(&b, 0);
    k2a_buf_appendstr(&b, "{\"model\":\"claude-sonnet-4-5\",\"stream\":true,\"tools\":[");
    for (int i = 0; i < 20; ++i)
        k2a_buf_appendf(&b,
                        "%s{\"type\":\"function\",\"function\":{\"name\":\"tool_%d\",\"description\":\"Does thing %d with care.\","
                        "\"parameters\":{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},\"n\":{\"type\":"
                        "\"integer\"}},\"required\":[\"path\"]}}}",
                        i == 0 ? "" : ",", i, i);
    k2a_buf_appendstr(&b, "],\"messages\":[{\"role\":\"system\",\"content\":\"You are a coding agent.\"}");
    for (int i = 0; i < 200; ++i)
        k2a_buf_appendf(&b,
                        ",{\"role\":\"user\",\"content\":\"Step %d: read the file and explain it in detail, please.\"},"
                        "{\"role\":\"assistant\",\"content\":\"Reading it now.\",\"tool_calls\":[{\"id\":\"call_%d\",\"type\":"
                        "\"function\",\"function\":{\"name\":\"tool_%d\",\"arguments\":\"{\\\"path\\\":\\\"src/file_%d.c\\\","
                        "\\\"n\\\":%d}\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"call_%d\",\"content\":\"int main(void) { "
                        "return %d; }\\n/* a comment line that makes the result longer */\"}",
                        i, i, i % 20, i, i, i, i);
    k2a_buf_appendstr(&b, ",{\"role\":\"user\",\"content\":\"Summarise.\"}]}");
    bench_decode("200-turn tool chat", b.base, b.len, secs);

    k2a_buf_reset(&b);
    k2a_buf_appendstr(&b,
                      "{\"model\":\"claude-sonnet-4-5\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                      "\"Describe.\"},{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,");
    for (size_t i = 0; i < (4u << 20) / 64; ++i)
        k2a_buf_appendstr(&b, "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD");
    k2a_buf_appendstr(&b, "\"}}]}]}");
    bench_decode("4 MiB image", b.base, b.len, secs);
    k2a_buf_dispose(&b);

    bench_stream(secs);
    return 0;
}
