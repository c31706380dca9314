"""The admin API under /api/admin/ (src/http/h_admin.c, h_admin_accounts.c, src/pool/admin.c) against kiro-sim.

Authentication: only KIRO_ADMIN_TOKEN opens it; a client key, no key and a wrong admin key get one identical 401, and a
gateway without KIRO_ADMIN_TOKEN answers 401 saying the admin API is unavailable. Framework: 404/405/413/415/400 answers
in the admin error shape. Accounts: list, detail, add (account object or Kiro's token file), enable/disable, refresh,
clear, delete, reload; every change persisted before its answer (survives a restart), applied without restart, audit
lines in the log and no secret in it; the interplay with the config file and SIGHUP.
Loopback only.
"""
import json
import os
import signal
import tempfile
import time
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, request, sim_accounts_env

ADMIN_KEY = "test-admin-key-9876543210-abcdef"
REFRESH_A = "aorAAAAAG-admin-test-account-a"
REFRESH_B = "aorAAAAAG-admin-test-account-b"
REFRESH_C = "aorAAAAAG-admin-test-account-c"


def admin(gw, method, path, body=None, key=ADMIN_KEY, headers=None, bearer=False):
    h = dict(headers or {})
    if key is not None:
        if bearer:
            h["authorization"] = "Bearer " + key
        else:
            h["x-api-key"] = key
    st, hd, data = request(gw.port, method, "/api/admin/" + path, body=body, headers=h)
    try:
        js = json.loads(data) if data else None
    except ValueError:
        js = None
    return st, hd, js, data


class AdminAuth(unittest.TestCase):
    def test_refusals_identical_and_admin_key_accepted(self):
        gw = Gateway(env={"KIRO_ADMIN_TOKEN": ADMIN_KEY})
        try:
            answers = []
            for key, bearer in ((CLIENT_KEY, False), (CLIENT_KEY, True), (None, False), ("wrong-admin-key", False),
                                ("wrong-admin-key", True), (ADMIN_KEY + "x", False)):
                st, hd, js, raw = admin(gw, "GET", "status", key=key, bearer=bearer)
                self.assertEqual(st, 401, raw)
                answers.append(raw)
                self.assertEqual(js["error"]["type"], "authentication_error")
            self.assertEqual(len(set(answers)), 1, "refusals differ: %r" % answers)
            # the same refusal on a mutating endpoint and on an unknown path: nothing is revealed before auth
            st, _, _, raw = admin(gw, "POST", "accounts", body={"refreshToken": "x"}, key=CLIENT_KEY)
            self.assertEqual((st, raw), (401, answers[0]))
            st, _, _, raw = admin(gw, "GET", "no/such/thing", key=None)
            self.assertEqual((st, raw), (401, answers[0]))
            for bearer in (False, True):
                st, _, js, raw = admin(gw, "GET", "status", bearer=bearer)
                self.assertEqual(st, 200, raw)
                self.assertTrue(js["admin"])
            # the admin key is no client key for the admin API's sake only: /v1 still takes the client key
            st, _, _ = request(gw.port, "GET", "/v1/models", key=CLIENT_KEY)
            self.assertNotEqual(st, 401)
        finally:
            gw.assert_clean_exit(self)
            gw.cleanup()

    def test_unavailable_without_admin_token(self):
        gw = Gateway()
        try:
            for key in (CLIENT_KEY, None, ADMIN_KEY):
                st, _, js, raw = admin(gw, "GET", "status", key=key)
                self.assertEqual(st, 401, raw)
                self.assertIn("KIRO_ADMIN_TOKEN", js["error"]["message"])
        finally:
            gw.assert_clean_exit(self)
            gw.cleanup()


class AdminFramework(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.gw = Gateway(env={"KIRO_ADMIN_TOKEN": ADMIN_KEY})

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(cls())
        finally:
            cls.gw.cleanup()

    def runTest(self):  # lets tearDownClass build an instance for its assertions
        pass

    def test_not_found_and_method(self):
        st, _, js, raw = admin(self.gw, "GET", "no-such-endpoint")
        self.assertEqual(st, 404, raw)
        self.assertEqual(js["error"]["type"], "not_found_error")
        st, hd, js, raw = admin(self.gw, "DELETE", "status")
        self.assertEqual(st, 405, raw)
        self.assertEqual(js["error"]["type"], "method_not_allowed")
        self.assertEqual(hd.get("allow"), "GET")
        st, _, js, _ = admin(self.gw, "HEAD", "status")
        self.assertEqual(st, 200)

    def test_body_bounds_and_type(self):
        big = "x" * (256 * 1024 + 10)
        st, _, js, raw = admin(self.gw, "POST", "accounts", body=big, headers={"content-type": "application/json"})
        self.assertEqual(st, 413, raw)
        self.assertEqual(js["error"]["type"], "request_too_large")
        st, _, js, raw = admin(self.gw, "POST", "accounts", body="{}", headers={"content-type": "text/plain"})
        self.assertEqual(st, 415, raw)


if __name__ == "__main__":
    main()
