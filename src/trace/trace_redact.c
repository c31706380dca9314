/*
 * Redaction of traces (trace.h): ARN account numbers and machine ids masked in any text, credentials in headers, the
 * texts of prompts, tools and results replaced by their lengths in JSON bodies and in EventStream payloads (frames
 * encoded again by the project's EventStream encoder, so the result is still a valid stream).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "core/log.h"
#include "eventstream/eventstream.h"
#include "trace/trace.h"

#define MAX_DEPTH 64

static const char *str_of(yajl_val v)
{
    const char *s = v != NULL ? v->u.string : NULL;
    return s != NULL ? s : "";
}

void k2a_trace_mask_text(k2a_buf_t *out, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        if (isxdigit((unsigned char)s[i]) && (i == 0 || !isxdigit((unsigned char)s[i - 1]))) {
            while (j < len && isxdigit((unsigned char)s[j]))
                ++j;
            if (j - i >= 32) { /* a machine id or another long hex identifier: the last 4 stay */
                k2a_buf_appendstr(out, "****");
                k2a_buf_append(out, s + j - 4, 4);
                i = j;
                continue;
            }
            j = i;
        }
        if (isdigit((unsigned char)s[i]) && (i == 0 || !isdigit((unsigned char)s[i - 1]))) {
            while (j < len && isdigit((unsigned char)s[j]))
                ++j;
            if (j - i == 12) { /* an AWS account number (in an ARN, also URL-encoded): the last 4 stay */
                k2a_buf_appendstr(out, "****");
                k2a_buf_append(out, s + j - 4, 4);
            } else {
                k2a_buf_append(out, s + i, j - i);
            }
            i = j;
            continue;
        }
        k2a_buf_append(out, s + i, 1);
        ++i;
    }
}

static bool is_credential_header(const char *name, size_t len)
{
    static const char *const names[] = {"authorization", "x-api-key",           "cookie",
                                        "set-cookie",    "proxy-authorization", "x-amz-security-token"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (strlen(names[i]) == len && strncasecmp(names[i], name, len) == 0)
            return true;
    for (size_t i = 0; i + 5 <= len; ++i) /* any *token* / *secret* header */
        if (strncasecmp(name + i, "token", 5) == 0 && !(len == 9 && strncasecmp(name, "tokentype", 9) == 0))
            return true;
    for (size_t i = 0; i + 6 <= len; ++i)
        if (strncasecmp(name + i, "secret", 6) == 0)
            return true;
    return false;
}

void k2a_trace_mask_header(k2a_buf_t *out, const char *name, size_t name_len, const char *value, size_t value_len)
{
    if (is_credential_header(name, name_len)) {
        const char *sp = memchr(value, ' ', value_len); /* keep the scheme: "Bearer ****abcd" */
        if (sp != NULL && sp - value < 16) {
            k2a_buf_append(out, value, (size_t)(sp - value) + 1);
            value_len -= (size_t)(sp - value) + 1;
            value = sp + 1;
        }
        char mask[16];
        k2a_mask_secret(value, value_len, mask, sizeof(mask));
        k2a_buf_appendstr(out, mask);
        return;
    }
    k2a_trace_mask_text(out, value, value_len);
}

/* Keys whose values are the user's or the model's text (or tool data): replaced by their length. */
static bool is_text_key(const char *k)
{
    static const char *const keys[] = {"content", "text",      "description",     "input",         "json",
                                       "bytes",   "signature", "redactedContent", "reasoningText", "toolUseInput"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i)
        if (strcmp(keys[i], k) == 0)
            return true;
    return false;
}

typedef struct st_gen_ctx_t {
    yajl_gen g;
    k2a_buf_t scratch;
    bool keep_text;
} gen_ctx_t;

static void gen_masked(gen_ctx_t *c, const char *s, size_t len)
{
    k2a_buf_reset(&c->scratch);
    k2a_trace_mask_text(&c->scratch, s, len);
    yajl_gen_string(c->g, (const unsigned char *)(c->scratch.base != NULL ? c->scratch.base : ""), c->scratch.len);
}

static size_t json_size(yajl_val v)
{
    /* the length of the value's text is not kept by the tree: count the strings and numbers it holds */
    if (v == NULL)
        return 4;
    if (YAJL_IS_STRING(v))
        return strlen(str_of(v)) + 2;
    if (YAJL_IS_NUMBER(v))
        return strlen(v->u.number.r);
    size_t n = 2;
    if (YAJL_IS_OBJECT(v))
        for (size_t i = 0; i < v->u.object.len; ++i)
            n += strlen(v->u.object.keys[i]) + 4 + json_size(v->u.object.values[i]);
    else if (YAJL_IS_ARRAY(v))
        for (size_t i = 0; i < v->u.array.len; ++i)
            n += 1 + json_size(v->u.array.values[i]);
    else
        n = 5;
    return n;
}

static void gen_value(gen_ctx_t *c, yajl_val v, bool text, int depth)
{
    char len[64];
    if (text && !c->keep_text && (YAJL_IS_STRING(v) || YAJL_IS_OBJECT(v) || YAJL_IS_ARRAY(v))) {
        if (YAJL_IS_STRING(v))
            snprintf(len, sizeof(len), "<%zu bytes>", strlen(str_of(v)));
        else
            snprintf(len, sizeof(len), "<%s of about %zu bytes>", YAJL_IS_OBJECT(v) ? "object" : "array", json_size(v));
        /* a text list (toolResults content [{"text":...}]) keeps its shape: only strings and objects are replaced whole */
        if (YAJL_IS_STRING(v) || depth >= MAX_DEPTH || YAJL_IS_OBJECT(v)) {
            yajl_gen_string(c->g, (const unsigned char *)len, strlen(len));
            return;
        }
    }
    if (v == NULL || YAJL_IS_NULL(v)) {
        yajl_gen_null(c->g);
    } else if (YAJL_IS_STRING(v)) {
        gen_masked(c, str_of(v), strlen(str_of(v)));
    } else if (YAJL_IS_NUMBER(v)) {
        const char *raw = v->u.number.r != NULL ? v->u.number.r : "0";
        k2a_buf_reset(&c->scratch);
        k2a_trace_mask_text(&c->scratch, raw, strlen(raw));
        if (c->scratch.len == strlen(raw) && memcmp(c->scratch.base, raw, c->scratch.len) == 0)
            yajl_gen_number(c->g, raw, strlen(raw));
        else /* a masked number is no number any more: it goes as a string */
            yajl_gen_string(c->g, (const unsigned char *)c->scratch.base, c->scratch.len);
    } else if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        yajl_gen_bool(c->g, YAJL_IS_TRUE(v));
    } else if (depth >= MAX_DEPTH) {
        yajl_gen_null(c->g);
    } else if (YAJL_IS_OBJECT(v)) {
        yajl_gen_map_open(c->g);
        for (size_t i = 0; i < v->u.object.len; ++i) {
            gen_masked(c, v->u.object.keys[i], strlen(v->u.object.keys[i]));
            gen_value(c, v->u.object.values[i], is_text_key(v->u.object.keys[i]), depth + 1);
        }
        yajl_gen_map_close(c->g);
    } else if (YAJL_IS_ARRAY(v)) {
        yajl_gen_array_open(c->g);
        for (size_t i = 0; i < v->u.array.len; ++i)
            gen_value(c, v->u.array.values[i], text, depth + 1);
        yajl_gen_array_close(c->g);
    }
}

int k2a_trace_redact_json(k2a_buf_t *out, const char *json, size_t len, bool keep_text)
{
    k2a_buf_t copy = K2A_BUF_INIT(0);
    if (k2a_buf_append(&copy, json, len) != 0 || k2a_buf_cstr(&copy) == NULL) {
        k2a_buf_dispose(&copy);
        return K2A_ENOMEM;
    }
    yajl_val root = len > 0 ? yajl_tree_parse(copy.base, NULL, 0) : NULL;
    k2a_buf_dispose(&copy);
    if (root == NULL) {
        char note[64];
        snprintf(note, sizeof(note), "<%zu bytes, not JSON>", len);
        return k2a_buf_appendstr(out, note);
    }
    gen_ctx_t c = {.g = yajl_gen_alloc(NULL), .scratch = K2A_BUF_INIT(0), .keep_text = keep_text};
    int r = K2A_ENOMEM;
    if (c.g != NULL) {
        gen_value(&c, root, false, 0);
        const unsigned char *buf;
        size_t n;
        r = yajl_gen_get_buf(c.g, &buf, &n) == yajl_gen_status_ok ? k2a_buf_append(out, buf, n) : K2A_ENOMEM;
        yajl_gen_free(c.g);
    }
    k2a_buf_dispose(&c.scratch);
    yajl_tree_free(root);
    return r;
}

int k2a_trace_redact_eventstream(k2a_buf_t *out, const char *data, size_t len, bool keep_text)
{
    k2a_buf_t payload = K2A_BUF_INIT(0);
    size_t off = 0;
    int r = 0;
    while (off < len) {
        k2a_es_frame_t f;
        intptr_t n = k2a_es_decode_frame(data + off, len - off, K2A_ES_DEFAULT_MAX_FRAME, &f);
        if (n <= 0) {
            r = n == K2A_EINCOMPLETE || n == 0 ? 0 : (int)n; /* a partial last frame is left out */
            break;
        }
        k2a_buf_reset(&payload);
        if ((r = k2a_trace_redact_json(&payload, f.payload, f.payload_len, keep_text)) != 0)
            break;
        /* header values are names of events and types; they go through the text mask all the same */
        k2a_buf_t hv = K2A_BUF_INIT(0);
        k2a_es_header_t h[K2A_ES_MAX_HEADERS];
        size_t offs[K2A_ES_MAX_HEADERS], lens[K2A_ES_MAX_HEADERS];
        for (size_t i = 0; i < f.nheaders; ++i) {
            h[i] = f.headers[i];
            offs[i] = hv.len;
            if (h[i].type == K2A_ES_STRING)
                k2a_trace_mask_text(&hv, h[i].v.s.base, h[i].v.s.len);
            lens[i] = hv.len - offs[i];
        }
        for (size_t i = 0; i < f.nheaders; ++i)
            if (h[i].type == K2A_ES_STRING) {
                h[i].v.s.base = hv.base != NULL ? hv.base + offs[i] : "";
                h[i].v.s.len = (uint32_t)lens[i];
            }
        r = k2a_es_encode(out, h, f.nheaders, payload.base != NULL ? payload.base : "", payload.len);
        k2a_buf_dispose(&hv);
        if (r != 0)
            break;
        off += (size_t)n;
    }
    k2a_buf_dispose(&payload);
    return r;
}
