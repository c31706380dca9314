/*
 * The upstream HTTP/1.1 client: every call to AWS (chat, refresh, usage) goes through it. One
 * k2a_upstream_t per loop holds the c-ares resolver (with a TTL cache), the OpenSSL client context
 * (with a TLS session per origin) and a keep-alive connection pool per origin and affinity key (one
 * account's requests per connection). Requests are made from
 * coroutines (core/coro.h) and await loop events; nothing here blocks the loop.
 *
 * Design: TLS runs through OpenSSL memory BIOs over uv_tcp_t; the response head is parsed by
 * picohttpparser; the body is handed to the caller piece by piece as it arrives (no buffering of the
 * whole body). Every failure maps to one K2A_E* code of the "upstream" group so that the account pool
 * can tell the upstream's fault (timeouts, resets, 5xx) from ours (DNS, proxy, TLS trust).
 */
#ifndef K2A_UPSTREAM_UPSTREAM_H
#define K2A_UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/buf.h"
#include "core/str.h"

/* ---- URLs ---- */

/* A parsed http(s) URL. All slices borrow from the string given to k2a_url_parse, which must outlive the struct. */
typedef struct st_k2a_url_t {
    k2a_str_t scheme;   /* "http" or "https" (lower-case in the input) */
    k2a_str_t userinfo; /* "user:pass" still percent-encoded, or K2A_STR_NULL */
    k2a_str_t host;     /* without the brackets of an IPv6 literal */
    k2a_str_t path;     /* path + query, "/" when the URL has none; the fragment is dropped */
    uint16_t port;      /* explicit or the scheme's default */
    bool tls;           /* scheme is https */
} k2a_url_t;

/* Parses "http[s]://[user[:pass]@]host[:port][/path][?query][#frag]". Returns 0 or K2A_EBAD_URL (unknown scheme, empty
 * host, bad port, control characters or spaces, host longer than 253 bytes). */
int k2a_url_parse(const char *url, size_t len, k2a_url_t *out);

/* True when `host` matches the NO_PROXY list: comma- or space-separated entries, each "*" (everything), an exact host, or a
 * domain suffix ("example.com" and ".example.com" both match example.com and any subdomain). Case-insensitive; a ":port"
 * suffix on an entry is ignored; CIDR ranges are not supported. NULL or "" matches nothing. */
bool k2a_no_proxy_match(const char *no_proxy, k2a_str_t host);

/* ---- configuration ---- */

typedef struct st_k2a_upstream_config_t {
    /* timeouts: 0 means none, except dns_timeout_ms (0 = the default) */
    uint32_t connect_timeout_ms;    /* TCP connect + proxy CONNECT + TLS handshake; default 10000 */
    uint32_t first_byte_timeout_ms; /* from the start of the request write to the first response byte; default 120000 */
    uint32_t idle_timeout_ms;       /* between two reads once the response started; default 300000 */
    uint32_t dns_timeout_ms;        /* one name resolution; default 5000 */
    uint32_t dns_max_ttl_s;         /* cache lifetime cap (the record TTL is honoured below it); default 60; 0 = no cache */
    uint32_t dns_cache_max;         /* cached names; default 256; 0 = no cache */
    uint32_t max_conns_per_origin;  /* open connections per origin (busy + idle + connecting); default 256 (0 = default) */
    uint32_t max_idle_per_origin;   /* idle keep-alive connections kept per origin; default 32; 0 = no keep-alive */
    uint32_t pool_idle_timeout_ms;  /* an idle connection is closed after this; default 30000; 0 = only when the peer closes */
    uint32_t max_header_bytes;      /* response head limit; default 65536 (0 = default) */
    uint32_t max_headers;           /* response header count limit; default 100 (0 = default) */
    const char *dns_servers;        /* "ip[:port],..." (c-ares CSV, [v6]:port for IPv6) or NULL = the system resolver */
    const char *ca_file;            /* PEM file trusted in addition to the system CA store, or NULL */
    bool tls_insecure;              /* skip certificate and host name verification (logs a warning at create) */
    const char *proxy;              /* "http://[user:pass@]host:port" for CONNECT tunnels (https and http origins), or NULL */
    const char *no_proxy;           /* NO_PROXY list, see k2a_no_proxy_match; NULL = none */
    /* connection affinity (see k2a_http_request_t.affinity) */
    bool reuse_never;               /* every request on a new connection with Connection: close (KIRO_UPSTREAM_REUSE=never) */
    uint32_t max_idle_per_affinity; /* idle connections kept per non-zero affinity key; default 4 (0 = default) */
} k2a_upstream_config_t;

/* Fills every field with its default (no proxy, system DNS, system CA store). */
void k2a_upstream_config_init(k2a_upstream_config_t *cfg);
/* Overrides fields from the environment: KIRO_CONNECT_TIMEOUT_MS, KIRO_FIRST_BYTE_TIMEOUT_MS, KIRO_IDLE_TIMEOUT_MS,
 * KIRO_DNS_TIMEOUT_MS, KIRO_DNS_MAX_TTL, KIRO_DNS_CACHE_MAX, KIRO_DNS_SERVERS, KIRO_UPSTREAM_MAX_CONNS,
 * KIRO_UPSTREAM_MAX_IDLE, KIRO_UPSTREAM_POOL_IDLE_MS, KIRO_UPSTREAM_MAX_IDLE_PER_ACCOUNT, KIRO_UPSTREAM_REUSE (account|never),
 * KIRO_CA_FILE, KIRO_TLS_INSECURE (1/true/yes), KIRO_UPSTREAM_PROXY
 * (else HTTPS_PROXY, else https_proxy), NO_PROXY (else no_proxy). String fields point into the environment. Returns 0 or
 * K2A_ECONFIG (the variable's name is logged) when a number does not parse. */
int k2a_upstream_config_from_env(k2a_upstream_config_t *cfg);

/* ---- the client ---- */

typedef struct st_k2a_upstream_t k2a_upstream_t;

/* Creates the client on `loop` (the loop of the calling thread's coroutine runtime). cfg is copied (its strings too).
 * Returns 0, K2A_ECONFIG (bad proxy URL, DNS server list or CA file), K2A_EDNS (c-ares init) or K2A_ENOMEM. */
int k2a_upstream_create(uv_loop_t *loop, const k2a_upstream_config_t *cfg, k2a_upstream_t **out);
/* Closes idle connections, the resolver and the TLS context. No request may be in flight and every response must have been
 * released. The loop must run afterwards so that the close callbacks free the handles. */
void k2a_upstream_destroy(k2a_upstream_t *up);

typedef struct st_k2a_http_header_t {
    k2a_str_t name;
    k2a_str_t value;
} k2a_http_header_t;

typedef struct st_k2a_http_request_t {
    const k2a_url_t *url;             /* borrowed until k2a_upstream_request returns */
    const char *method;               /* "POST", "GET", ... */
    const k2a_http_header_t *headers; /* extra headers; the client writes Host (see host_index), Content-Length, and
                                       * Connection: close on a closing request that has no Connection header */
    size_t nheaders;
    const uv_buf_t *body; /* the body as iovecs (sent without copying over plain TCP, encrypted once over TLS), or NULL */
    size_t nbody;
    /* per-request overrides of the config timeouts; 0 = the config value */
    uint32_t connect_timeout_ms;
    uint32_t first_byte_timeout_ms;
    uint32_t idle_timeout_ms;
    /* Connection affinity: a connection only ever carries requests of one key (the account id for calls made with an account's
     * token; 0 = calls without an account, which share their own connections). Idle connections are pooled per origin AND
     * key. */
    uint64_t affinity;
    bool close;        /* send Connection: close and never reuse the connection (also forced by cfg.reuse_never) */
    size_t host_index; /* Host is written before headers[host_index] (0 = first; >= nheaders = after the last) */
} k2a_http_request_t;

typedef struct st_k2a_http_response_t {
    int status;                       /* e.g. 200; >= 400 still comes with its body (read it with k2a_upstream_read_all) */
    int minor_version;                /* HTTP/1.x */
    const k2a_http_header_t *headers; /* in arrival order; valid until k2a_upstream_release */
    size_t nheaders;
    int64_t content_length; /* -1 when chunked or close-delimited */
    bool reused;            /* served on a keep-alive connection taken from the pool */
    bool tls_resumed;       /* the connection's TLS handshake resumed a session */
    bool retried;           /* a first attempt on a reused connection failed before any response byte */
} k2a_http_response_t;

/* In a coroutine: sends the request and awaits the response head. On 0, *resp is set (any status, 1xx skipped) and must be
 * passed to k2a_upstream_release. On failure *resp is NULL and the code is one of:
 *   K2A_EBAD_URL (not http/https), K2A_EDNS, K2A_EDNS_TIMEOUT, K2A_ECONNECT_REFUSED, K2A_ECONNECT_TIMEOUT (TCP + proxy +
 *   TLS handshake budget), K2A_ECONNECT (other socket errors), K2A_ETLS_VERIFY (certificate or host name), K2A_ETLS_HANDSHAKE,
 *   K2A_ETLS (a TLS error after the handshake, e.g. a bad record or an alert while waiting for the head),
 *   K2A_EPROXY (proxy refused, unreachable, answered non-2xx, e.g. 407), K2A_ERESET_BEFORE_RESPONSE (closed or reset
 *   before the head was complete), K2A_EFIRST_BYTE_TIMEOUT, K2A_EIDLE_TIMEOUT (the head stalled after its first byte),
 *   K2A_EHTTP_PARSE (malformed head or framing headers), K2A_EHEADER_TOOBIG (over max_header_bytes or max_headers),
 *   K2A_EBUSY (no connection slot for the origin within the connect timeout), K2A_ECANCELED, K2A_ENOMEM, K2A_EINVAL (not
 *   in a coroutine, no URL or method, a header name or value with CR/LF/NUL, a method that is not a token).
 * A request whose reused connection fails before any response byte is retried once on a new connection. */
int k2a_upstream_request(k2a_upstream_t *up, const k2a_http_request_t *req, k2a_http_response_t **resp);

/* In a coroutine: awaits the next piece of the body. Returns its length (> 0) with *data pointing at it (valid until the
 * next call or the release), 0 at the end of the body, or K2A_ERESET_MID_BODY (EOF or reset inside a Content-Length or
 * chunked body, or chunked framing that breaks: h2o aborts a response with an invalid chunk), K2A_EIDLE_TIMEOUT, K2A_ETLS,
 * K2A_ECANCELED. After an error every further call returns the same error. */
intptr_t k2a_upstream_read(k2a_http_response_t *resp, const char **data);

/* In a coroutine: appends the whole body to out. Returns 0, K2A_ETOOBIG when the body exceeds max bytes (out then holds
 * its first max bytes and the connection will not be reused), or a k2a_upstream_read error. */
int k2a_upstream_read_all(k2a_http_response_t *resp, k2a_buf_t *out, size_t max);

/* In a coroutine: reads an error body for a message: at most K2A_UPSTREAM_ERROR_BODY_MAX bytes are kept, a longer body is
 * cut there (not an error). Returns 0 or a k2a_upstream_read error (out keeps what arrived). */
#define K2A_UPSTREAM_ERROR_BODY_MAX (64 * 1024)
int k2a_upstream_read_error_body(k2a_http_response_t *resp, k2a_buf_t *out);

/* The first header named `name` (case-insensitive), or K2A_STR_NULL. */
k2a_str_t k2a_http_response_header(const k2a_http_response_t *resp, const char *name);

/* Returns the connection to its pool when the body was read to its end and the connection may be kept alive; closes it
 * otherwise (body not fully read, error, Connection: close, cancellation). Frees resp. Callable outside coroutines. */
void k2a_upstream_release(k2a_http_response_t *resp);
/* The same, for a response whose reader saw the answer end (its last frame) without reading the body's framing to its end
 * (the chunked terminator often comes in a TLS record or segment of its own, after the last frame): the rest is awaited in
 * the background, bounded (K2A_UPSTREAM_TAIL_WAIT_MS, K2A_UPSTREAM_TAIL_MAX_BYTES), and the connection then goes back
 * to the pool instead of being closed. The caller lets go of resp at once, as with k2a_upstream_release. */
void k2a_upstream_release_ended(k2a_http_response_t *resp);
/* Shutdown: background tails end now (their connections close); no new one starts. k2a_upstream_tails counts those
 * still unwinding: the client may be destroyed once it is 0. */
void k2a_upstream_quiesce(k2a_upstream_t *up);
size_t k2a_upstream_tails(const k2a_upstream_t *up);
#define K2A_UPSTREAM_TAIL_WAIT_MS 1000
#define K2A_UPSTREAM_TAIL_MAX_BYTES (16 * 1024)

/* False when the client never reuses a connection (cfg.reuse_never): callers that fix their header order put their own
 * "Connection: close" where it belongs (the client appends one to requests that have none). */
bool k2a_upstream_keeps_alive(const k2a_upstream_t *up);

/* ---- statistics (/metrics) ---- */

typedef enum en_k2a_upstream_outcome_t {
    K2A_UPSTREAM_OK = 0,       /* response head received, status < 400 */
    K2A_UPSTREAM_HTTP_4XX,     /* status 400-499 */
    K2A_UPSTREAM_HTTP_5XX,     /* status >= 500 */
    K2A_UPSTREAM_FAIL_DNS,     /* DNS, DNS_TIMEOUT */
    K2A_UPSTREAM_FAIL_CONNECT, /* CONNECT_REFUSED, CONNECT_TIMEOUT, CONNECT, BUSY */
    K2A_UPSTREAM_FAIL_TLS,     /* TLS_VERIFY, TLS_HANDSHAKE, TLS */
    K2A_UPSTREAM_FAIL_PROXY,
    K2A_UPSTREAM_FAIL_TIMEOUT,  /* FIRST_BYTE_TIMEOUT, IDLE_TIMEOUT */
    K2A_UPSTREAM_FAIL_RESET,    /* RESET_BEFORE_RESPONSE */
    K2A_UPSTREAM_FAIL_PROTOCOL, /* HTTP_PARSE, HEADER_TOOBIG */
    K2A_UPSTREAM_FAIL_CANCELED,
    K2A_UPSTREAM_FAIL_OTHER,
    K2A_UPSTREAM_OUTCOME_MAX
} k2a_upstream_outcome_t;

/* "ok", "http_4xx", ..., for metric labels. */
const char *k2a_upstream_outcome_name(k2a_upstream_outcome_t o);

typedef struct st_k2a_upstream_stats_t {
    uint64_t conns_opened;      /* connections established (TCP + tunnel + TLS done) */
    uint64_t conns_reused;      /* requests served on a pooled connection */
    uint64_t connect_failures;  /* TCP connects that failed (refused, timed out, unreachable), each address counted */
    uint64_t conns_open;        /* gauge: established connections now open (busy + idle) */
    uint64_t conns_idle;        /* gauge: idle connections in the pools */
    uint64_t conns_idle_closed; /* idle connections dropped: peer closed, unexpected data, idle timeout, pool full */
    uint64_t conns_evicted;     /* of which closed to make room for another affinity key (slot or idle bound reached) */
    uint64_t dns_cache_hits;
    uint64_t dns_cache_misses;                   /* lookups that needed a query (or joined one in flight) */
    uint64_t dns_queries;                        /* queries handed to c-ares */
    uint64_t tls_handshakes;                     /* completed handshakes */
    uint64_t tls_resumptions;                    /* of which resumed a session */
    uint64_t retries;                            /* requests retried after a reused connection failed */
    uint64_t tails;                              /* responses whose framing end was awaited after release */
    uint64_t tails_kept;                         /* of which the connection went back to the pool */
    uint64_t body_errors;                        /* k2a_upstream_read failures (reset, idle timeout, framing, cancel) */
    uint64_t requests[K2A_UPSTREAM_OUTCOME_MAX]; /* k2a_upstream_request results by outcome */
    uint64_t read_bufs_held; /* gauge: read buffers connections hold now (bytes handed over and not yet done with) */
    uint64_t reads_early;    /* bytes or a close that came on a taken connection before its response was read */
} k2a_upstream_stats_t;

void k2a_upstream_get_stats(const k2a_upstream_t *up, k2a_upstream_stats_t *out);

#endif
