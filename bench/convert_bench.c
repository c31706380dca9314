/*
 * Request conversion benchmark: decode (yajl SAX → IR) + normalize + encode (yajl_gen → Kiro body) of a
 * ~300 KB Claude-Code-like request, on one core. The request is the real Claude Code body of
 * tests/vectors/convert/client-cc-sonnet45-json-2.in.json (system prompt, 24 tools, thinking) with tool-loop
 * history turns (user text, Bash tool_use, tool_result output, assistant text) inserted before its user message;
 * the turn text is cut from the fixture's own prompt text, so the escape density is Claude Code's.
 * Prints p50/p99/mean of the whole conversion and of each stage.
 *
 *   bench_convert [iterations] [target_kb] [real|heavy] [default|tuned]
 *     defaults 3000, 300, real, default. "heavy": code-like text with 3 escapes per 66 bytes instead of Claude
 *     Code's own prompt text. "tuned": mallopt() so that freed arena chunks stay in the heap (no trim/refault).
 */
#include <malloc.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/errors.h"
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n)
        exit(1);
    fclose(f);
    b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static void append(char **p, const char *s)
{
    size_t n = strlen(s);
    memcpy(*p, s, n);
    *p += n;
}

/* The longest JSON string literal of the fixture (its raw, escaped text): the source of realistic turn text. */
static void longest_string(const char *s, const char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    for (const char *p = s; (p = strchr(p, '"')) != NULL;) {
        const char *q = p + 1;
        while (*q != '\0' && *q != '"')
            q += *q == '\\' ? 2 : 1;
        if ((size_t)(q - p - 1) > *outlen) {
            *out = p + 1;
            *outlen = (size_t)(q - p - 1);
        }
        p = *q != '\0' ? q + 1 : q;
    }
}

/* Appends about `bytes` of text: real Claude Code prompt text (escape density as sent), cut before a backslash so
 * that no escape sequence is split; or, for the "heavy" variant, a code-like line with 3 escapes per 66 bytes. */
static size_t src_off;
static void filler(char **p, const char *src, size_t srclen, bool heavy, const char *prefix, int i, size_t bytes)
{
    *p += sprintf(*p, "%s %d: ", prefix, i);
    if (heavy) {
        static const char line[] = "    if (x->len > max) { return \\\"too big\\\"; } // check the limit\\n";
        size_t l = sizeof(line) - 1;
        for (size_t n = 0; n + l <= bytes; n += l) {
            memcpy(*p, line, l);
            *p += l;
        }
        return;
    }
    size_t done = 0;
    while (done < bytes) {
        if (src_off >= srclen)
            src_off = 0;
        size_t n = bytes - done < srclen - src_off ? bytes - done : srclen - src_off;
        size_t end = src_off + n;
        while (end < srclen && end > src_off && (src[end - 1] == '\\' || src[end] != '\\'))
            ++end; /* extend to just before the next escape */
        memcpy(*p, src + src_off, end - src_off);
        *p += end - src_off;
        done += end - src_off;
        src_off = end;
    }
}

static char *build_body(const char *base, size_t baselen, size_t target, bool heavy, size_t *outlen)
{
    const char *m = strstr(base, "\"messages\":[");
    if (m == NULL)
        exit(1);
    m += strlen("\"messages\":[");
    const char *src;
    size_t srclen;
    longest_string(base, &src, &srclen);
    char *body = malloc(target + baselen + 65536), *p = body;
    memcpy(p, base, (size_t)(m - base));
    p += m - base;
    for (int i = 0; (size_t)(p - body) + baselen < target; ++i) {
        append(&p, "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"");
        filler(&p, src, srclen, heavy, "Please look at part", i, 600);
        append(&p, "\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"I'll inspect it.\"},");
        p += sprintf(p,
                     "{\"type\":\"tool_use\",\"id\":\"toolu_bench%06d\",\"name\":\"Bash\",\"input\":{\"command\":\"sed -n 1,80p "
                     "src/file%d.c\",\"description\":\"Show the file\"}}]},",
                     i, i);
        p += sprintf(
            p, "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_bench%06d\",\"content\":\"", i);
        filler(&p, src, srclen, heavy, "output", i, 2400);
        append(&p, "\",\"is_error\":false}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"");
        filler(&p, src, srclen, heavy, "The file does", i, 400);
        append(&p, "\"}]},");
    }
    size_t rest = baselen - (size_t)(m - base);
    memcpy(p, m, rest);
    p += rest;
    *p = '\0';
    *outlen = (size_t)(p - body);
    return body;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *v, int n)
{
    double sum = 0;
    for (int i = 0; i < n; ++i)
        sum += v[i];
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    printf("%-22s p50 %8.1f us   p99 %8.1f us   mean %8.1f us   min %8.1f us\n", what, v[n / 2], v[(int)(n * 0.99)], sum / n, v[0]);
}

static void on_random(void *ctx, void *buf, size_t len)
{
    memset(buf, 0x42, len);
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 3000;
    size_t target = (argc > 2 ? (size_t)atoi(argv[2]) : 300) * 1024;
    bool heavy = argc > 3 && strcmp(argv[3], "heavy") == 0;
    bool tuned = argc > 4 && strcmp(argv[4], "tuned") == 0;
    if (tuned) {
        /* what a server would set once at start-up: keep freed arena chunks in the heap instead of returning them to
         * the kernel after every request (glibc trims the heap top on free and faults the pages back in next time) */
        mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
        mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
        mallopt(M_TOP_PAD, 16 * 1024 * 1024);
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof(set), &set); /* one core */

    size_t baselen, len;
    char *base = read_file(K2A_SOURCE_DIR "/tests/vectors/convert/client-cc-sonnet45-json-2.in.json", &baselen);
    if (base == NULL) {
        fprintf(stderr, "cannot read the Claude Code fixture\n");
        return 1;
    }
    char *body = build_body(base, baselen, target, heavy, &len);
    if (getenv("K2A_BENCH_DUMP") != NULL) { /* write the request for other tools (yajl alone, perf) */
        FILE *f = fopen(getenv("K2A_BENCH_DUMP"), "wb");
        if (f != NULL) {
            fwrite(body, 1, len, f);
            fclose(f);
        }
    }

    k2a_model_map_t *map;
    k2a_convert_error_t err;
    if (k2a_model_map_create(NULL, 0, &map, &err) != 0)
        return 1;
    k2a_kiro_build_params_t params;
    k2a_kiro_build_params_init(&params, map);
    params.random = on_random;
    params.client_ip = K2A_STRLIT("127.0.0.1");
    params.user_agent = K2A_STRLIT("claude-cli/2.1.332 (external, sdk-cli)");
    k2a_buf_t out;
    k2a_buf_init(&out, 64 * 1024 * 1024);

    double *total = malloc(sizeof(double) * (size_t)iters), *dec = malloc(sizeof(double) * (size_t)iters),
           *bld = malloc(sizeof(double) * (size_t)iters);
    size_t nmsg = 0, outlen = 0, arena_bytes = 0;
    for (int i = -200; i < iters; ++i) { /* 200 warm-up rounds */
        k2a_arena_t arena;
        k2a_arena_init(&arena, 0);
        k2a_ir_request_t req;
        k2a_kiro_build_result_t res;
        double t0 = now_us();
        if (k2a_anthropic_decode(body, len, NULL, &arena, &req, &err) != 0) {
            fprintf(stderr, "decode: %s\n", err.message);
            return 1;
        }
        double t1 = now_us();
        if (k2a_kiro_build_request(&req, &params, &arena, &out, &res, &err) != 0) {
            fprintf(stderr, "build: %s\n", err.message);
            return 1;
        }
        double t2 = now_us();
        nmsg = req.nmessages;
        outlen = out.len;
        arena_bytes = arena.total;
        k2a_arena_dispose(&arena);
        if (i >= 0) {
            total[i] = t2 - t0;
            dec[i] = t1 - t0;
            bld[i] = t2 - t1;
        }
    }
    size_t nesc = 0;
    for (size_t i = 0; i < len; ++i)
        nesc += body[i] == '\\';
    printf("request: %zu bytes (%s text, %.1f backslashes/KB), %zu messages; Kiro body: %zu bytes; arena: %zu bytes; %d "
           "iterations on CPU 0, %s malloc\n",
           len, heavy ? "escape-heavy" : "Claude Code", nesc * 1024.0 / len, nmsg, outlen, arena_bytes, iters,
           tuned ? "tuned" : "default");
    report("decode", dec, iters);
    report("normalize+encode", bld, iters);
    report("total", total, iters);
    double p50 = total[iters / 2];
    printf("throughput at p50: %.0f MB/s of request body\n", len / p50);
    free(total);
    free(dec);
    free(bld);
    k2a_buf_dispose(&out);
    k2a_model_map_destroy(map);
    free(body);
    free(base);
    return 0;
}
