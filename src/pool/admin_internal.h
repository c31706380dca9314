/*
 * Module-private part of the pool's run-time management (admin.c, admin_render.c): the accounts added through the admin
 * API, the enable/disable decisions, the configuration as last read, and the rendering of accounts as JSON.
 */
#ifndef K2A_POOL_ADMIN_INTERNAL_H
#define K2A_POOL_ADMIN_INTERNAL_H

#include <limits.h>
#include "pool/admin.h"
#include "pool/internal.h"

typedef struct st_k2a_pool_admin_api_t {
    char key[65];
    char *json; /* the account object, compact, without "disabled" */
} k2a_pool_admin_api_t;

typedef struct st_k2a_pool_admin_override_t {
    char key[65];
    bool disabled;
} k2a_pool_admin_override_t;

typedef struct st_k2a_pool_admin_t {
    k2a_pool_t *pool;
    k2a_account_list_t config; /* KIRO_AUTH_TOKEN as last read (start, SIGHUP, reload) */
    k2a_pool_admin_api_t *api;
    size_t napi;
    k2a_pool_admin_override_t *ov;
    size_t nov;
    char path[PATH_MAX]; /* the admin file, "" when KIRO_STATE_FILE is not set */
} k2a_pool_admin_t;

extern k2a_pool_admin_t k2a_pool_admin_state;

bool k2a_pool_admin_is_api(const char *key);
bool k2a_pool_admin_in_config(const char *key);
/* The account with this id (K2A_POOL_ADMIN_ID_LEN hex digits or the whole key), or NULL. */
k2a_account_t *k2a_pool_admin_find(k2a_pool_t *p, const char *id);
/* Runs the configuration + API accounts (k2a_pool_reload_list). */
int k2a_pool_admin_apply(k2a_pool_t *p);

/* admin_render.c */
/* {"accounts":[...],"persistent":bool,"configured":n,"added":n} */
void k2a_pool_admin_render_list(k2a_pool_t *p, k2a_buf_t *out);
/* One account; detail adds the catalog, the profileArn and the last error. */
void k2a_pool_admin_render_account(const k2a_account_t *a, k2a_buf_t *out, bool detail);
/* The account object to store from an ADD body: the body itself (an account object as in KIRO_AUTH_TOKEN, "disabled" taken
 * out into *disabled), or {"kiro_token_file": <Kiro's kiro-auth-token.json, as an object or its text>, "client_registration":
 * <the <clientIdHash>.json beside it, for IdC and Builder ID>, "description": "..."}. Returns 0 with NUL-terminated JSON
 * in out, or K2A_EINVAL with a message (never a secret) in err. */
int k2a_pool_admin_account_json(yajl_val body, k2a_buf_t *out, bool *disabled, char *err, size_t errlen);

#endif
