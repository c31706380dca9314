/*
 * The intermediate representation every dialect converts to and from (DESIGN.md §3, "The IR is the
 * heart"). Request decoders (Anthropic, OpenAI) fill a k2a_ir_request_t; the normalizer rewrites it
 * for Kiro; the Kiro encoder serialises it. On the way back, the Kiro event parser turns EventStream
 * frames into a sequence of k2a_ir_event_t, and one writer per dialect turns those into bytes. Dialects
 * never talk to each other: N dialects + 1 upstream = N+1 codecs.
 *
 * Ownership: every string of a request points either into the request body (zero-copy, the body must
 * outlive the IR) or into the request's arena. Raw JSON subtrees (tool input, input_schema) are kept
 * as compact JSON text.
 */
#ifndef K2A_CONVERT_IR_H
#define K2A_CONVERT_IR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/arena.h"
#include "core/str.h"

/* ---------- request ---------- */

typedef enum en_k2a_ir_role_t {
    K2A_ROLE_USER = 0,
    K2A_ROLE_ASSISTANT,
    K2A_ROLE_SYSTEM, /* a system message inside messages[] (Claude Code sends these); the normalizer folds it */
} k2a_ir_role_t;

typedef enum en_k2a_ir_block_kind_t {
    K2A_BLOCK_TEXT = 0,
    K2A_BLOCK_IMAGE,
    K2A_BLOCK_TOOL_USE,
    K2A_BLOCK_TOOL_RESULT,
    K2A_BLOCK_THINKING,
    K2A_BLOCK_REDACTED_THINKING,
    K2A_BLOCK_DOCUMENT,
} k2a_ir_block_kind_t;

typedef struct st_k2a_ir_block_t k2a_ir_block_t;

struct st_k2a_ir_block_t {
    k2a_ir_block_kind_t kind;
    /* TEXT, THINKING (the thinking text), DOCUMENT (its text), REDACTED_THINKING (the opaque data) */
    k2a_str_t text;
    /* THINKING: the client's signature, kept so that a round trip does not lose it */
    k2a_str_t signature;
    /* IMAGE: media type ("image/png") and base64 data exactly as received */
    k2a_str_t media_type;
    k2a_str_t data;
    /* TOOL_USE: id, name (the client's name), input as compact JSON text of an object ("{}" when absent).
     * When the client sent arguments that are not a JSON object (OpenAI: invalid or truncated JSON, an array...),
     * input_raw is the raw text and input is {"arguments":"<raw text>"} so that the model still sees what it sent. */
    k2a_str_t id;
    k2a_str_t name;
    k2a_str_t input;
    k2a_str_t input_raw;
    /* TOOL_RESULT: the tool_use id it answers, error flag, and its content as TEXT/IMAGE blocks */
    k2a_str_t tool_use_id;
    bool is_error;
    k2a_ir_block_t *content;
    size_t ncontent;
};

typedef struct st_k2a_ir_message_t {
    k2a_ir_role_t role;
    k2a_ir_block_t *blocks;
    size_t nblocks;
} k2a_ir_message_t;

typedef struct st_k2a_ir_tool_t {
    k2a_str_t name; /* the client's name */
    k2a_str_t description;
    k2a_str_t input_schema; /* compact JSON text of the schema object; empty when absent */
} k2a_ir_tool_t;

typedef enum en_k2a_ir_tool_choice_t {
    K2A_TOOL_CHOICE_AUTO = 0,
    K2A_TOOL_CHOICE_ANY,
    K2A_TOOL_CHOICE_NONE,
    K2A_TOOL_CHOICE_TOOL,
} k2a_ir_tool_choice_t;

typedef enum en_k2a_ir_thinking_t {
    K2A_THINKING_OFF = 0,
    K2A_THINKING_ENABLED,  /* Anthropic {"type":"enabled","budget_tokens":N}, a "-thinking" model suffix, OpenAI reasoning_effort */
    K2A_THINKING_ADAPTIVE, /* Anthropic {"type":"adaptive"} */
} k2a_ir_thinking_t;

typedef struct st_k2a_ir_request_t {
    k2a_str_t model;        /* as the client sent it */
    k2a_ir_block_t *system; /* TEXT blocks */
    size_t nsystem;
    k2a_ir_message_t *messages;
    size_t nmessages;
    k2a_ir_tool_t *tools;
    size_t ntools;
    k2a_ir_tool_choice_t tool_choice;
    k2a_str_t tool_choice_name;
    struct {
        k2a_ir_thinking_t mode;
        int64_t budget_tokens; /* 0 = not given */
        bool display_omitted;  /* Anthropic thinking.display == "omitted" */
        k2a_str_t effort;      /* output_config.effort or reasoning_effort: "low" | "medium" | "high" | "max" ... */
    } thinking;
    int64_t max_tokens; /* 0 = not given */
    bool has_temperature, has_top_p;
    double temperature, top_p;
    k2a_str_t *stop_sequences;
    size_t nstop_sequences;
    bool stream;
    bool include_usage;      /* OpenAI stream_options.include_usage */
    bool json_object;        /* OpenAI response_format json_object */
    k2a_str_t session_id;    /* from metadata.user_id (JSON string or "..._session_<uuid>"), for a stable conversationId */
    k2a_str_t user_id_raw;   /* metadata.user_id as sent, or the OpenAI `user` field (sticky routing's session key) */
    const void *dialect_ext; /* what a dialect's decoder keeps for its own writer (Responses: k2a_responses_extra_t), or NULL */
    struct {
        bool requested;   /* a web search tool the gateway serves (Anthropic's web_search_* server tool, the Responses API's
                             web_search / web_search_preview) was in the request's tools (not in tools[] here) */
        int64_t max_uses; /* its max_uses; 0 = not given */
        bool as_tool;     /* offered to the model as a tool even with no client tool beside it (the model decides whether
                             to search: the Responses API); else a search-only request is searched at once (Anthropic) */
    } web_search;
} k2a_ir_request_t;

/* ---------- response events ---------- */

typedef enum en_k2a_ir_event_type_t {
    K2A_EV_MESSAGE_START = 0, /* once, first */
    K2A_EV_BLOCK_START,       /* block kind, index; TOOL_USE carries id and name */
    K2A_EV_DELTA,             /* text / thinking text / a piece of tool input JSON for the open block `index` */
    K2A_EV_BLOCK_STOP,        /* closes block `index` */
    K2A_EV_USAGE,             /* metering / context usage learned from upstream (may come several times) */
    K2A_EV_STOP,              /* end of message with stop_reason; writers emit their final events */
    K2A_EV_ERROR,             /* the upstream failed after the message started; writers emit an in-stream error */
    K2A_EV_PING,              /* keep-alive while the upstream is silent */
    K2A_EV_SEARCH_START,      /* a web search the gateway runs (http/websearch.c): tool_id, text = the query, search; index =
                                 the first of the blocks it takes in an Anthropic answer (search->announce: 3, else 2) */
    K2A_EV_SEARCH_RESULT,     /* that search's outcome: tool_id, text = the query, search; index = its result block */
} k2a_ir_event_type_t;

struct st_k2a_ws_results_t; /* convert/web_search.h */

/* What a SEARCH_START / SEARCH_RESULT event says of the search. */
typedef struct st_k2a_ir_search_t {
    const struct st_k2a_ws_results_t *results; /* RESULT: the results (n == 0: none); NULL when not run */
    const char *failure;                       /* RESULT: why the search failed, "" or NULL when it did not */
    bool over;                                 /* RESULT: not run, the answer's max uses were reached */
    bool announce; /* a search-only request: the search runs before the model (Anthropic announces it with a text block) */
} k2a_ir_search_t;

typedef enum en_k2a_ir_stop_reason_t {
    K2A_STOP_END_TURN = 0,
    K2A_STOP_TOOL_USE,
    K2A_STOP_MAX_TOKENS,
    K2A_STOP_CONTEXT_WINDOW, /* "model_context_window_exceeded" */
    K2A_STOP_STOP_SEQUENCE,
    K2A_STOP_REFUSAL, /* Kiro's CONTENT_FILTERED / GUARDRAIL_INTERVENED after some output: Anthropic "refusal", OpenAI
                         "content_filter" (with no output it is an ERROR instead) */
} k2a_ir_stop_reason_t;

typedef struct st_k2a_ir_usage_t {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_input_tokens;
    int64_t cache_creation_input_tokens;
    double credits;              /* from meteringEvent; < 0 when unknown */
    double context_usage_pct;    /* from contextUsageEvent; < 0 when unknown */
    int64_t web_search_requests; /* searches the gateway ran for this answer (Anthropic usage.server_tool_use); 0 = none */
} k2a_ir_usage_t;

/* Keeps the newest non-zero value of each counter (MESSAGE_START carries the input estimate, USAGE and STOP
 * may carry only some counters): what the OpenAI-family writers report. */
static inline void k2a_ir_usage_merge(k2a_ir_usage_t *dst, const k2a_ir_usage_t *src)
{
    if (src->input_tokens != 0)
        dst->input_tokens = src->input_tokens;
    if (src->output_tokens != 0)
        dst->output_tokens = src->output_tokens;
    if (src->cache_read_input_tokens != 0)
        dst->cache_read_input_tokens = src->cache_read_input_tokens;
    if (src->cache_creation_input_tokens != 0)
        dst->cache_creation_input_tokens = src->cache_creation_input_tokens;
}

typedef struct st_k2a_ir_event_t {
    k2a_ir_event_type_t type;
    int index;                        /* BLOCK_START, DELTA, BLOCK_STOP: consecutive from 0 */
    k2a_ir_block_kind_t block;        /* BLOCK_START, DELTA: TEXT, THINKING, TOOL_USE or REDACTED_THINKING */
    k2a_str_t text;                   /* DELTA: the text, thinking text, or raw tool-input JSON piece (valid UTF-8);
                                         BLOCK_START of REDACTED_THINKING: its opaque data (the block has no delta) */
    k2a_str_t signature;              /* BLOCK_STOP of THINKING: the upstream's signature, empty when it sent none */
    k2a_str_t tool_id;                /* BLOCK_START of TOOL_USE */
    k2a_str_t tool_name;              /* BLOCK_START of TOOL_USE: the client's original name */
    k2a_ir_stop_reason_t stop_reason; /* STOP */
    k2a_ir_usage_t usage;             /* MESSAGE_START (input estimate), USAGE, STOP (final) */
    int error;                        /* ERROR: K2A_E* code */
    k2a_str_t error_message;          /* ERROR: human-readable cause */
    const k2a_ir_search_t *search;    /* SEARCH_START, SEARCH_RESULT */
} k2a_ir_event_t;

/* A sink of IR events (a dialect writer, an aggregator, a test recorder). Returns 0 or a negative K2A_E*. */
typedef int (*k2a_ir_event_cb)(void *sink, const k2a_ir_event_t *ev);

#endif
