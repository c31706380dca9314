/*
 * Unit tests for the EventStream codec (src/eventstream/): encoder round trip (first cut).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"

static int on_frame_copy(void *ctx, const k2a_es_frame_t *f)
{
    k2a_es_frame_t *out = ctx;
    *out = *f;
    return 0;
}

static void test_encode_event_roundtrip(void **state)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    const char *payload = "{\"content\":\"Immersive Weather Car\"}";
    assert_int_equal(k2a_es_encode_event(&b, "assistantResponseEvent", payload, strlen(payload)), 0);
    assert_int_equal(b.len, 143); /* same size as the first frame of kiro2api_text_2frames_303B.bin */
    k2a_es_frame_t f;
    assert_int_equal(k2a_es_decode_frame(b.base, b.len, 0, &f), 143);
    assert_int_equal(f.headers_length, 92);
    assert_int_equal(f.nheaders, 3);
    size_t n;
    const char *s = k2a_es_frame_header_str(&f, ":event-type", &n);
    assert_non_null(s);
    assert_memory_equal(s, "assistantResponseEvent", n);
    assert_int_equal(f.payload_len, strlen(payload));
    assert_memory_equal(f.payload, payload, f.payload_len);

    /* byte-identical to the real capture's first frame */
    FILE *fp = fopen(K2A_FIXTURES_DIR "/upstream/kiro2api_text_2frames_303B.bin", "rb");
    assert_non_null(fp);
    char real[143];
    assert_int_equal(fread(real, 1, sizeof(real), fp), sizeof(real));
    fclose(fp);
    assert_memory_equal(real, b.base, sizeof(real));

    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    for (size_t i = 0; i < b.len; ++i)
        assert_int_equal(k2a_es_decoder_feed(&d, b.base + i, 1, on_frame_copy, &f), 0);
    assert_int_equal(d.frames, 1);
    k2a_es_decoder_dispose(&d);
    k2a_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_event_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
