/*
 * The gateway's HTTP side: h2o 2.2.5 on one libuv loop serving HTTP/1.1, h2c (prior knowledge and
 * Upgrade) and, optionally, TLS with ALPN h2/http1.1. A k2a_server_t holds everything that is
 * loop-wide (h2o context, listeners, metrics, the upstream client, the account pool, the model map),
 * so that one server per loop thread stays possible. One catch-all h2o handler routes every request
 * (router.c); endpoints live one per file (h_*.c).
 */
#ifndef K2A_HTTP_SERVER_H
#define K2A_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>
#include "core/errors.h"
#include "h2o.h"
#include "core/config.h"
#include "http/metrics.h"

typedef struct st_k2a_server_t k2a_server_t;

/* A client connection's handle, counted against KIRO_MAX_CONNECTIONS until h2o closes it (h2o owns tcp.data: its socket). */
typedef struct st_k2a_client_conn_t {
    uv_tcp_t tcp;
    k2a_server_t *server;
    struct st_k2a_client_conn_t *prev, *next;
} k2a_client_conn_t;
struct st_k2a_model_map_t;
struct st_k2a_upstream_t;
struct st_k2a_pool_t;
struct st_k2a_gateway_t;

typedef enum en_k2a_route_t {
    K2A_ROUTE_OTHER = 0,
    K2A_ROUTE_ROOT,
    K2A_ROUTE_STATIC,
    K2A_ROUTE_HEALTHZ,
    K2A_ROUTE_READYZ,
    K2A_ROUTE_METRICS,
    K2A_ROUTE_API_TOKENS,
    K2A_ROUTE_MODELS,
    K2A_ROUTE_MESSAGES,
    K2A_ROUTE_COUNT_TOKENS,
    K2A_ROUTE_CHAT_COMPLETIONS,
    K2A_ROUTE_ADMIN,
    K2A_ROUTE_RESPONSES,
    K2A_ROUTE_RESPONSE_GET,
    K2A_ROUTE_MAX
} k2a_route_t;

struct st_k2a_server_t {
    const k2a_config_t *config;
    uv_loop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_plain;
    h2o_accept_ctx_t accept_tls;
    uv_tcp_t *listener;
    uv_tcp_t *tls_listener;
    int port;     /* the bound port (PORT may be 0) */
    int tls_port; /* the bound TLS port, 0 when none */
    char static_dir[1024];
    h2o_mimemap_t *mimemap;
    /* client keys, as SHA-256 digests compared in constant time; unset means no key is configured */
    bool has_client_key, has_admin_key;
    unsigned char client_key_sha256[32];
    unsigned char admin_key_sha256[32];
    k2a_metrics_t metrics;
    /* lifecycle */
    uv_signal_t *sig_term, *sig_int, *sig_hup;
    uv_timer_t *shutdown_timer;
    uint64_t shutdown_deadline;
    bool shutting_down;
    size_t inflight;
    int exit_status;
    struct st_k2a_call_t *calls;   /* coroutine-served requests still running (call.c) */
    size_t ncalls;                 /* how many */
    struct st_k2a_call_t *sending; /* calls with an h2o_send awaiting proceed (write-stall watch) */
    uv_timer_t *stall_timer;       /* ends responses stalled past KIRO_WRITE_STALL_TIMEOUT_MS */
    size_t nconns;                 /* client connections open */
    size_t max_conns;              /* KIRO_MAX_CONNECTIONS' share of this worker */
    k2a_client_conn_t *clients;    /* every open client connection */
    /* request bytes held before a handler runs (limits.c) */
    size_t max_conn_buffered, max_total_buffered, buffered_bytes, socket_buffered;
    uv_check_t *limits_check;
    uint64_t limits_scanned_at;
    /* calls whose flushed bytes go to h2o at the end of this loop iteration's I/O (call.c): a response that ends in the
     * same iteration goes out in one send, its end included; NULL handles (before listen, after shutdown): sent at once */
    struct st_k2a_call_t *send_queue;
    uv_check_t *send_check;
    uv_idle_t *send_idle; /* active while calls are queued: the loop polls without blocking, then runs send_check */
    /* HTTP/2 header blocks still arriving (HEADERS without END_HEADERS, then CONTINUATION), by descriptor: since when, for
     * which connection (a reused descriptor starts over); grown on demand, freed by k2a_server_dispose */
    struct st_k2a_h2_head_seen_t {
        uint64_t conn_id; /* h2o's connection id: unique in the process, unlike the descriptor or the address */
        uint64_t since_ms;
    } * h2_head_seen;
    size_t h2_head_cap;
    size_t max_calls; /* KIRO_MAX_CONCURRENT's share of this worker: more calls at once are refused with 503 (0 = no limit) */
    /* the process this server is one worker of (http/gateway.h), and the modules it uses */
    struct st_k2a_gateway_t *gateway;
    unsigned worker;
    struct st_k2a_model_map_t *model_map; /* shared, read-only */
    struct st_k2a_upstream_t *upstream;   /* this worker's */
    struct st_k2a_pool_t *pool;           /* shared; its state lives on worker 0's loop */
    struct st_k2a_keys_t *keys;           /* managed client keys, shared by the workers (NULL: KIRO_CLIENT_TOKEN only) */
    struct st_k2a_key_t *routed_key;      /* the key of the request being routed (router.c -> k2a_call_start) */
    unsigned char routed_digest[32];      /* and the SHA-256 of the presented key that matched (the sticky id is made of it) */
    bool has_routed_digest;
    /* called on SIGHUP (e.g. the pool re-reads KIRO_AUTH_TOKEN) */
    void (*on_reload)(k2a_server_t *server);
    /* shutdown: when it begins (stop background jobs), whether the loop may stop yet (worker 0 waits for the other
     * workers, which still use the pool), and once no request is left (release modules) */
    void (*on_shutdown_begin)(k2a_server_t *server);
    bool (*can_stop)(k2a_server_t *server);
    void (*on_shutdown_end)(k2a_server_t *server);
};

/* Sets up h2o, TLS and the routes on `loop`. Returns 0, or K2A_ECONFIG with a message in err (bad certificate, ...). */
K2A_MUST_USE int k2a_server_init(k2a_server_t *s, uv_loop_t *loop, const k2a_config_t *config, char *err, size_t errlen);
/* Binds and listens on port (and tls_port when not 0; 0 picks a free port). With KIRO_WORKERS != 1 the sockets use
 * SO_REUSEPORT so that every worker binds the same ports. Returns 0 or K2A_EIO with a message in err. */
int k2a_server_listen(k2a_server_t *s, int port, int tls_port, char *err, size_t errlen);
/* Handles SIGTERM/SIGINT (graceful shutdown) and SIGHUP (reload). */
void k2a_server_install_signals(k2a_server_t *s);
/* Stops accepting, lets in-flight responses finish for up to KIRO_SHUTDOWN_GRACE_MS, then closes everything so that uv_run
 * returns. Idempotent. */
void k2a_server_shutdown(k2a_server_t *s);
/* Frees what init allocated; call after uv_run returned. */
void k2a_server_dispose(k2a_server_t *s);

/* The h2o request's server (from its context). */
static inline k2a_server_t *k2a_server_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(k2a_server_t, ctx, req->conn->ctx);
}

#endif
