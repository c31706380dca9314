/*
 * Token estimation (kiro-protocol.md §4.6): kiro2api's heuristics, kept exactly so that usage
 * numbers and /v1/messages/count_tokens match what Claude Code expects from it. No tokenizer: counts
 * code points, CJK code points and bytes.
 */
#ifndef K2A_CONVERT_TOKENS_H
#define K2A_CONVERT_TOKENS_H

#include <stdint.h>
#include "core/str.h"
#include "convert/ir.h"

/* text_tokens(s) of §4.6: "hello" -> 2, "你好" -> 3, 1000 x "a" -> 240. Invalid UTF-8 bytes count as one code point each. */
int64_t k2a_tokens_text(const char *s, size_t len);
/* tool_name_tokens(name): "get_weather" -> 7. */
int64_t k2a_tokens_tool_name(const char *name, size_t len);
/* tool_use_tokens(name, input JSON text). */
int64_t k2a_tokens_tool_use(k2a_str_t name, k2a_str_t input_json);
/* The input estimate over system, messages and tools (web_search/websearch tools excluded when exclude_web_search). */
int64_t k2a_tokens_input_estimate(const k2a_ir_request_t *req, bool exclude_web_search);

/* Running output-token counter over the IR events actually sent (§4.6 "Output tokens, streaming"). */
typedef struct st_k2a_tokens_counter_t {
    int64_t total;
    int64_t tool_json_bytes[64]; /* per open tool block, by index modulo 64 */
    bool any;
} k2a_tokens_counter_t;
void k2a_tokens_counter_init(k2a_tokens_counter_t *c);
void k2a_tokens_counter_add(k2a_tokens_counter_t *c, const k2a_ir_event_t *ev);
int64_t k2a_tokens_counter_total(const k2a_tokens_counter_t *c);

#endif
