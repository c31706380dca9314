"""Client keys shared by gateway replicas through Redis (KIRO_REDIS_URL), against kiro-sim:
- a key created through replica A answers on replica B within 100 ms (B applies A's announcement); Redis holds the key's
  SHA-256 and display prefix, never the secret;
- a limit changed on A shows on B; disabled on A -> 401 on B, enabled again -> 200; deleted on A -> 401 on B, and a
  replica started afterwards does not bring it back (tombstone);
- a replica started later loads every key from Redis;
- a Responses conversation across replicas: created through A, GET /v1/responses/{id} on B finds it, a follow-up on B
  with previous_response_id carries A's turn upstream; another client key does not see it; Redis holds it with the
  store's time to live; DELETE on B removes it from Redis and from A's memory (GET on A and on B: 404), another key's
  DELETE is a 404 and removes nothing;
- a key's usage (requests of a key without limits, errors, tokens) is added up and written every 250 ms, in fewer
  script calls than requests, and what is still pending is written on SIGTERM;
- Redis killed: both replicas keep serving the keys they hold; a key created on A meanwhile is written once Redis is
  back and then works on B."""
import json
import os
import shutil
import tempfile
import threading
import time
import unittest

from k2a import SLOW, Gateway, Sim, main, request, sim_accounts_env
from e2e_util import tokens, wait_until
from redis_util import Redis

ADMIN = "admin-token-for-redis-key-tests-0123456789"
AH = {"authorization": "Bearer " + ADMIN}
MODEL = "claude-sonnet-4-5"
QUIET = {"KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_CATALOG_REFRESH_S": "0"}


def chat_full(gw, key, text="hi", stream=False):
    return request(gw.port, "POST", "/v1/messages", key=key, timeout=60 * SLOW,
                   body={"model": MODEL, "max_tokens": 16, "stream": stream,
                         "messages": [{"role": "user", "content": text}]})


def chat(gw, key):
    return chat_full(gw, key)[0]


class RedisKeys(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.redis = Redis()
        cls.tmp = tempfile.mkdtemp(prefix="k2a-redis-keys-")
        cls.gws = []

    @classmethod
    def tearDownClass(cls):
        for gw in cls.gws:
            gw.cleanup()
        cls.sim.cleanup()
        cls.redis.cleanup()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def replica(self, name, redis=None):
        e = dict(QUIET)
        e.update({"KIRO_REDIS_URL": (redis or self.redis).url, "KIRO_REDIS_PREFIX": "rk:", "KIRO_ADMIN_TOKEN": ADMIN,
                  "KIRO_STATE_FILE": os.path.join(self.tmp, name, "state.json"), "KIRO_WORKERS": "2"})
        os.makedirs(os.path.join(self.tmp, name), exist_ok=True)
        gw = Gateway(env=sim_accounts_env(self.sim, ["sim-ok-rk-" + name], e))
        self.gws.append(gw)
        # connected (the shared limits and stored Responses need the pool's connection; keys sync on their own)
        wait_until(self, "the shared store connected", lambda: tokens(gw)["pool_stats"]["shared_store"] == "ok", timeout=10)
        return gw

    def admin(self, gw, method, path, body=None, expect=200):
        st, _, b = request(gw.port, method, "/api/admin/" + path, body=body, headers=AH)
        self.assertEqual(st, expect, b)
        return json.loads(b) if b else None

    def wait_status(self, gw, key, status):
        """Seconds until key gets `status` on gw (polled without pause), or fails after 2 s."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2 * SLOW:
            if chat(gw, key) == status:
                return time.monotonic() - t0
        self.fail("the key never got %d" % status)

    def test_keys_shared_between_replicas(self):
        a, b = self.replica("a"), self.replica("b")
        try:
            k = self.admin(a, "POST", "keys", {"name": "shared-1", "limits": {"rpm": 100}}, expect=201)
            seen = self.wait_status(b, k["key"], 200)  # from A's answer on
            self.assertLess(seen, 0.1 * SLOW, "B accepted the key after %.0f ms" % (seen * 1000))
            print("key created on A accepted by B after %.1f ms" % (seen * 1000))
            # Redis holds the hash and the display prefix, never the secret
            rec = self.redis.hgetall("rk:key:" + k["id"])
            self.assertEqual(rec["prefix"], k["key"][:12])
            self.assertEqual(len(rec["hash"]), 64)
            self.assertNotIn(k["key"], json.dumps(rec))
            self.assertNotIn(k["key"], self.redis.cli("--no-raw", "DUMP", "rk:key:" + k["id"]))
            # a limit changed on A shows on B
            self.admin(a, "PATCH", "keys/" + k["id"], {"limits": {"concurrency": 7}})
            wait_until(self, "B shows the new limit",
                       lambda: self.admin(b, "GET", "keys/" + k["id"])["limits"]["concurrency"] == 7, timeout=2)
            self.assertEqual(self.admin(b, "GET", "keys/" + k["id"])["limits"]["rpm"], 100)
            # disabled on A: 401 on B within 100 ms; enabled again: 200
            self.admin(a, "PATCH", "keys/" + k["id"], {"enabled": False})
            seen = self.wait_status(b, k["key"], 401)
            self.assertLess(seen, 0.1 * SLOW, "B refused the disabled key after %.0f ms" % (seen * 1000))
            self.admin(a, "PATCH", "keys/" + k["id"], {"enabled": True})
            self.wait_status(b, k["key"], 200)
            # a change made on B reaches A too
            self.admin(b, "PATCH", "keys/" + k["id"], {"name": "shared-1b"})
            wait_until(self, "A shows B's rename", lambda: self.admin(a, "GET", "keys/" + k["id"])["name"] == "shared-1b",
                       timeout=2)
            # deleted on A: 401 on B
            k2 = self.admin(a, "POST", "keys", {"name": "shared-2"}, expect=201)
            self.wait_status(b, k2["key"], 200)
            self.admin(a, "DELETE", "keys/" + k2["id"])
            seen = self.wait_status(b, k2["key"], 401)
            self.assertLess(seen, 0.1 * SLOW, "B refused the deleted key after %.0f ms" % (seen * 1000))
            self.admin(b, "GET", "keys/" + k2["id"], expect=404)
            self.assertEqual(self.redis.hgetall("rk:key:" + k2["id"])["deleted"], "1")
            # a replica started now loads the live keys from Redis, and not the deleted one
            c = self.replica("c")
            self.assertEqual(chat(c, k["key"]), 200)
            self.assertEqual(chat(c, k2["key"]), 401)
            names = sorted(x["name"] for x in self.admin(c, "GET", "keys")["keys"] if not x["builtin"])
            self.assertIn("shared-1b", names)
            self.assertNotIn("shared-2", names)
            for gw in (a, b, c):
                gw.assert_clean_exit(self)
        except AssertionError:
            for n, gw in zip("abc", self.gws):
                print("%s:\n%s" % (n, gw.stderr()[-3000:]))
            raise

    def test_limits_shared_between_replicas(self):
        a, b = self.replica("la"), self.replica("lb")
        try:
            # concurrency 10: exactly 10 of 100 sent at once over both replicas are in flight, the rest 429 + Retry-After
            k = self.admin(a, "POST", "keys", {"name": "conc10", "limits": {"concurrency": 10}}, expect=201)
            self.wait_status(b, k["key"], 200)
            before = self.sim.stats()["generates_total"]
            hold_ms = int(3000 * SLOW)
            results = [None] * 100
            go = threading.Event()

            def one(i):
                go.wait()
                results[i] = chat_full((a, b)[i % 2], k["key"], text="[[sim:stall ms=%d]] hold" % hold_ms,
                                       stream=(i % 4 < 2))

            threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
            for t in threads:
                t.start()
            go.set()
            for t in threads:
                t.join(60 * SLOW)
            ok = [r for r in results if r[0] == 200]
            refused = [r for r in results if r[0] != 200]
            self.assertEqual(len(ok), 10, sorted(r[0] for r in results))
            for st, h, body in refused:
                self.assertEqual(st, 429, body)
                self.assertGreaterEqual(int(h["retry-after"]), 1)
                self.assertEqual(json.loads(body)["error"]["type"], "rate_limit_error")
            self.assertEqual(self.sim.stats()["generates_total"] - before, 10)
            served = [i % 2 for i, r in enumerate(results) if r[0] == 200]
            print("concurrency 10 over two replicas: 10 admitted (%d on A, %d on B), 90 refused"
                  % (served.count(0), served.count(1)))
            # every slot came back: the key serves on both again
            self.assertEqual(self.redis.cli("ZCARD", "rk:kc:" + k["id"]), "0")
            self.assertEqual(chat(a, k["key"]), 200)
            self.assertEqual(chat(b, k["key"]), 200)
            # usage summed over both replicas, shown alike on each
            for gw in (a, b):
                u = self.admin(gw, "GET", "keys/%s/usage?days=1" % k["id"])["days"][-1]
                self.assertEqual(u["requests"], 13, u)  # the first one on B, 10 held, one on each
                self.assertGreater(u["output_tokens"], 0, u)
            # rpm 6 over both replicas: 6 admitted of 12 alternating, then 429 with the window's Retry-After
            k = self.admin(a, "POST", "keys", {"name": "rpm6", "limits": {"rpm": 6}}, expect=201)
            self.wait_status(b, k["key"], 200)  # one of the six
            sts = [chat_full((a, b)[i % 2], k["key"]) for i in range(11)]
            self.assertEqual([r[0] for r in sts], [200] * 5 + [429] * 6)
            self.assertGreaterEqual(int(sts[-1][1]["retry-after"]), 50)
            for gw in (a, b):
                gw.assert_clean_exit(self)
        except AssertionError:
            for n, gw in zip(("a", "b"), (a, b)):
                print("%s:\n%s" % (n, "\n".join(l for l in gw.stderr().splitlines() if "DEBUG req" not in l)[-3000:]))
            raise

    def test_usage_coalesced_and_flushed_on_stop(self):
        a = self.replica("ua")
        try:
            free = self.admin(a, "POST", "keys", {"name": "usage-free"}, expect=201)
            lim = self.admin(a, "POST", "keys", {"name": "usage-lim", "limits": {"tokens_day": 10 ** 9}}, expect=201)
            self.assertEqual(chat(a, free["key"]), 200)
            self.assertEqual(chat(a, lim["key"]), 200)
            day = int(time.time()) // 86400
            ku = {k["id"]: "rk:ku:%s:%d" % (k["id"], day) for k in (free, lim)}
            wait_until(self, "the first requests' usage written",
                       lambda: all(self.redis.hgetall(ku[k["id"]]).get("out") for k in (free, lim)), timeout=3)

            def evalsha():
                m = [l for l in self.redis.cli("INFO", "commandstats").splitlines() if l.startswith("cmdstat_evalsha:")]
                return int(m[0].split("calls=")[1].split(",")[0]) if m else 0
            n = 30
            before, t0 = evalsha(), time.monotonic()
            for _ in range(n):
                self.assertEqual(chat(a, free["key"]), 200)
            elapsed = time.monotonic() - t0
            wait_until(self, "the key's requests counted in Redis",
                       lambda: self.redis.hgetall(ku[free["id"]]).get("req") == str(n + 1), timeout=3)
            calls = evalsha() - before
            # one charge script call per 250 ms at most (plus the ones around the edges), not one per request
            bound = int(elapsed / 0.25) + 3
            print("%d requests in %.2f s: %d usage script calls" % (n, elapsed, calls))
            self.assertLessEqual(calls, bound)
            # tokens summed alike in Redis and in the replica's own usage
            local = self.admin(a, "GET", "keys/" + free["id"])["usage_today"]
            rec = self.redis.hgetall(ku[free["id"]])
            self.assertEqual(int(rec["out"]), local["output_tokens"], (rec, local))
            self.assertEqual(int(rec["in"]), local["input_tokens"], (rec, local))
            # a burst answered just before SIGTERM is written by the shutdown's flush
            for _ in range(5):
                self.assertEqual(chat(a, lim["key"]), 200)
                self.assertEqual(chat(a, free["key"]), 200)
            local = {k["id"]: self.admin(a, "GET", "keys/" + k["id"])["usage_today"] for k in (free, lim)}
            a.assert_clean_exit(self)
            for k in (free, lim):
                rec = self.redis.hgetall(ku[k["id"]])
                self.assertEqual(int(rec["req"]), local[k["id"]]["requests"], (k["name"], rec, local[k["id"]]))
                self.assertEqual(int(rec["out"]), local[k["id"]]["output_tokens"], (k["name"], rec, local[k["id"]]))
            self.assertEqual(int(self.redis.hgetall(ku[free["id"]])["req"]), n + 6)
            self.assertGreater(int(self.redis.cli("TTL", ku[lim["id"]])), 86400)
        except AssertionError:
            print("ua:\n%s" % "\n".join(l for l in a.stderr().splitlines() if "DEBUG req" not in l)[-3000:])
            raise

    def test_responses_across_replicas(self):
        a, b = self.replica("ra"), self.replica("rb")
        try:
            k = self.admin(a, "POST", "keys", {"name": "resp-1"}, expect=201)
            other = self.admin(a, "POST", "keys", {"name": "resp-2"}, expect=201)
            self.wait_status(b, k["key"], 200)
            self.wait_status(b, other["key"], 200)
            h = {"authorization": "Bearer " + k["key"]}
            st, _, data = request(a.port, "POST", "/v1/responses", {"model": MODEL, "input": "Remember: the code is 4711."},
                                  headers=h)
            self.assertEqual(st, 200, data)
            first = json.loads(data)
            st, _, got = request(b.port, "GET", "/v1/responses/" + first["id"], headers=h)
            self.assertEqual(st, 200, got)
            self.assertEqual(json.loads(got), first)
            ttl = int(self.redis.cli("TTL", [x for x in self.redis.keys("rk:resp:*") if first["id"] in x][0]))
            self.assertTrue(0 < ttl <= 86400, ttl)  # KIRO_RESPONSES_STORE_TTL_S
            # another key does not see it, on either replica
            oh = {"authorization": "Bearer " + other["key"]}
            self.assertEqual(request(b.port, "GET", "/v1/responses/" + first["id"], headers=oh)[0], 404)
            # the conversation continues on B
            st, _, data = request(b.port, "POST", "/v1/responses",
                                  {"model": MODEL, "previous_response_id": first["id"], "input": "What is the code?"}, headers=h)
            self.assertEqual(st, 200, data)
            second = json.loads(data)
            self.assertEqual(second["previous_response_id"], first["id"])
            sent = json.loads(request(self.sim.port, "GET", "/sim/last-request")[2])["conversationState"]
            self.assertIn("4711", sent["history"][0]["userInputMessage"]["content"])
            # and back on A, chained on B's turn
            st, _, data = request(a.port, "POST", "/v1/responses",
                                  {"model": MODEL, "previous_response_id": second["id"], "input": "Thanks"}, headers=h)
            self.assertEqual(st, 200, data)
            sent = json.loads(request(self.sim.port, "GET", "/sim/last-request")[2])["conversationState"]
            self.assertEqual(len(sent["history"]), 4)
            # DELETE through B of the response A made (and holds in memory): not for another key, then for its own
            self.assertEqual(request(b.port, "DELETE", "/v1/responses/" + first["id"], headers=oh)[0], 404)
            self.assertEqual(request(a.port, "GET", "/v1/responses/" + first["id"], headers=h)[0], 200)
            st, _, got = request(b.port, "DELETE", "/v1/responses/" + first["id"], headers=h)
            self.assertEqual((st, json.loads(got)), (200, {"id": first["id"], "object": "response", "deleted": True}))
            self.assertFalse([x for x in self.redis.keys("rk:resp:*") if first["id"] in x])
            self.assertEqual(request(b.port, "GET", "/v1/responses/" + first["id"], headers=h)[0], 404)
            # A learns it from the events channel
            wait_until(self, "A forgets the deleted response",
                       lambda: request(a.port, "GET", "/v1/responses/" + first["id"], headers=h)[0] == 404)
            self.assertEqual(request(a.port, "DELETE", "/v1/responses/" + first["id"], headers=h)[0], 404)
            # the responses made after it are still there
            self.assertEqual(request(a.port, "GET", "/v1/responses/" + second["id"], headers=h)[0], 200)
            for gw in (a, b):
                gw.assert_clean_exit(self)
        except AssertionError:
            for n, gw in zip(("a", "b"), (a, b)):
                print("%s:\n%s" % (n, "\n".join(l for l in gw.stderr().splitlines() if "DEBUG req" not in l)[-3000:]))
            raise

    def test_redis_down_keys_keep_working(self):
        redis = Redis()
        a, b = self.replica("da", redis), self.replica("db", redis)
        try:
            k = self.admin(a, "POST", "keys", {"name": "down-1", "limits": {"rpm": 8}}, expect=201)
            self.wait_status(b, k["key"], 200)
            redis.kill()
            # each replica falls back to its own counters: no request fails for Redis, and each holds the limit alone
            for gw in (a, b):
                sts = [chat(gw, k["key"]) for _ in range(9)]
                self.assertEqual(sts.count(200), 8 - (1 if gw is b else 0), sts)
                self.assertEqual(sts.count(429), 9 - sts.count(200), sts)
            # made on A while Redis is down: in effect on A at once, written once Redis is back, then usable on B
            k2 = self.admin(a, "POST", "keys", {"name": "down-2"}, expect=201)
            self.assertEqual(chat(a, k2["key"]), 200)
            self.assertEqual(chat(b, k2["key"]), 401)
            redis.start()
            wait_until(self, "the key made while down reaches B", lambda: chat(b, k2["key"]) == 200, timeout=15)
            self.assertEqual(redis.hgetall("rk:key:" + k2["id"])["name"], "down-2")
            for gw in (a, b):
                gw.assert_clean_exit(self)
        except AssertionError:
            for n, gw in zip(("a", "b"), (a, b)):
                print("%s:\n%s" % (n, "\n".join(l for l in gw.stderr().splitlines() if "DEBUG" not in l)[-3000:]))
            raise
        finally:
            redis.cleanup()


if __name__ == "__main__":
    main()
