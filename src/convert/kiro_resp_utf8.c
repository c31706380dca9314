/*
 * UTF-8 helpers of the Kiro response parser (see kiro_resp_internal.h): Kiro splits text and tool input into pieces at
 * arbitrary byte offsets, so a piece may end inside a multi-byte sequence. The parser holds back such an incomplete tail
 * until the next piece completes it, and replaces any byte that can never be valid UTF-8 by U+FFFD, so that every string
 * a client receives is valid UTF-8 (JSON requires it) without losing the characters that were merely split.
 */
#include <string.h>
#include "convert/kiro_resp_internal.h"
#include "core/errors.h"
#include "core/utf8.h"

#define REPLACEMENT "\xef\xbf\xbd"

/* Bytes of s that end on a sequence boundary: a valid incomplete sequence at the very end (at most 3 bytes) is left out. */
size_t k2a__kiro_utf8_complete_prefix(const char *s, size_t n)
{
    size_t back = n < 3 ? n : 3;
    for (size_t k = 1; k <= back; ++k) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xc0) == 0x80)
            continue; /* continuation byte: keep looking for the lead byte */
        if (c >= 0xc2 && k2a_utf8_seq((const unsigned char *)s + n - k, k) == -1)
            return n - k;
        break;
    }
    return n;
}

/* Returns s itself when it is valid UTF-8, else a copy in `fix` with each invalid byte replaced by U+FFFD. */
int k2a__kiro_utf8_sanitize(k2a_buf_t *fix, const char **s, size_t *n)
{
    const unsigned char *u = (const unsigned char *)*s;
    size_t i = 0, len = *n;
    while (i < len) {
        if (u[i] < 0x80) {
            ++i;
            continue;
        }
        int l = k2a_utf8_seq(u + i, len - i);
        if (l <= 0)
            break;
        i += (size_t)l;
    }
    if (i == len)
        return 0;
    int r;
    k2a_buf_reset(fix);
    if ((r = k2a_buf_append(fix, u, i)) != 0)
        return r;
    while (i < len) {
        int l = u[i] < 0x80 ? 1 : k2a_utf8_seq(u + i, len - i);
        if (l <= 0) {
            if ((r = k2a_buf_append(fix, REPLACEMENT, 3)) != 0)
                return r;
            ++i;
        } else {
            if ((r = k2a_buf_append(fix, u + i, (size_t)l)) != 0)
                return r;
            i += (size_t)l;
        }
    }
    *s = fix->base;
    *n = fix->len;
    return 0;
}
