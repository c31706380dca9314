/*
 * Module-private declarations of the upstream client, shared by its files: dns.c (c-ares resolver with
 * a TTL cache), conn.c (one TCP/TLS connection and its awaits), http.c (HTTP/1.1 request writer and
 * response reader), upstream.c (origins, pools, the request flow, statistics) and url.c.
 *
 * Lifetime rule: a conn_t holds uv handles, so it is freed only in their close callbacks, and only once
 * no request owns it (conn->owned). Code that owns a conn keeps using the struct after a cancel or a
 * timeout closed it underneath; every operation on a closing conn fails at once.
 */
#ifndef K2A_UPSTREAM_INTERNAL_H
#define K2A_UPSTREAM_INTERNAL_H

#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>
#include "core/buf.h"
#include "core/coro.h"
#include "upstream/phr.h"
#include "upstream/upstream.h"

/* ---- addresses and DNS (dns.c) ---- */

#define K2A_DNS_MAX_ADDRS 8

typedef union un_k2a_sockaddr_t {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} k2a_sockaddr_t;

typedef struct st_dns_addrs_t {
    size_t n;
    k2a_sockaddr_t addr[K2A_DNS_MAX_ADDRS];
} dns_addrs_t;

typedef struct st_dns_t dns_t;

int k2a_up_dns_create(uv_loop_t *loop, const k2a_upstream_config_t *cfg, k2a_upstream_stats_t *stats, dns_t **out);
/* Cancels pending queries (their waiters are woken with K2A_ECANCELED) and closes the handles. */
void k2a_up_dns_destroy(dns_t *d);
/* In a coroutine: resolves host (NUL-terminated; an IPv4 or IPv6 literal is returned as is) into at most K2A_DNS_MAX_ADDRS
 * addresses with `port` set, IPv4 and IPv6 interleaved. Returns 0, K2A_EDNS, K2A_EDNS_TIMEOUT after timeout_ms, or
 * K2A_ECANCELED. Concurrent lookups of one name share a query. */
int k2a_up_dns_resolve(dns_t *d, const char *host, uint16_t port, dns_addrs_t *out, uint32_t timeout_ms);
/* True when host is an IP literal; fills *out (port set). */
bool k2a_up_dns_parse_literal(const char *host, uint16_t port, k2a_sockaddr_t *out);

/* ---- origins and connections ---- */

typedef struct st_origin_t origin_t;
typedef struct st_aff_t aff_t;
typedef struct st_conn_t conn_t;
typedef struct st_slot_waiter_t slot_waiter_t;

/* One affinity key of an origin (an account, or 0 for calls without one): its idle connections and its TLS session, so
 * that neither a connection nor a resumption ticket is ever shared by two accounts. Created on first use, freed with the
 * origin (the keys are the pool's accounts: bounded). */
struct st_aff_t {
    aff_t *next; /* hash chain */
    uint64_t key;
    SSL_SESSION *session; /* the latest session the server gave us on this key, offered on its next handshake */
    conn_t *idle;         /* idle connections of this key, most recently used first (aff_next/aff_prev) */
    size_t nidle;
};

struct st_origin_t {
    origin_t *next;
    k2a_upstream_t *up;
    char *host; /* NUL-terminated, without IPv6 brackets */
    uint16_t port;
    bool tls;
    bool proxied;
    conn_t *idle, *idle_tail; /* every idle connection of the origin, most recently used first (idle_next/idle_prev) */
    size_t nidle;
    size_t nconns; /* slots taken: connecting + busy + idle */
    slot_waiter_t *waiters_head, *waiters_tail;
    aff_t **affs; /* hash table of the affinity keys (chained), naffs_cap buckets (a power of two) */
    size_t naffs, naffs_cap;
};

enum { CONN_WAIT_NONE = 0, CONN_WAIT_CONNECT, CONN_WAIT_READ, CONN_WAIT_WRITE };

/* Read buffers (socket bytes, and the plaintext out of SSL_read over TLS) are not part of a connection: one is taken from
 * the client's free list when bytes arrive and given back when the reader asks for more, goes idle or is freed, so that
 * a stream waiting for its next frame holds none (10 000 open streams would otherwise hold 10 000 of them). */
#define CONN_BUF_SIZE (16 * 1024)
#define CONN_RBUF_SIZE CONN_BUF_SIZE
#define CONN_PBUF_SIZE CONN_BUF_SIZE
#define CONN_BUF_KEEP 64 /* free buffers kept per client; more go back to malloc */

struct st_conn_t {
    uv_tcp_t tcp;
    uv_timer_t timer; /* the timeout of the current await, or the pool's idle timeout */
    uv_connect_t connect_req;
    uv_write_t write_req;
    k2a_upstream_t *up;
    origin_t *origin;
    aff_t *aff; /* the only affinity key whose requests this connection carries */
    conn_t *idle_next, *idle_prev;
    conn_t *aff_next, *aff_prev;
    k2a_coro_t *waiter; /* the coroutine parked on this connection */
    int wait_kind;
    int timeout_err; /* the code an expiring timer yields for the current await */
    int abort_err;   /* why the connection was closed under a waiter (timeout, cancel) */
    int pending_closes;
    unsigned owned : 1;      /* a request holds it: do not free before k2a_up_conn_release */
    unsigned closing : 1;    /* uv_close was called */
    unsigned reading : 1;    /* uv_read_start is active */
    unsigned idle : 1;       /* in its origin's idle list */
    unsigned holds_slot : 1; /* counts in origin->nconns and stats.conns_open */
    unsigned eof : 1;        /* the peer closed its side or the socket failed */
    unsigned taken : 1;      /* out of the pool, its response not read yet: reading stays on (see k2a_up_conn_idle_stop) */
    unsigned tls_resumed : 1;
    unsigned tls_failed : 1; /* a TLS-level error: the session is not kept resumable */
    char *rbuf;              /* CONN_RBUF_SIZE bytes where socket reads land (ciphertext over TLS), or NULL between reads */
    intptr_t held;           /* bytes in rbuf that a read brought while nobody waited, for the next read to take */
    SSL *ssl;
    BIO *rbio, *wbio;
    char *pbuf; /* CONN_PBUF_SIZE bytes of plaintext out of SSL_read (TLS only), or NULL between reads */
};

/* Opens a TCP connection to addr. On success *out is owned by the caller (k2a_up_conn_release). Returns 0,
 * K2A_ECONNECT_REFUSED, K2A_ECONNECT_TIMEOUT (timeout_ms), K2A_ECONNECT, K2A_ECANCELED, K2A_ENOMEM. */
int k2a_up_conn_open(k2a_upstream_t *up, origin_t *origin, const k2a_sockaddr_t *addr, uint64_t timeout_ms, conn_t **out);
/* Sends CONNECT host:port through the proxy at the other end of c and awaits a 2xx. Returns 0, K2A_EPROXY,
 * K2A_ECONNECT_TIMEOUT, K2A_ECANCELED. */
int k2a_up_conn_proxy_connect(conn_t *c, const char *host, uint16_t port, const char *proxy_auth, uint64_t timeout_ms);
/* Runs the TLS handshake (SNI, verification against host, ALPN http/1.1, session resumption from c->aff). Returns 0,
 * K2A_ETLS_VERIFY, K2A_ETLS_HANDSHAKE, K2A_ECONNECT_TIMEOUT, K2A_ECANCELED, K2A_ENOMEM. */
int k2a_up_conn_tls_handshake(conn_t *c, SSL_CTX *ctx, const char *host, bool verify, uint64_t timeout_ms);
/* Awaits application bytes. Returns their count with *data pointing into the connection (valid until the next conn call),
 * 0 at EOF (or TLS close_notify), timeout_err after timeout_ms without a byte (0 = no timeout), K2A_ECLOSED (reset or the
 * connection was closed), K2A_ETLS, K2A_ECANCELED (or c->abort_err). */
intptr_t k2a_up_conn_read(conn_t *c, char **data, uint64_t timeout_ms, int timeout_err);
/* Writes every byte of bufs (encrypted over TLS). Returns 0, K2A_ECLOSED, timeout_err, K2A_ECANCELED, K2A_ENOMEM. */
int k2a_up_conn_write(conn_t *c, const uv_buf_t *bufs, size_t nbufs, uint64_t timeout_ms, int timeout_err);
/* Frees the client's free read buffers (at its destruction; buffers still held by connections go with them). */
void k2a_up_conn_bufs_free(k2a_upstream_t *up);
/* Closes the connection now (idempotent): leaves the idle list, gives back its slot, wakes a read waiter. */
void k2a_up_conn_close(conn_t *c);
/* The owner lets go: an open connection is closed; the memory goes in the last close callback. */
void k2a_up_conn_release(conn_t *c);
/* False when the connection is closing, the peer closed, or bytes nobody asked for came; probe: also ask the socket (a
 * non-blocking peek: a close that the loop has not reported yet). */
bool k2a_up_conn_usable(conn_t *c, bool probe);
/* Bytes that have arrived already, without waiting (conn.c): > 0 in buf, 0 when none now, < 0 when not reusable. */
intptr_t k2a_up_conn_read_nowait(conn_t *c, char *buf, size_t cap);
/* Parks an owned connection in the idle state: a read stays active so that a close or stray bytes from the peer drop it at
 * once, and a timer closes it after idle_ms. The caller links it into the idle list. */
void k2a_up_conn_idle_start(conn_t *c, uint64_t idle_ms);
/* Takes an idle connection back for a request (stops the timer). Reading stays on up to the response's first read: a
 * restart would cost libuv two epoll_ctl calls per request (an ADD that fails with EEXIST, then a MOD); bytes or a close
 * that come before that read are held for it (conn_t.held). */
void k2a_up_conn_idle_stop(conn_t *c);

/* ---- pool hooks (upstream.c), called by conn.c ---- */

/* A connection holding a slot closed: give the slot back and wake a waiter. */
void k2a_up_pool_on_conn_closed(conn_t *c);
/* A TLS session arrived for c's origin and affinity key. Takes ownership of sess. */
void k2a_up_pool_on_new_session(conn_t *c, SSL_SESSION *sess);

/* ---- HTTP/1.1 (http.c) ---- */

enum { BODY_NONE = 0, BODY_LENGTH, BODY_CHUNKED, BODY_CLOSE };

typedef struct st_resp_t {
    k2a_http_response_t pub; /* first: callers see only this part */
    k2a_upstream_t *up;
    conn_t *conn;
    k2a_buf_t head;          /* the raw head (+ the first body bytes that came with it) */
    k2a_http_header_t *hdrs; /* cap_headers entries (one allocation with phrh) */
    struct phr_header *phrh; /* cap_headers entries */
    size_t cap_headers;      /* a few dozen; grown to max_headers only for a head that has more */
    char *pending;           /* body bytes that arrived with the head, delivered first */
    size_t pending_len;
    int mode;
    uint64_t remaining; /* BODY_LENGTH */
    struct phr_chunked_decoder chunked;
    uint32_t idle_timeout_ms;
    int error;
    int deferred_error; /* returned by the next read: bytes decoded before a framing error went out first */
    bool done;
    bool keepalive;
    bool head_method;
    bool got_bytes;  /* any response byte arrived (no retry after that) */
    bool close_conn; /* set by the caller of k2a_up_http_exchange: send Connection: close, never keep the connection */
} resp_t;

resp_t *k2a_up_http_resp_create(k2a_upstream_t *up);
void k2a_up_http_resp_free(resp_t *r);
/* Writes the request head and body, then reads the response head into r. Returns 0 or the k2a_upstream_request codes
 * (K2A_ERESET_BEFORE_RESPONSE when the connection failed before any response byte: r->got_bytes is then false). */
int k2a_up_http_exchange(resp_t *r, const k2a_http_request_t *req, uint32_t first_byte_timeout_ms);
/* The I/O-free halves (also driven by the fuzz target). k2a_up_http_parse_head parses r->head from *off (interim 1xx responses
 * advance *off; *last_len is picohttpparser's hint, 0 at first): 0 when the head is complete (status, headers, body
 * framing and the body bytes that came with it in r->pending are set), K2A_EINCOMPLETE, K2A_EHTTP_PARSE or
 * K2A_EHEADER_TOOBIG. k2a_up_http_body_piece decodes n body bytes at p in place: returns the count of body bytes at *out (0
 * when the piece held only chunk framing) and sets r->done at the end of the body, or K2A_ERESET_MID_BODY (broken chunk
 * framing). */
int k2a_up_http_parse_head(resp_t *r, size_t *off, size_t *last_len);
intptr_t k2a_up_http_body_piece(resp_t *r, char *p, size_t n, char **out);

/* ---- the client (upstream.c) ---- */

struct st_k2a_upstream_t {
    uv_loop_t *loop;
    k2a_upstream_config_t cfg; /* strings point into `strings` */
    char *strings;
    dns_t *dns;
    SSL_CTX *ssl_ctx;
    k2a_url_t proxy;
    char *proxy_host; /* NUL-terminated copy of proxy.host */
    char *proxy_auth; /* "Basic ..." or NULL */
    origin_t *origins;
    size_t inflight; /* requests in progress + responses not yet released */
    char *free_bufs; /* read buffers not in use (a list linked through their first bytes), nfree_bufs <= CONN_BUF_KEEP */
    size_t nfree_bufs;
    k2a_upstream_stats_t stats;
    struct st_up_tail_t *tails; /* responses read to their framing's end in the background (upstream.c) */
    size_t ntails;
    bool quiescing;
};

#endif
