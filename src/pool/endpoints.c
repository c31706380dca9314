/*
 * Where and how each account is called: the per-region endpoint table (KIRO_API_BASE and the refresh URLs
 * with `{region}` filled in, parsed once at pool creation), the account's data-plane and auth regions, the
 * profileArn it sends (generate vs REST) and its tokentype header. The rules themselves are the pure
 * functions of region.h; this file applies them to an account.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "pool/internal.h"

static int fill_url(const char *tmpl, const char *region, const char *suffix, char **str, k2a_url_t *url)
{
    k2a_buf_t b = K2A_BUF_INIT(64 * 1024);
    int r = k2a_region_fill(tmpl, region, &b);
    if (r == 0 && suffix != NULL) {
        while (b.len > 0 && b.base[b.len - 1] == '/') /* base + "/path": one slash */
            --b.len;
        r = k2a_buf_appendstr(&b, suffix);
    }
    if (r == 0 && k2a_buf_cstr(&b) == NULL)
        r = K2A_ENOMEM;
    if (r != 0) {
        k2a_buf_dispose(&b);
        return r;
    }
    *str = b.base;
    return k2a_url_parse(b.base, b.len, url);
}

int k2a_pool_endpoints_init(k2a_pool_t *p, char *err, size_t errlen)
{
    for (int i = 0; i < K2A_NREGIONS; ++i) {
        k2a_region_urls_t *u = &p->region_urls[i];
        const char *rg = k2a_regions[i];
        u->name = rg;
        int r;
        if ((r = fill_url(p->api_base, rg, "", &u->base, &u->root)) != 0 ||
            (r = fill_url(p->api_base, rg, "/generateAssistantResponse", &u->generate_str, &u->generate)) != 0 ||
            (r = fill_url(p->api_base, rg, "/", &u->root_str, &u->root)) != 0 ||
            (r = fill_url(p->api_base, rg, "/mcp", &u->mcp_str, &u->mcp)) != 0) {
            if (r == K2A_ENOMEM)
                return r;
            snprintf(err, errlen, "KIRO_API_BASE: not an http(s) URL (with {region} = %s)", rg);
            return K2A_ECONFIG;
        }
        /* the base without a trailing slash, for callers that append their own path */
        size_t n = strlen(u->base);
        while (n > 0 && u->base[n - 1] == '/')
            u->base[--n] = '\0';
        if (p->api_fallback_base != NULL && p->api_fallback_base[0] != '\0' &&
            (r = fill_url(p->api_fallback_base, rg, "/generateAssistantResponse", &u->fallback_str, &u->fallback)) != 0) {
            if (r == K2A_ENOMEM)
                return r;
            snprintf(err, errlen, "KIRO_API_FALLBACK_BASE: not an http(s) URL (with {region} = %s)", rg);
            return K2A_ECONFIG;
        }
        if ((r = fill_url(p->social_url, rg, NULL, &u->social_str, &u->social)) != 0) {
            if (r == K2A_ENOMEM)
                return r;
            snprintf(err, errlen, "KIRO_SOCIAL_REFRESH_URL: not an http(s) URL (with {region} = %s)", rg);
            return K2A_ECONFIG;
        }
        if ((r = fill_url(p->idc_url, rg, NULL, &u->idc_str, &u->idc)) != 0) {
            if (r == K2A_ENOMEM)
                return r;
            snprintf(err, errlen, "KIRO_IDC_REFRESH_URL: not an http(s) URL (with {region} = %s)", rg);
            return K2A_ECONFIG;
        }
    }
    return 0;
}

void k2a_pool_endpoints_dispose(k2a_pool_t *p)
{
    for (int i = 0; i < K2A_NREGIONS; ++i) {
        k2a_region_urls_t *u = &p->region_urls[i];
        free(u->base);
        free(u->generate_str);
        free(u->root_str);
        free(u->mcp_str);
        free(u->social_str);
        free(u->idc_str);
        free(u->fallback_str);
        memset(u, 0, sizeof(*u));
    }
}

const k2a_region_urls_t *k2a_pool_region_urls(const k2a_pool_t *p, const char *region)
{
    int i = k2a_region_index(region);
    return &p->region_urls[i >= 0 ? i : 0];
}

const k2a_url_t *k2a_pool_api_url(k2a_pool_t *p, const char *region, const char *path, k2a_buf_t *scratch_str, k2a_url_t *scratch)
{
    const k2a_region_urls_t *u = k2a_pool_region_urls(p, region);
    if (strcmp(path, "/generateAssistantResponse") == 0)
        return &u->generate;
    if (strcmp(path, "/") == 0)
        return &u->root;
    if (strcmp(path, "/mcp") == 0)
        return &u->mcp;
    k2a_buf_reset(scratch_str);
    if (k2a_buf_appendstr(scratch_str, u->base) != 0 || k2a_buf_appendstr(scratch_str, path) != 0 ||
        k2a_buf_cstr(scratch_str) == NULL || k2a_url_parse(scratch_str->base, scratch_str->len, scratch) != 0)
        return NULL;
    return scratch;
}

k2a_arn_kind_t k2a_account_arn_kind(const k2a_account_t *a)
{
    switch (a->cfg.auth) {
    case K2A_AUTH_IDC:
        return a->cfg.builder_id ? K2A_ARN_KIND_BUILDER_ID : K2A_ARN_KIND_IDC;
    case K2A_AUTH_API_KEY:
        return K2A_ARN_KIND_API_KEY;
    case K2A_AUTH_EXTERNAL_IDP:
        return K2A_ARN_KIND_EXTERNAL_IDP;
    default:
        return K2A_ARN_KIND_SOCIAL;
    }
}

const char *k2a_account_generate_arn(const k2a_account_t *a)
{
    return k2a_arn_for_generate(k2a_account_arn_kind(a), a->cfg.profile_arn, a->profile_arn);
}

const char *k2a_account_rest_arn(const k2a_account_t *a)
{
    return k2a_arn_for_rest(k2a_account_arn_kind(a), a->cfg.profile_arn, a->profile_arn);
}

const char *k2a_account_region(const k2a_account_t *a)
{
    char buf[K2A_REGION_MAX];
    const char *r = k2a_data_region(k2a_account_generate_arn(a), a->cfg.api_region, a->cfg.region, buf);
    int i = k2a_region_index(r);
    return k2a_regions[i >= 0 ? i : 0]; /* a static name, never buf */
}

const char *k2a_account_auth_region(const k2a_account_t *a)
{
    int i = k2a_region_index(a->cfg.region);
    return k2a_regions[i >= 0 ? i : 0];
}

const char *k2a_account_token_type(const k2a_account_t *a)
{
    switch (a->cfg.auth) {
    case K2A_AUTH_API_KEY:
        return "API_KEY";
    case K2A_AUTH_EXTERNAL_IDP:
        return "EXTERNAL_IDP";
    default:
        return NULL;
    }
}

bool k2a_account_wants_profiles(const k2a_account_t *a, int64_t now)
{
    k2a_arn_kind_t kind = k2a_account_arn_kind(a);
    if (kind != K2A_ARN_KIND_IDC && kind != K2A_ARN_KIND_EXTERNAL_IDP)
        return false;
    if (a->cfg.profile_arn != NULL || a->profile_arn != NULL)
        return false;
    return a->lap_state == K2A_LAP_NOT_TRIED || (a->lap_state == K2A_LAP_FAILED && now >= a->lap_retry_at);
}

const char *k2a_lease_rest_arn(const k2a_lease_t *lease)
{
    const char *arn = lease->profile_arn;
    return arn != NULL && strcmp(arn, K2A_ARN_BUILDER_ID) != 0 ? arn : NULL;
}
