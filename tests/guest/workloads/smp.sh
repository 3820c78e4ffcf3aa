#!/bin/sh
# Workload of tests/qemu/test_smp.sh: which CPUs Linux brought online, the hypervisor's
# CPUID signature on each (pt-cpusig pins itself to every CPU in turn), pt-memload with one
# process per CPU, so that every vCPU writes memory and takes nested faults, then every AP
# offlined and onlined again, and the signatures once more.
echo "smp: online $(cat /sys/devices/system/cpu/online) nproc $(nproc)"
pt-cpusig
n=$(nproc)
pt-memload "$n" 16 2
# CPU hotplug: Linux parks an offlined CPU and starts it again with INIT and start-up IPIs,
# which the hypervisor emulates for a vCPU that has run before (docs/smp.md).
for c in /sys/devices/system/cpu/cpu[1-9]*; do
	[ -w "$c/online" ] || continue
	echo 0 >"$c/online" && echo 1 >"$c/online" && echo "smp: hotplug ${c##*/} off and on again"
done
pt-cpusig | sed 's/^cpusig:/cpusig-after-hotplug:/' 
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
