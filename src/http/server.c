/*
 * h2o on the libuv loop: global configuration, the plain and TLS listeners, signals and graceful
 * shutdown. Shutdown closes the listeners, asks h2o to wind connections down (HTTP/1.1 closes after
 * the current response, HTTP/2 sends GOAWAY), waits for in-flight requests up to the grace period,
 * cancels whatever is left, and stops the loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/errors.h"
#include "core/log.h"
#include "http/call.h"
#include "http/gateway.h"
#include "http/limits.h"
#include "http/router.h"
#include "http/server.h"

static const h2o_iovec_t alpn_protocols[] = {{H2O_STRLIT("h2")}, {H2O_STRLIT("http/1.1")}, {NULL, 0}};

static bool dir_has_index(const char *dir)
{
    char path[PATH_MAX + 16];
    struct stat st;
    snprintf(path, sizeof(path), "%s/index.html", dir);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* KIRO_STATIC_DIR, else assets/ in the working directory, else assets/ next to (or one level above) the binary. */
static void find_static_dir(k2a_server_t *s)
{
    if (s->config->static_dir[0] != '\0') {
        snprintf(s->static_dir, sizeof(s->static_dir), "%s", s->config->static_dir);
        return;
    }
    if (dir_has_index("assets")) {
        if (realpath("assets", s->static_dir) != NULL)
            return;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            const char *cands[] = {"%s/assets", "%s/../assets", "%s/../share/kiro2api/assets"};
            for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); ++i) {
                char dir[PATH_MAX + 64];
                snprintf(dir, sizeof(dir), cands[i], exe);
                if (dir_has_index(dir) && realpath(dir, s->static_dir) != NULL)
                    return;
            }
        }
    }
    snprintf(s->static_dir, sizeof(s->static_dir), "assets");
}

static int setup_tls(k2a_server_t *s, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "KIRO_TLS_PORT: cannot create a TLS context");
        return K2A_ECONFIG;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, s->config->tls_cert) != 1) {
        snprintf(err, errlen, "KIRO_TLS_CERT: cannot load certificate chain from '%s'", s->config->tls_cert);
        goto Error;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, s->config->tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "KIRO_TLS_KEY: cannot load a private key matching the certificate from '%s'", s->config->tls_key);
        goto Error;
    }
    h2o_ssl_register_alpn_protocols(ctx, alpn_protocols);
    s->accept_tls.ssl_ctx = ctx;
    return 0;
Error:
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return K2A_ECONFIG;
}

int k2a_server_init(k2a_server_t *s, uv_loop_t *loop, const k2a_config_t *config, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    s->config = config;
    s->loop = loop;
    k2a_metrics_init(&s->metrics);

    h2o_config_init(&s->globalconf);
    /* h2o's own limit answers HTTP/2 with RST_STREAM instead of a 413: keep it far above ours and enforce ours in the router */
    s->globalconf.max_request_entity_size = (size_t)config->max_body_bytes * 4 + 64 * 1024 * 1024;
    s->globalconf.http1.req_timeout = (uint64_t)config->header_timeout_ms;
    s->globalconf.http2.idle_timeout = (uint64_t)config->keepalive_timeout_ms;
    /* requests run at once per HTTP/2 connection (more wait in h2o's queue): agents run a handful in parallel */
    s->globalconf.http2.max_concurrent_requests_per_connection = 32;
    s->globalconf.handshake_timeout = (uint64_t)config->header_timeout_ms;
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("kiro2api"));
    h2o_hostconf_t *host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    k2a_router_register(s, host);

    find_static_dir(s);
    s->mimemap = h2o_mimemap_create();

    if (config->client_token[0] != '\0') {
        SHA256((const unsigned char *)config->client_token, strlen(config->client_token), s->client_key_sha256);
        s->has_client_key = true;
        k2a_log_add_secret(config->client_token, strlen(config->client_token));
    }
    if (config->admin_token[0] != '\0') {
        SHA256((const unsigned char *)config->admin_token, strlen(config->admin_token), s->admin_key_sha256);
        s->has_admin_key = true;
        k2a_log_add_secret(config->admin_token, strlen(config->admin_token));
    }

    h2o_context_init(&s->ctx, loop, &s->globalconf);
    s->accept_plain.ctx = &s->ctx;
    s->accept_plain.hosts = s->globalconf.hosts;
    s->accept_tls.ctx = &s->ctx;
    s->accept_tls.hosts = s->globalconf.hosts;
    if (config->tls_port != 0) {
        int r = setup_tls(s, err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

static void on_client_closed(uv_handle_t *h)
{
    k2a_client_conn_t *c = (k2a_client_conn_t *)h;
    k2a_server_t *s = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    --s->nconns;
    free(c);
}

static void on_accept(uv_stream_t *listener, int status)
{
    if (status != 0)
        return; /* EMFILE and the like: libuv retries once a descriptor frees up */
    h2o_accept_ctx_t *actx = listener->data;
    k2a_server_t *s = H2O_STRUCT_FROM_MEMBER(k2a_server_t, ctx, actx->ctx);
    k2a_client_conn_t *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return;
    conn->server = s;
    conn->next = s->clients;
    if (conn->next != NULL)
        conn->next->prev = conn;
    s->clients = conn;
    ++s->nconns;
    uv_tcp_init(listener->loop, &conn->tcp);
    if (uv_accept(listener, (uv_stream_t *)&conn->tcp) != 0) {
        uv_close((uv_handle_t *)&conn->tcp, on_client_closed);
        return;
    }
    if (s->max_conns != 0 && s->nconns > s->max_conns) {
        /* at the cap: refused at once, so that the descriptors left stay for upstream calls and the state file */
        ++s->metrics.conns_refused;
        uv_close((uv_handle_t *)&conn->tcp, on_client_closed);
        return;
    }
    uv_tcp_nodelay(&conn->tcp, 1);
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&conn->tcp, on_client_closed);
    h2o_accept(actx, sock);
}

static void on_stall_tick(uv_timer_t *t)
{
    k2a_server_t *s = t->data;
    k2a_call_end_stalled(s, uv_now(s->loop), (uint64_t)s->config->write_stall_timeout_ms);
}

/* KIRO_MAX_CONNECTIONS, or the open-file limit less a reserve for upstream connections, the state file, logs and the
 * loop's own descriptors (1024, or a quarter of a small limit); shared by the workers. */
static size_t connection_cap(const k2a_config_t *c, unsigned nworkers)
{
    uint64_t cap = (uint64_t)c->max_connections;
    if (cap == 0) {
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
            return 0;
        uint64_t limit = (uint64_t)rl.rlim_cur, reserve = limit >= 4096 ? 1024 : limit / 4;
        cap = limit - reserve;
    }
    cap /= nworkers > 0 ? nworkers : 1;
    return cap > 0 ? (size_t)cap : 1;
}

static int parse_addr(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    return K2A_EINVAL;
}

static int open_listener(k2a_server_t *s, int port, h2o_accept_ctx_t *actx, uv_tcp_t **out, int *bound, const char *var, char *err,
                         size_t errlen)
{
    struct sockaddr_storage ss;
    if (parse_addr(s->config->host, port, &ss) != 0) {
        snprintf(err, errlen, "KIRO_HOST: '%s' is not an IPv4 or IPv6 address", s->config->host);
        return K2A_ECONFIG;
    }
    uv_tcp_t *l = malloc(sizeof(*l));
    if (l == NULL)
        return K2A_ENOMEM;
    int r = uv_tcp_init_ex(s->loop, l, ss.ss_family);
    if (r == 0 && s->config->workers != 1) {
        /* several loops share the port; the kernel spreads connections across them */
        uv_os_fd_t fd;
        int one = 1;
        if (uv_fileno((uv_handle_t *)l, &fd) == 0)
            setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    }
    if (r == 0)
        r = uv_tcp_bind(l, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)l, 4096, on_accept);
    if (r != 0) {
        snprintf(err, errlen, "%s: cannot listen on %s:%d: %s", var, s->config->host, port, uv_strerror(r));
        uv_close((uv_handle_t *)l, (uv_close_cb)free);
        return K2A_EIO;
    }
    l->data = actx;
    struct sockaddr_storage name;
    int namelen = sizeof(name);
    uv_tcp_getsockname(l, (struct sockaddr *)&name, &namelen);
    *bound =
        ntohs(name.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&name)->sin6_port : ((struct sockaddr_in *)&name)->sin_port);
    *out = l;
    return 0;
}

int k2a_server_listen(k2a_server_t *s, int port, int tls_port, char *err, size_t errlen)
{
    s->max_conns = connection_cap(s->config, s->gateway != NULL ? s->gateway->nworkers : 1);
    if ((s->stall_timer = malloc(sizeof(*s->stall_timer))) == NULL)
        return K2A_ENOMEM;
    uv_timer_init(s->loop, s->stall_timer);
    s->stall_timer->data = s;
    uint64_t tick = (uint64_t)s->config->write_stall_timeout_ms / 8;
    tick = tick < 50 ? 50 : tick;
    uv_timer_start(s->stall_timer, on_stall_tick, tick, tick);
    uv_unref((uv_handle_t *)s->stall_timer);
    k2a_call_send_queue_start(s);
    if (k2a_limits_start(s) != 0)
        return K2A_ENOMEM;
    int r = open_listener(s, port, &s->accept_plain, &s->listener, &s->port, "PORT", err, errlen);
    if (r != 0)
        return r;
    if (s->config->tls_port != 0) {
        r = open_listener(s, tls_port, &s->accept_tls, &s->tls_listener, &s->tls_port, "KIRO_TLS_PORT", err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

/* ---- shutdown ---- */

static void close_handle(uv_handle_t **h)
{
    if (*h != NULL) {
        uv_close(*h, (uv_close_cb)free);
        *h = NULL;
    }
}

static void on_shutdown_tick(uv_timer_t *t)
{
    k2a_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    if (s->inflight != 0 && now < s->shutdown_deadline)
        return;
    if (s->inflight != 0 && k2a_call_cancel_all(s) != 0 && now < s->shutdown_deadline + 1000)
        return; /* give the canceled coroutines a moment to unwind and release what they hold */
    if (s->can_stop != NULL && !s->can_stop(s))
        return;
    if (s->inflight != 0)
        k2a_info("shutdown: %zu request(s) still in flight, stopping", s->inflight);
    /* close the timer first: what on_shutdown_end releases may run the loop, and this tick must not come again */
    close_handle((uv_handle_t **)&s->shutdown_timer);
    close_handle((uv_handle_t **)&s->stall_timer);
    k2a_call_send_queue_stop(s);
    close_handle((uv_handle_t **)&s->limits_check);
    close_handle((uv_handle_t **)&s->sig_term);
    close_handle((uv_handle_t **)&s->sig_int);
    close_handle((uv_handle_t **)&s->sig_hup);
    if (s->on_shutdown_end != NULL)
        s->on_shutdown_end(s);
    uv_stop(s->loop);
}

void k2a_server_shutdown(k2a_server_t *s)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    k2a_info("shutdown: no longer accepting; %zu request(s) in flight, grace %lld ms", s->inflight,
             (long long)s->config->shutdown_grace_ms);
    close_handle((uv_handle_t **)&s->listener);
    close_handle((uv_handle_t **)&s->tls_listener);
    h2o_context_request_shutdown(&s->ctx);
    if (s->on_shutdown_begin != NULL)
        s->on_shutdown_begin(s);
    s->shutdown_deadline = uv_now(s->loop) + (uint64_t)s->config->shutdown_grace_ms;
    s->shutdown_timer = malloc(sizeof(*s->shutdown_timer));
    uv_timer_init(s->loop, s->shutdown_timer);
    s->shutdown_timer->data = s;
    uv_timer_start(s->shutdown_timer, on_shutdown_tick, 0, 20);
}

static void on_signal(uv_signal_t *h, int signum)
{
    k2a_server_t *s = h->data;
    if (signum == SIGHUP) {
        k2a_info("SIGHUP: reloading");
        if (s->on_reload != NULL)
            s->on_reload(s);
        return;
    }
    k2a_info("%s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    k2a_server_shutdown(s);
}

static uv_signal_t *watch_signal(k2a_server_t *s, int signum)
{
    uv_signal_t *h = malloc(sizeof(*h));
    uv_signal_init(s->loop, h);
    h->data = s;
    uv_signal_start(h, on_signal, signum);
    return h;
}

void k2a_server_install_signals(k2a_server_t *s)
{
    s->sig_term = watch_signal(s, SIGTERM);
    s->sig_int = watch_signal(s, SIGINT);
    s->sig_hup = watch_signal(s, SIGHUP);
}

void k2a_server_dispose(k2a_server_t *s)
{
    if (s->accept_tls.ssl_ctx != NULL)
        SSL_CTX_free(s->accept_tls.ssl_ctx);
    s->accept_tls.ssl_ctx = NULL;
    if (s->mimemap != NULL)
        h2o_mem_release_shared(s->mimemap);
    s->mimemap = NULL;
    free(s->h2_head_seen);
    s->h2_head_seen = NULL;
    s->h2_head_cap = 0;
}
