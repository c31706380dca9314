"""kiro-sim's /sim/sse (the benchmark's pure-proxy baseline): the Anthropic event sequence the gateway sends for
[[sim:text frames=N size=S]], the same text as the directive's Kiro frames, one HTTP chunk per text frame, GET and POST,
bad parameters refused, and the endpoint counted in /sim/stats. Starts kiro-sim (K2A_SIM) on a loopback port."""
import json
import re
import socket

from sim_util import Sim, parse_frames, request_body, run_tests, text_of

SIM = None
TOKEN = None


def parse_sse(data):
    events = []
    for block in data.decode().split("\n\n"):
        if block.strip():
            lines = block.split("\n")
            assert lines[0].startswith("event: ") and lines[1].startswith("data: "), block
            events.append((lines[0][7:], json.loads(lines[1][6:])))
    return events


def raw_chunks(method, path, body=b""):
    """Sends one HTTP/1.1 request on a raw socket; returns (head, list of chunk payloads)."""
    s = socket.create_connection((SIM.host, SIM.port), timeout=10)
    try:
        req = "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % (method, path, len(body))
        s.sendall(req.encode() + body)
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    finally:
        s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    chunks = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        n = int(size_line, 16)
        if n == 0:
            break
        chunks.append(rest[:n])
        assert rest[n:n + 2] == b"\r\n"
        rest = rest[n + 2:]
    return head, chunks


def test_event_sequence_and_text_match_the_directive():
    status, headers, data = SIM.request("GET", "/sim/sse?frames=20&size=16")
    assert status == 200, data
    assert headers["content-type"] == "text/event-stream; charset=utf-8", headers
    events = parse_sse(data)
    names = [e for e, _ in events]
    assert names == ["message_start", "ping", "content_block_start"] + ["content_block_delta"] * 20 + [
        "content_block_stop", "message_delta", "message_stop"], names
    assert all(d["type"] == e for e, d in events)
    assert events[0][1]["message"]["id"].startswith("msg_") and len(events[0][1]["message"]["id"]) == 28
    texts = [d["delta"]["text"] for e, d in events if e == "content_block_delta"]
    assert all(len(t) == 16 for t in texts)
    # the same text the gateway would forward for [[sim:text frames=20 size=16]]
    st, _, kiro = SIM.generate(TOKEN, request_body("[[sim:text frames=20 size=16]]"))
    assert st == 200
    assert "".join(texts) == text_of(parse_frames(kiro))
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_one_chunk_per_text_frame_get_and_post():
    for method, body in (("GET", b""), ("POST", b'{"ignored": true}')):
        head, chunks = raw_chunks(method, "/sim/sse?size=5&frames=7", body)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert len(chunks) == 7, [len(c) for c in chunks]
        assert chunks[0].startswith(b"event: message_start\n") and b"content_block_delta" in chunks[0]
        assert all(c.startswith(b"event: content_block_delta\n") for c in chunks[1:])
        assert chunks[-1].endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        assert [e for e, _ in parse_sse(b"".join(chunks))].count("content_block_delta") == 7
        # writes=1: the same bytes in one chunk
        head1, one = raw_chunks(method, "/sim/sse?size=5&frames=7&writes=1", body)
        assert head1.startswith(b"HTTP/1.1 200") and len(one) == 1, [len(c) for c in one]
        strip = lambda b: re.sub(rb"msg_[A-Za-z0-9]+", b"msg_", b)  # the message id differs per request
        assert strip(one[0]) == strip(b"".join(chunks))


def test_defaults_and_bad_parameters():
    status, _, data = SIM.request("GET", "/sim/sse")
    assert status == 200
    assert [e for e, _ in parse_sse(data)].count("content_block_delta") == 20
    for q in ("frames=0", "size=0", "frames=x", "size=65537", "frames=100001", "frames=", "writes=2"):
        status, _, data = SIM.request("GET", "/sim/sse?" + q)
        assert status == 400, (q, status, data)
    status, _, _ = SIM.request("DELETE", "/sim/sse")
    assert status == 405
    assert SIM.stats()["requests"]["sim/sse"] >= 10


def main():
    global SIM, TOKEN
    with Sim() as sim:
        SIM = sim
        TOKEN = sim.refresh("sim-ok-sse")
        run_tests([test_event_sequence_and_text_match_the_directive, test_one_chunk_per_text_frame_get_and_post,
                   test_defaults_and_bad_parameters])


if __name__ == "__main__":
    main()
