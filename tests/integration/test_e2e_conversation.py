"""What real clients send, through the gateway, accepted by kiro-sim's strict validator:
- a multi-turn tool conversation (6 requests) carrying everything Claude Code puts in a conversation: Claude-Code-style
  system blocks with cache_control, role:"system" messages inside messages[], thinking blocks with their signature sent
  back, tool_result with cache_control, is_error, an image and a tool_reference inside it, tools with defer_loading, and a
  tool whose name is longer than 64 characters (Kiro gets a shortened name; the client gets its ORIGINAL name back). Every
  upstream request must be accepted: /sim/stats counts no rejection;
- the captured Claude Code bodies (tests/fixtures/clients/cc-*.json) as sent (200 and a valid SSE stream), and its
  /context count_tokens bodies (200 with input_tokens);
- /v1/models: every listed name is accepted by POST /v1/messages, /v1/models/<id> answers for each, unknown ids are 404."""
import base64
import glob
import hashlib
import json
import os
import struct
import unittest
import zlib

from e2e_util import SIM_THINKING, check_sse, post, sse_summary
from k2a import CLIENT_KEY, FIXTURES, Gateway, Sim, main, request, sim_accounts_env

MODEL = "claude-sonnet-4-5"
LONG_TOOL = "mcp__acme_internal_knowledge_base_server__search_documents_by_semantic_similarity"


def kiro_tool_name(name):
    """The gateway's shortened name for a tool name over 64 bytes (normalize_render.c): 51 bytes, '_', 12 hex of SHA-256."""
    return name[:51] + "_" + hashlib.sha256(name.encode()).hexdigest()[:12] if len(name) > 64 else name


def png_1x1():
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0"))
    return base64.b64encode(b"\x89PNG\r\n\x1a\n" + raw + chunk(b"IEND", b"")).decode()


def schema(**props):
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "additionalProperties": False,
            "properties": {k: {"type": v} for k, v in props.items()}, "required": list(props)}


TOOLS = [
    {"name": "Bash", "description": "Run a shell command", "input_schema": schema(command="string", description="string")},
    {"name": "Read", "description": "Read a file", "input_schema": schema(file_path="string")},
    {"name": "ToolSearch", "description": "Find deferred tools", "input_schema": schema(query="string")},
    {"name": "DeferredToolPlaceholder", "description": "Loaded on demand", "input_schema": schema(x="string"),
     "defer_loading": True},
    {"name": LONG_TOOL, "description": "Semantic search over the knowledge base", "input_schema": schema(query="string")},
]

SYSTEM = [
    {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=sdk-cli;"},
    {"type": "text", "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.", "cache_control": {"type": "ephemeral"}},
    {"type": "text", "text": "You are an interactive agent that helps users with software engineering tasks.",
     "cache_control": {"type": "ephemeral"}},
]


def tool_directive(name, args, pieces=3, text=None):
    t = ' text="%s"' % text if text else ""
    return "[[sim:tool name=%s input=%s pieces=%d%s]]" % (name, json.dumps(args, ensure_ascii=False), pieces, t)


class Conversation(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-conv"]))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def assert_no_rejection(self):
        st = self.sim.stats()
        self.assertEqual((st["rejections"], st["rejections_by_rule"]), (0, {}), st["last_rejection"])

    def turn(self, messages, stream=True, **extra):
        """Sends the conversation; returns the assistant content blocks (API shape) and the stop reason."""
        b = {"model": MODEL, "max_tokens": 8000, "stream": stream, "system": SYSTEM, "tools": TOOLS, "messages": messages,
             "metadata": {"user_id": json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "s-1"})},
             "thinking": {"type": "enabled", "budget_tokens": 2000}}
        b.update(extra)
        st, _, data = post(self.gw, b, headers={"anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
                                             "x-claude-code-session-id": "2b1c7c3e-0000-4000-8000-000000000001"})
        self.assertEqual(st, 200, data[-800:])
        self.assert_no_rejection()
        if stream:
            blocks, stop, _, error = sse_summary(check_sse(self, data))
            self.assertIsNone(error)
            return blocks, stop
        msg = json.loads(data)
        return msg["content"], msg["stop_reason"]

    def test_multi_turn_tool_conversation(self):
        before = self.sim.stats()["generates_total"]
        # 1. the user asks; the model thinks, then calls Bash
        messages = [
            {"role": "user", "content": [
                {"type": "text", "text": "<system-reminder>\nToday's date is 2026-11-26.\n</system-reminder>\n\n"},
                {"type": "text", "text": "list the files [[sim:thinking]] " +
                 tool_directive("Bash", {"command": "ls -la", "description": "List files"}, 3),
                 "cache_control": {"type": "ephemeral"}}]},
            {"role": "system", "content": "Available agent types for the Agent tool: claude, Explore."},
        ]
        blocks, stop = self.turn(messages)
        self.assertEqual(stop, "tool_use")
        self.assertEqual([b["type"] for b in blocks], ["thinking", "tool_use"])
        self.assertEqual(blocks[0]["thinking"], SIM_THINKING)
        self.assertTrue(blocks[0]["signature"])
        self.assertEqual((blocks[1]["name"], blocks[1]["input"]), ("Bash", {"command": "ls -la", "description": "List files"}))
        messages.append({"role": "assistant", "content": blocks})

        # 2. the tool result (cache_control) asks for the long-named tool: the client must get its original name back
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "a.txt\nb.png", "is_error": False,
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "search the docs " + tool_directive(kiro_tool_name(LONG_TOOL), {"query": "deploy"}, 2,
                                                                           "Searching.")}]})
        blocks, stop = self.turn(messages)
        self.assertEqual(stop, "tool_use")
        self.assertEqual([b["type"] for b in blocks], ["text", "tool_use"])
        self.assertEqual(blocks[1]["name"], LONG_TOOL)
        self.assertEqual(blocks[1]["input"], {"query": "deploy"})
        messages.append({"role": "assistant", "content": blocks})

        # 3. an is_error tool result with block content; a mid-conversation system message; the model calls Read
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": blocks[1]["id"], "is_error": True,
             "content": [{"type": "text", "text": "permission denied"}]},
            {"type": "text", "text": "read the image instead " + tool_directive("Read", {"file_path": "/tmp/b.png"}, 2)}]})
        messages.append({"role": "system", "content": [{"type": "text", "text": "The user prefers short answers.",
                                                        "cache_control": {"type": "ephemeral"}}]})
        blocks, stop = self.turn(messages, stream=False)
        self.assertEqual(stop, "tool_use")
        self.assertEqual([(b["type"], b.get("name")) for b in blocks], [("tool_use", "Read")])
        messages.append({"role": "assistant", "content": blocks})

        # 4. an image inside the tool result (the Read tool): no directive, so the simulator echoes the result text
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": blocks[0]["id"], "cache_control": {"type": "ephemeral"}, "content": [
                {"type": "text", "text": "image of b.png"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png_1x1()}}]}]})
        blocks, stop = self.turn(messages)
        self.assertEqual(stop, "end_turn")
        self.assertEqual(blocks[-1]["type"], "text")
        self.assertIn("image of b.png", blocks[-1]["text"])
        messages.append({"role": "assistant", "content": blocks})

        # 5. tool search: a tool_reference inside a tool result, then the deferred tool is called
        messages.append({"role": "user", "content": "find a tool " + tool_directive("ToolSearch", {"query": "placeholder"}, 2)})
        blocks, stop = self.turn(messages)
        self.assertEqual([(b["type"], b.get("name")) for b in blocks if b["type"] != "thinking"], [("tool_use", "ToolSearch")])
        messages.append({"role": "assistant", "content": blocks})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": blocks[-1]["id"],
             "content": [{"type": "tool_reference", "tool_name": "DeferredToolPlaceholder"}]},
            {"type": "text", "text": "use it " + tool_directive("DeferredToolPlaceholder", {"x": "y"}, 2)}]})
        blocks, stop = self.turn(messages)
        self.assertEqual(stop, "tool_use")
        self.assertEqual(blocks[-1]["name"], "DeferredToolPlaceholder")
        self.assertEqual(self.sim.stats()["generates_total"] - before, 6)
        self.assert_no_rejection()

    def test_claude_code_bodies(self):
        for path in sorted(glob.glob(os.path.join(FIXTURES, "clients", "cc-*.json"))):
            with open(path) as f:
                req = json.load(f)
            if "count_tokens" in req["url"]:
                continue
            with self.subTest(fixture=os.path.basename(path)):
                self.assertTrue(req["body"]["stream"])
                headers = {k: v for k, v in req["headers"].items()
                           if k in ("anthropic-beta", "anthropic-version", "x-claude-code-session-id", "user-agent", "x-app")}
                st, h, data = request(self.gw.port, "POST", req["url"], body=req["body"], headers=headers, key=CLIENT_KEY)
                self.assertEqual(st, 200, data[-800:])
                self.assertTrue(h["content-type"].startswith("text/event-stream"))
                evs = check_sse(self, data)
                blocks, stop, usage, error = sse_summary(evs)
                self.assertIsNone(error)
                self.assertEqual(stop, "end_turn")
                self.assertTrue(blocks[-1]["text"].startswith("echo: "), blocks)
                self.assertEqual(usage["input_tokens"], evs[0][1]["message"]["usage"]["input_tokens"])
                self.assertEqual(self.sim.stats()["rejections"], 0)
        # the tool_result follow-up: the simulator echoes the tool output it received
        with open(os.path.join(FIXTURES, "clients", "cc-tool-allowed-3.json")) as f:
            req = json.load(f)
        st, _, data = request(self.gw.port, "POST", req["url"], body=req["body"], key=CLIENT_KEY)
        self.assertEqual(sse_summary(check_sse(self, data))[0][-1]["text"], "echo: hello-from-tool")

    def test_claude_code_count_tokens(self):
        for path in sorted(glob.glob(os.path.join(FIXTURES, "clients", "cc-slash-context-*.json"))):
            with open(path) as f:
                req = json.load(f)
            with self.subTest(fixture=os.path.basename(path)):
                st, _, data = request(self.gw.port, "POST", req["url"], body=req["body"], key=CLIENT_KEY)
                self.assertEqual(st, 200, data)
                n = json.loads(data)
                self.assertEqual(list(n), ["input_tokens"])
                self.assertGreater(n["input_tokens"], 0)
                # the estimate message_start reports for the same body
                b = dict(req["body"], max_tokens=100, stream=True)
                st, _, data = post(self.gw, b)
                self.assertEqual(st, 200, data[-500:])
                self.assertEqual(check_sse(self, data)[0][1]["message"]["usage"]["input_tokens"], n["input_tokens"])

    def test_models_listed_are_accepted(self):
        st, _, data = request(self.gw.port, "GET", "/v1/models", key=CLIENT_KEY)
        self.assertEqual(st, 200, data)
        listing = json.loads(data)
        ids = [m["id"] for m in listing["data"]]
        self.assertGreaterEqual(len(ids), 4)
        self.assertEqual(len(ids), len(set(ids)))
        self.assertEqual((listing["first_id"], listing["last_id"], listing["has_more"]), (ids[0], ids[-1], False))
        for mid in ids:
            with self.subTest(model=mid):
                st, _, data = request(self.gw.port, "GET", "/v1/models/" + mid, key=CLIENT_KEY)
                self.assertEqual(st, 200, data)
                self.assertEqual(json.loads(data)["id"], mid)
                st, _, data = post(self.gw, {"model": mid, "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]})
                self.assertEqual(st, 200, data)
                msg = json.loads(data)
                self.assertEqual((msg["model"], msg["content"]), (mid, [{"type": "text", "text": "echo: hi"}]))
        st, _, data = request(self.gw.port, "GET", "/v1/models/claude-does-not-exist", key=CLIENT_KEY)
        self.assertEqual(st, 404, data)
        self.assertEqual(json.loads(data)["error"]["type"], "not_found_error")
        self.assertEqual(self.sim.stats()["rejections"], 0)


if __name__ == "__main__":
    main()
