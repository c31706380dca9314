"""KIRO_WORKERS: several event loops share the port (SO_REUSEPORT) and one account pool (owned by
worker 0, reached from the others through cross-loop calls). Concurrent streams all complete, the
work is spread over more than one worker, /metrics sums every worker, the pool counts every request
exactly once, and SIGTERM stops every worker cleanly."""
import json
import re
import threading
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, main, parse_sse, request, sim_accounts_env


class Workers(unittest.TestCase):
    def test_four_workers_share_one_pool(self):
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-w1", "sim-ok-w2"], {"KIRO_WORKERS": "4",
                                                                         "KIRO_POOL_STRATEGY": "round_robin"}))
        try:
            n = 48
            results = [None] * n

            def one(i):
                body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                        "messages": [{"role": "user", "content": "worker test %d" % i}]}
                results[i] = request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY)
            threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            for i, (st, _, data) in enumerate(results):
                self.assertEqual(st, 200, data)
                evs = parse_sse(data)
                self.assertEqual(evs[-1][0], "message_stop")
                text = "".join(json.loads(d)["delta"]["text"] for e, d in evs if e == "content_block_delta")
                self.assertEqual(text, "echo: worker test %d" % i)

            st, _, m = request(gw.port, "GET", "/metrics", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            text = m.decode()
            self.assertRegex(text, r"k2a_workers 4\b")
            served = re.findall(r'^k2a_http_requests_total\{route="messages",status="200"\} (\d+)$', text, re.M)
            self.assertEqual(int(served[0]), n)
            busy = [int(v) for v in re.findall(r'^k2a_worker_requests_total\{worker="\d+"\} (\d+)$', text, re.M)]
            self.assertEqual(len(busy), 4)
            self.assertGreater(sum(1 for v in busy if v > 0), 1, text)

            st, _, tokens = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            accounts = json.loads(tokens)["tokens"]
            self.assertEqual(sum(a["requests"] for a in accounts), n)
            self.assertTrue(all(a["requests"] > 0 for a in accounts))  # round robin spread them
            stats = sim.stats()
            self.assertEqual(stats["generates_total"], n)
            self.assertEqual(stats["refreshes_total"], 2)  # one per account, whichever worker needed it
            self.assertEqual(request(gw.port, "GET", "/readyz")[0], 200)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
