/*
 * Reading Kiro payloads (see kiro_resp_internal.h): yajl SAX callbacks that pick the few top-level members the parser
 * uses out of an event, exception or error payload, skipping everything else (nested values included) without
 * building a tree. One handle is reused for a whole response (allow_multiple_values) and replaced after a bad payload.
 * The payloads of nearly every frame ({"content":"..."} and the flat end-of-answer objects) are read without yajl, through
 * the same callbacks. Also the lookup of a frame's type headers, and the classifier of non-200 upstream answers, which
 * reads a small error document with yajl's tree API.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include "convert/json_number.h"
#include "convert/kiro_resp_internal.h"
#include "core/errors.h"

enum {
    KEY_NONE = 0,
    KEY_CONTENT,
    KEY_FOLLOWUP,
    KEY_NAME,
    KEY_ID,
    KEY_INPUT,
    KEY_STOP,
    KEY_USAGE,
    KEY_PCT,
    KEY_MESSAGE,
    KEY_TYPE,
    KEY_REASON,
    KEY_WRAPPER,
    KEY_TEXT,
    KEY_SIGNATURE,
    KEY_REDACTED,
    KEY_STOP_REASON,
    KEY_TOKEN_USAGE,
    KEY_OTHER,
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* ---------- payload parsing (yajl SAX) ---------- */

static int cb_copy(k2a_kiro_resp_t *p, const unsigned char *s, size_t len, size_t *off, size_t *out_len)
{
    *off = p->scratch.len;
    *out_len = len;
    if (len == 0)
        return 1;
    return k2a_buf_append(&p->scratch, s, len) == 0;
}

static int cb_string(void *ctx, const unsigned char *s, size_t len)
{
    k2a_kiro_resp_t *p = ctx;
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->depth == 0) {
        f->ok = false;
        return 0;
    }
    if (f->depth != f->base_depth)
        return 1;
    int key = f->key;
    f->key = KEY_NONE;
    switch (key) {
    case KEY_CONTENT:
        f->has_content = true;
        return cb_copy(p, s, len, &f->content_off, &f->content_len);
    case KEY_FOLLOWUP:
        f->has_followup = f->has_followup || len != 0;
        return 1;
    case KEY_NAME:
        f->has_name = true;
        return cb_copy(p, s, len, &f->name_off, &f->name_len);
    case KEY_ID:
        f->has_id = true;
        return cb_copy(p, s, len, &f->id_off, &f->id_len);
    case KEY_INPUT:
        f->has_input = true;
        f->input_is_object = false;
        return cb_copy(p, s, len, &f->input_off, &f->input_len);
    case KEY_MESSAGE:
        return cb_copy(p, s, len, &f->message_off, &f->message_len);
    case KEY_TYPE:
        return cb_copy(p, s, len, &f->type_off, &f->type_len);
    case KEY_REASON:
        return cb_copy(p, s, len, &f->reason_off, &f->reason_len);
    case KEY_STOP:
        f->stop = k2a__kiro_str_eq((const char *)s, len, "true");
        return 1;
    case KEY_TEXT:
        f->has_text = true;
        return cb_copy(p, s, len, &f->text_off, &f->text_len);
    case KEY_SIGNATURE:
        f->has_signature = true;
        return cb_copy(p, s, len, &f->sig_off, &f->sig_len);
    case KEY_REDACTED:
        f->has_redacted = true;
        return cb_copy(p, s, len, &f->red_off, &f->red_len);
    case KEY_STOP_REASON:
        f->has_stop_reason = true;
        return cb_copy(p, s, len, &f->sr_off, &f->sr_len);
    default:
        return 1;
    }
}

/* A member of metadataEvent's tokenUsage object (the one nested object whose members are read). */
static int token_usage_key(const char *s, size_t len)
{
    static const char *const names[K2A_KIRO_TU_MAX] = {"uncachedInputTokens", "cacheReadInputTokens", "cacheWriteInputTokens",
                                                       "outputTokens", "totalTokens"};
    for (int i = 0; i < K2A_KIRO_TU_MAX; ++i)
        if (k2a__kiro_str_eq(s, len, names[i]))
            return i;
    return -1;
}

static int cb_number(void *ctx, double v)
{
    k2a_kiro_resp_t *p = ctx;
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->depth == 0) {
        f->ok = false;
        return 0;
    }
    if (f->tu_depth != 0 && f->depth == f->tu_depth) {
        if (f->tu_key >= 0 && v >= 0 && v < 1e15) {
            f->tu[f->tu_key] = v;
            f->tu_mask |= 1u << f->tu_key;
        }
        f->tu_key = -1;
        return 1;
    }
    if (f->depth != f->base_depth)
        return 1;
    int key = f->key;
    f->key = KEY_NONE;
    if (key == KEY_USAGE) {
        f->has_usage = true;
        f->usage = v;
    } else if (key == KEY_PCT) {
        f->has_pct = true;
        f->pct = v;
    }
    return 1;
}

static int cb_integer(void *ctx, long long v)
{
    return cb_number(ctx, (double)v);
}

static int cb_boolean(void *ctx, int v)
{
    k2a_kiro_resp_t *p = ctx;
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->depth == 0) {
        f->ok = false;
        return 0;
    }
    if (f->depth != f->base_depth)
        return 1;
    if (f->key == KEY_STOP)
        f->stop = v != 0;
    else if (f->key == KEY_FOLLOWUP)
        f->has_followup = f->has_followup || v != 0;
    f->key = KEY_NONE;
    return 1;
}

static int cb_null(void *ctx)
{
    k2a_kiro_resp_t *p = ctx;
    if (p->f.depth == 0) {
        p->f.ok = false;
        return 0;
    }
    if (p->f.depth == p->f.base_depth)
        p->f.key = KEY_NONE;
    return 1;
}

static int cb_start(k2a_kiro_resp_t *p, bool is_map)
{
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->depth == 0 && !is_map) {
        f->ok = false;
        return 0;
    }
    if (f->depth == f->base_depth) {
        if (f->key == KEY_INPUT && is_map) {
            f->has_input = true;
            f->input_is_object = true;
            f->input_obj_start = yajl_get_bytes_consumed(p->yajl) - 1;
            f->skip_depth = f->depth + 1;
        } else if (f->key == KEY_FOLLOWUP) {
            f->has_followup = true;
        } else if (f->key == KEY_TOKEN_USAGE && is_map && f->tu_depth == 0) {
            f->tu_depth = f->depth + 1; /* {"tokenUsage":{...}}: its numeric members are read */
            f->tu_key = -1;
        } else if (f->key == KEY_WRAPPER && is_map && f->base_depth == 1) {
            f->base_depth = 2; /* {"assistantResponseEvent":{...}}: read the inner object */
        }
        f->key = KEY_NONE;
    }
    ++f->depth;
    return 1;
}

static int cb_start_map(void *ctx)
{
    return cb_start(ctx, true);
}

static int cb_start_array(void *ctx)
{
    return cb_start(ctx, false);
}

static int cb_end(void *ctx)
{
    k2a_kiro_resp_t *p = ctx;
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->skip_depth != 0 && f->depth == f->skip_depth) {
        f->input_obj_end = yajl_get_bytes_consumed(p->yajl);
        f->skip_depth = 0;
    }
    if (f->tu_depth != 0 && f->depth == f->tu_depth)
        f->tu_depth = -1; /* read once: a second tokenUsage object is skipped */
    --f->depth;
    if (f->depth == 0)
        f->complete = true;
    return 1;
}

static int cb_map_key(void *ctx, const unsigned char *k, size_t len)
{
    k2a_kiro_resp_t *p = ctx;
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->tu_depth > 0 && f->depth == f->tu_depth) {
        f->tu_key = token_usage_key((const char *)k, len);
        return 1;
    }
    if (f->depth != f->base_depth)
        return 1;
    const char *s = (const char *)k;
    int key = KEY_OTHER;
    switch (len) {
    case 4:
        if (memcmp(s, "name", 4) == 0)
            key = KEY_NAME;
        else if (memcmp(s, "stop", 4) == 0)
            key = KEY_STOP;
        else if (memcmp(s, "text", 4) == 0)
            key = KEY_TEXT;
        break;
    case 5:
        if (memcmp(s, "input", 5) == 0)
            key = KEY_INPUT;
        else if (memcmp(s, "usage", 5) == 0)
            key = KEY_USAGE;
        break;
    case 6:
        if (memcmp(s, "reason", 6) == 0)
            key = KEY_REASON;
        else if (memcmp(s, "__type", 6) == 0)
            key = KEY_TYPE;
        break;
    case 7:
        if (memcmp(s, "content", 7) == 0)
            key = KEY_CONTENT;
        else if (memcmp(s, "message", 7) == 0 || memcmp(s, "Message", 7) == 0)
            key = KEY_MESSAGE;
        break;
    case 9:
        if (memcmp(s, "toolUseId", 9) == 0)
            key = KEY_ID;
        else if (memcmp(s, "signature", 9) == 0)
            key = KEY_SIGNATURE;
        break;
    case 10:
        if (memcmp(s, "stopReason", 10) == 0)
            key = KEY_STOP_REASON;
        else if (memcmp(s, "tokenUsage", 10) == 0)
            key = KEY_TOKEN_USAGE;
        break;
    case 11:
        if (memcmp(s, "stop_reason", 11) == 0)
            key = KEY_STOP_REASON;
        break;
    case 15:
        if (memcmp(s, "redactedContent", 15) == 0)
            key = KEY_REDACTED;
        break;
    case 14:
        if (memcmp(s, "followupPrompt", 14) == 0)
            key = KEY_FOLLOWUP;
        break;
    case 22:
        if (memcmp(s, "contextUsagePercentage", 22) == 0)
            key = KEY_PCT;
        break;
    }
    if (key == KEY_OTHER && f->depth == 1 && f->event_type != NULL && len == f->event_type_len && len != 0 &&
        memcmp(s, f->event_type, len) == 0)
        key = KEY_WRAPPER;
    f->key = key;
    return 1;
}

static const yajl_callbacks payload_callbacks = {
    cb_null, cb_boolean, cb_integer, cb_number, NULL, cb_string, cb_start_map, cb_map_key, cb_end, cb_start_array, cb_end,
};

/* The payload of nearly every frame of an answer, {"content":"..."} with no escape in the text, read without yajl (a
 * yajl_parse per frame costs several times the rest of the frame's work). Returns 1 when the payload had exactly that shape
 * (fields filled as the SAX path fills them), 0 to take the general path (anything else: other members, escapes, control
 * characters, nesting), or a negative K2A_E*. */
static int parse_plain_content(k2a_kiro_resp_t *p, const char *s, size_t n)
{
    static const char head[] = "{\"content\":\"";
    const size_t hl = sizeof(head) - 1;
    if (n < hl + 2 || memcmp(s, head, hl) != 0)
        return 0;
    size_t i = hl;
    /* eight bytes at a time while none of them is '"', '\\' or a control character */
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, q, b;
        memcpy(&w, s + i, 8);
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((w - ones * 0x20) & ~w)) & highs)
            break;
    }
    while (i < n && s[i] != '"') {
        if (s[i] == '\\' || (unsigned char)s[i] < 0x20)
            return 0;
        ++i;
    }
    size_t end = i++;
    if (i >= n || s[i] != '}')
        return 0;
    for (++i; i < n; ++i)
        if (!is_blank(s[i]))
            return 0;
    struct st_k2a_kiro_fields_t *f = &p->f;
    f->has_content = true;
    if (!cb_copy(p, (const unsigned char *)s + hl, end - hl, &f->content_off, &f->content_len))
        return K2A_EUPSTREAM_EVENT; /* what the SAX path answers when its callback fails */
    f->complete = true;
    return 1;
}

#define FLAT_MAX_MEMBERS 8
#define FLAT_MAX_NUMBER 40

/* A string at s[*i] (the opening quote) with no escape and no control character; its inside in *v, *vl. */
static bool flat_string(const char *s, size_t n, size_t *i, const char **v, size_t *vl)
{
    size_t j = *i + 1;
    while (j < n && s[j] != '"') {
        if (s[j] == '\\' || (unsigned char)s[j] < 0x20)
            return false;
        ++j;
    }
    if (j >= n)
        return false;
    *v = s + *i + 1;
    *vl = j - *i - 1;
    *i = j + 1;
    return true;
}

/* A JSON number at s[*i] as yajl's lexer reads it; *is_double when it has a fraction or an exponent. */
static bool flat_number(const char *s, size_t n, size_t *i, bool *is_double)
{
    size_t j = *i;
    *is_double = false;
    if (j < n && s[j] == '-')
        ++j;
    if (j >= n || s[j] < '0' || s[j] > '9')
        return false;
    if (s[j] == '0')
        ++j;
    else
        while (j < n && s[j] >= '0' && s[j] <= '9')
            ++j;
    if (j < n && s[j] == '.') {
        *is_double = true;
        if (++j >= n || s[j] < '0' || s[j] > '9')
            return false;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            ++j;
    }
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        *is_double = true;
        if (++j < n && (s[j] == '+' || s[j] == '-'))
            ++j;
        if (j >= n || s[j] < '0' || s[j] > '9')
            return false;
        while (j < n && s[j] >= '0' && s[j] <= '9')
            ++j;
    }
    if (j - *i > FLAT_MAX_NUMBER)
        return false;
    *i = j;
    return true;
}

/* The small payloads at the end of every answer (metadataEvent {"stopReason":"END_TURN"}, contextUsageEvent
 * {"contextUsagePercentage":1.25}, meteringEvent {"unit":"credit","unitPlural":"credits","usage":0.01}): one object of
 * at most FLAT_MAX_MEMBERS members whose values are numbers or strings without escapes, read without yajl. The whole
 * payload is checked first, then the same SAX callbacks run in the order yajl would call them, with the values yajl
 * would give (integers of up to 18 digits summed exactly, doubles through strtod as yajl does). Returns 1 when read, 0
 * to take yajl (any other shape, and every number yajl could refuse), or a negative K2A_E*. */
static int parse_flat_object(k2a_kiro_resp_t *p, const char *s, size_t n)
{
    struct {
        const char *k, *v;
        size_t kl, vl;
        bool is_string, is_double;
    } m[FLAT_MAX_MEMBERS];
    size_t nm = 0, i = 1;
    if (n < 2 || s[0] != '{')
        return 0;
    for (;;) {
        while (i < n && is_blank(s[i]))
            ++i;
        if (nm == FLAT_MAX_MEMBERS || i >= n || s[i] != '"' || !flat_string(s, n, &i, &m[nm].k, &m[nm].kl))
            return 0;
        while (i < n && is_blank(s[i]))
            ++i;
        if (i >= n || s[i] != ':')
            return 0;
        ++i;
        while (i < n && is_blank(s[i]))
            ++i;
        if (i >= n)
            return 0;
        size_t vstart = i;
        if (s[i] == '"') {
            m[nm].is_string = true;
            m[nm].is_double = false;
            if (!flat_string(s, n, &i, &m[nm].v, &m[nm].vl))
                return 0;
        } else {
            m[nm].is_string = false;
            if (!flat_number(s, n, &i, &m[nm].is_double))
                return 0;
            m[nm].v = s + vstart;
            m[nm].vl = i - vstart;
            if (!m[nm].is_double && m[nm].vl > 18)
                return 0; /* yajl decides about long integers (overflow) */
        }
        ++nm;
        while (i < n && is_blank(s[i]))
            ++i;
        if (i < n && s[i] == ',') {
            ++i;
            continue;
        }
        if (i < n && s[i] == '}')
            break;
        return 0;
    }
    for (++i; i < n; ++i)
        if (!is_blank(s[i]))
            return 0;
    /* numbers first (nothing is called before the payload is known to be read whole) */
    double d[FLAT_MAX_MEMBERS];
    long long ll[FLAT_MAX_MEMBERS];
    for (size_t k = 0; k < nm; ++k) {
        if (m[k].is_string)
            continue;
        if (m[k].is_double) {
            if (k2a_json_decimal_fast(m[k].v, m[k].vl, &d[k]))
                continue; /* the double strtod gives, without it (convert/json_number.h) */
            char tmp[FLAT_MAX_NUMBER + 1];
            memcpy(tmp, m[k].v, m[k].vl);
            tmp[m[k].vl] = '\0';
            errno = 0;
            d[k] = strtod(tmp, NULL);
            if (errno == ERANGE)
                return 0; /* yajl refuses an overflow and accepts an underflow: let it say which */
        } else {
            const char *q = m[k].v;
            bool neg = *q == '-';
            long long v = 0;
            for (q += neg; q < m[k].v + m[k].vl; ++q)
                v = v * 10 + (*q - '0');
            ll[k] = neg ? -v : v;
        }
    }
    bool ok = cb_start_map(p) != 0;
    for (size_t k = 0; ok && k < nm; ++k) {
        ok = cb_map_key(p, (const unsigned char *)m[k].k, m[k].kl) != 0;
        if (ok)
            ok = m[k].is_string   ? cb_string(p, (const unsigned char *)m[k].v, m[k].vl) != 0
                 : m[k].is_double ? cb_number(p, d[k]) != 0
                                  : cb_integer(p, ll[k]) != 0;
    }
    if (!ok || cb_end(p) == 0 || !p->f.ok || !p->f.complete || p->f.depth != 0)
        return K2A_EUPSTREAM_EVENT; /* what the SAX path answers when a callback fails */
    return 1;
}

int k2a__kiro_parse_payload(k2a_kiro_resp_t *p, const k2a_es_frame_t *fr, const char *event_type, size_t event_type_len)
{
    struct st_k2a_kiro_fields_t *f = &p->f;
    memset(f, 0, sizeof(*f));
    f->ok = true;
    f->base_depth = 1;
    f->event_type = event_type;
    f->event_type_len = event_type_len;
    f->payload = fr->payload;
    k2a_buf_reset(&p->scratch);
    size_t i = 0;
    while (i < fr->payload_len && is_blank(fr->payload[i]))
        ++i;
    if (i == fr->payload_len)
        return 0; /* an empty payload reads as {} */
    int fast = parse_plain_content(p, fr->payload + i, fr->payload_len - i);
    if (fast == 0)
        fast = parse_flat_object(p, fr->payload + i, fr->payload_len - i);
    if (fast != 0)
        return fast < 0 ? fast : 0;
    if (p->yajl == NULL) {
        if ((p->yajl = yajl_alloc(&payload_callbacks, NULL, p)) == NULL)
            return K2A_ENOMEM;
        yajl_config(p->yajl, yajl_dont_validate_strings, 1);
        /* one handle for the whole response: every payload is one more top-level value */
        yajl_config(p->yajl, yajl_allow_multiple_values, 1);
    }
    yajl_status st = yajl_parse(p->yajl, (const unsigned char *)fr->payload, fr->payload_len);
    if (st != yajl_status_ok || !f->ok || !f->complete || f->depth != 0) {
        /* the handle is in an error or mid-value state: start over with a fresh one next time */
        yajl_free(p->yajl);
        p->yajl = NULL;
        return K2A_EUPSTREAM_EVENT;
    }
    return 0;
}

k2a_kiro_stop_t k2a__kiro_parse_stop(const char *s, size_t n)
{
    static const struct {
        const char *name;
        k2a_kiro_stop_t stop;
    } map[] = {
        {"END_TURN", K2A_KIRO_STOP_END_TURN},
        {"STOP_SEQUENCE", K2A_KIRO_STOP_STOP_SEQUENCE},
        {"MAX_TOKENS", K2A_KIRO_STOP_MAX_TOKENS},
        {"TOOL_USE", K2A_KIRO_STOP_TOOL_USE},
        {"MODEL_CONTEXT_WINDOW_EXCEEDED", K2A_KIRO_STOP_CONTEXT_WINDOW},
        {"CONTENT_FILTERED", K2A_KIRO_STOP_CONTENT_FILTERED},
        {"GUARDRAIL_INTERVENED", K2A_KIRO_STOP_GUARDRAIL},
        {"MALFORMED_TOOL_USE", K2A_KIRO_STOP_MALFORMED_TOOL_USE},
        {"MALFORMED_MODEL_OUTPUT", K2A_KIRO_STOP_MALFORMED_MODEL_OUTPUT},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); ++i)
        if (n == strlen(map[i].name) && strncasecmp(s, map[i].name, n) == 0) /* "end_turn" as well */
            return map[i].stop;
    return K2A_KIRO_STOP_OTHER;
}

int k2a_kiro_resp_classify_http(int status, const char *body, size_t len, k2a_buf_t *message)
{
    const char *msg = NULL, *reason = NULL;
    yajl_val root = NULL;
    if (len != 0 && len <= 64 * 1024) {
        /* a small error document: the tree API is simplest, and it needs a NUL-terminated copy */
        char *copy = malloc(len + 1);
        if (copy != NULL) {
            memcpy(copy, body, len);
            copy[len] = '\0';
            root = yajl_tree_parse(copy, NULL, 0);
            free(copy);
        }
    }
    if (root != NULL && YAJL_IS_OBJECT(root)) {
        for (size_t i = 0; i < root->u.object.len; ++i) {
            yajl_val v = root->u.object.values[i];
            const char *k = root->u.object.keys[i];
            if (YAJL_IS_STRING(v) && (strcmp(k, "message") == 0 || strcmp(k, "Message") == 0))
                msg = v->u.string;
            else if (YAJL_IS_STRING(v) && strcmp(k, "reason") == 0)
                reason = v->u.string;
        }
    }
    size_t rlen = reason != NULL ? strlen(reason) : 0;
    int code;
    if (reason != NULL && k2a__kiro_str_contains(reason, rlen, "CONTENT_LENGTH_EXCEEDS"))
        code = K2A_EUPSTREAM_CONTENT_LENGTH;
    else if (status == 429)
        code = K2A_ETHROTTLED;
    else if (status == 402 || (reason != NULL && (k2a__kiro_str_contains(reason, rlen, "MONTHLY_REQUEST_COUNT") ||
                                                  k2a__kiro_str_contains(reason, rlen, "QUOTA"))))
        code = K2A_EEXHAUSTED;
    else if (status == 400)
        code = K2A_EUPSTREAM_BAD_REQUEST;
    else if (status == 401 || status == 403)
        code = K2A_EUPSTREAM_AUTH;
    else if (status >= 500 && status <= 599)
        code = K2A_EUPSTREAM_SERVER;
    else
        code = K2A_EHTTP_STATUS;
    if (message != NULL) {
        if (msg != NULL)
            k2a_buf_appendstr(message, msg);
        else if (len != 0)
            k2a_buf_append(message, body, len > 512 ? 512 : len);
        if (reason != NULL)
            k2a_buf_appendf(message, " (%s)", reason);
    }
    if (root != NULL)
        yajl_tree_free(root);
    return code;
}
