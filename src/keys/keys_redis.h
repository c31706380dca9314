/*
 * Client keys shared by every replica through Redis (KIRO_REDIS_URL): a keys backend (keys.h) around the file backend.
 * Admin changes are written to Redis before they are answered and announced; every replica applies the announcements.
 */
#ifndef K2A_KEYS_KEYS_REDIS_H
#define K2A_KEYS_KEYS_REDIS_H

#include <stddef.h>
#include "keys/keys.h"
#include "pool/store_redis.h"

/* Creates the backend (inner: the file backend or NULL; taken on success). Returns 0 or K2A_ECONFIG (bad URL, message in
 * err) / K2A_ENOMEM. Connects when the store attaches it. */
int k2a_keys_redis_backend_create(const char *url, const char *prefix, k2a_keys_backend_t *inner, k2a_keys_backend_t **out,
                                  char *err, size_t errlen);

#endif
