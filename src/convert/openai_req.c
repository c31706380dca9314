/*
 * OpenAI request decoder, part 1: the yajl SAX state machine (see openai_req.h for the mapping). A stack of
 * frames, one per open JSON container we understand, each tagged with what it is (the messages array, a
 * content part, a tool...) and its current key or index, which also gives the JSON path of an error. A
 * value we do not use is skipped by counting nesting; a JSON subtree we keep as text (tool parameters, a
 * response schema) is re-serialised compactly while it is parsed. Objects whose fields may come in any order
 * are collected and assembled when they close (openai_req_build.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_internal.h"
#include "convert/openai_req.h"

enum {
    K_OTHER = 0,
    K_MODEL,
    K_MESSAGES,
    K_ROLE,
    K_CONTENT,
    K_NAME,
    K_TOOL_CALLS,
    K_TOOL_CALL_ID,
    K_ID,
    K_TYPE,
    K_FUNCTION,
    K_ARGUMENTS,
    K_TEXT,
    K_IMAGE_URL,
    K_URL,
    K_TOOLS,
    K_DESCRIPTION,
    K_PARAMETERS,
    K_TOOL_CHOICE,
    K_MAX_TOKENS,
    K_MAX_COMPLETION_TOKENS,
    K_TEMPERATURE,
    K_TOP_P,
    K_STOP,
    K_STREAM,
    K_STREAM_OPTIONS,
    K_INCLUDE_USAGE,
    K_REASONING_EFFORT,
    K_N,
    K_RESPONSE_FORMAT,
    K_JSON_SCHEMA,
    K_SCHEMA,
    K_FUNCTIONS,
    K_FUNCTION_CALL,
    K_REASONING_CONTENT,
    K_WEB_SEARCH_OPTIONS,
    K_USER,
};

static const struct {
    const char *name;
    uint8_t len, id;
} keys[] = {
#define KEY(s, id)                                                                                                                 \
    {                                                                                                                              \
        s, sizeof(s) - 1, id                                                                                                       \
    }
    KEY("role", K_ROLE),
    KEY("content", K_CONTENT),
    KEY("type", K_TYPE),
    KEY("text", K_TEXT),
    KEY("id", K_ID),
    KEY("function", K_FUNCTION),
    KEY("name", K_NAME),
    KEY("arguments", K_ARGUMENTS),
    KEY("tool_calls", K_TOOL_CALLS),
    KEY("tool_call_id", K_TOOL_CALL_ID),
    KEY("image_url", K_IMAGE_URL),
    KEY("url", K_URL),
    KEY("description", K_DESCRIPTION),
    KEY("parameters", K_PARAMETERS),
    KEY("reasoning_content", K_REASONING_CONTENT),
    KEY("function_call", K_FUNCTION_CALL),
    KEY("model", K_MODEL),
    KEY("messages", K_MESSAGES),
    KEY("tools", K_TOOLS),
    KEY("tool_choice", K_TOOL_CHOICE),
    KEY("max_tokens", K_MAX_TOKENS),
    KEY("max_completion_tokens", K_MAX_COMPLETION_TOKENS),
    KEY("temperature", K_TEMPERATURE),
    KEY("top_p", K_TOP_P),
    KEY("stop", K_STOP),
    KEY("stream", K_STREAM),
    KEY("stream_options", K_STREAM_OPTIONS),
    KEY("include_usage", K_INCLUDE_USAGE),
    KEY("reasoning_effort", K_REASONING_EFFORT),
    KEY("n", K_N),
    KEY("response_format", K_RESPONSE_FORMAT),
    KEY("json_schema", K_JSON_SCHEMA),
    KEY("schema", K_SCHEMA),
    KEY("functions", K_FUNCTIONS),
    KEY("web_search_options", K_WEB_SEARCH_OPTIONS),
    KEY("user", K_USER),
#undef KEY
};

static uint8_t key_id(const char *s, size_t len)
{
    /* the table is ordered by frequency in real requests (message fields first); the length and first byte reject
     * nearly every other entry without a memcmp call */
    if (len == 0)
        return K_OTHER;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i)
        if (keys[i].len == len && keys[i].name[0] == s[0] && memcmp(keys[i].name + 1, s + 1, len - 1) == 0)
            return keys[i].id;
    return K_OTHER;
}

/* ---------- values ---------- */

enum { V_NULL, V_BOOL, V_NUMBER, V_STRING, V_MAP, V_ARRAY };

typedef struct st_value_t {
    int type;
    bool b;
    const char *s;
    size_t len;
} value_t;

/* what a container value turns into */
enum { PUSH_NONE = -1, PUSH_SKIP = -2, PUSH_CAPTURE = -3 };

static const char *type_name(int t)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an object", "an array"};
    return names[t];
}

static int type_error(k2a_oa_parser_t *p, const value_t *v, const char *expected)
{
    return k2a_oa_fail(p, K2A_EJSON_TYPE, "expected %s, got %s", expected, type_name(v->type));
}

/* A string value as a k2a_str_t: zero-copy when yajl handed us a pointer into the body (no escapes). */
static int get_str(k2a_oa_parser_t *p, const value_t *v, k2a_str_t *out)
{
    if (v->type != V_STRING)
        return type_error(p, v, "a string");
    if (v->len > p->limits->max_string_bytes)
        return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
    if (v->s >= p->body && v->s + v->len <= p->body + p->body_len) {
        *out = k2a_str(v->s, v->len);
        return 0;
    }
    char *c = k2a_arena_strndup(p->arena, v->s, v->len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    *out = k2a_str(c, v->len);
    return 0;
}

static int get_int(k2a_oa_parser_t *p, const value_t *v, int64_t *out)
{
    char tmp[32];
    if (v->type != V_NUMBER)
        return type_error(p, v, "an integer");
    if (v->len >= sizeof(tmp) || memchr(v->s, '.', v->len) != NULL || memchr(v->s, 'e', v->len) != NULL ||
        memchr(v->s, 'E', v->len) != NULL)
        return k2a_oa_fail(p, K2A_EJSON_TYPE, "expected an integer");
    memcpy(tmp, v->s, v->len);
    tmp[v->len] = '\0';
    errno = 0;
    long long x = strtoll(tmp, NULL, 10);
    if (errno != 0)
        return k2a_oa_fail(p, K2A_EJSON_TYPE, "integer out of range");
    *out = x;
    return 0;
}

static int get_double(k2a_oa_parser_t *p, const value_t *v, double *out)
{
    char tmp[64];
    if (v->type != V_NUMBER)
        return type_error(p, v, "a number");
    if (v->len >= sizeof(tmp))
        return k2a_oa_fail(p, K2A_EJSON_TYPE, "number too long");
    memcpy(tmp, v->s, v->len);
    tmp[v->len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

static int get_bool(k2a_oa_parser_t *p, const value_t *v, bool *out)
{
    if (v->type != V_BOOL)
        return type_error(p, v, "a boolean");
    *out = v->b;
    return 0;
}

static int grow_arena(k2a_oa_parser_t *p, void **arr, size_t elem, size_t n, size_t *cap)
{
    if (n < *cap)
        return 0;
    void *g = k2a_arena_grow(p->arena, *arr, elem, n, cap);
    if (g == NULL)
        return k2a_oa_fail_alloc(p);
    *arr = g;
    return 0;
}

static int add_stop(k2a_oa_parser_t *p, const value_t *v)
{
    k2a_ir_request_t *req = p->req;
    k2a_str_t s;
    int r;
    if ((r = get_str(p, v, &s)) != 0)
        return r;
    if (req->nstop_sequences == p->limits->max_stop_sequences)
        return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu stop sequences", p->limits->max_stop_sequences);
    if ((r = grow_arena(p, (void **)&req->stop_sequences, sizeof(*req->stop_sequences), req->nstop_sequences, &p->cap_stops)) != 0)
        return r;
    req->stop_sequences[req->nstop_sequences++] = s;
    return 0;
}

static int root_value(k2a_oa_parser_t *p, uint8_t key, const value_t *v, int *push)
{
    k2a_ir_request_t *req = p->req;
    int64_t i;
    int r;
    if (v->type == V_NULL && key != K_MODEL && key != K_MESSAGES)
        return 0; /* an optional parameter sent as null is absent */
    switch (key) {
    case K_MODEL:
        p->has_model = true;
        return get_str(p, v, &req->model);
    case K_MESSAGES:
        if (v->type != V_ARRAY)
            return type_error(p, v, "an array");
        p->has_messages = true;
        *push = OA_MESSAGES;
        return 0;
    case K_TOOLS:
    case K_FUNCTIONS:
        if (v->type != V_ARRAY)
            return type_error(p, v, "an array");
        *push = key == K_TOOLS ? OA_TOOLS : OA_FUNCTIONS;
        return 0;
    case K_TOOL_CHOICE:
        p->has_tool_choice = true;
        if (v->type == V_MAP) {
            p->choice.type = p->choice.name = K2A_STR_NULL;
            *push = OA_TOOL_CHOICE;
            return 0;
        }
        if (v->type != V_STRING)
            return type_error(p, v, "a string or an object");
        if (v->len == 4 && memcmp(v->s, "auto", 4) == 0)
            req->tool_choice = K2A_TOOL_CHOICE_AUTO;
        else if (v->len == 4 && memcmp(v->s, "none", 4) == 0)
            req->tool_choice = K2A_TOOL_CHOICE_NONE;
        else if ((v->len == 8 && memcmp(v->s, "required", 8) == 0) || (v->len == 3 && memcmp(v->s, "any", 3) == 0))
            req->tool_choice = K2A_TOOL_CHOICE_ANY;
        else
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "unsupported tool_choice '%.*s' (expected auto, none or required)",
                               (int)(v->len > 64 ? 64 : v->len), v->s);
        return 0;
    case K_FUNCTION_CALL:
        p->has_function_call = true;
        if (v->type == V_MAP) {
            p->function_call_name = K2A_STR_NULL;
            *push = OA_FUNCTION_CALL_PARAM;
            return 0;
        }
        if (v->type != V_STRING)
            return type_error(p, v, "a string or an object");
        if (v->len == 4 && memcmp(v->s, "auto", 4) == 0)
            p->function_call_choice = K2A_TOOL_CHOICE_AUTO;
        else if (v->len == 4 && memcmp(v->s, "none", 4) == 0)
            p->function_call_choice = K2A_TOOL_CHOICE_NONE;
        else
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "unsupported function_call '%.*s' (expected auto or none)",
                               (int)(v->len > 64 ? 64 : v->len), v->s);
        return 0;
    case K_MAX_TOKENS:
    case K_MAX_COMPLETION_TOKENS:
        if ((r = get_int(p, v, &i)) != 0)
            return r;
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        *(key == K_MAX_TOKENS ? &p->max_tokens : &p->max_completion_tokens) = i;
        return 0;
    case K_TEMPERATURE:
        req->has_temperature = true;
        return get_double(p, v, &req->temperature);
    case K_TOP_P:
        req->has_top_p = true;
        return get_double(p, v, &req->top_p);
    case K_STOP:
        if (v->type == V_ARRAY) {
            *push = OA_STOP;
            return 0;
        }
        if (v->type != V_STRING)
            return type_error(p, v, "a string or an array of strings");
        return add_stop(p, v);
    case K_STREAM:
        return get_bool(p, v, &req->stream);
    case K_STREAM_OPTIONS:
        if (v->type != V_MAP)
            return type_error(p, v, "an object");
        *push = OA_STREAM_OPTIONS;
        return 0;
    case K_REASONING_EFFORT:
        return get_str(p, v, &p->reasoning_effort);
    case K_N:
        if ((r = get_int(p, v, &i)) != 0)
            return r;
        if (i > 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "n > 1 is not supported");
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        return 0;
    case K_RESPONSE_FORMAT:
        if (v->type != V_MAP)
            return type_error(p, v, "an object");
        p->rf_type = p->rf_name = p->rf_description = p->rf_schema = K2A_STR_NULL;
        *push = OA_RESPONSE_FORMAT;
        return 0;
    case K_WEB_SEARCH_OPTIONS:
        /* a clear refusal rather than an answer that silently never searched (README "Web search") */
        return k2a_oa_fail(p, K2A_EBAD_PARAM,
                           "web_search_options is not supported on /v1/chat/completions: web search is served on /v1/messages "
                           "with the web_search_20250305 tool");
    case K_USER: /* the end user: the session key of sticky routing (pool/sticky.h) when the request names no session */
        if (v->len > 1024)
            return 0; /* bounded: a longer one is not a session name */
        return get_str(p, v, &req->user_id_raw);
    default:
        return 0; /* seed, logprobs, presence_penalty, metadata, ...: ignored */
    }
}

static int message_value(k2a_oa_parser_t *p, uint8_t key, const value_t *v, int *push)
{
    switch (key) {
    case K_ROLE:
        return get_str(p, v, &p->msg.role);
    case K_CONTENT:
        switch (v->type) {
        case V_NULL:
            p->msg.content = 1;
            return 0;
        case V_STRING:
            p->msg.content = 2;
            return get_str(p, v, &p->msg.content_str);
        case V_ARRAY:
            p->msg.content = 3;
            *push = OA_CONTENT;
            return 0;
        default:
            return type_error(p, v, "a string, an array of content parts or null");
        }
    case K_NAME:
        return v->type == V_NULL ? 0 : get_str(p, v, &p->msg.name);
    case K_TOOL_CALLS:
        if (v->type == V_NULL)
            return 0;
        if (v->type != V_ARRAY)
            return type_error(p, v, "an array");
        *push = OA_TOOL_CALLS;
        return 0;
    case K_TOOL_CALL_ID:
        return v->type == V_NULL ? 0 : get_str(p, v, &p->msg.tool_call_id);
    case K_FUNCTION_CALL:
        if (v->type == V_NULL)
            return 0;
        if (v->type != V_MAP)
            return type_error(p, v, "an object");
        p->msg.has_legacy_call = true;
        *push = OA_LEGACY_CALL;
        return 0;
    case K_REASONING_CONTENT:
        return v->type == V_NULL ? 0 : get_str(p, v, &p->msg.reasoning);
    default:
        return 0; /* refusal, audio, annotations, ...: ignored */
    }
}

static int start_capture(k2a_oa_parser_t *p, k2a_oa_capture_t what, int *push)
{
    p->capture = what;
    p->cap_drop_next = p->cap_type_next = p->cap_seen_type = p->cap_type_object = p->cap_seen_properties = false;
    k2a_buf_reset(&p->scratch);
    *push = PUSH_CAPTURE;
    return 0;
}

/* Dispatches a value (scalar, or the start of a container) by the context of the top frame and its key. */
static int on_value(k2a_oa_parser_t *p, const value_t *v, int *push)
{
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    uint8_t key = f->key;
    *push = v->type == V_MAP || v->type == V_ARRAY ? PUSH_SKIP : PUSH_NONE;
    switch ((k2a_oa_ctx_t)f->ctx) {
    case OA_ROOT:
        return root_value(p, key, v, push);
    case OA_MESSAGES:
        if (v->type != V_MAP)
            return type_error(p, v, "a message object");
        if (f->index >= p->limits->max_messages)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu messages", p->limits->max_messages);
        memset(&p->msg, 0, sizeof(p->msg));
        p->parts.n = p->calls.n = 0;
        *push = OA_MESSAGE;
        return 0;
    case OA_MESSAGE:
        return message_value(p, key, v, push);
    case OA_CONTENT:
        if (v->type != V_MAP)
            return type_error(p, v, "a content part object");
        memset(&p->part, 0, sizeof(p->part));
        *push = OA_PART;
        return 0;
    case OA_PART:
        switch (key) {
        case K_TYPE:
            return get_str(p, v, &p->part.type);
        case K_TEXT:
            p->part.has_text = true;
            return get_str(p, v, &p->part.text);
        case K_IMAGE_URL:
            if (v->type == V_MAP) {
                *push = OA_IMAGE_URL;
                return 0;
            }
            p->part.has_url = true;
            return get_str(p, v, &p->part.url);
        default:
            return 0;
        }
    case OA_IMAGE_URL:
        if (key == K_URL) {
            p->part.has_url = true;
            return get_str(p, v, &p->part.url);
        }
        return 0;
    case OA_TOOL_CALLS:
        if (v->type != V_MAP)
            return type_error(p, v, "a tool call object");
        memset(&p->call, 0, sizeof(p->call));
        *push = OA_TOOL_CALL;
        return 0;
    case OA_TOOL_CALL:
        switch (key) {
        case K_ID:
            return get_str(p, v, &p->call.id);
        case K_TYPE:
            return get_str(p, v, &p->call.type);
        case K_FUNCTION:
            if (v->type != V_MAP)
                return type_error(p, v, "an object");
            p->call.has_function = true;
            *push = OA_CALL_FUNCTION;
            return 0;
        default:
            return 0;
        }
    case OA_CALL_FUNCTION:
    case OA_LEGACY_CALL: {
        bool legacy = f->ctx == OA_LEGACY_CALL;
        if (key == K_NAME)
            return get_str(p, v, legacy ? &p->msg.legacy_name : &p->call.name);
        if (key != K_ARGUMENTS || v->type == V_NULL)
            return 0;
        *(legacy ? &p->msg.legacy_has_args : &p->call.has_args) = true;
        if (v->type == V_MAP)
            return start_capture(p, OA_CAP_ARGUMENTS, push);
        if (v->type != V_STRING)
            return type_error(p, v, "a string holding a JSON object");
        if (v->len > p->limits->max_string_bytes)
            return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
        return legacy ? k2a_oa_set_arguments(p, v->s, v->len, &p->msg.legacy_input, &p->msg.legacy_raw)
                      : k2a_oa_set_arguments(p, v->s, v->len, &p->call.input, &p->call.input_raw);
    }
    case OA_TOOLS:
    case OA_FUNCTIONS:
        if (v->type != V_MAP)
            return type_error(p, v, "a tool object");
        if (p->req->ntools == p->limits->max_tools)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu tools", p->limits->max_tools);
        memset(&p->tool, 0, sizeof(p->tool));
        *push = f->ctx == OA_TOOLS ? OA_TOOL : OA_TOOL_FUNCTION;
        return 0;
    case OA_TOOL:
        if (key == K_TYPE)
            return get_str(p, v, &p->tool.type);
        if (key == K_FUNCTION) {
            if (v->type != V_MAP)
                return type_error(p, v, "an object");
            p->tool.has_function = true;
            *push = OA_TOOL_FUNCTION;
        }
        return 0;
    case OA_TOOL_FUNCTION:
        switch (key) {
        case K_NAME:
            p->tool.has_name = true;
            return get_str(p, v, &p->tool.name);
        case K_DESCRIPTION:
            return v->type == V_NULL ? 0 : get_str(p, v, &p->tool.description);
        case K_PARAMETERS:
            if (v->type == V_NULL)
                return 0;
            if (v->type != V_MAP)
                return type_error(p, v, "a JSON Schema object");
            p->tool.has_schema = true;
            return start_capture(p, OA_CAP_PARAMETERS, push);
        default:
            return 0; /* strict, ... */
        }
    case OA_TOOL_CHOICE:
        if (key == K_TYPE)
            return get_str(p, v, &p->choice.type);
        if (key == K_FUNCTION) {
            if (v->type != V_MAP)
                return type_error(p, v, "an object");
            *push = OA_TOOL_CHOICE_FUNCTION;
        }
        return 0;
    case OA_TOOL_CHOICE_FUNCTION:
        return key == K_NAME ? get_str(p, v, &p->choice.name) : 0;
    case OA_FUNCTION_CALL_PARAM:
        return key == K_NAME ? get_str(p, v, &p->function_call_name) : 0;
    case OA_STOP:
        return add_stop(p, v);
    case OA_STREAM_OPTIONS:
        if (key == K_INCLUDE_USAGE && v->type != V_NULL)
            return get_bool(p, v, &p->req->include_usage);
        return 0;
    case OA_RESPONSE_FORMAT:
        if (key == K_TYPE)
            return get_str(p, v, &p->rf_type);
        if (key == K_JSON_SCHEMA) {
            if (v->type != V_MAP)
                return type_error(p, v, "an object");
            *push = OA_JSON_SCHEMA;
        }
        return 0;
    case OA_JSON_SCHEMA:
        switch (key) {
        case K_NAME:
            return get_str(p, v, &p->rf_name);
        case K_DESCRIPTION:
            return v->type == V_NULL ? 0 : get_str(p, v, &p->rf_description);
        case K_SCHEMA:
            if (v->type == V_NULL)
                return 0;
            if (v->type != V_MAP)
                return type_error(p, v, "a JSON Schema object");
            return start_capture(p, OA_CAP_RF_SCHEMA, push);
        default:
            return 0;
        }
    }
    return 0;
}

/* Called when the object or array of the top frame closes, before it is popped. */
static int finish_frame(k2a_oa_parser_t *p)
{
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    switch ((k2a_oa_ctx_t)f->ctx) {
    case OA_MESSAGE:
        return k2a_oa_finish_message(p);
    case OA_PART:
        return k2a_oa_finish_part(p);
    case OA_TOOL_CALL:
        return k2a_oa_finish_call(p);
    case OA_TOOL:
        return k2a_oa_finish_tool(p, false);
    case OA_TOOL_FUNCTION:
        return p->frames[p->depth - 2].ctx == OA_FUNCTIONS ? k2a_oa_finish_tool(p, true) : 0;
    case OA_TOOL_CHOICE:
        if (!k2a_str_eq_lit(p->choice.type, "function"))
            return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "unsupported tool_choice type '%.*s' (expected function)",
                                     (int)(p->choice.type.len > 64 ? 64 : p->choice.type.len),
                                     p->choice.type.base != NULL ? p->choice.type.base : "");
        if (p->choice.name.len == 0)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "function.name", "is required");
        p->req->tool_choice = K2A_TOOL_CHOICE_TOOL;
        p->req->tool_choice_name = p->choice.name;
        return 0;
    case OA_FUNCTION_CALL_PARAM:
        if (p->function_call_name.len == 0)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "name", "is required");
        p->function_call_choice = K2A_TOOL_CHOICE_TOOL;
        return 0;
    case OA_RESPONSE_FORMAT:
        if (k2a_str_eq_lit(p->rf_type, "text"))
            p->response_format = 0;
        else if (k2a_str_eq_lit(p->rf_type, "json_object"))
            p->response_format = 1;
        else if (k2a_str_eq_lit(p->rf_type, "json_schema"))
            p->response_format = 2;
        else if (p->rf_type.base == NULL)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
        else
            return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "unsupported response_format type '%.*s'",
                                     (int)(p->rf_type.len > 64 ? 64 : p->rf_type.len), p->rf_type.base);
        return 0;
    default:
        return 0;
    }
}

/* ---------- capture of a JSON subtree as compact text ---------- */

static int capture_done(k2a_oa_parser_t *p)
{
    char *c = k2a_arena_strndup(p->arena, p->scratch.base != NULL ? p->scratch.base : "", p->scratch.len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    k2a_str_t s = k2a_str(c, p->scratch.len);
    switch (p->capture) {
    case OA_CAP_PARAMETERS:
        p->tool.schema = s;
        break;
    case OA_CAP_ARGUMENTS:
        if (p->frames[p->depth - 1].ctx == OA_LEGACY_CALL)
            p->msg.legacy_input = s;
        else
            p->call.input = s;
        break;
    case OA_CAP_RF_SCHEMA:
        p->rf_schema = s;
        break;
    case OA_CAP_NONE:
        break;
    }
    p->capture = OA_CAP_NONE;
    return 0;
}

static int cap_error(k2a_oa_parser_t *p, int r)
{
    if (r == K2A_EJSON_DEPTH)
        return k2a_oa_fail(p, r, "JSON nested deeper than %u levels", p->limits->max_depth);
    if (r == K2A_ETOOBIG)
        return k2a_oa_fail(p, r, "JSON value larger than %zu bytes", p->limits->max_json_value_bytes);
    return k2a_oa_fail(p, r, "%s", k2a_strerror(r));
}

static int cap_open(k2a_oa_parser_t *p, char c)
{
    int r;
    if (p->cap_drop_next) {
        p->cap_drop_next = false;
        p->skip = 1;
        return 0;
    }
    p->cap_type_next = false;
    if ((r = k2a_oa_jw_open(&p->jw, c)) != 0)
        return cap_error(p, r);
    return 0;
}

static int cap_key(k2a_oa_parser_t *p, const char *s, size_t len)
{
    int r;
    if (p->capture == OA_CAP_PARAMETERS && p->jw.depth == 1) {
        if (len == 6 && memcmp(s, "strict", 6) == 0) {
            p->cap_drop_next = true;
            return 0;
        }
        if (len == 4 && memcmp(s, "type", 4) == 0) {
            p->cap_seen_type = p->cap_type_next = true;
        } else if (len == 10 && memcmp(s, "properties", 10) == 0) {
            p->cap_seen_properties = true;
        }
    }
    if ((r = k2a_oa_jw_key(&p->jw, s, len)) != 0)
        return cap_error(p, r);
    return 0;
}

static int cap_scalar(k2a_oa_parser_t *p, const value_t *v)
{
    int r;
    if (p->cap_drop_next) {
        p->cap_drop_next = false;
        return 0;
    }
    if (p->cap_type_next) {
        p->cap_type_next = false;
        p->cap_type_object = v->type == V_STRING && v->len == 6 && memcmp(v->s, "object", 6) == 0;
    }
    switch (v->type) {
    case V_NULL:
        r = k2a_oa_jw_raw(&p->jw, "null", 4);
        break;
    case V_BOOL:
        r = v->b ? k2a_oa_jw_raw(&p->jw, "true", 4) : k2a_oa_jw_raw(&p->jw, "false", 5);
        break;
    case V_NUMBER:
        r = k2a_oa_jw_raw(&p->jw, v->s, v->len);
        break;
    default:
        r = k2a_oa_jw_string(&p->jw, v->s, v->len);
        break;
    }
    return r != 0 ? cap_error(p, r) : 0;
}

static int cap_close(k2a_oa_parser_t *p, char c)
{
    int r;
    if (p->capture == OA_CAP_PARAMETERS && p->jw.depth == 1) {
        /* the schema root closes: make it a valid object schema for Kiro */
        if (!p->cap_seen_type) {
            if ((r = k2a_oa_jw_key(&p->jw, "type", 4)) != 0 || (r = k2a_oa_jw_string(&p->jw, "object", 6)) != 0)
                return cap_error(p, r);
            p->cap_type_object = true;
        }
        if (p->cap_type_object && !p->cap_seen_properties) {
            if ((r = k2a_oa_jw_key(&p->jw, "properties", 10)) != 0 || (r = k2a_oa_jw_open(&p->jw, '{')) != 0 ||
                (r = k2a_oa_jw_close(&p->jw, '}')) != 0)
                return cap_error(p, r);
        }
    }
    if ((r = k2a_oa_jw_close(&p->jw, c)) != 0)
        return cap_error(p, r);
    return p->jw.depth == 0 ? capture_done(p) : 0;
}

/* ---------- yajl callbacks ---------- */

/* The current value of the top frame is complete: arrays move to their next element. */
static void value_done(k2a_oa_parser_t *p)
{
    if (p->depth != 0 && p->frames[p->depth - 1].is_array)
        ++p->frames[p->depth - 1].index;
}

static int ret(k2a_oa_parser_t *p, int r)
{
    if (r != 0 && p->code == 0)
        k2a_oa_fail(p, r, "%s", k2a_strerror(r));
    return r == 0;
}

static int scalar(k2a_oa_parser_t *p, const value_t *v)
{
    int push, r;
    if (p->skip != 0)
        return 1;
    if (p->capture != OA_CAP_NONE)
        return ret(p, cap_scalar(p, v));
    if (p->depth == 0)
        return ret(p, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    r = on_value(p, v, &push);
    value_done(p);
    return ret(p, r);
}

static int on_null(void *ctx)
{
    value_t v = {V_NULL, false, NULL, 0};
    return scalar(ctx, &v);
}

static int on_boolean(void *ctx, int b)
{
    value_t v = {V_BOOL, b != 0, NULL, 0};
    return scalar(ctx, &v);
}

static int on_number(void *ctx, const char *s, size_t len)
{
    value_t v = {V_NUMBER, false, s, len};
    return scalar(ctx, &v);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    value_t v = {V_STRING, false, (const char *)s, len};
    return scalar(ctx, &v);
}

static int open_container(k2a_oa_parser_t *p, int type)
{
    unsigned total = p->depth + p->skip + p->jw.depth;
    if (total >= p->limits->max_depth)
        return ret(p, k2a_oa_fail(p, K2A_EJSON_DEPTH, "JSON nested deeper than %u levels", p->limits->max_depth));
    if (p->skip != 0) {
        ++p->skip;
        return 1;
    }
    if (p->capture != OA_CAP_NONE)
        return ret(p, cap_open(p, type == V_MAP ? '{' : '['));
    int push = OA_ROOT, r;
    if (p->depth != 0) {
        value_t v = {type, false, NULL, 0};
        if ((r = on_value(p, &v, &push)) != 0)
            return ret(p, r);
    } else if (type != V_MAP) {
        return ret(p, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    }
    switch (push) {
    case PUSH_SKIP:
        p->skip = 1;
        return 1;
    case PUSH_CAPTURE:
        k2a_oa_jw_init(&p->jw, &p->scratch, p->jw_first, p->limits->max_depth - p->depth);
        return ret(p, cap_open(p, type == V_MAP ? '{' : '['));
    default: {
        k2a_oa_frame_t *f = &p->frames[p->depth++];
        memset(f, 0, offsetof(k2a_oa_frame_t, keytext));
        f->ctx = (uint8_t)push;
        f->is_array = type == V_ARRAY;
        return 1;
    }
    }
}

static int close_container(k2a_oa_parser_t *p, char c)
{
    if (p->skip != 0) {
        if (--p->skip == 0 && p->capture == OA_CAP_NONE)
            value_done(p);
        return 1;
    }
    if (p->capture != OA_CAP_NONE) {
        int r = cap_close(p, c);
        if (r == 0 && p->capture == OA_CAP_NONE)
            value_done(p);
        return ret(p, r);
    }
    int r = finish_frame(p);
    --p->depth;
    value_done(p);
    return ret(p, r);
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, V_MAP);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, '}');
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, V_ARRAY);
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, ']');
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    k2a_oa_parser_t *p = ctx;
    if (p->skip != 0)
        return 1;
    if (p->capture != OA_CAP_NONE)
        return ret(p, cap_key(p, (const char *)s, len));
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    f->key = key_id((const char *)s, len);
    f->keylen = (uint8_t)(len < K2A_OA_KEY_MAX ? len : K2A_OA_KEY_MAX);
    memcpy(f->keytext, s, f->keylen);
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string, on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

int k2a_openai_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena, k2a_ir_request_t *out,
                      k2a_convert_error_t *err)
{
    k2a_convert_limits_t deflimits;
    if (limits == NULL) {
        deflimits = k2a_convert_limits_default();
        limits = &deflimits;
    }
    k2a_convert_error_clear(err);
    memset(out, 0, sizeof(*out));

    k2a_oa_parser_t p;
    memset(&p, 0, sizeof(p));
    p.body = body;
    p.body_len = len;
    p.limits = limits;
    p.arena = arena;
    p.req = out;
    p.err = err;
    k2a_buf_init(&p.scratch, limits->max_json_value_bytes);

    unsigned max_depth = limits->max_depth != 0 ? limits->max_depth : 1;
    p.frames = k2a_arena_alloc(arena, (max_depth + 1) * sizeof(*p.frames));
    p.jw_first = k2a_arena_alloc(arena, max_depth + 1);
    if (p.frames == NULL || p.jw_first == NULL) {
        k2a_oa_fail_alloc(&p);
        goto Exit;
    }

    yajl_handle h = yajl_alloc(&callbacks, NULL, &p);
    if (h == NULL) {
        k2a_oa_fail(&p, K2A_ENOMEM, "out of memory");
        goto Exit;
    }
    /* ONE call over the whole body: yajl re-lexes a string split across calls from its start (feasibility.md §0.1) */
    yajl_status st = yajl_parse(h, (const unsigned char *)body, len);
    size_t off = yajl_get_bytes_consumed(h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        off = len;
    }
    if (st != yajl_status_ok && p.code == 0) {
        if (st == yajl_status_client_canceled) {
            k2a_oa_fail(&p, K2A_EINTERNAL, "decoder stopped without an error");
        } else {
            unsigned char *msg = yajl_get_error(h, 0, NULL, 0);
            /* yajl's message ends with a newline */
            size_t ml = msg != NULL ? strlen((const char *)msg) : 0;
            while (ml != 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
                --ml;
            k2a_oa_fail(&p, K2A_EJSON_SYNTAX, "malformed JSON near byte %zu: %.*s", off, (int)ml,
                        msg != NULL ? (const char *)msg : "");
            if (msg != NULL)
                yajl_free_error(h, msg);
        }
    }
    yajl_free(h);
    if (p.code == 0)
        k2a_oa_finish_request(&p);

Exit:
    free(p.parts.v);
    free(p.calls.v);
    free(p.turn.v);
    free(p.asst.v);
    k2a_buf_dispose(&p.scratch);
    return p.code;
}
