/* SPDX-License-Identifier: MIT */
/*
 * Host unit tests (ASan+UBSan) of the management UART's choice and access:
 * the --mgmt-uart SPEC parser (good and bad specs), a PCI BAR and an ACPI
 * SPCR table (Microsoft "Serial Port Console Redirection Table", rev. 2 and
 * 4) turned into a 16550's address, and drivers/uart16550.c's MMIO register
 * access against a fake register file in memory: the stride, the access
 * width (a narrower store would leave the fill pattern in the upper bytes),
 * the init sequence, receive, line errors and transmit.
 * Prints "ok NAME" / "not ok NAME reason" lines for tests/run.sh.
 */
#include "drivers/uart16550.h"
#include "hv/log.h"
#include "hv/mgmt_uart.h"
#include "tests/check.h"

#include <stdio.h>
#include <string.h>

static char err[256];

static int parse(const char *spec, struct mgmt_uart_spec *s)
{
	err[0] = 0;
	return mgmt_uart_parse(spec, s, err, sizeof(err));
}

static void test_spec_good(void)
{
	struct mgmt_uart_spec s;

	CHECK(parse("", &s) == 0 && s.kind == MGMT_UART_FIXED && s.uart.space == UART_SPACE_IO &&
		  s.uart.base == 0x2f8 && s.baud == 115200,
	      ": the default is COM2 at 115200");
	CHECK(parse("com1", &s) == 0 && s.uart.base == 0x3f8 && s.uart.space == UART_SPACE_IO);
	CHECK(parse("com4,9600", &s) == 0 && s.uart.base == 0x2e8 && s.baud == 9600);
	CHECK(parse("io,0xc000,57600", &s) == 0 && s.uart.space == UART_SPACE_IO &&
	      s.uart.base == 0xc000 && s.baud == 57600 && s.uart.reg_width == 1);
	CHECK(parse("io,1016", &s) == 0 && s.uart.base == 1016, ": decimal port");
	CHECK(parse("mmio,0xfe001000", &s) == 0 && s.uart.space == UART_SPACE_MMIO &&
	      s.uart.reg_shift == 0 && s.uart.reg_width == 1 && s.uart.base == 0xfe001000);
	CHECK(parse("mmio16,0xfe001002", &s) == 0 && s.uart.reg_shift == 1 &&
	      s.uart.reg_width == 2);
	CHECK(parse("mmio32,0xFEDC9000,0", &s) == 0 && s.uart.reg_shift == 2 &&
		  s.uart.reg_width == 4 && s.uart.base == 0xfedc9000 && s.baud == 0 && s.baud_given,
	      ": baud 0 keeps the firmware's rate");
	CHECK(parse("pci,00:06.0", &s) == 0 && s.kind == MGMT_UART_PCI && s.pci_bus == 0 &&
	      s.pci_dev == 6 && s.pci_fn == 0);
	CHECK(parse("pci,3a:1f.7,19200", &s) == 0 && s.pci_bus == 0x3a && s.pci_dev == 0x1f &&
	      s.pci_fn == 7 && s.baud == 19200);
	CHECK(parse("spcr", &s) == 0 && s.kind == MGMT_UART_SPCR && !s.baud_given);
	CHECK(parse("spcr,115200", &s) == 0 && s.baud_given && s.baud == 115200);
	test_report("mgmt_uart.spec_good_forms_parse");
}

static void test_spec_bad(void)
{
	static const char *const bad[] = {
	    "com5",
	    "ttyS0",
	    "io",
	    "io,",
	    "io,0xfff9",
	    "io,0x10000",
	    "io,0xc000x",
	    "io,-1",
	    "mmio,0",
	    "mmio32,0x1002",
	    "mmio16,0x1001",
	    "mmio",
	    "pci",
	    "pci,00:20.0",
	    "pci,00:06.8",
	    "pci,0:6",
	    "pci,000:06.0",
	    "pci,00:06.0,",
	    "com1,1234",
	    "com1,230400",
	    "com1,115200x",
	    "com1,9600,8n1",
	    "spcr,",
	    "comx",
	    "io,0x99999999999999999999",
	    "mmio,0x10000000000000",
	};
	struct mgmt_uart_spec s;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		int rc = parse(bad[i], &s);

		CHECK(rc == -1 && err[0], ": \"%s\" accepted", bad[i]);
		if (rc == -1)
			printf("# %-28s -> %s\n", bad[i], err);
	}
	test_report("mgmt_uart.spec_bad_forms_refused_with_a_reason");
}

static void test_bar(void)
{
	struct uart16550 u;

	CHECK(mgmt_uart_from_bar(0xc001, 0, &u, err, sizeof(err)) == 0 &&
	      u.space == UART_SPACE_IO && u.base == 0xc000);
	CHECK(mgmt_uart_from_bar(0xfebd1000, 0, &u, err, sizeof(err)) == 0 &&
	      u.space == UART_SPACE_MMIO && u.base == 0xfebd1000 && u.reg_width == 1 &&
	      u.reg_shift == 0);
	CHECK(mgmt_uart_from_bar(0x80000004 | 0x8, 0x3f, &u, err, sizeof(err)) == 0 &&
		  u.base == 0x3f80000000ull,
	      ": a 64-bit memory BAR takes BAR 1 as its upper half");
	CHECK(mgmt_uart_from_bar(0x1, 0, &u, err, sizeof(err)) == -1, ": unassigned I/O BAR");
	CHECK(mgmt_uart_from_bar(0x0, 0, &u, err, sizeof(err)) == -1, ": unassigned memory BAR");
	test_report("mgmt_uart.pci_bar_decoded");
}

/* An SPCR table as a firmware would lay it out (spec Table 1), checksum not needed here. */
static void spcr_make(u8 *t, u32 len, u8 rev, u8 iface, u8 space, u8 width, u8 access, u64 addr,
		      u8 baud_code)
{
	memset(t, 0, len);
	memcpy(t, "SPCR", 4);
	t[4] = (u8)len;
	t[5] = (u8)(len >> 8);
	t[8] = rev;
	t[36] = iface;
	t[40] = space;
	t[41] = width;
	t[43] = access;
	memcpy(t + 44, &addr, 8);
	t[58] = baud_code;
}

static int spcr_uart(const u8 *t, struct acpi_spcr *sp, struct uart16550 *u)
{
	err[0] = 0;
	if (acpi_spcr_read((u64)(uintptr_t)t, sp, err, sizeof(err)))
		return -1;
	return mgmt_uart_from_spcr(sp, u, err, sizeof(err));
}

static void test_spcr(void)
{
	u8 t[90];
	struct acpi_spcr sp;
	struct uart16550 u;
	u32 v;

	/* Revision 2, a PC's COM1 at 115200 (code 7). */
	spcr_make(t, 80, 2, 0x00, 1, 8, 1, 0x3f8, 7);
	CHECK(spcr_uart(t, &sp, &u) == 0 && u.space == UART_SPACE_IO && u.base == 0x3f8 &&
		  sp.baud == 115200 && sp.clock_hz == 0,
	      ": %s", err);
	/* Revision 4, a DesignWare-style MMIO UART, dword access, 48 MHz, precise 1.5 Mbaud. */
	spcr_make(t, 88, 4, 0x12, 0, 32, 3, 0xfedc9000, 0);
	v = 48000000;
	memcpy(t + 76, &v, 4);
	v = 1500000;
	memcpy(t + 80, &v, 4);
	CHECK(spcr_uart(t, &sp, &u) == 0 && u.space == UART_SPACE_MMIO && u.base == 0xfedc9000 &&
		  u.reg_width == 4 && u.reg_shift == 2 && sp.baud == 1500000 &&
		  sp.clock_hz == 48000000,
	      ": %s", err);
	/* No access size: the register bit width says it (16 bits). */
	spcr_make(t, 80, 2, 0x01, 0, 16, 0, 0xfe000000, 0);
	CHECK(spcr_uart(t, &sp, &u) == 0 && u.reg_width == 2 && u.reg_shift == 1 && sp.baud == 0,
	      ": %s", err);
	/* Revision 2 ignores what would be the clock field. */
	spcr_make(t, 80, 2, 0x00, 1, 8, 1, 0x2f8, 3);
	v = 12345;
	memcpy(t + 76, &v, 4);
	CHECK(spcr_uart(t, &sp, &u) == 0 && sp.clock_hz == 0 && sp.baud == 9600);

	spcr_make(t, 80, 2, 0x03, 0, 32, 3, 0x9000000, 7); /* ARM PL011 */
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "not a 16550"), ": %s", err);
	spcr_make(t, 80, 2, 0x00, 2, 8, 1, 0x3f8, 7); /* PCI configuration space */
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "address space"), ": %s", err);
	spcr_make(t, 60, 2, 0x00, 1, 8, 1, 0x3f8, 7);
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "shorter"), ": %s", err);
	spcr_make(t, 80, 2, 0x00, 1, 8, 1, 0x3f8, 5);
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "baud"), ": %s", err);
	spcr_make(t, 80, 2, 0x00, 0, 64, 4, 0xfe000000, 7);
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "width"), ": %s", err);
	spcr_make(t, 80, 2, 0x00, 0, 32, 3, 0xfe000002, 7);
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "aligned"), ": %s", err);
	spcr_make(t, 80, 2, 0x00, 1, 8, 1, 0, 7);
	CHECK(spcr_uart(t, &sp, &u) == -1 && strstr(err, "no base"), ": %s", err);
	test_report("mgmt_uart.spcr_table_decoded");
}

#define FILL32 0xaaaaaaaau

/* 32-bit registers 4 bytes apart: every store is one whole dword. */
static void test_mmio32(void)
{
	volatile u32 regs[8];
	struct uart16550 u = {.space = UART_SPACE_MMIO, .reg_shift = 2, .reg_width = 4};
	unsigned int i;

	for (i = 0; i < 8; i++)
		regs[i] = FILL32;
	u.base = (u64)(uintptr_t)regs;
	CHECK(uart_init(&u, 9600, 0) && u.present, ": the scratch register read back");
	CHECK(u.baud == 9600, ": the line's rate %u", u.baud);
	CHECK(regs[UART_RBR_THR] == 12, ": DLL 0x%x, want 12 (1.8432 MHz / 16 / 9600)",
	      regs[UART_RBR_THR]);
	CHECK(regs[UART_IER] == 0, ": DLM then IER: 0x%x", regs[UART_IER]);
	CHECK(regs[UART_LCR] == UART_LCR_8N1, ": LCR 0x%x", regs[UART_LCR]);
	CHECK(regs[UART_IIR_FCR] == UART_FCR_ENABLE_CLEAR_TRIG14, ": FCR 0x%x", regs[UART_IIR_FCR]);
	CHECK(regs[UART_MCR] == UART_MCR_DTR_RTS_OUT2, ": MCR 0x%x", regs[UART_MCR]);
	CHECK(regs[UART_SCR] == 0x5a, ": SCR 0x%x", regs[UART_SCR]);
	CHECK(regs[UART_LSR] == FILL32 && regs[UART_MSR] == FILL32,
	      ": LSR and MSR are never written");

	regs[UART_LSR] = 0xffffff00u | UART_LSR_THRE | UART_LSR_DR;
	regs[UART_RBR_THR] = 0xffffff41u;
	CHECK(uart_getc_or_error(&u) == 'A', ": the received byte is the register's low byte");
	regs[UART_LSR] = UART_LSR_DR | 0x02; /* overrun */
	CHECK(uart_getc_or_error(&u) == -2, ": a line error is reported first");
	regs[UART_LSR] = 0;
	CHECK(uart_getc_or_error(&u) == -1 && uart_getc_nowait(&u) == -1 && uart_tx_room(&u) == 0);
	regs[UART_LSR] = UART_LSR_THRE;
	CHECK(uart_tx_room(&u) == 16);
	uart_putc_nowait(&u, 'z');
	CHECK(regs[UART_RBR_THR] == 'z', ": THR 0x%x", regs[UART_RBR_THR]);
	CHECK(uart_putc(&u, 'y') && regs[UART_RBR_THR] == 'y');
	regs[UART_LSR] = 0;
	CHECK(!uart_putc(&u, 'x') && regs[UART_RBR_THR] == 'y', ": a full THR times out, bounded");
	test_report("uart16550.mmio32_registers_4_apart_dword_access");
}

/* 8-bit registers 1 byte apart: a store touches its byte only. */
static void test_mmio8(void)
{
	volatile u8 regs[16];
	struct uart16550 u = {.space = UART_SPACE_MMIO, .reg_shift = 0, .reg_width = 1};
	unsigned int i;

	for (i = 0; i < sizeof(regs); i++)
		regs[i] = 0xaa;
	u.base = (u64)(uintptr_t)regs;
	CHECK(uart_init(&u, 115200, 0) && u.present);
	CHECK(regs[0] == 1 && regs[1] == 0 && regs[3] == UART_LCR_8N1 && regs[7] == 0x5a);
	for (i = 8; i < sizeof(regs); i++)
		CHECK(regs[i] == 0xaa, ": byte %u beyond the registers written", i);
	test_report("uart16550.mmio8_registers_1_apart_byte_access");
}

/* 16-bit registers 2 bytes apart, a 48 MHz clock, and baud 0 keeping the divisor. */
static void test_mmio16(void)
{
	volatile u16 regs[8];
	struct uart16550 u = {.space = UART_SPACE_MMIO, .reg_shift = 1, .reg_width = 2};
	unsigned int i;

	for (i = 0; i < 8; i++)
		regs[i] = 0xaaaa;
	u.base = (u64)(uintptr_t)regs;
	CHECK(uart_init(&u, 115200, 48000000) && regs[0] == 26 && regs[1] == 0,
	      ": DLL %u (48 MHz / 16 / 115200 = 26)", regs[0]);
	CHECK(u.baud == 115384, ": the line's rate as divided: %u", u.baud);
	for (i = 0; i < 8; i++)
		regs[i] = 0xaaaa;
	/* DLL 3: 38400 baud from a PC clock (DLM shares its cell with IER, written 0 here). */
	regs[0] = 0xff03;
	CHECK(uart_init(&u, 0, 0) && regs[0] == 0xff03 && regs[3] == UART_LCR_8N1,
	      ": baud 0 must not touch the divisor (DLL 0x%x)", regs[0]);
	CHECK(u.baud == 38400, ": the firmware's divisor read back as %u baud", u.baud);
	regs[0] = regs[1] = 0;
	CHECK(uart_init(&u, 0, 0) && u.baud == 0, ": a divisor of 0 is no rate");
	test_report("uart16550.mmio16_and_firmware_divisor_kept");
}

/* A UART whose scratch register did not answer at init is never touched again. */
static void test_absent(void)
{
	volatile u8 regs[8];
	struct uart16550 u = {.space = UART_SPACE_MMIO, .reg_width = 1, .present = false};
	unsigned int i;

	for (i = 0; i < 8; i++)
		regs[i] = 0xaa;
	u.base = (u64)(uintptr_t)regs;
	CHECK(!uart_putc(&u, 'a') && uart_getc_nowait(&u) == -1 && uart_getc_or_error(&u) == -1 &&
		  uart_tx_room(&u) == 0,
	      ": an absent UART is never waited on");
	for (i = 0; i < 8; i++)
		CHECK(regs[i] == 0xaa, ": register %u of an absent UART written", i);
	test_report("uart16550.absent_uart_never_waited_on");
}

int main(void)
{
	test_spec_good();
	test_spec_bad();
	test_bar();
	test_spcr();
	test_mmio32();
	test_mmio8();
	test_mmio16();
	test_absent();
	return test_failures ? 1 : 0;
}
