/*
 * KIRO_AUTH_TOKEN parsing (kiro2api §1.1) and the pool's other configuration mapping. The value is a
 * file path when it names a regular file, else the JSON itself; the JSON is small, so yajl_tree is used.
 * Unlike kiro2api an invalid entry is a start-up error naming the entry (0-based, as on the dashboard)
 * and the problem; error messages never quote a secret.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/pool.h"

static yajl_val obj_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

/* The string of a yajl string value (never NULL: "" for anything else). */
static const char *str_of(yajl_val v)
{
    const char *s = v != NULL && YAJL_IS_STRING(v) ? v->u.string : NULL;
    return s != NULL ? s : "";
}

void k2a_account_list_dispose(k2a_account_list_t *list)
{
    for (size_t i = 0; i < list->n; ++i) {
        k2a_account_config_t *e = &list->entries[i];
        free(e->refresh_token);
        free(e->client_id);
        free(e->client_secret);
        free(e->description);
    }
    free(list->entries);
    list->entries = NULL;
    list->n = 0;
}

/* Reads a whole regular file (bounded). Returns 0, K2A_ETOOBIG or K2A_EIO (errno kept). */
static int read_file(const char *path, char **out)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return K2A_EIO;
    char *buf = malloc(K2A_POOL_MAX_AUTH_FILE + 1);
    if (buf == NULL) {
        fclose(fp);
        return K2A_ENOMEM;
    }
    size_t n = fread(buf, 1, K2A_POOL_MAX_AUTH_FILE + 1, fp);
    int ioerr = ferror(fp);
    fclose(fp);
    if (ioerr) {
        free(buf);
        return K2A_EIO;
    }
    if (n > K2A_POOL_MAX_AUTH_FILE) {
        free(buf);
        return K2A_ETOOBIG;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}

static bool is_blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* Validates one entry into *e. Returns 0 or K2A_ECONFIG with err set. */
static int parse_entry(yajl_val v, size_t idx, k2a_account_config_t *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    if (!YAJL_IS_OBJECT(v)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: not a JSON object", idx);
        return K2A_ECONFIG;
    }
    yajl_val auth = obj_get(v, "auth"), rt = obj_get(v, "refreshToken"), cid = obj_get(v, "clientId"),
             cs = obj_get(v, "clientSecret"), dis = obj_get(v, "disabled"), desc = obj_get(v, "description");
    e->auth = K2A_AUTH_SOCIAL;
    if (auth != NULL && !YAJL_IS_NULL(auth)) {
        if (!YAJL_IS_STRING(auth)) {
            snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: auth must be \"Social\" or \"IdC\"", idx);
            return K2A_ECONFIG;
        }
        const char *a = str_of(auth);
        if (a[0] == '\0' || strcasecmp(a, "Social") == 0) {
            e->auth = K2A_AUTH_SOCIAL;
        } else if (strcasecmp(a, "IdC") == 0) {
            e->auth = K2A_AUTH_IDC;
        } else {
            /* quote at most 40 bytes, printable ASCII only: the message is one line of a log or of stderr */
            char shown[41];
            size_t n = 0;
            for (; a[n] != '\0' && n < sizeof(shown) - 1; ++n)
                shown[n] = a[n] >= 0x20 && a[n] < 0x7f ? a[n] : '?';
            shown[n] = '\0';
            snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: auth must be \"Social\" or \"IdC\", got \"%s\"", idx, shown);
            return K2A_ECONFIG;
        }
    }
    if (rt == NULL || YAJL_IS_NULL(rt)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: refreshToken is missing", idx);
        return K2A_ECONFIG;
    }
    if (!YAJL_IS_STRING(rt) || is_blank(str_of(rt))) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: refreshToken must be a non-empty string", idx);
        return K2A_ECONFIG;
    }
    if (strlen(str_of(rt)) > 16384) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: refreshToken is longer than 16384 bytes", idx);
        return K2A_ECONFIG;
    }
    if (dis != NULL && !YAJL_IS_NULL(dis) && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: disabled must be true or false", idx);
        return K2A_ECONFIG;
    }
    if (desc != NULL && !YAJL_IS_NULL(desc) && !YAJL_IS_STRING(desc)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: description must be a string", idx);
        return K2A_ECONFIG;
    }
    if (desc != NULL && YAJL_IS_STRING(desc) && strlen(str_of(desc)) > 120) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: description is longer than 120 bytes", idx);
        return K2A_ECONFIG;
    }
    if (e->auth == K2A_AUTH_IDC) {
        bool cid_ok = cid != NULL && YAJL_IS_STRING(cid) && !is_blank(str_of(cid));
        bool cs_ok = cs != NULL && YAJL_IS_STRING(cs) && !is_blank(str_of(cs));
        if (!cid_ok || !cs_ok) {
            snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: IdC account needs clientId and clientSecret%s", idx,
                     !cid_ok && !cs_ok ? ""
                     : !cid_ok         ? " (clientId is missing or empty)"
                                       : " (clientSecret is missing or empty)");
            return K2A_ECONFIG;
        }
    }
    e->refresh_token = strdup(str_of(rt));
    e->description = strdup(desc != NULL && YAJL_IS_STRING(desc) ? str_of(desc) : "");
    e->disabled = dis != NULL && YAJL_IS_TRUE(dis);
    if (e->auth == K2A_AUTH_IDC) {
        e->client_id = strdup(str_of(cid));
        e->client_secret = strdup(str_of(cs));
    }
    if (e->refresh_token == NULL || e->description == NULL ||
        (e->auth == K2A_AUTH_IDC && (e->client_id == NULL || e->client_secret == NULL))) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: out of memory");
        return K2A_ENOMEM;
    }
    /* description must not break a log line or a metric label */
    for (char *p = e->description; *p; ++p)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    k2a_log_add_secret(e->refresh_token, strlen(e->refresh_token));
    if (e->client_secret != NULL)
        k2a_log_add_secret(e->client_secret, strlen(e->client_secret));
    return 0;
}

/* Parses the JSON text of KIRO_AUTH_TOKEN; source names it in messages ("the value" or the file's path). */
static int parse_accounts_json(const char *text, const char *source, k2a_account_list_t *out, char *err, size_t errlen)
{
    char ybuf[256];
    int ret = K2A_ECONFIG;
    yajl_val root = NULL;
    memset(out, 0, sizeof(*out));

    ybuf[0] = '\0';
    root = yajl_tree_parse(text, ybuf, sizeof(ybuf));
    if (root == NULL) {
        /* yajl's message quotes the offending text; keep only its first line, which names the error kind. */
        char *nl = strchr(ybuf, '\n');
        if (nl != NULL)
            *nl = '\0';
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: %s is not valid JSON (%s)", source, ybuf[0] ? ybuf : "parse error");
        goto Exit;
    }
    size_t n;
    yajl_val *items, single[1];
    if (YAJL_IS_ARRAY(root)) {
        n = root->u.array.len;
        items = root->u.array.values;
    } else if (YAJL_IS_OBJECT(root)) {
        n = 1;
        single[0] = root;
        items = single;
    } else {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: expected a JSON array of account objects or one object");
        goto Exit;
    }
    if (n == 0) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: no accounts configured (empty array)");
        goto Exit;
    }
    if (n > K2A_POOL_MAX_ACCOUNTS) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: %zu accounts, more than the limit of %d", n, K2A_POOL_MAX_ACCOUNTS);
        goto Exit;
    }
    if ((out->entries = calloc(n, sizeof(*out->entries))) == NULL) {
        ret = K2A_ENOMEM;
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: out of memory");
        goto Exit;
    }
    size_t enabled = 0;
    for (size_t i = 0; i < n; ++i) {
        if ((ret = parse_entry(items[i], i, &out->entries[i], err, errlen)) != 0) {
            out->n = i + 1; /* dispose frees the partial entry too */
            goto Exit;
        }
        out->n = i + 1;
        for (size_t j = 0; j < i; ++j) {
            if (out->entries[j].auth == out->entries[i].auth &&
                strcmp(out->entries[j].refresh_token, out->entries[i].refresh_token) == 0) {
                snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: same auth and refreshToken as entry %zu", i, j);
                ret = K2A_ECONFIG;
                goto Exit;
            }
        }
        enabled += !out->entries[i].disabled;
    }
    if (enabled == 0) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: every account is disabled");
        ret = K2A_ECONFIG;
        goto Exit;
    }
    ret = 0;
Exit:
    if (ret != 0)
        k2a_account_list_dispose(out);
    yajl_tree_free(root);
    return ret;
}

int k2a_pool_parse_accounts_json(const char *json, k2a_account_list_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (json == NULL || is_blank(json)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: not set (a JSON array of accounts, or a path to a file holding it)");
        return K2A_ECONFIG;
    }
    return parse_accounts_json(json, "the value", out, err, errlen);
}

int k2a_pool_parse_accounts(const char *text_or_path, k2a_account_list_t *out, char *err, size_t errlen)
{
    struct stat st;
    memset(out, 0, sizeof(*out));

    if (text_or_path == NULL || is_blank(text_or_path)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: not set (a JSON array of accounts, or a path to a file holding it)");
        return K2A_ECONFIG;
    }
    const char *first = text_or_path + strspn(text_or_path, " \t\r\n");
    if (*first == '[' || *first == '{')
        return parse_accounts_json(text_or_path, "the value", out, err, errlen);
    if (strlen(text_or_path) < 4096 && stat(text_or_path, &st) == 0 && !S_ISDIR(st.st_mode)) {
        char *file_text = NULL;
        int r = read_file(text_or_path, &file_text);
        if (r != 0) {
            snprintf(err, errlen, "KIRO_AUTH_TOKEN: cannot read %s: %s", text_or_path,
                     r == K2A_ETOOBIG ? "file larger than 4 MiB" : strerror(errno));
            return K2A_ECONFIG;
        }
        r = parse_accounts_json(file_text, text_or_path, out, err, errlen);
        free(file_text);
        return r;
    }
    /* Never echo the value: it may be a bare token pasted by mistake. */
    snprintf(err, errlen, "KIRO_AUTH_TOKEN: neither a readable file nor JSON (expected an array of account objects)");
    return K2A_ECONFIG;
}

int k2a_pool_parse_strategy(const char *s, k2a_pool_strategy_t *out)
{
    if (s == NULL || s[0] == '\0' || strcasecmp(s, "sequential") == 0)
        *out = K2A_POOL_SEQUENTIAL;
    else if (strcasecmp(s, "round_robin") == 0 || strcasecmp(s, "round-robin") == 0)
        *out = K2A_POOL_ROUND_ROBIN;
    else if (strcasecmp(s, "balanced") == 0)
        *out = K2A_POOL_BALANCED;
    else
        return K2A_EINVAL;
    return 0;
}

const char *k2a_pool_strategy_name(k2a_pool_strategy_t s)
{
    switch (s) {
    case K2A_POOL_ROUND_ROBIN:
        return "round_robin";
    case K2A_POOL_BALANCED:
        return "balanced";
    default:
        return "sequential";
    }
}

void k2a_pool_config_init(k2a_pool_config_t *pc)
{
    memset(pc, 0, sizeof(*pc));
    pc->state_file = "./data/kiro2api-state.json";
    pc->strategy = K2A_POOL_SEQUENTIAL;
    pc->max_attempts = 3;
    pc->usage_poll_interval_s = 900;
    pc->catalog_refresh_s = 21600;
    pc->refresh_ahead_pct = 80;
    pc->api_base = "https://codewhisperer.us-east-1.amazonaws.com";
    pc->social_refresh_url = "https://prod.us-east-1.auth.desktop.kiro.dev/refreshToken";
    pc->idc_refresh_url = "https://oidc.us-east-1.amazonaws.com/token";
    pc->kiro_version = "0.2.13";
    pc->agent_mode = "spec";
    pc->refresh_timeout_ms = 30000;
    pc->queue_timeout_ms = 30000;
    pc->save_debounce_ms = 200;
    pc->warmup_stagger_ms = 100;
    pc->warmup = true;
}

int k2a_pool_config_from(k2a_pool_config_t *pc, const k2a_config_t *c, char *err, size_t errlen)
{
    k2a_pool_config_init(pc);
    pc->auth_token = c->auth_token;
    pc->state_file = c->state_file;
    if (k2a_pool_parse_strategy(c->pool_strategy, &pc->strategy) != 0) {
        snprintf(err, errlen, "KIRO_POOL_STRATEGY: expected sequential, round_robin or balanced");
        return K2A_ECONFIG;
    }
    if (c->max_attempts < 1 || c->max_attempts > 20) {
        snprintf(err, errlen, "KIRO_MAX_ATTEMPTS: expected 1..20");
        return K2A_ECONFIG;
    }
    pc->max_attempts = (unsigned)c->max_attempts;
    pc->account_max_concurrency = (unsigned)c->account_max_concurrency;
    pc->usage_poll_interval_s = (unsigned)c->usage_poll_interval_s;
    pc->catalog_refresh_s = (unsigned)c->catalog_refresh_s;
    if (c->refresh_ahead_pct < 10 || c->refresh_ahead_pct > 95) {
        snprintf(err, errlen, "KIRO_REFRESH_AHEAD_PCT: expected 10..95");
        return K2A_ECONFIG;
    }
    pc->refresh_ahead_pct = (unsigned)c->refresh_ahead_pct;
    pc->api_base = c->api_base;
    pc->social_refresh_url = c->social_refresh_url;
    pc->idc_refresh_url = c->idc_refresh_url;
    pc->kiro_version = c->kiro_version;
    pc->agent_mode = c->agent_mode;
    if (c->first_byte_timeout_ms > 0 && c->first_byte_timeout_ms < (int64_t)pc->refresh_timeout_ms)
        pc->refresh_timeout_ms = (uint32_t)c->first_byte_timeout_ms;
    return 0;
}
