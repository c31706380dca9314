"""Answers as Kiro sends them in 2026 (kiro-protocol-2026.md §7, §8), through the gateway against kiro-sim on loopback:
- meteringEvent is Kiro's last frame and Kiro often leaves the connection open after it ([[sim:keepopen]]): every
  dialect, stream and non-stream, ends the answer at once with complete usage and no error (a hang check: far below
  KIRO_IDLE_TIMEOUT_MS, set to 30 s here), and the upstream connection is closed, not pooled (the simulator sees the
  gateway close it, long before the simulator's own 60 s);
- reasoningContentEvent: text + signature as an Anthropic thinking block with Kiro's signature, redactedContent after
  the text as a redacted_thinking block, both as OpenAI reasoning_content (redacted: nothing visible), and plain text
  when thinking was not requested;
- metadataEvent: CONTENT_FILTERED with no content (a 400 in each dialect, the account not penalised, no failover) and
  after text (refusal / content_filter), MAX_TOKENS (max_tokens / length), tokenUsage figures in both dialects' usage;
- a tool call cut upstream (no stop, no metering) stays an error, never a fake end.
Every Anthropic stream is checked against the event grammar (e2e_util.check_sse)."""
import json
import time
import unittest

from e2e_util import MODEL, body, check_sse, gateway, gentext, post, tokens, wait_until
from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, parse_sse, request, sim_accounts_env

IDLE_MS = 30000
HANG = 5.0  # seconds: an answer that waits for the idle timeout takes 30 s
WEATHER = {"name": "get_weather", "description": "Get the weather for a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
THINKING = {"type": "enabled", "budget_tokens": 2000}


def oai_chunks(data):
    out = []
    for ev, d in parse_sse(data):
        if ev == ":comment":
            continue
        out.append(d if d == "[DONE]" else json.loads(d))
    return out


def blocks_of(evs):
    """The content blocks of an Anthropic stream: dicts with the start block's fields plus text/thinking/signature."""
    out = []
    for e, d in evs:
        if e == "content_block_start":
            out.append(dict(d["content_block"]))
        elif e == "content_block_delta":
            dl, b = d["delta"], out[-1]
            if dl["type"] == "text_delta":
                b["text"] += dl["text"]
            elif dl["type"] == "thinking_delta":
                b["thinking"] += dl["thinking"]
            elif dl["type"] == "signature_delta":
                b["signature"] = b.get("signature", "") + dl["signature"]
            else:
                b["_json"] = b.get("_json", "") + dl["partial_json"]
    return out


class Answers2026(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-a2026"], {"KIRO_IDLE_TIMEOUT_MS": str(IDLE_MS)}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            st = cls.sim.stats()
            assert st["rejections"] == 0, st
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    # ---- helpers ----

    def anthropic(self, b, status=200, gw=None):
        t0 = time.monotonic()
        st, h, data = post(gw or self.gw, b)
        elapsed = time.monotonic() - t0
        self.assertEqual(st, status, data[-800:])
        if status == 200 and b.get("stream"):
            return check_sse(self, data), elapsed
        return json.loads(data), elapsed

    def openai(self, content, stream=True, status=200, **extra):
        b = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": content}]}
        if stream:
            b["stream_options"] = {"include_usage": True}
        b.update(extra)
        t0 = time.monotonic()
        st, h, data = request(self.gw.port, "POST", "/v1/chat/completions", b, key=CLIENT_KEY)
        elapsed = time.monotonic() - t0
        self.assertEqual(st, status, data[-800:])
        if status == 200 and stream:
            cs = oai_chunks(data)
            self.assertEqual(cs[-1], "[DONE]", cs[-3:])
            self.assertFalse(any(isinstance(c, dict) and "error" in c for c in cs), cs[-3:])
            return cs, elapsed
        return json.loads(data), elapsed

    def sim_close_wait(self):
        """Connections to the simulator that the peer (the gateway) has closed while the simulator has not yet: TCP state
        CLOSE_WAIT on the simulator's port (/proc/net/tcp*, loopback)."""
        n = 0
        for path in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                with open(path) as f:
                    next(f)
                    for line in f:
                        cols = line.split()
                        if int(cols[1].rsplit(":", 1)[1], 16) == self.sim.port and cols[3] == "08":
                            n += 1
            except OSError:
                pass
        return n

    def keepopen(self, fn):
        """Runs fn (one kept-open answer) and asserts that the gateway then closed the upstream connection whose body
        never ended rather than pooling it: the simulator's side is in CLOSE_WAIT (h2o does not read while it answers) or
        its stream is already gone, long before its own 60 s."""
        before = self.sim_close_wait()
        out = fn()
        wait_until(self, "the gateway to close the kept-open upstream connection",
                   lambda: self.sim_close_wait() > before or self.sim.stats()["open_streams"] == 0, timeout=10)
        return out

    def assert_account_ok(self):
        t = tokens(self.gw)["tokens"]
        self.assertEqual([a["state"] for a in t], ["ok"], t)

    # ---- the end of an answer ----

    def test_keepopen_anthropic_stream(self):
        evs, elapsed = self.keepopen(lambda: self.anthropic(body("Hello there [[sim:keepopen]]")))
        self.assertLess(elapsed, HANG * SLOW, "the answer waited for the body to end")
        self.assertEqual(evs[-1][0], "message_stop")
        self.assertFalse([e for e, _ in evs if e == "error"])
        delta = [d for e, d in evs if e == "message_delta"][0]
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")
        usage = delta["usage"]
        self.assertGreater(usage["input_tokens"], 0)
        self.assertGreater(usage["output_tokens"], 0)
        self.assertEqual(blocks_of(evs), [{"type": "text", "text": "echo: Hello there"}])

    def test_keepopen_anthropic_stream_tool_call(self):
        evs, elapsed = self.keepopen(lambda: self.anthropic(body('Weather? [[sim:tool name=get_weather input={"city":"Paris"} '
                                                                 'pieces=3]] [[sim:keepopen]]', tools=[WEATHER])))
        self.assertLess(elapsed, HANG * SLOW)
        self.assertEqual(evs[-1][0], "message_stop")
        self.assertEqual([d for e, d in evs if e == "message_delta"][0]["delta"]["stop_reason"], "tool_use")
        tool = [b for b in blocks_of(evs) if b["type"] == "tool_use"][0]
        self.assertEqual(json.loads(tool["_json"]), {"city": "Paris"})

    def test_keepopen_anthropic_non_stream(self):
        msg, elapsed = self.keepopen(lambda: self.anthropic(body("Non-stream [[sim:keepopen]]", stream=False)))
        self.assertLess(elapsed, HANG * SLOW)
        self.assertEqual(msg["type"], "message")
        self.assertEqual(msg["stop_reason"], "end_turn")
        self.assertEqual(msg["content"], [{"type": "text", "text": "echo: Non-stream"}])
        self.assertGreater(msg["usage"]["output_tokens"], 0)
        self.assertGreater(msg["usage"]["input_tokens"], 0)

    def test_keepopen_openai_stream_and_non_stream(self):
        cs, elapsed = self.keepopen(lambda: self.openai("OpenAI stream [[sim:keepopen]]"))
        self.assertLess(elapsed, HANG * SLOW)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in cs[:-1] if c["choices"])
        self.assertEqual(text, "echo: OpenAI stream")
        self.assertEqual([c["choices"][0]["finish_reason"] for c in cs[:-1] if c["choices"]][-1], "stop")
        usage = cs[-2]["usage"]
        self.assertGreater(usage["prompt_tokens"], 0)
        self.assertGreater(usage["completion_tokens"], 0)
        self.assertEqual(usage["total_tokens"], usage["prompt_tokens"] + usage["completion_tokens"])
        obj, elapsed = self.keepopen(lambda: self.openai("OpenAI non-stream [[sim:keepopen]]", stream=False))
        self.assertLess(elapsed, HANG * SLOW)
        self.assertEqual(obj["choices"][0]["message"]["content"], "echo: OpenAI non-stream")
        self.assertEqual(obj["choices"][0]["finish_reason"], "stop")
        self.assertGreater(obj["usage"]["completion_tokens"], 0)

    def test_cut_tool_call_stays_an_error(self):
        with gateway(self, self.sim, ["sim-ok-cut2026"]) as gw:
            evs, _ = self.anthropic(body('[[sim:cuttool name=get_weather input={"city":"Paris"} pieces=3]]', tools=[WEATHER]),
                                    gw=gw)
            self.assertEqual(evs[-1][0], "error", evs[-3:])
            self.assertFalse([e for e, _ in evs if e in ("message_delta", "message_stop")])

    # ---- reasoning ----

    def test_reasoning_text_and_signature(self):
        content = '[[sim:reasoning text="Let me think about it." signature="c2lnLWZyb20ta2lybw=="]] [[sim:text frames=1 size=5]]'
        evs, _ = self.anthropic(body(content, max_tokens=4096, thinking=THINKING))
        self.assertEqual(blocks_of(evs), [
            {"type": "thinking", "thinking": "Let me think about it.", "signature": "c2lnLWZyb20ta2lybw=="},
            {"type": "text", "text": gentext(1, 5)}])
        msg, _ = self.anthropic(body(content, stream=False, max_tokens=4096, thinking=THINKING))
        self.assertEqual(msg["content"][0], {"type": "thinking", "thinking": "Let me think about it.",
                                             "signature": "c2lnLWZyb20ta2lybw=="})
        cs, _ = self.openai(content, reasoning_effort="low")
        reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content") or "" for c in cs[:-1] if c["choices"])
        self.assertEqual(reasoning, "Let me think about it.")
        # thinking not requested: the reasoning text is plain text
        msg, _ = self.anthropic(body(content, stream=False))
        self.assertEqual(msg["content"], [{"type": "text", "text": "Let me think about it." + gentext(1, 5)}])

    def test_redacted_reasoning_after_text(self):
        content = '[[sim:text frames=2 size=4]] [[sim:reasoning redacted="ZW5jcnlwdGVkLXJlYXNvbmluZw=="]]'
        evs, _ = self.anthropic(body(content, max_tokens=4096, thinking=THINKING))
        self.assertEqual(blocks_of(evs), [{"type": "text", "text": gentext(2, 4)},
                                          {"type": "redacted_thinking", "data": "ZW5jcnlwdGVkLXJlYXNvbmluZw=="}])
        msg, _ = self.anthropic(body(content, stream=False, max_tokens=4096, thinking=THINKING))
        self.assertEqual(msg["content"], [{"type": "text", "text": gentext(2, 4)},
                                          {"type": "redacted_thinking", "data": "ZW5jcnlwdGVkLXJlYXNvbmluZw=="}])
        # OpenAI: nothing of the opaque data is visible
        cs, _ = self.openai(content, reasoning_effort="low")
        self.assertNotIn("ZW5jcnlwdGVk", json.dumps(cs))
        obj, _ = self.openai(content, stream=False, reasoning_effort="low")
        self.assertEqual(obj["choices"][0]["message"]["content"], gentext(2, 4))
        self.assertNotIn("ZW5jcnlwdGVk", json.dumps(obj))

    def test_redacted_thinking_replayed(self):
        """The next turn replays the redacted block: on a model that takes native reasoning fields it goes to Kiro as
        assistantResponseMessage.reasoningContent {redactedContent} (what kiro-cli sends; kiro-sim checks that shape),
        else it is dropped. Found by fuzz_anthropic_req: kiro-sim refused the field."""
        for model in ("claude-sonnet-4-6", MODEL):
            with self.subTest(model=model):
                b = body("next", model=model, max_tokens=4096, thinking={"type": "adaptive"}, messages=[
                    {"role": "user", "content": "q1"},
                    {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "ZW5jcnlwdGVkLXJlYXNvbmluZw=="},
                                                      {"type": "text", "text": "a1"}]},
                    {"role": "user", "content": "[[sim:text frames=1 size=4]]"}])
                msg, _ = self.anthropic(dict(b, stream=False))
                self.assertEqual(msg["stop_reason"], "end_turn", msg)

    # ---- metadataEvent ----

    def test_content_filtered_without_content(self):
        for stream in (True, False):
            with self.subTest(stream=stream):
                err, _ = self.anthropic(body("blocked [[sim:filtered]]", stream=stream), status=400)
                self.assertEqual(err["type"], "error")
                self.assertEqual(err["error"]["type"], "invalid_request_error")
                self.assertIn("Request was blocked by upstream content filtering", err["error"]["message"])
                err, _ = self.openai("blocked [[sim:filtered]]", stream=stream, status=400)
                self.assertEqual(err["error"]["code"], "content_filter")
        # not the account's fault: no cooling
        self.assert_account_ok()

    def test_content_filtered_no_failover(self):
        with gateway(self, self.sim, ["sim-ok-filt1", "sim-ok-filt2"]) as gw:
            wait_until(self, "two accounts", lambda: len(tokens(gw)["tokens"]) == 2)
            err, _ = self.anthropic(body("blocked [[sim:filtered]]"), status=400, gw=gw)
            self.assertIn("content filtering", err["error"]["message"])
            accts = self.sim.stats()["accounts"]
            self.assertEqual(sum(accts.get(n, {}).get("generates", 0) for n in ("sim-ok-filt1", "sim-ok-filt2")), 1, accts)
            self.assertEqual([a["state"] for a in tokens(gw)["tokens"]], ["ok", "ok"])

    def test_content_filtered_after_text(self):
        content = "[[sim:text frames=5 size=4]] [[sim:filtered after=2]]"
        evs, _ = self.anthropic(body(content))
        self.assertEqual(blocks_of(evs), [{"type": "text", "text": gentext(2, 4)}])
        self.assertEqual([d for e, d in evs if e == "message_delta"][0]["delta"]["stop_reason"], "refusal")
        cs, _ = self.openai(content)
        self.assertEqual([c["choices"][0]["finish_reason"] for c in cs[:-1] if c["choices"]][-1], "content_filter")
        obj, _ = self.openai(content, stream=False)
        self.assertEqual(obj["choices"][0]["finish_reason"], "content_filter")

    def test_max_tokens(self):
        content = "[[sim:text frames=2 size=4]] [[sim:stop reason=MAX_TOKENS]]"
        evs, _ = self.anthropic(body(content))
        self.assertEqual([d for e, d in evs if e == "message_delta"][0]["delta"]["stop_reason"], "max_tokens")
        msg, _ = self.anthropic(body(content, stream=False))
        self.assertEqual(msg["stop_reason"], "max_tokens")
        cs, _ = self.openai(content)
        self.assertEqual([c["choices"][0]["finish_reason"] for c in cs[:-1] if c["choices"]][-1], "length")

    def test_token_usage_reaches_the_client(self):
        content = "[[sim:text frames=2 size=4]] [[sim:tokenusage in=11 out=22 cacheread=33 cachewrite=44]] [[sim:keepopen]]"
        want = {"input_tokens": 11, "cache_read_input_tokens": 33, "cache_creation_input_tokens": 44, "output_tokens": 22}
        evs, _ = self.keepopen(lambda: self.anthropic(body(content)))
        usage = [d for e, d in evs if e == "message_delta"][0]["usage"]
        self.assertEqual({k: usage[k] for k in want}, want)
        msg, _ = self.anthropic(body(content, stream=False))
        self.assertEqual({k: msg["usage"][k] for k in want}, want)
        cs, _ = self.openai(content)
        self.assertEqual(cs[-2]["usage"], {"prompt_tokens": 88, "completion_tokens": 22, "total_tokens": 110,
                                           "prompt_tokens_details": {"cached_tokens": 33}})
        obj, _ = self.openai(content, stream=False)
        self.assertEqual(obj["usage"]["prompt_tokens"], 88)
        self.assertEqual(obj["usage"]["prompt_tokens_details"], {"cached_tokens": 33})


if __name__ == "__main__":
    main()
