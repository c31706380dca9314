"""The official @anthropic-ai/sdk (tests/clients/anthropic_sdk.mjs, run with node) against the gateway + kiro-sim:
messages.create, messages.stream with a tool (inputJson pieces concatenate to the directive's input, finalMessage),
messages.countTokens (== the input tokens of message_start), and NotFoundError for an unknown model. Skipped only when
the npm clients are not installed (make deps-test / deps/npm.sh installs them; make test always does)."""
import json
import os
import shutil
import subprocess
import unittest

from k2a import CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, sim_accounts_env

CLIENTS = os.path.join(SOURCE_DIR, "tests", "clients")
SCRIPT = os.path.join(CLIENTS, "anthropic_sdk.mjs")


class AnthropicSdk(unittest.TestCase):
    def test_sdk(self):
        if shutil.which("node") is None or not os.path.isdir(os.path.join(CLIENTS, "node_modules", "@anthropic-ai", "sdk")):
            self.skipTest("the npm test clients are not installed (run `make deps-test` or deps/npm.sh)")
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-sdk"]))
        try:
            env = dict(os.environ, K2A_BASE_URL="http://127.0.0.1:%d" % gw.port, K2A_KEY=CLIENT_KEY,
                       K2A_MODEL="claude-sonnet-4-5")
            for k in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "HTTPS_PROXY", "HTTP_PROXY",
                      "https_proxy", "http_proxy"):
                env.pop(k, None)
            r = subprocess.run(["node", SCRIPT], cwd=CLIENTS, env=env, capture_output=True, text=True, timeout=120 * SLOW)
            self.assertEqual(r.returncode, 0, "node failed:\n%s\n%s\ngateway:\n%s" % (r.stdout, r.stderr, gw.stderr()[-3000:]))
            out = json.loads(r.stdout.strip().splitlines()[-1])

            m = out["create"]
            self.assertRegex(m["id"], r"^msg_")
            self.assertEqual((m["type"], m["role"], m["model"]), ("message", "assistant", "claude-sonnet-4-5"))
            self.assertEqual(m["content"], [{"type": "text", "text": "echo: hello from the sdk"}])
            self.assertEqual(m["stop_reason"], "end_turn")
            self.assertGreater(m["usage"]["input_tokens"], 0)
            self.assertGreater(m["usage"]["output_tokens"], 0)

            s = out["stream"]
            final = s["final"]
            self.assertEqual(final["stop_reason"], "tool_use")
            self.assertEqual([b["type"] for b in final["content"]], ["text", "tool_use"])
            self.assertEqual(final["content"][0]["text"], "Let me look.")
            self.assertEqual("".join(s["texts"]), "Let me look.")
            tool = final["content"][1]
            self.assertEqual(tool["name"], "get_weather")
            self.assertEqual(tool["input"], s["args"])  # the SDK's parsed object equals the directive's input
            self.assertGreaterEqual(len(s["partials"]), 2)
            self.assertEqual(json.loads("".join(s["partials"])), s["args"])
            self.assertEqual(s["lastSnapshot"], s["args"])
            self.assertEqual(s["types"][0], "message_start")
            self.assertEqual(s["types"][-1], "message_stop")
            self.assertGreater(final["usage"]["output_tokens"], 0)

            ct = out["countTokens"]
            self.assertEqual(ct["input_tokens"], s["startUsage"]["input_tokens"])
            self.assertEqual(ct["input_tokens"], final["usage"]["input_tokens"])

            um = out["unknownModel"]
            self.assertEqual((um["thrown"], um["badRequest"], um["status"], um["type"]), (True, True, 400, "invalid_request_error"))
            self.assertIn("claude-no-such-model", um["message"])
            self.assertIn("claude-sonnet-4.5", um["message"])  # the available models are listed
            # the one rejection allowed: Kiro's INVALID_MODEL_ID for the unknown model, when it was asked before the account's
            # catalog arrived (the catalog is fetched in the background after the first refresh)
            stats = sim.stats()
            self.assertLessEqual(stats["rejections"], 1, stats)
            if stats["rejections"] == 1:
                self.assertEqual(stats["last_rejection"], "model_unknown", stats)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
