/*
 * Compact JSON re-serialiser (see json_compact.h): yajl SAX callbacks write straight into the output
 * buffer; a fixed-size stack of per-level element counters decides where commas go.
 */
#include <stdint.h>
#include <yajl/yajl_parse.h>
#include "convert/json_compact.h"
#include "core/errors.h"

typedef struct st_compact_ctx_t {
    k2a_buf_t *out;
    int err;
    int depth;
    uint8_t is_map[K2A_JSON_COMPACT_MAX_DEPTH + 1];
    uint32_t count[K2A_JSON_COMPACT_MAX_DEPTH + 1];
} compact_ctx_t;

static int put(compact_ctx_t *c, const void *p, size_t n)
{
    int r = k2a_buf_append(c->out, p, n);
    if (r != 0) {
        c->err = r;
        return 0;
    }
    return 1;
}

/* Emits the separator a value needs in its container (arrays only: map values follow their key). */
static int before_value(compact_ctx_t *c)
{
    if (c->depth == 0 || c->is_map[c->depth])
        return 1;
    if (c->count[c->depth]++ != 0)
        return put(c, ",", 1);
    return 1;
}

static int on_null(void *ctx)
{
    compact_ctx_t *c = ctx;
    return before_value(c) && put(c, "null", 4);
}

static int on_boolean(void *ctx, int v)
{
    compact_ctx_t *c = ctx;
    return before_value(c) && (v ? put(c, "true", 4) : put(c, "false", 5));
}

static int on_number(void *ctx, const char *s, size_t len)
{
    compact_ctx_t *c = ctx;
    return before_value(c) && put(c, s, len);
}

static int put_string(compact_ctx_t *c, const unsigned char *s, size_t len)
{
    int r;
    if (!put(c, "\"", 1))
        return 0;
    if ((r = k2a_buf_append_json_escaped(c->out, (const char *)s, len)) != 0) {
        c->err = r;
        return 0;
    }
    return put(c, "\"", 1);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    compact_ctx_t *c = ctx;
    return before_value(c) && put_string(c, s, len);
}

static int open_container(compact_ctx_t *c, int is_map)
{
    if (!before_value(c))
        return 0;
    if (c->depth >= K2A_JSON_COMPACT_MAX_DEPTH) {
        c->err = K2A_EJSON_DEPTH;
        return 0;
    }
    ++c->depth;
    c->is_map[c->depth] = (uint8_t)is_map;
    c->count[c->depth] = 0;
    return put(c, is_map ? "{" : "[", 1);
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, 1);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, 0);
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    compact_ctx_t *c = ctx;
    if (c->count[c->depth]++ != 0 && !put(c, ",", 1))
        return 0;
    return put_string(c, s, len) && put(c, ":", 1);
}

static int on_end_map(void *ctx)
{
    compact_ctx_t *c = ctx;
    --c->depth;
    return put(c, "}", 1);
}

static int on_end_array(void *ctx)
{
    compact_ctx_t *c = ctx;
    --c->depth;
    return put(c, "]", 1);
}

static const yajl_callbacks compact_callbacks = {
    on_null, on_boolean, NULL, NULL, on_number, on_string, on_start_map, on_map_key, on_end_map, on_start_array, on_end_array,
};

int k2a_json_compact(k2a_buf_t *out, const char *json, size_t len)
{
    compact_ctx_t c;
    c.out = out;
    c.err = 0;
    c.depth = 0;
    c.is_map[0] = 0;
    c.count[0] = 0;
    yajl_handle h = yajl_alloc(&compact_callbacks, NULL, &c);
    if (h == NULL)
        return K2A_ENOMEM;
    /* Validation is done by k2a_buf_append_json_escaped (invalid bytes become U+FFFD), not by refusing the text. */
    yajl_config(h, yajl_dont_validate_strings, 1);
    yajl_status st = yajl_parse(h, (const unsigned char *)json, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    if (c.err != 0)
        return c.err;
    if (st != yajl_status_ok)
        return K2A_EJSON_SYNTAX;
    return 0;
}

bool k2a_json_looks_like_object(const char *json, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        char ch = json[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n')
            continue;
        return ch == '{';
    }
    return false;
}
