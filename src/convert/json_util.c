/*
 * JSON helpers (see json_util.h). Re-serialisation forwards yajl parse events to a yajl_gen whose
 * print callback appends to a bounded k2a_buf; a small per-depth state remembers which objects have
 * user-chosen keys so that a property literally named "cache_control" survives the filter.
 */
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/json_util.h"

bool k2a_json_is_compact(const char *s, size_t n)
{
    bool in_str = false;
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                ++i;
            else if (c == '"')
                in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            return false;
        }
    }
    return true;
}

#define CJ_MAX_DEPTH 128

typedef struct st_compact_t {
    yajl_gen gen;
    k2a_buf_t buf;
    bool overflow;
    unsigned flags;
    size_t dropped;
    unsigned depth;                  /* open containers */
    unsigned skip;                   /* > 0 while inside a dropped member's value */
    bool name_map[CJ_MAX_DEPTH + 1]; /* object at this depth has user-chosen keys */
    bool next_is_name_map;           /* the value about to open is the value of "properties" & co. */
    int gen_status;
} compact_t;

static void on_print(void *ctx, const char *s, size_t len)
{
    compact_t *c = ctx;
    if (!c->overflow && k2a_buf_append(&c->buf, s, len) != 0)
        c->overflow = true;
}

static int gen_ok(compact_t *c, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok) {
        c->gen_status = st;
        return 0;
    }
    return !c->overflow;
}

/* A scalar or container start in a dropped member: consume it. Returns true when the event was swallowed. */
static bool skipping_scalar(compact_t *c)
{
    if (c->skip == 0)
        return false;
    if (c->skip == 1) /* the dropped member's value was a scalar: done */
        c->skip = 0;
    return true;
}

static int on_null(void *ctx)
{
    compact_t *c = ctx;
    if (skipping_scalar(c))
        return 1;
    c->next_is_name_map = false;
    return gen_ok(c, yajl_gen_null(c->gen));
}

static int on_boolean(void *ctx, int b)
{
    compact_t *c = ctx;
    if (skipping_scalar(c))
        return 1;
    c->next_is_name_map = false;
    return gen_ok(c, yajl_gen_bool(c->gen, b));
}

static int on_number(void *ctx, const char *s, size_t l)
{
    compact_t *c = ctx;
    if (skipping_scalar(c))
        return 1;
    c->next_is_name_map = false;
    return gen_ok(c, yajl_gen_number(c->gen, s, l));
}

static int on_string(void *ctx, const unsigned char *s, size_t l)
{
    compact_t *c = ctx;
    if (skipping_scalar(c))
        return 1;
    c->next_is_name_map = false;
    return gen_ok(c, yajl_gen_string(c->gen, s, l));
}

static int open_container(compact_t *c, bool map)
{
    if (c->depth >= CJ_MAX_DEPTH) {
        c->gen_status = yajl_max_depth_exceeded;
        return 0;
    }
    ++c->depth;
    if (c->skip != 0) {
        ++c->skip;
        return 1;
    }
    c->name_map[c->depth] = map && c->next_is_name_map;
    c->next_is_name_map = false;
    return gen_ok(c, map ? yajl_gen_map_open(c->gen) : yajl_gen_array_open(c->gen));
}

static int close_container(compact_t *c, bool map)
{
    --c->depth;
    if (c->skip != 0) {
        if (--c->skip == 1)
            c->skip = 0;
        return 1;
    }
    return gen_ok(c, map ? yajl_gen_map_close(c->gen) : yajl_gen_array_close(c->gen));
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, true);
}

static int on_end_map(void *ctx)
{
    return close_container(ctx, true);
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, false);
}

static int on_end_array(void *ctx)
{
    return close_container(ctx, false);
}

static bool key_is(const unsigned char *k, size_t l, const char *lit)
{
    size_t n = strlen(lit);
    return l == n && memcmp(k, lit, n) == 0;
}

static int on_map_key(void *ctx, const unsigned char *k, size_t l)
{
    compact_t *c = ctx;
    if (c->skip != 0)
        return 1;
    bool names = c->name_map[c->depth];
    if ((c->flags & K2A_JSON_DROP_CACHE_CONTROL) != 0 && !names && key_is(k, l, "cache_control")) {
        c->skip = 1; /* swallow the value that follows */
        ++c->dropped;
        return 1;
    }
    c->next_is_name_map = !names && (key_is(k, l, "properties") || key_is(k, l, "patternProperties") ||
                                     key_is(k, l, "definitions") || key_is(k, l, "$defs"));
    return gen_ok(c, yajl_gen_string(c->gen, k, l));
}

static const yajl_callbacks compact_callbacks = {on_null,      on_boolean, NULL,       NULL,           on_number,   on_string,
                                                 on_start_map, on_map_key, on_end_map, on_start_array, on_end_array};

int k2a_json_reserialize(k2a_arena_t *arena, const char *s, size_t n, size_t max, unsigned flags, k2a_str_t *out, size_t *dropped)
{
    compact_t c;
    memset(&c, 0, sizeof(c));
    c.flags = flags;
    c.gen_status = yajl_gen_status_ok;
    k2a_buf_init(&c.buf, max);
    int ret = 0;
    yajl_handle h = NULL;
    if ((c.gen = yajl_gen_alloc(NULL)) == NULL)
        return K2A_ENOMEM;
    yajl_gen_config(c.gen, yajl_gen_print_callback, on_print, &c);
    if ((h = yajl_alloc(&compact_callbacks, NULL, &c)) == NULL) {
        ret = K2A_ENOMEM;
        goto Exit;
    }
    yajl_status st = yajl_parse(h, (const unsigned char *)s, n);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (c.overflow)
            ret = K2A_ETOOBIG;
        else if (c.gen_status == yajl_max_depth_exceeded)
            ret = K2A_EJSON_DEPTH;
        else
            ret = K2A_EJSON_SYNTAX;
        goto Exit;
    }
    if (c.overflow) {
        ret = K2A_ETOOBIG;
        goto Exit;
    }
    char *p = k2a_arena_strndup(arena, c.buf.base != NULL ? c.buf.base : "", c.buf.len);
    if (p == NULL) {
        ret = K2A_ENOMEM;
        goto Exit;
    }
    *out = k2a_str(p, c.buf.len);
    if (dropped != NULL)
        *dropped = c.dropped;
Exit:
    if (h != NULL)
        yajl_free(h);
    yajl_gen_free(c.gen);
    k2a_buf_dispose(&c.buf);
    return ret;
}
