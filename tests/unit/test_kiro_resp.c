/*
 * Kiro event parser tests. Every fixture (whole, byte by byte, random splits) gives the same IR sequence; synthetic
 * frames built with the EventStream encoder cover tool input split inside UTF-8 sequences, input on start and stop
 * frames, one-shot tools, tools in sequence, text after a tool, thinking tags split at every byte, backticked tags,
 * followupPrompt, exceptions and error frames, context usage >= 100, unknown events, truncation, limits. Every run
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
#include "convert/kiro_resp.h"
#include "core/errors.h"
#include "kiro_run.h"
#include "resp_support.h"

#define UPSTREAM K2A_FIXTURES_DIR "/upstream/"

static void expect_kind(const kr_run_t *r, k2a_ir_block_kind_t kind, const char *want)
{
    size_t len;
    char *got = rs_rec_concat_kind(&r->rec, kind, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("kind %d\n got: [%s]\nwant: [%s]", (int)kind, got, want);
    free(got);
}

/* JSON string body of raw bytes without UTF-8 validation (so that a piece may end inside a sequence) */
static void json_raw(k2a_buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            k2a_buf_append(b, "\\", 1);
            k2a_buf_append(b, &s[i], 1);
        } else if (c < 0x20) {
            k2a_buf_appendf(b, "\\u%04x", c);
        } else {
            k2a_buf_append(b, &s[i], 1);
        }
    }
}

/* toolUseEvent with optional name (NULL: absent), input piece (NULL: absent) and stop */
static int feed_tool(kr_run_t *r, const char *name, const char *id, const char *input, size_t input_len, bool stop)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_append(&b, "{", 1);
    bool first = true;
    if (name != NULL) {
        k2a_buf_appendf(&b, "\"name\":\"%s\"", name);
        first = false;
    }
    if (id != NULL) {
        k2a_buf_appendf(&b, "%s\"toolUseId\":\"%s\"", first ? "" : ",", id);
        first = false;
    }
    if (input != NULL) {
        k2a_buf_appendf(&b, "%s\"input\":\"", first ? "" : ",");
        json_raw(&b, input, input_len);
        k2a_buf_append(&b, "\"", 1);
        first = false;
    }
    if (stop)
        k2a_buf_appendf(&b, "%s\"stop\":true", first ? "" : ",");
    k2a_buf_append(&b, "}", 1);
    int rc = rs_feed_event_n(&r->p, "toolUseEvent", b.base, b.len);
    k2a_buf_dispose(&b);
    return rc;
}

static int feed_text(kr_run_t *r, const char *s, size_t n)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    k2a_buf_appendstr(&b, "{\"content\":\"");
    json_raw(&b, s, n);
    k2a_buf_appendstr(&b, "\"}");
    int rc = rs_feed_event_n(&r->p, "assistantResponseEvent", b.base, b.len);
    k2a_buf_dispose(&b);
    return rc;
}

/* ---------- fixtures ---------- */

static void run_fixture(const char *file, size_t chunk, uint64_t seed, kr_run_t *r, int *rc)
{
    size_t len;
    char path[512];
    snprintf(path, sizeof(path), UPSTREAM "%s", file);
    char *body = rs_read_file(path, &len);
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(r, &cfg);
    *rc = rs_run_body_random(&r->p, body, len, chunk, seed);
    free(body);
    rs_rec_check(&r->rec, true);
}

/* the same sequence however the body is split: whole, fixed pieces, random pieces */
static void fixture_all_splits(const char *file, void (*verify)(kr_run_t *r, int rc))
{
    size_t chunks[] = {0, 1, 7, 64, 1000};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); ++i) {
        kr_run_t r;
        int rc;
        run_fixture(file, chunks[i], 0, &r, &rc);
        verify(&r, rc);
        kr_run_dispose(&r);
    }
    /* random split points */
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        kr_run_t r;
        int rc;
        run_fixture(file, 200, seed, &r, &rc);
        verify(&r, rc);
        kr_run_dispose(&r);
    }
}

static void verify_text2(kr_run_t *r, int rc)
{
    assert_int_equal(rc, 0);
    kr_expect_seq(r, "S B0:text D0 D0 E0 stop:0");
    kr_expect_block(r, 0, "Immersive Weather Card: Native Web Design & Dynamic Effects");
    const rs_event_t *e = rs_rec_last(&r->rec);
    assert_int_equal(e->usage.output_tokens, 22);
    assert_int_equal(e->usage.input_tokens, 9);
    assert_false(k2a_kiro_resp_seen(&r->p)->tool_used);
    assert_true(k2a_kiro_resp_seen(&r->p)->content_emitted);
}

static void test_fixture_text(void **state)
{
    fixture_all_splits("kiro2api_text_2frames_303B.bin", verify_text2);
}

static void verify_json(kr_run_t *r, int rc)
{
    assert_int_equal(rc, 0);
    kr_expect_seq(r, "S B0:text D0 D0 D0 D0 D0 E0 stop:0");
    kr_expect_block(r, 0, "{\n    \"isNewTopic\": true,\n    \"title\": \"Weather Card\"\n}");
    assert_int_equal(rs_rec_last(&r->rec)->usage.output_tokens, 23);
}

static void test_fixture_jsontext(void **state)
{
    fixture_all_splits("kiro2api_jsontext_5frames_674B.bin", verify_json);
}

static void verify_cjk(kr_run_t *r, int rc)
{
    /* the capture ends after the tool's start frame: a truncated tool call is an error, never end_turn / tool_use */
    assert_int_equal(rc, K2A_EUPSTREAM_TRUNCATED);
    kr_expect_seq(r, "S B0:text D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 D0 E0 B1:tool(Write) "
                     "error:UPSTREAM_TRUNCATED");
    const rs_event_t *e = rs_rec_last(&r->rec);
    assert_non_null(strstr(e->message, "Write"));
    assert_non_null(strstr(e->message, "tooluse_1DCqyICMR-CfTS36UNNiwA"));
    assert_string_equal(r->rec.ev[23].tool_id, "tooluse_1DCqyICMR-CfTS36UNNiwA");
    /* 63 for the text chunks + 14 for the tool start */
    assert_int_equal(k2a_kiro_resp_output_tokens(&r->p), 63 + 14);
    assert_int_equal(k2a_kiro_resp_seen(&r->p)->error, K2A_EUPSTREAM_TRUNCATED);
}

static void test_fixture_cjk(void **state)
{
    fixture_all_splits("kiro2api_cjk_text_then_tooluse_21frames_2738B.bin", verify_cjk);
}

static void verify_synthetic_tool(kr_run_t *r, int rc)
{
    assert_int_equal(rc, 0);
    /* the fixture has the 2025 order (metering, then contextUsage): metering is the last frame now, so it ends the answer
     * and the contextUsageEvent after it is ignored */
    kr_expect_seq(r, "S B0:text D0 E0 B1:tool(get_weather) D1 D1 E1 U stop:1");
    kr_expect_block(r, 0, "Let me check the weather.");
    kr_expect_block(r, 1, "{\"city\":\"巴黎\"}");
    const rs_event_t *e = rs_rec_last(&r->rec);
    assert_int_equal(e->usage.output_tokens, 30);
    /* the estimate stays (same number as message_start and count_tokens) */
    assert_int_equal(e->usage.input_tokens, 9);
    assert_int_equal(k2a_kiro_resp_context_tokens(&r->p), -1);
    assert_true(e->usage.credits > 0.01229 && e->usage.credits < 0.01231);
    assert_true(e->usage.context_usage_pct < 0);
    assert_true(k2a_kiro_resp_seen(&r->p)->metered);
    assert_int_equal(k2a_kiro_resp_seen(&r->p)->ignored_frames, 1);
    assert_string_equal(r->rec.ev[4].tool_id, "tooluse_SynthAbCdEfGhIjKlMnOpQr");
}

static void test_fixture_synthetic_tool(void **state)
{
    fixture_all_splits("SYNTHETIC_text_tooluse_metering_contextusage.bin", verify_synthetic_tool);
}

static void verify_exception(kr_run_t *r, int rc)
{
    assert_int_equal(rc, 0);
    kr_expect_seq(r, "S B0:text D0 E0 stop:2");
    assert_int_equal(rs_rec_last(&r->rec)->stop_reason, K2A_STOP_MAX_TOKENS);
}

static void test_fixture_exception(void **state)
{
    fixture_all_splits("SYNTHETIC_text_then_exception.bin", verify_exception);
}

/* a byte of a frame corrupted: the decoder fails, the parser reports a transport error, not a fake end */
static void test_fixture_bad_crc(void **state)
{
    size_t len;
    char *body = rs_read_file(UPSTREAM "kiro2api_text_2frames_303B.bin", &len);
    body[200] ^= 0x20; /* inside the second frame's payload */
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    int rc = rs_run_body(&r.p, body, len, 0);
    assert_int_equal(rc, K2A_EES_MESSAGE_CRC);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 error:ES_MESSAGE_CRC");
    /* cut mid-frame */
    kr_run_dispose(&r);
    body[200] ^= 0x20;
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_run_body(&r.p, body, len - 5, 0), K2A_EES_TRUNCATED);
    kr_expect_seq(&r, "S B0:text D0 error:ES_TRUNCATED");
    kr_run_dispose(&r);
    free(body);
}

/* ---------- tools ---------- */

static const char tool_json[] = "{\"city\":\"巴黎\",\"note\":\"héllo 😀 ok\",\"n\":[1,2]}";

/* every split point of the input into two pieces, including inside multi-byte sequences */
static void test_tool_split_utf8(void **state)
{
    size_t n = strlen(tool_json);
    for (size_t cut = 0; cut <= n; ++cut) {
        kr_run_t r;
        k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
        kr_run_init(&r, &cfg);
        assert_int_equal(feed_tool(&r, "get_weather", "t1", NULL, 0, false), 0);
        assert_int_equal(feed_tool(&r, "get_weather", "t1", tool_json, cut, false), 0);
        assert_int_equal(feed_tool(&r, "get_weather", "t1", tool_json + cut, n - cut, false), 0);
        assert_int_equal(feed_tool(&r, "get_weather", "t1", NULL, 0, true), 0);
        assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
        rs_rec_check(&r.rec, true);
        kr_expect_block(&r, 0, tool_json);
        assert_int_equal(rs_rec_last(&r.rec)->stop_reason, K2A_STOP_TOOL_USE);
        kr_run_dispose(&r);
    }
    /* one byte per piece, name repeated on every frame as Kiro does */
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    for (size_t i = 0; i < n; ++i)
        assert_int_equal(feed_tool(&r, "get_weather", "t1", tool_json + i, 1, false), 0);
    assert_int_equal(feed_tool(&r, "get_weather", "t1", NULL, 0, true), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_block(&r, 0, tool_json);
    /* the deltas: one per completed character; the bytes of a 4-byte emoji arrive as one delta */
    size_t deltas = 0;
    for (size_t i = 0; i < r.rec.n; ++i)
        deltas += r.rec.ev[i].type == K2A_EV_DELTA;
    assert_true(deltas < n);
    kr_run_dispose(&r);
}

static void test_tool_input_on_start_and_stop(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    /* the first piece on the start frame, the middle on a continuation without name, the last on the stop frame */
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"file_path\":", 13, false), 0);
    assert_int_equal(feed_tool(&r, NULL, "t1", "\"/tmp/a\",\"content\":", 19, false), 0);
    assert_int_equal(feed_tool(&r, "Write", "t1", "\"x\"}", 4, true), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 D0 D0 E0 stop:1");
    kr_expect_block(&r, 0, "{\"file_path\":\"/tmp/a\",\"content\":\"x\"}");
    kr_run_dispose(&r);
}

static void test_tool_one_shot(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"a\":1}", 7, true), 0);
    /* input given as a JSON object: re-serialised compactly */
    assert_int_equal(
        rs_feed_event(&r.p, "toolUseEvent",
                      "{\"name\":\"Read\",\"toolUseId\":\"t2\",\"input\": {\"path\" : \"/x\", \"n\": [1, 2.5e3, true, null]},"
                      "\"stop\":true}"),
        0);
    /* an empty object is "no input": the client gets no delta at all (a no-argument tool) */
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"name\":\"Ping\",\"toolUseId\":\"t3\",\"input\":{},\"stop\":true}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 E0 B1:tool(Read) D1 E1 B2:tool(Ping) E2 stop:1");
    kr_expect_block(&r, 0, "{\"a\":1}");
    kr_expect_block(&r, 1, "{\"path\":\"/x\",\"n\":[1,2.5e3,true,null]}");
    kr_run_dispose(&r);
}

static void test_tool_sequence_and_text_after(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "First ", 6), 0);
    assert_int_equal(feed_tool(&r, "A", "t1", NULL, 0, false), 0);
    assert_int_equal(feed_tool(&r, "A", "t1", "{}", 2, false), 0);
    assert_int_equal(feed_tool(&r, "A", "t1", NULL, 0, true), 0);
    /* a new toolUseId while t2 is open closes t2 */
    assert_int_equal(feed_tool(&r, "B", "t2", "{\"b\":2}", 7, false), 0);
    assert_int_equal(feed_tool(&r, "C", "t3", "{\"c\":3}", 7, false), 0);
    /* stop:true with "{}" after real pieces is the marker, not JSON to append */
    assert_int_equal(feed_tool(&r, "C", "t3", "{}", 2, true), 0);
    /* a late duplicate of a finished tool is ignored */
    assert_int_equal(feed_tool(&r, "A", "t1", "{\"zz\":1}", 8, true), 0);
    /* text after a tool: a new block at the next index */
    assert_int_equal(feed_text(&r, "then text", 9), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 E0 B1:tool(A) D1 E1 B2:tool(B) D2 E2 B3:tool(C) D3 E3 B4:text D4 E4 stop:1");
    kr_expect_block(&r, 1, "{}");
    kr_expect_block(&r, 2, "{\"b\":2}");
    kr_expect_block(&r, 3, "{\"c\":3}");
    kr_expect_block(&r, 4, "then text");
    kr_run_dispose(&r);
}

static void test_tool_truncated(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"file_path\":\"/a\",\"content\":\"lo", 31, false), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), K2A_EUPSTREAM_TRUNCATED);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_TRUNCATED");
    assert_non_null(strstr(rs_rec_last(&r.rec)->message, "31 bytes"));
    /* finish again: nothing more */
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    assert_int_equal(r.rec.n, 4);
    kr_run_dispose(&r);

    /* a transport error after text: an error, never a fake end_turn */
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "partial", 7), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, K2A_ERESET_MID_BODY), K2A_ERESET_MID_BODY);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 error:RESET_MID_BODY");
    kr_run_dispose(&r);
}

static void test_tool_limit(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.max_tool_input = 16;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"a\":\"0123456", 13, false), 0);
    assert_int_equal(feed_tool(&r, "Write", "t1", "789\"}", 5, false), K2A_EUPSTREAM_TOOL_TOOBIG);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_TOOL_TOOBIG");
    /* frames after the end are ignored */
    assert_int_equal(feed_text(&r, "x", 1), 0);
    assert_int_equal(k2a_kiro_resp_seen(&r.p)->ignored_frames, 1);
    kr_run_dispose(&r);
}

/* Finding of fuzz_kiro_resp: a tool block was closed (stop:true, or text / another tool after it) although the input
 * forwarded for it was not a JSON object, so a streaming client got content_block_stop for a broken call (SDKs then
 * parse it as {} or fail later) and the OpenAI aggregator rendered the broken text as arguments. Now the response ends
 * with an ERROR instead of the BLOCK_STOP; empty inputs ({}) and real objects still close normally. */
static void test_tool_input_not_json_object_is_an_error(void **state)
{
    static const struct {
        const char *input;
        bool ok;
    } cases[] = {{"{\"a\":", false}, {"{\"a\":1}}", false}, {"[1,2]", false},       {"\"str\"", false},           {"nul", false},
                 {"{} {}", false},   {"{\"a\":1}", true},   {" {\"b\":[]} ", true}, {"{\"x\":\"\\u00e9\"}", true}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        /* closed by stop:true */
        kr_run_t r;
        k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
        kr_run_init(&r, &cfg);
        int rc = feed_tool(&r, "Write", "t1", cases[i].input, strlen(cases[i].input), true);
        if (cases[i].ok) {
            assert_int_equal(rc, 0);
            assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
            rs_rec_check(&r.rec, true);
            kr_expect_seq(&r, "S B0:tool(Write) D0 E0 stop:1");
        } else {
            assert_int_equal(rc, K2A_EUPSTREAM_EVENT);
            rs_rec_check(&r.rec, true);
            kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_EVENT");
            assert_non_null(strstr(rs_rec_last(&r.rec)->message, "not a JSON object"));
        }
        kr_run_dispose(&r);
        /* closed by text that follows without stop:true */
        kr_run_init(&r, &cfg);
        assert_int_equal(feed_tool(&r, "Write", "t1", cases[i].input, strlen(cases[i].input), false), 0);
        rc = feed_text(&r, "after", 5);
        assert_int_equal(rc, cases[i].ok ? 0 : K2A_EUPSTREAM_EVENT);
        if (!cases[i].ok)
            kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_EVENT");
        kr_run_dispose(&r);
    }
    /* the input split in pieces is checked as a whole; no input at all is {} */
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"a\":", 5, false), 0);
    assert_int_equal(feed_tool(&r, "Write", "t1", "\"b\"}", 4, true), 0);
    assert_int_equal(feed_tool(&r, "Read", "t2", NULL, 0, true), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 D0 E0 B1:tool(Read) E1 stop:1");
    kr_run_dispose(&r);
}

/* Finding of fuzz_kiro_resp (after the tool-input check above): text held back inside a UTF-8 sequence while a broken
 * tool call was open, then a malformed payload: flushing the held text closed the tool (ERROR), and the malformed
 * payload was reported as a second ERROR after the end. */
static void test_malformed_payload_after_broken_tool_is_one_error(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"a\":", 5, false), 0);
    assert_int_equal(feed_text(&r, "\xf0", 1), 0); /* an incomplete sequence: held back, nothing emitted */
    assert_int_equal(rs_feed_event_n(&r.p, "assistantResponseEvent", "not json", 8), K2A_EUPSTREAM_EVENT);
    rs_rec_check(&r.rec, true); /* exactly one final ERROR */
    kr_expect_seq(&r, "S B0:tool(Write) D0 error:UPSTREAM_EVENT");
    assert_non_null(strstr(rs_rec_last(&r.rec)->message, "not a JSON object"));
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_run_dispose(&r);
}

static k2a_str_t map_name(void *ctx, k2a_str_t kiro)
{
    if (k2a_str_eq_lit(kiro, "mcp_short_1"))
        return K2A_STRLIT("mcp__very_long_server__very_long_tool_name");
    return K2A_STR_NULL;
}

static void test_tool_name_map_and_ids(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.map_tool_name = map_name;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "mcp_short_1", "t1", "{}", 2, true), 0);
    assert_int_equal(feed_tool(&r, "Other", "t2", "{}", 2, true), 0);
    /* a frame with an unknown id but no name cannot start a tool: ignored */
    assert_int_equal(feed_tool(&r, NULL, "t9", "{\"x\":1}", 7, false), 0);
    /* a frame without id and name, no tool open: ignored */
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"stop\":true}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(mcp__very_long_server__very_long_tool_name) D0 E0 B1:tool(Other) D1 E1 stop:1");
    kr_run_dispose(&r);

    /* bare {"input":..} and {"stop":true} continue the open tool (AIClient accepts these) */
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", NULL, 0, false), 0);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"input\":\"{\\\"a\\\":2}\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "toolUseEvent", "{\"stop\":true}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_seq(&r, "S B0:tool(Write) D0 E0 stop:1");
    kr_expect_block(&r, 0, "{\"a\":2}");
    kr_run_dispose(&r);
}

/* fuzz finding: a tool name / id with invalid UTF-8 reaches the client as valid UTF-8, and continuation frames still
 * match the id as Kiro sent it */
static void test_tool_invalid_utf8_name(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r,
                               "W\xff"
                               "x",
                               "t\xfe"
                               "1",
                               "{\"a\":", 5, false),
                     0);
    assert_int_equal(feed_tool(&r, NULL,
                               "t\xfe"
                               "1",
                               "1}", 2, true),
                     0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(W\xef\xbf\xbd"
                      "x) D0 D0 E0 stop:1");
    assert_string_equal(r.rec.ev[1].tool_id, "t\xef\xbf\xbd"
                                             "1");
    kr_expect_block(&r, 0, "{\"a\":1}");
    kr_run_dispose(&r);
}

/* ---------- text ---------- */

static void test_text_utf8_split_and_dedupe(void **state)
{
    /* a character split between two content chunks (raw bytes in the JSON string) is joined */
    const char *s = "a巴b";
    for (size_t cut = 0; cut <= strlen(s); ++cut) {
        kr_run_t r;
        k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
        kr_run_init(&r, &cfg);
        assert_int_equal(feed_text(&r, s, cut), 0);
        assert_int_equal(feed_text(&r, s + cut, strlen(s) - cut), 0);
        assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
        rs_rec_check(&r.rec, true);
        kr_expect_block(&r, 0, s);
        kr_run_dispose(&r);
    }
    /* an invalid byte becomes U+FFFD; an incomplete tail at the end too */
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "x\xffy", 3), 0);
    assert_int_equal(feed_text(&r, "z\xe5\xb7", 3), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_block(&r, 0, "x\xef\xbf\xbdyz\xef\xbf\xbd");
    kr_run_dispose(&r);

    /* repeated chunks are kept by default ... */
    kr_run_init(&r, &cfg);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(feed_text(&r, "=", 1), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_block(&r, 0, "===");
    kr_run_dispose(&r);
    /* ... and dropped only with the option */
    cfg.dedupe_repeated_chunks = true;
    kr_run_init(&r, &cfg);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(feed_text(&r, "=", 1), 0);
    assert_int_equal(feed_text(&r, "-", 1), 0);
    assert_int_equal(feed_text(&r, "=", 1), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_block(&r, 0, "=-=");
    kr_run_dispose(&r);
}

static void test_followup_wrapper_unknown(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"Hello\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent",
                                   "{\"content\":\"Would you like more?\",\"followupPrompt\":{\"content\":\"more\",\"userIntent\":"
                                   "\"SHOW_EXAMPLES\"}}"),
                     0);
    /* unknown events are ignored, whatever their payload */
    assert_int_equal(rs_feed_event(&r.p, "messageMetadataEvent", "{\"conversationId\":\"c\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "codeReferenceEvent", "not json at all"), 0);
    /* the {"assistantResponseEvent":{...}} wrapping kiro2api accepts */
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"assistantResponseEvent\":{\"content\":\" world\"}}"), 0);
    /* text whose JSON mentions "name"/"input"/"toolUseId" is still text (no payload sniffing) */
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent",
                                   "{\"content\":\" {\\\"name\\\":1,\\\"input\\\":2,\\\"toolUseId\\\":3}\",\"messageStatus\":"
                                   "\"IN_PROGRESS\",\"references\":[{\"a\":[1]}]}"),
                     0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 D0 D0 E0 stop:0");
    kr_expect_block(&r, 0, "Hello world {\"name\":1,\"input\":2,\"toolUseId\":3}");
    assert_int_equal(k2a_kiro_resp_seen(&r.p)->ignored_frames, 2);
    kr_run_dispose(&r);
}

static void test_malformed_payload(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"ok\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"cut"), K2A_EUPSTREAM_EVENT);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 error:UPSTREAM_EVENT");
    kr_run_dispose(&r);
    /* a malformed context/metadata payload is only logged, and the reused yajl handle recovers */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "metadataEvent", "{\"stopReason\":"), 0);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "[1,2]"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"fine\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", ""), 0); /* empty payload: {} */
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_seq(&r, "S B0:text D0 E0 stop:0");
    kr_run_dispose(&r);
    /* a malformed metering payload is still Kiro's last frame: it ends the answer, without credits */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "assistantResponseEvent", "{\"content\":\"fine\"}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", "{\"usage\":"), 0);
    kr_expect_seq(&r, "S B0:text D0 U E0 stop:0");
    assert_true(rs_rec_last(&r.rec)->usage.credits < 0);
    kr_run_dispose(&r);
}

static void test_plain_content_fast_path(void **state)
{
    kr_plain_case("{\"content\":\"a\"}", 0, "<a>");
    kr_plain_case("{\"content\":\"b\"} \r\n\t", 0, "<b>");
    kr_plain_case("{\"content\":\"\"}", 0, "<>");
    kr_plain_case("{\"content\":\"caf\xc3\xa9 \xe4\xbd\xa0\"}", 0, "<caf\xc3\xa9 \xe4\xbd\xa0>");
    kr_plain_case("{\"content\":\"d\\u0041\\\"\\n\"}", 0, "<dA\"\n>");
    kr_plain_case("{\"content\":\"e\",\"x\":[1,{\"content\":\"no\"}]}", 0, "<e>");
    kr_plain_case("{\"content\" : \"g\"}", 0, "<g>");
    kr_plain_case("{\"content\":\"tab\there\"}", K2A_EUPSTREAM_EVENT, NULL);
    kr_plain_case("{\"content\":\"c\"}x", K2A_EUPSTREAM_EVENT, NULL);
    kr_plain_case("{\"content\":\"f\"}}", K2A_EUPSTREAM_EVENT, NULL);
    kr_plain_case("{\"content\":\"h", K2A_EUPSTREAM_EVENT, NULL);
    kr_plain_case("{\"content\":\"i\"", K2A_EUPSTREAM_EVENT, NULL);
}

/* ---------- exceptions, errors, usage ---------- */

static void test_exceptions(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "Hi", 2), 0);
    rs_frame_t fr;
    rs_frame_exception(&fr, "ThrottlingException", "{\"message\":\"60-minute credit limit exceeded\"}");
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), K2A_ETHROTTLED);
    rs_frame_dispose(&fr);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 error:THROTTLED");
    assert_string_equal(rs_rec_last(&r.rec)->message, "Kiro exception ThrottlingException: 60-minute credit limit exceeded");
    kr_run_dispose(&r);

    /* no :exception-type header: the payload's __type */
    kr_run_init(&r, &cfg);
    rs_frame_headers(&fr, "{\"__type\":\"com.amazon.aws#InternalServerException\",\"message\":\"boom\"}", ":message-type",
                     "exception", ":content-type", "application/json", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), K2A_EUPSTREAM_SERVER);
    rs_frame_dispose(&fr);
    kr_expect_seq(&r, "S error:UPSTREAM_SERVER");
    assert_false(k2a_kiro_resp_seen(&r.p)->content_emitted); /* failover is still possible */
    kr_run_dispose(&r);

    /* an error frame: :error-code / :error-message headers */
    kr_run_init(&r, &cfg);
    rs_frame_headers(&fr, "", ":message-type", "error", ":error-code", "InternalFailure", ":error-message", "stream broke", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), K2A_EUPSTREAM_EXCEPTION);
    rs_frame_dispose(&fr);
    kr_expect_seq(&r, "S error:UPSTREAM_EXCEPTION");
    assert_string_equal(rs_rec_last(&r.rec)->message, "Kiro error InternalFailure: stream broke");
    kr_run_dispose(&r);

    /* ContentLengthExceeded in the middle of a tool: blocks closed, max_tokens */
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{\"a\":", 5, false), 0);
    rs_frame_exception(&fr, "ValidationException", "{\"message\":\"too long\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}");
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:tool(Write) D0 E0 stop:2");
    kr_run_dispose(&r);
}

/* fuzz_kiro_resp finding (kiro_resp-crash-6acd27ee; the checker's, not the converter's): once Kiro reports the context
 * window full, a tool call closed with a partial input keeps it (a length stop, as Anthropic does for max_tokens); if the
 * transport then fails, the stream still ends with one error event after that block. */
static void test_context_full_partial_tool_then_transport_error(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "=", 1), 0);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "{\"contextUsagePercentage\":100}"), 0);
    assert_int_equal(feed_tool(&r, "T", "t9", "ices", 4, true), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, K2A_ERESET_MID_BODY), K2A_ERESET_MID_BODY);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 U E0 B1:tool(T) D1 E1 error:RESET_MID_BODY");
    kr_run_dispose(&r);
    /* without the context-full report the same input is an error, and no block is closed around it */
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_tool(&r, "T", "t9", "ices", 4, true), K2A_EUPSTREAM_EVENT);
    kr_expect_seq(&r, "S B0:tool(T) D0 error:UPSTREAM_EVENT");
    kr_run_dispose(&r);
}

static void test_context_usage(void **state)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.context_window = 1000000;
    cfg.input_tokens = 5000;
    cfg.reconcile_input = true;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "x", 1), 0);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "{\"contextUsagePercentage\":100.5}"), 0);
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", "{\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":0.75}"), 0);
    /* metering was the last frame: a second one is ignored */
    assert_int_equal(rs_feed_event(&r.p, "meteringEvent", "{\"unit\":\"credit\",\"usage\":0.25}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:text D0 U U E0 stop:3");
    const rs_event_t *e = rs_rec_last(&r.rec);
    assert_int_equal(e->stop_reason, K2A_STOP_CONTEXT_WINDOW);
    assert_int_equal(e->usage.input_tokens, 1005000);
    assert_true(e->usage.credits > 0.7499 && e->usage.credits < 0.7501);
    kr_run_dispose(&r);

    /* without reconcile_input the estimate is kept and Kiro's figure is only reported */
    cfg.reconcile_input = false;
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "{\"contextUsagePercentage\":50}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    assert_int_equal(rs_rec_last(&r.rec)->usage.input_tokens, 5000);
    assert_int_equal(k2a_kiro_resp_context_tokens(&r.p), 500000);
    kr_run_dispose(&r);
    cfg.reconcile_input = true;

    /* a small percentage does not lower a larger estimate */
    cfg.context_window = 0;
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "{\"contextUsagePercentage\":1}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_seq(&r, "S U stop:0");
    assert_int_equal(rs_rec_last(&r.rec)->usage.input_tokens, 5000);
    assert_int_equal(rs_rec_last(&r.rec)->usage.output_tokens, 0);
    assert_false(k2a_kiro_resp_seen(&r.p)->content_emitted);
    kr_run_dispose(&r);

    /* an absurd percentage is bounded, not an overflowing conversion (found by fuzz_kiro_resp) */
    kr_run_init(&r, &cfg);
    assert_int_equal(rs_feed_event(&r.p, "contextUsageEvent", "{\"contextUsagePercentage\":1e30}"), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    assert_int_equal(k2a_kiro_resp_context_tokens(&r.p), 1000000000000000LL);
    kr_run_dispose(&r);
}

/* ---------- thinking ---------- */

static const char think_text[] = "<thinking>\nI think.</thinking>\n\nAnswer.";

static void check_think(kr_run_t *r)
{
    rs_rec_check(&r->rec, true);
    expect_kind(r, K2A_BLOCK_THINKING, "I think.");
    expect_kind(r, K2A_BLOCK_TEXT, "Answer.");
    assert_int_equal(r->rec.ev[1].type, K2A_EV_BLOCK_START);
    assert_int_equal(r->rec.ev[1].block, K2A_BLOCK_THINKING);
}

static void test_thinking_every_split(void **state)
{
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.thinking = true;
    size_t n = strlen(think_text);
    /* every pair of cut points: three chunks, tags split at every byte position */
    for (size_t i = 0; i <= n; ++i) {
        for (size_t j = i; j <= n; ++j) {
            kr_run_t r;
            kr_run_init(&r, &cfg);
            assert_int_equal(feed_text(&r, think_text, i), 0);
            assert_int_equal(feed_text(&r, think_text + i, j - i), 0);
            assert_int_equal(feed_text(&r, think_text + j, n - j), 0);
            assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
            check_think(&r);
            char *seq = rs_rec_describe(&r.rec);
            assert_non_null(strstr(seq, "B0:think"));
            assert_non_null(strstr(seq, "E0 B1:text"));
            free(seq);
            kr_run_dispose(&r);
        }
    }
    /* one byte per frame, with blanks before the tag */
    kr_run_t r;
    kr_run_init(&r, &cfg);
    const char *s = "\n\n<thinking>\nI think.</thinking>\n\nAnswer.";
    for (size_t i = 0; s[i]; ++i)
        assert_int_equal(feed_text(&r, s + i, 1), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    check_think(&r);
    kr_run_dispose(&r);
}

static void think_case(const char *const *chunks, const char *want_think, const char *want_text, const char *want_seq)
{
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.thinking = true;
    kr_run_t r;
    kr_run_init(&r, &cfg);
    for (size_t i = 0; chunks[i] != NULL; ++i)
        assert_int_equal(feed_text(&r, chunks[i], strlen(chunks[i])), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    expect_kind(&r, K2A_BLOCK_THINKING, want_think);
    expect_kind(&r, K2A_BLOCK_TEXT, want_text);
    kr_expect_seq(&r, want_seq);
    kr_run_dispose(&r);
}

static void test_thinking_tags(void **state)
{
    /* a tag in backticks is not a tag; an end tag not followed by \n\n is thinking text */
    think_case((const char *const[]){"<thinking>use `</thinking>` here</thinking>b</thinking>\n\nok", NULL},
               "use `</thinking>` here</thinking>b", "ok", "S B0:think D0 E0 B1:text D1 E1 stop:0");
    /* text that starts with a quoted tag is text */
    think_case((const char *const[]){"`<thinking>` is a tag", NULL}, "", "`<thinking>` is a tag", "S B0:text D0 E0 stop:0");
    /* a tag later in the text is text */
    think_case((const char *const[]){"Hello <thinking>x</thinking>\n\n", NULL}, "", "Hello <thinking>x</thinking>\n\n",
               "S B0:text D0 E0 stop:0");
    /* the end tag at the end of the stream ends the thinking: no text block */
    think_case((const char *const[]){"<thinking>abc</thinking>", NULL}, "abc", "", "S B0:think D0 E0 stop:0");
    think_case((const char *const[]){"<thinking>abc</thinking>\n", NULL}, "abc", "", "S B0:think D0 E0 stop:0");
    /* no end tag at all: the thinking block is closed at the end */
    think_case((const char *const[]){"<thinking>abc", " def", NULL}, "abc def", "", "S B0:think D0 D0 E0 stop:0");
    /* a prefix of the tag that turns out to be text */
    think_case((const char *const[]){"<thin", "gs to do", NULL}, "", "<things to do", "S B0:text D0 E0 stop:0");
    /* only blanks: nothing */
    think_case((const char *const[]){"\n\n", NULL}, "", "", "S stop:0");
}

static void test_thinking_then_tool_and_options(void **state)
{
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.thinking = true;
    kr_run_t r;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "<thinking>plan</thinking>", 25), 0);
    assert_int_equal(feed_tool(&r, "Write", "t1", "{}", 2, true), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:think D0 E0 B1:tool(Write) D1 E1 stop:1");
    expect_kind(&r, K2A_BLOCK_THINKING, "plan");
    kr_run_dispose(&r);

    /* thinking not requested: the tags are text */
    cfg.thinking = false;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, think_text, strlen(think_text)), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    kr_expect_seq(&r, "S B0:text D0 E0 stop:0");
    kr_expect_block(&r, 0, think_text);
    kr_run_dispose(&r);

    /* display omitted: the block without its text, but its tokens are counted */
    cfg.thinking = true;
    cfg.thinking_omitted = true;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, think_text, strlen(think_text)), 0);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_seq(&r, "S B0:think E0 B1:text D1 E1 stop:0");
    /* "I think." (3) + "Answer." (3) */
    assert_int_equal(rs_rec_last(&r.rec)->usage.output_tokens, 6);
    kr_run_dispose(&r);
}

typedef struct st_failing_t {
    rs_rec_t rec;
    size_t fail_after;
} failing_t;

static int failing_sink(void *ctx, const k2a_ir_event_t *ev)
{
    failing_t *f = ctx;
    if (f->rec.n >= f->fail_after)
        return K2A_ECLOSED;
    return rs_rec_sink(&f->rec, ev);
}

static void test_sink_failure(void **state)
{
    /* a sink that fails (the client went away) stops the parser with the sink's code */
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    failing_t f;
    rs_rec_init(&f.rec);
    f.fail_after = 2; /* MESSAGE_START and the text BLOCK_START get through, the delta fails */
    k2a_kiro_resp_t p;
    assert_int_equal(k2a_kiro_resp_init(&p, &cfg, failing_sink, &f), 0);
    assert_int_equal(k2a_kiro_resp_start(&p), 0);
    assert_int_equal(rs_feed_event(&p, "assistantResponseEvent", "{\"content\":\"x\"}"), K2A_ECLOSED);
    assert_int_equal(f.rec.n, 2);
    k2a_kiro_resp_dispose(&p);
    rs_rec_dispose(&f.rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_text),
        cmocka_unit_test(test_fixture_jsontext),
        cmocka_unit_test(test_fixture_cjk),
        cmocka_unit_test(test_fixture_synthetic_tool),
        cmocka_unit_test(test_fixture_exception),
        cmocka_unit_test(test_fixture_bad_crc),
        cmocka_unit_test(test_tool_split_utf8),
        cmocka_unit_test(test_tool_input_on_start_and_stop),
        cmocka_unit_test(test_tool_one_shot),
        cmocka_unit_test(test_tool_sequence_and_text_after),
        cmocka_unit_test(test_tool_truncated),
        cmocka_unit_test(test_tool_limit),
        cmocka_unit_test(test_tool_input_not_json_object_is_an_error),
        cmocka_unit_test(test_malformed_payload_after_broken_tool_is_one_error),
        cmocka_unit_test(test_tool_name_map_and_ids),
        cmocka_unit_test(test_tool_invalid_utf8_name),
        cmocka_unit_test(test_text_utf8_split_and_dedupe),
        cmocka_unit_test(test_plain_content_fast_path),
        cmocka_unit_test(test_followup_wrapper_unknown),
        cmocka_unit_test(test_malformed_payload),
        cmocka_unit_test(test_exceptions),
        cmocka_unit_test(test_context_full_partial_tool_then_transport_error),
        cmocka_unit_test(test_context_usage),
        cmocka_unit_test(test_thinking_every_split),
        cmocka_unit_test(test_thinking_tags),
        cmocka_unit_test(test_thinking_then_tool_and_options),
        cmocka_unit_test(test_sink_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
