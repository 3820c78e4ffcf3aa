#!/usr/bin/env bash
# Runs every test given on the command line and ends with the line "N passed, N failed".
#
# A test is an executable (host test binary or emulator script). It reports its cases
# TAP-style on stdout, one line each: "ok NAME" or "not ok NAME [reason]". A test that
# exits non-zero without reporting a failed case counts as one failed case (a crash, a
# sanitizer report, a timeout), so a test can never pass by dying quietly; one that
# exits 0 but reports no case at all also fails ("ran nothing").
#
# Each test's full output goes to build/test-logs/NAME.log; failures print its tail.
# PT_TEST_TIMEOUT (seconds, default 900) bounds each test.
set -u
logdir=${PT_TEST_LOGS:-build/test-logs}
mkdir -p "$logdir"
timeout_s=${PT_TEST_TIMEOUT:-900}
passed=0
failed=0
failed_names=()

for t in "$@"; do
	name=$(basename "$t")
	log="$logdir/$name.log"
	start=$(date +%s)
	timeout --kill-after=10 "$timeout_s" "./$t" >"$log" 2>&1 </dev/null
	rc=$?
	secs=$(($(date +%s) - start))
	ok=$(grep -c '^ok ' "$log")
	notok=$(grep -c '^not ok ' "$log")
	if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
		if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
			echo "not ok $name: timed out after ${timeout_s}s" >>"$log"
		else
			echo "not ok $name: exited with status $rc" >>"$log"
		fi
		notok=1
	fi
	if [ "$rc" -eq 0 ] && [ "$ok" -eq 0 ] && [ "$notok" -eq 0 ]; then
		echo "not ok $name: reported no test case" >>"$log"
		notok=1
	fi
	passed=$((passed + ok))
	failed=$((failed + notok))
	if [ "$notok" -gt 0 ]; then
		failed_names+=("$name")
		printf 'FAIL %-40s %4d ok, %3d failed  (%ss, log %s)\n' "$name" "$ok" "$notok" "$secs" "$log"
		grep '^not ok ' "$log" | head -n 20 | sed 's/^/    /'
		tail -n 15 "$log" | sed 's/^/    | /'
	else
		printf 'pass %-40s %4d ok  (%ss)\n' "$name" "$ok" "$secs"
	fi
done

[ ${#failed_names[@]} -gt 0 ] && echo "failed: ${failed_names[*]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
