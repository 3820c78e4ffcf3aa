#!/usr/bin/env bash
# Under Intel VMX (Bochs corei7_skylake_x), the virtualized firmware runs
# vmx_probe.efi after pagetrail.efi and every check of the guest contract passes: the
# CPUID signature, VMX hidden (CPUID, CR4.VMXE, IA32_FEATURE_CONTROL, the VMX MSRs), VMX
# instructions raise #UD, XSETBV checked by the hypervisor, the management UART idle,
# every fault the hypervisor injects pushes RFLAGS.RF set, a HLT returns only on the
# interrupt it waits for (the hypervisor's preemption-timer exits do not end it).
# Negative control: the same probe WITHOUT the hypervisor must fail its signature and
# VMX-hidden checks (Bochs offers VMX), else the probe proves nothing.
source "$(dirname "$0")/lib.sh"
pt_init vmx_probe
model=${PT_BOCHS_MODEL:-corei7_skylake_x}
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log
done_re='^vmx_probe: done|pagetrail: (FATAL|PANIC)'

checks="cpuid_hv_max_leaf cpuid_hv_signature cpuid_1_ecx_hypervisor_bit cpuid_vmx_hidden
	gp_rdmsr_vmx_basic gp_rdmsr_vmx_ept_vpid_cap feature_control_locked_vmx_off
	gp_wrmsr_feature_control cr4_vmxe_reads_zero gp_cr4_vmxe_set xsetbv_same_value
	gp_xsetbv_x87_clear xcr0_unchanged_after_gp mgmt_uart_idle hidden_memory_faults
	rf_gp_rdmsr_vmx_basic rf_gp_wrmsr_feature_control rf_gp_cr4_vmxe_set
	halt_wakes_only_on_interrupt"
for i in vmxon vmxoff vmcall vmclear vmptrld vmptrst vmread vmwrite vmlaunch vmresume \
	invept invvpid; do
	checks="$checks ud_$i rf_ud_$i"
done

pt_bochs_chain_esp "$img" '\EFI\pagetrail\pagetrail.efi \EFI\tests\vmx_probe.efi' || {
	pt_not_ok "vmx_probe.esp mtools failed"
	exit 1
}
pt_bochs_run "$model" "$img" 400 "$done_re"
if pt_has "$com1" '^vmx_probe: done'; then
	pt_ok vmx_probe.ran_to_end
else
	pt_not_ok "vmx_probe.ran_to_end (Bochs status $pt_bochs_status, no 'vmx_probe: done' in $com1)"
fi
for c in $checks; do
	if pt_has "$com1" "^ok $c\$"; then
		pt_ok "vmx_probe.$c"
	else
		pt_not_ok "vmx_probe.$c $(pt_text "$com1" | grep -E -m1 "^not ok $c( |\$)" || echo '(not reported)')"
	fi
done
pt_check vmx_probe.backend_is_vmx "(no 'pagetrail: vmx: VMXON done' in $RUN_DIR/e9.log)" \
	pt_has "$RUN_DIR/e9.log" '^pagetrail: vmx: VMXON done'
# The range that faulted is the hypervisor's own (its log names it), not a firmware one.
probe_base=$(pt_text "$com1" | sed -n 's/^hidden_base 0x\([0-9A-Fa-f]*\)$/\1/p' | head -1)
hv_base=$(pt_text "$RUN_DIR/e9.log" | sed -n 's/^pagetrail: hidden region 0x\([0-9a-f]*\)-.*/\1/p' | head -1)
if [ -n "$probe_base" ] && [ "${probe_base,,}" = "${hv_base,,}" ]; then
	pt_ok vmx_probe.hidden_range_is_the_hypervisors
else
	pt_not_ok "vmx_probe.hidden_range_is_the_hypervisors (probe faulted at '0x$probe_base', log says hidden region '0x$hv_base')"
fi
pt_check vmx_probe.hidden_access_logged "(no 'hidden access gpa=0x$hv_base' in the log)" \
	pt_has "$RUN_DIR/e9.log" "^pagetrail: hidden access gpa=0x$hv_base .*write"
pt_hv_log_checks vmx_probe

# Negative control: same probe, no hypervisor, in its own run directory.
RUN_DIR=$RUN_DIR/negative
mkdir -p "$RUN_DIR"
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log
pt_bochs_chain_esp "$img" '\EFI\tests\vmx_probe.efi'
pt_bochs_run "$model" "$img" 300 "$done_re"
if pt_has "$com1" '^vmx_probe: done' && pt_has "$com1" '^not ok cpuid_hv_signature' &&
	pt_has "$com1" '^not ok cpuid_vmx_hidden'; then
	pt_ok vmx_probe.negative_control_fails_without_hv
else
	pt_not_ok "vmx_probe.negative_control_fails_without_hv (Bochs status $pt_bochs_status: without pagetrail.efi the probe did not report 'not ok cpuid_hv_signature' and 'not ok cpuid_vmx_hidden' in $com1)"
fi
pt_finish
