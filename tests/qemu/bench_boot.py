#!/usr/bin/env python3
"""`make bench` step (BENCH_STEPS): Linux boot time with and without the hypervisor.

Time from QEMU's start to the Linux guest's /init ("pagetrail-init: ready" on COM1),
measured on the host, for the default boot (OVMF -> ptboot -> pagetrail.efi -> Linux)
and the same boot without pagetrail.efi (same ESP, same kernel line), alternating
hv/bare runs in one invocation; median of PT_BENCH_BOOT_RUNS (default 5) runs each.

Then exits per second by reason while the guest idles and while it runs pt-memload:
the hypervisor's counters (`ptctl stats`, exit.*) sampled twice inside each phase, over
the host time between the samples.

Prints JSON lines (tools/bench.sh); progress on stderr.
"""
import json
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the tests
import ptqemu  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
RUNS = int(os.environ.get("PT_BENCH_BOOT_RUNS", "5"))
RUN_DIR = os.path.join(BUILD, "bench-run")
READY = b"pagetrail-init: ready"


def emit(**fig):
    print(json.dumps(fig), flush=True)


def log(msg):
    print(f"bench_boot: {msg}", file=sys.stderr, flush=True)


def wait_marker(p, path, marker, t0, limit):
    """Seconds from t0 until marker appears in path (polled every 20 ms), or None."""
    pos, buf, exited = 0, b"", False
    while time.monotonic() - t0 < limit:
        exited = p.poll() is not None  # before the read: QEMU may write its last line and exit
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
        if exited:
            return None
        time.sleep(0.02)
    return None


def boot_once(hv):
    args = ["--kernel-args", "pt.poweroff=1"] + ([] if hv else ["--no-hv"])
    p, t0 = ptqemu.run_qemu(RUN_DIR, args, 180)
    t = wait_marker(p, os.path.join(RUN_DIR, "com1.log"), READY, t0, 170)
    ptqemu.stop_qemu(p)
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


PHASE_S = int(os.environ.get("PT_BENCH_PHASE_S", "20"))


def ptctl_stats():
    stats, _ = ptqemu.ptctl(RUN_DIR, "stats", timeout_ms=5000)
    return time.monotonic(), stats


def exit_figures():
    """Exits/s by reason, idle then under pt-memload (workload bench.sh): the hypervisor's
    counters (ptctl stats over the management port) sampled inside each phase."""
    p, t0 = ptqemu.run_qemu(RUN_DIR, ["--kernel-args", f"pt.workload=bench pt.phase={PHASE_S} pt.poweroff=1"],
                            300)
    com1 = os.path.join(RUN_DIR, "com1.log")
    rates, notes = {}, {}
    try:
        for phase in ("idle", "load"):
            marker = f"bench-phase {phase}".encode()
            if wait_marker(p, com1, marker, t0, 240) is None:
                raise RuntimeError(f"phase {phase} not seen on COM1")
            time.sleep(2)
            ta, sa = ptctl_stats()
            time.sleep(max(1, PHASE_S - 5))
            tb, sb = ptctl_stats()
            note = f"guest {phase} ({'sleep' if phase == 'idle' else 'pt-memload'}), {tb - ta:.1f} s host time"
            if phase == "idle":
                note += "; HLT handling: docs/hv.md"
            notes[phase] = note
            rates[phase] = {k[5:]: (sb[k] - sa[k]) / (tb - ta) for k in sb
                            if k.startswith("exit.") and k in sa and isinstance(sb[k], int)}
        # Every reason that occurred in either phase, and the total.
        seen = sorted(r for r in rates["idle"] if r == "total" or rates["idle"][r] or rates["load"].get(r))
        for phase in ("idle", "load"):
            for r in seen:
                emit(name=f"hv.exits_per_s.{phase}.{r}", value=round(rates[phase].get(r, 0.0), 1),
                     unit="exits/s", note=notes[phase])
    except (RuntimeError, ptqemu.QemuError) as e:
        log(f"exits/s not measured: {e}")
        raise SystemExit(1)
    finally:
        ptqemu.stop_qemu(p, 120)


if __name__ == "__main__":
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    boot_figures()
    exit_figures()
