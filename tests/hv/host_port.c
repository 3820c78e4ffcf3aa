/* SPDX-License-Identifier: MIT */
/* The management port of a host machine, in memory: see host_port.h. */
#include "host_port.h"

#include "drivers/uart16550.h"
#include "hv/control.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

/* The boot CPU's stack: hv/'s exit path is written for the hypervisor's small stacks. */
#define HOST_PORT_STACK (256u << 10)
#define HOST_PORT_TX	(4u << 20)

struct host_port host_port;

static struct {
	ucontext_t host, cpu;
	void *stack;
	bool in_cpu; /* the boot CPU runs (between host_port_poll's switch and its yield) */
	/* The test's own stack, as AddressSanitizer learns it at the first switch. */
	const void *host_bottom;
	size_t host_size;
} co;

/*
 * AddressSanitizer is told of every switch of stacks (its fibre interface),
 * so that it checks each stack as its own and not as a smashed one.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HOST_PORT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HOST_PORT_ASAN 1
#endif
#endif

#ifdef HOST_PORT_ASAN
#include <sanitizer/common_interface_defs.h>

static void switch_begin(void **fake, const void *bottom, size_t size)
{
	__sanitizer_start_switch_fiber(fake, bottom, size);
}

static void switch_end(void *fake, const void **bottom, size_t *size)
{
	__sanitizer_finish_switch_fiber(fake, bottom, size);
}
#else
static void switch_begin(void **fake, const void *bottom, size_t size)
{
	(void)fake;
	(void)bottom;
	(void)size;
}

static void switch_end(void *fake, const void **bottom, size_t *size)
{
	(void)fake;
	(void)bottom;
	(void)size;
}
#endif

/* The boot CPU gives the turn back to the test. */
static void cpu_yield(void)
{
	void *fake = NULL;

	co.in_cpu = false;
	switch_begin(&fake, co.host_bottom, co.host_size);
	if (swapcontext(&co.cpu, &co.host))
		abort();
	switch_end(fake, NULL, NULL);
}

/* The boot CPU: an exit, then the test's turn; for ever (one machine after another). */
static void cpu_main(void)
{
	switch_end(NULL, &co.host_bottom, &co.host_size);
	for (;;) {
		host_machine_intr_exit(&host_port.m, 0);
		cpu_yield();
	}
}

/*
 * The boot CPU serves the port for ever once the guest is stopped: on its
 * own stack that is its paused loop. A guest killed from vCPU 1 (the test's
 * stack) would never give the test its turn back: a test that needs that
 * must make the boot CPU take the fatal exit.
 */
static void guest_stopped(void *ctx, u32 vcpu)
{
	(void)ctx;
	if (!co.in_cpu) {
		fprintf(stderr,
			"host_port: the guest was stopped by vCPU %u's exit, outside the "
			"boot CPU's turn\n",
			vcpu);
		abort();
	}
}

void host_port_init(const struct host_machine_config *cfg)
{
	struct host_port *p = &host_port;
	struct host_machine_config c = *cfg;
	u8 *tx = p->tx;

	/*
	 * The port's state (the machine is host_machine_init's); a boot CPU
	 * left inside the paused loop is abandoned with its stack: it starts over.
	 */
	memset((u8 *)p + offsetof(struct host_port, fifo), 0,
	       sizeof(*p) - offsetof(struct host_port, fifo));
	p->tx = tx ? tx : malloc(HOST_PORT_TX);
	p->tx_cap = HOST_PORT_TX;
	p->tx_room = HOST_PORT_FIFO;
	if (!co.stack)
		co.stack = malloc(HOST_PORT_STACK);
	if (!p->tx || !co.stack)
		abort();
	if (getcontext(&co.cpu))
		abort();
	co.cpu.uc_stack.ss_sp = co.stack;
	co.cpu.uc_stack.ss_size = HOST_PORT_STACK;
	co.cpu.uc_link = NULL;
	makecontext(&co.cpu, cpu_main, 0);
	co.in_cpu = false;
	c.on_guest_stop = guest_stopped;
	host_machine_init(&p->m, &c);
}

bool host_port_put(u8 b)
{
	struct host_port *p = &host_port;

	if (p->count == HOST_PORT_FIFO) {
		p->overflows++;
		return false;
	}
	p->fifo[(p->head + p->count++) % HOST_PORT_FIFO] = b;
	return true;
}

void host_port_poll(void)
{
	if (co.in_cpu)
		abort(); /* the boot CPU polls itself: never from inside hv/ */
	void *fake = NULL;

	host_port.turns++;
	co.in_cpu = true;
	switch_begin(&fake, co.stack, HOST_PORT_STACK);
	if (swapcontext(&co.host, &co.cpu))
		abort();
	switch_end(fake, NULL, NULL);
}

bool host_port_paused(void)
{
	return __atomic_load_n(&host_port.m.vcpus[0].paused, __ATOMIC_SEQ_CST) ||
	       __atomic_load_n(&host_port.m.vm.stopped, __ATOMIC_SEQ_CST);
}

int host_port_store(gpa_t gpa, u64 value)
{
	if (co.in_cpu)
		abort();
	if (host_port_paused())
		return -EBUSY;
	return host_machine_store(&host_port.m, 1, gpa, value);
}

struct mgmt *host_port_mgmt(void)
{
	return hv_control_mgmt();
}

/* ---- drivers/uart16550.h for hv/: the port's 16550 ---- */

int uart_getc_or_error(struct uart16550 *u)
{
	struct host_port *p = &host_port;
	u8 b;

	(void)u;
	if (p->line_error_next) {
		p->line_error_next = false;
		return -2;
	}
	if (!p->count) {
		/*
		 * The paused loop (hv/control.c) polls again at once: the turn
		 * ends here, and the read finds what the host sent meanwhile
		 * at the loop's next poll.
		 */
		if (co.in_cpu && host_port_paused())
			cpu_yield();
		return -1;
	}
	b = p->fifo[p->head];
	p->head = (p->head + 1) % HOST_PORT_FIFO;
	p->count--;
	return b;
}

int uart_getc_nowait(struct uart16550 *u)
{
	int c = uart_getc_or_error(u);

	return c < 0 ? -1 : c;
}

u32 uart_tx_room(struct uart16550 *u)
{
	(void)u;
	/* A stalled line in the paused loop: it spins on THRE (no read comes) until time passes. */
	if (!host_port.tx_room && co.in_cpu && host_port_paused())
		cpu_yield();
	host_port.tx_granted = host_port.tx_room;
	return host_port.tx_room;
}

static void tx_byte(u8 c)
{
	struct host_port *p = &host_port;

	if (p->tx_len == p->tx_cap)
		p->tx_len = 0;
	p->tx[p->tx_len++] = c;
}

void uart_putc_nowait(struct uart16550 *u, u8 c)
{
	(void)u;
	if (!host_port.tx_granted) {
		fprintf(stderr, "host_port: the hypervisor wrote past the transmitter's room\n");
		abort();
	}
	host_port.tx_granted--;
	tx_byte(c);
}

/* The fatal reports' blocking writes (hv_report_fatal): they wait for no room. */
bool uart_putc(struct uart16550 *u, u8 c)
{
	(void)u;
	tx_byte(c);
	return true;
}

void uart_puts(struct uart16550 *u, const char *s)
{
	while (*s)
		uart_putc(u, (u8)*s++);
}
