"""The testable claims of SECURITY.md, one test each:
 - secrets never reach a log line: a full run with refreshes, refresh-token rotations, refresh failures, requests with
   the client key in both headers, wrong keys, the admin key and an IdC client secret, at LOG_LEVEL=debug in text and in
   JSON, to stderr and to LOG_FILE: no configured or issued secret appears (refresh tokens, rotated ones, every access
   token the simulator issued, the client key, the admin key, the IdC client secret), and no prompt text either;
 - the state file is 0600 in a 0700 directory the gateway created, and LOG_FILE is created 0600;
 - /api/tokens and /metrics (and the dashboard page) contain no secret; refresh tokens are shown masked;
 - /v1/*, /api/tokens and /metrics answer 401 without a key, with a wrong key and with a wrong key of the right length
   (identical answers: one code path); the admin key opens /api/tokens and /metrics but not the model routes; error
   bodies never echo the key that was sent;
 - KIRO_TLS_INSECURE=true logs a warning naming the variable.
Upstream TLS verification itself (wrong CA, wrong host, the positive case) is tested in test_faults_upstream.py."""
import json
import os
import re
import resource
import shutil
import stat
import tempfile
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, request
from hostile import body_for, post, wait_until

ADMIN_KEY = "admin-key-SECRET-9f8e7d6c5b4a"
IDC_SECRET = "idc-client-secret-SECRET-0a1b2c3d4e5f"
ACCESS_TOKEN_RE = re.compile(r"aoa[A-Za-z0-9_-]{40}")  # what kiro-sim issues
PROMPT_MARKER = "prompt-text-PRIVATE-5e6f7a8b"  # the conversation (and kiro-sim's echo of it) is never logged either


def strings_under_token_keys(doc, out):
    """Every string value whose key names a token or a secret, anywhere in a JSON document."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if isinstance(v, str) and re.search(r"token|secret", k, re.I) and len(v) >= 6:
                out.add(v)
            else:
                strings_under_token_keys(v, out)
    elif isinstance(doc, list):
        for v in doc:
            strings_under_token_keys(v, out)
    return out


class Secrets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="k2a-security-")
        # short-lived access tokens: background refreshes (and rotations of sim-rotate-*) happen during the run
        cls.sim = Sim(args=["--token-ttl", "3", "--idc-client-id", "idc-client-id-1", "--idc-client-secret", IDC_SECRET])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.sim.cleanup()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def gateway(self, tag, **extra):
        # accounts of their own per run: kiro-sim keeps rotating sim-rotate-* and refuses a superseded refresh token
        self.rotating = "sim-rotate-SECRET-%s-a1b2c3" % tag
        self.accounts = [
            {"auth": "Social", "refreshToken": self.rotating, "description": "rotating"},
            {"auth": "Social", "refreshToken": "sim-ok-SECRET-%s-d4e5f6" % tag, "description": "healthy"},
            {"auth": "IdC", "refreshToken": "sim-ok-SECRET-idc-%s-g7h8i9" % tag, "clientId": "idc-client-id-1",
             "clientSecret": IDC_SECRET},
            {"auth": "Social", "refreshToken": "sim-badrefresh-SECRET-%s-j0k1l2" % tag, "description": "broken"},
            {"auth": "Social", "refreshToken": "sim-403once-SECRET-%s-m3n4o5" % tag, "description": "forbidden once"},
        ]
        base = self.sim.base
        env = {"KIRO_AUTH_TOKEN": json.dumps(self.accounts), "KIRO_API_BASE": base,
               "KIRO_SOCIAL_REFRESH_URL": base + "/refreshToken", "KIRO_IDC_REFRESH_URL": base + "/token",
               "KIRO_ADMIN_TOKEN": ADMIN_KEY, "LOG_LEVEL": "debug", "KIRO_POOL_STRATEGY": "round_robin",
               "KIRO_USAGE_POLL_INTERVAL_S": "1", "KIRO_REFRESH_AHEAD_PCT": "50",
               # a state directory that does not exist yet: the gateway creates it
               "KIRO_STATE_FILE": os.path.join(self.tmp, tag, "state", "kiro2api-state.json"),
               "LOG_FILE": os.path.join(self.tmp, tag + ".log")}
        env.update(extra)
        return Gateway(env=env)

    def exercise(self, gw):
        """Traffic that makes the gateway log as much as it can."""
        for i in range(12):
            dialect = ("anthropic", "openai")[i % 2]
            headers = {"authorization": "Bearer " + CLIENT_KEY} if i % 3 == 0 else None
            key_hdr = {} if headers else {"x-api-key": CLIENT_KEY}
            from k2a import request as req
            path = "/v1/messages" if dialect == "anthropic" else "/v1/chat/completions"
            h = dict(headers or key_hdr)
            h["x-request-id"] = "sec-%d" % i
            st, _, data = req(gw.port, "POST", path, body=body_for(dialect, PROMPT_MARKER + " %d" % i, stream=i % 2 == 0),
                              headers=h)
            self.assertIn(st, (200, 503), data)
            time.sleep(0.25)
        # failures: a fault mid-stream, a 429, wrong keys, the admin key where it does not open anything
        post(gw.port, "anthropic", body_for("anthropic", "[[sim:text frames=4 size=8]] [[sim:cut after=2]]"))
        post(gw.port, "openai", body_for("openai", "[[sim:status code=429]]", stream=False))
        for key in ("wrong", "x" * len(CLIENT_KEY), ADMIN_KEY):
            request(gw.port, "POST", "/v1/messages", body=body_for("anthropic", "hi"), key=key)
        request(gw.port, "GET", "/api/tokens", key=ADMIN_KEY)
        request(gw.port, "GET", "/metrics", headers={"authorization": "Bearer " + CLIENT_KEY})
        # long enough for access tokens (3 s) to be renewed in the background, rotating sim-rotate-*'s refresh token
        deadline = time.time() + 8 * SLOW
        while time.time() < deadline and self.sim.stats()["accounts"].get(self.rotating, {}).get("rotation", 0) < 2:
            time.sleep(0.2)
        self.assertGreaterEqual(self.sim.stats()["accounts"][self.rotating]["rotation"], 2)

    def secrets(self, gw_state_file):
        s = {CLIENT_KEY, ADMIN_KEY, IDC_SECRET}
        s |= {a["refreshToken"] for a in self.accounts}
        # rotated refresh tokens: sim-rotate-X-rN
        rot = self.sim.stats()["accounts"][self.rotating]["rotation"]
        s |= {"%s-r%d" % (self.rotating, n) for n in range(1, rot + 1)}
        # access tokens and the current refresh tokens as persisted
        with open(gw_state_file) as f:
            s |= strings_under_token_keys(json.load(f), set())
        return s

    def check_run(self, fmt):
        gw = self.gateway(fmt, LOG_FORMAT=fmt)
        try:
            self.exercise(gw)
            state_file = os.path.join(self.tmp, fmt, "state", "kiro2api-state.json")
            self.assertTrue(wait_until(lambda: os.path.exists(state_file), 5 * SLOW))
            st, _, tokens = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            st, _, metrics = request(gw.port, "GET", "/metrics", key=ADMIN_KEY)
            self.assertEqual(st, 200)
            st, _, page = request(gw.port, "GET", "/")
            gw.assert_clean_exit(self)
            secrets = self.secrets(state_file)
            self.assertTrue(any(ACCESS_TOKEN_RE.fullmatch(x) for x in secrets), "no access token in the state file")
            with open(os.path.join(self.tmp, fmt + ".log"), "rb") as f:
                logfile = f.read().decode()
            stderr = gw.stderr()
            self.assertIn("refreshed", stderr)  # the run did log at debug level
            self.assertIn("rotated", stderr)
            for name, text in (("stderr", stderr), ("LOG_FILE", logfile)):
                self.assertNotIn(PROMPT_MARKER, text, "%s (LOG_FORMAT=%s) contains prompt text" % (name, fmt))
            for name, text in (("stderr", stderr), ("LOG_FILE", logfile), ("/api/tokens", tokens.decode()),
                               ("/metrics", metrics.decode()), ("/", page.decode(errors="replace"))):
                for secret in secrets:
                    self.assertNotIn(secret, text, "%s (LOG_FORMAT=%s) contains a secret" % (name, fmt))
                self.assertIsNone(ACCESS_TOKEN_RE.search(text), "%s (LOG_FORMAT=%s) contains an access token" % (name, fmt))
                # kiro-sim's rotated tokens extend the original ("X-r1", "X-r2"): masking X would hide most of a leaked
                # rotated token, leaving "****" + X's last 4 + "-rN"; that must not appear either
                self.assertNotRegex(text, re.escape("****" + self.rotating[-4:]) + r"-r\d",
                                    "%s (LOG_FORMAT=%s) contains a rotated refresh token" % (name, fmt))
            if fmt == "json":
                for line in stderr.splitlines():
                    if line.startswith("{"):
                        json.loads(line)  # every line stays valid JSON after masking
            # the masked forms are what operators see
            # what operators see instead: "****" + the last 4 characters of the current refresh token
            doc = json.loads(tokens)
            previews = [t["token_preview"] for t in doc["tokens"]]
            current = [self.rotating + "-r%d" % self.sim.stats()["accounts"][self.rotating]["rotation"]]
            current += [a["refreshToken"] for a in self.accounts[1:]]
            self.assertEqual(previews, ["****" + t[-4:] for t in current])
            return state_file
        finally:
            gw.cleanup()

    def test_no_secret_in_text_logs(self):
        self.check_run("text")

    def test_no_secret_in_json_logs_and_file_modes(self):
        state_file = self.check_run("json")
        self.assertEqual(stat.S_IMODE(os.stat(state_file).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.dirname(state_file)).st_mode), 0o700)
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.tmp, "json.log")).st_mode), 0o600)


class Access(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env={"KIRO_AUTH_TOKEN": json.dumps([{"refreshToken": "sim-ok-access"}]), "KIRO_API_BASE": cls.sim.base,
                              "KIRO_SOCIAL_REFRESH_URL": cls.sim.base + "/refreshToken", "KIRO_ADMIN_TOKEN": ADMIN_KEY})

    @classmethod
    def tearDownClass(cls):
        tc = unittest.TestCase()
        try:
            cls.gw.assert_clean_exit(tc)
            cls.sim.assert_clean_exit(tc)
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    ROUTES = (("POST", "/v1/messages"), ("POST", "/v1/chat/completions"), ("POST", "/v1/messages/count_tokens"),
              ("GET", "/v1/models"), ("GET", "/api/tokens"), ("GET", "/metrics"))

    def call(self, method, path, headers):
        body = body_for("openai" if "chat" in path else "anthropic", "hi", stream=False) if method == "POST" else None
        return request(self.gw.port, method, path, body=body, headers=headers)

    def test_401_without_or_with_a_wrong_key(self):
        same_length = "y" * len(CLIENT_KEY)
        near = CLIENT_KEY[:-1] + ("x" if CLIENT_KEY[-1] != "x" else "y")
        for method, path in self.ROUTES:
            answers = []
            for headers in ({}, {"x-api-key": "wrong"}, {"x-api-key": same_length}, {"x-api-key": near},
                            {"authorization": "Bearer " + same_length}, {"authorization": "Bearer "},
                            {"x-api-key": CLIENT_KEY + "x"}):
                st, h, data = self.call(method, path, headers)
                self.assertEqual(st, 401, (path, headers, data))
                doc = json.loads(data)
                self.assertIn("error", doc)
                for sent in headers.values():
                    if len(sent) > 8:
                        self.assertNotIn(sent.replace("Bearer ", ""), data.decode())
                answers.append(data)
            # a wrong key of any length and no key at all get the same answer: one code path
            self.assertEqual(len(set(answers[1:])), 1, (path, answers))
            st, _, _ = self.call(method, path, {"x-api-key": CLIENT_KEY})
            self.assertNotEqual(st, 401, path)

    def test_admin_key_opens_only_the_admin_routes(self):
        for path in ("/api/tokens", "/metrics"):
            self.assertEqual(request(self.gw.port, "GET", path, key=ADMIN_KEY)[0], 200)
            self.assertEqual(request(self.gw.port, "GET", path)[0], 401)
        for method, path in self.ROUTES[:4]:
            self.assertEqual(self.call(method, path, {"x-api-key": ADMIN_KEY})[0], 401, path)

    def test_dashboard_page_is_public_but_its_data_is_not(self):
        st, h, page = request(self.gw.port, "GET", "/")
        self.assertIn(st, (200, 404), page)
        self.assertNotIn(CLIENT_KEY.encode(), page)
        self.assertNotIn(ADMIN_KEY.encode(), page)
        self.assertEqual(request(self.gw.port, "GET", "/api/tokens")[0], 401)
        self.assertEqual(request(self.gw.port, "GET", "/healthz")[0], 200)  # liveness needs no key
        st, _, body = request(self.gw.port, "GET", "/readyz")
        self.assertNotIn(b"sim-ok-access", body)


class Limits(unittest.TestCase):
    def test_open_file_limit_raised_to_the_hard_limit(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard <= 256:
            self.skipTest("hard open-file limit %d" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))  # inherited by the gateway
        try:
            gw = Gateway()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        try:
            with open("/proc/%d/limits" % gw.p.pid) as f:
                line = [l for l in f if l.startswith("Max open files")][0]
            self.assertEqual(line.split()[3:5], [str(hard), str(hard)], line)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()


class TlsInsecure(unittest.TestCase):
    def test_insecure_logs_a_warning(self):
        gw = Gateway(env={"KIRO_TLS_INSECURE": "true"})
        try:
            self.assertTrue(wait_until(lambda: "KIRO_TLS_INSECURE" in gw.stderr(), 5 * SLOW), gw.stderr())
            line = [l for l in gw.stderr().splitlines() if "KIRO_TLS_INSECURE" in l][0]
            self.assertRegex(line, r"\bWARN\b")
            self.assertRegex(line, "NOT verified")
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
        gw = Gateway()
        try:
            self.assertNotIn("KIRO_TLS_INSECURE", gw.stderr())
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()


if __name__ == "__main__":
    main()
