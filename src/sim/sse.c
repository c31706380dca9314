/*
 * kiro-sim's /sim/sse: a finished Anthropic Messages SSE answer, for the benchmark's pure-proxy baseline (nginx in
 * front of it translates nothing). `GET|POST /sim/sse?frames=N&size=S` answers the same event sequence the gateway
 * sends for a Kiro reply of N text frames of S bytes ([[sim:text frames=N size=S]]): message_start, ping,
 * content_block_start, N text deltas, content_block_stop, message_delta, message_stop. The body is built once per
 * request in the request's pool and sent chunked in N writes, one per text frame, the way the gateway forwards one
 * Kiro frame per write: the first carries the opening events, the last the closing ones. `&writes=1` sends the whole
 * answer in one write instead, as a gateway does that got kiro-sim's whole reply (no pacing directive) in one read.
 * The request body is ignored.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sim/internal.h"

#define SSE_MAX_FRAMES 100000u
#define SSE_MAX_SIZE 65536u
#define SSE_PHRASE "lorem ipsum dolor sit amet, consectetur adipiscing elit. "

typedef struct st_sse_gen_t {
    h2o_generator_t super;
    h2o_iovec_t *pieces;
    size_t npieces, next;
} sse_gen_t;

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    sse_gen_t *g = (sse_gen_t *)gen;
    size_t i = g->next++;
    h2o_send(req, &g->pieces[i], 1, i + 1 == g->npieces ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    /* everything lives in the request's pool */
}

/* The value of name=digits in the query string, def when absent; -1 when malformed or above max. */
static long query_uint(h2o_req_t *req, const char *name, long def, long max)
{
    if (req->query_at == SIZE_MAX)
        return def;
    const char *q = req->path.base + req->query_at + 1, *end = req->path.base + req->path.len;
    size_t nlen = strlen(name);
    while (q < end) {
        const char *amp = memchr(q, '&', end - q);
        const char *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - q) > nlen && memcmp(q, name, nlen) == 0 && q[nlen] == '=') {
            long v = 0;
            const char *p = q + nlen + 1;
            if (p == stop)
                return -1;
            for (; p < stop; ++p) {
                if (*p < '0' || *p > '9' || (v = v * 10 + (*p - '0')) > max)
                    return -1;
            }
            return v;
        }
        q = stop + 1;
    }
    return def;
}

int k2a_sim_handle_sse(k2a_sim_server_t *srv, h2o_req_t *req)
{
    static const char phrase[] = SSE_PHRASE;
    const size_t plen = sizeof(phrase) - 1;
    long frames = query_uint(req, "frames", 20, SSE_MAX_FRAMES), size = query_uint(req, "size", 16, SSE_MAX_SIZE);
    long writes = query_uint(req, "writes", 0, 1);
    if (frames < 1 || size < 1 || writes < 0) {
        static const char bad[] =
            "{\"message\":\"/sim/sse: frames must be 1..100000, size 1..65536 and writes 0 or 1\",\"reason\":null}";
        k2a_sim_respond_json(srv, req, 400, bad, sizeof(bad) - 1, 0);
        return 0;
    }
    char id[25];
    uint64_t seq = ++srv->request_seq;
    for (int i = 0; i < 24; ++i, seq = seq * 6364136223846793005ULL + 1442695040888963407ULL)
        id[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"[(seq >> 33) % 62];
    id[24] = '\0';

    static const char delta_head[] =
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
        "\"text\":\"";
    static const char delta_tail[] = "\"}}\n\n";
    char head[600], tail[600];
    int hlen =
        snprintf(head, sizeof(head),
                 "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_%s\",\"type\":\"message\","
                 "\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[],\"stop_reason\":null,"
                 "\"stop_sequence\":null,\"usage\":{\"input_tokens\":478,\"cache_creation_input_tokens\":0,"
                 "\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n"
                 "event: ping\ndata: {\"type\":\"ping\"}\n\n"
                 "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,"
                 "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
                 id);
    int tlen = snprintf(tail, sizeof(tail),
                        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
                        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                        "\"stop_sequence\":null},\"usage\":{\"input_tokens\":478,\"cache_creation_input_tokens\":0,"
                        "\"cache_read_input_tokens\":0,\"output_tokens\":%ld}}\n\n"
                        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
                        (frames * size + 3) / 4);
    size_t delta_len = sizeof(delta_head) - 1 + (size_t)size + sizeof(delta_tail) - 1;
    size_t total = (size_t)hlen + (size_t)tlen + (size_t)frames * delta_len;

    sse_gen_t *g = h2o_mem_alloc_pool(&req->pool, sizeof(*g));
    char *body = h2o_mem_alloc_pool(&req->pool, total);
    g->super.proceed = on_proceed;
    g->super.stop = on_stop;
    g->pieces = h2o_mem_alloc_pool(&req->pool, sizeof(h2o_iovec_t) * (size_t)frames);
    g->npieces = (size_t)frames;
    g->next = 0;
    char *p = body;
    memcpy(p, head, (size_t)hlen);
    p += hlen;
    for (long f = 0; f < frames; ++f) {
        char *start = f == 0 ? body : p;
        memcpy(p, delta_head, sizeof(delta_head) - 1);
        p += sizeof(delta_head) - 1;
        uint64_t base = (uint64_t)f * (uint64_t)size;
        for (long j = 0; j < size; ++j)
            *p++ = phrase[(base + (uint64_t)j) % plen];
        memcpy(p, delta_tail, sizeof(delta_tail) - 1);
        p += sizeof(delta_tail) - 1;
        if (f + 1 == frames) {
            memcpy(p, tail, (size_t)tlen);
            p += tlen;
        }
        g->pieces[f] = h2o_iovec_init(start, (size_t)(p - start));
    }
    if (writes == 1) {
        g->pieces[0] = h2o_iovec_init(body, (size_t)(p - body));
        g->npieces = 1;
    }

    req->res.status = 200;
    req->res.reason = "OK";
    k2a_sim_add_common_headers(srv, req, "text/event-stream; charset=utf-8");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    h2o_start_response(req, &g->super);
    on_proceed(&g->super, req);
    return 0;
}
