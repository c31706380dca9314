/*
 * The key store (see keys.h): the lock-free bucket array, admission against the limits, usage per UTC day,
 * and the management operations. Admission takes only the key's own mutex: a request of one key never
 * waits for a request of another. The RPM limit is a sliding 60 s window (one timestamp per admitted
 * request, so exactly `rpm` requests are admitted in any 60 s); credits and tokens are checked against
 * what was already charged, so the one request that crosses a credit limit is served in full.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "core/errors.h"
#include "keys/internal.h"

/* ---- calendar ---- */

int32_t k2a_keys_day_of(int64_t unix_s)
{
    return (int32_t)(unix_s >= 0 ? unix_s / 86400 : (unix_s - 86399) / 86400);
}

int32_t k2a_keys_month_of(int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    return (tm.tm_year - 70) * 12 + tm.tm_mon;
}

int64_t k2a_keys_next_day_s(int64_t unix_s)
{
    return ((int64_t)k2a_keys_day_of(unix_s) + 1) * 86400;
}

int64_t k2a_keys_next_month_s(int64_t unix_s)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    struct tm next = {.tm_year = tm.tm_year + (tm.tm_mon == 11), .tm_mon = (tm.tm_mon + 1) % 12, .tm_mday = 1};
    return (int64_t)timegm(&next);
}

void k2a_keys_date_str(int32_t day, char out[11])
{
    time_t t = (time_t)day * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 11, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100);
}

/* ---- validation ---- */

static bool alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

int k2a_keys_valid_name(const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > K2A_KEYS_NAME_MAX) {
        snprintf(err, errlen, "name must be 1 to %d characters", K2A_KEYS_NAME_MAX);
        return K2A_EINVAL;
    }
    if (!alnum(name[0])) {
        snprintf(err, errlen, "name must start with a letter or a digit");
        return K2A_EINVAL;
    }
    for (size_t i = 0; i < len; ++i)
        if (!(alnum(name[i]) || name[i] == '.' || name[i] == '_' || name[i] == '-')) {
            snprintf(err, errlen, "name may hold only letters, digits, '.', '_' and '-'");
            return K2A_EINVAL;
        }
    return 0;
}

int k2a_keys_valid_pattern(const char *p, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > K2A_KEYS_PATTERN_MAX) {
        snprintf(err, errlen, "a model pattern must be 1 to %d characters", K2A_KEYS_PATTERN_MAX);
        return K2A_EINVAL;
    }
    for (size_t i = 0; i < len; ++i)
        if (!(alnum(p[i]) || strchr("._:/*?-", p[i]) != NULL) || p[i] == '\0') {
            snprintf(err, errlen, "a model pattern may hold only letters, digits, '.', '_', ':', '/', '-', '*' and '?'");
            return K2A_EINVAL;
        }
    return 0;
}

int k2a_keys_valid_limits(const k2a_key_limits_t *l, char *err, size_t errlen)
{
    if (l->rpm < 0 || l->rpm > K2A_KEYS_RPM_MAX) {
        snprintf(err, errlen, "limits.rpm must be 0 (no limit) to %d", K2A_KEYS_RPM_MAX);
        return K2A_EINVAL;
    }
    if (l->concurrency < 0 || l->concurrency > 1000000) {
        snprintf(err, errlen, "limits.concurrency must be 0 (no limit) to 1000000");
        return K2A_EINVAL;
    }
    if (!(l->credits_day >= 0 && l->credits_day <= 1e9) || !(l->credits_month >= 0 && l->credits_month <= 1e9)) {
        snprintf(err, errlen, "limits.credits_day and limits.credits_month must be 0 (no limit) to 1e9");
        return K2A_EINVAL;
    }
    if (l->tokens_day < 0 || l->tokens_day > (int64_t)1e15) {
        snprintf(err, errlen, "limits.tokens_day must be 0 (no limit) to 1e15");
        return K2A_EINVAL;
    }
    return 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

bool k2a_keys_glob(const char *pat, const char *s, size_t len)
{
    /* iterative matcher with one backtrack point: linear in practice, bounded by pattern and name lengths */
    size_t p = 0, i = 0, star_p = SIZE_MAX, star_i = 0, plen = strlen(pat);
    while (i < len) {
        if (p < plen && (pat[p] == '?' || lower(pat[p]) == lower(s[i]))) {
            ++p, ++i;
        } else if (p < plen && pat[p] == '*') {
            star_p = p++;
            star_i = i;
        } else if (star_p != SIZE_MAX) {
            p = star_p + 1;
            i = ++star_i;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*')
        ++p;
    return p == plen;
}

/* ---- the bucket array ---- */

static size_t bucket_of(const k2a_keys_t *ks, const unsigned char digest[32])
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h)); /* a SHA-256 is uniform: its first bytes are the hash */
    return (size_t)h & ks->mask;
}

k2a_key_t *k2a_keys_find(k2a_keys_t *ks, const unsigned char digest[32])
{
    if (ks == NULL)
        return NULL;
    k2a_key_t *k = atomic_load_explicit(&ks->buckets[bucket_of(ks, digest)], memory_order_acquire);
    for (; k != NULL; k = atomic_load_explicit(&k->next, memory_order_acquire))
        if (CRYPTO_memcmp(k->hash, digest, 32) == 0)
            return atomic_load_explicit(&k->deleted, memory_order_acquire) ? NULL : k;
    return NULL;
}

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;
/* Each thread's digest context, kept between calls (a new context per digest is ~0.45 k of the ~3.4 k instructions of a
 * short key's SHA-256): freed when its thread ends. It holds no key bytes between calls: the final step wipes its input
 * block, and what stays is the digest state, i.e. the digest the store keeps anyway. */
static pthread_key_t sha256_ctx_key;
static bool sha256_ctx_key_ok;

static void free_sha256_ctx(void *c)
{
    EVP_MD_CTX_free(c);
}

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL); /* kept for the process: SHA256() fetches it on every call */
    sha256_ctx_key_ok = pthread_key_create(&sha256_ctx_key, free_sha256_ctx) == 0;
}

static EVP_MD_CTX *thread_sha256_ctx(void)
{
    if (sha256_md == NULL || !sha256_ctx_key_ok)
        return NULL;
    EVP_MD_CTX *c = pthread_getspecific(sha256_ctx_key);
    if (c == NULL && (c = EVP_MD_CTX_new()) != NULL && pthread_setspecific(sha256_ctx_key, c) != 0) {
        EVP_MD_CTX_free(c);
        c = NULL;
    }
    return c;
}

void k2a_keys_sha256(const void *data, size_t len, unsigned char out[32])
{
    pthread_once(&sha256_once, fetch_sha256);
    EVP_MD_CTX *c = thread_sha256_ctx();
    unsigned n;
    if (c != NULL && EVP_DigestInit_ex2(c, sha256_md, NULL) == 1 && EVP_DigestUpdate(c, data, len) == 1 &&
        EVP_DigestFinal_ex(c, out, &n) == 1)
        return;
    if (sha256_md == NULL || EVP_Digest(data, len, out, &n, sha256_md, NULL) != 1)
        SHA256(data, len, out);
}

k2a_key_t *k2a_keys_lookup(k2a_keys_t *ks, const char *secret, size_t len)
{
    unsigned char d[32];
    k2a_keys_sha256(secret, len, d);
    return k2a_keys_find(ks, d);
}

/* Links k into its chain and the list of keys (writer mutex held). */
static int link_key(k2a_keys_t *ks, k2a_key_t *k)
{
    if (ks->nall == ks->capall) {
        size_t cap = ks->capall ? ks->capall * 2 : 16;
        k2a_key_t **a = realloc(ks->all, cap * sizeof(*a));
        if (a == NULL)
            return K2A_ENOMEM;
        ks->all = a;
        ks->capall = cap;
    }
    ks->all[ks->nall++] = k;
    _Atomic(k2a_key_t *) *head = &ks->buckets[bucket_of(ks, k->hash)];
    atomic_store_explicit(&k->next, atomic_load_explicit(head, memory_order_relaxed), memory_order_relaxed);
    atomic_store_explicit(head, k, memory_order_release); /* readers see a fully built key */
    return 0;
}

/* Unlinks k (writer mutex held). Its own next stays, so a reader standing on it walks on. */
static void unlink_key(k2a_keys_t *ks, k2a_key_t *k)
{
    _Atomic(k2a_key_t *) *link = &ks->buckets[bucket_of(ks, k->hash)];
    k2a_key_t *cur;
    while ((cur = atomic_load_explicit(link, memory_order_relaxed)) != NULL) {
        if (cur == k) {
            atomic_store_explicit(link, atomic_load_explicit(&k->next, memory_order_relaxed), memory_order_release);
            break;
        }
        link = &cur->next;
    }
    for (size_t i = 0; i < ks->nall; ++i)
        if (ks->all[i] == k) {
            memmove(&ks->all[i], &ks->all[i + 1], (ks->nall - i - 1) * sizeof(*ks->all));
            --ks->nall;
            break;
        }
}

k2a_key_t *k2a_keys_new_key(k2a_keys_t *ks)
{
    k2a_key_t *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    pthread_mutex_init(&k->mu, NULL);
    k->store = ks;
    k->enabled = true;
    return k;
}

void k2a_keys_free_key(k2a_key_t *k)
{
    for (size_t i = 0; i < k->nmodels; ++i)
        free(k->models[i]);
    free(k->window);
    free(k->days);
    pthread_mutex_destroy(&k->mu);
    free(k);
}

int k2a_keys_insert(k2a_keys_t *ks, k2a_key_t *k)
{
    return link_key(ks, k);
}

/* ---- store ---- */

int k2a_keys_create(const k2a_keys_config_t *cfg, k2a_keys_backend_t *backend, k2a_keys_t **out, char *err, size_t errlen)
{
    k2a_keys_t *ks = calloc(1, sizeof(*ks));
    if (ks == NULL) {
        snprintf(err, errlen, "out of memory");
        return K2A_ENOMEM;
    }
    ks->cfg = *cfg;
    ks->cfg.client_token = NULL;
    if (ks->cfg.usage_days < 1)
        ks->cfg.usage_days = 1;
    size_t nb = 16;
    while (nb < cfg->max_keys + 1 && nb < ((size_t)1 << 24))
        nb <<= 1;
    ks->mask = nb - 1;
    ks->buckets = calloc(nb, sizeof(*ks->buckets));
    pthread_mutex_init(&ks->wmu, NULL);
    pthread_mutex_init(&ks->fmu, NULL);
    ks->backend = backend;
    if (ks->buckets == NULL) {
        k2a_keys_destroy(ks);
        snprintf(err, errlen, "out of memory");
        return K2A_ENOMEM;
    }
    if (cfg->client_token != NULL && cfg->client_token[0] != '\0') {
        k2a_key_t *k = k2a_keys_new_key(ks);
        if (k == NULL) {
            k2a_keys_destroy(ks);
            return K2A_ENOMEM;
        }
        k->builtin = true;
        strcpy(k->id, "default");
        strcpy(k->name, "default");
        strcpy(k->prefix, "(env)");
        k2a_keys_sha256(cfg->client_token, strlen(cfg->client_token), k->hash);
        k->created_at = time(NULL);
        link_key(ks, k);
        ks->builtin = k;
    }
    if (backend != NULL) {
        k2a_buf_t json = K2A_BUF_INIT(64 * 1024 * 1024);
        int r = backend->load(backend, &json, err, errlen);
        if (r == 0)
            r = k2a_keys_decode(ks, json.base != NULL ? json.base : "", json.len, err, errlen);
        else if (r == K2A_ENOTFOUND)
            r = 0;
        k2a_buf_dispose(&json);
        if (r != 0) {
            ks->backend = NULL; /* the caller keeps it */
            k2a_keys_destroy(ks);
            return K2A_ECONFIG;
        }
    }
    *out = ks;
    if (backend != NULL && backend->attach != NULL)
        backend->attach(backend, ks);
    return 0;
}

void k2a_keys_destroy(k2a_keys_t *ks)
{
    if (ks == NULL)
        return;
    if (ks->backend != NULL && ks->backend->destroy != NULL) /* a shared backend's thread stops before the keys go */
        ks->backend->destroy(ks->backend);
    ks->backend = NULL;
    for (size_t i = 0; i < ks->nall; ++i)
        k2a_keys_free_key(ks->all[i]);
    for (size_t i = 0; i < ks->nretired; ++i)
        k2a_keys_free_key(ks->retired[i]);
    free(ks->all);
    free(ks->retired);
    free(ks->buckets);
    pthread_mutex_destroy(&ks->wmu);
    pthread_mutex_destroy(&ks->fmu);
    free(ks);
}

bool k2a_keys_required(const k2a_keys_t *ks)
{
    return ks != NULL && atomic_load_explicit(&((k2a_keys_t *)ks)->nlive, memory_order_relaxed) + (ks->builtin != NULL) > 0;
}

size_t k2a_keys_count(k2a_keys_t *ks)
{
    return atomic_load_explicit(&ks->nlive, memory_order_relaxed);
}

/* ---- admission ---- */

/* Today's usage record (key mutex held), created when missing; records older than usage_days are dropped. */
k2a_key_day_t *k2a_keys_day_rec(k2a_key_t *k, int32_t day)
{
    if (k->ndays > 0 && k->days[k->ndays - 1].day >= day)
        return &k->days[k->ndays - 1]; /* today, or the clock went back: charge the latest day */
    int keep = k->store->cfg.usage_days;
    size_t drop = 0;
    while (drop < k->ndays && k->days[drop].day <= day - keep)
        ++drop;
    if (drop > 0) {
        memmove(k->days, k->days + drop, (k->ndays - drop) * sizeof(*k->days));
        k->ndays -= drop;
    }
    if (k->ndays == k->days_cap) {
        size_t cap = k->days_cap ? k->days_cap * 2 : 4;
        k2a_key_day_t *d = realloc(k->days, cap * sizeof(*d));
        if (d == NULL)
            return NULL;
        k->days = d;
        k->days_cap = cap;
    }
    k2a_key_day_t *rec = &k->days[k->ndays++];
    memset(rec, 0, sizeof(*rec));
    rec->day = day;
    return rec;
}

static k2a_key_day_t zero_day;

static const k2a_key_day_t *day_peek(const k2a_key_t *k, int32_t day)
{
    if (k->ndays > 0 && k->days[k->ndays - 1].day == day)
        return &k->days[k->ndays - 1];
    return &zero_day;
}

static k2a_keys_verdict_t check_locked(k2a_key_t *k, int64_t now_s)
{
    if (atomic_load_explicit(&k->deleted, memory_order_acquire))
        return K2A_KEYS_DELETED;
    if (!k->enabled)
        return K2A_KEYS_DISABLED;
    if (k->expires_at != 0 && now_s >= k->expires_at)
        return K2A_KEYS_EXPIRED;
    return K2A_KEYS_OK;
}

k2a_keys_verdict_t k2a_keys_check(k2a_key_t *k, int64_t now_s)
{
    pthread_mutex_lock(&k->mu);
    k2a_keys_verdict_t v = check_locked(k, now_s);
    pthread_mutex_unlock(&k->mu);
    return v;
}

/* Moves the window into a ring of cap entries, keeping the newest. */
static int window_resize(k2a_key_t *k, size_t cap)
{
    uint64_t *w = malloc(cap * sizeof(*w));
    if (w == NULL)
        return K2A_ENOMEM;
    size_t keep = k->window_len < cap ? k->window_len : cap;
    for (size_t i = 0; i < keep; ++i)
        w[i] = k->window[(k->window_head + k->window_len - keep + i) % k->window_cap];
    free(k->window);
    k->window = w;
    k->window_cap = cap;
    k->window_head = 0;
    k->window_len = keep;
    return 0;
}

/* Drops window entries older than 60 s, and makes room for one more entry unless the window holds `rpm` already. The ring
 * grows with use (doubling, up to the limit) and shrinks when the limit was lowered: a key holds one timestamp per request
 * of its last minute, not `rpm` of them. Returns whether another request fits. */
static bool window_admits(k2a_key_t *k, int64_t now_ms)
{
    size_t rpm = (size_t)k->limits.rpm;
    if (k->window_cap > rpm && window_resize(k, rpm) != 0)
        return false;
    while (k->window_len > 0 && (int64_t)k->window[k->window_head] <= now_ms - 60000) {
        k->window_head = (k->window_head + 1) % k->window_cap;
        --k->window_len;
    }
    if (k->window_len >= rpm)
        return false;
    if (k->window_len == k->window_cap) {
        size_t cap = k->window_cap ? k->window_cap * 2 : 8;
        if (window_resize(k, cap < rpm ? cap : rpm) != 0)
            return false;
    }
    return true;
}

static int64_t ceil_s(int64_t ms)
{
    return ms <= 0 ? 1 : (ms + 999) / 1000;
}

k2a_keys_verdict_t k2a_keys_admit(k2a_key_t *k, const char *model, size_t model_len, int64_t now_ms, int64_t *retry_after_s)
{
    int64_t now_s = now_ms / 1000;
    int32_t today = k2a_keys_day_of(now_s);
    *retry_after_s = 0;
    pthread_mutex_lock(&k->mu);
    k2a_keys_verdict_t v = check_locked(k, now_s);
    if (v != K2A_KEYS_OK)
        goto Refused;
    if (k->nmodels > 0 && model != NULL) {
        bool ok = false;
        for (size_t i = 0; i < k->nmodels && !ok; ++i)
            ok = k2a_keys_glob(k->models[i], model, model_len);
        if (!ok) {
            v = K2A_KEYS_MODEL;
            goto Refused;
        }
    }
    if (k->limits.concurrency > 0 && k->inflight >= k->limits.concurrency) {
        v = K2A_KEYS_CONCURRENCY;
        *retry_after_s = 1;
        goto Refused;
    }
    if (k->limits.rpm > 0) {
        if (!window_admits(k, now_ms)) {
            v = K2A_KEYS_RPM;
            *retry_after_s = k->window_len > 0 ? ceil_s((int64_t)k->window[k->window_head] + 60000 - now_ms) : 1;
            goto Refused;
        }
    }
    const k2a_key_day_t *d = day_peek(k, today);
    if (k->limits.credits_day > 0 && d->credits >= k->limits.credits_day) {
        v = K2A_KEYS_CREDITS_DAY;
        *retry_after_s = k2a_keys_next_day_s(now_s) - now_s;
        goto Refused;
    }
    if (k->limits.credits_month > 0 && k->month == k2a_keys_month_of(now_s) && k->month_credits >= k->limits.credits_month) {
        v = K2A_KEYS_CREDITS_MONTH;
        *retry_after_s = k2a_keys_next_month_s(now_s) - now_s;
        goto Refused;
    }
    if (k->limits.tokens_day > 0 && d->input_tokens + d->output_tokens >= k->limits.tokens_day) {
        v = K2A_KEYS_TOKENS_DAY;
        *retry_after_s = k2a_keys_next_day_s(now_s) - now_s;
        goto Refused;
    }
    /* admitted: count it */
    if (k->limits.rpm > 0) {
        k->window[(k->window_head + k->window_len) % k->window_cap] = (uint64_t)now_ms;
        ++k->window_len;
    }
    ++k->inflight;
    k2a_key_day_t *rec = k2a_keys_day_rec(k, today);
    if (rec != NULL)
        ++rec->requests;
    ++k->m_requests;
    k->last_used_at = now_s;
    pthread_mutex_unlock(&k->mu);
    atomic_store_explicit(&k->store->dirty, true, memory_order_relaxed);
    return K2A_KEYS_OK;

Refused:
    ++k->m_rejected;
    pthread_mutex_unlock(&k->mu);
    return v;
}

void k2a_keys_release(k2a_keys_t *ks, k2a_key_t *k, bool failed, int64_t now_ms)
{
    pthread_mutex_lock(&k->mu);
    if (k->inflight > 0)
        --k->inflight;
    if (failed) {
        k2a_key_day_t *rec = k2a_keys_day_rec(k, k2a_keys_day_of(now_ms / 1000));
        if (rec != NULL)
            ++rec->errors;
        ++k->m_errors;
    }
    pthread_mutex_unlock(&k->mu);
    if (failed && ks != NULL)
        atomic_store_explicit(&ks->dirty, true, memory_order_relaxed);
    if (failed && ks != NULL && ks->backend != NULL && ks->backend->usage_add != NULL) {
        k2a_key_day_t delta = {.day = k2a_keys_day_of(now_ms / 1000), .errors = 1};
        ks->backend->usage_add(ks->backend, k->id, &delta);
    }
}

void k2a_keys_charge(k2a_keys_t *ks, k2a_key_t *k, int64_t input_tokens, int64_t output_tokens, double credits, int64_t now_ms)
{
    if (input_tokens < 0)
        input_tokens = 0;
    if (output_tokens < 0)
        output_tokens = 0;
    if (!(credits >= 0)) /* also NaN */
        credits = 0;
    int64_t now_s = now_ms / 1000;
    int32_t month = k2a_keys_month_of(now_s);
    pthread_mutex_lock(&k->mu);
    k2a_key_day_t *rec = k2a_keys_day_rec(k, k2a_keys_day_of(now_s));
    if (rec != NULL) {
        rec->input_tokens += input_tokens;
        rec->output_tokens += output_tokens;
        rec->credits += credits;
    }
    if (k->month != month) {
        k->month = month;
        k->month_credits = 0;
    }
    k->month_credits += credits;
    k->m_input_tokens += input_tokens;
    k->m_output_tokens += output_tokens;
    k->m_credits += credits;
    pthread_mutex_unlock(&k->mu);
    if (ks != NULL) {
        atomic_store_explicit(&ks->dirty, true, memory_order_relaxed);
        if (ks->backend != NULL && ks->backend->usage_add != NULL) {
            k2a_key_day_t delta = {
                .day = k2a_keys_day_of(now_s), .input_tokens = input_tokens, .output_tokens = output_tokens, .credits = credits};
            ks->backend->usage_add(ks->backend, k->id, &delta);
        }
    }
}

int k2a_keys_verdict_status(k2a_keys_verdict_t v)
{
    switch (v) {
    case K2A_KEYS_OK:
        return 200;
    case K2A_KEYS_DISABLED:
    case K2A_KEYS_EXPIRED:
    case K2A_KEYS_DELETED:
        return 401;
    case K2A_KEYS_MODEL:
        return 403;
    default:
        return 429;
    }
}

const char *k2a_keys_verdict_message(k2a_keys_verdict_t v)
{
    switch (v) {
    case K2A_KEYS_OK:
        return "ok";
    case K2A_KEYS_DISABLED:
        return "this API key is disabled";
    case K2A_KEYS_EXPIRED:
        return "this API key has expired";
    case K2A_KEYS_DELETED:
        return "invalid API key";
    case K2A_KEYS_MODEL:
        return "this API key may not use this model";
    case K2A_KEYS_RPM:
        return "this API key is over its limit of requests per minute";
    case K2A_KEYS_CONCURRENCY:
        return "this API key is over its limit of concurrent requests";
    case K2A_KEYS_CREDITS_DAY:
        return "this API key has used its Kiro credits for today (UTC)";
    case K2A_KEYS_CREDITS_MONTH:
        return "this API key has used its Kiro credits for this month (UTC)";
    case K2A_KEYS_TOKENS_DAY:
        return "this API key has used its tokens for today (UTC)";
    }
    return "refused";
}

/* ---- management ---- */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The next version of a key's record: the wall clock, and always above the previous one (key mutex or wmu held). */
static int64_t next_ver(const k2a_key_t *k)
{
    int64_t now = wall_ms();
    return now > k->ver ? now : k->ver + 1;
}

static bool name_taken(k2a_keys_t *ks, const char *name, const k2a_key_t *except)
{
    for (size_t i = 0; i < ks->nall; ++i)
        if (ks->all[i] != except && strcmp(ks->all[i]->name, name) == 0)
            return true;
    return false;
}

static k2a_key_t *by_id(k2a_keys_t *ks, const char *id)
{
    for (size_t i = 0; i < ks->nall; ++i)
        if (strcmp(ks->all[i]->id, id) == 0)
            return ks->all[i];
    return NULL;
}

int k2a_keys_set_models(k2a_key_t *k, char *const *models, size_t n)
{
    char *copy[K2A_KEYS_MODELS_MAX];
    if (n > K2A_KEYS_MODELS_MAX)
        return K2A_EINVAL;
    for (size_t i = 0; i < n; ++i)
        if ((copy[i] = strdup(models[i])) == NULL) {
            while (i-- > 0)
                free(copy[i]);
            return K2A_ENOMEM;
        }
    for (size_t i = 0; i < k->nmodels; ++i)
        free(k->models[i]);
    memcpy(k->models, copy, n * sizeof(*copy));
    k->nmodels = n;
    return 0;
}

static void hexify(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* 40 base62 characters from RAND_bytes, without modulo bias (bytes >= 248 are drawn again). */
static int random_secret(char out[K2A_KEYS_SECRET_LEN + 1])
{
    static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    memcpy(out, "k2a-", 4);
    size_t n = 4;
    while (n < K2A_KEYS_SECRET_LEN) {
        unsigned char buf[64];
        if (RAND_bytes(buf, sizeof(buf)) != 1)
            return K2A_EINTERNAL;
        for (size_t i = 0; i < sizeof(buf) && n < K2A_KEYS_SECRET_LEN; ++i)
            if (buf[i] < 248)
                out[n++] = b62[buf[i] % 62];
        OPENSSL_cleanse(buf, sizeof(buf));
    }
    out[n] = '\0';
    return 0;
}

int k2a_keys_add(k2a_keys_t *ks, const k2a_keys_spec_t *spec, int64_t now_s, char secret_out[K2A_KEYS_SECRET_LEN + 1],
                 char id_out[K2A_KEYS_ID_LEN + 1], char *err, size_t errlen)
{
    int r;
    if (!spec->has_name) {
        snprintf(err, errlen, "name is required");
        return K2A_EINVAL;
    }
    if ((r = k2a_keys_valid_name(spec->name, strlen(spec->name), err, errlen)) != 0)
        return r;
    if (spec->has_limits && (r = k2a_keys_valid_limits(&spec->limits, err, errlen)) != 0)
        return r;
    k2a_key_t *k = k2a_keys_new_key(ks);
    if (k == NULL)
        return K2A_ENOMEM;
    unsigned char idb[K2A_KEYS_ID_LEN / 2];
    if (random_secret(secret_out) != 0 || RAND_bytes(idb, sizeof(idb)) != 1) {
        k2a_keys_free_key(k);
        snprintf(err, errlen, "no randomness available");
        return K2A_EINTERNAL;
    }
    hexify(idb, sizeof(idb), k->id);
    k2a_keys_sha256(secret_out, K2A_KEYS_SECRET_LEN, k->hash);
    memcpy(k->prefix, secret_out, K2A_KEYS_PREFIX_LEN);
    k->prefix[K2A_KEYS_PREFIX_LEN] = '\0';
    snprintf(k->name, sizeof(k->name), "%s", spec->name);
    k->created_at = now_s;
    k->ver = next_ver(k);
    k->enabled = spec->has_enabled ? spec->enabled : true;
    k->expires_at = spec->has_expires ? spec->expires_at : 0;
    if (spec->has_limits)
        k->limits = spec->limits;
    if (spec->has_models && (r = k2a_keys_set_models(k, spec->models, spec->nmodels)) != 0) {
        k2a_keys_free_key(k);
        snprintf(err, errlen, "too many model patterns");
        return r;
    }
    pthread_mutex_lock(&ks->wmu);
    if (atomic_load_explicit(&ks->nlive, memory_order_relaxed) >= ks->cfg.max_keys) {
        r = K2A_ETOOBIG;
        snprintf(err, errlen, "the gateway holds its maximum of %zu keys (KIRO_KEYS_MAX)", ks->cfg.max_keys);
    } else if (name_taken(ks, k->name, NULL)) {
        r = K2A_EINVAL;
        snprintf(err, errlen, "a key named '%s' exists already", k->name);
    } else if ((r = link_key(ks, k)) == 0) {
        atomic_fetch_add_explicit(&ks->nlive, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&ks->wmu);
    if (r != 0) {
        k2a_keys_free_key(k);
        OPENSSL_cleanse(secret_out, K2A_KEYS_SECRET_LEN);
        return r;
    }
    memcpy(id_out, k->id, K2A_KEYS_ID_LEN + 1);
    return 0;
}

int k2a_keys_update(k2a_keys_t *ks, const char *id, const k2a_keys_spec_t *spec, char *err, size_t errlen)
{
    int r = 0;
    if (spec->has_name && (r = k2a_keys_valid_name(spec->name, strlen(spec->name), err, errlen)) != 0)
        return r;
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = by_id(ks, id);
    if (k == NULL || k->builtin) {
        pthread_mutex_unlock(&ks->wmu);
        snprintf(err, errlen, k == NULL ? "no key with this id" : "the built-in key (KIRO_CLIENT_TOKEN) cannot be changed");
        return k == NULL ? K2A_ENOTFOUND : K2A_EINVAL;
    }
    if (spec->has_name && name_taken(ks, spec->name, k)) {
        pthread_mutex_unlock(&ks->wmu);
        snprintf(err, errlen, "a key named '%s' exists already", spec->name);
        return K2A_EINVAL;
    }
    pthread_mutex_lock(&k->mu);
    k2a_key_limits_t l = k->limits;
    if (spec->has_limits) {
        if (spec->has_limit[0])
            l.rpm = spec->limits.rpm;
        if (spec->has_limit[1])
            l.concurrency = spec->limits.concurrency;
        if (spec->has_limit[2])
            l.credits_day = spec->limits.credits_day;
        if (spec->has_limit[3])
            l.credits_month = spec->limits.credits_month;
        if (spec->has_limit[4])
            l.tokens_day = spec->limits.tokens_day;
        r = k2a_keys_valid_limits(&l, err, errlen);
    }
    if (r == 0 && spec->has_models && (r = k2a_keys_set_models(k, spec->models, spec->nmodels)) != 0)
        snprintf(err, errlen, "too many model patterns");
    if (r == 0) {
        k->limits = l;
        if (spec->has_name)
            snprintf(k->name, sizeof(k->name), "%s", spec->name);
        if (spec->has_enabled)
            k->enabled = spec->enabled;
        if (spec->has_expires)
            k->expires_at = spec->expires_at;
        k->ver = next_ver(k);
    }
    pthread_mutex_unlock(&k->mu);
    pthread_mutex_unlock(&ks->wmu);
    return r;
}

int k2a_keys_delete(k2a_keys_t *ks, const char *id)
{
    return k2a_keys_delete_at(ks, id, 0, false);
}

int k2a_keys_delete_at(k2a_keys_t *ks, const char *id, int64_t ver, bool synced)
{
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = by_id(ks, id);
    if (k == NULL || k->builtin) {
        pthread_mutex_unlock(&ks->wmu);
        return k == NULL ? K2A_ENOTFOUND : K2A_EINVAL;
    }
    k2a_key_t **r = realloc(ks->retired, (ks->nretired + 1) * sizeof(*r));
    if (r == NULL) {
        pthread_mutex_unlock(&ks->wmu);
        return K2A_ENOMEM;
    }
    ks->retired = r;
    atomic_store_explicit(&k->deleted, true, memory_order_release);
    unlink_key(ks, k);
    ks->retired[ks->nretired++] = k; /* requests may still hold it: freed with the store */
    pthread_mutex_lock(&k->mu);      /* what it no longer needs goes now: a retired key is a few hundred bytes */
    k->ver = ver > 0 ? ver : next_ver(k);
    if (synced)
        k->synced_ver = k->ver;
    free(k->window);
    k->window = NULL;
    k->window_cap = k->window_len = k->window_head = 0;
    free(k->days);
    k->days = NULL;
    k->ndays = k->days_cap = 0;
    pthread_mutex_unlock(&k->mu);
    atomic_fetch_sub_explicit(&ks->nlive, 1, memory_order_relaxed);
    atomic_store_explicit(&ks->dirty, true, memory_order_relaxed);
    pthread_mutex_unlock(&ks->wmu);
    return 0;
}

int k2a_keys_name_of(k2a_keys_t *ks, const char *id, char name[K2A_KEYS_NAME_MAX + 1])
{
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = by_id(ks, id);
    if (k != NULL)
        memcpy(name, k->name, K2A_KEYS_NAME_MAX + 1);
    pthread_mutex_unlock(&ks->wmu);
    return k != NULL ? 0 : K2A_ENOTFOUND;
}

k2a_key_t *k2a_keys_by_id(k2a_keys_t *ks, const char *id)
{
    return by_id(ks, id);
}

int k2a_keys_link_live(k2a_keys_t *ks, k2a_key_t *k)
{
    int r = link_key(ks, k);
    if (r == 0)
        atomic_fetch_add_explicit(&ks->nlive, 1, memory_order_relaxed);
    return r;
}

void k2a_keys_limits_of(k2a_key_t *k, k2a_key_limits_t *out)
{
    pthread_mutex_lock(&k->mu);
    *out = k->limits;
    pthread_mutex_unlock(&k->mu);
}

void k2a_keys_admit_undo(k2a_key_t *k, int64_t now_ms)
{
    pthread_mutex_lock(&k->mu);
    if (k->inflight > 0)
        --k->inflight;
    if (k->limits.rpm > 0 && k->window_len > 0) /* the newest entry: the same minute, whichever request it was */
        --k->window_len;
    int32_t today = k2a_keys_day_of(now_ms / 1000);
    if (k->ndays > 0 && k->days[k->ndays - 1].day == today && k->days[k->ndays - 1].requests > 0)
        --k->days[k->ndays - 1].requests;
    if (k->m_requests > 0)
        --k->m_requests;
    ++k->m_rejected;
    pthread_mutex_unlock(&k->mu);
}
