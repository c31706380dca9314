/*
 * ListAvailableProfiles (kiro-protocol-2026 §2.3, variant A): an IdC or external_idp account that has no
 * configured profileArn and got none from its refresh asks the data plane for its profile, in its own
 * region first and then in the other one. The first non-blank, well-formed ARN is adopted and persisted
 * with the account's state; 403 or an empty list everywhere means "no enterprise profile" (the Builder ID
 * placeholder is sent then). Any other failure sends the placeholder for now and is retried after
 * K2A_LAP_RETRY_MS, at the next refresh. Runs inside the account's refresh job, so the requests waiting
 * for the token get the ARN with it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/fingerprint.h"
#include "pool/acct_state.h"
#include "pool/internal.h"

#define PROFILES_BODY_MAX (256 * 1024)
#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

enum { FOUND = 0, NONE = 1, FAILED = 2, CANCELED = 3 };

/* The first non-blank profiles[].arn that parses, copied into arn (256 bytes). */
static bool first_arn(const char *body, size_t len, char arn[256])
{
    if (body == NULL || len == 0 || len > PROFILES_BODY_MAX)
        return false;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return false;
    memcpy(copy, body, len);
    copy[len] = '\0';
    yajl_val v = yajl_tree_parse(copy, NULL, 0);
    free(copy);
    const char *path[] = {"profiles", NULL};
    yajl_val list = v != NULL ? yajl_tree_get(v, path, yajl_t_array) : NULL;
    bool found = false;
    for (size_t i = 0; list != NULL && i < list->u.array.len && !found; ++i) {
        const char *ap[] = {"arn", NULL};
        yajl_val s = yajl_tree_get(list->u.array.values[i], ap, yajl_t_string);
        const char *t = s != NULL ? YAJL_GET_STRING(s) : NULL;
        if (t == NULL || t[strspn(t, " \t\r\n")] == '\0' || strlen(t) >= 256)
            continue;
        if (k2a_arn_parse(t, NULL) != 0) {
            k2a_debug("pool: ListAvailableProfiles: skipping a malformed arn");
            continue;
        }
        snprintf(arn, 256, "%s", t);
        found = true;
    }
    yajl_tree_free(v);
    return found;
}

/* One call in one region. */
static int ask(k2a_account_t *a, const char *region, const char *token, char arn[256], char *why, size_t whysz)
{
    k2a_pool_t *p = a->pool;
    const k2a_region_urls_t *u = k2a_pool_region_urls(p, region);
    char xamz[200], ua[360], invocation[37];
    k2a_buf_t auth = K2A_BUF_INIT(0), resp = K2A_BUF_INIT(PROFILES_BODY_MAX);
    k2a_fp_rest_ua(p->kiro_version, a->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    k2a_rand_uuid4(invocation);
    if (k2a_buf_appendstr(&auth, "Bearer ") != 0 || k2a_buf_appendstr(&auth, token) != 0) {
        k2a_buf_dispose(&auth);
        snprintf(why, whysz, "out of memory");
        return FAILED;
    }
    k2a_http_header_t h[10];
    size_t nh = 0;
    h[nh++] = HDR("content-type", "application/x-amz-json-1.0");
    h[nh++] = HDR("x-amz-target", "AmazonCodeWhispererService.ListAvailableProfiles");
    h[nh++] = HDR("x-amz-user-agent", xamz);
    h[nh++] = HDR("user-agent", ua);
    h[nh++] = HDR("amz-sdk-invocation-id", invocation);
    h[nh++] = HDR("amz-sdk-request", "attempt=1; max=1");
    h[nh++] = (k2a_http_header_t){K2A_STRLIT("Authorization"), k2a_str(auth.base, auth.len)};
    h[nh++] = HDR("Connection", "close");
    const char *tt = k2a_account_token_type(a);
    if (tt != NULL)
        h[nh++] = HDR("tokentype", tt);
    static const char body[] = "{\"maxResults\":10}";
    int status = 0;
    int r = k2a_pool_http_call(p, a, &u->root, "POST", h, nh, body, sizeof(body) - 1, &resp, PROFILES_BODY_MAX, &status);
    k2a_buf_dispose(&auth);
    int out;
    if (r == K2A_ECANCELED) {
        out = CANCELED;
    } else if (r != 0) {
        snprintf(why, whysz, "%s: %s", region, k2a_strerror(r));
        out = FAILED;
    } else if (status == 200) {
        out = first_arn(resp.base, resp.len, arn) ? FOUND : NONE;
        snprintf(why, whysz, "%s: no profile", region);
    } else if (status == 403) {
        snprintf(why, whysz, "%s: 403", region);
        out = NONE;
    } else {
        snprintf(why, whysz, "%s: HTTP %d", region, status);
        out = FAILED;
    }
    k2a_buf_dispose(&resp);
    return out;
}

void k2a_account_resolve_profile(k2a_account_t *a)
{
    const char *first = a->cfg.api_region[0] != '\0' ? a->cfg.api_region : k2a_account_auth_region(a);
    int fi = k2a_region_index(first);
    if (fi < 0)
        fi = 0;
    char *token = a->access_token != NULL ? strdup(a->access_token) : NULL; /* the account's copy may change while we wait */
    if (token == NULL)
        return;
    bool failed = false;
    char arn[256], why[2][96] = {"", ""};
    int res = NONE;
    for (int k = 0; k < K2A_NREGIONS && res != FOUND; ++k) {
        const char *region = k2a_regions[(fi + k) % K2A_NREGIONS];
        res = ask(a, region, token, arn, why[k < 2 ? k : 1], sizeof(why[0]));
        if (res == CANCELED) {
            free(token);
            return;
        }
        failed |= res == FAILED;
    }
    free(token);
    if (a->removed)
        return;
    if (res == FOUND) {
        a->lap_state = k2a_acct_profile_set(a, arn, K2A_ARN_SRC_PROFILES) == 0 ? K2A_LAP_DONE : K2A_LAP_FAILED;
        a->lap_retry_at = k2a_pool_now_ms() + K2A_LAP_RETRY_MS;
        k2a_info("pool: %s: profileArn %s (ListAvailableProfiles)", a->label, arn);
    } else if (failed) {
        a->lap_state = K2A_LAP_FAILED;
        a->lap_retry_at = k2a_pool_now_ms() + K2A_LAP_RETRY_MS;
        k2a_warn("pool: %s: ListAvailableProfiles failed (%s; %s): sending the Builder ID placeholder ARN until it answers",
                 a->label, why[0], why[1]);
    } else {
        a->lap_state = K2A_LAP_NONE;
        k2a_info("pool: %s: ListAvailableProfiles knows no profile (%s; %s): sending the Builder ID placeholder ARN", a->label,
                 why[0], why[1]);
    }
}
