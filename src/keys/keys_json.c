/*
 * JSON of the key store: the persisted snapshot (keys as SHA-256 + display prefix, never in clear, with their
 * usage per UTC day), its decoding at start-up (yajl_tree: once, bounded by the file size), and the admin
 * API's renderings. Every rendering copies a key's fields under that key's mutex.
 *
 * Snapshot: {"version":1,"saved_at":<ms>,"keys":[{"id","name","hash","prefix","created_at","expires_at",
 *   "last_used_at","enabled","builtin","models":[..],"limits":{..},"month","month_credits",
 *   "usage":[{"day","date","requests","errors","input_tokens","output_tokens","credits"}]}]}
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "keys/internal.h"

static void put_limits(k2a_buf_t *out, const k2a_key_limits_t *l)
{
    /* null = no limit */
    k2a_buf_appendstr(out, "{\"rpm\":");
    l->rpm > 0 ? k2a_buf_appendf(out, "%lld", (long long)l->rpm) : k2a_buf_appendstr(out, "null");
    k2a_buf_appendstr(out, ",\"concurrency\":");
    l->concurrency > 0 ? k2a_buf_appendf(out, "%lld", (long long)l->concurrency) : k2a_buf_appendstr(out, "null");
    k2a_buf_appendstr(out, ",\"credits_day\":");
    l->credits_day > 0 ? k2a_buf_appendf(out, "%.17g", l->credits_day) : k2a_buf_appendstr(out, "null");
    k2a_buf_appendstr(out, ",\"credits_month\":");
    l->credits_month > 0 ? k2a_buf_appendf(out, "%.17g", l->credits_month) : k2a_buf_appendstr(out, "null");
    k2a_buf_appendstr(out, ",\"tokens_day\":");
    l->tokens_day > 0 ? k2a_buf_appendf(out, "%lld", (long long)l->tokens_day) : k2a_buf_appendstr(out, "null");
    k2a_buf_appendstr(out, "}");
}

static void put_models(k2a_buf_t *out, const k2a_key_t *k)
{
    k2a_buf_appendstr(out, "[");
    for (size_t i = 0; i < k->nmodels; ++i) {
        k2a_buf_appendstr(out, i ? ",\"" : "\"");
        k2a_buf_append_json_escaped(out, k->models[i], strlen(k->models[i]));
        k2a_buf_appendstr(out, "\"");
    }
    k2a_buf_appendstr(out, "]");
}

static void put_day(k2a_buf_t *out, const k2a_key_day_t *d, bool with_day)
{
    char date[11];
    k2a_keys_date_str(d->day, date);
    k2a_buf_appendstr(out, "{");
    if (with_day)
        k2a_buf_appendf(out, "\"day\":%d,", d->day);
    k2a_buf_appendf(out,
                    "\"date\":\"%s\",\"requests\":%llu,\"errors\":%llu,\"input_tokens\":%lld,\"output_tokens\":%lld,\"credits\":%."
                    "17g}",
                    date, (unsigned long long)d->requests, (unsigned long long)d->errors, (long long)d->input_tokens,
                    (long long)d->output_tokens, d->credits);
}

static void put_time(k2a_buf_t *out, const char *name, int64_t t)
{
    if (t != 0)
        k2a_buf_appendf(out, ",\"%s\":%lld", name, (long long)t);
    else
        k2a_buf_appendf(out, ",\"%s\":null", name);
}

/* ---- snapshot ---- */

int k2a_keys_encode(k2a_keys_t *ks, k2a_buf_t *out, uint64_t *gen)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    pthread_mutex_lock(&ks->wmu);
    atomic_store_explicit(&ks->dirty, false, memory_order_relaxed);
    *gen = ++ks->gen;
    k2a_buf_appendf(out, "{\"version\":1,\"saved_at\":%lld,\"keys\":[", (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000);
    for (size_t i = 0; i < ks->nall; ++i) {
        k2a_key_t *k = ks->all[i];
        char hash[65];
        for (int j = 0; j < 32; ++j)
            snprintf(hash + 2 * j, 3, "%02x", k->hash[j]);
        pthread_mutex_lock(&k->mu);
        k2a_buf_appendf(out, "%s\n{\"id\":\"%s\",\"name\":\"%s\",\"builtin\":%s", i ? "," : "", k->id, k->name,
                        k->builtin ? "true" : "false");
        if (!k->builtin)
            k2a_buf_appendf(out, ",\"hash\":\"%s\",\"prefix\":\"%s\"", hash, k->prefix);
        k2a_buf_appendf(out, ",\"ver\":%lld", (long long)k->ver);
        k2a_buf_appendf(out, ",\"created_at\":%lld,\"expires_at\":%lld,\"last_used_at\":%lld,\"enabled\":%s,\"models\":",
                        (long long)k->created_at, (long long)k->expires_at, (long long)k->last_used_at,
                        k->enabled ? "true" : "false");
        put_models(out, k);
        k2a_buf_appendstr(out, ",\"limits\":");
        put_limits(out, &k->limits);
        k2a_buf_appendf(out, ",\"month\":%d,\"month_credits\":%.17g,\"usage\":[", k->month, k->month_credits);
        for (size_t d = 0; d < k->ndays; ++d) {
            if (d)
                k2a_buf_appendstr(out, ",");
            put_day(out, &k->days[d], true);
        }
        pthread_mutex_unlock(&k->mu);
        k2a_buf_appendstr(out, "]}");
    }
    pthread_mutex_unlock(&ks->wmu);
    return k2a_buf_appendstr(out, "\n]}\n");
}

static yajl_val get(yajl_val obj, const char *key)
{
    const char *path[] = {key, NULL};
    return obj != NULL ? yajl_tree_get(obj, path, yajl_t_any) : NULL;
}

static int64_t get_i64(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    return v != NULL && YAJL_IS_NUMBER(v) ? (YAJL_IS_INTEGER(v) ? YAJL_GET_INTEGER(v) : (int64_t)YAJL_GET_DOUBLE(v)) : 0;
}

static double get_dbl(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    return v != NULL && YAJL_IS_NUMBER(v) ? YAJL_GET_DOUBLE(v) : 0;
}

static const char *get_str(yajl_val obj, const char *key)
{
    yajl_val v = get(obj, key);
    return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

static bool hex_decode(const char *hex, unsigned char out[32])
{
    if (hex == NULL || strlen(hex) != 64)
        return false;
    for (int i = 0; i < 32; ++i) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (unsigned char)v;
    }
    return true;
}

static int decode_key(k2a_keys_t *ks, yajl_val o)
{
    const char *id = get_str(o, "id"), *name = get_str(o, "name");
    yajl_val b = get(o, "builtin");
    bool builtin = b != NULL && YAJL_IS_TRUE(b);
    char err[200];
    if (id == NULL || name == NULL)
        return 0; /* skipped */
    k2a_key_t *k;
    if (builtin) {
        if ((k = ks->builtin) == NULL)
            return 0; /* KIRO_CLIENT_TOKEN is no longer set: its usage goes */
    } else {
        if (strlen(id) != K2A_KEYS_ID_LEN || k2a_keys_valid_name(name, strlen(name), err, sizeof(err)) != 0)
            return 0;
        if ((k = k2a_keys_new_key(ks)) == NULL)
            return K2A_ENOMEM;
        if (!hex_decode(get_str(o, "hash"), k->hash)) {
            k2a_keys_free_key(k);
            return 0;
        }
        snprintf(k->id, sizeof(k->id), "%s", id);
        snprintf(k->name, sizeof(k->name), "%s", name);
        const char *prefix = get_str(o, "prefix");
        snprintf(k->prefix, sizeof(k->prefix), "%s", prefix != NULL ? prefix : "");
        k->created_at = get_i64(o, "created_at");
        k->expires_at = get_i64(o, "expires_at");
        k->ver = get_i64(o, "ver");
        if (k->ver <= 0)
            k->ver = k->created_at * 1000; /* a snapshot from before versions */
        yajl_val en = get(o, "enabled");
        k->enabled = en == NULL || !YAJL_IS_FALSE(en);
        yajl_val models = get(o, "models");
        if (models != NULL && YAJL_IS_ARRAY(models)) {
            char *pats[K2A_KEYS_MODELS_MAX];
            size_t n = 0;
            for (size_t i = 0; i < models->u.array.len && n < K2A_KEYS_MODELS_MAX; ++i) {
                char *m = YAJL_IS_STRING(models->u.array.values[i]) ? YAJL_GET_STRING(models->u.array.values[i]) : NULL;
                if (m != NULL && k2a_keys_valid_pattern(m, strlen(m), err, sizeof(err)) == 0)
                    pats[n++] = m;
            }
            k2a_keys_set_models(k, pats, n);
        }
        yajl_val l = get(o, "limits");
        k2a_key_limits_t lim = {.rpm = get_i64(l, "rpm"),
                                .concurrency = get_i64(l, "concurrency"),
                                .credits_day = get_dbl(l, "credits_day"),
                                .credits_month = get_dbl(l, "credits_month"),
                                .tokens_day = get_i64(l, "tokens_day")};
        if (k2a_keys_valid_limits(&lim, err, sizeof(err)) == 0)
            k->limits = lim;
    }
    k->last_used_at = get_i64(o, "last_used_at");
    k->month = (int32_t)get_i64(o, "month");
    k->month_credits = get_dbl(o, "month_credits");
    yajl_val usage = get(o, "usage");
    if (usage != NULL && YAJL_IS_ARRAY(usage)) {
        for (size_t i = 0; i < usage->u.array.len; ++i) {
            yajl_val u = usage->u.array.values[i];
            int64_t day = get_i64(u, "day");
            if (day <= 0 || day > 1000000 || (k->ndays > 0 && day <= k->days[k->ndays - 1].day))
                continue; /* ascending days only */
            k2a_key_day_t *d = k2a_keys_day_rec(k, (int32_t)day);
            if (d == NULL)
                break;
            d->requests = (uint64_t)get_i64(u, "requests");
            d->errors = (uint64_t)get_i64(u, "errors");
            d->input_tokens = get_i64(u, "input_tokens");
            d->output_tokens = get_i64(u, "output_tokens");
            d->credits = get_dbl(u, "credits");
        }
    }
    if (builtin)
        return 0;
    if (ks->nall >= ks->cfg.max_keys + (ks->builtin != NULL) || k2a_keys_find(ks, k->hash) != NULL) {
        k2a_keys_free_key(k);
        return 0;
    }
    for (size_t i = 0; i < ks->nall; ++i)
        if (strcmp(ks->all[i]->name, k->name) == 0 || strcmp(ks->all[i]->id, k->id) == 0) {
            k2a_keys_free_key(k);
            return 0;
        }
    int r = k2a_keys_insert(ks, k);
    if (r != 0) {
        k2a_keys_free_key(k);
        return r;
    }
    atomic_fetch_add_explicit(&ks->nlive, 1, memory_order_relaxed);
    return 0;
}

int k2a_keys_decode(k2a_keys_t *ks, const char *json, size_t len, char *err, size_t errlen)
{
    char *text = strndup(json, len), yerr[256] = "";
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        return K2A_ENOMEM;
    }
    yajl_val root = yajl_tree_parse(text, yerr, sizeof(yerr));
    free(text);
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        snprintf(err, errlen, "keys file: not a JSON object%s%s", yerr[0] ? ": " : "", yerr);
        yajl_tree_free(root);
        return K2A_ECONFIG;
    }
    if (get_i64(root, "version") != 1) {
        snprintf(err, errlen, "keys file: unknown version");
        yajl_tree_free(root);
        return K2A_ECONFIG;
    }
    yajl_val keys = get(root, "keys");
    int r = 0;
    if (keys != NULL && YAJL_IS_ARRAY(keys))
        for (size_t i = 0; i < keys->u.array.len && r == 0; ++i)
            if (YAJL_IS_OBJECT(keys->u.array.values[i]))
                r = decode_key(ks, keys->u.array.values[i]);
    yajl_tree_free(root);
    if (r != 0)
        snprintf(err, errlen, "keys file: %s", k2a_strerror(r));
    return r != 0 ? K2A_ECONFIG : 0;
}

int k2a_keys_write(k2a_keys_t *ks, const k2a_buf_t *json, uint64_t gen)
{
    if (ks->backend == NULL)
        return 0;
    int r = 0;
    pthread_mutex_lock(&ks->fmu);
    if (gen > ks->written_gen) { /* a newer snapshot written meanwhile already holds this one's changes */
        r = ks->backend->save(ks->backend, json->base != NULL ? json->base : "", json->len);
        if (r == 0)
            ks->written_gen = gen;
    }
    pthread_mutex_unlock(&ks->fmu);
    return r;
}

int k2a_keys_save_sync(k2a_keys_t *ks)
{
    if (ks == NULL || ks->backend == NULL)
        return 0;
    k2a_buf_t json = K2A_BUF_INIT(0);
    uint64_t gen;
    int r = k2a_keys_encode(ks, &json, &gen);
    if (r == 0)
        r = k2a_keys_write(ks, &json, gen);
    k2a_buf_dispose(&json);
    return r;
}

bool k2a_keys_dirty(k2a_keys_t *ks)
{
    return atomic_load_explicit(&ks->dirty, memory_order_relaxed);
}

/* ---- admin renderings ---- */

static void render_key(k2a_buf_t *out, k2a_key_t *k, int32_t today)
{
    pthread_mutex_lock(&k->mu);
    k2a_buf_appendf(out, "{\"id\":\"%s\",\"name\":\"%s\",\"key_prefix\":\"%s\",\"builtin\":%s,\"created_at\":%lld", k->id, k->name,
                    k->prefix, k->builtin ? "true" : "false", (long long)k->created_at);
    put_time(out, "expires_at", k->expires_at);
    put_time(out, "last_used_at", k->last_used_at);
    k2a_buf_appendf(out, ",\"enabled\":%s,\"models\":", k->enabled ? "true" : "false");
    put_models(out, k);
    k2a_buf_appendstr(out, ",\"limits\":");
    put_limits(out, &k->limits);
    k2a_key_day_t d = {.day = today};
    if (k->ndays > 0 && k->days[k->ndays - 1].day == today)
        d = k->days[k->ndays - 1];
    double month = k->month == k2a_keys_month_of((int64_t)today * 86400) ? k->month_credits : 0;
    k2a_buf_appendf(
        out,
        ",\"in_flight\":%lld,\"usage_today\":{\"requests\":%llu,\"errors\":%llu,\"input_tokens\":%lld,\"output_tokens\":"
        "%lld,\"credits\":%.17g},\"credits_this_month\":%.17g}",
        (long long)k->inflight, (unsigned long long)d.requests, (unsigned long long)d.errors, (long long)d.input_tokens,
        (long long)d.output_tokens, d.credits, month);
    pthread_mutex_unlock(&k->mu);
}

int k2a_keys_render_list(k2a_keys_t *ks, int64_t now_s, k2a_buf_t *out)
{
    int32_t today = k2a_keys_day_of(now_s);
    pthread_mutex_lock(&ks->wmu);
    k2a_buf_appendstr(out, "{\"keys\":[");
    for (size_t i = 0; i < ks->nall; ++i) {
        if (i)
            k2a_buf_appendstr(out, ",");
        render_key(out, ks->all[i], today);
    }
    pthread_mutex_unlock(&ks->wmu);
    return k2a_buf_appendstr(out, "]}");
}

static k2a_key_t *find_id(k2a_keys_t *ks, const char *id)
{
    for (size_t i = 0; i < ks->nall; ++i)
        if (strcmp(ks->all[i]->id, id) == 0)
            return ks->all[i];
    return NULL;
}

int k2a_keys_render_one(k2a_keys_t *ks, const char *id, int64_t now_s, k2a_buf_t *out)
{
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = find_id(ks, id);
    if (k != NULL)
        render_key(out, k, k2a_keys_day_of(now_s));
    pthread_mutex_unlock(&ks->wmu);
    return k != NULL ? 0 : K2A_ENOTFOUND;
}

int k2a_keys_render_usage_of(k2a_keys_t *ks, const char *id, const k2a_key_day_t *days, int n, k2a_buf_t *out)
{
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = find_id(ks, id);
    if (k == NULL) {
        pthread_mutex_unlock(&ks->wmu);
        return K2A_ENOTFOUND;
    }
    k2a_buf_appendf(out, "{\"id\":\"%s\",\"name\":\"%s\",\"shared\":true,\"days\":[", k->id, k->name);
    pthread_mutex_unlock(&ks->wmu);
    for (int i = 0; i < n; ++i) {
        if (i)
            k2a_buf_appendstr(out, ",");
        put_day(out, &days[i], false);
    }
    return k2a_buf_appendstr(out, "]}");
}

int k2a_keys_render_usage(k2a_keys_t *ks, const char *id, int days, int64_t now_s, k2a_buf_t *out)
{
    int32_t today = k2a_keys_day_of(now_s);
    pthread_mutex_lock(&ks->wmu);
    k2a_key_t *k = find_id(ks, id);
    if (k == NULL) {
        pthread_mutex_unlock(&ks->wmu);
        return K2A_ENOTFOUND;
    }
    pthread_mutex_lock(&k->mu);
    k2a_buf_appendf(out, "{\"id\":\"%s\",\"name\":\"%s\",\"days\":[", k->id, k->name);
    size_t j = 0;
    for (int32_t day = today - days + 1; day <= today; ++day) {
        while (j < k->ndays && k->days[j].day < day)
            ++j;
        k2a_key_day_t d = {.day = day};
        if (j < k->ndays && k->days[j].day == day)
            d = k->days[j];
        if (day != today - days + 1)
            k2a_buf_appendstr(out, ",");
        put_day(out, &d, false);
    }
    pthread_mutex_unlock(&k->mu);
    pthread_mutex_unlock(&ks->wmu);
    return k2a_buf_appendstr(out, "]}");
}

typedef struct st_series_t {
    const char *name, *help, *type;
} series_t;

int k2a_keys_render_metrics(k2a_keys_t *ks, k2a_buf_t *out)
{
    static const series_t series[] = {
        {"k2a_key_requests_total", "Requests admitted per client key.", "counter"},
        {"k2a_key_errors_total", "Admitted requests that ended in an error, per client key.", "counter"},
        {"k2a_key_rejected_total", "Requests refused by a client key's state or limits.", "counter"},
        {"k2a_key_input_tokens_total", "Input tokens per client key.", "counter"},
        {"k2a_key_output_tokens_total", "Output tokens per client key.", "counter"},
        {"k2a_key_credits_total", "Kiro credits per client key.", "counter"},
        {"k2a_key_in_flight", "Requests in flight per client key.", "gauge"},
    };
    enum { NS = sizeof(series) / sizeof(series[0]) };
    if (ks == NULL)
        return 0;
    pthread_mutex_lock(&ks->wmu);
    size_t n = ks->nall, labelled = n < ks->cfg.metrics_max ? n : ks->cfg.metrics_max;
    double *v = calloc((labelled + 1) * NS, sizeof(*v));
    char(*names)[K2A_KEYS_NAME_MAX + 1] = calloc(labelled + 1, sizeof(*names));
    if (v == NULL || names == NULL) {
        pthread_mutex_unlock(&ks->wmu);
        free(v);
        free(names);
        return K2A_ENOMEM;
    }
    for (size_t i = 0; i < n; ++i) {
        k2a_key_t *k = ks->all[i];
        size_t row = i < labelled ? i : labelled; /* past the cap: summed under key="_other" */
        double *r = v + row * NS;
        pthread_mutex_lock(&k->mu);
        if (i < labelled)
            memcpy(names[i], k->name, sizeof(names[i]));
        r[0] += (double)k->m_requests;
        r[1] += (double)k->m_errors;
        r[2] += (double)k->m_rejected;
        r[3] += (double)k->m_input_tokens;
        r[4] += (double)k->m_output_tokens;
        r[5] += k->m_credits;
        r[6] += (double)k->inflight;
        pthread_mutex_unlock(&k->mu);
    }
    pthread_mutex_unlock(&ks->wmu);
    strcpy(names[labelled], "_other"); /* names must start with a letter or digit: no key can be called this */
    size_t rows = n > labelled ? labelled + 1 : labelled;
    for (int s = 0; s < NS && rows > 0; ++s) {
        k2a_buf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help, series[s].name, series[s].type);
        for (size_t i = 0; i < rows; ++i)
            k2a_buf_appendf(out, "%s{key=\"%s\"} %.17g\n", series[s].name, names[i], v[i * NS + s]);
    }
    free(v);
    free(names);
    return 0;
}
