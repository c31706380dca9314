/*
 * libFuzzer target for the OpenAI Chat Completions request decoder (src/convert/openai_req.c) and the shared Kiro
 * builder behind it: any bytes as a request body, with small decoder limits so that every limit path is reachable. A
 * decode must either succeed with a request whose every message has blocks, or fail with an error code and a message;
 * an accepted request then goes through k2a_kiro_build_request exactly as the gateway runs it, and the body must be
 * valid JSON that kiro-sim's validator accepts, or the build must fail cleanly (kiro_build_check.h). Nothing may
 * crash, leak or read outside the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/arena.h"
#include "core/errors.h"
#include "convert/openai_req.h"
#include "kiro_build_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet_logs();
    /* an exact-size copy so that ASan sees any read past the body */
    char *body = malloc(size != 0 ? size : 1);
    if (size != 0)
        memcpy(body, data, size);
    k2a_convert_limits_t limits = fuzz_small_limits();
    k2a_arena_t arena;
    k2a_arena_init(&arena, 8 << 20);
    k2a_ir_request_t req;
    k2a_convert_error_t err;
    memset(&err, 0, sizeof(err));
    int r = k2a_openai_decode(body, size, &limits, &arena, &req, &err);
    fuzz_check_decoded(r, &req, &err, size / 2 + 512, &arena);
    k2a_arena_dispose(&arena);
    free(body);
    return 0;
}
