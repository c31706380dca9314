/*
 * kiro2api doctor --probe: the matrix of kiro-protocol-2026 §14 for one account, bounded and sequential: each host
 * template of KIRO_PROBE_BASES with each request shape (the IDE's REST JSON generateAssistantResponse, the awsJson call
 * at the root with its x-amz-target, web search through /mcp), and for Builder ID accounts the placeholder ARN on the
 * IDE shape. A cell is a status and a latency; the verdict of the account does not depend on it. With --trace each
 * exchange is traced (trace/trace.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/rand.h"
#include "doctor/doctor_check.h"
#include "pool/fingerprint.h"
#include "pool/internal.h"
#include "pool/region.h"
#include "trace/trace.h"

#define PROBE_BODY_MAX (256 * 1024)
#define HDR(n, v) ((k2a_http_header_t){K2A_STRLIT(n), k2a_cstr(v)})

enum { SHAPE_REST, SHAPE_AWSJSON, SHAPE_MCP };

static void generate_body(k2a_buf_t *b, const char *model, const char *arn)
{
    char conv[37], cont[37];
    k2a_rand_uuid4(conv);
    k2a_rand_uuid4(cont);
    k2a_buf_appendstr(b, "{\"conversationState\":{\"agentContinuationId\":\"");
    k2a_buf_appendstr(b, cont);
    k2a_buf_appendstr(b, "\",\"agentTaskType\":\"vibe\",\"chatTriggerType\":\"MANUAL\",\"currentMessage\":{\"userInputMessage\":"
                         "{\"content\":\"Hi\",\"modelId\":\"");
    k2a_buf_append_json_escaped(b, model, strlen(model));
    k2a_buf_appendstr(b, "\",\"origin\":\"AI_EDITOR\",\"userInputMessageContext\":{}}},\"conversationId\":\"");
    k2a_buf_appendstr(b, conv);
    k2a_buf_appendstr(b, "\"}");
    if (arn != NULL) {
        k2a_buf_appendstr(b, ",\"profileArn\":\"");
        k2a_buf_append_json_escaped(b, arn, strlen(arn));
        k2a_buf_appendstr(b, "\"");
    }
    k2a_buf_appendstr(b, "}");
}

static void mcp_body(k2a_buf_t *b)
{
    char id[37];
    k2a_rand_uuid4(id);
    k2a_buf_appendstr(b, "{\"id\":\"");
    k2a_buf_appendstr(b, id);
    k2a_buf_appendstr(b, "\",\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"web_search\",\"arguments\":"
                         "{\"query\":\"kiro\"}}}");
}

/* One cell: the call, its status and latency, a short detail. */
static void cell(k2a_pool_t *p, k2a_account_t *a, const char *base_tmpl, int shape, const char *arn, const char *model,
                 k2a_doctor_step_t *out)
{
    k2a_buf_t url_str = K2A_BUF_INIT(4096), body = K2A_BUF_INIT(64 * 1024), resp_body = K2A_BUF_INIT(PROBE_BODY_MAX),
              auth = K2A_BUF_INIT(0);
    k2a_url_t url;
    out->ran = true;
    k2a_region_fill(base_tmpl, k2a_account_region(a), &url_str);
    while (url_str.len > 0 && url_str.base[url_str.len - 1] == '/')
        --url_str.len;
    k2a_buf_appendstr(&url_str, shape == SHAPE_REST ? "/generateAssistantResponse" : shape == SHAPE_MCP ? "/mcp" : "/");
    if (k2a_buf_cstr(&url_str) == NULL || k2a_url_parse(url_str.base, url_str.len, &url) != 0 || a->access_token == NULL) {
        snprintf(out->detail, sizeof(out->detail), "bad URL");
        goto Exit;
    }
    char xamz[200], ua[360], invocation[37];
    k2a_fp_streaming_ua(p->kiro_version, a->machine_id, xamz, sizeof(xamz), ua, sizeof(ua));
    k2a_rand_uuid4(invocation);
    k2a_buf_appendstr(&auth, "Bearer ");
    k2a_buf_appendstr(&auth, a->access_token);
    k2a_http_header_t h[12];
    size_t nh = 0;
    if (shape == SHAPE_AWSJSON) {
        h[nh++] = HDR("content-type", "application/x-amz-json-1.0");
        h[nh++] = HDR("x-amz-target", "AmazonCodeWhispererStreamingService.GenerateAssistantResponse");
    } else {
        h[nh++] = HDR("content-type", "application/json");
    }
    if (shape != SHAPE_MCP) {
        h[nh++] = HDR("x-amzn-codewhisperer-optout", "true");
        h[nh++] = HDR("x-amzn-kiro-agent-mode", p->agent_mode);
    }
    h[nh++] = HDR("x-amz-user-agent", xamz);
    h[nh++] = HDR("user-agent", ua);
    h[nh++] = HDR("amz-sdk-invocation-id", invocation);
    h[nh++] = HDR("amz-sdk-request", "attempt=1; max=1");
    h[nh++] = (k2a_http_header_t){K2A_STRLIT("authorization"), k2a_str(auth.base, auth.len)};
    if (shape == SHAPE_MCP && arn != NULL && strcmp(arn, K2A_ARN_BUILDER_ID) != 0)
        h[nh++] = HDR("x-amzn-kiro-profile-arn", arn);
    if (k2a_account_token_type(a) != NULL)
        h[nh++] = HDR("tokentype", k2a_account_token_type(a));
    h[nh++] = HDR("connection", "close");
    if (shape == SHAPE_MCP)
        mcp_body(&body);
    else
        generate_body(&body, model, arn);
    uv_buf_t b = uv_buf_init(body.base, (unsigned)body.len);
    k2a_http_request_t req = {
        .url = &url, .method = "POST", .headers = h, .nheaders = nh, .body = &b, .nbody = 1, .affinity = a->id, .close = true};
    k2a_trace_rec_t *trace = k2a_trace_begin(a->label, "POST", &url, h, nh, &b, 1);
    uv_update_time(k2a_coro_loop());
    uint64_t t0 = uv_now(k2a_coro_loop());
    k2a_http_response_t *resp = NULL;
    int r = k2a_upstream_request(p->up, &req, &resp);
    if (r == 0) {
        out->status = resp->status;
        k2a_trace_response_head(trace, resp);
        r = k2a_upstream_read_all(resp, &resp_body, PROBE_BODY_MAX);
        if (r == K2A_ETOOBIG)
            r = 0;
        k2a_upstream_release(resp);
    }
    uv_update_time(k2a_coro_loop());
    out->ms = (int64_t)(uv_now(k2a_coro_loop()) - t0);
    if (r != 0) {
        snprintf(out->detail, sizeof(out->detail), "%s", k2a_strerror(r));
    } else if (out->status == 200) {
        out->ok = true;
        snprintf(out->detail, sizeof(out->detail), "answered (%zu bytes)", resp_body.len);
    } else {
        k2a_verdict_t v;
        k2a_pool_classify(0, out->status, resp_body.base, resp_body.len, &v);
        snprintf(out->detail, sizeof(out->detail), "%s", v.detail);
    }
    k2a_trace_capture(trace, resp_body.base, resp_body.len);
    k2a_trace_end(&trace, k2a_coro_loop(), !out->ok, r, out->detail);
Exit:
    k2a_buf_dispose(&url_str);
    k2a_buf_dispose(&body);
    k2a_buf_dispose(&resp_body);
    k2a_buf_dispose(&auth);
}

void k2a_doctor_probe_account(k2a_pool_t *p, size_t index, const k2a_doctor_opts_t *o, k2a_doctor_account_t *out)
{
    k2a_account_t *a = p->accounts[index];
    const char *arn = k2a_account_generate_arn(a);
    const char *model = out->model[0] != '\0' ? out->model : "claude-haiku-4.5";
    static const char *const shapes[] = {"rest", "awsjson", "mcp"};
    const char *s = o->probe_bases != NULL ? o->probe_bases : "";
    char first[160] = "";
    for (size_t nb = 0; *s != '\0' && nb < K2A_DOCTOR_MAX_PROBE_BASES;) {
        const char *comma = strchr(s, ',');
        size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
        while (len > 0 && (*s == ' ' || *s == '\t')) {
            ++s;
            --len;
        }
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            --len;
        if (len > 0 && len < sizeof(first)) {
            char base[160];
            snprintf(base, sizeof(base), "%.*s", (int)len, s);
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", base);
            for (int shape = 0; shape < 3; ++shape) {
                k2a_doctor_probe_t *c = &out->probes[out->nprobes++];
                snprintf(c->base, sizeof(c->base), "%s", base);
                c->shape = shapes[shape];
                cell(p, a, base, shape, arn, model, &c->step);
            }
            ++nb;
        }
        s = comma != NULL ? comma + 1 : s + strlen(s);
    }
    if (first[0] != '\0' && (a->cfg.auth == K2A_AUTH_IDC || a->cfg.auth == K2A_AUTH_EXTERNAL_IDP)) {
        /* §14 question 2: does the Builder ID placeholder ARN work on the IDE shape for this token? */
        k2a_doctor_probe_t *c = &out->probes[out->nprobes++];
        snprintf(c->base, sizeof(c->base), "%s", first);
        c->shape = "placeholder";
        cell(p, a, first, SHAPE_REST, K2A_ARN_BUILDER_ID, model, &c->step);
    }
}
