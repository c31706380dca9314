"""Gateway throughput with KIRO_WORKERS=2, balanced vs sticky routing (issue 22): kiro-sim with 5 accounts, one
Claude Code session (metadata.user_id) on 32 keep-alive connections of bench_loadgen for 5 s, non-streaming.
The sticky table lives on the pool's loop; the other worker reaches it through the acquire it already makes there.
Run from the source directory after a release build: python3 bench/sticky_e2e.py"""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
os.environ.setdefault("K2A_BIN", os.path.join(ROOT, "build", "kiro2api"))
os.environ.setdefault("K2A_SIM", os.path.join(ROOT, "build", "kiro-sim"))
from k2a import CLIENT_KEY, Gateway, Sim, request, sim_accounts_env  # noqa: E402

sim = Sim()
body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": False,
        "metadata": {"user_id": "user_%s_account__session_3f6c2c1e-8d7b-4b7e-9a51-2f0c1d7e9b44" % ("ab" * 32)},
        "messages": [{"role": "user", "content": "hi"}]}
open("/tmp/pace_body.json", "w").write(json.dumps(body))
open("/tmp/pace_hdrs.txt", "w").write("content-type: application/json\nx-api-key: %s\nanthropic-version: 2023-06-01\n" % CLIENT_KEY)
try:
    for strategy in ["balanced", "sticky", "balanced", "sticky"]:
        env = sim_accounts_env(sim, ["sim-ok-bench%d" % i for i in range(5)],
                               {"KIRO_POOL_STRATEGY": strategy, "KIRO_WORKERS": "2", "LOG_LEVEL": "warn",
                                "KIRO_CATALOG_REFRESH_S": "0", "KIRO_USAGE_POLL_INTERVAL_S": "0"})
        gw = Gateway(env=env)
        try:
            for _ in range(100):
                if all(a["expires_at"] for a in json.loads(request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)[2])["tokens"]):
                    break
                time.sleep(0.05)
            out = subprocess.run([os.path.join(ROOT, "build", "bench", "bench_loadgen"), "-p", str(gw.port), "-m", "POST", "-u", "/v1/messages",
                                  "-b", "/tmp/pace_body.json", "-F", "/tmp/pace_hdrs.txt", "-c", "32", "-d", "5", "-w", "1",
                                  "-e", "echo"], capture_output=True, text=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(strategy, {k: r[k] for k in r if k in ("rps", "requests", "errors", "latency_p50_us", "latency_p99_us")} or r)
        finally:
            gw.stop(); gw.cleanup()
finally:
    sim.cleanup()
