"""The report's rows and tables for what the first harness did not measure: the end-to-end throughput target, the
simulator's share, instructions per request, the dialects against each other (Responses, Chat Completions, Anthropic),
per-account upstream connections, client keys, the shared store, and how long each scenario of the run took."""
from .common import (REF_IR, REF_IR_COMMIT, TARGET_E2E_RPS, TARGET_IR_REGRESSION, TARGET_IR_SMALL, TARGET_KEYS_NS,
                     TARGET_KEYS_RATIO, TARGET_REDIS_RATIO, TARGET_RESPONSES_RATIO, TARGET_REUSE_HANDSHAKES,
                     TARGET_SIM_SHARE, us)

KIND_NAMES = {"small": "Anthropic `/v1/messages`", "openai": "Chat Completions", "responses": "Responses"}


def _find(res, scenario, target, tool, conns):
    for r in res["scenarios"].get(scenario, []):
        if r["target"] == target and r["tool"] == tool and r["conns"] == conns:
            return r
    return None


def _med(values):
    values = sorted(values)
    return values[len(values) // 2] if values else None


def _ok(cond):
    return "pass" if cond else "MISS"


def extra_targets(res):
    """Target rows (name, measured, pass/MISS/n/a) of the scenarios added to the run."""
    out = []
    w, h = _find(res, "small", "gateway", "wrk", 64), _find(res, "small", "gateway", "h2load", 64)
    if w or h:
        parts = ["%s %.0f req/s" % (n, r["rps"]) for n, r in (("HTTP/1.1 (wrk)", w), ("h2c (h2load 8 × 8)", h)) if r]
        errs = sum(r["errors"] for r in (w, h) if r)
        out.append(("stream-small through the gateway ≥ %d req/s at 64 connections, HTTP/1.1 and h2c" % TARGET_E2E_RPS,
                    ", ".join(parts) + (", %d errors" % errs if errs else ""),
                    _ok(w is not None and h is not None and min(w["rps"], h["rps"]) >= TARGET_E2E_RPS and errs == 0)))
    rounds = res.get("cpu_rounds")
    if rounds and all(r.get("gateway_sim_cpu_us") for r in rounds):
        share = _med(r["gateway_sim_cpu_us"] / r["gateway_cpu_us"] for r in rounds)
        out.append(("kiro-sim CPU per request ≤ %.1f × the gateway's (the simulator is not what is measured; CPU rounds)"
                    % TARGET_SIM_SHARE,
                    "%s vs %s = **%.2f ×** (medians)" % (us(_med(r["gateway_sim_cpu_us"] for r in rounds)),
                                                         us(_med(r["gateway_cpu_us"] for r in rounds)), share),
                    _ok(share <= TARGET_SIM_SHARE)))
    cg = (res.get("callgrind") or {}).get("ir", {})
    if "small" in cg:
        out.append(("≤ %d k instructions per stream-small request (callgrind, %d requests)" % (
            TARGET_IR_SMALL // 1000, res["callgrind"]["requests"]), "%.1f k" % (cg["small"] / 1000),
            _ok(cg["small"] <= TARGET_IR_SMALL)))
    s = res.get("responses_summary")
    if s:
        rr = res["responses_rounds"]
        lg = "lg_ratio" in s
        pre = "lg_" if lg else ""
        how = ("median of %d rounds of %s cycles, the kinds in turn in %d ms phases" % (
            len(rr), cycles_per_round(rr), s["phase_ms"]) if "cycles" in s else "median of %d alternating rounds" % len(rr))
        out.append(("Responses stream CPU per request ≤ %.2f × Chat Completions' (%s c=64, %s, wall CPU)" % (
                        TARGET_RESPONSES_RATIO, "bench_loadgen" if lg else "wrk", how),
                    "%s vs %s = **%.2f ×** (rounds: %s)%s" % (
                        us(s[pre + "responses_cpu_us"]), us(s[pre + "openai_cpu_us"]), s[pre + "ratio"],
                        ", ".join("%.2f" % r[pre + "ratio"] for r in rr),
                        ("; with wrk as the client in the same rounds %.2f × (rounds: %s)" % (
                            s["ratio"], ", ".join("%.2f" % r["ratio"] for r in rr)) if lg and "ratio" in s else "") +
                        ("; over all %d cycles %.3f ×" % (s["cycles"], s["lg_ratio_all"]) if "lg_ratio_all" in s else "")),
                    _ok(s[pre + "ratio"] <= TARGET_RESPONSES_RATIO and s.get(pre + "errors", 0) == 0)))
    if "responses" in cg and "openai" in cg:
        ratio = cg["responses"] / cg["openai"]
        out.append(("Responses stream instructions per request ≤ %.2f × Chat Completions' (callgrind, %d requests each)"
                    % (TARGET_RESPONSES_RATIO, res["callgrind"]["requests"]),
                    "%.1f k vs %.1f k = **%.3f ×**" % (cg["responses"] / 1000, cg["openai"] / 1000, ratio),
                    _ok(ratio <= TARGET_RESPONSES_RATIO)))
    if s or ("small" in cg and "openai" in cg):
        parts, ok = [], None
        if s:
            pre = "lg_" if "lg_ratio" in s else ""
            parts.append("wall CPU, same rounds (%s): Anthropic %s, Chat Completions %s (Anthropic / Chat **%.2f ×**)" % (
                "bench_loadgen" if pre else "wrk", us(s[pre + "anthropic_cpu_us"]), us(s[pre + "openai_cpu_us"]),
                s[pre + "ratio_anthropic"]))
        if "small" in cg and "openai" in cg:
            ok = all(cg[k] <= REF_IR[k] * TARGET_IR_REGRESSION for k in REF_IR)
            parts.append("instructions: Anthropic %.1f k (recorded %.1f k), Chat Completions %.1f k (recorded %.1f k)" % (
                cg["small"] / 1000, REF_IR["small"] / 1000, cg["openai"] / 1000, REF_IR["openai"] / 1000))
        out.append(("no regression of the other dialects: Anthropic and Chat Completions instructions per request ≤ "
                    "%.2f × those recorded at %s; wall CPU of both in the Responses rounds" % (
                        TARGET_IR_REGRESSION, REF_IR_COMMIT), "; ".join(parts),
                    "n/a" if ok is None else _ok(ok)))
    r = res.get("reuse_summary")
    if r:
        a, n = r["account"], r["never"]
        out.append(("per-account upstream connections over TLS: KIRO_UPSTREAM_REUSE=account ≤ %.2f TLS handshakes per "
                    "request and less CPU per request than never (median of %d alternating rounds)" % (
                        TARGET_REUSE_HANDSHAKES, r["rounds"]),
                    "account %.3f handshakes/req, %s/req; never %.3f handshakes/req, %s/req (never / account **%.2f ×**)" % (
                        a["handshakes_per_req"], us(a["cpu_us"]), n["handshakes_per_req"], us(n["cpu_us"]), r["ratio"]),
                    _ok(a["handshakes_per_req"] <= TARGET_REUSE_HANDSHAKES and r["ratio"] > 1)))
    k = res.get("keys_summary")
    if k:
        out.append(("client keys: CPU per request with a managed key (every limit set) ≤ %.2f × the built-in key's "
                    "(median of %d alternating rounds)" % (TARGET_KEYS_RATIO, k["rounds"]),
                    "%s vs %s = **%.2f ×** (rounds: %s), %d errors" % (
                        us(k["managed"]["sut_cpu_us"]), us(k["builtin"]["sut_cpu_us"]), k["ratio"],
                        ", ".join("%.2f" % x for x in k["ratios"]), k["errors"]),
                    _ok(k["ratio"] <= TARGET_KEYS_RATIO and k["errors"] == 0)))
        ip = (k.get("in_process") or {}).get("full path, 10000 keys (random key each)")
        if ip:
            out.append(("client keys in process: the key path ≤ %d ns per request (bench_keys, 10 000 keys, a different "
                        "key each request)" % TARGET_KEYS_NS, "%d ns" % ip["ns"], _ok(ip["ns"] <= TARGET_KEYS_NS)))
    d = res.get("redis_summary")
    if d:
        out.append(("shared store: CPU per request with KIRO_REDIS_URL ≤ %.2f × without (managed keys in both, median of %d "
                    "alternating rounds)" % (TARGET_REDIS_RATIO, d["rounds"]),
                    "%s vs %s = **%.2f ×** (rounds: %s); %.2f Redis commands per request; %d errors" % (
                        us(d["redis"]["sut_cpu_us"]), us(d["file"]["sut_cpu_us"]), d["ratio"],
                        ", ".join("%.2f" % x for x in d["ratios"]), d["redis"]["commands"], d["errors"]),
                    _ok(d["ratio"] <= TARGET_REDIS_RATIO and d["errors"] == 0)))
    return out


def cycles_per_round(rounds):
    """"12", or "11 to 12": the cycles a round of the phased dialect scenario sums"""
    lo, hi = min(r.get("cycles", 0) for r in rounds), max(r.get("cycles", 0) for r in rounds)
    return "%d" % lo if lo == hi else "%d to %d" % (lo, hi)


def extra_sections(res):
    """Markdown lines of the added scenarios' tables."""
    L = []
    s, cg = res.get("responses_summary"), res.get("callgrind")
    if s:
        phased = "cycles" in s
        L += ["### Dialects: Responses against Chat Completions and Anthropic, the same alternating rounds", "",
              "The same conversation (2 KB of system text, 20 text frames of 16 B) through each dialect's stream, gateway "
              "CPU per request (user + system), 64 connections, %s. \"Responses\" carries " % (
                  "one bench_loadgen run sending the kinds in turn, %d ms each on every connection, the gateway's CPU time "
                  "read between phases once the requests in flight finished; a round is %s cycles (one phase of each "
                  "kind) summed, %d cycles in all" % (s["phase_ms"], cycles_per_round(res["responses_rounds"]),
                                                     s["cycles"]) if phased else "one round after the other in turn") +
              "the system text as a developer message (the Codex CLI's shape), \"with instructions\" as `instructions`, "
              "which every response object echoes; `store` at its default (true) but in \"store: false\" (the developer-message "
              "form, nothing kept). %s. The client shares the machine's two cores with the gateway, and its cost per byte "
              "shows up in the gateway's CPU per request; the Responses stream has twice the Chat stream's bytes. The "
              "target is read on bench_loadgen's rounds when there are any." % " and, right after it, ".join(
                  ("The client is " if i == 0 else "") + d for i, d in enumerate(
                      d for pre, d in (("lg_", "bench_loadgen (C, the body copied once and searched with memmem)"),
                                       ("", "wrk (its Lua `response()` check gets every body as a Lua string)"))
                      if pre + "ratio" in s)), ""]
        for pre, name in (("lg_", "bench_loadgen"), ("", "wrk")):
            if pre + "ratio" not in s:
                continue
            L += ["Client: %s." % name, "",
                  "| round | Chat Completions | Responses | ratio | with instructions | ratio | store: false | ratio | Anthropic "
                  "| ratio | errors |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
            for i, r in enumerate(res["responses_rounds"]):
                L.append("| %d | %s (%.0f req/s) | %s (%.0f req/s) | %.3f | %s (%.0f req/s) | %.3f | %s (%.0f req/s) | %.3f | "
                         "%s (%.0f req/s) | %.3f | %d |" % (
                             i + 1, us(r[pre + "openai_cpu_us"]), r[pre + "openai_rps"], us(r[pre + "responses_cpu_us"]),
                             r[pre + "responses_rps"], r[pre + "ratio"], us(r[pre + "instructions_cpu_us"]),
                             r[pre + "instructions_rps"], r[pre + "ratio_instructions"], us(r[pre + "nostore_cpu_us"]),
                             r[pre + "nostore_rps"], r[pre + "ratio_nostore"], us(r[pre + "anthropic_cpu_us"]),
                             r[pre + "anthropic_rps"], r[pre + "ratio_anthropic"], r[pre + "errors"]))
            L.append("| median | %s | %s | **%.3f** | %s | %.3f | %s | %.3f | %s | %.3f | %d |" % (
                us(s[pre + "openai_cpu_us"]), us(s[pre + "responses_cpu_us"]), s[pre + "ratio"],
                us(s[pre + "instructions_cpu_us"]), s[pre + "ratio_instructions"], us(s[pre + "nostore_cpu_us"]),
                s[pre + "ratio_nostore"], us(s[pre + "anthropic_cpu_us"]), s[pre + "ratio_anthropic"], s[pre + "errors"]))
            L.append("")
    if cg:
        L += ["### Instructions per request (callgrind)", "",
              "The gateway under `valgrind --tool=callgrind` against the same simulator, one dialect after the other: 50 "
              "warm-up requests, the counters zeroed, then %d requests over 4 connections (bench_loadgen). Unlike wall "
              "CPU, this repeats to a few per cent on a shared machine." % cg["requests"], "",
              "| request | instructions per request | vs Chat Completions | recorded at %s |" % REF_IR_COMMIT,
              "|---|---|---|---|"]
        for kind, ir in cg["ir"].items():
            L.append("| %s | %.0f | %s | %s |" % (KIND_NAMES.get(kind, kind), ir, "%.3f" % (ir / cg["ir"]["openai"])
                                                  if cg["ir"].get("openai") else "-",
                                                  "%d" % REF_IR[kind] if kind in REF_IR else "-"))
        L.append("")
    r = res.get("reuse_summary")
    if r:
        L += ["### Per-account upstream connections over TLS (KIRO_UPSTREAM_REUSE)", "",
              "A second kiro-sim serving HTTPS with a throw-away EC P-256 CA; two gateways trusting it (`KIRO_CA_FILE`), "
              "one with `KIRO_UPSTREAM_REUSE=account`, one with `never` (a new TCP + TLS connection per request), one "
              "account, stream-small, wrk 64 connections, %d alternating rounds; handshakes and connections from each "
              "gateway's `/metrics`. Medians of the rounds; sim CPU/req is the TLS simulator's." % r["rounds"], "",
              "| mode | gateway CPU/req | sim CPU/req | req/s | upstream TLS handshakes/req | of which resumed | "
              "connections opened/req |", "|---|---|---|---|---|---|---|"]
        for m in ("account", "never"):
            x = r[m]
            L.append("| %s | %s | %s | %.0f | %.3f | %.3f | %.3f |" % (
                m, us(x["cpu_us"]), us(x["sim_cpu_us"]), x["rps"], x["handshakes_per_req"], x["resumed_per_req"],
                x["conns_per_req"]))
        L.append("")
        L.append("never / account, median of the per-round ratios: gateway **%.2f ×**, simulator %.2f ×." % (
            r["ratio"], r["sim_ratio"]))
        L.append("")
    k = res.get("keys_summary")
    if k:
        L += ["### Client keys: a managed key against the built-in KIRO_CLIENT_TOKEN", "",
              "One gateway with `KIRO_ADMIN_TOKEN` and %d managed keys made through the admin API, each with every limit "
              "set high enough never to refuse (rpm 10 000, the most a key may have, concurrency, credits per day and "
              "month, tokens per day) and a model list; wrk sends them in turn (`WRK_KEYS_FILE`: a key allows 10 000 "
              "requests a minute, the load is more), or the built-in key through the same script, stream-small, 64 "
              "connections, %d alternating rounds. Medians of the rounds." % (k["keys"], k["rounds"]), "",
              "| key | gateway CPU/req | user | sim CPU/req | req/s |", "|---|---|---|---|---|"]
        for a, name in (("builtin", "built-in `KIRO_CLIENT_TOKEN`"), ("managed", "managed (every limit)")):
            x = k[a]
            L.append("| %s | %s | %s | %s | %.0f |" % (name, us(x["sut_cpu_us"]), us(x["sut_user_us"]),
                                                      us(x["sim_cpu_us"]), x["rps"]))
        L.append("")
        ip = k.get("in_process")
        if ip:
            L += ["In process (bench_keys: SHA-256 of the key, lookup, state check, admission against every limit, "
                  "charge, release; best of 5 runs):", "", "| case | ns/request | refused |", "|---|---|---|"]
            for case, v in ip.items():
                L.append("| %s | %d | %d |" % (case, v["ns"], v["refused"]))
            L.append("")
    d = res.get("redis_summary")
    if d:
        L += ["### Shared store: KIRO_REDIS_URL against none, managed keys in both", "",
              "Two gateways on the same simulator and account, one with `KIRO_REDIS_URL` (redis-server %s started by the "
              "harness on a free loopback port, `--save '' --appendonly no`), each with %d managed keys as above (with "
              "Redis, the keys' admission and usage go through it: Redis is on the request path), stream-small, wrk 64 "
              "connections, %d alternating rounds. Redis commands per request: the INFO commandstats delta over the run "
              "divided by the requests (commands that scripts run are counted too; the harness's own INFO is not). "
              "Medians of the rounds." % (d["version"], d["keys"], d["rounds"]), "",
              "| store | gateway CPU/req | user | redis-server CPU/req | sim CPU/req | req/s | Redis commands/req |",
              "|---|---|---|---|---|---|---|"]
        for a in ("file", "redis"):
            x = d[a]
            L.append("| %s | %s | %s | %s | %s | %.0f | %.3f |" % (
                "none (file)" if a == "file" else "Redis", us(x["sut_cpu_us"]), us(x["sut_user_us"]),
                us(x["redis_cpu_us"]) if a == "redis" else "-", us(x["sim_cpu_us"]), x["rps"], x["commands"]))
        L.append("")
        by = d["redis"].get("by_command") or {}
        if by:
            L.append("Redis commands per request with the Redis store, by command: %s." % ", ".join(
                "`%s` %.3f" % kv for kv in sorted(by.items(), key=lambda kv: -kv[1])))
            L.append("")
    dur = res.get("durations")
    if dur:
        L += ["### Duration of each scenario", "", "| scenario | seconds |", "|---|---|"]
        for name, secs in dur:
            L.append("| %s | %.0f |" % (name, secs))
        L.append("| total (with start-up) | %.0f |" % res.get("elapsed_s", 0))
        L.append("")
    return L
