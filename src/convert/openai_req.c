/*
 * OpenAI Chat Completions request decoder, part 1: what each JSON value means (see openai_req.h for the mapping).
 * The SAX machinery is shared with the Responses decoder (openai_sax.c: frames tagged with what they are and their
 * current key or index, which also gives the JSON path of an error; ignored values skipped; JSON subtrees such as
 * tool parameters or a response schema captured as compact text); this file holds the key table, the value
 * dispatch per frame and what closing a frame does. Objects whose fields may come in any order are collected and
 * assembled when they close (openai_req_build.c).
 */
#include <string.h>
#include "core/errors.h"
#include "convert/openai_internal.h"
#include "convert/openai_sax.h"
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

#define KEY K2A_OA_KEY
static const k2a_oa_key_t keys[] = {
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
    return k2a_oa_key_lookup(keys, sizeof(keys) / sizeof(keys[0]), s, len);
}

/* ---------- values ---------- */

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

static int add_stop(k2a_oa_parser_t *p, const k2a_oa_value_t *v)
{
    k2a_ir_request_t *req = p->req;
    k2a_str_t s;
    int r;
    if ((r = k2a_oa_get_str(p, v, &s)) != 0)
        return r;
    if (req->nstop_sequences == p->limits->max_stop_sequences)
        return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu stop sequences", p->limits->max_stop_sequences);
    if ((r = grow_arena(p, (void **)&req->stop_sequences, sizeof(*req->stop_sequences), req->nstop_sequences, &p->cap_stops)) != 0)
        return r;
    req->stop_sequences[req->nstop_sequences++] = s;
    return 0;
}

static int root_value(k2a_oa_parser_t *p, uint8_t key, const k2a_oa_value_t *v, int *push)
{
    k2a_ir_request_t *req = p->req;
    int64_t i;
    int r;
    if (v->type == OA_V_NULL && key != K_MODEL && key != K_MESSAGES)
        return 0; /* an optional parameter sent as null is absent */
    switch (key) {
    case K_MODEL:
        p->has_model = true;
        return k2a_oa_get_str(p, v, &req->model);
    case K_MESSAGES:
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array");
        p->has_messages = true;
        *push = OA_MESSAGES;
        return 0;
    case K_TOOLS:
    case K_FUNCTIONS:
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array");
        *push = key == K_TOOLS ? OA_TOOLS : OA_FUNCTIONS;
        return 0;
    case K_TOOL_CHOICE:
        p->has_tool_choice = true;
        if (v->type == OA_V_MAP) {
            p->choice.type = p->choice.name = K2A_STR_NULL;
            *push = OA_TOOL_CHOICE;
            return 0;
        }
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string or an object");
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
        if (v->type == OA_V_MAP) {
            p->function_call_name = K2A_STR_NULL;
            *push = OA_FUNCTION_CALL_PARAM;
            return 0;
        }
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string or an object");
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
        if ((r = k2a_oa_get_int(p, v, &i)) != 0)
            return r;
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        *(key == K_MAX_TOKENS ? &p->max_tokens : &p->max_completion_tokens) = i;
        return 0;
    case K_TEMPERATURE:
        req->has_temperature = true;
        return k2a_oa_get_double(p, v, &req->temperature);
    case K_TOP_P:
        req->has_top_p = true;
        return k2a_oa_get_double(p, v, &req->top_p);
    case K_STOP:
        if (v->type == OA_V_ARRAY) {
            *push = OA_STOP;
            return 0;
        }
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string or an array of strings");
        return add_stop(p, v);
    case K_STREAM:
        return k2a_oa_get_bool(p, v, &req->stream);
    case K_STREAM_OPTIONS:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
        *push = OA_STREAM_OPTIONS;
        return 0;
    case K_REASONING_EFFORT:
        return k2a_oa_get_str(p, v, &p->reasoning_effort);
    case K_N:
        if ((r = k2a_oa_get_int(p, v, &i)) != 0)
            return r;
        if (i > 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "n > 1 is not supported");
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        return 0;
    case K_RESPONSE_FORMAT:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
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
        return k2a_oa_get_str(p, v, &req->user_id_raw);
    default:
        return 0; /* seed, logprobs, presence_penalty, metadata, ...: ignored */
    }
}

static int message_value(k2a_oa_parser_t *p, uint8_t key, const k2a_oa_value_t *v, int *push)
{
    switch (key) {
    case K_ROLE:
        return k2a_oa_get_str(p, v, &p->msg.role);
    case K_CONTENT:
        switch (v->type) {
        case OA_V_NULL:
            p->msg.content = 1;
            return 0;
        case OA_V_STRING:
            p->msg.content = 2;
            return k2a_oa_get_str(p, v, &p->msg.content_str);
        case OA_V_ARRAY:
            p->msg.content = 3;
            *push = OA_CONTENT;
            return 0;
        default:
            return k2a_oa_type_error(p, v, "a string, an array of content parts or null");
        }
    case K_NAME:
        return k2a_oa_get_opt_str(p, v, &p->msg.name);
    case K_TOOL_CALLS:
        if (v->type == OA_V_NULL)
            return 0;
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array");
        *push = OA_TOOL_CALLS;
        return 0;
    case K_TOOL_CALL_ID:
        return k2a_oa_get_opt_str(p, v, &p->msg.tool_call_id);
    case K_FUNCTION_CALL:
        if (v->type == OA_V_NULL)
            return 0;
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
        p->msg.has_legacy_call = true;
        *push = OA_LEGACY_CALL;
        return 0;
    case K_REASONING_CONTENT:
        return k2a_oa_get_opt_str(p, v, &p->msg.reasoning);
    default:
        return 0; /* refusal, audio, annotations, ...: ignored */
    }
}

/* Dispatches a value (scalar, or the start of a container) by the context of the top frame and its key. */
static int on_value(k2a_oa_parser_t *p, const k2a_oa_value_t *v, int *push)
{
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    uint8_t key = f->key;
    *push = v->type == OA_V_MAP || v->type == OA_V_ARRAY ? OA_PUSH_SKIP : OA_PUSH_NONE;
    switch ((k2a_oa_ctx_t)f->ctx) {
    case OA_ROOT:
        return root_value(p, key, v, push);
    case OA_MESSAGES:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a message object");
        if (f->index >= p->limits->max_messages)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu messages", p->limits->max_messages);
        memset(&p->msg, 0, sizeof(p->msg));
        p->parts.n = p->calls.n = 0;
        *push = OA_MESSAGE;
        return 0;
    case OA_MESSAGE:
        return message_value(p, key, v, push);
    case OA_CONTENT:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a content part object");
        memset(&p->part, 0, sizeof(p->part));
        *push = OA_PART;
        return 0;
    case OA_PART:
        switch (key) {
        case K_TYPE:
            return k2a_oa_get_str(p, v, &p->part.type);
        case K_TEXT:
            p->part.has_text = true;
            return k2a_oa_get_str(p, v, &p->part.text);
        case K_IMAGE_URL:
            if (v->type == OA_V_MAP) {
                *push = OA_IMAGE_URL;
                return 0;
            }
            p->part.has_url = true;
            return k2a_oa_get_str(p, v, &p->part.url);
        default:
            return 0;
        }
    case OA_IMAGE_URL:
        if (key == K_URL) {
            p->part.has_url = true;
            return k2a_oa_get_str(p, v, &p->part.url);
        }
        return 0;
    case OA_TOOL_CALLS:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a tool call object");
        memset(&p->call, 0, sizeof(p->call));
        *push = OA_TOOL_CALL;
        return 0;
    case OA_TOOL_CALL:
        switch (key) {
        case K_ID:
            return k2a_oa_get_str(p, v, &p->call.id);
        case K_TYPE:
            return k2a_oa_get_str(p, v, &p->call.type);
        case K_FUNCTION:
            if (v->type != OA_V_MAP)
                return k2a_oa_type_error(p, v, "an object");
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
            return k2a_oa_get_str(p, v, legacy ? &p->msg.legacy_name : &p->call.name);
        if (key != K_ARGUMENTS || v->type == OA_V_NULL)
            return 0;
        *(legacy ? &p->msg.legacy_has_args : &p->call.has_args) = true;
        if (v->type == OA_V_MAP)
            return k2a_oa_start_capture(p, OA_CAP_ARGUMENTS, push);
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string holding a JSON object");
        if (v->len > p->limits->max_string_bytes)
            return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
        return legacy ? k2a_oa_set_arguments(p, v->s, v->len, &p->msg.legacy_input, &p->msg.legacy_raw)
                      : k2a_oa_set_arguments(p, v->s, v->len, &p->call.input, &p->call.input_raw);
    }
    case OA_TOOLS:
    case OA_FUNCTIONS:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a tool object");
        if (p->req->ntools == p->limits->max_tools)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu tools", p->limits->max_tools);
        memset(&p->tool, 0, sizeof(p->tool));
        *push = f->ctx == OA_TOOLS ? OA_TOOL : OA_TOOL_FUNCTION;
        return 0;
    case OA_TOOL:
        if (key == K_TYPE)
            return k2a_oa_get_str(p, v, &p->tool.type);
        if (key == K_FUNCTION) {
            if (v->type != OA_V_MAP)
                return k2a_oa_type_error(p, v, "an object");
            p->tool.has_function = true;
            *push = OA_TOOL_FUNCTION;
        }
        return 0;
    case OA_TOOL_FUNCTION:
        switch (key) {
        case K_NAME:
            p->tool.has_name = true;
            return k2a_oa_get_str(p, v, &p->tool.name);
        case K_DESCRIPTION:
            return k2a_oa_get_opt_str(p, v, &p->tool.description);
        case K_PARAMETERS:
            return k2a_oa_schema_value(p, v, OA_CAP_PARAMETERS, push);
        default:
            return 0; /* strict, ... */
        }
    case OA_TOOL_CHOICE:
        if (key == K_TYPE)
            return k2a_oa_get_str(p, v, &p->choice.type);
        if (key == K_FUNCTION) {
            if (v->type != OA_V_MAP)
                return k2a_oa_type_error(p, v, "an object");
            *push = OA_TOOL_CHOICE_FUNCTION;
        }
        return 0;
    case OA_TOOL_CHOICE_FUNCTION:
        return key == K_NAME ? k2a_oa_get_str(p, v, &p->choice.name) : 0;
    case OA_FUNCTION_CALL_PARAM:
        return key == K_NAME ? k2a_oa_get_str(p, v, &p->function_call_name) : 0;
    case OA_STOP:
        return add_stop(p, v);
    case OA_STREAM_OPTIONS:
        if (key == K_INCLUDE_USAGE && v->type != OA_V_NULL)
            return k2a_oa_get_bool(p, v, &p->req->include_usage);
        return 0;
    case OA_RESPONSE_FORMAT:
        if (key == K_TYPE)
            return k2a_oa_get_str(p, v, &p->rf_type);
        if (key == K_JSON_SCHEMA) {
            if (v->type != OA_V_MAP)
                return k2a_oa_type_error(p, v, "an object");
            *push = OA_JSON_SCHEMA;
        }
        return 0;
    case OA_JSON_SCHEMA:
        switch (key) {
        case K_NAME:
            return k2a_oa_get_str(p, v, &p->rf_name);
        case K_DESCRIPTION:
            return k2a_oa_get_opt_str(p, v, &p->rf_description);
        case K_SCHEMA:
            return k2a_oa_schema_value(p, v, OA_CAP_RF_SCHEMA, push);
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

static const k2a_oa_sax_ops_t ops = {key_id, on_value, finish_frame, false};

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
    if (k2a_oa_parser_init(&p, &ops, limits, arena, out, err, 1) == 0 && k2a_oa_sax_parse(&p, body, len, "") == 0)
        k2a_oa_finish_request(&p);
    k2a_oa_parser_dispose(&p);
    return p.code;
}
