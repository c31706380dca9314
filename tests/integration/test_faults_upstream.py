"""Fault suite, upstream side: a misbehaving Kiro (kiro-sim directives and account kinds), a refresh endpoint that is
down, DNS that fails (a fake DNS server on 127.0.0.1 answering NXDOMAIN or nothing), TLS that must not verify (test CA
not trusted, certificate without the host name) and the positive TLS case, a stall past the first-byte timeout, and a
tool input that is not JSON. For each fault and both dialects (Anthropic, OpenAI), streaming and not: the client gets a
clear error in its dialect (an HTTP error in the dialect's shape before anything was sent, an in-stream error event
after content; never a fake end, never a `{}` tool call), the gateway keeps serving (a normal request right after
succeeds), and every process exits cleanly with no sanitizer report (the ASan run of the same test checks leaks)."""
import http.client
import json
import os
import shutil
import signal
import ssl
import tempfile
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, make_test_ca, request, sim_accounts_env
from hostile import (FakeDNS, assert_error_shape, assert_serves, body_for, closed_port, post, stream_outcome,
                     metrics, tools_for, upstream_busy, wait_until)

DIALECTS = ("anthropic", "openai")


class DirectiveFaults(unittest.TestCase):
    """Faults a healthy account's upstream produces on request (kiro-sim directives). A fresh gateway per test with
    KIRO_MAX_ATTEMPTS=1 and six accounts: a fault before any content cools the one account it hit (the pool's policy for
    a transient failure), so each of the four faulty requests of a test takes one account and the normal requests in
    between still find a usable one."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.sim.cleanup()

    def setUp(self):
        self.gw = Gateway(env=sim_accounts_env(self.sim, ["sim-ok-%s-%d" % (self._testMethodName[5:20], i) for i in range(6)], {
            "KIRO_MAX_ATTEMPTS": "1", "KIRO_FIRST_BYTE_TIMEOUT_MS": str(int(600 * SLOW)), "KIRO_PING_INTERVAL_MS": "60000"}))

    def tearDown(self):
        try:
            self.gw.assert_clean_exit(self)
        finally:
            self.gw.cleanup()

    def run_fault(self, text, tools=False, expect_stream_error=True, contains=None, status=None):
        """The same fault, both dialects, streaming and not; then a normal request."""
        for dialect in DIALECTS:
            extra = {"tools": tools_for(dialect)} if tools else {}
            with self.subTest(dialect=dialect, stream=True):
                st, h, data = post(self.gw.port, dialect, body_for(dialect, text, stream=True, **extra))
                if expect_stream_error:
                    # after content: a 200 stream that ends with an error event, never with a normal end
                    self.assertEqual(st, 200, data[:1000])
                    outcome, msg, tool_calls = stream_outcome(self, dialect, data)
                    self.assertEqual(outcome, "error", data[-1000:])
                    if contains:
                        self.assertRegex(msg, contains)
                else:
                    assert_error_shape(self, dialect, st, data, want_status=status, contains=contains)
            with self.subTest(dialect=dialect, stream=False):
                st, _, data = post(self.gw.port, dialect, body_for(dialect, text, stream=False, **extra))
                # a non-streaming request has sent nothing: always an HTTP error in the dialect's shape
                assert_error_shape(self, dialect, st, data, want_status=status, contains=contains)
                self.assertNotIn(b'"tool_use"', data)
                self.assertNotIn(b'"tool_calls"', data)
            assert_serves(self, self.gw.port, dialect)
        # nothing is left running upstream
        self.assertTrue(wait_until(lambda: self.sim.stats()["open_streams"] == 0, 5 * SLOW))
        self.assertTrue(wait_until(lambda: upstream_busy(self.gw.port) == 0, 5 * SLOW))

    def test_cut_mid_frame_after_content(self):
        self.run_fault("[[sim:text frames=6 size=8]] [[sim:cut after=3]]", contains="reset|truncated|ended|failed")

    def test_cut_mid_frame_before_content(self):
        self.run_fault("[[sim:text frames=6 size=8]] [[sim:cut after=0]]", expect_stream_error=False, status=502)

    def test_cut_mid_tool_call(self):
        # frames: start, 4 input pieces, stop; cut after the start and two pieces: the tool call is never completed
        directive = '[[sim:tool name=get_weather input={"city":"Paris","units":"metric"} pieces=4]] [[sim:cut after=3]]'
        for dialect in DIALECTS:
            st, _, data = post(self.gw.port, dialect, body_for(dialect, "weather " + directive, tools=tools_for(dialect)))
            self.assertEqual(st, 200)
            outcome, msg, calls = stream_outcome(self, dialect, data)
            self.assertEqual(outcome, "error")
            self.assertEqual(len(calls), 1)
            self.assertNotEqual(calls[0]["json"], "{}")
            with self.assertRaises(ValueError):
                json.loads(calls[0]["json"])  # the client holds a partial input, and an error: never a finished call
            if dialect == "anthropic":
                self.assertNotIn(b"content_block_stop", data.split(b"tool_use")[-1])
                self.assertNotIn(b"message_stop", data)
            else:
                self.assertNotIn(b'"finish_reason":"tool_calls"', data)
                self.assertNotIn(b"[DONE]", data)
        self.run_fault("weather " + directive, tools=True)

    def test_bad_crc_after_content(self):
        self.run_fault("[[sim:text frames=6 size=8]] [[sim:badcrc after=2]]", contains="CRC")

    def test_bad_crc_before_content(self):
        self.run_fault("[[sim:text frames=6 size=8]] [[sim:badcrc after=0]]", expect_stream_error=False, status=502,
                       contains="CRC")

    def test_exception_frame_after_content(self):
        self.run_fault('[[sim:text frames=4 size=8]] [[sim:exception type=InternalServerException after=2 message="boom"]]',
                       contains="InternalServerException|boom")

    def test_exception_frame_before_content(self):
        # a throttling exception before any content: the account is throttled, the client gets a rate-limit error
        self.run_fault("[[sim:exception type=ThrottlingException after=0]]", expect_stream_error=False, status=429)

    def test_content_length_exception_is_max_tokens(self):
        # Kiro's ContentLengthExceededException mid-answer is the output limit, as Anthropic reports it: not an error
        for dialect in DIALECTS:
            st, _, data = post(self.gw.port, dialect, body_for(
                dialect, "[[sim:text frames=4 size=8]] [[sim:exception type=ContentLengthExceededException after=2]]",
                stream=False))
            self.assertEqual(st, 200, data)
            doc = json.loads(data)
            if dialect == "anthropic":
                self.assertEqual(doc["stop_reason"], "max_tokens")
            else:
                self.assertEqual(doc["choices"][0]["finish_reason"], "length")
        assert_serves(self, self.gw.port)

    def test_upstream_status_5xx_directive(self):
        self.run_fault("[[sim:status code=503]]", expect_stream_error=False, status=None, contains="503|server")

    def test_stall_past_first_byte_timeout(self):
        self.run_fault("[[sim:stall ms=%d]]" % int(1500 * SLOW), expect_stream_error=False, status=504,
                       contains="first-byte|timed out|timeout")

    def test_stall_with_pings_is_an_in_stream_error(self):
        # a ping commits the stream while the upstream is silent (HTTP/1.1 clients need bytes): the timeout then comes as an
        # error event after the pings, never as a normal end
        gw = Gateway(env=sim_accounts_env(self.sim, ["sim-ok-pings1", "sim-ok-pings2"], {
            "KIRO_MAX_ATTEMPTS": "1", "KIRO_FIRST_BYTE_TIMEOUT_MS": str(int(600 * SLOW)), "KIRO_PING_INTERVAL_MS": "150"}))
        try:
            for dialect in DIALECTS:
                st, _, data = post(gw.port, dialect, body_for(dialect, "[[sim:stall ms=%d]]" % int(1500 * SLOW)))
                self.assertEqual(st, 200, data)
                # the stream opens with the dialect's first event (message_start / the role chunk), then the pings
                first = b"event: message_start" if dialect == "anthropic" else b"data: "
                ping = b"event: ping" if dialect == "anthropic" else b": ping"
                self.assertTrue(data.startswith(first), data)
                self.assertIn(ping, data)
                outcome, msg, _ = stream_outcome(self, dialect, data)
                self.assertEqual(outcome, "error")
                self.assertRegex(msg, "first-byte|timed out|timeout")
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()

    def test_tool_input_not_json(self):
        # the upstream closes a tool call whose input is not JSON: an error, never a tool call with {} or broken arguments
        directive = '[[sim:tool name=get_weather input="{\\"city\\": \\"Par" pieces=3]]'
        for dialect in DIALECTS:
            st, _, data = post(self.gw.port, dialect, body_for(dialect, directive, tools=tools_for(dialect)))
            self.assertEqual(st, 200, data)
            outcome, msg, calls = stream_outcome(self, dialect, data)
            self.assertEqual(outcome, "error", data[-800:])
            self.assertRegex(msg, "not a JSON object")
            self.assertEqual([c["json"] for c in calls], ['{"city": "Par'])
        self.run_fault(directive, tools=True, contains="not a JSON object")


class AccountFaults(unittest.TestCase):
    """Every account answers 402 / 403 / 429 / 5xx: a clear error naming the accounts; after SIGHUP adds a healthy
    account (KIRO_AUTH_TOKEN is a file), the next request succeeds."""

    def scenario(self, kind, want_status, want_type, contains):
        sim = Sim()
        tmp = tempfile.mkdtemp(prefix="k2a-accounts-")
        auth = os.path.join(tmp, "accounts.json")
        with open(auth, "w") as f:
            json.dump([{"refreshToken": "sim-%s-a" % kind}, {"refreshToken": "sim-%s-b" % kind}], f)
        env = sim_accounts_env(sim, [], {"KIRO_AUTH_TOKEN": auth})
        gw = Gateway(env=env)
        try:
            for dialect in DIALECTS:
                for stream in (True, False):
                    st, _, data = post(gw.port, dialect, body_for(dialect, "hello", stream=stream))
                    msg = assert_error_shape(self, dialect, st, data, contains=contains)
                    if (dialect, stream) == ("anthropic", True):
                        self.assertEqual(st, want_status, data)
                        self.assertEqual(json.loads(data)["error"]["type"], want_type, data)
                    self.assertIn(st, (want_status, 503), data)  # later requests may find every account unusable
                    self.assertNotIn("sim-%s" % kind, msg)  # refresh tokens never reach the client
            with open(auth, "w") as f:
                json.dump([{"refreshToken": "sim-%s-a" % kind}, {"refreshToken": "sim-%s-b" % kind},
                           {"refreshToken": "sim-ok-rescue"}], f)
            gw.send_signal(signal.SIGHUP)
            last = []

            def served():
                last[:] = [post(gw.port, "anthropic", body_for("anthropic", "x", stream=False))]
                return last[0][0] == 200
            self.assertTrue(wait_until(served, 10 * SLOW, interval=0.1), last)
            for dialect in DIALECTS:
                assert_serves(self, gw.port, dialect)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_402_exhausted_everywhere(self):
        self.scenario("exhausted", 429, "rate_limit_error", "quota|exhausted|MONTHLY")

    def test_403_everywhere(self):
        self.scenario("403", 503, "overloaded_error", "403|forbidden|rejected|denied")

    def test_429_everywhere(self):
        self.scenario("429", 429, "rate_limit_error", "429|rate|throttl")

    def test_500_everywhere(self):
        self.scenario("500", 529, "overloaded_error", "500|server")


class NetworkFaults(unittest.TestCase):
    def test_refresh_endpoint_down(self):
        # everything points at a port with nothing listening: the refresh is refused; once a Kiro appears there, the
        # gateway recovers by itself (the refresh is retried after the account's short cooling)
        port = closed_port()
        base = "http://127.0.0.1:%d" % port
        gw = Gateway(env={"KIRO_AUTH_TOKEN": json.dumps([{"refreshToken": "sim-ok-down"}]), "KIRO_API_BASE": base,
                          "KIRO_SOCIAL_REFRESH_URL": base + "/refreshToken", "KIRO_IDC_REFRESH_URL": base + "/token"})
        sim = None
        try:
            for dialect in DIALECTS:
                st, _, data = post(gw.port, dialect, body_for(dialect, "hello"))
                assert_error_shape(self, dialect, st, data, want_status=503, contains="refus|refresh")
            self.assertEqual(request(gw.port, "GET", "/healthz")[0], 200)
            sim = Sim(args=["--port", str(port)])
            self.assertTrue(wait_until(lambda: post(gw.port, "anthropic", body_for("anthropic", "x", stream=False))[0] == 200,
                                       15 * SLOW, interval=0.2))
            for dialect in DIALECTS:
                assert_serves(self, gw.port, dialect)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            if sim is not None:
                sim.cleanup()

    def dns_scenario(self, mode, want_status, contains):
        # the refresh goes to the simulator's IP; generateAssistantResponse to a name only the fake DNS knows
        sim = Sim()
        dns = FakeDNS(mode=mode, names={"kiro.fault.test": "127.0.0.1"})
        env = sim_accounts_env(sim, ["sim-ok-dns"], {"KIRO_API_BASE": "http://kiro.fault.test:%d" % sim.port,
                                                     "KIRO_DNS_SERVERS": dns.server, "KIRO_DNS_TIMEOUT_MS": "300",
                                                     # only the test's requests look the name up: a background catalog
                                                     # fetch or usage poll would leave a silent query in flight that the
                                                     # request after the switch joins (and times out with)
                                                     "KIRO_CATALOG_REFRESH_S": "0", "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        gw = Gateway(env=env)
        try:
            for dialect in DIALECTS:
                st, _, data = post(gw.port, dialect, body_for(dialect, "hello"))
                assert_error_shape(self, dialect, st, data, want_status=want_status, contains=contains)
            self.assertTrue(any(q[0] == "kiro.fault.test" for q in dns.queries), dns.queries)
            # the name starts resolving: the next request succeeds (a DNS failure is never held against the account)
            dns.mode = "answer"
            # a lookup joins a query of the same name still in flight, and the last failed request's silent query can
            # outlive its request by a moment on a loaded machine: wait for the first answer, then every dialect serves
            self.assertTrue(wait_until(lambda: post(gw.port, "anthropic", body_for("anthropic", "x", stream=False))[0] == 200,
                                       5 * SLOW, interval=0.2))
            for dialect in DIALECTS:
                assert_serves(self, gw.port, dialect)
            self.assertTrue(all(q[0].startswith("kiro.fault.test") for q in dns.queries), dns.queries)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()
            dns.close()

    def test_dns_nxdomain(self):
        self.dns_scenario("nxdomain", 502, "resol|DNS|kiro.fault.test")

    def test_dns_never_answers(self):
        self.dns_scenario("silent", 504, "resol|DNS|timed out")


class NotKiro:
    """An HTTP/1.1 server on 127.0.0.1 that answers every request with one canned 200 that is not an EventStream (a
    captive portal's page, an empty body). It counts the requests it got."""

    def __init__(self):
        import socket
        import threading
        self.mode = "html"
        self.hits = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.base = "http://127.0.0.1:%d" % self.port
        threading.Thread(target=self._serve, daemon=True).start()

    def answer(self):
        if self.mode == "html":
            body = b"<!DOCTYPE html>\n<html><head><title>Sign in to the guest network</title></head><body>...</body></html>"
            return (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
        if self.mode == "empty":
            return b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nContent-Length: 0\r\n\r\n"
        # empty chunked: the type is right, the body has no byte
        return b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.amazon.eventstream\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"

    def _serve(self):
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _conn(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, rest = buf.partition(b"\r\n\r\n")
                n = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v.strip())
                while len(rest) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    rest += d
                buf = rest[n:]
                self.hits += 1
                c.sendall(self.answer())
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.sock.close()


class NotKiroAnswers(unittest.TestCase):
    """A 200 that is not an EventStream (a captive portal, a corporate proxy, an empty body) is a typed upstream error
    (502, saying what arrived) that neither cools the account nor fails over; an answer over the non-streaming
    aggregate limit is a 502 upstream error too, never the client's 413."""

    def test_html_and_empty_200_are_upstream_errors_without_penalty(self):
        sim = Sim()
        junk = NotKiro()
        env = sim_accounts_env(sim, ["sim-ok-junk1", "sim-ok-junk2"], {"KIRO_API_BASE": junk.base})
        gw = Gateway(env=env)
        try:
            cases = (("html", "text/html.*Sign in to the guest network.*proxy or captive portal"),
                     ("empty", "empty body"), ("empty-chunked", "empty body"))
            for mode, contains in cases:
                junk.mode = mode
                for dialect in DIALECTS:
                    for stream in (True, False):
                        hits = junk.hits
                        st, _, data = post(gw.port, dialect, body_for(dialect, "hello", stream=stream))
                        assert_error_shape(self, dialect, st, data, want_status=502, contains=contains)
                        self.assertEqual(junk.hits - hits, 1, "no failover to the second account (%s)" % mode)
            st, _, data = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            states = [t["state"] for t in json.loads(data)["tokens"]]
            self.assertEqual(states, ["ok", "ok"], "no account cooled: %s" % data[:2000])
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()
            junk.close()

    def test_non_stream_answer_over_the_aggregate_limit_is_a_502(self):
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-big"]))
        try:
            for dialect in DIALECTS:
                st, _, data = post(gw.port, dialect, body_for(dialect, "[[sim:text frames=70 size=1048576]]", stream=False),
                                   timeout=120)
                assert_error_shape(self, dialect, st, data, want_status=502, contains="non-streaming .*limit.*stream: true")
                assert_serves(self, gw.port, dialect)
            st, _, data = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual([t["state"] for t in json.loads(data)["tokens"]], ["ok"], "the account did not cool")
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


def tls_stats(sim, ca):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    conn = http.client.HTTPSConnection("127.0.0.1", sim.port, timeout=10, context=ctx)
    try:
        conn.request("GET", "/sim/stats")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


class TlsFaults(unittest.TestCase):
    """kiro-sim over TLS with a certificate from a test CA."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="k2a-tls-")
        cls.dns = FakeDNS(mode="answer", names={"kiro.tls.test": "127.0.0.1", "other.tls.test": "127.0.0.1"})
        good = os.path.join(cls.tmp, "good")
        os.mkdir(good)
        cls.pki = make_test_ca(good, names=("kiro.tls.test",), ips=())

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def gateway(self, sim, host, ca_file):
        return Gateway(env=self.gateway_env(sim, host, ca_file))

    def gateway_env(self, sim, host, ca_file):
        base = "https://%s:%d" % (host, sim.port)
        env = {"KIRO_AUTH_TOKEN": json.dumps([{"refreshToken": "sim-ok-tls"}]), "KIRO_API_BASE": base,
               "KIRO_SOCIAL_REFRESH_URL": base + "/refreshToken", "KIRO_IDC_REFRESH_URL": base + "/token",
               "KIRO_DNS_SERVERS": self.dns.server, "KIRO_DNS_TIMEOUT_MS": "1000"}
        if ca_file:
            env["KIRO_CA_FILE"] = ca_file
        return env

    def failing(self, host, ca_file, contains):
        sim = Sim(args=["--tls-cert", self.pki["cert"], "--tls-key", self.pki["key"]])
        gw = self.gateway(sim, host, ca_file)
        try:
            for dialect in DIALECTS:
                st, _, data = post(gw.port, dialect, body_for(dialect, "hello"))
                assert_error_shape(self, dialect, st, data, contains=contains)
                self.assertIn(st, (502, 503), data)
            # the gateway keeps serving what does not need Kiro
            self.assertEqual(request(gw.port, "GET", "/healthz")[0], 200)
            st, _, data = request(gw.port, "POST", "/v1/messages/count_tokens", body=body_for("anthropic", "count me"),
                                  key=CLIENT_KEY)
            self.assertEqual(st, 200, data)
            self.assertEqual(tls_stats(sim, self.pki["ca"])["generates_total"], 0)  # nothing went over an unverified connection
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()

    def test_wrong_ca(self):
        self.failing("kiro.tls.test", None, "certificate|verif|TLS")

    def test_wrong_host(self):
        self.failing("other.tls.test", self.pki["ca"], "certificate|verif|TLS")

    def test_right_ca_and_host(self):
        sim = Sim(args=["--tls-cert", self.pki["cert"], "--tls-key", self.pki["key"]])
        gw = self.gateway(sim, "kiro.tls.test", self.pki["ca"])
        try:
            for dialect in DIALECTS:
                assert_serves(self, gw.port, dialect)
            self.assertGreater(tls_stats(sim, self.pki["ca"])["generates_total"], 0)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()

    def test_reuse_over_tls(self):
        """Keep-alive over TLS: the reader stops at the answer's last frame, and the chunked terminator that comes after it
        in a TLS record of its own is read when the response is released, so the connection goes back to the pool (it was
        closed after every request: one handshake per request). One worker loop, so one pool."""
        sim = Sim(args=["--tls-cert", self.pki["cert"], "--tls-key", self.pki["key"]])
        gw = Gateway(env={**self.gateway_env(sim, "kiro.tls.test", self.pki["ca"]), "KIRO_WORKERS": "1",
                          "KIRO_UPSTREAM_REUSE": "account", "KIRO_CATALOG_REFRESH_S": "0",
                          "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        try:
            assert_serves(self, gw.port)  # the refresh and the first connection
            before = metrics(gw.port)
            n = 0
            for dialect in DIALECTS:
                for text in ("hello", "[[sim:drip ms=5]] [[sim:text frames=4 size=6]]"):
                    for stream in (True, False):
                        st, _, data = post(gw.port, dialect, body_for(dialect, text, stream=stream))
                        self.assertEqual(st, 200, data[:500])
                        n += 1
                        # back in the pool (a dripped answer's end is read after the client has its answer)
                        self.assertTrue(wait_until(lambda: metrics(gw.port)["k2a_upstream_connections_idle"] == 1, 10),
                                        metrics(gw.port))
            after = metrics(gw.port)

            def delta(name):
                return after.get("k2a_upstream_" + name, 0) - before.get("k2a_upstream_" + name, 0)
            self.assertEqual(delta("requests_total{outcome=\"ok\"}"), n)
            self.assertEqual(delta("connections_reused_total"), n, after)
            self.assertEqual(delta("tls_handshakes_total"), 0, after)
            self.assertGreaterEqual(delta("response_tails_kept_total"), 2, after)  # the dripped answers' ends came later
            self.assertEqual(delta("response_tails_total"), delta("response_tails_kept_total"))

            # a body that does not end after the answer: the client has its whole answer, the tail gives up after its
            # bounded wait and the connection is closed, not pooled (the next request opens a new one)
            keep = "[[sim:keepopen]] [[sim:text frames=2 size=4]]"
            st, _, data = post(gw.port, "anthropic", body_for("anthropic", keep))
            self.assertEqual(st, 200, data[:500])
            self.assertEqual(stream_outcome(self, "anthropic", data)[0], "ok")
            m = metrics(gw.port)
            self.assertEqual(m["k2a_upstream_response_tails_total"] - after["k2a_upstream_response_tails_total"], 1, m)
            self.assertTrue(wait_until(lambda: metrics(gw.port)["k2a_upstream_connections_open"] == 0, 10))
            m2 = metrics(gw.port)
            self.assertEqual(m2["k2a_upstream_response_tails_kept_total"], m["k2a_upstream_response_tails_kept_total"])
            assert_serves(self, gw.port)
            self.assertEqual(metrics(gw.port)["k2a_upstream_tls_handshakes_total"], m2["k2a_upstream_tls_handshakes_total"] + 1)

            # shutdown while a tail waits: it is canceled and the gateway exits cleanly
            st, _, data = post(gw.port, "openai", body_for("openai", keep))
            self.assertEqual(st, 200, data[:500])
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
