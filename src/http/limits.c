/*
 * Bounds on what clients make the gateway hold before a request reaches a handler, where h2o 2.2.5 has no hook
 * (SECURITY.md "Resource bounds"). After every turn of the loop that read from clients (at most every
 * K2A_LIMITS_SCAN_MS), a scan looks at every client connection: the bytes waiting in its socket buffer and, on HTTP/2,
 * every stream's buffered request body, the header blocks still being received and the decoded headers of requests
 * not yet complete. A connection is shut down (both directions, h2o then closes it on its own path) when
 *  - one of its requests has more than K2A_MAX_REQ_HEADERS decoded headers or K2A_MAX_REQ_HEADER_BYTES of them
 *    (HPACK references expand a small block into a huge header list),
 *  - its buffered bytes exceed the per-connection bound (h2o's per-stream entity limit, one request's worth),
 *  - a request's body is still arriving KIRO_HEADER_TIMEOUT_MS after its headers (PINGs do not reset this),
 * and, while the total over all connections exceeds KIRO_MAX_BUFFERED_BYTES, the largest ones are shut down.
 * Also here, as the other reader of h2o's HTTP/2 stream state: freeing a stream's body buffer once a handler has its copy.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include "h2o.h"
#include "h2o/http2.h"
#include "h2o/http2_internal.h"
#include "core/log.h"
#include "http/limits.h"

typedef struct st_victim_t {
    int fd;
    size_t bytes;
} victim_t;

typedef struct st_scan_t {
    k2a_server_t *s;
    size_t total;
    victim_t *v;
    size_t nv, cap;
} scan_t;

static void note(scan_t *sc, int fd, size_t bytes)
{
    sc->total += bytes;
    if (bytes < 64 * 1024 || fd < 0)
        return; /* too small to be worth closing for the total */
    if (sc->nv == sc->cap) {
        size_t n = sc->cap != 0 ? sc->cap * 2 : 64;
        victim_t *v = realloc(sc->v, n * sizeof(*v));
        if (v == NULL)
            return;
        sc->v = v;
        sc->cap = n;
    }
    sc->v[sc->nv++] = (victim_t){fd, bytes};
}

static void shut(k2a_server_t *s, int fd, const char *why, size_t bytes)
{
    ++s->metrics.conns_limited;
    k2a_warn("client connection closed: %s (%zu bytes held)", why, bytes);
    shutdown(fd, SHUT_RDWR);
}

static int by_bytes_desc(const void *a, const void *b)
{
    size_t x = ((const victim_t *)a)->bytes, y = ((const victim_t *)b)->bytes;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Decoded header bytes of a request, or SIZE_MAX past the count bound (not walked: the count is enough). */
static size_t header_bytes(const h2o_req_t *req)
{
    if (req->headers.size > K2A_MAX_REQ_HEADERS)
        return SIZE_MAX;
    size_t n = req->authority.len + req->path.len + req->method.len;
    for (size_t i = 0; i < req->headers.size; ++i)
        n += req->headers.entries[i].name->len + req->headers.entries[i].value.len;
    return n;
}

/* True when the connection has had a header block in progress (HEADERS without END_HEADERS and its CONTINUATIONs) for
 * longer than KIRO_HEADER_TIMEOUT_MS. h2o 2.2.5 keeps its idle timer running on any frame, so a client sending a PING
 * every few seconds could park an unfinished block for ever; this clock starts when the block is first seen and only a
 * finished block (or the connection's end) stops it. */
static bool header_block_too_slow(k2a_server_t *s, h2o_http2_conn_t *conn, int fd, uint64_t now_ms)
{
    if ((size_t)fd >= s->h2_head_cap) {
        if (conn->_headers_unparsed == NULL || fd >= (1 << 22))
            return false;
        size_t cap = s->h2_head_cap < 256 ? 256 : s->h2_head_cap;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct st_k2a_h2_head_seen_t *v = realloc(s->h2_head_seen, cap * sizeof(*v));
        if (v == NULL)
            return false;
        memset(v + s->h2_head_cap, 0, (cap - s->h2_head_cap) * sizeof(*v));
        s->h2_head_seen = v;
        s->h2_head_cap = cap;
    }
    struct st_k2a_h2_head_seen_t *e = &s->h2_head_seen[fd];
    if (conn->_headers_unparsed == NULL) {
        if (e->conn_id == conn->super.id)
            e->since_ms = 0;
        return false;
    }
    if (e->conn_id != conn->super.id || e->since_ms == 0) {
        e->conn_id = conn->super.id;
        e->since_ms = now_ms;
        return false;
    }
    return now_ms > e->since_ms && now_ms - e->since_ms > (uint64_t)s->config->header_timeout_ms;
}

static void scan_http2(scan_t *sc, h2o_http2_conn_t *conn, uint64_t now_ms)
{
    k2a_server_t *s = sc->s;
    int fd = conn->sock != NULL ? h2o_socket_get_fd(conn->sock) : -1;
    if (fd < 0)
        return;
    size_t bytes = conn->_headers_unparsed != NULL ? conn->_headers_unparsed->size : 0;
    const char *why = NULL;
    if (header_block_too_slow(s, conn, fd, now_ms))
        why = "a header block still arriving after KIRO_HEADER_TIMEOUT_MS";
    for (khint_t i = 0; conn->streams != NULL && i < kh_end(conn->streams); ++i) {
        if (!kh_exist(conn->streams, i))
            continue;
        h2o_http2_stream_t *stream = kh_val(conn->streams, i);
        if (stream->state > H2O_HTTP2_STREAM_STATE_REQ_PENDING)
            continue; /* handed to a handler: the call owns what it needs */
        size_t hb = header_bytes(&stream->req);
        if (hb == SIZE_MAX || hb > K2A_MAX_REQ_HEADER_BYTES) {
            why = "a request's decoded headers exceed their bound";
            bytes += hb == SIZE_MAX ? stream->req.headers.size * sizeof(h2o_header_t) : hb;
        } else {
            bytes += hb;
        }
        if (stream->_req_body != NULL)
            bytes += stream->_req_body->size;
        if (stream->state == H2O_HTTP2_STREAM_STATE_RECV_BODY && why == NULL) {
            uint64_t begin = (uint64_t)stream->req.timestamps.request_begin_at.tv_sec * 1000 +
                             (uint64_t)stream->req.timestamps.request_begin_at.tv_usec / 1000;
            if (begin != 0 && now_ms > begin && now_ms - begin > (uint64_t)s->config->header_timeout_ms)
                why = "a request body still arriving after KIRO_HEADER_TIMEOUT_MS";
        }
    }
    if (why == NULL && bytes > s->max_conn_buffered)
        why = "buffered request bytes exceed the per-connection bound";
    if (why != NULL) {
        shut(s, fd, why, bytes);
        return;
    }
    note(sc, fd, bytes);
}

void k2a_limits_release_h2_body(h2o_req_t *req, char *copy)
{
    if (req->version < 0x200 || req->entity.len == 0)
        return;
    /* h2o reads a stream's body buffer only while the body arrives (state RECV_BODY, before the handler) and frees it at
     * the close when it is still there; the scan above counts streams up to REQ_PENDING only */
    h2o_http2_stream_t *stream = H2O_STRUCT_FROM_MEMBER(h2o_http2_stream_t, req, req);
    if (stream->state <= H2O_HTTP2_STREAM_STATE_REQ_PENDING || stream->_req_body == NULL ||
        stream->_req_body->bytes != req->entity.base)
        return; /* not a body h2o buffered for a stream being handled (an upgraded HTTP/1.1 request keeps its own) */
    h2o_buffer_dispose(&stream->_req_body);
    req->entity.base = copy;
}

void k2a_limits_scan(k2a_server_t *s, bool full)
{
    scan_t sc = {.s = s};
    size_t socket_total = 0;
    struct timeval *tv = h2o_get_timestamp(&s->ctx, NULL, NULL);
    uint64_t now_ms = (uint64_t)tv->tv_sec * 1000 + (uint64_t)tv->tv_usec / 1000;
    for (h2o_linklist_t *l = s->ctx.http2._conns.next; l != &s->ctx.http2._conns; l = l->next)
        scan_http2(&sc, H2O_STRUCT_FROM_MEMBER(h2o_http2_conn_t, _conns, l), now_ms);
    /* what every connection has read and not parsed yet (an HTTP/1.1 request's head and body wait here): every
     * K2A_LIMITS_SCAN_MS, these bytes come in no faster than the network brings them */
    if (!full)
        sc.total += s->socket_buffered;
    for (k2a_client_conn_t *c = full ? s->clients : NULL; c != NULL; c = c->next) {
        h2o_socket_t *sock = c->tcp.data;
        if (sock == NULL || sock->input == NULL || sock->input->size == 0)
            continue;
        int fd = h2o_socket_get_fd(sock);
        if (sock->input->size > s->max_conn_buffered && fd >= 0) {
            shut(s, fd, "buffered request bytes exceed the per-connection bound", sock->input->size);
            continue;
        }
        note(&sc, fd, sock->input->size);
        socket_total += sock->input->size;
    }
    if (full)
        s->socket_buffered = socket_total;
    if (s->max_total_buffered != 0 && sc.total > s->max_total_buffered && sc.nv != 0) {
        qsort(sc.v, sc.nv, sizeof(*sc.v), by_bytes_desc);
        for (size_t i = 0; i < sc.nv && sc.total > s->max_total_buffered; ++i) {
            shut(s, sc.v[i].fd, "the buffered request bytes of all connections exceed KIRO_MAX_BUFFERED_BYTES", sc.v[i].bytes);
            sc.total -= sc.v[i].bytes;
        }
    }
    s->buffered_bytes = sc.total;
    s->metrics.buffered_bytes = sc.total;
    free(sc.v);
}

/* After every loop turn: the HTTP/2 connections (an HPACK block decodes into far more than it weighs, so as soon as
 * possible), and every K2A_LIMITS_SCAN_MS all connections. */
/* picohttpparser, as libh2o 2.2.5 exports it (its header is not installed). */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_request(const char *buf, size_t len, const char **method, size_t *method_len, const char **path, size_t *path_len,
                      int *minor_version, struct phr_header *headers, size_t *num_headers, size_t last_len);

static bool name_is(const struct phr_header *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

bool k2a_limits_framing_conflict(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return false;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL || sock->input->size == 0)
        return false;
    /* the request's head is still at the start of the socket buffer: h2o consumes it once the response is sent */
    struct phr_header headers[H2O_MAX_HEADERS];
    size_t nheaders = H2O_MAX_HEADERS, method_len, path_len;
    const char *method, *path;
    int minor;
    if (phr_parse_request(sock->input->bytes, sock->input->size, &method, &method_len, &path, &path_len, &minor, headers, &nheaders,
                          0) <= 0)
        return false;
    const struct phr_header *cl = NULL;
    bool te = false;
    for (size_t i = 0; i < nheaders; ++i) {
        if (headers[i].name == NULL)
            continue; /* a continuation line */
        if (name_is(&headers[i], "transfer-encoding")) {
            te = true;
        } else if (name_is(&headers[i], "content-length")) {
            if (cl != NULL && (cl->value_len != headers[i].value_len || memcmp(cl->value, headers[i].value, cl->value_len) != 0))
                return true; /* two different lengths */
            if (memchr(headers[i].value, ',', headers[i].value_len) != NULL)
                return true; /* a list of lengths */
            cl = &headers[i];
        }
    }
    return te && cl != NULL; /* both framings */
}

static void on_check(uv_check_t *h)
{
    k2a_server_t *s = h->data;
    if (s->clients == NULL)
        return;
    uint64_t now = uv_now(s->loop);
    bool full = now - s->limits_scanned_at >= K2A_LIMITS_SCAN_MS;
    if (full)
        s->limits_scanned_at = now;
    else if (s->ctx.http2._conns.next == &s->ctx.http2._conns)
        return;
    k2a_limits_scan(s, full);
}

int k2a_limits_start(k2a_server_t *s)
{
    s->max_conn_buffered = s->globalconf.max_request_entity_size + H2O_MAX_REQLEN;
    s->max_total_buffered = (size_t)s->config->max_buffered_bytes;
    /* nothing spills to temporary files: a buffer past h2o's 32 MiB default threshold stays in memory, within the
     * bounds above (h2o's files under /tmp would be RAM on tmpfs anyway, and unbounded) */
    h2o_socket_buffer_mmap_settings.threshold = SIZE_MAX;
    if ((s->limits_check = malloc(sizeof(*s->limits_check))) == NULL)
        return -1;
    uv_check_init(s->loop, s->limits_check);
    s->limits_check->data = s;
    uv_check_start(s->limits_check, on_check);
    uv_unref((uv_handle_t *)s->limits_check);
    return 0;
}
