/*
 * Read-only views of the pool: the /api/tokens JSON (kiro2api-compatible top level, richer per account)
 * and the Prometheus lines for /metrics. Both are rendered from memory; neither triggers a refresh or an
 * upstream call. No secret is ever rendered: refresh tokens appear as "****" + their last 4 characters,
 * e-mails masked as kiro2api masks them, metric labels carry the index and the description only.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/internal.h"

static const char *const errclass_names[K2A_ERRC_MAX] = {"auth",   "forbidden", "quota",  "throttle", "transient",
                                                         "client", "local",     "stream", "refresh"};

static void iso_time(int64_t ms, char *out, size_t outsz)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, outsz, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void put_time(k2a_buf_t *out, const char *key, int64_t ms)
{
    char ts[40];
    if (ms <= 0) {
        k2a_buf_appendf(out, ",\"%s\":null", key);
        return;
    }
    iso_time(ms, ts, sizeof(ts));
    k2a_buf_appendf(out, ",\"%s\":\"%s\"", key, ts);
}

static void put_str(k2a_buf_t *out, const char *key, const char *v)
{
    if (v == NULL || v[0] == '\0') {
        k2a_buf_appendf(out, ",\"%s\":null", key);
        return;
    }
    k2a_buf_appendf(out, ",\"%s\":\"", key);
    k2a_buf_append_json_escaped(out, v, strlen(v));
    k2a_buf_appendstr(out, "\"");
}

static const char *kiro2api_status(const k2a_account_t *a)
{
    switch (a->state) {
    case K2A_ACCOUNT_OK:
        return "active";
    case K2A_ACCOUNT_COOLING:
        return "cooling";
    case K2A_ACCOUNT_EXHAUSTED:
        return "exhausted";
    case K2A_ACCOUNT_DISABLED:
        return "disabled";
    default:
        return "error";
    }
}

int k2a_pool_render_tokens_json(k2a_pool_t *p, k2a_buf_t *out)
{
    int64_t now = k2a_pool_now_ms();
    char ts[40];
    size_t active = 0;
    unsigned inflight = 0;
    uint64_t requests = 0, errors = 0;
    double remaining = 0, consumed = 0;
    bool any_usage = false;
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        active += a->state == K2A_ACCOUNT_OK;
        inflight += a->inflight;
        requests += a->requests;
        errors += a->errors;
        consumed += a->credits_consumed;
        if (a->usage_known) {
            remaining += a->credits_remaining;
            any_usage = true;
        }
    }
    iso_time(now, ts, sizeof(ts));
    k2a_buf_appendf(out, "{\"timestamp\":\"%s\",\"total_tokens\":%zu,\"active_tokens\":%zu,\"tokens\":[", ts, p->naccounts, active);
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        char tail[16], email[160];
        k2a_mask_secret(a->refresh_token, strlen(a->refresh_token), tail, sizeof(tail));
        k2a_buf_appendf(out, "%s{\"index\":%zu", i ? "," : "", a->index);
        put_str(out, "description", a->cfg.description);
        k2a_buf_appendf(out, ",\"auth_type\":\"%s\",\"status\":\"%s\",\"state\":\"%s\",\"refreshing\":%s",
                        k2a_auth_kind_name(a->cfg.auth, a->cfg.builder_id), kiro2api_status(a), k2a_account_state_name(a->state),
                        a->refreshing ? "true" : "false");
        put_time(out, "state_until", a->until);
        put_str(out, "state_reason", a->reason);
        k2a_buf_appendf(out, ",\"token_preview\":\"%s\"", tail);
        /* where and as whom the account is called: an ARN is no secret, and a wrong one is the usual cause of 400/403 */
        static const char *const arn_sources[] = {"default", "refresh", "ListAvailableProfiles", "state file"};
        const char *arn = k2a_account_generate_arn(a);
        put_str(out, "region", k2a_account_region(a));
        put_str(out, "auth_region", k2a_account_auth_region(a));
        put_str(out, "profile_arn", arn);
        put_str(out, "profile_arn_source",
                arn == NULL                                                            ? NULL
                : a->cfg.profile_arn != NULL                                           ? "configured"
                : a->profile_arn != NULL && arn == a->profile_arn && a->arn_source < 4 ? arn_sources[a->arn_source]
                : a->cfg.builder_id || a->cfg.auth != K2A_AUTH_SOCIAL                  ? "placeholder"
                                                                                       : "default");
        if (a->cfg.client_id != NULL) {
            /* kiro2api: first 5 + "***" + last 3 when longer than 10 */
            size_t n = strlen(a->cfg.client_id);
            char cid[16];
            if (n > 10)
                snprintf(cid, sizeof(cid), "%.5s***%s", a->cfg.client_id, a->cfg.client_id + n - 3);
            else
                snprintf(cid, sizeof(cid), "***");
            put_str(out, "client_id", cid);
        }
        email[0] = '\0';
        if (a->email[0] != '\0')
            k2a_pool_mask_email(a->email, email, sizeof(email));
        put_str(out, "user_email", email);
        put_str(out, "subscription", a->subscription);
        put_time(out, "expires_at", a->access_token != NULL ? a->expires_at : 0);
        put_time(out, "last_refresh", a->refreshed_at);
        if (a->usage_known) {
            k2a_buf_appendf(out,
                            ",\"remaining_usage\":%.4f,\"usage_limits\":{\"total_limit\":%.4f,\"current_usage\":%.4f,"
                            "\"is_exceeded\":%s}",
                            a->credits_remaining, a->credits_limit, a->credits_limit - a->credits_remaining,
                            a->credits_remaining <= 0 ? "true" : "false");
        } else {
            k2a_buf_appendstr(out, ",\"remaining_usage\":null");
        }
        put_time(out, "next_reset", a->next_reset);
        put_time(out, "usage_checked_at", a->usage_at);
        k2a_buf_appendf(out,
                        ",\"credits_consumed\":%.4f,\"requests\":%llu,\"errors\":%llu,\"in_flight\":%u,\"input_tokens\":%lld,"
                        "\"output_tokens\":%lld,\"refreshes\":%llu,\"refresh_failures\":%llu,\"avg_latency_ms\":%.1f",
                        a->credits_consumed, (unsigned long long)a->requests, (unsigned long long)a->errors, a->inflight,
                        (long long)a->in_tokens, (long long)a->out_tokens, (unsigned long long)a->refreshes,
                        (unsigned long long)a->refresh_failures,
                        a->latency_count ? a->latency_sum * 1000.0 / (double)a->latency_count : 0.0);
        put_str(out, "last_error", a->last_error);
        put_time(out, "last_error_at", a->last_error_at);
        put_time(out, "last_used", a->last_used);
        k2a_account_render_catalog(a, out);
        /* sticky routing and pacing (pool/sticky.h, pool/pace.h): rpm and max_concurrency 0 = unlimited */
        k2a_buf_appendf(
            out, ",\"sessions\":%zu,\"pace\":{\"attempts\":%u,\"rpm\":%u,\"window_s\":%u,\"paced\":%s},\"max_concurrency\":%u",
            k2a_sticky_sessions(a), k2a_pace_attempts((k2a_account_t *)a), k2a_account_rpm(a), p->cfg.pace_window_s,
            k2a_pace_paced(a) ? "true" : "false", k2a_account_max_concurrency(a));
        k2a_buf_appendstr(out, "}");
    }
    k2a_buf_appendf(out,
                    "],\"pool_stats\":{\"total_tokens\":%zu,\"active_tokens\":%zu,\"ready\":%s,\"strategy\":\"%s\","
                    "\"in_flight\":%u,\"requests\":%llu,\"errors\":%llu,\"sticky\":%s,\"sessions\":%zu,",
                    p->naccounts, active, k2a_pool_ready(p) ? "true" : "false", k2a_pool_strategy_name(p->cfg.strategy), inflight,
                    (unsigned long long)requests, (unsigned long long)errors, k2a_sticky_enabled(p) ? "true" : "false",
                    p->sticky.n);
    const char *shared = k2a_pool_shared_store_status(p);
    if (shared != NULL)
        k2a_buf_appendf(out, "\"shared_store\":\"%s\",", strcmp(shared, "ok") == 0 ? "ok" : "shared store unavailable");
    if (any_usage)
        k2a_buf_appendf(out, "\"credits_remaining\":%.4f,", remaining);
    else
        k2a_buf_appendstr(out, "\"credits_remaining\":null,");
    return k2a_buf_appendf(out,
                           "\"credits_consumed\":%.4f,\"refreshes\":%llu,\"refresh_failures\":%llu,\"refresh_waits\":%llu,"
                           "\"failovers\":%llu,\"no_account\":%llu}}\n",
                           consumed, (unsigned long long)p->stats.refreshes, (unsigned long long)p->stats.refresh_failures,
                           (unsigned long long)p->stats.refresh_waits, (unsigned long long)p->stats.failovers,
                           (unsigned long long)p->stats.no_account);
}

/* account="<index>",name="<description or index>" with Prometheus label escaping */
static void labels(k2a_buf_t *out, const k2a_account_t *a)
{
    k2a_buf_appendf(out, "account=\"%zu\",name=\"", a->index);
    const char *d = a->cfg.description;
    if (d[0] == '\0') {
        k2a_buf_appendf(out, "%zu\"", a->index);
        return;
    }
    for (; *d; ++d) {
        if (*d == '\\' || *d == '"')
            k2a_buf_append(out, "\\", 1);
        k2a_buf_append(out, d, 1);
    }
    k2a_buf_appendstr(out, "\"");
}

#define HELP(name, type, text) k2a_buf_appendstr(out, "# HELP " name " " text "\n# TYPE " name " " type "\n")

void k2a_pool_render_metrics(k2a_pool_t *p, k2a_buf_t *out)
{
    size_t by_state[K2A_ACCOUNT_DISABLED + 1] = {0};
    int64_t now = k2a_pool_now_ms();
    for (size_t i = 0; i < p->naccounts; ++i)
        ++by_state[p->accounts[i]->state];
    HELP("k2a_pool_accounts", "gauge", "Configured Kiro accounts by state.");
    for (int s = 0; s <= K2A_ACCOUNT_DISABLED; ++s)
        k2a_buf_appendf(out, "k2a_pool_accounts{state=\"%s\"} %zu\n", k2a_account_state_name(s), by_state[s]);
    HELP("k2a_pool_ready", "gauge", "1 when at least one account is usable.");
    k2a_buf_appendf(out, "k2a_pool_ready %d\n", k2a_pool_ready(p) ? 1 : 0);
    HELP("k2a_pool_acquires_total", "counter", "Accounts handed to requests.");
    k2a_buf_appendf(out, "k2a_pool_acquires_total %llu\n", (unsigned long long)p->stats.acquires);
    HELP("k2a_pool_refresh_waits_total", "counter", "Requests that had to wait for a token refresh.");
    k2a_buf_appendf(out, "k2a_pool_refresh_waits_total %llu\n", (unsigned long long)p->stats.refresh_waits);
    HELP("k2a_pool_failovers_total", "counter", "Attempts moved to another account inside a request.");
    k2a_buf_appendf(out, "k2a_pool_failovers_total %llu\n", (unsigned long long)p->stats.failovers);
    HELP("k2a_pool_no_account_total", "counter", "Requests that found no usable account.");
    k2a_buf_appendf(out, "k2a_pool_no_account_total %llu\n", (unsigned long long)p->stats.no_account);
    HELP("k2a_pool_queue_waits_total", "counter", "Requests that waited for a per-account concurrency slot.");
    k2a_buf_appendf(out, "k2a_pool_queue_waits_total %llu\n", (unsigned long long)p->stats.queue_waits);
    HELP("k2a_pool_state_saves_total", "counter", "State file writes by result.");
    k2a_buf_appendf(out, "k2a_pool_state_saves_total{result=\"ok\"} %llu\nk2a_pool_state_saves_total{result=\"error\"} %llu\n",
                    (unsigned long long)p->stats.saves, (unsigned long long)p->stats.save_failures);

#define EACH_ACCOUNT(name, type, help, fmt, expr)                                                                                  \
    do {                                                                                                                           \
        HELP(name, type, help);                                                                                                    \
        for (size_t i = 0; i < p->naccounts; ++i) {                                                                                \
            const k2a_account_t *a = p->accounts[i];                                                                               \
            k2a_buf_appendstr(out, name "{");                                                                                      \
            labels(out, a);                                                                                                        \
            k2a_buf_appendf(out, "} " fmt "\n", expr);                                                                             \
        }                                                                                                                          \
    } while (0)

    EACH_ACCOUNT("k2a_account_up", "gauge", "1 when the account is usable now.", "%d", a->eligible ? 1 : 0);
    HELP("k2a_account_state", "gauge", "The account's state (one line per account, value 1).");
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        k2a_buf_appendstr(out, "k2a_account_state{");
        labels(out, a);
        k2a_buf_appendf(out, ",state=\"%s\"} 1\n", k2a_account_state_name(a->state));
    }
    EACH_ACCOUNT("k2a_account_inflight", "gauge", "Requests holding the account now.", "%u", a->inflight);
    EACH_ACCOUNT("k2a_account_sessions", "gauge", "Client sessions pinned to the account (sticky routing).", "%zu",
                 k2a_sticky_sessions(a));
    EACH_ACCOUNT("k2a_account_pace_attempts", "gauge", "Generate attempts of the account in the last KIRO_PACE_WINDOW_S.", "%u",
                 k2a_pace_attempts((k2a_account_t *)a));
    EACH_ACCOUNT("k2a_account_pace_rpm", "gauge", "The account's attempts allowed per window (0 = unpaced).", "%u",
                 k2a_account_rpm(a));
    EACH_ACCOUNT("k2a_account_requests_total", "counter", "generateAssistantResponse calls made with the account.", "%llu",
                 (unsigned long long)a->requests);
    HELP("k2a_account_errors_total", "counter", "Failures by class.");
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        for (int c = 0; c < K2A_ERRC_MAX; ++c) {
            if (a->errors_by_class[c] == 0)
                continue;
            k2a_buf_appendstr(out, "k2a_account_errors_total{");
            labels(out, a);
            k2a_buf_appendf(out, ",class=\"%s\"} %llu\n", errclass_names[c], (unsigned long long)a->errors_by_class[c]);
        }
    }
    EACH_ACCOUNT("k2a_account_input_tokens_total", "counter", "Input tokens of completed requests.", "%lld",
                 (long long)a->in_tokens);
    EACH_ACCOUNT("k2a_account_output_tokens_total", "counter", "Output tokens of completed requests.", "%lld",
                 (long long)a->out_tokens);
    EACH_ACCOUNT("k2a_account_credits_consumed_total", "counter", "Kiro credits reported by meteringEvent.", "%.6f",
                 a->credits_consumed);
    HELP("k2a_account_credits_remaining", "gauge", "Remaining credits (getUsageLimits, minus metering since).");
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        if (!a->usage_known)
            continue;
        k2a_buf_appendstr(out, "k2a_account_credits_remaining{");
        labels(out, a);
        k2a_buf_appendf(out, "} %.6f\n", a->credits_remaining);
    }
    EACH_ACCOUNT("k2a_account_latency_seconds_sum", "counter", "Total duration of completed requests.", "%.6f", a->latency_sum);
    EACH_ACCOUNT("k2a_account_latency_seconds_count", "counter", "Completed requests.", "%llu",
                 (unsigned long long)a->latency_count);
    HELP("k2a_account_refreshes_total", "counter", "Token refreshes by result.");
    for (size_t i = 0; i < p->naccounts; ++i) {
        const k2a_account_t *a = p->accounts[i];
        k2a_buf_appendstr(out, "k2a_account_refreshes_total{");
        labels(out, a);
        k2a_buf_appendf(out, ",result=\"ok\"} %llu\n", (unsigned long long)a->refreshes);
        k2a_buf_appendstr(out, "k2a_account_refreshes_total{");
        labels(out, a);
        k2a_buf_appendf(out, ",result=\"error\"} %llu\n", (unsigned long long)a->refresh_failures);
    }
    EACH_ACCOUNT("k2a_account_token_expiry_seconds", "gauge", "Seconds until the access token expires (negative: expired).", "%lld",
                 a->access_token != NULL ? (long long)((a->expires_at - now) / 1000) : 0LL);
#undef EACH_ACCOUNT
}

void k2a_pool_metrics_hook(void *pool, k2a_buf_t *out)
{
    k2a_pool_render_metrics(pool, out);
}
