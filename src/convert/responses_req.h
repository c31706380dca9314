/*
 * OpenAI Responses API request decoder: the body of POST /v1/responses -> k2a_ir_request_t, on the same IR and with
 * the same mapping decisions as Chat Completions (openai_req.h): it drives the Chat decoder's assembly functions
 * (openai_internal.h) from its own yajl SAX state machine, so that one conversation sent through either dialect gives
 * Kiro the same body. One yajl_parse call over the whole body, no DOM, every peer-controlled size bounded by
 * k2a_convert_limits_t, errors name the JSON path ("input[2].content[0].type: ...").
 */
#ifndef K2A_CONVERT_RESPONSES_REQ_H
#define K2A_CONVERT_RESPONSES_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include "core/arena.h"
#include "convert/convert_error.h"
#include "convert/ir.h"

/* What a Responses request carries besides the IR: the fields the response echoes and the stored-conversation
 * bookkeeping. Strings point into the body or the arena, like the IR's. */
typedef struct st_k2a_responses_extra_t {
    k2a_str_t previous_response_id; /* empty when absent */
    bool store;                     /* OpenAI's default: true */
    bool parallel_tool_calls;       /* default true */
    bool has_max_output_tokens;
    int64_t max_output_tokens;
    k2a_str_t instructions;      /* as sent (empty when absent) */
    k2a_str_t instructions_json; /* the same as the JSON string literal of the body (echoed without escaping again) */
    k2a_str_t metadata;          /* compact JSON object, empty when absent */
    k2a_str_t input_items;       /* the request's input as a JSON array of items ("[...]"; a string input becomes one user
                                    message item); what a stored response keeps of its input */
    k2a_str_t *item_json;        /* each item of the stored conversation (previous_response_id) and of input, in order, as the
                                    JSON it was sent or stored as (what the response store keeps, item by item) */
    size_t nitem_json, item_json_cap;
    k2a_str_t tool_choice; /* compact JSON of tool_choice as sent (a JSON string or object), empty when absent */
    k2a_str_t text_format; /* "text" (default), "json_object" or "json_schema" */
    k2a_str_t effort;      /* reasoning.effort as sent, empty when absent */
    k2a_str_t tools_json;  /* tools[] as compact JSON ("[]" when absent), echoed in the response object */
    bool has_temperature, has_top_p;
} k2a_responses_extra_t;

/*
 * Decodes body[0..len) into *out (zeroed first) and *extra. prior[0..prior_len), when not NULL, is a JSON array of input items (a
 * stored conversation, see previous_response_id) decoded before the body's own input, as if it were its beginning.
 *
 * Mapping (documented rules, README "OpenAI Responses API", docs/kiro-compat.md):
 *  - input: a string -> one USER text message; or items: `message` (also an item with a role and no type) with role
 *    user/assistant/system/developer and content a string or parts `input_text`/`output_text` (text), `input_image`
 *    (`image_url` a base64 data: URL; a remote URL or a `file_id` -> K2A_EIMAGE_URL), `refusal` (dropped); system and
 *    developer messages join the system prompt in order; `function_call` {call_id, name, arguments} -> a TOOL_USE block
 *    of the assistant turn it follows (consecutive assistant messages, reasoning and function calls form ONE assistant
 *    message, as one Chat assistant message with tool_calls); `function_call_output` {call_id, output (a string or
 *    input_text/input_image parts)} -> a TOOL_RESULT in a USER turn (consecutive outputs and a user message right after
 *    them form one turn); `reasoning` {summary[].text, or content[].text} -> a THINKING block; item_reference and
 *    other item types -> K2A_EBAD_PARAM.
 *  - instructions -> the first system block. tools: `function` {name, description, parameters, strict} exactly as a
 *    Chat tool; web_search / web_search_preview and `namespace` groups are accepted and not offered to the model
 *    (clients such as the Codex CLI declare them on every request); the other built-in tools (file_search,
 *    computer_use, code_interpreter, mcp, custom, ...) -> K2A_EBAD_PARAM.
 *  - tool_choice: auto | none | required | {"type":"function","name"}; max_output_tokens -> max_tokens;
 *    reasoning.effort as Chat's reasoning_effort; text.format json_object as Chat's response_format json_object,
 *    json_schema (name, description, schema) as Chat's json_schema (best effort: an instruction with the schema);
 *    temperature, top_p copied; stream; store, metadata, parallel_tool_calls, previous_response_id -> *extra; every
 *    other field is ignored. A wrong type is K2A_EJSON_TYPE with the path.
 *
 * Returns 0 or a negative K2A_E* with err filled (as k2a_openai_decode).
 */
int k2a_responses_decode_ex(const char *body, size_t len, const char *prior, size_t prior_len, const k2a_convert_limits_t *limits,
                            k2a_arena_t *arena, k2a_ir_request_t *out, k2a_responses_extra_t *extra, k2a_convert_error_t *err);

/* The same without a prior conversation and with the extras discarded (the decoder signature every dialect has). */
int k2a_responses_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err);

#endif
