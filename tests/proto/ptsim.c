/* SPDX-License-Identifier: MIT */
/*
 * ptsim: the hypervisor without a CPU. Runs hv/'s own management side
 * (hv/control.c, hv/mgmt.c, the dirty-log and copy-on-write sessions), its
 * exit dispatch and fault path (hv/exit.c, hv/vm.c) and the real mmu/ on a
 * simulated machine (tests/hv/host_machine.h: the hardware model of
 * tests/model as the CPU), behind a unix socket, through an emulated 16550:
 * a 16-byte receive FIFO that DROPS bytes (and flags an overrun) when the host
 * sends more than the "hypervisor" has read, polled only every --poll-us (and
 * not at all during --stall-ms pauses every --stall-every polls), like a
 * hypervisor that reads the UART only on VM exits: each poll is an exit of
 * vCPU 0 (HV_EXIT_INTR) through hv_handle_exit, which polls the port, and
 * stays in hv/control.c's paused loop while the guest is paused.
 *
 * A fake guest on vCPU 1 writes pages while it is not paused: every store goes
 * through the hardware model's page walk, so what mmu/ set up (write
 * protection, clean D bits, PML) is what logs it, through the exits hv/ takes.
 * Every page it writes while its slot logs is recorded in an oracle bitmap
 * (every page written at all in another), dumped with the memory on every
 * pause (--dump-dir), so that tests can prove that no dirty page was lost on
 * the way to ptctl.
 *
 *   ptsim --socket PATH [--poll-us N] [--stall-every N --stall-ms N] [--baud N]
 *         [--ram-mib N] [--writes-per-poll N] [--corrupt-every N] [--dump-dir DIR]
 *         [--seed N] [--pml] [--step-pages N] [--pool-pages N]
 *
 * --pml: an Intel CPU (EPT with A/D, PML, backend "vmx"); else AMD nested
 * paging ("svm").
 *
 * --pool-pages: the hypervisor's pool keeps only N free pages after start
 * (it is dry: a dirty-log start gets the NOMEM error).
 *
 * --step-pages: pages of work per poll for dirty start/stop/harvest (the
 * hypervisor's --mgmt-step-pages): small values make them span many polls
 * with the fake guest writing in between.
 */
#define _GNU_SOURCE
#include "drivers/uart16550.h"
#include "hv/control.h"
#include "hv/dirty_session.h"
#include "hv/mgmt.h"
#include "hv/proto/proto.h"
#include "tests/hv/host_machine.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define FIFO_SIZE 16
/* The guest's vCPU: vCPU 0's exits are the ones that poll the management port. */
#define GUEST_VCPU 1

static struct {
	struct host_machine m;
	const char *path;
	int lfd, client;
	u8 fifo[FIFO_SIZE];
	u32 fifo_head, fifo_count;
	bool overrun;
	u64 dropped, rx_bytes;
	/* The hypervisor read the FIFO empty: its next read is its next poll. */
	bool rx_idle;
	/* Transmit side at --baud: the FIFO empties at baud/10 bytes a second. */
	double tx_level, tx_last;
	int baud;
	u8 tx_buf[8192];
	u32 tx_len;
	u32 corrupt_every, tx_frames;
	bool damaged;
	const char *dump_dir;
	u64 *oracle[HM_NR_SLOTS];
	/* Every page written at all, logged or not: a reported page must be in here. */
	u64 *written[HM_NR_SLOTS];
	u32 seed;
	long poll_us, stall_every, stall_ms;
	u64 polls;
	double next;
} sim;

static volatile sig_atomic_t stop;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static u32 rng(void)
{
	sim.seed ^= sim.seed << 13;
	sim.seed ^= sim.seed >> 17;
	sim.seed ^= sim.seed << 5;
	return sim.seed;
}

/* --- The line: the socket, one host at a time ------------------------------------ */

static void uart_receive(u8 b)
{
	if (sim.fifo_count == FIFO_SIZE) {
		/* A 16550 keeps the FIFO and loses the new byte (overrun, LSR.OE). */
		sim.overrun = true;
		sim.dropped++;
		return;
	}
	sim.fifo[(sim.fifo_head + sim.fifo_count++) % FIFO_SIZE] = b;
}

static void tx_flush(void)
{
	if (sim.tx_len && sim.client >= 0 && write(sim.client, sim.tx_buf, sim.tx_len) < 0) {
		close(sim.client);
		sim.client = -1;
	}
	sim.tx_len = 0;
}

/* Waits up to wait_s for the host; every byte it sent meets the FIFO at once. */
static void line_pump(double wait_s)
{
	struct pollfd pfd[2] = {{.fd = sim.lfd, .events = POLLIN},
				{.fd = sim.client, .events = POLLIN}};
	struct timespec ts = {.tv_sec = (time_t)wait_s,
			      .tv_nsec = (long)((wait_s - (double)(time_t)wait_s) * 1e9)};

	tx_flush();
	ppoll(pfd, sim.client >= 0 ? 2 : 1, &ts, NULL);
	if (pfd[0].revents & POLLIN) {
		int fd = accept4(sim.lfd, NULL, NULL, SOCK_CLOEXEC);

		/* One host at a time, like a serial line: a new one replaces the old. */
		if (fd >= 0) {
			if (sim.client >= 0)
				close(sim.client);
			sim.client = fd;
		}
	}
	if (sim.client >= 0 && (pfd[1].revents & (POLLIN | POLLHUP))) {
		u8 buf[4096];
		ssize_t n = read(sim.client, buf, sizeof(buf));

		if (n <= 0) {
			close(sim.client);
			sim.client = -1;
		}
		/* An infinitely fast line. */
		for (ssize_t k = 0; k < n; k++)
			uart_receive(buf[k]);
	}
}

static void finish(void)
{
	fprintf(stderr, "ptsim: %llu polls, %llu bytes dropped by the FIFO, %llu rx bytes\n",
		(unsigned long long)sim.polls, (unsigned long long)sim.dropped,
		(unsigned long long)sim.rx_bytes);
	unlink(sim.path);
	exit(0);
}

/*
 * Time passes until the hypervisor's next poll (--poll-us, --stall-*), the
 * line served meanwhile. Ends the process on SIGTERM: it may be waiting in
 * hv/'s paused loop, which never returns by itself.
 */
static void wait_poll_slot(void)
{
	for (;;) {
		double t = now_s();

		if (stop)
			finish();
		/* Sleeps until the slot (to the microsecond), or less when the host sends. */
		line_pump(t >= sim.next ? 0 : sim.next - t);
		if (now_s() >= sim.next)
			break;
	}
	sim.polls++;
	sim.next = now_s() + sim.poll_us * 1e-6;
	if (sim.stall_every && sim.polls % (u64)sim.stall_every == 0)
		sim.next += sim.stall_ms * 1e-3;
}

/* --- The emulated 16550 (drivers/uart16550.h, for hv/control.c and hv/log.c) ---- */

int uart_getc_or_error(struct uart16550 *u)
{
	u8 b;

	(void)u;
	/*
	 * While the guest is paused, hv/control.c polls in a loop: a read after
	 * one that found the FIFO empty is the next poll, which comes at the
	 * next poll slot (the loop spins on the UART; here time passes).
	 */
	if (sim.rx_idle && hv.vcpu->paused)
		wait_poll_slot();
	sim.rx_idle = false;
	if (sim.overrun) {
		sim.overrun = false;
		return -2;
	}
	if (!sim.fifo_count) {
		sim.rx_idle = true;
		return -1;
	}
	b = sim.fifo[sim.fifo_head];
	sim.fifo_head = (sim.fifo_head + 1) % FIFO_SIZE;
	sim.fifo_count--;
	sim.rx_bytes++;
	return b;
}

int uart_getc_nowait(struct uart16550 *u)
{
	int c = uart_getc_or_error(u);

	return c < 0 ? -1 : c;
}

static void tx_drain(void)
{
	double t = now_s();

	if (sim.baud) {
		sim.tx_level -= (t - sim.tx_last) * sim.baud / 10.0;
		if (sim.tx_level < 0)
			sim.tx_level = 0;
	}
	sim.tx_last = t;
}

u32 uart_tx_room(struct uart16550 *u)
{
	(void)u;
	tx_flush();
	tx_drain();
	/* THRE: room for a whole FIFO only once it is empty. */
	return sim.tx_level <= 0 ? FIFO_SIZE : 0;
}

void uart_putc_nowait(struct uart16550 *u, u8 c)
{
	(void)u;
	/* --corrupt-every N: damage one byte of every Nth frame (a noisy line). */
	if (c == 0) {
		sim.tx_frames++;
		sim.damaged = false;
	} else if (sim.corrupt_every && !sim.damaged &&
		   sim.tx_frames % sim.corrupt_every == sim.corrupt_every - 1) {
		c ^= c == 0x40 ? 0x20 : 0x40;
		sim.damaged = true;
	}
	if (sim.baud)
		sim.tx_level += 1;
	if (sim.tx_len == sizeof(sim.tx_buf))
		tx_flush();
	sim.tx_buf[sim.tx_len++] = c;
}

bool uart_putc(struct uart16550 *u, u8 c)
{
	uart_putc_nowait(u, c);
	return true;
}

void uart_puts(struct uart16550 *u, const char *s)
{
	while (*s)
		uart_putc_nowait(u, (u8)*s++);
}

/* --- The oracle and the dumps, taken while every vCPU is out of the guest ------- */

static void dump(const char *name, const void *p, size_t len)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", sim.dump_dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, len, f) != len) {
		fprintf(stderr, "ptsim: cannot write %s\n", path);
		exit(1);
	}
	fclose(f);
}

static void on_pause(void *ctx)
{
	(void)ctx;
	if (!sim.dump_dir)
		return;
	for (u32 i = 0; i < sim.m.vm.nr_slots; i++) {
		const struct hv_slot *s = &sim.m.vm.slots[i];
		char name[64];

		snprintf(name, sizeof(name), "oracle-%u.bin", i);
		dump(name, sim.oracle[i], (s->npages + 63) / 64 * 8);
		snprintf(name, sizeof(name), "written-%u.bin", i);
		dump(name, sim.written[i], (s->npages + 63) / 64 * 8);
		if (s->type == HV_MEM_RAM) {
			snprintf(name, sizeof(name), "mem-%u.bin", i);
			dump(name, host_machine_mem(&sim.m, gfn_to_gpa(s->base_gfn)),
			     s->npages * PAGE_SIZE);
		}
	}
}

/* --- The fake guest --------------------------------------------------------------- */

/* Guest memory as firmware leaves it: a mix of zero, repetitive and random pages. */
static void fill_memory(void)
{
	u32 st = sim.seed | 1;

	for (u32 i = 0; i < sim.m.vm.nr_slots; i++) {
		const struct hv_slot *s = &sim.m.vm.slots[i];

		if (s->type != HV_MEM_RAM)
			continue;
		for (u64 p = 0; p < s->npages; p++) {
			u8 *pg = host_machine_mem(&sim.m, gfn_to_gpa(s->base_gfn + p));
			u32 kind;

			st ^= st << 13, st ^= st >> 17, st ^= st << 5;
			kind = st % 4;
			if (kind == 0) { /* zero */
				memset(pg, 0, PAGE_SIZE);
			} else if (kind == 1) { /* random */
				for (u32 k = 0; k < PAGE_SIZE; k++) {
					st ^= st << 13, st ^= st >> 17, st ^= st << 5;
					pg[k] = (u8)st;
				}
			} else if (kind == 2) { /* text-like, repetitive */
				for (u32 k = 0; k < PAGE_SIZE; k++)
					pg[k] = (u8)("pagetrail dirty page "[k % 21] + (k / 512));
			} else { /* sparse words */
				memset(pg, 0, PAGE_SIZE);
				for (u32 k = 0; k < 16; k++) {
					st ^= st << 13, st ^= st >> 17, st ^= st << 5;
					pg[st % PAGE_SIZE] = (u8)(st >> 12);
				}
			}
		}
	}
}

/*
 * One store of the fake guest. A store whose page waits for the
 * copy-on-write budget is the vCPU stuck on its fault: it is tried again,
 * first thing, at the next poll, and nothing else is written meanwhile.
 */
static struct {
	bool on;
	u32 slot;
	u64 page, off, stamp;
} blocked;

static bool guest_store(u32 slot, u64 page, u64 off, u64 stamp)
{
	const struct hv_slot *s = &sim.m.vm.slots[slot];
	gpa_t gpa = gfn_to_gpa(s->base_gfn + page) + off;
	int rc = host_machine_store(&sim.m, GUEST_VCPU, gpa, stamp);

	if (rc == -EAGAIN) {
		blocked.on = true;
		blocked.slot = slot;
		blocked.page = page;
		blocked.off = off;
		blocked.stamp = stamp;
		return false;
	}
	if (rc) {
		fprintf(stderr, "ptsim: the guest's store at 0x%llx failed (%d)\n",
			(unsigned long long)gpa, rc);
		exit(1);
	}
	if (ds_slot_mode(hv_control_mgmt()->ds, slot) != PROTO_DIRTY_OFF)
		proto_set_bit(sim.oracle[slot], page);
	proto_set_bit(sim.written[slot], page);
	return true;
}

static void guest_write(void)
{
	u32 slot = rng() % 2;
	u64 npages = sim.m.vm.slots[slot].npages;
	u64 page = rng() % npages;
	u32 run = rng() % 4 == 0 ? 1 + rng() % 32 : 1; /* some clustered */
	u64 stamp = ((u64)rng() << 32) | rng();

	if (blocked.on) {
		blocked.on = false;
		guest_store(blocked.slot, blocked.page, blocked.off, blocked.stamp);
		return;
	}
	for (u32 k = 0; k < run && page + k < npages; k++)
		if (!guest_store(slot, page + k, (rng() % 512) * 8, stamp))
			return;
}

/* --- Main loop ----------------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "ptsim: socket path too long\n");
		exit(2);
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0) {
		perror("ptsim: listen");
		exit(1);
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct host_machine_config cfg = {.ram0_mib = 32, .on_pause = on_pause};
	long ram_mib = 32, writes = 0, step = 0, pool_pages = -1;

	sim.seed = 12345;
	sim.client = -1;
	sim.poll_us = 500;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--pml")) {
			cfg.pml = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "ptsim: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--socket"))
			sim.path = v;
		else if (!strcmp(a, "--poll-us"))
			sim.poll_us = atol(v);
		else if (!strcmp(a, "--stall-every"))
			sim.stall_every = atol(v);
		else if (!strcmp(a, "--stall-ms"))
			sim.stall_ms = atol(v);
		else if (!strcmp(a, "--baud"))
			sim.baud = atoi(v);
		else if (!strcmp(a, "--ram-mib"))
			ram_mib = atol(v);
		else if (!strcmp(a, "--writes-per-poll"))
			writes = atol(v);
		else if (!strcmp(a, "--corrupt-every"))
			sim.corrupt_every = (u32)atol(v);
		else if (!strcmp(a, "--dump-dir"))
			sim.dump_dir = v;
		else if (!strcmp(a, "--seed"))
			sim.seed = (u32)atol(v) | 1;
		else if (!strcmp(a, "--step-pages"))
			step = atol(v);
		else if (!strcmp(a, "--pool-pages"))
			pool_pages = atol(v);
		else {
			fprintf(stderr, "ptsim: unknown option %s\n", a);
			return 2;
		}
	}
	if (!sim.path || ram_mib < 1 || ram_mib > 4096 || step < 0) {
		fprintf(stderr, "usage: ptsim --socket PATH [options] (see the source)\n");
		return 2;
	}

	cfg.ram0_mib = (u32)ram_mib;
	cfg.step_pages = (u64)step;
	cfg.seed = sim.seed;
	host_machine_init(&sim.m, &cfg);
	fill_memory();
	for (u32 i = 0; i < sim.m.vm.nr_slots; i++) {
		sim.oracle[i] = calloc((sim.m.vm.slots[i].npages + 63) / 64, 8);
		sim.written[i] = calloc((sim.m.vm.slots[i].npages + 63) / 64, 8);
		if (!sim.oracle[i] || !sim.written[i])
			abort();
	}
	if (pool_pages >= 0)
		host_machine_drain_pool(&sim.m, (u64)pool_pages);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	sim.lfd = listen_on(sim.path);
	fprintf(stderr, "ptsim: listening on %s\n", sim.path);
	sim.tx_last = now_s();
	sim.next = now_s();

	for (;;) {
		wait_poll_slot();
		if (!hv.vcpu->paused)
			for (long w = 0; w < writes; w++)
				guest_write();
		/* The poll: vCPU 0 exits for the host's turn (a timer interrupt). */
		sim.rx_idle = false;
		host_machine_intr_exit(&sim.m, 0);
	}
}
