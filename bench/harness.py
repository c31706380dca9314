#!/usr/bin/env python3
"""kiro2api's end-to-end benchmark (`make bench`, `make bench-quick`). Python 3 standard library only.

Starts kiro-sim and the gateway (the Release build in build/, or $K2A_BUILD_DIR) and nginx on loopback, drives them with
wrk (HTTP/1.1), h2load (HTTP/2) and bench_loadgen (HTTP/1.1 with per-request time to first byte, bench/loadgen_bench.c),
and replaces the section "## End-to-end (make bench)" of bench/RESULTS.md with the machine, the exact commands, every
number and the targets (pass/miss). Other sections of RESULTS.md are left alone.

Targets under test:
  gateway   client -> kiro2api -> kiro-sim /generateAssistantResponse (Anthropic/OpenAI <-> Kiro conversion)
  direct    client -> kiro-sim /generateAssistantResponse with the Kiro body the gateway sends (the simulator alone)
  nginx     client -> nginx -> kiro-sim /sim/sse (finished SSE bytes of the same shape: a pure proxy, no translation)
  nginx-es  client -> nginx -> kiro-sim /generateAssistantResponse with the direct target's Kiro request: the simulator's
            EventStream bytes relayed untranslated (what the gateway does, minus the translation)

Features on the request path, each against the path without it in the same alternating rounds (stream-small, wrk, 64
connections): per-account upstream connections over TLS (KIRO_UPSTREAM_REUSE account against never), client keys (a
managed key with every limit against the built-in KIRO_CLIENT_TOKEN; bench_keys in process), the shared store
(KIRO_REDIS_URL against none, managed keys in both, Redis commands per request); the dialects against each other
(Responses, Chat Completions and Anthropic streams in the same rounds) and the instructions per request of each
(callgrind, which repeats where wall CPU does not).

The code is in bench/k2abench/: common (paths, targets), proc (processes, /proc), load (wrk, h2load, bench_loadgen),
bodies (requests, the Kiro-body capture), bench (the run and its plan), scenarios_core, scenarios_dialects,
scenarios_features, render and report_extra (the section of RESULTS.md).

Everything is a ratio inside one run: the machine is shared and noisy. Nothing is pinned by default: on a shared 2-core
VM, pinning made tail latency worse (a pinned process cannot move off a core another tenant's job is using). --pin puts
the server under test on the first CPU and the simulator and the load generator on the others (taskset).

  python3 bench/harness.py [--quick] [--only stream-small,cc,...] [--pin] [--perf] [--no-write] [--json FILE]
  python3 bench/harness.py --callgrind [N]   instructions per request of the gateway under valgrind (repeatable on a
                                             noisy machine: the way to compare before/after a change); prints only that
"""
import argparse
import json
import os
import resource
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from k2abench.bench import Bench  # noqa: E402
from k2abench.common import (GATEWAY_BIN, LOADGEN_BIN, RESULTS_MD, SECTION, SIM_BIN, TARGET_STREAMS, log)  # noqa: E402
from k2abench.proc import PROCS  # noqa: E402
from k2abench.render import evaluate, render, replace_section  # noqa: E402


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 4 minutes: shorter runs, fewer rounds and cells")
    ap.add_argument("--callgrind-kind", default="small", choices=("small", "openai", "responses", "responses-instructions"),
                    help="the request --callgrind sends: stream-small (Anthropic, default), its Chat Completions or its "
                         "Responses form (system text as a developer message, or as instructions)")
    ap.add_argument("--only", help="comma-separated scenarios: sim,stream-small,cpu,logging,cc,openai,responses,nonstream,"
                                   "reuse,keys,redis,many-streams,workers,convert,callgrind")
    ap.add_argument("--duration", type=int, help="seconds per measurement (default 10, quick 2)")
    ap.add_argument("--compare-gateway", metavar="BIN",
                    help="cpu scenario: also measure this other kiro2api binary in the same rounds (before/after)")
    ap.add_argument("--compare-sim", metavar="BIN",
                    help="sim scenario: also measure this other kiro-sim binary in the same rounds (before/after)")
    ap.add_argument("--pin", action="store_true", help="pin the server under test to the first CPU, the rest to the others")
    ap.add_argument("--perf", action="store_true", help="also profile the gateway with perf record -g")
    ap.add_argument("--no-write", action="store_true", help="print the section instead of writing bench/RESULTS.md")
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--callgrind", type=int, nargs="?", const=1000, metavar="N",
                    help="only count the gateway's instructions per request under callgrind (N requests, default 1000)")
    ap.add_argument("--callgrind-out", metavar="FILE", help="with --callgrind: keep the callgrind dump (callgrind_annotate)")
    args = ap.parse_args()
    # the children run in temporary directories: the compared binaries by absolute path
    for k in ("compare_gateway", "compare_sim"):
        if getattr(args, k):
            setattr(args, k, os.path.abspath(getattr(args, k)))

    for b in (GATEWAY_BIN, SIM_BIN, LOADGEN_BIN):
        if not os.path.exists(b):
            sys.exit("bench: %s is missing: build first (make build, Release)" % b)
    for tool in ("wrk", "h2load", "nginx"):
        if shutil.which(tool) is None and not (tool == "nginx" and os.path.exists("/usr/sbin/nginx")):
            sys.exit("bench: %s is missing: run deps/install.sh bench" % tool)
    # 10 000 streams: raise the open-file soft limit to the hard limit (every child inherits it)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 2 * TARGET_STREAMS + 1000:
        log("warning: the open-file hard limit is %d; the 10 000-stream run needs ~%d in the gateway" % (
            hard, TARGET_STREAMS + 1000))

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    bench = Bench(args)
    if args.callgrind:
        try:
            bench.callgrind(args.callgrind)
        finally:
            PROCS.stop_all()
            shutil.rmtree(bench.tmp, ignore_errors=True)
        return
    try:
        res = bench.main()
    except KeyboardInterrupt:
        log("interrupted: stopping every process")
        sys.exit(130)
    finally:
        PROCS.stop_all()
        shutil.rmtree(bench.tmp, ignore_errors=True)
    text = render(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    if args.no_write:
        print(text)
    else:
        replace_section(RESULTS_MD, text)
        log("wrote %s (section %r)" % (RESULTS_MD, SECTION))
    for name, val, ok in evaluate(res):
        log("target: %-6s %s: %s" % (ok, name, val))


if __name__ == "__main__":
    main()
