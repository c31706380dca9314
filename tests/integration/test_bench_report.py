"""The benchmark harness's report (bench/k2abench): from a set of results, the target rows of the features measured in
the same run (end-to-end throughput, the simulator's share, instructions per request, Responses against Chat
Completions, no regression of the other dialects, per-account connections, client keys, the shared store) say pass or
MISS by their thresholds, and the section has their tables; wrk_post.lua turns over the keys of WRK_KEYS_FILE, one per
request; bench_loadgen's phases send their kinds in turn and give each phase its CPU. No benchmark is run: the figures
are made up, the load is a loopback stand-in."""
import collections
import contextlib
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from k2a import SOURCE_DIR, main

sys.path.insert(0, os.path.join(SOURCE_DIR, "bench"))

from k2abench import common, render  # noqa: E402
from k2abench.load import Runner  # noqa: E402


def row(target, tool, rps, errors=0):
    return {"target": target, "tool": tool, "proto": "h1" if tool == "wrk" else "h2", "conns": 64, "rps": rps,
            "errors": errors, "sut": {"cpu_us": 40.0, "wakeups": 0.1}, "sim": {"cpu_us": 15.0}}


def results(e2e_rps=21000, responses_ratio=1.05, handshakes=0.01, keys_ratio=1.02, redis_ratio=1.05, ir_small=88000):
    rr = [{"openai_cpu_us": 40.0, "responses_cpu_us": 40.0 * responses_ratio, "instructions_cpu_us": 44.0,
           "anthropic_cpu_us": 39.0, "openai_rps": 9000, "responses_rps": 8000, "instructions_rps": 8000,
           "anthropic_rps": 9100, "ratio": responses_ratio, "ratio_instructions": 1.1, "ratio_anthropic": 0.975,
           "nostore_cpu_us": 41.0, "nostore_rps": 8500, "ratio_nostore": 1.025, "errors": 0}] * 3
    arm = {"rps": 9000, "sut_cpu_us": 40.0, "sut_user_us": 30.0, "sim_cpu_us": 15.0, "redis_cpu_us": 20.0}
    return {
        "machine": {"model": "test", "cpus": 2, "kernel": "k", "versions": {"wrk": "wrk"}, "commit": "abc"},
        "pinning": "none", "mode": "quick", "duration_s": 2, "elapsed_s": 250.0, "sizes": {"small": 2048},
        "notes": [], "commands": [("x", "wrk ...")], "header_files": [], "gateway_env": {"LOG_LEVEL": "warn"},
        "nginx_cmd": "nginx",
        "scenarios": {"small": [row("gateway", "wrk", e2e_rps), row("gateway", "h2load", 25000)]},
        "cpu_rounds": [{"gateway_cpu_us": 40.0, "gateway_sim_cpu_us": 15.0, "nginx_cpu_us": 30.0, "ratio": 1.4,
                        "es_ratio": None}] * 3,
        "callgrind": {"requests": 200, "ir": {"small": ir_small, "openai": 100000, "responses": 105000}},
        "responses_rounds": rr,
        "responses_summary": dict(rr[0]),
        "reuse_summary": {"account": {"cpu_us": 300.0, "sim_cpu_us": 250.0, "rps": 800, "handshakes_per_req": handshakes,
                                      "resumed_per_req": handshakes, "conns_per_req": handshakes},
                          "never": {"cpu_us": 900.0, "sim_cpu_us": 800.0, "rps": 300, "handshakes_per_req": 1.02,
                                    "resumed_per_req": 0.93, "conns_per_req": 1.02},
                          "ratio": 3.0, "sim_ratio": 3.1, "rounds": 3},
        "keys_summary": {"builtin": dict(arm), "managed": dict(arm, sut_cpu_us=40.0 * keys_ratio), "ratio": keys_ratio,
                         "ratios": [keys_ratio] * 3, "errors": 0, "rounds": 3, "keys": 128,
                         "in_process": {"full path, 10000 keys (random key each)": {"ns": 600, "refused": 0}}},
        "redis_summary": {"file": dict(arm, commands=0.0, by_command={}),
                          "redis": dict(arm, sut_cpu_us=40.0 * redis_ratio, commands=2.5, by_command={"evalsha": 1.0}),
                          "ratio": redis_ratio, "ratios": [redis_ratio] * 3, "errors": 0, "rounds": 3, "keys": 128,
                          "version": "7.0.15"},
        "durations": [("stream-small", 92.0), ("keys", 16.0)],
    }


def verdicts(res):
    return {name: ok for name, _, ok in render.evaluate(res)}


def verdict(res, words):
    found = [ok for name, ok in verdicts(res).items() if words in name]
    assert len(found) == 1, (words, list(verdicts(res)))
    return found[0]


class Targets(unittest.TestCase):
    def test_rows_pass_within_their_thresholds(self):
        res = results()
        for words in ("req/s at 64 connections", "kiro-sim CPU per request", "instructions per stream-small",
                      "Responses stream CPU", "Responses stream instructions", "no regression of the other dialects",
                      "per-account upstream connections", "with a managed key", "client keys in process", "KIRO_REDIS_URL"):
            self.assertEqual(verdict(res, words), "pass", words)

    def test_rows_miss_beyond_their_thresholds(self):
        self.assertEqual(verdict(results(e2e_rps=common.TARGET_E2E_RPS - 1), "req/s at 64 connections"), "MISS")
        self.assertEqual(verdict(results(responses_ratio=1.2), "Responses stream CPU"), "MISS")
        self.assertEqual(verdict(results(handshakes=1.0), "per-account upstream connections"), "MISS")
        self.assertEqual(verdict(results(keys_ratio=1.3), "with a managed key"), "MISS")
        self.assertEqual(verdict(results(redis_ratio=1.5), "KIRO_REDIS_URL"), "MISS")
        self.assertEqual(verdict(results(ir_small=95000), "instructions per stream-small"), "MISS")
        res = results()
        res["callgrind"]["ir"]["openai"] = common.REF_IR["openai"] * 1.2
        self.assertEqual(verdict(res, "no regression of the other dialects"), "MISS")
        res["callgrind"]["ir"]["responses"] = res["callgrind"]["ir"]["openai"] * 1.2
        self.assertEqual(verdict(res, "Responses stream instructions"), "MISS")

    def test_responses_target_reads_bench_loadgen_rounds(self):
        """Rounds measured under both clients: the target is bench_loadgen's ratio, wrk's is shown beside it, and the
        section has a table for each client; an error in bench_loadgen's rounds is a MISS whatever the ratio."""
        def two_clients(lg_ratio, wrk_ratio, lg_errors=0):
            res = results(responses_ratio=wrk_ratio)
            lg = {"lg_" + k: v for k, v in results(responses_ratio=lg_ratio)["responses_rounds"][0].items()}
            lg["lg_errors"] = lg_errors
            res["responses_rounds"] = [dict(r, **lg) for r in res["responses_rounds"]]
            res["responses_summary"] = dict(res["responses_rounds"][0])
            return res

        res = two_clients(1.05, 1.2)
        self.assertEqual(verdict(res, "Responses stream CPU"), "pass")
        (value,) = [v for name, v, _ in render.evaluate(res) if "Responses stream CPU" in name]
        self.assertIn("**1.05 ×**", value)
        self.assertIn("with wrk as the client in the same rounds 1.20 ×", value)
        self.assertEqual(verdict(two_clients(1.2, 1.05), "Responses stream CPU"), "MISS")
        self.assertEqual(verdict(two_clients(1.05, 1.05, lg_errors=3), "Responses stream CPU"), "MISS")
        text = render.render(res)
        self.assertIn("Client: bench_loadgen.", text)
        self.assertIn("Client: wrk.", text)
        self.assertIn("| median | 40 µs | 42 µs | **1.050** |", text)
        self.assertIn("| median | 40 µs | 48 µs | **1.200** |", text)

    def test_responses_target_with_bench_loadgen_alone(self):
        """The scenario's default: bench_loadgen's rounds only. The target and the other dialects' wall CPU read them;
        no wrk ratio and no wrk table are made up."""
        def loadgen_only(ratio, errors=0):
            res = results()
            lg = {"lg_" + k: v for k, v in results(responses_ratio=ratio)["responses_rounds"][0].items()}
            lg["lg_errors"] = errors
            lg["lg_anthropic_cpu_us"] = 37.0
            res["responses_rounds"] = [dict(lg) for _ in range(18)]
            res["responses_summary"] = dict(lg)
            return res

        res = loadgen_only(1.08)
        self.assertEqual(verdict(res, "Responses stream CPU"), "pass")
        (value,) = [v for name, v, _ in render.evaluate(res) if "Responses stream CPU" in name]
        self.assertIn("**1.08 ×**", value)
        self.assertNotIn("wrk", value)
        (name,) = [n for n, _, _ in render.evaluate(res) if "Responses stream CPU" in n]
        self.assertIn("bench_loadgen c=64, median of 18 alternating rounds", name)
        (value,) = [v for name, v, _ in render.evaluate(res) if "no regression" in name]
        self.assertIn("(bench_loadgen): Anthropic 37 µs, Chat Completions 40 µs", value)
        self.assertEqual(verdict(loadgen_only(1.11), "Responses stream CPU"), "MISS")
        self.assertEqual(verdict(loadgen_only(1.05, errors=1), "Responses stream CPU"), "MISS")
        text = render.render(res)
        self.assertIn("Client: bench_loadgen.", text)
        self.assertNotIn("Client: wrk.", text)
        self.assertIn("The client is bench_loadgen (C,", text)
        self.assertEqual(text.count("| median | 40 µs | 43 µs | **1.080** |"), 1)

    def test_responses_target_read_on_phases(self):
        """The scenario as it runs: one bench_loadgen run in phases, its cycles summed into rounds. The row and the
        section say how, and the ratio over all cycles is shown beside the median."""
        res = results()
        lg = {"lg_" + k: v for k, v in results(responses_ratio=1.07)["responses_rounds"][0].items()}
        lg["lg_errors"] = 0
        res["responses_rounds"] = [dict(lg, cycles=12 - (i % 9 == 0)) for i in range(18)]
        res["responses_summary"] = dict(lg, cycles=216, phase_ms=250, lg_ratio_all=1.072)
        self.assertEqual(verdict(res, "Responses stream CPU"), "pass")
        ((name, value),) = [(n, v) for n, v, _ in render.evaluate(res) if "Responses stream CPU" in n]
        self.assertIn("median of 18 rounds of 11 to 12 cycles, the kinds in turn in 250 ms phases", name)
        self.assertIn("**1.07 ×**", value)
        self.assertIn("over all 216 cycles 1.072 ×", value)
        text = render.render(res)
        self.assertIn("the kinds in turn, 250 ms each on every connection", text)
        self.assertIn("a round is 11 to 12 cycles (one phase of each kind) summed, 216 cycles in all", text)

    def test_rows_absent_without_their_scenario(self):
        res = results()
        for k in ("callgrind", "responses_summary", "reuse_summary", "keys_summary", "redis_summary"):
            del res[k]
        names = " ".join(verdicts(res))
        for words in ("instructions", "Responses", "per-account", "managed key", "KIRO_REDIS_URL"):
            self.assertNotIn(words, names)

    def test_section_has_every_table(self):
        text = render.render(results())
        self.assertTrue(text.startswith(common.SECTION))
        for title in ("### Dialects: Responses against Chat Completions", "### Instructions per request (callgrind)",
                      "### Per-account upstream connections over TLS", "### Client keys: a managed key",
                      "### Shared store: KIRO_REDIS_URL", "### Duration of each scenario"):
            self.assertIn(title, text)
        self.assertIn("| Redis | 42 µs | 30 µs | 20 µs | 15 µs | 9000 | 2.500 |", text)
        self.assertIn("| stream-small | 92 |", text)
        self.assertNotIn("MISS", text)


@contextlib.contextmanager
def loopback_server(answer):
    """An HTTP/1.1 server on 127.0.0.1 in this process whose POST answers are answer(handler) (bytes), and a temporary
    directory with body.json ("{}"). Yields (port, tmp)."""
    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", "0")))
            body = answer(self)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="k2a-bench-report-")
    try:
        with open(os.path.join(tmp, "body.json"), "w") as f:
            f.write("{}")
        yield srv.server_address[1], tmp
    finally:
        srv.shutdown()
        srv.server_close()
        shutil.rmtree(tmp, ignore_errors=True)


class WrkKeys(unittest.TestCase):
    def test_keys_are_sent_in_turn(self):
        if shutil.which("wrk") is None:
            self.skipTest("wrk is not installed (deps/install.sh bench)")
        seen = collections.Counter()
        lock = threading.Lock()

        def answer(handler):
            with lock:
                seen[handler.headers.get("x-api-key")] += 1
            return b"event: message_stop\n\n"

        with loopback_server(answer) as (port, tmp):
            keys = os.path.join(tmp, "keys.txt")
            with open(keys, "w") as f:
                f.write("key-a\nkey-b\nkey-c\n")
            run = Runner(None, tmp, None)
            r = run.wrk("t", port, "/v1/messages", os.path.join(tmp, "body.json"), ["content-type: application/json"], 1, 1,
                        "event: message_stop", keys_file=keys)
        self.assertEqual(r["errors"], 0)
        self.assertGreater(r["ok"], 5)
        self.assertEqual(set(seen), {"key-a", "key-b", "key-c"})
        # one connection, one key after the other: the counts differ by at most one
        self.assertLessEqual(max(seen.values()) - min(seen.values()), 1, seen)
        self.assertIn(("t", "WRK_BODY_FILE=$TMP/body.json WRK_HEADERS_FILE=$TMP/headers-0.txt WRK_EXPECT='event: "
                            "message_stop' WRK_KEYS_FILE=$TMP/keys.txt wrk -t1 -c1 -d1s --latency -s %s "
                            "http://127.0.0.1:%d/v1/messages" % (common.WRK_SCRIPT, port)),
                      run.commands)


class LoadgenPhases(unittest.TestCase):
    """bench_loadgen -X/-P/-C against a loopback server in this process: the kinds are sent in turn, whole cycles are
    reported, each phase's CPU is this process's, a kind whose answers lack its expected string counts errors of its
    own. The CPU figures are checked against work the server does on purpose (2 ms of CPU for /heavy, none for /light),
    not against a speed."""

    def test_kinds_in_turn_with_their_cpu(self):
        if not os.path.exists(common.LOADGEN_BIN):
            self.skipTest("bench_loadgen is not built")

        def answer(handler):
            if handler.path == "/heavy":
                t = time.thread_time() + 0.002
                while time.thread_time() < t:
                    pass
            return ("done %s" % handler.path).encode()

        with loopback_server(answer) as (port, tmp):
            body = os.path.join(tmp, "body.json")
            argv = [common.LOADGEN_BIN, "-p", str(port), "-u", "/light", "-b", body, "-e", "done /light",
                    "-X", "/heavy|%s|done /heavy" % body, "-X", "/light|%s|not in the answer" % body,
                    "-P", "100", "-C", str(os.getpid()), "-c", "2", "-d", "1.5", "-w", "0.2"]
            out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        r = json.loads(out.stdout)
        self.assertEqual(r["kinds"], 3)
        phases = r["phases"]
        self.assertGreaterEqual(len(phases), 9)
        self.assertEqual(len(phases) % 3, 0)
        self.assertEqual([p[0] for p in phases], [0, 1, 2] * (len(phases) // 3))
        per = {k: [p for p in phases if p[0] == k] for k in range(3)}
        ok = {k: sum(p[1] for p in v) for k, v in per.items()}
        errors = {k: sum(p[2] for p in v) for k, v in per.items()}
        self.assertGreater(ok[0], 0)
        self.assertGreater(ok[1], 0)
        self.assertEqual((errors[0], errors[1], ok[2]), (0, 0, 0))
        self.assertGreater(errors[2], 0)
        self.assertEqual(r["errors"], r["bad_body"])
        cpu = {k: sum(p[3] for p in v) / max(ok[k] + errors[k], 1) for k, v in per.items()}
        # /heavy spends 2 ms of CPU more than /light in the server, this process
        self.assertGreater(cpu[1] - cpu[0], 1500, cpu)
        # user + system (clock ticks) within a tick or two of the CPU time; every phase at least its 100 ms
        self.assertTrue(all(p[4] + p[5] <= p[3] + 20000 for p in phases))
        self.assertTrue(all(p[6] >= 100000 for p in phases))


if __name__ == "__main__":
    main()
