/*
 * Account pool tests without the network: KIRO_AUTH_TOKEN parsing (array, object, file, every invalid entry
 * with its index), the getUsageLimits credit vectors, the error matrix (status + body -> action), backoff and
 * refresh-ahead arithmetic, e-mail masking, the selection strategies (sequential, round_robin, balanced,
 * concurrency cap, exclusion, cooling) on a pool whose tokens come from an in-memory store, and the state
 * file (round trip, atomic write, mode 0600, corrupt file moved aside, rotated token restored).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "pool/catalog.h"
#include "pool/dispatch.h"
#include "pool/health.h"
#include "pool/internal.h"
#include "pool/pool.h"
#include "pool/store.h"
#include "pool_fixture.h"

/* ---- configuration ---- */

static int parse(const char *text, k2a_account_list_t *l, char *err)
{
    return k2a_pool_parse_accounts(text, l, err, 256);
}

static void test_config_array_object_file(void **state)
{
    k2a_account_list_t l;
    char err[256] = "";
    assert_int_equal(
        parse("[{\"auth\":\"Social\",\"refreshToken\":\"aorAAAAAG-one\"},"
              "{\"auth\":\"IdC\",\"refreshToken\":\"aorAAAAAG-two\",\"clientId\":\"cid-123\",\"clientSecret\":\"sec-456789\","
              "\"disabled\":false,\"description\":\"team\"},"
              "{\"refreshToken\":\"aorAAAAAG-three\",\"disabled\":true,\"unknown\":1}]",
              &l, err),
        0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.entries[0].auth, K2A_AUTH_SOCIAL);
    assert_string_equal(l.entries[0].refresh_token, "aorAAAAAG-one");
    assert_null(l.entries[0].client_id);
    assert_string_equal(l.entries[0].description, "");
    assert_int_equal(l.entries[1].auth, K2A_AUTH_IDC);
    assert_string_equal(l.entries[1].client_id, "cid-123");
    assert_string_equal(l.entries[1].client_secret, "sec-456789");
    assert_string_equal(l.entries[1].description, "team");
    assert_false(l.entries[1].disabled);
    assert_int_equal(l.entries[2].auth, K2A_AUTH_SOCIAL); /* missing auth = Social */
    assert_true(l.entries[2].disabled);
    k2a_account_list_dispose(&l);

    /* every credential kind, with regions and an explicit profileArn */
    assert_int_equal(
        parse("[{\"auth\":\"IdC\",\"provider\":\"BuilderId\",\"refreshToken\":\"rt-b\",\"clientId\":\"c\","
              "\"clientSecret\":\"s\",\"region\":\"eu-central-1\"},"
              "{\"auth\":\"ApiKey\",\"apiKey\":\"ksk_abc\",\"apiRegion\":\"eu-central-1\"},"
              "{\"auth\":\"external_idp\",\"refreshToken\":\"rt-e\",\"clientId\":\"cid\",\"tokenEndpoint\":"
              "\"https://login.microsoftonline.com/t/oauth2/v2.0/token\",\"scope\":\"api://x/.default offline_access\"},"
              "{\"auth\":\"Social\",\"refreshToken\":\"rt-s\",\"profileArn\":"
              "\"arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF\"}]",
              &l, err),
        0);
    assert_int_equal(l.n, 4);
    assert_int_equal(l.entries[0].auth, K2A_AUTH_IDC);
    assert_true(l.entries[0].builder_id);
    assert_string_equal(l.entries[0].region, "eu-central-1");
    assert_int_equal(l.entries[1].auth, K2A_AUTH_API_KEY);
    assert_string_equal(l.entries[1].refresh_token, "ksk_abc");
    assert_string_equal(l.entries[1].api_region, "eu-central-1");
    assert_int_equal(l.entries[2].auth, K2A_AUTH_EXTERNAL_IDP);
    assert_string_equal(l.entries[2].client_id, "cid");
    assert_null(l.entries[2].client_secret);
    assert_string_equal(l.entries[2].scope, "api://x/.default offline_access");
    assert_string_equal(l.entries[3].profile_arn, "arn:aws:codewhisperer:eu-central-1:123456789012:profile/ABCDEF");
    assert_string_equal(k2a_auth_kind_name(l.entries[0].auth, l.entries[0].builder_id), "builder_id");
    assert_string_equal(k2a_auth_kind_name(l.entries[2].auth, false), "external_idp");
    k2a_account_list_dispose(&l);

    /* a single object; auth case-insensitive */
    assert_int_equal(
        parse("  {\"auth\":\"idc\",\"refreshToken\":\"rt-single-1\",\"clientId\":\"a\",\"clientSecret\":\"b\"}", &l, err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.entries[0].auth, K2A_AUTH_IDC);
    k2a_account_list_dispose(&l);

    /* a file path */
    char path[] = "/tmp/k2a-pool-auth-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *json = "[{\"refreshToken\":\"rt-from-file-1\",\"description\":\"from file\"}]";
    assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
    close(fd);
    assert_int_equal(parse(path, &l, err), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.entries[0].refresh_token, "rt-from-file-1");
    assert_string_equal(l.entries[0].description, "from file");
    k2a_account_list_dispose(&l);
    /* a file holding bad JSON names the file */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "[{", 2), 2);
    close(fd);
    assert_int_equal(parse(path, &l, err), K2A_ECONFIG);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "not valid JSON"));
    unlink(path);
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *json;
        const char *message;
    } cases[] = {
        {"", "KIRO_AUTH_TOKEN: not set"},
        {"aorAAAAAG-bare-token-pasted", "KIRO_AUTH_TOKEN: neither a readable file nor JSON"},
        {"[1,", "KIRO_AUTH_TOKEN: the value is not valid JSON"},
        {"\"x\"", "KIRO_AUTH_TOKEN: neither a readable file nor JSON"},
        {"[]", "KIRO_AUTH_TOKEN: no accounts configured"},
        {"[{\"refreshToken\":\"ok-token-0\"},42]", "KIRO_AUTH_TOKEN: entry 1: not a JSON object"},
        {"[{\"auth\":\"Social\"}]", "KIRO_AUTH_TOKEN: entry 0: refreshToken is missing"},
        {"[{\"refreshToken\":\"ok-token-0\"},{\"refreshToken\":\"\"}]",
         "KIRO_AUTH_TOKEN: entry 1: refreshToken must be a non-empty string"},
        {"[{\"refreshToken\":7}]", "KIRO_AUTH_TOKEN: entry 0: refreshToken must be a non-empty string"},
        {"[{\"refreshToken\":\"ok-token-0\"},{\"refreshToken\":\"ok-token-1\"},{\"auth\":\"IdC\",\"refreshToken\":\"ok-token-2\"}]",
         "KIRO_AUTH_TOKEN: entry 2: IdC account needs clientId and clientSecret"},
        {"[{\"auth\":\"IdC\",\"refreshToken\":\"ok-token-0\",\"clientId\":\"c\"}]",
         "KIRO_AUTH_TOKEN: entry 0: IdC account needs clientId and clientSecret (clientSecret is missing or empty)"},
        {"[{\"auth\":\"IdC\",\"refreshToken\":\"ok-token-0\",\"clientSecret\":\"c\",\"clientId\":\"\"}]",
         "KIRO_AUTH_TOKEN: entry 0: IdC account needs clientId and clientSecret (clientId is missing or empty)"},
        {"[{\"auth\":\"Oauth\",\"refreshToken\":\"ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 0: auth must be \"Social\", \"IdC\", \"BuilderId\", \"ApiKey\" or \"ExternalIdp\", got \"Oauth\""},
        {"[{\"auth\":1,\"refreshToken\":\"ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 0: auth must be \"Social\", \"IdC\", \"BuilderId\", \"ApiKey\" or \"ExternalIdp\""},
        {"[{\"refreshToken\":\"ok-token-0\",\"disabled\":\"yes\"}]", "KIRO_AUTH_TOKEN: entry 0: disabled must be true or false"},
        {"[{\"refreshToken\":\"ok-token-0\",\"description\":5}]", "KIRO_AUTH_TOKEN: entry 0: description must be a string"},
        {"[{\"refreshToken\":\"ok-token-0\"},{\"refreshToken\":\"ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 1: same auth and refreshToken as entry 0"},
        {"[{\"refreshToken\":\"ok-token-0\",\"disabled\":true}]", "KIRO_AUTH_TOKEN: every account is disabled"},
        {"[[]]", "KIRO_AUTH_TOKEN: entry 0: not a JSON object"},
        /* regions, ARNs and the newer credential kinds */
        {"[{\"refreshToken\":\"ok-token-0\",\"region\":\"ap-south-1\"}]",
         "KIRO_AUTH_TOKEN: entry 0: region is not a Kiro region: expected us-east-1 or eu-central-1, got \"ap-south-1\""},
        {"[{\"refreshToken\":\"ok-token-0\"},{\"refreshToken\":\"ok-token-1\",\"apiRegion\":\"us-west-2\"}]",
         "KIRO_AUTH_TOKEN: entry 1: apiRegion is not a Kiro region"},
        {"[{\"refreshToken\":\"ok-token-0\",\"region\":7}]", "KIRO_AUTH_TOKEN: entry 0: region must be a non-empty string"},
        {"[{\"refreshToken\":\"ok-token-0\",\"profileArn\":\"arn:aws:codewhisperer:us-east-1:1234:profile/X\"}]",
         "KIRO_AUTH_TOKEN: entry 0: profileArn is not of the form arn:aws:codewhisperer:<region>:<12 digits>:profile/<id>"},
        {"[{\"refreshToken\":\"ok-token-0\",\"profileArn\":\"arn:aws:codewhisperer:ap-south-1:123456789012:profile/X\"}]",
         "KIRO_AUTH_TOKEN: entry 0: profileArn names a region Kiro does not serve"},
        {"[{\"auth\":\"ApiKey\",\"apiKey\":\"ksk_ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 0: apiRegion is required for an ApiKey account"},
        {"[{\"auth\":\"ApiKey\",\"apiRegion\":\"us-east-1\"}]", "KIRO_AUTH_TOKEN: entry 0: apiKey is missing"},
        {"[{\"auth\":\"ApiKey\",\"apiKey\":\"ok-token-0\",\"apiRegion\":\"us-east-1\"}]",
         "KIRO_AUTH_TOKEN: entry 0: apiKey must start with \"ksk_\""},
        {"[{\"auth\":\"ApiKey\",\"apiKey\":\"ksk_ok-token-0\",\"apiRegion\":\"us-east-1\",\"profileArn\":"
         "\"arn:aws:codewhisperer:us-east-1:123456789012:profile/X\"}]",
         "KIRO_AUTH_TOKEN: entry 0: profileArn is not used by an ApiKey account"},
        {"[{\"auth\":\"ExternalIdp\",\"refreshToken\":\"ok-token-0\",\"tokenEndpoint\":\"https://login.example/t\","
         "\"scope\":\"x offline_access\"}]",
         "KIRO_AUTH_TOKEN: entry 0: clientId is required for an ExternalIdp account"},
        {"[{\"auth\":\"ExternalIdp\",\"refreshToken\":\"ok-token-0\",\"clientId\":\"c\",\"scope\":\"s\"}]",
         "KIRO_AUTH_TOKEN: entry 0: tokenEndpoint is required for an ExternalIdp account"},
        {"[{\"auth\":\"ExternalIdp\",\"refreshToken\":\"ok-token-0\",\"clientId\":\"c\",\"scope\":\"s\",\"tokenEndpoint\":"
         "\"ftp://x\"}]",
         "KIRO_AUTH_TOKEN: entry 0: tokenEndpoint is not an http(s) URL"},
        {"[{\"auth\":\"ExternalIdp\",\"refreshToken\":\"ok-token-0\",\"clientId\":\"c\",\"tokenEndpoint\":\"https://l/t\"}]",
         "KIRO_AUTH_TOKEN: entry 0: scope is required for an ExternalIdp account"},
        {"[{\"auth\":\"Social\",\"provider\":\"BuilderId\",\"refreshToken\":\"ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 0: provider \"BuilderId\" needs auth \"IdC\""},
        /* fuzz_pool_accounts finding: ExternalIdp or ApiKey with provider BuilderId was taken as a Builder ID account */
        {"[{\"auth\":\"ExternalIdp\",\"provider\":\"BuilderId\",\"refreshToken\":\"ok-token-0\",\"clientId\":\"c\","
         "\"scope\":\"s\",\"tokenEndpoint\":\"https://l/t\"}]",
         "KIRO_AUTH_TOKEN: entry 0: provider \"BuilderId\" needs auth \"IdC\""},
        {"[{\"auth\":\"ApiKey\",\"provider\":\"BuilderId\",\"apiKey\":\"ksk_x\",\"apiRegion\":\"us-east-1\"}]",
         "KIRO_AUTH_TOKEN: entry 0: provider \"BuilderId\" needs auth \"IdC\""},
        {"[{\"auth\":\"BuilderId\",\"refreshToken\":\"ok-token-0\"}]",
         "KIRO_AUTH_TOKEN: entry 0: IdC account needs clientId and clientSecret"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        k2a_account_list_t l;
        char err[256] = "";
        int r = parse(cases[i].json, &l, err);
        if (r != K2A_ECONFIG || strncmp(err, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu (%s): got %d '%s', expected '%s'", i, cases[i].json, r, err, cases[i].message);
        assert_int_equal(l.n, 0);
        assert_null(l.entries);
        /* no message ever quotes a token */
        assert_null(strstr(err, "ok-token"));
        assert_null(strstr(err, "bare-token"));
    }
}

/* Finding of fuzz_pool_accounts: an auth value holding a newline (or other control characters, or a UTF-8 sequence cut
 * at the 40-byte limit) was quoted as is, so the configuration error spanned several lines of stderr / the log. */
static void test_config_error_message_is_one_printable_line(void **state)
{
    k2a_account_list_t l;
    char err[256] = "";
    assert_int_equal(parse("[{\"auth\":\"soci\\u000al\\u001b[31m\",\"refreshToken\":\"ok-token-0\"}]", &l, err), K2A_ECONFIG);
    assert_string_equal(err, "KIRO_AUTH_TOKEN: entry 0: auth must be \"Social\", \"IdC\", \"BuilderId\", \"ApiKey\" or "
                             "\"ExternalIdp\", got \"soci?l?[31m\"");
    assert_int_equal(parse("[{\"auth\":"
                           "\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3"
                           "\xa9\xc3\xa9\xc3\xa9"
                           "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9x\",\"refreshToken\":\"ok-token-0\"}]",
                           &l, err),
                     K2A_ECONFIG);
    for (const char *p = err; *p; ++p)
        assert_true(*p >= 0x20 && *p < 0x7f);
    assert_non_null(strstr(err, "got \"????????????????????????????????????????\""));
}

static void test_config_secrets_masked(void **state)
{
    char logpath[] = "/tmp/k2a-pool-log-XXXXXX";
    int fd = mkstemp(logpath);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(k2a_log_configure(K2A_LOG_INFO, K2A_LOG_TEXT, false, logpath), 0);
    k2a_account_list_t l;
    char err[256];
    assert_int_equal(parse("[{\"auth\":\"IdC\",\"refreshToken\":\"aorSecretRefresh1234\",\"clientId\":\"cid\","
                           "\"clientSecret\":\"clientSecretValue9876\"}]",
                           &l, err),
                     0);
    k2a_info("leak attempt: %s %s", l.entries[0].refresh_token, l.entries[0].client_secret);
    k2a_account_list_dispose(&l);
    k2a_log_close();
    FILE *fp = fopen(logpath, "r");
    char buf[4096] = "";
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    unlink(logpath);
    assert_non_null(strstr(buf, "leak attempt"));
    assert_null(strstr(buf, "aorSecretRefresh1234"));
    assert_null(strstr(buf, "clientSecretValue9876"));
    assert_non_null(strstr(buf, "****1234"));
    k2a_log_configure(K2A_LOG_WARN, K2A_LOG_TEXT, true, NULL);
}

static void test_config_strategy(void **state)
{
    k2a_pool_strategy_t s;
    assert_int_equal(k2a_pool_parse_strategy("sequential", &s), 0);
    assert_int_equal(s, K2A_POOL_SEQUENTIAL);
    assert_int_equal(k2a_pool_parse_strategy("round_robin", &s), 0);
    assert_int_equal(s, K2A_POOL_ROUND_ROBIN);
    assert_int_equal(k2a_pool_parse_strategy("balanced", &s), 0);
    assert_int_equal(s, K2A_POOL_BALANCED);
    assert_int_equal(k2a_pool_parse_strategy("random", &s), K2A_EINVAL);
    k2a_config_t c;
    k2a_pool_config_t pc;
    char err[128];
    k2a_config_defaults(&c);
    assert_int_equal(k2a_pool_config_from(&pc, &c, err, sizeof(err)), 0);
    assert_int_equal(pc.max_attempts, 3);
    assert_int_equal(pc.refresh_ahead_pct, 80);
    assert_int_equal(pc.usage_poll_interval_s, 900);
    assert_int_equal(pc.catalog_refresh_s, 21600);
    assert_string_equal(pc.state_file, "./data/kiro2api-state.json");
    c.catalog_refresh_s = 0;
    assert_int_equal(k2a_pool_config_from(&pc, &c, err, sizeof(err)), 0);
    assert_int_equal(pc.catalog_refresh_s, 0);
    k2a_config_dispose(&c);
}

/* ---- credits ---- */

static void test_credit_vectors(void **state)
{
    k2a_usage_t u;
    const char *active =
        "{\"usageBreakdownList\":[{\"resourceType\":\"VIBE\",\"usageLimitWithPrecision\":50},"
        "{\"resourceType\":\"CREDIT\",\"usageLimitWithPrecision\":1000.0,\"currentUsageWithPrecision\":200.0,"
        "\"nextDateReset\":1756684800,\"freeTrialInfo\":{\"freeTrialStatus\":\"ACTIVE\","
        "\"usageLimitWithPrecision\":500.0,\"currentUsageWithPrecision\":100.0}},"
        "{\"resourceType\":\"CREDIT\",\"usageLimitWithPrecision\":99999}],"
        "\"userInfo\":{\"email\":\"someone@example.com\"},\"subscriptionInfo\":{\"subscriptionTitle\":\"KIRO FREE\"}}";
    assert_int_equal(k2a_pool_parse_usage(active, strlen(active), &u), 0);
    assert_true(u.has_credit);
    assert_true(u.remaining == 1200.0);
    assert_true(u.limit == 1500.0);
    assert_true(u.used == 300.0);
    assert_int_equal(u.next_reset_ms, 1756684800000LL);
    assert_string_equal(u.email, "someone@example.com");
    assert_string_equal(u.subscription, "KIRO FREE");

    const char *expired = "{\"usageBreakdownList\":[{\"resourceType\":\"CREDIT\",\"usageLimitWithPrecision\":1000.0,"
                          "\"currentUsageWithPrecision\":200.0,\"freeTrialInfo\":{\"freeTrialStatus\":\"EXPIRED\","
                          "\"usageLimitWithPrecision\":500.0,\"currentUsageWithPrecision\":100.0}}],\"nextDateReset\":1756684800}";
    assert_int_equal(k2a_pool_parse_usage(expired, strlen(expired), &u), 0);
    assert_true(u.remaining == 800.0);
    assert_int_equal(u.next_reset_ms, 1756684800000LL); /* top level when the breakdown has none */

    /* integer fields when the precise ones are absent; clamped at 0 */
    const char *over = "{\"usageBreakdownList\":[{\"resourceType\":\"CREDIT\",\"usageLimit\":50,\"currentUsage\":70}]}";
    assert_int_equal(k2a_pool_parse_usage(over, strlen(over), &u), 0);
    assert_true(u.has_credit);
    assert_true(u.remaining == 0.0);

    const char *none = "{\"usageBreakdownList\":[{\"resourceType\":\"VIBE\",\"usageLimit\":50}],\"limits\":[]}";
    assert_int_equal(k2a_pool_parse_usage(none, strlen(none), &u), 0);
    assert_false(u.has_credit);
    assert_true(u.remaining == 0.0);

    assert_int_equal(k2a_pool_parse_usage("nope", 4, &u), K2A_EUPSTREAM_EVENT);
}

static void test_mask_email(void **state)
{
    static const char *const v[][2] = {{"caidaoli@gmail.com", "ca****li@*****.com"},
                                       {"abcd@gmail.com", "****@*****.com"},
                                       {"someone@sun.edu.pl", "so***ne@***.edu.pl"},
                                       {"abcde@localhost", "ab*de@*********"},
                                       {"not-an-email", "not-an-email"},
                                       {"a.b.c.d@x.y.z.w", "a.***.d@*.*.z.w"}};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); ++i) {
        char out[128];
        k2a_pool_mask_email(v[i][0], out, sizeof(out));
        assert_string_equal(out, v[i][1]);
    }
}

/* ---- error matrix ---- */

static void test_error_matrix(void **state)
{
    static const struct {
        int transport;
        int status;
        const char *body;
        k2a_pool_action_t action;
        int err;
        const char *detail;
    } cases[] = {
        {0, 200, "", K2A_ACT_OK, 0, "ok"},
        /* the account's ARN/identity: its configuration, never the client's fault */
        {0, 400, "{\"message\":\"profileArn is required for this request.\"}", K2A_ACT_CONFIG, K2A_EACCOUNT_INVALID,
         "profileArn not accepted (400 profileArn is required for this request.)"},
        {0, 403, "{\"message\":\"User is not authorized to make this call.\",\"reason\":null}", K2A_ACT_CONFIG,
         K2A_EACCOUNT_INVALID, "profileArn not accepted (403 User is not authorized to make this call.)"},
        {0, 403, "{\"message\":\"The bearer token included in the request is invalid.\",\"reason\":null}", K2A_ACT_AUTH,
         K2A_EUPSTREAM_AUTH, "access token rejected (403)"},
        {0, 401, "{\"message\":\"Unauthorized\"}", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH, "access token rejected (401)"},
        /* every §9 row of kiro-protocol-2026 (the bodies as kiro-sim answers them) */
        {0, 403,
         "{\"message\":\"Your User ID is temporarily suspended. We detected unusual user activity.\",\"reason\":"
         "\"TEMPORARILY_SUSPENDED\"}",
         K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, "suspended by Kiro (TEMPORARILY_SUSPENDED)"},
        {0, 403,
         "{\"message\":\"Your User ID (x) temporarily is suspended. We've locked your account as a security "
         "precaution.\",\"reason\":null}",
         K2A_ACT_BANNED, K2A_EACCOUNT_INVALID, NULL},
        {0, 423, "{\"message\":\"Your account is locked.\",\"reason\":null}", K2A_ACT_BANNED, K2A_EACCOUNT_INVALID,
         "account locked (423)"},
        {0, 429,
         "{\"message\":\"Due to suspicious activity, we are imposing temporary limits on how frequently your account "
         "(d-9067c98495.x) can send a request to Kiro while we investigate.\",\"reason\":null}",
         K2A_ACT_FLAGGED, K2A_ETHROTTLED, "flagged for suspicious activity (429)"},
        {0, 402,
         "{\"__type\":\"com.amazon.aws.codewhisperer#ServiceQuotaExceededException\",\"message\":\"You have reached the "
         "limit for overages.\",\"reason\":\"OVERAGE_REQUEST_LIMIT_EXCEEDED\"}",
         K2A_ACT_QUOTA, K2A_EEXHAUSTED, "overage limit reached (OVERAGE_REQUEST_LIMIT_EXCEEDED)"},
        {0, 400,
         "{\"__type\":\"com.amazon.aws.codewhisperer#ServiceQuotaExceededException\",\"message\":\"You have reached the "
         "limit for overages.\",\"reason\":\"OVERAGE_REQUEST_LIMIT_EXCEEDED\"}",
         K2A_ACT_QUOTA, K2A_EEXHAUSTED, "overage limit reached (OVERAGE_REQUEST_LIMIT_EXCEEDED)"},
        {0, 429,
         "{\"__type\":\"com.amazon.aws.codewhisperer#ThrottlingException\",\"message\":\"I am experiencing high "
         "traffic, please try again shortly.\",\"reason\":\"INSUFFICIENT_MODEL_CAPACITY\"}",
         K2A_ACT_CAPACITY, K2A_EUPSTREAM_CAPACITY, "model at capacity (INSUFFICIENT_MODEL_CAPACITY)"},
        {0, 400,
         "{\"__type\":\"com.amazon.aws.codewhisperer#ThrottlingException\",\"message\":\"I am experiencing high "
         "traffic, please try again shortly.\",\"reason\":\"INSUFFICIENT_MODEL_CAPACITY\"}",
         K2A_ACT_CAPACITY, K2A_EUPSTREAM_CAPACITY, "model at capacity (INSUFFICIENT_MODEL_CAPACITY)"},
        {0, 503, "{\"message\":\"x\",\"reason\":\"MODEL_TEMPORARILY_UNAVAILABLE\"}", K2A_ACT_CAPACITY, K2A_EUPSTREAM_CAPACITY,
         NULL},
        {0, 400,
         "{\"message\":\"`tool_use` ids were found without `tool_result` blocks immediately after: t1\",\"reason\":"
         "\"TOOL_USE_RESULT_MISMATCH\"}",
         K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, NULL},
        {0, 400,
         "{\"__type\":\"ValidationException\",\"message\":\"input_schema does not support oneOf, allOf, or anyOf at the "
         "top level\",\"reason\":\"TOOL_SCHEMA_INVALID\"}",
         K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, NULL},
        {0, 400, "{\"message\":\"Invalid tool use format.\",\"reason\":\"REQUEST_BODY_INVALID\"}", K2A_ACT_CLIENT,
         K2A_EUPSTREAM_BAD_REQUEST, "a tool was refused (400 Invalid tool use format.)"},
        {0, 400, "{\"message\":\"x\",\"reason\":\"TOOL_CONFIG_MISSING\"}", K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST, NULL},
        {0, 403, "{\"message\":\"Invalid token\"}", K2A_ACT_AUTH, K2A_EUPSTREAM_AUTH, NULL},
        {0, 524, "timeout", K2A_ACT_TRANSIENT, K2A_EUPSTREAM_SERVER, "upstream 524"},
        {0, 403, "{\"__type\":\"com.amazon.aws#AccessDeniedException\",\"message\":\"denied\"}", K2A_ACT_FORBIDDEN,
         K2A_EACCOUNT_INVALID, "account forbidden (403 AccessDeniedException)"},
        {0, 402, "{\"message\":\"You have reached the limit.\",\"reason\":\"MONTHLY_REQUEST_COUNT\"}", K2A_ACT_QUOTA,
         K2A_EEXHAUSTED, "quota exhausted (MONTHLY_REQUEST_COUNT)"},
        {0, 400, "{\"message\":\"limit\",\"error\":{\"reason\":\"MONTHLY_REQUEST_COUNT\"}}", K2A_ACT_QUOTA, K2A_EEXHAUSTED,
         "quota exhausted (MONTHLY_REQUEST_COUNT)"},
        {0, 402, "", K2A_ACT_QUOTA, K2A_EEXHAUSTED, "quota exhausted (402)"},
        {0, 429, "{\"message\":\"Too many requests, please wait before trying again.\",\"reason\":null}", K2A_ACT_THROTTLE,
         K2A_ETHROTTLED, "rate limited (429)"},
        {0, 500, "{\"message\":\"Encountered an unexpected error\",\"reason\":null}", K2A_ACT_TRANSIENT, K2A_EUPSTREAM_SERVER,
         "upstream 500"},
        {0, 503, "<html>", K2A_ACT_TRANSIENT, K2A_EUPSTREAM_SERVER, "upstream 503"},
        {0, 400, "{\"message\":\"Improperly formed request.\",\"reason\":null}", K2A_ACT_CLIENT, K2A_EUPSTREAM_BAD_REQUEST,
         "rejected as bad request (400 Improperly formed request.)"},
        {0, 400, "{\"message\":\"Input is too long.\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}", K2A_ACT_CLIENT,
         K2A_EUPSTREAM_CONTENT_LENGTH, "input too long (CONTENT_LENGTH_EXCEEDS_THRESHOLD)"},
        {0, 404, "not found", K2A_ACT_CLIENT, K2A_EHTTP_STATUS, "upstream 404 not found"},
        {K2A_ECONNECT_REFUSED, 0, NULL, K2A_ACT_TRANSIENT, K2A_ECONNECT_REFUSED, "upstream: connection refused"},
        {K2A_EFIRST_BYTE_TIMEOUT, 0, NULL, K2A_ACT_TRANSIENT, K2A_EFIRST_BYTE_TIMEOUT, NULL},
        {K2A_ETLS_HANDSHAKE, 0, NULL, K2A_ACT_TRANSIENT, K2A_ETLS_HANDSHAKE, NULL},
        {0, 400, "{\"message\":\"Invalid model. Please select a different model to continue.\",\"reason\":\"INVALID_MODEL_ID\"}",
         K2A_ACT_MODEL, K2A_EMODEL_UNAVAILABLE, "model not available to this account (INVALID_MODEL_ID)"},
        {K2A_ERESET_BEFORE_RESPONSE, 0, NULL, K2A_ACT_TRANSIENT, K2A_ERESET_BEFORE_RESPONSE, NULL},
        {K2A_EDNS, 0, NULL, K2A_ACT_LOCAL, K2A_EDNS, NULL},
        {K2A_ETLS_VERIFY, 0, NULL, K2A_ACT_LOCAL, K2A_ETLS_VERIFY, NULL},
        {K2A_EPROXY, 0, NULL, K2A_ACT_LOCAL, K2A_EPROXY, NULL},
        {K2A_ECANCELED, 0, NULL, K2A_ACT_CANCELED, K2A_ECANCELED, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        k2a_verdict_t v;
        k2a_pool_classify(cases[i].transport, cases[i].status, cases[i].body, cases[i].body ? strlen(cases[i].body) : 0, &v);
        if (v.action != cases[i].action || v.err != cases[i].err ||
            (cases[i].detail != NULL && strcmp(v.detail, cases[i].detail) != 0))
            fail_msg("case %zu: got %s/%s '%s'", i, k2a_pool_action_name(v.action), k2a_errname(v.err), v.detail);
    }
    k2a_verdict_t v;
    const char *b = "{\"message\":\"Improperly formed request.\",\"reason\":null}";
    k2a_pool_classify(0, 400, b, strlen(b), &v);
    assert_string_equal(v.message, "Improperly formed request.");
    assert_string_equal(v.reason, "");
    assert_int_equal(v.status, 400);

    /* refresh answers */
    static const struct {
        int transport, status;
        const char *body;
        k2a_pool_action_t action;
        int err;
    } rcases[] = {
        {0, 200, "{}", K2A_ACT_OK, 0},
        {0, 400, "{\"message\":\"Invalid refresh token provided\"}", K2A_ACT_INVALID, K2A_EACCOUNT_INVALID},
        {0, 401, "{\"message\":\"Invalid refresh token provided\"}", K2A_ACT_INVALID, K2A_EACCOUNT_INVALID},
        {0, 400, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid refresh token provided\"}", K2A_ACT_INVALID,
         K2A_EACCOUNT_INVALID},
        {0, 400, "{\"error\":\"invalid_client\",\"error_description\":\"Invalid client credentials\"}", K2A_ACT_INVALID,
         K2A_EACCOUNT_INVALID},
        {0, 429, "", K2A_ACT_THROTTLE, K2A_EREFRESH},
        {0, 502, "", K2A_ACT_TRANSIENT, K2A_EREFRESH},
        {K2A_ECONNECT_TIMEOUT, 0, NULL, K2A_ACT_TRANSIENT, K2A_EREFRESH},
        {K2A_EDNS, 0, NULL, K2A_ACT_LOCAL, K2A_EDNS},
    };
    for (size_t i = 0; i < sizeof(rcases) / sizeof(rcases[0]); ++i) {
        k2a_pool_classify_refresh(rcases[i].transport, rcases[i].status, rcases[i].body,
                                  rcases[i].body ? strlen(rcases[i].body) : 0, &v);
        if (v.action != rcases[i].action || v.err != rcases[i].err)
            fail_msg("refresh case %zu: got %s/%s '%s'", i, k2a_pool_action_name(v.action), k2a_errname(v.err), v.detail);
    }
    const char *ic = "{\"error\":\"invalid_client\",\"error_description\":\"Invalid client credentials\"}";
    k2a_pool_classify_refresh(0, 400, ic, strlen(ic), &v);
    assert_string_equal(v.detail, "IdC client rejected (400 Invalid client credentials)");
}

/* ---- arithmetic ---- */

static void test_backoff_math(void **state)
{
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 0, 0, 0), 2000);
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 1, 0, 0), 4000);
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 3, 0, 0), 16000);
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 7, 0, 0), 256000);
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 8, 0, 0), 300000);
    assert_int_equal(k2a_pool_backoff_ms(2000, 300000, 1000, 0, 0), 300000); /* no overflow */
    assert_int_equal(k2a_pool_backoff_ms(1000, 60000, 6, 0, 0), 60000);
    for (int i = 0; i < 10000; ++i) {
        uint64_t r = k2a_rand_u64();
        uint64_t d = k2a_pool_backoff_ms(1000, 60000, 2, 20, r);
        assert_true(d >= 3200 && d <= 4800);
        d = k2a_pool_backoff_ms(2000, 300000, 20, 20, r);
        assert_true(d >= 240000 && d <= 360000);
    }
    /* the extremes of the jitter are reachable */
    assert_int_equal(k2a_pool_backoff_ms(1000, 60000, 0, 20, 0), 800);
    assert_int_equal(k2a_pool_backoff_ms(1000, 60000, 0, 20, 4000), 1200);

    /* refresh-ahead: 80 % +- 5 % of the lifetime */
    assert_int_equal(k2a_pool_refresh_ahead_ms(3600000, 80, 0, 0), 2880000);
    for (int i = 0; i < 10000; ++i) {
        uint64_t d = k2a_pool_refresh_ahead_ms(3600000, 80, 5, k2a_rand_u64());
        assert_true(d >= 2700000 && d <= 3060000);
        d = k2a_pool_refresh_ahead_ms(5000, 80, 5, k2a_rand_u64());
        assert_true(d >= 3750 && d <= 4000); /* and never within 1 s of the expiry */
    }

    /* next month, UTC */
    assert_int_equal(k2a_pool_next_month_utc_ms(1700000000000LL), 1701388800000LL); /* 2023-11-14 -> 2023-12-01 */
    assert_int_equal(k2a_pool_next_month_utc_ms(1703980800000LL), 1704067200000LL); /* 2023-12-31 -> 2024-01-01 */
}

/* ---- a pool with valid tokens from an in-memory store (pool_fixture.h) ---- */

static void fixture_start(pf_fixture_t *f, size_t n, k2a_pool_strategy_t strategy, unsigned cap)
{
    k2a_pool_config_t pc;
    k2a_pool_config_init(&pc);
    pc.account_max_concurrency = cap;
    pf_fixture_start(f, n, strategy, &pc, NULL);
}

static void test_strategy_sequential(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 3, K2A_POOL_SEQUENTIAL, 0);
    assert_true(k2a_pool_ready(f.pool));
    k2a_lease_t l[4];
    for (int i = 0; i < 4; ++i)
        assert_int_equal(pf_take_index(&f, &l[i]), 0); /* stays on the current account */
    assert_string_equal(l[0].access_token, "access-token-0");
    assert_string_equal(l[0].description, "acct0");
    assert_int_equal(strlen(l[0].machine_id), 64);
    for (int i = 0; i < 4; ++i)
        k2a_pool_release(&l[i]);
    pf_cool(&f, 0, 429); /* unusable -> the next in config order */
    assert_int_equal(f.pool->accounts[0]->state, K2A_ACCOUNT_COOLING);
    assert_int_equal(pf_take_index(&f, &l[0]), 1);
    k2a_pool_release(&l[0]);
    /* account 0 recovers: sequential stays on account 1 (kiro2api semantics) */
    k2a_account_set_state(f.pool->accounts[0], K2A_ACCOUNT_OK, 0, "");
    assert_int_equal(pf_take_index(&f, &l[0]), 1);
    k2a_pool_release(&l[0]);
    /* exclusion (an account already tried by the request) */
    k2a_pool_exclude_t ex = {.ids = {f.pool->accounts[1]->id}, .n = 1};
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l[0], NULL), 0);
    assert_int_equal(l[0].index, 2);
    k2a_pool_release(&l[0]);
    /* everything unusable: K2A_ENO_ACCOUNT with the time until the soonest recovery */
    pf_cool(&f, 0, 402);
    pf_cool(&f, 1, 500);
    pf_cool(&f, 2, 429);
    uint64_t retry = 0;
    assert_int_equal(k2a_pool_acquire(f.pool, NULL, NULL, NULL, &l[0], &retry), K2A_ENO_ACCOUNT);
    assert_true(retry > 0 && retry <= 2400);
    assert_false(k2a_pool_ready(f.pool));
    pf_fixture_stop(&f);
}

/* Routing by model catalog: accounts whose known catalog lacks the model are skipped, an account without a catalog is
 * tried, INVALID_MODEL_ID marks remove a model, the pool's union and windows, and the catalogs in the state file. */
static void test_model_catalogs(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 3, K2A_POOL_SEQUENTIAL, 0);
    k2a_account_t **a = f.pool->accounts;
    k2a_account_catalog_restore(a[0], "{\"models\":[{\"modelId\":\"claude-sonnet-4.5\",\"modelName\":\"Sonnet\","
                                      "\"tokenLimits\":{\"maxInputTokens\":200000}},{\"modelId\":\"claude-sonnet-4.0\"}],"
                                      "\"fetchedAt\":1767225600000}");
    k2a_account_catalog_restore(a[2], "{\"models\":[{\"modelId\":\"claude-opus-4.8\",\"tokenLimits\":{\"maxInputTokens\":"
                                      "1000000,\"maxOutputTokens\":64000}},{\"modelId\":\"claude-sonnet-4.5\","
                                      "\"tokenLimits\":{\"maxInputTokens\":180000}}]}");
    k2a_account_catalog_restore(a[1], "not json"); /* ignored: still unknown */
    assert_non_null(a[0]->catalog);
    assert_null(a[1]->catalog);
    k2a_lease_t l;
    k2a_pool_exclude_t ex = {.n = 0, .model = "claude-opus-4.8"};
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l, NULL), 0);
    assert_int_equal(l.index, 1); /* account 0 lacks it, account 1 is not known yet: tried */
    k2a_pool_release(&l);
    k2a_account_mark_model_missing(a[1], "claude-opus-4.8"); /* Kiro said INVALID_MODEL_ID */
    assert_false(k2a_account_may_serve(a[1], "claude-opus-4.8"));
    assert_true(k2a_account_may_serve(a[1], "claude-sonnet-4.5"));
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l, NULL), 0);
    assert_int_equal(l.index, 2);
    assert_int_equal(k2a_account_model_window(a[2], "claude-opus-4.8"), 1000000);
    k2a_pool_release(&l);
    /* claude-sonnet-4 and claude-sonnet-4.0 are one model */
    ex.model = "claude-sonnet-4";
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l, NULL), 0);
    assert_int_equal(l.index, 0);
    k2a_pool_release(&l);
    /* a model nobody has */
    ex.model = "claude-sonnet-5";
    assert_true(k2a_pool_model_servable(f.pool, "claude-sonnet-5")); /* account 1 might */
    k2a_account_mark_model_missing(a[1], "claude-sonnet-5");
    assert_false(k2a_pool_model_servable(f.pool, "claude-sonnet-5"));
    assert_int_equal(k2a_pool_acquire(f.pool, &ex, NULL, NULL, &l, NULL), K2A_ENO_ACCOUNT);
    /* INVALID_MODEL_ID on an account with a catalog removes the model from it */
    k2a_account_mark_model_missing(a[0], "claude-sonnet-4.5");
    assert_int_equal(a[0]->catalog->n, 1);
    /* the union (accounts with a known catalog), sorted, and the windows */
    k2a_pool_model_t models[8];
    bool known = false;
    size_t n = k2a_pool_models(f.pool, models, 8, &known);
    assert_true(known);
    assert_int_equal(n, 3);
    assert_string_equal(models[0].id, "claude-opus-4.8");
    assert_int_equal(models[0].max_output, 64000);
    assert_string_equal(models[1].id, "claude-sonnet-4.0");
    assert_string_equal(models[2].id, "claude-sonnet-4.5");
    assert_int_equal(models[2].max_input, 180000);
    assert_int_equal(k2a_pool_models(f.pool, models, 1, &known), 1); /* bounded */
    assert_int_equal(k2a_pool_model_window(f.pool, "claude-opus-4.8"), 1000000);
    assert_int_equal(k2a_pool_model_window(f.pool, "claude-sonnet-4.5"), 180000);
    assert_int_equal(k2a_pool_model_window(f.pool, "claude-sonnet-4.6"), 1000000); /* built in */
    assert_int_equal(k2a_pool_model_window(f.pool, "claude-haiku-4.5"), 200000);
    /* the catalogs are in the state file, the account without one has none */
    k2a_buf_t json = K2A_BUF_INIT(0);
    assert_int_equal(k2a_pool_encode_state(f.pool, &json), 0);
    k2a_pool_snapshot_t snap;
    char err[128];
    assert_int_equal(k2a_pool_snapshot_decode(json.base, json.len, &snap, err, sizeof(err)), 0);
    assert_int_equal(snap.n, 3);
    assert_non_null(snap.accounts[0].catalog);
    assert_null(snap.accounts[1].catalog);
    assert_non_null(strstr(snap.accounts[2].catalog, "\"claude-opus-4.8\""));
    assert_non_null(strstr(snap.accounts[0].catalog, "\"fetchedAt\":1767225600000"));
    k2a_pool_snapshot_dispose(&snap);
    k2a_buf_dispose(&json);
    pf_fixture_stop(&f);
}

/* Finding of the fault suite (test_faults_upstream, 402 on every account then SIGHUP): when the last eligible account left
 * the selection list, the cursors stayed on it; an account that became eligible later did not reset them, so every pick
 * went on returning the exhausted (or cooling) account and the healthy one was never used. */
static void test_cursor_after_every_account_left(void **state)
{
    for (int strategy = K2A_POOL_SEQUENTIAL; strategy <= K2A_POOL_ROUND_ROBIN; ++strategy) {
        pf_fixture_t f;
        fixture_start(&f, 3, (k2a_pool_strategy_t)strategy, 0);
        k2a_lease_t l;
        pf_cool(&f, 0, 402);
        pf_cool(&f, 1, 402);
        pf_cool(&f, 2, 429);
        assert_int_equal(k2a_pool_acquire(f.pool, NULL, NULL, NULL, &l, NULL), K2A_ENO_ACCOUNT);
        assert_null(f.pool->seq_cursor);
        assert_null(f.pool->rr_cursor);
        /* account 2 recovers: it is the one picked, every time, never an exhausted one */
        k2a_account_set_state(f.pool->accounts[2], K2A_ACCOUNT_OK, 0, "");
        for (int i = 0; i < 3; ++i) {
            assert_int_equal(pf_take_index(&f, &l), 2);
            k2a_pool_release(&l);
        }
        pf_fixture_stop(&f);
    }
}

static void test_strategy_round_robin(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 3, K2A_POOL_ROUND_ROBIN, 0);
    k2a_lease_t l;
    size_t seen[7];
    for (int i = 0; i < 7; ++i) {
        seen[i] = pf_take_index(&f, &l);
        k2a_pool_release(&l);
    }
    size_t expect[] = {0, 1, 2, 0, 1, 2, 0};
    assert_memory_equal(seen, expect, sizeof(expect));
    pf_cool(&f, 2, 429);
    for (int i = 0; i < 4; ++i) {
        seen[i] = pf_take_index(&f, &l);
        k2a_pool_release(&l);
    }
    size_t expect2[] = {1, 0, 1, 0};
    assert_memory_equal(seen, expect2, sizeof(expect2));
    pf_fixture_stop(&f);
}

static void test_strategy_balanced(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 3, K2A_POOL_BALANCED, 0);
    k2a_lease_t l[6];
    /* fewest in flight: 0, 1, 2, then again 0, 1, 2 (ties by least recently used) */
    size_t got[6];
    for (int i = 0; i < 6; ++i)
        got[i] = pf_take_index(&f, &l[i]);
    size_t expect[] = {0, 1, 2, 0, 1, 2};
    assert_memory_equal(got, expect, sizeof(expect));
    /* release both leases of account 1: it has the fewest in flight now */
    k2a_pool_release(&l[1]);
    k2a_pool_release(&l[4]);
    k2a_lease_t x;
    assert_int_equal(pf_take_index(&f, &x), 1);
    k2a_pool_release(&x);
    /* release one of account 2: accounts 1 (0 in flight) then 2 (1 in flight) */
    k2a_pool_release(&l[5]);
    k2a_lease_t y, z;
    assert_int_equal(pf_take_index(&f, &y), 1);
    assert_int_equal(pf_take_index(&f, &z), 2);
    assert_int_equal(f.pool->accounts[0]->inflight, 2);
    assert_int_equal(f.pool->accounts[1]->inflight, 1);
    assert_int_equal(f.pool->accounts[2]->inflight, 2);
    k2a_pool_release(&y);
    k2a_pool_release(&z);
    k2a_pool_release(&l[0]);
    k2a_pool_release(&l[3]);
    k2a_pool_release(&l[2]);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(f.pool->accounts[i]->inflight, 0);
    /* a cooling account is skipped; many in flight grow the buckets */
    pf_cool(&f, 0, 500);
    k2a_lease_t many[40];
    for (int i = 0; i < 40; ++i)
        assert_int_not_equal(pf_take_index(&f, &many[i]), 0);
    assert_int_equal(f.pool->accounts[1]->inflight, 20);
    assert_int_equal(f.pool->accounts[2]->inflight, 20);
    for (int i = 0; i < 40; ++i)
        k2a_pool_release(&many[i]);
    pf_fixture_stop(&f);
}

static void test_strategy_concurrency_cap(void **state)
{
    for (int s = 0; s < 3; ++s) {
        pf_fixture_t f;
        fixture_start(&f, 2, (k2a_pool_strategy_t)s, 2);
        k2a_lease_t l[5];
        int counts[2] = {0, 0};
        for (int i = 0; i < 4; ++i)
            ++counts[pf_take_index(&f, &l[i])];
        assert_int_equal(counts[0], 2);
        assert_int_equal(counts[1], 2);
        /* every account at its cap: outside a coroutine there is no queue to wait in */
        assert_int_equal(k2a_pool_acquire(f.pool, NULL, NULL, NULL, &l[4], NULL), K2A_EBUSY);
        k2a_pool_release(&l[0]);
        assert_int_equal(pf_take_index(&f, &l[4]), l[0].index);
        for (int i = 1; i < 5; ++i)
            k2a_pool_release(&l[i]);
        pf_fixture_stop(&f);
    }
}

/* In a coroutine, an acquire at the cap queues until a release. */
typedef struct st_queue_ctx_t {
    pf_fixture_t *f;
    int rc;
    size_t index;
    bool done;
} queue_ctx_t;

static void queued_acquire(k2a_coro_t *co, void *arg)
{
    queue_ctx_t *q = arg;
    k2a_lease_t l;
    q->rc = k2a_pool_acquire(q->f->pool, NULL, NULL, NULL, &l, NULL);
    if (q->rc == 0) {
        q->index = l.index;
        k2a_pool_release(&l);
    }
    q->done = true;
}

static void test_concurrency_queue(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 1, K2A_POOL_BALANCED, 1);
    k2a_lease_t l;
    assert_int_equal(pf_take_index(&f, &l), 0);
    queue_ctx_t q = {.f = &f};
    assert_int_equal(k2a_coro_spawn(queued_acquire, &q), 0);
    uv_run(&f.loop, UV_RUN_NOWAIT);
    assert_false(q.done);
    assert_int_equal(f.pool->stats.queue_waits, 1);
    k2a_pool_release(&l); /* wakes the queued acquire */
    while (!q.done)
        uv_run(&f.loop, UV_RUN_ONCE);
    assert_int_equal(q.rc, 0);
    assert_int_equal(q.index, 0);
    pf_fixture_stop(&f);
}

static void test_state_machine(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 2, K2A_POOL_SEQUENTIAL, 0);
    k2a_account_t *a = f.pool->accounts[0];
    k2a_verdict_t v;
    /* 429: cooling 2 s +-20 %, then 4 s: only the first failure since OK backs off further */
    pf_cool(&f, 0, 429);
    int64_t d1 = a->until - k2a_pool_now_ms();
    assert_true(d1 > 1500 && d1 <= 2400);
    pf_cool(&f, 0, 429); /* an in-flight request's 429 does not stretch the cooldown */
    assert_true(a->until - k2a_pool_now_ms() <= 2400);
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    pf_cool(&f, 0, 429);
    int64_t d2 = a->until - k2a_pool_now_ms();
    assert_true(d2 > 3000 && d2 <= 4800);
    /* success resets the backoff */
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    k2a_pool_classify(0, 200, "", 0, &v);
    k2a_account_apply_verdict(a, &v, a->token_gen);
    pf_cool(&f, 0, 500);
    int64_t d3 = a->until - k2a_pool_now_ms();
    assert_true(d3 > 700 && d3 <= 1200);
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    /* 402 -> exhausted until the known reset date, else the 1st of next month */
    a->next_reset = k2a_pool_now_ms() + 86400000LL * 3;
    pf_cool(&f, 0, 402);
    assert_int_equal(a->state, K2A_ACCOUNT_EXHAUSTED);
    assert_int_equal(a->until, a->next_reset);
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    a->next_reset = 0;
    pf_cool(&f, 0, 402);
    assert_int_equal(a->until, k2a_pool_next_month_utc_ms(k2a_pool_now_ms()));
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    /* 400: no penalty */
    const char *bad = "{\"message\":\"Improperly formed request.\",\"reason\":null}";
    k2a_pool_classify(0, 400, bad, strlen(bad), &v);
    k2a_account_apply_verdict(a, &v, a->token_gen);
    assert_int_equal(a->state, K2A_ACCOUNT_OK);
    assert_true(a->eligible);
    /* a "suspicious activity" 429: cooling for the whole KIRO_FLAGGED_COOLDOWN_S, however many requests were in flight */
    const char *flag = "{\"message\":\"Due to suspicious activity, we are imposing temporary limits on how frequently your "
                       "account (d-1.x) can send a request to Kiro while we investigate.\",\"reason\":null}";
    k2a_pool_classify(0, 429, flag, strlen(flag), &v);
    assert_int_equal(v.action, K2A_ACT_FLAGGED);
    k2a_account_apply_verdict(a, &v, a->token_gen);
    assert_int_equal(a->state, K2A_ACCOUNT_COOLING);
    assert_true(a->until >= k2a_pool_now_ms() + 1799 * 1000LL);
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    /* the model at capacity: counted, no cooling */
    const char *cap = "{\"__type\":\"com.amazon.aws.codewhisperer#ThrottlingException\",\"message\":\"I am experiencing high "
                      "traffic, please try again shortly.\",\"reason\":\"INSUFFICIENT_MODEL_CAPACITY\"}";
    k2a_pool_classify(0, 429, cap, strlen(cap), &v);
    assert_int_equal(v.action, K2A_ACT_CAPACITY);
    k2a_account_apply_verdict(a, &v, a->token_gen);
    assert_int_equal(a->state, K2A_ACCOUNT_OK);
    /* suspended by Kiro: invalid at once, no refresh first */
    const char *banned = "{\"message\":\"Your User ID is temporarily suspended.\",\"reason\":\"TEMPORARILY_SUSPENDED\"}";
    k2a_pool_classify(0, 403, banned, strlen(banned), &v);
    assert_int_equal(v.action, K2A_ACT_BANNED);
    k2a_account_apply_verdict(a, &v, a->token_gen);
    assert_int_equal(a->state, K2A_ACCOUNT_INVALID);
    assert_non_null(strstr(a->reason, "TEMPORARILY_SUSPENDED"));
    k2a_account_set_state(a, K2A_ACCOUNT_OK, 0, "");
    /* a non-bearer 403 kills the token (background refresh); a 403 with a newer token -> invalid */
    const char *susp = "{\"message\":\"denied\",\"reason\":\"AccessDeniedException\"}";
    k2a_pool_classify(0, 403, susp, strlen(susp), &v);
    uint64_t gen = a->token_gen;
    k2a_account_apply_verdict(a, &v, gen);
    assert_int_equal(a->state, K2A_ACCOUNT_OK);
    assert_false(k2a_account_token_valid(a, k2a_pool_now_ms()));
    assert_true(a->refreshing); /* a refresh job was started (it will fail: no upstream in this test) */
    k2a_account_apply_verdict(a, &v, gen + 1);
    assert_int_equal(a->state, K2A_ACCOUNT_INVALID);
    assert_non_null(strstr(a->reason, "AccessDeniedException"));
    assert_false(a->eligible);
    pf_fixture_stop(&f);
}

/* ---- rendering ---- */

static void test_render(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 2, K2A_POOL_SEQUENTIAL, 0);
    pf_cool(&f, 1, 429);
    k2a_buf_t out = K2A_BUF_INIT(0);
    assert_int_equal(k2a_pool_render_tokens_json(f.pool, &out), 0);
    char *json = k2a_buf_cstr(&out);
    assert_non_null(strstr(json, "\"total_tokens\":2,\"active_tokens\":1"));
    assert_non_null(strstr(json, "\"description\":\"acct1\""));
    assert_non_null(strstr(json, "\"state\":\"cooling\""));
    assert_non_null(strstr(json, "\"token_preview\":\"****\""));
    assert_null(strstr(json, "access-token-0")); /* never a token */
    assert_non_null(strstr(json, "\"pool_stats\":{"));
    k2a_buf_reset(&out);
    k2a_pool_render_metrics(f.pool, &out);
    json = k2a_buf_cstr(&out);
    assert_non_null(strstr(json, "k2a_account_up{account=\"0\",name=\"acct0\"} 1"));
    assert_non_null(strstr(json, "k2a_account_up{account=\"1\",name=\"acct1\"} 0"));
    assert_non_null(strstr(json, "k2a_account_errors_total{account=\"1\",name=\"acct1\",class=\"throttle\"} 1"));
    assert_non_null(strstr(json, "k2a_pool_accounts{state=\"cooling\"} 1"));
    assert_null(strstr(json, "access-token"));
    k2a_buf_dispose(&out);
    pf_fixture_stop(&f);
}

/* ---- state file ---- */

static void test_state_file(void **state)
{
    char dir[] = "/tmp/k2a-pool-state-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/sub/dir/state.json", dir);

    /* encode/decode round trip */
    k2a_pool_snapshot_t s = {calloc(2, sizeof(k2a_account_snapshot_t)), 2, 1234};
    pf_key_of("Social", "orig-a", s.accounts[0].key);
    s.accounts[0].refresh_token = strdup("rotated-a-r7");
    s.accounts[0].access_token = strdup("acc\"ess-a");
    s.accounts[0].expires_at_ms = 1700000000000LL;
    s.accounts[0].expires_in_s = 3600;
    snprintf(s.accounts[0].state, sizeof(s.accounts[0].state), "exhausted");
    s.accounts[0].until_ms = 1800000000000LL;
    s.accounts[0].reason = strdup("quota exhausted (MONTHLY_REQUEST_COUNT)");
    s.accounts[0].usage_known = true;
    s.accounts[0].credits_remaining = 12.5;
    s.accounts[0].requests = 42;
    pf_key_of("IdC", "orig-b", s.accounts[1].key);
    s.accounts[1].refresh_token = strdup("b");
    snprintf(s.accounts[1].state, sizeof(s.accounts[1].state), "ok");
    k2a_buf_t json = K2A_BUF_INIT(0);
    assert_int_equal(k2a_pool_snapshot_encode(&s, &json), 0);
    k2a_pool_snapshot_t d;
    char err[256];
    assert_int_equal(k2a_pool_snapshot_decode(json.base, json.len, &d, err, sizeof(err)), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(d.saved_at_ms, 1234);
    const k2a_account_snapshot_t *a = k2a_pool_snapshot_find(&d, s.accounts[0].key);
    assert_non_null(a);
    assert_string_equal(a->refresh_token, "rotated-a-r7");
    assert_string_equal(a->access_token, "acc\"ess-a");
    assert_string_equal(a->state, "exhausted");
    assert_int_equal(a->until_ms, 1800000000000LL);
    assert_string_equal(a->reason, "quota exhausted (MONTHLY_REQUEST_COUNT)");
    assert_true(a->usage_known);
    assert_true(a->credits_remaining == 12.5);
    assert_int_equal(a->requests, 42);
    assert_null(k2a_pool_snapshot_find(&d, "nope"));
    k2a_pool_snapshot_dispose(&d);

    /* the atomic write creates the parent directories (0700) and the file (0600), and leaves no temp file */
    assert_int_equal(k2a_pool_write_file_atomic(path, json.base, json.len), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char sub[300];
    snprintf(sub, sizeof(sub), "%s/sub/dir", dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(k2a_pool_write_file_atomic(path, "{}", 2), 0); /* replaces */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", sub);
    assert_int_equal(system(cmd), 0);

    /* the file store: load what was written */
    assert_int_equal(k2a_pool_write_file_atomic(path, json.base, json.len), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    k2a_pool_store_t *fs = k2a_pool_file_store_create(&loop, path);
    assert_int_equal(fs->load(fs, &d, err, sizeof(err)), 0);
    assert_int_equal(d.n, 2);
    k2a_pool_snapshot_dispose(&d);
    /* corrupt -> K2A_ECONFIG, the file moved aside (kept for manual recovery), the next load finds nothing */
    assert_int_equal(k2a_pool_write_file_atomic(path, "{\"version\":1,\"accounts\":[{", 27), 0);
    assert_int_equal(fs->load(fs, &d, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "is corrupt"));
    assert_non_null(strstr(err, "moved aside to"));
    assert_int_equal(fs->load(fs, &d, err, sizeof(err)), K2A_ENOTFOUND);
    /* unknown version is corrupt too */
    assert_int_equal(k2a_pool_snapshot_decode("{\"version\":9,\"accounts\":[]}", 27, &d, err, sizeof(err)), K2A_ECONFIG);
    fs->destroy(fs);
    uv_loop_close(&loop);
    k2a_pool_snapshot_dispose(&s);
    k2a_buf_dispose(&json);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The pool restores a rotated refresh token from the state file and writes changes back. */
static void test_state_restore(void **state)
{
    char dir[] = "/tmp/k2a-pool-restore-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/state.json", dir);
    k2a_pool_snapshot_t s = {calloc(2, sizeof(k2a_account_snapshot_t)), 2, 1};
    pf_key_of("Social", "rt-0", s.accounts[0].key);
    s.accounts[0].refresh_token = strdup("rt-0-rotated-r3");
    s.accounts[0].access_token = strdup("restored-access-0");
    s.accounts[0].expires_at_ms = k2a_pool_now_ms() + 600000;
    s.accounts[0].expires_in_s = 3600;
    snprintf(s.accounts[0].state, sizeof(s.accounts[0].state), "ok");
    pf_key_of("Social", "gone", s.accounts[1].key); /* an account not configured now: kept in the file */
    s.accounts[1].refresh_token = strdup("gone-rotated");
    snprintf(s.accounts[1].state, sizeof(s.accounts[1].state), "ok");
    k2a_buf_t json = K2A_BUF_INIT(0);
    k2a_pool_snapshot_encode(&s, &json);
    assert_int_equal(k2a_pool_write_file_atomic(path, json.base, json.len), 0);
    k2a_buf_dispose(&json);
    k2a_pool_snapshot_dispose(&s);

    uv_loop_t loop;
    uv_loop_init(&loop);
    assert_int_equal(k2a_coro_runtime_init(&loop, NULL), 0);
    k2a_pool_config_t pc;
    k2a_pool_config_init(&pc);
    pc.auth_token = "[{\"refreshToken\":\"rt-0\"},{\"refreshToken\":\"rt-1\",\"disabled\":true}]";
    pc.state_file = path;
    pc.usage_poll_interval_s = 0;
    pc.warmup = false;
    k2a_pool_t *p;
    char err[256];
    assert_int_equal(k2a_pool_create(&loop, NULL, &pc, NULL, &p, err, sizeof(err)), 0);
    assert_string_equal(p->accounts[0]->refresh_token, "rt-0-rotated-r3");
    assert_string_equal(p->accounts[0]->access_token, "restored-access-0");
    assert_true(k2a_pool_ready(p));
    assert_int_equal(p->accounts[1]->state, K2A_ACCOUNT_DISABLED);
    k2a_account_info_t info;
    assert_int_equal(k2a_pool_account_info(p, 0, &info), 0);
    assert_string_equal(info.refresh_token_tail, "****d-r3");
    /* a change is written back (debounced, on the thread pool) */
    ++p->accounts[0]->requests;
    k2a_pool_mark_dirty(p, true);
    while (p->saving || p->dirty)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(p->stats.saves, 1);
    k2a_pool_shutdown(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_pool_destroy(p);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);

    FILE *fp = fopen(path, "r");
    char buf[8192];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    k2a_pool_snapshot_t back;
    assert_int_equal(k2a_pool_snapshot_decode(buf, n, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 3); /* two configured accounts and the orphan */
    char k[65];
    pf_key_of("Social", "gone", k);
    assert_non_null(k2a_pool_snapshot_find(&back, k));
    assert_string_equal(k2a_pool_snapshot_find(&back, k)->refresh_token, "gone-rotated");
    pf_key_of("Social", "rt-0", k);
    assert_string_equal(k2a_pool_snapshot_find(&back, k)->refresh_token, "rt-0-rotated-r3");
    assert_int_equal(k2a_pool_snapshot_find(&back, k)->requests, 1);
    k2a_pool_snapshot_dispose(&back);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* SIGHUP reload: kept accounts keep their tokens, removed ones live on while leased, new ones appear. */
static void test_reload(void **state)
{
    pf_fixture_t f;
    fixture_start(&f, 3, K2A_POOL_ROUND_ROBIN, 0);
    k2a_lease_t held;
    assert_int_equal(pf_take_index(&f, &held), 0);
    k2a_account_t *acct0 = held.account;
    char err[256];
    /* account 0 removed (still leased), account 2 disabled, a new account 3 added, order changed */
    assert_int_equal(
        k2a_pool_reload(f.pool,
                        "[{\"refreshToken\":\"rt-2\",\"disabled\":true},{\"refreshToken\":\"rt-1\",\"description\":\"renamed\"},"
                        "{\"refreshToken\":\"rt-3\"}]",
                        err, sizeof(err)),
        0);
    assert_int_equal(k2a_pool_naccounts(f.pool), 3);
    assert_int_equal(f.pool->accounts[0]->state, K2A_ACCOUNT_DISABLED);
    assert_string_equal(f.pool->accounts[1]->cfg.description, "renamed");
    assert_string_equal(f.pool->accounts[1]->access_token, "access-token-1"); /* kept */
    assert_int_equal(f.pool->accounts[1]->index, 1);
    assert_null(f.pool->accounts[2]->access_token); /* new: needs a refresh */
    assert_true(acct0->removed);
    assert_string_equal(held.access_token, "access-token-0"); /* the lease still works */
    k2a_pool_release(&held);                                  /* frees the removed account */
    /* a bad configuration changes nothing */
    assert_int_equal(k2a_pool_reload(f.pool, "[{\"auth\":\"IdC\",\"refreshToken\":\"x\"}]", err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "entry 0"));
    assert_int_equal(k2a_pool_naccounts(f.pool), 3);
    pf_fixture_stop(&f);
}

int main(void)
{
    k2a_log_configure(K2A_LOG_WARN, K2A_LOG_TEXT, true, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_array_object_file),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_error_message_is_one_printable_line),
        cmocka_unit_test(test_config_secrets_masked),
        cmocka_unit_test(test_config_strategy),
        cmocka_unit_test(test_credit_vectors),
        cmocka_unit_test(test_mask_email),
        cmocka_unit_test(test_error_matrix),
        cmocka_unit_test(test_backoff_math),
        cmocka_unit_test(test_strategy_sequential),
        cmocka_unit_test(test_model_catalogs),
        cmocka_unit_test(test_strategy_round_robin),
        cmocka_unit_test(test_cursor_after_every_account_left),
        cmocka_unit_test(test_strategy_balanced),
        cmocka_unit_test(test_strategy_concurrency_cap),
        cmocka_unit_test(test_concurrency_queue),
        cmocka_unit_test(test_state_machine),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_state_file),
        cmocka_unit_test(test_state_restore),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
