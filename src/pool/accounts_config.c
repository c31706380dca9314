/*
 * KIRO_AUTH_TOKEN parsing (kiro2api §1.1) and the pool's other configuration mapping. The value is a
 * file path when it names a regular file, else the JSON itself; the JSON is small, so yajl_tree is used.
 * Unlike kiro2api an invalid entry is a start-up error naming the entry (0-based, as on the dashboard)
 * and the problem; error messages never quote a secret.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/store_redis.h"
#include "pool/internal.h"

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
        free(e->machine_id);
        free(e->profile_arn);
        free(e->token_endpoint);
        free(e->scope);
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

/* ---- machineId ---- */

static void sha256_hex2(const char *a, const char *b, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c == NULL || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, a, strlen(a)) != 1 ||
        EVP_DigestUpdate(c, b, strlen(b)) != 1 || EVP_DigestFinal_ex(c, md, &mdlen) != 1 || mdlen != 32)
        abort(); /* only out of memory can fail here */
    EVP_MD_CTX_free(c);
    for (int i = 0; i < 32; ++i) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

void k2a_account_machine_id(const k2a_account_config_t *cfg, char out[65])
{
    if (cfg->machine_id != NULL && strlen(cfg->machine_id) == 64) {
        memcpy(out, cfg->machine_id, 65);
        return;
    }
    bool api_key = strncmp(cfg->refresh_token, "ksk_", 4) == 0;
    sha256_hex2(api_key ? "KiroAPIKey/" : "KotlinNativeAPI/", cfg->refresh_token, out);
}

int k2a_machine_id_normalize(const char *in, char out[65])
{
    char hex[65];
    size_t n = 0, dashes = 0;
    for (const char *p = in; *p != '\0'; ++p) {
        if (*p == '-') {
            ++dashes;
            continue;
        }
        if (!isxdigit((unsigned char)*p) || n == 64)
            return K2A_EINVAL;
        hex[n++] = (char)tolower((unsigned char)*p);
    }
    if (n == 32 &&
        (dashes == 0 || (dashes == 4 && strlen(in) == 36 && in[8] == '-' && in[13] == '-' && in[18] == '-' && in[23] == '-'))) {
        memcpy(out, hex, 32);
        memcpy(out + 32, hex, 32);
    } else if (n == 64 && dashes == 0) {
        memcpy(out, hex, 64);
    } else {
        return K2A_EINVAL;
    }
    out[64] = '\0';
    return 0;
}

static bool is_blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* Quotes at most 40 bytes of s, printable ASCII only: the message is one line of a log or of stderr. */
static void shown(const char *s, char out[41])
{
    size_t n = 0;
    for (; s[n] != '\0' && n < 40; ++n)
        out[n] = s[n] >= 0x20 && s[n] < 0x7f ? s[n] : '?';
    out[n] = '\0';
}

/* Case-insensitive comparison that ignores '_' and '-' ("ExternalIdp" == "external_idp"). */
static bool kind_eq(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_' || *a == '-')
            ++a;
        while (*b == '_' || *b == '-')
            ++b;
        if (*a == '\0' || *b == '\0')
            return *a == *b;
        char x = *a >= 'A' && *a <= 'Z' ? *a + 32 : *a, y = *b >= 'A' && *b <= 'Z' ? *b + 32 : *b;
        if (x != y)
            return false;
        ++a, ++b;
    }
}

#define FAIL(fmt, ...)                                                                                                             \
    do {                                                                                                                           \
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: " fmt, idx, ##__VA_ARGS__);                                             \
        return K2A_ECONFIG;                                                                                                        \
    } while (0)

/* An optional string field: absent/null -> NULL; a non-string or a blank string is an error (lenient: treated as absent,
 * as the IdC client fields always were). */
static int opt_str_x(yajl_val obj, const char *key, size_t max, bool lenient, size_t idx, const char **out, char *err,
                     size_t errlen)
{
    yajl_val v = obj_get(obj, key);
    *out = NULL;
    if (v == NULL || YAJL_IS_NULL(v) || (lenient && (!YAJL_IS_STRING(v) || is_blank(str_of(v)))))
        return 0;
    if (!YAJL_IS_STRING(v) || is_blank(str_of(v)))
        FAIL("%s must be a non-empty string", key);
    if (strlen(str_of(v)) > max)
        FAIL("%s is longer than %zu bytes", key, max);
    for (const char *p = str_of(v); *p; ++p)
        if ((unsigned char)*p < 0x20)
            FAIL("%s holds a control character", key);
    *out = str_of(v);
    return 0;
}

static int opt_str(yajl_val obj, const char *key, size_t max, size_t idx, const char **out, char *err, size_t errlen)
{
    return opt_str_x(obj, key, max, false, idx, out, err, errlen);
}

/* An optional region field: absent -> "", else one of the regions Kiro serves. */
static int opt_region(yajl_val obj, const char *key, size_t idx, char out[24], char *err, size_t errlen)
{
    const char *s;
    int r;
    out[0] = '\0';
    if ((r = opt_str(obj, key, 64, idx, &s, err, errlen)) != 0 || s == NULL)
        return r;
    if (k2a_region_index(s) < 0) {
        char q[41];
        shown(s, q);
        FAIL("%s is not a Kiro region: expected us-east-1 or eu-central-1, got \"%s\"", key, q);
    }
    snprintf(out, 24, "%s", s);
    return 0;
}

static char *dup_opt(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

/* Validates one entry into *e. Returns 0 or K2A_ECONFIG with err set. */
/* "rpm" / "max_concurrency": an integer 0..100000 overriding KIRO_ACCOUNT_RPM / KIRO_ACCOUNT_MAX_CONCURRENCY for this
 * account (0 = unlimited); absent or null = the global value (*has false). */
static int opt_limit(yajl_val v, const char *name, size_t idx, bool *has, unsigned *out, char *err, size_t errlen)
{
    yajl_val x = obj_get(v, name);
    *has = false;
    *out = 0;
    if (x == NULL || YAJL_IS_NULL(x))
        return 0;
    if (!YAJL_IS_INTEGER(x) || YAJL_GET_INTEGER(x) < 0 || YAJL_GET_INTEGER(x) > 100000) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: %s must be an integer 0..100000 (0 = unlimited)", idx, name);
        return K2A_ECONFIG;
    }
    *has = true;
    *out = (unsigned)YAJL_GET_INTEGER(x);
    return 0;
}

static int parse_entry(yajl_val v, size_t idx, k2a_account_config_t *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof(*e));
    if (!YAJL_IS_OBJECT(v)) {
        snprintf(err, errlen, "KIRO_AUTH_TOKEN: entry %zu: not a JSON object", idx);
        return K2A_ECONFIG;
    }
    yajl_val auth = obj_get(v, "auth"), rt = obj_get(v, "refreshToken"), dis = obj_get(v, "disabled"),
             desc = obj_get(v, "description"), mid = obj_get(v, "machineId");
    const char *cid, *cs, *provider, *api_key, *endpoint, *scope, *arn;
    int r;
    if ((r = opt_str_x(v, "clientId", 4096, true, idx, &cid, err, errlen)) != 0 ||
        (r = opt_str_x(v, "clientSecret", 16384, true, idx, &cs, err, errlen)) != 0 ||
        (r = opt_str(v, "provider", 64, idx, &provider, err, errlen)) != 0 ||
        (r = opt_str(v, "apiKey", 16384, idx, &api_key, err, errlen)) != 0 ||
        (r = opt_str(v, "tokenEndpoint", 2048, idx, &endpoint, err, errlen)) != 0 ||
        (r = opt_str(v, "scope", 1024, idx, &scope, err, errlen)) != 0 ||
        (r = opt_str(v, "profileArn", 256, idx, &arn, err, errlen)) != 0 ||
        (r = opt_region(v, "region", idx, e->region, err, errlen)) != 0 ||
        (r = opt_region(v, "apiRegion", idx, e->api_region, err, errlen)) != 0)
        return r;
    bool builder = provider != NULL && kind_eq(provider, "BuilderId");
    e->auth = builder ? K2A_AUTH_IDC : K2A_AUTH_SOCIAL;
    if (auth != NULL && !YAJL_IS_NULL(auth)) {
        static const char kinds[] = "\"Social\", \"IdC\", \"BuilderId\", \"ApiKey\" or \"ExternalIdp\"";
        if (!YAJL_IS_STRING(auth))
            FAIL("auth must be %s", kinds);
        const char *a = str_of(auth);
        if (a[0] == '\0' || kind_eq(a, "Social")) {
            e->auth = K2A_AUTH_SOCIAL;
        } else if (kind_eq(a, "IdC")) {
            e->auth = K2A_AUTH_IDC;
        } else if (kind_eq(a, "BuilderId")) {
            e->auth = K2A_AUTH_IDC;
            builder = true;
        } else if (kind_eq(a, "ApiKey")) {
            e->auth = K2A_AUTH_API_KEY;
        } else if (kind_eq(a, "ExternalIdp")) {
            e->auth = K2A_AUTH_EXTERNAL_IDP;
        } else {
            char q[41];
            shown(a, q);
            FAIL("auth must be %s, got \"%s\"", kinds, q);
        }
    }
    /* Builder ID is a kind of IdC login; with any other auth the pair contradicts itself (fuzz_pool_accounts found
     * ExternalIdp + provider BuilderId accepted as a Builder ID account that refreshes through an external IdP). */
    if (builder && e->auth != K2A_AUTH_IDC)
        FAIL("provider \"BuilderId\" needs auth \"IdC\" (or \"BuilderId\")");
    e->builder_id = builder;
    const char *token;
    if (e->auth == K2A_AUTH_API_KEY) {
        if (api_key == NULL)
            FAIL("apiKey is missing (an ApiKey account holds a \"ksk_...\" key)");
        if (strncmp(api_key, "ksk_", 4) != 0)
            FAIL("apiKey must start with \"ksk_\"");
        if (e->api_region[0] == '\0')
            FAIL("apiRegion is required for an ApiKey account (us-east-1 or eu-central-1)");
        if (arn != NULL)
            FAIL("profileArn is not used by an ApiKey account");
        token = api_key;
    } else {
        if (rt == NULL || YAJL_IS_NULL(rt))
            FAIL("refreshToken is missing");
        if (!YAJL_IS_STRING(rt) || is_blank(str_of(rt)))
            FAIL("refreshToken must be a non-empty string");
        if (strlen(str_of(rt)) > 16384)
            FAIL("refreshToken is longer than 16384 bytes");
        token = str_of(rt);
    }
    if (dis != NULL && !YAJL_IS_NULL(dis) && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis))
        FAIL("disabled must be true or false");
    if (desc != NULL && !YAJL_IS_NULL(desc) && !YAJL_IS_STRING(desc))
        FAIL("description must be a string");
    if (desc != NULL && YAJL_IS_STRING(desc) && strlen(str_of(desc)) > 120)
        FAIL("description is longer than 120 bytes");
    if (e->auth == K2A_AUTH_IDC && (cid == NULL || cs == NULL)) {
        FAIL("IdC account needs clientId and clientSecret%s", cid == NULL && cs == NULL ? ""
                                                              : cid == NULL             ? " (clientId is missing or empty)"
                                                                                        : " (clientSecret is missing or empty)");
    }
    if (e->auth == K2A_AUTH_EXTERNAL_IDP) {
        if (cid == NULL)
            FAIL("clientId is required for an ExternalIdp account");
        if (endpoint == NULL)
            FAIL("tokenEndpoint is required for an ExternalIdp account");
        k2a_url_t u;
        if (k2a_url_parse(endpoint, strlen(endpoint), &u) != 0)
            FAIL("tokenEndpoint is not an http(s) URL");
        if (scope == NULL)
            FAIL("scope is required for an ExternalIdp account (it must include offline_access)");
    }
    if (arn != NULL) {
        int ar = k2a_arn_parse(arn, NULL);
        if (ar == K2A_EUNSUPPORTED)
            FAIL("profileArn names a region Kiro does not serve (us-east-1 or eu-central-1)");
        if (ar != 0)
            FAIL("profileArn is not of the form arn:aws:codewhisperer:<region>:<12 digits>:profile/<id>");
    }
    if ((r = opt_limit(v, "rpm", idx, &e->has_rpm, &e->rpm, err, errlen)) != 0 ||
        (r = opt_limit(v, "max_concurrency", idx, &e->has_max_concurrency, &e->max_concurrency, err, errlen)) != 0)
        return r;
    char machine_id[65];
    if (mid != NULL && !YAJL_IS_NULL(mid) && (!YAJL_IS_STRING(mid) || k2a_machine_id_normalize(str_of(mid), machine_id) != 0))
        FAIL("machineId must be 64 hex digits or a UUID (32 hex digits)");
    bool oom = false;
    e->refresh_token = dup_opt(token, &oom);
    e->description = dup_opt(desc != NULL && YAJL_IS_STRING(desc) ? str_of(desc) : "", &oom);
    e->disabled = dis != NULL && YAJL_IS_TRUE(dis);
    if (mid != NULL && YAJL_IS_STRING(mid))
        e->machine_id = dup_opt(machine_id, &oom);
    if (e->auth == K2A_AUTH_IDC || e->auth == K2A_AUTH_EXTERNAL_IDP)
        e->client_id = dup_opt(cid, &oom);
    if (e->auth == K2A_AUTH_IDC)
        e->client_secret = dup_opt(cs, &oom);
    if (e->auth == K2A_AUTH_EXTERNAL_IDP) {
        e->token_endpoint = dup_opt(endpoint, &oom);
        e->scope = dup_opt(scope, &oom);
    }
    e->profile_arn = dup_opt(arn, &oom);
    if (oom) {
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

#undef FAIL

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
    else if (strcasecmp(s, "sticky") == 0)
        *out = K2A_POOL_STICKY;
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
    case K2A_POOL_STICKY:
        return "sticky";
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
    pc->flagged_cooldown_s = 1800;
    pc->refresh_ahead_pct = 80;
    pc->api_base = "https://q.{region}.amazonaws.com";
    pc->social_refresh_url = "https://prod.{region}.auth.desktop.kiro.dev/refreshToken";
    pc->idc_refresh_url = "https://oidc.{region}.amazonaws.com/token";
    pc->kiro_version = "0.12.333";
    pc->agent_mode = "vibe";
    pc->refresh_timeout_ms = 30000;
    pc->queue_timeout_ms = 30000;
    pc->save_debounce_ms = 200;
    pc->warmup_stagger_ms = 100;
    pc->warmup = true;
    pc->pace_window_s = 60;
    pc->pace_wait_ms = 5000;
    pc->sticky_idle_s = 3600;
    pc->sticky_max_sessions = 100000;
}

int k2a_pool_config_from(k2a_pool_config_t *pc, const k2a_config_t *c, char *err, size_t errlen)
{
    k2a_pool_config_init(pc);
    pc->auth_token = c->auth_token;
    pc->state_file = c->state_file;
    pc->redis_url = c->redis_url;
    pc->redis_prefix = c->redis_prefix;
    pc->redis_resync_ms = (uint32_t)c->redis_resync_ms;
    if (c->redis_url != NULL && c->redis_url[0] != '\0') {
        k2a_redis_url_t u;
        if (k2a_redis_url_parse(c->redis_url, &u, err, errlen) != 0)
            return K2A_ECONFIG;
    }
    if (k2a_pool_parse_strategy(c->pool_strategy, &pc->strategy) != 0) {
        snprintf(err, errlen, "KIRO_POOL_STRATEGY: expected sequential, round_robin, balanced or sticky");
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
    pc->flagged_cooldown_s = (unsigned)c->flagged_cooldown_s;
    pc->account_rpm = (unsigned)c->account_rpm;
    pc->pace_window_s = (unsigned)c->pace_window_s;
    pc->pace_wait_ms = (uint32_t)c->pace_wait_ms;
    pc->sticky = c->pool_sticky;
    pc->sticky_idle_s = (unsigned)c->sticky_idle_s;
    pc->sticky_max_sessions = (size_t)c->sticky_max_sessions;
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
    pc->api_fallback_base = c->api_fallback_base;
    if (c->first_byte_timeout_ms > 0 && c->first_byte_timeout_ms < (int64_t)pc->refresh_timeout_ms)
        pc->refresh_timeout_ms = (uint32_t)c->first_byte_timeout_ms;
    return 0;
}

const char *k2a_auth_kind_name(k2a_auth_kind_t kind, bool builder_id)
{
    switch (kind) {
    case K2A_AUTH_IDC:
        return builder_id ? "builder_id" : "idc";
    case K2A_AUTH_API_KEY:
        return "api_key";
    case K2A_AUTH_EXTERNAL_IDP:
        return "external_idp";
    default:
        return "social";
    }
}

void k2a_account_config_dispose(k2a_account_config_t *c)
{
    free(c->refresh_token);
    free(c->client_id);
    free(c->client_secret);
    free(c->description);
    free(c->profile_arn);
    free(c->token_endpoint);
    free(c->scope);
    free(c->machine_id);
    memset(c, 0, sizeof(*c));
}

int k2a_account_config_copy(k2a_account_config_t *dst, const k2a_account_config_t *src)
{
    bool oom = false;
    *dst = *src;
    dst->refresh_token = dup_opt(src->refresh_token, &oom);
    dst->client_id = dup_opt(src->client_id, &oom);
    dst->client_secret = dup_opt(src->client_secret, &oom);
    dst->description = dup_opt(src->description != NULL ? src->description : "", &oom);
    dst->profile_arn = dup_opt(src->profile_arn, &oom);
    dst->token_endpoint = dup_opt(src->token_endpoint, &oom);
    dst->scope = dup_opt(src->scope, &oom);
    dst->machine_id = dup_opt(src->machine_id, &oom);
    return oom ? K2A_ENOMEM : 0;
}
