/*
 * OpenAI Chat Completions writers (see openai_resp.h). The streaming writer renders the part of a chunk
 * that never changes (id, object, created, model) once at init and then appends one SSE line per IR
 * event, so a text delta costs one escape pass and a few memcpy. The aggregator copies what it needs out
 * of the events (their strings are borrowed) into bounded buffers and renders the object at the end.
 */
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_error.h"
#include "convert/openai_resp.h"

/* appends a string literal without strlen */
#define APPEND_LIT(b, lit) k2a_buf_append((b), (lit), sizeof(lit) - 1)

#define CHECK(expr)                                                                                                                \
    do {                                                                                                                           \
        int r_ = (expr);                                                                                                           \
        if (r_ != 0)                                                                                                               \
            return r_;                                                                                                             \
    } while (0)

void k2a_openai_format_id(char dst[K2A_OPENAI_ID_SIZE], const uint8_t random[K2A_OPENAI_ID_RANDOM_BYTES])
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    memcpy(dst, "chatcmpl-", 9);
    /* 62 symbols: the modulo bias (256 = 4*62 + 8) is irrelevant for an id that only has to be unique */
    for (size_t i = 0; i < K2A_OPENAI_ID_RANDOM_BYTES; ++i)
        dst[9 + i] = alphabet[random[i] % 62];
    dst[9 + K2A_OPENAI_ID_RANDOM_BYTES] = '\0';
}

void k2a_openai_make_id(char dst[K2A_OPENAI_ID_SIZE], k2a_random_cb random, void *random_ctx)
{
    uint8_t bytes[K2A_OPENAI_ID_RANDOM_BYTES];
    random(random_ctx, bytes, sizeof(bytes));
    k2a_openai_format_id(dst, bytes);
}

const char *k2a_openai_finish_reason(k2a_ir_stop_reason_t reason, bool any_tool_call)
{
    switch (reason) {
    case K2A_STOP_TOOL_USE:
        return "tool_calls";
    case K2A_STOP_MAX_TOKENS:
    case K2A_STOP_CONTEXT_WINDOW:
        return "length";
    case K2A_STOP_STOP_SEQUENCE:
        return "stop";
    case K2A_STOP_REFUSAL:
        return "content_filter";
    case K2A_STOP_END_TURN:
    default:
        return any_tool_call ? "tool_calls" : "stop";
    }
}

/* `{"prompt_tokens":P,"completion_tokens":C,"total_tokens":P+C}`; cached input counts in prompt_tokens as in OpenAI,
 * and is detailed in prompt_tokens_details.cached_tokens when known. */
static int append_usage(k2a_buf_t *out, const k2a_ir_usage_t *u)
{
    int64_t prompt = u->input_tokens + u->cache_read_input_tokens + u->cache_creation_input_tokens;
    CHECK(APPEND_LIT(out, "{\"prompt_tokens\":"));
    CHECK(k2a_buf_append_i64(out, prompt));
    CHECK(APPEND_LIT(out, ",\"completion_tokens\":"));
    CHECK(k2a_buf_append_i64(out, u->output_tokens));
    CHECK(APPEND_LIT(out, ",\"total_tokens\":"));
    CHECK(k2a_buf_append_i64(out, prompt + u->output_tokens));
    if (u->cache_read_input_tokens != 0) {
        CHECK(APPEND_LIT(out, ",\"prompt_tokens_details\":{\"cached_tokens\":"));
        CHECK(k2a_buf_append_i64(out, u->cache_read_input_tokens));
        CHECK(APPEND_LIT(out, "}"));
    }
    return APPEND_LIT(out, "}");
}

static int append_json_string(k2a_buf_t *out, const char *s, size_t n)
{
    CHECK(k2a_buf_append(out, "\"", 1));
    CHECK(k2a_buf_append_json_escaped(out, s, n));
    return k2a_buf_append(out, "\"", 1);
}

/* ---------- streaming writer ---------- */

int k2a_openai_stream_init(k2a_openai_stream_t *w, k2a_buf_t *out, const char *id, int64_t created, k2a_str_t model,
                           bool include_usage)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->include_usage = include_usage;
    k2a_buf_init(&w->head, 0);
    int r;
    if ((r = APPEND_LIT(&w->head, "{\"id\":\"")) != 0 || (r = k2a_buf_append_json_escaped(&w->head, id, strlen(id))) != 0 ||
        (r = k2a_buf_appendf(&w->head,
                             "\",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":", (long long)created)) != 0 ||
        (r = append_json_string(&w->head, model.base != NULL ? model.base : "", model.len)) != 0 ||
        (r = k2a_buf_append(&w->head, ",", 1)) != 0) {
        k2a_buf_dispose(&w->head);
        return r;
    }
    return 0;
}

void k2a_openai_stream_dispose(k2a_openai_stream_t *w)
{
    k2a_buf_dispose(&w->head);
}

/* `data: <head>"choices":[{"index":0,"delta":` — the caller appends the delta object and then closes the chunk. */
static int open_chunk(k2a_openai_stream_t *w)
{
    CHECK(k2a_buf_append(w->out, "data: ", 6));
    CHECK(k2a_buf_append(w->out, w->head.base, w->head.len));
    return APPEND_LIT(w->out, "\"choices\":[{\"index\":0,\"delta\":");
}

static int close_chunk(k2a_openai_stream_t *w, const char *finish_reason)
{
    if (finish_reason == NULL)
        return APPEND_LIT(w->out, ",\"finish_reason\":null}]}\n\n");
    CHECK(APPEND_LIT(w->out, ",\"finish_reason\":\""));
    CHECK(k2a_buf_appendstr(w->out, finish_reason));
    return APPEND_LIT(w->out, "\"}]}\n\n");
}

static int send_role(k2a_openai_stream_t *w)
{
    if (w->role_sent)
        return 0;
    CHECK(open_chunk(w));
    CHECK(APPEND_LIT(w->out, "{\"role\":\"assistant\",\"content\":\"\"}"));
    CHECK(close_chunk(w, NULL));
    w->role_sent = true;
    return 0;
}

static int tool_of_block(k2a_openai_stream_t *w, int block)
{
    for (size_t i = 0; i < w->nopen_tools; ++i)
        if (w->open_tools[i].block == block)
            return w->open_tools[i].tool;
    return -1;
}

static int on_tool_start(k2a_openai_stream_t *w, const k2a_ir_event_t *ev)
{
    if (w->nopen_tools == K2A_OPENAI_MAX_OPEN_TOOL_BLOCKS)
        return K2A_EINTERNAL; /* the producer never closes its blocks */
    int tool = w->ntool_calls++;
    w->open_tools[w->nopen_tools].block = ev->index;
    w->open_tools[w->nopen_tools].tool = tool;
    ++w->nopen_tools;
    CHECK(open_chunk(w));
    CHECK(k2a_buf_appendf(w->out, "{\"tool_calls\":[{\"index\":%d,\"id\":", tool));
    CHECK(append_json_string(w->out, ev->tool_id.base, ev->tool_id.len));
    CHECK(APPEND_LIT(w->out, ",\"type\":\"function\",\"function\":{\"name\":"));
    CHECK(append_json_string(w->out, ev->tool_name.base, ev->tool_name.len));
    CHECK(APPEND_LIT(w->out, ",\"arguments\":\"\"}}]}"));
    return close_chunk(w, NULL);
}

static void on_block_stop(k2a_openai_stream_t *w, int block)
{
    for (size_t i = 0; i < w->nopen_tools; ++i) {
        if (w->open_tools[i].block == block) {
            w->open_tools[i] = w->open_tools[--w->nopen_tools];
            return;
        }
    }
}

static int on_delta(k2a_openai_stream_t *w, const k2a_ir_event_t *ev)
{
    if (ev->text.len == 0)
        return 0;
    if (ev->block == K2A_BLOCK_TOOL_USE) {
        int tool = tool_of_block(w, ev->index);
        if (tool < 0)
            return K2A_EINTERNAL;
        CHECK(open_chunk(w));
        CHECK(k2a_buf_appendf(w->out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":", tool));
        CHECK(append_json_string(w->out, ev->text.base, ev->text.len));
        CHECK(APPEND_LIT(w->out, "}}]}"));
        return close_chunk(w, NULL);
    }
    CHECK(open_chunk(w));
    if (ev->block == K2A_BLOCK_THINKING)
        CHECK(APPEND_LIT(w->out, "{\"reasoning_content\":"));
    else
        CHECK(APPEND_LIT(w->out, "{\"content\":"));
    CHECK(append_json_string(w->out, ev->text.base, ev->text.len));
    CHECK(k2a_buf_append(w->out, "}", 1));
    return close_chunk(w, NULL);
}

static int on_stop(k2a_openai_stream_t *w, const k2a_ir_event_t *ev)
{
    k2a_ir_usage_merge(&w->usage, &ev->usage);
    CHECK(send_role(w));
    CHECK(open_chunk(w));
    CHECK(APPEND_LIT(w->out, "{}"));
    CHECK(close_chunk(w, k2a_openai_finish_reason(ev->stop_reason, w->ntool_calls != 0)));
    if (w->include_usage) {
        CHECK(k2a_buf_append(w->out, "data: ", 6));
        CHECK(k2a_buf_append(w->out, w->head.base, w->head.len));
        CHECK(APPEND_LIT(w->out, "\"choices\":[],\"usage\":"));
        CHECK(append_usage(w->out, &w->usage));
        CHECK(APPEND_LIT(w->out, "}\n\n"));
    }
    CHECK(APPEND_LIT(w->out, "data: [DONE]\n\n"));
    w->finished = true;
    return 0;
}

int k2a_openai_stream_on_event(void *sink, const k2a_ir_event_t *ev)
{
    k2a_openai_stream_t *w = sink;
    if (w->finished)
        return 0;
    switch (ev->type) {
    case K2A_EV_MESSAGE_START:
        k2a_ir_usage_merge(&w->usage, &ev->usage);
        return send_role(w);
    case K2A_EV_BLOCK_START:
        if (ev->block != K2A_BLOCK_TOOL_USE)
            return 0;
        CHECK(send_role(w));
        return on_tool_start(w, ev);
    case K2A_EV_DELTA:
        CHECK(send_role(w));
        return on_delta(w, ev);
    case K2A_EV_BLOCK_STOP:
        on_block_stop(w, ev->index);
        return 0;
    case K2A_EV_USAGE:
        k2a_ir_usage_merge(&w->usage, &ev->usage);
        return 0;
    case K2A_EV_STOP:
        return on_stop(w, ev);
    case K2A_EV_ERROR:
        w->finished = w->failed = true;
        return k2a_openai_error_chunk(w->out, ev->error != 0 ? ev->error : K2A_EINTERNAL, ev->error_message.base,
                                      ev->error_message.len);
    case K2A_EV_PING:
        return APPEND_LIT(w->out, ": ping\n\n");
    case K2A_EV_SEARCH_START: /* never sent: Chat Completions refuses web_search_options */
    case K2A_EV_SEARCH_RESULT:
        return 0;
    }
    return 0;
}

/* ---------- non-stream aggregator ---------- */

void k2a_openai_aggregate_init(k2a_openai_aggregate_t *a, size_t max_bytes, size_t max_tool_calls)
{
    memset(a, 0, sizeof(*a));
    a->max_bytes = max_bytes = max_bytes != 0 ? max_bytes : K2A_OPENAI_DEFAULT_MAX_BYTES;
    a->max_tool_calls = max_tool_calls != 0 ? max_tool_calls : K2A_OPENAI_DEFAULT_MAX_TOOL_CALLS;
    k2a_buf_init(&a->text, max_bytes);
    k2a_buf_init(&a->reasoning, max_bytes);
    k2a_buf_init(&a->error_message, 4096);
}

void k2a_openai_aggregate_dispose(k2a_openai_aggregate_t *a)
{
    for (size_t i = 0; i < a->ntools; ++i) {
        free(a->tools[i].id);
        free(a->tools[i].name);
        k2a_buf_dispose(&a->tools[i].arguments);
    }
    free(a->tools);
    k2a_buf_dispose(&a->text);
    k2a_buf_dispose(&a->reasoning);
    k2a_buf_dispose(&a->error_message);
    a->tools = NULL;
    a->ntools = a->captools = 0;
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

static int agg_tool_start(k2a_openai_aggregate_t *a, const k2a_ir_event_t *ev)
{
    if (a->ntools == a->max_tool_calls)
        return K2A_EUPSTREAM_TOOBIG;
    if (a->ntools == a->captools) {
        size_t cap = a->captools < 4 ? 4 : a->captools * 2;
        k2a_openai_tool_call_t *p = realloc(a->tools, cap * sizeof(*p));
        if (p == NULL)
            return K2A_ENOMEM;
        a->tools = p;
        a->captools = cap;
    }
    k2a_openai_tool_call_t *t = &a->tools[a->ntools];
    t->id = dup_str(ev->tool_id);
    t->name = dup_str(ev->tool_name);
    t->block = ev->index;
    k2a_buf_init(&t->arguments, a->max_bytes);
    ++a->ntools; /* counted before the check so that dispose frees whatever was allocated */
    if (t->id == NULL || t->name == NULL)
        return K2A_ENOMEM;
    return 0;
}

static int agg_delta(k2a_openai_aggregate_t *a, const k2a_ir_event_t *ev)
{
    if (ev->text.len == 0)
        return 0;
    switch (ev->block) {
    case K2A_BLOCK_TOOL_USE:
        /* the newest call with this block index: indices are unique within a response */
        for (size_t i = a->ntools; i-- > 0;)
            if (a->tools[i].block == ev->index)
                return k2a_buf_append(&a->tools[i].arguments, ev->text.base, ev->text.len);
        return K2A_EINTERNAL;
    case K2A_BLOCK_THINKING:
        return k2a_buf_append(&a->reasoning, ev->text.base, ev->text.len);
    default:
        return k2a_buf_append(&a->text, ev->text.base, ev->text.len);
    }
}

int k2a_openai_aggregate_on_event(void *sink, const k2a_ir_event_t *ev)
{
    k2a_openai_aggregate_t *a = sink;
    if (a->stopped || a->error != 0)
        return 0;
    switch (ev->type) {
    case K2A_EV_MESSAGE_START:
    case K2A_EV_USAGE:
        k2a_ir_usage_merge(&a->usage, &ev->usage);
        return 0;
    case K2A_EV_BLOCK_START:
        return ev->block == K2A_BLOCK_TOOL_USE ? agg_tool_start(a, ev) : 0;
    case K2A_EV_DELTA: {
        /* a full buffer is the size of Kiro's answer, not of the client's request: an upstream error (502), not a 413 */
        int r = agg_delta(a, ev);
        return r == K2A_ETOOBIG ? K2A_EUPSTREAM_TOOBIG : r;
    }
    case K2A_EV_STOP:
        k2a_ir_usage_merge(&a->usage, &ev->usage);
        a->stopped = true;
        a->stop_reason = ev->stop_reason;
        return 0;
    case K2A_EV_ERROR:
        a->error = ev->error != 0 ? ev->error : K2A_EINTERNAL;
        /* kept up to the buffer's maximum (a longer message is cut; the JSON escaper repairs a cut UTF-8 sequence) */
        k2a_buf_reset(&a->error_message);
        k2a_buf_append(&a->error_message, ev->error_message.base,
                       ev->error_message.len < a->error_message.max ? ev->error_message.len : a->error_message.max);
        return 0;
    case K2A_EV_BLOCK_STOP:
    case K2A_EV_PING:
    case K2A_EV_SEARCH_START:
    case K2A_EV_SEARCH_RESULT:
        return 0;
    }
    return 0;
}

int k2a_openai_aggregate_write(const k2a_openai_aggregate_t *a, k2a_buf_t *out, const char *id, int64_t created, k2a_str_t model)
{
    if (a->error != 0)
        return a->error;
    if (!a->stopped)
        return K2A_EUPSTREAM_TRUNCATED;
    CHECK(APPEND_LIT(out, "{\"id\":"));
    CHECK(append_json_string(out, id, strlen(id)));
    CHECK(k2a_buf_appendf(out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", (long long)created));
    CHECK(append_json_string(out, model.base != NULL ? model.base : "", model.len));
    CHECK(APPEND_LIT(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"));
    if (a->text.len == 0 && a->ntools != 0)
        CHECK(APPEND_LIT(out, "null"));
    else
        CHECK(append_json_string(out, a->text.base, a->text.len));
    if (a->reasoning.len != 0) {
        CHECK(APPEND_LIT(out, ",\"reasoning_content\":"));
        CHECK(append_json_string(out, a->reasoning.base, a->reasoning.len));
    }
    if (a->ntools != 0) {
        CHECK(APPEND_LIT(out, ",\"tool_calls\":["));
        for (size_t i = 0; i < a->ntools; ++i) {
            const k2a_openai_tool_call_t *t = &a->tools[i];
            CHECK(k2a_buf_appendstr(out, i == 0 ? "{\"id\":" : ",{\"id\":"));
            CHECK(append_json_string(out, t->id, strlen(t->id)));
            CHECK(APPEND_LIT(out, ",\"type\":\"function\",\"function\":{\"name\":"));
            CHECK(append_json_string(out, t->name, strlen(t->name)));
            CHECK(APPEND_LIT(out, ",\"arguments\":"));
            if (t->arguments.len == 0)
                CHECK(APPEND_LIT(out, "\"{}\""));
            else
                CHECK(append_json_string(out, t->arguments.base, t->arguments.len));
            CHECK(APPEND_LIT(out, "}}"));
        }
        CHECK(k2a_buf_append(out, "]", 1));
    }
    CHECK(
        k2a_buf_appendf(out, "},\"finish_reason\":\"%s\"}],\"usage\":", k2a_openai_finish_reason(a->stop_reason, a->ntools != 0)));
    CHECK(append_usage(out, &a->usage));
    return k2a_buf_append(out, "}", 1);
}
