/*
 * Redacted traces of upstream exchanges (KIRO_TRACE_DIR, kiro2api doctor --trace): one file per exchange that failed,
 * and one in KIRO_TRACE_SAMPLE of the others. A file holds the request line and headers with every token, key, ARN
 * account number and machine id masked, the body with prompt, tool and result texts replaced by their lengths (kept with
 * KIRO_TRACE_KEEP_TEXT), the response status and headers, and the response bytes with text payloads masked the same way
 * (an EventStream stays a valid EventStream: masked frames are encoded again with fresh CRCs).
 *
 * File format (scripts/trace-to-case reads it):
 *     kiro2api-trace 1\n
 *     <one line of JSON: time, account, outcome, failed, request {method, url, headers [[name, value]...]},
 *      response {status, headers} or null, request_body_bytes, response_body_bytes, truncated, text_kept>\n
 *     <request_body_bytes bytes: the redacted request body>\n
 *     <response_body_bytes bytes: the redacted response body>
 * Bounded: KIRO_TRACE_MAX_BYTES per file (the response is cut at a frame boundary past it, truncated: true) and
 * KIRO_TRACE_MAX_FILES per directory (further traces are skipped and counted, nothing is deleted). Files are mode 0600 in
 * a 0700 directory, written on libuv's thread pool: the loop never waits for the disk.
 */
#ifndef K2A_TRACE_TRACE_H
#define K2A_TRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/buf.h"
#include "upstream/upstream.h"

typedef struct st_k2a_trace_config_t {
    const char *dir;    /* NULL or "" = tracing off */
    unsigned sample;    /* 1 in N of the successful exchanges (0 = none) */
    size_t max_bytes;   /* per file */
    unsigned max_files; /* per directory */
    bool keep_text;     /* prompt, tool and result texts are kept */
} k2a_trace_config_t;

/* Process-wide, before any loop runs: creates the directory (0700) and counts the traces already in it. Returns 0 or
 * K2A_ECONFIG with a message in err. */
int k2a_trace_setup(const k2a_trace_config_t *cfg, char *err, size_t errlen);
bool k2a_trace_enabled(void);
/* Traces written, and traces skipped because the directory was full (or the write queue was). */
void k2a_trace_counts(uint64_t *written, uint64_t *skipped);

/* Writes queued and not finished yet (a tool waits for 0 before it exits). */
uint64_t k2a_trace_pending(void);
/* Settings from the configuration (KIRO_TRACE_*); dir overrides KIRO_TRACE_DIR when not NULL, keep_text adds to
 * KIRO_TRACE_KEEP_TEXT. Returns k2a_trace_setup's result. */
struct st_k2a_config_t;
int k2a_trace_setup_from(const struct st_k2a_config_t *c, const char *dir, bool keep_text, char *err, size_t errlen);

typedef struct st_k2a_trace_rec_t k2a_trace_rec_t;

/* Starts the record of one exchange (NULL when tracing is off or memory is short): the request is redacted now. */
k2a_trace_rec_t *k2a_trace_begin(const char *account, const char *method, const k2a_url_t *url, const k2a_http_header_t *headers,
                                 size_t nheaders, const uv_buf_t *body, size_t nbody);
/* The response head (status and headers). */
void k2a_trace_response_head(k2a_trace_rec_t *rec, const k2a_http_response_t *resp);
/* Response body bytes as they arrive (a bounded copy: past KIRO_TRACE_MAX_BYTES nothing more is kept). */
void k2a_trace_capture(k2a_trace_rec_t *rec, const void *data, size_t len);
/* The outcome: a failed exchange is written; a successful one is written when sampled. Frees the record (*rec = NULL).
 * transport_err: 0 or the K2A_E* of the call. The write goes to `loop`'s thread pool. */
void k2a_trace_end(k2a_trace_rec_t **rec, uv_loop_t *loop, bool failed, int transport_err, const char *outcome);
/* Drops a record without writing it. */
void k2a_trace_discard(k2a_trace_rec_t **rec);

/* ---- redaction (trace_redact.c; exposed for tests) ---- */

/* Appends s with ARN account numbers (any run of exactly 12 digits) and machine ids (runs of 32+ hex digits) masked. */
void k2a_trace_mask_text(k2a_buf_t *out, const char *s, size_t len);
/* Appends a header value: credentials (authorization, x-api-key, cookies, tokens) as "****" + last 4, others through
 * k2a_trace_mask_text. */
void k2a_trace_mask_header(k2a_buf_t *out, const char *name, size_t name_len, const char *value, size_t value_len);
/* Appends a JSON document with the texts of prompts, tools and results replaced by "<N bytes>" (unless keep_text), and
 * every string through k2a_trace_mask_text. Not JSON: "<N bytes, not JSON>" is appended instead. Returns 0 or K2A_ENOMEM. */
int k2a_trace_redact_json(k2a_buf_t *out, const char *json, size_t len, bool keep_text);
/* Appends an EventStream with every frame's payload redacted (k2a_trace_redact_json) and encoded again with fresh CRCs; a
 * partial last frame is left out. Returns 0, K2A_ENOMEM, or the decoder's error (out then holds the frames before it). */
int k2a_trace_redact_eventstream(k2a_buf_t *out, const char *data, size_t len, bool keep_text);

#endif
