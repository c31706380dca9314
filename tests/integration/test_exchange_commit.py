"""Regression test_no_failover_after_content (issue 19, use-after-free): once content of a stream has reached the
client, a later failure ends the answer and never fails over. The exchange frees the Kiro request body when content is
committed; a failover after that re-sent the freed body (and would have sent a second answer after part of the first).
The failure is the out-of-memory branch of moving staged bytes to the client, armed by K2A_TEST_FAIL=exchange_drain
(a failure point compiled into every build, inert unless the variable is set). Two accounts, so a failover shows as a
second generate call; both dialects; the gateway keeps serving and exits cleanly (the ASan run reports a use after
free as a sanitizer report)."""
import json
import unittest

from k2a import SLOW, Gateway, Sim, main, sim_accounts_env
from hostile import body_for, post

DIALECTS = ("anthropic", "openai")


class NoFailoverAfterContent(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-commit1", "sim-ok-commit2"], {
            "K2A_TEST_FAIL": "exchange_drain", "KIRO_PING_INTERVAL_MS": "60000",
            "KIRO_FIRST_BYTE_TIMEOUT_MS": str(int(5000 * SLOW))}))

    @classmethod
    def tearDownClass(cls):
        tc = unittest.TestCase()
        try:
            cls.gw.assert_clean_exit(tc)
            cls.sim.assert_clean_exit(tc)
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def test_no_failover_after_content(self):
        for dialect in DIALECTS:
            with self.subTest(dialect=dialect):
                before = self.sim.stats()["generates_total"]
                st, _, data = post(self.gw.port, dialect, body_for(dialect, "[[sim:text frames=6 size=8]]", stream=True))
                self.assertEqual(st, 200, data[:1000])
                # the answer is cut where the failure hit: never a normal end, never a second answer
                self.assertNotIn(b"message_stop", data)
                self.assertNotIn(b"[DONE]", data)
                self.assertEqual(self.sim.stats()["generates_total"] - before, 1, "failed over after content")
        log = self.gw.stderr()
        self.assertIn("failed after content reached the client", log)
        self.assertNotIn("failed before anything reached the client", log)

    def test_non_stream_unaffected_and_serving(self):
        # the failure point is the stream's drain: a non-stream answer goes through, so the gateway still serves
        for dialect in DIALECTS:
            st, _, data = post(self.gw.port, dialect, body_for(dialect, "still serving?", stream=False))
            self.assertEqual(st, 200, data[:1000])
            self.assertIn("echo: still serving?", json.dumps(json.loads(data)))


if __name__ == "__main__":
    main()
