"""The account pool seen through the gateway, with kiro-sim accounts chosen by refresh-token prefix:
- Social and IdC refresh (the simulator accepts one IdC client: the right secret works, a wrong one makes the account
  invalid), and both kinds serve requests;
- 100 concurrent requests waiting for one slow refresh cause exactly one refresh;
- a pool [exhausted, 429, ok] serves every request from the third account, with no client-visible error;
- a 403 once: the account refreshes and the request is retried on it;
- an all-bad pool: one clear error naming every attempt;
- the validator's 400 does not penalise the account;
- /readyz: 503 with an all-invalid pool, 200 with one good account;
- /api/tokens and /metrics: need a key, never show a refresh or access token (every one in the state file is grepped
  for), do not trigger refreshes or upstream calls; /metrics has per-account lines labelled by account."""
import json
import os
import re
import tempfile
import threading
import unittest

from e2e_util import body, gateway, post, sim_account, tokens, wait_accounts, wait_until
from k2a import CLIENT_KEY, SLOW, Sim, main, request

IDC_ID, IDC_SECRET = "sim-idc-client-0123456789", "sim-idc-secret-abcdefghij"
SLOW_REFRESH_MS = 2000


def idc(token, secret=IDC_SECRET, **kw):
    return dict({"auth": "IdC", "refreshToken": token, "clientId": IDC_ID, "clientSecret": secret}, **kw)


class Pool(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(["--idc-client-id", IDC_ID, "--idc-client-secret", IDC_SECRET,
                       "--slow-refresh-ms", str(int(SLOW_REFRESH_MS * SLOW))])

    @classmethod
    def tearDownClass(cls):
        try:
            st = cls.sim.stats()
            assert st["rejections"] == 0, st["rejections_by_rule"]
        finally:
            cls.sim.cleanup()

    def served_by(self, names, fn):
        """Runs fn(); returns {name: generate_ok delta} for the given simulator accounts."""
        before = {n: sim_account(self.sim, n).get("generate_ok", 0) for n in names}
        fn()
        return {n: sim_account(self.sim, n).get("generate_ok", 0) - before[n] for n in names}

    def ok(self, gw, content="hi", stream=False):
        st, _, data = post(gw, body(content, stream=stream))
        self.assertEqual(st, 200, data[-600:])
        return data

    def test_social_and_idc_refresh(self):
        accounts = ["sim-ok-social1", idc("sim-ok-idc1"), idc("sim-ok-idc2", secret="not-the-secret")]
        before = self.sim.stats()["requests"]
        with gateway(self, self.sim, accounts, {"KIRO_POOL_STRATEGY": "round_robin"}) as gw:
            t = wait_accounts(self, gw, ["ok", "ok", "invalid"])
            self.assertEqual([a["auth_type"] for a in t], ["social", "idc", "idc"])
            self.assertIn("IdC client rejected", t[2]["state_reason"])
            after = self.sim.stats()["requests"]
            self.assertEqual(after["refreshToken"] - before["refreshToken"], 1)
            self.assertGreaterEqual(after["token"] - before["token"], 2)  # the IdC endpoint, right and wrong client
            # both good accounts serve (round robin), the invalid one never does
            served = self.served_by(["sim-ok-social1", "sim-ok-idc1"], lambda: [self.ok(gw) for _ in range(4)])
            self.assertEqual(served, {"sim-ok-social1": 2, "sim-ok-idc1": 2})
            self.assertNotIn("sim-ok-idc2", self.sim.stats()["accounts"])  # the simulator refused the client first
            self.assertEqual(sim_account(self.sim, "sim-ok-idc1")["refreshes"], 1)

    def test_concurrent_requests_share_one_refresh(self):
        # the start-up refresh of this account takes SLOW_REFRESH_MS: 100 requests sent meanwhile all wait for it
        with gateway(self, self.sim, ["sim-slowrefresh-burst"]) as gw:
            results, lock = [], threading.Lock()

            def one(i):
                r = post(gw, body("hello %d" % i, stream=i % 2 == 0), timeout=60)
                with lock:
                    results.append(r)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120 * SLOW)
            self.assertEqual(len(results), 100)
            self.assertEqual(sorted(st for st, _, _ in results), [200] * 100, [d[-300:] for st, _, d in results if st != 200][:3])
            acct = sim_account(self.sim, "sim-slowrefresh-burst")
            self.assertEqual(acct["refreshes"], 1)
            self.assertEqual(acct["generate_ok"], 100)
            stats = tokens(gw)["pool_stats"]
            self.assertEqual(stats["refreshes"], 1)
            self.assertGreaterEqual(stats["refresh_waits"], 1)  # they did wait for it

    def test_exhausted_429_ok_serves_from_the_third(self):
        names = ["sim-exhausted-fo1", "sim-429-fo1", "sim-ok-fo1"]
        with gateway(self, self.sim, names) as gw:
            wait_accounts(self, gw, ["ok", "ok", "ok"])
            served = self.served_by(names, lambda: [self.ok(gw, stream=i % 2 == 0) for i in range(6)])
            self.assertEqual(served, {names[0]: 0, names[1]: 0, names[2]: 6})
            self.assertEqual(sim_account(self.sim, names[0])["generates"], 1)  # exhausted until the reset date
            self.assertGreaterEqual(sim_account(self.sim, names[1])["generates"], 1)
            t = tokens(gw)["tokens"]
            self.assertEqual((t[0]["state"], t[2]["state"]), ("exhausted", "ok"))
            self.assertEqual(t[1]["last_error"], "rate limited (429)")  # cooling (or just back from its 2 s cooldown)
            self.assertGreaterEqual(tokens(gw)["pool_stats"]["failovers"], 2)

    def test_403_once_refreshes_and_retries(self):
        with gateway(self, self.sim, ["sim-403once-r1"]) as gw:
            wait_accounts(self, gw, ["ok"])
            data = json.loads(self.ok(gw))
            self.assertEqual(data["content"], [{"type": "text", "text": "echo: hi"}])
            acct = sim_account(self.sim, "sim-403once-r1")
            self.assertEqual((acct["refreshes"], acct["generates"], acct["generate_ok"]), (2, 2, 1))
            self.ok(gw)  # the new token keeps working, without another refresh
            self.assertEqual(sim_account(self.sim, "sim-403once-r1")["refreshes"], 2)
            self.assertEqual(tokens(gw)["tokens"][0]["state"], "ok")

    def test_all_bad_pool_names_every_attempt(self):
        with gateway(self, self.sim, ["sim-403-bad1", "sim-500-bad1", "sim-429-bad1"]) as gw:
            wait_accounts(self, gw, ["ok", "ok", "ok"])
            for stream in (True, False):
                with self.subTest(stream=stream):
                    st, headers, data = post(gw, body("hi", stream=stream))
                    err = json.loads(data)
                    self.assertEqual(err["type"], "error")
                    # 429/503 tell the SDKs when to retry: at least a second, at most an hour
                    self.assertTrue(1 <= int(headers["retry-after"]) <= 3600, headers)
                    msg = err["error"]["message"]
                    if stream:
                        # the first request tries all three; the last one (429) decides the status: the SDKs retry it
                        self.assertEqual((st, err["error"]["type"]), (429, "rate_limit_error"), data)
                        self.assertTrue(msg.startswith("all 3 attempts failed"), msg)
                        for part in ("account 0: access token rejected (403)", "account 1: upstream 500",
                                     "account 2: rate limited (429)"):
                            self.assertIn(part, msg)
                    else:
                        # now nothing is usable: 503 naming each account's state and why
                        self.assertEqual((st, err["error"]["type"]), (503, "overloaded_error"), data)
                        for part in ("account 0: invalid", "account 1: cooling", "account 2: cooling"):
                            self.assertIn(part, msg)

    def test_validator_400_does_not_penalise_the_account(self):
        names = ["sim-ok-v400a", "sim-ok-v400b"]
        with gateway(self, self.sim, names) as gw:
            wait_accounts(self, gw, ["ok", "ok"])
            st, _, data = post(gw, body("[[sim:status code=400]]"))
            self.assertEqual(st, 400, data)
            self.assertEqual(json.loads(data)["error"]["type"], "invalid_request_error")
            self.assertEqual(sim_account(self.sim, names[1]).get("generates", 0), 0)  # no failover for the client's fault
            served = self.served_by(names, lambda: self.ok(gw))
            self.assertEqual(served, {names[0]: 1, names[1]: 0})  # the same account serves the next request
            t = tokens(gw)["tokens"]
            self.assertEqual([a["state"] for a in t], ["ok", "ok"])
            self.assertIsNone(t[0]["state_until"])

    def test_readyz(self):
        with gateway(self, self.sim, ["sim-badrefresh-rz1", "sim-badrefresh-rz2"]) as gw:
            wait_accounts(self, gw, ["invalid", "invalid"])
            st, _, data = request(gw.port, "GET", "/readyz")
            self.assertEqual(st, 503, data)
            self.assertEqual(json.loads(data)["status"], "not_ready")
            st, _, _ = request(gw.port, "GET", "/healthz")
            self.assertEqual(st, 200)
        with gateway(self, self.sim, ["sim-badrefresh-rz3", "sim-ok-rz4"]) as gw:
            wait_accounts(self, gw, ["invalid", "ok"])
            st, _, data = request(gw.port, "GET", "/readyz")
            self.assertEqual((st, json.loads(data)["status"]), (200, "ready"))

    def test_api_tokens_and_metrics_show_no_secret(self):
        state = os.path.join(tempfile.mkdtemp(prefix="k2a-pool-state-"), "state.json")
        names = ["sim-ok-secret-one-0a1b2c3d", "sim-rotate-secret-two-4e5f", idc("sim-ok-secret-idc-6a7b")]
        # no background polls or catalog fetches: the 20 hits below must cause no upstream call of any kind
        extra = {"KIRO_STATE_FILE": state, "KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_CATALOG_REFRESH_S": "0"}
        with gateway(self, self.sim, names, extra) as gw:
            wait_accounts(self, gw, ["ok", "ok", "ok"])
            self.ok(gw)

            def saved():  # the rotated token is written at once; wait until every account has its access token on disk
                try:
                    with open(state) as f:
                        doc = json.load(f)
                except (OSError, ValueError):
                    return None
                accts = doc.get("accounts", [])
                return doc if len(accts) == 3 and all(a.get("access_token") for a in accts) else None
            doc = wait_until(self, "the state file", saved)
            secrets = {a["refresh_token"] for a in doc["accounts"]} | {a["access_token"] for a in doc["accounts"]}
            secrets |= {"sim-ok-secret-one-0a1b2c3d", "sim-rotate-secret-two-4e5f", "sim-ok-secret-idc-6a7b", IDC_SECRET}
            self.assertIn("sim-rotate-secret-two-4e5f-r1", secrets)

            for path in ("/api/tokens", "/metrics"):
                with self.subTest(path=path):
                    self.assertEqual(request(gw.port, "GET", path)[0], 401)
                    self.assertEqual(request(gw.port, "GET", path, key="wrong-key")[0], 401)
                    st, _, data = request(gw.port, "GET", path, key=CLIENT_KEY)
                    self.assertEqual(st, 200)
                    text = data.decode()
                    for s in secrets:
                        self.assertNotIn(s, text)
                        self.assertNotIn(s[:16], text)

            # 20 hits of /api/tokens and /metrics: no refresh, no upstream call of any kind
            before = self.sim.stats()
            for _ in range(20):
                self.assertEqual(request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)[0], 200)
                self.assertEqual(request(gw.port, "GET", "/metrics", key=CLIENT_KEY)[0], 200)
            after = self.sim.stats()
            self.assertEqual(after["refreshes_total"], before["refreshes_total"])
            for ep in ("refreshToken", "token", "getUsageLimits", "ListAvailableModels", "generateAssistantResponse"):
                self.assertEqual(after["requests"][ep], before["requests"][ep], ep)

            # per-account metric lines, labelled by account index
            metrics = request(gw.port, "GET", "/metrics", key=CLIENT_KEY)[2].decode()
            for i in range(3):
                self.assertRegex(metrics, r'(?m)^k2a_account_up\{account="%d",name="[^"]*"\} 1$' % i)
                self.assertRegex(metrics, r'(?m)^k2a_account_state\{account="%d",name="[^"]*",state="ok"\} 1$' % i)
                self.assertRegex(metrics, r'(?m)^k2a_account_refreshes_total\{account="%d",[^}]*result="ok"\} 1$' % i)
            self.assertRegex(metrics, r'(?m)^k2a_account_requests_total\{account="0",name="[^"]*"\} 1$')
            for line in metrics.splitlines():
                if line.startswith("k2a_account_"):
                    self.assertIsNotNone(re.match(r'^k2a_account_\w+\{account="\d+",', line), line)


if __name__ == "__main__":
    main()
