#!/usr/bin/env python3
"""Loopback HTTP/1.1 server with scripted (mis)behaviours for the upstream client's tests.

Listens on 127.0.0.1, port 0; prints "PORT <n>" on stdout. The request path picks the behaviour (see
HANDLERS); query parameters tune it. Optional TLS: --tls CERT KEY. Control on stdin, one command per line:
  stats               -> prints "accepted=N closed=N requests=N handshake_failures=N"
  wait KEY N          -> waits (at most 10 s) until KEY >= N, then prints the stats line
  release             -> lets a /gated response send its second half (prints the stats line)
--garbage answers every connection with a plain HTTP 400 and closes (a TLS client sees a non-TLS peer).
EOF on stdin ends the process, so a test that dies leaves nothing behind.
"""
import hashlib
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse

lock = threading.Condition()
stats = {"accepted": 0, "closed": 0, "requests": 0, "handshake_failures": 0}


def bump(key, n=1):
    with lock:
        stats[key] += n
        lock.notify_all()


def stats_line():
    with lock:
        return " ".join(f"{k}={v}" for k, v in stats.items())


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.drop_next = False
        self.head_only = False

    def recv_more(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed()
        self.buf += data

    def read_request(self):
        while b"\r\n\r\n" not in self.buf:
            self.recv_more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        if target.startswith("/early-answer"):
            # the whole answer before reading the body (the client is still writing it), then the body
            respond(self, body=b"early")
            time.sleep(0.2)
        while len(self.buf) < n:
            self.recv_more()
        body, self.buf = self.buf[:n], self.buf[n:]
        return method, target, headers, body, head

    def send(self, data):
        self.sock.sendall(data)

    def wait_eof(self):
        """Blocks until the client closes (used by the stalling behaviours)."""
        try:
            while True:
                self.recv_more()
        except (Closed, OSError, ssl.SSLError):
            pass


def q_int(q, name, default):
    return int(q.get(name, [default])[0])


def respond(c, status=200, body=b"hello", extra=b""):
    head = b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n" % (status, len(body), extra)
    c.send(head if c.head_only else head + body)


def h_ok(c, q, req):
    respond(c, body=q.get("body", ["hello"])[0].encode())
    return True


def h_echo(c, q, req):
    method, target, headers, body, head = req
    out = b"method=%s len=%d sha256=%s\n" % (method.encode(), len(body), hashlib.sha256(body).hexdigest().encode()) + head
    respond(c, body=out)
    return True


def pieces(q):
    return q_int(q, "n", 3), q_int(q, "size", 100), q_int(q, "delay", 0) / 1000.0


def h_cl(c, q, req):
    n, size, delay = pieces(q)
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (n * size))
    for i in range(n):
        if delay:
            time.sleep(delay)
        c.send(bytes([ord("a") + i % 26]) * size)
    return True


def h_chunked(c, q, req):
    n, size, delay = pieces(q)
    c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(n):
        if delay:
            time.sleep(delay)
        c.send(b"%x\r\n" % size + bytes([ord("a") + i % 26]) * size + b"\r\n")
    if delay:
        time.sleep(delay)
    c.send(b"0\r\n\r\n")
    return True


def h_close_delimited(c, q, req):
    n, size, delay = pieces(q)
    c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
    for i in range(n):
        if delay:
            time.sleep(delay)
        c.send(bytes([ord("a") + i % 26]) * size)
    return False


def h_never(c, q, req):
    c.wait_eof()
    return False


def h_slow_head(c, q, req):
    time.sleep(q_int(q, "delay", 500) / 1000.0)
    respond(c)
    return True


def h_half_header(c, q, req):
    c.send(b"HTTP/1.1 200 OK\r\nContent-Le")
    c.wait_eof()
    return False


def h_mid_chunk_close(c, q, req):
    c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcde")
    time.sleep(0.05)
    return False


def h_bad_chunk(c, q, req):
    """What h2o writes when a response is aborted mid-body: an invalid chunk, then the close."""
    c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n\r\n1\r\n")
    time.sleep(0.05)
    return False


def h_cl_short(c, q, req):
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
    time.sleep(0.05)
    return False


def h_big_header(c, q, req):
    size = q_int(q, "size", 70000)
    c.send(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * size + b"\r\nContent-Length: 2\r\n\r\nok")
    return True


def h_many_headers(c, q, req):
    n = q_int(q, "n", 150)
    hs = b"".join(b"X-H%d: v\r\n" % i for i in range(n))
    c.send(b"HTTP/1.1 200 OK\r\n" + hs + b"Content-Length: 2\r\n\r\nok")
    return True


def h_drip(c, q, req):
    n, interval, stall = q_int(q, "n", 5), q_int(q, "interval", 100) / 1000.0, q_int(q, "stall", 0)
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (n + (1 if stall else 0)))
    for i in range(n):
        time.sleep(interval)
        c.send(b"x")
    if stall:
        c.wait_eof()
        return False
    return True


def h_close_after(c, q, req):
    respond(c)
    time.sleep(q_int(q, "delay", 50) / 1000.0)
    return False


def h_drop_next(c, q, req):
    respond(c)
    c.drop_next = True
    return True


def h_status(c, q, req):
    code, size = q_int(q, "code", 503), q_int(q, "size", 20)
    body = (b'{"message":"boom"}' + b" " * size)[:size] if size >= 18 else b"x" * size
    respond(c, status=code, body=body)
    return True


def h_malformed(c, q, req):
    c.send(b"HTTX/1.1 200 OK\r\n\r\n")
    time.sleep(0.05)
    return False


def h_reset(c, q, req):
    return False


def h_connection_close(c, q, req):
    respond(c, extra=b"Connection: close\r\n")
    return False


def h_continue(c, q, req):
    c.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    respond(c, body=b"after-continue")
    return True


def h_trailing_garbage(c, q, req):
    c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    return True


gate = threading.Event()


def h_gated(c, q, req):
    """Sends the head and a first piece, then waits for "release" on stdin before the rest."""
    mode = q.get("mode", ["cl"])[0]
    if mode == "cl":
        c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nfirst")
    elif mode == "chunked":
        c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
    else:
        c.send(b"HTTP/1.1 200 OK\r\n\r\nfirst")
    gate.wait(10)
    gate.clear()
    if mode == "cl":
        c.send(b"-second")
    elif mode == "chunked":
        c.send(b"7\r\n-second\r\n0\r\n\r\n")
    else:
        c.send(b"-second")
        return False
    return True


def h_late_garbage(c, q, req):
    """A complete response, then stray bytes in a write (a TLS record) of their own: the connection is out of step."""
    respond(c)
    c.send(b"EXTRA")
    c.wait_eof()
    return False


HANDLERS = {
    "/late-garbage": h_late_garbage,
    "/gated": h_gated,
    "/ok": h_ok,
    "/early-answer": lambda c, q, req: True,  # answered in read_request
    "/echo": h_echo,
    "/cl": h_cl,
    "/chunked": h_chunked,
    "/close-delimited": h_close_delimited,
    "/never": h_never,
    "/slow-head": h_slow_head,
    "/half-header": h_half_header,
    "/mid-chunk-close": h_mid_chunk_close,
    "/cl-short": h_cl_short,
    "/bad-chunk": h_bad_chunk,
    "/big-header": h_big_header,
    "/many-headers": h_many_headers,
    "/drip": h_drip,
    "/close-after": h_close_after,
    "/drop-next": h_drop_next,
    "/status": h_status,
    "/malformed": h_malformed,
    "/reset": h_reset,
    "/connection-close": h_connection_close,
    "/continue": h_continue,
    "/trailing-garbage": h_trailing_garbage,
}


def serve(sock, tls_ctx):
    bump("accepted")
    try:
        if garbage:
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        if tls_ctx is not None:
            try:
                sock = tls_ctx.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError):
                bump("handshake_failures")
                return
        c = Conn(sock)
        while True:
            req = c.read_request()
            bump("requests")
            if c.drop_next:
                return
            c.head_only = req[0] == "HEAD"
            url = urllib.parse.urlsplit(req[1])
            handler = HANDLERS.get(url.path)
            if handler is None:
                respond(c, status=404, body=b"no such behaviour")
                continue
            if not handler(c, urllib.parse.parse_qs(url.query), req):
                return
    except (Closed, OSError, ssl.SSLError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass
        bump("closed")


def control():
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "release":
            gate.set()
        if parts[0] == "wait" and len(parts) == 3:
            key, n = parts[1], int(parts[2])
            deadline = time.monotonic() + 10
            with lock:
                while stats.get(key, 0) < n and time.monotonic() < deadline:
                    lock.wait(0.05)
        print(stats_line(), flush=True)


garbage = False


def main():
    global garbage
    tls_ctx = None
    if "--garbage" in sys.argv:
        garbage = True
    if len(sys.argv) >= 4 and sys.argv[1] == "--tls":
        tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls_ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        tls_ctx.set_alpn_protocols(["http/1.1"])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(128)
    print(f"PORT {ls.getsockname()[1]}", flush=True)

    def acceptor():
        while True:
            try:
                s, _ = ls.accept()
            except OSError:
                return
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=serve, args=(s, tls_ctx), daemon=True).start()

    threading.Thread(target=acceptor, daemon=True).start()
    control()  # returns at stdin EOF
    os._exit(0)

if __name__ == "__main__":
    main()
