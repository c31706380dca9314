/*
 * The error matrix, backoff arithmetic, the getUsageLimits credit algorithm and e-mail masking (see health.h).
 * Upstream error bodies are small JSON objects ({"message":..,"reason":..}, or OIDC's {"error":..,
 * "error_description":..}); they are parsed with yajl_tree from a bounded NUL-terminated copy, and a body that
 * is not JSON is matched as text.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "pool/health.h"

#define MAX_PARSED_BODY (64 * 1024)

const char *k2a_pool_action_name(k2a_pool_action_t a)
{
    static const char *const names[] = {"ok",      "client",   "auth",   "forbidden", "quota",   "throttle", "transient", "local",
                                        "invalid", "canceled", "config", "model",     "flagged", "banned",   "capacity"};
    return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "unknown";
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
    return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

/* Copies printable text (control characters become spaces), at most outsz - 1 bytes, cut on a UTF-8 boundary. */
static void copy_text(char *out, size_t outsz, const char *s, size_t len)
{
    size_t n = len < outsz - 1 ? len : outsz - 1;
    if (n < len)
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            --n;
    for (size_t i = 0; i < n; ++i)
        out[i] = (unsigned char)s[i] < 0x20 ? ' ' : s[i];
    out[n] = '\0';
}

static bool contains(const char *hay, size_t len, const char *needle)
{
    return hay != NULL && memmem(hay, len, needle, strlen(needle)) != NULL;
}

/* Fills message and reason from a Kiro/OIDC error body. */
static void parse_error_body(const char *body, size_t len, k2a_verdict_t *out)
{
    out->message[0] = out->reason[0] = '\0';
    if (body == NULL || len == 0)
        return;
    if (len <= MAX_PARSED_BODY) {
        char *copy = malloc(len + 1);
        if (copy != NULL) {
            memcpy(copy, body, len);
            copy[len] = '\0';
            yajl_val v = yajl_tree_parse(copy, NULL, 0);
            free(copy);
            if (v != NULL && YAJL_IS_OBJECT(v)) {
                yajl_val errobj = obj_get(v, "error");
                const char *msg = obj_str(v, "message");
                if (msg == NULL)
                    msg = obj_str(v, "Message");
                if (msg == NULL)
                    msg = obj_str(v, "error_description");
                if (msg == NULL && errobj != NULL)
                    msg = obj_str(errobj, "message");
                const char *reason = obj_str(v, "reason");
                if (reason == NULL && errobj != NULL)
                    reason = YAJL_IS_STRING(errobj) ? YAJL_GET_STRING(errobj) : obj_str(errobj, "reason");
                if (reason == NULL)
                    reason = obj_str(v, "__type");
                if (msg != NULL)
                    copy_text(out->message, sizeof(out->message), msg, strlen(msg));
                if (reason != NULL) {
                    const char *hash = strrchr(reason, '#'); /* "com.amazon...#ThrottlingException" */
                    reason = hash != NULL ? hash + 1 : reason;
                    copy_text(out->reason, sizeof(out->reason), reason, strlen(reason));
                }
                yajl_tree_free(v);
                return;
            }
            yajl_tree_free(v);
        }
    }
    copy_text(out->message, sizeof(out->message), body, len);
}

static void set(k2a_verdict_t *out, k2a_pool_action_t action, int err, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void set(k2a_verdict_t *out, k2a_pool_action_t action, int err, const char *fmt, ...)
{
    va_list ap;
    out->action = action;
    out->err = err;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
    va_end(ap);
}

/* Transport errors: which are the upstream's (transient, the account cools briefly) and which are ours. */
static void classify_transport(int err, k2a_verdict_t *out)
{
    switch (err) {
    case K2A_ECANCELED:
        set(out, K2A_ACT_CANCELED, err, "canceled");
        break;
    case K2A_EDNS:
    case K2A_EDNS_TIMEOUT:
    case K2A_EPROXY:
    case K2A_ETLS_VERIFY:
    case K2A_EBAD_URL:
    case K2A_ENOMEM:
    case K2A_ENOFD:
    case K2A_EINVAL:
    case K2A_EBUSY:
        set(out, K2A_ACT_LOCAL, err, "%s", k2a_strerror(err));
        break;
    default: /* connect refused/timeout, TLS handshake, resets, timeouts, malformed responses */
        set(out, K2A_ACT_TRANSIENT, err, "%s", k2a_strerror(err));
        break;
    }
}

/* The error matrix of generateAssistantResponse (kiro-protocol-2026 §9), one row per Kiro answer, first match wins. A row
 * matches a status range and, when given, the body's reason (exact) and/or a text the body contains. `what` starts the
 * detail; with `say` the status and Kiro's message (or reason) follow in parentheses. What each action does to the
 * account and the request is in health.h and README "Kiro's errors". */
typedef struct st_row_t {
    int st_lo, st_hi;
    const char *reason; /* exact, after the "#" of a __type; NULL = any */
    const char *text;   /* contained in the body; NULL = any */
    k2a_pool_action_t action;
    int err; /* the K2A_E* class the client gets when no other account serves the request */
    const char *what;
    bool say;
} row_t;

static const row_t rows[] = {
    /* quota: exhausted until the reset date, fail over */
    {400, 402, "OVERAGE_REQUEST_LIMIT_EXCEEDED", NULL, K2A_ACT_QUOTA, K2A_EEXHAUSTED,
     "overage limit reached (OVERAGE_REQUEST_LIMIT_EXCEEDED)", false},
    {0, 999, "MONTHLY_REQUEST_COUNT", NULL, K2A_ACT_QUOTA, K2A_EEXHAUSTED, "quota exhausted (MONTHLY_REQUEST_COUNT)", false},
    {0, 999, NULL, "MONTHLY_REQUEST_COUNT", K2A_ACT_QUOTA, K2A_EEXHAUSTED, "quota exhausted (MONTHLY_REQUEST_COUNT)", false},
    {402, 402, NULL, NULL, K2A_ACT_QUOTA, K2A_EEXHAUSTED, "quota exhausted (402)", false},
    /* the model is busy everywhere (per model, not per account): no penalty, fail over, the client is told to retry */
    {400, 429, "INSUFFICIENT_MODEL_CAPACITY", NULL, K2A_ACT_CAPACITY, K2A_EUPSTREAM_CAPACITY,
     "model at capacity (INSUFFICIENT_MODEL_CAPACITY)", false},
    {500, 599, "MODEL_TEMPORARILY_UNAVAILABLE", NULL, K2A_ACT_CAPACITY, K2A_EUPSTREAM_CAPACITY,
     "model temporarily unavailable (MODEL_TEMPORARILY_UNAVAILABLE)", false},
    /* the account is flagged: a long cooling, never a fast retry (that is what gets accounts suspended) */
    {429, 429, NULL, "suspicious activity", K2A_ACT_FLAGGED, K2A_ETHROTTLED, "flagged for suspicious activity (429)", false},
    {429, 429, NULL, "credit limit", K2A_ACT_THROTTLE, K2A_ETHROTTLED, "rate limited", true},
    {429, 429, NULL, NULL, K2A_ACT_THROTTLE, K2A_ETHROTTLED, "rate limited (429)", false},
    /* the account's profileArn/identity does not fit: its configuration */
    {400, 403, NULL, "profileArn is required", K2A_ACT_CONFIG, K2A_EACCOUNT_INVALID, "profileArn not accepted", true},
    {400, 403, NULL, "User is not authorized to make this call", K2A_ACT_CONFIG, K2A_EACCOUNT_INVALID, "profileArn not accepted",
     true},
    /* suspended, locked: out until an operator acts */
    {403, 403, "TEMPORARILY_SUSPENDED", NULL, K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "suspended by Kiro (TEMPORARILY_SUSPENDED)",
     false},
    {403, 403, NULL, "temporarily suspended", K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "suspended by Kiro", true},
    {403, 403, NULL, "temporarily is suspended", K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "suspended by Kiro", true},
    {403, 403, NULL, "security precaution", K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "locked by Kiro", true},
    {423, 423, NULL, NULL, K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "account locked (423)", false},
    /* the access token: refresh and retry once on the same account */
    {401, 401, NULL, NULL, K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH, "access token rejected (401)", false},
    {403, 403, NULL, "bearer token included in the request is invalid", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH,
     "access token rejected (403)", false},
    {403, 403, NULL, "The security token included in the request is expired", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH,
     "access token rejected (403)", false},
    {403, 403, NULL, "ExpiredTokenException", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH, "access token rejected (403)", false},
    {403, 403, NULL, "Invalid token", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH, "access token rejected (403 Invalid token)", false},
    {403, 403, NULL, NULL, K2A_ACT_FORBIDDEN, K2A_EACCOUNT_INVALID, "account forbidden", true},
    /* per account: this account may not use the model */
    {400, 400, "INVALID_MODEL_ID", NULL, K2A_ACT_MODEL, K2A_EMODEL_UNAVAILABLE,
     "model not available to this account (INVALID_MODEL_ID)", false},
    /* the client's request: the same on every account, so no failover and no penalty */
    {400, 400, "CONTENT_LENGTH_EXCEEDS_THRESHOLD", NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_CONTENT_LENGTH,
     "input too long (CONTENT_LENGTH_EXCEEDS_THRESHOLD)", false},
    {400, 400, NULL, "CONTENT_LENGTH_EXCEEDS", K2A_ACT_CLIENT, K2A_EUPSTREAM_CONTENT_LENGTH,
     "input too long (CONTENT_LENGTH_EXCEEDS_THRESHOLD)", false},
    {400, 400, "TOOL_USE_RESULT_MISMATCH", NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, "tool uses and results do not pair up",
     true},
    {400, 400, "TOOL_SCHEMA_INVALID", NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, "a tool schema was refused", true},
    {400, 400, "REQUEST_BODY_INVALID", NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, "a tool was refused", true},
    {400, 400, "TOOL_CONFIG_MISSING", NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, "tools missing for the history's tool calls",
     true},
    {400, 400, NULL, NULL, K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, "rejected as bad request", true},
    /* Kiro's side: a short cooling, fail over */
    {408, 408, NULL, NULL, K2A_ACT_TRANSIENT, K2A_EUPSTREAM_SERVER, "upstream 408", false},
    {500, 599, NULL, NULL, K2A_ACT_TRANSIENT, K2A_EUPSTREAM_SERVER, "upstream %d", false},
};

const char *k2a_pool_classify_row(size_t i, int *st_lo, int *st_hi, const char **reason, const char **text,
                                  k2a_pool_action_t *action)
{
    if (i >= sizeof(rows) / sizeof(rows[0]))
        return NULL;
    *st_lo = rows[i].st_lo;
    *st_hi = rows[i].st_hi;
    *reason = rows[i].reason;
    *text = rows[i].text;
    *action = rows[i].action;
    return rows[i].what;
}

void k2a_pool_classify(int transport_err, int status, const char *body, size_t len, k2a_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    if (transport_err != 0) {
        classify_transport(transport_err, out);
        return;
    }
    out->status = status;
    if (status >= 200 && status < 300) {
        set(out, K2A_ACT_OK, 0, "ok");
        return;
    }
    parse_error_body(body, len, out);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); ++i) {
        const row_t *r = &rows[i];
        if (status < r->st_lo || status > r->st_hi || (r->reason != NULL && strcmp(out->reason, r->reason) != 0) ||
            (r->text != NULL && !contains(body, len, r->text)))
            continue;
        if (strstr(r->what, "%d") != NULL) {
            set(out, r->action, r->err, "upstream %d", status);
        } else if (r->say) {
            const char *why = out->message[0] ? out->message : out->reason[0] ? out->reason : "no message";
            if (r->action == K2A_ACT_CLIENT && r->err == K2A_EUPSTREAM_BAD_REQUEST && r->reason == NULL && !out->message[0])
                why = "Improperly formed request.";
            if (r->action == K2A_ACT_FORBIDDEN && out->reason[0])
                why = out->reason;
            set(out, r->action, r->err, "%s (%d %.150s)", r->what, status, why);
        } else {
            set(out, r->action, r->err, "%s", r->what);
        }
        return;
    }
    /* 404, 405, 413, ...: the same request fails on every account. */
    set(out, K2A_ACT_CLIENT, K2A_EHTTP_STATUS, "upstream %d%s%.150s", status, out->message[0] ? " " : "", out->message);
}

void k2a_pool_classify_refresh(int transport_err, int status, const char *body, size_t len, k2a_verdict_t *out)
{
    memset(out, 0, sizeof(*out));
    if (transport_err != 0) {
        classify_transport(transport_err, out);
        if (out->action == K2A_ACT_TRANSIENT)
            snprintf(out->detail, sizeof(out->detail), "token refresh failed: %s", k2a_strerror(transport_err));
        if (out->action != K2A_ACT_CANCELED)
            out->err = out->action == K2A_ACT_LOCAL ? transport_err : K2A_EREFRESH;
        return;
    }
    out->status = status;
    if (status >= 200 && status < 300) {
        set(out, K2A_ACT_OK, 0, "ok");
        return;
    }
    parse_error_body(body, len, out);
    const char *why = out->message[0] ? out->message : out->reason[0] ? out->reason : "";
    if (status == 400 || status == 401 || status == 403) {
        /* invalid_grant / "Invalid refresh token provided" / invalid_client: retrying the same request cannot help. */
        const char *what = strcmp(out->reason, "invalid_client") == 0 || strcmp(out->reason, "unauthorized_client") == 0
                               ? "IdC client rejected"
                               : "refresh token rejected";
        set(out, K2A_ACT_INVALID, K2A_EACCOUNT_INVALID, "%s (%d%s%.150s)", what, status, why[0] ? " " : "", why);
    } else if (status == 429) {
        set(out, K2A_ACT_THROTTLE, K2A_EREFRESH, "token refresh rate limited (429)");
    } else {
        set(out, K2A_ACT_TRANSIENT, K2A_EREFRESH, "token refresh failed (%d%s%.150s)", status, why[0] ? " " : "", why);
    }
}

uint64_t k2a_pool_backoff_ms(uint64_t base_ms, uint64_t cap_ms, unsigned n, unsigned jitter_pct, uint64_t rnd)
{
    uint64_t d = base_ms;
    for (unsigned i = 0; i < n && d < cap_ms; ++i)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    if (jitter_pct > 0 && d > 0) {
        /* factor in [1 - j, 1 + j] with 1/10000 resolution */
        uint64_t span = (uint64_t)jitter_pct * 200 + 1; /* 0 .. 2 * j * 100 */
        int64_t per10k = (int64_t)(rnd % span) - (int64_t)jitter_pct * 100;
        int64_t delta = (int64_t)d * per10k / 10000;
        d = (uint64_t)((int64_t)d + delta);
    }
    return d == 0 && base_ms > 0 ? 1 : d;
}

uint64_t k2a_pool_refresh_ahead_ms(uint64_t lifetime_ms, unsigned pct, unsigned jitter_pct, uint64_t rnd)
{
    int64_t at = (int64_t)(lifetime_ms * pct / 100);
    if (jitter_pct > 0) {
        uint64_t span = (uint64_t)jitter_pct * 200 + 1;
        int64_t per10k = (int64_t)(rnd % span) - (int64_t)jitter_pct * 100;
        at += (int64_t)lifetime_ms * per10k / 10000;
    }
    if (lifetime_ms > 2000 && at > (int64_t)lifetime_ms - 1000)
        at = (int64_t)lifetime_ms - 1000;
    if (at < 1000)
        at = lifetime_ms >= 2000 ? 1000 : (int64_t)lifetime_ms / 2;
    return (uint64_t)at;
}

int64_t k2a_pool_next_month_utc_ms(int64_t now_ms)
{
    time_t now = (time_t)(now_ms / 1000);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (++tm.tm_mon == 12) {
        tm.tm_mon = 0;
        ++tm.tm_year;
    }
    return (int64_t)timegm(&tm) * 1000;
}

static bool num_of(yajl_val v, double *out)
{
    if (v == NULL || !YAJL_IS_NUMBER(v))
        return false;
    *out = YAJL_IS_DOUBLE(v) ? YAJL_GET_DOUBLE(v) : (double)YAJL_GET_INTEGER(v);
    return true;
}

/* The *WithPrecision field, else the integer one, else 0. */
static double precise(yajl_val obj, const char *key)
{
    char name[64];
    double d;
    snprintf(name, sizeof(name), "%sWithPrecision", key);
    if (num_of(obj_get(obj, name), &d))
        return d;
    if (num_of(obj_get(obj, key), &d))
        return d;
    return 0;
}

int k2a_pool_parse_usage(const char *body, size_t len, k2a_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    if (body == NULL || len == 0 || len > 1024 * 1024)
        return K2A_EUPSTREAM_EVENT;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return K2A_ENOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    yajl_val v = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        return K2A_EUPSTREAM_EVENT;
    }
    double d;
    if (num_of(obj_get(v, "nextDateReset"), &d))
        out->next_reset_ms = (int64_t)(d * 1000);
    const char *email = obj_str(obj_get(v, "userInfo"), "email");
    if (email != NULL)
        copy_text(out->email, sizeof(out->email), email, strlen(email));
    const char *title = obj_str(obj_get(v, "subscriptionInfo"), "subscriptionTitle");
    if (title != NULL)
        copy_text(out->subscription, sizeof(out->subscription), title, strlen(title));
    yajl_val list = obj_get(v, "usageBreakdownList");
    if (list != NULL && YAJL_IS_ARRAY(list)) {
        for (size_t i = 0; i < list->u.array.len; ++i) {
            yajl_val b = list->u.array.values[i];
            const char *rt = obj_str(b, "resourceType");
            if (rt == NULL || strcmp(rt, "CREDIT") != 0)
                continue;
            double total = 0, limit = 0, used = 0;
            yajl_val trial = obj_get(b, "freeTrialInfo");
            const char *tstatus = obj_str(trial, "freeTrialStatus");
            if (tstatus != NULL && strcmp(tstatus, "ACTIVE") == 0) {
                double tl = precise(trial, "usageLimit"), tu = precise(trial, "currentUsage");
                total += tl - tu;
                limit += tl;
                used += tu;
            }
            double bl = precise(b, "usageLimit"), bu = precise(b, "currentUsage");
            total += bl - bu;
            limit += bl;
            used += bu;
            out->has_credit = true;
            out->remaining = total > 0 ? total : 0;
            out->limit = limit;
            out->used = used;
            if (num_of(obj_get(b, "nextDateReset"), &d))
                out->next_reset_ms = (int64_t)(d * 1000);
            break;
        }
    }
    yajl_tree_free(v);
    return 0;
}

void k2a_pool_mask_email(const char *email, char *out, size_t outsz)
{
    const char *at = strchr(email, '@');
    size_t len = strlen(email);
    if (outsz == 0)
        return;
    if (at == NULL || at == email || at[1] == '\0' || strchr(at + 1, '@') != NULL || len >= 256) {
        snprintf(out, outsz, "%s", email);
        return;
    }
    char buf[300];
    size_t o = 0, local = (size_t)(at - email);
    for (size_t i = 0; i < local; ++i)
        buf[o++] = local <= 4 ? '*' : (i < 2 || i >= local - 2) ? email[i] : '*';
    buf[o++] = '@';
    const char *dom = at + 1;
    size_t labels = 1;
    for (const char *p = dom; *p; ++p)
        labels += *p == '.';
    if (labels == 1) {
        for (const char *p = dom; *p; ++p)
            buf[o++] = '*';
    } else {
        /* star every label but the last `keep` (1 for two labels, 2 for three or more) */
        size_t keep = labels == 2 ? 1 : 2, label = 0;
        for (const char *p = dom; *p; ++p) {
            if (*p == '.') {
                ++label;
                buf[o++] = '.';
            } else {
                buf[o++] = label < labels - keep ? '*' : *p;
            }
        }
    }
    buf[o] = '\0';
    snprintf(out, outsz, "%s", buf);
}
