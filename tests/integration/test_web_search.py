"""Web search (Anthropic's web_search server tool) through Kiro's MCP endpoint, gateway + kiro-sim:
1. a request whose only tool is web_search, non-stream and stream: the documented block sequence (text announcing the
   search, server_tool_use srvtoolu_<hex> {query}, web_search_tool_result with the simulator's results, then the model's
   answer, which saw the results), usage.server_tool_use.web_search_requests, the MCP call's headers and body;
2. the official Anthropic SDK (create and stream) gets the same blocks;
3. the real Claude Code CLI runs its WebSearch tool and its answer holds the simulator's result titles;
4. errors: an MCP error, no result, a timeout: still the whole sequence with no result, and the model told so;
5. the query never reaches the log at INFO;
6. web_search beside a client tool (Bash): the model asks for a search mid-turn ([[sim:websearch]]), the gateway runs it
   and the model continues within the same answer; max_uses bounds the loop (a request past it gets max_uses_exceeded);
7. OpenAI's web_search_options is a clear 400.
The npm-client tests are skipped only when tests/clients is not installed."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from k2a import CLIENT_KEY, SIM_MODE_ARGS, SLOW, SOURCE_DIR, Gateway, Sim, main, parse_sse, request, sim_accounts_env

CLIENTS = os.path.join(SOURCE_DIR, "tests", "clients")
CLAUDE = os.path.join(CLIENTS, "node_modules", ".bin", "claude")
TOOL = {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}


def ws_request(query, stream=False, tools=None):
    return {"model": "claude-sonnet-4-5", "max_tokens": 400, "stream": stream, "tools": tools or [TOOL],
            "messages": [{"role": "user", "content": "Perform a web search for the query: " + query}]}


def titles(query):
    return ["Result %d: %s" % (i, query) for i in (1, 2, 3)]


class WebSearch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-websearch"], {"KIRO_WEB_SEARCH_TIMEOUT_MS": "500"}))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def post(self, body):
        st, _, data = request(self.gw.port, "POST", "/v1/messages", body, key=CLIENT_KEY)
        self.assertEqual(st, 200, data[:2000])
        return data

    def check_blocks(self, content, query, results):
        types = [b["type"] for b in content]
        self.assertEqual(types, ["text", "server_tool_use", "web_search_tool_result", "text"], content)
        self.assertEqual(content[0]["text"], 'I\'ll search for "%s".' % query)
        stu, wsr = content[1], content[2]
        self.assertRegex(stu["id"], r"^srvtoolu_[0-9a-f]{32}$")
        self.assertEqual((stu["name"], stu["input"]), ("web_search", {"query": query}))
        self.assertEqual(wsr["tool_use_id"], stu["id"])
        self.assertEqual([r["title"] for r in wsr["content"]], results)
        for r in wsr["content"]:
            self.assertEqual(r["type"], "web_search_result")
            self.assertTrue(r["url"].startswith("https://"), r)
            self.assertIn(query, r["encrypted_content"])
            self.assertRegex(r["page_age"], r"^[A-Z][a-z]+ \d{1,2}, 20\d\d$")
        return content[3]["text"]

    def test_non_stream(self):
        q = "kiro gateway news"
        rejected = self.sim.stats()["rejections"]
        m = json.loads(self.post(ws_request(q)))
        answer = self.check_blocks(m["content"], q, titles(q))
        # the model saw the results: the simulator echoes the start of the current user message it got
        self.assertIn('Web search results for the query "%s"' % q, answer)
        self.assertEqual(m["stop_reason"], "end_turn")
        self.assertEqual(m["usage"]["server_tool_use"], {"web_search_requests": 1})
        self.assertEqual(self.sim.stats()["rejections"], rejected)

    def test_stream(self):
        q = "streaming search"
        events = parse_sse(self.post(ws_request(q, stream=True)))
        data = [(e, json.loads(d)) for e, d in events if e not in (None, ":comment", "ping")]
        self.assertEqual(data[0][0], "message_start")
        self.assertEqual(data[-1][0], "message_stop")
        blocks, texts = {}, {}
        for e, d in data:
            if e == "content_block_start":
                blocks[d["index"]] = d["content_block"]
            elif e == "content_block_delta" and d["delta"]["type"] == "text_delta":
                texts[d["index"]] = texts.get(d["index"], "") + d["delta"]["text"]
        self.assertEqual(sorted(blocks), [0, 1, 2, 3])
        content = []
        for i in range(4):
            b = dict(blocks[i])
            if b["type"] == "text":
                b["text"] = texts.get(i, "")
            content.append(b)
        self.check_blocks(content, q, titles(q))
        delta = [d for e, d in data if e == "message_delta"][0]
        self.assertEqual(delta["delta"]["stop_reason"], "end_turn")
        self.assertEqual(delta["usage"]["server_tool_use"], {"web_search_requests": 1})

    def check_failed(self, query, clean):
        for stream in (False, True):
            data = self.post(ws_request(query, stream=stream))
            if stream:
                evs = [(e, json.loads(d)) for e, d in parse_sse(data) if e not in (None, ":comment", "ping")]
                self.assertEqual(evs[-1][0], "message_stop")
                self.assertFalse([e for e, _ in evs if e == "error"])
                starts = [d["content_block"] for e, d in evs if e == "content_block_start"]
                self.assertEqual([b["type"] for b in starts], ["text", "server_tool_use", "web_search_tool_result", "text"])
                self.assertEqual(starts[2]["content"], [])
                answer = "".join(d["delta"].get("text", "") for e, d in evs if e == "content_block_delta" and d["index"] == 3)
            else:
                m = json.loads(data)
                answer = self.check_blocks(m["content"], clean, [])
            self.assertIn('Web search results for the query "%s"' % clean, answer)

    def test_mcp_error(self):
        self.check_failed("broken search [[mcp:error]]", "broken search [[mcp:error]]")

    def test_no_result(self):
        self.check_failed("nothing at all [[mcp:empty]]", "nothing at all [[mcp:empty]]")

    def test_timeout(self):
        # KIRO_WEB_SEARCH_TIMEOUT_MS=500: a search that takes 3 s ends with no result, the answer still comes
        self.check_failed("slow search [[mcp:stall ms=3000]]", "slow search [[mcp:stall ms=3000]]")

    def test_query_not_logged_at_info(self):
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-wslog"], {"LOG_LEVEL": "info"}))
        try:
            q = "very private query 4711"
            st, _, data = request(gw.port, "POST", "/v1/messages", ws_request(q), key=CLIENT_KEY)
            self.assertEqual(st, 200, data)
            self.assertEqual([r["title"] for r in json.loads(data)["content"][2]["content"]], titles(q))
            log = gw.stderr()
            self.assertIn("web search: 3 results", log)
            self.assertNotIn("4711", log)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()

    def mixed(self, content, max_uses, stream):
        bash = {"name": "Bash", "description": "run a command",
                "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]}}
        body = {"model": "claude-sonnet-4-5", "max_tokens": 400, "stream": stream,
                "tools": [dict(TOOL, max_uses=max_uses), bash], "messages": [{"role": "user", "content": content}]}
        data = self.post(body)
        if not stream:
            m = json.loads(data)
            return self.strip_echo(m["content"]), m["stop_reason"], m["usage"]
        evs = [(e, json.loads(d)) for e, d in parse_sse(data) if e not in (None, ":comment", "ping")]
        self.assertEqual(evs[-1][0], "message_stop")
        blocks = {}
        for e, d in evs:
            if e == "content_block_start":
                self.assertNotIn(d["index"], blocks)
                blocks[d["index"]] = dict(d["content_block"])
            elif e == "content_block_delta" and d["delta"]["type"] == "text_delta":
                blocks[d["index"]]["text"] += d["delta"]["text"]
        self.assertEqual(sorted(blocks), list(range(len(blocks))))
        delta = [d for e, d in evs if e == "message_delta"][0]
        content = [blocks[i] for i in range(len(blocks))]
        return self.strip_echo(content), delta["delta"]["stop_reason"], delta["usage"]

    @staticmethod
    def strip_echo(content):
        # the simulator may echo the text around a directive before the search request: not part of what is checked
        return content[1:] if content and content[0]["type"] == "text" and content[0]["text"].startswith("echo: ") and \
            len(content) > 1 and content[1]["type"] == "server_tool_use" else content

    def test_mixed_tools_loop(self):
        q = "mixed search"
        rejected = self.sim.stats()["rejections"]
        for stream in (False, True):
            content, stop, usage = self.mixed('look it up [[sim:websearch query="%s"]]' % q, 3, stream)
            self.assertEqual([b["type"] for b in content], ["server_tool_use", "web_search_tool_result", "text"], content)
            self.assertEqual(content[0]["input"], {"query": q})
            self.assertEqual(content[1]["tool_use_id"], content[0]["id"])
            self.assertEqual([r["title"] for r in content[1]["content"]], titles(q))
            # the continuation: the model got the results as the search's tool result
            self.assertIn('Web search results for the query "%s"' % q, content[2]["text"])
            self.assertEqual(stop, "end_turn")
            self.assertEqual(usage["server_tool_use"], {"web_search_requests": 1})
        self.assertEqual(self.sim.stats()["rejections"], rejected)

    def test_mixed_max_uses(self):
        # the first search's results carry a second search request: with max_uses 1 it is refused, the model is told
        q = "loop [[sim:websearch query=again]]"
        for stream in (False, True):
            content, stop, usage = self.mixed('go [[sim:websearch query="%s"]]' % q, 1, stream)
            # the model's text between the searches (the simulator's echo) is not what is checked here
            self.assertEqual(content[-1]["type"], "text")
            self.assertIn("No search was run", content[-1]["text"])
            content = [b for b in content if b["type"] != "text"]
            self.assertEqual([b["type"] for b in content],
                             ["server_tool_use", "web_search_tool_result", "server_tool_use", "web_search_tool_result"], content)
            self.assertEqual(len(content[1]["content"]), 3)
            self.assertEqual(content[2]["input"], {"query": "again"})
            self.assertEqual(content[3]["content"], {"type": "web_search_tool_result_error", "error_code": "max_uses_exceeded"})
            self.assertEqual(stop, "end_turn")
            self.assertEqual(usage["server_tool_use"], {"web_search_requests": 1})

    def test_sim_mcp_endpoint(self):
        sim = self.sim
        st, _, data = request(sim.port, "POST", "/refreshToken", {"refreshToken": "sim-ok-mcpdirect"})
        self.assertEqual(st, 200, data)
        tok = json.loads(data)
        call = {"id": "web_search_tooluse_x", "jsonrpc": "2.0", "method": "tools/call",
                "params": {"name": "web_search", "arguments": {"query": "direct q"}}}
        auth = {"authorization": "Bearer " + tok["accessToken"]}
        # no profile ARN header: 400 with Kiro's wording
        st, _, data = request(sim.port, "POST", "/mcp", call, headers=auth)
        self.assertEqual((st, json.loads(data)), (400, {"message": "profileArn is required for this request."}))
        # no bearer: 403
        st, _, _ = request(sim.port, "POST", "/mcp", call, headers={"x-amzn-kiro-profile-arn": tok["profileArn"]})
        self.assertEqual(st, 403)
        hdr = dict(auth, **{"x-amzn-kiro-profile-arn": tok["profileArn"]})
        # region-prefixed paths exist in the simulator's 2026 mode only
        for path in ("/mcp",) if "--legacy-2025" in SIM_MODE_ARGS else ("/mcp", "/us-east-1/mcp"):
            st, _, data = request(sim.port, "POST", path, call, headers=hdr)
            self.assertEqual(st, 200, data)
            doc = json.loads(data)
            self.assertEqual((doc["id"], doc["jsonrpc"], doc["result"]["isError"]), ("web_search_tooluse_x", "2.0", False))
            inner = json.loads(doc["result"]["content"][0]["text"])
            self.assertEqual([r["title"] for r in inner["results"]], titles("direct q"))
            self.assertEqual(set(inner["results"][0]), {"title", "url", "snippet", "publishedDate", "id", "domain",
                                                        "maxVerbatimWordLimit", "publicDomain"})
            self.assertEqual((inner["totalResults"], inner["query"], inner["error"]), (3, "direct q", None))
        # a malformed call and the error directive: JSON-RPC errors
        st, _, data = request(sim.port, "POST", "/mcp", dict(call, method="tools/list"), headers=hdr)
        self.assertEqual((st, json.loads(data)["error"]["code"]), (200, -32601))
        bad = dict(call, params={"name": "web_search", "arguments": {"query": "x [[mcp:error]]"}})
        st, _, data = request(sim.port, "POST", "/mcp", bad, headers=hdr)
        self.assertEqual((st, json.loads(data)["error"]["code"]), (200, -32603))

    def test_openai_web_search_options(self):
        body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}], "web_search_options": {}}
        st, _, data = request(self.gw.port, "POST", "/v1/chat/completions", body, key=CLIENT_KEY)
        self.assertEqual(st, 400, data)
        self.assertIn("web_search_options", json.loads(data)["error"]["message"])

    def test_sdk(self):
        if shutil.which("node") is None or not os.path.isdir(os.path.join(CLIENTS, "node_modules", "@anthropic-ai", "sdk")):
            self.skipTest("the npm test clients are not installed (run `make deps-test` or deps/npm.sh)")
        q = "sdk search"
        env = dict(os.environ, K2A_BASE_URL="http://127.0.0.1:%d" % self.gw.port, K2A_KEY=CLIENT_KEY, K2A_QUERY=q)
        for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "HTTPS_PROXY", "HTTP_PROXY"):
            env.pop(k, None)
        r = subprocess.run(["node", os.path.join(CLIENTS, "web_search_sdk.mjs")], cwd=CLIENTS, env=env, capture_output=True,
                           text=True, timeout=120 * SLOW)
        self.assertEqual(r.returncode, 0, "node failed:\n%s\n%s" % (r.stdout, r.stderr))
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.check_blocks(out["create"]["content"], q, titles(q))
        self.assertEqual(out["create"]["usage"]["server_tool_use"], {"web_search_requests": 1})
        self.check_blocks(out["stream"]["final"]["content"], q, titles(q))
        self.assertIn("start:web_search_tool_result", out["stream"]["types"])

    def test_claude_code_web_search(self):
        if not os.access(CLAUDE, os.X_OK):
            self.skipTest("Claude Code is not installed in tests/clients (run `make deps-test` or deps/npm.sh)")
        q = "kiro sim weather"
        home, cwd = tempfile.mkdtemp(prefix="k2a-cc-home-"), tempfile.mkdtemp(prefix="k2a-cc-cwd-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
               "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.gw.port, "ANTHROPIC_API_KEY": CLIENT_KEY,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
               "DISABLE_ERROR_REPORTING": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
               # models Kiro serves (this Claude Code's default is not one: see test_client_claude_code.py)
               "ANTHROPIC_MODEL": "claude-opus-4-8", "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku-4-5",
               "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"}
        prompt = 'search the web for %s [[sim:tool name=WebSearch input={"query":"%s"}]]' % (q, q)
        log_mark = len(self.gw.stderr())
        try:
            r = subprocess.run([CLAUDE, "-p", prompt, "--output-format", "json", "--allowedTools", "WebSearch"], env=env,
                               cwd=cwd, capture_output=True, text=True, timeout=120 * SLOW, stdin=subprocess.DEVNULL)
        finally:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(cwd, ignore_errors=True)
        why = "exit %d\nstdout:\n%s\nstderr:\n%s\ngateway:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:],
                                                                    self.gw.stderr()[log_mark:][-5000:])
        self.assertEqual(r.returncode, 0, why)
        result = json.loads([l for l in r.stdout.splitlines() if l.strip().startswith("{")][-1])
        self.assertEqual((result["subtype"], result["is_error"]), ("success", False), why)
        # the main model got WebSearch's tool_result (echoed by the simulator): it names the simulator's first result
        self.assertIn(titles(q)[0], result["result"], why)
        self.assertEqual(result.get("permission_denials", []), [], why)
        self.assertIn("web search: 3 results", self.gw.stderr()[log_mark:], why)


if __name__ == "__main__":
    main()
