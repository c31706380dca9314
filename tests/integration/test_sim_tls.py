"""kiro-sim over TLS: a test CA and a server certificate for IP:127.0.0.1 are made with the openssl CLI; the python
client verifies the chain and the address (verification on), a client without the CA is refused, and curl gets h2 via
ALPN with the same CA."""
import json
import os
import shutil
import ssl
import subprocess
import tempfile

from sim_util import Sim, parse_frames, request_body, run_checked, run_tests, sim_binary, text_of

DIR = None


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=DIR, timeout=60)


def make_ca():
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=kiro-sim test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "srv.csr", "-subj", "/CN=kiro-sim")
    with open(os.path.join(DIR, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "cert.pem",
            "-days", "2", "-extfile", "ext.cnf")


def test_tls_verified():
    ca = os.path.join(DIR, "ca.pem")
    with Sim("--tls-cert", os.path.join(DIR, "cert.pem"), "--tls-key", os.path.join(DIR, "key.pem"), ca_file=ca) as sim:
        assert sim.first_line.startswith("kiro-sim listening on https://127.0.0.1:"), sim.first_line
        token = sim.refresh("sim-ok-tls")
        st, _, data = sim.generate(token, request_body("over tls"))
        assert st == 200 and text_of(parse_frames(data)) == "echo: over tls"
        # a client that does not trust the test CA must fail the handshake
        bare = Sim.__new__(Sim)
        bare.scheme, bare.host, bare.port, bare.ca_file = "https", sim.host, sim.port, None
        c = bare.conn()
        c._context = ssl.create_default_context()  # system trust store only
        c._context.load_default_certs()
        try:
            c.request("GET", "/sim/stats")
            c.getresponse()
            raise AssertionError("handshake should fail without the test CA")
        except ssl.SSLCertVerificationError:
            pass
        finally:
            c.close()
        if shutil.which("curl"):
            p = subprocess.run(["curl", "-sS", "--cacert", ca, "--http2", "-X", "POST", "-H", "Authorization: Bearer " + token,
                                "--data-binary", json.dumps(request_body("h2 over tls")), "-w", "%{http_version}",
                                sim.url + "/generateAssistantResponse"], capture_output=True, timeout=30)
            assert p.returncode == 0, p.stderr
            assert p.stdout.endswith(b"2"), p.stdout[-10:]
            assert text_of(parse_frames(p.stdout[:-1])) == "echo: h2 over tls"


def test_bad_tls_files():
    p = run_checked([sim_binary(), "--port", "0", "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"], timeout=10)
    assert p.returncode != 0 and p.stdout == b""
    p = run_checked([sim_binary(), "--port", "0", "--tls-cert", os.path.join(DIR, "cert.pem")], timeout=10)
    assert p.returncode != 0 and p.stdout == b"", "a cert without a key is a configuration error"


def main():
    global DIR
    if not shutil.which("openssl"):
        print("openssl CLI missing")
        raise SystemExit(1)
    with tempfile.TemporaryDirectory() as d:
        DIR = d
        make_ca()
        run_tests([test_tls_verified, test_bad_tls_files])


if __name__ == "__main__":
    main()
