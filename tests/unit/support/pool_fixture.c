/*
 * Test helpers for the pool tests: an in-memory token store and a pool fixture (see pool_fixture.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include "core/coro.h"
#include "core/errors.h"
#include "pool/health.h"
#include "pool/internal.h"
#include "pool_fixture.h"

static int mem_load(k2a_pool_store_t *st, k2a_pool_snapshot_t *out, char *err, size_t errlen)
{
    pf_mem_store_t *m = (pf_mem_store_t *)st;
    if (m->initial.len == 0)
        return K2A_ENOTFOUND;
    return k2a_pool_snapshot_decode(m->initial.base, m->initial.len, out, err, errlen);
}

static int mem_save(k2a_pool_store_t *st, k2a_buf_t *json, k2a_pool_store_saved_cb cb, void *data)
{
    pf_mem_store_t *m = (pf_mem_store_t *)st;
    k2a_buf_dispose(&m->last);
    m->last = *json;
    *json = (k2a_buf_t)K2A_BUF_INIT(0);
    ++m->saves;
    cb(data, 0);
    return 0;
}

static int mem_save_sync(k2a_pool_store_t *st, const k2a_buf_t *json)
{
    pf_mem_store_t *m = (pf_mem_store_t *)st;
    k2a_buf_reset(&m->last);
    k2a_buf_append(&m->last, json->base, json->len);
    ++m->saves;
    return 0;
}

static void mem_destroy(k2a_pool_store_t *st)
{
    pf_mem_store_t *m = (pf_mem_store_t *)st;
    k2a_buf_dispose(&m->initial);
    k2a_buf_dispose(&m->last);
    free(m);
}

void pf_key_of(const char *auth, const char *rt, char out[65])
{
    unsigned char md[32];
    unsigned n;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    EVP_DigestUpdate(c, auth, strlen(auth));
    EVP_DigestUpdate(c, ":", 1);
    EVP_DigestUpdate(c, rt, strlen(rt));
    EVP_DigestFinal_ex(c, md, &n);
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; ++i)
        sprintf(out + 2 * i, "%02x", md[i]);
}

/* A memory store whose snapshot gives accounts rt-0..rt-(n-1) valid access tokens. */
pf_mem_store_t *pf_mem_store_with_tokens(size_t n)
{
    pf_mem_store_t *m = calloc(1, sizeof(*m));
    m->super.name = "memory";
    m->super.load = mem_load;
    m->super.save = mem_save;
    m->super.save_sync = mem_save_sync;
    m->super.destroy = mem_destroy;
    k2a_pool_snapshot_t s = {calloc(n, sizeof(k2a_account_snapshot_t)), n, 0};
    int64_t now = k2a_pool_now_ms();
    for (size_t i = 0; i < n; ++i) {
        char rt[32], at[32];
        snprintf(rt, sizeof(rt), "rt-%zu", i);
        snprintf(at, sizeof(at), "access-token-%zu", i);
        pf_key_of("Social", rt, s.accounts[i].key);
        s.accounts[i].refresh_token = strdup(rt);
        s.accounts[i].access_token = strdup(at);
        s.accounts[i].expires_at_ms = now + 3600 * 1000;
        s.accounts[i].expires_in_s = 3600;
        snprintf(s.accounts[i].state, sizeof(s.accounts[i].state), "ok");
    }
    k2a_pool_snapshot_encode(&s, &m->initial);
    k2a_pool_snapshot_dispose(&s);
    return m;
}

/* extra: a JSON fragment added to account 0's entry (e.g. ",\"rpm\":1"), or NULL */
char *pf_accounts_json(size_t n, const char *extra)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&b, "[");
    for (size_t i = 0; i < n; ++i)
        k2a_buf_appendf(&b, "%s{\"refreshToken\":\"rt-%zu\",\"description\":\"acct%zu\"%s}", i ? "," : "", i, i,
                        i == 0 && extra != NULL ? extra : "");
    k2a_buf_appendstr(&b, "]");
    return k2a_buf_cstr(&b);
}

void pf_fixture_start(pf_fixture_t *f, size_t n, k2a_pool_strategy_t strategy, const k2a_pool_config_t *base, const char *extra)
{
    memset(f, 0, sizeof(*f));
    uv_loop_init(&f->loop);
    assert_int_equal(k2a_coro_runtime_init(&f->loop, NULL), 0);
    k2a_upstream_config_t ucfg;
    k2a_upstream_config_init(&ucfg);
    assert_int_equal(k2a_upstream_create(&f->loop, &ucfg, &f->up), 0);
    k2a_pool_config_t pc;
    if (base != NULL)
        pc = *base;
    else
        k2a_pool_config_init(&pc);
    f->auth = pf_accounts_json(n, extra);
    pc.auth_token = f->auth;
    pc.strategy = strategy;
    pc.usage_poll_interval_s = 0;
    pc.warmup = false;
    pc.api_base = "http://127.0.0.1:1";
    pc.social_refresh_url = "http://127.0.0.1:1/refreshToken";
    pc.idc_refresh_url = "http://127.0.0.1:1/token";
    f->store = pf_mem_store_with_tokens(n);
    char err[256];
    int r = k2a_pool_create(&f->loop, f->up, &pc, &f->store->super, &f->pool, err, sizeof(err));
    if (r != 0)
        fail_msg("create: %s", err);
}

void pf_fixture_stop(pf_fixture_t *f)
{
    k2a_pool_shutdown(f->pool);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    k2a_pool_destroy(f->pool);
    k2a_upstream_destroy(f->up);
    k2a_coro_runtime_dispose();
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->auth);
}

/* acquire outside a coroutine works when tokens are valid (no await needed) */
size_t pf_take_index(pf_fixture_t *f, k2a_lease_t *l)
{
    int r = k2a_pool_acquire(f->pool, NULL, NULL, NULL, l, NULL);
    if (r != 0)
        fail_msg("acquire: %s", k2a_errname(r));
    return l->index;
}

void pf_cool(pf_fixture_t *f, size_t i, int status)
{
    k2a_verdict_t v;
    k2a_pool_classify(0, status, "", 0, &v);
    k2a_account_apply_verdict(f->pool->accounts[i], &v, f->pool->accounts[i]->token_gen);
}
