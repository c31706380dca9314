/*
 * The configuration table (see config.h). Each row names a variable, its type, where it lives in
 * k2a_config_t, its default, its bounds and a one-line description; parsing, --help and the README
 * table all come from these rows, so a variable cannot exist without its documentation.
 */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/config.h"
#include "core/errors.h"

typedef enum { T_STR, T_INT, T_BOOL, T_ENUM } var_type_t;

typedef struct st_var_t {
    const char *name;
    var_type_t type;
    size_t offset;
    const char *def;
    int64_t min, max;    /* T_INT */
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *help;
} var_t;

#define F(field) offsetof(k2a_config_t, field)
#define KB 1024LL
#define MB (1024LL * 1024)

static const var_t vars[] = {
    /* listeners */
    {"PORT", T_INT, F(port), "8080", 0, 65535, NULL,
     "HTTP listener port (HTTP/1.1, h2c prior knowledge and upgrade); 0 picks a free port"},
    {"KIRO_HOST", T_STR, F(host), "0.0.0.0", 0, 0, NULL, "listen address (use 127.0.0.1 for loopback only)"},
    {"KIRO_TLS_PORT", T_INT, F(tls_port), "0", 0, 65535, NULL, "HTTPS listener port with ALPN h2/http1.1 (0 = off)"},
    {"KIRO_TLS_CERT", T_STR, F(tls_cert), "", 0, 0, NULL, "PEM certificate chain for the HTTPS listener"},
    {"KIRO_TLS_KEY", T_STR, F(tls_key), "", 0, 0, NULL, "PEM private key for the HTTPS listener"},
    {"KIRO_WORKERS", T_INT, F(workers), "0", 0, 256, NULL,
     "event-loop threads sharing the port with SO_REUSEPORT (0 = one per core)"},
    /* clients */
    {"KIRO_CLIENT_TOKEN", T_STR, F(client_token), "", 0, 0, NULL,
     "client key for /v1/* and /api/* (Authorization: Bearer or x-api-key); required beyond loopback unless KIRO_ADMIN_TOKEN is "
     "set (then clients use managed keys)"},
    {"KIRO_ADMIN_TOKEN", T_STR, F(admin_token), "", 0, 0, NULL, "optional separate key accepted for /api/* and the dashboard"},
    /* accounts */
    {"KIRO_AUTH_TOKEN", T_STR, F(auth_token), "", 0, 0, NULL,
     "Kiro accounts: JSON array/object or a path to a file holding it (without it, make run starts the simulator demo)"},
    {"KIRO_STATE_FILE", T_STR, F(state_file), "./data/kiro2api-state.json", 0, 0, NULL,
     "where rotated refresh tokens, access tokens and account states are persisted (mode 0600)"},
    {"KIRO_REDIS_URL", T_STR, F(redis_url), "", 0, 0, NULL,
     "redis://[:password@]host:port/db: share accounts (tokens, rotated refresh tokens, health, usage) between replicas "
     "(\"\" = this process alone)"},
    {"KIRO_REDIS_PREFIX", T_STR, F(redis_prefix), "kiro2api:", 0, 0, NULL,
     "prefix of every Redis key, so that several gateways can share one Redis"},
    {"KIRO_REDIS_RESYNC_MS", T_INT, F(redis_resync_ms), "5000", 100, 3600000, NULL,
     "period of the full re-read of every account from Redis (announcements bring changes at once)"},
    {"KIRO_KEYS_FILE", T_STR, F(keys_file), "", 0, 0, NULL,
     "where managed client keys (SHA-256 only) and their usage are persisted (mode 0600); empty = kiro2api-keys.json in "
     "the directory of KIRO_STATE_FILE"},
    {"KIRO_KEYS_MAX", T_INT, F(keys_max), "10000", 1, 1000000, NULL, "managed client keys the gateway holds at most"},
    {"KIRO_KEYS_USAGE_DAYS", T_INT, F(keys_usage_days), "90", 1, 3660, NULL, "UTC days of per-key usage kept"},
    {"KIRO_KEYS_METRICS_MAX", T_INT, F(keys_metrics_max), "100", 0, 10000, NULL,
     "client keys given their own key=\"<name>\" series on /metrics (the rest are summed as key=\"_other\")"},
    {"KIRO_KEYS_SAVE_INTERVAL_S", T_INT, F(keys_save_interval_s), "10", 1, 3600, NULL,
     "seconds between saves of per-key usage when it changed (admin changes are saved at once)"},
    {"KIRO_POOL_STRATEGY", T_ENUM, F(pool_strategy), "sequential", 0, 0, "sequential|round_robin|balanced|sticky",
     "account selection strategy (sticky: a client session stays on one account, new sessions go to the least-loaded)"},
    {"KIRO_MAX_ATTEMPTS", T_INT, F(max_attempts), "3", 1, 20, NULL,
     "accounts tried for one request before the client sees an error"},
    {"KIRO_ACCOUNT_MAX_CONCURRENCY", T_INT, F(account_max_concurrency), "0", 0, 100000, NULL,
     "in-flight requests per account (0 = unlimited; \"max_concurrency\" in an account's JSON overrides it)"},
    {"KIRO_ACCOUNT_RPM", T_INT, F(account_rpm), "0", 0, 100000, NULL,
     "generate attempts per account per KIRO_PACE_WINDOW_S, failover attempts included (0 = off; \"rpm\" in an "
     "account's JSON overrides it)"},
    {"KIRO_PACE_WINDOW_S", T_INT, F(pace_window_s), "60", 1, 3600, NULL,
     "the rolling window of KIRO_ACCOUNT_RPM in seconds (60: requests per minute; shorter for tests)"},
    {"KIRO_PACE_WAIT_MS", T_INT, F(pace_wait_ms), "5000", 0, 600000, NULL,
     "how long a request that finds every suitable account at its pace waits for a slot before a 429 with Retry-After"},
    {"KIRO_POOL_STICKY", T_BOOL, F(pool_sticky), "false", 0, 0, NULL,
     "keep each client session on one account on top of KIRO_POOL_STRATEGY (implied by the sticky strategy)"},
    {"KIRO_STICKY_IDLE_S", T_INT, F(sticky_idle_s), "3600", 1, 604800, NULL,
     "a session not seen for this many seconds is forgotten (its next request is a new session)"},
    {"KIRO_STICKY_MAX_SESSIONS", T_INT, F(sticky_max_sessions), "100000", 1, 10000000, NULL,
     "sessions tracked for sticky routing; the least recently used one makes room"},
    {"KIRO_USAGE_POLL_INTERVAL_S", T_INT, F(usage_poll_interval_s), "900", 0, 86400, NULL,
     "seconds between background getUsageLimits polls per account (0 = never)"},
    {"KIRO_CATALOG_REFRESH_S", T_INT, F(catalog_refresh_s), "21600", 0, 604800, NULL,
     "seconds between background ListAvailableModels fetches per account; requests go to accounts whose catalog has "
     "the model (0 = never: every account is tried)"},
    {"KIRO_FLAGGED_COOLDOWN_S", T_INT, F(flagged_cooldown_s), "1800", 1, 604800, NULL,
     "how long an account rests after Kiro's \"suspicious activity\" 429 (no fast retry: that is what gets accounts "
     "suspended)"},
    {"KIRO_REFRESH_AHEAD_PCT", T_INT, F(refresh_ahead_pct), "80", 10, 95, NULL,
     "refresh an access token in the background after this share of its lifetime"},
    /* logging */
    {"LOG_LEVEL", T_ENUM, F(log_level), "info", 0, 0, "debug|info|warn|warning|error", "log level"},
    {"LOG_FORMAT", T_ENUM, F(log_format), "text", 0, 0, "text|json", "text lines, or one JSON object per line"},
    {"LOG_CONSOLE", T_BOOL, F(log_console), "true", 0, 0, NULL, "log to stderr (false: only LOG_FILE)"},
    {"LOG_FILE", T_STR, F(log_file), "", 0, 0, NULL, "also append logs to this file"},
    {"DEBUG", T_BOOL, F(debug), "false", 0, 0, NULL, "true = LOG_LEVEL debug (kiro2api compatibility)"},
    /* conversion */
    {"MAX_TOOL_DESCRIPTION_LENGTH", T_INT, F(max_tool_description_length), "10000", 16, 1000000, NULL,
     "tool descriptions longer than this many bytes are cut (on a UTF-8 boundary)"},
    {"KIRO_TOOL_SCHEMA_STRIP", T_ENUM, F(tool_schema_strip), "strict", 0, 0, "strict|minimal",
     "tool schemas: strict also removes the validation keywords Kiro may refuse (pattern, format, bounds, "
     "additionalProperties...); minimal only fixes the root and removes $schema"},
    {"KIRO_NATIVE_EFFORT", T_BOOL, F(native_effort), "true", 0, 0, NULL,
     "send adaptive thinking's effort as additionalModelRequestFields to the models known to take it (else as prompt tags)"},
    {"KIRO_MAX_BODY_BYTES", T_INT, F(max_body_bytes), "33554432", 1024, 1024 * MB, NULL,
     "largest accepted request body (413 past it); images arrive as base64"},
    {"KIRO_MAX_PAYLOAD_BYTES", T_INT, F(max_payload_bytes), "600000", 10 * KB, 64 * MB, NULL,
     "budget for the request sent to Kiro: oldest history turns are dropped past it"},
    {"KIRO_MODEL_MAP", T_STR, F(model_map), "", 0, 0, NULL,
     "JSON object of model-name -> Kiro modelId overrides of the naming rule (\"prefix*\" keys for families, null refuses "
     "a name)"},
    {"KIRO_INPUT_TOKENS_FROM_CONTEXT", T_BOOL, F(input_tokens_from_context), "false", 0, 0, NULL,
     "report Kiro's contextUsage figure as final input_tokens when larger than the estimate (else the estimate everywhere)"},
    {"KIRO_PING_INTERVAL_MS", T_INT, F(ping_interval_ms), "15000", 100, 3600000, NULL,
     "SSE ping interval while the upstream is silent"},
    {"KIRO_WEB_SEARCH_TIMEOUT_MS", T_INT, F(web_search_timeout_ms), "20000", 100, 600000, NULL,
     "web search through Kiro's MCP endpoint: the longest wait for one search's answer (then: no results)"},
    {"KIRO_RESPONSES_STORE_MAX", T_INT, F(responses_store_max), "1000", 0, 1000000, NULL,
     "/v1/responses answers kept for previous_response_id and GET /v1/responses/{id} (store: true; memory only; 0 = none "
     "kept)"},
    {"KIRO_RESPONSES_STORE_MAX_BYTES", T_INT, F(responses_store_max_bytes), "67108864", 64 * KB, 16 * 1024 * MB, NULL,
     "bytes all kept /v1/responses answers and their conversations may hold (the oldest go first)"},
    {"KIRO_RESPONSES_STORE_TTL_S", T_INT, F(responses_store_ttl_s), "86400", 1, 30 * 86400, NULL,
     "seconds a kept /v1/responses answer stays usable"},
    /* upstream */
    {"KIRO_API_BASE", T_STR, F(api_base), "https://q.{region}.amazonaws.com", 0, 0, NULL,
     "base URL of generateAssistantResponse, ListAvailableProfiles, getUsageLimits, ListAvailableModels; {region} = the "
     "account's data-plane region"},
    {"KIRO_API_FALLBACK_BASE", T_STR, F(api_fallback_base), "", 0, 0, NULL,
     "second data-plane base (e.g. https://runtime.{region}.kiro.dev) tried once on the same account after a 429, 408, 5xx "
     "or connection failure, before the next account (unset = off)"},
    {"KIRO_SOCIAL_REFRESH_URL", T_STR, F(social_refresh_url), "https://prod.{region}.auth.desktop.kiro.dev/refreshToken", 0, 0,
     NULL, "Social refresh endpoint; {region} = the account's auth region"},
    {"KIRO_IDC_REFRESH_URL", T_STR, F(idc_refresh_url), "https://oidc.{region}.amazonaws.com/token", 0, 0, NULL,
     "IdC (AWS SSO OIDC) refresh endpoint; {region} = the account's auth region"},
    {"KIRO_IDE_VERSION", T_STR, F(kiro_version), "0.12.333", 0, 0, NULL,
     "KiroIDE version sent in user-agent headers (never changed automatically; see docs/kiro-compat.md)"},
    {"KIRO_AGENT_MODE", T_STR, F(agent_mode), "vibe", 0, 0, NULL, "x-amzn-kiro-agent-mode header value"},
    {"KIRO_CA_FILE", T_STR, F(ca_file), "", 0, 0, NULL, "extra PEM CA bundle trusted for upstream TLS (added to the system store)"},
    {"KIRO_TLS_INSECURE", T_BOOL, F(tls_insecure), "false", 0, 0, NULL,
     "disable upstream certificate verification (local testing only; logged as a warning)"},
    {"KIRO_CONNECT_TIMEOUT_MS", T_INT, F(connect_timeout_ms), "10000", 10, 600000, NULL,
     "upstream TCP connect + TLS handshake timeout"},
    {"KIRO_FIRST_BYTE_TIMEOUT_MS", T_INT, F(first_byte_timeout_ms), "120000", 10, 3600000, NULL,
     "upstream time to first response byte"},
    {"KIRO_IDLE_TIMEOUT_MS", T_INT, F(idle_timeout_ms), "300000", 10, 3600000, NULL, "upstream silence allowed between body bytes"},
    {"KIRO_DNS_TIMEOUT_MS", T_INT, F(dns_timeout_ms), "5000", 10, 60000, NULL, "DNS resolution timeout"},
    {"KIRO_DNS_SERVERS", T_STR, F(dns_servers), "", 0, 0, NULL, "comma-separated DNS servers ip[:port] (default: the system's)"},
    {"KIRO_DNS_MAX_TTL_S", T_INT, F(dns_max_ttl_s), "60", 0, 3600, NULL, "upper bound on how long a DNS answer is cached"},
    {"KIRO_UPSTREAM_PROXY", T_STR, F(upstream_proxy), "", 0, 0, NULL,
     "HTTP CONNECT proxy for upstream calls, http://[user:pass@]host:port (default: HTTPS_PROXY)"},
    {"HTTPS_PROXY", T_STR, F(https_proxy), "", 0, 0, NULL, "standard proxy variable, used when KIRO_UPSTREAM_PROXY is unset"},
    {"NO_PROXY", T_STR, F(no_proxy), "", 0, 0, NULL, "hosts (suffixes) reached directly, comma-separated; * for all"},
    {"KIRO_UPSTREAM_MAX_CONNS", T_INT, F(upstream_max_conns), "0", 0, 1000000, NULL,
     "upstream connections per origin (0 = KIRO_MAX_CONCURRENT: every stream holds its connection)"},
    {"KIRO_UPSTREAM_MAX_IDLE", T_INT, F(upstream_max_idle), "32", 0, 100000, NULL, "idle keep-alive connections kept per origin"},
    {"KIRO_UPSTREAM_IDLE_MS", T_INT, F(upstream_idle_ms), "30000", 100, 3600000, NULL, "idle keep-alive connection lifetime"},
    {"KIRO_UPSTREAM_REUSE", T_ENUM, F(upstream_reuse), "account", 0, 0, "account|never",
     "account: a keep-alive connection only ever carries one account's requests; never: Connection: close, a new connection "
     "per request"},
    {"KIRO_UPSTREAM_MAX_IDLE_PER_ACCOUNT", T_INT, F(upstream_max_idle_per_account), "32", 1, 100000, NULL,
     "idle keep-alive connections kept per account and origin (within KIRO_UPSTREAM_MAX_IDLE)"},
    /* lifecycle and limits */
    {"KIRO_SHUTDOWN_GRACE_MS", T_INT, F(shutdown_grace_ms), "10000", 0, 3600000, NULL,
     "on SIGTERM/SIGINT, how long in-flight responses may finish"},
    {"KIRO_HEADER_TIMEOUT_MS", T_INT, F(header_timeout_ms), "10000", 100, 600000, NULL,
     "a client must send its request (headers and body) within this time"},
    {"KIRO_KEEPALIVE_TIMEOUT_MS", T_INT, F(keepalive_timeout_ms), "60000", 100, 3600000, NULL,
     "idle client connections are closed after this"},
    {"KIRO_MAX_CONCURRENT", T_INT, F(max_concurrent), "20000", 1, 1000000, NULL,
     "requests handled at once (each holds a coroutine); 503 past it"},
    {"KIRO_WRITE_STALL_TIMEOUT_MS", T_INT, F(write_stall_timeout_ms), "30000", 100, 3600000, NULL,
     "a response whose client has taken no bytes for this long is ended, its upstream call cancelled and its slots freed"},
    {"KIRO_MAX_CONNECTIONS", T_INT, F(max_connections), "0", 0, 10000000, NULL,
     "client connections at once, past it new ones are closed at accept (0: the open-file limit less a reserve for "
     "upstream connections and the state file)"},
    {"KIRO_MAX_BUFFERED_BYTES", T_INT, F(max_buffered_bytes), "1073741824", 16 * MB, 1024 * 1024 * MB, NULL,
     "request bytes (bodies, header blocks) all client connections of a worker may hold before their handlers run; past "
     "it the largest connections are closed"},
    {"KIRO_CORO_STACK_KB", T_INT, F(coro_stack_kb), "64", 32, 8192, NULL, "coroutine stack size"},
    {"KIRO_STATIC_DIR", T_STR, F(static_dir), "", 0, 0, NULL,
     "dashboard files (default: assets/ next to the binary or in the cwd)"},
    /* traces */
    {"KIRO_TRACE_DIR", T_STR, F(trace_dir), "", 0, 0, NULL,
     "write a redacted trace of every failed upstream exchange here (mode 0600 files in a 0700 directory; unset = off)"},
    {"KIRO_TRACE_SAMPLE", T_INT, F(trace_sample), "0", 0, 1000000000, NULL,
     "with KIRO_TRACE_DIR, also trace 1 in N of the successful exchanges (0 = none)"},
    {"KIRO_TRACE_MAX_BYTES", T_INT, F(trace_max_bytes), "1048576", 4 * KB, 1024 * MB, NULL,
     "size bound of one trace file (the response is cut past it)"},
    {"KIRO_TRACE_MAX_FILES", T_INT, F(trace_max_files), "200", 1, 1000000, NULL,
     "traces kept in KIRO_TRACE_DIR: past it new traces are skipped and counted, none is deleted"},
    {"KIRO_TRACE_KEEP_TEXT", T_BOOL, F(trace_keep_text), "false", 0, 0, NULL,
     "keep prompt, tool and result texts in traces (false: replaced by their lengths)"},
    {"KIRO_PROBE_BASES", T_STR, F(probe_bases),
     "https://q.{region}.amazonaws.com,https://runtime.{region}.kiro.dev,https://codewhisperer.us-east-1.amazonaws.com", 0, 0, NULL,
     "kiro2api doctor --probe: the data-plane host templates tried with each request shape (comma-separated)"},
};

#define NVARS (sizeof(vars) / sizeof(vars[0]))

static const var_t *find_var(const char *name)
{
    for (size_t i = 0; i < NVARS; ++i)
        if (strcmp(vars[i].name, name) == 0)
            return &vars[i];
    return NULL;
}

static int apply(k2a_config_t *c, const var_t *v, const char *value, char *err, size_t errlen)
{
    char *field = (char *)c + v->offset;
    switch (v->type) {
    case T_STR: {
        char *copy = strdup(value);
        if (copy == NULL)
            return K2A_ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case T_INT: {
        char *end;
        errno = 0;
        long long n = strtoll(value, &end, 10);
        while (*end != '\0' && isspace((unsigned char)*end))
            ++end;
        if (value[0] == '\0' || *end != '\0' || errno != 0 || n < v->min || n > v->max) {
            snprintf(err, errlen, "%s: expected an integer between %lld and %lld, got '%s'", v->name, (long long)v->min,
                     (long long)v->max, value);
            return K2A_ECONFIG;
        }
        *(int64_t *)field = n;
        return 0;
    }
    case T_BOOL:
        if (strcasecmp(value, "true") == 0 || strcmp(value, "1") == 0 || strcasecmp(value, "yes") == 0 ||
            strcasecmp(value, "on") == 0) {
            *(bool *)field = true;
        } else if (strcasecmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcasecmp(value, "no") == 0 ||
                   strcasecmp(value, "off") == 0 || value[0] == '\0') {
            *(bool *)field = false;
        } else {
            snprintf(err, errlen, "%s: expected true or false, got '%s'", v->name, value);
            return K2A_ECONFIG;
        }
        return 0;
    case T_ENUM: {
        const char *p = v->choices;
        size_t n = strlen(value);
        while (p != NULL && *p != '\0') {
            const char *bar = strchr(p, '|');
            size_t len = bar != NULL ? (size_t)(bar - p) : strlen(p);
            if (len == n && strncasecmp(p, value, n) == 0) {
                char *copy = strndup(p, len);
                if (copy == NULL)
                    return K2A_ENOMEM;
                free(*(char **)field);
                *(char **)field = copy;
                return 0;
            }
            p = bar != NULL ? bar + 1 : NULL;
        }
        snprintf(err, errlen, "%s: expected one of %s, got '%s'", v->name, v->choices, value);
        return K2A_ECONFIG;
    }
    }
    return K2A_EINTERNAL;
}

void k2a_config_defaults(k2a_config_t *c)
{
    char err[256];
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < NVARS; ++i) {
        int r = apply(c, &vars[i], vars[i].def, err, sizeof(err));
        (void)r;
    }
}

void k2a_config_dispose(k2a_config_t *c)
{
    for (size_t i = 0; i < NVARS; ++i) {
        if (vars[i].type == T_STR || vars[i].type == T_ENUM) {
            char **field = (char **)((char *)c + vars[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

int k2a_config_set(k2a_config_t *c, const char *name, const char *value, char *err, size_t errlen)
{
    const var_t *v = find_var(name);
    if (v == NULL)
        return K2A_ENOTFOUND;
    return apply(c, v, value, err, errlen);
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        ++s;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int k2a_config_load_file(k2a_config_t *c, const char *path, bool missing_ok, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        if (missing_ok && errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return K2A_ECONFIG;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, ret = 0;
    while ((n = getline(&line, &cap, fp)) != -1) {
        ++lineno;
        char *s = trim(line);
        if (*s == '\0' || *s == '#')
            continue;
        if (strncmp(s, "export ", 7) == 0)
            s = trim(s + 7);
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE", path, lineno);
            ret = K2A_ECONFIG;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1);
        size_t vl = strlen(value);
        if (vl >= 2 && (value[0] == '"' || value[0] == '\'') && value[vl - 1] == value[0]) {
            value[vl - 1] = '\0';
            ++value;
        } else {
            /* an unquoted value may carry a trailing comment */
            char *hash = strstr(value, " #");
            if (hash != NULL)
                *hash = '\0', value = trim(value);
        }
        char msg[256];
        int r = k2a_config_set(c, key, value, msg, sizeof(msg));
        if (r == K2A_ENOTFOUND)
            continue; /* other tools share .env files: unknown keys are not ours to judge */
        if (r != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, msg);
            ret = r;
            break;
        }
    }
    free(line);
    fclose(fp);
    return ret;
}

int k2a_config_load_env(k2a_config_t *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < NVARS; ++i) {
        const char *v = getenv(vars[i].name);
        if (v == NULL && strcmp(vars[i].name, "HTTPS_PROXY") == 0)
            v = getenv("https_proxy");
        if (v == NULL && strcmp(vars[i].name, "NO_PROXY") == 0)
            v = getenv("no_proxy");
        if (v == NULL)
            continue;
        int r = apply(c, &vars[i], v, err, errlen);
        if (r != 0)
            return r;
    }
    return 0;
}

int k2a_config_validate(const k2a_config_t *c, char *err, size_t errlen)
{
    if (c->tls_port != 0 && (c->tls_cert[0] == '\0' || c->tls_key[0] == '\0')) {
        snprintf(err, errlen, "KIRO_TLS_PORT: needs KIRO_TLS_CERT and KIRO_TLS_KEY");
        return K2A_ECONFIG;
    }
    if (c->tls_port != 0 && c->tls_port == c->port) {
        snprintf(err, errlen, "KIRO_TLS_PORT: must differ from PORT");
        return K2A_ECONFIG;
    }
    static const struct {
        const char *name;
        size_t offset;
    } urls[] = {{"KIRO_API_BASE", F(api_base)},
                {"KIRO_SOCIAL_REFRESH_URL", F(social_refresh_url)},
                {"KIRO_IDC_REFRESH_URL", F(idc_refresh_url)}};
    if (c->api_fallback_base[0] != '\0' && strncmp(c->api_fallback_base, "https://", 8) != 0 &&
        strncmp(c->api_fallback_base, "http://", 7) != 0) {
        snprintf(err, errlen, "KIRO_API_FALLBACK_BASE: expected an http:// or https:// URL, got '%s'", c->api_fallback_base);
        return K2A_ECONFIG;
    }
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); ++i) {
        const char *u = *(char *const *)((const char *)c + urls[i].offset);
        if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0) {
            snprintf(err, errlen, "%s: expected an http:// or https:// URL, got '%s'", urls[i].name, u);
            return K2A_ECONFIG;
        }
    }
    const char *proxy = c->upstream_proxy[0] != '\0' ? c->upstream_proxy : c->https_proxy;
    if (proxy[0] != '\0' && strncmp(proxy, "http://", 7) != 0) {
        snprintf(err, errlen, "%s: only http:// CONNECT proxies are supported, got '%s'",
                 c->upstream_proxy[0] != '\0' ? "KIRO_UPSTREAM_PROXY" : "HTTPS_PROXY", proxy);
        return K2A_ECONFIG;
    }
    return 0;
}

void k2a_config_print_help(FILE *fp)
{
    for (size_t i = 0; i < NVARS; ++i) {
        const var_t *v = &vars[i];
        if (v->def[0] == '\0' && strstr(v->help, "(default: ") != NULL)
            fprintf(fp, "  %-30s %s\n", v->name, v->help); /* the help names what "unset" means: once is enough */
        else
            fprintf(fp, "  %-30s %s (default: %s)\n", v->name, v->help, v->def[0] != '\0' ? v->def : "unset");
    }
}
