#!/usr/bin/env python3
"""The guest's clock under the management tick (tests/qemu/test_guest_clock.sh).

Linux runs with the ACPI PM timer as its clocksource: a 24-bit counter at 3.58 MHz that
wraps every 4.69 s, so a guest that sleeps past a wrap without reading it loses 4.69 s
(Linux bounds its idle sleep to 2.09 s for it). The guest idles, is paused for a while
through ptctl and resumed, idles again; its CLOCK_MONOTONIC (/proc/uptime) must advance by
the host's wall time: a halt whose wake-up the hypervisor lost shows as whole wraps
missing (before the fix this checks, 4 of 5 boots lost one or two wraps in 10 s of idling).
The same lost wake-ups kept a woken guest task waiting for seconds after each resume.

usage: guest_clock.py RUN_DIR
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ptqemu import Console, QemuError, ptctl, wait_file  # noqa: E402

WRAP_S = (1 << 24) / 3579545  # the ACPI PM timer's period
failed = 0


def ok(name, detail=""):
    print(f"ok {name} {detail}".rstrip(), flush=True)


def not_ok(name, detail):
    global failed
    failed += 1
    print(f"not ok {name} {detail}", flush=True)


def main(run_dir):
    if not wait_file(os.path.join(run_dir, "com1.log"), r"^pagetrail-init: shell", 300):
        not_ok("guest_clock.linux_shell", "Linux did not reach its shell")
        return
    con = Console(os.path.join(run_dir, "com1.sock"))
    con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
    m = con.run_cmd("cat /sys/devices/system/clocksource/clocksource0/current_clocksource",
                    r"^(acpi_pm|\w+)\s*$", 30)
    if m.group(1) != "acpi_pm":
        not_ok("guest_clock.acpi_pm", f"the guest's clocksource is {m.group(1)}, not acpi_pm")
        return
    ok("guest_clock.acpi_pm")

    def sample():
        m = con.run_cmd("echo S $(cat /proc/uptime)", r"^S ([0-9.]+) ", 30)
        return time.time(), float(m.group(1))

    a = sample()
    # Pauses of 1 s: the guest cannot read its clock while paused, and an idle one may
    # have read it last 2.09 s before, so a pause of more than about 2.5 s loses a wrap
    # by itself (docs/smp.md "Limits": the guest's time runs on during a pause).
    for _ in range(3):
        time.sleep(4)
        ptctl(run_dir, "pause", want_json=False)
        time.sleep(1)
        ptctl(run_dir, "resume", want_json=False)
    time.sleep(4)
    b = sample()
    wall, guest = b[0] - a[0], b[1] - a[1]
    detail = f"host {wall:.2f} s, guest {guest:.2f} s (a lost PM timer wrap is {WRAP_S:.2f} s)"
    if abs(guest - wall) < WRAP_S / 2:
        ok("guest_clock.keeps_pace", detail)
    else:
        not_ok("guest_clock.keeps_pace", detail)

    con.run_cmd("poweroff -f", r"reboot: Power down", 60)


try:
    main(sys.argv[1])
except (QemuError, OSError, ValueError) as e:
    not_ok("guest_clock.run", f"{type(e).__name__}: {e}")
sys.exit(1 if failed else 0)
