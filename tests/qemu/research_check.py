#!/usr/bin/env python3
"""The research commands (ptctl dirty rate, precopy, wws; docs/research.md) against
PageTrail in QEMU with Linux as its guest, whose pt-dirtywriter stores at a set rate R
to uniformly random pages of a set of W pages (tests/guest/workloads/writer.sh).

Every figure is compared with the model: n stores to uniformly random pages of a set of
W write W (1 - exp(-n / W)) distinct pages, n = R t for a writer that keeps its pace.
An emulated guest on a busy host does not always keep it, so n is what the writer really
stored in the window: it prints "dirtywriter: t=GUEST_TIME stores=K" every few ms;
this script stamps each line as it appears in com1.log, takes the smallest difference
between arrival and guest time as the guest clock's offset (the guest's TSC clock runs
with the host's), and bounds n by the heartbeats around the window's ends (ptctl's JSON
gives them on the host's CLOCK_MONOTONIC). The measured count may exceed the model by
what Linux itself writes in the window (--background pages), and differ from it by the
randomness of the writes (3 standard deviations) and --slack (a fraction). The writer's
pace (n against R t) is printed. A pre-copy over a link slower than the writer must not
converge (checked when the writer really was faster than the link: a starved guest is
reported as such), one over a fast link must. Prints "ok NAME" / "not ok NAME why".

    research_check.py RUN_DIR --rate R --pages W [--slow-link RATE] [--fast-link RATE]
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptqemu  # noqa: E402
from writerbeats import Heartbeats  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--rate", type=float, required=True)
ap.add_argument("--pages", type=float, required=True)
ap.add_argument("--slow-link", default="6M")
ap.add_argument("--fast-link", default="1G")
ap.add_argument("--background", type=float, default=400)
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


beats = None


def distinct(n):
    return W * (1 - math.exp(-n / W))


def within(measured, start, seconds):
    """(ok, text): measured distinct pages against the model for the stores the writer
    made in [start, start + seconds] (host CLOCK_MONOTONIC)."""
    n_min, n_max = beats.stores_in(start, seconds)
    m_lo, m_hi = distinct(n_min), distinct(n_max)
    lo = m_lo * (1 - args.slack) - 3 * math.sqrt(max(m_lo * math.exp(-n_min / W), 1.0))
    hi = m_hi * (1 + args.slack) + 3 * math.sqrt(max(m_hi * math.exp(-n_max / W), 1.0)) + args.background
    pace = (n_min + n_max) / 2 / (R * seconds) if seconds > 0 else 0
    return lo <= measured <= hi, (f"{measured} pages in {seconds:.4f} s, {n_min}-{n_max} stores "
                                  f"(pace {pace:.2f} of {R:.0f}/s), model {m_lo:.0f}-{m_hi:.0f}, "
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
    # The premise: the writer made more stores per second than the link carries pages.
    later = p["rounds"][1:] or p["rounds"]
    n_min = sum(beats.stores_in(p["t0_monotonic_s"] + rd["run_start_s"], rd["window_s"])[0] for rd in later)
    secs = sum(rd["window_s"] for rd in later)
    link_pages_s = p["bandwidth"] / 4096
    if n_min < 1.5 * link_pages_s * secs:
        not_ok("precopy.slow_link_premise", f"(the writer made at least {n_min} stores in {secs:.2f} s, "
               f"not 1.5 x the link's {link_pages_s:.0f} pages/s: the guest did not keep its pace, "
               f"a busy host, or a hypervisor that keeps the guest from its CPU time)")
    else:
        ok("precopy.slow_link_premise", f"{n_min / secs:.0f} stores/s against {link_pages_s:.0f} pages/s")
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
    p = ptctl("precopy", "--bandwidth", args.fast_link, "--downtime", "2", "--plot", png)
    print(f"# fast link: {json.dumps({k: v for k, v in p.items() if k != 'rounds'})}")
    if p["converged"] and p["stop"] == "converged" and p["predicted_downtime_ms"] <= 2:
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
        n_min, n_max = beats.stores_in(start, iv["seconds"])
        pp = (1 - math.exp(-n_min / W), 1 - math.exp(-n_max / W))
        if prev_p is not None:
            exp_lo, exp_hi = W * pp[0] * prev_p[0], W * pp[1] * prev_p[1]
            lo = exp_lo * (1 - 2 * args.slack) - 3 * math.sqrt(exp_lo)
            hi = exp_hi * (1 + 2 * args.slack) + 3 * math.sqrt(exp_hi) + args.background
            exp_prev = (exp_lo + exp_hi) / 2
            print(f"# wws interval {iv['interval']}: {iv['in_previous']} also in the previous, "
                  f"model {exp_lo:.0f}-{exp_hi:.0f} [{lo:.0f}, {hi:.0f}]")
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
