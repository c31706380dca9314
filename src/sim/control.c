/*
 * kiro-sim's 2026 control plane and request checks (shared/docs/kiro-protocol-2026.md §2, §3, §5, §11, §13):
 *   - ListAvailableProfiles (awsJson POST /{region}/, target AmazonCodeWhispererService.ListAvailableProfiles, body
 *     {"maxResults":10}) answers {"profiles":[{"arn","profileName"}],"nextToken":null}: the account's own profile when
 *     the host region is the account's region (Social accounts included: they get their Social ARN), else an empty
 *     list; an empty list for API keys and for an external_idp token without "tokentype: EXTERNAL_IDP"; Builder ID
 *     accounts get 403 {"message":"User is not authorized to make this call.","reason":null};
 *   - ListAvailableModels, GET /{region}/ListAvailableModels?origin=..&maxResults=..[&profileArn=..][&nextToken=..] or
 *     awsJson with the same fields in the body: the catalog of validate.c for the account's tier (FREE: no opus, no
 *     gpt), 5 models per page (fewer when maxResults asks) with an opaque nextToken, defaultModelId
 *     claude-sonnet-4.5. origin must be AI_EDITOR or KIRO_CLI and maxResults 1..50, else 400 Improperly formed;
 *   - the profileArn of a REST call: the Builder ID placeholder -> 403 {"message":"Invalid token"}, another account's
 *     ARN -> 403 not authorized, another region -> 400 Improperly formed (§2.2, §11);
 *   - the external_idp token endpoint POST /entra/token (form-encoded client_id, grant_type=refresh_token,
 *     refresh_token, scope with offline_access), answering like Entra ID (OAuth 2.0 snake_case, errors as 400
 *     {"error","error_description"}), no profileArn;
 *   - the fingerprint headers of generate calls (§5.1), counted in /sim/stats and logged (names only, never values);
 *   - per-connection statistics of the bearer tokens and accounts seen (§5.3).
 * The 2025 ListAvailableModels (one page, old uppercase ids too) is kept for --legacy-2025.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_tree.h>
#include "sim/internal.h"

#define BODY_MALFORMED "{\"message\":\"Improperly formed request.\",\"reason\":null}"
#define BODY_NOT_AUTHORIZED "{\"message\":\"User is not authorized to make this call.\",\"reason\":null}"
#define BODY_INVALID_TOKEN "{\"message\":\"Invalid token\"}"
#define MODELS_PAGE 5
#define MODELS_TOKEN_PREFIX "sim-models-"
#define DEFAULT_MODEL "claude-sonnet-4.5"
#define MAX_FORM_BODY 65536

#define RESPOND_LIT(srv, req, status, lit) k2a_sim_respond_json((srv), (req), (status), (lit), sizeof(lit) - 1, 0)

/* ---- small helpers ---- */

static const h2o_iovec_t *find_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i >= 0 ? &req->headers.entries[i].value : NULL;
}

bool k2a_sim_header_is(h2o_req_t *req, const char *name, const char *value)
{
    const h2o_iovec_t *v = find_header(req, name);
    return v != NULL && v->len == strlen(value) && strncasecmp(v->base, value, v->len) == 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

char *k2a_sim_url_decode(h2o_req_t *req, const char *s, size_t len)
{
    char *out = h2o_mem_alloc_pool(&req->pool, len + 1), *o = out;
    for (size_t i = 0; i < len; ++i) {
        if (s[i] == '%') {
            int hi, lo;
            if (i + 2 >= len || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
                return NULL;
            *o = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o = s[i] == '+' ? ' ' : s[i];
        }
        if (*o++ == '\0')
            return NULL;
    }
    *o = '\0';
    return out;
}

/* The value of `name` in an a=b&c=d string, decoded; NULL when absent; *bad set on a bad escape. */
static const char *form_value(h2o_req_t *req, const char *s, size_t n, const char *name, bool *bad)
{
    size_t nlen = strlen(name);
    while (n > 0) {
        const char *amp = memchr(s, '&', n);
        size_t seg = amp != NULL ? (size_t)(amp - s) : n;
        const char *eq = memchr(s, '=', seg);
        size_t klen = eq != NULL ? (size_t)(eq - s) : seg;
        if (klen == nlen && memcmp(s, name, nlen) == 0) {
            const char *v = eq != NULL ? k2a_sim_url_decode(req, eq + 1, seg - klen - 1) : "";
            if (v == NULL)
                *bad = true;
            return v;
        }
        if (amp == NULL)
            break;
        n -= seg + 1;
        s = amp + 1;
    }
    return NULL;
}

const char *k2a_sim_query_param(h2o_req_t *req, const char *name)
{
    bool bad = false;
    if (req->query_at == SIZE_MAX || req->query_at + 1 > req->path.len)
        return NULL;
    return form_value(req, req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, &bad);
}

static bool same_region(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

/* The region field of an ARN (arn:aws:codewhisperer:<region>:...), copied into out; false when it has none. */
static bool arn_region(const char *arn, char *out, size_t sz)
{
    const char *p = arn;
    for (int i = 0; i < 3 && p != NULL; ++i)
        if ((p = strchr(p, ':')) != NULL)
            ++p;
    const char *end = p != NULL ? strchr(p, ':') : NULL;
    if (end == NULL || (size_t)(end - p) >= sz)
        return false;
    memcpy(out, p, end - p);
    out[end - p] = '\0';
    return true;
}

bool k2a_sim_rest_arn_rejected(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route, const k2a_sim_account_t *acct,
                               const char *arn)
{
    char region[32];
    if (srv->cfg.legacy || arn == NULL)
        return false;
    if (strcmp(arn, K2A_SIM_ARN_BUILDERID) == 0) {
        RESPOND_LIT(srv, req, 403, BODY_INVALID_TOKEN);
        return true;
    }
    if (strcmp(arn, acct->arn) != 0) {
        RESPOND_LIT(srv, req, 403, BODY_NOT_AUTHORIZED);
        return true;
    }
    if (!arn_region(arn, region, sizeof(region)) || !same_region(region, route->region)) {
        RESPOND_LIT(srv, req, 400, BODY_MALFORMED);
        return true;
    }
    return false;
}

/* A small awsJson body: an object (an empty body counts as {}). NULL after answering 400. *empty is set for none. */
static yajl_val parse_aws_json_body(k2a_sim_server_t *srv, h2o_req_t *req, bool *empty)
{
    char errbuf[128];
    *empty = req->entity.base == NULL || req->entity.len == 0;
    if (*empty)
        return NULL;
    if (req->entity.len > MAX_FORM_BODY || memchr(req->entity.base, '\0', req->entity.len) != NULL) {
        RESPOND_LIT(srv, req, 400, BODY_MALFORMED);
        return NULL;
    }
    char *copy = strndup(req->entity.base, req->entity.len);
    yajl_val v = copy != NULL ? yajl_tree_parse(copy, errbuf, sizeof(errbuf)) : NULL;
    free(copy);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        RESPOND_LIT(srv, req, 400, BODY_MALFORMED);
        return NULL;
    }
    return v;
}

/* Checks that every key of obj is one of names[] with the JSON type types[] (t = string, n = integer). */
static bool keys_ok(yajl_val obj, const char *const *names, const char *types, size_t n)
{
    for (size_t k = 0; k < obj->u.object.len; ++k) {
        size_t i;
        for (i = 0; i < n; ++i)
            if (strcmp(obj->u.object.keys[k], names[i]) == 0)
                break;
        if (i == n)
            return false;
        yajl_val v = obj->u.object.values[k];
        if (types[i] == 't' ? !YAJL_IS_STRING(v) : !YAJL_IS_INTEGER(v))
            return false;
    }
    return true;
}

static const char *json_str(yajl_val obj, const char *key)
{
    for (size_t i = 0; obj != NULL && i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_GET_STRING(obj->u.object.values[i]);
    return NULL;
}

static yajl_val json_get(yajl_val obj, const char *key)
{
    for (size_t i = 0; obj != NULL && i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static void respond_buf(k2a_sim_server_t *srv, h2o_req_t *req, int status, k2a_buf_t *body)
{
    k2a_sim_respond_json(srv, req, status, body->base != NULL ? body->base : "", body->len, 0);
    k2a_buf_dispose(body);
}

/* ---- ListAvailableProfiles ---- */

int k2a_sim_handle_profiles(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route)
{
    static const char *const names[] = {"maxResults", "nextToken"};
    k2a_sim_token_t *t = k2a_sim_require_bearer_ex(srv, req, false);
    bool empty;
    if (t == NULL)
        return 0;
    yajl_val body = parse_aws_json_body(srv, req, &empty);
    if (body == NULL && !empty)
        return 0;
    yajl_val max = json_get(body, "maxResults");
    if (body != NULL &&
        (!keys_ok(body, names, "nt", 2) || (max != NULL && (YAJL_GET_INTEGER(max) < 1 || YAJL_GET_INTEGER(max) > 100)))) {
        yajl_tree_free(body);
        RESPOND_LIT(srv, req, 400, BODY_MALFORMED);
        return 0;
    }
    yajl_tree_free(body);
    const k2a_sim_account_t *acct = t->account;
    if (acct->auth == K2A_SIM_AUTH_BUILDERID) {
        RESPOND_LIT(srv, req, 403, BODY_NOT_AUTHORIZED);
        return 0;
    }
    bool listed = acct->auth != K2A_SIM_AUTH_APIKEY && same_region(acct->region, route->region) &&
                  (acct->auth != K2A_SIM_AUTH_EXTIDP || k2a_sim_header_is(req, "tokentype", "EXTERNAL_IDP"));
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&out, "{\"profiles\":[");
    if (listed)
        k2a_buf_appendf(&out, "{\"arn\":\"%s\",\"profileName\":\"KiroProfile-%s\"}", acct->arn, acct->region);
    k2a_buf_appendstr(&out, "],\"nextToken\":null}");
    respond_buf(srv, req, 200, &out);
    return 0;
}

/* ---- ListAvailableModels ---- */

static void append_model(k2a_buf_t *out, const k2a_sim_model_t *m)
{
    bool claude = strncmp(m->id, "claude-", 7) == 0;
    k2a_buf_appendf(out,
                    "{\"modelId\":\"%s\",\"modelName\":\"%s\",\"description\":\"%s (kiro-sim)\",\"supportedInputTypes\":%s,"
                    "\"tokenLimits\":{\"maxInputTokens\":%u,\"maxOutputTokens\":%u},",
                    m->id, m->name, m->name, m->images ? "[\"TEXT\",\"IMAGE\"]" : "[\"TEXT\"]", m->max_input, m->max_output);
    if (claude)
        k2a_buf_appendstr(out, "\"promptCaching\":{\"supportsPromptCaching\":true,\"maximumCacheCheckpointsPerRequest\":4,"
                               "\"minimumTokensPerCacheCheckpoint\":1024},");
    else
        k2a_buf_appendstr(out, "\"promptCaching\":{\"supportsPromptCaching\":false},");
    if (m->effort_field != NULL)
        k2a_buf_appendf(out,
                        "\"additionalModelRequestFieldsSchema\":{\"type\":\"object\",\"properties\":{\"%s\":{\"type\":\"object\","
                        "\"properties\":{\"effort\":{\"enum\":%s}}}}},",
                        m->effort_field, m->effort_enum);
    k2a_buf_appendf(out, "\"rateMultiplier\":%g,\"rateUnit\":\"Credit\"}", m->rate);
}

int k2a_sim_handle_models_2026(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route, bool aws_json)
{
    static const char *const names[] = {"origin", "maxResults", "profileArn", "nextToken"};
    k2a_sim_token_t *t = k2a_sim_require_bearer(srv, req);
    const char *origin, *arn, *next, *max_s = NULL;
    long long max = 50;
    yajl_val body = NULL;
    bool empty, bad = false;
    if (t == NULL)
        return 0;
    k2a_sim_account_t *acct = t->account;
    ++acct->c.model_calls;
    if (aws_json) {
        if ((body = parse_aws_json_body(srv, req, &empty)) == NULL && !empty)
            return 0;
        bad = body != NULL && !keys_ok(body, names, "tntt", 4);
        origin = json_str(body, "origin");
        arn = json_str(body, "profileArn");
        next = json_str(body, "nextToken");
        if (json_get(body, "maxResults") != NULL)
            max = YAJL_GET_INTEGER(json_get(body, "maxResults"));
    } else {
        origin = k2a_sim_query_param(req, "origin");
        arn = k2a_sim_query_param(req, "profileArn");
        next = k2a_sim_query_param(req, "nextToken");
        if ((max_s = k2a_sim_query_param(req, "maxResults")) != NULL) {
            char *end;
            max = strtoll(max_s, &end, 10);
            bad = max_s[0] < '0' || max_s[0] > '9' || *end != '\0';
        }
    }
    /* the visible catalog: the listed models of the account's tier, then --model ones */
    size_t ncat, n = 0;
    const k2a_sim_model_t *cat = k2a_sim_catalog(&ncat);
    const k2a_sim_model_t *visible[64];
    for (size_t i = 0; i < ncat && n < 64; ++i)
        if (cat[i].listed && !(acct->free_tier && cat[i].premium))
            visible[n++] = &cat[i];
    /* --model ids the catalog already has are listed by it, under the account's tier (a FREE account does not see an
     * opus id given with --model) */
    const char *extras[64];
    size_t nextras = 0;
    for (size_t i = 0; i < srv->cfg.limits.nextra_models && nextras < 64; ++i)
        if (k2a_sim_catalog_find(srv->cfg.limits.extra_models[i]) == NULL)
            extras[nextras++] = srv->cfg.limits.extra_models[i];
    size_t total = n + nextras;
    size_t off = 0;
    if (next != NULL && next[0] != '\0') {
        char *end;
        unsigned long long v = 0;
        if (strncmp(next, MODELS_TOKEN_PREFIX, sizeof(MODELS_TOKEN_PREFIX) - 1) != 0 ||
            (v = strtoull(next + sizeof(MODELS_TOKEN_PREFIX) - 1, &end, 10)) == 0 || *end != '\0' || v >= total)
            bad = true;
        off = (size_t)v;
    }
    if (bad || origin == NULL || (strcmp(origin, "AI_EDITOR") != 0 && strcmp(origin, "KIRO_CLI") != 0) || max < 1 || max > 50) {
        yajl_tree_free(body);
        RESPOND_LIT(srv, req, 400, BODY_MALFORMED);
        return 0;
    }
    if (k2a_sim_rest_arn_rejected(srv, req, route, acct, arn)) {
        yajl_tree_free(body);
        return 0;
    }
    yajl_tree_free(body); /* origin/arn/next point into it: not used below */
    size_t page = max < MODELS_PAGE ? (size_t)max : MODELS_PAGE;
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&out, "{\"models\":[");
    for (size_t i = off; i < total && i < off + page; ++i) {
        if (i != off)
            k2a_buf_appendstr(&out, ",");
        if (i < n) {
            append_model(&out, visible[i]);
        } else {
            const char *id = extras[i - n];
            k2a_buf_appendstr(&out, "{\"modelId\":\"");
            k2a_buf_append_json_escaped(&out, id, strlen(id));
            k2a_buf_appendstr(&out, "\",\"modelName\":\"extra (kiro-sim)\",\"description\":\"--model (kiro-sim)\","
                                    "\"supportedInputTypes\":[\"TEXT\"],\"tokenLimits\":{\"maxInputTokens\":200000,"
                                    "\"maxOutputTokens\":64000},\"rateMultiplier\":1,\"rateUnit\":\"Credit\"}");
        }
    }
    k2a_buf_appendstr(&out, "],\"defaultModelId\":\"" DEFAULT_MODEL "\",\"nextToken\":");
    if (off + page < total)
        k2a_buf_appendf(&out, "\"" MODELS_TOKEN_PREFIX "%zu\"}", off + page);
    else
        k2a_buf_appendstr(&out, "null}");
    respond_buf(srv, req, 200, &out);
    return 0;
}

int k2a_sim_handle_models_2025(k2a_sim_server_t *srv, h2o_req_t *req)
{
    static const struct {
        const char *id, *name;
        double rate;
    } models[] = {
        {"auto", "Auto", 1.0},
        {"claude-sonnet-4.5", "Claude Sonnet 4.5", 1.3},
        {"claude-sonnet-4.6", "Claude Sonnet 4.6", 1.3},
        {"claude-sonnet-4", "Claude Sonnet 4", 1.3},
        {"claude-sonnet-5", "Claude Sonnet 5", 1.3},
        {"claude-opus-4.5", "Claude Opus 4.5", 2.2},
        {"claude-opus-4.6", "Claude Opus 4.6", 2.2},
        {"claude-opus-4.7", "Claude Opus 4.7", 2.2},
        {"claude-haiku-4.5", "Claude Haiku 4.5", 0.4},
        {"CLAUDE_SONNET_4_5_20250929_V1_0", "Claude Sonnet 4.5 (2025-09-29)", 1.3},
        {"CLAUDE_SONNET_4_20250514_V1_0", "Claude Sonnet 4 (2025-05-14)", 1.3},
        {"CLAUDE_3_7_SONNET_20250219_V1_0", "Claude 3.7 Sonnet", 1.0},
        {"CLAUDE_3_5_HAIKU_20241022_V1_0", "Claude 3.5 Haiku", 0.4},
    };
    k2a_sim_token_t *t = k2a_sim_require_bearer(srv, req);
    if (t == NULL)
        return 0;
    ++t->account->c.model_calls;
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&out, "{\"models\":[");
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); ++i) {
        bool big = strstr(models[i].id, "4.6") != NULL;
        k2a_buf_appendf(&out,
                        "%s{\"modelId\":\"%s\",\"modelName\":\"%s\",\"description\":\"%s (kiro-sim)\",\"rateMultiplier\":%.1f,"
                        "\"rateUnit\":\"Credit\",\"supportedInputTypes\":[\"TEXT\",\"IMAGE\"],"
                        "\"tokenLimits\":{\"maxInputTokens\":%d,\"maxOutputTokens\":64000}}",
                        i ? "," : "", models[i].id, models[i].name, models[i].name, models[i].rate, big ? 1000000 : 200000);
    }
    for (size_t i = 0; i < srv->cfg.limits.nextra_models; ++i) {
        k2a_buf_appendstr(&out, ",{\"modelId\":\"");
        k2a_buf_append_json_escaped(&out, srv->cfg.limits.extra_models[i], strlen(srv->cfg.limits.extra_models[i]));
        k2a_buf_appendstr(&out, "\",\"modelName\":\"extra (kiro-sim)\",\"supportedInputTypes\":[\"TEXT\"],"
                                "\"tokenLimits\":{\"maxInputTokens\":200000,\"maxOutputTokens\":64000}}");
    }
    k2a_buf_appendstr(&out, "],\"defaultModel\":{\"modelId\":\"auto\",\"modelName\":\"Auto\"}}");
    respond_buf(srv, req, 200, &out);
    return 0;
}

/* ---- external_idp (Entra ID) token endpoint ---- */

static bool has_word(const char *s, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = s; (p = strstr(p, word)) != NULL; p += n)
        if ((p == s || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' '))
            return true;
    return false;
}

int k2a_sim_handle_entra_token(k2a_sim_server_t *srv, h2o_req_t *req)
{
#define ENTRA_ERR(code, desc) "{\"error\":\"" code "\",\"error_description\":\"" desc "\"}"
    bool bad = false;
    const char *s = req->entity.base != NULL ? req->entity.base : "";
    size_t n = req->entity.base != NULL ? req->entity.len : 0;
    if (n > MAX_FORM_BODY) {
        RESPOND_LIT(srv, req, 400, ENTRA_ERR("invalid_request", "The request body is too large."));
        return 0;
    }
    const char *cid = form_value(req, s, n, "client_id", &bad), *grant = form_value(req, s, n, "grant_type", &bad);
    const char *rt = form_value(req, s, n, "refresh_token", &bad), *scope = form_value(req, s, n, "scope", &bad);
    if (bad || !k2a_sim_header_is(req, "content-type", "application/x-www-form-urlencoded") || cid == NULL || cid[0] == '\0') {
        RESPOND_LIT(srv, req, 400,
                    ENTRA_ERR("invalid_request", "The request body must be form-encoded and contain the parameter 'client_id'."));
        return 0;
    }
    if (grant == NULL || strcmp(grant, "refresh_token") != 0) {
        RESPOND_LIT(srv, req, 400, ENTRA_ERR("unsupported_grant_type", "The grant_type must be refresh_token."));
        return 0;
    }
    if (scope == NULL || !has_word(scope, "offline_access")) {
        RESPOND_LIT(srv, req, 400, ENTRA_ERR("invalid_scope", "The scope must include offline_access."));
        return 0;
    }
    const char *access = NULL;
    char new_refresh[512];
    k2a_sim_account_t *acct = NULL;
    if (rt == NULL || rt[0] == '\0' || strlen(rt) > 400 ||
        (acct = k2a_sim_do_refresh(srv, rt, new_refresh, sizeof(new_refresh), &access, 1u << K2A_SIM_AUTH_EXTIDP)) == NULL) {
        RESPOND_LIT(srv, req, 400, ENTRA_ERR("invalid_grant", "The provided refresh token is invalid or expired."));
        return 0;
    }
    k2a_buf_t out = K2A_BUF_INIT(0);
    uint32_t ttl = acct->ttl_s != 0 ? acct->ttl_s : srv->cfg.token_ttl;
    k2a_buf_appendf(&out, "{\"token_type\":\"Bearer\",\"scope\":\"");
    k2a_buf_append_json_escaped(&out, scope, strlen(scope));
    k2a_buf_appendf(&out, "\",\"expires_in\":%u,\"ext_expires_in\":%u,\"access_token\":\"%s\",\"refresh_token\":\"", ttl, ttl,
                    access);
    k2a_buf_append_json_escaped(&out, new_refresh, strlen(new_refresh));
    k2a_buf_appendstr(&out, "\"}");
    respond_buf(srv, req, 200, &out);
    return 0;
#undef ENTRA_ERR
}

/* ---- fingerprint headers of generate calls ---- */

static bool is_uuid(const h2o_iovec_t *v)
{
    if (v->len != 36)
        return false;
    for (size_t i = 0; i < 36; ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? v->base[i] != '-' : hexval(v->base[i]) < 0)
            return false;
    }
    return true;
}

/* "KiroIDE-<version>-<64 lower-case hex machineId>" somewhere in the value, ending it or followed by a space. */
static bool has_kiro_ide(const h2o_iovec_t *v)
{
    const char *p = v->base, *end = v->base + v->len;
    while ((p = memmem(p, end - p, "KiroIDE-", 8)) != NULL) {
        const char *q = p + 8, *ver = q;
        while (q < end && ((*q >= '0' && *q <= '9') || *q == '.'))
            ++q;
        if (q > ver && *ver != '.' && q < end && *q == '-') {
            const char *id = ++q;
            while (q < end && ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'f')))
                ++q;
            if (q - id == 64 && (q == end || *q == ' '))
                return true;
        }
        p += 8;
    }
    return false;
}

/* The digits of [p, end) as a number, when there are 1 to 9 of them and nothing else; -1 otherwise. */
static long plain_uint(const char *p, const char *end)
{
    long x = 0;
    if (p == end || end - p > 9)
        return -1;
    for (; p < end; ++p) {
        if (*p < '0' || *p > '9')
            return -1;
        x = x * 10 + (*p - '0');
    }
    return x;
}

static bool is_sdk_request(const h2o_iovec_t *v)
{
    unsigned a, m;
    char tail;
    char buf[64];
    if (v->len >= sizeof(buf))
        return false;
    /* the form every SDK sends, "attempt=<digits>; max=<digits>", read without sscanf (its answer for it is the same) */
    const char *semi = v->len > 8 ? memchr(v->base, ';', v->len) : NULL;
    if (semi != NULL && memcmp(v->base, "attempt=", 8) == 0 && v->base + v->len - semi > 6 && memcmp(semi, "; max=", 6) == 0) {
        long pa = plain_uint(v->base + 8, semi), pm = plain_uint(semi + 6, v->base + v->len);
        if (pa >= 0 && pm >= 0)
            return pa >= 1 && pm >= pa;
    }
    memcpy(buf, v->base, v->len);
    buf[v->len] = '\0';
    return sscanf(buf, "attempt=%u; max=%u%c", &a, &m, &tail) == 2 && a >= 1 && m >= a;
}

const char *k2a_sim_check_headers(k2a_sim_server_t *srv, h2o_req_t *req)
{
    static const char *const names[] = {"x-amzn-codewhisperer-optout",
                                        "x-amzn-kiro-agent-mode",
                                        "amz-sdk-invocation-id",
                                        "amz-sdk-request",
                                        "user-agent",
                                        "x-amz-user-agent"};
    const char *first = NULL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        const h2o_iovec_t *v = find_header(req, names[i]);
        bool ok = v != NULL;
        switch (ok ? i : 99) {
        case 0:
            ok = k2a_sim_header_is(req, names[i], "true") || k2a_sim_header_is(req, names[i], "false");
            break;
        case 1:
            ok = k2a_sim_header_is(req, names[i], "vibe") || k2a_sim_header_is(req, names[i], "spec");
            break;
        case 2:
            ok = is_uuid(v);
            break;
        case 3:
            ok = is_sdk_request(v);
            break;
        case 4:
            ok = memmem(v->base, v->len, "aws-sdk-js/", 11) != NULL && has_kiro_ide(v);
            break;
        case 5:
            ok = v->len > 11 && memcmp(v->base, "aws-sdk-js/", 11) == 0 && has_kiro_ide(v);
            break;
        default:
            break;
        }
        if (!ok) {
            k2a_sim_stats_header(&srv->stats, names[i]);
            fprintf(stderr, "kiro-sim: header %s missing or malformed on a generate call\n", names[i]);
            if (first == NULL)
                first = names[i];
        }
    }
    return first;
}

/* ---- connection statistics ---- */

static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
    return h | 1; /* never 0 */
}

static bool remember(uint64_t *set, uint32_t *n, uint64_t h)
{
    for (uint32_t i = 0; i < *n && i < K2A_SIM_CONN_KEEP; ++i)
        if (set[i] == h)
            return false;
    if (*n >= K2A_SIM_CONN_KEEP)
        return false; /* counts saturate at K2A_SIM_CONN_KEEP */
    set[(*n)++] = h;
    return true;
}

void k2a_sim_conn_seen(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_token_t *t)
{
    if (srv->conns == NULL || req->conn == NULL)
        return;
    uint64_t key = req->conn->id + 1;
    k2a_sim_conn_seen_t *slot = &srv->conns[key % K2A_SIM_CONN_SLOTS];
    if (slot->conn_id != key) {
        memset(slot, 0, sizeof(*slot));
        slot->conn_id = key;
    }
    k2a_sim_stats_t *s = &srv->stats;
    if (remember(slot->accounts, &slot->naccounts, fnv(t->account->name, strlen(t->account->name)))) {
        if (slot->naccounts == 2)
            ++s->conns_multi_account;
        if (slot->naccounts > s->max_accounts_per_conn)
            s->max_accounts_per_conn = slot->naccounts;
    }
    if (remember(slot->tokens, &slot->ntokens, fnv(t->token, strlen(t->token)))) {
        if (slot->ntokens == 2)
            ++s->conns_multi_token;
        if (slot->ntokens > s->max_tokens_per_conn)
            s->max_tokens_per_conn = slot->ntokens;
    }
}
