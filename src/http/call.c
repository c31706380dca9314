/*
 * Coroutine-served requests and their double-buffered, backpressured response stream (see call.h).
 * The invariant that keeps this simple: nothing touches a call after an h2o_send, because h2o may
 * dispose of the request (and our disposal hook may free the call) inside that very send.
 */
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "http/call.h"
#include "http/keys_gate.h"
#include "http/limits.h"
#include "http/respond.h"
#include "pool/sticky.h"

#define DEFAULT_HIGH_WATER (256 * 1024)

typedef struct st_call_ref_t {
    k2a_call_t *call;
} call_ref_t;

static void unlink_sending(k2a_call_t *call)
{
    if (call->sprev == NULL && call->server->sending != call)
        return;
    if (call->sprev != NULL)
        call->sprev->snext = call->snext;
    else
        call->server->sending = call->snext;
    if (call->snext != NULL)
        call->snext->sprev = call->sprev;
    call->sprev = call->snext = NULL;
}

static void link_sending(k2a_call_t *call)
{
    unlink_sending(call);
    call->snext = call->server->sending;
    if (call->snext != NULL)
        call->snext->sprev = call;
    call->server->sending = call;
}

static void unlink_queued(k2a_call_t *call)
{
    if (!call->queued)
        return;
    call->queued = 0;
    if (call->qprev != NULL)
        call->qprev->qnext = call->qnext;
    else
        call->server->send_queue = call->qnext;
    if (call->qnext != NULL)
        call->qnext->qprev = call->qprev;
    call->qprev = call->qnext = NULL;
}

static void call_free(k2a_call_t *call)
{
    unlink_sending(call);
    unlink_queued(call);
    k2a_buf_dispose(&call->out[0]);
    k2a_buf_dispose(&call->out[1]);
    k2a_arena_dispose(&call->arena);
    free(call);
}

/* The client is gone (stop) or the request was disposed: never touch req again; unwind the coroutine unless the response
 * was already complete. */
static void mark_gone(k2a_call_t *call)
{
    if (call->req_gone)
        return;
    call->req_gone = 1;
    call->req = NULL;
    unlink_sending(call);
    unlink_queued(call);
    if (!call->co_done && !call->final_sent)
        k2a_coro_cancel(call->co);
}

static void on_req_disposed(void *p)
{
    k2a_call_t *call = ((call_ref_t *)p)->call;
    mark_gone(call);
    if (call->co_done)
        call_free(call);
}

/* Sends the filled buffer (and the end of the response when queued). Must be the last thing its caller does with the call. */
static void send_pending(k2a_call_t *call)
{
    if (call->in_flight || call->req_gone || call->final_sent || !call->started)
        return;
    unlink_queued(call);
    k2a_buf_t *buf = &call->out[call->filling];
    if (buf->len == 0 && !call->final_queued)
        return;
    h2o_iovec_t vec = h2o_iovec_init(buf->base, buf->len);
    call->filling ^= 1;
    k2a_buf_reset(&call->out[call->filling]); /* the buffer h2o released at the last proceed */
    call->in_flight = 1;
    call->bytes_written += vec.len;
    call->last_write_at = uv_now(call->server->loop);
    call->send_since = call->last_write_at;
    call->last_outq = -2; /* not looked at yet */
    link_sending(call);
    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (call->final_queued) {
        call->final_sent = 1;
        state = H2O_SEND_STATE_FINAL;
    }
    h2o_send(call->req, &vec, vec.len != 0 ? 1 : 0, state);
}

/* The end of the loop iteration's I/O: every queued call hands what it wrote to h2o. A send may dispose of other requests
 * (their calls leave the queue as they are freed) or start new ones that queue themselves: take the head each time. */
static void on_send_check(uv_check_t *check)
{
    k2a_server_t *server = check->data;
    k2a_call_t *call;
    while ((call = server->send_queue) != NULL) {
        unlink_queued(call);
        send_pending(call);
    }
    uv_check_stop(check);
    if (server->send_idle != NULL)
        uv_idle_stop(server->send_idle);
}

static void on_send_idle(uv_idle_t *idle)
{
    (void)idle; /* only there so that the loop's poll does not block while sends are queued */
}

void k2a_call_send_queue_start(k2a_server_t *server)
{
    uv_check_t *check = malloc(sizeof(*check));
    uv_idle_t *idle = malloc(sizeof(*idle));
    if (check == NULL || idle == NULL) {
        free(check);
        free(idle);
        return; /* sends then go out at once */
    }
    uv_check_init(server->loop, check);
    uv_idle_init(server->loop, idle);
    check->data = idle->data = server;
    server->send_check = check;
    server->send_idle = idle;
}

void k2a_call_send_queue_stop(k2a_server_t *server)
{
    k2a_call_t *call;
    while ((call = server->send_queue) != NULL) {
        unlink_queued(call);
        send_pending(call);
    }
    if (server->send_check != NULL)
        uv_close((uv_handle_t *)server->send_check, (uv_close_cb)free);
    if (server->send_idle != NULL)
        uv_close((uv_handle_t *)server->send_idle, (uv_close_cb)free);
    server->send_check = NULL;
    server->send_idle = NULL;
}

/* Sends the filled buffer at the end of the loop iteration's I/O (at once without the server's queue). Like send_pending,
 * the last thing its caller does with the call when the send is immediate. */
static void schedule_send(k2a_call_t *call)
{
    k2a_server_t *server = call->server;
    if (call->queued || call->in_flight || call->req_gone || call->final_sent || !call->started)
        return;
    if (server->send_check == NULL) {
        send_pending(call);
        return;
    }
    call->queued = 1;
    call->qprev = NULL;
    call->qnext = server->send_queue;
    if (call->qnext != NULL)
        call->qnext->qprev = call;
    else {
        uv_check_start(server->send_check, on_send_check);
        uv_idle_start(server->send_idle, on_send_idle);
    }
    server->send_queue = call;
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    k2a_call_t *call = H2O_STRUCT_FROM_MEMBER(k2a_call_t, generator, gen);
    call->in_flight = 0;
    unlink_sending(call);
    if (call->waiting_drain && call->out[call->filling].len <= call->high_water) {
        call->waiting_drain = 0;
        k2a_coro_wake(call->co, 0);
    }
    send_pending(call);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    k2a_call_t *call = H2O_STRUCT_FROM_MEMBER(k2a_call_t, generator, gen);
    mark_gone(call);
}

static void link_call(k2a_call_t *call)
{
    call->next = call->server->calls;
    if (call->next != NULL)
        call->next->prev = call;
    call->server->calls = call;
}

static void unlink_call(k2a_call_t *call)
{
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        call->server->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    call->prev = call->next = NULL;
}

/* Shuts the client's socket down in both directions without closing the descriptor: h2o's pending write fails (EPIPE)
 * and its read sees the end, so h2o tears the connection down on its own path. On HTTP/2 this ends the connection's
 * other streams too: h2o 2.2.5 exports no way to reset one stream from a handler. */
static void shutdown_client(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1;
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* Bytes of the client's socket the kernel still holds (-1 when unknown): when it moves, the client is taking bytes. */
static int client_outq(h2o_req_t *req)
{
    h2o_socket_t *sock = req->conn->callbacks->get_socket != NULL ? req->conn->callbacks->get_socket(req->conn) : NULL;
    int fd = sock != NULL ? h2o_socket_get_fd(sock) : -1, n = -1;
    if (fd < 0 || ioctl(fd, SIOCOUTQ, &n) != 0)
        return -1;
    return n;
}

size_t k2a_call_end_stalled(k2a_server_t *server, uint64_t now, uint64_t stall_ms)
{
    size_t n = 0;
    k2a_call_t *call = server->sending;
    while (call != NULL) {
        k2a_call_t *next = call->snext;
        if (!call->in_flight || call->req_gone) {
            call = next;
            continue;
        }
        /* a slow reader still drains the kernel's queue: that is progress, not a stall */
        int outq = client_outq(call->req);
        if (outq != call->last_outq) {
            call->last_outq = outq;
            call->send_since = now;
        }
        if (now - call->send_since >= stall_ms) {
            unlink_sending(call);
            call->stalled = 1;
            ++server->metrics.write_stalls;
            ++n;
            k2a_warn("request %s: the client took no bytes for %llu ms (KIRO_WRITE_STALL_TIMEOUT_MS): response ended",
                     call->request_id, (unsigned long long)(now - call->send_since));
            h2o_req_t *req = call->req;
            if (!call->co_done && !call->final_sent)
                k2a_coro_cancel(call->co); /* unwinds the upstream call and releases the slots it holds */
            shutdown_client(req);
        }
        call = next;
    }
    return n;
}

size_t k2a_call_cancel_all(k2a_server_t *server)
{
    size_t n = 0;
    for (k2a_call_t *call = server->calls; call != NULL; call = call->next) {
        k2a_coro_cancel(call->co);
        ++n;
    }
    return n;
}

static void call_main(k2a_coro_t *co, void *arg)
{
    k2a_call_t *call = arg;
    link_call(call);
    call->fn(call);
    k2a_keys_gate_end(call);
    if (!call->req_gone && !call->final_queued) {
        if (!call->started) {
            k2a_error("request %s: handler returned without a response", call->request_id);
            k2a_call_respond_error(call, K2A_EINTERNAL, "internal error: the handler produced no response");
        } else {
            k2a_call_finish(call);
        }
    }
    unlink_call(call);
    --call->server->ncalls;
    call->co_done = 1;
    if (call->req_gone)
        call_free(call);
}

/* The client key as router.c reads it (Authorization without "Bearer ", else x-api-key), hashed at once: the last session
 * key of sticky routing. */
static uint64_t client_key_id(h2o_req_t *req)
{
    h2o_iovec_t k = k2a_http_header(req, "authorization");
    if (k.base != NULL && k.len >= 7 && strncasecmp(k.base, "bearer ", 7) == 0)
        k.base += 7, k.len -= 7;
    if (k.base == NULL || k.len == 0)
        k = k2a_http_header(req, "x-api-key");
    return k.base != NULL && k.len != 0 && k.len <= 4096 ? k2a_sticky_client_key(k2a_str(k.base, k.len)) : 0;
}

static k2a_str_t copy_header(k2a_call_t *call, h2o_req_t *req, const char *name, size_t max)
{
    h2o_iovec_t v = k2a_http_header(req, name);
    if (v.base == NULL || v.len > max)
        return K2A_STR_NULL;
    return k2a_arena_strdup_str(&call->arena, k2a_str(v.base, v.len));
}

static void copy_peer(k2a_call_t *call, h2o_req_t *req)
{
    struct sockaddr_storage ss;
    char host[INET6_ADDRSTRLEN] = "";
    if (req->conn->callbacks->get_peername != NULL && req->conn->callbacks->get_peername(req->conn, (void *)&ss) != 0) {
        if (ss.ss_family == AF_INET)
            k2a_ipv4_text(host, (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr.s_addr);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
    }
    call->client_ip = k2a_arena_strdup_str(&call->arena, k2a_cstr(host));
}

int k2a_call_start(h2o_req_t *req, k2a_route_t route, const k2a_dialect_t *dialect, const char *request_id, k2a_call_fn fn)
{
    k2a_server_t *server = k2a_server_of(req);
    if (server->max_calls != 0 && server->ncalls >= server->max_calls)
        goto Busy; /* KIRO_MAX_CONCURRENT: exact, whatever coroutines the pool's background jobs hold */
    k2a_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        goto Busy;
    call->server = server;
    call->req = req;
    call->route = route;
    call->dialect = dialect;
    call->fn = fn;
    call->key = server->routed_key; /* set by the router for this very request */
    call->high_water = DEFAULT_HIGH_WATER;
    k2a_buf_init(&call->out[0], 0);
    k2a_buf_init(&call->out[1], 0);
    /* the IR mostly points into the body; the arena holds what yajl had to unescape and the encoded Kiro request */
    k2a_arena_init(&call->arena, (size_t)server->config->max_body_bytes * 4 + 64 * 1024 * 1024);
    k2a_copy_cstr(call->request_id, sizeof(call->request_id), request_id);
    if ((call->body = k2a_arena_strndup(&call->arena, req->entity.base != NULL ? req->entity.base : "", req->entity.len)) == NULL) {
        call_free(call);
        goto Busy;
    }
    call->body_len = req->entity.len;
    k2a_limits_release_h2_body(req, call->body); /* the copy serves the call; h2o's goes now (the metrics read the length) */
    call->user_agent = copy_header(call, req, "user-agent", 1024);
    call->session_id_header = copy_header(call, req, "x-claude-code-session-id", 128);
    call->client_key_id = server->has_routed_digest ? k2a_sticky_client_key_digest(server->routed_digest) : client_key_id(req);
    call->conversation_id_header = copy_header(call, req, "x-conversation-id", 128);
    call->continuation_id_header = copy_header(call, req, "x-agent-continuation-id", 128);
    copy_peer(call, req);
    call->generator.proceed = on_proceed;
    call->generator.stop = on_stop;
    if ((call->co = k2a_coro_create(call_main, call)) == NULL) {
        call_free(call);
        goto Busy;
    }
    ++server->ncalls;
    call_ref_t *ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_req_disposed);
    ref->call = call;
    if (k2a_coro_current() != NULL)
        k2a_coro_wake(call->co, 0); /* h2o can run a handler from inside a send made by another coroutine */
    else
        k2a_coro_resume(call->co, 0);
    return 0;

Busy:
    ++server->metrics.rejected_busy;
    k2a_http_send_error(req, dialect, K2A_EBUSY, "the gateway is at its concurrency limit (KIRO_MAX_CONCURRENT); retry shortly");
    return K2A_EBUSY;
}

int k2a_call_begin(k2a_call_t *call, int status, const char *content_type, ...)
{
    if (call->req_gone)
        return K2A_ECANCELED;
    h2o_req_t *req = call->req;
    req->res.status = call->status = status;
    req->res.reason = k2a_http_reason(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, h2o_strdup(&req->pool, content_type, SIZE_MAX).base,
                   strlen(content_type));
    va_list ap;
    va_start(ap, content_type);
    const char *name;
    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        h2o_iovec_t n = h2o_strdup(&req->pool, name, SIZE_MAX), v = h2o_strdup(&req->pool, value, SIZE_MAX);
        h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
    va_end(ap);
    h2o_start_response(req, &call->generator);
    call->started = 1;
    return 0;
}

k2a_buf_t *k2a_call_buffer(k2a_call_t *call)
{
    return call->req_gone ? NULL : &call->out[call->filling];
}

int k2a_call_write(k2a_call_t *call, const void *data, size_t len)
{
    if (call->req_gone)
        return K2A_ECANCELED;
    return k2a_buf_append(&call->out[call->filling], data, len);
}

int k2a_call_write_buf(k2a_call_t *call, k2a_buf_t *b)
{
    int r = 0;
    k2a_buf_t *o = &call->out[call->filling];
    if (call->req_gone) {
        r = K2A_ECANCELED;
    } else if (o->len == 0 && (o->max == 0 || b->len <= o->max)) {
        char *base = o->base;
        size_t cap = o->cap;
        o->base = b->base;
        o->len = b->len;
        o->cap = b->cap;
        b->base = base;
        b->cap = cap;
    } else {
        r = k2a_buf_append(o, b->base, b->len);
    }
    k2a_buf_reset(b);
    return r;
}

static void on_drain_cancel(k2a_coro_t *co, void *data)
{
    k2a_call_t *call = data;
    call->waiting_drain = 0;
    k2a_coro_wake(co, K2A_ECANCELED);
}

int k2a_call_flush(k2a_call_t *call)
{
    if (call->req_gone)
        return K2A_ECANCELED;
    if (!call->in_flight) {
        /* past the high-water mark it goes at once (then the next flush parks): what waits for the end of the iteration
         * stays bounded when one iteration brings many upstream reads. An immediate send may dispose of the request (and,
         * from a coroutine, never frees the call: co_done is still 0). */
        if (call->out[call->filling].len > call->high_water)
            send_pending(call);
        else
            schedule_send(call);
        return call->req_gone && !call->final_sent ? K2A_ECANCELED : 0;
    }
    while (call->out[call->filling].len > call->high_water) {
        call->waiting_drain = 1;
        if (k2a_coro_park(on_drain_cancel, call) != 0 || call->req_gone)
            return K2A_ECANCELED;
    }
    return 0;
}

void k2a_call_flush_nowait(k2a_call_t *call)
{
    send_pending(call);
}

void k2a_call_finish(k2a_call_t *call)
{
    if (call->final_queued || call->req_gone)
        return;
    call->final_queued = 1;
    k2a_keys_gate_end(call); /* the answer is complete: the key's slot is free for the client's next request */
    if (k2a_coro_current() == call->co)
        schedule_send(call); /* with whatever the coroutine flushed in this iteration: one send */
    else
        send_pending(call);
}

int k2a_call_respond_json(k2a_call_t *call, int status, const char *json, size_t len)
{
    int r;
    if (call->req_gone)
        return K2A_ECANCELED;
    call->req->res.content_length = len;
    if ((r = k2a_call_begin(call, status, "application/json", "cache-control", "no-store", NULL)) != 0 ||
        (r = k2a_call_write(call, json, len)) != 0)
        return r;
    k2a_call_finish(call);
    return 0;
}

int k2a_call_respond_error(k2a_call_t *call, int err, const char *message)
{
    k2a_buf_t body = K2A_BUF_INIT(0);
    int r = k2a_dialect_error_body(call->dialect, &body, err, k2a_cstr(message != NULL ? message : ""));
    if (r > 0)
        r = k2a_call_respond_json(call, r, body.base, body.len);
    k2a_buf_dispose(&body);
    return r;
}
