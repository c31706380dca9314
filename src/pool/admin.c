/*
 * Run-time management of the account pool (pool/admin.h): the accounts added through the admin API and the
 * enable/disable decisions, kept in the state directory's admin file, merged with the configuration into the list the
 * pool runs (k2a_pool_reload_list), and the per-account operations. Runs on the pool's loop only; the module's state is
 * one static record bound to the process's pool (there is one pool per gateway process). Rendering is in admin_render.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include "core/errors.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/xloop.h"
#include "pool/admin.h"
#include "pool/admin_internal.h"

#define ADMIN_FILE_MAX (8 * 1024 * 1024)

k2a_pool_admin_t k2a_pool_admin_state;
#define G k2a_pool_admin_state

/* ---- the admin file ---- */

static void api_clear(void)
{
    for (size_t i = 0; i < G.napi; ++i)
        free(G.api[i].json);
    free(G.api);
    G.api = NULL;
    G.napi = 0;
    free(G.ov);
    G.ov = NULL;
    G.nov = 0;
}

void k2a_pool_admin_dispose(k2a_pool_t *p)
{
    if (G.pool != p)
        return;
    api_clear();
    k2a_account_list_dispose(&G.config);
    memset(&G, 0, sizeof(G));
}

bool k2a_pool_admin_is_api(const char *key)
{
    for (size_t i = 0; i < G.napi; ++i)
        if (strcmp(G.api[i].key, key) == 0)
            return true;
    return false;
}

bool k2a_pool_admin_in_config(const char *key)
{
    char k[65];
    for (size_t i = 0; i < G.config.n; ++i) {
        k2a_account_config_key(&G.config.entries[i], k);
        if (strcmp(k, key) == 0)
            return true;
    }
    return false;
}

/* -1 = no decision, else 0/1 (disabled) */
static int override_of(const char *key)
{
    for (size_t i = 0; i < G.nov; ++i)
        if (strcmp(G.ov[i].key, key) == 0)
            return G.ov[i].disabled;
    return -1;
}

static int set_override(const char *key, bool disabled)
{
    for (size_t i = 0; i < G.nov; ++i) {
        if (strcmp(G.ov[i].key, key) == 0) {
            G.ov[i].disabled = disabled;
            return 0;
        }
    }
    k2a_pool_admin_override_t *n = realloc(G.ov, (G.nov + 1) * sizeof(*n));
    if (n == NULL)
        return K2A_ENOMEM;
    G.ov = n;
    memcpy(G.ov[G.nov].key, key, 65);
    G.ov[G.nov++].disabled = disabled;
    return 0;
}

static void drop_override(const char *key)
{
    for (size_t i = 0; i < G.nov; ++i) {
        if (strcmp(G.ov[i].key, key) == 0) {
            G.ov[i] = G.ov[--G.nov];
            return;
        }
    }
}

/* The admin file: {"version":1,"accounts":[<account objects>],"disabled":{"<key>":true|false}}. */
static int encode_file(k2a_buf_t *out)
{
    int r = k2a_buf_appendstr(out, "{\"version\":1,\"accounts\":[");
    for (size_t i = 0; r == 0 && i < G.napi; ++i)
        r = k2a_buf_appendf(out, "%s%s", i ? "," : "", G.api[i].json);
    if (r == 0)
        r = k2a_buf_appendstr(out, "],\"disabled\":{");
    for (size_t i = 0; r == 0 && i < G.nov; ++i)
        r = k2a_buf_appendf(out, "%s\"%s\":%s", i ? "," : "", G.ov[i].key, G.ov[i].disabled ? "true" : "false");
    if (r == 0)
        r = k2a_buf_appendstr(out, "}}\n");
    return r;
}

/* Writes the admin file now (blocking: a small file, written on admin changes only). 0 when written or not persistent. */
static int save_file(void)
{
    if (G.path[0] == '\0')
        return 0;
    k2a_buf_t b = K2A_BUF_INIT(0);
    int r = encode_file(&b);
    if (r == 0)
        r = k2a_pool_write_file_atomic(G.path, b.base, b.len);
    k2a_buf_dispose(&b);
    return r;
}

/* Encodes a JSON value compactly (depth bounded by the caller's depth check). `skip` names an object key left out at the
 * top level. */
static int encode_value(k2a_buf_t *out, yajl_val v, const char *skip, int depth)
{
    int r = 0;
    if (depth > 32)
        return K2A_ETOOBIG;
    if (YAJL_IS_STRING(v)) {
        if ((r = k2a_buf_appendstr(out, "\"")) == 0 &&
            (r = k2a_buf_append_json_escaped(out, v->u.string, strlen(v->u.string))) == 0)
            r = k2a_buf_appendstr(out, "\"");
    } else if (YAJL_IS_NUMBER(v)) {
        r = k2a_buf_appendstr(out, v->u.number.r);
    } else if (YAJL_IS_TRUE(v)) {
        r = k2a_buf_appendstr(out, "true");
    } else if (YAJL_IS_FALSE(v)) {
        r = k2a_buf_appendstr(out, "false");
    } else if (YAJL_IS_ARRAY(v)) {
        r = k2a_buf_appendstr(out, "[");
        for (size_t i = 0; r == 0 && i < v->u.array.len; ++i)
            if ((r = i ? k2a_buf_appendstr(out, ",") : 0) == 0)
                r = encode_value(out, v->u.array.values[i], NULL, depth + 1);
        if (r == 0)
            r = k2a_buf_appendstr(out, "]");
    } else if (YAJL_IS_OBJECT(v)) {
        bool first = true;
        r = k2a_buf_appendstr(out, "{");
        for (size_t i = 0; r == 0 && i < v->u.object.len; ++i) {
            const char *k = v->u.object.keys[i];
            if (skip != NULL && strcmp(k, skip) == 0)
                continue;
            if ((r = first ? 0 : k2a_buf_appendstr(out, ",")) == 0 && (r = k2a_buf_appendstr(out, "\"")) == 0 &&
                (r = k2a_buf_append_json_escaped(out, k, strlen(k))) == 0 && (r = k2a_buf_appendstr(out, "\":")) == 0)
                r = encode_value(out, v->u.object.values[i], NULL, depth + 1);
            first = false;
        }
        if (r == 0)
            r = k2a_buf_appendstr(out, "}");
    } else {
        r = k2a_buf_appendstr(out, "null");
    }
    return r;
}

static yajl_val field(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* Validates one account object's text as KIRO_AUTH_TOKEN would read it; fills its key. Returns 0 or K2A_ECONFIG with a
 * message (never a secret) in err. */
static int validate_account(const char *json, char key[65], char *err, size_t errlen)
{
    k2a_account_list_t one;
    char e[400];
    int r = k2a_pool_parse_accounts_json(json, &one, e, sizeof(e));
    if (r != 0) {
        const char *m = e;
        const char *pfx[] = {"KIRO_AUTH_TOKEN: entry 0: ", "KIRO_AUTH_TOKEN: "};
        for (size_t i = 0; i < 2; ++i)
            if (strncmp(m, pfx[i], strlen(pfx[i])) == 0) {
                m += strlen(pfx[i]);
                break;
            }
        snprintf(err, errlen, "invalid account: %s", m);
        return K2A_ECONFIG;
    }
    if (one.n != 1) {
        k2a_account_list_dispose(&one);
        snprintf(err, errlen, "invalid account: expected one account object");
        return K2A_ECONFIG;
    }
    k2a_account_config_key(&one.entries[0], key);
    k2a_account_list_dispose(&one);
    return 0;
}

static int add_api(const char *json, const char key[65])
{
    k2a_pool_admin_api_t *n = realloc(G.api, (G.napi + 1) * sizeof(*n));
    if (n == NULL)
        return K2A_ENOMEM;
    G.api = n;
    if ((G.api[G.napi].json = strdup(json)) == NULL)
        return K2A_ENOMEM;
    memcpy(G.api[G.napi].key, key, 65);
    ++G.napi;
    return 0;
}

static int load_file(char *err, size_t errlen)
{
    FILE *f = fopen(G.path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot read: %s", G.path, strerror(errno));
        return K2A_ECONFIG;
    }
    char *text = malloc(ADMIN_FILE_MAX + 1);
    size_t n = text != NULL ? fread(text, 1, ADMIN_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (text == NULL)
        return K2A_ENOMEM;
    int r = K2A_ECONFIG;
    yajl_val root = NULL;
    if (n > ADMIN_FILE_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", G.path, ADMIN_FILE_MAX);
        goto Exit;
    }
    text[n] = '\0';
    if (k2a_json_text_depth(text, n, 16, NULL) > 16 || (root = yajl_tree_parse(text, NULL, 0)) == NULL || !YAJL_IS_OBJECT(root)) {
        snprintf(err, errlen, "%s: not a JSON object (move it aside to start without the accounts it adds)", G.path);
        goto Exit;
    }
    yajl_val ver = field(root, "version"), accts = field(root, "accounts"), dis = field(root, "disabled");
    if (ver == NULL || !YAJL_IS_INTEGER(ver) || YAJL_GET_INTEGER(ver) != 1) {
        snprintf(err, errlen, "%s: unknown version", G.path);
        goto Exit;
    }
    for (size_t i = 0; accts != NULL && YAJL_IS_ARRAY(accts) && i < accts->u.array.len; ++i) {
        k2a_buf_t b = K2A_BUF_INIT(0);
        char key[65], e[400];
        int er = encode_value(&b, accts->u.array.values[i], "disabled", 0);
        if (er == 0)
            er = k2a_buf_append(&b, "", 1);
        if (er != 0) {
            k2a_buf_dispose(&b);
            snprintf(err, errlen, "%s: account %zu: %s", G.path, i, k2a_strerror(er));
            r = er;
            goto Exit;
        }
        if (validate_account(b.base, key, e, sizeof(e)) != 0) {
            snprintf(err, errlen, "%s: account %zu: %s", G.path, i, e);
            k2a_buf_dispose(&b);
            goto Exit;
        }
        er = k2a_pool_admin_is_api(key) ? 0 : add_api(b.base, key); /* a duplicate is kept once */
        k2a_buf_dispose(&b);
        if (er != 0) {
            r = er;
            goto Exit;
        }
    }
    for (size_t i = 0; dis != NULL && YAJL_IS_OBJECT(dis) && i < dis->u.object.len; ++i) {
        const char *k = dis->u.object.keys[i];
        yajl_val v = dis->u.object.values[i];
        if (strlen(k) == 64 && strspn(k, "0123456789abcdef") == 64 && (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))
            set_override(k, YAJL_IS_TRUE(v));
    }
    r = 0;
Exit:
    if (root != NULL)
        yajl_tree_free(root);
    free(text);
    if (r != 0)
        api_clear();
    return r;
}

/* ---- the merged list ---- */

/* Configuration first (its entries win), then the API's accounts; the enable/disable decisions applied. */
static int build_list(k2a_account_list_t *out)
{
    size_t cap = G.config.n + G.napi;
    memset(out, 0, sizeof(*out));
    if ((out->entries = calloc(cap > 0 ? cap : 1, sizeof(*out->entries))) == NULL)
        return K2A_ENOMEM;
    char key[65];
    for (size_t i = 0; i < G.config.n; ++i) {
        if (k2a_account_config_copy(&out->entries[out->n++], &G.config.entries[i]) != 0)
            goto Oom;
    }
    for (size_t i = 0; i < G.napi && out->n < K2A_POOL_MAX_ACCOUNTS; ++i) {
        if (k2a_pool_admin_in_config(G.api[i].key))
            continue; /* listed in the configuration too: the configuration's */
        k2a_account_list_t one;
        char e[400];
        if (k2a_pool_parse_accounts_json(G.api[i].json, &one, e, sizeof(e)) != 0)
            continue; /* validated when it was added */
        out->entries[out->n] = one.entries[0];
        memset(&one.entries[0], 0, sizeof(one.entries[0]));
        one.n = 0;
        ++out->n;
        k2a_account_list_dispose(&one);
    }
    for (size_t i = 0; i < out->n; ++i) {
        k2a_account_config_key(&out->entries[i], key);
        int o = override_of(key);
        if (o >= 0)
            out->entries[i].disabled = o;
    }
    return 0;
Oom:
    k2a_account_list_dispose(out);
    return K2A_ENOMEM;
}

int k2a_pool_admin_apply(k2a_pool_t *p)
{
    k2a_account_list_t list;
    int r = build_list(&list);
    if (r != 0)
        return r;
    r = k2a_pool_reload_list(p, &list);
    k2a_account_list_dispose(&list);
    /* say who disabled what: the reload names the configuration */
    for (size_t i = 0; i < p->naccounts; ++i) {
        k2a_account_t *a = p->accounts[i];
        if (a->state == K2A_ACCOUNT_DISABLED && override_of(a->key) == 1)
            snprintf(a->reason, sizeof(a->reason), "disabled through the admin API");
    }
    return r;
}

static int read_config(k2a_pool_t *p, char *err, size_t errlen)
{
    k2a_account_list_t list;
    int r = k2a_pool_parse_accounts(p->cfg.auth_token, &list, err, errlen);
    if (r != 0)
        return r;
    k2a_account_list_dispose(&G.config);
    G.config = list;
    return 0;
}

int k2a_pool_admin_init(k2a_pool_t *p, char *err, size_t errlen)
{
    if (G.pool != NULL)
        k2a_pool_admin_dispose(G.pool);
    memset(&G, 0, sizeof(G));
    G.pool = p;
    int r = read_config(p, err, errlen);
    if (r != 0)
        return r;
    const char *sf = p->cfg.state_file;
    if (sf != NULL && sf[0] != '\0') {
        const char *slash = strrchr(sf, '/');
        int n = slash == NULL ? snprintf(G.path, sizeof(G.path), "%s", K2A_POOL_ADMIN_FILE)
                              : snprintf(G.path, sizeof(G.path), "%.*s/%s", (int)(slash - sf), sf, K2A_POOL_ADMIN_FILE);
        if (n < 0 || (size_t)n >= sizeof(G.path)) {
            snprintf(err, errlen, "KIRO_STATE_FILE: path too long for the admin file beside it");
            return K2A_ECONFIG;
        }
        if ((r = load_file(err, errlen)) != 0)
            return r;
    }
    if (G.napi == 0 && G.nov == 0)
        return 0; /* the pool already runs the configuration */
    if ((r = k2a_pool_admin_apply(p)) != 0) {
        snprintf(err, errlen, "admin accounts: %s", k2a_strerror(r));
        return r;
    }
    k2a_info("pool: %zu account(s) added through the admin API, %zu enable/disable decision(s), from %s", G.napi, G.nov, G.path);
    return 0;
}

int k2a_pool_admin_reload(k2a_pool_t *p, char *err, size_t errlen)
{
    if (G.pool != p)
        return k2a_pool_reload(p, p->cfg.auth_token, err, errlen);
    if (p->shutting_down) {
        snprintf(err, errlen, "pool: shutting down");
        return K2A_EINVAL;
    }
    int r = read_config(p, err, errlen);
    if (r != 0)
        return r;
    if ((r = k2a_pool_admin_apply(p)) != 0)
        snprintf(err, errlen, "%s", k2a_strerror(r));
    return r;
}

/* ---- operations ---- */

static void fail(k2a_pool_admin_req_t *r, int status, const char *type, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void fail(k2a_pool_admin_req_t *r, int status, const char *type, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof(r->message), fmt, ap);
    va_end(ap);
    r->status = status;
    r->err_type = type;
}

k2a_account_t *k2a_pool_admin_find(k2a_pool_t *p, const char *id)
{
    size_t n = strlen(id);
    if (n != K2A_POOL_ADMIN_ID_LEN && n != 64)
        return NULL;
    for (size_t i = 0; i < p->naccounts; ++i)
        if (strncmp(p->accounts[i]->key, id, n) == 0)
            return p->accounts[i];
    return NULL;
}

static void set_target(k2a_pool_admin_req_t *r, const k2a_account_t *a)
{
    if (a->cfg.description[0] != '\0')
        snprintf(r->target, sizeof(r->target), "account %.*s (%.120s)", K2A_POOL_ADMIN_ID_LEN, a->key, a->cfg.description);
    else
        snprintf(r->target, sizeof(r->target), "account %.*s", K2A_POOL_ADMIN_ID_LEN, a->key);
    for (char *c = r->target; *c != '\0'; ++c) /* one log line, whatever the label holds */
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
}

static void on_durable_cancel(k2a_coro_t *co, void *data)
{
    k2a_pool_waiter_t *w = data;
    if (!w->woken) {
        k2a_plink_unlink(&w->link);
        w->woken = true;
        k2a_coro_wake(co, K2A_ECANCELED);
    }
}

/* Waits until the state as it is now is written (nothing to do without a store). Returns 0 or a K2A_E*. */
static int await_state_durable(k2a_pool_t *p)
{
    while ((p->dirty || p->saving) && p->store != NULL) {
        if (!p->saving)
            k2a_pool_start_save(p);
        if (!p->saving)
            return K2A_EIO;
        k2a_pool_waiter_t w = {.co = k2a_coro_current()};
        if (w.co == NULL)
            return 0;
        k2a_plink_insert_before(&p->durable_waiters, &w.link);
        int r = (int)k2a_coro_park(on_durable_cancel, &w);
        if (!w.woken)
            k2a_plink_unlink(&w.link);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Puts an account back in service after disable/invalid/cooling (what a reload does for a re-enabled entry). */
static void restart_account(k2a_account_t *a)
{
    k2a_pool_t *p = a->pool;
    a->auth_fail_gen = 0;
    a->throttle_n = a->transient_n = a->refresh_fail_n = 0;
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    if (k2a_account_token_valid(a, k2a_pool_now_ms()))
        k2a_pool_schedule_refresh_ahead(a);
    else
        k2a_account_schedule_refresh(a, 0);
    if (p->cfg.usage_poll_interval_s > 0)
        k2a_account_schedule_usage(a, 1000 + k2a_rand_below(2000));
}

static void op_enable(k2a_pool_t *p, k2a_pool_admin_req_t *r, k2a_account_t *a, bool enable)
{
    set_target(r, a);
    /* the decision is recorded unless it is what the account's own source says */
    bool own_disabled = a->cfg.disabled;
    int prev = override_of(a->key);
    if (k2a_pool_admin_in_config(a->key)) {
        for (size_t i = 0; i < G.config.n; ++i) {
            char k[65];
            k2a_account_config_key(&G.config.entries[i], k);
            if (strcmp(k, a->key) == 0)
                own_disabled = G.config.entries[i].disabled;
        }
    } else {
        own_disabled = false; /* API accounts are stored without "disabled" */
    }
    if (own_disabled == !enable)
        drop_override(a->key);
    else if (set_override(a->key, !enable) != 0)
        return fail(r, 500, "api_error", "out of memory");
    if (save_file() != 0) {
        if (prev < 0)
            drop_override(a->key);
        else
            set_override(a->key, prev);
        return fail(r, 500, "api_error", "cannot write %s: the account is unchanged", K2A_POOL_ADMIN_FILE);
    }
    a->cfg.disabled = !enable;
    if (!enable && a->state != K2A_ACCOUNT_DISABLED) {
        k2a_account_set_state(a, K2A_ACCOUNT_DISABLED, 0, "disabled through the admin API");
        r->changed = true;
    } else if (enable && a->state == K2A_ACCOUNT_DISABLED) {
        restart_account(a);
        r->changed = true;
    }
    int d = await_state_durable(p);
    if (d != 0 && d != K2A_ECANCELED)
        return fail(r, 500, "api_error", "the state file could not be written: %s", k2a_strerror(d));
    r->status = 200;
    k2a_pool_admin_render_account(a, r->out, false);
}

static void op_clear(k2a_pool_t *p, k2a_pool_admin_req_t *r, k2a_account_t *a)
{
    set_target(r, a);
    if (a->state == K2A_ACCOUNT_DISABLED)
        return fail(r, 409, "conflict_error", "account %.*s is disabled: enable it instead", K2A_POOL_ADMIN_ID_LEN, a->key);
    if (a->state != K2A_ACCOUNT_OK) {
        restart_account(a);
        r->changed = true;
    }
    int d = await_state_durable(p);
    if (d != 0 && d != K2A_ECANCELED)
        return fail(r, 500, "api_error", "the state file could not be written: %s", k2a_strerror(d));
    r->status = 200;
    k2a_pool_admin_render_account(a, r->out, false);
}

static void op_refresh(k2a_pool_admin_req_t *r, k2a_account_t *a)
{
    set_target(r, a);
    if (a->cfg.auth == K2A_AUTH_API_KEY)
        return fail(r, 409, "conflict_error", "account %.*s uses an API key, which is never refreshed", K2A_POOL_ADMIN_ID_LEN,
                    a->key);
    if (a->state == K2A_ACCOUNT_DISABLED)
        return fail(r, 409, "conflict_error", "account %.*s is disabled", K2A_POOL_ADMIN_ID_LEN, a->key);
    k2a_verdict_t v;
    memset(&v, 0, sizeof(v));
    k2a_account_ref(a);
    int e = k2a_account_refresh_now(a, &v);
    r->changed = true;
    if (e == K2A_EBUSY) {
        fail(r, 409, "conflict_error", "a refresh of account %.*s is already running", K2A_POOL_ADMIN_ID_LEN, a->key);
    } else if (e != 0) {
        fail(r, 502, "upstream_error", "the refresh failed: %s%s%s", v.detail[0] ? v.detail : k2a_strerror(e),
             a->state != K2A_ACCOUNT_OK ? "; account state: " : "",
             a->state != K2A_ACCOUNT_OK ? k2a_account_state_name(a->state) : "");
    } else {
        r->status = 200;
        k2a_pool_admin_render_account(a, r->out, false);
    }
    k2a_account_unref(a);
}

static void op_delete(k2a_pool_t *p, k2a_pool_admin_req_t *r, k2a_account_t *a)
{
    set_target(r, a);
    if (k2a_pool_admin_in_config(a->key))
        return fail(r, 409, "conflict_error",
                    "account %.*s is listed in the configuration (KIRO_AUTH_TOKEN): remove it there and reload, or disable it here",
                    K2A_POOL_ADMIN_ID_LEN, a->key);
    size_t i;
    for (i = 0; i < G.napi && strcmp(G.api[i].key, a->key) != 0; ++i)
        ;
    if (i == G.napi)
        return fail(r, 404, "not_found_error", "no account %s", r->id);
    k2a_pool_admin_api_t gone = G.api[i];
    memmove(&G.api[i], &G.api[i + 1], (G.napi - i - 1) * sizeof(G.api[0]));
    --G.napi;
    int prev = override_of(gone.key);
    drop_override(gone.key);
    if (save_file() != 0) {
        memmove(&G.api[i + 1], &G.api[i], (G.napi - i) * sizeof(G.api[0]));
        G.api[i] = gone;
        ++G.napi;
        if (prev >= 0)
            set_override(gone.key, prev);
        return fail(r, 500, "api_error", "cannot write %s: the account is unchanged", K2A_POOL_ADMIN_FILE);
    }
    free(gone.json);
    unsigned inflight = a->inflight;
    char id[K2A_POOL_ADMIN_ID_LEN + 1];
    snprintf(id, sizeof(id), "%s", a->key); /* a may be freed by the reload below */
    int e = k2a_pool_admin_apply(p);
    r->changed = true;
    if (e != 0)
        return fail(r, 500, "api_error", "removed from %s but not from the running pool: %s", K2A_POOL_ADMIN_FILE, k2a_strerror(e));
    await_state_durable(p);
    r->status = 200;
    k2a_buf_appendf(r->out, "{\"deleted\":\"%s\",\"in_flight\":%u}", id, inflight);
}

static void op_reload(k2a_pool_t *p, k2a_pool_admin_req_t *r)
{
    char err[512];
    snprintf(r->target, sizeof(r->target), "accounts (configuration and %s)", K2A_POOL_ADMIN_FILE);
    if (k2a_pool_admin_reload(p, err, sizeof(err)) != 0)
        return fail(r, 400, "invalid_request_error", "accounts not reloaded: %s", err);
    r->changed = true;
    await_state_durable(p);
    r->status = 200;
    k2a_buf_appendf(r->out, "{\"reloaded\":true,\"accounts\":%zu,\"configured\":%zu,\"added\":%zu}", p->naccounts, G.config.n,
                    G.napi);
}

static void op_add(k2a_pool_t *p, k2a_pool_admin_req_t *r)
{
    k2a_buf_t json = K2A_BUF_INIT(0);
    char key[65], err[400];
    bool disabled = false;
    if (G.napi + G.config.n >= K2A_POOL_MAX_ACCOUNTS) {
        fail(r, 409, "conflict_error", "the pool holds its maximum of %d accounts", K2A_POOL_MAX_ACCOUNTS);
        goto Exit;
    }
    if (k2a_pool_admin_account_json(r->body, &json, &disabled, err, sizeof(err)) != 0) {
        fail(r, 400, "invalid_request_error", "%s", err);
        goto Exit;
    }
    if (validate_account(json.base, key, err, sizeof(err)) != 0) {
        fail(r, 400, "invalid_request_error", "%s", err);
        goto Exit;
    }
    snprintf(r->target, sizeof(r->target), "account %.*s", K2A_POOL_ADMIN_ID_LEN, key);
    if (k2a_pool_admin_in_config(key)) {
        fail(r, 409, "conflict_error", "account %.*s is listed in the configuration (KIRO_AUTH_TOKEN), which manages it",
             K2A_POOL_ADMIN_ID_LEN, key);
        goto Exit;
    }
    if (k2a_pool_admin_is_api(key)) {
        fail(r, 409, "conflict_error", "account %.*s was already added", K2A_POOL_ADMIN_ID_LEN, key);
        goto Exit;
    }
    if (add_api(json.base, key) != 0 || (disabled && set_override(key, true) != 0)) {
        fail(r, 500, "api_error", "out of memory");
        goto Exit;
    }
    if (save_file() != 0) {
        free(G.api[--G.napi].json);
        drop_override(key);
        fail(r, 500, "api_error", "cannot write %s: the account is not added", K2A_POOL_ADMIN_FILE);
        goto Exit;
    }
    int e = k2a_pool_admin_apply(p);
    r->changed = true;
    if (e != 0) {
        fail(r, 500, "api_error", "added to %s but not to the running pool: %s", K2A_POOL_ADMIN_FILE, k2a_strerror(e));
        goto Exit;
    }
    k2a_account_t *a = k2a_pool_admin_find(p, key);
    if (a == NULL) {
        fail(r, 500, "api_error", "added to %s but not to the running pool", K2A_POOL_ADMIN_FILE);
        goto Exit;
    }
    set_target(r, a);
    await_state_durable(p);
    r->status = 201;
    k2a_pool_admin_render_account(a, r->out, false);
Exit:
    k2a_buf_dispose(&json);
}

static intptr_t run_op(void *arg)
{
    k2a_pool_admin_req_t *r = arg;
    k2a_pool_t *p = G.pool;
    if (p == NULL || p->shutting_down) {
        fail(r, 503, "unavailable", "the account pool is %s", p == NULL ? "not set up" : "shutting down");
        return 0;
    }
    k2a_account_t *a = NULL;
    switch (r->op) {
    case K2A_POOL_ADMIN_LIST:
        r->status = 200;
        k2a_pool_admin_render_list(p, r->out);
        return 0;
    case K2A_POOL_ADMIN_ADD:
        op_add(p, r);
        return 0;
    case K2A_POOL_ADMIN_RELOAD:
        op_reload(p, r);
        return 0;
    default:
        break;
    }
    if (r->id == NULL || (a = k2a_pool_admin_find(p, r->id)) == NULL) {
        fail(r, 404, "not_found_error", "no account %.80s (ids are the %d-digit ids of GET /api/admin/accounts)",
             r->id != NULL ? r->id : "", K2A_POOL_ADMIN_ID_LEN);
        return 0;
    }
    switch (r->op) {
    case K2A_POOL_ADMIN_GET:
        r->status = 200;
        k2a_pool_admin_render_account(a, r->out, true);
        break;
    case K2A_POOL_ADMIN_ENABLE:
    case K2A_POOL_ADMIN_DISABLE:
        op_enable(p, r, a, r->op == K2A_POOL_ADMIN_ENABLE);
        break;
    case K2A_POOL_ADMIN_REFRESH:
        op_refresh(r, a);
        break;
    case K2A_POOL_ADMIN_CLEAR:
        op_clear(p, r, a);
        break;
    case K2A_POOL_ADMIN_DELETE:
        op_delete(p, r, a);
        break;
    default:
        fail(r, 400, "invalid_request_error", "unknown operation");
        break;
    }
    return 0;
}

void k2a_pool_admin_call(k2a_pool_t *p, k2a_pool_admin_req_t *r)
{
    r->status = 500;
    r->err_type = "api_error";
    r->message[0] = '\0';
    r->target[0] = '\0';
    r->changed = false;
    if (p == NULL) {
        fail(r, 503, "unavailable", "no account pool: KIRO_AUTH_TOKEN was not set at start");
        return;
    }
    if (k2a_xloop_call(p->owner, run_op, r) != 0 && r->message[0] == '\0')
        fail(r, 503, "unavailable", "the pool's loop is busy; retry");
}
