"""A small scriptable stand-in for Kiro's endpoints, on 127.0.0.1, that records every request it gets: the Social and
IdC refreshes, an external IdP's OAuth token endpoint, ListAvailableProfiles, getUsageLimits and
generateAssistantResponse (answered with a minimal valid EventStream). Paths may carry a region prefix
("/eu-central-1/generateAssistantResponse"), as with KIRO_API_BASE=http://127.0.0.1:PORT/{region}.

Accounts are told apart by their access token, which is "at-" + the refresh token (an API key is its own token).
Behaviour per refresh token is scripted through Stub.script:
    {"rt-x": {"refresh_arn": "arn:...",              # profileArn in the refresh answer
              "profiles": {"us-east-1": ["arn:..."], "eu-central-1": 403},   # ListAvailableProfiles per region
              "generate": (400, {"message": "profileArn is required for this request."}),
              "generate_primary": (429, {...})}}         # only on the primary host, not on "/fb/..."
"""
import http.server
import json
import struct
import threading
import urllib.parse
import zlib

REGIONS = ("us-east-1", "eu-central-1")


def es_frame(event_type, payload):
    """One AWS EventStream frame with the three string headers Kiro sends."""
    def header(name, value):
        n, v = name.encode(), value.encode()
        return struct.pack(">B", len(n)) + n + b"\x07" + struct.pack(">H", len(v)) + v
    headers = header(":event-type", event_type) + header(":content-type", "application/json") + \
        header(":message-type", "event")
    body = json.dumps(payload).encode()
    total = 12 + len(headers) + len(body) + 4
    prelude = struct.pack(">II", total, len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    msg = prelude + headers + body
    return msg + struct.pack(">I", zlib.crc32(msg))


def split_region(path):
    """("/eu-central-1/x?q" -> ("eu-central-1", "/x", "q")); region None without a prefix. A leading "/fb" (the fallback
    host of the tests) is dropped first."""
    parsed = urllib.parse.urlsplit(path)
    p = parsed.path
    if p.startswith("/fb/"):
        p = p[3:]
    for r in REGIONS:
        if p == "/" + r or p.startswith("/" + r + "/"):
            rest = p[len(r) + 1:] or "/"
            return r, rest, parsed.query
    return None, p, parsed.query


class Stub:
    def __init__(self):
        self.requests = []
        self.script = {}
        self.lock = threading.Lock()
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                stub._handle(self, "GET")

            def do_POST(self):
                stub._handle(self, "POST")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base(self):
        return "http://127.0.0.1:%d" % self.port

    def env(self, accounts, extra=None):
        """Gateway environment pointing every upstream URL here, with {region} in each."""
        e = {"KIRO_AUTH_TOKEN": json.dumps(accounts),
             "KIRO_API_BASE": self.base + "/{region}",
             "KIRO_SOCIAL_REFRESH_URL": self.base + "/{region}/refreshToken",
             "KIRO_IDC_REFRESH_URL": self.base + "/{region}/token",
             "KIRO_USAGE_POLL_INTERVAL_S": "0"}
        if extra:
            e.update(extra)
        return e

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def reset(self):
        with self.lock:
            self.requests = []

    def find(self, kind=None, token=None):
        """Recorded requests of a kind ("generate", "profiles", "usage", "social", "idc", "idp"), optionally for one token."""
        with self.lock:
            reqs = list(self.requests)
        return [r for r in reqs if (kind is None or r["kind"] == kind) and
                (token is None or r["headers"].get("authorization") == "Bearer " + token)]

    # ---- the handler ----

    def _rt_of(self, auth):
        token = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        return token[3:] if token.startswith("at-") else token

    def _handle(self, h, method):
        n = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(n) if n else b""
        region, path, query = split_region(h.path)
        headers = {k.lower(): v for k, v in h.headers.items()}
        target = headers.get("x-amz-target", "")
        if method == "POST" and path == "/refreshToken":
            kind = "social"
        elif method == "POST" and path == "/token":
            kind = "idc"
        elif method == "POST" and path == "/idp/token":
            kind = "idp"
        elif method == "POST" and path == "/" and target.endswith("ListAvailableProfiles"):
            kind = "profiles"
        elif method == "GET" and path == "/getUsageLimits":
            kind = "usage"
        elif method == "POST" and path == "/generateAssistantResponse":
            kind = "generate"
        else:
            kind = "other"
        body = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = urllib.parse.parse_qs(raw.decode(), keep_blank_values=True)
        rec = {"kind": kind, "method": method, "path": h.path, "region": region, "route": path,
               "fallback": h.path.startswith("/fb/"),
               "query": urllib.parse.parse_qs(query), "headers": headers, "body": body}
        with self.lock:
            self.requests.append(rec)
        getattr(self, "_" + kind)(h, rec)

    def _send(self, h, status, obj, ctype="application/json"):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("content-type", ctype)
        h.send_header("content-length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _refresh_answer(self, rt, snake=False):
        s = self.script.get(rt, {})
        if snake:
            return {"access_token": "at-" + rt, "refresh_token": rt, "expires_in": 3600, "token_type": "Bearer"}
        a = {"accessToken": "at-" + rt, "refreshToken": rt, "expiresIn": 3600}
        if s.get("refresh_arn"):
            a["profileArn"] = s["refresh_arn"]
        return a

    def _social(self, h, rec):
        self._send(h, 200, self._refresh_answer(rec["body"]["refreshToken"]))

    def _idc(self, h, rec):
        self._send(h, 200, self._refresh_answer(rec["body"]["refreshToken"]))

    def _idp(self, h, rec):
        self._send(h, 200, self._refresh_answer(rec["body"]["refresh_token"][0], snake=True))

    def _profiles(self, h, rec):
        rt = self._rt_of(rec["headers"].get("authorization", ""))
        answer = self.script.get(rt, {}).get("profiles", {}).get(rec["region"], [])
        if isinstance(answer, int):
            self._send(h, answer, {"message": "User is not authorized to make this call."})
        else:
            self._send(h, 200, {"profiles": [{"arn": a, "profileName": "p"} for a in answer], "nextToken": None})

    def _usage(self, h, rec):
        self._send(h, 200, {"usageBreakdownList": [{"resourceType": "CREDIT", "usageLimitWithPrecision": 50.0,
                                                     "currentUsageWithPrecision": 1.0}],
                            "userInfo": {"email": "someone@example.com"}})

    def _generate(self, h, rec):
        rt = self._rt_of(rec["headers"].get("authorization", ""))
        scripted = self.script.get(rt, {}).get("generate")
        if scripted is None and not rec["fallback"]:
            scripted = self.script.get(rt, {}).get("generate_primary")
        if scripted is not None:
            self._send(h, scripted[0], scripted[1])
            return
        data = es_frame("assistantResponseEvent", {"content": "hello from the stub"}) + \
            es_frame("meteringEvent", {"unit": "credit", "unitPlural": "credits", "usage": 0.01})
        self._send(h, 200, data, ctype="application/vnd.amazon.eventstream")

    def _other(self, h, rec):
        self._send(h, 404, {"message": "not found"})
