#!/usr/bin/env bash
# A broken guest kills the guest, not the machine: a guest that triple-faults
# (tests/guest/crash.c) under the hypervisor ends in a clear "pagetrail: FATAL" line on the
# log, the guest never runs again, and the hypervisor stays up serving the management
# port for a post-mortem: INFO says "stopped", RESUME is refused (GUEST_STOPPED), LOG has
# the FATAL line, REGS and a memory read of the dead guest answer. QEMU is not stopped
# (a real machine would not be either); the test ends it. Then the same with the fault on
# an AP of two (crash.efi --ap).
source "$(dirname "$0")/lib.sh"
pt_init guest_fault

PT_QEMU_TIMEOUT=120 pt_qemu_start --boot-cfg '\EFI\pagetrail\pagetrail.efi \EFI\tests\crash.efi'
com1=$RUN_DIR/com1.log
hvlog=$RUN_DIR/hv.log
ptctl() { "$BUILD/ptctl" -c "unix:$RUN_DIR/mgmt.sock" --timeout 20000 "$@"; }

if pt_wait_for "$hvlog" 'pagetrail: guest stopped; the management port keeps answering' 90; then
	pt_ok "guest_fault.guest_stopped_hypervisor_up"
else
	pt_not_ok "guest_fault.guest_stopped_hypervisor_up (no 'guest stopped; the management port keeps answering' in $hvlog)"
fi
pt_check guest_fault.crash_started "(no 'crash: triple faulting now' on COM1)" \
	pt_has "$com1" '^crash: triple faulting now'
pt_check guest_fault.hv_virtualizing "(no '$PT_HV_RUNNING' in $hvlog)" pt_has "$hvlog" "$PT_HV_RUNNING"
if pt_has "$hvlog" 'pagetrail: FATAL.*(shutdown|triple)'; then
	pt_ok "guest_fault.reported"
	echo "# $(pt_text "$hvlog" | grep -E -m1 'pagetrail: FATAL')"
else
	pt_not_ok "guest_fault.reported (no 'pagetrail: FATAL ... shutdown/triple fault' line in $hvlog)"
fi

info_rc=0
info=$(ptctl info 2>&1) || info_rc=$?
pt_check guest_fault.info_says_stopped "(ptctl info exit $info_rc: $info)" \
	eval '[ $info_rc -eq 0 ] && grep -q "^state *stopped" <<<"$info"'
resume_rc=0
resume=$(ptctl resume 2>&1) || resume_rc=$?
pt_check guest_fault.resume_refused "(ptctl resume exit $resume_rc, want 1 with 'stopped': $resume)" \
	eval '[ $resume_rc -eq 1 ] && grep -q "stopped after a fatal error" <<<"$resume"'
log_rc=0
log=$(ptctl log 2>&1) || log_rc=$?
pt_check guest_fault.log_has_fatal "(ptctl log exit $log_rc, or no FATAL line in it)" \
	eval '[ $log_rc -eq 0 ] && grep -q "FATAL: guest shutdown" <<<"$log"'
regs_rc=0
regs=$(ptctl regs 2>&1) || regs_rc=$?
pt_check guest_fault.regs_of_dead_guest "(ptctl regs exit $regs_rc: $regs)" \
	eval '[ $regs_rc -eq 0 ] && grep -qi "rip" <<<"$regs"'
mem_rc=0
mem=$(ptctl mem read 0x100000 4096 -o "$RUN_DIR/mem.bin" 2>&1) || mem_rc=$?
pt_check guest_fault.mem_read_of_dead_guest "(ptctl mem read exit $mem_rc: $mem)" \
	eval '[ $mem_rc -eq 0 ] && [ "$(stat -c %s "$RUN_DIR/mem.bin")" -eq 4096 ]'
pt_check guest_fault.machine_not_stopped "(QEMU exited: the hypervisor stopped the machine)" \
	kill -0 "$pt_qemu_pid"
pt_check guest_fault.guest_did_not_continue "(the guest ran on after its triple fault)" \
	eval '! pt_has "$com1" "still running after the triple fault"'
pt_qemu_kill

# The same on an AP (two CPUs, both virtualized): the vCPU that dies does not own the
# management port; it stops the guest and gets the boot CPU out of it to serve the port.
pt_run_dir guest_fault_ap
PT_QEMU_TIMEOUT=120 pt_qemu_start --smp 2 \
	--boot-cfg '\EFI\pagetrail\pagetrail.efi \EFI\tests\crash.efi --ap'
com1=$RUN_DIR/com1.log
hvlog=$RUN_DIR/hv.log
if pt_wait_for "$hvlog" 'pagetrail: guest stopped; the management port keeps answering' 90; then
	pt_ok "guest_fault.ap.guest_stopped_hypervisor_up"
else
	pt_not_ok "guest_fault.ap.guest_stopped_hypervisor_up (no 'guest stopped; the management port keeps answering' in $hvlog)"
fi
pt_check guest_fault.ap.crash_started "(no 'crash: triple faulting now on AP 1' on COM1)" \
	pt_has "$com1" '^crash: triple faulting now on AP 1'
pt_check guest_fault.ap.stopped_by_vcpu_1 "(no 'vCPU 1: the guest is stopped for good' in $hvlog)" \
	pt_has "$hvlog" 'pagetrail: vCPU 1: the guest is stopped for good'
pt_check guest_fault.ap.reported "(no FATAL shutdown line in $hvlog)" \
	pt_has "$hvlog" 'pagetrail: FATAL: guest shutdown'
info_rc=0
info=$(ptctl info 2>&1) || info_rc=$?
pt_check guest_fault.ap.info_says_stopped "(ptctl info exit $info_rc: $info)" \
	eval '[ $info_rc -eq 0 ] && grep -q "^state *stopped" <<<"$info"'
regs_rc=0
regs=$(ptctl regs --vcpu 1 2>&1) || regs_rc=$?
pt_check guest_fault.ap.regs_of_dead_ap "(ptctl regs --vcpu 1 exit $regs_rc: $regs)" \
	eval '[ $regs_rc -eq 0 ] && grep -qi "rip" <<<"$regs"'
resume_rc=0
resume=$(ptctl resume 2>&1) || resume_rc=$?
pt_check guest_fault.ap.resume_refused "(ptctl resume exit $resume_rc: $resume)" \
	test "$resume_rc" -eq 1
pt_check guest_fault.ap.machine_not_stopped "(QEMU exited)" kill -0 "$pt_qemu_pid"
pt_check guest_fault.ap.guest_did_not_continue "(the boot CPU ran on after the AP's triple fault)" \
	eval '! pt_has "$com1" "still running after the triple fault"'
pt_finish
