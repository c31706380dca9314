"""The official openai npm package's Responses API (tests/clients/openai_responses.mjs, run with node) against the
gateway + kiro-sim: responses.create (output_text, usage), responses.stream with a function tool (the argument deltas
concatenate to the directive's input, finalResponse), a two-turn function-call loop with the full history, the same
round through previous_response_id (and a third turn chained on it, streamed), responses.retrieve, BadRequestError
with the JSON path as param, and web search (web_search_preview and web_search tools: the web_search_call item, its
stream events in order, the answer from the results). Skipped only when the npm clients are not installed (make deps-test / deps/npm.sh)."""
import json
import os
import shutil
import subprocess
import unittest

from k2a import CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, sim_accounts_env

CLIENTS = os.path.join(SOURCE_DIR, "tests", "clients")
SCRIPT = os.path.join(CLIENTS, "openai_responses.mjs")


class OpenAIResponsesSdk(unittest.TestCase):
    def test_sdk(self):
        if shutil.which("node") is None or not os.path.isdir(os.path.join(CLIENTS, "node_modules", "openai")):
            self.skipTest("the npm test clients are not installed (run `make deps-test` or deps/npm.sh)")
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-responses-sdk"]))
        try:
            env = dict(os.environ, K2A_BASE_URL="http://127.0.0.1:%d/v1" % gw.port, K2A_KEY=CLIENT_KEY,
                       K2A_MODEL="claude-sonnet-4-5")
            for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
                env.pop(k, None)
            r = subprocess.run(["node", SCRIPT], cwd=CLIENTS, env=env, capture_output=True, text=True, timeout=120 * SLOW)
            self.assertEqual(r.returncode, 0, "node failed:\n%s\n%s\ngateway:\n%s" % (r.stdout, r.stderr, gw.stderr()[-3000:]))
            out = json.loads(r.stdout.strip().splitlines()[-1])

            c = out["create"]
            self.assertRegex(c["id"], r"^resp_")
            self.assertEqual(c["status"], "completed")
            self.assertEqual(c["output_text"], "echo: hello from the sdk")
            self.assertEqual(c["usage"]["total_tokens"], c["usage"]["input_tokens"] + c["usage"]["output_tokens"])

            s = out["stream"]
            f = s["final"]
            self.assertEqual(f["status"], "completed")
            self.assertEqual([o["type"] for o in f["output"]], ["message", "function_call"])
            self.assertEqual(f["output_text"], "Let me look.")
            self.assertEqual("".join(s["textDeltas"]), "Let me look.")
            self.assertGreaterEqual(len(s["argDeltas"]), 2)
            self.assertEqual(json.loads("".join(s["argDeltas"])), s["args"])
            self.assertEqual(json.loads(f["output"][1]["arguments"]), s["args"])
            self.assertEqual(s["types"][:2], ["response.created", "response.in_progress"])
            self.assertEqual(s["types"][-1], "response.completed")
            for t in ("response.output_item.added", "response.content_part.added", "response.output_text.done",
                      "response.function_call_arguments.done", "response.output_item.done"):
                self.assertIn(t, s["types"])

            self.assertEqual(out["loop"]["status"], "completed")
            self.assertEqual(out["loop"]["output_text"], 'echo: {"temp":18}')
            self.assertEqual(out["chained"]["status"], "completed")
            self.assertEqual(out["chained"]["previous_response_id"], f["id"])
            self.assertEqual(out["chained"]["output_text"], "echo: sunny")
            self.assertEqual(out["chained2"]["text"], "echo: and tomorrow?")
            self.assertEqual(out["retrieve"], {"id": c["id"], "output_text": c["output_text"]})

            b = out["bad"]
            self.assertTrue(b["thrown"] and b["badRequest"], b)
            self.assertEqual((b["status"], b["param"]), (400, "tools[0].type"))
            self.assertIn("file_search", b["message"])

            # web search: a web_search_call item before the answer written from the results
            for w in (out["webSearch"], out["webSearchStream"]):
                calls = [o for o in w["output"] if o["type"] == "web_search_call"]
                self.assertEqual(len(calls), 1, w["output"])
                self.assertEqual(calls[0]["status"], "completed")
                self.assertEqual(calls[0]["action"]["query"], "sdk web search")
                self.assertEqual(len(calls[0]["action"]["sources"]), 3)
                self.assertEqual(w["output"][-1]["type"], "message")
                self.assertIn("Result 1: sdk web search", w["output_text"])
            t = out["webSearchStream"]["types"]
            i = t.index("response.web_search_call.in_progress")
            self.assertEqual(t[i - 1:i + 4], ["response.output_item.added", "response.web_search_call.in_progress",
                                              "response.web_search_call.searching", "response.web_search_call.completed",
                                              "response.output_item.done"])
            self.assertEqual(t[-1], "response.completed")
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
