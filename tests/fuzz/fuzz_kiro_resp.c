/*
 * libFuzzer target for the upstream response path after the EventStream decoder: Kiro event parser -> BOTH dialects'
 * writers (Anthropic SSE writer + non-stream aggregator, OpenAI streaming writer + non-stream aggregator), with an
 * invariant checker on the IR events and SSE checkers on the bytes (sse_check.h). Raw EventStream bytes would mostly die
 * at the CRC check, so the input describes frames that are built with the encoder: byte 0 = flags (bit 0 thinking, bit 1
 * thinking omitted, bit 2 dedupe, bit 3 a 64-byte tool-input limit, bit 4 end with a transport error, bit 5 OpenAI
 * stream_options.include_usage), then records [kind u8][len u16 BE][bytes]. kind % 10: 0 assistantResponseEvent
 * (payload as is), 1 toolUseEvent (as is), 2 meteringEvent, 3 contextUsageEvent, 4 exception frame
 * (ContentLengthExceededException when len is even, else ThrottlingException), 5 error frame, 6 the 2026 events by
 * (kind / 10) % 8: 0 messageMetadataEvent, 1 metadataEvent, 2 reasoningContentEvent, 3 invalidStateEvent (payload as is),
 * 4 metadataEvent {"stopReason":"<bytes>"}, 5 / 6 / 7 reasoningContentEvent {"text" / "signature" / "redactedContent":
 * "<bytes>"}; kind % 10 == 7 assistantResponseEvent {"content":"<bytes>"}, 8 toolUseEvent piece
 * {"name":"T","toolUseId":"t<kind/10>", "input":"<bytes>"}, 9 the same with "stop":true. Invariants: MESSAGE_START first,
 * consecutive indices, one open block, deltas of the open block's kind and valid UTF-8, exactly one STOP or ERROR and it is last;
 * both streaming writers accept every event, and what they write (checked after every frame, the way the HTTP layer sends it) is
 * well-formed SSE with consecutive block / tool-call indices, ends with message_stop / [DONE] or an error, and never presents a
 * tool call as complete unless its input is a JSON object (or the stop reason is a length stop); both dialects agree on the outcome
 * and the number of tool calls; each aggregator either renders a JSON document (tool inputs / arguments JSON objects) or fails with
 * a K2A_E* code and writes nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "convert/anthropic_resp.h"
#include "convert/openai_resp.h"
#include "convert/kiro_resp.h"
#include "core/errors.h"
#include "core/log.h"
#include "eventstream/eventstream.h"
#include "sse_check.h"
#include "core/utf8.h"

#define CHECK(c)                                                                                                                   \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                                                  \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

typedef struct st_checker_t {
    k2a_anthropic_sse_t *sse;
    k2a_anthropic_msg_t *msg;
    k2a_openai_stream_t *osse;
    k2a_openai_aggregate_t *oagg;
    int oagg_err;
    sse_anthropic_t *acheck;
    size_t n;
    int next, open;
    k2a_ir_block_kind_t open_kind;
    bool ended;
} checker_t;

static bool utf8_valid(const unsigned char *s, size_t n)
{
    return k2a_utf8_valid((const char *)s, n); /* the project's one validator (core/utf8.h) */
}

static int on_event(void *ctx, const k2a_ir_event_t *ev)
{
    checker_t *c = ctx;
    CHECK(!c->ended);
    CHECK((c->n == 0) == (ev->type == K2A_EV_MESSAGE_START));
    ++c->n;
    switch (ev->type) {
    case K2A_EV_BLOCK_START:
        CHECK(c->open == -1);
        CHECK(ev->index == c->next);
        c->open = c->next++;
        c->open_kind = ev->block;
        if (ev->block == K2A_BLOCK_REDACTED_THINKING)
            CHECK(ev->text.len != 0 && utf8_valid((const unsigned char *)ev->text.base, ev->text.len));
        if (ev->block == K2A_BLOCK_TOOL_USE)
            CHECK(ev->tool_id.len != 0 && ev->tool_name.len != 0 &&
                  utf8_valid((const unsigned char *)ev->tool_name.base, ev->tool_name.len));
        break;
    case K2A_EV_DELTA:
        CHECK(ev->index == c->open && ev->block == c->open_kind && ev->block != K2A_BLOCK_REDACTED_THINKING);
        CHECK(ev->text.len != 0);
        CHECK(utf8_valid((const unsigned char *)ev->text.base, ev->text.len));
        break;
    case K2A_EV_BLOCK_STOP:
        CHECK(ev->index == c->open);
        CHECK(ev->signature.len == 0 ||
              (c->open_kind == K2A_BLOCK_THINKING && utf8_valid((const unsigned char *)ev->signature.base, ev->signature.len)));
        c->open = -1;
        break;
    case K2A_EV_STOP:
        CHECK(c->open == -1);
        c->ended = true;
        break;
    case K2A_EV_ERROR:
        CHECK(ev->error < 0 && ev->error_message.len != 0);
        c->ended = true;
        break;
    case K2A_EV_USAGE:
        if (ev->usage.context_usage_pct >= 100) /* the converter now keeps a partial tool input (length stop) */
            c->acheck->length_cut = true;
        break;
    default:
        break;
    }
    CHECK(k2a_anthropic_sse_on_event(c->sse, ev) == 0);
    k2a_anthropic_msg_on_event(c->msg, ev);
    CHECK(k2a_openai_stream_on_event(c->osse, ev) == 0);
    int ar = k2a_openai_aggregate_on_event(c->oagg, ev);
    if (ar != 0 && c->oagg_err == 0)
        c->oagg_err = ar; /* the gateway fails the response on the first sink error (exchange.c on_ir_event) */
    return 0;
}

static void fixed_random(void *ctx, void *buf, size_t len)
{
    memset(buf, 1, len);
}

static void json_raw(k2a_buf_t *b, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '"' || s[i] == '\\') {
            k2a_buf_append(b, "\\", 1);
            k2a_buf_append(b, &s[i], 1);
        } else if (s[i] < 0x20) {
            k2a_buf_appendf(b, "\\u%04x", s[i]);
        } else {
            k2a_buf_append(b, &s[i], 1);
        }
    }
}

static void feed(k2a_kiro_resp_t *p, k2a_buf_t *frame)
{
    k2a_es_frame_t f;
    CHECK(k2a_es_decode_frame(frame->base, frame->len, 0, &f) == (intptr_t)frame->len);
    k2a_kiro_resp_on_frame(p, &f);
}

/* The OpenAI aggregate: every tool call's arguments must be a JSON object ("{}" when none came). */
static void check_openai_json(const k2a_buf_t *json)
{
    yajl_val v = yajl_tree_parse(k2a_buf_cstr((k2a_buf_t *)json), NULL, 0);
    CHECK(v != NULL);
    yajl_val choices = sse_get(v, "choices");
    CHECK(choices != NULL && YAJL_IS_ARRAY(choices) && choices->u.array.len == 1);
    yajl_val calls = sse_get(sse_get(choices->u.array.values[0], "message"), "tool_calls");
    const char *finish = sse_str(choices->u.array.values[0], "finish_reason");
    CHECK(finish != NULL);
    if (strcmp(finish, "length") == 0)
        calls = NULL; /* cut for length: partial arguments are allowed, as in OpenAI's API */
    for (size_t i = 0; calls != NULL && YAJL_IS_ARRAY(calls) && i < calls->u.array.len; ++i) {
        const char *args = sse_str(sse_get(calls->u.array.values[i], "function"), "arguments");
        CHECK(args != NULL);
        yajl_val a = yajl_tree_parse(args, NULL, 0);
        CHECK(a != NULL && YAJL_IS_OBJECT(a));
        yajl_tree_free(a);
    }
    yajl_tree_free(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        k2a_log_configure(K2A_LOG_ERROR + 1, K2A_LOG_TEXT, false, NULL);
        quiet = true;
    }
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    bool include_usage = (flags >> 5) & 1;
    k2a_buf_t out, oout, json, ojson, frame, payload;
    k2a_buf_init(&out, 0);
    k2a_buf_init(&oout, 0);
    k2a_buf_init(&json, 0);
    k2a_buf_init(&ojson, 0);
    k2a_buf_init(&frame, 0);
    k2a_buf_init(&payload, 0);
    k2a_anthropic_sse_t sse;
    k2a_anthropic_msg_t msg;
    k2a_openai_stream_t osse;
    k2a_openai_aggregate_t oagg;
    static const char oid[] = "chatcmpl-fuzzfuzzfuzzfuzzfuzzfuzz";
    k2a_anthropic_sse_init(&sse, &out, K2A_STRLIT("claude-fuzz"), fixed_random, NULL);
    k2a_anthropic_msg_init(&msg, K2A_STRLIT("claude-fuzz"), fixed_random, NULL, 0);
    CHECK(k2a_openai_stream_init(&osse, &oout, oid, 1767225600, K2A_STRLIT("claude-fuzz"), include_usage) == 0);
    k2a_openai_aggregate_init(&oagg, 0, 0);
    sse_anthropic_t acheck;
    sse_openai_t ocheck;
    sse_anthropic_init(&acheck);
    sse_openai_init(&ocheck, oid, include_usage);
    checker_t c = {.sse = &sse, .msg = &msg, .osse = &osse, .oagg = &oagg, .acheck = &acheck, .open = -1};
    k2a_kiro_resp_config_t cfg = {
        .thinking = flags & 1, .thinking_omitted = (flags >> 1) & 1, .dedupe_repeated_chunks = (flags >> 2) & 1};
    cfg.input_tokens = 10;
    cfg.max_tool_input = (flags & 8) ? 64 : 0;
    k2a_kiro_resp_t p;
    CHECK(k2a_kiro_resp_init(&p, &cfg, on_event, &c) == 0);
    k2a_kiro_resp_start(&p);
    size_t off = 1;
    while (off + 3 <= size) {
        uint8_t kind = data[off];
        size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
        off += 3;
        if (len > size - off)
            len = size - off;
        const uint8_t *b = data + off;
        off += len;
        k2a_buf_reset(&frame);
        k2a_buf_reset(&payload);
        switch (kind % 10) {
        case 0:
            k2a_es_encode_event(&frame, "assistantResponseEvent", b, len);
            break;
        case 1:
            k2a_es_encode_event(&frame, "toolUseEvent", b, len);
            break;
        case 2:
            k2a_es_encode_event(&frame, "meteringEvent", b, len);
            break;
        case 3:
            k2a_es_encode_event(&frame, "contextUsageEvent", b, len);
            break;
        case 4:
            k2a_es_encode_exception(&frame, len % 2 == 0 ? "ContentLengthExceededException" : "ThrottlingException", b, len);
            break;
        case 5: {
            k2a_es_header_t h[3] = {k2a_es_header_string(":message-type", "error"), k2a_es_header_string(":error-code", "Boom"),
                                    k2a_es_header_string(":error-message", "fuzz")};
            k2a_es_encode(&frame, h, 3, b, len);
            break;
        }
        case 6: /* the 2026 events, by (kind / 10) % 8 */
            switch ((kind / 10) % 8) {
            case 0:
                k2a_es_encode_event(&frame, "messageMetadataEvent", b, len);
                break;
            case 1:
                k2a_es_encode_event(&frame, "metadataEvent", b, len);
                break;
            case 2:
                k2a_es_encode_event(&frame, "reasoningContentEvent", b, len);
                break;
            case 3:
                k2a_es_encode_event(&frame, "invalidStateEvent", b, len);
                break;
            default: {
                static const char *const keys[] = {"stopReason", "text", "signature", "redactedContent"};
                const char *et = (kind / 10) % 8 == 4 ? "metadataEvent" : "reasoningContentEvent";
                k2a_buf_appendf(&payload, "{\"%s\":\"", keys[(kind / 10) % 8 - 4]);
                json_raw(&payload, b, len);
                k2a_buf_appendstr(&payload, "\"}");
                k2a_es_encode_event(&frame, et, payload.base, payload.len);
                break;
            }
            }
            break;
        case 7:
            k2a_buf_appendstr(&payload, "{\"content\":\"");
            json_raw(&payload, b, len);
            k2a_buf_appendstr(&payload, "\"}");
            k2a_es_encode_event(&frame, "assistantResponseEvent", payload.base, payload.len);
            break;
        default:
            k2a_buf_appendf(&payload, "{\"name\":\"T\",\"toolUseId\":\"t%d\",\"input\":\"", kind / 10);
            json_raw(&payload, b, len);
            k2a_buf_appendstr(&payload, kind % 10 == 9 ? "\",\"stop\":true}" : "\"}");
            k2a_es_encode_event(&frame, "toolUseEvent", payload.base, payload.len);
            break;
        }
        if (frame.len != 0)
            feed(&p, &frame);
        /* metadataEvent said MAX_TOKENS / MODEL_CONTEXT_WINDOW_EXCEEDED: a partial tool input may be kept */
        if (p.stop_override == K2A_STOP_MAX_TOKENS || p.stop_override == K2A_STOP_CONTEXT_WINDOW)
            acheck.length_cut = true;
        /* the HTTP layer sends what the writers staged after every frame, then resets */
        sse_anthropic_feed(&acheck, &out);
        sse_openai_feed(&ocheck, &oout);
        k2a_buf_reset(&out);
        k2a_buf_reset(&oout);
    }
    k2a_kiro_resp_finish(&p, (flags & 16) ? K2A_ERESET_MID_BODY : 0);
    sse_anthropic_feed(&acheck, &out);
    sse_openai_feed(&ocheck, &oout);
    CHECK(c.ended);
    CHECK(k2a_anthropic_sse_done(&sse) && k2a_openai_stream_done(&osse));
    CHECK(acheck.ended && ocheck.ended);
    CHECK(acheck.errored == ocheck.errored && acheck.errored == (k2a_kiro_resp_seen(&p)->error != 0));
    CHECK(acheck.tools == ocheck.ntools);
    int r = k2a_anthropic_msg_render(&msg, &json);
    if (r == 0) {
        yajl_val v = yajl_tree_parse(k2a_buf_cstr(&json), NULL, 0);
        CHECK(v != NULL);
        yajl_tree_free(v);
    } else {
        CHECK(r < 0 && json.len == 0);
    }
    int orr = k2a_openai_aggregate_write(&oagg, &ojson, oid, 1767225600, K2A_STRLIT("claude-fuzz"));
    if (orr == 0)
        check_openai_json(&ojson);
    else
        CHECK(orr < 0 && ojson.len == 0);
    if (c.oagg_err != 0)
        orr = c.oagg_err;
    /* a stream that ended with an error is an error in the non-stream form too; and both aggregators are built the way
     * the gateway builds them, so the OpenAI one never fails where the Anthropic one renders (a (0, 0) limit once
     * refused every tool call) */
    if (acheck.errored)
        CHECK(r != 0 && orr != 0);
    CHECK(orr == 0 || r != 0);
    k2a_kiro_resp_dispose(&p);
    k2a_anthropic_msg_dispose(&msg);
    k2a_openai_stream_dispose(&osse);
    k2a_openai_aggregate_dispose(&oagg);
    sse_anthropic_dispose(&acheck);
    sse_openai_dispose(&ocheck);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&oout);
    k2a_buf_dispose(&json);
    k2a_buf_dispose(&ojson);
    k2a_buf_dispose(&frame);
    k2a_buf_dispose(&payload);
    return 0;
}
