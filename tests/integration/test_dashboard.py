"""Dashboard (assets/index.html, dashboard.js, admin.js, dashboard.css) in headless Chromium.

1. Against a tiny python server that serves assets/ and a fixture /api/tokens + a /metrics whose counters grow: the key
   given as #key=... is moved into sessionStorage and sent as x-api-key, the table rows render with their state badges,
   the chart gets samples, the key never appears in the DOM, nothing but the four expected paths is fetched (Chromium
   cannot resolve any name: the page works offline), and a refused key brings the login form back.
2. Against the real gateway + kiro-sim: /api/tokens must answer 200 with the pool's accounts (a 501 fails the test).

3. The management views, clicked through in Chromium driven over the DevTools protocol (--remote-debugging-pipe, no
   extra package): with the admin key, create a client key (shown once), use it, see its usage chart, disable it (the
   key then gets 401), add an account and disable it; with a client key the page stays read-only. Screenshots go to
   $K2A_BUILD_DIR/test-artifacts/dashboard/.

A screenshot of each run is saved in the test's temp dir and copied to $K2A_BUILD_DIR/dashboard*.png for inspection.
Needs the Debian `chromium` package.
"""
import base64
import http.server
import json
import select
import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from k2a import (BUILD_DIR, CLIENT_KEY, SLOW, SOURCE_DIR, Gateway, Sim, main, request, sim_accounts_env)

ASSETS = os.path.join(SOURCE_DIR, "assets")
FIXTURE = os.path.join(SOURCE_DIR, "tests", "fixtures", "dashboard", "tokens.json")
KEY = "dashboard-test-key-4711"


def chromium_binary():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(url, tmp, mode, extra=(), budget_ms=16000):
    """Runs headless Chromium on url; mode is --dump-dom or --screenshot=<path>. Returns stdout."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    argv = [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
            "--disable-extensions", "--mute-audio", "--user-data-dir=" + profile,
            # no name resolution at all: anything but 127.0.0.1 fails, so the page must work offline
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            "--virtual-time-budget=%d" % budget_ms, "--window-size=1400,1000"] + list(extra) + [mode, url]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120 * SLOW)
    if r.returncode != 0:
        raise AssertionError("chromium failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
    return r.stdout


class FixtureHandler(http.server.BaseHTTPRequestHandler):
    server_version = "fixture"
    seen = []  # (path, x-api-key)
    lock = threading.Lock()
    metrics_calls = 0

    def log_message(self, *args):
        pass

    def _send(self, status, ctype, body):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        key = self.headers.get("x-api-key")
        with FixtureHandler.lock:
            FixtureHandler.seen.append((path, key))
        if path == "/" or path.startswith("/static/"):
            name = "index.html" if path == "/" else path[len("/static/"):]
            full = os.path.join(ASSETS, name)
            if "/" in name or not os.path.isfile(full):
                return self._send(404, "text/plain", "no such file")
            ctype = {"html": "text/html", "js": "application/javascript", "css": "text/css"}.get(name.rsplit(".", 1)[-1],
                                                                                               "application/octet-stream")
            with open(full, "rb") as f:
                return self._send(200, ctype + "; charset=utf-8", f.read())
        if path in ("/api/tokens", "/metrics"):
            if key != KEY:
                return self._send(401, "application/json", '{"type":"error","error":{"type":"authentication_error"}}')
            if path == "/api/tokens":
                with open(FIXTURE, "rb") as f:
                    return self._send(200, "application/json", f.read())
            with FixtureHandler.lock:
                FixtureHandler.metrics_calls += 1
                n = FixtureHandler.metrics_calls
            return self._send(200, "text/plain; version=0.0.4", fixture_metrics(n))
        return self._send(404, "text/plain", "not found")


def fixture_metrics(n):
    """Prometheus text whose counters grow with each call: 10 requests of ~0.8 s and 500 output tokens per call."""
    bounds = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120]
    lines = ["# HELP k2a_http_request_duration_seconds Time.", "# TYPE k2a_http_request_duration_seconds histogram"]
    count = 10 * n
    for b in bounds:
        c = 0 if b < 0.5 else (count * 9 // 10 if b < 1 else count)
        lines.append('k2a_http_request_duration_seconds_bucket{route="messages",le="%g"} %d' % (b, c))
    lines.append('k2a_http_request_duration_seconds_bucket{route="messages",le="+Inf"} %d' % count)
    lines.append('k2a_http_request_duration_seconds_sum{route="messages"} %.3f' % (0.8 * count))
    lines.append('k2a_http_request_duration_seconds_count{route="messages"} %d' % count)
    lines.append("# TYPE k2a_account_output_tokens_total counter")
    lines.append('k2a_account_output_tokens_total{account="0",name="main"} %d' % (500 * n))
    lines.append('k2a_account_output_tokens_total{account="1",name="back\\"up"} 0')
    return "\n".join(lines) + "\n"


class DashboardFixture(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if chromium_binary() is None:
            raise unittest.SkipTest("chromium is not installed (Debian package `chromium`)")
        cls.tmp = tempfile.mkdtemp(prefix="k2a-dashboard-")
        cls.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FixtureHandler)
        cls.port = cls.httpd.server_address[1]
        cls.thread = threading.Thread(target=cls.httpd.serve_forever, daemon=True)
        cls.thread.start()

    @classmethod
    def tearDownClass(cls):
        cls.httpd.shutdown()
        cls.httpd.server_close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        with FixtureHandler.lock:
            FixtureHandler.seen = []
            FixtureHandler.metrics_calls = 0

    def test_table_renders_with_key_from_fragment(self):
        url = "http://127.0.0.1:%d/#key=%s" % (self.port, KEY)
        dom = run_chromium(url, self.tmp, "--dump-dom")
        # the login form stays hidden, the table is there with every account and its state
        self.assertIn('<form id="login" hidden', dom)
        self.assertNotIn('<main id="main" hidden', dom)
        for desc in ("main", "backup", "spent", "parked", "account 3"):
            self.assertIn(">%s<" % desc, dom, desc)
        for state in ("ok", "cooling", "exhausted", "invalid", "disabled"):
            self.assertIn('data-state="%s"' % state, dom)
            self.assertIn('class="badge state-%s"' % state, dom)
        self.assertIn("quota exhausted (MONTHLY_REQUEST_COUNT)", dom)
        self.assertIn("refresh token rejected (401 Invalid refresh token provided)", dom)
        self.assertIn("****k3Qz", dom)
        self.assertIn("ca****li@*****.com", dom)
        self.assertIn('class="badge ready-yes"', dom)
        self.assertIn("412.5 / 550", dom)  # credits bar caption
        # the key never lands in the page
        self.assertNotIn(KEY, dom)
        with FixtureHandler.lock:
            seen = list(FixtureHandler.seen)
            calls = FixtureHandler.metrics_calls
        paths = {p for p, _ in seen}
        self.assertTrue(paths <= {"/", "/static/dashboard.js", "/static/admin.js", "/static/dashboard.css", "/api/tokens",
                                  "/metrics", "/api/admin/status", "/favicon.ico"}, paths)
        # a key the admin API refuses (here: no admin API at all) keeps the page read-only
        self.assertIn('id="mode" class="badge mode-ro"', dom)
        self.assertIn('<section id="keys" class="admin-only" hidden', dom)
        for p, k in seen:
            if p in ("/api/tokens", "/metrics"):
                self.assertEqual(k, KEY, p)
        # auto-refresh ran several times within the virtual time budget, so the chart has samples
        self.assertGreaterEqual(calls, 2)

    def test_refused_key_shows_login(self):
        url = "http://127.0.0.1:%d/#key=not-the-key" % self.port
        dom = run_chromium(url, self.tmp, "--dump-dom", budget_ms=4000)
        self.assertIn('<form id="login">', dom)
        self.assertIn("The gateway refused this key.", dom)
        self.assertIn('<main id="main" hidden', dom)
        self.assertNotIn("not-the-key", dom)

    def test_no_key_asks_for_it(self):
        dom = run_chromium("http://127.0.0.1:%d/" % self.port, self.tmp, "--dump-dom", budget_ms=3000)
        self.assertIn('<form id="login">', dom)
        with FixtureHandler.lock:
            self.assertNotIn("/api/tokens", [p for p, _ in FixtureHandler.seen])

    def test_screenshot(self):
        shot = os.path.join(self.tmp, "dashboard.png")
        run_chromium("http://127.0.0.1:%d/#key=%s" % (self.port, KEY), self.tmp, "--screenshot=" + shot)
        self.assertTrue(os.path.exists(shot))
        with open(shot, "rb") as f:
            data = f.read()
        self.assertEqual(data[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(data), 20000)  # a rendered table and chart, not a blank page
        if os.path.isdir(BUILD_DIR):
            shutil.copy(shot, os.path.join(BUILD_DIR, "dashboard-fixture.png"))


class DashboardGateway(unittest.TestCase):
    """The same page served by the gateway, with live data from kiro-sim accounts."""

    def test_gateway(self):
        if chromium_binary() is None:
            self.skipTest("chromium is not installed")
        sim = Sim()
        gw = None
        tmp = tempfile.mkdtemp(prefix="k2a-dashboard-gw-")
        try:
            env = sim_accounts_env(sim, [{"refreshToken": "sim-ok-dash1", "description": "dash-ok"},
                                         {"refreshToken": "sim-badrefresh-dash2", "description": "dash-bad"},
                                         {"refreshToken": "sim-ok-dash3", "description": "dash-parked", "disabled": True}],
                                   {"KIRO_STATIC_DIR": ASSETS, "KIRO_USAGE_POLL_INTERVAL_S": "1"})
            gw = Gateway(env=env)
            st, _, body = request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)
            self.assertEqual(st, 200, body)  # /api/tokens is served: a 501 here is a regression, not a reason to skip
            # wait until the pool has settled: the good account refreshed, the bad one invalid
            deadline = time.time() + 20 * SLOW
            while True:
                data = json.loads(request(gw.port, "GET", "/api/tokens", key=CLIENT_KEY)[2])
                states = [t["state"] for t in data["tokens"]]
                if states == ["ok", "invalid", "disabled"] and data["tokens"][0]["expires_at"]:
                    break
                self.assertLess(time.time(), deadline, states)
                time.sleep(0.2)
            url = "http://127.0.0.1:%d/#key=%s" % (gw.port, CLIENT_KEY)
            dom = run_chromium(url, tmp, "--dump-dom", budget_ms=12000)
            for needle in (">dash-ok<", ">dash-bad<", ">dash-parked<", 'class="badge state-ok"', 'class="badge state-invalid"',
                           'class="badge state-disabled"', "refresh token rejected"):
                self.assertIn(needle, dom)
            self.assertNotIn(CLIENT_KEY, dom)
            shot = os.path.join(tmp, "dashboard.png")
            run_chromium(url, tmp, "--screenshot=" + shot, budget_ms=12000)
            if os.path.isdir(BUILD_DIR):
                shutil.copy(shot, os.path.join(BUILD_DIR, "dashboard-gateway.png"))
            gw.assert_clean_exit(self)
            sim.assert_clean_exit(self)
        finally:
            if gw is not None:
                gw.cleanup()
            sim.cleanup()
            shutil.rmtree(tmp, ignore_errors=True)


ADMIN_KEY = "dashboard-admin-key-0815-abcdef"
ARTIFACTS = os.path.join(BUILD_DIR, "test-artifacts", "dashboard")


class Cdp:
    """Headless Chromium driven over the DevTools protocol on a pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, tmp):
        profile = tempfile.mkdtemp(prefix="chromium-cdp-", dir=tmp)
        self.log = open(os.path.join(tmp, "chromium-cdp.log"), "wb")
        argv = ["sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null', chromium_binary(), "--headless",
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--disable-default-apps", "--disable-extensions", "--mute-audio",
                "--user-data-dir=" + profile, "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                "--remote-debugging-pipe", "--window-size=1400,1000", "about:blank"]
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log)
        self.buf = b""
        self.next_id = 0
        targets = self.call("Target.getTargets")["targetInfos"]
        page = [t for t in targets if t["type"] == "page"]
        target = page[0]["targetId"] if page else self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.call("Page.enable", session=True)
        self.call("Runtime.enable", session=True)
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=1400, height=1000, deviceScaleFactor=1,
                  mobile=False)

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("chromium did not answer in time")
            r, _, _ = select.select([self.p.stdout], [], [], left)
            if r:
                chunk = os.read(self.p.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("chromium closed its DevTools pipe")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, session=False, timeout=30, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.p.stdin.write(json.dumps(msg).encode() + b"\0")
        self.p.stdin.flush()
        deadline = time.time() + timeout * SLOW
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise AssertionError("%s: %s" % (method, m["error"]))
                return m.get("result", {})

    def js(self, expression):
        r = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise AssertionError("%s: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def wait(self, tc, what, expression, timeout=20):
        deadline = time.time() + timeout * SLOW
        last = None
        while time.time() < deadline:
            try:
                last = self.js(expression)
            except AssertionError as e:  # the page is still loading
                last = str(e)[-300:]
            else:
                if last:
                    return last
            time.sleep(0.1)
        tc.fail("page: timed out waiting for %s (last: %r)" % (what, last))

    def navigate(self, url):
        self.call("Page.navigate", session=True, url=url)

    def click(self, selector):
        ok = self.js("(function(){var e=document.querySelector(%s); if(!e) return false; e.click(); return true;})()"
                     % json.dumps(selector))
        if not ok:
            raise AssertionError("nothing to click at " + selector)

    def fill(self, selector, value):
        self.js("(function(){var e=document.querySelector(%s); e.value=%s;"
                " e.dispatchEvent(new Event('input',{bubbles:true}));})()" % (json.dumps(selector), json.dumps(value)))

    def screenshot(self, name):
        data = base64.b64decode(self.call("Page.captureScreenshot", session=True, format="png",
                                          captureBeyondViewport=True)["data"])
        os.makedirs(ARTIFACTS, exist_ok=True)
        path = os.path.join(ARTIFACTS, name)
        with open(path, "wb") as f:
            f.write(data)
        return data

    def close(self):
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.p.stdin.close()
        self.p.stdout.close()
        self.log.close()


class DashboardAdmin(unittest.TestCase):
    """The management views against the real gateway + kiro-sim, clicked through."""

    def setUp(self):
        if chromium_binary() is None:
            self.skipTest("chromium is not installed")
        self.tmp = tempfile.mkdtemp(prefix="k2a-dashboard-admin-")
        self.sim = Sim()
        env = sim_accounts_env(self.sim, [{"refreshToken": "sim-ok-dash-admin1", "description": "dash-configured"}],
                               {"KIRO_STATIC_DIR": ASSETS, "KIRO_USAGE_POLL_INTERVAL_S": "0",
                                "KIRO_ADMIN_TOKEN": ADMIN_KEY,
                                "KIRO_STATE_FILE": os.path.join(self.tmp, "state", "state.json")})
        self.gw = Gateway(env=env)
        self.cdp = Cdp(self.tmp)

    def tearDown(self):
        if hasattr(self, "cdp"):
            self.cdp.close()
            self.gw.cleanup()
            self.sim.cleanup()
        shutil.rmtree(getattr(self, "tmp", "/nonexistent"), ignore_errors=True)

    def admin(self, method, path, body=None):
        st, _, data = request(self.gw.port, method, "/api/admin/" + path, body=body, key=ADMIN_KEY)
        return st, json.loads(data) if data else None

    def message(self, key):
        body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
        return request(self.gw.port, "POST", "/v1/messages", body=body, key=key)[0]

    def test_click_through(self):
        c = self.cdp
        base = "http://127.0.0.1:%d/" % self.gw.port
        c.navigate(base + "#key=" + ADMIN_KEY)
        c.wait(self, "admin mode", "document.getElementById('mode').textContent === 'admin'")
        c.wait(self, "account actions", "!!document.querySelector('#accounts tbody tr[data-id] button[data-action=disable]')")
        self.assertFalse(c.js("document.getElementById('keys').hidden"))

        keys_api = self.admin("GET", "keys")[0] == 200
        if keys_api:
            # create a key with limits: shown once
            c.fill("#kf-name", "alice")
            c.fill("#kf-rpm", "100")
            c.fill("#kf-credits-day", "50")
            c.click("#kf-submit")
            new_key = c.wait(self, "the one-time key", "!document.getElementById('new-key').hidden && "
                             "document.getElementById('new-key-value').textContent")
            self.assertTrue(new_key.startswith("k2a-"), new_key)
            c.screenshot("admin-key-created.png")
            row = "#keys-table tr[data-key-name=alice]"
            c.wait(self, "the key's row", "!!document.querySelector(%s)" % json.dumps(row))
            self.assertIn("100/min", c.js("document.querySelector(%s).textContent" % json.dumps(row)))
            # the built-in key (KIRO_CLIENT_TOKEN) is listed without the actions the API refuses for it
            builtin = "#keys-table tr[data-key-name=default]"
            self.assertEqual(c.js("document.querySelectorAll(%s).length" % json.dumps(builtin + " button[data-action=delete]")), 0)
            # use it, then see its usage
            self.assertEqual(self.message(new_key), 200)
            c.click("#refresh")
            c.wait(self, "today's usage in the row", "document.querySelector(%s).children[8].textContent.trim()"
                   ".indexOf('1 /') === 0" % json.dumps(row))
            c.click(row + " button[data-action=usage]")
            c.fill("#usage-metric", "requests")
            c.js("document.getElementById('usage-metric').dispatchEvent(new Event('change'))")
            c.wait(self, "a usage bar", "Array.prototype.some.call(document.querySelectorAll('#usage-chart svg rect.ubar'),"
                   " function(r){return Number(r.getAttribute('data-value')) >= 1;})")
            c.screenshot("admin-key-usage.png")
            # change its limits through the form
            c.click(row + " button[data-action=limits]")
            self.assertEqual(c.js("document.getElementById('kf-rpm').value"), "100")
            c.fill("#kf-rpm", "200")
            c.click("#kf-submit")
            c.wait(self, "the new limit", "document.querySelector(%s).textContent.indexOf('200/min') >= 0" % json.dumps(row))
            st, keys = self.admin("GET", "keys")
            alice = [k for k in keys["keys"] if k["name"] == "alice"][0]
            self.assertEqual((alice["limits"]["rpm"], alice["limits"]["credits_day"]), (200, 50))
            # disable it: refused at once
            c.click(row + " button[data-action=disable]")
            c.wait(self, "the key disabled", "document.querySelector(%s).getAttribute('data-state') === 'disabled'"
                   % json.dumps(row))
            self.assertEqual(self.message(new_key), 401)
            c.click("#new-key-done")
            self.assertNotIn(new_key, c.js("document.documentElement.outerHTML"))
        else:
            print("NOTE: this gateway has no /api/admin/keys yet: the keys part of the click-through is skipped")
            c.wait(self, "the keys view saying so", "document.querySelector('#keys-table tbody').textContent"
                   ".indexOf('no client key management') >= 0")

        # add an account, then disable it
        c.js("document.getElementById('add-account').open = true")
        c.fill("#acct-json", json.dumps({"auth": "Social", "refreshToken": "sim-ok-dash-added"}))
        c.fill("#acct-desc", "added-in-ui")
        c.click("#acct-add")
        added = "#accounts tbody tr[data-source=api]"
        c.wait(self, "the added account's row", "!!document.querySelector(%s)" % json.dumps(added))
        self.assertEqual(c.js("document.getElementById('acct-json').value"), "", "the credential leaves the page")
        self.assertIn("added-in-ui", c.js("document.querySelector(%s).textContent" % json.dumps(added)))
        c.click(added + " button[data-action=disable]")
        c.wait(self, "the added account disabled", "document.querySelector(%s).getAttribute('data-state') === 'disabled'"
               % json.dumps(added))
        st, js = self.admin("GET", "accounts")
        states = {a["label"]: a["state"] for a in js["accounts"]}
        self.assertEqual(states, {"dash-configured": "ok", "added-in-ui": "disabled"})
        shot = c.screenshot("admin-accounts.png")
        self.assertEqual(shot[:8], b"\x89PNG\r\n\x1a\n")
        html = c.js("document.documentElement.outerHTML")
        self.assertNotIn(ADMIN_KEY, html)
        self.assertNotIn("sim-ok-dash-added", html)

        # a client key: read-only, no management view, no action
        c.navigate(base + "?as=client#key=" + CLIENT_KEY)  # another query: a new document, not a hash change
        c.wait(self, "read-only mode", "document.getElementById('mode').textContent === 'read-only' && "
               "document.querySelectorAll('#accounts tbody tr').length === 2")
        time.sleep(0.5 * SLOW)
        self.assertTrue(c.js("document.getElementById('keys').hidden"))
        self.assertTrue(c.js("document.getElementById('actions-th').hidden"))
        self.assertEqual(c.js("document.querySelectorAll('#accounts button').length"), 0)
        c.screenshot("client-read-only.png")
        self.gw.assert_clean_exit(self)
        self.sim.assert_clean_exit(self)


if __name__ == "__main__":
    main()
