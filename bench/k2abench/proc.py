"""The processes the harness starts (own process group, stopped whatever happens) and what it reads of them in /proc:
CPU ticks, syscalls, wake-ups, memory."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from .common import CLK_TCK

class Procs:
    """Every process the harness starts; stop_all() ends them (SIGTERM, then SIGKILL) whatever happened."""

    def __init__(self):
        self.procs = []

    def add(self, p):
        self.procs.append(p)
        return p

    def stop_all(self):
        for p in reversed(self.procs):
            p.stop()
        self.procs = []


PROCS = Procs()


class Proc:
    """A long-running child in its own process group, stdout read for a 'listening on ...:PORT' line when asked."""

    def __init__(self, name, argv, env=None, cpus=None, wait_listen=0, cwd=None, timeout=20):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="k2a-bench-%s-" % name)
        self.err_path = os.path.join(self.tmp, "stderr.log")
        self.argv = (["taskset", "-c", cpus] if cpus else []) + list(argv)
        full_env = dict(os.environ)
        for k in ("KIRO_AUTH_TOKEN", "KIRO_CLIENT_TOKEN", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            full_env.pop(k, None)
        full_env.update({k: str(v) for k, v in (env or {}).items()})
        self.env = env or {}
        self.err = open(self.err_path, "wb")
        self.p = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.err, env=full_env, cwd=cwd or self.tmp,
                                  start_new_session=True)
        PROCS.add(self)
        self.ports = []
        deadline = time.time() + timeout
        while len(self.ports) < wait_listen:
            if time.time() > deadline or self.p.poll() is not None:
                raise RuntimeError("%s did not start (exit %s): %s" % (name, self.p.poll(), self.stderr_tail()))
            line = self.p.stdout.readline().decode(errors="replace")
            m = re.search(r"listening on https?://[^ ]*:(\d+)", line)
            if m:
                self.ports.append(int(m.group(1)))
        self.port = self.ports[0] if self.ports else None
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        try:
            for _ in self.p.stdout:
                pass
        except (OSError, ValueError):
            pass

    @property
    def pid(self):
        return self.p.pid

    def stderr_tail(self, n=3000):
        try:
            self.err.flush()
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait()
        else:
            try:  # children left in the group (nginx workers)
                os.killpg(self.p.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.err.close()
            self.p.stdout.close()
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def process_tree(pid):
    """pid and its descendants (nginx master + workers)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, t)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return out


def proc_snapshot(pids):
    """CPU ticks (user+sys), read/write-family syscalls (/proc/PID/io: read, write, readv, writev; not recv/send), and
    voluntary context switches of every thread (a loop went to sleep in epoll_wait: one per wake-up) and involuntary ones
    (the scheduler took the CPU away: another process wanted it), summed over the processes."""
    cpu = user = syscr = syscw = wakeups = preempts = 0
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            cpu += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
            user += int(fields[11])
            with open("/proc/%d/io" % pid) as f:
                for line in f:
                    k, v = line.split(":")
                    if k == "syscr":
                        syscr += int(v)
                    elif k == "syscw":
                        syscw += int(v)
            for tid in os.listdir("/proc/%d/task" % pid):  # every thread: the worker loops and the pool's
                with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                    for line in f:
                        if line.startswith("voluntary_ctxt_switches:"):
                            wakeups += int(line.split()[1])
                        elif line.startswith("nonvoluntary_ctxt_switches:"):
                            preempts += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return {"ticks": cpu, "user_ticks": user, "syscr": syscr, "syscw": syscw, "wakeups": wakeups, "preempts": preempts}


def machine_ticks():
    """(busy, total) jiffies of all CPUs from /proc/stat: busy is everything but idle and iowait."""
    try:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - (v[4] if len(v) > 4 else 0), sum(v)
    except (OSError, ValueError, IndexError):
        return 0, 0


def proc_mem(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "Threads"):
                    out[k] = int(v.split()[0])
    except OSError:
        pass
    return out


class Meter:
    """CPU and syscall deltas of named process sets across one load run."""

    def __init__(self, sets):
        self.sets = sets  # name -> callable returning pids

    def __enter__(self):
        self.before = {k: proc_snapshot(f()) for k, f in self.sets.items()}
        self.mach0 = machine_ticks()
        self.t0 = time.time()
        return self

    def __exit__(self, *exc):
        self.wall = time.time() - self.t0
        mach1 = machine_ticks()
        self.delta = {}
        for k, f in self.sets.items():
            after = proc_snapshot(f())
            self.delta[k] = {x: after[x] - self.before[k][x] for x in after}
        total = mach1[1] - self.mach0[1]
        ncpu = os.cpu_count() or 1
        # the machine's busy CPUs over the run, and how many of them the measured processes used (the rest: the load
        # generator and whatever else runs on the machine)
        self.machine_cores = (mach1[0] - self.mach0[0]) * ncpu / total if total > 0 else None
        self.measured_cores = sum(d["ticks"] for d in self.delta.values()) / CLK_TCK / self.wall if self.wall > 0 else None
        return False

    def per_request(self, name, nreq):
        d = self.delta.get(name)
        if not d or nreq <= 0:
            return None
        return {"cpu_us": d["ticks"] * 1e6 / CLK_TCK / nreq, "cpu_s": d["ticks"] / CLK_TCK,
                "user_us": d["user_ticks"] * 1e6 / CLK_TCK / nreq,
                "util": d["ticks"] / CLK_TCK / self.wall if self.wall > 0 else 0,
                "syscalls": (d["syscr"] + d["syscw"]) / nreq, "wakeups": d["wakeups"] / nreq,
                "preempts": d["preempts"] / nreq}

