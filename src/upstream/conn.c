/*
 * One upstream connection: a uv_tcp_t, optionally tunnelled through an HTTP CONNECT proxy, optionally
 * wrapped in TLS by OpenSSL over two memory BIOs (socket bytes go into rbio, SSL_read gives plaintext;
 * SSL_write fills wbio, whose buffer is handed to uv_write without another copy). A coroutine awaits
 * connect, read and write completions by parking on the connection; one timer per connection bounds the
 * current await, and a cancel closes the connection so that nothing can come back to the pool half-read.
 *
 * Reading is active only while a coroutine waits for bytes or while the connection sits idle in the
 * pool (where any byte or EOF from the peer drops it), so that a slow consumer applies backpressure.
 * The read buffers come from the client's free list while bytes are being handed over (see internal.h):
 * a reader keeps its bytes until it asks for more, and a connection that waits holds no buffer.
 */
#include <errno.h>
#include <stddef.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "core/errors.h"
#include "core/log.h"
#include "upstream/internal.h"

#define TLS_WRITE_BATCH (256 * 1024) /* plaintext encrypted before each socket write */
#define PROXY_HEAD_MAX (16 * 1024)

/* ---- read buffers ---- */

static char *buf_take(k2a_upstream_t *up)
{
    char *p = up->free_bufs;
    if (p != NULL) {
        memcpy(&up->free_bufs, p, sizeof(up->free_bufs));
        --up->nfree_bufs;
    } else if ((p = malloc(CONN_BUF_SIZE)) == NULL) {
        return NULL;
    }
    ++up->stats.read_bufs_held;
    return p;
}

/* Gives *slot back to the free list (nothing when it is NULL) and clears it. */
static void buf_give(k2a_upstream_t *up, char **slot)
{
    char *p = *slot;
    if (p == NULL)
        return;
    *slot = NULL;
    --up->stats.read_bufs_held;
    if (up->nfree_bufs >= CONN_BUF_KEEP) {
        free(p);
        return;
    }
    memcpy(p, &up->free_bufs, sizeof(up->free_bufs));
    up->free_bufs = p;
    ++up->nfree_bufs;
}

void k2a_up_conn_bufs_free(k2a_upstream_t *up)
{
    while (up->free_bufs != NULL) {
        char *p = up->free_bufs;
        memcpy(&up->free_bufs, p, sizeof(up->free_bufs));
        free(p);
    }
    up->nfree_bufs = 0;
}

/* ---- lifetime ---- */

static void conn_free(conn_t *c)
{
    if (c->ssl != NULL) {
        /* SSL_free marks the session unresumable unless a shutdown was seen; we close TCP without close_notify (HTTP
         * framing already told where the response ended), which must not cost the next connection its resumption. A
         * connection that failed at the TLS layer keeps the default. */
        if (!c->tls_failed)
            SSL_set_shutdown(c->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        SSL_free(c->ssl); /* frees both BIOs */
    }
    free(c->rbuf); /* not to the free list: the client may be gone already */
    free(c->pbuf);
    free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->pending_closes == 0 && !c->owned)
        conn_free(c);
}

void k2a_up_conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    uv_timer_stop(&c->timer);
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    k2a_up_pool_on_conn_closed(c);
    if (c->wait_kind == CONN_WAIT_READ && c->waiter != NULL) {
        /* a read has no request that the close would complete: wake the reader (never resume: we may be on a coroutine) */
        k2a_coro_t *co = c->waiter;
        c->waiter = NULL;
        c->wait_kind = CONN_WAIT_NONE;
        k2a_coro_wake(co, c->abort_err != 0 ? c->abort_err : K2A_ECLOSED);
    }
    /* a pending connect or write completes with UV_ECANCELED from the close and resumes its waiter with abort_err */
}

void k2a_up_conn_release(conn_t *c)
{
    buf_give(c->up, &c->rbuf); /* the owner is done with the bytes it read */
    buf_give(c->up, &c->pbuf);
    c->owned = 0;
    if (!c->closing)
        k2a_up_conn_close(c);
    else if (c->pending_closes == 0)
        conn_free(c);
}

/* ---- awaits ---- */

static void wait_done(conn_t *c, intptr_t result)
{
    k2a_coro_t *co = c->waiter;
    c->waiter = NULL;
    c->wait_kind = CONN_WAIT_NONE;
    uv_timer_stop(&c->timer);
    k2a_coro_resume(co, result);
}

static void on_wait_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    switch (c->wait_kind) {
    case CONN_WAIT_READ:
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = 0;
        }
        wait_done(c, c->timeout_err);
        break;
    case CONN_WAIT_CONNECT:
    case CONN_WAIT_WRITE:
        /* neither can be withdrawn: close, and the request's callback (UV_ECANCELED) resumes the waiter */
        c->abort_err = c->timeout_err;
        k2a_up_conn_close(c);
        break;
    default:
        break;
    }
}

static void on_wait_cancel(k2a_coro_t *co, void *data)
{
    conn_t *c = data;
    c->abort_err = K2A_ECANCELED;
    k2a_up_conn_close(c);
}

static intptr_t conn_wait(conn_t *c, int kind, uint64_t timeout_ms, int timeout_err)
{
    c->waiter = k2a_coro_current();
    c->wait_kind = kind;
    c->timeout_err = timeout_err;
    if (timeout_ms != 0) {
        uv_update_time(c->up->loop); /* the loop's cached time may be a whole iteration old */
        uv_timer_start(&c->timer, on_wait_timer, timeout_ms, 0);
    }
    return k2a_coro_park(on_wait_cancel, c);
}

static int closed_err(conn_t *c)
{
    return c->abort_err != 0 ? c->abort_err : K2A_ECLOSED;
}

/* ---- connect ---- */

static void on_connect(uv_connect_t *req, int status)
{
    conn_t *c = req->data;
    int r;
    switch (status) {
    case 0:
        r = 0;
        break;
    case UV_ECANCELED:
        r = closed_err(c);
        break;
    case UV_ECONNREFUSED:
        r = K2A_ECONNECT_REFUSED;
        break;
    case UV_ETIMEDOUT:
        r = K2A_ECONNECT_TIMEOUT;
        break;
    case UV_EMFILE:
    case UV_ENFILE:
        r = K2A_ENOFD;
        break;
    default:
        r = K2A_ECONNECT;
        break;
    }
    wait_done(c, r);
}

int k2a_up_conn_open(k2a_upstream_t *up, origin_t *origin, const k2a_sockaddr_t *addr, uint64_t timeout_ms, conn_t **out)
{
    *out = NULL;
    if (k2a_coro_canceled(k2a_coro_current()))
        return K2A_ECANCELED;
    conn_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return K2A_ENOMEM;
    c->up = up;
    c->origin = origin;
    c->owned = 1;
    uv_tcp_init(up->loop, &c->tcp);
    uv_timer_init(up->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect_req.data = c;
    c->write_req.data = c;
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_tcp_connect(&c->connect_req, &c->tcp, &addr->sa, on_connect);
    if (r != 0) {
        k2a_up_conn_release(c);
        /* out of descriptors is this process's trouble, never the account's */
        return r == UV_ECONNREFUSED               ? K2A_ECONNECT_REFUSED
               : r == UV_ENOMEM                   ? K2A_ENOMEM
               : r == UV_EMFILE || r == UV_ENFILE ? K2A_ENOFD
                                                  : K2A_ECONNECT;
    }
    if ((r = (int)conn_wait(c, CONN_WAIT_CONNECT, timeout_ms, K2A_ECONNECT_TIMEOUT)) != 0) {
        k2a_up_conn_release(c);
        return r;
    }
    uv_tcp_keepalive(&c->tcp, 1, 60);
    *out = c;
    return 0;
}

/* ---- raw socket I/O ---- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    if (c->rbuf == NULL)
        c->rbuf = buf_take(c->up);
    buf->base = c->rbuf;
    buf->len = c->rbuf != NULL ? CONN_RBUF_SIZE : 0; /* 0: libuv reports UV_ENOBUFS, which fails the read */
}

static void stop_reading(conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* Processes TLS records that arrived while no request was reading: a TLS 1.3 server may send session tickets after the
 * response, and those keep the connection. False when the records held application data or an alert, or need an answer
 * (a key update): such a connection is not reused. */
static bool tls_idle_ok(conn_t *c)
{
    if (SSL_pending(c->ssl) > 0)
        return false;
    if (BIO_ctrl_pending(c->rbio) == 0)
        return true;
    bool had = c->pbuf != NULL;
    if (!had && (c->pbuf = buf_take(c->up)) == NULL)
        return false;
    ERR_clear_error();
    int n = SSL_read(c->ssl, c->pbuf, CONN_PBUF_SIZE);
    bool ok = n <= 0 && SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ && BIO_ctrl_pending(c->wbio) == 0;
    ERR_clear_error();
    if (!had)
        buf_give(c->up, &c->pbuf);
    return ok;
}

static void on_idle_read(conn_t *c, ssize_t nread)
{
    bool ok = nread > 0 && c->ssl != NULL && BIO_write(c->rbio, c->rbuf, (int)nread) == nread;
    buf_give(c->up, &c->rbuf);
    if (ok && tls_idle_ok(c))
        return;
    k2a_debug("upstream: idle connection to %s:%u dropped (%s)", c->origin->host, c->origin->port,
              nread > 0 ? "unexpected bytes" : "closed by the peer");
    ++c->up->stats.conns_idle_closed;
    k2a_up_conn_close(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = s->data;
    if (nread <= 0)
        buf_give(c->up, &c->rbuf); /* nothing landed in it (EAGAIN), or the stream ended */
    if (nread == 0)
        return;
    if (c->idle) {
        on_idle_read(c, nread);
        return;
    }
    if (c->wait_kind != CONN_WAIT_READ) {
        /* taken from the pool, the response not asked for yet (reading stays on from the pool to that first read): an
         * early answer or a close waits for it */
        stop_reading(c);
        ++c->up->stats.reads_early;
        if (nread > 0)
            c->held = nread;
        else
            c->eof = 1;
        return;
    }
    intptr_t result = nread;
    if (nread < 0) {
        c->eof = 1;
        stop_reading(c);
        result = nread == UV_EOF ? 0 : K2A_ECLOSED;
    }
    wait_done(c, result);
    /* the coroutine ran: keep reading only if it waits for more bytes (or parked the connection in the pool, or took it
     * from there again for its next request) */
    if (c->reading && !c->idle && !c->taken && c->wait_kind != CONN_WAIT_READ)
        stop_reading(c);
}

/* Awaits one socket read into c->rbuf (taken when the bytes arrive; NULL unless bytes came): bytes (> 0), 0 at EOF, or an
 * error. The previous bytes are given up first. */
static intptr_t raw_read(conn_t *c, uint64_t timeout_ms, int timeout_err)
{
    c->taken = 0;
    if (c->held > 0) { /* came while nobody waited: already in rbuf */
        intptr_t n = c->held;
        c->held = 0;
        return n;
    }
    buf_give(c->up, &c->rbuf);
    if (c->closing)
        return closed_err(c);
    if (c->eof)
        return 0;
    if (k2a_coro_canceled(k2a_coro_current()))
        return K2A_ECANCELED;
    if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
            return K2A_ECLOSED;
        c->reading = 1;
    }
    return conn_wait(c, CONN_WAIT_READ, timeout_ms, timeout_err);
}

static void on_write(uv_write_t *req, int status)
{
    conn_t *c = req->data;
    wait_done(c, status == 0 ? 0 : status == UV_ECANCELED ? closed_err(c) : K2A_ECLOSED);
}

/* Writes every byte of bufs (the array is modified). Tries a synchronous write first: a small request then costs no loop
 * iteration. */
static int raw_write(conn_t *c, uv_buf_t *bufs, size_t nbufs, uint64_t timeout_ms, int timeout_err)
{
    if (c->closing)
        return closed_err(c);
    if (k2a_coro_canceled(k2a_coro_current()))
        return K2A_ECANCELED;
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs);
    if (w < 0 && w != UV_EAGAIN)
        return K2A_ECLOSED;
    size_t done = w > 0 ? (size_t)w : 0;
    while (nbufs > 0 && done >= bufs->len) {
        done -= bufs->len;
        ++bufs;
        --nbufs;
    }
    if (nbufs == 0)
        return 0;
    bufs->base += done;
    bufs->len -= done;
    if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, bufs, (unsigned)nbufs, on_write) != 0)
        return K2A_ECLOSED;
    return (int)conn_wait(c, CONN_WAIT_WRITE, timeout_ms, timeout_err);
}

/* ---- TLS ---- */

/* Writes out what OpenSSL put into wbio, straight from the BIO's buffer. */
static int tls_flush(conn_t *c, uint64_t timeout_ms, int timeout_err)
{
    BUF_MEM *bm;
    BIO_get_mem_ptr(c->wbio, &bm);
    if (bm == NULL || bm->length == 0)
        return 0;
    uv_buf_t b = uv_buf_init(bm->data, (unsigned)bm->length);
    int r = raw_write(c, &b, 1, timeout_ms, timeout_err);
    (void)BIO_reset(c->wbio);
    return r;
}

typedef struct st_async_write_t {
    uv_write_t req;
    char data[];
} async_write_t;

static void on_async_write(uv_write_t *req, int status)
{
    free(req);
}

/* Post-handshake records (a key update answer) produced while reading: sent without waiting. */
static void tls_flush_async(conn_t *c)
{
    size_t n = BIO_ctrl_pending(c->wbio);
    if (n == 0)
        return;
    async_write_t *w;
    if (c->closing || (w = malloc(sizeof(*w) + n)) == NULL) {
        (void)BIO_reset(c->wbio);
        return;
    }
    int got = BIO_read(c->wbio, w->data, (int)n);
    uv_buf_t b = uv_buf_init(w->data, got > 0 ? (unsigned)got : 0);
    if (got <= 0 || uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_async_write) != 0)
        free(w);
}

static void log_tls_errors(const char *what, conn_t *c)
{
    unsigned long e;
    char buf[256];
    while ((e = ERR_get_error()) != 0) {
        ERR_error_string_n(e, buf, sizeof(buf));
        k2a_warn("upstream: %s with %s:%u: %s", what, c->origin->host, c->origin->port, buf);
    }
}

static uint64_t remaining_ms(uv_loop_t *loop, uint64_t deadline)
{
    uint64_t now = uv_now(loop);
    return deadline > now ? deadline - now : 0;
}

int k2a_up_conn_tls_handshake(conn_t *c, SSL_CTX *ctx, const char *host, bool verify, uint64_t timeout_ms)
{
    uv_loop_t *loop = c->up->loop;
    uint64_t deadline = timeout_ms != 0 ? uv_now(loop) + timeout_ms : UINT64_MAX;
    if ((c->ssl = SSL_new(ctx)) == NULL)
        return K2A_ENOMEM;
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        c->rbio = c->wbio = NULL;
        return K2A_ENOMEM;
    }
    BIO_set_mem_eof_return(c->rbio, -1);
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_app_data(c->ssl, c);
    SSL_set_connect_state(c->ssl);
    k2a_sockaddr_t literal;
    bool is_ip = k2a_up_dns_parse_literal(host, 0, &literal);
    if (!is_ip)
        SSL_set_tlsext_host_name(c->ssl, host); /* SNI carries names only (RFC 6066) */
    if (verify) {
        int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) : SSL_set1_host(c->ssl, host);
        if (ok != 1)
            return K2A_ENOMEM;
    }
    if (c->aff != NULL && c->aff->session != NULL && SSL_SESSION_is_resumable(c->aff->session))
        SSL_set_session(c->ssl, c->aff->session);
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, r);
        if (r != 1 && e != SSL_ERROR_WANT_READ) {
            c->tls_failed = 1;
            long vr = SSL_get_verify_result(c->ssl);
            if (verify && vr != X509_V_OK) {
                k2a_warn("upstream: TLS certificate verification failed for %s:%u: %s", host, c->origin->port,
                         X509_verify_cert_error_string(vr));
                ERR_clear_error();
                return K2A_ETLS_VERIFY;
            }
            log_tls_errors("TLS handshake failed", c);
            return K2A_ETLS_HANDSHAKE;
        }
        if (BIO_ctrl_pending(c->wbio) > 0) {
            uint64_t left = remaining_ms(loop, deadline);
            if (left == 0)
                return K2A_ECONNECT_TIMEOUT;
            int w = tls_flush(c, deadline == UINT64_MAX ? 0 : left, K2A_ECONNECT_TIMEOUT);
            if (w != 0)
                return w == K2A_ECLOSED ? K2A_ETLS_HANDSHAKE : w;
        }
        if (r == 1)
            break;
        uint64_t left = remaining_ms(loop, deadline);
        if (left == 0)
            return K2A_ECONNECT_TIMEOUT;
        intptr_t n = raw_read(c, deadline == UINT64_MAX ? 0 : left, K2A_ECONNECT_TIMEOUT);
        if (n == 0 || n == K2A_ECLOSED) {
            k2a_warn("upstream: %s:%u closed the connection during the TLS handshake", host, c->origin->port);
            return K2A_ETLS_HANDSHAKE;
        }
        if (n < 0)
            return (int)n;
        bool copied = BIO_write(c->rbio, c->rbuf, (int)n) == n;
        buf_give(c->up, &c->rbuf);
        if (!copied)
            return K2A_ENOMEM;
    }
    c->tls_resumed = SSL_session_reused(c->ssl) ? 1 : 0;
    ++c->up->stats.tls_handshakes;
    if (c->tls_resumed)
        ++c->up->stats.tls_resumptions;
    return 0;
}

/* ---- application I/O ---- */

intptr_t k2a_up_conn_read(conn_t *c, char **data, uint64_t timeout_ms, int timeout_err)
{
    if (c->ssl == NULL) {
        intptr_t n = raw_read(c, timeout_ms, timeout_err);
        *data = c->rbuf;
        return n;
    }
    *data = NULL;
    if (c->closing)
        return closed_err(c);
    for (;;) {
        /* the plaintext buffer is held while SSL_read fills it and until the next call; a wait holds none */
        if (c->pbuf == NULL && (c->pbuf = buf_take(c->up)) == NULL)
            return K2A_ENOMEM;
        ERR_clear_error();
        int n = SSL_read(c->ssl, c->pbuf, CONN_PBUF_SIZE);
        int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
        tls_flush_async(c);
        if (n > 0) {
            *data = c->pbuf;
            return n;
        }
        buf_give(c->up, &c->pbuf);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e != SSL_ERROR_WANT_READ) {
            c->tls_failed = 1;
            log_tls_errors("TLS read failed", c);
            return K2A_ETLS;
        }
        intptr_t got = raw_read(c, timeout_ms, timeout_err);
        if (got <= 0)
            return got; /* EOF without close_notify reads as EOF: the HTTP framing tells a truncation */
        bool copied = BIO_write(c->rbio, c->rbuf, (int)got) == got;
        buf_give(c->up, &c->rbuf);
        if (!copied)
            return K2A_ENOMEM;
    }
}

int k2a_up_conn_write(conn_t *c, const uv_buf_t *bufs, size_t nbufs, uint64_t timeout_ms, int timeout_err)
{
    if (c->closing)
        return closed_err(c);
    if (c->ssl == NULL) {
        uv_buf_t small[16], *copy = nbufs <= 16 ? small : malloc(nbufs * sizeof(*copy));
        if (copy == NULL)
            return K2A_ENOMEM;
        memcpy(copy, bufs, nbufs * sizeof(*copy));
        int r = raw_write(c, copy, nbufs, timeout_ms, timeout_err);
        if (copy != small)
            free(copy);
        return r;
    }
    uv_loop_t *loop = c->up->loop;
    uint64_t deadline = timeout_ms != 0 ? uv_now(loop) + timeout_ms : UINT64_MAX;
    for (size_t i = 0; i < nbufs; ++i) {
        size_t off = 0;
        while (off < bufs[i].len) {
            size_t take = bufs[i].len - off;
            if (take > TLS_WRITE_BATCH)
                take = TLS_WRITE_BATCH;
            ERR_clear_error();
            int w = SSL_write(c->ssl, bufs[i].base + off, (int)take);
            if (w <= 0) {
                c->tls_failed = 1;
                log_tls_errors("TLS write failed", c);
                return K2A_ECLOSED;
            }
            off += (size_t)w;
            if (BIO_ctrl_pending(c->wbio) >= TLS_WRITE_BATCH) {
                uint64_t left = remaining_ms(loop, deadline);
                if (left == 0)
                    return timeout_err;
                int r = tls_flush(c, deadline == UINT64_MAX ? 0 : left, timeout_err);
                if (r != 0)
                    return r;
            }
        }
    }
    uint64_t left = remaining_ms(loop, deadline);
    if (left == 0)
        return timeout_err;
    return tls_flush(c, deadline == UINT64_MAX ? 0 : left, timeout_err);
}

/* ---- CONNECT through a proxy ---- */

int k2a_up_conn_proxy_connect(conn_t *c, const char *host, uint16_t port, const char *proxy_auth, uint64_t timeout_ms)
{
    uv_loop_t *loop = c->up->loop;
    uint64_t deadline = timeout_ms != 0 ? uv_now(loop) + timeout_ms : UINT64_MAX;
    bool v6 = strchr(host, ':') != NULL;
    char req[1024];
    int len =
        snprintf(req, sizeof(req), "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s\r\n", v6 ? "[" : "", host,
                 v6 ? "]" : "", port, v6 ? "[" : "", host, v6 ? "]" : "", port, proxy_auth != NULL ? "Proxy-Authorization: " : "",
                 proxy_auth != NULL ? proxy_auth : "", proxy_auth != NULL ? "\r\n" : "");
    if (len < 0 || (size_t)len >= sizeof(req))
        return K2A_EINVAL;
    uv_buf_t b = uv_buf_init(req, (unsigned)len);
    int r = raw_write(c, &b, 1, timeout_ms, K2A_ECONNECT_TIMEOUT);
    if (r != 0)
        return r == K2A_ECLOSED ? K2A_EPROXY : r;
    k2a_buf_t head;
    k2a_buf_init(&head, PROXY_HEAD_MAX);
    for (;;) {
        uint64_t left = remaining_ms(loop, deadline);
        if (left == 0) {
            r = K2A_ECONNECT_TIMEOUT;
            break;
        }
        intptr_t n = raw_read(c, deadline == UINT64_MAX ? 0 : left, K2A_ECONNECT_TIMEOUT);
        if (n <= 0) {
            r = n == 0 || n == K2A_ECLOSED ? K2A_EPROXY : (int)n;
            if (r == K2A_EPROXY)
                k2a_warn("upstream: the proxy closed the connection before answering CONNECT %s:%u", host, port);
            break;
        }
        size_t last_len = head.len;
        int ar = k2a_buf_append(&head, c->rbuf, (size_t)n);
        buf_give(c->up, &c->rbuf);
        if (ar != 0) {
            k2a_warn("upstream: the proxy's answer to CONNECT is too large");
            r = K2A_EPROXY;
            break;
        }
        int minor, status;
        const char *msg;
        size_t msg_len, nh = 32;
        struct phr_header hdrs[32];
        int pr = phr_parse_response(head.base, head.len, &minor, &status, &msg, &msg_len, hdrs, &nh, last_len);
        if (pr == -2)
            continue;
        if (pr < 0) {
            k2a_warn("upstream: malformed answer from the proxy to CONNECT %s:%u", host, port);
            r = K2A_EPROXY;
        } else if (status < 200 || status > 299) {
            k2a_warn("upstream: the proxy refused CONNECT %s:%u with status %d", host, port, status);
            r = K2A_EPROXY;
        } else if ((size_t)pr != head.len) {
            k2a_warn("upstream: the proxy sent bytes after its CONNECT answer");
            r = K2A_EPROXY;
        } else {
            r = 0;
        }
        break;
    }
    k2a_buf_dispose(&head);
    return r;
}

/* ---- pool support ---- */

bool k2a_up_conn_usable(conn_t *c, bool probe)
{
    if (c->closing || c->eof || c->held != 0 || (c->ssl != NULL && !tls_idle_ok(c)))
        return false;
    if (!probe)
        return true;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return false;
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0)
        return false; /* EOF, or bytes nobody asked for */
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

/* Bytes of the response that have arrived already, without waiting: what TLS holds decrypted or buffered, then what the
 * socket has received (read with MSG_DONTWAIT while libuv is not reading). Returns > 0 bytes in buf, 0 when nothing is
 * there now, K2A_ECLOSED at EOF or on a socket error, K2A_ETLS when TLS failed or wants to answer (not reusable).
 * Over TLS the plaintext may be a record's first cap bytes; the rest stays in OpenSSL for the next call. */
intptr_t k2a_up_conn_read_nowait(conn_t *c, char *buf, size_t cap)
{
    uv_os_fd_t fd;
    if (c->closing || c->eof || uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
        return K2A_ECLOSED;
    if (c->reading)
        stop_reading(c); /* nobody waits: the read callback that woke the reader may still have reading on */
    /* held bytes come only before a response's first read, and this reader has read its response: never here, and
     * if so, not a connection to reuse */
    if (c->held != 0)
        return K2A_ECLOSED;
    char raw[2048]; /* ciphertext: a chunked terminator is one small record */
    for (int round = 0; round < 4; ++round) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, buf, (int)cap);
            int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, n);
            ERR_clear_error();
            if (n > 0)
                return n;
            if (e != SSL_ERROR_WANT_READ || BIO_ctrl_pending(c->wbio) != 0)
                return K2A_ETLS;
        }
        ssize_t got = recv(fd, c->ssl != NULL ? raw : buf, c->ssl != NULL ? sizeof(raw) : cap, MSG_DONTWAIT);
        if (got == 0)
            return K2A_ECLOSED;
        if (got < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : K2A_ECLOSED;
        if (c->ssl == NULL)
            return got;
        if (BIO_write(c->rbio, raw, (int)got) != got)
            return K2A_ENOMEM;
    }
    return 0;
}

static void on_idle_timer(uv_timer_t *t)
{
    conn_t *c = t->data;
    ++c->up->stats.conns_idle_closed;
    k2a_up_conn_close(c);
}

void k2a_up_conn_idle_start(conn_t *c, uint64_t idle_ms)
{
    buf_give(c->up, &c->rbuf); /* the last response is done with its bytes */
    buf_give(c->up, &c->pbuf);
    if (!c->reading) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
            k2a_up_conn_close(c);
            return;
        }
        c->reading = 1;
    }
    if (idle_ms != 0)
        uv_timer_start(&c->timer, on_idle_timer, idle_ms, 0);
}

void k2a_up_conn_idle_stop(conn_t *c)
{
    uv_timer_stop(&c->timer);
    c->taken = 1;
}
