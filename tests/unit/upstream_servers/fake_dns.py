#!/usr/bin/env python3
"""Fake DNS server for the upstream client's tests: UDP on 127.0.0.1, port 0 (prints "PORT <n>").

  --a NAME=IPV4        answer A queries for NAME (repeatable; several --a for one name give several records)
  --aaaa NAME=IPV6     answer AAAA queries for NAME
  --ttl SECONDS        TTL of every answer (default 60)
  --drop NAME          never answer queries for NAME (the client times out)
Any other name gets NXDOMAIN; a known name without records of the asked type gets an empty NOERROR.
Control on stdin: "stats" prints "queries=N q_<name>=N ..." (per-name counts of A+AAAA queries);
"wait KEY N" waits (at most 10 s) until KEY >= N. EOF on stdin ends the process.
"""
import os
import socket
import struct
import sys
import threading
import time

lock = threading.Condition()
counts = {"queries": 0}


def stats_line():
    with lock:
        return " ".join(f"{k}={v}" for k, v in counts.items())


def parse_args(argv):
    a, aaaa, drop, ttl = {}, {}, set(), 60
    i = 0
    while i < len(argv):
        opt, val = argv[i], argv[i + 1]
        i += 2
        if opt == "--a":
            n, ip = val.split("=", 1)
            a.setdefault(n.lower(), []).append(socket.inet_pton(socket.AF_INET, ip))
        elif opt == "--aaaa":
            n, ip = val.split("=", 1)
            aaaa.setdefault(n.lower(), []).append(socket.inet_pton(socket.AF_INET6, ip))
        elif opt == "--ttl":
            ttl = int(val)
        elif opt == "--drop":
            drop.add(val.lower())
        else:
            raise SystemExit(f"unknown option {opt}")
    return a, aaaa, drop, ttl


def qname(msg, off):
    labels = []
    while True:
        n = msg[off]
        off += 1
        if n == 0:
            return ".".join(labels), off
        labels.append(msg[off:off + n].decode("ascii", "replace"))
        off += n


def answer(msg, a, aaaa, drop, ttl):
    qid, flags, qd = struct.unpack("!HHH", msg[:6])
    if qd != 1:
        return None
    name, off = qname(msg, 12)
    qtype, qclass = struct.unpack("!HH", msg[off:off + 4])
    question = msg[12:off + 4]
    lname = name.lower().rstrip(".")
    with lock:
        counts["queries"] += 1
        key = "q_" + lname
        counts[key] = counts.get(key, 0) + 1
        lock.notify_all()
    if lname in drop:
        return None
    rd = flags & 0x0100
    if lname not in a and lname not in aaaa:
        return struct.pack("!HHHHHH", qid, 0x8183 | rd, 1, 0, 0, 0) + question  # NXDOMAIN
    records = a.get(lname, []) if qtype == 1 else aaaa.get(lname, []) if qtype == 28 else []
    out = struct.pack("!HHHHHH", qid, 0x8180 | rd, 1, len(records), 0, 0) + question
    for rdata in records:
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, ttl, len(rdata)) + rdata
    return out


def main():
    a, aaaa, drop, ttl = parse_args(sys.argv[1:])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    print(f"PORT {s.getsockname()[1]}", flush=True)

    def serve():
        while True:
            try:
                msg, peer = s.recvfrom(4096)
                reply = answer(msg, a, aaaa, drop, ttl)
                if reply is not None:
                    s.sendto(reply, peer)
            except (OSError, IndexError, struct.error):
                continue

    threading.Thread(target=serve, daemon=True).start()
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "wait" and len(parts) == 3:
            deadline = time.monotonic() + 10
            with lock:
                while counts.get(parts[1], 0) < int(parts[2]) and time.monotonic() < deadline:
                    lock.wait(0.05)
        print(stats_line(), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
