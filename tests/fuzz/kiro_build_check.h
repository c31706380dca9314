/*
 * Shared by the request fuzz targets (fuzz_anthropic_req, fuzz_openai_req, fuzz_responses_req): builds the Kiro body of a decoded
 * request exactly as the gateway does (k2a_kiro_build_request, then the profileArn splice of src/http/exchange.c) and checks the
 * result, with the output buffer bounded as the gateway bounds it. A build either fails cleanly (a negative K2A_E* with a
 * client message, nothing else; never the buffer's K2A_ETOOBIG) or yields a body within the payload budget that is
 * valid JSON AND that kiro-sim's validator (k2a_sim_validate_request: the shapes real Kiro answers 400 "Improperly formed
 * request." to) accepts. Anything else aborts with the validator's rule and detail on stderr.
 */
#ifndef K2A_FUZZ_KIRO_BUILD_CHECK_H
#define K2A_FUZZ_KIRO_BUILD_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "convert/kiro_req.h"
#include "core/errors.h"
#include "core/log.h"
#include "sim/validate.h"

#define FUZZ_CHECK(c, ...)                                                                                                         \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                                          \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

static void fuzz_fixed_random(void *ctx, void *buf, size_t len)
{
    memset(buf, 7, len);
}

static void fuzz_quiet_logs(void)
{
    static int done;
    if (!done) {
        k2a_log_configure(K2A_LOG_ERROR + 1, K2A_LOG_TEXT, false, NULL);
        done = 1;
    }
}

/* Validates one body; aborts with the rule when kiro-sim would answer 400. */
static void fuzz_validate_body(const char *what, const char *body, size_t len)
{
    yajl_val v = yajl_tree_parse(body, NULL, 0);
    FUZZ_CHECK(v != NULL, "%s is not valid JSON: %.*s", what, (int)(len > 2000 ? 2000 : len), body);
    yajl_tree_free(v);
    k2a_sim_validation_t val;
    /* Kiro as it is now (kiro-sim's 2026 rules, no caller: the profileArn is the account's business). A model name Kiro does
     * not know is passed through by rule and refused by Kiro (INVALID_MODEL_ID): the pool's catalogs route it, so that
     * rejection is not a conversion defect. */
    k2a_sim_limits_t limits;
    k2a_sim_limits_init(&limits);
    limits.modern = true;
    int st = k2a_sim_validate_request_ex(body, len, &limits, &val, NULL);
    FUZZ_CHECK(st == 200 || strcmp(val.rule, "model_unknown") == 0, "%s rejected by the validator: %s (%s): %.*s", what, val.rule,
               val.detail, (int)(len > 2000 ? 2000 : len), body);
}

/* Builds req for Kiro with the given payload budget (0 = the default) and checks the outcome as described above. */
static void fuzz_check_kiro_build(const k2a_ir_request_t *req, size_t max_payload_bytes, k2a_arena_t *arena)
{
    static k2a_model_map_t *map;
    k2a_convert_error_t err;
    if (map == NULL && k2a_model_map_create(NULL, 0, &map, &err) != 0)
        abort();
    k2a_kiro_build_params_t p;
    k2a_kiro_build_params_init(&p, map);
    p.random = fuzz_fixed_random;
    p.now = 1767225600;
    if (max_payload_bytes != 0)
        p.norm.max_payload_bytes = max_payload_bytes;
    /* the gateway's buffer: KIRO_MAX_PAYLOAD_BYTES, with the budget 256 bytes below it (src/http/exchange.c) */
    k2a_buf_t out;
    k2a_buf_init(&out, max_payload_bytes != 0 ? max_payload_bytes + 256 : 64 * 1024 * 1024);
    k2a_kiro_build_result_t res;
    memset(&err, 0, sizeof(err));
    int r = k2a_kiro_build_request(req, &p, arena, &out, &res, &err);
    if (r != 0) {
        FUZZ_CHECK(r < 0 && err.code == r && err.message[0] != '\0', "unclean build error %d (%s) code %d message '%s'", r,
                   k2a_errname(r), err.code, err.message);
        /* a conversation over the budget is trimmed or "prompt is too long", never the buffer's limit */
        FUZZ_CHECK(r != K2A_ETOOBIG, "K2A_ETOOBIG from the bounded buffer: %s", err.message);
        FUZZ_CHECK(r != K2A_EPAYLOAD_TOOBIG || strncmp(err.message, "prompt is too long: ", 20) == 0, "message '%s'", err.message);
    } else {
        FUZZ_CHECK(out.len == res.payload_bytes, "payload_bytes %zu != body length %zu", res.payload_bytes, out.len);
        FUZZ_CHECK(out.len <= p.norm.max_payload_bytes, "body of %zu bytes over the budget of %zu", out.len,
                   p.norm.max_payload_bytes);
        FUZZ_CHECK(out.len != 0 && out.base[out.len - 1] == '}', "body does not end with '}' (the profileArn splice needs it)");
        fuzz_validate_body("the Kiro body", k2a_buf_cstr(&out), out.len);
        /* the gateway splices a Social account's profileArn before the closing brace (src/http/exchange.c) */
        k2a_buf_t spliced;
        k2a_buf_init(&spliced, 0);
        k2a_buf_append(&spliced, out.base, out.len - 1);
        k2a_buf_appendstr(&spliced, ",\"profileArn\":\"arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK\"}");
        fuzz_validate_body("the Kiro body with a profileArn", k2a_buf_cstr(&spliced), spliced.len);
        k2a_buf_dispose(&spliced);
    }
    k2a_buf_dispose(&out);
}

/* The small decoder limits of the OpenAI request targets, so that every limit path is reachable. */
static inline k2a_convert_limits_t fuzz_small_limits(void)
{
    k2a_convert_limits_t limits = k2a_convert_limits_default();
    limits.max_depth = 32;
    limits.max_messages = 64;
    limits.max_blocks = 256;
    limits.max_tools = 16;
    limits.max_stop_sequences = 8;
    limits.max_string_bytes = 1 << 16;
    limits.max_json_value_bytes = 1 << 14;
    return limits;
}

/* The outcome r of a decode: an accepted request has a model and messages that all have blocks, and its Kiro build
 * (with this payload budget) is checked; a refusal is a negative K2A_E* with a message. */
static inline void fuzz_check_decoded(int r, const k2a_ir_request_t *req, const k2a_convert_error_t *err, size_t max_payload_bytes,
                                      k2a_arena_t *arena)
{
    if (r == 0) {
        FUZZ_CHECK(req->nmessages != 0 && req->model.len != 0, "accepted without messages or model");
        for (size_t i = 0; i < req->nmessages; ++i)
            FUZZ_CHECK(req->messages[i].nblocks != 0, "message %zu has no block", i);
        fuzz_check_kiro_build(req, max_payload_bytes, arena);
    } else {
        FUZZ_CHECK(r < 0 && err->code == r && err->message[0] != '\0', "unclean decode error %d code %d message '%s'", r, err->code,
                   err->message);
    }
}

#endif
