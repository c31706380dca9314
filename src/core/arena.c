/*
 * Bump allocator for request-lifetime data (see arena.h). Chunks are 16 KiB or the size of one big
 * allocation; nothing is freed before k2a_arena_dispose.
 */
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include "core/arena.h"

struct st_k2a_arena_chunk_t {
    k2a_arena_chunk_t *next;
    size_t size;
    _Alignas(16) char data[];
};

#define CHUNK_SIZE (16 * 1024 - sizeof(k2a_arena_chunk_t))

void k2a_arena_init(k2a_arena_t *a, size_t max)
{
    memset(a, 0, sizeof(*a));
    a->max = max;
}

void k2a_arena_dispose(k2a_arena_t *a)
{
    k2a_arena_chunk_t *c = a->chunks, *next;
    for (; c != NULL; c = next) {
        next = c->next;
        free(c);
    }
    a->chunks = NULL;
    a->cur = NULL;
    a->avail = 0;
    a->total = 0;
}

static k2a_arena_chunk_t *new_chunk(k2a_arena_t *a, size_t size)
{
    if (a->max != 0 && (size > a->max || a->total > a->max - size))
        return NULL;
    k2a_arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->size = size;
    a->total += size;
    return c;
}

void *k2a_arena_alloc(k2a_arena_t *a, size_t n)
{
    if (n > SIZE_MAX - 32)
        return NULL;
    n = (n + 15) & ~(size_t)15;
    if (n == 0)
        n = 16;
    if (n <= a->avail) {
        void *p = a->cur;
        a->cur += n;
        a->avail -= n;
        return p;
    }
    if (n > CHUNK_SIZE / 4) {
        /* a big allocation gets its own chunk, linked behind the current one so the current stays in use */
        k2a_arena_chunk_t *c = new_chunk(a, n);
        if (c == NULL)
            return NULL;
        if (a->chunks != NULL) {
            c->next = a->chunks->next;
            a->chunks->next = c;
        } else {
            c->next = NULL;
            a->chunks = c;
        }
        return c->data;
    }
    k2a_arena_chunk_t *c = new_chunk(a, CHUNK_SIZE);
    if (c == NULL)
        return NULL;
    c->next = a->chunks;
    a->chunks = c;
    a->cur = c->data + n;
    a->avail = CHUNK_SIZE - n;
    return c->data;
}

void *k2a_arena_calloc(k2a_arena_t *a, size_t n)
{
    void *p = k2a_arena_alloc(a, n);
    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *k2a_arena_strndup(k2a_arena_t *a, const char *s, size_t n)
{
    char *p = k2a_arena_alloc(a, n + 1);
    if (p == NULL)
        return NULL;
    if (n != 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

k2a_str_t k2a_arena_strdup_str(k2a_arena_t *a, k2a_str_t s)
{
    char *p = k2a_arena_strndup(a, s.base, s.len);
    return p != NULL ? k2a_str(p, s.len) : K2A_STR_NULL;
}

void *k2a_arena_grow(k2a_arena_t *a, void *old, size_t elem_size, size_t len, size_t *cap)
{
    size_t ncap = *cap < 4 ? 4 : *cap * 2;
    if (ncap > SIZE_MAX / elem_size)
        return NULL;
    void *p = k2a_arena_alloc(a, ncap * elem_size);
    if (p == NULL)
        return NULL;
    if (len != 0)
        memcpy(p, old, len * elem_size);
    *cap = ncap;
    return p;
}
