/*
 * Stored Responses (convert/responses_store.h) shared by every replica through the shared store (KIRO_REDIS_URL):
 * P resp:<scoped id> is a string with the store's time to live (SET EX), written without waiting; a replica that does not
 * hold a response in memory reads it (GET) from a coroutine. The Redis connection lives on the pool's loop.
 */
#ifndef K2A_POOL_STORE_REDIS_RESPONSES_H
#define K2A_POOL_STORE_REDIS_RESPONSES_H

#include "convert/responses_store.h"

struct st_k2a_pool_t;

/* The second tier for k2a_responses_store_set_remote (ctx = the pool). Returns whether the pool's store is shared. */
bool k2a_redis_responses_remote(struct st_k2a_pool_t *p, k2a_responses_remote_t *out);

#endif
