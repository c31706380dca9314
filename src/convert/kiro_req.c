/*
 * Kiro request encoder and builder (see kiro_req.h). The body is written in the field order of
 * kiro-protocol.md §2.2 with the [REC] rules: empty/null fields omitted (history, toolUses, toolResults, tools,
 * history images), except `images: []` on the current message (what both kiro2api and the real IDE send);
 * chatTriggerType always MANUAL.
 *
 * The writer is a minimal one over the caller's bounded k2a_buf instead of yajl_gen: the schema is fixed, so
 * the only state needed is "first member of this container?", and yajl_gen's print callback per token (every
 * key, every escaped run) cost more than the rest of normalize+encode together (bench/RESULTS.md). Strings are
 * escaped in place 8 bytes at a time; pre-serialised JSON (tool inputs, schemas) and validated base64 are copied
 * verbatim. Every golden test parses the output back, so the structure is checked on each case.
 *
 * The same code measures without writing (k2a_kiro_measure: the output NULL, sizes summed). That is how the payload
 * budget trims a history that does not fit: measure, drop the oldest pairs, encode what is left, so the output buffer
 * never has to hold more than the budget, whatever the size of the history.
 */
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "core/errors.h"
#include "core/log.h"
#include "core/rand.h"
#include "convert/kiro_req.h"
#include "convert/model_effort.h"

#define MAX_ID_HEADER 256
#define MAX_NESTING 16

typedef struct st_enc_t {
    k2a_buf_t *out; /* NULL: measuring only, the size accumulates in n */
    size_t n;
    int err;
    unsigned depth;
    bool first[MAX_NESTING]; /* no member written yet in the container at this depth */
} enc_t;

static __attribute__((noinline)) void put_slow(enc_t *e, const char *s, size_t n)
{
    if (e->err != 0)
        return;
    k2a_buf_t *b = e->out;
    if (b == NULL) {
        e->n += n;
        return;
    }
    if (b->cap - b->len <= n && (e->err = k2a_buf_reserve(b, n)) != 0)
        return;
    memcpy(b->base + b->len, s, n);
    b->len += n;
}

/* Inline for the common case (room in the buffer: the body is reserved from the client's size), so that a literal's copy
 * is a few moves instead of a call; sizing (out == NULL), growth and a failed encoder take put_slow. */
static inline __attribute__((always_inline)) void put(enc_t *e, const char *s, size_t n)
{
    k2a_buf_t *b = e->out;
    if (e->err == 0 && b != NULL && b->cap - b->len > n) {
        memcpy(b->base + b->len, s, n);
        b->len += n;
        return;
    }
    put_slow(e, s, n);
}

#define PUTLIT(e, lit) put((e), (lit), sizeof(lit) - 1)

/* A comma unless this is the first member of the current container. */
static void sep(enc_t *e)
{
    if (!e->first[e->depth])
        PUTLIT(e, ",");
    e->first[e->depth] = false;
}

static void open_(enc_t *e, const char *c)
{
    put(e, c, 1);
    if (++e->depth >= MAX_NESTING)
        e->err = K2A_EINTERNAL;
    else
        e->first[e->depth] = true;
}

static void close_(enc_t *e, const char *c)
{
    put(e, c, 1);
    --e->depth;
}

#define OBJ(e) open_((e), "{")
#define END_OBJ(e) close_((e), "}")
#define ARR(e) open_((e), "[")
#define END_ARR(e) close_((e), "]")
/* "key": (a literal key: no escaping needed) */
#define KEY(e, k)                                                                                                                  \
    do {                                                                                                                           \
        sep(e);                                                                                                                    \
        PUTLIT((e), "\"" k "\":");                                                                                                 \
    } while (0)
/* an array element that is an object */
#define ELEM_OBJ(e)                                                                                                                \
    do {                                                                                                                           \
        sep(e);                                                                                                                    \
        OBJ(e);                                                                                                                    \
    } while (0)

/* JSON escapes: 0 = copy, 1 = two-character escape (see esc2), 2 = \u00XX */
static const unsigned char esc_class[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
};

static char esc2(unsigned char c)
{
    switch (c) {
    case '\b':
        return 'b';
    case '\t':
        return 't';
    case '\n':
        return 'n';
    case '\f':
        return 'f';
    case '\r':
        return 'r';
    default:
        return (char)c; /* '"' and '\\' */
    }
}

/* Makes room for `need` more bytes at *dst (a position inside e->out), updating *dst and *end. */
static bool room(enc_t *e, char **dst, char **end, size_t need)
{
    if ((size_t)(*end - *dst) >= need)
        return true;
    k2a_buf_t *b = e->out;
    b->len = (size_t)(*dst - b->base);
    if ((e->err = k2a_buf_reserve(b, need + b->len / 2)) != 0 && (e->err = k2a_buf_reserve(b, need)) != 0)
        return false;
    *dst = b->base + b->len;
    *end = b->base + b->cap - 1; /* k2a_buf keeps a byte for a NUL */
    return true;
}

/* True when none of the 8 bytes of w is a control character, '"' or '\\' (SWAR, Hacker's Delight). */
static inline bool plain8(uint64_t w)
{
    uint64_t ctl = (w - 0x2020202020202020ull) & ~w, quote = w ^ 0x2222222222222222ull, bsl = w ^ 0x5c5c5c5c5c5c5c5cull;
    quote = (quote - 0x0101010101010101ull) & ~quote;
    bsl = (bsl - 0x0101010101010101ull) & ~bsl;
    return ((ctl | quote | bsl) & 0x8080808080808080ull) == 0;
}

#ifdef __SSE2__
/* How many of the 16 bytes at p come before the first control character, '"' or '\\' (16 when none): three compares and
 * one mask for 16 bytes, where plain8 takes about as many instructions for 8. */
static inline unsigned plain16(const unsigned char *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(v, _mm_set1_epi8(0x1f)), _mm_set1_epi8(0x1f)); /* v <= 0x1f, unsigned */
    __m128i q = _mm_cmpeq_epi8(v, _mm_set1_epi8('"')), bs = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    unsigned m = (unsigned)_mm_movemask_epi8(_mm_or_si128(ctl, _mm_or_si128(q, bs)));
    return m == 0 ? 16 : (unsigned)__builtin_ctz(m);
}
#endif

/* The bytes str() writes for s: the quotes, and each byte as it is escaped (class 1: 2 bytes, class 2: 6). */
static size_t escaped_size(k2a_str_t s)
{
    static const unsigned char extra[3] = {0, 1, 5};
    const unsigned char *p = (const unsigned char *)(s.base != NULL ? s.base : ""), *pend = p + s.len;
    size_t n = s.len + 2;
    while (p < pend) {
#ifdef __SSE2__
        while (pend - p >= 16) {
            unsigned k = plain16(p);
            p += k;
            if (k < 16)
                break;
        }
#endif
        while (pend - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!plain8(w))
                break;
            p += 8;
        }
        const unsigned char *stop = pend - p > 8 ? p + 8 : pend;
        for (; p < stop; ++p)
            n += extra[esc_class[*p]];
    }
    return n;
}

/*
 * A string value, escaped straight into the output buffer. Strings are valid UTF-8 already (yajl validated them
 * on input; the normalizer cuts only on character boundaries), so, like yajl_gen without yajl_gen_validate_utf8,
 * bytes >= 0x80 are copied as they are.
 */
static void str(enc_t *e, k2a_str_t s)
{
    if (e->err != 0)
        return;
    k2a_buf_t *b = e->out;
    if (b == NULL) {
        e->n += escaped_size(s);
        return;
    }
    const unsigned char *p = (const unsigned char *)(s.base != NULL ? s.base : ""), *pend = p + s.len;
    /* room for some escapes up front; near a bounded buffer's end only what the plain string needs (room() adds more) */
    if (k2a_buf_reserve(b, s.len + s.len / 16 + 2) != 0 && (e->err = k2a_buf_reserve(b, s.len + 2)) != 0)
        return;
    char *dst = b->base + b->len, *end = b->base + b->cap - 1;
    *dst++ = '"';
    while (p < pend) {
#ifdef __SSE2__
        /* 16 bytes at a time: all 16 copied, as many kept as come before the first byte to escape */
        while (pend - p >= 16) {
            if (end - dst < 16 && !room(e, &dst, &end, (size_t)(pend - p) + 16))
                return;
            unsigned k = plain16(p);
            _mm_storeu_si128((__m128i *)(void *)dst, _mm_loadu_si128((const __m128i *)(const void *)p));
            dst += k;
            p += k;
            if (k < 16)
                break;
        }
#endif
        /* copy 8 bytes at a time while none of them is a control character, '"' or '\\' (SWAR, Hacker's Delight) */
        while (pend - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (!plain8(w))
                break;
            if (end - dst < 8 && !room(e, &dst, &end, (size_t)(pend - p) + 8))
                return;
            memcpy(dst, &w, 8);
            dst += 8;
            p += 8;
        }
        /* then byte by byte, up to and including the next character to escape */
        if (end - dst < 16 && !room(e, &dst, &end, (size_t)(pend - p) + 16))
            return;
        const unsigned char *stop = pend - p > 8 ? p + 8 : pend;
        unsigned char c = 0;
        while (p < stop && esc_class[c = *p] == 0) {
            *dst++ = (char)c;
            ++p;
        }
        if (p == stop)
            continue;
        ++p;
        *dst++ = '\\';
        if (esc_class[c] == 1) {
            *dst++ = esc2(c);
        } else {
            static const char hex[] = "0123456789abcdef";
            memcpy(dst, "u00", 3);
            dst[3] = hex[c >> 4];
            dst[4] = hex[c & 15];
            dst += 5;
        }
    }
    if (!room(e, &dst, &end, 1))
        return;
    *dst++ = '"';
    b->len = (size_t)(dst - b->base);
}

/* A value copied verbatim: JSON text (or base64 between quotes) the caller vouches for. */
static void raw(enc_t *e, k2a_str_t s)
{
    put(e, s.base, s.len);
}

static void encode_images(enc_t *e, const k2a_kiro_turn_t *t)
{
    ARR(e);
    for (size_t i = 0; i < t->nimages; ++i) {
        const k2a_kiro_image_t *img = &t->images[i];
        ELEM_OBJ(e);
        KEY(e, "format");
        str(e, img->format);
        KEY(e, "source");
        OBJ(e);
        KEY(e, "bytes");
        if (img->checked) { /* plain base64 needs no escaping */
            PUTLIT(e, "\"");
            raw(e, img->data);
            PUTLIT(e, "\"");
        } else {
            str(e, img->data);
        }
        END_OBJ(e);
        END_OBJ(e);
    }
    END_ARR(e);
}

static void encode_tool_results(enc_t *e, const k2a_kiro_turn_t *t)
{
    KEY(e, "toolResults");
    ARR(e);
    for (size_t i = 0; i < t->nresults; ++i) {
        const k2a_kiro_tool_result_t *r = &t->results[i];
        ELEM_OBJ(e);
        KEY(e, "toolUseId");
        str(e, r->tool_use_id);
        KEY(e, "content");
        PUTLIT(e, "[{\"text\":");
        str(e, r->text);
        PUTLIT(e, "}]");
        KEY(e, "status");
        if (r->is_error) {
            PUTLIT(e, "\"error\"");
            KEY(e, "isError");
            PUTLIT(e, "true");
        } else {
            PUTLIT(e, "\"success\"");
        }
        END_OBJ(e);
    }
    END_ARR(e);
}

static void encode_tools(enc_t *e, const k2a_kiro_conv_t *c)
{
    KEY(e, "tools");
    ARR(e);
    for (size_t i = 0; i < c->ntools; ++i) {
        const k2a_kiro_tool_spec_t *t = &c->tools[i];
        ELEM_OBJ(e);
        KEY(e, "toolSpecification");
        OBJ(e);
        KEY(e, "name");
        str(e, t->name);
        KEY(e, "description");
        str(e, t->description);
        KEY(e, "inputSchema");
        PUTLIT(e, "{\"json\":");
        raw(e, t->schema);
        PUTLIT(e, "}");
        END_OBJ(e);
        END_OBJ(e);
    }
    END_ARR(e);
}

static void encode_user(enc_t *e, const k2a_kiro_turn_t *t, const k2a_kiro_conv_t *c, const k2a_kiro_encode_ids_t *ids,
                        bool current)
{
    KEY(e, "userInputMessage");
    OBJ(e);
    if (current) {
        KEY(e, "userInputMessageContext");
        OBJ(e);
        if (t->nresults != 0)
            encode_tool_results(e, t);
        if (c->ntools != 0)
            encode_tools(e, c);
        END_OBJ(e);
    }
    KEY(e, "content");
    str(e, t->content);
    KEY(e, "modelId");
    str(e, ids->model_id);
    if (current || t->nimages != 0) {
        KEY(e, "images");
        encode_images(e, t);
    }
    KEY(e, "origin");
    PUTLIT(e, "\"AI_EDITOR\"");
    if (!current) {
        KEY(e, "userInputMessageContext");
        OBJ(e);
        if (t->nresults != 0)
            encode_tool_results(e, t);
        END_OBJ(e);
    }
    END_OBJ(e);
}

static void encode_assistant(enc_t *e, const k2a_kiro_turn_t *t, bool reasoning)
{
    KEY(e, "assistantResponseMessage");
    OBJ(e);
    KEY(e, "content");
    str(e, t->content);
    if (t->nuses != 0) {
        KEY(e, "toolUses");
        ARR(e);
        for (size_t i = 0; i < t->nuses; ++i) {
            const k2a_kiro_tool_use_t *u = &t->uses[i];
            ELEM_OBJ(e);
            KEY(e, "toolUseId");
            str(e, u->id);
            KEY(e, "name");
            str(e, u->name);
            KEY(e, "input");
            raw(e, u->input);
            END_OBJ(e);
        }
        END_ARR(e);
    }
    if (reasoning && t->redacted.len != 0) { /* what kiro-cli replays (kiro-protocol-2026.md §7) */
        KEY(e, "reasoningContent");
        OBJ(e);
        KEY(e, "redactedContent");
        str(e, t->redacted);
        END_OBJ(e);
    }
    END_OBJ(e);
}

/* Where the next byte goes: the output length, or the size measured so far. */
static size_t pos(const enc_t *e)
{
    return e->out != NULL ? e->out->len : e->n;
}

static int encode_conv(enc_t *e, const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, size_t *history_spans)
{
    e->err = 0;
    e->depth = 0;
    e->first[0] = true;

    OBJ(e);
    KEY(e, "conversationState");
    OBJ(e);
    KEY(e, "agentContinuationId");
    str(e, ids->agent_continuation_id);
    KEY(e, "agentTaskType");
    PUTLIT(e, "\"vibe\"");
    KEY(e, "chatTriggerType");
    PUTLIT(e, "\"MANUAL\"");
    KEY(e, "currentMessage");
    OBJ(e);
    encode_user(e, &conv->current, conv, ids, true);
    END_OBJ(e);
    KEY(e, "conversationId");
    str(e, ids->conversation_id);
    if (conv->nhistory != 0) {
        KEY(e, "history");
        ARR(e);
        for (size_t i = 0; i < conv->nhistory; ++i) {
            if (history_spans != NULL)
                history_spans[i] = pos(e);
            const k2a_kiro_turn_t *t = &conv->history[i];
            ELEM_OBJ(e);
            if (t->assistant)
                encode_assistant(e, t, conv->reasoning_content);
            else
                encode_user(e, t, conv, ids, false);
            END_OBJ(e);
        }
        if (history_spans != NULL)
            history_spans[conv->nhistory] = pos(e);
        END_ARR(e);
    }
    END_OBJ(e);
    if (conv->native_effort.len != 0) { /* at the root, camelCase outside, snake_case inside (kiro-protocol-2026.md §7) */
        KEY(e, "additionalModelRequestFields");
        PUTLIT(e, "{\"output_config\":{\"effort\":");
        str(e, conv->native_effort);
        PUTLIT(e, "}}");
    }
    if (ids->profile_arn.len != 0) {
        KEY(e, "profileArn");
        str(e, ids->profile_arn);
    }
    END_OBJ(e);
    if (e->err == 0 && e->depth != 0)
        e->err = K2A_EINTERNAL;
    return e->err;
}

int k2a_kiro_encode(const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, k2a_buf_t *out, size_t *history_spans)
{
    enc_t e;
    e.out = out;
    e.n = 0;
    return encode_conv(&e, conv, ids, history_spans);
}

size_t k2a_kiro_measure(const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, size_t *history_spans)
{
    enc_t e;
    e.out = NULL;
    e.n = 0;
    encode_conv(&e, conv, ids, history_spans); /* measuring cannot fail: nothing is allocated and the nesting is fixed */
    return e.n;
}

/* ---------- identities (§2.8) ---------- */

static bool header_ok(k2a_str_t s)
{
    return s.len != 0 && s.len <= MAX_ID_HEADER;
}

/* Lower-case hex of n bytes into out (2n characters, no NUL): both ids are built for every request, and 8 or 16 snprintf
 * calls cost more than the MD5. */
static void hex_bytes(char *out, const unsigned char *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
}

/* 8-4-4-4-12 hex digits. */
static bool is_uuid(k2a_str_t s)
{
    if (s.len != 36)
        return false;
    for (size_t i = 0; i < 36; ++i) {
        char c = s.base[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return false;
    }
    return true;
}

/* 16 bytes as a UUID string in the arena (version and variant bits set: `version` 3 = name-based, 4 = random). */
static k2a_str_t uuid_format(unsigned char b[16], unsigned version, k2a_arena_t *arena, k2a_str_t fallback)
{
    b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *buf = k2a_arena_alloc(arena, 37);
    if (buf == NULL)
        return fallback;
    hex_bytes(buf, b, 4);
    buf[8] = '-';
    hex_bytes(buf + 9, b + 4, 2);
    buf[13] = '-';
    hex_bytes(buf + 14, b + 6, 2);
    buf[18] = '-';
    hex_bytes(buf + 19, b + 8, 2);
    buf[23] = '-';
    hex_bytes(buf + 24, b + 10, 6);
    buf[36] = '\0';
    return k2a_str(buf, 36);
}

#define NIL_CONVERSATION K2A_STRLIT("00000000-0000-3000-8000-000000000000")

/* OpenSSL 3 looks a digest up by name on every EVP_md5() init (a locked hash-table walk); fetch it once per process. */
static EVP_MD *md5_md;
static pthread_once_t md5_once = PTHREAD_ONCE_INIT;
static void md5_fetch(void)
{
    md5_md = EVP_MD_fetch(NULL, "MD5", NULL);
}

/* MD5 of the pieces, as a name-based UUID. */
static k2a_str_t uuid_of(const k2a_str_t *parts, size_t n, k2a_arena_t *arena)
{
    pthread_once(&md5_once, md5_fetch);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    bool ok = ctx != NULL && md5_md != NULL && EVP_DigestInit_ex(ctx, md5_md, NULL) == 1;
    for (size_t i = 0; ok && i < n; ++i)
        ok = (i == 0 || EVP_DigestUpdate(ctx, "|", 1) == 1) &&
             EVP_DigestUpdate(ctx, parts[i].base != NULL ? parts[i].base : "", parts[i].len) == 1;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen >= 16;
    EVP_MD_CTX_free(ctx);
    return ok ? uuid_format(md, 3, arena, NIL_CONVERSATION) : NIL_CONVERSATION;
}

k2a_str_t k2a_kiro_conversation_id(const k2a_ir_request_t *req, const k2a_kiro_build_params_t *params, k2a_arena_t *arena)
{
    /* a UUID (kiro-protocol-2026 §12), stable for the client's session: a session id that is one is sent as it is, any other
     * is mapped onto one */
    k2a_str_t src = K2A_STR_NULL;
    if (header_ok(params->session_header))
        src = params->session_header;
    else if (req->session_id.len != 0)
        src = req->session_id;
    else if (header_ok(params->conversation_header))
        src = params->conversation_header;
    if (src.len != 0) {
        if (is_uuid(src))
            return src;
        k2a_str_t parts[] = {K2A_STRLIT("kiro2api-conversation"), src};
        return uuid_of(parts, 2, arena);
    }
    /* no session: the client, its user agent and the hour. The same three give the same id for an hour, so each worker
     * thread keeps the last one it made (the MD5 and the time formatting were ~3.5 k instructions of every such request);
     * neither input is a secret. */
    static __thread struct {
        bool valid;
        time_t hour;
        uint16_t iplen, ualen;
        char ip[64], ua[256], id[36];
    } last;
    time_t now = params->now;
    k2a_str_t ip = params->client_ip, ua = params->user_agent;
    bool cacheable = now >= 0 && ip.len <= sizeof(last.ip) && ua.len <= sizeof(last.ua);
    if (cacheable && last.valid && last.hour == now / 3600 && last.iplen == ip.len && last.ualen == ua.len &&
        (ip.len == 0 || memcmp(last.ip, ip.base, ip.len) == 0) && (ua.len == 0 || memcmp(last.ua, ua.base, ua.len) == 0)) {
        char *buf = k2a_arena_alloc(arena, 37);
        if (buf == NULL)
            return NIL_CONVERSATION;
        memcpy(buf, last.id, 36);
        buf[36] = '\0';
        return k2a_str(buf, 36);
    }
    char hour[16];
    struct tm tm;
    gmtime_r(&now, &tm); /* UTC: localtime_r takes the time-zone lock on every call */
    strftime(hour, sizeof(hour), "%Y%m%d%H", &tm);
    k2a_str_t parts[] = {ip, ua, k2a_cstr(hour)};
    k2a_str_t id = uuid_of(parts, 3, arena);
    if (cacheable && id.len == sizeof(last.id) && !k2a_str_eq(id, NIL_CONVERSATION)) {
        last.valid = true;
        last.hour = now / 3600;
        last.iplen = (uint16_t)ip.len;
        last.ualen = (uint16_t)ua.len;
        if (ip.len != 0)
            memcpy(last.ip, ip.base, ip.len);
        if (ua.len != 0)
            memcpy(last.ua, ua.base, ua.len);
        memcpy(last.id, id.base, id.len);
    }
    return id;
}

static k2a_str_t continuation_id(const k2a_kiro_build_params_t *params, k2a_arena_t *arena)
{
    /* a fresh UUID v4 per request; a client's own id is kept only when it is a UUID */
    if (header_ok(params->continuation_header) && is_uuid(params->continuation_header))
        return params->continuation_header;
    unsigned char b[16];
    if (params->random != NULL)
        params->random(params->random_ctx, b, sizeof(b));
    else {
        /* unique, not secret: the process's fast generator (core/rand), not OpenSSL's locked DRBG */
        uint64_t r0 = k2a_rand_u64(), r1 = k2a_rand_u64();
        memcpy(b, &r0, 8);
        memcpy(b + 8, &r1, 8);
    }
    return uuid_format(b, 4, arena, K2A_STRLIT("00000000-0000-4000-8000-000000000000"));
}

/* ---------- the builder ---------- */

void k2a_kiro_build_params_init(k2a_kiro_build_params_t *params, const k2a_model_map_t *model_map)
{
    memset(params, 0, sizeof(*params));
    params->model_map = model_map;
    params->norm = k2a_normalize_config_default();
    params->now = time(NULL);
    params->native_fields = true;
}

static int encode_failed(int r, k2a_convert_error_t *err)
{
    if (r == K2A_ETOOBIG)
        return k2a_convert_error_set(err, r, "the Kiro request exceeds the output buffer limit");
    return k2a_convert_error_set(err, r, "encoding the Kiro request failed: %s", k2a_strerror(r));
}

/* Fills *res for a body built into out. */
static int built(const k2a_model_resolution_t *model, const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids,
                 const k2a_buf_t *out, size_t dropped, k2a_kiro_build_result_t *res)
{
    res->kiro_model_id = model->kiro_model_id;
    res->public_model = model->public_name;
    res->tool_names = conv->names;
    res->thinking = conv->thinking;
    res->native_effort = conv->native_effort.len != 0;
    res->history_turns_dropped = dropped;
    res->payload_bytes = out->len;
    res->conversation_id = ids->conversation_id;
    res->agent_continuation_id = ids->agent_continuation_id;
    return 0;
}

int k2a_kiro_build_request(const k2a_ir_request_t *req, const k2a_kiro_build_params_t *params, k2a_arena_t *arena, k2a_buf_t *out,
                           k2a_kiro_build_result_t *res, k2a_convert_error_t *err)
{
    memset(res, 0, sizeof(*res));
    k2a_convert_error_clear(err);
    k2a_model_resolution_t model;
    int r;
    if ((r = k2a_model_map_resolve(params->model_map, req->model, &model, err)) != 0)
        return r;
    /* the resolution may hold the id in its own buffer: the result outlives it */
    char *model_id = k2a_arena_strndup(arena, model.kiro_model_id.base, model.kiro_model_id.len);
    if (model_id == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "request too large for the conversion memory limit");
    model.kiro_model_id = k2a_str(model_id, model.kiro_model_id.len);
    k2a_kiro_conv_t conv;
    k2a_normalize_config_t norm = params->norm;
    norm.native_effort = params->native_fields && req->thinking.mode == K2A_THINKING_ADAPTIVE &&
                         k2a_model_accepts_effort(model.kiro_model_id, k2a_norm_thinking_effort(req));
    norm.reasoning_content = params->native_fields && k2a_model_accepts_effort(model.kiro_model_id, K2A_STR_NULL);
    if ((r = k2a_normalize_for_kiro(req, &norm, model.thinking_forced, arena, &conv, err)) != 0)
        return r;

    k2a_kiro_encode_ids_t ids;
    ids.model_id = model.kiro_model_id;
    ids.conversation_id = k2a_kiro_conversation_id(req, params, arena);
    ids.agent_continuation_id = continuation_id(params, arena);
    ids.profile_arn = params->profile_arn;

    /* Most requests fit: encode once. Into the exchange's buffer (bounded by KIRO_MAX_PAYLOAD_BYTES) an attempt that does
     * not fit stops at the buffer's end, so it costs at most the budget's worth of work whatever the history's size. */
    size_t max = params->norm.max_payload_bytes;
    k2a_buf_reset(out);
    r = k2a_kiro_encode(&conv, &ids, out, NULL);
    if (r == 0 && (max == 0 || out->len <= max))
        return built(&model, &conv, &ids, out, 0, res);
    if (r != 0 && (r != K2A_ETOOBIG || max == 0))
        return encode_failed(r, err);

    /* The payload budget: measuring is exact (the encoder's own code without the writes) and linear, so trimming a history
     * of any size costs one measure of the whole, at most two of what is kept, and one encode, and the output buffer
     * only ever holds a body that fits the budget. */
    size_t *spans = k2a_arena_alloc(arena, (conv.nhistory + 1) * sizeof(*spans));
    if (spans == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "request too large for the conversion memory limit");
    size_t dropped = 0, nhistory0 = conv.nhistory;
    size_t size = k2a_kiro_measure(&conv, &ids, spans), size0 = size;
    while (size > max) {
        size_t droppable = k2a_normalize_droppable_pairs(&conv);
        if (droppable == 0)
            break;
        /* The spans give the bytes of the oldest pairs: k pairs free at least `excess`. Dropping them frees a little
         * more: the first kept user turn loses the tool results that answered a dropped turn (and maybe its comma).
         * Those results are part of pair k, so k - 1 pairs may already be enough: drop k - 1 and measure; when that is
         * not enough, the next round drops exactly one more pair (its span then covers the rest). */
        size_t excess = size - max, freed = 0, k = 0;
        while (k < droppable && freed < excess) {
            size_t first = conv.nsystem + 2 * k;
            freed += spans[first + 2] - spans[first];
            ++k;
        }
        dropped += k2a_normalize_drop_oldest(&conv, k > 1 ? k - 1 : 1);
        size = k2a_kiro_measure(&conv, &ids, spans);
    }
    if (size > max)
        return k2a_convert_error_set(
            err, K2A_EPAYLOAD_TOOBIG,
            "prompt is too long: %zu bytes > %zu maximum (the Kiro request was %zu bytes; after dropping %zu "
            "of %zu history turns the system prompt, tools and latest message alone exceed the limit)",
            size, max, size0, dropped, nhistory0 - conv.nsystem);
    k2a_buf_reset(out);
    if ((r = k2a_kiro_encode(&conv, &ids, out, NULL)) != 0)
        return encode_failed(r, err);
    if (out->len != size) /* the measure and the encoder share their code: this cannot happen */
        return k2a_convert_error_set(err, K2A_EINTERNAL, "the Kiro request measured %zu bytes but encoded to %zu", size, out->len);
    if (dropped != 0)
        k2a_info("kiro request: dropped %zu oldest history turns to fit %zu bytes (now %zu)", dropped, max, out->len);
    return built(&model, &conv, &ids, out, dropped, res);
}
