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
#include "http/server.h"
#include "keys/keys.h"
#include "pool/store_redis_keys.h"

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
    int64_t now = now_ms();
    k2a_keys_verdict_t v = k2a_keys_admit(call->key, model.base, model.len, now, &retry);
    if (v != K2A_KEYS_OK)
        return respond(call, v, retry);
    call->key_admitted = 1;
    call->key_slot[0] = '\0';
    /* with a shared store the limits hold across replicas; when it is down the replica's own counters (just taken) do */
    k2a_key_limits_t l;
    k2a_keys_limits_of(call->key, &l);
    int64_t now_s = now / 1000;
    if (call->server->pool == NULL || call->key->builtin)
        return 0;
    if (l.rpm == 0 && l.concurrency == 0 && l.credits_day == 0 && l.credits_month == 0 && l.tokens_day == 0) {
        /* nothing to check: the request is only counted in the shared usage */
        call->key_shared = k2a_shared_key_count(call->server->pool, call->key->id, k2a_keys_day_of(now_s));
        return 0;
    }
    k2a_shared_admit_t a = {.id = call->key->id,
                            .rpm = l.rpm,
                            .concurrency = l.concurrency,
                            .tokens_day = l.tokens_day,
                            .credits_day = l.credits_day,
                            .credits_month = l.credits_month,
                            .now_ms = now,
                            .day = k2a_keys_day_of(now_s),
                            .month = k2a_keys_month_of(now_s)};
    int verdict;
    int64_t retry_ms;
    int r = k2a_shared_key_admit(call->server->pool, &a, &verdict, &retry_ms, call->key_slot);
    if (r != 0)
        return 0; /* shared store unavailable: the local admission stands */
    call->key_shared = 1;
    if (verdict == K2A_SHARED_OK)
        return 0;
    k2a_keys_admit_undo(call->key, now);
    call->key_admitted = 0;
    call->key_shared = 0;
    static const k2a_keys_verdict_t map[] = {K2A_KEYS_OK,          K2A_KEYS_CONCURRENCY,   K2A_KEYS_RPM,
                                             K2A_KEYS_CREDITS_DAY, K2A_KEYS_CREDITS_MONTH, K2A_KEYS_TOKENS_DAY};
    v = map[verdict];
    if (v == K2A_KEYS_CREDITS_DAY || v == K2A_KEYS_TOKENS_DAY)
        retry = k2a_keys_next_day_s(now_s) - now_s;
    else if (v == K2A_KEYS_CREDITS_MONTH)
        retry = k2a_keys_next_month_s(now_s) - now_s;
    else
        retry = retry_ms <= 0 ? 1 : (retry_ms + 999) / 1000;
    return respond(call, v, retry);
}

void k2a_keys_gate_charge(k2a_call_t *call, int64_t input_tokens, int64_t output_tokens, double credits)
{
    if (call->key == NULL || !call->key_admitted)
        return;
    int64_t now = now_ms();
    k2a_keys_charge(call->server->keys, call->key, input_tokens, output_tokens, credits, now);
    if (call->key_shared)
        k2a_shared_key_charge(call->server->pool, call->key->id, input_tokens, output_tokens, credits, k2a_keys_day_of(now / 1000),
                              k2a_keys_month_of(now / 1000));
}

void k2a_keys_gate_end(k2a_call_t *call)
{
    if (call->key == NULL || !call->key_admitted || call->key_released)
        return;
    call->key_released = 1; /* usage may still be charged (keys_gate_charge) */
    bool failed = !call->started || call->status >= 400 || call->stalled;
    int64_t now = now_ms();
    k2a_keys_release(call->server->keys, call->key, failed, now);
    if (call->key_shared)
        k2a_shared_key_release(call->server->pool, call->key->id, call->key_slot, failed, k2a_keys_day_of(now / 1000));
}
