/*
 * The one place where kiro2api errors become Anthropic errors: a table from K2A_E* codes to (HTTP status, Anthropic
 * error type), and the two shapes an error takes on the wire — the JSON body of a non-200 response
 * {"type":"error","error":{"type":..,"message":..}} and, once an SSE stream has started, the in-stream event
 * "event: error\ndata: {...}\n\n". Messages come from the caller and should name the cause (which accounts failed
 * and why); an empty message falls back to k2a_strerror(err).
 */
#ifndef K2A_CONVERT_ANTHROPIC_ERROR_H
#define K2A_CONVERT_ANTHROPIC_ERROR_H

#include "core/buf.h"
#include "core/str.h"
#include "convert/dialect.h"

/* The table: one row per K2A_E* code, indexed by -(code + 1) (the dialect's error rows; reasons in anthropic_error.c). */
extern const k2a_dialect_error_t k2a_anthropic_error_rows[K2A__EIDX_MAX];

typedef struct st_k2a_anthropic_error_map_t {
    int status;       /* HTTP status of a non-streaming (or not yet started) response */
    const char *type; /* Anthropic error type, e.g. "invalid_request_error" */
} k2a_anthropic_error_map_t;

/* Maps a K2A_E* code (or 0, which maps like K2A_EINTERNAL) to status and type. Never fails: unknown codes give
 * 500 api_error. The full table and the reasons for each choice are in anthropic_error.c. */
k2a_anthropic_error_map_t k2a_anthropic_error_map(int err);
/* The Anthropic type for a bare HTTP status (401 -> authentication_error, 404 -> not_found_error, other 4xx ->
 * invalid_request_error, 529/503 -> overloaded_error, other 5xx -> api_error), for errors produced outside the K2A_E*
 * table (e.g. the client-key check). */
const char *k2a_anthropic_error_type_for_status(int status);

/* Appends {"type":"error","error":{"type":TYPE,"message":MESSAGE}} (compact, message JSON-escaped). Returns 0 or the
 * buffer's K2A_ETOOBIG / K2A_ENOMEM. */
int k2a_anthropic_error_json(k2a_buf_t *out, const char *type, k2a_str_t message);
/* Appends the in-stream form: "event: error\ndata: " + the JSON above + "\n\n". */
int k2a_anthropic_error_sse(k2a_buf_t *out, const char *type, k2a_str_t message);
/* Convenience: maps err, appends the JSON body to out and stores the HTTP status in *status (may be NULL). An empty
 * message is replaced by k2a_strerror(err). */
int k2a_anthropic_error_body(k2a_buf_t *out, int err, k2a_str_t message, int *status);
/* Convenience: maps err and appends the SSE error event (same message rule). */
int k2a_anthropic_error_event(k2a_buf_t *out, int err, k2a_str_t message);

#endif
