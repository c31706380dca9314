/*
 * Response-side test helpers (see resp_support.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "resp_support.h"
#include "core/errors.h"
#include "core/utf8.h"
#include "core/rand.h"

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    assert_non_null(p);
    if (n != 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void rs_rec_init(rs_rec_t *r)
{
    memset(r, 0, sizeof(*r));
}

void rs_rec_dispose(rs_rec_t *r)
{
    for (size_t i = 0; i < r->n; ++i) {
        free(r->ev[i].text);
        free(r->ev[i].tool_id);
        free(r->ev[i].tool_name);
        free(r->ev[i].message);
        free(r->ev[i].signature);
    }
    free(r->ev);
    memset(r, 0, sizeof(*r));
}

int rs_rec_sink(void *ctx, const k2a_ir_event_t *ev)
{
    rs_rec_t *r = ctx;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->ev = realloc(r->ev, r->cap * sizeof(*r->ev));
        assert_non_null(r->ev);
    }
    rs_event_t *e = &r->ev[r->n++];
    memset(e, 0, sizeof(*e));
    e->type = ev->type;
    e->index = ev->index;
    e->block = ev->block;
    e->stop_reason = ev->stop_reason;
    e->usage = ev->usage;
    e->error = ev->error;
    if (ev->type == K2A_EV_DELTA || (ev->type == K2A_EV_BLOCK_START && ev->block == K2A_BLOCK_REDACTED_THINKING)) {
        e->text = dupn(ev->text.base, ev->text.len);
        e->text_len = ev->text.len;
    }
    if (ev->type == K2A_EV_BLOCK_STOP && ev->signature.len != 0)
        e->signature = dupn(ev->signature.base, ev->signature.len);
    if (ev->type == K2A_EV_BLOCK_START && ev->block == K2A_BLOCK_TOOL_USE) {
        e->tool_id = dupn(ev->tool_id.base, ev->tool_id.len);
        e->tool_name = dupn(ev->tool_name.base, ev->tool_name.len);
    }
    if (ev->type == K2A_EV_ERROR)
        e->message = dupn(ev->error_message.base, ev->error_message.len);
    return 0;
}

bool rs_utf8_valid(const char *str, size_t n)
{
    return k2a_utf8_valid(str, n); /* the project's one validator (core/utf8.h) */
}

void rs_rec_check(const rs_rec_t *r, bool require_start)
{
    int next = 0, open = -1;
    k2a_ir_block_kind_t open_kind = K2A_BLOCK_TEXT;
    bool ended = false;
    size_t i = 0;
    if (require_start) {
        assert_true(r->n >= 1);
        assert_int_equal(r->ev[0].type, K2A_EV_MESSAGE_START);
        i = 1;
    }
    for (; i < r->n; ++i) {
        const rs_event_t *e = &r->ev[i];
        assert_false(ended); /* nothing after STOP / ERROR */
        switch (e->type) {
        case K2A_EV_MESSAGE_START:
            fail_msg("MESSAGE_START at position %zu", i);
            break;
        case K2A_EV_BLOCK_START:
            assert_int_equal(open, -1);
            assert_int_equal(e->index, next);
            ++next;
            open = e->index;
            open_kind = e->block;
            if (e->block == K2A_BLOCK_TOOL_USE) {
                assert_true(strlen(e->tool_id) > 0);
                assert_true(strlen(e->tool_name) > 0);
            }
            break;
        case K2A_EV_DELTA:
            assert_int_equal(e->index, open);
            assert_int_equal(e->block, open_kind);
            assert_true(e->text_len > 0);
            if (!rs_utf8_valid(e->text, e->text_len))
                fail_msg("delta %zu is not valid UTF-8", i);
            break;
        case K2A_EV_BLOCK_STOP:
            assert_int_equal(e->index, open);
            open = -1;
            break;
        case K2A_EV_STOP:
            assert_int_equal(open, -1);
            ended = true;
            break;
        case K2A_EV_ERROR:
            assert_true(e->error < 0);
            assert_non_null(e->message);
            assert_true(strlen(e->message) > 0);
            ended = true;
            break;
        default:
            break;
        }
    }
    assert_true(ended);
}

char *rs_rec_concat(const rs_rec_t *r, int index, size_t *len)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    for (size_t i = 0; i < r->n; ++i)
        if (r->ev[i].type == K2A_EV_DELTA && r->ev[i].index == index)
            k2a_buf_append(&b, r->ev[i].text, r->ev[i].text_len);
    char *s = dupn(b.base, b.len);
    if (len != NULL)
        *len = b.len;
    k2a_buf_dispose(&b);
    return s;
}

char *rs_rec_concat_kind(const rs_rec_t *r, k2a_ir_block_kind_t kind, size_t *len)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    for (size_t i = 0; i < r->n; ++i)
        if (r->ev[i].type == K2A_EV_DELTA && r->ev[i].block == kind)
            k2a_buf_append(&b, r->ev[i].text, r->ev[i].text_len);
    char *s = dupn(b.base, b.len);
    if (len != NULL)
        *len = b.len;
    k2a_buf_dispose(&b);
    return s;
}

static const char *kind_name(k2a_ir_block_kind_t k)
{
    return k == K2A_BLOCK_TOOL_USE            ? "tool"
           : k == K2A_BLOCK_THINKING          ? "think"
           : k == K2A_BLOCK_REDACTED_THINKING ? "redacted"
                                              : "text";
}

char *rs_rec_describe(const rs_rec_t *r)
{
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    for (size_t i = 0; i < r->n; ++i) {
        const rs_event_t *e = &r->ev[i];
        if (b.len != 0)
            k2a_buf_append(&b, " ", 1);
        switch (e->type) {
        case K2A_EV_MESSAGE_START:
            k2a_buf_appendstr(&b, "S");
            break;
        case K2A_EV_BLOCK_START:
            if (e->block == K2A_BLOCK_TOOL_USE)
                k2a_buf_appendf(&b, "B%d:tool(%s)", e->index, e->tool_name);
            else
                k2a_buf_appendf(&b, "B%d:%s", e->index, kind_name(e->block));
            break;
        case K2A_EV_DELTA:
            k2a_buf_appendf(&b, "D%d", e->index);
            break;
        case K2A_EV_BLOCK_STOP:
            k2a_buf_appendf(&b, "E%d", e->index);
            break;
        case K2A_EV_USAGE:
            k2a_buf_appendstr(&b, "U");
            break;
        case K2A_EV_STOP:
            k2a_buf_appendf(&b, "stop:%d", (int)e->stop_reason);
            break;
        case K2A_EV_ERROR:
            k2a_buf_appendf(&b, "error:%s", k2a_errname(e->error));
            break;
        case K2A_EV_PING:
            k2a_buf_appendstr(&b, "P");
            break;
        case K2A_EV_SEARCH_START:
            k2a_buf_appendf(&b, "W%d", e->index);
            break;
        case K2A_EV_SEARCH_RESULT:
            k2a_buf_appendf(&b, "R%d", e->index);
            break;
        }
    }
    char *s = dupn(b.base != NULL ? b.base : "", b.len);
    k2a_buf_dispose(&b);
    return s;
}

const rs_event_t *rs_rec_last(const rs_rec_t *r)
{
    assert_true(r->n > 0);
    return &r->ev[r->n - 1];
}

int rs_tee_sink(void *ctx, const k2a_ir_event_t *ev)
{
    rs_tee_t *t = ctx;
    int r = t->a(t->actx, ev);
    int r2 = t->b(t->bctx, ev);
    return r != 0 ? r : r2;
}

void rs_random(void *ctx, void *buf, size_t len)
{
    uint64_t *state = ctx;
    unsigned char *out = buf;
    for (size_t i = 0; i < len; ++i) {
        out[i] = (unsigned char)k2a_splitmix64(state);
    }
}

static void frame_decode(rs_frame_t *fr)
{
    intptr_t n = k2a_es_decode_frame(fr->bytes.base, fr->bytes.len, 0, &fr->f);
    assert_int_equal(n, (intptr_t)fr->bytes.len);
}

void rs_frame_event_n(rs_frame_t *fr, const char *event_type, const char *payload, size_t len)
{
    k2a_buf_init(&fr->bytes, 0);
    assert_int_equal(k2a_es_encode_event(&fr->bytes, event_type, payload, len), 0);
    frame_decode(fr);
}

void rs_frame_event(rs_frame_t *fr, const char *event_type, const char *payload)
{
    rs_frame_event_n(fr, event_type, payload, strlen(payload));
}

void rs_frame_exception(rs_frame_t *fr, const char *exception_type, const char *payload)
{
    k2a_buf_init(&fr->bytes, 0);
    assert_int_equal(k2a_es_encode_exception(&fr->bytes, exception_type, payload, strlen(payload)), 0);
    frame_decode(fr);
}

void rs_frame_headers(rs_frame_t *fr, const char *payload, ...)
{
    k2a_es_header_t h[K2A_ES_MAX_HEADERS];
    size_t n = 0;
    va_list ap;
    va_start(ap, payload);
    for (const char *name; (name = va_arg(ap, const char *)) != NULL;) {
        const char *value = va_arg(ap, const char *);
        h[n++] = k2a_es_header_string(name, value);
    }
    va_end(ap);
    k2a_buf_init(&fr->bytes, 0);
    assert_int_equal(k2a_es_encode(&fr->bytes, h, n, payload, strlen(payload)), 0);
    frame_decode(fr);
}

void rs_frame_dispose(rs_frame_t *fr)
{
    k2a_buf_dispose(&fr->bytes);
}

int rs_feed_event_n(k2a_kiro_resp_t *p, const char *event_type, const char *payload, size_t len)
{
    rs_frame_t fr;
    rs_frame_event_n(&fr, event_type, payload, len);
    int r = k2a_kiro_resp_on_frame(p, &fr.f);
    rs_frame_dispose(&fr);
    return r;
}

int rs_feed_event(k2a_kiro_resp_t *p, const char *event_type, const char *payload)
{
    return rs_feed_event_n(p, event_type, payload, strlen(payload));
}

char *rs_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        fail_msg("cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    assert_non_null(p);
    assert_int_equal(fread(p, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    p[n] = '\0';
    *len = (size_t)n;
    return p;
}

void rs_write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL)
        fail_msg("cannot write %s", path);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
}

static int on_decoded(void *ctx, const k2a_es_frame_t *f)
{
    return k2a_kiro_resp_on_frame(ctx, f);
}

int rs_run_body(k2a_kiro_resp_t *p, const char *body, size_t len, size_t chunk)
{
    return rs_run_body_random(p, body, len, chunk, 0);
}

int rs_run_body_random(k2a_kiro_resp_t *p, const char *body, size_t len, size_t chunk, uint64_t seed)
{
    k2a_es_decoder_t d;
    k2a_es_decoder_init(&d, 0);
    int r = 0;
    if (chunk == 0)
        chunk = len != 0 ? len : 1;
    for (size_t off = 0, n; off < len && r == 0; off += n) {
        n = chunk;
        if (seed != 0) { /* random piece sizes 1..chunk */
            uint32_t x;
            rs_random(&seed, &x, sizeof(x));
            n = 1 + x % chunk;
        }
        if (n > len - off)
            n = len - off;
        r = k2a_es_decoder_feed(&d, body + off, n, on_decoded, p);
    }
    int fin;
    if (r == 0 || k2a_kiro_resp_seen(p)->finished == false) {
        /* a decoder error (not a parser result) is a transport error for the parser */
        int transport = r != 0 ? r : k2a_es_decoder_finish(&d);
        fin = k2a_kiro_resp_finish(p, transport);
        if (fin != 0)
            r = fin;
    }
    k2a_es_decoder_dispose(&d);
    return r;
}

void rs_json_emit(yajl_gen g, yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        yajl_gen_string(g, (const unsigned char *)v->u.string, strlen(v->u.string));
        break;
    case yajl_t_number:
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; ++i) {
            yajl_gen_string(g, (const unsigned char *)v->u.object.keys[i], strlen(v->u.object.keys[i]));
            rs_json_emit(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; ++i)
            rs_json_emit(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(g, 0);
        break;
    default:
        yajl_gen_null(g);
        break;
    }
}
