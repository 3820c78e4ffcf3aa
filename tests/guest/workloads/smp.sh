#!/bin/sh
# Workload of tests/qemu/test_smp.sh: which CPUs Linux brought online, the hypervisor's
# CPUID signature on each (pt-cpusig pins itself to every CPU in turn), and pt-memload
# with one process per CPU, so that every vCPU writes memory and takes nested faults.
echo "smp: online $(cat /sys/devices/system/cpu/online) nproc $(nproc)"
pt-cpusig
n=$(nproc)
pt-memload "$n" 16 2
# pt.smp_writers=1: afterwards one pt-dirtywriter per CPU, pinned there, runs on in the
# background (the test then checks that a pause stops every one of them).
for arg in $(cat /proc/cmdline); do
	case "$arg" in pt.smp_writers=1) writers=1 ;; esac
done
if [ "${writers:-0}" = 1 ]; then
	i=0
	while [ "$i" -lt "$n" ]; do
		taskset -c "$i" pt-dirtywriter --pattern random --mib 8 --rate 20000 >/dev/null &
		i=$((i + 1))
	done
	echo "smp: writers running on $n CPUs"
fi
