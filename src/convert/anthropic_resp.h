/*
 * Anthropic Messages response writers: IR events in, client bytes out (DESIGN.md §2 step 7).
 *  - k2a_anthropic_sse_t writes the streaming form (kiro-protocol.md §4.2 with the [REC] fixes): message_start with
 *    a random msg_ id and the cache usage fields Claude Code reads, ping, content blocks with consecutive indices
 *    (text, thinking, redacted_thinking with its data in the start event, tool_use), a signature_delta before each
 *    thinking block's stop (the upstream's signature, or ours), message_delta + message_stop, or one "event: error" after
 *    which nothing more is written.
 *  - k2a_anthropic_msg_t aggregates the events of a non-streaming request and renders one Message JSON object, tool
 *    inputs parsed (an input that is not a JSON object is an error, never a silent {}).
 * Both are k2a_ir_event_cb sinks (pass the writer as the sink context). Both run on the request's loop, no I/O.
 */
#ifndef K2A_CONVERT_ANTHROPIC_RESP_H
#define K2A_CONVERT_ANTHROPIC_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "convert/ir.h"
#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"

/* "msg_" + 24 base62 characters */
#define K2A_ANTHROPIC_ID_LEN 28
/* The signature sent with a thinking block that came without one (reasoningContentEvent's signature is used when Kiro
 * sends one). Kiro's tag thinking is plain text with no signature; a client must get a
 * non-empty one (Claude Code and the SDKs keep it and send it back with the block; some proxies drop unsigned blocks).
 * It is base64 of "kiro2api: unsigned thinking from Kiro" so that it reads as what it is, and the request side can
 * recognise it when the block comes back in the history. */
#define K2A_ANTHROPIC_THINKING_SIGNATURE "a2lybzJhcGk6IHVuc2lnbmVkIHRoaW5raW5nIGZyb20gS2lybw=="

/* Writes "msg_" + 24 base62 characters and a NUL into out (K2A_ANTHROPIC_ID_LEN + 1 bytes). */
void k2a_anthropic_message_id(char *out, k2a_random_cb random, void *random_ctx);

/* ---------- streaming ---------- */

typedef struct st_k2a_anthropic_sse_t {
    k2a_buf_t *out;
    k2a_str_t model;
    char id[K2A_ANTHROPIC_ID_LEN + 1];
    bool started, done;
    int thinking_index; /* the open thinking block, -1 if none */
    int open[16];       /* indices of open blocks */
    size_t nopen;
} k2a_anthropic_sse_t;

/* out: where event bytes are appended (the caller sends and resets it, typically after every upstream frame). model:
 * the model name the client asked for (borrowed: must outlive the writer). The message id is drawn now. */
void k2a_anthropic_sse_init(k2a_anthropic_sse_t *w, k2a_buf_t *out, k2a_str_t model, k2a_random_cb random, void *random_ctx);
/* The k2a_ir_event_cb: w is the k2a_anthropic_sse_t. Returns 0, K2A_EINVAL on an event sequence the writer cannot
 * express (a delta for a block that is not open, more than 16 open blocks), or the buffer's K2A_ETOOBIG / K2A_ENOMEM.
 * MESSAGE_START writes message_start then ping; USAGE writes nothing (Anthropic has no mid-stream usage event); STOP
 * closes any block still open, then message_delta and message_stop; ERROR writes one error event (even before
 * message_start: the caller decides whether to send an HTTP error instead). After STOP or ERROR every event is ignored. */
int k2a_anthropic_sse_on_event(void *w, const k2a_ir_event_t *ev);
static inline bool k2a_anthropic_sse_done(const k2a_anthropic_sse_t *w)
{
    return w->done;
}

/* ---------- non-streaming ---------- */

typedef struct st_k2a_anthropic_msg_block_t {
    k2a_ir_block_kind_t kind; /* TEXT, THINKING, REDACTED_THINKING or TOOL_USE */
    k2a_buf_t text;           /* text, thinking text, redacted data, or the concatenated tool-input JSON */
    char *tool_id, *tool_name;
    char *signature; /* THINKING: the upstream's signature (NULL: ours) */
} k2a_anthropic_msg_block_t;

typedef struct st_k2a_anthropic_msg_t {
    k2a_str_t model;
    char id[K2A_ANTHROPIC_ID_LEN + 1];
    k2a_anthropic_msg_block_t *blocks; /* by IR index */
    size_t nblocks, cap;
    size_t bytes, max_bytes;
    bool stopped;
    k2a_ir_stop_reason_t stop_reason;
    k2a_ir_usage_t usage;
    int error; /* K2A_E* of an ERROR event or of a failure while aggregating */
    k2a_buf_t error_message;
} k2a_anthropic_msg_t;

/* max_bytes bounds the aggregated content (0 means 64 MiB); past it the response fails with K2A_ETOOBIG. */
void k2a_anthropic_msg_init(k2a_anthropic_msg_t *m, k2a_str_t model, k2a_random_cb random, void *random_ctx, size_t max_bytes);
void k2a_anthropic_msg_dispose(k2a_anthropic_msg_t *m);
/* The k2a_ir_event_cb: m is the k2a_anthropic_msg_t. Returns 0, or the K2A_E* that made the aggregation fail (also
 * recorded for _render). PING and USAGE are ignored. */
int k2a_anthropic_msg_on_event(void *m, const k2a_ir_event_t *ev);
/* After the parser finished: appends the Message JSON
 *   {"id","type":"message","role":"assistant","model","content":[...],"stop_reason","stop_sequence":null,"usage":{...}}
 * to out and returns 0; or returns the K2A_E* of the failure (ERROR event, tool input that is not a JSON object, no
 * STOP) without writing, and then k2a_anthropic_msg_error_message() says why (map it with k2a_anthropic_error_body).
 * Usage is the parser's final usage (the same numbers the streaming form reports for the same upstream body). */
int k2a_anthropic_msg_render(k2a_anthropic_msg_t *m, k2a_buf_t *out);
k2a_str_t k2a_anthropic_msg_error_message(const k2a_anthropic_msg_t *m);
/* Appends a content block given as a compact JSON object, rendered verbatim at the next index (web search's
 * server_tool_use and web_search_tool_result between two turns of the model). Returns 0 or the K2A_E* of the failure. */
int k2a_anthropic_msg_add_raw(k2a_anthropic_msg_t *m, const char *json, size_t len);
/* Forgets every block from index n on and any failure (an attempt that failed over after earlier turns of the same answer:
 * the next attempt starts again at n). */
void k2a_anthropic_msg_truncate(k2a_anthropic_msg_t *m, size_t n);

/* The stop_reason string of the Anthropic API ("end_turn", "tool_use", "max_tokens", "model_context_window_exceeded",
 * "stop_sequence", "refusal"). */
const char *k2a_anthropic_stop_reason(k2a_ir_stop_reason_t r);

#endif
