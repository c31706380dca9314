/*
 * kiro-sim's whole-reply cache: a generate reply with no pacing, fault, status, replay or keep-open directive is a
 * pure function of the user text (the plan and its PRNG seed come from it) and of the default contextUsagePercentage
 * (from the body's length), so its EventStream bytes are encoded once, kept in a small direct-mapped table keyed by
 * those two, and sent in one write. The validator still runs on every request; only the encoding is saved. Replies
 * above K2A_SIM_FAST_MAX_REPLY bytes are not encoded whole (they take the frame-by-frame path, which holds one frame
 * at a time).
 */
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "sim/internal.h"

/* A slot index, not a fingerprint (the key is compared whole): eight bytes per multiply. */
static uint64_t key_hash(const char *text, size_t len, double pct)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ len, bits, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, text + i, 8);
        h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    for (; i < len; ++i)
        h = (h ^ (unsigned char)text[i]) * 0x100000001b3ULL;
    memcpy(&bits, &pct, sizeof(bits));
    h = (h ^ bits) * 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 32);
}

static void entry_clear(k2a_sim_fast_entry_t *e)
{
    free(e->text);
    free(e->bytes);
    memset(e, 0, sizeof(*e));
}

void k2a_sim_fast_dispose(k2a_sim_fast_cache_t *c)
{
    for (size_t i = 0; i < K2A_SIM_FAST_SLOTS; ++i)
        entry_clear(&c->slots[i]);
}

const k2a_sim_fast_entry_t *k2a_sim_fast_find(k2a_sim_fast_cache_t *c, const char *text, size_t len, double pct)
{
    uint64_t h = key_hash(text, len, pct);
    k2a_sim_fast_entry_t *e = &c->slots[h % K2A_SIM_FAST_SLOTS];
    if (e->bytes == NULL || e->hash != h || e->text_len != len || memcmp(&e->pct, &pct, sizeof(pct)) != 0 ||
        (len != 0 && memcmp(e->text, text, len) != 0)) {
        ++c->misses;
        return NULL;
    }
    ++c->hits;
    return e;
}

bool k2a_sim_fast_eligible(const k2a_sim_plan_t *plan)
{
    return plan->fault == K2A_SIM_FAULT_NONE && plan->status == 0 && plan->stall_ms == 0 && plan->drip_ms == 0 &&
           plan->replay_file == NULL && !plan->keepopen;
}

const k2a_sim_fast_entry_t *k2a_sim_fast_build(k2a_sim_fast_cache_t *c, const char *text, size_t len, double pct,
                                               const k2a_sim_plan_t *plan)
{
    if (!k2a_sim_fast_eligible(plan) || len > K2A_SIM_FAST_MAX_TEXT)
        return NULL;
    k2a_buf_t out = K2A_BUF_INIT(K2A_SIM_FAST_MAX_REPLY);
    k2a_sim_cursor_t cur;
    int r;
    k2a_sim_cursor_init(&cur, plan);
    while ((r = k2a_sim_next_frame(plan, &cur, &out, NULL)) == 1) {
        if (out.len > K2A_SIM_FAST_MAX_REPLY) {
            r = K2A_ETOOBIG;
            break;
        }
    }
    char *copy = r == 0 ? malloc(len + 1) : NULL;
    if (copy == NULL) {
        k2a_buf_dispose(&out);
        return NULL;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    uint64_t h = key_hash(text, len, pct);
    k2a_sim_fast_entry_t *e = &c->slots[h % K2A_SIM_FAST_SLOTS];
    entry_clear(e);
    e->hash = h;
    e->pct = pct;
    e->text = copy;
    e->text_len = len;
    e->bytes = out.base; /* the buffer's storage, taken over */
    e->len = out.len;
    e->credits = plan->have_credits ? plan->credits : K2A_SIM_DEFAULT_CREDITS;
    return e;
}
