#!/usr/bin/env bash
# `make soak`: reliability at scale on SVM (QEMU TCG), hours long; not part of `make test`.
#  1. The dirty oracle (tests/qemu/dirty_oracle.py: every page whose bytes changed must be
#     in the harvest, zero misses) for SOAK_ROUNDS rounds in all (default 10000), shared
#     over both modes (wp, dbit), the four workloads (random, seq, hot, linux) and 1 and 2
#     vCPUs: SOAK_ROUNDS / 16 rounds per mode, workload and vCPU count, one QEMU per vCPU
#     count, each with --mgmt-step-pages 512 (harvests in many steps).
#  2. The harvest loop for SOAK_HARVEST_SECONDS (default 3600) against one Linux guest:
#     cycle after cycle, oracle rounds that harvest while the guest runs (a writer and
#     file system activity; zero misses), then tests/qemu/soak_cycle.py: management
#     latency under a writer, pause/resume, a `ptctl snapshot` of the running guest (cycle
#     1 and every SOAK_SNAPSHOT_EVERY cycles, default 10; 0: none), and
#     the hypervisor's free page pool (ptctl stats), which must come back to the same
#     value after every cycle (no leak).
# No wait is unbounded: QEMU runs under a timeout sized from the work, every ptctl call
# and console wait has its own. Latency is reported, never asserted. The figures go out
# as bench JSON lines (tools/bench.sh format) to build/soak.jsonl and stdout's end.
# A whole snapshot of the 256 MiB guest goes over the serial line: minutes, up to an hour
# on a loaded machine. Short form (no snapshot):
# SOAK_ROUNDS=16 SOAK_HARVEST_SECONDS=60 SOAK_SNAPSHOT_EVERY=0 make soak
source "$(dirname "$0")/lib.sh"
pt_init soak

rounds_all=${SOAK_ROUNDS:-10000}
harvest_secs=${SOAK_HARVEST_SECONDS:-3600}
per=$(((rounds_all + 15) / 16)) # rounds per mode and workload, per vCPU count
step=512
summaries=()
samples=$BUILD/test-run/soak-harvest/cycles.jsonl
line=$(MTOOLS_SKIP_CHECK=1 mtype -i "$BUILD/images/esp.img" ::/pagetrail/boot.cfg | tr -d '\r' |
	grep -v '^#' | grep -m1 .)
line="${line/pagetrail.efi /pagetrail.efi --mgmt-step-pages $step }"

# 1. The oracle, 1 and 2 vCPUs (SOAK_ROUNDS=0: none). About 15 s a round under load.
for cpus in 1 2; do
	[ "$per" -gt 0 ] || break
	pt_run_dir "soak-oracle-$cpus"
	deadline=$((per * 8 * 20 + 300))
	cfg=$line
	[ "$cpus" -gt 1 ] && cfg="$line nohz_full=1"
	PT_QEMU_TIMEOUT=$((deadline + 600)) pt_qemu_start --smp "$cpus" --com1-socket \
		--qemu-arg -m --qemu-arg 256M --boot-cfg "$cfg"
	if python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --cpus "$cpus" --rounds "$per" \
		--writer-mib 64 --deadline "$deadline" --seed "$cpus" --summary "$RUN_DIR/summary.json" \
		--poweroff; then
		pt_qemu_wait
		pt_check "soak.oracle.$cpus.clean_poweroff" "(QEMU status $pt_qemu_status)" \
			test "$pt_qemu_status" -eq 0
		summaries+=(--oracle-summary "$RUN_DIR/summary.json")
	else
		pt_not_ok "soak.oracle.$cpus (see $RUN_DIR)"
		pt_qemu_kill
	fi
	pt_hv_log_checks "soak.oracle.$cpus"
done

# 2. The harvest loop: one Linux guest for SOAK_HARVEST_SECONDS.
pt_run_dir soak-harvest
rm -f "$samples"
# init_on_free=1: memory Linux freed is zero, and costs the snapshots little on the wire.
PT_QEMU_TIMEOUT=$((harvest_secs + 3600)) pt_qemu_start --com1-socket \
	--qemu-arg -m --qemu-arg 256M --boot-cfg "$line init_on_free=1"
end=$((SECONDS + harvest_secs))
cycle=0
while [ "$SECONDS" -lt "$end" ]; do
	cycle=$((cycle + 1))
	sum=$RUN_DIR/summary-$cycle.json
	if ! python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --rounds 2 --running-harvest \
		--workloads random,linux --writer-mib 64 --deadline 600 --seed "$((100 + cycle))" \
		--summary "$sum"; then
		pt_not_ok "soak.harvest_loop.oracle.$cycle (see $RUN_DIR)"
		break
	fi
	summaries+=(--oracle-summary "$sum")
	python3 tests/qemu/soak_cycle.py "$RUN_DIR" --cycle "$cycle" --samples "$samples" \
		--snapshot-every "${SOAK_SNAPSHOT_EVERY:-10}" ||
		{ PT_FAILED=$((PT_FAILED + 1)); break; }
done
pt_check soak.harvest_loop.ran "(no cycle completed)" test -s "$samples"
pt_check soak.harvest_loop.answers "(ptctl info failed after the loop)" \
	"$BUILD/ptctl" -c "unix:$RUN_DIR/mgmt.sock" --timeout 10000 info
pt_qemu_kill
pt_hv_log_checks soak.harvest_loop

if [ -s "$samples" ]; then
	python3 tests/qemu/soak_cycle.py --report "$samples" --harvest-seconds "$harvest_secs" \
		"${summaries[@]}" >"$BUILD/soak.jsonl"
	cat "$BUILD/soak.jsonl"
fi
pt_finish
