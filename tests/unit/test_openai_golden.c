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
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "convert/openai_req.h"
#include "golden_support.h"

static void test_openai_golden_cases(void **state)
{
    (void)state;
    gs_request_golden_test("openai_", "OpenAI golden", k2a_openai_decode, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
