/*
 * The gateway process: KIRO_WORKERS event loops (one per thread, the first on the main thread), each
 * with its own h2o context, listeners bound to the same port with SO_REUSEPORT, coroutine runtime and
 * upstream client. What is shared: the configuration and the model map (read-only), and the account
 * pool, which lives on worker 0's loop — other workers reach it only through cross-loop calls
 * (core/xloop.h), so pool state has exactly one owner thread and no locks.
 */
#ifndef K2A_HTTP_GATEWAY_H
#define K2A_HTTP_GATEWAY_H

#include <pthread.h>
#include <stddef.h>
#include <uv.h>
#include "core/config.h"
#include "core/xloop.h"
#include "http/server.h"

typedef struct st_k2a_gateway_t k2a_gateway_t;

typedef struct st_k2a_worker_t {
    k2a_gateway_t *gw;
    unsigned index;
    pthread_t thread;
    uv_loop_t loop;
    k2a_server_t server;
    k2a_xloop_t *xloop;
    int status; /* start-up result, 0 when listening */
    char err[512];
} k2a_worker_t;

struct st_k2a_gateway_t {
    const k2a_config_t *config;
    struct st_k2a_model_map_t *model_map;
    struct st_k2a_pool_t *pool;                 /* owned by worker 0's loop */
    struct st_k2a_keys_t *keys;                 /* managed client keys, shared (keys/keys.h) */
    struct st_k2a_keys_flusher_t *keys_flusher; /* on worker 0's loop */
    k2a_worker_t *workers;
    unsigned nworkers;
    int port, tls_port; /* bound by worker 0, shared by the others */
    pthread_mutex_t mutex;
    pthread_cond_t cond; /* start-up handshake */
    unsigned running;    /* workers other than 0 whose loop has not returned */
};

/* Runs the gateway until SIGTERM/SIGINT: starts the workers, prints the listening lines on stdout, serves. Returns the
 * process exit status: 0, 1 when a listener cannot be opened, 2 on a configuration error (message on stderr). */
int k2a_gateway_run(const k2a_config_t *config);

/* The gateway of a server (every server belongs to one worker of one gateway). */
static inline k2a_gateway_t *k2a_gateway_of(k2a_server_t *s)
{
    return s->gateway;
}
/* Server-side operations that need other loops (must run inside a coroutine, i.e. from a k2a_call). */
/* Renders /metrics for the whole process: every worker's request metrics summed, coroutines, upstream, pool. */
int k2a_gateway_render_metrics(k2a_server_t *s, k2a_buf_t *out);
/* Renders /api/tokens (on the pool's loop). */
int k2a_gateway_render_tokens(k2a_server_t *s, k2a_buf_t *out);
/* At least one account is usable (asked on the pool's loop). */
bool k2a_gateway_ready(k2a_server_t *s);
/* The same, and *shared: NULL (no shared store), "ok" or "unavailable" (KIRO_REDIS_URL). */
bool k2a_gateway_ready_ex(k2a_server_t *s, const char **shared);

#endif
