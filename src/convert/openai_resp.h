/*
 * OpenAI Chat Completions response writers (kiro-protocol.md §4.7, §4.8 with the [REC] fixes): IR events
 * in, OpenAI bytes out. The streaming writer turns every IR event into `chat.completion.chunk` SSE lines at
 * once (tool-call arguments are forwarded piece by piece, never buffered); the non-stream aggregator
 * collects the events and renders one `chat.completion` object at the end. Neither does I/O: bytes are
 * appended to a k2a_buf_t that the HTTP layer drains. Token counts come from the IR usage, never from
 * byte counts (kiro2api's quirk).
 */
#ifndef K2A_CONVERT_OPENAI_RESP_H
#define K2A_CONVERT_OPENAI_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/errors.h"
#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"
#include "convert/ir.h"

/* ---------- ids ---------- */

#define K2A_OPENAI_ID_RANDOM_BYTES 24
#define K2A_OPENAI_ID_SIZE (sizeof("chatcmpl-") - 1 + K2A_OPENAI_ID_RANDOM_BYTES + 1)

/* Writes "chatcmpl-" + 24 alphanumeric characters derived from 24 random bytes supplied by the caller (the
 * caller owns the random source, so tests are deterministic), NUL-terminated, into dst. */
void k2a_openai_format_id(char dst[K2A_OPENAI_ID_SIZE], const uint8_t random[K2A_OPENAI_ID_RANDOM_BYTES]);
/* The same with the bytes drawn from a random source (k2a_rand_fill in production, a seeded one in tests). */
void k2a_openai_make_id(char dst[K2A_OPENAI_ID_SIZE], k2a_random_cb random, void *random_ctx);

/* The OpenAI finish_reason of an IR stop reason ("stop", "tool_calls", "length", "content_filter" for a refusal);
 * any_tool_call turns an end_turn into "tool_calls" because OpenAI clients run tools only on that reason. */
const char *k2a_openai_finish_reason(k2a_ir_stop_reason_t reason, bool any_tool_call);

/* ---------- streaming writer ---------- */

#define K2A_OPENAI_MAX_OPEN_TOOL_BLOCKS 16

typedef struct st_k2a_openai_stream_t {
    k2a_buf_t *out;
    k2a_buf_t head; /* `{"id":"…","object":"chat.completion.chunk","created":N,"model":"…",` rendered once */
    bool include_usage;
    bool role_sent;
    bool finished; /* STOP or ERROR written: later events are ignored */
    bool failed;   /* ERROR written */
    int ntool_calls;
    struct {
        int block; /* IR block index */
        int tool;  /* OpenAI tool_calls[].index */
    } open_tools[K2A_OPENAI_MAX_OPEN_TOOL_BLOCKS];
    size_t nopen_tools;
    k2a_ir_usage_t usage; /* newest non-zero value of each counter seen in MESSAGE_START, USAGE, STOP */
} k2a_openai_stream_t;

/* Prepares a writer appending to out (borrowed; the caller drains it between events). id is a NUL-terminated
 * "chatcmpl-…" (see k2a_openai_format_id), created is unix seconds, model the name the client asked for (copied).
 * include_usage is the request's stream_options.include_usage. Returns 0 or K2A_ENOMEM. */
K2A_MUST_USE int k2a_openai_stream_init(k2a_openai_stream_t *w, k2a_buf_t *out, const char *id, int64_t created, k2a_str_t model,
                                        bool include_usage);
void k2a_openai_stream_dispose(k2a_openai_stream_t *w);

/* k2a_ir_event_cb for the streaming writer (sink = the k2a_openai_stream_t). Output per event:
 *   MESSAGE_START       `{"role":"assistant","content":""}` (also sent lazily before the first content chunk)
 *   DELTA TEXT          `{"content":"…"}`; THINKING `{"reasoning_content":"…"}`; empty deltas write nothing
 *   BLOCK_START TOOL    `{"tool_calls":[{"index":i,"id":…,"type":"function","function":{"name":…,"arguments":""}}]}`
 *   DELTA TOOL_USE      `{"tool_calls":[{"index":i,"function":{"arguments":"<piece>"}}]}` at once
 *   STOP                `{}` with finish_reason, then (include_usage) `"choices":[],"usage":{…}`, then `data: [DONE]`
 *   ERROR               `data: {"error":{…}}` (openai_error.h table) and nothing more: no finish chunk and no
 *                       [DONE], so that a client that ignores error objects still sees an unterminated stream
 *   PING                the SSE comment `: ping`
 * BLOCK_STOP and USAGE write nothing, nor does a REDACTED_THINKING block: its data is opaque (only Anthropic clients can
 * send it back), so an OpenAI client sees nothing of it. Returns 0, K2A_ETOOBIG/K2A_ENOMEM from out, or K2A_EINTERNAL for a tool
 * delta whose block was never started (a producer bug). */
int k2a_openai_stream_on_event(void *w, const k2a_ir_event_t *ev);

/* True once STOP or ERROR has been written: the HTTP layer ends the response after draining out. */
static inline bool k2a_openai_stream_done(const k2a_openai_stream_t *w)
{
    return w->finished;
}

/* ---------- non-stream aggregator ---------- */

typedef struct st_k2a_openai_tool_call_t {
    char *id;   /* malloc'd, NUL-terminated */
    char *name; /* malloc'd, NUL-terminated */
    int block;  /* IR block index */
    k2a_buf_t arguments;
} k2a_openai_tool_call_t;

typedef struct st_k2a_openai_aggregate_t {
    size_t max_bytes; /* limit of the text, of the reasoning and of each tool call's arguments */
    size_t max_tool_calls;
    k2a_buf_t text;
    k2a_buf_t reasoning;
    k2a_openai_tool_call_t *tools;
    size_t ntools, captools;
    bool stopped;
    k2a_ir_stop_reason_t stop_reason;
    k2a_ir_usage_t usage;
    int error;               /* K2A_E* from an ERROR event, 0 if none */
    k2a_buf_t error_message; /* its message (at most 4096 bytes) */
} k2a_openai_aggregate_t;

#define K2A_OPENAI_DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)
#define K2A_OPENAI_DEFAULT_MAX_TOOL_CALLS 1024

/* max_bytes bounds the text, the reasoning and each tool call's arguments (0 = K2A_OPENAI_DEFAULT_MAX_BYTES);
 * max_tool_calls the number of calls (0 = K2A_OPENAI_DEFAULT_MAX_TOOL_CALLS). A limit hit makes on_event return
 * K2A_ETOOBIG. */
void k2a_openai_aggregate_init(k2a_openai_aggregate_t *a, size_t max_bytes, size_t max_tool_calls);
void k2a_openai_aggregate_dispose(k2a_openai_aggregate_t *a);
/* k2a_ir_event_cb for the aggregator (sink = the k2a_openai_aggregate_t). Returns 0, K2A_ETOOBIG or K2A_ENOMEM. */
int k2a_openai_aggregate_on_event(void *a, const k2a_ir_event_t *ev);

/* Renders the `chat.completion` object into out:
 *   {"id","object":"chat.completion","created","model","choices":[{"index":0,"message":{"role":"assistant",
 *    "content":<text, null when there are tool calls and no text>,"reasoning_content"?,"tool_calls"?},
 *    "finish_reason"}],"usage":{"prompt_tokens","completion_tokens","total_tokens"}}
 * Tool-call arguments are the JSON text received ("{}" when none). Returns 0; the recorded K2A_E* (message in
 * a->error_message) when an ERROR event arrived; K2A_EUPSTREAM_TRUNCATED when no STOP arrived (nothing is written
 * in these two cases: the caller answers with k2a_openai_error_body); or K2A_ETOOBIG/K2A_ENOMEM from out. */
int k2a_openai_aggregate_write(const k2a_openai_aggregate_t *a, k2a_buf_t *out, const char *id, int64_t created, k2a_str_t model);

#endif
