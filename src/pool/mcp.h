/*
 * Kiro's MCP endpoint (kiro-protocol-2026 §10): one JSON-RPC call (tools/call web_search) POSTed to "<api base>/mcp" with an
 * account of the pool, beside the generate call of dispatch.h and with the same pool semantics: an account is leased (the
 * strategy, the concurrency cap, the single-flight refresh), a non-200 answer is classified by the error matrix (health.c)
 * and applied to the account's state machine, an invalid bearer is refreshed and retried once on the same account, any
 * other failure moves on to the next account (up to KIRO_MAX_ATTEMPTS), and a success counts as the account's request.
 *
 * Headers (§10): content-type, the streaming user-agent pair, amz-sdk-invocation-id, amz-sdk-request, Authorization and
 * x-amzn-kiro-profile-arn; never the optout or agent-mode header, and the body carries no profileArn. An account without a
 * known profile ARN is skipped (MCP needs it), without a penalty; so is an account answered by a 403 that is not about its
 * token or by a profile or model error (the profile may lack web search while its generate calls work). A search past its deadline
 * ends the call (the timeout is the search's budget, not the account's fault): no penalty and no other account.
 */
#ifndef K2A_POOL_MCP_H
#define K2A_POOL_MCP_H

#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"
#include "pool/pool.h"

struct st_k2a_upstream_t;

/* The MCP answer body kept at most (the parser bounds what it reads inside it). */
#define K2A_MCP_BODY_MAX (1024 * 1024)

typedef struct st_k2a_mcp_outcome_t {
    int err;             /* 0, or the K2A_E* of the last failure */
    int upstream_status; /* the last HTTP status (0 for none) */
    unsigned attempts;   /* accounts tried */
    char message[512];   /* why it failed: one clause per attempt (never the request body) */
} k2a_mcp_outcome_t;

/* The MCP URL of the lease's account: "/mcp" on its data-plane region's base (k2a_pool_api_url), NULL when none. */
const struct st_k2a_url_t *k2a_mcp_url(k2a_pool_t *pool, const k2a_lease_t *lease);

/* In a coroutine: POSTs the JSON-RPC body and appends the 200 answer's body to out (at most K2A_MCP_BODY_MAX bytes).
 * timeout_ms bounds the wait for the answer's first byte and every pause in it (0 = the upstream defaults). Returns 0,
 * or a K2A_E* with oc->err and oc->message set (K2A_ENO_ACCOUNT, K2A_ETHROTTLED, a timeout, K2A_ECANCELED, ...). */
int k2a_mcp_call(k2a_pool_t *pool, struct st_k2a_upstream_t *up, const char *request_id, const char *body, size_t len,
                 uint32_t timeout_ms, k2a_buf_t *out, k2a_mcp_outcome_t *oc);

#endif
