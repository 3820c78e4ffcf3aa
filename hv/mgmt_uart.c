/* SPDX-License-Identifier: MIT */
/*
 * The management UART's choice (hv/mgmt_uart.h): the --mgmt-uart SPEC, a
 * PCI function's BAR, the ACPI SPCR table. The parsing and decoding here
 * touch no hardware and run in host tests (tests/hv/hv_unit_test.c);
 * hv_mgmt_uart_setup, which reads PCI configuration space and programs the
 * UART, runs in hv_init only.
 */
#include "hv/mgmt_uart.h"

#include "hv/log.h"

#ifdef PT_FREESTANDING
#include "arch/x86/cpu.h"
#include "hv/acpi.h"
#include "hv/boot.h"
#endif

#define MGMT_UART_DEFAULT_BAUD 115200u

/* ---- SPEC ---- */

static bool prefix_is(const char *s, const char *p, const char **rest)
{
	while (*p && *s == *p)
		s++, p++;
	if (*p || (*s && *s != ','))
		return false;
	*rest = s;
	return true;
}

/* A number (0x.. hex, else decimal) ending at ',' or the end. */
static bool parse_num(const char **s, u64 *out)
{
	const char *p = *s;
	unsigned int base = 10, d, n = 0;
	u64 v = 0;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (; *p && *p != ','; p++, n++) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			return false;
		if (v > (~0ull - d) / base)
			return false;
		v = v * base + d;
	}
	if (!n)
		return false;
	*out = v;
	*s = p;
	return true;
}

static bool parse_hex_byte(const char **s, char end, u8 max, u8 *out)
{
	const char *p = *s;
	unsigned int v = 0, n = 0;

	for (; *p && *p != end; p++, n++) {
		if (n == 2)
			return false;
		if (*p >= '0' && *p <= '9')
			v = v * 16 + (unsigned int)(*p - '0');
		else if (*p >= 'a' && *p <= 'f')
			v = v * 16 + (unsigned int)(*p - 'a' + 10);
		else if (*p >= 'A' && *p <= 'F')
			v = v * 16 + (unsigned int)(*p - 'A' + 10);
		else
			return false;
	}
	if (!n || v > max)
		return false;
	*out = (u8)v;
	*s = p;
	return true;
}

/* BB:DD.F (hex; device 0-1f, function 0-7) ending at ',' or the end. */
static bool parse_bdf(const char **s, struct mgmt_uart_spec *out)
{
	const char *p = *s;

	if (!parse_hex_byte(&p, ':', 0xff, &out->pci_bus) || *p++ != ':' ||
	    !parse_hex_byte(&p, '.', 0x1f, &out->pci_dev) || *p++ != '.' ||
	    !parse_hex_byte(&p, ',', 7, &out->pci_fn))
		return false;
	*s = p;
	return true;
}

static const struct {
	const char *name;
	u16 port;
} mgmt_uart_com[] = {
    {"com1", UART_COM1_BASE},
    {"com2", UART_COM2_BASE},
    {"com3", UART_COM3_BASE},
    {"com4", UART_COM4_BASE},
};

static const struct {
	const char *name;
	u8 shift, width;
} mgmt_uart_mmio[] = {
    {"mmio", 0, 1},
    {"mmio16", 1, 2},
    {"mmio32", 2, 4},
};

int mgmt_uart_parse(const char *spec, struct mgmt_uart_spec *out, char *err, size_t err_size)
{
	const char *s = spec, *rest = NULL;
	u64 v;
	unsigned int i;

	*out = (struct mgmt_uart_spec){
	    .kind = MGMT_UART_FIXED,
	    .uart = {.base = UART_COM2_BASE, .space = UART_SPACE_IO, .reg_width = 1},
	    .baud = MGMT_UART_DEFAULT_BAUD};
	if (!*s)
		return 0;
	for (i = 0; i < ARRAY_SIZE(mgmt_uart_com); i++)
		if (prefix_is(s, mgmt_uart_com[i].name, &rest))
			out->uart.base = mgmt_uart_com[i].port;
	if (!rest && prefix_is(s, "io", &rest)) {
		if (*rest++ != ',' || !parse_num(&rest, &v) || v + UART_NR_PORTS > 0x10000) {
			hv_snprintf(
			    err, err_size,
			    "--mgmt-uart io,PORT: PORT must be an I/O port from 0 to 0xfff8");
			return -1;
		}
		out->uart.base = v;
	}
	for (i = 0; !rest && i < ARRAY_SIZE(mgmt_uart_mmio); i++) {
		if (!prefix_is(s, mgmt_uart_mmio[i].name, &rest))
			continue;
		out->uart.space = UART_SPACE_MMIO;
		out->uart.reg_shift = mgmt_uart_mmio[i].shift;
		out->uart.reg_width = mgmt_uart_mmio[i].width;
		if (*rest++ != ',' || !parse_num(&rest, &v) || !v ||
		    (v & (mgmt_uart_mmio[i].width - 1)) || v >> 52) {
			hv_snprintf(err, err_size,
				    "--mgmt-uart %s,ADDR: ADDR must be a nonzero physical address "
				    "below 2^52%s",
				    mgmt_uart_mmio[i].name,
				    mgmt_uart_mmio[i].width == 4   ? ", a multiple of 4"
				    : mgmt_uart_mmio[i].width == 2 ? ", a multiple of 2"
								   : "");
			return -1;
		}
		out->uart.base = v;
	}
	if (!rest && prefix_is(s, "pci", &rest)) {
		out->kind = MGMT_UART_PCI;
		if (*rest++ != ',' || !parse_bdf(&rest, out)) {
			hv_snprintf(err, err_size,
				    "--mgmt-uart pci,BB:DD.F: bus, device (up to 1f) and function "
				    "(up to 7) in hex, e.g. pci,00:06.0");
			return -1;
		}
	}
	if (!rest && prefix_is(s, "spcr", &rest))
		out->kind = MGMT_UART_SPCR;
	if (!rest) {
		hv_snprintf(err, err_size,
			    "--mgmt-uart %s: unknown UART (com1..com4, io,PORT, mmio,ADDR, "
			    "mmio16,ADDR, mmio32,ADDR, pci,BB:DD.F or spcr)",
			    spec);
		return -1;
	}
	if (*rest == ',') {
		rest++;
		if (!parse_num(&rest, &v) || *rest ||
		    (v && (v > MGMT_UART_DEFAULT_BAUD || UART_CLOCK_PC / 16 % v))) {
			hv_snprintf(err, err_size,
				    "--mgmt-uart %s: BAUD must divide 115200 (e.g. 9600, 19200, "
				    "38400, 57600, 115200), or be 0 to keep the firmware's rate",
				    spec);
			return -1;
		}
		out->baud = (u32)v;
		out->baud_given = true;
	}
	if (*rest) {
		hv_snprintf(err, err_size, "--mgmt-uart %s: unexpected \"%s\"", spec, rest);
		return -1;
	}
	return 0;
}

/* ---- PCI ---- */

/* PCI Local Bus Specification 3.0, 6.2.5.1 "Address Maps": BAR bit 0 is I/O space. */
#define PCI_BAR_IO	      BIT_ULL(0)
#define PCI_BAR_MEM_TYPE_64   (2u << 1)
#define PCI_BAR_MEM_TYPE_MASK (3u << 1)

int mgmt_uart_from_bar(u32 bar0, u32 bar1, struct uart16550 *u, char *err, size_t err_size)
{
	u64 base;

	*u = (struct uart16550){.reg_width = 1};
	if (bar0 & PCI_BAR_IO) {
		base = bar0 & ~3u;
		if (!base || base + UART_NR_PORTS > 0x10000) {
			hv_snprintf(err, err_size,
				    "BAR 0 is I/O at 0x%lx: not assigned or not a port", base);
			return -1;
		}
		u->space = UART_SPACE_IO;
	} else {
		base = bar0 & ~0xfu;
		if ((bar0 & PCI_BAR_MEM_TYPE_MASK) == PCI_BAR_MEM_TYPE_64)
			base |= (u64)bar1 << 32;
		if (!base) {
			hv_snprintf(err, err_size, "BAR 0 is memory but not assigned (0)");
			return -1;
		}
		u->space = UART_SPACE_MMIO;
	}
	u->base = base;
	return 0;
}

/* ---- SPCR ---- */

/*
 * Microsoft, "Serial Port Console Redirection Table" (SPCR), revision 4
 * (spec version 1.10), Table 1 "SPCR Format": byte offsets.
 */
#define SPCR_OFF_LENGTH	      4u
#define SPCR_OFF_REVISION     8u
#define SPCR_OFF_INTERFACE    36u
#define SPCR_OFF_GAS_SPACE    40u /* Base Address: ACPI Generic Address Structure */
#define SPCR_OFF_GAS_WIDTH    41u
#define SPCR_OFF_GAS_ACCESS   43u
#define SPCR_OFF_GAS_ADDR     44u
#define SPCR_OFF_BAUD	      58u
#define SPCR_OFF_CLOCK	      76u /* UART Clock Frequency, revision 3+ */
#define SPCR_OFF_PRECISE_BAUD 80u /* Precise Baud Rate, revision 4+ */
#define SPCR_MIN_LEN	      80u
/* Interface types (the DBG2 table's serial port subtypes): the 16550 family. */
#define SPCR_IF_16550	  0x00u
#define SPCR_IF_16450	  0x01u
#define SPCR_IF_16550_GAS 0x12u
/* ACPI 6.5, 5.2.3.2 "Generic Address Structure": address space IDs. */
#define ACPI_GAS_MEMORY 0u
#define ACPI_GAS_IO	1u

static u32 rd32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

int acpi_spcr_read(u64 table, struct acpi_spcr *out, char *err, size_t err_size)
{
	const u8 *t = (const u8 *)(uintptr_t)table;
	u32 len = rd32(t + SPCR_OFF_LENGTH);
	u8 rev = t[SPCR_OFF_REVISION];
	/* Table 1, "Configured Baud Rate": 0 means as the firmware left it. */
	static const u32 baud_codes[8] = {0, 0, 0, 9600, 19200, 0, 57600, 115200};
	u8 code = t[SPCR_OFF_BAUD];

	if (len < SPCR_MIN_LEN) {
		hv_snprintf(err, err_size, "SPCR is %u bytes, shorter than %u", len, SPCR_MIN_LEN);
		return -1;
	}
	if (code >= ARRAY_SIZE(baud_codes) || (code && !baud_codes[code])) {
		hv_snprintf(err, err_size, "SPCR gives baud rate code %u, which it does not define",
			    code);
		return -1;
	}
	*out = (struct acpi_spcr){
	    .interface_type = t[SPCR_OFF_INTERFACE],
	    .space = t[SPCR_OFF_GAS_SPACE],
	    .bit_width = t[SPCR_OFF_GAS_WIDTH],
	    .access_size = t[SPCR_OFF_GAS_ACCESS],
	    .address = rd32(t + SPCR_OFF_GAS_ADDR) | (u64)rd32(t + SPCR_OFF_GAS_ADDR + 4) << 32,
	    .baud = baud_codes[code],
	};
	if (rev >= 3 && len >= SPCR_OFF_CLOCK + 4)
		out->clock_hz = rd32(t + SPCR_OFF_CLOCK);
	/* Revision 4: a nonzero precise rate overrides the code. */
	if (rev >= 4 && len >= SPCR_OFF_PRECISE_BAUD + 4 && rd32(t + SPCR_OFF_PRECISE_BAUD))
		out->baud = rd32(t + SPCR_OFF_PRECISE_BAUD);
	return 0;
}

int mgmt_uart_from_spcr(const struct acpi_spcr *t, struct uart16550 *u, char *err, size_t err_size)
{
	unsigned int bytes;

	*u = (struct uart16550){.base = t->address, .reg_width = 1};
	if (t->interface_type != SPCR_IF_16550 && t->interface_type != SPCR_IF_16450 &&
	    t->interface_type != SPCR_IF_16550_GAS) {
		hv_snprintf(err, err_size,
			    "SPCR names interface type 0x%x, not a 16550 (0x00, 0x01 or 0x12)",
			    t->interface_type);
		return -1;
	}
	if (!t->address) {
		hv_snprintf(err, err_size, "SPCR gives no base address");
		return -1;
	}
	if (t->space == ACPI_GAS_IO) {
		if (t->address + UART_NR_PORTS > 0x10000) {
			hv_snprintf(err, err_size, "SPCR gives I/O port 0x%lx", t->address);
			return -1;
		}
		u->space = UART_SPACE_IO;
		return 0;
	}
	if (t->space != ACPI_GAS_MEMORY) {
		hv_snprintf(err, err_size,
			    "SPCR gives address space %u, neither memory (0) nor I/O (1)",
			    t->space);
		return -1;
	}
	/*
	 * As Linux reads it (drivers/acpi/spcr.c): the access size says how the
	 * registers are reached (1 byte, 2 word, 3 dword), and they are that
	 * wide apart; without one, the register bit width says it.
	 */
	bytes = t->access_size ? 1u << (t->access_size - 1) : t->bit_width / 8;
	if (bytes != 1 && bytes != 2 && bytes != 4) {
		hv_snprintf(err, err_size,
			    "SPCR gives a register width of %u bits (access size %u): not 8, "
			    "16 or 32",
			    t->bit_width, t->access_size);
		return -1;
	}
	u->space = UART_SPACE_MMIO;
	u->reg_width = (u8)bytes;
	u->reg_shift = (u8)(bytes == 4 ? 2 : bytes == 2 ? 1 : 0);
	if (u->base & (bytes - 1)) {
		hv_snprintf(err, err_size, "SPCR's address 0x%lx is not aligned to %u bytes",
			    u->base, bytes);
		return -1;
	}
	return 0;
}

void mgmt_uart_describe(const struct uart16550 *u, char *buf, size_t size)
{
	if (u->space == UART_SPACE_IO)
		hv_snprintf(buf, size, "I/O 0x%lx", u->base);
	else
		hv_snprintf(buf, size, "MMIO 0x%lx (%u-bit registers, %u bytes apart)", u->base,
			    u->reg_width * 8, 1u << u->reg_shift);
}

/* ---- hv_init ---- */

#ifdef PT_FREESTANDING
static char mgmt_uart_name[96] = "none";

const char *hv_mgmt_uart_name(void)
{
	return mgmt_uart_name;
}

/*
 * PCI configuration mechanism #1 (PCI Local Bus Specification 3.0,
 * 3.2.2.3.2 "Software Generation of Configuration Transactions"): the
 * address at 0xCF8, the dword at 0xCFC. Segment 0, buses 0-255: where a
 * PC's and a server's serial cards sit.
 */
#define PCI_CONFIG_ADDRESS 0xcf8
#define PCI_CONFIG_DATA	   0xcfc
#define PCI_OFF_ID	   0x00u
#define PCI_OFF_COMMAND	   0x04u
#define PCI_OFF_BAR0	   0x10u
#define PCI_OFF_BAR1	   0x14u
#define PCI_COMMAND_IO	   BIT_ULL(0)
#define PCI_COMMAND_MEMORY BIT_ULL(1)

static u32 pci_cfg_addr(const struct mgmt_uart_spec *s, u32 off)
{
	return 0x80000000u | (u32)s->pci_bus << 16 | (u32)s->pci_dev << 11 | (u32)s->pci_fn << 8 |
	       (off & 0xfc);
}

static u32 pci_cfg_read(const struct mgmt_uart_spec *s, u32 off)
{
	x86_outl(PCI_CONFIG_ADDRESS, pci_cfg_addr(s, off));
	return x86_inl(PCI_CONFIG_DATA);
}

static void pci_cfg_write(const struct mgmt_uart_spec *s, u32 off, u32 v)
{
	x86_outl(PCI_CONFIG_ADDRESS, pci_cfg_addr(s, off));
	x86_outl(PCI_CONFIG_DATA, v);
}

static int mgmt_uart_pci(struct mgmt_uart_spec *s, char *err, size_t err_size)
{
	u32 id = pci_cfg_read(s, PCI_OFF_ID), cmd, want;

	if ((id & 0xffff) == 0xffff) {
		hv_snprintf(err, err_size, "no PCI function at %02x:%02x.%x", s->pci_bus,
			    s->pci_dev, s->pci_fn);
		return -1;
	}
	if (mgmt_uart_from_bar(pci_cfg_read(s, PCI_OFF_BAR0), pci_cfg_read(s, PCI_OFF_BAR1),
			       &s->uart, err, err_size))
		return -1;
	/* The firmware assigns every BAR but may leave decoding off if no driver bound. */
	cmd = pci_cfg_read(s, PCI_OFF_COMMAND) & 0xffff;
	want = s->uart.space == UART_SPACE_IO ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
	if (!(cmd & want)) {
		pci_cfg_write(s, PCI_OFF_COMMAND, cmd | want);
		hv_log("management port: PCI %02x:%02x.%x: %s decoding turned on", s->pci_bus,
		       s->pci_dev, s->pci_fn, want == PCI_COMMAND_IO ? "I/O" : "memory");
	}
	hv_snprintf(mgmt_uart_name, sizeof(mgmt_uart_name), "PCI %02x:%02x.%x, ", s->pci_bus,
		    s->pci_dev, s->pci_fn);
	return 0;
}

static int mgmt_uart_spcr(const struct hv_boot_info *bi, struct mgmt_uart_spec *s, char *err,
			  size_t err_size)
{
	u64 t = acpi_find_table(bi->acpi_rsdp, "SPCR");
	struct acpi_spcr spcr;

	if (!t) {
		hv_snprintf(err, err_size, "the firmware has no (valid) ACPI SPCR table");
		return -1;
	}
	if (acpi_spcr_read(t, &spcr, err, err_size) ||
	    mgmt_uart_from_spcr(&spcr, &s->uart, err, err_size))
		return -1;
	if (!s->baud_given)
		s->baud = spcr.baud;
	s->clock_hz = spcr.clock_hz;
	hv_snprintf(mgmt_uart_name, sizeof(mgmt_uart_name), "SPCR, ");
	return 0;
}

int hv_mgmt_uart_setup(const struct hv_boot_info *bi, struct uart16550 *u)
{
	struct mgmt_uart_spec s;
	char err[160], where[64];
	size_t n;

	if (mgmt_uart_parse(bi->mgmt_uart, &s, err, sizeof(err)) ||
	    (s.kind == MGMT_UART_PCI && mgmt_uart_pci(&s, err, sizeof(err))) ||
	    (s.kind == MGMT_UART_SPCR && mgmt_uart_spcr(bi, &s, err, sizeof(err)))) {
		hv_log("management port: %s", err);
		return -1;
	}
	if (s.kind == MGMT_UART_FIXED)
		mgmt_uart_name[0] = 0;
	for (n = 0; mgmt_uart_name[n]; n++)
		;
	mgmt_uart_describe(&s.uart, where, sizeof(where));
	if (s.kind == MGMT_UART_FIXED && s.uart.space == UART_SPACE_IO &&
	    s.uart.base == UART_COM2_BASE)
		hv_snprintf(mgmt_uart_name, sizeof(mgmt_uart_name), "COM2 (%s)", where);
	else
		hv_snprintf(mgmt_uart_name + n, sizeof(mgmt_uart_name) - n, "%s", where);
	*u = s.uart;
	if (uart_init(u, s.baud, s.clock_hz))
		hv_log("management port: %s, %u baud%s", mgmt_uart_name, s.baud,
		       s.baud ? "" : " (the firmware's rate)");
	else
		hv_log("management port: no UART answers at %s", mgmt_uart_name);
	return 0;
}
#endif /* PT_FREESTANDING */
