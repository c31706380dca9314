/*
 * AWS EventStream (application/vnd.amazon.eventstream) codec: a resumable decoder that accepts
 * input in chunks of any size and emits complete frames, and an encoder. No I/O and no h2o here.
 * Frame layout (big-endian): total_length u32, headers_length u32, prelude_crc u32 (CRC-32 of bytes
 * 0..7), headers, payload, message_crc u32 (CRC-32 of everything before it). CRCs come from zlib.
 *
 * Zero-copy fast path: a frame that lies whole inside the chunk being fed is handed out as borrowed
 * pointers into that chunk. Only a frame split across feeds is assembled in the decoder's own buffer
 * (grown once to the frame's declared length, which is checked against the maximum before any byte
 * of it is buffered).
 */
#ifndef K2A_EVENTSTREAM_EVENTSTREAM_H
#define K2A_EVENTSTREAM_EVENTSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/buf.h"

#define K2A_ES_PRELUDE_SIZE 12
#define K2A_ES_MIN_FRAME 16
#define K2A_ES_DEFAULT_MAX_FRAME (16 * 1024 * 1024)
#define K2A_ES_MAX_HEADERS 32 /* per frame; more is K2A_EES_HEADER_OVERRUN */

typedef enum en_k2a_es_header_type_t {
    K2A_ES_BOOL_TRUE = 0,
    K2A_ES_BOOL_FALSE = 1,
    K2A_ES_BYTE = 2,
    K2A_ES_SHORT = 3,
    K2A_ES_INT = 4,
    K2A_ES_LONG = 5,
    K2A_ES_BYTES = 6,
    K2A_ES_STRING = 7,
    K2A_ES_TIMESTAMP = 8,
    K2A_ES_UUID = 9,
} k2a_es_header_type_t;

typedef struct st_k2a_es_header_t {
    const char *name; /* borrowed, not NUL-terminated */
    uint8_t name_len;
    k2a_es_header_type_t type;
    union {
        bool b;
        int64_t i; /* BYTE, SHORT, INT, LONG, TIMESTAMP (ms since the epoch) */
        struct {
            const char *base; /* borrowed: BYTES, STRING; UUID (16 bytes) */
            uint16_t len;
        } s;
    } v;
} k2a_es_header_t;

typedef struct st_k2a_es_frame_t {
    uint32_t total_length;
    uint32_t headers_length;
    k2a_es_header_t headers[K2A_ES_MAX_HEADERS];
    size_t nheaders;
    const char *payload; /* borrowed: valid until the next call into the decoder */
    size_t payload_len;
} k2a_es_frame_t;

/* Returns the first header named `name` (NUL-terminated) or NULL. */
const k2a_es_header_t *k2a_es_frame_header(const k2a_es_frame_t *frame, const char *name);
/* The string value of header `name`, or NULL (with *len = 0) when absent or not a string. */
const char *k2a_es_frame_header_str(const k2a_es_frame_t *frame, const char *name, size_t *len);

/* Called for every complete frame; return 0 to continue, non-zero to stop decoding (k2a_es_decoder_feed then returns that
 * value). The frame and everything it points to is valid only during the call. */
typedef int (*k2a_es_on_frame_cb)(void *ctx, const k2a_es_frame_t *frame);

typedef struct st_k2a_es_decoder_t {
    size_t max_frame;
    k2a_buf_t partial; /* bytes of a frame that straddles feeds */
    uint32_t need;     /* total_length of the partial frame once known, else 0 */
    int error;         /* sticky: once a frame is malformed the stream is not resynchronised */
    uint64_t frames;
    uint64_t bytes;
} k2a_es_decoder_t;

/* max_frame 0 means K2A_ES_DEFAULT_MAX_FRAME. */
void k2a_es_decoder_init(k2a_es_decoder_t *d, size_t max_frame);
void k2a_es_decoder_dispose(k2a_es_decoder_t *d);
/* Feeds a chunk; calls on_frame for each frame completed by it. Returns 0 when every byte was consumed (a trailing partial
 * frame is buffered), a negative K2A_EES_* code on a malformed frame (sticky), or the callback's non-zero value. */
int k2a_es_decoder_feed(k2a_es_decoder_t *d, const void *data, size_t len, k2a_es_on_frame_cb on_frame, void *ctx);
/* True when bytes of an incomplete frame are buffered (at end of body this means the stream was truncated). */
bool k2a_es_decoder_has_partial(const k2a_es_decoder_t *d);
/* Decodes one frame at the start of buf without buffering. Returns bytes consumed (> 0), K2A_EINCOMPLETE when buf holds
 * less than a frame, or a negative K2A_EES_* code. */
intptr_t k2a_es_decode_frame(const void *buf, size_t len, size_t max_frame, k2a_es_frame_t *frame);

/* Encoder: appends one complete frame to out. Headers are given as k2a_es_header_t values (all ten types supported). */
int k2a_es_encode(k2a_buf_t *out, const k2a_es_header_t *headers, size_t nheaders, const void *payload, size_t payload_len);
/* Convenience for the common Kiro event frame: :event-type, :content-type application/json, :message-type event. */
int k2a_es_encode_event(k2a_buf_t *out, const char *event_type, const void *payload, size_t payload_len);
/* An exception frame: :exception-type, :content-type application/json, :message-type exception. */
int k2a_es_encode_exception(k2a_buf_t *out, const char *exception_type, const void *payload, size_t payload_len);
/* Header constructors for the encoder. */
k2a_es_header_t k2a_es_header_string(const char *name, const char *value);

#endif
