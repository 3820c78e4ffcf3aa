/* SPDX-License-Identifier: MIT */
/*
 * Polled 16550 UART: the hypervisor's management port. COM2 (I/O 0x2F8) by
 * default; any 16550 at an I/O port or memory-mapped (register stride and
 * access width as the board wires it: hv/mgmt_uart.h chooses).
 * No interrupts: the hypervisor polls it from its exit loop. Every wait is
 * bounded, so a missing or wedged UART slows the hypervisor, never hangs it.
 */
#ifndef PT_DRIVERS_UART16550_H
#define PT_DRIVERS_UART16550_H

#include <pt/types.h>

#define UART_COM1_BASE 0x3f8
#define UART_COM2_BASE 0x2f8
#define UART_COM3_BASE 0x3e8
#define UART_COM4_BASE 0x2e8
#define UART_NR_PORTS  8
/* The 16550's transmit and receive FIFOs (NS16550A data sheet, "FIFO Control Register"). */
#define UART_FIFO_BYTES 16u
/* A character on the line as uart_init sets it (8N1): start bit, 8 data bits, stop bit. */
#define UART_BITS_PER_CHAR 10u
/* The clock of a PC's 16550 (1.8432 MHz): divisor = clock / (16 * baud). */
#define UART_CLOCK_PC 1843200u

/* Register offsets (NS16550A data sheet, "Register Summary"). */
enum uart_reg {
	UART_RBR_THR = 0, /* DLL when LCR.DLAB */
	UART_IER = 1,	  /* DLM when LCR.DLAB */
	UART_IIR_FCR = 2,
	UART_LCR = 3,
	UART_MCR = 4,
	UART_LSR = 5,
	UART_MSR = 6,
	UART_SCR = 7,
};

#define UART_LCR_8N1	      0x03
#define UART_LCR_DLAB	      0x80
#define UART_MCR_DTR_RTS_OUT2 0x0b
/*
 * FIFOs on, both cleared, receive trigger level 14 (bits 7:6 = 11). Polled,
 * so the trigger raises no interrupt; but QEMU's 16550 accepts from its
 * chardev only up to the trigger level per main-loop turn, and level 1 holds
 * host-to-hypervisor traffic to ~80 bytes/s under TCG.
 */
#define UART_FCR_ENABLE_CLEAR_TRIG14 0xc7
#define UART_LSR_DR		     0x01
#define UART_LSR_ERRORS		     0x1e /* overrun, parity, framing, break */
#define UART_LSR_THRE		     0x20
#define UART_LSR_TEMT		     0x40
#define UART_IIR_NO_INT		     0x01
#define UART_MSR_CTS_DSR_DCD	     0xb0

enum uart_space {
	UART_SPACE_IO,	 /* port I/O: register r at port base + r */
	UART_SPACE_MMIO, /* memory: register r at physical base + (r << reg_shift) */
};

struct uart16550 {
	u64 base;     /* I/O port, or physical address (identity-mapped) */
	u8 space;     /* enum uart_space */
	u8 reg_shift; /* MMIO register stride is 1 << reg_shift bytes (0, 1 or 2); I/O: 0 */
	u8 reg_width; /* MMIO access width in bytes (1, 2 or 4); I/O: 1 */
	bool present; /* scratch register answered at init */
	/*
	 * The line's rate as uart_init left it: clock / (16 * divisor), from
	 * the divisor it wrote or, when it kept the firmware's, the one it
	 * read back. 0 if unknown (absent, or a divisor of 0).
	 */
	u32 baud;
};

/* Bytes of address space the eight registers take (I/O ports or MMIO). */
static inline u64 uart_span(const struct uart16550 *u)
{
	return (u64)UART_NR_PORTS << u->reg_shift;
}

/*
 * u->base, space, reg_shift and reg_width set by the caller: checks that a
 * UART answers (scratch register), programs 8N1 at `baud` from `clock_hz`
 * (0: UART_CLOCK_PC), FIFOs on, interrupts off. baud 0 keeps the divisor
 * the firmware set (read back into u->baud). Returns false if absent.
 */
bool uart_init(struct uart16550 *u, u32 baud, u32 clock_hz);
/* Writes one byte, waiting a bounded time for room. False if it timed out. */
bool uart_putc(struct uart16550 *u, u8 c);
void uart_puts(struct uart16550 *u, const char *s);
/* Next received byte, or -1 if none is waiting. Never waits. */
int uart_getc_nowait(struct uart16550 *u);
/*
 * Like uart_getc_nowait, but reports a line error first: returns -2 once
 * when the line status showed overrun, parity, framing or break (reading
 * LSR clears them: a byte was lost), -1 when nothing waits.
 */
int uart_getc_or_error(struct uart16550 *u);
/* Bytes that may be written now without waiting: the FIFO when THR is empty, else 0. */
u32 uart_tx_room(struct uart16550 *u);
/* Writes a byte without waiting; the caller checked uart_tx_room. */
void uart_putc_nowait(struct uart16550 *u, u8 c);

#endif /* PT_DRIVERS_UART16550_H */
