/*
 * Test helpers for the response side (kiro_resp, anthropic_resp, openai_resp): an IR event recorder that copies
 * every event and checks the sequence invariants, a tee sink, a fixed random source, frames built with the
 * EventStream encoder and decoded back, and a fixture runner (file -> decoder -> parser -> sink).
 */
#ifndef K2A_TESTS_RESP_SUPPORT_H
#define K2A_TESTS_RESP_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "convert/ir.h"
#include "convert/kiro_resp.h"
#include "core/buf.h"
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "eventstream/eventstream.h"

typedef struct st_rs_event_t {
    k2a_ir_event_type_t type;
    int index;
    k2a_ir_block_kind_t block;
    char *text; /* NUL-terminated copy (DELTA; BLOCK_START of REDACTED_THINKING: its data) */
    size_t text_len;
    char *tool_id, *tool_name;
    k2a_ir_stop_reason_t stop_reason;
    k2a_ir_usage_t usage;
    int error;
    char *message;
    char *signature; /* BLOCK_STOP with a signature */
} rs_event_t;

typedef struct st_rs_rec_t {
    rs_event_t *ev;
    size_t n, cap;
} rs_rec_t;

void rs_rec_init(rs_rec_t *r);
void rs_rec_dispose(rs_rec_t *r);
/* k2a_ir_event_cb that appends a copy of the event to the rs_rec_t ctx. */
int rs_rec_sink(void *ctx, const k2a_ir_event_t *ev);
/* Asserts the invariants every producer must keep: MESSAGE_START first (if require_start), indices consecutive from 0,
 * one block open at a time, deltas only to the open block and of its kind, every delta valid UTF-8, exactly one
 * STOP or ERROR and it is last, no BLOCK_STOP after ERROR... */
void rs_rec_check(const rs_rec_t *r, bool require_start);
/* Concatenation of the DELTA texts of block `index` (malloc'd, NUL-terminated). */
char *rs_rec_concat(const rs_rec_t *r, int index, size_t *len);
/* Concatenation of all DELTA texts of one kind. */
char *rs_rec_concat_kind(const rs_rec_t *r, k2a_ir_block_kind_t kind, size_t *len);
/* A compact one-line description of the sequence, e.g. "S B0:text D0 E0 B1:tool(get_weather) D1 D1 E1 stop:tool_use".
 * malloc'd. */
char *rs_rec_describe(const rs_rec_t *r);
const rs_event_t *rs_rec_last(const rs_rec_t *r);

/* A sink that forwards to two sinks (the first non-zero result wins). */
typedef struct st_rs_tee_t {
    k2a_ir_event_cb a, b;
    void *actx, *bctx;
} rs_tee_t;
int rs_tee_sink(void *ctx, const k2a_ir_event_t *ev);

/* Deterministic random source: ctx is a uint64_t state (splitmix64). */
void rs_random(void *ctx, void *buf, size_t len);

/* Writes a parsed JSON value with a yajl generator, keys in their parsed order (golden files, canonical forms). */
void rs_json_emit(yajl_gen g, yajl_val v);

/* Frames: encoded with the EventStream encoder, decoded back into *f (which borrows from the rs_frame_t). */
typedef struct st_rs_frame_t {
    k2a_buf_t bytes;
    k2a_es_frame_t f;
} rs_frame_t;
void rs_frame_event(rs_frame_t *fr, const char *event_type, const char *payload);
void rs_frame_event_n(rs_frame_t *fr, const char *event_type, const char *payload, size_t len);
void rs_frame_exception(rs_frame_t *fr, const char *exception_type, const char *payload);
/* A frame with arbitrary string headers (NULL-terminated list of name, value pairs). */
void rs_frame_headers(rs_frame_t *fr, const char *payload, ...);
void rs_frame_dispose(rs_frame_t *fr);
/* Encodes + feeds one event frame to the parser; returns on_frame's result. */
int rs_feed_event(k2a_kiro_resp_t *p, const char *event_type, const char *payload);
int rs_feed_event_n(k2a_kiro_resp_t *p, const char *event_type, const char *payload, size_t len);

/* Reads a whole file (malloc'd, NUL-terminated). Fails the test when missing. */
char *rs_read_file(const char *path, size_t *len);
/* Writes a file (for blessing golden files). */
void rs_write_file(const char *path, const void *data, size_t len);
/* Decodes body[0..len) fed in chunks of `chunk` bytes (0 = whole), handing frames to the parser, then finishes it with
 * the decoder's end-of-body status. Returns the last non-zero result of on_frame / finish, or 0. */
int rs_run_body(k2a_kiro_resp_t *p, const char *body, size_t len, size_t chunk);
/* The same with random piece sizes in 1..chunk drawn from seed (0: fixed pieces of chunk bytes). */
int rs_run_body_random(k2a_kiro_resp_t *p, const char *body, size_t len, size_t chunk, uint64_t seed);

/* True when s[0..n) is valid UTF-8. */
bool rs_utf8_valid(const char *s, size_t n);

#endif
