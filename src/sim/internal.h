/*
 * Module-private declarations of kiro-sim: the response plan parsed from [[sim:...]] directives and the lazy frame
 * producer that walks it (script.c), the account/token store and counters (accounts.c), and the server state shared
 * by the HTTP handlers (server.c, generate.c). Frames are produced one at a time when the sender needs them, so a
 * stream costs a few hundred bytes plus its current frame, whatever the length of the reply.
 */
#ifndef K2A_SIM_INTERNAL_H
#define K2A_SIM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <h2o.h>
#include <uv.h>
#include "core/buf.h"
#include "sim/sim.h"

/* ---- response plan (script.c) ---- */

#define K2A_SIM_ECHO_MAX_CHARS 200
#define K2A_SIM_MAX_STEPS 64
#define K2A_SIM_DEFAULT_CREDITS 0.0123 /* meteringEvent usage unless [[sim:usage credits=X]] */

typedef enum en_k2a_sim_step_kind_t {
    K2A_SIM_STEP_TEXT,      /* owned text split into frames of 1..8 code points */
    K2A_SIM_STEP_GENTEXT,   /* `frames` frames of `size` bytes of deterministic ASCII text */
    K2A_SIM_STEP_TOOL,      /* start frame, input pieces, stop frame (cut: all pieces but the last, no stop frame) */
    K2A_SIM_STEP_REASONING, /* reasoningContentEvent: text split into frames, then signature, then redactedContent */
} k2a_sim_step_kind_t;

typedef struct st_k2a_sim_step_t {
    k2a_sim_step_kind_t kind;
    char *text; /* TEXT: the text; TOOL: the input JSON text (raw bytes) */
    size_t text_len;
    uint32_t frames, size; /* GENTEXT */
    char *name;            /* TOOL */
    char id[32];           /* TOOL: tooluse_ + 22 base64url chars */
    uint32_t pieces;       /* TOOL: number of input pieces actually sent (<= input length) */
    size_t *cuts;          /* TOOL: pieces-1 increasing cut offsets into text */
    bool cut;              /* TOOL: [[sim:cuttool]]: the answer ends after this step, cleanly, with no stop and no metering */
    char *signature;       /* REASONING: NULL = none */
    char *redacted;        /* REASONING: NULL = none */
} k2a_sim_step_t;

typedef enum en_k2a_sim_fault_t {
    K2A_SIM_FAULT_NONE,
    K2A_SIM_FAULT_EXCEPTION, /* after N frames: an exception frame, then the body ends cleanly */
    K2A_SIM_FAULT_CUT,       /* after N frames: half of the next frame, then the connection breaks */
    K2A_SIM_FAULT_BADCRC,    /* after N frames: one frame with a corrupted message CRC, then the rest */
    K2A_SIM_FAULT_END,       /* after N frames: the body ends cleanly (no metering/contextUsage) */
} k2a_sim_fault_t;

typedef struct st_k2a_sim_plan_t {
    k2a_sim_step_t *steps; /* malloc'd, nsteps used (at most K2A_SIM_MAX_STEPS) */
    size_t nsteps, capsteps;
    k2a_sim_fault_t fault;
    uint32_t fault_after;
    char *exception_type, *exception_message;
    int status; /* [[sim:status]]: non-zero = answer this HTTP status */
    char *status_message;
    uint32_t stall_ms, drip_ms;
    char *replay_file;
    double credits, context_pct;
    bool have_credits, have_context;
    uint64_t seed;
    /* the end of the answer: metadataEvent{stopReason[,tokenUsage]}, contextUsageEvent, meteringEvent */
    bool keepopen;     /* [[sim:keepopen]]: after metering the body does not end (until the client closes, or 60 s) */
    char *stop_reason; /* [[sim:stop reason=R]]; NULL = as the content implies (TOOL_USE, CONTENT_FILTERED, END_TURN) */
    bool have_tokens;  /* [[sim:tokenusage ...]]: metadataEvent carries tokenUsage */
    uint32_t tok_in, tok_out, tok_cache_read, tok_cache_write;
    bool filtered; /* [[sim:filtered after=N]]: the content stops after N text frames, stopReason CONTENT_FILTERED */
    uint32_t filtered_after;
    bool cut_end; /* a [[sim:cuttool]] step: the body ends after it, without the end frames */
} k2a_sim_plan_t;

#define K2A_SIM_KEEPOPEN_MS 60000

typedef struct st_k2a_sim_cursor_t {
    size_t step; /* nsteps: metadata next; nsteps+1: contextUsage next; nsteps+2: metering next; nsteps+3: done */
    size_t pos;
    uint64_t rng;
    uint32_t text_frames; /* text frames produced (for [[sim:filtered after=N]]) */
} k2a_sim_cursor_t;

/* Parses the directives of text into plan. Returns 0, or K2A_EINVAL with a message in err (unknown directive, bad
 * parameter). The plan owns copies of everything; dispose it with k2a_sim_plan_dispose. */
int k2a_sim_plan_parse(k2a_sim_plan_t *plan, const char *text, size_t len, char *err, size_t errsz);
void k2a_sim_plan_dispose(k2a_sim_plan_t *plan);
void k2a_sim_cursor_init(k2a_sim_cursor_t *cur, const k2a_sim_plan_t *plan);
/* Appends the next frame of the plan to out. Returns 1 when a frame was appended, 0 at the end, or a negative K2A_E*.
 * in_tail (may be NULL) tells whether the content steps are over (metering/contextUsage or the end come next). */
int k2a_sim_next_frame(const k2a_sim_plan_t *plan, k2a_sim_cursor_t *cur, k2a_buf_t *out, bool *in_tail);
/* An exception frame for the plan's exception fault. */
int k2a_sim_exception_frame(const k2a_sim_plan_t *plan, k2a_buf_t *out);
/* Appends `s` as the inside of a JSON string, escaping only '"', '\\' and control characters: bytes >= 0x80 are copied
 * raw, so a piece that ends inside a UTF-8 sequence stays byte-exact. */
int k2a_sim_append_raw_json(k2a_buf_t *out, const char *s, size_t n);

/* ---- accounts, tokens and counters (accounts.c) ---- */

typedef enum en_k2a_sim_kind_t {
    K2A_SIM_KIND_OK,
    K2A_SIM_KIND_ROTATE,
    K2A_SIM_KIND_BADREFRESH,
    K2A_SIM_KIND_EXHAUSTED,
    K2A_SIM_KIND_429,
    K2A_SIM_KIND_403,
    K2A_SIM_KIND_500,
    K2A_SIM_KIND_403ONCE,
    K2A_SIM_KIND_SLOWREFRESH,
    /* 2026 kinds: who the account is (auth kind, region, tier) */
    K2A_SIM_KIND_SOCIAL,
    K2A_SIM_KIND_SOCIALEU,
    K2A_SIM_KIND_IDC,
    K2A_SIM_KIND_IDCEU,
    K2A_SIM_KIND_BUILDERID,
    K2A_SIM_KIND_FREE,
    K2A_SIM_KIND_EXTIDP,
    K2A_SIM_KIND_APIKEY, /* ksk_sim-X: the bearer itself, no refresh */
    /* 2026 scripted states of generateAssistantResponse (kiro-protocol-2026 section 9 bodies) */
    K2A_SIM_KIND_OVERAGE,
    K2A_SIM_KIND_SUSPICIOUS,
    K2A_SIM_KIND_SUSPENDED,
    K2A_SIM_KIND_CAPACITY,
    K2A_SIM_KIND_LOCKED,
    K2A_SIM_KIND_TTL, /* sim-ttl<N>-X: access tokens live N seconds */
} k2a_sim_kind_t;

/* How an account authenticates; decides its profileArn and which refresh endpoint it uses. */
typedef enum en_k2a_sim_auth_t {
    K2A_SIM_AUTH_SOCIAL,    /* POST /refreshToken; the Social default ARN (or the eu one) */
    K2A_SIM_AUTH_IDC,       /* POST /token; a real ARN known only through ListAvailableProfiles */
    K2A_SIM_AUTH_BUILDERID, /* POST /token; the Builder ID placeholder ARN */
    K2A_SIM_AUTH_EXTIDP,    /* POST /entra/token (form); a real ARN; every call needs tokentype: EXTERNAL_IDP */
    K2A_SIM_AUTH_APIKEY,    /* Bearer ksk_...; tokentype: API_KEY; no ARN */
} k2a_sim_auth_t;

#define K2A_SIM_ARN_IDC_ACCOUNT "610548660232"

typedef struct st_k2a_sim_counters_t {
    uint64_t requests, refreshes, refresh_failures, usage_calls, model_calls, generates, generate_ok;
} k2a_sim_counters_t;

/* What the account's last generateAssistantResponse carried (GET /sim/stats accounts.<name>.last_request). */
typedef struct st_k2a_sim_last_request_t {
    bool seen;
    int status;               /* the HTTP status it was answered with (200 = a stream started) */
    char model[64];           /* currentMessage modelId ("" = none) */
    char profile_arn[128];    /* root profileArn ("" = none) */
    const char *region;       /* the host region of its path */
    char path[64];            /* the path it was sent to (query cut off) */
    char tokentype[24];       /* the tokentype header ("" = none) */
    uint32_t header_warnings; /* fingerprint headers missing or malformed on it */
} k2a_sim_last_request_t;

typedef struct st_k2a_sim_account_t {
    char *name; /* the original refresh token, e.g. sim-rotate-a */
    k2a_sim_kind_t kind;
    uint32_t rotate_gen; /* sim-rotate: the current refresh token is name-r<gen> (name itself when 0) */
    uint64_t tokens_issued;
    uint64_t tripped_seq; /* sim-403once: tokens with seq <= this are rejected once tripped */
    bool tripped;
    double used_credits;
    k2a_sim_auth_t auth;
    const char *region; /* K2A_SIM_REGION_US or _EU: where its profile lives */
    bool free_tier;     /* no opus, no gpt */
    uint32_t ttl_s;     /* sim-ttl<N>: access-token lifetime; 0 = --token-ttl */
    char arn[96];       /* its profileArn ("" for API keys) */
    k2a_sim_counters_t c;
    struct st_k2a_sim_hints_t *hints; /* sessions and times of its generate calls (NULL before the first) */
    k2a_sim_last_request_t last;
    struct st_k2a_sim_account_t *next;
} k2a_sim_account_t;

typedef struct st_k2a_sim_token_t {
    char *token;
    k2a_sim_account_t *account;
    uint64_t expires_ms; /* uv_now() clock */
    uint64_t seq;        /* 1-based issue number within the account */
    struct st_k2a_sim_token_t *next;
} k2a_sim_token_t;

typedef struct st_k2a_sim_accounts_t {
    k2a_sim_account_t **abuckets;
    size_t nabuckets, naccounts;
    k2a_sim_token_t **tbuckets;
    size_t ntbuckets, ntokens, purge_at;
    uint64_t rng;
} k2a_sim_accounts_t;

typedef enum en_k2a_sim_endpoint_t {
    K2A_SIM_EP_SOCIAL_REFRESH,
    K2A_SIM_EP_IDC_REFRESH,
    K2A_SIM_EP_USAGE,
    K2A_SIM_EP_MODELS,
    K2A_SIM_EP_GENERATE,
    K2A_SIM_EP_PROFILES,
    K2A_SIM_EP_ENTRA,
    K2A_SIM_EP_MCP,
    K2A_SIM_EP_STATS,
    K2A_SIM_EP_RESET,
    K2A_SIM_EP_SSE,
    K2A_SIM_EP_OTHER,
    K2A_SIM_EP_MAX
} k2a_sim_endpoint_t;

typedef struct st_k2a_sim_stats_t {
    uint64_t requests[K2A_SIM_EP_MAX];
    uint64_t open_streams, max_open_streams, streams_total;
    uint64_t rejections;
    char last_rejection[48];
    /* per-rule rejection counts: small fixed table of (rule, count) */
    struct {
        const char *rule;
        uint64_t n;
    } rules[48];
    /* request headers of generate calls that were missing or malformed (kiro-protocol-2026 section 5.1) */
    uint64_t header_warnings;
    struct {
        const char *name;
        uint64_t n;
    } header_rules[8];
    /* accounts and bearer tokens seen per TCP connection (kiro-protocol-2026 section 5.3) */
    uint64_t conns_multi_account, conns_multi_token, max_accounts_per_conn, max_tokens_per_conn;
} k2a_sim_stats_t;

/* Per-connection memory of the bearer tokens and accounts seen: a direct-mapped table keyed by h2o's connection id
 * (ids grow, so a slot is reused only after K2A_SIM_CONN_SLOTS newer connections). */
#define K2A_SIM_CONN_SLOTS 16384
#define K2A_SIM_CONN_KEEP 8
typedef struct st_k2a_sim_conn_seen_t {
    uint64_t conn_id; /* 0 = empty */
    uint32_t naccounts, ntokens;
    uint64_t accounts[K2A_SIM_CONN_KEEP], tokens[K2A_SIM_CONN_KEEP]; /* FNV-1a hashes */
} k2a_sim_conn_seen_t;

int k2a_sim_accounts_init(k2a_sim_accounts_t *a);
void k2a_sim_accounts_dispose(k2a_sim_accounts_t *a);
/* Parses "sim-<kind>-<x>" (x non-empty; sim-ttl<N>-<x> with N in 1..86400, returned in *ttl_s when not NULL).
 * Returns 0 and the kind, or K2A_ENOTFOUND. */
int k2a_sim_parse_kind_ex(const char *refresh_token, k2a_sim_kind_t *kind, uint32_t *ttl_s);
int k2a_sim_parse_kind(const char *refresh_token, k2a_sim_kind_t *kind);
/* The API-key account of a "ksk_sim-<x>" bearer (created on first use), or NULL. */
k2a_sim_account_t *k2a_sim_account_for_key(k2a_sim_accounts_t *a, const char *key, size_t len);
/* Adds a bearer token that is the given string (API keys); returns the token entry or NULL. */
k2a_sim_token_t *k2a_sim_token_add(k2a_sim_accounts_t *a, k2a_sim_account_t *acct, const char *token, size_t len,
                                   uint64_t expires_ms);
/* The account a refresh token belongs to (created on first use), or NULL for tokens that are not sim-<kind>-<x> and
 * not a rotated token of a known rotate account. *gen receives the rotation number the token carries. */
k2a_sim_account_t *k2a_sim_account_for_refresh(k2a_sim_accounts_t *a, const char *refresh_token, uint32_t *gen);
k2a_sim_account_t *k2a_sim_account_find(k2a_sim_accounts_t *a, const char *name);
/* Issues a new access token for the account; returns the borrowed token string (valid until it expires and is purged). */
const char *k2a_sim_token_issue(k2a_sim_accounts_t *a, k2a_sim_account_t *acct, uint64_t now_ms, uint64_t ttl_ms);
/* Looks a bearer token up; NULL when unknown or expired. */
k2a_sim_token_t *k2a_sim_token_find(k2a_sim_accounts_t *a, const char *token, size_t len, uint64_t now_ms);
/* Forgets every account and token. */
void k2a_sim_accounts_clear(k2a_sim_accounts_t *a);
void k2a_sim_accounts_reset_counters(k2a_sim_accounts_t *a);
/* A generate call of the account: its conversationId (the gateway's session hint) and its time, for /sim/stats
 * "conversations" and "generate_times_ms" (sticky routing and pacing checks). */
void k2a_sim_note_generate(k2a_sim_account_t *acct, const char *body, size_t len);
void k2a_sim_stats_reject(k2a_sim_stats_t *s, const char *rule);
/* Counts a missing or malformed request header (name is a string literal). */
void k2a_sim_stats_header(k2a_sim_stats_t *s, const char *name);
/* Appends the /sim/stats JSON document. */
int k2a_sim_stats_json(const k2a_sim_stats_t *s, const k2a_sim_accounts_t *a, k2a_buf_t *out);

/* ---- server (server.c, generate.c) ---- */

struct st_k2a_sim_server_t {
    k2a_sim_config_t cfg;
    uv_loop_t *loop;
    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    uv_tcp_t listener;
    bool listener_open;
    k2a_sim_accounts_t accounts;
    k2a_sim_stats_t stats;
    uint64_t request_seq;
    k2a_buf_t last_generate;    /* body of the last generateAssistantResponse (GET /sim/last-request), at most 1 MiB */
    k2a_sim_conn_seen_t *conns; /* K2A_SIM_CONN_SLOTS entries */
};

/* What a request is addressed to: the region of its path prefix (us-east-1 without one) and the path after it. */
typedef struct st_k2a_sim_route_t {
    const char *region;
    const char *path; /* inside req->path_normalized, without the region prefix */
    size_t path_len;
} k2a_sim_route_t;

/* Answers status with a JSON body, after delay_ms (0 = at once; later ones go through a timer and survive the client
 * going away). */
void k2a_sim_respond_json(k2a_sim_server_t *srv, h2o_req_t *req, int status, const char *body, size_t len, uint32_t delay_ms);
/* The generateAssistantResponse handler (REST or awsJson; route gives the host region). */
int k2a_sim_handle_generate(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route);
/* GET|POST /sim/sse?frames=N&size=S: a finished Anthropic SSE answer, for the benchmark's pure-proxy baseline (sse.c). */
int k2a_sim_handle_sse(k2a_sim_server_t *srv, h2o_req_t *req);
/* The valid, unexpired token of the request's "Authorization: Bearer" header, or NULL after answering 403 with Kiro's
 * bearer-invalid body. Also refused with that 403: a ksk_ key without "tokentype: API_KEY" and, when idp_type_needed,
 * an external_idp account's token without "tokentype: EXTERNAL_IDP". Records the connection statistics. */
k2a_sim_token_t *k2a_sim_require_bearer_ex(k2a_sim_server_t *srv, h2o_req_t *req, bool idp_type_needed);
k2a_sim_token_t *k2a_sim_require_bearer(k2a_sim_server_t *srv, h2o_req_t *req);
/* The bearer-invalid body of the current mode (2026: no "reason" key). */
const char *k2a_sim_body_bearer_invalid(const k2a_sim_server_t *srv);
/* True when the request carries header `name` (lower case) equal to `value` (case-insensitive). */
bool k2a_sim_header_is(h2o_req_t *req, const char *name, const char *value);
/* The current time of the loop in ms. */
uint64_t k2a_sim_now_ms(k2a_sim_server_t *srv);
/* Checks the fingerprint headers of a generate call (kiro-protocol-2026 section 5.1): each missing or malformed one
 * is counted and logged. Returns the name of the first bad one, or NULL. */
const char *k2a_sim_check_headers(k2a_sim_server_t *srv, h2o_req_t *req);
/* Records the token/account of a request in the connection statistics. */
void k2a_sim_conn_seen(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_token_t *t);
/* The control calls (control.c): ListAvailableProfiles and ListAvailableModels (2026 GET with paging, or awsJson), the
 * 2025 ListAvailableModels, the external_idp token endpoint. */
int k2a_sim_handle_profiles(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route);
int k2a_sim_handle_models_2026(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route, bool aws_json);
int k2a_sim_handle_models_2025(k2a_sim_server_t *srv, h2o_req_t *req);
int k2a_sim_handle_entra_token(k2a_sim_server_t *srv, h2o_req_t *req);
/* POST /mcp: web search through JSON-RPC tools/call (mcp.c). */
int k2a_sim_handle_mcp(k2a_sim_server_t *srv, h2o_req_t *req);
/* Checks a profileArn given to a REST call (getUsageLimits, ListAvailableModels): the placeholder -> 403 Invalid token,
 * someone else's -> 403 not authorized, another region -> 400. Returns true when it answered. */
bool k2a_sim_rest_arn_rejected(k2a_sim_server_t *srv, h2o_req_t *req, const k2a_sim_route_t *route, const k2a_sim_account_t *acct,
                               const char *arn);
/* The value of query parameter `name`, URL-decoded into the request's pool, or NULL when absent. */
const char *k2a_sim_query_param(h2o_req_t *req, const char *name);
/* Decodes %XX and '+' of a form or query value into the request's pool (NUL-terminated); NULL on a bad escape or a
 * NUL byte. */
char *k2a_sim_url_decode(h2o_req_t *req, const char *s, size_t len);
/* Refreshes the account of refresh_token when its auth kind is in auth_mask (1u << k2a_sim_auth_t): issues an access
 * token (*access) and the refresh token to return (new_refresh). NULL when the refresh token is rejected. */
k2a_sim_account_t *k2a_sim_do_refresh(k2a_sim_server_t *srv, const char *refresh_token, char *new_refresh, size_t sz,
                                      const char **access, unsigned auth_mask);
/* Adds x-amzn-requestid and content-type headers. */
void k2a_sim_add_common_headers(k2a_sim_server_t *srv, h2o_req_t *req, const char *content_type);

#endif
