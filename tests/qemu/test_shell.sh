#!/usr/bin/env bash
# Started from the UEFI shell without a next program, pagetrail.efi
# returns to the shell with success and the firmware goes on as its guest: the shell
# (tests/qemu/shell_startup.nsh) then runs probe.efi, whose checks must all pass.
source "$(dirname "$0")/lib.sh"
pt_init shell

PT_QEMU_TIMEOUT=150 pt_qemu_start --shell tests/qemu/shell_startup.nsh
pt_qemu_wait
com1=$RUN_DIR/com1.log
pt_check shell.returned_success "(no 'pagetrail.efi returned 0x0' from the shell)" \
	pt_has "$com1" '^shell: pagetrail.efi returned 0x0$'
pt_check shell.probe_after_return "(probe.efi after the return did not pass every check)" \
	eval 'pt_has "$com1" "^probe: done, 0 failed" && pt_has "$com1" "^ok cpuid_hv_signature$"'
pt_check shell.powered_off "(QEMU exit status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
pt_hv_log_checks shell
pt_finish
