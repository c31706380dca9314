/*
 * Bounded growable buffers (see buf.h). Growth doubles, capped at the buffer's maximum.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/utf8.h"
#include "core/errors.h"

void k2a_buf_init(k2a_buf_t *b, size_t max)
{
    b->base = NULL;
    b->len = b->cap = 0;
    b->max = max;
}

void k2a_buf_dispose(k2a_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

int k2a__buf_reserve_grow(k2a_buf_t *b, size_t extra)
{
    size_t max = b->max != 0 ? b->max : SIZE_MAX - 1;
    if (extra > max || b->len > max - extra)
        return K2A_ETOOBIG;
    size_t need = b->len + extra + 1; /* room for a NUL from k2a_buf_cstr */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap < 256 ? 256 : b->cap;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > max + 1)
        cap = max + 1;
    char *p;
    if (b->base != NULL && b->len < b->cap / 2) {
        /* half empty or more (a stream's staging buffer, reserved ahead of a read): realloc copies the whole old block
         * when it moves it (glibc copies the chunk, not what is in use), this copies the bytes in use */
        if ((p = malloc(cap)) == NULL)
            return K2A_ENOMEM;
        memcpy(p, b->base, b->len);
        free(b->base);
    } else if ((p = realloc(b->base, cap)) == NULL) {
        return K2A_ENOMEM;
    }
    b->base = p;
    b->cap = cap;
    return 0;
}

int k2a__buf_append_grow(k2a_buf_t *b, const void *p, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if ((r = k2a__buf_reserve_grow(b, n)) != 0)
        return r;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

size_t k2a_fmt_i64(char *out, long long v)
{
    if (v >= 0 && v < 10) {
        *out = (char)('0' + v); /* the zero counts of a usage object */
        return 1;
    }
    char tmp[24];
    size_t n = sizeof(tmp);
    /* the magnitude as unsigned: LLONG_MIN has no positive long long */
    unsigned long long m = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[--n] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    if (v < 0)
        tmp[--n] = '-';
    memcpy(out, tmp + n, sizeof(tmp) - n);
    return sizeof(tmp) - n;
}

int k2a_buf_append_i64(k2a_buf_t *b, long long v)
{
    char tmp[K2A_I64_CHARS];
    return k2a_buf_append(b, tmp, k2a_fmt_i64(tmp, v));
}

int k2a_buf_vappendf(k2a_buf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    char small[256];
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof(small), fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return K2A_EINVAL;
    if ((size_t)n < sizeof(small))
        return k2a_buf_append(b, small, n);
    int r;
    if ((r = k2a_buf_reserve(b, (size_t)n)) != 0)
        return r;
    vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    b->len += n;
    return 0;
}

int k2a_buf_appendf(k2a_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int r = k2a_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return r;
}

int k2a_buf_append_json_escaped(k2a_buf_t *b, const char *str, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    int r;
    /* worst case is 6 bytes per input byte ("\u00XX"); reserve a realistic amount up front */
    if ((r = k2a_buf_reserve(b, n + n / 8 + 16)) != 0)
        return r;
    size_t i = 0, run = 0;
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (i < n) {
        /* eight plain ASCII bytes at a time: none >= 0x80, below 0x20, '"' or '\\' */
        uint64_t w, q, bs;
        if (i + 8 <= n) {
            memcpy(&w, s + i, 8);
            q = w ^ (ones * '"');
            bs = w ^ (ones * '\\');
            if (((w | ((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((bs - ones) & ~bs)) & highs) == 0) {
                i += 8;
                run += 8;
                continue;
            }
        }
        unsigned char c = s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            ++i;
            ++run;
            continue;
        }
        if (c >= 0x80) {
            int l = k2a_utf8_seq(s + i, n - i);
            if (l > 0) {
                i += (size_t)l;
                run += (size_t)l;
                continue;
            }
        }
        if (run != 0 && (r = k2a_buf_append(b, s + i - run, run)) != 0)
            return r;
        run = 0;
        char esc[8];
        size_t el = 2;
        esc[0] = '\\';
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                el = 6;
            } else {
                /* invalid UTF-8 byte: U+FFFD */
                memcpy(esc, "\xef\xbf\xbd", 3);
                el = 3;
            }
        }
        if ((r = k2a_buf_append(b, esc, el)) != 0)
            return r;
        ++i;
    }
    if (run != 0)
        return k2a_buf_append(b, s + n - run, run);
    return 0;
}

void k2a_buf_consume(k2a_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

char *k2a_buf_cstr(k2a_buf_t *b)
{
    if (b->base == NULL || b->len + 1 > b->cap) {
        /* reserve(0) would be a no-op on a full buffer: ask for one byte and do not count it */
        if (k2a_buf_reserve(b, 1) != 0)
            return NULL;
    }
    b->base[b->len] = '\0';
    return b->base;
}
