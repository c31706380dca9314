/*
 * Persisting the key store without blocking a loop: the snapshot is encoded on the calling thread (under
 * the keys' mutexes, a few hundred bytes per key) and written on libuv's thread pool. An admin change awaits
 * its write in its coroutine, so it is durable before it is answered; usage is flushed by a timer when it
 * changed, and synchronously at shutdown. Writes are ordered by generation (keys_json.c): an older snapshot
 * never replaces a newer one.
 */
#include <stdlib.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "keys/keys_async.h"

typedef struct st_job_t {
    uv_work_t work;
    k2a_keys_t *ks;
    k2a_buf_t json;
    uint64_t gen;
    int result;
    k2a_coro_t *co; /* the awaiting coroutine, NULL when nobody waits */
    k2a_keys_flusher_t *flusher;
} job_t;

struct st_k2a_keys_flusher_t {
    k2a_keys_t *ks;
    uv_timer_t timer;
    bool busy, closing, job_pending;
};

static void on_work(uv_work_t *w)
{
    job_t *job = w->data;
    job->result = k2a_keys_write(job->ks, &job->json, job->gen);
}

static void on_flusher_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_done(uv_work_t *w, int status)
{
    job_t *job = w->data;
    int r = status != 0 ? K2A_EIO : job->result;
    if (r != 0)
        k2a_error("keys: saving the key store failed: %s", k2a_strerror(r));
    if (job->co != NULL)
        k2a_coro_wake(job->co, r);
    if (job->flusher != NULL) {
        job->flusher->busy = false;
        if (job->flusher->closing)
            uv_close((uv_handle_t *)&job->flusher->timer, on_flusher_closed);
    }
    k2a_buf_dispose(&job->json);
    free(job);
}

static job_t *job_create(k2a_keys_t *ks)
{
    job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return NULL;
    job->ks = ks;
    job->work.data = job;
    k2a_buf_init(&job->json, 0);
    if (k2a_keys_encode(ks, &job->json, &job->gen) != 0) {
        k2a_buf_dispose(&job->json);
        free(job);
        return NULL;
    }
    return job;
}

static void on_cancel(k2a_coro_t *co, void *data)
{
    job_t *job = data;
    job->co = NULL; /* the write goes on; nobody awaits it */
    k2a_coro_wake(co, K2A_ECANCELED);
}

int k2a_keys_persist(k2a_keys_t *ks, uv_loop_t *loop)
{
    if (k2a_coro_current() == NULL || loop == NULL)
        return k2a_keys_save_sync(ks);
    job_t *job = job_create(ks);
    if (job == NULL)
        return K2A_ENOMEM;
    job->co = k2a_coro_current();
    if (uv_queue_work(loop, &job->work, on_work, on_done) != 0) {
        k2a_buf_dispose(&job->json);
        free(job);
        return K2A_EIO;
    }
    return (int)k2a_coro_park(on_cancel, job);
}

static void on_tick(uv_timer_t *t)
{
    k2a_keys_flusher_t *f = t->data;
    if (f->busy || !k2a_keys_dirty(f->ks))
        return;
    job_t *job = job_create(f->ks);
    if (job == NULL)
        return;
    job->flusher = f;
    if (uv_queue_work(t->loop, &job->work, on_work, on_done) != 0) {
        k2a_buf_dispose(&job->json);
        free(job);
        return;
    }
    f->busy = true;
}

k2a_keys_flusher_t *k2a_keys_flusher_start(k2a_keys_t *ks, uv_loop_t *loop, uint64_t interval_ms)
{
    k2a_keys_flusher_t *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return NULL;
    f->ks = ks;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_timer_start(&f->timer, on_tick, interval_ms, interval_ms);
    uv_unref((uv_handle_t *)&f->timer); /* never what keeps the loop running */
    return f;
}

void k2a_keys_flusher_stop(k2a_keys_flusher_t *f)
{
    if (f == NULL || f->closing)
        return;
    f->closing = true;
    uv_timer_stop(&f->timer);
    if (!f->busy)
        uv_close((uv_handle_t *)&f->timer, on_flusher_closed);
}
