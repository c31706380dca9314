/*
 * xoshiro256** per thread (see rand.h), seeded lazily from getrandom().
 */
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "core/rand.h"

static __thread uint64_t state[4];
static __thread int seeded;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void k2a_rand_seed(uint64_t seed)
{
    for (int i = 0; i < 4; ++i)
        state[i] = k2a_splitmix64(&seed);
    seeded = 1;
}

static void ensure_seeded(void)
{
    if (seeded)
        return;
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)&ts;
    }
    k2a_rand_seed(seed);
}

uint64_t k2a_rand_u64(void)
{
    ensure_seeded();
    uint64_t result = rotl(state[1] * 5, 7) * 9, t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

uint64_t k2a_rand_below(uint64_t n)
{
    /* rejection sampling keeps the distribution uniform */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, x;
    do {
        x = k2a_rand_u64();
    } while (x >= limit);
    return x % n;
}

void k2a_rand_uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    uint64_t a = k2a_rand_u64(), c = k2a_rand_u64();
    memcpy(b, &a, 8);
    memcpy(b + 8, &c, 8);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    char *p = out;
    for (int i = 0; i < 16; ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *p++ = '-';
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 15];
    }
    *p = '\0';
}

void k2a_rand_base62(char *out, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for (size_t i = 0; i < n; ++i)
        out[i] = alphabet[k2a_rand_below(62)];
    out[n] = '\0';
}

void k2a_rand_fill(void *ctx, void *buf, size_t len)
{
    unsigned char *out = buf;
    while (len != 0) {
        uint64_t v = k2a_rand_u64();
        size_t n = len < sizeof(v) ? len : sizeof(v);
        memcpy(out, &v, n);
        out += n;
        len -= n;
    }
}
