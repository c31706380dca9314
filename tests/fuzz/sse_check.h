/*
 * SSE well-formedness checkers for the fuzz targets of the response path: they parse what the Anthropic and OpenAI
 * streaming writers emitted (fed in the pieces the HTTP layer would send) and abort on anything a client could not
 * consume: a block that is not `event: NAME\ndata: JSON\n\n` (Anthropic) or `data: JSON|[DONE]\n\n` / `: ping\n\n`
 * (OpenAI), JSON that does not parse or whose type does not match the event name, content blocks whose indices are not
 * 0, 1, 2... in order, deltas for a block that is not open or of another kind, tool calls whose indices are not
 * consecutive, anything after message_stop / [DONE] / an error, and a tool call presented as complete (content_block_stop,
 * or the finish chunk) whose input is not a JSON object unless the stop reason says the output was cut for length
 * (max_tokens, model_context_window_exceeded / "length", as in the real APIs): a client must get an error instead,
 * never a broken or silently emptied tool call. Each checker also counts tool calls and records how the stream ended, so the target
 * can compare the two dialects.
 */
#ifndef K2A_FUZZ_SSE_CHECK_H
#define K2A_FUZZ_SSE_CHECK_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"

#define SSE_FAIL(...)                                                                                                              \
    do {                                                                                                                           \
        fprintf(stderr, "sse check failed (%s:%d): ", __FILE__, __LINE__);                                                         \
        fprintf(stderr, __VA_ARGS__);                                                                                              \
        fputc('\n', stderr);                                                                                                       \
        abort();                                                                                                                   \
    } while (0)
#define SSE_REQUIRE(c, ...)                                                                                                        \
    do {                                                                                                                           \
        if (!(c))                                                                                                                  \
            SSE_FAIL(__VA_ARGS__);                                                                                                 \
    } while (0)

#define SSE_MAX_TOOLS 256

static yajl_val sse_get(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static const char *sse_str(yajl_val obj, const char *key)
{
    yajl_val v = sse_get(obj, key);
    return v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
}

static bool sse_int(yajl_val obj, const char *key, long long *out)
{
    yajl_val v = sse_get(obj, key);
    if (v == NULL || !YAJL_IS_INTEGER(v))
        return false;
    *out = YAJL_GET_INTEGER(v);
    return true;
}

/* A tool input the client is told is complete: empty (= {}) or one JSON object. */
static bool sse_tool_input_ok(const k2a_buf_t *json)
{
    if (json->len == 0)
        return true;
    char *copy = malloc(json->len + 1);
    memcpy(copy, json->base, json->len);
    copy[json->len] = '\0';
    yajl_val v = strlen(copy) == json->len ? yajl_tree_parse(copy, NULL, 0) : NULL;
    bool ok = v != NULL && YAJL_IS_OBJECT(v);
    yajl_tree_free(v);
    free(copy);
    return ok;
}

/* Splits buf into complete SSE blocks ("...\n\n"); calls fn(ctx, block, len) for each (without the blank line). */
static void sse_blocks(const k2a_buf_t *buf, void (*fn)(void *, const char *, size_t), void *ctx)
{
    const char *p = buf->base, *end = buf->base + buf->len;
    if (buf->len == 0)
        return;
    while (p < end) {
        const char *sep = memmem(p, end - p, "\n\n", 2);
        SSE_REQUIRE(sep != NULL, "output piece does not end on an event boundary: %.*s", (int)(end - p > 300 ? 300 : end - p), p);
        SSE_REQUIRE(sep > p, "empty SSE block");
        fn(ctx, p, sep - p);
        p = sep + 2;
    }
}

static yajl_val sse_parse_json(const char *s, size_t n)
{
    char *copy = malloc(n + 1);
    memcpy(copy, s, n);
    copy[n] = '\0';
    SSE_REQUIRE(strlen(copy) == n, "NUL byte in an SSE data line");
    char err[256];
    yajl_val v = yajl_tree_parse(copy, err, sizeof(err));
    SSE_REQUIRE(v != NULL && YAJL_IS_OBJECT(v), "data is not a JSON object (%s): %s", err, copy);
    free(copy);
    return v;
}

/* ---------- Anthropic ---------- */

typedef struct st_sse_anthropic_t {
    bool started, ended, errored, message_delta;
    int next_index, open;
    int broken_tool; /* index of a tool block closed with an input that is not a JSON object, else -1 */
    bool length_cut; /* set by the caller: the upstream said the context window is full, so a partial input may be kept
                        even when a transport error then ends the stream */
    char broken_input[512];
    char open_type[16];
    k2a_buf_t tool_json;
    int tools;
} sse_anthropic_t;

static void sse_anthropic_init(sse_anthropic_t *c)
{
    memset(c, 0, sizeof(*c));
    c->open = -1;
    c->broken_tool = -1;
    k2a_buf_init(&c->tool_json, 0);
}

static void sse_anthropic_dispose(sse_anthropic_t *c)
{
    k2a_buf_dispose(&c->tool_json);
}

static void sse_anthropic_block(void *ctx, const char *b, size_t n)
{
    sse_anthropic_t *c = ctx;
    SSE_REQUIRE(n > 7 && memcmp(b, "event: ", 7) == 0, "block does not start with 'event: ': %.*s", (int)n, b);
    const char *nl = memchr(b, '\n', n);
    SSE_REQUIRE(nl != NULL, "event line without a data line: %.*s", (int)n, b);
    char name[64];
    size_t nlen = nl - (b + 7);
    SSE_REQUIRE(nlen > 0 && nlen < sizeof(name), "bad event name");
    memcpy(name, b + 7, nlen);
    name[nlen] = '\0';
    const char *d = nl + 1;
    size_t dlen = b + n - d;
    SSE_REQUIRE(dlen > 6 && memcmp(d, "data: ", 6) == 0 && memchr(d, '\n', dlen) == NULL, "not one data line: %.*s", (int)n, b);
    SSE_REQUIRE(!c->ended, "event '%s' after the end of the stream", name);
    yajl_val v = sse_parse_json(d + 6, dlen - 6);
    const char *type = sse_str(v, "type");
    SSE_REQUIRE(type != NULL && strcmp(type, name) == 0, "event '%s' carries type '%s'", name, type ? type : "(none)");
    long long index = -1;
    if (strcmp(name, "message_start") == 0) {
        SSE_REQUIRE(!c->started, "second message_start");
        yajl_val m = sse_get(v, "message");
        const char *id = sse_str(m, "id");
        yajl_val content = sse_get(m, "content");
        SSE_REQUIRE(id != NULL && strncmp(id, "msg_", 4) == 0 && content != NULL && YAJL_IS_ARRAY(content) &&
                        content->u.array.len == 0 && sse_get(m, "usage") != NULL,
                    "bad message_start");
        c->started = true;
    } else if (strcmp(name, "error") == 0) {
        yajl_val e = sse_get(v, "error");
        SSE_REQUIRE(sse_str(e, "type") != NULL && sse_str(e, "message") != NULL && sse_str(e, "message")[0] != '\0',
                    "error event without type and message");
        SSE_REQUIRE(c->broken_tool < 0 || c->length_cut,
                    "tool_use block %d was closed with an input that is not a JSON object, then an error: %s", c->broken_tool,
                    c->broken_input);
        c->ended = c->errored = true;
    } else {
        SSE_REQUIRE(c->started, "'%s' before message_start", name);
        if (strcmp(name, "ping") == 0) {
        } else if (strcmp(name, "content_block_start") == 0) {
            SSE_REQUIRE(sse_int(v, "index", &index) && index == c->next_index && c->open == -1,
                        "content_block_start index %lld, expected %d with no block open (open: %d)", index, c->next_index, c->open);
            yajl_val cb = sse_get(v, "content_block");
            const char *ct = sse_str(cb, "type");
            SSE_REQUIRE(ct != NULL && (!strcmp(ct, "text") || !strcmp(ct, "thinking") || !strcmp(ct, "tool_use") ||
                                       !strcmp(ct, "redacted_thinking")),
                        "block type");
            if (!strcmp(ct, "redacted_thinking"))
                SSE_REQUIRE(sse_str(cb, "data") != NULL, "redacted_thinking block without data");
            if (!strcmp(ct, "tool_use")) {
                yajl_val in = sse_get(cb, "input");
                SSE_REQUIRE(sse_str(cb, "id") != NULL && sse_str(cb, "id")[0] && sse_str(cb, "name") != NULL &&
                                sse_str(cb, "name")[0] && in != NULL && YAJL_IS_OBJECT(in) && in->u.object.len == 0,
                            "tool_use block start");
                ++c->tools;
            }
            snprintf(c->open_type, sizeof(c->open_type), "%s", ct);
            c->open = c->next_index++;
            k2a_buf_reset(&c->tool_json);
        } else if (strcmp(name, "content_block_delta") == 0) {
            SSE_REQUIRE(sse_int(v, "index", &index) && index == c->open && c->open >= 0, "delta for index %lld, open %d", index,
                        c->open);
            yajl_val delta = sse_get(v, "delta");
            const char *dt = sse_str(delta, "type");
            SSE_REQUIRE(dt != NULL, "delta without type");
            if (!strcmp(c->open_type, "text"))
                SSE_REQUIRE(!strcmp(dt, "text_delta") && sse_str(delta, "text") != NULL, "text block got %s", dt);
            else if (!strcmp(c->open_type, "redacted_thinking"))
                SSE_FAIL("a delta (%s) in a redacted_thinking block", dt);
            else if (!strcmp(c->open_type, "thinking"))
                SSE_REQUIRE((!strcmp(dt, "thinking_delta") && sse_str(delta, "thinking") != NULL) ||
                                (!strcmp(dt, "signature_delta") && sse_str(delta, "signature") != NULL),
                            "thinking block got %s", dt);
            else {
                const char *pj = sse_str(delta, "partial_json");
                SSE_REQUIRE(!strcmp(dt, "input_json_delta") && pj != NULL, "tool block got %s", dt);
                k2a_buf_appendstr(&c->tool_json, pj);
            }
        } else if (strcmp(name, "content_block_stop") == 0) {
            SSE_REQUIRE(sse_int(v, "index", &index) && index == c->open && c->open >= 0, "stop for index %lld, open %d", index,
                        c->open);
            if (!strcmp(c->open_type, "tool_use") && !sse_tool_input_ok(&c->tool_json)) {
                /* only a length stop may leave a partial input (checked at message_delta) */
                c->broken_tool = (int)index;
                snprintf(c->broken_input, sizeof(c->broken_input), "%.*s", (int)c->tool_json.len, c->tool_json.base);
            }
            c->open = -1;
        } else if (strcmp(name, "message_delta") == 0) {
            yajl_val delta = sse_get(v, "delta");
            long long out;
            const char *sr = sse_str(delta, "stop_reason");
            SSE_REQUIRE(c->open == -1 && !c->message_delta && sr != NULL && sse_int(sse_get(v, "usage"), "output_tokens", &out),
                        "bad message_delta");
            SSE_REQUIRE(c->broken_tool < 0 || !strcmp(sr, "max_tokens") || !strcmp(sr, "model_context_window_exceeded"),
                        "tool_use block %d was closed with an input that is not a JSON object, and the stop reason is %s: %s",
                        c->broken_tool, sr, c->broken_input);
            c->message_delta = true;
        } else if (strcmp(name, "message_stop") == 0) {
            SSE_REQUIRE(c->message_delta, "message_stop without message_delta");
            c->ended = true;
        } else {
            SSE_FAIL("unknown event '%s'", name);
        }
    }
    yajl_tree_free(v);
}

/* Checks (and consumes) one piece of output. */
static void sse_anthropic_feed(sse_anthropic_t *c, const k2a_buf_t *piece)
{
    sse_blocks(piece, sse_anthropic_block, c);
}

/* ---------- OpenAI ---------- */

typedef struct st_sse_openai_t {
    const char *id;
    bool include_usage;
    bool ended, errored, finished, usage_seen;
    int role_chunks;
    int ntools;
    k2a_buf_t args[SSE_MAX_TOOLS];
} sse_openai_t;

static void sse_openai_init(sse_openai_t *c, const char *id, bool include_usage)
{
    memset(c, 0, sizeof(*c)); /* args[] are initialised as tool calls appear */
    c->id = id;
    c->include_usage = include_usage;
}

static void sse_openai_dispose(sse_openai_t *c)
{
    for (int i = 0; i < c->ntools; ++i)
        k2a_buf_dispose(&c->args[i]);
}

static void sse_openai_chunk(sse_openai_t *c, yajl_val v)
{
    const char *obj = sse_str(v, "object"), *id = sse_str(v, "id");
    long long created;
    SSE_REQUIRE(obj != NULL && !strcmp(obj, "chat.completion.chunk") && id != NULL && !strcmp(id, c->id) &&
                    sse_str(v, "model") != NULL && sse_int(v, "created", &created),
                "chunk head");
    yajl_val choices = sse_get(v, "choices");
    SSE_REQUIRE(choices != NULL && YAJL_IS_ARRAY(choices), "choices is not an array");
    if (choices->u.array.len == 0) {
        yajl_val u = sse_get(v, "usage");
        long long p, k, t;
        SSE_REQUIRE(c->include_usage && c->finished && !c->usage_seen && sse_int(u, "prompt_tokens", &p) &&
                        sse_int(u, "completion_tokens", &k) && sse_int(u, "total_tokens", &t) && t == p + k,
                    "usage chunk");
        c->usage_seen = true;
        return;
    }
    SSE_REQUIRE(!c->finished, "a choice chunk after the finish chunk");
    SSE_REQUIRE(choices->u.array.len == 1, "more than one choice");
    yajl_val ch = choices->u.array.values[0];
    long long idx;
    SSE_REQUIRE(sse_int(ch, "index", &idx) && idx == 0, "choice index");
    yajl_val delta = sse_get(ch, "delta"), fr = sse_get(ch, "finish_reason");
    SSE_REQUIRE(delta != NULL && YAJL_IS_OBJECT(delta) && fr != NULL && (YAJL_IS_NULL(fr) || YAJL_IS_STRING(fr)), "choice shape");
    if (sse_str(delta, "role") != NULL)
        ++c->role_chunks;
    yajl_val content = sse_get(delta, "content"), rc = sse_get(delta, "reasoning_content");
    SSE_REQUIRE(content == NULL || YAJL_IS_STRING(content), "content is not a string");
    SSE_REQUIRE(rc == NULL || YAJL_IS_STRING(rc), "reasoning_content is not a string");
    yajl_val calls = sse_get(delta, "tool_calls");
    if (calls != NULL) {
        SSE_REQUIRE(YAJL_IS_ARRAY(calls), "tool_calls is not an array");
        for (size_t i = 0; i < calls->u.array.len; ++i) {
            yajl_val call = calls->u.array.values[i], fn = sse_get(call, "function");
            long long ti;
            SSE_REQUIRE(sse_int(call, "index", &ti) && fn != NULL, "tool call shape");
            const char *args = sse_str(fn, "arguments");
            SSE_REQUIRE(args != NULL, "tool call without arguments");
            if (sse_get(call, "id") != NULL) {
                SSE_REQUIRE(ti == c->ntools && c->ntools < SSE_MAX_TOOLS, "new tool call index %lld, expected %d", ti, c->ntools);
                k2a_buf_init(&c->args[ti], 0);
                const char *type = sse_str(call, "type"), *name = sse_str(fn, "name");
                SSE_REQUIRE(sse_str(call, "id") != NULL && sse_str(call, "id")[0] && type != NULL && !strcmp(type, "function") &&
                                name != NULL && name[0],
                            "tool call start");
                ++c->ntools;
            } else {
                SSE_REQUIRE(ti >= 0 && ti < c->ntools, "arguments for unknown tool call %lld", ti);
            }
            k2a_buf_appendstr(&c->args[ti], args);
        }
    }
    if (YAJL_IS_STRING(fr)) {
        SSE_REQUIRE(delta->u.object.len == 0, "finish chunk with a delta");
        /* only a length stop may leave partial arguments */
        for (int i = 0; i < c->ntools && strcmp(fr->u.string, "length") != 0; ++i)
            SSE_REQUIRE(sse_tool_input_ok(&c->args[i]),
                        "finished (%s) with tool call %d arguments that are not a JSON object: %.*s", fr->u.string, i,
                        (int)(c->args[i].len > 500 ? 500 : c->args[i].len), c->args[i].base);
        c->finished = true;
    }
}

static void sse_openai_block(void *ctx, const char *b, size_t n)
{
    sse_openai_t *c = ctx;
    if (n == 6 && memcmp(b, ": ping", 6) == 0) {
        SSE_REQUIRE(!c->ended, "ping after the end");
        return;
    }
    SSE_REQUIRE(n > 6 && memcmp(b, "data: ", 6) == 0 && memchr(b, '\n', n) == NULL, "not one data line: %.*s", (int)n, b);
    SSE_REQUIRE(!c->ended, "data after the end of the stream: %.*s", (int)n, b);
    if (n == 12 && memcmp(b + 6, "[DONE]", 6) == 0) {
        SSE_REQUIRE(c->finished && c->usage_seen == c->include_usage, "[DONE] before the finish (and usage) chunk");
        c->ended = true;
        return;
    }
    yajl_val v = sse_parse_json(b + 6, n - 6);
    yajl_val e = sse_get(v, "error");
    if (e != NULL) {
        SSE_REQUIRE(!c->finished && sse_str(e, "message") != NULL && sse_str(e, "message")[0] && sse_str(e, "type") != NULL,
                    "error chunk");
        c->ended = c->errored = true;
    } else {
        sse_openai_chunk(c, v);
    }
    yajl_tree_free(v);
}

static void sse_openai_feed(sse_openai_t *c, const k2a_buf_t *piece)
{
    sse_blocks(piece, sse_openai_block, c);
}

#endif
