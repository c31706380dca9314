/*
 * Private to the Kiro response parser (kiro_resp.c, kiro_resp_payload.c): the payload reader and two string helpers.
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

/* Parses the frame's payload into p->f (string fields are copied into p->scratch, referenced by offset; an input object
 * is referenced by its byte span in the payload). event_type (may be NULL) enables the {"<event_type>":{...}} wrapping.
 * Returns 0, K2A_EUPSTREAM_EVENT when the payload is not one complete JSON object (an empty payload reads as {}), or
 * K2A_ENOMEM. */
int k2a__kiro_parse_payload(k2a_kiro_resp_t *p, const k2a_es_frame_t *fr, const char *event_type, size_t event_type_len);

#endif
