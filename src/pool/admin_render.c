/*
 * The admin API's view of accounts (pool/admin_internal.h): an account as JSON (id, label, source, kind, regions, state,
 * usage, catalog), and the account object stored for an ADD body, including the conversion of Kiro's own token file
 * (~/.aws/sso/cache/kiro-auth-token.json, and for IdC the client registration beside it). Secrets are never rendered:
 * tokens appear only masked ("****" + last 4).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "core/errors.h"
#include "core/log.h"
#include "pool/admin_internal.h"
#include "pool/catalog.h"
#include "pool/health.h"

static void put_str(k2a_buf_t *out, const char *name, const char *v)
{
    k2a_buf_appendf(out, ",\"%s\":", name);
    if (v == NULL) {
        k2a_buf_appendstr(out, "null");
        return;
    }
    k2a_buf_appendstr(out, "\"");
    k2a_buf_append_json_escaped(out, v, strlen(v));
    k2a_buf_appendstr(out, "\"");
}

static void put_ms(k2a_buf_t *out, const char *name, int64_t ms)
{
    if (ms > 0)
        k2a_buf_appendf(out, ",\"%s\":%lld", name, (long long)ms);
    else
        k2a_buf_appendf(out, ",\"%s\":null", name);
}

void k2a_pool_admin_render_account(const k2a_account_t *a, k2a_buf_t *out, bool detail)
{
    char tail[16], email[160] = "";
    k2a_mask_secret(a->cfg.refresh_token, strlen(a->cfg.refresh_token), tail, sizeof(tail));
    k2a_buf_appendf(out, "{\"id\":\"%.*s\",\"index\":%zu", K2A_POOL_ADMIN_ID_LEN, a->key, a->index);
    put_str(out, "label", a->cfg.description);
    put_str(out, "source", k2a_pool_admin_in_config(a->key) ? "config" : "api");
    put_str(out, "kind", k2a_auth_kind_name(a->cfg.auth, a->cfg.builder_id));
    put_str(out, "region", k2a_account_region(a));
    put_str(out, "auth_region", k2a_account_auth_region(a));
    put_str(out, "state", k2a_account_state_name(a->state));
    put_str(out, "state_reason", a->reason[0] ? a->reason : NULL);
    put_ms(out, "state_until", a->until);
    k2a_buf_appendf(out, ",\"enabled\":%s,\"refreshing\":%s,\"has_access_token\":%s,\"in_flight\":%u",
                    a->state == K2A_ACCOUNT_DISABLED ? "false" : "true", a->refreshing ? "true" : "false",
                    a->access_token != NULL ? "true" : "false", a->inflight);
    put_ms(out, "expires_at", a->access_token != NULL ? a->expires_at : 0);
    put_str(out, "token_preview", tail);
    if (a->email[0] != '\0')
        k2a_pool_mask_email(a->email, email, sizeof(email));
    put_str(out, "user_email", email[0] ? email : NULL);
    k2a_buf_appendf(out, ",\"usage\":{\"known\":%s", a->usage_known ? "true" : "false");
    if (a->usage_known)
        k2a_buf_appendf(out, ",\"credits_remaining\":%.4f,\"credits_limit\":%.4f", a->credits_remaining, a->credits_limit);
    else
        k2a_buf_appendstr(out, ",\"credits_remaining\":null,\"credits_limit\":null");
    k2a_buf_appendf(out,
                    ",\"credits_consumed\":%.4f,\"requests\":%llu,\"errors\":%llu,\"input_tokens\":%lld,\"output_tokens\":%lld",
                    a->credits_consumed, (unsigned long long)a->requests, (unsigned long long)a->errors, (long long)a->in_tokens,
                    (long long)a->out_tokens);
    put_ms(out, "next_reset", a->next_reset);
    put_ms(out, "last_used", a->last_used);
    k2a_buf_appendstr(out, "}");
    if (a->catalog != NULL)
        k2a_buf_appendf(out, ",\"catalog_size\":%zu", a->catalog->n);
    else
        k2a_buf_appendstr(out, ",\"catalog_size\":null");
    if (detail) {
        put_str(out, "profile_arn", a->cfg.profile_arn != NULL ? a->cfg.profile_arn : a->profile_arn);
        put_str(out, "last_error", a->last_error[0] ? a->last_error : NULL);
        put_ms(out, "last_error_at", a->last_error_at);
        k2a_buf_appendf(out, ",\"refreshes\":%llu,\"refresh_failures\":%llu,\"usage_polls\":%llu", (unsigned long long)a->refreshes,
                        (unsigned long long)a->refresh_failures, (unsigned long long)a->usage_polls);
        if (a->catalog == NULL) {
            k2a_buf_appendstr(out, ",\"catalog\":null");
        } else {
            const k2a_catalog_t *c = a->catalog;
            k2a_buf_appendstr(out, ",\"catalog\":{\"default\":");
            if (c->default_model != NULL) {
                k2a_buf_appendstr(out, "\"");
                k2a_buf_append_json_escaped(out, c->default_model, strlen(c->default_model));
                k2a_buf_appendstr(out, "\"");
            } else {
                k2a_buf_appendstr(out, "null");
            }
            put_ms(out, "fetched_at", c->fetched_at);
            k2a_buf_appendstr(out, ",\"models\":[");
            for (size_t i = 0; i < c->n; ++i) {
                const k2a_catalog_model_t *m = &c->models[i];
                k2a_buf_appendstr(out, i ? ",{\"id\":\"" : "{\"id\":\"");
                k2a_buf_append_json_escaped(out, m->id, strlen(m->id));
                k2a_buf_appendstr(out, "\"");
                put_str(out, "name", m->name);
                k2a_buf_appendf(out, ",\"max_input\":%lld,\"max_output\":%lld}", (long long)m->max_input, (long long)m->max_output);
            }
            k2a_buf_appendstr(out, "]}");
        }
        k2a_buf_appendstr(out, ",\"models_missing\":[");
        for (size_t i = 0; i < a->nmissing; ++i) {
            k2a_buf_appendstr(out, i ? ",\"" : "\"");
            k2a_buf_append_json_escaped(out, a->models_missing[i], strlen(a->models_missing[i]));
            k2a_buf_appendstr(out, "\"");
        }
        k2a_buf_appendstr(out, "]");
    }
    k2a_buf_appendstr(out, "}");
}

void k2a_pool_admin_render_list(k2a_pool_t *p, k2a_buf_t *out)
{
    const k2a_pool_admin_t *g = &k2a_pool_admin_state;
    k2a_buf_appendstr(out, "{\"accounts\":[");
    for (size_t i = 0; i < p->naccounts; ++i) {
        if (i)
            k2a_buf_appendstr(out, ",");
        k2a_pool_admin_render_account(p->accounts[i], out, false);
    }
    k2a_buf_appendf(out, "],\"configured\":%zu,\"added\":%zu,\"persistent\":%s}", g->config.n, g->napi,
                    g->path[0] ? "true" : "false");
}

/* ---- ADD bodies ---- */

static yajl_val field(yajl_val obj, const char *key)
{
    if (obj == NULL || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; ++i)
        if (strcmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    return NULL;
}

static const char *str_field(yajl_val obj, const char *key)
{
    yajl_val v = field(obj, key);
    return v != NULL && YAJL_IS_STRING(v) && v->u.string[0] != '\0' ? v->u.string : NULL;
}

static void put_field(k2a_buf_t *out, bool *first, const char *name, const char *v)
{
    if (v == NULL)
        return;
    k2a_buf_appendf(out, "%s\"%s\":\"", *first ? "" : ",", name);
    k2a_buf_append_json_escaped(out, v, strlen(v));
    k2a_buf_appendstr(out, "\"");
    *first = false;
}

/* An object given as itself or as its JSON text (a pasted file). *owned receives a tree to free. */
static yajl_val object_or_text(yajl_val v, yajl_val *owned)
{
    *owned = NULL;
    if (v != NULL && YAJL_IS_OBJECT(v))
        return v;
    if (v != NULL && YAJL_IS_STRING(v) && strlen(v->u.string) < 64 * 1024) {
        *owned = yajl_tree_parse(v->u.string, NULL, 0);
        if (*owned != NULL && YAJL_IS_OBJECT(*owned))
            return *owned;
    }
    return NULL;
}

static int from_token_file(yajl_val body, k2a_buf_t *out, char *err, size_t errlen)
{
    yajl_val tf_owned, reg_owned;
    yajl_val tf = object_or_text(field(body, "kiro_token_file"), &tf_owned);
    yajl_val reg = object_or_text(field(body, "client_registration"), &reg_owned);
    int r = K2A_EINVAL;
    if (tf == NULL) {
        snprintf(err, errlen, "\"kiro_token_file\" must be the content of ~/.aws/sso/cache/kiro-auth-token.json (object or text)");
        goto Exit;
    }
    const char *rt = str_field(tf, "refreshToken"), *method = str_field(tf, "authMethod"), *provider = str_field(tf, "provider"),
               *region = str_field(tf, "region"), *desc = str_field(body, "description");
    if (rt == NULL) {
        snprintf(err, errlen, "kiro_token_file: no refreshToken");
        goto Exit;
    }
    bool idc = method != NULL && strcasecmp(method, "social") != 0;
    bool first = true;
    k2a_buf_appendstr(out, "{");
    put_field(out, &first, "auth", idc ? "IdC" : "Social");
    put_field(out, &first, "refreshToken", rt);
    if (idc) {
        const char *cid = str_field(reg, "clientId"), *cs = str_field(reg, "clientSecret");
        if (cid == NULL)
            cid = str_field(body, "clientId");
        if (cs == NULL)
            cs = str_field(body, "clientSecret");
        if (cid == NULL || cs == NULL) {
            snprintf(err, errlen,
                     "kiro_token_file: an IdC login (authMethod %.20s) also needs \"client_registration\": the content of "
                     "~/.aws/sso/cache/<clientIdHash>.json",
                     method);
            goto Exit;
        }
        put_field(out, &first, "clientId", cid);
        put_field(out, &first, "clientSecret", cs);
        if (provider != NULL && strcasecmp(provider, "BuilderId") == 0)
            put_field(out, &first, "provider", "BuilderId");
    }
    put_field(out, &first, "region", region);
    put_field(out, &first, "description", desc);
    k2a_buf_appendstr(out, "}");
    r = 0;
Exit:
    if (tf_owned != NULL)
        yajl_tree_free(tf_owned);
    if (reg_owned != NULL)
        yajl_tree_free(reg_owned);
    return r;
}

/* A compact re-encoding of an account object, "disabled" left out. */
static int encode_account(yajl_val v, k2a_buf_t *out, char *err, size_t errlen)
{
    bool first = true;
    k2a_buf_appendstr(out, "{");
    for (size_t i = 0; i < v->u.object.len; ++i) {
        const char *k = v->u.object.keys[i];
        yajl_val x = v->u.object.values[i];
        if (strcmp(k, "disabled") == 0)
            continue;
        k2a_buf_appendf(out, "%s\"", first ? "" : ",");
        k2a_buf_append_json_escaped(out, k, strlen(k));
        k2a_buf_appendstr(out, "\":");
        first = false;
        if (YAJL_IS_STRING(x)) {
            k2a_buf_appendstr(out, "\"");
            k2a_buf_append_json_escaped(out, x->u.string, strlen(x->u.string));
            k2a_buf_appendstr(out, "\"");
        } else if (YAJL_IS_NUMBER(x)) {
            k2a_buf_appendstr(out, x->u.number.r);
        } else if (YAJL_IS_TRUE(x) || YAJL_IS_FALSE(x)) {
            k2a_buf_appendstr(out, YAJL_IS_TRUE(x) ? "true" : "false");
        } else if (YAJL_IS_NULL(x)) {
            k2a_buf_appendstr(out, "null");
        } else {
            snprintf(err, errlen, "account field \"%.40s\": objects and arrays are not account fields", k);
            return K2A_EINVAL;
        }
    }
    k2a_buf_appendstr(out, "}");
    return 0;
}

int k2a_pool_admin_account_json(yajl_val body, k2a_buf_t *out, bool *disabled, char *err, size_t errlen)
{
    int r;
    *disabled = false;
    if (body == NULL || !YAJL_IS_OBJECT(body)) {
        snprintf(err, errlen, "the body must be an account object (as in KIRO_AUTH_TOKEN) or {\"kiro_token_file\": ...}");
        return K2A_EINVAL;
    }
    yajl_val dis = field(body, "disabled");
    if (dis != NULL && !YAJL_IS_TRUE(dis) && !YAJL_IS_FALSE(dis)) {
        snprintf(err, errlen, "\"disabled\" must be true or false");
        return K2A_EINVAL;
    }
    *disabled = dis != NULL && YAJL_IS_TRUE(dis);
    if (field(body, "kiro_token_file") != NULL)
        r = from_token_file(body, out, err, errlen);
    else
        r = encode_account(body, out, err, errlen);
    if (r == 0 && k2a_buf_append(out, "", 1) == 0)
        --out->len; /* NUL-terminated, not counted */
    else if (r == 0)
        r = K2A_ENOMEM;
    return r;
}
