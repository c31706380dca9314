/*
 * The client-key gate of chat calls (see keys_gate.h). Refusals go through the call's dialect error table
 * (K2A_ECLIENT_AUTH 401, K2A_EKEY_FORBIDDEN 403, K2A_EKEY_LIMIT 429 with Retry-After): Anthropic
 * `authentication_error` / `permission_error` / `rate_limit_error`, OpenAI codes `invalid_api_key`,
 * `model_not_found`, `rate_limit_exceeded`.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include "core/errors.h"
#include "convert/dialect.h"
#include "core/log.h"
#include "http/keys_gate.h"
#include "keys/keys.h"

static int64_t now_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int respond(k2a_call_t *call, k2a_keys_verdict_t v, int64_t retry_after_s)
{
    int status = k2a_keys_verdict_status(v);
    const char *msg = k2a_keys_verdict_message(v);
    int err = status == 401 ? K2A_ECLIENT_AUTH : status == 403 ? K2A_EKEY_FORBIDDEN : K2A_EKEY_LIMIT;
    k2a_buf_t body = K2A_BUF_INIT(0);
    int r = k2a_dialect_error_body(call->dialect, &body, err, k2a_cstr(msg));
    if (r > 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)(retry_after_s < 1 ? 1 : retry_after_s));
        if (call->req != NULL)
            call->req->res.content_length = body.len;
        r = err == K2A_EKEY_LIMIT
                ? k2a_call_begin(call, r, "application/json", "cache-control", "no-store", "retry-after", ra, NULL)
                : k2a_call_begin(call, r, "application/json", "cache-control", "no-store", NULL);
        if (r == 0 && k2a_call_write(call, body.base != NULL ? body.base : "", body.len) == 0)
            k2a_call_finish(call);
    }
    k2a_buf_dispose(&body);
    K2A_LOG(K2A_LOG_INFO, call->request_id, "client key refused (%d): %s", status, msg);
    return err == K2A_EKEY_LIMIT ? K2A_EBUSY : K2A_ECLIENT_AUTH;
}

const char *k2a_keys_gate_owner(const k2a_call_t *call)
{
    return call->key != NULL ? call->key->id : NULL;
}

int k2a_keys_gate_admit(k2a_call_t *call, k2a_str_t model)
{
    if (call->key == NULL)
        return 0;
    int64_t retry = 0;
    k2a_keys_verdict_t v = k2a_keys_admit(call->key, model.base, model.len, now_ms(), &retry);
    if (v != K2A_KEYS_OK)
        return respond(call, v, retry);
    call->key_admitted = 1;
    return 0;
}

void k2a_keys_gate_charge(k2a_call_t *call, int64_t input_tokens, int64_t output_tokens, double credits)
{
    if (call->key != NULL && call->key_admitted)
        k2a_keys_charge(call->server->keys, call->key, input_tokens, output_tokens, credits, now_ms());
}

void k2a_keys_gate_end(k2a_call_t *call)
{
    if (call->key == NULL || !call->key_admitted || call->key_released)
        return;
    call->key_released = 1; /* usage may still be charged (keys_gate_charge) */
    bool failed = !call->started || call->status >= 400 || call->stalled;
    k2a_keys_release(call->server->keys, call->key, failed, now_ms());
}
