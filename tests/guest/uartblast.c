/*
 * uartblast.efi: the most bytes per second ANY x86 code gets through an emulated 16550,
 * the ceiling against which the hypervisor's management port is measured
 * (tests/snapshot/bench_line.py). ptboot.efi starts it without the hypervisor
 * (`\EFI\tests\uartblast.efi SECONDS MODE`): it disables interrupts (so that the
 * firmware's terminal driver, which also polls COM2, takes no byte), waits for a byte
 * from the host on COM2 (the host has connected: a QEMU socket chardev drops what it
 * writes before), then writes COM2's transmit register for SECONDS (TSC against the
 * firmware's Stall) as fast as the UART takes bytes, then reports on COM1:
 *   "uartblast: MODE N bytes in MS ms"
 * and exits QEMU through isa-debug-exit. MODE:
 *   byte  LSR read before every byte (THRE), then the byte: a driver that trusts nothing
 *   fifo  LSR read once per 16 bytes (THRE: the 16-byte FIFO is empty), as hv/mgmt.c's
 *         transmitter does
 * The host (bench_line.py) counts what arrives and times it: its figure is the one used.
 */
#include <efi.h>
#include <efilib.h>

#include "tests/guest/efi_tsc.h"

#define COM1	     0x3f8
#define COM2	     0x2f8
#define UART_THR     0
#define UART_FCR     2
#define UART_LSR     5
#define LSR_DR	     0x01
#define LSR_THRE     0x20
#define DEBUG_EXIT   0xf4
#define CALIB_US     200000
#define WAIT_HOST_S  120
#define MAX_SECONDS  600
#define DEFAULT_SECS 10

static UINT8 inb(UINT16 port)
{
	UINT8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void outb(UINT16 port, UINT8 v)
{
	__asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port));
}

/* COM1 directly: ConOut would also write to COM2, the port being measured. */
static void com1_puts(const char *s)
{
	for (; *s; s++) {
		while (!(inb(COM1 + UART_LSR) & LSR_THRE))
			;
		outb(COM1 + UART_THR, (UINT8)*s);
	}
}

static char *fmt_u64(char *p, UINT64 v)
{
	char tmp[24];
	int n = 0;

	do
		tmp[n++] = (char)('0' + v % 10);
	while (v /= 10);
	while (n)
		*p++ = tmp[--n];
	return p;
}

static char *fmt_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

/* The load options' words after argv[0]: SECONDS (a number) and MODE ("fifo"). */
static void parse_args(EFI_HANDLE image, UINTN *seconds, BOOLEAN *fifo)
{
	EFI_LOADED_IMAGE *li = NULL;
	const CHAR16 *o;
	UINTN n, i = 0, v = 0;

	*seconds = DEFAULT_SECS;
	*fifo = FALSE;
	if (EFI_ERROR(uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol,
					(void **)&li)) ||
	    !li || !li->LoadOptions)
		return;
	o = li->LoadOptions;
	n = li->LoadOptionsSize / sizeof(CHAR16);
	while (i < n && o[i] && o[i] != L' ')
		i++;
	for (;;) {
		UINTN w;

		while (i < n && o[i] == L' ')
			i++;
		if (i >= n || !o[i])
			break;
		w = i;
		while (i < n && o[i] && o[i] != L' ')
			i++;
		if (o[w] >= L'0' && o[w] <= L'9') {
			for (v = 0; w < i && o[w] >= L'0' && o[w] <= L'9'; w++)
				v = v * 10 + (UINTN)(o[w] - L'0');
			if (v && v <= MAX_SECONDS)
				*seconds = v;
		} else if (i - w == 4 && o[w] == L'f' && o[w + 1] == L'i' && o[w + 2] == L'f' &&
			   o[w + 3] == L'o') {
			*fifo = TRUE;
		}
	}
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	UINT64 t0, per_ms, end, sent = 0, ms;
	UINTN seconds;
	BOOLEAN fifo;
	UINT8 c = 0x20;
	char line[96], *p = line;

	InitializeLib(image, systab);
	parse_args(image, &seconds, &fifo);
	t0 = efi_rdtsc();
	uefi_call_wrapper(BS->Stall, 1, CALIB_US);
	per_ms = (efi_rdtsc() - t0) / (CALIB_US / 1000);
	__asm__ volatile("cli" ::: "memory");
	/* FIFOs on and cleared (as the hypervisor's uart_init leaves them). */
	outb(COM2 + UART_FCR, 0x07);
	com1_puts("uartblast: waiting for the host on COM2\r\n");
	end = efi_rdtsc() + (UINT64)WAIT_HOST_S * 1000 * per_ms;
	while (!(inb(COM2 + UART_LSR) & LSR_DR))
		if (efi_rdtsc() > end) {
			com1_puts("uartblast: no byte from the host\r\n");
			outb(DEBUG_EXIT, 1);
			return EFI_TIMEOUT;
		}
	inb(COM2 + UART_THR);
	t0 = efi_rdtsc();
	end = t0 + (UINT64)seconds * 1000 * per_ms;
	while (efi_rdtsc() < end) {
		if (fifo) {
			while (!(inb(COM2 + UART_LSR) & LSR_THRE))
				;
			for (int k = 0; k < 16; k++)
				outb(COM2 + UART_THR, c++ | 0x20);
			sent += 16;
		} else {
			while (!(inb(COM2 + UART_LSR) & LSR_THRE))
				;
			outb(COM2 + UART_THR, c++ | 0x20);
			sent++;
		}
	}
	ms = (efi_rdtsc() - t0) / per_ms;
	p = fmt_str(p, "uartblast: ");
	p = fmt_str(p, fifo ? "fifo " : "byte ");
	p = fmt_u64(p, sent);
	p = fmt_str(p, " bytes in ");
	p = fmt_u64(p, ms);
	p = fmt_str(p, " ms\r\n");
	*p = 0;
	com1_puts(line);
	outb(DEBUG_EXIT, 0);
	return EFI_SUCCESS;
}
