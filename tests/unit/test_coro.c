/*
 * Coroutine runtime tests: ping-pong between the loop and a coroutine, 10 000 coroutines parked at
 * once, stack reuse from the pool, cancellation while sleeping / reading, deferred wakes, and the
 * max_live limit.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/mman.h>
#include <uv.h>
#include "core/coro.h"
#include "core/errors.h"

static uv_loop_t loop;

static int setup(void **state)
{
    uv_loop_init(&loop);
    k2a_coro_config_t cfg = {.stack_size = 64 * 1024, .max_live = 20000, .max_pooled = 64};
    assert_int_equal(k2a_coro_runtime_init(&loop, &cfg), 0);
    return 0;
}

static int teardown(void **state)
{
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

/* ---- ping-pong: the loop resumes, the coroutine parks, values travel both ways ---- */

typedef struct {
    int steps;
    intptr_t seen[8];
    int finished;
} pingpong_t;

static void pingpong_fn(k2a_coro_t *co, void *arg)
{
    pingpong_t *pp = arg;
    for (int i = 0; i < 5; ++i) {
        pp->seen[i] = k2a_coro_park(NULL, NULL);
        ++pp->steps;
    }
    pp->finished = 1;
}

static void test_pingpong(void **state)
{
    pingpong_t pp = {0};
    k2a_coro_t *co = k2a_coro_create(pingpong_fn, &pp);
    assert_non_null(co);
    k2a_coro_resume(co, 0); /* runs to the first park */
    assert_int_equal(pp.steps, 0);
    for (int i = 0; i < 5; ++i) {
        k2a_coro_resume(co, 100 + i);
        assert_int_equal(pp.steps, i + 1);
        assert_int_equal(pp.seen[i], 100 + i);
    }
    assert_int_equal(pp.finished, 1);
    k2a_coro_stats_t st;
    k2a_coro_get_stats(&st);
    assert_int_equal(st.live, 0);
}

/* ---- 10 000 coroutines sleeping at once, each touching its own stack ---- */

static int many_done;

static void many_fn(k2a_coro_t *co, void *arg)
{
    volatile char local[2048];
    memset((char *)local, (int)(intptr_t)arg, sizeof(local));
    int r = k2a_coro_sleep(10 + ((intptr_t)arg % 20));
    assert_int_equal(r, 0);
    for (size_t i = 0; i < sizeof(local); ++i)
        assert_int_equal(local[i], (char)(intptr_t)arg); /* the stack survived the switches */
    r = k2a_coro_sleep(1);
    assert_int_equal(r, 0);
    ++many_done;
}

static void test_10000_alive(void **state)
{
    many_done = 0;
    for (intptr_t i = 0; i < 10000; ++i)
        assert_int_equal(k2a_coro_spawn(many_fn, (void *)i), 0);
    k2a_coro_stats_t st;
    k2a_coro_get_stats(&st);
    assert_int_equal(st.live, 10000);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(many_done, 10000);
    k2a_coro_get_stats(&st);
    assert_int_equal(st.live, 0);
}

/* ---- stacks are reused: running coroutines one after another maps no new stack ---- */

static void noop_fn(k2a_coro_t *co, void *arg)
{
    int *n = arg;
    ++*n;
}

static void test_stack_reuse(void **state)
{
    int n = 0;
    k2a_coro_stats_t before, after;
    assert_int_equal(k2a_coro_spawn(noop_fn, &n), 0); /* ensures one pooled stack exists */
    k2a_coro_get_stats(&before);
    for (int i = 0; i < 1000; ++i)
        assert_int_equal(k2a_coro_spawn(noop_fn, &n), 0);
    k2a_coro_get_stats(&after);
    assert_int_equal(n, 1001);
    assert_int_equal(after.stacks_mapped, before.stacks_mapped);
    assert_true(after.pooled >= 1);
}

/* ---- trimming the stack after a deep phase ---- */

typedef struct {
    uintptr_t deep_page;    /* a page the deep phase wrote */
    int resident_before;    /* mincore of it before the trim */
    int resident_after;     /* and after */
    int below_after;        /* the page under the one 1.25 KB below the trimming frame, after the trim */
    int again_ok;           /* going deep again after the trim works and sees fresh zeroes */
    volatile char keep[64]; /* lives in the coroutine's top frame: must survive the trim */
} trim_t;

static __attribute__((noinline)) void go_deep(trim_t *t, int depth)
{
    volatile char pad[2048];
    memset((char *)pad, 0x5a, sizeof(pad));
    if (depth > 0)
        go_deep(t, depth - 1);
    else
        t->deep_page = (uintptr_t)pad & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
}

static int page_resident(uintptr_t page)
{
    unsigned char v = 0;
    assert_int_equal(mincore((void *)page, (size_t)sysconf(_SC_PAGESIZE), &v), 0);
    return v & 1;
}

static void trim_fn(k2a_coro_t *co, void *arg)
{
    trim_t *t = arg;
    for (size_t i = 0; i < sizeof(t->keep); ++i)
        t->keep[i] = (char)i;
    go_deep(t, 12); /* ~26 KB deep */
    t->resident_before = page_resident(t->deep_page);
    k2a_coro_trim_stack();
    t->resident_after = page_resident(t->deep_page);
    /* the margin kept under the caller's frame is about 1 KB, not a page: a stream that waits near the top of its stack
     * holds one page */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    t->below_after = page_resident((((uintptr_t)__builtin_frame_address(0) - 1280) & ~(page - 1)) - page);
    go_deep(t, 12);
    t->again_ok = 1;
    for (size_t i = 0; i < sizeof(t->keep); ++i)
        if (t->keep[i] != (char)i)
            t->again_ok = 0;
}

/* With 64 coroutines live on the loop (63 created, not started, and the trimming one) the pages below the frame go. */
static void test_trim_stack(void **state)
{
    trim_t t = {0};
    k2a_coro_t *others[63];
    int ran = 0;
    for (size_t i = 0; i < 63; ++i)
        assert_non_null(others[i] = k2a_coro_create(noop_fn, &ran));
    assert_int_equal(k2a_coro_spawn(trim_fn, &t), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (size_t i = 0; i < 63; ++i)
        k2a_coro_resume(others[i], 0);
    assert_int_equal(ran, 63);
    assert_int_equal(t.again_ok, 1);
    assert_int_equal(t.resident_before, 1);
#if defined(__SANITIZE_ADDRESS__)
    assert_int_equal(t.resident_after, 1); /* a no-op under ASan (its fake stacks and shadow) */
#else
    assert_int_equal(t.resident_after, 0);
    assert_int_equal(t.below_after, 0);
#endif
    k2a_coro_trim_stack(); /* outside a coroutine: a no-op */
}

/* A few coroutines: their stacks are kept whole (the madvise and the refaults would cost more than the pages). */
static void test_trim_stack_few(void **state)
{
    trim_t t = {0};
    assert_int_equal(k2a_coro_spawn(trim_fn, &t), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(t.again_ok, 1);
    assert_int_equal(t.resident_before, 1);
    assert_int_equal(t.resident_after, 1);
}

/* ---- cancellation while waiting ---- */

typedef struct {
    k2a_coro_t *co;
    int result;
    int after_cancel_flag;
    int finished;
} cancel_t;

static void sleeper_fn(k2a_coro_t *co, void *arg)
{
    cancel_t *c = arg;
    c->co = co;
    c->result = k2a_coro_sleep(60 * 1000);
    c->after_cancel_flag = k2a_coro_canceled(co);
    /* every further await fails at once */
    assert_int_equal(k2a_coro_sleep(10), K2A_ECANCELED);
    c->finished = 1;
}

static void on_cancel_timer(uv_timer_t *t)
{
    cancel_t *c = t->data;
    k2a_coro_cancel(c->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel_sleep(void **state)
{
    cancel_t c = {0};
    assert_int_equal(k2a_coro_spawn(sleeper_fn, &c), 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &c;
    uv_timer_start(&t, on_cancel_timer, 20, 0);
    uint64_t start = uv_now(&loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(c.result, K2A_ECANCELED);
    assert_int_equal(c.after_cancel_flag, 1);
    assert_int_equal(c.finished, 1);
    /* the 60 s timer was really stopped: the loop ended long before it */
    assert_true(uv_now(&loop) - start < 30 * 1000);
}

typedef struct {
    uv_pipe_t *pipe;
    k2a_coro_t *co;
    intptr_t result;
    char buf[64];
    int finished;
} reader_t;

static void reader_fn(k2a_coro_t *co, void *arg)
{
    reader_t *r = arg;
    r->co = co;
    r->result = k2a_coro_stream_read((uv_stream_t *)r->pipe, r->buf, sizeof(r->buf), 0);
    k2a_coro_close((uv_handle_t *)r->pipe);
    r->finished = 1;
}

static void on_cancel_reader(uv_timer_t *t)
{
    reader_t *r = t->data;
    k2a_coro_cancel(r->co);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_cancel_read(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    uv_pipe_t p;
    uv_pipe_init(&loop, &p, 0);
    uv_pipe_open(&p, fds[0]);
    reader_t r = {.pipe = &p};
    assert_int_equal(k2a_coro_spawn(reader_fn, &r), 0);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &r;
    uv_timer_start(&t, on_cancel_reader, 10, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.result, K2A_ECANCELED);
    assert_int_equal(r.finished, 1);
    close(fds[1]);
}

static void reader_ok_fn(k2a_coro_t *co, void *arg)
{
    reader_t *r = arg;
    r->result = k2a_coro_stream_read((uv_stream_t *)r->pipe, r->buf, sizeof(r->buf), 5000);
    k2a_coro_close((uv_handle_t *)r->pipe);
    r->finished = 1;
}

static void test_read_data_and_timeout(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], "hello", 5), 5);
    uv_pipe_t p;
    uv_pipe_init(&loop, &p, 0);
    uv_pipe_open(&p, fds[0]);
    reader_t r = {.pipe = &p};
    assert_int_equal(k2a_coro_spawn(reader_ok_fn, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.result, 5);
    assert_memory_equal(r.buf, "hello", 5);
    close(fds[1]);
}

static void reader_timeout_fn(k2a_coro_t *co, void *arg)
{
    reader_t *r = arg;
    r->result = k2a_coro_stream_read((uv_stream_t *)r->pipe, r->buf, sizeof(r->buf), 30);
    k2a_coro_close((uv_handle_t *)r->pipe);
    r->finished = 1;
}

static void test_read_timeout(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    uv_pipe_t p;
    uv_pipe_init(&loop, &p, 0);
    uv_pipe_open(&p, fds[0]);
    reader_t r = {.pipe = &p};
    assert_int_equal(k2a_coro_spawn(reader_timeout_fn, &r), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(r.result, K2A_ETIMEDOUT);
    assert_int_equal(r.finished, 1);
    close(fds[1]);
}

/* ---- deferred wake and cancel of a coroutine that has no cancel hook ---- */

static void parker_fn(k2a_coro_t *co, void *arg)
{
    intptr_t *out = arg;
    *out = k2a_coro_park(NULL, NULL);
}

static void test_wake_and_cancel_without_hook(void **state)
{
    intptr_t got = 0;
    k2a_coro_t *co = k2a_coro_create(parker_fn, &got);
    k2a_coro_resume(co, 0);
    k2a_coro_wake(co, 42);
    k2a_coro_wake(co, 43); /* a second wake before delivery is ignored */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(got, 42);

    got = 0;
    co = k2a_coro_create(parker_fn, &got);
    k2a_coro_resume(co, 0);
    k2a_coro_cancel(co);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(got, K2A_ECANCELED);
}

/* ---- spawning from inside a coroutine is deferred to the loop ---- */

static int nested_order[4];
static int nested_n;

static void child_fn(k2a_coro_t *co, void *arg)
{
    nested_order[nested_n++] = 2;
}

static void parent_fn(k2a_coro_t *co, void *arg)
{
    nested_order[nested_n++] = 1;
    assert_int_equal(k2a_coro_spawn(child_fn, NULL), 0);
    nested_order[nested_n++] = 3; /* the child has not run yet */
}

static void test_spawn_from_coroutine(void **state)
{
    nested_n = 0;
    assert_int_equal(k2a_coro_spawn(parent_fn, NULL), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(nested_n, 3);
    assert_int_equal(nested_order[0], 1);
    assert_int_equal(nested_order[1], 3);
    assert_int_equal(nested_order[2], 2);
}

/* ---- the live limit ---- */

static void test_max_live(void **state)
{
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_config_t cfg = {.stack_size = 32 * 1024, .max_live = 3};
    assert_int_equal(k2a_coro_runtime_init(&loop, &cfg), 0);
    intptr_t v[4] = {0};
    k2a_coro_t *cos[3];
    for (int i = 0; i < 3; ++i) {
        cos[i] = k2a_coro_create(parker_fn, &v[i]);
        assert_non_null(cos[i]);
        k2a_coro_resume(cos[i], 0);
    }
    assert_null(k2a_coro_create(parker_fn, &v[3]));
    assert_int_equal(k2a_coro_spawn(parker_fn, &v[3]), K2A_EBUSY);
    for (int i = 0; i < 3; ++i)
        k2a_coro_resume(cos[i], 7);
    assert_non_null(cos[0] = k2a_coro_create(parker_fn, &v[3]));
    k2a_coro_resume(cos[0], 0);
    k2a_coro_resume(cos[0], 9);
    assert_int_equal(v[3], 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pingpong, setup, teardown),
        cmocka_unit_test_setup_teardown(test_10000_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stack_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_stack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_stack_few, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_sleep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_data_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wake_and_cancel_without_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spawn_from_coroutine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_live, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
