"""Foundation: listeners (HTTP/1.1, h2c prior knowledge and upgrade, TLS with ALPN), routes, client
auth by both headers in both dialects, 404/405/413 shapes, CORS preflight, request ids, /metrics,
static files, configuration errors, and graceful exit."""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

from k2a import (BIN, CLIENT_KEY, SOURCE_DIR, Gateway, assert_no_sanitizer_report, curl, free_port, make_test_ca, main,
                 request)


class Foundation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(env={"KIRO_MAX_BODY_BYTES": "4096", "KIRO_STATIC_DIR": os.path.join(SOURCE_DIR, "assets")})
        cls.port = cls.gw.port

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()

    def test_healthz_without_key(self):
        st, h, body = request(self.port, "GET", "/healthz")
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(body), {"status": "ok"})
        self.assertEqual(h["content-length"], str(len(body)))

    def test_auth_refused_anthropic_shape(self):
        for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}, {"authorization": "Bearer " + CLIENT_KEY + "x"}):
            st, _, body = request(self.port, "GET", "/v1/models", headers=headers)
            self.assertEqual(st, 401, headers)
            err = json.loads(body)
            self.assertEqual(err["type"], "error")
            self.assertEqual(err["error"]["type"], "authentication_error")

    def test_auth_refused_openai_shape(self):
        st, _, body = request(self.port, "POST", "/v1/chat/completions", body={"model": "x", "messages": []},
                              headers={"authorization": "Bearer nope"})
        self.assertEqual(st, 401)
        err = json.loads(body)["error"]
        self.assertEqual(err["code"], "invalid_api_key")
        self.assertIn("message", err)
        self.assertIn("type", err)
        self.assertIn("param", err)

    def test_auth_accepted_by_both_headers(self):
        for headers in ({"x-api-key": CLIENT_KEY}, {"authorization": "Bearer " + CLIENT_KEY},
                        {"authorization": "bearer " + CLIENT_KEY}, {"authorization": CLIENT_KEY}):
            st, _, body = request(self.port, "GET", "/v1/models", headers=headers)
            self.assertNotEqual(st, 401, (headers, body))
            st, _, body = request(self.port, "GET", "/metrics", headers=headers)
            self.assertEqual(st, 200, headers)

    def test_metrics_and_api_need_a_key(self):
        for path in ("/metrics", "/api/tokens"):
            st, _, _ = request(self.port, "GET", path)
            self.assertEqual(st, 401, path)

    def test_404_in_each_dialect(self):
        st, _, body = request(self.port, "GET", "/v1/nope", key=CLIENT_KEY)
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["type"], "not_found_error")
        st, _, body = request(self.port, "POST", "/v1/chat/nope", body="{}", key=CLIENT_KEY)
        self.assertEqual(st, 404)
        self.assertEqual(json.loads(body)["error"]["code"], "not_found")
        st, _, body = request(self.port, "GET", "/no/such/page")
        self.assertEqual(st, 404)

    def test_405(self):
        st, h, body = request(self.port, "GET", "/v1/messages", key=CLIENT_KEY)
        self.assertEqual(st, 405)
        self.assertEqual(h["allow"], "POST")
        self.assertEqual(json.loads(body)["error"]["type"], "invalid_request_error")

    def test_413_in_each_dialect_h1(self):
        big = "x" * 5000
        st, _, body = request(self.port, "POST", "/v1/messages", body=big, key=CLIENT_KEY)
        self.assertEqual(st, 413)
        self.assertEqual(json.loads(body)["error"]["type"], "request_too_large")
        st, _, body = request(self.port, "POST", "/v1/chat/completions", body=big, key=CLIENT_KEY)
        self.assertEqual(st, 413)
        self.assertEqual(json.loads(body)["error"]["code"], "request_too_large")

    def test_413_over_h2_is_a_response_not_a_reset(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"y" * 100000)
            f.flush()
            r = curl("--http2-prior-knowledge", "-i", "-H", "x-api-key: " + CLIENT_KEY, "--data-binary", "@" + f.name,
                     "http://127.0.0.1:%d/v1/messages" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("HTTP/2 413", r.stdout)
        self.assertIn("request_too_large", r.stdout)

    def test_cors_preflight_before_auth(self):
        st, h, body = request(self.port, "OPTIONS", "/v1/messages",
                              headers={"origin": "http://example.invalid", "access-control-request-method": "POST",
                                       "access-control-request-headers": "x-api-key, content-type"})
        self.assertEqual(st, 204)
        self.assertEqual(h["access-control-allow-origin"], "*")
        self.assertIn("POST", h["access-control-allow-methods"])
        self.assertIn("x-api-key", h["access-control-allow-headers"])
        # and every other response carries the origin header too
        st, h, _ = request(self.port, "GET", "/healthz")
        self.assertEqual(h["access-control-allow-origin"], "*")

    def test_request_id_in_and_out(self):
        st, h, _ = request(self.port, "GET", "/healthz", headers={"x-request-id": "abc-123_X.y"})
        self.assertEqual(h["x-request-id"], "abc-123_X.y")
        st, h, _ = request(self.port, "GET", "/healthz")
        self.assertRegex(h["x-request-id"], r"^req_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        st, h, _ = request(self.port, "GET", "/healthz", headers={"x-request-id": "bad id\twith spaces"})
        self.assertTrue(h["x-request-id"].startswith("req_"))

    def test_v1_v1_mistake_is_accepted(self):
        a = request(self.port, "GET", "/v1/models", key=CLIENT_KEY)
        b = request(self.port, "GET", "/v1/v1/models", key=CLIENT_KEY)
        self.assertEqual(a[0], b[0])
        self.assertEqual(a[2], b[2])

    def test_metrics_count_requests_just_made(self):
        def count():
            st, _, body = request(self.port, "GET", "/metrics", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            m = re.search(r'^k2a_http_requests_total\{route="healthz",status="200"\} (\d+)$', body.decode(), re.M)
            return int(m.group(1)) if m else 0
        before = count()
        for _ in range(7):
            request(self.port, "GET", "/healthz")
        self.assertEqual(count(), before + 7)
        st, _, body = request(self.port, "GET", "/metrics", key=CLIENT_KEY)
        text = body.decode()
        self.assertIn("# TYPE k2a_http_request_duration_seconds histogram", text)
        self.assertRegex(text, r'k2a_http_request_duration_seconds_count\{route="healthz"\} \d+')
        self.assertRegex(text, r"k2a_http_requests_in_flight \d+")
        self.assertRegex(text, r'k2a_http_response_bytes_total\{route="healthz"\} \d+')

    def test_h2c_prior_knowledge(self):
        r = curl("--http2-prior-knowledge", "-i", "http://127.0.0.1:%d/healthz" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.startswith("HTTP/2 200"), r.stdout)

    def test_h2c_upgrade(self):
        r = curl("--http2", "-v", "http://127.0.0.1:%d/healthz" % self.port)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("101 Switching Protocols", r.stderr)
        self.assertIn("HTTP/2 200", r.stderr)

    def test_nghttp_and_h2load(self):
        if not shutil.which("nghttp") or not shutil.which("h2load"):
            self.skipTest("nghttp2-client not installed")
        r = subprocess.run(["nghttp", "-v", "http://127.0.0.1:%d/healthz" % self.port], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(":status: 200", r.stdout)
        r = subprocess.run(["h2load", "-n", "200", "-c", "4", "-m", "10", "http://127.0.0.1:%d/healthz" % self.port],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("200 succeeded", r.stdout)

    def test_dashboard_and_static(self):
        st, h, body = request(self.port, "GET", "/")
        self.assertEqual(st, 200)
        self.assertIn("text/html", h["content-type"])
        self.assertIn(b"kiro2api", body)
        st, _, body = request(self.port, "HEAD", "/")
        self.assertEqual(st, 200)
        for path in ("/static/../CMakeLists.txt", "/static/.hidden", "/static/nope.js"):
            st, _, _ = request(self.port, "GET", path)
            self.assertEqual(st, 404, path)


class TLS(unittest.TestCase):
    def test_tls_alpn_h2_and_http11(self):
        d = tempfile.mkdtemp()
        try:
            pki = make_test_ca(d)
            tls_port = free_port()
            gw = Gateway(env={"KIRO_TLS_PORT": tls_port, "KIRO_TLS_CERT": pki["cert"], "KIRO_TLS_KEY": pki["key"]})
            try:
                url = "https://localhost:%d/healthz" % tls_port
                resolve = "localhost:%d:127.0.0.1" % tls_port
                r = curl("--cacert", pki["ca"], "--resolve", resolve, "--http2", "-v", url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("ALPN: server accepted h2", r.stderr)
                self.assertIn("HTTP/2 200", r.stderr)
                r = curl("--cacert", pki["ca"], "--resolve", resolve, "--http1.1", "-v", url)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn("HTTP/1.1 200", r.stderr)
                self.assertIn("ALPN: server accepted http/1.1", r.stderr)
                if shutil.which("h2load"):
                    r = subprocess.run(["h2load", "-n", "100", "-c", "2", url.replace("localhost", "127.0.0.1")],
                                       capture_output=True, text=True, timeout=60)
                    self.assertIn("100 succeeded", r.stdout, r.stdout + r.stderr)
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_bad_certificate_is_a_config_error(self):
        r = subprocess.run([BIN], env=dict(os.environ, KIRO_HOST="127.0.0.1", PORT="0", KIRO_TLS_PORT=str(free_port()),
                                            KIRO_TLS_CERT="/nonexistent.pem", KIRO_TLS_KEY="/nonexistent.key"),
                           capture_output=True, text=True, timeout=20, cwd=tempfile.gettempdir())
        assert_no_sanitizer_report(self, r.stderr, "kiro2api")
        self.assertEqual(r.returncode, 2)
        self.assertIn("KIRO_TLS_CERT", r.stderr)


class Config(unittest.TestCase):
    def run_bin(self, env=None, args=(), cwd=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("KIRO_")}
        e.update({"KIRO_HOST": "127.0.0.1", "PORT": "0"})
        e.update(env or {})
        r = subprocess.run([BIN] + list(args), env=e, capture_output=True, text=True, timeout=20,
                           cwd=cwd or tempfile.gettempdir())
        assert_no_sanitizer_report(self, r.stderr, "kiro2api")
        return r

    def test_bad_values_name_the_variable_and_exit_2(self):
        cases = {"PORT": "abc", "LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "KIRO_CONNECT_TIMEOUT_MS": "-5",
                 "KIRO_TLS_INSECURE": "maybe", "KIRO_API_BASE": "ftp://x", "KIRO_POOL_STRATEGY": "random",
                 "KIRO_MAX_BODY_BYTES": "1"}
        for var, value in cases.items():
            r = self.run_bin({var: value})
            self.assertEqual(r.returncode, 2, (var, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, r.stderr)
            self.assertIn(var, lines[0])

    def test_bad_account_json_is_one_line_on_loopback_without_a_key(self):
        # the loopback-without-a-key warning and the "stopped" line used to surround the error
        for value in ('not json', '[{"auth":"Bogus","refreshToken":"x"}]', '[{"auth":"IdC","refreshToken":"x"}]'):
            r = self.run_bin({"KIRO_HOST": "127.0.0.1", "KIRO_CLIENT_TOKEN": "", "KIRO_AUTH_TOKEN": value})
            self.assertEqual(r.returncode, 2, (value, r.stderr))
            lines = [l for l in r.stderr.splitlines() if l.strip()]
            self.assertEqual(len(lines), 1, (value, r.stderr))
            self.assertRegex(lines[0], r"^kiro2api: configuration error: KIRO_AUTH_TOKEN", value)

    def test_help_says_each_default_once(self):
        r = self.run_bin(args=["--help"])
        self.assertEqual(r.returncode, 0)
        for line in r.stdout.splitlines():
            self.assertLessEqual(line.count("(default"), 1, line)
        self.assertIn("(default: the system's)", r.stdout)

    def test_help_and_version(self):
        r = self.run_bin(args=["--help"])
        self.assertEqual(r.returncode, 0)
        self.assertIn("KIRO_CLIENT_TOKEN", r.stdout)
        self.assertIn("MAX_TOOL_DESCRIPTION_LENGTH", r.stdout)
        r = self.run_bin(args=["--version"])
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r"^kiro2api \d+\.\d+\.\d+")
        r = self.run_bin(args=["--bogus"])
        self.assertEqual(r.returncode, 2)

    def test_client_token_required_beyond_loopback(self):
        r = self.run_bin({"KIRO_HOST": "0.0.0.0"})
        self.assertEqual(r.returncode, 2)
        self.assertIn("KIRO_CLIENT_TOKEN", r.stderr)

    def test_admin_token_alone_passes_the_beyond_loopback_check(self):
        # managed keys only: every client needs a key from /api/admin/keys. A bad account list stops the start before
        # anything listens, so the test never binds beyond loopback; the error it meets is the accounts', not the key's.
        r = self.run_bin({"KIRO_HOST": "0.0.0.0", "KIRO_ADMIN_TOKEN": "admin-only-secret", "KIRO_AUTH_TOKEN": "not json"})
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertNotIn("KIRO_CLIENT_TOKEN", r.stderr)
        self.assertIn("KIRO_AUTH_TOKEN", r.stderr)
        self.assertNotIn("admin-only-secret", r.stderr)

    def test_env_file_config_file_and_environment_priority(self):
        d = tempfile.mkdtemp()
        try:
            with open(os.path.join(d, ".env"), "w") as f:
                f.write("# comment\nKIRO_CLIENT_TOKEN=from-dotenv-123\nLOG_LEVEL=info\nSOMETHING_ELSE=ignored\n")
            # .env alone: its key is the one that works
            gw = Gateway(client_key=None, cwd=d)
            try:
                self.assertEqual(request(gw.port, "GET", "/metrics", key="from-dotenv-123")[0], 200)
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            cfg = os.path.join(d, "extra.conf")
            with open(cfg, "w") as f:
                f.write("export KIRO_CLIENT_TOKEN='from-config-456'\n")
            gw = Gateway(client_key=None, cwd=d, args=["--config", cfg])
            try:
                self.assertEqual(request(gw.port, "GET", "/metrics", key="from-config-456")[0], 200)
                self.assertEqual(request(gw.port, "GET", "/metrics", key="from-dotenv-123")[0], 401)
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            gw = Gateway(client_key="from-env-789", cwd=d, args=["--config", cfg])
            try:
                self.assertEqual(request(gw.port, "GET", "/metrics", key="from-env-789")[0], 200)
                self.assertEqual(request(gw.port, "GET", "/metrics", key="from-config-456")[0], 401)
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            with open(cfg, "w") as f:
                f.write("PORT=notaport\n")
            r = self.run_bin(args=["--config", cfg], cwd=d)
            self.assertEqual(r.returncode, 2)
            self.assertIn("PORT", r.stderr)
            self.assertIn("extra.conf:1", r.stderr)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_every_variable_is_documented(self):
        # README's table and conf/kiro2api.env.example come from the one table in src/core/config.c
        # (scripts/gen-config-docs.py); a variable added there must reach both
        r = self.run_bin(args=["--help"])
        names = re.findall(r"^  (\S+)\s", r.stdout.split("Variables:", 1)[1], re.M)
        self.assertGreater(len(names), 40)
        readme = open(os.path.join(SOURCE_DIR, "README.md")).read()
        example = open(os.path.join(SOURCE_DIR, "conf", "kiro2api.env.example")).read()
        for n in names:
            self.assertIn("| `%s` |" % n, readme, n + " missing from README.md (run scripts/gen-config-docs.py)")
            self.assertRegex(example, r"(?m)^#?%s=" % re.escape(n), n + " missing from conf/kiro2api.env.example")

    def test_clean_exit_on_sigterm_and_sigint(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            gw = Gateway()
            try:
                request(gw.port, "GET", "/healthz")
                gw.assert_clean_exit(self, sig)
            finally:
                gw.cleanup()


if __name__ == "__main__":
    main()
