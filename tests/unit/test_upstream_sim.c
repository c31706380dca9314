/*
 * Upstream client against the real simulator (build/kiro-sim) over TLS with a test CA: a Social refresh
 * (small JSON POST), generateAssistantResponse streamed as EventStream and decoded frame by frame as the
 * pieces arrive, a stream cut in the middle (K2A_ERESET_MID_BODY), an error status read with its body,
 * and keep-alive reuse across all of them; a response released after Kiro's last frame while its body has not ended
 * ([[sim:keepopen]]) is closed, never pooled. Skipped when kiro-sim was not built.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "eventstream/eventstream.h"
#include "upstream_test.h"

static char certs[256], ca[512], cert[512], key[512];
static uv_loop_t loop;
static ut_proc_t sim;
static k2a_upstream_t *up;

static int setup(void **state)
{
    const char *bin = ut_sim_path();
    if (bin == NULL)
        return 0; /* the tests skip */
    if (ut_make_certs(certs, sizeof(certs)) != 0)
        return -1;
    snprintf(ca, sizeof(ca), "%s/ca.pem", certs);
    snprintf(cert, sizeof(cert), "%s/server.pem", certs);
    snprintf(key, sizeof(key), "%s/server.key", certs);
    /* kiro-sim's lenient 2025 mode: these tests drive the HTTP client with hand-made bodies; Kiro's current rules are the
     * integration tests' (tests/integration run kiro-sim in its default mode) */
    const char *mode = "--legacy-2025";
    const char *argv[] = {bin, "--port", "0", "--tls-cert", cert, "--tls-key", key, mode, NULL};
    if (ut_proc_start_argv(&sim, argv, "kiro-sim listening on https://127.0.0.1:") != 0)
        return -1;
    uv_loop_init(&loop);
    if (k2a_coro_runtime_init(&loop, NULL) != 0)
        return -1;
    k2a_upstream_config_t cfg;
    k2a_upstream_config_init(&cfg);
    cfg.dns_servers = "127.0.0.1:9"; /* IP literals only */
    cfg.ca_file = ca;
    return k2a_upstream_create(&loop, &cfg, &up);
}

static int teardown(void **state)
{
    if (up == NULL)
        return 0;
    k2a_upstream_destroy(up);
    uv_run(&loop, UV_RUN_DEFAULT);
    k2a_coro_runtime_dispose();
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    ut_proc_stop(&sim);
    ut_remove_dir(certs);
    return 0;
}

typedef struct st_call_t {
    int rc, status, body_rc;
    k2a_buf_t body;
    int pieces;
    uint64_t frames;
    int es_rc;
    bool reused;
} call_t;

static int on_frame(void *ctx, const k2a_es_frame_t *f)
{
    return 0;
}

/* POSTs json to path (with a bearer token when given); an EventStream body is decoded as it arrives. */
static void call(const char *path, const char *token, const char *json, call_t *c)
{
    char u[256], auth[600];
    snprintf(u, sizeof(u), "https://127.0.0.1:%d%s", sim.port, path);
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_header_t h[2] = {{K2A_STRLIT("Content-Type"), K2A_STRLIT("application/json")}};
    size_t nh = 1;
    if (token != NULL) {
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        h[nh++] = (k2a_http_header_t){K2A_STRLIT("Authorization"), k2a_cstr(auth)};
    }
    uv_buf_t body = uv_buf_init((char *)json, (unsigned)strlen(json));
    k2a_http_request_t req = {.url = &pu, .method = "POST", .headers = h, .nheaders = nh, .body = &body, .nbody = 1};
    k2a_http_response_t *resp;
    k2a_buf_init(&c->body, 1024 * 1024);
    if ((c->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    c->status = resp->status;
    c->reused = resp->reused;
    k2a_str_t ct = k2a_http_response_header(resp, "content-type");
    bool es = k2a_str_eq_lit(ct, "application/vnd.amazon.eventstream");
    k2a_es_decoder_t dec;
    k2a_es_decoder_init(&dec, 0);
    for (;;) {
        const char *d;
        intptr_t n = k2a_upstream_read(resp, &d);
        if (n <= 0) {
            c->body_rc = (int)n;
            break;
        }
        ++c->pieces;
        if (es && c->es_rc == 0)
            c->es_rc = k2a_es_decoder_feed(&dec, d, (size_t)n, on_frame, NULL);
        k2a_buf_append(&c->body, d, (size_t)n);
    }
    c->frames = dec.frames;
    k2a_es_decoder_dispose(&dec);
    k2a_upstream_release(resp);
}

static const char *gen_body(char *out, size_t n, const char *content)
{
    snprintf(
        out, n,
        "{\"conversationState\":{\"agentContinuationId\":\"7f3c2a1e-9b4d-5e6f-8a1b-2c3d4e5f6a7b\",\"agentTaskType\":\"vibe\","
        "\"chatTriggerType\":\"MANUAL\",\"currentMessage\":{\"userInputMessage\":{\"content\":\"%s\",\"modelId\":\"auto\","
        "\"origin\":\"AI_EDITOR\",\"images\":[],\"userInputMessageContext\":{}}},\"conversationId\":\"conv-0123456789abcdef\"}}",
        content);
    return out;
}

typedef struct st_flow_t {
    call_t refresh, stream, cut, limited, again;
    char token[512];
} flow_t;

static void flow_fn(k2a_coro_t *co, void *arg)
{
    flow_t *f = arg;
    call("/refreshToken", NULL, "{\"refreshToken\":\"sim-ok-upstream\"}", &f->refresh);
    if (f->refresh.rc != 0 || f->refresh.status != 200)
        return;
    char *tok = strstr(k2a_buf_cstr(&f->refresh.body), "\"accessToken\":\"");
    if (tok == NULL)
        return;
    tok += 15;
    snprintf(f->token, sizeof(f->token), "%.*s", (int)strcspn(tok, "\""), tok);
    char body[2048];
    call("/generateAssistantResponse", f->token, gen_body(body, sizeof(body), "[[sim:text frames=12 size=8]] [[sim:drip ms=20]]"),
         &f->stream);
    call("/generateAssistantResponse", f->token, gen_body(body, sizeof(body), "[[sim:cut after=3]]"), &f->cut);
    call("/generateAssistantResponse", f->token, gen_body(body, sizeof(body), "[[sim:status code=429 message=\\\"slow down\\\"]]"),
         &f->limited);
    call("/generateAssistantResponse", f->token, gen_body(body, sizeof(body), "hello"), &f->again);
}

static void test_sim_over_tls(void **state)
{
    if (up == NULL)
        skip();
    flow_t f;
    memset(&f, 0, sizeof(f));
    ut_run(&loop, flow_fn, &f);
    assert_int_equal(f.refresh.rc, 0);
    assert_int_equal(f.refresh.status, 200);
    assert_true(strlen(f.token) > 0);

    assert_int_equal(f.stream.rc, 0);
    assert_int_equal(f.stream.status, 200);
    assert_int_equal(f.stream.body_rc, 0);
    assert_int_equal(f.stream.es_rc, 0);
    assert_true(f.stream.frames >= 12 + 3); /* text frames, then metadata, context usage and metering */
    assert_true(f.stream.pieces >= 2);      /* the drip arrived piece by piece */
    assert_true(f.stream.reused);

    assert_int_equal(f.cut.rc, 0);
    assert_int_equal(f.cut.status, 200);
    assert_int_equal(f.cut.body_rc, K2A_ERESET_MID_BODY);
    assert_int_equal(f.cut.frames, 3);

    assert_int_equal(f.limited.rc, 0);
    assert_int_equal(f.limited.status, 429);
    assert_non_null(strstr(k2a_buf_cstr(&f.limited.body), "slow down"));
    assert_false(f.limited.reused); /* the cut stream cost its connection */

    assert_int_equal(f.again.rc, 0);
    assert_int_equal(f.again.status, 200);
    assert_int_equal(f.again.body_rc, 0);
    assert_true(f.again.reused);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_opened, 2);
    assert_int_equal(st.tls_resumptions, 1);
    call_t *all[] = {&f.refresh, &f.stream, &f.cut, &f.limited, &f.again};
    for (int i = 0; i < 5; ++i)
        k2a_buf_dispose(&all[i]->body);
}

/* Kiro's last frame is meteringEvent and it often leaves the body open after it ([[sim:keepopen]]): a response released
 * before its body ended must not go back to the pool (the next request would read the rest of this one). */
static int on_frame_metering(void *ctx, const k2a_es_frame_t *f)
{
    size_t len;
    const char *t = k2a_es_frame_header_str(f, ":event-type", &len);
    if (t != NULL && len == 13 && memcmp(t, "meteringEvent", 13) == 0)
        *(bool *)ctx = true;
    return 0;
}

typedef struct st_keepopen_t {
    call_t refresh, again;
    char token[512];
    int rc, status;
    bool metered, reused;
    k2a_upstream_stats_t before, after;
} keepopen_t;

static void keepopen_fn(k2a_coro_t *co, void *arg)
{
    keepopen_t *k = arg;
    call("/refreshToken", NULL, "{\"refreshToken\":\"sim-ok-keepopen\"}", &k->refresh);
    char *tok = strstr(k2a_buf_cstr(&k->refresh.body), "\"accessToken\":\"");
    if (tok == NULL)
        return;
    tok += 15;
    snprintf(k->token, sizeof(k->token), "%.*s", (int)strcspn(tok, "\""), tok);
    char body[2048], u[256], auth[600];
    gen_body(body, sizeof(body), "hi [[sim:keepopen]]");
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/generateAssistantResponse", sim.port);
    snprintf(auth, sizeof(auth), "Bearer %s", k->token);
    k2a_url_t pu;
    k2a_url_parse(u, strlen(u), &pu);
    k2a_http_header_t h[2] = {{K2A_STRLIT("Content-Type"), K2A_STRLIT("application/json")},
                              {K2A_STRLIT("Authorization"), k2a_cstr(auth)}};
    uv_buf_t b = uv_buf_init(body, (unsigned)strlen(body));
    k2a_http_request_t req = {.url = &pu, .method = "POST", .headers = h, .nheaders = 2, .body = &b, .nbody = 1};
    k2a_http_response_t *resp;
    if ((k->rc = k2a_upstream_request(up, &req, &resp)) != 0)
        return;
    k->status = resp->status;
    k->reused = resp->reused;
    k2a_es_decoder_t dec;
    k2a_es_decoder_init(&dec, 0);
    while (!k->metered) { /* read up to the metering frame, never to the end of the body (it does not end) */
        const char *d;
        intptr_t n = k2a_upstream_read(resp, &d);
        if (n <= 0 || k2a_es_decoder_feed(&dec, d, (size_t)n, on_frame_metering, &k->metered) < 0)
            break;
    }
    k2a_es_decoder_dispose(&dec);
    k2a_upstream_get_stats(up, &k->before);
    k2a_upstream_release(resp);
    k2a_upstream_get_stats(up, &k->after);
    call("/generateAssistantResponse", k->token, gen_body(body, sizeof(body), "hello"), &k->again);
}

static void test_sim_keepopen_not_pooled(void **state)
{
    if (up == NULL)
        skip();
    keepopen_t k;
    memset(&k, 0, sizeof(k));
    ut_run(&loop, keepopen_fn, &k);
    assert_int_equal(k.refresh.status, 200);
    assert_int_equal(k.rc, 0);
    assert_int_equal(k.status, 200);
    assert_true(k.metered);
    assert_true(k.reused); /* the refresh's connection, back in the pool after its complete body */
    assert_int_equal(k.before.conns_open, 1);
    assert_int_equal(k.after.conns_open, 0); /* closed, */
    assert_int_equal(k.after.conns_idle, 0); /* not pooled */
    assert_int_equal(k.again.rc, 0);
    assert_int_equal(k.again.status, 200);
    assert_int_equal(k.again.body_rc, 0);
    assert_false(k.again.reused);
    k2a_buf_dispose(&k.refresh.body);
    k2a_buf_dispose(&k.again.body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sim_over_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sim_keepopen_not_pooled, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
