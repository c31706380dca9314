"""The dialects against each other: the Responses stream against Chat Completions and Anthropic's Messages in the same
alternating rounds (wall CPU per request), and the gateway's instructions per request under callgrind, which repeat to a
few per cent on a noisy machine (`--callgrind N` alone, or the `callgrind` scenario of a run: every dialect's stream)."""
import json
import os
import re
import shutil
import subprocess
import sys

from .common import GATEWAY_BIN, LOADGEN_BIN, log, us
from .proc import Proc

# what each request kind is sent to and the last bytes of its complete answer
KINDS = {"small": ("/v1/messages", "event: message_stop"), "openai": ("/v1/chat/completions", "data: [DONE]"),
         "responses": ("/v1/responses", "event: response.completed"),
         "responses-instructions": ("/v1/responses", "event: response.completed"),
         "responses-nostore": ("/v1/responses", "event: response.completed")}
# the callgrind scenario of a run: requests of each kind (the warm-up is 50 more)
CALLGRIND_KINDS = ("small", "openai", "responses")
CALLGRIND_REQUESTS = 1000
CALLGRIND_REQUESTS_QUICK = 200


def med(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


class DialectScenarios:
    """Mixed into Bench."""

    # the dialect rounds: each request kind in turn for PHASE_MS on every connection (bench_loadgen -P), the gateway's CPU
    # read between phases; a round is ROUNDS' share of the cycles
    PHASE_MS = 250

    def scenario_responses(self):
        """The OpenAI Responses stream against the Chat Completions stream of the same conversation (the same 2 KB system
        text and 20-frame answer; store left at its default, true: every response and its conversation are kept), CPU per
        request of the gateway: the system text as a developer message (the Codex CLI's shape), and as `instructions`,
        which the response object echoes (created, in_progress and completed each carry it: 3.2x the bytes of the Chat
        stream). The median of the per-round ratios to Chat Completions (target: within 10 %). Anthropic's stream-small
        runs in the same rounds: the other dialects against each other. And the Responses stream with `store: false`:
        what keeping the conversation costs, in the same rounds.

        One bench_loadgen run (64 connections) sends the five kinds in turn, 250 ms each on every connection; between
        two phases the requests in flight finish and the gateway's CPU time is read (to the nanosecond, every thread).
        A round sums its share of the cycles (one phase of each kind): CPU per request of each kind is its CPU over its
        requests. On a shared host whose noise comes in bursts shorter than a second, two kinds measured a quarter of a
        second apart see the same machine; runs of a few seconds one after the other did not (one round's ratio spread
        from 0.85 to 1.39 on one host). bench_loadgen rather than wrk: the client shares the two cores with the gateway,
        and wrk's Lua check of every body weighed on the ratio by 3 to 5 % in paired rounds (bench/RESULTS.md, "The load
        generator's share")."""
        nrounds = 3 if self.quick else 18
        secs = 2 if self.quick else max(2, self.d * 3 // 10)
        order = ["small", "openai", "responses", "responses-instructions", "responses-nostore"]
        specs = [self.target("gateway", kind) for kind in order]
        port, headers, sut = specs[0][0], specs[0][3], specs[0][5]
        assert all(t[0] == port and t[3] == headers and t[5] is sut for t in specs)
        # as long as the rounds of 3 s per kind this scenario ran before (about 4.5 minutes)
        duration = nrounds * len(order) * secs
        r = self.run.loadgen_phases("responses/phases/c64", port, [(t[1], t[2], t[4]) for t in specs], headers, 64, duration,
                                    self.PHASE_MS, sut.pid)
        k = len(order)
        phases = r["phases"]
        cycles = [phases[i:i + k] for i in range(0, len(phases) - k + 1, k)]
        if len(cycles) < nrounds or any(p[0] != j for c in cycles for j, p in enumerate(c)):
            raise RuntimeError("bench_loadgen phases: %d cycles for %d rounds, or out of order" % (len(cycles), nrounds))
        out = []
        for i in range(nrounds):
            group = cycles[i * len(cycles) // nrounds:(i + 1) * len(cycles) // nrounds]
            per = {}
            for j, kind in enumerate(order):
                ok = sum(c[j][1] for c in group)
                per[kind] = {"cpu_us": sum(c[j][3] for c in group) / max(ok, 1),
                             "user_us": sum(c[j][4] for c in group) / max(ok, 1),
                             "rps": ok / max(sum(c[j][6] for c in group) / 1e6, 1e-9),
                             "errors": int(sum(c[j][2] for c in group)) + (ok == 0)}
            pre = "lg_"
            row = {pre + "anthropic_cpu_us": per["small"]["cpu_us"], pre + "openai_cpu_us": per["openai"]["cpu_us"],
                   pre + "responses_cpu_us": per["responses"]["cpu_us"],
                   pre + "instructions_cpu_us": per["responses-instructions"]["cpu_us"],
                   pre + "nostore_cpu_us": per["responses-nostore"]["cpu_us"],
                   pre + "nostore_rps": per["responses-nostore"]["rps"], pre + "anthropic_rps": per["small"]["rps"],
                   pre + "openai_rps": per["openai"]["rps"], pre + "responses_rps": per["responses"]["rps"],
                   pre + "instructions_rps": per["responses-instructions"]["rps"],
                   pre + "openai_user_us": per["openai"]["user_us"], pre + "responses_user_us": per["responses"]["user_us"],
                   pre + "errors": sum(p["errors"] for p in per.values()), "cycles": len(group)}
            row[pre + "ratio"] = row[pre + "responses_cpu_us"] / row[pre + "openai_cpu_us"]
            row[pre + "ratio_user"] = row[pre + "responses_user_us"] / row[pre + "openai_user_us"]
            row[pre + "ratio_instructions"] = row[pre + "instructions_cpu_us"] / row[pre + "openai_cpu_us"]
            row[pre + "ratio_nostore"] = row[pre + "nostore_cpu_us"] / row[pre + "openai_cpu_us"]
            row[pre + "ratio_anthropic"] = row[pre + "anthropic_cpu_us"] / row[pre + "openai_cpu_us"]
            out.append(row)
            log("responses round %d (%d cycles): chat %s, responses %s (%.3f x; user time %s vs %s, %.3f x), responses "
                "with instructions %s (%.3f x), store false %s (%.3f x), anthropic %s (%.3f x) per request" % (
                    i + 1, len(group), us(row[pre + "openai_cpu_us"]), us(row[pre + "responses_cpu_us"]),
                    row[pre + "ratio"], us(row[pre + "responses_user_us"]), us(row[pre + "openai_user_us"]),
                    row[pre + "ratio_user"], us(row[pre + "instructions_cpu_us"]), row[pre + "ratio_instructions"],
                    us(row[pre + "nostore_cpu_us"]), row[pre + "ratio_nostore"], us(row[pre + "anthropic_cpu_us"]),
                    row[pre + "ratio_anthropic"]))
        self.results["responses_rounds"] = out
        keys = ("anthropic_cpu_us", "openai_cpu_us", "responses_cpu_us", "instructions_cpu_us", "anthropic_rps",
                "openai_rps", "responses_rps", "instructions_rps", "ratio", "ratio_instructions", "ratio_anthropic",
                "openai_user_us", "responses_user_us", "ratio_user", "nostore_cpu_us", "nostore_rps", "ratio_nostore")
        s = {"lg_" + key: med(row["lg_" + key] for row in out) for key in keys}
        s["lg_errors"] = sum(row["lg_errors"] for row in out) + r["errors"]
        s["phase_ms"], s["cycles"] = self.PHASE_MS, len(cycles)
        # over every cycle at once: what the median of rounds estimates
        resp, chat = order.index("responses"), order.index("openai")
        s["lg_ratio_all"] = (sum(c[resp][3] for c in cycles) / sum(c[resp][1] for c in cycles)) / (
            sum(c[chat][3] for c in cycles) / sum(c[chat][1] for c in cycles))
        self.results["responses_summary"] = s
        log("responses (bench_loadgen, %d cycles of %d ms phases): medians chat %s, responses %s (%.3f x; all cycles "
            "%.3f x), with instructions %s (%.3f x), anthropic %s (%.3f x) CPU per request" % (
                len(cycles), self.PHASE_MS, us(s["lg_openai_cpu_us"]), us(s["lg_responses_cpu_us"]), s["lg_ratio"],
                s["lg_ratio_all"], us(s["lg_instructions_cpu_us"]), s["lg_ratio_instructions"],
                us(s["lg_anthropic_cpu_us"]), s["lg_ratio_anthropic"]))

    # ---- callgrind: instructions per request

    def callgrind_count(self, kind, nreq, keep=None):
        """The gateway under valgrind --tool=callgrind against the running simulator: 50 warm-up requests, the counters
        zeroed, then nreq requests of `kind` (4 connections) through bench_loadgen. Returns (Ir per request, {function:
        {"yes": inclusive, "no": self}} in Ir over the nreq requests)."""
        out_file = os.path.join(self.tmp, "callgrind-%s.out" % kind)
        env = self.gateway_env("http://127.0.0.1:%d" % self.sim.port)
        argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out_file, "--instr-atstart=no", GATEWAY_BIN]
        self.run.note("callgrind/%s" % kind, argv)
        gw = Proc("kiro2api-callgrind", argv, env=env, wait_listen=1, timeout=120)
        path, expect = KINDS[kind]
        port, body, headers = gw.port, self.bodies[kind], self.gw_headers
        ctl = lambda *a: subprocess.run(["callgrind_control"] + list(a) + [str(gw.pid)], capture_output=True, check=True)
        try:
            ctl("-i", "on")
            for n in (50, nreq):
                if n == nreq:
                    ctl("-z")
                argv = [LOADGEN_BIN, "-p", str(port), "-u", path, "-b", body, "-F", self.run.headers_file(headers), "-c",
                        "4", "-n", str(n), "-d", "600", "-w", "0", "-e", expect]
                if n == nreq:
                    self.run.note("callgrind/%s" % kind, argv)
                r = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
                if r["errors"] != 0 or r["requests"] != n:
                    raise RuntimeError("callgrind run failed (%s): %s" % (kind, r))
            ctl("-d")
        finally:
            gw.stop()
        prefix = os.path.basename(out_file) + "."
        dumps = sorted(f for f in os.listdir(self.tmp) if f.startswith(prefix))
        dump = os.path.join(self.tmp, dumps[-1])
        if keep:
            shutil.copy(dump, keep)
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
        if total is None:
            raise RuntimeError("callgrind_annotate gave no total for %s" % dump)
        return total / nreq, rows

    def callgrind(self, nreq):
        """--callgrind N: only the instructions per request of --callgrind-kind, in total and by function (inclusive and
        self), printed."""
        if shutil.which("valgrind") is None:
            sys.exit("bench: valgrind is not installed")
        self.start_sim()
        self.prepare()
        kind = self.args.callgrind_kind
        per_req, rows = self.callgrind_count(kind, nreq, keep=self.args.callgrind_out)
        print("callgrind: %d %s requests (2 KB in, 20 text frames out), Ir per request: %.0f" % (
            nreq, "stream-small" if kind == "small" else kind, per_req))
        print("%12s %12s  %s" % ("inclusive", "self", "function"))
        top = sorted(rows.items(), key=lambda kv: -kv[1].get("yes", 0))
        for name, v in top:
            if v.get("yes", 0) / nreq < 2000:
                continue
            if not (name.startswith("src/") or v.get("no", 0) / nreq >= 2000):
                continue
            print("%12.0f %12.0f  %s" % (v.get("yes", 0) / nreq, v.get("no", 0) / nreq, name))

    def scenario_callgrind(self):
        """Instructions per request of every dialect's stream (stream-small, its Chat Completions and its Responses form),
        one gateway under callgrind after the other: the figure that repeats on a noisy machine, for the ratios."""
        if shutil.which("valgrind") is None:
            self.results["notes"].append("valgrind not installed: no instruction counts (deps/install.sh bench)")
            log("callgrind: valgrind not installed")
            return
        nreq = CALLGRIND_REQUESTS_QUICK if self.quick else CALLGRIND_REQUESTS
        out = {"requests": nreq, "ir": {}}
        for kind in CALLGRIND_KINDS:
            out["ir"][kind], _ = self.callgrind_count(kind, nreq)
            log("callgrind %-10s %.0f Ir per request (%d requests)" % (kind, out["ir"][kind], nreq))
        self.results["callgrind"] = out
