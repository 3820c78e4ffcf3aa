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
# Figures (JSON lines on stdout for tools/bench.sh; progress on stderr):
#   bochs.line.running_kb_per_s   wire bytes per second of the command, guest running
#                                 (the better of the two running reads); ref: paused
#   bochs.line.paused_kb_per_s    the same with the guest paused
#   bochs.line.running_polls      timer exits (exit.intr) during the first running read
# Host seconds: Bochs runs faster or slower than its emulated clock as the host allows, so
# the ratio to the paused read of the same run is what compares across runs.
# Fails (status 1) when Bochs, the writer or a read fails.
source "$(dirname "$0")/lib.sh"
# lib.sh's pt_* helpers report on stdout; here stdout carries only the figures (fd 3).
exec 3>&1 1>&2
model=corei7_skylake_x
pt_init bench_line
pt_need "$BUILD/ptctl" "$BUILD/bochs/dirty_writer.efi"
kib=${PT_BENCH_LINE_KIB:-128}
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log

die() {
	echo "bench_line: $*"
	exit 1
}

pt_bochs_chain_esp "$img" '\EFI\pagetrail\pagetrail.efi \EFI\tests\dirty_writer.efi' ||
	die "mtools failed"
pt_relay_start || die "relay did not start ($(cat "$RUN_DIR/relay.out"))"
pt_bochs_start "$model" "$img" 1200 || die "Bochs did not start (see $RUN_DIR/bochs.err)"
pt_wait_for "$com1" '^dirty_writer: scratch 0x[0-9A-Fa-f]+ pages [0-9]+' 400 ||
	die "no 'dirty_writer: scratch' line in $com1"
read -r scratch scratch_pages < <(pt_text "$com1" |
	sed -n 's/^dirty_writer: scratch \(0x[0-9A-Fa-f]*\) pages \([0-9]*\)$/\1 \2/p')
[ $((kib / 4)) -le "$scratch_pages" ] || die "$kib KiB is more than the scratch area"

ptctl() { $PT_PTCTL "$@" 2>>"$RUN_DIR/ptctl.err"; }
# read_as NAME: the scratch area read once; NAME.json (ptctl's), NAME.secs (host seconds).
read_as() {
	local t0 t1
	t0=$(date +%s.%N)
	ptctl --json --codec raw mem read "$scratch" $((kib << 10)) -o "$RUN_DIR/$1.bin" \
		>"$RUN_DIR/$1.json" || die "$1: mem read failed ($(tail -1 "$RUN_DIR/ptctl.err"))"
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ print $2 - $1 }' >"$RUN_DIR/$1.secs"
	echo "bench_line: $1: $(cat "$RUN_DIR/$1.secs") s"
}

ptctl info >"$RUN_DIR/info.txt" || die "ptctl info failed ($(tail -1 "$RUN_DIR/ptctl.err"))"
ptctl --json stats >"$RUN_DIR/stats0.json" || die "stats failed"
read_as running1
ptctl --json stats >"$RUN_DIR/stats1.json" || die "stats failed"
ptctl pause >/dev/null || die "pause failed"
read_as paused
ptctl resume >/dev/null || die "resume failed"
read_as running2
grep -h 'management poll' "$RUN_DIR/e9.log" | sed 's/^/bench_line: /'

python3 - "$RUN_DIR" "$kib" <<'PY' >&3 || exit 1
import json, sys

run, kib = sys.argv[1], int(sys.argv[2])


def rate(name):
    r = json.load(open(f"{run}/{name}.json"))
    return r["wire_bytes"] / float(open(f"{run}/{name}.secs").read())


paused = rate("paused")
running = max(rate("running1"), rate("running2"))
s0, s1 = (json.load(open(f"{run}/stats{i}.json")) for i in (0, 1))
note = (f"ptctl --codec raw mem read of {kib} KiB, dirty_writer.efi computing, VMX in "
        "Bochs (corei7_skylake_x, ips=50M), 16550 at 115200 baud; wire bytes per host second")
print(json.dumps(dict(name="bochs.line.paused_kb_per_s", value=round(paused / 1000, 2),
                      unit="KB/s", note=note + ", guest paused")))
print(json.dumps(dict(name="bochs.line.running_kb_per_s", value=round(running / 1000, 2),
                      unit="KB/s", note=note + ", guest running (the better of two reads)",
                      ref=round(paused / 1000, 2), ref_name="paused",
                      ratio=round(running / paused, 3))))
print(json.dumps(dict(name="bochs.line.running_polls", value=s1["exit.intr"] - s0["exit.intr"],
                      unit="exits", note=f"timer exits during the first running read of {kib} KiB")))
PY
