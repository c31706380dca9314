/*
 * libFuzzer target for the OpenAI response writers (src/convert/openai_resp.c): the input bytes are read as a
 * sequence of IR events in any order (including orders a correct producer never sends), fed both to the
 * streaming writer and to the non-stream aggregator. Writers must never crash or leak; the stream must end
 * with [DONE] after a STOP and never write after it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/openai_resp.h"
#include "ir_events.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    k2a_buf_t out, obj;
    k2a_openai_stream_t w;
    k2a_openai_aggregate_t a;
    k2a_buf_init(&out, 1 << 20);
    k2a_buf_init(&obj, 1 << 20);
    k2a_openai_aggregate_init(&a, 1 << 16, 8);
    if (k2a_openai_stream_init(&w, &out, "chatcmpl-fuzz", 1, k2a_cstr("m"), size != 0 && (data[0] & 1)) != 0)
        abort();
    size_t i = 1;
    k2a_ir_event_t ev;
    while (fuzz_next_ir_event(data, size, &i, 5, 5, false, &ev)) {
        bool was_done = k2a_openai_stream_done(&w);
        size_t before = out.len;
        k2a_openai_stream_on_event(&w, &ev);
        if (was_done && out.len != before)
            abort();
        k2a_openai_aggregate_on_event(&a, &ev);
    }
    if (k2a_openai_stream_done(&w) && !w.failed && (out.len < 14 || memcmp(out.base + out.len - 14, "data: [DONE]\n\n", 14) != 0))
        abort();
    k2a_openai_aggregate_write(&a, &obj, "chatcmpl-fuzz", 1, k2a_cstr("m"));
    k2a_openai_stream_dispose(&w);
    k2a_openai_aggregate_dispose(&a);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&obj);
    return 0;
}
