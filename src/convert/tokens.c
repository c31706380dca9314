/*
 * Token estimation exactly as kiro-protocol.md §4.6 describes kiro2api's heuristics (no tokenizer): code points,
 * CJK code points (U+4E00..U+9FFF) and bytes. Floating-point steps are the same IEEE double operations as the Go
 * original (ceil(n / 2.8), int(t * 0.60), ...), so the results match it bit for bit. The input estimate walks the
 * IR instead of a JSON tree; where the IR cannot tell two JSON shapes apart (a string content vs one text block),
 * both give the same number in kiro2api anyway.
 */
#include <math.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "convert/tokens.h"
#include "core/utf8.h"

/* Counts code points and CJK code points. Invalid or truncated UTF-8 bytes count as one code point each. */
static void count_code_points(const unsigned char *s, size_t len, int64_t *n_out, int64_t *cjk_out)
{
    int64_t n = 0, cjk = 0;
    size_t i = 0;
    while (i < len) {
        /* fast path over ASCII runs, 8 bytes at a time: each ASCII byte is one code point (prompts are mostly ASCII; this
         * estimate runs over the whole request on every call) */
#ifdef __SSE2__
        while (i + 16 <= len && _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)(s + i))) == 0) {
            i += 16; /* 16 ASCII bytes: no high bit set */
            n += 16;
        }
#endif
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if ((w & 0x8080808080808080ull) != 0)
                break;
            i += 8;
            n += 8;
        }
        if (i == len)
            break;
        unsigned char c = s[i];
        if (c < 0x80) {
            ++i;
            ++n;
            continue;
        }
        int l = k2a_utf8_seq(s + i, len - i);
        if (l <= 0) {
            ++i;
            ++n;
            continue;
        }
        if (l == 3) { /* U+4E00..U+9FFF are three-byte sequences */
            uint32_t cp = (uint32_t)(c & 0x0f) << 12 | (uint32_t)(s[i + 1] & 0x3f) << 6 | (s[i + 2] & 0x3f);
            if (cp >= 0x4e00 && cp <= 0x9fff)
                ++cjk;
        }
        i += (size_t)l;
        ++n;
    }
    *n_out = n;
    *cjk_out = cjk;
}

int64_t k2a_tokens_text(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    int64_t n, cjk;
    count_code_points((const unsigned char *)s, len, &n, &cjk);
    int64_t other = n - cjk;
    int64_t cjk_tokens = 0, other_tokens = 0;
    if (cjk != 0)
        cjk_tokens = other == 0 ? 1 + cjk : cjk;
    if (other != 0) {
        double r = other < 50 ? 2.8 : other < 100 ? 2.6 : 2.5;
        other_tokens = (int64_t)ceil((double)other / r);
        if (other_tokens < 1)
            other_tokens = 1;
    }
    int64_t t = cjk_tokens + other_tokens;
    if (n >= 1000)
        t = (int64_t)((double)t * 0.60);
    else if (n >= 500)
        t = (int64_t)((double)t * 0.70);
    else if (n >= 300)
        t = (int64_t)((double)t * 0.80);
    else if (n >= 200)
        t = (int64_t)((double)t * 0.85);
    else if (n >= 100)
        t = (int64_t)((double)t * 0.90);
    else if (n >= 50)
        t = (int64_t)((double)t * 0.95);
    return t < 1 ? 1 : t;
}

int64_t k2a_tokens_tool_name(const char *name, size_t len)
{
    if (len == 0)
        return 0;
    int64_t underscores = 0, upper = 0;
    for (size_t i = 0; i < len; ++i) {
        if (name[i] == '_')
            ++underscores;
        else if (name[i] >= 'A' && name[i] <= 'Z')
            ++upper;
    }
    int64_t t = (int64_t)(len + 1) / 2 + underscores + upper / 2;
    return t < 2 ? 2 : t;
}

/* An input is "empty" when absent or an object without members ("{}" with any inner whitespace). */
static bool json_object_is_empty(k2a_str_t json)
{
    size_t i = 0, n = json.len;
    const char *s = json.base;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        ++i;
    if (i == n)
        return true;
    if (s[i] != '{')
        return false;
    for (++i; i < n; ++i) {
        if (s[i] == '}')
            return true;
        if (!(s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
            return false;
    }
    return false;
}

int64_t k2a_tokens_tool_use(k2a_str_t name, k2a_str_t input_json)
{
    int64_t t = 3 + 8 + 1 + k2a_tokens_tool_name(name.base, name.len) + 1;
    t += json_object_is_empty(input_json) ? 1 : (int64_t)input_json.len / 4;
    return t;
}

static int64_t text_or_missing(k2a_str_t text)
{
    /* kiro2api: a text block without a "text" member counts 10 */
    return k2a_str_is_set(text) ? k2a_tokens_text(text.base, text.len) : 10;
}

static int64_t block_tokens(const k2a_ir_block_t *b, int depth)
{
    switch (b->kind) {
    case K2A_BLOCK_TEXT:
        return text_or_missing(b->text);
    case K2A_BLOCK_IMAGE:
        return 1500;
    case K2A_BLOCK_DOCUMENT:
        return 500;
    case K2A_BLOCK_TOOL_USE:
        return k2a_tokens_tool_use(b->name, b->input);
    case K2A_BLOCK_TOOL_RESULT: {
        if (b->ncontent == 0)
            return 50;
        int64_t t = 0;
        for (size_t i = 0; i < b->ncontent; ++i)
            t += depth < 4 ? block_tokens(&b->content[i], depth + 1) : 10;
        return t;
    }
    case K2A_BLOCK_THINKING:
        /* kiro2api has no thinking blocks: an unknown block type counts len(JSON(block)) / 4; this is the length of
         * {"signature":"...","thinking":"...","type":"thinking"} without escapes */
        return (int64_t)(50 + b->text.len + b->signature.len) / 4;
    case K2A_BLOCK_REDACTED_THINKING:
        /* {"data":"...","type":"redacted_thinking"} */
        return (int64_t)(37 + b->text.len) / 4;
    }
    return 10;
}

static bool is_web_search(k2a_str_t name)
{
    return (name.len == 10 && strncasecmp(name.base, "web_search", 10) == 0) ||
           (name.len == 9 && strncasecmp(name.base, "websearch", 9) == 0);
}

static bool contains(k2a_str_t hay, const char *needle)
{
    size_t n = strlen(needle);
    if (hay.len < n)
        return false;
    for (size_t i = 0; i + n <= hay.len; ++i)
        if (hay.base[i] == needle[0] && memcmp(hay.base + i, needle, n) == 0)
            return true;
    return false;
}

int64_t k2a_tokens_input_estimate(const k2a_ir_request_t *req, bool exclude_web_search)
{
    int64_t total = 0;
    for (size_t i = 0; i < req->nsystem; ++i) {
        const k2a_ir_block_t *b = &req->system[i];
        if (b->text.len != 0)
            total += k2a_tokens_text(b->text.base, b->text.len) + 2;
    }
    for (size_t i = 0; i < req->nmessages; ++i) {
        const k2a_ir_message_t *m = &req->messages[i];
        total += 3;
        for (size_t j = 0; j < m->nblocks; ++j)
            total += block_tokens(&m->blocks[j], 0);
    }
    size_t ntools = 0;
    for (size_t i = 0; i < req->ntools; ++i)
        if (!(exclude_web_search && is_web_search(req->tools[i].name)))
            ++ntools;
    if (ntools != 0) {
        int64_t base, per_tool, min_schema = ntools > 5 ? 30 : 50;
        double ratio;
        if (ntools == 1) {
            base = 0;
            per_tool = 320;
            ratio = 1.9;
        } else if (ntools <= 5) {
            base = 100;
            per_tool = 120;
            ratio = 2.2;
        } else {
            base = 180;
            per_tool = 60;
            ratio = 2.5;
        }
        total += base;
        for (size_t i = 0; i < req->ntools; ++i) {
            const k2a_ir_tool_t *t = &req->tools[i];
            if (exclude_web_search && is_web_search(t->name))
                continue;
            total += k2a_tokens_tool_name(t->name.base, t->name.len);
            total += k2a_tokens_text(t->description.base, t->description.len);
            if (t->input_schema.len != 0) {
                int64_t schema = (int64_t)ceil((double)t->input_schema.len / ratio);
                if (contains(t->input_schema, "$schema"))
                    schema += ntools == 1 ? 10 : 5;
                if (schema < min_schema)
                    schema = min_schema;
                total += schema;
            }
            total += per_tool;
        }
    }
    return total + 4;
}

void k2a_tokens_counter_init(k2a_tokens_counter_t *c)
{
    memset(c, 0, sizeof(*c));
}

void k2a_tokens_counter_add(k2a_tokens_counter_t *c, const k2a_ir_event_t *ev)
{
    size_t slot = (size_t)ev->index % 64;
    switch (ev->type) {
    case K2A_EV_BLOCK_START:
        c->any = true;
        if (ev->block == K2A_BLOCK_TOOL_USE) {
            c->total += 12 + k2a_tokens_text(ev->tool_name.base, ev->tool_name.len);
            c->tool_json_bytes[slot] = 0;
        }
        break;
    case K2A_EV_DELTA:
        c->any = true;
        if (ev->block == K2A_BLOCK_TOOL_USE)
            c->tool_json_bytes[slot] += (int64_t)ev->text.len;
        else /* text and thinking text: per chunk, so every non-empty chunk costs at least 1 */
            c->total += k2a_tokens_text(ev->text.base, ev->text.len);
        break;
    case K2A_EV_BLOCK_STOP:
        /* tool input bytes are converted at the block's stop: ceil(bytes / 4); other blocks hold 0 */
        c->total += (c->tool_json_bytes[slot] + 3) / 4;
        c->tool_json_bytes[slot] = 0;
        break;
    default:
        break;
    }
}

int64_t k2a_tokens_counter_total(const k2a_tokens_counter_t *c)
{
    return c->total < 1 && c->any ? 1 : c->total;
}
