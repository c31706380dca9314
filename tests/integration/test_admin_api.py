"""The admin API under /api/admin/ (src/http/h_admin.c, h_admin_accounts.c, src/pool/admin.c) against kiro-sim.

Authentication: only KIRO_ADMIN_TOKEN opens it; a client key, no key and a wrong admin key get one identical 401, and a
gateway without KIRO_ADMIN_TOKEN answers 401 saying the admin API is unavailable. Framework: 404/405/413/415/400 answers
in the admin error shape. Accounts: list, detail, add (account object or Kiro's token file), enable/disable, refresh,
clear, delete, reload; every change persisted before its answer (survives a restart), applied without restart, audit
lines in the log and no secret in it; the interplay with the config file and SIGHUP.
Loopback only.
"""
import hashlib
import json
import os
import signal
import tempfile
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, assert_no_sanitizer_report, main, request, sim_accounts_env

ADMIN_KEY = "test-admin-key-9876543210-abcdef"
REFRESH_A = "sim-ok-admin-test-account-a"
REFRESH_B = "sim-ok-admin-test-account-b"
REFRESH_C = "sim-ok-admin-test-account-c"
REFRESH_BAD = "sim-badrefresh-admin-test-d"
MODEL = "claude-sonnet-4-5"


def key_of(token, kind="Social:"):
    return hashlib.sha256((kind + token).encode()).hexdigest()


def short(token):
    return key_of(token)[:16]


def accounts(gw):
    st, _, js, raw = admin(gw, "GET", "accounts")
    assert st == 200, raw
    return {a["id"]: a for a in js["accounts"]}


def wait_until(tc, what, fn, timeout=20):
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    tc.fail("timed out waiting for %s (last: %r)" % (what, last))


def message(gw, key=CLIENT_KEY):
    body = {"model": MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]}
    st, _, data = request(gw.port, "POST", "/v1/messages", body=body, key=key)
    return st, data


def admin(gw, method, path, body=None, key=ADMIN_KEY, headers=None, bearer=False):
    h = dict(headers or {})
    if key is not None:
        if bearer:
            h["authorization"] = "Bearer " + key
        else:
            h["x-api-key"] = key
    st, hd, data = request(gw.port, method, "/api/admin/" + path, body=body, headers=h)
    try:
        js = json.loads(data) if data else None
    except ValueError:
        js = None
    return st, hd, js, data


class AdminAuth(unittest.TestCase):
    def test_refusals_identical_and_admin_key_accepted(self):
        gw = Gateway(env={"KIRO_ADMIN_TOKEN": ADMIN_KEY})
        try:
            answers = []
            for key, bearer in ((CLIENT_KEY, False), (CLIENT_KEY, True), (None, False), ("wrong-admin-key", False),
                                ("wrong-admin-key", True), (ADMIN_KEY + "x", False)):
                st, hd, js, raw = admin(gw, "GET", "status", key=key, bearer=bearer)
                self.assertEqual(st, 401, raw)
                answers.append(raw)
                self.assertEqual(js["error"]["type"], "authentication_error")
            self.assertEqual(len(set(answers)), 1, "refusals differ: %r" % answers)
            # the same refusal on a mutating endpoint and on an unknown path: nothing is revealed before auth
            st, _, _, raw = admin(gw, "POST", "accounts", body={"refreshToken": "x"}, key=CLIENT_KEY)
            self.assertEqual((st, raw), (401, answers[0]))
            st, _, _, raw = admin(gw, "GET", "no/such/thing", key=None)
            self.assertEqual((st, raw), (401, answers[0]))
            for bearer in (False, True):
                st, _, js, raw = admin(gw, "GET", "status", bearer=bearer)
                self.assertEqual(st, 200, raw)
                self.assertTrue(js["admin"])
            # the admin key is no client key for the admin API's sake only: /v1 still takes the client key
            st, _, _ = request(gw.port, "GET", "/v1/models", key=CLIENT_KEY)
            self.assertNotEqual(st, 401)
        finally:
            gw.assert_clean_exit(self)
            gw.cleanup()

    def test_unavailable_without_admin_token(self):
        gw = Gateway()
        try:
            for key in (CLIENT_KEY, None, ADMIN_KEY):
                st, _, js, raw = admin(gw, "GET", "status", key=key)
                self.assertEqual(st, 401, raw)
                self.assertIn("KIRO_ADMIN_TOKEN", js["error"]["message"])
        finally:
            gw.assert_clean_exit(self)
            gw.cleanup()


class AdminFramework(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(env={"KIRO_ADMIN_TOKEN": ADMIN_KEY})

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(cls())
        finally:
            cls.gw.cleanup()

    def runTest(self):  # lets tearDownClass build an instance for its assertions
        pass

    def test_not_found_and_method(self):
        st, _, js, raw = admin(self.gw, "GET", "no-such-endpoint")
        self.assertEqual(st, 404, raw)
        self.assertEqual(js["error"]["type"], "not_found_error")
        st, hd, js, raw = admin(self.gw, "DELETE", "status")
        self.assertEqual(st, 405, raw)
        self.assertEqual(js["error"]["type"], "method_not_allowed")
        self.assertEqual(hd.get("allow"), "GET")
        st, _, js, _ = admin(self.gw, "HEAD", "status")
        self.assertEqual(st, 200)

    def test_body_bounds_and_type(self):
        big = "x" * (256 * 1024 + 10)
        st, _, js, raw = admin(self.gw, "POST", "accounts", body=big, headers={"content-type": "application/json"})
        self.assertEqual(st, 413, raw)
        self.assertEqual(js["error"]["type"], "request_too_large")
        st, _, js, raw = admin(self.gw, "POST", "accounts", body="{}", headers={"content-type": "text/plain"})
        self.assertEqual(st, 415, raw)
        st, _, js, raw = admin(self.gw, "POST", "accounts", body="{not json",
                               headers={"content-type": "application/json"})
        self.assertEqual(st, 400, raw)
        self.assertEqual(js["error"]["type"], "invalid_request_error")
        deep = "[" * 100 + "]" * 100
        st, _, js, raw = admin(self.gw, "POST", "accounts", body=deep, headers={"content-type": "application/json"})
        self.assertEqual(st, 400, raw)
        self.assertIn("nested", js["error"]["message"])
        # no pool on this gateway (no KIRO_AUTH_TOKEN): the accounts endpoints say so
        st, _, js, raw = admin(self.gw, "GET", "accounts")
        self.assertEqual(st, 503, raw)
        self.assertIn("KIRO_AUTH_TOKEN", js["error"]["message"])



class AdminAccounts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        cls.sim.cleanup()

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="k2a-admin-")
        self.state = os.path.join(self.dir, "state.json")
        self.config = os.path.join(self.dir, "accounts.json")
        self.gws = []

    def tearDown(self):
        for gw in self.gws:
            gw.cleanup()

    def write_config(self, entries):
        with open(self.config, "w") as f:
            json.dump(entries, f)

    def start(self, extra=None):
        env = sim_accounts_env(self.sim, [], {"KIRO_AUTH_TOKEN": self.config, "KIRO_STATE_FILE": self.state,
                                             "KIRO_ADMIN_TOKEN": ADMIN_KEY, "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        if extra:
            env.update(extra)
        gw = Gateway(env=env)
        self.gws.append(gw)
        return gw

    def stop(self, gw):
        gw.assert_clean_exit(self)
        return gw.stderr()

    def check_log(self, log, *secrets):
        for s in secrets + (ADMIN_KEY,):
            self.assertNotIn(s, log, "a secret is in the log")

    def test_accounts_lifecycle_and_persistence(self):
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A, "description": "configured"}])
        gw = self.start({"KIRO_WORKERS": "4"})  # requests land on other workers than the pool's: the cross-loop path
        a, b, c = short(REFRESH_A), short(REFRESH_B), short(REFRESH_C)
        acc = wait_until(self, "account A ok", lambda: (lambda x: x if x.get(a, {}).get("has_access_token") else None)(
            accounts(gw)))
        self.assertEqual(list(acc), [a])
        self.assertEqual((acc[a]["source"], acc[a]["kind"], acc[a]["label"], acc[a]["state"]),
                         ("config", "social", "configured", "ok"))
        self.assertEqual(acc[a]["region"], "us-east-1")
        self.assertIn("usage", acc[a])
        self.assertTrue(acc[a]["token_preview"].startswith("****"))
        st, _, js, raw = admin(gw, "GET", "accounts/" + a)
        self.assertEqual(st, 200, raw)
        self.assertIn("catalog", js)
        self.assertIn("models_missing", js)
        st, _, js, raw = admin(gw, "GET", "accounts/" + key_of(REFRESH_A))  # the full key works too
        self.assertEqual((st, js["id"]), (200, a), raw)
        st, _, js, raw = admin(gw, "GET", "accounts/0123456789abcdef")
        self.assertEqual(st, 404, raw)
        st, _, js, raw = admin(gw, "GET", "accounts/bad%20id")
        self.assertIn(st, (400, 404), raw)

        # add: an account object, then Kiro's own token file
        st, _, js, raw = admin(gw, "POST", "accounts", body={"auth": "Social", "refreshToken": REFRESH_B,
                                                             "description": "added"})
        self.assertEqual(st, 201, raw)
        self.assertEqual((js["id"], js["source"], js["label"]), (b, "api", "added"))
        st, _, js, raw = admin(gw, "POST", "accounts", body={"auth": "Social", "refreshToken": REFRESH_B})
        self.assertEqual(st, 409, raw)
        st, _, js, raw = admin(gw, "POST", "accounts", body={"refreshToken": REFRESH_A})
        self.assertEqual(st, 409, raw)
        self.assertIn("configuration", js["error"]["message"])
        st, _, js, raw = admin(gw, "POST", "accounts", body={"auth": "Nope", "refreshToken": "sim-ok-secret-xyz"})
        self.assertEqual(st, 400, raw)
        self.assertNotIn(b"sim-ok-secret-xyz", raw)
        st, _, js, raw = admin(gw, "POST", "accounts", body=[1, 2])
        self.assertEqual(st, 400, raw)
        idc_file = {"accessToken": "x", "refreshToken": "sim-idc-admin", "authMethod": "IdC", "provider": "BuilderId",
                    "region": "us-east-1", "clientIdHash": "abc"}
        st, _, js, raw = admin(gw, "POST", "accounts", body={"kiro_token_file": idc_file})
        self.assertEqual(st, 400, raw)
        self.assertIn("client_registration", js["error"]["message"])
        token_file = {"accessToken": "aoa-access", "refreshToken": REFRESH_C, "expiresAt": "2026-01-01T00:00:00Z",
                      "authMethod": "social", "provider": "Github", "region": "us-east-1"}
        st, _, js, raw = admin(gw, "POST", "accounts", body={"kiro_token_file": json.dumps(token_file),
                                                             "description": "from kiro"})
        self.assertEqual(st, 201, raw)
        self.assertEqual((js["id"], js["kind"], js["label"]), (c, "social", "from kiro"))
        acc = wait_until(self, "three accounts with tokens", lambda: (lambda x: x if len(x) == 3 and all(
            v["has_access_token"] for v in x.values()) else None)(accounts(gw)))
        self.assertEqual([acc[k]["source"] for k in (a, b, c)], ["config", "api", "api"])

        # disable / enable / clear / refresh
        st, _, js, raw = admin(gw, "POST", "accounts/%s/disable" % a)
        self.assertEqual((st, js["state"], js["enabled"]), (200, "disabled", False), raw)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/clear" % a)
        self.assertEqual(st, 409, raw)
        st, _ = message(gw)
        self.assertEqual(st, 200, "the other accounts serve")
        st, _, js, raw = admin(gw, "POST", "accounts/%s/disable" % b)
        self.assertEqual(st, 200, raw)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/enable" % b)
        self.assertEqual((st, js["state"]), (200, "ok"), raw)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/clear" % b)
        self.assertEqual((st, js["state"]), (200, "ok"), raw)
        before = self.sim.stats()["accounts"].get(REFRESH_B, {}).get("refreshes", 0)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/refresh" % b)
        self.assertEqual(st, 200, raw)
        self.assertTrue(js["has_access_token"])
        after = self.sim.stats()["accounts"].get(REFRESH_B, {}).get("refreshes", 0)
        if before or after:
            self.assertGreater(after, before)
        st, _, js, raw = admin(gw, "GET", "accounts/%s/refresh" % b)
        self.assertEqual(st, 405, raw)

        # delete: not a configured account; an added one goes at once
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + a)
        self.assertEqual(st, 409, raw)
        self.assertIn("configuration", js["error"]["message"])
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + c)
        self.assertEqual((st, js["deleted"]), (200, c), raw)
        self.assertEqual(set(accounts(gw)), {a, b})
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + c)
        self.assertEqual(st, 404, raw)

        # the admin file: private, no secret of the admin API in it, and what a restart reads
        path = os.path.join(self.dir, "admin-accounts.json")
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o600)
        with open(path) as f:
            saved = json.load(f)
        self.assertEqual([x["refreshToken"] for x in saved["accounts"]], [REFRESH_B])
        self.assertEqual(saved["disabled"], {key_of(REFRESH_A): True})
        log = self.stop(gw)
        for line in ("admin: admin add account %s" % b, "admin: admin add account %s" % c,
                     "admin: admin disable account %s" % a, "admin: admin enable account %s" % b,
                     "admin: admin refresh account %s" % b, "admin: admin delete account %s" % c):
            self.assertIn(line, log)
        self.check_log(log, REFRESH_A, REFRESH_B, REFRESH_C)

        # restart: the added account and the decision are back
        gw = self.start()
        acc = accounts(gw)
        self.assertEqual(set(acc), {a, b})
        self.assertEqual((acc[a]["state"], acc[b]["source"], acc[b]["label"]), ("disabled", "api", "added"))
        # SIGHUP: the configuration is re-read, the added account stays, the decision holds
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A, "description": "configured"},
                           {"auth": "Social", "refreshToken": REFRESH_C, "description": "configured c"}])
        gw.send_signal(signal.SIGHUP)
        acc = wait_until(self, "reload", lambda: (lambda x: x if len(x) == 3 else None)(accounts(gw)))
        self.assertEqual((acc[a]["state"], acc[b]["source"], acc[c]["source"]), ("disabled", "api", "config"))
        # an account the configuration drops leaves the pool; POST /reload does what SIGHUP does
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_C}])
        st, _, js, raw = admin(gw, "POST", "reload")
        self.assertEqual(st, 200, raw)
        self.assertEqual(set(accounts(gw)), {b, c})
        # the configuration lists the added account too: it is the configuration's now, and cannot be deleted here
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_C}, {"auth": "Social", "refreshToken": REFRESH_B}])
        st, _, js, raw = admin(gw, "POST", "reload")
        self.assertEqual(st, 200, raw)
        acc = accounts(gw)
        self.assertEqual((len(acc), acc[b]["source"]), (2, "config"))
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + b)
        self.assertEqual(st, 409, raw)
        self.write_config("not json")
        st, _, js, raw = admin(gw, "POST", "reload")
        self.assertEqual(st, 400, raw)
        self.assertEqual(len(accounts(gw)), 2, "a bad configuration changes nothing")
        log = self.stop(gw)
        self.assertIn("admin: admin reload", log)
        self.check_log(log, REFRESH_A, REFRESH_B, REFRESH_C)

    def test_clear_refresh_failure_and_streams(self):
        a = short(REFRESH_A)
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A}])
        now = int(time.time() * 1000)
        with open(self.state, "w") as f:
            json.dump({"version": 1, "saved_at": now, "accounts": [
                {"key": key_of(REFRESH_A), "refresh_token": REFRESH_A, "state": "cooling", "until": now + 3600 * 1000,
                 "reason": "throttled in a test"}]}, f)
        gw = self.start()
        acc = accounts(gw)
        self.assertEqual(acc[a]["state"], "cooling")
        st, _ = message(gw)
        self.assertNotEqual(st, 200, "a cooling account serves nothing")
        st, _, js, raw = admin(gw, "POST", "accounts/%s/clear" % a)
        self.assertEqual((st, js["state"]), (200, "ok"), raw)
        wait_until(self, "a served request", lambda: message(gw)[0] == 200)
        # persisted before the answer: a restart does not bring the cooling back
        with open(self.state) as f:
            rec = [x for x in json.load(f)["accounts"] if x["key"] == key_of(REFRESH_A)][0]
        self.assertNotEqual(rec.get("state"), "cooling")
        # an account whose refresh is refused: 502 with the reason, the account goes invalid, clear gives it another go
        st, _, js, raw = admin(gw, "POST", "accounts", body={"refreshToken": REFRESH_BAD})
        self.assertEqual(st, 201, raw)
        d = js["id"]
        wait_until(self, "the bad account's first refresh", lambda: accounts(gw)[d]["state"] != "ok" or
                   not accounts(gw)[d]["refreshing"] and accounts(gw)[d]["has_access_token"] is False)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/refresh" % d)
        self.assertIn(st, (409, 502), raw)
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + d)
        self.assertEqual(st, 200, raw)
        log = self.stop(gw)
        self.assertIn("admin: admin clear account %s" % a, log)
        gw = self.start()
        self.assertEqual(accounts(gw)[a]["state"], "ok")
        self.stop(gw)

    def test_decisions_override_the_configuration(self):
        a, b = short(REFRESH_A), short(REFRESH_B)
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A},
                           {"auth": "Social", "refreshToken": REFRESH_B, "disabled": True}])
        gw = self.start()
        self.assertEqual(accounts(gw)[b]["state"], "disabled")
        st, _, js, raw = admin(gw, "POST", "accounts/%s/enable" % b)
        self.assertEqual((st, js["state"]), (200, "ok"), raw)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/disable" % a)
        self.assertEqual(st, 200, raw)
        gw.send_signal(signal.SIGHUP)
        time.sleep(0.3 * SLOW)
        acc = accounts(gw)
        self.assertEqual((acc[a]["state"], acc[b]["state"]), ("disabled", "ok"), "the decisions survive a reload")
        self.stop(gw)
        gw = self.start()
        acc = accounts(gw)
        self.assertEqual((acc[a]["state"], acc[b]["state"]), ("disabled", "ok"), "and a restart")
        self.assertEqual(acc[a]["state_reason"], "disabled through the admin API")
        self.stop(gw)
        # a corrupt admin file stops the start, naming it, rather than be overwritten later
        with open(os.path.join(self.dir, "admin-accounts.json"), "w") as f:
            f.write("{broken")
        env = sim_accounts_env(self.sim, [], {"KIRO_AUTH_TOKEN": self.config, "KIRO_STATE_FILE": self.state,
                                             "KIRO_ADMIN_TOKEN": ADMIN_KEY})
        with self.assertRaises(RuntimeError) as cm:
            self.gws.append(Gateway(env=env))
        self.assertIn("admin-accounts.json", str(cm.exception))
        assert_no_sanitizer_report(self, str(cm.exception), "kiro2api")

    def test_without_state_file(self):
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A}])
        gw = self.start({"KIRO_STATE_FILE": ""})
        st, _, js, raw = admin(gw, "GET", "accounts")
        self.assertEqual((st, js["persistent"]), (200, False), raw)
        st, _, js, raw = admin(gw, "POST", "accounts", body={"refreshToken": REFRESH_B})
        self.assertEqual(st, 201, raw)
        self.assertEqual(len(accounts(gw)), 2, "applied in memory")
        self.stop(gw)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "admin-accounts.json")))

    def test_removed_account_finishes_its_stream(self):
        b = short(REFRESH_B)
        self.write_config([{"auth": "Social", "refreshToken": REFRESH_A}])
        gw = self.start({"KIRO_POOL_STRATEGY": "sequential"})
        st, _, js, raw = admin(gw, "POST", "accounts", body={"refreshToken": REFRESH_B})
        self.assertEqual(st, 201, raw)
        st, _, js, raw = admin(gw, "POST", "accounts/%s/disable" % short(REFRESH_A))
        self.assertEqual(st, 200, raw)
        wait_until(self, "B ready", lambda: accounts(gw)[b]["has_access_token"])
        # a slow stream on B, then B is removed while it runs: the stream completes
        body = {"model": MODEL, "max_tokens": 64, "stream": True,
                "messages": [{"role": "user", "content": "[[sim:drip ms=100]] [[sim:text frames=20 size=8]]"}]}
        result = {}

        def run():
            result["r"] = request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY)

        import threading
        t = threading.Thread(target=run)
        t.start()
        wait_until(self, "the stream in flight", lambda: accounts(gw)[b]["in_flight"] == 1)
        st, _, js, raw = admin(gw, "DELETE", "accounts/" + b)
        self.assertEqual((st, js["in_flight"]), (200, 1), raw)
        t.join(30 * SLOW)
        st, _, data = result["r"]
        self.assertEqual(st, 200)
        self.assertIn(b"message_stop", data)
        self.stop(gw)


if __name__ == "__main__":
    main()
