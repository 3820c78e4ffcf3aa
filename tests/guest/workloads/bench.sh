#!/bin/sh
# Workload of `make bench` (tests/qemu/bench_boot.py): an idle phase, then a load phase
# (pt-memload over and over), each pt.phase=SECONDS long (default 25), marked on the
# console so that the host can match the hypervisor's exit statistics to the phase.
secs=25
for arg in $(cat /proc/cmdline); do
	case "$arg" in pt.phase=*) secs=${arg#pt.phase=} ;; esac
done
echo "bench-phase idle"
sleep "$secs"
echo "bench-phase load"
end=$(($(cut -d. -f1 /proc/uptime) + secs))
while [ "$(cut -d. -f1 /proc/uptime)" -lt "$end" ]; do
	pt-memload 2 32 2 >/dev/null || echo "bench: pt-memload failed"
done
echo "bench-phase end"
