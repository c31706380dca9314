/*
 * Small JSON helpers for the converters: decide whether a piece of valid JSON text is already compact
 * (so a subtree of the request body can be kept zero-copy), and re-serialise JSON text compactly with
 * yajl (optionally dropping "cache_control" members that Kiro rejects inside tool schemas).
 */
#ifndef K2A_CONVERT_JSON_UTIL_H
#define K2A_CONVERT_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include "core/arena.h"
#include "core/str.h"

/* True when s (valid JSON text) contains no whitespace outside strings. */
bool k2a_json_is_compact(const char *s, size_t n);

enum {
    /* drop every member named "cache_control", except where object keys are names chosen by the user
     * (inside "properties", "patternProperties", "definitions", "$defs") */
    K2A_JSON_DROP_CACHE_CONTROL = 1,
};

/*
 * Parses s (one JSON value) and writes it compactly into the arena. max bounds the output (and the nesting
 * is bounded by yajl_gen's 128 levels). Returns 0, K2A_EJSON_SYNTAX (not valid JSON), K2A_EJSON_DEPTH,
 * K2A_ETOOBIG (output over max) or K2A_ENOMEM. *dropped (may be NULL) receives the number of members removed.
 */
int k2a_json_reserialize(k2a_arena_t *arena, const char *s, size_t n, size_t max, unsigned flags, k2a_str_t *out, size_t *dropped);

#endif
