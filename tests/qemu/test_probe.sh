#!/usr/bin/env bash
# What the guest sees on SVM. The virtualized firmware runs probe.efi
# (tests/guest/probe.c) after pagetrail.efi; every probe check must pass. Negative
# control: the probe started WITHOUT the hypervisor must fail its signature check
# (bare QEMU answers leaf 0x40000000 with "TCGTCGTCGTCG"), else it proves nothing.
source "$(dirname "$0")/lib.sh"
pt_init probe

checks="cpuid_hv_max_leaf cpuid_hv_signature cpuid_1_ecx_hypervisor_bit cpuid_svm_hidden
	efer_svme_reads_zero efer_svme_write_harmless gp_wrmsr_efer_reserved
	rf_gp_wrmsr_efer_reserved halt_wakes_only_on_interrupt"
for i in vmsave vmload vmrun clgi stgi skinit invlpga; do
	checks="$checks ud_$i ud_${i}_after_svme_write rf_ud_$i rf_ud_${i}_after_svme_write"
done

# Under the hypervisor. While the probe halts waiting for its APIC timer, ptctl talks to
# the management port: the hypervisor's work for it must not end the guest's HLT.
PT_QEMU_TIMEOUT=120 pt_qemu_start --probe
com1=$RUN_DIR/com1.log
if pt_wait_for "$com1" '^probe: halting' 100; then
	info_rc=0
	info=$("$BUILD/ptctl" -c "unix:$RUN_DIR/mgmt.sock" --timeout 10000 info 2>&1) || info_rc=$?
	halt_over=0
	pt_has "$com1" '^# halt_wakes_only_on_interrupt' && halt_over=1
	pt_check probe.mgmt_answered_during_halt "(ptctl info exit $info_rc: $info)" \
		test "$info_rc" -eq 0
	pt_check probe.mgmt_request_inside_halt "(the halt was over before ptctl's answer: inconclusive)" \
		test "$halt_over" -eq 0
else
	pt_not_ok "probe.mgmt_answered_during_halt (no 'probe: halting' in $com1)"
fi
pt_qemu_wait
if pt_has "$com1" '^probe: done'; then
	pt_ok probe.ran_to_end
else
	pt_not_ok "probe.ran_to_end (QEMU status $pt_qemu_status, no 'probe: done' in $com1)"
fi
for c in $checks; do
	if pt_has "$com1" "^ok $c\$"; then
		pt_ok "probe.$c"
	else
		pt_not_ok "probe.$c $(pt_text "$com1" | grep -E -m1 "^not ok $c( |\$)" || echo '(not reported)')"
	fi
done
pt_check probe.powered_off "(QEMU exit status $pt_qemu_status, want 0: ACPI power-off)" \
	test "$pt_qemu_status" -eq 0
pt_hv_log_checks probe

# Negative control: same probe, same ESP, no hypervisor.
pt_run_dir probe-nohv
com1=$RUN_DIR/com1.log
PT_QEMU_TIMEOUT=120 pt_qemu_start --boot-cfg '\EFI\tests\probe.efi'
pt_qemu_wait
if pt_has "$com1" '^probe: done' && pt_has "$com1" '^not ok cpuid_hv_signature'; then
	pt_ok probe.negative_control_fails_without_hv
else
	pt_not_ok "probe.negative_control_fails_without_hv (without pagetrail.efi the probe did not report 'not ok cpuid_hv_signature')"
fi
# The RF checks can fail too: QEMU 7.2 TCG pushes RFLAGS with RF clear for the faults it
# raises itself (the SDM wants RF set), so a hypervisor that only passed faults through
# would fail them.
for c in rf_ud_vmsave; do
	pt_check "probe.negative_control_$c" "(without pagetrail.efi the probe did not report 'not ok $c')" \
		pt_has "$com1" "^not ok $c( |\$)"
done
pt_finish
