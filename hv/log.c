/* SPDX-License-Identifier: MIT */
#include "hv/log.h"

#include "arch/x86/cpu.h"
#include "drivers/uart16550.h"
#include "hv/hv.h"
#include "hv/vcpu.h"

#include <pt/assert.h>
#include <pt/lock.h>

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

/*
 * Every CPU logs: a line is written whole under log_lock (a leaf lock), so
 * lines from two CPUs never interleave in the log or the ring, and the
 * ring is read under it. The fatal paths write without it: a CPU that dies
 * holding it must not keep the report from going out.
 */
static pt_spinlock_t log_lock = PT_SPINLOCK_INIT;

#ifdef PT_FREESTANDING
static void debugcon_putc(char c)
{
	x86_outb(HV_DEBUGCON_PORT, (u8)c);
}
#else
/* Host tests: the simulated machine has the debug console (tests/hv/host_machine.c). */
void hv_host_debugcon_putc(char c);
#define debugcon_putc hv_host_debugcon_putc
#include <stdio.h>
#include <stdlib.h>
#endif

static void debugcon_puts(const char *s)
{
	while (*s) {
		ring.buf[ring.end++ % HV_LOG_RING_SIZE] = *s;
		debugcon_putc(*s++);
	}
}

u32 hv_log_ring_read(u64 off, u8 *buf, u32 len, u64 *first, u64 *end)
{
	u64 lo;
	u32 n = 0;

	pt_spin_lock(&log_lock);
	lo = ring.end > HV_LOG_RING_SIZE ? ring.end - HV_LOG_RING_SIZE : 0;
	*first = lo;
	*end = ring.end;
	if (off < lo)
		off = lo;
	while (n < len && off + n < ring.end) {
		buf[n] = (u8)ring.buf[(off + n) % HV_LOG_RING_SIZE];
		n++;
	}
	pt_spin_unlock(&log_lock);
	return n;
}

void hv_vlog(const char *fmt, va_list ap)
{
	char line[256];

	hv_vsnprintf(line, sizeof(line), fmt, ap);
	pt_spin_lock(&log_lock);
	debugcon_puts("pagetrail: ");
	debugcon_puts(line);
	debugcon_puts("\n");
	pt_spin_unlock(&log_lock);
}

void hv_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	hv_vlog(fmt, ap);
	va_end(ap);
}

/*
 * One clear line on the log and, if to_uart, the management UART: only the
 * CPU that owns the port writes to it (the boot CPU, or any CPU when the
 * machine is about to stop), so two CPUs never drive the UART at once.
 */
static void hv_report_fatal(bool to_uart, const char *fmt, va_list ap)
{
	char line[256];

	hv_vsnprintf(line, sizeof(line), fmt, ap);
	debugcon_puts("pagetrail: ");
	debugcon_puts(line);
	debugcon_puts("\n");
	if (!to_uart)
		return;
	/*
	 * The protocol owns the port; a person at a terminal gets one plain
	 * line anyway. The NUL after it is the protocol's frame delimiter: a
	 * host tool counts the line as one bad frame and resynchronizes on the
	 * next real one.
	 */
	uart_puts(&hv.mgmt_uart, "pagetrail: ");
	uart_puts(&hv.mgmt_uart, line);
	uart_puts(&hv.mgmt_uart, "\r\n");
	uart_putc(&hv.mgmt_uart, 0);
}

void hv_panic(const char *fmt, ...)
{
	va_list ap;

	debugcon_puts("pagetrail: PANIC (hypervisor state corrupt)\n");
	va_start(ap, fmt);
	hv_report_fatal(true, fmt, ap);
	va_end(ap);
	hv_machine_stop(3);
}

void hv_guest_fatal(struct vcpu *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	/* Another vCPU's line is in the log ring: INFO says stopped, LOG shows it. */
	hv_report_fatal(v->id == 0, fmt, ap);
	va_end(ap);
	hv_guest_stop(v);
}

void pt_assert_failed(const char *expr, const char *file, int line)
{
	hv_panic("assertion failed: %s at %s:%d", expr, file, line);
}

/*
 * Only on an emulator (HV_BOOT_EMULATOR_EXIT: detected by boot/, or asked
 * for): QEMU's isa-debug-exit (iobase 0xf4) exits with status (v << 1) | 1.
 * Without it, ACPI S5 on q35's PM block (ICH9 PMBASE 0x600, PM1a_CNT at
 * +4: SLP_TYP 0 on QEMU, SLP_EN bit 13), then the PIIX4 one (0xb004, Bochs;
 * 0x604 is also what QEMU's i440fx uses for S5 with SLP_TYP 0). On a real
 * machine those ports belong to other chips: nothing is written, the CPU
 * halts with the report already out on both ports.
 */
void hv_machine_stop(int code)
{
#ifndef PT_FREESTANDING
	/* Host tests: the machine stopping ends the test loudly. */
	fprintf(stderr, "pagetrail: machine stop (code %d)\n", code);
	abort();
#endif
	if (hv.bi && (hv.bi->flags & HV_BOOT_EMULATOR_EXIT)) {
		x86_outb(0xf4, (u8)code);
		x86_outw(0x604, 0x2000);
		x86_outw(0xb004, 0x2000);
		debugcon_puts("pagetrail: machine did not stop; halting\n");
	} else {
		debugcon_puts("pagetrail: halting (not an emulator: no exit port written)\n");
	}
	x86_halt_forever();
}
