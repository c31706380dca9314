"""Shared harness for the integration tests: start the built gateway and kiro-sim on loopback ports,
talk to them over HTTP/1.1 (http.client) or through curl/nghttp/h2load, parse SSE, and check that
every process exits cleanly (exit status 0 on SIGTERM, no sanitizer report in its stderr).

Environment (set by ctest): K2A_BIN, K2A_SIM, K2A_BUILD_DIR, K2A_SOURCE_DIR, K2A_SANITIZE.
Nothing here ever contacts an address other than 127.0.0.1.
"""
import http.client
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

BIN = os.environ.get("K2A_BIN", "build/kiro2api")
SIM = os.environ.get("K2A_SIM", "build/kiro-sim")
BUILD_DIR = os.environ.get("K2A_BUILD_DIR", "build")
SOURCE_DIR = os.environ.get("K2A_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SANITIZE = os.environ.get("K2A_SANITIZE", "OFF").upper() in ("ON", "1", "TRUE", "YES")
FIXTURES = os.path.join(SOURCE_DIR, "tests", "fixtures")
CLIENT_KEY = "test-client-key-0123456789"
# sanitizer builds are slower: scale time budgets
SLOW = 3.0 if SANITIZE else 1.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "AddressSanitizer:DEADLYSIGNAL")
# Every process a test starts, through Proc or any subprocess call, inherits these: leak detection on, and any report
# is fatal with a distinct exit status (23 ASan/LSan, 24 UBSan), so a report can never go unnoticed.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23:halt_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=24",
    "LSAN_OPTIONS": "exitcode=23",
}
os.environ.update(SANITIZER_ENV)


def assert_no_sanitizer_report(tc, text, what="process"):
    """Fails tc when text (a process's stderr) holds a sanitizer report."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    for marker in SANITIZER_MARKERS:
        tc.assertNotIn(marker, text, "%s stderr has a sanitizer report:\n%s" % (what, text[-6000:]))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Proc:
    """A child process that prints `... listening on http(s)://HOST:PORT` lines on stdout when ready."""

    def __init__(self, argv, env=None, cwd=None, name="proc", wait_lines=1, timeout=15):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="k2a-%s-" % name)
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        full_env = dict(os.environ)
        full_env.update(SANITIZER_ENV)
        for k in ("KIRO_AUTH_TOKEN", "KIRO_CLIENT_TOKEN", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
            full_env.pop(k, None)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self.stderr_file = open(self.stderr_path, "wb")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.stderr_file, env=full_env,
                                  cwd=cwd or self.tmp)
        self.urls = []
        deadline = time.time() + timeout * SLOW
        self.stdout_lines = []
        while len(self.urls) < wait_lines:
            line = self._readline(deadline)
            if line is None:
                raise RuntimeError("%s did not start: exit=%s stderr:\n%s" % (name, self.p.poll(), self.stderr()))
            self.stdout_lines.append(line)
            m = re.search(r"listening on (https?)://([^:]+|\[[^\]]+\]):(\d+)", line)
            if m:
                self.urls.append((m.group(1), int(m.group(3))))
        self.port = self.urls[0][1]
        self._drain = threading.Thread(target=self._drain_stdout, daemon=True)
        self._drain.start()

    def _readline(self, deadline):
        out = []
        while time.time() < deadline:
            if self.p.poll() is not None and not out:
                rest = self.p.stdout.readline()
                return rest.decode() if rest else None
            line = self.p.stdout.readline()
            if line:
                return line.decode()
        return None

    def _drain_stdout(self):
        for line in self.p.stdout:
            self.stdout_lines.append(line.decode(errors="replace"))

    def stderr(self):
        self.stderr_file.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def send_signal(self, sig):
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def wait(self, timeout=20):
        return self.p.wait(timeout=timeout * SLOW)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the process and returns its exit status; -1 if it had to be killed."""
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return -1
        return self.p.returncode

    def assert_clean_exit(self, tc, sig=signal.SIGTERM):
        status = self.stop(sig)
        err = self.stderr()
        assert_no_sanitizer_report(tc, err, self.name)
        tc.assertEqual(status, 0, "%s exited with %s; stderr tail:\n%s" % (self.name, status, err[-3000:]))

    def cleanup(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.stderr_file.close()
        try:
            self.p.stdout.close()
        except Exception:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class Gateway(Proc):
    def __init__(self, env=None, args=(), client_key=CLIENT_KEY, cwd=None, wait_lines=None):
        e = {"KIRO_HOST": "127.0.0.1", "PORT": "0", "LOG_LEVEL": "debug", "KIRO_SHUTDOWN_GRACE_MS": "5000"}
        if client_key is not None:
            e["KIRO_CLIENT_TOKEN"] = client_key
        if env:
            e.update(env)
        if "KIRO_STATE_FILE" not in e:
            e["KIRO_STATE_FILE"] = os.path.join(tempfile.mkdtemp(prefix="k2a-state-"), "state.json")
        lines = wait_lines or (2 if str(e.get("KIRO_TLS_PORT", "0")) != "0" else 1)
        super().__init__([BIN] + list(args), env=e, cwd=cwd, name="kiro2api", wait_lines=lines)


# The gateway's tests run kiro-sim as Kiro is now (its default, 2026 mode); K2A_SIM_LEGACY=1 runs them against the 2025
# rules instead, to see what a change does to a gateway still speaking those.
SIM_MODE_ARGS = ["--legacy-2025"] if os.environ.get("K2A_SIM_LEGACY") == "1" else []
CURRENT_MODELS = ("claude-opus-4.8", "claude-opus-5")


class Sim(Proc):
    def __init__(self, args=(), env=None):
        if "--fixtures-dir" not in args:  # [[sim:replay file=...]] reads the upstream captures
            args = ["--fixtures-dir", os.path.join(FIXTURES, "upstream")] + list(args)
        args = SIM_MODE_ARGS + list(args)
        # current Kiro modelIds the gateway maps Claude Code's names to, in case this kiro-sim does not know them yet
        # (it then also lists them in ListAvailableModels)
        for model in CURRENT_MODELS:
            args = list(args) + ["--model", model]
        super().__init__([SIM, "--port", "0"] + list(args), env=env, name="kiro-sim")

    @property
    def base(self):
        scheme, port = self.urls[0]
        return "%s://127.0.0.1:%d" % (scheme, port)

    def stats(self):
        st, _, body = request(self.port, "GET", "/sim/stats")
        assert st == 200, body
        return json.loads(body)


def sim_accounts_env(sim, tokens, extra=None):
    """Gateway environment pointing every upstream URL at the simulator, with accounts for the given refresh tokens
    (a list of strings for Social accounts, or dicts for full entries)."""
    accounts = []
    for t in tokens:
        accounts.append(t if isinstance(t, dict) else {"auth": "Social", "refreshToken": t})
    env = {
        "KIRO_AUTH_TOKEN": json.dumps(accounts),
        "KIRO_API_BASE": sim.base,
        "KIRO_SOCIAL_REFRESH_URL": sim.base + "/refreshToken",
        "KIRO_IDC_REFRESH_URL": sim.base + "/token",
    }
    if extra:
        env.update(extra)
    return env


def request(port, method, path, body=None, headers=None, timeout=30, key=None):
    """One HTTP/1.1 request; returns (status, headers dict with lower-case names, body bytes)."""
    h = dict(headers or {})
    if key is not None:
        h["x-api-key"] = key
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout * SLOW)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        conn.close()


def parse_sse(data):
    """Parses an SSE body into a list of (event, data-string) pairs (event None when absent)."""
    if isinstance(data, bytes):
        data = data.decode()
    events = []
    for block in data.split("\n\n"):
        if not block.strip():
            continue
        ev, lines = None, []
        for line in block.split("\n"):
            if line.startswith("event: "):
                ev = line[7:]
            elif line.startswith("data: "):
                lines.append(line[6:])
            elif line.startswith(":"):
                ev = ev or ":comment"
        events.append((ev, "\n".join(lines)))
    return events


def curl(*args, timeout=30):
    """Runs curl; returns CompletedProcess with text output."""
    return subprocess.run(["curl", "-sS", "--noproxy", "*"] + list(args), capture_output=True, text=True, timeout=timeout * SLOW)


def make_test_ca(dirpath, names=("localhost", "upstream.test"), ips=("127.0.0.1",)):
    """Creates ca.pem, cert.pem, key.pem in dirpath (a private CA and a server certificate for the given names)."""
    def run(*a):
        subprocess.run(list(a), check=True, capture_output=True, cwd=dirpath)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", "/CN=kiro2api test CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "srv.csr", "-subj", "/CN=localhost")
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:%s" % i for i in ips])
    with open(os.path.join(dirpath, "ext.cnf"), "w") as f:
        f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % san)
    run("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
        "-days", "2", "-extfile", "ext.cnf")
    return {k: os.path.join(dirpath, k + ".pem") for k in ("ca", "cert", "key")}


class SimGatewayCase(unittest.TestCase):
    """Tests sharing one kiro-sim and one gateway on it (accounts ACCOUNTS, refresh tokens of the simulator); post()
    sends a JSON body to PATH with the client key. The gateway must exit cleanly (exit 0, no sanitizer report)."""
    ACCOUNTS = []
    PATH = "/v1/messages"

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, cls.ACCOUNTS))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def post(self, body, headers=None):
        if headers is None:
            headers = {"authorization": "Bearer " + CLIENT_KEY}
        return request(self.gw.port, "POST", self.PATH, body, headers=headers)


def main():
    unittest.main(verbosity=2)
