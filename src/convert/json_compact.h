/*
 * JSON output helpers of the response writers. k2a_json_compact re-serialises a JSON text as compact JSON (no
 * insignificant whitespace), checking its syntax on the way; k2a_json_append_escaped is the fast string escaper.
 * Used by the response side where upstream JSON must be handed to a client as JSON text: a tool input given
 * as an object, and the concatenated tool-input pieces of a non-streaming response (which must parse, or the
 * response is an error rather than a silent "{}"). yajl SAX in one call; numbers are copied as written;
 * strings are re-escaped, invalid UTF-8 becoming U+FFFD so that the output is always valid UTF-8.
 */
#ifndef K2A_CONVERT_JSON_COMPACT_H
#define K2A_CONVERT_JSON_COMPACT_H

#include <stdbool.h>
#include <stddef.h>
#include "core/buf.h"

#define K2A_JSON_COMPACT_MAX_DEPTH 256

/* Appends the compact form of the JSON text json[0..len) (exactly one value, surrounding whitespace allowed) to out.
 * Returns 0, K2A_EJSON_SYNTAX (malformed or truncated; out may hold a partial result), K2A_EJSON_DEPTH (nesting deeper
 * than K2A_JSON_COMPACT_MAX_DEPTH), K2A_ETOOBIG (out's maximum) or K2A_ENOMEM. */
int k2a_json_compact(k2a_buf_t *out, const char *json, size_t len);

/* Appends s[0..n) as the body of a JSON string (no quotes), exactly like k2a_buf_append_json_escaped (", \\, \\n, \\r,
 * \\t, \\b, \\f, other controls as \\u00XX, invalid UTF-8 bytes as U+FFFD, everything else as is) but several times
 * faster: it reserves room once per 4 KiB of input and writes without a call per run. Returns 0, K2A_ETOOBIG or
 * K2A_ENOMEM (then out may hold a partial string). */
int k2a_json_append_escaped(k2a_buf_t *out, const char *s, size_t n);

/* True when json[0..len) starts (after whitespace) with '{' (cheap check, no parse). */
bool k2a_json_looks_like_object(const char *json, size_t len);

#endif
