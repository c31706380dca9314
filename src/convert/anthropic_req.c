/*
 * Anthropic Messages request → IR, in one yajl SAX pass (see anthropic_req.h). The decoder keeps a small
 * stack of frames for the containers whose shape it knows (request, messages, content blocks, tools...);
 * every other subtree is skipped by counting its depth, and the two subtrees kept verbatim (tool_use
 * input, tools[].input_schema) are taken as a slice of the body (zero-copy when already compact, else
 * re-serialised compactly). A block's fields may come in any order, so each block is assembled in a
 * builder and turned into an IR block when its object closes; a field of the wrong type is reported
 * only if the block's final type uses that field (unknown block types are dropped whole).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/anthropic_req_internal.h"
#include "convert/json_util.h"

/* ---------- value starts: containers ---------- */

static void start_capture(dec_t *d, uint8_t slot)
{
    d->skip = 1;
    d->cap_slot = slot;
    d->cap_start = yajl_get_bytes_consumed(d->h) - 1; /* the '{' just consumed */
}

static void start_skip(dec_t *d)
{
    d->skip = 1;
    d->cap_slot = S_IGNORE;
}

static void reset_block(blockb_t *b)
{
    memset(b, 0, sizeof(*b));
}

static int open_map(dec_t *d)
{
    uint8_t slot = cur_slot(d);
    frame_t *f = top(d);
    switch (slot) {
    case S_ROOT:
        d->root_seen = true;
        return k2a_areq_push_frame(d, C_REQ, false, 0, 0);
    case S_SYSBLOCK:
        if (d->req->nsystem >= d->limits->max_system_blocks)
            return k2a_areq_fail_limit(d, "system blocks", d->limits->max_system_blocks);
        memset(&d->sys, 0, sizeof(d->sys));
        return k2a_areq_push_frame(d, C_SYSBLOCK, false, 0, 0);
    case S_MESSAGE:
        if (d->req->nmessages >= d->limits->max_messages)
            return k2a_areq_fail_limit(d, "messages", d->limits->max_messages);
        memset(&d->msg, 0, sizeof(d->msg));
        return k2a_areq_push_frame(d, C_MESSAGE, false, 0, 0);
    case S_BLOCK:
        if (++d->nblocks_total > d->limits->max_blocks)
            return k2a_areq_fail_limit(d, "content blocks", d->limits->max_blocks);
        reset_block(blk_at(d, f->level));
        return k2a_areq_push_frame(d, C_BLOCK, false, 0, f->level);
    case S_B_SOURCE:
        cur_blk(d)->has_source = true;
        return k2a_areq_push_frame(d, C_SOURCE, false, 0, f->level);
    case S_B_INPUT:
        cur_blk(d)->has_input = true;
        start_capture(d, slot);
        return 1;
    case S_TOOL:
        if (d->req->ntools >= d->limits->max_tools)
            return k2a_areq_fail_limit(d, "tools", d->limits->max_tools);
        memset(&d->tool, 0, sizeof(d->tool));
        return k2a_areq_push_frame(d, C_TOOL, false, 0, 0);
    case S_T_INPUT_SCHEMA:
        start_capture(d, slot);
        return 1;
    case S_TOOL_CHOICE:
        memset(&d->tc, 0, sizeof(d->tc));
        return k2a_areq_push_frame(d, C_TOOL_CHOICE, false, 0, 0);
    case S_THINKING:
        memset(&d->th, 0, sizeof(d->th));
        return k2a_areq_push_frame(d, C_THINKING, false, 0, 0);
    case S_OUTPUT_CONFIG:
        return k2a_areq_push_frame(d, C_OUTPUT_CONFIG, false, 0, 0);
    case S_METADATA:
        return k2a_areq_push_frame(d, C_METADATA, false, 0, 0);
    case S_IGNORE:
        start_skip(d);
        return 1;
    default:
        if (!k2a_areq_wrong_type(d, slot, k2a_areq_slot_expect(slot)))
            return 0;
        start_skip(d);
        return 1;
    }
}

static int open_array(dec_t *d)
{
    uint8_t slot = cur_slot(d);
    frame_t *f = top(d);
    switch (slot) {
    /* A repeated key replaces the earlier value, as JSON.parse does: the lists start empty again. */
    case S_SYSTEM:
        d->req->system = NULL;
        d->req->nsystem = 0;
        d->sys_cap = 0;
        return k2a_areq_push_frame(d, C_SYSTEM_ARR, true, S_SYSBLOCK, 0);
    case S_MESSAGES:
        d->has_messages = true;
        d->req->messages = NULL;
        d->req->nmessages = 0;
        d->msg_cap = 0;
        return k2a_areq_push_frame(d, C_MESSAGES_ARR, true, S_MESSAGE, 0);
    case S_MSG_CONTENT:
        d->msg.content_kind = 2;
        return k2a_areq_push_frame(d, C_CONTENT_ARR, true, S_BLOCK, 1);
    case S_B_CONTENT:
        if (f->level >= BLOCK_LEVELS) {
            start_skip(d); /* content of a nested block: nothing we use */
            return 1;
        }
        cur_blk(d)->content_kind = 2;
        return k2a_areq_push_frame(d, C_CONTENT_ARR, true, S_BLOCK, (uint8_t)(f->level + 1));
    case S_TOOLS:
        d->req->tools = NULL;
        d->req->ntools = 0;
        d->tools_cap = 0;
        return k2a_areq_push_frame(d, C_TOOLS_ARR, true, S_TOOL, 0);
    case S_STOP_SEQUENCES:
        d->req->stop_sequences = NULL;
        d->req->nstop_sequences = 0;
        d->stop_cap = 0;
        return k2a_areq_push_frame(d, C_STOP_ARR, true, S_STOP, 0);
    case S_IGNORE:
        start_skip(d);
        return 1;
    default:
        if (!k2a_areq_wrong_type(d, slot, k2a_areq_slot_expect(slot)))
            return 0;
        start_skip(d);
        return 1;
    }
}

static int on_start_map(void *ctx)
{
    dec_t *d = ctx;
    if (++d->depth > d->limits->max_depth)
        return k2a_areq_fail(d, K2A_EJSON_DEPTH, "request body: JSON nested deeper than %u levels", d->limits->max_depth);
    if (d->skip != 0) {
        ++d->skip;
        return 1;
    }
    return open_map(d);
}

static int on_start_array(void *ctx)
{
    dec_t *d = ctx;
    if (++d->depth > d->limits->max_depth)
        return k2a_areq_fail(d, K2A_EJSON_DEPTH, "request body: JSON nested deeper than %u levels", d->limits->max_depth);
    if (d->skip != 0) {
        ++d->skip;
        return 1;
    }
    if (d->nframes == 0)
        return k2a_areq_fail_type(d, "a JSON object");
    return open_array(d);
}

/* ---------- value ends: containers ---------- */

static int finish_capture(dec_t *d)
{
    size_t end = yajl_get_bytes_consumed(d->h);
    if (end <= d->cap_start || end > d->len || d->body[d->cap_start] != '{' || d->body[end - 1] != '}')
        return k2a_areq_fail(d, K2A_EINTERNAL, "internal error while capturing a JSON value");
    size_t n = end - d->cap_start;
    if (n > d->limits->max_json_value_bytes) {
        char path[256];
        k2a_areq_value_path(d, path, sizeof(path));
        return k2a_areq_fail(d, K2A_ETOOBIG, "%s: JSON value of %zu bytes exceeds the limit of %zu bytes", path, n,
                             d->limits->max_json_value_bytes);
    }
    k2a_str_t v = k2a_str(d->body + d->cap_start, n);
    if (!k2a_json_is_compact(v.base, v.len)) {
        int r = k2a_json_reserialize(d->arena, v.base, v.len, d->limits->max_json_value_bytes, 0, &v, NULL);
        if (r == K2A_ENOMEM)
            return k2a_areq_fail_nomem(d);
        if (r != 0)
            return k2a_areq_fail(d, r, "internal error while compacting a JSON value");
    }
    if (d->cap_slot == S_B_INPUT)
        cur_blk(d)->input = v;
    else
        d->tool.input_schema = v;
    return 1;
}

static int close_frame(dec_t *d)
{
    frame_t *f = top(d);
    int ok = 1;
    switch (f->ctx) {
    case C_SYSBLOCK:
        ok = k2a_areq_finish_sysblock(d);
        break;
    case C_MESSAGE:
        ok = k2a_areq_finish_message(d);
        break;
    case C_BLOCK:
        ok = k2a_areq_finish_block(d);
        break;
    case C_TOOL:
        ok = k2a_areq_finish_tool(d);
        break;
    case C_TOOL_CHOICE:
        ok = k2a_areq_finish_tool_choice(d);
        break;
    case C_THINKING:
        ok = k2a_areq_finish_thinking(d);
        break;
    default:
        break;
    }
    if (!ok)
        return 0;
    --d->nframes;
    value_done(d);
    return 1;
}

static int on_end_map(void *ctx)
{
    dec_t *d = ctx;
    --d->depth;
    if (d->skip != 0) {
        if (--d->skip == 0) {
            if (d->cap_slot != S_IGNORE && !finish_capture(d))
                return 0;
            value_done(d);
        }
        return 1;
    }
    return close_frame(d);
}

static int on_end_array(void *ctx)
{
    dec_t *d = ctx;
    --d->depth;
    if (d->skip != 0) {
        if (--d->skip == 0)
            value_done(d);
        return 1;
    }
    return close_frame(d);
}

/* ---------- keys and scalars ---------- */

static int on_map_key(void *ctx, const unsigned char *k, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    frame_t *f = top(d);
    k2a_str_t key;
    if (!k2a_areq_keep_str(d, k, l, &key))
        return k2a_areq_fail_nomem(d);
    f->key = key;
    f->slot = k2a_areq_key_slot(f, key);
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    if (slot == S_IGNORE) {
        value_done(d);
        return 1;
    }
    if (l > d->limits->max_string_bytes) {
        char path[256];
        k2a_areq_value_path(d, path, sizeof(path));
        return k2a_areq_fail(d, K2A_ETOOBIG, "%s: string of %zu bytes exceeds the limit of %zu bytes", path, l,
                             d->limits->max_string_bytes);
    }
    k2a_str_t v;
    if (!k2a_areq_keep_str(d, s, l, &v))
        return k2a_areq_fail_nomem(d);
    k2a_ir_request_t *r = d->req;
    blockb_t *b;
    switch (slot) {
    case S_ROOT:
        return k2a_areq_fail_type(d, "a JSON object");
    case S_MODEL:
        r->model = v;
        d->has_model = true;
        break;
    case S_SYSTEM: {
        k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
        if (t == NULL)
            return k2a_areq_fail_nomem(d);
        t->kind = K2A_BLOCK_TEXT;
        t->text = v;
        r->system = t;
        r->nsystem = 1;
        d->sys_cap = 1;
        break;
    }
    case S_SYS_TYPE:
        d->sys.type = v;
        d->sys.has_type = true;
        break;
    case S_SYS_TEXT:
        d->sys.text = v;
        break;
    case S_MSG_ROLE:
        d->msg.role = v;
        d->msg.has_role = true;
        break;
    case S_MSG_CONTENT:
        d->msg.content_kind = 1;
        d->msg.content_str = v;
        break;
    case S_B_TYPE:
        b = cur_blk(d);
        b->type = v;
        b->has_type = true;
        break;
    case S_B_TEXT:
        cur_blk(d)->text = v;
        break;
    case S_B_THINKING:
        cur_blk(d)->thinking = v;
        break;
    case S_B_SIGNATURE:
        cur_blk(d)->signature = v;
        break;
    case S_B_DATA:
        cur_blk(d)->data = v;
        break;
    case S_B_ID:
        cur_blk(d)->id = v;
        break;
    case S_B_NAME:
        cur_blk(d)->name = v;
        break;
    case S_B_TOOL_USE_ID:
        cur_blk(d)->tool_use_id = v;
        break;
    case S_B_TITLE:
        cur_blk(d)->title = v;
        break;
    case S_B_CONTENT:
        b = cur_blk(d);
        if (top(d)->level < BLOCK_LEVELS) {
            b->content_kind = 1;
            b->content_str = v;
        }
        break;
    case S_SRC_TYPE:
        cur_blk(d)->src_type = v;
        break;
    case S_SRC_MEDIA_TYPE:
        cur_blk(d)->src_media_type = v;
        break;
    case S_SRC_DATA:
        cur_blk(d)->src_data = v;
        break;
    case S_SRC_URL:
        cur_blk(d)->src_url = v;
        break;
    case S_T_NAME:
        d->tool.name = v;
        d->tool.has_name = true;
        break;
    case S_T_DESCRIPTION:
        d->tool.description = v;
        break;
    case S_T_TYPE:
        d->tool.type = v;
        d->tool.has_type = true;
        break;
    case S_TOOL_CHOICE:
        /* lenient: a bare string ("auto", "any", "none") */
        if (key_is(v, "auto"))
            r->tool_choice = K2A_TOOL_CHOICE_AUTO;
        else if (key_is(v, "any") || key_is(v, "required"))
            r->tool_choice = K2A_TOOL_CHOICE_ANY;
        else if (key_is(v, "none"))
            r->tool_choice = K2A_TOOL_CHOICE_NONE;
        else
            return k2a_areq_fail(d, K2A_EBAD_PARAM, "tool_choice: must be an object such as {\"type\":\"auto\"}");
        break;
    case S_TC_TYPE:
        d->tc.type = v;
        break;
    case S_TC_NAME:
        d->tc.name = v;
        break;
    case S_TH_TYPE:
        d->th.type = v;
        break;
    case S_TH_DISPLAY:
        d->th.display = v;
        break;
    case S_OC_EFFORT:
        r->thinking.effort = v;
        break;
    case S_STOP:
        if (r->nstop_sequences >= d->limits->max_stop_sequences)
            return k2a_areq_fail_limit(d, "stop sequences", d->limits->max_stop_sequences);
        if (r->nstop_sequences == d->stop_cap) {
            k2a_str_t *nv = k2a_arena_grow(d->arena, r->stop_sequences, sizeof(*nv), r->nstop_sequences, &d->stop_cap);
            if (nv == NULL)
                return k2a_areq_fail_nomem(d);
            r->stop_sequences = nv;
        }
        r->stop_sequences[r->nstop_sequences++] = v;
        break;
    case S_MD_USER_ID:
        r->user_id_raw = v;
        r->session_id = k2a_anthropic_session_from_user_id(v, d->arena);
        break;
    default:
        if (!k2a_areq_wrong_type(d, slot, k2a_areq_slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_number(void *ctx, const char *s, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    k2a_ir_request_t *r = d->req;
    int64_t i;
    double v;
    switch (slot) {
    case S_IGNORE:
        break;
    case S_ROOT:
        return k2a_areq_fail_type(d, "a JSON object");
    case S_MAX_TOKENS:
        if (!k2a_areq_parse_int(s, l, &i))
            return k2a_areq_fail_type(d, "an integer");
        if (i < 0)
            return k2a_areq_fail(d, K2A_EBAD_PARAM, "max_tokens: must not be negative");
        r->max_tokens = i;
        d->has_max_tokens = true;
        break;
    case S_TH_BUDGET:
        if (!k2a_areq_parse_int(s, l, &i))
            return k2a_areq_fail_type(d, "an integer");
        d->th.budget = i;
        break;
    case S_T_MAX_USES:
        if (!k2a_areq_parse_int(s, l, &i))
            return k2a_areq_fail_type(d, "an integer");
        if (i < 1)
            return k2a_areq_fail(d, K2A_EBAD_PARAM, "tools: max_uses must be at least 1");
        d->tool.max_uses = i;
        break;
    case S_TEMPERATURE:
    case S_TOP_P:
        if (!k2a_areq_parse_double(s, l, &v))
            return k2a_areq_fail_type(d, "a number");
        if (slot == S_TEMPERATURE) {
            r->has_temperature = true;
            r->temperature = v;
        } else {
            r->has_top_p = true;
            r->top_p = v;
        }
        break;
    default:
        if (!k2a_areq_wrong_type(d, slot, k2a_areq_slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_boolean(void *ctx, int b)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    switch (slot) {
    case S_IGNORE:
        break;
    case S_ROOT:
        return k2a_areq_fail_type(d, "a JSON object");
    case S_STREAM:
        d->req->stream = b != 0;
        break;
    case S_B_IS_ERROR:
        cur_blk(d)->is_error = b != 0;
        break;
    default:
        if (!k2a_areq_wrong_type(d, slot, k2a_areq_slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_null(void *ctx)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    if (cur_slot(d) == S_ROOT)
        return k2a_areq_fail_type(d, "a JSON object");
    /* null counts as absent; array elements that must be objects are still rejected */
    switch (cur_slot(d)) {
    case S_SYSBLOCK:
    case S_MESSAGE:
    case S_BLOCK:
    case S_TOOL:
        return k2a_areq_fail_type(d, "an object");
    case S_STOP:
        return k2a_areq_fail_type(d, "a string");
    }
    value_done(d);
    return 1;
}

static const yajl_callbacks decoder_callbacks = {on_null,      on_boolean, NULL,       NULL,           on_number,   on_string,
                                                 on_start_map, on_map_key, on_end_map, on_start_array, on_end_array};

/* ---------- entry points ---------- */

static void syntax_error(dec_t *d, yajl_status st)
{
    size_t off = yajl_get_bytes_consumed(d->h);
    char path[256];
    k2a_areq_format_path(d, d->nframes, path, sizeof(path));
    unsigned char *msg = yajl_get_error(d->h, 0, (const unsigned char *)d->body, d->len);
    char clean[160] = "invalid JSON";
    if (msg != NULL) {
        const char *m = (const char *)msg;
        if (strncmp(m, "parse error: ", 13) == 0)
            m += 13;
        size_t n = strcspn(m, "\n");
        if (n >= sizeof(clean))
            n = sizeof(clean) - 1;
        memcpy(clean, m, n);
        clean[n] = '\0';
        yajl_free_error(d->h, msg);
    }
    (void)st;
    if (path[0] != '\0')
        k2a_areq_fail(d, K2A_EJSON_SYNTAX, "malformed JSON at byte %zu (in %s): %s", off, path, clean);
    else
        k2a_areq_fail(d, K2A_EJSON_SYNTAX, "malformed JSON at byte %zu: %s", off, clean);
}

int k2a_anthropic_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err)
{
    k2a_convert_limits_t deflimits;
    if (limits == NULL) {
        deflimits = k2a_convert_limits_default();
        limits = &deflimits;
    }
    k2a_convert_error_clear(err);
    memset(out, 0, sizeof(*out));

    dec_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    d->body = body;
    d->len = len;
    d->limits = limits;
    d->arena = arena;
    d->req = out;
    d->err = err;
    int ret = 0;
    if ((d->h = yajl_alloc(&decoder_callbacks, NULL, d)) == NULL) {
        ret = k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
        goto Exit;
    }
    if (len == 0) {
        ret = k2a_convert_error_set(err, K2A_EJSON_SYNTAX, "request body is empty");
        goto Exit;
    }
    /* the whole body in ONE yajl_parse call: a split string would be re-lexed from its start (feasibility.md §0.1) */
    yajl_status st = yajl_parse(d->h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(d->h);
    if (st != yajl_status_ok) {
        if (d->code == 0)
            syntax_error(d, st);
        ret = d->code;
        goto Exit;
    }
    if (!d->root_seen) {
        ret = k2a_convert_error_set(err, K2A_EJSON_TYPE, "request body: expected a JSON object");
        goto Exit;
    }
    if (!d->has_model) {
        ret = k2a_convert_error_set(err, K2A_EMISSING_FIELD, "model: missing");
        goto Exit;
    }
    if (!d->has_messages) {
        ret = k2a_convert_error_set(err, K2A_EMISSING_FIELD, "messages: missing");
        goto Exit;
    }
    if (d->has_max_tokens && d->req->max_tokens == 0 && d->req->thinking.mode == K2A_THINKING_ENABLED) {
        /* no room for a thinking budget (kiro-protocol-2026.md §7) */
        ret = k2a_convert_error_set(err, K2A_EBAD_PARAM, "thinking: type \"enabled\" needs max_tokens greater than 0");
        goto Exit;
    }
Exit:
    if (d->h != NULL)
        yajl_free(d->h);
    free(d);
    return ret;
}
