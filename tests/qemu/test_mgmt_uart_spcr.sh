#!/usr/bin/env bash
# The management UART named by the ACPI SPCR table (`--mgmt-uart spcr`): QEMU's q35 has
# no SPCR, so the test hands one to the firmware with -acpitable (Microsoft "Serial Port
# Console Redirection Table" revision 2: a full 16550, system I/O at 0x3F8 = COM1, 115200
# baud). The hypervisor must find it through the RSDP's XSDT, take COM1 for the protocol
# and answer ptctl there; COM2 is then the firmware's again.
source "$(dirname "$0")/lib.sh"
pt_init mgmt_uart_spcr

spcr=$RUN_DIR/spcr.bin
python3 - "$spcr" <<'PY'
import struct, sys
t = bytearray(80)
t[0:4] = b"SPCR"
struct.pack_into("<IB", t, 4, len(t), 2)             # length, revision
t[10:16] = b"PTTEST"
t[16:24] = b"PTSPCR  "
struct.pack_into("<I4sI", t, 24, 1, b"PTRL", 1)     # OEM revision, creator, creator revision
t[36] = 0x00                                          # interface type: full 16550
struct.pack_into("<BBBBQ", t, 40, 1, 8, 0, 1, 0x3F8) # GAS: system I/O, 8 bits, byte access
t[58] = 7                                             # baud rate code: 115200
t[62] = 0                                             # terminal type
struct.pack_into("<HH", t, 64, 0xFFFF, 0xFFFF)       # not a PCI device
t[9] = (-sum(t)) & 0xFF                               # checksum
open(sys.argv[1], "wb").write(t)
PY

PT_QEMU_TIMEOUT=120 pt_qemu_start --com1-socket \
	--boot-cfg '\EFI\pagetrail\pagetrail.efi --mgmt-uart spcr' \
	--qemu-arg -acpitable --qemu-arg "file=$spcr"
hvlog=$RUN_DIR/hv.log
ptctl() { "$BUILD/ptctl" -c "unix:$1" --timeout "$2" "${@:3}"; }

if ! pt_wait_for "$hvlog" 'pagetrail: guest running' 90; then
	pt_not_ok "mgmt_uart_spcr.guest_running (no 'guest running' in $hvlog)"
	pt_finish
	exit 1
fi
pt_check mgmt_uart_spcr.spcr_uart_taken "(no 'management port: up on SPCR, I/O 0x3f8' in $hvlog)" \
	pt_has "$hvlog" 'pagetrail: management port: up on SPCR, I/O 0x3f8$'
info_rc=0
info=$(ptctl "$RUN_DIR/com1.sock" 20000 info 2>&1) || info_rc=$?
pt_check mgmt_uart_spcr.ptctl_info_on_com1 "(ptctl info exit $info_rc: $info)" \
	eval '[ $info_rc -eq 0 ] && grep -q "^backend" <<<"$info"'
com2_rc=0
com2=$(ptctl "$RUN_DIR/mgmt.sock" 3000 info 2>&1) || com2_rc=$?
pt_check mgmt_uart_spcr.com2_not_the_management_port "(ptctl on COM2 exit $com2_rc: $com2)" \
	test "$com2_rc" -eq 3
pt_hv_log_checks mgmt_uart_spcr
pt_finish
