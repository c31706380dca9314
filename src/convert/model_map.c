/*
 * Model map (see model_map.h). A handful of entries: linear lookups, no hashing. The configuration JSON is
 * read once at start-up, so yajl_tree is used here (the request path never builds a DOM).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/model_map.h"

#define THINKING_SUFFIX "-thinking"
#define THINKING_SUFFIX_LEN (sizeof(THINKING_SUFFIX) - 1)
#define MAX_ID_LEN 128

typedef struct st_entry_t {
    char *name; /* family rules keep their trailing '*' */
    char *kiro;
    bool family;
} entry_t;

struct st_k2a_model_map_t {
    entry_t *entries;
    size_t nentries;
    char **listed; /* sorted public names (exact entries and their -thinking variants) */
    size_t nlisted;
};

static const char *const default_table[][2] = {
    /* kiro2api's exact table (§2.7) */
    {"claude-sonnet-4-5", "CLAUDE_SONNET_4_5_20250929_V1_0"},
    {"claude-sonnet-4-5-20250929", "CLAUDE_SONNET_4_5_20250929_V1_0"},
    {"claude-sonnet-4-20250514", "CLAUDE_SONNET_4_20250514_V1_0"},
    {"claude-3-7-sonnet-20250219", "CLAUDE_3_7_SONNET_20250219_V1_0"},
    {"claude-3-5-haiku-20241022", "auto"},
    {"claude-haiku-4-5-20251001", "auto"},
    /* family rules for current names (see model_map.h for the choice of targets) */
    {"claude-opus-*", "CLAUDE_SONNET_4_5_20250929_V1_0"},
    {"claude-sonnet-*", "CLAUDE_SONNET_4_5_20250929_V1_0"},
    {"claude-haiku-*", "auto"},
};

static bool ends_with(const char *s, size_t n, const char *suffix, size_t sn)
{
    return n >= sn && memcmp(s + n - sn, suffix, sn) == 0;
}

static entry_t *find_entry(k2a_model_map_t *m, const char *name)
{
    for (size_t i = 0; i < m->nentries; ++i)
        if (strcmp(m->entries[i].name, name) == 0)
            return &m->entries[i];
    return NULL;
}

static int set_entry(k2a_model_map_t *m, const char *name, const char *kiro)
{
    entry_t *e = find_entry(m, name);
    char *k = NULL;
    if (kiro != NULL && (k = strdup(kiro)) == NULL)
        return K2A_ENOMEM;
    if (e != NULL) {
        free(e->kiro);
        if (k == NULL) { /* remove */
            free(e->name);
            size_t idx = (size_t)(e - m->entries);
            memmove(e, e + 1, (m->nentries - idx - 1) * sizeof(*e));
            --m->nentries;
        } else {
            e->kiro = k;
        }
        return 0;
    }
    if (k == NULL)
        return 0;
    entry_t *v = realloc(m->entries, (m->nentries + 1) * sizeof(*v));
    if (v == NULL) {
        free(k);
        return K2A_ENOMEM;
    }
    m->entries = v;
    e = &m->entries[m->nentries];
    if ((e->name = strdup(name)) == NULL) {
        free(k);
        return K2A_ENOMEM;
    }
    e->kiro = k;
    e->family = name[strlen(name) - 1] == '*';
    ++m->nentries;
    return 0;
}

static bool valid_kiro_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID_LEN)
        return false;
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' ||
              c == '-'))
            return false;
    }
    return true;
}

static bool valid_public_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_ID_LEN)
        return false;
    const char *star = strchr(s, '*');
    if (star != NULL && (star != s + n - 1 || n == 1))
        return false;
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)s[i] <= 0x20 || s[i] == '"' || s[i] == '\\')
            return false;
    return true;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int build_list(k2a_model_map_t *m)
{
    size_t n = 0;
    if ((m->listed = calloc(m->nentries * 2 + 1, sizeof(char *))) == NULL)
        return K2A_ENOMEM;
    for (size_t i = 0; i < m->nentries; ++i) {
        const entry_t *e = &m->entries[i];
        if (e->family)
            continue;
        if ((m->listed[n++] = strdup(e->name)) == NULL)
            return K2A_ENOMEM;
        size_t l = strlen(e->name);
        if (!ends_with(e->name, l, THINKING_SUFFIX, THINKING_SUFFIX_LEN)) {
            char *t = malloc(l + THINKING_SUFFIX_LEN + 1);
            if (t == NULL)
                return K2A_ENOMEM;
            memcpy(t, e->name, l);
            memcpy(t + l, THINKING_SUFFIX, THINKING_SUFFIX_LEN + 1);
            m->listed[n++] = t;
        }
    }
    qsort(m->listed, n, sizeof(char *), cmp_names);
    /* drop duplicates (an explicit "x-thinking" entry next to the generated variant of "x") */
    size_t w = 0;
    for (size_t i = 0; i < n; ++i) {
        if (w != 0 && strcmp(m->listed[w - 1], m->listed[i]) == 0) {
            free(m->listed[i]);
            continue;
        }
        m->listed[w++] = m->listed[i];
    }
    m->nlisted = w;
    return 0;
}

static int merge_json(k2a_model_map_t *m, const char *json, size_t len, k2a_convert_error_t *err)
{
    char *copy = malloc(len + 1), errbuf[256];
    if (copy == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    memcpy(copy, json, len);
    copy[len] = '\0';
    yajl_val root = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    free(copy);
    if (root == NULL) {
        errbuf[strcspn(errbuf, "\n")] = '\0';
        return k2a_convert_error_set(err, K2A_ECONFIG, "KIRO_MODEL_MAP: not valid JSON: %s", errbuf);
    }
    int ret = 0;
    if (!YAJL_IS_OBJECT(root)) {
        ret =
            k2a_convert_error_set(err, K2A_ECONFIG, "KIRO_MODEL_MAP: expected a JSON object {\"public-name\": \"KIRO_MODEL_ID\"}");
        goto Exit;
    }
    for (size_t i = 0; i < root->u.object.len; ++i) {
        const char *key = root->u.object.keys[i];
        yajl_val v = root->u.object.values[i];
        if (!valid_public_name(key)) {
            ret = k2a_convert_error_set(err, K2A_ECONFIG,
                                        "KIRO_MODEL_MAP: entry \"%.100s\": invalid name (non-empty, no spaces or quotes, "
                                        "at most %d bytes, '*' only as the last character of a family rule)",
                                        key, MAX_ID_LEN);
            goto Exit;
        }
        if (YAJL_IS_NULL(v)) {
            if ((ret = set_entry(m, key, NULL)) != 0)
                goto Exit;
            continue;
        }
        if (!YAJL_IS_STRING(v)) {
            ret = k2a_convert_error_set(err, K2A_ECONFIG,
                                        "KIRO_MODEL_MAP: entry \"%.100s\": expected a string (the Kiro modelId) or null", key);
            goto Exit;
        }
        if (!valid_kiro_id(YAJL_GET_STRING(v))) {
            ret = k2a_convert_error_set(err, K2A_ECONFIG,
                                        "KIRO_MODEL_MAP: entry \"%.100s\": invalid Kiro modelId \"%.100s\" (1-%d characters of "
                                        "A-Z a-z 0-9 . _ : -)",
                                        key, YAJL_GET_STRING(v), MAX_ID_LEN);
            goto Exit;
        }
        if ((ret = set_entry(m, key, YAJL_GET_STRING(v))) != 0)
            goto Exit;
    }
Exit:
    if (ret == K2A_ENOMEM)
        k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    yajl_tree_free(root);
    return ret;
}

int k2a_model_map_create(const char *json, size_t len, k2a_model_map_t **out, k2a_convert_error_t *err)
{
    k2a_convert_error_clear(err);
    k2a_model_map_t *m = calloc(1, sizeof(*m));
    int ret;
    if (m == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof(default_table) / sizeof(default_table[0]); ++i) {
        if ((ret = set_entry(m, default_table[i][0], default_table[i][1])) != 0) {
            k2a_convert_error_set(err, ret, "out of memory");
            goto Error;
        }
    }
    if (json != NULL && len != 0 && (ret = merge_json(m, json, len, err)) != 0)
        goto Error;
    if ((ret = build_list(m)) != 0) {
        k2a_convert_error_set(err, ret, "out of memory");
        goto Error;
    }
    *out = m;
    return 0;
Error:
    k2a_model_map_destroy(m);
    return ret;
}

void k2a_model_map_destroy(k2a_model_map_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nentries; ++i) {
        free(m->entries[i].name);
        free(m->entries[i].kiro);
    }
    free(m->entries);
    if (m->listed != NULL) {
        for (size_t i = 0; i < m->nlisted; ++i)
            free(m->listed[i]);
        free(m->listed);
    }
    free(m);
}

static const entry_t *lookup_exact(const k2a_model_map_t *m, k2a_str_t name)
{
    for (size_t i = 0; i < m->nentries; ++i) {
        const entry_t *e = &m->entries[i];
        if (!e->family && strlen(e->name) == name.len && memcmp(e->name, name.base, name.len) == 0)
            return e;
    }
    return NULL;
}

static bool family_remainder_ok(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static const entry_t *lookup_family(const k2a_model_map_t *m, k2a_str_t name)
{
    const entry_t *best = NULL;
    size_t bestlen = 0;
    for (size_t i = 0; i < m->nentries; ++i) {
        const entry_t *e = &m->entries[i];
        if (!e->family)
            continue;
        size_t pl = strlen(e->name) - 1;
        if (name.len > pl && memcmp(name.base, e->name, pl) == 0 && family_remainder_ok(name.base + pl, name.len - pl) &&
            (best == NULL || pl > bestlen)) {
            best = e;
            bestlen = pl;
        }
    }
    return best;
}

static int unknown_model(const k2a_model_map_t *m, k2a_str_t name, k2a_convert_error_t *err)
{
    char list[400];
    size_t len = 0;
    list[0] = '\0';
    for (size_t i = 0; i < m->nentries && len < sizeof(list) - 1; ++i) {
        if (m->entries[i].family)
            continue;
        int w = snprintf(list + len, sizeof(list) - len, "%s%s", len != 0 ? ", " : "", m->entries[i].name);
        len = w < 0 ? len : len + (size_t)w;
    }
    char fam[200];
    size_t flen = 0;
    fam[0] = '\0';
    for (size_t i = 0; i < m->nentries && flen < sizeof(fam) - 1; ++i) {
        if (!m->entries[i].family)
            continue;
        int w = snprintf(fam + flen, sizeof(fam) - flen, "%s%s", flen != 0 ? ", " : "", m->entries[i].name);
        flen = w < 0 ? flen : flen + (size_t)w;
    }
    return k2a_convert_error_set(err, K2A_EMODEL_UNKNOWN,
                                 "model \"%.*s\" is not available; valid models: %s%s%s (any of them may end in \"-thinking\")",
                                 (int)(name.len < 100 ? name.len : 100), name.base != NULL ? name.base : "", list,
                                 flen != 0 ? "; or a name matching " : "", fam);
}

int k2a_model_map_resolve(const k2a_model_map_t *m, k2a_str_t name, k2a_model_resolution_t *out, k2a_convert_error_t *err)
{
    memset(out, 0, sizeof(*out));
    bool suffix = name.len > THINKING_SUFFIX_LEN && ends_with(name.base, name.len, THINKING_SUFFIX, THINKING_SUFFIX_LEN);
    const entry_t *e = lookup_exact(m, name);
    k2a_str_t base = name;
    if (e == NULL && suffix) {
        base.len -= THINKING_SUFFIX_LEN;
        e = lookup_exact(m, base);
    }
    if (e != NULL) {
        out->kiro_model_id = k2a_cstr(e->kiro);
        out->public_name = k2a_cstr(e->name);
        if (suffix && out->public_name.len == name.len) /* an explicit "x-thinking" entry: canonical name without it */
            out->public_name.len -= THINKING_SUFFIX_LEN;
        out->thinking_forced = suffix;
        return 0;
    }
    if ((e = lookup_family(m, base)) != NULL) {
        out->kiro_model_id = k2a_cstr(e->kiro);
        out->public_name = base;
        out->thinking_forced = suffix;
        out->by_family = true;
        k2a_debug("model map: \"%.*s\" matched family rule \"%s\" -> %s", (int)name.len, name.base, e->name, e->kiro);
        return 0;
    }
    return unknown_model(m, name, err);
}

size_t k2a_model_map_count(const k2a_model_map_t *m)
{
    return m->nlisted;
}

k2a_str_t k2a_model_map_name(const k2a_model_map_t *m, size_t i)
{
    return i < m->nlisted ? k2a_cstr(m->listed[i]) : K2A_STR_NULL;
}
