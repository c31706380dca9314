/*
 * Session-sticky routing (see sticky.h): the session table (a chained hash table with an LRU list, O(1) per
 * request), the session key, and the pick that keeps a session on its account. Runs on the pool's loop only.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/errors.h"
#include "core/rand.h"
#include "pool/internal.h"
#include "pool/pace.h"
#include "pool/sticky.h"

#define MIN_BUCKETS 1024
/* idle sessions forgotten per lookup: amortises the expiry without ever making one request pay for many */
#define EXPIRE_BUDGET 4

/* ---- the table ---- */

static void lru_unlink(k2a_sticky_entry_t *e)
{
    e->newer->older = e->older;
    e->older->newer = e->newer;
}

/* the most recent end: just "older" than the sentinel's newest side */
static void lru_push(k2a_sticky_table_t *t, k2a_sticky_entry_t *e)
{
    e->older = t->lru.older;
    e->newer = &t->lru;
    t->lru.older->newer = e;
    t->lru.older = e;
}

int k2a_sticky_table_init(k2a_sticky_table_t *t, size_t max, uint64_t idle_ms, k2a_sticky_owner_cb on_owner)
{
    memset(t, 0, sizeof(*t));
    t->nbuckets = MIN_BUCKETS;
    if ((t->buckets = calloc(t->nbuckets, sizeof(*t->buckets))) == NULL)
        return K2A_ENOMEM;
    t->max = max != 0 ? max : 1;
    t->idle_ms = idle_ms;
    t->lru.newer = t->lru.older = &t->lru;
    t->on_owner = on_owner;
    return 0;
}

void k2a_sticky_table_dispose(k2a_sticky_table_t *t)
{
    if (t->buckets == NULL)
        return;
    for (k2a_sticky_entry_t *e = t->lru.newer, *next; e != &t->lru; e = next) {
        next = e->newer;
        free(e);
    }
    free(t->buckets);
    t->buckets = NULL;
    t->n = 0;
}

static k2a_sticky_entry_t **slot_of(k2a_sticky_table_t *t, uint64_t key)
{
    k2a_sticky_entry_t **s = &t->buckets[key & (t->nbuckets - 1)];
    while (*s != NULL && (*s)->key != key)
        s = &(*s)->hnext;
    return s;
}

static void drop(k2a_sticky_table_t *t, k2a_sticky_entry_t *e)
{
    k2a_sticky_entry_t **s = slot_of(t, e->key);
    *s = e->hnext;
    lru_unlink(e);
    --t->n;
    if (t->on_owner != NULL && e->owner != NULL)
        t->on_owner(e->owner, NULL);
    free(e);
}

void k2a_sticky_table_expire(k2a_sticky_table_t *t, uint64_t now, size_t budget)
{
    /* lru.newer is the least recently used session */
    while (budget-- > 0 && t->lru.newer != &t->lru && t->lru.newer->seen_ms + t->idle_ms <= now) {
        drop(t, t->lru.newer);
        ++t->expired;
    }
}

k2a_sticky_entry_t *k2a_sticky_table_get(k2a_sticky_table_t *t, uint64_t key, uint64_t now)
{
    k2a_sticky_table_expire(t, now, EXPIRE_BUDGET);
    k2a_sticky_entry_t *e = *slot_of(t, key);
    if (e == NULL)
        return NULL;
    if (e->seen_ms + t->idle_ms <= now) { /* idle: forgotten, as if the budget had reached it */
        drop(t, e);
        ++t->expired;
        return NULL;
    }
    e->seen_ms = now;
    lru_unlink(e);
    lru_push(t, e);
    return e;
}

/* Doubles the bucket array while it holds more entries than buckets (amortised O(1) per insert); without memory the
 * chains only get longer. */
static void maybe_grow(k2a_sticky_table_t *t)
{
    if (t->n <= t->nbuckets)
        return;
    size_t n = t->nbuckets * 2;
    k2a_sticky_entry_t **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; ++i) {
        for (k2a_sticky_entry_t *e = t->buckets[i], *next; e != NULL; e = next) {
            next = e->hnext;
            e->hnext = nb[e->key & (n - 1)];
            nb[e->key & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = nb;
    t->nbuckets = n;
}

int k2a_sticky_table_pin(k2a_sticky_table_t *t, uint64_t key, void *owner, uint64_t now)
{
    k2a_sticky_entry_t **s = slot_of(t, key), *e = *s;
    if (e != NULL) {
        if (e->owner != owner && t->on_owner != NULL)
            t->on_owner(e->owner, owner);
        e->owner = owner;
        e->seen_ms = now;
        lru_unlink(e);
        lru_push(t, e);
        return 0;
    }
    if (t->n >= t->max) { /* the least recently used session makes room */
        drop(t, t->lru.newer);
        ++t->evicted;
    }
    if ((e = malloc(sizeof(*e))) == NULL)
        return K2A_ENOMEM;
    e->key = key;
    e->owner = owner;
    e->seen_ms = now;
    s = slot_of(t, key); /* the drop above may have changed the chain */
    e->hnext = NULL;
    *s = e;
    lru_push(t, e);
    ++t->n;
    if (t->on_owner != NULL)
        t->on_owner(NULL, owner);
    maybe_grow(t);
    return 0;
}

void k2a_sticky_table_forget_owner(k2a_sticky_table_t *t, void *owner)
{
    for (k2a_sticky_entry_t *e = t->lru.newer, *next; e != &t->lru; e = next) {
        next = e->newer;
        if (e->owner == owner)
            drop(t, e);
    }
}

/* ---- the key ---- */

static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once (OpenSSL 3 would otherwise look the algorithm up at every digest: most of its cost). */
static void fetch_sha256(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* 64 bits of SHA-256 over kind + text (never 0); 0 when text is empty or without memory. Called on any worker loop. */
static uint64_t hash64(const char *kind, k2a_str_t text)
{
    if (text.len == 0 || text.base == NULL)
        return 0;
    pthread_once(&sha256_once, fetch_sha256);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = c != NULL && sha256 != NULL && EVP_DigestInit_ex(c, sha256, NULL) == 1 &&
              EVP_DigestUpdate(c, kind, strlen(kind)) == 1 && EVP_DigestUpdate(c, text.base, text.len) == 1 &&
              EVP_DigestFinal_ex(c, md, &mdlen) == 1 && mdlen >= 8;
    EVP_MD_CTX_free(c);
    if (!ok)
        return 0; /* the request then goes by the strategy */
    uint64_t k = 0;
    for (int j = 0; j < 8; ++j)
        k = k << 8 | md[j];
    return k != 0 ? k : 1;
}

uint64_t k2a_sticky_key(k2a_str_t session, k2a_str_t user, uint64_t client_key_id)
{
    uint64_t k = hash64("kiro2api-session:s:", session);
    if (k == 0)
        k = hash64("kiro2api-session:u:", user);
    return k != 0 ? k : client_key_id;
}

uint64_t k2a_sticky_client_key(k2a_str_t key)
{
    return hash64("kiro2api-session:k:", key);
}

uint64_t k2a_sticky_client_key_digest(const unsigned char digest[32])
{
    /* 64 bits of the key's SHA-256, mixed with a constant so that the id (debug logs print it) is not a prefix of the
     * hash the key store keeps */
    uint64_t k;
    memcpy(&k, digest, sizeof(k));
    k ^= 0x6b69726f32617069ULL;
    k = k2a_splitmix64(&k);
    return k != 0 ? k : 1;
}

/* ---- the pool side ---- */

static void on_owner(void *from, void *to)
{
    if (from != NULL)
        --((k2a_account_t *)from)->sessions;
    if (to != NULL)
        ++((k2a_account_t *)to)->sessions;
}

bool k2a_sticky_enabled(const k2a_pool_t *p)
{
    return p->cfg.strategy == K2A_POOL_STICKY || p->cfg.sticky;
}

int k2a_sticky_init(k2a_pool_t *p)
{
    return k2a_sticky_table_init(&p->sticky, p->cfg.sticky_max_sessions, (uint64_t)p->cfg.sticky_idle_s * 1000, on_owner);
}

void k2a_sticky_dispose(k2a_pool_t *p)
{
    k2a_sticky_table_dispose(&p->sticky);
}

void k2a_sticky_forget_account(k2a_pool_t *p, k2a_account_t *a)
{
    if (a->sessions != 0)
        k2a_sticky_table_forget_owner(&p->sticky, a);
}

size_t k2a_sticky_sessions(const k2a_account_t *a)
{
    return a->sessions;
}

/* A session whose account is at its concurrency cap (parallel requests of one session: Claude Code's side requests) sends
 * this request elsewhere without moving: the session stays pinned. */
static const char OVERFLOW[] = "overflow: its account is at its concurrency cap (the session stays pinned)";

/* NULL when the session may stay on a, else why it moves (or OVERFLOW). */
static const char *unusable(const k2a_pool_exclude_t *ex, const k2a_account_t *a)
{
    if (!a->eligible) {
        if (a->paced)
            return "moved: over its pace";
        switch (a->state) {
        case K2A_ACCOUNT_COOLING:
            return "moved: cooling";
        case K2A_ACCOUNT_EXHAUSTED:
            return "moved: exhausted";
        case K2A_ACCOUNT_INVALID:
            return "moved: invalid";
        case K2A_ACCOUNT_DISABLED:
            return "moved: disabled";
        default:
            return "moved: not usable";
        }
    }
    for (size_t i = 0; i < ex->n; ++i)
        if (ex->ids[i] == a->id)
            return "moved: failed in this request";
    if (ex->model != NULL && !k2a_account_may_serve(a, ex->model))
        return "moved: lacks the model";
    unsigned cap = k2a_account_max_concurrency(a);
    if (cap != 0 && a->inflight >= cap)
        return OVERFLOW;
    return NULL;
}

k2a_account_t *k2a_sticky_pick(k2a_pool_t *p, k2a_pool_exclude_t *ex, bool *at_cap)
{
    uint64_t now = uv_hrtime() / 1000000;
    *at_cap = false;
    k2a_sticky_entry_t *e = k2a_sticky_table_get(&p->sticky, ex->session, now);
    const char *why = NULL;
    if (e != NULL) {
        k2a_account_t *a = e->owner;
        if ((why = unusable(ex, a)) == NULL) {
            ex->why = "sticky hit";
            return a;
        }
    }
    k2a_account_t *a = k2a_select_pick(p, ex, at_cap);
    if (why == NULL)
        why = p->cfg.strategy == K2A_POOL_STICKY ? "new: least-loaded" : "new: by the strategy";
    ex->why = why;
    if (a != NULL && why != OVERFLOW)
        k2a_sticky_table_pin(&p->sticky, ex->session, a, now); /* without memory the session is simply not pinned */
    return a;
}
