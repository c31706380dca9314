/*
 * kiro-sim's accounts, access tokens and counters. An account is named by its original refresh token
 * ("sim-<kind>-<x>"), created on its first refresh, or by its API key ("ksk_sim-<x>"), created on its first call;
 * the kind decides its behaviour (see main.c --help). Besides its scripted behaviour, an account has an auth kind
 * (Social, IdC enterprise, Builder ID, external_idp, API key), a region and a tier, which give its profileArn:
 *   Social kinds (every 2025 kind, sim-social-, sim-free-, the state kinds)  K2A_SIM_ARN_SOCIAL (us-east-1)
 *   sim-socialeu-                                                           K2A_SIM_ARN_SOCIAL_EU (eu-central-1)
 *   sim-idc-, sim-idceu-, sim-extidp-  arn:aws:codewhisperer:<region>:610548660232:profile/<12 chars from the name>
 *   sim-builderid-                                                          K2A_SIM_ARN_BUILDERID (the placeholder)
 *   ksk_sim-                                                                none
 * Access tokens are random opaque strings mapped to their account and expiry in a chained hash table; expired
 * tokens are swept whenever the table has doubled since the last sweep, so memory follows the live tokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "core/errors.h"
#include "sim/internal.h"
#include "core/rand.h"

static const struct {
    const char *prefix;
    k2a_sim_kind_t kind;
} kinds[] = {
    {"sim-ok-", K2A_SIM_KIND_OK},
    {"sim-rotate-", K2A_SIM_KIND_ROTATE},
    {"sim-badrefresh-", K2A_SIM_KIND_BADREFRESH},
    {"sim-exhausted-", K2A_SIM_KIND_EXHAUSTED},
    {"sim-429-", K2A_SIM_KIND_429},
    {"sim-403once-", K2A_SIM_KIND_403ONCE},
    {"sim-403-", K2A_SIM_KIND_403},
    {"sim-500-", K2A_SIM_KIND_500},
    {"sim-slowrefresh-", K2A_SIM_KIND_SLOWREFRESH},
    {"sim-social-", K2A_SIM_KIND_SOCIAL},
    {"sim-socialeu-", K2A_SIM_KIND_SOCIALEU},
    {"sim-idc-", K2A_SIM_KIND_IDC},
    {"sim-idceu-", K2A_SIM_KIND_IDCEU},
    {"sim-builderid-", K2A_SIM_KIND_BUILDERID},
    {"sim-free-", K2A_SIM_KIND_FREE},
    {"sim-extidp-", K2A_SIM_KIND_EXTIDP},
    {"sim-overage-", K2A_SIM_KIND_OVERAGE},
    {"sim-suspicious-", K2A_SIM_KIND_SUSPICIOUS},
    {"sim-suspended-", K2A_SIM_KIND_SUSPENDED},
    {"sim-capacity-", K2A_SIM_KIND_CAPACITY},
    {"sim-423-", K2A_SIM_KIND_LOCKED},
};

#define KEY_PREFIX "ksk_sim-"
#define MAX_NAME 400

static uint64_t hash_str(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t next_random(uint64_t *state)
{
    return k2a_splitmix64(state);
}

int k2a_sim_accounts_init(k2a_sim_accounts_t *a)
{
    memset(a, 0, sizeof(*a));
    a->nabuckets = 64;
    a->ntbuckets = 1024;
    a->purge_at = 1024;
    a->abuckets = calloc(a->nabuckets, sizeof(*a->abuckets));
    a->tbuckets = calloc(a->ntbuckets, sizeof(*a->tbuckets));
    if (a->abuckets == NULL || a->tbuckets == NULL)
        return K2A_ENOMEM;
    if (getrandom(&a->rng, sizeof(a->rng), 0) != sizeof(a->rng))
        a->rng = (uint64_t)(uintptr_t)a ^ 0x1234567;
    return 0;
}

void k2a_sim_accounts_clear(k2a_sim_accounts_t *a)
{
    for (size_t i = 0; i < a->ntbuckets; ++i) {
        for (k2a_sim_token_t *t = a->tbuckets[i], *n; t != NULL; t = n) {
            n = t->next;
            free(t->token);
            free(t);
        }
        a->tbuckets[i] = NULL;
    }
    for (size_t i = 0; i < a->nabuckets; ++i) {
        for (k2a_sim_account_t *x = a->abuckets[i], *n; x != NULL; x = n) {
            n = x->next;
            free(x->name);
            free(x->hints);
            free(x);
        }
        a->abuckets[i] = NULL;
    }
    a->naccounts = a->ntokens = 0;
}

void k2a_sim_accounts_dispose(k2a_sim_accounts_t *a)
{
    if (a->abuckets != NULL && a->tbuckets != NULL)
        k2a_sim_accounts_clear(a);
    free(a->abuckets);
    free(a->tbuckets);
    a->abuckets = NULL;
    a->tbuckets = NULL;
}

void k2a_sim_accounts_reset_counters(k2a_sim_accounts_t *a)
{
    for (size_t i = 0; i < a->nabuckets; ++i)
        for (k2a_sim_account_t *x = a->abuckets[i]; x != NULL; x = x->next) {
            memset(&x->c, 0, sizeof(x->c));
            memset(&x->last, 0, sizeof(x->last));
            free(x->hints);
            x->hints = NULL;
        }
}

int k2a_sim_parse_kind_ex(const char *refresh_token, k2a_sim_kind_t *kind, uint32_t *ttl_s)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); ++i) {
        size_t n = strlen(kinds[i].prefix);
        if (strncmp(refresh_token, kinds[i].prefix, n) == 0 && refresh_token[n] != '\0') {
            *kind = kinds[i].kind;
            return 0;
        }
    }
    /* sim-ttl<N>-<x>: N seconds, 1..86400, no leading zero */
    if (strncmp(refresh_token, "sim-ttl", 7) == 0 && refresh_token[7] >= '1' && refresh_token[7] <= '9') {
        size_t nd = strspn(refresh_token + 7, "0123456789");
        unsigned long v = nd <= 5 ? strtoul(refresh_token + 7, NULL, 10) : 0;
        if (v >= 1 && v <= 86400 && refresh_token[7 + nd] == '-' && refresh_token[8 + nd] != '\0') {
            *kind = K2A_SIM_KIND_TTL;
            if (ttl_s != NULL)
                *ttl_s = (uint32_t)v;
            return 0;
        }
    }
    if (strncmp(refresh_token, KEY_PREFIX, sizeof(KEY_PREFIX) - 1) == 0 && refresh_token[sizeof(KEY_PREFIX) - 1] != '\0') {
        *kind = K2A_SIM_KIND_APIKEY;
        return 0;
    }
    return K2A_ENOTFOUND;
}

int k2a_sim_parse_kind(const char *refresh_token, k2a_sim_kind_t *kind)
{
    return k2a_sim_parse_kind_ex(refresh_token, kind, NULL);
}

/* Auth kind, region, tier and profileArn of a new account. */
static void set_identity(k2a_sim_account_t *x)
{
    x->auth = K2A_SIM_AUTH_SOCIAL;
    x->region = K2A_SIM_REGION_US;
    switch (x->kind) {
    case K2A_SIM_KIND_SOCIALEU:
        x->region = K2A_SIM_REGION_EU;
        break;
    case K2A_SIM_KIND_IDCEU:
        x->region = K2A_SIM_REGION_EU;
        x->auth = K2A_SIM_AUTH_IDC;
        break;
    case K2A_SIM_KIND_IDC:
        x->auth = K2A_SIM_AUTH_IDC;
        break;
    case K2A_SIM_KIND_EXTIDP:
        x->auth = K2A_SIM_AUTH_EXTIDP;
        break;
    case K2A_SIM_KIND_BUILDERID:
        x->auth = K2A_SIM_AUTH_BUILDERID;
        break;
    case K2A_SIM_KIND_APIKEY:
        x->auth = K2A_SIM_AUTH_APIKEY;
        break;
    case K2A_SIM_KIND_FREE:
        x->free_tier = true;
        break;
    default:
        break;
    }
    switch (x->auth) {
    case K2A_SIM_AUTH_SOCIAL:
        snprintf(x->arn, sizeof(x->arn), "%s",
                 strcmp(x->region, K2A_SIM_REGION_EU) == 0 ? K2A_SIM_ARN_SOCIAL_EU : K2A_SIM_ARN_SOCIAL);
        break;
    case K2A_SIM_AUTH_BUILDERID:
        snprintf(x->arn, sizeof(x->arn), "%s", K2A_SIM_ARN_BUILDERID);
        break;
    case K2A_SIM_AUTH_APIKEY:
        x->arn[0] = '\0';
        break;
    default: {
        /* a real profile of the account: 12 characters of [A-Z0-9] from the name */
        uint64_t h = hash_str(x->name, strlen(x->name));
        char id[13];
        for (int i = 0; i < 12; ++i, h /= 36)
            id[i] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"[h % 36];
        id[12] = '\0';
        snprintf(x->arn, sizeof(x->arn), "arn:aws:codewhisperer:%s:" K2A_SIM_ARN_IDC_ACCOUNT ":profile/%s", x->region, id);
        break;
    }
    }
}

static k2a_sim_account_t *account_add(k2a_sim_accounts_t *a, const char *name, size_t len, k2a_sim_kind_t kind, uint32_t ttl_s);

k2a_sim_account_t *k2a_sim_account_find(k2a_sim_accounts_t *a, const char *name)
{
    for (k2a_sim_account_t *x = a->abuckets[hash_str(name, strlen(name)) % a->nabuckets]; x != NULL; x = x->next)
        if (strcmp(x->name, name) == 0)
            return x;
    return NULL;
}

static void grow_accounts(k2a_sim_accounts_t *a)
{
    size_t nb = a->nabuckets * 2;
    k2a_sim_account_t **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < a->nabuckets; ++i) {
        for (k2a_sim_account_t *x = a->abuckets[i], *n; x != NULL; x = n) {
            n = x->next;
            size_t h = hash_str(x->name, strlen(x->name)) % nb;
            x->next = b[h];
            b[h] = x;
        }
    }
    free(a->abuckets);
    a->abuckets = b;
    a->nabuckets = nb;
}

k2a_sim_account_t *k2a_sim_account_for_refresh(k2a_sim_accounts_t *a, const char *refresh_token, uint32_t *gen)
{
    k2a_sim_account_t *x;
    k2a_sim_kind_t kind;
    *gen = 0;
    if ((x = k2a_sim_account_find(a, refresh_token)) != NULL)
        return x;
    /* A rotated token "<name>-r<N>" of a known rotate account. */
    const char *dash = strrchr(refresh_token, '-');
    if (dash != NULL && dash[1] == 'r' && dash[2] >= '1' && dash[2] <= '9' && strspn(dash + 2, "0123456789") == strlen(dash + 2)) {
        char *base = strndup(refresh_token, dash - refresh_token);
        if (base == NULL)
            return NULL;
        x = k2a_sim_account_find(a, base);
        free(base);
        if (x != NULL && x->kind == K2A_SIM_KIND_ROTATE) {
            unsigned long g = strtoul(dash + 2, NULL, 10);
            *gen = g > UINT32_MAX ? UINT32_MAX : (uint32_t)g;
            return x;
        }
    }
    uint32_t ttl_s = 0;
    if (k2a_sim_parse_kind_ex(refresh_token, &kind, &ttl_s) != 0 || kind == K2A_SIM_KIND_APIKEY)
        return NULL;
    return account_add(a, refresh_token, strlen(refresh_token), kind, ttl_s);
}

k2a_sim_account_t *k2a_sim_account_for_key(k2a_sim_accounts_t *a, const char *key, size_t len)
{
    char name[MAX_NAME + 1];
    k2a_sim_account_t *x;
    k2a_sim_kind_t kind;
    if (len > MAX_NAME || memchr(key, '\0', len) != NULL)
        return NULL;
    memcpy(name, key, len);
    name[len] = '\0';
    if ((x = k2a_sim_account_find(a, name)) != NULL)
        return x->kind == K2A_SIM_KIND_APIKEY ? x : NULL;
    if (k2a_sim_parse_kind(name, &kind) != 0 || kind != K2A_SIM_KIND_APIKEY)
        return NULL;
    return account_add(a, name, len, kind, 0);
}

static k2a_sim_account_t *account_add(k2a_sim_accounts_t *a, const char *name, size_t len, k2a_sim_kind_t kind, uint32_t ttl_s)
{
    k2a_sim_account_t *x;
    if ((x = calloc(1, sizeof(*x))) == NULL || (x->name = strndup(name, len)) == NULL) {
        free(x);
        return NULL;
    }
    x->kind = kind;
    x->ttl_s = ttl_s;
    set_identity(x);
    if (a->naccounts >= a->nabuckets * 2)
        grow_accounts(a);
    size_t h = hash_str(x->name, strlen(x->name)) % a->nabuckets;
    x->next = a->abuckets[h];
    a->abuckets[h] = x;
    ++a->naccounts;
    return x;
}

static void purge_tokens(k2a_sim_accounts_t *a, uint64_t now_ms)
{
    for (size_t i = 0; i < a->ntbuckets; ++i) {
        for (k2a_sim_token_t **pp = &a->tbuckets[i]; *pp != NULL;) {
            k2a_sim_token_t *t = *pp;
            if (t->expires_ms <= now_ms) {
                *pp = t->next;
                free(t->token);
                free(t);
                --a->ntokens;
            } else {
                pp = &t->next;
            }
        }
    }
}

static void grow_tokens(k2a_sim_accounts_t *a)
{
    size_t nb = a->ntbuckets * 2;
    k2a_sim_token_t **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < a->ntbuckets; ++i) {
        for (k2a_sim_token_t *t = a->tbuckets[i], *n; t != NULL; t = n) {
            n = t->next;
            size_t h = hash_str(t->token, strlen(t->token)) % nb;
            t->next = b[h];
            b[h] = t;
        }
    }
    free(a->tbuckets);
    a->tbuckets = b;
    a->ntbuckets = nb;
}

const char *k2a_sim_token_issue(k2a_sim_accounts_t *a, k2a_sim_account_t *acct, uint64_t now_ms, uint64_t ttl_ms)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (a->ntokens >= a->purge_at) {
        purge_tokens(a, now_ms);
        a->purge_at = a->ntokens * 2 > 1024 ? a->ntokens * 2 : 1024;
    }
    if (a->ntokens >= a->ntbuckets * 2)
        grow_tokens(a);
    k2a_sim_token_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->token = malloc(3 + 40 + 1)) == NULL) {
        free(t);
        return NULL;
    }
    /* "aoa" like real Kiro access tokens, then 240 random bits in base64url. */
    memcpy(t->token, "aoa", 3);
    for (int i = 0; i < 40; i += 10) {
        uint64_t r = next_random(&a->rng);
        for (int j = 0; j < 10; ++j, r >>= 6)
            t->token[3 + i + j] = b64[r & 63];
    }
    t->token[43] = '\0';
    t->account = acct;
    t->expires_ms = now_ms + ttl_ms;
    t->seq = ++acct->tokens_issued;
    size_t h = hash_str(t->token, 43) % a->ntbuckets;
    t->next = a->tbuckets[h];
    a->tbuckets[h] = t;
    ++a->ntokens;
    return t->token;
}

k2a_sim_token_t *k2a_sim_token_add(k2a_sim_accounts_t *a, k2a_sim_account_t *acct, const char *token, size_t len,
                                   uint64_t expires_ms)
{
    if (a->ntokens >= a->ntbuckets * 2)
        grow_tokens(a);
    k2a_sim_token_t *t = calloc(1, sizeof(*t));
    if (t == NULL || (t->token = strndup(token, len)) == NULL) {
        free(t);
        return NULL;
    }
    t->account = acct;
    t->expires_ms = expires_ms;
    t->seq = ++acct->tokens_issued;
    size_t h = hash_str(t->token, len) % a->ntbuckets;
    t->next = a->tbuckets[h];
    a->tbuckets[h] = t;
    ++a->ntokens;
    return t;
}

k2a_sim_token_t *k2a_sim_token_find(k2a_sim_accounts_t *a, const char *token, size_t len, uint64_t now_ms)
{
    for (k2a_sim_token_t *t = a->tbuckets[hash_str(token, len) % a->ntbuckets]; t != NULL; t = t->next)
        if (strlen(t->token) == len && memcmp(t->token, token, len) == 0)
            return t->expires_ms > now_ms ? t : NULL;
    return NULL;
}

void k2a_sim_stats_reject(k2a_sim_stats_t *s, const char *rule)
{
    ++s->rejections;
    snprintf(s->last_rejection, sizeof(s->last_rejection), "%s", rule);
    for (size_t i = 0; i < sizeof(s->rules) / sizeof(s->rules[0]); ++i) {
        if (s->rules[i].rule == NULL || strcmp(s->rules[i].rule, rule) == 0) {
            s->rules[i].rule = rule; /* rules are string literals of validate.c */
            ++s->rules[i].n;
            return;
        }
    }
}

void k2a_sim_stats_header(k2a_sim_stats_t *s, const char *name)
{
    ++s->header_warnings;
    for (size_t i = 0; i < sizeof(s->header_rules) / sizeof(s->header_rules[0]); ++i) {
        if (s->header_rules[i].name == NULL || strcmp(s->header_rules[i].name, name) == 0) {
            s->header_rules[i].name = name;
            ++s->header_rules[i].n;
            return;
        }
    }
}

static const char *const endpoint_names[K2A_SIM_EP_MAX] = {"refreshToken",
                                                           "token",
                                                           "getUsageLimits",
                                                           "ListAvailableModels",
                                                           "generateAssistantResponse",
                                                           "ListAvailableProfiles",
                                                           "entra/token",
                                                           "mcp",
                                                           "sim/stats",
                                                           "sim/reset",
                                                           "sim/sse",
                                                           "other"};

static void append_json_str(k2a_buf_t *out, const char *key, const char *s)
{
    k2a_buf_appendf(out, ",\"%s\":\"", key);
    k2a_buf_append_json_escaped(out, s, strlen(s));
    k2a_buf_appendstr(out, "\"");
}

/* Per account: the distinct conversationIds of its generate calls (the first SIM_CONVS, with counts) and the monotonic
 * times (ms) of its last SIM_TIMES generate calls. */
#define SIM_CONVS 64
#define SIM_TIMES 512
typedef struct st_k2a_sim_hints_t {
    struct {
        char id[48];
        uint32_t n;
    } convs[SIM_CONVS];
    uint32_t nconvs;
    uint64_t at[SIM_TIMES];
    uint32_t head, nat;
} k2a_sim_hints_t;

void k2a_sim_note_generate(k2a_sim_account_t *acct, const char *body, size_t len)
{
    if (acct->hints == NULL && (acct->hints = calloc(1, sizeof(*acct->hints))) == NULL)
        return;
    k2a_sim_hints_t *h = acct->hints;
    h->at[(h->head + h->nat) % SIM_TIMES] = uv_hrtime() / 1000000;
    if (h->nat < SIM_TIMES)
        ++h->nat;
    else
        h->head = (h->head + 1) % SIM_TIMES;
    static const char key[] = "\"conversationId\":\"";
    const char *p = len > 0 ? memmem(body, len, key, sizeof(key) - 1) : NULL;
    if (p == NULL)
        return;
    p += sizeof(key) - 1;
    char id[48];
    size_t n = 0;
    while (p + n < body + len && n + 1 < sizeof(id) &&
           ((p[n] >= '0' && p[n] <= '9') || (p[n] >= 'a' && p[n] <= 'z') || (p[n] >= 'A' && p[n] <= 'Z') || p[n] == '-'))
        ++n;
    memcpy(id, p, n);
    id[n] = '\0';
    for (uint32_t i = 0; i < h->nconvs; ++i) {
        if (strcmp(h->convs[i].id, id) == 0) {
            ++h->convs[i].n;
            return;
        }
    }
    if (h->nconvs < SIM_CONVS) {
        memcpy(h->convs[h->nconvs].id, id, n + 1);
        h->convs[h->nconvs++].n = 1;
    }
}

/* ,"conversations":{"<id>":n,...},"generate_times_ms":[...] (oldest first) */
static void append_hints(k2a_buf_t *out, const k2a_sim_hints_t *h)
{
    k2a_buf_appendstr(out, ",\"conversations\":{");
    for (uint32_t i = 0; h != NULL && i < h->nconvs; ++i)
        k2a_buf_appendf(out, "%s\"%s\":%u", i ? "," : "", h->convs[i].id, h->convs[i].n);
    k2a_buf_appendstr(out, "},\"generate_times_ms\":[");
    for (uint32_t i = 0; h != NULL && i < h->nat; ++i)
        k2a_buf_appendf(out, "%s%llu", i ? "," : "", (unsigned long long)h->at[(h->head + i) % SIM_TIMES]);
    k2a_buf_appendstr(out, "]");
}

/* ,"last_request":{...} of an account (null before its first generate call); peer strings are escaped. */
static void append_last_request(k2a_buf_t *out, const k2a_sim_last_request_t *l)
{
    if (!l->seen) {
        k2a_buf_appendstr(out, ",\"last_request\":null");
        return;
    }
    k2a_buf_appendf(out, ",\"last_request\":{\"status\":%d,\"header_warnings\":%u,\"region\":\"%s\"", l->status, l->header_warnings,
                    l->region != NULL ? l->region : "");
    append_json_str(out, "model", l->model);
    append_json_str(out, "profile_arn", l->profile_arn);
    append_json_str(out, "path", l->path);
    append_json_str(out, "tokentype", l->tokentype);
    k2a_buf_appendstr(out, "}");
}

int k2a_sim_stats_json(const k2a_sim_stats_t *s, const k2a_sim_accounts_t *a, k2a_buf_t *out)
{
    uint64_t total = 0;
    k2a_buf_appendstr(out, "{\"requests\":{");
    for (int i = 0; i < K2A_SIM_EP_MAX; ++i) {
        k2a_buf_appendf(out, "%s\"%s\":%llu", i ? "," : "", endpoint_names[i], (unsigned long long)s->requests[i]);
        total += s->requests[i];
    }
    k2a_buf_appendf(out, "},\"requests_total\":%llu,\"open_streams\":%llu,\"max_open_streams\":%llu,\"streams_total\":%llu,",
                    (unsigned long long)total, (unsigned long long)s->open_streams, (unsigned long long)s->max_open_streams,
                    (unsigned long long)s->streams_total);
    k2a_buf_appendf(out, "\"live_tokens\":%zu,\"rejections\":%llu,\"last_rejection\":\"%s\",\"rejections_by_rule\":{", a->ntokens,
                    (unsigned long long)s->rejections, s->last_rejection);
    for (size_t i = 0; i < sizeof(s->rules) / sizeof(s->rules[0]) && s->rules[i].rule != NULL; ++i)
        k2a_buf_appendf(out, "%s\"%s\":%llu", i ? "," : "", s->rules[i].rule, (unsigned long long)s->rules[i].n);
    k2a_buf_appendf(out, "},\"header_warnings\":%llu,\"header_warnings_by_name\":{", (unsigned long long)s->header_warnings);
    for (size_t i = 0; i < sizeof(s->header_rules) / sizeof(s->header_rules[0]) && s->header_rules[i].name != NULL; ++i)
        k2a_buf_appendf(out, "%s\"%s\":%llu", i ? "," : "", s->header_rules[i].name, (unsigned long long)s->header_rules[i].n);
    k2a_buf_appendf(out,
                    "},\"connections_multi_account\":%llu,\"max_accounts_per_connection\":%llu,"
                    "\"connections_multi_token\":%llu,\"max_tokens_per_connection\":%llu",
                    (unsigned long long)s->conns_multi_account, (unsigned long long)s->max_accounts_per_conn,
                    (unsigned long long)s->conns_multi_token, (unsigned long long)s->max_tokens_per_conn);
    k2a_buf_appendstr(out, ",\"accounts\":{");
    bool first = true;
    uint64_t refreshes = 0, generates = 0;
    for (size_t i = 0; i < a->nabuckets; ++i) {
        for (const k2a_sim_account_t *x = a->abuckets[i]; x != NULL; x = x->next) {
            k2a_buf_appendstr(out, first ? "\"" : ",\"");
            k2a_buf_append_json_escaped(out, x->name, strlen(x->name));
            k2a_buf_appendf(out,
                            "\":{\"requests\":%llu,\"refreshes\":%llu,\"refresh_failures\":%llu,\"usage_calls\":%llu,"
                            "\"model_calls\":%llu,\"generates\":%llu,\"generate_ok\":%llu,\"tokens_issued\":%llu,"
                            "\"rotation\":%u,\"used_credits\":%.6g,\"region\":\"%s\",\"profile_arn\":\"%s\"",
                            (unsigned long long)x->c.requests, (unsigned long long)x->c.refreshes,
                            (unsigned long long)x->c.refresh_failures, (unsigned long long)x->c.usage_calls,
                            (unsigned long long)x->c.model_calls, (unsigned long long)x->c.generates,
                            (unsigned long long)x->c.generate_ok, (unsigned long long)x->tokens_issued, x->rotate_gen,
                            x->used_credits, x->region, x->arn);
            append_last_request(out, &x->last);
            append_hints(out, x->hints);
            k2a_buf_appendstr(out, "}");
            refreshes += x->c.refreshes;
            generates += x->c.generates;
            first = false;
        }
    }
    return k2a_buf_appendf(out, "},\"refreshes_total\":%llu,\"generates_total\":%llu}\n", (unsigned long long)refreshes,
                           (unsigned long long)generates);
}
