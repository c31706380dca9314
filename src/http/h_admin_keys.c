/*
 * /api/admin/keys...: managed client keys (keys/keys.h) through the admin API (admin.h). Every change is saved
 * (keys_async.h) before it is answered and takes effect at once on every worker; the secret of a new key is in
 * the creation answer only. Bodies are validated strictly: unknown fields, wrong types and out-of-range values
 * are a 400 naming the field.
 *
 *   POST   keys            {name, expires_at?, models?, enabled?, limits?} -> 201 the key with "key": "k2a-..."
 *   GET    keys            {keys:[...]}
 *   GET    keys/{id}       one key
 *   GET    keys/{id}/usage ?days=N (1..KIRO_KEYS_USAGE_DAYS, default 30) -> {days:[{date, requests, ...}]}
 *   PATCH  keys/{id}       any of name, enabled, models, expires_at, limits (0 or null = no limit / never)
 *   DELETE keys/{id}
 */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "core/errors.h"
#include "http/admin.h"
#include "http/admin_keys.h"
#include "keys/keys_async.h"
#include "pool/store_redis_keys.h"

static k2a_keys_t *store_of(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = ar->call->server->keys;
    if (ks == NULL)
        k2a_admin_reply_error(ar, 503, "unavailable", "the key store is not available");
    return ks;
}

static bool number_of(yajl_val v, double *out)
{
    if (v == NULL || YAJL_IS_NULL(v)) {
        *out = 0;
        return true;
    }
    if (!YAJL_IS_NUMBER(v))
        return false;
    *out = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
    return *out >= 0;
}

static const char *const limit_names[5] = {"rpm", "concurrency", "credits_day", "credits_month", "tokens_day"};

/* Fills spec from a POST/PATCH body. Returns 0, or -1 after answering 400. */
static int parse_spec(k2a_admin_req_t *ar, k2a_keys_spec_t *spec)
{
    static const char *const known[] = {"name", "expires_at", "models", "enabled", "limits"};
    char err[200];
    yajl_val body = ar->body;
    memset(spec, 0, sizeof(*spec));
    if (body == NULL || !YAJL_IS_OBJECT(body)) {
        k2a_admin_bad_request(ar, "the body must be a JSON object");
        return -1;
    }
    for (size_t i = 0; i < body->u.object.len; ++i) {
        bool ok = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]) && !ok; ++j)
            ok = strcmp(body->u.object.keys[i], known[j]) == 0;
        if (!ok) {
            k2a_admin_bad_request(ar, "unknown field \"%.64s\" (known: name, expires_at, models, enabled, limits)",
                                  body->u.object.keys[i]);
            return -1;
        }
    }
    const char *name;
    if (k2a_admin_opt_string(ar, body, "name", K2A_KEYS_NAME_MAX, false, &name) != 0)
        return -1;
    if (name != NULL) {
        if (k2a_keys_valid_name(name, strlen(name), err, sizeof(err)) != 0) {
            k2a_admin_bad_request(ar, "\"name\": %s", err);
            return -1;
        }
        spec->has_name = true;
        snprintf(spec->name, sizeof(spec->name), "%s", name);
    }
    yajl_val v;
    if ((v = k2a_admin_field(body, "enabled")) != NULL) {
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v)) {
            k2a_admin_bad_request(ar, "\"enabled\" must be true or false");
            return -1;
        }
        spec->has_enabled = true;
        spec->enabled = YAJL_IS_TRUE(v);
    }
    if ((v = k2a_admin_field(body, "expires_at")) != NULL) {
        double t;
        if (!number_of(v, &t) || t > 253402300799.0 || (YAJL_IS_NUMBER(v) && !YAJL_IS_INTEGER(v))) {
            k2a_admin_bad_request(ar, "\"expires_at\" must be unix seconds (an integer), 0 or null for never");
            return -1;
        }
        spec->has_expires = true;
        spec->expires_at = (int64_t)t;
    }
    if ((v = k2a_admin_field(body, "models")) != NULL) {
        spec->has_models = true;
        if (!YAJL_IS_NULL(v)) {
            if (!YAJL_IS_ARRAY(v) || v->u.array.len > K2A_KEYS_MODELS_MAX) {
                k2a_admin_bad_request(ar, "\"models\" must be an array of at most %d patterns, or null for every model",
                                      K2A_KEYS_MODELS_MAX);
                return -1;
            }
            for (size_t i = 0; i < v->u.array.len; ++i) {
                yajl_val m = v->u.array.values[i];
                const char *s = YAJL_IS_STRING(m) ? YAJL_GET_STRING(m) : NULL;
                if (s == NULL || k2a_keys_valid_pattern(s, strlen(s), err, sizeof(err)) != 0) {
                    k2a_admin_bad_request(ar, "\"models\"[%zu]: %s", i, s == NULL ? "must be a string" : err);
                    return -1;
                }
                spec->models[spec->nmodels++] = (char *)s;
            }
        }
    }
    if ((v = k2a_admin_field(body, "limits")) != NULL && !YAJL_IS_NULL(v)) {
        if (!YAJL_IS_OBJECT(v)) {
            k2a_admin_bad_request(ar, "\"limits\" must be an object");
            return -1;
        }
        spec->has_limits = true;
        for (size_t i = 0; i < v->u.object.len; ++i) {
            int which = -1;
            for (int j = 0; j < 5; ++j)
                if (strcmp(v->u.object.keys[i], limit_names[j]) == 0)
                    which = j;
            double x;
            if (which < 0) {
                k2a_admin_bad_request(ar,
                                      "unknown limit \"%.64s\" (known: rpm, concurrency, credits_day, credits_month, tokens_day)",
                                      v->u.object.keys[i]);
                return -1;
            }
            yajl_val lv = v->u.object.values[i];
            bool whole = which != 2 && which != 3; /* rpm, concurrency and tokens_day count things */
            if (!number_of(lv, &x) || x > 1e15 || (whole && YAJL_IS_NUMBER(lv) && !YAJL_IS_INTEGER(lv))) {
                k2a_admin_bad_request(ar, "\"limits.%s\" must be %s >= 0 (0 or null: no limit)", limit_names[which],
                                      whole ? "an integer" : "a number");
                return -1;
            }
            spec->has_limit[which] = true;
            switch (which) {
            case 0:
                spec->limits.rpm = (int64_t)x;
                break;
            case 1:
                spec->limits.concurrency = (int64_t)x;
                break;
            case 2:
                spec->limits.credits_day = x;
                break;
            case 3:
                spec->limits.credits_month = x;
                break;
            default:
                spec->limits.tokens_day = (int64_t)x;
                break;
            }
        }
        if (k2a_keys_valid_limits(&spec->limits, err, sizeof(err)) != 0) {
            k2a_admin_bad_request(ar, "%s", err);
            return -1;
        }
    }
    return 0;
}

/* Saves the store; answers 500 and returns false when that failed (the change stays in memory). */
static bool persist(k2a_admin_req_t *ar, k2a_keys_t *ks)
{
    int r = k2a_keys_persist(ks, ar->call->server->loop);
    if (r == K2A_ECANCELED)
        return false;
    if (r != 0) {
        k2a_admin_reply_error(ar, 500, "api_error", "the change is in effect but could not be saved: %s", k2a_strerror(r));
        return false;
    }
    return true;
}

static void reply_one(k2a_admin_req_t *ar, k2a_keys_t *ks, const char *id, int status, const char *secret)
{
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_t one = K2A_BUF_INIT(0);
    if (k2a_keys_render_one(ks, id, (int64_t)time(NULL), &one) != 0) {
        k2a_admin_reply_error(ar, 404, "not_found_error", "no key with this id");
    } else {
        if (secret != NULL) /* the one answer that carries the secret: {"key":"k2a-...", <the key's fields>} */
            k2a_buf_appendf(&out, "{\"key\":\"%s\",%.*s", secret, (int)one.len - 1, one.base + 1);
        else
            k2a_buf_append(&out, one.base, one.len);
        k2a_admin_reply_json(ar, status, out.base, out.len);
    }
    if (out.base != NULL)
        OPENSSL_cleanse(out.base, out.len);
    k2a_buf_dispose(&out);
    k2a_buf_dispose(&one);
}

static void keys_create(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    k2a_keys_spec_t spec;
    if (ks == NULL || parse_spec(ar, &spec) != 0)
        return;
    if (!spec.has_name) {
        k2a_admin_bad_request(ar, "\"name\" is required");
        return;
    }
    char secret[K2A_KEYS_SECRET_LEN + 1], id[K2A_KEYS_ID_LEN + 1], err[200];
    int r = k2a_keys_add(ks, &spec, (int64_t)time(NULL), secret, id, err, sizeof(err));
    if (r != 0) {
        if (r == K2A_EINVAL && strstr(err, "exists") != NULL)
            k2a_admin_reply_error(ar, 409, "conflict_error", "%s", err);
        else
            k2a_admin_reply_error(ar,
                                  r == K2A_EINVAL    ? 400
                                  : r == K2A_ETOOBIG ? 409
                                                     : 500,
                                  r == K2A_EINVAL    ? "invalid_request_error"
                                  : r == K2A_ETOOBIG ? "conflict_error"
                                                     : "api_error",
                                  "%s", err);
        return;
    }
    k2a_admin_audit(ar, "create key", "%s (id %s)", spec.name, id);
    if (persist(ar, ks))
        reply_one(ar, ks, id, 201, secret);
    OPENSSL_cleanse(secret, sizeof(secret));
}

static void keys_list(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    if (ks == NULL)
        return;
    k2a_buf_t out = K2A_BUF_INIT(0);
    if (k2a_keys_render_list(ks, (int64_t)time(NULL), &out) == 0)
        k2a_admin_reply_json(ar, 200, out.base, out.len);
    else
        k2a_admin_reply_error(ar, 500, "api_error", "out of memory");
    k2a_buf_dispose(&out);
}

static void keys_show(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    if (ks != NULL)
        reply_one(ar, ks, ar->id, 200, NULL);
}

/* The usage as every replica summed it in the shared store (KIRO_REDIS_URL). K2A_ESTORE_UNAVAILABLE when there is none. */
static int shared_usage(k2a_admin_req_t *ar, k2a_keys_t *ks, int days, k2a_buf_t *out)
{
    if (ar->call->server->pool == NULL || strlen(ar->id) != K2A_KEYS_ID_LEN)
        return K2A_ESTORE_UNAVAILABLE;
    k2a_shared_usage_t *u = calloc((size_t)days, sizeof(*u));
    k2a_key_day_t *d = calloc((size_t)days, sizeof(*d));
    int32_t first = k2a_keys_day_of((int64_t)time(NULL)) - days + 1;
    int r = u == NULL || d == NULL ? K2A_ENOMEM : k2a_shared_key_usage(ar->call->server->pool, ar->id, first, days, u);
    if (r == 0) {
        for (int i = 0; i < days; ++i)
            d[i] = (k2a_key_day_t){.day = first + i,
                                   .requests = (uint64_t)u[i].requests,
                                   .errors = (uint64_t)u[i].errors,
                                   .input_tokens = u[i].input_tokens,
                                   .output_tokens = u[i].output_tokens,
                                   .credits = u[i].credits};
        r = k2a_keys_render_usage_of(ks, ar->id, d, days, out);
    }
    free(u);
    free(d);
    return r == K2A_ENOMEM ? K2A_ESTORE_UNAVAILABLE : r;
}

static void keys_usage(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    if (ks == NULL)
        return;
    char q[16];
    int days = 30, max = ar->call->server->config->keys_usage_days > 0 ? (int)ar->call->server->config->keys_usage_days : 90;
    if (k2a_admin_query_param(ar, "days", q, sizeof(q))) {
        char *end;
        long n = strtol(q, &end, 10);
        if (end == q || *end != '\0' || n < 1 || n > max) {
            k2a_admin_bad_request(ar, "days must be an integer from 1 to %d (KIRO_KEYS_USAGE_DAYS)", max);
            return;
        }
        days = (int)n;
    }
    if (days > max)
        days = max;
    k2a_buf_t out = K2A_BUF_INIT(0);
    int r = shared_usage(ar, ks, days, &out);
    if (r == K2A_ESTORE_UNAVAILABLE) /* no shared store, or it is down: this replica's own counts */
        r = k2a_keys_render_usage(ks, ar->id, days, (int64_t)time(NULL), &out);
    if (r == 0)
        k2a_admin_reply_json(ar, 200, out.base, out.len);
    else
        k2a_admin_reply_error(ar, 404, "not_found_error", "no key with this id");
    k2a_buf_dispose(&out);
}

static void keys_update(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    k2a_keys_spec_t spec;
    if (ks == NULL || parse_spec(ar, &spec) != 0)
        return;
    char err[200], name[K2A_KEYS_NAME_MAX + 1] = "";
    k2a_keys_name_of(ks, ar->id, name);
    int r = k2a_keys_update(ks, ar->id, &spec, err, sizeof(err));
    if (r == K2A_ENOTFOUND) {
        k2a_admin_reply_error(ar, 404, "not_found_error", "no key with this id");
        return;
    }
    if (r != 0) {
        k2a_admin_reply_error(ar, strstr(err, "exists") != NULL ? 409 : 400,
                              strstr(err, "exists") != NULL ? "conflict_error" : "invalid_request_error", "%s", err);
        return;
    }
    k2a_admin_audit(ar, "update key", "%s (id %s):%s%s%s%s%s%s", name, ar->id, spec.has_name ? " name" : "",
                    spec.has_enabled ? (spec.enabled ? " enabled" : " disabled") : "", spec.has_models ? " models" : "",
                    spec.has_expires ? " expires_at" : "", spec.has_limits ? " limits" : "",
                    !(spec.has_name || spec.has_enabled || spec.has_models || spec.has_expires || spec.has_limits) ? " nothing"
                                                                                                                   : "");
    if (persist(ar, ks))
        reply_one(ar, ks, ar->id, 200, NULL);
}

static void keys_delete(k2a_admin_req_t *ar)
{
    k2a_keys_t *ks = store_of(ar);
    if (ks == NULL)
        return;
    char name[K2A_KEYS_NAME_MAX + 1] = "";
    k2a_keys_name_of(ks, ar->id, name);
    int r = k2a_keys_delete(ks, ar->id);
    if (r != 0) {
        if (r == K2A_EINVAL)
            k2a_admin_bad_request(ar, "the built-in key (KIRO_CLIENT_TOKEN) cannot be deleted");
        else
            k2a_admin_reply_error(ar, 404, "not_found_error", "no key with this id");
        return;
    }
    k2a_admin_audit(ar, "delete key", "%s (id %s)", name, ar->id);
    if (!persist(ar, ks))
        return;
    char out[256];
    int n = snprintf(out, sizeof(out), "{\"deleted\":true,\"id\":\"%s\"}", ar->id);
    k2a_admin_reply_json(ar, 200, out, (size_t)n);
}

const k2a_admin_route_t k2a_admin_key_routes[] = {
    {"POST", "keys", keys_create},
    {"GET", "keys", keys_list},
    {"GET", "keys/{id}", keys_show},
    {"GET", "keys/{id}/usage", keys_usage},
    {"PATCH", "keys/{id}", keys_update},
    {"DELETE", "keys/{id}", keys_delete},
    {NULL, NULL, NULL},
};
