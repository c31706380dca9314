/*
 * Stackful coroutines driven by the libuv loop. One coroutine runs per request (and per background
 * job); it awaits a loop event by parking, and the event's callback resumes it, so request code reads
 * top to bottom. Stacks are mmap'd with a guard page below them, pooled and reused (a fresh mmap per
 * request costs 4x throughput). The switch is hand-written for x86-64 and aarch64 (~10 ns), with
 * ucontext as the portable fallback; the sanitizer build annotates every switch for ASan.
 *
 * Rules: resume only from loop callbacks (never from inside a coroutine); after every park, check
 * k2a_coro_canceled() and unwind; state holding a uv handle is heap-allocated and freed in the
 * handle's close callback. Everything here is per thread (one loop per thread).
 */
#ifndef K2A_CORE_CORO_H
#define K2A_CORE_CORO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "core/errors.h"

typedef struct st_k2a_coro_t k2a_coro_t;
typedef void (*k2a_coro_fn)(k2a_coro_t *co, void *arg);
/* Called (on the loop, from k2a_coro_cancel) while the coroutine is parked: must arrange for the coroutine to be resumed
 * soon, e.g. close the awaited handle and resume from its close callback, or k2a_coro_wake(co, K2A_ECANCELED). */
typedef void (*k2a_coro_cancel_cb)(k2a_coro_t *co, void *data);

typedef struct st_k2a_coro_config_t {
    size_t stack_size; /* usable bytes per stack, rounded up to pages; default 64 KiB */
    size_t max_live;   /* coroutines alive at once; k2a_coro_create fails past it; default 20000 */
    size_t max_pooled; /* idle stacks kept for reuse; default 1024 */
} k2a_coro_config_t;

/* Sets up this thread's coroutine runtime on `loop`. Returns 0 or K2A_EINVAL. Call once per loop thread. */
K2A_MUST_USE int k2a_coro_runtime_init(uv_loop_t *loop, const k2a_coro_config_t *config);
/* Releases pooled stacks and the wake handle. No coroutine may be alive. The loop must run once more afterwards so the
 * wake handle's close callback runs. */
void k2a_coro_runtime_dispose(void);

/* Creates a coroutine that will run fn(co, arg) on its first resume. Returns NULL when max_live is reached or memory is
 * short (callers answer 503). */
k2a_coro_t *k2a_coro_create(k2a_coro_fn fn, void *arg);
/* Creates and immediately runs a coroutine until its first park. Returns 0 or K2A_EBUSY. */
int k2a_coro_spawn(k2a_coro_fn fn, void *arg);
/* Switches into co until it parks or finishes; `result` becomes the return value of its k2a_coro_park. When the coroutine
 * finishes, its stack goes back to the pool before this returns: do not touch co afterwards unless it is still parked. */
void k2a_coro_resume(k2a_coro_t *co, intptr_t result);
/* Resumes co from the next loop iteration (a uv_idle drains the queue). Safe to call from any loop callback, including
 * from code that a coroutine itself called; co must be parked when the wake is delivered. */
void k2a_coro_wake(k2a_coro_t *co, intptr_t result);

/* Parks the running coroutine until resumed; returns the resumer's result. `on_cancel` (may be NULL) is how
 * k2a_coro_cancel reaches whatever the coroutine waits for. */
intptr_t k2a_coro_park(k2a_coro_cancel_cb on_cancel, void *cancel_data);
/* Marks co canceled; if it is parked, calls its cancel callback (or wakes it with K2A_ECANCELED when it has none). */
void k2a_coro_cancel(k2a_coro_t *co);
bool k2a_coro_canceled(const k2a_coro_t *co);
/* The running coroutine, or NULL on the loop's own stack. */
k2a_coro_t *k2a_coro_current(void);
/* Gives the stack pages below the caller's frame (less 1 KB of margin) back to the kernel. A long-lived coroutine
 * calls it after a deep phase (decode, build) before a long shallow one (waiting for the answer, streaming), so that
 * 10 000 open streams hold one stack page each instead of their deepest moment. A no-op outside a coroutine, in sanitizer
 * builds, and while fewer than 64 coroutines live on the loop (then the pages are worth more kept than the madvise and
 * refaults cost). */
void k2a_coro_trim_stack(void);
uv_loop_t *k2a_coro_loop(void);

/* A per-coroutine user pointer (e.g. the request it serves). */
void k2a_coro_set_data(k2a_coro_t *co, void *data);
void *k2a_coro_get_data(const k2a_coro_t *co);

/* Awaits: each returns 0 or a negative K2A_E* (K2A_ECANCELED when the coroutine was canceled while waiting). */
int k2a_coro_sleep(uint64_t ms);
/* Reads at most cap bytes from stream into buf; returns bytes read (> 0), 0 at EOF, K2A_ETIMEDOUT after timeout_ms
 * (0 = none), K2A_ECANCELED, or K2A_EIO. */
intptr_t k2a_coro_stream_read(uv_stream_t *stream, char *buf, size_t cap, uint64_t timeout_ms);
/* Writes all bufs; returns 0, K2A_ECANCELED or K2A_EIO. A write cannot be withdrawn, so it is not cancelable and has no
 * timeout of its own: to bound it, close the stream from a timer (the write then fails). */
int k2a_coro_stream_write(uv_stream_t *stream, const uv_buf_t *bufs, unsigned nbufs);
/* Closes a handle and waits for its close callback (the handle's memory may be freed afterwards). Not cancelable. */
void k2a_coro_close(uv_handle_t *handle);

/* Statistics for /metrics and tests. */
typedef struct st_k2a_coro_stats_t {
    size_t live;
    size_t pooled;
    uint64_t created;
    uint64_t stacks_mapped;
} k2a_coro_stats_t;
void k2a_coro_get_stats(k2a_coro_stats_t *out);

#endif
