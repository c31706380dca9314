/*
 * The Anthropic request decoder's builders → IR objects (see anthropic_req_internal.h): content blocks (with
 * the deferred type errors of their fields), messages, tools (web_search noted in the IR, other server tools dropped), system
 * blocks, tool_choice and thinking; and the session id carried by metadata.user_id.
 */
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/anthropic_req_internal.h"

static bool is_image_media_type(k2a_str_t t)
{
    return key_is(t, "image/png") || key_is(t, "image/jpeg") || key_is(t, "image/gif") || key_is(t, "image/webp");
}

static const unsigned type_uses[] = {
    /* K2A_BLOCK_TEXT */ F_TEXT,
    /* K2A_BLOCK_IMAGE */ F_SOURCE,
    /* K2A_BLOCK_TOOL_USE */ F_ID | F_NAME | F_INPUT,
    /* K2A_BLOCK_TOOL_RESULT */ F_TOOL_USE_ID | F_CONTENT | F_IS_ERROR,
    /* K2A_BLOCK_THINKING */ F_THINKING | F_SIGNATURE,
    /* K2A_BLOCK_REDACTED_THINKING */ F_DATA,
    /* K2A_BLOCK_DOCUMENT */ F_SOURCE | F_TITLE,
};

static int block_kind(k2a_str_t t)
{
    if (key_is(t, "text"))
        return K2A_BLOCK_TEXT;
    if (key_is(t, "image"))
        return K2A_BLOCK_IMAGE;
    if (key_is(t, "tool_use"))
        return K2A_BLOCK_TOOL_USE;
    if (key_is(t, "tool_result"))
        return K2A_BLOCK_TOOL_RESULT;
    if (key_is(t, "thinking"))
        return K2A_BLOCK_THINKING;
    if (key_is(t, "redacted_thinking"))
        return K2A_BLOCK_REDACTED_THINKING;
    if (key_is(t, "document"))
        return K2A_BLOCK_DOCUMENT;
    return -1;
}

/* Builds the IR block of a closed block object (top frame C_BLOCK). Returns 0 on error, 1 otherwise. */
int k2a_areq_finish_block(dec_t *d)
{
    frame_t *f = top(d);
    uint8_t level = f->level;
    blockb_t *b = blk_at(d, level);
    blocklist_t *list = level == 1 ? &d->msg.blocks : &blk_at(d, 1)->content;
    if (!b->has_type)
        return k2a_areq_fail_missing(d, "type");
    int kind = block_kind(b->type);
    if (kind < 0) {
        k2a_debug("anthropic request: dropping content block of type \"%.*s\"", (int)(b->type.len < 64 ? b->type.len : 64),
                  b->type.base);
        return 1;
    }
    if (level == BLOCK_LEVELS && kind != K2A_BLOCK_TEXT && kind != K2A_BLOCK_IMAGE && kind != K2A_BLOCK_DOCUMENT) {
        k2a_debug("anthropic request: dropping a \"%.*s\" block nested in a tool_result", (int)b->type.len, b->type.base);
        return 1;
    }
    if ((b->bad_field & type_uses[kind]) != 0)
        return k2a_areq_fail(d, K2A_EJSON_TYPE, "%s: expected %s", b->bad_path, b->bad_expect);
    if ((kind == K2A_BLOCK_IMAGE || kind == K2A_BLOCK_DOCUMENT) && b->has_source && !k2a_str_is_set(b->src_type))
        return k2a_areq_fail_missing(d, "source.type");
    k2a_ir_block_t ob;
    memset(&ob, 0, sizeof(ob));
    ob.kind = kind;
    switch (kind) {
    case K2A_BLOCK_TEXT:
        if (!k2a_str_is_set(b->text))
            return k2a_areq_fail_missing(d, "text");
        ob.text = b->text;
        break;
    case K2A_BLOCK_IMAGE:
        if (!b->has_source)
            return k2a_areq_fail_missing(d, "source");
        if (!key_is(b->src_type, "base64"))
            return k2a_areq_fail_object(
                d, K2A_EIMAGE_URL, "source", "image source type \"%.*s\" is not supported: only base64 image data is supported",
                (int)(b->src_type.len < 32 ? b->src_type.len : 32), b->src_type.base != NULL ? b->src_type.base : "");
        if (!k2a_str_is_set(b->src_media_type))
            return k2a_areq_fail_missing(d, "source.media_type");
        if (!k2a_str_is_set(b->src_data))
            return k2a_areq_fail_missing(d, "source.data");
        if (!is_image_media_type(b->src_media_type))
            return k2a_areq_fail_object(d, K2A_EIMAGE_INVALID, "source.media_type",
                                        "unsupported image type \"%.*s\" (supported: image/jpeg, image/png, image/gif, image/webp)",
                                        (int)(b->src_media_type.len < 64 ? b->src_media_type.len : 64), b->src_media_type.base);
        ob.media_type = b->src_media_type;
        ob.data = b->src_data;
        break;
    case K2A_BLOCK_TOOL_USE:
        if (!k2a_str_is_set(b->id))
            return k2a_areq_fail_missing(d, "id");
        if (!k2a_str_is_set(b->name))
            return k2a_areq_fail_missing(d, "name");
        ob.id = b->id;
        ob.name = b->name;
        ob.input = b->has_input && k2a_str_is_set(b->input) ? b->input : K2A_STRLIT("{}");
        break;
    case K2A_BLOCK_TOOL_RESULT:
        if (!k2a_str_is_set(b->tool_use_id))
            return k2a_areq_fail_missing(d, "tool_use_id");
        ob.tool_use_id = b->tool_use_id;
        ob.is_error = b->is_error;
        if (b->content_kind == 1) {
            k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
            if (t == NULL)
                return k2a_areq_fail_nomem(d);
            t->kind = K2A_BLOCK_TEXT;
            t->text = b->content_str;
            ob.content = t;
            ob.ncontent = 1;
        } else if (b->content_kind == 2) {
            ob.content = b->content.v;
            ob.ncontent = b->content.n;
        }
        break;
    case K2A_BLOCK_THINKING:
        ob.text = k2a_str_is_set(b->thinking) ? b->thinking : K2A_STRLIT("");
        ob.signature = b->signature;
        break;
    case K2A_BLOCK_REDACTED_THINKING:
        ob.text = k2a_str_is_set(b->data) ? b->data : K2A_STRLIT("");
        break;
    case K2A_BLOCK_DOCUMENT:
        if (!b->has_source)
            return k2a_areq_fail_missing(d, "source");
        if (!key_is(b->src_type, "text"))
            return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "source.type",
                                        "document source \"%.*s\" is not supported: only text documents (source.type \"text\") are",
                                        (int)(b->src_type.len < 32 ? b->src_type.len : 32),
                                        b->src_type.base != NULL ? b->src_type.base : "");
        if (!k2a_str_is_set(b->src_data))
            return k2a_areq_fail_missing(d, "source.data");
        ob.text = b->src_data;
        ob.name = b->title;
        if (level == 2) { /* inside a tool_result the IR holds TEXT/IMAGE only */
            ob.kind = K2A_BLOCK_TEXT;
            ob.name = K2A_STR_NULL;
        }
        break;
    }
    if (!k2a_areq_push_block(d, list, &ob))
        return k2a_areq_fail_nomem(d);
    return 1;
}

int k2a_areq_finish_message(dec_t *d)
{
    k2a_ir_message_t m;
    memset(&m, 0, sizeof(m));
    if (!d->msg.has_role)
        return k2a_areq_fail_missing(d, "role");
    if (key_is(d->msg.role, "user"))
        m.role = K2A_ROLE_USER;
    else if (key_is(d->msg.role, "assistant"))
        m.role = K2A_ROLE_ASSISTANT;
    else if (key_is(d->msg.role, "system"))
        m.role = K2A_ROLE_SYSTEM;
    else
        return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "role", "must be \"user\", \"assistant\" or \"system\", not \"%.*s\"",
                                    (int)(d->msg.role.len < 32 ? d->msg.role.len : 32), d->msg.role.base);
    if (d->msg.content_kind == 0)
        return k2a_areq_fail_missing(d, "content");
    if (d->msg.content_kind == 1) {
        k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
        if (t == NULL)
            return k2a_areq_fail_nomem(d);
        t->kind = K2A_BLOCK_TEXT;
        t->text = d->msg.content_str;
        m.blocks = t;
        m.nblocks = 1;
    } else {
        m.blocks = d->msg.blocks.v;
        m.nblocks = d->msg.blocks.n;
    }
    k2a_ir_request_t *r = d->req;
    if (r->nmessages == d->msg_cap) {
        k2a_ir_message_t *v = k2a_arena_grow(d->arena, r->messages, sizeof(*v), r->nmessages, &d->msg_cap);
        if (v == NULL)
            return k2a_areq_fail_nomem(d);
        r->messages = v;
    }
    r->messages[r->nmessages++] = m;
    return 1;
}

static bool is_web_search_name(k2a_str_t n)
{
    return key_is(n, "web_search") || key_is(n, "websearch");
}

int k2a_areq_finish_tool(dec_t *d)
{
    if (d->tool.has_type && d->tool.type.len > 11 && memcmp(d->tool.type.base, "web_search_", 11) == 0 && d->tool.has_name &&
        key_is(d->tool.name, "web_search")) {
        /* Anthropic's web search server tool: the gateway runs it through Kiro's MCP endpoint (http/websearch.c) */
        d->req->web_search.requested = true;
        d->req->web_search.max_uses = d->tool.max_uses;
        return 1;
    }
    if (d->tool.has_type && !key_is(d->tool.type, "custom")) {
        k2a_debug("anthropic request: dropping server tool of type \"%.*s\"", (int)(d->tool.type.len < 64 ? d->tool.type.len : 64),
                  d->tool.type.base);
        return 1;
    }
    if (!d->tool.has_name)
        return k2a_areq_fail_missing(d, "name");
    if (d->tool.name.len == 0)
        return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "name", "must not be empty");
    if (is_web_search_name(d->tool.name)) {
        k2a_debug("anthropic request: dropping tool \"%.*s\" (Kiro has no web search)", (int)d->tool.name.len, d->tool.name.base);
        return 1;
    }
    k2a_ir_request_t *r = d->req;
    if (r->ntools == d->tools_cap) {
        k2a_ir_tool_t *v = k2a_arena_grow(d->arena, r->tools, sizeof(*v), r->ntools, &d->tools_cap);
        if (v == NULL)
            return k2a_areq_fail_nomem(d);
        r->tools = v;
    }
    k2a_ir_tool_t *t = &r->tools[r->ntools++];
    t->name = d->tool.name;
    t->description = k2a_str_is_set(d->tool.description) ? d->tool.description : K2A_STRLIT("");
    t->input_schema = d->tool.input_schema;
    return 1;
}

int k2a_areq_finish_sysblock(dec_t *d)
{
    if (d->sys.has_type && !key_is(d->sys.type, "text")) {
        k2a_debug("anthropic request: dropping system block of type \"%.*s\"", (int)(d->sys.type.len < 64 ? d->sys.type.len : 64),
                  d->sys.type.base);
        return 1;
    }
    if (!k2a_str_is_set(d->sys.text))
        return k2a_areq_fail_missing(d, "text");
    k2a_ir_request_t *r = d->req;
    if (r->nsystem == d->sys_cap) {
        k2a_ir_block_t *v = k2a_arena_grow(d->arena, r->system, sizeof(*v), r->nsystem, &d->sys_cap);
        if (v == NULL)
            return k2a_areq_fail_nomem(d);
        r->system = v;
    }
    k2a_ir_block_t *b = &r->system[r->nsystem++];
    memset(b, 0, sizeof(*b));
    b->kind = K2A_BLOCK_TEXT;
    b->text = d->sys.text;
    return 1;
}

int k2a_areq_finish_tool_choice(dec_t *d)
{
    k2a_ir_request_t *r = d->req;
    k2a_str_t t = d->tc.type;
    if (!k2a_str_is_set(t))
        return k2a_areq_fail_missing(d, "type");
    if (key_is(t, "auto")) {
        r->tool_choice = K2A_TOOL_CHOICE_AUTO;
    } else if (key_is(t, "any")) {
        r->tool_choice = K2A_TOOL_CHOICE_ANY;
    } else if (key_is(t, "none")) {
        r->tool_choice = K2A_TOOL_CHOICE_NONE;
    } else if (key_is(t, "tool")) {
        if (!k2a_str_is_set(d->tc.name))
            return k2a_areq_fail_missing(d, "name");
        r->tool_choice = K2A_TOOL_CHOICE_TOOL;
        r->tool_choice_name = d->tc.name;
    } else {
        return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
    }
    return 1;
}

int k2a_areq_finish_thinking(dec_t *d)
{
    k2a_ir_request_t *r = d->req;
    k2a_str_t t = d->th.type;
    if (!k2a_str_is_set(t))
        return k2a_areq_fail_missing(d, "type");
    if (key_is(t, "enabled")) {
        r->thinking.mode = K2A_THINKING_ENABLED;
        if (d->th.budget < 0)
            return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "budget_tokens", "must not be negative");
        r->thinking.budget_tokens = d->th.budget;
    } else if (key_is(t, "adaptive")) {
        r->thinking.mode = K2A_THINKING_ADAPTIVE;
    } else if (key_is(t, "disabled")) {
        r->thinking.mode = K2A_THINKING_OFF;
    } else {
        return k2a_areq_fail_object(d, K2A_EBAD_PARAM, "type", "must be \"enabled\", \"adaptive\" or \"disabled\"");
    }
    r->thinking.display_omitted = key_is(d->th.display, "omitted");
    return 1;
}

/* ---------- metadata.user_id → session id ---------- */

static bool looks_like_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; ++i) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

typedef struct st_session_scan_t {
    unsigned depth;
    bool want;
    const unsigned char *val;
    size_t len;
} session_scan_t;

static int ss_start_map(void *ctx)
{
    session_scan_t *s = ctx;
    s->want = false;
    return ++s->depth <= 8;
}

static int ss_end_map(void *ctx)
{
    --((session_scan_t *)ctx)->depth;
    return 1;
}

static int ss_start_array(void *ctx)
{
    session_scan_t *s = ctx;
    s->want = false;
    return ++s->depth <= 8;
}

static int ss_key(void *ctx, const unsigned char *k, size_t l)
{
    session_scan_t *s = ctx;
    s->want = s->depth == 1 && l == 10 && memcmp(k, "session_id", 10) == 0;
    return 1;
}

static int ss_string(void *ctx, const unsigned char *v, size_t l)
{
    session_scan_t *s = ctx;
    if (s->want && s->val == NULL && looks_like_uuid((const char *)v, l)) {
        s->val = v;
        s->len = l;
        return 0; /* found: stop (v points into the input, which is escape-free for a UUID) */
    }
    s->want = false;
    return 1;
}

static int ss_scalar(void *ctx)
{
    ((session_scan_t *)ctx)->want = false;
    return 1;
}

static int ss_bool(void *ctx, int b)
{
    return ss_scalar(ctx);
}

static int ss_number(void *ctx, const char *s, size_t l)
{
    return ss_scalar(ctx);
}

static const yajl_callbacks session_callbacks = {ss_scalar,    ss_bool, NULL,       NULL,           ss_number, ss_string,
                                                 ss_start_map, ss_key,  ss_end_map, ss_start_array, ss_end_map};

k2a_str_t k2a_anthropic_session_from_user_id(k2a_str_t user_id, k2a_arena_t *arena)
{
    if (user_id.len == 0 || user_id.len > 4096)
        return K2A_STR_NULL;
    if (user_id.base[0] == '{') {
        session_scan_t s;
        memset(&s, 0, sizeof(s));
        yajl_handle h = yajl_alloc(&session_callbacks, NULL, &s);
        if (h == NULL)
            return K2A_STR_NULL;
        yajl_parse(h, (const unsigned char *)user_id.base, user_id.len);
        yajl_free(h);
        if (s.val != NULL) {
            const char *p = (const char *)s.val;
            if (p >= user_id.base && p + s.len <= user_id.base + user_id.len)
                return k2a_str(p, s.len);
            return k2a_arena_strdup_str(arena, k2a_str(p, s.len));
        }
        return K2A_STR_NULL;
    }
    /* user_<hash>_account_<uuid?>_session_<uuid> */
    const char *p = user_id.base, *end = user_id.base + user_id.len;
    const char *found = NULL;
    for (const char *q = p; q + 8 <= end; ++q) {
        if (memcmp(q, "session_", 8) == 0)
            found = q + 8;
    }
    if (found != NULL && end - found >= 36 && looks_like_uuid(found, 36))
        return k2a_str(found, 36);
    return K2A_STR_NULL;
}
