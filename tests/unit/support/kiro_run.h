/*
 * Test helpers for the Kiro response parser tests (test_kiro_resp.c, test_kiro_resp_2026.c, test_kiro_resp_fast.c):
 * a parser wired to an event recorder (resp_support.h), its base configuration, and assertions on the recorded
 * sequence and block texts.
 */
#ifndef K2A_TESTS_KIRO_RUN_H
#define K2A_TESTS_KIRO_RUN_H

#include <stdbool.h>
#include "convert/kiro_resp.h"
#include "resp_support.h"

typedef struct st_kr_run_t {
    k2a_kiro_resp_t p;
    rs_rec_t rec;
} kr_run_t;

/* input_tokens 9, thinking as given, everything else zero */
k2a_kiro_resp_config_t kr_base_cfg(bool thinking);
/* A parser with cfg feeding r->rec, started. */
void kr_run_init(kr_run_t *r, const k2a_kiro_resp_config_t *cfg);
void kr_run_dispose(kr_run_t *r);
/* The recorded sequence (rs_rec_describe) must be want. */
void kr_expect_seq(const kr_run_t *r, const char *want);
/* The concatenated deltas of block index must be want. */
void kr_expect_block(const kr_run_t *r, int index, const char *want);

/* A parser with the base configuration feeding both writers of tee (rs_tee_sink), started. */
void kr_start_tee(k2a_kiro_resp_t *p, rs_tee_t *tee);
/* An assistantResponseEvent payload between "<" and ">" text frames: the parser returns want_rc for it and, when that is
 * 0, block 0 reads want_text ({"content":"<no escapes>"} is read without yajl: every payload near that shape must give
 * what yajl gives). */
void kr_plain_case(const char *payload, int want_rc, const char *want_text);

#endif
