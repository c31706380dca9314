/*
 * kiro-sim entry point: parses the command line, raises the open-file limit (the benchmark opens 10 000
 * connections), starts the simulator on one libuv loop and prints exactly one line on stdout,
 * "kiro-sim listening on http://HOST:PORT", before anything else, so that tests can start it on --port 0.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "sim/sim.h"

static const char usage_text[] =
    "Usage: kiro-sim [options]\n"
    "A Kiro (AWS CodeWhisperer) simulator for tests, benchmarks and demos.\n\n"
    "Options:\n"
    "  --host ADDR                  listen address, an IP literal (default 127.0.0.1)\n"
    "  --port N                     listen port; 0 picks a free one (default 0)\n"
    "  --tls-cert FILE --tls-key FILE  serve HTTPS (HTTP/1.1 and h2 via ALPN)\n"
    "  --token-ttl SECONDS          access-token lifetime / expiresIn (default 3600)\n"
    "  --idc-client-id ID --idc-client-secret S  the only IdC client accepted (default: any non-empty pair)\n"
    "  --fixtures-dir DIR           base of [[sim:replay file=...]] (default $K2A_SOURCE_DIR/tests/fixtures/upstream,\n"
    "                               else ./tests/fixtures/upstream)\n"
    "  --chunk BYTES                split every reply body into writes of BYTES (default: one write per frame)\n"
    "  --max-body-bytes BYTES       request size limit (2026 default 615000: above it 400 Improperly formed request.;\n"
    "                               a real-world alternative is 1250000); --max-payload is the same option\n"
    "  --max-tool-description N     longest accepted tool description in characters (10000)\n"
    "  --model ID                   accept one more modelId (repeatable; one the catalog has keeps its tier)\n"
    "  --slow-refresh-ms MS         delay of sim-slowrefresh-* refreshes (500)\n"
    "  --bad-refresh-status N       status of a rejected refresh token (401; real Social also uses 400)\n"
    "  --strict-headers             a missing/malformed fingerprint header of a generate call is a 400 (default: a\n"
    "                               warning, counted in /sim/stats header_warnings and logged)\n"
    "  --overage-status N           status of sim-overage-* accounts, 402 (default) or 400\n"
    "  --capacity-status N          status of sim-capacity-* accounts, 429 (default) or 400\n"
    "  --legacy-2025                Kiro as it was in 2025: no profileArn requirement, the old uppercase model ids,\n"
    "                               the old unprefixed routes only, no header checks, 2025 error bodies, and a body\n"
    "                               over --max-payload (default 600000) answers CONTENT_LENGTH_EXCEEDS_THRESHOLD\n"
    "  --help, --version\n\n"
    "The first line on stdout is \"kiro-sim listening on http[s]://HOST:PORT\".\n\n"
    "Kiro as it is in 2026 (the default; shared/docs/kiro-protocol-2026.md section 13):\n"
    "  Routes take an optional region prefix, /us-east-1/... or /eu-central-1/... (none = us-east-1; another region\n"
    "  -> 404): POST /{r}/refreshToken, /{r}/token, /{r}/generateAssistantResponse, GET /{r}/getUsageLimits,\n"
    "  GET /{r}/ListAvailableModels?origin=AI_EDITOR&maxResults=N[&profileArn][&nextToken] (5 models a page),\n"
    "  POST /{r}/ with content-type application/x-amz-json-1.0 and x-amz-target\n"
    "  AmazonCodeWhispererStreamingService.GenerateAssistantResponse, AmazonCodeWhispererService.ListAvailableProfiles\n"
    "  (body {\"maxResults\":10}) or AmazonCodeWhispererService.ListAvailableModels (another target or content type\n"
    "  -> 400 UnknownOperationException), POST /entra/token (external_idp, form-encoded), POST /{r}/mcp (web search, JSON-RPC\n  "
    "tools/call web_search; [[mcp:error]], [[mcp:empty]], [[mcp:stall ms=N]] in the query).\n"
    "  generateAssistantResponse checks, first failure wins:\n"
    "   bearer: unknown/expired -> 403 {\"message\":\"The bearer token included in the request is invalid.\"}; also a\n"
    "     ksk_ key without tokentype: API_KEY, an external_idp token without tokentype: EXTERNAL_IDP\n"
    "   headers x-amzn-codewhisperer-optout (true|false), x-amzn-kiro-agent-mode (vibe|spec), amz-sdk-invocation-id\n"
    "     (UUID), amz-sdk-request (attempt=N; max=M), user-agent and x-amz-user-agent (aws-sdk-js/... with\n"
    "     KiroIDE-<ver>-<64 hex machineId>): warning, or 400 Improperly formed under --strict-headers\n"
    "   body over --max-body-bytes -> 400 Improperly formed request.; malformed JSON -> 400 Improperly formed\n"
    "   no root profileArn (not for ksk_) -> 400 {\"message\":\"profileArn is required for this request.\"}\n"
    "   profileArn not the account's -> 403 {\"message\":\"User is not authorized to make this call.\",\"reason\":null};\n"
    "     the Builder ID placeholder from an IdC/external_idp token -> 403 bearer invalid\n"
    "   profileArn region not the host region -> 400 Improperly formed request.\n"
    "   unknown keys, nulls, wrong types, conversation rules -> 400 Improperly formed request.\n"
    "   tool schema root with oneOf/anyOf/allOf or a type other than object -> 400 TOOL_SCHEMA_INVALID; tool name\n"
    "     outside [a-zA-Z0-9_-]{1,64} or a blank description -> 400 Invalid tool use format. REQUEST_BODY_INVALID;\n"
    "     a toolUse not answered in the next user message, or an orphan toolResult -> 400 TOOL_USE_RESULT_MISMATCH;\n"
    "     tool traffic with no current tools -> 400 TOOL_CONFIG_MISSING\n"
    "   additionalModelRequestFields on a model without the schema -> 400 additionalModelRequestFields is not\n"
    "     supported for this model; another key or an effort outside the model's enum -> 400 Invalid\n"
    "     additionalModelRequestFields\n"
    "   modelId (current or history) not a dotted catalog id, or opus/gpt on a FREE account -> 400 INVALID_MODEL_ID\n"
    "     catalog: auto claude-sonnet-5 claude-opus-5 claude-opus-4.8 .7 .6 .5 claude-sonnet-4.6 .5 claude-sonnet-4.0\n"
    "     (and claude-sonnet-4) claude-haiku-4.5 deepseek-3.2 minimax-m2.5 minimax-m2.1 glm-5 qwen3-coder-next\n"
    "     gpt-5.6-sol gpt-5.6-terra gpt-5.6-luna\n"
    "   body bytes / 4 above the model's maxInputTokens -> 400 Input is too long. CONTENT_LENGTH_EXCEEDS_THRESHOLD\n"
    "  REST calls (getUsageLimits, ListAvailableModels) with profileArn: the Builder ID placeholder -> 403\n"
    "  {\"message\":\"Invalid token\"}; another account's -> 403 not authorized; another region -> 400.\n"
    "  /sim/stats also counts header_warnings and, per TCP connection, the distinct bearer tokens and accounts:\n"
    "  connections_multi_account, max_accounts_per_connection, connections_multi_token, max_tokens_per_connection;\n"
    "  per account, last_request: the status, modelId, profileArn, host region, path, tokentype header and header\n"
    "  warnings of its last generate call (null before one); conversations: the conversationIds of its generate calls\n"
    "  with their counts (the first 64); generate_times_ms: when its last 512 generate calls arrived (monotonic ms).\n\n"
    "Accounts are chosen by refresh token (Social /refreshToken and IdC /token alike, unless said otherwise):\n"
    "  sim-ok-X          healthy             sim-rotate-X     new refresh token X-rN on every refresh, old one -> 401\n"
    "  sim-badrefresh-X  refresh -> 401      sim-exhausted-X  0 credits left, generate -> 402 MONTHLY_REQUEST_COUNT\n"
    "  sim-429-X, sim-403-X, sim-500-X       generate answers that status with Kiro's JSON body\n"
    "  sim-403once-X     the first generate -> 403; tokens from later refreshes work\n"
    "  sim-slowrefresh-X refresh answers after --slow-refresh-ms\n"
    "  sim-ttlN-X        access tokens expire after N seconds (expiresIn N); then 403 bearer invalid\n"
    "  sim-overage-X     generate -> 402 OVERAGE_REQUEST_LIMIT_EXCEEDED   sim-capacity-X  -> 429 INSUFFICIENT_MODEL_CAPACITY\n"
    "  sim-suspicious-X  generate -> 429 \"Due to suspicious activity...\"  sim-suspended-X -> 403 TEMPORARILY_SUSPENDED\n"
    "  sim-423-X         generate -> 423\n"
    " Who the account is (2026) and its profileArn; every kind above is a Social account in us-east-1:\n"
    "  Social (default)  arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK, returned by /refreshToken\n"
    "                    and listed by ListAvailableProfiles in the account's region (empty list in the other)\n"
    "  sim-social-X      the same, explicitly       sim-free-X  the same on the FREE tier (no opus, no gpt)\n"
    "  sim-socialeu-X    Social in eu-central-1: arn:aws:codewhisperer:eu-central-1:699475941385:profile/EUSIMSOCIAL1\n"
    "  sim-idc-X, sim-idceu-X  IdC enterprise in us-east-1 / eu-central-1 (refresh on /token only, no ARN in it): a\n"
    "                    real ARN arn:aws:codewhisperer:<region>:610548660232:profile/<12 chars>, listed by\n"
    "                    ListAvailableProfiles in its own region only (empty list in the other)\n"
    "  sim-builderid-X   IdC Builder ID (/token only): the placeholder\n"
    "                    arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX; ListAvailableProfiles -> 403\n"
    "  sim-extidp-X      external_idp (POST /entra/token only; client_id, grant_type=refresh_token, refresh_token, a\n"
    "                    scope with offline_access): a real us-east-1 ARN from ListAvailableProfiles; every call needs\n"
    "                    tokentype: EXTERNAL_IDP (ListAvailableProfiles without it: an empty list)\n"
    "  ksk_sim-X         an API key: the bearer itself (no refresh), with tokentype: API_KEY; no profileArn needed\n"
    "  Social kinds refresh on /refreshToken and /token; IdC kinds on /token only. Refresh in another region than the\n"
    "  account's still works (refresh tokens are not known to be region-bound).\n\n"
    "Directives in the last user message (content or tool-result text) shape the reply:\n"
    "  (none)                               \"echo: <first 200 characters of the text>\" in frames of 1-8 characters\n"
    "  [[sim:text frames=N size=S]]         N text frames of S bytes\n"
    "  [[sim:tool name=NAME input=JSON pieces=K text=\"...\"]]  optional text, then a tool call whose input arrives\n"
    "                                       in K pieces cut anywhere, also inside a UTF-8 sequence (repeatable)\n"
    "  [[sim:websearch query=\"...\" name=web_search]]  the model asks for a web search: a toolUse NAME {\"query\":...}\n"
    "  [[sim:thinking text=\"...\"]]          <thinking>...</thinking> first, tags split across frames\n"
    "  [[sim:exception type=T after=N message=\"...\"]]  an exception frame after N frames\n"
    "  [[sim:status code=NNN message=\"...\"]]  that HTTP status with a Kiro-style JSON body\n"
    "  [[sim:cut after=N]]                  N frames, half a frame, then a broken connection\n"
    "  [[sim:badcrc after=N]]               N good frames, then one with a wrong message CRC\n"
    "  [[sim:end after=N]]                  N frames, then a clean end without metadata/contextUsage/metering\n"
    "  [[sim:cuttool name=NAME input=JSON pieces=K]]  a tool call cut upstream: its input pieces but the last,\n"
    "                                       no stop, then a clean end without the end frames\n"
    "  [[sim:reasoning text=\"...\" signature=\"...\"]]  reasoningContentEvent text frames, then the signature\n"
    "  [[sim:reasoning redacted=\"...\"]]     reasoningContentEvent {redactedContent} (where placed: before or after text)\n"
    "  [[sim:stop reason=R]]                metadataEvent stopReason (default TOOL_USE / CONTENT_FILTERED / END_TURN)\n"
    "  [[sim:tokenusage in=N out=M cacheread=R cachewrite=W]]  metadataEvent carries tokenUsage (none by default)\n"
    "  [[sim:filtered after=N]]             content stops after N text frames (default 0), stopReason CONTENT_FILTERED\n"
    "  [[sim:keepopen]]                     after meteringEvent the body does not end (until the client closes, 60 s)\n"
    "  [[sim:stall ms=N]]                   wait N ms before the response headers\n"
    "  [[sim:drip ms=N]]                    one frame every N ms\n"
    "  [[sim:usage credits=X context=P]]    meteringEvent usage / contextUsagePercentage values\n"
    "  [[sim:replay file=PATH]]             send a captured body verbatim\n"
    "A complete reply ends metadataEvent{stopReason}, contextUsageEvent, meteringEvent (Kiro's last frame).\n\n"
    "GET /sim/stats shows counters; POST /sim/reset zeroes them (?all=1 also forgets accounts and tokens).\n"
    "GET|POST /sim/sse?frames=N&size=S answers a finished Anthropic SSE body (the benchmark's nginx baseline).\n";

static uv_loop_t loop;
static k2a_sim_server_t *server;
static uv_signal_t sigint_watcher, sigterm_watcher;
static const char *extra_models[64];

static void on_signal(uv_signal_t *w, int signum)
{
    k2a_sim_server_close(server);
    uv_stop(&loop);
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static const char *default_fixtures_dir(void)
{
    static char buf[4096];
    struct stat st;
    const char *src = getenv("K2A_SOURCE_DIR");
    if (src != NULL) {
        snprintf(buf, sizeof(buf), "%s/tests/fixtures/upstream", src);
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
            return buf;
    }
    return "tests/fixtures/upstream";
}

int main(int argc, char **argv)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_CERT,
        O_KEY,
        O_TTL,
        O_CID,
        O_CSECRET,
        O_FIX,
        O_CHUNK,
        O_MAXPAY,
        O_MAXDESC,
        O_MODEL,
        O_SLOW,
        O_BADREF,
        O_LEGACY,
        O_STRICT,
        O_OVERAGE,
        O_CAPACITY,
        O_MAXBODY,
        O_HELP,
        O_VERSION
    };
    static const struct option opts[] = {{"host", required_argument, NULL, O_HOST},
                                         {"port", required_argument, NULL, O_PORT},
                                         {"tls-cert", required_argument, NULL, O_CERT},
                                         {"tls-key", required_argument, NULL, O_KEY},
                                         {"token-ttl", required_argument, NULL, O_TTL},
                                         {"idc-client-id", required_argument, NULL, O_CID},
                                         {"idc-client-secret", required_argument, NULL, O_CSECRET},
                                         {"fixtures-dir", required_argument, NULL, O_FIX},
                                         {"chunk", required_argument, NULL, O_CHUNK},
                                         {"max-payload", required_argument, NULL, O_MAXPAY},
                                         {"max-tool-description", required_argument, NULL, O_MAXDESC},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"slow-refresh-ms", required_argument, NULL, O_SLOW},
                                         {"bad-refresh-status", required_argument, NULL, O_BADREF},
                                         {"legacy-2025", no_argument, NULL, O_LEGACY},
                                         {"strict-headers", no_argument, NULL, O_STRICT},
                                         {"overage-status", required_argument, NULL, O_OVERAGE},
                                         {"capacity-status", required_argument, NULL, O_CAPACITY},
                                         {"max-body-bytes", required_argument, NULL, O_MAXBODY},
                                         {"help", no_argument, NULL, O_HELP},
                                         {"version", no_argument, NULL, O_VERSION},
                                         {NULL, 0, NULL, 0}};
    k2a_sim_config_t cfg;
    unsigned long long v;
    int c;
    bool payload_set = false;

    k2a_sim_config_init(&cfg);
    cfg.limits.extra_models = extra_models;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_HOST:
            cfg.host = optarg;
            break;
        case O_PORT:
            bad = parse_num(optarg, 65535, &v);
            cfg.port = (int)v;
            break;
        case O_CERT:
            cfg.tls_cert = optarg;
            break;
        case O_KEY:
            cfg.tls_key = optarg;
            break;
        case O_TTL:
            bad = parse_num(optarg, 10u * 365 * 86400, &v) || v == 0;
            cfg.token_ttl = (uint32_t)v;
            break;
        case O_CID:
            cfg.idc_client_id = optarg;
            break;
        case O_CSECRET:
            cfg.idc_client_secret = optarg;
            break;
        case O_FIX:
            cfg.fixtures_dir = optarg;
            break;
        case O_CHUNK:
            bad = parse_num(optarg, 1u << 24, &v);
            cfg.chunk = (size_t)v;
            break;
        case O_MAXPAY:
        case O_MAXBODY:
            bad = parse_num(optarg, 1u << 30, &v) || v == 0;
            cfg.limits.max_payload = (size_t)v;
            payload_set = true;
            break;
        case O_LEGACY:
            cfg.legacy = true;
            break;
        case O_STRICT:
            cfg.strict_headers = true;
            break;
        case O_OVERAGE:
            bad = parse_num(optarg, 599, &v) || (v != 400 && v != 402);
            cfg.overage_status = (int)v;
            break;
        case O_CAPACITY:
            bad = parse_num(optarg, 599, &v) || (v != 400 && v != 429);
            cfg.capacity_status = (int)v;
            break;
        case O_MAXDESC:
            bad = parse_num(optarg, 1u << 30, &v);
            cfg.limits.max_tool_description = (size_t)v;
            break;
        case O_MODEL:
            if (cfg.limits.nextra_models == sizeof(extra_models) / sizeof(extra_models[0]))
                bad = 1;
            else
                extra_models[cfg.limits.nextra_models++] = optarg;
            break;
        case O_SLOW:
            bad = parse_num(optarg, 600000, &v);
            cfg.slow_refresh_ms = (uint32_t)v;
            break;
        case O_BADREF:
            bad = parse_num(optarg, 599, &v) || v < 400;
            cfg.bad_refresh_status = (int)v;
            break;
        case O_HELP:
            fputs(usage_text, stdout);
            return 0;
        case O_VERSION:
            printf("kiro-sim %s\n", K2A_VERSION);
            return 0;
        default:
            fputs("Run kiro-sim --help for the options.\n", stderr);
            return 2;
        }
        if (bad) {
            fprintf(stderr, "kiro-sim: bad value for --%s: %s\n", opts[c - O_HOST].name, optarg);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "kiro-sim: unexpected argument %s\n", argv[optind]);
        return 2;
    }
    if (cfg.legacy) {
        cfg.limits.modern = false;
        if (!payload_set)
            cfg.limits.max_payload = K2A_SIM_DEFAULT_MAX_PAYLOAD;
    }
    if (cfg.fixtures_dir == NULL)
        cfg.fixtures_dir = default_fixtures_dir();

    /* 10 000 concurrent connections need more descriptors than the usual soft limit of 1024. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);

    char url[300];
    if (k2a_sim_server_create(&loop, &cfg, &server, url, sizeof(url)) != 0)
        return 1;
    printf("kiro-sim listening on %s\n", url);
    fflush(stdout);

    uv_signal_init(&loop, &sigint_watcher);
    uv_signal_start(&sigint_watcher, on_signal, SIGINT);
    uv_signal_init(&loop, &sigterm_watcher);
    uv_signal_start(&sigterm_watcher, on_signal, SIGTERM);
    uv_run(&loop, UV_RUN_DEFAULT);
    /* Stopped by a signal: connections may still be open, so the process exits without tearing h2o down; everything
     * stays reachable from the statics above. */
    fprintf(stderr, "kiro-sim: stopped\n");
    return 0;
}
