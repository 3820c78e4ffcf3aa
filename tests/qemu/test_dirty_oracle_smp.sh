#!/usr/bin/env bash
# The dirty-logging oracle (tests/qemu/dirty_oracle.py) with 2 CPUs under multi-threaded
# TCG, so that both vCPUs really run at once. Linux runs with nohz_full=1: a writer alone
# on CPU 1 then runs for long stretches without a timer interrupt, so its vCPU keeps its
# TLB (TCG empties it only at VMRUN and #VMEXIT) unless the hypervisor makes it exit: the
# case the remote TLB flush exists for (docs/smp.md "Remote TLB flush").
#  1. pagetrail.efi (--mgmt-step-pages 512: every harvest in many steps):
#     a. paused harvests, a writer pinned to each CPU (random, hot), wp and dbit: every
#        changed page in the harvest (zero misses); the control round must show misses;
#     b. harvests while an unthrottled hot writer runs alone on CPU 1, checked write by
#        write (--after-harvest-check): a page stored to after the running harvest had
#        returned must be in the paused harvest that follows. Zero misses.
#  2. Negative control: pagetrail-noshootdown.efi (the remote flush skipped; a test build,
#     never shipped) under check 1b must lose pages.
# PT_ORACLE_ROUNDS (default 2) for 1a.
source "$(dirname "$0")/lib.sh"
pt_init dirty_oracle_smp

step=512
line=$(MTOOLS_SKIP_CHECK=1 mtype -i "$BUILD/images/esp.img" ::/pagetrail/boot.cfg | tr -d '\r' |
	grep -v '^#' | grep -m1 .)
line="${line/pagetrail.efi /pagetrail.efi --mgmt-step-pages $step } nohz_full=1"
oracle() { python3 tests/qemu/dirty_oracle.py "$RUN_DIR" --cpus 2 "$@"; }
running_check=(--running-harvest --after-harvest-check --writer-cpus 1 --writer-rate 0 --writer-mib 32
	--workloads hot --rounds 4 --modes dbit,wp)

pt_run_dir dirty_oracle_smp
PT_QEMU_TIMEOUT=900 pt_qemu_start --smp 2 --com1-socket --qemu-arg -m --qemu-arg 256M \
	--boot-cfg "$line"
if oracle --rounds "${PT_ORACLE_ROUNDS:-2}" --workloads random,hot --writer-mib 64 --deadline 420 \
	--summary "$RUN_DIR/summary.json" &&
	oracle "${running_check[@]}" --deadline 420 --summary "$RUN_DIR/summary-running.json" --poweroff; then
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

pt_run_dir dirty_oracle_smp_noshootdown
PT_QEMU_TIMEOUT=600 pt_qemu_start --smp 2 --com1-socket --qemu-arg -m --qemu-arg 256M \
	--hv-efi "$BUILD/pagetrail-noshootdown.efi" --boot-cfg "$line"
oracle "${running_check[@]}" --expect-misses --deadline 420 --summary "$RUN_DIR/summary.json" ||
	PT_FAILED=$((PT_FAILED + 1))
pt_qemu_kill
pt_finish
