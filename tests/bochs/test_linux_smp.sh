#!/usr/bin/env bash
# Linux on 2 CPUs under Intel VMX (Bochs corei7_skylake_x, `cpu: count=2`): mptable.efi
# gives Linux an MP Specification table (OVMF under Bochs publishes no ACPI MADT, so
# without it Linux runs on the boot CPU only), pagetrail.efi takes both CPUs, OVMF boots
# Debian's kernel, and Linux starts its AP with INIT and start-up IPIs, which the
# hypervisor emulates for the vCPU. The guest's smp workload (tests/guest/workloads/smp.sh)
# then reads CPUID 0x40000000 on each CPU (pt-cpusig pins itself to each), runs pt-memload
# with one process per CPU, offlines and onlines the AP (INIT/SIPI to a vCPU that ran
# Linux before) and reads the signatures again. The test ends at the workload's status
# line: no power-off, since without ACPI Linux can only halt, and a halt cuts off the
# console output still queued in the serial driver.
# Not in `make test`: 5-10 minutes of Bochs (docs/vmx.md); `make test-bochs-linux`.
source "$(dirname "$0")/lib.sh"
pt_init linux_smp
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log
e9=$RUN_DIR/e9.log
t=linux_smp
pt_need "$PT_CACHE/vmlinuz" "$BUILD/images/initramfs.cpio.gz" "$BUILD/bochs/mptable.efi"
pt_bochs_chain_esp "$img" \
	'\EFI\tests\mptable.efi \EFI\pagetrail\pagetrail.efi \EFI\Linux\vmlinuz.efi initrd=\EFI\Linux\initrd.img console=ttyS0 pt.workload=smp' \
	"$BUILD/bochs/mptable.efi=/EFI/tests/mptable.efi" \
	"$PT_CACHE/vmlinuz=/EFI/Linux/vmlinuz.efi" \
	"$BUILD/images/initramfs.cpio.gz=/EFI/Linux/initrd.img" || {
	pt_not_ok "$t.esp mtools failed"
	exit 1
}
limit=2400
done_re='^pagetrail-init: workload smp status|reboot: (System halted|Power down|Restarting)|pagetrail: (FATAL|PANIC)|Kernel panic|mptable: error'
PT_BOCHS_CPUS=2 pt_bochs_start "${PT_BOCHS_MODEL:-corei7_skylake_x}" "$img" "$limit" || {
	pt_not_ok "$t.bochs_started (see $RUN_DIR/bochs.err)"
	exit 1
}
t0=$(date +%s)
ready=
for ((i = 0; i < limit * 5; i++)); do
	[ -z "$ready" ] && pt_has "$com1" '^pagetrail-init: ready' && ready=$(($(date +%s) - t0))
	pt_has "$com1" "$done_re" || pt_has "$e9" "$done_re" && break
	kill -0 "$pt_bochs_pid" 2>/dev/null || break
	sleep 0.2
done
sleep 2 # the last lines reach the files
pt_bochs_kill
echo "# $t: host seconds from Bochs' start: ${ready:-never} to /init, $(($(date +%s) - t0)) to the end"
pt_check "$t.mptable" "(no 'mptable: ok 2 CPUs of 2' in $e9)" pt_has "$e9" '^mptable: ok 2 CPUs of 2$'
pt_check "$t.all_virtualized" "(no 'smp: all 2 CPUs are virtualized' in $e9)" \
	pt_has "$e9" '^pagetrail: smp: all 2 CPUs are virtualized'
pt_check "$t.linux_found_mptable" "(no 'found SMP MP-table at [mem 0x0009fc00' in $com1)" \
	pt_has "$com1" 'found SMP MP-table at \[mem 0x0009fc00'
pt_check "$t.linux_brought_up_2" "(no 'smp: Brought up 1 node, 2 CPUs' in $com1)" \
	pt_has "$com1" 'smp: Brought up 1 node, 2 CPUs'
pt_check "$t.signature_on_every_cpu" "(pt-cpusig: $(pt_text "$com1" | grep -m1 '^cpusig: [0-9]* of'))" \
	pt_has "$com1" '^cpusig: 2 of 2 online CPUs say PageTrailHV$'
pt_check "$t.memload" "(no 'memload: ok' in $com1)" pt_has "$com1" '^memload: ok'
pt_check "$t.hotplug" "(no 'smp: hotplug cpu1 off and on again' in $com1)" \
	pt_has "$com1" '^smp: hotplug cpu1 off and on again$'
pt_check "$t.signature_after_hotplug" "(pt-cpusig after hotplug did not say 2 of 2)" \
	pt_has "$com1" '^cpusig-after-hotplug: 2 of 2 online CPUs say PageTrailHV$'
pt_check "$t.workload_ended" "(no 'pagetrail-init: workload smp status' in $com1)" \
	pt_has "$com1" '^pagetrail-init: workload smp status'
# The firmware's ExitBootServices, Linux's boot and the hotplug each start the AP once.
pt_check "$t.sipi_emulated" "(fewer than 3 'vCPU 1: start-up IPI' lines in $e9)" \
	test "$(pt_text "$e9" | grep -c '^pagetrail: smp: vCPU 1: start-up IPI, starts at')" -ge 3
if pt_has "$com1" 'Kernel panic|BUG:|Oops|general protection fault|traps: .* trap '; then
	pt_not_ok "$t.no_guest_crash $(pt_text "$com1" | grep -E -m1 'Kernel panic|BUG:|Oops|general protection fault|traps: ')"
else
	pt_ok "$t.no_guest_crash"
fi
pt_hv_log_checks "$t"
pt_finish
