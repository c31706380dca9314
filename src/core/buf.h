/*
 * Bounded growable byte buffers. Every buffer fed by a peer has an explicit maximum (curl's
 * "toobig"): appending past it fails with K2A_ETOOBIG instead of growing without bound. Memory comes
 * from malloc/realloc, so a pointer into base[] does not survive an append (nor a coroutine yield).
 */
#ifndef K2A_CORE_BUF_H
#define K2A_CORE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef struct st_k2a_buf_t {
    char *base;
    size_t len;
    size_t cap;
    size_t max; /* 0 means SIZE_MAX */
} k2a_buf_t;

#define K2A_BUF_INIT(max_)                                                                                                         \
    {                                                                                                                              \
        NULL, 0, 0, (max_)                                                                                                         \
    }

void k2a_buf_init(k2a_buf_t *b, size_t max);
void k2a_buf_dispose(k2a_buf_t *b);
/* Ensures room for `extra` more bytes. Returns 0, K2A_ETOOBIG past max, or K2A_ENOMEM. Inline when there is room
 * already (room for the bytes and a NUL, within the maximum); k2a__buf_reserve_grow checks and grows. */
int k2a__buf_reserve_grow(k2a_buf_t *b, size_t extra);
static inline int k2a_buf_reserve(k2a_buf_t *b, size_t extra)
{
    if (b->len < b->cap && extra < b->cap - b->len && (b->max == 0 || (extra <= b->max && b->len <= b->max - extra)))
        return 0;
    return k2a__buf_reserve_grow(b, extra);
}
/* Appends n bytes. Inline for the common case (room for them and the NUL, within the maximum), so that a literal's copy
 * is a few moves instead of a call to memcpy; k2a__buf_append_grow handles the rest. */
int k2a__buf_append_grow(k2a_buf_t *b, const void *p, size_t n);
static inline int k2a_buf_append(k2a_buf_t *b, const void *p, size_t n)
{
    /* len + n < cap cannot overflow; n == 0 goes out of line (base may be NULL) */
    if (n != 0 && b->cap - b->len > n && (b->max == 0 || b->len + n <= b->max)) {
        memcpy(b->base + b->len, p, n);
        b->len += n;
        return 0;
    }
    return k2a__buf_append_grow(b, p, n);
}
/* s NUL-terminated (a literal's length is known at compile time). */
static inline int k2a_buf_appendstr(k2a_buf_t *b, const char *s)
{
    return k2a_buf_append(b, s, strlen(s));
}
int k2a_buf_appendf(k2a_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int k2a_buf_vappendf(k2a_buf_t *b, const char *fmt, va_list ap);
/* Appends v in decimal, as printf's %lld writes it (the per-request writers: printf costs several times more). */
int k2a_buf_append_i64(k2a_buf_t *b, long long v);
/* Writes v in decimal at out (room for K2A_I64_CHARS bytes; no NUL) and returns the count written. */
#define K2A_I64_CHARS 20
size_t k2a_fmt_i64(char *out, long long v);
/* Appends s as the body of a JSON string (escaped, without the quotes); invalid UTF-8 becomes U+FFFD. */
int k2a_buf_append_json_escaped(k2a_buf_t *b, const char *s, size_t n);
/* Removes the first n bytes (memmove). */
void k2a_buf_consume(k2a_buf_t *b, size_t n);
/* Keeps the allocation, drops the content. */
static inline void k2a_buf_reset(k2a_buf_t *b)
{
    b->len = 0;
}
/* NUL-terminates without counting the NUL in len; returns base or NULL on failure. */
char *k2a_buf_cstr(k2a_buf_t *b);

#endif
