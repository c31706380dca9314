/*
 * OpenAI Responses request decoder, part 1: what each JSON value means (see responses_req.h for the mapping). The SAX
 * machinery (frames and error paths, skipping, JSON Schema capture, containers kept as raw text, byte offsets) is the
 * one the Chat decoder uses (openai_sax.c); this file holds the key table, the value dispatch per frame and what
 * closing a frame does. Items are collected and assembled when they close (responses_req_items.c), through the Chat
 * decoder's assembly functions so that the two dialects map a conversation the same way.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_sax.h"
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

#define KEY K2A_OA_KEY
static const k2a_oa_key_t keys[] = {
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
    return k2a_oa_key_lookup(keys, sizeof(keys) / sizeof(keys[0]), s, len);
}

/* ---------- values ---------- */

static int root_value(k2a_rp_parser_t *r, uint8_t key, const k2a_oa_value_t *v, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_request_t *req = p->req;
    k2a_responses_extra_t *x = r->extra;
    int64_t i = 0;
    int e;
    if (r->in_prior) {
        /* the stored conversation: one array of items */
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array of items");
        *push = R_INPUT;
        return 0;
    }
    if (v->type == OA_V_NULL && key != K_MODEL && key != K_INPUT)
        return 0; /* an optional parameter sent as null is absent */
    switch (key) {
    case K_MODEL:
        p->has_model = true;
        return k2a_oa_get_str(p, v, &req->model);
    case K_INPUT:
        r->has_input = true;
        if (v->type == OA_V_STRING) {
            k2a_str_t s;
            if ((e = k2a_oa_get_str(p, v, &s)) != 0)
                return e;
            return k2a_rp_input_string(r, s);
        }
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "a string or an array of items");
        r->input_start = p->offset - 1;
        *push = R_INPUT;
        return 0;
    case K_INSTRUCTIONS: {
        if ((e = k2a_oa_get_str(p, v, &x->instructions)) != 0)
            return e;
        /* the literal as sent: from the quote after the key to the end of the token */
        size_t b = p->key_end;
        while (b < p->offset && p->body[b] != '"')
            ++b;
        if (b + 2 <= p->offset && p->body[p->offset - 1] == '"')
            x->instructions_json = k2a_str(p->body + b, p->offset - b);
        return 0;
    }
    case K_TOOLS:
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array");
        r->tools_start = p->offset - 1;
        *push = R_TOOLS;
        return 0;
    case K_TOOL_CHOICE:
        if (v->type == OA_V_MAP) {
            r->tc_type = r->tc_name = K2A_STR_NULL;
            r->tc_start = p->offset - 1;
            *push = R_TOOL_CHOICE;
            return 0;
        }
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string or an object");
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
        if ((e = k2a_oa_get_int(p, v, &i)) != 0)
            return e;
        if (i < 1)
            return k2a_oa_fail(p, K2A_EBAD_PARAM, "must be at least 1");
        x->has_max_output_tokens = true;
        x->max_output_tokens = i;
        return 0;
    case K_REASONING:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
        *push = R_REASONING;
        return 0;
    case K_PARALLEL_TOOL_CALLS:
        return k2a_oa_get_bool(p, v, &x->parallel_tool_calls);
    case K_TEXT:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
        *push = R_TEXT;
        return 0;
    case K_METADATA:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an object");
        return k2a_oa_start_raw(p, &x->metadata, push);
    case K_STORE:
        return k2a_oa_get_bool(p, v, &x->store);
    case K_STREAM:
        return k2a_oa_get_bool(p, v, &req->stream);
    case K_PREVIOUS_RESPONSE_ID:
        return k2a_oa_get_str(p, v, &x->previous_response_id);
    case K_TEMPERATURE:
        req->has_temperature = x->has_temperature = true;
        return k2a_oa_get_double(p, v, &req->temperature);
    case K_TOP_P:
        req->has_top_p = x->has_top_p = true;
        return k2a_oa_get_double(p, v, &req->top_p);
    default:
        return 0; /* user, include, truncation, service_tier, prompt_cache_key, ...: ignored */
    }
}

static int item_value(k2a_rp_parser_t *r, uint8_t key, const k2a_oa_value_t *v, int *push)
{
    k2a_oa_parser_t *p = &r->p;
    switch (key) {
    case K_TYPE:
        return k2a_oa_get_str(p, v, &r->item.type);
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
            r->parts_of = R_CONTENT;
            *push = R_CONTENT;
            return 0;
        default:
            return k2a_oa_type_error(p, v, "a string or an array of content parts");
        }
    case K_CALL_ID:
        return k2a_oa_get_str(p, v, &r->item.call_id);
    case K_NAME:
        return k2a_oa_get_str(p, v, &r->item.name);
    case K_ARGUMENTS:
        if (v->type == OA_V_NULL)
            return 0;
        if (v->type != OA_V_STRING)
            return k2a_oa_type_error(p, v, "a string holding a JSON object");
        if (v->len > p->limits->max_string_bytes)
            return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
        r->item.has_args = true;
        return k2a_oa_set_arguments(p, v->s, v->len, &r->item.input, &r->item.input_raw);
    case K_OUTPUT:
        if (v->type == OA_V_STRING) {
            r->item.output = 2;
            return k2a_oa_get_str(p, v, &p->msg.content_str);
        }
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "a string or an array of content parts");
        r->item.output = 3;
        r->parts_of = R_CONTENT;
        *push = R_CONTENT;
        return 0;
    case K_SUMMARY:
        if (v->type != OA_V_ARRAY)
            return k2a_oa_type_error(p, v, "an array");
        *push = R_SUMMARY;
        return 0;
    default:
        return 0; /* id, status, encrypted_content, ...: ignored */
    }
}

static int part_value(k2a_rp_parser_t *r, uint8_t key, const k2a_oa_value_t *v)
{
    k2a_oa_parser_t *p = &r->p;
    switch (key) {
    case K_TYPE:
        return k2a_oa_get_str(p, v, &r->part_type);
    case K_TEXT:
        p->part.has_text = true;
        return k2a_oa_get_str(p, v, &p->part.text);
    case K_IMAGE_URL:
        if (v->type == OA_V_NULL)
            return 0;
        p->part.has_url = true;
        return k2a_oa_get_str(p, v, &p->part.url);
    case K_FILE_ID:
        if (v->type == OA_V_NULL)
            return 0;
        r->part_file_id = true;
        return 0;
    default:
        return 0; /* detail, annotations, logprobs, ...: ignored */
    }
}

static int on_value(k2a_oa_parser_t *p, const k2a_oa_value_t *v, int *push)
{
    k2a_rp_parser_t *r = (k2a_rp_parser_t *)p; /* p is its first member */
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    uint8_t key = f->key;
    *push = v->type == OA_V_MAP || v->type == OA_V_ARRAY ? OA_PUSH_SKIP : OA_PUSH_NONE;
    switch ((k2a_rp_ctx_t)f->ctx) {
    case R_ROOT:
        return root_value(r, key, v, push);
    case R_INPUT:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "an item object");
        if (r->nitems >= p->limits->max_messages)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu items", p->limits->max_messages);
        ++r->nitems;
        r->item_start = p->offset - 1; /* the item's '{' */
        memset(&p->msg, 0, sizeof(p->msg));
        memset(&r->item, 0, sizeof(r->item));
        p->parts.n = r->summ.n = 0;
        *push = R_ITEM;
        return 0;
    case R_ITEM:
        return item_value(r, key, v, push);
    case R_CONTENT:
    case R_SUMMARY:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a content part object");
        memset(&p->part, 0, sizeof(p->part));
        r->part_type = K2A_STR_NULL;
        r->part_file_id = false;
        *push = f->ctx == R_CONTENT ? R_PART : R_SUMMARY_PART;
        return 0;
    case R_PART:
    case R_SUMMARY_PART:
        return part_value(r, key, v);
    case R_TOOLS:
        if (v->type != OA_V_MAP)
            return k2a_oa_type_error(p, v, "a tool object");
        if (p->req->ntools == p->limits->max_tools)
            return k2a_oa_fail(p, K2A_ETOOBIG, "more than %zu tools", p->limits->max_tools);
        memset(&p->tool, 0, sizeof(p->tool));
        *push = R_TOOL;
        return 0;
    case R_TOOL:
        switch (key) {
        case K_TYPE:
            return k2a_oa_get_str(p, v, &p->tool.type);
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
    case R_TOOL_CHOICE:
        if (key == K_TYPE)
            return k2a_oa_get_str(p, v, &r->tc_type);
        if (key == K_NAME)
            return k2a_oa_get_str(p, v, &r->tc_name);
        return 0;
    case R_REASONING:
        if (key == K_EFFORT && v->type != OA_V_NULL)
            return k2a_oa_get_str(p, v, &p->reasoning_effort);
        return 0;
    case R_TEXT:
        if (key == K_FORMAT && v->type != OA_V_NULL) {
            if (v->type != OA_V_MAP)
                return k2a_oa_type_error(p, v, "an object");
            p->rf_type = p->rf_name = p->rf_description = p->rf_schema = K2A_STR_NULL;
            *push = R_FORMAT;
        }
        return 0;
    case R_FORMAT:
        switch (key) {
        case K_TYPE:
            return k2a_oa_get_str(p, v, &p->rf_type);
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

static int finish_frame(k2a_oa_parser_t *p)
{
    k2a_rp_parser_t *r = (k2a_rp_parser_t *)p;
    k2a_oa_frame_t *f = &p->frames[p->depth - 1];
    switch ((k2a_rp_ctx_t)f->ctx) {
    case R_ITEM: {
        int e = k2a_rp_finish_item(r);
        return e != 0 ? e : k2a_rp_keep_item_json(r, k2a_str(p->body + r->item_start, p->offset - r->item_start));
    }
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
            r->extra->input_items = k2a_str(p->body + r->input_start, p->offset - r->input_start);
        return 0;
    case R_TOOLS:
        r->extra->tools_json = k2a_str(p->body + r->tools_start, p->offset - r->tools_start);
        return 0;
    default:
        return 0;
    }
}

static const k2a_oa_sax_ops_t ops = {key_id, on_value, finish_frame, true};

/* One document through the state machine; returns 0 or the first error (already recorded). */
static int parse(k2a_rp_parser_t *r, const char *text, size_t len)
{
    return k2a_oa_sax_parse(&r->p, text, len, r->in_prior ? "stored conversation: " : "");
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
    _Static_assert(offsetof(k2a_rp_parser_t, p) == 0, "p is the parser's first member");
    /* all but p, which k2a_oa_parser_init zeroes (a second memset of it is a second `rep stos` to wait for) */
    memset((char *)&r + sizeof(r.p), 0, sizeof(r) - sizeof(r.p));
    k2a_oa_parser_t *p = &r.p;
    r.extra = extra;
    k2a_buf_init(&r.join, limits->max_string_bytes);
    /* one frame more than the Chat decoder: the stored conversation's */
    if (k2a_oa_parser_init(p, &ops, limits, arena, out, err, 2) != 0)
        goto Exit;
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
    if (k2a_oa_sax_parse(p, body, len, "") == 0)
        k2a_rp_finish_request(&r);

Exit:
    k2a_oa_parser_dispose(p);
    free(r.summ.v);
    k2a_buf_dispose(&r.join);
    return p->code;
}

int k2a_responses_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err)
{
    k2a_responses_extra_t extra;
    return k2a_responses_decode_ex(body, len, NULL, 0, limits, arena, out, &extra, err);
}
