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

#endif
