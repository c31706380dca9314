/*
 * Kiro response event parser (see kiro_resp.h). Frames are dispatched on their headers; the JSON payload is read by
 * one reused yajl handle (allow_multiple_values, strings not validated because a tool-input piece may end inside a
 * UTF-8 sequence) into offsets of a per-frame scratch buffer. Text goes through a UTF-8 joiner and, when thinking was
 * requested, a small state machine that recognises a leading <thinking> tag and an end tag followed by "\n\n" (or by
 * nothing but blanks at a boundary); tool input pieces go through their own UTF-8 joiner and are forwarded as they
 * come. Every IR event goes through emit(), which also feeds the §4.6 output-token counter. Payload reading lives in
 * kiro_resp_payload.c.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_parse.h>
#include "convert/json_compact.h"
#include "convert/kiro_resp.h"
#include "convert/kiro_resp_internal.h"
#include "core/errors.h"
#include "core/log.h"

#define TAG_OPEN "<thinking>"
#define TAG_OPEN_LEN 10
#define TAG_CLOSE "</thinking>"
#define TAG_CLOSE_LEN 11
#define MAX_ID_LEN 1024
#define MAX_FRAME_SCRATCH (64 * 1024 * 1024)
#define REPLACEMENT "\xef\xbf\xbd"

/* ---------- small helpers ---------- */

static const char *find_bytes(const char *hay, size_t len, const char *needle, size_t n)
{
    if (n == 0 || len < n)
        return NULL;
    const char *end = hay + len - n + 1;
    for (const char *p = hay; p < end; ++p) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (p == NULL)
            return NULL;
        if (memcmp(p, needle, n) == 0)
            return p;
    }
    return NULL;
}

/* The string value of header `name`, or NULL. Local so that the parser does not depend on the decoder's object file. */
static const char *header_str(const k2a_es_frame_t *f, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < f->nheaders; ++i) {
        const k2a_es_header_t *h = &f->headers[i];
        if (h->name_len == n && memcmp(h->name, name, n) == 0 && h->type == K2A_ES_STRING) {
            *len = h->v.s.len;
            return h->v.s.base;
        }
    }
    *len = 0;
    return NULL;
}

/* ---------- emitting ---------- */

static int emit(k2a_kiro_resp_t *p, const k2a_ir_event_t *ev)
{
    k2a_tokens_counter_add(&p->counter, ev);
    return p->sink(p->sink_ctx, ev);
}

static int64_t context_tokens(const k2a_kiro_resp_t *p)
{
    if (p->seen.context_usage_pct < 0)
        return -1;
    int64_t window = p->cfg.context_window > 0 ? p->cfg.context_window : K2A_KIRO_RESP_DEFAULT_CONTEXT_WINDOW;
    return (int64_t)(p->seen.context_usage_pct * (double)window / 100.0);
}

/* The rule (documented in kiro_resp.h): the estimate, unless reconcile_input asks for Kiro's larger figure. */
static int64_t reconciled_input(const k2a_kiro_resp_t *p)
{
    int64_t in = p->cfg.input_tokens, ctx = context_tokens(p);
    if (p->cfg.reconcile_input && ctx > in)
        in = ctx;
    return in;
}

#define TU_INPUT_MASK ((1u << K2A_KIRO_TU_UNCACHED) | (1u << K2A_KIRO_TU_CACHE_READ) | (1u << K2A_KIRO_TU_CACHE_WRITE))

/* metadataEvent.tokenUsage, when it came, is Kiro's real count and replaces the estimates: input_tokens = uncached,
 * cache_read_input_tokens = cacheRead, cache_creation_input_tokens = cacheWrite (as Anthropic splits them). */
static k2a_ir_usage_t current_usage(const k2a_kiro_resp_t *p)
{
    k2a_ir_usage_t u;
    memset(&u, 0, sizeof(u));
    u.input_tokens = reconciled_input(p);
    u.output_tokens = k2a_tokens_counter_total(&p->counter);
    if (p->token_usage_mask & TU_INPUT_MASK) {
        u.input_tokens = p->token_usage[K2A_KIRO_TU_UNCACHED];
        u.cache_read_input_tokens = p->token_usage[K2A_KIRO_TU_CACHE_READ];
        u.cache_creation_input_tokens = p->token_usage[K2A_KIRO_TU_CACHE_WRITE];
    }
    if (p->token_usage_mask & (1u << K2A_KIRO_TU_OUTPUT))
        u.output_tokens = p->token_usage[K2A_KIRO_TU_OUTPUT];
    u.credits = p->seen.credits;
    u.context_usage_pct = p->seen.context_usage_pct;
    return u;
}

/* The answer is being cut for length (ContentLengthExceeded, MAX_TOKENS, context window full): an open tool block keeps
 * its partial input, as in Anthropic's API, and the stop reason tells the client. */
static bool cut_for_length(const k2a_kiro_resp_t *p)
{
    return p->stop_override == K2A_STOP_MAX_TOKENS || p->stop_override == K2A_STOP_CONTEXT_WINDOW;
}

static int emit_error(k2a_kiro_resp_t *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int emit_error(k2a_kiro_resp_t *p, int code, const char *fmt, ...)
{
    va_list ap;
    k2a_buf_reset(&p->msg);
    va_start(ap, fmt);
    int r = k2a_buf_vappendf(&p->msg, fmt, ap);
    va_end(ap);
    if (r != 0 || p->msg.len == 0) {
        k2a_buf_reset(&p->msg);
        k2a_buf_appendstr(&p->msg, k2a_strerror(code));
    }
    k2a_ir_event_t ev = {.type = K2A_EV_ERROR, .error = code};
    ev.error_message = k2a_str(p->msg.base != NULL ? p->msg.base : "", p->msg.len);
    ev.usage = current_usage(p);
    k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "kiro response failed (%s): %.*s", k2a_errname(code), (int)p->msg.len,
                   p->msg.base != NULL ? p->msg.base : "");
    p->seen.finished = true;
    p->seen.error = code;
    r = emit(p, &ev);
    return r != 0 ? r : code;
}

static int close_open_block(k2a_kiro_resp_t *p);

/* Makes sure a block of `kind` is open, closing any other block first. */
static int ensure_block(k2a_kiro_resp_t *p, k2a_ir_block_kind_t kind)
{
    int r;
    if (p->open_index >= 0 && p->open_kind == kind)
        return 0;
    if (p->open_index >= 0 && p->open_kind == K2A_BLOCK_TOOL_USE)
        k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "tool call %.*s ended by text without stop:true after %zu bytes",
                       (int)p->tool_id.len, p->tool_id.base, p->tool_bytes);
    if ((r = close_open_block(p)) != 0)
        return r;
    k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_START, .index = p->next_index, .block = kind};
    p->open_index = p->next_index++;
    p->open_kind = kind;
    p->seen.content_emitted = true;
    return emit(p, &ev);
}

static int emit_delta(k2a_kiro_resp_t *p, k2a_ir_block_kind_t kind, const char *s, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if (kind == K2A_BLOCK_THINKING && p->cfg.thinking_omitted) {
        /* not sent, but generated: count it as Anthropic bills it */
        k2a_ir_event_t hidden = {.type = K2A_EV_DELTA, .index = p->open_index, .block = kind, .text = k2a_str(s, n)};
        k2a_tokens_counter_add(&p->counter, &hidden);
        return 0;
    }
    k2a_ir_event_t ev = {.type = K2A_EV_DELTA, .index = p->open_index, .block = kind, .text = k2a_str(s, n)};
    if ((r = k2a__kiro_utf8_sanitize(&p->fix, &ev.text.base, &ev.text.len)) != 0)
        return r;
    /* what the client receives of a tool input is checked when the block closes (bounded by max_tool_input) */
    if (kind == K2A_BLOCK_TOOL_USE && (r = k2a_buf_append(&p->tool_input, ev.text.base, ev.text.len)) != 0)
        return r;
    return emit(p, &ev);
}

static int emit_text(k2a_kiro_resp_t *p, k2a_ir_block_kind_t kind, const char *s, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if ((r = ensure_block(p, kind)) != 0)
        return r;
    return emit_delta(p, kind, s, n);
}

static bool id_is_done(const k2a_kiro_resp_t *p, const char *id, size_t len)
{
    const char *s = p->done_tools.base, *end = s + p->done_tools.len;
    while (s != NULL && s < end) {
        size_t l = strlen(s);
        if (l == len && memcmp(s, id, len) == 0)
            return true;
        s += l + 1;
    }
    return false;
}

/* True when json[0..len) is exactly one JSON object (surrounding whitespace allowed). One yajl pass without callbacks:
 * yajl keeps its nesting stack on the heap, so any depth is safe. */
static bool is_json_object(const char *json, size_t len)
{
    if (!k2a_json_looks_like_object(json, len))
        return false;
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (h == NULL)
        return false;
    bool ok = yajl_parse(h, (const unsigned char *)json, len) == yajl_status_ok && yajl_complete_parse(h) == yajl_status_ok;
    yajl_free(h);
    return ok;
}

static int close_tool(k2a_kiro_resp_t *p)
{
    int r;
    if (p->tool_tail_len != 0) {
        /* the last piece ended inside a UTF-8 sequence and nothing completed it */
        k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "tool input of %.*s ends inside a UTF-8 sequence",
                       (int)p->tool_id.len, p->tool_id.base);
        p->tool_tail_len = 0;
        p->tool_bytes += 3;
        if ((r = emit_delta(p, K2A_BLOCK_TOOL_USE, REPLACEMENT, 3)) != 0)
            return r;
    }
    /* An empty input means {} (a tool without parameters); anything else must be a JSON object, or the client would take a
     * broken input for a complete call (Claude Code then runs Write with {}: peers.md §2.2). Unless the response is being
     * cut for length (ContentLengthExceeded, context window full): then, as in Anthropic's API, the block keeps its
     * partial input and the stop reason (max_tokens / model_context_window_exceeded) tells the client. */
    if (p->tool_input.len != 0 && !cut_for_length(p) && !is_json_object(p->tool_input.base, p->tool_input.len))
        return emit_error(p, K2A_EUPSTREAM_EVENT,
                          "Kiro sent tool call %.*s (%.*s) with an input that is not a JSON object (%zu bytes)",
                          (int)p->tool_name.len, p->tool_name.base, (int)p->tool_id.len, p->tool_id.base, p->tool_input.len);
    k2a_buf_reset(&p->tool_input);
    if ((r = k2a_buf_append(&p->done_tools, p->tool_id.base, p->tool_id.len)) != 0 ||
        (r = k2a_buf_append(&p->done_tools, "", 1)) != 0)
        return r;
    k2a_buf_reset(&p->tool_id);
    k2a_buf_reset(&p->tool_name);
    return 0;
}

static int close_open_block(k2a_kiro_resp_t *p)
{
    int r;
    if (p->open_index < 0)
        return 0;
    if (p->open_kind == K2A_BLOCK_TOOL_USE && (r = close_tool(p)) != 0)
        return r;
    k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_STOP, .index = p->open_index, .block = p->open_kind};
    if (p->open_kind == K2A_BLOCK_THINKING) {
        if (p->reason_tail_len != 0) {
            /* reasoning text that ended inside a UTF-8 sequence */
            p->reason_tail_len = 0;
            if ((r = emit_delta(p, K2A_BLOCK_THINKING, REPLACEMENT, 3)) != 0)
                return r;
        }
        ev.signature = k2a_str(p->think_sig.base != NULL ? p->think_sig.base : "", p->think_sig.len);
    }
    p->open_index = -1;
    r = emit(p, &ev);
    k2a_buf_reset(&p->think_sig);
    return r;
}

/* ---------- text and the thinking splitter ---------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Length of the longest suffix of s that is a proper prefix of the end tag (it may still become the tag). */
static size_t tag_prefix_suffix(const char *s, size_t n)
{
    size_t max = n < TAG_CLOSE_LEN - 1 ? n : TAG_CLOSE_LEN - 1;
    for (size_t k = max; k > 0; --k)
        if (memcmp(s + n - k, TAG_CLOSE, k) == 0)
            return k;
    return 0;
}

/* Runs the splitter over p->pend; consumes what it emitted. Called after new text was appended. */
static int think_process(k2a_kiro_resp_t *p)
{
    int r;
    size_t used = 0;
    for (;;) {
        const char *s = p->pend.base + used;
        size_t n = p->pend.len - used;
        if (p->think == K2A_KIRO_THINK_DETECT) {
            size_t i = 0;
            while (i < n && is_blank(s[i]))
                ++i;
            if (i == n)
                break; /* only blanks so far: wait */
            size_t rl = n - i;
            if (rl >= TAG_OPEN_LEN && memcmp(s + i, TAG_OPEN, TAG_OPEN_LEN) == 0) {
                /* blanks before the tag are dropped: they would make an empty-looking text block before the thinking */
                p->think = K2A_KIRO_THINK_IN;
                p->think_strip_nl = true;
                if ((r = ensure_block(p, K2A_BLOCK_THINKING)) != 0)
                    return r;
                used += i + TAG_OPEN_LEN;
                continue;
            }
            if (rl < TAG_OPEN_LEN && memcmp(s + i, TAG_OPEN, rl) == 0)
                break; /* a prefix of the tag: wait */
            p->think = K2A_KIRO_THINK_OFF;
            if ((r = emit_text(p, K2A_BLOCK_TEXT, s, n)) != 0)
                return r;
            used += n;
            break;
        } else if (p->think == K2A_KIRO_THINK_IN) {
            if (p->think_strip_nl) {
                if (n == 0)
                    break;
                p->think_strip_nl = false;
                if (s[0] == '\n') {
                    ++used;
                    continue;
                }
            }
            size_t from = 0;
            bool waiting = false, ended = false;
            for (;;) {
                const char *q = find_bytes(s + from, n - from, TAG_CLOSE, TAG_CLOSE_LEN);
                if (q == NULL)
                    break;
                size_t at = (size_t)(q - s), after = at + TAG_CLOSE_LEN, avail = n - after;
                if (at > 0 && s[at - 1] == '`') {
                    from = at + 1; /* `</thinking>` quoted in backticks is not a tag */
                    continue;
                }
                if (avail >= 2 && s[after] == '\n' && s[after + 1] == '\n') {
                    if ((r = emit_delta(p, K2A_BLOCK_THINKING, s, at)) != 0 || (r = close_open_block(p)) != 0)
                        return r;
                    used += after + 2; /* the "\n\n" after the tag is swallowed */
                    p->think = K2A_KIRO_THINK_OFF;
                    ended = true;
                    break;
                }
                if (avail == 0 || (avail == 1 && s[after] == '\n')) {
                    /* may still become "</thinking>\n\n": emit what is before it and wait */
                    if ((r = emit_delta(p, K2A_BLOCK_THINKING, s, at)) != 0)
                        return r;
                    used += at;
                    waiting = true;
                    break;
                }
                from = at + 1; /* followed by something else: part of the thinking text */
            }
            if (ended)
                continue;
            if (waiting)
                break;
            size_t keep = tag_prefix_suffix(s, n);
            if ((r = emit_delta(p, K2A_BLOCK_THINKING, s, n - keep)) != 0)
                return r;
            used += n - keep;
            break;
        } else {
            if ((r = emit_text(p, K2A_BLOCK_TEXT, s, n)) != 0)
                return r;
            used += n;
            break;
        }
    }
    k2a_buf_consume(&p->pend, used);
    return 0;
}

/* At a boundary (a tool starts, the stream ends) the splitter cannot wait any longer. */
static int think_flush(k2a_kiro_resp_t *p)
{
    int r = 0;
    const char *s = p->pend.base;
    size_t n = p->pend.len;
    if (p->think == K2A_KIRO_THINK_DETECT) {
        size_t i = 0;
        while (i < n && is_blank(s[i]))
            ++i;
        if (i != n)
            r = emit_text(p, K2A_BLOCK_TEXT, s, n);
    } else if (p->think == K2A_KIRO_THINK_IN) {
        /* an end tag followed by nothing but blanks ends the thinking here */
        size_t end = n;
        for (const char *q = s; (q = find_bytes(q, (size_t)(s + n - q), TAG_CLOSE, TAG_CLOSE_LEN)) != NULL; ++q) {
            size_t at = (size_t)(q - s), i = at + TAG_CLOSE_LEN;
            if (at > 0 && s[at - 1] == '`')
                continue;
            while (i < n && is_blank(s[i]))
                ++i;
            if (i == n) {
                end = at;
                break;
            }
        }
        if ((r = emit_delta(p, K2A_BLOCK_THINKING, s, end)) == 0 && p->open_index >= 0 && p->open_kind == K2A_BLOCK_THINKING)
            r = close_open_block(p);
    } else if (n != 0) {
        r = emit_text(p, K2A_BLOCK_TEXT, s, n);
    }
    k2a_buf_reset(&p->pend);
    if (p->think != K2A_KIRO_THINK_OFF)
        p->think = K2A_KIRO_THINK_OFF;
    return r;
}

/* Flushes everything text-side at a boundary: a held-back UTF-8 tail (as U+FFFD: nothing can complete it now) and the
 * splitter's pending bytes. */
static int text_boundary(k2a_kiro_resp_t *p)
{
    int r;
    if (p->text_tail_len != 0) {
        p->text_tail_len = 0;
        if ((r = k2a_buf_append(&p->pend, REPLACEMENT, 3)) != 0)
            return r;
        if (p->think == K2A_KIRO_THINK_OFF) {
            r = emit_text(p, K2A_BLOCK_TEXT, p->pend.base, p->pend.len);
            k2a_buf_reset(&p->pend);
            if (r != 0)
                return r;
        }
    }
    return think_flush(p);
}

static int on_content(k2a_kiro_resp_t *p, const char *s, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if (p->cfg.dedupe_repeated_chunks) {
        if (p->last_chunk.len == n && memcmp(p->last_chunk.base, s, n) == 0)
            return 0;
        k2a_buf_reset(&p->last_chunk);
        if ((r = k2a_buf_append(&p->last_chunk, s, n)) != 0)
            return r;
    }
    /* join a UTF-8 sequence split between chunks, hold back an incomplete one at the end */
    if (p->text_tail_len != 0) {
        k2a_buf_reset(&p->work);
        if ((r = k2a_buf_append(&p->work, p->text_tail, p->text_tail_len)) != 0 || (r = k2a_buf_append(&p->work, s, n)) != 0)
            return r;
        s = p->work.base;
        n = p->work.len;
        p->text_tail_len = 0;
    }
    size_t ok = k2a__kiro_utf8_complete_prefix(s, n);
    p->text_tail_len = n - ok;
    memcpy(p->text_tail, s + ok, p->text_tail_len);
    n = ok;
    if (n == 0)
        return 0;
    if (p->think == K2A_KIRO_THINK_OFF && p->pend.len == 0)
        return emit_text(p, K2A_BLOCK_TEXT, s, n);
    if ((r = k2a_buf_append(&p->pend, s, n)) != 0)
        return r;
    return think_process(p);
}

/* ---------- tools ---------- */

static int tool_piece(k2a_kiro_resp_t *p, const char *s, size_t n)
{
    int r;
    if (n == 0)
        return 0;
    if (p->tool_tail_len != 0) {
        k2a_buf_reset(&p->work);
        if ((r = k2a_buf_append(&p->work, p->tool_tail, p->tool_tail_len)) != 0 || (r = k2a_buf_append(&p->work, s, n)) != 0)
            return r;
        s = p->work.base;
        n = p->work.len;
        p->tool_tail_len = 0;
    }
    size_t ok = k2a__kiro_utf8_complete_prefix(s, n);
    p->tool_tail_len = n - ok;
    memcpy(p->tool_tail, s + ok, p->tool_tail_len);
    size_t max = p->cfg.max_tool_input != 0 ? p->cfg.max_tool_input : K2A_KIRO_RESP_DEFAULT_MAX_TOOL_INPUT;
    if (p->tool_bytes + n > max)
        return emit_error(p, K2A_EUPSTREAM_TOOL_TOOBIG, "the input of tool call %.*s (%.*s) exceeds %zu bytes",
                          (int)p->tool_name.len, p->tool_name.base, (int)p->tool_id.len, p->tool_id.base, max);
    p->tool_bytes += ok;
    return emit_delta(p, K2A_BLOCK_TOOL_USE, s, ok);
}

static int start_tool(k2a_kiro_resp_t *p, const char *id, size_t id_len, const char *name, size_t name_len)
{
    int r;
    if ((r = text_boundary(p)) != 0 || (r = close_open_block(p)) != 0)
        return r;
    if (id_len > MAX_ID_LEN || name_len > MAX_ID_LEN)
        return emit_error(p, K2A_EUPSTREAM_EVENT, "toolUseEvent with a toolUseId or name longer than %d bytes", MAX_ID_LEN);
    k2a_str_t client = k2a_str(name, name_len);
    if (p->cfg.map_tool_name != NULL) {
        k2a_str_t mapped = p->cfg.map_tool_name(p->cfg.map_tool_name_ctx, client);
        if (mapped.len != 0)
            client = mapped;
    }
    /* the id is kept as sent (continuation frames are matched on it); the client gets valid UTF-8 for both */
    k2a_buf_reset(&p->tool_id);
    k2a_buf_reset(&p->tool_name);
    if ((r = k2a__kiro_utf8_sanitize(&p->fix, &client.base, &client.len)) != 0 ||
        (r = k2a_buf_append(&p->tool_id, id, id_len)) != 0 || (r = k2a_buf_append(&p->tool_name, client.base, client.len)) != 0)
        return r;
    p->tool_bytes = 0;
    p->tool_tail_len = 0;
    k2a_buf_reset(&p->tool_input);
    p->seen.tool_used = true;
    /* text after the tool opens a new block and is never taken for a thinking tag */
    p->think = K2A_KIRO_THINK_OFF;
    k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_START, .index = p->next_index, .block = K2A_BLOCK_TOOL_USE};
    ev.tool_id = k2a_str(p->tool_id.base, p->tool_id.len);
    ev.tool_name = k2a_str(p->tool_name.base, p->tool_name.len);
    if ((r = k2a__kiro_utf8_sanitize(&p->fix, &ev.tool_id.base, &ev.tool_id.len)) != 0)
        return r;
    p->open_index = p->next_index++;
    p->open_kind = K2A_BLOCK_TOOL_USE;
    p->seen.content_emitted = true;
    return emit(p, &ev);
}

static int on_tool_event(k2a_kiro_resp_t *p)
{
    struct st_k2a_kiro_fields_t *f = &p->f;
    const char *sc = p->scratch.base;
    const char *id = sc + f->id_off, *name = sc + f->name_off;
    size_t id_len = f->has_id ? f->id_len : 0, name_len = f->has_name ? f->name_len : 0;
    bool tool_open = p->open_index >= 0 && p->open_kind == K2A_BLOCK_TOOL_USE;
    int r;

    if (id_len == 0 && name_len == 0) {
        /* a bare {"input":..} / {"stop":true}: only meaningful for the open tool */
        if (!tool_open) {
            k2a_debug("toolUseEvent without toolUseId and name, no tool open: ignored");
            return 0;
        }
    } else if (!(tool_open && id_len != 0 && p->tool_id.len == id_len && memcmp(p->tool_id.base, id, id_len) == 0)) {
        /* not the open tool: a new one (closing the open one), or a late duplicate of a finished one */
        if (id_len != 0 && id_is_done(p, id, id_len)) {
            k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "toolUseEvent for finished tool %.*s: ignored", (int)id_len,
                           id);
            return 0;
        }
        if (id_len == 0 || name_len == 0) {
            k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "toolUseEvent for unknown tool %.*s without %s: ignored",
                           (int)id_len, id, id_len == 0 ? "toolUseId" : "name");
            return 0;
        }
        if ((r = start_tool(p, id, id_len, name, name_len)) != 0)
            return r;
    }
    if (f->has_input) {
        const char *in = p->scratch.base + f->input_off;
        size_t in_len = f->input_len;
        if (f->input_is_object) {
            /* an object (not a string piece): re-serialise it; "{}" is the "no input" marker, not JSON to append */
            k2a_buf_reset(&p->work);
            if ((r = k2a_json_compact(&p->work, f->payload + f->input_obj_start, f->input_obj_end - f->input_obj_start)) != 0)
                return emit_error(p, K2A_EUPSTREAM_EVENT, "toolUseEvent input object is not valid JSON");
            if (k2a__kiro_str_eq(p->work.base, p->work.len, "{}"))
                in_len = 0;
            else {
                /* copy: tool_piece() reuses `work` for the UTF-8 joiner */
                size_t off = p->scratch.len;
                if ((r = k2a_buf_append(&p->scratch, p->work.base, p->work.len)) != 0)
                    return r;
                in = p->scratch.base + off;
                in_len = p->work.len;
            }
        } else if (f->stop && p->tool_bytes != 0 && k2a__kiro_str_eq(in, in_len, "{}")) {
            /* kiro2api 1766ca5: a stop frame may carry "{}" after real pieces; appending it would corrupt the JSON */
            in_len = 0;
        }
        if ((r = tool_piece(p, in, in_len)) != 0)
            return r;
    }
    if (f->stop)
        return close_open_block(p);
    return 0;
}

/* ---------- frames ---------- */

static int map_exception(const char *type, size_t len)
{
    if (k2a__kiro_str_contains(type, len, "Throttling"))
        return K2A_ETHROTTLED;
    if (k2a__kiro_str_contains(type, len, "ServiceQuotaExceeded") || k2a__kiro_str_contains(type, len, "QuotaExceeded"))
        return K2A_EEXHAUSTED;
    if (k2a__kiro_str_contains(type, len, "AccessDenied") || k2a__kiro_str_contains(type, len, "Unauthorized") ||
        k2a__kiro_str_contains(type, len, "ExpiredToken"))
        return K2A_EUPSTREAM_AUTH;
    if (k2a__kiro_str_contains(type, len, "Validation"))
        return K2A_EUPSTREAM_BAD_REQUEST;
    if (k2a__kiro_str_contains(type, len, "InternalServer") || k2a__kiro_str_contains(type, len, "ServiceUnavailable"))
        return K2A_EUPSTREAM_SERVER;
    return K2A_EUPSTREAM_EXCEPTION;
}

static int finish_ok(k2a_kiro_resp_t *p)
{
    int r;
    if ((r = text_boundary(p)) != 0 || (r = close_open_block(p)) != 0)
        return r;
    k2a_kiro_stop_t ks = p->seen.stop;
    bool filtered = ks == K2A_KIRO_STOP_CONTENT_FILTERED || ks == K2A_KIRO_STOP_GUARDRAIL;
    if (filtered && !p->seen.content_emitted) /* nothing to show: an error in the client's dialect, as KRA answers it */
        return emit_error(p, K2A_EUPSTREAM_FILTERED, "Request was blocked by upstream content filtering%s",
                          ks == K2A_KIRO_STOP_GUARDRAIL ? " (guardrail intervened)" : "");
    if (ks == K2A_KIRO_STOP_MALFORMED_TOOL_USE || ks == K2A_KIRO_STOP_MALFORMED_MODEL_OUTPUT)
        return emit_error(p, K2A_EUPSTREAM_EXCEPTION, "Kiro ended the answer with stopReason %s",
                          ks == K2A_KIRO_STOP_MALFORMED_TOOL_USE ? "MALFORMED_TOOL_USE" : "MALFORMED_MODEL_OUTPUT");
    k2a_ir_event_t ev = {.type = K2A_EV_STOP};
    if (p->stop_override >= 0)
        ev.stop_reason = (k2a_ir_stop_reason_t)p->stop_override;
    else if (filtered)
        ev.stop_reason = K2A_STOP_REFUSAL;
    else if (ks == K2A_KIRO_STOP_STOP_SEQUENCE)
        ev.stop_reason = K2A_STOP_STOP_SEQUENCE;
    else
        ev.stop_reason = p->seen.tool_used ? K2A_STOP_TOOL_USE : K2A_STOP_END_TURN;
    ev.usage = current_usage(p);
    p->seen.finished = true;
    return emit(p, &ev);
}

/* exception and error frames (is_error: :message-type error) */
static int on_exception(k2a_kiro_resp_t *p, const k2a_es_frame_t *fr, bool is_error)
{
    size_t tlen, mlen;
    const char *type = header_str(fr, is_error ? ":error-code" : ":exception-type", &tlen);
    const char *msg = is_error ? header_str(fr, ":error-message", &mlen) : NULL;
    bool parsed = k2a__kiro_parse_payload(p, fr, NULL, 0) == 0;
    const char *sc = p->scratch.base;
    if ((type == NULL || tlen == 0) && parsed && p->f.type_len != 0) {
        type = sc + p->f.type_off;
        tlen = p->f.type_len;
    }
    if (parsed && p->f.message_len != 0) {
        msg = sc + p->f.message_off;
        mlen = p->f.message_len;
    }
    if (msg == NULL) {
        /* not JSON: quote the payload itself, bounded */
        msg = parsed ? "" : fr->payload;
        mlen = parsed ? 0 : (fr->payload_len > 512 ? 512 : fr->payload_len);
    }
    if (type == NULL) {
        type = is_error ? "error" : "exception";
        tlen = strlen(type);
    }
    /* the ERROR message buffer is bounded: keep the quoted parts short enough to fit */
    if (mlen > 2048)
        mlen = 2048;
    if (tlen > 256)
        tlen = 256;
    const char *reason = parsed ? sc + p->f.reason_off : "";
    size_t rlen = parsed ? p->f.reason_len : 0;
    if (k2a__kiro_str_contains(type, tlen, "ContentLengthExceeded") ||
        k2a__kiro_str_contains(type, tlen, "CONTENT_LENGTH_EXCEEDS") ||
        k2a__kiro_str_contains(reason, rlen, "CONTENT_LENGTH_EXCEEDS")) {
        k2a_log_fields(K2A_LOG_INFO, p->cfg.request_id, NULL, 0, "kiro %.*s: ending with max_tokens", (int)tlen, type);
        p->stop_override = K2A_STOP_MAX_TOKENS;
        return finish_ok(p);
    }
    int r;
    if ((r = text_boundary(p)) != 0) /* what was held back is still content the client should see */
        return r;
    return emit_error(p, map_exception(type, tlen), "Kiro %s %.*s: %.*s", is_error ? "error" : "exception", (int)tlen, type,
                      (int)mlen, msg);
}

/* ---------- the 2026 events: metadata, reasoning, metering, invalid state ---------- */

static void set_context_pct(k2a_kiro_resp_t *p, double pct)
{
    p->seen.context_usage_pct = pct;
    if (pct >= 100 && p->stop_override < 0)
        p->stop_override = K2A_STOP_CONTEXT_WINDOW;
}

static int emit_usage(k2a_kiro_resp_t *p)
{
    k2a_ir_event_t ev = {.type = K2A_EV_USAGE};
    ev.usage = current_usage(p);
    return p->sink(p->sink_ctx, &ev);
}

/* metadataEvent: the stop reason (applied when the answer ends), tokenUsage, contextUsagePercentage. Kiro sends it after
 * the content and before contextUsageEvent and meteringEvent, so it does not end the answer itself. */
static int on_metadata(k2a_kiro_resp_t *p)
{
    struct st_k2a_kiro_fields_t *f = &p->f;
    if (f->has_stop_reason) {
        p->seen.stop = k2a__kiro_parse_stop(p->scratch.base + f->sr_off, f->sr_len);
        if (p->seen.stop == K2A_KIRO_STOP_MAX_TOKENS)
            p->stop_override = K2A_STOP_MAX_TOKENS;
        else if (p->seen.stop == K2A_KIRO_STOP_CONTEXT_WINDOW)
            p->stop_override = K2A_STOP_CONTEXT_WINDOW;
        else if (p->seen.stop == K2A_KIRO_STOP_OTHER)
            k2a_log_fields(K2A_LOG_INFO, p->cfg.request_id, NULL, 0, "unknown Kiro stopReason %.*s: the content decides",
                           (int)(f->sr_len > 64 ? 64 : f->sr_len), p->scratch.base + f->sr_off);
    }
    for (int i = 0; i < K2A_KIRO_TU_MAX; ++i) {
        if (f->tu_mask & (1u << i)) {
            p->token_usage[i] = (int64_t)f->tu[i];
            p->token_usage_mask |= 1u << i;
        }
    }
    if (f->has_pct)
        set_context_pct(p, f->pct);
    return f->tu_mask != 0 || f->has_pct ? emit_usage(p) : 0;
}

/* Joins a UTF-8 sequence split between reasoning pieces and holds back an incomplete one at the end (*s, *n updated). */
static int reason_join(k2a_kiro_resp_t *p, const char **s, size_t *n)
{
    int r;
    if (p->reason_tail_len != 0) {
        k2a_buf_reset(&p->work);
        if ((r = k2a_buf_append(&p->work, p->reason_tail, p->reason_tail_len)) != 0 || (r = k2a_buf_append(&p->work, *s, *n)) != 0)
            return r;
        *s = p->work.base;
        *n = p->work.len;
        p->reason_tail_len = 0;
    }
    size_t ok = k2a__kiro_utf8_complete_prefix(*s, *n);
    p->reason_tail_len = *n - ok;
    memcpy(p->reason_tail, *s + ok, p->reason_tail_len);
    *n = ok;
    return 0;
}

/* reasoningContentEvent {text, signature, redactedContent} (kiro-protocol-2026.md §7). With thinking requested: text is a
 * THINKING block (the one open, or a new one after whatever else is open: GPT models send reasoning after the text), the
 * signature is that block's, redactedContent a REDACTED_THINKING block of its own. Without: the text is plain text (as
 * KRA does) and the rest is dropped (a signature or opaque data means nothing outside a thinking block). */
static int on_reasoning(k2a_kiro_resp_t *p)
{
    struct st_k2a_kiro_fields_t *f = &p->f;
    const char *sc = p->scratch.base;
    int r;
    if (!p->cfg.thinking) {
        if (f->has_signature || f->has_redacted)
            k2a_debug("reasoning signature / redacted content dropped: thinking was not requested");
        return f->has_text ? on_content(p, sc + f->text_off, f->text_len) : 0;
    }
    if ((f->has_text && f->text_len != 0) || (f->has_signature && f->sig_len != 0)) {
        bool reasoning_open = p->open_index >= 0 && p->open_kind == K2A_BLOCK_THINKING && p->think == K2A_KIRO_THINK_OFF;
        if (!reasoning_open && ((r = text_boundary(p)) != 0 || (r = ensure_block(p, K2A_BLOCK_THINKING)) != 0))
            return r;
        if (f->has_text && f->text_len != 0) {
            const char *s = sc + f->text_off;
            size_t n = f->text_len;
            if ((r = reason_join(p, &s, &n)) != 0 || (r = emit_delta(p, K2A_BLOCK_THINKING, s, n)) != 0)
                return r;
        }
        if (f->has_signature && f->sig_len != 0) {
            k2a_buf_reset(&p->think_sig);
            const char *sig = sc + f->sig_off;
            size_t n = f->sig_len;
            if ((r = k2a__kiro_utf8_sanitize(&p->fix, &sig, &n)) != 0)
                return r;
            if (k2a_buf_append(&p->think_sig, sig, n) != 0)
                k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "reasoning signature of %zu bytes dropped (too long)", n);
        }
    }
    if (f->has_redacted && f->red_len != 0) {
        if ((r = text_boundary(p)) != 0 || (r = close_open_block(p)) != 0)
            return r;
        k2a_ir_event_t ev = {.type = K2A_EV_BLOCK_START, .index = p->next_index++, .block = K2A_BLOCK_REDACTED_THINKING};
        ev.text = k2a_str(sc + f->red_off, f->red_len);
        if ((r = k2a__kiro_utf8_sanitize(&p->fix, &ev.text.base, &ev.text.len)) != 0)
            return r;
        p->seen.content_emitted = true;
        if ((r = emit(p, &ev)) != 0)
            return r;
        k2a_ir_event_t stop = {.type = K2A_EV_BLOCK_STOP, .index = ev.index, .block = K2A_BLOCK_REDACTED_THINKING};
        return emit(p, &stop);
    }
    return 0;
}

/* meteringEvent: Kiro's last frame, after which the connection often stays open: it completes the answer at once. Inside a
 * tool call (an order Kiro does not send) that would close a call whose input may be cut: an ERROR instead. */
static int on_metering(k2a_kiro_resp_t *p, bool parsed)
{
    int r;
    if (parsed && p->f.has_usage)
        p->seen.credits = (p->seen.credits < 0 ? 0 : p->seen.credits) + p->f.usage;
    p->seen.metered = true;
    if ((r = emit_usage(p)) != 0)
        return r;
    if (p->open_index >= 0 && p->open_kind == K2A_BLOCK_TOOL_USE && !cut_for_length(p))
        return emit_error(p, K2A_EUPSTREAM_TRUNCATED,
                          "Kiro sent its last frame (meteringEvent) inside tool call %.*s (%.*s) after %zu bytes of input",
                          (int)p->tool_name.len, p->tool_name.base, (int)p->tool_id.len, p->tool_id.base, p->tool_bytes);
    return finish_ok(p);
}

static int on_event(k2a_kiro_resp_t *p, const k2a_es_frame_t *fr, const char *et, size_t etl)
{
    int r;
    enum { E_TEXT, E_TOOL, E_METER, E_CONTEXT, E_METADATA, E_REASONING, E_INVALID } kind;
    if (k2a__kiro_str_eq(et, etl, "assistantResponseEvent"))
        kind = E_TEXT;
    else if (k2a__kiro_str_eq(et, etl, "toolUseEvent"))
        kind = E_TOOL;
    else if (k2a__kiro_str_eq(et, etl, "meteringEvent"))
        kind = E_METER;
    else if (k2a__kiro_str_eq(et, etl, "contextUsageEvent"))
        kind = E_CONTEXT;
    else if (k2a__kiro_str_eq(et, etl, "metadataEvent"))
        kind = E_METADATA;
    else if (k2a__kiro_str_eq(et, etl, "reasoningContentEvent"))
        kind = E_REASONING;
    else if (k2a__kiro_str_eq(et, etl, "invalidStateEvent"))
        kind = E_INVALID;
    else {
        /* messageMetadataEvent ({conversationId} / utteranceId) and anything newer: nothing for the client */
        ++p->seen.ignored_frames;
        k2a_debug("kiro event %.*s ignored", (int)etl, et);
        return 0;
    }
    if ((r = k2a__kiro_parse_payload(p, fr, et, etl)) != 0) {
        if (r != K2A_EUPSTREAM_EVENT)
            return r;
        if (kind == E_METER || kind == E_CONTEXT || kind == E_METADATA) {
            k2a_log_fields(K2A_LOG_WARN, p->cfg.request_id, NULL, 0, "malformed %.*s payload ignored", (int)etl, et);
            return kind == E_METER ? on_metering(p, false) : 0; /* still the last frame */
        }
        /* flushing held-back text may itself end the response (closing a tool whose input is not JSON): one ERROR only */
        if ((r = text_boundary(p)) != 0)
            return r;
        return emit_error(p, K2A_EUPSTREAM_EVENT, "Kiro sent a malformed %.*s payload (%zu bytes)", (int)etl, et, fr->payload_len);
    }
    switch (kind) {
    case E_TEXT:
        if (p->f.has_followup) /* a follow-up suggestion, not part of the answer (AIClient-2-API skips these too) */
            return 0;
        if (p->f.has_content)
            return on_content(p, p->scratch.base + p->f.content_off, p->f.content_len);
        return 0;
    case E_TOOL:
        return on_tool_event(p);
    case E_METER:
        return on_metering(p, true);
    case E_CONTEXT:
        if (!p->f.has_pct)
            return 0;
        set_context_pct(p, p->f.pct);
        return emit_usage(p);
    case E_METADATA:
        return on_metadata(p);
    case E_REASONING:
        return on_reasoning(p);
    case E_INVALID: {
        /* terminal (OCX): what was held back is still content the client should see */
        const char *sc = p->scratch.base;
        size_t rl = p->f.reason_len > 256 ? 256 : p->f.reason_len, ml = p->f.message_len > 2048 ? 2048 : p->f.message_len;
        if ((r = text_boundary(p)) != 0)
            return r;
        return emit_error(p, K2A_EUPSTREAM_EXCEPTION, "Kiro invalidStateEvent %.*s: %.*s", (int)rl, sc + p->f.reason_off, (int)ml,
                          sc + p->f.message_off);
    }
    }
    return 0;
}

/* ---------- public ---------- */

int k2a_kiro_resp_init(k2a_kiro_resp_t *p, const k2a_kiro_resp_config_t *cfg, k2a_ir_event_cb sink, void *sink_ctx)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->sink = sink;
    p->sink_ctx = sink_ctx;
    p->seen.credits = -1;
    p->seen.context_usage_pct = -1;
    p->stop_override = -1;
    p->open_index = -1;
    p->think = cfg->thinking ? K2A_KIRO_THINK_DETECT : K2A_KIRO_THINK_OFF;
    k2a_tokens_counter_init(&p->counter);
    k2a_buf_init(&p->tool_id, MAX_ID_LEN + 1);
    k2a_buf_init(&p->tool_name, 64 * 1024);
    k2a_buf_init(&p->tool_input, 0); /* bounded by max_tool_input (tool_bytes is checked before every piece) */
    k2a_buf_init(&p->done_tools, 1024 * 1024);
    k2a_buf_init(&p->pend, MAX_FRAME_SCRATCH);
    k2a_buf_init(&p->last_chunk, MAX_FRAME_SCRATCH);
    k2a_buf_init(&p->scratch, MAX_FRAME_SCRATCH);
    k2a_buf_init(&p->work, MAX_FRAME_SCRATCH);
    k2a_buf_init(&p->fix, 3 * (size_t)MAX_FRAME_SCRATCH);
    k2a_buf_init(&p->msg, 4096);
    k2a_buf_init(&p->think_sig, 64 * 1024);
    /* pointers are computed from these bases even when nothing was stored yet (base + 0): keep them non-NULL */
    if (k2a_buf_reserve(&p->scratch, 256) != 0 || k2a_buf_reserve(&p->pend, 64) != 0 || k2a_buf_reserve(&p->done_tools, 64) != 0)
        return K2A_ENOMEM;
    return 0;
}

void k2a_kiro_resp_dispose(k2a_kiro_resp_t *p)
{
    if (p->yajl != NULL)
        yajl_free(p->yajl);
    p->yajl = NULL;
    k2a_buf_dispose(&p->tool_id);
    k2a_buf_dispose(&p->tool_name);
    k2a_buf_dispose(&p->tool_input);
    k2a_buf_dispose(&p->done_tools);
    k2a_buf_dispose(&p->pend);
    k2a_buf_dispose(&p->last_chunk);
    k2a_buf_dispose(&p->scratch);
    k2a_buf_dispose(&p->work);
    k2a_buf_dispose(&p->fix);
    k2a_buf_dispose(&p->msg);
    k2a_buf_dispose(&p->think_sig);
}

int k2a_kiro_resp_start(k2a_kiro_resp_t *p)
{
    k2a_ir_event_t ev = {.type = K2A_EV_MESSAGE_START};
    ev.usage.input_tokens = p->cfg.input_tokens;
    ev.usage.credits = -1;
    ev.usage.context_usage_pct = -1;
    return p->sink(p->sink_ctx, &ev);
}

int k2a_kiro_resp_on_frame(void *ctx, const k2a_es_frame_t *f)
{
    k2a_kiro_resp_t *p = ctx;
    ++p->seen.frames;
    if (p->seen.finished) {
        ++p->seen.ignored_frames;
        return 0;
    }
    size_t mtl, etl;
    const char *mt = header_str(f, ":message-type", &mtl);
    if (mt == NULL || k2a__kiro_str_eq(mt, mtl, "event")) {
        const char *et = header_str(f, ":event-type", &etl);
        return on_event(p, f, et != NULL ? et : "", etl);
    }
    if (k2a__kiro_str_eq(mt, mtl, "exception"))
        return on_exception(p, f, false);
    if (k2a__kiro_str_eq(mt, mtl, "error"))
        return on_exception(p, f, true);
    ++p->seen.ignored_frames;
    k2a_debug("kiro frame with :message-type %.*s ignored", (int)mtl, mt);
    return 0;
}

int k2a_kiro_resp_finish(k2a_kiro_resp_t *p, int transport_error)
{
    int r;
    if (p->seen.finished)
        return 0;
    if (transport_error != 0) {
        if ((r = text_boundary(p)) != 0)
            return r;
        return emit_error(p, transport_error, "the Kiro response stream failed after %llu frames: %s",
                          (unsigned long long)p->seen.frames, k2a_strerror(transport_error));
    }
    if (p->open_index >= 0 && p->open_kind == K2A_BLOCK_TOOL_USE)
        return emit_error(p, K2A_EUPSTREAM_TRUNCATED,
                          "Kiro ended the response inside tool call %.*s (%.*s) after %zu bytes of input, without stop: the tool "
                          "input was truncated upstream",
                          (int)p->tool_name.len, p->tool_name.base, (int)p->tool_id.len, p->tool_id.base, p->tool_bytes);
    return finish_ok(p);
}

const k2a_kiro_resp_seen_t *k2a_kiro_resp_seen(const k2a_kiro_resp_t *p)
{
    return &p->seen;
}

int64_t k2a_kiro_resp_input_tokens(const k2a_kiro_resp_t *p)
{
    if (p->token_usage_mask & TU_INPUT_MASK)
        return p->token_usage[K2A_KIRO_TU_UNCACHED] + p->token_usage[K2A_KIRO_TU_CACHE_READ] +
               p->token_usage[K2A_KIRO_TU_CACHE_WRITE];
    return reconciled_input(p);
}

int64_t k2a_kiro_resp_context_tokens(const k2a_kiro_resp_t *p)
{
    return context_tokens(p);
}

int64_t k2a_kiro_resp_output_tokens(const k2a_kiro_resp_t *p)
{
    if (p->token_usage_mask & (1u << K2A_KIRO_TU_OUTPUT))
        return p->token_usage[K2A_KIRO_TU_OUTPUT];
    return k2a_tokens_counter_total(&p->counter);
}
