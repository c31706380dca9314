/*
 * AWS EventStream (application/vnd.amazon.eventstream) codec: a resumable decoder that accepts
 * input in chunks of any size and emits complete frames, and an encoder. No I/O and no h2o here.
 * Frame layout (big-endian): total_length u32, headers_length u32, prelude_crc u32 (CRC-32 of bytes
 * 0..7), headers, payload, message_crc u32 (CRC-32 of everything before it). CRCs come from zlib.
 *
 * Zero-copy fast path: a frame that lies whole inside the chunk being fed is handed out as borrowed
 * pointers into that chunk. Only a frame split across feeds is assembled in the decoder's own buffer
 * (grown once to the frame's declared length, which is checked against the maximum before any byte
 * of it is buffered beyond the 12-byte prelude).
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
#define K2A_ES_MAX_HEADERS 32 /* per frame; more is K2A_EES_TOO_MANY_HEADERS */
#define K2A_ES_UUID_SIZE 16

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

/* One header. Decoded headers borrow name and value bytes from the frame; for the encoder the caller owns them. */
typedef struct st_k2a_es_header_t {
    const char *name; /* not NUL-terminated; 1..255 bytes */
    uint8_t name_len;
    k2a_es_header_type_t type;
    union {
        bool b;    /* BOOL_TRUE, BOOL_FALSE (redundant with type; set by the decoder) */
        int64_t i; /* BYTE, SHORT, INT, LONG (sign-extended), TIMESTAMP (ms since the epoch) */
        struct {
            const char *base; /* BYTES, STRING (0..65535 bytes); UUID (16 raw bytes) */
            uint32_t len;
        } s;
    } v;
} k2a_es_header_t;

typedef struct st_k2a_es_frame_t {
    uint32_t total_length;
    uint32_t headers_length;
    uint32_t prelude_crc; /* as read from the frame (already verified) */
    uint32_t message_crc; /* as read from the frame (already verified) */
    k2a_es_header_t headers[K2A_ES_MAX_HEADERS];
    size_t nheaders;
    const char *payload; /* borrowed: valid only during the on_frame call (or while the buffer given to decode_frame lives) */
    size_t payload_len;
    /* Set by the decoder in its pass over the headers: the value of the first STRING header named :message-type and of
     * the first named :event-type (as k2a_es_frame_header_str finds them), NULL with length 0 when there is none. */
    const char *message_type;
    const char *event_type;
    uint32_t message_type_len, event_type_len;
} k2a_es_frame_t;

/* Returns the first header named `name` (NUL-terminated) or NULL. */
const k2a_es_header_t *k2a_es_frame_header(const k2a_es_frame_t *frame, const char *name);
/* The string value of header `name` (borrowed, not NUL-terminated), or NULL (with *len = 0) when absent or not a string. */
const char *k2a_es_frame_header_str(const k2a_es_frame_t *frame, const char *name, size_t *len);

/* Called for every complete frame; return 0 to continue, non-zero to stop decoding (k2a_es_decoder_feed then returns that
 * value, and so does every later feed: a stop ends the stream). The frame and everything it points to is valid only
 * during the call. The callback must not feed the same decoder. */
typedef int (*k2a_es_on_frame_cb)(void *ctx, const k2a_es_frame_t *frame);

/* A streaming decoder, embedded by its user (_init/_dispose). Not thread-safe; one stream per decoder. */
typedef struct st_k2a_es_decoder_t {
    size_t max_frame;
    /* A frame that straddles feeds: its prelude gathers in `prelude`; once the prelude is valid, the frame is assembled in
     * `buf` (capacity `buf_cap`, grown once to total_length). `held` counts the frame's bytes held so far. */
    uint8_t prelude[K2A_ES_PRELUDE_SIZE];
    char *buf;
    size_t buf_cap;
    size_t held;
    uint32_t need;   /* total_length of the held frame once known (held >= 4), else 0 */
    uint32_t crc;    /* running CRC-32 of the held bytes (held >= 12) */
    int error;       /* sticky: a malformed frame or a callback stop ends the stream (no resynchronisation) */
    uint64_t frames; /* complete frames delivered to on_frame */
    uint64_t bytes;  /* sum of their total_length */
} k2a_es_decoder_t;

/* max_frame 0 means K2A_ES_DEFAULT_MAX_FRAME; a frame whose total_length exceeds max_frame is K2A_EES_OVERSIZE. */
void k2a_es_decoder_init(k2a_es_decoder_t *d, size_t max_frame);
/* Frees the assembly buffer. The decoder may be initialised again afterwards. */
void k2a_es_decoder_dispose(k2a_es_decoder_t *d);
/* Feeds a chunk of any length (0 is fine); calls on_frame for each frame completed by it, in order. Frames lying whole in
 * the chunk are not copied. Returns 0 when every byte was consumed (a trailing partial frame is held), a negative
 * K2A_EES_* code on a malformed frame (sticky: every later call returns it), K2A_ENOMEM, or the callback's non-zero
 * value (sticky too). Errors are detected as early as the bytes allow: total_length (short/oversize) as soon as 4 bytes
 * of a frame are known, prelude CRC and headers_length at 12, message CRC then headers once the frame is complete; so
 * the outcome does not depend on how the input was split. */
int k2a_es_decoder_feed(k2a_es_decoder_t *d, const void *data, size_t len, k2a_es_on_frame_cb on_frame, void *ctx);
/* True when bytes of an incomplete frame are held (at end of body this means the stream was truncated). */
bool k2a_es_decoder_has_partial(const k2a_es_decoder_t *d);
/* To call at end of body: returns the sticky error if any, K2A_EES_TRUNCATED when a partial frame is held, else 0. */
int k2a_es_decoder_finish(const k2a_es_decoder_t *d);
/* Decodes one frame at the start of buf without buffering (frame borrows from buf). Returns bytes consumed (> 0),
 * K2A_EINCOMPLETE when buf holds a valid-so-far prefix of a frame, or a negative K2A_EES_* code. max_frame 0 means the
 * default. */
intptr_t k2a_es_decode_frame(const void *buf, size_t len, size_t max_frame, k2a_es_frame_t *frame);

/* Encoder: appends one complete frame to out (nothing on failure). Headers are k2a_es_header_t values, any of the ten
 * types; BOOL headers take their value from `type`. Returns 0, K2A_EINVAL (empty name, unknown type, more than
 * K2A_ES_MAX_HEADERS headers, a BYTES/STRING value over 65535 bytes, a UUID whose len is not 16), K2A_ETOOBIG (frame
 * over 4 GiB or past out->max) or K2A_ENOMEM. */
int k2a_es_encode(k2a_buf_t *out, const k2a_es_header_t *headers, size_t nheaders, const void *payload, size_t payload_len);
/* The common Kiro event frame, headers in Kiro's order: :event-type, :content-type application/json, :message-type event. */
int k2a_es_encode_event(k2a_buf_t *out, const char *event_type, const void *payload, size_t payload_len);
/* An exception frame: :exception-type, :content-type application/json, :message-type exception. */
int k2a_es_encode_exception(k2a_buf_t *out, const char *exception_type, const void *payload, size_t payload_len);

/* Header constructors for the encoder. Names and values are NUL-terminated strings that are borrowed (not copied); a
 * name longer than 255 bytes yields name_len 0, which k2a_es_encode rejects. */
k2a_es_header_t k2a_es_header_string(const char *name, const char *value);
k2a_es_header_t k2a_es_header_bytes(const char *name, const void *value, size_t len);
k2a_es_header_t k2a_es_header_bool(const char *name, bool value);
k2a_es_header_t k2a_es_header_byte(const char *name, int8_t value);
k2a_es_header_t k2a_es_header_short(const char *name, int16_t value);
k2a_es_header_t k2a_es_header_int(const char *name, int32_t value);
k2a_es_header_t k2a_es_header_long(const char *name, int64_t value);
k2a_es_header_t k2a_es_header_timestamp(const char *name, int64_t ms_since_epoch);
k2a_es_header_t k2a_es_header_uuid(const char *name, const uint8_t uuid[K2A_ES_UUID_SIZE]);

#endif
