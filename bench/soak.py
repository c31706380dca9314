#!/usr/bin/env python3
"""Soak test: SECONDS of mixed traffic against one gateway and kiro-sim on 127.0.0.1, then a verdict.

Traffic (CLIENTS threads, seeded): Anthropic and OpenAI, streaming and not, text, tool calls, thinking, slow streams,
clients that abort mid-stream, upstream faults (cut after content, bad CRC, exception frames, 429/500 answers, a stall
past the first-byte timeout), while kiro-sim issues 60-second access tokens (background refreshes; sim-rotate-* rotates
its refresh token each time) and a reloader rewrites KIRO_AUTH_TOKEN (an account added / removed) and sends SIGHUP
every RELOAD seconds.

Checks:
  - every request got a complete response or a clean error in its dialect (an HTTP error with the dialect's error body,
    or a stream that ends with an error event); nothing incomplete, malformed or hanging;
  - RSS is flat: the gateway's resident size measured while idle after the warm-up and again at the end differs by
    less than 5 % (the max over the busy samples is reported too);
  - file descriptors are flat: /proc/PID/fd counted while idle after the warm-up and at the end are equal (idle
    upstream connections expire after KIRO_UPSTREAM_IDLE_MS=1000 before each idle count);
  - the gateway exits 0 on SIGTERM.
Exit status 0 when every check passes. `make soak` runs 30 minutes against the release build; CI (.ci/run) runs 2.

Usage: bench/soak.py [--seconds 1800] [--clients 8] [--bin build/kiro2api] [--sim build/kiro-sim] [--json out.json]
"""
import argparse
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 1800)))
ap.add_argument("--clients", type=int, default=8)
ap.add_argument("--reload", type=float, default=20.0, help="seconds between SIGHUP reloads")
ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "kiro2api"))
ap.add_argument("--sim", default=os.path.join(HERE, "..", "build", "kiro-sim"))
ap.add_argument("--seed", type=int, default=1126)
ap.add_argument("--json", help="write the results here")
args = ap.parse_args()
os.environ.setdefault("K2A_BIN", os.path.abspath(args.bin))
os.environ.setdefault("K2A_SIM", os.path.abspath(args.sim))

import k2a  # noqa: E402  (after K2A_BIN/K2A_SIM are set)
from k2a import Gateway, Sim  # noqa: E402
from hostile import (PATHS, abandon_after, body_for, post, proc_fds, proc_rss_kb, tools_for,  # noqa: E402
                     upstream_busy, wait_until)


class Verdicts:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.broken = []
        self.errors = {}  # clean errors of requests that should have completed: status + error type -> count

    def add(self, scenario, outcome, detail=None):
        with self.lock:
            key = (scenario, outcome)
            self.counts[key] = self.counts.get(key, 0) + 1
            if outcome == "broken" and len(self.broken) < 50:
                self.broken.append((scenario, detail))
            if outcome == "clean_error" and detail:
                self.errors[detail] = self.errors.get(detail, 0) + 1


def error_is_clean(dialect, status, data):
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    err = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(err, dict) or not err.get("message") or not isinstance(err.get("type"), str):
        return False
    return status >= 400 and (dialect == "openai" or doc.get("type") == "error")


def stream_verdict(dialect, data):
    """'ok' (complete), 'error' (ends with an error event), or 'broken'."""
    text = data.decode(errors="strict")
    if dialect == "anthropic":
        events = []
        for block in text.split("\n\n"):
            if not block.strip():
                continue
            lines = block.split("\n")
            if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
                return "broken"
            name, payload = lines[0][7:], json.loads(lines[1][6:])
            if payload.get("type") != name:
                return "broken"
            events.append(name)
        if not events:
            return "broken"
        if events[-1] == "message_stop" and events[0] == "message_start":
            return "ok"
        if events[-1] == "error" and "message_stop" not in events:
            return "error"
        return "broken"
    blocks = [b for b in text.split("\n\n") if b.strip()]
    if not blocks:
        return "broken"
    for b in blocks:
        if not (b.startswith("data: ") or b.startswith(":")):
            return "broken"
        if b.startswith("data: {"):
            json.loads(b[6:])
    if blocks[-1] == "data: [DONE]":
        return "ok"
    if blocks[-1].startswith("data: {") and "error" in json.loads(blocks[-1][6:]):
        return "error"
    return "broken"


SCENARIOS = [
    # name, weight, text, stream, tools, expect ("ok": must complete; "fault": a clean error or a complete answer)
    ("text_stream", 20, "soak {n}", True, False, "ok"),
    ("text", 12, "soak {n}", False, False, "ok"),
    ("long_stream", 6, "[[sim:text frames=60 size=32]]", True, False, "ok"),
    ("slow_stream", 3, "[[sim:drip ms=20]] [[sim:text frames=20 size=8]]", True, False, "ok"),
    ("tool_stream", 8, '[[sim:tool name=get_weather input={"city":"Paris {n}"} pieces=5 text="checking"]]', True, True, "ok"),
    ("tool", 6, '[[sim:tool name=get_weather input={"city":"Lyon {n}"} pieces=3]]', False, True, "ok"),
    ("thinking", 4, '[[sim:thinking text="pondering {n}"]] [[sim:text frames=3 size=8]]', True, False, "ok"),
    ("abort", 8, "[[sim:drip ms=10]] [[sim:text frames=40 size=16]]", True, False, "abort"),
    ("cut", 4, "[[sim:text frames=6 size=8]] [[sim:cut after=3]]", True, False, "fault"),
    ("badcrc", 3, "[[sim:text frames=6 size=8]] [[sim:badcrc after=2]]", True, False, "fault"),
    ("exception", 3, "[[sim:text frames=4 size=8]] [[sim:exception type=InternalServerException after=2]]", True, False,
     "fault"),
    # these cool every account they are tried on (the pool's policy for 429/5xx/timeouts): rare, or normal traffic would
    # mostly find every account cooling
    ("status_429", 1, "[[sim:status code=429]]", False, False, "fault"),
    ("status_500", 1, "[[sim:status code=500]]", True, False, "fault"),
    ("stall", 1, "[[sim:stall ms=2500]]", False, False, "fault"),
    ("tool_broken", 2, '[[sim:tool name=get_weather input="{\\"city\\": \\"Ni" pieces=2]]', True, True, "fault"),
]


def client(idx, port, stop, verdicts, rng):
    weights = [s[1] for s in SCENARIOS]
    n = 0
    while not stop.is_set():
        if pause.is_set():
            paused.add(idx)
            time.sleep(0.05)
            continue
        paused.discard(idx)
        name, _, text, stream, tools, expect = rng.choices(SCENARIOS, weights)[0]
        dialect = rng.choice(("anthropic", "openai"))
        n += 1
        body = body_for(dialect, text.replace("{n}", "%d-%d" % (idx, n)), stream=stream,
                        **({"tools": tools_for(dialect)} if tools else {}))
        try:
            if expect == "abort":
                abandon_after(port, PATHS[dialect], body, rng.randint(1, 3000))
                verdicts.add(name, "aborted")
                continue
            st, _, data = post(port, dialect, body, timeout=60)
        except Exception as e:  # a hang (timeout) or a broken connection
            verdicts.add(name, "broken", "%s: %r" % (dialect, e))
            continue
        if st == 200:
            v = stream_verdict(dialect, data) if stream else ("ok" if _complete(dialect, data) else "broken")
        else:
            v = "error" if error_is_clean(dialect, st, data) else "broken"
        if v == "broken":
            verdicts.add(name, "broken", "%s %d %r" % (dialect, st, data[-300:]))
        else:
            verdicts.add(name, "complete" if v == "ok" else "clean_error",
                         _error_class(dialect, st, data) if v != "ok" and expect == "ok" else None)


def _error_class(dialect, status, data):
    """"503 overloaded_error: no usable Kiro account" for the report (the message up to its first colon)."""
    try:
        if status == 200:
            last = [b for b in data.decode().split("\n\n") if b.strip()][-1]
            doc = json.loads(last.split("data: ", 1)[1])
        else:
            doc = json.loads(data)
        err = doc["error"]
        return "%d %s: %s" % (status, err.get("type"), err.get("message", "").split(":")[0][:60])
    except (ValueError, KeyError, IndexError):
        return "%d ?" % status


def _complete(dialect, data):
    try:
        doc = json.loads(data)
    except ValueError:
        return False
    if dialect == "anthropic":
        return doc.get("type") == "message" and doc.get("stop_reason") is not None
    return doc.get("object") == "chat.completion" and doc["choices"][0].get("finish_reason") is not None


pause = threading.Event()
paused = set()


def fd_targets(pid):
    """fd -> target, with the local and remote ports of TCP sockets (from /proc/net/tcp*)."""
    socks = {}
    for table in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    cols = line.split()
                    socks[cols[9]] = "%d->%d st=%s" % (int(cols[1].split(":")[1], 16), int(cols[2].split(":")[1], 16), cols[3])
        except OSError:
            pass
    out = []
    for fd in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if target.startswith("socket:["):
            target += " " + socks.get(target[8:-1], "")
        out.append("%s -> %s" % (fd, target))
    return out


def quiesce(gw, sim, clients, fds_at_most=None):
    """Stops traffic and waits until nothing is in flight and idle upstream connections have expired; returns the
    lowest fd count seen over the next seconds (background refreshes may open an upstream connection at any time: it
    expires after KIRO_UPSTREAM_IDLE_MS=1000), stopping early once it is at most fds_at_most."""
    pause.set()
    wait_until(lambda: len(paused) == clients, 90)
    wait_until(lambda: sim.stats()["open_streams"] == 0 and upstream_busy(gw.port) == 0, 30)
    time.sleep(1.5)
    lowest = proc_fds(gw.p.pid)
    deadline = time.time() + 8
    while time.time() < deadline and (fds_at_most is None or lowest > fds_at_most):
        time.sleep(0.2)
        lowest = min(lowest, proc_fds(gw.p.pid))
    return lowest


def main():
    rng = random.Random(args.seed)
    tmp = tempfile.mkdtemp(prefix="k2a-soak-")
    auth = os.path.join(tmp, "accounts.json")
    base_accounts = [{"refreshToken": "sim-ok-soak%d" % i} for i in range(10)] + [
        {"refreshToken": "sim-rotate-soak"}, {"refreshToken": "sim-429-soak"}]
    extra = {"refreshToken": "sim-ok-soak-extra", "description": "added by reload"}
    with open(auth, "w") as f:
        json.dump(base_accounts, f)
    sim = Sim(args=["--token-ttl", "60"])
    env = {"KIRO_AUTH_TOKEN": auth, "KIRO_API_BASE": sim.base, "KIRO_SOCIAL_REFRESH_URL": sim.base + "/refreshToken",
           "KIRO_IDC_REFRESH_URL": sim.base + "/token", "LOG_LEVEL": "warn", "KIRO_POOL_STRATEGY": "balanced",
           "KIRO_FIRST_BYTE_TIMEOUT_MS": "2000", "KIRO_UPSTREAM_IDLE_MS": "1000", "KIRO_PING_INTERVAL_MS": "60000",
           # a fault that cools accounts (429, 5xx, timeout) takes at most two of them
           "KIRO_MAX_ATTEMPTS": "2",
           "KIRO_STATE_FILE": os.path.join(tmp, "state", "state.json")}
    gw = Gateway(env=env)
    pid = gw.p.pid
    verdicts = Verdicts()
    stop = threading.Event()
    samples = []
    reloads = [0]
    started = time.time()
    warmup = min(max(30.0, args.seconds * 0.1), 120.0)
    result = {"seconds": args.seconds, "clients": args.clients, "warmup_s": warmup}
    threads = [threading.Thread(target=client, args=(i, gw.port, stop, verdicts, random.Random(rng.random())), daemon=True)
               for i in range(args.clients)]

    def reloader():
        with_extra = False
        while not stop.wait(args.reload):
            with_extra = not with_extra
            with open(auth + ".tmp", "w") as f:
                json.dump(base_accounts + ([extra] if with_extra else []), f)
            os.rename(auth + ".tmp", auth)
            gw.send_signal(signal.SIGHUP)
            reloads[0] += 1

    try:
        for t in threads:
            t.start()
        rt = threading.Thread(target=reloader, daemon=True)
        rt.start()
        idle = {}
        deadline = started + args.seconds
        next_sample = started
        while time.time() < deadline:
            now = time.time()
            if now >= next_sample:
                samples.append((round(now - started, 1), proc_rss_kb(pid), proc_fds(pid)))
                next_sample += 5
            if "base" not in idle and now - started >= warmup:
                fds = quiesce(gw, sim, args.clients)
                idle["base"] = (proc_rss_kb(pid), fds, round(time.time() - started, 1))
                result["idle_fd_targets_after_warmup"] = fd_targets(pid)
                pause.clear()
            time.sleep(0.2)
        fds = quiesce(gw, sim, args.clients, fds_at_most=idle["base"][1])
        idle["end"] = (proc_rss_kb(pid), fds, round(time.time() - started, 1))
        result["idle_fd_targets_end"] = fd_targets(pid)
        result["accounts_end"] = [(t["index"], t["state"], t.get("state_reason"), t["requests"], t["errors"]) for t in
                                  json.loads(k2a.request(gw.port, "GET", "/api/tokens", key=k2a.CLIENT_KEY)[2])["tokens"]]
        stop.set()
        pause.clear()
        for t in threads:
            t.join(90)
        rt.join(5)
        status = gw.stop()
        stderr = gw.stderr()
        counts = {}
        for (scenario, outcome), n in verdicts.counts.items():
            counts.setdefault(scenario, {})[outcome] = n
        total = sum(verdicts.counts.values())
        busy_after = [s for s in samples if s[0] >= warmup]
        rss_growth = (idle["end"][0] - idle["base"][0]) / idle["base"][0]
        result.update({
            "requests": total,
            "requests_per_s": round(total / args.seconds, 1),
            "by_scenario": counts,
            "broken": verdicts.broken,
            "reloads": reloads[0],
            "sim": {k: v for k, v in sim.stats().items() if k in ("requests_total", "refreshes_total", "generates_total",
                                                                  "max_open_streams")},
            "idle_rss_kb": {"after_warmup": idle["base"][0], "end": idle["end"][0]},
            "rss_growth_pct": round(rss_growth * 100, 2),
            "busy_rss_kb": {"max_first_half": max((s[1] for s in busy_after[:len(busy_after) // 2]), default=0),
                            "max_second_half": max((s[1] for s in busy_after[len(busy_after) // 2:]), default=0),
                            "median": statistics.median(s[1] for s in busy_after) if busy_after else 0},
            "idle_fds": {"after_warmup": idle["base"][1], "end": idle["end"][1]},
            "busy_fds_max": max((s[2] for s in busy_after), default=0),
            "exit_status": status,
            "sanitizer_or_crash": any(m in stderr for m in k2a.SANITIZER_MARKERS),
            "samples": samples,
        })
        checks = {
            "every request complete or a clean error": not verdicts.broken,
            "normal requests completed": all(counts.get(s[0], {}).get("complete", 0) > 0 for s in SCENARIOS
                                             if s[5] == "ok"),
            "RSS growth after warm-up < 5 %": rss_growth < 0.05,
            "file descriptors flat": idle["end"][1] <= idle["base"][1],
            "SIGHUP reloads happened": reloads[0] > 0 or args.seconds < args.reload * 2,
            "clean exit": status == 0 and not result["sanitizer_or_crash"],
        }
        result["checks"] = checks
        print("soak: %.0f s, %d clients, %d requests (%.1f/s), %d reloads" % (args.seconds, args.clients, total,
                                                                           result["requests_per_s"], reloads[0]))
        for scenario in [s[0] for s in SCENARIOS]:
            print("  %-12s %s" % (scenario, json.dumps(counts.get(scenario, {}), sort_keys=True)))
        print("  RSS idle after warm-up %d KiB, at the end %d KiB (%+.2f %%); busy max %d -> %d KiB" % (
            idle["base"][0], idle["end"][0], rss_growth * 100, result["busy_rss_kb"]["max_first_half"],
            result["busy_rss_kb"]["max_second_half"]))
        print("  fds idle after warm-up %d, at the end %d; busy max %d" % (idle["base"][1], idle["end"][1],
                                                                           result["busy_fds_max"]))
        for name, ok in checks.items():
            print("  [%s] %s" % ("ok" if ok else "FAIL", name))
        for b in verdicts.broken[:10]:
            print("  broken: %s %s" % b)
        result["normal_request_errors"] = verdicts.errors
        for e, n in sorted(verdicts.errors.items(), key=lambda kv: -kv[1])[:8]:
            print("  normal request answered with an error %dx: %s" % (n, e))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        return 0 if all(checks.values()) else 1
    finally:
        stop.set()
        gw.cleanup()
        sim.cleanup()


if __name__ == "__main__":
    sys.exit(main())
