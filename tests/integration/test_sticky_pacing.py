"""Session-sticky routing and per-account pacing (issue 22), seen from kiro-sim's per-account counters:
- 20 concurrent Claude-Code-shaped sessions (metadata.user_id with a session part) over 5 accounts, several turns
  each: every session's turns reach one account (kiro-sim's conversationIds per account), and new sessions spread
  over the pool; /api/tokens and /metrics count the sessions pinned per account;
- an account made to cool (a 429) loses its sessions to other accounts, and they stay there after it recovers;
- a request that finds its session's account at its max_concurrency (set per account) is served elsewhere, and the
  session stays where it was;
- the OpenAI `user` field, the x-claude-code-session-id header and, failing all, the client key keep a session too;
- KIRO_ACCOUNT_RPM=6 (over a short KIRO_PACE_WINDOW_S): of 100 requests, no account sees more than 6 generate calls
  in any window (kiro-sim's call times), the rest are served as slots free or refused with 429 + Retry-After in
  each dialect after KIRO_PACE_WAIT_MS; /readyz stays 200 while accounts are at their pace."""
import json
import threading
import unittest
import uuid

from e2e_util import body, gateway, post, tokens, wait_until
from k2a import CLIENT_KEY, SLOW, Sim, main, request

ACCOUNTS = ["sim-ok-sticky%d" % i for i in range(5)]
PACED = ["sim-ok-paced%d" % i for i in range(5)]
QUIET = {"KIRO_CATALOG_REFRESH_S": "0", "KIRO_USAGE_POLL_INTERVAL_S": "0"}
WINDOW_S, RPM, WAIT_MS = 2, 6, 700
# kiro-sim timestamps a call when it arrives, the gateway when it sends it: the first call of a window may arrive a
# little later than the seventh (a new connection, a busy machine), so windows are checked this much short
ARRIVAL_SLACK_MS = 250


def claude_code_body(session, text, stream=False):
    return body(text, stream=stream, metadata={"user_id": "user_%s_account__session_%s" % ("ab" * 32, session)})


def conversations(sim, names):
    """{conversationId: {account: calls}} over the given simulator accounts."""
    out = {}
    for name, a in sim.stats()["accounts"].items():
        if name in names:
            for conv, n in a.get("conversations", {}).items():
                out.setdefault(conv, {})[name] = n
    return out


class Sticky(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.cleanup()

    def turn(self, gw, session, text="hi"):
        st, _, data = post(gw, claude_code_body(session, text))
        self.assertEqual(st, 200, data[-400:])

    def test_sessions_stick_move_and_stay(self):
        env = dict(QUIET, KIRO_POOL_STRATEGY="sticky", KIRO_MAX_ATTEMPTS="1")
        with gateway(self, self.sim, ACCOUNTS, env) as gw:
            wait_until(self, "5 usable accounts", lambda: all(a["state"] == "ok" and a["expires_at"]
                                                              for a in tokens(gw)["tokens"]))
            sessions = [str(uuid.uuid4()) for _ in range(20)]
            errors = []

            def run(s, turns):
                try:
                    for i in range(turns):
                        self.turn(gw, s, "turn %d" % i)
                except Exception as e:  # collected: assertion errors in threads do not fail the test by themselves
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(s, 4)) for s in sessions]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(errors, [])
            conv = conversations(self.sim, ACCOUNTS)
            home = {}
            for s in sessions:
                self.assertIn(s, conv, "session %s never reached kiro-sim as its conversationId" % s)
                self.assertEqual(len(conv[s]), 1, "session %s spread over %s" % (s, conv[s]))
                (home[s], n), = conv[s].items()
                self.assertEqual(n, 4)
            per_account = {a: sum(1 for s in sessions if home[s] == a) for a in ACCOUNTS}
            self.assertTrue(all(per_account.values()), "new sessions must spread over the pool: %s" % per_account)
            t = tokens(gw)
            self.assertEqual(sum(a["sessions"] for a in t["tokens"]), 20)
            self.assertEqual(t["pool_stats"]["sessions"], 20)
            self.assertTrue(t["pool_stats"]["sticky"])
            st, _, metrics = request(gw.port, "GET", "/metrics", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            self.assertEqual(sum(int(float(l.rsplit(" ", 1)[1])) for l in metrics.decode().splitlines()
                                 if l.startswith("k2a_account_sessions{")), 20)

            # one account cools (a 429): its sessions move on their next turn...
            cooled = max(per_account, key=per_account.get)
            moving = [s for s in sessions if home[s] == cooled]
            st, hdrs, data = post(gw, claude_code_body(moving[0], '[[sim:status code=429 message="Too many requests"]]'))
            self.assertEqual(st, 429, data)
            self.assertEqual(tokens(gw)["tokens"][ACCOUNTS.index(cooled)]["state"], "cooling")
            for s in moving:
                self.turn(gw, s, "after the 429")
            conv = conversations(self.sim, ACCOUNTS)
            new_home = {}
            for s in moving:
                others = {a: n for a, n in conv[s].items() if a != cooled}
                self.assertEqual(len(others), 1, "session %s after the move: %s" % (s, conv[s]))
                new_home[s] = next(iter(others))
            # ... and stay there once it is back
            wait_until(self, "the cooled account back", lambda: tokens(gw)["tokens"][ACCOUNTS.index(cooled)]["state"] == "ok")
            before = conversations(self.sim, ACCOUNTS)
            for s in sessions:
                self.turn(gw, s, "later")
            after = conversations(self.sim, ACCOUNTS)
            for s in sessions:
                want = new_home.get(s, home[s])
                delta = {a: after[s].get(a, 0) - before[s].get(a, 0) for a in after[s]}
                self.assertEqual({a: n for a, n in delta.items() if n}, {want: 1}, "session %s" % s)
            self.assertEqual(sum(a["sessions"] for a in tokens(gw)["tokens"]), 20)
            self.assertEqual(tokens(gw)["tokens"][ACCOUNTS.index(cooled)]["sessions"], 0)
            # the debug log says which account each attempt got and why
            log = gw.stderr()
            log = log.decode() if isinstance(log, bytes) else log
            for why in ("new: least-loaded", "sticky hit", "moved: cooling"):
                self.assertIn("(%s; session " % why, log)

    def test_concurrency_overflow_keeps_the_session(self):
        # per-account max_concurrency 1: a second request of the session while the first runs goes elsewhere, and the
        # session stays on its account
        names = ["sim-ok-cap%d" % i for i in range(2)]
        accounts = [{"auth": "Social", "refreshToken": n, "max_concurrency": 1} for n in names]
        with gateway(self, self.sim, accounts, dict(QUIET, KIRO_POOL_STRATEGY="sticky")) as gw:
            wait_until(self, "2 usable accounts", lambda: all(a["state"] == "ok" and a["expires_at"]
                                                              for a in tokens(gw)["tokens"]))
            self.assertEqual([a["max_concurrency"] for a in tokens(gw)["tokens"]], [1, 1])
            s = str(uuid.uuid4())
            self.turn(gw, s, "first")
            (home, _), = conversations(self.sim, names)[s].items()
            slow = threading.Thread(target=self.turn, args=(gw, s, "[[sim:stall ms=%d]]" % int(800 * SLOW)))
            slow.start()
            wait_until(self, "the slow turn in flight", lambda: tokens(gw)["tokens"][names.index(home)]["in_flight"] == 1)
            self.turn(gw, s, "while the first runs")
            slow.join()
            # the slot is freed when the gateway finishes the attempt, which can trail the client's last byte by a moment
            wait_until(self, "the slow turn's slot freed",
                       lambda: tokens(gw)["tokens"][names.index(home)]["in_flight"] == 0)
            self.turn(gw, s, "afterwards")
            conv = conversations(self.sim, names)[s]
            self.assertEqual(conv.get(home), 3, conv)
            self.assertEqual(sum(conv.values()), 4, conv)
            self.assertIn("overflow: its account is at its concurrency cap", gw.stderr())

    def test_other_session_keys_stick(self):
        env = dict(QUIET, KIRO_POOL_STRATEGY="round_robin", KIRO_POOL_STICKY="1")
        names = ["sim-ok-user%d" % i for i in range(3)]
        with gateway(self, self.sim, names, env) as gw:
            wait_until(self, "3 usable accounts", lambda: all(a["state"] == "ok" and a["expires_at"]
                                                              for a in tokens(gw)["tokens"]))
            before = {n: self.sim.stats()["accounts"].get(n, {}).get("generate_ok", 0) for n in names}
            for i in range(6):
                st, _, data = request(gw.port, "POST", "/v1/chat/completions", key=CLIENT_KEY,
                                      body={"model": "claude-sonnet-4-5", "user": "bob",
                                            "messages": [{"role": "user", "content": "turn %d" % i}]})
                self.assertEqual(st, 200, data)
            served = {n: self.sim.stats()["accounts"][n]["generate_ok"] - before[n] for n in names}
            self.assertEqual(sorted(served.values()), [0, 0, 6], served)  # round_robin alone would give 2 each
            # the x-claude-code-session-id header alone, then nothing but the client key: a session each
            for headers in ({"x-claude-code-session-id": str(uuid.uuid4())}, {}):
                before = {n: self.sim.stats()["accounts"][n]["generate_ok"] for n in names}
                for i in range(4):
                    st, _, data = request(gw.port, "POST", "/v1/messages", key=CLIENT_KEY, headers=headers,
                                          body=body("turn %d" % i, stream=False))
                    self.assertEqual(st, 200, data)
                served = {n: self.sim.stats()["accounts"][n]["generate_ok"] - before[n] for n in names}
                self.assertEqual(sorted(served.values()), [0, 0, 4], (headers, served))


class Pacing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()

    @classmethod
    def tearDownClass(cls):
        cls.sim.cleanup()

    def test_rpm_bounds_every_window(self):
        env = dict(QUIET, KIRO_POOL_STRATEGY="round_robin", KIRO_ACCOUNT_RPM=str(RPM), KIRO_PACE_WINDOW_S=str(WINDOW_S),
                   KIRO_PACE_WAIT_MS=str(WAIT_MS))
        with gateway(self, self.sim, PACED, env) as gw:
            wait_until(self, "5 usable accounts", lambda: all(a["state"] == "ok" and a["expires_at"]
                                                              for a in tokens(gw)["tokens"]))
            results, lock = [], threading.Lock()
            todo = list(range(100))

            def worker():
                while True:
                    with lock:
                        if not todo:
                            return
                        i = todo.pop()
                    if i % 2 == 0:
                        r = post(gw, body("request %d" % i, stream=False))
                    else:
                        r = request(gw.port, "POST", "/v1/chat/completions", key=CLIENT_KEY,
                                    body={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "r %d" % i}]})
                    with lock:
                        results.append((i, r))

            threads = [threading.Thread(target=worker) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            self.assertEqual(len(results), 100)
            ok = [i for i, (st, _, _) in results if st == 200]
            refused = [(i, h, d) for i, (st, h, d) in results if st == 429]
            self.assertEqual(len(ok) + len(refused), 100, [(i, r[0], r[2][:200]) for i, r in results if r[0] not in (200, 429)])
            # more than one window's worth: requests were served as slots freed
            self.assertGreater(len(ok), RPM * len(PACED))
            self.assertTrue(refused, "with a %d ms wait some requests must be refused" % WAIT_MS)
            for i, h, d in refused:
                self.assertIn("retry-after", h)
                self.assertTrue(1 <= int(h["retry-after"]) <= WINDOW_S, h["retry-after"])
                err = json.loads(d)
                if i % 2 == 0:
                    self.assertEqual((err["type"], err["error"]["type"]), ("error", "rate_limit_error"), err)
                else:
                    self.assertEqual(err["error"]["code"], "rate_limit_exceeded", err)
                self.assertIn("pace", err["error"]["message"])
            stats = self.sim.stats()["accounts"]
            total = 0
            for name in PACED:
                times = sorted(stats[name]["generate_times_ms"])
                total += len(times)
                for j in range(RPM, len(times)):
                    self.assertGreaterEqual(times[j] - times[j - RPM], WINDOW_S * 1000 - ARRIVAL_SLACK_MS,
                                            "%s: %d calls within %d ms: %s" % (name, RPM + 1, times[j] - times[j - RPM],
                                                                               times[j - RPM:j + 1]))
            self.assertEqual(total, len(ok))  # every served request was one generate call; refused ones made none
            for a in tokens(gw)["tokens"]:
                self.assertEqual((a["pace"]["rpm"], a["pace"]["window_s"]), (RPM, WINDOW_S))
                self.assertLessEqual(a["pace"]["attempts"], RPM)
            st, _, metrics = request(gw.port, "GET", "/metrics", key=CLIENT_KEY)
            self.assertIn(b"k2a_account_pace_attempts{", metrics)
            self.assertIn(b"k2a_account_pace_rpm{", metrics)
            # accounts at their pace are out of the rotation for seconds, not unusable: /readyz stays 200
            wait_until(self, "every window empty", lambda: not any(a["pace"]["attempts"] for a in tokens(gw)["tokens"]))
            for i in range(RPM * len(PACED)):
                st, _, data = post(gw, body("fill %d" % i, stream=False))
                self.assertEqual(st, 200, data)
            self.assertTrue(all(a["pace"]["paced"] for a in tokens(gw)["tokens"]), tokens(gw)["tokens"])
            st, _, data = request(gw.port, "GET", "/readyz")
            self.assertEqual(st, 200, data)


if __name__ == "__main__":
    main()
