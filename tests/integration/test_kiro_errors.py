"""Kiro's errors of kiro-protocol-2026 §9, each scripted per account in kiro-sim, through the gateway in both dialects:
the account's new state (visible on /api/tokens), whether the request fails over, and what the client gets when no other
account can serve it (status, error type in its dialect, Retry-After). One row per Kiro answer; the table in code is
src/pool/health.c (k2a_pool_classify), documented in README "Kiro's errors"."""
import json
import time
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, main, request, sim_accounts_env

MODEL = "claude-sonnet-4-5"
DIALECTS = ("anthropic", "openai")

# kind prefix -> (state of the scripted account after one request, Anthropic status/type, OpenAI status/code, Retry-After)
ROWS = {
    "sim-exhausted-": ("exhausted", 429, "rate_limit_error", 429, "insufficient_quota", True),
    "sim-overage-": ("exhausted", 429, "rate_limit_error", 429, "insufficient_quota", True),
    "sim-429-": ("cooling", 429, "rate_limit_error", 429, "rate_limit_exceeded", True),
    "sim-suspicious-": ("cooling", 429, "rate_limit_error", 429, "rate_limit_exceeded", True),
    "sim-suspended-": ("invalid", 503, "overloaded_error", 503, "no_available_account", True),
    "sim-423-": ("invalid", 503, "overloaded_error", 503, "no_available_account", True),
    "sim-capacity-": ("ok", 529, "overloaded_error", 503, "model_overloaded", True),
}


def post(port, dialect, stream=False):
    if dialect == "anthropic":
        path, body = "/v1/messages", {"model": MODEL, "max_tokens": 256, "stream": stream,
                                      "messages": [{"role": "user", "content": "hello"}]}
    else:
        path, body = "/v1/chat/completions", {"model": MODEL, "stream": stream,
                                              "messages": [{"role": "user", "content": "hello"}]}
    return request(port, "POST", path, body=body, key=CLIENT_KEY, timeout=60)


def tokens(port):
    st, _, data = request(port, "GET", "/api/tokens", key=CLIENT_KEY)
    assert st == 200, data
    return json.loads(data)["tokens"]


class KiroErrors(unittest.TestCase):
    def gateway(self, sim, names, extra=None):
        env = {"KIRO_POOL_STRATEGY": "sequential", "KIRO_MAX_ATTEMPTS": "3", "KIRO_CATALOG_REFRESH_S": "0"}
        env.update(extra or {})
        return Gateway(env=sim_accounts_env(sim, names, env))

    def test_account_problems_fail_over_and_set_the_state(self):
        # the scripted account first, a healthy one second: the client gets its answer from the second, the first
        # shows what Kiro said about it
        sim = Sim()
        try:
            for kind, (state, *_rest) in ROWS.items():
                for dialect in DIALECTS:
                    with self.subTest(kind=kind, dialect=dialect):
                        gw = self.gateway(sim, [kind + "a-" + dialect, "sim-ok-b-" + kind + dialect])
                        try:
                            before = sim.stats()["generates_total"]
                            st, _, data = post(gw.port, dialect)
                            self.assertEqual(st, 200, data[:500])
                            self.assertEqual(sim.stats()["generates_total"] - before, 2, "one failover")
                            acct = tokens(gw.port)[0]
                            self.assertEqual(acct["state"], state, acct)
                            if kind == "sim-suspicious-":
                                # the long rest: 30 minutes, never a fast retry
                                until = acct["state_until"]
                                left = time.mktime(time.strptime(until[:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())
                                self.assertGreater(left, 25 * 60, acct)
                            if kind == "sim-429-":
                                until = acct["state_until"]
                                left = time.mktime(time.strptime(until[:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(time.gmtime())
                                self.assertLess(left, 10 * 60, acct)  # a short back-off, not a penalty
                            if state != "ok":
                                self.assertTrue(acct.get("state_reason"), acct)
                            gw.assert_clean_exit(self)
                        finally:
                            gw.cleanup()
            sim.assert_clean_exit(self)
        finally:
            sim.cleanup()

    def test_client_answer_when_no_account_is_left(self):
        sim = Sim()
        try:
            for kind, (_state, a_st, a_type, o_st, o_code, retry_after) in ROWS.items():
                for dialect in DIALECTS:
                    for stream in (False, True):
                        with self.subTest(kind=kind, dialect=dialect, stream=stream):
                            gw = self.gateway(sim, [kind + "only-%s-%d" % (dialect, stream)])
                            try:
                                st, h, data = post(gw.port, dialect, stream)
                                doc = json.loads(data)
                                if dialect == "anthropic":
                                    self.assertEqual((st, doc["type"], doc["error"]["type"]), (a_st, "error", a_type), doc)
                                else:
                                    self.assertEqual((st, doc["error"]["code"]), (o_st, o_code), doc)
                                if retry_after:
                                    self.assertIn("retry-after", h)
                                    self.assertGreaterEqual(int(h["retry-after"]), 1)
                                gw.assert_clean_exit(self)
                            finally:
                                gw.cleanup()
            sim.assert_clean_exit(self)
        finally:
            sim.cleanup()

    def test_overage_as_400_is_quota_too(self):
        # the doc has OVERAGE as 402 (KRA) or 400 (a Kiro-Go fork): both are the account's quota, never the client's 400
        sim = Sim(["--overage-status", "400", "--capacity-status", "400"])
        try:
            gw = self.gateway(sim, ["sim-overage-400a", "sim-capacity-400b", "sim-ok-400c"])
            try:
                st, _, data = post(gw.port, "anthropic")
                self.assertEqual(st, 200, data[:500])
                states = [t["state"] for t in tokens(gw.port)]
                self.assertEqual(states, ["exhausted", "ok", "ok"])
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            sim.assert_clean_exit(self)
        finally:
            sim.cleanup()


if __name__ == "__main__":
    main()
