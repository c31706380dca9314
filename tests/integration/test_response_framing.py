"""How a streamed response leaves the gateway over HTTP/1.1 keep-alive: a stream whose upstream reply arrives in one
piece goes to the client in one write, its chunked terminator included (the client reads the whole answer in one
recv), on one connection request after request; a dripped stream still ends with the terminator after its last event,
and the connection carries the next request."""
import json
import socket
import unittest

from k2a import CLIENT_KEY, SLOW, Gateway, Sim, main, sim_accounts_env

MODEL = "claude-sonnet-4-5"


def request_bytes(text):
    payload = json.dumps({"model": MODEL, "max_tokens": 1024, "stream": True,
                          "messages": [{"role": "user", "content": text}]}).encode()
    return (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nx-api-key: " + CLIENT_KEY.encode() +
            b"\r\ncontent-type: application/json\r\ncontent-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)


def read_response(s):
    """Reads one chunked response; returns (its bytes, how many recv calls returned data)."""
    data, reads = b"", 0
    while not data.endswith(b"\r\n0\r\n\r\n"):
        got = s.recv(1 << 20)
        if not got:
            raise AssertionError("connection closed after %d bytes: %r" % (len(data), data[-200:]))
        data += got
        reads += 1
    return data, reads


class ResponseFraming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sim = Sim()
        cls.gw = Gateway(env=sim_accounts_env(cls.sim, ["sim-ok-framing"]))

    @classmethod
    def tearDownClass(cls):
        try:
            cls.gw.assert_clean_exit(unittest.TestCase())
            cls.sim.assert_clean_exit(unittest.TestCase())
        finally:
            cls.gw.cleanup()
            cls.sim.cleanup()

    def test_whole_stream_in_one_write(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10 * SLOW)
        try:
            for i in range(5):
                s.sendall(request_bytes("say %d [[sim:text frames=20 size=16]]" % i))
                data, reads = read_response(s)
                head, _, rest = data.partition(b"\r\n\r\n")
                self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
                self.assertIn(b"transfer-encoding: chunked", head.lower())
                self.assertIn(b"event: message_stop", rest)
                self.assertTrue(rest.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n\r\n0\r\n\r\n"),
                                rest[-120:])
                # head, events and terminator were one write: the first read holds the whole answer
                self.assertEqual(reads, 1, "request %d: the answer came in %d reads" % (i, reads))
        finally:
            s.close()

    def test_dripped_stream_ends_then_connection_reused(self):
        s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=10 * SLOW)
        try:
            s.sendall(request_bytes("[[sim:drip ms=20]] [[sim:text frames=5 size=4]]"))
            data, reads = read_response(s)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            self.assertEqual(data.count(b"event: content_block_delta"), 5)
            self.assertIn(b"event: message_stop", data)
            s.sendall(request_bytes("again"))
            data, _ = read_response(s)
            self.assertTrue(data.startswith(b"HTTP/1.1 200"), data[:100])
            self.assertIn(b"event: message_stop", data)
        finally:
            s.close()


if __name__ == "__main__":
    main()
