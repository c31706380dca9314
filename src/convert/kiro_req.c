/*
 * Kiro request encoder and builder (see kiro_req.h). The body is generated with yajl_gen whose print
 * callback appends to the caller's bounded k2a_buf, in the field order of kiro-protocol.md §2.2, with the
 * [REC] rules: empty/null fields omitted (history, toolUses, toolResults, tools, history images), except
 * `images: []` on the current message (what both kiro2api and the real IDE send), chatTriggerType always
 * MANUAL. Pre-serialised JSON (tool inputs, schemas) and validated base64 are copied in verbatim: the
 * generator is advanced past the value with an empty number, then the bytes are appended directly.
 */
#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <yajl/yajl_gen.h>
#include "core/errors.h"
#include "core/log.h"
#include "convert/kiro_req.h"

#define MAX_ID_HEADER 256

typedef struct st_enc_t {
    yajl_gen g;
    k2a_buf_t *out;
    int err;
    bool gen_failed;
} enc_t;

static void on_print(void *ctx, const char *s, size_t len)
{
    enc_t *e = ctx;
    if (e->err == 0)
        e->err = k2a_buf_append(e->out, s, len);
}

static void check(enc_t *e, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok)
        e->gen_failed = true;
}

static void gstr(enc_t *e, k2a_str_t s)
{
    check(e, yajl_gen_string(e->g, (const unsigned char *)(s.base != NULL ? s.base : ""), s.len));
}

#define GLIT(e, lit) check((e), yajl_gen_string((e)->g, (const unsigned char *)(lit), sizeof(lit) - 1))
#define GOPEN(e) check((e), yajl_gen_map_open((e)->g))
#define GCLOSE(e) check((e), yajl_gen_map_close((e)->g))
#define GAOPEN(e) check((e), yajl_gen_array_open((e)->g))
#define GACLOSE(e) check((e), yajl_gen_array_close((e)->g))

/* A value written verbatim (pre + s + post): valid JSON the caller vouches for. */
static void graw(enc_t *e, const char *pre, k2a_str_t s, const char *post)
{
    check(e, yajl_gen_number(e->g, "", 0)); /* prints the separator and marks the value as done */
    on_print(e, pre, strlen(pre));
    on_print(e, s.base, s.len);
    on_print(e, post, strlen(post));
}

static void encode_images(enc_t *e, const k2a_kiro_turn_t *t)
{
    GAOPEN(e);
    for (size_t i = 0; i < t->nimages; ++i) {
        const k2a_kiro_image_t *img = &t->images[i];
        GOPEN(e);
        GLIT(e, "format");
        gstr(e, img->format);
        GLIT(e, "source");
        GOPEN(e);
        GLIT(e, "bytes");
        if (img->checked)
            graw(e, "\"", img->data, "\""); /* plain base64 needs no escaping */
        else
            gstr(e, img->data);
        GCLOSE(e);
        GCLOSE(e);
    }
    GACLOSE(e);
}

static void encode_tool_results(enc_t *e, const k2a_kiro_turn_t *t)
{
    GLIT(e, "toolResults");
    GAOPEN(e);
    for (size_t i = 0; i < t->nresults; ++i) {
        const k2a_kiro_tool_result_t *r = &t->results[i];
        GOPEN(e);
        GLIT(e, "toolUseId");
        gstr(e, r->tool_use_id);
        GLIT(e, "content");
        GAOPEN(e);
        GOPEN(e);
        GLIT(e, "text");
        gstr(e, r->text);
        GCLOSE(e);
        GACLOSE(e);
        GLIT(e, "status");
        if (r->is_error) {
            GLIT(e, "error");
            GLIT(e, "isError");
            check(e, yajl_gen_bool(e->g, 1));
        } else {
            GLIT(e, "success");
        }
        GCLOSE(e);
    }
    GACLOSE(e);
}

static void encode_tools(enc_t *e, const k2a_kiro_conv_t *c)
{
    GLIT(e, "tools");
    GAOPEN(e);
    for (size_t i = 0; i < c->ntools; ++i) {
        const k2a_kiro_tool_spec_t *t = &c->tools[i];
        GOPEN(e);
        GLIT(e, "toolSpecification");
        GOPEN(e);
        GLIT(e, "name");
        gstr(e, t->name);
        GLIT(e, "description");
        gstr(e, t->description);
        GLIT(e, "inputSchema");
        GOPEN(e);
        GLIT(e, "json");
        graw(e, "", t->schema, "");
        GCLOSE(e);
        GCLOSE(e);
        GCLOSE(e);
    }
    GACLOSE(e);
}

static void encode_user(enc_t *e, const k2a_kiro_turn_t *t, const k2a_kiro_conv_t *c, const k2a_kiro_encode_ids_t *ids,
                        bool current)
{
    GLIT(e, "userInputMessage");
    GOPEN(e);
    if (current) {
        GLIT(e, "userInputMessageContext");
        GOPEN(e);
        if (t->nresults != 0)
            encode_tool_results(e, t);
        if (c->ntools != 0)
            encode_tools(e, c);
        GCLOSE(e);
    }
    GLIT(e, "content");
    gstr(e, t->content);
    GLIT(e, "modelId");
    gstr(e, ids->model_id);
    if (current || t->nimages != 0) {
        GLIT(e, "images");
        encode_images(e, t);
    }
    GLIT(e, "origin");
    GLIT(e, "AI_EDITOR");
    if (!current) {
        GLIT(e, "userInputMessageContext");
        GOPEN(e);
        if (t->nresults != 0)
            encode_tool_results(e, t);
        GCLOSE(e);
    }
    GCLOSE(e);
}

static void encode_assistant(enc_t *e, const k2a_kiro_turn_t *t)
{
    GLIT(e, "assistantResponseMessage");
    GOPEN(e);
    GLIT(e, "content");
    gstr(e, t->content);
    if (t->nuses != 0) {
        GLIT(e, "toolUses");
        GAOPEN(e);
        for (size_t i = 0; i < t->nuses; ++i) {
            const k2a_kiro_tool_use_t *u = &t->uses[i];
            GOPEN(e);
            GLIT(e, "toolUseId");
            gstr(e, u->id);
            GLIT(e, "name");
            gstr(e, u->name);
            GLIT(e, "input");
            graw(e, "", u->input, "");
            GCLOSE(e);
        }
        GACLOSE(e);
    }
    GCLOSE(e);
}

int k2a_kiro_encode(const k2a_kiro_conv_t *conv, const k2a_kiro_encode_ids_t *ids, k2a_buf_t *out, size_t *history_spans)
{
    enc_t e;
    memset(&e, 0, sizeof(e));
    e.out = out;
    if ((e.g = yajl_gen_alloc(NULL)) == NULL)
        return K2A_ENOMEM;
    yajl_gen_config(e.g, yajl_gen_print_callback, on_print, &e);

    GOPEN(&e);
    GLIT(&e, "conversationState");
    GOPEN(&e);
    GLIT(&e, "agentContinuationId");
    gstr(&e, ids->agent_continuation_id);
    GLIT(&e, "agentTaskType");
    GLIT(&e, "vibe");
    GLIT(&e, "chatTriggerType");
    GLIT(&e, "MANUAL");
    GLIT(&e, "currentMessage");
    GOPEN(&e);
    encode_user(&e, &conv->current, conv, ids, true);
    GCLOSE(&e);
    GLIT(&e, "conversationId");
    gstr(&e, ids->conversation_id);
    if (conv->nhistory != 0) {
        GLIT(&e, "history");
        GAOPEN(&e);
        for (size_t i = 0; i < conv->nhistory; ++i) {
            if (history_spans != NULL)
                history_spans[i] = out->len;
            const k2a_kiro_turn_t *t = &conv->history[i];
            GOPEN(&e);
            if (t->assistant)
                encode_assistant(&e, t);
            else
                encode_user(&e, t, conv, ids, false);
            GCLOSE(&e);
        }
        if (history_spans != NULL)
            history_spans[conv->nhistory] = out->len;
        GACLOSE(&e);
    }
    GCLOSE(&e);
    if (ids->profile_arn.len != 0) {
        GLIT(&e, "profileArn");
        gstr(&e, ids->profile_arn);
    }
    GCLOSE(&e);
    yajl_gen_free(e.g);
    if (e.err != 0)
        return e.err;
    return e.gen_failed ? K2A_EINTERNAL : 0;
}

/* ---------- identities (§2.8) ---------- */

static bool header_ok(k2a_str_t s)
{
    return s.len != 0 && s.len <= MAX_ID_HEADER;
}

k2a_str_t k2a_kiro_conversation_id(const k2a_ir_request_t *req, const k2a_kiro_build_params_t *params, k2a_arena_t *arena)
{
    if (header_ok(params->session_header))
        return params->session_header;
    if (req->session_id.len != 0)
        return req->session_id;
    if (header_ok(params->conversation_header))
        return params->conversation_header;
    char hour[16];
    struct tm tm;
    time_t now = params->now;
    localtime_r(&now, &tm);
    strftime(hour, sizeof(hour), "%Y%m%d%H", &tm);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, params->client_ip.base != NULL ? params->client_ip.base : "", params->client_ip.len) != 1 ||
        EVP_DigestUpdate(ctx, "|", 1) != 1 ||
        EVP_DigestUpdate(ctx, params->user_agent.base != NULL ? params->user_agent.base : "", params->user_agent.len) != 1 ||
        EVP_DigestUpdate(ctx, "|", 1) != 1 || EVP_DigestUpdate(ctx, hour, strlen(hour)) != 1 ||
        EVP_DigestFinal_ex(ctx, md, &mdlen) != 1) {
        EVP_MD_CTX_free(ctx);
        return K2A_STRLIT("conv-0000000000000000");
    }
    EVP_MD_CTX_free(ctx);
    char *buf = k2a_arena_alloc(arena, 5 + 16 + 1);
    if (buf == NULL)
        return K2A_STRLIT("conv-0000000000000000");
    memcpy(buf, "conv-", 5);
    for (int i = 0; i < 8; ++i)
        snprintf(buf + 5 + 2 * i, 3, "%02x", md[i]);
    return k2a_str(buf, 21);
}

static k2a_str_t continuation_id(const k2a_kiro_build_params_t *params, k2a_arena_t *arena)
{
    if (header_ok(params->continuation_header))
        return params->continuation_header;
    unsigned char b[16];
    if (params->random != NULL)
        params->random(params->random_ctx, b, sizeof(b));
    else if (RAND_bytes(b, sizeof(b)) != 1)
        memset(b, 0x5a, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    char *buf = k2a_arena_alloc(arena, 37);
    if (buf == NULL)
        return K2A_STRLIT("00000000-0000-4000-8000-000000000000");
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
             b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return k2a_str(buf, 36);
}

/* ---------- the builder ---------- */

void k2a_kiro_build_params_init(k2a_kiro_build_params_t *params, const k2a_model_map_t *model_map)
{
    memset(params, 0, sizeof(*params));
    params->model_map = model_map;
    params->norm = k2a_normalize_config_default();
    params->now = time(NULL);
}

static int encode_failed(int r, k2a_convert_error_t *err)
{
    if (r == K2A_ETOOBIG)
        return k2a_convert_error_set(err, r, "the Kiro request exceeds the output buffer limit");
    return k2a_convert_error_set(err, r, "encoding the Kiro request failed: %s", k2a_strerror(r));
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
    k2a_kiro_conv_t conv;
    if ((r = k2a_normalize_for_kiro(req, &params->norm, model.thinking_forced, arena, &conv, err)) != 0)
        return r;

    k2a_kiro_encode_ids_t ids;
    ids.model_id = model.kiro_model_id;
    ids.conversation_id = k2a_kiro_conversation_id(req, params, arena);
    ids.agent_continuation_id = continuation_id(params, arena);
    ids.profile_arn = params->profile_arn;

    size_t *spans = k2a_arena_alloc(arena, (conv.nhistory + 1) * sizeof(*spans));
    if (spans == NULL)
        return k2a_convert_error_set(err, K2A_ENOMEM, "request too large for the conversion memory limit");
    size_t max = params->norm.max_payload_bytes, dropped = 0, nhistory0 = conv.nhistory;
    k2a_buf_reset(out);
    if ((r = k2a_kiro_encode(&conv, &ids, out, spans)) != 0)
        return encode_failed(r, err);
    while (max != 0 && out->len > max) {
        size_t droppable = k2a_normalize_droppable_pairs(&conv);
        if (droppable == 0)
            break;
        /* the bytes of the oldest pairs are known exactly: drop just enough of them (the result can only be smaller) */
        size_t excess = out->len - max, freed = 0, k = 0;
        while (k < droppable && freed < excess) {
            size_t first = conv.nsystem + 2 * k;
            freed += spans[first + 2] - spans[first];
            ++k;
        }
        dropped += k2a_normalize_drop_oldest(&conv, k);
        k2a_buf_reset(out);
        if ((r = k2a_kiro_encode(&conv, &ids, out, spans)) != 0)
            return encode_failed(r, err);
    }
    if (max != 0 && out->len > max)
        return k2a_convert_error_set(
            err, K2A_EPAYLOAD_TOOBIG,
            "conversation too large for Kiro: %zu bytes after dropping %zu of %zu history turns (limit %zu "
            "bytes); the system prompt, tools and latest message alone exceed it",
            out->len, dropped, nhistory0 - conv.nsystem, max);
    if (dropped != 0)
        k2a_info("kiro request: dropped %zu oldest history turns to fit %zu bytes (now %zu)", dropped, max, out->len);

    res->kiro_model_id = model.kiro_model_id;
    res->public_model = model.public_name;
    res->tool_names = conv.names;
    res->thinking = conv.thinking;
    res->history_turns_dropped = dropped;
    res->payload_bytes = out->len;
    res->conversation_id = ids.conversation_id;
    res->agent_continuation_id = ids.agent_continuation_id;
    return 0;
}
