"""Request bodies of every scenario (Anthropic, Chat Completions, Responses, Claude Code's), the one-shot capture of the
Kiro body the gateway sends (for the direct baseline), and a plain HTTP/1.1 request helper."""
import http.client
import http.server
import json
import os
import threading

from .common import MODEL, ROOT

def filler(n):
    text = "You are a helpful assistant. Answer briefly and precisely; cite the file and the line you mean. "
    return (text * (n // len(text) + 1))[:n]


# kiro-sim charges every answer against the account's credits (550 in all); a full run sends ~10^5 requests, and a gateway
# started late would find the account exhausted: every benchmark answer is free.
FREE = "[[sim:usage credits=0]] "


def anthropic_small(directive, stream=True, size=2048):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream, "system": "",
         "messages": [{"role": "user", "content": "Say something. " + FREE + directive}]}
    b["system"] = filler(max(0, size - len(json.dumps(b))))
    return b


def openai_small(directive, stream=True, size=2048):
    b = {"model": MODEL, "max_tokens": 1024, "stream": stream,
         "messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Say something. " + FREE + directive}]}
    b["messages"][0]["content"] = filler(max(0, size - len(json.dumps(b))))
    return b


def responses_small(directive, stream=True, size=2048, instructions=False, store=None):
    """The OpenAI Responses form of openai_small: the system text as a developer message before the user text (the
    Codex CLI's shape), or as `instructions` (which every response object then echoes: three times in a stream); store
    given: that `store` field (absent: the default, true)."""
    if store is not None:
        b = responses_small(directive, stream, size - len(', "store": ' + json.dumps(store)), instructions)
        b["store"] = store
        return b
    if instructions:
        b = {"model": MODEL, "max_output_tokens": 1024, "stream": stream, "instructions": "",
             "input": "Say something. " + FREE + directive}
        b["instructions"] = filler(max(0, size - len(json.dumps(b))))
        return b
    b = {"model": MODEL, "max_output_tokens": 1024, "stream": stream,
         "input": [{"role": "developer", "content": ""}, {"role": "user", "content": "Say something. " + FREE + directive}]}
    b["input"][0]["content"] = filler(max(0, size - len(json.dumps(b))))
    return b


CC_TOOL_DIRECTIVE = (FREE + '[[sim:tool name=Bash input={"command":"ls -la src","description":"List the sources"} pieces=6 '
                     'text="Let me look at the sources."]]')


def claude_code_body():
    """tests/fixtures/clients/cc-print-json-2.json (Claude Code 2.1.197, 24 tools, ~78 KB), stream true, with a directive
    in the last user message asking the simulator for a text block then a Bash tool call."""
    with open(os.path.join(ROOT, "tests", "fixtures", "clients", "cc-print-json-2.json")) as f:
        fx = json.load(f)
    b = fx["body"]
    b["stream"] = True
    last_user = [m for m in b["messages"] if m["role"] == "user"][-1]
    if isinstance(last_user["content"], str):
        last_user["content"] += " " + CC_TOOL_DIRECTIVE
    else:
        last_user["content"].append({"type": "text", "text": CC_TOOL_DIRECTIVE})
    headers = ["%s: %s" % (k, v) for k, v in fx["headers"].items()
               if k in ("anthropic-beta", "anthropic-version", "x-claude-code-session-id", "user-agent", "x-app")]
    return b, fx["url"], headers


# ---------------------------------------------------------------------------------------------------------------
# the Kiro bodies the gateway sends (for the direct baseline): a one-shot capture upstream


class Capture:
    """A loopback stand-in for Kiro's generateAssistantResponse that records the first request of each body it is
    sent and answers 400: the harness sends each scenario's client request through a gateway pointed at it once, then
    posts the recorded Kiro body straight to the simulator for the direct baseline."""

    def __init__(self):
        self.requests = []
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path.startswith("/generateAssistantResponse"):
                    outer.requests.append((dict(self.headers.items()), body))
                msg = b'{"message":"Improperly formed request.","reason":null}'
                self.send_response(400)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(msg)))
                self.end_headers()
                self.wfile.write(msg)

            do_GET = do_POST

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def http_request(port, method, path, body=None, headers=None, timeout=60):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def hdict(lines):
    return dict(h.split(": ", 1) for h in lines)

