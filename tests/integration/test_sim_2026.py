"""kiro-sim's default mode: Kiro as it is in 2026 (shared/docs/kiro-protocol-2026.md section 13). Each rule gets a case
asserting the exact status and body: the byte and token limits, the profileArn rules (required, ownership, region), the
shape and model rules (dotted catalog ids, tiers), the fingerprint headers (warnings; 400 under --strict-headers), the
ksk_ and external_idp credentials, the region and awsJson routes, ListAvailableProfiles, paged ListAvailableModels, the
REST profileArn rules, the scripted account states with the section 9 bodies, the per-connection statistics, and that
--legacy-2025 keeps the 2025 behaviour."""
import http.client
import json
import time
import urllib.parse

from sim_util import (BUILDER_ID_ARN, assert_healthy_tail, KIRO_HEADERS, SOCIAL_ARN, SOCIAL_EU_ARN, Sim, hist_assistant, hist_user, parse_frames,
                      request_body, run_checked, run_tests, sim_binary, tool_spec)

MALFORMED = {"message": "Improperly formed request.", "reason": None}
TOO_LONG = {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}
BAD_MODEL = {"message": "Invalid model. Please select a different model to continue.", "reason": "INVALID_MODEL_ID"}
ARN_REQUIRED = {"message": "profileArn is required for this request."}
BEARER = {"message": "The bearer token included in the request is invalid."}
BEARER_2025 = {"message": "The bearer token included in the request is invalid.", "reason": None}
NOT_AUTHORIZED = {"message": "User is not authorized to make this call.", "reason": None}
INVALID_TOKEN = {"message": "Invalid token"}
UNKNOWN_OP = {"__type": "com.amazon.coral.service#UnknownOperationException", "message": None}
MONTHLY = {"message": "You have reached the limit of requests for this month.", "reason": "MONTHLY_REQUEST_COUNT"}
OVERAGE = {"__type": "com.amazon.aws.codewhisperer#ServiceQuotaExceededException",
           "message": "You have reached the limit for overages.", "reason": "OVERAGE_REQUEST_LIMIT_EXCEEDED"}
THROTTLED = {"message": "Too many requests, please wait before trying again.", "reason": None}
CAPACITY = {"__type": "com.amazon.aws.codewhisperer#ThrottlingException",
            "message": "I am experiencing high traffic, please try again shortly.", "reason": "INSUFFICIENT_MODEL_CAPACITY"}
SUSPENDED = {"message": "Your User ID is temporarily suspended. We detected unusual user activity and locked it as a security "
             "precaution. To restore access, please contact our support team to verify your identity: "
             "https://support.aws.amazon.com/#/contacts/kiro", "reason": "TEMPORARILY_SUSPENDED"}
LOCKED = {"message": "Your account is locked.", "reason": None}
SCHEMA_INVALID = {"__type": "ValidationException", "message": "input_schema does not support oneOf, allOf, or anyOf at the top level",
                  "reason": "TOOL_SCHEMA_INVALID"}
TOOL_FORMAT = {"message": "Invalid tool use format.", "reason": "REQUEST_BODY_INVALID"}
TOOL_CONFIG = {"message": "Tool configuration is missing for the tool use in the conversation history.",
               "reason": "TOOL_CONFIG_MISSING"}
UNANSWERED = "`tool_use` ids were found without `tool_result` blocks immediately after: "
ORPHAN = "unexpected `tool_use_id` found in `tool_result` blocks: %s. Each `tool_result` block must have a corresponding " \
         "`tool_use` block in the previous message."
FIELDS_UNSUPPORTED = {"message": "additionalModelRequestFields is not supported for this model"}
FIELDS_INVALID = {"message": "Invalid additionalModelRequestFields"}
CATALOG = ["auto", "claude-sonnet-5", "claude-opus-5", "claude-opus-4.8", "claude-opus-4.7", "claude-opus-4.6", "claude-opus-4.5",
           "claude-sonnet-4.6", "claude-sonnet-4.5", "claude-sonnet-4.0", "claude-haiku-4.5", "deepseek-3.2", "minimax-m2.5",
           "minimax-m2.1", "glm-5", "qwen3-coder-next", "gpt-5.6-sol", "gpt-5.6-terra", "gpt-5.6-luna"]
AWS_JSON = "application/x-amz-json-1.0"
IDC_CLIENT = {"clientId": "client-1", "clientSecret": "secret-1", "grantType": "refresh_token"}

SIM = None


def refresh(sim, name, region=None):
    st, doc = sim.json("POST", ("/%s" % region if region else "") + "/refreshToken", {"refreshToken": name})
    assert st == 200, (name, st, doc)
    return doc


def idc_refresh(sim, name, region=None):
    st, doc = sim.json("POST", ("/%s" % region if region else "") + "/token", dict(IDC_CLIENT, refreshToken=name))
    assert st == 200, (name, st, doc)
    return doc["accessToken"]


def entra(sim, name, scope="openid offline_access", ctype="application/x-www-form-urlencoded", **extra):
    form = dict({"client_id": "entra-app-1", "grant_type": "refresh_token", "refresh_token": name, "scope": scope}, **extra)
    st, _, data = sim.request("POST", "/entra/token", urllib.parse.urlencode(form), headers={"Content-Type": ctype})
    return st, json.loads(data)


def gen(sim, token, body, region=None, headers=None, expect=None):
    st, _, data = sim.generate(token, body, headers=headers,
                               path=("/%s" % region if region else "") + "/generateAssistantResponse")
    if expect is not None:
        assert (st, json.loads(data) if st != 200 else None) == expect, (st, data[:300])
    return st, data


def ok(sim, token, body, region=None, headers=None):
    st, data = gen(sim, token, body, region, headers)
    assert st == 200, (st, data[:300])
    assert_healthy_tail(parse_frames(data))


def aws_json(sim, token, target, body, region="us-east-1", extra=None):
    h = {"Content-Type": AWS_JSON, "x-amz-target": target}
    h.update(extra or {})
    if target.endswith("GenerateAssistantResponse"):
        h.update(KIRO_HEADERS)
    st, hd, data = sim.request("POST", "/%s/" % region, body, token=token, headers=h)
    return st, hd, data


def profiles(sim, token, region="us-east-1", extra=None, body=None):
    st, _, data = aws_json(sim, token, "AmazonCodeWhispererService.ListAvailableProfiles", body or {"maxResults": 10}, region,
                           extra)
    return st, json.loads(data)


def sized_body(size, model="auto", arn=SOCIAL_ARN):
    """A body of exactly `size` bytes (as Sim.request encodes it)."""
    def enc(b):
        return json.dumps(b, ensure_ascii=False).encode()
    base = len(enc(request_body("", model=model, profile_arn=arn)))
    body = request_body("x" * (size - base), model=model, profile_arn=arn)
    assert len(enc(body)) == size
    return body


def last_rule(sim):
    return sim.stats()["last_rejection"]


def test_help_documents_the_2026_rules():
    p = run_checked([sim_binary(), "--help"], timeout=10)
    assert p.returncode == 0
    for needle in (b"--legacy-2025", b"--strict-headers", b"--max-body-bytes", b"--overage-status", b"--capacity-status",
                   b"sim-socialeu-X", b"sim-idc-X", b"sim-builderid-X", b"sim-free-X", b"sim-extidp-X", b"ksk_sim-X",
                   b"sim-ttlN-X", b"profileArn is required", b"UnknownOperationException", b"/entra/token", b"TOOL_SCHEMA_INVALID",
                   b"REQUEST_BODY_INVALID", b"TOOL_USE_RESULT_MISMATCH", b"TOOL_CONFIG_MISSING", b"Invalid\n"):
        assert needle in p.stdout, needle
    for bad in (["--overage-status", "401"], ["--capacity-status", "500"]):
        assert run_checked([sim_binary()] + bad, timeout=10).returncode == 2, bad


def test_rule1_body_bytes_and_token_estimate():
    t = refresh(SIM, "sim-ok-size")["accessToken"]
    ok(SIM, t, sized_body(615000))
    gen(SIM, t, sized_body(615001), expect=(400, MALFORMED))
    assert last_rule(SIM) == "payload_too_large"
    # deepseek-3.2's window is 128000 tokens: 520000 bytes / 4 = 130000 > 128000
    gen(SIM, t, sized_body(520000, model="deepseek-3.2"), expect=(400, TOO_LONG))
    assert last_rule(SIM) == "input_too_long"
    ok(SIM, t, sized_body(512000, model="deepseek-3.2"))
    ok(SIM, t, sized_body(520000, model="claude-sonnet-4.5"))
    with Sim("--max-body-bytes", "1300000") as sim:
        t2 = refresh(sim, "sim-ok-size")["accessToken"]
        gen(sim, t2, sized_body(900000, model="claude-sonnet-4.5"), expect=(400, TOO_LONG))  # 225000 > 200000
        ok(sim, t2, sized_body(900000, model="claude-sonnet-4.6"))  # 1M window
        gen(sim, t2, sized_body(1300001), expect=(400, MALFORMED))


def test_rule2_profile_arn_required():
    t = refresh(SIM, "sim-ok-arn")["accessToken"]
    gen(SIM, t, request_body("hi", profile_arn=None), expect=(400, ARN_REQUIRED))
    assert last_rule(SIM) == "profile_arn_required"
    b = request_body("hi")
    b["profileArn"] = None
    gen(SIM, t, b, expect=(400, ARN_REQUIRED))
    b["profileArn"] = 42
    gen(SIM, t, b, expect=(400, MALFORMED))
    ok(SIM, t, request_body("hi"))
    # an API key needs none
    key = {"tokentype": "API_KEY"}
    ok(SIM, "ksk_sim-arn", request_body("hi", profile_arn=None), headers=dict(KIRO_HEADERS, **key))
    # a Builder ID account without the placeholder: required too (KRA 0.6.2)
    bt = idc_refresh(SIM, "sim-builderid-arn")
    gen(SIM, bt, request_body("hi", profile_arn=None), expect=(400, ARN_REQUIRED))


def test_rule3_profile_arn_of_another_account():
    social = refresh(SIM, "sim-ok-own")["accessToken"]
    gen(SIM, social, request_body("hi", profile_arn=BUILDER_ID_ARN), expect=(403, NOT_AUTHORIZED))
    assert last_rule(SIM) == "profile_arn_foreign"
    gen(SIM, social, request_body("hi", profile_arn=SOCIAL_ARN.replace("EHGA3GRVQMUK", "AAAABBBBCCCC")),
        expect=(403, NOT_AUTHORIZED))
    idc = idc_refresh(SIM, "sim-idc-own")
    gen(SIM, idc, request_body("hi", profile_arn=BUILDER_ID_ARN), expect=(403, BEARER))
    assert last_rule(SIM) == "profile_arn_placeholder"
    gen(SIM, idc, request_body("hi", profile_arn=SOCIAL_ARN), expect=(403, NOT_AUTHORIZED))
    st, doc = profiles(SIM, idc)
    assert st == 200 and len(doc["profiles"]) == 1 and doc["nextToken"] is None, doc
    arn = doc["profiles"][0]["arn"]
    assert arn.startswith("arn:aws:codewhisperer:us-east-1:610548660232:profile/") and len(arn.rsplit("/", 1)[1]) == 12
    assert doc["profiles"][0]["profileName"] == "KiroProfile-us-east-1"
    ok(SIM, idc, request_body("hi", profile_arn=arn))
    builder = idc_refresh(SIM, "sim-builderid-own")
    ok(SIM, builder, request_body("hi", profile_arn=BUILDER_ID_ARN))
    gen(SIM, builder, request_body("hi", profile_arn=SOCIAL_ARN), expect=(403, NOT_AUTHORIZED))
    st, ext = entra(SIM, "sim-extidp-own")
    assert st == 200, ext
    idp = dict(KIRO_HEADERS, tokentype="EXTERNAL_IDP")
    gen(SIM, ext["access_token"], request_body("hi", profile_arn=BUILDER_ID_ARN), headers=idp, expect=(403, BEARER))


def test_rule4_region_of_the_arn_and_the_host():
    eu = refresh(SIM, "sim-socialeu-r", region="eu-central-1")
    assert eu["profileArn"] == SOCIAL_EU_ARN, eu
    ok(SIM, eu["accessToken"], request_body("hi", profile_arn=SOCIAL_EU_ARN), region="eu-central-1")
    gen(SIM, eu["accessToken"], request_body("hi", profile_arn=SOCIAL_EU_ARN), region="us-east-1", expect=(400, MALFORMED))
    assert last_rule(SIM) == "profile_arn_region"
    gen(SIM, eu["accessToken"], request_body("hi", profile_arn=SOCIAL_EU_ARN), expect=(400, MALFORMED))  # no prefix: us-east-1
    us = refresh(SIM, "sim-ok-r")["accessToken"]
    gen(SIM, us, request_body("hi"), region="eu-central-1", expect=(400, MALFORMED))
    ok(SIM, us, request_body("hi"), region="us-east-1")
    # an unknown region: the real host does not resolve
    st, _, data = SIM.request("POST", "/ap-south-1/generateAssistantResponse", request_body("hi"), token=us)
    assert st == 404 and json.loads(data) == {
        "message": "kiro-sim: no Kiro endpoint in region ap-south-1 (q.<region>.amazonaws.com does not resolve)",
        "reason": None}, data
    # refresh in either auth region works for every account; the Social answer carries the account's own ARN
    assert refresh(SIM, "sim-socialeu-r", region="us-east-1")["profileArn"] == SOCIAL_EU_ARN
    assert refresh(SIM, "sim-ok-r", region="eu-central-1")["profileArn"] == SOCIAL_ARN
    assert idc_refresh(SIM, "sim-idceu-r", region="eu-central-1") and idc_refresh(SIM, "sim-idceu-r", region="us-east-1")


def test_rule5_shape():
    t = refresh(SIM, "sim-ok-shape")["accessToken"]
    b = request_body("hi", model="claude-sonnet-4.6")
    b["additionalModelRequestFields"] = {"output_config": {"effort": "high"}}
    ok(SIM, t, b)  # a known root key now (rule 12 checks it against the model)
    b = request_body("hi")
    b["inferenceConfig"] = {"maxTokens": 10}
    gen(SIM, t, b, expect=(400, MALFORMED))
    assert last_rule(SIM) == "unknown_field"
    # a history turn replays redacted reasoning as kiro-cli does (kiro-protocol-2026.md §7); nothing else in that object
    # (fuzz_anthropic_req: the gateway sends it for a redacted_thinking block, and kiro-sim refused the field)
    hist = [{"userInputMessage": {"content": "q1", "modelId": "claude-sonnet-4.6", "origin": "AI_EDITOR"}},
            {"assistantResponseMessage": {"content": "a1", "reasoningContent": {"redactedContent": "opaque"}}}]
    ok(SIM, t, request_body("hi", model="claude-sonnet-4.6", history=hist))
    for bad, rule in (({"redactedContent": "x", "text": "t"}, "unknown_field"), ({}, "missing_field"),
                      ({"redactedContent": 1}, "wrong_type"), ("x", "wrong_type")):
        hist[1]["assistantResponseMessage"]["reasoningContent"] = bad
        gen(SIM, t, request_body("hi", model="claude-sonnet-4.6", history=hist), expect=(400, MALFORMED))
        assert last_rule(SIM) == rule, (bad, last_rule(SIM))
    b = request_body("hi")
    b["conversationState"]["history"] = None
    gen(SIM, t, b, expect=(400, MALFORMED))
    b = request_body("hi")
    b["conversationState"]["chatTriggerType"] = 1
    gen(SIM, t, b, expect=(400, MALFORMED))
    st, _, data = SIM.request("POST", "/generateAssistantResponse", b'{"conversationState": {', token=t, headers=KIRO_HEADERS)
    assert (st, json.loads(data)) == (400, MALFORMED)


def test_rule6_models_and_tiers():
    t = refresh(SIM, "sim-ok-models")["accessToken"]
    for model in CATALOG + ["claude-sonnet-4"]:
        ok(SIM, t, request_body("hi", model=model))
    for model in ("CLAUDE_SONNET_4_5_20250929_V1_0", "CLAUDE_3_7_SONNET_20250219_V1_0", "claude-sonnet-4-5", "mythos", ""):
        gen(SIM, t, request_body("hi", model=model), expect=(400, BAD_MODEL))
        assert last_rule(SIM) == "model_unknown", model
    h = [hist_user("a"), hist_assistant("b")]
    h[0]["userInputMessage"]["modelId"] = "CLAUDE_SONNET_4_20250514_V1_0"
    gen(SIM, t, request_body("hi", history=h), expect=(400, BAD_MODEL))
    free = refresh(SIM, "sim-free-models")
    assert free["profileArn"] == SOCIAL_ARN
    for model in ("claude-opus-4.6", "claude-opus-5", "gpt-5.6-sol", "gpt-5.6-luna"):
        gen(SIM, free["accessToken"], request_body("hi", model=model), expect=(400, BAD_MODEL))
        assert last_rule(SIM) == "model_tier", model
    for model in ("auto", "claude-sonnet-4.5", "claude-haiku-4.5", "deepseek-3.2"):
        ok(SIM, free["accessToken"], request_body("hi", model=model))


def test_rule11_conversation_rules():
    t = refresh(SIM, "sim-ok-conv")["accessToken"]
    cases = [
        ("history_alternation", request_body("hi", history=[hist_user("a"), hist_user("b")])),
        ("history_ends_with_user", request_body("hi", history=[hist_user("a"), hist_assistant("b"), hist_user("c")])),
        ("empty_user_content", request_body("  ")),
        ("empty_assistant_message", request_body("hi", history=[hist_user("a"), hist_assistant("")])),
    ]
    use = {"toolUseId": "tooluse_1", "name": "t", "input": {}}
    cases.append(("duplicate_tool_use", request_body("hi", tools=[tool_spec("t")],
                                                     history=[hist_user("a"), hist_assistant("b", [use, dict(use)])])))
    for rule, body in cases:
        gen(SIM, t, body, expect=(400, MALFORMED))
        assert last_rule(SIM) == rule, (last_rule(SIM), rule)


def expect_rule(sim, t, body, status, doc, rule):
    gen(sim, t, body, expect=(status, doc))
    assert last_rule(sim) == rule, (last_rule(sim), rule)


def tool_use(tid, name="t"):
    return {"toolUseId": tid, "name": name, "input": {}}


def tool_result(tid, text="ok"):
    return {"toolUseId": tid, "content": [{"text": text}], "status": "success"}


def user_results(results, content=""):
    return {"userInputMessage": {"content": content, "modelId": "auto", "origin": "AI_EDITOR",
                                 "userInputMessageContext": {"toolResults": results}}}


def test_rule7_tool_schema_root():
    t = refresh(SIM, "sim-ok-rule7")["accessToken"]
    for schema in ({"anyOf": [{"type": "object", "properties": {}}]},
                   {"type": "object", "properties": {}, "oneOf": [{"required": ["a"]}]},
                   {"type": "object", "allOf": [{"properties": {}}]},
                   {"type": "array", "items": {}}, {"type": ["object", "null"]}, {"properties": {}}):
        expect_rule(SIM, t, request_body("hi", tools=[tool_spec("ok_tool"), tool_spec("t", schema=schema)]), 400,
                    SCHEMA_INVALID, "tool_schema_root")
    # nested combinators, additionalProperties, $defs: accepted
    nested = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                                               "b": {"oneOf": [{"type": "object"}]}}, "additionalProperties": False}
    ok(SIM, t, request_body("hi", tools=[tool_spec("t", schema=nested)]))


def test_rule8_tool_names_and_descriptions():
    t = refresh(SIM, "sim-ok-rule8")["accessToken"]
    cases = [("empty_tool_name", tool_spec("")), ("tool_name_too_long", tool_spec("a" * 65)),
             ("tool_name_charset", tool_spec("mcp.files/read")), ("tool_name_charset", tool_spec("read file")),
             ("tool_name_charset", tool_spec("caf\u00e9")), ("tool_description_empty", tool_spec("t", description="")),
             ("tool_description_empty", tool_spec("t", description=" \n\t "))]
    for rule, spec in cases:
        expect_rule(SIM, t, request_body("hi", tools=[spec]), 400, TOOL_FORMAT, rule)
    ok(SIM, t, request_body("hi", tools=[tool_spec("A-z_09-" + "x" * 57, description="d")]))  # 64 characters


def test_rule9_tool_use_result_mismatch():
    t = refresh(SIM, "sim-ok-rule9")["accessToken"]
    tools = [tool_spec("t")]
    # the last history assistant's toolUses must be answered by currentMessage's toolResults
    h = [hist_user("a"), hist_assistant("", [tool_use("tooluse_A"), tool_use("tooluse_B")])]
    ok(SIM, t, request_body("", tools=tools, history=h, tool_results=[tool_result("tooluse_A"), tool_result("tooluse_B")]))
    gen(SIM, t, request_body("", tools=tools, history=h, tool_results=[tool_result("tooluse_A")]),
        expect=(400, {"message": UNANSWERED + "tooluse_B", "reason": "TOOL_USE_RESULT_MISMATCH"}))
    assert last_rule(SIM) == "tool_use_unanswered"
    gen(SIM, t, request_body("next", tools=tools, history=h),
        expect=(400, {"message": UNANSWERED + "tooluse_A, tooluse_B", "reason": "TOOL_USE_RESULT_MISMATCH"}))
    assert last_rule(SIM) == "tool_use_unanswered"
    # an unanswered toolUse inside history: the next history user message must carry the results
    h2 = h + [hist_user("no results"), hist_assistant("done")]
    gen(SIM, t, request_body("hi", tools=tools, history=h2),
        expect=(400, {"message": UNANSWERED + "tooluse_A, tooluse_B", "reason": "TOOL_USE_RESULT_MISMATCH"}))
    h3 = h + [user_results([tool_result("tooluse_A"), tool_result("tooluse_B")]), hist_assistant("done")]
    ok(SIM, t, request_body("hi", tools=tools, history=h3))
    # orphan results (the existing rule, now with the mismatch body naming them)
    orphan = [tool_result("tooluse_A"), tool_result("tooluse_B"), tool_result("tooluse_\"Z")]
    gen(SIM, t, request_body("", tools=tools, history=h, tool_results=orphan),
        expect=(400, {"message": ORPHAN % 'tooluse_"Z', "reason": "TOOL_USE_RESULT_MISMATCH"}))
    assert last_rule(SIM) == "tool_result_orphan"
    gen(SIM, t, request_body("", tools=tools, history=[hist_user("a"), hist_assistant("b")],
                             tool_results=[tool_result("tooluse_X")]),
        expect=(400, {"message": ORPHAN % "tooluse_X", "reason": "TOOL_USE_RESULT_MISMATCH"}))
    assert last_rule(SIM) == "tool_result_orphan"
    # a long id list is bounded: the body stays valid JSON
    many = [tool_use("tooluse_%03d_%s" % (i, "x" * 50)) for i in range(40)]
    st, data = gen(SIM, t, request_body("go", tools=tools, history=[hist_user("a"), hist_assistant("", many)]))
    doc = json.loads(data)
    assert st == 400 and doc["reason"] == "TOOL_USE_RESULT_MISMATCH" and doc["message"].startswith(UNANSWERED + "tooluse_000_")
    assert 600 < len(doc["message"]) < 700, len(doc["message"])


def test_rule10_tool_config_missing():
    t = refresh(SIM, "sim-ok-rule10")["accessToken"]
    h = [hist_user("a"), hist_assistant("", [tool_use("tooluse_A")]), user_results([tool_result("tooluse_A")]),
         hist_assistant("done")]
    expect_rule(SIM, t, request_body("hi", history=h), 400, TOOL_CONFIG, "history_tools_without_tools")
    expect_rule(SIM, t, request_body("", history=h[:2], tool_results=[tool_result("tooluse_A")]), 400, TOOL_CONFIG,
                "history_tools_without_tools")
    # a result in a history user message, or in the current one, also counts as tool traffic
    expect_rule(SIM, t, request_body("hi", history=[user_results([tool_result("tooluse_Q")], "x"), hist_assistant("b")]), 400,
                TOOL_CONFIG, "history_tools_without_tools")
    ok(SIM, t, request_body("hi", tools=[tool_spec("t")], history=h))


def test_rule12_additional_model_request_fields():
    t = refresh(SIM, "sim-ok-rule12")["accessToken"]

    def body(model, fields):
        b = request_body("hi", model=model)
        b["additionalModelRequestFields"] = fields
        return b
    claude = ("claude-opus-4.6", "claude-opus-4.7", "claude-opus-4.8", "claude-sonnet-4.6", "claude-opus-5", "claude-sonnet-5")
    for model in claude:
        for effort in ("low", "medium", "high", "max"):
            ok(SIM, t, body(model, {"output_config": {"effort": effort}}))
        ok(SIM, t, body(model, {}))
    for model in ("claude-opus-4.7", "claude-opus-4.8", "claude-opus-5", "claude-sonnet-5"):
        ok(SIM, t, body(model, {"output_config": {"effort": "xhigh"}}))
    for effort in ("none", "low", "xhigh"):
        ok(SIM, t, body("gpt-5.6-sol", {"reasoning": {"effort": effort}}))
    for model in ("auto", "claude-opus-4.5", "claude-sonnet-4.5", "claude-haiku-4.5", "claude-sonnet-4.0", "deepseek-3.2",
                  "gpt-5.6-terra"):
        expect_rule(SIM, t, body(model, {"output_config": {"effort": "high"}}), 400, FIELDS_UNSUPPORTED,
                    "model_fields_unsupported")
    b = body("claude-opus-4.6", {})
    del b["conversationState"]["currentMessage"]["userInputMessage"]["modelId"]  # no modelId: auto
    expect_rule(SIM, t, b, 400, FIELDS_UNSUPPORTED, "model_fields_unsupported")
    invalid = [("claude-opus-4.6", {"output_config": {"effort": "xhigh"}}),
               ("claude-sonnet-4.6", {"output_config": {"effort": "xhigh"}}),
               ("claude-opus-4.7", {"output_config": {"effort": "none"}}),
               ("claude-opus-4.7", {"output_config": {"effort": "HIGH"}}),
               ("claude-opus-4.7", {"output_config": {"effort": 3}}),
               ("claude-opus-4.7", {"output_config": {"budget_tokens": 1024}}),
               ("claude-opus-4.7", {"output_config": "high"}),
               ("claude-opus-4.7", {"reasoning": {"effort": "high"}}),
               ("claude-opus-4.7", {"output_config": {"effort": "high"}, "thinking": {"type": "adaptive"}}),
               ("gpt-5.6-sol", {"reasoning": {"effort": "max"}}),
               ("gpt-5.6-sol", {"output_config": {"effort": "high"}})]
    for model, fields in invalid:
        expect_rule(SIM, t, body(model, fields), 400, FIELDS_INVALID, "model_fields_invalid")
    rules = SIM.stats()["rejections_by_rule"]
    for rule in ("model_fields_unsupported", "model_fields_invalid", "tool_schema_root", "tool_name_charset",
                 "tool_description_empty", "tool_use_unanswered", "tool_result_orphan", "history_tools_without_tools"):
        assert rules.get(rule, 0) >= 1, (rule, rules)


def test_rule13_headers_warn_by_default():
    t = refresh(SIM, "sim-ok-headers")["accessToken"]
    SIM.reset()
    ok(SIM, t, request_body("hi"))
    s = SIM.stats()
    assert s["header_warnings"] == 0 and s["header_warnings_by_name"] == {}, s
    ok(SIM, t, request_body("hi"), headers={})  # all six missing: still 200
    s = SIM.stats()
    assert s["header_warnings"] == 6 and set(s["header_warnings_by_name"]) == {
        "x-amzn-codewhisperer-optout", "x-amzn-kiro-agent-mode", "amz-sdk-invocation-id", "amz-sdk-request", "user-agent",
        "x-amz-user-agent"}, s
    bad = [("amz-sdk-invocation-id", "not-a-uuid"), ("amz-sdk-invocation-id", "0b7e2f4c1d2a4e5f9a8b7c6d5e4f3a2b"),
           ("x-amz-user-agent", "aws-sdk-js/1.0.34 KiroIDE-0.11.107-" + "a" * 63),
           ("user-agent", "Mozilla/5.0 KiroIDE-0.11.107-" + "a" * 64),
           ("x-amzn-kiro-agent-mode", "yolo"), ("x-amzn-codewhisperer-optout", "maybe"), ("amz-sdk-request", "attempt=1")]
    for name, value in bad:
        SIM.reset()
        ok(SIM, t, request_body("hi"), headers=dict(KIRO_HEADERS, **{name: value}))
        assert SIM.stats()["header_warnings_by_name"] == {name: 1}, (name, value, SIM.stats()["header_warnings_by_name"])
    with Sim("--strict-headers") as sim:
        t2 = refresh(sim, "sim-ok-strict")["accessToken"]
        ok(sim, t2, request_body("hi"))
        for name, value in bad:
            gen(sim, t2, request_body("hi"), headers=dict(KIRO_HEADERS, **{name: value}), expect=(400, MALFORMED))
            assert last_rule(sim) == "bad_header"
        gen(sim, t2, request_body("hi"), headers={}, expect=(400, MALFORMED))


def test_rule13_credential_types():
    # ksk_ without tokentype: API_KEY -> 403, with it: accepted without a profileArn
    for headers in (KIRO_HEADERS, dict(KIRO_HEADERS, tokentype="EXTERNAL_IDP")):
        gen(SIM, "ksk_sim-key1", request_body("hi", profile_arn=None), headers=headers, expect=(403, BEARER))
    key = dict(KIRO_HEADERS, tokentype="API_KEY")
    ok(SIM, "ksk_sim-key1", request_body("hi", profile_arn=None), headers=key)
    gen(SIM, "ksk_other-key", request_body("hi", profile_arn=None), headers=key, expect=(403, BEARER))
    st, doc = SIM.json("GET", "/getUsageLimits?origin=AI_EDITOR&resourceType=AGENTIC_REQUEST", token="ksk_sim-key1")
    assert (st, doc) == (403, BEARER)
    assert SIM.stats()["accounts"]["ksk_sim-key1"]["profile_arn"] == ""
    # external_idp: every data call needs tokentype: EXTERNAL_IDP
    st, ext = entra(SIM, "sim-extidp-cred")
    assert st == 200 and ext["token_type"] == "Bearer" and ext["expires_in"] == 3600 and "profileArn" not in ext, ext
    assert ext["refresh_token"] == "sim-extidp-cred" and ext["scope"] == "openid offline_access"
    tok = ext["access_token"]
    st, doc = profiles(SIM, tok, extra={"tokentype": "EXTERNAL_IDP"})
    arn = doc["profiles"][0]["arn"]
    gen(SIM, tok, request_body("hi", profile_arn=arn), expect=(403, BEARER))
    ok(SIM, tok, request_body("hi", profile_arn=arn), headers=dict(KIRO_HEADERS, tokentype="EXTERNAL_IDP"))
    assert SIM.request("GET", "/getUsageLimits?origin=AI_EDITOR", token=tok)[0] == 403
    assert SIM.request("GET", "/getUsageLimits?origin=AI_EDITOR", token=tok, headers={"tokentype": "EXTERNAL_IDP"})[0] == 200
    # the token endpoint's own rules
    assert entra(SIM, "sim-extidp-cred", scope="openid profile") == (400, {
        "error": "invalid_scope", "error_description": "The scope must include offline_access."})
    st, doc = entra(SIM, "sim-extidp-cred", grant_type="authorization_code")
    assert st == 400 and doc["error"] == "unsupported_grant_type"
    st, doc = entra(SIM, "sim-extidp-cred", ctype="application/json")
    assert st == 400 and doc["error"] == "invalid_request"
    st, doc = entra(SIM, "sim-ok-cred")
    assert st == 400 and doc["error"] == "invalid_grant"
    st, doc = SIM.json("POST", "/token", dict(IDC_CLIENT, refreshToken="sim-extidp-cred"))
    assert st == 401 and doc["error"] == "invalid_grant"


def test_rule13_aws_json_generate():
    t = refresh(SIM, "sim-ok-awsjson")["accessToken"]
    st, hd, data = aws_json(SIM, t, "AmazonCodeWhispererStreamingService.GenerateAssistantResponse", request_body("hi"))
    assert st == 200 and hd["content-type"] == "application/vnd.amazon.eventstream"
    assert_healthy_tail(parse_frames(data))
    st, _, data = aws_json(SIM, t, "AmazonCodeWhispererStreamingService.GenerateAssistantResponse", request_body("hi"),
                           region="eu-central-1")
    assert (st, json.loads(data)) == (400, MALFORMED), "the Social ARN is in us-east-1"
    st, _, data = SIM.request("POST", "/us-east-1/", request_body("hi"), token=t, headers=dict(
        KIRO_HEADERS, **{"Content-Type": "application/json",
                         "x-amz-target": "AmazonCodeWhispererStreamingService.GenerateAssistantResponse"}))
    assert (st, json.loads(data)) == (400, UNKNOWN_OP)
    for target in ("AmazonQDeveloperStreamingService.SendMessage", "AmazonCodeWhispererService.Nope", ""):
        st, _, data = aws_json(SIM, t, target, {})
        assert (st, json.loads(data)) == (400, UNKNOWN_OP), target
    st, _, data = SIM.request("POST", "/", {}, token=t, headers={"Content-Type": AWS_JSON})
    assert (st, json.loads(data)) == (400, UNKNOWN_OP)


def test_rule14_list_available_profiles():
    social = refresh(SIM, "sim-ok-prof")["accessToken"]
    assert profiles(SIM, social) == (200, {"profiles": [{"arn": SOCIAL_ARN, "profileName": "KiroProfile-us-east-1"}],
                                           "nextToken": None})
    assert profiles(SIM, social, region="eu-central-1") == (200, {"profiles": [], "nextToken": None})
    idc = idc_refresh(SIM, "sim-idc-prof")
    st, doc = profiles(SIM, idc)
    assert len(doc["profiles"]) == 1 and ":us-east-1:610548660232:" in doc["profiles"][0]["arn"]
    assert profiles(SIM, idc, region="eu-central-1") == (200, {"profiles": [], "nextToken": None})
    idceu = idc_refresh(SIM, "sim-idceu-prof")
    st, doc = profiles(SIM, idceu, region="eu-central-1")
    assert len(doc["profiles"]) == 1 and ":eu-central-1:610548660232:" in doc["profiles"][0]["arn"], doc
    assert doc["profiles"][0]["profileName"] == "KiroProfile-eu-central-1"
    assert profiles(SIM, idceu)[1]["profiles"] == []
    assert profiles(SIM, idc_refresh(SIM, "sim-builderid-prof")) == (403, NOT_AUTHORIZED)
    st, ext = entra(SIM, "sim-extidp-prof")
    assert profiles(SIM, ext["access_token"]) == (200, {"profiles": [], "nextToken": None})
    assert len(profiles(SIM, ext["access_token"], extra={"tokentype": "EXTERNAL_IDP"})[1]["profiles"]) == 1
    assert profiles(SIM, "ksk_sim-prof", extra={"tokentype": "API_KEY"}) == (200, {"profiles": [], "nextToken": None})
    assert profiles(SIM, social, body={"maxResults": 10, "bogus": 1}) == (400, MALFORMED)
    assert profiles(SIM, social, body={"maxResults": "10"}) == (400, MALFORMED)
    assert profiles(SIM, "bogus") == (403, BEARER)


def list_models(sim, token, region="us-east-1", max_results=50, via_json=False, profile_arn=None):
    """Follows nextToken; returns (pages, union of models)."""
    pages, models, next_token = [], [], None
    for _ in range(20):
        if via_json:
            req = {"origin": "AI_EDITOR"}
            if next_token:
                req["nextToken"] = next_token
            if profile_arn:
                req["profileArn"] = profile_arn
            st, _, data = aws_json(sim, token, "AmazonCodeWhispererService.ListAvailableModels", req, region)
            doc = json.loads(data)
        else:
            q = "origin=AI_EDITOR&maxResults=%d" % max_results
            if next_token:
                q += "&nextToken=" + urllib.parse.quote(next_token)
            if profile_arn:
                q += "&profileArn=" + urllib.parse.quote(profile_arn, safe="")
            st, doc = sim.json("GET", "/%s/ListAvailableModels?%s" % (region, q), token=token)
        assert st == 200, (st, doc)
        pages.append(doc)
        models += doc["models"]
        next_token = doc["nextToken"]
        if next_token is None:
            return pages, models
    raise AssertionError("nextToken never ended")


def test_rule14_list_available_models():
    t = refresh(SIM, "sim-ok-lam")["accessToken"]
    pages, models = list_models(SIM, t, profile_arn=SOCIAL_ARN)
    assert [m["modelId"] for m in models] == CATALOG
    assert len(pages) == 4 and all(len(p["models"]) <= 5 for p in pages) and len(pages[0]["models"]) == 5
    assert all(p["defaultModelId"] == "claude-sonnet-4.5" for p in pages)
    by_id = {m["modelId"]: m for m in models}
    for m in models:
        for key in ("modelName", "description", "supportedInputTypes", "tokenLimits", "promptCaching", "rateMultiplier"):
            assert key in m, (m["modelId"], key)
        assert m["rateUnit"] == "Credit" and set(m["tokenLimits"]) == {"maxInputTokens", "maxOutputTokens"}
    assert by_id["claude-opus-4.7"]["tokenLimits"]["maxInputTokens"] == 1000000
    assert by_id["claude-sonnet-4.5"]["tokenLimits"]["maxInputTokens"] == 200000
    assert by_id["claude-opus-4.7"]["additionalModelRequestFieldsSchema"] == {"type": "object", "properties": {"output_config": {
        "type": "object", "properties": {"effort": {"enum": ["low", "medium", "high", "xhigh", "max"]}}}}}
    assert "reasoning" in by_id["gpt-5.6-sol"]["additionalModelRequestFieldsSchema"]["properties"]
    assert "additionalModelRequestFieldsSchema" not in by_id["claude-sonnet-4.5"]
    assert by_id["claude-opus-4.7"]["promptCaching"]["supportsPromptCaching"] is True
    pages2, models2 = list_models(SIM, t, max_results=2)
    assert [m["modelId"] for m in models2] == CATALOG and all(len(p["models"]) <= 2 for p in pages2)
    assert [m["modelId"] for m in list_models(SIM, t, via_json=True)[1]] == CATALOG
    free = refresh(SIM, "sim-free-lam")["accessToken"]
    assert [m["modelId"] for m in list_models(SIM, free)[1]] == [
        m for m in CATALOG if "opus" not in m and not m.startswith("gpt")]
    for q in ("", "origin=NOPE", "origin=AI_EDITOR&maxResults=0", "origin=AI_EDITOR&maxResults=x",
              "origin=AI_EDITOR&nextToken=bogus", "origin=AI_EDITOR&nextToken=sim-models-999"):
        assert SIM.json("GET", "/ListAvailableModels?" + q, token=t) == (400, MALFORMED), q
    assert SIM.request("POST", "/ListAvailableModels?origin=AI_EDITOR", {}, token=t)[0] == 405
    # REST profileArn rules: the placeholder -> Invalid token (Builder ID accounts too), someone else's -> 403, region -> 400
    q = "/ListAvailableModels?origin=AI_EDITOR&profileArn="
    assert SIM.json("GET", q + urllib.parse.quote(BUILDER_ID_ARN, safe=""), token=t) == (403, INVALID_TOKEN)
    builder = idc_refresh(SIM, "sim-builderid-lam")
    assert SIM.json("GET", q + urllib.parse.quote(BUILDER_ID_ARN, safe=""), token=builder) == (403, INVALID_TOKEN)
    assert SIM.json("GET", "/getUsageLimits?origin=AI_EDITOR&profileArn=" + urllib.parse.quote(BUILDER_ID_ARN, safe=""),
                    token=builder) == (403, INVALID_TOKEN)
    assert SIM.json("GET", q + urllib.parse.quote(SOCIAL_EU_ARN, safe=""), token=t) == (403, NOT_AUTHORIZED)
    eu = refresh(SIM, "sim-socialeu-lam")["accessToken"]
    usage = "/getUsageLimits?origin=AI_EDITOR&resourceType=AGENTIC_REQUEST&isEmailRequired=true&profileArn="
    assert SIM.json("GET", "/us-east-1" + usage + urllib.parse.quote(SOCIAL_EU_ARN, safe=""), token=eu) == (400, MALFORMED)
    st, doc = SIM.json("GET", "/eu-central-1" + usage + urllib.parse.quote(SOCIAL_EU_ARN, safe=""), token=eu)
    assert st == 200 and doc["usageBreakdownList"][0]["resourceType"] == "CREDIT"
    assert SIM.json("GET", "/eu-central-1" + q + urllib.parse.quote(SOCIAL_EU_ARN, safe=""), token=eu)[0] == 200


def test_rule14_routes():
    t = refresh(SIM, "sim-ok-routes")["accessToken"]
    for path in ("/mcp", "/us-east-1/mcp", "/eu-central-1/mcp"):
        # web search (src/sim/mcp.c; tests/integration/test_web_search.py): without x-amzn-kiro-profile-arn, a 400
        st, _, data = SIM.request("POST", path, {"jsonrpc": "2.0"}, token=t)
        assert (st, json.loads(data)) == (400, {"message": "profileArn is required for this request."}), path
    ok(SIM, t, request_body("hi"))  # the unprefixed routes still serve us-east-1
    assert SIM.request("GET", "/getUsageLimits", token=t)[0] == 200
    assert SIM.request("GET", "/us-east-1/getUsageLimits", token=t)[0] == 200
    assert SIM.request("GET", "/us-east-1/nope", token=t)[0] == 404
    s = SIM.stats()["requests"]
    assert s["mcp"] >= 3 and s["ListAvailableProfiles"] >= 1


def test_rule15_account_states():
    expect = {
        "sim-exhausted-st": (402, MONTHLY),
        "sim-overage-st": (402, OVERAGE),
        "sim-429-st": (429, THROTTLED),
        "sim-suspended-st": (403, SUSPENDED),
        "sim-403-st": (403, BEARER),
        "sim-capacity-st": (429, CAPACITY),
        "sim-423-st": (423, LOCKED),
        "sim-suspicious-st": (429, {"message": "Due to suspicious activity, we are imposing temporary limits on how frequently "
                                    "your account (d-sim.sim-suspicious-st) can send a request to Kiro while we investigate. "
                                    "If you need assistance, please contact support at "
                                    "https://app.kiro.dev/account/usage?support_form.", "reason": None}),
    }
    for name, want in expect.items():
        gen(SIM, refresh(SIM, name)["accessToken"], request_body("hi"), expect=want)
    with Sim("--overage-status", "400", "--capacity-status", "400") as sim:
        gen(sim, refresh(sim, "sim-overage-st")["accessToken"], request_body("hi"), expect=(400, OVERAGE))
        gen(sim, refresh(sim, "sim-capacity-st")["accessToken"], request_body("hi"), expect=(400, CAPACITY))
    # the access token expires after expiresIn (sim-ttlN asks for N seconds)
    doc = refresh(SIM, "sim-ttl2-st")
    assert doc["expiresIn"] == 2
    ok(SIM, doc["accessToken"], request_body("hi"))
    time.sleep(2.3)
    gen(SIM, doc["accessToken"], request_body("hi"), expect=(403, BEARER))
    assert SIM.json("GET", "/getUsageLimits", token=doc["accessToken"]) == (403, BEARER)
    ok(SIM, refresh(SIM, "sim-ttl2-st")["accessToken"], request_body("hi"))
    assert refresh(SIM, "sim-ok-st")["expiresIn"] == 3600


def test_rule17_connection_statistics():
    a = refresh(SIM, "sim-ok-conn-a")["accessToken"]
    b = refresh(SIM, "sim-ok-conn-b")["accessToken"]
    a2 = refresh(SIM, "sim-ok-conn-a")["accessToken"]
    SIM.reset()

    def on_one_connection(tokens):
        c = http.client.HTTPConnection(SIM.host, SIM.port, timeout=30)
        try:
            for tok in tokens:
                c.request("GET", "/getUsageLimits", headers={"Authorization": "Bearer " + tok})
                r = c.getresponse()
                r.read()
                assert r.status == 200
        finally:
            c.close()

    on_one_connection([a, a, a])
    s = SIM.stats()
    assert (s["connections_multi_account"], s["max_accounts_per_connection"], s["connections_multi_token"],
            s["max_tokens_per_connection"]) == (0, 1, 0, 1), s
    on_one_connection([a, a2])  # two tokens of one account
    s = SIM.stats()
    assert (s["connections_multi_account"], s["max_accounts_per_connection"], s["connections_multi_token"]) == (0, 1, 1), s
    on_one_connection([a, b, a2])  # two accounts
    s = SIM.stats()
    assert (s["connections_multi_account"], s["max_accounts_per_connection"], s["connections_multi_token"],
            s["max_tokens_per_connection"]) == (1, 2, 2, 3), s
    for tok in (a, b):  # one connection each
        SIM.json("GET", "/getUsageLimits", token=tok)
    assert SIM.stats()["connections_multi_account"] == 1


def test_refresh_endpoints_by_auth_kind():
    for name in ("sim-idc-k", "sim-idceu-k", "sim-builderid-k", "sim-extidp-k", "ksk_sim-k"):
        st, doc = SIM.json("POST", "/refreshToken", {"refreshToken": name})
        assert (st, doc) == (401, {"message": "Invalid refresh token provided"}), name
    st, doc = SIM.json("POST", "/eu-central-1/token", dict(IDC_CLIENT, refreshToken="sim-idc-k"))
    assert st == 200 and set(doc) == {"accessToken", "expiresIn", "refreshToken", "tokenType"}, doc
    st, doc = SIM.json("POST", "/token", dict(IDC_CLIENT, refreshToken="sim-social-k"))
    assert st == 200 and "profileArn" not in doc
    assert refresh(SIM, "sim-social-k")["profileArn"] == SOCIAL_ARN
    assert SIM.json("POST", "/token", dict(IDC_CLIENT, refreshToken="ksk_sim-k"))[0] == 401
    s = SIM.stats()["accounts"]
    assert s["sim-builderid-k"]["profile_arn"] == BUILDER_ID_ARN and s["sim-idceu-k"]["region"] == "eu-central-1"


def test_legacy_2025_keeps_the_old_behaviour():
    with Sim("--legacy-2025") as sim:
        t = refresh(sim, "sim-ok-legacy")["accessToken"]
        body = request_body("hi", model="CLAUDE_SONNET_4_5_20250929_V1_0", profile_arn=None)
        st, data = gen(sim, t, body, headers={})
        assert st == 200 and sim.stats()["header_warnings"] == 0
        b = request_body("hi")
        b["additionalModelRequestFields"] = {}
        gen(sim, t, b, expect=(400, MALFORMED))
        gen(sim, t, sized_body(700000), expect=(400, TOO_LONG))
        assert sim.request("POST", "/us-east-1/generateAssistantResponse", body, token=t)[0] == 404
        assert sim.request("POST", "/", {}, token=t, headers={"Content-Type": AWS_JSON, "x-amz-target":
                                                             "AmazonCodeWhispererService.ListAvailableProfiles"})[0] == 404
        assert sim.request("POST", "/ListAvailableModels", {}, token=t)[0] == 200
        assert sim.json("GET", "/getUsageLimits", token="bogus") == (403, BEARER_2025)
        gen(sim, refresh(sim, "sim-403-legacy")["accessToken"], request_body("hi"), expect=(403, BEARER_2025))
        # the tool rules keep the 2025 body, and the 2026-only ones do not apply
        h = [hist_user("a"), hist_assistant("", [tool_use("tooluse_A")])]
        for rule, b in (("empty_tool_name", request_body("hi", tools=[tool_spec("")])),
                        ("tool_name_too_long", request_body("hi", tools=[tool_spec("a" * 65)])),
                        ("history_tools_without_tools", request_body("", history=h, tool_results=[tool_result("tooluse_A")])),
                        ("tool_result_orphan", request_body("", tools=[tool_spec("t")], history=h,
                                                            tool_results=[tool_result("tooluse_Z")]))):
            gen(sim, t, b, expect=(400, MALFORMED))
            assert sim.stats()["last_rejection"] == rule, (sim.stats()["last_rejection"], rule)
        for b in (request_body("hi", tools=[tool_spec("mcp.x", description="", schema={"anyOf": []})]),
                  request_body("next", tools=[tool_spec("t")], history=h)):
            assert gen(sim, t, b)[0] == 200
    t = refresh(SIM, "sim-ok-legacy")["accessToken"]
    gen(SIM, t, request_body("hi", model="CLAUDE_SONNET_4_5_20250929_V1_0"), expect=(400, BAD_MODEL))


def main():
    global SIM
    with Sim() as sim:
        SIM = sim
        run_tests([test_help_documents_the_2026_rules, test_rule1_body_bytes_and_token_estimate,
                   test_rule2_profile_arn_required, test_rule3_profile_arn_of_another_account,
                   test_rule4_region_of_the_arn_and_the_host, test_rule5_shape, test_rule6_models_and_tiers,
                   test_rule7_tool_schema_root, test_rule8_tool_names_and_descriptions, test_rule9_tool_use_result_mismatch,
                   test_rule10_tool_config_missing, test_rule11_conversation_rules, test_rule12_additional_model_request_fields, test_rule13_headers_warn_by_default, test_rule13_credential_types,
                   test_rule13_aws_json_generate, test_rule14_list_available_profiles, test_rule14_list_available_models,
                   test_rule14_routes, test_rule15_account_states, test_rule17_connection_statistics,
                   test_refresh_endpoints_by_auth_kind, test_legacy_2025_keeps_the_old_behaviour])


if __name__ == "__main__":
    main()
