/*
 * Tool input schemas in the shape Kiro accepts (kiro-protocol-2026.md §6; choices in docs/kiro-compat.md
 * "## Tool schemas"). A pure function: JSON schema text in, compact JSON text out, bounded in depth and size.
 *
 * Root rules (always): the root is an object schema with "type":"object" (a missing type is added; a root that is
 * not a JSON object, or whose type does not allow "object", becomes {"type":"object","properties":{}} keeping its
 * description); a root anyOf/oneOf/allOf (and a root "$ref" into the schema's own $defs/definitions) is flattened:
 * the properties of every object variant are merged (the first definition of a name wins), "required" is the root's
 * plus the union of the allOf variants' (anyOf/oneOf variants are alternatives: none of their names is required),
 * the description is the root's or the first variant's. Nested combinators are kept.
 * "$schema" and "cache_control" members are removed at every schema position.
 *
 * Keyword stripping (K2A_TOOL_SCHEMA_STRICT, the default): at every schema position, the validation keywords peers
 * report as tripping "Invalid tool use format." are removed: pattern, format, minLength, maxLength, minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, multipleOf, minItems, maxItems, uniqueItems, minProperties, maxProperties,
 * content*, patternProperties, propertyNames, dependentRequired, dependentSchemas, dependencies, if, then, else,
 * contains, minContains, maxContains, unevaluatedProperties, unevaluatedItems, additionalProperties, encrypted, and an
 * empty "required". K2A_TOOL_SCHEMA_MINIMAL keeps them (only the root rules and $schema apply).
 *
 * Keys chosen by the user (the names inside properties, $defs, definitions) are never taken for keywords: a
 * property named "pattern" stays. enum/const/default/examples values are copied untouched.
 * The function is idempotent, and leaves a compliant schema unchanged except for the stripped keywords.
 */
#ifndef K2A_CONVERT_TOOL_SCHEMA_H
#define K2A_CONVERT_TOOL_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include "core/buf.h"

typedef enum en_k2a_tool_schema_strip_t {
    K2A_TOOL_SCHEMA_STRICT = 0, /* KIRO_TOOL_SCHEMA_STRIP=strict */
    K2A_TOOL_SCHEMA_MINIMAL,    /* KIRO_TOOL_SCHEMA_STRIP=minimal */
} k2a_tool_schema_strip_t;

#define K2A_TOOL_SCHEMA_MAX_BYTES ((size_t)1024 * 1024) /* input text */
#define K2A_TOOL_SCHEMA_MAX_DEPTH 128 /* nesting of objects and arrays in the input (the request decoder's own limit) */

/* What the sanitizer changed (for debug logs and tests). */
typedef struct st_k2a_tool_schema_info_t {
    size_t removed;     /* members removed ($schema, cache_control, stripped keywords, empty required) */
    bool root_typed;    /* "type":"object" added at the root, or a root type set to "object" */
    bool root_replaced; /* the root was not an object schema and was replaced */
    bool flattened;     /* root combinators (or a root $ref) were flattened */
} k2a_tool_schema_info_t;

/* Output size bound for an input of len bytes: flattening copies each input member at most twice. */
static inline size_t k2a_tool_schema_max_output(size_t len)
{
    return 2 * len + 256;
}

/*
 * Sanitizes the schema text json[0..len) (one JSON value) and appends the result, compact, to out (out->max bounds
 * it). info may be NULL. Returns 0, K2A_EJSON_SYNTAX (not one JSON value), K2A_EJSON_DEPTH (nested deeper than
 * K2A_TOOL_SCHEMA_MAX_DEPTH), K2A_ETOOBIG (input over K2A_TOOL_SCHEMA_MAX_BYTES, or output over out->max) or
 * K2A_ENOMEM. An empty input gives {"type":"object","properties":{}}.
 */
int k2a_tool_schema_sanitize(const char *json, size_t len, k2a_tool_schema_strip_t mode, k2a_buf_t *out,
                             k2a_tool_schema_info_t *info);

/* The same answer, remembered: a process-wide table (thread-safe) keeps the output of the last schemas seen, so the tool
 * list a client sends with every request is sanitized once. */
int k2a_tool_schema_sanitize_cached(const char *json, size_t len, k2a_tool_schema_strip_t mode, k2a_buf_t *out,
                                    k2a_tool_schema_info_t *info);

#endif
