/*
 * The normalizer: rewrites a dialect-neutral IR request into the shape Kiro accepts (the "400-proofing",
 * docs/kiro-protocol.md §2.3-§2.6, §4.9, peers.md §2.1) and produces a k2a_kiro_conv_t that the Kiro encoder
 * (kiro_req.h) serialises field by field. It is deterministic: the same IR and config always give the same
 * conversation. Each rule is one function (normalize_rules.h) that logs at debug level when it changes
 * something. The request IR itself is never modified: rules work on a shallow copy and allocate new arrays
 * in the arena whenever they change one, so token estimation on the original IR stays valid.
 */
#ifndef K2A_CONVERT_NORMALIZE_H
#define K2A_CONVERT_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/str.h"
#include "convert/convert_error.h"
#include "convert/ir.h"
#include "convert/tool_schema.h"

typedef struct st_k2a_normalize_config_t {
    size_t max_tool_description;     /* MAX_TOOL_DESCRIPTION_LENGTH: bytes, cut on a UTF-8 boundary; default 10 000 */
    size_t max_payload_bytes;        /* KIRO_MAX_PAYLOAD_BYTES: whole Kiro body; default 600 000 (k2a_kiro_build_request) */
    size_t image_history_messages;   /* images are kept in the current message and in the last N messages before it;
                                        older ones become the text "[image]"; default 5 */
    size_t max_image_bytes;          /* decoded bytes per image; default 20 MiB (§2.4) */
    int64_t thinking_budget_default; /* <max_thinking_length> when none was given; default 20 000 */
    int64_t thinking_budget_min;     /* budgets are clamped to [min, max]; defaults 1 024 and 24 576 */
    int64_t thinking_budget_max;
    k2a_tool_schema_strip_t tool_schema_strip; /* KIRO_TOOL_SCHEMA_STRIP: strict (default) or minimal, see tool_schema.h */
    bool native_effort;                        /* per request (set by k2a_kiro_build_request): the model takes
                                                  additionalModelRequestFields.output_config.effort, so adaptive thinking goes there, not in tags */
    bool reasoning_content; /* per request: the model takes native fields, so redacted thinking of the history is sent as
                               assistantResponseMessage.reasoningContent.redactedContent (else it is left out) */
} k2a_normalize_config_t;

#define K2A_NORMALIZE_DEFAULT_MAX_TOOL_DESCRIPTION 10000
#define K2A_NORMALIZE_DEFAULT_MAX_PAYLOAD_BYTES 600000
#define K2A_NORMALIZE_DEFAULT_IMAGE_HISTORY_MESSAGES 5
#define K2A_NORMALIZE_DEFAULT_MAX_IMAGE_BYTES ((size_t)20 * 1024 * 1024)
#define K2A_NORMALIZE_DEFAULT_THINKING_BUDGET 20000
#define K2A_NORMALIZE_THINKING_BUDGET_MIN 1024
#define K2A_NORMALIZE_THINKING_BUDGET_MAX 24576
#define K2A_NORMALIZE_THINKING_MIN_MAX_TOKENS 512 /* no thinking below this max_tokens (kiro-protocol-2026.md §7) */

k2a_normalize_config_t k2a_normalize_config_default(void);

/* Placeholders the normalizer writes (documented in tests/vectors/convert/README.md). */
#define K2A_NORM_EMPTY_USER_CONTENT "Continue."                            /* user turn without text and without tool results */
#define K2A_NORM_EMPTY_ASSISTANT_CONTENT " "                               /* assistant turn with tool uses, no text (kiro.rs) */
#define K2A_NORM_EMPTY_ASSISTANT_TEXT "OK"                                 /* assistant turn without text and tool uses */
#define K2A_NORM_SYSTEM_ACK "OK"                                           /* assistant turn after the system prompt (kiro2api) */
#define K2A_NORM_IMAGE_PLACEHOLDER "[image]"                               /* an image that is not sent as an image */
#define K2A_NORM_EMPTY_TOOL_RESULT "Tool executed with no output"          /* tool result without content (kiro2api) */
#define K2A_NORM_STUB_TOOL_DESCRIPTION "Tool used in conversation history" /* kiro.rs */
#define K2A_NORM_MAX_TOOL_NAME 64

/* ---------- tool-name map (Kiro accepts only ^[a-zA-Z0-9_-]{1,64}$) ---------- */

typedef struct st_k2a_tool_name_pair_t {
    k2a_str_t kiro;   /* the name sent to Kiro: sanitized prefix + "_" + 12 hex of sha256(client), at most 64 bytes */
    k2a_str_t client; /* the client's original name */
} k2a_tool_name_pair_t;

typedef struct st_k2a_tool_names_t {
    k2a_tool_name_pair_t *pairs; /* only the rewritten names; in the arena */
    size_t n, cap;
    void *index; /* the normalizer's lookup set of client names (internal; NULL until needed) */
} k2a_tool_names_t;

/* The client's name for a tool name Kiro used (a tool_use in the response). Names that were not rewritten come
 * back unchanged. m may be NULL. The result points into the map or is kiro_name itself. */
k2a_str_t k2a_tool_names_to_client(const k2a_tool_names_t *m, k2a_str_t kiro_name);

/* The effort of adaptive thinking: output_config.effort / reasoning_effort when it is a lower-case word, else "high". */
k2a_str_t k2a_norm_thinking_effort(const k2a_ir_request_t *req);

/* ---------- the normalized conversation ---------- */

typedef struct st_k2a_kiro_image_t {
    k2a_str_t format; /* "png", "jpeg", "gif", "webp" */
    k2a_str_t data;   /* base64 as received */
    bool checked;     /* validated as plain base64 (the encoder may then copy it without escaping) */
} k2a_kiro_image_t;

typedef struct st_k2a_kiro_tool_result_t {
    k2a_str_t tool_use_id;
    k2a_str_t text; /* sent as content [{"text": text}] */
    bool is_error;
} k2a_kiro_tool_result_t;

typedef struct st_k2a_kiro_tool_use_t {
    k2a_str_t id;
    k2a_str_t name;  /* Kiro name (shortened when needed) */
    k2a_str_t input; /* compact JSON object text */
} k2a_kiro_tool_use_t;

typedef struct st_k2a_kiro_turn_t {
    bool assistant;
    k2a_str_t content;
    k2a_kiro_image_t *images; /* user turns */
    size_t nimages;
    k2a_kiro_tool_result_t *results; /* user turns */
    size_t nresults;
    k2a_kiro_tool_use_t *uses; /* assistant turns */
    size_t nuses;
    k2a_str_t redacted; /* assistant turns: the data of the first redacted_thinking block */
} k2a_kiro_turn_t;

typedef struct st_k2a_kiro_tool_spec_t {
    k2a_str_t name;        /* Kiro name */
    k2a_str_t description; /* non-empty, at most max_tool_description bytes */
    k2a_str_t schema;      /* compact JSON object text */
} k2a_kiro_tool_spec_t;

typedef struct st_k2a_kiro_conv_t {
    k2a_kiro_turn_t *history; /* strictly user, assistant, user, ... ending with assistant */
    size_t nhistory;
    size_t nsystem; /* 2 when history[0..1] is the system prompt pair, else 0 */
    k2a_kiro_turn_t current;
    k2a_kiro_tool_spec_t *tools;
    size_t ntools;
    k2a_tool_names_t names;
    bool thinking;           /* thinking was requested (tags or native field): the response must be split on <thinking> */
    k2a_str_t native_effort; /* non-empty: sent as additionalModelRequestFields.output_config.effort (no tags) */
    bool reasoning_content;  /* history turns' redacted thinking is sent as reasoningContent (cfg->reasoning_content) */
} k2a_kiro_conv_t;

/*
 * Runs every rule (see normalize_rules.h for the list and order) on req and fills *out (all memory from the
 * arena; strings may point into the request body). thinking_forced: the model name asked for thinking
 * ("-thinking" suffix). Returns 0, or K2A_EEMPTY_MESSAGES (no user message), K2A_EIMAGE_INVALID, K2A_ENOMEM,
 * with err filled.
 */
int k2a_normalize_for_kiro(const k2a_ir_request_t *req, const k2a_normalize_config_t *cfg, bool thinking_forced, k2a_arena_t *arena,
                           k2a_kiro_conv_t *out, k2a_convert_error_t *err);

/* Number of history pairs (user+assistant after the system pair) that k2a_normalize_drop_oldest may drop: all of
 * them, except the last one when the current message answers its tool calls. */
size_t k2a_normalize_droppable_pairs(const k2a_kiro_conv_t *conv);

/*
 * Payload-budget rule: drops the npairs oldest user/assistant pairs after the system pair (npairs is clamped to
 * k2a_normalize_droppable_pairs). Tool calls and their results stay paired: the results in the first remaining
 * user turn answered the last dropped assistant, so they are removed too (an emptied turn gets the empty-user
 * placeholder). Returns the number of history turns removed.
 */
size_t k2a_normalize_drop_oldest(k2a_kiro_conv_t *conv, size_t npairs);

#endif
