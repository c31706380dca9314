"""A throw-away redis-server for the shared-store tests: started on a free loopback port with no persistence
(--save '' --appendonly no), stopped (or killed, to play an outage) and restarted on the same port. Queries go through
redis-cli. Loopback only."""
import os
import shutil
import subprocess
import tempfile
import time

from k2a import SLOW, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


class Redis:
    def __init__(self, port=None, password=None):
        self.password = password
        if not os.path.exists(REDIS_SERVER):
            raise RuntimeError("redis-server is not installed (deps/install.sh test installs it)")
        self.port = port or free_port()
        self.tmp = tempfile.mkdtemp(prefix="k2a-redis-")
        self.p = None
        self.start()

    @property
    def url(self):
        auth = ":%s@" % self.password if self.password else ""
        return "redis://%s127.0.0.1:%d/0" % (auth, self.port)

    def start(self):
        self.log = open(os.path.join(self.tmp, "redis.log"), "ab")
        self.p = subprocess.Popen([REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", self.tmp, "--protected-mode", "yes"]
                                  + (["--requirepass", self.password] if self.password else []),
                                  stdout=self.log, stderr=subprocess.STDOUT, cwd=self.tmp)
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("redis-server exited: %s" % self.p.returncode)
            try:
                if self.cli("PING") == "PONG":
                    return
            except subprocess.SubprocessError:
                pass
            time.sleep(0.05)
        raise RuntimeError("redis-server did not answer on port %d" % self.port)

    def cli(self, *args):
        auth = ["--no-auth-warning", "-a", self.password] if self.password else []
        r = subprocess.run([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)] + auth + [str(a) for a in args],
                           capture_output=True, text=True, timeout=10 * SLOW)
        if r.returncode != 0:
            raise subprocess.SubprocessError(r.stderr)
        return r.stdout.strip()

    def hgetall(self, key):
        out = self.cli("HGETALL", key)
        lines = out.split("\n") if out else []
        return dict(zip(lines[0::2], lines[1::2]))

    def keys(self, pattern):
        out = self.cli("KEYS", pattern)
        return [k for k in out.split("\n") if k]

    def kill(self):
        """SIGKILL: an outage, not a shutdown."""
        if self.p is not None and self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        self.log.close()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)
