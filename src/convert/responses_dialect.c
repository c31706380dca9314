/*
 * The OpenAI Responses dialect (POST /v1/responses) on the seam of dialect.h: the decoder of responses_req.h (which
 * resolves previous_response_id against the response store first), the writer of responses_resp.h for both modes, and
 * OpenAI's error table and shapes (openai_error.h). A response created with store (OpenAI's default) is kept when its
 * answer ends (STOP): its response object, and its conversation (the stored one it continued, its input, its output)
 * as the items a follow-up's previous_response_id prepends.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/log.h"
#include "convert/dialect.h"
#include "convert/openai_error.h"
#include "convert/responses_req.h"
#include "convert/responses_resp.h"
#include "convert/responses_store.h"

/* What the dialect keeps of a request: the decoder's extras and the stored conversation it continues. */
typedef struct st_responses_ext_t {
    k2a_responses_extra_t x;
    k2a_str_t prior;   /* a JSON array of items, or empty */
    const char *owner; /* the client key's id (limits->owner), or NULL: the store's scope */
} responses_ext_t;

typedef struct st_responses_writer_t {
    k2a_responses_writer_t w;
    const responses_ext_t *ext;
    const char *request_id;
    bool stored;
} responses_writer_t;

static int decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena, k2a_ir_request_t *out,
                  k2a_convert_error_t *err)
{
    responses_ext_t *ext = k2a_arena_calloc(arena, sizeof(*ext));
    if (ext == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    int r = k2a_responses_decode_ex(body, len, NULL, 0, limits, arena, out, &ext->x, err);
    if (r != 0)
        return r;
    if (ext->x.previous_response_id.len != 0) {
        k2a_str_t id = ext->x.previous_response_id;
        k2a_responses_store_t *store = k2a_responses_store_current();
        k2a_buf_t items;
        k2a_buf_init(&items, limits != NULL ? limits->max_string_bytes : 0);
        char key[K2A_RESPONSES_STORE_KEY_MAX + 1];
        size_t klen = k2a_responses_store_key(key, limits != NULL ? limits->owner : NULL, id.base, id.len);
        r = store != NULL && klen != 0 ? k2a_responses_store_get(store, key, klen, (int64_t)time(NULL), NULL, &items)
                                       : K2A_ENOTFOUND;
        if (r == 0) {
            char *copy = k2a_arena_strndup(arena, items.base != NULL ? items.base : "[]", items.len);
            ext->prior = copy != NULL ? k2a_str(copy, items.len) : K2A_STR_NULL;
            r = copy != NULL ? 0 : K2A_ENOMEM;
        }
        k2a_buf_dispose(&items);
        if (r == K2A_ENOTFOUND)
            return k2a_convert_error_set(err, K2A_EBAD_PARAM,
                                         "previous_response_id: Previous response with id '%.*s' not found (unknown, expired, or "
                                         "created with store: false)",
                                         (int)(id.len > 128 ? 128 : id.len), id.base);
        if (r != 0)
            return k2a_convert_error_set(err, r, "%s", k2a_strerror(r));
        /* again, the stored conversation first (the strings of the first pass are arena copies or point into body) */
        r = k2a_responses_decode_ex(body, len, ext->prior.base, ext->prior.len, limits, arena, out, &ext->x, err);
        if (r != 0)
            return r;
    }
    if (limits != NULL && limits->owner != NULL &&
        (ext->owner = k2a_arena_strndup(arena, limits->owner, strlen(limits->owner))) == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    out->dialect_ext = ext;
    return 0;
}

static int writer_init(void *p, const k2a_dialect_writer_ctx_t *ctx)
{
    responses_writer_t *w = p;
    w->ext = ctx->ir->dialect_ext;
    w->request_id = ctx->request_id;
    w->stored = false;
    return k2a_responses_writer_init(&w->w, ctx->ir->stream ? ctx->out : NULL, ctx->created, ctx->ir->model,
                                     w->ext != NULL ? &w->ext->x : NULL, ctx->ir, ctx->random, ctx->random_ctx, 0);
}

/* The answer ended: keeps the response object and the conversation so far (the stored one it continued, its input,
 * its output: handed to the store item by item). A failure is logged and changes nothing for the client. */
static void store_response(responses_writer_t *w)
{
    w->stored = true;
    k2a_responses_store_t *store = k2a_responses_store_current();
    if (store == NULL || w->ext == NULL || !w->ext->x.store)
        return;
    k2a_buf_t object;
    k2a_buf_init(&object, 0);
    /* the response object in its parts: a stream's final one where response.completed carried it, else rendered */
    k2a_str_t obj[K2A_RESPONSES_OBJECT_PARTS];
    size_t output = 0;
    int r = k2a_responses_writer_object_parts(&w->w, &object, obj, &output);
    /* the items one by one (the store keeps a long one once however many responses hold it): "[", the stored
     * conversation's and the input's each followed by ",", the output's (the object's own part: kept once), "]" */
    const k2a_responses_extra_t *x = &w->ext->x;
    k2a_str_t parts_small[32], *parts = parts_small;
    size_t n = 0, cap = 2 * x->nitem_json + 3;
    if (r == 0 && cap > sizeof(parts_small) / sizeof(parts_small[0]) && (parts = malloc(cap * sizeof(*parts))) == NULL)
        r = K2A_ENOMEM;
    if (r == 0) {
        parts[n++] = K2A_STRLIT("[");
        for (size_t i = 0; i < x->nitem_json; ++i) {
            if (i != 0)
                parts[n++] = K2A_STRLIT(",");
            parts[n++] = x->item_json[i];
        }
        if (obj[output].len != 0) {
            if (x->nitem_json != 0)
                parts[n++] = K2A_STRLIT(",");
            parts[n++] = obj[output];
        }
        parts[n++] = K2A_STRLIT("]");
        const char *id = k2a_responses_writer_id(&w->w);
        char key[K2A_RESPONSES_STORE_KEY_MAX + 1];
        r = k2a_responses_store_key(key, w->ext->owner, id, strlen(id)) != 0
                ? k2a_responses_store_putv(store, key, obj, K2A_RESPONSES_OBJECT_PARTS, K2A_RESPONSES_OBJECT_SHARED, parts, n,
                                           (int64_t)time(NULL))
                : K2A_ETOOBIG;
    }
    if (parts != parts_small)
        free(parts);
    if (r != 0)
        K2A_LOG(K2A_LOG_WARN, w->request_id, "response %s not stored: %s", k2a_responses_writer_id(&w->w), k2a_strerror(r));
    k2a_buf_dispose(&object);
}

static int writer_on_event(void *p, const k2a_ir_event_t *ev)
{
    responses_writer_t *w = p;
    int r = k2a_responses_writer_on_event(&w->w, ev);
    if (r == 0 && ev->type == K2A_EV_STOP && w->w.stopped && !w->stored)
        store_response(w);
    return r;
}

static void writer_rewind(void *p, int first)
{
    responses_writer_t *w = p;
    (void)first;
    k2a_responses_writer_rewind(&w->w);
}

static int writer_render(void *p, k2a_buf_t *out, k2a_str_t *msg)
{
    responses_writer_t *w = p;
    int r = k2a_responses_writer_render(&w->w, out);
    if (r != 0)
        *msg = k2a_responses_writer_error_message(&w->w);
    return r;
}

static void writer_dispose(void *p)
{
    responses_writer_t *w = p;
    k2a_responses_writer_dispose(&w->w);
}

static int error_body(k2a_buf_t *out, const k2a_dialect_error_t *row, int err, k2a_str_t message)
{
    return k2a_openai_error_object(out, row, err, message.base, message.len, NULL);
}

const k2a_dialect_t k2a_dialect_responses = {
    .name = "responses",
    .decode = decode,
    .writer_size = sizeof(responses_writer_t),
    .writer_init = writer_init,
    .writer_on_event = writer_on_event,
    .writer_commit = NULL,
    .writer_finish = NULL,
    .writer_render = writer_render,
    .writer_dispose = writer_dispose,
    .error_body = error_body,
    .errors = k2a_openai_error_rows,
    .web_search = true,
    .stage_pct = 300,
    .stage_start = 4095, /* response.created and .in_progress: the same object twice, ~600 bytes each before the echo of
                            instructions and tools (start() reserves for what it renders) */
    .writer_rewind = writer_rewind,
};
