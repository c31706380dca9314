/*
 * AWS EventStream codec (see eventstream.h). The decoder validates a frame in three stages that depend
 * only on how many of its bytes are known (4: total_length; 12: prelude CRC and headers_length; all:
 * message CRC, then the header block), so the verdict is the same however the input is split. Frames
 * lying whole in a fed chunk are parsed in place; a straddling frame is copied into one buffer sized
 * to its validated total_length, and its CRC is computed as the bytes arrive (no second pass).
 * CRC-32 comes from zlib (crc32_z).
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t be16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static inline uint32_t crc(uint32_t c, const void *p, size_t n)
{
    return (uint32_t)crc32_z(c, p, n);
}

static size_t effective_max(size_t max_frame)
{
    return max_frame != 0 ? max_frame : K2A_ES_DEFAULT_MAX_FRAME;
}

/* Stage 1 (4 bytes known). */
static int check_total(uint32_t total, size_t max_frame)
{
    if (total < K2A_ES_MIN_FRAME)
        return K2A_EES_SHORT_FRAME;
    if (total > max_frame)
        return K2A_EES_OVERSIZE;
    return 0;
}

/* Stage 2 (12 bytes known; stage 1 passed). Sets *crc8 to the CRC of bytes [0,8). */
static int check_prelude(const uint8_t *p, uint32_t *crc8)
{
    uint32_t c = crc(0, p, 8);
    if (c != be32(p + 8))
        return K2A_EES_PRELUDE_CRC;
    if (be32(p + 4) > be32(p) - K2A_ES_MIN_FRAME)
        return K2A_EES_HEADER_OVERRUN;
    *crc8 = c;
    return 0;
}

/* Fixed value sizes per type; -1 for the length-prefixed ones (BYTES, STRING). */
static const int8_t value_size[10] = {0, 0, 1, 2, 4, 8, -1, -1, 8, K2A_ES_UUID_SIZE};

/* One pass over the header block: the headers, and the frame's :message-type and :event-type (the first STRING header
 * of each name), found as the STRING headers are read. */
static int parse_headers(const uint8_t *p, uint32_t hlen, k2a_es_frame_t *f)
{
    const uint8_t *end = p + hlen;
    size_t n = 0;
    f->message_type = f->event_type = NULL;
    f->message_type_len = f->event_type_len = 0;
    while (p != end) {
        if (n == K2A_ES_MAX_HEADERS)
            return K2A_EES_TOO_MANY_HEADERS;
        k2a_es_header_t *h = &f->headers[n++];
        size_t name_len = *p++;
        if (name_len == 0)
            return K2A_EES_HEADER_NAME;
        if ((size_t)(end - p) < name_len + 1)
            return K2A_EES_HEADER_OVERRUN;
        const uint8_t *name = p;
        h->name = (const char *)name;
        h->name_len = (uint8_t)name_len;
        p += name_len;
        uint8_t type = *p++;
        if (type > K2A_ES_UUID)
            return K2A_EES_HEADER_TYPE;
        h->type = (k2a_es_header_type_t)type;
        size_t vlen;
        if (value_size[type] >= 0) {
            vlen = (size_t)value_size[type];
            if ((size_t)(end - p) < vlen)
                return K2A_EES_HEADER_OVERRUN;
        } else {
            if (end - p < 2)
                return K2A_EES_HEADER_OVERRUN;
            vlen = be16(p);
            p += 2;
            if ((size_t)(end - p) < vlen)
                return K2A_EES_HEADER_OVERRUN;
        }
        switch (type) {
        case K2A_ES_BOOL_TRUE:
        case K2A_ES_BOOL_FALSE:
            h->v.b = type == K2A_ES_BOOL_TRUE;
            break;
        case K2A_ES_BYTE:
            h->v.i = (int8_t)p[0];
            break;
        case K2A_ES_SHORT:
            h->v.i = (int16_t)be16(p);
            break;
        case K2A_ES_INT:
            h->v.i = (int32_t)be32(p);
            break;
        case K2A_ES_LONG:
        case K2A_ES_TIMESTAMP:
            h->v.i = (int64_t)be64(p);
            break;
        case K2A_ES_STRING:
            h->v.s.base = (const char *)p;
            h->v.s.len = (uint32_t)vlen;
            if (name[0] == ':') {
                if (name_len == sizeof(":message-type") - 1 && f->message_type == NULL &&
                    memcmp(name, ":message-type", sizeof(":message-type") - 1) == 0) {
                    f->message_type = (const char *)p;
                    f->message_type_len = (uint32_t)vlen;
                } else if (name_len == sizeof(":event-type") - 1 && f->event_type == NULL &&
                           memcmp(name, ":event-type", sizeof(":event-type") - 1) == 0) {
                    f->event_type = (const char *)p;
                    f->event_type_len = (uint32_t)vlen;
                }
            }
            break;
        default: /* BYTES, UUID */
            h->v.s.base = (const char *)p;
            h->v.s.len = (uint32_t)vlen;
            break;
        }
        p += vlen;
    }
    f->nheaders = n;
    return 0;
}

/* Stage 3 (whole frame known; stages 1 and 2 passed). msg_crc is the CRC of bytes [0,total-4). */
static int parse_body(const uint8_t *p, uint32_t total, uint32_t msg_crc, k2a_es_frame_t *f)
{
    uint32_t hlen = be32(p + 4);
    if (msg_crc != be32(p + total - 4))
        return K2A_EES_MESSAGE_CRC;
    f->total_length = total;
    f->headers_length = hlen;
    f->prelude_crc = be32(p + 8);
    f->message_crc = msg_crc;
    f->payload = (const char *)p + K2A_ES_PRELUDE_SIZE + hlen;
    f->payload_len = total - K2A_ES_MIN_FRAME - hlen;
    return parse_headers(p + K2A_ES_PRELUDE_SIZE, hlen, f);
}

intptr_t k2a_es_decode_frame(const void *buf, size_t len, size_t max_frame, k2a_es_frame_t *frame)
{
    const uint8_t *p = buf;
    uint32_t total, crc8;
    int r;

    if (len < 4)
        return K2A_EINCOMPLETE;
    total = be32(p);
    if ((r = check_total(total, effective_max(max_frame))) != 0)
        return r;
    if (len < K2A_ES_PRELUDE_SIZE)
        return K2A_EINCOMPLETE;
    if ((r = check_prelude(p, &crc8)) != 0)
        return r;
    if (len < total)
        return K2A_EINCOMPLETE;
    if ((r = parse_body(p, total, crc(crc8, p + 8, total - 12), frame)) != 0)
        return r;
    return (intptr_t)total;
}

/* Frame lookups */

const k2a_es_header_t *k2a_es_frame_header(const k2a_es_frame_t *frame, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i != frame->nheaders; ++i) {
        const k2a_es_header_t *h = &frame->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0)
            return h;
    }
    return NULL;
}

const char *k2a_es_frame_header_str(const k2a_es_frame_t *frame, const char *name, size_t *len)
{
    const k2a_es_header_t *h = k2a_es_frame_header(frame, name);
    if (h == NULL || h->type != K2A_ES_STRING) {
        *len = 0;
        return NULL;
    }
    *len = h->v.s.len;
    return h->v.s.base;
}

/* Streaming decoder */

void k2a_es_decoder_init(k2a_es_decoder_t *d, size_t max_frame)
{
    memset(d, 0, sizeof(*d));
    d->max_frame = effective_max(max_frame);
}

void k2a_es_decoder_dispose(k2a_es_decoder_t *d)
{
    free(d->buf);
    d->buf = NULL;
    d->buf_cap = 0;
    d->held = 0;
    d->need = 0;
}

bool k2a_es_decoder_has_partial(const k2a_es_decoder_t *d)
{
    return d->held != 0;
}

int k2a_es_decoder_finish(const k2a_es_decoder_t *d)
{
    if (d->error != 0)
        return d->error;
    return d->held != 0 ? K2A_EES_TRUNCATED : 0;
}

static int fail(k2a_es_decoder_t *d, int err)
{
    d->error = err;
    return err;
}

static int emit(k2a_es_decoder_t *d, const k2a_es_frame_t *f, k2a_es_on_frame_cb on_frame, void *ctx)
{
    ++d->frames;
    d->bytes += f->total_length;
    int r = on_frame(ctx, f);
    return r != 0 ? fail(d, r) : 0;
}

/* Moves input into the held frame. Consumes until the frame completes (then emits it) or the input runs out. */
static int feed_held(k2a_es_decoder_t *d, const uint8_t **pp, const uint8_t *end, k2a_es_on_frame_cb on_frame, void *ctx)
{
    const uint8_t *p = *pp;
    int r;

    if (d->held < K2A_ES_PRELUDE_SIZE) {
        size_t n = K2A_ES_PRELUDE_SIZE - d->held;
        if (n > (size_t)(end - p))
            n = end - p;
        memcpy(d->prelude + d->held, p, n);
        d->held += n;
        p += n;
        *pp = p;
        if (d->need == 0 && d->held >= 4) {
            uint32_t total = be32(d->prelude);
            if ((r = check_total(total, d->max_frame)) != 0)
                return fail(d, r);
            d->need = total;
        }
        if (d->held < K2A_ES_PRELUDE_SIZE)
            return 0;
        uint32_t crc8;
        if ((r = check_prelude(d->prelude, &crc8)) != 0)
            return fail(d, r);
        d->crc = crc(crc8, d->prelude + 8, 4);
        if (d->buf_cap < d->need) {
            /* nothing to preserve: the prelude lives apart, so free + malloc avoids realloc's copy */
            free(d->buf);
            d->buf_cap = 0;
            if ((d->buf = malloc(d->need)) == NULL)
                return fail(d, K2A_ENOMEM);
            d->buf_cap = d->need;
        }
        memcpy(d->buf, d->prelude, K2A_ES_PRELUDE_SIZE);
    }

    size_t n = d->need - d->held;
    if (n > (size_t)(end - p))
        n = end - p;
    memcpy(d->buf + d->held, p, n);
    /* the CRC covers [0, need-4): hash the part of the new bytes that lies before the trailing CRC field */
    size_t crc_end = d->need - 4;
    if (d->held < crc_end)
        d->crc = crc(d->crc, p, (d->held + n < crc_end ? d->held + n : crc_end) - d->held);
    d->held += n;
    *pp = p + n;
    if (d->held < d->need)
        return 0;

    k2a_es_frame_t frame;
    uint32_t total = d->need;
    d->held = 0;
    d->need = 0;
    if ((r = parse_body((const uint8_t *)d->buf, total, d->crc, &frame)) != 0)
        return fail(d, r);
    return emit(d, &frame, on_frame, ctx);
}

int k2a_es_decoder_feed(k2a_es_decoder_t *d, const void *data, size_t len, k2a_es_on_frame_cb on_frame, void *ctx)
{
    const uint8_t *p = data, *end = p + len;
    k2a_es_frame_t frame;
    int r;

    if (d->error != 0)
        return d->error;
    if (len == 0)
        return 0;
    if (d->held != 0 && (r = feed_held(d, &p, end, on_frame, ctx)) != 0)
        return r;
    while (p != end) {
        intptr_t n = k2a_es_decode_frame(p, end - p, d->max_frame, &frame);
        if (n > 0) {
            p += n;
            if ((r = emit(d, &frame, on_frame, ctx)) != 0)
                return r;
        } else if (n == K2A_EINCOMPLETE) {
            /* a valid-so-far prefix: hold it (this consumes the rest of the chunk) */
            return feed_held(d, &p, end, on_frame, ctx);
        } else {
            return fail(d, (int)n);
        }
    }
    return 0;
}

/* Encoder */

static int header_value_size(const k2a_es_header_t *h, size_t *size)
{
    if (h->name == NULL || h->name_len == 0 || (unsigned)h->type > K2A_ES_UUID)
        return K2A_EINVAL;
    switch (h->type) {
    case K2A_ES_BYTES:
    case K2A_ES_STRING:
        if (h->v.s.len > UINT16_MAX || (h->v.s.len != 0 && h->v.s.base == NULL))
            return K2A_EINVAL;
        *size = 2 + (size_t)h->v.s.len;
        return 0;
    case K2A_ES_UUID:
        if (h->v.s.len != K2A_ES_UUID_SIZE || h->v.s.base == NULL)
            return K2A_EINVAL;
        break;
    default:
        break;
    }
    *size = (size_t)value_size[h->type];
    return 0;
}

static uint8_t *put_header(uint8_t *p, const k2a_es_header_t *h)
{
    *p++ = h->name_len;
    memcpy(p, h->name, h->name_len);
    p += h->name_len;
    *p++ = (uint8_t)h->type;
    uint64_t v = (uint64_t)h->v.i;
    switch (h->type) {
    case K2A_ES_BOOL_TRUE:
    case K2A_ES_BOOL_FALSE:
        break;
    case K2A_ES_BYTE:
        *p++ = (uint8_t)v;
        break;
    case K2A_ES_SHORT:
        *p++ = (uint8_t)(v >> 8);
        *p++ = (uint8_t)v;
        break;
    case K2A_ES_INT:
        put32(p, (uint32_t)v);
        p += 4;
        break;
    case K2A_ES_LONG:
    case K2A_ES_TIMESTAMP:
        put32(p, (uint32_t)(v >> 32));
        put32(p + 4, (uint32_t)v);
        p += 8;
        break;
    case K2A_ES_BYTES:
    case K2A_ES_STRING:
        *p++ = (uint8_t)(h->v.s.len >> 8);
        *p++ = (uint8_t)h->v.s.len;
        /* fallthrough */
    case K2A_ES_UUID:
        if (h->v.s.len != 0)
            memcpy(p, h->v.s.base, h->v.s.len);
        p += h->v.s.len;
        break;
    }
    return p;
}

int k2a_es_encode(k2a_buf_t *out, const k2a_es_header_t *headers, size_t nheaders, const void *payload, size_t payload_len)
{
    size_t hlen = 0, vsize;
    int r;

    if (nheaders > K2A_ES_MAX_HEADERS || (payload_len != 0 && payload == NULL))
        return K2A_EINVAL;
    for (size_t i = 0; i != nheaders; ++i) {
        if ((r = header_value_size(&headers[i], &vsize)) != 0)
            return r;
        hlen += 2 + headers[i].name_len + vsize;
    }
    /* hlen is at most 32 * (2 + 255 + 2 + 65535), so only the payload can overflow a u32 total */
    if (payload_len > UINT32_MAX - K2A_ES_MIN_FRAME - hlen)
        return K2A_ETOOBIG;
    size_t total = K2A_ES_MIN_FRAME + hlen + payload_len;
    if ((r = k2a_buf_reserve(out, total)) != 0)
        return r;

    uint8_t *start = (uint8_t *)out->base + out->len, *p = start;
    put32(p, (uint32_t)total);
    put32(p + 4, (uint32_t)hlen);
    uint32_t c = crc(0, p, 8);
    put32(p + 8, c);
    p += K2A_ES_PRELUDE_SIZE;
    for (size_t i = 0; i != nheaders; ++i)
        p = put_header(p, &headers[i]);
    if (payload_len != 0)
        memcpy(p, payload, payload_len);
    p += payload_len;
    put32(p, crc(c, start + 8, total - 12));
    out->len += total;
    return 0;
}

static int encode3(k2a_buf_t *out, const char *type_name, const char *type, const char *message_type, const void *payload,
                   size_t payload_len)
{
    k2a_es_header_t h[3] = {k2a_es_header_string(type_name, type), k2a_es_header_string(":content-type", "application/json"),
                            k2a_es_header_string(":message-type", message_type)};
    return k2a_es_encode(out, h, 3, payload, payload_len);
}

int k2a_es_encode_event(k2a_buf_t *out, const char *event_type, const void *payload, size_t payload_len)
{
    return encode3(out, ":event-type", event_type, "event", payload, payload_len);
}

int k2a_es_encode_exception(k2a_buf_t *out, const char *exception_type, const void *payload, size_t payload_len)
{
    return encode3(out, ":exception-type", exception_type, "exception", payload, payload_len);
}

/* Header constructors */

static k2a_es_header_t header_named(const char *name, k2a_es_header_type_t type)
{
    k2a_es_header_t h;
    memset(&h, 0, sizeof(h));
    size_t n = strlen(name);
    h.name = name;
    h.name_len = n <= UINT8_MAX ? (uint8_t)n : 0;
    h.type = type;
    return h;
}

k2a_es_header_t k2a_es_header_bytes(const char *name, const void *value, size_t len)
{
    k2a_es_header_t h = header_named(name, K2A_ES_BYTES);
    h.v.s.base = value;
    h.v.s.len = len <= UINT32_MAX ? (uint32_t)len : UINT32_MAX;
    return h;
}

k2a_es_header_t k2a_es_header_string(const char *name, const char *value)
{
    k2a_es_header_t h = k2a_es_header_bytes(name, value, strlen(value));
    h.type = K2A_ES_STRING;
    return h;
}

k2a_es_header_t k2a_es_header_bool(const char *name, bool value)
{
    k2a_es_header_t h = header_named(name, value ? K2A_ES_BOOL_TRUE : K2A_ES_BOOL_FALSE);
    h.v.b = value;
    return h;
}

static k2a_es_header_t header_int(const char *name, k2a_es_header_type_t type, int64_t value)
{
    k2a_es_header_t h = header_named(name, type);
    h.v.i = value;
    return h;
}

k2a_es_header_t k2a_es_header_byte(const char *name, int8_t value)
{
    return header_int(name, K2A_ES_BYTE, value);
}

k2a_es_header_t k2a_es_header_short(const char *name, int16_t value)
{
    return header_int(name, K2A_ES_SHORT, value);
}

k2a_es_header_t k2a_es_header_int(const char *name, int32_t value)
{
    return header_int(name, K2A_ES_INT, value);
}

k2a_es_header_t k2a_es_header_long(const char *name, int64_t value)
{
    return header_int(name, K2A_ES_LONG, value);
}

k2a_es_header_t k2a_es_header_timestamp(const char *name, int64_t ms_since_epoch)
{
    return header_int(name, K2A_ES_TIMESTAMP, ms_since_epoch);
}

k2a_es_header_t k2a_es_header_uuid(const char *name, const uint8_t uuid[K2A_ES_UUID_SIZE])
{
    k2a_es_header_t h = header_named(name, K2A_ES_UUID);
    h.v.s.base = (const char *)uuid;
    h.v.s.len = K2A_ES_UUID_SIZE;
    return h;
}
