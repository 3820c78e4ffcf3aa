#!/usr/bin/env python3
"""The guest side of tests/qemu/test_isolation.sh, driven over the Linux console.

QEMU is already running (tools/run-qemu.sh --com1-socket) with Linux booting under the
hypervisor into a shell. This script reads the hypervisor's hidden regions from its log,
types `pt-attack mem ...` and `pt-attack uart ...` (tests/guest/attack.c) into the shell,
sends bytes into the management port while the attacker listens on the UART, and then
checks from outside the guest: the attacker's marker is nowhere in the hidden memory
(QMP pmemsave), nothing the guest wrote to the UART came out of the management socket,
and the hypervisor counted the accesses. Prints TAP-ish lines; exit status 0 if all ok.

usage: isolation.py RUN_DIR TIMEOUT_SECONDS [negative | cpus=N]

cpus=N: the guest has N CPUs (every one a vCPU, docs/smp.md); the memory and UART attacks
run once pinned to each CPU (taskset), each checked on its own.

negative: the control run, Linux WITHOUT the hypervisor. The attacker is pointed at the
first reserved range above 1 MiB in the guest's /proc/iomem and must succeed there (and
report findings), which shows that it can reach reserved memory at all and that its
"learned nothing" verdicts under the hypervisor are not vacuous.
"""
import os
import re
import sys
import time

import ptqemu
from ptqemu import Console, Qmp, QemuError, text, wait_file

ATTACK_MAGIC = b"PT-ATTACK-WROTE!"
ATTACK_UART = b"UART-LEAK"  # a fragment of attack.c's ATTACK_UART
HOST_SECRET = b"HOST-SECRET-FOR-THE-HYPERVISOR-ONLY\n"
REGION_RE = re.compile(r"pagetrail: hidden region (0x[0-9a-fA-F]+)-(0x[0-9a-fA-F]+)")

run_dir = sys.argv[1]
ptqemu.deadline = time.time() + float(sys.argv[2])
negative = len(sys.argv) > 3 and sys.argv[3] == "negative"
cpus = int(sys.argv[3][5:]) if len(sys.argv) > 3 and sys.argv[3].startswith("cpus=") else 1
failed = 0


def on_cpu(cpu):
    """The shell prefix that pins a command to `cpu`, and the suffix of its check names."""
    return (f"taskset -c {cpu} ", f".cpu{cpu}") if cpus > 1 else ("", "")


def ok(name):
    print(f"ok {name}", flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok {name} {why}", flush=True)


def check(cond, name, why):
    ok(name) if cond else not_ok(name, why)


def ptctl(cmd):
    """`ptctl --json CMD` over the management socket: the parsed answer, or None."""
    try:
        return ptqemu.ptctl(run_dir, cmd)[0]
    except QemuError as e:
        print(f"# {e}", flush=True)
        return None


hv_log = os.path.join(run_dir, "hv.log")
com1_log = os.path.join(run_dir, "com1.log")

if not wait_file(com1_log, r"^pagetrail-init: shell", 240):
    not_ok("isolation.linux_shell", "Linux did not reach its shell")
    sys.exit(1)
ok("isolation.linux_shell")
con = Console(os.path.join(run_dir, "com1.sock"))


def run_in_guest(cmdline, done_re, secs):
    """Types cmdline; the match of done_re in what follows, or None."""
    try:
        return con.run_cmd(cmdline, done_re, secs)
    except QemuError:
        return None


if negative:
    m = run_in_guest("grep -m1 -E '^0*[1-9a-f][0-9a-f]{5,}-[0-9a-f]+ : Reserved' /proc/iomem"
                     " | sed 's/^/iomem-reserved /'", r"^iomem-reserved ([0-9a-f]+)-([0-9a-f]+)", 30)
    if not m:
        not_ok("isolation.negative_control", "no reserved range in the guest's /proc/iomem")
        sys.exit(1)
    a = int(m.group(1), 16)
    b = min(int(m.group(2), 16) + 1, a + 0x2000)
    out = run_in_guest(f"pt-attack mem {a:x} {b:x}; echo attack-exit-mem $?", r"^attack-exit-mem \d+", 60)
    check(out and re.search(r"^attack: not ok read_.*returned", con.text(), re.M),
          "isolation.negative_control_attacker_reaches_reserved_memory_without_hv",
          "without the hypervisor the attacker could not read reserved memory: its verdicts prove nothing")
    con.send(b"poweroff -f\n")
    sys.exit(1 if failed else 0)

regions = [(int(a, 16), int(b, 16)) for a, b in REGION_RE.findall(text(hv_log))]
if not regions:
    not_ok("isolation.hidden_regions_published", "no 'pagetrail: hidden region' line in hv.log")
    sys.exit(1)
ok("isolation.hidden_regions_published")
print("# hidden regions: " + " ".join(f"{a:#x}-{b:#x}" for a, b in regions), flush=True)
hidden_access_before = text(hv_log).count("pagetrail: hidden access")

# The OS received the hidden memory as reserved, never as RAM.
if run_in_guest("sed 's/^/iomem: /' /proc/iomem; echo iomem-end", r"^iomem-end", 30):
    ram = [(int(a, 16), int(b, 16) + 1)
           for a, b in re.findall(r"^iomem: ([0-9a-f]+)-([0-9a-f]+) : System RAM$", con.text(), re.M)]
    overlap = [f"{a:#x}-{b:#x} overlaps RAM {ra:#x}-{rb:#x}"
               for a, b in regions for ra, rb in ram if a < rb and ra < b]
    check(ram and not overlap, "isolation.hidden_regions_not_ram_for_the_os",
          overlap[0] if overlap else "no System RAM in /proc/iomem")
else:
    not_ok("isolation.hidden_regions_not_ram_for_the_os", "could not read /proc/iomem")

# The hypervisor's own view before the attacks (management port, tools/ptctl).
before = {c: ptctl(c) for c in ("info", "slots", "stats")}
check(all(before.values()), "isolation.hv_answers_before", "ptctl info/slots/stats failed")

# Memory: every page of every region the hypervisor hides, with the attacker's own loads
# and stores (through a /dev/mem mapping), and sampled pages with read(). The attacker
# must run to its end.
args = " ".join(f"{a:x} {b:x}" for a, b in regions)
n_acc = 0
for cpu in range(cpus):
    pin, sfx = on_cpu(cpu)
    mark = con.mark()
    if not run_in_guest(f"{pin}pt-attack mem {args}; echo attack-exit-mem $?", r"^attack-exit-mem \d+", 120):
        not_ok("isolation.mem_attack_ran" + sfx, "pt-attack mem did not finish")
        continue
    out = con.text(mark)
    bad = re.findall(r"^attack: not ok .*$", out, re.M)
    m = re.search(r"^attack: faults (\d+)$", out, re.M)
    n = int(m.group(1)) if m else 0
    n_acc += n
    done = re.search(r"^attack: done 0 findings$", out, re.M) and re.search(r"^attack-exit-mem 0$", out, re.M)
    check(done and n > 0 and not bad, "isolation.mem_guest_learned_nothing_changed_nothing" + sfx,
          f"{len(bad)} findings, first: {bad[0]}" if bad else
          "pt-attack died before its end (see com1.log)" if not done else "no access attempted")
    print(f"# {n} guest loads/stores/reads of hidden memory faulted{sfx}", flush=True)

# write() through the kernel: may oops the guest kernel (its copy does not expect a fault
# on the destination), which kills the attacker; it must not complete.
a0 = regions[0][0]
mark = con.mark()
if not run_in_guest(f"pt-attack memwrite {a0:x}; echo attack-exit-memwrite $?", r"^attack-exit-memwrite \d+", 60):
    not_ok("isolation.kernel_write_did_not_complete", "pt-attack memwrite did not finish")
else:
    out = con.text(mark)
    bad = re.findall(r"^attack: not ok .*$", out, re.M)
    check(not bad, "isolation.kernel_write_did_not_complete", bad[0] if bad else "")
    if not re.search(r"^attack: ok write_", out, re.M):
        print("# write() through /dev/mem killed the attacker (guest kernel oops on the injected fault)",
              flush=True)

# Outside view: the attacker's marker must not be in the hidden memory.
qmp = Qmp(os.path.join(run_dir, "qmp.sock"))
found = []
for a, b in regions:
    dump = os.path.join(run_dir, f"hidden-{a:x}.bin")
    try:
        qmp.cmd("pmemsave", val=a, size=b - a, filename=os.path.abspath(dump))
    except QemuError as e:
        not_ok("isolation.pmemsave", str(e))
        continue
    with open(dump, "rb") as f:
        data = f.read()
    os.unlink(dump)
    if ATTACK_MAGIC in data:
        found.append(f"{a + data.index(ATTACK_MAGIC):#x}")
check(not found, "isolation.hidden_memory_unchanged", "attacker's marker found at " + ", ".join(found))

# The hypervisor saw (and counted) the accesses; it logs the first ones.
time.sleep(0.5)
check(text(hv_log).count("pagetrail: hidden access") > hidden_access_before,
      "isolation.hv_counted_hidden_accesses", "no 'pagetrail: hidden access' line after the attack")

# The management UART: connect only now (a client during firmware start confuses OVMF).
mg = Console(os.path.join(run_dir, "mgmt.sock"))
for cpu in range(cpus):
    pin, sfx = on_cpu(cpu)
    mark = con.mark()
    con.send(f"{pin}pt-attack uart 6; echo attack-exit-uart $?\n".encode())
    if con.wait(r"^attack: uart listening", 30, mark):
        for _ in range(30):
            mg.send(HOST_SECRET)
            time.sleep(0.1)
    if not con.wait(r"^attack-exit-uart \d+", 60, mark):
        not_ok("isolation.uart_attack_ran" + sfx, "pt-attack uart did not finish")
        continue
    out = con.text(mark)
    m = re.search(r"^attack: uart regs:.*$", out, re.M)
    print("# " + (m.group(0) if m else "no register dump") + sfx, flush=True)
    bad = re.findall(r"^attack: not ok uart.*$", out, re.M)
    check(not bad and re.search(r"^attack: ok uart_rbr_learned_nothing", out, re.M),
          "isolation.uart_guest_learned_nothing" + sfx, bad[0] if bad else "no result")
time.sleep(1)
check(ATTACK_UART.decode() not in mg.text(), "isolation.uart_guest_writes_go_nowhere",
      "the guest's UART bytes came out of the management socket")
mg.close()  # QEMU serves one client at a time: ptctl needs the socket next

# The hypervisor still answers, its state is what it was, and it counted the attacks.
after = {c: ptctl(c) for c in ("info", "slots", "stats")}
check(all(after.values()), "isolation.hv_answers_after", "ptctl info/slots/stats failed after the attacks")
if all(before.values()) and all(after.values()):
    sb, sa = before["stats"], after["stats"]
    keep = ("hv.footprint_bytes", "hv.smp_unvirtualized", "exit.unknown", "exit.entry_failed", "exit.shutdown")
    changed = [k for k in keep if sb.get(k) != sa.get(k)]
    check(before["info"] == after["info"] and before["slots"] == after["slots"] and not changed,
          "isolation.hv_state_intact",
          "info/slots changed" if not changed else f"{changed[0]}: {sb.get(changed[0])} -> {sa.get(changed[0])}")
    dh = sa.get("guest.hidden_access", 0) - sb.get("guest.hidden_access", 0)
    dp = sa.get("guest.mgmt_port_io", 0) - sb.get("guest.mgmt_port_io", 0)
    print(f"# hypervisor counted {dh} hidden accesses, {dp} management-port I/O by the guest", flush=True)
    check(dh >= n_acc > 0, "isolation.hv_counted_every_hidden_access",
          f"guest.hidden_access grew by {dh}, the attacker saw {n_acc} faults")
    check(dp > 0, "isolation.hv_counted_uart_io", "guest.mgmt_port_io did not grow")

# The guest is still alive after all this, and shuts down cleanly.
check(run_in_guest("echo still-alive-$((6*7))", r"^still-alive-42", 30) is not None,
      "isolation.guest_alive", "the shell stopped answering")
con.send(b"poweroff -f\n")
sys.exit(1 if failed else 0)
