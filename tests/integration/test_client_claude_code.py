"""The Claude Code CLI (tests/clients/node_modules/.bin/claude, print mode) against the gateway + kiro-sim, offline: a fresh
HOME and working directory, ANTHROPIC_BASE_URL pointing at the gateway, non-essential traffic, telemetry and the
auto-updater off.
1. a plain turn: `claude -p` with a [[sim:text]] directive succeeds (subtype success, one turn) with the simulator's text;
2. a tool turn: the simulator calls Bash (`echo hi-from-tool`), Claude Code really runs it (--allowedTools Bash) and sends
   the tool_result in a second request, which carries no directive, so the simulator echoes the tool output: the result
   holds "hi-from-tool" after two turns.
Every request Claude Code made got a non-error answer (the gateway's access log), and the validator refused none.
Skipped only when the npm clients are not installed (make deps-test / deps/npm.sh; make test always installs them)."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import unittest

from e2e_util import gentext
from k2a import CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, request, sim_accounts_env

CLAUDE = os.path.join(SOURCE_DIR, "tests", "clients", "node_modules", ".bin", "claude")
ACCESS = re.compile(r" (HEAD|GET|POST|PUT|DELETE|OPTIONS|PATCH) (\S+) -> (\d{3}) ")


class ClaudeCode(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(CLAUDE, os.X_OK):
            raise unittest.SkipTest("Claude Code is not installed in tests/clients (run `make deps-test` or deps/npm.sh)")
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-claude-code"]))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def claude(self, prompt, *args):
        """Runs `claude -p prompt --output-format json args...`; returns the parsed result and the access-log lines it caused."""
        home, cwd = tempfile.mkdtemp(prefix="k2a-cc-home-"), tempfile.mkdtemp(prefix="k2a-cc-cwd-")
        log_mark = len(self.gw.stderr())
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
               "ANTHROPIC_BASE_URL": "http://127.0.0.1:%d" % self.gw.port, "ANTHROPIC_API_KEY": CLIENT_KEY,
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1",
               "DISABLE_ERROR_REPORTING": "1", "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
               # this Claude Code's default (claude-opus-5-5) is not a Kiro model: the gateway never downgrades it
               # silently (test_default_model_not_on_kiro_is_a_clear_error), so pick models Kiro serves
               "ANTHROPIC_MODEL": "claude-opus-4-8", "ANTHROPIC_SMALL_FAST_MODEL": "claude-haiku-4-5",
               "ANTHROPIC_DEFAULT_HAIKU_MODEL": "claude-haiku-4-5"}
        env.update(getattr(self, "extra_env", {}))
        try:
            r = subprocess.run([CLAUDE, "-p", prompt, "--output-format", "json"] + list(args), env=env, cwd=cwd,
                               capture_output=True, text=True, timeout=60 * SLOW, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            self.fail("claude timed out; stderr:\n%s\ngateway:\n%s" % (e.stderr, self.gw.stderr()[log_mark:][-4000:]))
        finally:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(cwd, ignore_errors=True)
        log = self.gw.stderr()[log_mark:]
        why = "exit %d\nstdout:\n%s\nstderr:\n%s\ngateway:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:], log[-4000:])
        self.assertEqual(r.returncode, 0, why)
        lines = [l for l in r.stdout.splitlines() if l.strip().startswith("{")]
        self.assertTrue(lines, why)
        result = json.loads(lines[-1])
        requests = ACCESS.findall(log)
        # every request Claude Code made got a sensible answer
        self.assertTrue(requests, why)
        for method, path, status in requests:
            self.assertLess(int(status), 400, "%s %s -> %s\n%s" % (method, path, status, why))
        return result, requests, why

    def test_head_probe(self):
        # Claude Code 2.1.197 starts with HEAD / and no key (a connectivity check): it must get an answer, not an error
        st, _, _ = request(self.gw.port, "HEAD", "/")
        self.assertLess(st, 400)

    def test_plain_turn(self):
        before = self.sim.stats()["generates_total"]
        result, requests, why = self.claude("say hi [[sim:text frames=3 size=10]]")
        self.assertEqual((result["type"], result["subtype"], result["is_error"]), ("result", "success", False), why)
        self.assertEqual(result["result"].strip(), gentext(3, 10).strip(), why)
        self.assertEqual(result["num_turns"], 1)
        self.assertIn(("POST", "/v1/messages", "200"), requests)
        self.assertEqual(self.sim.stats()["generates_total"] - before, 1)
        self.assertEqual(self.sim.stats()["rejections"], 0)

    def test_answer_held_open_after_metering_ends_at_once(self):
        # Kiro often keeps the connection open after its last frame (meteringEvent): the run must end when the answer is
        # complete, not when the upstream idle timeout (300 s) fires; 30 s is a hang check, not a performance figure
        t0 = time.monotonic()
        result, requests, why = self.claude("say hi [[sim:text frames=3 size=10]] [[sim:keepopen]]")
        took = time.monotonic() - t0
        self.assertEqual((result["type"], result["subtype"], result["is_error"]), ("result", "success", False), why)
        self.assertEqual(result["result"].strip(), gentext(3, 10).strip(), why)
        self.assertLess(took, 30 * SLOW, why)

    def test_bash_tool_turn(self):
        before = self.sim.stats()["generates_total"]
        directive = '[[sim:tool name=Bash input={"command":"echo hi-from-tool","description":"say hi"} pieces=3]]'
        result, requests, why = self.claude("run the command " + directive, "--allowedTools", "Bash")
        self.assertEqual((result["subtype"], result["is_error"]), ("success", False), why)
        self.assertIn("hi-from-tool", result["result"], why)
        self.assertEqual(result["num_turns"], 2, why)
        self.assertEqual(result.get("permission_denials", []), [], why)
        # the tool call and the follow-up carrying its result, both accepted upstream
        self.assertEqual([r for r in requests if r[1].startswith("/v1/messages")], [("POST", "/v1/messages", "200")] * 2)
        self.assertEqual(self.sim.stats()["generates_total"] - before, 2)
        self.assertEqual(self.sim.stats()["rejections"], 0)


if __name__ == "__main__":
    main()
