/*
 * The stored responses (see responses_store.h): a chained hash table of entries, each also on a list in insertion
 * order, which is the order of expiry and of eviction. One mutex; every operation is O(1) but the copies.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/coro.h"
#include "core/errors.h"
#include "convert/responses_store.h"

static k2a_responses_remote_t remote_tier;
static atomic_bool remote_set;

void k2a_responses_store_set_remote(const k2a_responses_remote_t *remote)
{
    atomic_store(&remote_set, false);
    if (remote != NULL) {
        remote_tier = *remote;
        atomic_store(&remote_set, true);
    }
}

/* Writes the entry to the second tier (not waited for). */
static void remote_put(const char *id, size_t idlen, const char *response, size_t rlen, const char *items, size_t ilen,
                       int64_t ttl_s)
{
    char head[24];
    int hl = snprintf(head, sizeof(head), "%zu\n", rlen);
    k2a_buf_t v = K2A_BUF_INIT(0);
    if (k2a_buf_reserve(&v, (size_t)hl + rlen + ilen) == 0 && k2a_buf_append(&v, head, (size_t)hl) == 0 &&
        (rlen == 0 || k2a_buf_append(&v, response, rlen) == 0) && (ilen == 0 || k2a_buf_append(&v, items, ilen) == 0))
        remote_tier.put(remote_tier.ctx, id, idlen, v.base, v.len, ttl_s);
    k2a_buf_dispose(&v);
}

/* A get that missed the memory: asks the second tier (in a coroutine only). */
static int remote_get(size_t max_bytes, const char *id, size_t idlen, k2a_buf_t *response, k2a_buf_t *items)
{
    if (!atomic_load(&remote_set) || k2a_coro_current() == NULL)
        return K2A_ENOTFOUND;
    k2a_buf_t v = K2A_BUF_INIT(0);
    int r = remote_tier.get(remote_tier.ctx, id, idlen, max_bytes + 32, &v);
    const char *nl = r == 0 && v.base != NULL ? memchr(v.base, '\n', v.len < 24 ? v.len : 24) : NULL;
    char *end = NULL;
    unsigned long long rlen = nl != NULL ? strtoull(v.base, &end, 10) : 0;
    if (nl == NULL || end != nl || rlen > v.len - (size_t)(nl + 1 - v.base)) {
        k2a_buf_dispose(&v);
        return K2A_ENOTFOUND; /* absent, unreadable or malformed */
    }
    const char *body = nl + 1;
    size_t ilen = v.len - (size_t)(body - v.base) - rlen;
    r = 0;
    if (response != NULL)
        r = k2a_buf_append(response, body, rlen);
    if (r == 0 && items != NULL)
        r = k2a_buf_append(items, body + rlen, ilen);
    k2a_buf_dispose(&v);
    return r;
}

typedef struct st_entry_t {
    struct st_entry_t *chain;       /* next in the bucket */
    struct st_entry_t *prev, *next; /* insertion order: head = oldest */
    uint64_t hash;                  /* of id */
    int64_t at;
    size_t idlen, rlen, ilen;
    char *id, *response, *items; /* one allocation */
} entry_t;

struct st_k2a_responses_store_t {
    pthread_mutex_t mutex;
    size_t max_count, max_bytes;
    int64_t ttl_s;
    entry_t **buckets;
    size_t nbuckets; /* a power of two */
    entry_t *head, *tail;
    size_t count, bytes;
};

static size_t entry_bytes(const entry_t *e)
{
    return e->idlen + e->rlen + e->ilen;
}

/* Eight bytes at a time, multiplied and folded (the ids put are the gateway's own random ones; a lookup does not
 * insert, so a client cannot lengthen a chain with ids of its choosing). */
static uint64_t hash(const char *s, size_t n)
{
    const uint64_t k = 0x9e3779b97f4a7c15ULL;
    uint64_t h = (uint64_t)n * k, w;
    for (; n >= 8; s += 8, n -= 8) {
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    if (n != 0) {
        w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * k;
    }
    h ^= h >> 32;
    return h;
}

k2a_responses_store_t *k2a_responses_store_new(size_t max_count, size_t max_bytes, int64_t ttl_s)
{
    k2a_responses_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->max_count = max_count;
    s->max_bytes = max_bytes;
    s->ttl_s = ttl_s;
    s->nbuckets = 64;
    while (s->nbuckets < max_count && s->nbuckets < ((size_t)1 << 20))
        s->nbuckets <<= 1;
    s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
    if (s->buckets == NULL) {
        free(s);
        return NULL;
    }
    pthread_mutex_init(&s->mutex, NULL);
    return s;
}

void k2a_responses_store_free(k2a_responses_store_t *s)
{
    if (s == NULL)
        return;
    for (entry_t *e = s->head, *next; e != NULL; e = next) {
        next = e->next;
        free(e);
    }
    free(s->buckets);
    pthread_mutex_destroy(&s->mutex);
    free(s);
}

static pthread_mutex_t shared_mutex = PTHREAD_MUTEX_INITIALIZER;
static k2a_responses_store_t *shared;
static _Atomic(k2a_responses_store_t *) shared_current; /* shared, once created: read without the mutex */

k2a_responses_store_t *k2a_responses_store_shared(const k2a_config_t *config)
{
    if (config->responses_store_max <= 0)
        return NULL;
    pthread_mutex_lock(&shared_mutex);
    if (shared == NULL)
        shared = k2a_responses_store_new((size_t)config->responses_store_max, (size_t)config->responses_store_max_bytes,
                                         config->responses_store_ttl_s);
    k2a_responses_store_t *s = shared;
    atomic_store(&shared_current, s);
    pthread_mutex_unlock(&shared_mutex);
    return s;
}

k2a_responses_store_t *k2a_responses_store_current(void)
{
    return atomic_load(&shared_current);
}

static entry_t **slot_of(k2a_responses_store_t *s, const char *id, size_t idlen, uint64_t h)
{
    entry_t **p = &s->buckets[h & (s->nbuckets - 1)];
    while (*p != NULL && !((*p)->hash == h && (*p)->idlen == idlen && memcmp((*p)->id, id, idlen) == 0))
        p = &(*p)->chain;
    return p;
}

static void unlink_entry(k2a_responses_store_t *s, entry_t *e)
{
    entry_t **p = slot_of(s, e->id, e->idlen, e->hash);
    if (*p == e)
        *p = e->chain;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    --s->count;
    s->bytes -= entry_bytes(e);
    free(e);
}

static void expire_locked(k2a_responses_store_t *s, int64_t now)
{
    while (s->head != NULL && now - s->head->at >= s->ttl_s)
        unlink_entry(s, s->head);
}

size_t k2a_responses_store_key(char *out, const char *owner, const char *id, size_t idlen)
{
    size_t olen = owner != NULL ? strlen(owner) : 0;
    if (idlen == 0 || idlen > K2A_RESPONSES_STORE_ID_MAX || olen > 64 || memchr(id, '/', idlen) != NULL)
        return 0;
    memcpy(out, owner != NULL ? owner : "", olen);
    out[olen] = '/';
    memcpy(out + olen + 1, id, idlen);
    out[olen + 1 + idlen] = '\0';
    return olen + 1 + idlen;
}

int k2a_responses_store_put(k2a_responses_store_t *s, const char *id, const char *response, size_t rlen, const char *items,
                            size_t ilen, int64_t now)
{
    k2a_str_t part = k2a_str(items, ilen);
    return k2a_responses_store_putv(s, id, response, rlen, &part, 1, now);
}

int k2a_responses_store_putv(k2a_responses_store_t *s, const char *id, const char *response, size_t rlen, const k2a_str_t *items,
                             size_t nitems, int64_t now)
{
    size_t idlen = strlen(id), ilen = 0;
    for (size_t i = 0; i < nitems; ++i)
        ilen += items[i].len;
    if (idlen == 0 || idlen > K2A_RESPONSES_STORE_KEY_MAX || idlen + rlen + ilen > s->max_bytes || s->max_count == 0)
        return K2A_ETOOBIG;
    entry_t *e = malloc(sizeof(*e) + idlen + rlen + ilen + 3);
    if (e == NULL)
        return K2A_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->hash = hash(id, idlen);
    e->at = now;
    e->idlen = idlen;
    e->rlen = rlen;
    e->ilen = ilen;
    e->id = (char *)(e + 1);
    e->response = e->id + idlen + 1;
    e->items = e->response + rlen + 1;
    memcpy(e->id, id, idlen);
    e->id[idlen] = '\0';
    if (rlen != 0)
        memcpy(e->response, response, rlen);
    e->response[rlen] = '\0';
    for (size_t i = 0, at = 0; i < nitems; at += items[i].len, ++i)
        if (items[i].len != 0)
            memcpy(e->items + at, items[i].base, items[i].len);
    e->items[ilen] = '\0';
    /* the second tier first: once the entry is in the table, another thread may evict and free it */
    if (atomic_load(&remote_set))
        remote_put(id, idlen, response, rlen, e->items, ilen, s->ttl_s);

    pthread_mutex_lock(&s->mutex);
    expire_locked(s, now);
    entry_t **p = slot_of(s, id, idlen, e->hash);
    if (*p != NULL)
        unlink_entry(s, *p);
    while (s->head != NULL && (s->count + 1 > s->max_count || s->bytes + entry_bytes(e) > s->max_bytes))
        unlink_entry(s, s->head);
    p = slot_of(s, id, idlen, e->hash);
    *p = e;
    e->prev = s->tail;
    if (s->tail != NULL)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    ++s->count;
    s->bytes += entry_bytes(e);
    pthread_mutex_unlock(&s->mutex);
    return 0;
}

int k2a_responses_store_get(k2a_responses_store_t *s, const char *id, size_t idlen, int64_t now, k2a_buf_t *response,
                            k2a_buf_t *items)
{
    int r = 0;
    pthread_mutex_lock(&s->mutex);
    expire_locked(s, now);
    entry_t *e = *slot_of(s, id, idlen, hash(id, idlen));
    if (e == NULL)
        r = K2A_ENOTFOUND;
    if (r == 0 && response != NULL)
        r = k2a_buf_append(response, e->response, e->rlen);
    if (r == 0 && items != NULL)
        r = k2a_buf_append(items, e->items, e->ilen);
    pthread_mutex_unlock(&s->mutex);
    if (r == K2A_ENOTFOUND) /* made through another replica, or this one's memory let it go */
        r = remote_get(s->max_bytes, id, idlen, response, items);
    return r;
}

static bool delete_local(k2a_responses_store_t *s, const char *id, size_t idlen)
{
    pthread_mutex_lock(&s->mutex);
    entry_t *e = *slot_of(s, id, idlen, hash(id, idlen));
    if (e != NULL)
        unlink_entry(s, e);
    pthread_mutex_unlock(&s->mutex);
    return e != NULL;
}

int k2a_responses_store_delete(k2a_responses_store_t *s, const char *id, size_t idlen)
{
    bool found = delete_local(s, id, idlen);
    /* the second tier also when this replica held it: other replicas may have read it from there */
    if (atomic_load(&remote_set) && remote_tier.del(remote_tier.ctx, id, idlen) == 0)
        found = true;
    return found ? 0 : K2A_ENOTFOUND;
}

void k2a_responses_store_forget(const char *id, size_t idlen)
{
    k2a_responses_store_t *s = k2a_responses_store_current();
    if (s != NULL)
        delete_local(s, id, idlen);
}

void k2a_responses_store_expire(k2a_responses_store_t *s, int64_t now)
{
    pthread_mutex_lock(&s->mutex);
    expire_locked(s, now);
    pthread_mutex_unlock(&s->mutex);
}

void k2a_responses_store_stats(k2a_responses_store_t *s, size_t *count, size_t *bytes)
{
    pthread_mutex_lock(&s->mutex);
    *count = s->count;
    *bytes = s->bytes;
    pthread_mutex_unlock(&s->mutex);
}
