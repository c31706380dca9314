/*
 * Re-serialises a JSON text as compact JSON (no insignificant whitespace), checking its syntax on the way.
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

/* True when json[0..len) starts (after whitespace) with '{' (cheap check, no parse). */
bool k2a_json_looks_like_object(const char *json, size_t len);

#endif
