/*
 * Rendering rules of the normalizer (normalize_rules.h, rules 11-18): tool specs (names outside Kiro's charset or
 * over 64 bytes rewritten with a reversible map, descriptions cut on a UTF-8 boundary, schemas sanitized by
 * tool_schema.c), IR messages → Kiro turns (text joined with "\n", tool results flattened to one text,
 * history thinking inlined as <thinking> tags), placeholders for empty turns, stub specs for tools that
 * only the history mentions. Strings are joined in two passes (measure, then copy) into the arena.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/normalize_rules.h"
#include "convert/strset.h"
#include "convert/tool_schema.h"

/* ---------- small helpers ---------- */

/* Joins the non-empty parts with sep. */
static k2a_str_t join(const k2a_str_t *parts, size_t n, const char *sep, k2a_arena_t *arena)
{
    size_t seplen = strlen(sep), total = 0, k = 0;
    for (size_t i = 0; i < n; ++i) {
        if (parts[i].len == 0)
            continue;
        total += parts[i].len + (k++ != 0 ? seplen : 0);
    }
    if (k == 1) {
        for (size_t i = 0; i < n; ++i)
            if (parts[i].len != 0)
                return parts[i];
    }
    char *buf = k2a_arena_alloc(arena, total + 1), *p = buf;
    if (buf == NULL)
        return K2A_STR_NULL;
    for (size_t i = 0; i < n; ++i) {
        if (parts[i].len == 0)
            continue;
        if (p != buf) {
            memcpy(p, sep, seplen);
            p += seplen;
        }
        memcpy(p, parts[i].base, parts[i].len);
        p += parts[i].len;
    }
    *p = '\0';
    return k2a_str(buf, total);
}

static k2a_str_t concat3(k2a_str_t a, k2a_str_t b, k2a_str_t c, k2a_arena_t *arena)
{
    size_t total = a.len + b.len + c.len;
    char *buf = k2a_arena_alloc(arena, total + 1);
    if (buf == NULL)
        return K2A_STR_NULL;
    if (a.len != 0)
        memcpy(buf, a.base, a.len);
    if (b.len != 0)
        memcpy(buf + a.len, b.base, b.len);
    if (c.len != 0)
        memcpy(buf + a.len + b.len, c.base, c.len);
    buf[total] = '\0';
    return k2a_str(buf, total);
}

static bool is_blank(k2a_str_t s)
{
    for (size_t i = 0; i < s.len; ++i) {
        char c = s.base[i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return false;
    }
    return true;
}

/* Largest length <= max that does not cut a UTF-8 sequence of s. */
static size_t utf8_cut(k2a_str_t s, size_t max)
{
    if (s.len <= max)
        return s.len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s.base[n] & 0xc0) == 0x80)
        --n;
    return n;
}

/* ---------- 11. tool names ---------- */

k2a_str_t k2a_tool_names_to_client(const k2a_tool_names_t *m, k2a_str_t kiro_name)
{
    if (m != NULL)
        for (size_t i = 0; i < m->n; ++i)
            if (k2a_str_eq(m->pairs[i].kiro, kiro_name))
                return m->pairs[i].client;
    return kiro_name;
}

/* Kiro's name rule (kiro-protocol-2026.md §6): ^[a-zA-Z0-9_-]{1,64}$ */
bool k2a_norm_tool_name_ok(k2a_str_t name)
{
    if (name.len == 0 || name.len > K2A_NORM_MAX_TOOL_NAME)
        return false;
    /* Kiro refuses a plain tool named like its web search server tool (kiro-sim rule "server_tool"): such a client
     * tool (an OpenAI function, or a history call of one) travels under a rewritten name, mapped back in answers */
    if (k2a_str_eq_lit(name, "web_search") || k2a_str_eq_lit(name, "websearch"))
        return false;
    for (size_t i = 0; i < name.len; ++i) {
        char c = name.base[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

int k2a_norm_tool_name(k2a_str_t name, k2a_tool_names_t *names, k2a_arena_t *arena, k2a_str_t *out)
{
    if (k2a_norm_tool_name_ok(name)) {
        *out = name;
        return 0;
    }
    /* the Kiro name is a function of the client name: compute it every time, record the pair once (a hash set
     * keeps hostile requests with thousands of long names linear). Every rewritten name carries the hash of the
     * client's name, so two client names never meet in one Kiro name (nor a rewritten name a valid one). */
    k2a_strset_t *seen = names->index;
    bool known = seen != NULL && k2a_strset_has(seen, name);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_Digest(name.base, name.len, md, &mdlen, EVP_sha256(), NULL) != 1)
        return K2A_EINTERNAL;
    char *buf = k2a_arena_alloc(arena, K2A_NORM_MAX_TOOL_NAME + 1);
    if (buf == NULL)
        return K2A_ENOMEM;
    /* the prefix: the name with every character outside [a-zA-Z0-9_-] (a UTF-8 sequence counts as one) as '_' */
    size_t plen = 0;
    for (size_t i = 0; i < name.len && plen < K2A_NORM_MAX_TOOL_NAME - 13; ++i) {
        unsigned char c = (unsigned char)name.base[i];
        if ((c & 0xc0) == 0x80)
            continue; /* a continuation byte: its lead byte wrote the '_' */
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
        buf[plen++] = ok ? (char)c : '_';
    }
    buf[plen] = '_';
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 6; ++i) {
        buf[plen + 1 + 2 * i] = hex[md[i] >> 4];
        buf[plen + 2 + 2 * i] = hex[md[i] & 15];
    }
    buf[plen + 13] = '\0';
    *out = k2a_str(buf, plen + 13);
    if (known)
        return 0;
    if (names->n == names->cap) {
        k2a_tool_name_pair_t *v = k2a_arena_grow(arena, names->pairs, sizeof(*v), names->n, &names->cap);
        if (v == NULL)
            return K2A_ENOMEM;
        names->pairs = v;
    }
    names->pairs[names->n].kiro = *out;
    names->pairs[names->n].client = name;
    ++names->n;
    if (seen == NULL || seen->n == seen->max) { /* (re)build the set with room to grow */
        k2a_strset_t *ns = k2a_arena_alloc(arena, sizeof(*ns));
        if (ns == NULL || !k2a_strset_init(ns, names->n * 2 + 8, false, arena))
            return K2A_ENOMEM;
        for (size_t i = 0; i < names->n; ++i)
            k2a_strset_add(ns, names->pairs[i].client);
        names->index = ns;
    } else {
        k2a_strset_add(seen, name);
    }
    k2a_debug("normalize: tool name of %zu bytes rewritten to \"%.*s\"", name.len, (int)out->len, out->base);
    return 0;
}

/* ---------- 12. descriptions ---------- */

k2a_str_t k2a_norm_tool_description(k2a_str_t desc, k2a_str_t name, size_t max)
{
    if (is_blank(desc)) {
        k2a_debug("normalize: tool \"%.*s\" has no description, its name is used", (int)name.len, name.base);
        desc = name; /* the client's name, which may be longer than the limit too */
    }
    if (desc.len > max) {
        size_t n = utf8_cut(desc, max);
        k2a_debug("normalize: description of tool \"%.*s\" cut from %zu to %zu bytes", (int)name.len, name.base, desc.len, n);
        desc.len = n;
        if (n == 0) /* a limit below one character */
            return name;
    }
    return desc;
}

/* ---------- 13. schemas ---------- */

int k2a_norm_tool_schema(k2a_str_t schema, k2a_tool_schema_strip_t mode, k2a_arena_t *arena, k2a_str_t *out)
{
    if (schema.len == 0) {
        *out = K2A_STRLIT("{\"type\":\"object\",\"properties\":{}}");
        return 0;
    }
    k2a_buf_t b;
    k2a_buf_init(&b, k2a_tool_schema_max_output(schema.len));
    k2a_tool_schema_info_t info;
    int r = k2a_buf_reserve(&b, schema.len + 64); /* the output is about the input's size: one allocation */
    if (r == 0)
        r = k2a_tool_schema_sanitize_cached(schema.base, schema.len, mode, &b, &info);
    if (r == 0) {
        if (b.len == schema.len && memcmp(b.base, schema.base, b.len) == 0) {
            *out = schema; /* already in Kiro's shape: zero-copy */
        } else {
            char *p = k2a_arena_strndup(arena, b.base, b.len);
            if (p == NULL)
                r = K2A_ENOMEM;
            else
                *out = k2a_str(p, b.len);
        }
    }
    k2a_buf_dispose(&b);
    if (r == 0 && (info.removed != 0 || info.root_typed || info.root_replaced || info.flattened))
        k2a_debug("normalize: tool schema: %zu member(s) removed%s%s%s", info.removed, info.root_typed ? ", root typed object" : "",
                  info.root_replaced ? ", non-object root replaced" : "", info.flattened ? ", root combinators flattened" : "");
    return r;
}

int k2a_norm_tools(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, k2a_tool_names_t *names, k2a_arena_t *arena,
                   k2a_kiro_tool_spec_t **out, size_t *nout, k2a_convert_error_t *err)
{
    *out = NULL;
    *nout = 0;
    if (w->ntools == 0)
        return 0;
    k2a_kiro_tool_spec_t *v = k2a_arena_alloc(arena, w->ntools * sizeof(*v));
    k2a_strset_t seen;
    if (v == NULL || !k2a_strset_init(&seen, w->ntools, true, arena))
        return K2A_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < w->ntools; ++i) {
        const k2a_ir_tool_t *t = &w->tools[i];
        k2a_kiro_tool_spec_t *s = &v[n];
        int r;
        if ((r = k2a_norm_tool_name(t->name, names, arena, &s->name)) != 0)
            return r;
        if (!k2a_strset_add(&seen, s->name)) {
            k2a_debug("normalize: dropping duplicate tool \"%.*s\"", (int)t->name.len, t->name.base);
            continue;
        }
        /* a blank client name (rewritten for Kiro) cannot stand in for a missing description: its Kiro name does */
        s->description =
            k2a_norm_tool_description(t->description, is_blank(t->name) ? s->name : t->name, cfg->max_tool_description);
        if ((r = k2a_norm_tool_schema(t->input_schema, cfg->tool_schema_strip, arena, &s->schema)) != 0) {
            if (r == K2A_ENOMEM)
                return r;
            return k2a_convert_error_set(err, r, "tools[%zu].input_schema (tool \"%.*s\"): %s", i,
                                         (int)(t->name.len < 64 ? t->name.len : 64), t->name.base,
                                         r == K2A_EJSON_DEPTH ? "nested deeper than 128 levels"
                                         : r == K2A_ETOOBIG   ? "too large to convert"
                                                              : "not a valid JSON schema");
        }
        ++n;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* ---------- 14. thinking ---------- */

k2a_str_t k2a_norm_inline_thinking(k2a_str_t thinking, k2a_str_t text, k2a_arena_t *arena)
{
    if (thinking.len == 0)
        return text;
    k2a_str_t open = K2A_STRLIT("<thinking>");
    k2a_str_t close = text.len != 0 ? K2A_STRLIT("</thinking>\n\n") : K2A_STRLIT("</thinking>");
    k2a_str_t head = concat3(open, thinking, close, arena);
    if (head.base == NULL || text.len == 0)
        return head;
    return concat3(head, text, K2A_STR_NULL, arena);
}

/* ---------- 15. rendering ---------- */

static k2a_str_t image_format(k2a_str_t media_type)
{
    /* media types were validated by the decoder: image/<format> */
    if (media_type.len > 6 && memcmp(media_type.base, "image/", 6) == 0)
        return k2a_str(media_type.base + 6, media_type.len - 6);
    return media_type;
}

static void add_image(k2a_kiro_turn_t *t, const k2a_ir_block_t *b)
{
    k2a_kiro_image_t *img = &t->images[t->nimages++];
    img->format = image_format(b->media_type);
    img->data = b->data;
    img->checked = true; /* k2a_norm_validate_images ran on every image that reaches rendering */
}

static k2a_str_t render_document(const k2a_ir_block_t *b, k2a_arena_t *arena)
{
    if (b->name.len == 0)
        return b->text;
    return concat3(K2A_STRLIT("[document: "), b->name, concat3(K2A_STRLIT("]\n"), b->text, K2A_STR_NULL, arena), arena);
}

int k2a_norm_render_user(const k2a_ir_message_t *m, k2a_tool_names_t *names, k2a_arena_t *arena, k2a_kiro_turn_t *out)
{
    (void)names;
    memset(out, 0, sizeof(*out));
    size_t nimages = 0, nresults = 0, nparts = 0;
    for (size_t i = 0; i < m->nblocks; ++i) {
        const k2a_ir_block_t *b = &m->blocks[i];
        if (b->kind == K2A_BLOCK_IMAGE) {
            ++nimages;
        } else if (b->kind == K2A_BLOCK_TOOL_RESULT) {
            ++nresults;
            for (size_t j = 0; j < b->ncontent; ++j)
                nimages += b->content[j].kind == K2A_BLOCK_IMAGE;
            if (b->ncontent > nparts)
                nparts = b->ncontent;
        }
    }
    if (m->nblocks > nparts)
        nparts = m->nblocks;
    k2a_str_t *parts = k2a_arena_alloc(arena, (nparts != 0 ? nparts : 1) * sizeof(*parts));
    if (parts == NULL)
        return K2A_ENOMEM;
    if (nimages != 0 && (out->images = k2a_arena_alloc(arena, nimages * sizeof(*out->images))) == NULL)
        return K2A_ENOMEM;
    if (nresults != 0 && (out->results = k2a_arena_alloc(arena, nresults * sizeof(*out->results))) == NULL)
        return K2A_ENOMEM;
    /* tool results first (their parts array is reused for the message text afterwards) */
    for (size_t i = 0; i < m->nblocks; ++i) {
        const k2a_ir_block_t *b = &m->blocks[i];
        if (b->kind != K2A_BLOCK_TOOL_RESULT)
            continue;
        size_t np = 0;
        for (size_t j = 0; j < b->ncontent; ++j) {
            const k2a_ir_block_t *c = &b->content[j];
            if (c->kind == K2A_BLOCK_TEXT) {
                parts[np++] = c->text;
            } else if (c->kind == K2A_BLOCK_IMAGE) {
                add_image(out, c);
                parts[np++] = K2A_STRLIT(K2A_NORM_IMAGE_PLACEHOLDER);
            }
        }
        k2a_kiro_tool_result_t *r = &out->results[out->nresults++];
        r->tool_use_id = b->tool_use_id;
        r->is_error = b->is_error;
        r->text = join(parts, np, "\n", arena);
        if (r->text.len == 0)
            r->text = K2A_STRLIT(K2A_NORM_EMPTY_TOOL_RESULT);
        else if (r->text.base == NULL)
            return K2A_ENOMEM;
    }
    size_t np = 0;
    for (size_t i = 0; i < m->nblocks; ++i) {
        const k2a_ir_block_t *b = &m->blocks[i];
        switch (b->kind) {
        case K2A_BLOCK_TEXT:
            parts[np++] = b->text;
            break;
        case K2A_BLOCK_DOCUMENT:
            if ((parts[np++] = render_document(b, arena)).base == NULL)
                return K2A_ENOMEM;
            break;
        case K2A_BLOCK_IMAGE:
            add_image(out, b);
            break;
        default:
            break;
        }
    }
    out->content = join(parts, np, "\n", arena);
    return 0;
}

int k2a_norm_render_assistant(const k2a_ir_message_t *m, bool inline_thinking, k2a_tool_names_t *names, k2a_arena_t *arena,
                              k2a_kiro_turn_t *out)
{
    memset(out, 0, sizeof(*out));
    out->assistant = true;
    size_t nuses = 0;
    for (size_t i = 0; i < m->nblocks; ++i)
        nuses += m->blocks[i].kind == K2A_BLOCK_TOOL_USE;
    k2a_str_t *parts = k2a_arena_alloc(arena, (m->nblocks != 0 ? m->nblocks : 1) * 2 * sizeof(*parts));
    if (parts == NULL)
        return K2A_ENOMEM;
    k2a_str_t *thinking = parts + m->nblocks;
    if (nuses != 0 && (out->uses = k2a_arena_alloc(arena, nuses * sizeof(*out->uses))) == NULL)
        return K2A_ENOMEM;
    size_t np = 0, nt = 0;
    for (size_t i = 0; i < m->nblocks; ++i) {
        const k2a_ir_block_t *b = &m->blocks[i];
        switch (b->kind) {
        case K2A_BLOCK_TEXT:
            parts[np++] = b->text;
            break;
        case K2A_BLOCK_THINKING:
            thinking[nt++] = b->text;
            break;
        case K2A_BLOCK_REDACTED_THINKING:
            if (out->redacted.len == 0)
                out->redacted = b->text;
            break;
        case K2A_BLOCK_TOOL_USE: {
            k2a_kiro_tool_use_t *u = &out->uses[out->nuses++];
            u->id = b->id;
            u->input = b->input.len != 0 ? b->input : K2A_STRLIT("{}");
            int r = k2a_norm_tool_name(b->name, names, arena, &u->name);
            if (r != 0)
                return r;
            break;
        }
        default:
            break;
        }
    }
    out->content = join(parts, np, "\n", arena);
    if (nt != 0) {
        if (inline_thinking) {
            k2a_str_t t = join(thinking, nt, "\n", arena);
            if (t.len != 0) {
                out->content = k2a_norm_inline_thinking(t, out->content, arena);
                if (out->content.base == NULL)
                    return K2A_ENOMEM;
            }
        } else {
            k2a_debug("normalize: thinking is off, %zu thinking block(s) of the history not sent", nt);
        }
    }
    return 0;
}

/* ---------- 16. empty turns ---------- */

void k2a_norm_fill_empty(k2a_kiro_turn_t *t)
{
    if (t->assistant) {
        /* blank content is accepted next to tool uses only ("empty_assistant_message" in kiro-sim's validator) */
        if (t->nuses == 0 && is_blank(t->content))
            t->content = K2A_STRLIT(K2A_NORM_EMPTY_ASSISTANT_TEXT);
        else if (t->content.len == 0)
            t->content = K2A_STRLIT(K2A_NORM_EMPTY_ASSISTANT_CONTENT);
    } else if (t->nresults == 0 && is_blank(t->content)) {
        t->content = K2A_STRLIT(K2A_NORM_EMPTY_USER_CONTENT);
    }
}

/* ---------- 17. stub tools ---------- */

/* the shape every schema takes after k2a_tool_schema_sanitize (no $schema, no additionalProperties, no empty required) */
#define STUB_SCHEMA "{\"type\":\"object\",\"properties\":{}}"

int k2a_norm_stub_tools(k2a_kiro_conv_t *c, k2a_arena_t *arena)
{
    size_t nuses = 0;
    for (size_t i = 0; i < c->nhistory; ++i)
        nuses += c->history[i].nuses;
    if (nuses == 0)
        return 0;
    k2a_strset_t known;
    if (!k2a_strset_init(&known, c->ntools + nuses, true, arena))
        return K2A_ENOMEM;
    for (size_t i = 0; i < c->ntools; ++i)
        k2a_strset_add(&known, c->tools[i].name);
    size_t nstub = 0;
    k2a_kiro_tool_spec_t *v = NULL;
    for (size_t i = 0; i < c->nhistory; ++i) {
        for (size_t j = 0; j < c->history[i].nuses; ++j) {
            k2a_str_t name = c->history[i].uses[j].name;
            if (!k2a_strset_add(&known, name))
                continue;
            if (v == NULL) {
                if ((v = k2a_arena_alloc(arena, (c->ntools + nuses) * sizeof(*v))) == NULL)
                    return K2A_ENOMEM;
                if (c->ntools != 0)
                    memcpy(v, c->tools, c->ntools * sizeof(*v));
                c->tools = v;
            }
            k2a_kiro_tool_spec_t *s = &c->tools[c->ntools++];
            s->name = name;
            s->description = K2A_STRLIT(K2A_NORM_STUB_TOOL_DESCRIPTION);
            s->schema = K2A_STRLIT(STUB_SCHEMA);
            ++nstub;
        }
    }
    if (nstub != 0)
        k2a_debug("normalize: %zu tool(s) used in the history but absent from tools got stub specs", nstub);
    return 0;
}
