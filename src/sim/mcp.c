/*
 * kiro-sim's web search: POST /mcp and /{region}/mcp (kiro-protocol-2026 §10). A JSON-RPC 2.0 "tools/call" of the tool
 * web_search with {"query": ...} answers {"id","jsonrpc":"2.0","result":{"isError":false,"content":[{"type":"text",
 * "text":"<JSON>"}]}} where the text is itself JSON: {"results":[{title,url,snippet,publishedDate,id,domain,
 * maxVerbatimWordLimit,publicDomain}],"totalResults","query","error":null}. The results are derived from the query
 * (every title contains it) so that tests can assert them.
 *
 * Checks: a valid bearer (403 otherwise), the header x-amzn-kiro-profile-arn (missing: 400 "profileArn is required for
 * this request."; not the account's ARN, 2026 mode only: 403 "User is not authorized to make this call."). An optout or agent-mode
 * header is counted in /sim/stats (missing_headers, under its name) since real clients never send it here. A body that is not a
 * tools/call of web_search answers a JSON-RPC error (HTTP 200, {"error":{"code","message"}}).
 *
 * Directives in the query: [[mcp:error]] a JSON-RPC error; [[mcp:empty]] no results; [[mcp:stall ms=N]] the answer is
 * delayed N ms (at most 600000).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_tree.h>
#include "core/buf.h"
#include "sim/internal.h"

#define MCP_BODY_MAX (64 * 1024)
#define MCP_QUERY_MAX 1000
#define MCP_RESULTS 3

#define RESPOND_LIT(srv, req, status, lit) k2a_sim_respond_json((srv), (req), (status), (lit), sizeof(lit) - 1, 0)

static const char *str_at(yajl_val v, const char **path)
{
    yajl_val s = yajl_tree_get(v, path, yajl_t_string);
    return s != NULL ? YAJL_GET_STRING(s) : NULL;
}

/* A JSON-RPC error answer (HTTP 200, as a JSON-RPC server does). */
static void rpc_error(k2a_sim_server_t *srv, h2o_req_t *req, const char *id, int code, const char *message, uint32_t delay_ms)
{
    k2a_buf_t out = K2A_BUF_INIT(0);
    k2a_buf_appendstr(&out, "{\"id\":");
    if (id != NULL) {
        k2a_buf_appendstr(&out, "\"");
        k2a_buf_append_json_escaped(&out, id, strlen(id));
        k2a_buf_appendstr(&out, "\"");
    } else {
        k2a_buf_appendstr(&out, "null");
    }
    k2a_buf_appendf(&out, ",\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"", code);
    k2a_buf_append_json_escaped(&out, message, strlen(message));
    k2a_buf_appendstr(&out, "\"}}");
    k2a_sim_respond_json(srv, req, 200, out.base != NULL ? out.base : "{}", out.len, delay_ms);
    k2a_buf_dispose(&out);
}

static uint64_t fnv1a(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; ++i) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Removes every [[mcp:...]] directive from q (in place), noting what they ask for. Returns false on a malformed one. */
static bool take_directives(char *q, bool *error, bool *empty, uint32_t *stall_ms)
{
    char *p;
    while ((p = strstr(q, "[[mcp:")) != NULL) {
        char *end = strstr(p, "]]");
        if (end == NULL)
            return false;
        *end = '\0';
        const char *d = p + 6;
        if (strcmp(d, "error") == 0) {
            *error = true;
        } else if (strcmp(d, "empty") == 0) {
            *empty = true;
        } else if (strncmp(d, "stall ms=", 9) == 0) {
            char *e;
            unsigned long ms = strtoul(d + 9, &e, 10);
            if (*e != '\0' || ms > 600000)
                return false;
            *stall_ms = (uint32_t)ms;
        } else {
            return false;
        }
        memmove(p, end + 2, strlen(end + 2) + 1);
    }
    /* trim the spaces the directives leave */
    size_t n = strlen(q);
    while (n > 0 && q[n - 1] == ' ')
        q[--n] = '\0';
    size_t lead = strspn(q, " ");
    if (lead > 0)
        memmove(q, q + lead, n - lead + 1);
    return true;
}

/* The inner JSON document of the result text. */
static void results_json(k2a_buf_t *out, const char *query, bool empty)
{
    size_t qn = strlen(query);
    uint64_t h = fnv1a(query, qn);
    size_t n = empty ? 0 : MCP_RESULTS;
    k2a_buf_appendstr(out, "{\"results\":[");
    for (size_t i = 0; i < n; ++i) {
        char domain[64], url[160], id[32];
        snprintf(domain, sizeof(domain), "site%u.example.com", (unsigned)((h >> (i * 8)) & 0xff));
        snprintf(url, sizeof(url), "https://%s/articles/%016llx-%zu", domain, (unsigned long long)h, i + 1);
        snprintf(id, sizeof(id), "res-%08x-%zu", (unsigned)(h & 0xffffffffu), i + 1);
        k2a_buf_appendf(out, "%s{\"title\":\"Result %zu: ", i ? "," : "", i + 1);
        k2a_buf_append_json_escaped(out, query, qn);
        k2a_buf_appendf(out, "\",\"url\":\"%s\",\"snippet\":\"Simulated snippet %zu about ", url, i + 1);
        k2a_buf_append_json_escaped(out, query, qn);
        /* publishedDate: a fixed day of 2026 derived from the query (ms since the epoch, UTC midnight) */
        k2a_buf_appendf(out,
                        ".\",\"publishedDate\":%llu,\"id\":\"%s\",\"domain\":\"%s\",\"maxVerbatimWordLimit\":30,"
                        "\"publicDomain\":false}",
                        (unsigned long long)(1767225600000ull + ((h >> 16) % 300 + i) * 86400000ull), id, domain);
    }
    k2a_buf_appendf(out, "],\"totalResults\":%zu,\"query\":\"", n);
    k2a_buf_append_json_escaped(out, query, qn);
    k2a_buf_appendstr(out, "\",\"error\":null}");
}

int k2a_sim_handle_mcp(k2a_sim_server_t *srv, h2o_req_t *req)
{
    k2a_sim_token_t *t = k2a_sim_require_bearer(srv, req);
    if (t == NULL)
        return 0;
    k2a_sim_account_t *acct = t->account;
    if (k2a_sim_header_is(req, "x-amzn-codewhisperer-optout", "true") ||
        k2a_sim_header_is(req, "x-amzn-codewhisperer-optout", "false"))
        k2a_sim_stats_header(&srv->stats, "x-amzn-codewhisperer-optout on /mcp");
    ssize_t ai = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amzn-kiro-agent-mode"), -1);
    if (ai != -1)
        k2a_sim_stats_header(&srv->stats, "x-amzn-kiro-agent-mode on /mcp");
    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-amzn-kiro-profile-arn"), -1);
    if (hi == -1 || req->headers.entries[hi].value.len == 0) {
        k2a_sim_stats_reject(&srv->stats, "mcp_profile_arn_missing");
        RESPOND_LIT(srv, req, 400, "{\"message\":\"profileArn is required for this request.\"}");
        return 0;
    }
    h2o_iovec_t arn = req->headers.entries[hi].value;
    if (!srv->cfg.legacy && (acct->arn[0] == '\0' || !h2o_memis(arn.base, arn.len, acct->arn, strlen(acct->arn)))) {
        k2a_sim_stats_reject(&srv->stats, "mcp_profile_arn_mismatch");
        RESPOND_LIT(srv, req, 403, "{\"message\":\"User is not authorized to make this call.\"}");
        return 0;
    }
    if (req->entity.base == NULL || req->entity.len == 0 || req->entity.len > MCP_BODY_MAX ||
        memchr(req->entity.base, '\0', req->entity.len) != NULL) {
        rpc_error(srv, req, NULL, -32700, "Parse error", 0);
        return 0;
    }
    char *copy = strndup(req->entity.base, req->entity.len);
    char errbuf[128];
    yajl_val body = copy != NULL ? yajl_tree_parse(copy, errbuf, sizeof(errbuf)) : NULL;
    free(copy);
    if (body == NULL || !YAJL_IS_OBJECT(body)) {
        yajl_tree_free(body);
        rpc_error(srv, req, NULL, -32700, "Parse error", 0);
        return 0;
    }
    static const char *p_id[] = {"id", NULL}, *p_ver[] = {"jsonrpc", NULL}, *p_method[] = {"method", NULL},
                      *p_name[] = {"params", "name", NULL}, *p_query[] = {"params", "arguments", "query", NULL};
    const char *id = str_at(body, p_id), *ver = str_at(body, p_ver), *method = str_at(body, p_method), *name = str_at(body, p_name),
               *query = str_at(body, p_query);
    if (id == NULL || ver == NULL || strcmp(ver, "2.0") != 0 || method == NULL) {
        rpc_error(srv, req, id, -32600, "Invalid Request", 0);
    } else if (strcmp(method, "tools/call") != 0) {
        rpc_error(srv, req, id, -32601, "Method not found", 0);
    } else if (name == NULL || strcmp(name, "web_search") != 0 || query == NULL || query[0] == '\0' ||
               strlen(query) > MCP_QUERY_MAX) {
        rpc_error(srv, req, id, -32602, "Invalid params: tools/call web_search takes {\"query\": a non-empty string}", 0);
    } else {
        char q[MCP_QUERY_MAX + 1];
        bool err = false, empty = false;
        uint32_t stall = 0;
        snprintf(q, sizeof(q), "%s", query);
        if (!take_directives(q, &err, &empty, &stall)) {
            rpc_error(srv, req, id, -32602, "Invalid params: malformed [[mcp:...]] directive", 0);
        } else if (err) {
            rpc_error(srv, req, id, -32603, "Internal error: the search backend failed", stall);
        } else {
            k2a_buf_t inner = K2A_BUF_INIT(0), out = K2A_BUF_INIT(0);
            results_json(&inner, q, empty);
            k2a_buf_appendstr(&out, "{\"id\":\"");
            k2a_buf_append_json_escaped(&out, id, strlen(id));
            k2a_buf_appendstr(&out,
                              "\",\"jsonrpc\":\"2.0\",\"result\":{\"isError\":false,\"content\":[{\"type\":\"text\",\"text\":\"");
            k2a_buf_append_json_escaped(&out, inner.base, inner.len);
            k2a_buf_appendstr(&out, "\"}]}}");
            k2a_sim_respond_json(srv, req, 200, out.base, out.len, stall);
            k2a_buf_dispose(&inner);
            k2a_buf_dispose(&out);
        }
    }
    yajl_tree_free(body);
    return 0;
}
