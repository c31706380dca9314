/*
 * kiro-sim: a Kiro (AWS CodeWhisperer) simulator served by h2o on one libuv loop, over HTTP or TLS. It implements
 * the Social and IdC refresh endpoints, getUsageLimits, ListAvailableModels and generateAssistantResponse with
 * EventStream bodies, validates requests strictly, and is steered by the refresh token's name (account behaviour)
 * and by [[sim:...]] directives in the last user message (reply shape and faults). Everything is asynchronous: no
 * thread per request, one timer per delayed stream, frames produced lazily.
 *
 * By default it follows Kiro as it is in 2026 (shared/docs/kiro-protocol-2026.md §13): region path prefixes
 * (/us-east-1/..., /eu-central-1/...), the awsJson routes on POST /{region}/, ListAvailableProfiles, paged
 * ListAvailableModels, a required and account-checked profileArn, dotted model ids with per-account tiers, header
 * fingerprint checks, ksk_ API keys and external_idp accounts, and the §9 error bodies. --legacy-2025 restores the
 * 2025 behaviour. Where the rules live: validate.c (body rules), server.c (routes, refresh, usage), control.c
 * (profiles, models, external_idp token, headers, connection statistics), generate.c (account states), accounts.c
 * (account kinds and their ARNs); `kiro-sim --help` lists them all for test writers.
 */
#ifndef K2A_SIM_SIM_H
#define K2A_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "sim/validate.h"

typedef struct st_k2a_sim_config_t {
    const char *host;     /* listen address (IP literal), default 127.0.0.1 */
    int port;             /* 0 = pick a free port */
    const char *tls_cert; /* both set = TLS listener (ALPN h2 + http/1.1) */
    const char *tls_key;
    uint32_t token_ttl;        /* access-token lifetime in seconds (expiresIn), default 3600 */
    const char *idc_client_id; /* when both set, IdC refresh requires exactly this pair */
    const char *idc_client_secret;
    const char *fixtures_dir; /* base directory of [[sim:replay file=...]] */
    size_t chunk;             /* 0 = one write per frame; else writes of exactly this many bytes */
    bool frame_writes;        /* --frame-writes: no whole-reply fast path (every reply streamed frame by frame) */
    uint32_t slow_refresh_ms; /* delay of sim-slowrefresh-* refreshes, default 500 */
    int bad_refresh_status;   /* status of a rejected refresh token, default 401 */
    bool legacy;              /* --legacy-2025: the 2025 behaviour (no profileArn, old model ids, old routes, no header checks) */
    bool strict_headers;      /* --strict-headers: a missing or malformed fingerprint header is a 400, not a warning */
    int overage_status;       /* status of sim-overage-* (OVERAGE_REQUEST_LIMIT_EXCEEDED), 402 or 400 */
    int capacity_status;      /* status of sim-capacity-* (INSUFFICIENT_MODEL_CAPACITY), 429 or 400 */
    k2a_sim_limits_t limits;
} k2a_sim_config_t;

typedef struct st_k2a_sim_server_t k2a_sim_server_t;

/* Fills the defaults above. */
void k2a_sim_config_init(k2a_sim_config_t *cfg);

/* Creates the server on loop and starts listening. cfg is copied (its strings are borrowed and must outlive the
 * server). url (may be NULL) receives "http://HOST:PORT" or "https://HOST:PORT" with the real port.
 * Returns 0, K2A_ECONFIG (TLS files unusable) or K2A_EIO (bind/listen failed); *out is NULL on failure. */
int k2a_sim_server_create(uv_loop_t *loop, const k2a_sim_config_t *cfg, k2a_sim_server_t **out, char *url, size_t urlsz);

/* Closes the listener (no new connections). Connections in progress finish on their own. */
void k2a_sim_server_close(k2a_sim_server_t *srv);

/* Frees the server. Call after the loop has stopped running its handles. */
void k2a_sim_server_destroy(k2a_sim_server_t *srv);

#endif
