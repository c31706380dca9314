"""One account per upstream connection, and the Kiro IDE's request headers. A stub Kiro (python stdlib, keep-alive
HTTP/1.1 on 127.0.0.1) records, per TCP connection, every request's path and headers in arrival order, issues access
tokens that name their account, rotates refresh tokens, answers generateAssistantResponse with a minimal EventStream,
and rejects one account's first generate call with a 401 (so that the gateway refreshes, rotates the refresh token and
retries on the same account). Concurrent streaming requests over three accounts then prove that:
- no connection ever carried two accounts' tokens, and keep-alive reuse still happens (KIRO_UPSTREAM_REUSE=account);
- generate calls carry the IDE header set in its order: invocation id a UUID v4 distinct per attempt, amz-sdk-request
  attempt=N; max=3 (N = 2 on the retry after the 401), machineId = sha256("KotlinNativeAPI/" + the configured refresh
  token), different per account and unchanged by the rotation;
- refresh calls send Connection: close and the Social refresh headers;
- with KIRO_UPSTREAM_REUSE=never every connection carries exactly one request and announces Connection: close.
The same property is then checked through kiro-sim's own per-connection statistics (four accounts, concurrent
streams): no connection saw two accounts.
"""
import hashlib
import http.server
import json
import re
import struct
import threading
import unittest
import zlib
from concurrent.futures import ThreadPoolExecutor

from k2a import CLIENT_KEY, SIM, Gateway, Proc, Sim, main, request, sim_accounts_env

ACCOUNTS = {"rt-alpha-0123456789": "alpha", "rt-bravo-0123456789": "bravo", "rt-charlie-012345678": "charlie"}
VERSION = "0.12.333"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
GENERATE_ORDER = ["content-type", "x-amzn-codewhisperer-optout", "x-amzn-kiro-agent-mode", "x-amz-user-agent", "user-agent",
                  "host", "amz-sdk-invocation-id", "amz-sdk-request", "authorization", "content-length"]


def frame(event_type, payload):
    """One AWS EventStream message with string headers."""
    hdrs = b""
    for name, value in ((":message-type", "event"), (":event-type", event_type), (":content-type", "application/json")):
        hdrs += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
    body = json.dumps(payload).encode()
    prelude = struct.pack(">II", 12 + len(hdrs) + len(body) + 4, len(hdrs))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + hdrs + body
    return msg + struct.pack(">I", zlib.crc32(msg))


ANSWER = frame("assistantResponseEvent", {"content": "hello from the stub"}) + \
    frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01})


class Stub:
    """The recording upstream. conns[id] = list of (path, [(name, value), ...], account or None)."""

    def __init__(self, reject_first=None):
        self.lock = threading.Lock()
        self.conns = {}
        self.next_conn = 0
        self.owner = dict(ACCOUNTS)  # refresh token -> account (rotated tokens inherit)
        self.tokens = {}             # access token -> account
        self.issued = 0
        self.reject_first = set([reject_first] if reject_first else [])
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with stub.lock:
                    self.conn_id = stub.next_conn
                    stub.next_conn += 1
                    stub.conns[self.conn_id] = []

            def log_message(self, *a):
                pass

            def reply(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def record(self, account):
                with stub.lock:
                    stub.conns[self.conn_id].append((self.path.split("?")[0], list(self.headers.items()), account))

            def do_GET(self):
                account = stub.account_of(self.headers.get("Authorization"))
                self.record(account)
                if self.path.startswith("/getUsageLimits"):
                    self.reply(200, json.dumps({"limits": [], "usageBreakdownList": []}).encode())
                else:
                    self.reply(404, b'{"message":"not found"}')

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/refreshToken":
                    rt = json.loads(body)["refreshToken"]
                    with stub.lock:
                        account = stub.owner.get(rt)
                        stub.issued += 1
                        access = "at-%s-%d" % (account, stub.issued)
                        rotated = "%s-r%d" % (rt, stub.issued)
                        stub.owner[rotated] = account
                        stub.tokens[access] = account
                    self.record(account)
                    if account is None:
                        self.reply(400, b'{"error":"invalid_grant","error_description":"Invalid refresh token provided"}')
                        return
                    self.reply(200, json.dumps({"accessToken": access, "refreshToken": rotated, "expiresIn": 3600,
                                                "profileArn": "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
                                                }).encode())
                    return
                account = stub.account_of(self.headers.get("Authorization"))
                self.record(account)
                if self.path != "/generateAssistantResponse":
                    self.reply(404, b'{"message":"not found"}')
                    return
                with stub.lock:
                    reject = account in stub.reject_first
                    stub.reject_first.discard(account)
                if reject:
                    self.reply(401, b'{"message":"The bearer token included in the request is invalid."}')
                    return
                self.reply(200, ANSWER, "application/vnd.amazon.eventstream")

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def account_of(self, authorization):
        if not authorization or not authorization.startswith("Bearer "):
            return None
        with self.lock:
            return self.tokens.get(authorization[7:])

    def requests(self, path):
        """[(conn id, headers, account)] for every request to path, in arrival order per connection."""
        with self.lock:
            return [(cid, h, a) for cid, reqs in self.conns.items() for p, h, a in reqs if p == path]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def machine_id(refresh_token):
    return hashlib.sha256(("KotlinNativeAPI/" + refresh_token).encode()).hexdigest()


class UpstreamAffinityTest(unittest.TestCase):
    def run_traffic(self, reuse, rounds=3, parallel=9):
        stub = Stub(reject_first="alpha")
        self.addCleanup(stub.close)
        base = "http://127.0.0.1:%d" % stub.port
        env = {"KIRO_AUTH_TOKEN": json.dumps([{"auth": "Social", "refreshToken": rt} for rt in ACCOUNTS]),
               "KIRO_API_BASE": base, "KIRO_SOCIAL_REFRESH_URL": base + "/refreshToken",
               "KIRO_IDC_REFRESH_URL": base + "/token", "KIRO_POOL_STRATEGY": "round_robin",
               "KIRO_UPSTREAM_REUSE": reuse, "LOG_LEVEL": "info"}
        gw = Gateway(env=env)
        self.addCleanup(gw.cleanup)
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}

        def one(_):
            return request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY)

        with ThreadPoolExecutor(parallel) as ex:
            for _ in range(rounds):
                for st, _, data in ex.map(one, range(parallel)):
                    self.assertEqual(st, 200, data[:500])
                    self.assertIn(b"hello from the stub", data)
        gw.assert_clean_exit(self)
        return stub

    def check_generate_headers(self, stub, close, requests):
        gens = [(cid, h, a) for cid, h, a in stub.requests("/generateAssistantResponse")]
        self.assertEqual(len(gens), requests + 1)  # + the call rejected with 401
        order = list(GENERATE_ORDER)
        if close:
            order.insert(1, "connection")
        mids, invocations = {}, []
        for cid, h, account in gens:
            self.assertIsNotNone(account, "a generate call with an unknown token")
            names = [n.lower() for n, _ in h]
            self.assertEqual(names, order)
            d = {n.lower(): v for n, v in h}
            self.assertEqual(d["content-type"], "application/json")
            self.assertEqual(d["x-amzn-codewhisperer-optout"], "true")
            self.assertEqual(d["x-amzn-kiro-agent-mode"], "vibe")
            if close:
                self.assertEqual(d["connection"], "close")
            m = re.match(r"^aws-sdk-js/1\.0\.34 KiroIDE-(\S+)-([0-9a-f]{64})$", d["x-amz-user-agent"])
            self.assertTrue(m, d["x-amz-user-agent"])
            self.assertEqual(m.group(1), VERSION)
            mid = m.group(2)
            self.assertRegex(d["user-agent"], r"^aws-sdk-js/1\.0\.34 ua/2\.1 os/\S+ lang/js md/nodejs#\S+ "
                             r"api/codewhispererstreaming#1\.0\.34 m/E KiroIDE-%s-%s$" % (re.escape(VERSION), mid))
            mids.setdefault(account, set()).add(mid)
            self.assertRegex(d["amz-sdk-invocation-id"], UUID4)
            invocations.append(d["amz-sdk-invocation-id"])
            self.assertRegex(d["amz-sdk-request"], r"^attempt=[12]; max=3$")
            self.assertTrue(d["authorization"].startswith("Bearer at-%s-" % account))
        self.assertEqual(len(set(invocations)), len(invocations), "an invocation id was sent twice")
        # one machineId per account, derived from the configured refresh token (stable across the rotation), all distinct
        self.assertEqual(set(mids), set(ACCOUNTS.values()))
        for rt, account in ACCOUNTS.items():
            self.assertEqual(mids[account], {machine_id(rt)}, account)
        self.assertEqual(len({next(iter(v)) for v in mids.values()}), len(ACCOUNTS))
        return gens

    def check_retry(self, stub, gens):
        """alpha's first call got a 401: the next alpha call is attempt=2 with a new token, after a rotated refresh."""
        alpha = [(cid, dict((n.lower(), v) for n, v in h)) for cid, h, a in gens if a == "alpha"]
        attempts = [d["amz-sdk-request"] for _, d in alpha]
        self.assertEqual(attempts.count("attempt=2; max=3"), 1, attempts)
        self.assertEqual(sum(1 for cid, h, a in gens if a != "alpha" and ("amz-sdk-request", "attempt=2; max=3") in
                             [(n.lower(), v) for n, v in h]), 0)
        refreshes = [(h, a) for _, h, a in stub.requests("/refreshToken")]
        self.assertEqual(sum(1 for _, a in refreshes if a == "alpha"), 2, "alpha refreshed at start and after the 401")
        for h, account in refreshes:
            d = {n.lower(): v for n, v in h}
            self.assertEqual(d["user-agent"], "KiroIDE-%s-%s" % (VERSION, machine_id(
                next(rt for rt, a in ACCOUNTS.items() if a == account))))
            self.assertEqual(d["accept"], "application/json, text/plain, */*")
            self.assertEqual(d["content-type"], "application/json")
            self.assertEqual(d["connection"], "close")
        for _, h, _ in stub.requests("/getUsageLimits"):
            d = {n.lower(): v for n, v in h}
            self.assertRegex(d["user-agent"], r"^aws-sdk-js/1\.0\.0 ua/2\.1 .* api/codewhispererruntime#1\.0\.0 m/N,E KiroIDE-")
            self.assertEqual(d["amz-sdk-request"], "attempt=1; max=1")
            self.assertRegex(d["amz-sdk-invocation-id"], UUID4)
            self.assertEqual(d["connection"], "close")

    def test_one_account_per_connection(self):
        stub = self.run_traffic("account")
        gens = self.check_generate_headers(stub, close=False, requests=27)
        self.check_retry(stub, gens)
        per_conn = {}
        for cid, _, account in gens:
            per_conn.setdefault(cid, []).append(account)
        for cid, accounts in per_conn.items():
            self.assertEqual(len(set(accounts)), 1, "connection %d carried %s" % (cid, sorted(set(accounts))))
        self.assertEqual({a for accs in per_conn.values() for a in accs}, set(ACCOUNTS.values()))
        # keep-alive still works: far fewer connections than requests, some carried several
        self.assertLess(len(per_conn), len(gens))
        self.assertGreater(max(len(v) for v in per_conn.values()), 1)
        # control calls (refresh, usage) never share a connection with anything
        with stub.lock:
            for reqs in stub.conns.values():
                paths = {p for p, _, _ in reqs}
                if paths & {"/refreshToken", "/getUsageLimits"}:
                    self.assertEqual(len(reqs), 1, reqs)

    def test_reuse_never(self):
        stub = self.run_traffic("never", rounds=2)
        gens = self.check_generate_headers(stub, close=True, requests=18)
        self.check_retry(stub, gens)
        with stub.lock:
            for cid, reqs in stub.conns.items():
                self.assertLessEqual(len(reqs), 1, "connection %d carried %d requests" % (cid, len(reqs)))


class SimConnectionStatsTest(unittest.TestCase):
    def test_sim_sees_one_account_per_connection(self):
        sim = Sim()
        self.addCleanup(sim.cleanup)
        names = ["sim-ok-conn%d" % i for i in range(4)]
        gw = Gateway(env=sim_accounts_env(sim, names, {"KIRO_POOL_STRATEGY": "round_robin"}))
        self.addCleanup(gw.cleanup)
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "[[sim:text frames=5 size=8]] hi"}]}

        def one(_):
            return request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY)

        with ThreadPoolExecutor(8) as ex:
            for _ in range(3):
                for st, _, data in ex.map(one, range(8)):
                    self.assertEqual(st, 200, data[:300])
        s = sim.stats()
        self.assertGreaterEqual(sum(s["accounts"][n]["generates"] for n in names), 24)
        self.assertTrue(all(s["accounts"][n]["generates"] > 0 for n in names), s["accounts"])
        self.assertEqual(s["connections_multi_account"], 0, s)
        self.assertEqual(s["max_accounts_per_connection"], 1, s)
        st, _, metrics = request(gw.port, "GET", "/metrics", key=CLIENT_KEY)
        self.assertEqual(st, 200)
        self.assertRegex(metrics.decode(), r"(?m)^# TYPE k2a_upstream_connections_evicted_total counter\n"
                                           r"k2a_upstream_connections_evicted_total \d+$")
        gw.assert_clean_exit(self)
        sim.assert_clean_exit(self)

    def test_headers_pass_the_2026_simulator(self):
        """kiro-sim in its 2026 mode checks the fingerprint headers of every generate call (names only in its log): none
        is missing or malformed, whatever the answer to the body is."""
        sim = Proc([SIM, "--port", "0"], name="kiro-sim")  # the 2026 mode: no --legacy-2025
        self.addCleanup(sim.cleanup)
        sim.base = "http://127.0.0.1:%d" % sim.port
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-fp1", "sim-ok-fp2"], {"KIRO_POOL_STRATEGY": "round_robin"}))
        self.addCleanup(gw.cleanup)
        for _ in range(4):
            request(gw.port, "POST", "/v1/messages", key=CLIENT_KEY, body={
                "model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
        st, _, data = request(sim.port, "GET", "/sim/stats")
        self.assertEqual(st, 200)
        s = json.loads(data)
        self.assertGreaterEqual(s["requests"]["generateAssistantResponse"], 4, s["requests"])
        self.assertEqual((s["header_warnings"], s["header_warnings_by_name"]), (0, {}), sim.stderr()[-2000:])
        gw.assert_clean_exit(self)


if __name__ == "__main__":
    main()
