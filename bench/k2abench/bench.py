"""The run: the simulator, the gateway and nginx started on loopback, the bodies and the captured Kiro bodies prepared,
the targets of every scenario, one measured cell, and the plan of scenarios of a full or quick run."""
import json
import os
import re
import resource
import shutil
import tempfile
import time

from .bodies import Capture, anthropic_small, claude_code_body, hdict, http_request, openai_small, responses_small
from .common import GATEWAY_BIN, NGINX_TEMPLATE, ROOT, SIM_BIN, CLIENT_KEY, free_port, log, machine, us, wait_port
from .load import Runner
from .proc import Meter, Proc, proc_mem, process_tree
from .scenarios_core import CoreScenarios
from .scenarios_dialects import DialectScenarios
from .scenarios_features import FeatureScenarios


class Bench(CoreScenarios, DialectScenarios, FeatureScenarios):
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
        self.bodies["responses-nostore"] = self.write_body(
            "responses-nostore.json", responses_small("[[sim:text frames=20 size=16]]", store=False))
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
            if scenario in ("responses", "responses-instructions", "responses-nostore"):
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
        r["machine_cores"], r["measured_cores"] = m.machine_cores, m.measured_cores
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


    def capture_like(self, name, directive):
        """The Kiro body of another stream-small-like request: the captured small body with one more directive."""
        with open(self.kiro["small"], "rb") as f:
            kb = f.read()
        old = b"[[sim:text frames=20 size=16]]"
        assert old in kb
        return self.write_body("kiro-%s.bin" % name, kb.replace(old, directive.encode() + b" " + old))

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
                ("nonstream", self.scenario_nonstream), ("reuse", self.scenario_reuse), ("keys", self.scenario_keys),
                ("redis", self.scenario_redis), ("many-streams", self.scenario_many_streams),
                ("workers", self.scenario_workers), ("convert", self.scenario_convert),
                ("callgrind", self.scenario_callgrind)]
        if not self.quick:
            plan.insert(4, ("logging", self.scenario_logging))
        self.results["durations"] = []
        for name, fn in plan:
            if self.want(name):
                log("== %s" % name)
                t1 = time.time()
                fn()
                self.results["durations"].append((name, time.time() - t1))
                log("== %s took %.0f s" % (name, time.time() - t1))
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

