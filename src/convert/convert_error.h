/*
 * Errors and limits shared by every converter (request decoders, normalizer, Kiro encoder, model map).
 * A conversion error carries a K2A_E* code (which the HTTP layer maps to a status, in one place per
 * dialect) and a message that is safe to show to the client: it names the JSON path of the problem
 * ("messages[3].content[0].source.data: expected a string") and never contains secrets.
 * Limits bound everything a peer controls (DESIGN.md §5): JSON depth, element counts, string sizes.
 */
#ifndef K2A_CONVERT_CONVERT_ERROR_H
#define K2A_CONVERT_CONVERT_ERROR_H

#include <stddef.h>

typedef struct st_k2a_convert_error_t {
    int code;          /* 0 or a negative K2A_E* */
    char message[512]; /* NUL-terminated, client-safe; empty when code == 0 */
} k2a_convert_error_t;

/* Limits of a request decoder. Every field is a hard maximum; hitting one is a clean error
 * (K2A_EJSON_DEPTH for depth, K2A_ETOOBIG for the others) whose message names the limit. */
typedef struct st_k2a_convert_limits_t {
    unsigned max_depth;          /* JSON nesting depth of the whole body; default 128 (= yajl_gen's own maximum) */
    size_t max_messages;         /* entries of messages[]; default 10 000 */
    size_t max_blocks;           /* content blocks in the whole request, nested tool_result blocks included; default 100 000 */
    size_t max_system_blocks;    /* entries of system[]; default 1 000 */
    size_t max_tools;            /* entries of tools[]; default 2 000 */
    size_t max_stop_sequences;   /* entries of stop_sequences[] / stop[]; default 256 */
    size_t max_string_bytes;     /* one JSON string (decoded); default 32 MiB (a 20 MiB image is ~27 MiB of base64) */
    size_t max_json_value_bytes; /* one captured JSON subtree (tool input, input_schema) as compact text; default 16 MiB */
    /* not a limit but the caller's scope: the client key's id (NULL: none). What a dialect keeps between requests (stored
     * Responses) is visible only to the key that created it. */
    const char *owner;
} k2a_convert_limits_t;

#define K2A_CONVERT_DEFAULT_MAX_DEPTH 128
#define K2A_CONVERT_DEFAULT_MAX_MESSAGES 10000
#define K2A_CONVERT_DEFAULT_MAX_BLOCKS 100000
#define K2A_CONVERT_DEFAULT_MAX_SYSTEM_BLOCKS 1000
#define K2A_CONVERT_DEFAULT_MAX_TOOLS 2000
#define K2A_CONVERT_DEFAULT_MAX_STOP_SEQUENCES 256
#define K2A_CONVERT_DEFAULT_MAX_STRING_BYTES ((size_t)32 * 1024 * 1024)
#define K2A_CONVERT_DEFAULT_MAX_JSON_VALUE_BYTES ((size_t)16 * 1024 * 1024)

/* The defaults above. */
k2a_convert_limits_t k2a_convert_limits_default(void);

/* Sets err->code = code and formats err->message (truncated to fit). err may be NULL. Returns code, so that
 * `return k2a_convert_error_set(err, K2A_EJSON_TYPE, "...")` reads naturally. */
int k2a_convert_error_set(k2a_convert_error_t *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Clears err (code 0, empty message). err may be NULL. */
void k2a_convert_error_clear(k2a_convert_error_t *err);

#endif
