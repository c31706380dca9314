/*
 * The gateway process (see gateway.h). Start-up: the model map, then worker 0 on the main thread
 * (upstream client, account pool, listeners — its bound port is the one the others share), then the
 * other workers on their threads, each signalling when it listens. Shutdown: SIGTERM reaches worker
 * 0, which shuts its server down and posts the same to every other worker; worker 0's loop keeps
 * serving cross-loop calls until the others have stopped (they may still hold pool leases), then
 * releases the pool.
 *
 * Without KIRO_AUTH_TOKEN the gateway still starts (so that /healthz, the dashboard and the demo
 * tooling work) but /readyz says not ready and chat routes answer 503.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "convert/model_map.h"
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "http/admin_keys.h"
#include "http/gateway.h"
#include "keys/keys_async.h"
#include "keys/keys_redis.h"
#include "pool/store_redis_responses.h"
#include "pool/admin.h"
#include "pool/pool.h"
#include "upstream/upstream.h"

/* ---- per-worker modules ---- */

static void upstream_config_from(k2a_upstream_config_t *uc, const k2a_config_t *c, unsigned nworkers)
{
    k2a_upstream_config_init(uc);
    uc->connect_timeout_ms = (uint32_t)c->connect_timeout_ms;
    uc->first_byte_timeout_ms = (uint32_t)c->first_byte_timeout_ms;
    uc->idle_timeout_ms = (uint32_t)c->idle_timeout_ms;
    uc->dns_timeout_ms = (uint32_t)c->dns_timeout_ms;
    uc->dns_max_ttl_s = (uint32_t)c->dns_max_ttl_s;
    /* a Kiro stream holds its connection for its whole length: by default allow as many as requests may run (per worker) */
    int64_t conns = c->upstream_max_conns != 0 ? c->upstream_max_conns : c->max_concurrent / (int64_t)nworkers + 1;
    uc->max_conns_per_origin = (uint32_t)conns;
    uc->max_idle_per_origin = (uint32_t)c->upstream_max_idle;
    uc->pool_idle_timeout_ms = (uint32_t)c->upstream_idle_ms;
    uc->reuse_never = strcmp(c->upstream_reuse, "never") == 0;
    uc->max_idle_per_affinity = (uint32_t)c->upstream_max_idle_per_account;
    uc->dns_servers = c->dns_servers[0] != '\0' ? c->dns_servers : NULL;
    uc->ca_file = c->ca_file[0] != '\0' ? c->ca_file : NULL;
    uc->tls_insecure = c->tls_insecure;
    const char *proxy = c->upstream_proxy[0] != '\0' ? c->upstream_proxy : c->https_proxy;
    uc->proxy = proxy[0] != '\0' ? proxy : NULL;
    uc->no_proxy = c->no_proxy[0] != '\0' ? c->no_proxy : NULL;
}

/* Releases what a worker's server uses, once its last request is gone. */
static void release_modules(k2a_server_t *s)
{
    k2a_gateway_t *gw = s->gateway;
    if (s->calls != NULL) {
        /* a request coroutine that did not unwind still holds a lease or a response: leave the modules alone */
        k2a_warn("shutdown: requests still running on worker %u; modules left allocated", s->worker);
        return;
    }
    if (s->worker == 0 && gw->pool != NULL) {
        struct st_k2a_pool_t *pool = gw->pool;
        gw->pool = NULL;
        k2a_responses_store_set_remote(NULL);
        k2a_pool_admin_dispose(pool);
        k2a_pool_destroy(pool);
    }
    s->pool = NULL;
    if (s->upstream != NULL) {
        k2a_upstream_destroy(s->upstream);
        s->upstream = NULL;
    }
}

static void on_shutdown_begin(k2a_server_t *s);

/* The key store: KIRO_KEYS_FILE, or kiro2api-keys.json beside KIRO_STATE_FILE (nothing persisted when both are empty). */
static int open_keys(k2a_gateway_t *gw)
{
    const k2a_config_t *c = gw->config;
    char path[4096] = "";
    if (c->keys_file[0] != '\0') {
        snprintf(path, sizeof(path), "%s", c->keys_file);
    } else if (c->state_file[0] != '\0') {
        const char *slash = strrchr(c->state_file, '/');
        snprintf(path, sizeof(path), "%.*skiro2api-keys.json", slash != NULL ? (int)(slash - c->state_file + 1) : 0, c->state_file);
    }
    k2a_keys_backend_t *b = path[0] != '\0' ? k2a_keys_file_backend_create(path) : NULL;
    char err[512];
    if (c->redis_url != NULL && c->redis_url[0] != '\0') { /* shared with the other replicas; the file is the local copy */
        k2a_keys_backend_t *rb;
        if (k2a_keys_redis_backend_create(c->redis_url, c->redis_prefix, b, &rb, err, sizeof(err)) != 0) {
            fprintf(stderr, "kiro2api: configuration error: %s\n", err);
            if (b != NULL)
                b->destroy(b);
            return 2;
        }
        b = rb;
    }
    k2a_keys_config_t kc = {.max_keys = (size_t)c->keys_max,
                            .usage_days = (int)c->keys_usage_days,
                            .metrics_max = (size_t)c->keys_metrics_max,
                            .client_token = c->client_token};
    if (k2a_keys_create(&kc, b, &gw->keys, err, sizeof(err)) != 0) {
        fprintf(stderr, "kiro2api: configuration error: %s\n", err);
        if (b != NULL)
            b->destroy(b);
        return 2;
    }
    k2a_admin_register_routes(k2a_admin_key_routes);
    if (k2a_keys_count(gw->keys) > 0)
        k2a_info("client keys: %zu managed key(s) loaded from %s", k2a_keys_count(gw->keys), path);
    return 0;
}

/* Saves the last usage and frees the store (every worker has stopped). */
static void close_keys(k2a_gateway_t *gw)
{
    if (gw->keys == NULL)
        return;
    int r = k2a_keys_save_sync(gw->keys);
    if (r != 0)
        k2a_error("client keys: the last save failed: %s", k2a_strerror(r));
    k2a_keys_destroy(gw->keys);
    gw->keys = NULL;
}

static void post_shutdown(void *arg)
{
    k2a_server_shutdown(arg);
}

static void on_shutdown_begin(k2a_server_t *s)
{
    k2a_gateway_t *gw = s->gateway;
    if (s->upstream != NULL)
        k2a_upstream_quiesce(s->upstream); /* response tails read in the background end; the loop unwinds them */
    if (s->worker != 0)
        return;
    for (unsigned i = 1; i < gw->nworkers; ++i)
        if (gw->workers[i].xloop != NULL)
            k2a_xloop_post(gw->workers[i].xloop, post_shutdown, &gw->workers[i].server);
    if (gw->pool != NULL)
        k2a_pool_shutdown(gw->pool); /* background refreshes and polls stop; leased accounts finish their streams */
    k2a_keys_flusher_stop(gw->keys_flusher);
    gw->keys_flusher = NULL;
}

static bool can_stop(k2a_server_t *s)
{
    k2a_gateway_t *gw = s->gateway;
    if (s->upstream != NULL && k2a_upstream_tails(s->upstream) != 0)
        return false; /* canceled tails unwind on the next iterations */
    if (s->worker != 0)
        return true;
    pthread_mutex_lock(&gw->mutex);
    bool others_done = gw->running == 0;
    pthread_mutex_unlock(&gw->mutex);
    /* and the pool's background jobs and its last state write are finished (k2a_pool_shutdown began them) */
    return others_done && (gw->pool == NULL || k2a_pool_closed(gw->pool));
}

static void on_reload(k2a_server_t *s)
{
    k2a_gateway_t *gw = s->gateway;
    if (gw->pool == NULL) {
        k2a_warn("SIGHUP: no account pool to reload (KIRO_AUTH_TOKEN was not set at start)");
        return;
    }
    /* a path is re-read from disk; the pool lives on this loop (worker 0 handles the signals) */
    char err[512];
    /* the configuration and the accounts added through the admin API (pool/admin.h) */
    if (k2a_pool_admin_reload(gw->pool, err, sizeof(err)) != 0)
        k2a_error("SIGHUP: accounts not reloaded: %s", err);
    else
        k2a_info("SIGHUP: accounts reloaded");
}

static int setup_worker(k2a_worker_t *w)
{
    k2a_gateway_t *gw = w->gw;
    const k2a_config_t *c = gw->config;
    k2a_server_t *s = &w->server;
    uv_loop_init(&w->loop);
    size_t per_worker = (size_t)c->max_concurrent / gw->nworkers;
    k2a_coro_config_t cc = {.stack_size = (size_t)c->coro_stack_kb * 1024, .max_live = (per_worker > 0 ? per_worker : 1) + 64};
    int r;
    if ((r = k2a_coro_runtime_init(&w->loop, &cc)) != 0 || (r = k2a_xloop_create(&w->loop, &w->xloop)) != 0) {
        snprintf(w->err, sizeof(w->err), "worker %d: cannot start its loop: %s", w->index, k2a_strerror(r));
        return 2;
    }
    int init = k2a_server_init(s, &w->loop, c, w->err, sizeof(w->err));
    s->gateway = gw;
    s->worker = w->index;
    s->max_calls = per_worker > 0 ? per_worker : 1; /* the coroutine headroom above is for the pool's background jobs */
    s->model_map = gw->model_map;
    if (init != 0)
        return 2;
    s->on_shutdown_begin = on_shutdown_begin;
    s->can_stop = can_stop;
    s->on_shutdown_end = release_modules;
    if (w->index == 0)
        s->on_reload = on_reload;

    k2a_upstream_config_t uc;
    upstream_config_from(&uc, c, gw->nworkers);
    if ((r = k2a_upstream_create(&w->loop, &uc, &s->upstream)) != 0) {
        snprintf(w->err, sizeof(w->err),
                 "upstream client: %s (check KIRO_CA_FILE, KIRO_UPSTREAM_PROXY/HTTPS_PROXY, KIRO_DNS_SERVERS)", k2a_strerror(r));
        return 2;
    }
    if (w->index == 0 && c->auth_token[0] != '\0') {
        k2a_pool_config_t pc;
        if (k2a_pool_config_from(&pc, c, w->err, sizeof(w->err)) != 0 ||
            k2a_pool_create(&w->loop, s->upstream, &pc, NULL, &gw->pool, w->err, sizeof(w->err)) != 0 ||
            k2a_pool_admin_init(gw->pool, w->err, sizeof(w->err)) != 0)
            return 2;
        k2a_info("account pool: %zu account(s), strategy %s", k2a_pool_naccounts(gw->pool), c->pool_strategy);
        k2a_responses_remote_t rt;
        if (k2a_redis_responses_remote(gw->pool, &rt)) /* stored Responses shared with the other replicas */
            k2a_responses_store_set_remote(&rt);
    }
    s->pool = gw->pool;
    s->keys = gw->keys;
    if (k2a_server_listen(s, w->index == 0 ? c->port : gw->port, w->index == 0 ? c->tls_port : gw->tls_port, w->err,
                          sizeof(w->err)) != 0)
        return 1;
    if (w->index == 0) {
        gw->port = s->port;
        gw->tls_port = s->tls_port;
        if (gw->keys != NULL) /* usage is saved when it changed (and at shutdown, close_keys) */
            gw->keys_flusher = k2a_keys_flusher_start(gw->keys, &w->loop, (uint64_t)c->keys_save_interval_s * 1000);
    }
    return 0;
}

static void teardown_worker(k2a_worker_t *w)
{
    k2a_server_t *s = &w->server;
    release_modules(s);
    k2a_xloop_close(w->xloop); /* the memory stays: other threads may still hold the pointer until the process exits */
    /* let the close callbacks of what was released run */
    for (int i = 0; i < 8; ++i)
        uv_run(&w->loop, UV_RUN_NOWAIT);
    k2a_server_dispose(s);
    k2a_coro_stats_t cs;
    k2a_coro_get_stats(&cs);
    if (cs.live == 0) {
        k2a_coro_runtime_dispose();
        uv_run(&w->loop, UV_RUN_NOWAIT);
    }
}

static void *worker_main(void *arg)
{
    k2a_worker_t *w = arg;
    k2a_gateway_t *gw = w->gw;
    w->status = setup_worker(w);
    pthread_mutex_lock(&gw->mutex);
    ++gw->running;
    pthread_cond_broadcast(&gw->cond);
    pthread_mutex_unlock(&gw->mutex);
    if (w->status == 0)
        uv_run(&w->loop, UV_RUN_DEFAULT);
    teardown_worker(w);
    pthread_mutex_lock(&gw->mutex);
    --gw->running;
    /* Stay parked until the process exits: h2o keeps per-thread recycled buffers in thread-local storage that nothing can
     * free, and a live thread keeps them reachable (LeakSanitizer) -- h2o's own server exits with its threads alive too. */
    for (;;)
        pthread_cond_wait(&gw->cond, &gw->mutex);
    return NULL;
}

int k2a_gateway_run(const k2a_config_t *config)
{
    static k2a_gateway_t gw; /* static: what the loops still reference at exit stays reachable (LeakSanitizer) */
    memset(&gw, 0, sizeof(gw));
    gw.config = config;
    pthread_mutex_init(&gw.mutex, NULL);
    pthread_cond_init(&gw.cond, NULL);
    gw.nworkers = config->workers > 0 ? (unsigned)config->workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (gw.nworkers == 0)
        gw.nworkers = 1;
    gw.workers = calloc(gw.nworkers, sizeof(*gw.workers));
    int status = 0;
    bool started = false;

    k2a_convert_error_t cerr = {0};
    if (k2a_model_map_create(config->model_map, strlen(config->model_map), &gw.model_map, &cerr) != 0) {
        fprintf(stderr, "kiro2api: configuration error: KIRO_MODEL_MAP: %s\n", cerr.message);
        free(gw.workers);
        return 2;
    }

    if (open_keys(&gw) != 0) {
        k2a_model_map_destroy(gw.model_map);
        free(gw.workers);
        return 2;
    }

    /* worker 0 on this thread: it owns the pool and binds the port the others share */
    k2a_worker_t *w0 = &gw.workers[0];
    w0->gw = &gw;
    w0->index = 0;
    if ((status = setup_worker(w0)) != 0) {
        if (status == 2)
            fprintf(stderr, "kiro2api: configuration error: %s\n", w0->err);
        else
            k2a_error("%s", w0->err);
        goto Exit;
    }
    for (unsigned i = 1; i < gw.nworkers; ++i) {
        k2a_worker_t *w = &gw.workers[i];
        w->gw = &gw;
        w->index = i;
        pthread_mutex_lock(&gw.mutex);
        unsigned before = gw.running;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            pthread_mutex_unlock(&gw.mutex);
            k2a_error("cannot start worker %u", i);
            gw.nworkers = i;
            break;
        }
        while (gw.running == before)
            pthread_cond_wait(&gw.cond, &gw.mutex);
        pthread_mutex_unlock(&gw.mutex);
        if (w->status != 0)
            k2a_error("worker %u: %s", i, w->err); /* it stops by itself; the others serve */
    }

    /* signals first: whoever reads the listening line may send SIGTERM at once */
    k2a_server_install_signals(&w0->server);
    /* one machine-readable line per listener on stdout (tests and scripts read the port from it), then the log */
    printf("kiro2api listening on http://%s:%d\n", config->host, gw.port);
    if (gw.tls_port != 0)
        printf("kiro2api listening on https://%s:%d\n", config->host, gw.tls_port);
    fflush(stdout);
    k2a_info("kiro2api %s listening on http://%s:%d%s with %u worker loop(s)", K2A_VERSION, config->host, gw.port,
             gw.tls_port != 0 ? " (and TLS)" : "", gw.nworkers);
    /* warnings about the configuration only once it is known to be valid: a configuration error is one line, alone */
    if (config->client_token[0] == '\0' && config->admin_token[0] == '\0')
        k2a_warn("KIRO_CLIENT_TOKEN is not set: any client on this machine may use the gateway (listening on loopback only)");
    if (config->auth_token[0] == '\0')
        k2a_warn("KIRO_AUTH_TOKEN is not set: no Kiro account, chat requests will answer 503 (make run starts a demo instead)");
    started = true;
    uv_run(&w0->loop, UV_RUN_DEFAULT);
    status = w0->server.exit_status;

Exit:
    /* the other workers have stopped their loops (worker 0 waited for them); their threads stay parked until exit */
    teardown_worker(w0);
    k2a_xloop_free(w0->xloop);
    k2a_model_map_destroy(gw.model_map);
    gw.model_map = NULL;
    close_keys(&gw);
    /* gw.workers stays allocated: idle client connections still open at exit belong to the workers' loops and h2o contexts,
     * and h2o 2.2.5 has no way to close them; keeping them reachable is what h2o's own server does too */
    if (started)
        k2a_info("kiro2api stopped");
    return status;
}

/* ---- operations across loops ---- */

typedef struct st_snapshot_args_t {
    k2a_server_t *server;
    k2a_metrics_t *metrics;
    k2a_coro_stats_t coro;
    k2a_upstream_stats_t upstream;
} snapshot_args_t;

static intptr_t op_snapshot(void *arg)
{
    snapshot_args_t *a = arg;
    k2a_metrics_add(a->metrics, &a->server->metrics);
    k2a_coro_get_stats(&a->coro);
    memset(&a->upstream, 0, sizeof(a->upstream));
    if (a->server->upstream != NULL)
        k2a_upstream_get_stats(a->server->upstream, &a->upstream);
    return 0;
}

typedef struct st_render_args_t {
    struct st_k2a_pool_t *pool;
    k2a_buf_t *out;
    bool ready;
    const char *shared; /* a static string */
} render_args_t;

static intptr_t op_render_pool_metrics(void *arg)
{
    render_args_t *a = arg;
    k2a_pool_render_metrics(a->pool, a->out);
    return 0;
}

static intptr_t op_render_tokens(void *arg)
{
    render_args_t *a = arg;
    return k2a_pool_render_tokens_json(a->pool, a->out);
}

static intptr_t op_ready(void *arg)
{
    render_args_t *a = arg;
    a->ready = k2a_pool_ready(a->pool);
    a->shared = k2a_pool_shared_store_status(a->pool);
    return 0;
}

static void render_upstream(k2a_buf_t *out, const k2a_upstream_stats_t *st)
{
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
                    "# HELP k2a_upstream_tls_handshakes_total Upstream TLS handshakes.\n"
                    "# TYPE k2a_upstream_tls_handshakes_total counter\nk2a_upstream_tls_handshakes_total %llu\n"
                    "# HELP k2a_upstream_tls_resumptions_total Upstream TLS handshakes that resumed a session.\n"
                    "# TYPE k2a_upstream_tls_resumptions_total counter\nk2a_upstream_tls_resumptions_total %llu\n"
                    "# HELP k2a_upstream_connections_evicted_total Idle upstream connections closed to make room for "
                    "another account's.\n"
                    "# TYPE k2a_upstream_connections_evicted_total counter\nk2a_upstream_connections_evicted_total %llu\n"
                    "# HELP k2a_upstream_response_tails_total Responses whose framing's end (after the answer's last frame) "
                    "was read after release.\n"
                    "# TYPE k2a_upstream_response_tails_total counter\nk2a_upstream_response_tails_total %llu\n"
                    "# HELP k2a_upstream_response_tails_kept_total Of which the connection went back to the pool.\n"
                    "# TYPE k2a_upstream_response_tails_kept_total counter\nk2a_upstream_response_tails_kept_total %llu\n"
                    "# HELP k2a_upstream_requests_total Upstream requests by outcome.\n"
                    "# TYPE k2a_upstream_requests_total counter\n",
                    (unsigned long long)st->conns_opened, (unsigned long long)st->conns_reused, (unsigned long long)st->conns_open,
                    (unsigned long long)st->conns_idle, (unsigned long long)st->dns_cache_hits, (unsigned long long)st->dns_queries,
                    (unsigned long long)st->tls_handshakes, (unsigned long long)st->tls_resumptions,
                    (unsigned long long)st->conns_evicted, (unsigned long long)st->tails, (unsigned long long)st->tails_kept);
    for (int i = 0; i < K2A_UPSTREAM_OUTCOME_MAX; ++i)
        if (st->requests[i] != 0)
            k2a_buf_appendf(out, "k2a_upstream_requests_total{outcome=\"%s\"} %llu\n", k2a_upstream_outcome_name(i),
                            (unsigned long long)st->requests[i]);
}

int k2a_gateway_render_metrics(k2a_server_t *s, k2a_buf_t *out)
{
    k2a_gateway_t *gw = s->gateway;
    k2a_metrics_t *sum = calloc(1, sizeof(*sum));
    if (sum == NULL)
        return K2A_ENOMEM;
    k2a_coro_stats_t coro = {0};
    k2a_upstream_stats_t up;
    memset(&up, 0, sizeof(up));
    uint64_t *per_worker = calloc(gw->nworkers, sizeof(*per_worker));
    if (per_worker == NULL) {
        free(sum);
        return K2A_ENOMEM;
    }
    for (unsigned i = 0; i < gw->nworkers; ++i) {
        k2a_worker_t *w = &gw->workers[i];
        if (w->xloop == NULL)
            continue; /* a closed endpoint answers K2A_ECLOSED */
        uint64_t before = 0;
        for (int r = 0; r < K2A_METRICS_ROUTES; ++r)
            before += sum->latency_count[r];
        snapshot_args_t a = {.server = &w->server, .metrics = sum};
        if (k2a_xloop_call(w->xloop, op_snapshot, &a) != 0)
            continue;
        for (int r = 0; r < K2A_METRICS_ROUTES; ++r)
            per_worker[i] += sum->latency_count[r];
        per_worker[i] -= before;
        coro.live += a.coro.live;
        coro.pooled += a.coro.pooled;
        coro.created += a.coro.created;
        up.conns_opened += a.upstream.conns_opened;
        up.conns_reused += a.upstream.conns_reused;
        up.conns_open += a.upstream.conns_open;
        up.conns_idle += a.upstream.conns_idle;
        up.conns_evicted += a.upstream.conns_evicted;
        up.tails += a.upstream.tails;
        up.tails_kept += a.upstream.tails_kept;
        up.dns_cache_hits += a.upstream.dns_cache_hits;
        up.dns_queries += a.upstream.dns_queries;
        up.tls_handshakes += a.upstream.tls_handshakes;
        up.tls_resumptions += a.upstream.tls_resumptions;
        for (int k = 0; k < K2A_UPSTREAM_OUTCOME_MAX; ++k)
            up.requests[k] += a.upstream.requests[k];
    }
    int r = k2a_metrics_render(sum, out);
    free(sum);
    if (r == 0) {
        k2a_buf_appendstr(out, "# HELP k2a_worker_requests_total Requests answered by each event-loop worker.\n"
                               "# TYPE k2a_worker_requests_total counter\n");
        for (unsigned i = 0; i < gw->nworkers; ++i)
            k2a_buf_appendf(out, "k2a_worker_requests_total{worker=\"%u\"} %llu\n", i, (unsigned long long)per_worker[i]);
    }
    free(per_worker);
    if (r != 0)
        return r;
    k2a_buf_appendf(out,
                    "# HELP k2a_workers Event-loop worker threads.\n# TYPE k2a_workers gauge\nk2a_workers %u\n"
                    "# HELP k2a_coroutines_live Coroutines alive (requests and background jobs).\n"
                    "# TYPE k2a_coroutines_live gauge\nk2a_coroutines_live %zu\n"
                    "# HELP k2a_coroutine_stacks_pooled Idle coroutine stacks kept for reuse.\n"
                    "# TYPE k2a_coroutine_stacks_pooled gauge\nk2a_coroutine_stacks_pooled %zu\n"
                    "# HELP k2a_coroutines_created_total Coroutines created.\n"
                    "# TYPE k2a_coroutines_created_total counter\nk2a_coroutines_created_total %llu\n",
                    gw->nworkers, coro.live, coro.pooled, (unsigned long long)coro.created);
    render_upstream(out, &up);
    k2a_keys_render_metrics(gw->keys, out);
    if (gw->pool != NULL) {
        render_args_t a = {.pool = gw->pool, .out = out};
        k2a_xloop_call(gw->workers[0].xloop, op_render_pool_metrics, &a);
    }
    return 0;
}

int k2a_gateway_render_tokens(k2a_server_t *s, k2a_buf_t *out)
{
    k2a_gateway_t *gw = s->gateway;
    if (gw->pool == NULL)
        return k2a_buf_appendstr(out, "{\"total_tokens\":0,\"active_tokens\":0,\"tokens\":[],\"pool_stats\":{\"total_tokens\":0,"
                                      "\"active_tokens\":0},\"error\":\"no Kiro account is configured (KIRO_AUTH_TOKEN)\"}");
    render_args_t a = {.pool = gw->pool, .out = out};
    return (int)k2a_xloop_call(gw->workers[0].xloop, op_render_tokens, &a);
}

bool k2a_gateway_ready(k2a_server_t *s)
{
    return k2a_gateway_ready_ex(s, NULL);
}

bool k2a_gateway_ready_ex(k2a_server_t *s, const char **shared)
{
    k2a_gateway_t *gw = s->gateway;
    if (shared != NULL)
        *shared = NULL;
    if (gw->pool == NULL)
        return false;
    render_args_t a = {.pool = gw->pool};
    k2a_xloop_call(gw->workers[0].xloop, op_ready, &a);
    if (shared != NULL)
        *shared = a.shared;
    return a.ready;
}
