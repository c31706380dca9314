/*
 * Module wiring (see gateway.h): the model map from KIRO_MODEL_MAP, the upstream client from the
 * KIRO_* timeouts/proxy/TLS variables, and the account pool from KIRO_AUTH_TOKEN, plugged into the
 * server's readiness, reload and metrics hooks. Without KIRO_AUTH_TOKEN the gateway still starts (so
 * that /healthz, the dashboard and the demo tooling work) but /readyz says not ready and chat routes
 * answer 503.
 */
#include <string.h>
#include "convert/model_map.h"
#include "core/errors.h"
#include "core/log.h"
#include "http/gateway.h"
#include "pool/pool.h"
#include "upstream/upstream.h"

static bool is_ready(k2a_server_t *s)
{
    return s->pool != NULL && k2a_pool_ready(s->pool);
}

static void on_reload(k2a_server_t *s)
{
    if (s->pool == NULL) {
        k2a_warn("SIGHUP: no account pool to reload (KIRO_AUTH_TOKEN was not set at start)");
        return;
    }
    /* re-read the variable as the process sees it now: a file path is re-read from disk */
    char err[512];
    const char *src = s->config->auth_token;
    if (k2a_pool_reload(s->pool, src, err, sizeof(err)) != 0)
        k2a_error("SIGHUP: accounts not reloaded: %s", err);
    else
        k2a_info("SIGHUP: accounts reloaded");
}

static void render_upstream_metrics(void *ctx, k2a_buf_t *out)
{
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(ctx, &st);
    k2a_buf_appendf(out,
                    "# HELP k2a_upstream_connections_opened_total Upstream connections established.\n"
                    "# TYPE k2a_upstream_connections_opened_total counter\nk2a_upstream_connections_opened_total %llu\n"
                    "# HELP k2a_upstream_connections_reused_total Upstream requests served on a pooled keep-alive connection.\n"
                    "# TYPE k2a_upstream_connections_reused_total counter\nk2a_upstream_connections_reused_total %llu\n"
                    "# HELP k2a_upstream_connections_open Upstream connections open now.\n"
                    "# TYPE k2a_upstream_connections_open gauge\nk2a_upstream_connections_open %llu\n"
                    "# HELP k2a_upstream_connections_idle Idle upstream keep-alive connections.\n"
                    "# TYPE k2a_upstream_connections_idle gauge\nk2a_upstream_connections_idle %llu\n"
                    "# HELP k2a_upstream_dns_cache_hits_total DNS lookups answered from the cache.\n"
                    "# TYPE k2a_upstream_dns_cache_hits_total counter\nk2a_upstream_dns_cache_hits_total %llu\n"
                    "# HELP k2a_upstream_dns_queries_total DNS queries sent.\n"
                    "# TYPE k2a_upstream_dns_queries_total counter\nk2a_upstream_dns_queries_total %llu\n"
                    "# HELP k2a_upstream_tls_handshakes_total Upstream TLS handshakes (and how many resumed a session).\n"
                    "# TYPE k2a_upstream_tls_handshakes_total counter\nk2a_upstream_tls_handshakes_total %llu\n"
                    "k2a_upstream_tls_resumptions_total %llu\n"
                    "# HELP k2a_upstream_requests_total Upstream requests by outcome.\n"
                    "# TYPE k2a_upstream_requests_total counter\n",
                    (unsigned long long)st.conns_opened, (unsigned long long)st.conns_reused, (unsigned long long)st.conns_open,
                    (unsigned long long)st.conns_idle, (unsigned long long)st.dns_cache_hits, (unsigned long long)st.dns_queries,
                    (unsigned long long)st.tls_handshakes, (unsigned long long)st.tls_resumptions);
    for (int i = 0; i < K2A_UPSTREAM_OUTCOME_MAX; ++i)
        if (st.requests[i] != 0)
            k2a_buf_appendf(out, "k2a_upstream_requests_total{outcome=\"%s\"} %llu\n", k2a_upstream_outcome_name(i),
                            (unsigned long long)st.requests[i]);
}

static void upstream_config_from(k2a_upstream_config_t *uc, const k2a_config_t *c)
{
    k2a_upstream_config_init(uc);
    uc->connect_timeout_ms = (uint32_t)c->connect_timeout_ms;
    uc->first_byte_timeout_ms = (uint32_t)c->first_byte_timeout_ms;
    uc->idle_timeout_ms = (uint32_t)c->idle_timeout_ms;
    uc->dns_timeout_ms = (uint32_t)c->dns_timeout_ms;
    uc->dns_max_ttl_s = (uint32_t)c->dns_max_ttl_s;
    uc->max_conns_per_origin = (uint32_t)c->upstream_max_conns;
    uc->max_idle_per_origin = (uint32_t)c->upstream_max_idle;
    uc->pool_idle_timeout_ms = (uint32_t)c->upstream_idle_ms;
    uc->dns_servers = c->dns_servers[0] != '\0' ? c->dns_servers : NULL;
    uc->ca_file = c->ca_file[0] != '\0' ? c->ca_file : NULL;
    uc->tls_insecure = c->tls_insecure;
    const char *proxy = c->upstream_proxy[0] != '\0' ? c->upstream_proxy : c->https_proxy;
    uc->proxy = proxy[0] != '\0' ? proxy : NULL;
    uc->no_proxy = c->no_proxy[0] != '\0' ? c->no_proxy : NULL;
}

static void on_shutdown_begin(k2a_server_t *s)
{
    if (s->pool != NULL)
        k2a_pool_shutdown(s->pool); /* background refreshes and polls stop; leased accounts finish their streams */
}

int k2a_gateway_init(k2a_server_t *s, char *err, size_t errlen)
{
    const k2a_config_t *c = s->config;
    k2a_convert_error_t cerr = {0};
    if (k2a_model_map_create(c->model_map, strlen(c->model_map), &s->model_map, &cerr) != 0) {
        snprintf(err, errlen, "KIRO_MODEL_MAP: %s", cerr.message);
        return K2A_ECONFIG;
    }

    k2a_upstream_config_t uc;
    upstream_config_from(&uc, c);
    int r = k2a_upstream_create(s->loop, &uc, &s->upstream);
    if (r != 0) {
        snprintf(err, errlen, "upstream client: %s (check KIRO_CA_FILE, KIRO_UPSTREAM_PROXY/HTTPS_PROXY, KIRO_DNS_SERVERS)",
                 k2a_strerror(r));
        return K2A_ECONFIG;
    }
    k2a_metrics_add_hook(&s->metrics, render_upstream_metrics, s->upstream);

    if (c->auth_token[0] == '\0') {
        k2a_warn("KIRO_AUTH_TOKEN is not set: no Kiro account, chat requests will answer 503 (make run starts a demo instead)");
    } else {
        k2a_pool_config_t pc;
        if ((r = k2a_pool_config_from(&pc, c, err, errlen)) != 0)
            return r;
        if ((r = k2a_pool_create(s->loop, s->upstream, &pc, NULL, &s->pool, err, errlen)) != 0)
            return r == K2A_ECONFIG ? r : K2A_ECONFIG;
        k2a_metrics_add_hook(&s->metrics, k2a_pool_metrics_hook, s->pool);
        k2a_info("account pool: %zu account(s), strategy %s", k2a_pool_naccounts(s->pool), c->pool_strategy);
    }
    s->is_ready = is_ready;
    s->on_reload = on_reload;
    s->on_shutdown_begin = on_shutdown_begin;
    s->on_shutdown_end = k2a_gateway_destroy;
    return 0;
}

void k2a_gateway_destroy(k2a_server_t *s)
{
    if (s->calls != NULL) {
        /* a request coroutine that did not unwind still holds a lease or a response: leave the modules alone */
        k2a_warn("shutdown: requests still running; account pool and upstream client left allocated");
        return;
    }
    if (s->pool != NULL) {
        k2a_pool_destroy(s->pool);
        s->pool = NULL;
    }
    if (s->upstream != NULL) {
        k2a_upstream_destroy(s->upstream);
        s->upstream = NULL;
    }
    if (s->model_map != NULL) {
        k2a_model_map_destroy(s->model_map);
        s->model_map = NULL;
    }
}
