/*
 * Test helpers for the Kiro response parser tests (see kiro_run.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "kiro_run.h"

k2a_kiro_resp_config_t kr_base_cfg(bool thinking)
{
    k2a_kiro_resp_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.input_tokens = 9;
    cfg.thinking = thinking;
    return cfg;
}

void kr_run_init(kr_run_t *r, const k2a_kiro_resp_config_t *cfg)
{
    rs_rec_init(&r->rec);
    assert_int_equal(k2a_kiro_resp_init(&r->p, cfg, rs_rec_sink, &r->rec), 0);
    assert_int_equal(k2a_kiro_resp_start(&r->p), 0);
}

void kr_run_dispose(kr_run_t *r)
{
    k2a_kiro_resp_dispose(&r->p);
    rs_rec_dispose(&r->rec);
}

void kr_expect_seq(const kr_run_t *r, const char *want)
{
    char *got = rs_rec_describe(&r->rec);
    if (strcmp(got, want) != 0)
        fail_msg("sequence\n got: %s\nwant: %s", got, want);
    free(got);
}

void kr_expect_block(const kr_run_t *r, int index, const char *want)
{
    size_t len;
    char *got = rs_rec_concat(&r->rec, index, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("block %d\n got: %s\nwant: %s", index, got, want);
    free(got);
}

void kr_plain_case(const char *payload, int want_rc, const char *want_text)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"<\"}"), 0);
    int rc = rs_feed_event(&r.p, "assistantResponseEvent", payload);
    if (rc != want_rc)
        fail_msg("payload %s: rc %d, want %d", payload, rc, want_rc);
    if (rc == 0) {
        assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\">\"}"), 0);
        assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
        rs_rec_check(&r.rec, true);
        kr_expect_block(&r, 0, want_text);
    } else {
        kr_expect_seq(&r, "S B0:text D0 error:UPSTREAM_EVENT");
    }
    kr_run_dispose(&r);
}

void kr_start_tee(k2a_kiro_resp_t *p, rs_tee_t *tee)
{
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    assert_int_equal(k2a_kiro_resp_init(p, &cfg, rs_tee_sink, tee), 0);
    assert_int_equal(k2a_kiro_resp_start(p), 0);
}
