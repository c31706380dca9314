"""The scenarios of the first harness: stream-small against direct, nginx and nginx-es; the CPU rounds; kiro-sim alone;
Claude Code's request; Chat Completions; non-streaming; logging; 10 000 open streams; KIRO_WORKERS; conversion; perf."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

from .bodies import anthropic_small, http_request
from .common import CLK_TCK, CONVERT_BIN, TARGET_STREAMS, log, us
from .proc import Proc, proc_mem, proc_snapshot


class CoreScenarios:
    """Mixed into Bench: every method uses its processes (self.gw, self.sim, self.nginx) and self.cell/self.measured."""

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
        # the same gateway with one worker loop, as nginx runs one worker: the like-for-like CPU comparison (the default
        # runs two loops here, and a request on the second one hands its account lease to the first and back)
        one = self.start_gateway("kiro2api-1worker", extra={"KIRO_WORKERS": "1"})
        order = ["gateway", "nginx", "gateway1", "nginx-es"] + (["other"] if other else [])
        for i in range(rounds):
            pair = {}
            for t in order[i % len(order):] + order[:i % len(order)]:
                port, path, body, headers, expect, sut = self.target("gateway" if t in ("other", "gateway1") else t, "small")
                if t == "other":
                    port, sut = other.port, other
                elif t == "gateway1":
                    port, sut = one.port, one
                r = self.measured("wrk", "cpu/%s/wrk/c64/round%d" % (t, i + 1), sut, port, path, body, headers, 64,
                                  max(2, self.d // 2), expect)
                pair[t] = r
            if other:
                log("cpu round %d: compared gateway %s (user %s) = %.2f x nginx" % (
                    i + 1, us(pair["other"]["sut"]["cpu_us"]), us(pair["other"]["sut"]["user_us"]),
                    pair["other"]["sut"]["cpu_us"] / pair["nginx"]["sut"]["cpu_us"]))
            ratio = pair["gateway"]["sut"]["cpu_us"] / pair["nginx"]["sut"]["cpu_us"]
            es_ratio = pair["gateway"]["sut"]["cpu_us"] / pair["nginx-es"]["sut"]["cpu_us"]
            out.append({"gateway1_cpu_us": pair["gateway1"]["sut"]["cpu_us"], "gateway1_rps": pair["gateway1"]["rps"],
                        "ratio1": pair["gateway1"]["sut"]["cpu_us"] / pair["nginx"]["sut"]["cpu_us"],
                        "es_ratio1": pair["gateway1"]["sut"]["cpu_us"] / pair["nginx-es"]["sut"]["cpu_us"],
                        "nginx_es_cpu_us": pair["nginx-es"]["sut"]["cpu_us"], "nginx_es_user_us": pair["nginx-es"]["sut"]["user_us"],
                        "es_ratio": es_ratio, "gateway_sim_cpu_us": pair["gateway"]["sim"]["cpu_us"],"other_cpu_us": pair["other"]["sut"]["cpu_us"] if other else None,
                        "other_user_us": pair["other"]["sut"]["user_us"] if other else None,
                        "gateway_cpu_us": pair["gateway"]["sut"]["cpu_us"], "nginx_cpu_us": pair["nginx"]["sut"]["cpu_us"],
                        "gateway_user_us": pair["gateway"]["sut"]["user_us"], "nginx_user_us": pair["nginx"]["sut"]["user_us"],
                        "gateway_rps": pair["gateway"]["rps"], "nginx_rps": pair["nginx"]["rps"], "ratio": ratio,
                        "errors": pair["gateway"]["errors"] + pair["nginx"]["errors"] + pair["nginx-es"]["errors"] +
                        pair["gateway1"]["errors"]})
            log("cpu round %d: gateway %s (user %s), nginx SSE relay %s (user %s), nginx EventStream relay %s (user %s) "
                "per request: %.2f x SSE, %.2f x EventStream; sim %s per gateway request" % (
                    i + 1, us(out[-1]["gateway_cpu_us"]), us(out[-1]["gateway_user_us"]), us(out[-1]["nginx_cpu_us"]),
                    us(out[-1]["nginx_user_us"]), us(out[-1]["nginx_es_cpu_us"]), us(out[-1]["nginx_es_user_us"]), ratio,
                    es_ratio, us(out[-1]["gateway_sim_cpu_us"])))
            log("cpu round %d: gateway with one worker loop %s per request: %.2f x SSE, %.2f x EventStream" % (
                i + 1, us(out[-1]["gateway1_cpu_us"]), out[-1]["ratio1"], out[-1]["es_ratio1"]))
        one.stop()
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


    def scenario_cc(self):
        for c in (1, 64):
            for t in ("gateway", "direct"):
                self.cell("cc", t, "wrk", c)

    def scenario_openai(self):
        for c in (1, 64):
            self.cell("openai", "gateway", "wrk", c)
            self.cell("openai", "direct", "wrk", c)
        self.cell("openai", "gateway", "loadgen", 1)


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
