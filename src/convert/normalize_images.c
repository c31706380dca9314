/*
 * Image rules of the normalizer (normalize_rules.h, rules 1-2). Old images are replaced by a text
 * placeholder so that long conversations do not resend every screenshot (AIClient keeps the last 5 history
 * messages); the images that are sent are validated as kiro2api does (§2.4): plain base64 with padding,
 * at most 20 MiB decoded, magic bytes matching the declared type when recognisable. Validation scans the
 * base64 once and decodes only the first 16 characters (the magic bytes), so a 20 MiB image costs a pass
 * over its text and no allocation.
 */
#include <stdio.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/normalize_rules.h"

/* ---------- 1. old images ---------- */

static bool has_image(const k2a_ir_message_t *m)
{
    for (size_t i = 0; i < m->nblocks; ++i) {
        const k2a_ir_block_t *b = &m->blocks[i];
        if (b->kind == K2A_BLOCK_IMAGE)
            return true;
        if (b->kind == K2A_BLOCK_TOOL_RESULT)
            for (size_t j = 0; j < b->ncontent; ++j)
                if (b->content[j].kind == K2A_BLOCK_IMAGE)
                    return true;
    }
    return false;
}

static void to_placeholder(k2a_ir_block_t *b)
{
    memset(b, 0, sizeof(*b));
    b->kind = K2A_BLOCK_TEXT;
    b->text = K2A_STRLIT(K2A_NORM_IMAGE_PLACEHOLDER);
}

/* Copy-on-write: m gets new blocks (and new tool_result contents) with every image replaced. */
static int replace_images(k2a_ir_message_t *m, k2a_arena_t *arena, size_t *count)
{
    k2a_ir_block_t *v = k2a_arena_alloc(arena, m->nblocks * sizeof(*v));
    if (v == NULL)
        return K2A_ENOMEM;
    memcpy(v, m->blocks, m->nblocks * sizeof(*v));
    for (size_t i = 0; i < m->nblocks; ++i) {
        k2a_ir_block_t *b = &v[i];
        if (b->kind == K2A_BLOCK_IMAGE) {
            to_placeholder(b);
            ++*count;
        } else if (b->kind == K2A_BLOCK_TOOL_RESULT && b->ncontent != 0) {
            k2a_ir_block_t *c = k2a_arena_alloc(arena, b->ncontent * sizeof(*c));
            if (c == NULL)
                return K2A_ENOMEM;
            memcpy(c, b->content, b->ncontent * sizeof(*c));
            for (size_t j = 0; j < b->ncontent; ++j) {
                if (c[j].kind == K2A_BLOCK_IMAGE) {
                    to_placeholder(&c[j]);
                    ++*count;
                }
            }
            b->content = c;
        }
    }
    m->blocks = v;
    return 0;
}

int k2a_norm_old_images(k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_arena_t *arena)
{
    size_t last = w->nmessages;
    while (last > 0 && w->messages[last - 1].role != K2A_ROLE_USER)
        --last;
    if (last == 0)
        return 0;
    --last; /* index of the last user message: the current one */
    size_t distance = 0, replaced = 0;
    for (size_t i = last; i-- > 0;) {
        if (w->messages[i + 1].role != K2A_ROLE_SYSTEM || i + 1 == last)
            ++distance;
        k2a_ir_message_t *m = &w->messages[i];
        if (m->role != K2A_ROLE_USER || distance <= cfg->image_history_messages || !has_image(m))
            continue;
        int r = replace_images(m, arena, &replaced);
        if (r != 0)
            return r;
    }
    if (replaced != 0)
        k2a_debug("normalize: %zu image(s) older than the last %zu messages replaced by \"%s\"", replaced,
                  cfg->image_history_messages, K2A_NORM_IMAGE_PLACEHOLDER);
    return 0;
}

/* ---------- 2. validation ---------- */

static const signed char b64val[256] = {
    ['A'] = 1,  ['B'] = 2,  ['C'] = 3,  ['D'] = 4,  ['E'] = 5,  ['F'] = 6,  ['G'] = 7,  ['H'] = 8,  ['I'] = 9,  ['J'] = 10,
    ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14, ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20,
    ['U'] = 21, ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26, ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30,
    ['e'] = 31, ['f'] = 32, ['g'] = 33, ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47, ['v'] = 48, ['w'] = 49, ['x'] = 50,
    ['y'] = 51, ['z'] = 52, ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59, ['7'] = 60,
    ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
}; /* value + 1; 0 = not in the alphabet */

static const char *detect_format(const unsigned char *p, size_t n)
{
    if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "image/jpeg";
    if (n >= 6 && (memcmp(p, "GIF87a", 6) == 0 || memcmp(p, "GIF89a", 6) == 0))
        return "image/gif";
    if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return "image/webp";
    return NULL;
}

int k2a_norm_check_image(k2a_str_t media_type, k2a_str_t data, size_t max_bytes, char *why, size_t whylen)
{
    const unsigned char *s = (const unsigned char *)data.base;
    size_t n = data.len;
    if (n == 0) {
        snprintf(why, whylen, "image data is empty");
        return K2A_EIMAGE_INVALID;
    }
    if (n % 4 != 0) {
        snprintf(why, whylen, "image data is not valid base64 (length %zu is not a multiple of 4)", n);
        return K2A_EIMAGE_INVALID;
    }
    size_t pad = (s[n - 1] == '=') + (s[n - 1] == '=' && s[n - 2] == '=');
    for (size_t i = 0; i < n - pad; ++i) {
        if (b64val[s[i]] == 0) {
            snprintf(why, whylen, "image data is not valid base64 (byte %zu is not in the base64 alphabet)", i);
            return K2A_EIMAGE_INVALID;
        }
    }
    size_t decoded = n / 4 * 3 - pad;
    if (decoded > max_bytes) {
        snprintf(why, whylen, "image of %zu bytes exceeds the limit of %zu bytes", decoded, max_bytes);
        return K2A_EIMAGE_INVALID;
    }
    /* the first 16 characters give the first 12 bytes: enough for every magic number checked */
    unsigned char head[12];
    size_t nhead = 0, lim = n - pad < 16 ? n - pad : 16;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < lim && nhead < sizeof(head); ++i) {
        acc = (acc << 6) | (uint32_t)(b64val[s[i]] - 1);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            head[nhead++] = (unsigned char)(acc >> bits);
        }
    }
    if (decoded >= 12) { /* shorter data: undetectable, accepted (§2.4) */
        const char *actual = detect_format(head, nhead);
        if (actual != NULL && !(media_type.len == strlen(actual) && memcmp(media_type.base, actual, media_type.len) == 0)) {
            snprintf(why, whylen, "image declared as %.*s but its data is %s", (int)(media_type.len < 32 ? media_type.len : 32),
                     media_type.base, actual);
            return K2A_EIMAGE_INVALID;
        }
    }
    return 0;
}

int k2a_norm_validate_images(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_convert_error_t *err)
{
    char why[200];
    for (size_t i = 0; i < w->nmessages; ++i) {
        const k2a_ir_message_t *m = &w->messages[i];
        if (m->role != K2A_ROLE_USER)
            continue;
        size_t nimg = 0;
        for (size_t j = 0; j < m->nblocks; ++j) {
            const k2a_ir_block_t *b = &m->blocks[j];
            const k2a_ir_block_t *list = b;
            size_t nlist = 1;
            if (b->kind == K2A_BLOCK_TOOL_RESULT) {
                list = b->content;
                nlist = b->ncontent;
            }
            for (size_t k = 0; k < nlist; ++k) {
                if (list[k].kind != K2A_BLOCK_IMAGE)
                    continue;
                ++nimg;
                if (k2a_norm_check_image(list[k].media_type, list[k].data, cfg->max_image_bytes, why, sizeof(why)) != 0)
                    return k2a_convert_error_set(err, K2A_EIMAGE_INVALID, "messages[%zu]: image #%zu%s: %s", i, nimg,
                                                 b->kind == K2A_BLOCK_TOOL_RESULT ? " (in a tool_result)" : "", why);
            }
        }
    }
    return 0;
}
