"""Long conversations through the gateway to kiro-sim (loopback): histories of 0.5, 1, 5 and 30 MB in both dialects
(/v1/messages and /v1/chat/completions), streaming and not, in three shapes (2 000 tool_use/tool_result pairs, hundreds of
3 KB turns, a few huge turns). Each must answer 200 with a normal answer after the gateway dropped the oldest turns: the
body kiro-sim received is within the payload budget (KIRO_MAX_PAYLOAD_BYTES) and passed its validator (alternating
history from a user turn, every toolResult paired), and the latest user message arrived intact. A latest turn too big
on its own, and Kiro's own 400 "Input is too long." (CONTENT_LENGTH_EXCEEDS_THRESHOLD), get the errors that make clients
compact: Anthropic 400 invalid_request_error "prompt is too long: ...", OpenAI 400 context_length_exceeded; neither
is retried on another account."""
import json
import time
import unittest

from e2e_util import check_sse, sse_summary
from k2a import CLIENT_KEY, Gateway, Sim, main, parse_sse, request, sim_accounts_env

MODEL = "claude-sonnet-4-5"
LIMIT = 600000  # KIRO_MAX_PAYLOAD_BYTES's default: the whole body Kiro gets, profileArn included
BUDGET = LIMIT - 256  # what the conversation may take (the rest is kept for the account's profileArn)
MB = 1000 * 1000
LATEST = "The latest question, which must reach Kiro intact: \"quotes\", tabs\t, newlines\n, é, 中文. " * 40
SYSTEM = "You are a helpful assistant working on a long task."
TOOL_SCHEMA = {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}


def filler(size, seed):
    """size characters of text with things to escape now and then."""
    base = ("line %d of the tool output: some words, \"quoted\" text and a tab\t.\n" % seed)
    return (base * (size // len(base) + 1))[:size]


# ---------- conversations: (messages, tools) in each dialect; the latest user message carries LATEST ----------

def anthropic_tool_pairs(n, result_size):
    msgs = [{"role": "user", "content": "start the task"}]
    for i in range(n):
        msgs.append({"role": "assistant", "content": [
            {"type": "text", "text": "step %d" % i},
            {"type": "tool_use", "id": "toolu_%06d" % i, "name": "Bash", "input": {"command": "echo %d" % i}}]})
        content = [{"type": "tool_result", "tool_use_id": "toolu_%06d" % i, "content": filler(result_size, i)}]
        if i == n - 1:
            content.append({"type": "text", "text": LATEST})
        msgs.append({"role": "user", "content": content})
    return msgs, [{"name": "Bash", "description": "Run a command", "input_schema": TOOL_SCHEMA}]


def openai_tool_pairs(n, result_size):
    msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "start the task"}]
    for i in range(n):
        msgs.append({"role": "assistant", "content": "step %d" % i, "tool_calls": [
            {"id": "call_%06d" % i, "type": "function",
             "function": {"name": "Bash", "arguments": json.dumps({"command": "echo %d" % i})}}]})
        msgs.append({"role": "tool", "tool_call_id": "call_%06d" % i, "content": filler(result_size, i)})
    msgs.append({"role": "user", "content": LATEST})
    return msgs, [{"type": "function", "function": {"name": "Bash", "description": "Run a command", "parameters": TOOL_SCHEMA}}]


def text_turns(n, size, huge_every=0, huge_size=0):
    """n user/assistant pairs of text (every huge_every-th pair huge_size characters per message), then LATEST."""
    msgs = []
    for i in range(n):
        sz = huge_size if huge_every and i % huge_every == 0 else size
        msgs.append({"role": "user", "content": "u%d " % i + filler(sz, i)})
        msgs.append({"role": "assistant", "content": "a%d " % i + filler(sz, i + 1)})
    msgs.append({"role": "user", "content": LATEST})
    return msgs, []


def shape(kind, dialect):
    """The conversation of one named size and shape, in one dialect."""
    tools = {"anthropic": anthropic_tool_pairs, "openai": openai_tool_pairs}[dialect]
    if kind == "0.5MB-2000-tool-pairs":
        return tools(2000, 20)
    if kind == "1MB-3KB-turns":
        return text_turns(170, 3000)
    if kind == "5MB-few-huge-turns":
        return text_turns(6, 2000, 2, 800 * 1000)
    if kind == "30MB-2000-tool-pairs":
        return tools(2000, 15000)
    raise ValueError(kind)


def request_body(dialect, messages, tools, stream):
    if dialect == "anthropic":
        b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "system": SYSTEM, "messages": messages}
        if tools:
            b["tools"] = tools
        return b
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "messages": messages}
    if tools:
        b["tools"] = tools
    if not any(m["role"] == "system" for m in messages):
        b["messages"] = [{"role": "system", "content": SYSTEM}] + messages
    return b


PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}


def openai_chunks(data):
    out = []
    for ev, d in parse_sse(data):
        if ev != ":comment":
            out.append(d if d == "[DONE]" else json.loads(d))
    return out


class LongHistory(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-long-a", "sim-ok-long-b"]))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def post(self, dialect, body):
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        return len(data), request(self.gw.port, "POST", PATHS[dialect], body=data, key=CLIENT_KEY, timeout=120,
                                  headers={"content-type": "application/json"})

    def last_kiro_body(self):
        st, _, data = request(self.sim.port, "GET", "/sim/last-request")
        self.assertEqual(st, 200)
        return data

    def check_answer(self, dialect, stream, data):
        """A normal answer: text, a normal stop, no error."""
        if dialect == "anthropic" and stream:
            blocks, stop, _, error = sse_summary(check_sse(self, data))
            self.assertIsNone(error)
            self.assertEqual(stop, "end_turn")
            self.assertTrue(blocks and blocks[0]["type"] == "text" and blocks[0]["text"], blocks)
        elif dialect == "anthropic":
            msg = json.loads(data)
            self.assertEqual((msg["type"], msg["stop_reason"]), ("message", "end_turn"), msg)
            self.assertTrue(msg["content"][0]["text"])
        elif stream:
            cs = openai_chunks(data)
            self.assertEqual(cs[-1], "[DONE]")
            self.assertFalse([c for c in cs[:-1] if "error" in c], cs[-3:])
            text = "".join(c["choices"][0]["delta"].get("content") or "" for c in cs[:-1] if c.get("choices"))
            self.assertTrue(text)
            self.assertEqual([c["choices"][0]["finish_reason"] for c in cs[:-1] if c.get("choices") and
                              c["choices"][0].get("finish_reason")], ["stop"])
        else:
            msg = json.loads(data)
            self.assertEqual(msg["object"], "chat.completion")
            self.assertEqual(msg["choices"][0]["finish_reason"], "stop")
            self.assertTrue(msg["choices"][0]["message"]["content"])

    def run_case(self, kind, dialect, stream):
        messages, tools = shape(kind, dialect)
        before = self.sim.stats()
        t0 = time.time()
        size, (st, _, data) = self.post(dialect, request_body(dialect, messages, tools, stream))
        elapsed = time.time() - t0
        self.assertEqual(st, 200, data[-600:])
        self.check_answer(dialect, stream, data)
        after = self.sim.stats()
        # one upstream request, accepted by the simulator's validator (size limit, history order, tool pairing)
        self.assertEqual(after["generates_total"] - before["generates_total"], 1)
        self.assertEqual(after["rejections"], before["rejections"], after["last_rejection"])
        raw = self.last_kiro_body()
        self.assertLessEqual(len(raw), LIMIT)
        cs = json.loads(raw)["conversationState"]
        # the oldest turns went, the system prompt stayed, the history still starts with a user turn and alternates
        hist = cs["history"]
        self.assertLess(len(hist), len(messages))
        self.assertEqual(len(hist) % 2, 0)
        for i, h in enumerate(hist):
            self.assertEqual(list(h), ["userInputMessage" if i % 2 == 0 else "assistantResponseMessage"])
        self.assertEqual(hist[0]["userInputMessage"]["content"], SYSTEM)
        self.assertNotIn("toolResults", hist[2]["userInputMessage"].get("userInputMessageContext", {})
                         if len(hist) > 2 else {})
        # the latest user message, intact
        self.assertEqual(cs["currentMessage"]["userInputMessage"]["content"], LATEST)
        print("%s %s %s: %d bytes sent, %d bytes to Kiro, %d of %d history entries kept, %.2f s" %
              (kind, dialect, "stream" if stream else "non-stream", size, len(raw), len(hist), len(messages), elapsed))
        return cs

    def test_2000_tool_pairs_are_trimmed_not_413(self):
        for dialect in ("anthropic", "openai"):
            for stream in (False, True):
                with self.subTest(dialect=dialect, stream=stream):
                    cs = self.run_case("0.5MB-2000-tool-pairs", dialect, stream)
                    # Claude Code's shape: the latest message answers the last tool call, which stays with it
                    if dialect == "anthropic":
                        results = cs["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
                        self.assertEqual(results[0]["toolUseId"], "toolu_001999")
                        last = cs["history"][-1]["assistantResponseMessage"]["toolUses"]
                        self.assertEqual(last[0]["toolUseId"], "toolu_001999")

    def test_1mb_of_3kb_turns_is_trimmed_not_413(self):
        for dialect in ("anthropic", "openai"):
            for stream in (False, True):
                with self.subTest(dialect=dialect, stream=stream):
                    cs = self.run_case("1MB-3KB-turns", dialect, stream)
                    self.assertTrue(cs["history"][-1]["assistantResponseMessage"]["content"].startswith("a169 "))

    def test_5mb_of_a_few_huge_turns_is_trimmed_not_413(self):
        for dialect in ("anthropic", "openai"):
            with self.subTest(dialect=dialect):
                cs = self.run_case("5MB-few-huge-turns", dialect, False)
                # pairs 0, 2 and 4 are 1.6 MB each: only the system pair and the small pair 5 fit
                self.assertEqual(len(cs["history"]), 4)
                self.assertTrue(cs["history"][2]["userInputMessage"]["content"].startswith("u5 "))

    def test_30mb_history_is_trimmed_not_413(self):
        for dialect, stream in (("anthropic", True), ("openai", False)):
            with self.subTest(dialect=dialect, stream=stream):
                self.run_case("30MB-2000-tool-pairs", dialect, stream)

    def test_latest_message_just_under_the_budget_is_sent_not_413(self):
        for dialect in ("anthropic", "openai"):
            with self.subTest(dialect=dialect):
                before = self.sim.stats()
                # the latest message takes all but 1 500 bytes of the budget once escaped as Kiro gets it
                latest = ("plain words that need no escaping, " * 3 + "\n") * (BUDGET // 100)
                latest = latest[:len(latest) * (BUDGET - 1600) // len(json.dumps(latest, ensure_ascii=False))]
                while len(json.dumps(latest, ensure_ascii=False)) > BUDGET - 1500:
                    latest = latest[:-100]
                messages, tools = text_turns(20, 3000)
                messages[-1] = {"role": "user", "content": latest}
                _, (st, _, data) = self.post(dialect, request_body(dialect, messages, tools, False))
                self.assertEqual(st, 200, data[:600])
                self.check_answer(dialect, False, data)
                raw = self.last_kiro_body()
                self.assertLessEqual(len(raw), LIMIT)
                self.assertGreater(len(raw), BUDGET - 1500)
                cs = json.loads(raw)["conversationState"]
                self.assertEqual(cs["currentMessage"]["userInputMessage"]["content"], latest)
                self.assertEqual(self.sim.stats()["rejections"], before["rejections"])

    # ---------- too long even alone ----------

    def check_prompt_too_long(self, dialect, st, data):
        self.assertEqual(st, 400, data[:600])
        doc = json.loads(data)
        if dialect == "anthropic":
            self.assertEqual(doc["type"], "error")
            self.assertEqual(doc["error"]["type"], "invalid_request_error")
            msg = doc["error"]["message"]
        else:
            self.assertEqual(doc["error"]["type"], "invalid_request_error")
            self.assertEqual(doc["error"]["code"], "context_length_exceeded")
            msg = doc["error"]["message"]
        self.assertTrue(msg.startswith("prompt is too long: "), msg)
        return msg

    def test_latest_turn_too_big_alone_is_prompt_too_long(self):
        for dialect in ("anthropic", "openai"):
            for stream in (False, True):
                with self.subTest(dialect=dialect, stream=stream):
                    before = self.sim.stats()["generates_total"]
                    messages, tools = text_turns(20, 3000)
                    messages[-1] = {"role": "user", "content": filler(700 * 1000, 7)}
                    _, (st, _, data) = self.post(dialect, request_body(dialect, messages, tools, stream))
                    msg = self.check_prompt_too_long(dialect, st, data)
                    self.assertIn(" bytes > %d maximum" % BUDGET, msg)
                    self.assertIn("after dropping 40 of 40 history turns", msg)
                    self.assertEqual(self.sim.stats()["generates_total"], before)  # never sent to Kiro


class KiroSaysInputTooLong(unittest.TestCase):
    """Kiro's own limits above the gateway's budget reach the client as the compact error, on the first account, without
    failing over to the second, and without penalising either: the token limit (400 CONTENT_LENGTH_EXCEEDS_THRESHOLD,
    "Input is too long.") and the byte limit ("Improperly formed request." to a body over ~615 KB, kiro-protocol-2026 §9)."""

    def run_case(self, sim_args, budget, turns, rule):
        sim = Sim(sim_args)
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-tl-a", "sim-ok-tl-b"], {"KIRO_MAX_PAYLOAD_BYTES": str(budget)}))
        try:
            for dialect in ("anthropic", "openai"):
                for stream in (False, True):
                    with self.subTest(rule=rule, dialect=dialect, stream=stream):
                        before = sim.stats()
                        messages, tools = text_turns(turns, 3000)
                        body = json.dumps(request_body(dialect, messages, tools, stream), ensure_ascii=False,
                                          separators=(",", ":")).encode()
                        st, _, data = request(gw.port, "POST", PATHS[dialect], body=body, key=CLIENT_KEY, timeout=60,
                                              headers={"content-type": "application/json"})
                        LongHistory.check_prompt_too_long(self, dialect, st, data)
                        after = sim.stats()
                        self.assertEqual(after["generates_total"] - before["generates_total"], 1)  # no failover
                        self.assertEqual(after["rejections_by_rule"].get(rule, 0) - before["rejections_by_rule"].get(rule, 0),
                                         1, after["rejections_by_rule"])
            # the accounts were not penalised: both still usable
            st, _, data = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual(st, 200)
            self.assertEqual([a["state"] for a in json.loads(data)["tokens"]], ["ok", "ok"])
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()

    def test_kiro_token_limit_400_is_prompt_too_long_without_failover(self):
        # ~960 KB: under both byte limits, over the 200 000-token window of claude-sonnet-4.5 by kiro-sim's bytes/4 estimate
        self.run_case(["--max-body-bytes", "2000000"], 2000000, 320, "input_too_long")

    def test_kiro_byte_limit_400_is_prompt_too_long_without_failover(self):
        # ~700 KB: under the gateway's raised budget, over Kiro's 615 000-byte limit
        self.run_case([], 1000000, 230, "payload_too_large")


if __name__ == "__main__":
    main()
