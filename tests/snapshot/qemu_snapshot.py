#!/usr/bin/env python3
"""`ptctl snapshot` against the real hypervisor in QEMU (run by test_qemu_snapshot.sh).

Linux runs pt-dirtywriter (random stores over 32 MiB) the whole time. For the plain form
and for --live: `ptctl --json snapshot --stay-paused -o CORE` while the writer runs; the
guest is then still paused at the snapshot's instant, so QMP `pmemsave` of every PT_LOAD's
part that is QEMU RAM is the oracle, and `ptctl --json regs` gives the vCPU state;
tests/snapshot/corecheck.py compares the core with both, page by page and register by
register; readelf must accept the core; then `ptctl resume`. For --live the writer must
have dirtied pages during the copy (pages read > pages in the core).

A full copy costs what QEMU's 16550 emulation moves (one system call per byte: about
100 KB/s on a loaded host, ~25 MB on the wire for this guest), so `make test` runs the
plain form and --base on top of it (only the pages dirtied since cross: quick), then
someone else's `dirty get --clear` and the refused base; --forms plain,base,live adds
--live (another full copy).

--cow (in `make test` in place of the plain form: the same full copy, plus the
copy-on-write path): the user pauses (`ptctl pause`), QMP `pmemsave` of every RAM range
and `ptctl regs` are the oracle of the instant, then `ptctl snapshot --cow --cow-mib
0.5` (128 pages of budget against a writer storing all over 32 MiB: writes wait) arms and
resumes the guest; the core must equal the oracle although the guest wrote during the
copy (cow_pages > 0) and waited for the budget (cow_waits > 0); the guest runs after it.
--base is then taken on the --cow core: exact only if dirty logging missed no write
during or after the copy-on-write session.

usage: qemu_snapshot.py RUN_DIR [--deadline S] [--forms cow,base,plain,live]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
import ptqemu  # noqa: E402
from ptqemu import Console, Qmp, QemuError, wait_file  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--deadline", type=float, default=400)
ap.add_argument("--forms", default="cow,base")
args = ap.parse_args()
run_dir = args.run_dir
ptqemu.deadline = time.time() + args.deadline
build = os.environ.get("BUILD", "build")
failed = 0


def ok(name, good=True, why=""):
    global failed
    if good:
        print(f"ok snapshot_qemu.{name}", flush=True)
    else:
        failed += 1
        print(f"not ok snapshot_qemu.{name} {why}", flush=True)


def ptctl(*cmd, want_json=True):
    return ptqemu.ptctl(run_dir, *cmd, want_json=want_json, timeout_ms=10000)


def ptctl_long(*cmd):
    """A snapshot: longer than ptqemu.ptctl's 120 s bound, bounded by the deadline."""
    argv = [os.path.join(build, "ptctl"), "-c", "unix:" + os.path.join(run_dir, "mgmt.sock"),
            "--json"] + list(cmd)
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True,
                           timeout=max(1, ptqemu.deadline - time.time()))
    except subprocess.TimeoutExpired:
        raise QemuError(f"ptctl {' '.join(cmd)}: no answer before the deadline")
    if r.returncode != 0:
        raise QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout), time.monotonic() - t0


def qemu_ram(qmp):
    mtree = qmp.cmd("human-monitor-command", **{"command-line": "info mtree -f"})
    i = mtree.find('AS "memory"')
    j = mtree.find("FlatView", i)
    part = mtree[i:j if j > 0 else None]
    return [(int(a, 16), int(b, 16) + 1) for a, b in
            re.findall(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio \d+, ram\): pc\.ram\b", part, re.M)]


def loads_of(core):
    out = subprocess.run(["readelf", "-W", "-l", core], capture_output=True, text=True)
    return out.returncode, [(int(p, 16), int(s, 16)) for p, s in
                            re.findall(r"^\s*LOAD\s+\S+\s+\S+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)",
                                       out.stdout, re.M)]


def corecheck(name, core, info, mems, regs):
    cc = subprocess.run([sys.executable, "tests/snapshot/corecheck.py", core, "--vcpus",
                         str(info["vcpus"]), "--json"] + mems + regs,
                        capture_output=True, text=True)
    for line in cc.stdout.splitlines():
        if line.startswith("ok ") or line.startswith("not ok "):
            good = line.startswith("ok ")
            ok(f"{name}." + line.split()[1 if good else 2].split(".", 1)[1], good,
               line.split(" ", 3)[3] if not good and len(line.split(" ", 3)) > 3 else "")
        elif line.startswith("corecheck "):
            print(f"# {name}: {line}", flush=True)
    ok(f"{name}.corecheck_status", cc.returncode == 0, cc.stderr.strip()[-300:])


def save_regs(name, info):
    regs = []
    for v in range(info["vcpus"]):
        r, _ = ptctl("regs", "--vcpu", str(v))
        f = os.path.join(run_dir, f"{name}.regs{v}.json")
        with open(f, "w") as fh:
            json.dump(r, fh)
        regs += ["--regs", f"{v}:{f}"]
    return regs


def pmemsave(name, qmp, ram, ranges):
    mems = []
    for gpa, size in ranges:
        for a, b in ram:
            lo, hi = max(a, gpa), min(b, gpa + size)
            if lo < hi:
                f = os.path.join(os.path.abspath(run_dir), f"{name}.{lo:x}.pmem")
                qmp.cmd("pmemsave", val=lo, size=hi - lo, filename=f)
                mems += ["--mem", f"{lo:#x}:{f}"]
    return mems


def check_cow(qmp, ram, budget_mib):
    """The user's pause is the instant: oracle first, then --cow arms and resumes."""
    name = "cow"
    core = os.path.join(run_dir, "cow.core")
    mems = []
    ptctl("pause", want_json=False)
    try:
        info, _ = ptctl("info")
        slots, _ = ptctl("slots")
        ranges = [(s["gpa"], s["size"]) for s in slots if s["type"] in ("ram", "reserved")]
        mems = pmemsave(name, qmp, ram, ranges)
        regs = save_regs(name, info)
        try:
            snap, dt = ptctl_long("snapshot", "-o", core, "--cow", "--cow-mib", str(budget_mib))
        except QemuError as e:
            ok(f"{name}.snapshot", False, str(e))
            return None
        ok(f"{name}.snapshot")
        print(f"# {name}: {json.dumps(snap)} ({dt:.1f} s)", flush=True)
        after, _ = ptctl("info")
        ok(f"{name}.users_pause_resumed", not after["paused"] and snap["resumed_users_pause"]
           and snap["guest"] == "running", f"info {after} snapshot {snap}")
        ok(f"{name}.guest_wrote_during_copy", snap["cow_pages"] > 0,
           f"cow_pages {snap['cow_pages']}")
        ok(f"{name}.budget_waits", snap["cow_waits"] > 0 and snap["cow_max_used"] ==
           snap["cow_budget_pages"], f"waits {snap['cow_waits']} max_used "
           f"{snap['cow_max_used']} of {snap['cow_budget_pages']}")
        stats, _ = ptctl("stats")
        ok(f"{name}.waits_counted", stats.get("cow.waits", 0) == snap["cow_waits"] and
           stats.get("cow.unsent", 1) == 0, f"cow.waits {stats.get('cow.waits')} "
           f"cow.unsent {stats.get('cow.unsent')}")
        rc, loads = loads_of(core)
        ok(f"{name}.readelf", rc == 0 and loads, f"readelf status {rc}, {len(loads)} PT_LOADs")
        corecheck(name, core, info, mems, regs)
        return snap
    finally:
        ptctl("resume", want_json=False)  # no-op unless the snapshot failed before arming
        for m in mems[1::2]:
            try:
                os.unlink(m.split(":", 1)[1])
            except OSError:
                pass


def check_form(name, qmp, ram, extra, keep=False):
    core = os.path.join(run_dir, f"{name}.core")
    try:
        snap, dt = ptctl_long("snapshot", "-o", core, "--stay-paused", *extra)
    except QemuError as e:
        ok(f"{name}.snapshot", False, str(e))
        return None
    ok(f"{name}.snapshot")
    print(f"# {name}: {json.dumps(snap)} ({dt:.1f} s)", flush=True)
    info, _ = ptctl("info")
    ok(f"{name}.left_paused", info["paused"], "the guest runs after --stay-paused")
    mems = []
    try:
        rc, loads = loads_of(core)
        ok(f"{name}.readelf", rc == 0 and loads, f"readelf status {rc}, {len(loads)} PT_LOADs")
        mems = pmemsave(name, qmp, ram, loads)
        corecheck(name, core, info, mems, save_regs(name, info))
    finally:
        ptctl("resume", want_json=False)
        if not keep:
            os.unlink(core)
        for m in mems[1::2]:
            try:
                os.unlink(m.split(":", 1)[1])
            except OSError:
                pass
    return snap


def main():
    com1 = os.path.join(run_dir, "com1.log")
    if not wait_file(com1, r"^pagetrail-init: shell", 300):
        ok("linux_shell", False, "Linux did not reach its shell")
        return 1
    con = Console(os.path.join(run_dir, "com1.sock"))
    qmp = Qmp(os.path.join(run_dir, "qmp.sock"))
    con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
    ram = qemu_ram(qmp)
    since = con.mark()
    con.run_cmd("pt-dirtywriter --pattern random --mib 32 --rate 20000 & echo wl-pid-$!",
                r"^wl-pid-(\d+)", 30)
    if not con.wait(r"dirtywriter: ready pattern=random", 60, since):
        ok("writer_ready", False, "pt-dirtywriter did not get ready")
        return 1
    forms = args.forms.split(",")
    if "plain" in forms or ("base" in forms and "cow" not in forms):
        check_form("plain", qmp, ram, [], keep="base" in forms and "cow" not in forms)
    if "cow" in forms:
        check_cow(qmp, ram, 0.5)
    if "base" in forms:
        # On the --cow core when there is one: the log must hold every write since its instant.
        plain = os.path.join(run_dir, "cow.core" if "cow" in forms else "plain.core")
        time.sleep(2)  # the writer and Linux dirty pages
        base = check_form("base", qmp, ram, ["--base", plain])
        if base:
            ok("base.fewer_pages", 0 < base["pages_sent"] < base["pages"],
               f"pages_sent {base['pages_sent']} of {base['pages']}")
        # Someone else's dirty get --clear: the series has a gap, the base is refused.
        slots, _ = ptctl("slots")
        big = max((s for s in slots if s["type"] == "ram"), key=lambda s: s["size"])
        ptctl("dirty", "get", "--slot", str(big["id"]), "--clear")
        out = os.path.join(run_dir, "refused.core")
        r = subprocess.run([os.path.join(build, "ptctl"), "-c",
                            "unix:" + os.path.join(run_dir, "mgmt.sock"), "snapshot", "-o", out,
                            "--base", plain], capture_output=True, text=True, timeout=120)
        info, _ = ptctl("info")
        ok("base.stolen_bits_refused", r.returncode == 1 and "dirty log moved" in r.stderr
           and not os.path.exists(out) and not info["paused"],
           f"status {r.returncode}: {r.stderr.strip()}")
        os.unlink(plain)
    elif "cow" in forms:
        os.unlink(os.path.join(run_dir, "cow.core"))
    live = "live" in forms and check_form("live", qmp, ram,
                                          ["--live", "--max-rounds", "4", "--downtime", "20"])
    if live:
        ok("live.guest_wrote_during_copy", live["pages_sent"] > live["pages"] and live["rounds"] >= 2,
           f"pages_sent {live['pages_sent']} pages {live['pages']} rounds {live['rounds']}")
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QemuError as e:
        ok("run", False, str(e))
        sys.exit(1)
