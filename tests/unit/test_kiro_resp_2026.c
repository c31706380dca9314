/*
 * Kiro event parser tests for the answers as Kiro sends them in 2026 (kiro-protocol-2026.md §7, §8): meteringEvent is the
 * last frame and completes the answer (frames after it are ignored; inside a tool call it is an error), metadataEvent's
 * stop reasons in both dialects' writers, tokenUsage as the final usage, contextUsagePercentage in metadata,
 * reasoningContentEvent (text, signature, redacted content, reasoning after text, plain text when thinking was not
 * requested), invalidStateEvent and messageMetadataEvent. A cut tool call (no stop, no metering) stays an error. Every run
 * is checked by rs_rec_check (consecutive indices, one open block, valid UTF-8 deltas, one final STOP/ERROR).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "convert/anthropic_error.h"
#include "convert/anthropic_resp.h"
#include "convert/kiro_resp.h"
#include "convert/openai_error.h"
#include "convert/openai_resp.h"
#include "core/errors.h"
#include "kiro_run.h"
#include "resp_support.h"

#define METERING "{\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0.0169543708291874}"

static const rs_event_t *find_stop_of(const kr_run_t *r, int index)
{
    for (size_t i = 0; i < r->rec.n; ++i)
        if (r->rec.ev[i].type == K2A_EV_BLOCK_STOP && r->rec.ev[i].index == index)
            return &r->rec.ev[i];
    fail_msg("no BLOCK_STOP for block %d", index);
    return NULL;
}

/* ---------- frames as a script: "event-type payload" lines fed in order ---------- */

typedef struct st_frame_t {
    const char *event_type; /* NULL ends the list */
    const char *payload;
} frame_t;

static int feed_all(k2a_kiro_resp_t *p, const frame_t *frames)
{
    int rc = 0;
    for (const frame_t *f = frames; f->event_type != NULL && rc == 0; ++f)
        rc = rs_feed_event(p, f->event_type, f->payload);
    return rc;
}

/* The bytes both dialects' streaming writers and non-stream aggregators produce for these frames. */
typedef struct st_dialects_t {
    k2a_buf_t anth_sse, anth_msg, oai_sse, oai_msg;
    int anth_msg_rc, oai_msg_rc;
} dialects_t;

static int fan_out(void *ctx, const k2a_ir_event_t *ev);

typedef struct st_fan_t {
    k2a_anthropic_sse_t asse;
    k2a_anthropic_msg_t amsg;
    k2a_openai_stream_t osse;
    k2a_openai_aggregate_t oagg;
} fan_t;

static int fan_out(void *ctx, const k2a_ir_event_t *ev)
{
    fan_t *f = ctx;
    assert_int_equal(k2a_anthropic_sse_on_event(&f->asse, ev), 0);
    assert_int_equal(k2a_anthropic_msg_on_event(&f->amsg, ev), 0);
    assert_int_equal(k2a_openai_stream_on_event(&f->osse, ev), 0);
    assert_int_equal(k2a_openai_aggregate_on_event(&f->oagg, ev), 0);
    return 0;
}

static void run_dialects(const k2a_kiro_resp_config_t *cfg, const frame_t *frames, dialects_t *d)
{
    fan_t f;
    uint64_t seed = 42;
    memset(d, 0, sizeof(*d));
    k2a_buf_init(&d->anth_sse, 0);
    k2a_buf_init(&d->anth_msg, 0);
    k2a_buf_init(&d->oai_sse, 0);
    k2a_buf_init(&d->oai_msg, 0);
    k2a_anthropic_sse_init(&f.asse, &d->anth_sse, K2A_STRLIT("claude-sonnet-4-5"), rs_random, &seed);
    k2a_anthropic_msg_init(&f.amsg, K2A_STRLIT("claude-sonnet-4-5"), rs_random, &seed, 0);
    assert_int_equal(k2a_openai_stream_init(&f.osse, &d->oai_sse, "chatcmpl-test", 1, K2A_STRLIT("gpt-x"), true), 0);
    k2a_openai_aggregate_init(&f.oagg, 0, 0);
    k2a_kiro_resp_t p;
    assert_int_equal(k2a_kiro_resp_init(&p, cfg, fan_out, &f), 0);
    assert_int_equal(k2a_kiro_resp_start(&p), 0);
    feed_all(&p, frames);
    k2a_kiro_resp_finish(&p, 0);
    k2a_kiro_resp_dispose(&p);
    d->anth_msg_rc = k2a_anthropic_msg_render(&f.amsg, &d->anth_msg);
    if (d->anth_msg_rc != 0) {
        k2a_str_t m = k2a_anthropic_msg_error_message(&f.amsg);
        k2a_buf_append(&d->anth_msg, m.base, m.len);
    }
    d->oai_msg_rc = k2a_openai_aggregate_write(&f.oagg, &d->oai_msg, "chatcmpl-test", 1, K2A_STRLIT("gpt-x"));
    if (d->oai_msg_rc != 0)
        k2a_buf_append(&d->oai_msg, f.oagg.error_message.base, f.oagg.error_message.len);
    k2a_anthropic_msg_dispose(&f.amsg);
    k2a_openai_stream_dispose(&f.osse);
    k2a_openai_aggregate_dispose(&f.oagg);
    k2a_buf_append(&d->anth_sse, "", 1);
    k2a_buf_append(&d->anth_msg, "", 1);
    k2a_buf_append(&d->oai_sse, "", 1);
    k2a_buf_append(&d->oai_msg, "", 1);
}

static void dialects_dispose(dialects_t *d)
{
    k2a_buf_dispose(&d->anth_sse);
    k2a_buf_dispose(&d->anth_msg);
    k2a_buf_dispose(&d->oai_sse);
    k2a_buf_dispose(&d->oai_msg);
}

static void expect_in(const k2a_buf_t *b, const char *what, const char *needle)
{
    if (strstr(b->base, needle) == NULL)
        fail_msg("%s lacks %s:\n%s", what, needle, b->base);
}

static void expect_not_in(const k2a_buf_t *b, const char *what, const char *needle)
{
    if (strstr(b->base, needle) != NULL)
        fail_msg("%s has %s:\n%s", what, needle, b->base);
}

/* ---------- the end of an answer ---------- */

static void test_metering_ends_the_answer(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    const frame_t frames[] = {{"assistantResponseEvent", "{\"content\":\"Hello\"}"},
                              {"metadataEvent", "{\"stopReason\":\"END_TURN\"}"},
                              {"contextUsageEvent", "{\"contextUsagePercentage\":12.5}"},
                              {"meteringEvent", METERING},
                              {NULL, NULL}};
    assert_int_equal(feed_all(&r.p, frames), 0);
    /* complete at once: no need for the body to end */
    const k2a_kiro_resp_seen_t *seen = k2a_kiro_resp_seen(&r.p);
    assert_true(seen->finished);
    assert_true(seen->metered);
    assert_int_equal(seen->error, 0);
    assert_int_equal(seen->stop, K2A_KIRO_STOP_END_TURN);
    kr_expect_seq(&r, "S B0:text D0 U U E0 stop:0");
    const rs_event_t *e = rs_rec_last(&r.rec);
    assert_true(e->usage.credits > 0.01695 && e->usage.credits < 0.01696);
    assert_true(e->usage.context_usage_pct > 12.49 && e->usage.context_usage_pct < 12.51);
    assert_int_equal(e->usage.input_tokens, 9);
    assert_true(e->usage.output_tokens > 0);
    /* a frame after metering (never seen) is ignored, and so is the end of the body */
    uint64_t ignored = seen->ignored_frames;
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"late\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    assert_int_equal(seen->ignored_frames, ignored + 2);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, K2A_EIDLE_TIMEOUT), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 U U E0 stop:0");
    kr_run_dispose(&r);
}

static void test_metering_order_violations(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    /* metering before any content: an (empty) complete answer */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"late\"}"), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S U stop:0");
    kr_run_dispose(&r);

    /* metering inside a tool call: never a complete call */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Write\",\"toolUseId\":\"t1\",\"input\":\"{\\\"a\\\":\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), K2A_EUPSTREAM_TRUNCATED);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 U error:UPSTREAM_TRUNCATED");
    assert_non_null(strstr(rs_rec_last(&r.rec)->message, "meteringEvent"));
    kr_run_dispose(&r);

    /* ... unless Kiro said the answer was cut for length: the call keeps its partial input, stop max_tokens */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Write\",\"toolUseId\":\"t1\",\"input\":\"{\\\"a\\\":\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "metadataEvent", "{\"stopReason\":\"MAX_TOKENS\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 U E0 stop:2");
    kr_run_dispose(&r);

    /* a complete tool call, then metering: tool_use */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Read\",\"toolUseId\":\"t2\",\"input\":\"{}\",\"stop\":true}"),
                     0);
    assert_int_equal(rs_feed_event(&r.p, "metadataEvent", "{\"stopReason\":\"TOOL_USE\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    kr_expect_seq(&r, "S B0:tool(Read) D0 E0 U stop:1");
    kr_run_dispose(&r);
}

/* An answer that ends cleanly without metering completes as before; a tool call cut upstream (input pieces, no stop, no
 * metering, clean end) stays an error, never a fake end_turn. */
static void test_clean_end_without_metering_and_cut_tool(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"Hi\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "metadataEvent", "{\"stopReason\":\"END_TURN\"}"), 0);
    assert_false(k2a_kiro_resp_seen(&r.p)->finished);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_seq(&r, "S B0:text D0 E0 stop:0");
    assert_false(k2a_kiro_resp_seen(&r.p)->metered);
    kr_run_dispose(&r);

    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Write\",\"toolUseId\":\"t1\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Write\",\"toolUseId\":\"t1\",\"input\":\"{\\\"path\\\":\"}"),
                     0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), K2A_EUPSTREAM_TRUNCATED);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_TRUNCATED");
    kr_run_dispose(&r);
}

/* ---------- metadataEvent ---------- */

typedef struct st_stop_case_t {
    const char *metadata;
    bool text; /* some text before */
    const char *seq;
    const char *anthropic, *openai; /* stop_reason / finish_reason, or the error type / code */
} stop_case_t;

static void test_stop_reasons_both_dialects(void **state)
{
    static const stop_case_t cases[] = {
        {"{\"stopReason\":\"END_TURN\"}", true, "S B0:text D0 U E0 stop:0", "\"stop_reason\":\"end_turn\"",
         "\"finish_reason\":\"stop\""},
        {"{\"stopReason\":\"STOP_SEQUENCE\"}", true, "S B0:text D0 U E0 stop:4", "\"stop_reason\":\"stop_sequence\"",
         "\"finish_reason\":\"stop\""},
        {"{\"stopReason\":\"MAX_TOKENS\"}", true, "S B0:text D0 U E0 stop:2", "\"stop_reason\":\"max_tokens\"",
         "\"finish_reason\":\"length\""},
        {"{\"stop_reason\":\"max_tokens\"}", true, "S B0:text D0 U E0 stop:2", "\"stop_reason\":\"max_tokens\"",
         "\"finish_reason\":\"length\""},
        {"{\"stopReason\":\"TOOL_USE\"}", true, "S B0:text D0 U E0 stop:0", "\"stop_reason\":\"end_turn\"",
         "\"finish_reason\":\"stop\""},
        {"{\"stopReason\":\"MODEL_CONTEXT_WINDOW_EXCEEDED\"}", true, "S B0:text D0 U E0 stop:3",
         "\"stop_reason\":\"model_context_window_exceeded\"", "\"finish_reason\":\"length\""},
        {"{\"stopReason\":\"CONTENT_FILTERED\"}", true, "S B0:text D0 U E0 stop:5", "\"stop_reason\":\"refusal\"",
         "\"finish_reason\":\"content_filter\""},
        {"{\"stopReason\":\"GUARDRAIL_INTERVENED\"}", true, "S B0:text D0 U E0 stop:5", "\"stop_reason\":\"refusal\"",
         "\"finish_reason\":\"content_filter\""},
        {"{\"stopReason\":\"SOMETHING_NEW\"}", true, "S B0:text D0 U E0 stop:0", "\"stop_reason\":\"end_turn\"",
         "\"finish_reason\":\"stop\""},
        {"{\"stopReason\":\"CONTENT_FILTERED\"}", false, "S U error:UPSTREAM_FILTERED", "\"type\":\"invalid_request_error\"",
         "\"code\":\"content_filter\""},
        {"{\"stopReason\":\"GUARDRAIL_INTERVENED\"}", false, "S U error:UPSTREAM_FILTERED", "\"type\":\"invalid_request_error\"",
         "\"code\":\"content_filter\""},
        {"{\"stopReason\":\"MALFORMED_TOOL_USE\"}", true, "S B0:text D0 U E0 error:UPSTREAM_EXCEPTION", "\"type\":\"api_error\"",
         "\"code\":\"upstream_error\""},
        {"{\"stopReason\":\"MALFORMED_MODEL_OUTPUT\"}", true, "S B0:text D0 U E0 error:UPSTREAM_EXCEPTION",
         "\"type\":\"api_error\"", "\"code\":\"upstream_error\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const stop_case_t *c = &cases[i];
        frame_t frames[5];
        size_t n = 0;
        if (c->text)
            frames[n++] = (frame_t){"assistantResponseEvent", "{\"content\":\"Some text.\"}"};
        frames[n++] = (frame_t){"metadataEvent", c->metadata};
        frames[n++] = (frame_t){"meteringEvent", METERING};
        frames[n] = (frame_t){NULL, NULL};
        k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
        kr_run_t r;
        kr_run_init(&r, &cfg);
        feed_all(&r.p, frames);
        rs_rec_check(&r.rec, true);
        char *got = rs_rec_describe(&r.rec);
        if (strcmp(got, c->seq) != 0)
            fail_msg("%s: got %s, want %s", c->metadata, got, c->seq);
        free(got);
        if (!c->text && strstr(c->seq, "FILTERED") != NULL)
            assert_non_null(strstr(rs_rec_last(&r.rec)->message, "Request was blocked by upstream content filtering"));
        kr_run_dispose(&r);

        dialects_t d;
        run_dialects(&cfg, frames, &d);
        bool error = strstr(c->seq, "error:") != NULL;
        expect_in(&d.anth_sse, c->metadata, c->anthropic);
        expect_in(&d.oai_sse, c->metadata, c->openai);
        if (error) {
            expect_in(&d.anth_sse, c->metadata, "event: error");
            expect_not_in(&d.anth_sse, c->metadata, "message_stop");
            expect_not_in(&d.oai_sse, c->metadata, "[DONE]");
            assert_int_not_equal(d.anth_msg_rc, 0);
            assert_int_not_equal(d.oai_msg_rc, 0);
            if (!c->text) {
                /* the non-stream answer is a 400 in each dialect's shape */
                int status = 0;
                k2a_buf_t body = K2A_BUF_INIT(0);
                k2a_anthropic_error_body(&body, d.anth_msg_rc, K2A_STRLIT("x"), &status);
                assert_int_equal(status, 400);
                assert_int_equal(k2a_openai_error_body(&body, d.oai_msg_rc, "x", 1, NULL), 400);
                k2a_buf_dispose(&body);
            }
        } else {
            expect_in(&d.anth_sse, c->metadata, "event: message_stop");
            expect_in(&d.oai_sse, c->metadata, "data: [DONE]");
            assert_int_equal(d.anth_msg_rc, 0);
            assert_int_equal(d.oai_msg_rc, 0);
            expect_in(&d.anth_msg, c->metadata, c->anthropic);
            expect_in(&d.oai_msg, c->metadata, c->openai);
        }
        dialects_dispose(&d);
    }
}

static void test_token_usage_and_context(void **state)
{
    const frame_t frames[] = {
        {"assistantResponseEvent", "{\"content\":\"Hello there\"}"},
        {"metadataEvent", "{\"stopReason\":\"END_TURN\",\"tokenUsage\":{\"uncachedInputTokens\":100,\"cacheReadInputTokens\":2000,"
                          "\"cacheWriteInputTokens\":300,\"outputTokens\":42,\"totalTokens\":2442,\"future\":{\"x\":[1]}},"
                          "\"contextUsagePercentage\":50}"},
        {"contextUsageEvent", "{\"contextUsagePercentage\":50.5}"},
        {"meteringEvent", METERING},
        {NULL, NULL}};
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_all(&r.p, frames), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 U U U E0 stop:0");
    const rs_event_t *e = rs_rec_last(&r.rec);
    assert_int_equal(e->usage.input_tokens, 100);
    assert_int_equal(e->usage.cache_read_input_tokens, 2000);
    assert_int_equal(e->usage.cache_creation_input_tokens, 300);
    assert_int_equal(e->usage.output_tokens, 42);
    assert_int_equal(k2a_kiro_resp_input_tokens(&r.p), 2400);
    assert_int_equal(k2a_kiro_resp_output_tokens(&r.p), 42);
    assert_int_equal(k2a_kiro_resp_context_tokens(&r.p), 101000);
    /* the metadata's percentage was taken as contextUsageEvent's is (then the event's replaced it) */
    assert_int_equal(r.rec.ev[3].usage.context_usage_pct, 50);
    kr_run_dispose(&r);

    dialects_t d;
    run_dialects(&cfg, frames, &d);
    const char *anth =
        "\"input_tokens\":100,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":2000,\"output_tokens\":42";
    expect_in(&d.anth_sse, "anthropic stream", anth);
    expect_in(&d.anth_msg, "anthropic message", anth);
    const char *oai =
        "\"prompt_tokens\":2400,\"completion_tokens\":42,\"total_tokens\":2442,\"prompt_tokens_details\":{\"cached_tokens\":2000}";
    expect_in(&d.oai_sse, "openai stream", oai);
    expect_in(&d.oai_msg, "openai message", oai);
    dialects_dispose(&d);

    /* a metadata percentage of 100 or more ends the answer as the context event does */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"x\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "metadataEvent", "{\"contextUsagePercentage\":100}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    kr_expect_seq(&r, "S B0:text D0 U U E0 stop:3");
    /* without tokenUsage the estimates stay */
    assert_int_equal(rs_rec_last(&r.rec)->usage.input_tokens, 9);
    assert_int_equal(rs_rec_last(&r.rec)->usage.cache_read_input_tokens, 0);
    kr_run_dispose(&r);
}

/* ---------- reasoningContentEvent ---------- */

static void test_reasoning_text_and_signature(void **state)
{
    const frame_t frames[] = {{"reasoningContentEvent", "{\"text\":\"Let me \"}"},
                              {"reasoningContentEvent", "{\"text\":\"think.\"}"},
                              {"reasoningContentEvent", "{\"signature\":\"c2lnLWZyb20ta2lybw==\"}"},
                              {"assistantResponseEvent", "{\"content\":\"Answer.\"}"},
                              {"metadataEvent", "{\"stopReason\":\"END_TURN\"}"},
                              {"meteringEvent", METERING},
                              {NULL, NULL}};
    k2a_kiro_resp_config_t cfg = kr_base_cfg(true);
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_all(&r.p, frames), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:think D0 D0 E0 B1:text D1 U E1 stop:0");
    kr_expect_block(&r, 0, "Let me think.");
    kr_expect_block(&r, 1, "Answer.");
    assert_string_equal(find_stop_of(&r, 0)->signature, "c2lnLWZyb20ta2lybw==");
    kr_run_dispose(&r);

    dialects_t d;
    run_dialects(&cfg, frames, &d);
    expect_in(&d.anth_sse, "anthropic stream", "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}");
    expect_in(&d.anth_sse, "anthropic stream", "{\"type\":\"thinking_delta\",\"thinking\":\"Let me \"}");
    expect_in(&d.anth_sse, "anthropic stream", "{\"type\":\"signature_delta\",\"signature\":\"c2lnLWZyb20ta2lybw==\"}");
    expect_not_in(&d.anth_sse, "anthropic stream", K2A_ANTHROPIC_THINKING_SIGNATURE);
    expect_in(&d.anth_msg, "anthropic message",
              "{\"type\":\"thinking\",\"thinking\":\"Let me think.\",\"signature\":\"c2lnLWZyb20ta2lybw==\"}");
    expect_in(&d.oai_sse, "openai stream", "{\"reasoning_content\":\"Let me \"}");
    expect_in(&d.oai_msg, "openai message", "\"reasoning_content\":\"Let me think.\"");
    dialects_dispose(&d);

    /* text and signature in one frame, the text split inside a UTF-8 sequence across frames */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "reasoningContentEvent", "{\"text\":\"caf\xc3\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "reasoningContentEvent", "{\"text\":\"\xa9!\",\"signature\":\"s1\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_block(&r, 0, "caf\xc3\xa9!");
    assert_string_equal(find_stop_of(&r, 0)->signature, "s1");
    kr_run_dispose(&r);
}

static void test_reasoning_without_thinking_requested_is_text(void **state)
{
    const frame_t frames[] = {{"reasoningContentEvent", "{\"text\":\"Reasoning \",\"signature\":\"sig\"}"},
                              {"reasoningContentEvent", "{\"redactedContent\":\"b3BhcXVl\"}"},
                              {"assistantResponseEvent", "{\"content\":\"and answer.\"}"},
                              {"meteringEvent", METERING},
                              {NULL, NULL}};
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_all(&r.p, frames), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 D0 U E0 stop:0");
    kr_expect_block(&r, 0, "Reasoning and answer.");
    kr_run_dispose(&r);
}

/* GPT models send only redactedContent, at the end of the turn: a redacted_thinking block after the text. */
static void test_redacted_reasoning_after_text(void **state)
{
    const frame_t frames[] = {{"assistantResponseEvent", "{\"content\":\"Hi.\"}"},
                              {"reasoningContentEvent", "{\"redactedContent\":\"ZW5jcnlwdGVkLXJlYXNvbmluZw==\"}"},
                              {"metadataEvent", "{\"stopReason\":\"END_TURN\"}"},
                              {"contextUsageEvent", "{\"contextUsagePercentage\":3}"},
                              {"meteringEvent", METERING},
                              {NULL, NULL}};
    k2a_kiro_resp_config_t cfg = kr_base_cfg(true);
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_all(&r.p, frames), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 E0 B1:redacted E1 U U stop:0");
    assert_string_equal(r.rec.ev[4].text, "ZW5jcnlwdGVkLXJlYXNvbmluZw==");
    kr_run_dispose(&r);

    dialects_t d;
    run_dialects(&cfg, frames, &d);
    expect_in(&d.anth_sse, "anthropic stream",
              "\"index\":1,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"ZW5jcnlwdGVkLXJlYXNvbmluZw==\"}}");
    expect_in(&d.anth_sse, "anthropic stream", "{\"type\":\"content_block_stop\",\"index\":1}");
    expect_in(&d.anth_msg, "anthropic message",
              "[{\"type\":\"text\",\"text\":\"Hi.\"},{\"type\":\"redacted_thinking\",\"data\":\"ZW5jcnlwdGVkLXJlYXNvbmluZw==\"}]");
    /* nothing of it is visible to an OpenAI client */
    expect_not_in(&d.oai_sse, "openai stream", "ZW5jcnlwdGVk");
    expect_not_in(&d.oai_msg, "openai message", "ZW5jcnlwdGVk");
    expect_in(&d.oai_msg, "openai message", "\"content\":\"Hi.\"");
    dialects_dispose(&d);

    /* redacted only: the answer has that one block */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "reasoningContentEvent", "{\"redactedContent\":\"eA==\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    kr_expect_seq(&r, "S B0:redacted E0 U stop:0");
    kr_run_dispose(&r);

    /* reasoning text after text opens a new thinking block, and text after it a new text block */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"A\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "reasoningContentEvent", "{\"text\":\"hmm\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"B\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", METERING), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 E0 B1:think D1 E1 B2:text D2 U E2 stop:0");
    assert_null(find_stop_of(&r, 1)->signature); /* none from Kiro: the writer uses its own */
    kr_run_dispose(&r);
}

/* ---------- other events ---------- */

static void test_invalid_state_and_message_metadata(void **state)
{
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "messageMetadataEvent", "{\"conversationId\":\"c-1\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"partial\"}"), 0);
    assert_int_equal(
        rs_feed_event(&r.p, "invalidStateEvent", "{\"reason\":\"INVALID_STATE\",\"message\":\"conversation is stale\"}"),
        K2A_EUPSTREAM_EXCEPTION);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 error:UPSTREAM_EXCEPTION");
    assert_non_null(strstr(rs_rec_last(&r.rec)->message, "INVALID_STATE"));
    assert_non_null(strstr(rs_rec_last(&r.rec)->message, "conversation is stale"));
    assert_int_equal(k2a_kiro_resp_seen(&r.p)->ignored_frames, 1);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_run_dispose(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metering_ends_the_answer),
        cmocka_unit_test(test_metering_order_violations),
        cmocka_unit_test(test_clean_end_without_metering_and_cut_tool),
        cmocka_unit_test(test_stop_reasons_both_dialects),
        cmocka_unit_test(test_token_usage_and_context),
        cmocka_unit_test(test_reasoning_text_and_signature),
        cmocka_unit_test(test_reasoning_without_thinking_requested_is_text),
        cmocka_unit_test(test_redacted_reasoning_after_text),
        cmocka_unit_test(test_invalid_state_and_message_metadata),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
