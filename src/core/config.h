/*
 * Configuration: every variable kiro2api knows, with its type, default and bounds, in one table
 * (config.c). Sources, lowest to highest priority: built-in defaults, `.env` in the working directory,
 * `--config FILE` (same KEY=VALUE format), the process environment. A bad value is a one-line error
 * naming the variable; the caller exits with status 2. Values are plain data: each module maps them
 * onto its own config struct.
 */
#ifndef K2A_CORE_CONFIG_H
#define K2A_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct st_k2a_config_t {
    /* listeners */
    char *host;
    int64_t port;
    int64_t tls_port; /* 0 = no TLS listener */
    char *tls_cert;
    char *tls_key;
    int64_t workers;
    /* clients */
    char *client_token;
    char *admin_token;
    /* accounts */
    char *auth_token; /* JSON text or a path to a file holding it */
    char *state_file;
    char *redis_url;    /* "" = no shared store */
    char *redis_prefix; /* key prefix in Redis */
    int64_t redis_resync_ms;
    char *pool_strategy;
    int64_t max_attempts;
    int64_t account_max_concurrency;
    /* pacing and session-sticky routing (pool/pace.h, pool/sticky.h) */
    int64_t account_rpm;
    int64_t pace_window_s;
    int64_t pace_wait_ms;
    bool pool_sticky;
    int64_t sticky_idle_s;
    int64_t sticky_max_sessions;
    int64_t usage_poll_interval_s;
    int64_t refresh_ahead_pct;
    /* logging */
    char *log_level;
    char *log_format;
    bool log_console;
    char *log_file;
    bool debug;
    /* conversion */
    int64_t max_tool_description_length;
    char *tool_schema_strip; /* "strict" | "minimal" */
    bool native_effort;
    int64_t max_body_bytes;
    int64_t max_payload_bytes;
    char *model_map;
    int64_t ping_interval_ms;
    int64_t web_search_timeout_ms;
    int64_t responses_store_max;       /* stored /v1/responses answers (0 = off) */
    int64_t responses_store_max_bytes; /* their bytes in all */
    int64_t responses_store_ttl_s;     /* how long one is kept */
    bool input_tokens_from_context;
    /* upstream */
    char *api_base;
    char *social_refresh_url;
    char *idc_refresh_url;
    char *kiro_version;
    char *agent_mode;
    char *ca_file;
    bool tls_insecure;
    int64_t connect_timeout_ms;
    int64_t first_byte_timeout_ms;
    int64_t idle_timeout_ms;
    int64_t dns_timeout_ms;
    char *dns_servers;
    int64_t dns_max_ttl_s;
    char *upstream_proxy;
    char *https_proxy;
    char *no_proxy;
    int64_t upstream_max_conns;
    int64_t upstream_max_idle;
    int64_t upstream_idle_ms;
    char *upstream_reuse; /* "account" | "never" */
    int64_t upstream_max_idle_per_account;
    /* server lifecycle and limits */
    int64_t shutdown_grace_ms;
    int64_t header_timeout_ms;
    int64_t keepalive_timeout_ms;
    int64_t max_concurrent;
    int64_t write_stall_timeout_ms; /* a response whose client takes no bytes this long is ended */
    int64_t max_connections;        /* client connections at once (0 = derived from RLIMIT_NOFILE) */
    int64_t max_buffered_bytes;     /* request bytes all client connections may hold before handlers run */
    int64_t coro_stack_kb;
    char *static_dir;
    char *api_fallback_base; /* KIRO_API_FALLBACK_BASE: "" = no same-account fallback host */
    /* accounts (continued) */
    int64_t catalog_refresh_s;
    int64_t flagged_cooldown_s;
    /* traces of upstream exchanges (trace/trace.h) */
    char *trace_dir;
    int64_t trace_sample;
    int64_t trace_max_bytes;
    int64_t trace_max_files;
    bool trace_keep_text;
    char *probe_bases; /* KIRO_PROBE_BASES: kiro2api doctor --probe */
    /* managed client keys (keys/keys.h) */
    char *keys_file; /* "" = kiro2api-keys.json beside KIRO_STATE_FILE */
    int64_t keys_max;
    int64_t keys_usage_days;
    int64_t keys_metrics_max;
    int64_t keys_save_interval_s;
} k2a_config_t;

/* Fills every field with its default. */
void k2a_config_defaults(k2a_config_t *c);
void k2a_config_dispose(k2a_config_t *c);
/* Applies KEY=VALUE lines from a file (blank lines and # comments skipped; optional `export `; values may be quoted with ' or
 * "). missing_ok: a missing file is not an error. Returns 0, or K2A_ECONFIG with a one-line message in err. */
int k2a_config_load_file(k2a_config_t *c, const char *path, bool missing_ok, char *err, size_t errlen);
/* Applies the process environment. Returns 0 or K2A_ECONFIG with a message in err. */
int k2a_config_load_env(k2a_config_t *c, char *err, size_t errlen);
/* Sets one variable by name; unknown names are ignored (returns K2A_ENOTFOUND). */
int k2a_config_set(k2a_config_t *c, const char *name, const char *value, char *err, size_t errlen);
/* Cross-field checks (e.g. TLS port needs cert and key). */
int k2a_config_validate(const k2a_config_t *c, char *err, size_t errlen);
/* Writes the table of variables (name, default, description) for --help and the README. */
void k2a_config_print_help(FILE *fp);

#endif
