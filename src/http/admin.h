/*
 * The admin API under /api/admin/ (h_admin.c): authenticated by KIRO_ADMIN_TOKEN only (never a client key), every
 * endpoint served by a coroutine (k2a_call) so that it may reach the pool's loop. Endpoint files declare a table of
 * sub-routes {method, pattern, handler}; a pattern is a path below /api/admin/ whose segments are literal or the one
 * "{id}" placeholder, e.g. "accounts/{id}/enable". A table is terminated by an entry with a NULL method and is
 * registered once, before the workers serve (k2a_admin_register_routes); the tables of this directory are registered by
 * h_admin.c itself.
 *
 * Answers are JSON; errors are {"error":{"type":"...","message":"..."}} with 400 (invalid_request_error), 401
 * (authentication_error), 404 (not_found_error), 405 (method_not_allowed), 409 (conflict_error), 413 (request_too_large),
 * 415 (unsupported_media_type), 500 (api_error), 503 (unavailable). Every change is logged once through
 * k2a_admin_audit ("admin: admin <action> <target>") and never with a secret.
 */
#ifndef K2A_HTTP_ADMIN_H
#define K2A_HTTP_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "http/call.h"

/* Request bodies above this are refused with 413 before they are parsed. */
#define K2A_ADMIN_MAX_BODY (256 * 1024)
/* Nesting depth of a request body (yajl's tree parser recurses). */
#define K2A_ADMIN_MAX_DEPTH 16
/* Length of the {id} segment. */
#define K2A_ADMIN_MAX_ID 128

/* One admin request as a handler sees it. Strings live in the call's arena. */
typedef struct st_k2a_admin_req_t {
    k2a_call_t *call;
    const char *method; /* "GET" (HEAD is served as GET), "POST", "PATCH", "PUT", "DELETE" */
    const char *path;   /* below /api/admin/, without the query: "accounts/abc/enable" */
    const char *id;     /* the {id} segment, NULL when the pattern has none */
    const char *query;  /* the raw query string without '?', "" when none */
    yajl_val body;      /* the parsed JSON body (any JSON value), NULL when the request had none */
} k2a_admin_req_t;

typedef void (*k2a_admin_fn)(k2a_admin_req_t *ar);

typedef struct st_k2a_admin_route_t {
    const char *method;  /* "GET", "POST", "PATCH", "PUT", "DELETE"; NULL ends a table */
    const char *pattern; /* "keys", "keys/{id}", "keys/{id}/usage" */
    k2a_admin_fn fn;
} k2a_admin_route_t;

/* Adds a table (NULL-method terminated, static storage). Call before the workers start serving (e.g. from a module's set-up
 * on the main thread). Returns 0, or K2A_ETOOBIG when too many tables are registered. Registering a table twice is a
 * no-op. */
int k2a_admin_register_routes(const k2a_admin_route_t *routes);

/* The tables of the endpoint files of this directory (listed in h_admin.c's built-in tables). */
extern const k2a_admin_route_t k2a_admin_account_routes[]; /* h_admin_accounts.c */

/* ---- answers (each ends the response; call at most once per request) ---- */
void k2a_admin_reply_json(k2a_admin_req_t *ar, int status, const char *json, size_t len);
/* {"error":{"type":type,"message":<printf>}} */
void k2a_admin_reply_error(k2a_admin_req_t *ar, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 400 with type invalid_request_error. */
#define k2a_admin_bad_request(ar, ...) k2a_admin_reply_error((ar), 400, "invalid_request_error", __VA_ARGS__)

/* ---- audit ---- */
/* One info line per change: "admin: admin <action> <target>" (target printf-formatted; never pass a secret). */
void k2a_admin_audit(k2a_admin_req_t *ar, const char *action, const char *target_fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- persistence ---- */
/* The path of `name` in the state directory (the directory of KIRO_STATE_FILE) into out; returns false (out = "") when
 * no state file is configured or the path does not fit. */
bool k2a_admin_state_path(const k2a_server_t *s, const char *name, char *out, size_t outsz);
/* In the handler's coroutine: writes data to path atomically (temp file, fsync, rename, fsync of the directory; mode 0600)
 * on libuv's thread pool, and returns once it is durable: 0 or K2A_EIO. Persist first, then answer. */
int k2a_admin_persist_file(const char *path, const char *data, size_t len);

/* ---- body helpers (NULL/false when absent or of another type) ---- */
yajl_val k2a_admin_field(yajl_val obj, const char *key);
/* A string field of at most max bytes: 0 with *out (NULL when absent and !required), or a 400 already answered (-1). */
int k2a_admin_opt_string(k2a_admin_req_t *ar, yajl_val obj, const char *key, size_t max, bool required, const char **out);
/* A query parameter (not decoded beyond '+' and %XX) into out; false when absent or longer than outsz - 1. */
bool k2a_admin_query_param(const k2a_admin_req_t *ar, const char *name, char *out, size_t outsz);

#endif
