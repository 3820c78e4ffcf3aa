#!/bin/sh
# Workload of tests/qemu/test_hpet.sh (Linux booted with clocksource=hpet): which
# clocksource Linux runs on, what it found of the HPET, and that its clock keeps going
# (sleeps return, CLOCK_MONOTONIC through /proc/uptime and the wall clock through
# date(1), both read through the HPET, advance across them).
echo "hpet: clocksource $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
echo "hpet: available $(cat /sys/devices/system/clocksource/clocksource0/available_clocksource)"
dmesg | grep -i -E 'hpet|clocksource' | sed 's/^/hpet-dmesg: /'
u0=$(cut -d' ' -f1 /proc/uptime)
d0=$(date +%s)
i=0
while [ "$i" -lt 2 ]; do
	sleep 1
	i=$((i + 1))
done
u1=$(cut -d' ' -f1 /proc/uptime)
d1=$(date +%s)
echo "hpet: uptime $u0 -> $u1, date $d0 -> $d1 across 2 sleeps of 1 s"
# Whole centiseconds: at least the 2 s slept (a clock that stalls never ends a sleep).
c0=$(echo "$u0" | tr -d .)
c1=$(echo "$u1" | tr -d .)
if [ "$((c1 - c0))" -ge 200 ] && [ "$((d1 - d0))" -ge 1 ]; then
	echo "hpet: clock advanced"
else
	echo "hpet: clock did not advance"
	exit 1
fi
