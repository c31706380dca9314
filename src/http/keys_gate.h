/*
 * Where a chat call meets its client key (keys/keys.h): admission before any upstream call (limits, allowed
 * models; refusals answered in the client's dialect, 429 with Retry-After), usage charged per upstream
 * attempt, and the key's concurrency slot given back when the call ends, however it ends.
 */
#ifndef K2A_HTTP_KEYS_GATE_H
#define K2A_HTTP_KEYS_GATE_H

#include <stdint.h>
#include "core/str.h"
#include "http/call.h"

/* Admits the call for model. Returns 0, or a negative K2A_E* after answering the refusal (the handler then returns). A call
 * without a managed key (no key configured) is always admitted. Coroutine of the call only. */
/* The call's client key id (what scopes stored responses), or NULL without a key. */
const char *k2a_keys_gate_owner(const k2a_call_t *call);
int k2a_keys_gate_admit(k2a_call_t *call, k2a_str_t model);
/* Adds one upstream attempt's tokens and credits to the call's key. */
void k2a_keys_gate_charge(k2a_call_t *call, int64_t input_tokens, int64_t output_tokens, double credits);
/* The call's answer is complete or the call ended: gives back the key's slot, counting an error when the answer was not a
 * success. Idempotent. */
void k2a_keys_gate_end(k2a_call_t *call);

#endif
