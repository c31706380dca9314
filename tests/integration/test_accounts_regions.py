"""What the gateway sends for each credential kind, against a recording stub upstream (stub_upstream.py) with
KIRO_API_BASE=http://127.0.0.1:PORT/{region}:
- the data-plane region in the path (/{region}/generateAssistantResponse), the refresh at the auth region;
- profileArn at the body root per kind and in source order (configured, refresh answer, ListAvailableProfiles, the
  Social default, the Builder ID placeholder), none for API keys; the placeholder never on getUsageLimits;
- ListAvailableProfiles in the account's region first, then the other; its ARN persisted across a restart;
- tokentype headers (API_KEY, EXTERNAL_IDP) and the external IdP's form-encoded refresh;
- `400 profileArn is required` fails over and leaves the account visibly invalid with the reason;
- conversationId a UUID stable for a session, agentContinuationId a fresh UUID v4 per request;
- bad account JSON stops start-up (exit 2) with one line naming the entry and the field; the same on SIGHUP keeps
  the running pool."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest

from k2a import BIN, CLIENT_KEY, SLOW, Gateway, main, request
from stub_upstream import Stub

SOCIAL_DEFAULT = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
BUILDER_ID = "arn:aws:codewhisperer:us-east-1:638616132270:profile/AAAACCCCXXXX"
ARN_US = "arn:aws:codewhisperer:us-east-1:610548660232:profile/VNECVYCYYAWN"
ARN_EU = "arn:aws:codewhisperer:eu-central-1:123456789012:profile/EUPROFILE01"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def message(text="hi"):
    return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [{"role": "user", "content": text}]}


def idc(rt, **kw):
    e = {"auth": "IdC", "refreshToken": rt, "clientId": "cid-" + rt, "clientSecret": "sec-" + rt}
    e.update(kw)
    return e


class Base(unittest.TestCase):
    def setUp(self):
        self.stub = Stub()
        self.gws = []

    def tearDown(self):
        try:
            for gw in self.gws:
                gw.assert_clean_exit(self)
        finally:
            for gw in self.gws:
                gw.cleanup()
            self.stub.close()

    def gateway(self, accounts, extra=None):
        gw = Gateway(env=self.stub.env(accounts, extra))
        self.gws.append(gw)
        return gw

    def ask(self, gw, headers=None, expect=200):
        st, _, body = request(gw.port, "POST", "/v1/messages", message(), headers=headers, key=CLIENT_KEY)
        self.assertEqual(st, expect, body)
        return json.loads(body)

    def one_generate(self, token):
        gens = self.stub.find("generate", token)
        self.assertTrue(gens, "no generateAssistantResponse with token %s: %s" % (token, self.stub.requests))
        return gens[-1]


class Kinds(Base):
    def test_social_default_arn_and_region(self):
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-social"}])
        self.ask(gw)
        g = self.one_generate("at-rt-social")
        self.assertEqual(g["path"], "/us-east-1/generateAssistantResponse")
        self.assertEqual(g["body"]["profileArn"], SOCIAL_DEFAULT)
        self.assertIn("conversationState", g["body"])
        self.assertNotIn("tokentype", g["headers"])
        self.assertEqual([r["region"] for r in self.stub.find("social")], ["us-east-1"])
        self.assertEqual(self.stub.find("profiles"), [])  # Social accounts never ask

    def test_social_refresh_arn_picks_the_region(self):
        self.stub.script["rt-s-eu"] = {"refresh_arn": ARN_EU}
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-s-eu"}])
        self.ask(gw)
        g = self.one_generate("at-rt-s-eu")
        self.assertEqual(g["path"], "/eu-central-1/generateAssistantResponse")
        self.assertEqual(g["body"]["profileArn"], ARN_EU)
        # the refresh goes to the auth region (default us-east-1), not the ARN's
        self.assertEqual([r["region"] for r in self.stub.find("social")], ["us-east-1"])

    def test_configured_arn_wins_over_the_refresh_answer(self):
        self.stub.script["rt-s-cfg"] = {"refresh_arn": ARN_US}
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-s-cfg", "profileArn": ARN_EU, "region": "eu-central-1"}])
        self.ask(gw)
        g = self.one_generate("at-rt-s-cfg")
        self.assertEqual(g["body"]["profileArn"], ARN_EU)
        self.assertEqual(g["region"], "eu-central-1")
        self.assertEqual([r["region"] for r in self.stub.find("social")], ["eu-central-1"])

    def test_idc_list_available_profiles_region_order(self):
        # eu-central-1 (the account's region) first: empty; then us-east-1: the profile
        self.stub.script["rt-idc"] = {"profiles": {"eu-central-1": [], "us-east-1": ["", ARN_US]}}
        gw = self.gateway([idc("rt-idc", region="eu-central-1")])
        self.ask(gw)
        self.assertEqual([r["region"] for r in self.stub.find("idc")], ["eu-central-1"])
        laps = self.stub.find("profiles")
        self.assertEqual([r["region"] for r in laps], ["eu-central-1", "us-east-1"])
        for r in laps:
            self.assertEqual(r["path"], "/%s/" % r["region"])
            self.assertEqual(r["headers"]["content-type"], "application/x-amz-json-1.0")
            self.assertEqual(r["headers"]["x-amz-target"], "AmazonCodeWhispererService.ListAvailableProfiles")
            self.assertEqual(r["body"], {"maxResults": 10})
            self.assertEqual(r["headers"]["authorization"], "Bearer at-rt-idc")
            self.assertNotIn("tokentype", r["headers"])
        g = self.one_generate("at-rt-idc")
        self.assertEqual(g["body"]["profileArn"], ARN_US)
        self.assertEqual(g["path"], "/us-east-1/generateAssistantResponse")  # the ARN's region wins

    def test_idc_without_profile_gets_the_placeholder_never_on_rest(self):
        self.stub.script["rt-idc-none"] = {"profiles": {"us-east-1": 403, "eu-central-1": 403}}
        gw = self.gateway([idc("rt-idc-none")], {"KIRO_USAGE_POLL_INTERVAL_S": "3600"})
        self.ask(gw)
        self.assertEqual([r["region"] for r in self.stub.find("profiles")], ["us-east-1", "eu-central-1"])
        g = self.one_generate("at-rt-idc-none")
        self.assertEqual(g["body"]["profileArn"], BUILDER_ID)
        deadline = time.time() + 10 * SLOW
        while not self.stub.find("usage") and time.time() < deadline:
            time.sleep(0.1)
        usage = self.stub.find("usage")
        self.assertTrue(usage, "no getUsageLimits poll")
        self.assertEqual(usage[0]["route"], "/getUsageLimits")
        self.assertNotIn("profileArn", usage[0]["query"])  # REST never carries the placeholder
        self.assertEqual(usage[0]["query"]["origin"], ["AI_EDITOR"])

    def test_builder_id_placeholder_without_asking(self):
        gw = self.gateway([idc("rt-bid", provider="BuilderId")])
        self.ask(gw)
        self.assertEqual(self.stub.find("profiles"), [])
        g = self.one_generate("at-rt-bid")
        self.assertEqual(g["body"]["profileArn"], BUILDER_ID)
        self.assertEqual(g["path"], "/us-east-1/generateAssistantResponse")
        st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        t = json.loads(body)["tokens"][0]
        self.assertEqual(t["auth_type"], "builder_id")
        self.assertEqual(t["profile_arn"], BUILDER_ID)
        self.assertEqual(t["profile_arn_source"], "placeholder")

    def test_api_key(self):
        gw = self.gateway([{"auth": "ApiKey", "apiKey": "ksk_stubkey1", "apiRegion": "eu-central-1"}])
        self.ask(gw)
        self.assertEqual(self.stub.find("social") + self.stub.find("idc") + self.stub.find("profiles"), [])
        g = self.one_generate("ksk_stubkey1")
        self.assertEqual(g["path"], "/eu-central-1/generateAssistantResponse")
        self.assertEqual(g["headers"].get("tokentype"), "API_KEY")
        self.assertNotIn("profileArn", g["body"])

    def test_external_idp(self):
        self.stub.script["rt-ext"] = {"profiles": {"us-east-1": [ARN_US]}}
        gw = self.gateway([{"auth": "ExternalIdp", "refreshToken": "rt-ext", "clientId": "my-client",
                            "tokenEndpoint": self.stub.base + "/idp/token", "scope": "api://kiro/.default offline_access"}])
        self.ask(gw)
        idp = self.stub.find("idp")
        self.assertEqual(len(idp), 1)
        self.assertTrue(idp[0]["headers"]["content-type"].startswith("application/x-www-form-urlencoded"))
        self.assertEqual(idp[0]["body"], {"client_id": ["my-client"], "grant_type": ["refresh_token"],
                                          "refresh_token": ["rt-ext"], "scope": ["api://kiro/.default offline_access"]})
        laps = self.stub.find("profiles")
        self.assertEqual(len(laps), 1)
        self.assertEqual(laps[0]["headers"].get("tokentype"), "EXTERNAL_IDP")
        g = self.one_generate("at-rt-ext")
        self.assertEqual(g["headers"].get("tokentype"), "EXTERNAL_IDP")
        self.assertEqual(g["body"]["profileArn"], ARN_US)

    def test_base_without_region_serves_every_region(self):
        gw = self.gateway([{"auth": "ApiKey", "apiKey": "ksk_stubkey2", "apiRegion": "eu-central-1"}],
                          {"KIRO_API_BASE": self.stub.base})
        self.ask(gw)
        self.assertEqual(self.one_generate("ksk_stubkey2")["path"], "/generateAssistantResponse")


class Failover(Base):
    def test_profile_arn_required_is_the_accounts_problem(self):
        self.stub.script["rt-bad"] = {"profiles": {"us-east-1": [ARN_US]},
                                      "generate": (400, {"message": "profileArn is required for this request."})}
        gw = self.gateway([idc("rt-bad", description="needs-arn"), {"auth": "Social", "refreshToken": "rt-good"}])
        self.ask(gw)  # 200: failed over to the Social account
        self.assertEqual(len(self.stub.find("generate", "at-rt-bad")), 1)
        self.assertEqual(len(self.stub.find("generate", "at-rt-good")), 1)
        st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        t = json.loads(body)["tokens"][0]
        self.assertEqual(t["state"], "invalid")
        self.assertIn("profileArn", t["state_reason"])
        self.assertIn(ARN_US, t["state_reason"])
        # the next request goes straight to the healthy account
        self.ask(gw)
        self.assertEqual(len(self.stub.find("generate", "at-rt-bad")), 1)


    def test_identity_rejections_fail_over(self):
        # 403 "not authorized" (the ARN does not fit the identity): invalid at once, no retry on the same account
        self.stub.script["rt-na"] = {"generate": (403, {"message": "User is not authorized to make this call.", "reason": None})}
        # 403 bearer invalid even with a fresh token: invalid after one refresh, the reason names the ARN sent
        self.stub.script["rt-bi"] = {"generate": (403, {"message": "The bearer token included in the request is invalid."})}
        gw = self.gateway([idc("rt-na", provider="BuilderId"), {"auth": "Social", "refreshToken": "rt-bi"},
                           {"auth": "Social", "refreshToken": "rt-ok"}], {"KIRO_MAX_ATTEMPTS": "3"})
        self.ask(gw)
        self.assertEqual(len(self.stub.find("generate", "at-rt-na")), 1)
        self.assertEqual(len(self.stub.find("generate", "at-rt-bi")), 2)  # refreshed once, retried once
        self.assertEqual(len(self.stub.find("generate", "at-rt-ok")), 1)
        st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        tokens = json.loads(body)["tokens"]
        self.assertEqual([t["state"] for t in tokens], ["invalid", "invalid", "ok"])
        self.assertIn("User is not authorized", tokens[0]["state_reason"])
        self.assertIn(BUILDER_ID, tokens[0]["state_reason"])
        self.assertIn("also after a token refresh", tokens[1]["state_reason"])
        self.assertIn(SOCIAL_DEFAULT, tokens[1]["state_reason"])

    def test_only_account_with_a_bad_arn_is_not_a_client_error(self):
        self.stub.script["rt-only"] = {"generate": (400, {"message": "profileArn is required for this request."})}
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-only"}])
        st, _, body = request(gw.port, "POST", "/v1/messages", message(), key=CLIENT_KEY)
        self.assertEqual(st, 503, body)  # the gateway's account problem, never a 400 for the client
        self.assertIn("profileArn", json.loads(body)["error"]["message"])


class Fallback(Base):
    THROTTLED = {"generate_primary": (429, {"message": "Too many requests, please wait before trying again.", "reason": None})}

    def test_same_account_on_the_fallback_host(self):
        self.stub.script["rt-fb"] = self.THROTTLED
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-fb"}, {"auth": "Social", "refreshToken": "rt-fb2"}],
                          {"KIRO_API_FALLBACK_BASE": self.stub.base + "/fb/{region}"})
        self.ask(gw)
        gens = self.stub.find("generate")
        self.assertEqual([(g["path"], g["headers"]["authorization"]) for g in gens],
                         [("/us-east-1/generateAssistantResponse", "Bearer at-rt-fb"),
                          ("/fb/us-east-1/generateAssistantResponse", "Bearer at-rt-fb")])
        self.assertEqual(gens[0]["body"], gens[1]["body"])
        st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        self.assertEqual(json.loads(body)["tokens"][0]["state"], "ok")  # the primary's 429 is not held against it

    def test_off_by_default(self):
        self.stub.script["rt-nf"] = self.THROTTLED
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-nf"}, {"auth": "Social", "refreshToken": "rt-nf2"}])
        self.ask(gw)
        gens = self.stub.find("generate")
        self.assertEqual([g["headers"]["authorization"] for g in gens], ["Bearer at-rt-nf", "Bearer at-rt-nf2"])
        self.assertFalse(any(g["fallback"] for g in gens))


class Persist(Base):
    def test_profile_arn_survives_a_restart(self):
        self.stub.script["rt-p"] = {"profiles": {"us-east-1": [ARN_US]}}
        state = os.path.join(tempfile.mkdtemp(prefix="k2a-acct-"), "state.json")
        accounts = [idc("rt-p")]
        gw = self.gateway(accounts, {"KIRO_STATE_FILE": state})
        self.ask(gw)
        gw.assert_clean_exit(self)
        self.gws.remove(gw)
        gw.cleanup()
        with open(state) as f:
            self.assertIn(ARN_US, f.read())
        self.stub.reset()
        gw = self.gateway(accounts, {"KIRO_STATE_FILE": state})
        self.ask(gw)
        self.assertEqual(self.stub.find("profiles"), [])  # known from the state file
        self.assertEqual(self.one_generate("at-rt-p")["body"]["profileArn"], ARN_US)


class Ids(Base):
    def test_conversation_and_continuation_ids(self):
        gw = self.gateway([{"auth": "Social", "refreshToken": "rt-ids"}])
        h = {"x-claude-code-session-id": "session-one"}
        self.ask(gw, headers=h)
        self.ask(gw, headers=h)
        self.ask(gw, headers={"x-claude-code-session-id": "session-two"})
        states = [g["body"]["conversationState"] for g in self.stub.find("generate")]
        self.assertEqual(len(states), 3)
        conv = [s["conversationId"] for s in states]
        cont = [s["agentContinuationId"] for s in states]
        for c in conv:
            self.assertRegex(c, UUID)
        self.assertEqual(conv[0], conv[1])
        self.assertNotEqual(conv[0], conv[2])
        for c in cont:
            self.assertRegex(c, UUID4)
        self.assertEqual(len(set(cont)), 3)


class ConfigErrors(unittest.TestCase):
    CASES = [
        ([{"auth": "Oauth", "refreshToken": "x"}], "entry 0: auth must be"),
        ([{"refreshToken": "x"}, {"refreshToken": "y", "region": "us-west-2"}], "entry 1: region is not a Kiro region"),
        ([{"refreshToken": "x", "profileArn": "arn:aws:codewhisperer:us-east-1:1:profile/X"}], "entry 0: profileArn"),
        ([{"auth": "ApiKey", "apiKey": "ksk_abc"}], "entry 0: apiRegion is required"),
    ]

    def test_bad_accounts_stop_start_up(self):
        for accounts, want in self.CASES:
            env = dict(os.environ, KIRO_AUTH_TOKEN=json.dumps(accounts), KIRO_HOST="127.0.0.1", PORT="0",
                       KIRO_CLIENT_TOKEN=CLIENT_KEY,
                       KIRO_STATE_FILE=os.path.join(tempfile.mkdtemp(prefix="k2a-acct-"), "s.json"))
            p = subprocess.run([BIN], env=env, capture_output=True, text=True, timeout=30 * SLOW,
                               cwd=tempfile.mkdtemp(prefix="k2a-acct-"))
            self.assertEqual(p.returncode, 2, (accounts, p.stderr))
            lines = [l for l in p.stderr.splitlines() if "KIRO_AUTH_TOKEN" in l]
            self.assertEqual(len(lines), 1, p.stderr)
            self.assertIn(want, lines[0])
            self.assertNotIn("ksk_abc", p.stderr)  # never a secret


class Reload(Base):
    def test_bad_account_on_sighup_keeps_the_pool(self):
        path = os.path.join(tempfile.mkdtemp(prefix="k2a-acct-"), "accounts.json")
        with open(path, "w") as f:
            json.dump([{"auth": "Social", "refreshToken": "rt-r"}], f)
        gw = Gateway(env=self.stub.env([], {"KIRO_AUTH_TOKEN": path}))
        self.gws.append(gw)
        self.ask(gw)
        with open(path, "w") as f:
            json.dump([{"auth": "Social", "refreshToken": "rt-r"}, {"refreshToken": "rt-r2", "region": "mars-1"}], f)
        gw.send_signal(signal.SIGHUP)
        deadline = time.time() + 10 * SLOW
        while "accounts not reloaded" not in gw.stderr() and time.time() < deadline:
            time.sleep(0.1)
        self.assertIn("accounts not reloaded", gw.stderr())
        self.assertRegex(gw.stderr(), r"entry 1: region is not a Kiro region: expected us-east-1 or eu-central-1, got \"mars-1\"")
        self.ask(gw)  # the running pool is kept
        st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
        self.assertEqual(json.loads(body)["total_tokens"], 1)


if __name__ == "__main__":
    main()
