/*
 * The chat exchange coroutine (see exchange.h): decode → build → dispatch (failover) → EventStream
 * decoder → Kiro event parser → dialect writer → client. The writer appends into `stage`; staged bytes
 * move to the client only once the response is committed, which is what lets a failure before any
 * content fail over invisibly. A ping timer keeps silent streams alive (HTTP/1.1 notices a vanished
 * client only when it writes) and commits a response that has been silent for a whole interval; the
 * writer (one per exchange, message_start staged before the first attempt) then has sent only
 * message_start and pings, which are no content, so a failure before content still fails over.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "convert/dialect.h"
#include "convert/kiro_req.h"
#include "convert/kiro_resp.h"
#include "convert/model_effort.h"
#include "convert/model_map.h"
#include "convert/tokens.h"
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/testhook.h"
#include "eventstream/eventstream.h"
#include "http/exchange.h"
#include "http/handlers.h"
#include "http/keys_gate.h"
#include "http/websearch.h"
#include "pool/dispatch.h"
#include "pool/sticky.h"
#include "upstream/upstream.h"

typedef struct st_exchange_t exchange_t;

/* The ping timer lives on the heap: a uv handle must outlive the coroutine frame until its close callback. */
typedef struct st_ping_timer_t {
    uv_timer_t timer;
    exchange_t *x; /* NULL once the exchange is gone */
} ping_timer_t;

struct st_exchange_t {
    k2a_call_t *call;
    k2a_server_t *server;
    const k2a_dialect_t *dialect;
    k2a_ir_request_t ir;
    k2a_model_resolution_t model;
    k2a_kiro_build_params_t params;
    k2a_kiro_build_result_t built;
    k2a_buf_t body; /* the Kiro body built without a profileArn; per account it is spliced in */
    int64_t input_tokens;
    /* response */
    bool parser_live, writer_live;
    void *w; /* the dialect's writer state (dialect->writer_size bytes in the call's arena) */
    k2a_dialect_writer_ctx_t wctx;
    k2a_buf_t stage; /* writer output not yet handed to the call */
    bool committed;
    bool content_sent; /* content of a stream reached the client: no failover any more, and the Kiro body is gone */
    bool fail_drain;   /* K2A_TEST_FAIL=exchange_drain: the first drain after content fails as out of memory */
    int sink_error;    /* a writer failure (K2A_ETOOBIG...) */
    ping_timer_t *ping;
    k2a_websearch_t *ws; /* the web_search server tool's blocks before the model's (http/websearch.h), or NULL */
    /* The members below are not zeroed when the exchange is allocated (~3 KB of the ~4 KB): each is set up by its own init
     * before it is read (decoder and parser by start_parser, guarded by parser_live; fail_detail there too; the dispatch by
     * k2a_dispatch_init; the attempt by k2a_dispatch_next). Everything above is zeroed. */
    k2a_es_decoder_t decoder;
    k2a_kiro_resp_t parser;
    char fail_detail[256]; /* the message of an attempt's ERROR kept from the writer (see on_ir_event) */
    /* the dispatch and its current attempt live here rather than in run()'s frame (see there) */
    k2a_dispatch_t dispatch;
    k2a_dispatch_attempt_t attempt;
};

/* retry_after_ms: when every account is cooling or exhausted, the time until the soonest recovers (0 = unknown). */
static __attribute__((noinline)) void respond_error_retry(exchange_t *x, int err, const char *message, uint64_t retry_after_ms)
{
    k2a_buf_t body = K2A_BUF_INIT(0);
    char prefixed[2200];
    if ((err == K2A_EPAYLOAD_TOOBIG || err == K2A_EUPSTREAM_CONTENT_LENGTH) && strncmp(message, "prompt is too long", 18) != 0) {
        /* the wording clients key on to compact the conversation (Claude Code, Anthropic's own API) */
        snprintf(prefixed, sizeof(prefixed), "prompt is too long: %s", message);
        message = prefixed;
    }
    int status = k2a_dialect_error_body(x->dialect, &body, err, k2a_cstr(message));
    if (status < 0)
        status = 500; /* the body could not be built: an empty 500 */
    if (status == 429 || status == 503 || status == 529) {
        /* the SDKs honour Retry-After: tell them when an account is expected back (at least 1 s, at most 1 h) */
        uint64_t secs = retry_after_ms == 0 ? 1 : (retry_after_ms + 999) / 1000;
        char ra[24];
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)(secs > 3600 ? 3600 : secs));
        if (x->call->req != NULL)
            x->call->req->res.content_length = body.len;
        if (k2a_call_begin(x->call, status, "application/json", "cache-control", "no-store", "retry-after", ra, NULL) == 0 &&
            k2a_call_write(x->call, body.base != NULL ? body.base : "", body.len) == 0)
            k2a_call_finish(x->call);
    } else {
        k2a_call_respond_json(x->call, status, body.base != NULL ? body.base : "", body.len);
    }
    k2a_buf_dispose(&body);
    K2A_LOG(K2A_LOG_INFO, x->call->request_id, "answered %d: %s (%s)", status, message, k2a_errname(err));
}

static void respond_error(exchange_t *x, int err, const char *message)
{
    respond_error_retry(x, err, message, 0);
}

/* Sends the response head of a stream and everything staged so far. */
static int commit(exchange_t *x)
{
    if (x->committed)
        return 0;
    x->committed = true;
    int r = k2a_call_begin(x->call, 200, "text/event-stream; charset=utf-8", "cache-control", "no-cache", "x-accel-buffering", "no",
                           "x-kiro-model", x->built.kiro_model_id.base != NULL ? x->built.kiro_model_id.base : "", NULL);
    if (r == 0 && x->dialect->writer_commit != NULL) {
        /* what the dialect sends ahead of everything staged (e.g. an event that must come first) */
        k2a_buf_t *head = k2a_call_buffer(x->call);
        r = head != NULL ? x->dialect->writer_commit(x->w, head) : K2A_ECANCELED;
    }
    return r;
}

/* Moves staged bytes to the client (committed streams only). */
static int drain(exchange_t *x)
{
    if (!x->committed || x->stage.len == 0)
        return x->call->req_gone ? K2A_ECANCELED : 0;
    if (x->fail_drain && x->content_sent) {
        x->fail_drain = false; /* K2A_TEST_FAIL=exchange_drain: as if the client's buffer could not grow */
        k2a_buf_reset(&x->stage);
        return K2A_ENOMEM;
    }
    int r = k2a_call_write_buf(x->call, &x->stage);
    if (r == 0)
        r = k2a_call_flush(x->call);
    return r;
}

static void on_ping_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_ping(uv_timer_t *t)
{
    ping_timer_t *pt = t->data;
    exchange_t *x = pt->x;
    if (x == NULL || x->call->req_gone)
        return;
    uint64_t now = uv_now(x->server->loop), interval = (uint64_t)x->server->config->ping_interval_ms;
    if (x->committed && now - x->call->last_write_at < interval)
        return;
    /* silent for a whole interval: keep the connection alive (and commit a response still waiting for content). The ping
     * is the writer's (K2A_EV_PING), staged after whatever is staged, and everything staged goes out now. */
    if (!x->committed && commit(x) != 0)
        return;
    k2a_ir_event_t ev = {.type = K2A_EV_PING};
    int r = x->dialect->writer_on_event(x->w, &ev);
    if (r == 0)
        r = k2a_call_write_buf(x->call, &x->stage);
    k2a_buf_reset(&x->stage);
    if (r != 0) {
        if (x->sink_error == 0)
            x->sink_error = r;
        return;
    }
    k2a_call_flush_nowait(x->call);
}

static void start_ping(exchange_t *x)
{
    if (!x->ir.stream)
        return;
    ping_timer_t *pt = malloc(sizeof(*pt));
    if (pt == NULL)
        return; /* no keep-alive for this stream: it still works while the upstream talks */
    pt->x = x;
    if (uv_timer_init(x->server->loop, &pt->timer) != 0) {
        free(pt);
        return;
    }
    pt->timer.data = pt;
    uint64_t interval = (uint64_t)x->server->config->ping_interval_ms;
    uv_timer_start(&pt->timer, on_ping, interval, interval);
    x->ping = pt;
}

static void stop_ping(exchange_t *x)
{
    if (x->ping == NULL)
        return;
    x->ping->x = NULL;
    uv_timer_stop(&x->ping->timer);
    uv_close((uv_handle_t *)&x->ping->timer, on_ping_closed);
    x->ping = NULL;
}

/* ---- the response body ---- */

static int on_ir_event(void *p, const k2a_ir_event_t *ev)
{
    exchange_t *x = p;
    /* An ERROR that pump() turns into a failover (before any content of a stream; anywhere in a non-stream answer) is kept
     * from the writer: the dispatch then answers with its own summary of every attempt. */
    if (ev->type == K2A_EV_ERROR && x->parser_live && (!x->ir.stream || !k2a_kiro_resp_seen(&x->parser)->content_emitted)) {
        snprintf(x->fail_detail, sizeof(x->fail_detail), "%.*s", (int)ev->error_message.len,
                 ev->error_message.base != NULL ? ev->error_message.base : "");
        return 0;
    }
    int r;
    if (x->ws != NULL && x->ws->mixed) {
        r = k2a_websearch_on_event(x->ws, ev, x->dialect->writer_on_event, x->w); /* the search loop (http/websearch.h) */
    } else if (x->ws != NULL) {
        /* after the web search's blocks: the model's indices move past them, and the usage counts the searches */
        k2a_ir_event_t shifted = *ev;
        if (ev->type == K2A_EV_BLOCK_START || ev->type == K2A_EV_DELTA || ev->type == K2A_EV_BLOCK_STOP)
            shifted.index += x->ws->index_offset;
        if (ev->type == K2A_EV_STOP || ev->type == K2A_EV_USAGE)
            shifted.usage.web_search_requests = x->ws->requests;
        r = x->dialect->writer_on_event(x->w, &shifted);
    } else {
        r = x->dialect->writer_on_event(x->w, ev);
    }
    if (r != 0 && x->sink_error == 0)
        x->sink_error = r;
    return r;
}

static k2a_str_t map_tool_name(void *ctx, k2a_str_t kiro_name)
{
    exchange_t *x = ctx;
    return k2a_tool_names_to_client(&x->built.tool_names, kiro_name);
}

/* The writer lives for the whole exchange and gets MESSAGE_START before the first attempt, so that a ping committing a
 * silent stream never goes out ahead of message_start, and a failover never sends message_start twice. */
static int start_writer(exchange_t *x)
{
    int r;
    k2a_buf_reset(&x->stage);
    /* the opening events in one allocation (a failure is left to the writer's own appends) */
    if (x->ir.stream)
        (void)k2a_buf_reserve(&x->stage, x->dialect->stage_start != 0 ? x->dialect->stage_start : 511);
    x->sink_error = 0;
    if ((r = x->dialect->writer_init(x->w, &x->wctx)) != 0)
        return r;
    x->writer_live = true;
    k2a_ir_event_t ev = {.type = K2A_EV_MESSAGE_START}; /* what k2a_kiro_resp_start emits */
    ev.usage.input_tokens = x->input_tokens;
    ev.usage.credits = -1;
    ev.usage.context_usage_pct = -1;
    if ((r = on_ir_event(x, &ev)) != 0)
        return r;
    return k2a_websearch_replay(x->ws, x->dialect->writer_on_event, x->w); /* a search-only request's search */
}

static void stop_writer(exchange_t *x)
{
    if (x->writer_live) {
        x->dialect->writer_dispose(x->w);
        x->writer_live = false;
    }
}

/* A fresh parser per attempt (never k2a_kiro_resp_start: the writer has its MESSAGE_START already). Returns 0 or the K2A_E*
 * of a parser or writer that cannot start (out of memory). */
static int start_parser(exchange_t *x)
{
    int r;
    k2a_kiro_resp_config_t cfg = {0};
    cfg.thinking = x->built.thinking;
    cfg.thinking_omitted = x->ir.thinking.display_omitted;
    cfg.input_tokens = x->input_tokens;
    /* the model's window: its catalog entry on this attempt's account, else the built-in figure (1M for the 4.6+ models) */
    cfg.context_window = x->dispatch.model_window > 0
                             ? x->dispatch.model_window
                             : k2a_model_default_window(x->built.kiro_model_id.base, x->built.kiro_model_id.len);
    cfg.map_tool_name = map_tool_name;
    cfg.map_tool_name_ctx = x;
    cfg.request_id = x->call->request_id;
    if ((r = k2a_kiro_resp_init(&x->parser, &cfg, on_ir_event, x)) != 0) {
        k2a_kiro_resp_dispose(&x->parser);
        return r;
    }
    k2a_es_decoder_init(&x->decoder, 0);
    x->parser_live = true;
    x->fail_detail[0] = '\0';
    if (x->ws != NULL && x->ws->mixed)
        k2a_websearch_turn_start(x->ws);
    if (!x->writer_live)
        return start_writer(x);
    return 0;
}

static void stop_parser(exchange_t *x)
{
    if (x->parser_live) {
        k2a_kiro_resp_dispose(&x->parser);
        k2a_es_decoder_dispose(&x->decoder);
        x->parser_live = false;
    }
}

/* Reads one 200 response to its end. Returns 0 when the response is complete (STOP or an ERROR the client has been, or will
 * be, told about), K2A_ECANCELED when the client went away, or a K2A_E* when it failed: before any content reached the
 * client the caller fails over; once x->content_sent is set it must not (the Kiro body is gone, and the client has part of
 * an answer already). */
static int pump(exchange_t *x, k2a_dispatch_attempt_t *a, const char **why)
{
    const char *data;
    intptr_t n;
    int transport = 0;
    bool any = false;
    *why = NULL;
    while ((n = k2a_upstream_read(a->resp, &data)) > 0) {
        any = true;
        k2a_dispatch_trace_capture(&x->dispatch, data, (size_t)n); /* a bounded copy, only when tracing is on */
        /* the SSE a read turns into is about its size (a 16-byte text delta: a ~110-byte frame in, ~130 bytes out): room
         * for it at once instead of doubling up through it (a failure here is left to the writer's own appends) */
        if (x->ir.stream)
            (void)k2a_buf_reserve(&x->stage, (size_t)n * (x->dialect->stage_pct != 0 ? x->dialect->stage_pct : 150) / 100);
        /* frames go straight to the parser; a negative result means a frame ended the response with an ERROR (emitted) */
        int r = k2a_es_decoder_feed(&x->decoder, data, (size_t)n, k2a_kiro_resp_on_frame, &x->parser);
        const k2a_kiro_resp_seen_t *seen = k2a_kiro_resp_seen(&x->parser);
        if (r < 0 && !seen->finished) {
            /* the decoder refused a frame (bad CRC, oversize...): the parser has not ended yet */
            transport = r;
            break;
        }
        if (x->call->req_gone)
            return K2A_ECANCELED;
        if (x->ir.stream && seen->content_emitted && !x->content_sent) {
            x->content_sent = true;    /* no failover from here on: run() ends the exchange on any failure */
            k2a_buf_dispose(&x->body); /* the Kiro body is never sent again (a non-stream answer has sent nothing yet and may
                                          still fail over: it keeps it) */
            k2a_coro_trim_stack();     /* the deep phase (decode, build, connect) is over; streaming is shallow */
            if (!x->committed && (r = commit(x)) != 0)
                return r;
        }
        if (seen->finished)
            break;
        if (x->ir.stream && (r = drain(x)) != 0)
            return r;
    }
    if (n == K2A_ECANCELED || x->call->req_gone)
        return K2A_ECANCELED;
    if (n < 0)
        transport = (int)n;
    if (n == 0 && !any) {
        /* a 200 that ends without a byte (chunked or close-delimited): not an answer, and not the account's fault */
        *why = "Kiro's endpoint answered 200 with an empty body, not an EventStream";
        return K2A_EUPSTREAM_NOT_EVENTSTREAM;
    }
    const k2a_kiro_resp_seen_t *seen = k2a_kiro_resp_seen(&x->parser);
    if (!seen->finished) {
        if (transport == 0)
            transport = k2a_es_decoder_finish(&x->decoder);
        k2a_kiro_resp_finish(&x->parser, transport);
    }
    seen = k2a_kiro_resp_seen(&x->parser);
    if (seen->error != 0 && (!seen->content_emitted || !x->ir.stream)) {
        /* failed before any content reached the client (message_start and pings are no content; a non-stream answer has sent
         * nothing at all): another account may do better, unless it is the client's fault */
        *why = x->fail_detail[0] != '\0' ? x->fail_detail : k2a_strerror(seen->error);
        return seen->error;
    }
    if (x->ir.stream) {
        int r;
        if ((r = commit(x)) != 0 || (r = drain(x)) != 0)
            return r;
    }
    return 0;
}

/* ---- the build callback of the dispatch ---- */

/* The body built once, without its closing brace, is the dispatch's prefix (k2a_dispatch_set_body_prefix): per account only
 * the end is written, the profileArn at the root (kiro-protocol.md §2.2 [REC]) spliced before the closing brace. */
static int build_for_account(void *ctx, const k2a_lease_t *lease, k2a_buf_t *out)
{
    int r;
    if (lease->profile_arn == NULL || lease->profile_arn[0] == '\0')
        return k2a_buf_appendstr(out, "}");
    if ((r = k2a_buf_appendstr(out, ",\"profileArn\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(out, lease->profile_arn, strlen(lease->profile_arn))) != 0 ||
        (r = k2a_buf_appendstr(out, "\"}")) != 0)
        return r;
    return 0;
}

/* Kiro refused additionalModelRequestFields for this model (k2a_dispatch_set_native_fallback): remember it for the model and
 * rebuild the body without native fields (so thinking goes back to prompt tags). */
static bool native_fallback(void *ctx)
{
    exchange_t *x = ctx;
    k2a_model_effort_unsupported(x->built.kiro_model_id);
    x->params.native_fields = false;
    k2a_convert_error_t cerr = {0};
    if (k2a_kiro_build_request(&x->ir, &x->params, &x->call->arena, &x->body, &x->built, &cerr) != 0)
        return false;
    k2a_dispatch_set_body_prefix(&x->dispatch, x->body.base, x->body.len - 1);
    return true;
}

/* ---- the exchange ---- */

/* Decode and build: the deep phase (yajl, the normalizer, the encoder), in its own frame so that its stack is not part of
 * the streaming phase's (see k2a_coro_trim_stack). Answers the client itself on failure. */
static __attribute__((noinline)) int decode_and_build(exchange_t *x)
{
    k2a_call_t *call = x->call;
    k2a_server_t *s = x->server;
    const k2a_dialect_t *dialect = x->dialect;
    /* 1. decode */
    k2a_convert_limits_t limits = k2a_convert_limits_default();
    limits.owner = k2a_keys_gate_owner(call);
    k2a_convert_error_t cerr = {0};
    int r = dialect->decode(call->body, call->body_len, &limits, &call->arena, &x->ir, &cerr);
    if (r != 0) {
        respond_error(x, r, cerr.message);
        return r;
    }
    if ((r = k2a_keys_gate_admit(call, x->ir.model)) != 0)
        return r; /* the client key's limits, before any upstream call */
    if (s->model_map == NULL || s->pool == NULL) {
        respond_error(x, K2A_ENO_ACCOUNT, "no Kiro account is configured (set KIRO_AUTH_TOKEN)");
        return K2A_ENO_ACCOUNT;
    }
    if (x->ir.web_search.requested && dialect->web_search)
        x->ws = k2a_websearch_prepare(call, &x->ir); /* a search-only request searched now, or the search tool declared */

    /* 2. build the Kiro request once, leaving room for a profileArn */
    k2a_kiro_build_params_init(&x->params, s->model_map);
    x->params.norm.max_tool_description = (size_t)s->config->max_tool_description_length;
    x->params.norm.tool_schema_strip =
        strcmp(s->config->tool_schema_strip, "minimal") == 0 ? K2A_TOOL_SCHEMA_MINIMAL : K2A_TOOL_SCHEMA_STRICT;
    x->params.native_fields = s->config->native_effort;
    x->params.norm.max_payload_bytes =
        (size_t)s->config->max_payload_bytes > 512 ? (size_t)s->config->max_payload_bytes - 256 : 256;
    x->params.session_header = call->session_id_header;
    x->params.conversation_header = call->conversation_id_header;
    x->params.continuation_header = call->continuation_id_header;
    x->params.client_ip = call->client_ip;
    x->params.user_agent = call->user_agent;
    x->params.random = k2a_rand_fill;
    /* the Kiro body is about the client's body in size: one allocation instead of doubling up from 256 bytes (~5 reallocs
     * and their copies for a 2 KB request); a body the bound refuses is left to the encoder, which reports it */
    (void)k2a_buf_reserve(&x->body, call->body_len + call->body_len / 4 + 1024);
    if ((r = k2a_kiro_build_request(&x->ir, &x->params, &call->arena, &x->body, &x->built, &cerr)) != 0) {
        respond_error(x, r, cerr.message);
        return r;
    }
    x->input_tokens = k2a_tokens_input_estimate(&x->ir, true);
    K2A_LOG(K2A_LOG_DEBUG, call->request_id, "%s request: model %.*s -> %.*s, %zu bytes to Kiro, %lld input tokens (estimate)%s",
            dialect->name, (int)x->ir.model.len, x->ir.model.base, (int)x->built.kiro_model_id.len, x->built.kiro_model_id.base,
            x->body.len, (long long)x->input_tokens, x->ir.stream ? ", streaming" : "");
    return 0;
}

/* The answer of a non-stream request, rendered from the aggregate. */
static __attribute__((noinline)) void respond_aggregate(exchange_t *x)
{
    k2a_buf_t json = K2A_BUF_INIT(0);
    k2a_str_t msg = K2A_STR_NULL;
    int rr = x->dialect->writer_render(x->w, &json, &msg);
    if (rr == 0) {
        k2a_call_respond_json(x->call, 200, json.base, json.len);
    } else {
        char m[600];
        snprintf(m, sizeof(m), "%.*s", (int)msg.len, msg.base != NULL ? msg.base : "");
        respond_error(x, rr, m[0] != '\0' ? m : k2a_strerror(rr));
    }
    k2a_buf_dispose(&json);
}

/* Between two turns of the model (mixed tool sets, http/websearch.h): runs the search it asked for, sends the blocks,
 * builds the Kiro request again with the results and starts a fresh dispatch. Returns 0 to go on, or non-zero when the
 * answer ended (answered here for a non-stream request). */
static __attribute__((noinline)) int web_search_turn(exchange_t *x)
{
    k2a_dispatch_t *d = &x->dispatch;
    int r = k2a_websearch_next_turn(x->ws, x->call, &x->ir, x->dialect->writer_on_event, x->w);
    if (r == 0) {
        k2a_convert_error_t cerr = {0};
        k2a_buf_dispose(&x->body);
        k2a_buf_init(&x->body, (size_t)x->server->config->max_payload_bytes);
        if ((r = k2a_kiro_build_request(&x->ir, &x->params, &x->call->arena, &x->body, &x->built, &cerr)) != 0) {
            K2A_LOG(K2A_LOG_WARN, x->call->request_id, "web search: cannot build the next turn: %s", cerr.message);
            k2a_ir_event_t stop = x->ws->held;
            stop.stop_reason = K2A_STOP_END_TURN;
            stop.usage.web_search_requests = x->ws->requests;
            x->dialect->writer_on_event(x->w, &stop); /* the answer ends here: a writer failure changes nothing */
        }
    }
    if (r != 0) {
        if (!x->ir.stream)
            respond_aggregate(x);
        else
            drain(x);
        return 1;
    }
    if (x->ir.stream && drain(x) != 0)
        return 1;
    x->content_sent = false; /* the next turn fails over until its own content reaches the client */
    k2a_dispatch_dispose(d);
    k2a_dispatch_init(d, x->server->pool, x->call->request_id, x->ir.stream);
    k2a_dispatch_use_upstream(d, x->server->upstream);
    k2a_dispatch_set_body_prefix(d, x->body.base, x->body.len - 1);
    k2a_dispatch_set_model(d, x->built.kiro_model_id.base);
    k2a_dispatch_set_session(d, k2a_sticky_key(x->ir.session_id.len != 0 ? x->ir.session_id : x->call->session_id_header,
                                               x->ir.user_id_raw, x->call->client_key_id));
    if (x->built.native_effort)
        k2a_dispatch_set_native_fallback(d, native_fallback, x);
    return 0;
}

/* The end of an exchange whose dispatch gave up (every account failed, or none is usable): an HTTP error, or an in-stream
 * error when a ping has committed the stream meanwhile. */
static void respond_dispatch_failure(exchange_t *x, int r)
{
    k2a_dispatch_t *d = &x->dispatch;
    if (r == K2A_ECANCELED || x->call->req_gone)
        return;
    if (!x->committed) {
        respond_error_retry(x, d->err != 0 ? d->err : r,
                            k2a_dispatch_message(d)[0] != '\0' ? k2a_dispatch_message(d) : k2a_strerror(r), d->retry_after_ms);
        return;
    }
    k2a_ir_event_t ev = {.type = K2A_EV_ERROR};
    ev.error = d->err != 0 ? d->err : r;
    ev.error_message = k2a_cstr(k2a_dispatch_message(d));
    if (x->dialect->writer_on_event(x->w, &ev) == 0)
        drain(x);
}

static void run(k2a_call_t *call)
{
    k2a_server_t *s = call->server;
    const k2a_dialect_t *dialect = call->dialect;
    exchange_t *x = k2a_arena_alloc(&call->arena, sizeof(*x));                        /* zeroed up to decoder, see exchange_t */
    void *w = x != NULL ? k2a_arena_alloc(&call->arena, dialect->writer_size) : NULL; /* writer_init sets it up */
    if (w == NULL) {
        k2a_call_respond_error(call, K2A_ENOMEM, NULL);
        return;
    }
    memset(x, 0, offsetof(exchange_t, decoder));
    x->call = call;
    x->server = s;
    x->dialect = dialect;
    x->w = w;
    x->fail_drain = k2a_test_fail("exchange_drain");
    k2a_buf_init(&x->body, (size_t)s->config->max_payload_bytes);
    k2a_buf_init(&x->stage, 0);
    int r;
    if (decode_and_build(x) != 0)
        goto Exit;
    k2a_coro_trim_stack(); /* the deep phase is over: the wait for Kiro's answer holds no more than the dispatch's frames */
    x->wctx.ir = &x->ir;
    x->wctx.request_id = call->request_id;
    x->wctx.out = &x->stage;
    x->wctx.random = k2a_rand_fill;
    x->wctx.random_ctx = NULL;
    x->wctx.created = (int64_t)time(NULL);

    /* 3-8. dispatch with failover, stream the answer. This frame stays small (the deep work is in decode_and_build, the
     * dispatch's failure texts are allocated only on failure), so that a long stream holds one stack page: see
     * k2a_coro_trim_stack in pump. */
    k2a_dispatch_t *d = &x->dispatch;
    k2a_dispatch_attempt_t *a = &x->attempt;
    k2a_dispatch_init(d, s->pool, call->request_id, x->ir.stream);
    k2a_dispatch_use_upstream(d, s->upstream);
    k2a_dispatch_set_body_prefix(d, x->body.base, x->body.len - 1);
    k2a_dispatch_set_model(d, x->built.kiro_model_id.base); /* NUL-terminated in the call's arena */
    k2a_dispatch_set_session(d, k2a_sticky_key(x->ir.session_id.len != 0 ? x->ir.session_id : call->session_id_header,
                                               x->ir.user_id_raw, call->client_key_id));
    if (x->built.native_effort)
        k2a_dispatch_set_native_fallback(d, native_fallback, x);
    if ((r = start_writer(x)) != 0) {
        respond_error(x, r, k2a_strerror(r));
        k2a_dispatch_dispose(d);
        goto Exit;
    }
    start_ping(x);
    for (;;) {
        if ((r = k2a_dispatch_next(d, build_for_account, x, a)) != 0) {
            respond_dispatch_failure(x, r);
            break;
        }
        if ((r = start_parser(x)) != 0) {
            /* out of memory before reading the answer: the account is not at fault, and another would fare no better */
            k2a_dispatch_attempt_done(d, a, r, 0, x->input_tokens, 0);
            if (x->committed) {
                k2a_ir_event_t ev = {.type = K2A_EV_ERROR, .error = r};
                if (x->writer_live && dialect->writer_on_event(x->w, &ev) == 0)
                    drain(x);
            } else if (!x->call->req_gone) {
                respond_error(x, r, k2a_strerror(r));
            }
            break;
        }
        const char *why = NULL;
        r = pump(x, a, &why);
        if (r == K2A_ECANCELED) {
            K2A_LOG(K2A_LOG_INFO, call->request_id, "client went away; upstream request aborted");
            k2a_dispatch_attempt_done(d, a, K2A_ECANCELED, k2a_kiro_resp_seen(&x->parser)->credits, x->input_tokens,
                                      k2a_kiro_resp_output_tokens(&x->parser));
            k2a_keys_gate_charge(call, x->input_tokens, k2a_kiro_resp_output_tokens(&x->parser),
                                 k2a_kiro_resp_seen(&x->parser)->credits);
            stop_parser(x);
            break;
        }
        if (r != 0 && x->content_sent) {
            /* content reached the client (and the Kiro body is gone): the answer ends here, cut; never a failover */
            K2A_LOG(K2A_LOG_WARN, call->request_id, "attempt %u failed after content reached the client: %s", a->number,
                    why != NULL ? why : k2a_strerror(r));
            k2a_dispatch_attempt_done(d, a, r, k2a_kiro_resp_seen(&x->parser)->credits, x->input_tokens,
                                      k2a_kiro_resp_output_tokens(&x->parser));
            k2a_keys_gate_charge(call, x->input_tokens, k2a_kiro_resp_output_tokens(&x->parser),
                                 k2a_kiro_resp_seen(&x->parser)->credits); /* what reached the client is the key's */
            stop_parser(x);
            break;
        }
        if (r != 0) {
            K2A_LOG(K2A_LOG_WARN, call->request_id, "attempt %u failed before anything reached the client: %s", a->number,
                    why != NULL ? why : "");
            k2a_dispatch_attempt_failed(d, a, r, why != NULL ? why : k2a_strerror(r));
            stop_parser(x);
            if (!x->ir.stream && x->ws != NULL && x->ws->mixed && x->ws->base > 0 && dialect->writer_rewind != NULL)
                dialect->writer_rewind(x->w, x->ws->base); /* the earlier turns of the answer stay */
            else if (!x->ir.stream)
                stop_writer(x); /* the aggregate starts over; a stream keeps its writer (message_start is staged or sent) */
            continue;
        }
        const k2a_kiro_resp_seen_t *seen = k2a_kiro_resp_seen(&x->parser);
        double credits = seen->credits < 0 ? 0 : seen->credits;
        int64_t in = k2a_kiro_resp_input_tokens(&x->parser), out = k2a_kiro_resp_output_tokens(&x->parser);
        bool search = seen->error == 0 && k2a_websearch_pending(x->ws); /* the model asked for a web search */
        k2a_keys_gate_charge(call, in, out, credits);                   /* before the answer: the client's next request sees it */
        if (!x->ir.stream && !search)
            respond_aggregate(x);
        k2a_dispatch_attempt_done(d, a, seen->error, credits, in, out);
        K2A_LOG(K2A_LOG_INFO, call->request_id, "%s: %s, %lld in / %lld out tokens, %.4f credits, attempt %u",
                x->built.kiro_model_id.base, seen->error != 0 ? k2a_errname(seen->error) : "ok", (long long)in, (long long)out,
                credits, a->number);
        stop_parser(x);
        if (search && web_search_turn(x) == 0)
            continue; /* the next turn of the model, with the search's results */
        break;
    }
    stop_ping(x);
    k2a_dispatch_dispose(d);
    if (x->committed) {
        if (x->writer_live && dialect->writer_finish != NULL && dialect->writer_finish(x->w) == 0)
            drain(x);
        k2a_call_finish(call);
    }

Exit:
    stop_parser(x);
    stop_writer(x);
    k2a_buf_dispose(&x->body);
    k2a_buf_dispose(&x->stage);
    k2a_websearch_dispose(x->ws);
}

void k2a_exchange_run(k2a_call_t *call)
{
    run(call);
}

int k2a_h_exchange(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, k2a_exchange_run);
    return 0;
}
