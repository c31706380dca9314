/*
 * Anthropic Messages writers (see anthropic_resp.h). The SSE writer builds each event with plain appends into the
 * caller's buffer (the constant parts are literals; only strings go through the JSON escaper), so that a text delta
 * costs one escape pass and a few memcpy. Key order follows what the Anthropic API sends.
 */
#include <stdlib.h>
#include <string.h>
#include "convert/anthropic_error.h"
#include "convert/anthropic_resp.h"
#include "convert/json_compact.h"
#include "convert/web_search.h"
#include "core/errors.h"
#include "core/rand.h"

#define DEFAULT_MAX_BYTES (64 * 1024 * 1024)

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void k2a_anthropic_message_id(char *out, k2a_random_cb random, void *random_ctx)
{
    unsigned char rnd[24];
    random(random_ctx, rnd, sizeof(rnd));
    memcpy(out, "msg_", 4);
    /* byte % 62 is very slightly biased towards the first 8 characters; irrelevant for a unique id */
    for (size_t i = 0; i < sizeof(rnd); ++i)
        out[4 + i] = base62[rnd[i] % 62];
    out[K2A_ANTHROPIC_ID_LEN] = '\0';
}

const char *k2a_anthropic_stop_reason(k2a_ir_stop_reason_t r)
{
    switch (r) {
    case K2A_STOP_TOOL_USE:
        return "tool_use";
    case K2A_STOP_MAX_TOKENS:
        return "max_tokens";
    case K2A_STOP_CONTEXT_WINDOW:
        return "model_context_window_exceeded";
    case K2A_STOP_STOP_SEQUENCE:
        return "stop_sequence";
    case K2A_STOP_REFUSAL:
        return "refusal";
    case K2A_STOP_END_TURN:
    default:
        return "end_turn";
    }
}

/* ---------- shared pieces ---------- */

#define APPEND_LIT(b, lit) k2a_buf_append((b), (lit), sizeof(lit) - 1)

/* Appends a non-negative decimal (block indices; printf is several times slower on this path). */
static int append_uint(k2a_buf_t *b, unsigned v)
{
    if (v < 10) {
        char c = (char)('0' + v); /* the usual block index */
        return k2a_buf_append(b, &c, 1);
    }
    char tmp[16];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return k2a_buf_append(b, tmp + n, sizeof(tmp) - n);
}

static int append_json_string(k2a_buf_t *b, k2a_str_t s)
{
    int r;
    if ((r = APPEND_LIT(b, "\"")) != 0 || (r = k2a_json_append_escaped(b, s.base, s.len)) != 0)
        return r;
    return APPEND_LIT(b, "\"");
}

static int append_usage(k2a_buf_t *b, const k2a_ir_usage_t *u, int64_t output_tokens)
{
    int r;
    if ((r = APPEND_LIT(b, "{\"input_tokens\":")) != 0 || (r = k2a_buf_append_i64(b, u->input_tokens)) != 0 ||
        (r = APPEND_LIT(b, ",\"cache_creation_input_tokens\":")) != 0 ||
        (r = k2a_buf_append_i64(b, u->cache_creation_input_tokens)) != 0 ||
        (r = APPEND_LIT(b, ",\"cache_read_input_tokens\":")) != 0 || (r = k2a_buf_append_i64(b, u->cache_read_input_tokens)) != 0 ||
        (r = APPEND_LIT(b, ",\"output_tokens\":")) != 0 || (r = k2a_buf_append_i64(b, output_tokens)) != 0)
        return r;
    if (u->web_search_requests > 0 && ((r = APPEND_LIT(b, ",\"server_tool_use\":{\"web_search_requests\":")) != 0 ||
                                       (r = k2a_buf_append_i64(b, u->web_search_requests)) != 0 || (r = APPEND_LIT(b, "}")) != 0))
        return r;
    return APPEND_LIT(b, "}");
}

/* ---------- web search (http/websearch.h) ---------- */

/* "I'll search for \"<query>\"." as a JSON string's content (the text block that announces a search-only request's
 * search) */
static int search_announce(k2a_buf_t *b, k2a_str_t query)
{
    k2a_buf_t text = K2A_BUF_INIT(0);
    int r;
    if ((r = APPEND_LIT(&text, "I'll search for \"")) == 0 && (r = k2a_buf_append(&text, query.base, query.len)) == 0 &&
        (r = APPEND_LIT(&text, "\".")) == 0)
        r = k2a_buf_append_json_escaped(b, text.base, text.len);
    k2a_buf_dispose(&text);
    return r;
}

/* A search's block as a compact JSON object: server_tool_use (SEARCH_START) or web_search_tool_result (SEARCH_RESULT). */
static int search_block(k2a_buf_t *b, const k2a_ir_event_t *ev)
{
    int r;
    if (ev->type == K2A_EV_SEARCH_START) {
        if ((r = APPEND_LIT(b, "{\"type\":\"server_tool_use\",\"id\":\"")) != 0 ||
            (r = k2a_buf_append(b, ev->tool_id.base, ev->tool_id.len)) != 0 ||
            (r = APPEND_LIT(b, "\",\"name\":\"web_search\",\"input\":{\"query\":\"")) != 0 ||
            (r = k2a_buf_append_json_escaped(b, ev->text.base, ev->text.len)) != 0)
            return r;
        return APPEND_LIT(b, "\"}}");
    }
    if ((r = APPEND_LIT(b, "{\"type\":\"web_search_tool_result\",\"tool_use_id\":\"")) != 0 ||
        (r = k2a_buf_append(b, ev->tool_id.base, ev->tool_id.len)) != 0 || (r = APPEND_LIT(b, "\",\"content\":")) != 0)
        return r;
    if (ev->search->over || ev->search->results == NULL)
        r = APPEND_LIT(b, "{\"type\":\"web_search_tool_result_error\",\"error_code\":\"max_uses_exceeded\"}");
    else
        r = k2a_ws_results_json(b, ev->search->results);
    return r != 0 ? r : APPEND_LIT(b, "}");
}

/* SSE: the search's blocks, each started and stopped at once (the announcing text at ev->index, then server_tool_use;
 * the result at ev->index). */
static int sse_search(k2a_anthropic_sse_t *w, const k2a_ir_event_t *ev)
{
    int r, at = ev->index;
    if (ev->type == K2A_EV_SEARCH_START && ev->search->announce) {
        if ((r = APPEND_LIT(w->out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":")) != 0 ||
            (r = append_uint(w->out, (unsigned)at)) != 0 ||
            (r = APPEND_LIT(w->out, ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n")) != 0 ||
            (r = APPEND_LIT(w->out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":")) != 0 ||
            (r = append_uint(w->out, (unsigned)at)) != 0 ||
            (r = APPEND_LIT(w->out, ",\"delta\":{\"type\":\"text_delta\",\"text\":\"")) != 0 ||
            (r = search_announce(w->out, ev->text)) != 0 || (r = APPEND_LIT(w->out, "\"}}\n\n")) != 0 ||
            (r = APPEND_LIT(w->out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":")) != 0 ||
            (r = append_uint(w->out, (unsigned)at)) != 0 || (r = APPEND_LIT(w->out, "}\n\n")) != 0)
            return r;
        ++at;
    }
    if ((r = APPEND_LIT(w->out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":")) != 0 ||
        (r = append_uint(w->out, (unsigned)at)) != 0 || (r = APPEND_LIT(w->out, ",\"content_block\":")) != 0 ||
        (r = search_block(w->out, ev)) != 0 || (r = APPEND_LIT(w->out, "}\n\n")) != 0 ||
        (r = APPEND_LIT(w->out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":")) != 0 ||
        (r = append_uint(w->out, (unsigned)at)) != 0)
        return r;
    return APPEND_LIT(w->out, "}\n\n");
}

/* ---------- streaming ---------- */

void k2a_anthropic_sse_init(k2a_anthropic_sse_t *w, k2a_buf_t *out, k2a_str_t model, k2a_random_cb random, void *random_ctx)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->model = model;
    w->thinking_index = -1;
    k2a_anthropic_message_id(w->id, random, random_ctx);
}

static int find_open(const k2a_anthropic_sse_t *w, int index)
{
    for (size_t i = 0; i < w->nopen; ++i)
        if (w->open[i] == index)
            return (int)i;
    return -1;
}

/* The upstream's signature when it sent one (reasoningContentEvent), else ours for thinking that came as plain text. */
static k2a_str_t thinking_signature(k2a_str_t upstream)
{
    return upstream.len != 0 ? upstream : K2A_STRLIT(K2A_ANTHROPIC_THINKING_SIGNATURE);
}

static int sse_block_stop(k2a_anthropic_sse_t *w, int index, k2a_str_t signature)
{
    int r, slot = find_open(w, index);
    if (slot < 0)
        return K2A_EINVAL;
    w->open[slot] = w->open[--w->nopen];
    if (index == w->thinking_index) {
        /* Anthropic sends the block's signature as its last delta */
        w->thinking_index = -1;
        if ((r = APPEND_LIT(w->out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":")) != 0 ||
            (r = append_uint(w->out, (unsigned)index)) != 0 ||
            (r = APPEND_LIT(w->out, ",\"delta\":{\"type\":\"signature_delta\",\"signature\":")) != 0 ||
            (r = append_json_string(w->out, thinking_signature(signature))) != 0 || (r = APPEND_LIT(w->out, "}}\n\n")) != 0)
            return r;
    }
    if ((r = APPEND_LIT(w->out, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":")) != 0 ||
        (r = append_uint(w->out, (unsigned)index)) != 0)
        return r;
    return APPEND_LIT(w->out, "}\n\n");
}

static int sse_block_start(k2a_anthropic_sse_t *w, const k2a_ir_event_t *ev)
{
    int r;
    if (ev->index < 0 || find_open(w, ev->index) >= 0 || w->nopen == sizeof(w->open) / sizeof(w->open[0]))
        return K2A_EINVAL;
    w->open[w->nopen++] = ev->index;
    if ((r = APPEND_LIT(w->out, "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":")) != 0 ||
        (r = append_uint(w->out, (unsigned)ev->index)) != 0 || (r = APPEND_LIT(w->out, ",\"content_block\":")) != 0)
        return r;
    switch (ev->block) {
    case K2A_BLOCK_TOOL_USE:
        if ((r = APPEND_LIT(w->out, "{\"type\":\"tool_use\",\"id\":")) != 0 || (r = append_json_string(w->out, ev->tool_id)) != 0 ||
            (r = APPEND_LIT(w->out, ",\"name\":")) != 0 || (r = append_json_string(w->out, ev->tool_name)) != 0)
            return r;
        /* the arguments arrive as input_json_delta; "input" must be {} here (kiro2api 30e0f09: Claude Code's Edit failed) */
        return APPEND_LIT(w->out, ",\"input\":{}}}\n\n");
    case K2A_BLOCK_THINKING:
        w->thinking_index = ev->index;
        return APPEND_LIT(w->out, "{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n");
    case K2A_BLOCK_REDACTED_THINKING:
        /* the opaque data comes whole in the start event; the block has no delta */
        if ((r = APPEND_LIT(w->out, "{\"type\":\"redacted_thinking\",\"data\":")) != 0 ||
            (r = append_json_string(w->out, ev->text)) != 0)
            return r;
        return APPEND_LIT(w->out, "}}\n\n");
    default:
        return APPEND_LIT(w->out, "{\"type\":\"text\",\"text\":\"\"}}\n\n");
    }
}

static int sse_delta(k2a_anthropic_sse_t *w, const k2a_ir_event_t *ev)
{
    int r;
    if (find_open(w, ev->index) < 0)
        return K2A_EINVAL;
    if ((r = APPEND_LIT(w->out, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":")) != 0 ||
        (r = append_uint(w->out, (unsigned)ev->index)) != 0 || (r = APPEND_LIT(w->out, ",\"delta\":")) != 0)
        return r;
    switch (ev->block) {
    case K2A_BLOCK_TOOL_USE:
        r = APPEND_LIT(w->out, "{\"type\":\"input_json_delta\",\"partial_json\":\"");
        break;
    case K2A_BLOCK_THINKING:
        r = APPEND_LIT(w->out, "{\"type\":\"thinking_delta\",\"thinking\":\"");
        break;
    default:
        r = APPEND_LIT(w->out, "{\"type\":\"text_delta\",\"text\":\"");
        break;
    }
    if (r != 0 || (r = k2a_json_append_escaped(w->out, ev->text.base, ev->text.len)) != 0)
        return r;
    return APPEND_LIT(w->out, "\"}}\n\n");
}

static int sse_stop(k2a_anthropic_sse_t *w, const k2a_ir_event_t *ev)
{
    int r;
    /* close whatever the producer left open, lowest index first */
    while (w->nopen != 0) {
        int lowest = w->open[0];
        for (size_t i = 1; i < w->nopen; ++i)
            if (w->open[i] < lowest)
                lowest = w->open[i];
        if ((r = sse_block_stop(w, lowest, K2A_STR_NULL)) != 0)
            return r;
    }
    if ((r = APPEND_LIT(w->out, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"")) != 0 ||
        (r = k2a_buf_appendstr(w->out, k2a_anthropic_stop_reason(ev->stop_reason))) != 0 ||
        (r = APPEND_LIT(w->out, "\",\"stop_sequence\":null},\"usage\":")) != 0 ||
        (r = append_usage(w->out, &ev->usage, ev->usage.output_tokens)) != 0 ||
        (r = APPEND_LIT(w->out, "}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")) != 0)
        return r;
    w->done = true;
    return 0;
}

int k2a_anthropic_sse_on_event(void *ctx, const k2a_ir_event_t *ev)
{
    k2a_anthropic_sse_t *w = ctx;
    int r;
    if (w->done)
        return 0;
    switch (ev->type) {
    case K2A_EV_MESSAGE_START:
        if (w->started)
            return 0;
        w->started = true;
        if ((r = APPEND_LIT(w->out, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"")) != 0 ||
            (r = k2a_buf_append(w->out, w->id, K2A_ANTHROPIC_ID_LEN)) != 0 ||
            (r = APPEND_LIT(w->out, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":")) != 0 ||
            (r = append_json_string(w->out, w->model)) != 0 ||
            (r = APPEND_LIT(w->out, ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":")) != 0 ||
            (r = append_usage(w->out, &ev->usage, 0)) != 0)
            return r;
        /* like the Anthropic API, a ping right after message_start */
        return APPEND_LIT(w->out, "}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
    case K2A_EV_BLOCK_START:
        return sse_block_start(w, ev);
    case K2A_EV_DELTA:
        return sse_delta(w, ev);
    case K2A_EV_BLOCK_STOP:
        return sse_block_stop(w, ev->index, ev->signature);
    case K2A_EV_STOP:
        return sse_stop(w, ev);
    case K2A_EV_ERROR:
        /* one error event and nothing after it: never message_stop after an error */
        w->done = true;
        return k2a_anthropic_error_event(w->out, ev->error, ev->error_message);
    case K2A_EV_PING:
        return APPEND_LIT(w->out, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    case K2A_EV_SEARCH_START:
    case K2A_EV_SEARCH_RESULT:
        return sse_search(w, ev);
    case K2A_EV_USAGE:
    default:
        return 0;
    }
}

/* ---------- non-streaming ---------- */

void k2a_anthropic_msg_init(k2a_anthropic_msg_t *m, k2a_str_t model, k2a_random_cb random, void *random_ctx, size_t max_bytes)
{
    memset(m, 0, sizeof(*m));
    m->model = model;
    m->max_bytes = max_bytes != 0 ? max_bytes : DEFAULT_MAX_BYTES;
    k2a_buf_init(&m->error_message, 4096);
    k2a_anthropic_message_id(m->id, random, random_ctx);
}

void k2a_anthropic_msg_dispose(k2a_anthropic_msg_t *m)
{
    for (size_t i = 0; i < m->nblocks; ++i) {
        k2a_buf_dispose(&m->blocks[i].text);
        free(m->blocks[i].tool_id);
        free(m->blocks[i].tool_name);
        free(m->blocks[i].signature);
    }
    free(m->blocks);
    m->blocks = NULL;
    m->nblocks = m->cap = 0;
    k2a_buf_dispose(&m->error_message);
}

void k2a_anthropic_msg_truncate(k2a_anthropic_msg_t *m, size_t n)
{
    for (size_t i = n; i < m->nblocks; ++i) {
        k2a_buf_dispose(&m->blocks[i].text);
        free(m->blocks[i].tool_id);
        free(m->blocks[i].tool_name);
        free(m->blocks[i].signature);
    }
    if (n < m->nblocks)
        m->nblocks = n;
    m->stopped = false;
    m->error = 0;
    k2a_buf_reset(&m->error_message);
}

static int msg_fail(k2a_anthropic_msg_t *m, int err, k2a_str_t message)
{
    if (m->error == 0) {
        m->error = err;
        k2a_buf_reset(&m->error_message);
        k2a_buf_append(&m->error_message, message.base, message.len);
    }
    return err;
}

static char *dup_str(k2a_str_t s)
{
    char *p = malloc(s.len + 1);
    if (p != NULL) {
        if (s.len != 0)
            memcpy(p, s.base, s.len);
        p[s.len] = '\0';
    }
    return p;
}

/* The search's blocks as raw blocks at the next indices (the announcing text, then server_tool_use; or the result). */
static int msg_search(k2a_anthropic_msg_t *m, const k2a_ir_event_t *ev)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    int r = 0;
    if (ev->type == K2A_EV_SEARCH_START && ev->search->announce) {
        if ((r = APPEND_LIT(&b, "{\"type\":\"text\",\"text\":\"")) == 0 && (r = search_announce(&b, ev->text)) == 0 &&
            (r = APPEND_LIT(&b, "\"}")) == 0)
            r = k2a_anthropic_msg_add_raw(m, b.base, b.len);
        k2a_buf_reset(&b);
    }
    if (r == 0 && (r = search_block(&b, ev)) == 0)
        r = k2a_anthropic_msg_add_raw(m, b.base, b.len);
    k2a_buf_dispose(&b);
    return r != 0 && m->error == 0 ? msg_fail(m, r, K2A_STRLIT("out of memory")) : r;
}

int k2a_anthropic_msg_on_event(void *ctx, const k2a_ir_event_t *ev)
{
    k2a_anthropic_msg_t *m = ctx;
    if (m->error != 0 || m->stopped)
        return m->error;
    switch (ev->type) {
    case K2A_EV_BLOCK_START: {
        if (ev->index < 0 || (size_t)ev->index != m->nblocks)
            return msg_fail(m, K2A_EINVAL, K2A_STRLIT("content block indices are not consecutive"));
        if (m->nblocks == m->cap) {
            size_t cap = m->cap != 0 ? m->cap * 2 : 4;
            k2a_anthropic_msg_block_t *b = realloc(m->blocks, cap * sizeof(*b));
            if (b == NULL)
                return msg_fail(m, K2A_ENOMEM, K2A_STRLIT("out of memory"));
            m->blocks = b;
            m->cap = cap;
        }
        k2a_anthropic_msg_block_t *b = &m->blocks[m->nblocks++];
        memset(b, 0, sizeof(*b));
        b->kind = ev->block;
        k2a_buf_init(&b->text, 0);
        if (ev->block == K2A_BLOCK_REDACTED_THINKING) {
            /* its data comes whole with the start */
            if (m->bytes + ev->text.len > m->max_bytes)
                return msg_fail(m, K2A_EUPSTREAM_TOOBIG,
                                K2A_STRLIT("Kiro's answer is larger than the non-streaming limit; use stream: true"));
            m->bytes += ev->text.len;
            if (k2a_buf_append(&b->text, ev->text.base, ev->text.len) != 0)
                return msg_fail(m, K2A_ENOMEM, K2A_STRLIT("out of memory"));
        }
        if (ev->block == K2A_BLOCK_TOOL_USE) {
            b->tool_id = dup_str(ev->tool_id);
            b->tool_name = dup_str(ev->tool_name);
            if (b->tool_id == NULL || b->tool_name == NULL)
                return msg_fail(m, K2A_ENOMEM, K2A_STRLIT("out of memory"));
            m->bytes += ev->tool_id.len + ev->tool_name.len;
        }
        return 0;
    }
    case K2A_EV_DELTA: {
        if (ev->index < 0 || (size_t)ev->index >= m->nblocks)
            return msg_fail(m, K2A_EINVAL, K2A_STRLIT("delta for an unknown content block"));
        if (m->bytes + ev->text.len > m->max_bytes)
            return msg_fail(m, K2A_EUPSTREAM_TOOBIG,
                            K2A_STRLIT("Kiro's answer is larger than the non-streaming limit; use stream: true"));
        m->bytes += ev->text.len;
        int r = k2a_buf_append(&m->blocks[ev->index].text, ev->text.base, ev->text.len);
        return r != 0 ? msg_fail(m, r, K2A_STRLIT("out of memory")) : 0;
    }
    case K2A_EV_BLOCK_STOP:
        if (ev->signature.len != 0 && ev->index >= 0 && (size_t)ev->index < m->nblocks &&
            m->blocks[ev->index].kind == K2A_BLOCK_THINKING && m->blocks[ev->index].signature == NULL &&
            (m->blocks[ev->index].signature = dup_str(ev->signature)) == NULL)
            return msg_fail(m, K2A_ENOMEM, K2A_STRLIT("out of memory"));
        return 0;
    case K2A_EV_SEARCH_START:
    case K2A_EV_SEARCH_RESULT:
        return msg_search(m, ev);
    case K2A_EV_STOP:
        m->stopped = true;
        m->stop_reason = ev->stop_reason;
        m->usage = ev->usage;
        return 0;
    case K2A_EV_ERROR:
        msg_fail(m, ev->error != 0 ? ev->error : K2A_EINTERNAL, ev->error_message);
        return 0; /* recorded; the parser's own return value carries the failure */
    default:
        return 0;
    }
}

int k2a_anthropic_msg_add_raw(k2a_anthropic_msg_t *m, const char *json, size_t len)
{
    if (m->error != 0 || m->stopped)
        return m->error;
    if (m->nblocks == m->cap) {
        size_t cap = m->cap != 0 ? m->cap * 2 : 4;
        k2a_anthropic_msg_block_t *b = realloc(m->blocks, cap * sizeof(*b));
        if (b == NULL)
            return msg_fail(m, K2A_ENOMEM, K2A_STRLIT("out of memory"));
        m->blocks = b;
        m->cap = cap;
    }
    k2a_anthropic_msg_block_t *b = &m->blocks[m->nblocks++];
    memset(b, 0, sizeof(*b));
    b->kind = K2A_BLOCK_DOCUMENT; /* never a model block: marks a raw one */
    k2a_buf_init(&b->text, 0);
    int r = k2a_buf_append(&b->text, json, len);
    return r != 0 ? msg_fail(m, r, K2A_STRLIT("out of memory")) : 0;
}

k2a_str_t k2a_anthropic_msg_error_message(const k2a_anthropic_msg_t *m)
{
    return k2a_str(m->error_message.base != NULL ? m->error_message.base : "", m->error_message.len);
}

static int render_blocks(k2a_anthropic_msg_t *m, k2a_buf_t *out)
{
    int r;
    for (size_t i = 0; i < m->nblocks; ++i) {
        k2a_anthropic_msg_block_t *b = &m->blocks[i];
        k2a_str_t text = k2a_str(b->text.base != NULL ? b->text.base : "", b->text.len);
        if (i != 0 && (r = APPEND_LIT(out, ",")) != 0)
            return r;
        switch (b->kind) {
        case K2A_BLOCK_TOOL_USE: {
            if ((r = APPEND_LIT(out, "{\"type\":\"tool_use\",\"id\":")) != 0 ||
                (r = append_json_string(out, k2a_cstr(b->tool_id))) != 0 || (r = APPEND_LIT(out, ",\"name\":")) != 0 ||
                (r = append_json_string(out, k2a_cstr(b->tool_name))) != 0 || (r = APPEND_LIT(out, ",\"input\":")) != 0)
                return r;
            if (text.len == 0) {
                /* no input piece at all: a tool without arguments */
                r = APPEND_LIT(out, "{}");
            } else {
                size_t mark = out->len;
                r = k2a_json_looks_like_object(text.base, text.len) ? k2a_json_compact(out, text.base, text.len) : K2A_EJSON_SYNTAX;
                if (r == K2A_EJSON_SYNTAX || r == K2A_EJSON_DEPTH) {
                    out->len = mark;
                    k2a_buf_reset(&m->error_message);
                    k2a_buf_appendf(&m->error_message,
                                    "the input of tool call %s (%s) is not a complete JSON object (%zu bytes): Kiro sent it "
                                    "truncated or malformed",
                                    b->tool_name, b->tool_id, text.len);
                    m->error = K2A_EUPSTREAM_TRUNCATED;
                    return m->error;
                }
            }
            if (r != 0 || (r = APPEND_LIT(out, "}")) != 0)
                return r;
            break;
        }
        case K2A_BLOCK_DOCUMENT: /* a raw block (k2a_anthropic_msg_add_raw) */
            if ((r = k2a_buf_append(out, text.base, text.len)) != 0)
                return r;
            break;
        case K2A_BLOCK_THINKING:
            if ((r = APPEND_LIT(out, "{\"type\":\"thinking\",\"thinking\":")) != 0 || (r = append_json_string(out, text)) != 0 ||
                (r = APPEND_LIT(out, ",\"signature\":")) != 0 ||
                (r = append_json_string(out, thinking_signature(k2a_cstr(b->signature)))) != 0 || (r = APPEND_LIT(out, "}")) != 0)
                return r;
            break;
        case K2A_BLOCK_REDACTED_THINKING:
            if ((r = APPEND_LIT(out, "{\"type\":\"redacted_thinking\",\"data\":")) != 0 ||
                (r = append_json_string(out, text)) != 0 || (r = APPEND_LIT(out, "}")) != 0)
                return r;
            break;
        default:
            if ((r = APPEND_LIT(out, "{\"type\":\"text\",\"text\":")) != 0 || (r = append_json_string(out, text)) != 0 ||
                (r = APPEND_LIT(out, "}")) != 0)
                return r;
            break;
        }
    }
    return 0;
}

int k2a_anthropic_msg_render(k2a_anthropic_msg_t *m, k2a_buf_t *out)
{
    int r;
    if (m->error != 0)
        return m->error;
    if (!m->stopped)
        return msg_fail(m, K2A_EUPSTREAM_TRUNCATED, K2A_STRLIT("the response ended before its end"));
    size_t mark = out->len;
    if ((r = APPEND_LIT(out, "{\"id\":\"")) != 0 || (r = k2a_buf_append(out, m->id, K2A_ANTHROPIC_ID_LEN)) != 0 ||
        (r = APPEND_LIT(out, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":")) != 0 ||
        (r = append_json_string(out, m->model)) != 0 || (r = APPEND_LIT(out, ",\"content\":[")) != 0 ||
        (r = render_blocks(m, out)) != 0 ||
        (r = k2a_buf_appendf(
             out, "],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":", k2a_anthropic_stop_reason(m->stop_reason))) != 0 ||
        (r = append_usage(out, &m->usage, m->usage.output_tokens)) != 0 || (r = APPEND_LIT(out, "}")) != 0) {
        out->len = mark;
        if (m->error == 0)
            msg_fail(m, r, K2A_STRLIT("could not build the response"));
        return r;
    }
    return 0;
}
