/*
 * Anthropic Messages request decoder: one yajl SAX pass over the whole body (ONE yajl_parse call plus
 * yajl_complete_parse, docs/feasibility.md §5) straight into a k2a_ir_request_t, no DOM. Strings that
 * yajl hands out as pointers into the body are kept zero-copy; strings yajl had to unescape are copied
 * into the arena. Tool inputs and input_schema are captured as compact JSON text with yajl_gen during
 * the same walk. Serves POST /v1/messages and /v1/messages/count_tokens.
 */
#ifndef K2A_CONVERT_ANTHROPIC_REQ_H
#define K2A_CONVERT_ANTHROPIC_REQ_H

#include <stddef.h>
#include "core/arena.h"
#include "convert/convert_error.h"
#include "convert/ir.h"

/*
 * Decodes an Anthropic Messages request body into *out.
 *
 * body/len: the whole request body. It must stay alive and unchanged as long as *out is used (strings of
 * the IR point into it). arena: receives every copied string and every array of the IR. limits: NULL for
 * k2a_convert_limits_default().
 *
 * Accepted (docs/kiro-protocol.md §2.3 [REC], feasibility.md §7): model, max_tokens, system (string or
 * text blocks), messages (role user/assistant/system; content string or blocks: text, image (base64),
 * tool_use, tool_result (string or text/image blocks, is_error), thinking (+signature), redacted_thinking,
 * document (text source)), tools (custom tools; server tools and web_search/websearch are dropped),
 * tool_choice, thinking (enabled/adaptive/disabled, display), output_config.effort, stop_sequences,
 * temperature, top_p, metadata.user_id (session id extracted), stream. Unknown fields and unknown block
 * types are ignored (debug log). null counts as absent.
 *
 * Returns 0, or a negative K2A_E* with err filled: K2A_EJSON_SYNTAX (malformed or truncated JSON),
 * K2A_EJSON_TYPE (a field of the wrong type), K2A_EJSON_DEPTH (nesting past limits->max_depth),
 * K2A_EMISSING_FIELD, K2A_EIMAGE_URL (image/document source that is not inline data), K2A_EBAD_PARAM,
 * K2A_ETOOBIG (a count or size limit), K2A_ENOMEM (arena exhausted). The message names the JSON path.
 * On error *out is left in an unspecified (but safe to discard) state.
 */
int k2a_anthropic_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err);

/*
 * Extracts the session id from an Anthropic metadata.user_id: either a JSON-encoded object holding
 * "session_id" (Claude Code ≥ 2.1) or the older "user_<hash>_account__session_<uuid>" form. The result must
 * look like a UUID (36 chars, hex and dashes). Returns the id (pointing into user_id or into the arena) or
 * K2A_STR_NULL.
 */
k2a_str_t k2a_anthropic_session_from_user_id(k2a_str_t user_id, k2a_arena_t *arena);

#endif
