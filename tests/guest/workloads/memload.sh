#!/bin/sh
# Workload of tests/qemu/test_linux_boot.sh: memory writes checked by reading them back
# (pt-memload: 4 processes x 32 MiB x 3 rounds), plus a few short-lived processes.
set -e
pt-memload 4 32 3
for i in 1 2 3 4 5 6 7 8; do
	(seq 1 2000 | md5sum >/tmp/proc.$i) &
done
wait
[ "$(ls /tmp/proc.* | wc -l)" = 8 ]
echo "workload: processes ok"
