#!/bin/sh
# A writer of known rate over a known set of pages, in the background, for the
# migration-convergence research commands (ptctl dirty rate, precopy, wws;
# tests/qemu/test_research.sh, tests/qemu/bench_research.sh): pt-dirtywriter --steady,
# random pattern, pt.wrate=R stores/s over pt.wpages=W pages (defaults 2000 and 4096),
# for pt.wsecs=S seconds (default 0: until killed), a heartbeat line (time, stores made)
# every pt.wbeat=N ms (default 0: none). The shell stays free.
rate=2000
pages=4096
secs=0
beat=
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	pt.wrate=*) rate=${arg#pt.wrate=} ;;
	pt.wpages=*) pages=${arg#pt.wpages=} ;;
	pt.wsecs=*) secs=${arg#pt.wsecs=} ;;
	pt.wbeat=*) beat="--heartbeat-ms ${arg#pt.wbeat=}" ;;
	esac
done
pt-dirtywriter --pattern random --pages "$pages" --rate "$rate" --steady --seconds "$secs" $beat &
