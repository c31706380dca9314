"""The same conversation sent through /v1/messages (Anthropic), /v1/chat/completions (OpenAI Chat Completions) and
/v1/responses (OpenAI Responses) makes the gateway send Kiro the same request body, byte for byte: the dialects
decode into one IR and share one normalizer and encoder. The simulator keeps the last body it received (GET /sim/last-request); conversation and
continuation ids are pinned with the X-Conversation-ID / X-Agent-Continuation-ID headers."""
import json
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, main, request, sim_accounts_env

HEADERS = {"x-conversation-id": "conv-equivalence-test", "x-agent-continuation-id": "7f3c2a1e-9b4d-4e6f-8a1b-2c3d4e5f6a7b"}

WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}

ANTHROPIC = {
    "model": "claude-sonnet-4-5", "max_tokens": 512, "stream": True,
    "system": "You are a weather bot.",
    "tools": [{"name": "get_weather", "description": "Get the weather", "input_schema": WEATHER_SCHEMA}],
    "messages": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking both."},
            {"type": "tool_use", "id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "content": "18°C sunny"},
            {"type": "tool_result", "tool_use_id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "content": "4°C rain"}]},
    ],
}

OPENAI = {
    "model": "claude-sonnet-4-5", "max_tokens": 512, "stream": True,
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather",
                                                 "parameters": WEATHER_SCHEMA}}],
    "messages": [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Checking both.", "tool_calls": [
            {"id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "type": "function",
             "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "content": "18°C sunny"},
        {"role": "tool", "tool_call_id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "content": "4°C rain"},
    ],
}

RESPONSES = {
    "model": "claude-sonnet-4-5", "max_output_tokens": 512, "stream": True,
    "instructions": "You are a weather bot.",
    "tools": [{"type": "function", "name": "get_weather", "description": "Get the weather", "parameters": WEATHER_SCHEMA}],
    "input": [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both."}]},
        {"type": "function_call", "call_id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "name": "get_weather",
         "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "name": "get_weather",
         "arguments": "{\"city\": \"Oslo\"}"},
        {"type": "function_call_output", "call_id": "tooluse_aaaaaaaaaaaaaaaaaaaaaa", "output": "18°C sunny"},
        {"type": "function_call_output", "call_id": "tooluse_bbbbbbbbbbbbbbbbbbbbbb", "output": "4°C rain"},
    ],
}


class DialectEquivalence(unittest.TestCase):
    def test_same_conversation_same_kiro_body(self):
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-equiv"]))
        try:
            bodies = []
            for path, body in (("/v1/messages", ANTHROPIC), ("/v1/chat/completions", OPENAI), ("/v1/responses", RESPONSES)):
                st, _, data = request(gw.port, "POST", path, body=body, key=CLIENT_KEY, headers=HEADERS)
                self.assertEqual(st, 200, data)
                st, _, sent = request(sim.port, "GET", "/sim/last-request")
                self.assertEqual(st, 200)
                bodies.append(sent)
            a, o, r = (json.loads(b) for b in bodies)
            # X-Conversation-ID is not a UUID: the gateway maps it onto one, md5("kiro2api-conversation|" + id)
            self.assertEqual(a["conversationState"]["conversationId"], "096d0891-7569-358b-ba66-e45a5933f83b")
            self.assertEqual(len(a["conversationState"]["history"]), 4)  # system pair + the tool round
            self.assertEqual(a, o)
            self.assertEqual(a, r)
            self.assertEqual(bodies[0], bodies[1])  # byte for byte, not only the same JSON value
            self.assertEqual(bodies[0], bodies[2])
            self.assertEqual(sim.stats()["rejections"], 0)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
