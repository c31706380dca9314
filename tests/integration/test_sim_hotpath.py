"""kiro-sim's per-request bookkeeping read and written without printf/scanf: the amz-sdk-request check answers as the
scanf form "attempt=%u; max=%u%c" did (the SDK's own form read directly, any other form left to scanf), the
x-amzn-requestid keeps its format and its sequence, and a request body with floats, long integers or deep nesting
(outside the arena tree) is answered exactly like a plain one."""
import json
import re

from sim_util import KIRO_HEADERS, Sim, assert_healthy_tail, parse_frames, request_body, run_tests

MALFORMED = {"message": "Improperly formed request.", "reason": None}


def warnings(sim, token, value):
    sim.reset()
    st, _, data = sim.generate(token, request_body("hi"), headers=dict(KIRO_HEADERS, **{"amz-sdk-request": value}))
    assert st == 200, (value, st, data[:200])
    return sim.stats()["header_warnings_by_name"].get("amz-sdk-request", 0)


def test_sdk_request_forms():
    with Sim() as sim:
        t = sim.refresh("sim-ok-hot")
        good = ["attempt=1; max=3", "attempt=3; max=3", "attempt=007; max=9", "attempt=1;max=3", "attempt= 1; max=3",
                "attempt=+1; max=2", "attempt=1;  max=999999999", "attempt=1; max=3x"[:-1]]
        bad = ["attempt=0; max=3", "attempt=4; max=3", "attempt=1", "attempt=1; max=3x", "attempt=1; max=", "attempt=; max=3",
               "attempt=1; max=3 ", "Attempt=1; max=3", "attempt=x; max=3", "attempt=1; max=" + "9" * 70]
        for v in good:
            assert warnings(sim, t, v) == 0, v
        for v in bad:
            assert warnings(sim, t, v) == 1, v


def test_request_id_format():
    with Sim() as sim:
        t = sim.refresh("sim-ok-hot")
        seqs = []
        for _ in range(3):
            st, h, data = sim.generate(t, request_body("hi"))
            assert st == 200
            m = re.match(r"^([0-9a-f]{8})-5157-4000-8000-([0-9a-f]{12})$", h["x-amzn-requestid"])
            assert m, h["x-amzn-requestid"]
            seq = int(m.group(2), 16)
            assert int(m.group(1), 16) == (seq * 2654435761) % (1 << 32), h["x-amzn-requestid"]
            seqs.append(seq)
        assert seqs[1] == seqs[0] + 1 and seqs[2] == seqs[1] + 1, seqs


def test_bodies_outside_the_arena_tree():
    with Sim() as sim:
        t = sim.refresh("sim-ok-hot")
        plain = request_body("hello")
        for extra in (1.5, 12345678901234567, -0.0, 1e3, [[[[1]]]]):
            body = json.loads(json.dumps(plain))
            body["conversationState"]["extraNumber"] = extra
            st, _, data = sim.generate(t, json.dumps(body))
            base = json.loads(json.dumps(plain))
            base["conversationState"]["extraNumber"] = 1
            st2, _, data2 = sim.generate(t, json.dumps(base))
            assert st == st2, (extra, st, st2, data[:200], data2[:200])
            if st == 200:
                assert_healthy_tail(parse_frames(data))
            else:
                assert json.loads(data) == json.loads(data2), (extra, data, data2)
        deep = json.dumps(plain)[:-1] + ',"x":' + "[" * 129 + "]" * 129 + "}"
        st, _, data = sim.generate(t, deep)
        assert (st, json.loads(data)) == (400, MALFORMED), (st, data[:200])
        assert sim.stats()["last_rejection"] == "json_depth"
        within = json.dumps(plain)[:-1] + ',"x":' + "[" * 120 + "]" * 120 + "}"
        st2, _, data2 = sim.generate(t, within)
        st3, _, data3 = sim.generate(t, json.dumps(plain)[:-1] + ',"x":[]}')
        assert st2 == st3 and (st2 == 200 or json.loads(data2) == json.loads(data3)), (st2, st3, data2[:200])
        st, _, data = sim.generate(t, json.dumps(plain)[:-1] + "/**/}")
        assert (st, json.loads(data)) == (400, MALFORMED) and sim.stats()["last_rejection"] == "json_syntax"


if __name__ == "__main__":
    run_tests([test_sdk_request_forms, test_request_id_format, test_bodies_outside_the_arena_tree])
