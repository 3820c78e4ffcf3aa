#!/usr/bin/env python3
"""`make bench` step (BENCH_STEPS): `ptctl snapshot` of the test Linux guest.

The guest of tests/snapshot/test_qemu_snapshot.sh (QEMU TCG, SVM + NPT, Debian's kernel
and the busybox initramfs, init_on_free=1) with PT_BENCH_SNAP_MIB of RAM (default 256;
the hypervisor's management port on QEMU's unix socket, no baud limit). For each phase
(idle, then pt-dirtywriter storing at PT_BENCH_SNAP_RATE pages/s over 32 MiB), each form
of PT_BENCH_SNAP_FORMS (default plain,base,cow,live; `base` goes on the phase's first
full core): total time, downtime (the time the command held the guest paused), pages sent
per RAM page of the core, copy-on-write pages used, bytes on the wire, and the rate of
guest memory covered and of wire bytes. The reference for downtime is QEMU's own
`dump-guest-memory` (QMP, no paging) of the same guest, which stops the guest for the
whole dump: its duration is its downtime.

A full copy takes minutes here (QEMU's 16550 makes one system call per byte): the default
set is several full copies; PT_BENCH_SNAP_FORMS and PT_BENCH_SNAP_PHASES (idle,writer)
choose fewer. Prints JSON lines (tools/bench.sh); progress on stderr.
"""
import json
import os
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
import ptqemu  # noqa: E402
from ptqemu import Console, Qmp, QemuError, wait_file  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
MIB = int(os.environ.get("PT_BENCH_SNAP_MIB", "256"))
FORMS = os.environ.get("PT_BENCH_SNAP_FORMS", "plain,base,cow,live").split(",")
PHASES = os.environ.get("PT_BENCH_SNAP_PHASES", "idle,writer").split(",")
RATE = int(os.environ.get("PT_BENCH_SNAP_RATE", "2000"))
RUN_DIR = os.path.join(BUILD, "bench-run-snapshot")
FULL_COPY_S = 1200  # the most one full copy may take on a loaded host


def emit(**fig):
    print(json.dumps(fig), flush=True)


def log(msg):
    print(f"bench_snapshot: {msg}", file=sys.stderr, flush=True)


def ptctl_json(*cmd, timeout=FULL_COPY_S):
    argv = [os.path.join(BUILD, "ptctl"), "-c", "unix:" + os.path.join(RUN_DIR, "mgmt.sock"),
            "--json"] + list(cmd)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return json.loads(r.stdout)


def snapshot(phase, form, base_core):
    core = os.path.join(RUN_DIR, f"{phase}-{form}.core")
    extra = {"plain": [], "cow": ["--cow"], "live": ["--live"],
             "base": ["--base", base_core or ""]}[form]
    if form == "base" and not base_core:
        log(f"{phase}: no full core to base on, --base skipped")
        return None
    log(f"{phase}: snapshot {form} ...")
    s = ptctl_json("snapshot", "-o", core, *extra)
    log(f"{phase}: {form}: {s['total_ms']} ms, downtime {s['downtime_ms']} ms, "
        f"{s['pages_sent']} of {s['pages']} pages sent, {s['wire_bytes']} wire bytes")
    return core, s


def dump_reference(qmp, phase):
    """QEMU's dump-guest-memory (ELF, no paging): the guest is stopped for all of it."""
    out = os.path.abspath(os.path.join(RUN_DIR, f"{phase}-qemu-dump.core"))
    t0 = time.monotonic()
    qmp.cmd("dump-guest-memory", paging=False, protocol="file:" + out)
    dt = (time.monotonic() - t0) * 1000
    size = os.path.getsize(out)
    os.unlink(out)
    log(f"{phase}: QEMU dump-guest-memory {dt:.0f} ms, {size} bytes")
    return dt


def figures(phase, form, s, ref_ms, note):
    key = f"snapshot.{phase}.{form}"
    ram = s["pages"] * 4096
    secs = s["total_ms"] / 1000
    emit(name=f"{key}.total_s", value=round(secs, 1), unit="s", note=note)
    fig = dict(name=f"{key}.downtime_ms", value=s["downtime_ms"], unit="ms", note=note)
    if ref_ms:
        fig.update(ref=round(ref_ms), ref_name="QEMU dump-guest-memory of the same guest",
                   ratio=round(s["downtime_ms"] / ref_ms, 3))
    emit(**fig)
    emit(name=f"{key}.pages_sent_per_page", value=round(s["pages_sent"] / s["pages"], 4),
         unit="pages/page", note=note)
    emit(name=f"{key}.wire_bytes_per_page", value=round(s["wire_bytes"] / s["pages"], 1),
         unit="B/page", note=note)
    emit(name=f"{key}.wire_kb_per_s", value=round(s["wire_bytes"] / 1000 / max(secs, 1e-3), 1),
         unit="KB/s", note=note)
    emit(name=f"{key}.memory_mb_per_s", value=round(ram / 1e6 / max(secs, 1e-3), 2), unit="MB/s",
         note=note)
    if form == "cow":
        emit(name=f"{key}.cow_pages", value=s["cow_pages"], unit="pages",
             note=f"{note}; budget {s.get('cow_budget_pages')} pages, "
             f"{s.get('cow_waits')} waits")
    if form == "live":
        emit(name=f"{key}.rounds", value=s["rounds"], unit="rounds", note=note)


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    p, _ = ptqemu.run_qemu(RUN_DIR, ["--com1-socket", "--qemu-arg", "-m", "--qemu-arg",
                                     f"{MIB}M", "--kernel-args", "init_on_free=1 no_timer_check"],
                           300 + FULL_COPY_S * len(FORMS) * len(PHASES))
    status = 0
    qmp = None
    try:
        if not wait_file(os.path.join(RUN_DIR, "com1.log"), r"^pagetrail-init: shell", 300):
            raise QemuError("Linux did not reach its shell")
        con = Console(os.path.join(RUN_DIR, "com1.sock"))
        qmp = Qmp(os.path.join(RUN_DIR, "qmp.sock"))
        con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
        for phase in PHASES:
            if phase == "writer":
                since = con.mark()
                con.run_cmd(f"pt-dirtywriter --pattern random --mib 32 --rate {RATE} & "
                            "echo wl-pid-$!", r"^wl-pid-(\d+)", 30)
                if not con.wait(r"dirtywriter: ready", 60, since):
                    raise QemuError("pt-dirtywriter did not get ready")
                note = (f"{MIB} MiB Linux, pt-dirtywriter random stores over 32 MiB at "
                        f"{RATE} pages/s, QEMU unix socket, TCG")
            else:
                time.sleep(5)
                note = f"{MIB} MiB idle Linux (init_on_free=1), QEMU unix socket, TCG"
            ref_ms = dump_reference(qmp, phase)
            emit(name=f"snapshot.{phase}.qemu_dump_ms", value=round(ref_ms), unit="ms",
                 note=f"QEMU dump-guest-memory (guest stopped throughout); {note}")
            base_core = None
            for form in FORMS:
                r = snapshot(phase, form, base_core)
                if not r:
                    continue
                core, s = r
                figures(phase, form, s, ref_ms, note)
                if form != "base" and base_core is None:
                    base_core = core
                elif core != base_core:
                    os.unlink(core)
                time.sleep(2)  # the guest dirties pages for the next --base
            if base_core:
                os.unlink(base_core)
    except (QemuError, subprocess.TimeoutExpired, KeyError) as e:
        log(f"failed: {e}")
        status = 1
    finally:
        # QEMU is run-qemu.sh's child: QMP quit ends it, killing the script would not.
        # QEMU's QMP socket serves one client: quit on the connection the run used.
        try:
            (qmp or Qmp(os.path.join(RUN_DIR, "qmp.sock"))).cmd("quit")
        except (QemuError, OSError):
            pass
        ptqemu.stop_qemu(p, 30)
    return status


if __name__ == "__main__":
    sys.exit(main())
