/*
 * The shared store's hiredis event adapter on libuv (in place of hiredis's adapters/libuv.h). hiredis asks for write
 * events for every command and for read events after every reply; libuv's uv_poll_start removes the descriptor from
 * epoll and adds it again on each call, so that adapter cost four epoll_ctl calls per command. Here:
 * - the poll is changed only when the set of events really changes (reads stay registered);
 * - a connected context's queued commands are written from a uv_idle handle started by the first of them: every
 *   command queued until the loop gets there goes in one write, without polling for writability (which is only asked
 *   for when the socket's buffer is full, or while the connect is in progress). An idle handle, not a check handle: a
 *   command may be queued in any phase of the loop (a coroutine resumed from a timer or a prepare handle), and an
 *   active idle handle keeps the next poll from blocking, so the write is never left waiting for an unrelated event.
 */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include "pool/store_redis_internal.h"

typedef struct st_k2a_redis_ev_t {
    redisAsyncContext *ctx; /* NULL once hiredis cleaned up */
    uv_poll_t poll;
    uv_idle_t idle;
    int want;       /* UV_READABLE | UV_WRITABLE asked for */
    int registered; /* what the poll is started with */
    bool in_idle;   /* writing from the idle handle */
    int closing;    /* handles still to close */
} k2a_redis_ev_t;

static void on_poll(uv_poll_t *h, int status, int events)
{
    k2a_redis_ev_t *e = h->data;
    if (status != 0)
        return;
    if (e->ctx != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(e->ctx);
    if (e->ctx != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(e->ctx);
}

static void sync_poll(k2a_redis_ev_t *e)
{
    if (e->ctx == NULL || e->want == e->registered)
        return;
    e->registered = e->want;
    if (e->want != 0)
        uv_poll_start(&e->poll, e->want, on_poll);
    else
        uv_poll_stop(&e->poll);
}

static void on_idle(uv_idle_t *h)
{
    k2a_redis_ev_t *e = h->data;
    uv_idle_stop(&e->idle);
    if (e->ctx == NULL)
        return;
    e->in_idle = true;
    redisAsyncHandleWrite(e->ctx); /* may free the context (an error): then e->ctx is NULL */
    e->in_idle = false;
}

static void add_read(void *data)
{
    k2a_redis_ev_t *e = data;
    e->want |= UV_READABLE;
    sync_poll(e);
}

static void del_read(void *data)
{
    k2a_redis_ev_t *e = data;
    e->want &= ~UV_READABLE;
    sync_poll(e);
}

static void add_write(void *data)
{
    k2a_redis_ev_t *e = data;
    if (!e->in_idle && e->ctx != NULL && (e->ctx->c.flags & REDIS_CONNECTED)) {
        uv_idle_start(&e->idle, on_idle); /* no-op when already started */
        return;
    }
    /* connecting, or the write could not finish: wait until the socket is writable */
    e->want |= UV_WRITABLE;
    sync_poll(e);
}

static void del_write(void *data)
{
    k2a_redis_ev_t *e = data;
    e->want &= ~UV_WRITABLE;
    sync_poll(e);
}

static void on_closed(uv_handle_t *h)
{
    k2a_redis_ev_t *e = h->data;
    if (--e->closing == 0)
        free(e);
}

static void cleanup(void *data)
{
    k2a_redis_ev_t *e = data;
    e->ctx = NULL;
    e->closing = 2;
    uv_close((uv_handle_t *)&e->poll, on_closed);
    uv_close((uv_handle_t *)&e->idle, on_closed);
}

int k2a_redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    if (ac->ev.data != NULL)
        return REDIS_ERR;
    k2a_redis_ev_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return REDIS_ERR;
    if (uv_poll_init(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return REDIS_ERR;
    }
    uv_idle_init(loop, &e->idle);
    e->poll.data = e->idle.data = e;
    e->ctx = ac;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = e;
    return REDIS_OK;
}
