#!/usr/bin/env python3
"""`make bench` step (BENCH_STEPS): what more CPUs cost (docs/smp.md), side by side in one run.

For 1, 2 and 4 CPUs (QEMU multi-threaded TCG, 256 MiB, Linux under PageTrail; PT_BENCH_SMP_CPUS
to choose):

- Boot: QEMU start to the guest's /init with and without pagetrail.efi (same ESP and kernel
  line), median of PT_BENCH_SMP_RUNS (default 3) alternating runs: smp.boot_to_init.NCPU.
- Writers: one pt-dirtywriter per CPU (random pattern, pinned with taskset, unthrottled) for
  PT_BENCH_SMP_SECONDS (default 8) with logging off, then dbit and wp while the host harvests
  every logged slot (dirty get --clear) back to back: stores/s per CPU, and its ratio to
  logging off (smp.writer_rate.MODE.NCPU).
- Harvests in those windows: host time per harvest of all slots, and per GiB logged
  (smp.harvest_ms.MODE.NCPU, ratio to the 1-CPU figure); the remote flushes behind them:
  kicks (NMIs that made a vCPU leave the guest) and exits per harvest, from the vCPUs'
  counters (vcpu.N.kicks, exit.total) over the window (smp.shootdown.kicks_per_harvest.MODE.NCPU,
  smp.shootdown.exits_per_harvest.MODE.NCPU).

Prints JSON lines (tools/bench.sh); progress on stderr.
"""
import json
import os
import re
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the tests
import ptqemu  # noqa: E402
from ptqemu import Console, QemuError, wait_file  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
CPUS = [int(c) for c in os.environ.get("PT_BENCH_SMP_CPUS", "1,2,4").split(",")]
RUNS = int(os.environ.get("PT_BENCH_SMP_RUNS", "3"))
SECONDS = int(os.environ.get("PT_BENCH_SMP_SECONDS", "8"))
RUN_DIR = os.path.join(BUILD, "bench-smp")
READY = "pagetrail-init: ready"


def emit(**fig):
    print(json.dumps(fig), flush=True)


def log(msg):
    print(f"bench_smp: {msg}", file=sys.stderr, flush=True)


def qemu(ncpu, args, timeout):
    return ptqemu.run_qemu(RUN_DIR, ["--smp", str(ncpu), "--qemu-arg", "-m", "--qemu-arg", "256M"] + args,
                           timeout)


def boot_time(ncpu, hv):
    p, t0 = qemu(ncpu, ["--kernel-args", "pt.poweroff=1"] + ([] if hv else ["--no-hv"]), 300)
    com1 = os.path.join(RUN_DIR, "com1.log")
    ptqemu.deadline = time.time() + 290
    m = wait_file(com1, READY, 290)
    t = time.monotonic() - t0 if m else None
    ptqemu.stop_qemu(p)
    if t is None:
        raise SystemExit(f"bench_smp: Linux with {ncpu} CPUs did not reach init "
                         f"({'with' if hv else 'without'} the hypervisor); see {RUN_DIR}")
    return t


def ptctl(*cmd, want_json=True):
    return ptqemu.ptctl(RUN_DIR, *cmd, want_json=want_json, timeout_ms=20000)


def vcpu_sum(stats, suffix):
    return sum(v for k, v in stats.items() if re.fullmatch(rf"vcpu\.\d+\.{re.escape(suffix)}", k))


def writers(con, ncpu):
    """Starts one unthrottled random writer per CPU for SECONDS; returns the stores/s of each."""
    since = con.mark()
    con.send((" ".join(f"taskset -c {c} pt-dirtywriter --pattern random --mib 16 --seconds {SECONDS} "
                       f"> /tmp/w{c} &" for c in range(ncpu)) + " wait; cat /tmp/w*; echo writers-done\n").encode())
    if not con.wait(r"^writers-done", SECONDS + 120, since):
        raise QemuError(f"writers on {ncpu} CPUs did not finish")
    rates = [float(r) for r in re.findall(r"^dirtywriter: pattern=random .* rate=(\d+)", con.text(since), re.M)]
    if len(rates) != ncpu:
        raise QemuError(f"{len(rates)} writer reports for {ncpu} CPUs")
    return rates


def window(con, ncpu, mode):
    """Writers for SECONDS; with a mode, the host harvests all logged slots back to back."""
    result = {"rates": None, "harvests": 0, "t_harvest": 0.0}
    if mode is None:
        result["rates"] = writers(con, ncpu)
        return result
    slots, _ = ptctl("slots")
    logged = [s for s in slots if s["logging"]]
    result["bytes"] = sum(s["size"] for s in logged)
    s0, _ = ptctl("stats")
    since = con.mark()
    con.send((" ".join(f"taskset -c {c} pt-dirtywriter --pattern random --mib 16 --seconds {SECONDS} "
                       f"> /tmp/w{c} &" for c in range(ncpu)) + " wait; cat /tmp/w*; echo writers-done\n").encode())
    if not con.wait(r"dirtywriter: ready|^writers-done", 60, since):
        raise QemuError("writers did not start")
    end = time.monotonic() + SECONDS - 1
    while time.monotonic() < end:
        for s in logged:
            _, dt = ptctl("dirty", "get", "--slot", str(s["id"]), "--clear")
            result["t_harvest"] += dt
        result["harvests"] += 1
    s1, _ = ptctl("stats")
    if not con.wait(r"^writers-done", SECONDS + 120, since):
        raise QemuError(f"writers on {ncpu} CPUs did not finish")
    rates = [float(r) for r in re.findall(r"^dirtywriter: pattern=random .* rate=(\d+)", con.text(since), re.M)]
    if len(rates) != ncpu:
        raise QemuError(f"{len(rates)} writer reports for {ncpu} CPUs")
    result["rates"] = rates
    result["hv_ns"] = s1.get("dirty.harvest_ns_total", 0) - s0.get("dirty.harvest_ns_total", 0)
    result["kicks"] = vcpu_sum(s1, "kicks") - vcpu_sum(s0, "kicks")
    result["exits"] = vcpu_sum(s1, "exit.total") - vcpu_sum(s0, "exit.total")
    return result


def logging_figures(ncpu, per_cpu_1):
    p, _ = qemu(ncpu, ["--com1-socket"], 600)
    ptqemu.deadline = time.time() + 590
    out = {}
    try:
        if not wait_file(os.path.join(RUN_DIR, "com1.log"), r"^pagetrail-init: shell", 300):
            raise QemuError("Linux did not reach its shell")
        con = Console(os.path.join(RUN_DIR, "com1.sock"))
        con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
        for mode in (None, "dbit", "wp"):
            if mode:
                ptctl("dirty", "start", "--all", "--mode", mode, want_json=False)
            out[mode] = window(con, ncpu, mode)
            if mode:
                ptctl("dirty", "stop", "--all", want_json=False)
            log(f"{ncpu} CPUs, logging {mode or 'off'}: {out[mode]}")
        con.send(b"poweroff -f\n")
    finally:
        ptqemu.stop_qemu(p)
    off = statistics.mean(out[None]["rates"])
    note = (f"{ncpu} writers (random, 16 MiB each, unthrottled, one pinned to each CPU), {SECONDS} s; "
            "per-CPU mean")
    emit(name=f"smp.writer_rate.off.{ncpu}cpu", value=round(off), unit="stores/s per CPU", note=note)
    for mode in ("dbit", "wp"):
        r = out[mode]
        rate = statistics.mean(r["rates"])
        emit(name=f"smp.writer_rate.{mode}.{ncpu}cpu", value=round(rate), unit="stores/s per CPU",
             ref=round(off), ref_name="logging off, same boot", ratio=round(rate / off, 4) if off else 0,
             note=note + "; every logged slot harvested (get --clear) back to back")
        if not r["harvests"]:
            continue
        # The hypervisor's own clock (dirty.harvest_ns_total): the serial round trips of
        # ptctl, one per slot, would swamp the work on the vCPUs.
        ms = r["hv_ns"] / r["harvests"] / 1e6
        gib = r["bytes"] / (1 << 30)
        fig = dict(name=f"smp.harvest_ms.{mode}.{ncpu}cpu", value=round(ms, 3), unit="ms/harvest",
                   note=f"hypervisor time (dirty.harvest_ns_total) to get --clear all {gib:.2f} GiB "
                        f"logged, {r['harvests']} harvests while {ncpu} writers ran; with ptctl's "
                        f"round trips {r['t_harvest'] / r['harvests'] * 1000:.0f} ms")
        if per_cpu_1.get(mode):
            fig.update(ref=round(per_cpu_1[mode], 2), ref_name="1 CPU, same run",
                       ratio=round(ms / per_cpu_1[mode], 3))
        emit(**fig)
        emit(name=f"smp.harvest_time_per_gib.{mode}.{ncpu}cpu", value=round(ms / gib, 3),
             unit="ms/GiB", note=fig["note"])
        emit(name=f"smp.shootdown.kicks_per_harvest.{mode}.{ncpu}cpu",
             value=round(r["kicks"] / r["harvests"], 2), unit="kicks/harvest",
             note="NMIs claimed as kicks (remote TLB flushes, docs/smp.md), all vCPUs, per harvest")
        emit(name=f"smp.shootdown.exits_per_harvest.{mode}.{ncpu}cpu",
             value=round(r["exits"] / r["harvests"], 1), unit="exits/harvest",
             note="all exits of all vCPUs in the window (faults, kicks, ticks), per harvest")
        if ncpu == 1:
            per_cpu_1[mode] = ms


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    for ncpu in CPUS:
        times = {True: [], False: []}
        for i in range(RUNS):
            for hv in (True, False):
                times[hv].append(boot_time(ncpu, hv))
                log(f"{ncpu} CPUs run {i + 1}/{RUNS} {'hv' if hv else 'bare'}: {times[hv][-1]:.2f} s")
        hv, bare = statistics.median(times[True]), statistics.median(times[False])
        emit(name=f"smp.boot_to_init.{ncpu}cpu", value=round(hv, 3), unit="s", ref=round(bare, 3),
             ref_name="same boot without pagetrail.efi", ratio=round(hv / bare, 3),
             note=f"median of {RUNS} alternating runs, QEMU start to /init, multi-threaded TCG")
    per_cpu_1 = {}
    for ncpu in CPUS:
        try:
            logging_figures(ncpu, per_cpu_1)
        except QemuError as e:
            raise SystemExit(f"bench_smp: {ncpu} CPUs: {e}; see {RUN_DIR}")


if __name__ == "__main__":
    main()
