/*
 * Stored responses of the OpenAI Responses API (store: true, OpenAI's default): each response id keeps the rendered
 * response object (GET /v1/responses/{id}) and the conversation up to and including it as a JSON array of input items
 * (what previous_response_id prepends to the next request). Bounded by a count, a byte total and a time to live; the
 * oldest entries go first. Shared by every worker thread (a mutex); get copies out.
 *
 * Memory only, by design: an entry is user conversation content, rewriting a file of up to the byte cap on every answer
 * would cost more than the answer, and a store that several gateway instances can share is the Redis backend's job. The
 * interface is kept to put/get/delete/expire so that such a backend can take its place.
 */
#ifndef K2A_CONVERT_RESPONSES_STORE_H
#define K2A_CONVERT_RESPONSES_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/config.h"
#include "core/str.h"

typedef struct st_k2a_responses_store_t k2a_responses_store_t;

#define K2A_RESPONSES_STORE_ID_MAX 128

/* max_count entries, max_bytes of stored JSON in all, ttl_s seconds. NULL when out of memory. */
k2a_responses_store_t *k2a_responses_store_new(size_t max_count, size_t max_bytes, int64_t ttl_s);
void k2a_responses_store_free(k2a_responses_store_t *s);

/* The process's store, sized by KIRO_RESPONSES_STORE_MAX, _MAX_BYTES and _TTL_S (created on first use, by the HTTP layer
 * before a Responses request is decoded). NULL when the store is off (KIRO_RESPONSES_STORE_MAX=0) or out of memory. */
k2a_responses_store_t *k2a_responses_store_shared(const k2a_config_t *config);
/* The process's store once k2a_responses_store_shared created it, else NULL (the Responses dialect's view of it). */
k2a_responses_store_t *k2a_responses_store_current(void);

/* Writes the id of `id` as the key `owner` (NULL: none) sees it into out (K2A_RESPONSES_STORE_KEY_MAX bytes): entries are
 * kept per owner, so one client key never reads another's responses. Returns its length, or 0 when id is empty, too
 * long or contains '/' (such an id is never found). */
#define K2A_RESPONSES_STORE_KEY_MAX (K2A_RESPONSES_STORE_ID_MAX + 72)
size_t k2a_responses_store_key(char *out, const char *owner, const char *id, size_t idlen);

/* Keeps (a copy of) response[0..rlen) and items[0..ilen) under id, replacing an entry of the same id, evicting the
 * oldest entries to stay within the bounds. now = unix seconds. Returns 0, K2A_ETOOBIG (one entry larger than the whole
 * byte cap, or an id longer than K2A_RESPONSES_STORE_KEY_MAX), K2A_ENOMEM. */
int k2a_responses_store_put(k2a_responses_store_t *s, const char *id, const char *response, size_t rlen, const char *items,
                            size_t ilen, int64_t now);

/* The same with both given in parts (response[0..nresponse) concatenated make the object, items[0..nitems) the JSON
 * array). A part of K2A_RESPONSES_STORE_SHARE_MIN bytes or more, and a part of response whose bit is set in shared
 * (response[i]: bit i, i < 32; the fields every response to the same request settings repeats), is kept once however
 * many entries hold the same bytes (a system prompt every request repeats, a conversation each follow-up repeats: the
 * bytes bound counts it once), and a part of items that is a part of response (the same memory) is kept once in the
 * entry. */
#define K2A_RESPONSES_STORE_SHARE_MIN 1024
int k2a_responses_store_putv(k2a_responses_store_t *s, const char *id, const k2a_str_t *response, size_t nresponse, uint32_t shared,
                             const k2a_str_t *items, size_t nitems, int64_t now);

/* Appends the entry's response object (response != NULL) and/or items (items != NULL) to the buffers. Returns 0,
 * K2A_ENOTFOUND (unknown or expired), or the buffer's error. */
int k2a_responses_store_get(k2a_responses_store_t *s, const char *id, size_t idlen, int64_t now, k2a_buf_t *response,
                            k2a_buf_t *items);

/* Removes an entry, here and in the second tier (awaited from a coroutine). Returns 0, or K2A_ENOTFOUND when neither
 * held it. */
int k2a_responses_store_delete(k2a_responses_store_t *s, const char *id, size_t idlen);

/* Removes an entry from the process's store (once created) but not from the second tier: another replica deleted it
 * there. */
void k2a_responses_store_forget(const char *id, size_t idlen);

/* Drops the entries older than the time to live. */
void k2a_responses_store_expire(k2a_responses_store_t *s, int64_t now);

/* A shared second tier (KIRO_REDIS_URL: pool/store_redis_responses.h): every put is also written there (with the time
 * to live; awaited from a coroutine, else not waited for), and a get that misses the replica's memory asks it, from a coroutine
 * only (it waits). The value is "<response length>\n<response><items>". Redis down: the memory of the replica serves alone. */
typedef struct st_k2a_responses_remote_t {
    void *ctx;
    void (*put)(void *ctx, const char *key, size_t klen, const char *value, size_t vlen, int64_t ttl_s);
    /* Appends the value (at most max bytes) to out. Returns 0, K2A_ENOTFOUND, or another error (treated as not found). */
    int (*get)(void *ctx, const char *key, size_t klen, size_t max, k2a_buf_t *out);
    /* Removes the key and tells the other replicas (k2a_responses_store_forget). Returns 0 (it was there), K2A_ENOTFOUND
     * (it was not), or another error (not known: down, or not asked from a coroutine, which does not wait). */
    int (*del)(void *ctx, const char *key, size_t klen);
} k2a_responses_remote_t;
/* Sets the second tier (copied; NULL removes it). Before requests are served. */
void k2a_responses_store_set_remote(const k2a_responses_remote_t *remote);

/* Entries and bytes held (for tests and /metrics): an entry's own bytes, and each shared part once. */
void k2a_responses_store_stats(k2a_responses_store_t *s, size_t *count, size_t *bytes);

#endif
