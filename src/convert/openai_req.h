/*
 * OpenAI Chat Completions request decoder: the body of POST /v1/chat/completions -> k2a_ir_request_t
 * (kiro-protocol.md §2.9 [REC]: the complete mapping, not kiro2api's lossy one). yajl SAX over the whole
 * body in ONE yajl_parse call (feasibility.md §0.1), no DOM: strings point into the body unless they
 * contain escapes (then they are copied to the arena). Every peer-controlled size is bounded by
 * k2a_convert_limits_t; errors name the JSON path ("messages[2].tool_calls[0].function.arguments: ...").
 */
#ifndef K2A_CONVERT_OPENAI_REQ_H
#define K2A_CONVERT_OPENAI_REQ_H

#include <stddef.h>
#include "core/arena.h"
#include "convert/convert_error.h"
#include "convert/ir.h"

/* Budgets (max_tokens is not sent to Kiro; the budget goes into the thinking prompt) chosen for
 * reasoning_effort. "none" turns thinking off. */
#define K2A_OPENAI_BUDGET_MINIMAL 1024
#define K2A_OPENAI_BUDGET_LOW 4096
#define K2A_OPENAI_BUDGET_MEDIUM 16384
#define K2A_OPENAI_BUDGET_HIGH 24576
#define K2A_OPENAI_BUDGET_XHIGH 32768

/* The system instruction added for response_format json_object (and, followed by the schema, json_schema). */
#define K2A_OPENAI_JSON_INSTRUCTION                                                                                                \
    "Respond with a single valid JSON object and nothing else: no text before or after it and no Markdown code fences."

/*
 * Decodes body[0..len) into *out (zeroed first). Strings of *out point into body
 * (which must outlive *out) or into arena. limits NULL = k2a_convert_limits_default().
 *
 * Mapping (documented rules):
 *  - messages: `system` and `developer` -> out->system TEXT blocks, in order, wherever they appear; `user` -> a USER
 *    message (string -> one TEXT block; parts: `text` -> TEXT, `image_url` with a base64 `data:` URL -> IMAGE, an
 *    http(s) URL -> K2A_EIMAGE_URL); `assistant` -> `reasoning_content` as a THINKING block, content as TEXT (empty
 *    text dropped; `refusal` ignored), `tool_calls` (and a legacy `function_call`) as TOOL_USE blocks; an assistant
 *    message left with no block is dropped; `tool` (and legacy `function`) -> a TOOL_RESULT block (tool_use_id =
 *    tool_call_id) in a USER message: consecutive tool messages, and a user message right after them, form ONE user
 *    turn. `name` fields are ignored.
 *  - tool-call arguments: a JSON string holding a JSON object -> `input` = that object as compact JSON; an empty or
 *    blank string -> "{}"; anything else (invalid JSON, truncated JSON, an array, a string...) -> input_raw = the raw
 *    string and input = {"arguments":"<raw>"}, so that the model still sees what it sent. An object instead of a
 *    string is accepted as the arguments themselves.
 *  - tools: type "function" only (other types -> K2A_EBAD_PARAM); `parameters` -> input_schema as compact JSON with
 *    top-level `strict` removed, `"type":"object"` added when missing and `"properties":{}` added to an object schema
 *    without properties; everything else ($schema, $defs/$ref, additionalProperties, anyOf...) is kept since Kiro
 *    accepts it (kiro-protocol.md §2.10); missing parameters -> {"type":"object","properties":{}}; `strict` dropped.
 *    Legacy `functions` / `function_call` are accepted the same way.
 *  - tool_choice: "auto" | "none" | "required" (-> ANY) | {"type":"function","function":{"name"}} (-> TOOL).
 *  - max_completion_tokens wins over max_tokens; temperature, top_p, stop (string or array), stream,
 *    stream_options.include_usage are copied; n > 1 -> K2A_EBAD_PARAM; user, seed, logprobs, penalties... ignored.
 *  - reasoning_effort: none -> thinking off; minimal|low|medium|high|xhigh -> K2A_THINKING_ENABLED with effort set
 *    and budget_tokens K2A_OPENAI_BUDGET_*; other values -> K2A_EBAD_PARAM.
 *  - response_format: json_object -> out->json_object and one more system block (the last) holding
 *    K2A_OPENAI_JSON_INSTRUCTION; json_schema -> the same plus " It must conform to this JSON Schema:\n<schema>".
 *
 * Returns 0, or a negative K2A_E* with err filled (message "<json path>: <what is wrong>"): K2A_EJSON_SYNTAX,
 * K2A_EJSON_TYPE, K2A_EJSON_DEPTH, K2A_EMISSING_FIELD, K2A_EEMPTY_MESSAGES, K2A_EEMPTY_CONTENT, K2A_EBAD_PARAM,
 * K2A_EIMAGE_URL, K2A_EIMAGE_INVALID, K2A_ETOOBIG (a limit or the arena's maximum), K2A_ENOMEM.
 */
int k2a_openai_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena, k2a_ir_request_t *out,
                      k2a_convert_error_t *err);

#endif
