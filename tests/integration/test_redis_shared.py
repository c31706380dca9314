"""Several gateway replicas sharing one account pool through Redis (KIRO_REDIS_URL), against kiro-sim, which rotates
Social refresh tokens of sim-rotate-* accounts and refuses a used one:
- two replicas started on the same accounts refresh each account once between them; requests alternating over both
  succeed; the rotated token one replica obtained is the one the other uses (a stale one would be refused);
- a short token lifetime (--token-ttl) makes the replicas refresh ahead while requests flow: no refresh failure, and the
  refreshes stay at one per lifetime per account, not one per replica;
- a cooldown learned by one replica (a 429) is in the other's copy within 100 ms, and the other does not send to it;
- Redis killed mid-run: requests keep succeeding on both, /readyz and /api/tokens say "shared store unavailable", a
  refresh forced meanwhile rotates locally; Redis restarted (empty): the replicas reconnect and replay what they hold
  (the rotated refresh token is in Redis again, newest version);
- a bad KIRO_REDIS_URL is a one-line start-up error."""
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from e2e_util import body, post, sim_account, tokens, wait_accounts, wait_until
from k2a import BIN, BUILD_DIR, SLOW, Gateway, Sim, main, request, sim_accounts_env
from redis_util import Redis

QUIET = {"KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_CATALOG_REFRESH_S": "0"}


def replica_env(sim, redis, accounts, extra=None):
    e = dict(QUIET)
    e.update({"KIRO_REDIS_URL": redis.url, "KIRO_REDIS_PREFIX": "t:", "KIRO_REDIS_RESYNC_MS": "1000"})
    e.update(extra or {})
    return sim_accounts_env(sim, accounts, e)


class Replicas:
    """n gateways on one Redis; stopped and checked for a clean exit by close()."""

    def __init__(self, tc, sim, redis, accounts, n=2, extra=None):
        self.tc = tc
        self.gws = []
        for _ in range(n):
            self.gws.append(Gateway(env=replica_env(sim, redis, accounts, extra)))

    def close(self, check=True):
        for gw in self.gws:
            try:
                if check:
                    gw.assert_clean_exit(self.tc)
            finally:
                gw.cleanup()


def saved_token(path, name):
    """The refresh token a gateway's state file holds for the account configured as `name` (None when none yet)."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except (FileNotFoundError, ValueError):
        return None
    for rec in doc["accounts"]:
        if rec["refresh_token"] == name or rec["refresh_token"].startswith(name + "-r"):
            return rec["refresh_token"]
    return None


class SharedPool(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.redis = Redis()

    @classmethod
    def tearDownClass(cls):
        try:
            st = cls.sim.stats()
            assert st["rejections"] == 0, st["rejections_by_rule"]
        finally:
            cls.sim.cleanup()
            cls.redis.cleanup()

    def test_one_refresh_across_replicas_and_rotation_shared(self):
        names = ["sim-rotate-sh1", "sim-rotate-sh2"]
        r = Replicas(self, self.sim, self.redis, names, n=3)
        try:
            for gw in r.gws:
                wait_accounts(self, gw, ["ok", "ok"])
            for n in names:
                acct = sim_account(self.sim, n)
                # one refresh per account across the three replicas, and each later replica used the rotated token
                self.assertEqual((acct["refreshes"], acct["refresh_failures"], acct["rotation"]), (1, 0, 1), acct)
            for i in range(60):
                st, _, data = post(r.gws[i % 3], body("hello %d" % i, stream=False))
                self.assertEqual(st, 200, data)
            for n in names:
                acct = sim_account(self.sim, n)
                self.assertEqual((acct["refreshes"], acct["refresh_failures"]), (1, 0), acct)
            stored = self.redis.hgetall("t:acct:" + self.key_of(names[0]))
            self.assertEqual((stored["rt"], stored["rtv"]), (names[0] + "-r1", "1"))
        finally:
            r.close()

    def key_of(self, name, redis=None):
        redis = redis or self.redis
        keys = redis.keys("t:acct:*")
        # the account's key is sha256("Social:" + configured token); the dashboard does not show it: match by token
        for k in keys:
            if redis.hgetall(k).get("rt", "").startswith(name):
                return k[len("t:acct:"):]
        self.fail("no record for %s in %s" % (name, keys))

    def test_cooldown_reaches_the_other_replica_within_100ms(self):
        names = ["sim-429-cd1", "sim-ok-cd1"]
        r = Replicas(self, self.sim, self.redis, names, n=2)
        try:
            a, b = r.gws
            wait_accounts(self, a, ["ok", "ok"])
            wait_accounts(self, b, ["ok", "ok"])
            sent = sim_account(self.sim, names[0])["requests"]
            st, _, data = post(a, body("cool it", stream=False))
            t0 = time.monotonic()
            self.assertEqual(st, 200, data)  # served by the second account
            self.assertEqual(tokens(a)["tokens"][0]["state"], "cooling")
            seen = None
            while time.monotonic() - t0 < 2 * SLOW:
                if tokens(b)["tokens"][0]["state"] == "cooling":
                    seen = time.monotonic() - t0
                    break
            self.assertIsNotNone(seen, "replica B never saw the cooldown")
            self.assertLess(seen, 0.1 * SLOW, "replica B saw the cooldown after %.0f ms" % (seen * 1000))
            # B honours it: its requests skip the cooling account
            for i in range(5):
                st, _, data = post(b, body("on b %d" % i, stream=False))
                self.assertEqual(st, 200, data)
            self.assertEqual(sim_account(self.sim, names[0])["requests"], sent + 1)
            print("cooldown seen by the other replica after %.1f ms" % (seen * 1000))
        finally:
            r.close()

    def test_redis_down_and_back(self):
        names = ["sim-rotate-dn1", "sim-ok-dn1"]
        redis = Redis()
        tmp = tempfile.mkdtemp(prefix="k2a-redis-state-")
        files = [os.path.join(tmp, "a.json"), os.path.join(tmp, "b.json")]
        a = Gateway(env=replica_env(self.sim, redis, names, {"KIRO_STATE_FILE": files[0]}))
        b = Gateway(env=replica_env(self.sim, redis, names, {"KIRO_STATE_FILE": files[1]}))
        try:
            wait_accounts(self, a, ["ok", "ok"])
            wait_accounts(self, b, ["ok", "ok"])
            self.assertEqual(sim_account(self.sim, names[0])["refreshes"], 1)
            self.assertEqual(json.loads(request(a.port, "GET", "/readyz")[2]), {"status": "ready"})
            self.assertEqual(tokens(a)["pool_stats"]["shared_store"], "ok")
            redis.kill()
            fails = []
            for i in range(20):
                st, _, data = post((a, b)[i % 2], body("while down %d" % i, stream=False))
                if st != 200:
                    fails.append((st, data))
            self.assertEqual(fails, [])
            for gw in (a, b):
                st, _, data = request(gw.port, "GET", "/readyz")
                self.assertEqual((st, json.loads(data)), (200, {"status": "ready", "shared_store": "shared store unavailable"}))
                self.assertEqual(tokens(gw)["pool_stats"]["shared_store"], "shared store unavailable")
            # a refresh on A while Redis is down (a refused token forces it) rotates locally and is written to A's state file
            post(a, body("[[sim:status code=403]]", stream=False))
            wait_until(self, "rotation 2", lambda: sim_account(self.sim, names[0])["rotation"] == 2)
            wait_until(self, "-r2 in A's state file", lambda: saved_token(files[0], names[0]) == names[0] + "-r2")
            redis.start()  # empty: --save ''
            wait_until(self, "both replicas back", lambda: all(
                json.loads(request(gw.port, "GET", "/readyz")[2]) == {"status": "ready"} for gw in (a, b)), timeout=15)

            def replayed():
                rec = redis.hgetall("t:acct:" + self.key_of(names[0], redis))
                return (rec.get("rt"), rec.get("rtv"))
            wait_until(self, "the rotated token replayed into Redis", lambda: replayed() == (names[0] + "-r2", "2"))
            # B learns it from Redis (and keeps it in its own state file)
            wait_until(self, "-r2 in B's state file", lambda: saved_token(files[1], names[0]) == names[0] + "-r2")
            for i in range(10):
                st, _, data = post((a, b)[i % 2], body("back %d" % i, stream=False))
                self.assertEqual(st, 200, data)
            a.assert_clean_exit(self)
            b.assert_clean_exit(self)
        except AssertionError:
            for n, gw in (("A", a), ("B", b)):
                print("%s:\n%s" % (n, "\n".join(l for l in gw.stderr().splitlines() if "pool" in l)[-6000:]))
            raise
        finally:
            a.cleanup()
            b.cleanup()
            redis.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)

    def test_password(self):
        """AUTH with the URL's password; a wrong one is one error line and the replica serves from memory."""
        redis = Redis(password="s3cret-pw")
        try:
            good = Gateway(env=replica_env(self.sim, redis, ["sim-ok-pw1"]))
            try:
                wait_accounts(self, good, ["ok"])
                wait_until(self, "connected", lambda: tokens(good)["pool_stats"]["shared_store"] == "ok")
                self.assertTrue(redis.keys("t:acct:*"))
                good.assert_clean_exit(self)
            finally:
                good.cleanup()
            env = replica_env(self.sim, redis, ["sim-ok-pw1"])
            env["KIRO_REDIS_URL"] = redis.url.replace("s3cret-pw", "wrong-pw")
            bad = Gateway(env=env)
            try:
                wait_accounts(self, bad, ["ok"])
                st, _, data = post(bad, body("no redis", stream=False))
                self.assertEqual(st, 200, data)
                self.assertEqual(tokens(bad)["pool_stats"]["shared_store"], "shared store unavailable")
                time.sleep(1)
                err = bad.stderr()
                self.assertEqual(len([l for l in err.splitlines() if "refused the connection's set-up" in l]), 1, err[-2000:])
                self.assertNotIn("wrong-pw", err)
                bad.assert_clean_exit(self)
            finally:
                bad.cleanup()
        finally:
            redis.cleanup()

    def test_bad_url_is_one_line_error(self):
        env = replica_env(self.sim, self.redis, ["sim-ok-bad1"], {"KIRO_REDIS_URL": "http://127.0.0.1:6379"})
        env.update({"KIRO_HOST": "127.0.0.1", "PORT": "0", "KIRO_STATE_FILE": ""})
        p = subprocess.run([BIN], env=env, capture_output=True, text=True, timeout=30 * SLOW)
        self.assertNotEqual(p.returncode, 0)
        lines = [l for l in p.stderr.splitlines() if "KIRO_REDIS_URL" in l]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("redis://", lines[0])


class SharedCounter(unittest.TestCase):
    def test_limit_50_over_two_replicas(self):
        """bench_redis drives the windowed counter through two stores (two replicas' connections): a limit of 50 admits
        exactly 50 of 400 concurrent attempts."""
        exe = os.path.join(BUILD_DIR, "bench", "bench_redis")
        redis = Redis()
        try:
            p = subprocess.run([exe, redis.url, "300"], capture_output=True, text=True, timeout=120 * SLOW)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("limit 50 over two replicas, 400 attempts: 50 admitted", p.stdout)
        finally:
            redis.cleanup()


class SharedRefreshAhead(unittest.TestCase):
    """Short-lived tokens: both replicas refresh ahead, but one refresh per lifetime happens, with the newest token."""

    def test_refresh_ahead_once_per_lifetime(self):
        sim = Sim(args=["--token-ttl", "4"])
        redis = Redis()
        names = ["sim-rotate-ra1", "sim-rotate-ra2"]
        r = Replicas(self, sim, redis, names, n=2)
        try:
            for gw in r.gws:
                wait_accounts(self, gw, ["ok", "ok"])
            t0 = time.monotonic()
            errors = []
            lock = threading.Lock()

            def client(k):
                for i in range(60):
                    st, _, data = post(r.gws[(i + k) % 2], body("ra %d %d" % (k, i), stream=False))
                    if st != 200:
                        with lock:
                            errors.append((st, data[:200]))
                    time.sleep(0.15)
            th = [threading.Thread(target=client, args=(k,)) for k in range(4)]
            for t in th:
                t.start()
            for t in th:
                t.join()
            elapsed = time.monotonic() - t0
            self.assertEqual(errors, [])
            for n in names:
                acct = sim_account(sim, n)
                self.assertEqual(acct["refresh_failures"], 0, acct)
                self.assertEqual(acct["rotation"], acct["refreshes"], acct)
                # refresh-ahead at ~80 % of a 4 s lifetime: about one per 3.2 s; two uncoordinated replicas double it
                limit = int(elapsed / 3.0) + 2
                self.assertLessEqual(acct["refreshes"], limit, (acct, elapsed))
                # every rotation went through Redis: the stored version is the simulator's rotation count
                recs = [redis.hgetall(k) for k in redis.keys("t:acct:*")]
                rec = [x for x in recs if x.get("rt", "").startswith(n)]
                self.assertEqual(rec[0]["rtv"], str(acct["rotation"]), rec)
            print("%.1f s, refreshes %s" % (elapsed, [sim_account(sim, n)["refreshes"] for n in names]))
        finally:
            r.close()
            st = sim.stats()
            sim.cleanup()
            redis.cleanup()
            self.assertEqual(st["rejections"], 0, st["rejections_by_rule"])


    def test_kill_9_during_rotations_loses_nothing(self):
        """Replica A is killed (SIGKILL) while both refresh short-lived tokens: B keeps serving, and every later refresh
        uses the newest rotated token (the simulator refuses any other)."""
        sim = Sim(args=["--token-ttl", "3"])
        redis = Redis()
        name = "sim-rotate-k9"
        r = Replicas(self, sim, redis, [name], n=2)
        try:
            a, b = r.gws
            wait_accounts(self, a, ["ok"])
            wait_accounts(self, b, ["ok"])
            wait_until(self, "a few rotations", lambda: sim_account(sim, name)["rotation"] >= 2)
            a.p.kill()
            a.p.wait()
            rot = sim_account(sim, name)["rotation"]
            t_end = time.monotonic() + 8 * SLOW
            fails = []
            while time.monotonic() < t_end:
                st, _, data = post(b, body("after the kill", stream=False))
                if st != 200:
                    fails.append((st, data[:200]))
                time.sleep(0.1)
            self.assertEqual(fails, [])
            acct = sim_account(sim, name)
            self.assertGreater(acct["rotation"], rot)  # B went on refreshing alone
            self.assertEqual(acct["refresh_failures"], 0, acct)
            b.assert_clean_exit(self)
        finally:
            r.close(check=False)
            st = sim.stats()
            sim.cleanup()
            redis.cleanup()
            self.assertEqual(st["rejections"], 0, st["rejections_by_rule"])


if __name__ == "__main__":
    main()
