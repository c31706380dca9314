/*
 * libFuzzer target for the redaction of traces (src/trace/trace_redact.c), fed by peers: the response bytes of Kiro
 * (EventStream or an error body) and the request bodies. The first byte picks the input's kind and keep_text.
 * Invariants: a JSON input gives valid JSON or the "<N bytes, not JSON>" note; an EventStream gives frames that decode
 * again with valid CRCs, no more of them than the input holds; masked text never grows past a small factor and keeps
 * no run of exactly 12 digits.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "trace/trace.h"

#define CHECK(c, ...)                                                                                                              \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                                          \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

static int count_frame(void *ctx, const k2a_es_frame_t *f)
{
    (void)f;
    ++*(size_t *)ctx;
    return 0;
}

static size_t frames_in(const uint8_t *data, size_t size)
{
    size_t n = 0, off = 0;
    while (off < size) {
        k2a_es_frame_t f;
        intptr_t r = k2a_es_decode_frame(data + off, size - off, K2A_ES_DEFAULT_MAX_FRAME, &f);
        if (r <= 0)
            break;
        off += (size_t)r;
        ++n;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int kind = data[0] % 3;
    bool keep = (data[0] & 0x80) != 0;
    ++data;
    --size;
    k2a_buf_t out = K2A_BUF_INIT(0);
    if (kind == 0) {
        CHECK(k2a_trace_redact_json(&out, (const char *)data, size, keep) == 0, "redact_json failed");
        char *s = k2a_buf_cstr(&out);
        CHECK(s != NULL, "no output");
        if (s[0] != '<') {
            yajl_val v = yajl_tree_parse(s, NULL, 0);
            CHECK(v != NULL, "not JSON: %.200s", s);
            yajl_tree_free(v);
        }
    } else if (kind == 1) {
        int r = k2a_trace_redact_eventstream(&out, (const char *)data, size, keep);
        CHECK(r == 0 || r == K2A_ENOMEM || r < 0, "redact_eventstream %d", r);
        size_t n = 0;
        k2a_es_decoder_t d;
        k2a_es_decoder_init(&d, 0);
        CHECK(k2a_es_decoder_feed(&d, out.base != NULL ? out.base : "", out.len, count_frame, &n) == 0, "bad frames out");
        CHECK(k2a_es_decoder_finish(&d) == 0, "partial frame out");
        k2a_es_decoder_dispose(&d);
        CHECK(n <= frames_in(data, size), "%zu frames out of %zu", n, frames_in(data, size));
    } else {
        k2a_trace_mask_text(&out, (const char *)data, size);
        CHECK(out.len <= size * 4 + 8, "%zu bytes from %zu", out.len, size);
        /* no run of exactly 12 digits is left: every one was an account number */
        const uint8_t *o = (const uint8_t *)(out.base != NULL ? out.base : "");
        for (size_t i = 0; i < out.len;) {
            size_t j = i;
            while (j < out.len && o[j] >= '0' && o[j] <= '9')
                ++j;
            CHECK(j - i != 12, "a 12-digit run at %zu", i);
            i = j > i ? j : i + 1;
        }
    }
    k2a_buf_dispose(&out);
    return 0;
}
