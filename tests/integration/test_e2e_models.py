"""Model catalogs end to end: the gateway talks to a small python stub in front of kiro-sim that serves
ListAvailableModels itself (a different catalog per account, paged with nextToken) and proxies everything else
(refresh, getUsageLimits, generateAssistantResponse) to kiro-sim. It checks:
- the catalog fetch: GET ListAvailableModels?origin=AI_EDITOR&maxResults=50, profileArn, nextToken paging, in the
  background after the first refresh, never on the request path;
- /v1/models lists the union of the catalogs (dotted ids and Anthropic-style aliases, modelName as display name,
  tokenLimits as the context window);
- routing: a model only one account has goes to that account; a model no account has is a 400 in the client's
  dialect naming it and the available ones, with no upstream call;
- an INVALID_MODEL_ID answer fails over to another account and removes the model from that account's catalog;
- the catalogs are in the state file: after a restart, with every fetch failing (503, a repeated nextToken), the
  previous catalogs stay in use."""
import http.client
import http.server
import json
import os
import tempfile
import threading
import unittest
import urllib.parse

from e2e_util import body, post, wait_accounts, wait_until
from k2a import CLIENT_KEY, Gateway, Sim, main, request

ACCOUNT_B, ACCOUNT_A = "sim-ok-catalog-b", "sim-ok-catalog-a"  # B is index 0: sequential selection tries it first


def model(mid, name, window):
    return {"modelId": mid, "modelName": name, "description": "stub", "supportedInputTypes": ["TEXT", "IMAGE"],
            "tokenLimits": {"maxInputTokens": window, "maxOutputTokens": 64000}, "rateMultiplier": 1, "rateUnit": "Credit"}


SONNET = model("claude-sonnet-4.5", "Claude Sonnet 4.5 (stub)", 200000)
HAIKU = model("claude-haiku-4.5", "Claude Haiku 4.5 (stub)", 200000)
OPUS = model("claude-opus-4.8", "Claude Opus 4.8 (stub)", 1000000)
PAGES = {
    ACCOUNT_B: {"": {"models": [SONNET, HAIKU], "defaultModelId": "claude-sonnet-4.5", "nextToken": None}},
    ACCOUNT_A: {"": {"models": [SONNET], "nextToken": "page-2"},
                "page-2": {"models": [OPUS], "defaultModelId": "claude-sonnet-4.5", "nextToken": " "}},
}


class Stub(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sim_base):
        super().__init__(("127.0.0.1", 0), Handler)
        self.sim = urllib.parse.urlparse(sim_base)
        self.lock = threading.Lock()
        self.names = {}          # refresh token (original or rotated) -> account name
        self.by_token = {}       # access token -> account name
        self.arns = {}           # account name -> profileArn
        self.listings = []       # (account, query dict) of every ListAvailableModels call
        self.generates = []      # (account, modelId) of every generateAssistantResponse
        self.mode = "pages"      # "pages" | "fail" (503) | "loop" (a repeated nextToken)
        self.invalid = set()     # (account, modelId) answered 400 INVALID_MODEL_ID
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.server_address[1]

    def account_of(self, headers):
        auth = headers.get("authorization", "")
        with self.lock:
            return self.by_token.get(auth[7:]) if auth.startswith("Bearer ") else None

    def count(self, what, account):
        with self.lock:
            return sum(1 for x in (self.listings if what == "list" else self.generates) if x[0] == account)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, data, ctype="application/json"):
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("content-length") or 0)
        return self.rfile.read(n) if n else b""

    def proxy(self, data):
        s = self.server
        conn = http.client.HTTPConnection(s.sim.hostname, s.sim.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        conn.request(self.command, self.path, body=data if data else None, headers=headers)
        r = conn.getresponse()
        out = r.read()
        conn.close()
        return r.status, r.getheader("content-type") or "application/json", out

    def do_GET(self):
        s = self.server
        url = urllib.parse.urlparse(self.path)
        if url.path != "/ListAvailableModels":
            self.relay(b"")
            return
        account = s.account_of(self.headers)
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        with s.lock:
            s.listings.append((account, query))
            mode = s.mode
        if account is None:
            return self.send(403, b'{"message":"Invalid token"}')
        if mode == "fail":
            return self.send(503, b'{"message":"Service Unavailable"}')
        if mode == "loop":
            return self.send(200, json.dumps({"models": [HAIKU], "nextToken": "again"}).encode())
        page = PAGES[account].get(query.get("nextToken", ""))
        if page is None:
            return self.send(400, b'{"message":"bad nextToken"}')
        self.send(200, json.dumps(page).encode())

    def relay(self, data):
        status, ctype, out = self.proxy(data)
        self.send(status, out, ctype)
        return status, out

    def do_POST(self):
        s = self.server
        data = self.body()
        path = urllib.parse.urlparse(self.path).path
        if path == "/refreshToken":
            rt = json.loads(data)["refreshToken"]
            status, out = self.relay(data)
            if status == 200:
                r = json.loads(out)
                with s.lock:
                    name = s.names.get(rt, rt)
                    s.names[r.get("refreshToken") or rt] = name
                    s.by_token[r["accessToken"]] = name
                    s.arns[name] = r.get("profileArn")
            return
        if path == "/generateAssistantResponse":
            account = s.account_of(self.headers)
            mid = json.loads(data)["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]
            with s.lock:  # counted before the answer: the client may look right after it
                s.generates.append((account, mid))
            if (account, mid) in s.invalid:
                return self.send(400, b'{"message":"Invalid model. Please select a different model to continue.",'
                                      b'"reason":"INVALID_MODEL_ID"}')
            self.relay(data)
            return
        self.relay(data)


class Models(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.stub = Stub(cls.sim.base)
        cls.tmp = tempfile.TemporaryDirectory()
        cls.state = os.path.join(cls.tmp.name, "state.json")

    @classmethod
    def tearDownClass(cls):
        cls.stub.shutdown()
        cls.stub.server_close()
        cls.sim.cleanup()
        cls.tmp.cleanup()

    def gateway(self, extra=None):
        env = {"KIRO_AUTH_TOKEN": json.dumps([{"auth": "Social", "refreshToken": ACCOUNT_B},
                                              {"auth": "Social", "refreshToken": ACCOUNT_A}]),
               "KIRO_API_BASE": self.stub.base,
               "KIRO_SOCIAL_REFRESH_URL": self.stub.base + "/refreshToken",
               "KIRO_IDC_REFRESH_URL": self.stub.base + "/token",
               "KIRO_POOL_STRATEGY": "sequential",
               "KIRO_USAGE_POLL_INTERVAL_S": "0",
               "KIRO_STATE_FILE": self.state}
        env.update(extra or {})
        return Gateway(env=env)

    def listing(self, gw):
        st, _, data = request(gw.port, "GET", "/v1/models", key=CLIENT_KEY)
        self.assertEqual(st, 200, data)
        return {m["id"]: m for m in json.loads(data)["data"]}

    def served(self, gw, model_name, openai=False):
        if openai:
            return request(gw.port, "POST", "/v1/chat/completions", key=CLIENT_KEY,
                           body={"model": model_name, "messages": [{"role": "user", "content": "hi"}]})
        return post(gw, body("hi", stream=False, model=model_name))

    def test_catalogs(self):
        want = {"claude-sonnet-4.5", "claude-sonnet-4-5", "claude-haiku-4.5", "claude-haiku-4-5", "claude-opus-4.8",
                "claude-opus-4-8"}
        gw = self.gateway()
        try:
            wait_accounts(self, gw, ["ok", "ok"])
            # 1. the background fetch, paged; then /v1/models is the union (not the built-in list)
            models = wait_until(self, "the union of both catalogs on /v1/models",
                                lambda: (lambda m: m if set(m) == want else None)(self.listing(gw)))
            self.assertEqual(models["claude-opus-4-8"]["display_name"], "Claude Opus 4.8 (stub)")
            self.assertEqual(models["claude-opus-4.8"]["context_window"], 1000000)
            self.assertEqual(models["claude-opus-4-8"]["max_tokens"], 1000000)
            self.assertEqual(models["claude-sonnet-4-5"]["context_window"], 200000)
            self.assertEqual(models["claude-haiku-4.5"]["max_output_tokens"], 64000)
            st, _, data = request(gw.port, "GET", "/v1/models/claude-opus-4-8-20260101", key=CLIENT_KEY)
            self.assertEqual((st, json.loads(data)["context_window"]), (200, 1000000))
            st, _, data = request(gw.port, "GET", "/v1/models/claude-opus-5", key=CLIENT_KEY)
            self.assertEqual(st, 404, data)
            with self.stub.lock:
                listings = list(self.stub.listings)
            a_calls = [q for acct, q in listings if acct == ACCOUNT_A]
            self.assertEqual(len(a_calls), 2, listings)
            for q in a_calls:
                self.assertEqual((q["origin"], q["maxResults"]), ("AI_EDITOR", "50"))
                self.assertEqual(q.get("profileArn"), self.stub.arns[ACCOUNT_A])
            self.assertNotIn("nextToken", a_calls[0])
            self.assertEqual(a_calls[1]["nextToken"], "page-2")
            self.assertEqual(len([q for acct, q in listings if acct == ACCOUNT_B]), 1)
            t = json.loads(request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)[2])["tokens"]
            self.assertEqual([(a["models"], a["models_default"]) for a in t],
                             [(2, "claude-sonnet-4.5"), (2, "claude-sonnet-4.5")])
            self.assertTrue(all(a["models_fetched_at"].endswith("Z") for a in t))

            # 2. routing: opus 4.8 only on A (B, first in sequential order, is not tried)
            before_b, before_a = self.stub.count("gen", ACCOUNT_B), self.stub.count("gen", ACCOUNT_A)
            st, _, data = self.served(gw, "claude-opus-4-8")
            self.assertEqual(st, 200, data)
            self.assertEqual(json.loads(data)["model"], "claude-opus-4-8")
            self.assertEqual((self.stub.count("gen", ACCOUNT_B) - before_b, self.stub.count("gen", ACCOUNT_A) - before_a),
                             (0, 1))
            # haiku only on B
            st, _, data = self.served(gw, "claude-haiku-4-5-20251001")
            self.assertEqual(st, 200, data)
            self.assertEqual(self.stub.count("gen", ACCOUNT_B) - before_b, 1)

            # 3. a model no account has: 400 in each dialect, naming it and the available ones, and no upstream call
            n = len(self.stub.generates)
            st, _, data = self.served(gw, "claude-sonnet-5")
            self.assertEqual(st, 400, data)
            err = json.loads(data)["error"]
            self.assertEqual(err["type"], "invalid_request_error")
            self.assertIn('"claude-sonnet-5" is not available on any configured Kiro account', err["message"])
            self.assertIn("claude-haiku-4.5, claude-opus-4.8, claude-sonnet-4.5", err["message"])
            st, _, data = self.served(gw, "claude-sonnet-5", openai=True)
            self.assertEqual(st, 400, data)
            err = json.loads(data)["error"]
            self.assertEqual((err["type"], err["code"]), ("invalid_request_error", "model_not_found"))
            self.assertIn("claude-sonnet-5", err["message"])
            self.assertEqual(len(self.stub.generates), n)

            # 4. INVALID_MODEL_ID on B: fail over to A, B loses the model (no penalty), later requests skip B
            self.stub.invalid.add((ACCOUNT_B, "claude-sonnet-4.5"))
            before_b, before_a = self.stub.count("gen", ACCOUNT_B), self.stub.count("gen", ACCOUNT_A)
            st, _, data = self.served(gw, "claude-sonnet-4-5", openai=True)
            self.assertEqual(st, 200, data)
            st, _, data = self.served(gw, "claude-sonnet-4-5")
            self.assertEqual(st, 200, data)
            self.assertEqual((self.stub.count("gen", ACCOUNT_B) - before_b, self.stub.count("gen", ACCOUNT_A) - before_a),
                             (1, 2))
            self.assertEqual([a["state"] for a in json.loads(request(gw.port, "GET", "/api/tokens",
                                                                      key=CLIENT_KEY)[2])["tokens"]], ["ok", "ok"])
            # the fetches happened in the background only: none since the catalogs were known
            self.assertEqual(len(self.stub.listings), len(listings))
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()

        # 5. the state file holds the catalogs (B without sonnet 4.5 any more)
        with open(self.state) as f:
            records = json.load(f)["accounts"]
        self.assertEqual(len(records), 2)
        catalogs = [json.loads(r["catalog"]) for r in records]
        ids = sorted(sorted(m["modelId"] for m in c["models"]) for c in catalogs)
        self.assertEqual(ids, [["claude-haiku-4.5"], ["claude-opus-4.8", "claude-sonnet-4.5"]])

        # 6. a restart with every fetch failing keeps the stored catalogs
        self.stub.mode = "fail"
        n = len(self.stub.listings)
        gw = self.gateway({"KIRO_CATALOG_REFRESH_S": "1"})
        try:
            wait_accounts(self, gw, ["ok", "ok"])
            self.assertEqual(set(self.listing(gw)), want)  # before any fetch: from the state file
            wait_until(self, "a failed fetch", lambda: "ListAvailableModels failed" in gw.stderr())
            self.stub.mode = "loop"
            wait_until(self, "a repeated nextToken", lambda: "nextToken repeated" in gw.stderr(), timeout=200)
            self.assertIn("keeping the previous catalog", gw.stderr())
            self.assertGreater(len(self.stub.listings), n)
            self.assertEqual(set(self.listing(gw)), want)
            before_b = self.stub.count("gen", ACCOUNT_B)
            st, _, data = self.served(gw, "claude-sonnet-4-5")
            self.assertEqual(st, 200, data)
            self.assertEqual(self.stub.count("gen", ACCOUNT_B), before_b)  # B's stored catalog lacks it
            for tok in list(self.stub.by_token):
                self.assertNotIn(tok, gw.stderr())  # no access token in the warnings
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()


if __name__ == "__main__":
    main()
