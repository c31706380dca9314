/*
 * Errors in OpenAI's shape for /v1/chat/completions (kiro-protocol.md §5.4, §4.4 [REC]): ONE table maps
 * every K2A_E* code to an HTTP status, an OpenAI error `type` and `code`, and two writers render
 * `{"error":{"message","type","param","code"}}` as a response body or as one in-stream SSE chunk.
 * The dialect (openai_dialect.c) carries the table; k2a_dialect_error() is the one lookup.
 */
#ifndef K2A_CONVERT_OPENAI_ERROR_H
#define K2A_CONVERT_OPENAI_ERROR_H

#include <stddef.h>
#include "core/buf.h"
#include "convert/dialect.h"

/* status: the HTTP status; type: OpenAI's error.type, e.g. "server_error"; code: its error.code, e.g. "model_not_found" */
typedef k2a_dialect_error_t k2a_openai_error_info_t;

/* The table: one row per K2A_E* code, indexed by -(code + 1) (the dialect's error rows). */
extern const k2a_dialect_error_t k2a_openai_error_rows[K2A__EIDX_MAX];

/* The table row of a K2A_E* code; never NULL (unknown codes and 0 give 500 server_error). */
const k2a_openai_error_info_t *k2a_openai_error_info(int err);

/* Appends `{"error":{"message":M,"type":T,"param":P,"code":C}}` for err. message (len bytes, any bytes: it is
 * JSON-escaped) defaults to k2a_strerror(err) when NULL; param is a NUL-terminated JSON path such as
 * "messages[2].content". When param is NULL, err is a request-decoding code (JSON_*, MISSING_FIELD, IMAGE_*, EMPTY_*,
 * BAD_PARAM, TOOBIG) and message has the decoders' form "<json path>: <text>", param is that path; else null. Returns the HTTP
 * status to send (> 0), or a negative K2A_E* when out is full. */
int k2a_openai_error_body(k2a_buf_t *out, int err, const char *message, size_t len, const char *param);

/* The same with the row given (the dialect's error_body): returns 0 or a negative K2A_E* when out is full. */
int k2a_openai_error_object(k2a_buf_t *out, const k2a_openai_error_info_t *info, int err, const char *message, size_t len,
                            const char *param);

/* Appends the in-stream form `data: {"error":{...}}\n\n` (param null) used once the SSE stream has started.
 * Returns 0 or a negative K2A_E* when out is full. */
int k2a_openai_error_chunk(k2a_buf_t *out, int err, const char *message, size_t len);

#endif
