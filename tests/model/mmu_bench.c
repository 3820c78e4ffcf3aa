// SPDX-License-Identifier: MIT
/*
 * `make bench` step for mmu/: the cost per 4 KiB guest page of the dirty-log
 * passes over 1, 16 and 64 GiB (and 1 TiB) of 4K-mapped guest memory, each
 * next to a floor measured in the same run at the same size: every sample of
 * a pass is paired with a floor pass timed right before it (fig_pairs).
 *
 * Floor ("stream floor"): one pass that reads and writes every entry of an
 * array of as many u64 as the pass has leaf entries, one 8-byte load and one
 * 8-byte store per entry: the memory traffic of touching every entry once,
 * with nothing else. One quadword at a time because that is how any pass
 * must touch entries the processor updates concurrently: only aligned
 * accesses of up to 8 bytes are single-copy atomic (Intel SDM Vol. 3A 9.1.1
 * "Guaranteed Atomic Operations"), so a vector store could tear an entry
 * against the processor's A/D update. The same loop left to the compiler's
 * vectorizer is printed too ("floor.stream_simd": the raw bandwidth, cache-
 * resident at 1 GiB), and the pass with one locked RMW per entry ("atomic
 * floor"), which is what a pass costs that cmpxchgs every entry (KVM does
 * where an entry has volatile bits; mmu/ stores plainly where it has none).
 * Per-size figures show linearity.
 *
 * Sizes: 1, 16 and 64 GiB always; 1 TiB (256 Mi entries: 2 GiB of page
 * tables, 2 GiB of floor array, 32 MiB of bitmap) when PT_BENCH_TIB=1 or when
 * MemAvailable is above 8 GiB. PT_BENCH_SIZES="1 16" (GiB) overrides.
 * Figures go to stdout as JSON lines (tools/bench.sh), progress to stderr.
 * Operations of mmu/tdp_mmu_parity.h (KVM parity, never called by the
 * hypervisor) say so in their note: the hypervisor's own harvest is the
 * manual.* figures.
 * Every figure's note names the processor it was measured on and the build
 * of mmu/ it measured: the image's own objects (tests/model/model.mk), so the
 * figures are those of what ships.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mmu/tdp_mmu_parity.h"
#include "model_platform.h"

#define GUEST_HFN_BASE (1ull << (47 - PAGE_SHIFT))

void pt_assert_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "assertion failed: %s at %s:%d\n", expr, file, line);
	abort();
}

/*
 * CPU time of this thread, not wall time: the bench shares 2 cores with
 * emulators and other builds, and time spent descheduled is not the pass's
 * cost. (Cache pollution by the neighbours remains; floors are measured in
 * the same conditions, right before the passes.)
 */
static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/*
 * Start a timed section with a cold cache: every floor and every pass streams
 * its entries through memory, since the floor is the cost of streaming the
 * same number of entry bytes through memory. Without this the 1 GiB size
 * (2 MiB of entries) would compare warm-cache passes with a warm-cache floor
 * and measure the cache, not the work; above the cache size it changes
 * nothing. The eviction itself is not timed.
 */
#define EVICT_BYTES (128u << 20)
static u64 *evict_buf;

static double now_ns_cold(void)
{
	if (!evict_buf)
		evict_buf = calloc(EVICT_BYTES / 8, 8);
	if (evict_buf) {
		for (u64 i = 0; i < EVICT_BYTES / 8; i += 8)
			evict_buf[i]++;
		__asm__ __volatile__("" : : "r"(evict_buf) : "memory");
	}
	return now_ns();
}

static u64 rng_state = 0x1234567;

static u64 rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1Dull;
}

static void die(const char *what, long v)
{
	fprintf(stderr, "mmu_bench: %s failed (%ld)\n", what, v);
	exit(1);
}

/* ---- floors ---- */

static u64 *floor_arr;
static u64 floor_n;

/* The floor loop left to the compiler's vectorizer: best of 3, per entry. */
static double simd_floor(u64 n)
{
	double best = 1e30;

	for (int rep = 0; rep < 3; rep++) {
		u64 bit = rep & 1 ? 2 : 4;
		double t0 = now_ns_cold();

		for (u64 i = 0; i < n; i++)
			floor_arr[i] ^= bit;
		/* Keep the pass: the compiler must not drop the stores. */
		__asm__ __volatile__("" : : "r"(floor_arr) : "memory");
		double t = now_ns() - t0;
		if (t < best)
			best = t;
	}
	return best / n;
}

/* One cold pass of the stream floor over the whole array (ns, not per page).
 * Relaxed atomics: plain movs, one per entry, never merged into vectors. */
static double floor_sample(void)
{
	static u64 bit = 2;
	double t0 = now_ns_cold();

	for (u64 i = 0; i < floor_n; i++)
		__atomic_store_n(&floor_arr[i], __atomic_load_n(&floor_arr[i], __ATOMIC_RELAXED) ^ bit,
				 __ATOMIC_RELAXED);
	__asm__ __volatile__("" : : "r"(floor_arr) : "memory");
	bit ^= 6;
	return now_ns() - t0;
}

static double atomic_floor(u64 n)
{
	double best = 1e30;

	for (int rep = 0; rep < 2; rep++) {
		double t0 = now_ns_cold();

		for (u64 i = 0; i < n; i++)
			__atomic_fetch_and(&floor_arr[i], ~(rep & 1 ? 2ull : 4ull), __ATOMIC_RELAXED);
		double t = now_ns() - t0;
		if (t < best)
			best = t;
	}
	return best / n;
}

/* ---- output ---- */

#ifndef PT_BENCH_MMU_BUILD
#error "PT_BENCH_MMU_BUILD names the build of mmu/ linked in (tests/model/model.mk)"
#endif

/* The processor's name (/proc/cpuinfo "model name"), JSON-safe. */
static char cpu_model[96] = "unknown CPU";

static void read_cpu_model(void)
{
	FILE *fp = fopen("/proc/cpuinfo", "r");
	char line[256];

	if (!fp)
		return;
	while (fgets(line, sizeof(line), fp)) {
		char *v = strchr(line, ':');
		size_t n = 0;

		if (strncmp(line, "model name", 10) || !v)
			continue;
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		for (; *v && *v != '\n' && n + 1 < sizeof(cpu_model); v++)
			if (*v != '"' && *v != '\\')
				cpu_model[n++] = *v;
		cpu_model[n] = 0;
		break;
	}
	fclose(fp);
}

static void fig(const char *op, const char *size, double ns_per_page, double floor, double ratio,
		const char *unit, const char *ref_name, const char *note)
{
	printf("{\"name\": \"mmu.%s.%s\", \"value\": %.4g, \"unit\": \"%s\", \"ref\": %.4g, "
	       "\"ref_name\": \"%s\", \"ratio\": %.3g, \"note\": \"%s; %s, %s\"}\n",
	       op, size, ns_per_page, unit, floor, ref_name, ratio, note, cpu_model,
	       PT_BENCH_MMU_BUILD);
	fflush(stdout);
}

/* Timed samples of one figure, each with the floor timed right before it. */
#define MAX_PAIRS 64
struct pairs {
	double f[MAX_PAIRS], p[MAX_PAIRS];
	int n;
};

static void pairs_add(struct pairs *s, double floor_ns, double pass_ns)
{
	if (s->n < MAX_PAIRS) {
		s->f[s->n] = floor_ns;
		s->p[s->n] = pass_ns;
		s->n++;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	double tmp[MAX_PAIRS];

	if (n <= 0)
		return 0;
	memcpy(tmp, v, (size_t)n * sizeof(*v));
	qsort(tmp, (size_t)n, sizeof(*tmp), cmp_double);
	return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/*
 * A pass's figure: value and ref are the medians of its samples and of their
 * floors (per page), ratio the median of the per-pair ratios.
 */
static void fig_pairs(const char *op, const char *size, const struct pairs *s, double npages,
		      const char *ref_name, const char *note)
{
	double r[MAX_PAIRS];

	for (int i = 0; i < s->n; i++)
		r[i] = s->p[i] / s->f[i];
	fig(op, size, median(s->p, s->n) / npages, median(s->f, s->n) / npages, median(r, s->n),
	    "ns/page", ref_name, note);
}

/*
 * Write every page of a buffer once before anything is timed: its first
 * write faults (and, on a VM, traps to the host), which is the bench
 * process's cost, not the pass's; the hypervisor's bitmaps are memory it
 * already owns. Zero stays zero (calloc's contract).
 */
static void touch_pages(void *buf, size_t bytes)
{
	for (size_t off = 0; off < bytes; off += PAGE_SIZE)
		__atomic_store_n((u64 *)((u8 *)buf + off), 0, __ATOMIC_RELAXED);
}

/* ---- one size ---- */

struct bench {
	struct tdp_mmu mmu;
	struct model_platform plat;
	int slot;
	u64 npages, words;
	u64 *bitmap, *out, *masks;
};

/* One paired sample of a slot-wide pass. */
static void time_bool(struct pairs *p, bool (*fn)(struct tdp_mmu *, unsigned int), struct bench *b)
{
	double tf = floor_sample(), t0 = now_ns_cold();

	fn(&b->mmu, b->slot);
	pairs_add(p, tf, now_ns() - t0);
}

static bool set_dirty(struct tdp_mmu *m, unsigned int s)
{
	return tdp_mmu_set_dirty_slot(m, s);
}

static bool clear_dirty(struct tdp_mmu *m, unsigned int s)
{
	return tdp_mmu_clear_dirty_slot(m, s);
}

static bool wrprot(struct tdp_mmu *m, unsigned int s)
{
	return tdp_mmu_wrprot_slot(m, s, TDP_LEVEL_4K);
}

static void run_size(u64 gib, bool tib_light)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct spte_format f;
	char size[32];
	struct tdp_map_attrs a = {
		.writable = true,
		.executable = true,
		.memtype = TDP_MEMTYPE_RAM,
		.max_level = TDP_LEVEL_1G,
	};
	bool flush;
	int ret;

	if (gib >= 1024)
		snprintf(size, sizeof(size), "%" PRIu64 "TiB", gib / 1024);
	else
		snprintf(size, sizeof(size), "%" PRIu64 "GiB", gib);
	b->npages = gib << (30 - PAGE_SHIFT);
	b->words = tdp_dirty_bitmap_words(b->npages);
	fprintf(stderr, "mmu_bench: %s (%" PRIu64 " pages)\n", size, b->npages);

	model_platform_init(&b->plat, NULL);
	if (model_platform_use_pool(&b->plat, b->npages / 512 + b->npages / (512 * 512) + 64))
		die("pool", 0);
	spte_format_init_ept(&f, true, true);
	struct mmu_platform ops = model_platform_ops(&b->plat);
	if (tdp_mmu_init(&b->mmu, &f, &ops))
		die("tdp_mmu_init", 0);
	b->slot = tdp_mmu_set_memslot(&b->mmu, 0, 1ull << 18, b->npages,
				      GUEST_HFN_BASE + (1ull << 18), &a, 0);
	if (b->slot < 0)
		die("set_memslot", b->slot);
	struct tdp_mmu_root *root = tdp_mmu_get_root(&b->mmu, 0);
	if (!root)
		die("get_root", 0);
	ret = tdp_mmu_map_range(&b->mmu, 0, 1ull << 18, b->npages, &flush);
	if (ret)
		die("map_range", ret);
	b->bitmap = calloc(b->words, 8);
	b->out = calloc(b->words, 8);
	b->masks = malloc(b->words * 8);

	floor_n = b->npages;
	floor_arr = calloc(floor_n, 8);
	if (!b->bitmap || !b->out || !b->masks || !floor_arr)
		die("calloc", 0);
	touch_pages(b->bitmap, b->words * 8);
	touch_pages(b->out, b->words * 8);
	touch_pages(b->masks, b->words * 8);
	double sfl_simd = simd_floor(floor_n);
	double afl = atomic_floor(floor_n);
	const char *sfl = "stream floor paired with each sample (median ratio)";
	/*
	 * Each timed pass is paired with a floor pass right before it (both
	 * cold), and a figure's ratio is the median over its pairs: on this
	 * shared machine the memory bandwidth left to us moves by 30% from one
	 * second to the next, so a floor measured once, even the best of
	 * several, says little about a pass timed seconds later. Cycles after
	 * the first re-split tables taken from the allocator's free list, as in
	 * a hypervisor that has run a while. 1 TiB keeps 2 cycles (tens of
	 * seconds each).
	 */
	int cycles = tib_light ? 2 : 6;
	struct pairs p_enable = {0}, p_disable = {0}, p_set = {0}, p_clear = {0}, p_wp = {0};
	struct pairs p_mask[3] = {{.n = 0}, {.n = 0}, {.n = 0}}, p_get_all = {0}, p_get_none = {0}, p_floor = {0};
	static const int pct[3] = { 1, 10, 100 };

	for (int cy = 0; cy < cycles; cy++) {
		double tf = floor_sample(), t0 = now_ns_cold();

		flush = false;
		ret = tdp_mmu_enable_dirty_logging(&b->mmu, b->slot, TDP_DIRTY_DBIT, 0, b->bitmap,
						   &flush);
		double t = now_ns() - t0;
		if (ret)
			die("enable_dirty_logging", ret);
		pairs_add(&p_enable, tf, t);
		fprintf(stderr, "  enable %.1f ms\n", t / 1e6);

		for (int rep = 0; rep < (tib_light ? 1 : 3); rep++) {
			time_bool(&p_set, set_dirty, b);
			time_bool(&p_clear, clear_dirty, b);
		}
		for (int p = 0; p < 3; p++) {
			u64 density = pct[p];

			for (u64 w = 0; w < b->words; w++) {
				u64 m = 0;

				if (density == 100) {
					m = ~0ull;
				} else {
					for (int i = 0; i < 64; i++)
						if (rnd() % 100 < density)
							m |= 1ull << i;
				}
				b->masks[w] = m;
			}
			set_dirty(&b->mmu, b->slot);
			tf = floor_sample();
			t0 = now_ns_cold();
			for (u64 w = 0; w < b->words; w++)
				if (b->masks[w])
					tdp_mmu_clear_dirty_masked(&b->mmu, b->slot, w * 64,
								   b->masks[w], false);
			pairs_add(&p_mask[p], tf, now_ns() - t0);
		}
		set_dirty(&b->mmu, b->slot);
		tf = floor_sample();
		t0 = now_ns_cold();
		flush = false;
		ret = tdp_mmu_get_dirty_log(&b->mmu, b->slot, b->out, b->words, &flush);
		t = now_ns() - t0;
		if (ret)
			die("get_dirty_log", ret);
		pairs_add(&p_get_all, tf, t);
		tf = floor_sample();
		t0 = now_ns_cold();
		ret = tdp_mmu_get_dirty_log(&b->mmu, b->slot, b->out, b->words, &flush);
		pairs_add(&p_get_none, tf, now_ns() - t0);

		/* W is still set everywhere (DBIT mode). Every page written
		 * since (A and D set, as the CPU leaves them): write-protect
		 * all. */
		set_dirty(&b->mmu, b->slot);
		time_bool(&p_wp, wrprot, b);

		tf = floor_sample();
		t0 = now_ns_cold();
		ret = tdp_mmu_disable_dirty_logging(&b->mmu, b->slot, &flush);
		t = now_ns() - t0;
		if (ret)
			die("disable_dirty_logging", ret);
		pairs_add(&p_disable, tf, t);
		fprintf(stderr, "  cycle %d done\n", cy);
	}
	double n = (double)b->npages;
	/* The floor: every floor sample of the passes above. */
	for (int i = 0; i < p_enable.n; i++) {
		pairs_add(&p_floor, p_enable.f[i], p_enable.f[i]);
		pairs_add(&p_floor, p_get_all.f[i], p_get_all.f[i]);
		pairs_add(&p_floor, p_disable.f[i], p_disable.f[i]);
	}
	double fl = median(p_floor.f, p_floor.n) / n;
	fig("floor.stream_rmw", size, fl, fl, 1.0, "ns/page", "stream floor",
	    "one 8-byte load + one 8-byte store per entry (median of the paired samples)");
	fig("floor.stream_simd", size, sfl_simd, fl, sfl_simd / fl, "ns/page", "stream floor",
	    "the same loop vectorized by the compiler (raw bandwidth)");
	fig("floor.atomic_rmw", size, afl, fl, afl / fl, "ns/page", "stream floor",
	    "one locked fetch_and per entry");
	fig_pairs("enable_logging.split1g", size, &p_enable, n, sfl,
		  "1 GiB leaves split to 4 KiB + D cleared (DBIT mode)");
	fig_pairs("set_dirty_slot", size, &p_set, n, sfl, "D set on every 4 KiB leaf (parity API)");
	fig_pairs("clear_dirty_slot", size, &p_clear, n, sfl, "D cleared on every 4 KiB leaf (parity API)");
	fig_pairs("wrprot_slot", size, &p_wp, n, sfl,
		  "W cleared on every 4 KiB leaf (pages written: A/D set; parity API)");
	for (int p = 0; p < 3; p++) {
		char op[64], note[128];

		snprintf(op, sizeof(op), "clear_dirty_masked.%dpct", pct[p]);
		snprintf(note, sizeof(note),
			 "one call per 64-page word, %d%% of bits set; per page of the slot (parity API)", pct[p]);
		fig_pairs(op, size, &p_mask[p], n, sfl, note);
	}
	fig_pairs("get_dirty_log.dbit.all_dirty", size, &p_get_all, n, sfl,
		  "scan+clear D, take bitmap; every page dirty (GET without manual protect: parity API)");
	fig_pairs("get_dirty_log.dbit.clean", size, &p_get_none, n, sfl,
		  "scan D, take bitmap; no page dirty (GET without manual protect: parity API)");
	fig_pairs("disable_logging.collapse1g", size, &p_disable, n, sfl,
		  "4 KiB tables put back into 1 GiB leaves");

	/*
	 * The hypervisor's own harvest (hv/control.c): DBIT with manual
	 * protection, GET of the whole slot (D bits into the bitmap, then a
	 * copy) and CLEAR of what it returned, at 100% of the pages written
	 * and at 10% and 1% of them re-armed (CLEAR re-arms only the pages
	 * asked for: a migration clears what it is about to send).
	 */
	{
		struct pairs p_mget = {0}, p_mclear[3] = {{.n = 0}, {.n = 0}, {.n = 0}};

		flush = false;
		ret = tdp_mmu_enable_dirty_logging(&b->mmu, b->slot, TDP_DIRTY_DBIT,
						   TDP_LOG_MANUAL_PROTECT, b->bitmap, &flush);
		if (ret)
			die("enable manual", ret);
		for (int cy = 0; cy < cycles; cy++) {
			for (int p = 0; p < 3; p++) {
				set_dirty(&b->mmu, b->slot);
				double tf = floor_sample(), t0 = now_ns_cold();

				ret = tdp_mmu_get_dirty_log_range(&b->mmu, b->slot, 0, b->npages,
								  b->out, &flush);
				double t = now_ns() - t0;
				if (ret)
					die("get_dirty_log_range", ret);
				if (p == 2)
					pairs_add(&p_mget, tf, t);
				for (u64 w = 0; w < b->words; w++) {
					u64 m = b->out[w];

					if (pct[p] != 100) {
						u64 keep = 0;

						for (int i = 0; i < 64; i++)
							if (rnd() % 100 < (u64)pct[p])
								keep |= 1ull << i;
						m &= keep;
					}
					b->masks[w] = m;
				}
				tf = floor_sample();
				t0 = now_ns_cold();
				ret = tdp_mmu_clear_dirty_log(&b->mmu, b->slot, 0, b->npages, b->masks,
							      &flush);
				t = now_ns() - t0;
				if (ret)
					die("clear_dirty_log", ret);
				pairs_add(&p_mclear[p], tf, t);
			}
		}
		fig_pairs("manual.get_range.all_dirty", size, &p_mget, n, sfl,
			  "DBIT, manual protect: GET of the whole slot (D into bitmap, copy); every "
			  "page dirty");
		for (int p = 0; p < 3; p++) {
			char op[64], note[128];

			snprintf(op, sizeof(op), "manual.clear_range.%dpct", pct[p]);
			snprintf(note, sizeof(note),
				 "DBIT, manual protect: one CLEAR over the whole slot, %d%% of pages "
				 "asked; per page of the slot", pct[p]);
			fig_pairs(op, size, &p_mclear[p], n, sfl, note);
		}
		ret = tdp_mmu_disable_dirty_logging(&b->mmu, b->slot, &flush);
		if (ret)
			die("disable manual", ret);
	}

	/* PML: drain full buffers of random GPAs of the slot (with offsets). */
	{
		static u64 buf[TDP_PML_ENTRIES];
		u64 reps = 2000;

		flush = false;
		ret = tdp_mmu_enable_dirty_logging(&b->mmu, b->slot, TDP_DIRTY_PML, 0, b->bitmap,
						   &flush);
		if (ret)
			die("enable pml", ret);
		double best = 1e30, fbest = 1e30, abest = 1e30;

		for (int rep = 0; rep < 3; rep++) {
			double t = 0, ft = 0, at = 0;

			for (u64 r = 0; r < reps; r++) {
				for (int i = 0; i < TDP_PML_ENTRIES; i++)
					buf[i] = ((1ull << 18) + rnd() % b->npages) << PAGE_SHIFT |
						 (rnd() & 0xff8);
				u16 idx = 0xffff;
				double t0 = now_ns();

				tdp_mmu_pml_drain(&b->mmu, 0, buf, &idx);
				t += now_ns() - t0;
				/* Floor: read each entry, set its bit. */
				t0 = now_ns();
				for (int i = 0; i < TDP_PML_ENTRIES; i++) {
					u64 g = (buf[i] >> PAGE_SHIFT) - (1ull << 18);

					floor_arr[g / 64] |= 1ull << (g % 64);
				}
				__asm__ __volatile__("" : : "r"(floor_arr) : "memory");
				ft += now_ns() - t0;
				/* The same with a locked OR: the bitmap word is shared
				 * with harvests and other CPUs' marks, so a drain must. */
				t0 = now_ns();
				for (int i = 0; i < TDP_PML_ENTRIES; i++) {
					u64 g = (buf[i] >> PAGE_SHIFT) - (1ull << 18);

					__atomic_fetch_or(&floor_arr[g / 64], 1ull << (g % 64),
							  __ATOMIC_RELAXED);
				}
				at += now_ns() - t0;
			}
			best = t < best ? t : best;
			fbest = ft < fbest ? ft : fbest;
			abest = at < abest ? at : abest;
		}
		double per = best / (reps * TDP_PML_ENTRIES), fper = fbest / (reps * TDP_PML_ENTRIES);
		double aper = abest / (reps * TDP_PML_ENTRIES);
		fig("pml_drain", size, per, fper, per / fper, "ns/entry",
		    "read entry + set bitmap bit (same run)",
		    "full 512-entry buffer of random GPAs in the slot; per entry");
		fig("pml_drain.floor_atomic", size, aper, fper, aper / fper, "ns/entry",
		    "read entry + set bitmap bit (same run)",
		    "read entry + locked OR of its bit: the floor of a drain that shares the bitmap");
		flush = false;
		tdp_mmu_disable_dirty_logging(&b->mmu, b->slot, &flush);
	}

	/*
	 * Enabling from 2 MiB leaves (WP mode: split + write-protect), twice:
	 * leaves the guest has used (A and D set, as the CPU leaves them:
	 * the children are write-protected with plain stores), and leaves
	 * never touched since they were mapped (A clear: the CPU may set it
	 * at any moment, so each child takes a cmpxchg, as in KVM).
	 */
	for (int used = 1; used >= 0; used--) {
		struct tdp_mmu m2;
		struct tdp_map_attrs a2 = a;
		struct pairs p2 = {0};

		a2.max_level = TDP_LEVEL_2M;
		for (int cy = 0; cy < cycles; cy++) {
			if (tdp_mmu_init(&m2, &f, &ops))
				die("tdp_mmu_init 2m", 0);
			int s2 = tdp_mmu_set_memslot(&m2, 0, 1ull << 18, b->npages,
						     GUEST_HFN_BASE + (1ull << 18), &a2, 0);
			struct tdp_mmu_root *r2 = tdp_mmu_get_root(&m2, 0);

			if (s2 < 0 || !r2 || tdp_mmu_map_range(&m2, 0, 1ull << 18, b->npages, &flush))
				die("2m setup", s2);
			if (used)
				tdp_mmu_set_dirty_slot(&m2, s2);
			double tf = floor_sample(), t0 = now_ns_cold();
			ret = tdp_mmu_enable_dirty_logging(&m2, s2, TDP_DIRTY_WP, 0, b->bitmap, &flush);
			double t = now_ns() - t0;
			if (ret)
				die("enable 2m", ret);
			pairs_add(&p2, tf, t);
			tdp_mmu_put_root(&m2, r2);
			if (tdp_mmu_destroy(&m2))
				die("destroy 2m", 0);
		}
		fig_pairs(used ? "enable_logging.split2m" : "enable_logging.split2m.untouched", size,
		    &p2, n, sfl,
		    used ? "2 MiB leaves (A/D set) split to 4 KiB + write-protected (WP mode)"
			 : "2 MiB leaves never accessed (A clear: cmpxchg per child) split + "
			   "write-protected");
	}

	tdp_mmu_put_root(&b->mmu, root);
	if (tdp_mmu_destroy(&b->mmu))
		die("destroy", 0);
	if (atomic_load(&b->plat.pages))
		die("page-table pages leaked", atomic_load(&b->plat.pages));
	model_platform_fini(&b->plat);
	free(floor_arr);
	free(b->bitmap);
	free(b->out);
	free(b->masks);
	free(b);
}

static u64 mem_available_gib(void)
{
	FILE *fp = fopen("/proc/meminfo", "r");
	char line[256];
	u64 kb = 0;

	if (!fp)
		return 0;
	while (fgets(line, sizeof(line), fp))
		if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &kb) == 1)
			break;
	fclose(fp);
	return kb >> 20;
}

int main(void)
{
	const char *sizes = getenv("PT_BENCH_SIZES");
	const char *tib = getenv("PT_BENCH_TIB");
	u64 avail = mem_available_gib();

	read_cpu_model();
	fprintf(stderr, "mmu_bench: %s; mmu/ built as %s\n", cpu_model, PT_BENCH_MMU_BUILD);

	if (sizes) {
		char *s = strdup(sizes), *save = NULL;

		for (char *tok = strtok_r(s, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
			u64 g = strtoull(tok, NULL, 0);

			run_size(g, g >= 1024);
		}
		free(s);
		return 0;
	}
	run_size(1, false);
	run_size(16, false);
	run_size(64, false);
	if ((tib && atoi(tib)) || (!tib && avail >= 8))
		run_size(1024, true);
	else
		fprintf(stderr, "mmu_bench: 1 TiB skipped (MemAvailable %" PRIu64 " GiB < 8)\n", avail);
	return 0;
}
