/*
 * Whole-string UTF-8 validation on top of k2a_utf8_seq (see utf8.h).
 */
#include "core/utf8.h"

bool k2a_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) {
            ++i;
            continue;
        }
        int l = k2a_utf8_seq(s + i, n - i);
        if (l <= 0)
            return false;
        i += (size_t)l;
    }
    return true;
}
