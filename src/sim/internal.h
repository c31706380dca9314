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
} k2a_sim_kind_t;

typedef struct st_k2a_sim_counters_t {
    uint64_t requests, refreshes, refresh_failures, usage_calls, model_calls, generates, generate_ok;
} k2a_sim_counters_t;

typedef struct st_k2a_sim_account_t {
    char *name; /* the original refresh token, e.g. sim-rotate-a */
    k2a_sim_kind_t kind;
    uint32_t rotate_gen; /* sim-rotate: the current refresh token is name-r<gen> (name itself when 0) */
    uint64_t tokens_issued;
    uint64_t tripped_seq; /* sim-403once: tokens with seq <= this are rejected once tripped */
    bool tripped;
    double used_credits;
    k2a_sim_counters_t c;
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
    } rules[32];
} k2a_sim_stats_t;

int k2a_sim_accounts_init(k2a_sim_accounts_t *a);
void k2a_sim_accounts_dispose(k2a_sim_accounts_t *a);
/* Parses "sim-<kind>-<x>" (x non-empty). Returns 0 and the kind, or K2A_ENOTFOUND. */
int k2a_sim_parse_kind(const char *refresh_token, k2a_sim_kind_t *kind);
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
void k2a_sim_stats_reject(k2a_sim_stats_t *s, const char *rule);
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
    k2a_buf_t last_generate; /* body of the last generateAssistantResponse (GET /sim/last-request), at most 1 MiB */
};

/* Answers status with a JSON body, after delay_ms (0 = at once; later ones go through a timer and survive the client
 * going away). */
void k2a_sim_respond_json(k2a_sim_server_t *srv, h2o_req_t *req, int status, const char *body, size_t len, uint32_t delay_ms);
/* The generateAssistantResponse handler. */
int k2a_sim_handle_generate(k2a_sim_server_t *srv, h2o_req_t *req);
/* GET|POST /sim/sse?frames=N&size=S: a finished Anthropic SSE answer, for the benchmark's pure-proxy baseline (sse.c). */
int k2a_sim_handle_sse(k2a_sim_server_t *srv, h2o_req_t *req);
/* The valid, unexpired token of the request's "Authorization: Bearer" header, or NULL after answering 403 with Kiro's
 * bearer-invalid body. */
k2a_sim_token_t *k2a_sim_require_bearer(k2a_sim_server_t *srv, h2o_req_t *req);
/* Adds x-amzn-requestid and content-type headers. */
void k2a_sim_add_common_headers(k2a_sim_server_t *srv, h2o_req_t *req, const char *content_type);

#endif
