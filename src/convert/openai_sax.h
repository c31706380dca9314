/*
 * Private to the two OpenAI-family request decoders (openai_req.c for Chat Completions, responses_req.c for
 * Responses): the yajl SAX machinery they share (openai_sax.c). A decoder supplies its key table, what a value
 * means in each of its frames and what closing a frame does (k2a_oa_sax_ops_t); the driver keeps the frame stack
 * and the JSON path of errors, skips ignored containers by counting nesting, captures JSON Schemas (and Chat's
 * object-valued arguments) as compact text, keeps a container as its raw text on request, and reports yajl's
 * syntax errors. The typed value readers bound every string by the limits and record errors with their path.
 */
#ifndef K2A_CONVERT_OPENAI_SAX_H
#define K2A_CONVERT_OPENAI_SAX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "convert/openai_internal.h"

/* A JSON value as one SAX event: scalars carry their text, containers only their type. */
enum { OA_V_NULL, OA_V_BOOL, OA_V_NUMBER, OA_V_STRING, OA_V_MAP, OA_V_ARRAY };

typedef struct st_k2a_oa_value_t {
    int type;
    bool b;
    const char *s;
    size_t len;
} k2a_oa_value_t;

/* What a container value turns into, besides a frame context (>= 0): nothing, skipped, captured as compact text
 * (k2a_oa_start_capture), or kept as its raw text (k2a_oa_start_raw). */
enum { OA_PUSH_NONE = -1, OA_PUSH_SKIP = -2, OA_PUSH_CAPTURE = -3, OA_PUSH_RAW = -4 };

/* A decoder's key table: name, its length, and the id it maps to (0 for a key the decoder does not know). */
typedef struct st_k2a_oa_key_t {
    const char *name;
    uint8_t len, id;
} k2a_oa_key_t;
#define K2A_OA_KEY(s, id)                                                                                                          \
    {                                                                                                                              \
        s, sizeof(s) - 1, id                                                                                                       \
    }

/* The id of key s in table (0 when absent). The table is best ordered by frequency in real requests: the length and the
 * first byte reject nearly every other entry without a memcmp call. */
uint8_t k2a_oa_key_lookup(const k2a_oa_key_t *table, size_t n, const char *s, size_t len);

struct st_k2a_oa_sax_ops_t {
    /* the id of a map key (0 for a key the decoder does not know) */
    uint8_t (*key_id)(const char *s, size_t len);
    /* a value in the top frame (scalars and containers being opened); a container sets *push */
    int (*on_value)(k2a_oa_parser_t *p, const k2a_oa_value_t *v, int *push);
    /* the object or array of the top frame closes, before it is popped */
    int (*finish_frame)(k2a_oa_parser_t *p);
    /* p->offset (bytes consumed up to the current token) and p->key_end (just past the current root key) are kept */
    bool track_offsets;
};

/* Sets up p (zeroed first) for one decode: frames for limits->max_depth + extra_frames levels. limits must outlive
 * the parser. Returns 0, or the allocation error (already recorded). */
int k2a_oa_parser_init(k2a_oa_parser_t *p, const k2a_oa_sax_ops_t *ops, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                       k2a_ir_request_t *out, k2a_convert_error_t *err, unsigned extra_frames);
/* Frees the parser's malloc'd scratch (not the arena's memory). */
void k2a_oa_parser_dispose(k2a_oa_parser_t *p);

/* Runs one JSON document through the decoder in ONE yajl call (yajl re-lexes a string split across calls from its
 * start). Syntax errors are recorded as "<prefix>malformed JSON near byte N: ...". Returns 0 or the first error. */
int k2a_oa_sax_parse(k2a_oa_parser_t *p, const char *text, size_t len, const char *syntax_prefix);

/* Typed readers of a value; each returns 0 or the error recorded with the value's path. */
int k2a_oa_type_error(k2a_oa_parser_t *p, const k2a_oa_value_t *v, const char *expected);
/* zero-copy when yajl handed a pointer into the body (no escapes), else copied to the arena */
int k2a_oa_get_str(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_str_t *out);
/* same, null leaving *out as it is (an optional string sent as null is absent) */
int k2a_oa_get_opt_str(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_str_t *out);
int k2a_oa_get_int(k2a_oa_parser_t *p, const k2a_oa_value_t *v, int64_t *out);
int k2a_oa_get_double(k2a_oa_parser_t *p, const k2a_oa_value_t *v, double *out);
int k2a_oa_get_bool(k2a_oa_parser_t *p, const k2a_oa_value_t *v, bool *out);

/* The container being opened is captured as compact text (OA_CAP_PARAMETERS: made a valid object schema, strict
 * dropped); its text lands in p->tool.schema, p->call.input / p->msg.legacy_input or p->rf_schema. */
int k2a_oa_start_capture(k2a_oa_parser_t *p, k2a_oa_capture_t what, int *push);
/* A JSON Schema value (tool parameters, a response format's schema): null is absent, an object is captured (for
 * OA_CAP_PARAMETERS, p->tool.has_schema is set), anything else is a type error. */
int k2a_oa_schema_value(k2a_oa_parser_t *p, const k2a_oa_value_t *v, k2a_oa_capture_t what, int *push);
/* The container being opened is skipped and its raw text (as sent) stored in *dst when it closes (track_offsets). */
int k2a_oa_start_raw(k2a_oa_parser_t *p, k2a_str_t *dst, int *push);

#endif
