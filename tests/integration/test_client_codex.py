"""The real Codex CLI (tests/clients/node_modules/.bin/codex, `codex exec`) against the gateway + kiro-sim, offline: a
fresh CODEX_HOME whose config.toml names a custom model provider with wire_api = "responses" and the gateway as base_url
(key from an env var), plugins, analytics and update checks off, every other address sent to a dead loopback proxy.
The simulator answers the first request with a call of Codex's exec_command tool; Codex really runs the command (no
sandbox, no approvals), sends its output back in a second POST /v1/responses, which carries no directive, so the
simulator echoes the tool output and the session ends: exit 0, the file the command wrote exists, the final message
holds the command's output, and every request Codex made got a 200. A second session runs a web search: Codex declares
its web_search tool, the simulator's model asks for a search, the gateway runs it through kiro-sim's MCP endpoint and
streams a web_search_call item, and Codex's final message holds the results the model saw. Skipped only when the npm
clients are not installed (make deps-test / deps/npm.sh)."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from k2a import CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, sim_accounts_env

CODEX = os.path.join(SOURCE_DIR, "tests", "clients", "node_modules", ".bin", "codex")
ACCESS = re.compile(r" (HEAD|GET|POST|PUT|DELETE|OPTIONS|PATCH) (\S+) -> (\d{3}) ")

CONFIG = """model = "claude-sonnet-4-5"
model_provider = "kiro2api"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[model_providers.kiro2api]
name = "kiro2api"
base_url = "http://127.0.0.1:%d/v1"
wire_api = "responses"
env_key = "KIRO2API_KEY"
request_max_retries = 0
stream_max_retries = 0

[features]
plugins = false

[analytics]
enabled = false
"""


class CodexCli(unittest.TestCase):
    def test_exec_shell_round_trip(self):
        if not os.access(CODEX, os.X_OK):
            self.skipTest("the Codex CLI is not installed in tests/clients (run `make deps-test` or deps/npm.sh)")
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-codex"]))
        home, cwd = tempfile.mkdtemp(prefix="k2a-codex-home-"), tempfile.mkdtemp(prefix="k2a-codex-cwd-")
        try:
            with open(os.path.join(home, "config.toml"), "w") as f:
                f.write(CONFIG % gw.port)
            dead = "http://127.0.0.1:9"  # nothing listens there: anything not on loopback fails at once
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "CODEX_HOME": home, "LANG": "C.UTF-8",
                   "KIRO2API_KEY": CLIENT_KEY, "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ALL_PROXY": dead,
                   "https_proxy": dead, "http_proxy": dead, "all_proxy": dead, "NO_PROXY": "127.0.0.1",
                   "no_proxy": "127.0.0.1"}
            command = "echo hi-from-codex > proof.txt; cat proof.txt"
            prompt = 'Write the proof file. [[sim:tool name=exec_command input={"cmd":"%s"}]]' % command
            log_mark = len(gw.stderr())
            try:
                r = subprocess.run([CODEX, "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access", prompt],
                                   env=env, cwd=cwd, capture_output=True, text=True, timeout=120 * SLOW,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                self.fail("codex timed out; stderr:\n%s\ngateway:\n%s" % (e.stderr, gw.stderr()[log_mark:][-4000:]))
            log = gw.stderr()[log_mark:]
            why = "exit %d\nstdout:\n%s\nstderr:\n%s\ngateway:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:],
                                                                       log[-4000:])
            self.assertEqual(r.returncode, 0, why)
            # the command ran in the working directory
            with open(os.path.join(cwd, "proof.txt")) as f:
                self.assertEqual(f.read().strip(), "hi-from-codex", why)
            # the second turn echoed the tool output back and the session ended with it
            self.assertIn("hi-from-codex", r.stdout, why)
            posts = [(m, p, s) for m, p, s in ACCESS.findall(log) if p == "/v1/responses"]
            self.assertGreaterEqual(len(posts), 2, why)
            for method, path, status in ACCESS.findall(log):
                self.assertLess(int(status), 400, "%s %s -> %s\n%s" % (method, path, status, why))
            stats = sim.stats()
            self.assertEqual(stats["rejections"], 0, stats)
            gw.assert_clean_exit(self)
        finally:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(cwd, ignore_errors=True)
            gw.cleanup()
            sim.cleanup()

    def test_exec_web_search(self):
        if not os.access(CODEX, os.X_OK):
            self.skipTest("the Codex CLI is not installed in tests/clients (run `make deps-test` or deps/npm.sh)")
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-codexws"]))
        home, cwd = tempfile.mkdtemp(prefix="k2a-codex-home-"), tempfile.mkdtemp(prefix="k2a-codex-cwd-")
        try:
            with open(os.path.join(home, "config.toml"), "w") as f:
                f.write(CONFIG % gw.port)
            dead = "http://127.0.0.1:9"
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home, "CODEX_HOME": home, "LANG": "C.UTF-8",
                   "KIRO2API_KEY": CLIENT_KEY, "HTTPS_PROXY": dead, "HTTP_PROXY": dead, "ALL_PROXY": dead,
                   "https_proxy": dead, "http_proxy": dead, "all_proxy": dead, "NO_PROXY": "127.0.0.1",
                   "no_proxy": "127.0.0.1"}
            q = "codex web search"
            prompt = 'Look it up. [[sim:websearch query="%s"]]' % q
            log_mark = len(gw.stderr())
            try:
                r = subprocess.run([CODEX, "exec", "--skip-git-repo-check", "--sandbox", "danger-full-access", prompt],
                                   env=env, cwd=cwd, capture_output=True, text=True, timeout=120 * SLOW,
                                   stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as e:
                self.fail("codex timed out; stderr:\n%s\ngateway:\n%s" % (e.stderr, gw.stderr()[log_mark:][-4000:]))
            log = gw.stderr()[log_mark:]
            why = "exit %d\nstdout:\n%s\nstderr:\n%s\ngateway:\n%s" % (r.returncode, r.stdout[-3000:], r.stderr[-3000:],
                                                                       log[-4000:])
            self.assertEqual(r.returncode, 0, why)
            # the model answered from the search's results (the simulator echoes the tool result it got)
            self.assertIn("Result 1: %s" % q, r.stdout, why)
            for method, path, status in ACCESS.findall(log):
                self.assertLess(int(status), 400, "%s %s -> %s\n%s" % (method, path, status, why))
            stats = sim.stats()
            self.assertEqual(stats["rejections"], 0, stats)
            gw.assert_clean_exit(self)
        finally:
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(cwd, ignore_errors=True)
            gw.cleanup()
            sim.cleanup()


if __name__ == "__main__":
    main()
