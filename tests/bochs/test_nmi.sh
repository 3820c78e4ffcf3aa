#!/usr/bin/env bash
# VMX (Bochs corei7_skylake_x): the guest's NMIs under the hypervisor, which intercepts
# them (NMI exiting with virtual NMIs, also with one vCPU: an NMI the host takes in VMX
# root operation is handed to the guest, not lost) and injects the guest's own when it can
# take them (NMI-window exiting). nmi.efi (tests/guest/nmi.c) sends itself NMIs, also from
# inside its NMI handler, where it then executes CPUIDs (exits): every case must pass
# under pagetrail.efi, as on bare Bochs (the reference run).
source "$(dirname "$0")/lib.sh"
pt_init nmi
model=${PT_BOCHS_MODEL:-corei7_skylake_x}
done_re='^nmi: done|pagetrail: (FATAL|PANIC)'
checks="nested_nmi_after_iret nmi_sent_before_iret_after_it exception_iret_in_nmi_unblocks
	nmi_in_exception_handler"

# run_nmi PREFIX CMDLINE
run_nmi() {
	local prefix=$1 line=$2 img=$RUN_DIR/esp.img com1=$RUN_DIR/com1.log
	pt_need "$BUILD/guest/nmi.efi"
	pt_bochs_chain_esp "$img" "$line" "$BUILD/guest/nmi.efi=/EFI/tests/nmi.efi" || {
		pt_not_ok "$prefix.esp mtools failed"
		return
	}
	pt_bochs_run "$model" "$img" 400 "$done_re"
	pt_check "$prefix.ran_to_end" "(Bochs status $pt_bochs_status, no 'nmi: done' in $com1)" \
		pt_has "$com1" '^nmi: done'
	for c in $checks; do
		if pt_has "$com1" "^ok $c\$"; then
			pt_ok "$prefix.$c"
		else
			pt_not_ok "$prefix.$c $(pt_text "$com1" | grep -E -m1 "^not ok $c( |\$)" || echo '(not reported)')"
		fi
	done
}

run_nmi nmi.vmx '\EFI\pagetrail\pagetrail.efi \EFI\tests\nmi.efi'
pt_hv_log_checks nmi.vmx

RUN_DIR=$RUN_DIR/bare
mkdir -p "$RUN_DIR"
run_nmi nmi.bare '\EFI\tests\nmi.efi'
pt_finish
