"""Helpers shared by the gateway-level e2e tests (test_e2e_*.py, test_client_*.py): an Anthropic SSE checker that
enforces the event grammar a client relies on, golden-file normalisation, pollers on /sim/stats and /api/tokens, and
a context manager for a throw-away gateway on a shared simulator. Standard library only; loopback only."""
import contextlib
import json
import re
import time

from k2a import CLIENT_KEY, SLOW, Gateway, parse_sse, request, sim_accounts_env

MODEL = "claude-sonnet-4-5"
PHRASE = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
SIM_THINKING = "The user wants a short answer. I will reply directly."


def gentext(frames, size):
    """The text of [[sim:text frames=N size=S]]."""
    n = frames * size
    return (PHRASE * (n // len(PHRASE) + 1))[:n]


def body(content, stream=True, model=MODEL, **extra):
    b = {"model": model, "max_tokens": 1024, "stream": stream, "messages": [{"role": "user", "content": content}]}
    b.update(extra)
    return b


def post(gw, b, path="/v1/messages", **kw):
    return request(gw.port, "POST", path, body=b, key=CLIENT_KEY, **kw)


def check_sse(tc, data):
    """Parses an Anthropic SSE body and asserts its grammar: one message_start first, blocks opened and closed in order
    with consecutive indices, deltas only inside their open block and of the block's kind, then message_delta +
    message_stop, or one error event last. Returns the list of (event, parsed data)."""
    evs = [(e, json.loads(d)) for e, d in parse_sse(data)]
    tc.assertTrue(evs, "empty stream")
    tc.assertEqual(evs[0][0], "message_start", evs[:3])
    kinds = {"text": "text_delta", "thinking": ("thinking_delta", "signature_delta"), "tool_use": "input_json_delta"}
    open_idx, open_kind, next_idx, ended = None, None, 0, None
    for i, (e, d) in enumerate(evs):
        tc.assertIsNone(ended, "event %r after %s" % (e, ended))
        tc.assertEqual(d.get("type"), e, d)
        if e == "message_start":
            tc.assertEqual(i, 0, "a second message_start")
            m = d["message"]
            tc.assertTrue(re.match(r"^msg_[A-Za-z0-9]{24}$", m["id"]), m["id"])
            tc.assertEqual((m["type"], m["role"], m["content"], m["stop_reason"]), ("message", "assistant", [], None))
        elif e == "content_block_start":
            tc.assertIsNone(open_idx, "block %d opened inside block %s" % (d["index"], open_idx))
            tc.assertEqual(d["index"], next_idx)
            open_idx, open_kind, next_idx = d["index"], d["content_block"]["type"], next_idx + 1
        elif e == "content_block_delta":
            tc.assertEqual(d["index"], open_idx, d)
            want = kinds[open_kind]
            tc.assertIn(d["delta"]["type"], want if isinstance(want, tuple) else (want,))
        elif e == "content_block_stop":
            tc.assertEqual(d["index"], open_idx, d)
            open_idx = None
        elif e == "message_delta":
            tc.assertIsNone(open_idx, "message_delta with block %s open" % open_idx)
            tc.assertIn(d["delta"]["stop_reason"], ("end_turn", "tool_use", "max_tokens", "stop_sequence",
                                                    "model_context_window_exceeded", "refusal"))
        elif e == "message_stop":
            tc.assertEqual(evs[i - 1][0], "message_delta")
            ended = "message_stop"
        elif e == "error":
            tc.assertIn(d["error"]["type"], ("api_error", "overloaded_error", "rate_limit_error", "invalid_request_error"))
            tc.assertTrue(d["error"]["message"])
            ended = "error"
        else:
            tc.assertEqual(e, "ping", d)
    tc.assertIsNotNone(ended, "the stream ended without message_stop or error: %r" % evs[-3:])
    return evs


def sse_summary(evs):
    """(blocks, stop_reason, usage, error): blocks as dicts {type, text|thinking|signature|input(parsed), id, name}."""
    blocks, stop, usage, error = [], None, None, None
    for e, d in evs:
        if e == "content_block_start":
            b = dict(d["content_block"])
            b.pop("text", None), b.pop("thinking", None)
            b.update({"_text": "", "_json": "", "_sig": ""})
            blocks.append(b)
        elif e == "content_block_delta":
            dl = d["delta"]
            if dl["type"] in ("text_delta", "thinking_delta"):
                blocks[-1]["_text"] += dl.get("text", dl.get("thinking", ""))
            elif dl["type"] == "signature_delta":
                blocks[-1]["_sig"] += dl["signature"]
            else:
                blocks[-1]["_json"] += dl["partial_json"]
        elif e == "message_delta":
            stop, usage = d["delta"]["stop_reason"], d["usage"]
        elif e == "error":
            error = d["error"]
    out = []
    for b in blocks:
        if b["type"] == "text":
            out.append({"type": "text", "text": b["_text"]})
        elif b["type"] == "thinking":
            out.append({"type": "thinking", "thinking": b["_text"], "signature": b["_sig"]})
        else:
            out.append({"type": "tool_use", "id": b["id"], "name": b["name"],
                        "input": json.loads(b["_json"]) if b["_json"] else {}})
    return out, stop, usage, error


_ID = re.compile(r'"id":"msg_[A-Za-z0-9]{24}"')
_IN = re.compile(r'"input_tokens":\d+')


def normalise(text):
    """Replaces the random message id and the input-token estimate (which depends on the request) by fixed values."""
    if isinstance(text, bytes):
        text = text.decode()
    return _IN.sub('"input_tokens":N', _ID.sub('"id":"msg_ID"', text))


def wait_until(tc, what, fn, timeout=20):
    """Polls fn() until it returns a true value (returned); fails the test with `what` after timeout*SLOW seconds."""
    deadline = time.time() + timeout * SLOW
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    tc.fail("timed out waiting for %s (last: %r)" % (what, last))


def tokens(gw, key=CLIENT_KEY):
    st, _, data = request(gw.port, "GET", "/api/tokens", key=key)
    assert st == 200, (st, data)
    return json.loads(data)


def wait_accounts(tc, gw, states, timeout=20):
    """Waits until /api/tokens lists exactly these account states (and every "ok" account holds an access token)."""
    def ok():
        t = tokens(gw)["tokens"]
        return [a["state"] for a in t] == list(states) and all(a["expires_at"] for a in t if a["state"] == "ok") and t
    return wait_until(tc, "account states %s" % (states,), ok, timeout)


def sim_account(sim, name):
    return sim.stats()["accounts"].get(name, {})


@contextlib.contextmanager
def gateway(tc, sim, accounts, extra=None, check_exit=True, **kw):
    """A gateway on `sim` with these accounts, stopped (and checked for a clean exit) when the block ends."""
    gw = Gateway(env=sim_accounts_env(sim, accounts, extra), **kw)
    try:
        yield gw
        if check_exit:
            gw.assert_clean_exit(tc)
    finally:
        gw.cleanup()
