/*
 * libFuzzer target for the KIRO_AUTH_TOKEN parser (src/pool/accounts_config.c) through its JSON-text entry point
 * k2a_pool_parse_accounts_json, which never treats its input as a file path (the path-or-JSON decision of
 * k2a_pool_parse_accounts is not fuzzed: fuzz input must never reach stat() or fopen()). The input is NUL-terminated
 * (bytes after an embedded NUL are ignored, as for an environment variable).
 * Invariants: an accepted list has 1..K2A_POOL_MAX_ACCOUNTS entries, at least one enabled, each with a non-blank
 * refresh token of at most 16384 bytes, a description of at most 120 bytes without control characters, clientId and
 * clientSecret exactly for IdC entries (clientId, tokenEndpoint and scope for ExternalIdp; a "ksk_" key, an apiRegion and
 * no profileArn for ApiKey), every region known and every profileArn well-formed, a machineId absent or of 64 lowercase
 * hex digits, no two entries with the same auth and refresh token; a refused input gives
 * K2A_ECONFIG/K2A_ENOMEM with a one-line message that starts with "KIRO_AUTH_TOKEN: " and never contains a refresh
 * token, client secret or API key of the input (found with an independent yajl_tree walk) outside the auth value it quotes;
 * secrets made only of characters that the fixed message texts use are not checked, since they could match those texts
 * by chance.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/pool.h"
#include "pool/region.h"

#define CHECK(c, ...)                                                                                                              \
    do {                                                                                                                           \
        if (!(c)) {                                                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #c);                                                  \
            fprintf(stderr, __VA_ARGS__);                                                                                          \
            fputc('\n', stderr);                                                                                                   \
            abort();                                                                                                               \
        }                                                                                                                          \
    } while (0)

/* every character of the parser's fixed message texts and of the numbers it prints */
#define TEMPLATE_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _:\"(),.'-"

static int blank(const char *s)
{
    return s[strspn(s, " \t\r\n")] == '\0';
}

/* Aborts if err quotes a secret (refreshToken / clientSecret string of at least 8 bytes) of entry v. quoted: the auth value
 * the message quotes ("got \"...\""), or NULL. */
static void check_no_secret(yajl_val v, const char *err, const char *quoted)
{
    if (!YAJL_IS_OBJECT(v))
        return;
    for (size_t i = 0; i < v->u.object.len; ++i) {
        const char *k = v->u.object.keys[i];
        yajl_val s = v->u.object.values[i];
        if ((strcmp(k, "refreshToken") != 0 && strcmp(k, "clientSecret") != 0 && strcmp(k, "apiKey") != 0) || !YAJL_IS_STRING(s))
            continue;
        const char *secret = s->u.string;
        /* the message may quote an auth value (a secret inside it is the input's own doing), and a secret made only of
         * characters the fixed message texts use could match them by chance: check the others */
        if (strlen(secret) < 8 || (quoted != NULL && strstr(quoted, secret) != NULL) ||
            secret[strspn(secret, TEMPLATE_CHARS)] == '\0')
            continue;
        CHECK(strstr(err, secret) == NULL, "message '%s' quotes the secret '%s'", err, secret);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        k2a_log_configure(K2A_LOG_ERROR + 1, K2A_LOG_TEXT, false, NULL);
        quiet = 1;
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    k2a_account_list_t list;
    char err[512];
    err[0] = '\0';
    int r = k2a_pool_parse_accounts_json(text, &list, err, sizeof(err));
    if (r == 0) {
        CHECK(list.n >= 1 && list.n <= K2A_POOL_MAX_ACCOUNTS, "%zu accounts", list.n);
        size_t enabled = 0;
        for (size_t i = 0; i < list.n; ++i) {
            const k2a_account_config_t *e = &list.entries[i];
            CHECK(e->refresh_token != NULL && !blank(e->refresh_token) && strlen(e->refresh_token) <= 16384, "entry %zu token", i);
            CHECK(e->description != NULL && strlen(e->description) <= 120, "entry %zu description", i);
            for (const char *p = e->description; *p; ++p)
                CHECK((unsigned char)*p >= 0x20, "entry %zu description has a control character", i);
            CHECK(e->machine_id == NULL || (strlen(e->machine_id) == 64 && strspn(e->machine_id, "0123456789abcdef") == 64),
                  "entry %zu machineId not 64 lowercase hex", i);
            if (e->auth == K2A_AUTH_IDC)
                CHECK(e->client_id != NULL && e->client_secret != NULL && !blank(e->client_id) && !blank(e->client_secret),
                      "entry %zu IdC credentials", i);
            else if (e->auth == K2A_AUTH_EXTERNAL_IDP)
                CHECK(e->client_id != NULL && !blank(e->client_id) && e->client_secret == NULL && e->token_endpoint != NULL &&
                          e->scope != NULL,
                      "entry %zu ExternalIdp fields", i);
            else if (e->auth == K2A_AUTH_API_KEY)
                CHECK(e->client_id == NULL && e->client_secret == NULL && strncmp(e->refresh_token, "ksk_", 4) == 0 &&
                          k2a_region_index(e->api_region) >= 0 && e->profile_arn == NULL,
                      "entry %zu ApiKey fields", i);
            else
                CHECK(e->auth == K2A_AUTH_SOCIAL && e->client_id == NULL && e->client_secret == NULL, "entry %zu Social", i);
            CHECK(!e->builder_id || e->auth == K2A_AUTH_IDC, "entry %zu Builder ID that is not IdC", i);
            CHECK(e->profile_arn == NULL || k2a_arn_parse(e->profile_arn, NULL) == 0, "entry %zu profileArn", i);
            CHECK(e->region[0] == '\0' || k2a_region_index(e->region) >= 0, "entry %zu region", i);
            CHECK(e->api_region[0] == '\0' || k2a_region_index(e->api_region) >= 0, "entry %zu apiRegion", i);
            for (size_t j = 0; j < i; ++j)
                CHECK(list.entries[j].auth != e->auth || strcmp(list.entries[j].refresh_token, e->refresh_token) != 0,
                      "entries %zu and %zu are duplicates", j, i);
            enabled += !e->disabled;
        }
        CHECK(enabled != 0, "no enabled entry");
        k2a_account_list_dispose(&list);
    } else {
        CHECK(r == K2A_ECONFIG || r == K2A_ENOMEM, "code %d", r);
        CHECK(list.n == 0 && list.entries == NULL, "a refused list is not empty");
        CHECK(strncmp(err, "KIRO_AUTH_TOKEN: ", 17) == 0 && strchr(err, '\n') == NULL, "message '%s'", err);
        char quoted[sizeof(err)] = "";
        const char *q = strstr(err, "got \"");
        if (q != NULL) {
            snprintf(quoted, sizeof(quoted), "%s", q + 5);
            char *end = strrchr(quoted, '"');
            if (end != NULL)
                *end = '\0';
        }
        yajl_val root = yajl_tree_parse(text, NULL, 0);
        if (root != NULL) {
            if (YAJL_IS_ARRAY(root))
                for (size_t i = 0; i < root->u.array.len; ++i)
                    check_no_secret(root->u.array.values[i], err, q != NULL ? quoted : NULL);
            else
                check_no_secret(root, err, q != NULL ? quoted : NULL);
            yajl_tree_free(root);
        }
    }
    /* forget the secrets the parser registered, so that the registry does not fill up across runs */
    k2a_log_close();
    free(text);
    return 0;
}
