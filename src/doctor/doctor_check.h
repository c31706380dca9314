/*
 * kiro2api doctor, internal: what one account's check found (doctor_check.c runs the calls through the pool's own
 * functions; doctor_report.c prints the table or the JSON).
 */
#ifndef K2A_DOCTOR_CHECK_H
#define K2A_DOCTOR_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "pool/pool.h"

#define K2A_DOCTOR_IDS 3

/* One call of a check: refresh, models, usage, generate. */
typedef struct st_k2a_doctor_step_t {
    bool ran; /* false: skipped (an earlier step failed, or --no-generate) */
    bool ok;
    int status;       /* HTTP status, 0 for a transport error or no call */
    int64_t ms;       /* latency */
    char detail[200]; /* what happened, never a secret */
} k2a_doctor_step_t;

/* One cell of the --probe matrix (kiro-protocol-2026 §14): a host template and a request shape. */
#define K2A_DOCTOR_MAX_PROBE_BASES 8
#define K2A_DOCTOR_MAX_PROBES (K2A_DOCTOR_MAX_PROBE_BASES * 3 + 1)
typedef struct st_k2a_doctor_probe_t {
    char base[160];    /* the template, e.g. "https://runtime.{region}.kiro.dev" */
    const char *shape; /* "rest", "awsjson", "mcp", "placeholder" */
    k2a_doctor_step_t step;
} k2a_doctor_probe_t;

typedef struct st_k2a_doctor_account_t {
    size_t index;
    char name[160]; /* "0 (description)" */
    const char *kind;
    bool disabled;
    char region[24];           /* data-plane region */
    char auth_region[24];      /* refresh region */
    const char *region_source; /* "arn", "apiRegion", "region", "default" */
    const char *arn_source;    /* "config", "refresh", "profiles", "state", "placeholder", "default", "none" */
    char arn[160];             /* masked */
    k2a_doctor_step_t refresh, models, usage, generate;
    size_t nmodels;
    char model_ids[K2A_DOCTOR_IDS][64];
    char model[64]; /* the model of the generate call */
    bool usage_known;
    double credits_left, credits_limit;
    int64_t next_reset_ms;
    bool ok;
    char hint[240]; /* "" when ok */
    k2a_doctor_probe_t probes[K2A_DOCTOR_MAX_PROBES];
    size_t nprobes;
} k2a_doctor_account_t;

typedef struct st_k2a_doctor_opts_t {
    bool no_generate, probe, json, keep_text;
    const char *trace_dir;
    const char *config_file;
    const char *probe_bases; /* KIRO_PROBE_BASES */
} k2a_doctor_opts_t;

/* In a coroutine on the pool's loop: checks account `index` into *out. */
void k2a_doctor_check_account(k2a_pool_t *p, size_t index, const k2a_doctor_opts_t *o, k2a_doctor_account_t *out);
/* Masks the account number of an ARN ("arn:aws:codewhisperer:us-east-1:****1385:profile/..."), into out. */
void k2a_doctor_mask_arn(const char *arn, char *out, size_t outsz);

/* doctor_probe.c: in a coroutine, after a successful refresh: the --probe matrix for the account into out->probes. */
void k2a_doctor_probe_account(k2a_pool_t *p, size_t index, const k2a_doctor_opts_t *o, k2a_doctor_account_t *out);

/* doctor_report.c */
void k2a_doctor_print_table(const k2a_doctor_account_t *acc, size_t n);
int k2a_doctor_print_json(const k2a_doctor_account_t *acc, size_t n, bool all_ok);

#endif
