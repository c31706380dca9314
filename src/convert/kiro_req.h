/*
 * The Kiro request: k2a_kiro_build_request() is the one call the HTTP handlers make to turn a decoded IR
 * request into the body of POST generateAssistantResponse (docs/kiro-protocol.md §2.2). It resolves the
 * model, runs the normalizer, derives conversationId / agentContinuationId (§2.8), encodes the
 * conversationState into one buffer, and enforces the payload budget: a body over it is measured, the oldest
 * history pairs are dropped and what is left is encoded again. The encoder alone (k2a_kiro_encode) is exposed for tests and for
 * re-encoding with another account's profileArn.
 */
#ifndef K2A_CONVERT_KIRO_REQ_H
#define K2A_CONVERT_KIRO_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"
#include "convert/convert_error.h"
#include "convert/ir.h"
#include "convert/model_map.h"
#include "convert/normalize.h"

typedef struct st_k2a_kiro_build_params_t {
    const k2a_model_map_t *model_map; /* required */
    k2a_normalize_config_t norm;      /* k2a_normalize_config_default(), overridden from the environment */
    /* conversation identity (§2.8), always a UUID: the first non-empty of session_header (x-claude-code-session-id), the
     * IR's session id (metadata.user_id), conversation_header (X-Conversation-ID), sent as it is when it is a UUID, else
     * the name-based UUID (version 3 bits) of md5("kiro2api-conversation" "|" value); without any, the one of
     * md5(client_ip "|" user_agent "|" YYYYMMDDHH of `now` in local time). Header values longer than 256 bytes are
     * ignored. */
    k2a_str_t session_header;
    k2a_str_t conversation_header;
    k2a_str_t client_ip;
    k2a_str_t user_agent;
    time_t now;
    k2a_str_t continuation_header; /* X-Agent-Continuation-ID when it is a UUID; else a fresh UUID v4 from `random` */
    k2a_str_t profile_arn;         /* sent at the root for Social accounts; empty = omitted */
    k2a_random_cb random;          /* NULL = OpenSSL RAND_bytes */
    void *random_ctx;
    /* Native thinking fields (kiro-protocol-2026.md §7): when true (the default) and k2a_model_accepts_effort says the
     * Kiro model takes them, adaptive thinking is sent as the root additionalModelRequestFields.output_config.effort
     * instead of tags, and redacted thinking of the history as reasoningContent. false: never (KIRO_NATIVE_EFFORT=false,
     * or the retry after Kiro refused the field). */
    bool native_fields;
} k2a_kiro_build_params_t;

typedef struct st_k2a_kiro_build_result_t {
    k2a_str_t kiro_model_id;      /* modelId sent */
    k2a_str_t public_model;       /* canonical public name of the model (k2a_model_resolution_t.public_name) */
    k2a_tool_names_t tool_names;  /* shortened tool names: map Kiro tool_use names back with k2a_tool_names_to_client */
    bool thinking;                /* thinking tags were sent: split <thinking> in the response (only then) */
    size_t history_turns_dropped; /* by the payload budget */
    size_t payload_bytes;         /* == out->len */
    k2a_str_t conversation_id;
    k2a_str_t agent_continuation_id;
    bool native_effort; /* additionalModelRequestFields was sent (the retry without it rebuilds with native_fields false) */
} k2a_kiro_build_result_t;

/* Sets params to defaults: default normalizer config, time(NULL), everything else empty. */
void k2a_kiro_build_params_init(k2a_kiro_build_params_t *params, const k2a_model_map_t *model_map);

/*
 * Builds the Kiro body into out (reset first; out->max bounds it, K2A_ETOOBIG past it). req is not modified and
 * must outlive nothing: the body is self-contained once built. Strings of *res point into the arena, the model
 * map or req. A body over params->norm.max_payload_bytes (0 = no budget) loses its oldest history pairs until it fits,
 * whatever the size of the history, so out->max needs only to be a little over the budget (the encoder may ask for 16
 * bytes beyond what it writes; the exchange leaves 256 for the profileArn). Returns 0, or a
 * negative K2A_E* with err filled for the client: K2A_EMODEL_UNKNOWN, K2A_EMODEL_INVALID, K2A_EEMPTY_MESSAGES,
 * K2A_EIMAGE_INVALID, K2A_EPAYLOAD_TOOBIG (over the budget even after dropping every droppable history pair; the message
 * starts "prompt is too long: <bytes> bytes > <budget> maximum", the wording clients compact on), K2A_ETOOBIG, K2A_ENOMEM.
 */
int k2a_kiro_build_request(const k2a_ir_request_t *req, const k2a_kiro_build_params_t *params, k2a_arena_t *arena, k2a_buf_t *out,
                           k2a_kiro_build_result_t *res, k2a_convert_error_t *err);

typedef struct st_k2a_kiro_encode_ids_t {
    k2a_str_t model_id;
    k2a_str_t conversation_id;
    k2a_str_t agent_continuation_id;
    k2a_str_t profile_arn; /* empty = omitted */
} k2a_kiro_encode_ids_t;

/*
 * Appends the JSON body for conv to out. history_spans (NULL or room for conv->nhistory + 1 offsets) receives
 * the offset in out where each history element starts (its separating comma included) and, last, where the
 * history array's closing bracket is. Returns 0, K2A_ETOOBIG (out->max) or K2A_ENOMEM.
 */
int k2a_kiro_encode(const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, k2a_buf_t *out, size_t *history_spans);

/* The exact number of bytes k2a_kiro_encode would append for conv, without writing them (linear in the input, no
 * allocation); history_spans as above, as offsets from the start of the body. */
size_t k2a_kiro_measure(const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, size_t *history_spans);

/* conversationId per the rules of k2a_kiro_build_params_t (points into params/req or the arena). */
k2a_str_t k2a_kiro_conversation_id(const k2a_ir_request_t *req, const k2a_kiro_build_params_t *params, k2a_arena_t *arena);

#endif
