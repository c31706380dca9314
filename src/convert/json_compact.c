/*
 * JSON output helpers (see json_compact.h). The compactor's yajl SAX callbacks write straight into the output
 * buffer; a fixed-size stack of per-level element counters decides where commas go. The escaper classifies bytes
 * with a 256-entry table and writes into room reserved per 4 KiB chunk (at most 6 output bytes per input byte).
 */
#include <stdint.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "convert/json_compact.h"
#include "core/utf8.h"
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
    if ((r = k2a_json_append_escaped(c->out, (const char *)s, len)) != 0) {
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

/* 0: copied as is; 1: escaped; 2: start of a non-ASCII sequence (validated) */
static const uint8_t esc_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 " */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x40 \\ */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xa0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xc0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xe0 */
};

int k2a_json_append_escaped(k2a_buf_t *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    int r;
    while (i < n) {
        size_t end = n - i < 4096 ? n : i + 4096;
        /* 6 output bytes per input byte at most, + 3 for a sequence that runs past the chunk */
        if ((r = k2a_buf_reserve(b, (end - i) * 6 + 8)) != 0) {
            /* near the buffer's maximum the worst case may not fit although the real output does: do it exactly */
            return r == K2A_ETOOBIG ? k2a_buf_append_json_escaped(b, str + i, n - i) : r;
        }
        char *out = b->base + b->len;
        while (i < end) {
            /* 8 bytes at a time while none needs attention (SWAR: a byte < 0x20, '"', '\\' or >= 0x80; a false positive
             * only sends the word to the byte loop) */
            while (end - i >= 8) {
                uint64_t x;
                memcpy(&x, s + i, 8);
                const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
                uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
                uint64_t hit = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((bs - ones) & ~bs) | x;
                if ((hit & high) != 0)
                    break;
                memcpy(out, s + i, 8);
                out += 8;
                i += 8;
            }
            if (i >= end)
                break;
            unsigned char c = s[i];
            switch (esc_class[c]) {
            case 0:
                *out++ = (char)c;
                ++i;
                break;
            case 1:
                *out++ = '\\';
                switch (c) {
                case '"':
                    *out++ = '"';
                    break;
                case '\\':
                    *out++ = '\\';
                    break;
                case '\n':
                    *out++ = 'n';
                    break;
                case '\r':
                    *out++ = 'r';
                    break;
                case '\t':
                    *out++ = 't';
                    break;
                case '\b':
                    *out++ = 'b';
                    break;
                case '\f':
                    *out++ = 'f';
                    break;
                default:
                    *out++ = 'u';
                    *out++ = '0';
                    *out++ = '0';
                    *out++ = hex[c >> 4];
                    *out++ = hex[c & 15];
                    break;
                }
                ++i;
                break;
            default: {
                int l = k2a_utf8_seq(s + i, n - i);
                if (l <= 0) {
                    memcpy(out, "\xef\xbf\xbd", 3);
                    out += 3;
                    ++i;
                } else {
                    memcpy(out, s + i, l);
                    out += l;
                    i += l;
                }
                break;
            }
            }
        }
        b->len = (size_t)(out - b->base);
    }
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
