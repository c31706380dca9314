/*
 * A borrowed byte string (pointer + length, not NUL-terminated) and small helpers. Who owns the bytes
 * is said at each use: usually the request body or the request's arena.
 */
#ifndef K2A_CORE_STR_H
#define K2A_CORE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

typedef struct st_k2a_str_t {
    const char *base;
    size_t len;
} k2a_str_t;

#define K2A_STR_NULL ((k2a_str_t){NULL, 0})
#define K2A_STRLIT(s) ((k2a_str_t){(s), sizeof(s) - 1})

static inline k2a_str_t k2a_str(const char *base, size_t len)
{
    return (k2a_str_t){base, len};
}
static inline k2a_str_t k2a_cstr(const char *s)
{
    return (k2a_str_t){s, s != NULL ? strlen(s) : 0};
}
static inline bool k2a_str_eq(k2a_str_t a, k2a_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.base, b.base, a.len) == 0);
}
static inline bool k2a_str_eq_lit(k2a_str_t a, const char *lit)
{
    return k2a_str_eq(a, k2a_cstr(lit));
}
static inline bool k2a_str_has_prefix(k2a_str_t a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.base, prefix, n) == 0;
}
static inline bool k2a_str_is_set(k2a_str_t a)
{
    return a.base != NULL;
}
/* Copies the C string src into dst[cap] (cap > 0), cut to cap - 1 bytes and NUL-terminated: what snprintf(dst, cap, "%s",
 * src) writes, without printf on the per-request path. */
static inline void k2a_copy_cstr(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}
/* "a.b.c.d" (at most 16 bytes with the NUL) for the 4 bytes of an IPv4 address in network order, as inet_ntop writes it
 * (glibc's formats each byte with sprintf: ~1.7 k instructions per request). */
static inline void k2a_ipv4_text(char *out, const unsigned char *b)
{
    for (int i = 0; i < 4; ++i) {
        unsigned v = b[i];
        if (v >= 100)
            *out++ = (char)('0' + v / 100);
        if (v >= 10)
            *out++ = (char)('0' + v / 10 % 10);
        *out++ = (char)('0' + v % 10);
        *out++ = i < 3 ? '.' : '\0';
    }
}

#endif
