"""Helpers of the hostile integration tests (test_faults_*.py, test_security.py, bench/soak.py): a fake DNS server on
127.0.0.1 (answers, NXDOMAIN, or silence), small raw HTTP/1.1 clients (one keep-alive connection for thousands of
requests, a request abandoned after N response bytes), checks of each dialect's error shape and SSE stream, and
readers for /metrics, /sim/stats and /proc.

Nothing here contacts an address other than 127.0.0.1, and nothing uses the machine's resolver.
"""
import json
import os
import re
import resource
import socket
import struct
import threading
import time

from k2a import CLIENT_KEY, SLOW, parse_sse, request

MODEL = "claude-sonnet-4-5"


# ---------------------------------------------------------------- request bodies

def anthropic_body(text, stream=True, **extra):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "messages": [{"role": "user", "content": text}]}
    b.update(extra)
    return b


def openai_body(text, stream=True, **extra):
    b = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": text}]}
    b.update(extra)
    return b


def body_for(dialect, text, stream=True, **extra):
    return anthropic_body(text, stream, **extra) if dialect == "anthropic" else openai_body(text, stream, **extra)


PATHS = {"anthropic": "/v1/messages", "openai": "/v1/chat/completions"}

WEATHER_TOOL_ANTHROPIC = {"name": "get_weather", "description": "Get the weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
WEATHER_TOOL_OPENAI = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def tools_for(dialect):
    return [WEATHER_TOOL_ANTHROPIC] if dialect == "anthropic" else [WEATHER_TOOL_OPENAI]


def post(port, dialect, body, timeout=30, headers=None):
    """POST to the dialect's route with the client key; returns (status, headers, body bytes)."""
    return request(port, "POST", PATHS[dialect], body=body, key=CLIENT_KEY, timeout=timeout, headers=headers)


# ---------------------------------------------------------------- what a client must see

def assert_error_shape(tc, dialect, status, data, want_status=None, want_type=None, contains=None):
    """A complete error response in the dialect's shape; returns the message."""
    if want_status is not None:
        tc.assertEqual(status, want_status, data[:2000])
    else:
        tc.assertGreaterEqual(status, 400, data[:2000])
    doc = json.loads(data)
    if dialect == "anthropic":
        tc.assertEqual(doc.get("type"), "error", doc)
        err = doc["error"]
        tc.assertIsInstance(err.get("type"), str, doc)
    else:
        err = doc["error"]
        tc.assertIsInstance(err.get("type"), str, doc)
        tc.assertIn("code", err, doc)
        tc.assertIn("param", err, doc)
    tc.assertIsInstance(err.get("message"), str, doc)
    tc.assertTrue(err["message"], doc)
    if want_type is not None:
        tc.assertEqual(err["type"], want_type, doc)
    if contains is not None:
        tc.assertRegex(err["message"], contains, doc)
    return err["message"]


def stream_outcome(tc, dialect, data):
    """Checks a streamed body event by event (each data line is JSON; nothing after the end) and returns
    ("ok", text, tool_calls) for a complete answer or ("error", message, tool_calls) for an in-stream error."""
    text, tools = [], []
    if dialect == "anthropic":
        evs = parse_sse(data)
        tc.assertTrue(evs, data)
        # keep-alive pings may commit the stream before the upstream answered: then an error may come first
        first = [e for e, _ in evs if e != "ping"]
        tc.assertIn(first[0] if first else None, ("message_start", "error"), data[:500])
        for i, (name, payload) in enumerate(evs):
            if name == ":comment":
                continue
            d = json.loads(payload)
            tc.assertEqual(d["type"], name)
            if name == "content_block_start" and d["content_block"]["type"] == "tool_use":
                tools.append({"name": d["content_block"]["name"], "json": ""})
            elif name == "content_block_delta":
                if d["delta"]["type"] == "text_delta":
                    text.append(d["delta"]["text"])
                elif d["delta"]["type"] == "input_json_delta":
                    tools[-1]["json"] += d["delta"]["partial_json"]
            elif name in ("message_stop", "error"):
                tc.assertEqual(i, len(evs) - 1, "events after %s: %r" % (name, evs[i + 1:]))
                if name == "error":
                    tc.assertTrue(d["error"]["message"])
                    return "error", d["error"]["message"], tools
                return "ok", "".join(text), tools
        tc.fail("stream ended without message_stop or error: %r" % data[-500:])
    blocks = [b for b in data.decode().split("\n\n") if b.strip()]
    for i, b in enumerate(blocks):
        if b.startswith(":"):
            continue
        tc.assertTrue(b.startswith("data: "), b)
        payload = b[6:]
        if payload == "[DONE]":
            tc.assertEqual(i, len(blocks) - 1)
            return "ok", "".join(text), tools
        d = json.loads(payload)
        if "error" in d:
            tc.assertEqual(i, len(blocks) - 1, "data after the error chunk")
            tc.assertTrue(d["error"]["message"])
            return "error", d["error"]["message"], tools
        for ch in d.get("choices", []):
            delta = ch.get("delta", {})
            if delta.get("content"):
                text.append(delta["content"])
            for call in delta.get("tool_calls", []) or []:
                if "id" in call:
                    tools.append({"name": call["function"]["name"], "json": ""})
                tools[call["index"]]["json"] += call["function"].get("arguments", "")
    tc.fail("stream ended without [DONE] or an error chunk: %r" % data[-500:])


def assert_serves(tc, port, dialect="anthropic"):
    """The gateway still answers a normal request completely."""
    st, _, data = post(port, dialect, body_for(dialect, "still serving?", stream=True))
    tc.assertEqual(st, 200, data[:2000])
    outcome, text, _ = stream_outcome(tc, dialect, data)
    tc.assertEqual((outcome, text), ("ok", "echo: still serving?"))


# ---------------------------------------------------------------- observability

def metrics(port):
    st, _, body = request(port, "GET", "/metrics", key=CLIENT_KEY)
    assert st == 200, body
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def wait_until(pred, timeout, interval=0.01):
    """Polls pred until it returns a true value or timeout seconds pass; returns the last value."""
    deadline = time.time() + timeout
    v = pred()
    while not v and time.time() < deadline:
        time.sleep(interval)
        v = pred()
    return v


def upstream_busy(gw_port):
    """Upstream connections in use (open minus idle) according to the gateway's /metrics."""
    m = metrics(gw_port)
    return m.get("k2a_upstream_connections_open", 0) - m.get("k2a_upstream_connections_idle", 0)


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- raw HTTP/1.1

def raw_request(method, path, body=b"", headers=None, key=CLIENT_KEY, host="127.0.0.1"):
    h = {"Host": host, "Content-Type": "application/json", "Content-Length": str(len(body))}
    if key is not None:
        h["x-api-key"] = key
    h.update(headers or {})
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    return head.encode() + body


class KeepAlive:
    """One HTTP/1.1 connection reused for many requests (Content-Length framed or chunked responses)."""

    def __init__(self, port, timeout=30):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        self.buf = b""

    def close(self):
        self.sock.close()

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed by the gateway")
        self.buf += chunk

    def _until(self, sep):
        while sep not in self.buf:
            self._fill()
        i = self.buf.index(sep)
        out, self.buf = self.buf[:i], self.buf[i + len(sep):]
        return out

    def _exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, method, path, body=b"", headers=None, key=CLIENT_KEY):
        self.sock.sendall(raw_request(method, path, body, headers, key))
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        hdrs = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            data = self._exactly(int(hdrs["content-length"]))
        elif hdrs.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                n = int(self._until(b"\r\n").split(b";")[0], 16)
                if n == 0:
                    self._until(b"\r\n")
                    break
                data += self._exactly(n)
                self._exactly(2)
        else:
            data = b""
        return status, hdrs, data


def abandon_after(port, path, body, nbytes, key=CLIENT_KEY, timeout=30):
    """Sends one request, reads until at least nbytes of the response (head included) arrived, then closes the
    connection abruptly (RST). Returns the bytes read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    try:
        s.sendall(raw_request("POST", path, json.dumps(body).encode(), key=key))
        got = b""
        while len(got) < nbytes:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


# ---------------------------------------------------------------- fake DNS on 127.0.0.1

class FakeDNS:
    """A UDP DNS server on 127.0.0.1:<free port>. mode "answer": A records from `names` (name -> IPv4), NOERROR with no
    answer for other types of a known name, NXDOMAIN for unknown names; "nxdomain": NXDOMAIN for everything; "silent":
    reads queries and never answers. The mode may be changed while running. `queries` lists (name, qtype)."""

    def __init__(self, mode="answer", names=None):
        self.mode = mode
        self.names = {k.lower().rstrip("."): v for k, v in (names or {}).items()}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        self._stop = True
        self.thread.join(2)
        self.sock.close()

    @staticmethod
    def _qname(pkt, off):
        labels = []
        while pkt[off] != 0:
            n = pkt[off]
            labels.append(pkt[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
        return ".".join(labels).lower(), off + 1

    def _serve(self):
        while not self._stop:
            try:
                pkt, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            if len(pkt) < 12:
                continue
            qid, flags, qd = struct.unpack("!HHH", pkt[:6])
            try:
                name, off = self._qname(pkt, 12)
                qtype, qclass = struct.unpack("!HH", pkt[off:off + 4])
            except (IndexError, struct.error):
                continue
            self.queries.append((name, qtype))
            if self.mode == "silent":
                continue
            question = pkt[12:off + 4]
            rd = flags & 0x0100
            known = self.mode == "answer" and name in self.names
            rcode = 0 if known else 3
            answers = b""
            ancount = 0
            if known and qtype == 1:
                answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(self.names[name])
                ancount = 1
            hdr = struct.pack("!HHHHHH", qid, 0x8000 | 0x0400 | rd | 0x0080 | rcode, 1, ancount, 0, 0)
            try:
                self.sock.sendto(hdr + question + answers, addr)
            except OSError:
                pass


# ---------------------------------------------------------------- a server that accepts and says nothing

class Silent:
    """A TCP listener on 127.0.0.1 that accepts connections and never answers (holds them open)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self._stop = False
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self.conns.append(c)
            except socket.timeout:
                continue
            except OSError:
                return

    def close(self):
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def closed_port():
    """A loopback port with nothing listening (bound then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sanitizer_free(text):
    return not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:|AddressSanitizer:DEADLYSIGNAL", text)
