/*
 * Calls across event loops. With several worker threads (one libuv loop each), state that one loop
 * owns (the account pool, a worker's metrics) is only ever touched by that loop: other loops send it a
 * message. A message runs the given function on the owner's loop — in a coroutine for calls (which
 * may await, e.g. a single-flight refresh) or directly for posts (which must not) — and a call parks
 * the calling coroutine until the reply comes back. The transport is a mutex-protected queue per loop
 * and a uv_async_t to wake it. On the owner's own loop, calls and posts run directly.
 */
#ifndef K2A_CORE_XLOOP_H
#define K2A_CORE_XLOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_k2a_xloop_t k2a_xloop_t;

/* A function run on the target loop by k2a_xloop_call, inside a coroutine: it may await. */
typedef intptr_t (*k2a_xloop_call_fn)(void *arg);
/* A function run on the target loop by k2a_xloop_post, on the loop's stack: it must not await. */
typedef void (*k2a_xloop_post_fn)(void *arg);

/* Creates the endpoint of `loop` and makes it this thread's (k2a_xloop_current). The loop's coroutine runtime must exist.
 * Returns 0 or K2A_ENOMEM. */
int k2a_xloop_create(uv_loop_t *loop, k2a_xloop_t **out);
/* On its own loop: refuses further messages (calls then fail with K2A_ECLOSED, posts are dropped), drops
 * queued ones and closes the wake handle (the loop must run once more). The memory stays valid for other threads that
 * still hold the pointer until k2a_xloop_free, which the owner of the endpoints calls once no thread can send any more. */
void k2a_xloop_close(k2a_xloop_t *x);
void k2a_xloop_free(k2a_xloop_t *x);
/* This thread's endpoint, or NULL. */
k2a_xloop_t *k2a_xloop_current(void);
static inline bool k2a_xloop_is_current(const k2a_xloop_t *x)
{
    return x == k2a_xloop_current();
}

/* From a coroutine: runs fn(arg) on target's loop and returns its result. arg must stay valid until the call returns (the
 * caller is parked, so its stack is fine). On the caller's own loop fn runs directly. Not cancelable: a canceled caller
 * still waits for the reply, which always comes. Returns K2A_EBUSY when the target cannot start a coroutine. */
intptr_t k2a_xloop_call(k2a_xloop_t *target, k2a_xloop_call_fn fn, void *arg);
/* From anywhere on a loop thread: runs fn(arg) on target's loop later (directly, when target is this loop). arg must be
 * owned by fn (e.g. heap memory that fn frees). */
void k2a_xloop_post(k2a_xloop_t *target, k2a_xloop_post_fn fn, void *arg);

#endif
