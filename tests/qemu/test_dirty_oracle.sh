#!/usr/bin/env bash
# Issue 5, item 3 (short form for `make test`): Linux under the hypervisor with 256 MiB;
# for wp and dbit, every RAM slot logged, rounds of pause / harvest (get + clear) / QMP
# pmemsave / resume with pt-dirtywriter's random, seq and hot patterns and plain Linux
# activity in the guest: every page whose bytes changed between two copies must be in
# the later harvest (tests/qemu/dirty_oracle.py says how and why). Zero misses allowed;
# false positives are reported. A control round (a harvest thrown away) must show misses.
# Then the guest powers off and the hypervisor reports no fault.
# PT_ORACLE_ROUNDS (default 6 per mode and workload), PT_ORACLE_MEM (default 256M).
source "$(dirname "$0")/lib.sh"
pt_init dirty_oracle

PT_QEMU_TIMEOUT=420 pt_qemu_start --com1-socket --qemu-arg -m --qemu-arg "${PT_ORACLE_MEM:-256M}"
python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --rounds "${PT_ORACLE_ROUNDS:-6}" \
	--writer-mib 32 --deadline 360 --summary "$RUN_DIR/summary.json" || PT_FAILED=$((PT_FAILED + 1))
# Power off through the console (the oracle's socket is closed by now).
python3 - "$RUN_DIR/com1.sock" <<'PY' || true
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"\npoweroff -f\n")
PY
pt_qemu_wait
pt_check dirty_oracle.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
pt_hv_log_checks dirty_oracle
pt_finish
