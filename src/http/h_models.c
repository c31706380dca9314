/*
 * GET /v1/models and GET /v1/models/<id>: the models the configured Kiro accounts may use — the union of
 * their ListAvailableModels catalogs (pool/catalog.h), or a built-in list of current IDs while no catalog is
 * known yet. Each model is listed under its dotted Kiro ID and under the Anthropic-style name that maps to
 * it ("claude-opus-4.5" and "claude-opus-4-5"), plus the exact KIRO_MODEL_MAP names; with its display name
 * and its context window (tokenLimits.maxInputTokens: 1M models say 1M). Each entry carries the fields of
 * both list shapes — Anthropic's (type, display_name, created_at, first_id/last_id/has_more) and OpenAI's
 * and kiro2api's (object, created, owned_by) — so either SDK's models.list() works. The catalogs live on
 * the pool's loop: the handler is a call that asks there.
 */
#include <stdlib.h>
#include <string.h>
#include "convert/model_map.h"
#include "core/buf.h"
#include "http/call.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "http/router.h"
#include "pool/pool.h"

#define MODELS_CREATED 1735689600 /* 2025-01-01T00:00:00Z: a fixed date */
#define MAX_MODELS 256

typedef struct st_entry_t {
    char id[K2A_MODEL_ID_MAX + 1];
    char display[K2A_MODEL_ID_MAX + 1];
    int64_t window, max_output;
} entry_t;

typedef struct st_listing_t {
    entry_t *e;
    size_t n, cap;
} listing_t;

static void add(listing_t *l, const char *id, const char *display, int64_t window, int64_t max_output)
{
    for (size_t i = 0; i < l->n; ++i)
        if (strcmp(l->e[i].id, id) == 0)
            return;
    if (l->n == l->cap)
        return;
    entry_t *e = &l->e[l->n++];
    snprintf(e->id, sizeof(e->id), "%s", id);
    snprintf(e->display, sizeof(e->display), "%s", display);
    e->window = window;
    e->max_output = max_output;
}

/* One Kiro model under its ID and its Anthropic-style alias. */
static void add_model(listing_t *l, const k2a_pool_model_t *m)
{
    char display[K2A_MODEL_ID_MAX + 1], alias[K2A_MODEL_ID_MAX + 1];
    if (m->name[0] != '\0')
        snprintf(display, sizeof(display), "%s", m->name);
    else
        k2a_model_display_name(m->id, display, sizeof(display));
    int64_t window = m->max_input > 0 ? m->max_input : k2a_model_default_window(m->id, strlen(m->id));
    add(l, m->id, display, window, m->max_output);
    if (k2a_model_anthropic_alias(m->id, alias, sizeof(alias)))
        add(l, alias, display, window, m->max_output);
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->id, ((const entry_t *)b)->id);
}

static const k2a_pool_model_t *find(const k2a_pool_model_t *models, size_t n, const char *id)
{
    for (size_t i = 0; i < n; ++i)
        if (k2a_model_id_same(models[i].id, strlen(models[i].id), id, strlen(id)))
            return &models[i];
    return NULL;
}

/* The models of the pool (or the built-in list); *known tells which. Returns the count, models has MAX_MODELS slots. */
static size_t collect(k2a_server_t *s, k2a_pool_model_t *models, bool *known)
{
    size_t n = s->pool != NULL ? k2a_pool_models_call(s->pool, models, MAX_MODELS, known) : 0;
    if (n == 0 && !*known) {
        for (size_t i = 0; k2a_model_builtin_ids[i] != NULL && n < MAX_MODELS; ++i) {
            memset(&models[n], 0, sizeof(models[n]));
            snprintf(models[n].id, sizeof(models[n].id), "%s", k2a_model_builtin_ids[i]);
            ++n;
        }
    }
    return n;
}

static void append_entry(k2a_buf_t *out, const entry_t *e)
{
    bool claude = strncmp(e->id, "claude", 6) == 0;
    k2a_buf_appendstr(out, "{\"id\":\"");
    k2a_buf_append_json_escaped(out, e->id, strlen(e->id));
    k2a_buf_appendstr(out, "\",\"type\":\"model\",\"object\":\"model\",\"display_name\":\"");
    k2a_buf_append_json_escaped(out, e->display, strlen(e->display));
    k2a_buf_appendf(out,
                    "\",\"created_at\":\"2025-01-01T00:00:00Z\",\"created\":%d,\"owned_by\":\"%s\",\"max_tokens\":%lld,"
                    "\"context_window\":%lld",
                    MODELS_CREATED, claude ? "anthropic" : "kiro", (long long)e->window, (long long)e->window);
    if (e->max_output > 0)
        k2a_buf_appendf(out, ",\"max_output_tokens\":%lld", (long long)e->max_output);
    k2a_buf_appendstr(out, "}");
}

static void one_model(k2a_call_t *call, const char *name, size_t len, const k2a_pool_model_t *models, size_t n, bool known)
{
    k2a_server_t *s = call->server;
    k2a_model_resolution_t res;
    k2a_convert_error_t err;
    if (s->model_map == NULL || k2a_model_map_resolve(s->model_map, k2a_str(name, len), &res, &err) != 0) {
        k2a_call_respond_error(call, K2A_ENOTFOUND, s->model_map == NULL ? "the model map is not loaded" : err.message);
        return;
    }
    char id[K2A_MODEL_ID_MAX + 1];
    snprintf(id, sizeof(id), "%.*s", (int)res.kiro_model_id.len, res.kiro_model_id.base);
    const k2a_pool_model_t *m = find(models, n, id);
    if (m == NULL) {
        char msg[400];
        snprintf(msg, sizeof(msg), "model \"%.*s\" (Kiro modelId \"%s\") is not %s", (int)(len < 128 ? len : 128), name, id,
                 known ? "available on any configured Kiro account" : "a known current model (no account's catalog is known yet)");
        k2a_call_respond_error(call, K2A_ENOTFOUND, msg);
        return;
    }
    entry_t e = {.window = m != NULL && m->max_input > 0 ? m->max_input : k2a_model_default_window(id, strlen(id)),
                 .max_output = m != NULL ? m->max_output : 0};
    snprintf(e.id, sizeof(e.id), "%.*s", (int)len, name);
    if (m != NULL && m->name[0] != '\0')
        snprintf(e.display, sizeof(e.display), "%s", m->name);
    else
        k2a_model_display_name(id, e.display, sizeof(e.display));
    k2a_buf_t out = K2A_BUF_INIT(0);
    append_entry(&out, &e);
    k2a_call_respond_json(call, 200, out.base, out.len);
    k2a_buf_dispose(&out);
}

static void models(k2a_call_t *call)
{
    k2a_server_t *s = call->server;
    if (call->req == NULL)
        return;
    /* /v1/models/<id>: the id as the router saw it (the request is valid while the call runs) */
    h2o_iovec_t subpath = h2o_iovec_init(NULL, 0);
    k2a_route_classify(call->req->path_normalized, &subpath);
    const char *sub = subpath.len != 0 ? subpath.base : NULL;
    size_t sublen = subpath.len;
    k2a_pool_model_t *pm = malloc(MAX_MODELS * sizeof(*pm));
    listing_t l = {.e = malloc(3 * MAX_MODELS * sizeof(entry_t)), .cap = 3 * MAX_MODELS};
    if (pm == NULL || l.e == NULL) {
        k2a_call_respond_error(call, K2A_ENOMEM, "out of memory");
        goto Exit;
    }
    bool known = false;
    size_t n = collect(s, pm, &known);
    if (sub != NULL) {
        one_model(call, sub, sublen, pm, n, known);
        goto Exit;
    }
    for (size_t i = 0; i < n; ++i)
        add_model(&l, &pm[i]);
    /* the exact names of KIRO_MODEL_MAP (and their -thinking variants) are accepted too */
    size_t nm = s->model_map != NULL ? k2a_model_map_count(s->model_map) : 0;
    for (size_t i = 0; i < nm; ++i) {
        k2a_str_t name = k2a_model_map_name(s->model_map, i);
        k2a_model_resolution_t res;
        k2a_convert_error_t err;
        if (k2a_model_map_resolve(s->model_map, name, &res, &err) != 0)
            continue;
        char id[K2A_MODEL_ID_MAX + 1], display[K2A_MODEL_ID_MAX + 1];
        snprintf(id, sizeof(id), "%.*s", (int)res.kiro_model_id.len, res.kiro_model_id.base);
        const k2a_pool_model_t *m = find(pm, n, id);
        if (m == NULL && known)
            continue; /* maps to a model no account has */
        if (m != NULL && m->name[0] != '\0')
            snprintf(display, sizeof(display), "%s", m->name);
        else
            k2a_model_display_name(id, display, sizeof(display));
        add(&l, name.base, display, m != NULL && m->max_input > 0 ? m->max_input : k2a_model_default_window(id, strlen(id)),
            m != NULL ? m->max_output : 0);
    }
    qsort(l.e, l.n, sizeof(*l.e), cmp_entry);
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&out, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < l.n; ++i) {
        if (i != 0)
            k2a_buf_appendstr(&out, ",");
        append_entry(&out, &l.e[i]);
    }
    k2a_buf_appendstr(&out, "],\"has_more\":false,\"first_id\":");
    if (l.n != 0) {
        k2a_buf_appendstr(&out, "\"");
        k2a_buf_append_json_escaped(&out, l.e[0].id, strlen(l.e[0].id));
        k2a_buf_appendstr(&out, "\",\"last_id\":\"");
        k2a_buf_append_json_escaped(&out, l.e[l.n - 1].id, strlen(l.e[l.n - 1].id));
        k2a_buf_appendstr(&out, "\"}");
    } else {
        k2a_buf_appendstr(&out, "null,\"last_id\":null}");
    }
    k2a_call_respond_json(call, 200, out.base, out.len);
    k2a_buf_dispose(&out);
Exit:
    free(pm);
    free(l.e);
}

int k2a_h_models(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_call_start(req, rc->route, rc->dialect, rc->request_id, models);
    return 0;
}
