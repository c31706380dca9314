/*
 * /api/admin/accounts... and /api/admin/reload: the account pool managed at run time (admin.h). The work runs on the
 * pool's loop (pool/admin.h), which persists every change before it is applied; this file maps routes to operations,
 * answers, and writes the audit line of each change.
 *
 *   GET    accounts               list (id, label, source, kind, region, state, usage, catalog size)
 *   GET    accounts/{id}          detail (with the catalog and the last error)
 *   POST   accounts               add: an account object as in KIRO_AUTH_TOKEN, or {"kiro_token_file": ...}
 *   POST   accounts/{id}/enable | disable | refresh | clear
 *   DELETE accounts/{id}          remove an account added through the API
 *   POST   reload                 re-read KIRO_AUTH_TOKEN (as SIGHUP)
 */
#include <string.h>
#include "http/admin.h"
#include "http/gateway.h"
#include "pool/admin.h"

static void run(k2a_admin_req_t *ar, k2a_pool_admin_op_t op, const char *action)
{
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_pool_admin_req_t r = {.op = op, .id = ar->id, .body = ar->body, .out = &out};
    k2a_pool_admin_call(ar->call->server->pool, &r);
    if (r.changed && action != NULL)
        k2a_admin_audit(ar, action, "%s%s", r.target, r.status < 300 ? "" : " (failed)");
    if (r.status >= 200 && r.status < 300)
        k2a_admin_reply_json(ar, r.status, out.base != NULL ? out.base : "{}", out.base != NULL ? out.len : 2);
    else
        k2a_admin_reply_error(ar, r.status, r.err_type != NULL ? r.err_type : "api_error", "%s", r.message);
    k2a_buf_dispose(&out);
}

static void h_list(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_LIST, NULL);
}

static void h_get(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_GET, NULL);
}

static void h_add(k2a_admin_req_t *ar)
{
    if (ar->body == NULL) {
        k2a_admin_bad_request(ar, "a JSON body is required: an account object or {\"kiro_token_file\": ...}");
        return;
    }
    run(ar, K2A_POOL_ADMIN_ADD, "add");
}

static void h_enable(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_ENABLE, "enable");
}

static void h_disable(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_DISABLE, "disable");
}

static void h_refresh(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_REFRESH, "refresh");
}

static void h_clear(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_CLEAR, "clear");
}

static void h_delete(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_DELETE, "delete");
}

static void h_reload(k2a_admin_req_t *ar)
{
    run(ar, K2A_POOL_ADMIN_RELOAD, "reload");
}

const k2a_admin_route_t k2a_admin_account_routes[] = {
    {"GET", "accounts", h_list},
    {"POST", "accounts", h_add},
    {"GET", "accounts/{id}", h_get},
    {"DELETE", "accounts/{id}", h_delete},
    {"POST", "accounts/{id}/enable", h_enable},
    {"POST", "accounts/{id}/disable", h_disable},
    {"POST", "accounts/{id}/refresh", h_refresh},
    {"POST", "accounts/{id}/clear", h_clear},
    {"POST", "reload", h_reload},
    {NULL, NULL, NULL},
};
