"""Acceptance of the gateway against kiro-sim as Kiro is now (its default 2026 mode, --strict-headers: every header rule
is a 400), configured as a user with real accounts would be, only the bases pointing at kiro-sim through `{region}`:
KIRO_API_BASE=http://127.0.0.1:PORT/{region}, KIRO_SOCIAL_REFRESH_URL=.../{region}/refreshToken,
KIRO_IDC_REFRESH_URL=.../{region}/token, the external IdP's tokenEndpoint at kiro-sim's /entra/token.
- Kinds: every account kind (Social, Social eu-central-1, IdC us/eu, Builder ID, free tier, ksk_ API key, external
  IdP), one gateway each, serves the real Claude Code requests of tests/fixtures/clients for every model name a
  current Claude Code sends (stream and not); the free tier answers the 400 naming the model and the available ones
  for opus. kiro-sim's /sim/stats last_request shows the dotted modelId, the profileArn per kind, the region path,
  the tokentype and no header warning.
- Pool: all kinds in one round_robin pool under 50 concurrent requests: all 200, and no upstream connection carried
  two accounts' tokens.
- Catalogs: [free, Social] asked for opus goes to Social without cooling the free account; the free account alone
  answers the 400 listing what it has; /v1/models is the union of the catalogs.
- AccountStates: the scripted account states (kiro-protocol-2026 section 9) in a pool with a healthy account, both
  dialects: the request succeeds by failover; the documented states are asserted."""
import copy
import json
import os
import threading
import time
import unittest

from k2a import CLIENT_KEY, FIXTURES, SLOW, Gateway, Sim, main, parse_sse, request

SOCIAL_ARN = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
SOCIAL_EU_ARN = "arn:aws:codewhisperer:eu-central-1:699475941385:profile/EUSIMSOCIAL1"
BUILDER_ID_ARN = "arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX"
IDC_ARN_PREFIX = "arn:aws:codewhisperer:%s:610548660232:profile/"
US, EU = "us-east-1", "eu-central-1"

# Every model name a current Claude Code sends, and the dotted Kiro modelId it must arrive as.
MODELS = {
    "claude-opus-4-5": ("claude-opus-4.5",),
    "claude-opus-4-5-20251101": ("claude-opus-4.5",),
    "claude-opus-4-6": ("claude-opus-4.6",),
    "claude-opus-4-7": ("claude-opus-4.7",),
    "claude-opus-4-8": ("claude-opus-4.8",),
    "claude-opus-5": ("claude-opus-5",),
    "claude-sonnet-4-20250514": ("claude-sonnet-4.0", "claude-sonnet-4"),  # Kiro accepts both spellings
    "claude-sonnet-4-5": ("claude-sonnet-4.5",),
    "claude-sonnet-4-5-20250929": ("claude-sonnet-4.5",),
    "claude-sonnet-4-6": ("claude-sonnet-4.6",),
    "claude-sonnet-5": ("claude-sonnet-5",),
    "claude-haiku-4-5": ("claude-haiku-4.5",),
    "claude-haiku-4-5-20251001": ("claude-haiku-4.5",),
    "claude-sonnet-4-6[1m]": ("claude-sonnet-4.6",),
    "claude-sonnet-4-6-thinking": ("claude-sonnet-4.6",),
}
SMALL_FIXTURE = "cc-print-json-2.json"
ONE_MODEL = "claude-sonnet-4-5"


def load_fixture(name):
    with open(os.path.join(FIXTURES, "clients", name)) as f:
        return json.load(f)


def message_fixtures():
    """The captured Anthropic /v1/messages requests (Claude Code and the SDK), by file name."""
    out = {}
    for name in sorted(os.listdir(os.path.join(FIXTURES, "clients"))):
        if name.endswith(".json"):
            fx = load_fixture(name)
            if fx["url"].split("?")[0] == "/v1/messages":
                out[name] = fx
    return out


def fixture_request(fx, model, stream):
    body = copy.deepcopy(fx["body"])
    body["model"] = model
    body["stream"] = stream
    headers = {k: v for k, v in fx["headers"].items() if k.startswith("anthropic-")}
    headers["content-type"] = "application/json"
    return body, headers


def accounts(sim, kind, x):
    """The KIRO_AUTH_TOKEN entry a user of that kind writes (kiro-sim's naming scheme picks who the account is)."""
    if kind == "social":
        return {"auth": "Social", "refreshToken": "sim-social-" + x}
    if kind == "socialeu":
        return {"auth": "Social", "refreshToken": "sim-socialeu-" + x}
    if kind == "free":
        return {"auth": "Social", "refreshToken": "sim-free-" + x}
    if kind == "idc":
        return {"auth": "IdC", "refreshToken": "sim-idc-" + x, "clientId": "cid-" + x, "clientSecret": "sec-" + x}
    if kind == "idceu":
        return {"auth": "IdC", "refreshToken": "sim-idceu-" + x, "clientId": "cid-" + x, "clientSecret": "sec-" + x,
                "region": EU}
    if kind == "builderid":
        return {"auth": "IdC", "provider": "BuilderId", "refreshToken": "sim-builderid-" + x, "clientId": "cid-" + x,
                "clientSecret": "sec-" + x}
    if kind == "apikey":
        return {"auth": "ApiKey", "apiKey": "ksk_sim-" + x, "apiRegion": US}
    if kind == "extidp":
        return {"auth": "ExternalIdp", "refreshToken": "sim-extidp-" + x, "clientId": "entra-" + x,
                "tokenEndpoint": sim.base + "/entra/token", "scope": "api://kiro/.default offline_access"}
    if kind.startswith("sim-"):
        return {"auth": "Social", "refreshToken": kind + x}
    raise ValueError(kind)


def sim_name(kind, x):
    """The name kiro-sim's /sim/stats files the account under."""
    return "ksk_sim-" + x if kind == "apikey" else ("sim-%s-%s" % (kind, x) if not kind.startswith("sim-") else kind + x)


def env_for(sim, entries, extra=None):
    base = "http://127.0.0.1:%d" % sim.port
    env = {
        "KIRO_AUTH_TOKEN": json.dumps(entries),
        "KIRO_API_BASE": base + "/{region}",
        "KIRO_SOCIAL_REFRESH_URL": base + "/{region}/refreshToken",
        "KIRO_IDC_REFRESH_URL": base + "/{region}/token",
    }
    env.update(extra or {})
    return env


def tokens(gw):
    st, _, data = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
    assert st == 200, data
    return json.loads(data)["tokens"]


def wait_for(tc, what, fn, timeout=10):
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    tc.fail("timed out waiting for %s (last: %r)" % (what, last))


def wait_catalogs(tc, gw, n):
    return wait_for(tc, "%d catalogs" % n,
                    lambda: (lambda t: t if sum(1 for a in t if a.get("models_fetched_at")) == n else None)(tokens(gw)))


def answer_text(tc, status, data, stream):
    """The text of a 200 Anthropic answer (stream or not), checking it is a normal, finished answer."""
    tc.assertEqual(status, 200, data[:600])
    if not stream:
        msg = json.loads(data)
        tc.assertEqual(msg["type"], "message")
        tc.assertIn(msg["stop_reason"], ("end_turn", "tool_use"))
        return "".join(b.get("text", "") for b in msg["content"] if b["type"] == "text")
    events = parse_sse(data)
    names = [e for e, _ in events]
    tc.assertEqual(names[0], "message_start", names)
    tc.assertEqual(names[-1], "message_stop", names)
    tc.assertNotIn("error", names, data[-600:])
    text = ""
    for ev, d in events:
        if ev == "content_block_delta":
            delta = json.loads(d)["delta"]
            text += delta.get("text", "")
        if ev == "message_delta":
            tc.assertIn(json.loads(d)["delta"]["stop_reason"], ("end_turn", "tool_use"))
    return text


class SimCase(unittest.TestCase):
    """One kiro-sim (2026 mode, strict headers) for the class; gateways started by the tests stop cleanly."""

    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(args=["--strict-headers"])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sim.assert_clean_exit(cls.checker)
        finally:
            cls.sim.cleanup()

    checker = unittest.TestCase()

    def setUp(self):
        self.gws = []

    def tearDown(self):
        try:
            for gw in self.gws:
                gw.assert_clean_exit(self)
        finally:
            for gw in self.gws:
                gw.cleanup()

    def gateway(self, entries, extra=None):
        gw = Gateway(env=env_for(self.sim, entries, extra))
        self.gws.append(gw)
        return gw

    def sim_account(self, name):
        return self.sim.stats()["accounts"].get(name)

    def post(self, gw, body, headers, path="/v1/messages"):
        return request(gw.port, "POST", path, body, headers=headers, key=CLIENT_KEY)


# kind -> (expected profileArn: a string, a prefix ending in "/", or "" for none; region; tokentype)
KINDS = {
    "social": (SOCIAL_ARN, US, ""),
    "socialeu": (SOCIAL_EU_ARN, EU, ""),
    "idc": (IDC_ARN_PREFIX % US, US, ""),
    "idceu": (IDC_ARN_PREFIX % EU, EU, ""),
    "builderid": (BUILDER_ID_ARN, US, ""),
    "free": (SOCIAL_ARN, US, ""),
    "apikey": ("", US, "API_KEY"),
    "extidp": (IDC_ARN_PREFIX % US, US, "EXTERNAL_IDP"),
}


# where /api/tokens says each kind's profileArn came from (README "profileArn")
ARN_SOURCES = {"social": "refresh", "socialeu": "refresh", "free": "refresh", "idc": "ListAvailableProfiles",
               "idceu": "ListAvailableProfiles", "extidp": "ListAvailableProfiles", "builderid": "placeholder",
               "apikey": None}


class Kinds(SimCase):
    def check_last(self, name, kind, want_models):
        arn, region, tokentype = KINDS[kind]
        acct = self.sim_account(name)
        self.assertIsNotNone(acct, name)
        last = acct["last_request"]
        self.assertIsNotNone(last, name)
        self.assertEqual(last["status"], 200, (name, last))
        self.assertIn(last["model"], want_models, (name, last))
        if arn.endswith("/"):
            self.assertTrue(last["profile_arn"].startswith(arn), (name, last))
            self.assertEqual(last["profile_arn"], acct["profile_arn"], (name, last))  # the account's own ARN
        else:
            self.assertEqual(last["profile_arn"], arn, (name, last))
        self.assertEqual(last["region"], region, (name, last))
        self.assertEqual(last["path"], "/%s/generateAssistantResponse" % region, (name, last))
        self.assertEqual(last["tokentype"], tokentype, (name, last))
        self.assertEqual(last["header_warnings"], 0, (name, last))

    def run_kind(self, kind):
        x = "k-" + kind
        name = sim_name(kind, x)
        gw = self.gateway([accounts(self.sim, kind, x)])
        small = load_fixture(SMALL_FIXTURE)
        free = kind == "free"
        if free:
            wait_catalogs(self, gw, 1)  # which models the tier lacks is known from the catalog
        # every model with one small Claude Code request, stream and non-stream in turn
        for i, (model, dotted) in enumerate(MODELS.items()):
            stream = i % 2 == 0
            with self.subTest(kind=kind, model=model, stream=stream):
                before = (self.sim_account(name) or {}).get("generates", 0)
                body, headers = fixture_request(small, model, stream)
                st, _, data = self.post(gw, body, headers)
                if free and "opus" in model:
                    self.assertEqual(st, 400, data[:600])
                    err = json.loads(data)["error"]
                    self.assertEqual(err["type"], "invalid_request_error")
                    self.assertTrue(any('"%s"' % m in err["message"] for m in (model,) + dotted), err["message"])
                    self.assertIn("claude-sonnet-4.5", err["message"])  # lists what the account has
                    self.assertNotIn("claude-opus", err["message"].split("available models:", 1)[1])
                    self.assertEqual(self.sim_account(name)["generates"], before, "no other model was tried")
                    continue
                text = answer_text(self, st, data, stream)
                self.assertTrue(text.startswith("echo: "), text[:200])
                self.assertEqual(self.sim_account(name)["generates"], before + 1)
                self.check_last(name, kind, dotted)
        # all message fixtures with one model
        for fname, fx in message_fixtures().items():
            for stream in (True, False):
                with self.subTest(kind=kind, fixture=fname, stream=stream):
                    body, headers = fixture_request(fx, ONE_MODEL, stream)
                    st, _, data = self.post(gw, body, headers)
                    answer_text(self, st, data, stream)
                    self.check_last(name, kind, MODELS[ONE_MODEL])
        t = tokens(gw)
        self.assertEqual(t[0]["state"], "ok", t)
        self.assertEqual(t[0].get("profile_arn_source"), ARN_SOURCES[kind], t)
        self.assertEqual(t[0]["region"], KINDS[kind][1], t)

    def test_social(self):
        self.run_kind("social")

    def test_social_eu(self):
        self.run_kind("socialeu")

    def test_idc(self):
        self.run_kind("idc")

    def test_idc_eu(self):
        self.run_kind("idceu")

    def test_builder_id(self):
        self.run_kind("builderid")

    def test_free_tier(self):
        self.run_kind("free")

    def test_api_key(self):
        self.run_kind("apikey")

    def test_external_idp(self):
        self.run_kind("extidp")


class Pool(SimCase):
    def test_all_kinds_round_robin_concurrent(self):
        kinds = list(KINDS)
        entries = [accounts(self.sim, k, "p-" + k) for k in kinds]
        names = [sim_name(k, "p-" + k) for k in kinds]
        gw = self.gateway(entries, {"KIRO_POOL_STRATEGY": "round_robin"})
        wait_catalogs(self, gw, len(kinds))
        before = self.sim.stats()
        small = load_fixture(SMALL_FIXTURE)
        results = []
        lock = threading.Lock()

        def one(i):
            body, headers = fixture_request(small, ONE_MODEL, i % 2 == 0)
            st, _, data = self.post(gw, body, headers)
            with lock:
                results.append((i, st, data))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60 * SLOW)
        self.assertEqual(len(results), 50)
        for i, st, data in results:
            answer_text(self, st, data, i % 2 == 0)
        after = self.sim.stats()
        self.assertEqual(after["connections_multi_account"], 0, after)
        self.assertEqual(after["connections_multi_token"], 0, after)
        self.assertEqual(after["header_warnings"], before["header_warnings"], after)
        served = {n: after["accounts"][n]["generate_ok"] - before["accounts"].get(n, {}).get("generate_ok", 0)
                  for n in names}
        self.assertEqual(sum(served.values()), 50, served)
        self.assertTrue(all(v > 0 for v in served.values()), served)  # round_robin spreads over every kind
        for k, n in zip(kinds, names):
            Kinds.check_last(self, n, k, MODELS[ONE_MODEL])


class Catalogs(SimCase):
    def test_opus_fails_over_from_the_free_tier(self):
        gw = self.gateway([accounts(self.sim, "free", "c1"), accounts(self.sim, "social", "c1")])
        wait_catalogs(self, gw, 2)
        small = load_fixture(SMALL_FIXTURE)
        for stream in (False, True):
            body, headers = fixture_request(small, "claude-opus-4-8", stream)
            st, _, data = self.post(gw, body, headers)
            answer_text(self, st, data, stream)
        social = self.sim_account("sim-social-c1")
        self.assertEqual((social["generate_ok"], social["last_request"]["model"]), (2, "claude-opus-4.8"))
        free = self.sim_account("sim-free-c1")
        self.assertEqual(free["generates"], 0, free)  # routed by catalog: never tried
        t = tokens(gw)
        self.assertEqual([a["state"] for a in t], ["ok", "ok"], t)
        # the union of the catalogs, in both dialects' shapes
        st, _, data = request(gw.port, "GET", "/v1/models", key=CLIENT_KEY)
        self.assertEqual(st, 200, data)
        listing = json.loads(data)
        self.assertEqual(listing["object"], "list")
        ids = {m["id"] for m in listing["data"]}
        for want in ("claude-opus-4.8", "claude-opus-4-8", "claude-opus-5", "claude-sonnet-4.5", "claude-sonnet-4-5",
                     "claude-haiku-4.5", "claude-sonnet-5", "gpt-5.6-sol", "auto"):
            self.assertIn(want, ids)
        for m in listing["data"]:
            self.assertEqual((m["type"], m["object"]), ("model", "model"), m)
            self.assertIn("display_name", m)
            self.assertIn("owned_by", m)
            self.assertIn("created", m)
        self.assertIn("has_more", listing)

    def test_free_tier_alone_lists_what_is_available(self):
        gw = self.gateway([accounts(self.sim, "free", "c2")])
        # at once (the catalog may not have arrived): a 400 naming the model, never another model tried
        body, headers = fixture_request(load_fixture(SMALL_FIXTURE), "claude-opus-4-7", True)
        st, _, data = self.post(gw, body, headers)
        self.assertEqual(st, 400, data)
        self.assertRegex(json.loads(data)["error"]["message"], r'"claude-opus-4[-.]7"')
        acct = self.sim_account("sim-free-c2")
        if acct is not None and acct["last_request"] is not None:
            self.assertEqual(acct["last_request"]["model"], "claude-opus-4.7", acct)
        wait_catalogs(self, gw, 1)
        tried = (self.sim_account("sim-free-c2") or {}).get("generates", 0)
        body, headers = fixture_request(load_fixture(SMALL_FIXTURE), "claude-opus-4-8", False)
        st, _, data = self.post(gw, body, headers)
        self.assertEqual(st, 400, data)
        msg = json.loads(data)["error"]["message"]
        self.assertTrue('"claude-opus-4-8"' in msg or '"claude-opus-4.8"' in msg, msg)  # the client's name or Kiro's
        available = msg.split("available models:", 1)[1]
        for have in ("claude-sonnet-4.5", "claude-haiku-4.5", "claude-sonnet-5"):
            self.assertIn(have, available)
        self.assertNotIn("claude-opus", available)
        st, _, data = request(gw.port, "POST", "/v1/chat/completions", key=CLIENT_KEY,
                              body={"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "hi"}]})
        self.assertEqual(st, 400, data)
        err = json.loads(data)["error"]
        self.assertEqual(err["code"], "model_not_found")
        self.assertIn("claude-sonnet-4.5", err["message"])
        self.assertEqual(self.sim_account("sim-free-c2")["generates"], tried)  # known from the catalog: not sent
        st, _, data = request(gw.port, "GET", "/v1/models", key=CLIENT_KEY)
        ids = {m["id"] for m in json.loads(data)["data"]}
        self.assertNotIn("claude-opus-4.8", ids)
        self.assertIn("claude-sonnet-4.5", ids)
        self.assertEqual(tokens(gw)[0]["state"], "ok")


class SimLastRequest(SimCase):
    """kiro-sim's own record of a generate call that breaks the header rules (what Kinds relies on)."""

    def test_last_request_counts_header_warnings(self):
        st, _, data = request(self.sim.port, "POST", "/eu-central-1/refreshToken", {"refreshToken": "sim-socialeu-raw"})
        self.assertEqual(st, 200, data)
        bearer = json.loads(data)["accessToken"]
        body = {"profileArn": SOCIAL_EU_ARN, "conversationState": {"chatTriggerType": "MANUAL", "conversationId": "c",
                "currentMessage": {"userInputMessage": {"content": "hi", "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}}}}
        st, _, data = request(self.sim.port, "POST", "/eu-central-1/generateAssistantResponse?x=1", body,
                              headers={"authorization": "Bearer " + bearer, "tokentype": "SOMETHING"})
        self.assertEqual(st, 400, data)  # --strict-headers
        last = self.sim_account("sim-socialeu-raw")["last_request"]
        self.assertEqual(last["status"], 400)
        self.assertEqual(last["header_warnings"], 6, last)  # none of the six fingerprint headers
        self.assertEqual((last["path"], last["region"], last["tokentype"]),
                         ("/eu-central-1/generateAssistantResponse", EU, "SOMETHING"))
        self.assertEqual((last["model"], last["profile_arn"]), ("", ""))  # refused before the body was read


# Scripted account states (kiro-protocol-2026 section 9): kiro-sim name prefix -> the state /api/tokens shows after the
# gateway met it, and a word of its reason, as README "Kiro's errors" documents them (the table of src/pool/health.c).
STATES = {
    "sim-exhausted-": ("exhausted", "MONTHLY_REQUEST_COUNT"),  # exhausted until the reset date
    "sim-overage-": ("exhausted", "OVERAGE_REQUEST_LIMIT_EXCEEDED"),
    "sim-429-": ("cooling", "429"),
    "sim-suspicious-": ("cooling", "suspicious"),  # KIRO_FLAGGED_COOLDOWN_S
    "sim-suspended-": ("invalid", "TEMPORARILY_SUSPENDED"),  # until an operator acts
    "sim-capacity-": ("ok", None),  # the model is busy, not the account: no penalty
    "sim-423-": ("invalid", "423"),
    "sim-ttl2-": ("ok", None),  # not an account problem: refreshed before its 2 s bearer expired
}


class AccountStates(SimCase):
    def run_state(self, prefix):
        # no background getUsageLimits poll: one landing before the generate call marks an exhausted account with the
        # poll's reason ("no credits left") and the generate's own answer, which this test reads, is never asked for
        gw = self.gateway([accounts(self.sim, prefix, "s"), accounts(self.sim, "social", "h-" + prefix.strip("-"))],
                          {"KIRO_USAGE_POLL_INTERVAL_S": "0"})
        healthy = "sim-social-h-" + prefix.strip("-")
        wait_catalogs(self, gw, 2)
        if prefix == "sim-ttl2-":
            time.sleep(2.2)  # the bearer it holds has expired at kiro-sim
        small = load_fixture("sdk-text-1.json")
        for dialect in ("anthropic", "openai"):
            with self.subTest(prefix=prefix, dialect=dialect):
                if dialect == "anthropic":
                    body, headers = fixture_request(small, ONE_MODEL, False)
                    st, _, data = self.post(gw, body, headers)
                else:
                    st, _, data = request(gw.port, "POST", "/v1/chat/completions", key=CLIENT_KEY,
                                          body={"model": ONE_MODEL, "messages": [{"role": "user", "content": "hi"}]})
                self.assertEqual(st, 200, data[:600])
        t = tokens(gw)
        sick = t[0]
        self.assertEqual(t[1]["state"], "ok", t)
        if prefix == "sim-ttl2-":  # not an account problem: the account itself serves after a refresh
            sick_sim = self.sim_account("sim-ttl2-s")
            self.assertGreaterEqual(sick_sim["refreshes"], 2, sick_sim)
            self.assertEqual(sick_sim["generate_ok"], 2, sick_sim)
        else:
            self.assertGreaterEqual(self.sim_account(healthy)["generate_ok"], 2)
        state, reason = STATES[prefix]
        self.assertEqual(sick["state"], state, sick)
        if reason is not None:
            self.assertIn(reason, sick["state_reason"] or "", sick)

    def test_exhausted(self):
        self.run_state("sim-exhausted-")

    def test_overage(self):
        self.run_state("sim-overage-")

    def test_429(self):
        self.run_state("sim-429-")

    def test_suspicious(self):
        self.run_state("sim-suspicious-")

    def test_suspended(self):
        self.run_state("sim-suspended-")

    def test_capacity(self):
        self.run_state("sim-capacity-")

    def test_423(self):
        self.run_state("sim-423-")

    def test_ttl(self):
        self.run_state("sim-ttl2-")


if __name__ == "__main__":
    main()
