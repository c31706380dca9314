/*
 * The web search flow (see websearch.h): query, MCP call, parse, the IR rewritten with the results, and the
 * SEARCH_START / SEARCH_RESULT events the dialect's writer renders.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>
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

/* Runs one search: res filled (possibly empty), failure set when it failed. Returns 0 or K2A_ENOMEM. */
static int run_search(k2a_call_t *call, k2a_str_t query, k2a_ws_results_t *res, char *failure, size_t failsz)
{
    k2a_server_t *s = call->server;
    k2a_buf_t rpc = K2A_BUF_INIT(0), answer = K2A_BUF_INIT(K2A_MCP_BODY_MAX);
    res->n = 0;
    failure[0] = '\0';
    int r = k2a_ws_rpc_body(&rpc, query, wall_ms(), random_bytes, NULL);
    K2A_LOG(K2A_LOG_DEBUG, call->request_id, "web search: query \"%.*s\"", (int)query.len, query.base);
    if (r == 0) {
        k2a_mcp_outcome_t oc;
        int e = k2a_mcp_call(s->pool, s->upstream, call->request_id, rpc.base, rpc.len, (uint32_t)s->config->web_search_timeout_ms,
                             &answer, &oc);
        if (e != 0) {
            snprintf(failure, failsz, "%s", k2a_strerror(e));
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search failed (%s): %s", k2a_errname(e), oc.message);
        } else if ((e = k2a_ws_parse(answer.base, answer.len, &call->arena, res, failure, failsz)) != 0) {
            res->n = 0;
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search failed (%s): %s", k2a_errname(e), failure);
            if (e == K2A_ENOMEM)
                r = e;
        } else {
            K2A_LOG(K2A_LOG_INFO, call->request_id, "web search: %zu results", res->n);
        }
    }
    k2a_buf_dispose(&rpc);
    k2a_buf_dispose(&answer);
    return r;
}

static k2a_websearch_t *ws_new(void)
{
    k2a_websearch_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return NULL;
    k2a_buf_init(&ws->search_input, 64 * 1024);
    k2a_buf_init(&ws->turn_text, 4 * 1024 * 1024);
    ws->search_index = -1;
    return ws;
}

/* Mixed tool sets: the search is declared to Kiro as a plain tool; the loop runs in k2a_websearch_next_turn. */
static k2a_websearch_t *prepare_mixed(k2a_call_t *call, k2a_ir_request_t *ir)
{
    k2a_ir_tool_t *tools = k2a_arena_calloc(&call->arena, (ir->ntools + 1) * sizeof(*tools));
    k2a_websearch_t *ws = tools != NULL ? ws_new() : NULL;
    if (ws == NULL)
        return NULL;
    if (ir->ntools != 0)
        memcpy(tools, ir->tools, ir->ntools * sizeof(*tools));
    k2a_ir_tool_t *t = &tools[ir->ntools];
    t->name = K2A_STRLIT(K2A_WS_KIRO_TOOL);
    t->description = K2A_STRLIT("Search the web for current information. Returns the title, URL, date and a snippet of each "
                                "result. Use it when the answer needs information that is recent or not in your knowledge.");
    t->input_schema = K2A_STRLIT("{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\",\"description\":"
                                 "\"The search query\"}},\"required\":[\"query\"]}");
    ir->tools = tools;
    ++ir->ntools;
    if (ir->tool_choice == K2A_TOOL_CHOICE_TOOL && k2a_str_eq(ir->tool_choice_name, K2A_STRLIT("web_search")))
        ir->tool_choice_name = t->name; /* "use web_search" names the declared tool */
    ws->mixed = true;
    ws->max_uses = ir->web_search.max_uses > 0 ? ir->web_search.max_uses : K2A_WS_DEFAULT_MAX_USES;
    return ws;
}

k2a_websearch_t *k2a_websearch_prepare(k2a_call_t *call, k2a_ir_request_t *ir)
{
    if (!ir->web_search.requested)
        return NULL;
    if (ir->ntools != 0 || ir->web_search.as_tool)
        return prepare_mixed(call, ir);
    k2a_str_t query = k2a_ws_query_from_ir(ir);
    if (query.base == NULL)
        return NULL; /* nothing to search for: an ordinary answer */
    k2a_websearch_t *ws = ws_new();
    if (ws == NULL)
        return NULL;
    k2a_ws_results_t *res = k2a_arena_calloc(&call->arena, sizeof(*res));
    k2a_buf_t ctx = K2A_BUF_INIT(0);
    k2a_ws_tool_id(ws->tool_id, random_bytes, NULL);
    ws->query = query;
    ws->results = res;
    int r = res != NULL ? 0 : K2A_ENOMEM;
    if (r == 0) {
        ws->requests = 1;
        r = run_search(call, query, res, ws->failure, sizeof(ws->failure));
    }
    if (r == 0)
        r = k2a_ws_context_text(&ctx, query, res, ws->failure);
    if (r == 0)
        r = add_context(&call->arena, ir, ctx.base, ctx.len);
    ws->index_offset = 3; /* an Anthropic answer's announcing text, server_tool_use and web_search_tool_result */
    k2a_buf_dispose(&ctx);
    if (r != 0) {
        K2A_LOG(K2A_LOG_WARN, call->request_id, "web search: %s", k2a_strerror(r));
        k2a_websearch_dispose(ws);
        return NULL;
    }
    return ws;
}

/* Sends one search's two events: its start, then its outcome. */
static int emit_search(k2a_ir_event_cb forward, void *ctx, int at, const char *tool_id, k2a_str_t query,
                       const k2a_ws_results_t *res, const char *failure, bool over, bool announce)
{
    k2a_ir_search_t search = {.results = over ? NULL : res, .failure = failure, .over = over, .announce = announce};
    k2a_ir_event_t ev = {.type = K2A_EV_SEARCH_START, .index = at};
    ev.tool_id = k2a_str(tool_id, strlen(tool_id));
    ev.text = query.base != NULL ? query : K2A_STRLIT("");
    ev.search = &search;
    int r = forward(ctx, &ev);
    if (r != 0)
        return r;
    ev.type = K2A_EV_SEARCH_RESULT;
    ev.index = at + (announce ? 2 : 1);
    return forward(ctx, &ev);
}

int k2a_websearch_replay(k2a_websearch_t *ws, k2a_ir_event_cb forward, void *ctx)
{
    if (ws == NULL || ws->mixed)
        return 0;
    return emit_search(forward, ctx, 0, ws->tool_id, ws->query, ws->results, ws->failure, false, true);
}

void k2a_websearch_dispose(k2a_websearch_t *ws)
{
    if (ws == NULL)
        return;
    k2a_buf_dispose(&ws->search_input);
    k2a_buf_dispose(&ws->turn_text);
    free(ws);
}

/* ---- mixed tool sets: the agentic loop ---- */

static bool is_search_tool(k2a_str_t name)
{
    return k2a_str_eq(name, K2A_STRLIT(K2A_WS_KIRO_TOOL)) || k2a_str_eq(name, K2A_STRLIT("web_search"));
}

void k2a_websearch_turn_start(k2a_websearch_t *ws)
{
    ws->skipped = 0;
    ws->skip_mask = 0;
    ws->turn_blocks = 0;
    ws->search_index = -1;
    ws->other_tools = false;
    ws->stop_held = false;
    ws->search_id[0] = '\0';
    k2a_buf_reset(&ws->search_input);
    k2a_buf_reset(&ws->turn_text);
}

static bool skipped(const k2a_websearch_t *ws, int index)
{
    return index >= 0 && index < 64 && (ws->skip_mask & ((uint64_t)1 << index)) != 0;
}

int k2a_websearch_on_event(k2a_websearch_t *ws, const k2a_ir_event_t *ev, k2a_ir_event_cb forward, void *ctx)
{
    k2a_ir_event_t e = *ev;
    switch (ev->type) {
    case K2A_EV_BLOCK_START:
        if (ev->index + 1 > ws->turn_blocks)
            ws->turn_blocks = ev->index + 1;
        if (ev->block == K2A_BLOCK_TOOL_USE && is_search_tool(ev->tool_name) && ev->index >= 0 && ev->index < 64) {
            /* a search request: kept from the client; the first of the turn is run, any other is dropped */
            ws->skip_mask |= (uint64_t)1 << ev->index;
            ++ws->skipped;
            if (ws->search_index < 0) {
                ws->search_index = ev->index;
                snprintf(ws->search_id, sizeof(ws->search_id), "%.*s", (int)ev->tool_id.len,
                         ev->tool_id.base != NULL ? ev->tool_id.base : "");
                k2a_buf_reset(&ws->search_input);
            }
            return 0;
        }
        if (ev->block == K2A_BLOCK_TOOL_USE)
            ws->other_tools = true;
        break;
    case K2A_EV_DELTA:
        if (skipped(ws, ev->index)) {
            if (ev->index == ws->search_index)
                k2a_buf_append(&ws->search_input, ev->text.base, ev->text.len); /* bounded: past 64 KiB the query is cut */
            return 0;
        }
        if (ev->block == K2A_BLOCK_TEXT)
            k2a_buf_append(&ws->turn_text, ev->text.base, ev->text.len);
        break;
    case K2A_EV_BLOCK_STOP:
        if (skipped(ws, ev->index))
            return 0;
        break;
    case K2A_EV_STOP:
        e.usage.web_search_requests = ws->requests;
        if (ws->search_index >= 0) {
            ws->held = e;
            ws->stop_held = true;
            return 0;
        }
        return forward(ctx, &e);
    case K2A_EV_USAGE:
        e.usage.web_search_requests = ws->requests;
        return forward(ctx, &e);
    default:
        return forward(ctx, &e);
    }
    /* the client's index: after the blocks already sent, less the search requests kept from it before this one */
    uint64_t below = ev->index >= 64 ? ws->skip_mask : ws->skip_mask & (((uint64_t)1 << (ev->index > 0 ? ev->index : 0)) - 1);
    e.index = ws->base + ev->index - __builtin_popcountll(below);
    return forward(ctx, &e);
}

/* The query of the search request's input ({"query": ...}), copied into the arena; "" when there is none. */
static k2a_str_t input_query(k2a_arena_t *arena, const k2a_buf_t *input)
{
    char ebuf[64];
    char *copy = k2a_arena_strndup(arena, input->base != NULL ? input->base : "", input->len);
    yajl_val doc = copy != NULL ? yajl_tree_parse(copy, ebuf, sizeof(ebuf)) : NULL;
    const char *path[] = {"query", NULL};
    yajl_val q = doc != NULL ? yajl_tree_get(doc, path, yajl_t_string) : NULL;
    k2a_str_t out = K2A_STRLIT("");
    if (q != NULL && q->u.string != NULL) {
        size_t n = strlen(q->u.string);
        if (n > K2A_WS_MAX_QUERY)
            n = K2A_WS_MAX_QUERY;
        while (n > 0 && ((unsigned char)q->u.string[n] & 0xc0) == 0x80 && n < strlen(q->u.string))
            --n;
        char *p = k2a_arena_strndup(arena, q->u.string, n);
        if (p != NULL)
            out = k2a_str(p, n);
    }
    yajl_tree_free(doc);
    return out;
}

/* Appends the turn (its text and the search request) and the search's result to the history. */
static int extend_history(k2a_arena_t *arena, k2a_ir_request_t *ir, k2a_websearch_t *ws, k2a_str_t query, const char *result,
                          size_t rlen)
{
    k2a_ir_message_t *msgs = k2a_arena_calloc(arena, (ir->nmessages + 2) * sizeof(*msgs));
    k2a_ir_block_t *ab = k2a_arena_calloc(arena, 2 * sizeof(*ab));
    k2a_ir_block_t *ub = k2a_arena_calloc(arena, sizeof(*ub));
    k2a_ir_block_t *rb = k2a_arena_calloc(arena, sizeof(*rb));
    k2a_buf_t in = K2A_BUF_INIT(0);
    if (msgs == NULL || ab == NULL || ub == NULL || rb == NULL || k2a_buf_appendstr(&in, "{\"query\":\"") != 0 ||
        k2a_buf_append_json_escaped(&in, query.base, query.len) != 0 || k2a_buf_appendstr(&in, "\"}") != 0) {
        k2a_buf_dispose(&in);
        return K2A_ENOMEM;
    }
    char *input = k2a_arena_strndup(arena, in.base, in.len), *text = k2a_arena_strndup(arena, result, rlen),
         *id = k2a_arena_strndup(arena, ws->search_id, strlen(ws->search_id)),
         *said = ws->turn_text.len != 0 ? k2a_arena_strndup(arena, ws->turn_text.base, ws->turn_text.len) : NULL;
    size_t inlen = in.len;
    k2a_buf_dispose(&in);
    if (input == NULL || text == NULL || id == NULL || (ws->turn_text.len != 0 && said == NULL))
        return K2A_ENOMEM;
    memcpy(msgs, ir->messages, ir->nmessages * sizeof(*msgs));
    size_t na = 0;
    if (said != NULL) {
        ab[na].kind = K2A_BLOCK_TEXT;
        ab[na++].text = k2a_str(said, ws->turn_text.len);
    }
    ab[na].kind = K2A_BLOCK_TOOL_USE;
    ab[na].id = k2a_str(id, strlen(id));
    ab[na].name = K2A_STRLIT(K2A_WS_KIRO_TOOL);
    ab[na++].input = k2a_str(input, inlen);
    rb->kind = K2A_BLOCK_TEXT;
    rb->text = k2a_str(text, rlen);
    ub->kind = K2A_BLOCK_TOOL_RESULT;
    ub->tool_use_id = k2a_str(id, strlen(id));
    ub->content = rb;
    ub->ncontent = 1;
    msgs[ir->nmessages] = (k2a_ir_message_t){K2A_ROLE_ASSISTANT, ab, na};
    msgs[ir->nmessages + 1] = (k2a_ir_message_t){K2A_ROLE_USER, ub, 1};
    ir->messages = msgs;
    ir->nmessages += 2;
    return 0;
}

int k2a_websearch_next_turn(k2a_websearch_t *ws, k2a_call_t *call, k2a_ir_request_t *ir, k2a_ir_event_cb forward, void *ctx)
{
    if (!k2a_websearch_pending(ws))
        return 1;
    int at = ws->base + ws->turn_blocks - ws->skipped;
    k2a_str_t query = input_query(&call->arena, &ws->search_input);
    bool over = ws->requests >= ws->max_uses;
    k2a_ws_results_t *res = k2a_arena_calloc(&call->arena, sizeof(*res));
    char failure[160] = "", tool_id[K2A_WS_ID_LEN + 1];
    k2a_buf_t text = K2A_BUF_INIT(0);
    k2a_ws_tool_id(tool_id, random_bytes, NULL);
    int r = res != NULL ? 0 : K2A_ENOMEM;
    if (r == 0 && !over) {
        ++ws->requests;
        if (query.len == 0)
            snprintf(failure, sizeof(failure), "the search request had no query");
        else
            r = run_search(call, query, res, failure, sizeof(failure));
    }
    if (r == 0)
        r = emit_search(forward, ctx, at, tool_id, query, res, failure, over, false);
    if (r == 0) {
        if (over)
            r = k2a_buf_appendf(&text,
                                "No search was run: the limit of %lld web searches for this answer is reached. Answer with "
                                "what you have.\n",
                                (long long)ws->max_uses);
        else
            r = k2a_ws_context_text(&text, query, res, failure);
    }
    /* the model goes on with the results, unless it also asked for a client tool (the client runs it: the answer ends
     * here) or it keeps asking past the limit */
    if (over)
        ++ws->refused;
    bool more = r == 0 && !ws->other_tools && ws->refused <= 1; /* one refusal is told to the model; a second ends it */
    if (more)
        r = extend_history(&call->arena, ir, ws, query, text.base != NULL ? text.base : "", text.len);
    k2a_buf_dispose(&text);
    if (r == 0 && more) {
        ws->base = at + 2;
        k2a_websearch_turn_start(ws);
        return 0;
    }
    /* the answer ends: the held STOP goes out (end_turn when the model was stopped asking for searches) */
    k2a_ir_event_t stop = ws->held;
    if (!ws->other_tools && stop.stop_reason == K2A_STOP_TOOL_USE)
        stop.stop_reason = K2A_STOP_END_TURN;
    stop.usage.web_search_requests = ws->requests;
    ws->stop_held = false;
    forward(ctx, &stop);
    return 1;
}
