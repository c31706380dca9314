/*
 * /api/admin/...: the admin API's front (admin.h). Authentication by KIRO_ADMIN_TOKEN alone, compared in constant
 * time (a client key, no key and a wrong key get one and the same 401), the body bound and content type, then a
 * coroutine that matches the sub-route tables, parses the JSON body with yajl's tree parser (after a depth check) and runs
 * the handler. Also the shared pieces: JSON answers and errors, the audit line, and the durable write off the loop.
 */
#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "convert/dialect.h"
#include "core/errors.h"
#include "core/json_text.h"
#include "core/log.h"
#include "http/admin.h"
#include "http/gateway.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "pool/store.h"

#define MAX_TABLES 16
#define MAX_SEGMENTS 8

static const k2a_admin_route_t *tables[MAX_TABLES];
static size_t ntables;

int k2a_admin_register_routes(const k2a_admin_route_t *routes)
{
    for (size_t i = 0; i < ntables; ++i)
        if (tables[i] == routes)
            return 0;
    if (ntables >= MAX_TABLES)
        return K2A_ETOOBIG;
    tables[ntables++] = routes;
    return 0;
}

/* ---- answers ---- */

static void reply(k2a_admin_req_t *ar, int status, const char *json, size_t len, const char *allow)
{
    k2a_call_t *call = ar->call;
    int r = allow != NULL ? k2a_call_begin(call, status, "application/json", "cache-control", "no-store", "allow", allow, NULL)
                          : k2a_call_begin(call, status, "application/json", "cache-control", "no-store", NULL);
    if (r == 0 && k2a_call_write(call, json, len) == 0)
        k2a_call_finish(call);
}

void k2a_admin_reply_json(k2a_admin_req_t *ar, int status, const char *json, size_t len)
{
    reply(ar, status, json, len, NULL);
}

static void reply_errorv(k2a_admin_req_t *ar, int status, const char *type, const char *allow, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    k2a_buf_t b = K2A_BUF_INIT(0);
    if (k2a_buf_appendf(&b, "{\"error\":{\"type\":\"%s\",\"message\":\"", type) == 0 &&
        k2a_buf_append_json_escaped(&b, msg, strlen(msg)) == 0 && k2a_buf_appendstr(&b, "\"}}") == 0)
        reply(ar, status, b.base, b.len, allow);
    else
        reply(ar, 500, "{\"error\":{\"type\":\"api_error\",\"message\":\"out of memory\"}}", 58, NULL);
    k2a_buf_dispose(&b);
}

void k2a_admin_reply_error(k2a_admin_req_t *ar, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_errorv(ar, status, type, NULL, fmt, ap);
    va_end(ap);
}

static void reply_error_allow(k2a_admin_req_t *ar, const char *allow, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reply_error_allow(k2a_admin_req_t *ar, const char *allow, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_errorv(ar, 405, "method_not_allowed", allow, fmt, ap);
    va_end(ap);
}

/* The synchronous form, before a call exists (authentication, size, content type). */
static void send_error_sync(h2o_req_t *req, int status, const char *type, const char *message)
{
    k2a_buf_t b = K2A_BUF_INIT(0);
    if (k2a_buf_appendf(&b, "{\"error\":{\"type\":\"%s\",\"message\":\"", type) == 0 &&
        k2a_buf_append_json_escaped(&b, message, strlen(message)) == 0 && k2a_buf_appendstr(&b, "\"}}") == 0)
        k2a_http_send_json(req, status, b.base, b.len);
    else
        h2o_send_error_generic(req, 500, "Internal Server Error", "out of memory", 0);
    k2a_buf_dispose(&b);
}

void k2a_admin_audit(k2a_admin_req_t *ar, const char *action, const char *target_fmt, ...)
{
    char target[300];
    va_list ap;
    va_start(ap, target_fmt);
    vsnprintf(target, sizeof(target), target_fmt, ap);
    va_end(ap);
    K2A_LOG(K2A_LOG_INFO, ar->call->request_id, "admin: admin %s %s", action, target);
}

/* ---- persistence ---- */

bool k2a_admin_state_path(const k2a_server_t *s, const char *name, char *out, size_t outsz)
{
    const char *sf = s->config->state_file;
    out[0] = '\0';
    if (sf == NULL || sf[0] == '\0')
        return false;
    const char *slash = strrchr(sf, '/');
    int n = slash == NULL ? snprintf(out, outsz, "%s", name) : snprintf(out, outsz, "%.*s/%s", (int)(slash - sf), sf, name);
    if (n < 0 || (size_t)n >= outsz) {
        out[0] = '\0';
        return false;
    }
    return true;
}

typedef struct st_persist_job_t {
    uv_work_t work;
    const char *path, *data;
    size_t len;
    int result;
    bool done;
    k2a_coro_t *co;
} persist_job_t;

static void persist_work(uv_work_t *w)
{
    persist_job_t *j = w->data;
    j->result = k2a_pool_write_file_atomic(j->path, j->data, j->len);
}

static void persist_done(uv_work_t *w, int status)
{
    persist_job_t *j = w->data;
    (void)status;
    j->done = true;
    k2a_coro_wake(j->co, 0);
}

static void persist_ignore_cancel(k2a_coro_t *co, void *data)
{
    /* the write runs on the thread pool with the caller's stack data: it is waited for whatever happens to the client */
    (void)co;
    (void)data;
}

int k2a_admin_persist_file(const char *path, const char *data, size_t len)
{
    persist_job_t j = {.path = path, .data = data, .len = len, .co = k2a_coro_current()};
    j.work.data = &j;
    if (j.co == NULL || uv_queue_work(k2a_coro_loop(), &j.work, persist_work, persist_done) != 0)
        return k2a_pool_write_file_atomic(path, data, len);
    while (!j.done)
        k2a_coro_park(persist_ignore_cancel, &j);
    return j.result;
}

/* ---- body helpers ---- */

yajl_val k2a_admin_field(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

int k2a_admin_opt_string(k2a_admin_req_t *ar, yajl_val obj, const char *key, size_t max, bool required, const char **out)
{
    yajl_val v = k2a_admin_field(obj, key);
    *out = NULL;
    if (v == NULL || YAJL_IS_NULL(v)) {
        if (!required)
            return 0;
        k2a_admin_bad_request(ar, "\"%s\" is required", key);
        return -1;
    }
    if (!YAJL_IS_STRING(v)) {
        k2a_admin_bad_request(ar, "\"%s\" must be a string", key);
        return -1;
    }
    if (strlen(v->u.string) > max) {
        k2a_admin_bad_request(ar, "\"%s\" is longer than %zu bytes", key, max);
        return -1;
    }
    *out = v->u.string;
    return 0;
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

bool k2a_admin_query_param(const k2a_admin_req_t *ar, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    const char *q = ar->query;
    while (q != NULL && *q != '\0') {
        const char *end = strchr(q, '&');
        size_t seg = end != NULL ? (size_t)(end - q) : strlen(q);
        if (seg > nlen && strncmp(q, name, nlen) == 0 && q[nlen] == '=') {
            size_t o = 0;
            for (size_t i = nlen + 1; i < seg; ++i) {
                int c = (unsigned char)q[i];
                if (c == '+')
                    c = ' ';
                else if (c == '%' && i + 2 < seg && hexval(q[i + 1]) >= 0 && hexval(q[i + 2]) >= 0) {
                    c = hexval(q[i + 1]) * 16 + hexval(q[i + 2]);
                    i += 2;
                }
                if (o + 1 >= outsz)
                    return false;
                out[o++] = (char)c;
            }
            out[o] = '\0';
            return true;
        }
        q = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* ---- the built-in endpoint ---- */

static void h_status(k2a_admin_req_t *ar)
{
    k2a_server_t *s = ar->call->server;
    k2a_gateway_t *gw = k2a_gateway_of(s);
    char body[512];
    int n = snprintf(
        body, sizeof(body), "{\"admin\":true,\"version\":\"%s\",\"workers\":%u,\"pool\":%s,\"persistent\":%s,\"client_key\":%s}",
        K2A_VERSION, gw != NULL ? gw->nworkers : 1, s->pool != NULL ? "true" : "false",
        s->config->state_file != NULL && s->config->state_file[0] != '\0' ? "true" : "false", s->has_client_key ? "true" : "false");
    k2a_admin_reply_json(ar, 200, body, (size_t)n);
}

static const k2a_admin_route_t core_routes[] = {
    {"GET", "status", h_status},
    {NULL, NULL, NULL},
};

/* The tables of this directory, always present; a module outside it registers its own (k2a_admin_register_routes). */
static const k2a_admin_route_t *const builtin_tables[] = {core_routes, k2a_admin_account_routes};
#define NBUILTIN (sizeof(builtin_tables) / sizeof(builtin_tables[0]))

/* ---- routing ---- */

static size_t split(char *path, char **segs, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(path, "/", &save); t != NULL; t = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return max + 1;
        segs[n++] = t;
    }
    return n;
}

static bool id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > K2A_ADMIN_MAX_ID)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/* Matches path segments against a pattern; *id receives the {id} segment. */
static bool pattern_matches(const char *pattern, char **segs, size_t nsegs, const char **id)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", pattern);
    char *psegs[MAX_SEGMENTS + 1];
    size_t np = split(buf, psegs, MAX_SEGMENTS);
    if (np != nsegs)
        return false;
    const char *found = NULL;
    for (size_t i = 0; i < np; ++i) {
        if (strcmp(psegs[i], "{id}") == 0)
            found = segs[i];
        else if (strcmp(psegs[i], segs[i]) != 0)
            return false;
    }
    *id = found;
    return true;
}

static void admin_main(k2a_call_t *call)
{
    k2a_admin_req_t ar = {.call = call, .method = "GET", .path = "", .query = ""};
    h2o_req_t *req = call->req;
    if (req == NULL)
        return; /* the client left before the coroutine ran */
    ar.method = k2a_arena_strndup(&call->arena, req->method.base, req->method.len);
    h2o_iovec_t p = req->path_normalized;
    /* the router sent /api/admin and /api/admin/...; keep what follows */
    size_t skip = strlen("/api/admin");
    h2o_iovec_t rest = p.len > skip ? h2o_iovec_init(p.base + skip, p.len - skip) : h2o_iovec_init("", 0);
    char *path = k2a_arena_strndup(&call->arena, rest.base, rest.len);
    const char *query = "";
    if (req->query_at != SIZE_MAX && req->query_at + 1 <= req->path.len)
        query = k2a_arena_strndup(&call->arena, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1);
    if (ar.method == NULL || path == NULL || query == NULL) {
        k2a_admin_reply_error(&ar, 500, "api_error", "out of memory");
        return;
    }
    if (strcmp(ar.method, "HEAD") == 0)
        ar.method = "GET";
    ar.query = query;
    while (path[0] == '/')
        ++path;
    ar.path = k2a_arena_strndup(&call->arena, path, strlen(path));
    char *segs[MAX_SEGMENTS + 1];
    size_t nsegs = split(path, segs, MAX_SEGMENTS);
    if (ar.path == NULL || nsegs > MAX_SEGMENTS) {
        k2a_admin_reply_error(&ar, 404, "not_found_error", "no admin endpoint for this path");
        return;
    }
    const k2a_admin_route_t *hit = NULL;
    char allow[128] = "";
    const char *id = NULL;
    for (size_t t = 0; t < NBUILTIN + ntables && hit == NULL; ++t) {
        const k2a_admin_route_t *tab = t < NBUILTIN ? builtin_tables[t] : tables[t - NBUILTIN];
        for (const k2a_admin_route_t *r = tab; r->method != NULL; ++r) {
            const char *rid = NULL;
            if (!pattern_matches(r->pattern, segs, nsegs, &rid))
                continue;
            if (strcmp(r->method, ar.method) == 0) {
                hit = r;
                id = rid;
                break;
            }
            if (strstr(allow, r->method) == NULL && strlen(allow) + strlen(r->method) + 3 < sizeof(allow))
                snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s", allow[0] ? ", " : "", r->method);
        }
    }
    if (hit == NULL) {
        if (allow[0] != '\0')
            reply_error_allow(&ar, allow, "method %s not allowed here: use %s", ar.method, allow);
        else
            k2a_admin_reply_error(&ar, 404, "not_found_error", "no admin endpoint %s /api/admin/%.200s", ar.method, ar.path);
        return;
    }
    if (id != NULL && !id_ok(id)) {
        k2a_admin_bad_request(&ar, "invalid id: 1 to %d characters from A-Z a-z 0-9 - _ .", K2A_ADMIN_MAX_ID);
        return;
    }
    ar.id = id;
    bool wants_body = strcmp(ar.method, "POST") == 0 || strcmp(ar.method, "PATCH") == 0 || strcmp(ar.method, "PUT") == 0;
    if (wants_body && call->body_len > 0) {
        bool comment = false;
        if (k2a_json_text_depth(call->body, call->body_len, K2A_ADMIN_MAX_DEPTH, &comment) > K2A_ADMIN_MAX_DEPTH) {
            k2a_admin_bad_request(&ar, "request body nested deeper than %d levels", K2A_ADMIN_MAX_DEPTH);
            return;
        }
        if (comment) {
            k2a_admin_bad_request(&ar, "request body is not JSON (comments are not allowed)");
            return;
        }
        char err[256] = "";
        ar.body = yajl_tree_parse(call->body, err, sizeof(err));
        if (ar.body == NULL) {
            char *nl = strchr(err, '\n');
            if (nl != NULL)
                *nl = '\0';
            k2a_admin_bad_request(&ar, "request body is not valid JSON: %s", err[0] ? err : "parse error");
            return;
        }
    }
    hit->fn(&ar);
    if (ar.body != NULL)
        yajl_tree_free(ar.body);
}

/* Only KIRO_ADMIN_TOKEN, from `Authorization: Bearer <key>` or `x-api-key`. Every candidate is compared, always. */
static bool admin_authorized(k2a_server_t *s, h2o_req_t *req)
{
    h2o_iovec_t candidates[2];
    size_t n = k2a_http_key_candidates(req, candidates);
    bool ok = false;
    for (size_t i = 0; i < n; ++i)
        ok |= k2a_http_key_matches(s->admin_key_sha256, candidates[i].base, candidates[i].len);
    return ok && s->has_admin_key;
}

int k2a_h_admin(h2o_req_t *req, const k2a_route_ctx_t *rc)
{
    k2a_server_t *s = k2a_server_of(req);
    if (!s->has_admin_key) {
        send_error_sync(req, 401, "authentication_error",
                        "the admin API is unavailable: KIRO_ADMIN_TOKEN is not set on this gateway");
        return 0;
    }
    if (!admin_authorized(s, req)) {
        send_error_sync(req, 401, "authentication_error", "invalid admin key");
        return 0;
    }
    if (req->entity.len > K2A_ADMIN_MAX_BODY) {
        char msg[160];
        snprintf(msg, sizeof(msg), "request body of %zu bytes exceeds the admin API's limit of %d bytes", req->entity.len,
                 K2A_ADMIN_MAX_BODY);
        send_error_sync(req, 413, "request_too_large", msg);
        return 0;
    }
    if (req->entity.len > 0 && !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        h2o_iovec_t ct = k2a_http_header(req, "content-type");
        if (ct.base == NULL || ct.len < 16 || strncasecmp(ct.base, "application/json", 16) != 0 ||
            (ct.len > 16 && ct.base[16] != ';' && ct.base[16] != ' ')) {
            send_error_sync(req, 415, "unsupported_media_type", "the request body must be application/json");
            return 0;
        }
    }
    k2a_call_start(req, K2A_ROUTE_ADMIN, &k2a_dialect_anthropic, rc->request_id, admin_main);
    return 0;
}
