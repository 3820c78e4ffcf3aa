#!/usr/bin/env bash
# The default boot (OVMF -> ptboot.efi -> pagetrail.efi ->
# Linux's EFI stub) reaches the initramfs under the hypervisor, runs a workload (memory
# written and read back by 4 processes, plus short-lived processes) and powers off
# cleanly; the hypervisor says it was virtualizing and reports no fault.
source "$(dirname "$0")/lib.sh"
pt_init linux_boot

PT_QEMU_TIMEOUT=300 pt_qemu_start --kernel-args 'pt.workload=memload pt.poweroff=1'
pt_qemu_wait
com1=$RUN_DIR/com1.log
pt_check linux.init_reached "(no 'pagetrail-init: ready' in $com1)" pt_has "$com1" '^pagetrail-init: ready'
pt_check linux.memload "(pt-memload did not report ok)" pt_has "$com1" '^memload: ok'
pt_check linux.workload_status "(workload did not end with status 0)" \
	pt_has "$com1" '^pagetrail-init: workload memload status 0$'
pt_check linux.clean_poweroff "(QEMU status $pt_qemu_status, want 0 after 'reboot: Power down')" \
	eval 'pt_has "$com1" "reboot: Power down" && [ "$pt_qemu_status" -eq 0 ]'
pt_check linux.no_panic "(kernel oops/panic on COM1)" \
	eval '! pt_has "$com1" "(Kernel panic|BUG:|Oops|general protection fault)"'
# The management UART is the hypervisor's: the OS is not offered it. The 8250 driver
# probes 0x2F8 (its banner shows it ran; without the hypervisor it finds "ttyS1 at I/O
# 0x2f8", see the control in test_isolation.sh) and must find nothing there.
pt_check linux.com2_not_offered "(Linux registered a UART at 0x2f8, or its 8250 driver did not run)" \
	eval 'pt_has "$com1" "Serial: 8250/16550 driver" && ! pt_has "$com1" "ttyS[0-9]+ at I/O 0x2f8"'
pt_hv_log_checks linux
pt_finish
