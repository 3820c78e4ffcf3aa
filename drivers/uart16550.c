/* SPDX-License-Identifier: MIT */
#include "drivers/uart16550.h"

#include "arch/x86/cpu.h"

/* A byte at 9600 baud takes ~1 ms; this bounds a wait at well over that. */
#define UART_TX_SPINS 200000u

/*
 * One register access. MMIO: a single load or store of the board's width
 * (a 32-bit-wide UART, e.g. a DesignWare 8250, may ignore byte accesses);
 * the register is its low byte, the rest written as 0. Host tests point
 * base at a fake register file in memory (tests/hv/hv_unit_test.c).
 */
static u8 uart_in(struct uart16550 *u, enum uart_reg r)
{
	uintptr_t a;

	if (u->space == UART_SPACE_IO)
		return x86_inb((u16)(u->base + r));
	a = (uintptr_t)(u->base + ((u64)r << u->reg_shift));
	if (u->reg_width == 4)
		return (u8) * (volatile u32 *)a;
	if (u->reg_width == 2)
		return (u8) * (volatile u16 *)a;
	return *(volatile u8 *)a;
}

static void uart_out(struct uart16550 *u, enum uart_reg r, u8 v)
{
	uintptr_t a;

	if (u->space == UART_SPACE_IO) {
		x86_outb((u16)(u->base + r), v);
		return;
	}
	a = (uintptr_t)(u->base + ((u64)r << u->reg_shift));
	if (u->reg_width == 4)
		*(volatile u32 *)a = v;
	else if (u->reg_width == 2)
		*(volatile u16 *)a = v;
	else
		*(volatile u8 *)a = v;
}

bool uart_init(struct uart16550 *u, u32 baud, u32 clock_hz)
{
	u32 clock = clock_hz ? clock_hz : UART_CLOCK_PC;
	u32 div = baud ? clock / (16 * baud) : 0;

	u->baud = 0;
	uart_out(u, UART_SCR, 0x5a);
	u->present = uart_in(u, UART_SCR) == 0x5a;
	if (!u->present)
		return false;
	uart_out(u, UART_IER, 0);
	uart_out(u, UART_LCR, UART_LCR_DLAB);
	if (div) {
		uart_out(u, UART_RBR_THR, (u8)div);
		uart_out(u, UART_IER, (u8)(div >> 8));
	} else {
		/* The firmware's divisor, for the line's rate (u->baud). */
		div = uart_in(u, UART_RBR_THR) | (u32)uart_in(u, UART_IER) << 8;
	}
	u->baud = div ? clock / (16 * div) : 0;
	uart_out(u, UART_LCR, UART_LCR_8N1);
	uart_out(u, UART_IIR_FCR, UART_FCR_ENABLE_CLEAR_TRIG14);
	uart_out(u, UART_MCR, UART_MCR_DTR_RTS_OUT2);
	return true;
}

bool uart_putc(struct uart16550 *u, u8 c)
{
	u32 spins;

	if (!u->present)
		return false;
	for (spins = 0; !(uart_in(u, UART_LSR) & UART_LSR_THRE); spins++) {
		if (spins >= UART_TX_SPINS)
			return false;
		x86_pause();
	}
	uart_out(u, UART_RBR_THR, c);
	return true;
}

void uart_puts(struct uart16550 *u, const char *s)
{
	while (*s)
		if (!uart_putc(u, (u8)*s++))
			return;
}

int uart_getc_nowait(struct uart16550 *u)
{
	if (!u->present || !(uart_in(u, UART_LSR) & UART_LSR_DR))
		return -1;
	return uart_in(u, UART_RBR_THR);
}

int uart_getc_or_error(struct uart16550 *u)
{
	u8 lsr;

	if (!u->present)
		return -1;
	lsr = uart_in(u, UART_LSR);
	if (lsr & UART_LSR_ERRORS)
		return -2;
	if (!(lsr & UART_LSR_DR))
		return -1;
	return uart_in(u, UART_RBR_THR);
}

u32 uart_tx_room(struct uart16550 *u)
{
	/* uart_init enabled the FIFOs (FCR bit 0). */
	return u->present && (uart_in(u, UART_LSR) & UART_LSR_THRE) ? UART_FIFO_BYTES : 0;
}

void uart_putc_nowait(struct uart16550 *u, u8 c)
{
	uart_out(u, UART_RBR_THR, c);
}
