"""kiro-sim's endpoints and account kinds in its 2025 mode (--legacy-2025, which the gateway's tests use until the
gateway speaks 2026 Kiro): startup line, --help, Social and IdC refresh (rotation, rejection, client check),
getUsageLimits, ListAvailableModels, generate per account kind, /sim/stats and /sim/reset, token expiry. The 2026 mode
is tested in test_sim_2026.py."""
import json
import re
import subprocess
import threading
import time

from sim_util import Sim, parse_frames, request_body, run_checked, run_tests, sim_binary

SIM = None
BEARER = {"message": "The bearer token included in the request is invalid.", "reason": None}
BAD_REFRESH = {"message": "Invalid refresh token provided"}
ARN = re.compile(r"^arn:aws:codewhisperer:us-east-1:699475941385:profile/[A-Z0-9]{12}$")


def idc(sim, rt, cid="client-1", secret="secret-1", grant="refresh_token"):
    return sim.json("POST", "/token", {"clientId": cid, "clientSecret": secret, "grantType": grant, "refreshToken": rt})


def remaining(usage):
    """kiro2api's remaining-credit algorithm (docs/kiro-protocol.md §1.5)."""
    e = next(x for x in usage["usageBreakdownList"] if x["resourceType"] == "CREDIT")
    total = 0.0
    ft = e.get("freeTrialInfo")
    if ft and ft["freeTrialStatus"] == "ACTIVE":
        total += ft["usageLimitWithPrecision"] - ft["currentUsageWithPrecision"]
    total += e["usageLimitWithPrecision"] - e["currentUsageWithPrecision"]
    return max(total, 0.0)


def test_startup_line_and_help():
    assert re.match(r"^kiro-sim listening on http://127\.0\.0\.1:\d+\n$", SIM.first_line), SIM.first_line
    p = run_checked([sim_binary(), "--help"], timeout=10)
    assert p.returncode == 0 and b"[[sim:tool name=NAME" in p.stdout and b"sim-403once-X" in p.stdout
    p = run_checked([sim_binary(), "--bogus"], timeout=10)
    assert p.returncode == 2
    p = run_checked([sim_binary(), "--port", "70000"], timeout=10)
    assert p.returncode == 2
    st, headers, data = SIM.request("GET", "/")
    assert st == 200 and b"generateAssistantResponse" in data
    assert SIM.request("GET", "/nope")[0] == 404
    assert SIM.request("GET", "/refreshToken")[0] == 405


def test_social_refresh():
    st, doc = SIM.json("POST", "/refreshToken", {"refreshToken": "sim-ok-social"})
    assert st == 200 and set(doc) == {"accessToken", "expiresIn", "profileArn", "refreshToken"}, doc
    assert doc["expiresIn"] == 3600 and doc["refreshToken"] == "sim-ok-social" and ARN.match(doc["profileArn"])
    assert doc["accessToken"].startswith("aoa") and len(doc["accessToken"]) == 43
    st, doc2 = SIM.json("POST", "/refreshToken", {"refreshToken": "sim-ok-social"})
    assert doc2["accessToken"] != doc["accessToken"] and doc2["profileArn"] == doc["profileArn"]
    for bad in ("sim-badrefresh-a", "unknown", "sim-ok-", "sim-nokind-a"):
        assert SIM.json("POST", "/refreshToken", {"refreshToken": bad}) == (401, BAD_REFRESH), bad
    st, doc = SIM.json("POST", "/refreshToken", {"nope": 1})
    assert st == 400
    assert SIM.request("POST", "/refreshToken", b"not json")[0] == 400


def test_idc_refresh():
    st, doc = idc(SIM, "sim-ok-idc")
    assert st == 200 and set(doc) == {"accessToken", "expiresIn", "refreshToken", "tokenType"}, doc
    assert doc["tokenType"] == "Bearer" and doc["refreshToken"] == "sim-ok-idc" and doc["expiresIn"] == 3600
    st, doc = idc(SIM, "sim-ok-idc", cid="")
    assert st == 400 and doc["error"] == "invalid_client"
    st, doc = idc(SIM, "sim-ok-idc", grant="authorization_code")
    assert st == 400 and doc["error"] == "unsupported_grant_type"
    st, doc = idc(SIM, "sim-badrefresh-idc")
    assert st == 401 and doc["error"] == "invalid_grant"
    with Sim("--legacy-2025", "--idc-client-id", "cid-good", "--idc-client-secret", "sec-good", "--bad-refresh-status", "400") as sim:
        st, doc = idc(sim, "sim-ok-a", cid="cid-good", secret="wrong")
        assert st == 400 and doc["error"] == "invalid_client", doc
        st, doc = idc(sim, "sim-ok-a", cid="other", secret="sec-good")
        assert st == 400 and doc["error"] == "invalid_client"
        st, doc = idc(sim, "sim-ok-a", cid="cid-good", secret="sec-good")
        assert st == 200
        assert sim.json("POST", "/refreshToken", {"refreshToken": "sim-badrefresh-b"}) == (400, BAD_REFRESH)
        assert idc(sim, "nope", cid="cid-good", secret="sec-good")[0] == 400


def test_rotating_refresh_tokens():
    st, doc = SIM.json("POST", "/refreshToken", {"refreshToken": "sim-rotate-a"})
    assert st == 200 and doc["refreshToken"] == "sim-rotate-a-r1"
    assert SIM.json("POST", "/refreshToken", {"refreshToken": "sim-rotate-a"}) == (401, BAD_REFRESH)
    st, doc = SIM.json("POST", "/refreshToken", {"refreshToken": "sim-rotate-a-r1"})
    assert st == 200 and doc["refreshToken"] == "sim-rotate-a-r2"
    assert SIM.json("POST", "/refreshToken", {"refreshToken": "sim-rotate-a-r1"})[0] == 401
    assert SIM.json("POST", "/refreshToken", {"refreshToken": "sim-rotate-a-r9"})[0] == 401
    st, doc = idc(SIM, "sim-rotate-a-r2")  # the same account through IdC
    assert st == 200 and doc["refreshToken"] == "sim-rotate-a-r3"
    token = doc["accessToken"]
    assert SIM.generate(token, request_body("hi"))[0] == 200
    acct = SIM.stats()["accounts"]["sim-rotate-a"]
    assert acct["refreshes"] == 3 and acct["refresh_failures"] == 3 and acct["rotation"] == 3, acct


def test_usage_limits():
    token = SIM.refresh("sim-ok-usage")
    st, doc = SIM.json("GET", "/getUsageLimits?isEmailRequired=true&origin=AI_EDITOR&resourceType=AGENTIC_REQUEST",
                       token=token)
    assert st == 200, doc
    entry = doc["usageBreakdownList"][0]
    for key in ("usageLimitWithPrecision", "currentUsageWithPrecision", "nextDateReset", "freeTrialInfo", "displayName"):
        assert key in entry, key
    assert entry["resourceType"] == "CREDIT" and entry["freeTrialInfo"]["freeTrialStatus"] == "ACTIVE"
    assert remaining(doc) == 550.0
    assert SIM.generate(token, request_body("[[sim:usage credits=2.5]] hi"))[0] == 200
    assert remaining(SIM.json("GET", "/getUsageLimits", token=token)[1]) == 547.5
    ex = SIM.refresh("sim-exhausted-usage")
    st, doc = SIM.json("GET", "/getUsageLimits", token=ex)
    assert st == 200 and remaining(doc) == 0.0
    assert doc["usageBreakdownList"][0]["freeTrialInfo"]["freeTrialStatus"] == "EXPIRED"
    assert SIM.json("GET", "/getUsageLimits", token="bogus") == (403, BEARER)
    assert SIM.json("GET", "/getUsageLimits") == (403, BEARER)


def test_models():
    token = SIM.refresh("sim-ok-models")
    for method in ("POST", "GET"):
        st, doc = SIM.json(method, "/ListAvailableModels?origin=AI_EDITOR", token=token)
        assert st == 200
        ids = [m["modelId"] for m in doc["models"]]
        for mid in ("CLAUDE_SONNET_4_5_20250929_V1_0", "CLAUDE_SONNET_4_20250514_V1_0", "CLAUDE_3_7_SONNET_20250219_V1_0",
                    "auto", "claude-sonnet-4.5", "claude-opus-4.6", "claude-haiku-4.5"):
            assert mid in ids, mid
    assert SIM.json("POST", "/ListAvailableModels") == (403, BEARER)


def test_generate_per_account_kind():
    expect = {
        "sim-exhausted-g": (402, {"message": "You have reached the limit of requests for this month.",
                                  "reason": "MONTHLY_REQUEST_COUNT"}),
        "sim-429-g": (429, {"message": "Too many requests, please wait before trying again.", "reason": None}),
        "sim-403-g": (403, BEARER),
        "sim-500-g": (500, {"message": "Encountered an unexpected error when processing the request, please try again.",
                            "reason": None}),
    }
    for name, (status, body) in expect.items():
        token = SIM.refresh(name)
        st, _, data = SIM.generate(token, request_body("hi"))
        assert (st, json.loads(data)) == (status, body), name
    token = SIM.refresh("sim-ok-g")
    st, headers, data = SIM.generate(token, request_body("hi"))
    assert st == 200 and parse_frames(data)[-1].event_type == "meteringEvent"
    assert re.match(r"^[0-9a-f]{8}-", headers["x-amzn-requestid"])


def test_403_once():
    t1 = SIM.refresh("sim-403once-a")
    assert SIM.generate(t1, request_body("hi"))[0] == 403
    assert SIM.generate(t1, request_body("hi"))[0] == 403, "the tripped token stays invalid"
    t2 = SIM.refresh("sim-403once-a")
    assert SIM.generate(t2, request_body("hi"))[0] == 200
    assert SIM.generate(t2, request_body("hi"))[0] == 200
    assert SIM.generate(t1, request_body("hi"))[0] == 403
    acct = SIM.stats()["accounts"]["sim-403once-a"]
    assert acct["generates"] == 5 and acct["generate_ok"] == 2 and acct["refreshes"] == 2


def test_stats_and_reset():
    SIM.reset(all_=True)
    t = SIM.refresh("sim-ok-s1")
    SIM.refresh("sim-ok-s1")
    SIM.refresh("sim-ok-s2")
    SIM.generate(t, request_body("hi"))
    SIM.generate(t, request_body("hi"))
    SIM.json("GET", "/getUsageLimits", token=t)
    s = SIM.stats()
    assert s["requests"]["refreshToken"] == 3 and s["requests"]["generateAssistantResponse"] == 2
    assert s["requests"]["getUsageLimits"] == 1
    a = s["accounts"]["sim-ok-s1"]
    assert (a["refreshes"], a["generates"], a["generate_ok"], a["usage_calls"], a["requests"]) == (2, 2, 2, 1, 5), a
    assert s["accounts"]["sim-ok-s2"]["refreshes"] == 1
    assert s["refreshes_total"] == 3 and s["generates_total"] == 2 and s["open_streams"] == 0
    assert s["streams_total"] == 2 and s["live_tokens"] == 3
    # open_streams counts a stream in progress
    done = []
    th = threading.Thread(target=lambda: done.append(SIM.generate(t, request_body("[[sim:stall ms=1500]] x"))))
    th.start()
    deadline = time.time() + 10
    while SIM.stats()["open_streams"] != 1 and time.time() < deadline:
        time.sleep(0.05)
    assert SIM.stats()["open_streams"] == 1 and not done
    th.join()
    assert done[0][0] == 200 and SIM.stats()["open_streams"] == 0
    SIM.reset()
    s = SIM.stats()
    assert s["requests"]["refreshToken"] == 0 and s["accounts"]["sim-ok-s1"]["refreshes"] == 0
    assert SIM.generate(t, request_body("hi"))[0] == 200, "a plain reset keeps tokens"
    SIM.reset(all_=True)
    assert SIM.stats()["accounts"] == {}
    assert SIM.generate(t, request_body("hi"))[0] == 403, "reset?all=1 forgets tokens"


def test_slow_refresh_does_not_block():
    result = []
    th = threading.Thread(target=lambda: result.append(SIM.json("POST", "/refreshToken", {"refreshToken": "sim-slowrefresh-a"})))
    t0 = time.monotonic()
    th.start()
    deadline = time.time() + 10
    while SIM.stats()["requests"]["refreshToken"] == 0 and time.time() < deadline:
        time.sleep(0.01)
    assert SIM.stats()["requests"]["refreshToken"] >= 1 and th.is_alive(), "the loop must serve others meanwhile"
    th.join()
    assert result[0][0] == 200 and time.monotonic() - t0 >= 1.5


def test_token_expiry():
    with Sim("--legacy-2025", "--token-ttl", "2") as sim:
        st, doc = sim.json("POST", "/refreshToken", {"refreshToken": "sim-ok-ttl"})
        assert doc["expiresIn"] == 2
        token = doc["accessToken"]
        assert sim.generate(token, request_body("hi"))[0] == 200
        time.sleep(2.3)
        assert sim.generate(token, request_body("hi"))[:1] == (403,)
        assert sim.json("GET", "/getUsageLimits", token=token) == (403, BEARER)
        assert sim.generate(sim.refresh("sim-ok-ttl"), request_body("hi"))[0] == 200


def main():
    global SIM
    with Sim("--legacy-2025", "--slow-refresh-ms", "1500") as sim:
        SIM = sim
        run_tests([test_startup_line_and_help, test_social_refresh, test_idc_refresh, test_rotating_refresh_tokens,
                   test_usage_limits, test_models, test_generate_per_account_kind, test_403_once, test_stats_and_reset,
                   test_slow_refresh_does_not_block, test_token_expiry])


if __name__ == "__main__":
    main()
