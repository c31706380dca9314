"""kiro-sim under many concurrent slow streams: 1000 HTTP/1.1 connections (SIM_LOAD_STREAMS to change) each get a
dripped reply at once; every reply must be complete with valid CRCs and the healthy tail, and the sim must still
answer afterwards with no stream left open. Prints the sim's peak RSS (VmHWM)."""
import asyncio
import json
import os
import resource

from sim_util import Sim, assert_healthy_tail, parse_frames, request_body, run_tests, text_of

N = int(os.environ.get("SIM_LOAD_STREAMS", "1000"))
SIM = None
TOKEN = None


def dechunk(data):
    body, rest = b"", data
    while True:
        line, _, rest = rest.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return body
        body += rest[:n]
        rest = rest[n + 2:]


async def one_stream(i, payload):
    for attempt in range(20):
        try:
            reader, writer = await asyncio.open_connection(SIM.host, SIM.port)
            break
        except OSError:  # the listen backlog can overflow for a moment while thousands connect at once
            await asyncio.sleep(0.05 * (attempt + 1))
    else:
        raise RuntimeError("cannot connect")
    writer.write(b"POST /generateAssistantResponse HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer " + TOKEN.encode() +
                 b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        chunk = await reader.read(65536)
        if not chunk:
            raise RuntimeError("stream %d closed early" % i)
        data += chunk
    writer.close()
    return head, dechunk(data)


async def run_all(payload):
    return await asyncio.wait_for(asyncio.gather(*(one_stream(i, payload) for i in range(N))), timeout=240)


def test_concurrent_drip_streams():
    payload = json.dumps(request_body("[[sim:text frames=5 size=16]][[sim:drip ms=50]]")).encode()
    results = asyncio.run(run_all(payload))
    assert len(results) == N
    for head, body in results:
        assert head.startswith(b"HTTP/1.1 200"), head[:40]
        frames = parse_frames(body)
        assert len(frames) == 8 and len(text_of(frames)) == 80
        assert_healthy_tail(frames)
    s = SIM.stats()
    assert s["streams_total"] == N and s["open_streams"] == 0, s
    assert s["accounts"]["sim-ok-load"]["generate_ok"] == N
    print("max_open_streams=%d of %d" % (s["max_open_streams"], N))
    with open("/proc/%d/status" % SIM.proc.pid) as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    print("kiro-sim peak RSS after %d concurrent drip streams: %s" % (N, hwm.split(":")[1].strip()))
    if os.environ.get("K2A_SANITIZE", "").upper() not in ("ON", "1", "TRUE"):
        assert int(hwm.split()[1]) < 512 * 1024, hwm
    # still healthy
    st, _, data = SIM.generate(TOKEN, request_body("after the storm"))
    assert st == 200 and text_of(parse_frames(data)) == "echo: after the storm"


def main():
    global SIM, TOKEN
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, N + 256))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < N + 64:
        print("RLIMIT_NOFILE hard limit %d is too low for %d streams" % (hard, N))
        raise SystemExit(1)
    with Sim() as sim:
        SIM = sim
        TOKEN = sim.refresh("sim-ok-load")
        run_tests([test_concurrent_drip_streams])


if __name__ == "__main__":
    main()
