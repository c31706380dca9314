/*
 * Support of the Anthropic request decoder (see anthropic_req_internal.h): error messages that name the JSON
 * path of the problem, zero-copy string keeping, arena arrays, key → slot lookup and number parsing.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "convert/anthropic_req_internal.h"
#include "convert/json_number.h"

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
void k2a_areq_format_path(const dec_t *d, size_t n, char *out, size_t cap)
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
void k2a_areq_value_path(const dec_t *d, char *out, size_t cap)
{
    k2a_areq_format_path(d, d->nframes, out, cap);
    if (out[0] == '\0')
        snprintf(out, cap, "request body");
}

int k2a_areq_fail(dec_t *d, int code, const char *fmt, ...)
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

int k2a_areq_fail_type(dec_t *d, const char *expect)
{
    char path[256];
    k2a_areq_value_path(d, path, sizeof(path));
    return k2a_areq_fail(d, K2A_EJSON_TYPE, "%s: expected %s", path, expect);
}

/* Missing field `name` of the object whose frame is the top one. */
int k2a_areq_fail_missing(dec_t *d, const char *name)
{
    char path[256];
    k2a_areq_format_path(d, d->nframes - 1, path, sizeof(path));
    if (path[0] == '\0')
        return k2a_areq_fail(d, K2A_EMISSING_FIELD, "%s: missing", name);
    return k2a_areq_fail(d, K2A_EMISSING_FIELD, "%s.%s: missing", path, name);
}

/* An error about the object of the top frame (not one of its fields). */
int k2a_areq_fail_object(dec_t *d, int code, const char *field, const char *fmt, ...)
{
    char path[256], msg[300];
    k2a_areq_format_path(d, d->nframes - 1, path, sizeof(path));
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (field != NULL)
        return k2a_areq_fail(d, code, "%s%s%s: %s", path, path[0] != '\0' ? "." : "", field, msg);
    return k2a_areq_fail(d, code, "%s: %s", path[0] != '\0' ? path : "request body", msg);
}

int k2a_areq_fail_limit(dec_t *d, const char *what, size_t limit)
{
    char path[256];
    k2a_areq_value_path(d, path, sizeof(path));
    return k2a_areq_fail(d, K2A_ETOOBIG, "%s: too many %s (limit %zu)", path, what, limit);
}

int k2a_areq_fail_nomem(dec_t *d)
{
    return k2a_areq_fail(d, K2A_ENOMEM, "request too large for the conversion memory limit");
}

/* ---------- helpers ---------- */

/* Keeps s zero-copy when it points into the body, copies it into the arena otherwise. */
bool k2a_areq_keep_str(dec_t *d, const unsigned char *s, size_t len, k2a_str_t *out)
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

bool k2a_areq_push_block(dec_t *d, blocklist_t *l, const k2a_ir_block_t *b)
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

int k2a_areq_push_frame(dec_t *d, uint8_t ctx, bool is_array, uint8_t elem_slot, uint8_t level)
{
    if (d->nframes == MAX_FRAMES)
        return k2a_areq_fail(d, K2A_EINTERNAL, "decoder frame stack exhausted");
    frame_t *f = &d->frames[d->nframes++];
    f->ctx = ctx;
    f->is_array = is_array;
    f->slot = is_array ? elem_slot : S_IGNORE;
    f->level = level;
    f->key = K2A_STR_NULL;
    f->index = 0;
    return 1;
}

/* A block field of the wrong type: remember it, report it at the end of the block if its type uses it. */
int k2a_areq_defer_type_error(dec_t *d, unsigned field, const char *expect)
{
    blockb_t *b = cur_blk(d);
    if (b->bad_field == 0) {
        b->bad_field = field;
        b->bad_expect = expect;
        k2a_areq_value_path(d, b->bad_path, sizeof(b->bad_path));
    }
    return 1;
}

unsigned k2a_areq_slot_field(uint8_t slot)
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
int k2a_areq_wrong_type(dec_t *d, uint8_t slot, const char *expect)
{
    unsigned f = k2a_areq_slot_field(slot);
    if (f != 0)
        return k2a_areq_defer_type_error(d, f, expect);
    return k2a_areq_fail_type(d, expect);
}

const char *k2a_areq_slot_expect(uint8_t slot)
{
    switch (slot) {
    case S_MAX_TOKENS:
    case S_TH_BUDGET:
    case S_T_MAX_USES:
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

uint8_t k2a_areq_key_slot(frame_t *f, k2a_str_t k)
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
        if (key_is(k, "max_uses"))
            return S_T_MAX_USES;
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

bool k2a_areq_parse_double(const char *s, size_t l, double *out)
{
    char tmp[64];
    if (l == 0 || l >= sizeof(tmp))
        return false;
    if (k2a_json_decimal_fast(s, l, out))
        return true; /* what strtod would read, without it (convert/json_number.h) */
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

bool k2a_areq_parse_int(const char *s, size_t l, int64_t *out)
{
    double v;
    if (!k2a_areq_parse_double(s, l, &v) || v != floor(v) || v > 9007199254740992.0 || v < -9007199254740992.0)
        return false;
    *out = (int64_t)v;
    return true;
}
