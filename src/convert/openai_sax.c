/*
 * The yajl SAX machinery shared by the OpenAI Chat and Responses request decoders (see openai_sax.h): the frame
 * stack (one frame per understood container, tagged with what it is and its current key or index, which also gives
 * the JSON path of an error), skipping of ignored containers by nesting count, compact capture of JSON subtrees,
 * raw-text containers, the typed value readers and the one-call parse with its syntax error report.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/errors.h"
#include "convert/openai_sax.h"

uint8_t k2a_oa_key_lookup(const k2a_oa_key_t *table, size_t n, const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < n; ++i)
        if (table[i].len == len && table[i].name[0] == s[0] && memcmp(table[i].name + 1, s + 1, len - 1) == 0)
            return table[i].id;
    return 0;
}

/* ---------- typed values ---------- */

static const char *type_name(int t)
{
    static const char *const names[] = {"null", "a boolean", "a number", "a string", "an object", "an array"};
    return names[t];
}

int k2a_oa_type_error(k2a_oa_parser_t *p, const k2a_oa_value_t *v, const char *expected)
{
    return k2a_oa_fail(p, K2A_EJSON_TYPE, "expected %s, got %s", expected, type_name(v->type));
}

int k2a_oa_get_str(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_str_t *out)
{
    if (v->type != OA_V_STRING)
        return k2a_oa_type_error(p, v, "a string");
    if (v->len > p->limits->max_string_bytes)
        return k2a_oa_fail(p, K2A_ETOOBIG, "string longer than %zu bytes", p->limits->max_string_bytes);
    if (p->body != NULL && v->s >= p->body && v->s + v->len <= p->body + p->body_len) {
        *out = k2a_str(v->s, v->len);
        return 0;
    }
    char *c = k2a_arena_strndup(p->arena, v->s, v->len);
    if (c == NULL)
        return k2a_oa_fail_alloc(p);
    *out = k2a_str(c, v->len);
    return 0;
}

int k2a_oa_get_opt_str(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_str_t *out)
{
    return v->type == OA_V_NULL ? 0 : k2a_oa_get_str(p, v, out);
}

int k2a_oa_get_int(k2a_oa_parser_t *p, const k2a_oa_value_t *v, int64_t *out)
{
    char tmp[32];
    if (v->type != OA_V_NUMBER)
        return k2a_oa_type_error(p, v, "an integer");
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

int k2a_oa_get_double(k2a_oa_parser_t *p, const k2a_oa_value_t *v, double *out)
{
    char tmp[64];
    if (v->type != OA_V_NUMBER)
        return k2a_oa_type_error(p, v, "a number");
    if (v->len >= sizeof(tmp))
        return k2a_oa_fail(p, K2A_EJSON_TYPE, "number too long");
    memcpy(tmp, v->s, v->len);
    tmp[v->len] = '\0';
    *out = strtod(tmp, NULL);
    return 0;
}

int k2a_oa_get_bool(k2a_oa_parser_t *p, const k2a_oa_value_t *v, bool *out)
{
    if (v->type != OA_V_BOOL)
        return k2a_oa_type_error(p, v, "a boolean");
    *out = v->b;
    return 0;
}

int k2a_oa_start_capture(k2a_oa_parser_t *p, k2a_oa_capture_t what, int *push)
{
    p->capture = what;
    p->cap_drop_next = p->cap_type_next = p->cap_seen_type = p->cap_type_object = p->cap_seen_properties = false;
    k2a_buf_reset(&p->scratch);
    *push = OA_PUSH_CAPTURE;
    return 0;
}

int k2a_oa_schema_value(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_oa_capture_t what, int *push)
{
    if (v->type == OA_V_NULL)
        return 0;
    if (v->type != OA_V_MAP)
        return k2a_oa_type_error(p, v, "a JSON Schema object");
    if (what == OA_CAP_PARAMETERS)
        p->tool.has_schema = true;
    return k2a_oa_start_capture(p, what, push);
}

int k2a_oa_start_raw(k2a_oa_parser_t *p, k2a_str_t *dst, int *push)
{
    p->raw_dst = dst;
    p->raw_start = p->offset - 1;
    *push = OA_PUSH_RAW;
    return 0;
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

static int cap_scalar(k2a_oa_parser_t *p, const k2a_oa_value_t *v)
{
    int r;
    if (p->cap_drop_next) {
        p->cap_drop_next = false;
        return 0;
    }
    if (p->cap_type_next) {
        p->cap_type_next = false;
        p->cap_type_object = v->type == OA_V_STRING && v->len == 6 && memcmp(v->s, "object", 6) == 0;
    }
    switch (v->type) {
    case OA_V_NULL:
        r = k2a_oa_jw_raw(&p->jw, "null", 4);
        break;
    case OA_V_BOOL:
        r = v->b ? k2a_oa_jw_raw(&p->jw, "true", 4) : k2a_oa_jw_raw(&p->jw, "false", 5);
        break;
    case OA_V_NUMBER:
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

static void track(k2a_oa_parser_t *p)
{
    if (p->ops->track_offsets)
        p->offset = yajl_get_bytes_consumed(p->h);
}

static int scalar(k2a_oa_parser_t *p, const k2a_oa_value_t *v)
{
    int push, r;
    if (p->skip != 0)
        return 1;
    track(p);
    if (p->capture != OA_CAP_NONE)
        return ret(p, cap_scalar(p, v));
    if (p->depth == 0)
        return ret(p, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    r = p->ops->on_value(p, v, &push);
    value_done(p);
    return ret(p, r);
}

static int on_null(void *ctx)
{
    k2a_oa_value_t v = {OA_V_NULL, false, NULL, 0};
    return scalar(ctx, &v);
}

static int on_boolean(void *ctx, int b)
{
    k2a_oa_value_t v = {OA_V_BOOL, b != 0, NULL, 0};
    return scalar(ctx, &v);
}

static int on_number(void *ctx, const char *s, size_t len)
{
    k2a_oa_value_t v = {OA_V_NUMBER, false, s, len};
    return scalar(ctx, &v);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    k2a_oa_value_t v = {OA_V_STRING, false, (const char *)s, len};
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
    track(p);
    if (p->capture != OA_CAP_NONE)
        return ret(p, cap_open(p, type == OA_V_MAP ? '{' : '['));
    int push = 0, r; /* 0: the root frame context of every decoder */
    if (p->depth != 0) {
        k2a_oa_value_t v = {type, false, NULL, 0};
        if ((r = p->ops->on_value(p, &v, &push)) != 0)
            return ret(p, r);
    } else if (type != OA_V_MAP) {
        return ret(p, k2a_oa_fail(p, K2A_EJSON_TYPE, "the request body must be a JSON object"));
    }
    switch (push) {
    case OA_PUSH_SKIP:
        p->skip = 1;
        return 1;
    case OA_PUSH_RAW:
        p->skip = 1;
        p->raw_open = true;
        return 1;
    case OA_PUSH_CAPTURE:
        k2a_oa_jw_init(&p->jw, &p->scratch, p->jw_first, p->limits->max_depth - p->depth);
        return ret(p, cap_open(p, type == OA_V_MAP ? '{' : '['));
    default: {
        k2a_oa_frame_t *f = &p->frames[p->depth++];
        memset(f, 0, offsetof(k2a_oa_frame_t, keytext));
        f->ctx = (uint8_t)push;
        f->is_array = type == OA_V_ARRAY;
        return 1;
    }
    }
}

static int close_container(k2a_oa_parser_t *p, char c)
{
    if (p->skip != 0) {
        if (--p->skip == 0 && p->capture == OA_CAP_NONE) {
            if (p->raw_open) {
                track(p);
                p->raw_open = false;
                *p->raw_dst = k2a_str(p->body + p->raw_start, p->offset - p->raw_start);
            }
            value_done(p);
        }
        return 1;
    }
    track(p);
    if (p->capture != OA_CAP_NONE) {
        int r = cap_close(p, c);
        if (r == 0 && p->capture == OA_CAP_NONE)
            value_done(p);
        return ret(p, r);
    }
    int r = p->ops->finish_frame(p);
    --p->depth;
    value_done(p);
    return ret(p, r);
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, OA_V_MAP);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, '}');
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, OA_V_ARRAY);
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
    if (p->depth == 1 && p->ops->track_offsets)
        p->key_end = yajl_get_bytes_consumed(p->h);
    f->key = p->ops->key_id((const char *)s, len);
    f->keylen = (uint8_t)(len < K2A_OA_KEY_MAX ? len : K2A_OA_KEY_MAX);
    memcpy(f->keytext, s, f->keylen);
    return 1;
}

static const yajl_callbacks callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string, on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

/* ---------- one document, one decode ---------- */

int k2a_oa_sax_parse(k2a_oa_parser_t *p, const char *text, size_t len, const char *syntax_prefix)
{
    p->body = text;
    p->body_len = len;
    p->h = yajl_alloc(&callbacks, NULL, p);
    if (p->h == NULL)
        return k2a_oa_fail(p, K2A_ENOMEM, "out of memory");
    yajl_status st = yajl_parse(p->h, (const unsigned char *)text, len);
    size_t off = yajl_get_bytes_consumed(p->h);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(p->h);
        off = len;
    }
    if (st != yajl_status_ok && p->code == 0) {
        if (st == yajl_status_client_canceled) {
            k2a_oa_fail(p, K2A_EINTERNAL, "decoder stopped without an error");
        } else {
            unsigned char *msg = yajl_get_error(p->h, 0, NULL, 0);
            /* yajl's message ends with a newline */
            size_t ml = msg != NULL ? strlen((const char *)msg) : 0;
            while (ml != 0 && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
                --ml;
            k2a_oa_fail(p, K2A_EJSON_SYNTAX, "%smalformed JSON near byte %zu: %.*s", syntax_prefix, off, (int)ml,
                        msg != NULL ? (const char *)msg : "");
            if (msg != NULL)
                yajl_free_error(p->h, msg);
        }
    }
    yajl_free(p->h);
    p->h = NULL;
    return p->code;
}

int k2a_oa_parser_init(k2a_oa_parser_t *p, const k2a_oa_sax_ops_t *ops, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                       k2a_ir_request_t *out, k2a_convert_error_t *err, unsigned extra_frames)
{
    memset(p, 0, sizeof(*p));
    p->ops = ops;
    p->limits = limits;
    p->arena = arena;
    p->req = out;
    p->err = err;
    k2a_buf_init(&p->scratch, limits->max_json_value_bytes);
    unsigned max_depth = limits->max_depth != 0 ? limits->max_depth : 1;
    p->frames = k2a_arena_alloc(arena, (max_depth + extra_frames) * sizeof(*p->frames));
    p->jw_first = k2a_arena_alloc(arena, max_depth + extra_frames);
    if (p->frames == NULL || p->jw_first == NULL)
        return k2a_oa_fail_alloc(p);
    return 0;
}

void k2a_oa_parser_dispose(k2a_oa_parser_t *p)
{
    free(p->parts.v);
    free(p->calls.v);
    free(p->turn.v);
    free(p->asst.v);
    k2a_buf_dispose(&p->scratch);
}
