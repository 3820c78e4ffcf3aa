#!/bin/sh
# Plain Linux activity, the fourth workload of the dirty-logging oracle
# (tests/qemu/dirty_oracle.py): process creation and exit, page cache and tmpfs writes,
# /proc and /sys walks, pipes. Runs until killed. Not a pt.workload= boot workload (it
# never ends); the oracle starts it from the shell.
i=0
while :; do
	i=$((i + 1))
	dd if=/dev/urandom of=/tmp/linuxact.$((i % 8)) bs=4k count=32 2>/dev/null
	cat /tmp/linuxact.* | md5sum >/dev/null
	ls -lR /proc/self /sys/kernel >/dev/null 2>&1
	find / -xdev -type f 2>/dev/null | head -100 | wc -l >/dev/null
	ps >/dev/null
	sleep 0.1
done
