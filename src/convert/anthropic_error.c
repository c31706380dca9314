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
 *  - everything else is 500 api_error.
 */
#include <string.h>
#include "convert/anthropic_error.h"
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

static const struct {
    int err;
    int status;
    const char *type;
} table[] = {
    /* the client's request */
    {K2A_EINVAL, 400, T_INVALID},
    {K2A_EJSON_SYNTAX, 400, T_INVALID},
    {K2A_EJSON_TYPE, 400, T_INVALID},
    {K2A_EJSON_DEPTH, 400, T_INVALID},
    {K2A_EMISSING_FIELD, 400, T_INVALID},
    {K2A_EIMAGE_INVALID, 400, T_INVALID},
    {K2A_EIMAGE_URL, 400, T_INVALID},
    {K2A_EEMPTY_MESSAGES, 400, T_INVALID},
    {K2A_EEMPTY_CONTENT, 400, T_INVALID},
    {K2A_EBAD_PARAM, 400, T_INVALID},
    {K2A_EUNSUPPORTED, 400, T_INVALID},
    {K2A_EUPSTREAM_BAD_REQUEST, 400, T_INVALID},
    {K2A_EUPSTREAM_CONTENT_LENGTH, 400, T_INVALID},
    {K2A_EUPSTREAM_FILTERED, 400, T_INVALID}, /* Kiro's content filter blocked the request: as KRA answers it */
    {K2A_EMODEL_UNKNOWN, 404, T_NOT_FOUND},
    {K2A_EMODEL_INVALID, 400, T_INVALID},
    {K2A_EMODEL_UNAVAILABLE, 400, T_INVALID}, /* no account's catalog has it: the request itself must change */
    {K2A_ENOTFOUND, 404, T_NOT_FOUND},
    {K2A_ETOOBIG, 413, T_TOO_LARGE},
    {K2A_EPAYLOAD_TOOBIG, 400, T_INVALID}, /* the conversation, not the body: "prompt is too long" makes Claude Code compact */
    {K2A_ECLIENT_AUTH, 401, T_AUTH},
    /* accounts and limits */
    {K2A_EEXHAUSTED, 429, T_RATE},
    {K2A_ETHROTTLED, 429, T_RATE},
    {K2A_ENO_ACCOUNT, 503, T_OVERLOADED},
    {K2A_EACCOUNT_INVALID, 503, T_OVERLOADED},
    {K2A_EUPSTREAM_AUTH, 503, T_OVERLOADED},
    {K2A_EREFRESH, 503, T_OVERLOADED},
    {K2A_EBUSY, 503, T_OVERLOADED},
    {K2A_ENOFD, 503, T_OVERLOADED},              /* the gateway's own descriptors ran out: retry shortly */
    {K2A_ESTATE_UNWRITTEN, 503, T_OVERLOADED},   /* no refresh until the state file is written again */
    {K2A_ESTORE_UNAVAILABLE, 503, T_OVERLOADED}, /* a shared limit counter could not be asked (KIRO_REDIS_URL) */
    /* Kiro itself */
    {K2A_EUPSTREAM_SERVER, 529, T_OVERLOADED},
    {K2A_EUPSTREAM_CAPACITY, 529, T_OVERLOADED}, /* INSUFFICIENT_MODEL_CAPACITY: Anthropic's own "overloaded" */
    {K2A_EHTTP_STATUS, 502, T_API},
    {K2A_EUPSTREAM_EVENT, 502, T_API},
    {K2A_EUPSTREAM_EXCEPTION, 502, T_API},
    {K2A_EUPSTREAM_TRUNCATED, 502, T_API},
    {K2A_EUPSTREAM_TOOL_TOOBIG, 502, T_API},
    {K2A_EUPSTREAM_TOOBIG, 502, T_API},
    {K2A_EUPSTREAM_NOT_EVENTSTREAM, 502, T_API},
    /* the way to Kiro */
    {K2A_EDNS, 502, T_API},
    {K2A_ECONNECT_REFUSED, 502, T_API},
    {K2A_ECONNECT, 502, T_API},
    {K2A_ETLS_VERIFY, 502, T_API},
    {K2A_ETLS_HANDSHAKE, 502, T_API},
    {K2A_ETLS, 502, T_API},
    {K2A_ERESET_BEFORE_RESPONSE, 502, T_API},
    {K2A_ERESET_MID_BODY, 502, T_API},
    {K2A_EHTTP_PARSE, 502, T_API},
    {K2A_EHEADER_TOOBIG, 502, T_API},
    {K2A_EPROXY, 502, T_API},
    {K2A_ECLOSED, 502, T_API},
    {K2A_EES_SHORT_FRAME, 502, T_API},
    {K2A_EES_OVERSIZE, 502, T_API},
    {K2A_EES_HEADER_OVERRUN, 502, T_API},
    {K2A_EES_PRELUDE_CRC, 502, T_API},
    {K2A_EES_MESSAGE_CRC, 502, T_API},
    {K2A_EES_HEADER_TYPE, 502, T_API},
    {K2A_EES_HEADER_NAME, 502, T_API},
    {K2A_EES_TRUNCATED, 502, T_API},
    {K2A_EDNS_TIMEOUT, 504, T_API},
    {K2A_ECONNECT_TIMEOUT, 504, T_API},
    {K2A_EFIRST_BYTE_TIMEOUT, 504, T_API},
    {K2A_EIDLE_TIMEOUT, 504, T_API},
    {K2A_ETIMEDOUT, 504, T_API},
    /* ours */
    {K2A_ENOTIMPL, 501, T_API},
};

k2a_anthropic_error_map_t k2a_anthropic_error_map(int err)
{
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); ++i)
        if (table[i].err == err)
            return (k2a_anthropic_error_map_t){table[i].status, table[i].type};
    return (k2a_anthropic_error_map_t){500, T_API};
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
