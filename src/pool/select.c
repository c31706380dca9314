/*
 * Account selection. Only eligible accounts (enabled, not cooling/exhausted/invalid) are linked in the
 * selection structures, which are updated on state transitions (rare) rather than scanned per request:
 *  - a list in configuration order with two cursors: sequential keeps serving its cursor until that account
 *    leaves the list (the cursor then moves to the next one, kiro2api's semantics), round_robin advances its
 *    cursor on every pick;
 *  - for balanced, buckets indexed by in-flight count, each least-recently-used first, and the lowest
 *    non-empty bucket: picking and releasing move one account between neighbouring buckets in O(1).
 * A pick therefore costs O(1 + accounts skipped because the request already tried them, their model catalog lacks
 * the requested model, or they are at their concurrency cap), independent of the pool size. Accounts at their pace
 * (pace.c) are not eligible, so they are never scanned. The sticky strategy picks new sessions as balanced does
 * (sticky.c keeps known sessions on their account before asking here).
 */
#include <stdlib.h>
#include "core/errors.h"
#include "pool/internal.h"
#include "pool/pace.h"

#define ACCOUNT_OF_OLINK(l) K2A_PLINK_OWNER(k2a_account_t, olink, l)
#define ACCOUNT_OF_BLINK(l) K2A_PLINK_OWNER(k2a_account_t, blink, l)

int k2a_select_init(k2a_pool_t *p)
{
    k2a_plink_init(&p->eligible);
    p->nbuckets = 8;
    if ((p->buckets = malloc(p->nbuckets * sizeof(*p->buckets))) == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < p->nbuckets; ++i)
        k2a_plink_init(&p->buckets[i]);
    p->min_bucket = 0;
    return 0;
}

void k2a_select_dispose(k2a_pool_t *p)
{
    free(p->buckets);
    p->buckets = NULL;
    p->nbuckets = 0;
}

/* Grows the bucket array so that index k exists. The sentinels move, so every list is re-linked. */
static int ensure_bucket(k2a_pool_t *p, size_t k)
{
    if (k < p->nbuckets)
        return 0;
    size_t n = p->nbuckets;
    while (n <= k)
        n *= 2;
    k2a_plink_t *nb = malloc(n * sizeof(*nb));
    if (nb == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < n; ++i)
        k2a_plink_init(&nb[i]);
    for (size_t i = 0; i < p->nbuckets; ++i) {
        while (!k2a_plist_empty(&p->buckets[i])) {
            k2a_plink_t *l = p->buckets[i].next;
            k2a_plink_unlink(l);
            k2a_plink_insert_before(&nb[i], l);
        }
    }
    free(p->buckets);
    p->buckets = nb;
    p->nbuckets = n;
    return 0;
}

static k2a_account_t *next_wrap(k2a_pool_t *p, k2a_account_t *a)
{
    k2a_plink_t *n = a->olink.next;
    if (n == &p->eligible)
        n = n->next;
    return n == &p->eligible ? NULL : ACCOUNT_OF_OLINK(n);
}

void k2a_select_add(k2a_pool_t *p, k2a_account_t *a)
{
    if (a->eligible)
        return;
    /* keep configuration order; walk from the tail (new accounts usually come last) */
    k2a_plink_t *pos = &p->eligible;
    while (pos->prev != &p->eligible && ACCOUNT_OF_OLINK(pos->prev)->index > a->index)
        pos = pos->prev;
    k2a_plink_insert_before(pos, &a->olink);
    if (ensure_bucket(p, a->inflight) == 0) {
        /* by last use within the bucket (a returning account has not been used for a while); this walk happens on state
         * transitions only, never per request */
        k2a_plink_t *b = &p->buckets[a->inflight], *at = b->next;
        while (at != b && ACCOUNT_OF_BLINK(at)->last_used <= a->last_used)
            at = at->next;
        k2a_plink_insert_before(at, &a->blink);
        if (a->inflight < p->min_bucket)
            p->min_bucket = a->inflight;
    }
    a->eligible = true;
    ++p->neligible;
    if (a->ever_refreshed)
        ++p->nready;
    if (p->seq_cursor == NULL)
        p->seq_cursor = a;
    if (p->rr_cursor == NULL)
        p->rr_cursor = a;
}

void k2a_select_remove(k2a_pool_t *p, k2a_account_t *a)
{
    if (!a->eligible)
        return;
    /* the cursors move to the next eligible account; when `a` is the last one they become NULL (next_wrap would return `a`
     * itself, leaving a cursor on an account that is no longer in the list, which the next pick would then take) */
    k2a_account_t *next = next_wrap(p, a);
    if (next == a)
        next = NULL;
    if (p->seq_cursor == a)
        p->seq_cursor = next;
    if (p->rr_cursor == a)
        p->rr_cursor = next;
    k2a_plink_unlink(&a->olink);
    if (k2a_plink_linked(&a->blink))
        k2a_plink_unlink(&a->blink);
    a->eligible = false;
    --p->neligible;
    if (a->ever_refreshed)
        --p->nready;
}

void k2a_select_inflight_changed(k2a_pool_t *p, k2a_account_t *a, unsigned old_inflight)
{
    if (!a->eligible)
        return;
    if (ensure_bucket(p, a->inflight) != 0)
        return; /* out of memory: the account stays in its old bucket, which only skews the balance */
    if (k2a_plink_linked(&a->blink))
        k2a_plink_unlink(&a->blink);
    k2a_plink_insert_before(&p->buckets[a->inflight], &a->blink); /* most recently used: tail */
    if (a->inflight < p->min_bucket)
        p->min_bucket = a->inflight;
}

static bool excluded(const k2a_pool_exclude_t *ex, const k2a_account_t *a)
{
    if (ex == NULL)
        return false;
    for (size_t i = 0; i < ex->n; ++i)
        if (ex->ids[i] == a->id)
            return true;
    return ex->model != NULL && !k2a_account_may_serve(a, ex->model);
}

/* Walks the configuration-order ring from start; returns the first account not excluded and below its cap. */
static k2a_account_t *walk_ring(k2a_pool_t *p, k2a_account_t *start, const k2a_pool_exclude_t *ex, bool *at_cap)
{
    k2a_account_t *x = start;
    do {
        if (!excluded(ex, x)) {
            unsigned cap = k2a_account_max_concurrency(x);
            if (cap == 0 || x->inflight < cap)
                return x;
            *at_cap = true;
        }
        x = next_wrap(p, x);
    } while (x != NULL && x != start);
    return NULL;
}

k2a_account_t *k2a_select_pick(k2a_pool_t *p, const k2a_pool_exclude_t *exclude, bool *at_cap)
{
    *at_cap = false;
    if (p->neligible == 0)
        return NULL;
    switch (p->cfg.strategy) {
    case K2A_POOL_SEQUENTIAL:
        return walk_ring(p, p->seq_cursor, exclude, at_cap);
    case K2A_POOL_ROUND_ROBIN: {
        k2a_account_t *x = walk_ring(p, p->rr_cursor, exclude, at_cap);
        if (x != NULL) {
            k2a_account_t *n = next_wrap(p, x);
            p->rr_cursor = n != NULL ? n : x;
        }
        return x;
    }
    case K2A_POOL_BALANCED:
    case K2A_POOL_STICKY: {
        while (p->min_bucket < p->nbuckets && k2a_plist_empty(&p->buckets[p->min_bucket]))
            ++p->min_bucket;
        for (size_t k = p->min_bucket; k < p->nbuckets; ++k) {
            for (k2a_plink_t *l = p->buckets[k].next; l != &p->buckets[k]; l = l->next) {
                k2a_account_t *x = ACCOUNT_OF_BLINK(l);
                if (excluded(exclude, x))
                    continue;
                unsigned cap = k2a_account_max_concurrency(x);
                if (cap != 0 && x->inflight >= cap) {
                    *at_cap = true;
                    if (!p->caps_vary)
                        return NULL; /* one cap for all: every later bucket is at or above it too */
                    continue;
                }
                return x;
            }
        }
        return NULL;
    }
    }
    return NULL;
}
