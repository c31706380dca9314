/*
 * Core tests: the error table, bounded buffers and JSON escaping, the arena, configuration parsing
 * (good and bad values, files, priorities), and logging (levels, JSON lines, secrets masked on every
 * path).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include "core/arena.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/rand.h"
#include "core/str.h"
#include "core/testhook.h"
#include "core/utf8.h"

static void test_error_table(void **state)
{
    assert_string_equal(k2a_strerror(0), "success");
    assert_string_equal(k2a_errname(K2A_ENOMEM), "NOMEM");
    assert_string_equal(k2a_strerror(K2A_ENOMEM), "out of memory");
    assert_string_equal(k2a_errname(K2A_EES_PRELUDE_CRC), "ES_PRELUDE_CRC");
    assert_string_equal(k2a_strerror(-100000), "unknown error");
    assert_string_equal(k2a_errname(12), "UNKNOWN");
    /* every code is negative, distinct and has a non-empty message */
    for (int i = 1; i <= K2A__EIDX_MAX; ++i) {
        assert_true(strlen(k2a_strerror(-i)) > 0);
        assert_string_not_equal(k2a_errname(-i), "UNKNOWN");
        for (int j = 1; j < i; ++j)
            assert_string_not_equal(k2a_errname(-i), k2a_errname(-j));
    }
}

static void test_buf_limits_and_escaping(void **state)
{
    k2a_buf_t b = K2A_BUF_INIT(10);
    assert_int_equal(k2a_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(k2a_buf_append(&b, "x", 1), K2A_ETOOBIG);
    assert_int_equal(b.len, 10);
    k2a_buf_consume(&b, 4);
    assert_memory_equal(b.base, "456789", 6);
    assert_int_equal(k2a_buf_appendf(&b, "%d", 1234), 0);
    assert_int_equal(k2a_buf_appendf(&b, "%d", 5), K2A_ETOOBIG);
    k2a_buf_dispose(&b);

    k2a_buf_t j = K2A_BUF_INIT(0);
    const char in[] = "a\"b\\c\n\t\x01 \xe4\xbd\xa0 \xff end";
    assert_int_equal(k2a_buf_append_json_escaped(&j, in, sizeof(in) - 1), 0);
    assert_string_equal(k2a_buf_cstr(&j), "a\\\"b\\\\c\\n\\t\\u0001 \xe4\xbd\xa0 \xef\xbf\xbd end");
    k2a_buf_dispose(&j);

    /* a truncated UTF-8 sequence at the end is replaced, not copied */
    k2a_buf_t t = K2A_BUF_INIT(0);
    assert_int_equal(k2a_buf_append_json_escaped(&t, "ab\xe4\xbd", 4), 0);
    assert_string_equal(k2a_buf_cstr(&t), "ab\xef\xbf\xbd\xef\xbf\xbd");
    k2a_buf_dispose(&t);

    /* the escaper skips 8 plain bytes at a time: every special input at every offset around those steps */
    static const struct {
        const char *in, *out;
    } sp[] = {{"\"", "\\\""},
              {"\\", "\\\\"},
              {"\n", "\\n"},
              {"\x01", "\\u0001"},
              {"\x1f", "\\u001f"},
              {"\x7f", "\x7f"},
              {"\xff", "\xef\xbf\xbd"},
              {"\xc3\xa9", "\xc3\xa9"},
              {"\xe4\xbd\xa0", "\xe4\xbd\xa0"},
              {"\xc3", "\xef\xbf\xbd"},
              {" ", " "},
              {"~", "~"}};
    for (size_t k = 0; k < sizeof(sp) / sizeof(sp[0]); ++k) {
        for (size_t at = 0; at < 26; ++at) {
            char in2[64], want[96];
            size_t il = strlen(sp[k].in);
            memset(in2, 'a', at);
            memcpy(in2 + at, sp[k].in, il);
            memset(in2 + at + il, 'b', 9);
            memset(want, 'a', at);
            strcpy(want + at, sp[k].out);
            strcat(want, "bbbbbbbbb");
            k2a_buf_t e = K2A_BUF_INIT(0);
            assert_int_equal(k2a_buf_append_json_escaped(&e, in2, at + il + 9), 0);
            if (strcmp(k2a_buf_cstr(&e), want) != 0)
                fail_msg("input %zu at %zu: got %s, want %s", k, at, k2a_buf_cstr(&e), want);
            k2a_buf_dispose(&e);
        }
    }
}

/* A buffer grows by one of two paths: less than half full, into a new block with only the bytes in use copied (a stream's
 * stage reserved ahead of a read); otherwise by realloc. Either keeps every byte, and the room asked for is there. */
static void test_buf_growth_keeps_bytes(void **state)
{
    (void)state;
    for (size_t used = 0; used <= 512; used += 37) {
        k2a_buf_t b = K2A_BUF_INIT(0);
        assert_int_equal(k2a_buf_reserve(&b, 511), 0);
        assert_int_equal(b.cap, 512);
        for (size_t i = 0; i < used && i < 511; ++i)
            assert_int_equal(k2a_buf_append(&b, (char[]){(char)('a' + i % 26)}, 1), 0);
        size_t len = b.len;
        assert_int_equal(k2a_buf_reserve(&b, 9000), 0);
        assert_true(b.cap - b.len > 9000);
        assert_int_equal(b.len, len);
        for (size_t i = 0; i < len; ++i)
            assert_int_equal(b.base[i], (char)('a' + i % 26));
        memset(b.base + b.len, 'z', 9000); /* the room is writable (ASan checks the block's size) */
        b.len += 9000;
        assert_int_equal(k2a_buf_append(&b, "!", 1), 0);
        assert_int_equal(b.base[len + 9000], '!');
        k2a_buf_dispose(&b);
    }
}

static void test_arena(void **state)
{
    k2a_arena_t a;
    k2a_arena_init(&a, 64 * 1024);
    char *p = k2a_arena_strndup(&a, "hello", 5);
    assert_string_equal(p, "hello");
    void *big = k2a_arena_alloc(&a, 40 * 1024);
    assert_non_null(big);
    assert_true(((uintptr_t)big & 15) == 0);
    assert_null(k2a_arena_alloc(&a, 40 * 1024)); /* past the arena's limit */
    assert_string_equal(p, "hello");             /* earlier allocations are untouched */
    size_t cap = 0;
    int *arr = NULL;
    for (int i = 0; i < 100; ++i) {
        if ((size_t)i == cap)
            arr = k2a_arena_grow(&a, arr, sizeof(int), i, &cap);
        assert_non_null(arr);
        arr[i] = i;
    }
    for (int i = 0; i < 100; ++i)
        assert_int_equal(arr[i], i);
    k2a_arena_dispose(&a);
}

static void test_config_defaults_and_values(void **state)
{
    k2a_config_t c;
    char err[256];
    k2a_config_defaults(&c);
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.host, "0.0.0.0");
    assert_int_equal(c.max_tool_description_length, 10000);
    assert_int_equal(c.max_body_bytes, 32 * 1024 * 1024);
    assert_int_equal(c.max_payload_bytes, 600000);
    assert_int_equal(c.first_byte_timeout_ms, 120000);
    assert_int_equal(c.idle_timeout_ms, 300000);
    assert_string_equal(c.pool_strategy, "sequential");
    assert_true(c.log_console);
    assert_false(c.tls_insecure);

    assert_int_equal(k2a_config_set(&c, "PORT", "9000", err, sizeof(err)), 0);
    assert_int_equal(c.port, 9000);
    assert_int_equal(k2a_config_set(&c, "PORT", "70000", err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "PORT"));
    assert_int_equal(k2a_config_set(&c, "PORT", "12x", err, sizeof(err)), K2A_ECONFIG);
    assert_int_equal(k2a_config_set(&c, "PORT", "", err, sizeof(err)), K2A_ECONFIG);
    assert_int_equal(k2a_config_set(&c, "LOG_CONSOLE", "no", err, sizeof(err)), 0);
    assert_false(c.log_console);
    assert_int_equal(k2a_config_set(&c, "LOG_CONSOLE", "perhaps", err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "LOG_CONSOLE"));
    assert_int_equal(k2a_config_set(&c, "KIRO_POOL_STRATEGY", "Round_Robin", err, sizeof(err)), 0);
    assert_string_equal(c.pool_strategy, "round_robin");
    assert_int_equal(k2a_config_set(&c, "KIRO_POOL_STRATEGY", "fastest", err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "sequential|round_robin|balanced"));
    assert_int_equal(k2a_config_set(&c, "NOT_OURS", "1", err, sizeof(err)), K2A_ENOTFOUND);

    assert_int_equal(k2a_config_validate(&c, err, sizeof(err)), 0);
    assert_int_equal(k2a_config_set(&c, "KIRO_TLS_PORT", "8443", err, sizeof(err)), 0);
    assert_int_equal(k2a_config_validate(&c, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "KIRO_TLS_PORT"));
    assert_int_equal(k2a_config_set(&c, "KIRO_TLS_PORT", "0", err, sizeof(err)), 0);
    assert_int_equal(k2a_config_set(&c, "KIRO_UPSTREAM_PROXY", "socks5://x:1", err, sizeof(err)), 0);
    assert_int_equal(k2a_config_validate(&c, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "KIRO_UPSTREAM_PROXY"));
    k2a_config_dispose(&c);
}

static char *write_tmp(const char *content)
{
    static char path[64];
    strcpy(path, "/tmp/k2a-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

static void test_config_files_and_env(void **state)
{
    k2a_config_t c;
    char err[256];
    k2a_config_defaults(&c);
    char *path = write_tmp("# a comment\n\nexport PORT=1234\nKIRO_CLIENT_TOKEN=\"quoted value\"\n"
                           "LOG_FILE='/tmp/x.log'\nKIRO_HOST=127.0.0.1 # trailing comment\nOTHER_TOOL=whatever\n");
    assert_int_equal(k2a_config_load_file(&c, path, false, err, sizeof(err)), 0);
    assert_int_equal(c.port, 1234);
    assert_string_equal(c.client_token, "quoted value");
    assert_string_equal(c.log_file, "/tmp/x.log");
    assert_string_equal(c.host, "127.0.0.1");
    unlink(path);

    path = write_tmp("PORT=1\nnot a line\n");
    assert_int_equal(k2a_config_load_file(&c, path, false, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, ":2:"));
    unlink(path);
    path = write_tmp("KIRO_IDLE_TIMEOUT_MS=soon\n");
    assert_int_equal(k2a_config_load_file(&c, path, false, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "KIRO_IDLE_TIMEOUT_MS"));
    unlink(path);

    assert_int_equal(k2a_config_load_file(&c, "/nonexistent/.env", true, err, sizeof(err)), 0);
    assert_int_equal(k2a_config_load_file(&c, "/nonexistent/.env", false, err, sizeof(err)), K2A_ECONFIG);

    setenv("PORT", "4321", 1);
    setenv("no_proxy", "localhost,.internal", 1);
    assert_int_equal(k2a_config_load_env(&c, err, sizeof(err)), 0);
    assert_int_equal(c.port, 4321);
    assert_string_equal(c.no_proxy, "localhost,.internal");
    setenv("MAX_TOOL_DESCRIPTION_LENGTH", "huge", 1);
    assert_int_equal(k2a_config_load_env(&c, err, sizeof(err)), K2A_ECONFIG);
    assert_non_null(strstr(err, "MAX_TOOL_DESCRIPTION_LENGTH"));
    unsetenv("MAX_TOOL_DESCRIPTION_LENGTH");
    unsetenv("PORT");
    unsetenv("no_proxy");
    k2a_config_dispose(&c);
}

static char *read_all(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, fp);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

static void test_log_masks_secrets(void **state)
{
    char path[] = "/tmp/k2a-log-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    const char *refresh = "aorAAAAAGsecretRefreshToken1234WXYZ";
    const char *access = "aoaAAAAAGaccessTokenZZZZ9876";
    k2a_log_add_secret(refresh, strlen(refresh));
    k2a_log_add_secret(access, strlen(access));
    k2a_log_add_secret("abc", 3); /* too short to be a secret: ignored, would mangle ordinary words */

    assert_int_equal(k2a_log_configure(K2A_LOG_INFO, K2A_LOG_TEXT, false, path), 0);
    k2a_debug("debug lines are filtered %s", refresh);
    k2a_info("refreshing with %s then %s and again %s", refresh, access, refresh);
    k2a_log_field_t fields[] = {K2A_LF_STR("token", access), K2A_LF_NUM("attempt", 2)};
    k2a_log_fields(K2A_LOG_WARN, "req_1", fields, 2, "field check abc");
    char *text = read_all(path);
    assert_null(strstr(text, refresh));
    assert_null(strstr(text, access));
    assert_null(strstr(text, "debug lines"));
    assert_non_null(strstr(text, "****WXYZ then ****9876 and again ****WXYZ"));
    assert_non_null(strstr(text, "[req_1] field check abc token=****9876 attempt=2"));

    assert_int_equal(k2a_log_configure(K2A_LOG_DEBUG, K2A_LOG_JSON, false, path), 0);
    truncate(path, 0);
    k2a_log_fields(K2A_LOG_ERROR, "req_2", fields, 2, "quote \" and %s", refresh);
    text = read_all(path);
    assert_null(strstr(text, refresh));
    assert_non_null(strstr(text, "\"level\":\"ERROR\",\"message\":\"quote \\\" and ****WXYZ\",\"request_id\":\"req_2\""));
    assert_non_null(strstr(text, "\"token\":\"****9876\",\"attempt\":2}\n"));
    assert_non_null(strstr(text, "{\"timestamp\":\""));

    /* a removed secret (a rotated-away token) is no longer masked; the remaining one still is */
    k2a_log_remove_secret(access, strlen(access));
    truncate(path, 0);
    k2a_info("%s %s", access, refresh);
    text = read_all(path);
    assert_non_null(strstr(text, access));
    assert_null(strstr(text, refresh));

    char mask[16];
    k2a_mask_secret("0123456789", 10, mask, sizeof(mask));
    assert_string_equal(mask, "****6789");
    k2a_mask_secret("short", 5, mask, sizeof(mask));
    assert_string_equal(mask, "****");
    k2a_log_close();
    unlink(path);
}

/* A client-supplied string (a model name, a path) with CR/LF or an ANSI escape cannot forge a text log line or drive the
 * operator's terminal: one record is one line, control bytes escaped. */
static void test_log_text_escapes_control_bytes(void **state)
{
    char path[] = "/tmp/k2a-log-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    assert_int_equal(k2a_log_configure(K2A_LOG_INFO, K2A_LOG_TEXT, false, path), 0);
    const char *model = "claude\r\n2026-01-01T00:00:00.000Z ERROR forged\x1b[31mred\x7f\\x";
    k2a_log_field_t fields[] = {K2A_LF_STR("path", "/v1/\nmessages")};
    k2a_log_fields(K2A_LOG_INFO, "req\n1", fields, 1, "model %s ünïcode", model);
    char *text = read_all(path);
    assert_int_equal(strchr(text, '\n') - text, (ptrdiff_t)strlen(text) - 1); /* exactly one line */
    assert_null(strchr(text, '\r'));
    assert_null(strchr(text, 0x1b));
    assert_non_null(
        strstr(text, "[req\\n1] model claude\\r\\n2026-01-01T00:00:00.000Z ERROR forged\\x1b[31mred\\x7f\\\\x ünïcode"));
    assert_non_null(strstr(text, "path=/v1/\\nmessages"));
    k2a_log_close();
    unlink(path);
}

static void test_json_text_depth_and_url_encoding(void **state)
{
    bool comment;
    assert_int_equal(k2a_json_text_depth("{\"a\":[1,{\"b\":\"[[[{\\\"\"}]}", 20, 10, &comment), 3);
    assert_false(comment);
    assert_int_equal(k2a_json_text_depth("[[[[[[", 6, 3, NULL), 4); /* stops one past the limit */
    assert_int_equal(k2a_json_text_depth("{} // x", 7, 8, &comment), 1);
    assert_true(comment);
    assert_int_equal(k2a_json_text_depth("\"/\"", 3, 8, &comment), 0);
    assert_false(comment); /* inside a string */
    k2a_buf_t b;
    k2a_buf_init(&b, 0);
    assert_int_equal(k2a_buf_append_url_encoded(&b, "arn:aws:x/Y_z-1.~ é"), 0);
    assert_string_equal(k2a_buf_cstr(&b), "arn%3Aaws%3Ax%2FY_z-1.~%20%C3%A9");
    k2a_buf_dispose(&b);
}

static void test_log_levels_parse(void **state)
{
    k2a_log_level_t l;
    assert_int_equal(k2a_log_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, K2A_LOG_DEBUG);
    assert_int_equal(k2a_log_parse_level("warning", &l), 0);
    assert_int_equal(l, K2A_LOG_WARN);
    assert_int_equal(k2a_log_parse_level("fatal", &l), K2A_EINVAL);
}

static void test_rand_ids(void **state)
{
    char u[37], v[37];
    k2a_rand_uuid4(u);
    k2a_rand_uuid4(v);
    assert_int_equal(strlen(u), 36);
    assert_string_not_equal(u, v);
    assert_int_equal(u[14], '4');
    assert_true(strchr("89ab", u[19]) != NULL);
    k2a_rand_seed(42);
    uint64_t a = k2a_rand_u64();
    k2a_rand_seed(42);
    assert_true(a == k2a_rand_u64());
    for (int i = 0; i < 1000; ++i)
        assert_true(k2a_rand_below(7) < 7);
}

/* The one UTF-8 validator: lengths, the malformed forms RFC 3629 excludes, and incomplete tails. */
static void test_utf8_validator(void **state)
{
    static const struct {
        const char *s;
        size_t n;
        int want;
    } seqs[] = {
        {"a", 1, 1},
        {"\xc3\xa9", 2, 2},         /* é */
        {"\xe2\x82\xac", 3, 3},     /* € */
        {"\xf0\x9f\x98\x80", 4, 4}, /* 😀 */
        {"\xf4\x8f\xbf\xbf", 4, 4}, /* U+10FFFF */
        {"\xc0\xaf", 2, 0},         /* overlong */
        {"\xc1\xbf", 2, 0},         /* overlong */
        {"\xe0\x80\xaf", 3, 0},     /* overlong */
        {"\xf0\x80\x80\xaf", 4, 0}, /* overlong */
        {"\xed\xa0\x80", 3, 0},     /* surrogate U+D800 */
        {"\xf4\x90\x80\x80", 4, 0}, /* above U+10FFFF */
        {"\xf5\x80\x80\x80", 4, 0}, /* no such lead byte */
        {"\x80", 1, 0},             /* lone continuation */
        {"\xc3\x28", 2, 0},         /* bad continuation */
        {"\xe2\x82", 2, -1},        /* incomplete */
        {"\xf0\x9f\x98", 3, -1},    /* incomplete */
        {"\xf0", 1, -1},            /* incomplete */
        {"\xed\xa0", 2, 0},         /* a surrogate is known bad before its end */
    };
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); ++i) {
        int got = k2a_utf8_seq((const unsigned char *)seqs[i].s, seqs[i].n);
        if (got != seqs[i].want)
            fail_msg("case %zu: got %d, want %d", i, got, seqs[i].want);
    }
    assert_true(k2a_utf8_valid("plain ascii, caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 27));
    assert_true(k2a_utf8_valid("", 0));
    assert_false(k2a_utf8_valid("ok \xe2\x82", 5)); /* cut in a sequence */
    assert_false(k2a_utf8_valid("\xed\xbf\xbf", 3));
}

/* The one splitmix64: the published sequence for seed 0 (Vigna's reference implementation). */
/* k2a_buf_append_i64 writes what printf's %lld writes, across the range and next to a bounded buffer's end. */
static void test_buf_append_i64(void **state)
{
    (void)state;
    const long long vals[] = {0, 1, -1, 9, 10, 99, 100, 12345, -12345, 1000000007LL, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); ++i) {
        char want[32];
        snprintf(want, sizeof(want), "%lld", vals[i]);
        k2a_buf_t b = K2A_BUF_INIT(0);
        assert_int_equal(k2a_buf_append(&b, "x", 1), 0);
        assert_int_equal(k2a_buf_append_i64(&b, vals[i]), 0);
        assert_int_equal(b.len, 1 + strlen(want));
        assert_memory_equal(b.base + 1, want, strlen(want));
        k2a_buf_dispose(&b);
        if (strlen(want) > 1) { /* a max of 0 means unbounded */
            k2a_buf_t small = K2A_BUF_INIT(strlen(want) - 1);
            assert_int_equal(k2a_buf_append_i64(&small, vals[i]), K2A_ETOOBIG);
            k2a_buf_dispose(&small);
        }
    }
}

/* k2a_ipv4_text writes what inet_ntop writes (every byte value in every position); k2a_copy_cstr what snprintf "%s" does. */
static void test_ipv4_text_and_copy_cstr(void **state)
{
    (void)state;
    for (unsigned v = 0; v < 256; ++v)
        for (int pos = 0; pos < 4; ++pos) {
            unsigned char b[4] = {10, 0, 200, 7};
            b[pos] = (unsigned char)v;
            char want[INET_ADDRSTRLEN], got[16];
            assert_non_null(inet_ntop(AF_INET, b, want, sizeof(want)));
            memset(got, 'x', sizeof(got));
            k2a_ipv4_text(got, b);
            assert_string_equal(got, want);
        }
    const char *srcs[] = {"", "a", "abcdefg", "abcdefgh", "abcdefghijklmnop"};
    for (size_t i = 0; i < sizeof(srcs) / sizeof(srcs[0]); ++i)
        for (size_t cap = 1; cap < 12; ++cap) {
            char want[16], got[16];
            memset(want, 'y', sizeof(want));
            memset(got, 'y', sizeof(got));
            snprintf(want, cap, "%s", srcs[i]);
            k2a_copy_cstr(got, cap, srcs[i]);
            assert_memory_equal(got, want, sizeof(got));
        }
}

static void test_splitmix64(void **state)
{
    uint64_t s = 0;
    assert_true(k2a_splitmix64(&s) == 0xe220a8397b1dcdafULL);
    assert_true(k2a_splitmix64(&s) == 0x6e789e6aa1b965f4ULL);
    assert_true(k2a_splitmix64(&s) == 0x06c45d188009454fULL);
}

/* K2A_TEST_FAIL is not set in the unit tests: no failure point is armed, and an empty name never is. */
static void test_testhook_inert(void **state)
{
    assert_false(k2a_test_fail("exchange_drain"));
    assert_false(k2a_test_fail(""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table),
        cmocka_unit_test(test_buf_limits_and_escaping),
        cmocka_unit_test(test_buf_growth_keeps_bytes),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_config_defaults_and_values),
        cmocka_unit_test(test_config_files_and_env),
        cmocka_unit_test(test_log_masks_secrets),
        cmocka_unit_test(test_log_text_escapes_control_bytes),
        cmocka_unit_test(test_json_text_depth_and_url_encoding),
        cmocka_unit_test(test_log_levels_parse),
        cmocka_unit_test(test_rand_ids),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_splitmix64),
        cmocka_unit_test(test_buf_append_i64),
        cmocka_unit_test(test_ipv4_text_and_copy_cstr),
        cmocka_unit_test(test_testhook_inert),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
