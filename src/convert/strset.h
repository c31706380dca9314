/*
 * A fixed-capacity open-addressing set of borrowed strings in an arena, for the normalizer's id and name
 * lookups (tool_use ids, tool names). Sized once for the number of insertions the caller expects, so lookups
 * stay O(1) even for hostile requests with thousands of tool calls. Module-internal.
 */
#ifndef K2A_CONVERT_STRSET_H
#define K2A_CONVERT_STRSET_H

#include <stdbool.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/str.h"

typedef struct st_k2a_strset_t {
    k2a_str_t *slots;
    size_t mask;
    size_t n, max;
    bool nocase; /* ASCII case-insensitive */
} k2a_strset_t;

static inline char k2a_strset_fold(char c, bool nocase)
{
    return nocase && c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

static inline uint64_t k2a_strset_hash(k2a_str_t k, bool nocase)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < k.len; ++i) {
        h ^= (unsigned char)k2a_strset_fold(k.base[i], nocase);
        h *= 1099511628211ull;
    }
    return h;
}

static inline bool k2a_strset_eq(k2a_str_t a, k2a_str_t b, bool nocase)
{
    if (a.len != b.len)
        return false;
    for (size_t i = 0; i < a.len; ++i)
        if (k2a_strset_fold(a.base[i], nocase) != k2a_strset_fold(b.base[i], nocase))
            return false;
    return true;
}

/* Room for at most max insertions. Returns false when out of memory. */
static inline bool k2a_strset_init(k2a_strset_t *s, size_t max, bool nocase, k2a_arena_t *arena)
{
    size_t cap = 8;
    while (cap < max * 2 + 1)
        cap <<= 1;
    s->slots = (k2a_str_t *)k2a_arena_calloc(arena, cap * sizeof(k2a_str_t));
    s->mask = cap - 1;
    s->n = 0;
    s->max = max;
    s->nocase = nocase;
    return s->slots != NULL;
}

static inline bool k2a_strset_has(const k2a_strset_t *s, k2a_str_t k)
{
    for (size_t i = (size_t)k2a_strset_hash(k, s->nocase) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slots[i].base == NULL)
            return false;
        if (k2a_strset_eq(s->slots[i], k, s->nocase))
            return true;
    }
}

/* Adds k (borrowed). Returns true when it was not in the set yet. Past max insertions nothing is added. */
static inline bool k2a_strset_add(k2a_strset_t *s, k2a_str_t k)
{
    if (k.base == NULL)
        k = k2a_str("", 0);
    size_t i = (size_t)k2a_strset_hash(k, s->nocase) & s->mask;
    for (;; i = (i + 1) & s->mask) {
        if (s->slots[i].base == NULL)
            break;
        if (k2a_strset_eq(s->slots[i], k, s->nocase))
            return false;
    }
    if (s->n == s->max)
        return true;
    s->slots[i] = k;
    ++s->n;
    return true;
}

#endif
