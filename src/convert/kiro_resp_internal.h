/*
 * Private to the Kiro response parser (kiro_resp.c, kiro_resp_payload.c, kiro_resp_utf8.c): the payload reader, the
 * stop-reason reader and the string and UTF-8 helpers.
 */
#ifndef K2A_CONVERT_KIRO_RESP_INTERNAL_H
#define K2A_CONVERT_KIRO_RESP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include "convert/kiro_resp.h"

static inline bool k2a__kiro_str_eq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && memcmp(a, lit, n) == 0;
}

static inline bool k2a__kiro_str_contains(const char *hay, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; n <= len && i <= len - n; ++i)
        if (memcmp(hay + i, needle, n) == 0)
            return true;
    return false;
}

/* :message-type and :event-type of a frame (the first string header of each name), found by the EventStream decoder in
 * its pass over the headers (k2a_es_frame_t); a missing one is NULL with length 0. */
static inline void k2a__kiro_frame_types(const k2a_es_frame_t *f, const char **mt, size_t *mtl, const char **et, size_t *etl)
{
    *mt = f->message_type;
    *mtl = f->message_type_len;
    *et = f->event_type;
    *etl = f->event_type_len;
}
/* Parses the frame's payload into p->f (string fields are copied into p->scratch, referenced by offset; an input object
 * is referenced by its byte span in the payload). event_type (may be NULL) enables the {"<event_type>":{...}} wrapping.
 * Returns 0, K2A_EUPSTREAM_EVENT when the payload is not one complete JSON object (an empty payload reads as {}), or
 * K2A_ENOMEM. */
int k2a__kiro_parse_payload(k2a_kiro_resp_t *p, const k2a_es_frame_t *fr, const char *event_type, size_t event_type_len);

/* metadataEvent's stopReason (either case) as a k2a_kiro_stop_t; K2A_KIRO_STOP_OTHER when unknown. */
k2a_kiro_stop_t k2a__kiro_parse_stop(const char *s, size_t n);

/* Bytes of s that end on a sequence boundary: a valid incomplete sequence at the very end (at most 3 bytes) is left out. */
size_t k2a__kiro_utf8_complete_prefix(const char *s, size_t n);
/* Leaves *s alone when it is valid UTF-8, else points it at a copy in `fix` with each invalid byte replaced by U+FFFD.
 * Returns 0 or the buffer's K2A_ENOMEM / K2A_ETOOBIG. */
int k2a__kiro_utf8_sanitize(k2a_buf_t *fix, const char **s, size_t *n);

#endif
