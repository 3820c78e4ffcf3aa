// SPDX-License-Identifier: MIT
/*
 * Dirty logging of mmu/ against the hardware model: no write is ever lost.
 *
 * vCPUs (hw_model.h) write random pages of a logged memslot while a harvester
 * runs rounds of get-dirty-log (or the manual GET + CLEAR pair, optionally
 * "initially all set") and flushes exactly when mmu/ says so. As in KVM's
 * selftests/kvm/dirty_log_test.c, every write carries the number of the round
 * in which it started; the proof is per page and per round:
 *
 *   round: the value R of a global counter; harvest k first sets R = k + 1,
 *     then waits until every write that read R <= k has completed (each vCPU
 *     publishes the stamp of its last completed write), then harvests B_k.
 *   rule: every write stamped k appears in B_k. A write stamped k may have
 *     run while harvest k - 1 was in progress and been caught by B_{k-1}
 *     instead (then it is in B_{k-1} and its re-arming came after it), so
 *     after a harvest that overlapped writers the rule is "B_{k-1} or B_k".
 *     Rounds in which the writers are parked during the harvest ("sync")
 *     check the strict rule.
 *   bookkeeping: per page a 64-bit mask of the stamps (mod 64) of completed
 *     writes not yet checked; harvest k checks and clears bit k.
 *
 * Each group also proves that every store landed on the frame the memslot
 * maps (hpa = base_hfn + offset), that nothing the hardware reports is a
 * misconfiguration, that page-table pages return to their baseline when
 * logging stops (huge pages put back together) and to zero at tear-down, and
 * that the vCPUs' root references are all given back.
 *
 * The negative groups drop one TLB flush (the harvester's last one, before it
 * hands out the bitmap): they pass only if the checker reports a lost page.
 *
 * Built twice: threaded (vCPU threads + harvester, under ThreadSanitizer) and
 * sequential (one thread interleaves vCPU writes and harvests, under ASan and
 * UBSan, plus the format and negative groups). PT_MODEL_SEEDS=N runs N seeds
 * per group instead of the default (long form for `make bench` or by hand).
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mmu/tdp_mmu_parity.h"
#include "hw_model.h"
#include "model_platform.h"

#ifndef MODEL_THREADED
#define MODEL_THREADED 0
#endif

#define HOT_PAGES 16
#define MAX_VCPUS 4
#define LOG_AS 0

/* Guest frames live at a made-up host-physical range above every pointer of
 * this process (page tables), 1 GiB aligned so that 1 GiB leaves are possible. */
#define GUEST_HFN_BASE (1ull << (47 - PAGE_SHIFT))

void pt_assert_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "assertion failed: %s at %s:%d\n", expr, file, line);
	abort();
}

struct cfg {
	enum hw_format hwfmt;
	enum tdp_dirty_mode mode;
	int size_level; /* largest page of the initial mapping */
	u64 log_flags;
	int nr_vcpus;
	int rounds;
	int writes_per_round; /* per vCPU */
	int cycles;           /* enable / rounds / disable */
	u64 seed;
	int drop_flush_at; /* harvest whose final flush is dropped; 0: none */
	int sync_one_in;   /* threaded: a round parks the writers with chance 1/n */
	int invalidate_one_in; /* a harvest first invalidates the roots, chance 1/n */
	int age_one_in;        /* a harvest first clears A bits (aging), chance 1/n */
	bool nomem;        /* make eager splitting run out of memory */
	bool keep_offset;  /* PML logs the GPA with its page offset (Bochs) */
	u32 yield_every;   /* mmu walks' batch; 0: random small */
};

struct vstate {
	struct tdp_mmu_root *root;
	pthread_t thr;
	u64 rng;
	gfn_t hot[HOT_PAGES];
	_Atomic u64 done_round;
	atomic_uint acked_pause;
	atomic_ulong nwrites;
	_Atomic u64 budget_done; /* round whose budget of writes is done */
};

struct test {
	struct cfg c;
	struct tdp_mmu mmu;
	struct model_platform plat;
	struct hw_machine hw;
	struct vstate vs[MAX_VCPUS];
	int slot, uslot;
	gfn_t base, ubase;
	u64 npages, unpages;
	hfn_t base_hfn, ubase_hfn;
	u64 words;
	u64 *bitmap; /* lent to mmu/ */
	u64 *b_cur, *b_prev;
	_Atomic u64 *w_rounds;
	_Atomic u64 round;
	atomic_bool tracking; /* writes are stamped and checked */
	atomic_bool stop;
	atomic_bool unthrottled; /* writers ignore their budget (tail phase) */
	atomic_uint pause_req, pause_rel;
	bool prev_sync;
	u64 harvest_no;
	u64 cycle_first; /* number of the first harvest of this logging cycle */
	u64 rng;
	/* results */
	atomic_long bad_translation, errors, pml_unlogged;
	u64 lost, extra, harvests, flush_calls, invalidations, agings;
	gfn_t lost_gfn;
	u64 lost_round;
	char err[512];
	pthread_mutex_t err_lock;
};

static u64 rnd64(u64 *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1Dull;
}

static void fail(struct test *t, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&t->err_lock);
	if (!t->err[0]) {
		va_start(ap, fmt);
		vsnprintf(t->err, sizeof(t->err), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&t->err_lock);
	atomic_fetch_add(&t->errors, 1);
}

static const char *fmt_name(enum hw_format f)
{
	return f == HW_FMT_EPT_AD ? "ept-ad" : f == HW_FMT_EPT ? "ept" : "npt";
}

static const char *mode_name(enum tdp_dirty_mode m)
{
	return m == TDP_DIRTY_WP ? "wp" : m == TDP_DIRTY_DBIT ? "dbit" : "pml";
}

static const char *size_name(int level)
{
	return level == 1 ? "4k" : level == 2 ? "2m" : "1g";
}

static const char *variant_name(u64 flags)
{
	if (flags & TDP_LOG_INITIALLY_SET)
		return "manual-initset";
	if (flags & TDP_LOG_DEFER_ARM)
		return "chunked";
	return flags & TDP_LOG_MANUAL_PROTECT ? "manual" : "get";
}

static bool test_bit_le(const u64 *b, u64 i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

/* ---- hardware model callbacks ---- */

static void reload_root(struct test *t, int id)
{
	struct vstate *vs = &t->vs[id];
	struct tdp_mmu_root *root = tdp_mmu_get_root(&t->mmu, LOG_AS);

	if (!root) {
		fail(t, "vcpu %d: tdp_mmu_get_root failed", id);
		return;
	}
	/* Load the new root first, then drop the old one: its last put may
	 * free tables and flush, and this vCPU must no longer use them. */
	hw_vcpu_set_root(&t->hw.vcpus[id], tdp_mmu_root_hpa(root));
	if (vs->root)
		tdp_mmu_put_root(&t->mmu, vs->root);
	vs->root = root;
}

static bool on_root_ok(struct hw_vcpu *v, void *ctx)
{
	struct test *t = ctx;

	return tdp_mmu_root_is_valid(t->vs[v->id].root);
}

static void on_reload(struct hw_vcpu *v, void *ctx)
{
	reload_root(ctx, v->id);
}

static int on_fault(struct hw_vcpu *v, const struct hw_fault *f, void *ctx)
{
	struct test *t = ctx;
	bool present = t->c.hwfmt == HW_FMT_NPT
			       ? (f->exit_info & HW_PFERR_P)
			       : (f->exit_info & (HW_EPT_VIOL_READABLE | HW_EPT_VIOL_WRITABLE |
						  HW_EPT_VIOL_EXECUTABLE));
	u64 flags = (f->write ? TDP_FAULT_WRITE : 0) | (present ? TDP_FAULT_PRESENT : 0);

	switch (tdp_mmu_page_fault(&t->mmu, t->vs[v->id].root, f->gpa, flags)) {
	case TDP_FAULT_FIXED:
	case TDP_FAULT_SPURIOUS:
		return 0;
	case TDP_FAULT_RETRY:
		reload_root(t, v->id);
		return 0;
	case TDP_FAULT_NOMEM:
		sched_yield();
		return 0;
	case TDP_FAULT_NO_SLOT:
		fail(t, "fault at gpa %#" PRIx64 ": no slot", f->gpa);
		return -ENOENT;
	case TDP_FAULT_ACCESS:
		fail(t, "fault at gpa %#" PRIx64 " write=%d: access refused", f->gpa, f->write);
		return -EACCES;
	case TDP_FAULT_TRACKED:
		fail(t, "fault at gpa %#" PRIx64 ": write-tracked, but nothing tracks here",
		     f->gpa);
		return -EACCES;
	}
	fail(t, "fault at gpa %#" PRIx64 ": unknown result", f->gpa);
	return -EINVAL;
}

static int drain(struct hw_vcpu *v, const u64 *buf, u16 index, void *ctx)
{
	struct test *t = ctx;
	u16 idx = index;
	u32 first = index >= HW_PML_ENTRIES ? 0 : index + 1u;

	(void)v;
	for (u32 i = first; i < HW_PML_ENTRIES; i++) {
		gfn_t gfn = gpa_to_gfn(buf[i]);

		if (gfn >= t->ubase && gfn < t->ubase + t->unpages)
			atomic_fetch_add(&t->pml_unlogged, 1);
	}
	u32 n = tdp_mmu_pml_drain(&t->mmu, LOG_AS, buf, &idx);
	if (n != HW_PML_ENTRIES - first)
		fail(t, "pml drain consumed %u entries, buffer had %u", n, HW_PML_ENTRIES - first);
	if (idx != HW_PML_ENTRIES - 1)
		fail(t, "pml drain left index %u", idx);
	return 0;
}

static void on_store(struct hw_vcpu *v, gpa_t gpa, hpa_t hpa, u64 value, void *ctx)
{
	struct test *t = ctx;
	gfn_t gfn = gpa_to_gfn(gpa);
	hpa_t want;

	(void)v;
	(void)value;
	if (gfn >= t->base && gfn < t->base + t->npages)
		want = ((t->base_hfn + (gfn - t->base)) << PAGE_SHIFT) | (gpa & ~PAGE_MASK);
	else if (gfn >= t->ubase && gfn < t->ubase + t->unpages)
		want = ((t->ubase_hfn + (gfn - t->ubase)) << PAGE_SHIFT) | (gpa & ~PAGE_MASK);
	else
		want = ~0ull;
	if (hpa != want && atomic_fetch_add(&t->bad_translation, 1) == 0)
		fail(t, "gpa %#" PRIx64 " stored at hpa %#" PRIx64 ", slot maps %#" PRIx64, gpa,
		     hpa, want);
}

static void on_misconfig(struct hw_vcpu *v, const struct hw_fault *f, void *ctx)
{
	struct test *t = ctx;

	(void)v;
	fail(t, "misconfigured entry %#" PRIx64 " at level %d for gpa %#" PRIx64, f->entry,
	     f->level, f->gpa);
}

/* ---- writers ---- */

static gfn_t pick_gfn(struct test *t, struct vstate *vs, bool *logged)
{
	u64 r = rnd64(&vs->rng);

	*logged = true;
	if (r % 16 == 0) {
		*logged = false;
		return t->ubase + (r >> 8) % t->unpages;
	}
	if (r & 16)
		return vs->hot[(r >> 8) % HOT_PAGES];
	return t->base + (r >> 8) % t->npages;
}

static int write_one(struct test *t, int id, gfn_t gfn, bool logged)
{
	struct vstate *vs = &t->vs[id];
	struct hw_vcpu *v = &t->hw.vcpus[id];
	u64 r = rnd64(&vs->rng);
	bool tracking = atomic_load(&t->tracking);
	u64 stamp = atomic_load(&t->round);
	int ret;

	/* Now and then read a page first: a clean (D = 0) or read-only
	 * translation in the TLB that a later write must not trust. */
	if (r % 8 == 0) {
		gfn_t g = t->base + (r >> 8) % t->npages;

		ret = hw_access(v, gfn_to_gpa(g) | (r & 0xff8), HW_READ, 0);
		if (ret) {
			fail(t, "vcpu %d read of gfn %#" PRIx64 ": error %d", id, g, ret);
			return ret;
		}
	}
	ret = hw_access(v, gfn_to_gpa(gfn) | ((r >> 16) & 0xff8), HW_WRITE, stamp);
	if (ret) {
		fail(t, "vcpu %d write of gfn %#" PRIx64 ": error %d", id, gfn, ret);
		return ret;
	}
	if (logged && tracking)
		atomic_fetch_or(&t->w_rounds[gfn - t->base], 1ull << (stamp % 64));
	atomic_store(&vs->done_round, stamp);
	atomic_fetch_add(&vs->nwrites, 1);
	return 0;
}

#if !MODEL_THREADED
/* One round's worth of writes: the hot pages, then random ones. */
static int write_round(struct test *t, int id)
{
	struct vstate *vs = &t->vs[id];
	bool logged;
	int ret;

	for (int i = 0; i < HOT_PAGES; i++) {
		ret = write_one(t, id, vs->hot[i], true);
		if (ret)
			return ret;
	}
	for (int i = 0; i < t->c.writes_per_round; i++) {
		gfn_t gfn = pick_gfn(t, vs, &logged);

		ret = write_one(t, id, gfn, logged);
		if (ret)
			return ret;
	}
	return 0;
}
#endif

#if MODEL_THREADED
struct writer_arg {
	struct test *t;
	int id;
};

static void *writer_main(void *p)
{
	struct writer_arg *a = p;
	struct test *t = a->t;
	struct vstate *vs = &t->vs[a->id];
	u64 budget_round = 0, budget = 0;
	bool logged;

	while (!atomic_load(&t->stop)) {
		unsigned int g = atomic_load(&t->pause_req);

		if (g != atomic_load(&vs->acked_pause)) {
			atomic_store(&vs->acked_pause, g);
			while (atomic_load(&t->pause_rel) < g && !atomic_load(&t->stop))
				usleep(20);
			/* A write of every hot page per parked round keeps the
			 * translations that a dropped flush would leave stale. */
			for (int i = 0; i < HOT_PAGES && !atomic_load(&t->stop); i++)
				if (write_one(t, a->id, vs->hot[i], true))
					return NULL;
			continue;
		}
		/* A budget of writes per round, so that a slow harvest (TSan)
		 * does not drown in writes; the harvester waits for it. */
		u64 r = atomic_load(&t->round);
		if (r != budget_round) {
			budget_round = r;
			budget = 0;
		}
		if (budget >= (u64)t->c.writes_per_round && !atomic_load(&t->unthrottled)) {
			atomic_store(&vs->budget_done, r);
			/* Sleep, not spin: the harvester needs the cores. */
			usleep(20);
			continue;
		}
		budget++;
		gfn_t gfn = pick_gfn(t, vs, &logged);

		if (write_one(t, a->id, gfn, logged))
			return NULL;
		if (atomic_load(&t->unthrottled))
			sched_yield();
	}
	return NULL;
}

static struct writer_arg writer_args[MAX_VCPUS];

static void start_writers(struct test *t)
{
	atomic_store(&t->stop, false);
	for (int i = 0; i < t->c.nr_vcpus; i++) {
		writer_args[i] = (struct writer_arg){ t, i };
		atomic_store(&t->vs[i].acked_pause, atomic_load(&t->pause_req));
		pthread_create(&t->vs[i].thr, NULL, writer_main, &writer_args[i]);
	}
}

static void stop_writers(struct test *t)
{
	atomic_store(&t->stop, true);
	for (int i = 0; i < t->c.nr_vcpus; i++)
		pthread_join(t->vs[i].thr, NULL);
}

static u64 total_writes(struct test *t)
{
	u64 n = 0;

	for (int i = 0; i < t->c.nr_vcpus; i++)
		n += atomic_load(&t->vs[i].nwrites);
	return n;
}

/* Let the writers make progress (not time: a number of completed writes). */
static void wait_writes(struct test *t, u64 n)
{
	u64 start = total_writes(t);

	while (total_writes(t) - start < n && !atomic_load(&t->errors))
		sched_yield();
}

/* Wait until every writer has written its budget for the current round. */
static void wait_budgets(struct test *t)
{
	u64 r = atomic_load(&t->round);

	for (int i = 0; i < t->c.nr_vcpus; i++)
		while (atomic_load(&t->vs[i].budget_done) != r && !atomic_load(&t->errors))
			sched_yield();
}

static void park_writers(struct test *t)
{
	unsigned int g = atomic_load(&t->pause_req) + 1;

	atomic_store(&t->pause_req, g);
	for (int i = 0; i < t->c.nr_vcpus; i++)
		while (atomic_load(&t->vs[i].acked_pause) != g && !atomic_load(&t->errors))
			sched_yield();
}

/* Parked: acknowledged the latest pause request, which is not released. */
static bool writer_parked(struct test *t, int i)
{
	unsigned int req = atomic_load(&t->pause_req);

	return atomic_load(&t->vs[i].acked_pause) == req && atomic_load(&t->pause_rel) < req;
}

static void unpark_writers(struct test *t)
{
	atomic_store(&t->pause_rel, atomic_load(&t->pause_req));
}
#endif

/* ---- harvests ---- */

/* Debugging aid (PT_MODEL_DEBUG=1): every root's entries for @gfn. */
static void dump_page(struct test *t, gfn_t gfn, u64 k, u64 m)
{
	fprintf(stderr, "lost: gfn %#" PRIx64 " harvest %" PRIu64 " stamps %#" PRIx64
		" prev_sync %d bitmap now %d\n",
		gfn, k, m, t->prev_sync, test_bit_le(t->bitmap, gfn - t->base));
	for (int r = 0; r < TDP_MMU_MAX_ROOTS; r++) {
		struct tdp_mmu_root *root = &t->mmu.roots[r];

		if (!root->in_use)
			continue;
		fprintf(stderr, "  root %d valid %d refs %u:", r, root->valid, root->refcount);
		u64 *table = root->pt;
		for (int level = 4; level >= 1 && table; level--) {
			u64 e = table[hw_index(gfn_to_gpa(gfn), level)];

			fprintf(stderr, " L%d=%#" PRIx64, level, e);
			if (level == 1 || (e & HW_EPT_PS) || !e)
				break;
			table = model_hpa_to_table(e & HW_ADDR_MASK);
		}
		fprintf(stderr, "\n");
	}
	for (int i = 0; i < t->c.nr_vcpus; i++)
		fprintf(stderr, "  vcpu %d root hpa %#" PRIx64 "\n", i,
			(u64)atomic_load(&t->hw.vcpus[i].root_hpa));
}

static void flush_if(struct test *t, bool flush, bool last)
{
	if (!flush)
		return;
	if (last && t->c.drop_flush_at && (int)t->harvest_no == t->c.drop_flush_at)
		atomic_store(&t->hw.drop_flushes, 1);
	t->flush_calls++;
	tdp_mmu_flush_remote_tlbs(&t->mmu);
}

/* A random chunk [first, first + n) of the slot: 64-aligned, 1..16 words. */
static u64 chunk_len(struct test *t, u64 first)
{
	u64 n = 64 * (1 + rnd64(&t->rng) % 16);

	return first + n >= t->npages ? t->npages - first : n;
}

/* The chunked harvest: GET and CLEAR per range, one flush at the end. */
static int harvest_chunked(struct test *t, bool *flush)
{
	for (u64 first = 0; first < t->npages;) {
		u64 n = chunk_len(t, first);
		bool f1 = false, f2 = false;
		int ret = tdp_mmu_get_dirty_log_range(&t->mmu, t->slot, first, n,
						      t->b_cur + first / 64, &f1);

		if (!ret)
			ret = tdp_mmu_clear_dirty_log(&t->mmu, t->slot, first, n,
						      t->b_cur + first / 64, &f2);
		if (ret) {
			fail(t, "chunked harvest (%" PRIu64 ", %" PRIu64 "): %d", first, n, ret);
			return ret;
		}
		*flush |= f1 || f2;
		first += n;
	}
	return 0;
}

/* Harvest number k into t->b_cur (R is already k + 1 and every write stamped
 * <= k has completed), then check it. @sync: no writer ran since harvest k-1
 * ended, none runs now. */
static void harvest_and_check(struct test *t, bool sync)
{
	u64 k = t->harvest_no;
	bool manual = t->c.log_flags & TDP_LOG_MANUAL_PROTECT;
	bool flush = false;
	int ret;

	/* Accessed tracking between harvests: clearing A races the vCPUs'
	 * A/D updates and must never take a D bit with it. */
	if (t->c.age_one_in && rnd64(&t->rng) % t->c.age_one_in == 0) {
		bool f = false;

		tdp_mmu_age_range(&t->mmu, LOG_AS, t->base, t->npages, &f);
		flush_if(t, f, false);
		t->agings++;
	}
	/* Now and then replace the roots under the running vCPUs (as a memslot
	 * change does): they reload at their next entry, the old root goes at
	 * its last put, the new one fills by faults. */
	if (t->c.invalidate_one_in && rnd64(&t->rng) % t->c.invalidate_one_in == 0) {
		tdp_mmu_invalidate_roots(&t->mmu, LOG_AS);
		for (int i = 0; i < t->c.nr_vcpus; i++)
			hw_vcpu_kick(&t->hw.vcpus[i]);
		t->invalidations++;
	}
	if (t->c.mode == TDP_DIRTY_PML)
		for (int i = 0; i < t->c.nr_vcpus; i++)
			hw_pml_drain(&t->hw.vcpus[i], drain, t);
	if (t->c.log_flags & TDP_LOG_DEFER_ARM) {
		if (harvest_chunked(t, &flush))
			return;
		flush_if(t, flush, true);
		goto check;
	}
	ret = tdp_mmu_get_dirty_log(&t->mmu, t->slot, t->b_cur, t->words, &flush);
	if (ret) {
		fail(t, "get_dirty_log: %d", ret);
		return;
	}
	if (!manual) {
		flush_if(t, flush, true);
	} else {
		/* GET's flush (D-bit sync) may wait until after CLEAR: both come
		 * before the bits are handed out, and one flush covers both. */
		/* KVM_CLEAR_DIRTY_LOG over random 64-page-aligned chunks. */
		for (u64 first = 0; first < t->npages;) {
			u64 n = 64 * (1 + rnd64(&t->rng) % 16);
			bool f = false;

			if (first + n >= t->npages)
				n = t->npages - first;
			ret = tdp_mmu_clear_dirty_log(&t->mmu, t->slot, first, n,
						      t->b_cur + first / 64, &f);
			if (ret) {
				fail(t, "clear_dirty_log(%" PRIu64 ", %" PRIu64 "): %d", first, n,
				     ret);
				return;
			}
			flush |= f;
			first += n;
		}
		flush_if(t, flush, true);
	}
check:
	t->harvests++;

	/* The check. */
	bool strict = sync && t->prev_sync;
	bool all_set_ok = (t->c.log_flags & TDP_LOG_INITIALLY_SET) && k == t->cycle_first;
	u64 bk = 1ull << (k % 64), bnext = 1ull << ((k + 1) % 64);

	for (u64 i = 0; i < t->npages; i++) {
		u64 m = atomic_load(&t->w_rounds[i]);
		bool in_k = test_bit_le(t->b_cur, i);
		bool in_prev = !strict && test_bit_le(t->b_prev, i);

		if (m & bk) {
			if (!in_k && !in_prev) {
				if (!t->lost && getenv("PT_MODEL_DEBUG"))
					dump_page(t, t->base + i, k, m);
				if (!t->lost) {
					t->lost_gfn = t->base + i;
					t->lost_round = k;
				}
				t->lost++;
			}
			atomic_fetch_and(&t->w_rounds[i], ~bk);
		}
		if (m & ~(bk | bnext))
			fail(t, "page %#" PRIx64 " has unchecked stamps %#" PRIx64 " at harvest %" PRIu64,
			     t->base + i, m, k);
		if (in_k && !(m & (bk | bnext)) && !all_set_ok) {
			if (getenv("PT_MODEL_DEBUG") && !t->extra)
				fprintf(stderr, "extra: page %#" PRIx64 " harvest %" PRIu64 " m %#" PRIx64 " prev %d\n",
					t->base + i, k, m, test_bit_le(t->b_prev, i));
			t->extra++;
		}
	}
	u64 *tmp = t->b_prev;
	t->b_prev = t->b_cur;
	t->b_cur = tmp;
	t->prev_sync = sync;
}

/* Start harvest k: bump the round, wait for writes stamped <= k. */
static void begin_harvest(struct test *t)
{
	u64 k = ++t->harvest_no;

	atomic_store(&t->round, k + 1);
#if MODEL_THREADED
	if (!atomic_load(&t->stop))
		for (int i = 0; i < t->c.nr_vcpus; i++)
			while (atomic_load(&t->vs[i].done_round) <= k && !writer_parked(t, i) &&
			       !atomic_load(&t->errors))
				sched_yield();
#endif
}

/* ---- one group ---- */

static void setup_slots(struct test *t)
{
	struct tdp_map_attrs a = {
		.writable = true,
		.executable = true,
		.memtype = TDP_MEMTYPE_RAM,
		.max_level = t->c.size_level,
	};
	u64 huge = hw_level_pages(t->c.size_level);

	/* Logged slot at 4 GiB: 4K: 4096 pages; 2M: 16 huge pages plus a 4 KiB
	 * tail; 1G: one 1 GiB page, then 2 MiB pages, then a 4 KiB tail. */
	/* Half the 4K/2M groups start the slot 5 pages past a 64-page (and
	 * 2 MiB) boundary: bitmap words then straddle page tables. */
	u64 skew = t->c.size_level < 3 && (t->c.seed & 2) ? 5 : 0;

	t->base = (1ull << 20) + skew;
	t->base_hfn = GUEST_HFN_BASE + (1ull << 18) + skew;
	if (t->c.size_level == 1)
		t->npages = 4096;
	else if (t->c.size_level == 2)
		t->npages = 16 * huge + 7;
	else
		t->npages = huge + 4 * 512 + 7;
	t->slot = tdp_mmu_set_memslot(&t->mmu, LOG_AS, t->base, t->npages, t->base_hfn, &a, 0);
	/* Unlogged slot at 16 MiB, 4 KiB and 2 MiB pages. */
	a.max_level = 2;
	t->ubase = 4096;
	t->unpages = 1024;
	t->ubase_hfn = GUEST_HFN_BASE + 4096;
	t->uslot = tdp_mmu_set_memslot(&t->mmu, LOG_AS, t->ubase, t->unpages, t->ubase_hfn, &a, 0);
	if (t->slot < 0 || t->uslot < 0)
		fail(t, "set_memslot: %d %d", t->slot, t->uslot);
}

static void run_cycle(struct test *t, u64 baseline)
{
	bool flush = false;
	int ret;

#if MODEL_THREADED
	/* Logging starts under running vCPUs, as for a live migration. Their
	 * writes count (are stamped) from the moment enable and its flush are
	 * done; the ones before or during it need not be logged. */
	atomic_store(&t->unthrottled, true);
	start_writers(t);
	wait_writes(t, 64);
#endif
	if (t->c.nomem)
		atomic_store(&t->plat.fail_after, (long)(rnd64(&t->rng) % 4));
	ret = tdp_mmu_enable_dirty_logging(&t->mmu, t->slot, t->c.mode, t->c.log_flags, t->bitmap,
					   &flush);
	/* Chunked: arm the slot range by range (writers run meanwhile), one
	 * flush after the last chunk. */
	for (u64 first = 0; !ret && (t->c.log_flags & TDP_LOG_DEFER_ARM) && first < t->npages;) {
		u64 n = chunk_len(t, first);
		bool f = false;

		ret = tdp_mmu_arm_dirty_log_range(&t->mmu, t->slot, first, n, &f);
		flush |= f;
		first += n;
	}
	atomic_store(&t->plat.fail_after, -1);
	if (ret) {
		fail(t, "enable_dirty_logging: %d", ret);
#if MODEL_THREADED
		stop_writers(t);
#endif
		return;
	}
	flush_if(t, flush, false);
	memset(t->b_prev, 0, t->words * 8);
	t->prev_sync = true;
	t->cycle_first = t->harvest_no + 1;
	atomic_store(&t->round, t->cycle_first);
	atomic_store(&t->tracking, true);

#if MODEL_THREADED
	atomic_store(&t->unthrottled, false);
	for (int r = 0; r < t->c.rounds && !atomic_load(&t->errors); r++) {
		bool sync = t->c.sync_one_in && rnd64(&t->rng) % t->c.sync_one_in == 0;

		wait_budgets(t);
		if (sync)
			park_writers(t);
		begin_harvest(t);
		harvest_and_check(t, sync);
		if (sync)
			unpark_writers(t);
	}
	stop_writers(t);
	unpark_writers(t);
	/* Final harvest with the writers stopped: a write stamped with the last
	 * round may still have run during the previous harvest, so the strict
	 * rule applies only if that one was also parked. */
	begin_harvest(t);
	harvest_and_check(t, true);
#else
	for (int r = 0; r < t->c.rounds && !atomic_load(&t->errors); r++) {
		/* Interleave the vCPUs' writes in random slices. */
		int left[MAX_VCPUS];
		int total = 0;

		for (int i = 0; i < t->c.nr_vcpus; i++) {
			for (int h = 0; h < HOT_PAGES; h++)
				if (write_one(t, i, t->vs[i].hot[h], true))
					return;
			left[i] = t->c.writes_per_round;
			total += left[i];
		}
		while (total > 0) {
			int i = rnd64(&t->rng) % t->c.nr_vcpus;
			int n = 1 + rnd64(&t->rng) % 8;
			bool logged;

			for (; n && left[i]; n--, left[i]--, total--) {
				gfn_t gfn = pick_gfn(t, &t->vs[i], &logged);

				if (write_one(t, i, gfn, logged))
					return;
			}
		}
		begin_harvest(t);
		harvest_and_check(t, true);
	}
	begin_harvest(t);
	harvest_and_check(t, true);
#endif
	atomic_store(&t->tracking, false);

	/* Stop logging; in the threaded form with writers running meanwhile
	 * (their tables are put back together under them). */
#if MODEL_THREADED
	atomic_store(&t->unthrottled, true);
	start_writers(t);
	wait_writes(t, 64);
#else
	for (int i = 0; i < t->c.nr_vcpus; i++)
		write_round(t, i);
#endif
	/* Entries logged before logging stops would otherwise surface as
	 * (harmless) extra bits in the next cycle's first harvest. */
	if (t->c.mode == TDP_DIRTY_PML)
		for (int i = 0; i < t->c.nr_vcpus; i++)
			hw_pml_drain(&t->hw.vcpus[i], drain, t);
	flush = false;
	if (t->c.log_flags & TDP_LOG_DEFER_ARM) {
		ret = tdp_mmu_disable_dirty_logging_deferred(&t->mmu, t->slot, &flush);
		for (u64 first = 0; !ret && first < t->npages;) {
			u64 n = chunk_len(t, first);
			bool f = false;

			ret = tdp_mmu_collapse_range(&t->mmu, t->slot, first, n, &f);
			flush |= f;
			first += n;
		}
	} else {
		ret = tdp_mmu_disable_dirty_logging(&t->mmu, t->slot, &flush);
	}
	if (ret)
		fail(t, "disable_dirty_logging: %d", ret);
	flush_if(t, flush, false);
#if MODEL_THREADED
	wait_writes(t, 256);
	stop_writers(t);
	atomic_store(&t->unthrottled, false);
#else
	for (int i = 0; i < t->c.nr_vcpus; i++)
		write_round(t, i);
#endif
	/* After a root change the new root holds only what faults mapped:
	 * map everything again (huge pages where possible) to compare. */
	if (t->invalidations) {
		bool f = false;
		int r1 = tdp_mmu_map_range(&t->mmu, LOG_AS, t->base, t->npages, &f);
		int r2 = tdp_mmu_map_range(&t->mmu, LOG_AS, t->ubase, t->unpages, &f);

		if (r1 || r2)
			fail(t, "map_range after logging: %d %d", r1, r2);
		flush_if(t, f, false);
	}
	long pages = atomic_load(&t->plat.pages);
	if ((u64)pages != baseline)
		fail(t, "%ld page-table pages after logging stopped, %" PRIu64 " before it started",
		     pages, baseline);
}

static bool run_group(const struct cfg *c, const char *prefix, bool expect_loss)
{
	struct test *t = calloc(1, sizeof(*t));
	struct spte_format f;
	struct hw_handlers h = {
		.fault = on_fault,
		.pml_full = drain,
		.store = on_store,
		.misconfig = on_misconfig,
		.root_ok = on_root_ok,
		.reload = on_reload,
	};
	char name[160];
	bool ok;
	clock_t t0 = clock();

	t->c = *c;
	t->rng = c->seed * 0x9E3779B97F4A7C15ull + 12345;
	pthread_mutex_init(&t->err_lock, NULL);
	snprintf(name, sizeof(name), "%s.%s.%s.%s.%s.s%" PRIu64, prefix, fmt_name(c->hwfmt),
		 mode_name(c->mode), size_name(c->size_level), variant_name(c->log_flags), c->seed);

	h.ctx = t;
	if (hw_machine_init(&t->hw, c->hwfmt, c->nr_vcpus, model_hpa_to_table, &h, c->seed)) {
		printf("not ok %s hw_machine_init\n", name);
		return false;
	}
	t->hw.pml_keep_offset = c->keep_offset;
	t->hw.spurious_fault_one_in = 4;
	for (int i = 0; i < c->nr_vcpus; i++)
		t->hw.vcpus[i].pml_enabled = c->mode == TDP_DIRTY_PML;
	model_platform_init(&t->plat, &t->hw);
	if (c->hwfmt == HW_FMT_NPT)
		spte_format_init_npt(&f, true);
	else
		spte_format_init_ept(&f, c->hwfmt == HW_FMT_EPT_AD, true);
	struct mmu_platform ops = model_platform_ops(&t->plat);
	if (tdp_mmu_init(&t->mmu, &f, &ops)) {
		printf("not ok %s tdp_mmu_init\n", name);
		return false;
	}
	/* Small batches: many yields and restarts of long walks (fewer on the
	 * 1 GiB slot, whose passes visit 263k entries per harvest). */
	t->mmu.yield_uncontended = true;
	if (c->yield_every)
		t->mmu.yield_every = c->yield_every;
	else if (c->size_level == 3)
		t->mmu.yield_every = 256 + rnd64(&t->rng) % 4096;
	else
		t->mmu.yield_every = 1 + rnd64(&t->rng) % 64;

	setup_slots(t);
	t->words = tdp_dirty_bitmap_words(t->npages);
	t->bitmap = calloc(t->words, 8);
	t->b_cur = calloc(t->words, 8);
	t->b_prev = calloc(t->words, 8);
	t->w_rounds = calloc(t->npages, sizeof(*t->w_rounds));
	for (int i = 0; i < c->nr_vcpus; i++) {
		t->vs[i].rng = t->rng ^ (0xD1B54A32D192ED03ull * (i + 1));
		for (int j = 0; j < HOT_PAGES; j++)
			t->vs[i].hot[j] = t->base + rnd64(&t->vs[i].rng) % t->npages;
	}

	bool flush = false;
	if (!t->errors) {
		int r1 = tdp_mmu_map_range(&t->mmu, LOG_AS, t->base, t->npages, &flush);
		int r2 = tdp_mmu_map_range(&t->mmu, LOG_AS, t->ubase, t->unpages, &flush);
		if (r1 || r2)
			fail(t, "map_range: %d %d", r1, r2);
	}
	for (int i = 0; i < c->nr_vcpus && !t->errors; i++)
		reload_root(t, i);
	u64 baseline = atomic_load(&t->plat.pages);
	struct tdp_mmu_stats st0;
	tdp_mmu_get_stats(&t->mmu, &st0);
	if (!t->errors && st0.leaves[c->size_level] == 0)
		fail(t, "initial mapping has no level-%d leaf", c->size_level);

	for (int cy = 0; cy < c->cycles && !t->errors; cy++)
		run_cycle(t, baseline);

	struct tdp_mmu_stats st;
	tdp_mmu_get_stats(&t->mmu, &st);
	if (c->mode == TDP_DIRTY_PML && st.pml_dropped < (u64)atomic_load(&t->pml_unlogged))
		fail(t, "pml: %ld entries outside the logged slot, mmu dropped %" PRIu64,
		     atomic_load(&t->pml_unlogged), st.pml_dropped);

	/* Roots: every vCPU gives its reference back; then tear-down frees
	 * every table. */
	for (int i = 0; i < c->nr_vcpus; i++)
		if (t->vs[i].root)
			tdp_mmu_put_root(&t->mmu, t->vs[i].root);
	for (int i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		struct tdp_mmu_root *r = &t->mmu.roots[i];
		u32 refs = __atomic_load_n(&r->refcount, __ATOMIC_RELAXED);

		if (r->in_use && r->valid && refs != 1)
			fail(t, "root %d: %u references after every vCPU put it", i, refs);
	}
	int dret = tdp_mmu_destroy(&t->mmu);
	if (dret)
		fail(t, "tdp_mmu_destroy: %d", dret);
	if (atomic_load(&t->plat.pages) != 0)
		fail(t, "%ld page-table pages leaked", atomic_load(&t->plat.pages));

	u64 w = 0, faults = 0, pmlfull = 0, hits = 0, sp = 0, pde = 0;
	for (int i = 0; i < c->nr_vcpus; i++) {
		w += t->vs[i].nwrites;
		faults += t->hw.vcpus[i].n_fault;
		pmlfull += t->hw.vcpus[i].n_pml_full;
		hits += t->hw.vcpus[i].n_tlb_hit;
		sp += t->hw.vcpus[i].n_spurious_fault;
		pde += t->hw.vcpus[i].n_pde_hit;
	}
	double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
	char stats[320];
	snprintf(stats, sizeof(stats),
		 "harvests=%" PRIu64 " writes=%" PRIu64 " tlb_hits=%" PRIu64 " pde_hits=%" PRIu64
		 " faults=%" PRIu64
		 " tlb_faults=%" PRIu64 " pml_full=%" PRIu64 " splits=%" PRIu64
		 " collapses=%" PRIu64 " lost=%" PRIu64 " extra=%" PRIu64
		 " flushes_dropped=%d invalidations=%" PRIu64 " agings=%" PRIu64 " cpu=%.2fs",
		 t->harvests, w, hits, pde, faults, sp, pmlfull, st.splits, st.collapses, t->lost,
		 t->extra, atomic_load(&t->hw.flushes_dropped), t->invalidations, t->agings, secs);

	if (expect_loss) {
		/* The checker must have caught the page the dropped flush lost. */
		ok = t->lost > 0 && atomic_load(&t->hw.flushes_dropped) == 1;
		if (ok)
			printf("ok %s caught lost gfn %#" PRIx64 " in harvest %" PRIu64 " %s\n", name,
			       t->lost_gfn, t->lost_round, stats);
		else
			printf("not ok %s dropped flush not detected %s%s%s\n", name, stats,
			       t->err[0] ? " first error: " : "", t->err);
	} else {
		ok = !t->errors && !t->lost;
		if (ok)
			printf("ok %s %s\n", name, stats);
		else if (t->lost)
			printf("not ok %s LOST %" PRIu64 " writes, first gfn %#" PRIx64
			       " in harvest %" PRIu64 " %s %s\n",
			       name, t->lost, t->lost_gfn, t->lost_round, stats, t->err);
		else
			printf("not ok %s %s %s\n", name, t->err, stats);
	}
	fflush(stdout);
	hw_machine_destroy(&t->hw);
	model_platform_fini(&t->plat);
	free(t->bitmap);
	free(t->b_cur);
	free(t->b_prev);
	free((void *)t->w_rounds);
	pthread_mutex_destroy(&t->err_lock);
	free(t);
	return ok;
}

/* ---- the list of groups ---- */

struct fmt_mode {
	enum hw_format fmt;
	enum tdp_dirty_mode mode;
};

static const struct fmt_mode fmt_modes[] = {
	{ HW_FMT_EPT_AD, TDP_DIRTY_WP },  { HW_FMT_EPT_AD, TDP_DIRTY_DBIT },
	{ HW_FMT_EPT_AD, TDP_DIRTY_PML }, { HW_FMT_EPT, TDP_DIRTY_WP },
	{ HW_FMT_NPT, TDP_DIRTY_WP },     { HW_FMT_NPT, TDP_DIRTY_DBIT },
};

/* "chunked" (DEFER_ARM): enable, harvest and disable in random chunks with
 * the range calls, as the hypervisor's management does so that no single
 * step walks a whole slot; writers run between chunks (threaded form). */
static const u64 variants[] = {
	0,
	TDP_LOG_MANUAL_PROTECT,
	TDP_LOG_MANUAL_PROTECT | TDP_LOG_INITIALLY_SET,
	TDP_LOG_MANUAL_PROTECT | TDP_LOG_DEFER_ARM,
};

int format_tests(void); /* format_test.c (sequential build only) */

static bool invalidate_off(void)
{
	const char *e = getenv("PT_MODEL_INVALIDATE");

	return e && !strcmp(e, "0");
}

int main(int argc, char **argv)
{
	int seeds = 1, failed = 0;
	const char *env = getenv("PT_MODEL_SEEDS");
	u64 seed0 = 1;

	if (env)
		seeds = atoi(env);
	if (argc > 1)
		seed0 = strtoull(argv[1], NULL, 0);
	setvbuf(stdout, NULL, _IOLBF, 0);
#if !MODEL_THREADED
	failed += format_tests();
#endif
	for (int s = 0; s < seeds; s++) {
		for (size_t fm = 0; fm < ARRAY_SIZE(fmt_modes); fm++) {
			for (int size = 1; size <= 3; size++) {
				for (size_t v = 0; v < ARRAY_SIZE(variants); v++) {
					u64 seed = seed0 + (u64)s * 1000 + fm * 100 + size * 10 + v;
					struct cfg c = {
						.hwfmt = fmt_modes[fm].fmt,
						.mode = fmt_modes[fm].mode,
						.size_level = size,
						.log_flags = variants[v],
						.seed = seed,
						.cycles = 2,
						.keep_offset = seed & 1,
#if MODEL_THREADED
						/* 2 and 4 vCPU threads, each with its TLB:
						 * as many as make bench's SMP guests. */
						.nr_vcpus = 2 + 2 * (int)(v % 2),
						.rounds = 12,
						.writes_per_round = 300,
						.sync_one_in = 3,
						/* Root replacement under running vCPUs during a
						 * harvest (lost writes before mmu/ f1852f9);
						 * PT_MODEL_INVALIDATE=0 turns it off. */
						.invalidate_one_in = invalidate_off() ? 0 : 6,
						.age_one_in = 3,
#else
						.invalidate_one_in = invalidate_off() ? 0 : 5,
						.age_one_in = 3,
						.nr_vcpus = 3,
						.rounds = 8,
						.writes_per_round = 200,
#endif
					};
					/* PML: enough distinct pages per round to fill
					 * the 512-entry buffer (PML-full exits). */
					if (c.mode == TDP_DIRTY_PML)
						c.writes_per_round *= 10;
					/* One group in three runs eager splitting out of
					 * memory: the write fault must split instead. */
					c.nomem = size > 1 && seed % 3 == 0;
					const char *only = getenv("PT_MODEL_ONLY");
					char nm[96];

					snprintf(nm, sizeof(nm), "%s.%s.%s.%s.s%" PRIu64,
						 fmt_name(c.hwfmt), mode_name(c.mode),
						 size_name(c.size_level), variant_name(c.log_flags),
						 c.seed);
					if (only && !strstr(nm, only))
						continue;
					failed += !run_group(&c, MODEL_THREADED ? "mt" : "seq", false);
				}
			}
		}
	}
#if MODEL_THREADED
	/* Negative, threaded: every round parks the writers (the strict rule),
	 * the last flush of harvest 3 is dropped. */
	for (size_t fm = 0; fm < ARRAY_SIZE(fmt_modes); fm += 2) {
		struct cfg c = {
			.hwfmt = fmt_modes[fm].fmt,
			.mode = fmt_modes[fm].mode,
			.size_level = 1,
			.seed = seed0 + 177 + fm,
			.cycles = 1,
			.nr_vcpus = 2,
			.rounds = 6,
			.writes_per_round = 50,
			.sync_one_in = 1,
			.drop_flush_at = 3,
			.yield_every = 1u << 30,
		};
		failed += !run_group(&c, "negative.mt.skip_flush", true);
	}
#else
	/* Negative: the harvester's last flush of harvest 3 is dropped. */
	for (size_t fm = 0; fm < ARRAY_SIZE(fmt_modes); fm++) {
		for (size_t v = 0; v < 2; v++) {
			struct cfg c = {
				.hwfmt = fmt_modes[fm].fmt,
				.mode = fmt_modes[fm].mode,
				.size_level = 1,
				.log_flags = variants[v],
				.seed = seed0 + 77 + fm,
				.cycles = 1,
				.nr_vcpus = 2,
				.rounds = 6,
				.writes_per_round = 50,
				.drop_flush_at = 3,
				/* No yields: a yield flushes what the pass changed so
				 * far, so the harvester's flush is the only one. */
				.yield_every = 1u << 30,
			};
			failed += !run_group(&c, "negative.skip_flush", true);
		}
	}
#endif
	return failed ? 1 : 0;
}
