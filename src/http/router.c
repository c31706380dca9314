/*
 * The one h2o handler: request id, CORS, routing (kiro2api's routes plus /healthz, /readyz,
 * /metrics, and the /v1/v1/... base-URL mistake), client-key check in constant time, method and
 * body-size checks, then dispatch to an endpoint (handlers.h). The route table carries each route's handler
 * and dialect (convert/dialect.h): errors come out in the route's dialect (OpenAI's shape on
 * /v1/chat/completions and the rest of /v1/chat, Anthropic's elsewhere), and a chat route's exchange speaks it.
 */
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "core/log.h"
#include "core/rand.h"
#include "http/handlers.h"
#include "http/respond.h"
#include "http/limits.h"
#include "http/router.h"
#include "convert/dialect.h"
#include "keys/keys.h"

typedef struct st_route_def_t {
    const char *path;
    k2a_route_t route;
    bool prefix; /* also matches path + "/" + anything */
    bool auth;
    const char *methods; /* accepted methods, "GET" or "POST" ("GET" implies HEAD), "*" = the handler checks */
    int (*handler)(h2o_req_t *req, const k2a_route_ctx_t *rc);
    const k2a_dialect_t *dialect; /* the shape of the route's errors (and of a chat route's API); NULL: Anthropic's */
    const char *family;           /* NULL, or a path prefix whose unknown paths answer in this dialect (e.g. "/v1/chat") */
} route_def_t;

#define ANTHROPIC (&k2a_dialect_anthropic)
#define OPENAI (&k2a_dialect_openai)
#define RESPONSES (&k2a_dialect_responses)

static const route_def_t routes[] = {
    {"/healthz", K2A_ROUTE_HEALTHZ, false, false, "GET", k2a_h_healthz, NULL, NULL},
    {"/readyz", K2A_ROUTE_READYZ, false, false, "GET", k2a_h_readyz, NULL, NULL},
    {"/metrics", K2A_ROUTE_METRICS, false, true, "GET", k2a_h_metrics, NULL, NULL},
    {"/api/tokens", K2A_ROUTE_API_TOKENS, false, true, "GET", k2a_h_api_tokens, NULL, NULL},
    /* KIRO_ADMIN_TOKEN only, methods per endpoint: h_admin.c */
    {"/api/admin", K2A_ROUTE_ADMIN, true, false, "*", k2a_h_admin, NULL, NULL},
    {"/v1/models", K2A_ROUTE_MODELS, true, true, "GET", k2a_h_models, NULL, NULL},
    {"/v1/messages/count_tokens", K2A_ROUTE_COUNT_TOKENS, false, true, "POST", k2a_h_count_tokens, ANTHROPIC, NULL},
    {"/v1/messages", K2A_ROUTE_MESSAGES, false, true, "POST", k2a_h_exchange, ANTHROPIC, NULL},
    {"/v1/chat/completions", K2A_ROUTE_CHAT_COMPLETIONS, false, true, "POST", k2a_h_exchange, OPENAI, "/v1/chat"},
    {"/v1/responses", K2A_ROUTE_RESPONSES, false, true, "POST", k2a_h_responses, RESPONSES, "/v1/responses"},
    /* GET and DELETE /v1/responses/{id}: the handler checks */
    {"/v1/responses", K2A_ROUTE_RESPONSE_GET, true, true, "*", k2a_h_response_get, RESPONSES, NULL},
    {"/static", K2A_ROUTE_STATIC, true, false, "GET", k2a_h_static, NULL, NULL},
    {"/", K2A_ROUTE_ROOT, false, false, "GET", k2a_h_static, NULL, NULL},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

k2a_route_t k2a_route_classify(h2o_iovec_t path, h2o_iovec_t *subpath)
{
    /* clients configured with ANTHROPIC_BASE_URL=http://host:8080/v1 send /v1/v1/messages (kiro-protocol.md §5.1) */
    while (path.len >= 6 && memcmp(path.base, "/v1/v1", 6) == 0 && (path.len == 6 || path.base[6] == '/')) {
        path.base += 3;
        path.len -= 3;
    }
    /* tolerate one trailing slash */
    if (path.len > 1 && path.base[path.len - 1] == '/')
        --path.len;
    for (size_t i = 0; i < NROUTES; ++i) {
        size_t n = strlen(routes[i].path);
        if (path.len == n && memcmp(path.base, routes[i].path, n) == 0) {
            if (subpath != NULL)
                *subpath = h2o_iovec_init(NULL, 0);
            return routes[i].route;
        }
        if (routes[i].prefix && path.len > n + 1 && memcmp(path.base, routes[i].path, n) == 0 && path.base[n] == '/') {
            if (subpath != NULL)
                *subpath = h2o_iovec_init(path.base + n + 1, path.len - n - 1);
            return routes[i].route;
        }
    }
    return K2A_ROUTE_OTHER;
}

static const route_def_t *route_def(k2a_route_t route)
{
    for (size_t i = 0; i < NROUTES; ++i)
        if (routes[i].route == route)
            return &routes[i];
    return NULL;
}

/* The dialect of a request's errors: its route's, or for an unknown path the dialect whose family it falls in. */
static const k2a_dialect_t *dialect_for(const route_def_t *def, h2o_iovec_t path)
{
    if (def != NULL)
        return def->dialect != NULL ? def->dialect : ANTHROPIC;
    for (size_t i = 0; i < NROUTES; ++i) {
        const char *f = routes[i].family;
        if (f != NULL && path.len >= strlen(f) && memcmp(path.base, f, strlen(f)) == 0)
            return routes[i].dialect;
    }
    return ANTHROPIC;
}

size_t k2a_router_dialects(const k2a_dialect_t **out, size_t max)
{
    size_t n = 0;
    if (n < max)
        out[n++] = ANTHROPIC; /* the default of routes without one */
    for (size_t i = 0; i < NROUTES; ++i) {
        const k2a_dialect_t *d = routes[i].dialect;
        bool seen = d == NULL;
        for (size_t j = 0; !seen && j < n; ++j)
            seen = out[j] == d;
        if (!seen && n < max)
            out[n++] = d;
    }
    return n;
}

/* A printable, bounded X-Request-ID is echoed; anything else is replaced by our own. */
static const char *request_id_for(h2o_req_t *req)
{
    h2o_iovec_t in = k2a_http_header(req, "x-request-id");
    if (in.base != NULL && in.len > 0 && in.len <= 64) {
        size_t i;
        for (i = 0; i < in.len; ++i) {
            char c = in.base[i];
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_' || c == '.'))
                break;
        }
        if (i == in.len)
            return h2o_strdup(&req->pool, in.base, in.len).base;
    }
    char *id = h2o_mem_alloc_pool(&req->pool, 4 + 37);
    memcpy(id, "req_", 4);
    k2a_rand_uuid4(id + 4);
    return id;
}

/* The key from `Authorization: Bearer <key>` (or the whole header without the prefix, as kiro2api does) or `x-api-key`.
 * With a key store (keys/keys.h), client keys are looked up there (KIRO_CLIENT_TOKEN is its built-in key): the matched key
 * goes to s->routed_key, and a disabled or expired one is refused with its reason in *why. */
static bool authorized(k2a_server_t *s, h2o_req_t *req, k2a_route_t route, const char **why)
{
    s->routed_key = NULL;
    s->has_routed_digest = false;
    if (!s->has_client_key && !s->has_admin_key && !k2a_keys_required(s->keys))
        return true; /* loopback-only mode without a key: refused at start unless bound to loopback */
    bool admin_ok = s->has_admin_key && (route == K2A_ROUTE_API_TOKENS || route == K2A_ROUTE_METRICS);
    h2o_iovec_t candidates[2];
    size_t n = k2a_http_key_candidates(req, candidates);
    bool ok = false;
    for (size_t i = 0; i < n; ++i) {
        /* one digest per candidate serves the key check, the admin check and the sticky id; evaluate every comparison:
         * the time taken must not depend on which one matched */
        unsigned char d[32];
        k2a_keys_sha256(candidates[i].base, candidates[i].len, d);
        bool match = false;
        if (s->keys != NULL) {
            k2a_key_t *k = k2a_keys_find(s->keys, d);
            k2a_keys_verdict_t v = k != NULL ? k2a_keys_check(k, (int64_t)time(NULL)) : K2A_KEYS_DELETED;
            if (k != NULL && v == K2A_KEYS_OK) {
                match = true;
                s->routed_key = k;
            } else if (k != NULL) {
                *why = k2a_keys_verdict_message(v);
            }
        } else if (s->has_client_key) {
            match = CRYPTO_memcmp(d, s->client_key_sha256, 32) == 0;
        }
        if (admin_ok)
            match |= CRYPTO_memcmp(d, s->admin_key_sha256, 32) == 0;
        if (match && !ok) {
            memcpy(s->routed_digest, d, sizeof(d));
            s->has_routed_digest = true;
        }
        ok |= match;
    }
    return ok;
}

static bool method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static int preflight(h2o_req_t *req)
{
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-methods"), 0, NULL,
                          H2O_STRLIT("GET, POST, PATCH, DELETE, OPTIONS"));
    h2o_iovec_t asked = k2a_http_header(req, "access-control-request-headers");
    if (asked.base != NULL && asked.len <= 1024)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL, asked.base,
                              asked.len);
    else
        h2o_add_header_by_str(
            &req->pool, &req->res.headers, H2O_STRLIT("access-control-allow-headers"), 0, NULL,
            H2O_STRLIT("Content-Type, Authorization, x-api-key, anthropic-version, anthropic-beta, x-request-id"));
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("access-control-max-age"), 0, NULL, H2O_STRLIT("86400"));
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, NULL, 0);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    k2a_server_t *s = k2a_server_of(req);
    s->routed_key = NULL;
    ++s->metrics.inflight;
    ++s->inflight;

    k2a_route_ctx_t rc;
    rc.request_id = request_id_for(req);
    rc.route = k2a_route_classify(req->path_normalized, &rc.subpath);
    const route_def_t *def = route_def(rc.route);
    const k2a_dialect_t *dialect = rc.dialect = dialect_for(def, req->path_normalized);
    k2a_http_add_common_headers(req, rc.request_id);

    if (k2a_limits_framing_conflict(req)) {
        req->http1_is_persistent = 0; /* what follows the head cannot be framed: never read as a next request */
        k2a_http_send_error(
            req, dialect, K2A_EFRAMING,
            "conflicting message framing: Content-Length with Transfer-Encoding, or differing Content-Length values");
        return 0;
    }
    if (method_is(req, "OPTIONS"))
        return preflight(req);

    if (def == NULL) {
        bool api = req->path_normalized.len >= 3 && memcmp(req->path_normalized.base, "/v1", 3) == 0;
        const char *why = NULL;
        if (api && !authorized(s, req, rc.route, &why)) {
            k2a_http_send_error(req, dialect, K2A_ECLIENT_AUTH, "invalid API key");
            return 0;
        }
        char msg[300];
        snprintf(msg, sizeof(msg), "no route for %.*s %.*s", (int)req->method.len, req->method.base,
                 (int)(req->path_normalized.len > 200 ? 200 : req->path_normalized.len), req->path_normalized.base);
        k2a_http_send_error(req, dialect, K2A_ENOTFOUND, msg);
        return 0;
    }
    const char *why = NULL;
    if (def->auth && !authorized(s, req, rc.route, &why)) {
        k2a_http_send_error(req, dialect, K2A_ECLIENT_AUTH,
                            why != NULL ? why
                                        : "invalid API key: send the gateway's client key as x-api-key or Authorization: Bearer");
        return 0;
    }
    bool get = strcmp(def->methods, "GET") == 0;
    if (strcmp(def->methods, "*") == 0) {
        get = method_is(req, "GET") || method_is(req, "HEAD");
    } else if (get ? !(method_is(req, "GET") || method_is(req, "HEAD")) : !method_is(req, def->methods)) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, def->methods, strlen(def->methods));
        k2a_http_send_error(req, dialect, K2A_EMETHOD, get ? "method not allowed: use GET" : "method not allowed: use POST");
        return 0;
    }
    if (!k2a_limits_headers_ok(req)) {
        k2a_http_send_error(req, dialect, K2A_EREQ_HEADERS_TOOBIG, "request headers exceed their bound (count or bytes)");
        return 0;
    }
    if (req->entity.len > (size_t)s->config->max_body_bytes) {
        char msg[200];
        snprintf(msg, sizeof(msg), "request body of %zu bytes exceeds the limit of %lld bytes (KIRO_MAX_BODY_BYTES)",
                 req->entity.len, (long long)s->config->max_body_bytes);
        k2a_http_send_error(req, dialect, K2A_ETOOBIG, msg);
        return 0;
    }
    if (s->shutting_down && !get) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, H2O_STRLIT("1"));
        k2a_http_send_error(req, dialect, K2A_ESHUTTING_DOWN, "the gateway is shutting down");
        return 0;
    }
    return def->handler(req, &rc);
}

/* Called by h2o once per request when it is disposed: the one place where responses are counted. */
static void on_log_access(h2o_logger_t *self, h2o_req_t *req)
{
    k2a_server_t *s = k2a_server_of(req);
    k2a_route_t route = k2a_route_classify(req->path_normalized, NULL);
    double secs = 0;
    if (req->timestamps.request_begin_at.tv_sec != 0) {
        struct timeval now;
        gettimeofday(&now, NULL);
        secs =
            (now.tv_sec - req->timestamps.request_begin_at.tv_sec) + (now.tv_usec - req->timestamps.request_begin_at.tv_usec) / 1e6;
        if (secs < 0)
            secs = 0;
    }
    k2a_metrics_observe(&s->metrics, route, req->res.status, req->entity.len, req->bytes_sent, secs);
    if (s->metrics.inflight > 0)
        --s->metrics.inflight;
    if (s->inflight > 0)
        --s->inflight;
    if (k2a_log_enabled(K2A_LOG_DEBUG)) {
        h2o_iovec_t rid = h2o_iovec_init(NULL, 0);
        ssize_t i = h2o_find_header_by_str(&req->res.headers, H2O_STRLIT("x-request-id"), -1);
        if (i != -1)
            rid = req->res.headers.entries[i].value;
        k2a_log_fields(K2A_LOG_DEBUG, NULL, NULL, 0, "%.*s %.*s %.*s -> %d (%zu bytes, %.3f ms)", (int)rid.len, rid.base,
                       (int)req->method.len, req->method.base, (int)req->path_normalized.len, req->path_normalized.base,
                       req->res.status, req->bytes_sent, secs * 1000);
    }
}

void k2a_router_register(k2a_server_t *s, h2o_hostconf_t *hostconf)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/", 0);
    h2o_handler_t *handler = h2o_create_handler(pathconf, sizeof(*handler));
    handler->on_req = on_req;
    h2o_logger_t *logger = h2o_create_logger(pathconf, sizeof(*logger));
    logger->log_access = on_log_access;
}
