/*
 * The client object, its per-origin keep-alive pools and the request flow: take an idle connection (or a
 * slot for a new one, waiting when the origin is at its limit), resolve, connect (next address on
 * failure), tunnel through the proxy, handshake, exchange; a request that fails on a reused connection
 * before any response byte is retried once on a new connection. Origins are few (the AWS endpoints), so
 * they live in a list; an origin is keyed by scheme, host, port and whether it goes through the proxy.
 * Within an origin, connections belong to one affinity key (an account): idle ones are found per key, and
 * the origin's bounds (connections, idle connections) are shared by evicting the least recently used idle
 * connection of any key, so that no account's idle connections can starve another's.
 */
#include <openssl/err.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "upstream/internal.h"

/* ---- slots: waiting for a connection when an origin is at max_conns_per_origin ---- */

struct st_slot_waiter_t {
    uv_timer_t timer;
    slot_waiter_t *next, *prev;
    origin_t *o;
    k2a_coro_t *co;
    int result;
    bool linked;
    bool finished;
};

static void on_slot_closed(uv_handle_t *h)
{
    slot_waiter_t *w = h->data;
    k2a_coro_t *co = w->co;
    int result = w->result;
    free(w);
    k2a_coro_resume(co, result);
}

static void slot_finish(slot_waiter_t *w, int result)
{
    if (w->finished)
        return;
    w->finished = true;
    if (w->linked) {
        if (w->prev != NULL)
            w->prev->next = w->next;
        else
            w->o->waiters_head = w->next;
        if (w->next != NULL)
            w->next->prev = w->prev;
        else
            w->o->waiters_tail = w->prev;
        w->linked = false;
    }
    w->result = result;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_slot_closed); /* resumes from the close callback, on the loop's stack */
}

static void on_slot_timeout(uv_timer_t *t)
{
    slot_finish(t->data, K2A_EBUSY);
}

static void on_slot_cancel(k2a_coro_t *co, void *data)
{
    slot_finish(data, K2A_ECANCELED);
}

static int slot_wait(origin_t *o, uint64_t timeout_ms)
{
    if (k2a_coro_canceled(k2a_coro_current()))
        return K2A_ECANCELED;
    slot_waiter_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return K2A_ENOMEM;
    w->o = o;
    w->co = k2a_coro_current();
    uv_timer_init(o->up->loop, &w->timer);
    w->timer.data = w;
    w->prev = o->waiters_tail;
    if (o->waiters_tail != NULL)
        o->waiters_tail->next = w;
    else
        o->waiters_head = w;
    o->waiters_tail = w;
    w->linked = true;
    if (timeout_ms != 0) {
        uv_update_time(o->up->loop);
        uv_timer_start(&w->timer, on_slot_timeout, timeout_ms, 0);
    }
    return (int)k2a_coro_park(on_slot_cancel, w);
}

static void slot_signal(origin_t *o)
{
    if (o->waiters_head != NULL)
        slot_finish(o->waiters_head, 0);
}

static void slot_give_back(origin_t *o)
{
    --o->nconns;
    slot_signal(o);
}

/* ---- affinity keys ---- */

static size_t aff_bucket(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & (cap - 1);
}

/* The origin's entry for key, created on first use. NULL without memory. */
static aff_t *aff_get(origin_t *o, uint64_t key)
{
    if (o->affs != NULL)
        for (aff_t *a = o->affs[aff_bucket(key, o->naffs_cap)]; a != NULL; a = a->next)
            if (a->key == key)
                return a;
    if (o->affs == NULL || o->naffs >= 2 * o->naffs_cap) {
        /* (re)hash: chains stay short however many accounts the pool holds */
        size_t cap = o->affs == NULL ? 16 : 2 * o->naffs_cap;
        aff_t **t = calloc(cap, sizeof(*t));
        if (t == NULL)
            return NULL;
        for (size_t i = 0; i < o->naffs_cap; ++i)
            for (aff_t *a = o->affs[i], *n; a != NULL; a = n) {
                n = a->next;
                size_t b = aff_bucket(a->key, cap);
                a->next = t[b];
                t[b] = a;
            }
        free(o->affs);
        o->affs = t;
        o->naffs_cap = cap;
    }
    aff_t *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    a->key = key;
    size_t b = aff_bucket(key, o->naffs_cap);
    a->next = o->affs[b];
    o->affs[b] = a;
    ++o->naffs;
    return a;
}

static void affs_free(origin_t *o)
{
    for (size_t i = 0; i < o->naffs_cap; ++i)
        for (aff_t *a = o->affs[i], *n; a != NULL; a = n) {
            n = a->next;
            if (a->session != NULL)
                SSL_SESSION_free(a->session);
            free(a);
        }
    free(o->affs);
    o->affs = NULL;
    o->naffs = o->naffs_cap = 0;
}

/* ---- pool: every idle connection is on two lists, its origin's (LRU order, for eviction) and its key's (for reuse) ---- */

static void idle_link(conn_t *c)
{
    origin_t *o = c->origin;
    aff_t *a = c->aff;
    c->idle = 1;
    c->idle_prev = NULL;
    c->idle_next = o->idle;
    if (o->idle != NULL)
        o->idle->idle_prev = c;
    else
        o->idle_tail = c;
    o->idle = c;
    ++o->nidle;
    c->aff_prev = NULL;
    c->aff_next = a->idle;
    if (a->idle != NULL)
        a->idle->aff_prev = c;
    a->idle = c;
    ++a->nidle;
    ++o->up->stats.conns_idle;
}

static void idle_unlink(conn_t *c)
{
    origin_t *o = c->origin;
    aff_t *a = c->aff;
    if (c->idle_prev != NULL)
        c->idle_prev->idle_next = c->idle_next;
    else
        o->idle = c->idle_next;
    if (c->idle_next != NULL)
        c->idle_next->idle_prev = c->idle_prev;
    else
        o->idle_tail = c->idle_prev;
    c->idle_next = c->idle_prev = NULL;
    if (c->aff_prev != NULL)
        c->aff_prev->aff_next = c->aff_next;
    else
        a->idle = c->aff_next;
    if (c->aff_next != NULL)
        c->aff_next->aff_prev = c->aff_prev;
    c->aff_next = c->aff_prev = NULL;
    --a->nidle;
    c->idle = 0;
    --o->nidle;
    --o->up->stats.conns_idle;
}

/* Closes the origin's least recently used idle connection (whatever its key) to make room. */
static void evict_lru(origin_t *o)
{
    ++o->up->stats.conns_idle_closed;
    ++o->up->stats.conns_evicted;
    k2a_up_conn_close(o->idle_tail); /* unlinks it and gives its slot back (k2a_up_pool_on_conn_closed) */
}

void k2a_up_pool_on_conn_closed(conn_t *c)
{
    if (c->idle)
        idle_unlink(c);
    if (c->holds_slot) {
        c->holds_slot = 0;
        --c->up->stats.conns_open;
        slot_give_back(c->origin);
    }
}

void k2a_up_pool_on_new_session(conn_t *c, SSL_SESSION *sess)
{
    aff_t *a = c->aff;
    if (a == NULL) {
        SSL_SESSION_free(sess);
        return;
    }
    if (a->session != NULL)
        SSL_SESSION_free(a->session);
    a->session = sess;
}

static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    conn_t *c = SSL_get_app_data(ssl);
    if (c == NULL || c->aff == NULL)
        return 0;
    k2a_up_pool_on_new_session(c, sess);
    return 1; /* we keep the reference */
}

static void pool_put(conn_t *c)
{
    origin_t *o = c->origin;
    k2a_upstream_t *up = o->up;
    bool key_full = c->aff->key != 0 && c->aff->nidle >= up->cfg.max_idle_per_affinity;
    /* no peek here: the idle read drops the connection if anything is left, and acquire peeks */
    if (up->cfg.max_idle_per_origin == 0 || key_full || !k2a_up_conn_usable(c, false)) {
        ++up->stats.conns_idle_closed;
        k2a_up_conn_release(c);
        return;
    }
    if (o->nidle >= up->cfg.max_idle_per_origin)
        evict_lru(o); /* the newest connection is the likeliest to be wanted again */
    c->owned = 0;
    idle_link(c);
    k2a_up_conn_idle_start(c, up->cfg.pool_idle_timeout_ms);
    slot_signal(o);
}

/* Takes an idle connection of key a (*out) or a slot for a new one (*out == NULL). At the origin's connection limit, an idle
 * connection of another key is closed for the slot rather than waiting for a busy one to finish. */
static int acquire(origin_t *o, aff_t *a, bool allow_idle, uint32_t timeout_ms, conn_t **out)
{
    k2a_upstream_t *up = o->up;
    uint64_t deadline = timeout_ms != 0 ? uv_now(up->loop) + timeout_ms : UINT64_MAX;
    *out = NULL;
    for (;;) {
        while (allow_idle && a->idle != NULL) {
            conn_t *c = a->idle;
            idle_unlink(c);
            k2a_up_conn_idle_stop(c);
            c->owned = 1;
            if (k2a_up_conn_usable(c, true)) {
                *out = c;
                return 0;
            }
            ++up->stats.conns_idle_closed;
            k2a_up_conn_release(c);
        }
        if (o->nconns < up->cfg.max_conns_per_origin) {
            ++o->nconns;
            return 0;
        }
        if (o->idle_tail != NULL) {
            evict_lru(o);
            continue;
        }
        uint64_t now = uv_now(up->loop);
        if (now >= deadline)
            return K2A_EBUSY;
        int r = slot_wait(o, deadline == UINT64_MAX ? 0 : deadline - now);
        if (r != 0)
            return r;
    }
}

static origin_t *origin_get(k2a_upstream_t *up, const k2a_url_t *url, const char *host, bool proxied)
{
    origin_t *o;
    for (o = up->origins; o != NULL; o = o->next)
        if (o->port == url->port && o->tls == url->tls && o->proxied == proxied && strcasecmp(o->host, host) == 0)
            return o;
    if ((o = calloc(1, sizeof(*o))) == NULL || (o->host = strdup(host)) == NULL) {
        free(o);
        return NULL;
    }
    o->up = up;
    o->port = url->port;
    o->tls = url->tls;
    o->proxied = proxied;
    o->next = up->origins;
    up->origins = o;
    return o;
}

#define ORIGIN_HOST_MAX 256

/* origin_get with the URL's host made NUL-terminated in a frame of its own (not the one that waits for the answer). */
static __attribute__((noinline)) origin_t *origin_find(k2a_upstream_t *up, const k2a_url_t *url, bool proxied)
{
    char host[ORIGIN_HOST_MAX];
    memcpy(host, url->host.base, url->host.len);
    host[url->host.len] = '\0';
    return origin_get(up, url, host, proxied);
}

/* DNS, TCP (next address on failure), proxy tunnel, TLS. The slot is the caller's. Not inlined: its addresses are not part
 * of the frame that waits for the answer (a stream waits there for its first byte; see k2a_coro_trim_stack). */
static __attribute__((noinline)) int establish(k2a_upstream_t *up, origin_t *o, aff_t *aff, uint32_t connect_timeout_ms,
                                               conn_t **out)
{
    const char *host = o->proxied ? up->proxy_host : o->host;
    uint16_t port = o->proxied ? up->proxy.port : o->port;
    dns_addrs_t addrs;
    int r = k2a_up_dns_resolve(up->dns, host, port, &addrs, up->cfg.dns_timeout_ms);
    if (r != 0) {
        if (o->proxied && r != K2A_ECANCELED) {
            k2a_warn("upstream: cannot resolve the proxy %s: %s", host, k2a_strerror(r));
            return K2A_EPROXY;
        }
        return r;
    }
    uint64_t deadline = connect_timeout_ms != 0 ? uv_now(up->loop) + connect_timeout_ms : UINT64_MAX;
    conn_t *c = NULL;
    int err = K2A_ECONNECT;
    for (size_t i = 0; i < addrs.n; ++i) {
        uint64_t now = uv_now(up->loop), attempt = 0;
        if (deadline != UINT64_MAX) {
            if (now >= deadline) {
                err = K2A_ECONNECT_TIMEOUT;
                break;
            }
            /* happy-eyeballs-lite: share what is left among the addresses still to try, the last one gets all of it */
            attempt = (deadline - now) / (addrs.n - i);
            if (attempt == 0)
                attempt = 1;
        }
        r = k2a_up_conn_open(up, o, &addrs.addr[i], attempt, &c);
        if (r == 0) {
            c->aff = aff;
            break;
        }
        err = r;
        if (r == K2A_ECANCELED || r == K2A_ENOMEM || r == K2A_ENOFD)
            return r;
        ++up->stats.connect_failures;
        k2a_debug("upstream: connect to %s:%u (address %zu of %zu) failed: %s", host, port, i + 1, addrs.n, k2a_errname(r));
    }
    if (c == NULL) {
        if (o->proxied && err != K2A_ECONNECT_TIMEOUT) {
            k2a_warn("upstream: cannot connect to the proxy %s:%u: %s", host, port, k2a_strerror(err));
            return K2A_EPROXY;
        }
        return err;
    }
    uint64_t left = 0;
    if (deadline != UINT64_MAX) {
        uint64_t now = uv_now(up->loop);
        left = deadline > now ? deadline - now : 1;
    }
    if (o->proxied && (r = k2a_up_conn_proxy_connect(c, o->host, o->port, up->proxy_auth, left)) != 0) {
        k2a_up_conn_release(c);
        return r;
    }
    if (o->tls) {
        if (deadline != UINT64_MAX) {
            uint64_t now = uv_now(up->loop);
            left = deadline > now ? deadline - now : 1;
        }
        if ((r = k2a_up_conn_tls_handshake(c, up->ssl_ctx, o->host, !up->cfg.tls_insecure, left)) != 0) {
            k2a_up_conn_release(c);
            return r;
        }
    }
    *out = c;
    return 0;
}

static k2a_upstream_outcome_t classify(int rc, int status)
{
    switch (rc) {
    case 0:
        return status >= 500 ? K2A_UPSTREAM_HTTP_5XX : status >= 400 ? K2A_UPSTREAM_HTTP_4XX : K2A_UPSTREAM_OK;
    case K2A_EDNS:
    case K2A_EDNS_TIMEOUT:
        return K2A_UPSTREAM_FAIL_DNS;
    case K2A_ECONNECT_REFUSED:
    case K2A_ECONNECT_TIMEOUT:
    case K2A_ECONNECT:
    case K2A_EBUSY:
        return K2A_UPSTREAM_FAIL_CONNECT;
    case K2A_ETLS_VERIFY:
    case K2A_ETLS_HANDSHAKE:
    case K2A_ETLS:
        return K2A_UPSTREAM_FAIL_TLS;
    case K2A_EPROXY:
        return K2A_UPSTREAM_FAIL_PROXY;
    case K2A_EFIRST_BYTE_TIMEOUT:
    case K2A_EIDLE_TIMEOUT:
        return K2A_UPSTREAM_FAIL_TIMEOUT;
    case K2A_ERESET_BEFORE_RESPONSE:
        return K2A_UPSTREAM_FAIL_RESET;
    case K2A_EHTTP_PARSE:
    case K2A_EHEADER_TOOBIG:
        return K2A_UPSTREAM_FAIL_PROTOCOL;
    case K2A_ECANCELED:
        return K2A_UPSTREAM_FAIL_CANCELED;
    default:
        return K2A_UPSTREAM_FAIL_OTHER;
    }
}

int k2a_upstream_request(k2a_upstream_t *up, const k2a_http_request_t *req, k2a_http_response_t **respp)
{
    *respp = NULL;
    k2a_coro_t *co = k2a_coro_current();
    if (co == NULL || req->url == NULL || req->method == NULL || req->url->host.len == 0 || (req->nbody > 0 && req->body == NULL))
        return K2A_EINVAL;
    const k2a_url_t *url = req->url;
    if (url->host.len >= ORIGIN_HOST_MAX)
        return K2A_EBAD_URL;
    bool proxied = up->proxy_host != NULL && !k2a_no_proxy_match(up->cfg.no_proxy, url->host);
    uint32_t connect_timeout = req->connect_timeout_ms != 0 ? req->connect_timeout_ms : up->cfg.connect_timeout_ms;
    uint32_t fb_timeout = req->first_byte_timeout_ms != 0 ? req->first_byte_timeout_ms : up->cfg.first_byte_timeout_ms;
    uint32_t idle_timeout = req->idle_timeout_ms != 0 ? req->idle_timeout_ms : up->cfg.idle_timeout_ms;
    uv_update_time(up->loop); /* deadlines below start from now, not from the start of this loop iteration */

    int rc;
    resp_t *r = NULL;
    origin_t *o = origin_find(up, url, proxied);
    aff_t *aff = o != NULL ? aff_get(o, req->affinity) : NULL;
    bool close = req->close || up->cfg.reuse_never;
    if (aff == NULL || (r = k2a_up_http_resp_create(up)) == NULL) {
        rc = K2A_ENOMEM;
        goto done;
    }
    ++up->inflight;
    bool retried = false;
    for (;;) {
        if (k2a_coro_canceled(co)) {
            rc = K2A_ECANCELED;
            break;
        }
        conn_t *c;
        if ((rc = acquire(o, aff, !retried && !close, connect_timeout, &c)) != 0)
            break;
        bool reused = c != NULL;
        if (reused) {
            ++up->stats.conns_reused;
        } else {
            if ((rc = establish(up, o, aff, connect_timeout, &c)) != 0) {
                slot_give_back(o);
                break;
            }
            c->holds_slot = 1;
            ++up->stats.conns_open;
            ++up->stats.conns_opened;
        }
        r->conn = c;
        r->idle_timeout_ms = idle_timeout;
        r->close_conn = close;
        rc = k2a_up_http_exchange(r, req, fb_timeout);
        if (rc == 0) {
            r->pub.reused = reused;
            r->pub.tls_resumed = c->tls_resumed;
            r->pub.retried = retried;
            break;
        }
        k2a_up_conn_release(c);
        r->conn = NULL;
        if (reused && !retried && !r->got_bytes && rc == K2A_ERESET_BEFORE_RESPONSE && !k2a_coro_canceled(co)) {
            k2a_debug("upstream: reused connection to %s:%u failed before the response; retrying on a new one", o->host, url->port);
            retried = true;
            ++up->stats.retries;
            continue;
        }
        break;
    }
done:
    ++up->stats.requests[classify(rc, rc == 0 ? r->pub.status : 0)];
    if (rc != 0) {
        if (r != NULL) {
            k2a_up_http_resp_free(r);
            --up->inflight;
        }
        return rc;
    }
    *respp = &r->pub;
    return 0;
}

/* A reader may stop at the answer's last frame, before the body's end: the chunked terminator often comes in a TLS record
 * (or a segment) of its own. What has arrived already is read here without waiting, so that the connection can go back
 * to the pool; a few unread body bytes are dropped (the reader wanted no more). Anything else, or an end that is not there
 * yet, closes the connection as before. */
static void finish_unread(resp_t *r)
{
    char buf[512];
    for (int pieces = 0; pieces < 8 && !r->done; ++pieces) {
        char *p = buf, *out;
        intptr_t n;
        if (r->pending_len > 0) {
            p = r->pending;
            n = (intptr_t)r->pending_len;
            r->pending_len = 0;
        } else if ((n = k2a_up_conn_read_nowait(r->conn, buf, sizeof(buf))) <= 0) {
            break;
        }
        if (k2a_up_http_body_piece(r, p, (size_t)n, &out) < 0 || r->deferred_error != 0)
            break;
    }
}

static bool tail_worth(const resp_t *r)
{
    const conn_t *c = r->conn;
    return c != NULL && !r->done && r->keepalive && r->error == 0 && r->deferred_error == 0 && !c->closing && !c->eof &&
           (r->mode == BODY_CHUNKED || r->mode == BODY_LENGTH);
}

typedef struct st_up_tail_t {
    struct st_up_tail_t *next, **pprev;
    k2a_upstream_t *up;
    resp_t *r;
    k2a_coro_t *co;
} up_tail_t;

/* A background coroutine reads the rest of a released response, each read bounded by the tail wait, at most
 * K2A_UPSTREAM_TAIL_MAX_BYTES in all; then the connection is pooled (the body ended cleanly) or closed. */
static void tail_main(k2a_coro_t *co, void *arg)
{
    up_tail_t *t = arg;
    resp_t *r = t->r;
    k2a_upstream_t *up = t->up;
    size_t dropped = 0;
    (void)co;
    r->idle_timeout_ms = K2A_UPSTREAM_TAIL_WAIT_MS;
    for (;;) {
        const char *d;
        intptr_t n = k2a_upstream_read(&r->pub, &d);
        if (n <= 0)
            break;
        if ((dropped += (size_t)n) > K2A_UPSTREAM_TAIL_MAX_BYTES) {
            r->keepalive = false;
            break;
        }
    }
    conn_t *c = r->conn;
    if (r->done && r->keepalive && r->error == 0 && !c->closing && !c->eof && !up->quiescing) {
        ++up->stats.tails_kept;
        pool_put(c);
    } else {
        k2a_up_conn_release(c);
    }
    k2a_up_http_resp_free(r);
    if ((*t->pprev = t->next) != NULL)
        t->next->pprev = t->pprev;
    --up->ntails;
    free(t);
}

void k2a_upstream_release_ended(k2a_http_response_t *resp)
{
    if (resp == NULL)
        return;
    resp_t *r = (resp_t *)resp;
    k2a_upstream_t *up = r->up;
    if (tail_worth(r))
        finish_unread(r);
    up_tail_t *t;
    if (!tail_worth(r) || up->quiescing || (t = calloc(1, sizeof(*t))) == NULL) {
        k2a_upstream_release(resp);
        return;
    }
    if ((t->co = k2a_coro_create(tail_main, t)) == NULL) { /* at the coroutine limit: close, as without a tail */
        free(t);
        k2a_upstream_release(resp);
        return;
    }
    t->up = up;
    t->r = r;
    if ((t->next = up->tails) != NULL)
        t->next->pprev = &t->next;
    t->pprev = &up->tails;
    up->tails = t;
    ++up->ntails;
    --up->inflight; /* the caller is done with it; the tail is counted in ntails */
    ++up->stats.tails;
    k2a_coro_wake(t->co, 0); /* starts from the loop, never nested in the caller's coroutine */
}

void k2a_upstream_quiesce(k2a_upstream_t *up)
{
    up->quiescing = true;
    for (up_tail_t *t = up->tails; t != NULL; t = t->next)
        k2a_coro_cancel(t->co);
}

size_t k2a_upstream_tails(const k2a_upstream_t *up)
{
    return up->ntails;
}

void k2a_upstream_release(k2a_http_response_t *resp)
{
    if (resp == NULL)
        return;
    resp_t *r = (resp_t *)resp;
    conn_t *c = r->conn;
    if (c != NULL) {
        if (r->done && r->keepalive && r->error == 0 && !c->closing && !c->eof)
            pool_put(c);
        else
            k2a_up_conn_release(c);
    }
    --r->up->inflight;
    k2a_up_http_resp_free(r);
}

bool k2a_upstream_keeps_alive(const k2a_upstream_t *up)
{
    return !up->cfg.reuse_never;
}

void k2a_upstream_get_stats(const k2a_upstream_t *up, k2a_upstream_stats_t *out)
{
    *out = up->stats;
}

/* ---- create / destroy ---- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* "Basic " + base64(percent-decoded userinfo) */
static char *make_basic_auth(k2a_str_t userinfo)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *raw = malloc(userinfo.len + 1);
    if (raw == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < userinfo.len; ++i) {
        int h, l;
        if (userinfo.base[i] == '%' && i + 2 < userinfo.len && (h = hexval(userinfo.base[i + 1])) >= 0 &&
            (l = hexval(userinfo.base[i + 2])) >= 0) {
            raw[n++] = (char)(h * 16 + l);
            i += 2;
        } else {
            raw[n++] = userinfo.base[i];
        }
    }
    char *out = malloc(6 + (n + 2) / 3 * 4 + 1);
    if (out == NULL) {
        free(raw);
        return NULL;
    }
    memcpy(out, "Basic ", 6);
    char *o = out + 6;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)raw[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)(unsigned char)raw[i + 1] << 8;
        if (i + 2 < n)
            v |= (unsigned char)raw[i + 2];
        *o++ = b64[(v >> 18) & 63];
        *o++ = b64[(v >> 12) & 63];
        *o++ = i + 1 < n ? b64[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? b64[v & 63] : '=';
    }
    *o = '\0';
    OPENSSL_cleanse(raw, n);
    free(raw);
    return out;
}

static int setup_tls(k2a_upstream_t *up)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return K2A_ENOMEM;
    up->ssl_ctx = ctx;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    static const unsigned char alpn[] = "\x08http/1.1";
    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    if (up->cfg.tls_insecure) {
        k2a_warn("upstream: KIRO_TLS_INSECURE is set: upstream TLS certificates and host names are NOT verified");
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        return 0;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(ctx) != 1)
        k2a_warn("upstream: the system CA store could not be loaded");
    if (up->cfg.ca_file != NULL && SSL_CTX_load_verify_locations(ctx, up->cfg.ca_file, NULL) != 1) {
        k2a_error("upstream: cannot load the CA file %s", up->cfg.ca_file);
        ERR_clear_error();
        return K2A_ECONFIG;
    }
    ERR_clear_error();
    return 0;
}

static int copy_strings(k2a_upstream_t *up, const k2a_upstream_config_t *cfg)
{
    const char **fields[] = {&up->cfg.dns_servers, &up->cfg.ca_file, &up->cfg.proxy, &up->cfg.no_proxy};
    size_t total = 0;
    for (size_t i = 0; i < 4; ++i)
        if (*fields[i] != NULL)
            total += strlen(*fields[i]) + 1;
    if (total == 0)
        return 0;
    if ((up->strings = malloc(total)) == NULL)
        return K2A_ENOMEM;
    char *p = up->strings;
    for (size_t i = 0; i < 4; ++i) {
        if (*fields[i] == NULL)
            continue;
        size_t n = strlen(*fields[i]) + 1;
        memcpy(p, *fields[i], n);
        *fields[i] = p;
        p += n;
    }
    return 0;
}

static int setup_proxy(k2a_upstream_t *up)
{
    const char *p = up->cfg.proxy;
    if (p == NULL || *p == '\0')
        return 0;
    if (k2a_url_parse(p, strlen(p), &up->proxy) != 0 || up->proxy.tls) {
        k2a_error("upstream: unsupported proxy URL (expected http://[user:pass@]host:port)");
        return K2A_ECONFIG;
    }
    if ((up->proxy_host = strndup(up->proxy.host.base, up->proxy.host.len)) == NULL)
        return K2A_ENOMEM;
    if (up->proxy.userinfo.base != NULL) {
        if ((up->proxy_auth = make_basic_auth(up->proxy.userinfo)) == NULL)
            return K2A_ENOMEM;
        k2a_log_add_secret(up->proxy_auth + 6, strlen(up->proxy_auth + 6));
        const char *colon = memchr(up->proxy.userinfo.base, ':', up->proxy.userinfo.len);
        if (colon != NULL)
            k2a_log_add_secret(colon + 1, up->proxy.userinfo.base + up->proxy.userinfo.len - colon - 1);
    }
    k2a_info("upstream: HTTPS requests go through the proxy %s:%u%s", up->proxy_host, up->proxy.port,
             up->proxy_auth != NULL ? " (basic auth)" : "");
    return 0;
}

static void free_up(k2a_upstream_t *up)
{
    k2a_up_conn_bufs_free(up);
    if (up->ssl_ctx != NULL)
        SSL_CTX_free(up->ssl_ctx);
    if (up->proxy_auth != NULL)
        OPENSSL_cleanse(up->proxy_auth, strlen(up->proxy_auth));
    free(up->proxy_auth);
    free(up->proxy_host);
    free(up->strings);
    free(up);
}

int k2a_upstream_create(uv_loop_t *loop, const k2a_upstream_config_t *cfg, k2a_upstream_t **out)
{
    k2a_upstream_t *up = calloc(1, sizeof(*up));
    if (up == NULL)
        return K2A_ENOMEM;
    up->loop = loop;
    up->cfg = *cfg;
    if (up->cfg.max_headers == 0)
        up->cfg.max_headers = 100;
    if (up->cfg.max_header_bytes == 0)
        up->cfg.max_header_bytes = 64 * 1024;
    if (up->cfg.max_conns_per_origin == 0)
        up->cfg.max_conns_per_origin = 256;
    if (up->cfg.dns_timeout_ms == 0)
        up->cfg.dns_timeout_ms = 5000;
    if (up->cfg.max_idle_per_affinity == 0)
        up->cfg.max_idle_per_affinity = 32;
    int r;
    if ((r = copy_strings(up, cfg)) != 0 || (r = setup_proxy(up)) != 0 || (r = setup_tls(up)) != 0 ||
        (r = k2a_up_dns_create(loop, &up->cfg, &up->stats, &up->dns)) != 0) {
        free_up(up);
        return r;
    }
    *out = up;
    return 0;
}

void k2a_upstream_destroy(k2a_upstream_t *up)
{
    if (up == NULL)
        return;
    if (up->inflight != 0)
        k2a_error("upstream: destroyed with %zu requests or responses still alive", up->inflight);
    if (up->ntails != 0) { /* their coroutines still hold the client: leave it allocated rather than pull it from under them */
        k2a_error("upstream: destroyed with %zu response tails still being read; client left allocated", up->ntails);
        k2a_upstream_quiesce(up);
        return;
    }
    while (up->origins != NULL) {
        origin_t *o = up->origins;
        up->origins = o->next;
        while (o->idle != NULL)
            k2a_up_conn_close(o->idle);
        while (o->waiters_head != NULL)
            slot_finish(o->waiters_head, K2A_ECANCELED);
        affs_free(o);
        free(o->host);
        free(o);
    }
    k2a_up_dns_destroy(up->dns);
    free_up(up);
}
