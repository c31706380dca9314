/*
 * Message-level normalizer rules (normalize_rules.h, rules 3-10): fold system prompts, thinking tags, drop
 * prefill, merge same-role turns, fix a leading assistant, and keep tool calls and tool results strictly
 * paired (each tool_use answered in the very next user message, each tool_result answering the very previous
 * assistant message) — the shape Kiro validates (kiro-protocol.md §2.5 [OBS], peers.md §2.1).
 * Rules never write into arrays they did not allocate: a changed message gets a new blocks array.
 */
#include <stdio.h>
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/normalize_rules.h"
#include "convert/strset.h"

static bool is_blank(k2a_str_t s)
{
    for (size_t i = 0; i < s.len; ++i) {
        char c = s.base[i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            return false;
    }
    return true;
}

/* ---------- 3. system ---------- */

int k2a_norm_fold_system(k2a_ir_request_t *w, k2a_arena_t *arena, k2a_str_t *system)
{
    size_t total = 0, parts = 0, nsysmsg = 0;
    for (size_t i = 0; i < w->nsystem; ++i) {
        if (w->system[i].text.len != 0) {
            total += w->system[i].text.len;
            ++parts;
        }
    }
    for (size_t i = 0; i < w->nmessages; ++i) {
        const k2a_ir_message_t *m = &w->messages[i];
        if (m->role != K2A_ROLE_SYSTEM)
            continue;
        ++nsysmsg;
        for (size_t j = 0; j < m->nblocks; ++j) {
            const k2a_ir_block_t *b = &m->blocks[j];
            if ((b->kind == K2A_BLOCK_TEXT || b->kind == K2A_BLOCK_DOCUMENT) && b->text.len != 0) {
                total += b->text.len;
                ++parts;
            }
        }
    }
    *system = K2A_STR_NULL;
    if (parts != 0) {
        char *buf = k2a_arena_alloc(arena, total + parts + 1), *p = buf;
        if (buf == NULL)
            return K2A_ENOMEM;
#define APPEND(s)                                                                                                                  \
    do {                                                                                                                           \
        if (p != buf)                                                                                                              \
            *p++ = '\n';                                                                                                           \
        memcpy(p, (s).base, (s).len);                                                                                              \
        p += (s).len;                                                                                                              \
    } while (0)
        for (size_t i = 0; i < w->nsystem; ++i)
            if (w->system[i].text.len != 0)
                APPEND(w->system[i].text);
        for (size_t i = 0; i < w->nmessages; ++i) {
            const k2a_ir_message_t *m = &w->messages[i];
            if (m->role != K2A_ROLE_SYSTEM)
                continue;
            for (size_t j = 0; j < m->nblocks; ++j) {
                const k2a_ir_block_t *b = &m->blocks[j];
                if ((b->kind == K2A_BLOCK_TEXT || b->kind == K2A_BLOCK_DOCUMENT) && b->text.len != 0)
                    APPEND(b->text);
            }
        }
#undef APPEND
        *system = k2a_str(buf, (size_t)(p - buf));
        if (is_blank(*system))
            *system = K2A_STR_NULL;
    }
    if (nsysmsg != 0) {
        size_t n = 0;
        for (size_t i = 0; i < w->nmessages; ++i)
            if (w->messages[i].role != K2A_ROLE_SYSTEM)
                w->messages[n++] = w->messages[i];
        w->nmessages = n;
        k2a_debug("normalize: folded %zu role-system message(s) into the system prompt", nsysmsg);
    }
    w->system = NULL;
    w->nsystem = 0;
    return 0;
}

/* ---------- 4. thinking ---------- */

static bool effort_ok(k2a_str_t e)
{
    if (e.len == 0 || e.len > 16)
        return false;
    for (size_t i = 0; i < e.len; ++i)
        if (!(e.base[i] >= 'a' && e.base[i] <= 'z') && e.base[i] != '_')
            return false;
    return true;
}

static bool contains(k2a_str_t hay, const char *needle)
{
    size_t n = strlen(needle);
    return hay.len >= n && memmem(hay.base, hay.len, needle, n) != NULL;
}

k2a_str_t k2a_norm_thinking_effort(const k2a_ir_request_t *req)
{
    return effort_ok(req->thinking.effort) ? req->thinking.effort : K2A_STRLIT("high");
}

int k2a_norm_thinking_prefix(const k2a_ir_request_t *w, const k2a_normalize_config_t *cfg, bool forced, k2a_arena_t *arena,
                             k2a_str_t *system, bool *on, k2a_str_t *native_effort)
{
    k2a_ir_thinking_t mode = w->thinking.mode;
    int64_t budget = w->thinking.budget_tokens;
    *native_effort = K2A_STR_NULL;
    if (forced && mode == K2A_THINKING_OFF) {
        mode = K2A_THINKING_ENABLED;
        budget = 0;
    }
    *on = false;
    if (mode == K2A_THINKING_OFF)
        return 0;
    if (w->max_tokens > 0 && w->max_tokens < K2A_NORMALIZE_THINKING_MIN_MAX_TOKENS) {
        /* Claude Code's side requests (titles, summaries: max_tokens 64..512) come back empty with thinking on */
        k2a_debug("normalize: max_tokens %lld < %d, no thinking requested from Kiro", (long long)w->max_tokens,
                  K2A_NORMALIZE_THINKING_MIN_MAX_TOKENS);
        return 0;
    }
    *on = true;
    if (contains(*system, "<thinking_mode>")) {
        k2a_debug("normalize: system prompt already carries <thinking_mode>, no thinking tags added");
        return 0;
    }
    if (mode == K2A_THINKING_ADAPTIVE && cfg->native_effort) {
        /* additionalModelRequestFields.output_config.effort is sent instead of the tags (§7: never both) */
        *native_effort = k2a_norm_thinking_effort(w);
        k2a_debug("normalize: thinking effort \"%.*s\" sent as additionalModelRequestFields", (int)native_effort->len,
                  native_effort->base);
        return 0;
    }
    char prefix[160];
    int n;
    if (mode == K2A_THINKING_ENABLED) {
        if (budget <= 0)
            budget = cfg->thinking_budget_default;
        if (budget < cfg->thinking_budget_min)
            budget = cfg->thinking_budget_min;
        if (budget > cfg->thinking_budget_max)
            budget = cfg->thinking_budget_max;
        /* a budget that reaches max_tokens leaves no room for the answer: Kiro then answers an empty 200 */
        if (w->max_tokens > 0 && budget > w->max_tokens * 3 / 4)
            budget = w->max_tokens * 3 / 4;
        n = snprintf(prefix, sizeof(prefix),
                     "<thinking_mode>enabled</thinking_mode><max_thinking_length>%lld</max_thinking_length>", (long long)budget);
    } else {
        k2a_str_t e = k2a_norm_thinking_effort(w);
        n = snprintf(prefix, sizeof(prefix), "<thinking_mode>adaptive</thinking_mode><thinking_effort>%.*s</thinking_effort>",
                     (int)e.len, e.base);
    }
    size_t total = (size_t)n + (system->len != 0 ? 1 + system->len : 0);
    char *buf = k2a_arena_alloc(arena, total + 1);
    if (buf == NULL)
        return K2A_ENOMEM;
    memcpy(buf, prefix, (size_t)n);
    if (system->len != 0) {
        buf[n] = '\n';
        memcpy(buf + n + 1, system->base, system->len);
    }
    buf[total] = '\0';
    *system = k2a_str(buf, total);
    k2a_debug("normalize: thinking tags added to the system prompt (%s)", mode == K2A_THINKING_ENABLED ? "enabled" : "adaptive");
    return 0;
}

/* ---------- 5. prefill ---------- */

int k2a_norm_drop_prefill(k2a_ir_request_t *w, k2a_convert_error_t *err)
{
    size_t n = w->nmessages;
    if (n == 0)
        return k2a_convert_error_set(err, K2A_EEMPTY_MESSAGES, "messages: must contain at least one user message");
    while (n > 0 && w->messages[n - 1].role != K2A_ROLE_USER)
        --n;
    if (n == 0)
        return k2a_convert_error_set(err, K2A_EEMPTY_MESSAGES, "messages: must contain at least one user message");
    if (n != w->nmessages) {
        k2a_debug("normalize: dropped %zu trailing assistant message(s) (prefill)", w->nmessages - n);
        w->nmessages = n;
    }
    return 0;
}

/* ---------- 6. merge ---------- */

int k2a_norm_merge_same_role(k2a_ir_request_t *w, k2a_arena_t *arena)
{
    size_t out = 0, merged = 0;
    for (size_t i = 0; i < w->nmessages;) {
        size_t j = i + 1, nblocks = w->messages[i].nblocks;
        while (j < w->nmessages && w->messages[j].role == w->messages[i].role)
            nblocks += w->messages[j++].nblocks;
        k2a_ir_message_t m = w->messages[i];
        if (j - i > 1) {
            k2a_ir_block_t *blocks = k2a_arena_alloc(arena, (nblocks != 0 ? nblocks : 1) * sizeof(*blocks));
            if (blocks == NULL)
                return K2A_ENOMEM;
            size_t k = 0;
            for (size_t x = i; x < j; ++x) {
                if (w->messages[x].nblocks != 0)
                    memcpy(blocks + k, w->messages[x].blocks, w->messages[x].nblocks * sizeof(*blocks));
                k += w->messages[x].nblocks;
            }
            m.blocks = blocks;
            m.nblocks = nblocks;
            merged += j - i - 1;
        }
        w->messages[out++] = m;
        i = j;
    }
    if (merged != 0)
        k2a_debug("normalize: merged %zu message(s) into the previous one of the same role", merged);
    w->nmessages = out;
    return 0;
}

/* ---------- 7. leading assistant ---------- */

int k2a_norm_leading_assistant(k2a_ir_request_t *w, k2a_arena_t *arena)
{
    if (w->nmessages == 0 || w->messages[0].role != K2A_ROLE_ASSISTANT)
        return 0;
    k2a_ir_message_t *v = k2a_arena_alloc(arena, (w->nmessages + 1) * sizeof(*v));
    k2a_ir_block_t *b = k2a_arena_calloc(arena, sizeof(*b));
    if (v == NULL || b == NULL)
        return K2A_ENOMEM;
    b->kind = K2A_BLOCK_TEXT;
    b->text = K2A_STRLIT(K2A_NORM_EMPTY_USER_CONTENT);
    v[0].role = K2A_ROLE_USER;
    v[0].blocks = b;
    v[0].nblocks = 1;
    memcpy(v + 1, w->messages, w->nmessages * sizeof(*v));
    w->messages = v;
    ++w->nmessages;
    k2a_debug("normalize: conversation starts with an assistant message, user turn \"%s\" inserted", K2A_NORM_EMPTY_USER_CONTENT);
    return 0;
}

/* ---------- 8-10. tool pairing ---------- */

static size_t count_kind(const k2a_ir_message_t *m, k2a_ir_block_kind_t kind)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nblocks; ++i)
        n += m->blocks[i].kind == kind;
    return n;
}

static k2a_str_t block_id(const k2a_ir_block_t *b)
{
    return b->kind == K2A_BLOCK_TOOL_USE ? b->id : b->tool_use_id;
}

/* Replaces m->blocks by a copy without the blocks whose keep[] is false. */
static int filter_blocks(k2a_ir_message_t *m, const bool *keep, k2a_arena_t *arena)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nblocks; ++i)
        n += keep[i];
    k2a_ir_block_t *v = k2a_arena_alloc(arena, (n != 0 ? n : 1) * sizeof(*v));
    if (v == NULL)
        return K2A_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < m->nblocks; ++i)
        if (keep[i])
            v[k++] = m->blocks[i];
    m->blocks = v;
    m->nblocks = n;
    return 0;
}

int k2a_norm_dedupe_tool_results(k2a_ir_request_t *w, k2a_arena_t *arena)
{
    for (size_t i = 0; i < w->nmessages; ++i) {
        k2a_ir_message_t *m = &w->messages[i];
        k2a_ir_block_kind_t kind = m->role == K2A_ROLE_USER ? K2A_BLOCK_TOOL_RESULT : K2A_BLOCK_TOOL_USE;
        size_t n = count_kind(m, kind);
        if (n < 2)
            continue;
        k2a_strset_t seen;
        bool *keep = k2a_arena_alloc(arena, m->nblocks * sizeof(bool));
        if (keep == NULL || !k2a_strset_init(&seen, n, false, arena))
            return K2A_ENOMEM;
        size_t dropped = 0;
        for (size_t j = 0; j < m->nblocks; ++j) {
            keep[j] = m->blocks[j].kind != kind || k2a_strset_add(&seen, block_id(&m->blocks[j]));
            dropped += !keep[j];
        }
        if (dropped != 0) {
            k2a_debug("normalize: messages[%zu]: removed %zu duplicate %s id(s)", i, dropped,
                      kind == K2A_BLOCK_TOOL_RESULT ? "tool_result" : "tool_use");
            int r = filter_blocks(m, keep, arena);
            if (r != 0)
                return r;
        }
    }
    return 0;
}

/* Keeps the blocks of `kind` in m whose id is among the blocks of `other_kind` in other (NULL: none). */
static int keep_matching(k2a_ir_message_t *m, k2a_ir_block_kind_t kind, const k2a_ir_message_t *other,
                         k2a_ir_block_kind_t other_kind, k2a_arena_t *arena, size_t *dropped)
{
    *dropped = 0;
    size_t n = count_kind(m, kind);
    if (n == 0)
        return 0;
    k2a_strset_t ids;
    size_t no = other != NULL ? count_kind(other, other_kind) : 0;
    if (!k2a_strset_init(&ids, no, false, arena))
        return K2A_ENOMEM;
    for (size_t j = 0; other != NULL && j < other->nblocks; ++j)
        if (other->blocks[j].kind == other_kind)
            k2a_strset_add(&ids, block_id(&other->blocks[j]));
    bool *keep = k2a_arena_alloc(arena, m->nblocks * sizeof(bool));
    if (keep == NULL)
        return K2A_ENOMEM;
    for (size_t j = 0; j < m->nblocks; ++j) {
        keep[j] = m->blocks[j].kind != kind || k2a_strset_has(&ids, block_id(&m->blocks[j]));
        *dropped += !keep[j];
    }
    return *dropped != 0 ? filter_blocks(m, keep, arena) : 0;
}

int k2a_norm_drop_unanswered_tool_uses(k2a_ir_request_t *w, k2a_arena_t *arena)
{
    for (size_t i = 0; i < w->nmessages; ++i) {
        k2a_ir_message_t *m = &w->messages[i];
        if (m->role != K2A_ROLE_ASSISTANT)
            continue;
        const k2a_ir_message_t *next =
            i + 1 < w->nmessages && w->messages[i + 1].role == K2A_ROLE_USER ? &w->messages[i + 1] : NULL;
        size_t dropped;
        int r = keep_matching(m, K2A_BLOCK_TOOL_USE, next, K2A_BLOCK_TOOL_RESULT, arena, &dropped);
        if (r != 0)
            return r;
        if (dropped != 0)
            k2a_debug("normalize: messages[%zu]: removed %zu tool_use(s) without a tool_result in the next message", i, dropped);
    }
    return 0;
}

int k2a_norm_drop_orphan_tool_results(k2a_ir_request_t *w, k2a_arena_t *arena)
{
    for (size_t i = 0; i < w->nmessages; ++i) {
        k2a_ir_message_t *m = &w->messages[i];
        if (m->role != K2A_ROLE_USER)
            continue;
        const k2a_ir_message_t *prev = i > 0 && w->messages[i - 1].role == K2A_ROLE_ASSISTANT ? &w->messages[i - 1] : NULL;
        size_t dropped;
        int r = keep_matching(m, K2A_BLOCK_TOOL_RESULT, prev, K2A_BLOCK_TOOL_USE, arena, &dropped);
        if (r != 0)
            return r;
        if (dropped != 0)
            k2a_debug("normalize: messages[%zu]: removed %zu tool_result(s) answering no tool_use of the previous message", i,
                      dropped);
    }
    return 0;
}
