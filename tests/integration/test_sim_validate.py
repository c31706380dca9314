"""kiro-sim's strict validation of generateAssistantResponse bodies in its 2025 mode (--legacy-2025): well-formed
requests are accepted, and each shape Kiro rejects gets Kiro's exact status and body. Every rule of src/sim/validate.c
has a case here; the 2026-only rules are in test_sim_2026.py."""
import copy
import json

from sim_util import Sim, hist_assistant, hist_user, parse_frames, request_body, run_tests, tool_spec, user_message

MALFORMED = {"message": "Improperly formed request.", "reason": None}
TOO_LONG = {"message": "Input is too long.", "reason": "CONTENT_LENGTH_EXCEEDS_THRESHOLD"}
BAD_MODEL = {"message": "Invalid model. Please select a different model to continue.", "reason": "INVALID_MODEL_ID"}
BEARER = {"message": "The bearer token included in the request is invalid.", "reason": None}

SIM = None
TOKEN = None
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def full_request():
    """The docs/kiro-protocol.md §2.2 example in its [REC] form (no nulls), plus profileArn, an image and isError."""
    weather = tool_spec("get_weather", "Get weather", {"type": "object", "properties": {"city": {"type": "string"}},
                                                       "required": ["city"], "default": None})
    history = [
        hist_user("You are helpful."),
        hist_assistant("OK"),
        hist_user("Weather in Paris?"),
        hist_assistant("Let me check.", [{"toolUseId": "tooluse_abc", "name": "GET_WEATHER", "input": {"city": "Paris"}},
                                         {"toolUseId": "tooluse_def", "name": "get_weather", "input": {"x": None}}]),
    ]
    results = [{"toolUseId": "tooluse_abc", "content": [{"text": "18°C sunny"}], "status": "success"},
               {"toolUseId": "tooluse_def", "content": [{"json": {"err": None}}], "status": "error", "isError": True}]
    body = request_body("", model="CLAUDE_SONNET_4_20250514_V1_0", tools=[weather], tool_results=results, history=history,
                        images=[{"format": "png", "source": {"bytes": PNG}}])
    body["profileArn"] = "arn:aws:codewhisperer:us-east-1:699475941385:profile/EHGA3GRVQMUK"
    return body


def check(body, status, expect, rule=None):
    st, _, data = SIM.generate(TOKEN, body)
    assert st == status, (st, data, rule)
    if expect is not None:
        assert json.loads(data) == expect, (data, rule)
    if rule is not None:
        stats = SIM.stats()
        assert stats["last_rejection"] == rule, (stats["last_rejection"], rule)
    return data


def accepted(body):
    data = check(body, 200, None)
    assert parse_frames(data)[-1].event_type == "meteringEvent"


def rejected(rule, mutate, expect=MALFORMED, base=None):
    body = copy.deepcopy(base if base is not None else full_request())
    mutate(body)
    check(body, 400, expect, rule)


def cs(body):
    return body["conversationState"]


def cur(body):
    return cs(body)["currentMessage"]["userInputMessage"]


def test_good_requests_accepted():
    accepted(request_body("hello"))
    accepted(full_request())
    for model in ("CLAUDE_SONNET_4_5_20250929_V1_0", "CLAUDE_3_7_SONNET_20250219_V1_0", "auto", "claude-sonnet-4.5",
                  "claude-opus-4.6", "claude-haiku-4.5"):
        accepted(request_body("hi", model=model))
    b = full_request()  # empty assistant content is fine next to toolUses (real IDE capture)
    cs(b)["history"][3]["assistantResponseMessage"]["content"] = ""
    accepted(b)
    b = request_body("", images=[{"format": "jpeg", "source": {"bytes": "/9j/4AAQ"}}])  # image only
    accepted(b)
    b = request_body("x" * 100, tools=[tool_spec("t" * 64, "d" * 10000)])  # limits are inclusive
    accepted(b)
    del cs(b)["agentContinuationId"], cs(b)["agentTaskType"], cs(b)["conversationId"]
    del cur(b)["modelId"], cur(b)["origin"], cur(b)["images"], cur(b)["userInputMessageContext"]
    accepted(b)


def test_history_order():
    rejected("history_alternation", lambda b: cs(b)["history"].insert(1, hist_user("again")))
    rejected("history_alternation", lambda b: cs(b)["history"].insert(2, hist_assistant("twice")))
    rejected("history_alternation", lambda b: cs(b).update(history=[hist_assistant("first"), hist_user("u")]))
    rejected("history_ends_with_user", lambda b: cs(b)["history"].append(hist_user("dangling")))
    rejected("history_entry", lambda b: cs(b)["history"].__setitem__(0, {}))
    rejected("history_entry", lambda b: cs(b)["history"][0].update(hist_assistant("both")))


def test_tool_pairing():
    rejected("tool_result_orphan", lambda b: cur(b)["userInputMessageContext"]["toolResults"][0].update(toolUseId="tooluse_zzz"))
    rejected("tool_result_orphan", lambda b: cs(b).update(history=cs(b)["history"][:2]))
    rejected("tool_result_orphan", lambda b: cs(b).pop("history"))
    # a history user turn whose toolResult does not answer the assistant right before it
    def hist_orphan(b):
        h = cs(b)["history"]
        h[2]["userInputMessage"]["userInputMessageContext"] = {
            "toolResults": [{"toolUseId": "tooluse_abc", "content": [{"text": "x"}], "status": "success"}]}
    rejected("tool_result_orphan", hist_orphan)
    def dup(b):
        r = cur(b)["userInputMessageContext"]["toolResults"]
        r[1]["toolUseId"] = r[0]["toolUseId"]
    rejected("tool_result_duplicate", dup)
    def dup_use(b):
        uses = cs(b)["history"][3]["assistantResponseMessage"]["toolUses"]
        uses[1]["toolUseId"] = uses[0]["toolUseId"]
    rejected("duplicate_tool_use", dup_use)


def test_tools_rules():
    rejected("history_tools_without_tools", lambda b: cur(b)["userInputMessageContext"].pop("tools"))
    rejected("history_tools_without_tools", lambda b: cur(b)["userInputMessageContext"].update(tools=[]))
    rejected("history_tool_unknown",
             lambda b: cur(b)["userInputMessageContext"]["tools"][0]["toolSpecification"].update(name="other"))
    # A client tool whose name ends in a date is an ordinary tool, not a server tool (the fuzz_anthropic_req finding)
    def dated_name(b):
        cur(b)["userInputMessageContext"]["tools"].append(tool_spec("lookup_20250101"))
    body = full_request()
    dated_name(body)
    accepted(body)
    rejected("server_tool", lambda b: cur(b)["userInputMessageContext"]["tools"].append(tool_spec("web_search")))
    rejected("unknown_field", lambda b: cur(b)["userInputMessageContext"]["tools"].append(
        {"type": "web_search_20250305", "name": "web_search", "max_uses": 8}))
    rejected("unknown_field", lambda b: cur(b)["userInputMessageContext"]["tools"][0]["toolSpecification"].update(
        type="web_search_20250305"))
    rejected("tool_name_too_long", lambda b: cur(b)["userInputMessageContext"]["tools"].append(tool_spec("n" * 65)))
    rejected("tool_description_too_long",
             lambda b: cur(b)["userInputMessageContext"]["tools"].append(tool_spec("long", "é" * 10001)))
    rejected("empty_tool_name", lambda b: cur(b)["userInputMessageContext"]["tools"].append(tool_spec("")))
    rejected("unknown_field", lambda b: cur(b)["userInputMessageContext"]["tools"].append({"cachePoint": {"type": "default"}}))


def test_unknown_fields_and_nulls():
    rejected("unknown_field", lambda b: cur(b).update(cache_control={"type": "ephemeral"}))
    rejected("unknown_field", lambda b: cs(b).update(additionalModelRequestFields={"thinking": {}}))
    rejected("unknown_field", lambda b: b.update(inferenceConfiguration={"maxTokens": 10}))
    rejected("unknown_field", lambda b: cur(b)["userInputMessageContext"]["toolResults"][0]["content"][0].update(type="text"))
    rejected("unknown_field", lambda b: cs(b)["history"][1]["assistantResponseMessage"].update(cache_control={}))
    rejected("null_value", lambda b: cs(b).update(history=None))
    rejected("null_value", lambda b: cs(b)["history"][1]["assistantResponseMessage"].update(toolUses=None))
    rejected("null_value", lambda b: cur(b).update(modelId=None))
    rejected("null_value", lambda b: cur(b).update(userInputMessageContext=None))
    rejected("null_value", lambda b: b.update(profileArn=None))
    st, _, data = SIM.generate(TOKEN, json.dumps(request_body("a"))[:-1] + ',"conversationState":{}}')
    assert st == 400 and json.loads(data) == MALFORMED and SIM.stats()["last_rejection"] == "duplicate_field"


def test_types_and_required():
    rejected("wrong_type", lambda b: cur(b).update(content=5))
    rejected("wrong_type", lambda b: cs(b).update(history={}))
    rejected("wrong_type", lambda b: cur(b)["userInputMessageContext"]["toolResults"][0]["content"][0].update(json=1))
    rejected("wrong_type", lambda b: cs(b)["history"][3]["assistantResponseMessage"]["toolUses"][0].update(input="{}"))
    rejected("missing_field", lambda b: cur(b).pop("content"))
    rejected("missing_field", lambda b: cs(b).pop("chatTriggerType"))
    rejected("missing_field", lambda b: b.pop("conversationState"))
    rejected("bad_enum", lambda b: cs(b).update(chatTriggerType="SOMETIMES"))
    rejected("bad_enum", lambda b: cur(b)["userInputMessageContext"]["toolResults"][0].update(status="ok"))
    rejected("bad_enum", lambda b: cur(b).update(images=[{"format": "bmp", "source": {"bytes": "Qk0="}}]))
    rejected("empty_image", lambda b: cur(b).update(images=[{"format": "png", "source": {"bytes": ""}}]))
    for raw, rule in ((b"", "json_syntax"), (b"{", "json_syntax"), (b"[1]", "wrong_type"), (b"\xff\xfe{}", "json_syntax"),
                      (b"[" * 200 + b"]" * 200, "json_depth"),
                      (json.dumps(request_body("hi")).encode()[:-1] + b"/* c */}", "json_syntax"),
                      (json.dumps(request_body("hi")).encode() + b"x", "json_syntax")):
        st, _, data = SIM.generate(TOKEN, raw)
        assert st == 400 and json.loads(data) == MALFORMED and SIM.stats()["last_rejection"] == rule, (raw[:10], data)


def test_empty_content():
    rejected("empty_user_content", lambda b: cur(b).update(content=""), base=request_body("x"))
    rejected("empty_user_content", lambda b: cur(b).update(content=" \n\t "), base=request_body("x"))
    rejected("empty_user_content", lambda b: cs(b)["history"][2]["userInputMessage"].update(content=""))
    rejected("empty_assistant_message", lambda b: cs(b)["history"][1]["assistantResponseMessage"].update(content=" "))


def test_model_ids():
    rejected("model_unknown", lambda b: cur(b).update(modelId="claude-sonnet-4-20250514"), expect=BAD_MODEL)
    rejected("model_unknown", lambda b: cs(b)["history"][0]["userInputMessage"].update(modelId="gpt-4"), expect=BAD_MODEL)


def test_payload_limit():
    body = request_body("x")
    base = len(json.dumps(body).encode())
    body = request_body("x" * (600000 - base + 1))
    assert len(json.dumps(body).encode()) == 600000
    check(body, 200, None)
    body = request_body("x" * (600000 - base + 2))
    check(body, 400, TOO_LONG, "payload_too_large")


def test_bearer_required():
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic " + TOKEN}, {"Authorization": TOKEN}):
        st, _, data = SIM.request("POST", "/generateAssistantResponse", request_body("hi"), headers=headers)
        assert st == 403 and json.loads(data) == BEARER, (headers, data)
    # the bearer is checked before the body: a malformed body with a bad token is still a 403
    st, _, data = SIM.request("POST", "/generateAssistantResponse", b"{", headers={"Authorization": "Bearer x"})
    assert st == 403


def test_flags_change_limits():
    global SIM, TOKEN
    saved = SIM, TOKEN
    with Sim("--legacy-2025", "--max-payload", "2000", "--max-tool-description", "50", "--model", "my-model") as sim:
        SIM, TOKEN = sim, sim.refresh("sim-ok-flags")
        try:
            check(request_body("x" * 1900), 400, TOO_LONG, "payload_too_large")
            check(request_body("hi", tools=[tool_spec("t", "d" * 51)]), 400, MALFORMED, "tool_description_too_long")
            accepted(request_body("hi", tools=[tool_spec("t", "d" * 50)]))
            accepted(request_body("hi", model="my-model"))
            st, doc = sim.json("POST", "/ListAvailableModels", token=TOKEN)
            assert "my-model" in [m["modelId"] for m in doc["models"]]
        finally:
            SIM, TOKEN = saved


def test_rejection_counters():
    SIM.reset()
    rejected("unknown_field", lambda b: cur(b).update(cache_control={}))
    rejected("unknown_field", lambda b: cur(b).update(cache_control={}))
    rejected("null_value", lambda b: cs(b).update(history=None))
    s = SIM.stats()
    assert s["rejections"] == 3 and s["rejections_by_rule"] == {"unknown_field": 2, "null_value": 1}, s
    assert s["accounts"]["sim-ok-validate"]["generates"] == 3 and s["accounts"]["sim-ok-validate"]["generate_ok"] == 0


def main():
    global SIM, TOKEN
    with Sim("--legacy-2025") as sim:
        SIM = sim
        TOKEN = sim.refresh("sim-ok-validate")
        run_tests([test_good_requests_accepted, test_history_order, test_tool_pairing, test_tools_rules,
                   test_unknown_fields_and_nulls, test_types_and_required, test_empty_content, test_model_ids,
                   test_payload_limit, test_bearer_required, test_flags_change_limits, test_rejection_counters])


if __name__ == "__main__":
    main()
