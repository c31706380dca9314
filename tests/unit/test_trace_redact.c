/*
 * Unit tests for the redaction of traces (src/trace/trace_redact.c): ARN account numbers and machine ids masked in any
 * text, credential headers masked with their scheme kept, prompt/tool/result texts replaced by their lengths in JSON
 * (kept with keep_text), and an EventStream redacted frame by frame into a stream that decodes again with valid CRCs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/buf.h"
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "trace/trace.h"

static char *text_of(k2a_buf_t *b)
{
    char *s = k2a_buf_cstr(b);
    assert_non_null(s);
    return s;
}

static void test_mask_text(void **state)
{
    (void)state;
    k2a_buf_t b = K2A_BUF_INIT(0);
    const char *in = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK KiroIDE-0.12.333-"
                     "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ts 1767225600000 n 12345";
    k2a_trace_mask_text(&b, in, strlen(in));
    assert_string_equal(text_of(&b), "arn:aws:codewhisperer:us-east-1:****1385:profile/EHGA3GRVQMUK KiroIDE-0.12.333-****cdef "
                                     "ts 1767225600000 n 12345");
    k2a_buf_reset(&b);
    const char *enc = "profileArn=arn%3Aaws%3Acodewhisperer%3Aus-east-1%3A699475941385%3Aprofile";
    k2a_trace_mask_text(&b, enc, strlen(enc));
    assert_null(strstr(text_of(&b), "699475941385"));
    k2a_buf_dispose(&b);
}

static void test_mask_header(void **state)
{
    (void)state;
    k2a_buf_t b = K2A_BUF_INIT(0);
    const char *auth = "Bearer aoaAAAAAGsecretsecretsecretWXYZ";
    k2a_trace_mask_header(&b, "Authorization", 13, auth, strlen(auth));
    assert_string_equal(text_of(&b), "Bearer ****WXYZ");
    k2a_buf_reset(&b);
    k2a_trace_mask_header(&b, "x-api-key", 9, "ksk_abcdefgh1234", 16);
    assert_null(strstr(text_of(&b), "abcdefgh"));
    k2a_buf_reset(&b);
    k2a_trace_mask_header(&b, "tokentype", 9, "API_KEY", 7);
    assert_string_equal(text_of(&b), "API_KEY");
    k2a_buf_dispose(&b);
}

static void test_redact_json(void **state)
{
    (void)state;
    k2a_buf_t b = K2A_BUF_INIT(0);
    const char *in = "{\"conversationState\":{\"currentMessage\":{\"userInputMessage\":{\"content\":\"tell me a secret\","
                     "\"modelId\":\"claude-haiku-4.5\",\"userInputMessageContext\":{\"tools\":[{\"toolSpecification\":"
                     "{\"name\":\"Read\",\"description\":\"reads files\",\"inputSchema\":{\"json\":{\"type\":\"object\"}}}}],"
                     "\"toolResults\":[{\"toolUseId\":\"t1\",\"content\":[{\"text\":\"file body\"}],\"status\":\"success\"}]}}}},"
                     "\"profileArn\":\"arn:aws:codewhisperer:us-east-1:699475941385:profile/X\",\"n\":3}";
    assert_int_equal(k2a_trace_redact_json(&b, in, strlen(in), false), 0);
    const char *out = text_of(&b);
    assert_null(strstr(out, "tell me a secret"));
    assert_null(strstr(out, "reads files"));
    assert_null(strstr(out, "file body"));
    assert_null(strstr(out, "699475941385"));
    assert_non_null(strstr(out, "\"content\":\"<16 bytes>\""));
    assert_non_null(strstr(out, "\"modelId\":\"claude-haiku-4.5\""));
    assert_non_null(strstr(out, "\"name\":\"Read\""));
    assert_non_null(strstr(out, "\"n\":3"));
    k2a_buf_reset(&b);
    assert_int_equal(k2a_trace_redact_json(&b, in, strlen(in), true), 0);
    assert_non_null(strstr(text_of(&b), "tell me a secret"));
    k2a_buf_reset(&b);
    assert_int_equal(k2a_trace_redact_json(&b, "not json", 8, false), 0);
    assert_string_equal(text_of(&b), "<8 bytes, not JSON>");
    k2a_buf_dispose(&b);
}

typedef struct st_seen_t {
    int frames;
    char last[256];
} seen_t;

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    seen_t *s = ctx;
    ++s->frames;
    snprintf(s->last, sizeof(s->last), "%.*s", (int)f->payload_len, f->payload);
    return 0;
}

static void test_redact_eventstream(void **state)
{
    (void)state;
    k2a_buf_t in = K2A_BUF_INIT(0), out = K2A_BUF_INIT(0);
    const char *p1 = "{\"content\":\"the secret answer\"}";
    const char *p2 = "{\"name\":\"Read\",\"toolUseId\":\"t1\",\"input\":\"{\\\"path\\\":\\\"/etc\\\"}\"}";
    assert_int_equal(k2a_es_encode_event(&in, "assistantResponseEvent", p1, strlen(p1)), 0);
    assert_int_equal(k2a_es_encode_event(&in, "toolUseEvent", p2, strlen(p2)), 0);
    size_t whole = in.len;
    k2a_buf_append(&in, in.base, 7); /* a partial frame at the end is left out */
    assert_int_equal(k2a_trace_redact_eventstream(&out, in.base, in.len, false), 0);
    assert_true(out.len < whole);
    k2a_es_decoder_t d;
    seen_t seen = {0};
    k2a_es_decoder_init(&d, 0);
    assert_int_equal(k2a_es_decoder_feed(&d, out.base, out.len, on_frame, &seen), 0);
    assert_int_equal(k2a_es_decoder_finish(&d), 0);
    k2a_es_decoder_dispose(&d);
    assert_int_equal(seen.frames, 2);
    assert_null(memmem(out.base, out.len, "secret answer", 13));
    assert_null(memmem(out.base, out.len, "/etc", 4));
    assert_non_null(memmem(out.base, out.len, "assistantResponseEvent", 22));
    assert_string_equal(seen.last, "{\"name\":\"Read\",\"toolUseId\":\"t1\",\"input\":\"<15 bytes>\"}");
    k2a_buf_dispose(&in);
    k2a_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_text),
        cmocka_unit_test(test_mask_header),
        cmocka_unit_test(test_redact_json),
        cmocka_unit_test(test_redact_eventstream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
