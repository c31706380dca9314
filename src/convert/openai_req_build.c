/*
 * OpenAI request decoder, part 2: assembly. The SAX machine (openai_req.c) collects the fields of a content
 * part, a tool call, a message or a tool, and calls these functions when the object closes, because OpenAI
 * clients may send the fields in any order (`content` before `role`). Also here: the compact JSON writer
 * used for captured subtrees, the re-serialisation of tool-call arguments (a JSON document inside a JSON
 * string, parsed with a second yajl handle in one call), data URLs, the request-level rules
 * (reasoning_effort, response_format instruction, legacy function calling), and errors with JSON paths.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "convert/openai_internal.h"
#include "convert/openai_req.h"

/* ---------- errors with JSON paths ---------- */

static size_t path_of(const k2a_oa_parser_t *p, unsigned nframes, char *buf, size_t size)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < nframes && n < size; ++i) {
        const k2a_oa_frame_t *f = &p->frames[i];
        int w;
        if (f->is_array)
            w = snprintf(buf + n, size - n, "[%u]", (unsigned)f->index);
        else if (f->keylen != 0)
            w = snprintf(buf + n, size - n, "%s%.*s", n == 0 ? "" : ".", (int)f->keylen, f->keytext);
        else
            continue;
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return n < size ? n : size - 1;
}

static int vfail(k2a_oa_parser_t *p, int code, unsigned nframes, const char *field, const char *fmt, va_list ap)
{
    if (p->code != 0)
        return p->code;
    char path[256], what[384];
    size_t n = path_of(p, nframes, path, sizeof(path));
    if (field != NULL)
        snprintf(path + n, sizeof(path) - n, "%s%s", n == 0 ? "" : ".", field);
    vsnprintf(what, sizeof(what), fmt, ap);
    p->code = code;
    if (path[0] != '\0')
        k2a_convert_error_set(p->err, code, "%s: %s", path, what);
    else
        k2a_convert_error_set(p->err, code, "%s", what);
    return code;
}

int k2a_oa_fail(k2a_oa_parser_t *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(p, code, p->depth, NULL, fmt, ap);
    va_end(ap);
    return r;
}

int k2a_oa_fail_field(k2a_oa_parser_t *p, int code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = vfail(p, code, p->depth != 0 ? p->depth - 1 : 0, field, fmt, ap);
    va_end(ap);
    return r;
}

int k2a_oa_fail_alloc(k2a_oa_parser_t *p)
{
    if (p->arena->max != 0 && p->arena->total + 65536 >= p->arena->max)
        return k2a_oa_fail(p, K2A_ETOOBIG, "request exceeds its memory budget of %zu bytes", p->arena->max);
    return k2a_oa_fail(p, K2A_ENOMEM, "out of memory");
}

int k2a_oa_blocks_push(k2a_oa_parser_t *p, k2a_oa_blocks_t *b, const k2a_ir_block_t *blk)
{
    if (++p->nblocks_total > p->limits->max_blocks)
        return k2a_oa_fail_field(p, K2A_ETOOBIG, NULL, "more than %zu content blocks in the request", p->limits->max_blocks);
    return k2a_oa_vec_push(p, b, blk);
}

/* ---------- compact JSON writer ---------- */

void k2a_oa_jw_init(k2a_oa_jw_t *jw, k2a_buf_t *out, uint8_t *first, unsigned max_depth)
{
    jw->out = out;
    jw->first = first;
    jw->depth = 0;
    jw->max_depth = max_depth;
    jw->after_key = false;
}

static int before_value(k2a_oa_jw_t *jw)
{
    if (jw->after_key) {
        jw->after_key = false;
        return 0;
    }
    if (jw->depth == 0)
        return 0;
    if (jw->first[jw->depth]) {
        jw->first[jw->depth] = 0;
        return 0;
    }
    return k2a_buf_append(jw->out, ",", 1);
}

int k2a_oa_jw_open(k2a_oa_jw_t *jw, char c)
{
    int r;
    if (jw->depth >= jw->max_depth)
        return K2A_EJSON_DEPTH;
    if ((r = before_value(jw)) != 0 || (r = k2a_buf_append(jw->out, &c, 1)) != 0)
        return r;
    jw->first[++jw->depth] = 1;
    return 0;
}

int k2a_oa_jw_close(k2a_oa_jw_t *jw, char c)
{
    --jw->depth;
    return k2a_buf_append(jw->out, &c, 1);
}

int k2a_oa_jw_key(k2a_oa_jw_t *jw, const char *s, size_t n)
{
    int r;
    if (jw->first[jw->depth])
        jw->first[jw->depth] = 0;
    else if ((r = k2a_buf_append(jw->out, ",", 1)) != 0)
        return r;
    if ((r = k2a_buf_append(jw->out, "\"", 1)) != 0 || (r = k2a_buf_append_json_escaped(jw->out, s, n)) != 0 ||
        (r = k2a_buf_append(jw->out, "\":", 2)) != 0)
        return r;
    jw->after_key = true;
    return 0;
}

int k2a_oa_jw_string(k2a_oa_jw_t *jw, const char *s, size_t n)
{
    int r;
    if ((r = before_value(jw)) != 0 || (r = k2a_buf_append(jw->out, "\"", 1)) != 0 ||
        (r = k2a_buf_append_json_escaped(jw->out, s, n)) != 0)
        return r;
    return k2a_buf_append(jw->out, "\"", 1);
}

int k2a_oa_jw_raw(k2a_oa_jw_t *jw, const char *s, size_t n)
{
    int r;
    if ((r = before_value(jw)) != 0)
        return r;
    return k2a_buf_append(jw->out, s, n);
}

/* ---------- a JSON document inside a string (tool-call arguments) -> compact JSON ---------- */

typedef struct st_compact_t {
    k2a_oa_jw_t jw;
    int err;
    int root; /* 0 none yet, 1 object, 2 other */
} compact_t;

static int cj_ret(compact_t *c, int r)
{
    if (r != 0)
        c->err = r;
    return r == 0;
}

static void cj_root(compact_t *c, int kind)
{
    if (c->root == 0)
        c->root = kind;
}

static int cj_null(void *ctx)
{
    compact_t *c = ctx;
    cj_root(c, 2);
    return cj_ret(c, k2a_oa_jw_raw(&c->jw, "null", 4));
}

static int cj_boolean(void *ctx, int b)
{
    compact_t *c = ctx;
    cj_root(c, 2);
    return cj_ret(c, b ? k2a_oa_jw_raw(&c->jw, "true", 4) : k2a_oa_jw_raw(&c->jw, "false", 5));
}

static int cj_number(void *ctx, const char *s, size_t len)
{
    compact_t *c = ctx;
    cj_root(c, 2);
    return cj_ret(c, k2a_oa_jw_raw(&c->jw, s, len));
}

static int cj_string(void *ctx, const unsigned char *s, size_t len)
{
    compact_t *c = ctx;
    cj_root(c, 2);
    return cj_ret(c, k2a_oa_jw_string(&c->jw, (const char *)s, len));
}

static int cj_start_map(void *ctx)
{
    compact_t *c = ctx;
    cj_root(c, 1);
    return cj_ret(c, k2a_oa_jw_open(&c->jw, '{'));
}

static int cj_map_key(void *ctx, const unsigned char *s, size_t len)
{
    compact_t *c = ctx;
    return cj_ret(c, k2a_oa_jw_key(&c->jw, (const char *)s, len));
}

static int cj_end_map(void *ctx)
{
    compact_t *c = ctx;
    return cj_ret(c, k2a_oa_jw_close(&c->jw, '}'));
}

static int cj_start_array(void *ctx)
{
    compact_t *c = ctx;
    cj_root(c, 2);
    return cj_ret(c, k2a_oa_jw_open(&c->jw, '['));
}

static int cj_end_array(void *ctx)
{
    compact_t *c = ctx;
    return cj_ret(c, k2a_oa_jw_close(&c->jw, ']'));
}

static const yajl_callbacks compact_callbacks = {
    cj_null, cj_boolean, NULL, NULL, cj_number, cj_string, cj_start_map, cj_map_key, cj_end_map, cj_start_array, cj_end_array,
};

int k2a_oa_compact_object(const char *text, size_t len, uint8_t *first, unsigned max_depth, k2a_buf_t *scratch)
{
    compact_t c;
    memset(&c, 0, sizeof(c));
    k2a_buf_reset(scratch);
    k2a_oa_jw_init(&c.jw, scratch, first, max_depth);
    yajl_handle h = yajl_alloc(&compact_callbacks, NULL, &c);
    if (h == NULL)
        return K2A_ENOMEM;
    yajl_status st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (c.err != 0)
        return c.err;
    return st == yajl_status_ok && c.root == 1 ? 1 : 0;
}

/* ---------- small helpers ---------- */

static k2a_str_t arena_copy(k2a_oa_parser_t *p, const char *s, size_t n)
{
    char *c = k2a_arena_strndup(p->arena, s != NULL ? s : "", n);
    return c != NULL ? k2a_str(c, n) : K2A_STR_NULL;
}

static int count_block(k2a_oa_parser_t *p)
{
    if (++p->nblocks_total > p->limits->max_blocks)
        return k2a_oa_fail_field(p, K2A_ETOOBIG, NULL, "more than %zu content blocks in the request", p->limits->max_blocks);
    return 0;
}

static int lim(size_t n)
{
    return n > 64 ? 64 : (int)n;
}

int k2a_oa_set_arguments(k2a_oa_parser_t *p, const char *s, size_t len, k2a_str_t *input, k2a_str_t *input_raw)
{
    size_t i = 0;
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        ++i;
    *input_raw = K2A_STR_NULL;
    if (i == len) {
        *input = K2A_STRLIT("{}"); /* a tool without arguments */
        return 0;
    }
    unsigned room = p->limits->max_depth > p->depth ? p->limits->max_depth - p->depth : 0;
    int r = k2a_oa_compact_object(s, len, p->jw_first, room, &p->scratch);
    if (r == K2A_EJSON_DEPTH)
        return k2a_oa_fail(p, r, "arguments nested deeper than the request's limit of %u levels", p->limits->max_depth);
    if (r == K2A_ETOOBIG)
        return k2a_oa_fail(p, r, "arguments larger than %zu bytes", p->limits->max_json_value_bytes);
    if (r < 0)
        return k2a_oa_fail(p, r, "%s", k2a_strerror(r));
    if (r == 0) {
        /* not a JSON object (often JSON cut short by max_tokens): keep the text so the model sees what it sent */
        *input_raw = arena_copy(p, s, len);
        k2a_buf_reset(&p->scratch);
        if ((r = k2a_buf_append(&p->scratch, "{\"arguments\":\"", 14)) != 0 ||
            (r = k2a_buf_append_json_escaped(&p->scratch, s, len)) != 0 || (r = k2a_buf_append(&p->scratch, "\"}", 2)) != 0)
            return k2a_oa_fail(p, r == K2A_ETOOBIG ? K2A_ETOOBIG : r, "arguments larger than %zu bytes",
                               p->limits->max_json_value_bytes);
        if (input_raw->base == NULL)
            return k2a_oa_fail_alloc(p);
    }
    *input = arena_copy(p, p->scratch.base, p->scratch.len);
    if (input->base == NULL)
        return k2a_oa_fail_alloc(p);
    return 0;
}

/* `data:<media type>;base64,<data>` (kiro-protocol.md §2.4: ^data:([^;,]+)(;base64)?,(.+)$, base64 required). BMP is
 * refused although kiro2api maps it: Kiro's image format enum is png, jpeg, gif, webp, and a "bmp" image makes the whole
 * request "Improperly formed" (found by fuzz_openai_req against kiro-sim's validator; the Anthropic decoder refuses it
 * too). */
static int parse_image_url(k2a_oa_parser_t *p, k2a_str_t url, k2a_ir_block_t *b)
{
    static const struct {
        const char *given, *canonical;
    } types[] = {{"image/jpeg", "image/jpeg"},
                 {"image/jpg", "image/jpeg"},
                 {"image/png", "image/png"},
                 {"image/gif", "image/gif"},
                 {"image/webp", "image/webp"}};
    const char *field = "image_url.url";
    if ((url.len >= 7 && strncasecmp(url.base, "http://", 7) == 0) || (url.len >= 8 && strncasecmp(url.base, "https://", 8) == 0))
        return k2a_oa_fail_field(p, K2A_EIMAGE_URL, field,
                                 "remote image URLs are not supported (Kiro takes image bytes): send a base64 data: URL");
    if (url.len < 5 || strncasecmp(url.base, "data:", 5) != 0)
        return k2a_oa_fail_field(p, K2A_EIMAGE_INVALID, field, "expected a data:<media type>;base64,<data> URL");
    size_t i = 5, mt = 5;
    while (i < url.len && url.base[i] != ';' && url.base[i] != ',')
        ++i;
    size_t mtlen = i - mt;
    if (mtlen == 0)
        return k2a_oa_fail_field(p, K2A_EIMAGE_INVALID, field, "data URL without a media type");
    if (!(url.len - i >= 8 && memcmp(url.base + i, ";base64,", 8) == 0))
        return k2a_oa_fail_field(p, K2A_EIMAGE_INVALID, field, "data URL must be base64 (data:<media type>;base64,<data>)");
    i += 8;
    if (i == url.len)
        return k2a_oa_fail_field(p, K2A_EIMAGE_INVALID, field, "data URL without data");
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); ++t) {
        if (strlen(types[t].given) == mtlen && strncasecmp(types[t].given, url.base + mt, mtlen) == 0) {
            b->kind = K2A_BLOCK_IMAGE;
            b->media_type = k2a_cstr(types[t].canonical);
            b->data = k2a_str(url.base + i, url.len - i);
            return 0;
        }
    }
    return k2a_oa_fail_field(p, K2A_EIMAGE_INVALID, field, "unsupported image type '%.*s' (jpeg, png, gif or webp)", lim(mtlen),
                             url.base + mt);
}

/* ---------- objects closing ---------- */

int k2a_oa_finish_part(k2a_oa_parser_t *p)
{
    k2a_ir_block_t b;
    memset(&b, 0, sizeof(b));
    k2a_str_t t = p->part.type;
    int r;
    if (t.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "type", "is required");
    if (k2a_str_eq_lit(t, "text")) {
        if (!p->part.has_text)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "text", "is required");
        b.kind = K2A_BLOCK_TEXT;
        b.text = p->part.text;
    } else if (k2a_str_eq_lit(t, "image_url")) {
        if (!p->part.has_url)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "image_url.url", "is required");
        if ((r = parse_image_url(p, p->part.url, &b)) != 0)
            return r;
    } else if (k2a_str_eq_lit(t, "refusal")) {
        return 0;
    } else {
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "content part type '%.*s' is not supported", lim(t.len), t.base);
    }
    return k2a_oa_blocks_push(p, &p->parts, &b);
}

int k2a_oa_finish_call(k2a_oa_parser_t *p)
{
    k2a_ir_block_t b;
    memset(&b, 0, sizeof(b));
    if (p->call.id.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "id", "is required");
    if (p->call.type.base != NULL && !k2a_str_eq_lit(p->call.type, "function"))
        return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "tool call type '%.*s' is not supported (only function)",
                                 lim(p->call.type.len), p->call.type.base);
    if (!p->call.has_function)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "function", "is required");
    if (p->call.name.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "function.name", "is required");
    b.kind = K2A_BLOCK_TOOL_USE;
    b.id = p->call.id;
    b.name = p->call.name;
    b.input = p->call.has_args ? p->call.input : K2A_STRLIT("{}");
    b.input_raw = p->call.input_raw;
    return k2a_oa_blocks_push(p, &p->calls, &b);
}

int k2a_oa_push_message(k2a_oa_parser_t *p, k2a_ir_role_t role, const k2a_ir_block_t *blocks, size_t n)
{
    k2a_ir_request_t *req = p->req;
    if (req->nmessages == p->cap_messages) {
        void *g = k2a_arena_grow(p->arena, req->messages, sizeof(*req->messages), req->nmessages, &p->cap_messages);
        if (g == NULL)
            return k2a_oa_fail_alloc(p);
        req->messages = g;
    }
    /* exact size: a block is ~180 bytes and conversations have thousands */
    k2a_ir_block_t *copy = k2a_arena_alloc(p->arena, (n != 0 ? n : 1) * sizeof(*copy));
    if (copy == NULL)
        return k2a_oa_fail_alloc(p);
    if (n != 0)
        memcpy(copy, blocks, n * sizeof(*copy));
    k2a_ir_message_t *m = &req->messages[req->nmessages++];
    m->role = role;
    m->blocks = copy;
    m->nblocks = n;
    return 0;
}

int k2a_oa_vec_push(k2a_oa_parser_t *p, k2a_oa_blocks_t *b, const k2a_ir_block_t *blk)
{
    if (b->n == b->cap) {
        size_t cap = b->cap < 8 ? 8 : b->cap * 2;
        k2a_ir_block_t *v = realloc(b->v, cap * sizeof(*v));
        if (v == NULL)
            return k2a_oa_fail(p, K2A_ENOMEM, "out of memory");
        b->v = v;
        b->cap = cap;
    }
    b->v[b->n++] = *blk;
    return 0;
}

int k2a_oa_flush_turn(k2a_oa_parser_t *p)
{
    if (!p->turn_open)
        return 0;
    p->turn_open = false;
    return k2a_oa_push_message(p, K2A_ROLE_USER, p->turn.v, p->turn.n);
}

int k2a_oa_add_system(k2a_oa_parser_t *p, k2a_str_t text, bool counted, bool first)
{
    k2a_ir_request_t *req = p->req;
    if (counted && req->nsystem >= p->limits->max_system_blocks)
        return k2a_oa_fail_field(p, K2A_ETOOBIG, "content", "more than %zu system blocks", p->limits->max_system_blocks);
    if (req->nsystem == p->cap_system) {
        void *g = k2a_arena_grow(p->arena, req->system, sizeof(*req->system), req->nsystem, &p->cap_system);
        if (g == NULL)
            return k2a_oa_fail_alloc(p);
        req->system = g;
    }
    k2a_ir_block_t *b = &req->system[req->nsystem];
    if (first) {
        memmove(req->system + 1, req->system, req->nsystem * sizeof(*req->system));
        b = &req->system[0];
    }
    ++req->nsystem;
    memset(b, 0, sizeof(*b));
    b->kind = K2A_BLOCK_TEXT;
    b->text = text;
    return 0;
}

static int system_message(k2a_oa_parser_t *p)
{
    int r;
    if (p->msg.content < 2)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "content", "is required");
    if (p->msg.content == 2) {
        if ((r = count_block(p)) != 0)
            return r;
        return k2a_oa_add_system(p, p->msg.content_str, true, false);
    }
    for (size_t i = 0; i < p->parts.n; ++i) {
        if (p->parts.v[i].kind != K2A_BLOCK_TEXT)
            return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "content", "only text parts are allowed in %.*s messages",
                                     lim(p->msg.role.len), p->msg.role.base);
        if ((r = k2a_oa_add_system(p, p->parts.v[i].text, true, false)) != 0)
            return r;
    }
    return 0;
}

/* The content of a user or tool message as blocks: a string is one TEXT block, parts are already blocks. */
static int content_blocks(k2a_oa_parser_t *p, k2a_ir_block_t *one, const k2a_ir_block_t **blocks, size_t *n)
{
    int r;
    if (p->msg.content == 2) {
        if ((r = count_block(p)) != 0)
            return r;
        memset(one, 0, sizeof(*one));
        one->kind = K2A_BLOCK_TEXT;
        one->text = p->msg.content_str;
        *blocks = one;
        *n = 1;
    } else if (p->msg.content == 3) {
        *blocks = p->parts.v;
        *n = p->parts.n;
    } else {
        *blocks = NULL;
        *n = 0;
    }
    return 0;
}

static int user_message(k2a_oa_parser_t *p)
{
    k2a_ir_block_t one;
    const k2a_ir_block_t *blocks;
    size_t n;
    int r;
    if (p->msg.content < 2)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "content", "is required");
    if ((r = content_blocks(p, &one, &blocks, &n)) != 0)
        return r;
    if (n == 0)
        return k2a_oa_fail_field(p, K2A_EEMPTY_CONTENT, "content", "must not be empty");
    if (p->turn_open) {
        /* text after tool results joins their user turn, as in an Anthropic message [tool_result..., text] */
        for (size_t i = 0; i < n; ++i)
            if ((r = k2a_oa_vec_push(p, &p->turn, &blocks[i])) != 0)
                return r;
        return k2a_oa_flush_turn(p);
    }
    return k2a_oa_push_message(p, K2A_ROLE_USER, blocks, n);
}

static int push_new(k2a_oa_parser_t *p, k2a_ir_block_kind_t kind, k2a_str_t text)
{
    k2a_ir_block_t b;
    int r;
    if ((r = count_block(p)) != 0)
        return r;
    memset(&b, 0, sizeof(b));
    b.kind = kind;
    b.text = text;
    return k2a_oa_vec_push(p, &p->asst, &b);
}

static int assistant_message(k2a_oa_parser_t *p)
{
    int r;
    if ((r = k2a_oa_flush_turn(p)) != 0)
        return r;
    p->asst.n = 0;
    if (p->msg.reasoning.len != 0 && (r = push_new(p, K2A_BLOCK_THINKING, p->msg.reasoning)) != 0)
        return r;
    if (p->msg.content == 2 && p->msg.content_str.len != 0 && (r = push_new(p, K2A_BLOCK_TEXT, p->msg.content_str)) != 0)
        return r;
    if (p->msg.content == 3) {
        for (size_t i = 0; i < p->parts.n; ++i) {
            if (p->parts.v[i].kind != K2A_BLOCK_TEXT)
                return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "content", "only text parts are allowed in assistant messages");
            if (p->parts.v[i].text.len != 0 && (r = k2a_oa_vec_push(p, &p->asst, &p->parts.v[i])) != 0)
                return r;
        }
    }
    for (size_t i = 0; i < p->calls.n; ++i)
        if ((r = k2a_oa_vec_push(p, &p->asst, &p->calls.v[i])) != 0)
            return r;
    if (p->msg.has_legacy_call) {
        k2a_ir_block_t b;
        char id[32];
        if (p->msg.legacy_name.len == 0)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "function_call.name", "is required");
        if ((r = count_block(p)) != 0)
            return r;
        int idlen = snprintf(id, sizeof(id), "call_legacy_%u", ++p->legacy_calls);
        memset(&b, 0, sizeof(b));
        b.kind = K2A_BLOCK_TOOL_USE;
        b.id = arena_copy(p, id, (size_t)idlen);
        if (b.id.base == NULL)
            return k2a_oa_fail_alloc(p);
        b.name = p->msg.legacy_name;
        b.input = p->msg.legacy_has_args ? p->msg.legacy_input : K2A_STRLIT("{}");
        b.input_raw = p->msg.legacy_raw;
        p->legacy_call_id = b.id;
        p->legacy_call_name = b.name;
        if ((r = k2a_oa_vec_push(p, &p->asst, &b)) != 0)
            return r;
    }
    if (p->asst.n == 0)
        return 0; /* nothing to say (content null or "", no calls): dropped */
    return k2a_oa_push_message(p, K2A_ROLE_ASSISTANT, p->asst.v, p->asst.n);
}

int k2a_oa_add_tool_result(k2a_oa_parser_t *p, k2a_str_t id, const k2a_ir_block_t *blocks, size_t n, bool count)
{
    k2a_ir_block_t b;
    memset(&b, 0, sizeof(b));
    b.kind = K2A_BLOCK_TOOL_RESULT;
    b.tool_use_id = id;
    if (n != 0) {
        k2a_ir_block_t *c = k2a_arena_alloc(p->arena, n * sizeof(*c));
        if (c == NULL)
            return k2a_oa_fail_alloc(p);
        memcpy(c, blocks, n * sizeof(*c));
        b.content = c;
        b.ncontent = n;
    }
    if (!p->turn_open) {
        p->turn_open = true;
        p->turn.n = 0;
    }
    return count ? k2a_oa_blocks_push(p, &p->turn, &b) : k2a_oa_vec_push(p, &p->turn, &b);
}

static int tool_message(k2a_oa_parser_t *p, bool legacy)
{
    k2a_ir_block_t one;
    const k2a_ir_block_t *blocks;
    size_t n;
    int r;
    k2a_str_t id = p->msg.tool_call_id;
    if (id.len == 0) {
        if (!legacy)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "tool_call_id", "is required");
        if (p->legacy_call_id.base == NULL || (p->msg.name.len != 0 && !k2a_str_eq(p->msg.name, p->legacy_call_name)))
            return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "name",
                                     "a function message must follow an assistant function_call of that name");
        id = p->legacy_call_id;
    }
    if ((r = content_blocks(p, &one, &blocks, &n)) != 0 || (r = count_block(p)) != 0)
        return r;
    return k2a_oa_add_tool_result(p, id, blocks, n, false);
}

int k2a_oa_finish_message(k2a_oa_parser_t *p)
{
    k2a_str_t role = p->msg.role;
    if (role.base == NULL)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "role", "is required");
    if (k2a_str_eq_lit(role, "user"))
        return user_message(p);
    if (k2a_str_eq_lit(role, "assistant"))
        return assistant_message(p);
    if (k2a_str_eq_lit(role, "tool"))
        return tool_message(p, false);
    if (k2a_str_eq_lit(role, "system") || k2a_str_eq_lit(role, "developer"))
        return system_message(p);
    if (k2a_str_eq_lit(role, "function"))
        return tool_message(p, true);
    return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "role", "unknown role '%.*s'", lim(role.len), role.base);
}

int k2a_oa_finish_tool(k2a_oa_parser_t *p, bool legacy)
{
    k2a_ir_request_t *req = p->req;
    if (!legacy) {
        if (p->tool.type.base != NULL && !k2a_str_eq_lit(p->tool.type, "function"))
            return k2a_oa_fail_field(p, K2A_EBAD_PARAM, "type", "tool type '%.*s' is not supported (only function)",
                                     lim(p->tool.type.len), p->tool.type.base);
        if (!p->tool.has_function)
            return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "function", "is required");
    }
    if (p->tool.name.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, legacy ? "name" : "function.name", "is required");
    if (req->ntools == p->cap_tools) {
        void *g = k2a_arena_grow(p->arena, req->tools, sizeof(*req->tools), req->ntools, &p->cap_tools);
        if (g == NULL)
            return k2a_oa_fail_alloc(p);
        req->tools = g;
    }
    k2a_ir_tool_t *t = &req->tools[req->ntools++];
    t->name = p->tool.name;
    t->description = p->tool.description;
    t->input_schema = p->tool.has_schema ? p->tool.schema : K2A_STRLIT("{\"type\":\"object\",\"properties\":{}}");
    return 0;
}

/* ---------- the request as a whole ---------- */

int k2a_oa_apply_effort(k2a_oa_parser_t *p, const char *field)
{
    static const struct {
        const char *name;
        int64_t budget;
    } levels[] = {{"minimal", K2A_OPENAI_BUDGET_MINIMAL},
                  {"low", K2A_OPENAI_BUDGET_LOW},
                  {"medium", K2A_OPENAI_BUDGET_MEDIUM},
                  {"high", K2A_OPENAI_BUDGET_HIGH},
                  {"xhigh", K2A_OPENAI_BUDGET_XHIGH}};
    k2a_str_t e = p->reasoning_effort;
    if (e.base == NULL)
        return 0;
    p->req->thinking.effort = e;
    if (k2a_str_eq_lit(e, "none")) {
        p->req->thinking.mode = K2A_THINKING_OFF;
        return 0;
    }
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); ++i) {
        if (k2a_str_eq_lit(e, levels[i].name)) {
            p->req->thinking.mode = K2A_THINKING_ENABLED;
            p->req->thinking.budget_tokens = levels[i].budget;
            return 0;
        }
    }
    return k2a_oa_fail_field(p, K2A_EBAD_PARAM, field, "unsupported value '%.*s' (none, minimal, low, medium, high or xhigh)",
                             lim(e.len), e.base);
}

int k2a_oa_apply_response_format(k2a_oa_parser_t *p, const char *field)
{
    if (p->response_format == 0)
        return 0;
    p->req->json_object = true;
    k2a_buf_reset(&p->scratch);
    int r = k2a_buf_appendstr(&p->scratch, K2A_OPENAI_JSON_INSTRUCTION);
    if (r == 0 && p->response_format == 2 && p->rf_schema.base != NULL) {
        r = k2a_buf_appendstr(&p->scratch, " It must conform to this JSON Schema");
        if (r == 0 && p->rf_name.len != 0)
            r = k2a_buf_appendf(&p->scratch, " (\"%.*s\")", (int)p->rf_name.len, p->rf_name.base);
        if (r == 0 && p->rf_description.len != 0)
            r = k2a_buf_appendf(&p->scratch, ", described as: %.*s", (int)p->rf_description.len, p->rf_description.base);
        if (r == 0)
            r = k2a_buf_appendstr(&p->scratch, ":\n");
        if (r == 0)
            r = k2a_buf_append(&p->scratch, p->rf_schema.base, p->rf_schema.len);
    }
    if (r != 0)
        return k2a_oa_fail_field(p, r, field, "instruction larger than %zu bytes", p->limits->max_json_value_bytes);
    k2a_str_t text = arena_copy(p, p->scratch.base, p->scratch.len);
    if (text.base == NULL)
        return k2a_oa_fail_alloc(p);
    return k2a_oa_add_system(p, text, false, false);
}

int k2a_oa_finish_request(k2a_oa_parser_t *p)
{
    k2a_ir_request_t *req = p->req;
    int r;
    if (!p->has_model || req->model.len == 0)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "model", "is required");
    if (!p->has_messages)
        return k2a_oa_fail_field(p, K2A_EMISSING_FIELD, "messages", "is required");
    if ((r = k2a_oa_flush_turn(p)) != 0)
        return r;
    if (req->nmessages == 0)
        return k2a_oa_fail_field(p, K2A_EEMPTY_MESSAGES, "messages", "must contain at least one user or assistant message");
    if (p->max_completion_tokens != 0)
        req->max_tokens = p->max_completion_tokens;
    else
        req->max_tokens = p->max_tokens;
    if (!p->has_tool_choice && p->has_function_call) {
        req->tool_choice = p->function_call_choice;
        if (p->function_call_choice == K2A_TOOL_CHOICE_TOOL)
            req->tool_choice_name = p->function_call_name;
    }
    if ((r = k2a_oa_apply_effort(p, "reasoning_effort")) != 0)
        return r;
    return k2a_oa_apply_response_format(p, "response_format");
}
