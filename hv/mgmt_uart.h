/* SPDX-License-Identifier: MIT */
/*
 * Which 16550 is the management port (pagetrail.efi --mgmt-uart SPEC):
 *
 *   com1 | com2 | com3 | com4   the PC's ports 0x3F8, 0x2F8, 0x3E8, 0x2E8
 *   io,PORT                      a 16550 at I/O port PORT (e.g. a PCI card's BAR)
 *   mmio,ADDR                    memory-mapped, 8-bit registers 1 byte apart
 *   mmio16,ADDR                  16-bit accesses, registers 2 bytes apart
 *   mmio32,ADDR                  32-bit accesses, registers 4 bytes apart
 *   pci,BB:DD.F                  the PCI UART at bus BB, device DD, function F
 *                                (hex): its BAR 0, I/O or memory, as the
 *                                firmware assigned it
 *   spcr                         the UART the ACPI SPCR table names
 *
 * each optionally followed by ,BAUD (default 115200; 0 keeps the divisor the
 * firmware programmed). Numbers are hex with 0x, else decimal. The syntax
 * follows Linux's earlycon= ("uart8250,io,<addr>", "uart8250,mmio32,<addr>",
 * Documentation/admin-guide/kernel-parameters.txt). No SPEC: COM2.
 *
 * The guest never reaches the chosen UART: its eight I/O ports are
 * intercepted (arch/x86/{svm,vmx}) and answered as an idle UART
 * (hv/control.c), or its MMIO page is left out of the nested page tables
 * (hidden, hv/vm.c), where an access gets #GP.
 */
#ifndef PT_HV_MGMT_UART_H
#define PT_HV_MGMT_UART_H

#include "drivers/uart16550.h"

#include <pt/types.h>

enum mgmt_uart_kind {
	MGMT_UART_FIXED, /* io/mmio/comN: the address is in the spec */
	MGMT_UART_PCI,	 /* the address is in a PCI function's BAR 0 */
	MGMT_UART_SPCR,	 /* the address is in the ACPI SPCR table */
};

struct mgmt_uart_spec {
	u8 kind; /* enum mgmt_uart_kind */
	struct uart16550 uart;
	u8 pci_bus, pci_dev, pci_fn;
	bool baud_given;
	u32 baud;
	u32 clock_hz; /* 0: UART_CLOCK_PC */
};

/*
 * Parses SPEC ("" is COM2) into *out. 0, or -1 with the reason in err
 * (a complete sentence, for the log and the console).
 */
int mgmt_uart_parse(const char *spec, struct mgmt_uart_spec *out, char *err, size_t err_size);

/*
 * A PCI function's BAR 0 (and BAR 1, its upper half when BAR 0 is 64-bit
 * memory) as the UART's address: I/O (bit 0 set) or memory, 8-bit
 * registers 1 byte apart (PCI 16550 class 07h/00h/02h). 0, or -1 with
 * the reason in err (no BAR, or one beyond the I/O space).
 */
int mgmt_uart_from_bar(u32 bar0, u32 bar1, struct uart16550 *u, char *err, size_t err_size);

/* ACPI SPCR "Serial Port Console Redirection Table" (Microsoft, revision 4). */
struct acpi_spcr {
	u8 interface_type; /* Table 3: 0 full 16550, 1 16450, ... */
	u8 space;	   /* GAS address space: 0 memory, 1 system I/O */
	u8 bit_width;	   /* GAS register bit width */
	u8 access_size;	   /* GAS access size: 1 byte, 2 word, 3 dword, 4 qword */
	u64 address;
	u32 baud;     /* from the baud rate code: 0 "as is" */
	u32 clock_hz; /* UART Clock Frequency (revision 3+), 0 if not given */
};

/*
 * Reads the SPCR table at `table` (a physical address, checked by
 * acpi_find_table) into *out; 0, or -1 with the reason in err (too short,
 * a baud code the spec does not define).
 */
int acpi_spcr_read(u64 table, struct acpi_spcr *out, char *err, size_t err_size);
/*
 * The UART an SPCR table names, as a 16550: 0, or -1 with the reason in
 * err (not a 16550 interface type, an address space other than memory or
 * I/O, a register width other than 8, 16 or 32 bits).
 */
int mgmt_uart_from_spcr(const struct acpi_spcr *t, struct uart16550 *u, char *err, size_t err_size);

/* "I/O 0x2f8" / "MMIO 0xfedc9000 (32-bit registers, 4 bytes apart)" into buf. */
void mgmt_uart_describe(const struct uart16550 *u, char *buf, size_t size);

struct hv_boot_info;
/*
 * hv_init: the management UART from bi->mgmt_uart, found (PCI config space,
 * SPCR), checked and programmed into *u. 0 (also when no UART answers
 * there: logged, the port is then down), or -1 after logging why the SPEC
 * is wrong (pagetrail.efi then does not virtualize).
 */
int hv_mgmt_uart_setup(const struct hv_boot_info *bi, struct uart16550 *u);
/* What hv_mgmt_uart_setup chose, for log lines ("COM2 (I/O 0x2f8)"). */
const char *hv_mgmt_uart_name(void);

/* The guest's I/O port `port` is register *reg of the management UART. */
static inline bool mgmt_uart_io_reg(const struct uart16550 *u, u64 port, unsigned int *reg)
{
	if (u->space != UART_SPACE_IO || port < u->base || port >= u->base + UART_NR_PORTS)
		return false;
	*reg = (unsigned int)(port - u->base);
	return true;
}

#endif /* PT_HV_MGMT_UART_H */
