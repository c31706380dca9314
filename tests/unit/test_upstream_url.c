/*
 * Pure parts of the upstream client: URL parsing (schemes, ports, IPv6 literals, userinfo, rejects),
 * NO_PROXY matching (exact, suffix, leading dot, "*", ports, case), configuration defaults and the
 * environment loader, outcome names, and creation failures on bad configuration.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "core/errors.h"
#include "upstream/upstream.h"

static void assert_str(k2a_str_t s, const char *expected)
{
    assert_int_equal(s.len, strlen(expected));
    assert_memory_equal(s.base, expected, s.len);
}

static int parse(const char *u, k2a_url_t *out)
{
    return k2a_url_parse(u, strlen(u), out);
}

static void test_url_ok(void **state)
{
    k2a_url_t u;
    assert_int_equal(parse("https://codewhisperer.us-east-1.amazonaws.com/generateAssistantResponse", &u), 0);
    assert_true(u.tls);
    assert_str(u.scheme, "https");
    assert_str(u.host, "codewhisperer.us-east-1.amazonaws.com");
    assert_int_equal(u.port, 443);
    assert_str(u.path, "/generateAssistantResponse");
    assert_null(u.userinfo.base);

    assert_int_equal(parse("http://127.0.0.1:8080", &u), 0);
    assert_false(u.tls);
    assert_int_equal(u.port, 8080);
    assert_str(u.path, "/");

    assert_int_equal(parse("HTTPS://[::1]:9443/a/b?x=1&y=2#frag", &u), 0);
    assert_true(u.tls);
    assert_str(u.host, "::1");
    assert_int_equal(u.port, 9443);
    assert_str(u.path, "/a/b?x=1&y=2");

    assert_int_equal(parse("http://user:p%40ss@proxy.local:3128", &u), 0);
    assert_str(u.userinfo, "user:p%40ss");
    assert_str(u.host, "proxy.local");
    assert_int_equal(u.port, 3128);

    assert_int_equal(parse("https://[2001:db8::1]/", &u), 0);
    assert_str(u.host, "2001:db8::1");
    assert_int_equal(u.port, 443);
}

static void test_url_rejects(void **state)
{
    const char *bad[] = {"ftp://x/",          "https://",        "https:///path",
                         "https://:443/",     "https://host:0/", "https://host:65536/",
                         "https://host:12a/", "https://host:/",  "https://ho st/",
                         "https://host/a b",  "https://[::1/",   "https://[zz]/",
                         "https://h?q",       "https://[::1]x/", "https://host:123456/",
                         "//host/",           "https://a\r\nb/"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        k2a_url_t u;
        if (parse(bad[i], &u) != K2A_EBAD_URL)
            fail_msg("accepted %s", bad[i]);
    }
    char longhost[300] = "https://";
    memset(longhost + 8, 'a', 260);
    longhost[268] = '\0';
    k2a_url_t u;
    assert_int_equal(parse(longhost, &u), K2A_EBAD_URL);
}

static void test_no_proxy(void **state)
{
    k2a_str_t h = K2A_STRLIT("codewhisperer.us-east-1.amazonaws.com");
    assert_false(k2a_no_proxy_match(NULL, h));
    assert_false(k2a_no_proxy_match("", h));
    assert_true(k2a_no_proxy_match("*", h));
    assert_true(k2a_no_proxy_match("amazonaws.com", h));
    assert_true(k2a_no_proxy_match(".amazonaws.com", h));
    assert_true(k2a_no_proxy_match("*.amazonaws.com", h));
    assert_true(k2a_no_proxy_match("localhost, AMAZONAWS.COM", h));
    assert_true(k2a_no_proxy_match("example.org,amazonaws.com:443", h));
    assert_true(k2a_no_proxy_match("codewhisperer.us-east-1.amazonaws.com", h));
    assert_false(k2a_no_proxy_match("zonaws.com", h)); /* a suffix must start at a label */
    assert_false(k2a_no_proxy_match("example.org,,  ", h));
    assert_false(k2a_no_proxy_match("us-east-1.amazonaws.com.evil", h));
    assert_true(k2a_no_proxy_match("127.0.0.1", K2A_STRLIT("127.0.0.1")));
    assert_false(k2a_no_proxy_match("127.0.0.1", K2A_STRLIT("127.0.0.10")));
    assert_true(k2a_no_proxy_match("[::1]", K2A_STRLIT("::1")));
    assert_true(k2a_no_proxy_match("::1", K2A_STRLIT("::1")));
    assert_true(k2a_no_proxy_match("amazonaws.com", K2A_STRLIT("amazonaws.com.")));
}

static void test_config_defaults_and_env(void **state)
{
    k2a_upstream_config_t c;
    k2a_upstream_config_init(&c);
    assert_int_equal(c.connect_timeout_ms, 10000);
    assert_int_equal(c.first_byte_timeout_ms, 120000);
    assert_int_equal(c.idle_timeout_ms, 300000);
    assert_int_equal(c.dns_timeout_ms, 5000);
    assert_int_equal(c.dns_max_ttl_s, 60);
    assert_int_equal(c.max_header_bytes, 65536);
    assert_int_equal(c.max_headers, 100);
    assert_null(c.proxy);
    assert_false(c.tls_insecure);

    unsetenv("KIRO_UPSTREAM_PROXY");
    unsetenv("NO_PROXY");
    setenv("KIRO_CONNECT_TIMEOUT_MS", "1500", 1);
    setenv("KIRO_FIRST_BYTE_TIMEOUT_MS", "2500", 1);
    setenv("KIRO_IDLE_TIMEOUT_MS", "3500", 1);
    setenv("KIRO_DNS_SERVERS", "127.0.0.1:5353", 1);
    setenv("KIRO_CA_FILE", "/tmp/ca.pem", 1);
    setenv("KIRO_TLS_INSECURE", "1", 1);
    setenv("HTTPS_PROXY", "http://proxy:3128", 1);
    setenv("no_proxy", ".internal", 1);
    setenv("KIRO_UPSTREAM_MAX_IDLE", "7", 1);
    assert_int_equal(k2a_upstream_config_from_env(&c), 0);
    assert_int_equal(c.connect_timeout_ms, 1500);
    assert_int_equal(c.first_byte_timeout_ms, 2500);
    assert_int_equal(c.idle_timeout_ms, 3500);
    assert_string_equal(c.dns_servers, "127.0.0.1:5353");
    assert_string_equal(c.ca_file, "/tmp/ca.pem");
    assert_true(c.tls_insecure);
    assert_string_equal(c.proxy, "http://proxy:3128");
    assert_string_equal(c.no_proxy, ".internal");
    assert_int_equal(c.max_idle_per_origin, 7);

    setenv("KIRO_UPSTREAM_PROXY", "http://other:8080", 1);
    assert_int_equal(k2a_upstream_config_from_env(&c), 0);
    assert_string_equal(c.proxy, "http://other:8080"); /* KIRO_UPSTREAM_PROXY wins over HTTPS_PROXY */

    setenv("KIRO_IDLE_TIMEOUT_MS", "12x", 1);
    assert_int_equal(k2a_upstream_config_from_env(&c), K2A_ECONFIG);
    setenv("KIRO_IDLE_TIMEOUT_MS", "-1", 1);
    assert_int_equal(k2a_upstream_config_from_env(&c), K2A_ECONFIG);
    setenv("KIRO_IDLE_TIMEOUT_MS", "99999999999", 1);
    assert_int_equal(k2a_upstream_config_from_env(&c), K2A_ECONFIG);
    const char *vars[] = {"KIRO_CONNECT_TIMEOUT_MS",
                          "KIRO_FIRST_BYTE_TIMEOUT_MS",
                          "KIRO_IDLE_TIMEOUT_MS",
                          "KIRO_DNS_SERVERS",
                          "KIRO_CA_FILE",
                          "KIRO_TLS_INSECURE",
                          "HTTPS_PROXY",
                          "no_proxy",
                          "KIRO_UPSTREAM_MAX_IDLE",
                          "KIRO_UPSTREAM_PROXY"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); ++i)
        unsetenv(vars[i]);
}

static void test_create_rejects_bad_config(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    k2a_upstream_config_t c;
    k2a_upstream_t *up = NULL;
    k2a_upstream_config_init(&c);
    c.dns_servers = "127.0.0.1:9";
    c.proxy = "https://proxy:3128"; /* TLS to the proxy is not supported */
    assert_int_equal(k2a_upstream_create(&loop, &c, &up), K2A_ECONFIG);
    c.proxy = "socks5://proxy:1080";
    assert_int_equal(k2a_upstream_create(&loop, &c, &up), K2A_ECONFIG);
    c.proxy = NULL;
    c.ca_file = "/nonexistent/ca.pem";
    assert_int_equal(k2a_upstream_create(&loop, &c, &up), K2A_ECONFIG);
    c.ca_file = NULL;
    c.dns_servers = "not an address";
    assert_int_equal(k2a_upstream_create(&loop, &c, &up), K2A_ECONFIG);
    c.dns_servers = "127.0.0.1:9";
    assert_int_equal(k2a_upstream_create(&loop, &c, &up), 0);
    k2a_upstream_stats_t st;
    k2a_upstream_get_stats(up, &st);
    assert_int_equal(st.conns_open, 0);
    k2a_upstream_destroy(up);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_outcome_names(void **state)
{
    assert_string_equal(k2a_upstream_outcome_name(K2A_UPSTREAM_OK), "ok");
    assert_string_equal(k2a_upstream_outcome_name(K2A_UPSTREAM_HTTP_5XX), "http_5xx");
    assert_string_equal(k2a_upstream_outcome_name(K2A_UPSTREAM_FAIL_CANCELED), "canceled");
    assert_string_equal(k2a_upstream_outcome_name(K2A_UPSTREAM_FAIL_OTHER), "other");
    assert_string_equal(k2a_upstream_outcome_name(K2A_UPSTREAM_OUTCOME_MAX), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_ok),
        cmocka_unit_test(test_url_rejects),
        cmocka_unit_test(test_no_proxy),
        cmocka_unit_test(test_config_defaults_and_env),
        cmocka_unit_test(test_create_rejects_bad_config),
        cmocka_unit_test(test_outcome_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
