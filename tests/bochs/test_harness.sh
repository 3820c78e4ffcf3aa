#!/usr/bin/env bash
# The Bochs harness itself (tests/bochs/lib.sh): OVMF boots the FAT ESP on a VMX CPU model,
# an EFI program's console line reaches the COM1 file, its port 0xE9 line reaches the 0xE9
# log, the CPU offers VMX, and the firmware powers Bochs off. Every other Bochs test
# stands on this one.
source "$(dirname "$0")/lib.sh"
pt_init harness
pt_need "$BUILD/bochs/hello.efi"
img=$RUN_DIR/esp.img
pt_bochs_esp "$img" "$BUILD/bochs/hello.efi=/EFI/BOOT/BOOTX64.EFI" || {
	pt_not_ok "harness.esp mtools failed"
	exit 1
}
pt_bochs_run "${PT_BOCHS_MODEL:-corei7_skylake_x}" "$img" 300
pt_check harness.com1 "(no 'hello-com1: vendor GenuineIntel' in $RUN_DIR/com1.log)" \
	pt_has "$RUN_DIR/com1.log" '^hello-com1: vendor GenuineIntel'
pt_check harness.cpu_has_vmx "(the CPU model does not offer VMX)" \
	pt_has "$RUN_DIR/com1.log" '^hello-com1: .* vmx 1$'
pt_check harness.port_e9 "(no 'hello-e9: port 0xe9 works' in $RUN_DIR/e9.log)" \
	pt_has "$RUN_DIR/e9.log" '^hello-e9: port 0xe9 works'
pt_check harness.powered_off "(Bochs did not stop by itself: status $pt_bochs_status)" \
	test "$pt_bochs_status" -ne 124 -a "$pt_bochs_status" -ne 143
pt_finish
