/*
 * Short JSON numbers to double without strtod: a decimal of at most 15 digits is an integer below 2^53 divided by a power
 * of ten up to 10^15, both exact in a double, so one IEEE division gives the correctly rounded value, the same double
 * strtod returns. Anything else (exponents, longer numbers, other spellings) is left to strtod by the caller.
 */
#ifndef K2A_CONVERT_JSON_NUMBER_H
#define K2A_CONVERT_JSON_NUMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* s[0..n) when it is -?D+(.D+)? with at most 15 digits in all: *out is what strtod reads from it, and true; else false
 * (nothing written). */
static inline bool k2a_json_decimal_fast(const char *s, size_t n, double *out)
{
    static const double pow10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
    size_t i = 0, digits = 0, frac = 0;
    bool neg = n != 0 && s[0] == '-';
    uint64_t m = 0;
    for (i = neg; i < n && s[i] >= '0' && s[i] <= '9' && digits <= 15; ++i, ++digits)
        m = m * 10 + (uint64_t)(s[i] - '0');
    if (digits == 0)
        return false;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9' && digits <= 15; ++i, ++digits)
            m = m * 10 + (uint64_t)(s[i] - '0');
        frac = i - start;
        if (frac == 0)
            return false;
    }
    if (i != n || digits > 15)
        return false;
    double v = (double)m / pow10[frac];
    *out = neg ? -v : v;
    return true;
}

#endif
