/*
 * libFuzzer target for the OpenAI Chat Completions request decoder (src/convert/openai_req.c): any bytes as a
 * request body, with small limits so that every limit path is reachable. A decode must either succeed with a
 * request whose every message has blocks, or fail with an error code and a message; it must never crash, leak
 * or read outside the body.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/arena.h"
#include "core/errors.h"
#include "convert/openai_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy so that ASan sees any read past the body */
    char *body = malloc(size != 0 ? size : 1);
    if (size != 0)
        memcpy(body, data, size);
    k2a_convert_limits_t limits = k2a_convert_limits_default();
    limits.max_depth = 32;
    limits.max_messages = 64;
    limits.max_blocks = 256;
    limits.max_tools = 16;
    limits.max_stop_sequences = 8;
    limits.max_string_bytes = 1 << 16;
    limits.max_json_value_bytes = 1 << 14;
    k2a_arena_t arena;
    k2a_arena_init(&arena, 8 << 20);
    k2a_ir_request_t req;
    k2a_convert_error_t err;
    int r = k2a_openai_decode(body, size, &limits, &arena, &req, &err);
    if (r == 0) {
        if (req.nmessages == 0 || req.model.len == 0)
            abort();
        for (size_t i = 0; i < req.nmessages; ++i)
            if (req.messages[i].nblocks == 0)
                abort();
    } else if (err.code != r || err.message[0] == '\0') {
        abort();
    }
    k2a_arena_dispose(&arena);
    free(body);
    return 0;
}
