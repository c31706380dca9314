/*
 * Cross-loop messages (see xloop.h). Each endpoint has a FIFO under a mutex and a uv_async_t; the
 * async callback takes the whole queue at once and runs it in order. A call's reply is a message to
 * the caller's endpoint that resumes the parked coroutine.
 */
#include <pthread.h>
#include <stdlib.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/xloop.h"

typedef enum { MSG_CALL, MSG_POST, MSG_REPLY } msg_kind_t;

typedef struct st_msg_t {
    struct st_msg_t *next;
    msg_kind_t kind;
    k2a_xloop_call_fn call;
    k2a_xloop_post_fn post;
    void *arg;
    intptr_t result;
    k2a_xloop_t *reply_to;
    k2a_coro_t *co;
} msg_t;

struct st_k2a_xloop_t {
    uv_loop_t *loop;
    uv_async_t async;
    pthread_mutex_t mutex;
    msg_t *head, *tail;
    size_t waiting; /* calls of this loop awaiting their reply: the loop must stay alive for them */
    bool closed;    /* no more messages are accepted */
};

static __thread k2a_xloop_t *current;

/* Queues m on x; returns false (m not queued) once x is closed. */
static bool push(k2a_xloop_t *x, msg_t *m)
{
    m->next = NULL;
    pthread_mutex_lock(&x->mutex);
    if (x->closed) {
        pthread_mutex_unlock(&x->mutex);
        return false;
    }
    if (x->tail != NULL)
        x->tail->next = m;
    else
        x->head = m;
    x->tail = m;
    uv_async_send(&x->async); /* under the lock: a concurrent close cannot slip in between */
    pthread_mutex_unlock(&x->mutex);
    return true;
}

static void run_call(k2a_coro_t *co, void *arg)
{
    msg_t *m = arg;
    m->result = m->call(m->arg);
    m->kind = MSG_REPLY;
    if (!push(m->reply_to, m))
        free(m); /* the caller's loop is gone: nobody waits for this reply any more */
}

static void on_async(uv_async_t *async)
{
    k2a_xloop_t *x = async->data;
    pthread_mutex_lock(&x->mutex);
    msg_t *m = x->head;
    x->head = x->tail = NULL;
    pthread_mutex_unlock(&x->mutex);
    while (m != NULL) {
        msg_t *next = m->next;
        switch (m->kind) {
        case MSG_POST:
            m->post(m->arg);
            free(m);
            break;
        case MSG_CALL:
            if (k2a_coro_spawn(run_call, m) != 0) {
                m->result = K2A_EBUSY;
                m->kind = MSG_REPLY;
                if (!push(m->reply_to, m))
                    free(m);
            }
            break;
        case MSG_REPLY: {
            k2a_coro_t *co = m->co;
            intptr_t result = m->result;
            free(m);
            k2a_coro_resume(co, result);
        } break;
        }
        m = next;
    }
}

int k2a_xloop_create(uv_loop_t *loop, k2a_xloop_t **out)
{
    k2a_xloop_t *x = calloc(1, sizeof(*x));
    if (x == NULL)
        return K2A_ENOMEM;
    x->loop = loop;
    pthread_mutex_init(&x->mutex, NULL);
    uv_async_init(loop, &x->async, on_async);
    x->async.data = x;
    /* an idle endpoint must not keep the loop alive */
    uv_unref((uv_handle_t *)&x->async);
    current = x;
    *out = x;
    return 0;
}

void k2a_xloop_close(k2a_xloop_t *x)
{
    if (x == NULL)
        return;
    if (current == x)
        current = NULL;
    pthread_mutex_lock(&x->mutex);
    x->closed = true;
    msg_t *m = x->head;
    x->head = x->tail = NULL;
    pthread_mutex_unlock(&x->mutex);
    while (m != NULL) {
        msg_t *next = m->next;
        free(m);
        m = next;
    }
    uv_close((uv_handle_t *)&x->async, NULL);
}

void k2a_xloop_free(k2a_xloop_t *x)
{
    if (x == NULL)
        return;
    pthread_mutex_destroy(&x->mutex);
    free(x);
}

k2a_xloop_t *k2a_xloop_current(void)
{
    return current;
}

static void on_call_cancel(k2a_coro_t *co, void *data)
{
    /* the reply always comes (it may carry a lease that must be released), so keep waiting */
}

intptr_t k2a_xloop_call(k2a_xloop_t *target, k2a_xloop_call_fn fn, void *arg)
{
    if (target == NULL || target == current)
        return fn(arg);
    msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return K2A_ENOMEM;
    m->kind = MSG_CALL;
    m->call = fn;
    m->arg = arg;
    m->reply_to = current;
    m->co = k2a_coro_current();
    k2a_xloop_t *self = current;
    if (!push(target, m)) {
        free(m);
        return K2A_ECLOSED;
    }
    if (self->waiting++ == 0)
        uv_ref((uv_handle_t *)&self->async);
    intptr_t r = k2a_coro_park(on_call_cancel, NULL);
    if (--self->waiting == 0)
        uv_unref((uv_handle_t *)&self->async);
    return r;
}

void k2a_xloop_post(k2a_xloop_t *target, k2a_xloop_post_fn fn, void *arg)
{
    if (target == NULL || target == current) {
        fn(arg);
        return;
    }
    msg_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return; /* out of memory: the post is lost, as any allocation failure would lose it */
    m->kind = MSG_POST;
    m->post = fn;
    m->arg = arg;
    if (!push(target, m))
        free(m); /* the target loop is gone, and with it what fn would have touched: running fn here would race */
}
