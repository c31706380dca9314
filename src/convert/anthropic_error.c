/*
 * K2A_E* -> Anthropic error table (see anthropic_error.h). Choices, in the order of the table:
 *  - client mistakes are 400 invalid_request_error, except an unknown model, which is 404 not_found_error exactly as
 *    the Anthropic API answers it (Claude Code recognises that and tells the user to check the model name);
 *  - a request body over our limits is 413 request_too_large;
 *  - Kiro's CONTENT_LENGTH_EXCEEDS_THRESHOLD before the stream starts is 400 invalid_request_error, as Anthropic
 *    answers "prompt is too long"; callers should phrase the message "prompt is too long: ..." because Claude Code
 *    starts its reactive compaction on that text;
 *  - quota exhausted and throttling are 429 rate_limit_error (the SDKs back off and retry);
 *  - "no usable account", a refused/invalid account token (the client's own key was fine: a 401 would make Claude
 *    Code ask the user to log in again) and "too many concurrent requests" are 503 overloaded_error;
 *  - Kiro 5xx is 529 overloaded_error (the SDKs retry it), transport failures towards Kiro are 502 api_error and
 *    timeouts 504 api_error (Anthropic has no type for those statuses; api_error is its generic server type);
 *  - everything else is 500 api_error (an eventstream frame with too many headers is a broken Kiro answer: 502).
 * The rows are indexed by code, one per code of core/errors.h (test_dialect_errors checks that none is missing); the
 * dialect (anthropic_dialect.c) carries them and k2a_dialect_error() is the lookup.
 */
#include <string.h>
#include "convert/anthropic_error.h"
#include "convert/dialect.h"
#include "convert/json_compact.h"
#include "core/errors.h"

#define T_INVALID "invalid_request_error"
#define T_AUTH "authentication_error"
#define T_PERMISSION "permission_error"
#define T_NOT_FOUND "not_found_error"
#define T_TOO_LARGE "request_too_large"
#define T_RATE "rate_limit_error"
#define T_API "api_error"
#define T_OVERLOADED "overloaded_error"

#define ROW(name, st, ty) [K2A__EIDX_##name] = {(st), (ty), NULL}

const k2a_dialect_error_t k2a_anthropic_error_rows[K2A__EIDX_MAX] = {
    /* the client's request */
    ROW(INVAL, 400, T_INVALID),
    ROW(JSON_SYNTAX, 400, T_INVALID),
    ROW(JSON_TYPE, 400, T_INVALID),
    ROW(JSON_DEPTH, 400, T_INVALID),
    ROW(MISSING_FIELD, 400, T_INVALID),
    ROW(IMAGE_INVALID, 400, T_INVALID),
    ROW(IMAGE_URL, 400, T_INVALID),
    ROW(EMPTY_MESSAGES, 400, T_INVALID),
    ROW(EMPTY_CONTENT, 400, T_INVALID),
    ROW(BAD_PARAM, 400, T_INVALID),
    ROW(UNSUPPORTED, 400, T_INVALID),
    ROW(UPSTREAM_BAD_REQUEST, 400, T_INVALID),
    ROW(UPSTREAM_CONTENT_LENGTH, 400, T_INVALID),
    ROW(UPSTREAM_FILTERED, 400, T_INVALID), /* Kiro's content filter blocked the request: as KRA answers it */
    ROW(MODEL_UNKNOWN, 404, T_NOT_FOUND),
    ROW(MODEL_INVALID, 400, T_INVALID),
    ROW(MODEL_UNAVAILABLE, 400, T_INVALID), /* no account's catalog has it: the request itself must change */
    ROW(NOTFOUND, 404, T_NOT_FOUND),
    ROW(TOOBIG, 413, T_TOO_LARGE),
    ROW(PAYLOAD_TOOBIG, 400, T_INVALID), /* the conversation, not the body: "prompt is too long" makes Claude Code compact */
    ROW(CLIENT_AUTH, 401, T_AUTH),
    /* accounts and limits */
    ROW(EXHAUSTED, 429, T_RATE),
    ROW(THROTTLED, 429, T_RATE),
    ROW(PACED, 429, T_RATE), /* every suitable account at its KIRO_ACCOUNT_RPM: Retry-After says when a slot opens */
    ROW(NO_ACCOUNT, 503, T_OVERLOADED),
    ROW(ACCOUNT_INVALID, 503, T_OVERLOADED),
    ROW(UPSTREAM_AUTH, 503, T_OVERLOADED),
    ROW(REFRESH, 503, T_OVERLOADED),
    ROW(BUSY, 503, T_OVERLOADED),
    ROW(NOFD, 503, T_OVERLOADED),              /* the gateway's own descriptors ran out: retry shortly */
    ROW(STATE_UNWRITTEN, 503, T_OVERLOADED),   /* no refresh until the state file is written again */
    ROW(STORE_UNAVAILABLE, 503, T_OVERLOADED), /* a shared limit counter could not be asked (KIRO_REDIS_URL) */
    /* Kiro itself */
    ROW(UPSTREAM_SERVER, 529, T_OVERLOADED),
    ROW(UPSTREAM_CAPACITY, 529, T_OVERLOADED), /* INSUFFICIENT_MODEL_CAPACITY: Anthropic's own "overloaded" */
    ROW(HTTP_STATUS, 502, T_API),
    ROW(UPSTREAM_EVENT, 502, T_API),
    ROW(UPSTREAM_EXCEPTION, 502, T_API),
    ROW(UPSTREAM_TRUNCATED, 502, T_API),
    ROW(UPSTREAM_TOOL_TOOBIG, 502, T_API),
    ROW(UPSTREAM_TOOBIG, 502, T_API),
    ROW(UPSTREAM_NOT_EVENTSTREAM, 502, T_API),
    /* the way to Kiro */
    ROW(DNS, 502, T_API),
    ROW(CONNECT_REFUSED, 502, T_API),
    ROW(CONNECT, 502, T_API),
    ROW(TLS_VERIFY, 502, T_API),
    ROW(TLS_HANDSHAKE, 502, T_API),
    ROW(TLS, 502, T_API),
    ROW(RESET_BEFORE_RESPONSE, 502, T_API),
    ROW(RESET_MID_BODY, 502, T_API),
    ROW(HTTP_PARSE, 502, T_API),
    ROW(HEADER_TOOBIG, 502, T_API),
    ROW(PROXY, 502, T_API),
    ROW(CLOSED, 502, T_API),
    ROW(ES_SHORT_FRAME, 502, T_API),
    ROW(ES_OVERSIZE, 502, T_API),
    ROW(ES_HEADER_OVERRUN, 502, T_API),
    ROW(ES_PRELUDE_CRC, 502, T_API),
    ROW(ES_MESSAGE_CRC, 502, T_API),
    ROW(ES_HEADER_TYPE, 502, T_API),
    ROW(ES_HEADER_NAME, 502, T_API),
    ROW(ES_TRUNCATED, 502, T_API),
    ROW(DNS_TIMEOUT, 504, T_API),
    ROW(CONNECT_TIMEOUT, 504, T_API),
    ROW(FIRST_BYTE_TIMEOUT, 504, T_API),
    ROW(IDLE_TIMEOUT, 504, T_API),
    ROW(TIMEDOUT, 504, T_API),
    ROW(ES_TOO_MANY_HEADERS, 502, T_API),
    /* ours */
    ROW(NOTIMPL, 501, T_API),
    ROW(NOMEM, 500, T_API),
    ROW(INCOMPLETE, 500, T_API),
    ROW(IO, 500, T_API),
    ROW(CONFIG, 500, T_API),
    ROW(INTERNAL, 500, T_API),
    ROW(CANCELED, 499, T_INVALID), /* only logged: the client that would read it is gone */
    ROW(BAD_URL, 500, T_API),      /* a configured endpoint URL that does not parse */
    /* the HTTP layer */
    ROW(METHOD, 405, T_INVALID),
    ROW(REQ_HEADERS_TOOBIG, 431, T_INVALID),
    ROW(FRAMING, 400, T_INVALID),
    ROW(SHUTTING_DOWN, 503, T_OVERLOADED),
    /* client keys (http/keys_gate.c): a limit answers 429 with Retry-After */
    ROW(KEY_LIMIT, 429, T_RATE),
    ROW(KEY_FORBIDDEN, 403, T_PERMISSION),
};

k2a_anthropic_error_map_t k2a_anthropic_error_map(int err)
{
    const k2a_dialect_error_t *row = k2a_dialect_error(&k2a_dialect_anthropic, err);
    return (k2a_anthropic_error_map_t){row->status, row->type};
}

const char *k2a_anthropic_error_type_for_status(int status)
{
    switch (status) {
    case 401:
        return T_AUTH;
    case 403:
        return T_PERMISSION;
    case 404:
        return T_NOT_FOUND;
    case 413:
        return T_TOO_LARGE;
    case 429:
        return T_RATE;
    case 503:
    case 529:
        return T_OVERLOADED;
    default:
        return status >= 400 && status < 500 ? T_INVALID : T_API;
    }
}

int k2a_anthropic_error_json(k2a_buf_t *out, const char *type, k2a_str_t message)
{
    int r;
    if ((r = k2a_buf_appendstr(out, "{\"type\":\"error\",\"error\":{\"type\":\"")) != 0 ||
        (r = k2a_buf_appendstr(out, type)) != 0 || (r = k2a_buf_appendstr(out, "\",\"message\":\"")) != 0 ||
        (r = k2a_json_append_escaped(out, message.base, message.len)) != 0)
        return r;
    return k2a_buf_append(out, "\"}}", 3);
}

int k2a_anthropic_error_sse(k2a_buf_t *out, const char *type, k2a_str_t message)
{
    int r;
    if ((r = k2a_buf_appendstr(out, "event: error\ndata: ")) != 0 || (r = k2a_anthropic_error_json(out, type, message)) != 0)
        return r;
    return k2a_buf_append(out, "\n\n", 2);
}

static k2a_str_t message_or_default(int err, k2a_str_t message)
{
    return message.len != 0 ? message : k2a_cstr(k2a_strerror(err != 0 ? err : K2A_EINTERNAL));
}

int k2a_anthropic_error_body(k2a_buf_t *out, int err, k2a_str_t message, int *status)
{
    k2a_anthropic_error_map_t m = k2a_anthropic_error_map(err);
    if (status != NULL)
        *status = m.status;
    return k2a_anthropic_error_json(out, m.type, message_or_default(err, message));
}

int k2a_anthropic_error_event(k2a_buf_t *out, int err, k2a_str_t message)
{
    k2a_anthropic_error_map_t m = k2a_anthropic_error_map(err);
    return k2a_anthropic_error_sse(out, m.type, message_or_default(err, message));
}
