#!/usr/bin/env bash
# `make bench` step: the full form of the dirty-logging oracle and its figures, one QEMU
# run per CPU count (Linux under the hypervisor, 256 MiB; PT_BENCH_DIRTY_MEM,
# PT_BENCH_DIRTY_ROUNDS, PT_BENCH_DIRTY_CPUS override):
#   dirty.writer_rate.{off,wp,dbit}          pt-dirtywriter random stores/s, ratios vs off
#   dirty.oracle.MODE.WORKLOAD.missed        pages written but not reported (must be 0)
#   dirty.oracle.MODE.WORKLOAD.false_positive_share
#   dirty.exits_per_dirty_page.MODE.WORKLOAD exits (and NPF exits) per page harvested
#   dirty.harvest_time_per_gib.MODE          host wall time of a harvest of every logged slot
#   dirty.harvest_wire_bytes.MODE            serial bytes per harvest (and per dirty page)
# 50 rounds per mode and workload (random, seq, hot, linux) by default. With 2 and 4 CPUs
# (multi-threaded TCG, a writer pinned to each CPU, docs/smp.md) the same figures are
# named dirty.smpN.*. JSON lines on stdout (tools/bench.sh); the oracle's TAP lines and
# progress go to stderr. Fails (status 1) on any missed page.
source "$(dirname "$0")/lib.sh"
pt_init bench_dirty

status=0
for cpus in ${PT_BENCH_DIRTY_CPUS:-1 2 4}; do
	pt_run_dir "bench_dirty_${cpus}cpu"
	PT_QEMU_TIMEOUT=3000 pt_qemu_start --smp "$cpus" --com1-socket --qemu-arg -m \
		--qemu-arg "${PT_BENCH_DIRTY_MEM:-256M}"
	if python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --bench --cpus "$cpus" \
		--rounds "${PT_BENCH_DIRTY_ROUNDS:-50}" --writer-mib 64 --deadline 2900 \
		--summary "$RUN_DIR/summary.json" --poweroff; then
		pt_qemu_wait
	else
		status=1
		pt_qemu_kill
	fi
done
exit $status
