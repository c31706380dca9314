/*
 * The OpenAI error table (see openai_error.h). One static array indexed by the K2A_E* code gives
 * status/type/code; every code has a row (a unit test checks it). Types and codes follow what
 * api.openai.com sends, so that the official SDKs raise the right exception class (they key on the
 * status) and show a meaningful code: client mistakes 400 invalid_request_error (a prompt too long for
 * Kiro is 400 context_length_exceeded, as OpenAI says it), 401 invalid_api_key, 404 model_not_found,
 * 413 request_too_large, 429 rate_limit_exceeded / insufficient_quota; what is left after failover over
 * every account (no account, refresh failures, Kiro refusing the token: the client's key was fine) is
 * 503; Kiro failures are 502 and timeouts towards it 504 (the SDKs retry 5xx); the rest 500 server_error. The dialect
 * (openai_dialect.c) carries the rows and k2a_dialect_error() is the lookup.
 */
#include <stdbool.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_error.h"

#define ROW(name, st, ty, co) [K2A__EIDX_##name] = {(st), (ty), (co)}
#define BAD(name, co) ROW(name, 400, "invalid_request_error", co)
#define UPSTREAM(name, st, co) ROW(name, st, "server_error", co)

const k2a_dialect_error_t k2a_openai_error_rows[K2A__EIDX_MAX] = {
    /* core */
    ROW(NOMEM, 500, "server_error", "out_of_memory"),
    ROW(INCOMPLETE, 500, "server_error", "internal_error"),
    ROW(IO, 500, "server_error", "internal_error"),
    ROW(CONFIG, 500, "server_error", "internal_error"),
    ROW(INTERNAL, 500, "server_error", "internal_error"),
    BAD(INVAL, "invalid_value"),
    ROW(TOOBIG, 413, "invalid_request_error", "request_too_large"),
    ROW(CANCELED, 499, "invalid_request_error", "request_canceled"),
    ROW(TIMEDOUT, 504, "server_error", "timeout"),
    ROW(NOTFOUND, 404, "invalid_request_error", "not_found"),
    BAD(UNSUPPORTED, "unsupported_value"),
    ROW(BUSY, 503, "server_error", "server_overloaded"),
    ROW(NOFD, 503, "server_error", "server_overloaded"),
    ROW(STATE_UNWRITTEN, 503, "server_error", "server_overloaded"),
    ROW(STORE_UNAVAILABLE, 503, "server_error", "server_overloaded"),
    ROW(NOTIMPL, 501, "server_error", "not_implemented"),
    UPSTREAM(CLOSED, 502, "upstream_error"),
    /* eventstream: a broken upstream response */
    UPSTREAM(ES_SHORT_FRAME, 502, "upstream_error"),
    UPSTREAM(ES_OVERSIZE, 502, "upstream_error"),
    UPSTREAM(ES_HEADER_OVERRUN, 502, "upstream_error"),
    UPSTREAM(ES_PRELUDE_CRC, 502, "upstream_error"),
    UPSTREAM(ES_MESSAGE_CRC, 502, "upstream_error"),
    UPSTREAM(ES_HEADER_TYPE, 502, "upstream_error"),
    UPSTREAM(ES_HEADER_NAME, 502, "upstream_error"),
    UPSTREAM(ES_TRUNCATED, 502, "upstream_error"),
    UPSTREAM(ES_TOO_MANY_HEADERS, 502, "upstream_error"),
    /* upstream transport */
    UPSTREAM(DNS, 502, "upstream_unreachable"),
    UPSTREAM(DNS_TIMEOUT, 504, "upstream_timeout"),
    UPSTREAM(CONNECT_REFUSED, 502, "upstream_unreachable"),
    UPSTREAM(CONNECT_TIMEOUT, 504, "upstream_timeout"),
    UPSTREAM(CONNECT, 502, "upstream_unreachable"),
    UPSTREAM(TLS_VERIFY, 502, "upstream_unreachable"),
    UPSTREAM(TLS_HANDSHAKE, 502, "upstream_unreachable"),
    UPSTREAM(TLS, 502, "upstream_error"),
    UPSTREAM(RESET_BEFORE_RESPONSE, 502, "upstream_error"),
    UPSTREAM(RESET_MID_BODY, 502, "upstream_error"),
    UPSTREAM(FIRST_BYTE_TIMEOUT, 504, "upstream_timeout"),
    UPSTREAM(IDLE_TIMEOUT, 504, "upstream_timeout"),
    UPSTREAM(HTTP_PARSE, 502, "upstream_error"),
    UPSTREAM(HEADER_TOOBIG, 502, "upstream_error"),
    UPSTREAM(PROXY, 502, "upstream_unreachable"),
    UPSTREAM(HTTP_STATUS, 502, "upstream_error"),
    ROW(BAD_URL, 500, "server_error", "configuration_error"),
    /* convert: the client's request */
    BAD(JSON_SYNTAX, "invalid_json"),
    BAD(JSON_TYPE, "invalid_type"),
    BAD(JSON_DEPTH, "invalid_json"),
    BAD(MISSING_FIELD, "missing_required_parameter"),
    ROW(MODEL_UNKNOWN, 404, "invalid_request_error", "model_not_found"),
    BAD(MODEL_INVALID, "invalid_value"),
    ROW(MODEL_UNAVAILABLE, 400, "invalid_request_error", "model_not_found"),
    BAD(IMAGE_INVALID, "invalid_image"),
    BAD(IMAGE_URL, "invalid_image_url"),
    BAD(PAYLOAD_TOOBIG, "context_length_exceeded"),
    BAD(EMPTY_MESSAGES, "missing_required_parameter"),
    BAD(EMPTY_CONTENT, "invalid_value"),
    BAD(BAD_PARAM, "unsupported_value"),
    UPSTREAM(UPSTREAM_EVENT, 502, "upstream_error"),
    UPSTREAM(UPSTREAM_EXCEPTION, 502, "upstream_error"),
    UPSTREAM(UPSTREAM_TRUNCATED, 502, "upstream_error"),
    UPSTREAM(UPSTREAM_TOOL_TOOBIG, 502, "upstream_error"),
    UPSTREAM(UPSTREAM_TOOBIG, 502, "upstream_response_too_large"),
    UPSTREAM(UPSTREAM_NOT_EVENTSTREAM, 502, "upstream_error"),
    ROW(UPSTREAM_FILTERED, 400, "invalid_request_error", "content_filter"),
    ROW(CLIENT_AUTH, 401, "invalid_request_error", "invalid_api_key"),
    /* pool: failures left after failover over every account */
    ROW(NO_ACCOUNT, 503, "server_error", "no_available_account"),
    ROW(ACCOUNT_INVALID, 503, "server_error", "no_available_account"),
    ROW(REFRESH, 503, "server_error", "no_available_account"),
    ROW(EXHAUSTED, 429, "insufficient_quota", "insufficient_quota"),
    ROW(THROTTLED, 429, "requests", "rate_limit_exceeded"),
    ROW(PACED, 429, "requests", "rate_limit_exceeded"),
    ROW(UPSTREAM_AUTH, 503, "server_error", "no_available_account"),
    BAD(UPSTREAM_BAD_REQUEST, "upstream_rejected_request"),
    BAD(UPSTREAM_CONTENT_LENGTH, "context_length_exceeded"),
    UPSTREAM(UPSTREAM_SERVER, 502, "upstream_error"),
    ROW(UPSTREAM_CAPACITY, 503, "server_error", "model_overloaded"),
    /* the HTTP layer */
    ROW(METHOD, 405, "invalid_request_error", "method_not_allowed"),
    ROW(REQ_HEADERS_TOOBIG, 431, "invalid_request_error", "invalid_request"),
    ROW(FRAMING, 400, "invalid_request_error", "invalid_request"),
    ROW(SHUTTING_DOWN, 503, "server_error", "service_unavailable"),
    /* client keys (http/keys_gate.c): a limit answers 429 with Retry-After */
    ROW(KEY_LIMIT, 429, "requests", "rate_limit_exceeded"),
    ROW(KEY_FORBIDDEN, 403, "invalid_request_error", "model_not_found"),
};

static const k2a_openai_error_info_t internal_error = {500, "server_error", "internal_error"};

const k2a_openai_error_info_t *k2a_openai_error_info(int err)
{
    if (err < 0 && -err - 1 < K2A__EIDX_MAX && k2a_openai_error_rows[-err - 1].status != 0)
        return &k2a_openai_error_rows[-err - 1];
    return &internal_error;
}

/* The codes whose messages the request decoders write as "<json path>: <text>". */
static bool is_request_error(int err)
{
    switch (err) {
    case K2A_EJSON_SYNTAX:
    case K2A_EJSON_TYPE:
    case K2A_EJSON_DEPTH:
    case K2A_EMISSING_FIELD:
    case K2A_EIMAGE_INVALID:
    case K2A_EIMAGE_URL:
    case K2A_EEMPTY_MESSAGES:
    case K2A_EEMPTY_CONTENT:
    case K2A_EBAD_PARAM:
    case K2A_ETOOBIG:
        return true;
    default:
        return false;
    }
}

/* The length of the JSON path that starts a decoder message ("messages[2].content: ..."), or 0. */
static size_t path_prefix(const char *m, size_t len)
{
    size_t i = 0;
    while (i < len && ((m[i] >= 'a' && m[i] <= 'z') || (m[i] >= 'A' && m[i] <= 'Z') || (m[i] >= '0' && m[i] <= '9') ||
                       m[i] == '_' || m[i] == '.' || m[i] == '[' || m[i] == ']' || m[i] == '$' || m[i] == '-'))
        ++i;
    return i != 0 && i + 1 < len && m[i] == ':' && m[i + 1] == ' ' ? i : 0;
}

static int append_error_object(k2a_buf_t *out, const k2a_openai_error_info_t *info, int err, const char *message, size_t len,
                               const char *param, bool derive_param)
{
    int r;
    if (message == NULL) {
        message = k2a_strerror(err);
        len = strlen(message);
        derive_param = false;
    }
    if ((r = k2a_buf_appendstr(out, "{\"error\":{\"message\":\"")) != 0 ||
        (r = k2a_buf_append_json_escaped(out, message, len)) != 0 ||
        (r = k2a_buf_appendf(out, "\",\"type\":\"%s\",\"param\":", info->type)) != 0)
        return r;
    size_t plen = param != NULL ? strlen(param) : 0;
    if (param == NULL && derive_param && is_request_error(err) && (plen = path_prefix(message, len)) != 0)
        param = message; /* a request error from a decoder: its message starts with the JSON path */
    if (param != NULL) {
        if ((r = k2a_buf_appendstr(out, "\"")) != 0 || (r = k2a_buf_append_json_escaped(out, param, plen)) != 0 ||
            (r = k2a_buf_appendstr(out, "\"")) != 0)
            return r;
    } else if ((r = k2a_buf_appendstr(out, "null")) != 0) {
        return r;
    }
    if (info->code != NULL)
        return k2a_buf_appendf(out, ",\"code\":\"%s\"}}", info->code);
    return k2a_buf_appendstr(out, ",\"code\":null}}");
}

int k2a_openai_error_object(k2a_buf_t *out, const k2a_openai_error_info_t *info, int err, const char *message, size_t len,
                            const char *param)
{
    return append_error_object(out, info, err, message, len, param, true);
}

int k2a_openai_error_body(k2a_buf_t *out, int err, const char *message, size_t len, const char *param)
{
    const k2a_openai_error_info_t *info = k2a_openai_error_info(err);
    int r = append_error_object(out, info, err, message, len, param, true);
    return r != 0 ? r : info->status;
}

int k2a_openai_error_chunk(k2a_buf_t *out, int err, const char *message, size_t len)
{
    int r;
    if ((r = k2a_buf_appendstr(out, "data: ")) != 0 ||
        (r = append_error_object(out, k2a_openai_error_info(err), err, message, len, NULL, false)) != 0)
        return r;
    return k2a_buf_appendstr(out, "\n\n");
}
