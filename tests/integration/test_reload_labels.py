"""Regression test_reload_while_streams_run_on_workers (issue 19, lease.label): a lease's label and description are
copies made on the pool's owner loop, not pointers into the account, which a SIGHUP reload rewrites on that loop
while worker loops read them (the attempt summary, logs, traces). Three workers stream answers through accounts whose
descriptions change with each of many reloads, while one account fails every call so that its label is read on the
worker for every failure summary. Every stream completes with the right text, every failure label a client sees is
one the configuration gave (never a torn one), and the gateway exits cleanly (the ASan run of this test reports any
use of freed or rewritten memory)."""
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, parse_sse, request, sim_accounts_env


def accounts(gen):
    return [{"auth": "Social", "refreshToken": "sim-500-lbl0", "description": "failing-%d-%s" % (gen, "x" * (gen % 40))},
            {"auth": "Social", "refreshToken": "sim-ok-lbl1", "description": "ok-one-%d" % gen},
            {"auth": "Social", "refreshToken": "sim-ok-lbl2", "description": "ok-two-%d-%s" % (gen, "y" * (gen % 50))}]


class ReloadLabels(unittest.TestCase):
    def test_reload_while_streams_run_on_workers(self):
        tmp = tempfile.mkdtemp(prefix="k2a-labels-")
        auth = os.path.join(tmp, "accounts.json")
        with open(auth, "w") as f:
            json.dump(accounts(0), f)
        sim = Sim()
        env = sim_accounts_env(sim, [], {"KIRO_AUTH_TOKEN": auth, "KIRO_WORKERS": "3", "KIRO_POOL_STRATEGY": "round_robin",
                                         "KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_MAX_ATTEMPTS": "3"})
        gw = Gateway(env=env)
        try:
            n = 36
            results = [None] * n
            stop = threading.Event()

            def one(i):
                body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True, "messages": [
                    {"role": "user", "content": "[[sim:drip ms=20]] [[sim:text frames=12 size=6]] %d" % i}]}
                results[i] = request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY, timeout=60 * SLOW)

            def reloads():
                gen = 1
                while not stop.is_set() and gen < 200:
                    with open(auth + ".tmp", "w") as f:
                        json.dump(accounts(gen), f)
                    os.rename(auth + ".tmp", auth)
                    gw.send_signal(signal.SIGHUP)
                    gen += 1
                    time.sleep(0.02)
            r = threading.Thread(target=reloads)
            r.start()
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
                time.sleep(0.01)
            for t in threads:
                t.join(90 * SLOW)
            stop.set()
            r.join(30)
            for i, res in enumerate(results):
                self.assertIsNotNone(res, "stream %d did not finish" % i)
                st, _, data = res
                self.assertEqual(st, 200, data[:2000])
                evs = parse_sse(data)
                names = [e for e, _ in evs if e != "ping"]
                self.assertEqual(names[-1], "message_stop", data[-500:])
                text = "".join(json.loads(d)["delta"]["text"] for e, d in evs if e == "content_block_delta")
                self.assertEqual(len(text), 12 * 6, text)
            # the gateway still serves, and the failing account's failures were summarised with whole labels
            log = gw.stderr()
            labels = re.findall(r"pool: (account \d+ \([^)]*\)):", log)
            self.assertTrue(labels, log[-3000:])
            for label in labels:
                self.assertRegex(label, r"^account \d \((failing-\d+-x*|ok-one-\d+|ok-two-\d+-y*)\)$")
            st, _, _ = request(gw.port, "GET", "/readyz")
            self.assertEqual(st, 200)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
