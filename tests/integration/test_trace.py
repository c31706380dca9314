"""Redacted traces (KIRO_TRACE_DIR, kiro2api doctor --trace): the gateway writes one file per failed upstream exchange and
one per sampled successful one; no secret of the run is in them (refresh tokens, the IdC client secret, the API key, the
client key, any access token the simulator issued: every authorization value is masked), nor the prompt, nor an ARN's
account number; files are 0600 in a 0700 directory; KIRO_TRACE_MAX_FILES bounds the directory (new traces skipped, none
deleted); and a trace -> scripts/trace-to-case -> [[sim:replay]] through kiro-sim round trip gives back the traced
response bytes exactly. A rejected request becomes a validator case holding Kiro's status and exact body."""
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import unittest

from k2a import BIN, CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, request, sim_accounts_env
from sim_util import parse_frames, request_body

PROMPT = "the secret recipe is PROMPT-TEXT-7c1f9a"
IDC_ID = "trace-idc-client-id-0001"
IDC_SECRET = "trace-idc-client-SECRET-4b3a2918"
KEY = "ksk_sim-trace-key-5566778899"
TRACE_TO_CASE = os.path.join(SOURCE_DIR, "scripts", "trace-to-case")
MAGIC = b"kiro2api-trace 1\n"


def read_trace(path):
    data = open(path, "rb").read()
    assert data.startswith(MAGIC), path
    rest = data[len(MAGIC):]
    nl = rest.index(b"\n")
    meta = json.loads(rest[:nl])
    pos = nl + 1
    req = rest[pos:pos + meta["request_body_bytes"]]
    pos += meta["request_body_bytes"] + 1
    resp = rest[pos:pos + meta["response_body_bytes"]]
    assert len(rest) == pos + meta["response_body_bytes"], path
    return meta, req, resp


class Traces(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim(args=["--idc-client-id", IDC_ID, "--idc-client-secret", IDC_SECRET])

    @classmethod
    def tearDownClass(cls):
        try:
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.sim.cleanup()

    def accounts(self):
        return [
            {"auth": "Social", "refreshToken": "sim-suspended-trace-0001"},
            {"auth": "IdC", "refreshToken": "sim-idc-trace-0001", "clientId": IDC_ID, "clientSecret": IDC_SECRET},
            {"auth": "ApiKey", "apiKey": KEY, "apiRegion": "us-east-1"},
        ]

    def secrets(self):
        s = [CLIENT_KEY, IDC_SECRET, KEY]
        for a in self.accounts():
            s.append(a["refreshToken"] if "refreshToken" in a else a["apiKey"])
        return s

    def assert_redacted(self, path):
        data = open(path, "rb").read()
        text = data.decode("latin-1")
        for secret in self.secrets():
            self.assertNotIn(secret, text, "%s holds a secret" % path)
        self.assertNotIn("PROMPT-TEXT", text, "%s holds the prompt" % path)
        for number in ("699475941385", "610548660232", "638616132270"):
            self.assertNotIn(number, text, "%s holds an ARN account number" % path)
        meta, _, _ = read_trace(path)
        for name, value in meta["request"]["headers"]:
            if name.lower() == "authorization":
                self.assertRegex(value, r"^Bearer \*\*\*\*.{0,4}$", path)
            if name.lower().endswith("user-agent"):
                self.assertIsNone(re.search(r"[0-9a-f]{32}", value), "machine id in %s" % path)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600, path)
        return meta

    def gateway(self, trace_dir, extra=None):
        env = {"KIRO_POOL_STRATEGY": "sequential", "KIRO_MAX_ATTEMPTS": "3", "KIRO_CATALOG_REFRESH_S": "0",
               "KIRO_TRACE_DIR": trace_dir, "KIRO_TRACE_SAMPLE": "1"}
        env.update(extra or {})
        return Gateway(env=sim_accounts_env(self.sim, self.accounts(), env))

    def post(self, gw, stream=True):
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                "messages": [{"role": "user", "content": PROMPT}]}
        return request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY, timeout=60)

    def test_failed_and_sampled_exchanges_are_traced_redacted(self):
        with tempfile.TemporaryDirectory() as tmp:
            tdir = os.path.join(tmp, "traces")
            gw = self.gateway(tdir)
            try:
                st, _, data = self.post(gw)
                self.assertEqual(st, 200, data[:300])
                self.assertIn(b"echo: th", data)  # the sim echoes the prompt (in pieces): the trace's texts are masked
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            self.assertEqual(stat.S_IMODE(os.stat(tdir).st_mode), 0o700)
            files = sorted(os.listdir(tdir))
            self.assertEqual(len(files), 2, files)  # the suspended account's 403, the IdC account's 200
            metas = [self.assert_redacted(os.path.join(tdir, f)) for f in files]
            failed = [m for m in metas if m["failed"]]
            ok = [m for m in metas if not m["failed"]]
            self.assertEqual(len(failed), 1, metas)
            self.assertEqual(len(ok), 1, metas)
            self.assertEqual(failed[0]["response"]["status"], 403)
            self.assertIn("suspended", failed[0]["outcome"])
            self.assertEqual(ok[0]["response"]["status"], 200)
            # the sampled 200 is still a valid EventStream, its text masked
            _, req, resp = read_trace(os.path.join(tdir, [f for f, m in zip(files, metas) if not m["failed"]][0]))
            frames = parse_frames(resp)
            self.assertGreater(len(frames), 2)
            texts = [f.json().get("content") for f in frames if f.event_type == "assistantResponseEvent"]
            self.assertTrue(texts)
            for t in texts:
                self.assertRegex(t, r"^<\d+ bytes>$")
            body = json.loads(req)
            self.assertRegex(body["conversationState"]["currentMessage"]["userInputMessage"]["content"], r"^<\d+ bytes>$")

    def test_directory_bound_skips_new_traces(self):
        with tempfile.TemporaryDirectory() as tmp:
            tdir = os.path.join(tmp, "traces")
            os.makedirs(tdir, mode=0o755)
            open(os.path.join(tdir, "trace-old.k2at"), "w").close()
            gw = self.gateway(tdir, {"KIRO_TRACE_MAX_FILES": "3"})
            try:
                for _ in range(3):
                    st, _, data = self.post(gw, stream=False)
                    self.assertEqual(st, 200, data[:300])
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            files = os.listdir(tdir)
            self.assertEqual(len(files), 3, files)
            self.assertIn("trace-old.k2at", files)  # nothing deleted
            self.assertEqual(stat.S_IMODE(os.stat(tdir).st_mode), 0o700)

    def test_file_size_bound_cuts_at_a_frame(self):
        with tempfile.TemporaryDirectory() as tmp:
            tdir = os.path.join(tmp, "traces")
            gw = self.gateway(tdir, {"KIRO_TRACE_MAX_BYTES": "4096"})
            try:
                body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": True,
                        "messages": [{"role": "user", "content": "[[sim:text frames=200 size=100]]"}]}
                st, _, data = request(gw.port, "POST", "/v1/messages", body=body, key=CLIENT_KEY, timeout=60)
                self.assertEqual(st, 200, data[:300])
                gw.assert_clean_exit(self)
            finally:
                gw.cleanup()
            sampled = []
            for f in os.listdir(tdir):
                meta, req, resp = read_trace(os.path.join(tdir, f))
                if not meta["failed"]:
                    sampled.append((f, meta, resp))
            self.assertEqual(len(sampled), 1)
            f, meta, resp = sampled[0]
            self.assertTrue(meta["truncated"], meta)
            self.assertLessEqual(len(resp), 4096)
            self.assertLess(os.path.getsize(os.path.join(tdir, f)), 4096 + 4096)  # the head and the request add a little
            frames = parse_frames(resp)  # whole frames only, valid CRCs
            self.assertGreater(len(frames), 5)

    def test_trace_to_case_replays_byte_identically(self):
        with tempfile.TemporaryDirectory() as tmp:
            tdir = os.path.join(tmp, "traces")
            fx = os.path.join(tmp, "fixtures")
            env = dict(os.environ)
            env.update(sim_accounts_env(self.sim, [{"auth": "Social", "refreshToken": "sim-ok-trace-replay-0001"},
                                                   {"auth": "Social", "refreshToken": "sim-exhausted-trace-0001"}]))
            env["KIRO_STATE_FILE"] = ""
            p = subprocess.run([BIN, "doctor", "--trace", tdir], env=env, cwd=tmp, capture_output=True, text=True,
                               timeout=120 * SLOW)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)  # the exhausted account fails
            files = sorted(os.listdir(tdir))
            self.assertEqual(len(files), 1, files)  # the failed exchange only (KIRO_TRACE_SAMPLE unset)
            env["KIRO_TRACE_SAMPLE"] = "1"
            p = subprocess.run([BIN, "doctor", "--trace", tdir], env=env, cwd=tmp, capture_output=True, text=True,
                               timeout=120 * SLOW)
            files = sorted(os.listdir(tdir))
            self.assertEqual(len(files), 3, files)
            ok_trace = case_trace = None
            for f in files:
                meta, _, _ = read_trace(os.path.join(tdir, f))
                if meta["response"]["status"] == 200:
                    ok_trace = os.path.join(tdir, f)
                else:
                    case_trace = os.path.join(tdir, f)
            self.assertIsNotNone(ok_trace)
            self.assertIsNotNone(case_trace)
            # the 200: a fixture that kiro-sim replays byte for byte
            out = subprocess.run([sys.executable, TRACE_TO_CASE, ok_trace, "--fixtures-dir", fx, "--name", "roundtrip"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertIn("[[sim:replay file=traces/roundtrip.bin]]", out.stdout)
            _, _, traced = read_trace(ok_trace)
            replay_sim = Sim(args=["--fixtures-dir", fx])
            try:
                st, _, tok = request(replay_sim.port, "POST", "/refreshToken", body={"refreshToken": "sim-ok-replay-0001"})
                self.assertEqual(st, 200, tok)
                token = json.loads(tok)["accessToken"]
                body = request_body("[[sim:replay file=traces/roundtrip.bin]]", model="claude-haiku-4.5")
                st, _, replayed = request(replay_sim.port, "POST", "/generateAssistantResponse", body=body,
                                          headers={"authorization": "Bearer " + token})
                self.assertEqual(st, 200, replayed[:300])
                self.assertEqual(replayed, traced)
                replay_sim.assert_clean_exit(self)
            finally:
                replay_sim.cleanup()
            # the 402: a validator case with Kiro's status and exact body
            out = subprocess.run([sys.executable, TRACE_TO_CASE, case_trace, "--fixtures-dir", fx, "--name", "quota"],
                                 capture_output=True, text=True, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            case = json.load(open(os.path.join(fx, "traces", "quota.case.json")))
            _, _, traced_body = read_trace(case_trace)
            self.assertEqual(case["status"], 402)
            self.assertEqual(case["body"].encode(), traced_body)
            self.assertIn("MONTHLY_REQUEST_COUNT", case["body"])
            self.assertEqual(case["path"], "/generateAssistantResponse")
            self.assertEqual(case["request"]["conversationState"]["currentMessage"]["userInputMessage"]["modelId"],
                             "claude-haiku-4.5")
            # not a trace: an error
            junk = os.path.join(tmp, "junk.k2at")
            open(junk, "w").write("hello\n")
            out = subprocess.run([sys.executable, TRACE_TO_CASE, junk, "--fixtures-dir", fx], capture_output=True,
                                 text=True, timeout=60)
            self.assertEqual(out.returncode, 1)


if __name__ == "__main__":
    main()
