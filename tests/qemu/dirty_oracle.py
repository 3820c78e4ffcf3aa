#!/usr/bin/env python3
"""The dirty-logging oracle: PageTrail's bitmaps against QEMU's own
copy of guest memory.

QEMU already runs (tools/run-qemu.sh --com1-socket) with Linux booting under the
hypervisor into its shell. For each dirty-logging mode, this script starts logging on
every slot (`ptctl dirty start --all --mode M`), takes a baseline, and then, round after
round, with one workload running in the guest:

  1. `ptctl pause`: the hypervisor parks the vCPU in its poll loop; the guest runs no
     instruction until `resume`. (QMP `stop` first would be wrong: it halts QEMU's vCPU,
     which IS the hypervisor, and nobody would answer the serial line.)
  2. harvest: `ptctl dirty get --slot N --clear -o FILE` for every logged slot;
  3. QMP `stop`, `pmemsave` of each logged slot that is RAM in QEMU (and of the other RAM
     slots, to count changes that no log covers), QMP `cont`;
  4. `ptctl resume`; then the guest runs for a random window of --window-min..max s.

Between the pmemsave of round k-1 and that of round k the guest ran exactly once: from
the resume of round k-1 to the pause of round k; every write it made in that window must
be in round k's harvest (the harvest re-arms the pages before handing out their bits,
and the copy is taken after it). Nothing else writes guest RAM in that time: the guest
does no DMA (no NIC, idle disk), the hypervisor writes no guest page (its own memory is
in no slot and not compared). So: every 4 KiB page whose bytes differ between the two
copies must be set in the round-k bitmap of its slot. A page that differs and is not set
is a MISS (lost data: the test fails). A set bit whose page did not change is a false
positive (allowed: the page may have been rewritten with the same bytes; reported).

Workloads (in the guest): pt-dirtywriter (tests/guest/dirtywriter.c) with its random,
seq and hot patterns at a limited store rate (a round dirties part of the buffer), and
plain Linux activity (tests/guest/workloads/linuxact.sh).

Control: at the end of each mode, one round whose harvest is thrown away and replaced by
a second harvest after more guest run time; the check of that round MUST find misses
(else the oracle could not see a lost bitmap and its "0 misses" would prove nothing).

Prints TAP-ish lines (stdout, or stderr with --bench) and, with --bench, JSON figures
(tools/bench.sh) on stdout. Exit status 0 if every check passed.

usage: dirty_oracle.py RUN_DIR [--modes wp,dbit] [--workloads random,seq,hot,linux]
         [--rounds N] [--window-min S] [--window-max S] [--writer-mib N] [--deadline S]
         [--bench] [--throughput-seconds S] [--summary FILE]
"""
import argparse
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time

PAGE = 4096

ap = argparse.ArgumentParser()
ap.add_argument("run_dir")
ap.add_argument("--modes", default="wp,dbit")
ap.add_argument("--workloads", default="random,seq,hot,linux")
ap.add_argument("--rounds", type=int, default=50)
ap.add_argument("--window-min", type=float, default=0.2)
ap.add_argument("--window-max", type=float, default=0.8)
ap.add_argument("--writer-mib", type=int, default=64)
# --nap-ms N: the writer naps 1 ms every N ms (a HLT exit); 0: never. Not needed since the
# hypervisor intercepts INTR always (e0637b2); kept to vary the workload by hand.
ap.add_argument("--nap-ms", type=int, default=0)
# Stores per second of the random and seq writers (hot: ten times more, 1 in 100 of them
# outside the hot set), so that a round dirties part of the buffer, not all of it.
ap.add_argument("--writer-rate", type=int, default=20000)
ap.add_argument("--deadline", type=float, default=1800)
ap.add_argument("--bench", action="store_true")
ap.add_argument("--throughput-seconds", type=int, default=4)
ap.add_argument("--throughput-reps", type=int, default=3)
ap.add_argument("--summary")
ap.add_argument("--poweroff", action="store_true", help="power the guest off at the end")
ap.add_argument("--seed", type=int, default=1)
# --cpus N: the guest has N CPUs; each pt-dirtywriter workload is N writers, one pinned to
# each CPU (taskset), each over writer-mib / N MiB, so that every vCPU writes while the
# hypervisor harvests (docs/smp.md).
ap.add_argument("--cpus", type=int, default=1)
# --writer-cpus 1,3: pin writers to these CPUs only (default: every CPU of --cpus).
ap.add_argument("--writer-cpus")
# --after-harvest-check (with --running-harvest): the writers tag their pages and publish
# their store sequence number (pt-dirtywriter --tag); right after the running harvest
# returns, the oracle reads each writer's number through the hypervisor (ptctl mem read).
# A page of that writer holding a larger number in the copy was written after the running
# harvest had returned, so it must be in the paused harvest that follows: the union of
# the two is not enough for it. This is what a TLB entry left on another CPU would break
# (a write through a stale writable translation: no fault, no D bit): docs/smp.md.
ap.add_argument("--after-harvest-check", action="store_true")
# --expect-misses: the negative control of a hypervisor built without remote TLB flushes
# (pagetrail-noshootdown.efi): passes only if misses are found.
ap.add_argument("--expect-misses", action="store_true")
# --running-harvest: each round first harvests while the guest runs (with a small
# --mgmt-step-pages on the hypervisor, the guest writes between the steps of every
# harvest), then pauses and harvests again. A write made while the first harvest ran is in
# that harvest or in the next one (docs/dirty-logging.md "Harvests in steps"), so every
# changed page must be in the union of the two.
ap.add_argument("--running-harvest", action="store_true",
                help="harvest with the guest running, then paused; check against the union")
ap.add_argument("--log-firmware-slots", action="store_true",
                help="also log the ACPI/runtime/reserved slots that are RAM in QEMU")
args = ap.parse_args()

run_dir = args.run_dir
deadline = time.time() + args.deadline
BUILD = os.environ.get("BUILD", "build")
DIFF = os.path.join(BUILD, "qemu", "dirty-diff")
rng = random.Random(args.seed)
tap = sys.stderr if args.bench else sys.stdout
failed = 0
shm = f"/dev/shm/pt-oracle-{os.getpid()}"


def ok(name, detail=""):
    print(f"ok {name}" + (f" {detail}" if detail else ""), file=tap, flush=True)


def not_ok(name, why):
    global failed
    failed += 1
    print(f"not ok {name} {why}", file=tap, flush=True)


def note(msg):
    print(f"# {msg}", file=tap, flush=True)


def emit(**fig):
    if args.bench:
        if args.cpus > 1:
            # The same figures from a guest with more CPUs: named apart (dirty.smp2.*).
            fig["name"] = fig["name"].replace("dirty.", f"dirty.smp{args.cpus}.", 1)
        print(json.dumps(fig), flush=True)


sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ptqemu  # noqa: E402  (tests/qemu/ptqemu.py: sockets, QMP, console, ptctl)
from ptqemu import Console, Qmp, QemuError, text, wait_file  # noqa: E402

ptqemu.deadline = deadline
Fatal = QemuError


def ptctl(*cmd, want_json=True):
    """ptctl [--json] CMD... over the run's management socket: (answer, seconds)."""
    return ptqemu.ptctl(run_dir, *cmd, want_json=want_json)


def popcount(x):
    return bin(x).count("1")


def bits(x, limit=8):
    """The first `limit` set bit positions of x."""
    out, i = [], 0
    while x and len(out) < limit:
        if x & 1:
            out.append(i)
        x >>= 1
        i += 1
    return out


# ---------------------------------------------------------------------------------------
class Oracle:
    def __init__(self, qmp, con):
        self.qmp, self.con = qmp, con
        os.makedirs(shm, exist_ok=True)
        slots, _ = ptctl("slots")
        self.slots = {s["id"]: s for s in slots}
        self.ram = self.qemu_ram()
        hidden = re.findall(r"pagetrail: hidden region (0x[0-9a-f]+)-(0x[0-9a-f]+)",
                            text(os.path.join(run_dir, "hv.log")))
        self.hidden = [(int(a, 16), int(b, 16)) for a, b in hidden]
        note("QEMU RAM: " + " ".join(f"{a:#x}-{b:#x}" for a, b in self.ram))
        note("hidden: " + " ".join(f"{a:#x}-{b:#x}" for a, b in self.hidden))
        for a, b in self.hidden:
            for s in self.slots.values():
                if a < s["gpa"] + s["size"] and s["gpa"] < b:
                    raise Fatal(f"slot {s['id']} overlaps the hidden region {a:#x}-{b:#x}")
        self.prev = {}   # range key -> dump file of the last round
        self.prev_changed = {}  # range key -> pages that changed in the last round
        self.exit_keys = ("exit.total", "exit.npf")

    def qemu_ram(self):
        """Guest-physical ranges that are RAM in QEMU (pc.ram in the flat memory view)."""
        mtree = self.qmp.cmd("human-monitor-command", **{"command-line": "info mtree -f"})
        i = mtree.find('AS "memory"')
        j = mtree.find("FlatView", i)
        part = mtree[i:j if j > 0 else None]
        out = []
        for a, b in re.findall(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio \d+, ram\): pc\.ram\b", part, re.M):
            out.append((int(a, 16), int(b, 16) + 1))
        if not out:
            raise Fatal("no pc.ram in QEMU's memory tree")
        return out

    def ranges_of(self, slot):
        """(gpa, size, first page in the slot) of the slot's parts that are QEMU RAM."""
        a0, b0 = slot["gpa"], slot["gpa"] + slot["size"]
        out = []
        for a, b in self.ram:
            lo, hi = max(a, a0), min(b, b0)
            if lo < hi:
                out.append((lo, hi - lo, (lo - a0) // PAGE))
        return out

    def setup_ranges(self):
        slots, _ = ptctl("slots")
        self.slots = {s["id"]: s for s in slots}
        self.logged = [s for s in slots if s["logging"]]
        if not self.logged:
            raise Fatal("no slot is logged after dirty start --all")
        self.cmp = []      # (key, slot, gpa, size, first_page): compared against the log
        self.extra = []    # RAM in a slot that is not logged: changes are only counted
        for s in slots:
            for gpa, size, first in self.ranges_of(s):
                key = f"{gpa:x}"
                (self.cmp if s["logging"] else self.extra).append((key, s, gpa, size, first))
        for s in self.logged:
            not_ram = s["size"] - sum(r[3] for r in self.cmp if r[1] is s)
            if not_ram:
                note(f"slot {s['id']}: {not_ram} bytes logged but not RAM in QEMU (not compared)")
        self.logged_bytes = sum(s["size"] for s in self.logged)
        self.prev = {}
        self.prev_changed = {}

    def dump(self, tag):
        """QMP stop, pmemsave every range, cont. Returns {key: file}."""
        files = {}
        self.qmp.cmd("stop")
        try:
            for key, _, gpa, size, _ in self.cmp + self.extra:
                f = os.path.join(shm, f"{key}.{tag}")
                self.qmp.cmd("pmemsave", val=gpa, size=size, filename=f)
                files[key] = f
        finally:
            self.qmp.cmd("cont")
        return files

    def harvest(self, tag):
        """dirty get --clear of every logged slot: {slot id: bitmap int}, wire bytes, time."""
        maps, wire, t = {}, 0, 0.0
        for s in self.logged:
            f = os.path.join(shm, f"bm{s['id']}.{tag}")
            r, dt = ptctl("dirty", "get", "--slot", str(s["id"]), "--clear", "-o", f)
            t += dt
            wire += r["wire_bytes"]
            want = (s["size"] // PAGE + 63) // 64 * 8
            with open(f, "rb") as fh:
                raw = fh.read()
            os.unlink(f)
            if len(raw) != want:
                raise Fatal(f"slot {s['id']}: bitmap file has {len(raw)} bytes, want {want}")
            bm = int.from_bytes(raw, "little")
            if popcount(bm) != r["dirty"]:
                raise Fatal(f"slot {s['id']}: bitmap has {popcount(bm)} bits, ptctl said {r['dirty']}")
            maps[s["id"]] = bm
        return maps, wire, t

    def stats(self):
        st, _ = ptctl("stats")
        return st

    def round(self, tag, discard_harvest=False):
        """One pause-harvest-copy-resume round. Returns the comparison with the last copy.
        --running-harvest: harvest, then pause and harvest again (see the option)."""
        running = args.running_harvest
        paused = False
        seqs, late = None, None
        try:
            if not running:
                ptctl("pause", want_json=False)
                paused = True
            st = self.stats()
            maps, wire, t_harvest = self.harvest(tag)
            if discard_harvest:
                # Control: this harvest is "lost"; let the guest run, then take the next.
                if paused:
                    ptctl("resume", want_json=False)
                    paused = False
                time.sleep(0.1)
                if not running:
                    ptctl("pause", want_json=False)
                    paused = True
                st = self.stats()
                maps, wire, t_harvest = self.harvest(tag)
            if running:
                if args.after_harvest_check and writer_controls:
                    seqs = writer_seqs()
                ptctl("pause", want_json=False)
                paused = True
                more, wire2, _ = self.harvest(tag + ".paused")
                late = more
                maps = {i: maps[i] | more[i] for i in maps}
                wire += wire2
            files = self.dump(tag)
        finally:
            if paused:
                ptctl("resume", want_json=False)
        res = {"misses": 0, "changed": 0, "dirty": 0, "fp": 0, "fp_prev": 0, "extra_changed": 0,
               "wire": wire, "t_harvest": t_harvest, "stats": st, "miss_pages": [],
               "late_misses": 0, "late_checked": 0}
        res["dirty"] = sum(popcount(b) for b in maps.values())
        for key, s, gpa, size, first in self.cmp + self.extra:
            cur = files[key]
            prev = self.prev.get(key)
            self.prev[key] = cur
            if not prev:
                continue
            out = os.path.join(shm, f"diff.{key}")
            r = subprocess.run([DIFF, prev, cur, out], capture_output=True, text=True, timeout=120)
            os.unlink(prev)
            if r.returncode:
                raise Fatal(f"dirty-diff: {r.stderr.strip()}")
            with open(out, "rb") as fh:
                changed = int.from_bytes(fh.read(), "little")
            os.unlink(out)
            if not s["logging"]:
                res["extra_changed"] += popcount(changed)
                continue
            npages = size // PAGE
            logged = (maps[s["id"]] >> first) & ((1 << npages) - 1)
            miss = changed & ~logged
            res["changed"] += popcount(changed)
            fp = logged & ~changed
            res["fp"] += popcount(fp)
            # False positives that are pages changed one round earlier: a page reported twice.
            res["fp_prev"] += popcount(fp & self.prev_changed.get(key, 0))
            self.prev_changed[key] = changed
            if miss:
                res["misses"] += popcount(miss)
                res["miss_pages"] += [f"{gpa + p * PAGE:#x}" for p in bits(miss)]
            if seqs:
                self.check_after_harvest(res, cur, s, gpa, npages, first, seqs,
                                         (late[s["id"]] >> first) & ((1 << npages) - 1), changed)
        # Bits of slot parts that are not QEMU RAM (none on q35) are not false positives
        # of the compared pages: count the compared bits only.
        return res

    def check_after_harvest(self, res, dump, s, gpa, npages, first, seqs, paused_bits, changed):
        """Writer pages stored to after the running harvest returned must be in the paused one."""
        with open(dump, "rb") as fh:
            data = fh.read()
        raw = changed.to_bytes((npages + 7) // 8, "little")
        for p in (i * 8 + b for i, byte in enumerate(raw) if byte for b in range(8) if byte >> b & 1):
            seq, word = struct.unpack_from("<QQ", data, p * PAGE)
            if word >> 32 != TAG_MAGIC_HI or (word & 0xffffffff) not in seqs:
                continue
            if seq <= seqs[word & 0xffffffff]:
                continue
            res["late_checked"] += 1
            if not (paused_bits >> p) & 1:
                res["late_misses"] += 1
                if len(res["miss_pages"]) < 16:
                    res["miss_pages"].append(f"{gpa + p * PAGE:#x}(late)")

    def start_logging(self, mode):
        out, _ = ptctl("dirty", "start", "--all", "--mode", mode, want_json=False)
        note(out.strip())
        if args.log_firmware_slots:
            # --all logs the RAM slots; the ACPI, runtime and reserved slots that are RAM
            # in QEMU can be logged one by one (MMIO never is).
            slots, _ = ptctl("slots")
            for sl in slots:
                ram = sum(r[1] for r in self.ranges_of(sl))
                if not sl["logging"] and sl["type"] != "mmio" and ram == sl["size"]:
                    ptctl("dirty", "start", "--slot", str(sl["id"]), "--mode", mode, want_json=False)
        self.setup_ranges()
        # Baseline: harvest and copy; the first checked round starts from here.
        self.round("base")

    def stop_logging(self):
        ptctl("dirty", "stop", "--all", want_json=False)
        for f in self.prev.values():
            try:
                os.unlink(f)
            except FileNotFoundError:
                pass
        self.prev = {}


# ---------------------------------------------------------------------------------------
class Workload:
    """A workload running in the guest, started and stopped over the console."""

    def __init__(self, con, name, mib, rate=None, tagged=None):
        self.con, self.name, self.mib, self.pid = con, name, mib, None
        self.rate = args.writer_rate if rate is None else rate
        # Tagged writers publish their store count in a control page (pt-dirtywriter --tag).
        self.tagged = args.after_harvest_check if tagged is None else tagged

    def start(self):
        if self.name == "linux":
            m = self.con.run_cmd("/workloads/linuxact.sh >/dev/null 2>&1 & echo wl-pid-$!",
                                 r"^wl-pid-(\d+)", 30)
            self.pid = m.group(1)
            return
        rate = self.rate * (10 if self.name == "hot" else 1)
        since = self.con.mark()  # an earlier writer's "ready" must not count
        pids = []
        cpus = [int(c) for c in args.writer_cpus.split(",")] if args.writer_cpus else range(args.cpus)
        for cpu in cpus:
            pin = f"taskset -c {cpu} " if args.cpus > 1 else ""
            # A tag no earlier writer had: pages an exited writer left behind keep its tag
            # and numbers, which must not count for this one.
            global next_tag
            next_tag += 1
            tag = f" --tag {next_tag}" if self.tagged else ""
            m = self.con.run_cmd(f"{pin}pt-dirtywriter --pattern {self.name} --mib {max(1, self.mib // len(cpus))} "
                                 f"--nap-ms {args.nap_ms} --rate {rate}{tag} & echo wl-pid-$!",
                                 r"^wl-pid-(\d+)", 30)
            pids.append(m.group(1))
        self.pid = " ".join(pids)
        deadline = time.time() + 60
        while len(re.findall(rf"dirtywriter: ready pattern={self.name}", self.con.text(since))) < len(cpus):
            if time.time() > deadline:
                raise Fatal(f"pt-dirtywriter --pattern {self.name} did not get ready on {len(cpus)} CPU(s)")
            time.sleep(0.1)
        global writer_controls
        writer_controls = {int(t): int(g, 16) for t, g in re.findall(
            rf"dirtywriter: ready pattern={self.name} pages=\d+ tag=(\d+) control=(0x[0-9a-f]+)",
            self.con.text(since))}

    def stop_after_error(self):
        """Stops the workload while another error is on its way: that error is the one told."""
        try:
            self.stop()
        except QemuError as e:
            note(f"could not stop the workload after the error below: {e}")

    def stop(self):
        global writer_controls
        writer_controls = {}
        if self.pid:
            self.con.run_cmd(f"kill {self.pid}; wait {self.pid}; echo wl-stopped-$((40+2))",
                             r"^wl-stopped-42", 60)
            self.pid = None


writer_controls = {}  # tag -> guest-physical address of that writer's control page
next_tag = 0  # the last tag given to a writer (pt-dirtywriter --tag, 1..65535)
TAG_MAGIC_HI = 0x50545744  # tests/guest/dirtywriter.c TAG_MAGIC >> 32


def writer_seqs():
    """{tag: the store sequence number each writer has published}, read through ptctl."""
    out = {}
    for tag, gpa in writer_controls.items():
        f = os.path.join(shm, f"control.{tag}")
        ptctl("mem", "read", f"{gpa:#x}", "16", "-o", f)
        with open(f, "rb") as fh:
            seq, word = struct.unpack("<QQ", fh.read(16))
        os.unlink(f)
        if word != (TAG_MAGIC_HI << 32 | tag):
            raise Fatal(f"writer {tag}: control page at {gpa:#x} holds {word:#x}, not its tag "
                        "(the page moved?)")
        out[tag] = seq
    return out


CONTROL_STORES = 2000  # stores the lost harvest's window must hold (about 1900 distinct pages of 64 MiB)


def wait_writer_progress(stores, timeout):
    """Waits until every tagged writer has made `stores` more stores (read through ptctl)."""
    t0 = time.time()
    start = writer_seqs()
    deadline_at = time.time() + timeout
    while True:
        now_seqs = writer_seqs()
        if all(now_seqs[t] - start[t] >= stores for t in start):
            note(f"the writer made {stores} stores after the round before in {time.time() - t0:.2f} s")
            return
        if time.time() > deadline_at:
            raise Fatal(f"the writer made {min(now_seqs[t] - start[t] for t in start)} stores in "
                        f"{timeout} s, want {stores}: the guest does not run")
        time.sleep(0.05)


def throughput(con, oracle, mode, secs):
    """Stores/s of pt-dirtywriter --pattern random with logging off (mode None), wp or dbit,
    harvesting (get + clear) every logged slot every 0.5 s meanwhile, as a user would."""
    if mode:
        ptctl("dirty", "start", "--all", "--mode", mode, want_json=False)
        oracle.setup_ranges()
    since = con.mark()
    con.send(f"pt-dirtywriter --pattern random --mib {args.writer_mib} --nap-ms {args.nap_ms} --seconds {secs}\n".encode())
    if not con.wait(r"dirtywriter: ready", 60, since):
        raise Fatal("throughput: writer not ready")
    end = time.time() + secs + 60
    m = None
    while time.time() < end:
        m = con.wait(r"dirtywriter: pattern=random .* rate=(\d+)", 0.5, since)
        if m:
            break
        if mode:
            oracle.harvest("tp")
    if mode:
        oracle.stop_logging()
    if not m:
        raise Fatal("throughput: the writer did not report")
    return int(m.group(1))


def main():
    os.makedirs(shm, exist_ok=True)
    com1 = os.path.join(run_dir, "com1.log")
    if not wait_file(com1, r"^pagetrail-init: shell", 300):
        not_ok("dirty_oracle.linux_shell", "Linux did not reach its shell")
        return
    ok("dirty_oracle.linux_shell")
    con = Console(os.path.join(run_dir, "com1.sock"))
    qmp = Qmp(os.path.join(run_dir, "qmp.sock"))
    con.run_cmd("echo console-$((20+3))", r"^console-23", 30)
    oracle = Oracle(qmp, con)
    modes = args.modes.split(",")
    workloads = args.workloads.split(",")
    summary = {}

    if args.bench:
        # Off, wp, dbit interleaved, --throughput-reps times; the median of each.
        samples = {}
        for rep in range(args.throughput_reps):
            for mode in [None] + modes:
                r = throughput(con, oracle, mode, args.throughput_seconds)
                samples.setdefault(mode or "off", []).append(r)
                note(f"throughput {mode or 'off'} #{rep}: {r} stores/s")
        rates = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
        emit(name="dirty.writer_rate.off", value=rates["off"], unit="stores/s",
             note=f"pt-dirtywriter random over {args.writer_mib} MiB, {args.throughput_seconds} s, logging off, "
                  f"median of {args.throughput_reps} interleaved with wp/dbit")
        for mode in modes:
            emit(name=f"dirty.writer_rate.{mode}", value=rates[mode], unit="stores/s",
                 ref=rates["off"], ref_name="logging off, same run",
                 ratio=round(rates[mode] / rates["off"], 4) if rates["off"] else 0,
                 note="all RAM slots logged, get+clear of every slot every 0.5 s; median of "
                      f"{args.throughput_reps}: {sorted(samples[mode])}")
        summary["throughput"] = samples

    for mode in modes:
        oracle.start_logging(mode)
        st0 = oracle.stats()
        hv_ns0 = st0.get("dirty.harvest_ns_total", 0)
        note(f"mode {mode}: {len(oracle.logged)} slots logged, {oracle.logged_bytes >> 20} MiB; "
             f"compared {sum(r[3] for r in oracle.cmp) >> 20} MiB, "
             f"unlogged RAM counted {sum(r[3] for r in oracle.extra) >> 10} KiB")
        agg_mode = {"rounds": 0, "wire": 0, "t_harvest": 0.0, "dirty": 0}
        for wl in workloads:
            w = Workload(con, wl, args.writer_mib)
            w.start()
            agg = {"rounds": 0, "misses": 0, "changed": 0, "dirty": 0, "fp": 0, "fp_prev": 0, "extra_changed": 0,
                   "wire": 0, "t_harvest": 0.0, "exits": 0, "npf": 0, "miss_pages": [],
                   "late_misses": 0, "late_checked": 0}
            last_stats = None
            try:
                # The round that spans the start of the workload counts for nobody.
                r = oracle.round(f"{mode}.{wl}.start")
                agg["misses"] += r["misses"]
                agg["miss_pages"] += r["miss_pages"]
                last_stats = r["stats"]
                for k in range(args.rounds):
                    if time.time() > deadline:
                        raise Fatal(f"deadline reached in {mode}/{wl} after {k} rounds")
                    time.sleep(rng.uniform(args.window_min, args.window_max))
                    r = oracle.round(f"{mode}.{wl}.{k}")
                    for key in ("misses", "changed", "dirty", "fp", "fp_prev", "extra_changed", "wire",
                                "t_harvest", "late_misses", "late_checked"):
                        agg[key] += r[key]
                    agg["miss_pages"] += r["miss_pages"]
                    agg["rounds"] += 1
                    st = r["stats"]
                    agg["exits"] += st["exit.total"] - last_stats["exit.total"]
                    agg["npf"] += st["exit.npf"] - last_stats["exit.npf"]
                    last_stats = st
                    if r["misses"] or r["late_misses"]:
                        note(f"{mode}/{wl} round {k}: {r['misses']} MISSED pages, {r['late_misses']} "
                             "written after the running harvest and MISSED by the next, e.g. "
                             + " ".join(r["miss_pages"]))
            except BaseException:
                w.stop_after_error()
                raise
            w.stop()
            name = f"dirty_oracle.{mode}.{wl}"
            fp_share = agg["fp"] / agg["dirty"] if agg["dirty"] else 0.0
            detail = (f"{agg['rounds']} rounds, {agg['changed']} changed pages, {agg['dirty']} bits, "
                      f"0 missed, false positives {agg['fp']} ({100 * fp_share:.1f}%; "
                      f"{agg['fp_prev']} of them changed in the round before), "
                      f"unlogged RAM pages changed {agg['extra_changed']}")
            if args.after_harvest_check:
                detail += (f"; {agg['late_checked']} pages written after a running harvest returned, "
                           f"{agg['late_misses']} of them missed by the next harvest")
            if args.expect_misses:
                if agg["misses"] + agg["late_misses"]:
                    ok(name + ".negative_control_misses", f"{agg['misses']} + {agg['late_misses']} "
                       f"(late) MISSED pages, as expected; {detail}")
                else:
                    not_ok(name + ".negative_control_misses", f"no page missed: the check cannot see "
                           f"a missing shootdown; {detail}")
            elif agg["misses"] or agg["late_misses"]:
                not_ok(name, f"{agg['misses']} MISSED pages (written, not in the bitmap), "
                       f"{agg['late_misses']} written after a running harvest and MISSED by the next, e.g. "
                       + " ".join(agg["miss_pages"][:16]) + f"; {detail}")
            elif args.after_harvest_check and agg["late_checked"] == 0:
                not_ok(name, f"no page written after a running harvest: the check proves nothing; {detail}")
            elif agg["changed"] == 0:
                not_ok(name, f"no page changed in {agg['rounds']} rounds: the check proves nothing")
            else:
                ok(name, detail)
            summary[f"{mode}.{wl}"] = {k: v for k, v in agg.items() if k != "miss_pages"}
            summary[f"{mode}.{wl}"]["fp_share"] = fp_share
            for key in ("rounds", "wire", "t_harvest", "dirty"):
                agg_mode[key] += agg[key]
            if args.bench:
                emit(name=f"dirty.oracle.{mode}.{wl}.missed", value=agg["misses"], unit="pages",
                     note=f"{agg['rounds']} rounds, {agg['changed']} changed pages (QMP pmemsave diff)")
                emit(name=f"dirty.oracle.{mode}.{wl}.false_positive_share", value=round(fp_share, 4),
                     unit="fraction", note=f"{agg['fp']} of {agg['dirty']} bits set on unchanged pages")
                if wl != "linux":
                    emit(name=f"dirty.exits_per_dirty_page.{mode}.{wl}",
                         value=round(agg["exits"] / agg["dirty"], 3) if agg["dirty"] else 0,
                         unit="exits/page",
                         note=f"npf exits/page {agg['npf'] / agg['dirty'] if agg['dirty'] else 0:.3f}; "
                              "ptctl stats deltas over the running windows / bits harvested")
        # Control: a harvest thrown away must show up as misses in the next copy. Its writer
        # is throttled even where the others are not (--writer-rate 0): an unthrottled one
        # rewrites its pages before the next harvest, which then covers the lost one.
        # The harvest to be lost must have pages in it: the writer must have made stores
        # between the round before and that harvest. A fixed sleep does not promise it (a
        # guest that took its time to run again after the pause wrote nothing there, and
        # every page it then wrote was in the next harvest: "went unnoticed"), so wait
        # until the writer's control page shows CONTROL_STORES more stores.
        w = Workload(con, "random", args.writer_mib, rate=args.writer_rate or 20000, tagged=True)
        w.start()
        try:
            time.sleep(0.3)
            pre = oracle.round(f"{mode}.control.pre")
            wait_writer_progress(CONTROL_STORES, 60)
            r = oracle.round(f"{mode}.control", discard_harvest=True)
        except BaseException:
            w.stop_after_error()
            raise
        w.stop()
        if pre["misses"]:
            not_ok(f"dirty_oracle.{mode}.control_pre_round", f"{pre['misses']} MISSED pages, e.g. "
                   + " ".join(pre["miss_pages"]))
        if r["misses"] > 0:
            ok(f"dirty_oracle.{mode}.control_detects_lost_harvest",
               f"{r['misses']} of {r['changed']} changed pages reported missing")
        else:
            not_ok(f"dirty_oracle.{mode}.control_detects_lost_harvest",
                   f"a discarded harvest went unnoticed ({r['changed']} changed pages): the oracle is blind")
        if args.running_harvest:
            # The variant proves something only if harvests really took many steps.
            st1 = oracle.stats()
            steps = st1.get("proto.steps", 0) - st0.get("proto.steps", 0)
            longs = st1.get("proto.long_cmds", 0) - st0.get("proto.long_cmds", 0)
            harvests = st1.get("dirty.harvests", 0) - st0.get("dirty.harvests", 0)
            detail = f"{steps} steps for {harvests} harvests, {longs} of them in more than one step"
            # Most slots are a few pages (firmware ones); the large RAM slot takes ~100.
            if harvests and longs and steps >= 2 * harvests:
                ok(f"dirty_oracle.{mode}.harvests_in_steps", detail)
            else:
                not_ok(f"dirty_oracle.{mode}.harvests_in_steps",
                       f"{detail}: too few steps (is --mgmt-step-pages small?)")
        gib = oracle.logged_bytes / (1 << 30)
        rounds = agg_mode["rounds"] or 1
        summary[f"{mode}.harvest"] = {"logged_bytes": oracle.logged_bytes,
                                      "s_per_round": agg_mode["t_harvest"] / rounds,
                                      "wire_per_round": agg_mode["wire"] / rounds,
                                      "bits": agg_mode["dirty"]}
        if args.bench:
            emit(name=f"dirty.harvest_time_per_gib.{mode}",
                 value=round(agg_mode["t_harvest"] / rounds / gib, 4), unit="s/GiB",
                 note=f"ptctl dirty get --clear of {len(oracle.logged)} slots ({oracle.logged_bytes >> 20} MiB) "
                      "per round, wall time on the host incl. process start, mean of "
                      f"{agg_mode['rounds']} rounds")
            emit(name=f"dirty.harvest_wire_bytes.{mode}", value=round(agg_mode["wire"] / rounds, 1),
                 unit="bytes/harvest",
                 note=f"serial bytes (both ways, ptctl wire_bytes) per round of {len(oracle.logged)} slots; "
                      f"{agg_mode['wire'] / agg_mode['dirty'] if agg_mode['dirty'] else 0:.2f} bytes per dirty page")
            hv_ns = oracle.stats().get("dirty.harvest_ns_total", 0) - hv_ns0
            if hv_ns > 0:
                # Every round of the mode (incl. start and control rounds) harvested every slot.
                n = agg_mode["rounds"] + len(workloads) + 3
                emit(name=f"dirty.harvest_hv_time_per_gib.{mode}", value=round(hv_ns / n / 1e6 / gib, 3),
                     unit="ms/GiB", note="the hypervisor's own time (stat dirty.harvest_ns_total) per "
                                         "harvest of every logged slot")
        oracle.stop_logging()

    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
    ptctl("info", want_json=False)  # the hypervisor still answers
    ok("dirty_oracle.hv_answers_after_rounds")
    if args.poweroff:
        # Wait for it: QEMU drops what the UART has not taken when the client closes.
        con.run_cmd("poweroff -f", r"reboot: Power down", 60)


try:
    main()
except Fatal as e:
    not_ok("dirty_oracle.run", str(e))
except (OSError, ValueError) as e:
    not_ok("dirty_oracle.run", f"{type(e).__name__}: {e}")
finally:
    shutil.rmtree(shm, ignore_errors=True)
sys.exit(1 if failed else 0)
