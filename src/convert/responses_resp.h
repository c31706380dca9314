/*
 * OpenAI Responses API writer: IR events in, the Responses API's bytes out. One writer serves both modes: it builds
 * the output items (message, function_call, reasoning) as the events arrive and, when streaming, also appends the
 * documented SSE events, each `event: <type>` + `data: {"type",...,"sequence_number":n}`:
 *   response.created, response.in_progress                          (MESSAGE_START, or lazily before the first item)
 *   response.output_item.added / .done                              (each block: a message, function_call or reasoning item)
 *   response.content_part.added, response.output_text.delta/.done, response.content_part.done        (TEXT blocks)
 *   response.function_call_arguments.delta / .done                                                  (TOOL_USE blocks)
 *   response.reasoning_summary_part.added, response.reasoning_summary_text.delta/.done,
 *   response.reasoning_summary_part.done                                                             (THINKING blocks)
 *   response.completed (status completed), response.incomplete (max_output_tokens, context window, content filter)
 *                                                  with the whole response object and its usage  (STOP)
 *   response.failed with the response object's error {code, message}                                 (ERROR)
 *   `: ping` SSE comments                                                                            (PING)
 *   response.output_item.added (a web_search_call item), response.web_search_call.in_progress, .searching
 *                                                                                                    (SEARCH_START)
 *   response.web_search_call.completed (not when the search failed), response.output_item.done   (SEARCH_RESULT)
 * REDACTED_THINKING blocks are not shown (as on Chat Completions). The non-stream mode renders the `response` object
 * at the end. Neither does I/O.
 */
#ifndef K2A_CONVERT_RESPONSES_RESP_H
#define K2A_CONVERT_RESPONSES_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "core/rand.h"
#include "core/str.h"
#include "convert/ir.h"
#include "convert/responses_req.h"

#define K2A_RESPONSES_ID_HEX 48
#define K2A_RESPONSES_ID_SIZE (sizeof("resp_") - 1 + K2A_RESPONSES_ID_HEX + 1)
/* Items open at once: Kiro's answers (kiro_resp.c) open one block at a time; a second one is a web search's or a
 * test's. More is refused (K2A_EINTERNAL). Kept small: the writer lives in the request's arena chunk. */
#define K2A_RESPONSES_MAX_OPEN 4

/* "<prefix>" + 48 hex digits of random bytes drawn from random, NUL-terminated; prefix is resp_, msg_, fc_ or rs_. */
void k2a_responses_make_id(char dst[K2A_RESPONSES_ID_SIZE], const char *prefix, k2a_random_cb random, void *random_ctx);

typedef struct st_k2a_responses_item_t {
    int block;  /* IR block index */
    int output; /* output_index */
    k2a_ir_block_kind_t kind;
    char id[K2A_RESPONSES_ID_SIZE];
    k2a_buf_t text;    /* text, reasoning text or arguments so far: `"` + JSON-escaped (see raw) */
    size_t rawlen;     /* bytes of text the deltas carried (bounded by max_bytes) */
    bool raw;          /* text holds the bytes unescaped (a delta split a UTF-8 sequence) */
    k2a_str_t call_id; /* TOOL_USE (copied into strings) */
    k2a_str_t name;    /* TOOL_USE */
    char *strings;     /* malloc'd call_id + name */
    /* a delta event up to its text: prefix (at most 99 bytes), the item's reference `"item_id":"…","output_index":n,` (at
     * most 91, from refat) and `"delta":"` (at most 27) */
    char dhead[224];
    uint8_t refat, reflen, dheadlen;
} k2a_responses_item_t;

/* Where the parts of a rendered response object begin, from its first byte: mid_a, the output items, mid_b, the usage's
 * value */
typedef struct st_k2a_responses_marks_t {
    size_t mid_a, items, mid_b, usage;
} k2a_responses_marks_t;

typedef struct st_k2a_responses_writer_t {
    k2a_buf_t *out; /* SSE bytes (stream mode), borrowed; NULL in non-stream mode */
    char id[K2A_RESPONSES_ID_SIZE];
    int64_t created_at;
    const k2a_responses_extra_t *echo; /* the request's fields the response object echoes (borrowed; may be NULL) */
    double temperature, top_p;
    k2a_random_cb random;
    void *random_ctx;
    size_t max_bytes;
    int64_t seq;
    bool started, finished;
    k2a_ir_usage_t usage;
    int64_t reasoning_tokens;
    int noutput;
    bool any_tool_call;
    k2a_responses_item_t open[K2A_RESPONSES_MAX_OPEN];
    size_t nopen;
    k2a_buf_t statics;            /* the unchanging parts of the response object (responses_resp.c render_static) */
    k2a_str_t head, mid_a, mid_b; /* ... in statics */
    /* where the echoed instructions sit in mid_a and the echoed tools in mid_b (k2a_responses_writer_object_parts) */
    uint32_t instructions_at, instructions_len, tools_at, tools_len;
    uint32_t status_at;                /* where `,"status":` begins in head (what precedes it is the id and created_at) */
    k2a_responses_marks_t final_marks; /* of the final response object in the stream */
    size_t final_at, final_len;        /* the final response object in the stream (out), until it is drained */
    k2a_buf_t items;                   /* the finished output items as JSON, comma-separated */
    k2a_buf_t scratch;
    /* the end */
    bool stopped;
    k2a_ir_stop_reason_t stop_reason;
    int error;
    k2a_buf_t error_message;
    /* web search (K2A_EV_SEARCH_START / _RESULT): the open web_search_call item, and where the last search left the
     * output (k2a_responses_writer_rewind) */
    char search_id[K2A_RESPONSES_ID_SIZE];
    int search_output;
    size_t mark_items;
    int mark_output;
} k2a_responses_writer_t;

/* Prepares a writer. out = the stream's staging buffer, or NULL for a non-stream response. echo is borrowed and must
 * outlive the writer (NULL: defaults are echoed). max_bytes bounds the output items (0 = 64 MiB). The response id is
 * drawn from random at once (k2a_responses_writer_id). Returns 0 or K2A_ENOMEM. */
int k2a_responses_writer_init(k2a_responses_writer_t *w, k2a_buf_t *out, int64_t created_at, k2a_str_t model,
                              const k2a_responses_extra_t *echo, const k2a_ir_request_t *req, k2a_random_cb random,
                              void *random_ctx, size_t max_bytes);
void k2a_responses_writer_dispose(k2a_responses_writer_t *w);

/* k2a_ir_event_cb (sink = the writer). Returns 0, K2A_EUPSTREAM_TOOBIG when the output exceeds max_bytes, K2A_ENOMEM,
 * or K2A_EINTERNAL for a delta of a block never started. */
int k2a_responses_writer_on_event(void *w, const k2a_ir_event_t *ev);

static inline bool k2a_responses_writer_done(const k2a_responses_writer_t *w)
{
    return w->finished;
}

static inline const char *k2a_responses_writer_id(const k2a_responses_writer_t *w)
{
    return w->id;
}

/* The finished output items as a JSON array ("[...]") appended to out (what a stored response keeps of its answer). */
int k2a_responses_writer_items(const k2a_responses_writer_t *w, k2a_buf_t *out);

/* Non-stream: renders the `response` object into out. Returns 0; the recorded K2A_E* when an ERROR event arrived;
 * K2A_EUPSTREAM_TRUNCATED when no STOP arrived (nothing written in these two cases: the caller answers with an error
 * body), or K2A_ENOMEM/K2A_ETOOBIG from out. */
int k2a_responses_writer_render(const k2a_responses_writer_t *w, k2a_buf_t *out);

/* Non-stream: forgets the output items after the last web search's item, and the end (a later turn of a searching
 * answer failed over and starts again). */
void k2a_responses_writer_rewind(k2a_responses_writer_t *w);

/* The final response object of a stream (the one response.completed or response.incomplete carries), as it sits in the
 * stream: valid until the stream is drained, so read it right after the STOP event. Empty when there is none (not a
 * stream, not finished, failed, or drained). */
k2a_str_t k2a_responses_writer_final(const k2a_responses_writer_t *w);
/* The finished response object (the stream's final one, else rendered into scratch) in parts whose concatenation is the
 * object, for the response store:
 *   - the fields every answer to the same request settings repeats (from the status to the instructions, from them to
 *     the output, from the output to the tools, from them to the usage): parts the store keeps once however many
 *     responses hold them (their bits in *shared);
 *   - the echoed instructions and tools, parts of their own when K2A_RESPONSES_STORE_SHARE_MIN bytes or longer (the
 *     store shares a long part by its length), else inside the fixed fields around them;
 *   - the id and created_at, the output items (parts[*output]: k2a_responses_writer_items without its brackets) and
 *     the usage: this answer's own.
 * Empty parts are left in place. Returns 0, or what k2a_responses_writer_render returns. */
#define K2A_RESPONSES_OBJECT_PARTS 9
/* The parts the store keeps once (k2a_responses_store_putv's shared): the fixed fields */
#define K2A_RESPONSES_OBJECT_SHARED (1u << 1 | 1u << 3 | 1u << 5 | 1u << 7)
int k2a_responses_writer_object_parts(const k2a_responses_writer_t *w, k2a_buf_t *scratch,
                                      k2a_str_t parts[K2A_RESPONSES_OBJECT_PARTS], size_t *output);

/* The message of a recorded ERROR (empty when none). */
k2a_str_t k2a_responses_writer_error_message(const k2a_responses_writer_t *w);

#endif
