/*
 * Fast non-cryptographic randomness for identifiers (request ids, message ids, jitter): xoshiro256**
 * per thread, seeded from getrandom(). Secrets never come from here (use OpenSSL RAND_bytes).
 */
#ifndef K2A_CORE_RAND_H
#define K2A_CORE_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t k2a_rand_u64(void);

/* SplitMix64 (Steele, Lea, Flood 2014), the one copy: advances *state and returns the next value of its deterministic
 * sequence. It seeds the generator below, and drives whatever must be reproducible from a seed (the simulator's
 * scripts, tests). Not for secrets. */
static inline uint64_t k2a_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
/* Uniform in [0, n) (n > 0). */
uint64_t k2a_rand_below(uint64_t n);
/* Writes a random UUID v4 (36 chars + NUL) into out[37]. */
void k2a_rand_uuid4(char out[37]);
/* Writes n random characters of [0-9A-Za-z] plus a NUL into out[n + 1]. */
void k2a_rand_base62(char *out, size_t n);
/* Reseeds this thread's generator deterministically (tests). */
void k2a_rand_seed(uint64_t seed);

/* A source of random bytes handed to converters, so that tests can make ids deterministic. */
typedef void (*k2a_random_cb)(void *ctx, void *buf, size_t len);
/* The production source: bytes from this thread's generator (ctx unused). Not for secrets. */
void k2a_rand_fill(void *ctx, void *buf, size_t len);

#endif
