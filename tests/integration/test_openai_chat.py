"""POST /v1/chat/completions end to end (gateway + kiro-sim on loopback): the exact chat.completion.chunk stream an
OpenAI client sees (role chunk first, text and reasoning deltas, tool calls announced then streamed piece by piece,
finish_reason, the usage chunk only when asked, [DONE] last), the chat.completion object, a multi-turn tool
conversation, an error in the middle of a stream (one error object, no [DONE]) and the OpenAI error shapes with
their statuses. Steering of the simulator uses its [[sim:...]] directives in the user text."""
import json
import unittest

from k2a import CLIENT_KEY, SimGatewayCase, main, parse_sse

AUTH = {"authorization": "Bearer " + CLIENT_KEY}
MODEL = "claude-sonnet-4-5"
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Get the time",
                                         "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}}


def chunks(data):
    """The data lines of an SSE body in order; '[DONE]' stays a string, the rest are parsed."""
    out = []
    for ev, d in parse_sse(data):
        if ev == ":comment":
            continue
        out.append(d if d == "[DONE]" else json.loads(d))
    return out


class OpenAIChat(SimGatewayCase):
    ACCOUNTS = ["sim-ok-openai"]
    PATH = "/v1/chat/completions"

    def check_common(self, cs):
        """Every chunk of one stream shares id, object, created and model."""
        first = cs[0]
        self.assertTrue(first["id"].startswith("chatcmpl-") and len(first["id"]) > 20, first)
        for c in cs:
            if c == "[DONE]" or "error" in c:
                continue
            self.assertEqual(c["object"], "chat.completion.chunk")
            self.assertEqual((c["id"], c["created"], c["model"]), (first["id"], first["created"], MODEL))

    def test_stream_text_and_tool_call_with_usage(self):
        st, h, data = self.post({"model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "tools": [WEATHER],
                                 "messages": [{"role": "user", "content": 'Weather? [[sim:tool name=get_weather '
                                               'input={"city":"Paris"} pieces=4 text="Checking."]]'}]})
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        cs = chunks(data)
        self.check_common(cs)
        self.assertEqual(cs[0]["choices"], [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
        self.assertEqual(cs[-1], "[DONE]")
        usage = cs[-2]
        self.assertEqual(usage["choices"], [])
        u = usage["usage"]
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])
        self.assertGreater(u["prompt_tokens"], 0)
        self.assertGreater(u["completion_tokens"], 0)
        self.assertEqual(cs[-3]["choices"], [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
        text, args, starts, pieces = "", "", [], 0
        for c in cs[1:-3]:
            (choice,) = c["choices"]
            self.assertIsNone(choice["finish_reason"])
            d = choice["delta"]
            if "content" in d:
                self.assertFalse(starts, "text after the tool call")
                text += d["content"]
            else:
                (call,) = d["tool_calls"]
                self.assertEqual(call["index"], 0)
                if "id" in call:
                    starts.append(call)
                    self.assertEqual(call["type"], "function")
                    self.assertEqual(call["function"], {"name": "get_weather", "arguments": ""})
                else:
                    args += call["function"]["arguments"]
                    pieces += 1
        self.assertEqual(text, "Checking.")
        self.assertEqual(len(starts), 1)
        self.assertEqual(json.loads(args), {"city": "Paris"})
        self.assertGreaterEqual(pieces, 2, "the arguments were not streamed piece by piece")

    def test_stream_two_tool_calls_without_usage(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "tools": [WEATHER, TIME],
                                 "messages": [{"role": "user", "content": '[[sim:tool name=get_weather input={"city":"Oslo"} '
                                               'pieces=2]] and [[sim:tool name=get_time input={"tz":"UTC"} pieces=3]]'}]})
        self.assertEqual(st, 200, data)
        cs = chunks(data)
        self.check_common(cs)
        self.assertEqual(cs[-1], "[DONE]")
        self.assertEqual(cs[-2]["choices"][0]["finish_reason"], "tool_calls")
        self.assertFalse(any(isinstance(c, dict) and "usage" in c for c in cs), "usage chunk without include_usage")
        calls = {}
        for c in cs:
            if c == "[DONE]":
                continue
            for call in c["choices"][0]["delta"].get("tool_calls", []):
                entry = calls.setdefault(call["index"], {"name": None, "args": ""})
                if "id" in call:
                    entry["name"] = call["function"]["name"]
                entry["args"] += call["function"]["arguments"]
        self.assertEqual(sorted(calls), [0, 1])
        self.assertEqual((calls[0]["name"], json.loads(calls[0]["args"])), ("get_weather", {"city": "Oslo"}))
        self.assertEqual((calls[1]["name"], json.loads(calls[1]["args"])), ("get_time", {"tz": "UTC"}))

    def test_non_stream_tool_call(self):
        st, h, data = self.post({"model": MODEL, "tools": [WEATHER], "messages": [
            {"role": "user", "content": 'Weather? [[sim:tool name=get_weather input={"city":"Paris"} pieces=3 text="Checking."]]'}]})
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        doc = json.loads(data)
        self.assertTrue(doc["id"].startswith("chatcmpl-"))
        self.assertEqual(doc["object"], "chat.completion")
        self.assertEqual(doc["model"], MODEL)
        (choice,) = doc["choices"]
        self.assertEqual(choice["finish_reason"], "tool_calls")
        msg = choice["message"]
        self.assertEqual((msg["role"], msg["content"]), ("assistant", "Checking."))
        (call,) = msg["tool_calls"]
        self.assertEqual((call["type"], call["function"]["name"]), ("function", "get_weather"))
        self.assertEqual(json.loads(call["function"]["arguments"]), {"city": "Paris"})
        u = doc["usage"]
        self.assertEqual(u["total_tokens"], u["prompt_tokens"] + u["completion_tokens"])

    def test_non_stream_tool_only_has_null_content(self):
        st, _, data = self.post({"model": MODEL, "tools": [TIME], "messages": [
            {"role": "user", "content": '[[sim:tool name=get_time input={"tz":"UTC"} pieces=1]]'}]})
        self.assertEqual(st, 200, data)
        msg = json.loads(data)["choices"][0]["message"]
        self.assertIsNone(msg["content"])
        self.assertEqual(msg["tool_calls"][0]["function"]["name"], "get_time")

    def test_multi_turn_tool_conversation(self):
        """The follow-up of a tool call (assistant tool_calls + tool message) reaches Kiro as toolResults: the simulator
        answers a tool-result turn by echoing the result text."""
        st, _, data = self.post({"model": MODEL, "tools": [WEATHER], "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "18C and sunny"}]})
        self.assertEqual(st, 200, data)
        doc = json.loads(data)
        self.assertEqual(doc["choices"][0]["finish_reason"], "stop")
        self.assertIn("18C and sunny", doc["choices"][0]["message"]["content"])

    def test_stream_reasoning_effort_thinking(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "reasoning_effort": "low", "messages": [
            {"role": "user", "content": '[[sim:thinking text="Let me think."]][[sim:text frames=2 size=4]]'}]})
        self.assertEqual(st, 200, data)
        cs = chunks(data)
        self.assertEqual(cs[-1], "[DONE]")
        reasoning = "".join(c["choices"][0]["delta"].get("reasoning_content", "") for c in cs[:-1])
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in cs[:-1])
        self.assertEqual(reasoning.strip(), "Let me think.")
        self.assertEqual(len(text), 8)
        self.assertNotIn("<thinking>", text)

    def test_error_mid_stream(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "messages": [
            {"role": "user", "content": '[[sim:text frames=3 size=5]][[sim:exception type=ThrottlingException after=2 '
                                        'message="slow down"]]'}]})
        self.assertEqual(st, 200, data)
        cs = chunks(data)
        self.assertNotIn("[DONE]", cs)
        err = cs[-1]["error"]
        self.assertIn("slow down", err["message"])
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertTrue(all("error" not in c for c in cs[:-1]))
        self.assertEqual(cs[0]["choices"][0]["delta"], {"role": "assistant", "content": ""})

    def test_error_shapes(self):
        cases = [
            ({"model": MODEL, "n": 2, "messages": [{"role": "user", "content": "hi"}]}, AUTH, 400, "unsupported_value", "n > 1"),
            ({"model": MODEL, "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}]}]}, AUTH, 400,
             "invalid_image_url", "messages[0].content[0].image_url.url"),
            ({"model": MODEL, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": "{}"}}]}]}, AUTH, 400,
             "missing_required_parameter", "messages[1].tool_calls[0].id"),
            ({"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}, AUTH, 400, "model_not_found", "no-such-model"),
            ({"model": "x" * 129, "messages": [{"role": "user", "content": "hi"}]}, AUTH, 400, "invalid_value",
             "not a valid model name"),
            ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, {"authorization": "Bearer wrong"}, 401,
             "invalid_api_key", ""),
            ('{"model": "x", "messages": [', AUTH, 400, "invalid_json", "malformed JSON"),
        ]
        for body, headers, status, code, text in cases:
            st, h, data = self.post(body, headers)
            self.assertEqual(st, status, (body, data))
            self.assertTrue(h["content-type"].startswith("application/json"), h)
            err = json.loads(data)["error"]
            self.assertEqual(set(err), {"message", "type", "param", "code"}, err)
            self.assertEqual(err["code"], code, err)
            self.assertIn(text, err["message"])
            if text.startswith("messages["):
                self.assertEqual(err["param"], text)  # the JSON path of a decoding error


if __name__ == "__main__":
    main()
