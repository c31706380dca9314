/*
 * Kiro event parser tests for its fast paths, each against the general path it stands for: the {"content":"..."}
 * reader (8-byte scan) with an escape, the closing quote, a control byte, a bad UTF-8 byte or a 2-byte character at
 * every offset around the 8-byte steps; the one-pass lookup of :message-type and :event-type in any order; the flat
 * end-of-answer payloads read without yajl, compared with what yajl makes of the same members.
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

static int feed_text(kr_run_t *r, const char *s, size_t n)
{
    char payload[64];
    assert_true(n < 32);
    snprintf(payload, sizeof(payload), "{\"content\":\"%.*s\"}", (int)n, s);
    return rs_feed_event(&r->p, "assistantResponseEvent", payload);
}

static void test_plain_content_every_offset(void **state)
{
    /* an escape, the closing quote or a control character at every offset around the 8-byte steps of the scan */
    for (size_t at = 0; at < 26; ++at) {
        char text[40], payload[96], want[48];
        memset(text, 'x', at);
        text[at] = '\0';
        snprintf(payload, sizeof(payload), "{\"content\":\"%s\\\"q\\\\%s\"}", text, "yyyyyyyyy");
        snprintf(want, sizeof(want), "<%s\"q\\%s>", text, "yyyyyyyyy");
        kr_plain_case(payload, 0, want);
        snprintf(payload, sizeof(payload), "{\"content\":\"%s\"}", text);
        snprintf(want, sizeof(want), "<%s>", text);
        kr_plain_case(payload, 0, want);
        snprintf(payload, sizeof(payload), "{\"content\":\"%s\x01zzzzzzzzz\"}", text);
        kr_plain_case(payload, K2A_EUPSTREAM_EVENT, NULL);
        /* the UTF-8 check skips 8 ASCII bytes at a time: a bad byte or a 2-byte character at every offset */
        snprintf(payload, sizeof(payload), "{\"content\":\"%s\xffzzzzzzzzz\"}", text);
        snprintf(want, sizeof(want), "<%s\xef\xbf\xbdzzzzzzzzz>", text);
        kr_plain_case(payload, 0, want);
        snprintf(payload, sizeof(payload), "{\"content\":\"%s\xc3\xa9zzzzzzzzz\"}", text);
        snprintf(want, sizeof(want), "<%s\xc3\xa9zzzzzzzzz>", text);
        kr_plain_case(payload, 0, want);
    }
}

/* :message-type and :event-type are found in any order, among other headers; a frame with no :message-type is an
 * event; an unknown message type is ignored */
static void test_type_headers_any_order(void **state)
{
    kr_run_t r;
    rs_frame_t fr;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    kr_run_init(&r, &cfg);
    rs_frame_headers(&fr, "{\"content\":\"a\"}", ":event-type", "assistantResponseEvent", ":content-type", "application/json",
                     ":message-type", "event", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    rs_frame_headers(&fr, "{\"content\":\"b\"}", ":content-type", "application/json", ":message-type", "event", ":event-type",
                     "assistantResponseEvent", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    rs_frame_headers(&fr, "{\"content\":\"c\"}", ":event-type", "assistantResponseEvent", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    rs_frame_headers(&fr, "{\"content\":\"x\"}", ":message-type", "weird", ":event-type", "assistantResponseEvent", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    rs_frame_headers(&fr, "{\"content\":\"y\"}", ":message-type", "event", ":event-type", "somethingNewEvent", NULL);
    assert_int_equal(k2a_kiro_resp_on_frame(&r.p, &fr.f), 0);
    rs_frame_dispose(&fr);
    assert_int_equal(k2a_kiro_resp_finish(&r.p, 0), 0);
    rs_rec_check(&r.rec, true);
    kr_expect_block(&r, 0, "abc");
    assert_int_equal(k2a_kiro_resp_seen(&r.p)->ignored_frames, 2);
    kr_run_dispose(&r);
}

/* The small end-of-answer payloads are read without yajl when they are one flat object: each must give what yajl gives.
 * The same members with one more nested member ("z":[0], which only yajl reads) are the reference. */
static void flat_outcome(const char *event, const char *payload, int *rc, int64_t *ctx, double *credits, char *seq, size_t seqsz)
{
    kr_run_t r;
    k2a_kiro_resp_config_t cfg = kr_base_cfg(false);
    cfg.context_window = 1000000;
    kr_run_init(&r, &cfg);
    assert_int_equal(feed_text(&r, "x", 1), 0);
    *rc = rs_feed_event(&r.p, event, payload);
    int frc = k2a_kiro_resp_finish(&r.p, 0);
    *rc = *rc * 1000 + frc;
    *ctx = k2a_kiro_resp_context_tokens(&r.p);
    *credits = rs_rec_last(&r.rec)->usage.credits;
    snprintf(seq, seqsz, "%zu/%d/%d", r.rec.n, (int)rs_rec_last(&r.rec)->stop_reason, rs_rec_last(&r.rec)->error);
    kr_run_dispose(&r);
}

static void test_flat_payloads_match_yajl(void **state)
{
    static const char *const members[] = {
        "\"contextUsagePercentage\":50",
        "\"contextUsagePercentage\":2.5e1",
        " \"contextUsagePercentage\" : 12.25 ",
        "\"contextUsagePercentage\":0.5,\"other\":\"caf\xc3\xa9\"",
        "\"contextUsagePercentage\":99999999999999999999",
        "\"contextUsagePercentage\":123456789012345678",
        "\"contextUsagePercentage\":1e999",
        "\"contextUsagePercentage\":1e-999",
        "\"contextUsagePercentage\":-3",
        "\"contextUsagePercentage\":-0.0",
        "\"contextUsagePercentage\":\"12\"",
        "\"contextUsagePercentage\":01",
        "\"contextUsagePercentage\":1.",
        "\"contextUsagePercentage\":7,\"contextUsagePercentage\":9",
        "\"contextUsageEvent\":\"x\",\"contextUsagePercentage\":4",
        "\"usage\":0.75,\"unit\":\"credit\",\"unitPlural\":\"credits\"",
        "\"unit\":\"credit\",\"unitPlural\":\"credits\",\"usage\":3",
        "\"usage\":1E+2",
        "\"usage\":0.25,",
        "\"usage\":\"tab\there\"",
        "\"stopReason\":\"MAX_TOKENS\"",
        "\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"usage\":9",
    };
    static const char *const events[] = {"contextUsageEvent", "meteringEvent", "metadataEvent"};
    for (size_t e = 0; e < sizeof(events) / sizeof(events[0]); ++e) {
        for (size_t i = 0; i < sizeof(members) / sizeof(members[0]); ++i) {
            char flat[256], ref[256], seq1[48], seq2[48];
            snprintf(flat, sizeof(flat), "{%s}", members[i]);
            snprintf(ref, sizeof(ref), "{%s,\"z\":[0]}", members[i]);
            int rc1, rc2;
            int64_t ctx1, ctx2;
            double cr1, cr2;
            flat_outcome(events[e], flat, &rc1, &ctx1, &cr1, seq1, sizeof(seq1));
            flat_outcome(events[e], ref, &rc2, &ctx2, &cr2, seq2, sizeof(seq2));
            if (rc1 != rc2 || ctx1 != ctx2 || cr1 != cr2 || strcmp(seq1, seq2) != 0)
                fail_msg("%s %s: rc %d/%d ctx %lld/%lld credits %g/%g events %s/%s", events[e], flat, rc1, rc2, (long long)ctx1,
                         (long long)ctx2, cr1, cr2, seq1, seq2);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_content_every_offset),
        cmocka_unit_test(test_type_headers_any_order),
        cmocka_unit_test(test_flat_payloads_match_yajl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
