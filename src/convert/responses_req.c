/*
 * OpenAI Responses request decoder, part 1: the yajl SAX state machine (see responses_req.h for the mapping). It has
 * the shape of the Chat decoder's (openai_req.c): a stack of frames tagged with what they are and their current key or
 * index (which also gives the JSON path of an error), ignored values skipped by counting nesting, JSON Schemas captured
 * as compact text while they are parsed. Items are collected and assembled when they close (responses_req_items.c),
 * through the Chat decoder's assembly functions so that the two dialects map a conversation the same way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/responses_internal.h"

enum {
    K_OTHER = 0,
    K_MODEL,
    K_INPUT,
    K_INSTRUCTIONS,
    K_TOOLS,
    K_TOOL_CHOICE,
    K_MAX_OUTPUT_TOKENS,
    K_REASONING,
    K_PARALLEL_TOOL_CALLS,
    K_TEXT,
    K_METADATA,
    K_STORE,
    K_STREAM,
    K_PREVIOUS_RESPONSE_ID,
    K_TEMPERATURE,
    K_TOP_P,
    K_TYPE,
    K_ROLE,
    K_CONTENT,
    K_CALL_ID,
    K_NAME,
    K_ARGUMENTS,
    K_OUTPUT,
    K_SUMMARY,
    K_IMAGE_URL,
    K_FILE_ID,
    K_DESCRIPTION,
    K_PARAMETERS,
    K_EFFORT,
    K_FORMAT,
    K_SCHEMA,
};

static const struct {
    const char *name;
    uint8_t len, id;
} keys[] = {
#define KEY(s, id)                                                                                                                 \
    {                                                                                                                              \
        s, sizeof(s) - 1, id                                                                                                       \
    }
    KEY("type", K_TYPE),
    KEY("text", K_TEXT),
    KEY("role", K_ROLE),
    KEY("content", K_CONTENT),
    KEY("call_id", K_CALL_ID),
    KEY("name", K_NAME),
    KEY("arguments", K_ARGUMENTS),
    KEY("output", K_OUTPUT),
    KEY("summary", K_SUMMARY),
    KEY("image_url", K_IMAGE_URL),
    KEY("file_id", K_FILE_ID),
    KEY("description", K_DESCRIPTION),
    KEY("parameters", K_PARAMETERS),
    KEY("model", K_MODEL),
    KEY("input", K_INPUT),
    KEY("instructions", K_INSTRUCTIONS),
    KEY("tools", K_TOOLS),
    KEY("tool_choice", K_TOOL_CHOICE),
    KEY("max_output_tokens", K_MAX_OUTPUT_TOKENS),
    KEY("reasoning", K_REASONING),
    KEY("parallel_tool_calls", K_PARALLEL_TOOL_CALLS),
    KEY("metadata", K_METADATA),
    KEY("store", K_STORE),
    KEY("stream", K_STREAM),
    KEY("previous_response_id", K_PREVIOUS_RESPONSE_ID),
    KEY("temperature", K_TEMPERATURE),
    KEY("top_p", K_TOP_P),
    KEY("effort", K_EFFORT),
    KEY("format", K_FORMAT),
    KEY("schema", K_SCHEMA),
#undef KEY
};

static uint8_t key_id(const char *s, size_t len)
{
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

enum { PUSH_NONE = -1, PUSH_SKIP = -2, PUSH_CAPTURE = -3, PUSH_RAW = -4 };

static const char *type_name(int t)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an object", "an array"};
    return names[t];
}

static int type_error(k2a_rp_parser_t *r, const value_t *v, const char *expected)
{
    return k2a_oa_fail(&r->p, K2A_EJSON_TYPE, "expected %s, got %s", expected, type_name(v->type));
}

static bool in_buf(const char *s, const char *base, size_t len)
{
    return base != NULL && s >= base && s <= base + len;
}

static int get_str(k2a_rp_parser_t *r, const value_t *v, k2a_str_t *out)
{
    k2a_oa_parser_t *p = &r->p;
    if (v->type != V_STRING)
        return type_error(r, v, "a string");
    if (v->len > p->limits->max_string_bytes)
        return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
    if (in_buf(v->s, p->body, p->body_len) && v->s + v->len <= p->body + p->body_len) {
        *out = k2a_str(v->s, v->len);
        return 0;
    }
    char *c = k2a_arena_strndup(p->arena, v->s, v->len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    *out = k2a_str(c, v->len);
    return 0;
}

static int get_int(k2a_rp_parser_t *r, const value_t *v, int64_t *out)
{
    char tmp[32];
    if (v->type != V_NUMBER)
        return type_error(r, v, "an integer");
    if (v->len >= sizeof(tmp) || memchr(v->s, '.', v->len) != NULL || memchr(v->s, 'e', v->len) != NULL ||
        memchr(v->s, 'E', v->len) != NULL)
        return k2a_oa_fail(&r->p, K2A_EJSON_TYPE, "expected an integer");
    memcpy(tmp, v->s, v->len);
    tmp[v->len] = '\0';
    errno = 0;
    long long x = strtoll(tmp, NULL, 10);
    if (errno != 0)
        return k2a_oa_fail(&r->p, K2A_EJSON_TYPE, "integer out of range");
    *out = x;
    return 0;
}

static int get_double(k2a_rp_parser_t *r, const value_t *v, double *out)
{
    char tmp[64];
    if (v->type != V_NUMBER)
        return type_error(r, v, "a number");
    if (v->len >= sizeof(tmp))
        return k2a_oa_fail(&r->p, K2A_EJSON_TYPE, "number too long");
    memcpy(tmp, v->s, v->len);
    tmp[v->len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

static int get_bool(k2a_rp_parser_t *r, const value_t *v, bool *out)
{
    if (v->type != V_BOOL)
        return type_error(r, v, "a boolean");
    *out = v->b;
    return 0;
}

static int start_capture(k2a_rp_parser_t *r, k2a_oa_capture_t what, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    p->capture = what;
    p->cap_drop_next = p->cap_type_next = p->cap_seen_type = p->cap_type_object = p->cap_seen_properties = false;
    k2a_buf_reset(&p->scratch);
    *push = PUSH_CAPTURE;
    return 0;
}

/* A container kept as its raw text (echoed in the response): skipped, its byte range noted. */
static int start_raw(k2a_rp_parser_t *r, k2a_str_t *dst, int *push)
{
    r->raw_dst = dst;
    r->raw_start = r->offset - 1;
    *push = PUSH_RAW;
    return 0;
}

static int root_value(k2a_rp_parser_t *r, uint8_t key, const value_t *v, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_request_t *req = p->req;
    k2a_responses_extra_t *x = r->extra;
    int64_t i = 0;
    int e;
    if (r->in_prior) {
        /* the stored conversation: one array of items */
        if (v->type != V_ARRAY)
            return type_error(r, v, "an array of items");
        *push = R_INPUT;
        return 0;
    }
    if (v->type == V_NULL && key != K_MODEL && key != K_INPUT)
        return 0; /* an optional parameter sent as null is absent */
    switch (key) {
    case K_MODEL:
        p->has_model = true;
        return get_str(r, v, &req->model);
    case K_INPUT:
        r->has_input = true;
        if (v->type == V_STRING) {
            k2a_str_t s;
            if ((e = get_str(r, v, &s)) != 0)
                return e;
            return k2a_rp_input_string(r, s);
        }
        if (v->type != V_ARRAY)
            return type_error(r, v, "a string or an array of items");
        r->input_start = r->offset - 1;
        *push = R_INPUT;
        return 0;
    case K_INSTRUCTIONS: {
        if ((e = get_str(r, v, &x->instructions)) != 0)
            return e;
        /* the literal as sent: from the quote after the key to the end of the token */
        size_t b = r->key_end;
        while (b < r->offset && p->body[b] != '"')
            ++b;
        if (b + 2 <= r->offset && p->body[r->offset - 1] == '"')
            x->instructions_json = k2a_str(p->body + b, r->offset - b);
        return 0;
    }
    case K_TOOLS:
        if (v->type != V_ARRAY)
            return type_error(r, v, "an array");
        r->tools_start = r->offset - 1;
        *push = R_TOOLS;
        return 0;
    case K_TOOL_CHOICE:
        if (v->type == V_MAP) {
            r->tc_type = r->tc_name = K2A_STR_NULL;
            r->tc_start = r->offset - 1;
            *push = R_TOOL_CHOICE;
            return 0;
        }
        if (v->type != V_STRING)
            return type_error(r, v, "a string or an object");
        if (v->len == 4 && memcmp(v->s, "auto", 4) == 0) {
            req->tool_choice = K2A_TOOL_CHOICE_AUTO;
            x->tool_choice = K2A_STRLIT("\"auto\"");
        } else if (v->len == 4 && memcmp(v->s, "none", 4) == 0) {
            req->tool_choice = K2A_TOOL_CHOICE_NONE;
            x->tool_choice = K2A_STRLIT("\"none\"");
        } else if (v->len == 8 && memcmp(v->s, "required", 8) == 0) {
            req->tool_choice = K2A_TOOL_CHOICE_ANY;
            x->tool_choice = K2A_STRLIT("\"required\"");
        } else
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "unsupported tool_choice '%.*s' (expected auto, none or required)",
                               (int)(v->len > 64 ? 64 : v->len), v->s);
        return 0;
    case K_MAX_OUTPUT_TOKENS:
        if ((e = get_int(r, v, &i)) != 0)
            return e;
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        x->has_max_output_tokens = true;
        x->max_output_tokens = i;
        return 0;
    case K_REASONING:
        if (v->type != V_MAP)
            return type_error(r, v, "an object");
        *push = R_REASONING;
        return 0;
    case K_PARALLEL_TOOL_CALLS:
        return get_bool(r, v, &x->parallel_tool_calls);
    case K_TEXT:
        if (v->type != V_MAP)
            return type_error(r, v, "an object");
        *push = R_TEXT;
        return 0;
    case K_METADATA:
        if (v->type != V_MAP)
            return type_error(r, v, "an object");
        return start_raw(r, &x->metadata, push);
    case K_STORE:
        return get_bool(r, v, &x->store);
    case K_STREAM:
        return get_bool(r, v, &req->stream);
    case K_PREVIOUS_RESPONSE_ID:
        return get_str(r, v, &x->previous_response_id);
    case K_TEMPERATURE:
        req->has_temperature = x->has_temperature = true;
        return get_double(r, v, &req->temperature);
    case K_TOP_P:
        req->has_top_p = x->has_top_p = true;
        return get_double(r, v, &req->top_p);
    default:
        return 0; /* user, include, truncation, service_tier, prompt_cache_key, ...: ignored */
    }
}

static int item_value(k2a_rp_parser_t *r, uint8_t key, const value_t *v, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    switch (key) {
    case K_TYPE:
        return get_str(r, v, &r->item.type);
    case K_ROLE:
        return get_str(r, v, &p->msg.role);
    case K_CONTENT:
        switch (v->type) {
        case V_NULL:
            p->msg.content = 1;
            return 0;
        case V_STRING:
            p->msg.content = 2;
            return get_str(r, v, &p->msg.content_str);
        case V_ARRAY:
            p->msg.content = 3;
            r->parts_of = R_CONTENT;
            *push = R_CONTENT;
            return 0;
        default:
            return type_error(r, v, "a string or an array of content parts");
        }
    case K_CALL_ID:
        return get_str(r, v, &r->item.call_id);
    case K_NAME:
        return get_str(r, v, &r->item.name);
    case K_ARGUMENTS:
        if (v->type == V_NULL)
            return 0;
        if (v->type != V_STRING)
            return type_error(r, v, "a string holding a JSON object");
        if (v->len > p->limits->max_string_bytes)
            return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
        r->item.has_args = true;
        return k2a_oa_set_arguments(p, v->s, v->len, &r->item.input, &r->item.input_raw);
    case K_OUTPUT:
        if (v->type == V_STRING) {
            r->item.output = 2;
            return get_str(r, v, &p->msg.content_str);
        }
        if (v->type != V_ARRAY)
            return type_error(r, v, "a string or an array of content parts");
        r->item.output = 3;
        r->parts_of = R_CONTENT;
        *push = R_CONTENT;
        return 0;
    case K_SUMMARY:
        if (v->type != V_ARRAY)
            return type_error(r, v, "an array");
        *push = R_SUMMARY;
        return 0;
    default:
        return 0; /* id, status, encrypted_content, ...: ignored */
    }
}

static int part_value(k2a_rp_parser_t *r, uint8_t key, const value_t *v)
{
    k2a_oa_parser_t *p = &r->p;
    switch (key) {
    case K_TYPE:
        return get_str(r, v, &r->part_type);
    case K_TEXT:
        p->part.has_text = true;
        return get_str(r, v, &p->part.text);
    case K_IMAGE_URL:
        if (v->type == V_NULL)
            return 0;
        p->part.has_url = true;
        return get_str(r, v, &p->part.url);
    case K_FILE_ID:
        if (v->type == V_NULL)
            return 0;
        r->part_file_id = true;
        return 0;
    default:
        return 0; /* detail, annotations, logprobs, ...: ignored */
    }
}

static int on_value(k2a_rp_parser_t *r, const value_t *v, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    uint8_t key = f->key;
    *push = v->type == V_MAP || v->type == V_ARRAY ? PUSH_SKIP : PUSH_NONE;
    switch ((k2a_rp_ctx_t)f->ctx) {
    case R_ROOT:
        return root_value(r, key, v, push);
    case R_INPUT:
        if (v->type != V_MAP)
            return type_error(r, v, "an item object");
        if (r->nitems >= p->limits->max_messages)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu items", p->limits->max_messages);
        ++r->nitems;
        memset(&p->msg, 0, sizeof(p->msg));
        memset(&r->item, 0, sizeof(r->item));
        p->parts.n = r->summ.n = 0;
        *push = R_ITEM;
        return 0;
    case R_ITEM:
        return item_value(r, key, v, push);
    case R_CONTENT:
    case R_SUMMARY:
        if (v->type != V_MAP)
            return type_error(r, v, "a content part object");
        memset(&p->part, 0, sizeof(p->part));
        r->part_type = K2A_STR_NULL;
        r->part_file_id = false;
        *push = f->ctx == R_CONTENT ? R_PART : R_SUMMARY_PART;
        return 0;
    case R_PART:
    case R_SUMMARY_PART:
        return part_value(r, key, v);
    case R_TOOLS:
        if (v->type != V_MAP)
            return type_error(r, v, "a tool object");
        if (p->req->ntools == p->limits->max_tools)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu tools", p->limits->max_tools);
        memset(&p->tool, 0, sizeof(p->tool));
        *push = R_TOOL;
        return 0;
    case R_TOOL:
        switch (key) {
        case K_TYPE:
            return get_str(r, v, &p->tool.type);
        case K_NAME:
            p->tool.has_name = true;
            return get_str(r, v, &p->tool.name);
        case K_DESCRIPTION:
            return v->type == V_NULL ? 0 : get_str(r, v, &p->tool.description);
        case K_PARAMETERS:
            if (v->type == V_NULL)
                return 0;
            if (v->type != V_MAP)
                return type_error(r, v, "a JSON Schema object");
            p->tool.has_schema = true;
            return start_capture(r, OA_CAP_PARAMETERS, push);
        default:
            return 0; /* strict, ... */
        }
    case R_TOOL_CHOICE:
        if (key == K_TYPE)
            return get_str(r, v, &r->tc_type);
        if (key == K_NAME)
            return get_str(r, v, &r->tc_name);
        return 0;
    case R_REASONING:
        if (key == K_EFFORT && v->type != V_NULL)
            return get_str(r, v, &p->reasoning_effort);
        return 0;
    case R_TEXT:
        if (key == K_FORMAT && v->type != V_NULL) {
            if (v->type != V_MAP)
                return type_error(r, v, "an object");
            p->rf_type = p->rf_name = p->rf_description = p->rf_schema = K2A_STR_NULL;
            *push = R_FORMAT;
        }
        return 0;
    case R_FORMAT:
        switch (key) {
        case K_TYPE:
            return get_str(r, v, &p->rf_type);
        case K_NAME:
            return get_str(r, v, &p->rf_name);
        case K_DESCRIPTION:
            return v->type == V_NULL ? 0 : get_str(r, v, &p->rf_description);
        case K_SCHEMA:
            if (v->type == V_NULL)
                return 0;
            if (v->type != V_MAP)
                return type_error(r, v, "a JSON Schema object");
            return start_capture(r, OA_CAP_RF_SCHEMA, push);
        default:
            return 0;
        }
    }
    return 0;
}

static int finish_frame(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    switch ((k2a_rp_ctx_t)f->ctx) {
    case R_ITEM:
        return k2a_rp_finish_item(r);
    case R_PART:
        return k2a_rp_finish_part(r);
    case R_SUMMARY_PART:
        return k2a_rp_finish_summary_part(r);
    case R_TOOL:
        return k2a_rp_finish_tool(r);
    case R_TOOL_CHOICE:
        return k2a_rp_finish_tool_choice(r);
    case R_FORMAT:
        return k2a_rp_finish_format(r);
    case R_INPUT:
        if (!r->in_prior && p->depth == 2)
            r->extra->input_items = k2a_str(p->body + r->input_start, r->offset - r->input_start);
        return 0;
    case R_TOOLS:
        r->extra->tools_json = k2a_str(p->body + r->tools_start, r->offset - r->tools_start);
        return 0;
    default:
        return 0;
    }
}

/* ---------- capture of a JSON Schema as compact text (as the Chat decoder does for parameters) ---------- */

static int capture_done(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    char *c = k2a_arena_strndup(p->arena, p->scratch.base != NULL ? p->scratch.base : "", p->scratch.len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    k2a_str_t s = k2a_str(c, p->scratch.len);
    if (p->capture == OA_CAP_PARAMETERS)
        p->tool.schema = s;
    else if (p->capture == OA_CAP_RF_SCHEMA)
        p->rf_schema = s;
    p->capture = OA_CAP_NONE;
    return 0;
}

static int cap_error(k2a_rp_parser_t *r, int e)
{
    k2a_oa_parser_t *p = &r->p;
    if (e == K2A_EJSON_DEPTH)
        return k2a_oa_fail(p, e, "JSON nested deeper than %u levels", p->limits->max_depth);
    if (e == K2A_ETOOBIG)
        return k2a_oa_fail(p, e, "JSON value larger than %zu bytes", p->limits->max_json_value_bytes);
    return k2a_oa_fail(p, e, "%s", k2a_strerror(e));
}

static int cap_open(k2a_rp_parser_t *r, char c)
{
    k2a_oa_parser_t *p = &r->p;
    int e;
    if (p->cap_drop_next) {
        p->cap_drop_next = false;
        p->skip = 1;
        return 0;
    }
    p->cap_type_next = false;
    if ((e = k2a_oa_jw_open(&p->jw, c)) != 0)
        return cap_error(r, e);
    return 0;
}

static int cap_key(k2a_rp_parser_t *r, const char *s, size_t len)
{
    k2a_oa_parser_t *p = &r->p;
    int e;
    if (p->capture == OA_CAP_PARAMETERS && p->jw.depth == 1) {
        if (len == 6 && memcmp(s, "strict", 6) == 0) {
            p->cap_drop_next = true;
            return 0;
        }
        if (len == 4 && memcmp(s, "type", 4) == 0)
            p->cap_seen_type = p->cap_type_next = true;
        else if (len == 10 && memcmp(s, "properties", 10) == 0)
            p->cap_seen_properties = true;
    }
    if ((e = k2a_oa_jw_key(&p->jw, s, len)) != 0)
        return cap_error(r, e);
    return 0;
}

static int cap_scalar(k2a_rp_parser_t *r, const value_t *v)
{
    k2a_oa_parser_t *p = &r->p;
    int e;
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
        e = k2a_oa_jw_raw(&p->jw, "null", 4);
        break;
    case V_BOOL:
        e = v->b ? k2a_oa_jw_raw(&p->jw, "true", 4) : k2a_oa_jw_raw(&p->jw, "false", 5);
        break;
    case V_NUMBER:
        e = k2a_oa_jw_raw(&p->jw, v->s, v->len);
        break;
    default:
        e = k2a_oa_jw_string(&p->jw, v->s, v->len);
        break;
    }
    return e != 0 ? cap_error(r, e) : 0;
}

static int cap_close(k2a_rp_parser_t *r, char c)
{
    k2a_oa_parser_t *p = &r->p;
    int e;
    if (p->capture == OA_CAP_PARAMETERS && p->jw.depth == 1) {
        /* the schema root closes: make it a valid object schema for Kiro, as for a Chat tool */
        if (!p->cap_seen_type) {
            if ((e = k2a_oa_jw_key(&p->jw, "type", 4)) != 0 || (e = k2a_oa_jw_string(&p->jw, "object", 6)) != 0)
                return cap_error(r, e);
            p->cap_type_object = true;
        }
        if (p->cap_type_object && !p->cap_seen_properties) {
            if ((e = k2a_oa_jw_key(&p->jw, "properties", 10)) != 0 || (e = k2a_oa_jw_open(&p->jw, '{')) != 0 ||
                (e = k2a_oa_jw_close(&p->jw, '}')) != 0)
                return cap_error(r, e);
        }
    }
    if ((e = k2a_oa_jw_close(&p->jw, c)) != 0)
        return cap_error(r, e);
    return p->jw.depth == 0 ? capture_done(r) : 0;
}

/* ---------- yajl callbacks ---------- */

static void value_done(k2a_oa_parser_t *p)
{
    if (p->depth != 0 && p->frames[p->depth - 1].is_array)
        ++p->frames[p->depth - 1].index;
}

static int ret(k2a_rp_parser_t *r, int e)
{
    if (e != 0 && r->p.code == 0)
        k2a_oa_fail(&r->p, e, "%s", k2a_strerror(e));
    return e == 0;
}

static void track(k2a_rp_parser_t *r)
{
    r->offset = yajl_get_bytes_consumed(r->h);
}

static int scalar(k2a_rp_parser_t *r, const value_t *v)
{
    k2a_oa_parser_t *p = &r->p;
    int push, e;
    if (p->skip != 0)
        return 1;
    track(r);
    if (p->capture != OA_CAP_NONE)
        return ret(r, cap_scalar(r, v));
    if (p->depth == 0)
        return ret(r, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    e = on_value(r, v, &push);
    value_done(p);
    return ret(r, e);
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

static int open_container(k2a_rp_parser_t *r, int type)
{
    k2a_oa_parser_t *p = &r->p;
    unsigned total = p->depth + p->skip + p->jw.depth;
    if (total >= p->limits->max_depth)
        return ret(r, k2a_oa_fail(p, K2A_EJSON_DEPTH, "JSON nested deeper than %u levels", p->limits->max_depth));
    if (p->skip != 0) {
        ++p->skip;
        return 1;
    }
    track(r);
    if (p->capture != OA_CAP_NONE)
        return ret(r, cap_open(r, type == V_MAP ? '{' : '['));
    int push = R_ROOT, e;
    if (p->depth != 0) {
        value_t v = {type, false, NULL, 0};
        if ((e = on_value(r, &v, &push)) != 0)
            return ret(r, e);
    } else if (type != V_MAP) {
        return ret(r, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    }
    switch (push) {
    case PUSH_SKIP:
        p->skip = 1;
        return 1;
    case PUSH_RAW:
        p->skip = 1;
        r->raw_open = true;
        return 1;
    case PUSH_CAPTURE:
        k2a_oa_jw_init(&p->jw, &p->scratch, p->jw_first, p->limits->max_depth - p->depth);
        return ret(r, cap_open(r, type == V_MAP ? '{' : '['));
    default: {
        k2a_oa_frame_t *f = &p->frames[p->depth++];
        memset(f, 0, offsetof(k2a_oa_frame_t, keytext));
        f->ctx = (uint8_t)push;
        f->is_array = type == V_ARRAY;
        return 1;
    }
    }
}

static int close_container(k2a_rp_parser_t *r, char c)
{
    k2a_oa_parser_t *p = &r->p;
    if (p->skip != 0) {
        if (--p->skip == 0 && p->capture == OA_CAP_NONE) {
            if (r->raw_open) {
                track(r);
                r->raw_open = false;
                *r->raw_dst = k2a_str(p->body + r->raw_start, r->offset - r->raw_start);
            }
            value_done(p);
        }
        return 1;
    }
    track(r);
    if (p->capture != OA_CAP_NONE) {
        int e = cap_close(r, c);
        if (e == 0 && p->capture == OA_CAP_NONE)
            value_done(p);
        return ret(r, e);
    }
    int e = finish_frame(r);
    --p->depth;
    value_done(p);
    return ret(r, e);
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
    k2a_rp_parser_t *r = ctx;
    k2a_oa_parser_t *p = &r->p;
    if (p->skip != 0)
        return 1;
    if (p->capture != OA_CAP_NONE)
        return ret(r, cap_key(r, (const char *)s, len));
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    if (p->depth == 1)
        r->key_end = yajl_get_bytes_consumed(r->h);
    f->key = key_id((const char *)s, len);
    f->keylen = (uint8_t)(len < K2A_OA_KEY_MAX ? len : K2A_OA_KEY_MAX);
    memcpy(f->keytext, s, f->keylen);
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string, on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

/* One document through the state machine; returns 0 or the first error (already recorded). */
static int parse(k2a_rp_parser_t *r, const char *text, size_t len)
{
    k2a_oa_parser_t *p = &r->p;
    p->body = text;
    p->body_len = len;
    r->h = yajl_alloc(&callbacks, NULL, r);
    if (r->h == NULL)
        return k2a_oa_fail(p, K2A_ENOMEM, "out of memory");
    yajl_status st = yajl_parse(r->h, (const unsigned char *)text, len);
    size_t off = yajl_get_bytes_consumed(r->h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(r->h);
        off = len;
    }
    if (st != yajl_status_ok && p->code == 0) {
        if (st == yajl_status_client_canceled) {
            k2a_oa_fail(p, K2A_EINTERNAL, "decoder stopped without an error");
        } else {
            unsigned char *msg = yajl_get_error(r->h, 0, NULL, 0);
            size_t ml = msg != NULL ? strlen((const char *)msg) : 0;
            while (ml != 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
                --ml;
            k2a_oa_fail(p, K2A_EJSON_SYNTAX, "%smalformed JSON near byte %zu: %.*s", r->in_prior ? "stored conversation: " : "",
                        off, (int)ml, msg != NULL ? (const char *)msg : "");
            if (msg != NULL)
                yajl_free_error(r->h, msg);
        }
    }
    yajl_free(r->h);
    r->h = NULL;
    return p->code;
}

int k2a_responses_decode_ex(const char *body, size_t len, const char *prior, size_t prior_len, const k2a_convert_limits_t *limits,
                            k2a_arena_t *arena, k2a_ir_request_t *out, k2a_responses_extra_t *extra, k2a_convert_error_t *err)
{
    k2a_convert_limits_t deflimits;
    if (limits == NULL) {
        deflimits = k2a_convert_limits_default();
        limits = &deflimits;
    }
    k2a_convert_error_clear(err);
    memset(out, 0, sizeof(*out));
    memset(extra, 0, sizeof(*extra));
    extra->store = true;
    extra->parallel_tool_calls = true;

    k2a_rp_parser_t r;
    memset(&r, 0, sizeof(r));
    k2a_oa_parser_t *p = &r.p;
    r.extra = extra;
    p->limits = limits;
    p->arena = arena;
    p->req = out;
    p->err = err;
    k2a_buf_init(&p->scratch, limits->max_json_value_bytes);
    k2a_buf_init(&r.join, limits->max_string_bytes);

    unsigned max_depth = limits->max_depth != 0 ? limits->max_depth : 1;
    p->frames = k2a_arena_alloc(arena, (max_depth + 2) * sizeof(*p->frames));
    p->jw_first = k2a_arena_alloc(arena, max_depth + 2);
    if (p->frames == NULL || p->jw_first == NULL) {
        k2a_oa_fail_alloc(p);
        goto Exit;
    }
    if (prior != NULL) {
        /* the stored conversation, under a frame that names it in error paths */
        k2a_oa_frame_t *f = &p->frames[0];
        memset(f, 0, sizeof(*f));
        f->ctx = R_ROOT;
        f->key = K_INPUT;
        f->keylen = sizeof("previous_response") - 1;
        memcpy(f->keytext, "previous_response", f->keylen);
        p->depth = 1;
        r.in_prior = true;
        if (parse(&r, prior, prior_len) != 0)
            goto Exit;
        r.in_prior = false;
        p->depth = 0;
    }
    if (parse(&r, body, len) == 0)
        k2a_rp_finish_request(&r);

Exit:
    free(p->parts.v);
    free(p->calls.v);
    free(p->turn.v);
    free(p->asst.v);
    free(r.summ.v);
    k2a_buf_dispose(&p->scratch);
    k2a_buf_dispose(&r.join);
    return p->code;
}

int k2a_responses_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err)
{
    k2a_responses_extra_t extra;
    return k2a_responses_decode_ex(body, len, NULL, 0, limits, arena, out, &extra, err);
}
