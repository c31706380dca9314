/*
 * Model catalogs (see catalog.h). A page is parsed with yajl_tree from a bounded NUL-terminated copy, after
 * a linear pre-scan that refuses nesting deeper than K2A_CATALOG_MAX_DEPTH (yajl_tree_free recurses, and
 * the fetch runs on a coroutine stack). Lookups are linear: a catalog holds a few dozen models.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "convert/model_map.h"
#include "core/errors.h"
#include "core/json_text.h"
#include "core/utf8.h"
#include "pool/catalog.h"

#define MAX_EFFORTS 8
#define MAX_EFFORT_LEN 16
#define MAX_TOKEN_LIMIT 100000000LL

void k2a_catalog_init(k2a_catalog_t *c)
{
    memset(c, 0, sizeof(*c));
}

static void model_dispose(k2a_catalog_model_t *m)
{
    free(m->id);
    free(m->name);
    free(m->efforts);
}

void k2a_catalog_dispose(k2a_catalog_t *c)
{
    for (size_t i = 0; i < c->n; ++i)
        model_dispose(&c->models[i]);
    free(c->models);
    free(c->default_model);
    k2a_catalog_init(c);
}

static yajl_val obj_get(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static const char *obj_str(yajl_val obj, const char *key)
{
    yajl_val v = obj_get(obj, key);
    return v != NULL && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

static bool valid_id(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;
    if (n == 0 || n > K2A_MODEL_ID_MAX)
        return false;
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

/* A copy of at most max bytes (whole UTF-8 sequences) with control characters, quotes and backslashes blanked and
 * malformed UTF-8 replaced by '?'. */
static char *clean_text(const char *str, size_t max)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), o = 0;
    char *out = malloc((n < max ? n : max) + 1);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n;) {
        int seq = k2a_utf8_seq(s + i, n - i);
        size_t l = seq > 0 ? (size_t)seq : 0;
        if (o + (l != 0 ? l : 1) > max)
            break;
        if (l > 1) {
            memcpy(out + o, s + i, l);
            o += l;
            i += l;
            continue;
        }
        unsigned char c = s[i++];
        out[o++] = l == 0 ? '?' : c < 0x20 || c == 0x7f || c == '"' || c == '\\' ? ' ' : (char)c;
    }
    out[o] = '\0';
    return out;
}

static int64_t token_limit(yajl_val limits, const char *key)
{
    yajl_val v = obj_get(limits, key);
    if (v == NULL || !YAJL_IS_NUMBER(v))
        return 0;
    double d = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
    return d > 0 && d <= (double)MAX_TOKEN_LIMIT ? (int64_t)d : 0;
}

/* The effort enum of additionalModelRequestFieldsSchema: properties.<field>.properties.effort.enum, where the field is
 * output_config for Claude and reasoning for GPT (kiro-protocol-2026 §3). */
static char *efforts_of(yajl_val schema)
{
    char buf[MAX_EFFORTS * (MAX_EFFORT_LEN + 1) + 1] = "";
    size_t len = 0, count = 0;
    yajl_val props = obj_get(schema, "properties");
    for (size_t i = 0; props != NULL && YAJL_IS_OBJECT(props) && i < props->u.object.len && count == 0; ++i) {
        yajl_val en = obj_get(obj_get(obj_get(props->u.object.values[i], "properties"), "effort"), "enum");
        if (en == NULL || !YAJL_IS_ARRAY(en))
            continue;
        for (size_t j = 0; j < en->u.array.len && count < MAX_EFFORTS; ++j) {
            yajl_val e = en->u.array.values[j];
            if (!YAJL_IS_STRING(e))
                continue;
            const char *s = YAJL_GET_STRING(e);
            size_t n = strlen(s);
            bool ok = n > 0 && n <= MAX_EFFORT_LEN;
            for (size_t k = 0; ok && k < n; ++k)
                ok = (s[k] >= 'a' && s[k] <= 'z') || s[k] == '_';
            if (!ok)
                continue;
            len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%s", count ? "," : "", s);
            ++count;
        }
    }
    return strdup(buf);
}

const k2a_catalog_model_t *k2a_catalog_find(const k2a_catalog_t *c, const char *id, size_t len)
{
    if (c == NULL || id == NULL)
        return NULL;
    for (size_t i = 0; i < c->n; ++i)
        if (k2a_model_id_same(c->models[i].id, strlen(c->models[i].id), id, len))
            return &c->models[i];
    return NULL;
}

bool k2a_catalog_remove(k2a_catalog_t *c, const char *id, size_t len)
{
    const k2a_catalog_model_t *m = k2a_catalog_find(c, id, len);
    if (m == NULL)
        return false;
    size_t i = (size_t)(m - c->models);
    model_dispose(&c->models[i]);
    memmove(&c->models[i], &c->models[i + 1], (c->n - i - 1) * sizeof(*c->models));
    --c->n;
    return true;
}

static int add_model(k2a_catalog_t *c, yajl_val v)
{
    const char *id = obj_str(v, "modelId");
    if (!valid_id(id) || k2a_catalog_find(c, id, strlen(id)) != NULL || c->n >= K2A_CATALOG_MAX_MODELS)
        return 0;
    if (c->n % 16 == 0) {
        k2a_catalog_model_t *nm = realloc(c->models, (c->n + 16) * sizeof(*nm));
        if (nm == NULL)
            return K2A_ENOMEM;
        c->models = nm;
    }
    k2a_catalog_model_t m = {.rate_multiplier = -1};
    const char *name = obj_str(v, "modelName");
    yajl_val schema = obj_get(v, "additionalModelRequestFieldsSchema");
    m.id = strdup(id);
    m.name = clean_text(name != NULL ? name : "", K2A_CATALOG_MAX_NAME);
    m.has_fields_schema = schema != NULL && !YAJL_IS_NULL(schema);
    m.efforts = m.has_fields_schema ? efforts_of(schema) : strdup("");
    if (m.id == NULL || m.name == NULL || m.efforts == NULL) {
        model_dispose(&m);
        return K2A_ENOMEM;
    }
    yajl_val limits = obj_get(v, "tokenLimits");
    m.max_input = token_limit(limits, "maxInputTokens");
    m.max_output = token_limit(limits, "maxOutputTokens");
    yajl_val types = obj_get(v, "supportedInputTypes");
    for (size_t i = 0; types != NULL && YAJL_IS_ARRAY(types) && i < types->u.array.len; ++i) {
        yajl_val t = types->u.array.values[i];
        const char *ts = YAJL_IS_STRING(t) ? YAJL_GET_STRING(t) : NULL;
        if (ts != NULL && strcmp(ts, "TEXT") == 0)
            m.input_types |= K2A_CATALOG_INPUT_TEXT;
        else if (ts != NULL && strcmp(ts, "IMAGE") == 0)
            m.input_types |= K2A_CATALOG_INPUT_IMAGE;
    }
    yajl_val rate = obj_get(v, "rateMultiplier");
    if (rate != NULL && YAJL_IS_NUMBER(rate)) {
        double d = YAJL_IS_INTEGER(rate) ? (double)YAJL_GET_INTEGER(rate) : YAJL_GET_DOUBLE(rate);
        if (isfinite(d) && d >= 0 && d <= 1000)
            m.rate_multiplier = d;
    }
    c->models[c->n++] = m;
    return 0;
}

static int fail(char *err, size_t errlen, const char *why)
{
    if (errlen != 0)
        snprintf(err, errlen, "%s", why);
    return K2A_EUPSTREAM_EVENT;
}

static int parse(const char *body, size_t len, k2a_catalog_t *c, char *next_token, size_t next_sz, int64_t *fetched_at, char *err,
                 size_t errlen)
{
    if (next_sz != 0)
        next_token[0] = '\0';
    if (body == NULL || len == 0)
        return fail(err, errlen, "empty body");
    if (len > K2A_CATALOG_MAX_BODY)
        return fail(err, errlen, "body too large");
    if (k2a_json_text_depth(body, len, K2A_CATALOG_MAX_DEPTH, NULL) > K2A_CATALOG_MAX_DEPTH)
        return fail(err, errlen, "JSON nested too deeply");
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return K2A_ENOMEM;
    memcpy(copy, body, len);
    copy[len] = '\0';
    yajl_val root = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    int r = 0;
    if (root == NULL || !YAJL_IS_OBJECT(root)) {
        r = fail(err, errlen, "not a JSON object");
        goto Exit;
    }
    yajl_val models = obj_get(root, "models");
    if (models == NULL || !YAJL_IS_ARRAY(models)) {
        r = fail(err, errlen, "\"models\" is not an array");
        goto Exit;
    }
    yajl_val next = obj_get(root, "nextToken");
    if (next != NULL && !YAJL_IS_NULL(next)) {
        if (!YAJL_IS_STRING(next)) {
            r = fail(err, errlen, "nextToken is not a string");
            goto Exit;
        }
        const char *t = YAJL_GET_STRING(next);
        size_t tl = strlen(t), b = 0;
        while (b < tl && (t[b] == ' ' || t[b] == '\t' || t[b] == '\r' || t[b] == '\n'))
            ++b;
        if (b < tl) {
            if (tl >= K2A_CATALOG_MAX_TOKEN || tl >= next_sz) {
                r = fail(err, errlen, "nextToken too long");
                goto Exit;
            }
            memcpy(next_token, t, tl + 1);
        }
    }
    for (size_t i = 0; i < models->u.array.len; ++i)
        if ((r = add_model(c, models->u.array.values[i])) != 0)
            goto Exit;
    const char *def = obj_str(root, "defaultModelId");
    if (def == NULL)
        def = obj_str(obj_get(root, "defaultModel"), "modelId");
    if (valid_id(def)) {
        char *d = strdup(def);
        if (d == NULL) {
            r = K2A_ENOMEM;
            goto Exit;
        }
        free(c->default_model);
        c->default_model = d;
    }
    yajl_val at = obj_get(root, "fetchedAt");
    if (fetched_at != NULL && at != NULL && YAJL_IS_INTEGER(at) && YAJL_GET_INTEGER(at) > 0)
        *fetched_at = YAJL_GET_INTEGER(at);
Exit:
    yajl_tree_free(root);
    return r;
}

int k2a_catalog_parse_page(const char *body, size_t len, k2a_catalog_t *c, char *next_token, size_t next_sz, char *err,
                           size_t errlen)
{
    return parse(body, len, c, next_token, next_sz, NULL, err, errlen);
}

int k2a_catalog_decode(const char *json, size_t len, k2a_catalog_t *c)
{
    char next[8];
    k2a_catalog_init(c);
    int r = parse(json, len, c, next, sizeof(next), &c->fetched_at, NULL, 0);
    if (r != 0)
        k2a_catalog_dispose(c);
    return r;
}

static void put_str(k2a_buf_t *out, const char *s)
{
    k2a_buf_appendstr(out, "\"");
    k2a_buf_append_json_escaped(out, s, strlen(s));
    k2a_buf_appendstr(out, "\"");
}

int k2a_catalog_encode(const k2a_catalog_t *c, k2a_buf_t *out)
{
    k2a_buf_appendstr(out, "{\"models\":[");
    for (size_t i = 0; i < c->n; ++i) {
        const k2a_catalog_model_t *m = &c->models[i];
        k2a_buf_appendstr(out, i ? ",{\"modelId\":" : "{\"modelId\":");
        put_str(out, m->id);
        k2a_buf_appendstr(out, ",\"modelName\":");
        put_str(out, m->name);
        k2a_buf_appendstr(out, ",\"supportedInputTypes\":[");
        if (m->input_types & K2A_CATALOG_INPUT_TEXT)
            k2a_buf_appendstr(out, "\"TEXT\"");
        if (m->input_types & K2A_CATALOG_INPUT_IMAGE)
            k2a_buf_appendstr(out, (m->input_types & K2A_CATALOG_INPUT_TEXT) ? ",\"IMAGE\"" : "\"IMAGE\"");
        k2a_buf_appendf(out, "],\"tokenLimits\":{\"maxInputTokens\":%lld,\"maxOutputTokens\":%lld}", (long long)m->max_input,
                        (long long)m->max_output);
        if (m->has_fields_schema) {
            /* the part of the schema that was kept: the effort enum */
            k2a_buf_appendstr(out, ",\"additionalModelRequestFieldsSchema\":{\"type\":\"object\",\"properties\":{\"output_config\":"
                                   "{\"type\":\"object\",\"properties\":{\"effort\":{\"enum\":[");
            const char *e = m->efforts;
            bool first = true;
            while (*e != '\0') {
                size_t n = strcspn(e, ",");
                k2a_buf_appendf(out, "%s\"%.*s\"", first ? "" : ",", (int)n, e);
                first = false;
                e += n + (e[n] == ',');
            }
            k2a_buf_appendstr(out, "]}}}}}");
        }
        if (m->rate_multiplier >= 0)
            k2a_buf_appendf(out, ",\"rateMultiplier\":%.17g", m->rate_multiplier);
        k2a_buf_appendstr(out, "}");
    }
    k2a_buf_appendstr(out, "]");
    if (c->default_model != NULL) {
        k2a_buf_appendstr(out, ",\"defaultModelId\":");
        put_str(out, c->default_model);
    }
    return k2a_buf_appendf(out, ",\"fetchedAt\":%lld}", (long long)c->fetched_at);
}
