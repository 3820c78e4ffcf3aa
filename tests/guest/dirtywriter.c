/* SPDX-License-Identifier: MIT */
/*
 * pt-dirtywriter: the in-guest workload of the dirty-logging oracle test and bench
 * (tests/qemu/test_dirty_oracle.sh). A static Linux program for the busybox
 * initramfs.
 *
 *   pt-dirtywriter [--pattern random|seq|hot] [--mib N | --pages N] [--hot-pages N]
 *                  [--seconds S] [--seed N] [--nap-ms N] [--rate N [--steady]] [--tag N]
 *
 * It maps N MiB of anonymous memory (populated up front, so that the measured loop takes
 * no guest page faults), then stores into one page after another until S seconds have
 * passed (0: forever; the test kills it). Every store writes a value never written before
 * (a 64-bit sequence number) at the start of the page, so every page the writer touches
 * in a round really changes content: the host's oracle (QMP pmemsave, diffed per 4 KiB
 * page) sees every such page, and each one must be in the dirty bitmap.
 *
 * --rate N: at most N stores per second on average (sleeping when ahead; 0, the default:
 * as fast as it can). The oracle uses it so that a round dirties part of the buffer, not
 * all of it: a page must then be reported exactly when it was written.
 * --pages N: the buffer in 4 KiB pages instead of MiB (the set of W pages of the
 * migration-convergence tests, docs/research.md).
 * --steady (with --rate): a writer of a known rate at every moment, for the research
 * commands' checks against W (1 - exp(-R t / W)): every 5 ms it stores R x (time since
 * the last tick) times, and time the writer did not get (the hypervisor paused the
 * guest, the host starved it) counts only up to 25 ms: it never stores a backlog in a
 * burst. Without it, --rate catches up after a stall. The final line then also says
 * stalled=SECONDS (the time not credited) and rate is stores per credited second.
 * --heartbeat-ms N (with --steady): every N ms a line "dirtywriter: t=T stores=K", T the
 * guest's CLOCK_MONOTONIC: how many stores were made by when, for the tests that compare
 * a harvest with the stores made in its window (tests/qemu/research_check.py), whatever
 * pace a busy host let the guest keep.
 * --nap-ms N: after every N ms of stores, sleep 1 ms (0, the default: never). A guest
 * that sleeps halts, and a halt is an exit: see tests/qemu/dirty_oracle.py on why the
 * oracle uses it (the hypervisor polls its management port only on exits).
 *
 * Patterns:
 *   random  uniformly random pages of the buffer (xorshift64*)
 *   seq     a sweep over the buffer, page after page, wrapping around
 *   hot     99 stores of 100 into a hot set of --hot-pages pages (default 64), the rest
 *           uniformly random over the buffer
 *
 * --tag N (1..65535): every page of the buffer carries TAG_MAGIC | N in its second 64-bit
 * word (written once, when populating), and a control page, outside the buffer, holds the
 * sequence number of the store about to be made, published before that store (x86 keeps
 * stores in order). The ready line then also gives the control page's guest-physical
 * address (from /proc/self/pagemap: root only). The oracle (dirty_oracle.py
 * --after-harvest-check) reads that word through the hypervisor right after a harvest: a
 * page of this writer whose sequence number is larger was written after the harvest had
 * returned, so the next harvest must have it (a stale TLB entry on another CPU would lose
 * exactly such a write: docs/smp.md).
 *
 * It prints one line when it is ready (after populating) and one at the end (after S
 * seconds, or on SIGTERM/SIGINT):
 *   dirtywriter: ready pattern=P pages=N [tag=N control=0xGPA]
 *   dirtywriter: pattern=P pages=N stores=K seconds=T rate=R
 * R is stores per second: the throughput that the bench compares with logging off, wp
 * and dbit. The clock is read every 1024 stores.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE	    4096u
#define CLOCK_EVERY 1024u
#define TAG_MAGIC   0x5054574400000000ull /* "PTWD" in the high half */

enum pattern { PAT_RANDOM, PAT_SEQ, PAT_HOT };

static const char *const pattern_names[] = {"random", "seq", "hot"};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t xorshift64s(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: pt-dirtywriter [--pattern random|seq|hot] [--mib N] "
		"[--pages N] [--hot-pages N] [--seconds S] [--seed N] [--nap-ms N] [--rate N "
		"[--steady [--heartbeat-ms N]]] [--tag N]\n");
	return 2;
}

static int parse_ul(const char *s, unsigned long *out)
{
	char *end;

	if (!s || !*s)
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 0);
	return (errno || *end) ? -1 : 0;
}

/* The guest-physical address of the page at va (Documentation/admin-guide/mm/pagemap.rst). */
static uint64_t phys_of(const void *va)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)va / PAGE * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	if (!(e & (1ull << 63)) || !(e & ((1ull << 55) - 1)))
		return 0; /* not present, or the PFN hidden (not root) */
	return (e & ((1ull << 55) - 1)) * PAGE;
}

/* vm.compact_unevictable_allowed = 0: compaction leaves mlocked pages where they are. */
static int forbid_unevictable_compaction(void)
{
	const char *path = "/proc/sys/vm/compact_unevictable_allowed";
	int fd = open(path, O_WRONLY);

	if (fd < 0 || write(fd, "0\n", 2) != 2) {
		fprintf(stderr, "dirtywriter: cannot write 0 to %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void report(enum pattern pat, uint64_t pages, uint64_t stores, double secs)
{
	printf("dirtywriter: pattern=%s pages=%llu stores=%llu seconds=%.3f rate=%.0f\n",
	       pattern_names[pat], (unsigned long long)pages, (unsigned long long)stores, secs,
	       secs > 0 ? (double)stores / secs : 0.0);
	fflush(stdout);
}

static uint64_t pick_page(enum pattern pat, uint64_t *rng, uint64_t *sweep, uint64_t pages,
			  uint64_t hot_pages)
{
	uint64_t page;

	switch (pat) {
	case PAT_SEQ:
		return (*sweep)++ % pages;
	case PAT_HOT:
		page = xorshift64s(rng);
		return (page % 100 != 0) ? (page >> 8) % hot_pages : (page >> 8) % pages;
	case PAT_RANDOM:
	default:
		return xorshift64s(rng) % pages;
	}
}

/*
 * A tick of 5 ms: each tick is a sleep, a timer interrupt and exits to the hypervisor;
 * at 1 ms a guest under an emulator on a busy host could not keep up. Counts over
 * windows of more than a few ticks follow the rate; a stall (a paused guest) costs at
 * most 25 ms of stores in one burst.
 */
#define STEADY_TICK_S	    0.005
#define STEADY_MAX_CREDIT_S 0.025

/* --steady: R stores per second of time the writer got, in ticks, no catch-up. */
static int run_steady(enum pattern pat, unsigned char *buf, uint64_t pages, uint64_t hot_pages,
		      unsigned long rate, unsigned long seconds, unsigned long heartbeat_ms,
		      uint64_t *rng)
{
	double start = now(), last = start, credit = 0, stalled = 0, beat = start;
	uint64_t stores = 0, seqno = 1, sweep = 0;
	struct timespec tick = {0, (long)(STEADY_TICK_S * 1e9)};

	while (!stop) {
		double t = now(), dt = t - last;

		last = t;
		if (dt > STEADY_MAX_CREDIT_S) {
			stalled += dt - STEADY_MAX_CREDIT_S;
			dt = STEADY_MAX_CREDIT_S;
		}
		credit += (double)rate * dt;
		while (credit >= 1.0) {
			uint64_t page = pick_page(pat, rng, &sweep, pages, hot_pages);

			*(volatile uint64_t *)(buf + page * PAGE) = seqno++;
			stores++;
			credit -= 1.0;
		}
		if (heartbeat_ms && t - beat >= (double)heartbeat_ms * 1e-3) {
			printf("dirtywriter: t=%.6f stores=%llu\n", t, (unsigned long long)stores);
			fflush(stdout);
			beat = t;
		}
		if (seconds && t - start >= (double)seconds)
			break;
		nanosleep(&tick, NULL);
	}
	{
		double secs = now() - start, got = secs - stalled;

		printf("dirtywriter: pattern=%s pages=%llu stores=%llu seconds=%.3f rate=%.0f "
		       "stalled=%.3f\n",
		       pattern_names[pat], (unsigned long long)pages, (unsigned long long)stores,
		       secs, got > 0 ? (double)stores / got : 0.0, stalled);
		fflush(stdout);
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum pattern pat = PAT_RANDOM;
	unsigned long mib = 64, hot_pages = 64, seconds = 0, seed = 0x9e3779b97f4a7c15ul;
	unsigned long nap_ms = 0, rate = 0, tag = 0, npages = 0, heartbeat_ms = 0;
	volatile uint64_t *control = NULL;
	uint64_t control_gpa = 0;
	int steady = 0;
	uint64_t pages, i, rng, seqno = 1, stores = 0, sweep = 0;
	double start, t, last_nap;
	unsigned char *buf;
	int a;

	for (a = 1; a < argc; a++) {
		const char *v = a + 1 < argc ? argv[a + 1] : NULL;

		if (!strcmp(argv[a], "--pattern") && v) {
			if (!strcmp(v, "random"))
				pat = PAT_RANDOM;
			else if (!strcmp(v, "seq"))
				pat = PAT_SEQ;
			else if (!strcmp(v, "hot"))
				pat = PAT_HOT;
			else
				return usage();
		} else if (!strcmp(argv[a], "--mib") && v) {
			if (parse_ul(v, &mib) || !mib || mib > 65536)
				return usage();
		} else if (!strcmp(argv[a], "--steady")) {
			steady = 1;
			continue;
		} else if (!strcmp(argv[a], "--heartbeat-ms") && v) {
			if (parse_ul(v, &heartbeat_ms) || !heartbeat_ms)
				return usage();
		} else if (!strcmp(argv[a], "--pages") && v) {
			if (parse_ul(v, &npages) || !npages || npages > (65536ul << 8))
				return usage();
		} else if (!strcmp(argv[a], "--hot-pages") && v) {
			if (parse_ul(v, &hot_pages) || !hot_pages)
				return usage();
		} else if (!strcmp(argv[a], "--seconds") && v) {
			if (parse_ul(v, &seconds))
				return usage();
		} else if (!strcmp(argv[a], "--rate") && v) {
			if (parse_ul(v, &rate))
				return usage();
		} else if (!strcmp(argv[a], "--nap-ms") && v) {
			if (parse_ul(v, &nap_ms))
				return usage();
		} else if (!strcmp(argv[a], "--tag") && v) {
			if (parse_ul(v, &tag) || !tag || tag > 0xffff)
				return usage();
		} else if (!strcmp(argv[a], "--seed") && v) {
			if (parse_ul(v, &seed) || !seed)
				return usage();
		} else {
			return usage();
		}
		a++;
	}
	/* --steady has its own store loop, without the tagged stores and control page. */
	if ((steady && (!rate || tag)) || (heartbeat_ms && !steady))
		return usage();
	pages = npages ? npages : (uint64_t)mib * (1u << 20) / PAGE;
	if (hot_pages > pages)
		hot_pages = pages;
	rng = seed;

	buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (buf == MAP_FAILED) {
		fprintf(stderr, "dirtywriter: mmap %lu MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	/* Own every page now (MAP_POPULATE may map the shared zero page for reads only). */
	for (i = 0; i < pages; i++) {
		*(volatile uint64_t *)(buf + i * PAGE) = 0;
		if (tag)
			*(volatile uint64_t *)(buf + i * PAGE + 8) = TAG_MAGIC | tag;
	}
	if (tag) {
		/*
		 * The oracle reads the control page at the guest-physical address printed below
		 * for as long as the writer runs, so the page must not move. MAP_LOCKED keeps it
		 * resident, but compaction (kcompactd compacts proactively) still migrates
		 * mlocked pages unless vm.compact_unevictable_allowed is 0
		 * (Documentation/admin-guide/sysctl/vm.rst); the old frame is then freed and
		 * reused, and the oracle read another page's bytes where the tag should be.
		 */
		if (forbid_unevictable_compaction())
			return 1;
		control = mmap(NULL, PAGE, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
		if (control == MAP_FAILED) {
			fprintf(stderr, "dirtywriter: mmap control page: %s\n", strerror(errno));
			return 1;
		}
		control[0] = 0;
		control[1] = TAG_MAGIC | tag;
		control_gpa = phys_of((const void *)control);
		if (!control_gpa) {
			fprintf(stderr, "dirtywriter: no physical address for the control page\n");
			return 1;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	if (tag)
		printf("dirtywriter: ready pattern=%s pages=%llu tag=%lu control=0x%llx\n",
		       pattern_names[pat], (unsigned long long)pages, tag,
		       (unsigned long long)control_gpa);
	else
		printf("dirtywriter: ready pattern=%s pages=%llu\n", pattern_names[pat],
		       (unsigned long long)pages);
	fflush(stdout);

	start = last_nap = now();
	if (steady)
		return run_steady(pat, buf, pages, hot_pages, rate, seconds, heartbeat_ms, &rng);
	while (!stop) {
		uint64_t page;

		switch (pat) {
		case PAT_SEQ:
			page = sweep++ % pages;
			break;
		case PAT_HOT:
			page = xorshift64s(&rng);
			page = (page % 100 != 0) ? (page >> 8) % hot_pages : (page >> 8) % pages;
			break;
		case PAT_RANDOM:
		default:
			page = xorshift64s(&rng) % pages;
			break;
		}
		/* A value never stored before: the page's content changes on every store. */
		if (control)
			control[0] = seqno;
		*(volatile uint64_t *)(buf + page * PAGE) = seqno++;
		stores++;
		if (stores % CLOCK_EVERY)
			continue;
		t = now();
		if (seconds && t - start >= (double)seconds)
			break;
		if (rate && (double)stores > (double)rate * (t - start)) {
			double ahead = (double)stores / (double)rate - (t - start);
			struct timespec nap = {(time_t)ahead,
					       (long)((ahead - (double)(time_t)ahead) * 1e9)};

			nanosleep(&nap, NULL);
			last_nap = now();
		} else if (nap_ms && t - last_nap >= (double)nap_ms * 1e-3) {
			struct timespec nap = {0, 1000000};

			nanosleep(&nap, NULL);
			last_nap = now();
		}
	}
	report(pat, pages, stores, now() - start);
	return 0;
}
