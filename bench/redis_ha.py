#!/usr/bin/env python3
"""Two replicas on one Redis behind nginx (conf/ha-nginx.conf with loopback addresses), against one replica alone, in one
run: correctness under load, not speed. kiro-sim issues short-lived tokens (--token-ttl) and rotates the refresh tokens of
its sim-rotate-* accounts, so both replicas refresh ahead while h2load runs; at the end every request must have
succeeded, no refresh may have been refused, and the refreshes per account stay at about one per token lifetime.
  python3 bench/redis_ha.py [--requests N] [--ttl S]      (from the source tree, after a Release build; needs nginx)
Loopback only."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("K2A_BIN", os.path.join(HERE, "..", "build", "kiro2api"))
os.environ.setdefault("K2A_SIM", os.path.join(HERE, "..", "build", "kiro-sim"))

from k2a import CLIENT_KEY, Gateway, Sim, free_port, sim_accounts_env  # noqa: E402
from redis_util import Redis  # noqa: E402


def h2load(port, body_path, n, c):
    cmd = ["h2load", "--h1", "-n", str(n), "-c", str(c), "-d", body_path, "-H", "content-type: application/json",
           "-H", "x-api-key: " + CLIENT_KEY, "http://127.0.0.1:%d/v1/messages" % port]
    t0 = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200).stdout
    dt = time.monotonic() - t0
    m = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    return {"done": int(m.group(2)), "ok": int(m.group(3)), "failed": int(m.group(4)) + int(m.group(5)),
            "2xx": int(codes.group(1)), "5xx": int(codes.group(4)), "seconds": dt, "rps": int(m.group(2)) / dt}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--ttl", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="k2a-redis-ha-")
    body_path = os.path.join(tmp, "body.json")
    with open(body_path, "w") as f:
        json.dump({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                   "messages": [{"role": "user", "content": "[[sim:text frames=20 size=16]] hello"}]}, f)
    accounts = ["sim-rotate-ha%d" % i for i in range(4)]
    quiet = {"KIRO_USAGE_POLL_INTERVAL_S": "0", "KIRO_CATALOG_REFRESH_S": "0", "LOG_LEVEL": "warn", "KIRO_WORKERS": "1",
             "KIRO_POOL_STRATEGY": "round_robin"}
    procs = []
    nginx = None
    try:
        results = {}
        # one replica alone (its own simulator, no Redis)
        sim1 = Sim(args=["--token-ttl", str(args.ttl)])
        procs.append(sim1)
        one = Gateway(env=sim_accounts_env(sim1, accounts, quiet))
        procs.append(one)
        results["one replica"] = (h2load(one.port, body_path, args.requests, args.clients), sim1.stats())
        # two replicas on one Redis behind nginx
        sim2 = Sim(args=["--token-ttl", str(args.ttl)])
        procs.append(sim2)
        redis = Redis()
        gws = [Gateway(env=sim_accounts_env(sim2, accounts, dict(quiet, KIRO_REDIS_URL=redis.url))) for _ in range(2)]
        procs.extend(gws)
        lb_port = free_port()
        conf = open(os.path.join(HERE, "..", "conf", "ha-nginx.conf")).read()
        conf = conf.replace("kiro2api-a:8080", "127.0.0.1:%d" % gws[0].port).replace("kiro2api-b:8080", "127.0.0.1:%d" % gws[1].port)
        conf = conf.replace("listen 8080;", "listen 127.0.0.1:%d;" % lb_port).replace("worker_processes 1;",
                                                                                   "worker_processes 1;\ndaemon off;\npid %s/nginx.pid;" % tmp)
        conf = conf.replace("http {", "http {\n    access_log off;\n    client_body_temp_path %s;\n    proxy_temp_path %s;" % (tmp, tmp))
        with open(os.path.join(tmp, "nginx.conf"), "w") as f:
            f.write(conf)
        nginx = subprocess.Popen(["nginx", "-c", os.path.join(tmp, "nginx.conf"), "-p", tmp, "-e", os.path.join(tmp, "err.log")])
        time.sleep(0.5)
        results["two replicas + Redis + nginx"] = (h2load(lb_port, body_path, args.requests, args.clients), sim2.stats())
        print("h2load --h1 -n %d -c %d, streaming /v1/messages (20 text frames), KIRO_WORKERS=1 per replica, 4 sim-rotate "
              "accounts, kiro-sim --token-ttl %d" % (args.requests, args.clients, args.ttl))
        for name, (r, st) in results.items():
            accts = [st["accounts"][a] for a in accounts]
            print("%-30s %6d done, %6d 2xx, %d failed, %.0f req/s over %.1f s; refreshes per account %s, refused refreshes %d, "
                  "sim rejections %d" % (name, r["done"], r["2xx"], r["failed"], r["rps"], r["seconds"],
                                          [a["refreshes"] for a in accts], sum(a["refresh_failures"] for a in accts),
                                          st["rejections"]))
        redis.cleanup()
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait()
        for p in reversed(procs):
            p.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
