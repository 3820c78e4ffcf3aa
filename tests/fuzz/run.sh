#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target given on the command line for
# PT_FUZZ_SECONDS (default 60) seconds, starting from its committed seed corpus
# (tests/fuzz/corpus/NAME/, read only) and keeping what it finds in
# build/mgmt/fuzz-corpus/NAME/. Crashes land in build/mgmt/fuzz-artifacts/.
# Each target reports its executions and their rate; the last line the total.
#
# `make fuzz-long` sets PT_FUZZ_TOTAL (10^8): the targets then run in turns of
# PT_FUZZ_SECONDS each, round after round, until their executions add up to
# PT_FUZZ_TOTAL (one core: one target at a time).
#
# To grow the committed corpus: NAME -merge=1 tests/fuzz/corpus/NAME build/mgmt/fuzz-corpus/NAME
set -u
secs=${PT_FUZZ_SECONDS:-60}
want=${PT_FUZZ_TOTAL:-0}
status=0
total=0
round=0
declare -A done_runs done_secs

run_one() {
	local t=$1 name work art log runs rate start el
	name=$(basename "$t")
	work=build/mgmt/fuzz-corpus/$name
	art=build/mgmt/fuzz-artifacts/$name/
	log=build/mgmt/$name.log
	mkdir -p "$work" "$art"
	echo "fuzz: $name for ${secs}s"
	start=$SECONDS
	if ! "./$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art" "$work" "tests/fuzz/corpus/$name" 2>"$log"; then
		echo "fuzz: $name FAILED; see $log and $art"
		tail -n 30 "$log"
		status=1
		return 1
	fi
	el=$((SECONDS - start))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
	if [ -z "$runs" ] || [ -z "$rate" ]; then
		echo "fuzz: $name printed no final stats; see $log"
		status=1
		return 1
	fi
	grep -E 'cov:' "$log" | tail -n 1
	echo "fuzz: $name: $runs executions in ${el}s ($rate/s)"
	done_runs[$name]=$(( ${done_runs[$name]:-0} + runs ))
	done_secs[$name]=$(( ${done_secs[$name]:-0} + el ))
	total=$((total + runs))
}

while :; do
	round=$((round + 1))
	for t in "$@"; do
		run_one "$t" || break 2
	done
	[ "$want" -gt 0 ] && [ "$total" -lt "$want" ] || break
	echo "fuzz: round $round: $total of $want executions"
done
for t in "$@"; do
	name=$(basename "$t")
	[ -n "${done_runs[$name]:-}" ] || continue
	echo "fuzz: total $name: ${done_runs[$name]} executions in ${done_secs[$name]}s"
done
echo "fuzz: $total executions in all"
if [ "$status" = 0 ] && [ "$want" -gt 0 ] && [ "$total" -lt "$want" ]; then
	echo "fuzz: fewer than $want executions"
	status=1
fi
exit $status
