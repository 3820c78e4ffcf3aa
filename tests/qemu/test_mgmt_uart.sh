#!/usr/bin/env bash
# The management port on a UART at a non-standard I/O address: a PCI 16550 (QEMU's
# pci-serial at 00:06.0, its I/O BAR wherever OVMF put it) chosen with
# `--mgmt-uart pci,00:06.0`. From the UEFI shell (tests/qemu/mgmt_uart_startup.nsh):
#  - a PCI address with no function is refused with a clear reason, nothing virtualized;
#  - then the good one: the hypervisor finds the BAR in PCI configuration space, intercepts
#    its eight ports, and ptctl talks to it end to end (info, stats, log) through the
#    card's socket, the firmware's own accesses to the card's ports exit to the
#    hypervisor, and COM2 is no longer the hypervisor's (no protocol reply there);
#  - QEMU is detected as an emulator (CPUID), so its exit ports may be used.
source "$(dirname "$0")/lib.sh"
pt_init mgmt_uart

pci_sock=$RUN_DIR/pciser.sock
rm -f "$pci_sock"
PT_QEMU_TIMEOUT=120 pt_qemu_start --shell tests/qemu/mgmt_uart_startup.nsh \
	--qemu-arg -chardev --qemu-arg "socket,id=pciser,path=$pci_sock,server=on,wait=off" \
	--qemu-arg -device --qemu-arg "pci-serial,chardev=pciser,bus=pcie.0,addr=0x6"
com1=$RUN_DIR/com1.log
hvlog=$RUN_DIR/hv.log
ptctl() { "$BUILD/ptctl" -c "unix:$1" --timeout "$2" "${@:3}"; }

if ! pt_wait_for "$com1" '^shell: pagetrail.efi returned' 90; then
	pt_not_ok "mgmt_uart.shell_ran (no 'shell: pagetrail.efi returned' on COM1)"
	pt_finish
	exit 1
fi
pt_check mgmt_uart.bad_pci_address_refused "(no 'no PCI function at 00:07.0' in $hvlog)" \
	pt_has "$hvlog" 'pagetrail: management port: no PCI function at 00:07\.0'
pt_check mgmt_uart.bad_pci_address_not_virtualized "(the shell did not get an error back)" \
	pt_has "$com1" '^shell: pagetrail.efi with no UART at 00:07.0 returned 0x[1-9a-fA-F]'
pt_check mgmt_uart.returned_success "(no 'pagetrail.efi returned 0x0')" \
	pt_has "$com1" '^shell: pagetrail.efi returned 0x0$'
pt_check mgmt_uart.emulator_detected "(no 'boot: emulator detected' in $hvlog)" \
	pt_has "$hvlog" 'pagetrail: boot: emulator detected \(QEMU TCG'
line=$(pt_text "$hvlog" | grep -E -m1 'pagetrail: management port: up on PCI 00:06\.0, I/O 0x' || true)
if [ -n "$line" ]; then
	pt_ok "mgmt_uart.pci_bar_found"
	echo "# ${line#pagetrail: }"
else
	pt_not_ok "mgmt_uart.pci_bar_found (no 'management port: up on PCI 00:06.0, I/O 0x...' in $hvlog)"
fi
port=$(sed -n 's/.*management port: up on PCI 00:06\.0, I\/O 0x\([0-9a-f]*\).*/\1/p' "$hvlog" | head -1)
pt_check mgmt_uart.not_a_standard_port "(I/O 0x$port is a PC COM port)" \
	eval '[ -n "$port" ] && [ "$port" != 3f8 ] && [ "$port" != 2f8 ] && [ "$port" != 3e8 ] && [ "$port" != 2e8 ]'

info_rc=0
info=$(ptctl "$pci_sock" 20000 info 2>&1) || info_rc=$?
pt_check mgmt_uart.ptctl_info "(ptctl info exit $info_rc: $info)" \
	eval '[ $info_rc -eq 0 ] && grep -q "^backend" <<<"$info"'
stats_rc=0
stats=$(ptctl "$pci_sock" 20000 --json stats 2>&1) || stats_rc=$?
pt_check mgmt_uart.ptctl_stats "(ptctl stats exit $stats_rc)" test "$stats_rc" -eq 0
# OVMF's serial driver keeps polling the card it believes it still has: every access to the
# card's ports exits to the hypervisor, which answers as an idle UART.
io=$(grep -o '"guest.mgmt_port_io": *[0-9]*' <<<"$stats" | grep -o '[0-9]*$' || true)
pt_check mgmt_uart.card_ports_intercepted "(guest.mgmt_port_io '$io' in ptctl stats)" \
	eval '[ -n "$io" ] && [ "$io" -gt 0 ]'
log_rc=0
log=$(ptctl "$pci_sock" 20000 log 2>&1) || log_rc=$?
pt_check mgmt_uart.ptctl_log_over_the_card "(ptctl log exit $log_rc, or no 'up on PCI 00:06.0' in it)" \
	eval '[ $log_rc -eq 0 ] && grep -q "management port: up on PCI 00:06.0" <<<"$log"'
# COM2 is the firmware's again: a request there gets no protocol reply (ptctl exit 3).
com2_rc=0
com2=$(ptctl "$RUN_DIR/mgmt.sock" 3000 info 2>&1) || com2_rc=$?
pt_check mgmt_uart.com2_not_the_management_port "(ptctl on COM2 exit $com2_rc: $com2)" \
	test "$com2_rc" -eq 3
pt_hv_log_checks mgmt_uart
pt_finish
