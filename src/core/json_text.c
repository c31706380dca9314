/*
 * Byte-level looks at JSON text (see json_text.h): depth before parsing, URL-encoding of query values. Shared by the
 * tool-schema sanitizer, the catalog parser, kiro-sim's validator and the pool's REST calls, which each had a copy.
 */
#include "core/json_text.h"

size_t k2a_json_text_depth(const char *s, size_t n, size_t limit, bool *comment)
{
    size_t depth = 0, max = 0;
    bool in_str = false;
    if (comment != NULL)
        *comment = false;
    for (size_t i = 0; i < n; ++i) {
        char ch = s[i];
        if (in_str) {
            if (ch == '\\')
                ++i;
            else if (ch == '"')
                in_str = false;
        } else if (ch == '"') {
            in_str = true;
        } else if (ch == '/') {
            if (comment != NULL)
                *comment = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max && (max = depth) > limit)
                return max;
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    return max;
}

int k2a_buf_append_url_encoded(k2a_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int r = 0;
    for (; *s != '\0' && r == 0; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~') {
            r = k2a_buf_append(out, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            r = k2a_buf_append(out, e, 3);
        }
    }
    return r;
}
