/*
 * Private to the OpenAI request decoder (openai_req.c = the SAX state machine, openai_req_build.c = turning
 * collected fields into IR blocks, messages and compact JSON). Not a public interface: the decoder's API is
 * openai_req.h. The parser state lives on the caller's stack for one k2a_openai_decode() call.
 */
#ifndef K2A_CONVERT_OPENAI_INTERNAL_H
#define K2A_CONVERT_OPENAI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_parse.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/str.h"
#include "convert/convert_error.h"
#include "convert/ir.h"

/* ---------- compact JSON writer (captured subtrees, re-serialised tool-call arguments) ---------- */

typedef struct st_k2a_oa_jw_t {
    k2a_buf_t *out;
    uint8_t *first; /* first[d]: no element written yet at depth d; max_depth + 1 entries */
    unsigned depth, max_depth;
    bool after_key;
} k2a_oa_jw_t;

void k2a_oa_jw_init(k2a_oa_jw_t *jw, k2a_buf_t *out, uint8_t *first, unsigned max_depth);
/* Each returns 0, K2A_EJSON_DEPTH past max_depth, or K2A_ETOOBIG/K2A_ENOMEM from the buffer. */
int k2a_oa_jw_open(k2a_oa_jw_t *jw, char c);  /* '{' or '[' */
int k2a_oa_jw_close(k2a_oa_jw_t *jw, char c); /* '}' or ']' */
int k2a_oa_jw_key(k2a_oa_jw_t *jw, const char *s, size_t n);
int k2a_oa_jw_string(k2a_oa_jw_t *jw, const char *s, size_t n);
int k2a_oa_jw_raw(k2a_oa_jw_t *jw, const char *s, size_t n); /* a number or literal as received */

/* Parses text (a whole JSON document, whitespace allowed around it) with its own yajl handle in one call and
 * writes it compactly to scratch (reset first). Returns 1 when it is a JSON object, 0 when it is valid JSON of
 * another type or not valid JSON (scratch content is then meaningless), K2A_EJSON_DEPTH when nested deeper than
 * max_depth, K2A_ETOOBIG when the compact text exceeds scratch's maximum, K2A_ENOMEM. first has max_depth + 1 entries. */
int k2a_oa_compact_object(const char *text, size_t len, uint8_t *first, unsigned max_depth, k2a_buf_t *scratch);

/* ---------- parser state ---------- */

typedef enum en_k2a_oa_ctx_t {
    OA_ROOT = 0,
    OA_MESSAGES,
    OA_MESSAGE,
    OA_CONTENT,
    OA_PART,
    OA_IMAGE_URL,
    OA_TOOL_CALLS,
    OA_TOOL_CALL,
    OA_CALL_FUNCTION,
    OA_LEGACY_CALL, /* an assistant message's legacy function_call {name, arguments} */
    OA_TOOLS,
    OA_TOOL,
    OA_TOOL_FUNCTION,
    OA_FUNCTIONS, /* legacy top-level functions[] */
    OA_TOOL_CHOICE,
    OA_TOOL_CHOICE_FUNCTION,
    OA_FUNCTION_CALL_PARAM, /* legacy top-level function_call {"name"} */
    OA_STOP,
    OA_STREAM_OPTIONS,
    OA_RESPONSE_FORMAT,
    OA_JSON_SCHEMA,
} k2a_oa_ctx_t;

#define K2A_OA_KEY_MAX 48

typedef struct st_k2a_oa_frame_t {
    uint8_t ctx;
    bool is_array;
    uint8_t key; /* maps: id of the current key */
    uint8_t keylen;
    uint32_t index;               /* arrays: index of the current element */
    char keytext[K2A_OA_KEY_MAX]; /* maps: the current key, truncated, for error paths */
} k2a_oa_frame_t;

typedef enum en_k2a_oa_capture_t {
    OA_CAP_NONE = 0,
    OA_CAP_PARAMETERS, /* tools[i].function.parameters -> k2a_ir_tool_t.input_schema */
    OA_CAP_ARGUMENTS,  /* tool_calls[j].function.arguments sent as an object instead of a string */
    OA_CAP_RF_SCHEMA,  /* response_format.json_schema.schema */
} k2a_oa_capture_t;

/* A growable array of blocks in malloc'd memory, reused across messages. */
typedef struct st_k2a_oa_blocks_t {
    k2a_ir_block_t *v;
    size_t n, cap;
} k2a_oa_blocks_t;

typedef struct st_k2a_oa_sax_ops_t k2a_oa_sax_ops_t; /* openai_sax.h */

typedef struct st_k2a_oa_parser_t {
    const k2a_oa_sax_ops_t *ops; /* the decoder's part of the SAX machinery (openai_sax.h) */
    yajl_handle h;               /* the document being parsed */
    size_t offset;               /* ops->track_offsets: bytes of the document consumed up to the current token */
    size_t key_end;              /* ops->track_offsets: offset just past the current key of the root object */
    /* a container kept as raw text (k2a_oa_start_raw) */
    bool raw_open;
    size_t raw_start;
    k2a_str_t *raw_dst;
    const char *body;
    size_t body_len;
    const k2a_convert_limits_t *limits;
    k2a_arena_t *arena;
    k2a_ir_request_t *req;
    k2a_convert_error_t *err;
    int code; /* first error, 0 if none */

    k2a_oa_frame_t *frames;
    unsigned depth;
    unsigned skip; /* > 0: inside an ignored container, its nesting */

    /* capture of a JSON subtree into `scratch` */
    k2a_oa_capture_t capture;
    k2a_oa_jw_t jw;
    uint8_t *jw_first;
    k2a_buf_t scratch;
    bool cap_drop_next; /* the next value at capture depth 1 is dropped (parameters.strict) */
    bool cap_type_next; /* the next value is parameters.type */
    bool cap_seen_type, cap_type_object, cap_seen_properties;

    size_t nblocks_total;

    /* the message being parsed; its fields can come in any order, so they are collected and assembled at its end */
    struct {
        k2a_str_t role;
        int content; /* 0 absent, 1 null, 2 string, 3 parts */
        k2a_str_t content_str;
        k2a_str_t tool_call_id;
        k2a_str_t reasoning;
        k2a_str_t name;
        bool has_legacy_call, legacy_has_args;
        k2a_str_t legacy_name, legacy_input, legacy_raw;
    } msg;
    k2a_oa_blocks_t parts; /* content parts of the current message */
    k2a_oa_blocks_t calls; /* TOOL_USE blocks of the current message */
    struct {
        k2a_str_t type, text, url;
        bool has_text, has_url;
    } part;
    struct {
        k2a_str_t id, type, name, input, input_raw;
        bool has_function, has_args;
    } call;
    struct {
        k2a_str_t type, name, description, schema;
        bool has_function, has_name, has_schema;
    } tool;
    struct {
        k2a_str_t type, name;
    } choice;

    /* output vectors (arena) */
    size_t cap_messages, cap_system, cap_tools, cap_stops;
    /* A user turn made of tool results stays open here until a message that is not a tool result closes it (a user
     * message joins it first), so that its blocks are allocated once, at their exact count. */
    k2a_oa_blocks_t turn;
    bool turn_open;
    k2a_oa_blocks_t asst;                       /* the blocks of the assistant message being assembled */
    k2a_str_t legacy_call_id, legacy_call_name; /* the latest legacy assistant function_call, for a `function` message */
    unsigned legacy_calls;

    /* top-level fields resolved at the end */
    bool has_model, has_messages, has_tool_choice, has_function_call;
    int64_t max_tokens, max_completion_tokens;
    k2a_str_t reasoning_effort;
    k2a_ir_tool_choice_t function_call_choice;
    k2a_str_t function_call_name;
    int response_format; /* 0 text/absent, 1 json_object, 2 json_schema */
    k2a_str_t rf_type, rf_name, rf_description, rf_schema;
} k2a_oa_parser_t;

/* Sets the first error with the JSON path of the current value (all frames) and returns code. */
int k2a_oa_fail(k2a_oa_parser_t *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Same, for a field of the object being closed: path of the frames below the top one, then "." field. */
int k2a_oa_fail_field(k2a_oa_parser_t *p, int code, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* K2A_ETOOBIG when the arena is at its limit, else K2A_ENOMEM, with a message. */
int k2a_oa_fail_alloc(k2a_oa_parser_t *p);

int k2a_oa_blocks_push(k2a_oa_parser_t *p, k2a_oa_blocks_t *b, const k2a_ir_block_t *blk);

/* Assembly (openai_req_build.c), called when the corresponding object closes. Return 0 or a negative K2A_E*. */
int k2a_oa_finish_part(k2a_oa_parser_t *p);
int k2a_oa_finish_call(k2a_oa_parser_t *p);
int k2a_oa_finish_message(k2a_oa_parser_t *p);
/* Emits the open tool-result turn, if any, as one USER message. */
int k2a_oa_flush_turn(k2a_oa_parser_t *p);
int k2a_oa_finish_tool(k2a_oa_parser_t *p, bool legacy);
/* Tool-call arguments received as a JSON string: stores call.input (and call.input_raw) per the documented rule. */
int k2a_oa_set_arguments(k2a_oa_parser_t *p, const char *s, size_t len, k2a_str_t *input, k2a_str_t *input_raw);
/* Appends a message with a copy of blocks[0..n) (exactly sized, in the arena). */
int k2a_oa_push_message(k2a_oa_parser_t *p, k2a_ir_role_t role, const k2a_ir_block_t *blocks, size_t n);
/* Appends to a scratch vector without counting against max_blocks (the block was counted already). */
int k2a_oa_vec_push(k2a_oa_parser_t *p, k2a_oa_blocks_t *b, const k2a_ir_block_t *blk);
/* Adds a TOOL_RESULT block for call id with a copy of blocks[0..n) to the open tool-result turn (opening it); count:
 * the block counts against max_blocks here (else it was counted already). */
int k2a_oa_add_tool_result(k2a_oa_parser_t *p, k2a_str_t id, const k2a_ir_block_t *blocks, size_t n, bool count);
/* Adds a TEXT system block: counted against max_system_blocks when counted, before the others when first. */
int k2a_oa_add_system(k2a_oa_parser_t *p, k2a_str_t text, bool counted, bool first);
/* p->reasoning_effort (none, minimal ... xhigh) as the request's thinking; field names it in an error. */
int k2a_oa_apply_effort(k2a_oa_parser_t *p, const char *field);
/* p->response_format as a system instruction to answer with JSON (conforming to p->rf_schema when given); field names
 * it in an error. */
int k2a_oa_apply_response_format(k2a_oa_parser_t *p, const char *field);
/* After the whole body: defaults, reasoning_effort, response_format instruction, required fields. */
int k2a_oa_finish_request(k2a_oa_parser_t *p);

#endif
