/*
 * libFuzzer target: the Anthropic request decoder and, when it accepts the input, the whole Kiro build
 * (normalizer + encoder) with a small payload budget so that history trimming runs too. Any crash, leak or
 * sanitizer report is a bug; errors are expected. Seeds: the .in.json files of tests/vectors/convert.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"

static void on_random(void *ctx, void *buf, size_t len)
{
    memset(buf, 7, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static k2a_model_map_t *map;
    k2a_convert_error_t err;
    if (map == NULL && k2a_model_map_create(NULL, 0, &map, &err) != 0)
        return 0;
    k2a_arena_t arena;
    k2a_arena_init(&arena, 64 * 1024 * 1024);
    k2a_ir_request_t req;
    if (k2a_anthropic_decode((const char *)data, size, NULL, &arena, &req, &err) == 0) {
        k2a_kiro_build_params_t p;
        k2a_kiro_build_params_init(&p, map);
        p.random = on_random;
        p.now = 1767225600;
        p.norm.max_payload_bytes = size / 2 + 512;
        k2a_buf_t out;
        k2a_buf_init(&out, 64 * 1024 * 1024);
        k2a_kiro_build_result_t res;
        k2a_kiro_build_request(&req, &p, &arena, &out, &res, &err);
        k2a_buf_dispose(&out);
    }
    k2a_arena_dispose(&arena);
    return 0;
}
