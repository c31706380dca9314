/*
 * The stored responses (see responses_store.h): parts of one per putting thread, each a chained hash table of entries
 * also on a list in insertion order, which is the order of expiry and of eviction. A put locks its own part only; a get
 * or delete (rare: previous_response_id, GET, DELETE) looks in each part that holds anything. Every operation is O(1)
 * but the copies and that walk over at most 16 parts. Freed entries are freed after the mutex is released.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Writes the entry to the second tier (not waited for). The items come in parts (items[0..nitems) make the array). */
static void remote_put(const char *id, size_t idlen, const char *response, size_t rlen, const k2a_str_t *items, size_t nitems,
                       size_t ilen, int64_t ttl_s)
{
    char head[24];
    int hl = snprintf(head, sizeof(head), "%zu\n", rlen);
    k2a_buf_t v = K2A_BUF_INIT(0);
    int r = k2a_buf_reserve(&v, (size_t)hl + rlen + ilen);
    if (r == 0)
        r = k2a_buf_append(&v, head, (size_t)hl);
    if (r == 0 && rlen != 0)
        r = k2a_buf_append(&v, response, rlen);
    for (size_t i = 0; r == 0 && i < nitems; ++i)
        if (items[i].len != 0)
            r = k2a_buf_append(&v, items[i].base, items[i].len);
    if (r == 0)
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
    size_t size;                 /* of the allocation (an evicted entry's is reused by the put that evicted it) */
    char *id, *response, *items; /* one allocation */
} entry_t;

/* One part per thread that puts (a worker loop): its own mutex, table and order, so that two loops storing answers at
 * the same time neither wait for each other nor move each other's cache lines, and an entry is usually freed by the
 * thread that allocated it. The bounds are the store's, kept in atomics across the parts. */
#define NSHARDS 16
typedef struct st_shard_t {
    pthread_mutex_t mutex;
    entry_t **buckets; /* allocated at the part's first put */
    entry_t *head, *tail;
    size_t count;
    /* read by the other threads without the mutex, in a line of its own and written only when it changes (the count
     * stays put once the store is full; the oldest time moves once a second), so that it stays in every cache */
    struct {
        _Atomic size_t nkept;      /* count: is there anything to evict here? */
        _Atomic int64_t oldest_at; /* head->at: has anything here expired? */
    } __attribute__((aligned(64))) seen;
} __attribute__((aligned(64))) shard_t;

/* What one operation took out or put in: the store's totals move once at its end (one atomic add each, none when
 * an entry replaced one of the same count), and the freed entries are freed after the mutexes are released. */
typedef struct st_sweep_t {
    entry_t *freed;
    ptrdiff_t dcount;
    long long dbytes;
} sweep_t;

struct st_k2a_responses_store_t {
    size_t max_count, max_bytes;
    int64_t ttl_s;
    size_t nbuckets; /* per part, a power of two */
    _Atomic size_t count, bytes;
    _Atomic unsigned next_shard;
    shard_t shards[NSHARDS];
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
    k2a_responses_store_t *s = aligned_alloc(64, sizeof(*s));
    if (s == NULL)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->max_count = max_count;
    s->max_bytes = max_bytes;
    s->ttl_s = ttl_s;
    s->nbuckets = 64;
    while (s->nbuckets < max_count && s->nbuckets < ((size_t)1 << 20))
        s->nbuckets <<= 1;
    for (size_t i = 0; i < NSHARDS; ++i) {
        pthread_mutex_init(&s->shards[i].mutex, NULL);
        atomic_init(&s->shards[i].seen.oldest_at, INT64_MAX);
    }
    return s;
}

void k2a_responses_store_free(k2a_responses_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < NSHARDS; ++i) {
        shard_t *sh = &s->shards[i];
        for (entry_t *e = sh->head, *next; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
        free(sh->buckets);
        pthread_mutex_destroy(&sh->mutex);
    }
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

static entry_t **slot_of(shard_t *sh, size_t nbuckets, const char *id, size_t idlen, uint64_t h)
{
    entry_t **p = &sh->buckets[h & (nbuckets - 1)];
    while (*p != NULL && !((*p)->hash == h && (*p)->idlen == idlen && memcmp((*p)->id, id, idlen) == 0))
        p = &(*p)->chain;
    return p;
}

/* Takes e out of its part; the totals and the free are left to the sweep. */
static void unlink_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, sweep_t *w)
{
    entry_t **p = slot_of(sh, s->nbuckets, e->id, e->idlen, e->hash);
    if (*p == e)
        *p = e->chain;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        sh->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        sh->tail = e->prev;
    --sh->count;
    --w->dcount;
    w->dbytes -= (long long)entry_bytes(e);
    e->chain = w->freed;
    w->freed = e;
}

/* Before the part's mutex is released: what the other threads read of it, when it changed. */
static void publish(shard_t *sh)
{
    int64_t at = sh->head != NULL ? sh->head->at : INT64_MAX;
    if (atomic_load_explicit(&sh->seen.nkept, memory_order_relaxed) != sh->count)
        atomic_store_explicit(&sh->seen.nkept, sh->count, memory_order_release);
    if (atomic_load_explicit(&sh->seen.oldest_at, memory_order_relaxed) != at)
        atomic_store_explicit(&sh->seen.oldest_at, at, memory_order_relaxed);
}

/* The end of an operation, no mutex held: the totals move, the entries taken out are freed. */
static void settle(k2a_responses_store_t *s, sweep_t *w)
{
    if (w->dcount != 0)
        atomic_fetch_add(&s->count, (size_t)w->dcount);
    if (w->dbytes != 0)
        atomic_fetch_add(&s->bytes, (size_t)w->dbytes);
    for (entry_t *e = w->freed, *next; e != NULL; e = next) {
        next = e->chain;
        free(e);
    }
    *w = (sweep_t){NULL, 0, 0};
}

static void expire_locked(k2a_responses_store_t *s, shard_t *sh, int64_t now, sweep_t *w)
{
    while (sh->head != NULL && now - sh->head->at >= s->ttl_s)
        unlink_entry(s, sh, sh->head, w);
}

/* Whether the store, with what this operation has done so far, would be over a bound with `adding` bytes more. */
static bool over_bounds(k2a_responses_store_t *s, const sweep_t *w, size_t adding)
{
    return (long long)atomic_load(&s->count) + w->dcount + (adding != 0) > (long long)s->max_count ||
           (long long)atomic_load(&s->bytes) + w->dbytes + (long long)adding > (long long)s->max_bytes;
}

/* The parts handed out so far (parts are handed out in order): a put's scans of the others look at these only, a
 * thread or two instead of all NSHARDS lines. A part handed out a moment ago and not seen yet is only looked at by the
 * next put; gets and deletes look at every part. */
static size_t parts_used(k2a_responses_store_t *s)
{
    unsigned n = atomic_load_explicit(&s->next_shard, memory_order_acquire);
    return n < NSHARDS ? n : NSHARDS;
}

/* The part holding the oldest entry, not counting `except` (NULL: all empty), read without their mutexes; *at gets its
 * time (INT64_MAX: none). */
static shard_t *oldest_part(k2a_responses_store_t *s, const shard_t *except, int64_t *at)
{
    shard_t *best = NULL;
    *at = INT64_MAX;
    for (size_t i = 0, n = parts_used(s); i < n; ++i) {
        shard_t *o = &s->shards[i];
        if (o != except && atomic_load_explicit(&o->seen.nkept, memory_order_relaxed) != 0) {
            int64_t a = atomic_load_explicit(&o->seen.oldest_at, memory_order_relaxed);
            if (best == NULL || a < *at)
                best = o, *at = a;
        }
    }
    return best;
}

static int64_t oldest_elsewhere(k2a_responses_store_t *s, const shard_t *sh)
{
    int64_t at;
    (void)oldest_part(s, sh, &at);
    return at;
}

/* The calling thread's part: one per thread, handed out in turn (worker loops are long-lived threads). */
static shard_t *my_shard(k2a_responses_store_t *s)
{
    static __thread const k2a_responses_store_t *of;
    static __thread unsigned index;
    if (of != s) {
        index = atomic_fetch_add(&s->next_shard, 1) % NSHARDS;
        of = s;
    }
    return &s->shards[index];
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
    size_t size = sizeof(entry_t) + idlen + rlen + ilen + 3;
    uint64_t h = hash(id, idlen);
    /* the second tier first, from the caller's parts (the entry is filled under the mutex, where the second tier's wait
     * from a coroutine cannot be) */
    if (atomic_load(&remote_set))
        remote_put(id, idlen, response, rlen, items, nitems, ilen, s->ttl_s);

    shard_t *sh = my_shard(s);
    sweep_t w = {NULL, 0, 0};
    pthread_mutex_lock(&sh->mutex);
    if (sh->buckets == NULL && (sh->buckets = calloc(s->nbuckets, sizeof(*sh->buckets))) == NULL) {
        pthread_mutex_unlock(&sh->mutex);
        return K2A_ENOMEM;
    }
    expire_locked(s, sh, now, &w);
    entry_t **p = slot_of(sh, s->nbuckets, id, idlen, h);
    if (*p != NULL)
        unlink_entry(s, sh, *p, &w);
    /* the oldest go first: this part's while its oldest is no newer than the other parts' (ties stay here) */
    while (sh->head != NULL && over_bounds(s, &w, idlen + rlen + ilen) && sh->head->at <= oldest_elsewhere(s, sh))
        unlink_entry(s, sh, sh->head, &w);
    /* a full store evicts about an entry per put, of about the same size: its memory takes the new one (no free and
     * malloc of a few KB, whose bookkeeping reads cold memory), unless it is too small or much too big */
    entry_t *e = NULL;
    for (entry_t **q = &w.freed; *q != NULL; q = &(*q)->chain) {
        if ((*q)->size >= size && (*q)->size - size <= size / 2 + 1024) {
            e = *q;
            *q = e->chain;
            break;
        }
    }
    if (e == NULL) {
        if ((e = malloc(size)) == NULL) {
            publish(sh);
            pthread_mutex_unlock(&sh->mutex);
            settle(s, &w);
            return K2A_ENOMEM;
        }
        e->size = size;
    }
    e->chain = e->prev = e->next = NULL;
    e->hash = h;
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
    p = slot_of(sh, s->nbuckets, id, idlen, h);
    *p = e;
    e->prev = sh->tail;
    if (sh->tail != NULL)
        sh->tail->next = e;
    else
        sh->head = e;
    sh->tail = e;
    ++sh->count;
    ++w.dcount;
    w.dbytes += (long long)entry_bytes(e);
    publish(sh);
    pthread_mutex_unlock(&sh->mutex);
    /* then the others' (one part locked at a time): while over, the part holding the oldest; and a part whose thread
     * is idle drops what expired */
    while (over_bounds(s, &w, 0)) {
        int64_t at;
        shard_t *o = oldest_part(s, NULL, &at);
        if (o == NULL)
            break;
        pthread_mutex_lock(&o->mutex);
        if (o->head != NULL)
            unlink_entry(s, o, o->head, &w);
        publish(o);
        pthread_mutex_unlock(&o->mutex);
    }
    for (size_t i = 0, nparts = parts_used(s); i < nparts; ++i) {
        shard_t *o = &s->shards[i];
        if (o == sh || atomic_load_explicit(&o->seen.nkept, memory_order_relaxed) == 0 ||
            now - atomic_load_explicit(&o->seen.oldest_at, memory_order_relaxed) < s->ttl_s)
            continue;
        pthread_mutex_lock(&o->mutex);
        expire_locked(s, o, now, &w);
        publish(o);
        pthread_mutex_unlock(&o->mutex);
    }
    settle(s, &w);
    return 0;
}

/* Calls fn on the entry of id under its part's mutex (expiring each part it looks in when now >= 0); returns whether one
 * was found. */
static bool find_locked(k2a_responses_store_t *s, const char *id, size_t idlen, int64_t now,
                        bool (*fn)(k2a_responses_store_t *, shard_t *, entry_t *, void *, sweep_t *), void *arg, int *r)
{
    uint64_t h = hash(id, idlen);
    sweep_t w = {NULL, 0, 0};
    bool found = false;
    for (size_t i = 0; i < NSHARDS && !found; ++i) {
        shard_t *sh = &s->shards[i];
        if (atomic_load_explicit(&sh->seen.nkept, memory_order_acquire) == 0) /* a put before this get is seen */
            continue;
        pthread_mutex_lock(&sh->mutex);
        if (now >= 0)
            expire_locked(s, sh, now, &w);
        entry_t *e = sh->buckets != NULL ? *slot_of(sh, s->nbuckets, id, idlen, h) : NULL;
        if (e != NULL) {
            found = true;
            *r = fn(s, sh, e, arg, &w) ? 0 : K2A_ENOMEM;
        }
        publish(sh);
        pthread_mutex_unlock(&sh->mutex);
    }
    settle(s, &w);
    return found;
}

struct copy_out {
    k2a_buf_t *response, *items;
};

static bool copy_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, void *arg, sweep_t *w)
{
    (void)s, (void)sh, (void)w;
    struct copy_out *c = arg;
    return (c->response == NULL || k2a_buf_append(c->response, e->response, e->rlen) == 0) &&
           (c->items == NULL || k2a_buf_append(c->items, e->items, e->ilen) == 0);
}

static bool drop_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, void *arg, sweep_t *w)
{
    (void)arg;
    unlink_entry(s, sh, e, w);
    return true;
}

int k2a_responses_store_get(k2a_responses_store_t *s, const char *id, size_t idlen, int64_t now, k2a_buf_t *response,
                            k2a_buf_t *items)
{
    int r = K2A_ENOTFOUND;
    struct copy_out c = {response, items};
    if (!find_locked(s, id, idlen, now, copy_entry, &c, &r)) /* made through another replica, or this one let it go */
        r = remote_get(s->max_bytes, id, idlen, response, items);
    return r;
}

static bool delete_local(k2a_responses_store_t *s, const char *id, size_t idlen)
{
    int r;
    return find_locked(s, id, idlen, -1, drop_entry, NULL, &r);
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
    sweep_t w = {NULL, 0, 0};
    for (size_t i = 0; i < NSHARDS; ++i) {
        shard_t *sh = &s->shards[i];
        pthread_mutex_lock(&sh->mutex);
        expire_locked(s, sh, now, &w);
        publish(sh);
        pthread_mutex_unlock(&sh->mutex);
    }
    settle(s, &w);
}

void k2a_responses_store_stats(k2a_responses_store_t *s, size_t *count, size_t *bytes)
{
    *count = atomic_load(&s->count);
    *bytes = atomic_load(&s->bytes);
}
