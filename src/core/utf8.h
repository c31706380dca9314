/*
 * The one UTF-8 validator (RFC 3629 well-formedness: shortest form, no surrogates, nothing above U+10FFFF). Every
 * module that checks, cuts or repairs UTF-8 uses k2a_utf8_seq; it is inline because the JSON escapers call it per
 * non-ASCII character.
 */
#ifndef K2A_CORE_UTF8_H
#define K2A_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The sequence at s[0..n) (n > 0): its length (1..4) when it is well-formed, 0 when it is not, or -1 when the n bytes are
 * a well-formed but incomplete start of one (more bytes are needed to tell). */
static inline int k2a_utf8_seq(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4;
    else
        return 0;
    for (size_t i = 1; i < len; ++i) {
        if (i >= n)
            return -1;
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        /* the second byte's range rules out overlongs, surrogates and code points above U+10FFFF */
        if (i == 1 &&
            ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)))
            return 0;
    }
    return (int)len;
}

/* True when s[0..n) is entirely well-formed UTF-8 (an incomplete sequence at the end is not). */
bool k2a_utf8_valid(const char *s, size_t n);

#endif
