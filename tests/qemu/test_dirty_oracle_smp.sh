#!/usr/bin/env bash
# The dirty-logging oracle (tests/qemu/dirty_oracle.py) with 2 CPUs under multi-threaded
# TCG, so that both vCPUs really run at once, and a writer pinned to each CPU. Linux runs
# with nohz_full=1: the writer on CPU 1 then runs for long stretches without a timer
# interrupt, so its vCPU keeps its TLB (TCG empties it only at VMRUN and #VMEXIT) unless
# the hypervisor makes it exit: the case a remote TLB flush exists for (docs/smp.md).
#  1. pagetrail.efi: wp and dbit, random and hot writers, paused harvests (every changed
#     page in the harvest, zero misses; the control round must show misses); then
#     harvests while both writers run (--mgmt-step-pages 512: the guest writes between the
#     steps), checked write by write: a page stored to after the running harvest returned
#     must be in the paused harvest that follows (--after-harvest-check).
#  2. Negative control: pagetrail-noshootdown.efi (the remote flush skipped, test build
#     only) under the same running-harvest check must lose pages.
# PT_ORACLE_ROUNDS (default 3).
source "$(dirname "$0")/lib.sh"
pt_init dirty_oracle_smp

step=512
line=$(MTOOLS_SKIP_CHECK=1 mtype -i "$BUILD/images/esp.img" ::/pagetrail/boot.cfg | tr -d '\r' |
	grep -v '^#' | grep -m1 .)
line="${line/pagetrail.efi /pagetrail.efi --mgmt-step-pages $step } nohz_full=1"
oracle() { python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --cpus 2 --writer-mib 64 "$@"; }

pt_run_dir dirty_oracle_smp
PT_QEMU_TIMEOUT=600 pt_qemu_start --smp 2 --com1-socket --qemu-arg -m --qemu-arg 256M \
	--boot-cfg "$line"
if oracle --rounds "${PT_ORACLE_ROUNDS:-3}" --workloads random,hot --deadline 300 \
	--summary "$RUN_DIR/summary.json" &&
	oracle --rounds 4 --running-harvest --after-harvest-check --modes wp,dbit \
		--workloads hot,random --deadline 200 --summary "$RUN_DIR/summary-running.json" \
		--poweroff; then
	pt_qemu_wait
	pt_check dirty_oracle_smp.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
else
	PT_FAILED=$((PT_FAILED + 1))
	pt_qemu_kill
fi
pt_check dirty_oracle_smp.both_cpus_virtualized "(no 'all 2 CPUs are virtualized' in hv.log)" \
	pt_has "$RUN_DIR/hv.log" 'smp: all 2 CPUs are virtualized'
pt_check dirty_oracle_smp.linux_2_cpus "(Linux did not bring up 2 CPUs)" \
	pt_has "$RUN_DIR/com1.log" 'smp: Brought up 1 node, 2 CPUs'
pt_hv_log_checks dirty_oracle_smp

# Negative control: the same check against a hypervisor that skips the remote flush. The
# hot writers run unthrottled (--writer-rate 0), so that CPU 1 keeps writing its hot pages
# through the translations it cached before each harvest.
pt_run_dir dirty_oracle_smp_noshootdown
PT_QEMU_TIMEOUT=360 pt_qemu_start --smp 2 --com1-socket --qemu-arg -m --qemu-arg 256M \
	--hv-efi "$BUILD/pagetrail-noshootdown.efi" --boot-cfg "$line"
if oracle --rounds 6 --running-harvest --after-harvest-check --expect-misses --modes dbit,wp \
	--workloads hot --writer-rate 0 --deadline 240 --summary "$RUN_DIR/summary.json"; then
	:
else
	PT_FAILED=$((PT_FAILED + 1))
fi
pt_qemu_kill
pt_finish
