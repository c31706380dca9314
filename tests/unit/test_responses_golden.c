/*
 * Golden tests of the OpenAI Responses request path: every tests/vectors/convert/responses_<case>.in.json (a
 * POST /v1/responses body) is decoded by k2a_responses_decode and built by k2a_kiro_build_request with the same
 * deterministic inputs as the other dialects' goldens (client 127.0.0.1, user agent golden-test, 2026-01-01T00:00Z,
 * seed 1); the Kiro body must equal responses_<case>.kiro.json and, when the case is the Responses form of a Chat
 * Completions case (openai_<case>.in.json, rewritten by tests/vectors/chat_to_responses.py), openai_<case>.kiro.json as
 * well: the two OpenAI dialects must give Kiro the same body. Compared after pretty-printing with yajl. Adding a case
 * needs no code; at least 15 must exist. K2A_GOLDEN_UPDATE=1 rewrites the responses_*.kiro.json files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "convert/responses_req.h"
#include "golden_support.h"

/* The Chat Completions form of the same conversation, when there is one, must give the same body. */
static int same_as_chat(const char *name, const char *actual)
{
    char path[1024], errbuf[256];
    size_t elen = 0;
    int failed = 0;
    snprintf(path, sizeof(path), "%s/openai_%s.kiro.json", GS_VECTOR_DIR, name + 10);
    char *expected = gs_read_file(path, &elen), *want = NULL;
    if (expected != NULL) {
        if ((want = gs_pretty(expected, elen, errbuf, sizeof(errbuf))) == NULL || strcmp(actual, want) != 0) {
            char diff[2048];
            gs_first_difference(actual, want != NULL ? want : "", diff, sizeof(diff));
            print_error("%s: differs from the Chat Completions case openai_%s at %s\n", name, name + 10, diff);
            failed = 1;
        }
    }
    free(want);
    free(expected);
    return failed;
}

static void test_responses_golden_cases(void **state)
{
    (void)state;
    gs_request_golden_test("responses_", "Responses golden", k2a_responses_decode, same_as_chat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
