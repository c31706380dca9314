/*
 * kiro-sim's request-body tree: the same yajl_val tree yajl_tree_parse builds (same parser, same lexer, same UTF-8
 * check, the same keys, values and order), built in one arena that is reset, not freed node by node. yajl_tree_parse
 * costs a malloc per value, a realloc per object member and array element and a free per node; here the handle's own
 * buffers, the nodes and the strings come from a bump allocator whose first block is kept between requests.
 *
 * It only answers for bodies the strict path would parse the same way: comments are off (a comment takes the strict
 * path, which rejects it by its own rule), nesting stops at the caller's limit, and a number that is not a plain integer
 * of at most 15 digits stops the parse (yajl_tree's strtod and integer flags are left to yajl_tree). Any stop returns
 * NULL and the caller runs its original checks and yajl_tree_parse, which give the answer they always gave.
 */
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "sim/validate.h"

#define JT_BLOCK (64 * 1024)
#define JT_ALIGN 16

typedef struct st_jt_block_t {
    struct st_jt_block_t *next;
    size_t cap, used;
    max_align_t data[];
} jt_block_t;

/* One pending member: its key (NULL in arrays) and value. */
typedef struct st_jt_item_t {
    const char *key;
    yajl_val value;
} jt_item_t;

/* One open container: its node and where its members start in the item stack. */
typedef struct st_jt_level_t {
    yajl_val node;
    size_t first;
    const char *key; /* the key this container is the value of (objects only) */
} jt_level_t;

typedef struct st_jt_t {
    k2a_sim_jtree_t *t;
    jt_item_t *items;
    size_t nitems, items_cap;
    jt_level_t *levels;
    size_t nlevels, max_depth;
    const char *key; /* the pending key of the innermost object */
    yajl_val root;
    bool stop;
} jt_t;

static void *arena_alloc(k2a_sim_jtree_t *t, size_t n)
{
    n = (n + JT_ALIGN - 1) & ~(size_t)(JT_ALIGN - 1);
    jt_block_t *b = t->head;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > JT_BLOCK ? n : JT_BLOCK;
        jt_block_t *nb = malloc(sizeof(*nb) + cap);
        if (nb == NULL)
            return NULL;
        nb->cap = cap;
        nb->used = 0;
        nb->next = b;
        t->head = b = nb;
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    return p;
}

/* yajl's allocator: every block carries its size in front, for realloc. free is a no-op (the arena is reset). */
static void *ya_malloc(void *ctx, size_t n)
{
    size_t *p = arena_alloc(ctx, n + JT_ALIGN);
    if (p == NULL)
        return NULL;
    *p = n;
    return (char *)p + JT_ALIGN;
}

static void *ya_realloc(void *ctx, void *old, size_t n)
{
    if (old == NULL)
        return ya_malloc(ctx, n);
    size_t had = *(size_t *)((char *)old - JT_ALIGN);
    if (n <= had)
        return old;
    void *p = ya_malloc(ctx, n);
    if (p != NULL)
        memcpy(p, old, had);
    return p;
}

static void ya_free(void *ctx, void *p)
{
    (void)ctx;
    (void)p;
}

void k2a_sim_jtree_reset(k2a_sim_jtree_t *t)
{
    jt_block_t *b = t->head;
    while (b != NULL && b->next != NULL) {
        jt_block_t *next = b->next;
        free(b);
        b = next;
    }
    if (b != NULL) {
        if (b->cap != JT_BLOCK) {
            free(b);
            b = NULL;
        } else {
            b->used = 0;
        }
    }
    t->head = b;
}

void k2a_sim_jtree_dispose(k2a_sim_jtree_t *t)
{
    while (t->head != NULL) {
        jt_block_t *next = t->head->next;
        free(t->head);
        t->head = next;
    }
}

static yajl_val node(jt_t *j, yajl_type type)
{
    yajl_val v = arena_alloc(j->t, sizeof(*v));
    if (v != NULL) {
        memset(v, 0, sizeof(*v));
        v->type = type;
    }
    return v;
}

static bool grow(jt_t *j, void **base, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap != 0 ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = arena_alloc(j->t, ncap * size);
    if (p == NULL)
        return false;
    if (*cap != 0)
        memcpy(p, *base, *cap * size);
    *base = p;
    *cap = ncap;
    return true;
}

/* A finished value: the root, or a member of the innermost container. */
static int add(jt_t *j, yajl_val v)
{
    if (v == NULL)
        return 0;
    if (j->nlevels == 0) {
        j->root = v;
        return 1;
    }
    if (!grow(j, (void **)&j->items, &j->items_cap, j->nitems + 1, sizeof(*j->items)))
        return 0;
    j->items[j->nitems].key = j->key;
    j->items[j->nitems].value = v;
    ++j->nitems;
    j->key = NULL;
    return 1;
}

static char *copy_str(jt_t *j, const unsigned char *s, size_t n)
{
    char *p = arena_alloc(j->t, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int on_null(void *ctx)
{
    return add(ctx, node(ctx, yajl_t_null));
}

static int on_bool(void *ctx, int b)
{
    return add(ctx, node(ctx, b ? yajl_t_true : yajl_t_false));
}

/* Plain integers of at most 15 digits only: their long long and their double are exact, both flags set. */
static int on_number(void *ctx, const char *s, size_t n)
{
    jt_t *j = ctx;
    size_t i = n != 0 && s[0] == '-' ? 1 : 0;
    if (n - i == 0 || n - i > 15) {
        j->stop = true;
        return 0;
    }
    long long x = 0;
    for (size_t k = i; k < n; ++k) {
        if (s[k] < '0' || s[k] > '9') {
            j->stop = true;
            return 0;
        }
        x = x * 10 + (s[k] - '0');
    }
    yajl_val v = node(j, yajl_t_number);
    if (v == NULL || (v->u.number.r = copy_str(j, (const unsigned char *)s, n)) == NULL)
        return 0;
    v->u.number.i = i != 0 ? -x : x;
    v->u.number.d = (double)v->u.number.i;
    if (i != 0 && x == 0)
        v->u.number.d = -0.0; /* strtod("-0") */
    v->u.number.flags = YAJL_NUMBER_INT_VALID | YAJL_NUMBER_DOUBLE_VALID;
    return add(j, v);
}

static int on_string(void *ctx, const unsigned char *s, size_t n)
{
    jt_t *j = ctx;
    yajl_val v = node(j, yajl_t_string);
    if (v == NULL || (v->u.string = copy_str(j, s, n)) == NULL)
        return 0;
    return add(j, v);
}

static int on_key(void *ctx, const unsigned char *s, size_t n)
{
    jt_t *j = ctx;
    return (j->key = copy_str(j, s, n)) != NULL;
}

static int open_level(jt_t *j, yajl_type type)
{
    if (j->nlevels >= j->max_depth) {
        j->stop = true;
        return 0;
    }
    yajl_val v = node(j, type);
    if (v == NULL)
        return 0;
    jt_level_t *l = &j->levels[j->nlevels++];
    l->node = v;
    l->first = j->nitems;
    l->key = j->key;
    j->key = NULL;
    return 1;
}

static int close_level(jt_t *j)
{
    jt_level_t *l = &j->levels[--j->nlevels];
    yajl_val v = l->node;
    size_t n = j->nitems - l->first;
    jt_item_t *it = j->items + l->first;
    if (n != 0) {
        yajl_val *values = arena_alloc(j->t, n * sizeof(*values));
        if (values == NULL)
            return 0;
        for (size_t k = 0; k < n; ++k)
            values[k] = it[k].value;
        if (v->type == yajl_t_object) {
            const char **keys = arena_alloc(j->t, n * sizeof(*keys));
            if (keys == NULL)
                return 0;
            for (size_t k = 0; k < n; ++k)
                keys[k] = it[k].key;
            v->u.object.keys = keys;
            v->u.object.values = values;
            v->u.object.len = n;
        } else {
            v->u.array.values = values;
            v->u.array.len = n;
        }
    }
    j->nitems = l->first;
    j->key = l->key;
    return add(j, v);
}

static int on_start_map(void *ctx)
{
    return open_level(ctx, yajl_t_object);
}

static int on_start_array(void *ctx)
{
    return open_level(ctx, yajl_t_array);
}

static int on_end(void *ctx)
{
    return close_level(ctx);
}

static const yajl_callbacks callbacks = {
    on_null, on_bool, NULL, NULL, on_number, on_string, on_start_map, on_key, on_end, on_start_array, on_end,
};

yajl_val k2a_sim_jtree_parse(k2a_sim_jtree_t *t, const char *json, size_t len, size_t max_depth)
{
    k2a_sim_jtree_reset(t);
    jt_t j = {.t = t, .max_depth = max_depth};
    j.levels = arena_alloc(t, (max_depth + 1) * sizeof(*j.levels));
    if (j.levels == NULL)
        return NULL;
    yajl_alloc_funcs af = {ya_malloc, ya_realloc, ya_free, t};
    yajl_handle h = yajl_alloc(&callbacks, &af, &j);
    if (h == NULL)
        return NULL;
    /* comments stay off: yajl_tree_parse allows them, the strict path rejects them by its own rule */
    if (yajl_parse(h, (const unsigned char *)json, len) != yajl_status_ok || yajl_complete_parse(h) != yajl_status_ok || j.stop ||
        j.nlevels != 0)
        return NULL;
    return j.root;
}
