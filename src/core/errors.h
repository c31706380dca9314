/*
 * The one error table of kiro2api (libuv style): every fallible function returns 0 (or a byte count)
 * on success and a negative K2A_E* code on failure. The X-macro below makes both the enum and
 * k2a_strerror()/k2a_errname(), so a code can never exist without its message. Codes are grouped by
 * module; add new ones at the end of their group. Values are not stable across versions: never
 * persist them, persist k2a_errname() instead.
 */
#ifndef K2A_CORE_ERRORS_H
#define K2A_CORE_ERRORS_H

#define K2A_ERRNO_MAP(XX)                                                                                                          \
    /* core */                                                                                                                     \
    XX(NOMEM, "out of memory")                                                                                                     \
    XX(INVAL, "invalid argument")                                                                                                  \
    XX(INCOMPLETE, "more input needed")                                                                                            \
    XX(TOOBIG, "input exceeds its configured limit")                                                                               \
    XX(CANCELED, "operation canceled")                                                                                             \
    XX(TIMEDOUT, "operation timed out")                                                                                            \
    XX(NOTFOUND, "not found")                                                                                                      \
    XX(IO, "input/output error")                                                                                                   \
    XX(CONFIG, "invalid configuration")                                                                                            \
    XX(UNSUPPORTED, "not supported")                                                                                               \
    XX(BUSY, "too many concurrent operations")                                                                                     \
    XX(CLOSED, "connection closed")                                                                                                \
    XX(INTERNAL, "internal error")                                                                                                 \
    XX(NOTIMPL, "not implemented")                                                                                                 \
    /* eventstream */                                                                                                              \
    XX(ES_SHORT_FRAME, "eventstream: frame shorter than its minimum")                                                              \
    XX(ES_OVERSIZE, "eventstream: frame exceeds the maximum length")                                                               \
    XX(ES_HEADER_OVERRUN, "eventstream: header block overruns the frame")                                                          \
    XX(ES_PRELUDE_CRC, "eventstream: prelude CRC mismatch")                                                                        \
    XX(ES_MESSAGE_CRC, "eventstream: message CRC mismatch")                                                                        \
    XX(ES_HEADER_TYPE, "eventstream: unknown header value type")                                                                   \
    XX(ES_HEADER_NAME, "eventstream: empty header name")                                                                           \
    XX(ES_TRUNCATED, "eventstream: body ended inside a frame")                                                                     \
    XX(ES_TOO_MANY_HEADERS, "eventstream: too many headers in a frame")                                                            \
    /* upstream */                                                                                                                 \
    XX(DNS, "upstream: name resolution failed")                                                                                    \
    XX(DNS_TIMEOUT, "upstream: name resolution timed out")                                                                         \
    XX(CONNECT_REFUSED, "upstream: connection refused")                                                                            \
    XX(CONNECT_TIMEOUT, "upstream: connect timed out")                                                                             \
    XX(CONNECT, "upstream: connect failed")                                                                                        \
    XX(TLS_VERIFY, "upstream: TLS certificate verification failed")                                                                \
    XX(TLS_HANDSHAKE, "upstream: TLS handshake failed")                                                                            \
    XX(TLS, "upstream: TLS error")                                                                                                 \
    XX(RESET_BEFORE_RESPONSE, "upstream: connection reset before the response")                                                    \
    XX(RESET_MID_BODY, "upstream: connection reset in the middle of the body")                                                     \
    XX(FIRST_BYTE_TIMEOUT, "upstream: no response byte before the first-byte timeout")                                             \
    XX(IDLE_TIMEOUT, "upstream: no body byte before the idle timeout")                                                             \
    XX(HTTP_PARSE, "upstream: malformed HTTP response")                                                                            \
    XX(HEADER_TOOBIG, "upstream: response header too large")                                                                       \
    XX(PROXY, "upstream: proxy CONNECT failed")                                                                                    \
    XX(HTTP_STATUS, "upstream: unexpected HTTP status")                                                                            \
    XX(BAD_URL, "upstream: malformed URL")                                                                                         \
    /* convert */                                                                                                                  \
    XX(JSON_SYNTAX, "request: malformed JSON")                                                                                     \
    XX(JSON_TYPE, "request: a field has the wrong type")                                                                           \
    XX(JSON_DEPTH, "request: JSON nested too deeply")                                                                              \
    XX(MISSING_FIELD, "request: a required field is missing")                                                                      \
    XX(MODEL_UNKNOWN, "request: unknown model")                                                                                    \
    XX(IMAGE_INVALID, "request: invalid image")                                                                                    \
    XX(IMAGE_URL, "request: image URLs are not supported, send base64 data")                                                       \
    XX(PAYLOAD_TOOBIG, "request: conversation too large for Kiro even after trimming history")                                     \
    XX(EMPTY_MESSAGES, "request: messages must not be empty")                                                                      \
    XX(EMPTY_CONTENT, "request: message content must not be empty")                                                                \
    XX(BAD_PARAM, "request: unsupported parameter value")                                                                          \
    XX(CLIENT_AUTH, "request: missing or invalid API key")                                                                         \
    XX(UPSTREAM_EVENT, "upstream: malformed event payload")                                                                        \
    XX(UPSTREAM_EXCEPTION, "upstream: exception in the response stream")                                                           \
    XX(UPSTREAM_TRUNCATED, "upstream: response stream ended early")                                                                \
    XX(UPSTREAM_TOOL_TOOBIG, "upstream: tool input exceeds its configured limit")                                                  \
    XX(UPSTREAM_TOOBIG, "upstream: the answer exceeds the non-streaming size limit (use stream: true)")                            \
    XX(UPSTREAM_NOT_EVENTSTREAM, "upstream: the answer is not an EventStream")                                                     \
    XX(MODEL_INVALID, "request: invalid model name")                                                                               \
    XX(UPSTREAM_FILTERED, "upstream: the request was blocked by upstream content filtering")                                       \
    /* pool */                                                                                                                     \
    XX(NO_ACCOUNT, "pool: no usable account")                                                                                      \
    XX(ACCOUNT_INVALID, "pool: account credentials rejected")                                                                      \
    XX(REFRESH, "pool: token refresh failed")                                                                                      \
    XX(EXHAUSTED, "pool: account quota exhausted")                                                                                 \
    XX(THROTTLED, "pool: upstream rate limit")                                                                                     \
    XX(UPSTREAM_AUTH, "pool: upstream rejected the access token")                                                                  \
    XX(UPSTREAM_BAD_REQUEST, "upstream: request rejected as improperly formed")                                                    \
    XX(UPSTREAM_CONTENT_LENGTH, "upstream: input exceeds the model's context")                                                     \
    XX(UPSTREAM_SERVER, "upstream: server error")                                                                                  \
    XX(UPSTREAM_CAPACITY, "upstream: the model is at capacity")                                                                    \
    XX(MODEL_UNAVAILABLE, "pool: no account offers the model")                                                                     \
    XX(NOFD, "local: out of file descriptors")                                                                                     \
    XX(STATE_UNWRITTEN, "pool: a rotated refresh token is not written to the state file yet")                                      \
    XX(PACED, "pool: every suitable account is at its request pace")                                                               \
    /* http */                                                                                                                     \
    XX(METHOD, "request: method not allowed")                                                                                      \
    XX(REQ_HEADERS_TOOBIG, "request: headers exceed their bound (count or bytes)")                                                 \
    XX(FRAMING, "request: conflicting message framing")                                                                            \
    XX(SHUTTING_DOWN, "the gateway is shutting down")                                                                              \
    /* client keys */                                                                                                              \
    XX(KEY_LIMIT, "client key: over one of its limits")                                                                            \
    XX(KEY_FORBIDDEN, "client key: the model is not allowed for this key")                                                         \
    XX(STORE_UNAVAILABLE, "pool: shared store unavailable")

enum {
#define K2A__XX(name, msg) K2A__EIDX_##name,
    K2A_ERRNO_MAP(K2A__XX)
#undef K2A__XX
        K2A__EIDX_MAX
};

enum {
    K2A_OK = 0,
#define K2A__XX(name, msg) K2A_E##name = -(K2A__EIDX_##name + 1),
    K2A_ERRNO_MAP(K2A__XX)
#undef K2A__XX
};

/* Marks a function whose K2A_E* result must be handled: init functions, whose failure leaves nothing usable. */
#define K2A_MUST_USE __attribute__((warn_unused_result))

/* Human-readable message for a K2A_E* code; never NULL (unknown codes give "unknown error"). */
const char *k2a_strerror(int err);
/* Symbolic name without the K2A_E prefix, e.g. "ES_OVERSIZE"; never NULL. */
const char *k2a_errname(int err);

#endif
