// SPDX-License-Identifier: MIT
/*
 * Concurrency test of mmu/ (run under ThreadSanitizer): vCPU threads write
 * random pages of a logged slot (simulated CPU: walk the tables without any
 * lock, write if W is set, set A/D atomically in D-bit mode, else take the
 * fault), while a harvester thread runs get-dirty-log rounds and now and then
 * zaps ranges (freeing tables under the vCPUs' feet, as a memslot change
 * would).
 *
 * The flush waits for every vCPU that is "in the guest" to finish its current
 * access, as an IPI would; a vCPU inside the fault path is in the hypervisor
 * and does not need to answer (it re-reads the tables before its next access).
 *
 * What must hold is stated per write, from when it started, not from when
 * its thread got round to flagging it (a thread may be preempted for several
 * harvests between its store and the flag). A phase counter is odd while
 * harvest h runs (2h + 1) and even once it has returned, flush included
 * (2h + 2). A write reads it before its first walk; when it completes, its
 * page keeps the phase of its latest-started write. Harvest h takes the
 * flags of writes completed before it started. A write that started in phase
 * g is in the bitmap of harvest g / 2 or a later one, up to h: one that
 * started while harvest h' ran (g odd) may be in B_h', one that started after
 * it returned (g even) can only be in B_h'+1 onwards.
 *
 * Before those runs, deterministic cases of one interleaving: a root's last
 * reference dropped while another thread holds mmu_lock (test_last_ref_vs_root_set).
 */
#include <inttypes.h>
#include <pthread.h>

#include "tests/mmu/test_platform.h"
#include "mmu/tdp_mmu_internal.h"

#define AS     0
#define NVCPU  2
#define BASE   (0x100000ull + 37) /* not 64-aligned: bitmap words span two tables */
#define NPAGES 4096
#define WORDS  (NPAGES / 64)
#define ROUNDS 60

struct vcpu {
	pthread_t thread;
	int id;
	u64 ack_gen; /* flush generation seen at the start of the current access */
	int in_hv;   /* in the fault path: no ack needed */
	int done;
	u64 writes, faults;
	u64 seed;
	struct tdp_mmu_root *root;
	/* PML (EPT A/D): this vCPU's log, drained by itself on "PML full" and
	 * when the harvester asks (drain_ack catches up with drain_req). */
	u64 pml[TDP_PML_ENTRIES];
	u16 pml_index;
	u64 drain_ack;
};

static struct test_plat tp;
static struct tdp_mmu mmu;
static struct spte_format fmt;
static struct vcpu vcpus[NVCPU];
static u64 flush_gen;
static int stop;
/* Harvest phase: 2h + 1 while harvest h runs, 2h + 2 after it returned. */
static u64 phase;
/* Per page: the phase of its latest-started write completed since the last
 * harvest took it (0: none). */
static u64 written[NPAGES];
/* Per page: the last harvest whose bitmap had it (0: none yet). */
static u64 last_reported[NPAGES];
static u64 bitmap[WORDS], b_cur[WORDS];
static enum tdp_dirty_mode mode;
static bool manual; /* GET + CLEAR (KVM_CLEAR_DIRTY_LOG) instead of GET re-arming */
static u64 drain_req;

static u64 rnd(u64 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void wait_vcpus(struct test_plat *p)
{
	u64 gen = __atomic_add_fetch(&flush_gen, 1, __ATOMIC_SEQ_CST);
	int i;

	(void)p;
	for (i = 0; i < NVCPU; i++) {
		struct vcpu *v = &vcpus[i];

		while (__atomic_load_n(&v->ack_gen, __ATOMIC_SEQ_CST) < gen &&
		       !__atomic_load_n(&v->in_hv, __ATOMIC_SEQ_CST) &&
		       !__atomic_load_n(&v->done, __ATOMIC_SEQ_CST))
			sched_yield();
	}
}

/* The leaf for @gfn, walked as the CPU does (no lock), or NULL. */
static u64 *hw_walk(struct vcpu *v, gfn_t gfn)
{
	u64 *pt = v->root->pt;
	int l;

	for (l = TDP_ROOT_LEVEL;; l--) {
		u64 *sptep = &pt[tdp_spte_index(gfn, l)];
		u64 spte = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);

		if (!spte_is_present(spte))
			return NULL;
		if (spte_is_leaf(&fmt, spte, l))
			return sptep;
		pt = (u64 *)(uintptr_t)spte_to_hpa(&fmt, spte);
	}
}

/* One guest write; true once it went through. */
static bool hw_write(struct vcpu *v, gfn_t gfn)
{
	u64 *p = hw_walk(v, gfn);
	u64 old = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;

	while (p && spte_is_writable(&fmt, old)) {
		u64 new = old | fmt.accessed_mask | fmt.dirty_mask;

		/* The CPU sets A/D atomically, and only through a writable entry;
		 * with PML it logs the GPA when it sets D (SDM 29.3.6). */
		if (new == old)
			return true;
		if (__atomic_compare_exchange_n(p, &old, new, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			/* (A full log was drained at the last exit.) */
			if (mode == TDP_DIRTY_PML && !(old & fmt.dirty_mask)) {
				v->pml[v->pml_index] = gfn_to_gpa(gfn);
				v->pml_index--; /* 0 - 1 wraps to 0xffff: full */
			}
			return true;
		}
	}
	return false;
}

static void *vcpu_main(void *arg)
{
	struct vcpu *v = arg;

	while (!__atomic_load_n(&stop, __ATOMIC_SEQ_CST)) {
		gfn_t i = rnd(&v->seed) % NPAGES;
		/* Read before the first walk: the write starts in this phase. */
		u64 g = __atomic_load_n(&phase, __ATOMIC_SEQ_CST), seen;
		enum tdp_fault_result r;

		for (;;) {
			u64 req;

			/* In the hypervisor (an exit): hand over the PML log when
			 * it is full (PML-full exit) or a harvest asked for it. */
			__atomic_store_n(&v->in_hv, 1, __ATOMIC_SEQ_CST);
			req = __atomic_load_n(&drain_req, __ATOMIC_SEQ_CST);
			if (req != v->drain_ack || v->pml_index >= TDP_PML_ENTRIES) {
				tdp_mmu_pml_drain(&mmu, AS, v->pml, &v->pml_index);
				__atomic_store_n(&v->drain_ack, req, __ATOMIC_SEQ_CST);
			}
			/* The root was replaced (memslot change): load the new one. */
			if (!tdp_mmu_root_is_valid(v->root)) {
				struct tdp_mmu_root *old = v->root;

				v->root = tdp_mmu_get_root(&mmu, AS);
				tdp_mmu_put_root(&mmu, old);
				if (!v->root) {
					test_fail("vcpu %d: no root", v->id);
					__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
					break;
				}
			}
			/* "VM entry": from here on this access must finish before
			 * any flush that started after this point returns. */
			__atomic_store_n(&v->in_hv, 0, __ATOMIC_SEQ_CST);
			__atomic_store_n(&v->ack_gen, __atomic_load_n(&flush_gen, __ATOMIC_SEQ_CST),
					 __ATOMIC_SEQ_CST);
			if (hw_write(v, BASE + i))
				break;
			__atomic_store_n(&v->in_hv, 1, __ATOMIC_SEQ_CST);
			r = tdp_mmu_page_fault(&mmu, v->root, gfn_to_gpa(BASE + i),
					       TDP_FAULT_WRITE);
			v->faults++;
			/* RETRY: the root went invalid; the loop top reloads it. */
			if (r != TDP_FAULT_FIXED && r != TDP_FAULT_SPURIOUS &&
			    r != TDP_FAULT_RETRY) {
				test_fail("vcpu %d: fault result %d", v->id, r);
				__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
				break;
			}
		}
		seen = __atomic_load_n(&written[i], __ATOMIC_SEQ_CST);
		while (seen < g && !__atomic_compare_exchange_n(&written[i], &seen, g, false,
								__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
			;
		v->writes++;
	}
	__atomic_store_n(&v->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Pages a harvest missed, shown with what is known of them, and followed up
 * by the next harvest (reported one round late, or still not). */
#define SHOWN_MAX 8
static struct {
	u64 page, g, h;
} shown[SHOWN_MAX];
static unsigned int nshown;

static void show_missed(u64 page, u64 g, u64 h)
{
	bool pending = (__atomic_load_n(&bitmap[page / 64], __ATOMIC_SEQ_CST) >> (page % 64)) & 1;

	if (nshown == SHOWN_MAX)
		return;
	shown[nshown].page = page;
	shown[nshown].g = g;
	shown[nshown].h = h;
	nshown++;
	fprintf(stderr,
		"# missed: page %" PRIu64 " (gfn %#" PRIx64 "): its latest write started %s "
		"harvest %" PRIu64 " and completed before harvest %" PRIu64
		" began; last reported by harvest %" PRIu64 "; bit %s in the slot's bitmap now\n",
		page, (u64)BASE + page, g % 2 ? "while running" : "after",
		g % 2 ? g / 2 : g / 2 - 1, h, last_reported[page], pending ? "set" : "clear");
}

static void follow_missed(u64 h)
{
	unsigned int i;

	for (i = 0; i < nshown; i++) {
		if (shown[i].h + 1 != h)
			continue;
		fprintf(
		    stderr, "# missed: page %" PRIu64 " %s by harvest %" PRIu64 "\n", shown[i].page,
		    last_reported[shown[i].page] == h ? "reported one round late" : "not reported",
		    h);
	}
}

/*
 * Harvest h (from 1): takes the flags of writes completed before it started;
 * a page whose latest write started in phase g must have been reported by a
 * harvest in [g / 2, h] (header comment). Returns the pages reported.
 */
static u64 harvest(int slot, u64 h, u64 *lost)
{
	static u64 snap[NPAGES];
	bool flush;
	u64 i, n = 0;
	int r;

	__atomic_store_n(&phase, 2 * h + 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < NPAGES; i++)
		snap[i] = __atomic_exchange_n(&written[i], 0, __ATOMIC_SEQ_CST);
	if (mode == TDP_DIRTY_PML) {
		/* Before every harvest, every vCPU's PML buffer is drained. */
		u64 req = __atomic_add_fetch(&drain_req, 1, __ATOMIC_SEQ_CST);

		for (i = 0; i < NVCPU; i++)
			while (__atomic_load_n(&vcpus[i].drain_ack, __ATOMIC_SEQ_CST) != req &&
			       !__atomic_load_n(&vcpus[i].done, __ATOMIC_SEQ_CST))
				sched_yield();
		for (i = 0; i < NVCPU; i++) /* stopped vCPUs: drained here */
			if (__atomic_load_n(&vcpus[i].done, __ATOMIC_SEQ_CST))
				tdp_mmu_pml_drain(&mmu, AS, vcpus[i].pml, &vcpus[i].pml_index);
	}
	r = tdp_mmu_get_dirty_log(&mmu, slot, b_cur, WORDS, &flush);
	if (r)
		test_fail("get_dirty_log %d", r);
	if (manual) {
		bool f2;

		r = tdp_mmu_clear_dirty_log(&mmu, slot, 0, NPAGES, b_cur, &f2);
		if (r)
			test_fail("clear_dirty_log %d", r);
		flush |= f2;
	}
	if (flush)
		tdp_mmu_flush_remote_tlbs(&mmu);
	__atomic_store_n(&phase, 2 * h + 2, __ATOMIC_SEQ_CST);
	for (i = 0; i < NPAGES; i++) {
		if ((b_cur[i / 64] >> (i % 64)) & 1) {
			last_reported[i] = h;
			n++;
		}
		if (snap[i] && last_reported[i] < snap[i] / 2) {
			(*lost)++;
			show_missed(i, snap[i], h);
		}
	}
	follow_missed(h);
	return n;
}

static void run(enum spte_format_kind kind, enum tdp_dirty_mode m, bool man, const char *name)
{
	struct mmu_platform ops;
	struct tdp_map_attrs a = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_2M};
	struct tdp_mmu_root *root;
	u64 lost = 0, reported = 0, writes = 0, faults = 0, seed = 12345;
	bool flush;
	int slot, k, i;

	memset(&tp, 0, sizeof(tp));
	memset(vcpus, 0, sizeof(vcpus));
	for (i = 0; i < NVCPU; i++)
		vcpus[i].done = 1; /* not running yet: flushes need not wait */
	memset(written, 0, sizeof(written));
	memset(last_reported, 0, sizeof(last_reported));
	memset(b_cur, 0, sizeof(b_cur));
	nshown = 0;
	phase = 2; /* "harvest 0" returned: the first writes are for harvest 1 on */
	stop = 0;
	mode = m;
	manual = man;
	tp.fail_after = -1;
	tp.on_flush = wait_vcpus;
	ops = test_plat_ops(&tp);
	if (kind == SPTE_FMT_NPT)
		spte_format_init_npt(&fmt, true);
	else
		spte_format_init_ept(&fmt, kind == SPTE_FMT_EPT_AD, true);
	if (tdp_mmu_init(&mmu, &fmt, &ops)) {
		test_fail("init");
		goto out;
	}
	mmu.yield_every = 97; /* long passes let go of the lock often */
	mmu.yield_uncontended = true;
	slot = tdp_mmu_set_memslot(&mmu, AS, BASE, NPAGES, BASE, &a, 0);
	if (slot < 0 || tdp_mmu_map_range(&mmu, AS, BASE, NPAGES, &flush) ||
	    tdp_mmu_enable_dirty_logging(&mmu, slot, m, man ? TDP_LOG_MANUAL_PROTECT : 0, bitmap,
					 &flush)) {
		test_fail("setup");
		goto out;
	}
	tdp_mmu_flush_remote_tlbs(&mmu);
	root = tdp_mmu_get_root(&mmu, AS);
	for (i = 0; i < NVCPU; i++) {
		vcpus[i].id = i;
		vcpus[i].seed = 0x9e3779b97f4a7c15ull * (u64)(i + 1);
		vcpus[i].root = tdp_mmu_get_root(&mmu, AS);
		vcpus[i].pml_index = TDP_PML_ENTRIES - 1;
		vcpus[i].drain_ack = __atomic_load_n(&drain_req, __ATOMIC_SEQ_CST);
		__atomic_store_n(&vcpus[i].done, 0, __ATOMIC_SEQ_CST);
		pthread_create(&vcpus[i].thread, NULL, vcpu_main, &vcpus[i]);
	}
	for (k = 0; k < ROUNDS; k++) {
		if (k % 2) /* vCPUs reload while this harvest runs */
			tdp_mmu_invalidate_roots(&mmu, AS);
		reported += harvest(slot, (u64)k + 1, &lost);
		if (k % 7 == 3) {
			/* Tables freed while vCPUs walk: flush-then-free must hold. */
			gfn_t g = (rnd(&seed) % (NPAGES / 512)) * 512;

			tdp_mmu_zap_range(&mmu, AS, BASE + g, 512);
		}
		sched_yield();
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	for (i = 0; i < NVCPU; i++) {
		pthread_join(vcpus[i].thread, NULL);
		writes += vcpus[i].writes;
		faults += vcpus[i].faults;
	}
	reported += harvest(slot, ROUNDS + 1, &lost);
	CHECK(lost == 0, "%s: %" PRIu64 " pages not reported by the harvests that had to", name,
	      lost);
	CHECK(writes > 0 && reported > 0, "%s: writes %" PRIu64 " reported %" PRIu64, name, writes,
	      reported);
	fprintf(stderr,
		"# %s: writes %" PRIu64 " faults %" PRIu64 " reported %" PRIu64 " yields %" PRIu64
		" retries %" PRIu64 "\n",
		name, writes, faults, reported, mmu.stats.yields, mmu.stats.cmpxchg_retries);
	for (i = 0; i < NVCPU; i++)
		tdp_mmu_put_root(&mmu, vcpus[i].root);
	tdp_mmu_disable_dirty_logging(&mmu, slot, &flush);
	tdp_mmu_put_root(&mmu, root);
	CHECK(tdp_mmu_destroy(&mmu) == MMU_OK && tp.live == 0, "%s: teardown, %ld pages left", name,
	      tp.live);
out:
	test_report(name);
}

/* ---- a root's last reference vs a walker's root set ---- */

struct drop_arg {
	struct tdp_mmu_root *root;
	bool by_invalidate;
};

static void *drop_last_ref(void *arg)
{
	struct drop_arg *d = arg;

	if (d->by_invalidate)
		tdp_mmu_invalidate_roots(&mmu, AS);
	else
		tdp_mmu_put_root(&mmu, d->root);
	return NULL;
}

/*
 * Deterministic, D-bit mode: a root holds D bits no harvest has taken yet and
 * loses its last reference (a vCPU's, after it reloaded; or the MMU's, by
 * invalidation, with no vCPU on it) while this thread holds mmu_lock for
 * read, as a harvest does when it takes its root set and walks it. Once the
 * other thread waits for mmu_lock for write, this thread takes a root set
 * as a harvest would: it must hold the root, or the root's D bits must be in
 * the bitmap already. (Dropped without mmu_lock, the count fell to 0 before
 * the free waited for the lock: the root was in no set and its D bits in no
 * word, and the mt.*.dbit runs below saw writes reported one round late.)
 * Then a harvest must report every page written.
 */
static void test_last_ref_vs_root_set(bool by_invalidate, const char *name)
{
	struct tdp_map_attrs a = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_2M};
	struct vcpu *v = &vcpus[0];
	struct mmu_platform ops;
	struct tdp_mmu_root *old, *cur = NULL;
	struct tdp_root_set set;
	struct drop_arg d;
	pthread_t t;
	bool flush, in_set = false, in_bitmap = true;
	u64 i, wrong = 0;
	int slot;

	memset(&tp, 0, sizeof(tp));
	memset(vcpus, 0, sizeof(vcpus));
	tp.fail_after = -1;
	mode = TDP_DIRTY_DBIT;
	ops = test_plat_ops(&tp);

	spte_format_init_ept(&fmt, true, true);
	if (tdp_mmu_init(&mmu, &fmt, &ops)) {
		test_fail("init");
		goto out;
	}
	slot = tdp_mmu_set_memslot(&mmu, AS, BASE, NPAGES, BASE, &a, 0);
	if (slot < 0 || tdp_mmu_map_range(&mmu, AS, BASE, NPAGES, &flush) ||
	    tdp_mmu_enable_dirty_logging(&mmu, slot, TDP_DIRTY_DBIT, 0, bitmap, &flush)) {
		test_fail("setup");
		goto out;
	}
	tdp_mmu_flush_remote_tlbs(&mmu);
	v->root = tdp_mmu_get_root(&mmu, AS);
	for (i = 0; i < NPAGES; i += 3)
		CHECK(hw_write(v, BASE + i), "%s: page %" PRIu64 " not writable", name, i);
	old = v->root;
	if (by_invalidate) {
		tdp_mmu_put_root(&mmu, old); /* left with the MMU's reference */
	} else {
		tdp_mmu_invalidate_roots(&mmu, AS); /* left with the vCPU's */
		cur = tdp_mmu_get_root(&mmu, AS);   /* which reloads */
		CHECK(cur && cur != old, "%s: new root", name);
	}
	v->root = NULL;
	d.root = old;
	d.by_invalidate = by_invalidate;

	pt_read_lock(&mmu.mmu_lock);
	pthread_create(&t, NULL, drop_last_ref, &d);
	while (!pt_rwlock_needbreak(&mmu.mmu_lock))
		sched_yield();
	tdp_root_set_get(&mmu, AS, &set);
	for (i = 0; i < set.n; i++)
		in_set |= set.roots[i] == old;
	for (i = 0; i < NPAGES; i += 3)
		in_bitmap &= (__atomic_load_n(&bitmap[i / 64], __ATOMIC_SEQ_CST) >> (i % 64)) & 1;
	pt_read_unlock(&mmu.mmu_lock);
	pthread_join(t, NULL);
	tdp_root_set_put(&mmu, &set);
	CHECK(in_set || in_bitmap,
	      "%s: a root with unharvested D bits was out of the root set of a walker holding "
	      "mmu_lock, and its D bits not in the bitmap",
	      name);

	CHECK(tdp_mmu_get_dirty_log(&mmu, slot, b_cur, WORDS, &flush) == MMU_OK, "%s: get", name);
	for (i = 0; i < NPAGES; i++) {
		bool in = (b_cur[i / 64] >> (i % 64)) & 1, written = !(i % 3);

		if (in != written && !wrong++)
			fprintf(stderr, "# %s: page %" PRIu64 " %s\n", name, i,
				in ? "reported, never written" : "written, not reported");
	}
	CHECK(wrong == 0, "%s: %" PRIu64 " pages misreported by the harvest", name, wrong);
	if (cur)
		tdp_mmu_put_root(&mmu, cur);
	tdp_mmu_disable_dirty_logging(&mmu, slot, &flush);
	CHECK(tdp_mmu_destroy(&mmu) == MMU_OK && tp.live == 0, "%s: teardown, %ld pages left", name,
	      tp.live);
out:
	test_report(name);
}

/* ---- include/pt/lock.h: exclusion, checked by value and by TSan ---- */

static pt_rwlock_t rw = PT_RWLOCK_INIT;
static pt_spinlock_t sl = PT_SPINLOCK_INIT;
static u64 guarded_a, guarded_b, spin_count;
static int lock_stop;

static void *lock_reader(void *arg)
{
	u64 *torn = arg;

	while (!__atomic_load_n(&lock_stop, __ATOMIC_RELAXED)) {
		pt_read_lock(&rw);
		/* Plain accesses: a writer inside would be a data race for TSan. */
		if (guarded_a != guarded_b)
			(*torn)++;
		pt_read_unlock(&rw);
		pt_spin_lock(&sl);
		spin_count++;
		pt_spin_unlock(&sl);
	}
	return NULL;
}

static void test_locks(void)
{
	pthread_t t[2];
	u64 torn[2] = {0, 0}, i, spins = 0;

	for (i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, lock_reader, &torn[i]);
	for (i = 0; i < 2000; i++) {
		pt_write_lock(&rw);
		CHECK(pt_rwlock_is_write_locked(&rw) && pt_rwlock_is_locked(&rw), "held");
		guarded_a++;
		sched_yield(); /* readers must wait, not see a != b */
		guarded_b++;
		pt_write_unlock(&rw);
		pt_spin_lock(&sl);
		spins++;
		spin_count++;
		pt_spin_unlock(&sl);
	}
	__atomic_store_n(&lock_stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK(torn[0] + torn[1] == 0, "readers saw a writer's half-done update");
	CHECK(guarded_a == 2000 && guarded_b == 2000 && spin_count >= spins, "counts");
	CHECK(!pt_rwlock_is_locked(&rw) && !pt_spin_is_locked(&sl), "released");
	CHECK(pt_read_trylock(&rw) && pt_read_trylock(&rw), "two readers");
	pt_read_unlock(&rw);
	pt_read_unlock(&rw);
	test_report("lock.rwlock_and_spinlock");
}

int main(void)
{
	test_locks();
	test_last_ref_vs_root_set(false, "mt.root.last_put_vs_root_set");
	test_last_ref_vs_root_set(true, "mt.root.last_invalidate_vs_root_set");
	run(SPTE_FMT_NPT, TDP_DIRTY_WP, false, "mt.npt.wp.faults_vs_harvest");
	run(SPTE_FMT_EPT, TDP_DIRTY_WP, false, "mt.ept.wp.faults_vs_harvest");
	run(SPTE_FMT_EPT_AD, TDP_DIRTY_DBIT, false, "mt.ept-ad.dbit.faults_vs_harvest");
	run(SPTE_FMT_EPT_AD, TDP_DIRTY_PML, false, "mt.ept-ad.pml.faults_vs_harvest");
	run(SPTE_FMT_NPT, TDP_DIRTY_WP, true, "mt.npt.wp.manual_get_clear");
	run(SPTE_FMT_EPT_AD, TDP_DIRTY_PML, true, "mt.ept-ad.pml.manual_get_clear");
	run(SPTE_FMT_EPT_AD, TDP_DIRTY_DBIT, true, "mt.ept-ad.dbit.manual_get_clear");
	return test_failures ? 1 : 0;
}
