#!/usr/bin/env bash
# Every CPU virtualized under Intel VMX (Bochs corei7_skylake_x, `cpu: count=2`):
# pagetrail.efi takes the AP through EFI_MP_SERVICES_PROTOCOL (its log names CPU 1 and
# then all 2 CPUs), then mp_probe.efi has the firmware start the AP twice with
# StartupThisAP, which OVMF does with INIT-SIPI-SIPI: the hypervisor emulates them (the
# vCPU parks in wait-for-SIPI, then starts in real mode at the SIPI vector) and the
# procedure reads PageTrail's CPUID signature on the AP. ExitBootServices makes OVMF
# send INIT-SIPI-SIPI once more and wait for the AP. No fault line in the log.
source "$(dirname "$0")/lib.sh"
pt_init smp
model=${PT_BOCHS_MODEL:-corei7_skylake_x}
img=$RUN_DIR/esp.img
e9=$RUN_DIR/e9.log
done_re='^mp_probe: done|pagetrail: (FATAL|PANIC)'

pt_need "$BUILD/bochs/mp_probe.efi"
pt_bochs_chain_esp "$img" '\EFI\pagetrail\pagetrail.efi \EFI\tests\mp_probe.efi' \
	"$BUILD/bochs/mp_probe.efi=/EFI/tests/mp_probe.efi" || {
	pt_not_ok "smp.esp mtools failed"
	exit 1
}
PT_BOCHS_CPUS=2 pt_bochs_run "$model" "$img" 900 "$done_re"

pt_check smp.probe_ran_to_end "(Bochs status $pt_bochs_status, no 'mp_probe: done' in $e9)" \
	pt_has "$e9" '^mp_probe: done'
pt_check smp.two_processors "(no 'mp_probe: processors 2' in $e9)" \
	pt_has "$e9" '^mp_probe: processors 2$'
pt_check smp.ap_virtualized "(no 'smp: CPU 1 (APIC ID 1) virtualized' in $e9)" \
	pt_has "$e9" '^pagetrail: smp: CPU 1 \(APIC ID 1\) virtualized'
pt_check smp.all_virtualized "(no 'smp: all 2 CPUs are virtualized' in $e9)" \
	pt_has "$e9" '^pagetrail: smp: all 2 CPUs are virtualized'
pt_check smp.vmxon_on_each_cpu "(fewer than 2 'vmx: VMXON done' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^pagetrail: vmx: VMXON done')" -ge 2
pt_check smp.apic_page_read_only "(no 'local APIC page ... read-only' in $e9)" \
	pt_has "$e9" '^pagetrail: local APIC page 0xfee00000-0xfee01000 read-only'
pt_check smp.bsp_signature "(no 'mp_probe: ok 0 bsp_signature' in $e9)" \
	pt_has "$e9" '^mp_probe: ok 0 bsp_signature'
# Two StartupThisAP rounds and ExitBootServices: at least three emulated INIT + SIPI.
pt_check smp.init_emulated "(fewer than 3 'vCPU 1: INIT' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^pagetrail: smp: vCPU 1: INIT, waiting for a start-up IPI')" -ge 3
pt_check smp.sipi_emulated "(fewer than 3 'vCPU 1: start-up IPI' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^pagetrail: smp: vCPU 1: start-up IPI, starts at 0x[0-9a-f]*:0000')" -ge 3
pt_check smp.ap_ran "(fewer than 2 'mp_probe: ok 1 ap_ran' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^mp_probe: ok 1 ap_ran')" -eq 2
pt_check smp.ap_signature "(fewer than 2 'mp_probe: ok 1 ap_signature' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^mp_probe: ok 1 ap_signature')" -eq 2
pt_check smp.exit_boot_services "(no 'mp_probe: ok exit_boot_services' in $e9)" \
	pt_has "$e9" '^mp_probe: ok exit_boot_services'
pt_hv_log_checks smp
pt_finish
