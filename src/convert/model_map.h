/*
 * Public model names → Kiro modelId (docs/kiro-compat.md "Model IDs"). Kiro takes dotted lowercase IDs
 * ("claude-opus-4.5", "claude-sonnet-4.6", "claude-haiku-4.5", "auto", "deepseek-3.2", ...) and every account
 * has its own catalog (pool/catalog.h), so names are mapped by rule, not by a list:
 *  - trailing "[...]" suffixes (Claude Code's "[1m]"), "-thinking" (which forces thinking on) and "-YYYYMMDD"
 *    dates are stripped, in any order;
 *  - "claude-<family>-<major>-<minor>" becomes "claude-<family>-<major>.<minor>", a ".0" minor is dropped
 *    ("claude-sonnet-4-0" and "claude-sonnet-4.0" → "claude-sonnet-4");
 *  - the old order "claude-3-7-sonnet" / "claude-3.7-sonnet" becomes "claude-sonnet-3.7";
 *  - dotted and non-Claude IDs pass through unchanged.
 * A name never maps to another model family or version. KIRO_MODEL_MAP (a JSON object, public name → Kiro
 * modelId) overrides the rule: a key ending in "*" is a family (prefix) rule, a null value refuses the name.
 * A name of more than K2A_MODEL_ID_MAX bytes, or with spaces, control characters, quotes or backslashes, is
 * K2A_EMODEL_INVALID (a 400 in the client's dialect).
 * Immutable after creation: safe to share between requests and threads.
 */
#ifndef K2A_CONVERT_MODEL_MAP_H
#define K2A_CONVERT_MODEL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/str.h"
#include "convert/convert_error.h"

#define K2A_MODEL_ID_MAX 128

typedef struct st_k2a_model_map_t k2a_model_map_t;

typedef struct st_k2a_model_resolution_t {
    k2a_str_t kiro_model_id; /* points into id_buf or into the map: copy it before this struct goes away */
    k2a_str_t public_name;   /* canonical public name: a matched exact entry (points into the map) or the requested name
                                without "-thinking" (points into the caller's string) */
    bool thinking_forced;    /* the name ended in "-thinking" (possibly before a date or bracket suffix) */
    bool by_family;          /* matched a KIRO_MODEL_MAP family rule */
    bool by_rule;            /* derived by the naming rule (no KIRO_MODEL_MAP entry) */
    char id_buf[K2A_MODEL_ID_MAX + 1];
} k2a_model_resolution_t;

/*
 * Creates a map with json (the KIRO_MODEL_MAP value; NULL or empty for none) as its overrides.
 * Returns 0, or K2A_ECONFIG with err naming the bad entry (not an object, a value that is not a string/null,
 * an empty key, a "*" not at the end, a modelId with characters outside [A-Za-z0-9._:-] or over 128 bytes),
 * or K2A_ENOMEM. Free with k2a_model_map_destroy.
 */
int k2a_model_map_create(const char *json, size_t len, k2a_model_map_t **out, k2a_convert_error_t *err);
void k2a_model_map_destroy(k2a_model_map_t *m);

/*
 * Resolves a requested model name: KIRO_MODEL_MAP exact entries first (the name, then the name without "-thinking"), then
 * its family rules (longest prefix; the remainder must be non-empty [A-Za-z0-9._-]), then the rule. Returns 0,
 * K2A_EMODEL_INVALID (bad name) or K2A_EMODEL_UNKNOWN (refused by a null entry), with a client-safe message.
 */
int k2a_model_map_resolve(const k2a_model_map_t *m, k2a_str_t name, k2a_model_resolution_t *out, k2a_convert_error_t *err);

/* The rule alone: writes the Kiro modelId of name into out (outsz > K2A_MODEL_ID_MAX) and whether a "-thinking" suffix
 * was stripped. Returns 0 or K2A_EMODEL_INVALID. */
int k2a_model_normalize(k2a_str_t name, char *out, size_t outsz, bool *thinking);

/* True when two Kiro modelIds name the same model: equal, or equal but for a ".0" minor ("claude-sonnet-4" and
 * "claude-sonnet-4.0", see docs/kiro-compat.md). */
bool k2a_model_id_same(const char *a, size_t alen, const char *b, size_t blen);

/* The Anthropic-style name of a dotted Claude modelId ("claude-opus-4.5" → "claude-opus-4-5", "claude-sonnet-3.7" →
 * "claude-3-7-sonnet"). Returns true when it differs from id (written to out), false otherwise. */
bool k2a_model_anthropic_alias(const char *id, char *out, size_t outsz);
/* A display name for a modelId without a catalog name ("claude-opus-4.5" → "Claude Opus 4.5"; others: the id). */
void k2a_model_display_name(const char *id, char *out, size_t outsz);
/* The built-in context window of a modelId, used until an account's catalog gives tokenLimits.maxInputTokens
 * (kiro-protocol-2026 §12): 1 000 000 for Claude opus/sonnet 4.6 and later, the 5-series and fable; 200 000 for the
 * other Claude models and unknown IDs; the peers' smaller figure for the known non-Claude models. */
int64_t k2a_model_default_window(const char *id, size_t len);
/* The built-in list of current Kiro modelIds (/v1/models before any catalog is known), NULL-terminated. */
extern const char *const k2a_model_builtin_ids[];

/* The exact KIRO_MODEL_MAP names to list on /v1/models, sorted (strcmp), with their "-thinking" variants. */
size_t k2a_model_map_count(const k2a_model_map_t *m);
k2a_str_t k2a_model_map_name(const k2a_model_map_t *m, size_t i);

#endif
