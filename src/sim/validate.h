/*
 * kiro-sim's request validator: a pure function that answers what Kiro would answer to a
 * generateAssistantResponse body (status and Kiro's JSON error body), without any I/O. The server calls
 * it for every generate request; the fuzz target of the gateway calls it on the gateway's output.
 * The rules (documented one by one in validate.c) are the shapes Kiro rejects with 400 "Improperly
 * formed request." (docs/kiro-protocol.md §2.5, docs/peers.md §2.1), the payload-size limit, unknown model ids
 * (INVALID_MODEL_ID) and, in the 2026 mode (limits.modern), the profileArn rules of kiro-protocol-2026 §2/§13 checked
 * against the caller (the account behind the bearer token and the host region). The body is parsed with yajl_tree
 * after a nesting-depth pre-scan, so arbitrary input is safe.
 *
 * Two modes. k2a_sim_limits_init() gives the 2025 rules (the gateway's own unit and fuzz tests validate its output
 * with them); kiro-sim sets limits.modern unless it runs with --legacy-2025. The 2026 mode differs in:
 *   - the byte limit (--max-body-bytes, default 615000) answers 400 "Improperly formed request."; a token estimate
 *     (body bytes / 4) above the model's input window (the catalog below) answers CONTENT_LENGTH_EXCEEDS_THRESHOLD;
 *   - profileArn at the root is required (not for ksk_ API keys), must be the caller's (403), and in the host region;
 *   - only the dotted model ids of the catalog (plus --model ones) are valid, and FREE accounts get no opus or gpt;
 *   - additionalModelRequestFields is a known root key, valid only on the models whose catalog entry has an effort
 *     field, with an effort of the model's enum;
 *   - the tool rules answer Kiro's own bodies (TOOL_SCHEMA_INVALID, REQUEST_BODY_INVALID, TOOL_USE_RESULT_MISMATCH,
 *     TOOL_CONFIG_MISSING), and add the root-schema, name-charset, blank-description and unanswered-toolUse rules.
 */
#ifndef K2A_SIM_VALIDATE_H
#define K2A_SIM_VALIDATE_H

#include <stddef.h>
#include "core/buf.h"

#include <stdbool.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#define K2A_SIM_DEFAULT_MAX_PAYLOAD 600000    /* 2025 mode: above it CONTENT_LENGTH_EXCEEDS_THRESHOLD */
#define K2A_SIM_DEFAULT_MAX_BODY_BYTES 615000 /* 2026 mode: above it "Improperly formed request." */
#define K2A_SIM_BYTES_PER_TOKEN 4             /* 2026 mode: the input-token estimate is body bytes / 4 */
#define K2A_SIM_REGION_US "us-east-1"
#define K2A_SIM_REGION_EU "eu-central-1"
#define K2A_SIM_ARN_SOCIAL "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
#define K2A_SIM_ARN_SOCIAL_EU "arn:aws:codewhisperer:eu-central-1:699475941385:profile/EUSIMSOCIAL1"
#define K2A_SIM_ARN_BUILDERID "arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX"
#define K2A_SIM_DEFAULT_MAX_TOOL_DESCRIPTION 10000
#define K2A_SIM_MAX_TOOL_NAME 64
#define K2A_SIM_MAX_JSON_DEPTH 128

typedef struct st_k2a_sim_limits_t {
    bool modern;                     /* the 2026 rules (see above); false = 2025 */
    size_t max_payload;              /* bytes of the whole body; above it: 400 (body: see the mode) */
    size_t max_tool_description;     /* code points of one tool description */
    const char *const *extra_models; /* additional accepted modelIds (borrowed), may be NULL */
    size_t nextra_models;
} k2a_sim_limits_t;

/* Who sends the body (2026 mode): the account behind the bearer token and the region of the host it called. */
typedef struct st_k2a_sim_caller_t {
    const char *account_arn; /* the profileArn the account owns; NULL = an API key (no profileArn required) */
    bool enterprise;         /* IdC enterprise / external_idp: the Builder ID placeholder means "bearer invalid" */
    bool free_tier;          /* no opus, no gpt */
    const char *host_region; /* K2A_SIM_REGION_US or K2A_SIM_REGION_EU */
} k2a_sim_caller_t;

/* One model of the 2026 catalog (kiro-protocol-2026 §3, §12). */
typedef struct st_k2a_sim_model_t {
    const char *id, *name;
    uint32_t max_input, max_output; /* tokenLimits */
    double rate;                    /* rateMultiplier (Credit) */
    bool premium;                   /* opus and gpt: not on FREE accounts */
    bool images;                    /* supportedInputTypes has IMAGE */
    bool listed;                    /* false for the alias claude-sonnet-4 of claude-sonnet-4.0 */
    const char *effort_field;       /* the additionalModelRequestFields key ("output_config", "reasoning") or NULL */
    const char *effort_enum;        /* JSON array of the accepted efforts */
} k2a_sim_model_t;

/* The 2026 catalog: *n receives the number of entries. */
const k2a_sim_model_t *k2a_sim_catalog(size_t *n);
/* The catalog entry of id, or NULL. */
const k2a_sim_model_t *k2a_sim_catalog_find(const char *id);

typedef struct st_k2a_sim_validation_t {
    int status;            /* 200 when Kiro would accept the body, else 400 (403 for the profileArn ownership rule) */
    const char *rule;      /* stable id of the violated rule ("" when accepted), e.g. "history_alternation" */
    char body[1024];       /* Kiro's JSON error body ("" when accepted) */
    char detail[256];      /* human-readable reason with the JSON path (for logs and test messages) */
    char model_id[64];     /* conversationState.currentMessage.userInputMessage.modelId ("" when absent, cut at 63) */
    char profile_arn[128]; /* the root profileArn ("" when absent, cut at 127) */
} k2a_sim_validation_t;

/* Fills the default limits: the 2025 mode, 600000 bytes, 10000 code points, no extra models. */
void k2a_sim_limits_init(k2a_sim_limits_t *limits);

/* True when model_id is one of the ids kiro-sim knows or in limits: 2025 mode, the docs/kiro-protocol.md §2.7 table and
 * a few dotted ids; 2026 mode, the catalog. */
int k2a_sim_model_known(const char *model_id, const k2a_sim_limits_t *limits);

/* Validates a generateAssistantResponse body with the default limits. Returns out->status (200 or 400). Never allocates
 * more than O(len) memory and frees everything before returning. */
int k2a_sim_validate_request(const char *json, size_t len, k2a_sim_validation_t *out);

/* Same with explicit limits (NULL = defaults). When the body is accepted and user_text is not NULL, the text of the last
 * user turn is appended to it: currentMessage content, then each toolResult text item, separated by "\n". That is where
 * the simulator looks for [[sim:...]] directives. */
int k2a_sim_validate_request_ex(const char *json, size_t len, const k2a_sim_limits_t *limits, k2a_sim_validation_t *out,
                                k2a_buf_t *user_text);

/* Same with the caller (used by the 2026 rules; NULL = an API key in us-east-1 on a non-free tier). */
int k2a_sim_validate_request_caller(const char *json, size_t len, const k2a_sim_limits_t *limits, const k2a_sim_caller_t *caller,
                                    k2a_sim_validation_t *out, k2a_buf_t *user_text);

/* k2a_json_text_depth's answer (the deepest nesting, stopping once past limit; *comment on a '/' outside strings),
 * reading the inside of strings 8 bytes at a time: a request body is mostly string content. */
size_t k2a_sim_json_depth(const char *s, size_t n, size_t limit, bool *comment);

/* The arena-built yajl_val tree of jtree.c: yajl_tree_parse's tree for a comment-free body nested at most max_depth
 * deep whose numbers are plain integers of at most 15 digits; NULL for anything else (the caller then takes the
 * yajl_tree_parse path). The tree lives until the next parse, reset or dispose of t. */
typedef struct st_k2a_sim_jtree_t {
    struct st_jt_block_t *head;
} k2a_sim_jtree_t;
yajl_val k2a_sim_jtree_parse(k2a_sim_jtree_t *t, const char *json, size_t len, size_t max_depth);
void k2a_sim_jtree_reset(k2a_sim_jtree_t *t);
void k2a_sim_jtree_dispose(k2a_sim_jtree_t *t);

#endif
