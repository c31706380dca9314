#!/usr/bin/env python3
"""Rewrites an OpenAI Chat Completions request body as the equivalent OpenAI Responses API body (the mapping of
src/convert/responses_req.h read backwards): system/developer messages become message items (a leading system string
becomes `instructions`), parts become input_text/input_image/output_text, reasoning_content a reasoning item,
tool_calls function_call items, tool messages function_call_output items; tools are flattened, response_format becomes
text.format, reasoning_effort reasoning.effort, max(_completion)_tokens max_output_tokens.

Used to write tests/vectors/convert/responses_<case>.in.json from openai_<case>.in.json (whose .kiro.json the
Responses case must then equal) and by tests/integration/test_dialect_equivalence.py.
    python3 tests/vectors/chat_to_responses.py < openai_x.in.json > responses_x.in.json"""
import json
import sys


def part(p, assistant):
    if p.get("type") == "text":
        return {"type": "output_text" if assistant else "input_text", "text": p["text"]}
    if p.get("type") == "image_url":
        url = p["image_url"]["url"] if isinstance(p["image_url"], dict) else p["image_url"]
        return {"type": "input_image", "image_url": url, "detail": "auto"}
    return p


def content(c, assistant=False):
    if isinstance(c, list):
        return [part(p, assistant) for p in c]
    return c


def convert(chat):
    out = {"model": chat["model"]}
    items = []
    msgs = chat.get("messages", [])
    if msgs and msgs[0]["role"] == "system" and isinstance(msgs[0]["content"], str):
        out["instructions"] = msgs[0]["content"]
        msgs = msgs[1:]
    for m in msgs:
        role = m["role"]
        if role in ("system", "developer", "user"):
            items.append({"type": "message", "role": role, "content": content(m["content"])})
        elif role == "assistant":
            if m.get("reasoning_content"):
                items.append({"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": m["reasoning_content"]}]})
            c = m.get("content")
            if c:
                c = [{"type": "output_text", "text": c, "annotations": []}] if isinstance(c, str) else content(c, True)
                items.append({"type": "message", "role": "assistant", "status": "completed", "content": c})
            for tc in m.get("tool_calls") or []:
                items.append({"type": "function_call", "id": "fc_" + tc["id"], "call_id": tc["id"], "name": tc["function"]["name"],
                              "arguments": tc["function"]["arguments"] if isinstance(tc["function"].get("arguments"), str)
                              else json.dumps(tc["function"].get("arguments", {}))})
        elif role == "tool":
            c = m.get("content")
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"],
                          "output": c if isinstance(c, str) else content(c)})
        else:
            raise ValueError("no Responses form for role " + role)
    out["input"] = items
    if "tools" in chat:
        tools = []
        for t in chat["tools"]:
            f = dict(t["function"])
            f["type"] = "function"
            tools.append(f)
        out["tools"] = tools
    tc = chat.get("tool_choice")
    if isinstance(tc, dict):
        out["tool_choice"] = {"type": "function", "name": tc["function"]["name"]}
    elif tc is not None:
        out["tool_choice"] = tc
    rf = chat.get("response_format")
    if rf:
        fmt = {"type": rf["type"]}
        if rf["type"] == "json_schema":
            fmt.update(rf["json_schema"])
        out["text"] = {"format": fmt}
    if "reasoning_effort" in chat:
        out["reasoning"] = {"effort": chat["reasoning_effort"]}
    mt = chat.get("max_completion_tokens", chat.get("max_tokens"))
    if mt is not None:
        out["max_output_tokens"] = mt
    for k in ("temperature", "top_p", "stream"):
        if k in chat:
            out[k] = chat[k]
    return out


if __name__ == "__main__":
    json.dump(convert(json.load(sys.stdin)), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
