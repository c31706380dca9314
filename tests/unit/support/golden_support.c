/*
 * Test helpers for the golden vector runners (see golden_support.h).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>
#include "convert/kiro_req.h"
#include "core/buf.h"
#include "core/errors.h"
#include "golden_support.h"
#include "resp_support.h"

char *gs_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b != NULL && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b != NULL) {
        b[n] = '\0';
        *len = (size_t)n;
    }
    return b;
}

char *gs_pretty(const char *json, size_t len, char *errbuf, size_t errlen)
{
    char *copy = strndup(json, len);
    yajl_val v = yajl_tree_parse(copy, errbuf, errlen);
    free(copy);
    if (v == NULL)
        return NULL;
    yajl_gen g = yajl_gen_alloc(NULL);
    yajl_gen_config(g, yajl_gen_beautify, 1);
    yajl_gen_config(g, yajl_gen_indent_string, " ");
    rs_json_emit(g, v);
    const unsigned char *buf;
    size_t blen;
    yajl_gen_get_buf(g, &buf, &blen);
    char *s = strndup((const char *)buf, blen);
    yajl_gen_free(g);
    yajl_tree_free(v);
    return s;
}

void gs_first_difference(const char *a, const char *b, char *out, size_t cap)
{
    int line = 1;
    const char *la = a, *lb = b;
    while (*a != '\0' && *a == *b) {
        if (*a == '\n') {
            ++line;
            la = a + 1;
            lb = b + 1;
        }
        ++a;
        ++b;
    }
    const char *ea = strchr(la, '\n'), *eb = strchr(lb, '\n');
    snprintf(out, cap, "line %d\n  actual:   %.*s\n  expected: %.*s", line, (int)(ea != NULL ? ea - la : (long)strlen(la)), la,
             (int)(eb != NULL ? eb - lb : (long)strlen(lb)), lb);
}

void gs_compare_response_golden(const char *name, const char *ext, const k2a_buf_t *got)
{
    char path[512];
    snprintf(path, sizeof(path), K2A_SOURCE_DIR "/tests/vectors/response/%s.%s", name, ext);
    const char *bless = getenv("K2A_BLESS");
    if (bless != NULL && strcmp(bless, "1") == 0) {
        rs_write_file(path, got->base, got->len);
        return;
    }
    size_t len;
    char *want = rs_read_file(path, &len);
    if (len != got->len || memcmp(want, got->base, len) != 0)
        fail_msg("%s differs from the golden file\n got: %.*s\nwant: %s", path, (int)got->len, got->base, want);
    free(want);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int gs_run_cases(bool (*want)(const char *fname, void *ctx), int (*run)(const char *name, void *ctx), void *ctx, const char *label,
                 size_t *ncases)
{
    DIR *d = opendir(GS_VECTOR_DIR);
    assert_non_null(d);
    char *names[1024];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 1024) {
        size_t l = strlen(e->d_name);
        if (l > 8 && strcmp(e->d_name + l - 8, ".in.json") == 0 && want(e->d_name, ctx))
            names[n++] = strndup(e->d_name, l - 8);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_str);
    int failures = 0;
    for (size_t i = 0; i < n; ++i) {
        int f = run(names[i], ctx);
        print_message("[%s] %s\n", f ? "FAIL" : " ok ", names[i]);
        failures += f;
        free(names[i]);
    }
    print_message("%zu %s cases, %d failed\n", n, label, failures);
    *ncases = n;
    return failures;
}

int gs_run_request_case(const char *name, gs_decode_fn decode, const k2a_model_map_t *map, char **actual_out)
{
    char path[1024], errbuf[256];
    size_t inlen = 0, elen = 0;
    int failed = 0, rc;
    *actual_out = NULL;
    snprintf(path, sizeof(path), "%s/%s.in.json", GS_VECTOR_DIR, name);
    char *in = gs_read_file(path, &inlen);
    if (in == NULL) {
        print_error("%s: cannot read %s\n", name, path);
        return 1;
    }
    k2a_arena_t arena;
    k2a_arena_init(&arena, 0);
    k2a_convert_error_t err;
    k2a_ir_request_t req;
    k2a_buf_t out;
    k2a_buf_init(&out, 0);
    char *actual = NULL, *expected = NULL, *want = NULL;
    if ((rc = decode(in, inlen, NULL, &arena, &req, &err)) != 0) {
        print_error("%s: decode failed with %s: %s\n", name, k2a_errname(rc), err.message);
        failed = 1;
        goto Exit;
    }
    k2a_kiro_build_params_t p;
    k2a_kiro_build_params_init(&p, map);
    uint64_t seed = 1;
    p.random = rs_random;
    p.random_ctx = &seed;
    p.now = (time_t)1767225600; /* 2026-01-01T00:00:00Z */
    p.client_ip = K2A_STRLIT("127.0.0.1");
    p.user_agent = K2A_STRLIT("golden-test");
    k2a_kiro_build_result_t res;
    if ((rc = k2a_kiro_build_request(&req, &p, &arena, &out, &res, &err)) != 0) {
        print_error("%s: build failed with %s: %s\n", name, k2a_errname(rc), err.message);
        failed = 1;
        goto Exit;
    }
    if ((actual = gs_pretty(out.base, out.len, errbuf, sizeof(errbuf))) == NULL) {
        print_error("%s: output is not valid JSON: %s\n", name, errbuf);
        failed = 1;
        goto Exit;
    }
    snprintf(path, sizeof(path), "%s/%s.kiro.json", GS_VECTOR_DIR, name);
    if (getenv("K2A_GOLDEN_UPDATE") != NULL) {
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(actual, 1, strlen(actual), f);
        fclose(f);
        goto Exit;
    }
    if ((expected = gs_read_file(path, &elen)) == NULL) {
        print_error("%s: missing %s\n", name, path);
        failed = 1;
        goto Exit;
    }
    if ((want = gs_pretty(expected, elen, errbuf, sizeof(errbuf))) == NULL) {
        print_error("%s: %s is not valid JSON: %s\n", name, path, errbuf);
        failed = 1;
        goto Exit;
    }
    if (strcmp(actual, want) != 0) {
        char diff[2048];
        gs_first_difference(actual, want, diff, sizeof(diff));
        print_error("%s: output differs at %s\n", name, diff);
        failed = 1;
    }
Exit:
    *actual_out = actual;
    free(want);
    free(expected);
    k2a_buf_dispose(&out);
    k2a_arena_dispose(&arena);
    free(in);
    return failed;
}

typedef struct st_request_ctx_t {
    const char *prefix;
    gs_decode_fn decode;
    gs_check_fn check;
    const k2a_model_map_t *map;
} request_ctx_t;

static bool want_prefix(const char *fname, void *arg)
{
    const request_ctx_t *c = arg;
    return strncmp(fname, c->prefix, strlen(c->prefix)) == 0;
}

static int run_request(const char *name, void *arg)
{
    const request_ctx_t *c = arg;
    char *actual;
    int failed = gs_run_request_case(name, c->decode, c->map, &actual);
    if (actual != NULL && c->check != NULL && getenv("K2A_GOLDEN_UPDATE") == NULL)
        failed |= c->check(name, actual);
    free(actual);
    return failed;
}

void gs_request_golden_test(const char *prefix, const char *label, gs_decode_fn decode, gs_check_fn check)
{
    setenv("TZ", "UTC", 1);
    tzset();
    k2a_model_map_t *map = NULL;
    k2a_convert_error_t err;
    assert_int_equal(k2a_model_map_create(NULL, 0, &map, &err), 0);
    request_ctx_t c = {prefix, decode, check, map};
    size_t n = 0;
    int failures = gs_run_cases(want_prefix, run_request, &c, label, &n);
    k2a_model_map_destroy(map);
    assert_true(n >= 15);
    assert_int_equal(failures, 0);
}
