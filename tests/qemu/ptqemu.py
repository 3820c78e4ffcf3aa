"""Host-side helpers for the Python parts of the QEMU tests (tests/qemu/*.py).

A QEMU started by tools/run-qemu.sh exposes, in its run directory: com1.log (and
com1.sock with --com1-socket), hv.log, mgmt.sock (COM2, the hypervisor's management
port) and qmp.sock. This module reads the logs, talks to the sockets and runs ptctl.
Every wait is bounded by its own limit and by the module-wide `deadline` (a time.time()
value; set it once: `ptqemu.deadline = time.time() + budget`). Failures raise QemuError.
"""
import json
import os
import re
import socket
import subprocess
import threading
import time

# The firmware's terminal escapes and carriage returns, dropped before matching.
ESC_RE = re.compile(rb"\x1b\[[0-9;=?]*[A-Za-z]|\r")

deadline = float("inf")


class QemuError(Exception):
    pass


def _end(secs):
    return min(deadline, time.time() + secs)


def clean(data):
    return ESC_RE.sub(b"", data).decode("utf-8", "replace")


def text(path):
    """The file at path without escapes and carriage returns ("" if it does not exist)."""
    try:
        with open(path, "rb") as f:
            return clean(f.read())
    except FileNotFoundError:
        return ""


def wait_file(path, regex, secs):
    """The first match of regex (multi-line) in the file, or None after secs."""
    end = _end(secs)
    while time.time() < end:
        m = re.search(regex, text(path), re.M)
        if m:
            return m
        time.sleep(0.2)
    return None


def run_qemu(run_dir, args, timeout, stderr=subprocess.DEVNULL):
    """tools/run-qemu.sh --no-term in run_dir (its com1.log and hv.log from an earlier run
    removed first) with args, for timeout seconds at the most: (the Popen, its start
    time.monotonic()). stdout is dropped; stderr goes to stderr (a file, or dropped)."""
    os.makedirs(run_dir, exist_ok=True)
    for f in ("com1.log", "hv.log"):
        try:
            os.unlink(os.path.join(run_dir, f))
        except FileNotFoundError:
            pass
    cmd = ["tools/run-qemu.sh", "--no-term", "--run-dir", run_dir, "--timeout", str(timeout)] + args
    t0 = time.monotonic()
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=stderr), t0


def stop_qemu(p, secs=60):
    """Waits secs for a QEMU whose guest powers off on its own, then kills it."""
    try:
        p.wait(timeout=secs)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def connect(path, secs=30):
    """A connected unix socket; retries while QEMU has not created or accepted it yet."""
    end = _end(secs)
    while True:
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            return s
        except OSError:
            s.close()
            if time.time() > end:
                raise
            time.sleep(0.2)


class Console(threading.Thread):
    """A chardev socket (the Linux shell on COM1, or COM2): sends lines, collects replies."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.sock, self.data, self.lock = connect(path), b"", threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                b = self.sock.recv(65536)
            except OSError:
                return
            if not b:
                return
            with self.lock:
                self.data += b

    def mark(self):
        """A position in what was received, for text()/wait() since then."""
        with self.lock:
            return len(self.data)

    def text(self, since=0):
        with self.lock:
            return clean(self.data[since:])

    def wait(self, regex, secs, since=0):
        end = _end(secs)
        while time.time() < end:
            m = re.search(regex, self.text(since), re.M)
            if m:
                return m
            time.sleep(0.05)
        return None

    def send(self, data):
        self.sock.sendall(data)

    def run_cmd(self, line, done_re, secs):
        """Types line; the match of done_re in the output that follows, or QemuError."""
        since = self.mark()
        self.sock.sendall(line.encode() + b"\n")
        m = self.wait(done_re, secs, since)
        if not m:
            raise QemuError(f"guest command {line!r}: no {done_re!r} within {secs} s")
        return m

    def close(self):
        # shutdown() first: close() alone leaves the connection open while run() sits in
        # recv(), and QEMU serves one client per chardev socket at a time.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Qmp:
    """QEMU's machine protocol (stop, cont, pmemsave, ...)."""

    def __init__(self, path):
        self.sock = connect(path)
        self.f = self.sock.makefile("rwb")
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        """The command's "return" value; QemuError on an error or a closed socket."""
        self.f.write(json.dumps({"execute": name, "arguments": args}).encode() + b"\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise QemuError(f"QMP {name}: QEMU closed the socket")
            r = json.loads(line)
            if "error" in r:
                raise QemuError(f"QMP {name}: {r['error']}")
            if "return" in r:
                return r["return"]


def ptctl(run_dir, *cmd, want_json=True, timeout_ms=10000):
    """`ptctl [--json] CMD...` over run_dir/mgmt.sock: (answer, seconds it took).
    The answer is parsed JSON, or ptctl's stdout with want_json=False."""
    argv = [os.path.join(os.environ.get("BUILD", "build"), "ptctl"),
            "-c", "unix:" + os.path.join(run_dir, "mgmt.sock"), "--timeout", str(timeout_ms)]
    if want_json:
        argv.append("--json")
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv + list(cmd), capture_output=True, text=True,
                           timeout=max(1, min(120, _end(120) - time.time())))
    except subprocess.TimeoutExpired:
        raise QemuError(f"ptctl {' '.join(cmd)}: no answer")
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return (json.loads(r.stdout) if want_json else r.stdout), dt
