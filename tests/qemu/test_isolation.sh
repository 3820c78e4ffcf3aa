#!/usr/bin/env bash
# Linux, booted under the hypervisor with iomem=relaxed nopat
# (so /dev/mem reaches reserved memory), tries to read and write every region the
# hypervisor hides and its management UART (tests/guest/attack.c, driven over the console
# by tests/qemu/isolation.py). Then: nothing learned, nothing changed (checked from
# outside with QMP pmemsave and the management socket), the hypervisor counted the
# accesses, the guest goes on and powers off, and the hypervisor reports no fault.
source "$(dirname "$0")/lib.sh"
pt_init isolation

PT_QEMU_TIMEOUT=300 pt_qemu_start --com1-socket --kernel-args 'iomem=relaxed nopat'
# Its own "not ok" lines name a failed check; a checker that dies without one still fails.
python3 tests/qemu/isolation.py "$RUN_DIR" 280 || PT_FAILED=$((PT_FAILED + 1))
pt_qemu_wait
pt_check isolation.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
# The attacker's own write() may oops the guest kernel (see isolation.py); the guest as a
# whole must survive.
pt_check isolation.no_guest_kernel_panic "(panic on COM1)" \
	eval '! pt_has "$RUN_DIR/com1.log" "Kernel panic"'
pt_hv_log_checks isolation

# Every CPU: with 2 CPUs (each a vCPU, docs/smp.md) the memory and UART attacks run pinned
# to each CPU in turn, and each must learn and change nothing.
pt_run_dir isolation-smp
PT_QEMU_TIMEOUT=300 pt_qemu_start --smp 2 --com1-socket --kernel-args 'iomem=relaxed nopat'
python3 tests/qemu/isolation.py "$RUN_DIR" 280 cpus=2 || PT_FAILED=$((PT_FAILED + 1))
pt_qemu_wait
pt_check isolation.smp.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
pt_check isolation.smp.no_guest_kernel_panic "(panic on COM1)" \
	eval '! pt_has "$RUN_DIR/com1.log" "Kernel panic"'
pt_check isolation.smp.both_cpus_virtualized "(no 'all 2 CPUs are virtualized' in hv.log)" \
	pt_has "$RUN_DIR/hv.log" 'smp: all 2 CPUs are virtualized'
pt_hv_log_checks isolation.smp

# Control: without the hypervisor the same attacker must reach reserved memory.
pt_run_dir isolation-nohv
PT_QEMU_TIMEOUT=120 pt_qemu_start --com1-socket --no-hv --kernel-args 'iomem=relaxed nopat'
python3 tests/qemu/isolation.py "$RUN_DIR" 110 negative || PT_FAILED=$((PT_FAILED + 1))
pt_qemu_wait
# Control for linux.com2_not_offered (test_linux_boot.sh): without the hypervisor Linux
# does find the UART at 0x2F8.
pt_check isolation.negative_control_linux_finds_com2_without_hv "(no 'ttyS1 at I/O 0x2f8' without the hv)" \
	pt_has "$RUN_DIR/com1.log" "ttyS[0-9]+ at I/O 0x2f8"
pt_finish
