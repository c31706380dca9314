"""Managed client keys end to end (kiro-sim upstream, loopback only): keys made through /api/admin/keys are enforced
before any upstream call (the simulator's generate count proves it), each refusal in the client's own dialect with
Retry-After for the 429s: a 10-concurrency key gets exactly 10 of 100 requests sent at once, a small credit limit refuses
once the simulator's metering passed it (the crossing request is served), an RPM limit holds, a disabled, expired or
deleted key gets 401 at once, a model outside the key's patterns gets 403. Usage per key per day survives a restart (and a
kill -9, through the periodic save), and the secret of a key never appears in the gateway's log, /metrics or the keys
file."""
import json
import os
import tempfile
import threading
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, request, sim_accounts_env

ADMIN = "admin-token-for-key-tests-0123456789"
AH = {"authorization": "Bearer " + ADMIN}
MODEL = "claude-sonnet-4-5"


def anthropic_body(text="hi", model=MODEL, stream=False):
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]}


def openai_body(text="hi", model=MODEL, stream=False):
    return {"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}


class ClientKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.state_dir = tempfile.mkdtemp(prefix="k2a-keys-")
        cls.state_file = os.path.join(cls.state_dir, "state.json")
        cls.keys_file = os.path.join(cls.state_dir, "kiro2api-keys.json")
        cls.secrets = []
        cls.gw = cls.start_gateway()

    @classmethod
    def start_gateway(cls):
        return Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-keys"], {
            "KIRO_ADMIN_TOKEN": ADMIN, "KIRO_STATE_FILE": cls.state_file, "KIRO_WORKERS": "2",
            "KIRO_CATALOG_REFRESH_S": "0", "KIRO_USAGE_POLL_INTERVAL_S": "0"}))

    @classmethod
    def tearDownClass(cls):
        cls.gw.stop()
        cls.gw.cleanup()
        cls.sim.stop()
        cls.sim.cleanup()

    # ---- helpers

    def admin(self, method, path, body=None, expect=200):
        st, _, b = request(self.gw.port, method, "/api/admin/" + path, body=body, headers=AH)
        self.assertEqual(st, expect, b)
        return json.loads(b) if b else None

    def new_key(self, name, **fields):
        k = self.admin("POST", "keys", dict(fields, name=name), expect=201)
        self.assertTrue(k["key"].startswith("k2a-") and len(k["key"]) == 44, k)
        self.assertEqual(k["key_prefix"], k["key"][:12])
        self.secrets.append(k["key"])
        return k

    def generates(self):
        return self.sim.stats()["generates_total"]

    def chat(self, key, openai=False, **kw):
        if openai:
            return request(self.gw.port, "POST", "/v1/chat/completions", body=openai_body(**kw),
                           headers={"authorization": "Bearer " + key})
        return request(self.gw.port, "POST", "/v1/messages", body=anthropic_body(**kw), key=key)

    def assert_refused(self, resp, status, openai, anthropic_type, openai_code):
        st, h, b = resp
        self.assertEqual(st, status, b)
        err = json.loads(b)
        if openai:
            self.assertEqual(err["error"]["code"], openai_code, err)
        else:
            self.assertEqual(err["type"], "error")
            self.assertEqual(err["error"]["type"], anthropic_type, err)
        if status == 429:
            self.assertIn("retry-after", h)
            self.assertGreaterEqual(int(h["retry-after"]), 1)
        return h

    # ---- tests

    def test_concurrency_limit_exactly_10_of_100(self):
        k = self.new_key("conc10", limits={"concurrency": 10})
        hold_ms = int(4000 * SLOW)
        before = self.generates()
        results = [None] * 100
        go = threading.Event()

        def one(i):
            go.wait()
            openai = i % 2 == 1
            results[i] = (openai, self.chat(k["key"], openai=openai, stream=(i % 4 < 2),
                                            text="[[sim:stall ms=%d]] hold" % hold_ms))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
        for t in threads:
            t.start()
        go.set()
        # while the admitted ones are held upstream, the key shows exactly 10 in flight
        deadline = time.time() + hold_ms / 1000.0
        seen = 0
        while time.time() < deadline and seen != 10:
            seen = self.admin("GET", "keys/" + k["id"])["in_flight"]
            time.sleep(0.05)
        self.assertEqual(seen, 10)
        for t in threads:
            t.join(60 * SLOW)
        ok = [r for r in results if r[1][0] == 200]
        refused = [r for r in results if r[1][0] != 200]
        self.assertEqual(len(ok), 10, [r[1][0] for r in results])
        self.assertEqual(len(refused), 90)
        for openai, resp in refused:
            self.assert_refused(resp, 429, openai, "rate_limit_error", "rate_limit_exceeded")
        self.assertTrue(any(o for o, _ in refused) and any(not o for o, _ in refused))
        self.assertEqual(self.generates() - before, 10)  # refusals never reached the upstream
        shown = self.admin("GET", "keys/" + k["id"])
        self.assertEqual(shown["in_flight"], 0)  # every slot came back
        self.assertEqual(shown["usage_today"]["requests"], 10)
        # and the key serves again
        self.assertEqual(self.chat(k["key"])[0], 200)

    def test_credit_limit_refuses_after_the_crossing_request(self):
        k = self.new_key("credits", limits={"credits_day": 0.05})
        spend = "[[sim:usage credits=0.02]] spend"
        before = self.generates()
        for _ in range(3):  # 0 -> 0.02 -> 0.04 -> 0.06: the third is admitted at 0.04 and crosses the limit
            st, _, b = self.chat(k["key"], text=spend)
            self.assertEqual(st, 200, b)
        usage = self.admin("GET", "keys/" + k["id"])["usage_today"]
        self.assertAlmostEqual(usage["credits"], 0.06, places=6)
        self.assert_refused(self.chat(k["key"], text=spend), 429, False, "rate_limit_error", "rate_limit_exceeded")
        h = self.assert_refused(self.chat(k["key"], openai=True, text=spend), 429, True, "rate_limit_error",
                                "rate_limit_exceeded")
        self.assertLessEqual(int(h["retry-after"]), 86400)  # the next UTC midnight
        self.assertEqual(self.generates() - before, 3)
        # raising the limit lets it through again, at once
        self.admin("PATCH", "keys/" + k["id"], {"limits": {"credits_day": 1}})
        self.assertEqual(self.chat(k["key"], text=spend)[0], 200)

    def test_rpm_limit_holds(self):
        k = self.new_key("rpm5", limits={"rpm": 5})
        codes = [self.chat(k["key"], openai=(i % 2 == 0))[0] for i in range(5)]
        self.assertEqual(codes, [200] * 5)
        h = self.assert_refused(self.chat(k["key"]), 429, False, "rate_limit_error", "rate_limit_exceeded")
        self.assertLessEqual(int(h["retry-after"]), 60)
        self.assert_refused(self.chat(k["key"], openai=True), 429, True, "rate_limit_error", "rate_limit_exceeded")
        self.assertEqual(self.admin("GET", "keys/" + k["id"])["usage_today"]["requests"], 5)

    def test_tokens_per_day(self):
        k = self.new_key("tok", limits={"tokens_day": 5})
        self.assertEqual(self.chat(k["key"])[0], 200)  # the first crosses 5 tokens
        self.assert_refused(self.chat(k["key"]), 429, False, "rate_limit_error", "rate_limit_exceeded")

    def test_disabled_expired_deleted_get_401_at_once(self):
        k = self.new_key("lifecycle")
        self.assertEqual(self.chat(k["key"])[0], 200)
        before = self.generates()
        self.admin("PATCH", "keys/" + k["id"], {"enabled": False})
        self.assert_refused(self.chat(k["key"]), 401, False, "authentication_error", None)
        self.assert_refused(self.chat(k["key"], openai=True), 401, True, None, "invalid_api_key")
        self.admin("PATCH", "keys/" + k["id"], {"enabled": True})
        self.assertEqual(self.chat(k["key"])[0], 200)
        self.admin("DELETE", "keys/" + k["id"])
        self.assert_refused(self.chat(k["key"]), 401, False, "authentication_error", None)
        self.assert_refused(self.chat(k["key"], openai=True), 401, True, None, "invalid_api_key")
        self.admin("GET", "keys/" + k["id"], expect=404)
        self.admin("DELETE", "keys/" + k["id"], expect=404)
        gone = self.new_key("expired", expires_at=int(time.time()) - 1)
        self.assert_refused(self.chat(gone["key"]), 401, False, "authentication_error", None)
        self.assertEqual(self.generates() - before, 1)
        # an unknown key of the right shape too
        self.assert_refused(self.chat("k2a-" + "x" * 40), 401, False, "authentication_error", None)

    def test_model_patterns(self):
        k = self.new_key("haiku-only", models=["claude-haiku-*"])
        self.assertEqual(self.chat(k["key"], model="claude-haiku-4-5")[0], 200)
        before = self.generates()
        self.assert_refused(self.chat(k["key"], model="claude-sonnet-4-5"), 403, False, "permission_error", None)
        self.assert_refused(self.chat(k["key"], openai=True, model="claude-sonnet-4-5"), 403, True, None, "model_not_found")
        self.assertEqual(self.generates(), before)

    def test_builtin_client_token_still_works(self):
        self.assertEqual(self.chat(CLIENT_KEY)[0], 200)
        keys = self.admin("GET", "keys")["keys"]
        default = [k for k in keys if k["id"] == "default"][0]
        self.assertTrue(default["builtin"])
        self.assertIsNone(default["limits"]["rpm"])
        self.admin("DELETE", "keys/default", expect=400)

    def test_admin_validation(self):
        self.admin("POST", "keys", {"name": "bad name!"}, expect=400)
        self.admin("POST", "keys", {"name": ""}, expect=400)
        self.admin("POST", "keys", {"name": "x" * 65}, expect=400)
        self.admin("POST", "keys", {}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "colour": "red"}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "limits": {"rpm": -1}}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "limits": {"rpm": 10001}}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "limits": {"burst": 1}}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "limits": {"concurrency": 1.5}}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "limits": {"credits_day": "1"}}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "enabled": "yes"}, expect=400)
        self.admin("POST", "keys", ["not", "an", "object"], expect=400)
        self.admin("POST", "keys", {"name": "ok", "models": ["a"] * 33}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "models": ["bad pattern"]}, expect=400)
        self.admin("POST", "keys", {"name": "ok", "expires_at": "tomorrow"}, expect=400)
        self.new_key("dup")
        self.admin("POST", "keys", {"name": "dup"}, expect=409)
        k = self.new_key("usage-days")
        self.admin("GET", "keys/%s/usage?days=0" % k["id"], expect=400)
        self.admin("GET", "keys/%s/usage?days=abc" % k["id"], expect=400)
        self.assertEqual(len(self.admin("GET", "keys/%s/usage?days=7" % k["id"])["days"]), 7)

    def test_admin_api_refuses_client_keys(self):
        k = self.new_key("not-admin")
        for key in (k["key"], CLIENT_KEY, "wrong-admin-token"):
            st, _, b = request(self.gw.port, "GET", "/api/admin/keys", headers={"authorization": "Bearer " + key})
            self.assertEqual(st, 401, b)
        st, _, _ = request(self.gw.port, "GET", "/api/admin/keys")
        self.assertEqual(st, 401)

    def test_zz_usage_survives_restart_and_secrets_stay_secret(self):
        k = self.new_key("persist", limits={"rpm": 100})
        for i in range(3):
            self.assertEqual(self.chat(k["key"], openai=(i == 2), text="[[sim:usage credits=0.5]] x")[0], 200)
        before = self.admin("GET", "keys/%s/usage?days=2" % k["id"])["days"][-1]
        self.assertEqual(before["requests"], 3)
        self.assertAlmostEqual(before["credits"], 1.5, places=6)
        st, _, metrics = request(self.gw.port, "GET", "/metrics", key=CLIENT_KEY)
        self.assertEqual(st, 200)
        metrics = metrics.decode()
        self.assertIn('k2a_key_requests_total{key="persist"} 3', metrics)
        self.assertIn('k2a_key_credits_total{key="persist"} 1.5', metrics)
        type(self).gw.assert_clean_exit(self)  # the last usage is saved at shutdown
        log = type(self).gw.stderr()
        type(self).gw.cleanup()
        with open(self.keys_file) as f:
            stored = f.read()
        self.assertEqual(os.stat(self.keys_file).st_mode & 0o777, 0o600)
        type(self).gw = self.start_gateway()
        after = self.admin("GET", "keys/%s/usage?days=2" % k["id"])["days"][-1]
        self.assertEqual(after, before)
        shown = self.admin("GET", "keys/" + k["id"])
        self.assertEqual(shown["limits"]["rpm"], 100)
        self.assertEqual(shown["name"], "persist")
        self.assertEqual(self.chat(k["key"])[0], 200)  # the key still works after the restart
        self.assertIn('"hash":', stored)
        for secret in self.secrets:
            self.assertNotIn(secret, log)
            self.assertNotIn(secret, metrics)
            self.assertNotIn(secret, stored)
            self.assertNotIn(secret[4:], stored)
            self.assertNotIn(secret, self.gw.stderr())
        self.gw.assert_clean_exit(self)


class UsageFlush(unittest.TestCase):
    """Usage reaches the keys file within KIRO_KEYS_SAVE_INTERVAL_S without a clean stop: after kill -9 a restart on the
    same file has it."""

    def test_usage_saved_by_the_timer_survives_kill_9(self):
        sim = Sim()
        state_dir = tempfile.mkdtemp(prefix="k2a-keys-flush-")
        keys_file = os.path.join(state_dir, "kiro2api-keys.json")
        env = sim_accounts_env(sim, ["sim-ok-flush"], {
            "KIRO_ADMIN_TOKEN": ADMIN, "KIRO_STATE_FILE": os.path.join(state_dir, "state.json"),
            "KIRO_KEYS_SAVE_INTERVAL_S": "1", "KIRO_CATALOG_REFRESH_S": "0", "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        gw = Gateway(env=env)
        try:
            st, _, b = request(gw.port, "POST", "/api/admin/keys", body={"name": "flushed"}, headers=AH)
            self.assertEqual(st, 201, b)
            k = json.loads(b)
            for _ in range(4):
                st, _, b = request(gw.port, "POST", "/v1/messages", key=k["key"],
                                   body=anthropic_body("[[sim:usage credits=0.25]] x"))
                self.assertEqual(st, 200, b)

            def saved():
                with open(keys_file) as f:
                    doc = json.load(f)
                usage = [key["usage"] for key in doc["keys"] if key["id"] == k["id"]][0]
                return usage and usage[-1]["requests"] == 4 and abs(usage[-1]["credits"] - 1.0) < 1e-9

            deadline = time.time() + 10 * SLOW
            while not saved() and time.time() < deadline:
                time.sleep(0.1)
            self.assertTrue(saved(), "usage not saved within KIRO_KEYS_SAVE_INTERVAL_S")
            gw.stop(sig=9)
            gw.cleanup()
            gw = Gateway(env=env)
            st, _, b = request(gw.port, "GET", "/api/admin/keys/%s/usage?days=1" % k["id"], headers=AH)
            self.assertEqual(st, 200, b)
            day = json.loads(b)["days"][0]
            self.assertEqual((day["requests"], day["credits"]), (4, 1.0))
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.stop()
            sim.cleanup()


if __name__ == "__main__":
    main()
