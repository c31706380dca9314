/*
 * The request path of the pool (DESIGN.md §2 steps 3, 5 and 8): acquire an account, build the Kiro body for
 * it, POST generateAssistantResponse with the headers of kiro-protocol §2.1, and on a failure before the
 * response is accepted classify it (health.h), teach the pool (state machine) and try another account, up to
 * KIRO_MAX_ATTEMPTS accounts. An invalid-bearer 401/403 is retried once per request on the SAME account after a
 * single-flight refresh (that retry is not counted as another account). With KIRO_API_FALLBACK_BASE, a 429/408/5xx or
 * a connection failure is first retried once on the same account at the fallback host. A client error (400) stops at
 * once: the same body would fail on every account.
 *
 * Usage from the handler's coroutine:
 *     k2a_dispatch_t d; k2a_dispatch_attempt_t a;
 *     k2a_dispatch_init(&d, pool, request_id, stream);
 *     for (;;) {
 *         if ((err = k2a_dispatch_next(&d, build, ctx, &a)) != 0) { answer from d.err, d.message, ...; break; }
 *         read a.resp with k2a_upstream_read(): if it fails before anything reached the client,
 *             k2a_dispatch_attempt_failed(&d, &a, err, "why"); continue;
 *         else stream it, then k2a_dispatch_attempt_done(&d, &a, err, credits, in_tokens, out_tokens); break;
 *     }
 *     k2a_dispatch_dispose(&d);
 */
#ifndef K2A_POOL_DISPATCH_H
#define K2A_POOL_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "pool/pool.h"

struct st_k2a_http_response_t;
struct st_k2a_trace_rec_t;

/* Encodes the Kiro request body for this account into body (empty on entry; profileArn differs per account:
 * lease->profile_arn, NULL for API keys). Returns 0 or a negative K2A_E* (which ends the dispatch with that error). */
typedef int (*k2a_dispatch_build_cb)(void *ctx, const k2a_lease_t *lease, k2a_buf_t *body);

/* Rebuilds the body without the native thinking fields (see k2a_dispatch_set_native_fallback). Returns true when it did. */
typedef bool (*k2a_dispatch_native_fallback_cb)(void *ctx);

#define K2A_DISPATCH_MAX_TRIES 24
/* The smallest byte limit peers measured for a Kiro request (kiro-protocol-2026 §9: ~615 KB; others 1.25-1.3 MB), less a
 * margin: an "Improperly formed request." answer to a larger body is taken for the size limit. */
#define K2A_KIRO_BYTE_LIMIT_FLOOR 600000
#define K2A_DISPATCH_ERROR_BODY_MAX (64 * 1024)

/* What happened to one account in this request. */
typedef struct st_k2a_dispatch_try_t {
    size_t index;     /* account index */
    char label[160];  /* "account 0 (main)" */
    int err;          /* K2A_E* class (0 = success) */
    int status;       /* upstream HTTP status, 0 for transport errors and refresh failures */
    char detail[200]; /* "quota exhausted (MONTHLY_REQUEST_COUNT)", "rate limited (429)", "upstream 500", ... */
} k2a_dispatch_try_t;

typedef struct st_k2a_dispatch_attempt_t {
    k2a_lease_t lease;
    struct st_k2a_http_response_t *resp; /* the open 200 response; owned by the dispatch (released by done/failed) */
    unsigned number;                     /* 1-based attempt number */
    uint64_t started_at;                 /* uv_now (ms) when the request was sent */
    uint64_t head_at;                    /* uv_now (ms) when the response head arrived */
} k2a_dispatch_attempt_t;

typedef struct st_k2a_dispatch_text_t {
    char upstream_message[256];
    char upstream_reason[64];
    char message[2048];
} k2a_dispatch_text_t;

typedef struct st_k2a_dispatch_t {
    k2a_pool_t *pool;
    struct st_k2a_upstream_t *up; /* the upstream client of the request's loop (k2a_dispatch_init: the pool's) */
    const char *request_id;       /* borrowed */
    bool stream;
    unsigned attempts; /* accounts tried (upstream calls, not counting the same-account auth retry) */
    bool auth_retry_used;
    size_t ntries;           /* entries of tries[] */
    k2a_buf_t body;          /* the Kiro body of the current attempt (after body_prefix) */
    const char *body_prefix; /* borrowed, see k2a_dispatch_set_body_prefix */
    size_t body_prefix_len;
    k2a_dispatch_attempt_t *open; /* the attempt whose lease/response is still held */
    /* see k2a_dispatch_set_native_fallback (NULL once used) */
    k2a_dispatch_native_fallback_cb native_fallback;
    void *native_fallback_ctx;
    /* the outcome, valid after k2a_dispatch_next returned an error */
    int err;                 /* K2A_E*: K2A_EUPSTREAM_BAD_REQUEST, K2A_EUPSTREAM_CONTENT_LENGTH, K2A_EHTTP_STATUS (other 4xx),
                                K2A_ENO_ACCOUNT, K2A_EEXHAUSTED, K2A_ETHROTTLED, K2A_EUPSTREAM_AUTH, K2A_EACCOUNT_INVALID,
                                K2A_EUPSTREAM_SERVER, K2A_EREFRESH, a transport code, K2A_EBUSY, K2A_ECANCELED, ... */
    int upstream_status;     /* HTTP status of the last upstream answer (0 if none) */
    k2a_buf_t error_body;    /* the first 64 KiB of the last error body */
    uint64_t retry_after_ms; /* when every account is cooling/exhausted: time until the soonest recovers (0 = unknown) */
    /* What each failed attempt ran into: K2A_DISPATCH_MAX_TRIES records, allocated at the first failure (NULL while every
     * attempt succeeds: 9 KB that would otherwise sit on every request's coroutine stack). */
    k2a_dispatch_try_t *tries;
    /* The texts of a failure, allocated when the first one is written (NULL while every attempt succeeds: 2.3 KB that
     * would otherwise sit in the frame of every streaming request); read them with the accessors below. */
    k2a_dispatch_text_t *text;
    /* The trace of the current attempt (KIRO_TRACE_DIR, trace/trace.h), NULL when tracing is off. */
    struct st_k2a_trace_rec_t *trace;
    /* The larger members come last: k2a_dispatch_init zeroes only what precedes them; tried is counted (tried.n). */
    k2a_pool_exclude_t tried;
    /* The context window of the requested model on the current attempt's account (its catalog's maxInputTokens), 0 when
     * its catalog does not say (k2a_dispatch_set_model). */
    int64_t model_window;
} k2a_dispatch_t;

/* The client-facing summary naming the cause of every attempt ("" when nothing failed). */
static inline const char *k2a_dispatch_message(const k2a_dispatch_t *d)
{
    return d->text != NULL ? d->text->message : "";
}
/* The last upstream answer's "message" (for 400s: Kiro's text) and "reason" (CONTENT_LENGTH_EXCEEDS_THRESHOLD, ...). */
static inline const char *k2a_dispatch_upstream_message(const k2a_dispatch_t *d)
{
    return d->text != NULL ? d->text->upstream_message : "";
}
static inline const char *k2a_dispatch_upstream_reason(const k2a_dispatch_t *d)
{
    return d->text != NULL ? d->text->upstream_reason : "";
}

void k2a_dispatch_init(k2a_dispatch_t *d, k2a_pool_t *pool, const char *request_id, bool stream);
/* A request on another worker loop than the pool's sends its Kiro calls with its own loop's upstream client (the account
 * state stays on the pool's loop: every access to it goes there through core/xloop). */
static inline void k2a_dispatch_use_upstream(k2a_dispatch_t *d, struct st_k2a_upstream_t *up)
{
    d->up = up;
}
/* Optional: bytes sent before what the build callback writes, for every attempt (borrowed: valid as long as an attempt may
 * still be posted, i.e. until the last k2a_dispatch_next).
 * A caller whose body is the same for every account but its end (the profileArn) passes the common part here and writes
 * only the end in the callback, so that the body is not copied per attempt. */
void k2a_dispatch_set_body_prefix(k2a_dispatch_t *d, const char *prefix, size_t len);
/* Optional: the Kiro modelId of the request (borrowed, valid until the last k2a_dispatch_next). Accounts whose catalog is
 * known and lacks it are not tried; an account answering INVALID_MODEL_ID loses it from its catalog and the request fails
 * over; when no account may serve it, k2a_dispatch_next fails with K2A_EMODEL_UNAVAILABLE and a message naming the model
 * and the available ones. */
static inline void k2a_dispatch_set_model(k2a_dispatch_t *d, const char *model)
{
    d->tried.model = model;
}

/* Optional: the client session of the request (pool/sticky.h k2a_sticky_key; 0 = none). With KIRO_POOL_STRATEGY=sticky or
 * KIRO_POOL_STICKY=1, a session stays on its account while that account is usable (pool/sticky.h). */
static inline void k2a_dispatch_set_session(k2a_dispatch_t *d, uint64_t session)
{
    d->tried.session = session;
}

/* Optional: the body carries additionalModelRequestFields (kiro-protocol-2026.md §7). When Kiro answers 400 naming that
 * field ("additionalModelRequestFields is not supported for this model", "Invalid additionalModelRequestFields"), cb
 * rebuilds the body without it (it may call k2a_dispatch_set_body_prefix) and the same account is asked again: once per
 * request, not counted as another attempt, no penalty. */
static inline void k2a_dispatch_set_native_fallback(k2a_dispatch_t *d, k2a_dispatch_native_fallback_cb cb, void *ctx)
{
    d->native_fallback = cb;
    d->native_fallback_ctx = ctx;
}

/* In a coroutine: see the file comment. Returns 0 with out filled (an open 200 response and its lease), or a negative K2A_E*
 * with d->err, d->message and the upstream fields set. K2A_ECANCELED when the coroutine was canceled (no account is
 * penalised). */
int k2a_dispatch_next(k2a_dispatch_t *d, k2a_dispatch_build_cb build, void *ctx, k2a_dispatch_attempt_t *out);

/* In a coroutine: one POST of `body` to the lease's generateAssistantResponse with exactly the headers of a request
 * (diagnostics: kiro2api doctor; no failover, no verdict applied). Returns 0 with *resp (any status; release it with
 * k2a_upstream_release) or a transport K2A_E*. */
int k2a_dispatch_post_lease(k2a_dispatch_t *d, const k2a_lease_t *l, const char *body, size_t len,
                            struct st_k2a_http_response_t **resp);

/* Response bytes of the open attempt as the caller reads them, for its trace (a bounded copy; nothing when tracing is off). */
void k2a_dispatch_trace_capture_slow(k2a_dispatch_t *d, const void *data, size_t len);
static inline void k2a_dispatch_trace_capture(k2a_dispatch_t *d, const void *data, size_t len)
{
    if (d->trace != NULL)
        k2a_dispatch_trace_capture_slow(d, data, len);
}
/* The outcome of an attempt posted with k2a_dispatch_post_lease (the other attempts end their traces themselves). */
void k2a_dispatch_trace_end(k2a_dispatch_t *d, bool failed, int transport_err, const char *outcome);

/* The 200 body failed before anything was sent to the client (truncated, bad CRC, exception before content, first-byte
 * or idle timeout): err is its K2A_E*, detail a short text. The account cools briefly (a transient failure), the response
 * and lease are released, and the next k2a_dispatch_next tries another account (counting as an attempt). For an in-stream
 * exception that names the client's fault (e.g. ContentLengthExceededException) pass K2A_EUPSTREAM_CONTENT_LENGTH or
 * K2A_EUPSTREAM_BAD_REQUEST: no penalty, and k2a_dispatch_next then returns that error instead of failing over. */
void k2a_dispatch_attempt_failed(k2a_dispatch_t *d, k2a_dispatch_attempt_t *a, int err, const char *detail);

/* The response finished (err 0), or failed after bytes reached the client (err != 0: counted as an error of the account,
 * without a state change). Records credits (meteringEvent usage, 0 when none), tokens and latency, releases the response
 * and the lease. */
void k2a_dispatch_attempt_done(k2a_dispatch_t *d, k2a_dispatch_attempt_t *a, int err, double credits, int64_t in_tokens,
                               int64_t out_tokens);

/* Releases whatever is still held (an attempt the handler did not finish counts as failed after commit). */
void k2a_dispatch_dispose(k2a_dispatch_t *d);

#endif
