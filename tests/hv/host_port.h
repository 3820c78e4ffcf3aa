/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor's management port driven from a test, in memory: a host
 * machine (tests/hv/host_machine.h: hv/control.c, hv/mgmt.c, the sessions,
 * hv/exit.c, hv/vm.c and the real mmu/ on the hardware model) whose
 * management UART is a 16550 in this process, for the protocol's unit tests,
 * its benchmark and its fuzzer: the product's own path from a byte on the
 * line to the mmu and back.
 *
 * The boot CPU runs as a coroutine (its own stack, swapcontext): each
 * host_port_poll() gives it one turn, which is one exit of vCPU 0 (an
 * interrupt exit: hv/exit.c polls the port) or, while the guest is paused
 * from the port (hv/control.c loops there until RESUME, as the boot CPU
 * does), one turn of that loop, ending where it finds the receive FIFO
 * empty. The test side is the host at the other end of the line, and the
 * guest on vCPU 1 (host_port_store), which runs on the test's own stack as
 * another CPU would, only while the guest is not paused.
 *
 * The port defines drivers/uart16550.h's functions for hv/ (as ptsim does for
 * its socket); one port per process, as one machine: hv/ keeps its state in
 * globals. host_port_init() may be called again to start over (a fuzzer's
 * next input): the machine is built again in the same host memory.
 */
#ifndef PT_TESTS_HV_HOST_PORT_H
#define PT_TESTS_HV_HOST_PORT_H

#include "hv/mgmt.h"
#include "tests/hv/host_machine.h"

#define HOST_PORT_FIFO 16

struct host_port {
	struct host_machine m;
	/* Host to hypervisor: the 16550's receive FIFO (a byte that does not fit is lost). */
	u8 fifo[HOST_PORT_FIFO];
	u32 head, count;
	bool line_error_next; /* the next read reports a line error (overrun, framing) */
	u64 overflows;	      /* bytes the host put into a full FIFO */
	/* Hypervisor to host: every byte sent, in order (tx_len wraps to 0 at tx_cap). */
	u8 *tx;
	u32 tx_len, tx_cap;
	/*
	 * What the transmitter takes now: HOST_PORT_FIFO (its FIFO empty, THRE)
	 * or 0 (a stalled line). Writing more than the last uart_tx_room()
	 * allowed is the hypervisor's bug: it aborts the test.
	 */
	u32 tx_room;
	u32 tx_granted;
	u64 turns; /* host_port_poll() calls */
};

extern struct host_port host_port;

/* Builds the machine (aborts on failure); the port starts idle, tx_room 16. */
void host_port_init(const struct host_machine_config *cfg);
/* One byte from the host onto the line: false (and lost) when the FIFO is full. */
bool host_port_put(u8 b);
/* One turn of the boot CPU (see above). */
void host_port_poll(void);
/*
 * A guest store of 8 bytes on vCPU 1 through the hardware model:
 * host_machine_store()'s result, or -EBUSY (nothing done) while the guest is
 * paused or stopped: its vCPUs are out of the guest.
 */
int host_port_store(gpa_t gpa, u64 value);
/* The dispatcher hv/control.c runs (its counters, its sessions: ds, cow). */
struct mgmt *host_port_mgmt(void);
/* True while the guest is paused from the port (or stopped). */
bool host_port_paused(void);

#endif /* PT_TESTS_HV_HOST_PORT_H */
