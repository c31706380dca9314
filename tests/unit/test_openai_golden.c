/*
 * Golden tests of the OpenAI request path: every tests/vectors/convert/openai_<case>.in.json (a Chat Completions body
 * as a client sends it) is decoded by k2a_openai_decode and built by the same k2a_kiro_build_request as the Anthropic
 * cases (tests/unit/test_convert_golden.c, with the same deterministic inputs: client 127.0.0.1, user agent
 * golden-test, 2026-01-01T00:00Z, seed 1), and the Kiro body must equal openai_<case>.kiro.json. Both are compared
 * after pretty-printing with yajl (one space of indent, keys in the generated order), which is the format of the
 * files, so the comparison is exact but formatting-proof. Adding a case needs no code; at least 15 must exist.
 * K2A_GOLDEN_UPDATE=1 rewrites the .kiro.json files from the current output (review the diff!).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include "convert/model_map.h"
#include "convert/openai_req.h"
#include "golden_support.h"

static bool is_openai_case(const char *fname)
{
    return strncmp(fname, "openai_", 7) == 0;
}

static int run_case(const char *name, void *map)
{
    char *actual;
    int failed = gs_run_request_case(name, k2a_openai_decode, map, &actual);
    free(actual);
    return failed;
}

static void test_openai_golden_cases(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    k2a_model_map_t *map = NULL;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &map, &err), 0);
    size_t n = 0;
    int failures = gs_run_cases(is_openai_case, run_case, map, "OpenAI golden", &n);
    k2a_model_map_destroy(map);
    assert_true(n >= 15);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
