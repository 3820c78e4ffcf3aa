#!/usr/bin/env bash
# Linux under Intel VMX (Bochs corei7_skylake_x): pagetrail.efi virtualizes OVMF, which
# then boots Debian's kernel (EFI stub) with the test initramfs as its guest, to /init and
# its power-off request, with no fault from the hypervisor. It exercises what the probes
# do not: CR0/CR4 writes through the read shadows, XSETBV, the OS's own GDT/IDT/TSS, long
# runs of guest interrupts, and the CPUID bits that mirror the guest's CR4 (b667e24).
source "$(dirname "$0")/lib.sh"
pt_init linux_boot
img=$RUN_DIR/esp.img
com1=$RUN_DIR/com1.log
t=linux_boot
pt_need "$PT_CACHE/vmlinuz" "$BUILD/images/initramfs.cpio.gz"
pt_bochs_chain_esp "$img" \
	'\EFI\pagetrail\pagetrail.efi \EFI\Linux\vmlinuz.efi initrd=\EFI\Linux\initrd.img console=ttyS0 pt.poweroff=1' \
	"$PT_CACHE/vmlinuz=/EFI/Linux/vmlinuz.efi" \
	"$BUILD/images/initramfs.cpio.gz=/EFI/Linux/initrd.img" || {
	pt_not_ok "$t.esp mtools failed"
	exit 1
}
pt_bochs_run "${PT_BOCHS_MODEL:-corei7_skylake_x}" "$img" 800 \
	'pagetrail-init: poweroff|reboot: (System halted|Power down)|pagetrail: (FATAL|PANIC)|Kernel panic'
pt_check "$t.kernel_started" "(no 'Linux version' in $com1)" pt_has "$com1" 'Linux version'
pt_check "$t.init_ready" "(no 'pagetrail-init: ready' in $com1)" \
	pt_has "$com1" '^pagetrail-init: ready'
if pt_has "$com1" 'Kernel panic|traps: .* trap '; then
	pt_not_ok "$t.no_guest_crash $(pt_text "$com1" | grep -E -m1 'Kernel panic|traps: ')"
else
	pt_ok "$t.no_guest_crash"
fi
pt_hv_log_checks "$t"
pt_finish
