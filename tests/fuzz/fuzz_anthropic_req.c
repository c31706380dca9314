/*
 * libFuzzer target: the Anthropic request decoder and, when it accepts the input, the whole Kiro build (normalizer +
 * encoder, with a payload budget that depends on the input size so that history trimming runs too). The decoder must
 * either succeed or fail with a negative K2A_E* and a message; a build must either fail cleanly or produce a body that
 * is valid JSON and that kiro-sim's validator (the rules real Kiro answers 400 to) accepts, with and without a
 * profileArn spliced in (kiro_build_check.h). Any crash, leak or sanitizer report is a bug. Seeds: the Anthropic
 * .in.json files of tests/vectors/convert and the bodies of tests/fixtures/clients.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "convert/anthropic_req.h"
#include "kiro_build_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet_logs();
    k2a_convert_error_t err;
    k2a_arena_t arena;
    k2a_arena_init(&arena, 64 * 1024 * 1024);
    k2a_ir_request_t req;
    memset(&err, 0, sizeof(err));
    int r = k2a_anthropic_decode((const char *)data, size, NULL, &arena, &req, &err);
    if (r == 0) {
        /* half the input size (so that history trimming runs) and the default budget */
        fuzz_check_kiro_build(&req, size / 2 + 512, &arena);
        if (size / 2 + 512 < 600000)
            fuzz_check_kiro_build(&req, 0, &arena);
    } else {
        FUZZ_CHECK(r < 0 && err.code == r && err.message[0] != '\0', "unclean decode error %d code %d message '%s'", r, err.code,
                   err.message);
    }
    k2a_arena_dispose(&arena);
    return 0;
}
