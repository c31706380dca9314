/*
 * One call to Kiro's MCP endpoint with failover over the pool (see mcp.h). The account state belongs to the pool's loop:
 * every read or write of it is an op_* function run there through core/xloop, as in dispatch.c; the HTTP call itself runs
 * on the caller's loop with the caller's upstream client.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xloop.h"
#include "pool/fingerprint.h"
#include "pool/health.h"
#include "pool/acct_state.h"
#include "pool/internal.h"
#include "pool/mcp.h"
#include "upstream/upstream.h"

const k2a_url_t *k2a_mcp_url(k2a_pool_t *pool, const k2a_lease_t *lease)
{
    /* the account's data-plane region: KIRO_API_BASE with {region} filled in (pool/endpoints.c caches "/mcp") */
    return k2a_pool_api_url(pool, lease->region, "/mcp", NULL, NULL);
}

typedef struct st_mcp_t {
    k2a_pool_t *pool;
    k2a_mcp_outcome_t *oc;
    k2a_pool_exclude_t tried;
    k2a_lease_t lease;
    k2a_verdict_t v;
    bool auth_retry_used;
} mcp_t;

static void note(mcp_t *m, const char *label, const char *detail)
{
    size_t len = strlen(m->oc->message);
    if (len + 8 < sizeof(m->oc->message))
        snprintf(m->oc->message + len, sizeof(m->oc->message) - len, "%s%s: %s", len ? "; " : "", label, detail);
}

static intptr_t op_acquire(void *arg)
{
    mcp_t *m = arg;
    k2a_pool_t *p = m->pool;
    for (;;) {
        if (m->oc->attempts >= p->cfg.max_attempts)
            return K2A_ENO_ACCOUNT;
        int r = k2a_pool_acquire(p, &m->tried, NULL, NULL, &m->lease, NULL);
        if (r != 0)
            return r;
        k2a_account_t *a = m->lease.account;
        if (m->tried.n < K2A_POOL_MAX_EXCLUDE)
            m->tried.ids[m->tried.n++] = a->id;
        if (k2a_lease_rest_arn(&m->lease) == NULL) {
            /* MCP needs the profile ARN (kiro-protocol-2026 §10): not this account's fault */
            note(m, m->lease.label, "no profile ARN known for the MCP call");
            k2a_pool_release(&m->lease);
            if (m->tried.n >= K2A_POOL_MAX_EXCLUDE)
                return K2A_ENO_ACCOUNT;
            continue;
        }
        if (++m->oc->attempts > 1)
            ++p->stats.failovers;
        k2a_acct_request_counted(a);
        return 0;
    }
}

enum { NEXT_ACCOUNT = 1, RETRY_SAME = 2 };

static intptr_t op_verdict(void *arg)
{
    mcp_t *m = arg;
    k2a_account_t *a = m->lease.account;
    if (m->v.action == K2A_ACT_TRANSIENT && (m->oc->err == K2A_EFIRST_BYTE_TIMEOUT || m->oc->err == K2A_EIDLE_TIMEOUT)) {
        /* the search's own deadline (KIRO_WEB_SEARCH_TIMEOUT_MS) passed: the search is over, and a slow search says
         * nothing about the account's generate calls: no penalty, no other account */
        k2a_pool_release(&m->lease);
        return m->oc->err;
    }
    if (m->v.action == K2A_ACT_FORBIDDEN || m->v.action == K2A_ACT_CONFIG || m->v.action == K2A_ACT_MODEL) {
        /* a 403 that is not about the token, a profile answer ("profileArn is required", "User is not authorized"), a
         * model answer: on /mcp they speak of the profile's web search (a wrong or missing ARN, no web search for this
         * subscription), not of the account's generate calls, which still work: no penalty, the next account */
        k2a_pool_release(&m->lease);
        return NEXT_ACCOUNT;
    }
    k2a_account_apply_verdict(a, &m->v, m->lease.token_gen);
    if (m->v.action == K2A_ACT_OK) {
        k2a_pool_mark_dirty_lazy(m->pool);
        k2a_pool_release(&m->lease);
        return 0;
    }
    if (m->v.action == K2A_ACT_CLIENT || m->v.action == K2A_ACT_LOCAL || m->v.action == K2A_ACT_CANCELED) {
        k2a_pool_release(&m->lease);
        return m->v.err != 0 ? m->v.err : K2A_EHTTP_STATUS;
    }
    if ((m->v.action == K2A_ACT_AUTH || m->v.action == K2A_ACT_FORBIDDEN) && !m->auth_retry_used &&
        a->state != K2A_ACCOUNT_INVALID) {
        m->auth_retry_used = true;
        if (k2a_pool_refresh_lease(&m->lease) == 0) {
            k2a_acct_request_counted(a);
            return RETRY_SAME;
        }
    }
    k2a_pool_release(&m->lease);
    return NEXT_ACCOUNT;
}

#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

static int post(mcp_t *m, k2a_upstream_t *up, const char *body, size_t len, uint32_t timeout_ms, k2a_http_response_t **resp)
{
    k2a_pool_t *p = m->pool;
    const k2a_lease_t *l = &m->lease;
    char xamz[200], ua[360], inv[37];
    const k2a_url_t *url = k2a_mcp_url(p, l);
    const char *arn = k2a_lease_rest_arn(l); /* a real ARN only (never the Builder ID placeholder) */
    if (url == NULL)
        return K2A_EBAD_URL;
    if (arn == NULL)
        return K2A_EINVAL;
    k2a_fp_streaming_ua(p->kiro_version, l->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    k2a_rand_uuid4(inv);
    k2a_buf_t auth = K2A_BUF_INIT(0);
    if (k2a_buf_appendstr(&auth, "Bearer ") != 0 || k2a_buf_appendstr(&auth, l->access_token) != 0) {
        k2a_buf_dispose(&auth);
        return K2A_ENOMEM;
    }
    k2a_http_header_t h[8] = {
        HDR("content-type", "application/json"),
        HDR("x-amz-user-agent", xamz),
        HDR("user-agent", ua),
        HDR("amz-sdk-invocation-id", inv),
        HDR("amz-sdk-request", "attempt=1; max=3"),
        {K2A_STRLIT("authorization"), k2a_str(auth.base, auth.len)},
        HDR("x-amzn-kiro-profile-arn", arn),
    };
    size_t nh = 7;
    if (l->token_type != NULL)
        h[nh++] = HDR("tokentype", l->token_type);
    uv_buf_t b = uv_buf_init((char *)body, (unsigned)len);
    k2a_http_request_t req = {.url = url,
                              .method = "POST",
                              .headers = h,
                              .nheaders = nh,
                              .affinity = k2a_lease_account_id(l), /* an account's calls never share a connection */
                              .host_index = 3,
                              .body = &b,
                              .nbody = 1,
                              .first_byte_timeout_ms = timeout_ms,
                              .idle_timeout_ms = timeout_ms};
    int r = k2a_upstream_request(up, &req, resp);
    k2a_buf_dispose(&auth);
    return r;
}

/* One POST on the current lease: the 200 body into out, or the error body; the verdict into m->v. */
static void attempt(mcp_t *m, k2a_upstream_t *up, const char *request_id, const char *body, size_t len, uint32_t timeout_ms,
                    k2a_buf_t *out, k2a_buf_t *errbody)
{
    k2a_http_response_t *resp = NULL;
    int status = 0;
    k2a_buf_reset(errbody);
    int r = post(m, up, body, len, timeout_ms, &resp);
    if (r == 0) {
        status = resp->status;
        m->oc->upstream_status = status;
        if (status == 200) {
            k2a_buf_reset(out);
            r = k2a_upstream_read_all(resp, out, K2A_MCP_BODY_MAX);
        } else {
            r = k2a_upstream_read_error_body(resp, errbody);
        }
        k2a_upstream_release(resp);
    }
    k2a_pool_classify(r, status == 200 && r != 0 ? 0 : status, errbody->base, errbody->len, &m->v);
    if (r == K2A_ETOOBIG) {
        m->v.action = K2A_ACT_LOCAL;
        m->v.err = K2A_ETOOBIG;
        snprintf(m->v.detail, sizeof(m->v.detail), "MCP answer over %d bytes", K2A_MCP_BODY_MAX);
    }
    if (m->v.action != K2A_ACT_OK) {
        m->oc->err = m->v.err != 0 ? m->v.err : (r != 0 ? r : K2A_EHTTP_STATUS);
        note(m, m->lease.label, m->v.detail);
        k2a_log_field_t f[] = {K2A_LF_NUM("account", m->lease.index), K2A_LF_NUM("status", status),
                               K2A_LF_STR("error", k2a_errname(m->oc->err))};
        k2a_log_fields(K2A_LOG_WARN, request_id, f, sizeof(f) / sizeof(f[0]), "mcp: %s: %s", m->lease.label, m->v.detail);
    }
}

int k2a_mcp_call(k2a_pool_t *pool, k2a_upstream_t *up, const char *request_id, const char *body, size_t len, uint32_t timeout_ms,
                 k2a_buf_t *out, k2a_mcp_outcome_t *oc)
{
    memset(oc, 0, sizeof(*oc));
    mcp_t *m = calloc(1, sizeof(*m)); /* the exclude list is 520 bytes: off the coroutine stack */
    if (m == NULL)
        return oc->err = K2A_ENOMEM;
    m->pool = pool;
    m->oc = oc;
    if (up == NULL)
        up = pool->up;
    k2a_buf_t errbody = K2A_BUF_INIT(K2A_UPSTREAM_ERROR_BODY_MAX);
    int r;
    for (;;) {
        if ((r = (int)k2a_xloop_call(pool->owner, op_acquire, m)) != 0) {
            if (oc->err == 0 || r == K2A_ECANCELED)
                oc->err = r;
            if (oc->message[0] == '\0')
                snprintf(oc->message, sizeof(oc->message), "%s", k2a_strerror(r));
            r = oc->err;
            break;
        }
        intptr_t next;
        do {
            attempt(m, up, request_id, body, len, timeout_ms, out, &errbody);
            next = k2a_xloop_call(pool->owner, op_verdict, m);
        } while (next == RETRY_SAME);
        if (next == 0) {
            oc->err = 0;
            oc->message[0] = '\0';
            r = 0;
            break;
        }
        if (next != NEXT_ACCOUNT) {
            r = oc->err = (int)next;
            break;
        }
    }
    k2a_buf_dispose(&errbody);
    free(m);
    return r;
}
