/*
 * Test helpers for the golden vector runners (test_convert_golden.c, test_openai_golden.c,
 * test_responses_golden.c): reading files, the canonical pretty-printed form of a JSON document, the first
 * differing line of two texts, the sorted walk over the cases of tests/vectors/convert, and the run of one
 * OpenAI-family request case (decode, build with the deterministic golden inputs, compare).
 */
#ifndef K2A_TESTS_GOLDEN_SUPPORT_H
#define K2A_TESTS_GOLDEN_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include "convert/convert_error.h"
#include "convert/ir.h"
#include "convert/model_map.h"
#include "core/arena.h"
#include "core/buf.h"

#define GS_VECTOR_DIR K2A_SOURCE_DIR "/tests/vectors/convert"

/* A whole file (malloc'd, NUL-terminated), or NULL when it cannot be read. */
char *gs_read_file(const char *path, size_t *len);
/* json pretty-printed the way the .kiro.json files are written (one space of indent, keys in their order; malloc'd), or
 * NULL when it is not valid JSON (errbuf says why). */
char *gs_pretty(const char *json, size_t len, char *errbuf, size_t errlen);
/* The first line where a and b differ, for a failure message. */
void gs_first_difference(const char *a, const char *b, char *out, size_t cap);

/* A response writer's output must equal tests/vectors/response/<name>.<ext> byte for byte (fails the test with both
 * texts); K2A_BLESS=1 rewrites the file from got instead. */
void gs_compare_response_golden(const char *name, const char *ext, const k2a_buf_t *got);

/* Runs run(name, ctx) for every GS_VECTOR_DIR/<name>.in.json that want(file name, ctx) accepts, in name order, printing one
 * line per case and a summary with label. Returns the number of failed cases; *ncases receives the number of cases. */
int gs_run_cases(bool (*want)(const char *fname, void *ctx), int (*run)(const char *name, void *ctx), void *ctx, const char *label,
                 size_t *ncases);

/* A request decoder of one dialect (k2a_openai_decode, k2a_responses_decode). */
typedef int (*gs_decode_fn)(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                            k2a_ir_request_t *out, k2a_convert_error_t *err);

/* One OpenAI-family case: <name>.in.json decoded by decode and built by k2a_kiro_build_request with the golden inputs
 * (client 127.0.0.1, user agent golden-test, 2026-01-01T00:00Z, seed 1); the pretty Kiro body must equal
 * <name>.kiro.json (K2A_GOLDEN_UPDATE=1 rewrites that file instead). *actual receives the pretty body (malloc'd; NULL
 * when decoding or building failed). Returns 1 when the case failed (messages printed), else 0. */
int gs_run_request_case(const char *name, gs_decode_fn decode, const k2a_model_map_t *map, char **actual);

/* An extra comparison of a case's pretty Kiro body; returns 1 when it fails (messages printed). */
typedef int (*gs_check_fn)(const char *name, const char *actual);

/* The whole golden test of one OpenAI-family dialect: TZ=UTC, the default model map, every <prefix>*.in.json case
 * through gs_run_request_case and then check (NULL: none; not when K2A_GOLDEN_UPDATE is set); at least 15 cases, none
 * failing. */
void gs_request_golden_test(const char *prefix, const char *label, gs_decode_fn decode, gs_check_fn check);

#endif
