#!/usr/bin/env bash
# The dirty-logging oracle, short form for `make test`: Linux under the hypervisor with
# 256 MiB; for wp and dbit, every slot that is RAM logged (the RAM slots by --all, the
# ACPI, runtime and reserved ones one by one), rounds of pause / harvest (get + clear) / QMP
# pmemsave / resume with pt-dirtywriter's random, seq and hot patterns and plain Linux
# activity in the guest: every page whose bytes changed between two copies must be in
# the later harvest (tests/qemu/dirty_oracle.py says how and why). Zero misses allowed;
# false positives are reported. A control round (a harvest thrown away) must show misses.
# Then the guest powers off and the hypervisor reports no fault.
# The hypervisor runs with --mgmt-step-pages 512: every dirty start, stop and get takes
# many steps (the large RAM slot: about 100), one per exit. A second, shorter pass
# (--running-harvest, wp and dbit, the random writer) harvests while the guest runs, so
# that the guest writes between the steps of each harvest; every changed page must be in
# that harvest or the paused one right after it (docs/dirty-logging.md "Harvests in steps").
# PT_ORACLE_ROUNDS (default 6 per mode and workload), PT_ORACLE_MEM (default 256M).
source "$(dirname "$0")/lib.sh"
pt_init dirty_oracle

step=512
line=$(MTOOLS_SKIP_CHECK=1 mtype -i "$BUILD/images/esp.img" ::/pagetrail/boot.cfg | tr -d '\r' |
	grep -v '^#' | grep -m1 .)
PT_QEMU_TIMEOUT=460 pt_qemu_start --com1-socket --qemu-arg -m --qemu-arg "${PT_ORACLE_MEM:-256M}" \
	--boot-cfg "${line/pagetrail.efi /pagetrail.efi --mgmt-step-pages $step }"
if python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --rounds "${PT_ORACLE_ROUNDS:-6}" \
	--writer-mib 64 --deadline 330 --summary "$RUN_DIR/summary.json" --log-firmware-slots &&
	python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --rounds 4 --running-harvest --modes wp,dbit \
		--workloads random --writer-mib 64 --deadline 100 --summary "$RUN_DIR/summary-running.json" \
		--poweroff; then
	pt_qemu_wait
	pt_check dirty_oracle.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
else
	PT_FAILED=$((PT_FAILED + 1))
	pt_qemu_kill
fi
pt_check dirty_oracle.step_pages_switch "(hv.log lacks the step size line)" \
	grep -q "management: long commands in steps of $step pages" "$RUN_DIR/hv.log"
pt_hv_log_checks dirty_oracle
pt_finish
