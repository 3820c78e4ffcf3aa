#!/usr/bin/env bash
# `make bench` step: the management line's rate while the guest runs, against the paused
# loop's, under Intel VMX in Bochs, whose 16550 paces its output at the programmed baud
# (115200) in emulated time, as a real UART does (QEMU's empties at once).
# One Bochs run (corei7_skylake_x); dirty_writer.efi (tests/bochs/dirty_writer.c) computes
# and writes without exiting, so the port gets its turns from the VMX preemption timer
# (hv/mgmt_poll.h: every 2 character times while a reply goes out). Then
# PT_BENCH_LINE_KIB (default 128) of the writer's scratch area with `ptctl --codec raw
# mem read` (raw: the bytes on the wire are the memory read, no coder time in between):
# first with the guest running, then paused (the hypervisor polls in a loop: the line's
# pace), then running again.
# Each read is timed in the machine's own time: STATS gives the hypervisor's TSC (hv.tsc,
# Bochs' instruction count with clock sync=none) and its rate (hv.tsc_hz); STATS twice,
# the read, STATS again, and the read's span is the second span less the first (the
# STATS between them costs the line as much as the one after the read).
# Figures (JSON lines on stdout for tools/bench.sh; progress on stderr):
#   bochs.line.running_busy   wire bytes per emulated second of the read, guest running,
#                             as a fraction of the line (115200 baud, 10 bits a byte:
#                             11520 bytes/s); the better of two running reads
#   bochs.line.paused_busy    the same with the guest paused
#   bochs.line.running_kb_per_s, paused_kb_per_s   wire bytes per host second
#   bochs.line.running_polls  timer exits (exit.intr) during the first running read
# Fails (status 1) when Bochs, the writer or a read fails.
source "$(dirname "$0")/lib.sh"
# lib.sh's pt_* helpers report on stdout; here stdout carries only the figures (fd 3).
exec 3>&1 1>&2
model=corei7_skylake_x
pt_init bench_line
pt_need "$BUILD/ptctl" "$BUILD/bochs/dirty_writer.efi"
kib=${PT_BENCH_LINE_KIB:-128}

die() {
	echo "bench_line: $*"
	exit 1
}

pt_bochs_dirty_writer "$model" 1200 || die "the writer did not come up (above)"
scratch=$dw_scratch scratch_pages=$dw_scratch_pages
[ $((kib / 4)) -le "$scratch_pages" ] || die "$kib KiB is more than the scratch area"

ptctl() { $PT_PTCTL "$@" 2>>"$RUN_DIR/ptctl.err"; }
# read_as NAME: the scratch area read once; NAME.json (ptctl's), NAME.secs (host seconds),
# NAME.{a,b,c}.json (STATS twice before, once after).
read_as() {
	local t0 t1 s
	for s in a b; do
		ptctl --json stats >"$RUN_DIR/$1.$s.json" || die "$1: stats failed"
	done
	t0=$(date +%s.%N)
	ptctl --json --codec raw mem read "$scratch" $((kib << 10)) -o "$RUN_DIR/$1.bin" \
		>"$RUN_DIR/$1.json" || die "$1: mem read failed ($(tail -1 "$RUN_DIR/ptctl.err"))"
	t1=$(date +%s.%N)
	ptctl --json stats >"$RUN_DIR/$1.c.json" || die "$1: stats failed"
	echo "$t0 $t1" | awk '{ print $2 - $1 }' >"$RUN_DIR/$1.secs"
	echo "bench_line: $1: $(cat "$RUN_DIR/$1.secs") s"
}

ptctl info >"$RUN_DIR/info.txt" || die "ptctl info failed ($(tail -1 "$RUN_DIR/ptctl.err"))"
read_as running1
ptctl pause >/dev/null || die "pause failed"
read_as paused
ptctl resume >/dev/null || die "resume failed"
read_as running2
grep -h 'management poll' "$RUN_DIR/e9.log" | sed 's/^/bench_line: /'

python3 - "$RUN_DIR" "$kib" <<'PY' >&3 || exit 1
import json, sys

run, kib = sys.argv[1], int(sys.argv[2])
LINE = 115200 / 10  # bytes a second at 115200 baud, 8N1


def measure(name):
    """(wire bytes per host second, per emulated second, timer exits during the read)"""
    wire = json.load(open(f"{run}/{name}.json"))["wire_bytes"]
    a, b, c = (json.load(open(f"{run}/{name}.{s}.json")) for s in "abc")
    if not b["hv.tsc_hz"]:
        sys.exit("bench_line: the hypervisor does not know its TSC rate")
    span = (c["hv.tsc"] - b["hv.tsc"]) - (b["hv.tsc"] - a["hv.tsc"])
    secs = float(open(f"{run}/{name}.secs").read())
    print(f"bench_line: {name}: {wire} wire bytes, {secs:.2f} host s, "
          f"{span / b['hv.tsc_hz']:.3f} emulated s", file=sys.stderr)
    return wire / secs, wire / (span / b["hv.tsc_hz"]), c["exit.intr"] - b["exit.intr"]


paused = measure("paused")
r1, r2 = measure("running1"), measure("running2")
running = max(r1, r2, key=lambda r: r[1])
note = (f"ptctl --codec raw mem read of {kib} KiB, dirty_writer.efi computing, VMX in "
        "Bochs (corei7_skylake_x, ips=50M), 16550 at 115200 baud")


def emit(**f):
    print(json.dumps(f))


emit(name="bochs.line.paused_busy", value=round(paused[1] / LINE, 3), unit="of the line",
     note=note + ", guest paused; wire bytes per emulated second / 11520")
emit(name="bochs.line.running_busy", value=round(running[1] / LINE, 3), unit="of the line",
     note=note + ", guest running (the better of two reads); wire bytes per emulated "
     "second / 11520", ref=round(paused[1] / LINE, 3), ref_name="paused",
     ratio=round(running[1] / paused[1], 3))
emit(name="bochs.line.paused_kb_per_s", value=round(paused[0] / 1000, 2), unit="KB/s",
     note=note + ", guest paused; wire bytes per host second")
emit(name="bochs.line.running_kb_per_s", value=round(running[0] / 1000, 2), unit="KB/s",
     note=note + ", guest running; wire bytes per host second", ref=round(paused[0] / 1000, 2),
     ref_name="paused", ratio=round(running[0] / paused[0], 3))
emit(name="bochs.line.running_polls", value=r1[2], unit="exits",
     note=f"timer exits during the first running read of {kib} KiB")
PY
