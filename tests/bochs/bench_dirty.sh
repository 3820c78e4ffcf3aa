#!/usr/bin/env bash
# `make bench` step: dirty logging on EPT under Intel VMX, from Bochs,
# whose counts do not depend on the host's speed. One Bochs run (corei7_skylake_x, the
# model with PML); dirty_writer.efi (tests/bochs/dirty_writer.c) writes, as in
# test_dirty_log.sh, one tracked page and a sweep of 1024 scratch pages per iteration.
# For each of off, wp, dbit, pml: logging started on the writer's slots (not for off): every
# slot that holds its tracked buffer or its scratch area (the firmware may place the two
# allocations in different slots; logging only the buffer's would leave the sweep untracked
# and the figures meaningless), then
# PT_BENCH_BOCHS_ROUNDS rounds (default 3) of PT_BENCH_BOCHS_ROUND_S seconds (default 2):
# resume, wait, pause, `dirty get --clear` (re-arms the slot, like a migration pass).
# The host sends nothing while the guest runs: a management request served during a
# sweep would count in the writer's instructions (the hypervisor's run on its TSC too).
# Figures (JSON lines on stdout for tools/bench.sh; progress on stderr):
#   bochs.dirty.exits_per_dirty_page.MODE   (exit.npf + exit.pml_full) deltas per page
#                                           set in the harvested bitmaps; ref: wp
#   bochs.dirty.writer_insns_per_sweep.MODE emulated instructions of the writer's first
#                                           iteration after a harvest (1025 stores, each to
#                                           a page the harvest re-armed), exits included:
#                                           its rdtsc delta, as Bochs' TSC counts emulated
#                                           instructions with clock sync=none; ref: off
#   bochs.dirty.extra_insns_per_dirty_page.MODE  the same above off, per page stored to
# Fails (status 1) when Bochs, the writer or a harvest fails, or a round dirtied nothing.
source "$(dirname "$0")/lib.sh"
# lib.sh's pt_* helpers report on stdout; here stdout carries only the figures (fd 3).
exec 3>&1 1>&2
model=corei7_skylake_x
pt_init bench_dirty
pt_need "$BUILD/ptctl" "$BUILD/bochs/dirty_writer.efi"
rounds=${PT_BENCH_BOCHS_ROUNDS:-3}
round_s=${PT_BENCH_BOCHS_ROUND_S:-2}

die() {
	echo "bench_dirty: $*"
	exit 1
}

pt_bochs_dirty_writer "$model" 900 || die "the writer did not come up (above)"
buf=$dw_buf stats=$dw_stats scratch=$dw_scratch scratch_pages=$dw_scratch_pages
echo "bench_dirty: writer buf $buf scratch $scratch ($scratch_pages pages) stats $stats"

ptctl() { $PT_PTCTL "$@" 2>>"$RUN_DIR/ptctl.err"; }
ptctl info >"$RUN_DIR/info.txt" || die "ptctl info failed ($(tail -1 "$RUN_DIR/ptctl.err"))"
grep -q 'dirty modes.*pml' "$RUN_DIR/info.txt" || die "$model offers no pml: $(cat "$RUN_DIR/info.txt")"
ptctl --json slots >"$RUN_DIR/slots.json" || die "ptctl slots failed"
# The slots holding the tracked buffer and every page of the scratch area.
slots=$(python3 -c '
import json, sys
slots = json.load(open(sys.argv[1]))
buf, scratch, n = int(sys.argv[2], 0), int(sys.argv[3], 0), int(sys.argv[4])
ids = set()
for gpa in [buf] + [scratch + i * 4096 for i in range(n)]:
    ids.add(next(s["id"] for s in slots if s["gpa"] <= gpa < s["gpa"] + s["size"]))
print(" ".join(map(str, sorted(ids))))
' "$RUN_DIR/slots.json" "$buf" "$scratch" "$scratch_pages") ||
	die "no slot holds the writer's buffer $buf or scratch $scratch"
echo "bench_dirty: logging slots $slots"

# sample NAME: with the guest paused, the hypervisor's counters and the writer's stats page.
sample() {
	ptctl --json stats >"$RUN_DIR/$1.stats.json" &&
		ptctl mem read "$stats" 4096 -o "$RUN_DIR/$1.wstats" >/dev/null
}

# pause_at MODE: pauses the guest and appends the writer's "ITERATIONS BUSY" to MODE.pauses:
# the iteration a pause stops in the middle of has the pause in its rdtsc delta (the
# hypervisor's instructions count too), the next one is the first after the harvest.
# A pause inside an iteration is let go and tried again a moment later (up to 10 times):
# in wp mode an iteration's 1025 write faults take much longer than the writer's Stall
# between iterations, and with only the pauses that happen to fall between two, all of a
# run's could miss (seen once in seven runs). The harvest follows the pause kept.
pause_at() {
	local iters busy tries
	for ((tries = 0; tries < 10; tries++)); do
		ptctl pause >/dev/null || die "pause failed"
		ptctl mem read "$stats" 16 -o "$RUN_DIR/busy" >/dev/null ||
			die "reading the writer's stats failed"
		read -r iters busy < <(od -An -t u8 -w16 "$RUN_DIR/busy")
		[ "$busy" = 0 ] && break
		ptctl resume >/dev/null || die "resume failed"
		sleep "0.$((RANDOM % 4 + 1))"
	done
	echo "$iters $busy" >>"$RUN_DIR/$1.pauses"
}

# measure MODE: writes $RUN_DIR/MODE.* (first/last samples, one bitmap per round).
measure() {
	local mode=$1 r
	: >"$RUN_DIR/$mode.pauses"
	local slot
	rm -f "$RUN_DIR/$mode".*.bm
	if [ "$mode" != off ]; then
		for slot in $slots; do
			ptctl dirty start --slot "$slot" --mode "$mode" >/dev/null ||
				die "dirty start --slot $slot --mode $mode: $(tail -1 "$RUN_DIR/ptctl.err")"
		done
	fi
	pause_at "$mode"
	# The first harvest only re-arms: its bitmap holds the pages dirty before logging began.
	if [ "$mode" != off ]; then
		for slot in $slots; do
			ptctl dirty get --slot "$slot" --clear -o "$RUN_DIR/$mode.0.$slot.bm" >/dev/null ||
				die "$mode: first harvest of slot $slot failed"
		done
	fi
	sample "$mode.first" || die "$mode: first sample failed"
	for ((r = 1; r <= rounds; r++)); do
		ptctl resume >/dev/null || die "resume failed"
		sleep "$round_s"
		pause_at "$mode"
		if [ "$mode" != off ]; then
			for slot in $slots; do
				ptctl dirty get --slot "$slot" --clear -o "$RUN_DIR/$mode.$r.$slot.bm" >/dev/null ||
					die "$mode: round $r harvest of slot $slot failed"
			done
		fi
	done
	sample "$mode.last" || die "$mode: last sample failed"
	ptctl resume >/dev/null || die "resume failed"
	if [ "$mode" != off ]; then
		for slot in $slots; do
			ptctl dirty stop --slot "$slot" >/dev/null || die "dirty stop $mode slot $slot failed"
		done
	fi
	echo "bench_dirty: $mode measured"
}

for m in off wp dbit pml; do
	measure "$m"
done
python3 - "$RUN_DIR" "$rounds" "$round_s" "$slots" "$scratch_pages" <<'PY' >&3 || exit 1
import json, struct, sys

run, rounds, round_s, slots = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split()
modes = ("off", "wp", "dbit", "pml")


ST_ITERS, ST_PAGES, ST_COST, COST_RING = 0, 2, 3, 256  # dirty_writer.c's stats page
SWEEP_PAGES = int(sys.argv[5])  # the scratch area, stored to in every iteration


def load(mode, which):
    st = json.load(open(f"{run}/{mode}.{which}.stats.json"))
    w = struct.unpack("<512Q", open(f"{run}/{mode}.{which}.wstats", "rb").read())
    return st, w[ST_ITERS], w


res = {}
for m in modes:
    s0, i0, _ = load(m, "first")
    s1, i1, w = load(m, "last")
    pauses = [tuple(map(int, ln.split())) for ln in open(f"{run}/{m}.pauses")]
    d = {k: s1[k] - s0[k] for k in ("exit.total", "exit.npf", "exit.pml_full")}
    pages = 0
    if m != "off":
        for r in range(1, rounds + 1):
            for s in slots:
                pages += sum(bin(b).count("1") for b in open(f"{run}/{m}.{r}.{s}.bm", "rb").read())
        if pages == 0:
            sys.exit(f"bench_dirty: {m}: the harvests found no dirty page")
    # Every iteration stores to each scratch page: fewer pages than one sweep means the
    # sweep was not logged, and the per-page figures would describe something else.
    if m != "off" and pages < SWEEP_PAGES:
        sys.exit(f"bench_dirty: {m}: {pages} pages harvested in {rounds} rounds, fewer than one "
                 f"sweep of {SWEEP_PAGES}: the writer's scratch area is not logged")
    if i1 - i0 > COST_RING:
        sys.exit(f"bench_dirty: {m}: {i1 - i0} iterations overflow the writer's cost ring")
    # The pauses followed by a resume in this mode (the last one is not); after a pause
    # that fell between two iterations, the next iteration ran whole after the harvest.
    fresh = [n + 1 for n, busy in pauses[:-1] if not busy and n + 1 <= i1]
    if not fresh:
        sys.exit(f"bench_dirty: {m}: every pause fell inside an iteration ({pauses})")
    costs = [w[ST_COST + i % COST_RING] for i in fresh]
    res[m] = dict(d, pages=pages, iters=i1 - i0, sweeps=len(costs), spread=max(costs) - min(costs),
                  sweep_pages=w[ST_PAGES], insns=sum(costs) / len(costs))
    print(f"bench_dirty: {m}: {res[m]}", file=sys.stderr)


def fig(name, value, unit, note, ref=None, ref_name=None):
    f = {"name": name, "value": round(value, 4), "unit": unit}
    if ref is not None:
        f.update(ref=round(ref, 4), ref_name=ref_name)
        if ref:
            f["ratio"] = round(value / ref, 4)
    f["note"] = note
    print(json.dumps(f))


where = (f"Bochs corei7_skylake_x, {rounds} rounds of {round_s} s, harvest --clear per round, "
         f"{len(slots)} slot(s) logged")
off = res["off"]
for m in modes[1:]:
    r = res[m]
    exits = r["exit.npf"] + r["exit.pml_full"]
    wp = res["wp"]
    wp_exits = (wp["exit.npf"] + wp["exit.pml_full"]) / wp["pages"]
    fig(f"bochs.dirty.exits_per_dirty_page.{m}", exits / r["pages"], "exits/page",
        f"{r['exit.npf']} EPT violation + {r['exit.pml_full']} PML-full exits, "
        f"{r['pages']} pages harvested; all exits {r['exit.total'] + r['exit.pml_full']}; {where}",
        None if m == "wp" else wp_exits, None if m == "wp" else "wp")
for m in modes:
    r = res[m]
    fig(f"bochs.dirty.writer_insns_per_sweep.{m}", r["insns"], "insns/sweep",
        f"emulated instructions (guest TSC) of the first {r['sweep_pages']} stores to distinct "
        f"pages after a harvest, exits included; mean of {r['sweeps']} sweeps, max-min "
        f"{r['spread']}; {where}",
        None if m == "off" else off["insns"], None if m == "off" else "logging off")
for m in modes[1:]:
    r = res[m]
    extra = (r["insns"] - off["insns"]) / r["sweep_pages"]
    fig(f"bochs.dirty.extra_insns_per_dirty_page.{m}", extra, "insns/page",
        f"(insns/sweep - off) / {r['sweep_pages']} pages; {where}")
PY
pt_hv_log_checks bench_dirty
pt_text "$RUN_DIR/e9.log" | grep -Eq "$PT_HV_FAULT" && die "hypervisor fault in $RUN_DIR/e9.log"
exit 0
