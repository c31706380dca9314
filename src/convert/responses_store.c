/*
 * The stored responses (see responses_store.h): parts of one per putting thread, each a chained hash table of entries
 * also on a list in insertion order, which is the order of expiry and of eviction. A put locks its own part only; a get
 * or delete (rare: previous_response_id, GET, DELETE) looks in each part that holds anything. Every operation is O(1)
 * but the copies and that walk over at most 16 parts. Freed entries are freed after the mutex is released.
 *
 * A part of an entry of at least SHARE_MIN bytes, or a short one the caller marks (the response object's fixed fields),
 * is kept once per store part however many entries hold it (a blob: the system prompt every request of an agent
 * repeats, the instructions and tools every response object echoes, the object's fields from its status to its usage
 * but for the output, the earlier turns each follow-up's conversation repeats), and the output items, which the
 * response object and the conversation both hold, once per entry. Writing a few KB of every answer into memory
 * untouched since the store last went round (1000 entries: more than a core's cache) costs more than the rest of the
 * put; what is shared is compared instead, and stays in the cache.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
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

/* Writes the entry to the second tier (not waited for), from the parts of the response and of the items. */
static void remote_put(const char *id, size_t idlen, const k2a_str_t *response, size_t nresponse, size_t rlen,
                       const k2a_str_t *items, size_t nitems, size_t ilen, int64_t ttl_s)
{
    char head[24];
    int hl = snprintf(head, sizeof(head), "%zu\n", rlen);
    k2a_buf_t v = K2A_BUF_INIT(0);
    int r = k2a_buf_reserve(&v, (size_t)hl + rlen + ilen);
    if (r == 0)
        r = k2a_buf_append(&v, head, (size_t)hl);
    for (size_t i = 0; r == 0 && i < nresponse + nitems; ++i) {
        const k2a_str_t *part = i < nresponse ? &response[i] : &items[i - nresponse];
        if (part->len != 0)
            r = k2a_buf_append(&v, part->base, part->len);
    }
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

/* A shared item (see the top): found by a key of its length and three samples of its bytes, in the part's table of
 * SHARE_SLOTS (a newer item of the same slot takes it; the older one lives on in its entries, unshared from then on). */
#define SHARE_MIN K2A_RESPONSES_STORE_SHARE_MIN
#define SHARE_SLOTS 256
typedef struct st_blob_t {
    struct st_blob_t *freed; /* on the sweep's list once no entry holds it */
    uint64_t key;
    size_t len;
    uint32_t refs; /* entries holding it; under the part's mutex, like the table */
    int32_t slot;  /* its slot in the part's table, -1 once another item took it */
    char bytes[];
} blob_t;

/* The response object and the items of an entry, each in order: a blob's bytes, or len of the entry's own bytes from
 * at (the output items of the conversation are the response object's own bytes) */
typedef struct st_seg_t {
    blob_t *blob;
    uint32_t len, at; /* an entry is less than 4 GB (checked by the put) */
} seg_t;

typedef struct st_entry_t {
    struct st_entry_t *chain;       /* next in the bucket */
    struct st_entry_t *prev, *next; /* insertion order: head = oldest */
    uint64_t hash;                  /* of id */
    int64_t at;
    size_t idlen, rlen, ilen; /* the response object and the items as read back */
    size_t ownlen;            /* the bytes at own */
    size_t nrsegs, nsegs;     /* segs[0..nrsegs) make the response object, the rest the items */
    size_t size;              /* of the allocation (an evicted entry's is reused by the put that evicted it) */
    seg_t *segs;              /* in the same allocation, as are id and own */
    char *id, *own;
} entry_t;

/* One part per thread that puts (a worker loop): its own mutex, table and order, so that two loops storing answers at
 * the same time neither wait for each other nor move each other's cache lines, and an entry is usually freed by the
 * thread that allocated it. The bounds are the store's, kept in atomics across the parts. */
#define NSHARDS 16
typedef struct st_shard_t {
    pthread_mutex_t mutex;
    entry_t **buckets; /* allocated at the part's first put */
    blob_t **table;    /* SHARE_SLOTS, the same */
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
    blob_t *freed_blobs;
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

/* What an entry holds of its own (its blobs are counted once each, when made and when freed) */
static size_t entry_bytes(const entry_t *e)
{
    return e->idlen + e->ownlen;
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

static void unlink_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, sweep_t *w);
static void free_swept(sweep_t *w);

void k2a_responses_store_free(k2a_responses_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < NSHARDS; ++i) {
        shard_t *sh = &s->shards[i];
        sweep_t w = {.freed = NULL};
        while (sh->head != NULL)
            unlink_entry(s, sh, sh->head, &w);
        free_swept(&w);
        free(sh->buckets);
        free(sh->table);
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

/* An entry lets go of a blob (under the part's mutex); the last one takes it out of the table, and the sweep frees it. */
static void release_blob(shard_t *sh, blob_t *b, sweep_t *w)
{
    if (--b->refs != 0)
        return;
    if (b->slot >= 0 && sh->table[b->slot] == b)
        sh->table[b->slot] = NULL;
    w->dbytes -= (long long)b->len;
    b->freed = w->freed_blobs;
    w->freed_blobs = b;
}

/* The entries and blobs a sweep took out, freed (no mutex held). */
static void free_swept(sweep_t *w)
{
    for (entry_t *e = w->freed, *next; e != NULL; e = next) {
        next = e->chain;
        free(e);
    }
    for (blob_t *b = w->freed_blobs, *next; b != NULL; b = next) {
        next = b->freed;
        free(b);
    }
    w->freed = NULL;
    w->freed_blobs = NULL;
}

/* Takes e out of its part; the totals and the free are left to the sweep. */
static void unlink_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, sweep_t *w)
{
    /* found by its address: its id, in a line of its own that nothing else reads, is not compared */
    entry_t **p = &sh->buckets[e->hash & (s->nbuckets - 1)];
    while (*p != NULL && *p != e)
        p = &(*p)->chain;
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
    for (size_t i = 0; i < e->nsegs; ++i)
        if (e->segs[i].blob != NULL)
            release_blob(sh, e->segs[i].blob, w);
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
    free_swept(w);
    *w = (sweep_t){.freed = NULL};
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
    k2a_str_t r = k2a_str(response, rlen), i = k2a_str(items, ilen);
    return k2a_responses_store_putv(s, id, &r, 1, 0, &i, 1, now);
}

/* The key a shared item is found by: its length and 48 of its bytes (the first, the middle and the last 16; all of a
 * shorter one). The bytes are compared before an item is shared, so a key that two items have only costs the second
 * its sharing. */
static uint64_t blob_key(const char *p, size_t n)
{
    if (n < 48)
        return hash(p, n) ^ ((uint64_t)n * 0xff51afd7ed558ccdULL);
    char probe[48];
    memcpy(probe, p, 16);
    memcpy(probe + 16, p + n / 2 - 8, 16);
    memcpy(probe + 32, p + n - 16, 16);
    return hash(probe, sizeof(probe)) ^ ((uint64_t)n * 0xff51afd7ed558ccdULL);
}

/* The blob holding item[0..n), found in the part's table or made (and put there); NULL when out of memory. A new
 * blob's bytes are counted into the sweep's. Under the part's mutex. */
static blob_t *share(shard_t *sh, const char *item, size_t n, sweep_t *w)
{
    uint64_t key = blob_key(item, n);
    size_t slot = (size_t)(key & (SHARE_SLOTS - 1));
    blob_t *b = sh->table[slot];
    if (b != NULL && b->key == key && b->len == n && memcmp(b->bytes, item, n) == 0) {
        ++b->refs;
        return b;
    }
    if ((b = malloc(offsetof(blob_t, bytes) + n)) == NULL)
        return NULL;
    b->freed = NULL;
    b->key = key;
    b->len = n;
    b->refs = 1;
    b->slot = (int32_t)slot;
    memcpy(b->bytes, item, n);
    if (sh->table[slot] != NULL)
        sh->table[slot]->slot = -1;
    sh->table[slot] = b;
    w->dbytes += (long long)n;
    return b;
}

/* How an entry keeps a part: a blob (SHARE_MIN bytes or more, or a part of the response the caller marked), bytes
 * already among the entry's own (a part of the items inside a part of the response, the same memory: the output
 * items), or a copy in its own. Short parts of the response that follow each other in memory are one piece. */
enum { PIECE_OWN, PIECE_ALIAS, PIECE_SHARED };
typedef struct st_piece_t {
    const char *src;
    size_t len, at; /* at: in the entry's own bytes (PIECE_OWN, PIECE_ALIAS) */
    blob_t *blob;   /* PIECE_SHARED, once shared */
    uint8_t kind;
    bool items; /* a part of the items (else of the response) */
} piece_t;

typedef struct st_plan_t {
    piece_t *pieces;
    size_t npieces, nsegs, nrsegs, ownlen;
} plan_t;

/* Only a part at least this long is looked for in the response's own pieces (the brackets and commas are not) */
#define ALIAS_MIN 64

/* The pieces of an entry's parts, in order (empty parts left out), and how many segments they make: a run of own bytes
 * one after the other in the entry's memory is one segment. pieces has room for nresponse + nitems. */
static void plan(plan_t *l, const k2a_str_t *response, size_t nresponse, uint32_t shared, const k2a_str_t *items, size_t nitems)
{
    piece_t *pieces = l->pieces, *pc = NULL;
    size_t np = 0, nsegs = 0, nrsegs = 0, ownlen = 0, end = 0, nresp_pieces = 0;
    bool open = false; /* the last segment is own bytes ending at `end`, which the next piece may continue */
    for (size_t i = 0; i < nresponse + nitems; ++i) {
        bool in_items = i >= nresponse;
        const k2a_str_t *part = in_items ? &items[i - nresponse] : &response[i];
        size_t len = part->len;
        if (i == nresponse) {
            nrsegs = nsegs, open = false, pc = NULL; /* the items' segments start anew */
            nresp_pieces = np;
        }
        if (len == 0)
            continue;
        if (len >= SHARE_MIN || (!in_items && i < 32 && (shared >> i & 1) != 0)) {
            pieces[np++] = (piece_t){part->base, len, 0, NULL, PIECE_SHARED, in_items};
            ++nsegs, open = false, pc = NULL;
            continue;
        }
        if (!in_items && pc != NULL && pc->kind == PIECE_OWN && pc->src + pc->len == part->base) {
            pc->len += len; /* continues the last piece in memory and in the entry */
            ownlen += len, end += len;
            continue;
        }
        pc = &pieces[np++];
        *pc = (piece_t){part->base, len, ownlen, NULL, PIECE_OWN, in_items};
        if (in_items && len >= ALIAS_MIN) {
            for (size_t j = 0; j < nresp_pieces; ++j) {
                const piece_t *r = &pieces[j];
                if (r->kind == PIECE_OWN && part->base >= r->src && part->base + len <= r->src + r->len) {
                    pc->kind = PIECE_ALIAS;
                    pc->at = r->at + (size_t)(part->base - r->src);
                    break;
                }
            }
        }
        if (pc->kind == PIECE_OWN)
            ownlen += len;
        if (!(open && end == pc->at))
            ++nsegs;
        open = true, end = pc->at + len;
    }
    if (nitems == 0 || np == 0 || !pieces[np - 1].items)
        nrsegs = nsegs; /* no items, or none but empty ones */
    l->npieces = np, l->nsegs = nsegs, l->nrsegs = nrsegs, l->ownlen = ownlen;
}

/* The entry's segments from its pieces (as plan() counted them), its own bytes copied. */
static void fill(entry_t *e, const plan_t *l)
{
    seg_t *segs = e->segs;
    char *own = e->own;
    size_t n = 0, end = 0;
    bool open = false, items = false;
    for (const piece_t *pc = l->pieces, *last = l->pieces + l->npieces; pc != last; ++pc) {
        if (pc->items != items)
            items = true, open = false;
        if (pc->kind == PIECE_SHARED) {
            segs[n++] = (seg_t){pc->blob, (uint32_t)pc->len, 0};
            open = false;
            continue;
        }
        if (pc->kind == PIECE_OWN) {
            if (pc->len <= 8) /* a bracket or a comma: no call */
                for (size_t k = 0; k < pc->len; ++k)
                    own[pc->at + k] = pc->src[k];
            else
                memcpy(own + pc->at, pc->src, pc->len);
        }
        if (open && end == pc->at)
            segs[n - 1].len += (uint32_t)pc->len;
        else
            segs[n++] = (seg_t){NULL, (uint32_t)pc->len, (uint32_t)pc->at};
        open = true, end = pc->at + pc->len;
    }
}

static void release_pieces(shard_t *sh, const plan_t *l, size_t n, sweep_t *w)
{
    for (size_t i = 0; i < n; ++i)
        if (l->pieces[i].blob != NULL)
            release_blob(sh, l->pieces[i].blob, w);
}

int k2a_responses_store_putv(k2a_responses_store_t *s, const char *id, const k2a_str_t *response, size_t nresponse, uint32_t shared,
                             const k2a_str_t *items, size_t nitems, int64_t now)
{
    size_t idlen = strlen(id), rlen = 0, ilen = 0;
    for (size_t i = 0; i < nresponse; ++i)
        rlen += response[i].len;
    for (size_t i = 0; i < nitems; ++i)
        ilen += items[i].len;
    if (idlen == 0 || idlen > K2A_RESPONSES_STORE_KEY_MAX || idlen + rlen + ilen > s->max_bytes || rlen + ilen >= UINT32_MAX ||
        s->max_count == 0)
        return K2A_ETOOBIG;
    uint64_t h = hash(id, idlen);
    /* the second tier first, from the caller's parts (the entry is filled under the mutex, where the second tier's wait
     * from a coroutine cannot be) */
    if (atomic_load(&remote_set))
        remote_put(id, idlen, response, nresponse, rlen, items, nitems, ilen, s->ttl_s);
    /* planned first: the entry's size is known before its memory is (it may be that of an entry evicted below) */
    piece_t pieces_small[24];
    plan_t l = {.pieces = nresponse + nitems <= 24 ? pieces_small : malloc((nresponse + nitems) * sizeof(piece_t))};
    if (l.pieces == NULL)
        return K2A_ENOMEM;
    plan(&l, response, nresponse, shared, items, nitems);
    size_t size = sizeof(entry_t) + l.nsegs * sizeof(seg_t) + idlen + 1 + l.ownlen;

    shard_t *sh = my_shard(s);
    sweep_t w = {.freed = NULL};
    int ret = 0;
    size_t nshared = 0;
    entry_t *e = NULL;
    pthread_mutex_lock(&sh->mutex);
    if (sh->buckets == NULL && ((sh->buckets = calloc(s->nbuckets, sizeof(*sh->buckets))) == NULL ||
                                (sh->table = calloc(SHARE_SLOTS, sizeof(*sh->table))) == NULL)) {
        free(sh->buckets);
        sh->buckets = NULL;
        ret = K2A_ENOMEM;
        goto Unlock;
    }
    expire_locked(s, sh, now, &w);
    entry_t **p = slot_of(sh, s->nbuckets, id, idlen, h);
    if (*p != NULL)
        unlink_entry(s, sh, *p, &w);
    /* the long parts held before any eviction, which could otherwise free one this entry is about to hold */
    for (; nshared < l.npieces; ++nshared) {
        piece_t *pc = &l.pieces[nshared];
        if (pc->kind == PIECE_SHARED && (pc->blob = share(sh, pc->src, pc->len, &w)) == NULL) {
            ret = K2A_ENOMEM;
            goto Release;
        }
    }
    /* the oldest go first: this part's while its oldest is no newer than the other parts' (ties stay here) */
    bool evicted = false;
    while (sh->head != NULL && over_bounds(s, &w, idlen + l.ownlen) && sh->head->at <= oldest_elsewhere(s, sh))
        unlink_entry(s, sh, sh->head, &w), evicted = true;
    /* a full store evicts about an entry per put, of about the same size: its memory takes the new one (no free and
     * malloc of a few KB, whose bookkeeping reads cold memory), unless it is too small or much too big */
    for (entry_t **q = &w.freed; *q != NULL; q = &(*q)->chain) {
        if ((*q)->size >= size && (*q)->size - size <= size / 2 + 1024) {
            e = *q;
            *q = e->chain;
            break;
        }
    }
    if (e == NULL) {
        if ((e = malloc(size)) == NULL) {
            ret = K2A_ENOMEM;
            goto Release;
        }
        e->size = size;
    }
    e->chain = e->prev = e->next = NULL;
    e->hash = h;
    e->at = now;
    e->idlen = idlen;
    e->rlen = rlen;
    e->ilen = ilen;
    e->ownlen = l.ownlen;
    e->nrsegs = l.nrsegs;
    e->nsegs = l.nsegs;
    e->segs = (seg_t *)(e + 1);
    e->id = (char *)(e->segs + l.nsegs);
    e->own = e->id + idlen + 1;
    memcpy(e->id, id, idlen);
    e->id[idlen] = '\0';
    fill(e, &l);
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
    if (evicted && sh->head != e) {
        /* a full store: the next put evicts the new oldest, whose header the eviction above just wrote. Its segments and
         * the header after it are read then, one after the other, in memory untouched since the store last went round:
         * asked for now, they arrive while the answer is sent. */
        const entry_t *v = sh->head;
        __builtin_prefetch(v->segs);
        __builtin_prefetch((const char *)v->segs + 64);
        if (v->next != NULL)
            __builtin_prefetch(v->next, 1);
    }
    goto Unlock;
Release:
    release_pieces(sh, &l, nshared, &w);
Unlock:
    publish(sh);
    pthread_mutex_unlock(&sh->mutex);
    if (l.pieces != pieces_small)
        free(l.pieces);
    if (ret != 0) {
        settle(s, &w);
        return ret;
    }
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
    sweep_t w = {.freed = NULL};
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

/* Appends segs[0..n) of e (len bytes in all) to out */
static bool append_segs(k2a_buf_t *out, const entry_t *e, const seg_t *segs, size_t n, size_t len)
{
    if (k2a_buf_reserve(out, len) != 0)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (k2a_buf_append(out, segs[i].blob != NULL ? segs[i].blob->bytes : e->own + segs[i].at, segs[i].len) != 0)
            return false;
    return true;
}

static bool copy_entry(k2a_responses_store_t *s, shard_t *sh, entry_t *e, void *arg, sweep_t *w)
{
    (void)s, (void)sh, (void)w;
    struct copy_out *c = arg;
    return (c->response == NULL || append_segs(c->response, e, e->segs, e->nrsegs, e->rlen)) &&
           (c->items == NULL || append_segs(c->items, e, e->segs + e->nrsegs, e->nsegs - e->nrsegs, e->ilen));
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
    sweep_t w = {.freed = NULL};
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
