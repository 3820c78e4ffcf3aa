/* SPDX-License-Identifier: MIT */
#include "hv/log.h"

#include "arch/x86/cpu.h"
#include "drivers/uart16550.h"
#include "hv/hv.h"

#include <pt/assert.h>

struct fmt_out {
	char *buf;
	size_t size;
	size_t len;
};

static void fmt_putc(struct fmt_out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void fmt_number(struct fmt_out *o, u64 v, unsigned int base, bool neg,
		       int width, char pad)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg)
		tmp[n++] = '-';
	while (width-- > n)
		fmt_putc(o, pad);
	while (n)
		fmt_putc(o, tmp[--n]);
}

int hv_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct fmt_out o = { buf, size, 0 };

	for (; *fmt; fmt++) {
		char pad = ' ';
		int width = 0, lng = 0;

		if (*fmt != '%') {
			fmt_putc(&o, *fmt);
			continue;
		}
		fmt++;
		if (*fmt == '0') {
			pad = '0';
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l') {
			lng++;
			fmt++;
		}
		if (*fmt == 'z') {
			lng = 2;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			int len = 0;

			if (!s)
				s = "(null)";
			while (s[len])
				len++;
			while (width-- > len)
				fmt_putc(&o, ' ');
			while (*s)
				fmt_putc(&o, *s++);
			break;
		}
		case 'c':
			fmt_putc(&o, (char)va_arg(ap, int));
			break;
		case 'd': {
			s64 v = lng ? va_arg(ap, s64) : va_arg(ap, int);

			fmt_number(&o, v < 0 ? -(u64)v : (u64)v, 10, v < 0,
				   width, pad);
			break;
		}
		case 'u':
		case 'x': {
			u64 v = lng ? va_arg(ap, u64) : va_arg(ap, unsigned int);

			fmt_number(&o, v, *fmt == 'u' ? 10 : 16, false, width,
				   pad);
			break;
		}
		case 'p':
			fmt_putc(&o, '0');
			fmt_putc(&o, 'x');
			fmt_number(&o, (u64)(uintptr_t)va_arg(ap, void *), 16,
				   false, 0, ' ');
			break;
		case '%':
			fmt_putc(&o, '%');
			break;
		case '\0':
			fmt--;
			break;
		default:
			fmt_putc(&o, '?');
			break;
		}
	}
	if (size)
		buf[o.len < size ? o.len : size - 1] = '\0';
	return (int)o.len;
}

int hv_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = hv_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

/*
 * The log ring: every byte written to the log, for the management port's
 * LOG command. Offsets are absolute (bytes ever written); the ring keeps
 * the last HV_LOG_RING_SIZE.
 */
#define HV_LOG_RING_SIZE 16384u
static struct {
	char buf[HV_LOG_RING_SIZE];
	u64 end;
} ring;

static void debugcon_puts(const char *s)
{
	while (*s) {
		ring.buf[ring.end++ % HV_LOG_RING_SIZE] = *s;
		x86_outb(HV_DEBUGCON_PORT, (u8)*s++);
	}
}

u32 hv_log_ring_read(u64 off, u8 *buf, u32 len, u64 *first, u64 *end)
{
	u64 lo = ring.end > HV_LOG_RING_SIZE ? ring.end - HV_LOG_RING_SIZE : 0;
	u32 n = 0;

	*first = lo;
	*end = ring.end;
	if (off < lo)
		off = lo;
	while (n < len && off + n < ring.end) {
		buf[n] = (u8)ring.buf[(off + n) % HV_LOG_RING_SIZE];
		n++;
	}
	return n;
}

void hv_vlog(const char *fmt, va_list ap)
{
	char line[256];

	hv_vsnprintf(line, sizeof(line), fmt, ap);
	debugcon_puts("pagetrail: ");
	debugcon_puts(line);
	debugcon_puts("\n");
}

void hv_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hv_vlog(fmt, ap);
	va_end(ap);
}

/* One clear line on both the log and the management UART. */
static void hv_report_fatal(const char *fmt, va_list ap)
{
	char line[256];

	hv_vsnprintf(line, sizeof(line), fmt, ap);
	debugcon_puts("pagetrail: ");
	debugcon_puts(line);
	debugcon_puts("\n");
	/* The protocol owns COM2; a dying hypervisor writes one plain line anyway. */
	uart_puts(&hv.mgmt_uart, "pagetrail: ");
	uart_puts(&hv.mgmt_uart, line);
	uart_puts(&hv.mgmt_uart, "\r\n");
}

void hv_panic(const char *fmt, ...)
{
	va_list ap;

	debugcon_puts("pagetrail: PANIC (hypervisor state corrupt)\n");
	va_start(ap, fmt);
	hv_report_fatal(fmt, ap);
	va_end(ap);
	hv_machine_stop(3);
}

void hv_guest_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hv_report_fatal(fmt, ap);
	va_end(ap);
	hv_log("stopping the machine");
	hv_machine_stop(2);
}

void pt_assert_failed(const char *expr, const char *file, int line)
{
	hv_panic("assertion failed: %s at %s:%d", expr, file, line);
}

/*
 * QEMU's isa-debug-exit (iobase 0xf4) exits with status (v << 1) | 1.
 * Without it, try ACPI S5 on q35's PM block (ICH9 PMBASE 0x600, PM1a_CNT
 * at +4: SLP_TYP 0 on QEMU, SLP_EN bit 13), then the PIIX4 one (0x604 is
 * also what QEMU's i440fx uses for S5 with SLP_TYP 0), then halt.
 */
void hv_machine_stop(int code)
{
	x86_outb(0xf4, (u8)code);
	x86_outw(0x604, 0x2000);
	x86_outw(0xb004, 0x2000);
	debugcon_puts("pagetrail: machine did not stop; halting\n");
	x86_halt_forever();
}
