#!/bin/sh
# Workload of `make bench`: the guest sits idle for pt.idle=SECONDS (default 5).
secs=5
for arg in $(cat /proc/cmdline); do
	case "$arg" in pt.idle=*) secs=${arg#pt.idle=} ;; esac
done
sleep "$secs"
