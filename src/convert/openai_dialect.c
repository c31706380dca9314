/*
 * The OpenAI Chat Completions dialect (POST /v1/chat/completions) on the seam of dialect.h: the decoder of openai_req.h,
 * the chunk writer and the aggregate of openai_resp.h (one "chatcmpl-" id and one created time per exchange), the error
 * table and shapes of openai_error.h.
 */
#include "convert/dialect.h"
#include "convert/openai_error.h"
#include "convert/openai_req.h"
#include "convert/openai_resp.h"

typedef struct st_openai_writer_t {
    bool stream;
    char id[K2A_OPENAI_ID_SIZE];
    int64_t created;
    k2a_str_t model;
    union {
        k2a_openai_stream_t sse;
        k2a_openai_aggregate_t agg;
    } u;
} openai_writer_t;

static int writer_init(void *p, const k2a_dialect_writer_ctx_t *ctx)
{
    openai_writer_t *w = p;
    uint8_t rnd[K2A_OPENAI_ID_RANDOM_BYTES];
    ctx->random(ctx->random_ctx, rnd, sizeof(rnd));
    k2a_openai_format_id(w->id, rnd);
    w->stream = ctx->ir->stream;
    w->created = ctx->created;
    w->model = ctx->ir->model;
    if (w->stream)
        return k2a_openai_stream_init(&w->u.sse, ctx->out, w->id, w->created, w->model, ctx->ir->include_usage);
    k2a_openai_aggregate_init(&w->u.agg, 0, 0);
    return 0;
}

static int writer_on_event(void *p, const k2a_ir_event_t *ev)
{
    openai_writer_t *w = p;
    return w->stream ? k2a_openai_stream_on_event(&w->u.sse, ev) : k2a_openai_aggregate_on_event(&w->u.agg, ev);
}

static int writer_render(void *p, k2a_buf_t *out, k2a_str_t *msg)
{
    openai_writer_t *w = p;
    int r = k2a_openai_aggregate_write(&w->u.agg, out, w->id, w->created, w->model);
    if (r != 0)
        *msg = k2a_str(w->u.agg.error_message.base, w->u.agg.error_message.len);
    return r;
}

static void writer_dispose(void *p)
{
    openai_writer_t *w = p;
    if (w->stream)
        k2a_openai_stream_dispose(&w->u.sse);
    else
        k2a_openai_aggregate_dispose(&w->u.agg);
}

static int error_body(k2a_buf_t *out, const k2a_dialect_error_t *row, int err, k2a_str_t message)
{
    return k2a_openai_error_object(out, row, err, message.base, message.len, NULL);
}

const k2a_dialect_t k2a_dialect_openai = {
    .name = "openai",
    .decode = k2a_openai_decode,
    .writer_size = sizeof(openai_writer_t),
    .writer_init = writer_init,
    .writer_on_event = writer_on_event,
    .writer_commit = NULL,
    .writer_finish = NULL,
    .writer_render = writer_render,
    .writer_dispose = writer_dispose,
    .error_body = error_body,
    .errors = k2a_openai_error_rows,
    .web_search = false, /* web_search_options is refused by the decoder */
    .writer_rewind = NULL,
};
