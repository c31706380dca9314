/*
 * Shared by the response writer fuzz targets (fuzz_openai_resp, fuzz_responses_resp): the input bytes read as a
 * sequence of IR events in any order (including orders a correct producer never sends). Each event takes three bytes
 * (type, index and block kind, stop reason / error / token count / text length) and then up to 15 bytes of text that
 * also give the tool id and name. Header-only (each fuzz target is one source file).
 */
#ifndef K2A_FUZZ_IR_EVENTS_H
#define K2A_FUZZ_IR_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "convert/ir.h"

/* The next event at data[*i], advancing *i; false when fewer than three bytes are left. Block kinds are taken modulo
 * nkinds and stop reasons modulo nstops (the ones the writer knows); with_output_tokens also sets usage.output_tokens. */
static inline bool fuzz_next_ir_event(const uint8_t *data, size_t size, size_t *i, unsigned nkinds, unsigned nstops,
                                      bool with_output_tokens, k2a_ir_event_t *ev)
{
    size_t at = *i;
    if (at + 3 > size)
        return false;
    memset(ev, 0, sizeof(*ev));
    ev->type = (k2a_ir_event_type_t)(data[at] % 8);
    ev->index = data[at + 1] % 24;
    ev->block = (k2a_ir_block_kind_t)(data[at + 1] / 24 % nkinds);
    ev->stop_reason = (k2a_ir_stop_reason_t)(data[at + 2] % nstops);
    ev->error = -(int)(data[at + 2] % 80) - 1;
    ev->usage.input_tokens = data[at + 2];
    if (with_output_tokens)
        ev->usage.output_tokens = data[at];
    size_t n = data[at + 2] % 16;
    at += 3;
    if (n > size - at)
        n = size - at;
    ev->text = k2a_str((const char *)data + at, n);
    ev->tool_id = k2a_str((const char *)data + at, n / 2);
    ev->tool_name = k2a_str((const char *)data + at + n / 2, n - n / 2);
    ev->error_message = ev->text;
    *i = at + n;
    return true;
}

#endif
