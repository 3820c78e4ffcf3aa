#!/usr/bin/env bash
# The guest keeps its time and its wake-ups under the management tick: Linux with the
# ACPI PM timer as clocksource idles, is paused and resumed through ptctl, and its clock
# must keep pace with the host's (tests/qemu/guest_clock.py says why this shows a wake-up
# from a halt that the hypervisor lost). Then the guest powers off and the hypervisor
# reports no fault.
source "$(dirname "$0")/lib.sh"
pt_init guest_clock

PT_QEMU_TIMEOUT=240 pt_qemu_start --com1-socket --qemu-arg -m --qemu-arg 256M \
	--kernel-args "clocksource=acpi_pm"
if python3 tests/qemu/guest_clock.py "$RUN_DIR"; then
	pt_qemu_wait
	pt_check guest_clock.clean_poweroff "(QEMU status $pt_qemu_status)" test "$pt_qemu_status" -eq 0
else
	PT_FAILED=$((PT_FAILED + 1))
	pt_qemu_kill
fi
pt_hv_log_checks guest_clock
pt_finish
