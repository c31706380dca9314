/*
 * Stackful coroutines on the libuv loop (see coro.h). Each coroutine owns a stack of
 * config.stack_size bytes with a PROT_NONE guard page below it; finished coroutines go back to a
 * per-thread free list and are reused, so the steady state makes no mmap calls. Deferred resumes
 * (k2a_coro_wake) go through a queue drained by a uv_idle handle, which also keeps the loop from
 * blocking in epoll while a wake is pending.
 *
 * ASan: every switch is annotated (__sanitizer_start/finish_switch_fiber), and a stack's shadow is
 * unpoisoned before it is reused, otherwise stale poison from the previous owner trips ASan.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "core/coro.h"
#include "core/errors.h"

#if !defined(K2A_CORO_UCONTEXT) && !defined(__x86_64__) && !defined(__aarch64__)
#define K2A_CORO_UCONTEXT 1
#endif

#ifdef K2A_CORO_UCONTEXT
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define K2A_CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define K2A_CORO_ASAN 1
#endif
#endif

#ifdef K2A_CORO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

typedef struct st_coro_ctx_t {
#ifdef K2A_CORO_UCONTEXT
    ucontext_t uc;
#else
    void *sp;
#endif
} coro_ctx_t;

struct st_k2a_coro_t {
    coro_ctx_t ctx;
    k2a_coro_fn fn;
    void *arg;
    void *data;
    char *map; /* the mapping, guard page included */
    size_t map_size;
    char *stack_lo; /* lowest usable byte (just above the guard page) */
    size_t stack_size;
    intptr_t result;
    k2a_coro_cancel_cb on_cancel;
    void *cancel_data;
    k2a_coro_t *next; /* wake queue or free list */
    unsigned parked : 1;
    unsigned done : 1;
    unsigned canceled : 1;
    unsigned wake_pending : 1;
    unsigned started : 1;
#ifdef K2A_CORO_ASAN
    void *fake_stack;
#endif
};

typedef struct st_runtime_t {
    uv_loop_t *loop;
    k2a_coro_config_t config;
    coro_ctx_t main_ctx;
    k2a_coro_t *current;
    k2a_coro_t *free_list;
    size_t nfree;
    uv_idle_t *wake_idle;
    k2a_coro_t *wake_head, *wake_tail;
    k2a_coro_stats_t stats;
#ifdef K2A_CORO_ASAN
    void *main_fake_stack;
    const void *main_stack_bottom;
    size_t main_stack_size;
#endif
} runtime_t;

static __thread runtime_t *rt;

#ifndef K2A_CORO_UCONTEXT
void k2a__coro_switch(void **from_sp, void *const *to_sp);
void k2a__coro_trampoline(void);
#endif
void k2a__coro_main(k2a_coro_t *co) __attribute__((visibility("hidden"), noreturn));

/* ---- switching ---- */

static void switch_into(k2a_coro_t *co)
{
#ifdef K2A_CORO_ASAN
    __sanitizer_start_switch_fiber(&rt->main_fake_stack, co->stack_lo, co->stack_size);
#endif
#ifdef K2A_CORO_UCONTEXT
    swapcontext(&rt->main_ctx.uc, &co->ctx.uc);
#else
    k2a__coro_switch(&rt->main_ctx.sp, &co->ctx.sp);
#endif
#ifdef K2A_CORO_ASAN
    __sanitizer_finish_switch_fiber(rt->main_fake_stack, NULL, NULL);
#endif
}

static void switch_out(k2a_coro_t *co, int final)
{
#ifdef K2A_CORO_ASAN
    /* a NULL fake-stack slot on the final switch tells ASan to free this coroutine's fake stack */
    __sanitizer_start_switch_fiber(final ? NULL : &co->fake_stack, rt->main_stack_bottom, rt->main_stack_size);
#endif
#ifdef K2A_CORO_UCONTEXT
    swapcontext(&co->ctx.uc, &rt->main_ctx.uc);
#else
    k2a__coro_switch(&co->ctx.sp, &rt->main_ctx.sp);
#endif
#ifdef K2A_CORO_ASAN
    __sanitizer_finish_switch_fiber(co->fake_stack, NULL, NULL);
#endif
}

void k2a__coro_main(k2a_coro_t *co)
{
#ifdef K2A_CORO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &rt->main_stack_bottom, &rt->main_stack_size);
#endif
    co->fn(co, co->arg);
    co->done = 1;
    switch_out(co, 1);
    abort(); /* unreachable: a finished coroutine is never resumed */
}

#ifdef K2A_CORO_UCONTEXT
static __thread k2a_coro_t *starting;
static void uc_entry(void)
{
    k2a__coro_main(starting);
}
#endif

static void prepare_context(k2a_coro_t *co)
{
#ifdef K2A_CORO_UCONTEXT
    getcontext(&co->ctx.uc);
    co->ctx.uc.uc_stack.ss_sp = co->stack_lo;
    co->ctx.uc.uc_stack.ss_size = co->stack_size;
    co->ctx.uc.uc_link = NULL;
    makecontext(&co->ctx.uc, uc_entry, 0);
#elif defined(__x86_64__)
    uintptr_t top = ((uintptr_t)co->stack_lo + co->stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top;
    sp[-1] = (uint64_t)(uintptr_t)k2a__coro_trampoline; /* return address: rsp is 16-aligned after the ret */
    sp[-2] = 0;                                         /* rbp: ends frame-pointer walks */
    sp[-3] = 0;                                         /* rbx */
    sp[-4] = (uint64_t)(uintptr_t)co;                   /* r12: the trampoline's argument */
    sp[-5] = 0;                                         /* r13 */
    sp[-6] = 0;                                         /* r14 */
    sp[-7] = 0;                                         /* r15 */
    sp[-8] = 0x1F80 | ((uint64_t)0x037F << 32);         /* default MXCSR, default x87 control word */
    co->ctx.sp = &sp[-8];
#elif defined(__aarch64__)
    uintptr_t top = ((uintptr_t)co->stack_lo + co->stack_size) & ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)(top - 160);
    memset(sp, 0, 160);
    sp[0] = (uint64_t)(uintptr_t)co;                    /* x19: the trampoline's argument */
    sp[10] = 0;                                         /* x29 */
    sp[11] = (uint64_t)(uintptr_t)k2a__coro_trampoline; /* x30: where the first ret goes */
    co->ctx.sp = sp;
#endif
}

/* ---- stacks ---- */

static k2a_coro_t *alloc_coro(void)
{
    k2a_coro_t *co;
    if ((co = rt->free_list) != NULL) {
        rt->free_list = co->next;
        --rt->nfree;
        char *map = co->map, *lo = co->stack_lo;
        size_t map_size = co->map_size, stack_size = co->stack_size;
        memset(co, 0, sizeof(*co));
        co->map = map;
        co->map_size = map_size;
        co->stack_lo = lo;
        co->stack_size = stack_size;
        return co;
    }
    if ((co = calloc(1, sizeof(*co))) == NULL)
        return NULL;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t size = (rt->config.stack_size + page - 1) & ~(page - 1);
    co->map_size = size + page;
    co->map = mmap(NULL, co->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (co->map == MAP_FAILED) {
        free(co);
        return NULL;
    }
    if (mprotect(co->map, page, PROT_NONE) != 0) {
        /* vm.max_map_count reached: each guarded stack costs two mappings */
        munmap(co->map, co->map_size);
        free(co);
        return NULL;
    }
    co->stack_lo = co->map + page;
    co->stack_size = size;
    ++rt->stats.stacks_mapped;
    return co;
}

static void destroy_coro(k2a_coro_t *co)
{
#ifdef K2A_CORO_ASAN
    __asan_unpoison_memory_region(co->stack_lo, co->stack_size);
#endif
    munmap(co->map, co->map_size);
    free(co);
}

static void release_coro(k2a_coro_t *co)
{
    --rt->stats.live;
#ifdef K2A_CORO_ASAN
    __asan_unpoison_memory_region(co->stack_lo, co->stack_size);
#endif
    if (rt->nfree < rt->config.max_pooled) {
        co->next = rt->free_list;
        rt->free_list = co;
        ++rt->nfree;
    } else {
        destroy_coro(co);
    }
}

/* ---- public API ---- */

static void on_wake_idle(uv_idle_t *idle);

int k2a_coro_runtime_init(uv_loop_t *loop, const k2a_coro_config_t *config)
{
    if (rt != NULL)
        return K2A_EINVAL;
    if ((rt = calloc(1, sizeof(*rt))) == NULL)
        return K2A_ENOMEM;
    rt->loop = loop;
    if (config != NULL)
        rt->config = *config;
    if (rt->config.stack_size == 0)
        rt->config.stack_size = 64 * 1024;
    if (rt->config.stack_size < 16 * 1024)
        rt->config.stack_size = 16 * 1024;
    if (rt->config.max_live == 0)
        rt->config.max_live = 20000;
    if (rt->config.max_pooled == 0)
        rt->config.max_pooled = 1024;
    if ((rt->wake_idle = malloc(sizeof(*rt->wake_idle))) == NULL) {
        free(rt);
        rt = NULL;
        return K2A_ENOMEM;
    }
    uv_idle_init(loop, rt->wake_idle);
    return 0;
}

void k2a_coro_runtime_dispose(void)
{
    if (rt == NULL)
        return;
    assert(rt->stats.live == 0);
    k2a_coro_t *co;
    while ((co = rt->free_list) != NULL) {
        rt->free_list = co->next;
        destroy_coro(co);
    }
    uv_close((uv_handle_t *)rt->wake_idle, (uv_close_cb)free);
    free(rt);
    rt = NULL;
}

k2a_coro_t *k2a_coro_create(k2a_coro_fn fn, void *arg)
{
    assert(rt != NULL);
    if (rt->stats.live >= rt->config.max_live)
        return NULL;
    k2a_coro_t *co = alloc_coro();
    if (co == NULL)
        return NULL;
    co->fn = fn;
    co->arg = arg;
    co->parked = 1; /* a new coroutine waits for its first resume */
    prepare_context(co);
    ++rt->stats.live;
    ++rt->stats.created;
    return co;
}

int k2a_coro_spawn(k2a_coro_fn fn, void *arg)
{
    k2a_coro_t *co = k2a_coro_create(fn, arg);
    if (co == NULL)
        return K2A_EBUSY;
    if (rt->current != NULL)
        k2a_coro_wake(co, 0); /* never nest coroutines: start it from the loop */
    else
        k2a_coro_resume(co, 0);
    return 0;
}

void k2a_coro_resume(k2a_coro_t *co, intptr_t result)
{
    assert(rt->current == NULL && "resume only from the loop's stack");
    assert(co->parked && !co->done);
    co->parked = 0;
    co->result = result;
    co->on_cancel = NULL;
    co->cancel_data = NULL;
    rt->current = co;
#ifdef K2A_CORO_UCONTEXT
    if (!co->started)
        starting = co;
#endif
    co->started = 1;
    switch_into(co);
    rt->current = NULL;
    if (co->done)
        release_coro(co);
}

void k2a_coro_wake(k2a_coro_t *co, intptr_t result)
{
    if (co->wake_pending || co->done)
        return;
    co->wake_pending = 1;
    co->result = result;
    co->next = NULL;
    if (rt->wake_tail != NULL)
        rt->wake_tail->next = co;
    else
        rt->wake_head = co;
    rt->wake_tail = co;
    if (!uv_is_active((uv_handle_t *)rt->wake_idle))
        uv_idle_start(rt->wake_idle, on_wake_idle);
}

static void on_wake_idle(uv_idle_t *idle)
{
    /* take the whole queue: coroutines woken while we drain run on the next iteration */
    k2a_coro_t *co = rt->wake_head;
    rt->wake_head = rt->wake_tail = NULL;
    uv_idle_stop(idle);
    while (co != NULL) {
        k2a_coro_t *next = co->next;
        co->wake_pending = 0;
        k2a_coro_resume(co, co->result);
        co = next;
    }
}

intptr_t k2a_coro_park(k2a_coro_cancel_cb on_cancel, void *cancel_data)
{
    k2a_coro_t *co = rt->current;
    assert(co != NULL && "park only inside a coroutine");
    co->on_cancel = on_cancel;
    co->cancel_data = cancel_data;
    co->parked = 1;
    switch_out(co, 0);
    return co->result;
}

void k2a_coro_cancel(k2a_coro_t *co)
{
    if (co->done || co->canceled)
        return;
    co->canceled = 1;
    if (!co->parked || co->wake_pending || !co->started)
        return; /* it sees the flag at its next await; an unstarted coroutine sees it first thing */
    k2a_coro_cancel_cb cb = co->on_cancel;
    void *data = co->cancel_data;
    co->on_cancel = NULL;
    if (cb != NULL)
        cb(co, data);
    else
        k2a_coro_wake(co, K2A_ECANCELED);
}

bool k2a_coro_canceled(const k2a_coro_t *co)
{
    return co->canceled;
}

k2a_coro_t *k2a_coro_current(void)
{
    return rt != NULL ? rt->current : NULL;
}

#define TRIM_MARGIN 1024
/* Below this many live coroutines on a loop their stacks weigh little (64 KB at most each), and trimming costs a madvise
 * and, at the next request the pooled stack serves, a page fault for every page it gave back: not worth it. */
#define TRIM_MIN_LIVE 64

void k2a_coro_trim_stack(void)
{
#ifndef K2A_CORO_ASAN
    k2a_coro_t *co = k2a_coro_current();
    if (co == NULL || rt->stats.live < TRIM_MIN_LIVE)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
    uintptr_t lo = (uintptr_t)co->stack_lo;
    /* Everything below this frame is dead. Whole pages more than TRIM_MARGIN below it go: the margin covers this
     * function's own locals and madvise's call into libc, whose return address must survive the call. A dropped page
     * is still mapped: touching it again only costs a fresh zero page. */
    uintptr_t end = (sp - TRIM_MARGIN) & ~(uintptr_t)(page - 1);
    if (end > lo && end - lo >= page)
        madvise((void *)lo, end - lo, MADV_DONTNEED);
#endif
}

uv_loop_t *k2a_coro_loop(void)
{
    return rt != NULL ? rt->loop : NULL;
}

void k2a_coro_set_data(k2a_coro_t *co, void *data)
{
    co->data = data;
}

void *k2a_coro_get_data(const k2a_coro_t *co)
{
    return co->data;
}

void k2a_coro_get_stats(k2a_coro_stats_t *out)
{
    if (rt == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = rt->stats;
    out->pooled = rt->nfree;
}

/* ---- awaits ---- */

typedef struct st_await_timer_t {
    uv_timer_t timer;
    k2a_coro_t *co;
    intptr_t result;
} await_timer_t;

static void on_await_timer_closed(uv_handle_t *h)
{
    await_timer_t *t = h->data;
    k2a_coro_t *co = t->co;
    intptr_t result = t->result;
    free(t);
    k2a_coro_resume(co, result);
}

static void on_await_timer(uv_timer_t *timer)
{
    await_timer_t *t = timer->data;
    t->result = 0;
    uv_close((uv_handle_t *)timer, on_await_timer_closed);
}

static void on_await_timer_cancel(k2a_coro_t *co, void *data)
{
    await_timer_t *t = data;
    uv_timer_stop(&t->timer);
    t->result = K2A_ECANCELED;
    uv_close((uv_handle_t *)&t->timer, on_await_timer_closed);
}

int k2a_coro_sleep(uint64_t ms)
{
    k2a_coro_t *co = rt->current;
    if (co->canceled)
        return K2A_ECANCELED;
    await_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return K2A_ENOMEM;
    t->co = co;
    t->result = 0;
    uv_timer_init(rt->loop, &t->timer);
    t->timer.data = t;
    uv_timer_start(&t->timer, on_await_timer, ms, 0);
    return (int)k2a_coro_park(on_await_timer_cancel, t);
}

/* A stream read or write with an optional timeout. The state is heap-allocated because its timer must outlive the
 * coroutine frame until the timer's close callback. */
typedef struct st_await_io_t {
    uv_timer_t *timer; /* NULL when no timeout; freed in its close callback */
    uv_stream_t *stream;
    k2a_coro_t *co;
    char *buf;
    size_t cap;
    intptr_t result;
    int finished;
    int pending_closes;
    uv_write_t wreq;
} await_io_t;

static void io_maybe_resume(await_io_t *io)
{
    if (!io->finished || io->pending_closes != 0)
        return;
    k2a_coro_t *co = io->co;
    intptr_t result = io->result;
    free(io);
    k2a_coro_resume(co, result);
}

static void on_io_timer_closed(uv_handle_t *h)
{
    await_io_t *io = h->data;
    free(h);
    --io->pending_closes;
    io_maybe_resume(io);
}

static void io_finish(await_io_t *io, intptr_t result)
{
    if (io->finished)
        return;
    io->finished = 1;
    io->result = result;
    if (io->timer != NULL) {
        uv_timer_stop(io->timer);
        ++io->pending_closes;
        uv_close((uv_handle_t *)io->timer, on_io_timer_closed);
        io->timer = NULL;
    }
    io_maybe_resume(io);
}

static void on_read_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    await_io_t *io = h->data;
    buf->base = io->buf;
    buf->len = io->cap;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    await_io_t *io = stream->data;
    if (nread == 0)
        return; /* EAGAIN */
    uv_read_stop(stream);
    stream->data = NULL;
    io_finish(io, nread > 0 ? nread : nread == UV_EOF ? 0 : K2A_EIO);
}

static void on_read_timeout(uv_timer_t *timer)
{
    await_io_t *io = timer->data;
    uv_read_stop(io->stream);
    io->stream->data = NULL;
    io_finish(io, K2A_ETIMEDOUT);
}

static void on_read_cancel(k2a_coro_t *co, void *data)
{
    await_io_t *io = data;
    uv_read_stop(io->stream);
    io->stream->data = NULL;
    /* the resume must not happen inside k2a_coro_cancel's caller: defer through the timer close or a wake */
    if (io->timer != NULL) {
        io_finish(io, K2A_ECANCELED);
    } else {
        io->finished = 1;
        free(io);
        k2a_coro_wake(co, K2A_ECANCELED);
    }
}

static uv_timer_t *start_io_timer(await_io_t *io, uint64_t timeout_ms, uv_timer_cb cb)
{
    if (timeout_ms == 0)
        return NULL;
    uv_timer_t *t = malloc(sizeof(*t));
    if (t == NULL)
        return NULL;
    uv_timer_init(rt->loop, t);
    t->data = io;
    uv_timer_start(t, cb, timeout_ms, 0);
    return t;
}

intptr_t k2a_coro_stream_read(uv_stream_t *stream, char *buf, size_t cap, uint64_t timeout_ms)
{
    k2a_coro_t *co = rt->current;
    if (co->canceled)
        return K2A_ECANCELED;
    await_io_t *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return K2A_ENOMEM;
    io->co = co;
    io->stream = stream;
    io->buf = buf;
    io->cap = cap;
    stream->data = io;
    int r = uv_read_start(stream, on_read_alloc, on_read);
    if (r != 0) {
        stream->data = NULL;
        free(io);
        return r == UV_EINVAL || r == UV_ENOTCONN ? K2A_ECLOSED : K2A_EIO;
    }
    io->timer = start_io_timer(io, timeout_ms, on_read_timeout);
    return k2a_coro_park(on_read_cancel, io);
}

static void on_write(uv_write_t *req, int status)
{
    await_io_t *io = req->data;
    k2a_coro_t *co = io->co;
    free(io);
    k2a_coro_resume(co, status == 0 ? 0 : status == UV_ECANCELED ? K2A_ECANCELED : K2A_EIO);
}

static void on_write_cancel(k2a_coro_t *co, void *data)
{
    /* a write in flight cannot be withdrawn: the coroutine sees k2a_coro_canceled() when it completes */
}

int k2a_coro_stream_write(uv_stream_t *stream, const uv_buf_t *bufs, unsigned nbufs)
{
    k2a_coro_t *co = rt->current;
    if (co->canceled)
        return K2A_ECANCELED;
    await_io_t *io = calloc(1, sizeof(*io));
    if (io == NULL)
        return K2A_ENOMEM;
    io->co = co;
    io->stream = stream;
    io->wreq.data = io;
    if (uv_write(&io->wreq, stream, bufs, nbufs, on_write) != 0) {
        free(io);
        return K2A_EIO;
    }
    return (int)k2a_coro_park(on_write_cancel, io);
}

static void on_close_resume(uv_handle_t *h)
{
    k2a_coro_t *co = h->data;
    k2a_coro_resume(co, 0);
}

void k2a_coro_close(uv_handle_t *handle)
{
    k2a_coro_t *co = rt->current;
    if (uv_is_closing(handle))
        return;
    handle->data = co;
    uv_close(handle, on_close_resume);
    /* not cancelable: the close callback always comes */
    k2a_coro_park(on_write_cancel, NULL);
}
