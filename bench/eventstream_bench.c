/*
 * EventStream decoder throughput on one core: streams of small frames (assistantResponseEvent with a
 * ~100-byte payload), 64 KiB frames and 1 MiB frames, fed whole and in 16 KiB pieces (a socket read).
 * Prints MB/s (10^6 bytes) of frame bytes decoded, best of several runs, plus zlib crc32's own speed
 * over the same frames, called as the decoder calls it (the ceiling: every byte is CRC-checked once).
 * Usage: bench_eventstream [seconds-per-measurement, default 0.5]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    *(size_t *)ctx += f->payload_len + (size_t)(unsigned char)f->payload[0];
    return 0;
}

static void build(k2a_buf_t *out, size_t payload_len, size_t stream_len)
{
    char *payload = malloc(payload_len);
    /* JSON-looking text, like {"content":"..."} */
    memcpy(payload, "{\"content\":\"", 12);
    for (size_t i = 12; i < payload_len - 2; ++i)
        payload[i] = "abcdefghij klmnopqrstuvwxyz"[i % 27];
    memcpy(payload + payload_len - 2, "\"}", 2);
    while (out->len < stream_len)
        if (k2a_es_encode_event(out, "assistantResponseEvent", payload, payload_len) != 0)
            abort();
    free(payload);
}

/* Decodes the stream once, in pieces of `chunk` bytes (0: whole). Returns elapsed seconds. */
static double decode_once(const k2a_buf_t *s, size_t chunk, size_t *sink, uint64_t *frames)
{
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    double t0 = now();
    size_t step = chunk == 0 ? s->len : chunk;
    for (size_t off = 0; off < s->len; off += step) {
        size_t n = s->len - off < step ? s->len - off : step;
        if (k2a_es_decoder_feed(&d, s->base + off, n, on_frame, sink) != 0)
            abort();
    }
    double t = now() - t0;
    if (k2a_es_decoder_finish(&d) != 0 || d.bytes != s->len)
        abort();
    *frames = d.frames;
    k2a_es_decoder_dispose(&d);
    return t;
}

static double measure(const k2a_buf_t *s, size_t chunk, double budget, size_t *sink, double *frames_per_s)
{
    double best = 1e9, spent = 0;
    uint64_t frames = 0;
    for (int i = 0; spent < budget || i < 3; ++i) {
        double t = decode_once(s, chunk, sink, &frames);
        spent += t;
        if (t < best)
            best = t;
    }
    *frames_per_s = frames / best;
    return s->len / best / 1e6;
}

/* zlib crc32 alone, called as the decoder calls it: per frame, bytes [0,8) then [8,total-4). */
static double measure_crc(const k2a_buf_t *s, double budget, size_t *sink)
{
    double best = 1e9, spent = 0;
    for (int i = 0; spent < budget || i < 3; ++i) {
        double t0 = now();
        for (size_t off = 0; off < s->len;) {
            const unsigned char *p = (const unsigned char *)s->base + off;
            uint32_t total = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
            uLong c = crc32_z(0, p, 8);
            *sink += crc32_z(c, p + 8, total - 12);
            off += total;
        }
        double t = now() - t0;
        spent += t;
        if (t < best)
            best = t;
    }
    return s->len / best / 1e6;
}

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 0.5;
    static const struct {
        const char *name;
        size_t payload, stream;
    } cases[] = {
        {"small (100 B payload, 192 B frame)", 100, 16 << 20},
        {"64 KiB payload", 64 << 10, 64 << 20},
        {"1 MiB payload", 1 << 20, 64 << 20},
    };
    size_t sink = 0;
    printf("zlib %s, %.2f s per measurement, best run reported; MB = 10^6 bytes\n\n", zlibVersion(), budget);
    printf("| frames | stream | fed whole MB/s | 16 KiB reads MB/s | frames/s (16 KiB reads) | zlib crc32 alone (same calls) MB/s "
           "|\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        k2a_buf_t s = K2A_BUF_INIT(0);
        build(&s, cases[i].payload, cases[i].stream);
        double fps_whole, fps_chunk;
        double whole = measure(&s, 0, budget, &sink, &fps_whole);
        double chunked = measure(&s, 16384, budget, &sink, &fps_chunk);
        double crc = measure_crc(&s, budget, &sink);
        printf("| %s | %.1f MiB | %.0f | %.0f | %.3g | %.0f |\n", cases[i].name, s.len / 1048576.0, whole, chunked, fps_chunk, crc);
        fflush(stdout);
        k2a_buf_dispose(&s);
    }
    fprintf(stderr, "(sink %zu)\n", sink);
    return 0;
}
