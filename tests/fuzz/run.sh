#!/usr/bin/env bash
# `make fuzz`: runs each libFuzzer target given on the command line for
# PT_FUZZ_SECONDS (default 60) seconds, starting from its committed seed corpus
# (tests/fuzz/corpus/NAME/, read only) and keeping what it finds in
# build/mgmt/fuzz-corpus/NAME/. Crashes land in build/mgmt/fuzz-artifacts/.
# To grow the committed corpus: NAME -merge=1 tests/fuzz/corpus/NAME build/mgmt/fuzz-corpus/NAME
set -u
secs=${PT_FUZZ_SECONDS:-60}
status=0
for t in "$@"; do
	name=$(basename "$t")
	work=build/mgmt/fuzz-corpus/$name
	art=build/mgmt/fuzz-artifacts/$name/
	mkdir -p "$work" "$art"
	echo "fuzz: $name for ${secs}s"
	if ! "./$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$art" "$work" "tests/fuzz/corpus/$name" 2>"build/mgmt/$name.log"; then
		echo "fuzz: $name FAILED; see build/mgmt/$name.log and $art"
		tail -n 30 "build/mgmt/$name.log"
		status=1
	else
		grep -E 'stat::number_of_executed_units|cov:' "build/mgmt/$name.log" | tail -n 2
	fi
done
exit $status
