/*
 * Background jobs of the pool: token refresh (Social and IdC, kiro-protocol §1.2/§1.3; external IdPs and API keys,
 * kiro-protocol-2026 §11; each at its account's auth region), then ListAvailableProfiles when the account needs its ARN
 * (profiles.c), and getUsageLimits polling (§1.5). Each job is a coroutine on the loop holding a reference to its account. A
 * refresh is single-flight per account: whoever needs a token (a request, refresh-ahead, a usage poll) parks on the account's
 * waiter list, and the one job wakes them all with its result, so N concurrent requests cause one refresh. Requests never run the
 * refresh on their own stack: a client that goes away cannot cancel a refresh that others wait for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/acct_state.h"
#include "pool/fingerprint.h"
#include "pool/internal.h"

#define REFRESH_BODY_MAX (64 * 1024)
#define USAGE_BODY_MAX (1024 * 1024)

enum { JOB_REFRESH = 0, JOB_USAGE = 1, JOB_CATALOG = 2 };

/* ---- waiters ---- */

static void on_waiter_cancel(k2a_coro_t *co, void *data)
{
    k2a_pool_waiter_t *w = data;
    if (w->woken)
        return;
    k2a_plink_unlink(&w->link);
    w->woken = true;
    k2a_coro_wake(co, K2A_ECANCELED);
}

void k2a_account_wake_waiters(k2a_account_t *a, int result)
{
    while (!k2a_plist_empty(&a->waiters)) {
        k2a_pool_waiter_t *w = K2A_PLINK_OWNER(k2a_pool_waiter_t, link, a->waiters.next);
        k2a_plink_unlink(&w->link);
        w->woken = true;
        k2a_coro_wake(w->co, result);
    }
}

int k2a_account_await_token(k2a_account_t *a, uint64_t after_gen, bool *waited)
{
    k2a_coro_t *self = k2a_coro_current();
    for (int round = 0;; ++round) {
        if (a->token_gen > after_gen && k2a_account_token_valid(a, k2a_pool_now_ms()) && !a->resolving)
            return 0;
        if (a->removed || a->pool->shutting_down)
            return K2A_ENO_ACCOUNT;
        if (a->state == K2A_ACCOUNT_INVALID || a->state == K2A_ACCOUNT_DISABLED)
            return K2A_EACCOUNT_INVALID;
        if (round >= 2)
            return K2A_EREFRESH; /* refreshed twice and still no usable token (e.g. expiresIn 0) */
        if (self == NULL || k2a_coro_canceled(self))
            return self == NULL ? K2A_EINVAL : K2A_ECANCELED;
        k2a_account_start_refresh(a);
        if (!a->refreshing)
            return K2A_EBUSY; /* no coroutine available */
        *waited = true;
        k2a_pool_waiter_t w = {.co = self};
        k2a_plink_insert_before(&a->waiters, &w.link);
        int r = (int)k2a_coro_park(on_waiter_cancel, &w);
        if (!w.woken)
            k2a_plink_unlink(&w.link);
        if (r != 0)
            return r;
    }
}

/* ---- jobs ---- */

static void job_main(k2a_coro_t *co, void *arg);

static k2a_pool_job_t *start_job(k2a_account_t *a, int kind)
{
    k2a_pool_t *p = a->pool;
    if (p->shutting_down || a->removed)
        return NULL;
    k2a_pool_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->pool = p;
    job->account = a;
    job->kind = kind;
    if ((job->co = k2a_coro_create(job_main, job)) == NULL) {
        free(job);
        return NULL;
    }
    k2a_account_ref(a);
    k2a_plink_insert_before(&p->jobs, &job->link);
    if (kind == JOB_REFRESH)
        a->refreshing = true;
    else if (kind == JOB_USAGE)
        a->usage_polling = true;
    else
        a->catalog_fetching = true;
    /* never nest coroutines: from inside one, start the job from the loop */
    if (k2a_coro_current() != NULL)
        k2a_coro_wake(job->co, 0);
    else
        k2a_coro_resume(job->co, 0);
    return job;
}

void k2a_account_start_refresh(k2a_account_t *a)
{
    if (a->refreshing)
        return;
    if (start_job(a, JOB_REFRESH) == NULL)
        k2a_account_wake_waiters(a, K2A_EBUSY);
}

void k2a_account_start_usage_poll(k2a_account_t *a)
{
    if (!a->usage_polling)
        start_job(a, JOB_USAGE);
}

void k2a_account_start_catalog_fetch(k2a_account_t *a)
{
    if (!a->catalog_fetching)
        start_job(a, JOB_CATALOG);
}

void k2a_pool_cancel_jobs(k2a_pool_t *p)
{
    for (k2a_plink_t *l = p->jobs.next; l != &p->jobs; l = l->next)
        k2a_coro_cancel(K2A_PLINK_OWNER(k2a_pool_job_t, link, l)->co);
}

/* ---- HTTP helpers ---- */

#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

/* Sends a request and reads the whole body (bounded). Returns 0 with *status set, or a transport error. Control calls are
 * made as the IDE makes them (Connection: close, a connection of their own), on the account's affinity key so that not
 * even a TLS session is shared with another account. */
int k2a_pool_http_call(k2a_pool_t *p, const k2a_account_t *a, const k2a_url_t *url, const char *method,
                       const k2a_http_header_t *headers, size_t nheaders, const char *body, size_t body_len, k2a_buf_t *resp_body,
                       size_t max, int *status)
{
    uv_buf_t b = uv_buf_init((char *)body, (unsigned)body_len);
    k2a_http_request_t req = {.url = url,
                              .method = method,
                              .headers = headers,
                              .nheaders = nheaders,
                              .body = body != NULL ? &b : NULL,
                              .nbody = body != NULL ? 1 : 0,
                              .first_byte_timeout_ms = p->cfg.refresh_timeout_ms,
                              .idle_timeout_ms = p->cfg.refresh_timeout_ms,
                              .affinity = a->id,
                              .close = true};
    k2a_http_response_t *resp = NULL;
    int r = k2a_upstream_request(p->up, &req, &resp);
    if (r != 0)
        return r;
    *status = resp->status;
    r = k2a_upstream_read_all(resp, resp_body, max);
    k2a_upstream_release(resp);
    if (r == K2A_ETOOBIG && *status != 200)
        r = 0; /* an error body cut at the limit still tells what happened */
    return r;
}

static yajl_val obj_get(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static const char *obj_str(yajl_val obj, const char *key)
{
    yajl_val v = obj_get(obj, key);
    return v != NULL && YAJL_IS_STRING(v) && YAJL_GET_STRING(v)[0] != '\0' ? YAJL_GET_STRING(v) : NULL;
}

/* ---- refresh ---- */

/* Adopts a 200 refresh answer. Returns 0 or K2A_EREFRESH (no accessToken). */
static int adopt_refresh(k2a_account_t *a, k2a_buf_t *body, char *detail, size_t detailsz)
{
    char *text = k2a_buf_cstr(body);
    yajl_val v = text != NULL ? yajl_tree_parse(text, NULL, 0) : NULL;
    const char *access = obj_str(v, "accessToken");
    if (access == NULL) /* OAuth's spelling: external IdPs (RFC 6749 §5.1) */
        access = obj_str(v, "access_token");
    if (access == NULL) {
        yajl_tree_free(v);
        snprintf(detail, detailsz, "token refresh answered 200 without an accessToken");
        return K2A_EREFRESH;
    }
    double expires_in = 3600;
    yajl_val ev = obj_get(v, "expiresIn");
    if (ev == NULL)
        ev = obj_get(v, "expires_in");
    if (ev != NULL && YAJL_IS_NUMBER(ev))
        expires_in = YAJL_IS_INTEGER(ev) ? (double)YAJL_GET_INTEGER(ev) : YAJL_GET_DOUBLE(ev);
    if (expires_in < 0)
        expires_in = 0;
    if (expires_in > 30 * 86400.0)
        expires_in = 30 * 86400.0;
    const char *arn = obj_str(v, "profileArn");
    if (arn != NULL && k2a_arn_parse(arn, NULL) != 0) {
        k2a_warn("pool: %s: the refresh answer's profileArn is malformed or in an unknown region: ignored", a->label);
        arn = NULL;
    }
    const char *rt = obj_str(v, "refreshToken");
    if (rt == NULL)
        rt = obj_str(v, "refresh_token");
    k2a_acct_token_t t = {.access_token = access, .expires_in_s = (int64_t)expires_in, .refresh_token = rt, .profile_arn = arn};
    bool rotated = false;
    int r = k2a_acct_token_adopted(a, &t, &rotated);
    yajl_tree_free(v);
    if (r != 0)
        return r;
    k2a_debug("pool: %s refreshed (expires in %.0f s%s)", a->label, expires_in, rotated ? ", refresh token rotated" : "");
    return 0;
}

/* Before a refresh: waits until every rotated refresh token adopted so far is durable. Kiro retires the old token before
 * it answers, so the rotation of a refresh in flight can never be made durable; without this gate a slow write (fsync)
 * would leave several rotations exposed to a crash at once. When the write fails (full or read-only disk, no descriptor
 * left) the refresh does not go: another rotation would only widen what a crash loses. The account keeps its current
 * access token while it is valid, persist.c retries the write with backoff, and the refresh is tried again after it.
 * Returns 0, K2A_ESTATE_UNWRITTEN or K2A_ECANCELED. */
static int await_rotations_durable(k2a_pool_t *p, const char *label)
{
    while (p->rotation_durable_seq != p->rotation_seq && !p->shutting_down) {
        k2a_debug("pool: %s: refresh waits until a rotated refresh token is written", label);
        if (!p->saving)
            k2a_pool_start_save(p); /* normally already running: rotations are written at once */
        if (!p->saving)
            return p->store == NULL ? 0 : K2A_ESTATE_UNWRITTEN; /* the snapshot could not even be encoded */
        k2a_pool_waiter_t w = {.co = k2a_coro_current()};
        k2a_plink_insert_before(&p->durable_waiters, &w.link);
        int r = (int)k2a_coro_park(on_waiter_cancel, &w);
        if (!w.woken)
            k2a_plink_unlink(&w.link);
        if (r == K2A_ECANCELED)
            return r;
        if (r != 0)
            return K2A_ESTATE_UNWRITTEN; /* the write failed */
    }
    return 0;
}

/* application/x-www-form-urlencoded value (RFC 3986 unreserved kept, everything else %XX). */
static int form_encode(k2a_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int r = 0;
    for (; *s && r == 0; ++s) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' ||
            c == '~') {
            r = k2a_buf_append(out, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            r = k2a_buf_append(out, e, 3);
        }
    }
    return r;
}

/* An API key account "refreshes" by taking its key again (a new token generation, so that an auth retry can tell). */
static int adopt_api_key(k2a_account_t *a, k2a_verdict_t *v)
{
    memset(v, 0, sizeof(*v));
    char *key = strdup(a->cfg.refresh_token);
    if (key == NULL) {
        v->action = K2A_ACT_LOCAL;
        v->err = K2A_ENOMEM;
        snprintf(v->detail, sizeof(v->detail), "out of memory");
        return v->err;
    }
    k2a_acct_token_t t = {.access_token = key, .expires_in_s = K2A_API_KEY_LIFETIME_S};
    bool rotated;
    int r = k2a_acct_token_adopted(a, &t, &rotated);
    free(key);
    if (r != 0) {
        v->action = K2A_ACT_LOCAL;
        v->err = r;
        snprintf(v->detail, sizeof(v->detail), "out of memory");
        return r;
    }
    v->action = K2A_ACT_OK;
    snprintf(v->detail, sizeof(v->detail), "ok");
    return 0;
}

static int do_refresh(k2a_account_t *a, k2a_verdict_t *v)
{
    k2a_pool_t *p = a->pool;
    k2a_buf_t body = K2A_BUF_INIT(0), resp = K2A_BUF_INIT(REFRESH_BODY_MAX);
    char ua[200], invocation[37];
    int status = 0, r;
    const k2a_url_t *url;
    k2a_http_header_t h[8];
    size_t nh = 0;
    if (a->cfg.auth != K2A_AUTH_API_KEY && (r = await_rotations_durable(p, a->label)) != 0) {
        memset(v, 0, sizeof(*v));
        v->err = r;
        if (r == K2A_ECANCELED) {
            v->action = K2A_ACT_CANCELED;
            snprintf(v->detail, sizeof(v->detail), "canceled");
        } else {
            v->action = K2A_ACT_LOCAL; /* the disk's fault, not the account's */
            snprintf(v->detail, sizeof(v->detail),
                     "token refresh deferred: a rotated refresh token is not written to the state file yet");
        }
        return r;
    }
    const k2a_region_urls_t *ru = k2a_pool_region_urls(p, k2a_account_auth_region(a));
    k2a_url_t idp_url;
    char *idp_url_str = NULL;
    if (a->cfg.auth == K2A_AUTH_API_KEY) {
        /* nothing to refresh: the key is the bearer token */
        k2a_buf_dispose(&body);
        return adopt_api_key(a, v);
    } else if (a->cfg.auth == K2A_AUTH_EXTERNAL_IDP) {
        /* the OAuth refresh of the external IdP (kiro-protocol-2026 §11): form-encoded, no secret. The URL is a private copy:
         * a reload may replace the account's configuration while this call waits. */
        if ((idp_url_str = strdup(a->cfg.token_endpoint)) == NULL ||
            k2a_url_parse(idp_url_str, strlen(idp_url_str), &idp_url) != 0) {
            free(idp_url_str);
            k2a_buf_dispose(&body);
            memset(v, 0, sizeof(*v));
            v->action = K2A_ACT_LOCAL;
            v->err = K2A_EBAD_URL;
            snprintf(v->detail, sizeof(v->detail), "token refresh: bad tokenEndpoint");
            return v->err;
        }
        url = &idp_url;
        k2a_buf_appendstr(&body, "client_id=");
        form_encode(&body, a->cfg.client_id);
        k2a_buf_appendstr(&body, "&grant_type=refresh_token&refresh_token=");
        form_encode(&body, a->refresh_token);
        k2a_buf_appendstr(&body, "&scope=");
        r = form_encode(&body, a->cfg.scope);
        h[nh++] = HDR("Content-Type", "application/x-www-form-urlencoded");
        h[nh++] = HDR("Accept", "application/json");
        h[nh++] = HDR("Accept-Encoding", "identity");
    } else if (a->cfg.auth == K2A_AUTH_IDC) {
        url = &ru->idc;
        k2a_buf_appendstr(&body, "{\"clientId\":\"");
        k2a_buf_append_json_escaped(&body, a->cfg.client_id, strlen(a->cfg.client_id));
        k2a_buf_appendstr(&body, "\",\"clientSecret\":\"");
        k2a_buf_append_json_escaped(&body, a->cfg.client_secret, strlen(a->cfg.client_secret));
        k2a_buf_appendstr(&body, "\",\"grantType\":\"refresh_token\",\"refreshToken\":\"");
        k2a_buf_append_json_escaped(&body, a->refresh_token, strlen(a->refresh_token));
        r = k2a_buf_appendstr(&body, "\"}");
        k2a_rand_uuid4(invocation);
        h[nh++] = HDR("content-type", "application/json");
        h[nh++] = HDR("x-amz-user-agent", K2A_FP_IDC_X_AMZ_USER_AGENT);
        h[nh++] = HDR("user-agent", K2A_FP_IDC_USER_AGENT);
        h[nh++] = HDR("amz-sdk-invocation-id", invocation);
        h[nh++] = HDR("amz-sdk-request", "attempt=1; max=4");
        h[nh++] = HDR("Connection", "close");
    } else {
        url = &ru->social;
        k2a_buf_appendstr(&body, "{\"refreshToken\":\"");
        k2a_buf_append_json_escaped(&body, a->refresh_token, strlen(a->refresh_token));
        r = k2a_buf_appendstr(&body, "\"}");
        k2a_fp_social_ua(p->kiro_version, a->machine_id, ua, sizeof(ua));
        h[nh++] = HDR("Content-Type", "application/json");
        h[nh++] = HDR("Accept", "application/json, text/plain, */*");
        h[nh++] = HDR("User-Agent", ua);
        h[nh++] = HDR("Connection", "close");
    }
    if (r != 0) {
        free(idp_url_str);
        k2a_buf_dispose(&body);
        memset(v, 0, sizeof(*v));
        v->action = K2A_ACT_LOCAL;
        v->err = r;
        snprintf(v->detail, sizeof(v->detail), "token refresh: %s", k2a_strerror(r));
        return r;
    }
    /* the refresh token in flight: remembered, so that a rotation racing a reload is attributed correctly */
    r = k2a_pool_http_call(p, a, url, "POST", h, nh, body.base, body.len, &resp, REFRESH_BODY_MAX, &status);
    k2a_buf_dispose(&body);
    free(idp_url_str);
    k2a_pool_classify_refresh(r, status, resp.base, resp.len, v);
    if (v->action == K2A_ACT_OK) {
        char detail[200];
        if ((r = adopt_refresh(a, &resp, detail, sizeof(detail))) != 0) {
            memset(v, 0, sizeof(*v));
            v->action = K2A_ACT_TRANSIENT;
            v->err = r;
            v->status = status;
            snprintf(v->detail, sizeof(v->detail), "%s", detail);
        }
    }
    k2a_buf_dispose(&resp);
    return v->action == K2A_ACT_OK ? 0 : v->err;
}

/* The refresh and what follows it (profiles, state, waiters), in the coroutine of whoever set a->refreshing. */
static int run_refresh(k2a_account_t *a, k2a_verdict_t *out)
{
    k2a_pool_t *p = a->pool;
    k2a_verdict_t v;
    int r;
    k2a_pool_store_t *st = p->store;
    bool shared = st != NULL && st->refresh_begin != NULL && a->cfg.auth != K2A_AUTH_API_KEY;
    int b = shared ? st->refresh_begin(st, a) : 0;
    if (b == K2A_STORE_ADOPTED || b == K2A_ECANCELED) {
        /* another replica refreshed the account meanwhile: its token is ours (or the pool shuts down) */
        memset(&v, 0, sizeof(v));
        v.action = b == K2A_ECANCELED ? K2A_ACT_CANCELED : K2A_ACT_OK;
        v.err = b == K2A_ECANCELED ? b : 0;
        snprintf(v.detail, sizeof(v.detail), "%s", b == K2A_ECANCELED ? "canceled" : "token from the shared store");
        r = v.err;
        shared = false;
    } else {
        r = do_refresh(a, &v);
    }
    if (shared) {
        st->refresh_end(st, a, r, &v);
        r = v.action == K2A_ACT_OK ? 0 : r;
    }
    if (r == 0 && k2a_account_wants_profiles(a, k2a_pool_now_ms())) {
        /* before waking the waiters: their requests need the ARN; new requests wait too (lease.c) */
        a->resolving = true;
        k2a_account_resolve_profile(a);
        a->resolving = false;
    }
    a->refreshing = false;
    if (r == 0) {
        ++a->refreshes;
        ++p->stats.refreshes;
        a->refresh_fail_n = 0;
        if (a->state == K2A_ACCOUNT_COOLING && strncmp(a->reason, "token refresh", 13) == 0)
            k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
        k2a_pool_schedule_refresh_ahead(a);
    } else if (v.action != K2A_ACT_CANCELED) {
        ++a->refresh_failures;
        ++p->stats.refresh_failures;
        k2a_account_note_error(a, K2A_ERRC_REFRESH, v.detail);
        k2a_warn("pool: %s: %s", a->label, v.detail);
        int64_t now = k2a_pool_now_ms();
        if (v.action == K2A_ACT_INVALID) {
            k2a_account_set_state(a, K2A_ACCOUNT_INVALID, 0, v.detail);
        } else {
            uint64_t d = k2a_pool_backoff_ms(K2A_POOL_TRANSIENT_BASE_MS, K2A_POOL_TRANSIENT_CAP_MS, a->refresh_fail_n++,
                                             K2A_POOL_BACKOFF_JITTER_PCT, k2a_rand_u64());
            if (k2a_account_token_valid(a, now)) {
                /* refresh-ahead failed but the token still works: retry before it expires, no penalty */
                int64_t left = a->expires_at - now;
                k2a_account_schedule_refresh(a, (int64_t)d < left / 2 ? d : (uint64_t)(left / 2));
            } else {
                if (v.action != K2A_ACT_LOCAL && a->state == K2A_ACCOUNT_OK)
                    k2a_account_set_state(a, K2A_ACCOUNT_COOLING, now + (int64_t)d, v.detail);
                k2a_account_schedule_refresh(a, d);
            }
        }
    }
    k2a_account_wake_waiters(a, r);
    if (out != NULL)
        *out = v;
    return r;
}

static void refresh_job(k2a_pool_job_t *job)
{
    run_refresh(job->account, NULL);
}

int k2a_account_refresh_now(k2a_account_t *a, k2a_verdict_t *v)
{
    if (a->refreshing || k2a_coro_current() == NULL)
        return K2A_EBUSY;
    a->refreshing = true;
    return run_refresh(a, v);
}

/* ---- usage ---- */

/* One getUsageLimits call with the account's current token. Returns 0 (usage applied), K2A_ECANCELED, or another K2A_E*
 * with *status (0 for transport errors) and *v describing the answer. */
static int usage_call(k2a_account_t *a, int *status_out, k2a_verdict_t *v)
{
    k2a_pool_t *p = a->pool;
    k2a_buf_t url = K2A_BUF_INIT(0), path = K2A_BUF_INIT(0), resp = K2A_BUF_INIT(USAGE_BODY_MAX);
    int r = K2A_ENOMEM;
    memset(v, 0, sizeof(*v));
    *status_out = 0;
    k2a_buf_appendstr(&path, "/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR&resourceType=AGENTIC_REQUEST");
    const char *rest_arn = k2a_account_rest_arn(a); /* never the Builder ID placeholder */
    if (rest_arn != NULL) {
        k2a_buf_appendstr(&path, "&profileArn=");
        k2a_buf_append_url_encoded(&path, rest_arn);
    }
    k2a_url_t parsed;
    if (k2a_buf_cstr(&path) == NULL || k2a_pool_api_url(p, k2a_account_region(a), path.base, &url, &parsed) == NULL)
        goto Exit;
    char xamz[200], ua[360], auth[64 + 16384], invocation[37];
    k2a_fp_rest_ua(p->kiro_version, a->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    char *token = a->access_token != NULL ? strdup(a->access_token) : NULL; /* the account's copy may be replaced */
    if (token == NULL)
        goto Exit;
    snprintf(auth, sizeof(auth), "Bearer %s", token);
    k2a_rand_uuid4(invocation);
    k2a_http_header_t h[] = {HDR("x-amz-user-agent", xamz),
                             HDR("user-agent", ua),
                             HDR("amz-sdk-invocation-id", invocation),
                             HDR("amz-sdk-request", "attempt=1; max=1"),
                             HDR("Authorization", auth),
                             HDR("Connection", "close"),
                             HDR("tokentype", k2a_account_token_type(a))};
    size_t nh = sizeof(h) / sizeof(h[0]) - (k2a_account_token_type(a) == NULL); /* tokentype: API keys, external IdPs */
    int status = 0;
    ++a->usage_polls;
    r = k2a_pool_http_call(p, a, &parsed, "GET", h, nh, NULL, 0, &resp, USAGE_BODY_MAX, &status);
    free(token);
    *status_out = status;
    if (r == K2A_ECANCELED)
        goto Exit;
    k2a_usage_t usage;
    if (r == 0 && status == 200 && k2a_pool_parse_usage(resp.base, resp.len, &usage) == 0) {
        k2a_acct_usage_polled(a, &usage);
    } else {
        ++a->usage_failures;
        k2a_pool_classify(r, status, resp.base, resp.len, v);
        k2a_warn("pool: %s: getUsageLimits failed: %s", a->label, r != 0 ? k2a_strerror(r) : v->detail);
        if (r == 0)
            r = v->err != 0 ? v->err : K2A_EHTTP_STATUS;
    }
Exit:
    k2a_buf_dispose(&url);
    k2a_buf_dispose(&path);
    k2a_buf_dispose(&resp);
    return r;
}

int k2a_account_usage_now(k2a_account_t *a, int *status, k2a_verdict_t *v)
{
    return usage_call(a, status, v);
}

static void usage_job(k2a_pool_job_t *job)
{
    k2a_account_t *a = job->account;
    k2a_pool_t *p = job->pool;
    uint64_t interval = (uint64_t)p->cfg.usage_poll_interval_s * 1000;
    if (a->state != K2A_ACCOUNT_INVALID && a->state != K2A_ACCOUNT_DISABLED) {
        bool waited = false;
        int status = 0;
        k2a_verdict_t v;
        if (k2a_account_await_token(a, 0, &waited) == 0 && usage_call(a, &status, &v) == K2A_ECANCELED)
            return;
    }
    if (interval > 0)
        k2a_account_schedule_usage(a, interval - interval / 20 + k2a_rand_below(interval / 10 + 1)); /* +-5 % */
}

static void job_main(k2a_coro_t *co, void *arg)
{
    k2a_pool_job_t *job = arg;
    k2a_account_t *a = job->account;
    if (!k2a_coro_canceled(co)) {
        if (job->kind == JOB_REFRESH)
            refresh_job(job);
        else if (job->kind == JOB_USAGE)
            usage_job(job);
        else
            k2a_catalog_job(a);
    }
    if (job->kind == JOB_REFRESH) {
        if (a->refreshing) { /* canceled before it ran */
            a->refreshing = false;
            k2a_account_wake_waiters(a, K2A_ECANCELED);
        }
    } else if (job->kind == JOB_USAGE) {
        a->usage_polling = false;
    } else {
        a->catalog_fetching = false;
    }
    k2a_plink_unlink(&job->link);
    free(job);
    k2a_account_unref(a);
}
