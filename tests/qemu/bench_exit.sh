#!/usr/bin/env bash
# `make bench` step: what an intercepted CPUID costs the guest, with the management tick
# and without it (--no-mgmt-tick), from nmi.efi's measurement (tests/guest/nmi.c: 101
# single CPUIDs of leaf 0x40000000 timed with RDTSC, and the mean over 20,000 in a row,
# which also carries the tick's and the firmware's interrupt exits). PT_BENCH_EXIT_RUNS
# (default 3) runs of each, alternating; the figures are the smallest min and median and
# the median of the means over the runs (the machine is shared: single runs vary by 1.6x).
#   exit.cpuid.min.{tick,no_tick}     TSC cycles, tick ratio vs no tick
#   exit.cpuid.median.{tick,no_tick}
#   exit.cpuid.mean.{tick,no_tick}
# JSON lines on stdout (tools/bench.sh); progress on stderr.
source "$(dirname "$0")/lib.sh"
pt_init bench_exit
runs=${PT_BENCH_EXIT_RUNS:-3}
hv='\EFI\pagetrail\pagetrail.efi'
out=$RUN_DIR/figures.txt
: >"$out"
for ((i = 0; i < runs; i++)); do
	for mode in tick no_tick; do
		args=''
		[ "$mode" = no_tick ] && args='--no-mgmt-tick '
		pt_run_dir "bench_exit/$mode.$i"
		PT_QEMU_TIMEOUT=200 pt_qemu_start --boot-cfg "$hv $args\\EFI\\tests\\nmi.efi"
		pt_qemu_wait
		min=$(pt_text "$RUN_DIR/com1.log" | sed -n 's/^# cpuid 0x40000000: min \([0-9]*\) median \([0-9]*\) .*/\1 \2/p')
		mean=$(pt_text "$RUN_DIR/com1.log" | sed -n 's/^# cpuid 0x40000000: mean \([0-9]*\) .*/\1/p')
		if [ -z "$min" ] || [ -z "$mean" ]; then
			echo "bench_exit: no cpuid figures in $RUN_DIR/com1.log (QEMU status $pt_qemu_status)" >&2
			exit 1
		fi
		echo "bench_exit: $mode run $i: min/median $min, mean $mean" >&2
		echo "$mode $min $mean" >>"$out"
	done
done
python3 - "$out" <<'PY'
import json, statistics, sys
rows = {"tick": [], "no_tick": []}
for ln in open(sys.argv[1]):
    mode, mn, med, mean = ln.split()
    rows[mode].append((int(mn), int(med), int(mean)))
fig = {}
for mode, r in rows.items():
    fig[mode] = {"min": min(x[0] for x in r), "median": min(x[1] for x in r),
                 "mean": statistics.median(x[2] for x in r)}
for k, what in (("min", "fastest single CPUID"), ("median", "median single CPUID, best run"),
                ("mean", "mean over 20,000 in a row, median run")):
    t, n = fig["tick"][k], fig["no_tick"][k]
    print(json.dumps({"name": f"exit.cpuid.{k}.tick", "value": t, "unit": "TSC cycles",
                      "ref": n, "ref_name": "no tick", "ratio": round(t / n, 3),
                      "note": f"intercepted CPUID, QEMU TCG: {what}"}))
PY
