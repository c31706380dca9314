/*
 * Anthropic Messages request → IR, in one yajl SAX pass (see anthropic_req.h). The decoder keeps a small
 * stack of frames for the containers whose shape it knows (request, messages, content blocks, tools...);
 * every other subtree is skipped by counting its depth, and the two subtrees kept verbatim (tool_use
 * input, tools[].input_schema) are taken as a slice of the body (zero-copy when already compact, else
 * re-serialised compactly). A block's fields may come in any order, so each block is assembled in a
 * builder and turned into an IR block when its object closes; a field of the wrong type is reported
 * only if the block's final type uses that field (unknown block types are dropped whole).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/anthropic_req.h"
#include "convert/json_util.h"

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
} dec_t;

/* ---------- errors and paths ---------- */

static size_t append_path_key(char *out, size_t cap, size_t len, k2a_str_t key, bool dot)
{
    if (len + 1 >= cap)
        return len;
    if (dot)
        out[len++] = '.';
    for (size_t i = 0; i < key.len && i < 64 && len + 1 < cap; ++i) {
        unsigned char c = (unsigned char)key.base[i];
        out[len++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    out[len] = '\0';
    return len;
}

/* Formats the path of frames[0 .. n) (each frame contributes its current key or index). */
static void format_path(const dec_t *d, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; ++i) {
        const frame_t *f = &d->frames[i];
        if (f->is_array) {
            int w = snprintf(out + len, cap - len, "[%zu]", f->index);
            if (w < 0 || (size_t)w >= cap - len)
                return;
            len += (size_t)w;
        } else {
            len = append_path_key(out, cap, len, f->key, len != 0);
        }
    }
}

/* Path of the value being delivered now. */
static void value_path(const dec_t *d, char *out, size_t cap)
{
    format_path(d, d->nframes, out, cap);
    if (out[0] == '\0')
        snprintf(out, cap, "request body");
}

static int fail(dec_t *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(dec_t *d, int code, const char *fmt, ...)
{
    if (d->code == 0) {
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        d->code = code;
        k2a_convert_error_set(d->err, code, "%s", msg);
    }
    return 0; /* cancels the parse */
}

static int fail_type(dec_t *d, const char *expect)
{
    char path[256];
    value_path(d, path, sizeof(path));
    return fail(d, K2A_EJSON_TYPE, "%s: expected %s", path, expect);
}

/* Missing field `name` of the object whose frame is the top one. */
static int fail_missing(dec_t *d, const char *name)
{
    char path[256];
    format_path(d, d->nframes - 1, path, sizeof(path));
    if (path[0] == '\0')
        return fail(d, K2A_EMISSING_FIELD, "%s: missing", name);
    return fail(d, K2A_EMISSING_FIELD, "%s.%s: missing", path, name);
}

/* An error about the object of the top frame (not one of its fields). */
static int fail_object(dec_t *d, int code, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail_object(dec_t *d, int code, const char *field, const char *fmt, ...)
{
    char path[256], msg[300];
    format_path(d, d->nframes - 1, path, sizeof(path));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field != NULL)
        return fail(d, code, "%s%s%s: %s", path, path[0] != '\0' ? "." : "", field, msg);
    return fail(d, code, "%s: %s", path[0] != '\0' ? path : "request body", msg);
}

static int fail_limit(dec_t *d, const char *what, size_t limit)
{
    char path[256];
    value_path(d, path, sizeof(path));
    return fail(d, K2A_ETOOBIG, "%s: too many %s (limit %zu)", path, what, limit);
}

static int fail_nomem(dec_t *d)
{
    return fail(d, K2A_ENOMEM, "request too large for the conversion memory limit");
}

/* ---------- helpers ---------- */

static bool key_is(k2a_str_t k, const char *lit)
{
    size_t n = strlen(lit);
    return k.len == n && memcmp(k.base, lit, n) == 0;
}

/* Keeps s zero-copy when it points into the body, copies it into the arena otherwise. */
static bool keep_str(dec_t *d, const unsigned char *s, size_t len, k2a_str_t *out)
{
    const char *p = (const char *)s;
    if (p >= d->body && len <= d->len && p <= d->body + d->len - len) {
        *out = k2a_str(p, len);
        return true;
    }
    char *c = k2a_arena_strndup(d->arena, p, len);
    if (c == NULL)
        return false;
    *out = k2a_str(c, len);
    return true;
}

static bool push_block(dec_t *d, blocklist_t *l, const k2a_ir_block_t *b)
{
    if (l->n == l->cap) {
        k2a_ir_block_t *v = k2a_arena_grow(d->arena, l->v, sizeof(*v), l->n, &l->cap);
        if (v == NULL)
            return false;
        l->v = v;
    }
    l->v[l->n++] = *b;
    return true;
}

static frame_t *top(dec_t *d)
{
    return d->nframes != 0 ? &d->frames[d->nframes - 1] : NULL;
}

static uint8_t cur_slot(dec_t *d)
{
    frame_t *f = top(d);
    return f != NULL ? f->slot : S_ROOT;
}

/* After a complete value: arrays move to their next element. */
static void value_done(dec_t *d)
{
    frame_t *f = top(d);
    if (f != NULL && f->is_array)
        ++f->index;
}

static int push_frame(dec_t *d, uint8_t ctx, bool is_array, uint8_t elem_slot, uint8_t level)
{
    if (d->nframes == MAX_FRAMES)
        return fail(d, K2A_EINTERNAL, "decoder frame stack exhausted");
    frame_t *f = &d->frames[d->nframes++];
    f->ctx = ctx;
    f->is_array = is_array;
    f->slot = is_array ? elem_slot : S_IGNORE;
    f->level = level;
    f->key = K2A_STR_NULL;
    f->index = 0;
    return 1;
}

static blockb_t *blk_at(dec_t *d, uint8_t level)
{
    return &d->blk[level - 1];
}

/* level of the block whose field is being delivered (top frame is C_BLOCK or C_SOURCE) */
static blockb_t *cur_blk(dec_t *d)
{
    return blk_at(d, top(d)->level);
}

/* A block field of the wrong type: remember it, report it at the end of the block if its type uses it. */
static int defer_type_error(dec_t *d, unsigned field, const char *expect)
{
    blockb_t *b = cur_blk(d);
    if (b->bad_field == 0) {
        b->bad_field = field;
        b->bad_expect = expect;
        value_path(d, b->bad_path, sizeof(b->bad_path));
    }
    return 1;
}

static unsigned slot_field(uint8_t slot)
{
    switch (slot) {
    case S_B_TEXT:
        return F_TEXT;
    case S_B_THINKING:
        return F_THINKING;
    case S_B_SIGNATURE:
        return F_SIGNATURE;
    case S_B_DATA:
        return F_DATA;
    case S_B_ID:
        return F_ID;
    case S_B_NAME:
        return F_NAME;
    case S_B_INPUT:
        return F_INPUT;
    case S_B_TOOL_USE_ID:
        return F_TOOL_USE_ID;
    case S_B_IS_ERROR:
        return F_IS_ERROR;
    case S_B_CONTENT:
        return F_CONTENT;
    case S_B_SOURCE:
    case S_SRC_TYPE:
    case S_SRC_MEDIA_TYPE:
    case S_SRC_DATA:
    case S_SRC_URL:
        return F_SOURCE;
    case S_B_TITLE:
        return F_TITLE;
    default:
        return 0;
    }
}

/* A value of the wrong JSON type for `slot`: deferred for block fields, immediate otherwise. */
static int wrong_type(dec_t *d, uint8_t slot, const char *expect)
{
    unsigned f = slot_field(slot);
    if (f != 0)
        return defer_type_error(d, f, expect);
    return fail_type(d, expect);
}

static const char *slot_expect(uint8_t slot)
{
    switch (slot) {
    case S_MAX_TOKENS:
    case S_TH_BUDGET:
        return "an integer";
    case S_TEMPERATURE:
    case S_TOP_P:
        return "a number";
    case S_STREAM:
    case S_B_IS_ERROR:
        return "a boolean";
    case S_SYSTEM:
    case S_MSG_CONTENT:
    case S_B_CONTENT:
        return "a string or an array";
    case S_MESSAGES:
    case S_TOOLS:
    case S_STOP_SEQUENCES:
        return "an array";
    case S_ROOT:
    case S_SYSBLOCK:
    case S_MESSAGE:
    case S_BLOCK:
    case S_B_SOURCE:
    case S_B_INPUT:
    case S_TOOL:
    case S_T_INPUT_SCHEMA:
    case S_THINKING:
    case S_OUTPUT_CONFIG:
    case S_METADATA:
        return "an object";
    case S_TOOL_CHOICE:
        return "an object or a string";
    case S_B_TITLE:
        return "a string";
    default:
        return "a string";
    }
}

/* ---------- key → slot ---------- */

static uint8_t req_key_slot(k2a_str_t k)
{
    switch (k.len) {
    case 5:
        if (key_is(k, "model"))
            return S_MODEL;
        if (key_is(k, "tools"))
            return S_TOOLS;
        if (key_is(k, "top_p"))
            return S_TOP_P;
        break;
    case 6:
        if (key_is(k, "system"))
            return S_SYSTEM;
        if (key_is(k, "stream"))
            return S_STREAM;
        break;
    case 8:
        if (key_is(k, "messages"))
            return S_MESSAGES;
        if (key_is(k, "thinking"))
            return S_THINKING;
        if (key_is(k, "metadata"))
            return S_METADATA;
        break;
    case 10:
        if (key_is(k, "max_tokens"))
            return S_MAX_TOKENS;
        break;
    case 11:
        if (key_is(k, "tool_choice"))
            return S_TOOL_CHOICE;
        if (key_is(k, "temperature"))
            return S_TEMPERATURE;
        break;
    case 13:
        if (key_is(k, "output_config"))
            return S_OUTPUT_CONFIG;
        break;
    case 14:
        if (key_is(k, "stop_sequences"))
            return S_STOP_SEQUENCES;
        break;
    }
    return S_IGNORE;
}

static uint8_t block_key_slot(k2a_str_t k)
{
    switch (k.len) {
    case 2:
        if (key_is(k, "id"))
            return S_B_ID;
        break;
    case 4:
        if (key_is(k, "type"))
            return S_B_TYPE;
        if (key_is(k, "text"))
            return S_B_TEXT;
        if (key_is(k, "name"))
            return S_B_NAME;
        if (key_is(k, "data"))
            return S_B_DATA;
        break;
    case 5:
        if (key_is(k, "input"))
            return S_B_INPUT;
        if (key_is(k, "title"))
            return S_B_TITLE;
        break;
    case 6:
        if (key_is(k, "source"))
            return S_B_SOURCE;
        break;
    case 7:
        if (key_is(k, "content"))
            return S_B_CONTENT;
        break;
    case 8:
        if (key_is(k, "thinking"))
            return S_B_THINKING;
        if (key_is(k, "is_error"))
            return S_B_IS_ERROR;
        break;
    case 9:
        if (key_is(k, "signature"))
            return S_B_SIGNATURE;
        break;
    case 11:
        if (key_is(k, "tool_use_id"))
            return S_B_TOOL_USE_ID;
        break;
    }
    return S_IGNORE;
}

static uint8_t key_slot(frame_t *f, k2a_str_t k)
{
    switch (f->ctx) {
    case C_REQ:
        return req_key_slot(k);
    case C_SYSBLOCK:
        return key_is(k, "type") ? S_SYS_TYPE : key_is(k, "text") ? S_SYS_TEXT : S_IGNORE;
    case C_MESSAGE:
        return key_is(k, "role") ? S_MSG_ROLE : key_is(k, "content") ? S_MSG_CONTENT : S_IGNORE;
    case C_BLOCK:
        return block_key_slot(k);
    case C_SOURCE:
        if (key_is(k, "type"))
            return S_SRC_TYPE;
        if (key_is(k, "media_type"))
            return S_SRC_MEDIA_TYPE;
        if (key_is(k, "data"))
            return S_SRC_DATA;
        if (key_is(k, "url"))
            return S_SRC_URL;
        return S_IGNORE;
    case C_TOOL:
        if (key_is(k, "name"))
            return S_T_NAME;
        if (key_is(k, "description"))
            return S_T_DESCRIPTION;
        if (key_is(k, "type"))
            return S_T_TYPE;
        if (key_is(k, "input_schema"))
            return S_T_INPUT_SCHEMA;
        return S_IGNORE;
    case C_TOOL_CHOICE:
        return key_is(k, "type") ? S_TC_TYPE : key_is(k, "name") ? S_TC_NAME : S_IGNORE;
    case C_THINKING:
        if (key_is(k, "type"))
            return S_TH_TYPE;
        if (key_is(k, "budget_tokens"))
            return S_TH_BUDGET;
        if (key_is(k, "display"))
            return S_TH_DISPLAY;
        return S_IGNORE;
    case C_OUTPUT_CONFIG:
        return key_is(k, "effort") ? S_OC_EFFORT : S_IGNORE;
    case C_METADATA:
        return key_is(k, "user_id") ? S_MD_USER_ID : S_IGNORE;
    }
    return S_IGNORE;
}

/* ---------- numbers ---------- */

static bool parse_double(const char *s, size_t l, double *out)
{
    char tmp[64];
    if (l == 0 || l >= sizeof(tmp))
        return false;
    memcpy(tmp, s, l);
    tmp[l] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + l || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool parse_int(const char *s, size_t l, int64_t *out)
{
    double v;
    if (!parse_double(s, l, &v) || v != floor(v) || v > 9007199254740992.0 || v < -9007199254740992.0)
        return false;
    *out = (int64_t)v;
    return true;
}

/* ---------- value starts: containers ---------- */

static void start_capture(dec_t *d, uint8_t slot)
{
    d->skip = 1;
    d->cap_slot = slot;
    d->cap_start = yajl_get_bytes_consumed(d->h) - 1; /* the '{' just consumed */
}

static void start_skip(dec_t *d)
{
    d->skip = 1;
    d->cap_slot = S_IGNORE;
}

static void reset_block(blockb_t *b)
{
    memset(b, 0, sizeof(*b));
}

static int open_map(dec_t *d)
{
    uint8_t slot = cur_slot(d);
    frame_t *f = top(d);
    switch (slot) {
    case S_ROOT:
        d->root_seen = true;
        return push_frame(d, C_REQ, false, 0, 0);
    case S_SYSBLOCK:
        if (d->req->nsystem >= d->limits->max_system_blocks)
            return fail_limit(d, "system blocks", d->limits->max_system_blocks);
        memset(&d->sys, 0, sizeof(d->sys));
        return push_frame(d, C_SYSBLOCK, false, 0, 0);
    case S_MESSAGE:
        if (d->req->nmessages >= d->limits->max_messages)
            return fail_limit(d, "messages", d->limits->max_messages);
        memset(&d->msg, 0, sizeof(d->msg));
        return push_frame(d, C_MESSAGE, false, 0, 0);
    case S_BLOCK:
        if (++d->nblocks_total > d->limits->max_blocks)
            return fail_limit(d, "content blocks", d->limits->max_blocks);
        reset_block(blk_at(d, f->level));
        return push_frame(d, C_BLOCK, false, 0, f->level);
    case S_B_SOURCE:
        cur_blk(d)->has_source = true;
        return push_frame(d, C_SOURCE, false, 0, f->level);
    case S_B_INPUT:
        cur_blk(d)->has_input = true;
        start_capture(d, slot);
        return 1;
    case S_TOOL:
        if (d->req->ntools >= d->limits->max_tools)
            return fail_limit(d, "tools", d->limits->max_tools);
        memset(&d->tool, 0, sizeof(d->tool));
        return push_frame(d, C_TOOL, false, 0, 0);
    case S_T_INPUT_SCHEMA:
        start_capture(d, slot);
        return 1;
    case S_TOOL_CHOICE:
        memset(&d->tc, 0, sizeof(d->tc));
        return push_frame(d, C_TOOL_CHOICE, false, 0, 0);
    case S_THINKING:
        memset(&d->th, 0, sizeof(d->th));
        return push_frame(d, C_THINKING, false, 0, 0);
    case S_OUTPUT_CONFIG:
        return push_frame(d, C_OUTPUT_CONFIG, false, 0, 0);
    case S_METADATA:
        return push_frame(d, C_METADATA, false, 0, 0);
    case S_IGNORE:
        start_skip(d);
        return 1;
    default:
        if (!wrong_type(d, slot, slot_expect(slot)))
            return 0;
        start_skip(d);
        return 1;
    }
}

static int open_array(dec_t *d)
{
    uint8_t slot = cur_slot(d);
    frame_t *f = top(d);
    switch (slot) {
    case S_SYSTEM:
        return push_frame(d, C_SYSTEM_ARR, true, S_SYSBLOCK, 0);
    case S_MESSAGES:
        d->has_messages = true;
        return push_frame(d, C_MESSAGES_ARR, true, S_MESSAGE, 0);
    case S_MSG_CONTENT:
        d->msg.content_kind = 2;
        return push_frame(d, C_CONTENT_ARR, true, S_BLOCK, 1);
    case S_B_CONTENT:
        if (f->level >= BLOCK_LEVELS) {
            start_skip(d); /* content of a nested block: nothing we use */
            return 1;
        }
        cur_blk(d)->content_kind = 2;
        return push_frame(d, C_CONTENT_ARR, true, S_BLOCK, (uint8_t)(f->level + 1));
    case S_TOOLS:
        return push_frame(d, C_TOOLS_ARR, true, S_TOOL, 0);
    case S_STOP_SEQUENCES:
        return push_frame(d, C_STOP_ARR, true, S_STOP, 0);
    case S_IGNORE:
        start_skip(d);
        return 1;
    default:
        if (!wrong_type(d, slot, slot_expect(slot)))
            return 0;
        start_skip(d);
        return 1;
    }
}

static int on_start_map(void *ctx)
{
    dec_t *d = ctx;
    if (++d->depth > d->limits->max_depth)
        return fail(d, K2A_EJSON_DEPTH, "request body: JSON nested deeper than %u levels", d->limits->max_depth);
    if (d->skip != 0) {
        ++d->skip;
        return 1;
    }
    return open_map(d);
}

static int on_start_array(void *ctx)
{
    dec_t *d = ctx;
    if (++d->depth > d->limits->max_depth)
        return fail(d, K2A_EJSON_DEPTH, "request body: JSON nested deeper than %u levels", d->limits->max_depth);
    if (d->skip != 0) {
        ++d->skip;
        return 1;
    }
    if (d->nframes == 0)
        return fail_type(d, "a JSON object");
    return open_array(d);
}

/* ---------- value ends: containers ---------- */

static int finish_capture(dec_t *d)
{
    size_t end = yajl_get_bytes_consumed(d->h);
    if (end <= d->cap_start || end > d->len || d->body[d->cap_start] != '{' || d->body[end - 1] != '}')
        return fail(d, K2A_EINTERNAL, "internal error while capturing a JSON value");
    size_t n = end - d->cap_start;
    if (n > d->limits->max_json_value_bytes) {
        char path[256];
        value_path(d, path, sizeof(path));
        return fail(d, K2A_ETOOBIG, "%s: JSON value of %zu bytes exceeds the limit of %zu bytes", path, n,
                    d->limits->max_json_value_bytes);
    }
    k2a_str_t v = k2a_str(d->body + d->cap_start, n);
    if (!k2a_json_is_compact(v.base, v.len)) {
        int r = k2a_json_reserialize(d->arena, v.base, v.len, d->limits->max_json_value_bytes, 0, &v, NULL);
        if (r == K2A_ENOMEM)
            return fail_nomem(d);
        if (r != 0)
            return fail(d, r, "internal error while compacting a JSON value");
    }
    if (d->cap_slot == S_B_INPUT)
        cur_blk(d)->input = v;
    else
        d->tool.input_schema = v;
    return 1;
}

static bool is_image_media_type(k2a_str_t t)
{
    return key_is(t, "image/png") || key_is(t, "image/jpeg") || key_is(t, "image/gif") || key_is(t, "image/webp");
}

static const unsigned type_uses[] = {
    /* K2A_BLOCK_TEXT */ F_TEXT,
    /* K2A_BLOCK_IMAGE */ F_SOURCE,
    /* K2A_BLOCK_TOOL_USE */ F_ID | F_NAME | F_INPUT,
    /* K2A_BLOCK_TOOL_RESULT */ F_TOOL_USE_ID | F_CONTENT | F_IS_ERROR,
    /* K2A_BLOCK_THINKING */ F_THINKING | F_SIGNATURE,
    /* K2A_BLOCK_REDACTED_THINKING */ F_DATA,
    /* K2A_BLOCK_DOCUMENT */ F_SOURCE | F_TITLE,
};

static int block_kind(k2a_str_t t)
{
    if (key_is(t, "text"))
        return K2A_BLOCK_TEXT;
    if (key_is(t, "image"))
        return K2A_BLOCK_IMAGE;
    if (key_is(t, "tool_use"))
        return K2A_BLOCK_TOOL_USE;
    if (key_is(t, "tool_result"))
        return K2A_BLOCK_TOOL_RESULT;
    if (key_is(t, "thinking"))
        return K2A_BLOCK_THINKING;
    if (key_is(t, "redacted_thinking"))
        return K2A_BLOCK_REDACTED_THINKING;
    if (key_is(t, "document"))
        return K2A_BLOCK_DOCUMENT;
    return -1;
}

/* Builds the IR block of a closed block object (top frame C_BLOCK). Returns 0 on error, 1 otherwise. */
static int finish_block(dec_t *d)
{
    frame_t *f = top(d);
    uint8_t level = f->level;
    blockb_t *b = blk_at(d, level);
    blocklist_t *list = level == 1 ? &d->msg.blocks : &blk_at(d, 1)->content;
    if (!b->has_type)
        return fail_missing(d, "type");
    int kind = block_kind(b->type);
    if (kind < 0) {
        k2a_debug("anthropic request: dropping content block of type \"%.*s\"", (int)(b->type.len < 64 ? b->type.len : 64),
                  b->type.base);
        return 1;
    }
    if (level == BLOCK_LEVELS && kind != K2A_BLOCK_TEXT && kind != K2A_BLOCK_IMAGE && kind != K2A_BLOCK_DOCUMENT) {
        k2a_debug("anthropic request: dropping a \"%.*s\" block nested in a tool_result", (int)b->type.len, b->type.base);
        return 1;
    }
    if ((b->bad_field & type_uses[kind]) != 0)
        return fail(d, K2A_EJSON_TYPE, "%s: expected %s", b->bad_path, b->bad_expect);
    if ((kind == K2A_BLOCK_IMAGE || kind == K2A_BLOCK_DOCUMENT) && b->has_source && !k2a_str_is_set(b->src_type))
        return fail_missing(d, "source.type");
    k2a_ir_block_t ob;
    memset(&ob, 0, sizeof(ob));
    ob.kind = kind;
    switch (kind) {
    case K2A_BLOCK_TEXT:
        if (!k2a_str_is_set(b->text))
            return fail_missing(d, "text");
        ob.text = b->text;
        break;
    case K2A_BLOCK_IMAGE:
        if (!b->has_source)
            return fail_missing(d, "source");
        if (!key_is(b->src_type, "base64"))
            return fail_object(
                d, K2A_EIMAGE_URL, "source", "image source type \"%.*s\" is not supported: only base64 image data is supported",
                (int)(b->src_type.len < 32 ? b->src_type.len : 32), b->src_type.base != NULL ? b->src_type.base : "");
        if (!k2a_str_is_set(b->src_media_type))
            return fail_missing(d, "source.media_type");
        if (!k2a_str_is_set(b->src_data))
            return fail_missing(d, "source.data");
        if (!is_image_media_type(b->src_media_type))
            return fail_object(d, K2A_EIMAGE_INVALID, "source.media_type",
                               "unsupported image type \"%.*s\" (supported: image/jpeg, image/png, image/gif, image/webp)",
                               (int)(b->src_media_type.len < 64 ? b->src_media_type.len : 64), b->src_media_type.base);
        ob.media_type = b->src_media_type;
        ob.data = b->src_data;
        break;
    case K2A_BLOCK_TOOL_USE:
        if (!k2a_str_is_set(b->id))
            return fail_missing(d, "id");
        if (!k2a_str_is_set(b->name))
            return fail_missing(d, "name");
        ob.id = b->id;
        ob.name = b->name;
        ob.input = b->has_input && k2a_str_is_set(b->input) ? b->input : K2A_STRLIT("{}");
        break;
    case K2A_BLOCK_TOOL_RESULT:
        if (!k2a_str_is_set(b->tool_use_id))
            return fail_missing(d, "tool_use_id");
        ob.tool_use_id = b->tool_use_id;
        ob.is_error = b->is_error;
        if (b->content_kind == 1) {
            k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
            if (t == NULL)
                return fail_nomem(d);
            t->kind = K2A_BLOCK_TEXT;
            t->text = b->content_str;
            ob.content = t;
            ob.ncontent = 1;
        } else if (b->content_kind == 2) {
            ob.content = b->content.v;
            ob.ncontent = b->content.n;
        }
        break;
    case K2A_BLOCK_THINKING:
        ob.text = k2a_str_is_set(b->thinking) ? b->thinking : K2A_STRLIT("");
        ob.signature = b->signature;
        break;
    case K2A_BLOCK_REDACTED_THINKING:
        ob.text = k2a_str_is_set(b->data) ? b->data : K2A_STRLIT("");
        break;
    case K2A_BLOCK_DOCUMENT:
        if (!b->has_source)
            return fail_missing(d, "source");
        if (!key_is(b->src_type, "text"))
            return fail_object(d, K2A_EBAD_PARAM, "source.type",
                               "document source \"%.*s\" is not supported: only text documents (source.type \"text\") are",
                               (int)(b->src_type.len < 32 ? b->src_type.len : 32),
                               b->src_type.base != NULL ? b->src_type.base : "");
        if (!k2a_str_is_set(b->src_data))
            return fail_missing(d, "source.data");
        ob.text = b->src_data;
        ob.name = b->title;
        if (level == 2) { /* inside a tool_result the IR holds TEXT/IMAGE only */
            ob.kind = K2A_BLOCK_TEXT;
            ob.name = K2A_STR_NULL;
        }
        break;
    }
    if (!push_block(d, list, &ob))
        return fail_nomem(d);
    return 1;
}

static int finish_message(dec_t *d)
{
    k2a_ir_message_t m;
    memset(&m, 0, sizeof(m));
    if (!d->msg.has_role)
        return fail_missing(d, "role");
    if (key_is(d->msg.role, "user"))
        m.role = K2A_ROLE_USER;
    else if (key_is(d->msg.role, "assistant"))
        m.role = K2A_ROLE_ASSISTANT;
    else if (key_is(d->msg.role, "system"))
        m.role = K2A_ROLE_SYSTEM;
    else
        return fail_object(d, K2A_EBAD_PARAM, "role", "must be \"user\", \"assistant\" or \"system\", not \"%.*s\"",
                           (int)(d->msg.role.len < 32 ? d->msg.role.len : 32), d->msg.role.base);
    if (d->msg.content_kind == 0)
        return fail_missing(d, "content");
    if (d->msg.content_kind == 1) {
        k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
        if (t == NULL)
            return fail_nomem(d);
        t->kind = K2A_BLOCK_TEXT;
        t->text = d->msg.content_str;
        m.blocks = t;
        m.nblocks = 1;
    } else {
        m.blocks = d->msg.blocks.v;
        m.nblocks = d->msg.blocks.n;
    }
    k2a_ir_request_t *r = d->req;
    if (r->nmessages == d->msg_cap) {
        k2a_ir_message_t *v = k2a_arena_grow(d->arena, r->messages, sizeof(*v), r->nmessages, &d->msg_cap);
        if (v == NULL)
            return fail_nomem(d);
        r->messages = v;
    }
    r->messages[r->nmessages++] = m;
    return 1;
}

static bool is_web_search_name(k2a_str_t n)
{
    return key_is(n, "web_search") || key_is(n, "websearch");
}

static int finish_tool(dec_t *d)
{
    if (d->tool.has_type && !key_is(d->tool.type, "custom")) {
        k2a_debug("anthropic request: dropping server tool of type \"%.*s\"", (int)(d->tool.type.len < 64 ? d->tool.type.len : 64),
                  d->tool.type.base);
        return 1;
    }
    if (!d->tool.has_name)
        return fail_missing(d, "name");
    if (d->tool.name.len == 0)
        return fail_object(d, K2A_EBAD_PARAM, "name", "must not be empty");
    if (is_web_search_name(d->tool.name)) {
        k2a_debug("anthropic request: dropping tool \"%.*s\" (Kiro has no web search)", (int)d->tool.name.len, d->tool.name.base);
        return 1;
    }
    k2a_ir_request_t *r = d->req;
    if (r->ntools == d->tools_cap) {
        k2a_ir_tool_t *v = k2a_arena_grow(d->arena, r->tools, sizeof(*v), r->ntools, &d->tools_cap);
        if (v == NULL)
            return fail_nomem(d);
        r->tools = v;
    }
    k2a_ir_tool_t *t = &r->tools[r->ntools++];
    t->name = d->tool.name;
    t->description = k2a_str_is_set(d->tool.description) ? d->tool.description : K2A_STRLIT("");
    t->input_schema = d->tool.input_schema;
    return 1;
}

static int finish_sysblock(dec_t *d)
{
    if (d->sys.has_type && !key_is(d->sys.type, "text")) {
        k2a_debug("anthropic request: dropping system block of type \"%.*s\"", (int)(d->sys.type.len < 64 ? d->sys.type.len : 64),
                  d->sys.type.base);
        return 1;
    }
    if (!k2a_str_is_set(d->sys.text))
        return fail_missing(d, "text");
    k2a_ir_request_t *r = d->req;
    if (r->nsystem == d->sys_cap) {
        k2a_ir_block_t *v = k2a_arena_grow(d->arena, r->system, sizeof(*v), r->nsystem, &d->sys_cap);
        if (v == NULL)
            return fail_nomem(d);
        r->system = v;
    }
    k2a_ir_block_t *b = &r->system[r->nsystem++];
    memset(b, 0, sizeof(*b));
    b->kind = K2A_BLOCK_TEXT;
    b->text = d->sys.text;
    return 1;
}

static int finish_tool_choice(dec_t *d)
{
    k2a_ir_request_t *r = d->req;
    k2a_str_t t = d->tc.type;
    if (!k2a_str_is_set(t))
        return fail_missing(d, "type");
    if (key_is(t, "auto")) {
        r->tool_choice = K2A_TOOL_CHOICE_AUTO;
    } else if (key_is(t, "any")) {
        r->tool_choice = K2A_TOOL_CHOICE_ANY;
    } else if (key_is(t, "none")) {
        r->tool_choice = K2A_TOOL_CHOICE_NONE;
    } else if (key_is(t, "tool")) {
        if (!k2a_str_is_set(d->tc.name))
            return fail_missing(d, "name");
        r->tool_choice = K2A_TOOL_CHOICE_TOOL;
        r->tool_choice_name = d->tc.name;
    } else {
        return fail_object(d, K2A_EBAD_PARAM, "type", "must be \"auto\", \"any\", \"tool\" or \"none\"");
    }
    return 1;
}

static int finish_thinking(dec_t *d)
{
    k2a_ir_request_t *r = d->req;
    k2a_str_t t = d->th.type;
    if (!k2a_str_is_set(t))
        return fail_missing(d, "type");
    if (key_is(t, "enabled")) {
        r->thinking.mode = K2A_THINKING_ENABLED;
        if (d->th.budget < 0)
            return fail_object(d, K2A_EBAD_PARAM, "budget_tokens", "must not be negative");
        r->thinking.budget_tokens = d->th.budget;
    } else if (key_is(t, "adaptive")) {
        r->thinking.mode = K2A_THINKING_ADAPTIVE;
    } else if (key_is(t, "disabled")) {
        r->thinking.mode = K2A_THINKING_OFF;
    } else {
        return fail_object(d, K2A_EBAD_PARAM, "type", "must be \"enabled\", \"adaptive\" or \"disabled\"");
    }
    r->thinking.display_omitted = key_is(d->th.display, "omitted");
    return 1;
}

static int close_frame(dec_t *d)
{
    frame_t *f = top(d);
    int ok = 1;
    switch (f->ctx) {
    case C_SYSBLOCK:
        ok = finish_sysblock(d);
        break;
    case C_MESSAGE:
        ok = finish_message(d);
        break;
    case C_BLOCK:
        ok = finish_block(d);
        break;
    case C_TOOL:
        ok = finish_tool(d);
        break;
    case C_TOOL_CHOICE:
        ok = finish_tool_choice(d);
        break;
    case C_THINKING:
        ok = finish_thinking(d);
        break;
    default:
        break;
    }
    if (!ok)
        return 0;
    --d->nframes;
    value_done(d);
    return 1;
}

static int on_end_map(void *ctx)
{
    dec_t *d = ctx;
    --d->depth;
    if (d->skip != 0) {
        if (--d->skip == 0) {
            if (d->cap_slot != S_IGNORE && !finish_capture(d))
                return 0;
            value_done(d);
        }
        return 1;
    }
    return close_frame(d);
}

static int on_end_array(void *ctx)
{
    dec_t *d = ctx;
    --d->depth;
    if (d->skip != 0) {
        if (--d->skip == 0)
            value_done(d);
        return 1;
    }
    return close_frame(d);
}

/* ---------- keys and scalars ---------- */

static int on_map_key(void *ctx, const unsigned char *k, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    frame_t *f = top(d);
    k2a_str_t key;
    if (!keep_str(d, k, l, &key))
        return fail_nomem(d);
    f->key = key;
    f->slot = key_slot(f, key);
    return 1;
}

static int on_string(void *ctx, const unsigned char *s, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    if (slot == S_IGNORE) {
        value_done(d);
        return 1;
    }
    if (l > d->limits->max_string_bytes) {
        char path[256];
        value_path(d, path, sizeof(path));
        return fail(d, K2A_ETOOBIG, "%s: string of %zu bytes exceeds the limit of %zu bytes", path, l, d->limits->max_string_bytes);
    }
    k2a_str_t v;
    if (!keep_str(d, s, l, &v))
        return fail_nomem(d);
    k2a_ir_request_t *r = d->req;
    blockb_t *b;
    switch (slot) {
    case S_ROOT:
        return fail_type(d, "a JSON object");
    case S_MODEL:
        r->model = v;
        d->has_model = true;
        break;
    case S_SYSTEM: {
        k2a_ir_block_t *t = k2a_arena_calloc(d->arena, sizeof(*t));
        if (t == NULL)
            return fail_nomem(d);
        t->kind = K2A_BLOCK_TEXT;
        t->text = v;
        r->system = t;
        r->nsystem = 1;
        break;
    }
    case S_SYS_TYPE:
        d->sys.type = v;
        d->sys.has_type = true;
        break;
    case S_SYS_TEXT:
        d->sys.text = v;
        break;
    case S_MSG_ROLE:
        d->msg.role = v;
        d->msg.has_role = true;
        break;
    case S_MSG_CONTENT:
        d->msg.content_kind = 1;
        d->msg.content_str = v;
        break;
    case S_B_TYPE:
        b = cur_blk(d);
        b->type = v;
        b->has_type = true;
        break;
    case S_B_TEXT:
        cur_blk(d)->text = v;
        break;
    case S_B_THINKING:
        cur_blk(d)->thinking = v;
        break;
    case S_B_SIGNATURE:
        cur_blk(d)->signature = v;
        break;
    case S_B_DATA:
        cur_blk(d)->data = v;
        break;
    case S_B_ID:
        cur_blk(d)->id = v;
        break;
    case S_B_NAME:
        cur_blk(d)->name = v;
        break;
    case S_B_TOOL_USE_ID:
        cur_blk(d)->tool_use_id = v;
        break;
    case S_B_TITLE:
        cur_blk(d)->title = v;
        break;
    case S_B_CONTENT:
        b = cur_blk(d);
        if (top(d)->level < BLOCK_LEVELS) {
            b->content_kind = 1;
            b->content_str = v;
        }
        break;
    case S_SRC_TYPE:
        cur_blk(d)->src_type = v;
        break;
    case S_SRC_MEDIA_TYPE:
        cur_blk(d)->src_media_type = v;
        break;
    case S_SRC_DATA:
        cur_blk(d)->src_data = v;
        break;
    case S_SRC_URL:
        cur_blk(d)->src_url = v;
        break;
    case S_T_NAME:
        d->tool.name = v;
        d->tool.has_name = true;
        break;
    case S_T_DESCRIPTION:
        d->tool.description = v;
        break;
    case S_T_TYPE:
        d->tool.type = v;
        d->tool.has_type = true;
        break;
    case S_TOOL_CHOICE:
        /* lenient: a bare string ("auto", "any", "none") */
        if (key_is(v, "auto"))
            r->tool_choice = K2A_TOOL_CHOICE_AUTO;
        else if (key_is(v, "any") || key_is(v, "required"))
            r->tool_choice = K2A_TOOL_CHOICE_ANY;
        else if (key_is(v, "none"))
            r->tool_choice = K2A_TOOL_CHOICE_NONE;
        else
            return fail(d, K2A_EBAD_PARAM, "tool_choice: must be an object such as {\"type\":\"auto\"}");
        break;
    case S_TC_TYPE:
        d->tc.type = v;
        break;
    case S_TC_NAME:
        d->tc.name = v;
        break;
    case S_TH_TYPE:
        d->th.type = v;
        break;
    case S_TH_DISPLAY:
        d->th.display = v;
        break;
    case S_OC_EFFORT:
        r->thinking.effort = v;
        break;
    case S_STOP:
        if (r->nstop_sequences >= d->limits->max_stop_sequences)
            return fail_limit(d, "stop sequences", d->limits->max_stop_sequences);
        if (r->nstop_sequences == d->stop_cap) {
            k2a_str_t *nv = k2a_arena_grow(d->arena, r->stop_sequences, sizeof(*nv), r->nstop_sequences, &d->stop_cap);
            if (nv == NULL)
                return fail_nomem(d);
            r->stop_sequences = nv;
        }
        r->stop_sequences[r->nstop_sequences++] = v;
        break;
    case S_MD_USER_ID:
        r->user_id_raw = v;
        r->session_id = k2a_anthropic_session_from_user_id(v, d->arena);
        break;
    default:
        if (!wrong_type(d, slot, slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_number(void *ctx, const char *s, size_t l)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    k2a_ir_request_t *r = d->req;
    int64_t i;
    double v;
    switch (slot) {
    case S_IGNORE:
        break;
    case S_ROOT:
        return fail_type(d, "a JSON object");
    case S_MAX_TOKENS:
        if (!parse_int(s, l, &i))
            return fail_type(d, "an integer");
        if (i < 0)
            return fail(d, K2A_EBAD_PARAM, "max_tokens: must not be negative");
        r->max_tokens = i;
        break;
    case S_TH_BUDGET:
        if (!parse_int(s, l, &i))
            return fail_type(d, "an integer");
        d->th.budget = i;
        break;
    case S_TEMPERATURE:
    case S_TOP_P:
        if (!parse_double(s, l, &v))
            return fail_type(d, "a number");
        if (slot == S_TEMPERATURE) {
            r->has_temperature = true;
            r->temperature = v;
        } else {
            r->has_top_p = true;
            r->top_p = v;
        }
        break;
    default:
        if (!wrong_type(d, slot, slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_boolean(void *ctx, int b)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    uint8_t slot = cur_slot(d);
    switch (slot) {
    case S_IGNORE:
        break;
    case S_ROOT:
        return fail_type(d, "a JSON object");
    case S_STREAM:
        d->req->stream = b != 0;
        break;
    case S_B_IS_ERROR:
        cur_blk(d)->is_error = b != 0;
        break;
    default:
        if (!wrong_type(d, slot, slot_expect(slot)))
            return 0;
        break;
    }
    value_done(d);
    return 1;
}

static int on_null(void *ctx)
{
    dec_t *d = ctx;
    if (d->skip != 0)
        return 1;
    if (cur_slot(d) == S_ROOT)
        return fail_type(d, "a JSON object");
    /* null counts as absent; array elements that must be objects are still rejected */
    switch (cur_slot(d)) {
    case S_SYSBLOCK:
    case S_MESSAGE:
    case S_BLOCK:
    case S_TOOL:
        return fail_type(d, "an object");
    case S_STOP:
        return fail_type(d, "a string");
    }
    value_done(d);
    return 1;
}

static const yajl_callbacks decoder_callbacks = {on_null,      on_boolean, NULL,       NULL,           on_number,   on_string,
                                                 on_start_map, on_map_key, on_end_map, on_start_array, on_end_array};

/* ---------- entry points ---------- */

static void syntax_error(dec_t *d, yajl_status st)
{
    size_t off = yajl_get_bytes_consumed(d->h);
    char path[256];
    format_path(d, d->nframes, path, sizeof(path));
    unsigned char *msg = yajl_get_error(d->h, 0, (const unsigned char *)d->body, d->len);
    char clean[160] = "invalid JSON";
    if (msg != NULL) {
        const char *m = (const char *)msg;
        if (strncmp(m, "parse error: ", 13) == 0)
            m += 13;
        size_t n = strcspn(m, "\n");
        if (n >= sizeof(clean))
            n = sizeof(clean) - 1;
        memcpy(clean, m, n);
        clean[n] = '\0';
        yajl_free_error(d->h, msg);
    }
    (void)st;
    if (path[0] != '\0')
        fail(d, K2A_EJSON_SYNTAX, "malformed JSON at byte %zu (in %s): %s", off, path, clean);
    else
        fail(d, K2A_EJSON_SYNTAX, "malformed JSON at byte %zu: %s", off, clean);
}

int k2a_anthropic_decode(const char *body, size_t len, const k2a_convert_limits_t *limits, k2a_arena_t *arena,
                         k2a_ir_request_t *out, k2a_convert_error_t *err)
{
    k2a_convert_limits_t deflimits;
    if (limits == NULL) {
        deflimits = k2a_convert_limits_default();
        limits = &deflimits;
    }
    k2a_convert_error_clear(err);
    memset(out, 0, sizeof(*out));
    out->dialect = K2A_DIALECT_ANTHROPIC;

    dec_t *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
    d->body = body;
    d->len = len;
    d->limits = limits;
    d->arena = arena;
    d->req = out;
    d->err = err;
    int ret = 0;
    if ((d->h = yajl_alloc(&decoder_callbacks, NULL, d)) == NULL) {
        ret = k2a_convert_error_set(err, K2A_ENOMEM, "out of memory");
        goto Exit;
    }
    if (len == 0) {
        ret = k2a_convert_error_set(err, K2A_EJSON_SYNTAX, "request body is empty");
        goto Exit;
    }
    /* the whole body in ONE yajl_parse call: a split string would be re-lexed from its start (feasibility.md §0.1) */
    yajl_status st = yajl_parse(d->h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(d->h);
    if (st != yajl_status_ok) {
        if (d->code == 0)
            syntax_error(d, st);
        ret = d->code;
        goto Exit;
    }
    if (!d->root_seen) {
        ret = k2a_convert_error_set(err, K2A_EJSON_TYPE, "request body: expected a JSON object");
        goto Exit;
    }
    if (!d->has_model) {
        ret = k2a_convert_error_set(err, K2A_EMISSING_FIELD, "model: missing");
        goto Exit;
    }
    if (!d->has_messages) {
        ret = k2a_convert_error_set(err, K2A_EMISSING_FIELD, "messages: missing");
        goto Exit;
    }
Exit:
    if (d->h != NULL)
        yajl_free(d->h);
    free(d);
    return ret;
}

/* ---------- metadata.user_id → session id ---------- */

static bool looks_like_uuid(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; ++i) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

typedef struct st_session_scan_t {
    unsigned depth;
    bool want;
    const unsigned char *val;
    size_t len;
} session_scan_t;

static int ss_start_map(void *ctx)
{
    session_scan_t *s = ctx;
    s->want = false;
    return ++s->depth <= 8;
}

static int ss_end_map(void *ctx)
{
    --((session_scan_t *)ctx)->depth;
    return 1;
}

static int ss_start_array(void *ctx)
{
    session_scan_t *s = ctx;
    s->want = false;
    return ++s->depth <= 8;
}

static int ss_key(void *ctx, const unsigned char *k, size_t l)
{
    session_scan_t *s = ctx;
    s->want = s->depth == 1 && l == 10 && memcmp(k, "session_id", 10) == 0;
    return 1;
}

static int ss_string(void *ctx, const unsigned char *v, size_t l)
{
    session_scan_t *s = ctx;
    if (s->want && s->val == NULL && looks_like_uuid((const char *)v, l)) {
        s->val = v;
        s->len = l;
        return 0; /* found: stop (v points into the input, which is escape-free for a UUID) */
    }
    s->want = false;
    return 1;
}

static int ss_scalar(void *ctx)
{
    ((session_scan_t *)ctx)->want = false;
    return 1;
}

static int ss_bool(void *ctx, int b)
{
    return ss_scalar(ctx);
}

static int ss_number(void *ctx, const char *s, size_t l)
{
    return ss_scalar(ctx);
}

static const yajl_callbacks session_callbacks = {ss_scalar,    ss_bool, NULL,       NULL,           ss_number, ss_string,
                                                 ss_start_map, ss_key,  ss_end_map, ss_start_array, ss_end_map};

k2a_str_t k2a_anthropic_session_from_user_id(k2a_str_t user_id, k2a_arena_t *arena)
{
    if (user_id.len == 0 || user_id.len > 4096)
        return K2A_STR_NULL;
    if (user_id.base[0] == '{') {
        session_scan_t s;
        memset(&s, 0, sizeof(s));
        yajl_handle h = yajl_alloc(&session_callbacks, NULL, &s);
        if (h == NULL)
            return K2A_STR_NULL;
        yajl_parse(h, (const unsigned char *)user_id.base, user_id.len);
        yajl_free(h);
        if (s.val != NULL) {
            const char *p = (const char *)s.val;
            if (p >= user_id.base && p + s.len <= user_id.base + user_id.len)
                return k2a_str(p, s.len);
            return k2a_arena_strdup_str(arena, k2a_str(p, s.len));
        }
        return K2A_STR_NULL;
    }
    /* user_<hash>_account_<uuid?>_session_<uuid> */
    const char *p = user_id.base, *end = user_id.base + user_id.len;
    const char *found = NULL;
    for (const char *q = p; q + 8 <= end; ++q) {
        if (memcmp(q, "session_", 8) == 0)
            found = q + 8;
    }
    if (found != NULL && end - found >= 36 && looks_like_uuid(found, 36))
        return k2a_str(found, 36);
    return K2A_STR_NULL;
}
