/*
 * libFuzzer target for the upstream response path (src/upstream/http.c): a raw HTTP/1.1 response is fed to
 * the head parser and then the body decoder in pieces, the way socket reads hand them over. Input byte 0
 * picks the piece size (0 = everything at once, else 1 + 61 * (byte - 1) bytes: 1, 62, ... up to 15556),
 * byte 1 bit 0 marks the request as HEAD; the response follows. The target aborts unless the head parses
 * the same whole as in pieces (outcome, status, header count, framing), unless decoding never yields
 * more body bytes than it was given, unless a Content-Length body stops at its length, and unless a
 * finished or failed body stays finished or failed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "upstream/internal.h"

static k2a_upstream_t up;

static resp_t *new_resp(bool head_method)
{
    if (up.cfg.max_headers == 0)
        k2a_upstream_config_init(&up.cfg);
    resp_t *r = k2a_up_http_resp_create(&up);
    if (r == NULL)
        abort();
    r->head_method = head_method;
    return r;
}

/* Appends the response in pieces of `step` bytes until the head is complete; returns the parse outcome. */
static int parse_head(resp_t *r, const uint8_t *data, size_t size, size_t step, size_t *used)
{
    size_t pos = 0, off = 0, last = 0;
    int rc = K2A_EINCOMPLETE;
    while (rc == K2A_EINCOMPLETE && pos < size) {
        size_t n = step < size - pos ? step : size - pos;
        if (k2a_buf_append(&r->head, data + pos, n) != 0)
            return K2A_EHEADER_TOOBIG;
        pos += n;
        rc = k2a_up_http_parse_head(r, &off, &last);
    }
    *used = pos;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t step = data[0] == 0 ? SIZE_MAX : 1 + 61 * (size_t)(data[0] - 1);
    bool head_method = data[1] & 1;
    data += 2;
    size -= 2;

    resp_t *whole = new_resp(head_method), *r = new_resp(head_method);
    size_t used_whole, used;
    int rc_whole = parse_head(whole, data, size, SIZE_MAX, &used_whole);
    int rc = parse_head(r, data, size, step, &used);
    /* a head that fits the limits parses the same however it arrives; past the byte limit, where the cut falls decides
     * whether the oversize shows as "too big" or as a malformed prefix, so only the success cases must agree */
    if ((rc == 0) != (rc_whole == 0) && size <= up.cfg.max_header_bytes)
        abort();
    if (rc == 0 && rc_whole == 0 &&
        (r->pub.status != whole->pub.status || r->pub.nheaders != whole->pub.nheaders || r->mode != whole->mode ||
         r->pub.content_length != whole->pub.content_length || r->done != whole->done))
        abort();
    if (rc == 0) {
        uint64_t in = 0, out = 0, cl = r->remaining;
        bool length_mode = r->mode == BODY_LENGTH, failed = false;
        char *o;
        if (!r->done && r->pending_len > 0) {
            in += r->pending_len;
            intptr_t n = k2a_up_http_body_piece(r, r->pending, r->pending_len, &o);
            if (n < 0)
                failed = true;
            else
                out += (uint64_t)n;
        }
        char *tmp = malloc(size + 1);
        size_t pos = used;
        while (!r->done && !failed && r->deferred_error == 0 && pos < size) {
            size_t n = step < size - pos ? step : size - pos;
            memcpy(tmp, data + pos, n);
            pos += n;
            in += n;
            intptr_t got = k2a_up_http_body_piece(r, tmp, n, &o);
            if (got < 0) {
                failed = true;
            } else {
                if (got > 0 && (o < tmp || o + got > tmp + n))
                    abort(); /* body bytes must lie in the piece they came from */
                out += (uint64_t)got;
            }
        }
        free(tmp);
        if (out > in)
            abort();
        if (length_mode && (out > cl || (r->done && out != cl)))
            abort();
        if (failed && r->done)
            abort();
    }
    k2a_up_http_resp_free(whole);
    k2a_up_http_resp_free(r);
    return 0;
}
