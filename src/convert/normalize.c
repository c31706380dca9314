/*
 * The normalizer's driver (see normalize.h): copies the IR's message list, applies the rules of
 * normalize_rules.h in order, and lays out the Kiro conversation: the system prompt pair, the history
 * turns (strictly alternating, ending with an assistant turn), the current user message and the tool
 * specs. Also the payload-budget rule that drops the oldest history pairs.
 */
#include <string.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/normalize_rules.h"

k2a_normalize_config_t k2a_normalize_config_default(void)
{
    k2a_normalize_config_t c;
    c.max_tool_description = K2A_NORMALIZE_DEFAULT_MAX_TOOL_DESCRIPTION;
    c.max_payload_bytes = K2A_NORMALIZE_DEFAULT_MAX_PAYLOAD_BYTES;
    c.image_history_messages = K2A_NORMALIZE_DEFAULT_IMAGE_HISTORY_MESSAGES;
    c.max_image_bytes = K2A_NORMALIZE_DEFAULT_MAX_IMAGE_BYTES;
    c.thinking_budget_default = K2A_NORMALIZE_DEFAULT_THINKING_BUDGET;
    c.thinking_budget_min = K2A_NORMALIZE_THINKING_BUDGET_MIN;
    c.thinking_budget_max = K2A_NORMALIZE_THINKING_BUDGET_MAX;
    c.tool_schema_strip = K2A_TOOL_SCHEMA_STRICT;
    c.native_effort = false;
    c.reasoning_content = false;
    return c;
}

static int nomem(k2a_convert_error_t *err)
{
    return k2a_convert_error_set(err, K2A_ENOMEM, "request too large for the conversion memory limit");
}

/* a rule's failure: keep the rule's client message, or name an internal failure */
static int rule_failed(int r, k2a_convert_error_t *err)
{
    if (r == K2A_ENOMEM)
        return nomem(err);
    if (err != NULL && err->code == 0)
        k2a_convert_error_set(err, r, "conversion failed: %s", k2a_strerror(r));
    return r;
}

int k2a_normalize_for_kiro(const k2a_ir_request_t *req, const k2a_normalize_config_t *cfg, bool thinking_forced, k2a_arena_t *arena,
                           k2a_kiro_conv_t *out, k2a_convert_error_t *err)
{
    k2a_normalize_config_t defcfg;
    if (cfg == NULL) {
        defcfg = k2a_normalize_config_default();
        cfg = &defcfg;
    }
    k2a_convert_error_clear(err);
    memset(out, 0, sizeof(*out));

    /* the working copy: its messages array belongs to the rules */
    k2a_ir_request_t w = *req;
    if (req->nmessages != 0) {
        if ((w.messages = k2a_arena_alloc(arena, req->nmessages * sizeof(*w.messages))) == NULL)
            return nomem(err);
        memcpy(w.messages, req->messages, req->nmessages * sizeof(*w.messages));
    }

    k2a_str_t system;
    int r;
    if ((r = k2a_norm_old_images(&w, cfg, arena)) != 0 || (r = k2a_norm_validate_images(&w, cfg, err)) != 0 ||
        (r = k2a_norm_fold_system(&w, arena, &system)) != 0 ||
        (r = k2a_norm_thinking_prefix(&w, cfg, thinking_forced, arena, &system, &out->thinking, &out->native_effort)) != 0 ||
        (r = k2a_norm_drop_prefill(&w, err)) != 0 || (r = k2a_norm_merge_same_role(&w, arena)) != 0 ||
        (r = k2a_norm_leading_assistant(&w, arena)) != 0 || (r = k2a_norm_dedupe_tool_results(&w, arena)) != 0 ||
        (r = k2a_norm_drop_unanswered_tool_uses(&w, arena)) != 0 || (r = k2a_norm_drop_orphan_tool_results(&w, arena)) != 0 ||
        (r = k2a_norm_tools(&w, cfg, &out->names, arena, &out->tools, &out->ntools, err)) != 0)
        return rule_failed(r, err);

    /* layout: [system pair] + messages[0 .. n-2] as history, messages[n-1] (a user message) as current */
    size_t nmsg = w.nmessages;
    out->nsystem = system.len != 0 ? 2 : 0;
    out->nhistory = out->nsystem + nmsg - 1;
    if (out->nhistory != 0 && (out->history = k2a_arena_calloc(arena, out->nhistory * sizeof(*out->history))) == NULL)
        return nomem(err);
    if (out->nsystem != 0) {
        out->history[0].content = system;
        out->history[1].assistant = true;
        out->history[1].content = K2A_STRLIT(K2A_NORM_SYSTEM_ACK);
    }
    for (size_t i = 0; i + 1 < nmsg; ++i) {
        const k2a_ir_message_t *m = &w.messages[i];
        k2a_kiro_turn_t *t = &out->history[out->nsystem + i];
        if (m->role == K2A_ROLE_ASSISTANT)
            r = k2a_norm_render_assistant(m, true, &out->names, arena, t); /* history thinking is never dropped (§7) */
        else
            r = k2a_norm_render_user(m, &out->names, arena, t);
        if (r != 0)
            return rule_failed(r, err);
        k2a_norm_fill_empty(t);
    }
    if ((r = k2a_norm_render_user(&w.messages[nmsg - 1], &out->names, arena, &out->current)) != 0)
        return rule_failed(r, err);
    k2a_norm_fill_empty(&out->current);
    if ((r = k2a_norm_stub_tools(out, arena)) != 0)
        return rule_failed(r, err);
    out->reasoning_content = cfg->reasoning_content;
    return 0;
}

size_t k2a_normalize_droppable_pairs(const k2a_kiro_conv_t *conv)
{
    size_t pairs = (conv->nhistory - conv->nsystem) / 2;
    if (pairs != 0 && conv->current.nresults != 0)
        --pairs; /* the current message answers the last assistant turn: that pair stays */
    return pairs;
}

size_t k2a_normalize_drop_oldest(k2a_kiro_conv_t *conv, size_t npairs)
{
    size_t max = k2a_normalize_droppable_pairs(conv);
    if (npairs > max)
        npairs = max;
    if (npairs == 0)
        return 0;
    size_t drop = npairs * 2, start = conv->nsystem;
    memmove(conv->history + start, conv->history + start + drop, (conv->nhistory - start - drop) * sizeof(*conv->history));
    conv->nhistory -= drop;
    if (conv->nhistory > start) {
        /* this user turn answered the last dropped assistant turn: its results go with it */
        k2a_kiro_turn_t *first = &conv->history[start];
        if (first->nresults != 0) {
            first->results = NULL;
            first->nresults = 0;
            k2a_norm_fill_empty(first);
        }
    }
    k2a_debug("normalize: payload budget: dropped the %zu oldest history turns", drop);
    return drop;
}
