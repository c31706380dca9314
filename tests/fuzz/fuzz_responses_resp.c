/*
 * libFuzzer target for the OpenAI Responses writer (src/convert/responses_resp.c): the input bytes are read as a
 * sequence of IR events in any order (including orders a correct producer never sends), fed both to the streaming
 * writer and to the non-stream one. The writer must never crash or leak, never write after its last event
 * (response.completed / .incomplete / .failed), and number its events 0, 1, 2... without a gap; the non-stream object
 * and the output items must be valid JSON.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "core/errors.h"
#include "convert/responses_resp.h"
#include "ir_events.h"

static void counter_random(void *ctx, void *buf, size_t len)
{
    uint64_t *s = ctx;
    unsigned char *p = buf;
    for (size_t i = 0; i < len; ++i)
        p[i] = (unsigned char)(++*s * 0x9E3779B97F4A7C15ULL >> 56);
}

static void check_json(const k2a_buf_t *b)
{
    char *copy = malloc(b->len + 1);
    memcpy(copy, b->base != NULL ? b->base : "", b->len);
    copy[b->len] = '\0';
    yajl_val v = yajl_tree_parse(copy, NULL, 0);
    if (v == NULL)
        abort();
    yajl_tree_free(v);
    free(copy);
}

/* sequence_number n of every event, in order */
static void check_sequence(const k2a_buf_t *out)
{
    long long want = 0;
    if (out->len == 0)
        return;
    const char *p = out->base, *end = out->base + out->len;
    static const char key[] = "\"sequence_number\":";
    while (p != NULL && p < end) {
        const char *q = memmem(p, (size_t)(end - p), key, sizeof(key) - 1);
        if (q == NULL)
            break;
        q += sizeof(key) - 1;
        if (strtoll(q, NULL, 10) != want++)
            abort();
        p = q;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    k2a_buf_t out, obj, items;
    k2a_responses_writer_t w, a;
    uint64_t s1 = 1, s2 = 1;
    k2a_buf_init(&out, 1 << 20);
    k2a_buf_init(&obj, 1 << 20);
    k2a_buf_init(&items, 1 << 20);
    if (k2a_responses_writer_init(&w, &out, 1, k2a_cstr("m"), NULL, NULL, counter_random, &s1, 1 << 16) != 0 ||
        k2a_responses_writer_init(&a, NULL, 1, k2a_cstr("m"), NULL, NULL, counter_random, &s2, 1 << 16) != 0)
        abort();
    size_t i = 0;
    k2a_ir_event_t ev;
    while (fuzz_next_ir_event(data, size, &i, 6, 6, true, &ev)) {
        bool was_done = k2a_responses_writer_done(&w);
        size_t before = out.len;
        k2a_responses_writer_on_event(&w, &ev);
        if (was_done && out.len != before)
            abort();
        k2a_responses_writer_on_event(&a, &ev);
    }
    check_sequence(&out);
    if (k2a_responses_writer_render(&a, &obj) == 0)
        check_json(&obj);
    if (k2a_responses_writer_items(&a, &items) == 0)
        check_json(&items);
    k2a_responses_writer_dispose(&w);
    k2a_responses_writer_dispose(&a);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&obj);
    k2a_buf_dispose(&items);
    return 0;
}
