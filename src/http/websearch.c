/*
 * The web search flow of an Anthropic request (see websearch.h): query, MCP call, parse, the IR rewritten with the
 * results, and the client-facing blocks rendered once for both the streaming and the aggregated answer.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "convert/web_search.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "http/server.h"
#include "http/websearch.h"
#include "pool/mcp.h"

static void random_bytes(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    unsigned char *p = buf;
    while (len > 0) {
        uint64_t v = k2a_rand_u64();
        size_t n = len < 8 ? len : 8;
        memcpy(p, &v, n);
        p += n;
        len -= n;
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends one SSE event: "event: <type>\ndata: <json>\n\n". */
static int sse_event(k2a_buf_t *out, const char *type, const char *json, size_t len)
{
    int r;
    if ((r = k2a_buf_appendf(out, "event: %s\ndata: ", type)) != 0 || (r = k2a_buf_append(out, json, len)) != 0)
        return r;
    return k2a_buf_appendstr(out, "\n\n");
}

/* Renders the three blocks (text, server_tool_use, web_search_tool_result) into ws->sse and ws->content. */
static int render(k2a_websearch_t *ws, k2a_str_t query, const k2a_ws_results_t *res, const char *tool_id)
{
    k2a_buf_t text = K2A_BUF_INIT(0), input = K2A_BUF_INIT(0), results = K2A_BUF_INIT(0), tmp = K2A_BUF_INIT(0);
    int r;
    if ((r = k2a_buf_appendstr(&text, "I'll search for \"")) != 0 || (r = k2a_buf_append(&text, query.base, query.len)) != 0 ||
        (r = k2a_buf_appendstr(&text, "\".")) != 0)
        goto Exit;
    if ((r = k2a_buf_appendstr(&input, "{\"query\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(&input, query.base, query.len)) != 0 || (r = k2a_buf_appendstr(&input, "\"}")) != 0)
        goto Exit;
    if ((r = k2a_ws_results_json(&results, res)) != 0)
        goto Exit;
    /* non-stream content */
    if ((r = k2a_buf_appendstr(&ws->content, "{\"type\":\"text\",\"text\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(&ws->content, text.base, text.len)) != 0 ||
        (r = k2a_buf_appendf(&ws->content,
                             "\"},{\"type\":\"server_tool_use\",\"id\":\"%s\",\"name\":\"web_search\",\"input\":", tool_id)) != 0 ||
        (r = k2a_buf_append(&ws->content, input.base, input.len)) != 0 ||
        (r = k2a_buf_appendf(&ws->content,
                             "},{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"%s\",\"content\":", tool_id)) != 0 ||
        (r = k2a_buf_append(&ws->content, results.base, results.len)) != 0 || (r = k2a_buf_appendstr(&ws->content, "}")) != 0)
        goto Exit;
        /* the stream: index 0 text, 1 server_tool_use, 2 web_search_tool_result */
#define EV(type)                                                                                                                   \
    do {                                                                                                                           \
        if (r == 0)                                                                                                                \
            r = sse_event(&ws->sse, type, tmp.base, tmp.len);                                                                      \
        k2a_buf_reset(&tmp);                                                                                                       \
    } while (0)
    r = k2a_buf_appendstr(&tmp,
                          "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}");
    EV("content_block_start");
    if (r == 0 &&
        (r = k2a_buf_appendstr(
             &tmp, "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"")) == 0 &&
        (r = k2a_buf_append_json_escaped(&tmp, text.base, text.len)) == 0)
        r = k2a_buf_appendstr(&tmp, "\"}}");
    EV("content_block_delta");
    if (r == 0)
        r = k2a_buf_appendstr(&tmp, "{\"type\":\"content_block_stop\",\"index\":0}");
    EV("content_block_stop");
    if (r == 0 &&
        (r = k2a_buf_appendf(
             &tmp,
             "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"server_tool_use\",\"id\":\"%s\","
             "\"name\":\"web_search\",\"input\":",
             tool_id)) == 0 &&
        (r = k2a_buf_append(&tmp, input.base, input.len)) == 0)
        r = k2a_buf_appendstr(&tmp, "}}");
    EV("content_block_start");
    if (r == 0)
        r = k2a_buf_appendstr(&tmp, "{\"type\":\"content_block_stop\",\"index\":1}");
    EV("content_block_stop");
    if (r == 0 &&
        (r = k2a_buf_appendf(&tmp,
                             "{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"web_search_tool_result\","
                             "\"tool_use_id\":\"%s\",\"content\":",
                             tool_id)) == 0 &&
        (r = k2a_buf_append(&tmp, results.base, results.len)) == 0)
        r = k2a_buf_appendstr(&tmp, "}}");
    EV("content_block_start");
    if (r == 0)
        r = k2a_buf_appendstr(&tmp, "{\"type\":\"content_block_stop\",\"index\":2}");
    EV("content_block_stop");
#undef EV
    ws->index_offset = 3;
Exit:
    k2a_buf_dispose(&text);
    k2a_buf_dispose(&input);
    k2a_buf_dispose(&results);
    k2a_buf_dispose(&tmp);
    return r;
}

/* Appends a text block to the last user message (the results the model reads). */
static int add_context(k2a_arena_t *arena, k2a_ir_request_t *ir, const char *text, size_t len)
{
    char *copy = k2a_arena_strndup(arena, text, len);
    if (copy == NULL)
        return K2A_ENOMEM;
    for (size_t i = ir->nmessages; i-- > 0;) {
        k2a_ir_message_t *m = &ir->messages[i];
        if (m->role != K2A_ROLE_USER)
            continue;
        k2a_ir_block_t *b = k2a_arena_calloc(arena, (m->nblocks + 1) * sizeof(*b));
        if (b == NULL)
            return K2A_ENOMEM;
        if (m->nblocks != 0)
            memcpy(b, m->blocks, m->nblocks * sizeof(*b));
        b[m->nblocks].kind = K2A_BLOCK_TEXT;
        b[m->nblocks].text = k2a_str(copy, len);
        m->blocks = b;
        ++m->nblocks;
        return 0;
    }
    return K2A_EINVAL;
}

k2a_websearch_t *k2a_websearch_prepare(k2a_call_t *call, k2a_ir_request_t *ir)
{
    if (!ir->web_search.requested || ir->ntools != 0 || ir->dialect != K2A_DIALECT_ANTHROPIC)
        return NULL;
    k2a_str_t query = k2a_ws_query_from_ir(ir);
    if (query.base == NULL)
        return NULL; /* nothing to search for: an ordinary answer */
    k2a_server_t *s = call->server;
    k2a_websearch_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    k2a_buf_init(&ws->sse, 0);
    k2a_buf_init(&ws->content, 0);
    k2a_ws_results_t *res = k2a_arena_calloc(&call->arena, sizeof(*res));
    k2a_buf_t rpc = K2A_BUF_INIT(0), answer = K2A_BUF_INIT(K2A_MCP_BODY_MAX), ctx = K2A_BUF_INIT(0);
    char failure[160] = "", tool_id[K2A_WS_ID_LEN + 1];
    k2a_ws_tool_id(tool_id, random_bytes, NULL);
    int r = res != NULL ? 0 : K2A_ENOMEM;
    if (r == 0)
        r = k2a_ws_rpc_body(&rpc, query, wall_ms(), random_bytes, NULL);
    K2A_LOG(K2A_LOG_DEBUG, call->request_id, "web search: query \"%.*s\"", (int)query.len, query.base);
    if (r == 0) {
        k2a_mcp_outcome_t oc;
        ws->requests = 1;
        int e = k2a_mcp_call(s->pool, s->upstream, call->request_id, rpc.base, rpc.len, (uint32_t)s->config->web_search_timeout_ms,
                             &answer, &oc);
        if (e != 0) {
            snprintf(failure, sizeof(failure), "%s", k2a_strerror(e));
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search failed (%s): %s", k2a_errname(e), oc.message);
        } else if ((e = k2a_ws_parse(answer.base, answer.len, &call->arena, res, failure, sizeof(failure))) != 0) {
            res->n = 0;
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search failed (%s): %s", k2a_errname(e), failure);
        } else {
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search: %zu results", res->n);
        }
    }
    if (r == 0)
        r = k2a_ws_context_text(&ctx, query, res, failure);
    if (r == 0)
        r = add_context(&call->arena, ir, ctx.base, ctx.len);
    if (r == 0)
        r = render(ws, query, res, tool_id);
    k2a_buf_dispose(&rpc);
    k2a_buf_dispose(&answer);
    k2a_buf_dispose(&ctx);
    if (r != 0) {
        K2A_LOG(K2A_LOG_WARN, call->request_id, "web search: %s", k2a_strerror(r));
        k2a_websearch_dispose(ws);
        return NULL;
    }
    return ws;
}

void k2a_websearch_dispose(k2a_websearch_t *ws)
{
    if (ws == NULL)
        return;
    k2a_buf_dispose(&ws->sse);
    k2a_buf_dispose(&ws->content);
    free(ws);
}
