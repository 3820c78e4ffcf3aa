#!/usr/bin/env bash
# The guest's NMIs under the management tick: with the tick (the default) the hypervisor
# intercepts every NMI and injects the ones that are not its tick; the guest must still
# see the CPU's NMI blocking (held until its handler's IRET, delivered right after it,
# ended by any IRET, not blocked by exceptions). nmi.efi (tests/guest/nmi.c) checks each
# case; every case must pass under pagetrail.efi with the tick.
# Reference: the same program on bare QEMU, where every case must pass too (so the
# expectations are the emulated CPU's, not ours). That nmi.efi can see a nested NMI at
# all is shown by its exception_iret_in_nmi_unblocks case, where nesting is architectural.
source "$(dirname "$0")/lib.sh"
pt_init nmi

checks="nested_nmi_after_iret nmi_sent_before_iret_after_it exception_iret_in_nmi_unblocks
	nmi_in_exception_handler"

# run_nmi PREFIX BOOT_CFG: one QEMU run of nmi.efi, one check line per case.
run_nmi() {
	local prefix=$1 cfg=$2 com1
	com1=$RUN_DIR/com1.log
	PT_QEMU_TIMEOUT=150 pt_qemu_start --boot-cfg "$cfg"
	pt_qemu_wait
	pt_check "$prefix.ran_to_end" "(QEMU status $pt_qemu_status, no 'nmi: done' in $com1)" \
		pt_has "$com1" '^nmi: done'
	for c in $checks; do
		if pt_has "$com1" "^ok $c\$"; then
			pt_ok "$prefix.$c"
		else
			pt_not_ok "$prefix.$c $(pt_text "$com1" | grep -E -m1 "^not ok $c( |\$)" || echo '(not reported)')"
		fi
	done
	pt_text "$com1" | grep -E '^# cpuid' | sed "s/^# /# $prefix: /"
}

run_nmi nmi.tick '\EFI\pagetrail\pagetrail.efi \EFI\tests\nmi.efi'
pt_check nmi.tick.tick_on "(no 'management tick: HPET' line in $RUN_DIR/hv.log)" \
	pt_has "$RUN_DIR/hv.log" 'pagetrail: management tick: HPET at 0x'
# Every NMI the guest got was one it sent, reflected by the hypervisor.
pt_check nmi.tick.nmis_reflected "(no 'given to the guest' line in $RUN_DIR/hv.log)" \
	pt_has "$RUN_DIR/hv.log" 'NMI that is not the management tick .*given to the guest'
pt_hv_log_checks nmi.tick

pt_run_dir nmi-bare
run_nmi nmi.bare '\EFI\tests\nmi.efi'
pt_finish
