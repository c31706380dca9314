/*
 * Kiro response event parser: decoded EventStream frames in, IR events out (DESIGN.md §2 step 6). Dispatch is purely
 * on the :message-type / :event-type / :exception-type headers (the payload text is never sniffed); each payload is
 * parsed by yajl SAX in one call. It never loses a piece of a tool call (every input piece is forwarded, including
 * those carried by start and stop frames), never fakes a successful end (a stream that ends inside a tool call or
 * with a transport error ends with an ERROR event), and splits <thinking>…</thinking> into a thinking block.
 *
 * The 2026 answer (kiro-protocol-2026.md §7, §8): content, reasoningContentEvent, then metadataEvent (stop reason,
 * optional tokenUsage and contextUsagePercentage), contextUsageEvent and meteringEvent, which is Kiro's last frame:
 * Kiro often leaves the connection open after it, so metering completes the answer at once (seen.finished; STOP, or
 * ERROR when a tool call is still open and the answer is not being cut for length); later frames are ignored and the
 * caller must not wait for the body to end (nor put the connection back in a pool). An answer without metering still
 * ends at the end of the body. metadataEvent's stopReason is applied at the end: MAX_TOKENS / MODEL_CONTEXT_WINDOW_EXCEEDED
 * / STOP_SEQUENCE as such, CONTENT_FILTERED / GUARDRAIL_INTERVENED as REFUSAL after some content or ERROR
 * K2A_EUPSTREAM_FILTERED with none, MALFORMED_* as ERROR, END_TURN / TOOL_USE / unknown values as the content implies.
 * tokenUsage, when present, replaces the estimates in the final usage. reasoningContentEvent: with cfg.thinking, text
 * is a THINKING block (its signature goes on the block's BLOCK_STOP) and redactedContent a REDACTED_THINKING block of its
 * own (data in BLOCK_START), also after text (GPT models send it at the end); without, the text is plain text (as KRA
 * does) and signature / redacted content are dropped. invalidStateEvent is a terminal ERROR; messageMetadataEvent is
 * ignored.
 *
 * How the HTTP layer drives it, per upstream response:
 *   k2a_kiro_resp_init(&p, &cfg, sink, ctx);   once the upstream answered 200
 *   k2a_kiro_resp_start(&p);                    MESSAGE_START now (HTTP/1.1 needs a real first write)
 *   k2a_kiro_resp_on_frame(&p, frame);          for every frame the EventStream decoder completes
 *   k2a_kiro_resp_finish(&p, transport_error);  at end of body (0, or the K2A_E* that ended it: reset, CRC, ...)
 *   k2a_kiro_resp_dispose(&p);
 * Exactly one of STOP or ERROR reaches the sink, as the last event. A tool block is only closed (BLOCK_STOP) when
 * the input forwarded for it is empty or one JSON object (or the response is being cut for length: the STOP then says
 * max_tokens / model_context_window_exceeded); otherwise the response ends with ERROR K2A_EUPSTREAM_EVENT instead, so
 * that no client ever takes a broken input for a complete tool call. Failover: while
 * k2a_kiro_resp_seen(&p)->content_emitted is false, no content block has reached the sink, so the caller may drop an
 * ERROR (or a transport failure), take another account, and run a fresh parser on the new response without calling
 * _start again (the client already has message_start; block indices start from 0 again, which is right because none
 * was used). A non-streaming request has sent nothing before the end, so it may fail over on any ERROR. Keep-alive
 * pings while the upstream is silent do not go through the parser: the exchange's ping timer hands a K2A_EV_PING
 * straight to the dialect's writer (http/exchange.c), the one path by which pings reach a client. All functions run on the
 * request's loop; nothing here does I/O.
 */
#ifndef K2A_CONVERT_KIRO_RESP_H
#define K2A_CONVERT_KIRO_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/errors.h"
#include "convert/ir.h"
#include "convert/tokens.h"
#include "core/buf.h"
#include "core/str.h"
#include "eventstream/eventstream.h"

#define K2A_KIRO_RESP_DEFAULT_MAX_TOOL_INPUT (8 * 1024 * 1024)
#define K2A_KIRO_RESP_DEFAULT_CONTEXT_WINDOW 200000

/* Maps a tool name as Kiro returned it back to the client's original name (the request side may have shortened or
 * sanitised it). The returned bytes must stay valid until the parser is disposed. Return an empty string to keep the
 * Kiro name. */
typedef k2a_str_t (*k2a_kiro_map_tool_name_cb)(void *ctx, k2a_str_t kiro_name);

typedef struct st_k2a_kiro_resp_config_t {
    /* The request asked for thinking: split a leading <thinking>…</thinking> out of the text into a THINKING block. */
    bool thinking;
    /* The client asked for thinking.display "omitted": the THINKING block is emitted (start and stop, so that the writer
     * still sends its signature) but none of its text, which is what the Anthropic API does in that mode. The hidden text
     * still counts as output tokens, as Anthropic bills it. */
    bool thinking_omitted;
    /* Drop a text chunk identical to the one just before it (AIClient-2-API does this because "Kiro sometimes repeats").
     * Off by default: legitimate output repeats chunks all the time ("\n", "    ", "=", "very very"), and dropping them
     * corrupts code and tables. */
    bool dedupe_repeated_chunks;
    /* The input-token estimate (k2a_tokens_input_estimate) reported in MESSAGE_START and, by default, in the final usage
     * too, so that message_start, the final usage and /v1/messages/count_tokens agree for the same body. */
    int64_t input_tokens;
    /* Reconciliation with contextUsageEvent: Kiro's figure (contextUsagePercentage x window / 100) is always available from
     * k2a_kiro_resp_context_tokens() (logs, metrics). When reconcile_input is set (KIRO_INPUT_TOKENS_FROM_CONTEXT), the final
     * usage reports it instead of the estimate when it is larger: Kiro adds a hidden system prompt, so the estimate runs
     * low, and a higher number makes Claude Code compact earlier rather than hit CONTENT_LENGTH_EXCEEDS. */
    bool reconcile_input;
    /* Context window used to turn contextUsagePercentage into tokens: 0 means 200 000; the exchange passes the model's
     * (its catalog's maxInputTokens on the account, else convert/model_map.h k2a_model_default_window). */
    int64_t context_window;
    /* Maximum bytes of input JSON per tool block; 0 means K2A_KIRO_RESP_DEFAULT_MAX_TOOL_INPUT. Past it: ERROR
     * K2A_EUPSTREAM_TOOL_TOOBIG. */
    size_t max_tool_input;
    /* Optional (NULL keeps Kiro's names). */
    k2a_kiro_map_tool_name_cb map_tool_name;
    void *map_tool_name_ctx;
    /* For log lines; may be NULL. */
    const char *request_id;
} k2a_kiro_resp_config_t;

/* The stopReason of metadataEvent (kiro-protocol-2026.md §8). */
typedef enum en_k2a_kiro_stop_t {
    K2A_KIRO_STOP_NONE = 0, /* no metadataEvent, or one without a stopReason */
    K2A_KIRO_STOP_END_TURN,
    K2A_KIRO_STOP_STOP_SEQUENCE,
    K2A_KIRO_STOP_MAX_TOKENS,
    K2A_KIRO_STOP_TOOL_USE,
    K2A_KIRO_STOP_CONTEXT_WINDOW, /* MODEL_CONTEXT_WINDOW_EXCEEDED */
    K2A_KIRO_STOP_CONTENT_FILTERED,
    K2A_KIRO_STOP_GUARDRAIL, /* GUARDRAIL_INTERVENED */
    K2A_KIRO_STOP_MALFORMED_TOOL_USE,
    K2A_KIRO_STOP_MALFORMED_MODEL_OUTPUT,
    K2A_KIRO_STOP_OTHER, /* a value this version does not know: ends as the content implies */
} k2a_kiro_stop_t;

/* The members of metadataEvent.tokenUsage, in k2a_kiro_resp_t.token_usage[]. */
enum {
    K2A_KIRO_TU_UNCACHED = 0,
    K2A_KIRO_TU_CACHE_READ,
    K2A_KIRO_TU_CACHE_WRITE,
    K2A_KIRO_TU_OUTPUT,
    K2A_KIRO_TU_TOTAL,
    K2A_KIRO_TU_MAX
};

/* What the parser has seen so far (k2a_kiro_resp_seen). */
typedef struct st_k2a_kiro_resp_seen_t {
    bool content_emitted;     /* a BLOCK_START reached the sink: the client may have bytes of content; no failover now */
    bool tool_used;           /* a tool block was started */
    bool finished;            /* STOP or ERROR was emitted */
    int error;                /* the K2A_E* of the ERROR emitted, else 0 */
    double credits;           /* sum of meteringEvent usage; < 0 when none came */
    double context_usage_pct; /* last contextUsageEvent (or metadataEvent) percentage; < 0 when none came */
    bool metered;             /* meteringEvent came: Kiro's last frame, which completed the answer */
    k2a_kiro_stop_t stop;     /* metadataEvent's stopReason */
    uint64_t frames;          /* frames handed to on_frame */
    uint64_t ignored_frames;  /* unknown event types and frames after the end */
} k2a_kiro_resp_seen_t;

typedef enum en_k2a_kiro_think_state_t {
    K2A_KIRO_THINK_OFF = 0, /* thinking not requested, or already decided: plain text */
    K2A_KIRO_THINK_DETECT,  /* waiting for the first non-blank bytes: is it "<thinking>"? */
    K2A_KIRO_THINK_IN,      /* inside the thinking block */
} k2a_kiro_think_state_t;

typedef struct st_k2a_kiro_resp_t {
    k2a_kiro_resp_config_t cfg;
    k2a_ir_event_cb sink;
    void *sink_ctx;
    k2a_kiro_resp_seen_t seen;
    k2a_tokens_counter_t counter;
    int stop_override; /* -1, or a k2a_ir_stop_reason_t forced by an exception, context usage or metadataEvent */
    /* metadataEvent.tokenUsage: real figures that replace the estimates in the final usage (bit i of token_usage_mask set
     * when token_usage[i] came) */
    unsigned token_usage_mask;
    int64_t token_usage[K2A_KIRO_TU_MAX];
    k2a_buf_t think_sig; /* the signature of reasoningContentEvent for the open thinking block */
    char reason_tail[4]; /* incomplete UTF-8 sequence held back from the previous reasoning text piece */
    size_t reason_tail_len;
    /* the open block */
    int next_index;
    int open_index; /* -1 when no block is open */
    k2a_ir_block_kind_t open_kind;
    /* the open tool */
    k2a_buf_t tool_id;
    k2a_buf_t tool_name; /* the client's name, copied */
    size_t tool_bytes;   /* input bytes forwarded for the open tool */
    char tool_tail[4];   /* incomplete UTF-8 sequence held back from the previous piece */
    size_t tool_tail_len;
    k2a_buf_t tool_input; /* the input forwarded for the open tool: checked to be a JSON object when the block closes */
    k2a_buf_t done_tools; /* ids of tools closed in this response, NUL-separated (late duplicates are ignored) */
    /* text */
    char text_tail[4];
    size_t text_tail_len;
    k2a_kiro_think_state_t think;
    bool think_strip_nl;  /* drop one "\n" right after <thinking> */
    k2a_buf_t pend;       /* text held back by the thinking splitter (a possible tag) */
    k2a_buf_t last_chunk; /* for dedupe_repeated_chunks */
    /* per-frame scratch: the payload's fields */
    void *yajl;        /* reused yajl handle (allow_multiple_values) */
    k2a_buf_t scratch; /* copies of string fields and messages */
    k2a_buf_t work;    /* joined UTF-8 pieces, compacted objects */
    k2a_buf_t fix;     /* a piece with invalid UTF-8 replaced by U+FFFD */
    k2a_buf_t msg;     /* the message of an ERROR event */
    struct st_k2a_kiro_fields_t {
        int depth, base_depth, skip_depth;
        int key; /* which field the pending value belongs to */
        bool ok, complete;
        bool has_content, has_followup, has_name, has_id, has_input, input_is_object, stop, has_usage, has_pct;
        bool has_text, has_signature, has_redacted, has_stop_reason;
        size_t content_off, content_len, name_off, name_len, id_off, id_len, input_off, input_len;
        size_t text_off, text_len, sig_off, sig_len, red_off, red_len, sr_off, sr_len;
        int tu_depth, tu_key; /* inside tokenUsage (0: not yet, -1: done) and the member whose value comes next */
        unsigned tu_mask;
        double tu[K2A_KIRO_TU_MAX];
        size_t message_off, message_len, type_off, type_len, reason_off, reason_len;
        size_t input_obj_start, input_obj_end;
        double usage, pct;
        const char *event_type;
        size_t event_type_len;
        const char *payload;
    } f;
} k2a_kiro_resp_t;

/* Initialises p (cfg is copied; its strings and callbacks must outlive p). Returns 0 or K2A_ENOMEM. */
K2A_MUST_USE int k2a_kiro_resp_init(k2a_kiro_resp_t *p, const k2a_kiro_resp_config_t *cfg, k2a_ir_event_cb sink, void *sink_ctx);
void k2a_kiro_resp_dispose(k2a_kiro_resp_t *p);
/* Emits MESSAGE_START (usage.input_tokens = cfg->input_tokens). Returns the sink's result. */
int k2a_kiro_resp_start(k2a_kiro_resp_t *p);
/* Handles one decoded frame (valid only during the call); p is the k2a_kiro_resp_t, so that this is the EventStream
 * decoder's k2a_es_on_frame_cb and the decoder hands frames straight to the parser. Returns 0 to go on (frames after STOP/ERROR are
 * ignored), a negative K2A_E* when this frame ended the response with an ERROR (already emitted to the sink), or the sink's own
 * non-zero result (then the caller should stop: e.g. the client went away). */
int k2a_kiro_resp_on_frame(void *p, const k2a_es_frame_t *f);
/* Ends the response. transport_error: 0 when the body ended cleanly, else the K2A_E* that cut it (decoder error,
 * truncated frame, reset, timeout). Emits, unless already finished: ERROR when transport_error != 0 or a tool block is
 * still open (Kiro truncates large tool inputs without stop:true — never a fake end_turn); otherwise the pending text,
 * BLOCK_STOP of the open block and STOP with tool_use (if any tool block was started), max_tokens (exception),
 * model_context_window_exceeded (contextUsagePercentage >= 100) or end_turn. STOP's usage: input_tokens = the estimate (or,
 * with reconcile_input, contextUsagePercentage x window / 100 when that is larger), output_tokens =
 * the §4.6 streaming counter over the events emitted (plus hidden thinking text), credits and context %; when
 * metadataEvent carried tokenUsage, Kiro's figures instead (input_tokens = uncached, cache_read_input_tokens,
 * cache_creation_input_tokens, output_tokens). The metadataEvent stop reason applies as described at the top.
 * Returns 0, the K2A_E* of the ERROR emitted, or the sink's non-zero result. */
int k2a_kiro_resp_finish(k2a_kiro_resp_t *p, int transport_error);
const k2a_kiro_resp_seen_t *k2a_kiro_resp_seen(const k2a_kiro_resp_t *p);
/* The input tokens of the final usage (see _finish and reconcile_input; with tokenUsage, uncached + cache read + cache
 * write), Kiro's own figure from contextUsageEvent (-1 when none came), and the output tokens so far (tokenUsage's
 * outputTokens when it came, else the counter). */
int64_t k2a_kiro_resp_input_tokens(const k2a_kiro_resp_t *p);
int64_t k2a_kiro_resp_context_tokens(const k2a_kiro_resp_t *p);
int64_t k2a_kiro_resp_output_tokens(const k2a_kiro_resp_t *p);

/* Classifies a non-200 upstream answer of generateAssistantResponse from its status and JSON body
 * {"message":..,"reason":..} (body may be empty or not JSON). Returns the K2A_E* code: 400 with reason
 * CONTENT_LENGTH_EXCEEDS_THRESHOLD -> UPSTREAM_CONTENT_LENGTH, other 400 -> UPSTREAM_BAD_REQUEST, 401/403 ->
 * UPSTREAM_AUTH, 402 or a reason naming a quota (MONTHLY_REQUEST_COUNT, ...) -> EXHAUSTED, 429 -> THROTTLED, 5xx ->
 * UPSTREAM_SERVER, anything else -> HTTP_STATUS. When message is not NULL, it receives the body's "message" (or the
 * raw body, bounded to 512 bytes) for error messages. */
int k2a_kiro_resp_classify_http(int status, const char *body, size_t len, k2a_buf_t *message);

#endif
