"""POST /v1/messages through the gateway against kiro-sim, one upstream reply shape per test:
- every capture in tests/fixtures/upstream/ replayed ([[sim:replay]]) gives, byte for byte, the SSE stream and the JSON of
  the unit-level goldens in tests/vectors/response/ (message id and input-token estimate normalised);
- each simulator directive: text frames, several tools, thinking (enabled / adaptive+omitted / not requested), the
  ContentLengthExceeded exception (max_tokens), upstream statuses on a one-account pool (the Anthropic status and error
  type of each), cut and bad CRC before and after content, a stall past KIRO_FIRST_BYTE_TIMEOUT_MS, drip;
- pings that commit a silent stream come after message_start, and a failover after that commit never repeats it.
Every stream is checked against the Anthropic event grammar (e2e_util.check_sse)."""
import json
import os
import time
import unittest

from e2e_util import (MODEL, SIM_THINKING, body, check_sse, gateway, gentext, normalise, post, sim_account, sse_summary,
                      tokens, wait_accounts)
from k2a import FIXTURES, SLOW, SOURCE_DIR, Gateway, Sim, main, sim_accounts_env

GOLDEN = os.path.join(SOURCE_DIR, "tests", "vectors", "response")
CAPTURES = sorted(f for f in os.listdir(os.path.join(FIXTURES, "upstream")) if f.endswith(".bin"))
CJK = "kiro2api_cjk_text_then_tooluse_21frames_2738B.bin"

WEATHER = {"name": "get_weather", "description": "Get the weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CLOCK = {"name": "get_time", "description": "Get the local time",
         "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": ["tz"]}}


def golden(name, ext):
    with open(os.path.join(GOLDEN, name[:-4] + ".anthropic." + ext), encoding="utf-8") as f:
        return f.read()


class Responses(unittest.TestCase):
    """Replies that leave the account healthy share one gateway; the others each get a fresh one-account gateway."""

    @classmethod
    def setUpClass(cls):
        # the replay goldens name claude-3-5-haiku-20241022 (Kiro modelId claude-haiku-3.5, which kiro-sim does not list)
        cls.sim = Sim(["--model", "claude-haiku-3.5"])
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-resp"]))
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            # nothing the gateway sent was refused by the validator
            st = cls.sim.stats()
            assert st["rejections"] == 0, st["rejections_by_rule"]
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def fresh(self, n_accounts=1, extra=None):
        Responses.n += 1
        names = ["sim-ok-fresh%d-%d" % (Responses.n, i) for i in range(n_accounts)]
        return gateway(self, self.sim, names, extra), names

    def stream(self, gw, b, status=200):
        st, h, data = post(gw, b)
        self.assertEqual(st, status, data[-600:])
        if status == 200:
            self.assertTrue(h["content-type"].startswith("text/event-stream"), h)
            return check_sse(self, data), data
        return json.loads(data), data

    # ---- captures ----

    def test_replay_captures_stream_golden(self):
        for name in CAPTURES:
            with self.subTest(capture=name):
                want = golden(name, "sse")
                model = json.loads(want.split("\n")[1][6:])["message"]["model"]
                evs, data = self.stream(self.gw, body("[[sim:replay file=%s]]" % name, model=model))
                self.assertEqual(normalise(data), normalise(want))
                if name == CJK:  # ends inside a tool call: content went out, so an in-stream error, never a fake stop
                    self.assertEqual(evs[-1][0], "error")

    def test_replay_captures_non_stream_golden(self):
        for name in CAPTURES:
            if name == CJK:
                continue
            with self.subTest(capture=name):
                want = golden(name, "json")
                model = json.loads(want)["model"]
                st, h, data = post(self.gw, body("[[sim:replay file=%s]]" % name, stream=False, model=model))
                self.assertEqual(st, 200, data)
                self.assertTrue(h["content-type"].startswith("application/json"))
                self.assertEqual(normalise(data), normalise(want))

    def test_replay_truncated_tool_non_stream_is_a_clean_error(self):
        # nothing was sent yet, so the gateway may fail over; on a one-account pool the client gets one clean 502
        want = json.loads(golden(CJK, "json"))["error"]
        ctx, names = self.fresh()
        with ctx as gw:
            st, _, data = post(gw, body("[[sim:replay file=%s]]" % CJK, stream=False))
            self.assertEqual(st, 502, data)
            err = json.loads(data)
            self.assertEqual(err["type"], "error")
            self.assertEqual(err["error"]["type"], want["type"])
            self.assertIn(want["message"], err["error"]["message"])
            self.assertIn("account 0", err["error"]["message"])

    # ---- directives ----

    def test_text_frames(self):
        text = gentext(6, 13)
        evs, _ = self.stream(self.gw, body("[[sim:text frames=6 size=13]]"))
        blocks, stop, usage, _ = sse_summary(evs)
        self.assertEqual(blocks, [{"type": "text", "text": text}])
        self.assertEqual(len([e for e, _ in evs if e == "content_block_delta"]), 6)  # one delta per frame
        self.assertEqual(stop, "end_turn")
        self.assertGreater(usage["output_tokens"], 0)
        st, _, data = post(self.gw, body("[[sim:text frames=6 size=13]]", stream=False))
        msg = json.loads(data)
        self.assertEqual((st, msg["content"], msg["stop_reason"]), (200, [{"type": "text", "text": text}], "end_turn"))
        self.assertEqual(msg["usage"]["output_tokens"], usage["output_tokens"])

    def test_several_tools(self):
        a, b = {"city": "Zürich"}, {"tz": "Asia/東京"}
        d = ('[[sim:tool name=get_weather input=%s pieces=4 text="Checking both."]] [[sim:tool name=get_time input=%s pieces=3]]'
             % (json.dumps(a, ensure_ascii=False), json.dumps(b, ensure_ascii=False)))
        for stream in (True, False):
            with self.subTest(stream=stream):
                if stream:
                    evs, _ = self.stream(self.gw, body(d, tools=[WEATHER, CLOCK]))
                    blocks, stop, _, _ = sse_summary(evs)
                else:
                    st, _, data = post(self.gw, body(d, stream=False, tools=[WEATHER, CLOCK]))
                    self.assertEqual(st, 200, data)
                    msg = json.loads(data)
                    blocks, stop = msg["content"], msg["stop_reason"]
                self.assertEqual(stop, "tool_use")
                self.assertEqual([x["type"] for x in blocks], ["text", "tool_use", "tool_use"])
                self.assertEqual(blocks[0]["text"], "Checking both.")
                self.assertEqual([(x["name"], x["input"]) for x in blocks[1:]], [("get_weather", a), ("get_time", b)])
                self.assertNotEqual(blocks[1]["id"], blocks[2]["id"])
                for x in blocks[1:]:
                    self.assertRegex(x["id"], r"^tooluse_[A-Za-z0-9_-]{22}$")

    def test_thinking_enabled(self):
        evs, _ = self.stream(self.gw, body("[[sim:thinking]] hi", thinking={"type": "enabled", "budget_tokens": 2000}))
        blocks, stop, _, _ = sse_summary(evs)
        self.assertEqual([x["type"] for x in blocks], ["thinking", "text"])
        self.assertEqual(blocks[0]["thinking"], SIM_THINKING)
        self.assertTrue(blocks[0]["signature"])
        self.assertEqual(blocks[1]["text"], "echo: hi")
        self.assertEqual(stop, "end_turn")

    def test_thinking_adaptive_display_omitted(self):
        b = body("[[sim:thinking]] hi", thinking={"type": "adaptive", "display": "omitted"})
        evs, _ = self.stream(self.gw, b)
        blocks, _, _, _ = sse_summary(evs)
        self.assertEqual([x["type"] for x in blocks], ["thinking", "text"])
        self.assertEqual(blocks[0]["thinking"], "")  # omitted: the block and its signature, no text
        self.assertTrue(blocks[0]["signature"])
        self.assertEqual(blocks[1]["text"], "echo: hi")
        b["stream"] = False
        msg = json.loads(post(self.gw, b)[2])
        self.assertEqual(msg["content"][0]["thinking"], "")
        self.assertEqual(msg["content"][1], {"type": "text", "text": "echo: hi"})

    def test_thinking_not_requested_is_plain_text(self):
        evs, _ = self.stream(self.gw, body("[[sim:thinking]] hi"))
        blocks, _, _, _ = sse_summary(evs)
        self.assertEqual(blocks, [{"type": "text", "text": "<thinking>%s</thinking>\n\necho: hi" % SIM_THINKING}])

    def test_content_length_exception_is_max_tokens(self):
        evs, _ = self.stream(self.gw, body("[[sim:text frames=3 size=8]] [[sim:exception after=1]]"))
        blocks, stop, _, _ = sse_summary(evs)
        self.assertEqual((blocks, stop), ([{"type": "text", "text": gentext(1, 8)}], "max_tokens"))
        msg = json.loads(post(self.gw, body("[[sim:exception after=0]]", stream=False))[2])
        self.assertEqual((msg["content"], msg["stop_reason"]), ([], "max_tokens"))

    def test_drip(self):
        t0 = time.time()
        evs, _ = self.stream(self.gw, body("[[sim:drip ms=150]] [[sim:text frames=4 size=8]]"))
        self.assertGreaterEqual(time.time() - t0, 0.45)  # three gaps the simulator guarantees
        blocks, stop, _, _ = sse_summary(evs)
        self.assertEqual((blocks, stop), ([{"type": "text", "text": gentext(4, 8)}], "end_turn"))

    def test_upstream_status_on_one_account(self):
        cases = [(400, True, 400, "invalid_request_error", "ok"), (402, False, 429, "rate_limit_error", "exhausted"),
                 (403, True, 503, "overloaded_error", None), (429, False, 429, "rate_limit_error", "cooling"),
                 (500, True, 529, "overloaded_error", "cooling")]
        for code, stream, status, etype, state in cases:
            with self.subTest(code=code):
                ctx, names = self.fresh()
                with ctx as gw:
                    wait_accounts(self, gw, ["ok"])  # refreshed: the simulator knows the account
                    before = sim_account(self.sim, names[0])
                    err, _ = self.stream(gw, body("[[sim:status code=%d]]" % code, stream=stream), status=status)
                    self.assertEqual(err["type"], "error")
                    self.assertEqual(err["error"]["type"], etype, err)
                    self.assertTrue(err["error"]["message"])
                    after = sim_account(self.sim, names[0])
                    if code == 403:
                        # an invalid bearer: one refresh and one retry on the same account, then a clear error
                        self.assertEqual(after["generates"] - before["generates"], 2)
                        self.assertEqual(after["refreshes"] - before["refreshes"], 1)
                        self.assertIn("403", err["error"]["message"])
                    else:
                        self.assertEqual(after["generates"] - before["generates"], 1)
                        self.assertEqual(tokens(gw)["tokens"][0]["state"], state)

    def test_cut_before_content_is_a_clean_error(self):
        ctx, _ = self.fresh()
        with ctx as gw:
            err, _ = self.stream(gw, body("[[sim:text frames=4 size=8]] [[sim:cut after=0]]"), status=502)
            self.assertEqual(err["error"]["type"], "api_error")
            self.assertIn("reset", err["error"]["message"])

    def test_cut_after_content_non_stream_fails_over(self):
        # a non-stream answer has sent nothing: both accounts are tried, and the error names each attempt
        ctx, _ = self.fresh(2)
        with ctx as gw:
            wait_accounts(self, gw, ["ok", "ok"])
            before = self.sim.stats()["generates_total"]
            err, _ = self.stream(gw, body("[[sim:text frames=4 size=8]] [[sim:cut after=2]]", stream=False), status=502)
            self.assertEqual(self.sim.stats()["generates_total"] - before, 2)
            self.assertIn("account 0", err["error"]["message"])
            self.assertIn("account 1", err["error"]["message"])

    def test_badcrc_before_content_fails_over_then_clean_error(self):
        ctx, _ = self.fresh(2)
        with ctx as gw:
            err, _ = self.stream(gw, body("[[sim:text frames=4 size=8]] [[sim:badcrc after=0]]"), status=502)
            self.assertEqual(err["error"]["type"], "api_error")
            msg = err["error"]["message"]
            self.assertIn("CRC", msg)
            self.assertIn("account 0", msg)
            self.assertIn("account 1", msg)

    def test_badcrc_after_content_is_an_in_stream_error(self):
        evs, _ = self.stream(self.gw, body("[[sim:text frames=4 size=8]] [[sim:badcrc after=2]]"))
        blocks, stop, _, error = sse_summary(evs)
        self.assertEqual(blocks, [{"type": "text", "text": gentext(2, 8)}])
        self.assertIsNone(stop)
        self.assertEqual(error["type"], "api_error")
        self.assertIn("CRC", error["message"])

    def test_stall_past_first_byte_timeout(self):
        ctx, _ = self.fresh(extra={"KIRO_FIRST_BYTE_TIMEOUT_MS": "500"})
        with ctx as gw:
            for stream in (True, False):
                with self.subTest(stream=stream):
                    wait_accounts(self, gw, ["ok"])  # the first timeout cools the account for a moment
                    t0 = time.time()
                    err, _ = self.stream(gw, body("[[sim:stall ms=4000]] hi", stream=stream), status=504)
                    self.assertLess(time.time() - t0, 4.0)  # the gateway's timeout answered, not the simulator
                    self.assertEqual(err["error"]["type"], "api_error")
                    self.assertIn("first-byte timeout", err["error"]["message"])

    def test_ping_commit_then_failover(self):
        # both accounts hold the response head past two ping intervals, then break before content: the client sees
        # message_start (before any ping), keep-alive pings, and one error naming both attempts; message_start only once
        ctx, _ = self.fresh(2, {"KIRO_PING_INTERVAL_MS": "200"})
        with ctx as gw:
            evs, _ = self.stream(gw, body("[[sim:stall ms=1000]] [[sim:text frames=2 size=8]] [[sim:cut after=0]]"))
            names = [e for e, _ in evs]
            self.assertEqual(names[0], "message_start")
            self.assertGreaterEqual(names.count("ping"), 3, names)
            self.assertEqual(set(names[1:-1]), {"ping"})
            err = evs[-1][1]["error"]
            self.assertIn("account 0", err["message"])
            self.assertIn("account 1", err["message"])


if __name__ == "__main__":
    main()
