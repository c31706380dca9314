"""POST /v1/messages end to end through the gateway and kiro-sim: streaming and non-streaming text, a
tool call whose input is split inside UTF-8 sequences, an upstream cut before and after content, the
validator's 400 without failover, client disconnect cancelling the upstream stream, pings while the
upstream is silent, and SIGTERM letting a slow stream finish."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, parse_sse, request, sim_accounts_env

MODEL = "claude-sonnet-4-5"


def body(text, stream=True, **extra):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "messages": [{"role": "user", "content": text}]}
    b.update(extra)
    return b


WEATHER_TOOL = {"name": "get_weather", "description": "Get the weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


class Messages(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-main"], {"KIRO_PING_INTERVAL_MS": "300"}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def post(self, b, **kw):
        return request(self.gw.port, "POST", "/v1/messages?beta=true", body=b, key=CLIENT_KEY, **kw)

    def test_stream_text(self):
        st, h, data = self.post(body("hello there"))
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        self.assertEqual(h["x-kiro-model"], "claude-sonnet-4.5")
        evs = parse_sse(data)
        names = [e for e, _ in evs]
        self.assertEqual(names[0], "message_start")
        self.assertEqual(names[-2:], ["message_delta", "message_stop"])
        text = "".join(json.loads(d)["delta"]["text"] for e, d in evs if e == "content_block_delta")
        self.assertEqual(text, "echo: hello there")
        start = json.loads(evs[0][1])["message"]
        delta = json.loads(evs[-2][1])
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")
        # the same input estimate in message_start, in the final usage and from count_tokens
        st, _, ct = request(self.gw.port, "POST", "/v1/messages/count_tokens", body=body("hello there"), key=CLIENT_KEY)
        self.assertEqual(st, 200)
        n = json.loads(ct)["input_tokens"]
        self.assertEqual(start["usage"]["input_tokens"], n)
        self.assertEqual(delta["usage"]["input_tokens"], n)
        self.assertGreater(delta["usage"]["output_tokens"], 0)

    def request_bytes_total(self):
        st, _, m = request(self.gw.port, "GET", "/metrics", key=CLIENT_KEY)
        self.assertEqual(st, 200)
        return int(re.search(rb'k2a_http_request_bytes_total\{route="messages"\} (\d+)', m).group(1))

    def test_h2_body_in_many_frames(self):
        """Over HTTP/2 the call keeps its own copy of the body and h2o's buffer of it goes before the answer: a body of
        many DATA frames (h2o's buffer grown past its first 8 KB) is answered whole, and the metrics count its length."""
        if not shutil.which("nghttp"):
            self.skipTest("nghttp2-client not installed")
        text = "h2 body " + "0123456789abcdef" * 4000 + " end-of-body-marker"
        raw = json.dumps(body(text)).encode()
        path = os.path.join(tempfile.mkdtemp(prefix="k2a-h2body-"), "body.json")
        with open(path, "wb") as f:
            f.write(raw)
        before = self.request_bytes_total()
        r = subprocess.run(["nghttp", "-d", path, "-H", "x-api-key: " + CLIENT_KEY, "-H", "content-type: application/json",
                            "http://127.0.0.1:%d/v1/messages" % self.gw.port], capture_output=True, timeout=30 * SLOW)
        self.assertEqual(r.returncode, 0, r.stderr[-2000:])
        evs = parse_sse(r.stdout)
        self.assertEqual([e for e, _ in evs][-1], "message_stop")
        got = "".join(json.loads(d)["delta"]["text"] for e, d in evs if e == "content_block_delta")
        self.assertTrue(got.startswith("echo: h2 body 0123"), got[:100])
        st, _, sent = request(self.sim.port, "GET", "/sim/last-request")  # the whole text reached Kiro
        self.assertEqual(st, 200)
        self.assertEqual(json.loads(sent)["conversationState"]["currentMessage"]["userInputMessage"]["content"], text)
        deadline = time.time() + 5 * SLOW  # counted when h2o disposes of the request, which can trail the last byte
        while self.request_bytes_total() - before != len(raw) and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.request_bytes_total() - before, len(raw))

    def test_non_stream_tool_call_split_in_utf8(self):
        args = {"city": "巴黎 — Île-de-France", "units": "°C"}
        directive = "[[sim:tool name=get_weather input=%s pieces=7 text=\"Let me check.\"]]" % json.dumps(args, ensure_ascii=False)
        st, _, data = self.post(body("weather? " + directive, stream=False, tools=[WEATHER_TOOL]))
        self.assertEqual(st, 200, data)
        msg = json.loads(data)
        self.assertTrue(msg["id"].startswith("msg_"))
        self.assertEqual(msg["stop_reason"], "tool_use")
        self.assertEqual([b["type"] for b in msg["content"]], ["text", "tool_use"])
        self.assertEqual(msg["content"][1]["name"], "get_weather")
        self.assertEqual(msg["content"][1]["input"], args)

    def test_stream_tool_pieces_concatenate(self):
        args = {"file_path": "/tmp/测试.txt", "content": "第一行\n第二行 🎉"}
        directive = "[[sim:tool name=Write input=%s pieces=9]]" % json.dumps(args, ensure_ascii=False)
        tool = {"name": "Write", "description": "write a file", "input_schema": {"type": "object", "properties": {
            "file_path": {"type": "string"}, "content": {"type": "string"}}}}
        st, _, data = self.post(body(directive, tools=[tool]))
        self.assertEqual(st, 200, data)
        evs = [(e, json.loads(d)) for e, d in parse_sse(data)]
        starts = [d for e, d in evs if e == "content_block_start"]
        self.assertEqual(starts[-1]["content_block"]["type"], "tool_use")
        idx = starts[-1]["index"]
        pieces = [d["delta"]["partial_json"] for e, d in evs if e == "content_block_delta" and d["index"] == idx]
        self.assertGreaterEqual(len(pieces), 2)
        self.assertEqual(json.loads("".join(pieces)), args)
        self.assertEqual([d for e, d in evs if e == "message_delta"][0]["delta"]["stop_reason"], "tool_use")

    def test_client_tool_with_a_dated_name_reaches_kiro(self):
        # lookup_20250101 is a client tool, not a server tool: forwarded, accepted, callable (fuzz_anthropic_req finding)
        tool = dict(WEATHER_TOOL, name="lookup_20250101", type="custom")
        directive = '[[sim:tool name=lookup_20250101 input={"city":"Oslo"}]]'
        st, _, data = self.post(body("look it up " + directive, stream=False, tools=[tool]))
        self.assertEqual(st, 200, data)
        msg = json.loads(data)
        self.assertEqual(msg["stop_reason"], "tool_use")
        self.assertEqual(msg["content"][-1]["name"], "lookup_20250101")

    def test_validator_400_is_an_anthropic_400(self):
        # an assistant-only conversation is repaired by the normalizer, but a model no account has is the client's problem
        # (Kiro answers INVALID_MODEL_ID, or the accounts' catalogs lack it): a 400 naming the model
        st, _, data = self.post(body("hi", model="gpt-nope"))
        self.assertEqual(st, 400, data)
        err = json.loads(data)["error"]
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertIn('model "gpt-nope" is not available on any configured Kiro account', err["message"])
        # a name that cannot be a model at all
        st, _, data = self.post(body("hi", model="claude\u0007opus"))
        self.assertEqual(st, 400, data)
        self.assertIn("not a valid model name", json.loads(data)["error"]["message"])
        st, _, data = self.post({"model": MODEL, "max_tokens": 10, "messages": "not a list"})
        self.assertEqual(st, 400)
        err = json.loads(data)["error"]
        self.assertEqual(err["type"], "invalid_request_error")
        self.assertIn("messages", err["message"])

    def test_upstream_status_maps_to_dialect_error(self):
        st, _, data = self.post(body("[[sim:status code=400]]", stream=True))
        self.assertEqual(st, 400, data)
        self.assertEqual(json.loads(data)["type"], "error")

    def test_cut_after_content_is_an_in_stream_error(self):
        st, _, data = self.post(body("[[sim:text frames=4 size=8]] [[sim:cut after=2]]"))
        self.assertEqual(st, 200)
        evs = parse_sse(data)
        self.assertEqual(evs[-1][0], "error")
        self.assertNotIn("message_stop", [e for e, _ in evs])

    def test_ping_while_upstream_silent(self):
        st, _, data = self.post(body("[[sim:drip ms=700]] [[sim:text frames=2 size=4]]"))
        self.assertEqual(st, 200)
        names = [e for e, _ in parse_sse(data)]
        self.assertGreaterEqual(names.count("ping"), 2, names)  # one after message_start, at least one keep-alive
        self.assertEqual(names[-1], "message_stop")

    def test_client_disconnect_cancels_upstream(self):
        before = self.sim.stats()["open_streams"]
        s = socket.create_connection(("127.0.0.1", self.gw.port))
        payload = json.dumps(body("[[sim:drip ms=100]] [[sim:text frames=200 size=4]]")).encode()
        s.sendall(b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + CLIENT_KEY.encode() +
                  b"\r\ncontent-type: application/json\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
        got = s.recv(4096)
        self.assertIn(b"200", got.split(b"\r\n")[0])
        time.sleep(0.3)
        s.close()
        deadline = time.time() + 5 * SLOW
        while time.time() < deadline and self.sim.stats()["open_streams"] > before:
            time.sleep(0.05)
        self.assertEqual(self.sim.stats()["open_streams"], before)
        # the gateway still serves
        self.assertEqual(self.post(body("still there?"))[0], 200)


class NonStreamFailover(unittest.TestCase):
    def test_non_stream_fails_over_after_content(self):
        # a non-stream answer has sent nothing when its upstream body breaks after some content: the gateway retries the
        # same Kiro body on the next account (regression: the body was freed once content was seen, and the retry read it)
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-nsa", "sim-ok-nsb"]))
        try:
            st, _, data = request(gw.port, "POST", "/v1/messages", body=body("[[sim:text frames=4 size=8]] [[sim:cut after=2]]",
                                                                          stream=False), key=CLIENT_KEY)
            err = json.loads(data)
            self.assertGreaterEqual(st, 500, data)
            self.assertEqual(err["type"], "error")
            self.assertIn("account 0", err["error"]["message"])
            self.assertIn("account 1", err["error"]["message"])
            self.assertEqual(sim.stats()["generates_total"], 2)
            # both accounts cool briefly after a broken stream; once one is back the gateway serves again
            deadline = time.time() + 10 * SLOW
            while request(gw.port, "POST", "/v1/messages", body=body("fine", stream=False), key=CLIENT_KEY)[0] != 200:
                self.assertLess(time.time(), deadline, "no account recovered from cooling")
                time.sleep(0.2)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


class Lifecycle(unittest.TestCase):
    def test_sigterm_lets_a_slow_stream_finish(self):
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-a"]))
        try:
            result = {}

            def slow():
                result["r"] = request(gw.port, "POST", "/v1/messages", body=body("[[sim:drip ms=150]] [[sim:text frames=8 size=4]]"),
                                      key=CLIENT_KEY)
            t = threading.Thread(target=slow)
            t.start()
            time.sleep(0.4)
            gw.send_signal(signal.SIGTERM)
            t.join(30)
            st, _, data = result["r"]
            self.assertEqual(st, 200)
            self.assertEqual([e for e, _ in parse_sse(data)][-1], "message_stop")
            self.assertEqual(gw.wait(), 0)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
