/*
 * kiro-sim's HTTP side: h2o on the caller's libuv loop with one plain or TLS listener, one catch-all handler that
 * dispatches on the exact path, and the small endpoints (Social and IdC refresh, getUsageLimits, /sim/stats,
 * /sim/reset, a help page). generateAssistantResponse lives in generate.c, the 2026 control calls in control.c.
 * Request bodies come whole in req->entity (h2o 2.2.5); small JSON bodies are parsed with yajl_tree.
 *
 * Routes (2026 mode; --legacy-2025 serves the unprefixed 2025 routes only). A path may start with a region,
 * /us-east-1/... or /eu-central-1/...; without one it means us-east-1. A first segment shaped like another AWS region
 * (e.g. /ap-south-1/...) answers 404 {"message":"kiro-sim: no Kiro endpoint in region ...","reason":null}: the real
 * q.<region>.amazonaws.com does not resolve, which a simulator on one port cannot reproduce.
 *   POST /{region}/refreshToken            Social refresh (its answer carries the account's profileArn)
 *   POST /{region}/token                   IdC refresh (no profileArn)
 *   POST /entra/token                      external_idp refresh, form-encoded (control.c)
 *   GET  /{region}/getUsageLimits          optional profileArn checked as a REST ARN (control.c)
 *   GET  /{region}/ListAvailableModels     paged catalog (control.c)
 *   POST /{region}/generateAssistantResponse
 *   POST /{region}/  awsJson: content-type application/x-amz-json-1.0 and x-amz-target
 *        AmazonCodeWhispererStreamingService.GenerateAssistantResponse, AmazonCodeWhispererService.ListAvailableProfiles
 *        or AmazonCodeWhispererService.ListAvailableModels; another target or content type answers 400
 *        {"__type":"com.amazon.coral.service#UnknownOperationException","message":null} (the AWS JSON protocol's answer
 *        to an operation it cannot route; the doc leaves the real body open)
 *   POST /{region}/mcp                     web search, JSON-RPC tools/call web_search (mcp.c)
 * Refresh in another auth region than the account's still works: the doc knows auth hosts are regional but not that
 * refresh tokens are region-bound.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "sim/internal.h"

#define MAX_SMALL_BODY 65536
#define BODY_BEARER_INVALID "{\"message\":\"The bearer token included in the request is invalid.\",\"reason\":null}"
#define BODY_BEARER_INVALID_2026 "{\"message\":\"The bearer token included in the request is invalid.\"}"
#define BODY_UNKNOWN_OPERATION "{\"__type\":\"com.amazon.coral.service#UnknownOperationException\",\"message\":null}"
#define TARGET_GENERATE "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"
#define TARGET_PROFILES "AmazonCodeWhispererService.ListAvailableProfiles"
#define TARGET_MODELS "AmazonCodeWhispererService.ListAvailableModels"
#define AUTH_MASK_SOCIAL (1u << K2A_SIM_AUTH_SOCIAL)
#define AUTH_MASK_IDC ((1u << K2A_SIM_AUTH_SOCIAL) | (1u << K2A_SIM_AUTH_IDC) | (1u << K2A_SIM_AUTH_BUILDERID))
#define PROFILE_ARN_PREFIX "arn:aws:codewhisperer:us-east-1:699475941385:profile/"
#define BASE_CREDITS 50.0
#define TRIAL_CREDITS 500.0

typedef struct st_sim_handler_t {
    h2o_handler_t super;
    k2a_sim_server_t *srv;
} sim_handler_t;

static const char help_text[] =
    "kiro-sim: a Kiro (CodeWhisperer) simulator. {region} = us-east-1 | eu-central-1, optional (us-east-1).\n\n"
    "POST /{region}/refreshToken {\"refreshToken\":\"sim-ok-a\"}          Social refresh\n"
    "POST /{region}/token {clientId,clientSecret,grantType,refreshToken}  IdC refresh\n"
    "POST /entra/token  client_id=..&grant_type=refresh_token&refresh_token=..&scope=offline_access  external_idp\n"
    "GET  /{region}/getUsageLimits          (Authorization: Bearer <accessToken>)\n"
    "GET  /{region}/ListAvailableModels?origin=AI_EDITOR[&maxResults=N][&profileArn=..][&nextToken=..]\n"
    "POST /{region}/generateAssistantResponse  EventStream reply; [[sim:...]] directives in the last user message\n"
    "POST /{region}/  x-amz-target: " TARGET_GENERATE " | " TARGET_PROFILES " | " TARGET_MODELS "\n"
    "GET  /sim/stats, POST /sim/reset[?all=1], GET /sim/last-request (body of the last generate)\n"
    "GET|POST /sim/sse?frames=N&size=S  a finished Anthropic SSE answer (the benchmark's pure-proxy baseline)\n\n"
    "Run `kiro-sim --help` for account kinds and directives.\n";

void k2a_sim_config_init(k2a_sim_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->host = "127.0.0.1";
    cfg->token_ttl = 3600;
    cfg->slow_refresh_ms = 500;
    cfg->bad_refresh_status = 401;
    cfg->overage_status = 402;
    cfg->capacity_status = 429;
    k2a_sim_limits_init(&cfg->limits);
    cfg->limits.modern = true;
    cfg->limits.max_payload = K2A_SIM_DEFAULT_MAX_BODY_BYTES;
}

const char *k2a_sim_body_bearer_invalid(const k2a_sim_server_t *srv)
{
    return srv->cfg.legacy ? BODY_BEARER_INVALID : BODY_BEARER_INVALID_2026;
}

void k2a_sim_add_common_headers(k2a_sim_server_t *srv, h2o_req_t *req, const char *content_type)
{
    char *rid = h2o_mem_alloc_pool(&req->pool, 40);
    uint64_t seq = ++srv->request_seq;
    /* "%08x-5157-4000-8000-%012llx" of (seq * 2654435761) and seq, in hex by hand (the 12 digits grow past 2^48) */
    static const char hex[] = "0123456789abcdef";
    uint32_t hi = (unsigned)(seq * 2654435761u);
    size_t n = 0;
    for (int k = 7; k >= 0; --k)
        rid[n++] = hex[(hi >> (4 * k)) & 15];
    memcpy(rid + n, "-5157-4000-8000-", 16);
    n += 16;
    int digits = 12;
    while (digits < 16 && (seq >> (4 * digits)) != 0)
        ++digits;
    for (int k = digits - 1; k >= 0; --k)
        rid[n++] = hex[(seq >> (4 * k)) & 15];
    rid[n] = '\0';
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-amzn-requestid"), 0, NULL, rid, n);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type, strlen(content_type));
}

static void respond_buf(k2a_sim_server_t *srv, h2o_req_t *req, int status, k2a_buf_t *body)
{
    k2a_sim_respond_json(srv, req, status, body->base != NULL ? body->base : "", body->len, 0);
    k2a_buf_dispose(body);
}

#define RESPOND_LIT(srv, req, status, lit) k2a_sim_respond_json((srv), (req), (status), (lit), sizeof(lit) - 1, 0)

/* Parses a small JSON object body; NULL (after answering 400 with err_body) when absent, too big or malformed. */
static yajl_val parse_small_body(k2a_sim_server_t *srv, h2o_req_t *req, const char *err_body)
{
    char errbuf[128];
    if (req->entity.base == NULL || req->entity.len == 0 || req->entity.len > MAX_SMALL_BODY ||
        memchr(req->entity.base, '\0', req->entity.len) != NULL) {
        k2a_sim_respond_json(srv, req, 400, err_body, strlen(err_body), 0);
        return NULL;
    }
    char *copy = strndup(req->entity.base, req->entity.len);
    yajl_val v = copy != NULL ? yajl_tree_parse(copy, errbuf, sizeof(errbuf)) : NULL;
    free(copy);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        k2a_sim_respond_json(srv, req, 400, err_body, strlen(err_body), 0);
        return NULL;
    }
    return v;
}

static const char *get_str(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_GET_STRING(obj->u.object.values[i]);
    return NULL;
}

uint64_t k2a_sim_now_ms(k2a_sim_server_t *srv)
{
    uv_update_time(srv->loop);
    return uv_now(srv->loop);
}

/* Common refresh logic. Returns the account and the new refresh token (in new_refresh), or NULL when the refresh token
 * is rejected (bad-refresh kind, stale rotated token, unknown name, an auth kind this endpoint does not serve). */
k2a_sim_account_t *k2a_sim_do_refresh(k2a_sim_server_t *srv, const char *refresh_token, char *new_refresh, size_t sz,
                                      const char **access, unsigned auth_mask)
{
    uint32_t gen;
    k2a_sim_account_t *acct = k2a_sim_account_for_refresh(&srv->accounts, refresh_token, &gen);
    if (acct == NULL)
        return NULL;
    ++acct->c.requests;
    if (acct->kind == K2A_SIM_KIND_BADREFRESH || (acct->kind == K2A_SIM_KIND_ROTATE && gen != acct->rotate_gen) ||
        (acct->kind != K2A_SIM_KIND_ROTATE && gen != 0) || (auth_mask & (1u << acct->auth)) == 0) {
        ++acct->c.refresh_failures;
        return NULL;
    }
    if (acct->kind == K2A_SIM_KIND_ROTATE)
        snprintf(new_refresh, sz, "%s-r%u", acct->name, ++acct->rotate_gen);
    else
        snprintf(new_refresh, sz, "%s", acct->name);
    uint32_t ttl = acct->ttl_s != 0 ? acct->ttl_s : srv->cfg.token_ttl;
    *access = k2a_sim_token_issue(&srv->accounts, acct, k2a_sim_now_ms(srv), (uint64_t)ttl * 1000);
    if (*access == NULL)
        return NULL;
    ++acct->c.refreshes;
    return acct;
}

static void profile_arn(const k2a_sim_account_t *acct, char *out, size_t sz)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    char id[13];
    for (const char *p = acct->name; *p != '\0'; ++p)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    for (int i = 0; i < 12; ++i, h /= 36)
        id[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[h % 36];
    id[12] = '\0';
    snprintf(out, sz, PROFILE_ARN_PREFIX "%s", id);
}

static int handle_social_refresh(k2a_sim_server_t *srv, h2o_req_t *req)
{
    static const char bad_request[] = "{\"message\":\"Invalid request: refreshToken is required\",\"reason\":null}";
    yajl_val body = parse_small_body(srv, req, bad_request);
    if (body == NULL)
        return 0;
    const char *rt = get_str(body, "refreshToken"), *access = NULL;
    char new_refresh[512], arn[96];
    k2a_sim_account_t *acct;
    if (rt == NULL || rt[0] == '\0') {
        RESPOND_LIT(srv, req, 400, bad_request);
    } else if (strlen(rt) > 400 ||
               (acct = k2a_sim_do_refresh(srv, rt, new_refresh, sizeof(new_refresh), &access, AUTH_MASK_SOCIAL)) == NULL) {
        /* Rejected refresh tokens: --bad-refresh-status (401 by default; real Social also answers 400) with the body
         * seen in kiro2api issue #4. */
        RESPOND_LIT(srv, req, srv->cfg.bad_refresh_status, "{\"message\":\"Invalid refresh token provided\"}");
    } else {
        k2a_buf_t out = K2A_BUF_INIT(0);
        /* 2025: a per-account ARN of the Social account; 2026: the account's own (the Social default, or the eu one) */
        if (srv->cfg.legacy)
            profile_arn(acct, arn, sizeof(arn));
        else
            snprintf(arn, sizeof(arn), "%s", acct->arn);
        k2a_buf_appendf(&out, "{\"accessToken\":\"%s\",\"expiresIn\":%u,\"profileArn\":\"%s\",\"refreshToken\":\"", access,
                        acct->ttl_s != 0 ? acct->ttl_s : srv->cfg.token_ttl, arn);
        k2a_buf_append_json_escaped(&out, new_refresh, strlen(new_refresh));
        k2a_buf_appendstr(&out, "\"}");
        k2a_sim_respond_json(srv, req, 200, out.base, out.len,
                             acct->kind == K2A_SIM_KIND_SLOWREFRESH ? srv->cfg.slow_refresh_ms : 0);
        k2a_buf_dispose(&out);
    }
    yajl_tree_free(body);
    return 0;
}

static int handle_idc_refresh(k2a_sim_server_t *srv, h2o_req_t *req)
{
    static const char bad_request[] = "{\"error\":\"invalid_request\",\"error_description\":\"Malformed request body\"}";
    yajl_val body = parse_small_body(srv, req, bad_request);
    if (body == NULL)
        return 0;
    const char *cid = get_str(body, "clientId"), *secret = get_str(body, "clientSecret");
    const char *grant = get_str(body, "grantType"), *rt = get_str(body, "refreshToken"), *access = NULL;
    char new_refresh[512];
    k2a_sim_account_t *acct;
    bool client_ok = cid != NULL && secret != NULL && cid[0] != '\0' && secret[0] != '\0';
    if (client_ok && srv->cfg.idc_client_id != NULL && srv->cfg.idc_client_secret != NULL)
        client_ok = strcmp(cid, srv->cfg.idc_client_id) == 0 && strcmp(secret, srv->cfg.idc_client_secret) == 0;
    if (!client_ok) {
        RESPOND_LIT(srv, req, 400, "{\"error\":\"invalid_client\",\"error_description\":\"Invalid client credentials\"}");
    } else if (grant == NULL || strcmp(grant, "refresh_token") != 0) {
        RESPOND_LIT(srv, req, 400,
                    "{\"error\":\"unsupported_grant_type\",\"error_description\":\"grantType must be refresh_token\"}");
    } else if (rt == NULL || rt[0] == '\0' || strlen(rt) > 400 ||
               (acct = k2a_sim_do_refresh(srv, rt, new_refresh, sizeof(new_refresh), &access, AUTH_MASK_IDC)) == NULL) {
        RESPOND_LIT(srv, req, srv->cfg.bad_refresh_status,
                    "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid refresh token provided\"}");
    } else {
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_buf_appendf(&out, "{\"accessToken\":\"%s\",\"expiresIn\":%u,\"refreshToken\":\"", access,
                        acct->ttl_s != 0 ? acct->ttl_s : srv->cfg.token_ttl);
        k2a_buf_append_json_escaped(&out, new_refresh, strlen(new_refresh));
        k2a_buf_appendstr(&out, "\",\"tokenType\":\"Bearer\"}");
        k2a_sim_respond_json(srv, req, 200, out.base, out.len,
                             acct->kind == K2A_SIM_KIND_SLOWREFRESH ? srv->cfg.slow_refresh_ms : 0);
        k2a_buf_dispose(&out);
    }
    yajl_tree_free(body);
    return 0;
}

k2a_sim_token_t *k2a_sim_require_bearer_ex(k2a_sim_server_t *srv, h2o_req_t *req, bool idp_type_needed)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    k2a_sim_token_t *t = NULL;
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len > 11 && strncasecmp(v.base, "Bearer ksk_", 11) == 0) {
            /* an API key is the bearer itself; without "tokentype: API_KEY" Kiro reads it as an OAuth token (XW) */
            k2a_sim_account_t *acct;
            if (k2a_sim_header_is(req, "tokentype", "API_KEY") &&
                (acct = k2a_sim_account_for_key(&srv->accounts, v.base + 7, v.len - 7)) != NULL &&
                (t = k2a_sim_token_find(&srv->accounts, v.base + 7, v.len - 7, k2a_sim_now_ms(srv))) == NULL)
                t = k2a_sim_token_add(&srv->accounts, acct, v.base + 7, v.len - 7, UINT64_MAX);
        } else if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            t = k2a_sim_token_find(&srv->accounts, v.base + 7, v.len - 7, k2a_sim_now_ms(srv));
        }
    }
    if (t != NULL && t->account->auth == K2A_SIM_AUTH_EXTIDP && idp_type_needed &&
        !k2a_sim_header_is(req, "tokentype", "EXTERNAL_IDP"))
        t = NULL;
    if (t == NULL) {
        const char *body = k2a_sim_body_bearer_invalid(srv);
        k2a_sim_respond_json(srv, req, 403, body, strlen(body), 0);
        return NULL;
    }
    ++t->account->c.requests;
    k2a_sim_conn_seen(srv, req, t);
    return t;
}

k2a_sim_token_t *k2a_sim_require_bearer(k2a_sim_server_t *srv, h2o_req_t *req)
{
    return k2a_sim_require_bearer_ex(srv, req, true);
}

/* Start of next month (UTC), as epoch seconds. */
static long long next_reset(void)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (++tm.tm_mon == 12) {
        tm.tm_mon = 0;
        ++tm.tm_year;
    }
    return (long long)timegm(&tm);
}

static int handle_usage(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route)
{
    k2a_sim_token_t *t = k2a_sim_require_bearer(srv, req);
    if (t == NULL)
        return 0;
    k2a_sim_account_t *acct = t->account;
    ++acct->c.usage_calls;
    if (k2a_sim_rest_arn_rejected(srv, req, route, acct, k2a_sim_query_param(req, "profileArn")))
        return 0;
    /* Credits: a base allowance of 50 plus an ACTIVE free trial of 500; generate replies consume their metering usage
     * (base first). Exhausted accounts: both used up and the trial EXPIRED, so the remaining credit is 0. */
    bool exhausted = acct->kind == K2A_SIM_KIND_EXHAUSTED;
    double used = acct->used_credits;
    double base_used = exhausted ? BASE_CREDITS : (used < BASE_CREDITS ? used : BASE_CREDITS);
    double trial_used = exhausted ? TRIAL_CREDITS : (used - base_used < TRIAL_CREDITS ? used - base_used : TRIAL_CREDITS);
    long long reset = next_reset();
    long long days = (reset - (long long)time(NULL)) / 86400;
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendf(&out,
                    "{\"limits\":[],\"usageBreakdownList\":[{\"resourceType\":\"CREDIT\",\"unit\":\"CREDIT\","
                    "\"displayName\":\"Credit\",\"displayNamePlural\":\"Credits\",\"currency\":\"USD\",\"nextDateReset\":%lld,"
                    "\"overageCharges\":0,\"overageRate\":0.04,\"overageCap\":1000,\"overageCapWithPrecision\":1000.0,"
                    "\"currentOverages\":0,\"currentOveragesWithPrecision\":0.0,\"usageLimit\":%d,"
                    "\"usageLimitWithPrecision\":%.1f,\"currentUsage\":%d,\"currentUsageWithPrecision\":%.6f,"
                    "\"freeTrialInfo\":{\"freeTrialExpiry\":%lld.0,\"freeTrialStatus\":\"%s\",\"usageLimit\":%d,"
                    "\"usageLimitWithPrecision\":%.1f,\"currentUsage\":%d,\"currentUsageWithPrecision\":%.6f}}],",
                    reset, (int)BASE_CREDITS, BASE_CREDITS, (int)base_used, base_used, reset, exhausted ? "EXPIRED" : "ACTIVE",
                    (int)TRIAL_CREDITS, TRIAL_CREDITS, (int)trial_used, trial_used);
    k2a_buf_appendstr(&out, "\"userInfo\":{\"email\":\"");
    k2a_buf_append_json_escaped(&out, acct->name, strlen(acct->name));
    k2a_buf_appendstr(&out, "@sim.invalid\",\"userId\":\"d-sim.");
    k2a_buf_append_json_escaped(&out, acct->name, strlen(acct->name));
    k2a_buf_appendf(&out,
                    "\"},\"daysUntilReset\":%lld,\"overageConfiguration\":{\"overageStatus\":\"DISABLED\"},"
                    "\"nextDateReset\":%lld,\"subscriptionInfo\":{\"subscriptionManagementTarget\":\"PURCHASE\","
                    "\"overageCapability\":\"OVERAGE_INCAPABLE\",\"subscriptionTitle\":\"KIRO FREE\","
                    "\"type\":\"Q_DEVELOPER_STANDALONE_FREE\",\"upgradeCapability\":\"UPGRADE_CAPABLE\"}}",
                    days, reset);
    respond_buf(srv, req, 200, &out);
    return 0;
}

static bool is_method(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

static bool is_route(const k2a_sim_route_t *route, const char *p)
{
    return h2o_memis(route->path, route->path_len, p, strlen(p));
}

/* A first path segment shaped like an AWS region: letters, then "-word" parts, then "-<digit>" (us-gov-west-1). */
static bool looks_like_region(const char *s, size_t n)
{
    if (n < 6 || s[0] < 'a' || s[0] > 'z' || s[1] < 'a' || s[1] > 'z' || s[2] != '-' || s[n - 1] < '0' || s[n - 1] > '9' ||
        s[n - 2] != '-')
        return false;
    for (size_t i = 3; i < n - 2; ++i)
        if ((s[i] < 'a' || s[i] > 'z') && s[i] != '-')
            return false;
    return true;
}

/* Splits the region prefix off the path (2026 mode). Returns false after answering 404 for an unknown region. */
static bool parse_route(k2a_sim_server_t *srv, h2o_req_t *req, k2a_sim_route_t *route)
{
    static const char *const regions[] = {K2A_SIM_REGION_US, K2A_SIM_REGION_EU};
    const char *p = req->path_normalized.base;
    size_t n = req->path_normalized.len;
    route->region = K2A_SIM_REGION_US;
    route->path = p;
    route->path_len = n;
    if (srv->cfg.legacy || n < 2 || p[0] != '/')
        return true;
    const char *seg = p + 1, *slash = memchr(seg, '/', n - 1);
    size_t seglen = slash != NULL ? (size_t)(slash - seg) : n - 1;
    for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); ++i) {
        if (seglen == strlen(regions[i]) && memcmp(seg, regions[i], seglen) == 0) {
            route->region = regions[i];
            route->path = slash != NULL ? slash : "/";
            route->path_len = slash != NULL ? n - (size_t)(slash - p) : 1;
            return true;
        }
    }
    if (looks_like_region(seg, seglen)) {
        k2a_buf_t out = K2A_BUF_INIT(0);
        k2a_buf_appendstr(&out, "{\"message\":\"kiro-sim: no Kiro endpoint in region ");
        k2a_buf_append_json_escaped(&out, seg, seglen);
        k2a_buf_appendstr(&out, " (q.<region>.amazonaws.com does not resolve)\",\"reason\":null}");
        respond_buf(srv, req, 404, &out);
        return false;
    }
    return true;
}

/* The endpoint of an awsJson call on POST /{region}/ (K2A_SIM_EP_OTHER when it is not one). */
static k2a_sim_endpoint_t aws_json_endpoint(h2o_req_t *req)
{
    if (!k2a_sim_header_is(req, "content-type", "application/x-amz-json-1.0"))
        return K2A_SIM_EP_OTHER;
    if (k2a_sim_header_is(req, "x-amz-target", TARGET_GENERATE))
        return K2A_SIM_EP_GENERATE;
    if (k2a_sim_header_is(req, "x-amz-target", TARGET_PROFILES))
        return K2A_SIM_EP_PROFILES;
    if (k2a_sim_header_is(req, "x-amz-target", TARGET_MODELS))
        return K2A_SIM_EP_MODELS;
    return K2A_SIM_EP_OTHER;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    k2a_sim_server_t *srv = ((sim_handler_t *)self)->srv;
    bool post = is_method(req, "POST"), get = is_method(req, "GET"), modern = !srv->cfg.legacy, aws_json = false;
    k2a_sim_endpoint_t ep = K2A_SIM_EP_OTHER;
    k2a_sim_route_t route;
    if (!parse_route(srv, req, &route)) {
        ++srv->stats.requests[ep];
        return 0;
    }
    if (is_route(&route, "/refreshToken"))
        ep = K2A_SIM_EP_SOCIAL_REFRESH;
    else if (is_route(&route, "/token"))
        ep = K2A_SIM_EP_IDC_REFRESH;
    else if (is_route(&route, "/getUsageLimits"))
        ep = K2A_SIM_EP_USAGE;
    else if (is_route(&route, "/ListAvailableModels"))
        ep = K2A_SIM_EP_MODELS;
    else if (is_route(&route, "/generateAssistantResponse"))
        ep = K2A_SIM_EP_GENERATE;
    else if (is_route(&route, "/mcp")) /* web search: served in both modes */
        ep = K2A_SIM_EP_MCP;
    else if (modern && is_route(&route, "/entra/token"))
        ep = K2A_SIM_EP_ENTRA;
    else if (modern && post && is_route(&route, "/") && (ep = aws_json_endpoint(req)) != K2A_SIM_EP_OTHER)
        aws_json = true;
    else if (is_route(&route, "/sim/stats"))
        ep = K2A_SIM_EP_STATS;
    else if (is_route(&route, "/sim/reset"))
        ep = K2A_SIM_EP_RESET;
    else if (is_route(&route, "/sim/sse"))
        ep = K2A_SIM_EP_SSE;
    ++srv->stats.requests[ep];
    if (get && is_route(&route, "/sim/last-request")) {
        k2a_sim_respond_json(srv, req, 200, srv->last_generate.base != NULL ? srv->last_generate.base : "{}",
                             srv->last_generate.base != NULL ? srv->last_generate.len : 2, 0);
        return 0;
    }

    switch (ep) {
    case K2A_SIM_EP_SOCIAL_REFRESH:
        if (post)
            return handle_social_refresh(srv, req);
        break;
    case K2A_SIM_EP_IDC_REFRESH:
        if (post)
            return handle_idc_refresh(srv, req);
        break;
    case K2A_SIM_EP_ENTRA:
        if (post)
            return k2a_sim_handle_entra_token(srv, req);
        break;
    case K2A_SIM_EP_USAGE:
        if (get)
            return handle_usage(srv, req, &route);
        break;
    case K2A_SIM_EP_MODELS:
        if (aws_json)
            return k2a_sim_handle_models_2026(srv, req, &route, true);
        if (modern && get)
            return k2a_sim_handle_models_2026(srv, req, &route, false);
        if (!modern && (get || post))
            return k2a_sim_handle_models_2025(srv, req);
        break;
    case K2A_SIM_EP_PROFILES:
        return k2a_sim_handle_profiles(srv, req, &route);
    case K2A_SIM_EP_GENERATE:
        if (post)
            return k2a_sim_handle_generate(srv, req, &route);
        break;
    case K2A_SIM_EP_MCP:
        if (post)
            return k2a_sim_handle_mcp(srv, req);
        break;
    case K2A_SIM_EP_STATS:
        if (get) {
            k2a_buf_t out = K2A_BUF_INIT(0);
            k2a_sim_stats_json(&srv->stats, &srv->accounts, &out);
            respond_buf(srv, req, 200, &out);
            return 0;
        }
        break;
    case K2A_SIM_EP_RESET:
        if (post) {
            bool all = req->query_at != SIZE_MAX &&
                       memmem(req->path.base + req->query_at, req->path.len - req->query_at, "all=1", 5) != NULL;
            uint64_t open = srv->stats.open_streams;
            memset(&srv->stats, 0, sizeof(srv->stats));
            srv->stats.open_streams = srv->stats.max_open_streams = open;
            if (srv->conns != NULL)
                memset(srv->conns, 0, K2A_SIM_CONN_SLOTS * sizeof(*srv->conns));
            if (all)
                k2a_sim_accounts_clear(&srv->accounts);
            else
                k2a_sim_accounts_reset_counters(&srv->accounts);
            RESPOND_LIT(srv, req, 200, "{\"ok\":true}");
            return 0;
        }
        break;
    case K2A_SIM_EP_SSE:
        if (get || post)
            return k2a_sim_handle_sse(srv, req);
        break;
    case K2A_SIM_EP_OTHER:
        if (get && is_route(&route, "/")) {
            req->res.status = 200;
            req->res.reason = "OK";
            k2a_sim_add_common_headers(srv, req, "text/plain; charset=utf-8");
            h2o_send_inline(req, help_text, sizeof(help_text) - 1);
            return 0;
        }
        if (modern && post && is_route(&route, "/")) {
            RESPOND_LIT(srv, req, 400, BODY_UNKNOWN_OPERATION);
            return 0;
        }
        RESPOND_LIT(srv, req, 404, "{\"message\":\"Not Found\",\"reason\":null}");
        return 0;
    default:
        break;
    }
    RESPOND_LIT(srv, req, 405, "{\"message\":\"Method Not Allowed\",\"reason\":null}");
    return 0;
}

static void on_accept(uv_stream_t *listener, int status)
{
    k2a_sim_server_t *srv = listener->data;
    if (status != 0)
        return;
    uv_tcp_t *conn = malloc(sizeof(*conn));
    if (conn == NULL)
        return;
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    h2o_accept(&srv->accept_ctx, h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free));
}

static int setup_tls(k2a_sim_server_t *srv)
{
    SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
    if (ssl == NULL)
        return K2A_ECONFIG;
    if (SSL_CTX_use_certificate_chain_file(ssl, srv->cfg.tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ssl, srv->cfg.tls_key, SSL_FILETYPE_PEM) != 1 || SSL_CTX_check_private_key(ssl) != 1) {
        fprintf(stderr, "kiro-sim: cannot use TLS certificate %s / key %s\n", srv->cfg.tls_cert, srv->cfg.tls_key);
        ERR_print_errors_fp(stderr);
        SSL_CTX_free(ssl);
        return K2A_ECONFIG;
    }
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
    srv->accept_ctx.ssl_ctx = ssl;
    return 0;
}

static int start_listener(k2a_sim_server_t *srv, char *url, size_t urlsz)
{
    struct sockaddr_storage ss;
    int alen = sizeof(ss), r;
    bool v6 = strchr(srv->cfg.host, ':') != NULL;
    if ((v6 ? uv_ip6_addr(srv->cfg.host, srv->cfg.port, (struct sockaddr_in6 *)&ss)
            : uv_ip4_addr(srv->cfg.host, srv->cfg.port, (struct sockaddr_in *)&ss)) != 0) {
        fprintf(stderr, "kiro-sim: --host must be an IP address, got %s\n", srv->cfg.host);
        return K2A_ECONFIG;
    }
    uv_tcp_init(srv->loop, &srv->listener);
    srv->listener.data = srv;
    srv->listener_open = true;
    if ((r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&ss, 0)) != 0 ||
        (r = uv_listen((uv_stream_t *)&srv->listener, 4096, on_accept)) != 0 ||
        (r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &alen)) != 0) {
        fprintf(stderr, "kiro-sim: cannot listen on %s:%d: %s\n", srv->cfg.host, srv->cfg.port, uv_strerror(r));
        return K2A_EIO;
    }
    int port = ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    if (url != NULL)
        snprintf(url, urlsz, "%s://%s%s%s:%d", srv->accept_ctx.ssl_ctx != NULL ? "https" : "http", v6 ? "[" : "", srv->cfg.host,
                 v6 ? "]" : "", port);
    return 0;
}

int k2a_sim_server_create(uv_loop_t *loop, const k2a_sim_config_t *cfg, k2a_sim_server_t **out, char *url, size_t urlsz)
{
    int r;
    k2a_sim_server_t *srv = calloc(1, sizeof(*srv));
    *out = NULL;
    if (srv == NULL)
        return K2A_ENOMEM;
    srv->cfg = *cfg;
    srv->loop = loop;
    k2a_buf_init(&srv->last_generate, 1 << 20);
    srv->conns = calloc(K2A_SIM_CONN_SLOTS, sizeof(*srv->conns));
    r = srv->conns == NULL ? K2A_ENOMEM : k2a_sim_accounts_init(&srv->accounts);
    if (r != 0) {
        free(srv->conns);
        k2a_sim_accounts_dispose(&srv->accounts);
        k2a_buf_dispose(&srv->last_generate);
        free(srv);
        return r;
    }
    h2o_config_init(&srv->globalconf);
    srv->globalconf.server_name = h2o_iovec_init(H2O_STRLIT("kiro-sim"));
    /* Bodies above the Kiro payload limit must still reach the handler to get Kiro's 400, not h2o's 413. */
    size_t max_entity = cfg->limits.max_payload * 4 + (1 << 20);
    srv->globalconf.max_request_entity_size = max_entity < (64u << 20) ? (64u << 20) : max_entity;
    h2o_hostconf_t *host = h2o_config_register_host(&srv->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    sim_handler_t *handler = (sim_handler_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->srv = srv;
    h2o_context_init(&srv->ctx, loop, &srv->globalconf);
    srv->accept_ctx.ctx = &srv->ctx;
    srv->accept_ctx.hosts = srv->globalconf.hosts;
    if ((cfg->tls_cert != NULL || cfg->tls_key != NULL) &&
        (cfg->tls_cert == NULL || cfg->tls_key == NULL || (r = setup_tls(srv)) != 0)) {
        r = K2A_ECONFIG;
        goto Error;
    }
    if ((r = start_listener(srv, url, urlsz)) != 0)
        goto Error;
    *out = srv;
    return 0;
Error:
    k2a_sim_server_close(srv);
    uv_run(loop, UV_RUN_NOWAIT);
    k2a_sim_server_destroy(srv);
    return r;
}

void k2a_sim_server_close(k2a_sim_server_t *srv)
{
    if (srv->listener_open) {
        srv->listener_open = false;
        uv_close((uv_handle_t *)&srv->listener, NULL);
    }
}

void k2a_sim_server_destroy(k2a_sim_server_t *srv)
{
    h2o_context_dispose(&srv->ctx);
    h2o_config_dispose(&srv->globalconf);
    if (srv->accept_ctx.ssl_ctx != NULL)
        SSL_CTX_free(srv->accept_ctx.ssl_ctx);
    k2a_sim_accounts_dispose(&srv->accounts);
    k2a_buf_dispose(&srv->last_generate);
    k2a_sim_fast_dispose(&srv->fast);
    free(srv->conns);
    free(srv);
}
