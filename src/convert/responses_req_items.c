/*
 * OpenAI Responses request decoder, part 2: items, tools and the request as a whole turned into IR (see
 * responses_req.h for the mapping). Messages go through the Chat decoder's own assembly (k2a_oa_finish_message,
 * k2a_oa_finish_part, k2a_oa_finish_tool), so user turns, tool-result turns, system blocks and images come out exactly
 * as from the equivalent Chat Completions request; an assistant turn (messages, reasoning and function calls in a row)
 * is collected here the way the Chat decoder assembles one assistant message with reasoning_content and tool_calls
 * (k2a_oa_vec_push, k2a_oa_push_message, k2a_oa_add_system are the Chat decoder's).
 */
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_req.h"
#include "convert/responses_internal.h"

static int lim(size_t n)
{
    return n > 64 ? 64 : (int)n;
}

/* Ends the assistant turn being assembled, if any, as one ASSISTANT message. */
static int flush_asst(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    if (!r->asst_open)
        return 0;
    r->asst_open = false;
    size_t n = p->asst.n;
    p->asst.n = 0;
    return n != 0 ? k2a_oa_push_message(p, K2A_ROLE_ASSISTANT, p->asst.v, n) : 0;
}

/* Starts or continues the assistant turn (closing a tool-result turn first). */
static int open_asst(k2a_rp_parser_t *r)
{
    int e;
    if (r->asst_open)
        return 0;
    if ((e = k2a_oa_flush_turn(&r->p)) != 0)
        return e;
    r->asst_open = true;
    r->p.asst.n = 0;
    return 0;
}

int k2a_rp_keep_item_json(k2a_rp_parser_t *r, k2a_str_t json)
{
    k2a_responses_extra_t *x = r->extra;
    if (x->nitem_json == x->item_json_cap) {
        k2a_str_t *v = k2a_arena_grow(r->p.arena, x->item_json, sizeof(*v), x->nitem_json, &x->item_json_cap);
        if (v == NULL)
            return k2a_oa_fail_alloc(&r->p);
        x->item_json = v;
    }
    x->item_json[x->nitem_json++] = json;
    return 0;
}

static int push_new(k2a_rp_parser_t *r, k2a_ir_block_t *b)
{
    return k2a_oa_blocks_push(&r->p, &r->p.asst, b);
}

int k2a_rp_input_string(k2a_rp_parser_t *r, k2a_str_t text)
{
    k2a_oa_parser_t *p = &r->p;
    int e;
    /* what a stored response keeps of this input: the same as one user message item */
    k2a_buf_reset(&p->scratch);
    if ((e = k2a_buf_appendstr(&p->scratch, "[{\"type\":\"message\",\"role\":\"user\",\"content\":\"")) != 0 ||
        (e = k2a_buf_append_json_escaped(&p->scratch, text.base, text.len)) != 0 ||
        (e = k2a_buf_appendstr(&p->scratch, "\"}]")) != 0)
        return k2a_oa_fail(p, e, "input larger than %zu bytes", p->limits->max_json_value_bytes);
    char *c = k2a_arena_strndup(p->arena, p->scratch.base, p->scratch.len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    r->extra->input_items = k2a_str(c, p->scratch.len);
    if ((e = k2a_rp_keep_item_json(r, k2a_str(c + 1, p->scratch.len - 2))) != 0)
        return e;
    if ((e = flush_asst(r)) != 0)
        return e;
    memset(&p->msg, 0, sizeof(p->msg));
    p->msg.role = K2A_STRLIT("user");
    p->msg.content = 2;
    p->msg.content_str = text;
    return k2a_oa_finish_message(p);
}

int k2a_rp_finish_part(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_str_t t = r->part_type;
    if (t.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
    if (k2a_str_eq_lit(t, "input_text") || k2a_str_eq_lit(t, "output_text") || k2a_str_eq_lit(t, "text") ||
        k2a_str_eq_lit(t, "summary_text") || k2a_str_eq_lit(t, "reasoning_text")) {
        p->part.type = K2A_STRLIT("text");
    } else if (k2a_str_eq_lit(t, "input_image")) {
        if (!p->part.has_url) {
            if (r->part_file_id)
                return k2a_oa_fail_field(p, K2A_EIMAGE_URL, "file_id",
                                         "uploaded files are not supported (Kiro takes image bytes): send image_url as a base64 "
                                         "data: URL");
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "image_url", "is required");
        }
        p->part.type = K2A_STRLIT("image_url");
    } else if (k2a_str_eq_lit(t, "refusal")) {
        return 0;
    } else if (k2a_str_eq_lit(t, "input_file") || k2a_str_eq_lit(t, "input_audio")) {
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "content part type '%.*s' is not supported (text and images only)",
                                 lim(t.len), t.base);
    } else {
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "content part type '%.*s' is not supported", lim(t.len), t.base);
    }
    return k2a_oa_finish_part(p);
}

int k2a_rp_finish_summary_part(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_block_t b;
    if (!p->part.has_text)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "text", "is required");
    memset(&b, 0, sizeof(b));
    b.kind = K2A_BLOCK_TEXT;
    b.text = p->part.text;
    return k2a_oa_vec_push(p, &r->summ, &b);
}

static int assistant_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_block_t b;
    int e;
    if ((e = open_asst(r)) != 0)
        return e;
    if (p->msg.content == 2 && p->msg.content_str.len != 0) {
        memset(&b, 0, sizeof(b));
        b.kind = K2A_BLOCK_TEXT;
        b.text = p->msg.content_str;
        return push_new(r, &b);
    }
    if (p->msg.content == 3) {
        for (size_t i = 0; i < p->parts.n; ++i) {
            if (p->parts.v[i].kind != K2A_BLOCK_TEXT)
                return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "content", "only text parts are allowed in assistant messages");
            if (p->parts.v[i].text.len != 0 && (e = k2a_oa_vec_push(p, &p->asst, &p->parts.v[i])) != 0)
                return e;
        }
    }
    return 0;
}

static int message_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_str_t role = p->msg.role;
    int e;
    if (role.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "role", "is required");
    if (k2a_str_eq_lit(role, "assistant"))
        return assistant_item(r);
    if (!k2a_str_eq_lit(role, "user") && !k2a_str_eq_lit(role, "system") && !k2a_str_eq_lit(role, "developer"))
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "role", "unknown role '%.*s' (user, assistant, system or developer)",
                                 lim(role.len), role.base);
    if ((e = flush_asst(r)) != 0)
        return e;
    return k2a_oa_finish_message(p);
}

static int function_call_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_block_t b;
    int e;
    if (r->item.call_id.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "call_id", "is required");
    if (r->item.name.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "name", "is required");
    if ((e = open_asst(r)) != 0)
        return e;
    memset(&b, 0, sizeof(b));
    b.kind = K2A_BLOCK_TOOL_USE;
    b.id = r->item.call_id;
    b.name = r->item.name;
    b.input = r->item.has_args ? r->item.input : K2A_STRLIT("{}");
    b.input_raw = r->item.input_raw;
    return push_new(r, &b);
}

static int function_call_output_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_block_t one;
    const k2a_ir_block_t *blocks = NULL;
    size_t n = 0;
    int e;
    if (r->item.call_id.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "call_id", "is required");
    if (r->item.output == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "output", "is required");
    if ((e = flush_asst(r)) != 0)
        return e;
    if (r->item.output == 2) {
        memset(&one, 0, sizeof(one));
        one.kind = K2A_BLOCK_TEXT;
        one.text = p->msg.content_str;
        blocks = &one;
        n = 1;
    } else {
        blocks = p->parts.v;
        n = p->parts.n;
    }
    return k2a_oa_add_tool_result(p, r->item.call_id, blocks, n, true);
}

/* The summary texts (or else the content texts) of a reasoning item, joined by a blank line, as a THINKING block. */
static int reasoning_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    const k2a_oa_blocks_t *src = r->summ.n != 0 ? &r->summ : &p->parts;
    k2a_ir_block_t b;
    int e;
    if ((e = open_asst(r)) != 0)
        return e;
    k2a_buf_reset(&r->join);
    for (size_t i = 0; i < src->n; ++i) {
        if (src->v[i].kind != K2A_BLOCK_TEXT || src->v[i].text.len == 0)
            continue;
        if ((r->join.len != 0 && (e = k2a_buf_append(&r->join, "\n\n", 2)) != 0) ||
            (e = k2a_buf_append(&r->join, src->v[i].text.base, src->v[i].text.len)) != 0)
            return k2a_oa_fail_field(p, e, "summary", "reasoning longer than %zu bytes", p->limits->max_string_bytes);
    }
    if (r->join.len == 0)
        return 0; /* only encrypted content: nothing the model can read */
    memset(&b, 0, sizeof(b));
    b.kind = K2A_BLOCK_THINKING;
    char *c = k2a_arena_strndup(p->arena, r->join.base, r->join.len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    b.text = k2a_str(c, r->join.len);
    return push_new(r, &b);
}

int k2a_rp_finish_item(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_str_t t = r->item.type;
    if (t.base == NULL) {
        if (p->msg.role.base == NULL)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
        t = K2A_STRLIT("message");
    }
    if (k2a_str_eq_lit(t, "message"))
        return message_item(r);
    if (k2a_str_eq_lit(t, "function_call"))
        return function_call_item(r);
    if (k2a_str_eq_lit(t, "function_call_output"))
        return function_call_output_item(r);
    if (k2a_str_eq_lit(t, "reasoning"))
        return reasoning_item(r);
    if (k2a_str_eq_lit(t, "web_search_call"))
        return 0; /* a search the gateway ran in an earlier answer: its results reached the model then, not kept */
    if (k2a_str_eq_lit(t, "item_reference"))
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type",
                                 "item_reference is not supported: send the items themselves or use previous_response_id");
    return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type",
                             "item type '%.*s' is not supported (message, function_call, function_call_output, reasoning)",
                             lim(t.len), t.base);
}

int k2a_rp_finish_tool(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_str_t t = p->tool.type;
    if (t.base != NULL && !k2a_str_eq_lit(t, "function")) {
        /* web_search / web_search_preview: served through Kiro's MCP endpoint (http/websearch.h); the model decides
         * whether to search, as on OpenAI's API */
        if (k2a_str_has_prefix(t, "web_search")) { /* web_search, web_search_preview and their dated versions */
            p->req->web_search.requested = true;
            p->req->web_search.as_tool = true;
            return 0;
        }
        /* a namespace of sub-agent tools (the Codex CLI declares one on every request): accepted and not offered to
         * the model (docs/kiro-compat.md "Responses API") */
        if (k2a_str_eq_lit(t, "namespace"))
            return 0;
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "tool type '%.*s' is not supported (only function)", lim(t.len),
                                 t.base);
    }
    p->tool.has_function = true;
    return k2a_oa_finish_tool(p, true);
}

int k2a_rp_finish_tool_choice(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_request_t *req = p->req;
    k2a_str_t t = r->tc_type;
    r->extra->tool_choice = k2a_str(p->body + r->tc_start, p->offset - r->tc_start);
    if (t.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
    if (k2a_str_eq_lit(t, "function")) {
        if (r->tc_name.len == 0)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "name", "is required");
        req->tool_choice = K2A_TOOL_CHOICE_TOOL;
        req->tool_choice_name = r->tc_name;
        return 0;
    }
    if (k2a_str_has_prefix(t, "web_search")) { /* {"type":"web_search_preview"}: the search tool (http/websearch.h) */
        req->tool_choice = K2A_TOOL_CHOICE_TOOL;
        req->tool_choice_name = K2A_STRLIT("web_search");
        return 0;
    }
    return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "unsupported tool_choice type '%.*s' (expected function)", lim(t.len),
                             t.base);
}

int k2a_rp_finish_format(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_str_t t = p->rf_type;
    if (t.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
    if (k2a_str_eq_lit(t, "text"))
        p->response_format = 0;
    else if (k2a_str_eq_lit(t, "json_object"))
        p->response_format = 1;
    else if (k2a_str_eq_lit(t, "json_schema"))
        p->response_format = 2;
    else
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type",
                                 "unsupported text.format type '%.*s' (text, json_object or json_schema)", lim(t.len), t.base);
    r->extra->text_format = t;
    return 0;
}

/* ---------- the request as a whole (reasoning.effort and text.format by the Chat decoder's rules: k2a_oa_apply_*) ---------- */

int k2a_rp_finish_request(k2a_rp_parser_t *r)
{
    k2a_oa_parser_t *p = &r->p;
    k2a_ir_request_t *req = p->req;
    k2a_responses_extra_t *x = r->extra;
    int e;
    if (!p->has_model || req->model.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "model", "is required");
    if (!r->has_input && x->previous_response_id.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "input", "is required");
    if ((e = flush_asst(r)) != 0 || (e = k2a_oa_flush_turn(p)) != 0)
        return e;
    if (req->nmessages == 0)
        return k2a_oa_fail_field(p, K2A_EEMPTY_MESSAGES, "input", "must contain at least one user or assistant message");
    if (x->instructions.len != 0 && (e = k2a_oa_add_system(p, x->instructions, false, true)) != 0)
        return e;
    if (x->has_max_output_tokens)
        req->max_tokens = x->max_output_tokens;
    if (p->reasoning_effort.base != NULL)
        x->effort = p->reasoning_effort;
    if ((e = k2a_oa_apply_effort(p, "reasoning.effort")) != 0 || (e = k2a_oa_apply_response_format(p, "text.format")) != 0)
        return e;
    if (x->input_items.base == NULL)
        x->input_items = K2A_STRLIT("[]");
    if (x->tools_json.base == NULL)
        x->tools_json = K2A_STRLIT("[]");
    if (x->text_format.base == NULL)
        x->text_format = K2A_STRLIT("text");
    return 0;
}
