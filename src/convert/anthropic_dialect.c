/*
 * The Anthropic Messages dialect (POST /v1/messages) on the seam of dialect.h: the decoder of anthropic_req.h, the
 * writers of anthropic_resp.h (SSE or the aggregated message; pings and in-stream errors are their K2A_EV_PING and
 * K2A_EV_ERROR), the error table and shapes of anthropic_error.h. Its writers render the web_search server tool's
 * events (http/websearch.h) as server_tool_use and web_search_tool_result blocks.
 */
#include "convert/anthropic_error.h"
#include "convert/anthropic_req.h"
#include "convert/anthropic_resp.h"
#include "convert/dialect.h"

typedef struct st_anthropic_writer_t {
    bool stream;
    union {
        k2a_anthropic_sse_t sse;
        k2a_anthropic_msg_t msg;
    } u;
} anthropic_writer_t;

static int writer_init(void *p, const k2a_dialect_writer_ctx_t *ctx)
{
    anthropic_writer_t *w = p;
    w->stream = ctx->ir->stream;
    if (w->stream)
        k2a_anthropic_sse_init(&w->u.sse, ctx->out, ctx->ir->model, ctx->random, ctx->random_ctx);
    else
        k2a_anthropic_msg_init(&w->u.msg, ctx->ir->model, ctx->random, ctx->random_ctx, 0);
    return 0;
}

static int writer_on_event(void *p, const k2a_ir_event_t *ev)
{
    anthropic_writer_t *w = p;
    return w->stream ? k2a_anthropic_sse_on_event(&w->u.sse, ev) : k2a_anthropic_msg_on_event(&w->u.msg, ev);
}

static int writer_render(void *p, k2a_buf_t *out, k2a_str_t *msg)
{
    anthropic_writer_t *w = p;
    int r = k2a_anthropic_msg_render(&w->u.msg, out);
    if (r != 0)
        *msg = k2a_anthropic_msg_error_message(&w->u.msg);
    return r;
}

static void writer_dispose(void *p)
{
    anthropic_writer_t *w = p;
    if (!w->stream)
        k2a_anthropic_msg_dispose(&w->u.msg);
}

static int error_body(k2a_buf_t *out, const k2a_dialect_error_t *row, int err, k2a_str_t message)
{
    return k2a_anthropic_error_json(out, row->type, message);
}

static void writer_rewind(void *p, int first)
{
    anthropic_writer_t *w = p;
    if (!w->stream && first > 0)
        k2a_anthropic_msg_truncate(&w->u.msg, (size_t)first);
}

const k2a_dialect_t k2a_dialect_anthropic = {
    .name = "anthropic",
    .decode = k2a_anthropic_decode,
    .writer_size = sizeof(anthropic_writer_t),
    .writer_init = writer_init,
    .writer_on_event = writer_on_event,
    .writer_commit = NULL,
    .writer_finish = NULL,
    .writer_render = writer_render,
    .writer_dispose = writer_dispose,
    .error_body = error_body,
    .errors = k2a_anthropic_error_rows,
    .web_search = true,
    .writer_rewind = writer_rewind,
};
