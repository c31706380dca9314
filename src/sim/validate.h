/*
 * kiro-sim's request validator: a pure function that answers what Kiro would answer to a
 * generateAssistantResponse body (status and Kiro's JSON error body), without any I/O. The server calls
 * it for every generate request; the fuzz target of the gateway calls it on the gateway's output.
 * The rules (documented one by one in validate.c) are the shapes Kiro rejects with 400 "Improperly
 * formed request." (docs/kiro-protocol.md §2.5, docs/peers.md §2.1), the payload-size limit
 * (CONTENT_LENGTH_EXCEEDS_THRESHOLD) and unknown model ids (INVALID_MODEL_ID). The body is parsed with
 * yajl_tree after a nesting-depth pre-scan, so arbitrary input is safe.
 */
#ifndef K2A_SIM_VALIDATE_H
#define K2A_SIM_VALIDATE_H

#include <stddef.h>
#include "core/buf.h"

#define K2A_SIM_DEFAULT_MAX_PAYLOAD 600000
#define K2A_SIM_DEFAULT_MAX_TOOL_DESCRIPTION 10000
#define K2A_SIM_MAX_TOOL_NAME 64
#define K2A_SIM_MAX_JSON_DEPTH 128

typedef struct st_k2a_sim_limits_t {
    size_t max_payload;              /* bytes of the whole body; above it: 400 CONTENT_LENGTH_EXCEEDS_THRESHOLD */
    size_t max_tool_description;     /* code points of one tool description */
    const char *const *extra_models; /* additional accepted modelIds (borrowed), may be NULL */
    size_t nextra_models;
} k2a_sim_limits_t;

typedef struct st_k2a_sim_validation_t {
    int status;       /* 200 when Kiro would accept the body, else 400 */
    const char *rule; /* stable id of the violated rule ("" when accepted), e.g. "history_alternation" */
    char body[192];   /* Kiro's JSON error body ("" when accepted) */
    char detail[256]; /* human-readable reason with the JSON path (for logs and test messages) */
} k2a_sim_validation_t;

/* Fills the default limits (600000 bytes, 10000 code points, no extra models). */
void k2a_sim_limits_init(k2a_sim_limits_t *limits);

/* True when model_id is one of the ids kiro-sim knows (docs/kiro-protocol.md §2.7 table + dotted ids) or in limits. */
int k2a_sim_model_known(const char *model_id, const k2a_sim_limits_t *limits);

/* Validates a generateAssistantResponse body with the default limits. Returns out->status (200 or 400). Never allocates
 * more than O(len) memory and frees everything before returning. */
int k2a_sim_validate_request(const char *json, size_t len, k2a_sim_validation_t *out);

/* Same with explicit limits (NULL = defaults). When the body is accepted and user_text is not NULL, the text of the last
 * user turn is appended to it: currentMessage content, then each toolResult text item, separated by "\n". That is where
 * the simulator looks for [[sim:...]] directives. */
int k2a_sim_validate_request_ex(const char *json, size_t len, const k2a_sim_limits_t *limits, k2a_sim_validation_t *out,
                                k2a_buf_t *user_text);

#endif
