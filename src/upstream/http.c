/*
 * HTTP/1.1 on one connection: writes the request (head built once, body iovecs passed through), reads
 * the response head with picohttpparser (bounded in bytes and header count), then hands the body to the
 * caller piece by piece: Content-Length, chunked (phr_decode_chunked, in place, incremental) or
 * close-delimited. The head buffer is never appended to once parsed, so header slices stay valid until
 * the response is released.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "upstream/internal.h"

#define REQUEST_HEAD_MAX (1024 * 1024)

/* Header arrays sized for what servers send (Kiro answers carry about ten headers), grown to max_headers only when a head
 * has more: every open stream holds its response, and 100-entry arrays cost 6 KB each. */
#define INITIAL_HEADERS 32

static int alloc_headers(resp_t *r, size_t cap)
{
    void *p = malloc(cap * (sizeof(*r->hdrs) + sizeof(*r->phrh)));
    if (p == NULL)
        return K2A_ENOMEM;
    free(r->hdrs);
    r->hdrs = p;
    r->phrh = (struct phr_header *)(r->hdrs + cap);
    r->cap_headers = cap;
    return 0;
}

resp_t *k2a_up_http_resp_create(k2a_upstream_t *up)
{
    size_t maxh = up->cfg.max_headers != 0 ? up->cfg.max_headers : 100;
    resp_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (alloc_headers(r, maxh < INITIAL_HEADERS ? maxh : INITIAL_HEADERS) != 0) {
        free(r);
        return NULL;
    }
    r->up = up;
    /* room for one read past the limit, so that a head just under the limit can still arrive with body bytes */
    k2a_buf_init(&r->head, (size_t)up->cfg.max_header_bytes + CONN_PBUF_SIZE);
    return r;
}

void k2a_up_http_resp_free(resp_t *r)
{
    k2a_buf_dispose(&r->head);
    free(r->hdrs); /* phrh lives in the same allocation */
    free(r);
}

static void resp_reset(resp_t *r)
{
    k2a_buf_reset(&r->head);
    memset(&r->pub, 0, sizeof(r->pub));
    r->pending = NULL;
    r->pending_len = 0;
    r->mode = BODY_NONE;
    r->remaining = 0;
    memset(&r->chunked, 0, sizeof(r->chunked));
    r->error = 0;
    r->deferred_error = 0;
    r->done = false;
    r->keepalive = false;
    r->got_bytes = false;
}

/* CR, LF or NUL in s. Eight bytes at a time: a word with no byte below 0x20 (the usual header text) is skipped whole;
 * only a word that has one is looked at byte by byte. */
static bool has_ctl(k2a_str_t s)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t i = 0;
    for (; i + 8 <= s.len; i += 8) {
        uint64_t w;
        memcpy(&w, s.base + i, 8);
        if (((w - ones * 0x20) & ~w & highs) == 0)
            continue; /* no byte < 0x20 */
        for (size_t j = i; j < i + 8; ++j)
            if (s.base[j] == '\r' || s.base[j] == '\n' || s.base[j] == '\0')
                return true;
    }
    for (; i < s.len; ++i)
        if (s.base[i] == '\r' || s.base[i] == '\n' || s.base[i] == '\0')
            return true;
    return false;
}

static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s != '\0'; ++s)
        if (*s <= ' ' || *s >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", *s) != NULL)
            return false;
    return true;
}

/* Appends the parts in one reservation (no formatting: the head is built for every request). */
static void put(k2a_buf_t *b, const char *p, size_t n)
{
    memcpy(b->base + b->len, p, n);
    b->len += n;
}

static void put_uint(k2a_buf_t *b, unsigned long long v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(b, tmp + n, sizeof(tmp) - n);
}

static bool name_eq(k2a_str_t name, const char *lit)
{
    size_t n = strlen(lit);
    return name.len == n && strncasecmp(name.base, lit, n) == 0;
}

static void put_host(k2a_buf_t *b, const k2a_url_t *u)
{
    bool v6 = memchr(u->host.base, ':', u->host.len) != NULL;
    put(b, "Host: ", 6);
    if (v6)
        put(b, "[", 1);
    put(b, u->host.base, u->host.len);
    if (v6)
        put(b, "]", 1);
    if (u->port != (u->tls ? 443 : 80)) {
        put(b, ":", 1);
        put_uint(b, u->port);
    }
    put(b, "\r\n", 2);
}

/* The request head: the caller's headers in their order with Host before headers[host_index]; a closing request without a
 * Connection header of the caller's gets "Connection: close" after them; Content-Length last. */
static int build_head(k2a_buf_t *b, const k2a_http_request_t *req, size_t body_len, bool close)
{
    if (!is_token(req->method))
        return K2A_EINVAL;
    const k2a_url_t *u = req->url;
    bool bodyless = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    size_t method_len = strlen(req->method);
    /* method SP path " HTTP/1.1\r\n" "Host: [" host "]:65535\r\n", headers, "Connection: close\r\n",
     * "Content-Length: 20 digits\r\n\r\n" */
    size_t need = method_len + 1 + u->path.len + 11 + 6 + u->host.len + 2 + 8 + 19 + 40;
    bool has_connection = false;
    for (size_t i = 0; i < req->nheaders; ++i) {
        const k2a_http_header_t *h = &req->headers[i];
        if (h->name.len == 0 || has_ctl(h->name) || has_ctl(h->value) || memchr(h->name.base, ':', h->name.len) != NULL)
            return K2A_EINVAL;
        has_connection = has_connection || name_eq(h->name, "connection");
        need += h->name.len + 2 + h->value.len + 2;
    }
    int r = k2a_buf_reserve(b, need);
    if (r != 0)
        return r == K2A_ETOOBIG ? K2A_EINVAL : r;
    put(b, req->method, method_len);
    put(b, " ", 1);
    put(b, u->path.base, u->path.len);
    put(b, " HTTP/1.1\r\n", 11);
    for (size_t i = 0; i < req->nheaders; ++i) {
        const k2a_http_header_t *h = &req->headers[i];
        if (i == req->host_index)
            put_host(b, u);
        put(b, h->name.base, h->name.len);
        put(b, ": ", 2);
        put(b, h->value.base, h->value.len);
        put(b, "\r\n", 2);
    }
    if (req->host_index >= req->nheaders)
        put_host(b, u);
    if (close && !has_connection)
        put(b, "Connection: close\r\n", 19);
    if (body_len > 0 || !bodyless) {
        put(b, "Content-Length: ", 16);
        put_uint(b, body_len);
        put(b, "\r\n", 2);
    }
    put(b, "\r\n", 2);
    return 0;
}

static bool token_in_list(k2a_str_t v, const char *tok)
{
    size_t tl = strlen(tok);
    const char *p = v.base, *end = v.base + v.len;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            ++p;
        const char *s = p;
        while (p < end && *p != ',')
            ++p;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            --e;
        if ((size_t)(e - s) == tl && strncasecmp(s, tok, tl) == 0)
            return true;
    }
    return false;
}

static bool name_is(const struct phr_header *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Decides the body framing from the parsed head (RFC 9112 §6.3). */
static int setup_body(resp_t *r, size_t nh)
{
    bool chunked = false, has_te = false, has_cl = false, k2a_up_conn_close = false, conn_keep = false;
    uint64_t cl = 0;
    for (size_t i = 0; i < nh; ++i) {
        const struct phr_header *h = &r->phrh[i];
        k2a_str_t v = k2a_str(h->value, h->value_len);
        if (name_is(h, "transfer-encoding")) {
            has_te = true;
            /* chunked must be the last coding; anything else is read until close */
            const char *e = v.base + v.len;
            while (e > v.base && (e[-1] == ' ' || e[-1] == '\t'))
                --e;
            chunked = (size_t)(e - v.base) >= 7 && strncasecmp(e - 7, "chunked", 7) == 0;
        } else if (name_is(h, "content-length")) {
            if (v.len == 0 || v.len > 18)
                return K2A_EHTTP_PARSE;
            uint64_t n = 0;
            for (size_t j = 0; j < v.len; ++j) {
                if (v.base[j] < '0' || v.base[j] > '9')
                    return K2A_EHTTP_PARSE;
                n = n * 10 + (uint64_t)(v.base[j] - '0');
            }
            if (has_cl && n != cl)
                return K2A_EHTTP_PARSE;
            has_cl = true;
            cl = n;
        } else if (name_is(h, "connection")) {
            k2a_up_conn_close |= token_in_list(v, "close");
            conn_keep |= token_in_list(v, "keep-alive");
        }
    }
    r->keepalive = !k2a_up_conn_close && !r->close_conn && (r->pub.minor_version >= 1 || conn_keep);
    r->pub.content_length = -1;
    int status = r->pub.status;
    if (r->head_method || status == 204 || status == 304 || (status >= 100 && status < 200)) {
        r->mode = BODY_NONE;
        r->done = true;
        if (has_cl && !has_te)
            r->pub.content_length = (int64_t)cl;
    } else if (has_te) {
        r->mode = chunked ? BODY_CHUNKED : BODY_CLOSE;
        r->chunked.consume_trailer = 1;
    } else if (has_cl) {
        r->mode = BODY_LENGTH;
        r->remaining = cl;
        r->pub.content_length = (int64_t)cl;
        r->done = cl == 0;
    } else {
        r->mode = BODY_CLOSE;
    }
    if (r->mode == BODY_CLOSE)
        r->keepalive = false;
    if (r->done && r->pending_len > 0)
        r->keepalive = false; /* bytes after a complete response: the connection is out of step */
    return 0;
}

/* Tells "too many headers" from a malformed head when picohttpparser fails: it fails both ways. */
static int classify_parse_error(const resp_t *r, size_t off)
{
    size_t lines = 0;
    const char *p = r->head.base + off, *end = r->head.base + r->head.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        if (nl == NULL || nl == p || (nl == p + 1 && *p == '\r'))
            break; /* end of the head */
        ++lines;
        p = nl + 1;
    }
    return lines > (size_t)r->up->cfg.max_headers + 1 ? K2A_EHEADER_TOOBIG : K2A_EHTTP_PARSE;
}

static int map_write_error(int r)
{
    return r == K2A_ECLOSED ? K2A_ERESET_BEFORE_RESPONSE : r;
}

/* Writes [head, body...] in one call, the body iovecs untouched. Not inlined: its iovecs and head buffer are not part of
 * the frame that waits for the answer (see k2a_coro_trim_stack). */
static __attribute__((noinline)) int send_request(resp_t *r, const k2a_http_request_t *req, uint32_t first_byte_timeout_ms)
{
    conn_t *c = r->conn;
    size_t body_len = 0;
    for (size_t i = 0; i < req->nbody; ++i)
        body_len += req->body[i].len;
    k2a_buf_t hb;
    k2a_buf_init(&hb, REQUEST_HEAD_MAX);
    int rc = build_head(&hb, req, body_len, r->close_conn);
    if (rc != 0) {
        k2a_buf_dispose(&hb);
        return rc;
    }
    uv_buf_t small[9], *bufs = req->nbody < 9 ? small : malloc((req->nbody + 1) * sizeof(*bufs));
    if (bufs == NULL) {
        k2a_buf_dispose(&hb);
        return K2A_ENOMEM;
    }
    bufs[0] = uv_buf_init(hb.base, (unsigned)hb.len);
    size_t nbufs = 1;
    for (size_t i = 0; i < req->nbody; ++i)
        if (req->body[i].len > 0)
            bufs[nbufs++] = req->body[i];
    rc = k2a_up_conn_write(c, bufs, nbufs, first_byte_timeout_ms, K2A_EFIRST_BYTE_TIMEOUT);
    if (bufs != small)
        free(bufs);
    k2a_buf_dispose(&hb);
    return rc != 0 ? map_write_error(rc) : 0;
}

int k2a_up_http_exchange(resp_t *r, const k2a_http_request_t *req, uint32_t first_byte_timeout_ms)
{
    k2a_upstream_t *up = r->up;
    conn_t *c = r->conn;
    resp_reset(r);
    r->head_method = strcmp(req->method, "HEAD") == 0;
    uint64_t deadline = first_byte_timeout_ms != 0 ? uv_now(up->loop) + first_byte_timeout_ms : UINT64_MAX;
    int rc = send_request(r, req, first_byte_timeout_ms);
    if (rc != 0)
        return rc;

    /* read the head: the first byte under the first-byte deadline, the rest under the idle timeout */
    size_t off = 0, last_len = 0;
    for (;;) {
        uint64_t timeout;
        int timeout_err;
        if (!r->got_bytes) {
            uint64_t now = uv_now(up->loop);
            if (deadline != UINT64_MAX && now >= deadline)
                return K2A_EFIRST_BYTE_TIMEOUT;
            timeout = deadline == UINT64_MAX ? 0 : deadline - now;
            timeout_err = K2A_EFIRST_BYTE_TIMEOUT;
        } else {
            timeout = r->idle_timeout_ms;
            timeout_err = K2A_EIDLE_TIMEOUT;
        }
        char *p;
        intptr_t n = k2a_up_conn_read(c, &p, timeout, timeout_err);
        if (n == 0 || n == K2A_ECLOSED)
            return K2A_ERESET_BEFORE_RESPONSE;
        if (n < 0)
            return (int)n;
        r->got_bytes = true;
        if (k2a_buf_append(&r->head, p, (size_t)n) != 0)
            return K2A_EHEADER_TOOBIG;
        if ((rc = k2a_up_http_parse_head(r, &off, &last_len)) != K2A_EINCOMPLETE)
            return rc;
    }
}

int k2a_up_http_parse_head(resp_t *r, size_t *off, size_t *last_len)
{
    size_t max_bytes = r->up->cfg.max_header_bytes;
    for (;;) {
        int minor, status;
        const char *msg;
        size_t msg_len, nh = r->cap_headers;
        int pr =
            phr_parse_response(r->head.base + *off, r->head.len - *off, &minor, &status, &msg, &msg_len, r->phrh, &nh, *last_len);
        if (pr == -1 && r->cap_headers < r->up->cfg.max_headers) {
            /* maybe only more headers than the arrays hold: parse again from the start with room for the maximum */
            if (alloc_headers(r, r->up->cfg.max_headers) != 0)
                return K2A_ENOMEM;
            *last_len = 0;
            continue;
        }
        if (pr == -2) {
            if (r->head.len - *off > max_bytes)
                return K2A_EHEADER_TOOBIG;
            *last_len = r->head.len - *off;
            return K2A_EINCOMPLETE;
        }
        if (pr < 0)
            return classify_parse_error(r, *off);
        if ((size_t)pr > max_bytes)
            return K2A_EHEADER_TOOBIG;
        if (status >= 100 && status < 200 && status != 101) {
            *off += (size_t)pr; /* an interim response (100 Continue, 103 Early Hints): the real one follows */
            *last_len = 0;
            continue;
        }
        for (size_t i = 0; i < nh; ++i) {
            if (r->phrh[i].name == NULL)
                return K2A_EHTTP_PARSE; /* obsolete line folding */
            r->hdrs[i].name = k2a_str(r->phrh[i].name, r->phrh[i].name_len);
            r->hdrs[i].value = k2a_str(r->phrh[i].value, r->phrh[i].value_len);
        }
        r->pub.status = status;
        r->pub.minor_version = minor;
        r->pub.headers = r->hdrs;
        r->pub.nheaders = nh;
        r->pending = r->head.base + *off + pr;
        r->pending_len = r->head.len - *off - (size_t)pr;
        return status == 101 ? K2A_EHTTP_PARSE : setup_body(r, nh);
    }
}

/* ---- body ---- */

static intptr_t body_fail(resp_t *r, int err)
{
    r->error = err;
    r->keepalive = false;
    ++r->up->stats.body_errors;
    return err;
}

intptr_t k2a_up_http_body_piece(resp_t *r, char *p, size_t n, char **out)
{
    *out = p;
    switch (r->mode) {
    case BODY_LENGTH:
        if (n >= r->remaining) {
            if (n > r->remaining)
                r->keepalive = false; /* bytes past the body: the connection is out of step */
            n = (size_t)r->remaining;
            r->remaining = 0;
            r->done = true;
        } else {
            r->remaining -= n;
        }
        return (intptr_t)n;
    case BODY_CHUNKED: {
        size_t sz = n;
        ssize_t left = phr_decode_chunked(&r->chunked, p, &sz);
        if (left == -1) {
            /* h2o (kiro-sim) and other servers abort a chunked response by writing an invalid chunk before closing: for
             * the caller this is a body cut short, like an EOF inside a chunk. Bytes decoded before the bad chunk are
             * delivered first. */
            k2a_debug("upstream: chunked framing broke mid-body");
            if (sz == 0)
                return K2A_ERESET_MID_BODY;
            r->deferred_error = K2A_ERESET_MID_BODY;
            return (intptr_t)sz;
        }
        if (left >= 0) {
            r->done = true;
            if (left > 0)
                r->keepalive = false;
        }
        return (intptr_t)sz;
    }
    case BODY_CLOSE:
        return (intptr_t)n;
    default:
        r->done = true;
        return 0;
    }
}

intptr_t k2a_upstream_read(k2a_http_response_t *resp, const char **data)
{
    resp_t *r = (resp_t *)resp;
    if (r->error != 0)
        return r->error;
    if (r->deferred_error != 0)
        return body_fail(r, r->deferred_error);
    for (;;) {
        if (r->done)
            return 0;
        char *p;
        size_t n;
        if (r->pending_len > 0) {
            p = r->pending;
            n = r->pending_len;
            r->pending_len = 0;
        } else {
            intptr_t got = k2a_up_conn_read(r->conn, &p, r->idle_timeout_ms, K2A_EIDLE_TIMEOUT);
            if (got == 0) {
                if (r->mode == BODY_CLOSE) {
                    r->done = true;
                    return 0;
                }
                return body_fail(r, K2A_ERESET_MID_BODY);
            }
            if (got == K2A_ECLOSED)
                return body_fail(r, K2A_ERESET_MID_BODY);
            if (got < 0)
                return body_fail(r, (int)got);
            n = (size_t)got;
        }
        char *out;
        intptr_t got = k2a_up_http_body_piece(r, p, n, &out);
        if (got < 0)
            return body_fail(r, (int)got);
        if (got > 0) {
            *data = out;
            return got;
        }
    }
}

int k2a_upstream_read_all(k2a_http_response_t *resp, k2a_buf_t *out, size_t max)
{
    size_t got = 0;
    for (;;) {
        const char *d;
        intptr_t n = k2a_upstream_read(resp, &d);
        if (n <= 0)
            return (int)n;
        if ((size_t)n > max - got) {
            int r = k2a_buf_append(out, d, max - got);
            ((resp_t *)resp)->keepalive = false; /* the rest stays unread */
            return r != 0 ? r : K2A_ETOOBIG;
        }
        int r = k2a_buf_append(out, d, (size_t)n);
        if (r != 0) {
            ((resp_t *)resp)->keepalive = false;
            return r;
        }
        got += (size_t)n;
    }
}

int k2a_upstream_read_error_body(k2a_http_response_t *resp, k2a_buf_t *out)
{
    int r = k2a_upstream_read_all(resp, out, K2A_UPSTREAM_ERROR_BODY_MAX);
    return r == K2A_ETOOBIG ? 0 : r;
}

k2a_str_t k2a_http_response_header(const k2a_http_response_t *resp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < resp->nheaders; ++i)
        if (resp->headers[i].name.len == n && strncasecmp(resp->headers[i].name.base, name, n) == 0)
            return resp->headers[i].value;
    return K2A_STR_NULL;
}
