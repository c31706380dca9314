"""kiro-sim's whole-reply path: a reply without pacing, fault, status, replay or keep-open directive is encoded once,
cached, and written in one piece. Its bytes must be exactly those of the frame-by-frame path (a second kiro-sim run
with --frame-writes), on the first request and on a cached one; paced replies still go out one frame per write; the
account's counters and the contextUsagePercentage (from the body's length) stay per request."""
import json
import socket

from sim_util import KIRO_HEADERS, Sim, assert_healthy_tail, parse_frames, request_body, run_tests, text_of

FAST = None
SLOW = None
FAST_TOKEN = None
SLOW_TOKEN = None

PLAIN_REPLIES = [
    "hello there",
    "[[sim:text frames=20 size=16]]",
    '[[sim:text text="caf\\u00e9 \\"quoted\\" and a\\nnewline"]]',
    '[[sim:tool name=Bash input={"command":"ls -la","description":"list"} pieces=4]]',
    '[[sim:thinking text="let me think"]] [[sim:text text="done"]]',
    "[[sim:reasoning text=abc signature=sig1]] [[sim:text frames=3 size=8]]",
    "[[sim:usage credits=0.5 context=12.5]] [[sim:tokenusage in=10 out=20 cacheread=3 cachewrite=4]] hi",
    "[[sim:filtered after=2]] [[sim:text frames=10 size=8]]",
    "[[sim:stop reason=MAX_TOKENS]] [[sim:text frames=2 size=8]]",
    '[[sim:cuttool name=Write input={"path":"a.txt"} pieces=2]]',
]


def raw_generate(sim, token, body):
    """POST over a raw HTTP/1.1 socket; returns the list of chunk sizes of the chunked body and the joined body."""
    payload = json.dumps(body).encode()
    head = "POST /generateAssistantResponse HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer %s\r\n" % token
    head += "".join("%s: %s\r\n" % kv for kv in KIRO_HEADERS.items() if kv[0].lower() != "content-length")
    head += "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
    s = socket.create_connection((sim.host, sim.port), timeout=30)
    try:
        s.sendall(head.encode() + payload)
        data = b""
        while not data.endswith(b"\r\n0\r\n\r\n"):
            got = s.recv(65536)
            assert got, "connection closed early: %r" % data[-200:]
            data += got
    finally:
        s.close()
    status_line, _, rest = data.partition(b"\r\n")
    assert b" 200 " in status_line, status_line
    _, _, rest = rest.partition(b"\r\n\r\n")
    sizes, body = [], b""
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return sizes, body
        sizes.append(n)
        body += rest[:n]
        rest = rest[n + 2:]


def test_bytes_match_frame_by_frame():
    for text in PLAIN_REPLIES:
        body = request_body(text)
        st, _, slow = SLOW.generate(SLOW_TOKEN, body)
        assert st == 200, (text, slow[:300])
        for attempt in ("first", "cached"):
            st, hdrs, fast = FAST.generate(FAST_TOKEN, body)
            assert st == 200 and hdrs["content-type"] == "application/vnd.amazon.eventstream", (text, st, hdrs)
            assert fast == slow, (text, attempt, fast[:200], slow[:200])
        frames = parse_frames(fast)
        if "cuttool" in text:
            assert frames[-1].event_type == "toolUseEvent", frames
        elif "tokenusage" in text:
            assert frames[-3].json()["tokenUsage"]["totalTokens"] == 37 and frames[-1].event_type == "meteringEvent"
        else:
            assert_healthy_tail(frames)


def test_one_write_when_plain_one_per_frame_when_paced():
    sizes, body = raw_generate(FAST, FAST_TOKEN, request_body("[[sim:text frames=20 size=16]]"))
    frames = parse_frames(body)
    assert len(frames) == 23 and len(text_of(frames)) == 320, frames
    assert len(sizes) == 1, sizes  # the whole reply in one chunk: one write
    sizes, body = raw_generate(FAST, FAST_TOKEN, request_body("[[sim:drip ms=100]] [[sim:text frames=3 size=16]]"))
    assert len(parse_frames(body)) == 6 and len(sizes) == 6, sizes  # paced: one chunk per frame, as before
    sizes, body = raw_generate(SLOW, SLOW_TOKEN, request_body("[[sim:text frames=20 size=16]]"))
    assert len(sizes) == 23, sizes  # --frame-writes keeps every reply frame by frame


def test_counters_and_context_per_request():
    FAST.reset()
    token = FAST.refresh("sim-ok-fastcount")
    body = request_body("[[sim:usage credits=0.25]] [[sim:text frames=2 size=8]]")
    for _ in range(3):
        st, _, data = FAST.generate(token, body)
        assert st == 200
    s = FAST.stats()
    acct = s["accounts"]["sim-ok-fastcount"]
    assert acct["generate_ok"] == 3 and abs(acct["used_credits"] - 0.75) < 1e-9, acct
    assert s["open_streams"] == 0 and s["streams_total"] >= 3, s
    # the same user text in a longer body: the default contextUsagePercentage follows the body, not the cache
    pct = []
    for pad in (0, 40000):
        b = request_body("same text for both", tools=None)
        b["conversationState"]["history"] = [] if pad == 0 else [
            {"userInputMessage": {"content": "x" * pad, "modelId": "claude-sonnet-4.5", "origin": "AI_EDITOR"}},
            {"assistantResponseMessage": {"content": "ok"}}]
        st, _, data = FAST.generate(token, b)
        assert st == 200, data[:300]
        pct.append(parse_frames(data)[-2].json()["contextUsagePercentage"])
    assert pct[1] > pct[0], pct
    # directive errors are still answered, and not cached as replies
    for _ in range(2):
        st, _, data = FAST.generate(token, request_body("[[sim:nosuchdirective]]"))
        assert st == 400 and b"SIM_DIRECTIVE" in data, (st, data)


def main():
    global FAST, SLOW, FAST_TOKEN, SLOW_TOKEN
    with Sim() as fast, Sim("--frame-writes") as slow:
        FAST, SLOW = fast, slow
        FAST_TOKEN = fast.refresh("sim-ok-fast")
        SLOW_TOKEN = slow.refresh("sim-ok-fast")
        run_tests([test_bytes_match_frame_by_frame, test_one_write_when_plain_one_per_frame_when_paced,
                   test_counters_and_context_per_request])


if __name__ == "__main__":
    main()
