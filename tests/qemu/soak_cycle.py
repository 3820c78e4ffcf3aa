#!/usr/bin/env python3
"""The parts of a soak cycle (tests/qemu/soak.sh) around the oracle's harvests.

QEMU runs Linux under the hypervisor (tools/run-qemu.sh --com1-socket), its shell on
the console. `soak_cycle.py RUN_DIR --cycle N --samples FILE`:
  1. with a writer and file system activity running in the guest, --latency-samples
     round trips of `ptctl info` (management latency under load);
  2. `ptctl pause`, `ptctl resume` (timed), the guest still answering on its console;
  3. in cycle 1 and every --snapshot-every cycles, `ptctl snapshot -o FILE` of the
     running guest (timed), the file kept only while its size is checked;
  4. `ptctl stats`: hv.pool_free_bytes. The first cycle's value is the baseline (the
     first dirty start keeps per-slot state for good); every later cycle must come back
     to exactly that value, else the hypervisor's page pool leaks.
Appends one JSON line per cycle to FILE. Exit status 0 if every check passed; every
wait is bounded (ptctl --timeout, console waits, the caller's QEMU timeout).

`soak_cycle.py --report FILE [--oracle-summary S.json ...]` prints the soak's figures as
bench JSON lines (tools/bench.sh): cycles, pool drift, latency percentiles (reported,
never asserted), oracle rounds and missed pages.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptqemu  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("run_dir", nargs="?")
ap.add_argument("--cycle", type=int, default=0)
ap.add_argument("--samples")
ap.add_argument("--latency-samples", type=int, default=50)
ap.add_argument("--writer-mib", type=int, default=32)
ap.add_argument("--snapshot-every", type=int, default=10,
                help="a snapshot in cycle 1 and every N cycles after; 0: none")
ap.add_argument("--snapshot-timeout", type=float, default=5400)
ap.add_argument("--report")
ap.add_argument("--oracle-summary", action="append", default=[])
ap.add_argument("--harvest-seconds", type=float, default=0)
args = ap.parse_args()


def ok(name, detail=""):
    print(f"ok {name} {detail}".rstrip(), flush=True)


def not_ok(name, detail):
    print(f"not ok {name} {detail}", flush=True)


def pctl(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else 0.0


def emit(**fig):
    print(json.dumps(fig), flush=True)


def report():
    cycles = [json.loads(ln) for ln in open(args.report) if ln.strip()]
    lat = [x for c in cycles for x in c["info_s"]]
    emit(name="soak.harvest_loop.cycles", value=len(cycles), unit="cycles",
         note=f"{args.harvest_seconds / 3600:.2f} h of harvest loop: oracle rounds (writer, file system "
              "activity, running harvests), pause/resume, a snapshot, the pool's free count")
    base = cycles[0]["pool_free"] if cycles else 0
    drift = max((abs(c["pool_free"] - base) for c in cycles), default=0)
    emit(name="soak.harvest_loop.pool_free_drift", value=drift, unit="bytes",
         note=f"largest difference from the first cycle's free pool ({base} bytes); a leak shows here")
    for p in (50, 90, 99):
        emit(name=f"soak.mgmt_latency.p{p}", value=round(1000 * pctl(lat, p), 2), unit="ms",
             note=f"ptctl info round trip under a guest writer, {len(lat)} samples (reported, not asserted)")
    emit(name="soak.mgmt_latency.max", value=round(1000 * max(lat, default=0), 2), unit="ms",
         note=f"{len(lat)} samples")
    for key, unit in (("pause_s", "ms"), ("resume_s", "ms"), ("snapshot_s", "s")):
        vals = [c[key] for c in cycles if c.get(key) is not None]
        if not vals:
            continue  # no snapshot in this soak (--snapshot-every 0)
        scale = 1000 if unit == "ms" else 1
        emit(name=f"soak.{key[:-2]}.p50", value=round(scale * pctl(vals, 50), 2), unit=unit,
             note=f"max {round(scale * max(vals, default=0), 2)} {unit} over {len(vals)} cycles")
    rounds = misses = 0
    for path in args.oracle_summary:
        s = json.load(open(path))
        for k, v in s.items():
            if isinstance(v, dict) and "rounds" in v and "misses" in v:
                rounds += v["rounds"]
                misses += v["misses"] + v.get("late_misses", 0)
    emit(name="soak.oracle.rounds", value=rounds, unit="rounds",
         note=f"dirty oracle rounds in {len(args.oracle_summary)} runs (modes, workloads, 1 and 2 vCPUs)")
    emit(name="soak.oracle.missed", value=misses, unit="pages", note="written pages missing from a harvest")


def snapshot(run_dir, core):
    """`ptctl snapshot` of the running guest: its seconds. A whole copy over the serial
    line (minutes; about an hour for 256 MiB on a loaded machine), so not ptqemu.ptctl's
    120 s bound but --snapshot-timeout."""
    t0 = time.monotonic()
    try:
        r = subprocess.run([os.path.join(os.environ.get("BUILD", "build"), "ptctl"), "-c",
                            "unix:" + os.path.join(run_dir, "mgmt.sock"), "--timeout", "60000",
                            "snapshot", "-o", core], capture_output=True, text=True,
                           timeout=args.snapshot_timeout)
    except subprocess.TimeoutExpired:
        raise ptqemu.QemuError(f"ptctl snapshot: no end in {args.snapshot_timeout} s")
    if r.returncode != 0:
        raise ptqemu.QemuError(f"ptctl snapshot: status {r.returncode}: {r.stderr.strip()}")
    dt = time.monotonic() - t0
    size = os.path.getsize(core)
    os.unlink(core)
    if size < 1 << 20:
        raise ptqemu.QemuError(f"ptctl snapshot: a {size}-byte core")
    return dt


def cycle():
    run_dir = args.run_dir
    ptqemu.deadline = time.time() + 900 + args.snapshot_timeout
    con = ptqemu.Console(os.path.join(run_dir, "com1.sock"))
    failed = 0
    rec = {"cycle": args.cycle}
    try:
        con.run_cmd("echo soak-console-$((30+1))", r"^soak-console-31", 60)
        w = con.run_cmd(f"pt-dirtywriter --pattern random --mib {args.writer_mib} --rate 20000 "
                        ">/dev/null 2>&1 & echo soak-w-$!", r"^soak-w-(\d+)", 30)
        m = con.run_cmd("/workloads/linuxact.sh >/dev/null 2>&1 & echo soak-fs-$!", r"^soak-fs-(\d+)", 30)
        pids = f"{w.group(1)} {m.group(1)}"
        rec["info_s"] = []
        for _ in range(args.latency_samples):
            _, dt = ptqemu.ptctl(run_dir, "info")
            rec["info_s"].append(dt)
        _, rec["pause_s"] = ptqemu.ptctl(run_dir, "pause", want_json=False)
        _, rec["resume_s"] = ptqemu.ptctl(run_dir, "resume", want_json=False)
        con.run_cmd("echo soak-alive-$((40+1))", r"^soak-alive-41", 60)
        core = os.path.join(run_dir, "soak.core")
        rec["snapshot_s"] = None
        if args.snapshot_every and (args.cycle - 1) % args.snapshot_every == 0:
            rec["snapshot_s"] = snapshot(run_dir, core)
        con.run_cmd(f"kill {pids}; wait {pids}; echo soak-stopped-$((50+2))", r"^soak-stopped-52", 60)
        stats, _ = ptqemu.ptctl(run_dir, "stats")
        if "hv.pool_free_bytes" not in stats:
            not_ok("soak.pool_free", f"cycle {args.cycle}: ptctl stats has no hv.pool_free_bytes")
            return 1
        rec["pool_free"] = stats["hv.pool_free_bytes"]
    except ptqemu.QemuError as e:
        not_ok("soak.cycle", f"cycle {args.cycle}: {e}")
        return 1
    finally:
        con.close()
    prev = [json.loads(ln) for ln in open(args.samples)] if os.path.exists(args.samples) else []
    if prev and rec["pool_free"] != prev[0]["pool_free"]:
        not_ok("soak.pool_free", f"cycle {args.cycle}: {rec['pool_free']} bytes free, "
               f"{prev[0]['pool_free']} after the first cycle: the page pool leaks")
        failed += 1
    with open(args.samples, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if not failed:
        snap = f"snapshot {rec['snapshot_s']:.1f} s" if rec["snapshot_s"] is not None else "no snapshot"
    ok(f"soak.cycle.{args.cycle}", f"pool free {rec['pool_free']}, info p50 "
       f"{1000 * pctl(rec['info_s'], 50):.1f} ms, {snap}")
    return failed


if args.report:
    report()
    sys.exit(0)
sys.exit(1 if cycle() else 0)
