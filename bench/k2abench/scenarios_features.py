"""The scenarios of the features other issues added to the request path, each against the path without it in the same
alternating rounds (stream-small, wrk, 64 connections): per-account upstream connections over TLS (KIRO_UPSTREAM_REUSE
account against never), managed client keys (against the built-in KIRO_CLIENT_TOKEN; and bench_keys in process), and
the shared store (KIRO_REDIS_URL against none, with managed keys: Redis on the request path)."""
import json
import os
import re
import subprocess
import sys
import tempfile

from .bodies import http_request
from .common import CLIENT_KEY, KEYS_BIN, ROOT, SIM_BIN, log, us
from .proc import Meter, Proc

ADMIN_TOKEN = "bench-admin-token-0123456789abcdef"
# a managed key allows at most 10 000 requests per minute (README, client keys): the keyed load turns over NKEYS keys,
# each with every limit set high enough never to refuse (rounds of ~20 000 req/s, half the time: ~80 req/s per key)
NKEYS = 128
KEY_LIMITS = {"rpm": 10000, "concurrency": 100000, "credits_day": 1e6, "credits_month": 1e7, "tokens_day": 10 ** 12}
KEY_MODELS = ["claude-sonnet-*", "claude-haiku-*", "claude-opus-*"]


def med(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def redis_commandstats(redis):
    """{command: calls} from INFO commandstats (the INFO itself counts in the next one)."""
    out = {}
    for m in re.finditer(r"^cmdstat_([^:]+):calls=(\d+)", redis.cli("INFO", "commandstats"), re.M):
        out[m.group(1)] = int(m.group(2))
    return out


class FeatureScenarios:
    """Mixed into Bench."""

    def scenario_reuse(self):
        """KIRO_UPSTREAM_REUSE over TLS (per-account upstream connections). A second kiro-sim serves HTTPS with a throw-away CA; two
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
        self.results["reuse_summary"] = {m: {k: med(m, k) for k in out[0][m]} for m in modes}
        for m in modes:
            log("reuse %-7s medians: gateway %s/req, sim %s/req, %.0f req/s, %.3f handshakes/req" % (
                m, us(med(m, "cpu_us")), us(med(m, "sim_cpu_us")), med(m, "rps"), med(m, "handshakes_per_req")))
        ratios = sorted(r["never"]["cpu_us"] / r["account"]["cpu_us"] for r in out)
        sim_ratios = sorted(r["never"]["sim_cpu_us"] / r["account"]["sim_cpu_us"] for r in out)
        self.results["reuse_summary"].update(ratio=ratios[len(ratios) // 2], sim_ratio=sim_ratios[len(sim_ratios) // 2],
                                             rounds=len(out))
        log("reuse: never / account CPU per request, median of rounds: gateway %.2f x, simulator %.2f x" % (
            ratios[len(ratios) // 2], sim_ratios[len(sim_ratios) // 2]))

    # ---- managed client keys and the shared store

    def create_keys(self, gw, tag, n=NKEYS):
        """n managed keys made through the admin API of gw, written one a line to a file of $TMP (for wrk's
        WRK_KEYS_FILE); the keys themselves are never logged."""
        keys = []
        for i in range(n):
            st, _, b = http_request(gw.port, "POST", "/api/admin/keys", json.dumps(
                {"name": "bench-%s-%d" % (tag, i), "models": KEY_MODELS, "limits": KEY_LIMITS}),
                {"authorization": "Bearer " + ADMIN_TOKEN, "content-type": "application/json"})
            if st != 201:
                raise RuntimeError("%s: POST /api/admin/keys answered %d: %s" % (tag, st, b[:300]))
            keys.append(json.loads(b)["key"])
        return self.keys_file(tag, keys)

    def keys_file(self, tag, keys):
        path = os.path.join(self.tmp, "keys-%s.txt" % tag)
        with open(path, "w") as f:
            f.write("".join(k + "\n" for k in keys))
        return path

    def keyed_rounds(self, scen, arms, extra_sets=None, probe=None):
        """Alternating rounds of stream-small (wrk, 64 connections) through each arm (name, gateway, keys file): CPU per
        request of the gateway, the simulator and the extra process sets; probe(name) before and after each run gives
        counters whose deltas per request go into the row. Returns the rounds ({arm: row})."""
        rounds = 3 if self.quick else 5
        headers = ["content-type: application/json"]
        out = []
        for i in range(rounds):
            row = {}
            k = i % len(arms)
            for name, gw, keys in arms[k:] + arms[:k]:
                sets = {"sut": (lambda pid=gw.pid: [pid]), "sim": (lambda: [self.sim.pid])}
                sets.update(extra_sets or {})
                before = probe(name) if probe else None
                label = "%s/%s/wrk/c64/round%d" % (scen, name, i + 1)
                with Meter(sets) as m:
                    r = self.run.wrk(label, gw.port, "/v1/messages", self.bodies["small"], headers, 64, max(2, self.d // 2),
                                     "event: message_stop", keys_file=keys)
                n = r["ok"] or r["requests"]
                x = {"rps": r["rps"], "requests": n, "errors": r["errors"], "p99_us": r["p99_us"]}
                for s in sets:
                    pr = m.per_request(s, n) or {}
                    x["%s_cpu_us" % s] = pr.get("cpu_us")
                    x["%s_user_us" % s] = pr.get("user_us")
                if probe:
                    after = probe(name)
                    x["counters"] = {c: (after.get(c, 0) - before.get(c, 0)) / n for c in set(after) | set(before)}
                row[name] = x
                log("%-34s %8.0f req/s  gateway %s/req (user %s)  sim %s/req  errors %d" % (
                    label, x["rps"], us(x["sut_cpu_us"]), us(x["sut_user_us"]), us(x["sim_cpu_us"]), x["errors"]))
            out.append(row)
        return out

    def scenario_keys(self):
        """One gateway with KIRO_ADMIN_TOKEN and NKEYS managed keys (every limit set, a model list): the same load with the
        built-in KIRO_CLIENT_TOKEN and turning over the managed keys, in alternating rounds; then bench_keys in process."""
        state = tempfile.mkdtemp(prefix="keys-", dir=self.tmp)
        gw = self.start_gateway("kiro2api-keys", extra={"KIRO_ADMIN_TOKEN": ADMIN_TOKEN,
                                                         "KIRO_KEYS_FILE": os.path.join(state, "keys.json")})
        try:
            managed = self.create_keys(gw, "keys")
            builtin = self.keys_file("builtin", [CLIENT_KEY])
            for keys in (builtin, managed):
                with open(keys) as f:
                    key = f.readline().strip()
                self.check_once(gw.port, "/v1/messages", self.bodies["small"], ["x-api-key: " + key,
                                "content-type: application/json"], "event: message_stop", "keys")
            out = self.keyed_rounds("keys", [("builtin", gw, builtin), ("managed", gw, managed)])
            # the managed keys' own usage: every request of the managed rounds was admitted and counted on a managed key
            st, _, b = http_request(gw.port, "GET", "/api/admin/keys", None, {"authorization": "Bearer " + ADMIN_TOKEN})
            counted = sum(x["usage_today"]["requests"] for x in json.loads(b)["keys"]
                          if x["name"].startswith("bench-keys-")) if st == 200 else None
        finally:
            gw.stop()
        summary = {a: {k: med(r[a][k] for r in out) for k in ("rps", "sut_cpu_us", "sut_user_us", "sim_cpu_us")}
                   for a in ("builtin", "managed")}
        summary["ratio"] = med(r["managed"]["sut_cpu_us"] / r["builtin"]["sut_cpu_us"] for r in out)
        summary["ratios"] = [r["managed"]["sut_cpu_us"] / r["builtin"]["sut_cpu_us"] for r in out]
        summary["errors"] = sum(r[a]["errors"] for r in out for a in r)
        summary["rounds"] = len(out)
        summary["keys"] = NKEYS
        summary["counted"] = counted
        summary["managed_requests"] = sum(r["managed"]["requests"] for r in out)
        summary["in_process"] = self.bench_keys()
        self.results["keys_rounds"] = out
        self.results["keys_summary"] = summary
        log("keys: medians built-in %s, managed %s CPU per request (%.3f x), errors %d; the managed keys counted %s "
            "requests (wrk completed %d in their rounds)" % (
                us(summary["builtin"]["sut_cpu_us"]), us(summary["managed"]["sut_cpu_us"]), summary["ratio"],
                summary["errors"], counted, summary["managed_requests"]))

    def bench_keys(self):
        """bench_keys (bench/keys_bench.c): the key path in process, ns per request, {case: ns}."""
        if not os.path.exists(KEYS_BIN):
            self.results["notes"].append("bench_keys not built: the key path in process not measured")
            return None
        argv = [KEYS_BIN, "0.1" if self.quick else "0.2"]
        self.run.note("keys/in-process", argv)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        out = {}
        for m in re.finditer(r"^(\S.*?)\s{2,}(\d+)\s+(\d+)$", p.stdout, re.M):
            out[m.group(1).strip()] = {"ns": int(m.group(2)), "refused": int(m.group(3))}
        if not out:
            raise RuntimeError("bench_keys output not understood: %s %s" % (p.stdout, p.stderr))
        log("keys in process: %s" % ", ".join("%s %d ns" % (k, v["ns"]) for k, v in out.items()))
        return out

    def scenario_redis(self):
        """Two gateways on the same simulator and account, without and with KIRO_REDIS_URL (a redis-server started here on
        a free loopback port), each with NKEYS managed keys (the keys' admission and usage then go through Redis): the
        same load in alternating rounds; gateway and redis-server CPU per request, and Redis commands per request (INFO
        commandstats before and after each run)."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
        try:
            from redis_util import Redis
            redis = Redis()
        except (ImportError, RuntimeError) as e:
            self.results["notes"].append("Redis scenario not run: %s (deps/install.sh bench installs redis-server)" % e)
            log("redis: not run: %s" % e)
            return
        gws = {}
        try:
            for name, extra in (("file", {}), ("redis", {"KIRO_REDIS_URL": redis.url})):
                state = tempfile.mkdtemp(prefix="redis-%s-" % name, dir=self.tmp)
                gws[name] = self.start_gateway("kiro2api-%s" % name, extra=dict(
                    extra, KIRO_ADMIN_TOKEN=ADMIN_TOKEN, KIRO_KEYS_FILE=os.path.join(state, "keys.json")))
            keys = {name: self.create_keys(gw, "redis-" + name) for name, gw in gws.items()}
            for name, gw in gws.items():
                with open(keys[name]) as f:
                    key = f.readline().strip()
                self.check_once(gw.port, "/v1/messages", self.bodies["small"], ["x-api-key: " + key,
                                "content-type: application/json"], "event: message_stop", "redis/" + name)

            probes = [0]

            def probe(_name):
                st = redis_commandstats(redis)
                st["info"] = st.get("info", 0) - probes[0]  # the earlier INFOs that read these
                probes[0] += 1
                st["_all"] = sum(st.values())
                return st
            out = self.keyed_rounds("redis", [("file", gws["file"], keys["file"]), ("redis", gws["redis"], keys["redis"])],
                                    extra_sets={"redis": (lambda: [redis.p.pid])}, probe=probe)
            version = redis.cli("INFO", "server")
        finally:
            for gw in gws.values():
                gw.stop()
            redis.cleanup()
        summary = {a: {k: med(r[a][k] for r in out) for k in ("rps", "sut_cpu_us", "sut_user_us", "sim_cpu_us",
                                                               "redis_cpu_us")} for a in ("file", "redis")}
        for a in ("file", "redis"):
            summary[a]["commands"] = med(r[a]["counters"]["_all"] for r in out)
            cmds = {}
            for r in out:
                for c, v in r[a]["counters"].items():
                    if c != "_all":
                        cmds.setdefault(c, []).append(v)
            summary[a]["by_command"] = {c: med(v) for c, v in cmds.items() if med(v) > 0.0005}
        summary["ratio"] = med(r["redis"]["sut_cpu_us"] / r["file"]["sut_cpu_us"] for r in out)
        summary["ratios"] = [r["redis"]["sut_cpu_us"] / r["file"]["sut_cpu_us"] for r in out]
        summary["errors"] = sum(r[a]["errors"] for r in out for a in r)
        summary["rounds"] = len(out)
        summary["keys"] = NKEYS
        m = re.search(r"redis_version:(\S+)", version)
        summary["version"] = m.group(1) if m else "?"
        self.results["redis_rounds"] = out
        self.results["redis_summary"] = summary
        log("redis: medians file %s, redis %s gateway CPU per request (%.3f x); %.3f Redis commands per request (%s); "
            "redis-server %s per request; errors %d" % (
                us(summary["file"]["sut_cpu_us"]), us(summary["redis"]["sut_cpu_us"]), summary["ratio"],
                summary["redis"]["commands"], ", ".join("%s %.3f" % kv for kv in sorted(
                    summary["redis"]["by_command"].items())), us(summary["redis"]["redis_cpu_us"]), summary["errors"]))
