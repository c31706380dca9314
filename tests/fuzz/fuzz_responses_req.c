/*
 * libFuzzer target for the OpenAI Responses request decoder (src/convert/responses_req*.c) and the shared Kiro builder
 * behind it: any bytes as a request body, with small decoder limits so that every limit path is reachable. A first
 * byte 0x01 (which no JSON text starts with) makes the second byte split the rest in two: a stored conversation (the
 * previous_response_id path) and the body. A decode
 * must either succeed with a request whose every message has blocks and whose input items are a JSON array text, or
 * fail with an error code and a message; an accepted request then goes through k2a_kiro_build_request exactly as the
 * gateway runs it, and the body must be valid JSON that kiro-sim's validator accepts, or the build must fail cleanly
 * (kiro_build_check.h). Nothing may crash, leak or read outside the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/arena.h"
#include "core/errors.h"
#include "convert/responses_req.h"
#include "kiro_build_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_quiet_logs();
    size_t split = 0;
    bool with_prior = size > 2 && data[0] == 0x01;
    if (with_prior) {
        split = 1 + (data[1] * (size - 2)) / 256;
        ++data, --size;
        --split;
    }
    /* exact-size copies so that ASan sees any read past either text */
    char *prior = NULL, *body = malloc(size - split != 0 ? size - split : 1);
    if (size - split != 0)
        memcpy(body, data + split, size - split);
    if (with_prior) {
        prior = malloc(split != 0 ? split : 1);
        if (split != 0)
            memcpy(prior, data, split);
    }
    k2a_convert_limits_t limits = fuzz_small_limits();
    k2a_arena_t arena;
    k2a_arena_init(&arena, 8 << 20);
    k2a_ir_request_t req;
    k2a_responses_extra_t x;
    k2a_convert_error_t err;
    memset(&err, 0, sizeof(err));
    int r = k2a_responses_decode_ex(body, size - split, prior, split, &limits, &arena, &req, &x, &err);
    if (r == 0)
        FUZZ_CHECK(x.input_items.len >= 2 && x.input_items.base[0] == '[' && x.input_items.base[x.input_items.len - 1] == ']',
                   "input items are not an array text");
    fuzz_check_decoded(r, &req, &err, (size - split) / 2 + 512, &arena);
    k2a_arena_dispose(&arena);
    free(body);
    free(prior);
    return 0;
}
