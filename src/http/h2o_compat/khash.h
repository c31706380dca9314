/*
 * The part of klib's khash that h2o's <h2o/http2_internal.h> uses, for limits.c (Debian's libh2o-dev installs that
 * header but not the khash.h it includes). The layout is klib's, as libh2o 2.2.5 was built with it; kh_get is a plain
 * scan here (limits.c never looks a stream up, it walks them).
 */
#ifndef K2A_H2O_COMPAT_KHASH_H
#define K2A_H2O_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint32_t;
typedef uint64_t khint64_t;
typedef khint32_t khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define kh_end(h) ((h)->n_buckets)
#define kh_val(h, x) ((h)->vals[x])
#define kh_exist(h, x) (!(((h)->flags[(x) >> 4] >> (((x)&0xfU) << 1)) & 3))
#define kh_get(name, h, k) kh_get_##name(h, k)

#define KHASH_MAP_INIT_INT64(name, khval_t)                                                                                        \
    typedef struct kh_##name##_s {                                                                                                 \
        khint_t n_buckets, size, n_occupied, upper_bound;                                                                          \
        khint32_t *flags;                                                                                                          \
        khint64_t *keys;                                                                                                           \
        khval_t *vals;                                                                                                             \
    } kh_##name##_t;                                                                                                               \
    static inline khint_t kh_get_##name(const kh_##name##_t *h, khint64_t key)                                                     \
    {                                                                                                                              \
        for (khint_t i = 0; i < h->n_buckets; ++i)                                                                                 \
            if (kh_exist(h, i) && h->keys[i] == key)                                                                               \
                return i;                                                                                                          \
        return h->n_buckets;                                                                                                       \
    }

#endif
