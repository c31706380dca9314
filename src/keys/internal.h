/*
 * Private to src/keys/: the store's layout and the helpers its files share (keys.c: the table, admission and
 * management; keys_json.c: snapshot and admin renderings; keys_file.c: the file backend).
 */
#ifndef K2A_KEYS_INTERNAL_H
#define K2A_KEYS_INTERNAL_H

#include "keys/keys.h"

struct st_k2a_keys_t {
    k2a_keys_config_t cfg;
    _Atomic(k2a_key_t *) *buckets; /* fixed size (a power of two >= max_keys): never resized, so readers need no lock */
    size_t mask;
    pthread_mutex_t wmu; /* writers: the chains, `all`, names */
    k2a_key_t **all;     /* live keys in creation order (the built-in one first) */
    size_t nall, capall;
    k2a_key_t **retired; /* deleted keys, freed with the store */
    size_t nretired;
    k2a_key_t *builtin;
    atomic_size_t nlive; /* managed keys */
    atomic_bool dirty;   /* usage changed since the last encode */
    k2a_keys_backend_t *backend;
    pthread_mutex_t fmu;  /* one backend write at a time */
    uint64_t gen;         /* generation of the last encoded snapshot (under wmu) */
    uint64_t written_gen; /* generation of the last written one (under fmu) */
};

k2a_key_t *k2a_keys_new_key(k2a_keys_t *ks);
/* Deletes a key recording ver (0 = the next one) as its deletion's version; synced: the deletion came from the shared store. */
int k2a_keys_delete_at(k2a_keys_t *ks, const char *id, int64_t ver, bool synced);
/* Links a key (wmu held) and counts it live. */
int k2a_keys_link_live(k2a_keys_t *ks, k2a_key_t *k);
/* The live key with this id (wmu held), or NULL. */
k2a_key_t *k2a_keys_by_id(k2a_keys_t *ks, const char *id);
void k2a_keys_free_key(k2a_key_t *k);
/* Links a key built by decode (writer mutex not needed at start-up). */
int k2a_keys_insert(k2a_keys_t *ks, k2a_key_t *k);
int k2a_keys_set_models(k2a_key_t *k, char *const *models, size_t n);
k2a_key_day_t *k2a_keys_day_rec(k2a_key_t *k, int32_t day);
/* Restores a snapshot into a fresh store. Returns 0 or K2A_ECONFIG with a message in err. */
int k2a_keys_decode(k2a_keys_t *ks, const char *json, size_t len, char *err, size_t errlen);

#endif
