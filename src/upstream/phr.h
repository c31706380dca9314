/*
 * Declarations for picohttpparser, which libh2o (Debian libh2o-dev, h2o 2.2.5) exports but whose header
 * Debian does not install. The prototypes and the decoder layout match h2o 2.2.5's bundled copy (the
 * decoder's fields at offsets 0, 8, 9 and 10 were checked against the library's phr_decode_chunked).
 * Return convention: bytes consumed (>= 0), -1 on a parse error, -2 when more input is needed.
 */
#ifndef K2A_UPSTREAM_PHR_H
#define K2A_UPSTREAM_PHR_H

#include <stddef.h>
#include <sys/types.h>

struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

int phr_parse_response(const char *buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);

/* Must be zero-filled before use. */
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk;
    char consume_trailer;
    char _hex_count;
    char _state;
};

/* Decodes in place: on return *bufsz is the number of decoded bytes at the start of buf. Returns -2 when the body goes on,
 * >= 0 at its end (the count of undecoded bytes left at the tail of the input), -1 on a framing error. */
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

#endif
