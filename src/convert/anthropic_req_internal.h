/*
 * Module-private pieces of the Anthropic request decoder shared by anthropic_req.c (yajl callbacks and
 * the entry point), anthropic_req_support.c (errors with JSON paths, key lookup, numbers) and
 * anthropic_req_blocks.c (builders → IR objects, metadata.user_id). Not for other modules.
 */
#ifndef K2A_CONVERT_ANTHROPIC_REQ_INTERNAL_H
#define K2A_CONVERT_ANTHROPIC_REQ_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "convert/anthropic_req.h"

/* containers the decoder understands */
enum {
    C_REQ = 0,
    C_SYSTEM_ARR,
    C_SYSBLOCK,
    C_MESSAGES_ARR,
    C_MESSAGE,
    C_CONTENT_ARR,
    C_BLOCK,
    C_SOURCE,
    C_TOOLS_ARR,
    C_TOOL,
    C_TOOL_CHOICE,
    C_THINKING,
    C_OUTPUT_CONFIG,
    C_STOP_ARR,
    C_METADATA,
};

/* what the next value is */
enum {
    S_IGNORE = 0,
    S_ROOT,
    S_MODEL,
    S_MAX_TOKENS,
    S_SYSTEM,
    S_MESSAGES,
    S_TOOLS,
    S_TOOL_CHOICE,
    S_THINKING,
    S_OUTPUT_CONFIG,
    S_STOP_SEQUENCES,
    S_TEMPERATURE,
    S_TOP_P,
    S_METADATA,
    S_STREAM,
    S_SYSBLOCK,
    S_SYS_TYPE,
    S_SYS_TEXT,
    S_MESSAGE,
    S_MSG_ROLE,
    S_MSG_CONTENT,
    S_BLOCK,
    S_B_TYPE,
    S_B_TEXT,
    S_B_THINKING,
    S_B_SIGNATURE,
    S_B_DATA,
    S_B_ID,
    S_B_NAME,
    S_B_INPUT,
    S_B_TOOL_USE_ID,
    S_B_IS_ERROR,
    S_B_CONTENT,
    S_B_SOURCE,
    S_B_TITLE,
    S_SRC_TYPE,
    S_SRC_MEDIA_TYPE,
    S_SRC_DATA,
    S_SRC_URL,
    S_TOOL,
    S_T_NAME,
    S_T_DESCRIPTION,
    S_T_TYPE,
    S_T_INPUT_SCHEMA,
    S_T_MAX_USES,
    S_TC_TYPE,
    S_TC_NAME,
    S_TH_TYPE,
    S_TH_BUDGET,
    S_TH_DISPLAY,
    S_OC_EFFORT,
    S_STOP,
    S_MD_USER_ID,
};

/* block fields, for deferred type errors */
enum {
    F_TEXT = 1u << 0,
    F_THINKING = 1u << 1,
    F_SIGNATURE = 1u << 2,
    F_DATA = 1u << 3,
    F_ID = 1u << 4,
    F_NAME = 1u << 5,
    F_INPUT = 1u << 6,
    F_TOOL_USE_ID = 1u << 7,
    F_IS_ERROR = 1u << 8,
    F_CONTENT = 1u << 9,
    F_SOURCE = 1u << 10,
    F_TITLE = 1u << 11,
};

#define MAX_FRAMES 12
#define BLOCK_LEVELS 2

typedef struct st_frame_t {
    uint8_t ctx;
    uint8_t slot;  /* slot of the next value */
    uint8_t level; /* C_CONTENT_ARR, C_BLOCK, C_SOURCE: 1 = message content, 2 = tool_result content */
    bool is_array;
    k2a_str_t key; /* objects: the current key */
    size_t index;  /* arrays: index of the current element */
} frame_t;

typedef struct st_blocklist_t {
    k2a_ir_block_t *v;
    size_t n, cap;
} blocklist_t;

typedef struct st_blockb_t {
    k2a_str_t type, text, thinking, signature, data, id, name, input, tool_use_id, title;
    bool is_error, has_type, has_input;
    uint8_t content_kind; /* 0 absent, 1 string, 2 array */
    k2a_str_t content_str;
    blocklist_t content;
    bool has_source;
    k2a_str_t src_type, src_media_type, src_data, src_url;
    unsigned bad_field; /* first field of the wrong type (F_*), 0 when none */
    const char *bad_expect;
    char bad_path[200];
} blockb_t;

typedef struct st_dec_t {
    const char *body;
    size_t len;
    yajl_handle h;
    const k2a_convert_limits_t *limits;
    k2a_arena_t *arena;
    k2a_ir_request_t *req;
    k2a_convert_error_t *err;
    int code; /* first error */

    unsigned depth; /* open JSON containers */
    frame_t frames[MAX_FRAMES];
    size_t nframes;
    bool root_seen;

    /* skipping or capturing a subtree: its depth and (capture) its slot and first byte */
    unsigned skip;
    uint8_t cap_slot;
    size_t cap_start;

    /* builders */
    struct {
        bool has_type;
        k2a_str_t type, text;
    } sys;
    struct {
        bool has_role;
        k2a_str_t role;
        uint8_t content_kind;
        k2a_str_t content_str;
        blocklist_t blocks;
    } msg;
    blockb_t blk[BLOCK_LEVELS];
    struct {
        k2a_str_t name, description, type, input_schema;
        bool has_name, has_type;
        int64_t max_uses; /* server tools: max_uses (0 = not given) */
    } tool;
    struct {
        k2a_str_t type, name;
    } tc;
    struct {
        k2a_str_t type, display;
        int64_t budget;
    } th;

    size_t nblocks_total;
    size_t msg_cap, sys_cap, tools_cap, stop_cap;
    bool has_model, has_messages;
    bool has_max_tokens; /* max_tokens was sent (0 is then a value, not "not given") */
} dec_t;

/* ---------- small helpers ---------- */

static inline bool key_is(k2a_str_t k, const char *lit)
{
    size_t n = strlen(lit);
    return k.len == n && memcmp(k.base, lit, n) == 0;
}

static inline frame_t *top(dec_t *d)
{
    return d->nframes != 0 ? &d->frames[d->nframes - 1] : NULL;
}

/* the slot of the value being delivered */
static inline uint8_t cur_slot(dec_t *d)
{
    frame_t *f = top(d);
    return f != NULL ? f->slot : S_ROOT;
}

/* After a complete value: arrays move to their next element. */
static inline void value_done(dec_t *d)
{
    frame_t *f = top(d);
    if (f != NULL && f->is_array)
        ++f->index;
}

static inline blockb_t *blk_at(dec_t *d, uint8_t level)
{
    return &d->blk[level - 1];
}

/* the block whose field is being delivered (the top frame is C_BLOCK or C_SOURCE) */
static inline blockb_t *cur_blk(dec_t *d)
{
    return blk_at(d, top(d)->level);
}

/* ---------- anthropic_req_support.c ---------- */

/* Records the first error (client-safe message) and returns 0, which cancels the parse. */
int k2a_areq_fail(dec_t *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int k2a_areq_fail_type(dec_t *d, const char *expect);
/* Missing field `name` of the object of the top frame. */
int k2a_areq_fail_missing(dec_t *d, const char *name);
/* An error about the object of the top frame or one of its fields (field may be NULL). */
int k2a_areq_fail_object(dec_t *d, int code, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int k2a_areq_fail_limit(dec_t *d, const char *what, size_t limit);
int k2a_areq_fail_nomem(dec_t *d);
/* Path of frames[0 .. n) / of the value being delivered now. */
void k2a_areq_format_path(const dec_t *d, size_t n, char *out, size_t cap);
void k2a_areq_value_path(const dec_t *d, char *out, size_t cap);
/* Keeps s zero-copy when it points into the body, copies it into the arena otherwise. */
bool k2a_areq_keep_str(dec_t *d, const unsigned char *s, size_t len, k2a_str_t *out);
bool k2a_areq_push_block(dec_t *d, blocklist_t *l, const k2a_ir_block_t *b);
int k2a_areq_push_frame(dec_t *d, uint8_t ctx, bool is_array, uint8_t elem_slot, uint8_t level);
int k2a_areq_defer_type_error(dec_t *d, unsigned field, const char *expect);
unsigned k2a_areq_slot_field(uint8_t slot);
/* A value of the wrong JSON type for slot: deferred for block fields, an error otherwise. */
int k2a_areq_wrong_type(dec_t *d, uint8_t slot, const char *expect);
const char *k2a_areq_slot_expect(uint8_t slot);
uint8_t k2a_areq_key_slot(frame_t *f, k2a_str_t k);
bool k2a_areq_parse_double(const char *s, size_t l, double *out);
bool k2a_areq_parse_int(const char *s, size_t l, int64_t *out);

/* ---------- anthropic_req_blocks.c: a closed object of the top frame → IR (0 on error, 1 otherwise) ---------- */

int k2a_areq_finish_block(dec_t *d);
int k2a_areq_finish_message(dec_t *d);
int k2a_areq_finish_tool(dec_t *d);
int k2a_areq_finish_sysblock(dec_t *d);
int k2a_areq_finish_tool_choice(dec_t *d);
int k2a_areq_finish_thinking(dec_t *d);

#endif
