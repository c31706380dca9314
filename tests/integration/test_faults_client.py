"""Fault suite, client side: clients that go away mid-stream (20 random points, fixed seed: the upstream request is
cancelled within 100 ms at the median, 500 ms at worst), a 100 MB body (HTTP/1.1 and HTTP/2), every byte truncation of
a real Claude Code request on one keep-alive connection, JSON nested 10 000 deep, 10 000 headers, 1 000 slowloris connections, invalid UTF-8 in text, and
1 000 concurrent requests above KIRO_MAX_CONCURRENT=50. Each asserts what the client gets (the dialect's error shape,
Anthropic or OpenAI), that the gateway keeps serving (a normal request right after succeeds), and ends with a clean
exit (no sanitizer report, no leak in the ASan run)."""
import asyncio
import json
import os
import random
import select
import shutil
import socket
import tempfile
import threading
import time
import unittest

from k2a import CLIENT_KEY, FIXTURES, SLOW, Gateway, Sim, curl, main, request, sim_accounts_env
from hostile import (PATHS, KeepAlive, abandon_after, assert_error_shape, assert_serves, body_for, post, proc_fds,
                     raise_fd_limit, raw_request, stream_outcome, tools_for, upstream_busy, wait_until)

DIALECTS = ("anthropic", "openai")


def read_response(s):
    """Reads one Content-Length framed HTTP/1.1 response from a socket; returns (status, body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response head: %r" % data[:200])
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = int([l.split(":", 1)[1] for l in lines[1:] if l.lower().startswith("content-length:")][0])
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), body


def fixture_body(name):
    with open(os.path.join(FIXTURES, "clients", name)) as f:
        fx = json.load(f)
    return fx["url"], json.dumps(fx["body"], separators=(",", ":"), ensure_ascii=False).encode()


class ClientFaults(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        raise_fd_limit()  # inherited by the processes started below
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-c1", "sim-ok-c2"]))

    @classmethod
    def tearDownClass(cls):
        tc = unittest.TestCase()
        try:
            cls.gw.assert_clean_exit(tc)
            cls.sim.assert_clean_exit(tc)
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def quiet(self):
        """Nothing in flight upstream."""
        self.assertTrue(wait_until(lambda: self.sim.stats()["open_streams"] == 0 and upstream_busy(self.gw.port) == 0,
                                   5 * SLOW), (self.sim.stats(), upstream_busy(self.gw.port)))

    # ------------------------------------------------------------ disconnects

    def test_disconnect_mid_stream_at_20_random_points(self):
        rng = random.Random(20261126)
        text = "[[sim:drip ms=15]] [[sim:text frames=80 size=16]]"
        full = {}
        for dialect in DIALECTS:
            st, _, data = post(self.gw.port, dialect, body_for(dialect, text))
            self.assertEqual(st, 200)
            self.assertEqual(stream_outcome(self, dialect, data)[0], "ok")
            full[dialect] = len(data)
        self.quiet()
        worst = 0.0
        tooks = []
        for i in range(20):
            dialect = DIALECTS[i % 2]
            # 0 = gone right after sending; else somewhere in the head or the body
            nbytes = 0 if i in (0, 1) else rng.randint(1, full[dialect] - 200)
            got = abandon_after(self.gw.port, PATHS[dialect], body_for(dialect, text), nbytes)
            closed_at = time.monotonic()
            self.assertTrue(wait_until(lambda: self.sim.stats()["open_streams"] == 0 and upstream_busy(self.gw.port) == 0,
                                       5 * SLOW, interval=0.005), "point %d (%d bytes): upstream still open" % (i, nbytes))
            took = time.monotonic() - closed_at
            worst = max(worst, took)
            tooks.append(took)
            # the gateway notices on its next write (a frame every 15 ms here): a point past half a second is a missed
            # cancellation, not scheduling noise
            self.assertLessEqual(took, 0.5 * SLOW, "point %d (%d of %d bytes read): upstream cancelled after %.0f ms" %
                                 (i, len(got), full[dialect], took * 1000))
        # typically within 100 ms; the median, so that one point delayed by another tenant of this 2-core machine is not a
        # failure (it was, once in a loaded run: 231 ms)
        median = sorted(tooks)[len(tooks) // 2]
        self.assertLessEqual(median, 0.1 * SLOW, "median cancellation %.0f ms: %s" % (median * 1000, tooks))
        print("disconnects: the upstream request was cancelled within %.0f ms at worst, %.0f ms median" %
              (worst * 1000, median * 1000))
        for dialect in DIALECTS:
            assert_serves(self, self.gw.port, dialect)

    # ------------------------------------------------------------ big and broken bodies

    def test_100mb_body(self):
        size = 100 * 1024 * 1024
        head = b'{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"'
        tail = b'"}]}'
        filler = size - len(head) - len(tail)
        for dialect in DIALECTS:
            s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=60 * SLOW)
            try:
                s.sendall(raw_request("POST", PATHS[dialect], b"", {"Content-Length": str(size)}))
                s.sendall(head)
                chunk = b"a" * (1 << 20)
                left = filler
                while left > 0:
                    n = min(left, len(chunk))
                    s.sendall(chunk[:n])
                    left -= n
                s.sendall(tail)
                status, body = read_response(s)
            finally:
                s.close()
            assert_error_shape(self, dialect, status, body, want_status=413, contains="KIRO_MAX_BODY_BYTES")
        # HTTP/2 (h2c prior knowledge): the same 413 in the dialect's shape, not a stream reset
        tmp = tempfile.mkdtemp(prefix="k2a-big-")
        try:
            path = os.path.join(tmp, "big.json")
            with open(path, "wb") as f:
                f.write(head)
                f.write(b"a" * filler)
                f.write(tail)
            for dialect in DIALECTS:
                r = curl("--http2-prior-knowledge", "-X", "POST", "-H", "content-type: application/json", "-H",
                         "x-api-key: " + CLIENT_KEY, "--data-binary", "@" + path, "-w", "\n%{http_code} %{http_version}",
                         "http://127.0.0.1:%d%s" % (self.gw.port, PATHS[dialect]), timeout=120)
                self.assertEqual(r.returncode, 0, r.stderr)
                body, _, tail_line = r.stdout.rpartition("\n")
                status, version = tail_line.split()
                self.assertEqual(version, "2")
                assert_error_shape(self, dialect, int(status), body.encode(), want_status=413)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for dialect in DIALECTS:
            assert_serves(self, self.gw.port, dialect)

    def test_every_truncation_of_a_claude_code_request(self):
        before = self.sim.stats()["generates_total"]
        url, small = fixture_body("cc-slash-context-4.json")  # a real Claude Code request (count_tokens, 1 246 bytes)
        _, big = fixture_body("cc-tool-allowed-3.json")       # a real Claude Code /v1/messages request (76 707 bytes)
        cases = [(url, small[:i]) for i in range(len(small))]
        cases += [("/v1/messages?beta=true", small[:i]) for i in range(len(small))]
        cases += [("/v1/messages?beta=true", big[:i]) for i in range(0, len(big), max(1, len(big) // 600))]
        conn = KeepAlive(self.gw.port)
        started = time.monotonic()
        try:
            for path, body in cases:
                st, h, data = conn.request("POST", path, body)
                if st != 400:
                    self.fail("truncation at %d of %s: %d %r" % (len(body), path, st, data[:300]))
                doc = json.loads(data)
                self.assertEqual(doc["type"], "error")
                self.assertEqual(doc["error"]["type"], "invalid_request_error")
                self.assertTrue(doc["error"]["message"])
        finally:
            conn.close()
        print("%d truncated requests on one connection in %.1f s" % (len(cases), time.monotonic() - started))
        self.assertEqual(self.sim.stats()["generates_total"], before)  # none reached Kiro
        # and the whole request is fine
        st, _, data = request(self.gw.port, "POST", url, body=small, key=CLIENT_KEY,
                              headers={"content-type": "application/json"})
        self.assertEqual(st, 200, data)
        assert_serves(self, self.gw.port)

    def test_deeply_nested_json(self):
        deep = "[" * 10000 + "]" * 10000
        for dialect in DIALECTS:
            for where in ("metadata", "message", "tool"):
                b = body_for(dialect, "x", stream=False)
                text = json.dumps(b)
                if where == "metadata":
                    text = text[:-1] + ',"x_unknown_field":' + deep + "}"  # ignored fields are parsed too
                elif where == "message":
                    text = text.replace('"content": "x"', '"content": ' + deep)
                else:
                    tool = dict(tools_for(dialect)[0])
                    text = json.dumps(dict(b, tools=[tool])).replace('"required": ["city"]', '"required": ["city"], "x": ' + deep)
                st, _, data = post(self.gw.port, dialect, text)
                # content must hold objects: that check may come first; elsewhere the depth limit (128) is what says no
                assert_error_shape(self, dialect, st, data, want_status=400,
                                   contains="expected|deep|depth|nest" if where == "message" else "deep|depth|nest")
            assert_serves(self, self.gw.port, dialect)

    def test_invalid_utf8_in_text(self):
        # What the converter does with invalid UTF-8 inside a JSON string (decided and documented in SECURITY.md):
        #  - malformed sequences (a stray continuation byte, a bad lead byte, a truncated sequence) are a JSON lexical
        #    error: a clean 400 invalid_request_error naming the position, nothing sent to Kiro;
        #  - well-formed but invalid sequences (overlong forms, UTF-16 surrogates, code points past U+10FFFF), which the
        #    lexer lets through, are accepted and every byte of them becomes U+FFFD on the way to Kiro.
        # Either way Kiro only ever receives valid UTF-8 (kiro-sim parses with UTF-8 checks on and echoes the text).
        before = self.sim.stats()["generates_total"]
        for dialect in DIALECTS:
            for bad in (b"\xc3\x28", b"\xff\xfe", b"abc\xe2\x82", b"\x80", b"\xf8\x88\x80\x80\x80"):
                raw = json.dumps(body_for(dialect, "HOLE", stream=False)).encode().replace(b"HOLE", bad)
                st, _, data = post(self.gw.port, dialect, raw)
                assert_error_shape(self, dialect, st, data, want_status=400, contains="UTF8|UTF-8")
        self.assertEqual(self.sim.stats()["generates_total"], before)
        cases = {b"\xed\xa0\x80": 3, b"\xc0\xaf": 2, b"\xe0\x80\xaf": 3, b"\xf4\x90\x80\x80": 4}
        for dialect in DIALECTS:
            for bad, n in cases.items():
                raw = json.dumps(body_for(dialect, "HOLE", stream=False)).encode().replace(b"HOLE", b"<" + bad + b">")
                st, _, data = post(self.gw.port, dialect, raw)
                self.assertEqual(st, 200, data)
                doc = json.loads(data)  # the answer is valid UTF-8 JSON
                text = doc["content"][0]["text"] if dialect == "anthropic" else doc["choices"][0]["message"]["content"]
                self.assertEqual(text, "echo: <" + "\ufffd" * n + ">")
            # streaming too
            raw = json.dumps(body_for(dialect, "HOLE", stream=True)).encode().replace(b"HOLE", b"x\xed\xbf\xbfy")
            st, _, data = post(self.gw.port, dialect, raw)
            self.assertEqual(st, 200)
            self.assertEqual(stream_outcome(self, dialect, data)[:2], ("ok", "echo: x\ufffd\ufffd\ufffdy"))
        self.assertEqual(self.sim.stats()["rejections"], 0)  # Kiro never got a malformed body
        assert_serves(self, self.gw.port)

    # ------------------------------------------------------------ hostile connections

    def test_10000_headers(self):
        fds_before = proc_fds(self.gw.p.pid)
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10 * SLOW)
        try:
            head = "POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: %s\r\n" % CLIENT_KEY
            head += "".join("X-Hostile-%d: v\r\n" % i for i in range(10000))
            body = json.dumps(body_for("anthropic", "hi", stream=False)).encode()
            try:
                s.sendall(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # refused before we finished sending: fine
            data = b""
            try:
                while True:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
        finally:
            s.close()
        # a clean refusal: an HTTP error status (h2o answers 400 before routing) or the connection closed, never a 200
        if data:
            status = int(data.split(b"\r\n", 1)[0].split()[1])
            self.assertIn(status, (400, 413, 431), data[:300])
        assert_serves(self, self.gw.port)
        # HTTP/2 (h2c): h2o closes the connection on a header block that large; never a 200, and the gateway serves on
        args = ["--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", "-H", "x-api-key: " + CLIENT_KEY, "-H",
                "content-type: application/json", "--data", json.dumps(body_for("anthropic", "hi", stream=False))]
        for i in range(10000):
            args += ["-H", "X-Hostile-%d: v" % i]
        r = curl(*args, "http://127.0.0.1:%d/v1/messages" % self.gw.port, timeout=60)
        self.assertTrue(r.returncode != 0 or r.stdout.strip() in ("400", "413", "431"), (r.returncode, r.stdout, r.stderr))
        assert_serves(self, self.gw.port)
        self.assertTrue(wait_until(lambda: proc_fds(self.gw.p.pid) <= fds_before + 2, 5 * SLOW))

    def test_slowloris(self):
        n = 1000
        limit = raise_fd_limit()
        if limit < n + 200:
            self.skipTest("open-file limit %d is too low for %d connections" % (limit, n))
        # a gateway of its own with a 2-second request timeout (the shared one keeps the default for the big uploads)
        gw = Gateway(env=sim_accounts_env(self.sim, ["sim-ok-slow"], {"KIRO_HEADER_TIMEOUT_MS": "2000"}))
        try:
            self.slowloris(gw, n)
            gw.assert_clean_exit(self)
        finally:
            gw.cleanup()

    def slowloris(self, gw, n):
        fds_before = proc_fds(gw.p.pid)
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
            s.setblocking(False)
            socks.append(s)
        line = b"POST /v1/messages HTTP/1.1\r\nHost: slow\r\nX-Slow: " + b"a" * 64
        sent = [0] * n
        closed = [None] * n
        stop = threading.Event()
        started = time.monotonic()

        def trickle():
            while not stop.is_set():
                for i, s in enumerate(socks):
                    if closed[i] is None and sent[i] < len(line):
                        try:
                            s.send(line[sent[i]:sent[i] + 1])
                            sent[i] += 1
                        except OSError:
                            closed[i] = time.monotonic()
                stop.wait(1.0)

        t = threading.Thread(target=trickle, daemon=True)
        t.start()
        try:
            time.sleep(1.2)
            # other clients are served promptly while 1 000 connections trickle
            for dialect in DIALECTS:
                t0 = time.monotonic()
                assert_serves(self, gw.port, dialect)
                self.assertLess(time.monotonic() - t0, 1.0 * SLOW)
            # the slow ones are closed by KIRO_HEADER_TIMEOUT_MS (2 s here)
            deadline = started + 2.0 + 6.0 * SLOW
            pending = set(range(n))
            while pending and time.monotonic() < deadline:
                ready, _, _ = select.select([socks[i] for i in pending][:512], [], [], 0.2)
                for s in ready:
                    i = socks.index(s)
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data or b"HTTP/1.1 408" in data or b"HTTP/1.1 400" in data:
                        if closed[i] is None:
                            closed[i] = time.monotonic()
                        pending.discard(i)
                pending = {i for i in pending if closed[i] is None}
            self.assertFalse(pending, "%d of %d slow connections still open %.1f s after they started" %
                             (len(pending), n, time.monotonic() - started))
            lasted = max(c for c in closed) - started
            print("slowloris: %d connections closed after %.1f s at most (KIRO_HEADER_TIMEOUT_MS=2000)" % (n, lasted))
            self.assertGreaterEqual(lasted, 1.5)  # not before the timeout
        finally:
            stop.set()
            t.join(5)
            for s in socks:
                s.close()
        assert_serves(self, gw.port)
        self.assertTrue(wait_until(lambda: proc_fds(gw.p.pid) <= fds_before + 4, 5 * SLOW),
                        (proc_fds(gw.p.pid), fds_before))


class Overload(unittest.TestCase):
    def test_1000_concurrent_above_max_concurrent(self):
        raise_fd_limit()
        sim = Sim()
        gw = Gateway(env=sim_accounts_env(sim, ["sim-ok-load1", "sim-ok-load2"], {
            "KIRO_MAX_CONCURRENT": "50", "KIRO_WORKERS": "1"}))
        try:
            text = "[[sim:drip ms=40]] [[sim:text frames=10 size=4]]"
            results = asyncio.run(many_requests(gw.port, 1000, text))
            counts = {}
            for i, (st, headers, body) in enumerate(results):
                counts[st] = counts.get(st, 0) + 1
                dialect = DIALECTS[i % 2]
                if st == 200:
                    self.assertEqual(stream_outcome(self, dialect, body)[0], "ok")
                else:
                    assert_error_shape(self, dialect, st, body, want_status=503, want_type="overloaded_error" if dialect ==
                                       "anthropic" else None, contains="KIRO_MAX_CONCURRENT|concurren|busy")
            print("1000 concurrent requests, KIRO_MAX_CONCURRENT=50: %s" % counts)
            self.assertGreaterEqual(counts.get(200, 0), 50)
            self.assertGreater(counts.get(503, 0), 0)
            self.assertEqual(set(counts), {200, 503})
            self.assertLessEqual(sim.stats()["max_open_streams"], 50)  # never more upstream requests than the limit
            for dialect in DIALECTS:
                assert_serves(self, gw.port, dialect)
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            gw.cleanup()
            sim.cleanup()


async def one_request(port, path, body, start):
    await start.wait()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw_request("POST", path, body, {"Connection": "close"}))
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            out += rest[:size]
            rest = rest[size + 2:]
        rest = out
    return status, headers, rest


async def many_requests(port, n, text):
    start = asyncio.Event()
    tasks = []
    for i in range(n):
        dialect = DIALECTS[i % 2]
        tasks.append(asyncio.create_task(one_request(port, PATHS[dialect], json.dumps(body_for(dialect, text)).encode(), start)))
    await asyncio.sleep(0.05)
    start.set()
    return await asyncio.gather(*tasks)


if __name__ == "__main__":
    main()
