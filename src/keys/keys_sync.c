/*
 * The key store's side of a shared store (keys.h "the shared store"): records to write (keys changed since they were
 * last written, deleted ones as tombstones) and records read from it applied to the local table when newer. A record
 * holds the key's SHA-256 and display prefix, never the secret; usage and counters are not part of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "keys/internal.h"

void k2a_keys_remote_clear(k2a_keys_remote_t *r)
{
    for (size_t i = 0; i < r->nmodels; ++i)
        free(r->models[i]);
    r->nmodels = 0;
}

/* Copies k into rec (key mutex held). */
static int to_remote(const k2a_key_t *k, bool deleted, k2a_keys_remote_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    memcpy(rec->id, k->id, sizeof(rec->id));
    memcpy(rec->hash, k->hash, sizeof(rec->hash));
    memcpy(rec->prefix, k->prefix, sizeof(rec->prefix));
    memcpy(rec->name, k->name, sizeof(rec->name));
    rec->created_at = k->created_at;
    rec->expires_at = k->expires_at;
    rec->ver = k->ver;
    rec->enabled = k->enabled;
    rec->deleted = deleted;
    rec->limits = k->limits;
    for (size_t i = 0; i < k->nmodels; ++i) {
        if ((rec->models[i] = strdup(k->models[i])) == NULL) {
            k2a_keys_remote_clear(rec);
            return K2A_ENOMEM;
        }
        rec->nmodels = i + 1;
    }
    return 0;
}

int k2a_keys_collect_changed(k2a_keys_t *ks, k2a_keys_remote_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&ks->wmu);
    size_t cap = ks->nall + ks->nretired, len = 0;
    k2a_keys_remote_t *recs = cap > 0 ? calloc(cap, sizeof(*recs)) : NULL;
    int r = cap > 0 && recs == NULL ? K2A_ENOMEM : 0;
    for (size_t i = 0; i < cap && r == 0; ++i) {
        bool deleted = i >= ks->nall;
        k2a_key_t *k = deleted ? ks->retired[i - ks->nall] : ks->all[i];
        if (k->builtin)
            continue;
        pthread_mutex_lock(&k->mu);
        if (k->ver > k->synced_ver && (r = to_remote(k, deleted, &recs[len])) == 0)
            ++len;
        pthread_mutex_unlock(&k->mu);
    }
    pthread_mutex_unlock(&ks->wmu);
    if (r != 0) {
        for (size_t i = 0; i < len; ++i)
            k2a_keys_remote_clear(&recs[i]);
        free(recs);
        return r;
    }
    *out = recs;
    *n = len;
    return 0;
}

void k2a_keys_mark_synced(k2a_keys_t *ks, const char *id, int64_t ver)
{
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = k2a_keys_by_id(ks, id);
    for (size_t i = 0; k == NULL && i < ks->nretired; ++i)
        if (strcmp(ks->retired[i]->id, id) == 0)
            k = ks->retired[i];
    if (k != NULL) {
        pthread_mutex_lock(&k->mu);
        if (ver > k->synced_ver)
            k->synced_ver = ver;
        pthread_mutex_unlock(&k->mu);
    }
    pthread_mutex_unlock(&ks->wmu);
}

static bool valid_record(const k2a_keys_remote_t *rec)
{
    char err[200];
    if (strlen(rec->id) != K2A_KEYS_ID_LEN || strcmp(rec->id, "default") == 0 || rec->ver <= 0)
        return false;
    if (rec->deleted)
        return true;
    if (k2a_keys_valid_name(rec->name, strlen(rec->name), err, sizeof(err)) != 0 ||
        k2a_keys_valid_limits(&rec->limits, err, sizeof(err)) != 0 || rec->nmodels > K2A_KEYS_MODELS_MAX)
        return false;
    for (size_t i = 0; i < rec->nmodels; ++i)
        if (k2a_keys_valid_pattern(rec->models[i], strlen(rec->models[i]), err, sizeof(err)) != 0)
            return false;
    return true;
}

/* A deleted key of this id (wmu held). */
static bool retired_newer(k2a_keys_t *ks, const char *id, int64_t ver)
{
    for (size_t i = 0; i < ks->nretired; ++i)
        if (strcmp(ks->retired[i]->id, id) == 0 && ks->retired[i]->ver >= ver)
            return true;
    return false;
}

int k2a_keys_apply_remote(k2a_keys_t *ks, const k2a_keys_remote_t *rec)
{
    if (!valid_record(rec))
        return 0;
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = k2a_keys_by_id(ks, rec->id);
    if (k != NULL && k->builtin) {
        pthread_mutex_unlock(&ks->wmu);
        return 0;
    }
    if (rec->deleted) {
        bool newer = k != NULL && rec->ver > k->ver;
        pthread_mutex_unlock(&ks->wmu);
        return newer && k2a_keys_delete_at(ks, rec->id, rec->ver, true) == 0 ? 1 : 0;
    }
    int r = 0;
    if (k != NULL) {
        pthread_mutex_lock(&k->mu);
        if (rec->ver > k->ver && k2a_keys_set_models(k, rec->models, rec->nmodels) == 0) {
            snprintf(k->name, sizeof(k->name), "%s", rec->name);
            k->enabled = rec->enabled;
            k->expires_at = rec->expires_at;
            k->limits = rec->limits;
            k->ver = k->synced_ver = rec->ver;
            r = 1;
        }
        pthread_mutex_unlock(&k->mu);
    } else if (!retired_newer(ks, rec->id, rec->ver) && atomic_load(&ks->nlive) < ks->cfg.max_keys &&
               k2a_keys_find(ks, rec->hash) == NULL && (k = k2a_keys_new_key(ks)) != NULL) {
        memcpy(k->id, rec->id, sizeof(k->id));
        memcpy(k->hash, rec->hash, sizeof(k->hash));
        memcpy(k->prefix, rec->prefix, sizeof(k->prefix));
        memcpy(k->name, rec->name, sizeof(k->name));
        k->created_at = rec->created_at;
        k->expires_at = rec->expires_at;
        k->enabled = rec->enabled;
        k->limits = rec->limits;
        k->ver = k->synced_ver = rec->ver;
        if (k2a_keys_set_models(k, rec->models, rec->nmodels) != 0 || (r = k2a_keys_link_live(ks, k)) != 0) {
            k2a_keys_free_key(k);
            r = r != 0 ? r : K2A_ENOMEM;
        } else {
            r = 1;
        }
    }
    pthread_mutex_unlock(&ks->wmu);
    return r;
}
