#!/usr/bin/env python3
"""Tiny HTTP CONNECT proxy for the upstream client's tests: 127.0.0.1, port 0 (prints "PORT <n>").

  --auth USER:PASS     require "Proxy-Authorization: Basic base64(USER:PASS)" (else 407)
  --map NAME=IP        where NAME points (the proxy never uses a resolver); IP literals of loopback are allowed as is
Only loopback targets are ever connected to. Control on stdin: "stats" prints
"accepted=N tunnels=N rejected=N"; "wait KEY N" waits (at most 10 s). EOF on stdin ends the process.
"""
import base64
import os
import socket
import sys
import threading
import time

lock = threading.Condition()
stats = {"accepted": 0, "tunnels": 0, "rejected": 0}


def bump(k):
    with lock:
        stats[k] += 1
        lock.notify_all()


def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def handle(c, auth, names):
    bump("accepted")
    try:
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = c.recv(4096)
            if not data:
                return
            buf += data
        head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        headers = {}
        for line in head[1:]:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
        if method != "CONNECT":
            c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            bump("rejected")
            return
        if auth is not None:
            want = "Basic " + base64.b64encode(auth.encode()).decode()
            if headers.get("proxy-authorization") != want:
                c.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                          b"Proxy-Authenticate: Basic realm=\"test\"\r\nContent-Length: 0\r\n\r\n")
                bump("rejected")
                return
        host, port = target.rsplit(":", 1)
        host = host.strip("[]").lower()
        ip = names.get(host, host)
        if ip not in ("127.0.0.1", "::1"):
            c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            bump("rejected")
            return
        try:
            u = socket.create_connection((ip, int(port)))
        except OSError:
            c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            bump("rejected")
            return
        c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        bump("tunnels")
        t = threading.Thread(target=pipe, args=(u, c), daemon=True)
        t.start()
        pipe(c, u)
        t.join()
        u.close()
    except (OSError, ValueError):
        pass
    finally:
        c.close()


def main():
    auth, names = None, {}
    args = sys.argv[1:]
    for i in range(0, len(args), 2):
        if args[i] == "--auth":
            auth = args[i + 1]
        elif args[i] == "--map":
            n, ip = args[i + 1].split("=", 1)
            names[n.lower()] = ip
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    print(f"PORT {ls.getsockname()[1]}", flush=True)

    def acceptor():
        while True:
            try:
                c, _ = ls.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(c, auth, names), daemon=True).start()

    threading.Thread(target=acceptor, daemon=True).start()
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "wait" and len(parts) == 3:
            deadline = time.monotonic() + 10
            with lock:
                while stats.get(parts[1], 0) < int(parts[2]) and time.monotonic() < deadline:
                    lock.wait(0.05)
        with lock:
            print(" ".join(f"{k}={v}" for k, v in stats.items()), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
