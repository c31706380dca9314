/*
 * A client dialect (DESIGN.md §3): everything that differs between the APIs the gateway serves — the request decoder into
 * the IR, the response writer (streaming and aggregating), the error shapes and the table from K2A_E* codes to HTTP status
 * and the dialect's error type, the keep-alive bytes. One const k2a_dialect_t per dialect lives beside its converters in
 * convert/ (anthropic_dialect.c, openai_dialect.c); the route table (http/router.c) carries a pointer to it, and the
 * exchange (http/exchange.c), the call and the router only ever go through this interface.
 *
 * Adding a dialect: its decoder, its writer, its error rows (one per code of core/errors.h: a unit test fails when one
 * is missing) and its entry in the route table.
 *
 * Writer protocol, as the exchange drives it: writer_init once per exchange (again after writer_dispose when a non-stream
 * answer starts over on another account); writer_on_event gets MESSAGE_START before the first upstream attempt, then the
 * IR events of the answer; for a stream, writer_commit when the response head goes out (before the staged bytes);
 * writer_finish when the stream ends; for a non-stream answer, writer_render once; writer_dispose last. A streaming
 * writer appends its bytes to ctx->out (the exchange moves them to the client), an aggregating one keeps them until
 * writer_render. Keep-alives and in-stream errors are events too, so that they have one path and the writer can number
 * them like any other: a silent committed stream gets K2A_EV_PING from the exchange's timer (the writer appends its ping
 * bytes), and a failure after commit is K2A_EV_ERROR (the writer appends its in-stream error event; a streaming writer
 * that gets ERROR right after MESSAGE_START must still write it).
 */
#ifndef K2A_CONVERT_DIALECT_H
#define K2A_CONVERT_DIALECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "convert/convert_error.h"
#include "convert/ir.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/errors.h"
#include "core/rand.h"
#include "core/str.h"

/* One row of a dialect's error table: what a K2A_E* code becomes in that dialect. */
typedef struct st_k2a_dialect_error_t {
    int status;       /* HTTP status of an answer not yet begun; 0 marks a missing row */
    const char *type; /* the dialect's error type, e.g. "invalid_request_error" */
    const char *code; /* the dialect's error code (OpenAI's error.code), or NULL */
} k2a_dialect_error_t;

/* What a writer knows of its exchange. Everything it points to outlives the writer. */
typedef struct st_k2a_dialect_writer_ctx_t {
    const k2a_ir_request_t *ir; /* the decoded request: model, stream, include_usage... */
    const char *request_id;     /* the gateway's request id (X-Request-ID) */
    k2a_buf_t *out;             /* a streaming writer appends its events here (the exchange's stage) */
    k2a_random_cb random;       /* source of the ids' random bytes (tests make it deterministic) */
    void *random_ctx;           /* its context */
    int64_t created;            /* unix seconds when the exchange started */
} k2a_dialect_writer_ctx_t;

typedef struct st_k2a_dialect_t {
    /* the dialect's name, for logs and tests: "anthropic", "openai" */
    const char *name;
    /* decodes a request body into *out (strings may point into body or arena); 0 or a K2A_E* with err->message set */
    int (*decode)(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena, k2a_ir_request_t *out,
                  k2a_convert_error_t *err);
    /* bytes of writer state the exchange allocates (suitably aligned, not zeroed: writer_init sets up what the writer reads;
     * the Responses writer's state is ~2 KB, mostly item slots set up when they open) for writer_* below */
    size_t writer_size;
    /* prepares the writer in w (streaming when ctx->ir->stream); 0 or a K2A_E* (then nothing is to be disposed) */
    int (*writer_init)(void *w, const k2a_dialect_writer_ctx_t *ctx) K2A_MUST_USE;
    /* the IR event sink (k2a_ir_event_cb with w as ctx): 0 or a K2A_E* (buffer full, impossible sequence) */
    k2a_ir_event_cb writer_on_event;
    /* NULL, or: a stream is committed; append to head what must reach the client before the staged bytes */
    int (*writer_commit)(void *w, k2a_buf_t *head);
    /* NULL, or: a committed stream ends (after STOP or an ERROR): append any closing bytes to ctx->out */
    int (*writer_finish)(void *w);
    /* non-stream: renders the aggregated answer into out; 0, or the K2A_E* of the answer's failure (its text in *msg) */
    int (*writer_render)(void *w, k2a_buf_t *out, k2a_str_t *msg);
    /* frees what writer_init and the events allocated (w itself belongs to the exchange) */
    void (*writer_dispose)(void *w);
    /* appends the JSON body of a non-200 answer for err (row = its error-table row; an empty message means
     * k2a_strerror(err)); 0 or the buffer's K2A_E* */
    int (*error_body)(k2a_buf_t *out, const k2a_dialect_error_t *row, int err, k2a_str_t message);
    /* the error table: K2A__EIDX_MAX rows, row i for the code -(i + 1) (see k2a_dialect_error) */
    const k2a_dialect_error_t *errors;
    /* the dialect serves a web search tool (http/websearch.h): its decoder sets ir.web_search and its writers render
     * K2A_EV_SEARCH_START / K2A_EV_SEARCH_RESULT */
    bool web_search;
    /* the stream's bytes per 100 bytes read from Kiro, roughly (0: 150): the stage is reserved for them once per read
     * instead of growing through them (a Responses stream is about 2.7 times what its reads carry: objects and .done events) */
    unsigned stage_pct;
    /* the stage's first reservation, for the stream's opening events (0: 511, Anthropic's message_start and its ping in
     * the size that doubling from 256 would end at) */
    unsigned stage_start;
    /* NULL, or (web_search, non-stream): a later turn of a searching answer failed over; forget what the writer got since
     * the last SEARCH_RESULT (its IR index + 1 is first: the next attempt starts again there) */
    void (*writer_rewind)(void *w, int first);
} k2a_dialect_t;

/* The dialects (convert/anthropic_dialect.c, convert/openai_dialect.c). */
extern const k2a_dialect_t k2a_dialect_anthropic;
extern const k2a_dialect_t k2a_dialect_openai;
extern const k2a_dialect_t k2a_dialect_responses; /* convert/responses_dialect.c */

/* The one mapping from a K2A_E* code to a dialect's status and error type: d's row for err. Never NULL: 0, an unknown
 * code or a missing row give the row of K2A_EINTERNAL. */
const k2a_dialect_error_t *k2a_dialect_error(const k2a_dialect_t *d, int err);
/* Appends d's error body for err (empty message: k2a_strerror(err)). Returns the HTTP status (> 0) or the buffer's
 * negative K2A_E*. */
int k2a_dialect_error_body(const k2a_dialect_t *d, k2a_buf_t *out, int err, k2a_str_t message);

#endif
