#!/usr/bin/env python3
"""`make bench` step (BENCH_STEPS): the management line's ceiling and the hypervisor's rate.

1. The ceiling: tests/guest/uartblast.efi, started by the firmware without the hypervisor
   (QEMU TCG + OVMF, as run-qemu.sh boots everything), writes COM2's transmit register as
   fast as QEMU's 16550 takes bytes, for PT_BENCH_LINE_SECONDS (default 10), in two ways:
   `byte` (LSR read before every byte) and `fifo` (LSR read once per 16 bytes, as the
   hypervisor's transmitter does). This script is the reader on COM2's unix socket: it
   counts the bytes and times them from the first to the last. No x86 code pushes bytes
   through this UART faster than the better of the two.
2. The hypervisor: PageTrail with Linux as its guest (PT_BENCH_LINE_MIB of RAM, default
   256), idle, paused with `ptctl pause`; `ptctl mem read` of PT_BENCH_LINE_READ_MIB
   (default 4) of the kernel from /proc/iomem's "Kernel code" on, in the paused loop,
   with each codec (--codec tokens, deflate): wire bytes (both directions, as ptctl
   counts them) per second of the command, against the ceiling (a ratio).
3. In the same pause, QMP pmemsave of the whole RAM; build/mgmt/codec_bytes runs it
   through the dispatcher with each encoding (every reply decoded and compared): the
   wire bytes of the whole guest, and the seconds they take at the ceiling.

Prints JSON lines (tools/bench.sh); progress on stderr.
"""
import json
import os
import re
import socket
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ next to the tests
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "qemu"))
import ptqemu  # noqa: E402
from ptqemu import Console, QemuError, wait_file  # noqa: E402

BUILD = os.environ.get("BUILD", "build")
SECONDS = int(os.environ.get("PT_BENCH_LINE_SECONDS", "10"))
MIB = int(os.environ.get("PT_BENCH_LINE_MIB", "256"))
READ_MIB = int(os.environ.get("PT_BENCH_LINE_READ_MIB", "4"))
RUN_DIR = os.path.join(BUILD, "bench-run-line")


def emit(**fig):
    print(json.dumps(fig), flush=True)


def log(msg):
    print(f"bench_line: {msg}", file=sys.stderr, flush=True)


def blast(mode):
    """uartblast.efi in MODE: (bytes received, seconds from the first to the last)."""
    p, _ = ptqemu.run_qemu(RUN_DIR, ["--boot-cfg", f"\\EFI\\tests\\uartblast.efi {SECONDS} {mode}"],
                           120 + SECONDS)
    try:
        # Connected before the program writes: a socket chardev drops bytes meanwhile.
        s = ptqemu.connect(os.path.join(RUN_DIR, "mgmt.sock"), 60)
        if not wait_file(os.path.join(RUN_DIR, "com1.log"), r"uartblast: waiting", 90):
            raise QemuError("uartblast.efi did not start")
        # The firmware wrote its console to COM2 while it booted: drop that first.
        s.setblocking(False)
        try:
            while s.recv(1 << 20):
                pass
        except BlockingIOError:
            pass
        s.setblocking(True)
        s.settimeout(2.0)
        s.sendall(b"G")
        n, t_first, t_last = 0, None, None
        while True:
            try:
                b = s.recv(1 << 16)
            except socket.timeout:
                if t_first is not None:
                    break
                continue
            if not b:
                break
            t = time.monotonic()
            if t_first is None:
                t_first = t
            else:
                n += len(b)  # bytes after the first read, over the time after it
            t_last = t
        s.close()
        m = wait_file(os.path.join(RUN_DIR, "com1.log"),
                      r"uartblast: (\w+) (\d+) bytes in (\d+) ms", 30)
        if not m:
            raise QemuError("uartblast.efi did not report")
        log(f"{mode}: the guest wrote {m.group(2)} bytes in {m.group(3)} ms; "
            f"the reader got {n} bytes in {t_last - t_first:.2f} s")
        if t_first is None or t_last <= t_first:
            raise QemuError("no bytes arrived")
        return n, t_last - t_first
    finally:
        ptqemu.stop_qemu(p, 30)


def ptctl_json(*cmd, timeout=1200):
    argv = [os.path.join(BUILD, "ptctl"), "-c", "unix:" + os.path.join(RUN_DIR, "mgmt.sock"),
            "--json"] + list(cmd)
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise QemuError(f"ptctl {' '.join(cmd)}: status {r.returncode}: {r.stderr.strip()}")
    return (json.loads(r.stdout) if r.stdout.strip() else {}), dt


def hypervisor_rate():
    """ptctl mem read of the guest kernel, paused, with each codec: {codec: (wire bytes,
    seconds, bytes read)}; and the wire bytes of the whole RAM per encoding (codec_bytes
    over a QMP pmemsave taken in the same pause)."""
    p, _ = ptqemu.run_qemu(RUN_DIR, ["--com1-socket", "--qemu-arg", "-m", "--qemu-arg",
                                     f"{MIB}M", "--kernel-args", "init_on_free=1 no_timer_check"],
                           1200)
    qmp = None
    try:
        if not wait_file(os.path.join(RUN_DIR, "com1.log"), r"^pagetrail-init: shell", 300):
            raise QemuError("Linux did not reach its shell")
        qmp = ptqemu.Qmp(os.path.join(RUN_DIR, "qmp.sock"))
        con = Console(os.path.join(RUN_DIR, "com1.sock"))
        con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
        since = con.mark()
        con.run_cmd("grep -i kernel /proc/iomem; echo iomem-done", r"^iomem-done", 30)
        txt = con.text(since)
        code = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ : Kernel code", txt, re.M)
        if not code:
            raise QemuError(f"no 'Kernel code' in /proc/iomem: {txt!r}")
        gpa = int(code.group(1), 16)
        con.close()
        time.sleep(5)  # idle, as bench_snapshot.py measures it
        ptctl_json("pause")
        rates = {}
        out = os.path.join(RUN_DIR, "kernel.bin")
        for codec in ("tokens", "deflate"):
            r, dt = ptctl_json("--codec", codec, "mem", "read", hex(gpa), str(READ_MIB << 20),
                               "-o", out)
            log(f"hypervisor: {codec}: mem read of {READ_MIB} MiB at {gpa:#x} (paused): "
                f"{r['wire_bytes']} wire bytes in {dt:.2f} s")
            rates[codec] = (r["wire_bytes"], dt, r["bytes"])
        os.unlink(out)
        ram = os.path.abspath(os.path.join(RUN_DIR, "ram.bin"))
        qmp.cmd("pmemsave", val=0, size=MIB << 20, filename=ram)
        ptctl_json("resume")
        cb = subprocess.run([os.path.join(BUILD, "mgmt", "codec_bytes"), ram],
                            capture_output=True, text=True, timeout=1200)
        os.unlink(ram)
        if cb.returncode != 0:
            raise QemuError(f"codec_bytes: {cb.stderr.strip()}")
        whole = {j["encoding"]: j for j in map(json.loads, cb.stdout.splitlines())}
        return rates, whole
    finally:
        try:
            (qmp or ptqemu.Qmp(os.path.join(RUN_DIR, "qmp.sock"))).cmd("quit")
        except (QemuError, OSError):
            pass
        ptqemu.stop_qemu(p, 30)


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    status = 0
    best = 0
    try:
        for mode in ("byte", "fifo"):
            n, dt = blast(mode)
            rate = n / dt
            best = max(best, rate)
            emit(name=f"line.ceiling.{mode}_kb_per_s", value=round(rate / 1000, 1), unit="KB/s",
                 note=f"uartblast.efi without the hypervisor, LSR read "
                 f"{'per 16 bytes' if mode == 'fifo' else 'per byte'}, {SECONDS} s into "
                 "QEMU's unix-socket chardev (TCG + OVMF)")
        rates, whole = hypervisor_rate()
        for codec, (wire, dt, nbytes) in rates.items():
            rate = wire / dt
            fig = dict(name=f"line.hypervisor.{codec}.mem_read_wire_kb_per_s",
                       value=round(rate / 1000, 1), unit="KB/s",
                       note=f"ptctl --codec {codec} mem read of {nbytes >> 20} MiB of the guest "
                       f"kernel, guest paused, {MIB} MiB Linux; wire bytes per second")
            if best:
                fig.update(ref=round(best / 1000, 1), ref_name="uartblast.efi ceiling",
                           ratio=round(rate / best, 3))
            emit(**fig)
            emit(name=f"line.hypervisor.{codec}.mem_read_memory_kb_per_s",
                 value=round(nbytes / dt / 1000, 1), unit="KB/s",
                 note="guest memory covered per second by the same read")
            emit(name=f"line.hypervisor.{codec}.kernel_wire_bytes", value=wire, unit="B",
                 note=f"wire bytes of the same {nbytes >> 20} MiB of kernel")
        ref = whole.get("tokens")
        for enc, j in whole.items():
            fig = dict(name=f"line.ram.{enc}.wire_mb", value=round(j["wire_bytes"] / 1e6, 2),
                       unit="MB", note=f"MEM_READ of all {MIB} MiB of the idle Linux guest "
                       f"({j['nonzero_pages']} of {j['pages']} pages not zero) through the "
                       f"dispatcher (tests/proto/codec_bytes.c), {j['replies']} replies")
            if ref:
                fig.update(ref=round(ref["wire_bytes"] / 1e6, 2), ref_name="tokens",
                           ratio=round(j["wire_bytes"] / ref["wire_bytes"], 3))
            emit(**fig)
            if best:
                emit(name=f"line.ram.{enc}.seconds_at_ceiling",
                     value=round(j["wire_bytes"] / best, 1), unit="s",
                     note=f"those wire bytes at the ceiling ({best / 1000:.1f} KB/s)")
    except (QemuError, subprocess.TimeoutExpired, KeyError, OSError) as e:
        log(f"failed: {e}")
        status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
