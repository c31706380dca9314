"""Helpers for the kiro-sim integration tests (python3 standard library only).

- Sim: starts build/kiro-sim (env K2A_SIM) on --port 0, reads the first stdout line for the URL, stops it. It runs in
  kiro-sim's default (2026) mode; pass "--legacy-2025" for the 2025 rules.
- parse_frames(): an AWS EventStream parser that verifies both CRCs (raises CrcError / Truncated).
- Request builders for generateAssistantResponse bodies and small HTTP helpers.
Every address used is loopback.
"""
import http.client
import json
import os
import select
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
# the same sanitizer settings as k2a.py (kept here too: this module is used without it): leaks on, reports fatal
SANITIZER_ENV = {
    "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:exitcode=23:halt_on_error=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=24",
    "LSAN_OPTIONS": "exitcode=23",
}
os.environ.update(SANITIZER_ENV)
SOURCE_DIR = os.environ.get("K2A_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
FIXTURES_DIR = os.path.join(SOURCE_DIR, "tests", "fixtures", "upstream")
# profileArns of kiro-sim accounts (kiro-protocol-2026 section 2.2; src/sim/accounts.c)
SOCIAL_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
SOCIAL_EU_ARN = "arn:aws:codewhisperer:eu-central-1:699475941385:profile/EUSIMSOCIAL1"
BUILDER_ID_ARN = "arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX"
MACHINE_ID = "5f4dcc3b5aa765d61d8327deb882cf995f4dcc3b5aa765d61d8327deb882cf99"
# the fingerprint headers of a generate call, IDE shape (kiro-protocol-2026 section 5.1)
KIRO_HEADERS = {
    "x-amzn-codewhisperer-optout": "true",
    "x-amzn-kiro-agent-mode": "vibe",
    "x-amz-user-agent": "aws-sdk-js/1.0.34 KiroIDE-0.11.107-" + MACHINE_ID,
    "user-agent": ("aws-sdk-js/1.0.34 ua/2.1 os/linux#6.1.0 lang/js md/nodejs#22.22.0 api/codewhispererstreaming#1.0.34 m/E "
                   "KiroIDE-0.11.107-" + MACHINE_ID),
    "amz-sdk-invocation-id": "0b7e2f4c-1d2a-4e5f-9a8b-7c6d5e4f3a2b",
    "amz-sdk-request": "attempt=1; max=3",
}


def sim_binary():
    path = os.environ.get("K2A_SIM") or os.path.join(SOURCE_DIR, "build", "kiro-sim")
    if not os.path.exists(path):
        sys.exit("kiro-sim binary not found at %s (set K2A_SIM)" % path)
    return path


def run_checked(argv, **kw):
    """subprocess.run with the output captured; raises when stderr holds a sanitizer report."""
    p = subprocess.run(argv, capture_output=True, **kw)
    err = p.stderr.decode(errors="replace") if isinstance(p.stderr, bytes) else p.stderr
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "AddressSanitizer:DEADLYSIGNAL"):
        if marker in err:
            raise AssertionError("%s reported: %s" % (argv[0], err[-4000:]))
    return p


class Sim:
    """A running kiro-sim. Use as a context manager."""

    def __init__(self, *args, ca_file=None):
        self.args = [sim_binary(), "--port", "0", "--fixtures-dir", FIXTURES_DIR] + list(args)
        self.ca_file = ca_file
        # stderr goes to a file (a pipe nobody reads could fill up); stop() checks it for sanitizer reports
        self.stderr_file = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     env=dict(os.environ, **SANITIZER_ENV))
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        if not ready:
            self.stop()
            raise RuntimeError("kiro-sim printed nothing within 20 s")
        self.first_line = self.proc.stdout.readline().decode()
        prefix = "kiro-sim listening on "
        if not self.first_line.startswith(prefix):
            self.stop(check=False)
            raise RuntimeError("unexpected first line %r %s" % (self.first_line, self.stderr_text))
        self.url = self.first_line[len(prefix):].strip()
        self.scheme, rest = self.url.split("://")
        self.host, port = rest.rsplit(":", 1)
        self.port = int(port)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # run_tests() ends with sys.exit(): check the sim then too, unless a test already failed
        self.stop(check=exc_type is None or (exc_type is SystemExit and not exc.code))

    def stop(self, check=True):
        """Stops the sim with SIGTERM. With check, raises when it did not exit 0 or reported a sanitizer error."""
        if self.stderr_file is None:
            return
        was_running = self.proc.poll() is None
        if was_running:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.stderr_file.seek(0)
        self.stderr_text = self.stderr_file.read().decode(errors="replace")
        self.stderr_file.close()
        self.stderr_file = None
        if check:
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:", "AddressSanitizer:DEADLYSIGNAL",
                           "Assertion"):
                if marker in self.stderr_text:
                    raise AssertionError("kiro-sim reported: %s" % self.stderr_text[-4000:])
            if not was_running or self.proc.returncode != 0:
                raise AssertionError("kiro-sim exited with %s (running at stop: %s): %s" %
                                     (self.proc.returncode, was_running, self.stderr_text[-2000:]))

    def conn(self, timeout=30):
        if self.scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(self, method, path, body=None, token=None, headers=None, timeout=30):
        """Returns (status, headers dict (lower-case names), body bytes)."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if isinstance(body, (dict, list)):
            body = json.dumps(body, ensure_ascii=False).encode()
        elif isinstance(body, str):
            body = body.encode()
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        c = self.conn(timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, token=None):
        status, _, data = self.request(method, path, body, token)
        return status, json.loads(data) if data else None

    def refresh(self, name):
        status, doc = self.json("POST", "/refreshToken", {"refreshToken": name})
        assert status == 200, (status, doc)
        return doc["accessToken"]

    def stats(self):
        status, doc = self.json("GET", "/sim/stats")
        assert status == 200
        return doc

    def reset(self, all_=False):
        status, _ = self.json("POST", "/sim/reset" + ("?all=1" if all_ else ""))
        assert status == 200

    def generate(self, token, body, timeout=30, headers=None, path="/generateAssistantResponse"):
        """Returns (status, headers, raw body bytes). Sends the IDE fingerprint headers unless headers is given."""
        return self.request("POST", path, body, token=token, timeout=timeout,
                            headers=KIRO_HEADERS if headers is None else headers)


class CrcError(Exception):
    pass


class Truncated(Exception):
    pass


class Frame:
    def __init__(self, headers, payload, raw):
        self.headers = headers
        self.payload = payload
        self.raw = raw

    @property
    def event_type(self):
        return self.headers.get(":event-type")

    @property
    def message_type(self):
        return self.headers.get(":message-type")

    def json(self):
        """The payload as JSON; raw bytes that are not valid UTF-8 survive as surrogate escapes (see raw_str)."""
        return json.loads(self.payload.decode("utf-8", "surrogateescape"))

    def __repr__(self):
        return "Frame(%s, %r)" % (self.event_type or self.message_type, self.payload[:80])


def raw_str(s):
    """Bytes of a string decoded by Frame.json(), partial UTF-8 sequences included."""
    return s.encode("utf-8", "surrogateescape")


def _parse_headers(block):
    headers, types, off = {}, [], 0
    while off < len(block):
        n = block[off]
        name = block[off + 1:off + 1 + n].decode()
        off += 1 + n
        t = block[off]
        types.append(t)
        off += 1
        if t in (0, 1):
            v = t == 0
        elif t == 2:
            v = struct.unpack(">b", block[off:off + 1])[0]
            off += 1
        elif t == 3:
            v = struct.unpack(">h", block[off:off + 2])[0]
            off += 2
        elif t == 4:
            v = struct.unpack(">i", block[off:off + 4])[0]
            off += 4
        elif t in (5, 8):
            v = struct.unpack(">q", block[off:off + 8])[0]
            off += 8
        elif t in (6, 7):
            ln = struct.unpack(">H", block[off:off + 2])[0]
            v = block[off + 2:off + 2 + ln]
            if t == 7:
                v = v.decode()
            off += 2 + ln
        elif t == 9:
            v = block[off:off + 16]
            off += 16
        else:
            raise ValueError("header type %d" % t)
        headers[name] = v
    return headers, types


def parse_frames(data):
    """Parses a whole EventStream body. Raises CrcError on a bad CRC, Truncated on an incomplete frame."""
    frames, off = [], 0
    while off < len(data):
        if len(data) - off < 12:
            raise Truncated("%d trailing bytes" % (len(data) - off))
        total, hlen, pcrc = struct.unpack(">III", data[off:off + 12])
        if zlib.crc32(data[off:off + 8]) != pcrc:
            raise CrcError("prelude CRC of frame %d" % len(frames))
        if total < 16 or off + total > len(data):
            raise Truncated("frame %d needs %d bytes, %d left" % (len(frames), total, len(data) - off))
        mcrc = struct.unpack(">I", data[off + total - 4:off + total])[0]
        if zlib.crc32(data[off:off + total - 4]) != mcrc:
            raise CrcError("message CRC of frame %d" % len(frames))
        headers, types = _parse_headers(data[off + 12:off + 12 + hlen])
        f = Frame(headers, data[off + 12 + hlen:off + total - 4], data[off:off + total])
        f.header_types = types
        f.header_names = list(headers)
        frames.append(f)
        off += total
    return frames


def text_of(frames):
    return "".join(f.json()["content"] for f in frames if f.event_type == "assistantResponseEvent")


def user_message(content, model="auto", tools=None, tool_results=None, images=None):
    ctx = {}
    if tools:
        ctx["tools"] = tools
    if tool_results:
        ctx["toolResults"] = tool_results
    return {"content": content, "modelId": model, "origin": "AI_EDITOR", "images": images or [],
            "userInputMessageContext": ctx}


def request_body(content="hello", model="auto", tools=None, tool_results=None, history=None, images=None,
                 profile_arn=SOCIAL_ARN):
    """A generateAssistantResponse body; profile_arn=None leaves profileArn out."""
    state = {
        "agentContinuationId": "7f3c2a1e-9b4d-5e6f-8a1b-2c3d4e5f6a7b",
        "agentTaskType": "vibe",
        "chatTriggerType": "MANUAL",
        "currentMessage": {"userInputMessage": user_message(content, model, tools, tool_results, images)},
        "conversationId": "conv-0123456789abcdef",
    }
    if history:
        state["history"] = history
    body = {"conversationState": state}
    if profile_arn is not None:
        body["profileArn"] = profile_arn
    return body


def tool_spec(name, description="A tool", schema=None):
    return {"toolSpecification": {"name": name, "description": description,
                                  "inputSchema": {"json": schema or {"type": "object", "properties": {}}}}}


def hist_user(content):
    return {"userInputMessage": {"content": content, "modelId": "auto", "origin": "AI_EDITOR",
                                 "userInputMessageContext": {}}}


def hist_assistant(content, tool_uses=None):
    m = {"content": content}
    if tool_uses is not None:
        m["toolUses"] = tool_uses
    return {"assistantResponseMessage": m}


TAIL = 3  # metadataEvent, contextUsageEvent, meteringEvent


def assert_healthy_tail(frames, stop_reason=None):
    """A healthy reply ends as Kiro's do: metadataEvent{stopReason}, contextUsageEvent, meteringEvent (the last frame,
    exactly {"unit","unitPlural","usage"})."""
    assert len(frames) >= TAIL, frames
    assert frames[-3].event_type == "metadataEvent", frames[-3]
    meta = frames[-3].json()
    assert isinstance(meta["stopReason"], str) and "tokenUsage" not in meta, meta
    if stop_reason is not None:
        assert meta["stopReason"] == stop_reason, meta
    assert frames[-2].event_type == "contextUsageEvent", frames[-2]
    assert isinstance(frames[-2].json()["contextUsagePercentage"], (int, float))
    assert frames[-1].event_type == "meteringEvent", frames[-1]
    m = frames[-1].json()
    assert list(m) == ["unit", "unitPlural", "usage"], m
    assert m["unit"] == "credit" and m["unitPlural"] == "credits" and isinstance(m["usage"], float), m


def run_tests(tests):
    """Runs test functions, prints one line each and the closing 'N passed, N failed' line; exits non-zero on failure."""
    passed = failed = 0
    for t in tests:
        start = time.time()
        try:
            t()
            passed += 1
            print("PASS %s (%.2fs)" % (t.__name__, time.time() - start), flush=True)
        except Exception:
            import traceback
            failed += 1
            print("FAIL %s" % t.__name__, flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)
