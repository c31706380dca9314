/*
 * The key store's side of the shared store (keys_sync.c): what a replica writes (keys changed since last written, deleted
 * ones as tombstones, never the secret) and how records read from the shared store are applied: a newer record adds,
 * updates or deletes a key, an older one changes nothing, a tombstone keeps a deleted key from coming back, invalid
 * records are ignored, and the undo of an admission a shared limit refused gives everything back.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "keys/keys.h"

#define T0 1796515200LL

static k2a_keys_t *store(void)
{
    k2a_keys_config_t cfg = {.max_keys = 10, .usage_days = 7, .metrics_max = 10, .client_token = "builtin-token-0123"};
    k2a_keys_t *ks = NULL;
    char err[256];
    assert_int_equal(k2a_keys_create(&cfg, NULL, &ks, err, sizeof(err)), 0);
    return ks;
}

static void add(k2a_keys_t *ks, const char *name, char secret[K2A_KEYS_SECRET_LEN + 1], char id[K2A_KEYS_ID_LEN + 1])
{
    k2a_keys_spec_t spec = {.has_name = true, .has_limits = true, .limits = {.rpm = 5, .concurrency = 2}};
    snprintf(spec.name, sizeof(spec.name), "%s", name);
    char err[200];
    assert_int_equal(k2a_keys_add(ks, &spec, T0, secret, id, err, sizeof(err)), 0);
}

static void free_recs(k2a_keys_remote_t *recs, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        k2a_keys_remote_clear(&recs[i]);
    free(recs);
}

static void test_collect_and_mark(void **state)
{
    (void)state;
    k2a_keys_t *ks = store();
    char secret[K2A_KEYS_SECRET_LEN + 1], id[K2A_KEYS_ID_LEN + 1];
    add(ks, "one", secret, id);
    k2a_keys_remote_t *recs;
    size_t n;
    assert_int_equal(k2a_keys_collect_changed(ks, &recs, &n), 0);
    assert_int_equal(n, 1); /* the managed key, not the built-in one */
    assert_string_equal(recs[0].id, id);
    assert_string_equal(recs[0].name, "one");
    assert_memory_equal(recs[0].prefix, secret, K2A_KEYS_PREFIX_LEN);
    assert_null(memmem(&recs[0], sizeof(recs[0]), secret, K2A_KEYS_SECRET_LEN)); /* the hash, never the secret */
    assert_false(recs[0].deleted);
    assert_true(recs[0].ver > 0);
    int64_t ver = recs[0].ver;
    k2a_keys_mark_synced(ks, id, ver);
    free_recs(recs, n);
    assert_int_equal(k2a_keys_collect_changed(ks, &recs, &n), 0);
    assert_int_equal(n, 0);
    free(recs);
    /* a change makes it due again, with a higher version */
    k2a_keys_spec_t spec = {.has_enabled = true, .enabled = false};
    char err[200];
    assert_int_equal(k2a_keys_update(ks, id, &spec, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_collect_changed(ks, &recs, &n), 0);
    assert_int_equal(n, 1);
    assert_true(recs[0].ver > ver);
    assert_false(recs[0].enabled);
    k2a_keys_mark_synced(ks, id, recs[0].ver);
    free_recs(recs, n);
    /* deleted: a tombstone */
    assert_int_equal(k2a_keys_delete(ks, id), 0);
    assert_int_equal(k2a_keys_collect_changed(ks, &recs, &n), 0);
    assert_int_equal(n, 1);
    assert_true(recs[0].deleted);
    free_recs(recs, n);
    k2a_keys_destroy(ks);
}

static void test_apply(void **state)
{
    (void)state;
    k2a_keys_t *a = store(), *b = store();
    char secret[K2A_KEYS_SECRET_LEN + 1], id[K2A_KEYS_ID_LEN + 1];
    add(a, "shared", secret, id);
    k2a_keys_remote_t *recs;
    size_t n;
    assert_int_equal(k2a_keys_collect_changed(a, &recs, &n), 0);
    assert_int_equal(n, 1);
    /* B learns the key: the secret made on A now works on B */
    assert_null(k2a_keys_lookup(b, secret, strlen(secret)));
    assert_int_equal(k2a_keys_apply_remote(b, &recs[0]), 1);
    k2a_key_t *kb = k2a_keys_lookup(b, secret, strlen(secret));
    assert_non_null(kb);
    assert_string_equal(kb->id, id);
    assert_int_equal(kb->limits.concurrency, 2);
    assert_int_equal(k2a_keys_count(b), 1);
    /* applied records are not written back */
    k2a_keys_remote_t *again;
    size_t m;
    assert_int_equal(k2a_keys_collect_changed(b, &again, &m), 0);
    assert_int_equal(m, 0);
    free(again);
    /* the same record again, or an older one: nothing changes */
    assert_int_equal(k2a_keys_apply_remote(b, &recs[0]), 0);
    k2a_keys_remote_t old = recs[0];
    old.nmodels = 0;
    old.ver -= 10;
    old.enabled = false;
    assert_int_equal(k2a_keys_apply_remote(b, &old), 0);
    assert_int_equal(k2a_keys_check(kb, T0), K2A_KEYS_OK);
    /* a newer one: disabled, new limits */
    k2a_keys_remote_t upd = recs[0];
    upd.nmodels = 0;
    upd.ver += 10;
    upd.enabled = false;
    upd.limits.rpm = 9;
    assert_int_equal(k2a_keys_apply_remote(b, &upd), 1);
    assert_int_equal(k2a_keys_check(kb, T0), K2A_KEYS_DISABLED);
    assert_int_equal(kb->limits.rpm, 9);
    /* invalid records are ignored */
    k2a_keys_remote_t bad = upd;
    bad.ver += 10;
    strcpy(bad.name, "bad name!");
    assert_int_equal(k2a_keys_apply_remote(b, &bad), 0);
    bad = upd;
    bad.ver += 10;
    bad.limits.rpm = -1;
    assert_int_equal(k2a_keys_apply_remote(b, &bad), 0);
    bad = upd;
    strcpy(bad.id, "default");
    assert_int_equal(k2a_keys_apply_remote(b, &bad), 0);
    /* a tombstone deletes it; the live record, older than the tombstone, cannot bring it back */
    k2a_keys_remote_t del = upd;
    del.ver += 20;
    del.deleted = true;
    assert_int_equal(k2a_keys_apply_remote(b, &del), 1);
    assert_null(k2a_keys_lookup(b, secret, strlen(secret)));
    assert_int_equal(k2a_keys_count(b), 0);
    assert_int_equal(k2a_keys_apply_remote(b, &upd), 0);
    assert_null(k2a_keys_lookup(b, secret, strlen(secret)));
    free_recs(recs, n);
    k2a_keys_destroy(a);
    k2a_keys_destroy(b);
}

static void test_admit_undo(void **state)
{
    (void)state;
    k2a_keys_t *ks = store();
    char secret[K2A_KEYS_SECRET_LEN + 1], id[K2A_KEYS_ID_LEN + 1];
    add(ks, "undo", secret, id); /* rpm 5, concurrency 2 */
    k2a_key_t *k = k2a_keys_lookup(ks, secret, strlen(secret));
    int64_t retry;
    for (int i = 0; i < 10; ++i) { /* admitted and taken back: never counts against the limits */
        assert_int_equal(k2a_keys_admit(k, NULL, 0, T0 * 1000 + i, &retry), K2A_KEYS_OK);
        k2a_keys_admit_undo(k, T0 * 1000 + i);
    }
    assert_int_equal(k->inflight, 0);
    assert_int_equal(k->window_len, 0);
    assert_int_equal(k->ndays == 0 ? 0 : (int)k->days[k->ndays - 1].requests, 0);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, T0 * 1000 + 20, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, T0 * 1000 + 21, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, T0 * 1000 + 22, &retry), K2A_KEYS_CONCURRENCY);
    k2a_keys_destroy(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_collect_and_mark),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_admit_undo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
