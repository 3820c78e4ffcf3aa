#!/usr/bin/env bash
# Bench step (make bench): every libFuzzer target (make fuzz-build) runs
# PT_FUZZ_BENCH_SECONDS (default 30) from its committed corpus, one at a time,
# into a scratch corpus; its executions per second are a figure, and so is the
# time `make fuzz-long` needs for its 10^8 executions at these rates (each
# target an equal share of the time, one core). A crash fails the step.
set -euo pipefail
secs=${PT_FUZZ_BENCH_SECONDS:-30}
make --no-print-directory -s fuzz-build >&2
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
sum=0
n=0
for t in $(make --no-print-directory -s fuzz-list); do
	name=$(basename "$t")
	log=$scratch/$name.log
	mkdir -p "$scratch/$name"
	echo "bench_fuzz: $name for ${secs}s" >&2
	if ! "./$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$scratch/" "$scratch/$name" "tests/fuzz/corpus/$name" 2>"$log"; then
		tail -n 30 "$log" >&2
		echo "bench_fuzz: $name crashed" >&2
		exit 1
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	echo "{\"name\": \"fuzz.$name.rate\", \"value\": $rate, \"unit\": \"exec/s\"," \
		"\"note\": \"$runs executions in ${secs}s, ASan+UBSan, one core\"}"
	sum=$((sum + rate))
	n=$((n + 1))
done
# Equal time for each target: the total rate is the targets' mean rate.
python3 -c "import sys; s, n = int(sys.argv[1]), int(sys.argv[2]); \
print('{\"name\": \"fuzz.long.hours_for_1e8\", \"value\": %.2f, \"unit\": \"h\", \"note\": \"make fuzz-long: %d targets in turns until 10^8 executions in all\"}' \
% (1e8 / (s / n) / 3600, n))" "$sum" "$n"
