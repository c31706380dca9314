/*
 * Persisting the key store off the loop (keys_async.c): an awaited save for admin changes and a timer that
 * flushes usage when it changed.
 */
#ifndef K2A_KEYS_KEYS_ASYNC_H
#define K2A_KEYS_KEYS_ASYNC_H

#include <stdint.h>
#include <uv.h>
#include "keys/keys.h"

/* Saves the store's current state and, from a coroutine, parks until it is durable (the write runs on loop's thread pool);
 * outside a coroutine it writes synchronously. Returns 0, K2A_ECANCELED (the coroutine was canceled; the write goes on) or
 * an error. */
int k2a_keys_persist(k2a_keys_t *ks, uv_loop_t *loop);

typedef struct st_k2a_keys_flusher_t k2a_keys_flusher_t;
/* Every interval_ms, saves the store when its usage changed (one save at a time). The timer does not keep the loop alive. */
k2a_keys_flusher_t *k2a_keys_flusher_start(k2a_keys_t *ks, uv_loop_t *loop, uint64_t interval_ms);
/* Stops and frees it (once a save in progress ended). */
void k2a_keys_flusher_stop(k2a_keys_flusher_t *f);

#endif
