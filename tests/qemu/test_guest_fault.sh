#!/usr/bin/env bash
# Faults are reported, not hidden: a guest that triple-faults (tests/guest/crash.c) under
# the hypervisor ends in a clear "pagetrail: FATAL" line on the log and a clean stop of
# QEMU through isa-debug-exit (status 5 = guest-fatal, see docs/hv.md), never a hang or a
# reset.
source "$(dirname "$0")/lib.sh"
pt_init guest_fault

PT_QEMU_TIMEOUT=120 pt_qemu_start --boot-cfg '\EFI\pagetrail\pagetrail.efi \EFI\tests\crash.efi'
pt_qemu_wait
com1=$RUN_DIR/com1.log
hvlog=$RUN_DIR/hv.log
pt_check guest_fault.crash_started "(no 'crash: triple faulting now' on COM1)" \
	pt_has "$com1" '^crash: triple faulting now'
pt_check guest_fault.guest_did_not_continue "(the guest ran on after its triple fault)" \
	eval '! pt_has "$com1" "still running after the triple fault"'
pt_check guest_fault.hv_virtualizing "(no '$PT_HV_RUNNING' in $hvlog)" pt_has "$hvlog" "$PT_HV_RUNNING"
if pt_has "$hvlog" 'pagetrail: FATAL.*(shutdown|triple)'; then
	pt_ok "guest_fault.reported"
	echo "# $(pt_text "$hvlog" | grep -E -m1 'pagetrail: FATAL')"
else
	pt_not_ok "guest_fault.reported (no 'pagetrail: FATAL ... shutdown/triple fault' line in $hvlog)"
fi
pt_check guest_fault.qemu_stopped_guest_fatal "(QEMU exit status $pt_qemu_status, want 5: isa-debug-exit code 2)" \
	test "$pt_qemu_status" -eq 5
pt_finish
