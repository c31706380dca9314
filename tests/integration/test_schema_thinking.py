"""Tool schemas and thinking as Kiro takes them (kiro-protocol-2026.md §6, §7), end to end. A recording stand-in for
Kiro on 127.0.0.1 sits between the gateway and kiro-sim: it keeps every body the gateway sends, refuses
additionalModelRequestFields like Kiro does for models without it (or strips it for models that take it, since
kiro-sim's closed schema knows no such field), and forwards the rest to kiro-sim. Checked: an MCP tool with a root anyOf,
$schema and a name outside [a-zA-Z0-9_-] reaches Kiro sanitized and its call comes back under the client's name; a
max_tokens 64 request with thinking carries no thinking tags (both dialects), a larger one a budget of at most 3/4 of
max_tokens; a bad thinking.type or enabled thinking with max_tokens 0 is a 400 in the client's dialect; the native
effort field is sent to a model that takes it, and when Kiro refuses it the same account is asked once more without it
(tags instead), no account penalised, and the model is remembered."""
import hashlib
import http.client
import json
import re
import socket
import threading
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, main, request, sim_accounts_env
from hostile import assert_error_shape, post

REFUSAL = b'{"message":"additionalModelRequestFields is not supported for this model"}'


class Recorder:
    """HTTP/1.1 on 127.0.0.1: records each POST body, then answers it (see the module comment)."""

    def __init__(self, sim_port, accepts=()):
        self.sim_port = sim_port
        self.accepts = set(accepts)  # modelIds that take additionalModelRequestFields
        self.bodies = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.base = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(c,), daemon=True).start()

    def _answer(self, method, path, headers, body):
        if method == "POST" and body:
            doc = json.loads(body)
            with self.lock:
                self.bodies.append(json.loads(body))
            if "additionalModelRequestFields" in doc:
                model = doc["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]
                if model not in self.accepts:
                    return 400, "application/json", REFUSAL
                del doc["additionalModelRequestFields"]
                body = json.dumps(doc).encode()
        conn = http.client.HTTPConnection("127.0.0.1", self.sim_port, timeout=60)
        fwd = {k: v for k, v in headers.items() if k not in ("host", "content-length", "connection")}
        conn.request(method, path, body=body, headers=fwd)
        r = conn.getresponse()
        data = r.read()
        ctype = r.getheader("content-type", "application/octet-stream")
        conn.close()
        return r.status, ctype, data

    def _conn(self, c):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, _, rest = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(rest) < n:
                    d = c.recv(65536)
                    if not d:
                        return
                    rest += d
                body, buf = rest[:n], rest[n:]
                status, ctype, data = self._answer(method, path, headers, body)
                c.sendall(b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n" % (status, ctype.encode(), len(data))
                          + data)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def take(self):
        with self.lock:
            b, self.bodies = self.bodies, []
        return b

    def close(self):
        self.sock.close()


def system_text(kiro_body):
    """The first history user turn (the system prompt pair), or ''."""
    h = kiro_body["conversationState"].get("history") or []
    return h[0]["userInputMessage"]["content"] if h else ""


def kiro_name(client_name):
    prefix = re.sub(r"[^A-Za-z0-9_-]", "_", client_name)[:51]
    return prefix + "_" + hashlib.sha256(client_name.encode()).hexdigest()[:12]


class SchemaThinking(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(args=["--model", "claude-opus-4.8", "--model", "claude-opus-5"])
        cls.rec = Recorder(cls.sim.port, accepts=("claude-opus-5",))
        env = sim_accounts_env(cls.sim, ["sim-ok-st1"], {
            "KIRO_API_BASE": cls.rec.base,
            "KIRO_MODEL_MAP": json.dumps({"claude-opus-4-8": "claude-opus-4.8", "claude-opus-5": "claude-opus-5"})})
        cls.gw = Gateway(env=env)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()
            cls.rec.close()

    def setUp(self):
        self.rec.take()

    def messages(self, body, dialect="anthropic"):
        st, _, data = post(self.gw.port, dialect, body, timeout=60)
        return st, data

    def test_mcp_tool_schema_and_name(self):
        name = "mcp.files/read file"
        tool = {"name": name, "description": " ", "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "anyOf": [{"type": "object", "properties": {"path": {"type": "string", "format": "uri", "minLength": 1}},
                       "required": ["path"], "additionalProperties": False},
                      {"type": "object", "properties": {"fd": {"type": "integer", "minimum": 0}}}]}}
        kname = kiro_name(name)
        directive = '[[sim:tool name=%s input={"path":"/etc/hosts"}]]' % kname
        st, data = self.messages({"model": "claude-sonnet-4-5", "max_tokens": 1024, "tools": [tool],
                                  "messages": [{"role": "user", "content": directive}]})
        self.assertEqual(st, 200, data[:2000])
        doc = json.loads(data)
        uses = [b for b in doc["content"] if b["type"] == "tool_use"]
        self.assertEqual(len(uses), 1, doc)
        self.assertEqual(uses[0]["name"], name, "the call comes back under the client's name")
        self.assertEqual(uses[0]["input"], {"path": "/etc/hosts"})
        sent = self.rec.take()
        self.assertEqual(len(sent), 1)
        spec = sent[0]["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0]
        spec = spec["toolSpecification"]
        self.assertEqual(spec["name"], kname)
        self.assertRegex(spec["name"], r"^[A-Za-z0-9_-]{1,64}$")
        self.assertEqual(spec["description"], name, "a blank description becomes the tool's name")
        self.assertEqual(spec["inputSchema"]["json"], {"type": "object", "properties": {
            "path": {"type": "string"}, "fd": {"type": "integer"}}})

    def test_deep_and_refused_schemas(self):
        # the sanitizer recurses once per level on the request's coroutine stack. The deepest schema the decoder accepts
        # (the body nests at most 128 levels, the schema starts at level 4: 125) is sanitized without harm; kiro-sim then
        # refuses the Kiro body, which nests deeper than its parser allows, and says so
        def deep(levels):
            inner = {"type": "string"}
            for _ in range(levels):
                inner = {"type": "object", "properties": {"a": inner}}
            return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}],
                    "tools": [{"name": "deep", "description": "d", "input_schema": inner}]}
        st, data = self.messages(deep(62))
        self.assertIn(st, (200, 400), data[:2000])
        if st == 400:
            self.assertIn(b"Improperly formed request", data)
            self.assertEqual(len(self.rec.take()), 1, "the gateway sent it: the refusal is upstream's")
        st, data = self.messages(deep(55))  # 111 levels: through
        self.assertEqual(st, 200, data[:2000])
        self.assertEqual(len(self.rec.take()), 1)
        # an array root is not refused: it becomes an empty object schema
        tool = {"name": "arr", "description": "d", "input_schema": {"type": "array", "items": {"type": "string"}}}
        for dialect, body in (("anthropic", {"model": "claude-sonnet-4-5", "max_tokens": 100, "tools": [tool]}),
                              ("openai", {"model": "claude-sonnet-4-5", "tools": [{"type": "function", "function": {
                                  "name": "arr", "parameters": tool["input_schema"]}}]})):
            body["messages"] = [{"role": "user", "content": "hi"}]
            st, data = self.messages(body, dialect)
            self.assertEqual(st, 200, data[:2000])
            sent = self.rec.take()
            spec = sent[0]["conversationState"]["currentMessage"]["userInputMessage"]["userInputMessageContext"]["tools"][0]
            self.assertEqual(spec["toolSpecification"]["inputSchema"]["json"], {"type": "object", "properties": {}})

    def test_small_max_tokens_carry_no_thinking(self):
        cases = (
            ("anthropic", {"model": "claude-sonnet-4-5", "max_tokens": 64,
                           "thinking": {"type": "enabled", "budget_tokens": 1024}}),
            ("anthropic", {"model": "claude-sonnet-4-5-thinking", "max_tokens": 64}),
            ("anthropic", {"model": "claude-opus-4-8", "max_tokens": 200, "thinking": {"type": "adaptive"},
                           "output_config": {"effort": "high"}}),
            ("openai", {"model": "claude-sonnet-4-5", "max_tokens": 64, "reasoning_effort": "high"}),
        )
        for dialect, extra in cases:
            body = {"messages": [{"role": "user", "content": "title please"}], "stream": True}
            body.update(extra)
            st, data = self.messages(body, dialect)
            self.assertEqual(st, 200, data[:2000])
            sent = self.rec.take()
            self.assertEqual(len(sent), 1)
            self.assertNotIn("<thinking_mode>", json.dumps(sent[0]), "%s %s" % (dialect, extra))
            self.assertNotIn("additionalModelRequestFields", sent[0])
        # 1000 tokens: thinking on, the budget cut to 3/4 of max_tokens
        st, data = self.messages({"model": "claude-sonnet-4-5", "max_tokens": 1000, "messages": [
            {"role": "user", "content": "hi"}], "thinking": {"type": "enabled", "budget_tokens": 4096}})
        self.assertEqual(st, 200, data[:2000])
        self.assertIn("<max_thinking_length>750</max_thinking_length>", system_text(self.rec.take()[0]))

    def test_thinking_type_and_max_tokens_zero_are_400(self):
        for thinking, max_tokens, contains in (({"type": "bogus"}, 1024, "enabled.*adaptive.*disabled"),
                                               ({"type": "enabled", "budget_tokens": 1024}, 0, "max_tokens")):
            st, data = self.messages({"model": "claude-sonnet-4-5", "max_tokens": max_tokens, "thinking": thinking,
                                      "messages": [{"role": "user", "content": "hi"}]})
            assert_error_shape(self, "anthropic", st, data, want_status=400, want_type="invalid_request_error",
                               contains=contains)
        st, data = self.messages({"model": "claude-sonnet-4-5", "reasoning_effort": "bogus",
                                  "messages": [{"role": "user", "content": "hi"}]}, "openai")
        assert_error_shape(self, "openai", st, data, want_status=400, contains="reasoning_effort")
        self.assertEqual(self.rec.take(), [], "nothing reached Kiro")

    def test_native_effort_sent_refused_retried_and_remembered(self):
        def ask(model):
            return self.messages({"model": model, "max_tokens": 64000, "stream": True, "thinking": {"type": "adaptive"},
                                  "output_config": {"effort": "max"}, "system": "S",
                                  "messages": [{"role": "user", "content": "hi"}]})

        # a model that takes it: the field, no tags
        st, data = ask("claude-opus-5")
        self.assertEqual(st, 200, data[:2000])
        sent = self.rec.take()
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0]["additionalModelRequestFields"], {"output_config": {"effort": "max"}})
        self.assertNotIn("<thinking_mode>", system_text(sent[0]))
        # a listed model that Kiro refuses it for: once more on the same account without it, tags instead
        st, data = ask("claude-opus-4-8")
        self.assertEqual(st, 200, data[:2000])
        self.assertIn(b"message_stop", data)
        sent = self.rec.take()
        self.assertEqual(len(sent), 2, [list(b) for b in sent])
        self.assertIn("additionalModelRequestFields", sent[0])
        self.assertNotIn("additionalModelRequestFields", sent[1])
        self.assertTrue(system_text(sent[1]).startswith(
            "<thinking_mode>adaptive</thinking_mode><thinking_effort>max</thinking_effort>"), system_text(sent[1]))
        # remembered: the next request goes without it at once
        st, data = ask("claude-opus-4-8")
        self.assertEqual(st, 200, data[:2000])
        sent = self.rec.take()
        self.assertEqual(len(sent), 1)
        self.assertNotIn("additionalModelRequestFields", sent[0])
        st, _, data = request(self.gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        self.assertEqual([t["state"] for t in json.loads(data)["tokens"]], ["ok"], "no account penalised")


if __name__ == "__main__":
    main()
