/*
 * Golden tests of the request side: every tests/vectors/convert/<case>.in.json (an Anthropic request body)
 * is decoded and built into a Kiro body, which must equal <case>.kiro.json structurally (both parsed, objects
 * compared as unordered key sets, so formatting does not matter). An optional <case>.params.json sets the
 * build inputs and may instead expect an error ("expect_error": "<K2A errname>", "expect_message":
 * "<substring>") or check the build result ("expect": {...}). Adding a case needs no code.
 * K2A_GOLDEN_UPDATE=1 rewrites the .kiro.json files from the current output (review the diff!).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <yajl/yajl_tree.h>
#include "core/errors.h"
#include "golden_support.h"
#include "resp_support.h"
#include "convert/anthropic_req.h"
#include "convert/kiro_req.h"
#include "sim/validate.h"

#define VECTOR_DIR GS_VECTOR_DIR

/* ---------- canonical comparison ---------- */

static bool num_eq(yajl_val a, yajl_val b)
{
    if (strcmp(YAJL_GET_NUMBER(a), YAJL_GET_NUMBER(b)) == 0)
        return true;
    return YAJL_IS_DOUBLE(a) && YAJL_IS_DOUBLE(b) && YAJL_GET_DOUBLE(a) == YAJL_GET_DOUBLE(b);
}

static void describe(yajl_val v, char *out, size_t cap)
{
    if (v == NULL)
        snprintf(out, cap, "(absent)");
    else if (YAJL_IS_STRING(v))
        snprintf(out, cap, "\"%.200s\"%s", v->u.string, strlen(v->u.string) > 200 ? "..." : "");
    else if (YAJL_IS_NUMBER(v))
        snprintf(out, cap, "%s", YAJL_GET_NUMBER(v));
    else if (YAJL_IS_OBJECT(v))
        snprintf(out, cap, "{object with %zu keys}", v->u.object.len);
    else if (YAJL_IS_ARRAY(v))
        snprintf(out, cap, "[array of %zu]", v->u.array.len);
    else if (YAJL_IS_TRUE(v))
        snprintf(out, cap, "true");
    else if (YAJL_IS_FALSE(v))
        snprintf(out, cap, "false");
    else
        snprintf(out, cap, "null");
}

/* Returns true when equal; otherwise writes the path of the first difference into diff. */
static bool json_equal(yajl_val a, yajl_val b, char *path, size_t plen, char *diff, size_t dcap)
{
    char da[300], db[300];
    if (a == NULL || b == NULL || a->type != b->type)
        goto Differ;
    switch (a->type) {
    case yajl_t_string:
        if (strcmp(a->u.string, b->u.string) != 0)
            goto Differ;
        return true;
    case yajl_t_number:
        if (!num_eq(a, b))
            goto Differ;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len) {
            /* name a key present on one side only */
            for (size_t i = 0; i < a->u.object.len; ++i) {
                const char *k = a->u.object.keys[i];
                size_t j;
                for (j = 0; j < b->u.object.len && strcmp(b->u.object.keys[j], k) != 0; ++j)
                    ;
                if (j == b->u.object.len) {
                    snprintf(diff, dcap, "%s.%s: only in the actual output", path, k);
                    return false;
                }
            }
            for (size_t i = 0; i < b->u.object.len; ++i) {
                const char *k = b->u.object.keys[i];
                size_t j;
                for (j = 0; j < a->u.object.len && strcmp(a->u.object.keys[j], k) != 0; ++j)
                    ;
                if (j == a->u.object.len) {
                    snprintf(diff, dcap, "%s.%s: only in the expected output", path, k);
                    return false;
                }
            }
            goto Differ;
        }
        for (size_t i = 0; i < a->u.object.len; ++i) {
            const char *k = a->u.object.keys[i];
            yajl_val bv = NULL;
            for (size_t j = 0; j < b->u.object.len; ++j)
                if (strcmp(b->u.object.keys[j], k) == 0)
                    bv = b->u.object.values[j];
            size_t n = strlen(path);
            snprintf(path + n, plen - n, ".%s", k);
            if (bv == NULL) {
                snprintf(diff, dcap, "%s: only in the actual output", path);
                return false;
            }
            if (!json_equal(a->u.object.values[i], bv, path, plen, diff, dcap))
                return false;
            path[n] = '\0';
        }
        return true;
    case yajl_t_array:
        for (size_t i = 0; i < a->u.array.len && i < b->u.array.len; ++i) {
            size_t n = strlen(path);
            snprintf(path + n, plen - n, "[%zu]", i);
            if (!json_equal(a->u.array.values[i], b->u.array.values[i], path, plen, diff, dcap))
                return false;
            path[n] = '\0';
        }
        if (a->u.array.len != b->u.array.len)
            goto Differ;
        return true;
    default:
        return true;
    }
Differ:
    describe(a, da, sizeof(da));
    describe(b, db, sizeof(db));
    snprintf(diff, dcap, "%s: actual %s, expected %s", path[0] != '\0' ? path : "(root)", da, db);
    return false;
}

/* ---------- params ---------- */

static const char *pstr(yajl_val params, const char *key)
{
    const char *p[] = {key, NULL};
    yajl_val v = params != NULL ? yajl_tree_get(params, p, yajl_t_string) : NULL;
    return v != NULL ? YAJL_GET_STRING(v) : NULL;
}

static bool pint(yajl_val params, const char *key, long long *out)
{
    const char *p[] = {key, NULL};
    yajl_val v = params != NULL ? yajl_tree_get(params, p, yajl_t_number) : NULL;
    if (v == NULL || !YAJL_IS_INTEGER(v))
        return false;
    *out = YAJL_GET_INTEGER(v);
    return true;
}

static k2a_str_t pstr_or(yajl_val params, const char *key, const char *dflt)
{
    const char *s = pstr(params, key);
    return k2a_cstr(s != NULL ? s : dflt);
}

/* Writes json pretty-printed (keys in the generated order), for K2A_GOLDEN_UPDATE. */
static void write_pretty(const char *path, const char *json, size_t len)
{
    char errbuf[128];
    char *text = gs_pretty(json, len, errbuf, sizeof(errbuf));
    assert_non_null(text);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    free(text);
}

/* ---------- one case ---------- */

static int run_case(const char *name)
{
    char path[1024], diff[1024], jpath[1024] = "";
    size_t inlen = 0, plen = 0, elen = 0;
    snprintf(path, sizeof(path), "%s/%s.in.json", VECTOR_DIR, name);
    char *in = gs_read_file(path, &inlen);
    if (in == NULL) {
        print_error("%s: cannot read %s\n", name, path);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s.params.json", VECTOR_DIR, name);
    char *ptext = gs_read_file(path, &plen), errbuf[256];
    yajl_val params = NULL;
    if (ptext != NULL && (params = yajl_tree_parse(ptext, errbuf, sizeof(errbuf))) == NULL) {
        print_error("%s: bad params: %s\n", name, errbuf);
        return 1;
    }

    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    k2a_convert_error_t err;
    k2a_ir_request_t req;
    k2a_model_map_t *map = NULL;
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    int failed = 0, rc;
    const char *expect_error = pstr(params, "expect_error"), *expect_message = pstr(params, "expect_message");

    const char *env = pstr(params, "model_map_env");
    if ((rc = k2a_model_map_create(env, env != NULL ? strlen(env) : 0, &map, &err)) != 0) {
        print_error("%s: model map: %s\n", name, err.message);
        failed = 1;
        goto Exit;
    }
    rc = k2a_anthropic_decode(in, inlen, NULL, &arena, &req, &err);
    k2a_kiro_build_result_t res;
    if (rc == 0) {
        k2a_kiro_build_params_t p;
        k2a_kiro_build_params_init(&p, map);
        long long v;
        uint64_t seed = 1;
        if (pint(params, "seed", &v))
            seed = (uint64_t)v;
        p.random = rs_random;
        p.random_ctx = &seed;
        p.now = pint(params, "now", &v) ? (time_t)v : (time_t)1767225600; /* 2026-01-01T00:00:00Z */
        p.client_ip = pstr_or(params, "client_ip", "127.0.0.1");
        p.user_agent = pstr_or(params, "user_agent", "golden-test");
        p.session_header = pstr_or(params, "session_header", "");
        p.conversation_header = pstr_or(params, "conversation_header", "");
        p.continuation_header = pstr_or(params, "continuation_header", "");
        p.profile_arn = pstr_or(params, "profile_arn", "");
        if (pint(params, "max_payload_bytes", &v))
            p.norm.max_payload_bytes = (size_t)v;
        if (pint(params, "max_tool_description", &v))
            p.norm.max_tool_description = (size_t)v;
        if (pint(params, "image_history_messages", &v))
            p.norm.image_history_messages = (size_t)v;
        rc = k2a_kiro_build_request(&req, &p, &arena, &out, &res, &err);
    }
    if (expect_error != NULL) {
        if (rc == 0 || strcmp(k2a_errname(rc), expect_error) != 0) {
            print_error("%s: expected error %s, got %s (%s)\n", name, expect_error, rc == 0 ? "success" : k2a_errname(rc),
                        err.message);
            failed = 1;
        } else if (expect_message != NULL && strstr(err.message, expect_message) == NULL) {
            print_error("%s: error message \"%s\" lacks \"%s\"\n", name, err.message, expect_message);
            failed = 1;
        }
        goto Exit;
    }
    if (rc != 0) {
        print_error("%s: failed with %s: %s\n", name, k2a_errname(rc), err.message);
        failed = 1;
        goto Exit;
    }
    if (res.payload_bytes != out.len) {
        print_error("%s: payload_bytes %zu != %zu\n", name, res.payload_bytes, out.len);
        failed = 1;
    }
    /* every body the gateway builds must pass kiro-sim's validator (Kiro's 400 rules): the fuzz targets found two golden
     * files that did not (a blank assistant turn without tool uses) */
    k2a_sim_validation_t val;
    /* current ids kiro-sim's default list may not know yet */
    static const char *const current[] = {"claude-opus-4.8", "claude-opus-5", "claude-sonnet-4.0"};
    k2a_sim_limits_t vlimits;
    k2a_sim_limits_init(&vlimits);
    vlimits.modern = true; /* Kiro as it is now: dotted model ids, additionalModelRequestFields */
    vlimits.extra_models = current;
    vlimits.nextra_models = sizeof(current) / sizeof(current[0]);
    if (k2a_sim_validate_request_ex(out.base, out.len, &vlimits, &val, NULL) != 200) {
        print_error("%s: the validator rejects the body: %s (%s)\n", name, val.rule, val.detail);
        failed = 1;
    }

    snprintf(path, sizeof(path), "%s/%s.kiro.json", VECTOR_DIR, name);
    if (getenv("K2A_GOLDEN_UPDATE") != NULL) {
        write_pretty(path, out.base, out.len);
        goto Exit;
    }
    char *expected = gs_read_file(path, &elen);
    if (expected == NULL) {
        print_error("%s: missing %s\n", name, path);
        failed = 1;
        goto Exit;
    }
    char *actual = strndup(out.base, out.len);
    yajl_val ea = yajl_tree_parse(actual, errbuf, sizeof(errbuf));
    if (ea == NULL) {
        print_error("%s: output is not valid JSON: %s\n", name, errbuf);
        failed = 1;
    }
    yajl_val ee = yajl_tree_parse(expected, errbuf, sizeof(errbuf));
    if (ee == NULL) {
        print_error("%s: expected file is not valid JSON: %s\n", name, errbuf);
        failed = 1;
    }
    if (ea != NULL && ee != NULL && !json_equal(ea, ee, jpath, sizeof(jpath), diff, sizeof(diff))) {
        print_error("%s: output differs at %s\n", name, diff);
        failed = 1;
    }
    yajl_tree_free(ea);
    yajl_tree_free(ee);
    free(actual);
    free(expected);

    /* result checks */
    const char *ex[] = {"expect", NULL};
    yajl_val expect = params != NULL ? yajl_tree_get(params, ex, yajl_t_object) : NULL;
    if (expect != NULL) {
        long long v;
        const char *tp[] = {"thinking", NULL};
        yajl_val th = yajl_tree_get(expect, tp, yajl_t_any);
        if (th != NULL && (YAJL_IS_TRUE(th) != res.thinking)) {
            print_error("%s: thinking %d, expected %d\n", name, res.thinking, YAJL_IS_TRUE(th));
            failed = 1;
        }
        if (pint(expect, "history_turns_dropped", &v) && (size_t)v != res.history_turns_dropped) {
            print_error("%s: history_turns_dropped %zu, expected %lld\n", name, res.history_turns_dropped, v);
            failed = 1;
        }
        const char *mid = pstr(expect, "model_id");
        if (mid != NULL && !k2a_str_eq_lit(res.kiro_model_id, mid)) {
            print_error("%s: model id %.*s, expected %s\n", name, (int)res.kiro_model_id.len, res.kiro_model_id.base, mid);
            failed = 1;
        }
        const char *pm = pstr(expect, "public_model");
        if (pm != NULL && !k2a_str_eq_lit(res.public_model, pm)) {
            print_error("%s: public model %.*s, expected %s\n", name, (int)res.public_model.len, res.public_model.base, pm);
            failed = 1;
        }
        const char *tn[] = {"tool_names", NULL};
        yajl_val names = yajl_tree_get(expect, tn, yajl_t_object);
        if (names != NULL) {
            if (names->u.object.len != res.tool_names.n) {
                print_error("%s: %zu shortened tool names, expected %zu\n", name, res.tool_names.n, names->u.object.len);
                failed = 1;
            }
            for (size_t i = 0; i < names->u.object.len; ++i) {
                k2a_str_t client = k2a_tool_names_to_client(&res.tool_names, k2a_cstr(names->u.object.keys[i]));
                if (!YAJL_IS_STRING(names->u.object.values[i]) ||
                    !k2a_str_eq_lit(client, YAJL_GET_STRING(names->u.object.values[i]))) {
                    print_error("%s: tool name %s maps back to %.*s\n", name, names->u.object.keys[i], (int)client.len,
                                client.base);
                    failed = 1;
                }
            }
        }
    }

Exit:
    k2a_buf_dispose(&out);
    k2a_arena_dispose(&arena);
    k2a_model_map_destroy(map);
    yajl_tree_free(params);
    free(ptext);
    free(in);
    return failed;
}

/* openai_<case>.in.json and responses_<case>.in.json are OpenAI request bodies, run by their own golden runners */
static bool is_anthropic_case(const char *fname, void *ctx)
{
    (void)ctx;
    return strncmp(fname, "openai_", 7) != 0 && strncmp(fname, "responses_", 10) != 0;
}

static int run_one(const char *name, void *ctx)
{
    (void)ctx;
    return run_case(name);
}

static void test_golden_cases(void **state)
{
    setenv("TZ", "UTC", 1);
    tzset();
    size_t n = 0;
    int failures = gs_run_cases(is_anthropic_case, run_one, NULL, "golden", &n);
    assert_true(n >= 30);
    assert_int_equal(failures, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
