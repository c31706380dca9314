/*
 * Byte-level looks at JSON text taken before a parser sees it: the nesting depth (yajl's tree parser recurses, so a
 * peer's 10 000 brackets must be refused first) and URL-encoding of values placed in query strings. No allocation, no
 * parsing: one pass over the bytes.
 */
#ifndef K2A_CORE_JSON_TEXT_H
#define K2A_CORE_JSON_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include "core/buf.h"

/* The largest nesting of '[' and '{' outside strings in s[0..n), counting stopped as soon as it passes limit (the result is
 * then limit + 1). *comment (may be NULL) is set when a '/' appears outside strings: yajl's tree parser takes comments,
 * which no JSON peer sends. */
size_t k2a_json_text_depth(const char *s, size_t n, size_t limit, bool *comment);

/* Appends s (NUL-terminated) percent-encoded as RFC 3986 unreserved characters allow (A-Z a-z 0-9 - _ . ~ kept).
 * Returns 0 or the buffer's error (K2A_ENOMEM, K2A_ETOOBIG). */
int k2a_buf_append_url_encoded(k2a_buf_t *out, const char *s);

#endif
