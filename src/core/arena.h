/*
 * A per-request bump allocator: allocations are never freed one by one, the whole arena is released
 * at the end of the request. Chunks come from malloc; big allocations get a chunk of their own. An
 * arena has a byte limit so that a hostile request cannot make it grow without bound.
 */
#ifndef K2A_CORE_ARENA_H
#define K2A_CORE_ARENA_H

#include <stddef.h>
#include "core/str.h"

typedef struct st_k2a_arena_chunk_t k2a_arena_chunk_t;

typedef struct st_k2a_arena_t {
    k2a_arena_chunk_t *chunks;
    char *cur;
    size_t avail;
    size_t total; /* bytes obtained from malloc so far */
    size_t max;   /* 0 = no limit */
} k2a_arena_t;

void k2a_arena_init(k2a_arena_t *a, size_t max);
void k2a_arena_dispose(k2a_arena_t *a);
/* Returns 16-byte aligned memory, or NULL when out of memory or past the limit. */
void *k2a_arena_alloc(k2a_arena_t *a, size_t n);
void *k2a_arena_calloc(k2a_arena_t *a, size_t n);
/* Copies n bytes (and a NUL after them); NULL on failure. */
char *k2a_arena_strndup(k2a_arena_t *a, const char *s, size_t n);
k2a_str_t k2a_arena_strdup_str(k2a_arena_t *a, k2a_str_t s);
/* Grows an array stored in the arena: returns a new array with room for *cap (doubled) elements, old ones copied. */
void *k2a_arena_grow(k2a_arena_t *a, void *old, size_t elem_size, size_t len, size_t *cap);

#endif
