#!/usr/bin/env python3
"""`make bench` step: migration convergence of a 1 GiB Linux guest under PageTrail in
QEMU (docs/research.md), with pt-dirtywriter --steady at two rates over a set of W pages
(tests/guest/workloads/writer.sh). For each rate:

- research.rR.dirty_rate: `ptctl dirty rate` (pages/s) against the writer's known rate
  (the model W (1 - exp(-R t / W)) / t for the rate it was set to); and against the
  model for the stores the writer really made in the window (its heartbeat lines,
  tests/qemu/writerbeats.py), which is what PageTrail must match when the emulated guest
  does not keep its pace;
- research.rR.qemu_calc_dirty_rate: QEMU's own estimate (QMP calc-dirty-rate, page
  sampling) over the same seconds, beside PageTrail's exact figure (MiB/s);
- research.rR.precopy.LINK.{rounds,downtime}: `ptctl precopy` over 100 MiB/s, 1 GiB/s and
  10 GiB/s links (downtime target 300 ms): rounds run, and the predicted downtime.

Figures are JSON lines on stdout (tools/bench.sh); progress on stderr.
PT_BENCH_RESEARCH_RATES: "R:W,R:W" (stores/s : pages), default "4000:16384,16000:65536".
"""
import json
import math
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptqemu  # noqa: E402
from writerbeats import Heartbeats  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
LINKS = [("100MiB_s", "100M"), ("1GiB_s", "1G"), ("10GiB_s", "10G")]
SECONDS = 4


def log(msg):
    print(f"bench_research: {msg}", file=sys.stderr, flush=True)


def emit(**fig):
    print(json.dumps(fig), flush=True)


def ptctl(run_dir, *cmd):
    argv = [os.path.join(BUILD, "ptctl"), "-c", "unix:" + os.path.join(run_dir, "mgmt.sock"),
            "--timeout", "10000", "--json"]
    r = subprocess.run(argv + list(cmd), capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise ptqemu.QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def one_rate(rate, pages):
    name = f"research.r{rate}"
    run_dir = os.path.join(BUILD, "bench-run", f"research-{rate}")
    os.makedirs(run_dir, exist_ok=True)
    qemu, _ = ptqemu.run_qemu(
        run_dir, ["--kernel-args", f"tsc=reliable pt.workload=writer pt.wrate={rate} pt.wpages={pages} pt.wbeat=20"],
        900, stderr=open(os.path.join(run_dir, "run-qemu.err"), "w"))
    try:
        ptqemu.deadline = time.time() + 840
        com1 = os.path.join(run_dir, "com1.log")
        if not ptqemu.wait_file(com1, r"dirtywriter: ready pattern=random", 300):
            raise ptqemu.QemuError(f"no 'dirtywriter: ready' in {com1}")
        beats = Heartbeats(com1)
        time.sleep(3)

        # PageTrail's exact count and QEMU's sampled estimate over the same seconds.
        qmp = ptqemu.Qmp(os.path.join(run_dir, "qmp.sock"))
        got = {}
        t = threading.Thread(target=lambda: got.update(r=ptctl(run_dir, "dirty", "rate", "--seconds", str(SECONDS))))
        t.start()
        qmp.cmd("calc-dirty-rate", **{"calc-time": SECONDS})
        t.join()
        q = {}
        for _ in range(100):
            q = qmp.cmd("query-dirty-rate")
            if q.get("status") == "measured":
                break
            time.sleep(0.2)
        r = got["r"]
        secs = r["seconds"]
        model = pages * (1 - math.exp(-rate * secs / pages)) / secs
        emit(name=f"{name}.dirty_rate", value=round(r["rate_pages_s"], 1), unit="pages/s",
             ref=round(model, 1), ref_name=f"model W(1-exp(-Rt/W))/t, R={rate}/s W={pages}",
             ratio=round(r["rate_pages_s"] / model, 3),
             note=f"{r['dirty_pages']} distinct pages in {secs:.3f} s")
        n_min, n_max = beats.stores_in(r["t0_monotonic_s"], secs)
        n = (n_min + n_max) / 2
        model_n = pages * (1 - math.exp(-n / pages))
        emit(name=f"{name}.dirty_pages_vs_stores_made", value=r["dirty_pages"], unit="pages",
             ref=round(model_n, 1), ref_name=f"model W(1-exp(-n/W)), n={n_min}-{n_max} stores made",
             ratio=round(r["dirty_pages"] / model_n, 3) if model_n else 0,
             note=f"writer pace {n / (rate * secs):.2f} of its set rate (emulated guest)")
        if q.get("status") == "measured":
            emit(name=f"{name}.qemu_calc_dirty_rate", value=q["dirty-rate"], unit="MB/s",
                 ref=round(r["rate_mib_s"], 3), ref_name="PageTrail exact, MiB/s, same seconds",
                 ratio=round(q["dirty-rate"] / r["rate_mib_s"], 3) if r["rate_mib_s"] else 0,
                 note=f"QEMU page sampling ({q.get('sample-pages', '?')} pages/GiB, {q.get('mode', '?')})")
        else:
            log(f"QEMU calc-dirty-rate did not finish: {q}")

        for label, bw in LINKS:
            p = ptctl(run_dir, "precopy", "--bandwidth", bw)
            verdict = "converged" if p["converged"] else f"not converged ({p['stop']})"
            emit(name=f"{name}.precopy.{label}.rounds", value=len(p["rounds"]), unit="rounds",
                 note=f"{verdict}; {p['pages_sent_total']} pages sent in {p['total_s']:.2f} s")
            emit(name=f"{name}.precopy.{label}.downtime", value=round(p["predicted_downtime_ms"], 3),
                 unit="ms", ref=p["downtime_target_ms"], ref_name="downtime target",
                 ratio=round(p["predicted_downtime_ms"] / p["downtime_target_ms"], 3),
                 note=f"{p['pages_remaining']} pages left for the stop-and-copy; {verdict}")
            log(f"r{rate} {bw}: {verdict}, {len(p['rounds'])} rounds, {p['predicted_downtime_ms']:.1f} ms")
    finally:
        qemu.terminate()
        qemu.wait()


def main():
    spec = os.environ.get("PT_BENCH_RESEARCH_RATES", "4000:16384,16000:65536")
    failed = False
    for item in spec.split(","):
        rate, pages = (int(x) for x in item.split(":"))
        try:
            one_rate(rate, pages)
        except (ptqemu.QemuError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
            log(f"rate {rate}: {e}")
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
