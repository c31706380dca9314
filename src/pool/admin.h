/*
 * The account pool managed at run time (the admin API's accounts endpoints, SIGHUP): list and show accounts, add one
 * (an account object as in KIRO_AUTH_TOKEN, or the content of Kiro's own token file), enable, disable, refresh now,
 * clear a cooling/exhausted/invalid state, remove, reload.
 *
 * Sources: the configuration (KIRO_AUTH_TOKEN) owns the accounts it lists; accounts added through the API live in the
 * state directory's own file, admin-accounts.json beside KIRO_STATE_FILE, together with the enable/disable decisions
 * taken through the API (for accounts of either source). The pool runs the union: configuration first, in its order,
 * then the added accounts. Adding an account the configuration lists is refused (409), and so is removing one through
 * the API; an account added through the API and later also listed in the configuration is the configuration's.
 * Every change is written (atomically, mode 0600) before it is applied and answered; removals never cut a running
 * stream (accounts are reference-counted, pool/internal.h).
 *
 * Everything here runs on the pool's loop; k2a_pool_admin_call reaches it from a coroutine on any worker loop.
 */
#ifndef K2A_POOL_ADMIN_H
#define K2A_POOL_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "pool/pool.h"

#define K2A_POOL_ADMIN_FILE "admin-accounts.json"
/* Length of an account's id: the first hex digits of its stable key (the full 64-digit key is accepted too). */
#define K2A_POOL_ADMIN_ID_LEN 16

/* On the pool's loop, once after k2a_pool_create: loads the state directory's admin file (when KIRO_STATE_FILE is set)
 * and applies it. Returns 0, or K2A_ECONFIG with a message in err (an unreadable or invalid file: start-up stops rather
 * than overwrite it later). */
int k2a_pool_admin_init(k2a_pool_t *p, char *err, size_t errlen);
/* SIGHUP, on the pool's loop: re-reads KIRO_AUTH_TOKEN and applies it with the accounts added through the API. On a parse
 * error nothing changes and K2A_ECONFIG is returned with the message in err. */
int k2a_pool_admin_reload(k2a_pool_t *p, char *err, size_t errlen);
/* Frees what init loaded (the pool is being destroyed). */
void k2a_pool_admin_dispose(k2a_pool_t *p);

typedef enum en_k2a_pool_admin_op_t {
    K2A_POOL_ADMIN_LIST = 0,
    K2A_POOL_ADMIN_GET,
    K2A_POOL_ADMIN_ADD,
    K2A_POOL_ADMIN_ENABLE,
    K2A_POOL_ADMIN_DISABLE,
    K2A_POOL_ADMIN_REFRESH,
    K2A_POOL_ADMIN_CLEAR,
    K2A_POOL_ADMIN_DELETE,
    K2A_POOL_ADMIN_RELOAD,
} k2a_pool_admin_op_t;

typedef struct st_k2a_pool_admin_req_t {
    k2a_pool_admin_op_t op;
    const char *id; /* the account (all but LIST, ADD, RELOAD) */
    yajl_val body;  /* ADD: the request body (read-only; the caller keeps it alive) */
    /* results */
    int status;           /* the HTTP status to answer */
    const char *err_type; /* on a 4xx/5xx: invalid_request_error, not_found_error, conflict_error, api_error, ... */
    char message[512];    /* on a 4xx/5xx: what went wrong (never a secret) */
    k2a_buf_t *out;       /* on a 2xx: the JSON body */
    char target[200];     /* for the audit line: "account <id> (<description>)" */
    bool changed;         /* something changed (an audit line is due) */
} k2a_pool_admin_req_t;

/* From a coroutine on any loop: runs the operation on the pool's loop. Always fills status (and out or message). */
void k2a_pool_admin_call(k2a_pool_t *p, k2a_pool_admin_req_t *r);

#endif
