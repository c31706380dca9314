/*
 * OpenAI Responses API writer (see responses_resp.h). Every block of the model's answer becomes one output item; the
 * item's text (or arguments) is kept while it is open, because the .done events and the finished item repeat it, and
 * the finished items are kept as JSON for response.completed, the non-stream object and the response store. Each SSE
 * event is one `event:` line and one `data:` line whose JSON ends with the stream's next sequence_number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include "core/errors.h"
#include "convert/openai_error.h"
#include "convert/responses_resp.h"
#include "convert/responses_store.h"
#include "convert/web_search.h"

#define APPEND_LIT(b, lit) k2a_buf_append((b), (lit), sizeof(lit) - 1)

#define CHECK(expr)                                                                                                                \
    do {                                                                                                                           \
        int r_ = (expr);                                                                                                           \
        if (r_ != 0)                                                                                                               \
            return r_;                                                                                                             \
    } while (0)

#define K2A_RESPONSES_DEFAULT_MAX_BYTES ((size_t)64 * 1024 * 1024)

void k2a_responses_make_id(char dst[K2A_RESPONSES_ID_SIZE], const char *prefix, k2a_random_cb random, void *random_ctx)
{
    /* two hex digits per byte value */
    static const char pairs[] = "000102030405060708090a0b0c0d0e0f"
                                "101112131415161718191a1b1c1d1e1f"
                                "202122232425262728292a2b2c2d2e2f"
                                "303132333435363738393a3b3c3d3e3f"
                                "404142434445464748494a4b4c4d4e4f"
                                "505152535455565758595a5b5c5d5e5f"
                                "606162636465666768696a6b6c6d6e6f"
                                "707172737475767778797a7b7c7d7e7f"
                                "808182838485868788898a8b8c8d8e8f"
                                "909192939495969798999a9b9c9d9e9f"
                                "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                                "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
                                "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                                "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                                "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
                                "f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    uint8_t bytes[K2A_RESPONSES_ID_HEX / 2];
    random(random_ctx, bytes, sizeof(bytes));
    size_t n = strlen(prefix);
    memcpy(dst, prefix, n);
    for (size_t i = 0; i < sizeof(bytes); ++i)
        memcpy(dst + n + 2 * i, pairs + 2 * bytes[i], 2);
    dst[n + K2A_RESPONSES_ID_HEX] = '\0';
}

static int json_str(k2a_buf_t *out, const char *s, size_t n)
{
    CHECK(k2a_buf_append(out, "\"", 1));
    CHECK(k2a_buf_append_json_escaped(out, s != NULL ? s : "", n));
    return k2a_buf_append(out, "\"", 1);
}

static int render_static(k2a_responses_writer_t *w, k2a_str_t model);

/* Writing into room already reserved (room() below): a cursor p advanced by each piece; the caller sets len at the end. */
static inline char *put(char *p, const void *s, size_t n)
{
    if (n != 0) /* s may be NULL then (an empty buffer) */
        memcpy(p, s, n);
    return p + n;
}
#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* v in decimal: at most K2A_I64_CHARS bytes */
static char *put_i64(char *p, int64_t v)
{
    return p + k2a_fmt_i64(p, v);
}

/* Room for n more bytes of b (and the NUL k2a_buf_cstr may add), within its maximum: the common case inline. */
static inline int room(k2a_buf_t *b, size_t n)
{
    if (b->cap - b->len > n && (b->max == 0 || b->len + n <= b->max))
        return 0;
    return k2a_buf_reserve(b, n);
}

/* parts[0..n) appended with one check of the room */
static int put_parts(k2a_buf_t *out, const k2a_str_t *parts, size_t n)
{
    size_t need = 0;
    for (size_t i = 0; i < n; ++i)
        need += parts[i].len;
    CHECK(room(out, need));
    char *p = out->base + out->len;
    for (size_t i = 0; i < n; ++i)
        p = put(p, parts[i].base, parts[i].len);
    out->len = (size_t)(p - out->base);
    return 0;
}
#define PARTS(out, ...) put_parts((out), (const k2a_str_t[]){__VA_ARGS__}, sizeof((k2a_str_t[]){__VA_ARGS__}) / sizeof(k2a_str_t))
#define S(lit) K2A_STRLIT(lit)

/* k2a_responses_writer_init zeroes the fields before open[] and from nopen on: nothing may sit between them */
_Static_assert(offsetof(k2a_responses_writer_t, nopen) ==
                   offsetof(k2a_responses_writer_t, open) + sizeof(((k2a_responses_writer_t *)0)->open),
               "open[] is followed by nopen");

int k2a_responses_writer_init(k2a_responses_writer_t *w, k2a_buf_t *out, int64_t created_at, k2a_str_t model,
                              const k2a_responses_extra_t *echo, const k2a_ir_request_t *req, k2a_random_cb random,
                              void *random_ctx, size_t max_bytes)
{
    /* all but open[]: an item is set up whole when it opens, and only the first nopen are read */
    memset(w, 0, offsetof(k2a_responses_writer_t, open));
    memset(&w->nopen, 0, sizeof(*w) - offsetof(k2a_responses_writer_t, nopen));
    w->out = out;
    w->created_at = created_at;
    w->echo = echo;
    w->random = random;
    w->random_ctx = random_ctx;
    w->max_bytes = max_bytes != 0 ? max_bytes : K2A_RESPONSES_DEFAULT_MAX_BYTES;
    w->temperature = req != NULL && req->has_temperature ? req->temperature : 1.0;
    w->top_p = req != NULL && req->has_top_p ? req->top_p : 1.0;
    k2a_buf_init(&w->items, w->max_bytes);
    k2a_buf_init(&w->scratch, 0);
    k2a_buf_init(&w->error_message, 4096);
    k2a_buf_init(&w->statics, 0);
    k2a_responses_make_id(w->id, "resp_", random, random_ctx);
    return render_static(w, model);
}

static void item_dispose(k2a_responses_item_t *it)
{
    k2a_buf_dispose(&it->text);
    free(it->strings);
    it->strings = NULL;
}

void k2a_responses_writer_dispose(k2a_responses_writer_t *w)
{
    for (size_t i = 0; i < w->nopen; ++i)
        item_dispose(&w->open[i]);
    w->nopen = 0;
    k2a_buf_dispose(&w->items);
    k2a_buf_dispose(&w->scratch);
    k2a_buf_dispose(&w->error_message);
    k2a_buf_dispose(&w->statics);
}

/* ---------- the response object ---------- */

static int echo_raw(k2a_buf_t *out, k2a_str_t raw, const char *dflt)
{
    if (raw.len != 0)
        return k2a_buf_append(out, raw.base, raw.len);
    return k2a_buf_appendstr(out, dflt);
}

/* The usage object: at most 256 bytes */
static char *put_usage(char *p, const k2a_responses_writer_t *w)
{
    const k2a_ir_usage_t *u = &w->usage;
    int64_t in = u->input_tokens + u->cache_read_input_tokens + u->cache_creation_input_tokens;
    int64_t reasoning = w->reasoning_tokens < u->output_tokens ? w->reasoning_tokens : u->output_tokens;
    p = put_i64(PUT_LIT(p, "{\"input_tokens\":"), in);
    p = put_i64(PUT_LIT(p, ",\"input_tokens_details\":{\"cached_tokens\":"), u->cache_read_input_tokens);
    p = put_i64(PUT_LIT(p, "},\"output_tokens\":"), u->output_tokens);
    p = put_i64(PUT_LIT(p, ",\"output_tokens_details\":{\"reasoning_tokens\":"), reasoning);
    p = put_i64(PUT_LIT(p, "},\"total_tokens\":"), in + u->output_tokens);
    return PUT_LIT(p, "}");
}

static const char *incomplete_reason(k2a_ir_stop_reason_t r)
{
    switch (r) {
    case K2A_STOP_MAX_TOKENS:
    case K2A_STOP_CONTEXT_WINDOW:
        return "max_output_tokens";
    case K2A_STOP_REFUSAL:
        return "content_filter";
    default:
        return NULL;
    }
}

/* Decimal digits of v appended (no printf on the per-event path). */
static int append_i64(k2a_buf_t *out, int64_t v)
{
    return k2a_buf_append_i64(out, v);
}

/* A number as %g does, without printf for the usual 1 */
static int append_number(k2a_buf_t *out, double v)
{
    if (v == 1.0)
        return k2a_buf_append(out, "1", 1);
    return k2a_buf_appendf(out, "%g", v);
}

/* The parts of the response object that do not change during the answer, rendered once at init, one after the other
 * into statics (the model is read here only):
 *   head  `{"id":"resp_…","object":"response","created_at":N,"status":"`
 *   mid_a `,"instructions":…,"max_output_tokens":…,"metadata":…,"model":…`
 *   mid_b `,"parallel_tool_calls":…,…,"truncation":"disabled"` */
static int render_static(k2a_responses_writer_t *w, k2a_str_t model)
{
    const k2a_responses_extra_t *x = w->echo;
    k2a_buf_t *h = &w->statics, *a = &w->statics, *b = &w->statics;
    /* sized once: these are rendered a single time, and copied into every response object */
    CHECK(k2a_buf_reserve(&w->statics, 128 +
                                           (x != NULL ? x->instructions_json.len + x->instructions.len + x->metadata.len +
                                                            x->tools_json.len + x->tool_choice.len + x->previous_response_id.len
                                                      : 0) +
                                           model.len + 128 + 320));
    CHECK(APPEND_LIT(h, "{\"id\":\""));
    CHECK(k2a_buf_appendstr(h, w->id));
    CHECK(APPEND_LIT(h, "\",\"object\":\"response\",\"created_at\":"));
    CHECK(append_i64(h, w->created_at));
    w->status_at = (uint32_t)w->statics.len;
    CHECK(APPEND_LIT(h, ",\"status\":\""));
    size_t h_end = w->statics.len;
    CHECK(APPEND_LIT(a, ",\"instructions\":"));
    size_t instructions_at = w->statics.len;
    if (x != NULL && x->instructions_json.len != 0)
        CHECK(k2a_buf_append(a, x->instructions_json.base, x->instructions_json.len));
    else if (x != NULL && x->instructions.len != 0)
        CHECK(json_str(a, x->instructions.base, x->instructions.len));
    else
        CHECK(APPEND_LIT(a, "null"));
    w->instructions_at = (uint32_t)(instructions_at - h_end);
    w->instructions_len = (uint32_t)(w->statics.len - instructions_at);
    if (x != NULL && x->has_max_output_tokens) {
        CHECK(APPEND_LIT(a, ",\"max_output_tokens\":"));
        CHECK(append_i64(a, x->max_output_tokens));
    } else
        CHECK(APPEND_LIT(a, ",\"max_output_tokens\":null"));
    CHECK(APPEND_LIT(a, ",\"metadata\":"));
    CHECK(echo_raw(a, x != NULL ? x->metadata : K2A_STR_NULL, "{}"));
    CHECK(APPEND_LIT(a, ",\"model\":"));
    CHECK(json_str(a, model.base, model.len));
    size_t a_end = w->statics.len;
    CHECK(x == NULL || x->parallel_tool_calls ? APPEND_LIT(b, ",\"parallel_tool_calls\":true,\"previous_response_id\":")
                                              : APPEND_LIT(b, ",\"parallel_tool_calls\":false,\"previous_response_id\":"));
    if (x != NULL && x->previous_response_id.len != 0)
        CHECK(json_str(b, x->previous_response_id.base, x->previous_response_id.len));
    else
        CHECK(APPEND_LIT(b, "null"));
    CHECK(APPEND_LIT(b, ",\"reasoning\":{\"effort\":"));
    if (x != NULL && x->effort.len != 0)
        CHECK(json_str(b, x->effort.base, x->effort.len));
    else
        CHECK(APPEND_LIT(b, "null"));
    CHECK(x == NULL || x->store ? APPEND_LIT(b, ",\"summary\":null},\"store\":true,\"temperature\":")
                                : APPEND_LIT(b, ",\"summary\":null},\"store\":false,\"temperature\":"));
    CHECK(append_number(b, w->temperature));
    CHECK(APPEND_LIT(b, ",\"text\":{\"format\":{\"type\":"));
    k2a_str_t fmt = x != NULL && x->text_format.len != 0 ? x->text_format : K2A_STRLIT("text");
    CHECK(json_str(b, fmt.base, fmt.len));
    CHECK(APPEND_LIT(b, "}},\"tool_choice\":"));
    CHECK(echo_raw(b, x != NULL ? x->tool_choice : K2A_STR_NULL, "\"auto\""));
    CHECK(APPEND_LIT(b, ",\"tools\":"));
    size_t tools_at = w->statics.len;
    CHECK(echo_raw(b, x != NULL ? x->tools_json : K2A_STR_NULL, "[]"));
    w->tools_at = (uint32_t)(tools_at - a_end);
    w->tools_len = (uint32_t)(w->statics.len - tools_at);
    CHECK(APPEND_LIT(b, ",\"top_p\":"));
    CHECK(append_number(b, w->top_p));
    CHECK(APPEND_LIT(b, ",\"truncation\":\"disabled\""));
    w->head = k2a_str(w->statics.base, h_end);
    w->mid_a = k2a_str(w->statics.base + h_end, a_end - h_end);
    w->mid_b = k2a_str(w->statics.base + a_end, w->statics.len - a_end);
    return 0;
}

/* status: "in_progress" (no output, no usage), "completed"/"incomplete" (output and usage), "failed" (error). The parts'
 * sizes are known: one check of the room, and the pieces copied (the error object, rare, is appended in between). */
static int render_object(const k2a_responses_writer_t *w, k2a_buf_t *out, const char *status, bool final,
                         k2a_responses_marks_t *marks)
{
    size_t start = out->len;
    size_t need = w->head.len + w->mid_a.len + w->mid_b.len + (final ? w->items.len : 0) + 640;
    CHECK(room(out, need));
    char *p = put(out->base + out->len, w->head.base, w->head.len);
    p = put(p, status, strlen(status));
    p = PUT_LIT(p, "\",\"background\":false,\"error\":");
    if (w->error != 0) {
        out->len = (size_t)(p - out->base);
        const k2a_openai_error_info_t *info = k2a_openai_error_info(w->error);
        const char *code = info->code != NULL ? info->code : info->type;
        CHECK(APPEND_LIT(out, "{\"code\":"));
        CHECK(json_str(out, code, strlen(code)));
        CHECK(APPEND_LIT(out, ",\"message\":"));
        if (w->error_message.len != 0)
            CHECK(json_str(out, w->error_message.base, w->error_message.len));
        else
            CHECK(json_str(out, k2a_strerror(w->error), strlen(k2a_strerror(w->error))));
        CHECK(APPEND_LIT(out, "}"));
        CHECK(room(out, need));
        p = out->base + out->len;
    } else {
        p = PUT_LIT(p, "null");
    }
    const char *why = final && w->stopped ? incomplete_reason(w->stop_reason) : NULL;
    p = PUT_LIT(p, ",\"incomplete_details\":");
    if (why != NULL) {
        p = PUT_LIT(p, "{\"reason\":\"");
        p = put(p, why, strlen(why));
        p = PUT_LIT(p, "\"}");
    } else {
        p = PUT_LIT(p, "null");
    }
    size_t mid_a = (size_t)(p - out->base) - start;
    p = put(p, w->mid_a.base, w->mid_a.len);
    p = PUT_LIT(p, ",\"output\":[");
    size_t items = (size_t)(p - out->base) - start;
    if (final)
        p = put(p, w->items.base, w->items.len);
    p = PUT_LIT(p, "]");
    size_t mid_b = (size_t)(p - out->base) - start;
    p = put(p, w->mid_b.base, w->mid_b.len);
    p = PUT_LIT(p, ",\"usage\":");
    if (marks != NULL)
        *marks = (k2a_responses_marks_t){mid_a, items, mid_b, (size_t)(p - out->base) - start};
    p = final && w->error == 0 ? put_usage(p, w) : PUT_LIT(p, "null");
    p = PUT_LIT(p, ",\"user\":null}");
    out->len = (size_t)(p - out->base);
    return 0;
}

/* ---------- SSE ---------- */

/* `event: <type>\ndata: {"type":"<type>",` — the caller appends the fields and then end_event */
/* `event: <type>\ndata: {"type":"<type>",` as one literal: the caller appends the fields and then end_event */
#define EVENT_PREFIX(t) "event: " t "\ndata: {\"type\":\"" t "\","
#define BEGIN_EVENT(w, t) APPEND_LIT((w)->out, EVENT_PREFIX(t))
#define PREFIX_ARGS(t) EVENT_PREFIX(t), sizeof(EVENT_PREFIX(t)) - 1

/* `<suffix>"sequence_number":N}\n\n` written in place (suffix: the end of the event's fields, at most 32 bytes; a
 * constant at every call, so that the copies are inlined); the number is written by hand, one or two digits in practice */
static inline __attribute__((always_inline)) int end_event_after(k2a_responses_writer_t *w, const char *suffix, size_t slen)
{
    static const char key[] = "\"sequence_number\":";
    k2a_buf_t *out = w->out;
    CHECK(room(out, 32 + sizeof(key) - 1 + 20 + 3));
    char *p = out->base + out->len;
    memcpy(p, suffix, slen);
    p += slen;
    memcpy(p, key, sizeof(key) - 1);
    p += sizeof(key) - 1;
    uint64_t v = (uint64_t)w->seq++;
    if (v < 10) {
        *p++ = (char)('0' + v);
    } else if (v < 100) {
        p[0] = (char)('0' + v / 10);
        p[1] = (char)('0' + v % 10);
        p += 2;
    } else {
        char digits[20];
        size_t nd = 0;
        do {
            digits[nd++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (nd != 0)
            *p++ = digits[--nd];
    }
    memcpy(p, "}\n\n", 3);
    out->len = (size_t)(p + 3 - out->base);
    return 0;
}

static inline int end_event(k2a_responses_writer_t *w)
{
    return end_event_after(w, "", 0);
}

/* An event carrying a response object (status/final as render_object), rendered straight into the stream; *at and *len
 * get where the object sits in it. */
static int object_event(k2a_responses_writer_t *w, const char *prefix, size_t plen, const char *status, bool final, size_t *at,
                        size_t *len, k2a_responses_marks_t *marks)
{
    CHECK(PARTS(w->out, k2a_str(prefix, plen), S("\"response\":")));
    *at = w->out->len;
    CHECK(render_object(w, w->out, status, final, marks));
    *len = w->out->len - *at;
    return end_event_after(w, ",", 1);
}

/* An event carrying the final response object, whose bytes in the stream are what the store keeps until the stream is
 * next drained (k2a_responses_writer_final). */
static int response_event(k2a_responses_writer_t *w, const char *prefix, size_t plen, const char *status, bool final)
{
    return object_event(w, prefix, plen, status, final, &w->final_at, &w->final_len, &w->final_marks);
}

static int start(k2a_responses_writer_t *w)
{
    if (w->started)
        return 0;
    w->started = true;
    if (w->out == NULL)
        return 0;
    /* both events in one growth (the first read of the answer reserves for what it brings: exchange.c) */
    (void)room(w->out, 2 * (w->head.len + w->mid_a.len + w->mid_b.len + 768));
    size_t at, len;
    CHECK(object_event(w, PREFIX_ARGS("response.created"), "in_progress", false, &at, &len, NULL));
    /* the same object again: copied from the first event (by offset: the room check may move the buffer) */
    CHECK(PARTS(w->out, S(EVENT_PREFIX("response.in_progress")), S("\"response\":")));
    CHECK(room(w->out, len));
    memcpy(w->out->base + w->out->len, w->out->base + at, len);
    w->out->len += len;
    return end_event_after(w, ",", 1);
}

/* The item as JSON; done = its finished form. */
/* The item as JSON: in progress (q NULL), or finished with q its text (or arguments) as a JSON string, escaped once. */
static int render_item(k2a_buf_t *out, const k2a_responses_item_t *it, const k2a_str_t *q)
{
    k2a_str_t id = k2a_str(it->id, strlen(it->id));
    switch (it->kind) {
    case K2A_BLOCK_TEXT:
        if (q == NULL)
            return PARTS(out, S("{\"id\":\""), id,
                         S("\",\"type\":\"message\",\"status\":\"in_progress\",\"content\":[],\"role\":\"assistant\"}"));
        return PARTS(out, S("{\"id\":\""), id,
                     S("\",\"type\":\"message\",\"status\":\"completed\",\"content\":[{\"type\":\"output_text\",\"annotations\":[],"
                       "\"logprobs\":[],\"text\":"),
                     *q, S("}],\"role\":\"assistant\"}"));
    case K2A_BLOCK_THINKING:
        if (q == NULL)
            return PARTS(out, S("{\"id\":\""), id, S("\",\"type\":\"reasoning\",\"summary\":[]}"));
        return PARTS(out, S("{\"id\":\""), id, S("\",\"type\":\"reasoning\",\"summary\":[{\"type\":\"summary_text\",\"text\":"), *q,
                     S("}]}"));
    default:
        CHECK(PARTS(out, S("{\"id\":\""), id,
                    q != NULL ? S("\",\"type\":\"function_call\",\"status\":\"completed\",\"arguments\":")
                              : S("\",\"type\":\"function_call\",\"status\":\"in_progress\",\"arguments\":"),
                    q != NULL ? *q : S("\"\""), S(",\"call_id\":")));
        CHECK(json_str(out, it->call_id.base, it->call_id.len));
        CHECK(APPEND_LIT(out, ",\"name\":"));
        CHECK(json_str(out, it->name.base, it->name.len));
        return APPEND_LIT(out, "}");
    }
}

static int item_event(k2a_responses_writer_t *w, const char *prefix, size_t plen, const k2a_responses_item_t *it,
                      const k2a_str_t *q)
{
    char num[24];
    size_t nl = (size_t)(put_i64(num, it->output) - num);
    CHECK(PARTS(w->out, k2a_str(prefix, plen), S("\"output_index\":"), k2a_str(num, nl), S(",\"item\":")));
    CHECK(render_item(w->out, it, q));
    return end_event_after(w, ",", 1);
}

static k2a_responses_item_t *find_open(k2a_responses_writer_t *w, int block)
{
    for (size_t i = 0; i < w->nopen; ++i)
        if (w->open[i].block == block)
            return &w->open[i];
    return NULL;
}

static int on_block_start(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    if (ev->block != K2A_BLOCK_TEXT && ev->block != K2A_BLOCK_THINKING && ev->block != K2A_BLOCK_TOOL_USE)
        return 0; /* REDACTED_THINKING: opaque, only Anthropic clients can use it */
    if (w->nopen == K2A_RESPONSES_MAX_OPEN || find_open(w, ev->index) != NULL)
        return K2A_EINTERNAL;
    CHECK(start(w));
    k2a_responses_item_t *it = &w->open[w->nopen];
    /* everything before the delta head zeroed (the head is written whole below, its lengths with it) */
    memset(it, 0, offsetof(k2a_responses_item_t, dhead));
    it->block = ev->index;
    it->kind = ev->block;
    k2a_buf_init(&it->text, 0);            /* bounded by rawlen */
    (void)k2a_buf_reserve(&it->text, 500); /* a short answer's text without regrowing (512 bytes: a cached size) */
    k2a_responses_make_id(it->id,
                          ev->block == K2A_BLOCK_TEXT       ? "msg_"
                          : ev->block == K2A_BLOCK_THINKING ? "rs_"
                                                            : "fc_",
                          w->random, w->random_ctx);
    if (ev->block == K2A_BLOCK_TOOL_USE) {
        it->strings = malloc(ev->tool_id.len + ev->tool_name.len + 1);
        if (it->strings == NULL)
            return K2A_ENOMEM;
        memcpy(it->strings, ev->tool_id.base != NULL ? ev->tool_id.base : "", ev->tool_id.len);
        memcpy(it->strings + ev->tool_id.len, ev->tool_name.base != NULL ? ev->tool_name.base : "", ev->tool_name.len);
        it->call_id = k2a_str(it->strings, ev->tool_id.len);
        it->name = k2a_str(it->strings + ev->tool_id.len, ev->tool_name.len);
        w->any_tool_call = true;
    }
    ++w->nopen;
    CHECK(k2a_buf_append(&it->text, "\"", 1));
    it->output = w->noutput++;
    {
        /* the delta events' head: prefix, then the item's reference (which the other events of the item copy), field */
        static const char text_head[] = EVENT_PREFIX("response.output_text.delta"),
                          thinking_head[] = EVENT_PREFIX("response.reasoning_summary_text.delta"),
                          tool_head[] = EVENT_PREFIX("response.function_call_arguments.delta");
        static const char text_field[] = "\"content_index\":0,\"delta\":\"", thinking_field[] = "\"summary_index\":0,\"delta\":\"",
                          tool_field[] = "\"delta\":\"";
        static const char pre[] = "\"item_id\":\"", mid[] = "\",\"output_index\":";
        _Static_assert(sizeof(thinking_head) - 1 + sizeof(pre) - 1 + K2A_RESPONSES_ID_SIZE + sizeof(mid) - 1 + 11 +
                               sizeof(thinking_field) - 1 <=
                           sizeof(it->dhead),
                       "dhead holds the longest head");
        const char *h = it->kind == K2A_BLOCK_TEXT ? text_head : it->kind == K2A_BLOCK_THINKING ? thinking_head : tool_head;
        const char *f = it->kind == K2A_BLOCK_TEXT ? text_field : it->kind == K2A_BLOCK_THINKING ? thinking_field : tool_field;
        char num[16];
        size_t hl = strlen(h), fl = strlen(f), idlen = strlen(it->id), nn = 0;
        for (int o = it->output; nn == 0 || o != 0; o /= 10)
            num[nn++] = (char)('0' + o % 10);
        char *r = it->dhead;
        memcpy(r, h, hl), r += hl;
        memcpy(r, pre, sizeof(pre) - 1), r += sizeof(pre) - 1;
        memcpy(r, it->id, idlen), r += idlen;
        memcpy(r, mid, sizeof(mid) - 1), r += sizeof(mid) - 1;
        while (nn != 0)
            *r++ = num[--nn];
        *r++ = ',';
        it->refat = (uint8_t)hl;
        it->reflen = (uint8_t)(r - it->dhead - hl);
        memcpy(r, f, fl), r += fl;
        it->dheadlen = (uint8_t)(r - it->dhead);
    }
    if (w->out == NULL)
        return 0;
    CHECK(item_event(w, PREFIX_ARGS("response.output_item.added"), it, NULL));
    k2a_str_t ref = k2a_str(it->dhead + it->refat, it->reflen);
    if (it->kind == K2A_BLOCK_TEXT) {
        CHECK(
            PARTS(w->out, S(EVENT_PREFIX("response.content_part.added")), ref,
                  S("\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":\"\"},")));
        return end_event(w);
    }
    if (it->kind == K2A_BLOCK_THINKING) {
        CHECK(PARTS(w->out, S(EVENT_PREFIX("response.reasoning_summary_part.added")), ref,
                    S("\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":\"\"},")));
        return end_event(w);
    }
    return 0;
}

/* Whether escaping s[0..n) alone gives the same bytes as escaping it as a part of the whole text: false when its last
 * bytes begin a UTF-8 sequence that the next delta would complete (the escaper would replace them by U+FFFD). */
static bool delta_is_whole(const char *s, size_t n)
{
    if ((unsigned char)s[n - 1] < 0x80)
        return true;
    for (size_t k = 1; k <= 3 && k <= n; ++k) {
        unsigned char c = (unsigned char)s[n - k];
        size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
        if (need != 0)
            return need <= k;
    }
    return true;
}

/* The item's escaped text turned back into its bytes, in place (from the escaper's output: \" \\ \n \r \t \b \f \u00XX,
 * everything else as is), without the leading quote: the item keeps its text unescaped from now on. */
static void item_unescape(k2a_responses_item_t *it)
{
    char *b = it->text.base;
    size_t j = 0;
    for (size_t i = 1; i < it->text.len; ++i) {
        char c = b[i];
        if (c == '\\' && i + 1 < it->text.len) {
            char e = b[++i];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
            if (e == 'u' && i + 4 < it->text.len) {
                unsigned v = 0;
                for (int d = 1; d <= 4; ++d) {
                    char h = b[i + d];
                    v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
                }
                c = (char)v;
                i += 4;
            }
        }
        b[j++] = c;
    }
    it->text.len = j;
    it->raw = true;
}

static int on_delta(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    if (ev->text.len == 0)
        return 0;
    k2a_responses_item_t *it = find_open(w, ev->index);
    if (it == NULL)
        return ev->block == K2A_BLOCK_REDACTED_THINKING ? 0 : K2A_EINTERNAL;
    if (ev->text.len > w->max_bytes - it->rawlen)
        return K2A_EUPSTREAM_TOOBIG;
    it->rawlen += ev->text.len;
    if (it->kind == K2A_BLOCK_THINKING)
        w->reasoning_tokens += (int64_t)(ev->text.len + 3) / 4;
    /* the text is escaped once, into the item (for the .done events and the finished item), and copied from there */
    if (!it->raw && !delta_is_whole(ev->text.base, ev->text.len))
        item_unescape(it);
    size_t from = it->text.len;
    CHECK(it->raw ? k2a_buf_append(&it->text, ev->text.base, ev->text.len)
                  : k2a_buf_append_json_escaped(&it->text, ev->text.base, ev->text.len));
    if (w->out == NULL)
        return 0;
    if (it->raw) {
        CHECK(k2a_buf_append(w->out, it->dhead, it->dheadlen));
        CHECK(k2a_buf_append_json_escaped(w->out, ev->text.base, ev->text.len));
    } else {
        /* the event's head (prefix, item reference, `"delta":"`) was rendered when the item started */
        size_t n = it->text.len - from;
        CHECK(room(w->out, sizeof(it->dhead) + n));
        /* the whole array, a constant size (a few vector moves; a copy of dheadlen bytes, whose type bounds it, becomes
         * `rep movs`, several times slower at this size): the text then overwrites what follows the head */
        memcpy(w->out->base + w->out->len, it->dhead, sizeof(it->dhead));
        memcpy(w->out->base + w->out->len + it->dheadlen, it->text.base + from, n);
        w->out->len += it->dheadlen + n;
    }
    if (it->kind == K2A_BLOCK_TEXT)
        return end_event_after(w, "\",\"logprobs\":[],", sizeof("\",\"logprobs\":[],") - 1);
    return end_event_after(w, "\",", 2);
}

static int close_item(k2a_responses_writer_t *w, k2a_responses_item_t *it)
{
    /* the text (or arguments) as a JSON string, escaped once for the .done events, the item and the stored output */
    k2a_str_t q;
    if (it->kind == K2A_BLOCK_TOOL_USE && it->rawlen == 0) {
        q = K2A_STRLIT("\"{}\"");
    } else if (it->raw) {
        k2a_buf_reset(&w->scratch);
        CHECK(json_str(&w->scratch, it->text.base, it->text.len));
        q = k2a_str(w->scratch.base, w->scratch.len);
    } else {
        CHECK(k2a_buf_append(&it->text, "\"", 1));
        q = k2a_str(it->text.base, it->text.len);
    }
    if (w->out != NULL) {
        /* the item's closing events (its text up to three times) and the final response object (its output again)
         * with at most one growth of the staged stream */
        (void)room(w->out,
                   4 * q.len + 1536 + w->head.len + w->mid_a.len + w->mid_b.len + w->items.len + it->call_id.len + it->name.len);
        k2a_str_t ref = k2a_str(it->dhead + it->refat, it->reflen);
        switch (it->kind) {
        case K2A_BLOCK_TEXT:
            CHECK(PARTS(w->out, S(EVENT_PREFIX("response.output_text.done")), ref, S("\"content_index\":0,\"text\":"), q));
            CHECK(end_event_after(w, ",\"logprobs\":[],", sizeof(",\"logprobs\":[],") - 1));
            CHECK(PARTS(w->out, S(EVENT_PREFIX("response.content_part.done")), ref,
                        S("\"content_index\":0,\"part\":{\"type\":\"output_text\",\"annotations\":[],\"logprobs\":[],\"text\":"),
                        q));
            CHECK(end_event_after(w, "},", 2));
            break;
        case K2A_BLOCK_THINKING:
            CHECK(
                PARTS(w->out, S(EVENT_PREFIX("response.reasoning_summary_text.done")), ref, S("\"summary_index\":0,\"text\":"), q));
            CHECK(end_event_after(w, ",", 1));
            CHECK(PARTS(w->out, S(EVENT_PREFIX("response.reasoning_summary_part.done")), ref,
                        S("\"summary_index\":0,\"part\":{\"type\":\"summary_text\",\"text\":"), q));
            CHECK(end_event_after(w, "},", 2));
            break;
        default:
            CHECK(PARTS(w->out, S(EVENT_PREFIX("response.function_call_arguments.done")), ref, S("\"arguments\":"), q));
            CHECK(end_event_after(w, ",", 1));
            break;
        }
        CHECK(item_event(w, PREFIX_ARGS("response.output_item.done"), it, &q));
    }
    int r;
    if ((r = k2a_buf_reserve(&w->items, q.len + it->call_id.len + it->name.len + 256)) != 0 ||
        (w->items.len != 0 && (r = k2a_buf_append(&w->items, ",", 1)) != 0) || (r = render_item(&w->items, it, &q)) != 0)
        return r == K2A_ETOOBIG ? K2A_EUPSTREAM_TOOBIG : r;
    item_dispose(it);
    if (it != &w->open[--w->nopen]) /* the last one (usually the only one) is not copied onto itself */
        *it = w->open[w->nopen];
    return 0;
}

static int on_block_stop(k2a_responses_writer_t *w, int block)
{
    k2a_responses_item_t *it = find_open(w, block);
    return it != NULL ? close_item(w, it) : 0;
}

static int on_stop(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    k2a_ir_usage_merge(&w->usage, &ev->usage);
    CHECK(start(w));
    /* items the producer left open, in output order */
    while (w->nopen != 0) {
        size_t first = 0;
        for (size_t i = 1; i < w->nopen; ++i)
            if (w->open[i].output < w->open[first].output)
                first = i;
        CHECK(close_item(w, &w->open[first]));
    }
    w->stopped = true;
    w->stop_reason = ev->stop_reason;
    w->finished = true;
    if (w->out == NULL)
        return 0;
    bool incomplete = incomplete_reason(ev->stop_reason) != NULL;
    if (incomplete)
        return response_event(w, PREFIX_ARGS("response.incomplete"), "incomplete", true);
    return response_event(w, PREFIX_ARGS("response.completed"), "completed", true);
}

static int on_error(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    w->error = ev->error != 0 ? ev->error : K2A_EINTERNAL;
    k2a_buf_reset(&w->error_message);
    k2a_buf_append(&w->error_message, ev->error_message.base,
                   ev->error_message.len < w->error_message.max ? ev->error_message.len : w->error_message.max);
    w->finished = true;
    if (w->out == NULL)
        return 0;
    CHECK(start(w));
    return response_event(w, PREFIX_ARGS("response.failed"), "failed", true);
}

/* ---------- web search ---------- */

/* `"item_id":"ws_…","output_index":n,` of the open web_search_call item */
static int search_ref(k2a_responses_writer_t *w)
{
    CHECK(APPEND_LIT(w->out, "\"item_id\":\""));
    CHECK(k2a_buf_appendstr(w->out, w->search_id));
    CHECK(APPEND_LIT(w->out, "\",\"output_index\":"));
    CHECK(append_i64(w->out, w->search_output));
    return k2a_buf_append(w->out, ",", 1);
}

/* The web_search_call item: in progress (ev NULL) or finished with its action. */
static int render_search_item(k2a_buf_t *out, const char *id, const k2a_ir_event_t *ev)
{
    CHECK(APPEND_LIT(out, "{\"id\":\""));
    CHECK(k2a_buf_appendstr(out, id));
    if (ev == NULL)
        return APPEND_LIT(out, "\",\"type\":\"web_search_call\",\"status\":\"in_progress\"}");
    const k2a_ir_search_t *s = ev->search;
    bool failed = s->over || s->results == NULL || (s->failure != NULL && s->failure[0] != '\0');
    CHECK(failed ? APPEND_LIT(out, "\",\"type\":\"web_search_call\",\"status\":\"failed\"")
                 : APPEND_LIT(out, "\",\"type\":\"web_search_call\",\"status\":\"completed\""));
    CHECK(APPEND_LIT(out, ",\"action\":{\"type\":\"search\",\"query\":"));
    CHECK(json_str(out, ev->text.base, ev->text.len));
    CHECK(APPEND_LIT(out, ",\"sources\":["));
    for (size_t i = 0; !failed && i < s->results->n; ++i) {
        CHECK(i != 0 ? APPEND_LIT(out, ",{\"type\":\"url\",\"url\":") : APPEND_LIT(out, "{\"type\":\"url\",\"url\":"));
        CHECK(json_str(out, s->results->items[i].url.base, s->results->items[i].url.len));
        CHECK(APPEND_LIT(out, "}"));
    }
    return APPEND_LIT(out, "]}}");
}

static int on_search_start(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    CHECK(start(w));
    k2a_responses_make_id(w->search_id, "ws_", w->random, w->random_ctx);
    w->search_output = w->noutput++;
    if (w->out == NULL)
        return 0;
    CHECK(BEGIN_EVENT(w, "response.output_item.added"));
    CHECK(APPEND_LIT(w->out, "\"output_index\":"));
    CHECK(append_i64(w->out, w->search_output));
    CHECK(APPEND_LIT(w->out, ",\"item\":"));
    CHECK(render_search_item(w->out, w->search_id, NULL));
    CHECK(k2a_buf_append(w->out, ",", 1));
    CHECK(end_event(w));
    CHECK(BEGIN_EVENT(w, "response.web_search_call.in_progress"));
    CHECK(search_ref(w));
    CHECK(end_event(w));
    CHECK(BEGIN_EVENT(w, "response.web_search_call.searching"));
    CHECK(search_ref(w));
    return end_event(w);
}

static int on_search_result(k2a_responses_writer_t *w, const k2a_ir_event_t *ev)
{
    if (w->search_id[0] == '\0')
        return K2A_EINTERNAL; /* a result with no search started */
    const k2a_ir_search_t *s = ev->search;
    bool failed = s->over || s->results == NULL || (s->failure != NULL && s->failure[0] != '\0');
    if (w->out != NULL) {
        if (!failed) {
            CHECK(BEGIN_EVENT(w, "response.web_search_call.completed"));
            CHECK(search_ref(w));
            CHECK(end_event(w));
        }
        CHECK(BEGIN_EVENT(w, "response.output_item.done"));
        CHECK(APPEND_LIT(w->out, "\"output_index\":"));
        CHECK(append_i64(w->out, w->search_output));
        CHECK(APPEND_LIT(w->out, ",\"item\":"));
        CHECK(render_search_item(w->out, w->search_id, ev));
        CHECK(k2a_buf_append(w->out, ",", 1));
        CHECK(end_event(w));
    }
    int r;
    if ((w->items.len != 0 && (r = k2a_buf_append(&w->items, ",", 1)) != 0) ||
        (r = render_search_item(&w->items, w->search_id, ev)) != 0)
        return r == K2A_ETOOBIG ? K2A_EUPSTREAM_TOOBIG : r;
    w->search_id[0] = '\0';
    w->mark_items = w->items.len;
    w->mark_output = w->noutput;
    return 0;
}

void k2a_responses_writer_rewind(k2a_responses_writer_t *w)
{
    for (size_t i = 0; i < w->nopen; ++i)
        item_dispose(&w->open[i]);
    w->nopen = 0;
    if (w->items.len > w->mark_items)
        w->items.len = w->mark_items;
    w->noutput = w->mark_output;
    w->any_tool_call = false;
    w->stopped = w->finished = false;
    w->error = 0;
    k2a_buf_reset(&w->error_message);
    w->final_len = 0;
}

int k2a_responses_writer_on_event(void *sink, const k2a_ir_event_t *ev)
{
    k2a_responses_writer_t *w = sink;
    if (w->finished)
        return 0;
    switch (ev->type) {
    case K2A_EV_MESSAGE_START:
        k2a_ir_usage_merge(&w->usage, &ev->usage);
        return start(w);
    case K2A_EV_BLOCK_START:
        return on_block_start(w, ev);
    case K2A_EV_DELTA:
        return on_delta(w, ev);
    case K2A_EV_BLOCK_STOP:
        return on_block_stop(w, ev->index);
    case K2A_EV_USAGE:
        k2a_ir_usage_merge(&w->usage, &ev->usage);
        return 0;
    case K2A_EV_STOP:
        return on_stop(w, ev);
    case K2A_EV_ERROR:
        return on_error(w, ev);
    case K2A_EV_PING:
        return w->out != NULL ? APPEND_LIT(w->out, ": ping\n\n") : 0;
    case K2A_EV_SEARCH_START:
        return on_search_start(w, ev);
    case K2A_EV_SEARCH_RESULT:
        return on_search_result(w, ev);
    }
    return 0;
}

int k2a_responses_writer_items(const k2a_responses_writer_t *w, k2a_buf_t *out)
{
    CHECK(k2a_buf_append(out, "[", 1));
    CHECK(k2a_buf_append(out, w->items.base, w->items.len));
    return k2a_buf_append(out, "]", 1);
}

/* The finished object rendered into out (marks: where its parts are, or NULL), or why there is none */
static int render_final(const k2a_responses_writer_t *w, k2a_buf_t *out, k2a_responses_marks_t *marks)
{
    if (w->error != 0)
        return w->error;
    if (!w->stopped)
        return K2A_EUPSTREAM_TRUNCATED;
    return render_object(w, out, incomplete_reason(w->stop_reason) != NULL ? "incomplete" : "completed", true, marks);
}

int k2a_responses_writer_render(const k2a_responses_writer_t *w, k2a_buf_t *out)
{
    return render_final(w, out, NULL);
}

int k2a_responses_writer_object_parts(const k2a_responses_writer_t *w, k2a_buf_t *scratch,
                                      k2a_str_t parts[K2A_RESPONSES_OBJECT_PARTS], size_t *output)
{
    k2a_str_t obj = k2a_responses_writer_final(w);
    k2a_responses_marks_t m = w->final_marks;
    if (obj.len == 0) {
        size_t at = scratch->len;
        CHECK(render_final(w, scratch, &m));
        obj = k2a_str(scratch->base + at, scratch->len - at);
    }
    /* the echoes cut out only when long enough for the store to share them apart from the fields around them */
    bool instructions = w->instructions_len >= K2A_RESPONSES_STORE_SHARE_MIN, tools = w->tools_len >= K2A_RESPONSES_STORE_SHARE_MIN;
    size_t instructions_at = m.mid_a + w->instructions_at, tools_at = m.mid_b + w->tools_at;
    size_t cut[8] = {w->status_at,
                     instructions ? instructions_at : m.items,
                     instructions ? instructions_at + w->instructions_len : m.items,
                     m.items,
                     m.items + w->items.len,
                     tools ? tools_at : m.usage,
                     tools ? tools_at + w->tools_len : m.usage,
                     m.usage};
    size_t from = 0;
    for (size_t i = 0; i < 8; ++i) {
        parts[i] = k2a_str(obj.base + from, cut[i] - from);
        from = cut[i];
    }
    parts[8] = k2a_str(obj.base + from, obj.len - from);
    *output = 4;
    return 0;
}

k2a_str_t k2a_responses_writer_final(const k2a_responses_writer_t *w)
{
    if (w->out == NULL || w->final_len == 0 || w->error != 0 || !w->stopped || w->final_at + w->final_len > w->out->len)
        return K2A_STR_NULL;
    return k2a_str(w->out->base + w->final_at, w->final_len);
}

k2a_str_t k2a_responses_writer_error_message(const k2a_responses_writer_t *w)
{
    return k2a_str(w->error_message.base, w->error_message.len);
}
