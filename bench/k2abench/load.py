"""The load generators: wrk (HTTP/1.1, bench/wrk_post.lua), h2load (h2c) and bench_loadgen (HTTP/1.1 with per-request
time to first byte); each run is noted with its command line for the report."""
import json
import os
import re
import shlex
import subprocess

from .common import LOADGEN_BIN, WRK_SCRIPT, pct

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

    def wrk(self, label, port, path, body_file, headers, conns, duration, expect, threads=1, keys_file=None):
        """keys_file: one client key a line, sent as x-api-key in turn (request 1 the first key, ...)."""
        env = {"WRK_BODY_FILE": body_file, "WRK_HEADERS_FILE": self.headers_file(headers), "WRK_EXPECT": expect or ""}
        if keys_file:
            env["WRK_KEYS_FILE"] = keys_file
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

    def loadgen_phases(self, label, port, kinds, headers, conns, duration, phase_ms, pid, warmup=1):
        """bench_loadgen in phases: kinds = [(path, body file, expect), ...] sent in turn, phase_ms each, on every
        connection, with pid's CPU time read between phases. Returns its JSON (its "phases": [kind, ok, errors, cpu µs,
        user µs, system µs, wall µs] of every phase of the whole cycles after the warm-up)."""
        (path, body, expect), rest = kinds[0], kinds[1:]
        argv = [LOADGEN_BIN, "-p", str(port), "-u", path, "-b", body, "-F", self.headers_file(headers), "-c", str(conns),
                "-d", str(duration), "-w", str(warmup), "-e", expect, "-P", str(phase_ms), "-C", str(pid)]
        for path, body, expect in rest:
            argv += ["-X", "%s|%s|%s" % (path, body, expect)]
        self.note(label, argv)
        out = subprocess.run(self._prefix() + argv, capture_output=True, text=True, timeout=duration + 120)
        if out.returncode != 0:
            raise RuntimeError("bench_loadgen failed: %s" % out.stderr[-2000:])
        return json.loads(out.stdout.strip().splitlines()[-1])

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

