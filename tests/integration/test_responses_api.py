"""POST /v1/responses end to end (gateway + kiro-sim on loopback): the Responses stream an OpenAI client sees (every event
`event: T` + `data: {"type":"T",...,"sequence_number":n}` with n = 0, 1, 2..., response.created and response.in_progress
first, each output item added before its deltas and done after them, response.completed with usage last), text,
function calls and reasoning items; the non-stream `response` object; a two-turn function-call round through
previous_response_id, GET /v1/responses/{id}, DELETE /v1/responses/{id} (OpenAI's deleted object, then 404 for GET, a
second DELETE and previous_response_id; 405 with Allow for other methods), store: false; max_output_tokens (response.incomplete), a failure in the
middle of a stream (response.failed) and the OpenAI error shapes (400 with the JSON path as param, 401, 404)."""
import json
import os
import tempfile
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, SimGatewayCase, main, parse_sse, request, sim_accounts_env

AUTH = {"authorization": "Bearer " + CLIENT_KEY}
MODEL = "claude-sonnet-4-5"
WEATHER = {"type": "function", "name": "get_weather", "description": "Get the weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def events(tc, data):
    """The events of a Responses stream, checked for the grammar; pings dropped."""
    out, items, done_items, seq = [], {}, set(), 0
    for ev, d in parse_sse(data):
        if ev == ":comment":
            continue
        e = json.loads(d)
        tc.assertEqual(e["type"], ev)
        tc.assertEqual(e["sequence_number"], seq)
        seq += 1
        t = e["type"]
        if t == "response.output_item.added":
            tc.assertEqual(e["output_index"], len(items))
            items[e["item"]["id"]] = e["item"]["type"]
        elif t == "response.output_item.done":
            tc.assertIn(e["item"]["id"], items)
            done_items.add(e["item"]["id"])
        elif "item_id" in e:
            tc.assertIn(e["item_id"], items)
            tc.assertNotIn(e["item_id"], done_items)
        out.append(e)
    tc.assertEqual([e["type"] for e in out[:2]], ["response.created", "response.in_progress"])
    tc.assertIn(out[-1]["type"], ("response.completed", "response.incomplete", "response.failed"))
    tc.assertFalse(any(e["type"] in ("response.completed", "response.incomplete", "response.failed") for e in out[:-1]))
    if out[-1]["type"] != "response.failed":
        tc.assertEqual(set(items), done_items)
    return out


class ResponsesAPI(SimGatewayCase):
    ACCOUNTS = ["sim-ok-responses"]
    PATH = "/v1/responses"

    def test_non_stream_text(self):
        st, h, data = self.post({"model": MODEL, "instructions": "Be brief.", "input": "[[sim:text frames=3 size=5]]",
                                 "metadata": {"k": "v"}, "max_output_tokens": 500})
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("application/json"))
        r = json.loads(data)
        self.assertTrue(r["id"].startswith("resp_"))
        self.assertEqual((r["object"], r["status"], r["model"]), ("response", "completed", MODEL))
        self.assertEqual((r["instructions"], r["metadata"], r["max_output_tokens"]), ("Be brief.", {"k": "v"}, 500))
        (msg,) = r["output"]
        self.assertEqual((msg["type"], msg["role"], msg["status"]), ("message", "assistant", "completed"))
        self.assertTrue(msg["id"].startswith("msg_"))
        self.assertEqual(len(msg["content"][0]["text"]), 15)
        u = r["usage"]
        self.assertEqual(u["total_tokens"], u["input_tokens"] + u["output_tokens"])
        self.assertGreater(u["input_tokens"], 0)
        self.assertGreater(u["output_tokens"], 0)
        self.assertIn("reasoning_tokens", u["output_tokens_details"])

    def test_stream_text_and_function_call(self):
        st, h, data = self.post({"model": MODEL, "stream": True, "tools": [WEATHER], "input": [
            {"role": "user", "content": [{"type": "input_text", "text": 'Weather? [[sim:tool name=get_weather '
                                          'input={"city":"Paris"} pieces=4 text="Checking."]]'}]}]})
        self.assertEqual(st, 200, data)
        self.assertTrue(h["content-type"].startswith("text/event-stream"))
        evs = events(self, data)
        types = [e["type"] for e in evs]
        text = "".join(e["delta"] for e in evs if e["type"] == "response.output_text.delta")
        args = "".join(e["delta"] for e in evs if e["type"] == "response.function_call_arguments.delta")
        self.assertEqual(text, "Checking.")
        self.assertEqual(json.loads(args), {"city": "Paris"})
        self.assertGreaterEqual(types.count("response.function_call_arguments.delta"), 2)
        self.assertLess(types.index("response.output_text.done"), types.index("response.function_call_arguments.delta"))
        final = evs[-1]
        self.assertEqual(final["type"], "response.completed")
        r = final["response"]
        self.assertEqual(r["status"], "completed")
        self.assertEqual([o["type"] for o in r["output"]], ["message", "function_call"])
        call = r["output"][1]
        self.assertEqual((call["name"], json.loads(call["arguments"])), ("get_weather", {"city": "Paris"}))
        self.assertTrue(call["id"].startswith("fc_") and call["call_id"])
        self.assertGreater(r["usage"]["output_tokens"], 0)
        self.assertEqual(r["tools"][0]["name"], "get_weather")

    def test_stream_reasoning(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "reasoning": {"effort": "low"},
                                 "input": '[[sim:thinking text="Let me think."]][[sim:text frames=2 size=4]]'})
        self.assertEqual(st, 200, data)
        evs = events(self, data)
        types = [e["type"] for e in evs]
        for t in ("response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                  "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"):
            self.assertIn(t, types)
        summary = "".join(e["delta"] for e in evs if e["type"] == "response.reasoning_summary_text.delta")
        self.assertEqual(summary.strip(), "Let me think.")
        r = evs[-1]["response"]
        self.assertEqual([o["type"] for o in r["output"]], ["reasoning", "message"])
        self.assertTrue(r["output"][0]["id"].startswith("rs_"))
        self.assertEqual(r["reasoning"]["effort"], "low")
        self.assertNotIn("<thinking>", r["output"][1]["content"][0]["text"])

    def test_previous_response_id_round_trip(self):
        st, _, data = self.post({"model": MODEL, "tools": [WEATHER], "input": 'Weather in Oslo? [[sim:tool name=get_weather '
                                 'input={"city":"Oslo"}]]'})
        self.assertEqual(st, 200, data)
        first = json.loads(data)
        call = first["output"][-1]
        self.assertEqual(call["type"], "function_call")
        # GET returns the stored object
        st, _, got = request(self.gw.port, "GET", "/v1/responses/" + first["id"], headers=AUTH)
        self.assertEqual(st, 200, got)
        self.assertEqual(json.loads(got), first)
        # the follow-up names it and sends only the tool output
        st, _, data = self.post({"model": MODEL, "tools": [WEATHER], "previous_response_id": first["id"], "stream": True,
                                 "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "4C rain"}]})
        self.assertEqual(st, 200, data)
        evs = events(self, data)
        self.assertEqual(evs[-1]["response"]["previous_response_id"], first["id"])
        st, _, sent = request(self.sim.port, "GET", "/sim/last-request")
        kiro = json.loads(sent)["conversationState"]
        history = kiro["history"]
        self.assertIn("Weather in Oslo?", history[0]["userInputMessage"]["content"])
        self.assertEqual(history[1]["assistantResponseMessage"]["toolUses"][0]["toolUseId"], call["call_id"])
        results = kiro["currentMessage"]["userInputMessage"]["userInputMessageContext"]["toolResults"]
        self.assertEqual((results[0]["toolUseId"], results[0]["content"]), (call["call_id"], [{"text": "4C rain"}]))
        # a stream's stored object is the one response.completed carried, byte for byte
        second = evs[-1]["response"]["id"]
        st, _, got = request(self.gw.port, "GET", "/v1/responses/" + second, headers=AUTH)
        self.assertEqual(st, 200, got)
        completed = [line for line in data.decode().split("\n") if line.startswith("data: ")][-1][len("data: "):]
        self.assertIn(got.decode(), completed)
        self.assertEqual(json.loads(got), evs[-1]["response"])
        # a third turn chains on the second
        st, _, data = self.post({"model": MODEL, "previous_response_id": second, "input": "And tomorrow?"})
        self.assertEqual(st, 200, data)
        st, _, sent = request(self.sim.port, "GET", "/sim/last-request")
        self.assertEqual(len(json.loads(sent)["conversationState"]["history"]), 4)

    def test_delete(self):
        st, _, data = self.post({"model": MODEL, "input": "keep this"})
        self.assertEqual(st, 200, data)
        rid = json.loads(data)["id"]
        self.assertEqual(request(self.gw.port, "GET", "/v1/responses/" + rid, headers=AUTH)[0], 200)
        st, hdrs, got = request(self.gw.port, "DELETE", "/v1/responses/" + rid, headers=AUTH)
        self.assertEqual(st, 200, got)
        self.assertTrue(hdrs["content-type"].startswith("application/json"), hdrs)
        self.assertEqual(json.loads(got), {"id": rid, "object": "response", "deleted": True})
        # gone: GET, a second DELETE and a follow-up naming it
        for method in ("GET", "DELETE"):
            st, _, got = request(self.gw.port, method, "/v1/responses/" + rid, headers=AUTH)
            self.assertEqual(st, 404, (method, got))
            err = json.loads(got)["error"]
            self.assertEqual(err["type"], "invalid_request_error")
            self.assertIn(rid, err["message"])
        st, _, data = self.post({"model": MODEL, "previous_response_id": rid, "input": "again"})
        self.assertEqual(st, 400, data)
        self.assertEqual(json.loads(data)["error"]["param"], "previous_response_id")
        # unknown ids, no key, other methods
        self.assertEqual(request(self.gw.port, "DELETE", "/v1/responses/resp_unknown", headers=AUTH)[0], 404)
        self.assertEqual(request(self.gw.port, "DELETE", "/v1/responses/" + rid, headers={"authorization": "Bearer no"})[0],
                         401)
        st, hdrs, got = request(self.gw.port, "PUT", "/v1/responses/" + rid, {"x": 1}, headers=AUTH)
        self.assertEqual(st, 405, got)
        self.assertEqual(hdrs.get("allow"), "GET, DELETE")
        self.assertEqual(json.loads(got)["error"]["type"], "invalid_request_error")
        # a stream's stored response is deleted the same way
        st, _, data = self.post({"model": MODEL, "input": "stream it", "stream": True})
        self.assertEqual(st, 200, data)
        sid = events(self, data)[-1]["response"]["id"]
        self.assertEqual(request(self.gw.port, "DELETE", "/v1/responses/" + sid, headers=AUTH)[0], 200)
        self.assertEqual(request(self.gw.port, "GET", "/v1/responses/" + sid, headers=AUTH)[0], 404)

    def test_store_false_and_unknown_ids(self):
        st, _, data = self.post({"model": MODEL, "store": False, "input": "hi"})
        self.assertEqual(st, 200, data)
        rid = json.loads(data)["id"]
        self.assertFalse(json.loads(data)["store"])
        st, _, got = request(self.gw.port, "GET", "/v1/responses/" + rid, headers=AUTH)
        self.assertEqual(st, 404, got)
        self.assertEqual(json.loads(got)["error"]["type"], "invalid_request_error")
        st, _, data = self.post({"model": MODEL, "previous_response_id": rid, "input": "again"})
        self.assertEqual(st, 400, data)
        err = json.loads(data)["error"]
        self.assertEqual(err["param"], "previous_response_id")
        self.assertIn("not found", err["message"])
        st, _, got = request(self.gw.port, "GET", "/v1/responses/resp_unknown", headers=AUTH)
        self.assertEqual(st, 404)
        st, _, got = request(self.gw.port, "GET", "/v1/responses/resp_unknown", headers={"authorization": "Bearer wrong"})
        self.assertEqual(st, 401)

    def test_stored_object_is_the_one_sent(self):
        """The store keeps an object in parts (its fixed fields shared across entries, the echoed instructions and
        tools apart when 1 KB or longer, the id, output and usage its own): GET gives back what was sent byte for byte,
        short and long echoes, completed and incomplete, streamed and not, several responses sharing the same fixed
        fields."""
        long_tools = [dict(WEATHER, name="tool_%d" % i, description="Looks things up. " * 20) for i in range(4)]
        cases = [{}, {"instructions": "Answer briefly. " * 100, "tools": long_tools, "metadata": {"k": "v"}},
                 {"instructions": "Be terse.", "tools": long_tools}, {"instructions": "Answer briefly. " * 100},
                 {"max_output_tokens": 64, "input": "[[sim:text frames=3 size=8]] [[sim:exception after=1]]"}]
        for case in cases:
            for stream in (False, True):
                for _ in range(2):
                    body = dict({"model": MODEL, "input": "hi", "stream": stream}, **case)
                    st, _, data = self.post(body)
                    self.assertEqual(st, 200, data)
                    if stream:
                        sent = [line for line in data.decode().split("\n") if line.startswith("data: ")][-1][len("data: "):]
                        obj = json.loads(sent)["response"]
                    else:
                        sent, obj = data.decode(), json.loads(data)
                    st, _, got = request(self.gw.port, "GET", "/v1/responses/" + obj["id"], headers=AUTH)
                    self.assertEqual(st, 200, got)
                    if stream:
                        self.assertIn('"response":' + got.decode() + ',"sequence_number"', sent)
                    else:
                        self.assertEqual(got.decode(), sent)
                    self.assertEqual(json.loads(got)["instructions"], case.get("instructions"))
                    self.assertEqual(len(json.loads(got)["tools"]), len(case.get("tools", [])))

    def test_max_output_tokens_is_incomplete(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "input": "[[sim:text frames=3 size=8]] [[sim:exception after=1]]"})
        self.assertEqual(st, 200, data)
        evs = events(self, data)
        self.assertEqual(evs[-1]["type"], "response.incomplete")
        self.assertEqual(evs[-1]["response"]["incomplete_details"], {"reason": "max_output_tokens"})
        st, _, data = self.post({"model": MODEL, "input": "[[sim:exception after=0]]"})
        self.assertEqual(st, 200, data)
        r = json.loads(data)
        self.assertEqual((r["status"], r["output"]), ("incomplete", []))

    def test_failure_mid_stream(self):
        st, _, data = self.post({"model": MODEL, "stream": True, "input": '[[sim:text frames=3 size=5]][[sim:exception '
                                 'type=ThrottlingException after=2 message="slow down"]]'})
        self.assertEqual(st, 200, data)
        evs = events(self, data)
        self.assertEqual(evs[-1]["type"], "response.failed")
        r = evs[-1]["response"]
        self.assertEqual(r["status"], "failed")
        self.assertIn("slow down", r["error"]["message"])
        self.assertTrue(r["error"]["code"])

    def test_error_shapes(self):
        cases = [
            ({"model": MODEL, "input": 5}, AUTH, 400, "input", "expected a string or an array of items"),
            ({"model": MODEL, "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "file_search"}]}, AUTH, 400,
             "tools[1].type", "file_search"),
            ({"model": MODEL, "input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, AUTH, 400,
             "input[0].call_id", "is required"),
            ({"model": MODEL, "input": "x", "text": {"format": {"type": "yaml"}}}, AUTH, 400, "text.format.type", "yaml"),
            ({"model": "no-such-model", "input": "x"}, AUTH, 400, None, "no-such-model"),
            ({"model": MODEL, "input": "x"}, {"authorization": "Bearer wrong"}, 401, None, ""),
            ('{"model": "x", "input": [', AUTH, 400, None, "malformed JSON"),
        ]
        for body, headers, status, param, text in cases:
            st, h, data = self.post(body, headers=headers)
            self.assertEqual(st, status, (body, data))
            err = json.loads(data)["error"]
            self.assertEqual(set(err), {"message", "type", "param", "code"}, data)
            self.assertIn(text, err["message"])
            if param is not None:
                self.assertEqual(err["param"], param, data)
        st, _, data = request(self.gw.port, "PUT", "/v1/responses", {}, headers=AUTH)
        self.assertEqual(st, 405)
        self.assertIn("error", json.loads(data))

    def test_json_object_and_schema(self):
        for fmt in ({"type": "json_object"}, {"type": "json_schema", "name": "p", "schema": {"type": "object"}}):
            st, _, data = self.post({"model": MODEL, "input": "Give JSON", "text": {"format": fmt}})
            self.assertEqual(st, 200, data)
            self.assertEqual(json.loads(data)["text"]["format"]["type"], fmt["type"])
            st, _, sent = request(self.sim.port, "GET", "/sim/last-request")
            self.assertIn("Respond with a single valid JSON object", sent.decode())
        # nothing the gateway built was refused by the simulator's validator (the unknown model of test_error_shapes is
        # the one expected refusal)
        stats = self.sim.stats()
        self.assertLessEqual(set(stats["rejections_by_rule"]), {"model_unknown"}, stats)


class ResponsesPerClientKey(unittest.TestCase):
    """Stored responses belong to the client key that created them: another key (or the built-in one) gets the same 404 /
    400 as for an unknown id, so a response id leaked between team members reads nothing."""
    ADMIN = "admin-token-for-responses-scope-0123456789"

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.dir = tempfile.mkdtemp()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-responses-keys"], {
            "KIRO_ADMIN_TOKEN": cls.ADMIN, "KIRO_STATE_FILE": os.path.join(cls.dir, "state.json"), "KIRO_WORKERS": "2"}))
        cls.keys = []
        for name in ("alice", "bob"):
            st, _, b = request(cls.gw.port, "POST", "/api/admin/keys", body={"name": name},
                               headers={"authorization": "Bearer " + cls.ADMIN})
            assert st == 201, b
            cls.keys.append(json.loads(b)["key"])

    @classmethod
    def tearDownClass(cls):
        cls.gw.assert_clean_exit(unittest.TestCase())
        cls.gw.cleanup()
        cls.sim.cleanup()

    def test_another_key_cannot_read_or_continue_a_response(self):
        alice, bob = ({"authorization": "Bearer " + k} for k in self.keys)
        st, _, data = request(self.gw.port, "POST", "/v1/responses", {"model": MODEL, "input": "remember 42"}, headers=alice)
        self.assertEqual(st, 200, data)
        rid = json.loads(data)["id"]
        st, _, got = request(self.gw.port, "GET", "/v1/responses/" + rid, headers=alice)
        self.assertEqual(st, 200, got)
        self.assertEqual(json.loads(got)["id"], rid)
        for other in (bob, AUTH):
            st, _, got = request(self.gw.port, "GET", "/v1/responses/" + rid, headers=other)
            self.assertEqual(st, 404, got)
            st, _, data = request(self.gw.port, "POST", "/v1/responses",
                                  {"model": MODEL, "previous_response_id": rid, "input": "what number?"}, headers=other)
            self.assertEqual(st, 400, data)
            self.assertEqual(json.loads(data)["error"]["param"], "previous_response_id")
        st, _, data = request(self.gw.port, "POST", "/v1/responses",
                              {"model": MODEL, "previous_response_id": rid, "input": "what number?"}, headers=alice)
        self.assertEqual(st, 200, data)
        # another key's DELETE is a 404 like an unknown id's, and leaves the response to its owner
        for other in (bob, AUTH):
            st, _, got = request(self.gw.port, "DELETE", "/v1/responses/" + rid, headers=other)
            self.assertEqual(st, 404, got)
            self.assertEqual(json.loads(got)["error"]["type"], "invalid_request_error")
        self.assertEqual(request(self.gw.port, "GET", "/v1/responses/" + rid, headers=alice)[0], 200)
        st, _, got = request(self.gw.port, "DELETE", "/v1/responses/" + rid, headers=alice)
        self.assertEqual((st, json.loads(got)), (200, {"id": rid, "object": "response", "deleted": True}))
        self.assertEqual(request(self.gw.port, "GET", "/v1/responses/" + rid, headers=alice)[0], 404)


if __name__ == "__main__":
    main()
