/* SPDX-License-Identifier: MIT */
/*
 * ptsim: the hypervisor's management side without the CPU. Runs hv/mgmt.c and
 * the dirty-log session over the real mmu/ (tests/proto/fake_backend.h) behind
 * a unix socket, through an emulated 16550:
 * a 16-byte receive FIFO that DROPS bytes (and flags an overrun) when the host
 * sends more than the "hypervisor" has read, polled only every --poll-us (and
 * not at all during --stall-ms pauses every --stall-every polls), like a
 * hypervisor that reads the UART only on VM exits. A fake guest writes pages
 * while it is not paused; every page it writes while its slot logs is recorded
 * in an oracle bitmap (every page written at all in another), dumped with the
 * memory on every pause (--dump-dir), so
 * that tests can prove that no dirty page was lost on the way to ptctl.
 *
 *   ptsim --socket PATH [--poll-us N] [--stall-every N --stall-ms N] [--baud N]
 *         [--ram-mib N] [--writes-per-poll N] [--corrupt-every N] [--dump-dir DIR]
 *         [--seed N] [--pml] [--step-pages N] [--pool-pages N]
 *
 * --pool-pages: the dirty-log session's allocations fail after N (its pool is
 * dry: a start gets the NOMEM error).
 *
 * --step-pages: pages of work per poll for dirty start/stop/harvest (the
 * hypervisor's --mgmt-step-pages): small values make them span many polls
 * with the fake guest writing in between.
 */
#define _GNU_SOURCE
#include "fake_backend.h"

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

static struct {
	struct fake_vm vm;
	struct mgmt mgmt;
	int client;
	u8 fifo[FIFO_SIZE];
	u32 fifo_head, fifo_count;
	bool overrun;
	u64 dropped;
	/* Transmit side at --baud: the FIFO empties at baud/10 bytes a second. */
	double tx_level, tx_last;
	int baud;
	u32 corrupt_every, tx_frames;
	const char *dump_dir;
	u64 *oracle[FAKE_NR_SLOTS];
	/* Every page written at all, logged or not: a reported page must be in here. */
	u64 *written[FAKE_NR_SLOTS];
	u32 seed;
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

/* --- The emulated UART ------------------------------------------------------- */

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

static int sim_rx_byte(void *ctx)
{
	u8 b;

	(void)ctx;
	if (sim.overrun) {
		sim.overrun = false;
		return MGMT_RX_LINE_ERROR;
	}
	if (!sim.fifo_count)
		return MGMT_RX_NONE;
	b = sim.fifo[sim.fifo_head];
	sim.fifo_head = (sim.fifo_head + 1) % FIFO_SIZE;
	sim.fifo_count--;
	return b;
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

static u32 sim_tx_room(void *ctx)
{
	(void)ctx;
	tx_drain();
	/* THRE: room for a whole FIFO only once it is empty. */
	return sim.tx_level <= 0 ? FIFO_SIZE : 0;
}

static void sim_tx_bytes(void *ctx, const u8 *buf, u32 len)
{
	static bool damaged;
	u8 tmp[FIFO_SIZE];

	(void)ctx;
	memcpy(tmp, buf, len);
	/* --corrupt-every N: damage one byte of every Nth frame (a noisy line). */
	for (u32 i = 0; i < len; i++) {
		if (tmp[i] == 0) {
			sim.tx_frames++;
			damaged = false;
		} else if (sim.corrupt_every && !damaged &&
			   sim.tx_frames % sim.corrupt_every == sim.corrupt_every - 1) {
			tmp[i] ^= tmp[i] == 0x40 ? 0x20 : 0x40;
			damaged = true;
		}
	}
	if (sim.baud)
		sim.tx_level += len;
	if (sim.client >= 0 && write(sim.client, tmp, len) < 0) {
		close(sim.client);
		sim.client = -1;
	}
}

static const struct mgmt_transport sim_transport = {
    .rx_byte = sim_rx_byte,
    .tx_room = sim_tx_room,
    .tx_bytes = sim_tx_bytes,
};

/* --- The backend, wrapped: the oracle and the dumps ----------------------------- */

static struct mgmt_backend sim_backend;

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

static u64 sim_now_ns(void *ctx)
{
	(void)ctx;
	return (u64)(now_s() * 1e9);
}

static int sim_pause(void *ctx)
{
	int r = fake_backend.pause(ctx);

	if (!r && sim.dump_dir) {
		for (u32 i = 0; i < sim.vm.nr_slots; i++) {
			struct fake_slot *s = &sim.vm.slots[i];
			char name[64];

			snprintf(name, sizeof(name), "oracle-%u.bin", s->s.id);
			dump(name, sim.oracle[i], (s->npages + 63) / 64 * 8);
			snprintf(name, sizeof(name), "written-%u.bin", s->s.id);
			dump(name, sim.written[i], (s->npages + 63) / 64 * 8);
			if (s->mem) {
				snprintf(name, sizeof(name), "mem-%u.bin", s->s.id);
				dump(name, s->mem, s->s.size);
			}
		}
	}
	return r;
}

/*
 * One store of the fake guest. A store whose page waits for the
 * copy-on-write budget is the vCPU stuck on its fault: it is tried again,
 * first thing, at the next poll, and nothing else is written meanwhile.
 */
static struct {
	bool on;
	struct fake_slot *s;
	u64 page, off, stamp;
} blocked;

static bool guest_store(struct fake_slot *s, u64 page, u64 off, u64 stamp)
{
	if (!fake_vm_write(&sim.vm, s->s.gpa + page * PAGE_SIZE + off, &stamp, sizeof(stamp))) {
		blocked.on = true;
		blocked.s = s;
		blocked.page = page;
		blocked.off = off;
		blocked.stamp = stamp;
		return false;
	}
	if (fake_slot_mode(&sim.vm, s->s.id) != PROTO_DIRTY_OFF)
		proto_set_bit(sim.oracle[s - sim.vm.slots], page);
	proto_set_bit(sim.written[s - sim.vm.slots], page);
	return true;
}

static void guest_write(void)
{
	struct fake_slot *s = &sim.vm.slots[rng() % 2];
	u64 page = rng() % s->npages;
	u32 run = rng() % 4 == 0 ? 1 + rng() % 32 : 1; /* some clustered */
	u64 stamp = ((u64)rng() << 32) | rng();

	if (blocked.on) {
		blocked.on = false;
		guest_store(blocked.s, blocked.page, blocked.off, blocked.stamp);
		return;
	}
	for (u32 k = 0; k < run && page + k < s->npages; k++)
		if (!guest_store(s, page + k, (rng() % 512) * 8, stamp))
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
	const char *path = NULL;
	long poll_us = 500, stall_every = 0, stall_ms = 0, ram_mib = 32, writes = 0, step = 0;
	bool pml = false;
	u64 polls = 0;
	void *mem;
	int lfd;
	double next;
	long pool_pages = -1;

	sim.seed = 12345;
	sim.client = -1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--pml")) {
			pml = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "ptsim: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--socket"))
			path = v;
		else if (!strcmp(a, "--poll-us"))
			poll_us = atol(v);
		else if (!strcmp(a, "--stall-every"))
			stall_every = atol(v);
		else if (!strcmp(a, "--stall-ms"))
			stall_ms = atol(v);
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
	if (!path || ram_mib < 1 || ram_mib > 4096) {
		fprintf(stderr, "usage: ptsim --socket PATH [options] (see the source)\n");
		return 2;
	}

	fake_vm_init(&sim.vm, (u32)ram_mib);
	if (pml)
		sim.vm.pml = true;
	sim.vm.alloc_fail_after = pool_pages;
	fake_vm_fill(&sim.vm, sim.seed);
	for (u32 i = 0; i < sim.vm.nr_slots; i++)
		sim.oracle[i] = calloc((sim.vm.slots[i].npages + 63) / 64, 8);
	for (u32 i = 0; i < sim.vm.nr_slots; i++)
		sim.written[i] = calloc((sim.vm.slots[i].npages + 63) / 64, 8);
	sim_backend = fake_backend;
	sim_backend.pause = sim_pause;
	/* Real time: a pause lease (PAUSE with lease_ms) ends after real silence. */
	sim_backend.now_ns = sim_now_ns;
	mem = malloc(MGMT_MEM_SIZE);
	if (!mem ||
	    mgmt_init(&sim.mgmt, mem, MGMT_MEM_SIZE, &sim_backend, &sim.vm, &sim.vm.ds,
		      &sim_transport, NULL)) {
		fprintf(stderr, "ptsim: mgmt_init failed\n");
		return 1;
	}
	if (step > 0)
		mgmt_set_step_pages(&sim.mgmt, (u64)step);
	mgmt_set_cow(&sim.mgmt, &sim.vm.cow);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(path);
	fprintf(stderr, "ptsim: listening on %s\n", path);
	sim.tx_last = now_s();
	next = now_s();

	while (!stop) {
		struct pollfd pfd[2] = {{.fd = lfd, .events = POLLIN},
					{.fd = sim.client, .events = POLLIN}};
		double t = now_s();
		int wait_ms = t >= next ? 0 : (int)((next - t) * 1000) + 1;

		if (wait_ms > 1)
			wait_ms = 1;
		poll(pfd, sim.client >= 0 ? 2 : 1, wait_ms);
		if (pfd[0].revents & POLLIN) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

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
			/* An infinitely fast line: every byte meets the FIFO at once. */
			for (ssize_t k = 0; k < n; k++)
				uart_receive(buf[k]);
		}
		if (now_s() < next)
			continue;
		polls++;
		if (!sim.vm.paused)
			for (long w = 0; w < writes; w++)
				guest_write();
		mgmt_poll(&sim.mgmt);
		next = now_s() + poll_us * 1e-6;
		if (stall_every && polls % (u64)stall_every == 0)
			next += stall_ms * 1e-3;
	}
	fprintf(stderr, "ptsim: %llu polls, %llu bytes dropped by the FIFO, %llu rx bytes\n",
		(unsigned long long)polls, (unsigned long long)sim.dropped,
		(unsigned long long)sim.mgmt.c.rx_bytes);
	unlink(path);
	return 0;
}
