#!/usr/bin/env python3
"""`make bench` step (BENCH_STEPS): Linux boot time with and without the hypervisor.

Time from QEMU's start to the Linux guest's /init ("pagetrail-init: ready" on COM1),
measured on the host, for the default boot (OVMF -> ptboot -> pagetrail.efi -> Linux)
and the same boot without pagetrail.efi (same ESP, same kernel line), alternating
hv/bare runs in one invocation; median of PT_BENCH_BOOT_RUNS (default 3) runs each.

Then, when the hypervisor prints exit statistics on its log ("pagetrail: exits
total=N REASON=N ..."), exits per second by reason while the guest idles and while it
runs pt-memload, from the difference between the first and the last statistics line of
each phase, over the host time between them.

Prints JSON lines (tools/bench.sh); progress on stderr.
"""
import json
import os
import re
import statistics
import subprocess
import sys
import time

BUILD = os.environ.get("BUILD", "build")
RUNS = int(os.environ.get("PT_BENCH_BOOT_RUNS", "3"))
RUN_DIR = os.path.join(BUILD, "bench-run")
READY = b"pagetrail-init: ready"
STATS_RE = re.compile(r"pagetrail: exits (.*)")


def emit(**fig):
    print(json.dumps(fig), flush=True)


def log(msg):
    print(f"bench_boot: {msg}", file=sys.stderr, flush=True)


def start_qemu(args, timeout):
    os.makedirs(RUN_DIR, exist_ok=True)
    for f in ("com1.log", "hv.log"):
        try:
            os.unlink(os.path.join(RUN_DIR, f))
        except FileNotFoundError:
            pass
    cmd = ["tools/run-qemu.sh", "--no-term", "--run-dir", RUN_DIR, "--timeout", str(timeout)] + args
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return p, t0


def wait_marker(p, path, marker, t0, limit):
    """Seconds from t0 until marker appears in path (polled every 20 ms), or None."""
    pos, buf = 0, b""
    while time.monotonic() - t0 < limit:
        try:
            with open(path, "rb") as f:
                f.seek(pos)
                chunk = f.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            seen = time.monotonic()
            pos += len(chunk)
            buf = buf[-256:] + chunk
            if marker in buf:
                return seen - t0
        if p.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def boot_once(hv):
    args = ["--kernel-args", "pt.poweroff=1"] + ([] if hv else ["--no-hv"])
    p, t0 = start_qemu(args, 180)
    t = wait_marker(p, os.path.join(RUN_DIR, "com1.log"), READY, t0, 170)
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    return t


def boot_figures():
    times = {True: [], False: []}
    for i in range(RUNS):
        for hv in (True, False):
            t = boot_once(hv)
            log(f"run {i + 1}/{RUNS} {'hv' if hv else 'bare'}: "
                f"{'no init' if t is None else f'{t:.2f} s'}")
            if t is None:
                raise SystemExit(f"bench_boot: Linux did not reach init ({'with' if hv else 'without'} "
                                 f"the hypervisor); see {RUN_DIR}/com1.log and hv.log")
            times[hv].append(t)
    hv, bare = statistics.median(times[True]), statistics.median(times[False])
    note = f"median of {RUNS} alternating runs, QEMU start to /init, TCG"
    emit(name="boot.linux_ready_s", value=round(hv, 3), unit="s", ref=round(bare, 3),
         ref_name="same boot without pagetrail.efi", ratio=round(hv / bare, 3), note=note)
    emit(name="boot.linux_ready_ratio", value=round(hv / bare, 3), unit="x", ref=1.0,
         ref_name="without pagetrail.efi", ratio=round(hv / bare, 3), note=note)


def parse_stats(line):
    return {k: int(v) for k, v in re.findall(r"(\w[\w.]*)=(\d+)", line)}


def exit_figures():
    """Idle, then pt-memload; stats lines are timestamped on arrival (host time)."""
    p, t0 = start_qemu(["--kernel-args", "pt.workload=bench pt.poweroff=1"], 300)
    hv_log = os.path.join(RUN_DIR, "hv.log")
    com1 = os.path.join(RUN_DIR, "com1.log")
    stats, phase_marks, pos_hv, pos_c, cbuf = [], {}, 0, 0, b""
    while p.poll() is None and time.monotonic() - t0 < 290:
        now = time.monotonic()
        with open(hv_log, "rb") if os.path.exists(hv_log) else open(os.devnull, "rb") as f:
            f.seek(pos_hv)
            chunk = f.read()
        if chunk:
            last_nl = chunk.rfind(b"\n") + 1
            pos_hv += last_nl
            for ln in chunk[:last_nl].decode("utf-8", "replace").splitlines():
                m = STATS_RE.search(ln)
                if m:
                    stats.append((now, parse_stats(m.group(1))))
        with open(com1, "rb") if os.path.exists(com1) else open(os.devnull, "rb") as f:
            f.seek(pos_c)
            chunk = f.read()
        pos_c += len(chunk)
        cbuf += chunk
        for ph in (b"bench-phase idle", b"bench-phase load", b"bench-phase end"):
            if ph in cbuf and ph not in phase_marks:
                phase_marks[ph] = now
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
    p.wait()
    if not stats:
        log("no 'pagetrail: exits' lines on the hypervisor log: exits/s not measured")
        return
    spans = {"idle": (b"bench-phase idle", b"bench-phase load"),
             "load": (b"bench-phase load", b"bench-phase end")}
    for name, (a, b) in spans.items():
        if a not in phase_marks or b not in phase_marks:
            log(f"phase {name} not seen on COM1")
            continue
        inside = [s for s in stats if phase_marks[a] <= s[0] <= phase_marks[b]]
        if len(inside) < 2:
            log(f"fewer than 2 statistics lines during {name}: exits/s not measured")
            continue
        (ta, sa), (tb, sb) = inside[0], inside[-1]
        for reason in sorted(sb):
            if reason in sa:
                rate = (sb[reason] - sa[reason]) / (tb - ta)
                emit(name=f"hv.exits_per_s.{name}.{reason}", value=round(rate, 1), unit="exits/s",
                     note=f"host time over {tb - ta:.1f} s, guest {name}")


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    boot_figures()
    exit_figures()
