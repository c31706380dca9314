/*
 * Model map (see model_map.h): the naming rule, KIRO_MODEL_MAP overrides (a handful of entries: linear
 * lookups, no hashing) and the small pure helpers the catalog and /v1/models use. The configuration JSON is
 * read once at start-up, so yajl_tree is used here (the request path never builds a DOM).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/model_map.h"

#define THINKING_SUFFIX "-thinking"
#define THINKING_SUFFIX_LEN (sizeof(THINKING_SUFFIX) - 1)
#define MAX_ID_LEN K2A_MODEL_ID_MAX

typedef struct st_entry_t {
    char *name; /* family rules keep their trailing '*' */
    char *kiro; /* NULL: the name is refused */
    bool family;
} entry_t;

struct st_k2a_model_map_t {
    entry_t *entries;
    size_t nentries;
    char **listed; /* sorted public names (exact entries and their -thinking variants) */
    size_t nlisted;
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
        e->kiro = k;
        return 0;
    }
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
        if (e->family || e->kiro == NULL)
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

/* ---- the naming rule ---- */

static bool valid_request_name(const char *s, size_t n)
{
    if (n == 0 || n > MAX_ID_LEN || !isalnum((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool all_lower(const char *s, size_t n)
{
    if (n < 2)
        return false;
    for (size_t i = 0; i < n; ++i)
        if (s[i] < 'a' || s[i] > 'z')
            return false;
    return true;
}

/* "4", "4.5": digits with at most one dotted part of digits. */
static bool is_version(const char *s, size_t n)
{
    const char *dot = memchr(s, '.', n);
    if (dot == NULL)
        return n <= 3 && all_digits(s, n);
    size_t a = (size_t)(dot - s);
    return a <= 3 && all_digits(s, a) && n - a - 1 <= 3 && all_digits(dot + 1, n - a - 1);
}

/* Strips trailing "[...]", "-thinking" and "-YYYYMMDD" (any order, repeatedly) from buf[0..*n). */
static void strip_suffixes(char *buf, size_t *n, bool *thinking)
{
    for (bool changed = true; changed;) {
        changed = false;
        size_t len = *n;
        if (len > 2 && buf[len - 1] == ']') {
            char *open = memrchr(buf, '[', len);
            if (open != NULL && open != buf) {
                *n = (size_t)(open - buf);
                changed = true;
                continue;
            }
        }
        if (len > THINKING_SUFFIX_LEN && ends_with(buf, len, THINKING_SUFFIX, THINKING_SUFFIX_LEN)) {
            *n -= THINKING_SUFFIX_LEN;
            *thinking = true;
            changed = true;
            continue;
        }
        if (len > 9 && buf[len - 9] == '-' && all_digits(buf + len - 8, 8)) {
            *n -= 9;
            changed = true;
        }
    }
}

/* Rewrites "claude-..." in buf (NUL-terminated, lowercase) by the rule; leaves it unchanged when no form matches. */
static void claude_rule(char *buf, size_t bufsz)
{
    const char *tok[4];
    size_t tlen[4], k = 0;
    const char *p = buf + 7; /* after "claude-" */
    while (*p != '\0') {
        if (k == 4)
            return;
        const char *dash = strchr(p, '-');
        size_t l = dash != NULL ? (size_t)(dash - p) : strlen(p);
        if (l == 0)
            return;
        tok[k] = p;
        tlen[k++] = l;
        p += l;
        if (*p == '-')
            ++p;
        if (*p == '\0' && dash != NULL)
            return; /* trailing '-' */
    }
    /* the family token and the one or two version tokens, by position (no snprintf: this runs for every request) */
    int fi, v1, v2 = -1;
    if (k == 2 && all_lower(tok[0], tlen[0]) && is_version(tok[1], tlen[1])) { /* claude-sonnet-4, claude-opus-4.5 */
        fi = 0, v1 = 1;
    } else if (k == 3 && all_lower(tok[0], tlen[0]) && is_version(tok[1], tlen[1]) && memchr(tok[1], '.', tlen[1]) == NULL &&
               tlen[2] <= 2 && all_digits(tok[2], tlen[2])) { /* claude-opus-4-5 */
        fi = 0, v1 = 1, v2 = 2;
    } else if (k == 2 && is_version(tok[0], tlen[0]) && all_lower(tok[1], tlen[1])) { /* claude-3.7-sonnet, claude-3-opus */
        fi = 1, v1 = 0;
    } else if (k == 3 && tlen[0] <= 3 && all_digits(tok[0], tlen[0]) && tlen[1] <= 2 && all_digits(tok[1], tlen[1]) &&
               all_lower(tok[2], tlen[2])) { /* claude-3-7-sonnet */
        fi = 2, v1 = 0, v2 = 1;
    } else {
        return;
    }
    char family[32], ver[16];
    if (tlen[fi] >= sizeof(family) - 1 || tlen[v1] + (v2 >= 0 ? 1 + tlen[v2] : 0) >= sizeof(ver))
        return;
    memcpy(family, tok[fi], tlen[fi]);
    family[tlen[fi]] = '\0';
    size_t vl = tlen[v1];
    memcpy(ver, tok[v1], vl);
    if (v2 >= 0) {
        ver[vl++] = '.';
        memcpy(ver + vl, tok[v2], tlen[v2]);
        vl += tlen[v2];
    }
    ver[vl] = '\0';
    if (vl > 2 && strcmp(ver + vl - 2, ".0") == 0) /* claude-sonnet-4.0 is claude-sonnet-4 (docs/kiro-compat.md) */
        ver[vl -= 2] = '\0';
    size_t fl = tlen[fi];
    if (7 + fl + 1 + vl + 1 > bufsz)
        return;
    /* family and ver are copies: buf may be overwritten */
    memcpy(buf, "claude-", 7);
    memcpy(buf + 7, family, fl);
    buf[7 + fl] = '-';
    memcpy(buf + 8 + fl, ver, vl + 1);
}

int k2a_model_normalize(k2a_str_t name, char *out, size_t outsz, bool *thinking)
{
    *thinking = false;
    if (outsz <= MAX_ID_LEN || name.base == NULL || !valid_request_name(name.base, name.len))
        return K2A_EMODEL_INVALID;
    size_t n = name.len;
    memcpy(out, name.base, n);
    bool claude = n >= 7 && strncasecmp(out, "claude-", 7) == 0;
    if (claude) /* Claude names are matched in lower case, suffixes included */
        for (size_t i = 0; i < n; ++i)
            if (out[i] >= 'A' && out[i] <= 'Z')
                out[i] = (char)(out[i] - 'A' + 'a');
    strip_suffixes(out, &n, thinking);
    if (n == 0 || out[n - 1] == '-')
        return K2A_EMODEL_INVALID;
    out[n] = '\0';
    if (claude && n > 7)
        claude_rule(out, outsz);
    return 0;
}

static int invalid_name(k2a_str_t name, k2a_convert_error_t *err)
{
    /* the name itself is only echoed when it is printable and short */
    bool show = name.base != NULL && name.len <= 100;
    for (size_t i = 0; show && i < name.len; ++i)
        show = (unsigned char)name.base[i] >= 0x20 && (unsigned char)name.base[i] < 0x7f && name.base[i] != '"' &&
               name.base[i] != '\\';
    return k2a_convert_error_set(err, K2A_EMODEL_INVALID,
                                 "model%s%.*s%s is not a valid model name (1-%d printable ASCII characters without spaces, "
                                 "quotes or backslashes, starting with a letter or digit)",
                                 show ? " \"" : "", show ? (int)name.len : 0, show ? name.base : "", show ? "\"" : "", MAX_ID_LEN);
}

int k2a_model_map_resolve(const k2a_model_map_t *m, k2a_str_t name, k2a_model_resolution_t *out, k2a_convert_error_t *err)
{
    memset(out, 0, sizeof(*out));
    if (name.base == NULL || !valid_request_name(name.base, name.len))
        return invalid_name(name, err);
    bool suffix = name.len > THINKING_SUFFIX_LEN && ends_with(name.base, name.len, THINKING_SUFFIX, THINKING_SUFFIX_LEN);
    const entry_t *e = lookup_exact(m, name);
    k2a_str_t base = name;
    if (e == NULL && suffix) {
        base.len -= THINKING_SUFFIX_LEN;
        e = lookup_exact(m, base);
    }
    bool family = false;
    if (e == NULL) {
        e = lookup_family(m, base);
        family = e != NULL;
    }
    if (e != NULL) {
        if (e->kiro == NULL)
            return k2a_convert_error_set(err, K2A_EMODEL_UNKNOWN, "model \"%.*s\" is not available (refused by KIRO_MODEL_MAP)",
                                         (int)name.len, name.base);
        out->kiro_model_id = k2a_cstr(e->kiro);
        out->public_name = family ? base : k2a_cstr(e->name);
        if (!family && suffix && out->public_name.len == name.len) /* an explicit "x-thinking" entry */
            out->public_name.len -= THINKING_SUFFIX_LEN;
        out->thinking_forced = suffix;
        out->by_family = family;
        if (family)
            k2a_debug("model map: \"%.*s\" matched family rule \"%s\" -> %s", (int)name.len, name.base, e->name, e->kiro);
        return 0;
    }
    bool thinking;
    if (k2a_model_normalize(name, out->id_buf, sizeof(out->id_buf), &thinking) != 0)
        return invalid_name(name, err);
    out->kiro_model_id = k2a_cstr(out->id_buf);
    out->public_name = base;
    out->thinking_forced = thinking;
    out->by_rule = true;
    return 0;
}

/* ---- helpers for catalogs and listings ---- */

bool k2a_model_id_same(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen == blen)
        return memcmp(a, b, alen) == 0;
    if (alen > blen) {
        const char *t = a;
        a = b;
        b = t;
        size_t tl = alen;
        alen = blen;
        blen = tl;
    }
    /* b may be a followed by ".0" */
    return blen == alen + 2 && memcmp(a, b, alen) == 0 && b[alen] == '.' && b[alen + 1] == '0' && alen > 0 && a[alen - 1] >= '0' &&
           a[alen - 1] <= '9';
}

/* Splits a dotted Claude id "claude-<family>-<major>[.<minor>]"; returns false for other ids. */
static bool split_claude(const char *id, char *family, size_t fsz, int *major, int *minor)
{
    if (strncmp(id, "claude-", 7) != 0)
        return false;
    const char *f = id + 7, *dash = strchr(f, '-');
    if (dash == NULL || !all_lower(f, (size_t)(dash - f)) || (size_t)(dash - f) >= fsz)
        return false;
    const char *v = dash + 1;
    if (!is_version(v, strlen(v)))
        return false;
    snprintf(family, fsz, "%.*s", (int)(dash - f), f);
    *major = atoi(v);
    const char *dot = strchr(v, '.');
    *minor = dot != NULL ? atoi(dot + 1) : -1;
    return true;
}

bool k2a_model_anthropic_alias(const char *id, char *out, size_t outsz)
{
    char family[32];
    int major, minor;
    if (!split_claude(id, family, sizeof(family), &major, &minor))
        return false;
    if (major < 4 && minor >= 0) /* the Claude 3 names put the version first */
        snprintf(out, outsz, "claude-%d-%d-%s", major, minor, family);
    else if (major < 4)
        snprintf(out, outsz, "claude-%d-%s", major, family);
    else if (minor >= 0)
        snprintf(out, outsz, "claude-%s-%d-%d", family, major, minor);
    else
        return false; /* "claude-sonnet-4", "claude-sonnet-5": already the Anthropic name */
    return strcmp(out, id) != 0;
}

void k2a_model_display_name(const char *id, char *out, size_t outsz)
{
    char family[32];
    int major, minor;
    if (!split_claude(id, family, sizeof(family), &major, &minor)) {
        snprintf(out, outsz, "%s", strcmp(id, "auto") == 0 ? "Auto" : id);
        return;
    }
    family[0] = (char)(family[0] - 'a' + 'A');
    if (minor >= 0)
        snprintf(out, outsz, "Claude %s %d.%d", family, major, minor);
    else
        snprintf(out, outsz, "Claude %s %d", family, major);
}

int64_t k2a_model_default_window(const char *id, size_t len)
{
    char buf[MAX_ID_LEN + 1], family[32];
    int major, minor;
    if (id == NULL || len == 0 || len > MAX_ID_LEN)
        return 200000;
    memcpy(buf, id, len);
    buf[len] = '\0';
    if (split_claude(buf, family, sizeof(family), &major, &minor)) {
        if (strcmp(family, "fable") == 0 || major >= 5)
            return 1000000;
        if (major == 4 && minor >= 6 && (strcmp(family, "opus") == 0 || strcmp(family, "sonnet") == 0))
            return 1000000;
        return 200000;
    }
    static const struct {
        const char *prefix;
        int64_t window;
    } others[] = {{"deepseek-", 128000}, {"minimax-", 196000}, {"qwen3-coder", 256000}, {"glm-", 200000}, {"gpt-5", 272000}};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); ++i)
        if (strncmp(buf, others[i].prefix, strlen(others[i].prefix)) == 0)
            return others[i].window;
    return 200000;
}

/* kiro.dev/docs/models as of 2026-07 (kiro-protocol-2026 §3); what an account really serves comes from its catalog */
const char *const k2a_model_builtin_ids[] = {
    "auto",
    "claude-opus-4.5",
    "claude-opus-4.6",
    "claude-opus-4.7",
    "claude-opus-4.8",
    "claude-opus-5",
    "claude-sonnet-4",
    "claude-sonnet-4.5",
    "claude-sonnet-4.6",
    "claude-sonnet-5",
    "claude-haiku-4.5",
    NULL,
};

size_t k2a_model_map_count(const k2a_model_map_t *m)
{
    return m->nlisted;
}

k2a_str_t k2a_model_map_name(const k2a_model_map_t *m, size_t i)
{
    return i < m->nlisted ? k2a_cstr(m->listed[i]) : K2A_STR_NULL;
}
