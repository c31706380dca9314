/*
 * The normalizer's rules, one function each, in the order k2a_normalize_for_kiro applies them. Module-internal
 * (src/convert and its unit tests). Message-level rules work on a working copy of the IR (k2a_ir_request_t whose
 * messages array belongs to the normalizer): they replace arrays, never write into the request's own arrays.
 * Each returns 0 or a negative K2A_E* (with err filled when it is the client's fault), and logs at debug level
 * when it changed something.
 */
#ifndef K2A_CONVERT_NORMALIZE_RULES_H
#define K2A_CONVERT_NORMALIZE_RULES_H

#include "convert/normalize.h"
#include "convert/tool_schema.h"

/* 1. Images older than cfg->image_history_messages messages before the last user message become the text
 *    "[image]" (also inside tool results). */
int k2a_norm_old_images(k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_arena_t *arena);
/* 2. Every remaining image: standard base64 (with padding), decoded size <= cfg->max_image_bytes, magic bytes
 *    matching the declared media type when recognisable (§2.4). K2A_EIMAGE_INVALID naming messages[i]. */
int k2a_norm_validate_images(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_convert_error_t *err);
/* Checks one image; on failure writes the reason into why. */
int k2a_norm_check_image(k2a_str_t media_type, k2a_str_t data, size_t max_bytes, char *why, size_t whylen);
/* 3. system blocks + role-system messages (in order) → one text joined with "\n"; system messages leave the list. */
int k2a_norm_fold_system(k2a_ir_request_t *w, k2a_arena_t *arena, k2a_str_t *system);
/* 4. Thinking config (or forced by the model name) → <thinking_mode>… tags prefixed to the system text (§4.9, 2026 §7).
 *    Nothing when max_tokens is given and below K2A_NORMALIZE_THINKING_MIN_MAX_TOKENS (*on false).
 *    enabled: <thinking_mode>enabled</thinking_mode><max_thinking_length>B</max_thinking_length> with B clamped to
 *    [cfg min, cfg max], then to at most 3/4 of max_tokens; adaptive:
 *    <thinking_mode>adaptive</thinking_mode><thinking_effort>E</thinking_effort> (E from k2a_norm_thinking_effort), or,
 *    when cfg->native_effort, no tags and *native_effort = E (sent as additionalModelRequestFields).
 *    Nothing is added when the system text already has <thinking_mode>. *on tells whether thinking is on. */
int k2a_norm_thinking_prefix(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, bool forced, k2a_arena_t *arena,
                             k2a_str_t *system, bool *on, k2a_str_t *native_effort);
/* 5. Trailing assistant messages (prefill) are dropped; no user message left → K2A_EEMPTY_MESSAGES. */
int k2a_norm_drop_prefill(k2a_ir_request_t *w, k2a_convert_error_t *err);
/* 6. Consecutive messages of the same role are merged (blocks concatenated). */
int k2a_norm_merge_same_role(k2a_ir_request_t *w, k2a_arena_t *arena);
/* 7. A conversation that starts with an assistant message gets a user turn "Continue." before it. */
int k2a_norm_leading_assistant(k2a_ir_request_t *w, k2a_arena_t *arena);
/* 8. Duplicate ids in one message are removed, the first one kept: tool_result blocks with the same tool_use_id in a
 *    user message, tool_use blocks with the same id in an assistant message. */
int k2a_norm_dedupe_tool_results(k2a_ir_request_t *w, k2a_arena_t *arena);
/* 9. A tool_use not answered by a tool_result in the next (user) message is removed. */
int k2a_norm_drop_unanswered_tool_uses(k2a_ir_request_t *w, k2a_arena_t *arena);
/* 10. A tool_result that answers no tool_use of the previous (assistant) message is removed. */
int k2a_norm_drop_orphan_tool_results(k2a_ir_request_t *w, k2a_arena_t *arena);

/* 11. The Kiro name of a tool: unchanged when it matches ^[a-zA-Z0-9_-]{1,64}$ and is not "web_search" or "websearch"
 *     (names Kiro keeps for its server tool; k2a_norm_tool_name_ok), else the
 *     name with every other character (a UTF-8 sequence counts as one) as '_', cut to 51 characters, + "_" + 12 hex
 *     of sha256(name) (at most 64 bytes); rewritten names are recorded in names. */
bool k2a_norm_tool_name_ok(k2a_str_t name);
int k2a_norm_tool_name(k2a_str_t name, k2a_tool_names_t *names, k2a_arena_t *arena, k2a_str_t *out);
/* 12. Tool description: an empty one becomes the tool's name; cut to max bytes on a UTF-8 character boundary. */
k2a_str_t k2a_norm_tool_description(k2a_str_t desc, k2a_str_t name, size_t max);
/* 13. input_schema: missing/empty → {"type":"object","properties":{}}; else k2a_tool_schema_sanitize (tool_schema.h:
 *     root type object, root combinators flattened, $schema and cache_control removed, keywords stripped per mode).
 *     A schema already in that shape is returned zero-copy. */
int k2a_norm_tool_schema(k2a_str_t schema, k2a_tool_schema_strip_t mode, k2a_arena_t *arena, k2a_str_t *out);
/* 11-13 for every tool of the request; tools whose Kiro name repeats an earlier one (case-insensitive) are dropped. A schema
 * too deep or too large to convert is the client's error (err names the tool). */
int k2a_norm_tools(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_tool_names_t *names, k2a_arena_t *arena,
                   k2a_kiro_tool_spec_t **out, size_t *nout, k2a_convert_error_t *err);
/* 14. History thinking: "<thinking>T</thinking>\n\n" + text (or just the tag when there is no text). */
k2a_str_t k2a_norm_inline_thinking(k2a_str_t thinking, k2a_str_t text, k2a_arena_t *arena);
/* 15. Renders one user / assistant IR message into a Kiro turn (text blocks joined with "\n"; images of tool
 *     results become images of the turn and "[image]" in the result text; thinking inlined when inline_thinking,
 *     dropped otherwise; tool names mapped). */
int k2a_norm_render_user(const k2a_ir_message_t *m, k2a_tool_names_t *names, k2a_arena_t *arena, k2a_kiro_turn_t *out);
int k2a_norm_render_assistant(const k2a_ir_message_t *m, bool inline_thinking, k2a_tool_names_t *names, k2a_arena_t *arena,
                              k2a_kiro_turn_t *out);
/* 16. Empty turns: a user turn without text (after trimming) and without tool results gets "Continue."; an assistant
 *     turn without text gets " " when it has tool uses, and "OK" when it has none (blank text after trimming). */
void k2a_norm_fill_empty(k2a_kiro_turn_t *t);
/* 17. Tools referenced by history tool uses but absent from the tool list (case-insensitive) get stub specs. */
int k2a_norm_stub_tools(k2a_kiro_conv_t *c, k2a_arena_t *arena);

#endif
