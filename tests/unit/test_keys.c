/*
 * Key store tests: validation and glob patterns, the UTC calendar, lookup among 10 000 keys (and after a
 * delete), the limit arithmetic (sliding RPM window, concurrency slots, credits per day and month with the
 * one-request overshoot, tokens per day, the model check), usage days kept and pruned, the snapshot round trip
 * through the file backend (no secret in the file), /metrics' bounded labels, and admission from several
 * threads at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/buf.h"
#include "core/errors.h"
#include "keys/keys.h"

#define T0 1796515200LL /* a UTC midnight (2026-12-06) */
#define MS(s) ((int64_t)(s)*1000)

static k2a_keys_t *store(size_t max, int days, const char *client_token, k2a_keys_backend_t *b)
{
    k2a_keys_config_t cfg = {.max_keys = max, .usage_days = days, .metrics_max = 100, .client_token = client_token};
    k2a_keys_t *ks = NULL;
    char err[256];
    int r = k2a_keys_create(&cfg, b, &ks, err, sizeof(err));
    if (r != 0)
        fprintf(stderr, "create: %s\n", err);
    assert_int_equal(r, 0);
    return ks;
}

static k2a_key_t *add(k2a_keys_t *ks, const char *name, const k2a_key_limits_t *l, char secret[K2A_KEYS_SECRET_LEN + 1])
{
    k2a_keys_spec_t spec = {.has_name = true};
    snprintf(spec.name, sizeof(spec.name), "%s", name);
    if (l != NULL) {
        spec.has_limits = true;
        spec.limits = *l;
    }
    char id[K2A_KEYS_ID_LEN + 1], err[200], local[K2A_KEYS_SECRET_LEN + 1];
    if (secret == NULL)
        secret = local;
    assert_int_equal(k2a_keys_add(ks, &spec, T0, secret, id, err, sizeof(err)), 0);
    k2a_key_t *k = k2a_keys_lookup(ks, secret, strlen(secret));
    assert_non_null(k);
    assert_string_equal(k->id, id);
    return k;
}

static void test_validation_and_glob(void **state)
{
    char err[200];
    assert_int_equal(k2a_keys_valid_name("alice", 5, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_valid_name("team-a.bob_2", 12, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_valid_name("", 0, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_keys_valid_name("_other", 6, err, sizeof(err)), K2A_EINVAL); /* reserved for /metrics */
    assert_int_equal(k2a_keys_valid_name("a b", 3, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_keys_valid_name("a\"b", 3, err, sizeof(err)), K2A_EINVAL);
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name));
    assert_int_equal(k2a_keys_valid_name(long_name, 65, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_keys_valid_name(long_name, 64, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_valid_pattern("claude-*-4.5", 12, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_valid_pattern("a b", 3, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_keys_valid_pattern("a\0b", 3, err, sizeof(err)), K2A_EINVAL);
    k2a_key_limits_t l = {.rpm = 10001};
    assert_int_equal(k2a_keys_valid_limits(&l, err, sizeof(err)), K2A_EINVAL);
    l = (k2a_key_limits_t){.credits_day = -1};
    assert_int_equal(k2a_keys_valid_limits(&l, err, sizeof(err)), K2A_EINVAL);
    l = (k2a_key_limits_t){.rpm = 10000, .concurrency = 5, .credits_day = 1.5, .credits_month = 30, .tokens_day = 1000000};
    assert_int_equal(k2a_keys_valid_limits(&l, err, sizeof(err)), 0);

    assert_true(k2a_keys_glob("claude-*", "claude-sonnet-4-5", 17));
    assert_true(k2a_keys_glob("CLAUDE-HAIKU-*", "claude-haiku-4-5", 16));
    assert_true(k2a_keys_glob("claude-?aiku-*", "claude-haiku-4-5", 16));
    assert_true(k2a_keys_glob("*", "", 0));
    assert_true(k2a_keys_glob("*opus*", "claude-opus-4-8", 15));
    assert_false(k2a_keys_glob("claude-haiku-*", "claude-sonnet-4-5", 17));
    assert_false(k2a_keys_glob("claude", "claude-sonnet", 13));
    assert_false(k2a_keys_glob("claude-sonnet-4-5x", "claude-sonnet-4-5", 17));
    /* a name that only matches as a prefix of a longer buffer: len bounds the match */
    assert_true(k2a_keys_glob("abc", "abcdef", 3));
}

static void test_calendar(void **state)
{
    assert_int_equal(k2a_keys_day_of(T0), T0 / 86400);
    assert_int_equal(k2a_keys_day_of(T0 + 86399), T0 / 86400);
    assert_int_equal(k2a_keys_next_day_s(T0 + 5), T0 + 86400);
    char date[11];
    k2a_keys_date_str(k2a_keys_day_of(T0), date);
    assert_string_equal(date, "2026-12-06");
    k2a_keys_date_str(0, date);
    assert_string_equal(date, "1970-01-01");
    /* December rolls over into January of the next year */
    assert_int_equal(k2a_keys_month_of(T0), (2026 - 1970) * 12 + 11);
    assert_int_equal(k2a_keys_next_month_s(T0), 1798761600LL); /* 2027-01-01 */
    assert_int_equal(k2a_keys_month_of(1798761600LL), (2027 - 1970) * 12);
}

static void test_lookup_among_10000(void **state)
{
    k2a_keys_t *ks = store(10000, 90, "the-env-token", NULL);
    static char secrets[10000][K2A_KEYS_SECRET_LEN + 1];
    static k2a_key_t *keys[10000];
    for (int i = 0; i < 10000; ++i) {
        char name[32];
        snprintf(name, sizeof(name), "key-%d", i);
        keys[i] = add(ks, name, NULL, secrets[i]);
    }
    assert_int_equal(k2a_keys_count(ks), 10000);
    for (int i = 0; i < 10000; ++i)
        assert_ptr_equal(k2a_keys_lookup(ks, secrets[i], K2A_KEYS_SECRET_LEN), keys[i]);
    /* KIRO_CLIENT_TOKEN is the built-in key; a wrong or truncated key finds nothing */
    k2a_key_t *def = k2a_keys_lookup(ks, "the-env-token", 13);
    assert_non_null(def);
    assert_true(def->builtin);
    assert_null(k2a_keys_lookup(ks, "the-env-toke", 12));
    assert_null(k2a_keys_lookup(ks, secrets[0], K2A_KEYS_SECRET_LEN - 1));
    /* the bound is kept, names are unique */
    k2a_keys_spec_t spec = {.has_name = true};
    strcpy(spec.name, "one-too-many");
    char secret[K2A_KEYS_SECRET_LEN + 1], id[K2A_KEYS_ID_LEN + 1], err[200];
    assert_int_equal(k2a_keys_add(ks, &spec, T0, secret, id, err, sizeof(err)), K2A_ETOOBIG);
    /* a deleted key is refused at once but stays valid for whoever holds it */
    assert_int_equal(k2a_keys_delete(ks, keys[5000]->id), 0);
    assert_null(k2a_keys_lookup(ks, secrets[5000], K2A_KEYS_SECRET_LEN));
    assert_int_equal(k2a_keys_check(keys[5000], T0), K2A_KEYS_DELETED);
    int64_t retry;
    assert_int_equal(k2a_keys_admit(keys[5000], NULL, 0, MS(T0), &retry), K2A_KEYS_DELETED);
    assert_int_equal(k2a_keys_delete(ks, keys[5000]->id), K2A_ENOTFOUND);
    assert_int_equal(k2a_keys_delete(ks, "default"), K2A_EINVAL);
    /* the others of its bucket chain are still found */
    for (int i = 0; i < 10000; ++i)
        if (i != 5000)
            assert_ptr_equal(k2a_keys_lookup(ks, secrets[i], K2A_KEYS_SECRET_LEN), keys[i]);
    /* there is room again, and the freed name can be taken */
    strcpy(spec.name, "key-5000");
    assert_int_equal(k2a_keys_add(ks, &spec, T0, secret, id, err, sizeof(err)), 0);
    strcpy(spec.name, "key-1");
    assert_int_equal(k2a_keys_add(ks, &spec, T0, secret, id, err, sizeof(err)), K2A_ETOOBIG);
    k2a_keys_destroy(ks);
}

static void test_rpm_sliding_window(void **state)
{
    k2a_keys_t *ks = store(10, 90, NULL, NULL);
    k2a_key_limits_t l = {.rpm = 3};
    k2a_key_t *k = add(ks, "rpm", &l, NULL);
    int64_t retry, t = MS(T0);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(k2a_keys_admit(k, NULL, 0, t + i * 10000, &retry), K2A_KEYS_OK);
        k2a_keys_release(ks, k, false, t + i * 10000);
    }
    /* the fourth within 60 s of the first is refused until the first leaves the window */
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 30000, &retry), K2A_KEYS_RPM);
    assert_int_equal(retry, 30);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 59999, &retry), K2A_KEYS_RPM);
    assert_int_equal(retry, 1);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 60000, &retry), K2A_KEYS_OK);
    k2a_keys_release(ks, k, false, t + 60000);
    /* sliding, not fixed: the window now holds t+10 s, t+20 s, t+60 s */
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 65000, &retry), K2A_KEYS_RPM);
    assert_int_equal(retry, 5);
    /* lowering the limit keeps the newest entries: 1 per minute, the newest was at t+60 s */
    char err[200];
    k2a_keys_spec_t spec = {.has_limits = true, .limits = {.rpm = 1}, .has_limit = {true}};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 100000, &retry), K2A_KEYS_RPM);
    assert_int_equal(retry, 20);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 120000, &retry), K2A_KEYS_OK);
    k2a_keys_release(ks, k, false, t + 120000);
    /* 0 = no limit */
    spec.limits.rpm = 0;
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    for (int i = 0; i < 100; ++i) {
        assert_int_equal(k2a_keys_admit(k, NULL, 0, t + 120001, &retry), K2A_KEYS_OK);
        k2a_keys_release(ks, k, false, t + 120001);
    }
    k2a_keys_destroy(ks);
}

static void test_concurrency_slots(void **state)
{
    k2a_keys_t *ks = store(10, 90, NULL, NULL);
    k2a_key_limits_t l = {.concurrency = 2};
    k2a_key_t *k = add(ks, "conc", &l, NULL);
    int64_t retry, t = MS(T0);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_CONCURRENCY);
    assert_int_equal(retry, 1);
    assert_int_equal(k2a_keys_verdict_status(K2A_KEYS_CONCURRENCY), 429);
    k2a_keys_release(ks, k, true, t);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_OK);
    assert_int_equal(k->inflight, 2);
    assert_int_equal(k->days[k->ndays - 1].requests, 3);
    assert_int_equal(k->days[k->ndays - 1].errors, 1);
    assert_int_equal(k->m_rejected, 1);
    k2a_keys_destroy(ks);
}

static void test_credits_and_tokens(void **state)
{
    k2a_keys_t *ks = store(10, 90, NULL, NULL);
    k2a_key_limits_t l = {.credits_day = 1.0, .credits_month = 2.5, .tokens_day = 0};
    k2a_key_t *k = add(ks, "credits", &l, NULL);
    int64_t retry, t = MS(T0 + 3600);
    /* admitted while under the limit: the request that crosses it is served in full (the overshoot) */
    for (int i = 0; i < 2; ++i) {
        assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_OK);
        k2a_keys_charge(ks, k, 100, 50, 0.6, t);
        k2a_keys_release(ks, k, false, t);
    }
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_CREDITS_DAY);
    assert_int_equal(retry, 86400 - 3600); /* the next UTC midnight */
    assert_int_equal(k2a_keys_verdict_status(K2A_KEYS_CREDITS_DAY), 429);
    /* the next day starts from zero, the month goes on */
    int64_t t2 = t + MS(86400);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t2, &retry), K2A_KEYS_OK);
    k2a_keys_charge(ks, k, 0, 0, 0.9, t2);
    k2a_keys_release(ks, k, false, t2);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t2, &retry), K2A_KEYS_OK); /* 0.9 today, 2.1 this month */
    k2a_keys_charge(ks, k, 0, 0, 0.5, t2);
    k2a_keys_release(ks, k, false, t2);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t2, &retry), K2A_KEYS_CREDITS_DAY); /* 1.4 today */
    /* 2.6 this month: past the monthly limit until 2027-01-01 */
    char err[200];
    k2a_keys_spec_t spec = {.has_limits = true, .limits = {.credits_day = 0}, .has_limit = {false, false, true}};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    assert_int_equal(k->limits.credits_month, 2.5); /* limits not named stay */
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t2, &retry), K2A_KEYS_CREDITS_MONTH);
    assert_int_equal(retry, 1798761600LL - (T0 + 86400 + 3600));
    assert_int_equal(k2a_keys_admit(k, NULL, 0, MS(1798761600LL), &retry), K2A_KEYS_OK);
    k2a_keys_release(ks, k, false, MS(1798761600LL));
    /* tokens per day (input + output) */
    spec = (k2a_keys_spec_t){.has_limits = true, .limits = {.tokens_day = 150}, .has_limit = {false, false, false, true, true}};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    int64_t t3 = MS(1798761600LL + 10);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t3, &retry), K2A_KEYS_OK);
    k2a_keys_charge(ks, k, 100, 49, 0, t3);
    k2a_keys_release(ks, k, false, t3);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t3, &retry), K2A_KEYS_OK);
    k2a_keys_charge(ks, k, 0, 1, 0, t3);
    k2a_keys_release(ks, k, false, t3);
    assert_int_equal(k2a_keys_admit(k, NULL, 0, t3, &retry), K2A_KEYS_TOKENS_DAY);
    /* garbage from upstream never lowers usage */
    k2a_keys_charge(ks, k, -5, -5, -1, t3);
    assert_int_equal(k->days[k->ndays - 1].input_tokens, 100);
    k2a_keys_destroy(ks);
}

static void test_state_and_models(void **state)
{
    k2a_keys_t *ks = store(10, 90, NULL, NULL);
    k2a_key_t *k = add(ks, "models", NULL, NULL);
    char err[200];
    char *pats[] = {"claude-haiku-*", "claude-sonnet-4-5"};
    k2a_keys_spec_t spec = {.has_models = true, .nmodels = 2, .models = {pats[0], pats[1]}};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    int64_t retry, t = MS(T0);
    assert_int_equal(k2a_keys_admit(k, "claude-haiku-4-5", 16, t, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, "claude-sonnet-4-5", 17, t, &retry), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_admit(k, "claude-opus-4-8", 15, t, &retry), K2A_KEYS_MODEL);
    assert_int_equal(k2a_keys_verdict_status(K2A_KEYS_MODEL), 403);
    spec = (k2a_keys_spec_t){.has_enabled = true, .enabled = false};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_check(k, T0), K2A_KEYS_DISABLED);
    assert_int_equal(k2a_keys_admit(k, "claude-haiku-4-5", 16, t, &retry), K2A_KEYS_DISABLED);
    spec = (k2a_keys_spec_t){.has_enabled = true, .enabled = true, .has_expires = true, .expires_at = T0 + 10};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    assert_int_equal(k2a_keys_check(k, T0 + 9), K2A_KEYS_OK);
    assert_int_equal(k2a_keys_check(k, T0 + 10), K2A_KEYS_EXPIRED);
    assert_int_equal(k2a_keys_verdict_status(K2A_KEYS_EXPIRED), 401);
    /* renaming onto another key's name is refused */
    add(ks, "other", NULL, NULL);
    spec = (k2a_keys_spec_t){.has_name = true};
    strcpy(spec.name, "other");
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), K2A_EINVAL);
    assert_int_equal(k2a_keys_update(ks, "nope", &spec, err, sizeof(err)), K2A_ENOTFOUND);
    k2a_keys_destroy(ks);
}

static void test_usage_days_pruned(void **state)
{
    k2a_keys_t *ks = store(10, 3, NULL, NULL);
    k2a_key_t *k = add(ks, "days", NULL, NULL);
    int64_t retry;
    for (int d = 0; d < 6; ++d) {
        int64_t t = MS(T0 + d * 86400);
        assert_int_equal(k2a_keys_admit(k, NULL, 0, t, &retry), K2A_KEYS_OK);
        k2a_keys_charge(ks, k, d, 0, 0, t);
        k2a_keys_release(ks, k, false, t);
    }
    assert_int_equal(k->ndays, 3);
    assert_int_equal(k->days[0].day, T0 / 86400 + 3);
    assert_int_equal(k->days[2].input_tokens, 5);
    /* the usage rendering fills the days without use with zeros, oldest first */
    k2a_buf_t out = K2A_BUF_INIT(0);
    assert_int_equal(k2a_keys_render_usage(ks, k->id, 4, T0 + 6 * 86400, &out), 0);
    k2a_buf_append(&out, "", 1); /* NUL-terminated for strstr */
    assert_non_null(strstr(out.base, "{\"date\":\"2026-12-09\",\"requests\":1"));
    assert_non_null(strstr(out.base, "{\"date\":\"2026-12-12\",\"requests\":0"));
    assert_null(strstr(out.base, "2026-12-08"));
    k2a_buf_dispose(&out);
    k2a_keys_destroy(ks);
}

static void test_snapshot_round_trip(void **state)
{
    char dir[] = "/tmp/k2a-keys-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/keys.json", dir);
    k2a_keys_t *ks = store(10, 90, "env-token-123", k2a_keys_file_backend_create(path));
    char secret[K2A_KEYS_SECRET_LEN + 1];
    k2a_key_limits_t l = {.rpm = 7, .concurrency = 3, .credits_day = 1.25, .credits_month = 40, .tokens_day = 9000};
    k2a_key_t *k = add(ks, "persisted", &l, secret);
    char *pats[] = {"claude-*"};
    char err[200];
    k2a_keys_spec_t spec = {.has_models = true, .nmodels = 1, .models = {pats[0]}, .has_expires = true, .expires_at = T0 + 999};
    assert_int_equal(k2a_keys_update(ks, k->id, &spec, err, sizeof(err)), 0);
    int64_t retry, t = MS(T0 + 100);
    assert_int_equal(k2a_keys_admit(k, "claude-x", 8, t, &retry), K2A_KEYS_OK);
    k2a_keys_charge(ks, k, 11, 22, 0.75, t);
    k2a_keys_release(ks, k, true, t);
    k2a_key_t *def = k2a_keys_lookup(ks, "env-token-123", 13);
    assert_int_equal(k2a_keys_admit(def, NULL, 0, t, &retry), K2A_KEYS_OK);
    k2a_keys_charge(ks, def, 1, 2, 0.5, t);
    k2a_keys_release(ks, def, false, t);
    assert_true(k2a_keys_dirty(ks));
    assert_int_equal(k2a_keys_save_sync(ks), 0);
    assert_false(k2a_keys_dirty(ks));
    char id[K2A_KEYS_ID_LEN + 1];
    strcpy(id, k->id);
    k2a_keys_destroy(ks);

    /* the file holds the hash and the prefix, never the secret */
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    assert_null(strstr(text, secret));
    assert_null(strstr(text, secret + 12));
    assert_null(strstr(text, "env-token-123"));
    assert_non_null(strstr(text, "\"hash\":\""));

    ks = store(10, 90, "env-token-123", k2a_keys_file_backend_create(path));
    k = k2a_keys_lookup(ks, secret, K2A_KEYS_SECRET_LEN);
    assert_non_null(k);
    assert_string_equal(k->id, id);
    assert_string_equal(k->name, "persisted");
    assert_int_equal(k->limits.rpm, 7);
    assert_int_equal(k->limits.concurrency, 3);
    assert_true(k->limits.credits_day == 1.25 && k->limits.credits_month == 40);
    assert_int_equal(k->limits.tokens_day, 9000);
    assert_int_equal(k->nmodels, 1);
    assert_string_equal(k->models[0], "claude-*");
    assert_int_equal(k->expires_at, T0 + 999);
    assert_int_equal(k->last_used_at, T0 + 100);
    assert_int_equal(k->ndays, 1);
    assert_int_equal(k->days[0].requests, 1);
    assert_int_equal(k->days[0].errors, 1);
    assert_int_equal(k->days[0].input_tokens, 11);
    assert_int_equal(k->days[0].output_tokens, 22);
    assert_true(k->days[0].credits == 0.75 && k->month_credits == 0.75);
    def = k2a_keys_lookup(ks, "env-token-123", 13);
    assert_int_equal(def->ndays, 1);
    assert_true(def->days[0].credits == 0.5);
    assert_int_equal(k2a_keys_count(ks), 1);
    k2a_keys_destroy(ks);

    /* a corrupt file is a configuration error, not an empty store */
    f = fopen(path, "w");
    fputs("{\"version\":1,\"keys\":[", f);
    fclose(f);
    k2a_keys_config_t cfg = {.max_keys = 10, .usage_days = 90};
    k2a_keys_backend_t *b = k2a_keys_file_backend_create(path);
    assert_int_equal(k2a_keys_create(&cfg, b, &ks, err, sizeof(err)), K2A_ECONFIG);
    b->destroy(b);
    unlink(path);
    rmdir(dir);
}

static void test_metrics_bounded(void **state)
{
    k2a_keys_config_t cfg = {.max_keys = 10, .usage_days = 90, .metrics_max = 2};
    k2a_keys_t *ks;
    char err[200];
    assert_int_equal(k2a_keys_create(&cfg, NULL, &ks, err, sizeof(err)), 0);
    k2a_key_t *k[3] = {add(ks, "a", NULL, NULL), add(ks, "b", NULL, NULL), add(ks, "c", NULL, NULL)};
    int64_t retry;
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(k2a_keys_admit(k[i], NULL, 0, MS(T0), &retry), K2A_KEYS_OK);
        k2a_keys_charge(ks, k[i], 0, 0, 1.5, MS(T0));
        k2a_keys_release(ks, k[i], false, MS(T0));
    }
    k2a_buf_t out = K2A_BUF_INIT(0);
    assert_int_equal(k2a_keys_render_metrics(ks, &out), 0);
    k2a_buf_append(&out, "", 1);
    assert_non_null(strstr(out.base, "k2a_key_requests_total{key=\"a\"} 1\n"));
    assert_non_null(strstr(out.base, "k2a_key_requests_total{key=\"b\"} 1\n"));
    assert_null(strstr(out.base, "key=\"c\""));
    assert_non_null(strstr(out.base, "k2a_key_requests_total{key=\"_other\"} 1\n"));
    assert_non_null(strstr(out.base, "k2a_key_credits_total{key=\"a\"} 1.5\n"));
    k2a_buf_dispose(&out);
    k2a_keys_destroy(ks);
}

typedef struct st_thread_arg_t {
    k2a_keys_t *ks;
    k2a_key_t *k;
    int admitted, refused;
} thread_arg_t;

static void *hammer(void *p)
{
    thread_arg_t *a = p;
    int64_t retry;
    for (int i = 0; i < 20000; ++i) {
        if (k2a_keys_admit(a->k, NULL, 0, MS(T0), &retry) == K2A_KEYS_OK) {
            ++a->admitted;
            pthread_mutex_lock(&a->k->mu);
            int64_t inflight = a->k->inflight;
            pthread_mutex_unlock(&a->k->mu);
            assert_true(inflight >= 1 && inflight <= 3); /* never more than the limit in flight */
            k2a_keys_charge(a->ks, a->k, 1, 1, 0.001, MS(T0));
            k2a_keys_release(a->ks, a->k, false, MS(T0));
        } else {
            ++a->refused;
        }
    }
    return NULL;
}

static void test_threads(void **state)
{
    k2a_keys_t *ks = store(10, 90, NULL, NULL);
    k2a_key_limits_t l = {.concurrency = 3};
    k2a_key_t *k = add(ks, "threads", &l, NULL);
    pthread_t th[4];
    thread_arg_t args[4];
    for (int i = 0; i < 4; ++i) {
        args[i] = (thread_arg_t){.ks = ks, .k = k};
        pthread_create(&th[i], NULL, hammer, &args[i]);
    }
    int admitted = 0, refused = 0;
    for (int i = 0; i < 4; ++i) {
        pthread_join(th[i], NULL);
        admitted += args[i].admitted;
        refused += args[i].refused;
    }
    assert_int_equal(admitted + refused, 80000);
    assert_int_equal(k->inflight, 0);
    assert_int_equal(k->days[k->ndays - 1].requests, (uint64_t)admitted);
    assert_int_equal(k->days[k->ndays - 1].input_tokens, admitted);
    assert_int_equal(k->m_rejected, (uint64_t)refused);
    k2a_keys_destroy(ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation_and_glob),
        cmocka_unit_test(test_calendar),
        cmocka_unit_test(test_lookup_among_10000),
        cmocka_unit_test(test_rpm_sliding_window),
        cmocka_unit_test(test_concurrency_slots),
        cmocka_unit_test(test_credits_and_tokens),
        cmocka_unit_test(test_state_and_models),
        cmocka_unit_test(test_usage_days_pruned),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_metrics_bounded),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
