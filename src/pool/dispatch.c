/*
 * Failover inside one request (see dispatch.h). Every answer that is not a 200 is read (first 64 KiB),
 * classified by the error matrix (health.c), applied to the account's state machine (pool.c) and recorded
 * in the request's list of tries, so that the final error names the cause of every attempt. Nothing here
 * blocks: acquiring may await a single-flight refresh, the POST awaits the upstream client.
 */
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "convert/model_map.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/coro.h"
#include "core/rand.h"
#include "core/xloop.h"
#include "pool/dispatch.h"
#include "pool/fingerprint.h"
#include "pool/acct_state.h"
#include "pool/internal.h"
#include "trace/trace.h"

#define BODY_MAX (256 * 1024 * 1024)

void k2a_dispatch_init(k2a_dispatch_t *d, k2a_pool_t *pool, const char *request_id, bool stream)
{
    memset(d, 0, offsetof(k2a_dispatch_t, tried));
    d->tried.n = 0;
    d->tried.model = NULL;
    d->tried.session = 0;
    d->tried.why = NULL;
    d->model_window = 0;
    d->pool = pool;
    d->up = pool->up;
    d->request_id = request_id;
    d->stream = stream;
    k2a_buf_init(&d->body, BODY_MAX);
    k2a_buf_init(&d->error_body, K2A_DISPATCH_ERROR_BODY_MAX);
}

/* The failure texts, allocated at the first write; without memory, a per-thread scratch copy keeps the code paths simple
 * (the message may then be overwritten by another request of the same loop: it is only text). */
static k2a_dispatch_text_t *text(k2a_dispatch_t *d)
{
    static __thread k2a_dispatch_text_t scratch;
    if (d->text == NULL && (d->text = calloc(1, sizeof(*d->text))) == NULL)
        return &scratch;
    return d->text;
}

static void add_try(k2a_dispatch_t *d, const k2a_lease_t *l, int err, int status, const char *detail)
{
    if (d->ntries == K2A_DISPATCH_MAX_TRIES ||
        (d->tries == NULL && (d->tries = malloc(K2A_DISPATCH_MAX_TRIES * sizeof(*d->tries))) == NULL))
        return;
    k2a_dispatch_try_t *t = &d->tries[d->ntries++];
    t->index = l->index;
    snprintf(t->label, sizeof(t->label), "%s", l->label);
    t->err = err;
    t->status = status;
    snprintf(t->detail, sizeof(t->detail), "%s", detail);
    if (err != 0) {
        k2a_log_field_t f[] = {K2A_LF_NUM("account", l->index), K2A_LF_NUM("status", status),
                               K2A_LF_STR("error", k2a_errname(err))};
        k2a_log_fields(K2A_LOG_WARN, d->request_id, f, sizeof(f) / sizeof(f[0]), "pool: %s: %s", l->label, detail);
    }
}

static void on_skip(void *ctx, const k2a_lease_t *l, int err, const char *detail)
{
    add_try(ctx, l, err, 0, detail);
}

static void append_tries(k2a_dispatch_t *d)
{
    char *m = text(d)->message;
    size_t size = sizeof(d->text->message);
    for (size_t i = 0; i < d->ntries; ++i) {
        size_t len = strlen(m);
        if (len + 8 >= size)
            break;
        snprintf(m + len, size - len, "%s%s: %s", i ? "; " : "", d->tries[i].label, d->tries[i].detail);
    }
}

static void format_time(int64_t ms, char *out, size_t outsz)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Why nothing is usable: one clause per account (bounded by the message size). */
static void describe_pool(k2a_dispatch_t *d)
{
    k2a_pool_t *p = d->pool;
    char *m = text(d)->message;
    size_t size = sizeof(d->text->message);
    size_t len = strlen(m);
    for (size_t i = 0; i < p->naccounts && len + 16 < size; ++i) {
        k2a_account_t *a = p->accounts[i];
        char when[32] = "";
        if (a->until > 0)
            format_time(a->until, when, sizeof(when));
        snprintf(m + len, size - len, "%s%s: %s%s%s%s%s%s", i ? "; " : "", a->label, k2a_account_state_name(a->state),
                 when[0] ? " until " : "", when, a->reason[0] ? " (" : "", a->reason, a->reason[0] ? ")" : "");
        len = strlen(m);
    }
}

static int finish(k2a_dispatch_t *d, int err)
{
    d->err = err;
    if (err == K2A_ECANCELED) {
        snprintf(text(d)->message, sizeof(text(d)->message), "request canceled");
        return err;
    }
    if (err == K2A_EPACED) { /* the client's 429 with Retry-After, whatever failed before */
        snprintf(text(d)->message, sizeof(text(d)->message),
                 "every Kiro account that could serve this request is at its pace (KIRO_ACCOUNT_RPM); the next slot opens in "
                 "%llu ms%s",
                 (unsigned long long)d->retry_after_ms, d->ntries != 0 ? "; before that: " : "");
        append_tries(d);
        return err;
    }
    if (d->ntries == 0) {
        if (err == K2A_ENO_ACCOUNT) {
            ++d->pool->stats.no_account;
            snprintf(text(d)->message, sizeof(text(d)->message), "no usable Kiro account: ");
            describe_pool(d);
        } else if (err == K2A_EBUSY) {
            snprintf(text(d)->message, sizeof(text(d)->message),
                     "every Kiro account is at its concurrency limit (%u in flight each)", d->pool->cfg.account_max_concurrency);
        } else {
            snprintf(text(d)->message, sizeof(text(d)->message), "%s", k2a_strerror(err));
        }
        return err;
    }
    /* the class of the last failure decides; the message names every one */
    d->err = d->tries[d->ntries - 1].err;
    if (d->attempts >= d->pool->cfg.max_attempts && d->ntries > 1)
        snprintf(text(d)->message, sizeof(text(d)->message), "all %u attempts failed: ", d->attempts);
    else if (d->ntries > 1 || err == K2A_ENO_ACCOUNT)
        snprintf(text(d)->message, sizeof(text(d)->message), "%zu attempt%s failed and no other account is usable: ", d->ntries,
                 d->ntries > 1 ? "s" : "");
    else
        text(d)->message[0] = '\0';
    append_tries(d);
    return d->err;
}

void k2a_dispatch_set_body_prefix(k2a_dispatch_t *d, const char *prefix, size_t len)
{
    d->body_prefix = prefix;
    d->body_prefix_len = len;
}

#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

/* POSTs d->body_prefix + d->body with the lease's token to url (NULL: the lease's data-plane URL), as the Kiro IDE does:
 * its header set in its order, a fresh invocation id per attempt, attempt = this attempt's number on this account. The
 * connection carries only this account's requests (affinity = the account's id). Returns 0 with *resp (any status) or a
 * transport error. */
static int post(k2a_dispatch_t *d, const k2a_lease_t *l, const k2a_url_t *url, unsigned attempt, k2a_http_response_t **resp)
{
    k2a_pool_t *p = d->pool;
    char xamz[200], ua[360], invocation[37], request[48];
    k2a_buf_t auth = K2A_BUF_INIT(0);
    k2a_fp_streaming_ua(p->kiro_version, l->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    k2a_rand_uuid4(invocation);
    /* "attempt=N; max=M" by hand: N and M are single digits (1-2 and 3) on every generate call */
    if (attempt < 10 && K2A_FP_GENERATE_MAX_ATTEMPTS < 10) {
        memcpy(request, "attempt=N; max=M", 17);
        request[8] = (char)('0' + attempt);
        request[15] = (char)('0' + K2A_FP_GENERATE_MAX_ATTEMPTS);
    } else {
        snprintf(request, sizeof(request), "attempt=%u; max=%u", attempt, K2A_FP_GENERATE_MAX_ATTEMPTS);
    }
    k2a_buf_appendstr(&auth, "Bearer ");
    if (k2a_buf_appendstr(&auth, l->access_token) != 0) {
        k2a_buf_dispose(&auth);
        return K2A_ENOMEM;
    }
    bool close = !k2a_upstream_keeps_alive(d->up);
    k2a_http_header_t h[11];
    size_t nh = 0;
    h[nh++] = HDR("content-type", "application/json");
    if (close)
        h[nh++] = HDR("connection", "close");
    h[nh++] = HDR("x-amzn-codewhisperer-optout", "true");
    h[nh++] = HDR("x-amzn-kiro-agent-mode", p->agent_mode);
    h[nh++] = HDR("x-amz-user-agent", xamz);
    h[nh++] = HDR("user-agent", ua);
    size_t host_index = nh;
    h[nh++] = HDR("amz-sdk-invocation-id", invocation);
    h[nh++] = HDR("amz-sdk-request", request);
    h[nh++] = (k2a_http_header_t){K2A_STRLIT("authorization"), k2a_str(auth.base, auth.len)};
    /* credential kind (kiro-protocol-2026 §11): API keys and external IdPs say what their bearer token is */
    if (l->token_type != NULL)
        h[nh++] = HDR("tokentype", l->token_type);
    uv_buf_t b[2];
    unsigned nb = 0;
    if (d->body_prefix_len != 0)
        b[nb++] = uv_buf_init((char *)d->body_prefix, (unsigned)d->body_prefix_len);
    b[nb++] = uv_buf_init(d->body.base != NULL ? d->body.base : "", (unsigned)d->body.len);
    /* the account's data-plane region (pool/endpoints.c) */
    if (url == NULL)
        url = l->generate_url != NULL ? l->generate_url : &p->generate_url;
    k2a_http_request_t req = {.url = url,
                              .method = "POST",
                              .headers = h,
                              .nheaders = nh,
                              .body = b,
                              .nbody = nb,
                              .affinity = k2a_lease_account_id(l),
                              .close = close,
                              .host_index = host_index};
    int r = k2a_upstream_request(d->up, &req, resp);
    if (k2a_trace_enabled()) { /* the exchange's record; its outcome ends it (trace_end) */
        k2a_trace_discard(&d->trace);
        d->trace = k2a_trace_begin(l->label, "POST", url, h, nh, b, nb);
        if (r == 0)
            k2a_trace_response_head(d->trace, *resp);
    }
    k2a_buf_dispose(&auth);
    return r;
}

void k2a_dispatch_trace_capture_slow(k2a_dispatch_t *d, const void *data, size_t len)
{
    k2a_trace_capture(d->trace, data, len);
}

void k2a_dispatch_trace_end(k2a_dispatch_t *d, bool failed, int transport_err, const char *outcome)
{
    if (d->trace != NULL)
        k2a_trace_end(&d->trace, k2a_coro_loop(), failed, transport_err, outcome);
}

int k2a_dispatch_post_lease(k2a_dispatch_t *d, const k2a_lease_t *l, const char *body, size_t len,
                            struct st_k2a_http_response_t **resp)
{
    k2a_dispatch_set_body_prefix(d, body, len);
    k2a_buf_reset(&d->body);
    return post(d, l, NULL, 1, resp);
}

/* Whether the same account is tried on the fallback host after this answer of the primary (kiro-protocol-2026 §4.4: KRA on
 * 429, 408 and 5xx; OCX when the host does not resolve or connect, or does not know the route). Never after a timeout once
 * connected (the wait would double) nor after a 400 (the request's fault). */
static bool fallback_worthy(int transport_err, int status)
{
    switch (transport_err) {
    case 0:
        return status == 429 || status == 408 || status >= 500 || status == 404 || status == 405;
    case K2A_EDNS:
    case K2A_EDNS_TIMEOUT:
    case K2A_ECONNECT_REFUSED:
    case K2A_ECONNECT_TIMEOUT:
    case K2A_ECONNECT:
    case K2A_ETLS_HANDSHAKE:
        return true;
    default:
        return false;
    }
}

/* ---- operations on the pool's own loop ----
 * With several worker loops, the dispatch runs on the request's loop (its upstream client, its client connection) while the
 * account state belongs to the pool's loop. Everything that reads or writes account state is one of the op_* functions
 * below, run there through core/xloop (directly when the request is on the pool's loop). Releases travel as posts that own
 * a copy of the lease. */

typedef struct st_acquire_args_t {
    k2a_dispatch_t *d;
    k2a_dispatch_attempt_t *out;
} acquire_args_t;

/* No account may serve the requested model: the client's 400, naming the model and the available ones. */
static int model_unavailable(k2a_dispatch_t *d)
{
    enum { MAX_LISTED = 128 };
    k2a_pool_model_t *models = malloc(MAX_LISTED * sizeof(*models));
    bool known = false;
    size_t n = models != NULL ? k2a_pool_models(d->pool, models, MAX_LISTED, &known) : 0;
    char *m = text(d)->message;
    size_t size = sizeof(d->text->message), len;
    snprintf(m, size, "model \"%.128s\" is not available on any configured Kiro account; available models: ", d->tried.model);
    for (size_t i = 0; i < n; ++i) {
        len = strlen(m);
        if (len + strlen(models[i].id) + 8 >= size) {
            snprintf(m + len, size - len, ", ...");
            break;
        }
        snprintf(m + len, size - len, "%s%s", i ? ", " : "", models[i].id);
    }
    if (n == 0 && known) {
        snprintf(m + strlen(m), size - strlen(m), "none");
    } else if (n == 0) {
        /* no catalog yet (the first fetch runs after the first refresh): Kiro's current IDs as the doc lists them */
        len = strlen(m);
        snprintf(m + len, size - len, "not known yet (no account's catalog has arrived); Kiro's current models: ");
        for (size_t i = 0; k2a_model_builtin_ids[i] != NULL; ++i) {
            len = strlen(m);
            if (len + strlen(k2a_model_builtin_ids[i]) + 8 >= size)
                break;
            snprintf(m + len, size - len, "%s%s", i ? ", " : "", k2a_model_builtin_ids[i]);
        }
    }
    free(models);
    d->err = K2A_EMODEL_UNAVAILABLE;
    return d->err;
}

static intptr_t op_acquire(void *arg)
{
    acquire_args_t *x = arg;
    k2a_dispatch_t *d = x->d;
    k2a_pool_t *p = d->pool;
    /* whether any account may serve the model is only asked when none was found (it walks the accounts) */
    bool has_model = d->tried.model != NULL;
    if (d->attempts >= p->cfg.max_attempts)
        return has_model && !k2a_pool_model_servable(p, d->tried.model) ? model_unavailable(d) : finish(d, K2A_ENO_ACCOUNT);
    uint64_t retry_after = 0;
    int r = k2a_pool_acquire(p, &d->tried, on_skip, d, &x->out->lease, &retry_after);
    if (r != 0) {
        if (r == K2A_ENO_ACCOUNT && has_model && !k2a_pool_model_servable(p, d->tried.model))
            return model_unavailable(d);
        d->retry_after_ms = retry_after;
        return finish(d, r);
    }
    k2a_account_t *a = x->out->lease.account;
    if (k2a_log_enabled(K2A_LOG_DEBUG))
        K2A_LOG(K2A_LOG_DEBUG, d->request_id, "pool: %s chosen (%s; session %016llx; attempt %u)", a->label,
                d->tried.why != NULL ? d->tried.why : k2a_pool_strategy_name(p->cfg.strategy), (unsigned long long)d->tried.session,
                d->attempts + 1);
    d->tried.why = NULL;
    d->model_window = d->tried.model != NULL ? k2a_account_model_window(a, d->tried.model) : 0;
    if (d->tried.n < K2A_POOL_MAX_EXCLUDE)
        d->tried.ids[d->tried.n++] = a->id;
    if (++d->attempts > 1)
        ++p->stats.failovers;
    k2a_acct_request_counted(a);
    return 0;
}

/* What the request does after an answer that is not a 200. */
enum { NEXT_ACCOUNT = 1, RETRY_SAME = 2 };

typedef struct st_verdict_args_t {
    k2a_dispatch_t *d;
    k2a_dispatch_attempt_t *out;
    k2a_verdict_t *v;
} verdict_args_t;

/* Applies the verdict to the account; returns NEXT_ACCOUNT, RETRY_SAME (token refreshed, same lease, counted again), or a
 * negative K2A_E* that ends the dispatch. The lease is released unless RETRY_SAME. */
static intptr_t op_verdict(void *arg)
{
    verdict_args_t *x = arg;
    k2a_dispatch_t *d = x->d;
    k2a_dispatch_attempt_t *out = x->out;
    k2a_verdict_t *v = x->v;
    k2a_account_t *a = out->lease.account;
    k2a_account_apply_verdict(a, v, out->lease.token_gen);
    if (v->action == K2A_ACT_MODEL) {
        /* this account may not use the model: another one may (a request without a model has nowhere else to go) */
        k2a_account_mark_model_missing(a, d->tried.model);
        k2a_pool_release(&out->lease);
        if (d->tried.model == NULL) {
            d->err = v->err;
            snprintf(text(d)->message, sizeof(text(d)->message), "%s", v->detail);
            return v->err;
        }
        return NEXT_ACCOUNT;
    }
    if (v->action == K2A_ACT_CLIENT || v->action == K2A_ACT_LOCAL) {
        /* the same request would fail on every account */
        k2a_pool_release(&out->lease);
        d->err = v->err;
        snprintf(text(d)->message, sizeof(text(d)->message), "%s", v->detail);
        return v->err;
    }
    if ((v->action == K2A_ACT_AUTH || v->action == K2A_ACT_FORBIDDEN) && !d->auth_retry_used && a->state != K2A_ACCOUNT_INVALID) {
        /* refresh once (single flight) and retry on the same account, once per request */
        d->auth_retry_used = true;
        int r = k2a_pool_refresh_lease(&out->lease);
        if (r == K2A_ECANCELED) {
            k2a_pool_release(&out->lease);
            return finish(d, r);
        }
        if (r == 0) {
            k2a_acct_request_counted(a);
            k2a_pace_attempt(a); /* another generate call of the account: it counts (the retry itself is not held back) */
            return RETRY_SAME;
        }
        add_try(d, &out->lease, r, 0, a->last_error[0] ? a->last_error : k2a_strerror(r));
    }
    k2a_pool_release(&out->lease);
    return NEXT_ACCOUNT;
}

/* Another generate call on the lease's account (the fallback host, the retry without the native thinking fields): the
 * pace counts it, without holding it back. */
static intptr_t op_pace_note(void *arg)
{
    k2a_pace_attempt(((k2a_lease_t *)arg)->account);
    return 0;
}

static intptr_t op_release_sync(void *arg)
{
    k2a_pool_release(arg);
    return 0;
}

/* The end of an attempt, posted to the pool's loop with its own copy of the lease. */
typedef struct st_done_msg_t {
    k2a_pool_t *pool;
    k2a_lease_t lease;
    int err;
    bool failed_before_commit; /* attempt_failed: a verdict about the stream */
    k2a_verdict_t v;
    double credits;
    int64_t in_tokens, out_tokens;
    double latency_s;
} done_msg_t;

static void op_done(void *arg)
{
    done_msg_t *m = arg;
    k2a_account_t *acct = m->lease.account;
    if (m->failed_before_commit) {
        k2a_account_apply_verdict(acct, &m->v, m->lease.token_gen);
    } else {
        k2a_acct_usage_added(acct, m->credits, m->in_tokens, m->out_tokens, m->err == 0, m->latency_s);
        if (m->err == 0) {
            k2a_verdict_t v = {.action = K2A_ACT_OK};
            k2a_account_apply_verdict(acct, &v, m->lease.token_gen);
        } else if (m->err != K2A_ECANCELED) {
            char detail[200];
            snprintf(detail, sizeof(detail), "stream failed after commit: %s", k2a_strerror(m->err));
            k2a_account_note_error(acct, K2A_ERRC_STREAM, detail);
        }
    }
    k2a_pool_release(&m->lease);
    free(m);
}

/* Hands the attempt's lease to the pool's loop (the attempt's own copy is emptied). */
static void post_done(k2a_dispatch_t *d, k2a_dispatch_attempt_t *a, done_msg_t *m)
{
    m->pool = d->pool;
    m->lease = a->lease;
    memset(&a->lease, 0, sizeof(a->lease));
    k2a_xloop_post(d->pool->owner, op_done, m);
}

/* Kiro answers generateAssistantResponse with application/vnd.amazon.eventstream. Another declared type, or a body
 * declared empty, is something else answering in its place (a proxy's login page, an HTML error). A missing
 * Content-Type is let through: the decoder judges the bytes. */
static bool is_eventstream_answer(const k2a_http_response_t *resp)
{
    if (resp->content_length == 0)
        return false;
    k2a_str_t ct = k2a_http_response_header(resp, "content-type");
    if (ct.base == NULL)
        return true;
    static const char want[] = "application/vnd.amazon.eventstream";
    return ct.len >= sizeof(want) - 1 && strncasecmp(ct.base, want, sizeof(want) - 1) == 0;
}

/* "Kiro's endpoint answered 200 with content-type text/html (1234 bytes: "<html><title>Sign in..."), not an EventStream:
 * a proxy or captive portal in the way?" — the start of the body with anything but printable ASCII replaced. */
static void describe_not_eventstream(const k2a_http_response_t *resp, const k2a_buf_t *body, char *out, size_t outsz)
{
    k2a_str_t ct = k2a_http_response_header(resp, "content-type");
    char type[64], start[81];
    size_t n = 0;
    for (size_t i = 0; ct.base != NULL && i < ct.len && n + 1 < sizeof(type); ++i)
        type[n++] = ct.base[i] >= 0x20 && ct.base[i] < 0x7f ? ct.base[i] : '?';
    type[n] = '\0';
    n = 0;
    for (size_t i = 0; i < body->len && n + 1 < sizeof(start); ++i) {
        unsigned char c = (unsigned char)body->base[i];
        if (c == '\r' || c == '\n' || c == '\t')
            c = ' ';
        if (n != 0 && c == ' ' && start[n - 1] == ' ')
            continue;
        start[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    start[n] = '\0';
    if (body->len == 0)
        snprintf(out, outsz, "Kiro's endpoint answered 200 with an empty body%s%s%s, not an EventStream",
                 type[0] ? " (content-type " : "", type, type[0] ? ")" : "");
    else
        snprintf(out, outsz,
                 "Kiro's endpoint answered 200 with content-type %s (%zu%s bytes: \"%s%s\"), not an EventStream: a proxy or "
                 "captive portal in the way?",
                 type[0] ? type : "(none)", body->len, body->len >= K2A_UPSTREAM_ERROR_BODY_MAX ? "+" : "", start,
                 body->len > n ? "..." : "");
}

int k2a_dispatch_next(k2a_dispatch_t *d, k2a_dispatch_build_cb build, void *ctx, k2a_dispatch_attempt_t *out)
{
    k2a_pool_t *p = d->pool;
    uv_loop_t *loop = k2a_coro_loop();
    memset(out, 0, sizeof(*out));
    if (d->open != NULL) /* the previous attempt was not finished: treat it as failed */
        k2a_dispatch_attempt_failed(d, d->open, K2A_EUPSTREAM_TRUNCATED, "abandoned by the handler");
    if (d->err == K2A_EUPSTREAM_BAD_REQUEST || d->err == K2A_EUPSTREAM_CONTENT_LENGTH || d->err == K2A_EUPSTREAM_NOT_EVENTSTREAM ||
        d->err == K2A_EUPSTREAM_TOOBIG || d->err == K2A_EUPSTREAM_FILTERED)
        return d->err; /* attempt_failed said it is the client's fault, or not Kiro answering */
    for (;;) {
        acquire_args_t aa = {d, out};
        int r = (int)k2a_xloop_call(p->owner, op_acquire, &aa);
        if (r != 0)
            return r;
        bool same_account_retry = false;
        const k2a_url_t *url = NULL; /* the lease's data-plane URL; the fallback host once (KIRO_API_FALLBACK_BASE) */
        for (;;) {
            k2a_buf_reset(&d->body);
            if ((r = build(ctx, &out->lease, &d->body)) != 0) {
                k2a_xloop_call(p->owner, op_release_sync, &out->lease);
                d->err = r;
                snprintf(text(d)->message, sizeof(text(d)->message), "cannot build the Kiro request: %s", k2a_strerror(r));
                return r;
            }
            out->number = d->attempts + (same_account_retry ? 1 : 0);
            out->started_at = uv_now(loop);
            k2a_http_response_t *resp = NULL;
            r = post(d, &out->lease, url, same_account_retry ? 2 : 1, &resp);
            int status = 0;
            k2a_buf_reset(&d->error_body);
            if (r == 0) {
                status = resp->status;
                if (status == 200 && !is_eventstream_answer(resp)) {
                    /* a captive portal, a corporate proxy or an empty 200: not Kiro's answer, and not the account's fault
                     * (no penalty, no failover: every account would meet the same thing); the client is told what arrived */
                    k2a_upstream_read_error_body(resp, &d->error_body);
                    describe_not_eventstream(resp, &d->error_body, text(d)->message, sizeof(text(d)->message));
                    k2a_dispatch_trace_capture(d, d->error_body.base, d->error_body.len);
                    k2a_dispatch_trace_end(d, true, 0, "answer is not an EventStream");
                    k2a_upstream_release(resp);
                    add_try(d, &out->lease, K2A_EUPSTREAM_NOT_EVENTSTREAM, 200, "answer is not an EventStream");
                    k2a_xloop_call(p->owner, op_release_sync, &out->lease);
                    d->upstream_status = 200;
                    d->err = K2A_EUPSTREAM_NOT_EVENTSTREAM;
                    return d->err;
                }
                if (status == 200) {
                    /* sent: a later attempt rebuilds it; a stream may stay open for minutes, and thousands of them
                     * would keep their bodies otherwise */
                    k2a_buf_dispose(&d->body);
                    out->resp = resp;
                    out->head_at = uv_now(loop);
                    d->open = out;
                    d->upstream_status = 200;
                    return 0;
                }
                int rr = k2a_upstream_read_error_body(resp, &d->error_body);
                k2a_upstream_release(resp);
                if (rr == K2A_ECANCELED)
                    r = rr;
            }
            if (r == 0 && status == 400 && d->native_fallback != NULL &&
                memmem(d->error_body.base != NULL ? d->error_body.base : "", d->error_body.len, "additionalModelRequestFields",
                       28) != NULL) {
                /* the model does not take the native thinking fields: the same account, once, without them */
                k2a_dispatch_native_fallback_cb cb = d->native_fallback;
                d->native_fallback = NULL;
                K2A_LOG(K2A_LOG_INFO, d->request_id, "pool: %s: Kiro refused additionalModelRequestFields; asking again without it",
                        out->lease.label);
                if (cb(d->native_fallback_ctx)) {
                    same_account_retry = true;
                    k2a_xloop_call(p->owner, op_pace_note, &out->lease);
                    continue;
                }
            }
            k2a_verdict_t v;
            k2a_pool_classify(r, status, d->error_body.base, d->error_body.len, &v);
            /* the exchange's outcome is known: its trace (when tracing is on) */
            k2a_dispatch_trace_capture(d, d->error_body.base, d->error_body.len);
            k2a_dispatch_trace_end(d, v.action != K2A_ACT_CANCELED, r, v.detail);
            size_t sent = d->body_prefix_len + d->body.len;
            if (v.err == K2A_EUPSTREAM_BAD_REQUEST && sent > K2A_KIRO_BYTE_LIMIT_FLOOR &&
                strstr(v.message, "Improperly formed request") != NULL) {
                /* Kiro's byte limit answers "Improperly formed request." with no reason (kiro-protocol-2026 §9: measured at
                 * ~615 KB and at 1.25-1.3 MB). Over the smallest measurement, that is the size of the conversation: the
                 * client's error that makes it compact, not a malformed request. */
                v.err = K2A_EUPSTREAM_CONTENT_LENGTH;
                snprintf(v.detail, sizeof(v.detail),
                         "the %zu-byte Kiro request is over Kiro's byte limit (Kiro answered \"Improperly formed request.\"; "
                         "KIRO_MAX_PAYLOAD_BYTES keeps requests under it)",
                         sent);
            }
            if (v.action == K2A_ACT_CANCELED) {
                k2a_xloop_call(p->owner, op_release_sync, &out->lease);
                return finish(d, K2A_ECANCELED);
            }
            d->upstream_status = status;
            if (url == NULL && out->lease.fallback_url != NULL && fallback_worthy(r, status)) {
                /* the same account on the fallback host before the next account (kiro-protocol-2026 §4.4): the primary's
                 * answer is recorded, not held against the account */
                char why[220];
                snprintf(why, sizeof(why), "%s; trying the fallback host", v.detail);
                add_try(d, &out->lease, v.err, status, why);
                url = out->lease.fallback_url;
                k2a_xloop_call(p->owner, op_pace_note, &out->lease);
                continue;
            }
            snprintf(text(d)->upstream_message, sizeof(text(d)->upstream_message), "%s", v.message);
            snprintf(text(d)->upstream_reason, sizeof(text(d)->upstream_reason), "%s", v.reason);
            add_try(d, &out->lease, v.err, status, v.detail);
            verdict_args_t va = {d, out, &v};
            r = (int)k2a_xloop_call(p->owner, op_verdict, &va);
            if (r == RETRY_SAME) {
                same_account_retry = true;
                continue;
            }
            if (r != NEXT_ACCOUNT)
                return r;
            break;
        }
    }
}

void k2a_dispatch_attempt_failed(k2a_dispatch_t *d, k2a_dispatch_attempt_t *a, int err, const char *detail)
{
    if (d->open == a)
        d->open = NULL;
    if (a->resp != NULL) {
        k2a_upstream_release(a->resp);
        a->resp = NULL;
    }
    k2a_dispatch_trace_end(d, err != K2A_ECANCELED, 0, detail != NULL && detail[0] ? detail : k2a_strerror(err));
    if (a->lease.account == NULL)
        return;
    done_msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        k2a_xloop_call(d->pool->owner, op_release_sync, &a->lease);
        return;
    }
    if (err != K2A_ECANCELED) {
        k2a_verdict_t *v = &m->v;
        v->status = 200;
        v->err = err;
        if (err == K2A_EUPSTREAM_CONTENT_LENGTH || err == K2A_EUPSTREAM_BAD_REQUEST) {
            v->action = K2A_ACT_CLIENT;
            d->err = err;
            snprintf(text(d)->message, sizeof(text(d)->message), "%s", detail != NULL ? detail : k2a_strerror(err));
        } else if (err == K2A_EUPSTREAM_NOT_EVENTSTREAM || err == K2A_EUPSTREAM_TOOBIG || err == K2A_EUPSTREAM_FILTERED) {
            /* an empty 200, an answer over the non-streaming limit, or a request Kiro's content filter blocked: no penalty
             * (not the account's fault), and no other account would do better */
            v->action = K2A_ACT_LOCAL;
            d->err = err;
            snprintf(text(d)->message, sizeof(text(d)->message), "%s", detail != NULL ? detail : k2a_strerror(err));
        } else {
            v->action = K2A_ACT_TRANSIENT;
        }
        snprintf(v->detail, sizeof(v->detail), "stream failed: %s", detail != NULL && detail[0] ? detail : k2a_strerror(err));
        add_try(d, &a->lease, err, 200, v->detail);
        m->failed_before_commit = true;
    } else {
        m->failed_before_commit = false;
        m->err = K2A_ECANCELED;
    }
    post_done(d, a, m);
}

void k2a_dispatch_attempt_done(k2a_dispatch_t *d, k2a_dispatch_attempt_t *a, int err, double credits, int64_t in_tokens,
                               int64_t out_tokens)
{
    if (d->open == a)
        d->open = NULL;
    if (a->resp != NULL) {
        if (err == 0)
            k2a_upstream_release_ended(a->resp); /* the answer ended: its framing's end may still be on the way */
        else
            k2a_upstream_release(a->resp);
        a->resp = NULL;
    }
    k2a_dispatch_trace_end(d, err != 0 && err != K2A_ECANCELED, 0, err == 0 ? "ok" : k2a_strerror(err));
    if (a->lease.account == NULL)
        return;
    /* not zeroed (1 KB, most of it the verdict): op_done reads the verdict only after a failure before commit */
    done_msg_t *m = malloc(sizeof(*m));
    if (m == NULL) {
        k2a_xloop_call(d->pool->owner, op_release_sync, &a->lease);
        return;
    }
    m->failed_before_commit = false;
    m->err = err;
    m->credits = credits;
    m->in_tokens = in_tokens;
    m->out_tokens = out_tokens;
    m->latency_s = (double)(uv_now(k2a_coro_loop()) - a->started_at) / 1000.0;
    post_done(d, a, m);
}

void k2a_dispatch_dispose(k2a_dispatch_t *d)
{
    if (d->open != NULL)
        k2a_dispatch_attempt_done(d, d->open, K2A_EUPSTREAM_TRUNCATED, 0, 0, 0);
    k2a_trace_discard(&d->trace);
    k2a_buf_dispose(&d->body);
    k2a_buf_dispose(&d->error_body);
    free(d->tries);
    d->tries = NULL;
    d->ntries = 0;
    free(d->text);
    d->text = NULL;
}
