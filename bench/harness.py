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

Everything is a ratio inside one run: the machine is shared and noisy. Nothing is pinned by default: on a shared 2-core
VM, pinning made tail latency worse (a pinned process cannot move off a core another tenant's job is using). --pin puts
the server under test on the first CPU and the simulator and the load generator on the others (taskset).

  python3 bench/harness.py [--quick] [--only stream-small,cc,...] [--pin] [--perf] [--no-write] [--json FILE]
  python3 bench/harness.py --callgrind [N]   instructions per request of the gateway under valgrind (repeatable on a
                                             noisy machine: the way to compare before/after a change); prints only
"""
import argparse
import http.client
import http.server
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("K2A_BUILD_DIR", os.path.join(ROOT, "build")))
GATEWAY_BIN = os.environ.get("K2A_GATEWAY_BIN") or os.path.join(BUILD, "kiro2api")  # override: compare two builds
SIM_BIN = os.path.join(BUILD, "kiro-sim")
LOADGEN_BIN = os.path.join(BUILD, "bench", "bench_loadgen")
CONVERT_BIN = os.path.join(BUILD, "bench", "bench_convert")
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


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# processes


class Procs:
    """Every process the harness starts; stop_all() ends them (SIGTERM, then SIGKILL) whatever happened."""

    def __init__(self):
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []


PROCS = Procs()


class Proc:
    """A long-running child in its own process group, stdout read for a 'listening on ...:PORT' line when asked."""

    def __init__(self, name, argv, env=None, cpus=None, wait_listen=0, cwd=None, timeout=20):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="k2a-bench-%s-" % name)
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.argv = (["taskset", "-c", cpus] if cpus else []) + list(argv)
        full_env = dict(os.environ)
        for k in ("KIRO_AUTH_TOKEN", "KIRO_CLIENT_TOKEN", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            full_env.pop(k, None)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        self.env = env or {}
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.err, env=full_env, cwd=cwd or self.tmp,
                                  start_new_session=True)
        PROCS.add(self)
        self.ports = []
        deadline = time.time() + timeout
        while len(self.ports) < wait_listen:
            if time.time() > deadline or self.p.poll() is not None:
                raise RuntimeError("%s did not start (exit %s): %s" % (name, self.p.poll(), self.stderr_tail()))
            line = self.p.stdout.readline().decode(errors="replace")
            m = re.search(r"listening on https?://[^ ]*:(\d+)", line)
            if m:
                self.ports.append(int(m.group(1)))
        self.port = self.ports[0] if self.ports else None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            for _ in self.p.stdout:
                pass
        except (OSError, ValueError):
            pass

    @property
    def pid(self):
        return self.p.pid

    def stderr_tail(self, n=3000):
        try:
            self.err.flush()
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait()
        else:
            try:  # children left in the group (nginx workers)
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.err.close()
            self.p.stdout.close()
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def process_tree(pid):
    """pid and its descendants (nginx master + workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def proc_snapshot(pids):
    """CPU ticks (user+sys), read/write-family syscalls (/proc/PID/io: read, write, readv, writev; not recv/send), and
    voluntary context switches (the loop went to sleep in epoll_wait: one per wake-up), summed over the processes."""
    cpu = user = syscr = syscw = wakeups = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            user += int(fields[11])
            with open("/proc/%d/io" % pid) as f:
                for line in f:
                    k, v = line.split(":")
                    if k == "syscr":
                        syscr += int(v)
                    elif k == "syscw":
                        syscw += int(v)
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        wakeups += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return {"ticks": cpu, "user_ticks": user, "syscr": syscr, "syscw": syscw, "wakeups": wakeups}


def proc_mem(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class Meter:
    """CPU and syscall deltas of named process sets across one load run."""

    def __init__(self, sets):
        self.sets = sets  # name -> callable returning pids

    def __enter__(self):
        self.before = {k: proc_snapshot(f()) for k, f in self.sets.items()}
        self.t0 = time.time()
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.t0
        self.delta = {}
        for k, f in self.sets.items():
            after = proc_snapshot(f())
            self.delta[k] = {x: after[x] - self.before[k][x] for x in after}
        return False

    def per_request(self, name, nreq):
        d = self.delta.get(name)
        if not d or nreq <= 0:
            return None
        return {"cpu_us": d["ticks"] * 1e6 / CLK_TCK / nreq, "cpu_s": d["ticks"] / CLK_TCK,
                "user_us": d["user_ticks"] * 1e6 / CLK_TCK / nreq,
                "util": d["ticks"] / CLK_TCK / self.wall if self.wall > 0 else 0,
                "syscalls": (d["syscr"] + d["syscw"]) / nreq, "wakeups": d["wakeups"] / nreq}


# ---------------------------------------------------------------------------------------------------------------
# load generators


def pct(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


class Runner:
    def __init__(self, args, tmp, client_cpus):
        self.args = args
        self.tmp = tmp
        self.client_cpus = client_cpus
        self.commands = []  # (label, command line) for the report
        self.header_files = {}

    def _prefix(self, cpus=None):
        cpus = cpus if cpus is not None else self.client_cpus
        return ["taskset", "-c", cpus] if cpus else []

    def note(self, label, argv, env=None):
        envs = " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in (env or {}).items())
        line = (envs + " " if envs else "") + " ".join(shlex.quote(a) for a in argv)
        line = line.replace(self.tmp + "/", "$TMP/")
        self.commands.append((label, line))

    def headers_file(self, headers):
        """The headers in a file of $TMP (one per line), shared by wrk (WRK_HEADERS_FILE) and bench_loadgen (-F)."""
        path = self.header_files.get(tuple(headers))
        if path is None:
            path = os.path.join(self.tmp, "headers-%d.txt" % len(self.header_files))
            with open(path, "w") as f:
                f.write("".join(h + "\n" for h in headers))
            self.header_files[tuple(headers)] = path
        return path

    def wrk(self, label, port, path, body_file, headers, conns, duration, expect, threads=1):
        env = {"WRK_BODY_FILE": body_file, "WRK_HEADERS_FILE": self.headers_file(headers), "WRK_EXPECT": expect or ""}
        argv = ["wrk", "-t%d" % threads, "-c%d" % max(conns, threads), "-d%ds" % duration, "--latency", "-s", WRK_SCRIPT,
                "http://127.0.0.1:%d%s" % (port, path)]
        self.note(label, argv, env)
        out = subprocess.run(self._prefix() + argv, capture_output=True, text=True, env=dict(os.environ, **env),
                             timeout=duration + 60)
        m = re.search(r"WRK_JSON (\{.*\})", out.stdout)
        if not m:
            raise RuntimeError("wrk failed: %s %s" % (out.stdout[-2000:], out.stderr[-2000:]))
        r = json.loads(m.group(1))
        errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"] + r["checked_bad"]
        return {"tool": "wrk", "proto": "h1", "conns": conns, "requests": r["requests"], "ok": r["checked_ok"] if expect else None,
                "errors": errors, "rps": r["requests"] / (r["duration_us"] / 1e6), "p50_us": r["p50_us"],
                "p99_us": r["p99_us"], "mean_us": r["mean_us"], "bytes": r["bytes"]}

    def h2load(self, label, port, path, body_file, headers, conns, streams, duration=None, nreq=None, warmup=1,
               background=False):
        log_file = os.path.join(self.tmp, "h2load-%d.log" % len(self.commands))
        argv = ["h2load", "-c", str(conns), "-m", str(streams), "-d", body_file]
        if nreq is not None:
            argv += ["-n", str(nreq)]
        else:
            argv += ["-D", str(duration), "--warm-up-time", str(warmup)]
        hargs = []
        for h in headers:
            hargs += ["-H", h]
        argv += ["--log-file", log_file, "http://127.0.0.1:%d%s" % (port, path)]
        # the report shows the header list as the file it is also written to (each line one -H)
        self.note(label, argv[:1] + ["-H", "@" + self.headers_file(headers)] + argv[1:])
        argv = argv[:1] + hargs + argv[1:]
        p = subprocess.Popen(self._prefix() + argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if background:
            return p, log_file
        return self.h2load_result(p, log_file, conns * streams)

    def h2load_result(self, p, log_file, concurrency, timeout=600):
        out, err = p.communicate(timeout=timeout)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, "
                      r"(\d+) timeout", out)
        fin = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
        codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        traffic = re.search(r"traffic: .*?\((\d+)\) total.*?\((\d+)\) headers.*?\((\d+)\) data", out)
        if not (m and fin):
            raise RuntimeError("h2load failed: %s %s" % (out[-2000:], err[-2000:]))
        lat = []
        try:
            with open(log_file) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 3 and parts[1].startswith("2"):
                        lat.append(int(parts[2]))
        except OSError:
            pass
        done, ok = int(m.group(3)), int(m.group(4))
        return {"tool": "h2load", "proto": "h2", "conns": concurrency, "requests": done, "ok": ok,
                "errors": int(m.group(5)) + int(m.group(6)) + int(m.group(7)) + (int(codes.group(3)) + int(codes.group(4))
                                                                                  if codes else 0),
                "started": int(m.group(2)), "total": int(m.group(1)),
                "rps": float(fin.group(2)), "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99),
                "data_bytes": int(traffic.group(3)) if traffic else None, "raw": out}

    def loadgen(self, label, port, path, body_file, headers, conns, duration, expect, warmup=0.5, stagger_ms=0):
        argv = [LOADGEN_BIN, "-p", str(port), "-u", path, "-b", body_file, "-F", self.headers_file(headers), "-c", str(conns),
                "-d", str(duration), "-w", str(warmup)]
        if stagger_ms:
            argv += ["-z", str(stagger_ms)]
        if expect:
            argv += ["-e", expect]
        self.note(label, argv)
        out = subprocess.run(self._prefix() + argv, capture_output=True, text=True, timeout=duration + 60)
        if out.returncode != 0:
            raise RuntimeError("bench_loadgen failed: %s" % out.stderr[-2000:])
        r = json.loads(out.stdout.strip().splitlines()[-1])
        res = {"tool": "loadgen", "proto": "h1", "conns": conns, "requests": r["requests"], "errors": r["errors"],
               "rps": r["rps"], "ok": r["requests"]}
        if r["ttfb_us"]:
            res.update({"ttfb_p50_us": r["ttfb_us"]["p50"], "ttfb_p99_us": r["ttfb_us"]["p99"],
                        "p50_us": r["latency_us"]["p50"], "p99_us": r["latency_us"]["p99"]})
        return res


# ---------------------------------------------------------------------------------------------------------------
# request bodies


def filler(n):
    text = "You are a helpful assistant. Answer briefly and precisely; cite the file and the line you mean. "
    return (text * (n // len(text) + 1))[:n]


# kiro-sim charges every answer against the account's credits (550 in all); a full run sends ~10^5 requests, and a gateway
# started late would find the account exhausted: every benchmark answer is free.
FREE = "[[sim:usage credits=0]] "


def anthropic_small(directive, stream=True, size=2048):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "system": "",
         "messages": [{"role": "user", "content": "Say something. " + FREE + directive}]}
    b["system"] = filler(max(0, size - len(json.dumps(b))))
    return b


def openai_small(directive, stream=True, size=2048):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream,
         "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Say something. " + FREE + directive}]}
    b["messages"][0]["content"] = filler(max(0, size - len(json.dumps(b))))
    return b


def responses_small(directive, stream=True, size=2048, instructions=False):
    """The OpenAI Responses form of openai_small: the system text as a developer message before the user text (the
    Codex CLI's shape), or as `instructions` (which every response object then echoes: three times in a stream)."""
    if instructions:
        b = {"model": MODEL, "max_output_tokens": 1024, "stream": stream, "instructions": "",
             "input": "Say something. " + FREE + directive}
        b["instructions"] = filler(max(0, size - len(json.dumps(b))))
        return b
    b = {"model": MODEL, "max_output_tokens": 1024, "stream": stream,
         "input": [{"role": "developer", "content": ""}, {"role": "user", "content": "Say something. " + FREE + directive}]}
    b["input"][0]["content"] = filler(max(0, size - len(json.dumps(b))))
    return b


CC_TOOL_DIRECTIVE = (FREE + '[[sim:tool name=Bash input={"command":"ls -la src","description":"List the sources"} pieces=6 '
                     'text="Let me look at the sources."]]')


def claude_code_body():
    """tests/fixtures/clients/cc-print-json-2.json (Claude Code 2.1.197, 24 tools, ~78 KB), stream true, with a directive
    in the last user message asking the simulator for a text block then a Bash tool call."""
    with open(os.path.join(ROOT, "tests", "fixtures", "clients", "cc-print-json-2.json")) as f:
        fx = json.load(f)
    b = fx["body"]
    b["stream"] = True
    last_user = [m for m in b["messages"] if m["role"] == "user"][-1]
    if isinstance(last_user["content"], str):
        last_user["content"] += " " + CC_TOOL_DIRECTIVE
    else:
        last_user["content"].append({"type": "text", "text": CC_TOOL_DIRECTIVE})
    headers = ["%s: %s" % (k, v) for k, v in fx["headers"].items()
               if k in ("anthropic-beta", "anthropic-version", "x-claude-code-session-id", "user-agent", "x-app")]
    return b, fx["url"], headers


# ---------------------------------------------------------------------------------------------------------------
# the Kiro bodies the gateway sends (for the direct baseline): a one-shot capture upstream


class Capture:
    """A loopback stand-in for Kiro's generateAssistantResponse that records the first request of each body it is
    sent and answers 400: the harness sends each scenario's client request through a gateway pointed at it once, then
    posts the recorded Kiro body straight to the simulator for the direct baseline."""

    def __init__(self):
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path.startswith("/generateAssistantResponse"):
                    outer.requests.append((dict(self.headers.items()), body))
                msg = b'{"message":"Improperly formed request.","reason":null}'
                self.send_response(400)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            do_GET = do_POST

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_request(port, method, path, body=None, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def hdict(lines):
    return dict(h.split(": ", 1) for h in lines)


# ---------------------------------------------------------------------------------------------------------------
# the run


class Bench:
    def __init__(self, args):
        self.args = args
        self.quick = args.quick
        self.tmp = tempfile.mkdtemp(prefix="k2a-bench-")
        self.results = {"scenarios": {}, "notes": []}
        self.only = set(args.only.split(",")) if args.only else None
        cpus = sorted(os.sched_getaffinity(0))
        self.ncpu = len(cpus)
        if not args.pin or len(cpus) < 2 or shutil.which("taskset") is None:
            self.sut_cpus = self.aux_cpus = None
            self.pinning = "none (the scheduler places every process)"
        else:
            self.sut_cpus = str(cpus[0])
            self.aux_cpus = ",".join(str(c) for c in cpus[1:])
            self.pinning = "server under test on CPU %s; kiro-sim and the load generator on CPU %s (taskset)" % (
                self.sut_cpus, self.aux_cpus)
        self.run = Runner(args, self.tmp, self.aux_cpus)
        d = args.duration or (2 if self.quick else 10)
        self.d = d

    def want(self, name):
        return self.only is None or name in self.only

    def write_body(self, name, obj):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(obj if isinstance(obj, bytes) else json.dumps(obj).encode())
        return path

    # ---- processes

    def start_sim(self):
        self.sim = Proc("kiro-sim", [SIM_BIN, "--port", "0", "--fixtures-dir",
                                     os.path.join(ROOT, "tests", "fixtures", "upstream")], cpus=self.aux_cpus, wait_listen=1)
        st, _, body = http_request(self.sim.port, "POST", "/refreshToken", json.dumps({"refreshToken": "sim-ok-direct"}),
                                   {"content-type": "application/json"})
        assert st == 200, body
        self.direct_token = json.loads(body)["accessToken"]

    def gateway_env(self, api_base, extra=None):
        env = {
            "KIRO_HOST": "127.0.0.1", "PORT": "0", "KIRO_CLIENT_TOKEN": CLIENT_KEY, "LOG_LEVEL": "warn",
            "KIRO_AUTH_TOKEN": json.dumps([{"auth": "Social", "refreshToken": "sim-ok-bench"}]),
            "KIRO_API_BASE": api_base,
            "KIRO_SOCIAL_REFRESH_URL": "http://127.0.0.1:%d/refreshToken" % self.sim.port,
            "KIRO_IDC_REFRESH_URL": "http://127.0.0.1:%d/token" % self.sim.port,
            "KIRO_STATE_FILE": os.path.join(tempfile.mkdtemp(prefix="state-", dir=self.tmp), "state.json"),
            # one upstream connection per stream in flight, kept alive between requests (the default 256 would queue
            # the 512- and 10 000-stream runs, which measure the gateway, not a connection limit)
            "KIRO_UPSTREAM_MAX_CONNS": "16384", "KIRO_UPSTREAM_MAX_IDLE": "1024", "KIRO_UPSTREAM_MAX_IDLE_PER_ACCOUNT": "1024",
            "KIRO_USAGE_POLL_INTERVAL_S": "0",
        }
        env.update(extra or {})
        return env

    def start_gateway(self, name="kiro2api", extra=None, cpus="default", api_base=None):
        env = self.gateway_env(api_base or "http://127.0.0.1:%d" % self.sim.port, extra)
        g = Proc(name, [GATEWAY_BIN], env=env, cpus=self.sut_cpus if cpus == "default" else cpus, wait_listen=1)
        g.env = env
        return g

    def start_nginx(self, workers=1):
        prefix = tempfile.mkdtemp(prefix="nginx-", dir=self.tmp)
        for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(prefix, d), exist_ok=True)
        ports = [free_port(), free_port(), free_port(), free_port()]
        with open(NGINX_TEMPLATE) as f:
            conf = f.read()
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        for k, v in {"PREFIX": prefix, "PORT": ports[0], "H2_PORT": ports[1], "SIM_PORT": self.sim.port,
                     "WORKERS": workers, "QUERY": "frames=20&size=16&writes=1",
                     "ES_PORT": ports[2], "ES_H2_PORT": ports[3],
                     "WORKER_CONNECTIONS": max(1024, nofile - 64)}.items():
            conf = conf.replace("{{%s}}" % k, str(v))
        conf_path = os.path.join(prefix, "nginx.conf")
        with open(conf_path, "w") as f:
            f.write(conf)
        argv = [shutil.which("nginx") or "/usr/sbin/nginx", "-p", prefix, "-c", conf_path, "-e",
                os.path.join(prefix, "error.log")]
        self.nginx_cmd = " ".join(argv).replace(self.tmp + "/", "$TMP/")
        self.nginx = Proc("nginx", argv, cpus=self.sut_cpus)
        self.nginx.port, self.nginx.h2_port, self.nginx.es_port, self.nginx.es_h2_port = ports
        for port in ports:
            wait_port(port, self.nginx)

    # ---- setup: bodies and the captured Kiro bodies

    def prepare(self):
        self.bodies = {}
        small = anthropic_small("[[sim:text frames=20 size=16]]")
        cc, cc_path, cc_headers = claude_code_body()
        self.bodies["small"] = self.write_body("small.json", small)
        self.bodies["nonstream"] = self.write_body("nonstream.json", anthropic_small("[[sim:text frames=20 size=16]]", False))
        self.bodies["openai"] = self.write_body("openai.json", openai_small("[[sim:text frames=20 size=16]]"))
        self.bodies["responses"] = self.write_body("responses.json", responses_small("[[sim:text frames=20 size=16]]"))
        self.bodies["responses-instructions"] = self.write_body(
            "responses-instructions.json", responses_small("[[sim:text frames=20 size=16]]", instructions=True))
        self.bodies["cc"] = self.write_body("cc.json", cc)
        self.cc_path, self.cc_headers = cc_path, cc_headers
        self.sizes = {k: os.path.getsize(v) for k, v in self.bodies.items()}
        self.gw_headers = ["x-api-key: %s" % CLIENT_KEY, "content-type: application/json"]

        # the Kiro bodies, captured from a gateway pointed at a recording stand-in
        cap = Capture()
        gw = self.start_gateway("kiro2api-capture", api_base="http://127.0.0.1:%d" % cap.port, cpus=None)
        try:
            self.kiro = {}
            for name, path, extra in (("small", "/v1/messages", []), ("cc", self.cc_path, self.cc_headers)):
                n = len(cap.requests)
                with open(self.bodies[name], "rb") as f:
                    http_request(gw.port, "POST", path, f.read(), hdict(self.gw_headers + extra))
                if len(cap.requests) <= n:
                    raise RuntimeError("the gateway sent no Kiro request for %s: %s" % (name, gw.stderr_tail()))
                headers, body = cap.requests[n]
                self.kiro[name] = self.write_body("kiro-%s.bin" % name, body)
                keep = [k for k in headers if k.lower() not in ("host", "content-length", "authorization", "connection")]
                self.kiro_headers = ["%s: %s" % (k, headers[k]) for k in keep] + ["Authorization: Bearer " + self.direct_token]
        finally:
            gw.stop()
            cap.close()
        self.sizes["kiro-small"] = os.path.getsize(self.kiro["small"])
        self.sizes["kiro-cc"] = os.path.getsize(self.kiro["cc"])

    def check_once(self, port, path, body, headers, expect, what):
        with open(body, "rb") as f:
            st, _, data = http_request(port, "POST", path, f.read(), hdict(headers))
        if st != 200 or expect.encode() not in data:
            raise RuntimeError("%s: a single request failed: %s %s" % (what, st, data[-600:]))
        return len(data)

    # ---- targets

    def target(self, name, scenario="small"):
        """(port, path, body file, headers, expect, pids callable) of a target for a scenario."""
        if name == "gateway":
            g = self.gw
            if scenario == "small":
                return g.port, "/v1/messages", self.bodies["small"], self.gw_headers, "event: message_stop", g
            if scenario == "cc":
                return g.port, self.cc_path, self.bodies["cc"], self.gw_headers + self.cc_headers, '"stop_reason":"tool_use"', g
            if scenario == "openai":
                return g.port, "/v1/chat/completions", self.bodies["openai"], self.gw_headers, "data: [DONE]", g
            if scenario == "nonstream":
                return g.port, "/v1/messages", self.bodies["nonstream"], self.gw_headers, '"stop_reason":"end_turn"', g
            if scenario in ("responses", "responses-instructions"):
                return g.port, "/v1/responses", self.bodies[scenario], self.gw_headers, "event: response.completed", g
        if name == "direct":
            body = self.kiro["cc" if scenario == "cc" else "small"]
            return (self.sim.port, "/generateAssistantResponse", body, self.kiro_headers, "contextUsageEvent", self.sim)
        if name == "nginx":
            return self.nginx.port, "/v1/messages", self.bodies["small"], self.gw_headers, "event: message_stop", self.nginx
        if name == "nginx-es":
            return (self.nginx.es_port, "/generateAssistantResponse", self.kiro["small"], self.kiro_headers, "contextUsageEvent",
                    self.nginx)
        raise KeyError(name)

    def meter(self, sut):
        sets = {"sut": lambda: process_tree(sut.pid)}
        if sut is not self.sim:
            sets["sim"] = lambda: [self.sim.pid]
        return Meter(sets)

    def measured(self, tool, label, sut, *a, **kw):
        fn = getattr(self.run, tool)
        with self.meter(sut) as m:
            r = fn(label, *a, **kw)
        n = r.get("ok") if r.get("ok") is not None else r["requests"]
        r["sut"] = m.per_request("sut", n)
        r["sim"] = m.per_request("sim", n)
        r["mem"] = proc_mem(sut.pid)
        r.pop("raw", None)
        return r

    def cell(self, scenario, target, tool, conc, kind=None, **kw):
        """One measurement; `scenario` names the table it goes in, `kind` the request (default: the scenario)."""
        port, path, body, headers, expect, sut = self.target(target, kind or scenario)
        label = "%s/%s/%s/c%d" % (scenario, target, tool, conc)
        if tool == "wrk":
            r = self.measured("wrk", label, sut, port, path, body, headers, conc, self.d, expect,
                              threads=kw.get("threads", 1))
        elif tool == "h2load":
            conns, streams = kw["shape"]
            p = {"direct": self.sim.port, "nginx": self.nginx.h2_port, "nginx-es": self.nginx.es_h2_port}.get(target, port)
            r = self.measured("h2load", label, sut, p, path, body, headers, conns, streams, duration=self.d)
        else:
            r = self.measured("loadgen", label, sut, port, path, body, headers, conc, self.d, expect)
        r["label"] = label
        self.results["scenarios"].setdefault(scenario, []).append(dict(r, target=target))
        log("%-34s %8.0f req/s  p50 %s  p99 %s%s  errors %d  cpu/req %s" % (
            label, r["rps"], us(r.get("p50_us")), us(r.get("p99_us")),
            ("  ttfb p50 %s p99 %s" % (us(r.get("ttfb_p50_us")), us(r.get("ttfb_p99_us")))) if "ttfb_p50_us" in r else "",
            r["errors"], us(r["sut"]["cpu_us"]) if r.get("sut") else "-"))
        return r

    # ---- scenarios

    def scenario_stream_small(self):
        concs = [1, 64, 512]
        h2shapes = {1: (1, 1), 64: (8, 8), 512: (8, 64)}
        targets = ["gateway", "direct", "nginx", "nginx-es"]
        for c in concs:
            for t in targets:  # interleaved: the three targets see the same machine state
                self.cell("small", t, "wrk", c, threads=1 if c < 512 else 2)
        for c in concs:
            for t in targets:
                self.cell("small", t, "h2load", c, shape=h2shapes[c])
        for c in ([1, 64] if self.quick else [1, 64, 512]):
            for t in targets:
                self.cell("small", t, "loadgen", c)
        # time to first byte at 64 concurrent streams below saturation: frames dripped 50 ms apart, so each stream
        # lasts ~1 s and the loop is not queueing: what the gateway adds, not how long requests wait for a busy core
        drip = anthropic_small("[[sim:drip ms=50]] [[sim:text frames=20 size=16]]")
        self.bodies["drip"] = self.write_body("drip.json", drip)
        self.kiro["drip"] = self.capture_like("drip", "[[sim:drip ms=50]]")
        # the 64 connections open 16 ms apart (bench_loadgen -z): streams then start spread over their ~1 s length
        # instead of 64 at once, whose last would wait behind the other 63 (a burst, not concurrency)
        for t in ("gateway", "direct"):
            port, path, _, headers, expect, sut = self.target(t, "small")
            body = self.bodies["drip"] if t == "gateway" else self.kiro["drip"]
            label = "small-drip/%s/loadgen/c64" % t
            r = self.measured("loadgen", label, sut, port, path, body, headers, 64, max(self.d, 4), expect, stagger_ms=16)
            r["label"], r["target"] = label, t
            self.results["scenarios"].setdefault("small-drip", []).append(r)
            log("%-34s %8.0f req/s  ttfb p50 %s p99 %s  errors %d" % (label, r["rps"], us(r.get("ttfb_p50_us")),
                                                                       us(r.get("ttfb_p99_us")), r["errors"]))

    def capture_like(self, name, directive):
        """The Kiro body of another stream-small-like request: the captured small body with one more directive."""
        with open(self.kiro["small"], "rb") as f:
            kb = f.read()
        old = b"[[sim:text frames=20 size=16]]"
        assert old in kb
        return self.write_body("kiro-%s.bin" % name, kb.replace(old, directive.encode() + b" " + old))

    def scenario_cpu(self):
        """The CPU target, measured as a ratio inside short alternating rounds (gateway, nginx, gateway, ...: both see
        the same machine state), stream-small, wrk, 64 connections; the median of the per-round ratios."""
        rounds = 3 if self.quick else 5
        out = []
        other = None
        if self.args.compare_gateway:
            # another build of the gateway in the same rounds (before/after a change): same sim, same machine state
            env = self.gateway_env("http://127.0.0.1:%d" % self.sim.port)
            other = Proc("kiro2api-compare", [self.args.compare_gateway], env=env, cpus=self.sut_cpus, wait_listen=1)
        order = ["gateway", "nginx", "nginx-es"] + (["other"] if other else [])
        for i in range(rounds):
            pair = {}
            for t in order[i % len(order):] + order[:i % len(order)]:
                port, path, body, headers, expect, sut = self.target("gateway" if t == "other" else t, "small")
                if t == "other":
                    port, sut = other.port, other
                r = self.measured("wrk", "cpu/%s/wrk/c64/round%d" % (t, i + 1), sut, port, path, body, headers, 64,
                                  max(2, self.d // 2), expect)
                pair[t] = r
            if other:
                log("cpu round %d: compared gateway %s (user %s) = %.2f x nginx" % (
                    i + 1, us(pair["other"]["sut"]["cpu_us"]), us(pair["other"]["sut"]["user_us"]),
                    pair["other"]["sut"]["cpu_us"] / pair["nginx"]["sut"]["cpu_us"]))
            ratio = pair["gateway"]["sut"]["cpu_us"] / pair["nginx"]["sut"]["cpu_us"]
            es_ratio = pair["gateway"]["sut"]["cpu_us"] / pair["nginx-es"]["sut"]["cpu_us"]
            out.append({"nginx_es_cpu_us": pair["nginx-es"]["sut"]["cpu_us"], "nginx_es_user_us": pair["nginx-es"]["sut"]["user_us"],
                        "es_ratio": es_ratio, "gateway_sim_cpu_us": pair["gateway"]["sim"]["cpu_us"],"other_cpu_us": pair["other"]["sut"]["cpu_us"] if other else None,
                        "other_user_us": pair["other"]["sut"]["user_us"] if other else None,
                        "gateway_cpu_us": pair["gateway"]["sut"]["cpu_us"], "nginx_cpu_us": pair["nginx"]["sut"]["cpu_us"],
                        "gateway_user_us": pair["gateway"]["sut"]["user_us"], "nginx_user_us": pair["nginx"]["sut"]["user_us"],
                        "gateway_rps": pair["gateway"]["rps"], "nginx_rps": pair["nginx"]["rps"], "ratio": ratio,
                        "errors": pair["gateway"]["errors"] + pair["nginx"]["errors"] + pair["nginx-es"]["errors"]})
            log("cpu round %d: gateway %s (user %s), nginx SSE relay %s (user %s), nginx EventStream relay %s (user %s) "
                "per request: %.2f x SSE, %.2f x EventStream; sim %s per gateway request" % (
                    i + 1, us(out[-1]["gateway_cpu_us"]), us(out[-1]["gateway_user_us"]), us(out[-1]["nginx_cpu_us"]),
                    us(out[-1]["nginx_user_us"]), us(out[-1]["nginx_es_cpu_us"]), us(out[-1]["nginx_es_user_us"]), ratio,
                    es_ratio, us(out[-1]["gateway_sim_cpu_us"])))
        self.results["cpu_rounds"] = out
        if other:
            other.stop()
            med = lambda k: sorted(r[k] for r in out)[len(out) // 2]
            log("compare: this gateway %s (user %s), %s %s (user %s), nginx %s per request (medians)" % (
                us(med("gateway_cpu_us")), us(med("gateway_user_us")), self.args.compare_gateway, us(med("other_cpu_us")),
                us(med("other_user_us")), us(med("nginx_cpu_us"))))

    def scenario_sim(self):
        """kiro-sim alone (the direct target): stream-small at 64 connections, wrk (HTTP/1.1) and h2load (h2c, 8 x 8), in
        alternating rounds; with --compare-sim BIN another kiro-sim build answers in the same rounds (before/after). The
        simulator's CPU per request should stay well under the gateway's, or every end-to-end figure measures it."""
        rounds = 2 if self.quick else 3
        sims = [("sim", self.sim, self.kiro_headers)]
        if self.args.compare_sim:
            other = Proc("kiro-sim-compare", [self.args.compare_sim, "--port", "0"], cpus=self.aux_cpus, wait_listen=1)
            st, _, body = http_request(other.port, "POST", "/refreshToken", json.dumps({"refreshToken": "sim-ok-direct"}),
                                       {"content-type": "application/json"})
            assert st == 200, body
            hdrs = [h for h in self.kiro_headers if not h.startswith("Authorization:")]
            sims.append(("compare", other, hdrs + ["Authorization: Bearer " + json.loads(body)["accessToken"]]))
        out = []
        for i in range(rounds):
            for name, proc, headers in (sims if i % 2 == 0 else sims[::-1]):
                for tool in ("wrk", "h2load"):
                    label = "sim/%s/%s/c64/round%d" % (name, tool, i + 1)
                    if tool == "wrk":
                        r = self.measured("wrk", label, proc, proc.port, "/generateAssistantResponse", self.kiro["small"],
                                          headers, 64, self.d, "contextUsageEvent")
                    else:
                        r = self.measured("h2load", label, proc, proc.port, "/generateAssistantResponse",
                                          self.kiro["small"], headers, 8, 8, duration=self.d)
                    r.update(label=label, target="kiro-sim" if name == "sim" else "kiro-sim (compared)", round=i + 1)
                    out.append(r)
                    self.results["scenarios"].setdefault("sim", []).append(r)
                    log("%-34s %8.0f req/s  p99 %s  errors %d  sim cpu/req %s (user %s)" % (
                        label, r["rps"], us(r.get("p99_us")), r["errors"], us(r["sut"]["cpu_us"]),
                        us(r["sut"]["user_us"])))
        self.results["sim_rounds"] = out
        if self.args.compare_sim:
            other.stop()

    def scenario_reuse(self):
        """KIRO_UPSTREAM_REUSE over TLS (opt-in: --only reuse). A second kiro-sim serves HTTPS with a throw-away CA; two
        gateways use it, one with reuse=account and one with reuse=never, in alternating rounds (stream-small, wrk, 64
        connections): CPU per request of each gateway and of the simulator (a handshake costs both ends), and upstream
        TLS handshakes and connections per request from each gateway's /metrics."""
        ca_dir = tempfile.mkdtemp(prefix="ca-", dir=self.tmp)

        def sh(*a):
            subprocess.run(list(a), check=True, capture_output=True, cwd=ca_dir)
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
           "-out", "ca.pem", "-days", "2", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE")
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "key.pem", "-out",
           "srv.csr", "-subj", "/CN=127.0.0.1")
        with open(os.path.join(ca_dir, "ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
           "cert.pem", "-days", "2", "-extfile", "ext.cnf")
        sim = Proc("kiro-sim-tls", [SIM_BIN, "--port", "0", "--tls-cert", os.path.join(ca_dir, "cert.pem"), "--tls-key",
                                    os.path.join(ca_dir, "key.pem"), "--fixtures-dir",
                                    os.path.join(ROOT, "tests", "fixtures", "upstream")], cpus=self.aux_cpus, wait_listen=1)
        base = "https://127.0.0.1:%d" % sim.port
        modes = ["account", "never"]
        gws = {}
        for m in modes:
            gws[m] = self.start_gateway("kiro2api-reuse-%s" % m, api_base=base, extra={
                "KIRO_UPSTREAM_REUSE": m, "KIRO_CA_FILE": os.path.join(ca_dir, "ca.pem"),
                "KIRO_SOCIAL_REFRESH_URL": base + "/refreshToken", "KIRO_IDC_REFRESH_URL": base + "/token"})
        for m in modes:
            self.check_once(gws[m].port, "/v1/messages", self.bodies["small"], self.gw_headers, "event: message_stop",
                            "reuse/" + m)

        def metrics(g):
            st, _, body = http_request(g.port, "GET", "/metrics", None, {"x-api-key": CLIENT_KEY})
            assert st == 200, body
            out = {}
            for name in ("tls_handshakes_total", "tls_resumptions_total", "connections_opened_total"):
                mm = re.search(r"^k2a_upstream_%s (\d+)" % name, body.decode(), re.M)
                out[name] = int(mm.group(1)) if mm else 0
            return out
        rounds = 3 if self.quick else 5
        saved_sim, self.sim = self.sim, sim  # the meter's "sim" set is the TLS simulator here
        out = []
        try:
            for i in range(rounds):
                row = {}
                for m in modes[i % 2:] + modes[:i % 2]:
                    before = metrics(gws[m])
                    r = self.measured("wrk", "reuse/%s/wrk/c64/round%d" % (m, i + 1), gws[m], gws[m].port, "/v1/messages",
                                      self.bodies["small"], self.gw_headers, 64, max(2, self.d // 2), "event: message_stop")
                    after = metrics(gws[m])
                    n = r.get("ok") or r["requests"]
                    row[m] = {"cpu_us": r["sut"]["cpu_us"], "user_us": r["sut"]["user_us"], "sim_cpu_us": r["sim"]["cpu_us"],
                              "rps": r["rps"], "errors": r["errors"],
                              "handshakes_per_req": (after["tls_handshakes_total"] - before["tls_handshakes_total"]) / n,
                              "resumed_per_req": (after["tls_resumptions_total"] - before["tls_resumptions_total"]) / n,
                              "conns_per_req": (after["connections_opened_total"] - before["connections_opened_total"]) / n}
                    log("reuse round %d %-7s: gateway %s/req (sim %s/req), %.0f req/s, %.3f handshakes/req (%.3f resumed), "
                        "%.3f connections/req, errors %d" % (i + 1, m, us(row[m]["cpu_us"]), us(row[m]["sim_cpu_us"]),
                                                             row[m]["rps"], row[m]["handshakes_per_req"],
                                                             row[m]["resumed_per_req"], row[m]["conns_per_req"],
                                                             row[m]["errors"]))
                out.append(row)
        finally:
            self.sim = saved_sim
            for g in gws.values():
                g.stop()
            sim.stop()
        self.results["reuse_rounds"] = out
        med = lambda m, k: sorted(r[m][k] for r in out)[len(out) // 2]
        for m in modes:
            log("reuse %-7s medians: gateway %s/req, sim %s/req, %.0f req/s, %.3f handshakes/req" % (
                m, us(med(m, "cpu_us")), us(med(m, "sim_cpu_us")), med(m, "rps"), med(m, "handshakes_per_req")))
        ratios = sorted(r["never"]["cpu_us"] / r["account"]["cpu_us"] for r in out)
        sim_ratios = sorted(r["never"]["sim_cpu_us"] / r["account"]["sim_cpu_us"] for r in out)
        log("reuse: never / account CPU per request, median of rounds: gateway %.2f x, simulator %.2f x" % (
            ratios[len(ratios) // 2], sim_ratios[len(sim_ratios) // 2]))

    def scenario_cc(self):
        for c in (1, 64):
            for t in ("gateway", "direct"):
                self.cell("cc", t, "wrk", c)

    def scenario_openai(self):
        for c in (1, 64):
            self.cell("openai", "gateway", "wrk", c)
            self.cell("openai", "direct", "wrk", c)
        self.cell("openai", "gateway", "loadgen", 1)

    def scenario_responses(self):
        """The OpenAI Responses stream against the Chat Completions stream of the same conversation (the same 2 KB system
        text and 20-frame answer; store left at its default, true: every response and its conversation are kept), CPU per
        request of the gateway in short alternating rounds (wrk, 64 connections; all see the same machine state): the
        system text as a developer message (the Codex CLI's shape), and as `instructions`, which the response object
        echoes (created, in_progress and completed each carry it: 3.2x the bytes of the Chat stream). The median of the
        per-round ratios to Chat Completions (target: within 10 %)."""
        rounds = 3 if self.quick else 5
        out = []
        order = ["openai", "responses", "responses-instructions"]
        for i in range(rounds):
            cpu = {}
            for kind in order[i % len(order):] + order[:i % len(order)]:
                port, path, body, headers, expect, sut = self.target("gateway", kind)
                cpu[kind] = self.measured("wrk", "responses/%s/wrk/c64/round%d" % (kind, i + 1), sut, port, path, body,
                                          headers, 64, max(2, self.d // 2), expect)
            row = {"openai_cpu_us": cpu["openai"]["sut"]["cpu_us"], "responses_cpu_us": cpu["responses"]["sut"]["cpu_us"],
                   "instructions_cpu_us": cpu["responses-instructions"]["sut"]["cpu_us"],
                   "openai_rps": cpu["openai"]["rps"], "responses_rps": cpu["responses"]["rps"],
                   "instructions_rps": cpu["responses-instructions"]["rps"],
                   "errors": sum(r["errors"] for r in cpu.values())}
            row["ratio"] = row["responses_cpu_us"] / row["openai_cpu_us"]
            row["ratio_instructions"] = row["instructions_cpu_us"] / row["openai_cpu_us"]
            out.append(row)
            log("responses round %d: chat %s, responses %s (%.3f x), responses with instructions %s (%.3f x) per request" % (
                i + 1, us(row["openai_cpu_us"]), us(row["responses_cpu_us"]), row["ratio"], us(row["instructions_cpu_us"]),
                row["ratio_instructions"]))
        med = lambda k: sorted(r[k] for r in out)[len(out) // 2]
        self.results["responses_rounds"] = out
        self.results["responses_summary"] = {k: med(k) for k in ("openai_cpu_us", "responses_cpu_us", "instructions_cpu_us",
                                                                 "ratio", "ratio_instructions")}
        log("responses: medians chat %s, responses %s (%.3f x), with instructions %s (%.3f x) CPU per request" % (
            us(med("openai_cpu_us")), us(med("responses_cpu_us")), med("ratio"), us(med("instructions_cpu_us")),
            med("ratio_instructions")))

    def scenario_nonstream(self):
        for c in (1, 64):
            self.cell("nonstream", "gateway", "wrk", c)
            self.cell("nonstream", "direct", "wrk", c)

    def scenario_logging(self):
        """The cost of the default LOG_LEVEL=info (one line per request, stderr to a file) against warn."""
        gw = self.start_gateway("kiro2api-info", extra={"LOG_LEVEL": "info"})
        saved, self.gw = self.gw, gw
        try:
            self.cell("logging", "gateway", "wrk", 64, kind="small")
        finally:
            self.gw = saved
            gw.stop()

    def scenario_many_streams(self):
        n = TARGET_STREAMS
        drip_ms = 300 if self.quick else 1000
        frames = 10
        body = anthropic_small("[[sim:drip ms=%d]] [[sim:text frames=%d size=16]]" % (drip_ms, frames))
        path_body = self.write_body("many.json", body)
        # the exact byte count of one answer (fixed length: ids are fixed-size, the text is deterministic)
        one = self.check_once(self.gw.port, "/v1/messages", self.write_body(
            "many-one.json", anthropic_small("[[sim:text frames=%d size=16]]" % frames)), self.gw_headers,
            "event: message_stop", "many-streams")
        # the gateway runs 32 requests at once per HTTP/2 connection (server.c: h2o's max_concurrent_requests_per_connection;
        # the rest wait in h2o's queue until one has its response head): 100 x 100 held at most 64 per connection open
        # upstream (6 400 streams, the rest in waves). 320 x 32 asks no more of a connection than it runs at once.
        conns, streams = 320, 32
        gw = self.gw
        before = proc_snapshot([gw.pid])
        st0 = json.loads(http_request(self.sim.port, "GET", "/sim/stats")[2])
        t0 = time.time()
        p, log_file = self.run.h2load("many-streams/gateway/h2load", gw.port, "/v1/messages", path_body, self.gw_headers,
                                      conns, streams, nreq=n, background=True)
        samples, peak = [], {"VmRSS": 0, "Threads": 0}
        while p.poll() is None:
            m = proc_mem(gw.pid)
            samples.append((time.time() - t0, m.get("VmRSS", 0), proc_snapshot([gw.pid])["ticks"] - before["ticks"]))
            for k in peak:
                peak[k] = max(peak[k], m.get(k, 0))
            time.sleep(0.2)
        wall = time.time() - t0
        r = self.run.h2load_result(p, log_file, conns * streams)
        after = proc_snapshot([gw.pid])
        st1 = json.loads(http_request(self.sim.port, "GET", "/sim/stats")[2])
        mem = proc_mem(gw.pid)
        cpu_s = (after["ticks"] - before["ticks"]) / CLK_TCK
        res = {"streams": n, "conns": conns, "conn_streams": streams, "drip_ms": drip_ms, "frames": frames, "wall_s": wall, "succeeded": r["ok"],
               "errors": r["errors"], "done": r["requests"], "peak_rss_kb": peak["VmRSS"], "hwm_kb": mem.get("VmHWM"),
               "rss_after_kb": mem.get("VmRSS"), "threads": peak["Threads"], "cpu_s": cpu_s,
               "cpu_us_per_stream": cpu_s * 1e6 / max(1, r["ok"]), "data_bytes": r.get("data_bytes"),
               "one_answer_bytes": one, "sim_max_open": st1.get("max_open_streams"),
               "sim_streams": st1.get("streams_total", 0) - st0.get("streams_total", 0),
               "p50_us": r["p50_us"], "p99_us": r["p99_us"]}
        # h2load counts the DATA payload: n complete answers are exactly n times one answer's bytes
        res["all_complete"] = (r["ok"] == n and r["errors"] == 0 and r.get("data_bytes") == n * one)
        # peak CPU share while the streams are open (mid-run window)
        mid = [s for s in samples if 0.3 * wall <= s[0] <= 0.8 * wall]
        if len(mid) >= 2:
            res["cpu_util_mid"] = (mid[-1][2] - mid[0][2]) / CLK_TCK / (mid[-1][0] - mid[0][0])
        res["rss_samples_mb"] = [(round(t, 1), round(kb / 1024, 1)) for t, kb, _ in samples[::5]]
        self.results["many_streams"] = res
        log("many-streams: %d/%d succeeded, data %s (expected %d), peak RSS %.1f MB, HWM %.1f MB, CPU %.2f s, sim max open %s" % (
            r["ok"], n, r.get("data_bytes"), n * one, peak["VmRSS"] / 1024, (mem.get("VmHWM") or 0) / 1024, cpu_s,
            st1.get("max_open_streams")))

    def scenario_workers(self):
        """stream-small, wrk c=64 and h2load 8x8, with KIRO_WORKERS=1 and 2; nothing pinned (the gateway may use both
        cores)."""
        out = []
        for w in (1, 2):
            gw = self.start_gateway("kiro2api-w%d" % w, extra={"KIRO_WORKERS": str(w)}, cpus=None)
            saved, self.gw = self.gw, gw
            saved_cpus, self.run.client_cpus = self.run.client_cpus, None
            try:
                time.sleep(0.3)
                threads = proc_mem(gw.pid).get("Threads")
                r1 = self.cell("workers-%d" % w, "gateway", "wrk", 64, kind="small")
                r2 = self.cell("workers-%d" % w, "gateway", "h2load", 64, kind="small", shape=(8, 8))
                out.append({"workers": w, "threads": threads, "wrk": r1, "h2load": r2})
            finally:
                self.gw = saved
                self.run.client_cpus = saved_cpus
                gw.stop()
        self.results["workers"] = out

    def scenario_convert(self):
        if not os.path.exists(CONVERT_BIN):
            self.results["notes"].append("bench_convert not built: conversion target not measured")
            return
        out = []
        iters = 1000 if self.quick else 3000
        for kb in (0, 300):
            argv = [CONVERT_BIN, str(iters), str(kb), "real", "tuned"]
            self.run.note("convert/%dKB" % kb, argv)
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600)
            m = re.search(r"^total\s+p50\s+([\d.]+) us\s+p99\s+([\d.]+) us\s+mean\s+([\d.]+) us\s+min\s+([\d.]+) us", p.stdout,
                          re.M)
            req = re.search(r"request: (\d+) bytes.*?(\d+) messages; Kiro body: (\d+) bytes", p.stdout)
            if not m:
                raise RuntimeError("bench_convert output not understood: %s %s" % (p.stdout, p.stderr))
            out.append({"request_bytes": int(req.group(1)), "messages": int(req.group(2)), "kiro_bytes": int(req.group(3)),
                        "p50_us": float(m.group(1)), "p99_us": float(m.group(2)), "min_us": float(m.group(4))})
            log("convert %d bytes: p50 %.1f us, p99 %.1f us" % (out[-1]["request_bytes"], out[-1]["p50_us"], out[-1]["p99_us"]))
        self.results["convert"] = out

    def profile(self):
        """perf record -g on the gateway during stream-small (wrk, 64 connections); top symbols into the results."""
        if shutil.which("perf") is None:
            self.results["notes"].append("perf not installed: no profile")
            return
        data = os.path.join(self.tmp, "perf.data")
        port, path, body, headers, expect, sut = self.target("gateway", "small")
        rec = subprocess.Popen(["perf", "record", "-g", "-o", data, "-p", str(sut.pid)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            self.run.wrk("profile/gateway/wrk/c64", port, path, body, headers, 64, self.d, expect)
        finally:
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=60)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "-g", "none", "--sort", "dso,symbol",
                              "--stdio"], capture_output=True, text=True)
        lines = [l for l in rep.stdout.splitlines() if re.match(r"\s+\d+\.\d+%", l)][:40]
        dso = subprocess.run(["perf", "report", "-i", data, "--no-children", "-g", "none", "--sort", "dso", "--stdio"],
                             capture_output=True, text=True)
        self.results["profile"] = {"symbols": lines,
                                   "dsos": [l for l in dso.stdout.splitlines() if re.match(r"\s+\d+\.\d+%", l)][:12]}
        log("profile: %d symbol lines" % len(lines))

    # ---- callgrind: instructions per request

    def callgrind(self, nreq):
        """The gateway under valgrind --tool=callgrind: warm up, zero the counters, then nreq stream-small requests (4
        connections) through bench_loadgen, and the Ir per request, in total and by function (inclusive and self)."""
        if shutil.which("valgrind") is None:
            sys.exit("bench: valgrind is not installed")
        self.start_sim()
        self.prepare()
        out_file = os.path.join(self.tmp, "callgrind.out")
        env = self.gateway_env("http://127.0.0.1:%d" % self.sim.port)
        gw = Proc("kiro2api-callgrind", ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file,
                                         "--instr-atstart=no", GATEWAY_BIN], env=env, wait_listen=1, timeout=120)
        kind = self.args.callgrind_kind
        path, expect = {"small": ("/v1/messages", "event: message_stop"), "openai": ("/v1/chat/completions", "data: [DONE]"),
                        "responses": ("/v1/responses", "event: response.completed"),
                        "responses-instructions": ("/v1/responses", "event: response.completed")}[kind]
        port, body, headers = gw.port, self.bodies[kind], self.gw_headers
        ctl = lambda *a: subprocess.run(["callgrind_control"] + list(a) + [str(gw.pid)], capture_output=True, check=True)
        ctl("-i", "on")
        for n in (50, nreq):
            if n == nreq:
                ctl("-z")
            argv = [LOADGEN_BIN, "-p", str(port), "-u", path, "-b", body, "-F", self.run.headers_file(headers), "-c", "4",
                    "-n", str(n), "-d", "600", "-w", "0", "-e", expect]
            r = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
            if r["errors"] != 0 or r["requests"] != n:
                sys.exit("bench: callgrind run failed: %s" % r)
        ctl("-d")
        gw.stop()
        dumps = sorted(f for f in os.listdir(self.tmp) if f.startswith("callgrind.out."))
        dump = os.path.join(self.tmp, dumps[-1])
        if self.args.callgrind_out:
            shutil.copy(dump, self.args.callgrind_out)
        total = None
        rows = {}
        for inclusive in ("yes", "no"):
            ann = subprocess.run(["callgrind_annotate", "--inclusive=" + inclusive, "--threshold=100", "--auto=no",
                                  "--tree=none", dump],
                                 capture_output=True, text=True).stdout
            for line in ann.splitlines():
                m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)", line)
                if not m or ":" not in m.group(2) and "PROGRAM TOTALS" not in m.group(2):
                    continue
                ir = int(m.group(1).replace(",", ""))
                if "PROGRAM TOTALS" in m.group(2):
                    total = ir
                else:
                    name = re.sub(r"\s*\[.*\]$", "", m.group(2))
                    name = re.sub(r"^.*/(src/)", r"\1", name)
                    rows.setdefault(name, {})[inclusive] = ir
        print("callgrind: %d %s requests (2 KB in, 20 text frames out), Ir per request: %.0f" % (
            nreq, "stream-small" if kind == "small" else kind, total / nreq))
        print("%12s %12s  %s" % ("inclusive", "self", "function"))
        top = sorted(rows.items(), key=lambda kv: -kv[1].get("yes", 0))
        for name, v in top:
            if v.get("yes", 0) / nreq < 2000:
                continue
            if not (name.startswith("src/") or v.get("no", 0) / nreq >= 2000):
                continue
            print("%12.0f %12.0f  %s" % (v.get("yes", 0) / nreq, v.get("no", 0) / nreq, name))

    # ---- the whole run

    def main(self):
        t0 = time.time()
        self.results["machine"] = machine()
        self.results["pinning"] = self.pinning
        self.results["mode"] = "quick" if self.quick else "full"
        self.results["duration_s"] = self.d
        self.start_sim()
        self.prepare()
        self.gw = self.start_gateway()
        self.start_nginx()
        self.results["sizes"] = self.sizes
        # a single request per target first: any failure stops the run before the numbers mean nothing
        for scen, tgt in (("small", "gateway"), ("cc", "gateway"), ("openai", "gateway"), ("responses", "gateway"),
                          ("nonstream", "gateway"),
                          ("small", "direct"), ("cc", "direct"), ("small", "nginx"), ("small", "nginx-es")):
            port, path, body, headers, expect, _ = self.target(tgt, scen)
            self.sizes["answer-%s-%s" % (scen, tgt)] = self.check_once(port, path, body, headers, expect, scen + "/" + tgt)
        plan = [("sim", self.scenario_sim), ("stream-small", self.scenario_stream_small), ("cpu", self.scenario_cpu),
                ("cc", self.scenario_cc), ("openai", self.scenario_openai), ("responses", self.scenario_responses),
                ("nonstream", self.scenario_nonstream), ("many-streams", self.scenario_many_streams),
                ("workers", self.scenario_workers), ("convert", self.scenario_convert)]
        if self.only is not None and "reuse" in self.only:  # opt-in: it starts a TLS simulator and two more gateways
            plan.append(("reuse", self.scenario_reuse))
        if not self.quick:
            plan.insert(4, ("logging", self.scenario_logging))
        for name, fn in plan:
            if self.want(name):
                log("== %s" % name)
                fn()
        if self.args.perf:
            self.profile()
        self.results["commands"] = self.run.commands
        self.results["header_files"] = [
            (path.replace(self.tmp + "/", "$TMP/"),
             [re.sub(r"^(Authorization: Bearer ).*", "\\1<accessToken of POST /refreshToken {'refreshToken': 'sim-ok-direct'}>", h)
              for h in headers]) for headers, path in self.run.header_files.items()]
        self.results["nginx_cmd"] = self.nginx_cmd
        self.results["gateway_env"] = {k: v for k, v in self.gw.env.items() if k not in ("KIRO_STATE_FILE",)}
        self.results["elapsed_s"] = time.time() - t0
        for p in (self.gw, self.sim, self.nginx):
            if not p.alive():
                raise RuntimeError("%s died during the run: %s" % (p.name, p.stderr_tail()))
        return self.results


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


# ---------------------------------------------------------------------------------------------------------------
# report


def us(v):
    if v is None:
        return "-"
    if v >= 10000:
        return "%.1f ms" % (v / 1000)
    if v >= 1000:
        return "%.2f ms" % (v / 1000)
    return "%.0f µs" % v


def find(results, scenario, target, tool, conns):
    for r in results["scenarios"].get(scenario, []):
        if r["target"] == target and r["tool"] == tool and r["conns"] == conns:
            return r
    return None


def evaluate(res):
    """The targets: list of (name, measured text, pass/miss/n.a.)."""
    out = []
    rounds = res.get("cpu_rounds")
    g, n = find(res, "small", "gateway", "wrk", 64), find(res, "small", "nginx", "wrk", 64)
    if rounds:
        ratios = sorted(r["ratio"] for r in rounds)
        ratio = ratios[len(ratios) // 2]
        res["cpu_ratio"] = ratio
        gmed = sorted(r["gateway_cpu_us"] for r in rounds)[len(rounds) // 2]
        nmed = sorted(r["nginx_cpu_us"] for r in rounds)[len(rounds) // 2]
        out.append(("gateway CPU per streamed request ≤ %.1f × nginx's (stream-small, wrk c=64, median of %d alternating "
                    "rounds)" % (TARGET_CPU_RATIO, len(rounds)),
                    "%s vs %s = **%.2f ×** (rounds: %s)" % (us(gmed), us(nmed), ratio,
                                                            ", ".join("%.2f" % r["ratio"] for r in rounds)),
                    "pass" if ratio <= TARGET_CPU_RATIO else "MISS"))
        if all(r.get("es_ratio") is not None for r in rounds):
            es = sorted(r["es_ratio"] for r in rounds)[len(rounds) // 2]
            emed = sorted(r["nginx_es_cpu_us"] for r in rounds)[len(rounds) // 2]
            res["cpu_es_ratio"] = es
            out.append(("gateway CPU per streamed request ≤ %.1f × nginx relaying the EventStream untranslated (same rounds)"
                        % TARGET_CPU_ES_RATIO,
                        "%s vs %s = **%.2f ×** (rounds: %s)" % (us(gmed), us(emed), es,
                                                                ", ".join("%.2f" % r["es_ratio"] for r in rounds)),
                        "pass" if es <= TARGET_CPU_ES_RATIO else "MISS"))
    elif g and n and g.get("sut") and n.get("sut"):
        ratio = g["sut"]["cpu_us"] / n["sut"]["cpu_us"]
        res["cpu_ratio"] = ratio
        out.append(("gateway CPU per streamed request ≤ %.1f × nginx's (stream-small, wrk c=64)" % TARGET_CPU_RATIO,
                    "%s vs %s = **%.2f ×**" % (us(g["sut"]["cpu_us"]), us(n["sut"]["cpu_us"]), ratio),
                    "pass" if ratio <= TARGET_CPU_RATIO else "MISS"))
    for scen, what in (("small-drip", "64 streams below saturation"), ("small", "64 connections, saturated")):
        g, d = find(res, scen, "gateway", "loadgen", 64), find(res, scen, "direct", "loadgen", 64)
        if g and d and g.get("ttfb_p50_us") is not None and d.get("ttfb_p50_us") is not None:
            a50, a99 = g["ttfb_p50_us"] - d["ttfb_p50_us"], g["ttfb_p99_us"] - d["ttfb_p99_us"]
            target = scen == "small-drip"
            out.append(("added TTFB p50 ≤ %d µs, p99 ≤ %d µs at concurrency 64 (%s)%s" % (
                TARGET_TTFB_P50_US, TARGET_TTFB_P99_US, what, "" if target else " — for information"),
                "p50 +%s, p99 +%s (gateway %s / %s, direct %s / %s)" % (
                    us(a50), us(a99), us(g["ttfb_p50_us"]), us(g["ttfb_p99_us"]), us(d["ttfb_p50_us"]), us(d["ttfb_p99_us"])),
                ("pass" if a50 <= TARGET_TTFB_P50_US and a99 <= TARGET_TTFB_P99_US else "MISS") if target else "n/a"))
    m = res.get("many_streams")
    if m:
        rss = m["peak_rss_kb"] / 1024
        # on a loaded machine the load generator may not hold every stream open at once: then the peak says nothing
        # about the target (the simulator counts the streams open at the same time)
        together = m.get("sim_max_open") or 0
        ok = m["all_complete"] and rss <= TARGET_RSS_MB and together >= m["streams"]
        out.append(("%d concurrent streams, RSS ≤ %d MB, no error" % (TARGET_STREAMS, TARGET_RSS_MB),
                    "%d/%d complete, %d errors, peak RSS %.1f MB, %d open at once%s" % (
                        m["succeeded"], m["streams"], m["errors"], rss, together,
                        "" if together >= m["streams"] else " (not all at once: not a measurement of the target)"),
                    "pass" if ok else ("MISS" if together >= m["streams"] else "n/a")))
    c = res.get("convert")
    if c:
        x = c[0]
        out.append(("conversion of the Claude Code request ≤ 1 ms p50",
                    "%.0f µs p50 (%d KB request)" % (x["p50_us"], x["request_bytes"] // 1000),
                    "pass" if x["p50_us"] <= TARGET_CONVERT_P50_US else "MISS"))
    return out


def render(res):
    m = res["machine"]
    L = []
    L.append(SECTION)
    L.append("")
    L.append("Written by `bench/harness.py` (`make bench`; `make bench-quick` for a ~2 minute run): this section is replaced "
             "on every run. Mode **%s**, %d s per measurement, %s, commit %s. Total %.0f s." % (
                 res["mode"], res["duration_s"], time.strftime("%Y-%m-%d %H:%M"), m.get("commit", "?"), res["elapsed_s"]))
    L.append("")
    L.append("Machine: %s, %s CPUs%s, kernel %s, load average at start %s; nofile %s, vm.max_map_count %s. %s." % (
        m.get("model"), m.get("cpus"), (" (%s VM)" % m["hypervisor"]) if m.get("hypervisor") else "", m.get("kernel"),
        " ".join("%.1f" % x for x in m.get("load", ())), "/".join(str(x) for x in m.get("nofile", ())),
        m.get("max_map_count"), "; ".join("%s" % v for v in m["versions"].values())))
    L.append("Pinning: %s. The gateway runs with `LOG_LEVEL=warn` (nginx has `access_log off`), "
             "`KIRO_UPSTREAM_MAX_CONNS=16384`, `KIRO_UPSTREAM_MAX_IDLE=1024` (upstream connections kept alive, as nginx's "
             "`keepalive 1024`)." % res["pinning"])
    L.append("")
    L.append("Targets: **gateway** = client → kiro2api → kiro-sim; **direct** = the Kiro body the gateway sends, posted "
             "straight to kiro-sim (the simulator alone); **nginx** = client → nginx (1 worker) → kiro-sim `/sim/sse` "
             "(the same SSE bytes, finished, in one write: a proxy that translates nothing); **nginx-es** = the direct "
             "target's Kiro request through nginx (1 worker) to kiro-sim's generateAssistantResponse: its EventStream "
             "relayed untranslated, the gateway's work minus the translation. kiro-sim writes a reply without pacing "
             "directives in one piece (cached per reply shape). CPU/req is the server's user+sys time "
             "(/proc/PID/stat, nginx master+worker) over the run divided by the completed requests; sim CPU/req is "
             "kiro-sim's share; wake-ups/req are the server's voluntary context switches (/proc/PID/status: each is one sleep in "
             "epoll_wait) per request: under load a loop serves many events per wake-up. Latency columns come from the tool named in the row: "
             "wrk (HTTP/1.1, keep-alive), h2load (h2c; percentiles from its per-request log), bench_loadgen (HTTP/1.1; "
             "TTFB = request written → first response byte, per request; h2load's own TTFB is per connection). "
             "Request sizes: %s." % ", ".join("%s %d B" % (k, v) for k, v in res["sizes"].items() if not k.startswith("answer"))
             )
    L.append("")

    L.append("### Targets")
    L.append("")
    L.append("| target | measured | result |")
    L.append("|---|---|---|")
    for name, val, ok in evaluate(res):
        L.append("| %s | %s | %s |" % (name, val, ok))
    L.append("")

    def table(title, scen, note=None):
        rows = res["scenarios"].get(scen)
        if not rows:
            return
        L.append("### " + title)
        L.append("")
        if note:
            L.append(note)
            L.append("")
        L.append("| target | tool | conc. | req/s | p50 | p99 | TTFB p50 | TTFB p99 | server CPU/req | sim CPU/req | "
                 "server wake-ups/req | errors |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            s, sim = r.get("sut") or {}, r.get("sim") or {}
            L.append("| %s | %s (%s) | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                r["target"], r["tool"], r["proto"], r["conns"], r["rps"], us(r.get("p50_us")), us(r.get("p99_us")),
                us(r.get("ttfb_p50_us")), us(r.get("ttfb_p99_us")), us(s.get("cpu_us")), us(sim.get("cpu_us")),
                "%.2f" % s["wakeups"] if s.get("wakeups") is not None else "-", r["errors"]))
        L.append("")

    table("stream-small: /v1/messages, stream, 2 KB request, 20 text frames of 16 B", "small",
          "h2load shapes: 1 = 1 connection × 1 stream, 64 = 8 × 8, 512 = 8 × 64. wrk uses 2 threads at 512 connections.")
    table("kiro-sim alone: stream-small's Kiro request straight to the simulator, 64 connections", "sim",
          "Alternating rounds (wrk over HTTP/1.1, h2load over h2c 8 × 8); \"compared\" is the build given with "
          "`--compare-sim`. server CPU/req is the simulator's own: it must stay well under the gateway's, or the "
          "end-to-end rows measure the simulator.")
    table("stream-small, time to first byte below saturation (frames dripped 50 ms apart)", "small-drip",
          "64 connections opened 16 ms apart, each stream ~1 s long (~60 requests/s, 64 streams open at any time): the "
          "loop is not saturated and requests do not arrive in bursts, so TTFB is the gateway's added work and hop, not "
          "queueing behind other requests (the saturated TTFB is in the table above).")
    table("stream-claude-code: Claude Code's 78 KB request (24 tools), answered with text then a Bash tool call", "cc")
    table("openai-stream: /v1/chat/completions, stream, 2 KB request, 20 text frames", "openai",
          "direct = the Kiro body of stream-small (the OpenAI request converts to the same shape).")
    table("nonstream: /v1/messages, stream false, 2 KB request, 20 text frames aggregated into one JSON", "nonstream",
          "direct = the same Kiro request (Kiro always streams; the gateway aggregates).")
    table("logging: the default LOG_LEVEL=info (one line per request to stderr, a file here)", "logging")

    ms = res.get("many_streams")
    if ms:
        L.append("### many-streams: %d concurrent streams through the gateway" % ms["streams"])
        L.append("")
        L.append("h2load, %s; kiro-sim drips one frame every %d ms (%d text frames + metering + context usage), so every "
                 "stream stays open ~%.0f s. Gateway RSS sampled every 0.2 s from /proc/PID/status." % (
                     "%d connections × %d streams" % (ms.get("conns", 100), ms.get("conn_streams", 100)), ms["drip_ms"], ms["frames"], ms["drip_ms"] * (ms["frames"] + 1) / 1000))
        L.append("")
        L.append("| streams | completed (2xx) | errors | all bodies complete | peak RSS | VmHWM | RSS after | gateway CPU | "
                 "CPU/stream | CPU use while open | sim max open streams | wall |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        L.append("| %d | %d | %d | %s | %.1f MB | %.1f MB | %.1f MB | %.2f s | %s | %s | %s | %.1f s |" % (
            ms["streams"], ms["succeeded"], ms["errors"],
            "yes (%d B each)" % ms["one_answer_bytes"] if ms["all_complete"] else "NO (%s B of %d)" % (
                ms["data_bytes"], ms["streams"] * ms["one_answer_bytes"]),
            ms["peak_rss_kb"] / 1024, (ms["hwm_kb"] or 0) / 1024, (ms["rss_after_kb"] or 0) / 1024, ms["cpu_s"],
            us(ms["cpu_us_per_stream"]), "%.0f %%" % (100 * ms["cpu_util_mid"]) if "cpu_util_mid" in ms else "-",
            ms["sim_max_open"], ms["wall_s"]))
        L.append("")

    w = res.get("workers")
    if w:
        L.append("### KIRO_WORKERS scaling (stream-small, nothing pinned)")
        L.append("")
        same = len(w) == 2 and w[0]["threads"] == w[1]["threads"]
        L.append("The gateway, kiro-sim and the load generator share the %s CPUs unpinned. %s" % (
            m.get("cpus"), "Both runs had the same thread count (%s): KIRO_WORKERS is not active yet in this build, so both "
            "are single-loop runs." % w[0]["threads"] if same else "Thread counts: %s." % ", ".join(
                "%d worker(s): %s" % (x["workers"], x["threads"]) for x in w)))
        L.append("")
        L.append("| KIRO_WORKERS | threads | wrk c=64 req/s | wrk p99 | h2load 8×8 req/s | h2load p99 | CPU/req (wrk) |")
        L.append("|---|---|---|---|---|---|---|")
        for x in w:
            L.append("| %d | %s | %.0f | %s | %.0f | %s | %s |" % (
                x["workers"], x["threads"], x["wrk"]["rps"], us(x["wrk"]["p99_us"]), x["h2load"]["rps"],
                us(x["h2load"]["p99_us"]), us((x["wrk"].get("sut") or {}).get("cpu_us"))))
        if len(w) == 2 and w[0]["wrk"]["rps"] > 0:
            L.append("")
            L.append("Scaling 1 → 2 workers: wrk ×%.2f, h2load ×%.2f." % (w[1]["wrk"]["rps"] / w[0]["wrk"]["rps"],
                                                                      w[1]["h2load"]["rps"] / max(1, w[0]["h2load"]["rps"])))
        L.append("")

    c = res.get("convert")
    if c:
        L.append("### Conversion (bench_convert, in-process, one core)")
        L.append("")
        L.append("| request | messages | Kiro body | p50 | p99 | min |")
        L.append("|---|---|---|---|---|---|")
        for x in c:
            L.append("| %d B | %d | %d B | %s | %s | %s |" % (x["request_bytes"], x["messages"], x["kiro_bytes"], us(x["p50_us"]),
                                                          us(x["p99_us"]), us(x["min_us"])))
        L.append("")

    p = res.get("profile")
    if p:
        L.append("### Profile (perf record -g on the gateway, stream-small, wrk c=64)")
        L.append("")
        L.append("```")
        L.extend(p["dsos"])
        L.append("")
        L.extend(p["symbols"][:25])
        L.append("```")
        L.append("")

    L.append("### Commands")
    L.append("")
    L.append("`$TMP` is the harness's temporary directory; bodies are written there (`small.json` etc.). "
             "Gateway environment: `%s` (plus the simulator's URLs). nginx: `%s` with conf/bench-nginx.conf filled in. "
             "When pinned, the servers and load generators run under `taskset -c CPU` as described above." % (
                 " ".join("%s=%s" % (k, shlex.quote(v)) for k, v in sorted(res["gateway_env"].items())
                          if not k.endswith("_URL") and k != "KIRO_API_BASE"), res["nginx_cmd"]))
    L.append("")
    L.append("Commands that differ only in the port (the same cell against another target) are shown once. Header files "
             "(one `-H` each for h2load and bench_loadgen, read by wrk_post.lua for wrk):")
    L.append("")
    for path, headers in res.get("header_files", []):
        L.append("- `%s`: %s" % (path, "; ".join("`%s`" % h for h in headers)))
    L.append("")
    L.append("```")
    seen = set()
    for label, cmd in res["commands"]:
        key = re.sub(r"\d+", "N", label.split("/")[0]) + re.sub(r"127\.0\.0\.1:\d+", "", cmd)
        if key in seen:
            continue
        seen.add(key)
        L.append("# %s\n%s" % (label, cmd))
    L.append("```")
    for note in res.get("notes", []):
        L.append("")
        L.append("Note: " + note)
    L.append("")
    return "\n".join(L)


def replace_section(path, section_text):
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = "# Benchmark results\n"
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section_text
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section_text + (text[nxt + 1:] if nxt >= 0 else "")
    with open(path, "w") as f:
        f.write(text.rstrip("\n") + "\n")


# ---------------------------------------------------------------------------------------------------------------


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="about 2 minutes: shorter runs, fewer cells")
    ap.add_argument("--callgrind-kind", default="small", choices=("small", "openai", "responses", "responses-instructions"),
                    help="the request --callgrind sends: stream-small (Anthropic, default), its Chat Completions or its "
                         "Responses form (system text as a developer message, or as instructions)")
    ap.add_argument("--only", help="comma-separated scenarios: sim,stream-small,cpu,cc,openai,responses,nonstream,logging,"
                                   "many-streams,"
                                   "workers,convert, and reuse (opt-in: KIRO_UPSTREAM_REUSE account vs never over TLS)")
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
