/*
 * Public model names → Kiro modelId (docs/kiro-protocol.md §2.7). The default is kiro2api's exact table
 * plus three family rules for current names ("claude-opus-*", "claude-sonnet-*", "claude-haiku-*", with or
 * without a date suffix). KIRO_MODEL_MAP (a JSON object, public name → Kiro modelId) is merged over the
 * default: a key ending in "*" is a family (prefix) rule, a null value removes an entry. Any accepted name
 * may carry a "-thinking" suffix, which forces thinking on. An unknown name is an error listing the valid
 * names: never a silent downgrade to some other model.
 *
 * Default family targets: sonnet → CLAUDE_SONNET_4_5_20250929_V1_0; haiku → "auto" (what kiro2api maps its
 * haiku names to); opus → CLAUDE_SONNET_4_5_20250929_V1_0 as well, because neither kiro2api's table nor the
 * IDE captures (§2.7, §2.10) show an opus modelId accepted by the default codewhisperer endpoint (the dotted
 * "claude-opus-4.5" ids were only seen on the q.* endpoint with a newer IDE fingerprint). Override with
 * KIRO_MODEL_MAP='{"claude-opus-*":"<id>"}' once an account and endpoint are known to serve opus.
 * Immutable after creation: safe to share between requests.
 */
#ifndef K2A_CONVERT_MODEL_MAP_H
#define K2A_CONVERT_MODEL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include "core/str.h"
#include "convert/convert_error.h"

typedef struct st_k2a_model_map_t k2a_model_map_t;

typedef struct st_k2a_model_resolution_t {
    k2a_str_t kiro_model_id; /* points into the map */
    k2a_str_t public_name;   /* canonical public name: the matched exact entry (points into the map) or, for a family
                                match, the requested name without "-thinking" (points into the caller's string) */
    bool thinking_forced;    /* the name ended in "-thinking" */
    bool by_family;          /* matched a family rule, not an exact entry */
} k2a_model_resolution_t;

/*
 * Creates a map: the defaults, with json (the KIRO_MODEL_MAP value; NULL or empty for none) merged over them.
 * Returns 0, or K2A_ECONFIG with err naming the bad entry (not an object, a value that is not a string/null,
 * an empty key, a "*" not at the end, a modelId with characters outside [A-Za-z0-9._:-] or over 128 bytes),
 * or K2A_ENOMEM. Free with k2a_model_map_destroy.
 */
int k2a_model_map_create(const char *json, size_t len, k2a_model_map_t **out, k2a_convert_error_t *err);
void k2a_model_map_destroy(k2a_model_map_t *m);

/*
 * Resolves a requested model name. Exact entries win over family rules; among family rules the longest prefix
 * wins; a family match needs a non-empty remainder of [A-Za-z0-9._-]. Returns 0, or K2A_EMODEL_UNKNOWN with a
 * client-safe message that lists the valid names and the family patterns.
 */
int k2a_model_map_resolve(const k2a_model_map_t *m, k2a_str_t name, k2a_model_resolution_t *out, k2a_convert_error_t *err);

/* The public names to list on /v1/models, sorted (strcmp): every exact entry and its "-thinking" variant. Each of
 * them resolves. (Family rules accept further names that cannot be enumerated.) */
size_t k2a_model_map_count(const k2a_model_map_t *m);
k2a_str_t k2a_model_map_name(const k2a_model_map_t *m, size_t i);

#endif
