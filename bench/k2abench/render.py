"""The report: the targets evaluated (pass / MISS / n/a) and the section "## End-to-end (make bench)" of bench/RESULTS.md
rendered and put in place of the previous one."""
import re
import shlex
import time

from .common import (SECTION, TARGET_CONVERT_P50_US, TARGET_CPU_ES_RATIO, TARGET_CPU_RATIO, TARGET_RSS_MB, TARGET_STREAMS,
                     TARGET_TTFB_P50_US, TARGET_TTFB_P99_US, us)
from .report_extra import extra_sections, extra_targets

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
        if all(r.get("ratio1") is not None for r in rounds):
            g1 = sorted(r["gateway1_cpu_us"] for r in rounds)[len(rounds) // 2]
            r1 = sorted(r["ratio1"] for r in rounds)[len(rounds) // 2]
            e1 = sorted(r["es_ratio1"] for r in rounds)[len(rounds) // 2]
            emed = sorted(r["nginx_es_cpu_us"] for r in rounds)[len(rounds) // 2]
            out.append(("the same with one worker loop (`KIRO_WORKERS=1`, as nginx's one worker): ≤ %.1f × the SSE relay, "
                        "≤ %.1f × the EventStream relay (same rounds)" % (TARGET_CPU_RATIO, TARGET_CPU_ES_RATIO),
                        "%s vs %s = **%.2f ×**, vs %s = **%.2f ×** (rounds: %s)" % (
                            us(g1), us(nmed), r1, us(emed), e1, ", ".join("%.2f/%.2f" % (r["ratio1"], r["es_ratio1"])
                                                                         for r in rounds)),
                        "pass" if r1 <= TARGET_CPU_RATIO and e1 <= TARGET_CPU_ES_RATIO else "MISS"))
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
    out.extend(extra_targets(res))
    return out


def render(res):
    m = res["machine"]
    L = []
    L.append(SECTION)
    L.append("")
    L.append("Written by `bench/harness.py` (`make bench`; `make bench-quick` for a ~4 minute run): this section is replaced "
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
             "kiro-sim's share; wake-ups/req are the server's voluntary context switches over all its threads "
             "(/proc/PID/task/*/status: each is one sleep in epoll_wait) per request (under load a loop serves many events "
             "per wake-up), preempted/req its involuntary ones (the CPU was taken away). busy cores = the machine's busy "
             "CPUs during the cell (/proc/stat, of 2), of which server+sim = what the server and kiro-sim used: the rest is "
             "the load generator and every other process on this shared machine. Latency columns come from the tool named in the row: "
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
                 "server wake-ups/req | preempted/req | busy cores (server+sim) | errors |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            s, sim = r.get("sut") or {}, r.get("sim") or {}
            mc, oc = r.get("machine_cores"), r.get("measured_cores")
            L.append("| %s | %s (%s) | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                r["target"], r["tool"], r["proto"], r["conns"], r["rps"], us(r.get("p50_us")), us(r.get("p99_us")),
                us(r.get("ttfb_p50_us")), us(r.get("ttfb_p99_us")), us(s.get("cpu_us")), us(sim.get("cpu_us")),
                "%.2f" % s["wakeups"] if s.get("wakeups") is not None else "-",
                "%.2f" % s["preempts"] if s.get("preempts") is not None else "-",
                "%.2f (%.2f)" % (mc, oc) if mc is not None and oc is not None else "-", r["errors"]))
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

    L.extend(extra_sections(res))

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

