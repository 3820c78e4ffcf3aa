#!/usr/bin/env python3
"""The research commands (ptctl dirty rate, precopy, wws; docs/research.md) against
PageTrail in QEMU with Linux as its guest, whose pt-dirtywriter stores at a set rate R
to uniformly random pages of a set of W pages (tests/guest/workloads/writer.sh).

Every figure is compared with the model: n stores to uniformly random pages of a set of
W write W (1 - exp(-n / W)) distinct pages, n = R t for a writer that keeps its pace.
An emulated guest on a busy host does not always keep it, so n is what the writer really
stored in the window: it prints "dirtywriter: t=GUEST_TIME stores=K" every --beat-ms;
this script stamps each line as it appears in com1.log, takes the smallest difference
between arrival and guest time as the guest clock's offset (the guest's TSC clock runs
with the host's), and reads K at the window's ends (ptctl's JSON gives them on the
host's CLOCK_MONOTONIC) by interpolation. The measured count may exceed the model by
what Linux itself writes in the window (--background pages), and differ from it by the
randomness of the writes (3 standard deviations), --slack (a fraction) and the stores
of one heartbeat and one stall credit at each end of a window. The writer's pace (n
against R t) is printed. A pre-copy over a link slower than the writer must not
converge, one over a fast link must. Prints "ok NAME" / "not ok NAME why" lines.

    research_check.py RUN_DIR --rate R --pages W --beat-ms N [--slow-link RATE] [--fast-link RATE]
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptqemu  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--rate", type=float, required=True)
ap.add_argument("--pages", type=float, required=True)
ap.add_argument("--slow-link", default="6M")
ap.add_argument("--fast-link", default="1G")
ap.add_argument("--background", type=float, default=200)
ap.add_argument("--beat-ms", type=float, required=True)
ap.add_argument("--slack", type=float, default=0.05)
ap.add_argument("--deadline", type=float, default=400)
args = ap.parse_args()
ptqemu.deadline = time.time() + args.deadline
W, R = args.pages, args.rate
failed = 0


def ok(name, detail=""):
    print(f"ok research.{name}" + (f"  # {detail}" if detail else ""), flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok research.{name} {why}", flush=True)


HEARTBEAT_RE = re.compile(r"dirtywriter: t=([0-9.]+) stores=([0-9]+)")
# The writer's stall credit (tests/guest/dirtywriter.c STEADY_MAX_CREDIT_S).
STALL_CREDIT_S = 0.025


class Heartbeats(threading.Thread):
    """Follows com1.log, stamping each heartbeat line with time.monotonic() on arrival."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path, self.beats, self.lock = path, [], threading.Lock()
        self.start()

    def run(self):
        pos, tail = 0, b""
        while True:
            try:
                with open(self.path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except OSError:
                data = b""
            now = time.monotonic()
            pos += len(data)
            tail += data
            *lines, tail = tail.split(b"\n")
            for line in lines:
                m = HEARTBEAT_RE.search(ptqemu.clean(line))
                if m:
                    with self.lock:
                        self.beats.append((now, float(m.group(1)), int(m.group(2))))
            time.sleep(0.005)

    def stores_at(self, host_t):
        """Stores the writer had made at host_t (CLOCK_MONOTONIC), interpolated."""
        end = time.time() + 10
        while True:
            with self.lock:
                beats = list(self.beats)
            if len(beats) >= 2:
                offset = min(a - g for a, g, _ in beats)
                g = host_t - offset
                if beats[-1][1] >= g:
                    break
            if time.time() > end:
                raise ptqemu.QemuError(f"no writer heartbeat after {host_t:.3f}")
            time.sleep(0.05)
        if g <= beats[0][1]:
            raise ptqemu.QemuError(f"no writer heartbeat before {host_t:.3f}")
        for (_, g0, n0), (_, g1, n1) in zip(beats, beats[1:]):
            if g0 <= g <= g1:
                return n0 + (n1 - n0) * (g - g0) / (g1 - g0) if g1 > g0 else n1
        raise ptqemu.QemuError("heartbeats out of order")


beats = None


def within(measured, start, seconds):
    """(ok, text): measured distinct pages against the model for the stores the writer
    made in [start, start + seconds] (host CLOCK_MONOTONIC)."""
    n = beats.stores_at(start + seconds) - beats.stores_at(start)
    m = W * (1 - math.exp(-n / W))
    sd = 3 * math.sqrt(max(m * math.exp(-n / W), 1.0))
    edge = 2 * R * (args.beat_ms / 1e3 + STALL_CREDIT_S)
    lo = m * (1 - args.slack) - sd - edge
    hi = m * (1 + args.slack) + sd + edge + args.background
    pace = n / (R * seconds) if seconds > 0 else 0
    return lo <= measured <= hi, (f"{measured} pages in {seconds:.4f} s, {n:.0f} stores "
                                  f"(pace {pace:.2f} of {R:.0f}/s), model {m:.1f}, "
                                  f"allowed [{lo:.0f}, {hi:.0f}]")


def ptctl(*cmd):
    """Parsed --json output of ptctl CMD (timeout generous: harvests of the whole RAM)."""
    argv = [os.path.join(os.environ.get("BUILD", "build"), "ptctl"), "-c",
            "unix:" + os.path.join(args.run_dir, "mgmt.sock"), "--timeout", "10000", "--json"]
    r = subprocess.run(argv + list(cmd), capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise ptqemu.QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def check_rounds(name, p):
    bad = []
    for rd in p["rounds"]:
        good, text = within(rd["pages_dirtied"], p["t0_monotonic_s"] + rd["run_start_s"], rd["window_s"])
        print(f"# {name} round {rd['round']}: sent {rd['pages_sent']} in {rd['duration_s']:.4f} s; "
              f"dirtied: {text}", flush=True)
        if not good:
            bad.append(f"round {rd['round']}: {text}")
    prev = None
    for rd in p["rounds"]:
        if prev and rd["pages_sent"] != prev["pages_dirtied"]:
            bad.append(f"round {rd['round']} sends {rd['pages_sent']}, round before dirtied {prev['pages_dirtied']}")
        prev = rd
    if bad:
        not_ok(f"{name}.rounds_follow_model", "; ".join(bad))
    else:
        ok(f"{name}.rounds_follow_model", f"{len(p['rounds'])} rounds")


def file_magic(path, magic):
    try:
        with open(path, "rb") as f:
            return magic in f.read(256)
    except OSError:
        return False


def main():
    com1 = os.path.join(args.run_dir, "com1.log")
    if not ptqemu.wait_file(com1, r"dirtywriter: ready pattern=random pages=(\d+)", 240):
        not_ok("writer_ready", f"(no 'dirtywriter: ready' in {com1})")
        return
    ok("writer_ready")
    global beats
    beats = Heartbeats(com1)
    time.sleep(2)

    # dirty rate, one window, then a series.
    r = ptctl("dirty", "rate", "--seconds", "2")
    good, text = within(r["dirty_pages"], r["t0_monotonic_s"], r["seconds"])
    print(f"# dirty rate: {text}; {r['rate_pages_s']:.0f} pages/s")
    (ok if good else not_ok)("rate.single_follows_model", text)
    if sum(s["dirty_pages"] for s in r["slots"]) == r["dirty_pages"] and \
            abs(r["rate_pages_s"] - r["dirty_pages"] / r["seconds"]) < 0.01 * r["rate_pages_s"] + 0.01:
        ok("rate.slots_add_up")
    else:
        not_ok("rate.slots_add_up", f"({r})")
    s = ptctl("dirty", "rate", "--interval", "1", "--count", "3")
    bad = []
    for x in s["samples"]:
        good, text = within(x["dirty_pages"], s["t0_monotonic_s"] + x["start_s"], x["seconds"])
        print(f"# dirty rate series: {text}")
        if not good:
            bad.append(text)
    if len(s["samples"]) != 3:
        bad.append(f"{len(s['samples'])} samples")
    (ok if not bad else not_ok)("rate.series_follows_model", "; ".join(bad))

    # A link slower than the writer: no convergence.
    csv = os.path.join(args.run_dir, "precopy-slow.csv")
    svg = os.path.join(args.run_dir, "precopy-slow.svg")
    p = ptctl("precopy", "--bandwidth", args.slow_link, "--csv", csv, "--plot", svg)
    print(f"# slow link: {json.dumps({k: v for k, v in p.items() if k != 'rounds'})}")
    if not p["converged"] and p["stop"] in ("not_shrinking", "max_rounds") and \
            p["predicted_downtime_ms"] > p["downtime_target_ms"]:
        ok("precopy.slow_link_does_not_converge", f"{len(p['rounds'])} rounds, stop {p['stop']}")
    else:
        not_ok("precopy.slow_link_does_not_converge", f"(converged {p['converged']}, stop {p['stop']})")
    check_rounds("precopy.slow", p)
    with open(csv) as f:
        lines = f.read().splitlines()
    (ok if len(lines) == len(p["rounds"]) + 1 and lines[0].startswith("round,") else not_ok)(
        "precopy.csv", f"({len(lines)} lines for {len(p['rounds'])} rounds)")
    (ok if file_magic(svg, b"<svg") else not_ok)("precopy.plot_svg", f"({svg})")

    # A fast link: convergence within a tight downtime.
    png = os.path.join(args.run_dir, "precopy-fast.png")
    p = ptctl("precopy", "--bandwidth", args.fast_link, "--downtime", "0.5", "--plot", png)
    print(f"# fast link: {json.dumps({k: v for k, v in p.items() if k != 'rounds'})}")
    if p["converged"] and p["stop"] == "converged" and p["predicted_downtime_ms"] <= 0.5:
        ok("precopy.fast_link_converges", f"{len(p['rounds'])} rounds, {p['predicted_downtime_ms']:.3f} ms")
    else:
        not_ok("precopy.fast_link_converges", f"(converged {p['converged']}, stop {p['stop']})")
    check_rounds("precopy.fast", p)
    (ok if file_magic(png, b"PNG") else not_ok)("precopy.plot_png", f"({png})")

    # Writable working set: per interval as the model; pages also dirty in the interval
    # before: each page independently dirty in an interval with p = 1 - exp(-n/W), so
    # about W p p' (plus the background's own hot pages).
    svg = os.path.join(args.run_dir, "wws.svg")
    w = ptctl("wws", "--seconds", "3", "--interval", "1", "--plot", svg)
    bad = []
    prev_p = None
    for iv in w["intervals"]:
        start = w["t0_monotonic_s"] + iv["start_s"]
        good, text = within(iv["dirtied"], start, iv["seconds"])
        print(f"# wws interval {iv['interval']}: {text}")
        if not good:
            bad.append(f"interval {iv['interval']}: {text}")
        n = beats.stores_at(start + iv["seconds"]) - beats.stores_at(start)
        pp = 1 - math.exp(-n / W)
        if prev_p is not None:
            exp_prev = W * pp * prev_p
            edge = 2 * R * (args.beat_ms / 1e3 + STALL_CREDIT_S)
            lo, hi = exp_prev * (1 - 2 * args.slack) - 3 * math.sqrt(exp_prev) - edge, \
                exp_prev * (1 + 2 * args.slack) + 3 * math.sqrt(exp_prev) + edge + args.background
            print(f"# wws interval {iv['interval']}: {iv['in_previous']} also in the previous, "
                  f"model {exp_prev:.0f} [{lo:.0f}, {hi:.0f}]")
            if not lo <= iv["in_previous"] <= hi:
                bad.append(f"interval {iv['interval']}: {iv['in_previous']} in the previous, model {exp_prev:.0f}")
        prev_p = pp
    good, text = within(w["distinct_pages"], w["t0_monotonic_s"], sum(iv["seconds"] for iv in w["intervals"]))
    if not good:
        bad.append(f"distinct: {text}")
    if len(w["intervals"]) != 3:
        bad.append(f"{len(w['intervals'])} intervals")
    (ok if not bad else not_ok)("wws.follows_model", "; ".join(bad))
    (ok if file_magic(svg, b"<svg") else not_ok)("wws.plot_svg", f"({svg})")

    # Each command started logging itself and stopped it; the guest runs.
    info = ptctl("info")
    slots = ptctl("slots")
    if not info["paused"] and not any(x["logging"] for x in slots):
        ok("left_as_found")
    else:
        not_ok("left_as_found", f"(paused {info['paused']}, logging on {[x['id'] for x in slots if x['logging']]})")


try:
    main()
except (ptqemu.QemuError, OSError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
    not_ok("error", f"({e})")
sys.exit(1 if failed else 0)
