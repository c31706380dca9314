"""Paths, constants, the targets, logging and small helpers shared by the benchmark modules (bench/harness.py)."""
import os
import platform
import resource
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
ROOT = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("K2A_BUILD_DIR", os.path.join(ROOT, "build")))
GATEWAY_BIN = os.environ.get("K2A_GATEWAY_BIN") or os.path.join(BUILD, "kiro2api")  # override: compare two builds
SIM_BIN = os.path.join(BUILD, "kiro-sim")
LOADGEN_BIN = os.path.join(BUILD, "bench", "bench_loadgen")
CONVERT_BIN = os.path.join(BUILD, "bench", "bench_convert")
KEYS_BIN = os.path.join(BUILD, "bench", "bench_keys")
RESULTS_MD = os.path.join(HERE, "RESULTS.md")
NGINX_TEMPLATE = os.path.join(ROOT, "conf", "bench-nginx.conf")
WRK_SCRIPT = os.path.join(HERE, "wrk_post.lua")
SECTION = "## End-to-end (make bench)"
CLIENT_KEY = "bench-client-key-0123456789"
MODEL = "claude-sonnet-4-5"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# targets of the issue (DESIGN: "an order of magnitude cheaper per request")
TARGET_CPU_RATIO = 1.5  # gateway CPU per streamed request / nginx's, stream-small
TARGET_CPU_ES_RATIO = 2.0  # gateway CPU per streamed request / nginx relaying the EventStream untranslated
TARGET_TTFB_P50_US = 150.0  # added TTFB over direct at concurrency 64
TARGET_TTFB_P99_US = 1000.0
TARGET_STREAMS = 10000
TARGET_RSS_MB = 400.0
TARGET_CONVERT_P50_US = 1000.0
TARGET_E2E_RPS = 20000  # stream-small through the gateway at 64 connections, HTTP/1.1 and h2c (issue 23)
TARGET_SIM_SHARE = 0.5  # kiro-sim's CPU per request / the gateway's: the simulator must not be what is measured
TARGET_IR_SMALL = 90000  # instructions per stream-small request (callgrind)
TARGET_RESPONSES_RATIO = 1.10  # Responses stream CPU per request / Chat Completions' (issue 19)
# "no regression of the other dialects": instructions per request recorded in bench/RESULTS.md ("Per-request work,
# Responses against Chat Completions", 0d1218d, the highest of its three runs), and the tolerance (runs move by ~3 %)
REF_IR = {"small": 150503, "openai": 156658}
REF_IR_COMMIT = "0d1218d"
TARGET_IR_REGRESSION = 1.05
# budgets of the features on the request path, each against the path without it in the same rounds
TARGET_REUSE_HANDSHAKES = 0.05  # upstream TLS handshakes per request with KIRO_UPSTREAM_REUSE=account
TARGET_KEYS_RATIO = 1.10  # CPU per request with a managed key (every limit set) / with the built-in key
TARGET_KEYS_NS = 1000  # the key path in process (bench_keys, 10 000 keys, a different key each request)
TARGET_REDIS_RATIO = 1.10  # CPU per request with KIRO_REDIS_URL / without (managed keys in both)


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]



def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not proc.alive():
            raise RuntimeError("%s exited: %s" % (proc.name, proc.stderr_tail()))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("%s is not listening on %d" % (proc.name, port))


def machine():
    info = {"kernel": platform.release(), "cpus": os.cpu_count(), "model": None}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["model"] = v.strip()
            elif k.strip() == "Hypervisor vendor":
                info["hypervisor"] = v.strip()
    except OSError:
        pass
    try:
        info["load"] = os.getloadavg()
    except OSError:
        pass
    info["nofile"] = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            info["max_map_count"] = int(f.read())
    except OSError:
        pass
    vers = {}
    for tool, argv in (("wrk", ["wrk", "-v"]), ("h2load", ["h2load", "--version"]), ("nginx", ["nginx", "-v"]),
                       ("kiro2api", [GATEWAY_BIN, "--version"])):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            vers[tool] = (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            vers[tool] = "?"
    info["versions"] = vers
    try:
        info["commit"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                        text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        if dirty:
            info["commit"] += " (with uncommitted changes)"
    except OSError:
        pass
    return info



def us(v):
    if v is None:
        return "-"
    if v >= 10000:
        return "%.1f ms" % (v / 1000)
    if v >= 1000:
        return "%.2f ms" % (v / 1000)
    return "%.0f µs" % v


