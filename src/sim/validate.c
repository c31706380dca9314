/*
 * kiro-sim's strict request validator (see validate.h). The body is checked in this order, and the first
 * violated rule decides the answer, like a real service that stops at its first complaint:
 *   1. size above limits->max_payload                 -> 400 CONTENT_LENGTH_EXCEEDS_THRESHOLD (2025 mode)
 *                                                      -> 400 Improperly formed request. (2026 mode, "payload_too_large")
 *   2. JSON nesting deeper than 128, malformed JSON    -> 400 Improperly formed request.
 *   2026 mode only (kiro-protocol-2026 §13 rules 2-4), against the caller:
 *      no root profileArn (not an API key)             -> 400 {"message":"profileArn is required for this request."}
 *      profileArn not the account's: the Builder ID placeholder from an enterprise (IdC, external_idp) token
 *                                                      -> 403 {"message":"The bearer token included in the request is invalid."}
 *                                      any other ARN   -> 403 {"message":"User is not authorized to make this call.","reason":null}
 *      the ARN's region is not the host's              -> 400 Improperly formed request.
 *   3. the shape: per object, the allowed keys, their types, required keys, no nulls, no duplicate keys
 *   4. modelId not a known id (current and history)    -> 400 INVALID_MODEL_ID; 2026: also opus/gpt on a FREE account
 *   5. the conversation rules (history order, tool use/result pairing, tool specs, empty content); in the 2026 mode
 *      (kiro-protocol-2026 §13 rules 7-10) with Kiro's bodies: a tool schema root with oneOf/anyOf/allOf or a type
 *      other than "object" -> TOOL_SCHEMA_INVALID; a tool name outside [a-zA-Z0-9_-]{1,64} or a blank description
 *      -> "Invalid tool use format." (REQUEST_BODY_INVALID); an unanswered toolUse or an orphan toolResult
 *      -> TOOL_USE_RESULT_MISMATCH naming the ids; tool traffic with no current tools -> TOOL_CONFIG_MISSING
 *   6. 2026 mode: additionalModelRequestFields against the model's schema (rule 12) -> 400 "... is not supported for
 *      this model" / "Invalid additionalModelRequestFields"
 *   7. 2026 mode: body bytes / 4 above the model's maxInputTokens -> 400 CONTENT_LENGTH_EXCEEDS_THRESHOLD
 * Only the structural part of conversationState is checked for unknown keys and nulls: free-form JSON inside
 * toolUses[].input, inputSchema.json and toolResults[].content[].json is passed through untouched, as Kiro does.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "sim/validate.h"

#define BODY_MALFORMED "{\"message\":\"Improperly formed request.\",\"reason\":null}"
#define BODY_ARN_REQUIRED "{\"message\":\"profileArn is required for this request.\"}"
#define BODY_BEARER_INVALID_2026 "{\"message\":\"The bearer token included in the request is invalid.\"}"
#define BODY_NOT_AUTHORIZED "{\"message\":\"User is not authorized to make this call.\",\"reason\":null}"
#define BODY_TOO_LONG "{\"message\":\"Input is too long.\",\"reason\":\"CONTENT_LENGTH_EXCEEDS_THRESHOLD\"}"
/* Real body, seen in jwadow/kiro-gateway#61. */
#define BODY_BAD_MODEL                                                                                                             \
    "{\"message\":\"Invalid model. Please select a different model to continue.\",\"reason\":\"INVALID_MODEL_ID\"}"
/* The 2026 tool and model-field bodies (kiro-protocol-2026 §6, §7, §9; guessed texts: docs/kiro-compat.md, "kiro-sim tool
 * rules"). */
#define BODY_TOOL_SCHEMA                                                                                                           \
    "{\"__type\":\"ValidationException\",\"message\":\"input_schema does not support oneOf, allOf, or anyOf at the top "           \
    "level\",\"reason\":\"TOOL_SCHEMA_INVALID\"}"
#define BODY_TOOL_FORMAT "{\"message\":\"Invalid tool use format.\",\"reason\":\"REQUEST_BODY_INVALID\"}"
#define BODY_TOOL_CONFIG                                                                                                           \
    "{\"message\":\"Tool configuration is missing for the tool use in the conversation history.\",\"reason\":"                     \
    "\"TOOL_CONFIG_MISSING\"}"
#define BODY_FIELDS_UNSUPPORTED "{\"message\":\"additionalModelRequestFields is not supported for this model\"}"
#define BODY_FIELDS_INVALID "{\"message\":\"Invalid additionalModelRequestFields\"}"
#define MSG_UNANSWERED "`tool_use` ids were found without `tool_result` blocks immediately after: "
#define MSG_ORPHAN "unexpected `tool_use_id` found in `tool_result` blocks: "
#define MSG_ORPHAN_END ". Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
#define MSG_MAX_IDS 600 /* bytes of the id list in a TOOL_USE_RESULT_MISMATCH message (body: validate.h) */

/* modelIds accepted by default: the kiro2api table of docs/kiro-protocol.md §2.7 (plus the historic haiku id seen in
 * captured IDE requests) and the dotted lowercase ids that 2026 gateways send. */
static const char *const known_models[] = {
    "CLAUDE_SONNET_4_5_20250929_V1_0",
    "CLAUDE_SONNET_4_20250514_V1_0",
    "CLAUDE_3_7_SONNET_20250219_V1_0",
    "CLAUDE_3_5_HAIKU_20241022_V1_0",
    "auto",
    "claude-sonnet-4",
    "claude-sonnet-4.5",
    "claude-sonnet-4.6",
    "claude-sonnet-5",
    "claude-opus-4.5",
    "claude-opus-4.6",
    "claude-opus-4.7",
    "claude-haiku-4.5",
};

enum { T_STR = 1, T_OBJ = 2, T_ARR = 4, T_BOOL = 8, T_NUM = 16, T_ANY = 31 };

typedef struct st_field_t {
    const char *name;
    unsigned types;
    bool required;
} field_t;

typedef struct st_ctx_t {
    const k2a_sim_limits_t *limits;
    k2a_sim_validation_t *out;
    const k2a_sim_caller_t *caller;
} ctx_t;

/* snprintf(dst, size, "%s", src) without the format machinery: src cut at size - 1 bytes, always terminated. */
static void copy_cut(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

size_t k2a_sim_json_depth(const char *s, size_t n, size_t limit, bool *comment)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    size_t depth = 0, max = 0;
    bool in_str = false;
    *comment = false;
    for (size_t i = 0; i < n; ++i) {
        if (in_str) {
            uint64_t w, q, b;
            while (i + 8 <= n) {
                memcpy(&w, s + i, 8);
                q = w ^ (ones * '"');
                b = w ^ (ones * '\\');
                if ((((q - ones) & ~q) | ((b - ones) & ~b)) & highs)
                    break;
                i += 8;
            }
            if (i >= n)
                break;
            if (s[i] == '\\')
                ++i;
            else if (s[i] == '"')
                in_str = false;
            continue;
        }
        char ch = s[i];
        if (ch == '"') {
            in_str = true;
        } else if (ch == '/') {
            *comment = true;
        } else if (ch == '{' || ch == '[') {
            if (++depth > max && (max = depth) > limit)
                return max;
        } else if ((ch == '}' || ch == ']') && depth > 0) {
            --depth;
        }
    }
    return max;
}

static int reject_with(ctx_t *c, const char *body, const char *rule, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int reject_with(ctx_t *c, const char *body, const char *rule, const char *fmt, ...)
{
    va_list ap;
    c->out->status = 400;
    c->out->rule = rule;
    snprintf(c->out->body, sizeof(c->out->body), "%s", body);
    va_start(ap, fmt);
    vsnprintf(c->out->detail, sizeof(c->out->detail), fmt, ap);
    va_end(ap);
    return -1;
}

#define REJECT(c, rule, ...) reject_with((c), BODY_MALFORMED, (rule), __VA_ARGS__)
/* A tool-format rule: "Invalid tool use format." in the 2026 mode, "Improperly formed request." in the 2025 one. */
#define TOOL_REJECT(c, rule, ...) reject_with((c), (c)->limits->modern ? BODY_TOOL_FORMAT : BODY_MALFORMED, (rule), __VA_ARGS__)
/* A tool-configuration rule: TOOL_CONFIG_MISSING in the 2026 mode, "Improperly formed request." in the 2025 one. */
#define CONFIG_REJECT(c, rule, ...) reject_with((c), (c)->limits->modern ? BODY_TOOL_CONFIG : BODY_MALFORMED, (rule), __VA_ARGS__)

void k2a_sim_limits_init(k2a_sim_limits_t *limits)
{
    limits->modern = false;
    limits->max_payload = K2A_SIM_DEFAULT_MAX_PAYLOAD;
    limits->max_tool_description = K2A_SIM_DEFAULT_MAX_TOOL_DESCRIPTION;
    limits->extra_models = NULL;
    limits->nextra_models = 0;
}

/* The 2026 catalog: the dotted ids of kiro-protocol-2026 §3 with the windows of §12 (OCX's numbers where peers differ;
 * auto as KRA: 1M) and the effort schemas of §7 (4.6 models without xhigh). claude-sonnet-4 is an accepted alias that
 * ListAvailableModels does not list. */
#define EFFORT_CLAUDE "[\"low\",\"medium\",\"high\",\"xhigh\",\"max\"]"
#define EFFORT_CLAUDE_46 "[\"low\",\"medium\",\"high\",\"max\"]"
#define EFFORT_GPT "[\"none\",\"low\",\"medium\",\"high\",\"xhigh\"]"
static const k2a_sim_model_t catalog[] = {
    {"auto", "Auto", 1000000, 64000, 1.0, false, true, true, NULL, NULL},
    {"claude-sonnet-5", "Claude Sonnet 5", 1000000, 64000, 1.3, false, true, true, "output_config", EFFORT_CLAUDE},
    {"claude-opus-5", "Claude Opus 5", 1000000, 64000, 2.2, true, true, true, "output_config", EFFORT_CLAUDE},
    {"claude-opus-4.8", "Claude Opus 4.8", 1000000, 64000, 2.2, true, true, true, "output_config", EFFORT_CLAUDE},
    {"claude-opus-4.7", "Claude Opus 4.7", 1000000, 64000, 2.2, true, true, true, "output_config", EFFORT_CLAUDE},
    {"claude-opus-4.6", "Claude Opus 4.6", 1000000, 64000, 2.2, true, true, true, "output_config", EFFORT_CLAUDE_46},
    {"claude-opus-4.5", "Claude Opus 4.5", 200000, 64000, 2.2, true, true, true, NULL, NULL},
    {"claude-sonnet-4.6", "Claude Sonnet 4.6", 1000000, 64000, 1.3, false, true, true, "output_config", EFFORT_CLAUDE_46},
    {"claude-sonnet-4.5", "Claude Sonnet 4.5", 200000, 64000, 1.3, false, true, true, NULL, NULL},
    {"claude-sonnet-4.0", "Claude Sonnet 4", 200000, 64000, 1.3, false, true, true, NULL, NULL},
    {"claude-sonnet-4", "Claude Sonnet 4", 200000, 64000, 1.3, false, true, false, NULL, NULL},
    {"claude-haiku-4.5", "Claude Haiku 4.5", 200000, 64000, 0.4, false, true, true, NULL, NULL},
    {"deepseek-3.2", "DeepSeek 3.2", 128000, 32000, 0.25, false, false, true, NULL, NULL},
    {"minimax-m2.5", "MiniMax M2.5", 200000, 32000, 0.25, false, false, true, NULL, NULL},
    {"minimax-m2.1", "MiniMax M2.1", 200000, 32000, 0.15, false, false, true, NULL, NULL},
    {"glm-5", "GLM 5", 200000, 32000, 0.5, false, false, true, NULL, NULL},
    {"qwen3-coder-next", "Qwen3 Coder Next", 256000, 64000, 0.05, false, false, true, NULL, NULL},
    {"gpt-5.6-sol", "GPT-5.6 Sol", 272000, 128000, 2.0, true, true, true, "reasoning", EFFORT_GPT},
    {"gpt-5.6-terra", "GPT-5.6 Terra", 272000, 128000, 1.0, true, true, true, NULL, NULL},
    {"gpt-5.6-luna", "GPT-5.6 Luna", 272000, 128000, 0.5, true, true, true, NULL, NULL},
};

const k2a_sim_model_t *k2a_sim_catalog(size_t *n)
{
    *n = sizeof(catalog) / sizeof(catalog[0]);
    return catalog;
}

const k2a_sim_model_t *k2a_sim_catalog_find(const char *id)
{
    for (size_t i = 0; i < sizeof(catalog) / sizeof(catalog[0]); ++i)
        if (strcmp(id, catalog[i].id) == 0)
            return &catalog[i];
    return NULL;
}

int k2a_sim_model_known(const char *model_id, const k2a_sim_limits_t *limits)
{
    if (limits != NULL && limits->modern) {
        if (k2a_sim_catalog_find(model_id) != NULL)
            return 1;
    } else {
        for (size_t i = 0; i < sizeof(known_models) / sizeof(known_models[0]); ++i)
            if (strcmp(model_id, known_models[i]) == 0)
                return 1;
    }
    if (limits != NULL)
        for (size_t i = 0; i < limits->nextra_models; ++i)
            if (strcmp(model_id, limits->extra_models[i]) == 0)
                return 1;
    return 0;
}

static size_t count_code_points(const char *s)
{
    size_t n = 0;
    for (; *s != '\0'; ++s)
        if (((unsigned char)*s & 0xc0) != 0x80)
            ++n;
    return n;
}

static bool is_blank(const char *s)
{
    for (; *s != '\0'; ++s)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    return true;
}

static unsigned type_of(yajl_val v)
{
    switch (v->type) {
    case yajl_t_string:
        return T_STR;
    case yajl_t_object:
        return T_OBJ;
    case yajl_t_array:
        return T_ARR;
    case yajl_t_true:
    case yajl_t_false:
        return T_BOOL;
    case yajl_t_number:
        return T_NUM;
    default:
        return 0;
    }
}

/* Rule "unknown_field": every key of a structural object must be one of `fields` (Kiro's schema is closed: e.g.
 * cache_control, additionalModelRequestFields, a cachePoint tool entry are all rejected).
 * Rule "null_value": a listed key whose value is null (Kiro wants the key omitted, e.g. "history":null, "toolUses":null).
 * Rule "duplicate_field": the same key twice in one object.
 * Rule "wrong_type": a listed key with a value of the wrong JSON type. Rule "missing_field": a required key is absent.
 * vals[i] receives the value of fields[i] or NULL. */
static int check_object(ctx_t *c, yajl_val obj, const char *path, const field_t *fields, size_t nfields, yajl_val *vals)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return REJECT(c, "wrong_type", "%s must be an object", path);
    for (size_t i = 0; i < nfields; ++i)
        vals[i] = NULL;
    for (size_t k = 0; k < obj->u.object.len; ++k) {
        const char *key = obj->u.object.keys[k];
        yajl_val v = obj->u.object.values[k];
        size_t i;
        for (i = 0; i < nfields; ++i)
            if (strcmp(key, fields[i].name) == 0)
                break;
        if (i == nfields)
            return REJECT(c, "unknown_field", "%s has an unknown field \"%s\"", path, key);
        if (vals[i] != NULL)
            return REJECT(c, "duplicate_field", "%s has the field \"%s\" twice", path, key);
        if (YAJL_IS_NULL(v))
            return REJECT(c, "null_value", "%s.%s is null (omit the field instead)", path, key);
        if ((type_of(v) & fields[i].types) == 0)
            return REJECT(c, "wrong_type", "%s.%s has the wrong JSON type", path, key);
        vals[i] = v;
    }
    for (size_t i = 0; i < nfields; ++i)
        if (fields[i].required && vals[i] == NULL)
            return REJECT(c, "missing_field", "%s.%s is required", path, fields[i].name);
    return 0;
}

static int check_model(ctx_t *c, yajl_val model, const char *path)
{
    /* Rule "model_unknown": a modelId outside the known set (2025: §2.7 + dotted ids; 2026: the catalog; both: --model
     * flags) -> INVALID_MODEL_ID. */
    if (model != NULL && !k2a_sim_model_known(model->u.string, c->limits))
        return reject_with(c, BODY_BAD_MODEL, "model_unknown", "%s.modelId \"%.64s\" is not a known model", path, model->u.string);
    /* Rule "model_tier" (2026): opus and gpt on a FREE account -> INVALID_MODEL_ID (kiro-protocol-2026 §3). */
    const k2a_sim_model_t *m;
    if (model != NULL && c->limits->modern && c->caller != NULL && c->caller->free_tier &&
        (m = k2a_sim_catalog_find(model->u.string)) != NULL && m->premium)
        return reject_with(c, BODY_BAD_MODEL, "model_tier", "%s.modelId \"%.64s\" is not in the FREE tier", path, model->u.string);
    return 0;
}

static const char *object_str(yajl_val obj, const char *key)
{
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return YAJL_GET_STRING(obj->u.object.values[i]);
    return NULL;
}

static int check_images(ctx_t *c, yajl_val images, const char *path)
{
    static const field_t image_fields[] = {{"format", T_STR, true}, {"source", T_OBJ, true}};
    static const field_t source_fields[] = {{"bytes", T_STR, true}};
    static const char *const formats[] = {"png", "jpeg", "gif", "webp"};
    yajl_val iv[2], sv[1];
    for (size_t i = 0; i < images->u.array.len; ++i) {
        if (check_object(c, images->u.array.values[i], path, image_fields, 2, iv) != 0 ||
            check_object(c, iv[1], path, source_fields, 1, sv) != 0)
            return -1;
        size_t f;
        for (f = 0; f < sizeof(formats) / sizeof(formats[0]); ++f)
            if (strcmp(iv[0]->u.string, formats[f]) == 0)
                break;
        /* Rule "bad_enum": image format outside AWS's ImageFormat enum (png, jpeg, gif, webp). */
        if (f == sizeof(formats) / sizeof(formats[0]))
            return REJECT(c, "bad_enum", "%s[%zu].format \"%.32s\" is not png/jpeg/gif/webp", path, i, iv[0]->u.string);
        /* Rule "empty_image": an image without bytes. */
        if (sv[0]->u.string[0] == '\0')
            return REJECT(c, "empty_image", "%s[%zu].source.bytes is empty", path, i);
    }
    return 0;
}

/* The toolResults array of one user message. */
static int check_tool_results(ctx_t *c, yajl_val results, const char *path)
{
    static const field_t result_fields[] = {
        {"toolUseId", T_STR, true}, {"content", T_ARR, true}, {"status", T_STR, false}, {"isError", T_BOOL, false}};
    static const field_t content_fields[] = {{"text", T_STR, false}, {"json", T_ANY, false}};
    yajl_val rv[4], cv[2];
    for (size_t i = 0; i < results->u.array.len; ++i) {
        if (check_object(c, results->u.array.values[i], path, result_fields, 4, rv) != 0)
            return -1;
        if (rv[2] != NULL && strcmp(rv[2]->u.string, "success") != 0 && strcmp(rv[2]->u.string, "error") != 0)
            return REJECT(c, "bad_enum", "%s[%zu].status must be \"success\" or \"error\"", path, i);
        /* A content item is {"text": string} or {"json": value}: kiro2api's pass-through of {"type":"text",...} is rejected
         * as an unknown field. */
        for (size_t j = 0; j < rv[1]->u.array.len; ++j) {
            if (check_object(c, rv[1]->u.array.values[j], path, content_fields, 2, cv) != 0)
                return -1;
            if ((cv[0] == NULL) == (cv[1] == NULL))
                return REJECT(c, "wrong_type", "%s[%zu].content[%zu] must hold exactly one of text/json", path, i, j);
        }
        /* Rule "tool_result_duplicate": two results with the same toolUseId in one message. */
        for (size_t k = 0; k < i; ++k) {
            const char *prev_id = object_str(results->u.array.values[k], "toolUseId");
            if (prev_id != NULL && strcmp(prev_id, rv[0]->u.string) == 0)
                return REJECT(c, "tool_result_duplicate", "%s has toolUseId \"%.64s\" twice", path, prev_id);
        }
    }
    return 0;
}

#define NAME_CHARSET "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-"

static int check_schema_root(ctx_t *c, yajl_val schema, const char *path, size_t i)
{
    static const char *const combinators[] = {"oneOf", "anyOf", "allOf"};
    yajl_val type = NULL;
    for (size_t k = 0; k < schema->u.object.len; ++k) {
        const char *key = schema->u.object.keys[k];
        for (size_t j = 0; j < sizeof(combinators) / sizeof(combinators[0]); ++j)
            if (strcmp(key, combinators[j]) == 0)
                return reject_with(c, BODY_TOOL_SCHEMA, "tool_schema_root", "%s[%zu].inputSchema.json has a root %s", path, i, key);
        if (strcmp(key, "type") == 0)
            type = schema->u.object.values[k];
    }
    if (type == NULL || !YAJL_IS_STRING(type) || strcmp(type->u.string, "object") != 0)
        return reject_with(c, BODY_TOOL_SCHEMA, "tool_schema_root", "%s[%zu].inputSchema.json root type is not \"object\"", path,
                           i);
    return 0;
}

static int check_tools(ctx_t *c, yajl_val tools, const char *path)
{
    static const field_t tool_fields[] = {{"toolSpecification", T_OBJ, true}};
    static const field_t spec_fields[] = {{"name", T_STR, true}, {"description", T_STR, true}, {"inputSchema", T_OBJ, true}};
    static const field_t schema_fields[] = {{"json", T_OBJ, true}};
    yajl_val tv[1], sv[3], jv[1];
    for (size_t i = 0; i < tools->u.array.len; ++i) {
        if (check_object(c, tools->u.array.values[i], path, tool_fields, 1, tv) != 0 ||
            check_object(c, tv[0], path, spec_fields, 3, sv) != 0 || check_object(c, sv[2], path, schema_fields, 1, jv) != 0)
            return -1;
        const char *name = sv[0]->u.string;
        size_t namelen = strlen(name);
        /* Rule "empty_tool_name" (2026: "Invalid tool use format."). */
        if (namelen == 0)
            return TOOL_REJECT(c, "empty_tool_name", "%s[%zu] has an empty name", path, i);
        /* Rule "tool_name_too_long": Kiro rejects names over 64 characters (AIClient, kiro.rs shorten them). */
        if (count_code_points(name) > K2A_SIM_MAX_TOOL_NAME)
            return TOOL_REJECT(c, "tool_name_too_long", "%s[%zu].name is longer than %d characters", path, i,
                               K2A_SIM_MAX_TOOL_NAME);
        /* Rule "tool_name_charset" (2026): a name outside ^[a-zA-Z0-9_-]{1,64}$ (kiro-protocol-2026 §6, OCX kiro-wire.ts). */
        if (c->limits->modern && strspn(name, NAME_CHARSET) != namelen)
            return TOOL_REJECT(c, "tool_name_charset", "%s[%zu].name \"%.64s\" is outside [a-zA-Z0-9_-]", path, i, name);
        /* Rule "tool_description_empty" (2026): an empty or blank description (XW measured 400 without one, 200 with). */
        if (c->limits->modern && is_blank(sv[1]->u.string))
            return TOOL_REJECT(c, "tool_description_empty", "%s[%zu] \"%.64s\" has an empty description", path, i, name);
        /* Rule "tool_schema_root" (2026): a root oneOf/anyOf/allOf, or a root type other than "object" (kiro-protocol-2026
         * §6: KRA forces the root to {"type":"object"}). */
        if (c->limits->modern && check_schema_root(c, jv[0], path, i) != 0)
            return -1;
        /* Rule "server_tool": Anthropic's web search server tool forwarded as a plain tool (named web_search or
         * websearch), which Kiro's generate call does not serve (peers.md §2.1). A client tool whose name merely ends
         * in "_YYYYMMDD" (lookup_20250101) is an ordinary tool: Kiro's only documented name rule is the charset
         * [a-zA-Z0-9_-]{1,64} (kiro-protocol-2026.md §6), and server tools are told apart by their Anthropic `type`,
         * which never reaches Kiro (docs/kiro-compat.md, "Client tools named like server tools"). */
        if (strcmp(name, "web_search") == 0 || strcmp(name, "websearch") == 0)
            return REJECT(c, "server_tool", "%s[%zu] is the server tool \"%.64s\"", path, i, name);
        /* Rule "tool_description_too_long": more than --max-tool-description code points (default 10000). */
        if (count_code_points(sv[1]->u.string) > c->limits->max_tool_description)
            return REJECT(c, "tool_description_too_long", "%s[%zu].description is longer than %zu characters", path, i,
                          c->limits->max_tool_description);
    }
    return 0;
}

/* A userInputMessage (current or history). ctxv receives userInputMessageContext's {tools, toolResults}. */
static int check_user(ctx_t *c, yajl_val msg, const char *path, bool current, yajl_val *ctxv)
{
    static const field_t user_fields[] = {{"content", T_STR, true},
                                          {"modelId", T_STR, false},
                                          {"origin", T_STR, false},
                                          {"images", T_ARR, false},
                                          {"userInputMessageContext", T_OBJ, false}};
    static const field_t context_fields[] = {{"tools", T_ARR, false}, {"toolResults", T_ARR, false}};
    yajl_val uv[5];
    ctxv[0] = ctxv[1] = NULL;
    if (check_object(c, msg, path, user_fields, 5, uv) != 0)
        return -1;
    if (uv[4] != NULL && check_object(c, uv[4], path, context_fields, 2, ctxv) != 0)
        return -1;
    if (check_model(c, uv[1], path) != 0)
        return -1;
    if (uv[3] != NULL && check_images(c, uv[3], path) != 0)
        return -1;
    if (ctxv[0] != NULL && check_tools(c, ctxv[0], current ? "currentMessage.tools" : "history tools") != 0)
        return -1;
    if (ctxv[1] != NULL && check_tool_results(c, ctxv[1], path) != 0)
        return -1;
    /* Rule "empty_user_content": blank content with no tool results and no images. */
    bool has_results = ctxv[1] != NULL && ctxv[1]->u.array.len > 0;
    bool has_images = uv[3] != NULL && uv[3]->u.array.len > 0;
    if (is_blank(uv[0]->u.string) && !has_results && !has_images)
        return REJECT(c, "empty_user_content", "%s has empty content, no tool results and no images", path);
    return 0;
}

static bool has_tool_use_id(yajl_val items, const char *id)
{
    if (id == NULL)
        return true; /* not reached: the shape rules require every toolUseId */
    for (size_t j = 0; items != NULL && j < items->u.array.len; ++j) {
        const char *other = object_str(items->u.array.values[j], "toolUseId");
        if (other != NULL && strcmp(other, id) == 0)
            return true;
    }
    return false;
}

/* Bytes that id takes once JSON-escaped (yajl: \uXXXX for control characters, \" and \\). */
static size_t escaped_len(const char *id)
{
    size_t n = 0;
    for (; *id != '\0'; ++id)
        n += (unsigned char)*id < 0x20 ? 6 : (*id == '"' || *id == '\\') ? 2 : 1;
    return n;
}

/* A TOOL_USE_RESULT_MISMATCH answer (2026): the message is prefix, then the toolUseIds of `items` that `others` lacks
 * (", "-separated, as many as fit in MSG_MAX_IDS escaped bytes), then suffix. The body is written with yajl_gen. */
static int reject_mismatch(ctx_t *c, const char *rule, const char *prefix, const char *suffix, yajl_val items, yajl_val others,
                           const char *path)
{
    char msg[sizeof(MSG_ORPHAN) + MSG_MAX_IDS + sizeof(MSG_ORPHAN_END) + sizeof(MSG_UNANSWERED)];
    size_t len = (size_t)snprintf(msg, sizeof(msg), "%s", prefix), budget = MSG_MAX_IDS, n = 0;
    for (size_t i = 0; i < items->u.array.len; ++i) {
        const char *id = object_str(items->u.array.values[i], "toolUseId");
        if (id == NULL || has_tool_use_id(others, id))
            continue;
        size_t need = escaped_len(id) + (n > 0 ? 2 : 0);
        if (need > budget)
            break;
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s%s", n > 0 ? ", " : "", id);
        budget -= need;
        ++n;
    }
    snprintf(msg + len, sizeof(msg) - len, "%s", suffix);
    reject_with(c, BODY_MALFORMED, rule, "%s: %.200s", path, msg);
    yajl_gen g = yajl_gen_alloc(NULL);
    if (g == NULL)
        return -1; /* keeps the generic body */
    const unsigned char *out;
    size_t outlen;
    yajl_gen_map_open(g);
    yajl_gen_string(g, (const unsigned char *)"message", 7);
    yajl_gen_string(g, (const unsigned char *)msg, strlen(msg));
    yajl_gen_string(g, (const unsigned char *)"reason", 6);
    yajl_gen_string(g, (const unsigned char *)"TOOL_USE_RESULT_MISMATCH", 24);
    yajl_gen_map_close(g);
    if (yajl_gen_get_buf(g, &out, &outlen) == yajl_gen_status_ok && outlen < sizeof(c->out->body)) {
        memcpy(c->out->body, out, outlen);
        c->out->body[outlen] = '\0';
    }
    yajl_gen_free(g);
    return -1;
}

/* The pairing of one user message's toolResults with the toolUses of the assistant message right before it (NULL when
 * there is none):
 * Rule "tool_use_unanswered" (2026): a toolUse with no toolResult in the very next user message (the current message for
 * the last history assistant) -> TOOL_USE_RESULT_MISMATCH listing the ids (KRA endpoint/mod.rs).
 * Rule "tool_result_orphan": a toolResult answering no toolUse of that assistant message -> 2025 "Improperly formed
 * request.", 2026 TOOL_USE_RESULT_MISMATCH naming the ids. */
static int check_pairing(ctx_t *c, yajl_val results, yajl_val prev_tool_uses, const char *path)
{
    if (c->limits->modern) {
        for (size_t i = 0; prev_tool_uses != NULL && i < prev_tool_uses->u.array.len; ++i)
            if (!has_tool_use_id(results, object_str(prev_tool_uses->u.array.values[i], "toolUseId")))
                return reject_mismatch(c, "tool_use_unanswered", MSG_UNANSWERED, "", prev_tool_uses, results, path);
    }
    for (size_t i = 0; results != NULL && i < results->u.array.len; ++i) {
        const char *id = object_str(results->u.array.values[i], "toolUseId");
        if (has_tool_use_id(prev_tool_uses, id))
            continue;
        if (c->limits->modern)
            return reject_mismatch(c, "tool_result_orphan", MSG_ORPHAN, MSG_ORPHAN_END, results, prev_tool_uses, path);
        return REJECT(c, "tool_result_orphan", "%s: toolResult \"%.64s\" has no toolUse in the preceding assistant message", path,
                      id);
    }
    return 0;
}

/* Rule "history_tools_without_tools" (2026), the toolResults half: tool results in a user message (history or current)
 * while the current message has no tools -> TOOL_CONFIG_MISSING. */
static int check_results_need_tools(ctx_t *c, yajl_val results, size_t ntools, const char *path)
{
    if (c->limits->modern && ntools == 0 && results != NULL && results->u.array.len > 0)
        return CONFIG_REJECT(c, "history_tools_without_tools", "%s has toolResults but currentMessage has no tools", path);
    return 0;
}

/* "history[<i>]" into a 64-byte path buffer (at most 30 bytes), without the format machinery. */
static void history_path(char path[64], size_t i)
{
    char digits[24];
    size_t n = 0;
    do
        digits[n++] = (char)('0' + i % 10);
    while ((i /= 10) != 0);
    memcpy(path, "history[", 8);
    for (size_t k = 0; k < n; ++k)
        path[8 + k] = digits[n - 1 - k];
    path[8 + n] = ']';
    path[9 + n] = '\0';
}

/* True when the JSON array text `list` (a catalog effort_enum) holds the string value. */
static bool enum_has(const char *list, const char *value)
{
    char quoted[40];
    if (strlen(value) > sizeof(quoted) - 3 || strchr(value, '"') != NULL || strchr(value, '\\') != NULL)
        return false;
    snprintf(quoted, sizeof(quoted), "\"%s\"", value);
    return strstr(list, quoted) != NULL;
}

/* The root additionalModelRequestFields (2026, kiro-protocol-2026 §7), against the current model's catalog entry
 * (control.c lists it as additionalModelRequestFieldsSchema: {<effort_field>: {effort: <enum>}}):
 * Rule "model_fields_unsupported": the model has no schema (or is not in the catalog: auto, --model extras, no modelId
 * = auto) -> 400 "additionalModelRequestFields is not supported for this model".
 * Rule "model_fields_invalid": a key other than the model's effort field, a non-object value, a key other than effort
 * inside it, or an effort outside the model's enum ("xhigh" on the 4.6 models) -> 400 "Invalid
 * additionalModelRequestFields". An empty object is accepted, as the schema requires nothing. */
static int check_model_fields(ctx_t *c, yajl_val fields, yajl_val user)
{
    if (fields == NULL)
        return 0;
    const char *model = object_str(user, "modelId");
    const k2a_sim_model_t *m = k2a_sim_catalog_find(model != NULL ? model : "auto");
    if (m == NULL || m->effort_field == NULL)
        return reject_with(c, BODY_FIELDS_UNSUPPORTED, "model_fields_unsupported",
                           "additionalModelRequestFields sent to \"%.64s\", which has no schema for it", model ? model : "auto");
    for (size_t k = 0; k < fields->u.object.len; ++k) {
        yajl_val v = fields->u.object.values[k];
        if (strcmp(fields->u.object.keys[k], m->effort_field) != 0 || !YAJL_IS_OBJECT(v))
            return reject_with(c, BODY_FIELDS_INVALID, "model_fields_invalid",
                               "additionalModelRequestFields.%.32s is not the object %s of \"%s\"", fields->u.object.keys[k],
                               m->effort_field, m->id);
        for (size_t j = 0; j < v->u.object.len; ++j) {
            yajl_val e = v->u.object.values[j];
            if (strcmp(v->u.object.keys[j], "effort") != 0 || !YAJL_IS_STRING(e) || !enum_has(m->effort_enum, e->u.string))
                return reject_with(c, BODY_FIELDS_INVALID, "model_fields_invalid",
                                   "additionalModelRequestFields.%s.%.32s is not an effort of %s %s", m->effort_field,
                                   v->u.object.keys[j], m->id, m->effort_enum);
        }
    }
    return 0;
}

static void append_user_text(k2a_buf_t *text, yajl_val content, yajl_val results)
{
    if (text == NULL)
        return;
    k2a_buf_appendstr(text, content->u.string);
    for (size_t i = 0; results != NULL && i < results->u.array.len; ++i) {
        yajl_val items = NULL;
        yajl_val r = results->u.array.values[i];
        for (size_t k = 0; k < r->u.object.len; ++k)
            if (strcmp(r->u.object.keys[k], "content") == 0)
                items = r->u.object.values[k];
        for (size_t j = 0; items != NULL && j < items->u.array.len; ++j) {
            const char *t = object_str(items->u.array.values[j], "text");
            if (t != NULL) {
                k2a_buf_appendstr(text, "\n");
                k2a_buf_appendstr(text, t);
            }
        }
    }
}

static int check_conversation(ctx_t *c, yajl_val root, k2a_buf_t *user_text)
{
    static const field_t root_fields[] = {
        {"conversationState", T_OBJ, true}, {"profileArn", T_STR, false}, {"additionalModelRequestFields", T_OBJ, false}};
    static const field_t state_fields[] = {{"agentContinuationId", T_STR, false}, {"agentTaskType", T_STR, false},
                                           {"chatTriggerType", T_STR, true},      {"currentMessage", T_OBJ, true},
                                           {"conversationId", T_STR, false},      {"history", T_ARR, false}};
    static const field_t current_fields[] = {{"userInputMessage", T_OBJ, true}};
    static const field_t entry_fields[] = {{"userInputMessage", T_OBJ, false}, {"assistantResponseMessage", T_OBJ, false}};
    /* reasoningContent (2026 mode): what kiro-cli replays of a reasoningContentEvent {redactedContent} (kiro-protocol-2026.md
     * §7, [S1]); nothing else of it is documented, so the object is closed to that one string */
    static const field_t assistant_fields[] = {
        {"content", T_STR, true}, {"toolUses", T_ARR, false}, {"reasoningContent", T_OBJ, false}};
    static const field_t reasoning_fields[] = {{"redactedContent", T_STR, true}};
    static const field_t use_fields[] = {{"toolUseId", T_STR, true}, {"name", T_STR, true}, {"input", T_OBJ, true}};
    yajl_val rv[3], sv[6], cv[1], ev[2], av[3], uv[3], cur_ctx[2], hctx[2], rcv[1];
    char path[64];

    /* additionalModelRequestFields is a known root key in the 2026 mode only */
    if (check_object(c, root, "body", root_fields, c->limits->modern ? 3 : 2, rv) != 0 ||
        check_object(c, rv[0], "conversationState", state_fields, 6, sv) != 0 ||
        check_object(c, sv[3], "conversationState.currentMessage", current_fields, 1, cv) != 0)
        return -1;
    /* Rule "bad_enum": chatTriggerType outside MANUAL/AUTO/INLINE_CHAT. */
    if (strcmp(sv[2]->u.string, "MANUAL") != 0 && strcmp(sv[2]->u.string, "AUTO") != 0 &&
        strcmp(sv[2]->u.string, "INLINE_CHAT") != 0)
        return REJECT(c, "bad_enum", "conversationState.chatTriggerType \"%.32s\" is not MANUAL/AUTO/INLINE_CHAT", sv[2]->u.string);
    if (check_user(c, cv[0], "currentMessage.userInputMessage", true, cur_ctx) != 0)
        return -1;
    yajl_val tools = cur_ctx[0];
    size_t ntools = tools != NULL ? tools->u.array.len : 0;

    yajl_val history = sv[5];
    size_t nhist = history != NULL ? history->u.array.len : 0;
    yajl_val prev_tool_uses = NULL; /* toolUses of the last assistant entry seen */
    for (size_t i = 0; i < nhist; ++i) {
        history_path(path, i);
        if (check_object(c, history->u.array.values[i], path, entry_fields, 2, ev) != 0)
            return -1;
        /* Rule "history_entry": each entry holds exactly one of userInputMessage / assistantResponseMessage. */
        if ((ev[0] == NULL) == (ev[1] == NULL))
            return REJECT(c, "history_entry", "%s must hold exactly one of userInputMessage/assistantResponseMessage", path);
        /* Rule "history_alternation": history is user, assistant, user, assistant... (kiro.rs #79: two assistants in a row
         * -> 400). */
        bool want_user = i % 2 == 0;
        if (want_user != (ev[0] != NULL))
            return REJECT(c, "history_alternation", "%s: history must alternate user/assistant starting with user", path);
        if (ev[0] != NULL) {
            if (check_user(c, ev[0], path, false, hctx) != 0 || check_results_need_tools(c, hctx[1], ntools, path) != 0 ||
                check_pairing(c, hctx[1], prev_tool_uses, path) != 0)
                return -1;
            continue;
        }
        if (check_object(c, ev[1], path, assistant_fields, c->limits->modern ? 3 : 2, av) != 0)
            return -1;
        if (c->limits->modern && av[2] != NULL) {
            char rpath[96];
            snprintf(rpath, sizeof(rpath), "%s.reasoningContent", path);
            if (check_object(c, av[2], rpath, reasoning_fields, 1, rcv) != 0)
                return -1;
        }
        prev_tool_uses = av[1];
        size_t nuses = av[1] != NULL ? av[1]->u.array.len : 0;
        /* Rule "empty_assistant_message": blank content and no toolUses (empty content is accepted next to toolUses,
         * as in the real IDE capture of docs/kiro-protocol.md §2.10). */
        if (is_blank(av[0]->u.string) && nuses == 0)
            return REJECT(c, "empty_assistant_message", "%s: assistant message with empty content and no toolUses", path);
        for (size_t j = 0; j < nuses; ++j) {
            if (check_object(c, av[1]->u.array.values[j], path, use_fields, 3, uv) != 0)
                return -1;
            /* Rule "history_tools_without_tools": toolUses in history while the current message has no tools
             * (CLIProxyAPIPlus #73; 2026: TOOL_CONFIG_MISSING, XW pool.rs). */
            if (ntools == 0)
                return CONFIG_REJECT(c, "history_tools_without_tools", "%s has toolUses but currentMessage has no tools", path);
            /* Rule "history_tool_unknown": a history toolUse names a tool absent from the current tools
             * (case-insensitive, as kiro.rs learned). */
            bool found = false;
            for (size_t t = 0; t < ntools && !found; ++t) {
                yajl_val spec = tools->u.array.values[t]->u.object.values[0];
                const char *tname = object_str(spec, "name");
                found = tname != NULL && strcasecmp(tname, uv[1]->u.string) == 0;
            }
            if (!found)
                return REJECT(c, "history_tool_unknown", "%s uses tool \"%.64s\" that is not in currentMessage tools", path,
                              uv[1]->u.string);
            /* Rule "duplicate_tool_use": the same toolUseId twice in one assistant message. */
            for (size_t k = 0; k < j; ++k)
                if (strcmp(object_str(av[1]->u.array.values[k], "toolUseId"), uv[0]->u.string) == 0)
                    return REJECT(c, "duplicate_tool_use", "%s has toolUseId \"%.64s\" twice", path, uv[0]->u.string);
        }
    }
    /* Rule "history_ends_with_user": a non-empty history must end with an assistant message. */
    if (nhist % 2 != 0)
        return REJECT(c, "history_ends_with_user", "history must end with an assistantResponseMessage");
    if (check_results_need_tools(c, cur_ctx[1], ntools, "currentMessage") != 0 ||
        check_pairing(c, cur_ctx[1], nhist > 0 ? prev_tool_uses : NULL, "currentMessage") != 0)
        return -1;
    if (c->limits->modern && check_model_fields(c, rv[2], cv[0]) != 0)
        return -1;

    yajl_val content = NULL;
    for (size_t k = 0; k < cv[0]->u.object.len; ++k)
        if (strcmp(cv[0]->u.object.keys[k], "content") == 0)
            content = cv[0]->u.object.values[k];
    append_user_text(user_text, content, cur_ctx[1]);
    return 0;
}

/* The profileArn rules of the 2026 mode (kiro-protocol-2026 §13 rules 2-4), checked right after the JSON parse. */
static int check_profile_arn(ctx_t *c, yajl_val root)
{
    const k2a_sim_caller_t *caller = c->caller;
    yajl_val arn = NULL;
    if (!YAJL_IS_OBJECT(root))
        return REJECT(c, "wrong_type", "body must be an object");
    for (size_t k = 0; k < root->u.object.len; ++k)
        if (strcmp(root->u.object.keys[k], "profileArn") == 0)
            arn = root->u.object.values[k];
    if (caller == NULL || caller->account_arn == NULL)
        return 0; /* an API key: no profileArn needed (one sent is checked by the shape rules only) */
    /* Rule "profile_arn_required": no root profileArn (a null counts as none). */
    if (arn == NULL || YAJL_IS_NULL(arn))
        return reject_with(c, BODY_ARN_REQUIRED, "profile_arn_required", "body has no profileArn");
    if (!YAJL_IS_STRING(arn))
        return REJECT(c, "wrong_type", "body.profileArn has the wrong JSON type");
    const char *s = arn->u.string;
    if (strcmp(s, caller->account_arn) != 0) {
        /* Rule "profile_arn_placeholder": an enterprise token sending the Builder ID placeholder (KRA 0.6.0). */
        if (caller->enterprise && strcmp(s, K2A_SIM_ARN_BUILDERID) == 0) {
            reject_with(c, BODY_BEARER_INVALID_2026, "profile_arn_placeholder", "enterprise token with the Builder ID placeholder");
            c->out->status = 403;
            return -1;
        }
        /* Rule "profile_arn_foreign": any other ARN that is not the account's. */
        reject_with(c, BODY_NOT_AUTHORIZED, "profile_arn_foreign", "profileArn \"%.100s\" is not the account's", s);
        c->out->status = 403;
        return -1;
    }
    /* Rule "profile_arn_region": arn:aws:codewhisperer:<region>:... names another region than the host's. */
    const char *region = strchr(s, ':');
    for (int i = 0; i < 2 && region != NULL; ++i)
        region = strchr(region + 1, ':');
    const char *end = region != NULL ? strchr(region + 1, ':') : NULL;
    const char *host = caller->host_region != NULL ? caller->host_region : K2A_SIM_REGION_US;
    if (end == NULL || (size_t)(end - region - 1) != strlen(host) || strncmp(region + 1, host, strlen(host)) != 0)
        return REJECT(c, "profile_arn_region", "profileArn region is not the host region %s", host);
    return 0;
}

/* Rule "input_too_long" (2026): the token estimate, body bytes / 4, above the current model's maxInputTokens. */
static int check_input_tokens(ctx_t *c, yajl_val root, size_t len)
{
    static const char *model_path[] = {"conversationState", "currentMessage", "userInputMessage", "modelId", NULL};
    yajl_val mv = yajl_tree_get(root, model_path, yajl_t_string);
    const k2a_sim_model_t *m = k2a_sim_catalog_find(mv != NULL ? mv->u.string : "auto");
    size_t window = m != NULL ? m->max_input : 200000; /* --model extras: 200k */
    size_t tokens = len / K2A_SIM_BYTES_PER_TOKEN;
    if (tokens > window)
        return reject_with(c, BODY_TOO_LONG, "input_too_long", "about %zu input tokens, above the %zu-token window", tokens,
                           window);
    return 0;
}

/* Copies the modelId and profileArn a body names into out (for /sim/stats last_request), whatever the verdict. */
static void note_request(k2a_sim_validation_t *out, yajl_val root)
{
    static const char *model_path[] = {"conversationState", "currentMessage", "userInputMessage", "modelId", NULL};
    static const char *arn_path[] = {"profileArn", NULL};
    yajl_val mv = yajl_tree_get(root, model_path, yajl_t_string), av = yajl_tree_get(root, arn_path, yajl_t_string);
    if (mv != NULL)
        copy_cut(out->model_id, sizeof(out->model_id), mv->u.string);
    if (av != NULL)
        copy_cut(out->profile_arn, sizeof(out->profile_arn), av->u.string);
}

/* The rules on the parsed body, in order; the user text is kept only when they all pass. */
static void check_root(ctx_t *c, yajl_val root, size_t len, k2a_buf_t *user_text)
{
    note_request(c->out, root);
    size_t text_mark = user_text != NULL ? user_text->len : 0;
    if ((c->limits->modern && check_profile_arn(c, root) != 0) || check_conversation(c, root, user_text) != 0 ||
        (c->limits->modern && check_input_tokens(c, root, len) != 0)) {
        if (user_text != NULL)
            user_text->len = text_mark;
    }
}

int k2a_sim_validate_request_ex(const char *json, size_t len, const k2a_sim_limits_t *limits, k2a_sim_validation_t *out,
                                k2a_buf_t *user_text)
{
    return k2a_sim_validate_request_caller(json, len, limits, NULL, out, user_text);
}

int k2a_sim_validate_request_caller(const char *json, size_t len, const k2a_sim_limits_t *limits, const k2a_sim_caller_t *caller,
                                    k2a_sim_validation_t *out, k2a_buf_t *user_text)
{
    k2a_sim_limits_t defaults;
    if (limits == NULL) {
        k2a_sim_limits_init(&defaults);
        limits = &defaults;
    }
    ctx_t c = {limits, out, caller};
    out->status = 200;
    out->rule = "";
    out->body[0] = '\0';
    out->detail[0] = '\0';
    out->model_id[0] = '\0';
    out->profile_arn[0] = '\0';

    /* Rule "payload_too_large": the whole body above --max-payload bytes (KGW: ~615 KB gives a 400): 2025 mode
     * CONTENT_LENGTH_EXCEEDS_THRESHOLD, 2026 mode "Improperly formed request." (kiro-protocol-2026 §9). */
    if (len > limits->max_payload)
        return reject_with(&c, limits->modern ? BODY_MALFORMED : BODY_TOO_LONG, "payload_too_large",
                           "body of %zu bytes is above the %zu-byte limit", len, limits->max_payload),
               out->status;
    /* A plain body (no NUL, no comment, nested at most 128 deep, integers only) is parsed into the arena tree; it is
     * the tree yajl_tree_parse would give, and none of the rules below would have stopped it. Anything else takes the
     * rules below and yajl_tree_parse, which answer it as they always did. */
    static __thread k2a_sim_jtree_t arena;
    yajl_val root = memchr(json, '\0', len) == NULL ? k2a_sim_jtree_parse(&arena, json, len, K2A_SIM_MAX_JSON_DEPTH) : NULL;
    if (root != NULL) {
        check_root(&c, root, len, user_text);
        k2a_sim_jtree_reset(&arena);
        return out->status;
    }
    k2a_sim_jtree_reset(&arena);
    /* Rule "json_depth": nesting deeper than 128 levels (also keeps yajl_tree_free's recursion bounded). */
    bool comment; /* a '/' outside strings (a comment, which yajl_tree would accept) is never valid JSON */
    size_t depth = k2a_sim_json_depth(json, len, K2A_SIM_MAX_JSON_DEPTH, &comment);
    if (comment)
        return REJECT(&c, "json_syntax", "a comment or '/' outside a string"), out->status;
    if (depth > K2A_SIM_MAX_JSON_DEPTH)
        return REJECT(&c, "json_depth", "JSON nested deeper than %d levels", K2A_SIM_MAX_JSON_DEPTH), out->status;
    /* Rule "json_syntax": not one valid JSON document (yajl also rejects invalid UTF-8 and embedded NULs). */
    if (memchr(json, '\0', len) != NULL)
        return REJECT(&c, "json_syntax", "body contains a NUL byte"), out->status;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return REJECT(&c, "json_syntax", "out of memory"), out->status;
    memcpy(copy, json, len);
    copy[len] = '\0';
    char err[128];
    root = yajl_tree_parse(copy, err, sizeof(err));
    free(copy);
    if (root == NULL) {
        for (char *p = err; *p != '\0'; ++p)
            if (*p == '\n')
                *p = ' ';
        return REJECT(&c, "json_syntax", "malformed JSON: %.100s", err), out->status;
    }
    check_root(&c, root, len, user_text);
    yajl_tree_free(root);
    return out->status;
}

int k2a_sim_validate_request(const char *json, size_t len, k2a_sim_validation_t *out)
{
    return k2a_sim_validate_request_ex(json, len, NULL, out, NULL);
}
