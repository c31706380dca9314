"""Web search on the Responses API (POST /v1/responses with a web_search or web_search_preview tool), gateway + kiro-sim:
the search runs through Kiro's MCP endpoint on the same path as Anthropic's web_search server tool (http/websearch.c),
and the client sees what OpenAI's API shows:
1. search-only (web_search the only tool) and mixed (a function tool beside it), stream and non-stream: a web_search_call
   output item (ws_ id, status completed, action {type search, query, sources}) before the model's message, which saw the
   results; the stream's events in order (output_item.added, web_search_call.in_progress, .searching, .completed,
   output_item.done) with consecutive sequence numbers;
2. a failed search (MCP error) is a web_search_call with status failed (no .completed event); an empty one is completed
   with no sources; the model is told either way and answers;
3. a stored answer with a search continues through previous_response_id (its web_search_call item is accepted back), and a
   client sending the item itself in input (the Codex CLI's history) is accepted;
4. a request that does not make the model search is an ordinary answer (no web_search_call item)."""
import json
import unittest

from k2a import CLIENT_KEY, Gateway, Sim, main, parse_sse, request, sim_accounts_env
from test_responses_api import events

AUTH = {"authorization": "Bearer " + CLIENT_KEY}
MODEL = "claude-sonnet-4-5"
SHELL = {"type": "function", "name": "shell", "description": "Run a shell command",
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}


def titles(query):
    return ["Result %d: %s" % (i, query) for i in (1, 2, 3)]


class ResponsesWebSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-rws"], {"KIRO_WEB_SEARCH_TIMEOUT_MS": "500"}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def post(self, body):
        st, _, data = request(self.gw.port, "POST", "/v1/responses", body, headers=AUTH)
        self.assertEqual(st, 200, data[:2000])
        return data

    def run_search(self, query, stream, tools, store=None):
        """The answer's output items (the simulator's echo of the text before the directive dropped) and the response."""
        body = {"model": MODEL, "stream": stream, "tools": tools,
                "input": 'look it up [[sim:websearch query="%s"]]' % query}
        if store is not None:
            body["store"] = store
        data = self.post(body)
        if not stream:
            r = json.loads(data)
        else:
            evs = events(self, data)
            r = evs[-1]["response"]
            self.check_stream_order(evs)
        self.assertEqual(r["status"], "completed", r)
        output = r["output"]
        while output and output[0]["type"] == "message" and output[0]["content"][0]["text"].startswith("echo: "):
            output = output[1:]  # the text before the directive
        return output, r

    def check_stream_order(self, evs):
        """Each web_search_call item: added, in_progress, searching, [completed], done, in a row, before the next item."""
        ws = [e["item"]["id"] for e in evs if e["type"] == "response.output_item.added" and
              e["item"]["type"] == "web_search_call"]
        self.assertTrue(ws)
        for wid in ws:
            mine = [i for i, e in enumerate(evs) if e.get("item_id") == wid or e.get("item", {}).get("id") == wid]
            self.assertEqual(mine, list(range(mine[0], mine[0] + len(mine))), "the search's events are consecutive")
            types = [evs[i]["type"] for i in mine]
            done = evs[mine[-1]]["item"]
            want = ["response.output_item.added", "response.web_search_call.in_progress",
                    "response.web_search_call.searching"]
            if done["status"] == "completed":
                want.append("response.web_search_call.completed")
            self.assertEqual(types, want + ["response.output_item.done"])
            added = evs[mine[0]]["item"]
            self.assertEqual((added["type"], added["status"]), ("web_search_call", "in_progress"))
            for i in mine[1:]:
                self.assertEqual(evs[i]["output_index"], evs[mine[0]]["output_index"])

    def check_search(self, item, query, results):
        self.assertEqual(item["type"], "web_search_call", item)
        self.assertRegex(item["id"], r"^ws_[0-9a-f]{48}$")
        self.assertEqual(item["action"]["type"], "search")
        self.assertEqual(item["action"]["query"], query)
        self.assertEqual(item["status"], "completed")
        self.assertEqual(len(item["action"]["sources"]), results)
        for s in item["action"]["sources"]:
            self.assertEqual(s["type"], "url")
            self.assertTrue(s["url"].startswith("https://"), s)

    def test_search_only(self):
        q = "responses search"
        rejected = self.sim.stats()["rejections"]
        for stream in (False, True):
            for tool in ({"type": "web_search"}, {"type": "web_search_preview"}):
                output, _ = self.run_search(q, stream, [tool])
                self.assertEqual([o["type"] for o in output], ["web_search_call", "message"], output)
                self.check_search(output[0], q, 3)
                # the model's answer saw the results (the simulator echoes the tool result it got)
                text = output[1]["content"][0]["text"]
                self.assertIn('Web search results for the query "%s"' % q, text)
                self.assertIn(titles(q)[0], text)
        self.assertEqual(self.sim.stats()["rejections"], rejected)

    def test_mixed_tools(self):
        q = "mixed responses search"
        for stream in (False, True):
            output, r = self.run_search(q, stream, [SHELL, {"type": "web_search"}])
            self.assertEqual([o["type"] for o in output], ["web_search_call", "message"], output)
            self.check_search(output[0], q, 3)
            self.assertIn('Web search results for the query "%s"' % q, output[1]["content"][0]["text"])
            self.assertEqual([t["type"] for t in r["tools"]], ["function", "web_search"])

    def test_mixed_then_function_call(self):
        # after the search the model calls the client's function: the answer ends with the function_call
        q = "search then shell [[sim:tool name=shell]]"
        for stream in (False, True):
            output, _ = self.run_search(q, stream, [SHELL, {"type": "web_search"}])
            types = [o["type"] for o in output]
            self.assertEqual(types[0], "web_search_call", output)
            self.assertEqual(types[-1], "function_call", output)
            self.assertEqual(output[-1]["name"], "shell")

    def test_failed_search(self):
        for stream in (False, True):
            q = "broken [[mcp:error]]"
            output, _ = self.run_search(q, stream, [{"type": "web_search"}])
            self.assertEqual([o["type"] for o in output], ["web_search_call", "message"], output)
            self.assertEqual(output[0]["status"], "failed")
            self.assertEqual(output[0]["action"], {"type": "search", "query": q, "sources": []})
            self.assertIn('Web search results for the query "%s"' % q, output[1]["content"][0]["text"])

    def test_empty_search(self):
        for stream in (False, True):
            q = "nothing [[mcp:empty]]"
            output, _ = self.run_search(q, stream, [{"type": "web_search"}])
            self.assertEqual([o["type"] for o in output], ["web_search_call", "message"], output)
            self.check_search(output[0], q, 0)

    def test_previous_response_id(self):
        q = "stored search"
        _, r = self.run_search(q, False, [{"type": "web_search"}], store=True)
        follow = {"model": MODEL, "previous_response_id": r["id"], "input": "thanks", "tools": [{"type": "web_search"}]}
        r2 = json.loads(self.post(follow))
        self.assertEqual(r2["status"], "completed")
        self.assertEqual([o["type"] for o in r2["output"]], ["message"])
        # the same history sent by the client itself, its web_search_call item included
        body = {"model": MODEL, "tools": [{"type": "web_search"}],
                "input": [{"role": "user", "content": "look it up"}] + r["output"] + [{"role": "user", "content": "thanks"}]}
        r3 = json.loads(self.post(body))
        self.assertEqual([o["type"] for o in r3["output"]], ["message"])

    def test_no_search_asked(self):
        for stream in (False, True):
            data = self.post({"model": MODEL, "stream": stream, "tools": [{"type": "web_search"}], "input": "hello"})
            r = events(self, data)[-1]["response"] if stream else json.loads(data)
            self.assertEqual([o["type"] for o in r["output"]], ["message"])
            if stream:
                self.assertFalse([e for e, _ in parse_sse(data) if e and "web_search_call" in e])


if __name__ == "__main__":
    main()
