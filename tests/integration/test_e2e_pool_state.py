"""The pool's durable state and lifecycle through the gateway:
- a rotating refresh token (sim-rotate-*) is adopted and persisted; a restart on the same KIRO_STATE_FILE needs no
  refresh, serves at once, and the next refresh uses the rotated token (the simulator refuses the old one);
- with --token-ttl 5 the access token is refreshed ahead of expiry while requests flow: none waits, none is refused;
- kill -9 during a burst of rotations: the state file is valid JSON, mode 0600, and holds every rotated token but at most
  the one in flight (Kiro retires the old token before answering, so that one cannot be made durable); a restart serves;
- SIGHUP adds an account while a stream is open: the stream completes, the new account is listed and serves."""
import json
import os
import signal
import stat
import tempfile
import threading
import unittest

from e2e_util import body, check_sse, gateway, gentext, post, sim_account, sse_summary, tokens, wait_accounts, wait_until
from k2a import SLOW, Gateway, Sim, main, sim_accounts_env


def read_state(path):
    with open(path) as f:
        return json.load(f)


def token_of(doc, name):
    """The refresh token the state file holds for the account configured as `name` (None when it has no record)."""
    for a in doc["accounts"]:
        if a["refresh_token"] == name or a["refresh_token"].startswith(name + "-r"):
            return a["refresh_token"]
    return None


def saved_token(path, name):
    """token_of() of the file as it is now; None while it is missing."""
    try:
        return token_of(read_state(path), name)
    except FileNotFoundError:
        return None


def generation(token, name):
    return 0 if token in (None, name) else int(token[len(name) + 2:])


class PoolState(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.tmp = tempfile.mkdtemp(prefix="k2a-pool-state-")

    @classmethod
    def tearDownClass(cls):
        try:
            st = cls.sim.stats()
            assert st["rejections"] == 0, st["rejections_by_rule"]
        finally:
            cls.sim.cleanup()

    def state_path(self, name):
        return os.path.join(self.tmp, name + ".json")

    def test_rotation_adopted_persisted_and_used_after_restart(self):
        name, state = "sim-rotate-persist1", self.state_path("rotate")
        extra = {"KIRO_STATE_FILE": state, "KIRO_USAGE_POLL_INTERVAL_S": "0"}
        with gateway(self, self.sim, [name], extra) as gw:
            wait_accounts(self, gw, ["ok"])
            self.assertEqual(sim_account(self.sim, name)["rotation"], 1)
            wait_until(self, "the rotated token on disk", lambda: saved_token(state, name) == name + "-r1")
            self.assertTrue(tokens(gw)["tokens"][0]["token_preview"].endswith("1-r1"))
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        self.assertEqual(token_of(read_state(state), name), name + "-r1")

        refreshes = sim_account(self.sim, name)["refreshes"]
        with gateway(self, self.sim, [name], extra) as gw:  # the same configuration: only the state file knows -r1
            wait_accounts(self, gw, ["ok"])
            st, _, data = post(gw, body("after restart", stream=False))
            self.assertEqual(st, 200, data)
            acct = sim_account(self.sim, name)
            self.assertEqual((acct["refreshes"], acct["rotation"]), (refreshes, 1))  # the persisted access token served
            # an invalid-bearer answer forces a refresh: it must use the rotated token (the simulator refuses the original)
            st, _, data = post(gw, body("[[sim:status code=403]]", stream=False))
            acct = sim_account(self.sim, name)
            self.assertEqual((acct["refreshes"], acct["refresh_failures"], acct["rotation"]), (refreshes + 1, 0, 2))
            wait_until(self, "-r2 on disk", lambda: saved_token(state, name) == name + "-r2")

    def test_kill9_during_a_burst_of_rotations(self):
        names = ["sim-rotate-burst%02d" % i for i in range(30)]
        state = self.state_path("burst")
        env = sim_accounts_env(self.sim, names, {"KIRO_STATE_FILE": state, "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        gw = Gateway(env=env)
        try:
            # start-up refreshes are staggered (100 ms apart, 3 s for all): kill -9 once a few of them rotated
            def rotations():
                accts = self.sim.stats()["accounts"]
                return sum(accts.get(n, {}).get("rotation", 0) for n in names) >= 4
            wait_until(self, "4 rotations", rotations)
            gw.p.kill()
            gw.p.wait()
        finally:
            gw.cleanup()
        self.assertEqual(stat.S_IMODE(os.stat(state).st_mode), 0o600)
        doc = read_state(state)  # valid JSON: the rename is the commit
        sim_gen = {n: sim_account(self.sim, n).get("rotation", 0) for n in names}
        file_gen = {n: generation(token_of(doc, n), n) for n in names}
        lost = [n for n in names if sim_gen[n] != file_gen[n]]
        self.assertLessEqual(len(lost), 1, "rotated tokens lost: %s (simulator %s, file %s)" % (lost, sim_gen, file_gen))
        for n in lost:
            self.assertEqual(sim_gen[n], file_gen[n] + 1)
        self.assertGreaterEqual(sum(file_gen.values()), 3)

        # a restart on that file: every account whose rotation was saved is ok; the one in flight (if any) is invalid
        with gateway(self, self.sim, names, {"KIRO_STATE_FILE": state, "KIRO_USAGE_POLL_INTERVAL_S": "0"}) as gw:
            wait_accounts(self, gw, ["invalid" if n in lost else "ok" for n in names], timeout=30)
            st, _, data = post(gw, body("after kill -9", stream=False))
            self.assertEqual(st, 200, data)
            for n in names:
                if n not in lost:
                    self.assertEqual(sim_account(self.sim, n)["refresh_failures"], 0, n)

    def test_sighup_adds_an_account_while_a_stream_is_open(self):
        auth = os.path.join(self.tmp, "accounts.json")
        with open(auth, "w") as f:
            json.dump([{"auth": "Social", "refreshToken": "sim-ok-hup1", "description": "first"}], f)
        extra = {"KIRO_AUTH_TOKEN": auth, "KIRO_POOL_STRATEGY": "round_robin", "KIRO_USAGE_POLL_INTERVAL_S": "0"}
        with gateway(self, self.sim, [], extra) as gw:
            wait_accounts(self, gw, ["ok"])
            result = {}

            def stream():
                result["r"] = post(gw, body("[[sim:drip ms=300]] [[sim:text frames=10 size=8]]"), timeout=60)
            t = threading.Thread(target=stream)
            t.start()
            wait_until(self, "the stream to be open", lambda: self.sim.stats()["open_streams"] >= 1)
            with open(auth + ".tmp", "w") as f:
                json.dump([{"auth": "Social", "refreshToken": "sim-ok-hup1", "description": "first"},
                           {"auth": "Social", "refreshToken": "sim-ok-hup2", "description": "added"}], f)
            os.rename(auth + ".tmp", auth)
            gw.send_signal(signal.SIGHUP)
            t2 = wait_accounts(self, gw, ["ok", "ok"])
            self.assertEqual([a["description"] for a in t2], ["first", "added"])
            self.assertTrue(t.is_alive(), "the stream should still be open (10 frames 300 ms apart)")
            t.join(60 * SLOW)
            st, _, data = result["r"]
            self.assertEqual(st, 200)
            blocks, stop, _, error = sse_summary(check_sse(self, data))
            self.assertEqual((blocks, stop, error), ([{"type": "text", "text": gentext(10, 8)}], "end_turn", None))
            before = sim_account(self.sim, "sim-ok-hup2").get("generate_ok", 0)
            for _ in range(2):  # round robin: one of the two goes to the new account
                self.assertEqual(post(gw, body("hi", stream=False))[0], 200)
            self.assertEqual(sim_account(self.sim, "sim-ok-hup2")["generate_ok"] - before, 1)
            self.assertEqual(tokens(gw)["tokens"][1]["requests"], 1)


class TokenExpiry(unittest.TestCase):
    def test_refreshed_ahead_of_expiry_with_no_request_waiting(self):
        sim = Sim(["--token-ttl", "5"])
        try:
            with gateway(self, sim, ["sim-ok-ttl1"], {"KIRO_USAGE_POLL_INTERVAL_S": "0"}) as gw:
                wait_accounts(self, gw, ["ok"])
                sent = []

                def step():  # a request per poll, until two refreshes ahead of expiry happened (about 8 s)
                    st, _, data = post(gw, body("tick %d" % len(sent), stream=False))
                    sent.append((st, data))
                    self.assertEqual(st, 200, data)
                    return sim_account(sim, "sim-ok-ttl1")["refreshes"] >= 3
                wait_until(self, "two refreshes ahead of expiry", step, timeout=30)
                acct = sim_account(sim, "sim-ok-ttl1")
                self.assertEqual((acct["refresh_failures"], acct["generate_ok"]), (0, len(sent)))
                self.assertEqual(acct["generates"], len(sent))  # no request was refused for an expired token
                pool = tokens(gw)
                self.assertEqual(pool["pool_stats"]["refresh_waits"], 0)
                self.assertEqual((pool["tokens"][0]["errors"], pool["tokens"][0]["state"]), (0, "ok"))
        finally:
            sim.cleanup()


if __name__ == "__main__":
    main()
