"""The gateway against kiro-sim's 2026 tool and model-field rules (kiro-protocol-2026 §13 items 7-10 and 12), with kiro-sim
under --strict-headers and no stand-in in between: what the gateway builds from real client traffic must pass them. In
both dialects: an MCP-style tool (root anyOf, $schema, a dotted name with a blank, a blank description) is answered 200;
a tool call answered in the next turn passes the pairing rule; a tool call the client left unanswered in history, and
history tool traffic with no tools in the request, are repaired by the gateway instead of reaching Kiro as
TOOL_USE_RESULT_MISMATCH / TOOL_CONFIG_MISSING. The native effort field reaches only the models whose schema takes the
effort ("xhigh" on opus-4.6 goes as tags). kiro-sim counts no rejection at the end."""
import json
import unittest

from k2a import Gateway, Sim, main, sim_accounts_env
from hostile import post

MCP_NAME = "mcp.files/read file"
MCP_SCHEMA = {"$schema": "http://json-schema.org/draft-07/schema#",
              "anyOf": [{"type": "object", "properties": {"path": {"type": "string", "format": "uri", "minLength": 1}},
                         "required": ["path"], "additionalProperties": False},
                        {"type": "object", "properties": {"fd": {"type": "integer", "minimum": 0}}}]}
MODEL = "claude-sonnet-4-5"


def anthropic_tools():
    return [{"name": MCP_NAME, "description": " ", "input_schema": MCP_SCHEMA},
            {"name": "plain", "description": "", "input_schema": {"type": "object", "properties": {}}}]


def openai_tools():
    return [{"type": "function", "function": {"name": MCP_NAME, "description": "", "parameters": MCP_SCHEMA}},
            {"type": "function", "function": {"name": "plain", "parameters": {"type": "object", "properties": {}}}}]


def anthropic_use(tid, name=MCP_NAME):
    return {"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": name, "input": {"path": "/etc/hosts"}}]}


def anthropic_result(tid, text="127.0.0.1 localhost"):
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": text}]}


def openai_use(tid, name=MCP_NAME):
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": tid, "type": "function", "function": {"name": name, "arguments": json.dumps({"path": "/etc/hosts"})}}]}


def openai_result(tid, text="127.0.0.1 localhost"):
    return {"role": "tool", "tool_call_id": tid, "content": text}


class SimToolRules(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(args=["--strict-headers"])
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-tr1"]))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def call(self, dialect, body):
        before = self.sim.stats()
        st, _, data = post(self.gw.port, dialect, body, timeout=60)
        stats = self.sim.stats()
        self.assertEqual(stats["rejections"], before["rejections"], "kiro-sim rejected the gateway's body: %s %s" % (
            stats["last_rejection"], stats["rejections_by_rule"]))
        self.assertEqual(stats["requests"]["generateAssistantResponse"], before["requests"]["generateAssistantResponse"] + 1,
                         "one Kiro call, no retry")
        self.assertEqual(st, 200, data[:2000])
        doc = json.loads(data)
        if dialect == "anthropic":
            self.assertEqual(doc["type"], "message", doc)
        else:
            self.assertEqual(doc["object"], "chat.completion", doc)
        return doc

    def anthropic(self, messages, tools=None, **extra):
        body = dict({"model": MODEL, "max_tokens": 1024, "messages": messages}, **extra)
        if tools is not None:
            body["tools"] = tools
        return self.call("anthropic", body)

    def openai(self, messages, tools=None, **extra):
        body = dict({"model": MODEL, "max_tokens": 1024, "messages": messages}, **extra)
        if tools is not None:
            body["tools"] = tools
        return self.call("openai", body)

    def test_mcp_tool_with_root_any_of(self):
        self.anthropic([{"role": "user", "content": "read /etc/hosts"}], anthropic_tools())
        self.openai([{"role": "user", "content": "read /etc/hosts"}], openai_tools())

    def test_answered_tool_call(self):
        self.anthropic([{"role": "user", "content": "read it"}, anthropic_use("toolu_01A"), anthropic_result("toolu_01A")],
                       anthropic_tools())
        self.openai([{"role": "user", "content": "read it"}, openai_use("call_01A"), openai_result("call_01A")], openai_tools())

    def test_unanswered_tool_call_in_history(self):
        # the client moved on without answering the call: Kiro would say TOOL_USE_RESULT_MISMATCH
        self.anthropic([{"role": "user", "content": "read it"}, anthropic_use("toolu_02A"),
                        {"role": "user", "content": "never mind"}, {"role": "assistant", "content": "OK."},
                        {"role": "user", "content": "thanks"}], anthropic_tools())
        self.anthropic([{"role": "user", "content": "read it"}, anthropic_use("toolu_02B"),
                        {"role": "user", "content": "never mind"}], anthropic_tools())
        self.openai([{"role": "user", "content": "read it"}, openai_use("call_02A"),
                     {"role": "user", "content": "never mind"}], openai_tools())
        # and a result whose call is not in the previous turn (TOOL_USE_RESULT_MISMATCH too)
        self.anthropic([{"role": "user", "content": "read it"}, {"role": "assistant", "content": "Which file?"},
                        anthropic_result("toolu_02C")], anthropic_tools())
        self.openai([{"role": "user", "content": "read it"}, {"role": "assistant", "content": "Which file?"},
                     openai_result("call_02C"), {"role": "user", "content": "go on"}], openai_tools())

    def test_history_tool_traffic_without_tools(self):
        # the request carries no tools while history has tool traffic: Kiro would say TOOL_CONFIG_MISSING
        self.anthropic([{"role": "user", "content": "read it"}, anthropic_use("toolu_03A"), anthropic_result("toolu_03A"),
                        {"role": "assistant", "content": "Done."}, {"role": "user", "content": "summarise"}])
        self.openai([{"role": "user", "content": "read it"}, openai_use("call_03A"), openai_result("call_03A"),
                     {"role": "assistant", "content": "Done."}, {"role": "user", "content": "summarise"}])

    def test_native_effort_only_where_the_model_takes_it(self):
        for model, effort in (("claude-opus-4-6", "high"), ("claude-opus-4-6", "xhigh"), ("claude-sonnet-4-6", "xhigh"),
                              ("claude-sonnet-4-6", "max"), ("claude-opus-4-7", "xhigh"), ("claude-sonnet-4-5", "high"),
                              ("claude-haiku-4-5", "low"), ("claude-opus-4-6", "bogus")):
            self.anthropic([{"role": "user", "content": "think"}], model=model, thinking={"type": "adaptive"},
                           output_config={"effort": effort})
        for model, effort in (("claude-opus-4-6", "xhigh"), ("claude-opus-4-6", "high"), ("claude-sonnet-4-5", "low"),
                              ("claude-opus-4-7", "xhigh")):
            self.openai([{"role": "user", "content": "think"}], model=model, reasoning_effort=effort)


if __name__ == "__main__":
    main()
