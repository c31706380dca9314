#!/usr/bin/env python3
"""The shared store's added cost per request, end to end, in one run: kiro-sim, a redis-server, and the gateway started
twice on the same accounts (KIRO_REDIS_URL unset, then set), each driven by the same h2load load (non-streaming
/v1/messages, small answer). Prints, per configuration, requests/s, the mean request time h2load measured and the
gateway's CPU per request (utime+stime from /proc), then the difference. Rounds alternate to spread the machine's noise.
  python3 bench/redis_e2e.py [--requests N] [--rounds R]     (from the source tree, after a Release build)
With --key-limits each gateway's load goes through a managed client key with every limit set (rpm 10000, concurrency
1000, credits and tokens per day): with Redis that adds the shared admission (one EVAL awaited per request), the
release and the usage charge (not awaited) to each request.
Loopback only."""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("K2A_BIN", os.path.join(HERE, "..", "build", "kiro2api"))
os.environ.setdefault("K2A_SIM", os.path.join(HERE, "..", "build", "kiro-sim"))

import k2a  # noqa: E402
from k2a import CLIENT_KEY, Gateway, Sim, sim_accounts_env  # noqa: E402
from redis_util import Redis  # noqa: E402


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def run_load(gw, body_path, n, c, key=CLIENT_KEY):
    cmd = ["h2load", "-n", str(n), "-c", str(c), "-m", "1", "-d", body_path, "-H", "content-type: application/json",
           "-H", "x-api-key: " + key, "http://127.0.0.1:%d/v1/messages" % gw.port]
    t0 = cpu_ticks(gw.p.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600).stdout
    ticks = cpu_ticks(gw.p.pid) - t0
    ok = int(re.search(r"(\d+) succeeded", out).group(1))
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    m = re.search(r"time for request:\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)\s+([\d.]+)(\w+)", out)
    scale = {"us": 1, "ms": 1000, "s": 1e6}
    mean_us = float(m.group(5)) * scale[m.group(6)]
    return ok, rps, mean_us, ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(ok, 1)


def redis_calls(redis):
    """Commands Redis has executed so far (INFO commandstats)."""
    return sum(int(m) for m in re.findall(r"calls=(\d+)", redis.cli("INFO", "commandstats")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--key-limits", action="store_true")
    args = ap.parse_args()
    if args.key_limits and (args.requests * args.rounds + 500) > 9000:
        ap.error("--key-limits: keep --requests x --rounds under 8500 (the key's rpm of 10000)")
    tmp = tempfile.mkdtemp(prefix="k2a-redis-e2e-")
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": False,
            "messages": [{"role": "user", "content": "[[sim:text frames=20 size=16]] hello"}]}
    body_path = os.path.join(tmp, "body.json")
    with open(body_path, "w") as f:
        json.dump(body, f)
    sim, redis = Sim(), Redis()
    accounts = ["sim-ok-bench%d" % i for i in range(4)]
    admin = "bench-admin-token-0123456789abcdef"
    quiet = {"KIRO_ADMIN_TOKEN": admin, "KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_CATALOG_REFRESH_S": "0", "LOG_LEVEL": "warn", "KIRO_WORKERS": "1",
             "KIRO_POOL_STRATEGY": "round_robin"}
    gws = {}
    try:
        gws["file"] = Gateway(env=sim_accounts_env(sim, accounts, quiet))
        shared = dict(quiet, KIRO_REDIS_URL=redis.url)
        gws["redis"] = Gateway(env=sim_accounts_env(sim, accounts, shared))
        keys = {k: CLIENT_KEY for k in gws}
        if args.key_limits:
            limits = {"rpm": 10000, "concurrency": 1000, "credits_day": 1e6, "tokens_day": 10 ** 12}
            for k, gw in gws.items():
                st, _, b = k2a.request(gw.port, "POST", "/api/admin/keys", {"name": "bench-" + k, "limits": limits},
                                       headers={"authorization": "Bearer " + admin})
                assert st == 201, b
                keys[k] = json.loads(b)["key"]
        for k, gw in gws.items():  # warm-up: tokens, connections
            run_load(gw, body_path, 500, args.clients, keys[k])
        res = {k: [] for k in gws}
        calls = 0
        for _ in range(args.rounds):
            for k, gw in gws.items():
                c0 = redis_calls(redis)
                res[k].append(run_load(gw, body_path, args.requests, args.clients, keys[k]))
                if k == "redis":
                    calls += redis_calls(redis) - c0 - 1  # less the INFO itself
        print("h2load -n %d -c %d -m 1, non-streaming /v1/messages (20 text frames), KIRO_WORKERS=1, 4 accounts, %d rounds%s"
              % (args.requests, args.clients, args.rounds, ", a client key with every limit" if args.key_limits else ""))
        agg = {}
        for k, rows in res.items():
            ok = sum(r[0] for r in rows)
            rps = sum(r[1] for r in rows) / len(rows)
            mean = sum(r[2] for r in rows) / len(rows)
            cpu = sum(r[3] * r[0] for r in rows) / ok
            agg[k] = (rps, mean, cpu)
            print("%-6s %6d ok  %8.0f req/s  mean %7.1f us  gateway CPU %6.1f us/request   rounds: %s" % (
                k, ok, rps, mean, cpu, ", ".join("%.1f us CPU" % r[3] for r in rows)))
        print("redis - file: mean %+.1f us, CPU %+.1f us per request" % (agg["redis"][1] - agg["file"][1],
                                                                           agg["redis"][2] - agg["file"][2]))
        print("Redis commands during the redis rounds: %d for %d requests (%.4f per request)" % (
            calls, args.requests * args.rounds, calls / (args.requests * args.rounds)))
        st = redis.hgetall(redis.keys("kiro2api:acct:*")[0])
        print("counters in Redis for one account after the run: req=%s in=%s out=%s" % (st.get("req"), st.get("in"),
                                                                                        st.get("out")))
    finally:
        for gw in gws.values():
            gw.cleanup()
        sim.cleanup()
        redis.cleanup()


if __name__ == "__main__":
    main()
