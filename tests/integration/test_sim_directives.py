"""kiro-sim replies steered by [[sim:...]] directives: exact frame sequences, tool input pieces, faults, timing bounds,
replay, --chunk writes. Starts kiro-sim (K2A_SIM) on a loopback port."""
import hashlib
import http.client
import json
import re
import shutil
import socket
import subprocess
import time

from sim_util import (FIXTURES_DIR, CrcError, Sim, Truncated, assert_healthy_tail, hist_assistant, hist_user,
                      parse_frames, raw_str, request_body, run_tests, text_of, tool_spec)

SIM = None
TOKEN = None
PHRASE = "lorem ipsum dolor sit amet, consectetur adipiscing elit. "
TOOL_ID = re.compile(r"^tooluse_[A-Za-z0-9_-]{22}$")


def gen(content, **kw):
    body = request_body(content, **kw)
    status, headers, data = SIM.generate(TOKEN, body)
    return status, headers, data, body


def frames_of(content, **kw):
    status, headers, data, body = gen(content, **kw)
    assert status == 200, (status, data)
    assert headers["content-type"] == "application/vnd.amazon.eventstream", headers
    return parse_frames(data), body


def test_echo_default():
    frames, body = frames_of("hello wörld 你好 ok")
    content = frames[:-3]
    assert all(f.event_type == "assistantResponseEvent" for f in content), frames
    assert text_of(frames) == "echo: hello wörld 你好 ok"
    for f in content:
        n = len(f.json()["content"])
        assert 1 <= n <= 8, f
        assert list(f.json()) == ["content"]
    for f in frames:
        assert f.header_names == [":event-type", ":content-type", ":message-type"], f.header_names
        assert f.header_types == [7, 7, 7]
        assert f.headers[":content-type"] == "application/json" and f.message_type == "event"
    assert_healthy_tail(frames, "END_TURN")
    size = len(json.dumps(body, ensure_ascii=False).encode())
    assert frames[-2].json()["contextUsagePercentage"] == round(size / 8000.0, 2)
    assert frames[-1].json()["usage"] == 0.0123


def test_echo_limits_and_strips_directives():
    long_text = "é" * 150 + "x" * 150
    frames, _ = frames_of(long_text)
    assert text_of(frames) == "echo: " + long_text[:200]
    frames, _ = frames_of("  [[sim:drip ms=1]] hi there [[sim:usage credits=1]]  ")
    assert text_of(frames) == "echo: hi there"


def test_text_frames():
    frames, _ = frames_of("[[sim:text frames=5 size=10]]")
    assert [f.event_type for f in frames] == ["assistantResponseEvent"] * 5 + ["metadataEvent", "contextUsageEvent",
                                                                                      "meteringEvent"]
    pieces = [f.json()["content"] for f in frames[:5]]
    assert all(len(p.encode()) == 10 for p in pieces)
    assert "".join(pieces) == (PHRASE * 2)[:50]


def tool_input_check(frames, name, input_text, pieces):
    start = frames[0]
    assert start.event_type == "toolUseEvent"
    s = start.json()
    assert list(s) == ["name", "toolUseId"] and s["name"] == name and TOOL_ID.match(s["toolUseId"]), s
    parts = []
    for f in frames[1:1 + pieces]:
        p = f.json()
        assert f.event_type == "toolUseEvent" and list(p) == ["name", "toolUseId", "input"], p
        assert p["name"] == name and p["toolUseId"] == s["toolUseId"]
        parts.append(raw_str(p["input"]))
    stop = frames[1 + pieces].json()
    assert stop == {"name": name, "toolUseId": s["toolUseId"], "stop": True}, stop
    assert b"".join(parts) == input_text.encode(), (parts, input_text)
    assert all(len(p) >= 1 for p in parts)
    return s["toolUseId"], parts


def test_tool_pieces_split_utf8():
    inp = '{"city":"巴黎","note":"a]]b \\"q\\"","n":[1,2]}'
    content = 'Weather? [[sim:tool name=get_weather input=%s pieces=6 text="Let me use a tool."]]' % inp
    frames, _ = frames_of(content)
    first_tool = next(i for i, f in enumerate(frames) if f.event_type == "toolUseEvent")
    assert text_of(frames[:first_tool]) == "Let me use a tool."
    tid, parts = tool_input_check(frames[first_tool:], "get_weather", inp, 6)
    broken = 0
    for p in parts:
        try:
            p.decode("utf-8")
        except UnicodeDecodeError:
            broken += 1
    assert broken >= 1, "no piece ends inside a UTF-8 sequence: %r" % parts
    # the raw bytes of the partial sequence are in the payload itself (not \u escapes, not U+FFFD)
    assert any(b"\xef\xbf\xbd" not in f.payload and b"\xe5" in f.payload for f in frames)
    assert frames[first_tool + 8:][0].event_type == "metadataEvent"
    assert_healthy_tail(frames, "TOOL_USE")
    # deterministic: the same request gives the same bytes
    status, _, data1, _ = gen(content)
    status, _, data2, _ = gen(content)
    assert data1 == data2
    assert parse_frames(data1)[first_tool].json()["toolUseId"] == tid


def test_multiple_tools_in_sequence():
    frames, _ = frames_of('[[sim:tool name=Read input={"path":"/a"} pieces=2]] and '
                          '[[sim:tool name=Write input={"path":"/b","content":"ü"} pieces=3]]')
    id1, _ = tool_input_check(frames[0:], "Read", '{"path":"/a"}', 2)
    id2, _ = tool_input_check(frames[4:], "Write", '{"path":"/b","content":"ü"}', 3)
    assert id1 != id2
    assert [f.event_type for f in frames[9:]] == ["metadataEvent", "contextUsageEvent", "meteringEvent"]


def test_tool_directive_in_tool_result():
    history = [hist_user("run it"), hist_assistant("ok", [{"toolUseId": "tooluse_x", "name": "Bash", "input": {}}])]
    results = [{"toolUseId": "tooluse_x", "content": [{"text": "done [[sim:tool name=Bash input={} pieces=1]]"}],
                "status": "success"}]
    frames, _ = frames_of("", tools=[tool_spec("Bash")], tool_results=results, history=history)
    tool_input_check(frames, "Bash", "{}", 1)
    # no directive in the tool result: echo of the result text
    results[0]["content"][0]["text"] = "file1 file2"
    frames, _ = frames_of("", tools=[tool_spec("Bash")], tool_results=results, history=history)
    assert text_of(frames) == "echo: file1 file2"


def test_thinking():
    frames, _ = frames_of("why? [[sim:thinking]]")
    text = text_of(frames)
    assert text.startswith("<thinking>") and "</thinking>\n\necho: why?" in text, text
    assert not any("<thinking>" in f.json().get("content", "") for f in frames[:-3])
    assert not any("</thinking>" in f.json().get("content", "") for f in frames[:-3])
    frames, _ = frames_of('[[sim:thinking text="hmm"]][[sim:text frames=1 size=3]]')
    assert text_of(frames) == "<thinking>hmm</thinking>\n\nlor"


def check_exception(frame, etype, message):
    assert frame.message_type == "exception", frame.headers
    assert frame.headers[":exception-type"] == etype
    assert frame.headers[":content-type"] == "application/json"
    assert frame.json() == {"message": message}
    assert ":event-type" not in frame.headers


def test_exception_after_n():
    frames, _ = frames_of("[[sim:text frames=5 size=4]][[sim:exception type=ContentLengthExceededException after=3]]")
    assert [f.event_type for f in frames[:3]] == ["assistantResponseEvent"] * 3
    assert len(frames) == 4
    check_exception(frames[3], "ContentLengthExceededException", "kiro-sim injected ContentLengthExceededException")
    # `after` beyond the content: the exception comes right after the content, never after metering
    frames, _ = frames_of('[[sim:text frames=2 size=4]][[sim:exception type=ThrottlingException after=50 message="slow"]]')
    assert len(frames) == 3
    check_exception(frames[2], "ThrottlingException", "slow")


def test_status_codes():
    expect = {
        400: {"message": "Improperly formed request.", "reason": None},
        402: {"message": "You have reached the limit of requests for this month.", "reason": "MONTHLY_REQUEST_COUNT"},
        403: {"message": "The bearer token included in the request is invalid.", "reason": None},
        429: {"message": "Too many requests, please wait before trying again.", "reason": None},
        500: {"message": "Encountered an unexpected error when processing the request, please try again.", "reason": None},
        503: {"message": "Service Unavailable", "reason": None},
    }
    for code, body in expect.items():
        status, headers, data, _ = gen("[[sim:status code=%d]]" % code)
        assert status == code and json.loads(data) == body, (code, data)
        assert headers["content-type"] == "application/json"
    status, _, data, _ = gen('[[sim:status code=500 message="boom"]]')
    assert status == 500 and json.loads(data) == {"message": "boom", "reason": None}


def raw_http(path_body, token, extra=b""):
    """One HTTP/1.1 request on a raw socket; returns (status line, headers bytes, chunks list, clean end flag)."""
    body = json.dumps(path_body, ensure_ascii=False).encode()
    s = socket.create_connection((SIM.host, SIM.port), timeout=30)
    s.sendall(b"POST /generateAssistantResponse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n" + extra +
              b"\r\n" + body)
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
        if data.endswith(b"\r\n0\r\n\r\n"):
            break
    s.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    chunks, clean = [], False
    while rest:
        line, sep, rest = rest.partition(b"\r\n")
        if not sep:
            break
        try:
            n = int(line, 16)
        except ValueError:
            break
        if n == 0:
            clean = rest == b"\r\n"
            break
        if len(rest) < n + 2 or rest[n:n + 2] != b"\r\n":
            chunks.append(rest[:n])
            break
        chunks.append(rest[:n])
        rest = rest[n + 2:]
    return head, chunks, clean


def test_cut_mid_frame():
    content = "[[sim:text frames=5 size=4]][[sim:cut after=2]]"
    c = SIM.conn()
    c.request("POST", "/generateAssistantResponse", body=json.dumps(request_body(content)),
              headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200
    try:
        r.read()
        raise AssertionError("the body should be broken")
    except http.client.IncompleteRead as e:
        partial = e.partial
    c.close()
    try:
        parse_frames(partial)
        raise AssertionError("the last frame should be truncated")
    except Truncated:
        pass
    # the first two frames are whole and good
    good = b""
    off = 0
    for _ in range(2):
        n = int.from_bytes(partial[off:off + 4], "big")
        good += partial[off:off + n]
        off += n
    assert [f.event_type for f in parse_frames(good)] == ["assistantResponseEvent"] * 2
    assert 6 <= len(partial) - off < int.from_bytes(partial[off:off + 4], "big")
    head, chunks, clean = raw_http(request_body(content), TOKEN)
    assert not clean, "a cut body must not end with the terminating chunk"
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-X", "POST", "-H", "Authorization: Bearer " + TOKEN,
                            "--data-binary", json.dumps(request_body(content)), SIM.url + "/generateAssistantResponse"],
                           capture_output=True, timeout=30)
        assert p.returncode != 0, "curl must see a broken body"


def test_badcrc():
    status, _, data, _ = gen("[[sim:text frames=5 size=4]][[sim:badcrc after=2]]")
    assert status == 200
    try:
        parse_frames(data)
        raise AssertionError("CRC error expected")
    except CrcError as e:
        assert "message CRC of frame 2" in str(e), e
    # the frames after the corrupted one are intact: 5 text + metadata + contextUsage + metering in all
    off, n = 0, 0
    while off < len(data):
        off += int.from_bytes(data[off:off + 4], "big")
        n += 1
    assert off == len(data) and n == 8


def test_end_clean_without_tail():
    frames, _ = frames_of("[[sim:text frames=5 size=4]][[sim:end after=3]]")
    assert [f.event_type for f in frames] == ["assistantResponseEvent"] * 3


def test_stall_and_drip():
    t0 = time.monotonic()
    c = SIM.conn()
    c.request("POST", "/generateAssistantResponse", body=json.dumps(request_body("[[sim:stall ms=600]] x")),
              headers={"Authorization": "Bearer " + TOKEN})
    r = c.getresponse()
    assert time.monotonic() - t0 >= 0.6, "headers came before the stall ended"
    assert r.status == 200 and text_of(parse_frames(r.read())) == "echo: x"
    c.close()
    t0 = time.monotonic()
    frames, _ = frames_of("[[sim:text frames=4 size=3]][[sim:drip ms=150]]")
    assert len(frames) == 7
    assert time.monotonic() - t0 >= 0.9, "7 frames dripped every 150 ms take at least 6 intervals"
    t0 = time.monotonic()
    status, _, data, _ = gen("[[sim:status code=429]][[sim:stall ms=300]]")
    assert status == 429 and time.monotonic() - t0 >= 0.3


def test_drip_frames_arrive_one_by_one():
    head, chunks, clean = raw_http(request_body("[[sim:text frames=3 size=5]][[sim:drip ms=20]]"), TOKEN)
    assert clean and len(chunks) == 6
    assert [f.event_type for f in parse_frames(b"".join(chunks))][:3] == ["assistantResponseEvent"] * 3
    for c in chunks:  # one frame per write
        assert len(parse_frames(c)) == 1


def test_replay_fixture():
    name = "kiro2api_text_2frames_303B.bin"
    fixture = open(FIXTURES_DIR + "/" + name, "rb").read()
    status, headers, data, body = gen("[[sim:replay file=%s]]" % name)
    assert status == 200 and data == fixture
    assert headers["content-type"] == "application/vnd.amazon.eventstream"
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "-X", "POST", "-H", "Authorization: Bearer " + TOKEN, "-H",
                            "Content-Type: application/json", "--data-binary", json.dumps(body),
                            SIM.url + "/generateAssistantResponse"], capture_output=True, timeout=30)
        assert p.returncode == 0
        assert hashlib.md5(p.stdout).hexdigest() == "e4c4738cec418d7341842c226b0cede0" == hashlib.md5(fixture).hexdigest()
    for bad in ("../README.md", "/etc/passwd", "nope.bin"):
        status, _, data, _ = gen("[[sim:replay file=%s]]" % bad)
        assert status == 400 and json.loads(data)["reason"] == "SIM_DIRECTIVE", (bad, data)


def test_usage_directive_and_unknown_directive():
    frames, _ = frames_of("[[sim:usage credits=0.5 context=99.5]] hi")
    assert frames[-1].json() == {"unit": "credit", "unitPlural": "credits", "usage": 0.5}
    assert frames[-2].json() == {"contextUsagePercentage": 99.5}
    for bad in ("[[sim:frobnicate]]", "[[sim:text frames=x]]", "[[sim:text frames=2", "[[sim:tool input={]]"):
        status, _, data, _ = gen(bad)
        assert status == 400 and json.loads(data)["reason"] == "SIM_DIRECTIVE", (bad, data)


def test_chunk_option_and_http2():
    content = "[[sim:text frames=3 size=9]] [[sim:tool name=t input={\"a\":\"é\"} pieces=3]]"
    _, _, expected, body = gen(content)
    with Sim("--chunk", "7") as chunked:
        global SIM
        saved, SIM = SIM, chunked
        try:
            token = chunked.refresh("sim-ok-chunk")
            status, _, data = chunked.generate(token, body)
            assert status == 200 and data == expected
            head, chunks, clean = raw_http(body, token)
            assert clean and b"".join(chunks) == expected
            assert all(len(c) == 7 for c in chunks[:-1]) and 1 <= len(chunks[-1]) <= 7, [len(c) for c in chunks]
        finally:
            SIM = saved
    if shutil.which("curl"):
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "POST", "-H", "Authorization: Bearer " + TOKEN,
                            "--data-binary", json.dumps(body, ensure_ascii=False), "-w", "%{http_version}",
                            SIM.url + "/generateAssistantResponse"], capture_output=True, timeout=30)
        assert p.returncode == 0 and p.stdout.endswith(b"2") and p.stdout[:-1] == expected, p.stdout[-20:]


def wait_no_open_streams():
    deadline = time.time() + 20
    while SIM.stats()["open_streams"] != 0 and time.time() < deadline:
        time.sleep(0.05)
    assert SIM.stats()["open_streams"] == 0, SIM.stats()


def test_client_goes_away():
    SIM.reset()
    # HTTP/1.1: the client closes mid-drip; h2o notices at the next write and stops the stream
    body = json.dumps(request_body("[[sim:text frames=40 size=4]][[sim:drip ms=20]]")).encode()
    for stall in (False, True):
        if stall:
            body = json.dumps(request_body("[[sim:stall ms=300]] bye")).encode()
        s = socket.create_connection((SIM.host, SIM.port), timeout=30)
        s.sendall(b"POST /generateAssistantResponse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        if not stall:
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        s.close()
        wait_no_open_streams()
    if shutil.which("curl"):
        # HTTP/2: the connection closes during the stall (no generator yet) and during a drip; and a cut is a reset
        for content in ("[[sim:stall ms=3000]] x", "[[sim:text frames=100 size=4]][[sim:drip ms=20]]"):
            p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-m", "0.5", "-X", "POST", "-H",
                                "Authorization: Bearer " + TOKEN, "--data-binary", json.dumps(request_body(content)),
                                SIM.url + "/generateAssistantResponse"], capture_output=True, timeout=30)
            assert p.returncode == 28, p  # curl's timeout
            wait_no_open_streams()
        p = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-X", "POST", "-H",
                            "Authorization: Bearer " + TOKEN, "--data-binary",
                            json.dumps(request_body("[[sim:text frames=5 size=4]][[sim:cut after=2]]")),
                            SIM.url + "/generateAssistantResponse"], capture_output=True, timeout=30)
        assert p.returncode != 0, "an h2 cut must reach curl as an error"
    assert SIM.stats()["streams_total"] >= 4
    frames, _ = frames_of("still fine")
    assert text_of(frames) == "echo: still fine"


def main():
    global SIM, TOKEN
    with Sim() as sim:
        SIM = sim
        TOKEN = sim.refresh("sim-ok-directives")
        run_tests([test_echo_default, test_echo_limits_and_strips_directives, test_text_frames,
                   test_tool_pieces_split_utf8, test_multiple_tools_in_sequence, test_tool_directive_in_tool_result,
                   test_thinking, test_exception_after_n, test_status_codes, test_cut_mid_frame, test_badcrc,
                   test_end_clean_without_tail, test_stall_and_drip, test_drip_frames_arrive_one_by_one,
                   test_replay_fixture, test_usage_directive_and_unknown_directive, test_chunk_option_and_http2,
                   test_client_goes_away])


if __name__ == "__main__":
    main()
