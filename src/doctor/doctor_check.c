/*
 * kiro2api doctor: the check of one account, made of the pool's own calls (refresh.c, profiles.c, catalog_job.c,
 * getUsageLimits, and the gateway's generateAssistantResponse POST of dispatch.c), each timed, with a verdict and a
 * one-line fix hint mapped from the pool's classification (health.c) of what Kiro answered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "core/coro.h"
#include "core/errors.h"
#include "core/rand.h"
#include "doctor/doctor_check.h"
#include "eventstream/eventstream.h"
#include "pool/catalog.h"
#include "pool/dispatch.h"
#include "pool/internal.h"
#include "pool/region.h"

#define GENERATE_BODY_MAX (1024 * 1024)
#define CHEAP_MODEL "claude-haiku-4.5"

void k2a_doctor_mask_arn(const char *arn, char *out, size_t outsz)
{
    /* arn:aws:codewhisperer:<region>:<account>:profile/<id>: the account number keeps its last 4 digits */
    const char *p = arn;
    for (int i = 0; i < 4 && p != NULL; ++i)
        if ((p = strchr(p, ':')) != NULL)
            ++p;
    const char *end = p != NULL ? strchr(p, ':') : NULL;
    if (p == NULL || end == NULL) {
        snprintf(out, outsz, "%s", arn[0] != '\0' ? "(unparsable ARN)" : "");
        return;
    }
    size_t n = (size_t)(end - p);
    const char *tail = n > 4 ? end - 4 : end;
    snprintf(out, outsz, "%.*s****%s", (int)(p - arn), arn, tail);
}

static int64_t now_ms(void)
{
    return (int64_t)uv_now(k2a_coro_loop());
}

static void step_start(k2a_doctor_step_t *s, int64_t *t0)
{
    uv_update_time(k2a_coro_loop());
    *t0 = now_ms();
    s->ran = true;
}

static void step_end(k2a_doctor_step_t *s, int64_t t0)
{
    uv_update_time(k2a_coro_loop());
    s->ms = now_ms() - t0;
}

static void set_hint(k2a_doctor_account_t *o, const char *fmt, const char *arg)
{
    if (o->hint[0] == '\0')
        snprintf(o->hint, sizeof(o->hint), fmt, arg != NULL ? arg : "");
    o->ok = false;
}

static const char *net_hint = "cannot reach Kiro (%s): check DNS (KIRO_DNS_SERVERS), the proxy (KIRO_UPSTREAM_PROXY) and TLS "
                              "trust (KIRO_CA_FILE)";

/* The hint for a failed data-plane call (usage or generate), from the pool's classification. */
static void hint_from_verdict(k2a_doctor_account_t *o, const k2a_verdict_t *v, int transport_err)
{
    if (transport_err != 0) {
        set_hint(o, net_hint, k2a_strerror(transport_err));
        return;
    }
    switch (v->action) {
    case K2A_ACT_QUOTA:
        set_hint(o, "no credits left: wait for the monthly reset or enable overage for the account%s", "");
        break;
    case K2A_ACT_FLAGGED:
        set_hint(o, "flagged for suspicious activity: let the account rest (KIRO_FLAGGED_COOLDOWN_S) and lower its load%s", "");
        break;
    case K2A_ACT_BANNED:
        set_hint(o, "suspended or locked by Kiro: contact Kiro support; disable the account (\"disabled\": true) meanwhile%s", "");
        break;
    case K2A_ACT_CONFIG:
        set_hint(o, "profileArn not accepted: set the account's profileArn (and region/apiRegion) to its Kiro profile%s", "");
        break;
    case K2A_ACT_MODEL:
        set_hint(o, "model not available to this account: check its subscription (the models column lists what it may use)%s", "");
        break;
    case K2A_ACT_AUTH:
    case K2A_ACT_FORBIDDEN:
        set_hint(o,
                 "the fresh access token was refused: region mismatch? set the account's region/apiRegion to the one it "
                 "signed in at%s",
                 "");
        break;
    case K2A_ACT_THROTTLE:
        set_hint(o, "rate limited by Kiro: try again in a few minutes%s", "");
        break;
    case K2A_ACT_CAPACITY:
        set_hint(o, "the model is at capacity at Kiro (not the account): try again later%s", "");
        break;
    case K2A_ACT_LOCAL:
        set_hint(o, net_hint, v->detail);
        break;
    case K2A_ACT_CLIENT:
        if (strstr(v->message, "Improperly formed") != NULL && o->arn[0] != '\0') {
            /* the minimal calls are well formed: Kiro refuses a profileArn of another region than the host's */
            set_hint(o,
                     "region mismatch? the profileArn's region must be the data plane's (%s): check the account's "
                     "region/apiRegion and the {region} in KIRO_API_BASE",
                     o->region);
            break;
        }
        set_hint(o,
                 "Kiro refused the request's shape: the service changed? run kiro2api doctor --probe --trace DIR and "
                 "report the files%s",
                 "");
        break;
    default:
        set_hint(o, "Kiro failed (%s): try again later", v->detail);
        break;
    }
}

static void do_refresh(k2a_account_t *a, k2a_doctor_account_t *o)
{
    k2a_verdict_t v;
    memset(&v, 0, sizeof(v));
    int64_t t0;
    step_start(&o->refresh, &t0);
    int r = k2a_account_refresh_now(a, &v);
    step_end(&o->refresh, t0);
    o->refresh.status = v.status;
    snprintf(o->refresh.detail, sizeof(o->refresh.detail), "%s", v.detail[0] ? v.detail : k2a_strerror(r));
    o->refresh.ok = r == 0;
    if (r == 0) {
        if (a->cfg.auth == K2A_AUTH_API_KEY)
            snprintf(o->refresh.detail, sizeof(o->refresh.detail), "API key (no refresh)");
        return;
    }
    bool client = strstr(v.reason, "client") != NULL || strstr(v.message, "client") != NULL || strstr(v.detail, "client") != NULL;
    if (v.action == K2A_ACT_INVALID && a->cfg.auth == K2A_AUTH_IDC && client)
        set_hint(o,
                 "IdC client registration refused: sign in with the Kiro IDE again and copy clientId/clientSecret with the "
                 "refreshToken%s",
                 "");
    else if (v.action == K2A_ACT_INVALID && a->cfg.auth == K2A_AUTH_API_KEY)
        set_hint(o, "the API key was refused: create a new key in Kiro%s", "");
    else if (v.action == K2A_ACT_INVALID)
        set_hint(o, "dead refresh token: sign in to Kiro again and copy the new refreshToken (auth region %s)", o->auth_region);
    else if (v.action == K2A_ACT_LOCAL || v.status == 0)
        set_hint(o, net_hint, v.detail);
    else
        set_hint(o, "the token service failed (%s): try again later", v.detail);
}

static void note_identity(k2a_account_t *a, k2a_doctor_account_t *o)
{
    snprintf(o->region, sizeof(o->region), "%s", k2a_account_region(a));
    snprintf(o->auth_region, sizeof(o->auth_region), "%s", k2a_account_auth_region(a));
    const char *gen = k2a_account_generate_arn(a);
    char arn_region[K2A_REGION_MAX];
    if (gen != NULL && k2a_arn_parse(gen, arn_region) == 0 && a->cfg.auth != K2A_AUTH_API_KEY)
        o->region_source = "arn";
    else if (a->cfg.api_region[0] != '\0')
        o->region_source = "apiRegion";
    else if (a->cfg.region[0] != '\0')
        o->region_source = "region";
    else
        o->region_source = "default";
    if (a->cfg.auth == K2A_AUTH_API_KEY)
        o->arn_source = "none";
    else if (a->cfg.profile_arn != NULL)
        o->arn_source = "config";
    else if (a->profile_arn != NULL && a->arn_source == K2A_ARN_SRC_REFRESH)
        o->arn_source = "refresh";
    else if (a->profile_arn != NULL && a->arn_source == K2A_ARN_SRC_PROFILES)
        o->arn_source = "profiles";
    else if (a->profile_arn != NULL && a->arn_source == K2A_ARN_SRC_STATE)
        o->arn_source = "state";
    else if (gen != NULL && strcmp(gen, K2A_ARN_BUILDER_ID) == 0)
        o->arn_source = "placeholder";
    else if (gen != NULL)
        o->arn_source = "default";
    else
        o->arn_source = "none";
    k2a_doctor_mask_arn(gen != NULL ? gen : "", o->arn, sizeof(o->arn));
}

static void do_models(k2a_account_t *a, k2a_doctor_account_t *o)
{
    int64_t t0;
    step_start(&o->models, &t0);
    char detail[200] = "";
    int r = k2a_account_catalog_now(a, detail, sizeof(detail));
    step_end(&o->models, t0);
    o->models.ok = r == 0 && a->catalog != NULL;
    o->models.status = r == 0 ? 200 : 0;
    if (!o->models.ok) {
        snprintf(o->models.detail, sizeof(o->models.detail), "%s", detail[0] ? detail : k2a_strerror(r));
        return;
    }
    o->nmodels = a->catalog->n;
    for (size_t i = 0; i < a->catalog->n && i < K2A_DOCTOR_IDS; ++i)
        snprintf(o->model_ids[i], sizeof(o->model_ids[i]), "%s", a->catalog->models[i].id);
    snprintf(o->models.detail, sizeof(o->models.detail), "%zu model(s)", a->catalog->n);
}

static void do_usage(k2a_account_t *a, k2a_doctor_account_t *o)
{
    int64_t t0;
    k2a_verdict_t v;
    int status = 0;
    step_start(&o->usage, &t0);
    int r = k2a_account_usage_now(a, &status, &v);
    step_end(&o->usage, t0);
    o->usage.status = status;
    o->usage.ok = r == 0;
    if (r != 0) {
        snprintf(o->usage.detail, sizeof(o->usage.detail), "%s", v.detail[0] ? v.detail : k2a_strerror(r));
        hint_from_verdict(o, &v, status == 0 ? r : 0);
        return;
    }
    o->usage_known = a->usage_known;
    o->credits_left = a->credits_remaining;
    o->credits_limit = a->credits_limit;
    o->next_reset_ms = a->next_reset;
    if (a->usage_known)
        snprintf(o->usage.detail, sizeof(o->usage.detail), "%.2f of %.2f credits left", a->credits_remaining, a->credits_limit);
    else
        snprintf(o->usage.detail, sizeof(o->usage.detail), "no credit breakdown");
    if (a->usage_known && a->credits_remaining <= 0) {
        o->usage.ok = false;
        set_hint(o, "no credits left: wait for the monthly reset or enable overage for the account%s", "");
    }
}

static void pick_model(k2a_account_t *a, k2a_doctor_account_t *o)
{
    snprintf(o->model, sizeof(o->model), "%s", CHEAP_MODEL);
    if (a->catalog == NULL || a->catalog->n == 0)
        return;
    for (size_t i = 0; i < a->catalog->n; ++i)
        if (strcmp(a->catalog->models[i].id, CHEAP_MODEL) == 0)
            return;
    for (size_t i = 0; i < a->catalog->n; ++i) /* the smallest family the catalog has */
        if (strstr(a->catalog->models[i].id, "haiku") != NULL) {
            snprintf(o->model, sizeof(o->model), "%s", a->catalog->models[i].id);
            return;
        }
    snprintf(o->model, sizeof(o->model), "%s",
             a->catalog->default_model != NULL ? a->catalog->default_model : a->catalog->models[0].id);
}

static int build_body(const k2a_lease_t *l, const char *model, k2a_buf_t *b)
{
    char conv[37], cont[37];
    k2a_rand_uuid4(conv);
    k2a_rand_uuid4(cont);
    k2a_buf_appendstr(b, "{\"conversationState\":{\"agentContinuationId\":\"");
    k2a_buf_appendstr(b, cont);
    k2a_buf_appendstr(b, "\",\"agentTaskType\":\"vibe\",\"chatTriggerType\":\"MANUAL\",\"currentMessage\":{\"userInputMessage\":"
                         "{\"content\":\"Hi\",\"modelId\":\"");
    k2a_buf_append_json_escaped(b, model, strlen(model));
    k2a_buf_appendstr(b, "\",\"origin\":\"AI_EDITOR\",\"userInputMessageContext\":{}}},\"conversationId\":\"");
    k2a_buf_appendstr(b, conv);
    k2a_buf_appendstr(b, "\"}");
    if (l->profile_arn != NULL) {
        k2a_buf_appendstr(b, ",\"profileArn\":\"");
        k2a_buf_append_json_escaped(b, l->profile_arn, strlen(l->profile_arn));
        k2a_buf_appendstr(b, "\"");
    }
    return k2a_buf_appendstr(b, "}");
}

typedef struct st_frames_t {
    size_t events;
    char exception[128];
} frames_t;

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    frames_t *x = ctx;
    size_t n = 0;
    const char *mt = k2a_es_frame_header_str(f, ":message-type", &n);
    if (mt != NULL && n != 5 && x->exception[0] == '\0') { /* "event" is 5 bytes; "exception", "error" are not events */
        size_t tn = 0;
        const char *t = k2a_es_frame_header_str(f, ":exception-type", &tn);
        if (t == NULL)
            t = k2a_es_frame_header_str(f, ":error-code", &tn);
        snprintf(x->exception, sizeof(x->exception), "%.*s", t != NULL ? (int)tn : 9, t != NULL ? t : "exception");
    } else {
        ++x->events;
    }
    return 0;
}

static void do_generate(k2a_pool_t *p, k2a_account_t *a, k2a_doctor_account_t *o)
{
    pick_model(a, o);
    k2a_lease_t lease;
    int r = k2a_pool_lease_index(p, a->index, &lease);
    if (r != 0) {
        o->generate.ran = true;
        snprintf(o->generate.detail, sizeof(o->generate.detail), "%s", k2a_strerror(r));
        set_hint(o, "no access token: %s", k2a_strerror(r));
        return;
    }
    k2a_dispatch_t d;
    k2a_dispatch_init(&d, p, "doctor", true);
    k2a_buf_t body = K2A_BUF_INIT(64 * 1024), resp_body = K2A_BUF_INIT(GENERATE_BODY_MAX);
    k2a_http_response_t *resp = NULL;
    int64_t t0;
    step_start(&o->generate, &t0);
    r = build_body(&lease, o->model, &body);
    if (r == 0)
        r = k2a_dispatch_post_lease(&d, &lease, body.base, body.len, &resp);
    int status = 0;
    if (r == 0) {
        status = resp->status;
        r = k2a_upstream_read_all(resp, &resp_body, GENERATE_BODY_MAX);
        if (r == K2A_ETOOBIG && status != 200)
            r = 0;
        k2a_upstream_release(resp);
    }
    step_end(&o->generate, t0);
    o->generate.status = status;
    k2a_dispatch_trace_capture(&d, resp_body.base, resp_body.len);
    if (r != 0) {
        snprintf(o->generate.detail, sizeof(o->generate.detail), "%s", k2a_strerror(r));
        set_hint(o, net_hint, k2a_strerror(r));
    } else if (status != 200) {
        k2a_verdict_t v;
        k2a_pool_classify(0, status, resp_body.base, resp_body.len, &v);
        snprintf(o->generate.detail, sizeof(o->generate.detail), "%s", v.detail);
        hint_from_verdict(o, &v, 0);
    } else {
        frames_t x = {0};
        k2a_es_decoder_t dec;
        k2a_es_decoder_init(&dec, K2A_ES_DEFAULT_MAX_FRAME);
        int er = k2a_es_decoder_feed(&dec, resp_body.base != NULL ? resp_body.base : "", resp_body.len, on_frame, &x);
        if (er == 0)
            er = k2a_es_decoder_finish(&dec);
        k2a_es_decoder_dispose(&dec);
        if (er != 0) {
            snprintf(o->generate.detail, sizeof(o->generate.detail), "answer is not a valid EventStream: %s", k2a_strerror(er));
            set_hint(o, "Kiro's answer could not be read: the service changed? run kiro2api doctor --probe --trace DIR%s", "");
        } else if (x.exception[0] != '\0') {
            snprintf(o->generate.detail, sizeof(o->generate.detail), "exception in the stream: %s", x.exception);
            set_hint(o, "Kiro answered with an exception (%s): try again later", x.exception);
        } else {
            o->generate.ok = true;
            snprintf(o->generate.detail, sizeof(o->generate.detail), "%zu event(s) from %s", x.events, o->model);
        }
    }
    k2a_dispatch_trace_end(&d, !o->generate.ok, r, o->generate.detail);
    k2a_buf_dispose(&body);
    k2a_buf_dispose(&resp_body);
    k2a_dispatch_dispose(&d);
    k2a_pool_release(&lease);
}

void k2a_doctor_check_account(k2a_pool_t *p, size_t index, const k2a_doctor_opts_t *opts, k2a_doctor_account_t *o)
{
    k2a_account_t *a = p->accounts[index];
    memset(o, 0, sizeof(*o));
    o->index = index;
    o->ok = true;
    if (a->cfg.description[0] != '\0')
        snprintf(o->name, sizeof(o->name), "%zu (%.60s)", index, a->cfg.description);
    else
        snprintf(o->name, sizeof(o->name), "%zu", index);
    o->kind = k2a_auth_kind_name(a->cfg.auth, a->cfg.builder_id);
    note_identity(a, o);
    if (a->cfg.disabled) {
        o->disabled = true;
        snprintf(o->hint, sizeof(o->hint), "disabled in the configuration: not checked");
        return;
    }
    do_refresh(a, o);
    note_identity(a, o); /* the refresh (or ListAvailableProfiles) may have named the ARN */
    if (!o->refresh.ok)
        return;
    do_models(a, o);
    do_usage(a, o);
    if (!opts->no_generate)
        do_generate(p, a, o);
    if (opts->probe)
        k2a_doctor_probe_account(p, index, opts, o);
    if (!o->models.ok && o->hint[0] == '\0')
        set_hint(o, "ListAvailableModels failed (%s): the account may still work; try again later", o->models.detail);
}
