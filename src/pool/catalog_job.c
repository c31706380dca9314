/*
 * Each account's model catalog (pool/catalog.h), kept fresh in the background and never fetched on the
 * request path: a pool timer ticks every second and starts at most one due fetch per tick (an account that
 * has an access token and no catalog, or one older than KIRO_CATALOG_REFRESH_S, or whose last fetch failed
 * and whose backoff has passed). A fetch is GET {api base}/ListAvailableModels?origin=AI_EDITOR&maxResults=50
 * (+ profileArn when the account has a real one, + nextToken) with the REST headers of getUsageLimits,
 * following nextToken until it is missing or blank; a repeated token or more than K2A_CATALOG_MAX_PAGES
 * pages is an error. A failed fetch keeps the previous catalog. Selection asks k2a_account_may_serve; a
 * Kiro INVALID_MODEL_ID answer removes the model from the account's catalog until the next fetch. /api/tokens shows
 * each account's catalog size, default model and fetch time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "convert/model_map.h"
#include "core/errors.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xloop.h"
#include "pool/catalog.h"
#include "pool/fingerprint.h"
#include "pool/acct_state.h"
#include "pool/internal.h"

#define TICK_MS 1000
#define RETRY_BASE_MS (60 * 1000)
#define MAX_MISSING 32

#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

/* ---- per account ---- */

bool k2a_account_may_serve(const k2a_account_t *a, const char *model)
{
    size_t len = strlen(model);
    for (size_t i = 0; i < a->nmissing; ++i)
        if (k2a_model_id_same(a->models_missing[i], strlen(a->models_missing[i]), model, len))
            return false;
    return a->catalog == NULL || k2a_catalog_find(a->catalog, model, len) != NULL;
}

void k2a_account_mark_model_missing(k2a_account_t *a, const char *model)
{
    if (model == NULL)
        return;
    if (a->catalog != NULL) {
        if (k2a_catalog_remove(a->catalog, model, strlen(model)))
            k2a_pool_mark_dirty(a->pool, false);
        return;
    }
    if (!k2a_account_may_serve(a, model) || a->nmissing >= MAX_MISSING)
        return;
    char **nm = realloc(a->models_missing, (a->nmissing + 1) * sizeof(*nm));
    if (nm == NULL)
        return;
    a->models_missing = nm;
    if ((nm[a->nmissing] = strdup(model)) != NULL)
        ++a->nmissing;
}

int64_t k2a_account_model_window(const k2a_account_t *a, const char *model)
{
    const k2a_catalog_model_t *m = a->catalog != NULL ? k2a_catalog_find(a->catalog, model, strlen(model)) : NULL;
    return m != NULL ? m->max_input : 0;
}

static void clear_missing(k2a_account_t *a)
{
    for (size_t i = 0; i < a->nmissing; ++i)
        free(a->models_missing[i]);
    free(a->models_missing);
    a->models_missing = NULL;
    a->nmissing = 0;
}

void k2a_account_catalog_free(k2a_account_t *a)
{
    if (a->catalog != NULL) {
        k2a_catalog_dispose(a->catalog);
        free(a->catalog);
        a->catalog = NULL;
    }
    clear_missing(a);
}

char *k2a_account_catalog_encode(const k2a_account_t *a)
{
    if (a->catalog == NULL)
        return NULL;
    k2a_buf_t out = K2A_BUF_INIT(0);
    char *s = NULL;
    if (k2a_catalog_encode(a->catalog, &out) == 0 && k2a_buf_cstr(&out) != NULL)
        s = strdup(out.base);
    k2a_buf_dispose(&out);
    return s;
}

void k2a_account_catalog_restore(k2a_account_t *a, const char *json)
{
    if (json == NULL || a->pool->cfg.catalog_refresh_s == 0) /* catalogs off: a stored one would never be renewed */
        return;
    k2a_catalog_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return;
    if (k2a_catalog_decode(json, strlen(json), c) != 0) {
        k2a_warn("pool: %s: the model catalog in the state file is unreadable; it is fetched again", a->label);
        free(c);
        return;
    }
    k2a_account_catalog_free(a);
    a->catalog = c;
}

void k2a_account_render_catalog(const k2a_account_t *a, k2a_buf_t *out)
{
    if (a->catalog == NULL) {
        k2a_buf_appendstr(out, ",\"models\":null");
        return;
    }
    char at[32] = "";
    time_t t = (time_t)(a->catalog->fetched_at / 1000);
    struct tm tm;
    if (a->catalog->fetched_at > 0 && gmtime_r(&t, &tm) != NULL)
        strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
    k2a_buf_appendf(out, ",\"models\":%zu,\"models_fetched_at\":%s%s%s,\"models_default\":", a->catalog->n, at[0] ? "\"" : "",
                    at[0] ? at : "null", at[0] ? "\"" : "");
    if (a->catalog->default_model == NULL) {
        k2a_buf_appendstr(out, "null");
    } else {
        k2a_buf_appendstr(out, "\"");
        k2a_buf_append_json_escaped(out, a->catalog->default_model, strlen(a->catalog->default_model));
        k2a_buf_appendstr(out, "\"");
    }
}

/* ---- the fetch ---- */

/* The one place the catalog URL is built: the account's data-plane region on KIRO_API_BASE, the ARN only when it is a
 * real one (the Builder ID placeholder is answered 403 "Invalid token" on REST calls, kiro-protocol-2026 §2.2). */
static int catalog_url(k2a_pool_t *p, k2a_account_t *a, const char *next_token, k2a_buf_t *path, k2a_buf_t *scratch,
                       k2a_url_t *parsed)
{
    k2a_buf_appendstr(path, "/ListAvailableModels?origin=AI_EDITOR&maxResults=50");
    const char *arn = k2a_account_rest_arn(a);
    if (arn != NULL) {
        k2a_buf_appendstr(path, "&profileArn=");
        k2a_buf_append_url_encoded(path, arn);
    }
    if (next_token[0] != '\0') {
        k2a_buf_appendstr(path, "&nextToken=");
        k2a_buf_append_url_encoded(path, next_token);
    }
    if (k2a_buf_cstr(path) == NULL || k2a_pool_api_url(p, k2a_account_region(a), path->base, scratch, parsed) == NULL)
        return K2A_ENOMEM;
    return 0;
}

/* Fetches every page into c. Returns 0, K2A_ECANCELED, or an error with a client-free, secret-free detail. */
static int fetch(k2a_account_t *a, const char *token, k2a_catalog_t *c, char *detail, size_t detailsz)
{
    k2a_pool_t *p = a->pool;
    char next[K2A_CATALOG_MAX_TOKEN], *seen[K2A_CATALOG_MAX_PAGES] = {NULL};
    size_t nseen = 0;
    char xamz[200], ua[360], invocation[37];
    k2a_buf_t url = K2A_BUF_INIT(0), scratch = K2A_BUF_INIT(0), resp = K2A_BUF_INIT(K2A_CATALOG_MAX_BODY), auth = K2A_BUF_INIT(0);
    int r = 0;
    next[0] = '\0';
    k2a_fp_rest_ua(p->kiro_version, a->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    k2a_buf_appendstr(&auth, "Bearer ");
    if (k2a_buf_appendstr(&auth, token) != 0 || k2a_buf_cstr(&auth) == NULL) {
        r = K2A_ENOMEM;
        snprintf(detail, detailsz, "out of memory");
        goto Exit;
    }
    for (size_t page = 0;; ++page) {
        if (page == K2A_CATALOG_MAX_PAGES) {
            r = K2A_EUPSTREAM_EVENT;
            snprintf(detail, detailsz, "more than %d pages", K2A_CATALOG_MAX_PAGES);
            goto Exit;
        }
        k2a_buf_reset(&url);
        k2a_buf_reset(&resp);
        k2a_url_t parsed;
        if ((r = catalog_url(p, a, next, &url, &scratch, &parsed)) != 0) {
            snprintf(detail, detailsz, "cannot build the URL: %s", k2a_strerror(r));
            goto Exit;
        }
        k2a_rand_uuid4(invocation);
        k2a_http_header_t h[] = {HDR("x-amz-user-agent", xamz),
                                 HDR("user-agent", ua),
                                 HDR("amz-sdk-invocation-id", invocation),
                                 HDR("amz-sdk-request", "attempt=1; max=1"),
                                 {K2A_STRLIT("Authorization"), k2a_str(auth.base, auth.len)},
                                 HDR("Connection", "close"),
                                 HDR("tokentype", k2a_account_token_type(a))};
        size_t nh = sizeof(h) / sizeof(h[0]) - (k2a_account_token_type(a) == NULL); /* tokentype: API keys, external IdPs */
        int status = 0;
        r = k2a_pool_http_call(p, a, &parsed, "GET", h, nh, NULL, 0, &resp, K2A_CATALOG_MAX_BODY, &status);
        if (r == K2A_ECANCELED)
            goto Exit;
        if (r != 0 || status != 200) {
            k2a_verdict_t v;
            k2a_pool_classify(r, status, resp.base, resp.len, &v);
            snprintf(detail, detailsz, "%s", r != 0 ? k2a_strerror(r) : v.detail);
            r = r != 0 ? r : v.err != 0 ? v.err : K2A_EHTTP_STATUS;
            goto Exit;
        }
        char why[128] = "";
        if ((r = k2a_catalog_parse_page(resp.base, resp.len, c, next, sizeof(next), why, sizeof(why))) != 0) {
            snprintf(detail, detailsz, "page %zu: %s", page + 1, why[0] ? why : k2a_strerror(r));
            goto Exit;
        }
        if (next[0] == '\0')
            break;
        for (size_t i = 0; i < nseen; ++i) {
            if (strcmp(seen[i], next) == 0) {
                r = K2A_EUPSTREAM_EVENT;
                snprintf(detail, detailsz, "nextToken repeated on page %zu", page + 1);
                goto Exit;
            }
        }
        if ((seen[nseen] = strdup(next)) == NULL) {
            r = K2A_ENOMEM;
            snprintf(detail, detailsz, "out of memory");
            goto Exit;
        }
        ++nseen;
    }
Exit:
    for (size_t i = 0; i < nseen; ++i)
        free(seen[i]);
    k2a_buf_dispose(&url);
    k2a_buf_dispose(&scratch);
    k2a_buf_dispose(&resp);
    k2a_buf_dispose(&auth);
    return r;
}

void k2a_catalog_job(k2a_account_t *a)
{
    char detail[200] = "";
    k2a_account_catalog_now(a, detail, sizeof(detail));
}

int k2a_account_catalog_now(k2a_account_t *a, char *detail, size_t detailsz)
{
    k2a_pool_t *p = a->pool;
    if (a->access_token == NULL)
        return K2A_EREFRESH;
    char *token = strdup(a->access_token); /* the account's copy may be replaced while we wait */
    k2a_catalog_t *c = calloc(1, sizeof(*c));
    int r = token != NULL && c != NULL ? fetch(a, token, c, detail, detailsz) : K2A_ENOMEM;
    free(token);
    if (r == K2A_ECANCELED) {
        /* shutdown: nothing learned */
    } else if (r == 0) {
        c->fetched_at = k2a_pool_now_ms();
        k2a_acct_catalog_set(a, c);
        c = NULL;
        a->catalog_fail_n = 0;
        a->catalog_retry_at = 0;
        k2a_info("pool: %s: model catalog: %zu model(s), default %s", a->label, a->catalog->n,
                 a->catalog->default_model != NULL ? a->catalog->default_model : "-");
    } else {
        /* 1 min doubling up to the refresh interval (a shorter interval retries at its own pace) */
        uint64_t interval = (uint64_t)p->cfg.catalog_refresh_s * 1000, base = interval < RETRY_BASE_MS ? interval : RETRY_BASE_MS;
        uint64_t d = k2a_pool_backoff_ms(base, interval, a->catalog_fail_n++, K2A_POOL_BACKOFF_JITTER_PCT, k2a_rand_u64());
        a->catalog_retry_at = k2a_pool_now_ms() + (int64_t)d;
        k2a_warn("pool: %s: ListAvailableModels failed (%s); %s, next try in %llu s", a->label,
                 detail[0] ? detail : k2a_strerror(r), a->catalog != NULL ? "keeping the previous catalog" : "no catalog yet",
                 (unsigned long long)(d / 1000));
    }
    if (c != NULL) {
        k2a_catalog_dispose(c);
        free(c);
    }
    return r;
}

/* ---- the timer ---- */

static bool due(const k2a_pool_t *p, const k2a_account_t *a, int64_t now)
{
    if (a->removed || a->catalog_fetching || a->state != K2A_ACCOUNT_OK || !a->ever_refreshed || !k2a_account_token_valid(a, now) ||
        now < a->catalog_retry_at)
        return false;
    return a->catalog == NULL || now - a->catalog->fetched_at >= (int64_t)p->cfg.catalog_refresh_s * 1000 ||
           a->catalog->fetched_at > now + 86400000LL; /* a clock that jumped back */
}

static void on_tick(uv_timer_t *t)
{
    k2a_pool_t *p = t->data;
    if (p->shutting_down)
        return;
    int64_t now = k2a_pool_now_ms();
    for (size_t i = 0; i < p->naccounts; ++i) {
        if (due(p, p->accounts[i], now)) {
            k2a_account_start_catalog_fetch(p->accounts[i]);
            return; /* one per tick: never a burst of control calls */
        }
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    k2a_pool_t *p = h->data;
    --p->open_handles;
}

void k2a_catalog_start(k2a_pool_t *p)
{
    if (p->cfg.catalog_refresh_s == 0)
        return;
    uv_timer_init(p->loop, &p->catalog_timer);
    p->catalog_timer.data = p;
    p->catalog_timer_open = true;
    ++p->open_handles;
    uv_timer_start(&p->catalog_timer, on_tick, TICK_MS, TICK_MS);
}

void k2a_catalog_stop(k2a_pool_t *p)
{
    if (!p->catalog_timer_open)
        return;
    p->catalog_timer_open = false;
    uv_timer_stop(&p->catalog_timer);
    uv_close((uv_handle_t *)&p->catalog_timer, on_timer_closed);
}

/* ---- the pool's view ---- */

static bool counts(const k2a_account_t *a)
{
    return !a->removed && a->state != K2A_ACCOUNT_DISABLED && a->state != K2A_ACCOUNT_INVALID;
}

bool k2a_pool_model_servable(k2a_pool_t *p, const char *model)
{
    /* every configured account counts, usable or not: when the accounts that may serve it are cooling, invalid or
     * disabled, the client hears about them (503), not that the model does not exist */
    for (size_t i = 0; i < p->naccounts; ++i)
        if (!p->accounts[i]->removed && k2a_account_may_serve(p->accounts[i], model))
            return true;
    return false;
}

int64_t k2a_pool_model_window(k2a_pool_t *p, const char *model)
{
    int64_t w = 0;
    for (size_t i = 0; i < p->naccounts; ++i) {
        int64_t aw = k2a_account_model_window(p->accounts[i], model);
        if (aw > w)
            w = aw;
    }
    return w > 0 ? w : k2a_model_default_window(model, strlen(model));
}

static int cmp_model(const void *x, const void *y)
{
    return strcmp(((const k2a_pool_model_t *)x)->id, ((const k2a_pool_model_t *)y)->id);
}

size_t k2a_pool_models(k2a_pool_t *p, k2a_pool_model_t *out, size_t max, bool *known)
{
    size_t n = 0;
    *known = false;
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        if (a->catalog == NULL || !counts(a))
            continue;
        *known = true;
        for (size_t j = 0; j < a->catalog->n; ++j) {
            const k2a_catalog_model_t *m = &a->catalog->models[j];
            size_t k = 0, idlen = strlen(m->id);
            while (k < n && !k2a_model_id_same(out[k].id, strlen(out[k].id), m->id, idlen))
                ++k;
            if (k == n) {
                if (n == max)
                    continue;
                memset(&out[n], 0, sizeof(out[n]));
                snprintf(out[n].id, sizeof(out[n].id), "%s", m->id);
                ++n;
            }
            if (out[k].name[0] == '\0')
                snprintf(out[k].name, sizeof(out[k].name), "%s", m->name);
            if (m->max_input > out[k].max_input)
                out[k].max_input = m->max_input;
            if (m->max_output > out[k].max_output)
                out[k].max_output = m->max_output;
        }
    }
    qsort(out, n, sizeof(*out), cmp_model);
    return n;
}

typedef struct st_models_args_t {
    k2a_pool_t *p;
    k2a_pool_model_t *out;
    size_t max;
    bool known;
} models_args_t;

static intptr_t op_models(void *arg)
{
    models_args_t *x = arg;
    return (intptr_t)k2a_pool_models(x->p, x->out, x->max, &x->known);
}

size_t k2a_pool_models_call(k2a_pool_t *p, k2a_pool_model_t *out, size_t max, bool *known)
{
    models_args_t x = {p, out, max, false};
    intptr_t r = k2a_xloop_call(p->owner, op_models, &x);
    *known = x.known;
    return r > 0 ? (size_t)r : 0;
}
