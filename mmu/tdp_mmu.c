// SPDX-License-Identifier: MIT
/*
 * The TDP MMU: roots, the funnel every entry change goes through, mapping,
 * the fault path, zapping. Dirty logging is in dirty_log.c, memslots in
 * memslots.c, PML in pml.c.
 *
 * Lock design (as KVM since 5.12; also docs/mmu.md)
 * -------------------------------------------------
 * mmu_lock (pt_rwlock_t) protects the shape of the trees and the memslot
 * array:
 *  - held for READ ("shared"): the fault path, PML drain, and the dirty-log
 *    passes (write-protect, clear/set D, clear by mask, eager split). Many
 *    may run at once, and the CPU sets A/D bits at any time, so every change
 *    is a cmpxchg from the snapshot iter->old_spte; a failed cmpxchg refreshes
 *    the snapshot and the caller decides again. The funnel thus always sees
 *    the real old value: no D bit set by hardware can be lost.
 *    Shared paths may ADD tables (link a new table, split a huge leaf: the
 *    new table is filled before the cmpxchg publishes it; if the cmpxchg
 *    fails the table was never visible and is freed at once) but never
 *    REMOVE one, so no reader ever follows a pointer to a freed table.
 *  - held for WRITE: map_range, zap, memslot changes, collapsing tables back
 *    into huge pages, root teardown. These remove tables: detached tables
 *    are emptied with xchg (the CPU may still set A/D in them until the
 *    flush), put on a free list, and returned to the allocator only after a
 *    TLB flush (paging-structure caches may still point at them).
 * mgmt_lock (spinlock, outside mmu_lock) serializes management operations
 *   (memslot changes, every dirty-log operation) among themselves, like KVM's
 *   slots_lock: a slot cannot disappear while a harvest that yields mmu_lock
 *   is walking it. vCPU paths never take it.
 * roots_lock (spinlock, inside mmu_lock or alone) protects roots[] and the
 *   reference counts.
 * Long walks check every yield_every entries (tdp_op_cond_yield) and let go
 * of mmu_lock (always when held for write; for read only when a writer waits,
 * pt_rwlock_needbreak), after freeing what they detached, holding a reference
 * on the root they walk, and restart from the root at the first unhandled GFN.
 *
 * The platform's flush_tlbs must not wait for a vCPU that is inside the
 * hypervisor (it may be spinning on mmu_lock): such a vCPU flushes before its
 * next VM entry (KVM's requests), which is what makes flushing and freeing
 * under mmu_lock safe.
 */
#include "mmu/tdp_mmu_internal.h"

void tdp_mmu_log(struct tdp_mmu *mmu, enum mmu_log_level level, const char *msg, u64 a, u64 b)
{
	if (mmu->plat.log)
		mmu->plat.log(mmu->plat.ctx, level, msg, a, b);
}

/* ---- page-table pages ---- */

u64 *tdp_mmu_alloc_pt(struct tdp_mmu *mmu, hpa_t *hpa)
{
	u64 *pt = mmu->plat.alloc_pt_page(mmu->plat.ctx, hpa);
	u64 now, max;

	if (!pt)
		return NULL;
	PT_ASSERT(!(*hpa & ~PAGE_MASK) && !((uintptr_t)pt & ~PAGE_MASK));
	now = tdp_stat_add(mmu, pt_pages, 1) + 1;
	max = __atomic_load_n(&mmu->stats.pt_pages_max, __ATOMIC_RELAXED);
	while (now > max && !__atomic_compare_exchange_n(&mmu->stats.pt_pages_max, &max, now, true,
							 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
	return pt;
}

void tdp_mmu_free_pt(struct tdp_mmu *mmu, void *va, hpa_t hpa)
{
	mmu->plat.free_pt_page(mmu->plat.ctx, va, hpa);
	tdp_stat_sub(mmu, pt_pages, 1);
	tdp_stat_add(mmu, tables_freed, 1);
}

static void tdp_free_list_add(struct tdp_op *op, u64 *pt, hpa_t hpa)
{
	__atomic_store_n(&pt[0], (u64)(uintptr_t)op->free.head, __ATOMIC_RELAXED);
	__atomic_store_n(&pt[1], hpa, __ATOMIC_RELAXED);
	op->free.head = pt;
	op->free.count++;
}

/* ---- operations ---- */

void tdp_op_init(struct tdp_op *op, struct tdp_mmu *mmu, unsigned int as_id, bool shared,
		 bool record_dirty)
{
	*op = (struct tdp_op){
	    .mmu = mmu,
	    .as_id = as_id,
	    .shared = shared,
	    .record_dirty = record_dirty,
	    .removed_final_ad = true,
	    .budget = mmu->yield_every,
	};
}

void tdp_op_lock(struct tdp_op *op)
{
	if (op->shared)
		pt_read_lock(&op->mmu->mmu_lock);
	else
		pt_write_lock(&op->mmu->mmu_lock);
}

void tdp_op_unlock(struct tdp_op *op)
{
	/* Nothing detached may outlive the lock: a flush and free come first. */
	PT_ASSERT(op->free.count == 0);
	if (op->rearm_plain)
		tdp_stat_add(op->mmu, rearm_plain, op->rearm_plain);
	if (op->rearm_atomic)
		tdp_stat_add(op->mmu, rearm_atomic, op->rearm_atomic);
	if (op->marked)
		tdp_stat_add(op->mmu, dirty_marked, op->marked);
	op->rearm_plain = op->rearm_atomic = op->marked = 0;
	if (op->shared)
		pt_read_unlock(&op->mmu->mmu_lock);
	else
		pt_write_unlock(&op->mmu->mmu_lock);
}

void tdp_op_free_pages(struct tdp_op *op, const struct tdp_mmu_root *root)
{
	struct tdp_mmu *mmu = op->mmu;
	u64 *pt, *next;
	hpa_t hpa;

	if (!op->free.count)
		return;
	tdp_mmu_assert_held_write(mmu);
	if (!root) {
		__atomic_store_n(&mmu->flush_pending, 0, __ATOMIC_RELEASE);
		op->flush = false;
	}
	mmu->plat.flush_tlbs(mmu->plat.ctx, root);
	tdp_stat_add(mmu, flushes, 1);
	for (pt = op->free.head; pt; pt = next) {
		next = (u64 *)(uintptr_t)pt[0];
		hpa = pt[1];
		pt[0] = 0;
		pt[1] = 0;
		tdp_mmu_free_pt(mmu, pt, hpa);
	}
	op->free.head = NULL;
	op->free.count = 0;
}

bool tdp_op_cond_yield(struct tdp_op *op, struct tdp_iter *iter)
{
	struct tdp_mmu *mmu = op->mmu;

	if (op->budget) {
		op->budget--;
		return false;
	}
	if (iter && !tdp_iter_can_yield(iter))
		return false;
	/* Readers keep out only writers, and a waiting writer says so; a
	 * writer's own waiters (readers) cannot, so it always lets go. */
	if (op->shared && !mmu->yield_uncontended && !pt_rwlock_needbreak(&mmu->mmu_lock)) {
		op->budget = mmu->yield_every ? mmu->yield_every - 1 : 0;
		return false;
	}
	/* Detached tables must not outlive the lock (a writer's next pass could
	 * not tell them from live ones): flush and free them first. A pending
	 * flush for changed entries is only owed to whoever hands out a
	 * bitmap, so it stays in op->flush (as KVM's dirty-log passes do). */
	if (op->free.count)
		tdp_op_free_pages(op, NULL);
	if (iter)
		tdp_iter_yield(iter);
	tdp_op_unlock(op);
	if (mmu->plat.relax) {
		mmu->plat.relax(mmu->plat.ctx);
	} else {
		/* The lock has no queue: leave waiters a window to get in. */
		for (int i = 0; i < 64; i++)
			pt_cpu_relax();
	}
	tdp_op_lock(op);
	op->budget = mmu->yield_every ? mmu->yield_every - 1 : 0;
	tdp_stat_add(mmu, yields, 1);
	return true;
}

void tdp_mmu_flush_remote_tlbs(struct tdp_mmu *mmu)
{
	/* Cleared first: a change made while the flush runs reports its own. */
	__atomic_store_n(&mmu->flush_pending, 0, __ATOMIC_SEQ_CST);
	mmu->plat.flush_tlbs(mmu->plat.ctx, NULL);
	tdp_stat_add(mmu, flushes, 1);
}

/* ---- the funnel ---- */

/*
 * Dirty-log bookkeeping for one change. Two ways a write can become invisible
 * to a harvest:
 *  (a) the entry becomes writable (or writable to another frame): from now
 *      on the guest writes without faulting, so the page is marked now (the
 *      seed's rule; the write fault of WP mode lands here);
 *  (b) in D-bit modes, a D bit the CPU set disappears (zap, frame change, D
 *      cleared by anything but a harvest pass, which records it itself):
 *      the page is marked, or the write it stands for would be lost.
 * A split (leaf -> table) is neither: its children inherit W and D.
 */
static void handle_changed_spte_dirty_log(struct tdp_op *op, gfn_t gfn, u64 old_spte, u64 new_spte,
					  int level)
{
	const struct spte_format *f = &op->mmu->fmt;
	bool was_leaf = spte_is_present_leaf(f, old_spte, level);
	bool is_leaf = spte_is_present_leaf(f, new_spte, level);
	bool frame_changed = spte_to_hfn(f, old_spte) != spte_to_hfn(f, new_spte);
	bool d_lost = false;
	const struct tdp_memslot *slot;

	if (is_leaf && spte_is_writable(f, new_spte) &&
	    (!was_leaf || !spte_is_writable(f, old_spte) || frame_changed)) {
		d_lost = false;
	} else if (was_leaf && spte_hw_dirty(f, old_spte) &&
		   !(spte_is_present(new_spte) && !is_leaf) &&
		   !(is_leaf && !frame_changed && spte_hw_dirty(f, new_spte))) {
		d_lost = true;
	} else {
		return;
	}

	slot = tdp_mmu_lookup_slot(op->mmu, op->as_id, gfn);
	if (!slot || !tdp_slot_is_logging(slot))
		return;
	if (d_lost && slot->log_mode == TDP_DIRTY_WP)
		return; /* WP mode marked the page when it became writable */
	tdp_mark_dirty_range(op->mmu, slot, gfn, tdp_pages_per_level(level));
}

/*
 * A table was detached from the tree: empty it and every table below it,
 * running the funnel on each leaf, and queue the pages for freeing after the
 * flush. Iterative, with an explicit stack of at most TDP_ROOT_LEVEL tables.
 * Only with mmu_lock held for write: no software walker can be inside.
 */
static void handle_removed_pt(struct tdp_op *op, u64 *pt, hpa_t hpa, int level, gfn_t base_gfn)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct spte_format *f = &mmu->fmt;
	struct {
		u64 *pt;
		hpa_t hpa;
		gfn_t gfn;
		unsigned int idx;
	} stack[TDP_ROOT_LEVEL];
	u64 removed[TDP_MAX_HUGE_LEVEL + 1] = {0}, accessed = 0;
	int depth = 0, l;

	tdp_mmu_assert_held_write(mmu);
	PT_ASSERT(!op->shared && level >= TDP_LEVEL_4K && level <= TDP_ROOT_LEVEL);

	stack[0].pt = pt;
	stack[0].hpa = hpa;
	stack[0].gfn = base_gfn;
	stack[0].idx = 0;
	while (depth >= 0) {
		int lvl = level - depth;
		unsigned int i = stack[depth].idx;
		gfn_t gfn;
		u64 old;

		if (i == SPTE_ENT_PER_PAGE) {
			tdp_free_list_add(op, stack[depth].pt, stack[depth].hpa);
			depth--;
			continue;
		}
		if (lvl == TDP_LEVEL_4K && !op->removed_final_ad) {
			/* Nothing reads the leaves' final A/D: count them as they
			 * are, leave the entries (the CPU may still walk the
			 * table until the flush; the allocator hands pages out
			 * zeroed, so they need no clearing either). */
			const u64 *pt4 = stack[depth].pt;

			for (; i < SPTE_ENT_PER_PAGE; i++) {
				old = __atomic_load_n(&pt4[i], __ATOMIC_RELAXED);
				if (!spte_is_present(old))
					continue;
				removed[lvl]++;
				accessed += f->has_ad && (old & f->accessed_mask);
			}
			stack[depth].idx = SPTE_ENT_PER_PAGE;
			continue;
		}
		stack[depth].idx++;
		/* xchg, not a store: until the flush the CPU may still walk this
		 * table and set A/D, and the funnel must see that final value. */
		old = __atomic_exchange_n(&stack[depth].pt[i], 0, __ATOMIC_ACQ_REL);
		if (!spte_is_present(old))
			continue;
		gfn = stack[depth].gfn + (u64)i * tdp_pages_per_level(lvl);
		if (spte_is_leaf(f, old, lvl)) {
			/* The funnel's work for leaf -> not present, with the
			 * shared counters updated once per table tree below. */
			PT_ASSERT_ENTRY(lvl <= TDP_MAX_HUGE_LEVEL);
			removed[lvl]++;
			if (f->has_ad && (old & f->accessed_mask))
				accessed++;
			if (op->record_dirty)
				handle_changed_spte_dirty_log(op, gfn, old, 0, lvl);
			continue;
		}
		PT_ASSERT(lvl > TDP_LEVEL_4K && depth + 1 < TDP_ROOT_LEVEL);
		depth++;
		stack[depth].hpa = spte_to_hpa(f, old);
		stack[depth].pt = mmu->plat.hpa_to_va(mmu->plat.ctx, stack[depth].hpa);
		stack[depth].gfn = gfn;
		stack[depth].idx = 0;
	}
	for (l = TDP_LEVEL_4K; l <= TDP_MAX_HUGE_LEVEL; l++) {
		if (removed[l])
			tdp_stat_sub(mmu, leaves[l], removed[l]);
	}
	if (accessed)
		tdp_stat_add(mmu, accessed_dropped, accessed);
}

void handle_changed_spte(struct tdp_op *op, gfn_t gfn, u64 old_spte, u64 new_spte, int level)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct spte_format *f = &mmu->fmt;
	bool was_present = spte_is_present(old_spte);
	bool is_present = spte_is_present(new_spte);
	bool was_leaf = was_present && spte_is_leaf(f, old_spte, level);
	bool is_leaf = is_present && spte_is_leaf(f, new_spte, level);
	bool frame_changed = spte_to_hfn(f, old_spte) != spte_to_hfn(f, new_spte);

	/* Once per changed entry: debug-build checks only (include/pt/assert.h). */
	PT_ASSERT_ENTRY(pt_rwlock_is_locked(&mmu->mmu_lock));
	PT_ASSERT_ENTRY(level >= TDP_LEVEL_4K && level <= TDP_ROOT_LEVEL);
	PT_ASSERT_ENTRY(!(gfn & (tdp_pages_per_level(level) - 1)));
	if (old_spte == new_spte)
		return;
	/* A table is never swapped for another table: that would leak the old
	 * one's children under a shared lock. */
	PT_ASSERT_ENTRY(!(was_present && !was_leaf && is_present && !is_leaf));

	/* Shared counters: touched only when leaf-ness changes, not on every
	 * W/D flip of a dirty-log pass. */
	if (was_leaf != is_leaf) {
		if (was_leaf)
			tdp_stat_sub(mmu, leaves[level], 1);
		else
			tdp_stat_add(mmu, leaves[level], 1);
	}

	/* Accessed tracking: an accessed leaf goes away or moves. */
	if (was_leaf && f->has_ad && (old_spte & f->accessed_mask) &&
	    (!is_present || (is_leaf && frame_changed)))
		tdp_stat_add(mmu, accessed_dropped, 1);

	if (op->record_dirty)
		handle_changed_spte_dirty_log(op, gfn, old_spte, new_spte, level);

	if (was_present && !was_leaf) {
		hpa_t child = spte_to_hpa(f, old_spte);

		handle_removed_pt(op, mmu->plat.hpa_to_va(mmu->plat.ctx, child), child, level - 1,
				  gfn);
	}
}

bool tdp_mmu_set_spte_atomic(struct tdp_op *op, struct tdp_iter *iter, u64 new_spte)
{
	u64 old = iter->old_spte;

	tdp_mmu_assert_held(op->mmu);
	if (!__atomic_compare_exchange_n(iter->sptep, &old, new_spte, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		iter->old_spte = old;
		tdp_stat_add(op->mmu, cmpxchg_retries, 1);
		return false;
	}
	handle_changed_spte(op, iter->gfn, iter->old_spte, new_spte, iter->level);
	iter->old_spte = new_spte;
	return true;
}

/* ---- building tables ---- */

/* Link an empty table at the non-present entry @iter. 0, MMU_ENOMEM or 1 (lost). */
static int tdp_mmu_link_new_table(struct tdp_op *op, struct tdp_iter *iter)
{
	struct tdp_mmu *mmu = op->mmu;
	hpa_t hpa;
	u64 *pt = tdp_mmu_alloc_pt(mmu, &hpa);

	if (!pt)
		return MMU_ENOMEM;
	if (!tdp_mmu_set_spte_atomic(op, iter, spte_make_nonleaf(&mmu->fmt, hpa))) {
		tdp_mmu_free_pt(mmu, pt, hpa); /* never published */
		return 1;
	}
	return 0;
}

int tdp_mmu_split_huge_page(struct tdp_op *op, struct tdp_iter *iter)
{
	return tdp_mmu_split_huge_page_clr(op, iter, 0);
}

int tdp_mmu_split_huge_page_clr(struct tdp_op *op, struct tdp_iter *iter, u64 child_clr)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct spte_format *f = &mmu->fmt;
	hpa_t hpa;
	u64 *pt;
	unsigned int i;

	PT_ASSERT(iter->level > TDP_LEVEL_4K &&
		  spte_is_present_leaf(f, iter->old_spte, iter->level));
	pt = tdp_mmu_alloc_pt(mmu, &hpa);
	if (!pt) {
		tdp_stat_add(mmu, split_nomem, 1);
		return MMU_ENOMEM;
	}
	do {
		/* Children carry the huge leaf's W, A and D: the translation is
		 * unchanged, so no flush, and no dirty state is lost. Filled
		 * before the cmpxchg publishes the table (release). */
		u64 child0 = spte_make_split_child(f, iter->old_spte, iter->level, 0) & ~child_clr;
		u64 step = tdp_pages_per_level(iter->level - 1) << PAGE_SHIFT;

		/* Child i = child 0 + i frames of its size: the huge frame is
		 * aligned to the whole range, so the sum never carries out of
		 * the address bits (spte_make_split_child, checked in tests). */
		for (i = 0; i < SPTE_ENT_PER_PAGE; i++)
			pt[i] = child0 + (u64)i * step;
		PT_ASSERT(pt[SPTE_ENT_PER_PAGE - 1] ==
			  (spte_make_split_child(f, iter->old_spte, iter->level,
						 SPTE_ENT_PER_PAGE - 1) &
			   ~child_clr));
		u64 huge = iter->old_spte;

		if (tdp_mmu_set_spte_atomic(op, iter, spte_make_nonleaf(f, hpa))) {
			/* Children with less than the huge leaf allowed: the
			 * cached translation must go. */
			if (child_clr & huge)
				op->flush = true;
			tdp_stat_add(mmu, leaves[iter->level - 1], SPTE_ENT_PER_PAGE);
			tdp_stat_add(mmu, splits, 1);
			return 0;
		}
	} while (spte_is_present_leaf(f, iter->old_spte, iter->level));
	for (i = 0; i < SPTE_ENT_PER_PAGE; i++)
		pt[i] = 0;
	tdp_mmu_free_pt(mmu, pt, hpa);
	return 1;
}

/* ---- roots ---- */

/* A reference on the valid root of @as_id, or NULL. */
static struct tdp_mmu_root *tdp_mmu_find_valid_root(struct tdp_mmu *mmu, unsigned int as_id)
{
	struct tdp_mmu_root *root;
	unsigned int i;

	pt_spin_lock(&mmu->roots_lock);
	for (i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		root = &mmu->roots[i];
		if (root->in_use && root->as_id == as_id && root->valid) {
			PT_ASSERT(root->refcount > 0);
			root->refcount++;
			pt_spin_unlock(&mmu->roots_lock);
			return root;
		}
	}
	pt_spin_unlock(&mmu->roots_lock);
	return NULL;
}

/*
 * A new root is created with mmu_lock held for write (as in KVM): a walker
 * that holds mmu_lock and took its root set under it therefore sees every
 * root a vCPU can be running on, until it lets go of the lock. Without this a
 * harvest could take a page's bit and re-arm it in the old root only, while a
 * vCPU that just reloaded keeps writing through the new root, unseen.
 */
struct tdp_mmu_root *tdp_mmu_get_root(struct tdp_mmu *mmu, unsigned int as_id)
{
	struct tdp_mmu_root *root, *free_entry = NULL;
	unsigned int i;
	hpa_t hpa;
	u64 *pt;

	if (as_id >= TDP_MMU_NR_AS)
		return NULL;
	root = tdp_mmu_find_valid_root(mmu, as_id);
	if (root)
		return root;

	pt_write_lock(&mmu->mmu_lock);
	root = tdp_mmu_find_valid_root(mmu, as_id); /* someone else was quicker */
	if (root)
		goto out_unlock;
	pt = tdp_mmu_alloc_pt(mmu, &hpa);
	if (!pt)
		goto out_unlock;
	pt_spin_lock(&mmu->roots_lock);
	for (i = 0; i < TDP_MMU_MAX_ROOTS && !free_entry; i++) {
		if (!mmu->roots[i].in_use)
			free_entry = &mmu->roots[i];
	}
	if (free_entry) {
		root = free_entry;
		root->pt = pt;
		root->hpa = hpa;
		root->as_id = (u8)as_id;
		root->refcount = 2; /* the MMU's, while valid, and the caller's */
		root->in_use = true;
		__atomic_store_n(&root->valid, true, __ATOMIC_RELEASE);
	}
	pt_spin_unlock(&mmu->roots_lock);
	if (!free_entry) {
		tdp_mmu_free_pt(mmu, pt, hpa); /* never published */
		tdp_mmu_log(mmu, MMU_LOG_ERR, "tdp_mmu: no free root entry", as_id, 0);
	}
out_unlock:
	pt_write_unlock(&mmu->mmu_lock);
	return root;
}

/*
 * The last reference is gone and the root is invalid: nobody can reach it.
 * mmu_lock is held for write, and was already held when that reference was
 * dropped (tdp_mmu_drop_root_ref): the funnel moves the D bits of the root's
 * leaves into the bitmap (rule (b)) before any walker can take a root set
 * that lacks the root.
 */
static void tdp_mmu_free_root(struct tdp_mmu *mmu, struct tdp_mmu_root *root)
{
	struct tdp_op op;

	tdp_mmu_assert_held_write(mmu);
	tdp_op_init(&op, mmu, root->as_id, false, true);
	handle_removed_pt(&op, root->pt, root->hpa, TDP_ROOT_LEVEL, 0);
	tdp_op_free_pages(&op, root);

	pt_spin_lock(&mmu->roots_lock);
	root->pt = NULL;
	root->hpa = 0;
	root->in_use = false;
	pt_spin_unlock(&mmu->roots_lock);
}

/*
 * Drop one reference with mmu_lock held for write; the last one frees the
 * root before the lock is let go. Why under the lock: a harvest takes its
 * root set (tdp_root_set_get: roots with references) with mmu_lock held and
 * takes the bitmap words behind its walk. A root whose count reached 0 is
 * out of every set taken from then on, but until it is freed its D bits, the
 * log of writes made through it, are in no bitmap word. Were the count
 * dropped without the lock, a harvest could take its set between the drop
 * and the free, take the words, and leave the free to mark them for the next
 * harvest: writes that completed before this harvest started, reported one
 * round late (lost, for a last round taken with the guest paused). KVM drops
 * a root's last reference with mmu_lock held, too (kvm_tdp_mmu_put_root).
 */
static void tdp_mmu_drop_root_ref(struct tdp_mmu *mmu, struct tdp_mmu_root *root)
{
	bool last;

	tdp_mmu_assert_held_write(mmu);
	pt_spin_lock(&mmu->roots_lock);
	PT_ASSERT(root->in_use && root->refcount > 0);
	last = --root->refcount == 0;
	pt_spin_unlock(&mmu->roots_lock);
	if (!last)
		return;
	/* Valid roots hold the MMU's reference, so only an invalid root gets here. */
	PT_ASSERT(!root->valid);
	tdp_mmu_free_root(mmu, root);
}

void tdp_mmu_put_root(struct tdp_mmu *mmu, struct tdp_mmu_root *root)
{
	pt_spin_lock(&mmu->roots_lock);
	PT_ASSERT(root->in_use && root->refcount > 0);
	if (root->refcount > 1) {
		/* Not the last (the count cannot fall to 0 under us: the
		 * caller's reference is one of these). */
		root->refcount--;
		pt_spin_unlock(&mmu->roots_lock);
		return;
	}
	pt_spin_unlock(&mmu->roots_lock);
	/* Perhaps the last: dropped under mmu_lock (tdp_mmu_drop_root_ref). */
	pt_write_lock(&mmu->mmu_lock);
	tdp_mmu_drop_root_ref(mmu, root);
	pt_write_unlock(&mmu->mmu_lock);
}

void tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, unsigned int as_id)
{
	struct tdp_mmu_root *was_valid[TDP_MMU_MAX_ROOTS];
	unsigned int i, n = 0;

	/* The MMU's reference may be the last: dropped under mmu_lock, as in
	 * tdp_mmu_put_root (and as KVM invalidates roots). */
	pt_write_lock(&mmu->mmu_lock);
	pt_spin_lock(&mmu->roots_lock);
	for (i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		struct tdp_mmu_root *root = &mmu->roots[i];

		if (!root->in_use || root->as_id != as_id || !root->valid)
			continue;
		__atomic_store_n(&root->valid, false, __ATOMIC_RELEASE);
		was_valid[n++] = root;
	}
	pt_spin_unlock(&mmu->roots_lock);
	for (i = 0; i < n; i++)
		tdp_mmu_drop_root_ref(mmu, was_valid[i]);
	pt_write_unlock(&mmu->mmu_lock);
}

bool tdp_root_set_refresh(struct tdp_mmu *mmu, unsigned int as_id, struct tdp_root_set *set)
{
	bool added = false;
	unsigned int i, j;

	pt_spin_lock(&mmu->roots_lock);
	for (i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		struct tdp_mmu_root *root = &mmu->roots[i];

		/* Invalid roots still referenced are walked too: a vCPU may run
		 * on one until it reloads, and its writes must be logged. */
		if (!root->in_use || root->as_id != as_id || root->refcount == 0)
			continue;
		for (j = 0; j < set->n && set->roots[j] != root; j++)
			;
		if (j < set->n)
			continue;
		PT_ASSERT(set->n < TDP_MMU_MAX_ROOTS);
		root->refcount++;
		set->roots[set->n++] = root;
		added = true;
	}
	pt_spin_unlock(&mmu->roots_lock);
	return added;
}

void tdp_root_set_get(struct tdp_mmu *mmu, unsigned int as_id, struct tdp_root_set *set)
{
	set->n = 0;
	tdp_root_set_refresh(mmu, as_id, set);
}

void tdp_root_set_put(struct tdp_mmu *mmu, struct tdp_root_set *set)
{
	unsigned int i;

	for (i = 0; i < set->n; i++)
		tdp_mmu_put_root(mmu, set->roots[i]);
	set->n = 0;
}

/* ---- life cycle ---- */

int tdp_mmu_init(struct tdp_mmu *mmu, const struct spte_format *fmt,
		 const struct mmu_platform *plat)
{
	if (!fmt || !plat || !plat->alloc_pt_page || !plat->free_pt_page || !plat->hpa_to_va ||
	    !plat->flush_tlbs)
		return MMU_EINVAL;
	if (fmt->max_huge_level < TDP_LEVEL_4K || fmt->max_huge_level > TDP_MAX_HUGE_LEVEL)
		return MMU_EINVAL;
	__builtin_memset(mmu, 0, sizeof(*mmu));
	mmu->fmt = *fmt;
	mmu->plat = *plat;
	pt_rwlock_init(&mmu->mmu_lock);
	pt_spin_init(&mmu->roots_lock);
	pt_spin_init(&mmu->mgmt_lock);
	mmu->yield_every = TDP_MMU_DEFAULT_YIELD_EVERY;
	return MMU_OK;
}

int tdp_mmu_destroy(struct tdp_mmu *mmu)
{
	struct tdp_mmu_root *dead[TDP_MMU_MAX_ROOTS];
	unsigned int i, n = 0;

	pt_spin_lock(&mmu->roots_lock);
	for (i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		struct tdp_mmu_root *root = &mmu->roots[i];

		if (root->in_use && root->refcount != (root->valid ? 1u : 0u)) {
			pt_spin_unlock(&mmu->roots_lock);
			tdp_mmu_log(mmu, MMU_LOG_ERR, "tdp_mmu_destroy: root still referenced", i,
				    root->refcount);
			return MMU_EBUSY;
		}
	}
	for (i = 0; i < TDP_MMU_MAX_ROOTS; i++) {
		struct tdp_mmu_root *root = &mmu->roots[i];

		if (!root->in_use || !root->valid)
			continue;
		__atomic_store_n(&root->valid, false, __ATOMIC_RELEASE);
		root->refcount = 0;
		dead[n++] = root;
	}
	pt_spin_unlock(&mmu->roots_lock);
	pt_write_lock(&mmu->mmu_lock);
	for (i = 0; i < n; i++)
		tdp_mmu_free_root(mmu, dead[i]);
	pt_write_unlock(&mmu->mmu_lock);
	if (mmu->stats.pt_pages) {
		tdp_mmu_log(mmu, MMU_LOG_ERR, "tdp_mmu_destroy: page-table pages leaked",
			    mmu->stats.pt_pages, 0);
		return MMU_EBUSY;
	}
	return MMU_OK;
}

/* ---- mapping ---- */

/* Same translation and permissions, whatever A/D say. */
static bool spte_same_mapping(const struct spte_format *f, u64 a, u64 b)
{
	return !((a ^ b) & ~(f->accessed_mask | f->dirty_mask));
}

/* Install the leaf for @gfn at @level from @slot, with mmu_lock for write. */
static int tdp_mmu_map_leaf_locked(struct tdp_op *op, struct tdp_mmu_root *root,
				   const struct tdp_memslot *slot, gfn_t gfn, int level)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct spte_format *f = &mmu->fmt;
	bool writable =
	    slot->attrs.writable && !tdp_slot_is_logging(slot) && !tdp_gfn_is_tracked(slot, gfn);
	u64 leaf = spte_make_leaf(f, level, tdp_slot_gfn_to_hfn(slot, gfn), &slot->attrs, writable);
	struct tdp_iter iter;
	int r;

	tdp_mmu_assert_held_write(mmu);
	tdp_for_each_pte(iter, op, root, gfn, gfn + 1)
	{
	retry:
		if (iter.level == level) {
			if (spte_is_present_leaf(f, iter.old_spte, level) &&
			    spte_same_mapping(f, iter.old_spte, leaf))
				return 0;
			if (spte_is_present(iter.old_spte))
				op->flush = true;
			if (!tdp_mmu_set_spte_atomic(op, &iter, leaf))
				goto retry;
			return 0;
		}
		if (!spte_is_present(iter.old_spte))
			r = tdp_mmu_link_new_table(op, &iter);
		else if (spte_is_leaf(f, iter.old_spte, iter.level))
			r = tdp_mmu_split_huge_page(op, &iter);
		else
			continue;
		if (r < 0)
			return r;
		if (r > 0)
			goto retry;
	}
	PT_ASSERT(false);
	return MMU_EINVAL;
}

int tdp_mmu_map_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages, bool *flush)
{
	struct tdp_mmu_root *root;
	struct tdp_op op;
	gfn_t cur = gfn, end = gfn + npages;
	int r = MMU_OK;

	*flush = false;
	if (as_id >= TDP_MMU_NR_AS || !npages || end < gfn)
		return MMU_EINVAL;
	root = tdp_mmu_get_root(mmu, as_id);
	if (!root)
		return MMU_ENOMEM;
	tdp_op_init(&op, mmu, as_id, false, true);
	tdp_op_lock(&op);
	while (cur < end) {
		const struct tdp_memslot *slot = tdp_mmu_lookup_slot(mmu, as_id, cur);
		int level;

		if (!slot) {
			cur = tdp_mmu_next_slot_gfn(mmu, as_id, cur);
			continue;
		}
		level = tdp_slot_max_level(mmu, slot, cur, cur, end);
		r = tdp_mmu_map_leaf_locked(&op, root, slot, cur, level);
		if (r < 0)
			break;
		cur += tdp_pages_per_level(level);
		/* Slots cannot change meanwhile: set/delete need this lock for write. */
		tdp_op_cond_yield(&op, NULL);
	}
	tdp_op_free_pages(&op, NULL);
	*flush = tdp_mmu_flush_owed(mmu, op.flush);
	tdp_op_unlock(&op);
	tdp_mmu_put_root(mmu, root);
	return r;
}

/* ---- zapping ---- */

bool tdp_mmu_zap_range_locked(struct tdp_op *op, struct tdp_root_set *set, gfn_t start, gfn_t end)
{
	const struct spte_format *f = &op->mmu->fmt;
	bool zapped = false;
	unsigned int i;

	tdp_mmu_assert_held_write(op->mmu);
	for (i = 0; i < set->n; i++) {
		struct tdp_iter iter;

		tdp_for_each_pte(iter, op, set->roots[i], start, end)
		{
			if (tdp_op_cond_yield(op, &iter))
				continue;
		retry:
			if (!spte_is_present(iter.old_spte))
				continue;
			/* A table only partly in the range: zap inside it. A huge
			 * leaf only partly in it goes whole; faults remap the rest. */
			if (!spte_is_leaf(f, iter.old_spte, iter.level) &&
			    (iter.gfn < start || iter.gfn + tdp_pages_per_level(iter.level) > end))
				continue;
			if (!tdp_mmu_set_spte_atomic(op, &iter, 0))
				goto retry;
			op->flush = true;
			zapped = true;
		}
	}
	return zapped;
}

bool tdp_mmu_zap_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages)
{
	struct tdp_root_set set;
	struct tdp_op op;
	bool zapped;

	if (as_id >= TDP_MMU_NR_AS || !npages || gfn + npages < gfn)
		return false;
	tdp_op_init(&op, mmu, as_id, false, true);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, as_id, &set);
	zapped = tdp_mmu_zap_range_locked(&op, &set, gfn, gfn + npages);
	tdp_op_free_pages(&op, NULL);
	if (op.flush)
		tdp_mmu_flush_remote_tlbs(mmu);
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	return zapped;
}

/* ---- the fault path ---- */

enum tdp_fault_result tdp_mmu_page_fault(struct tdp_mmu *mmu, struct tdp_mmu_root *root, gpa_t gpa,
					 u64 fault_flags)
{
	const struct spte_format *f = &mmu->fmt;
	bool write = fault_flags & TDP_FAULT_WRITE;
	bool exec = fault_flags & TDP_FAULT_EXEC;
	gfn_t gfn = gpa_to_gfn(gpa);
	enum tdp_fault_result ret = TDP_FAULT_RETRY;
	const struct tdp_memslot *slot;
	struct tdp_iter iter;
	struct tdp_op op;
	bool logging, per_page;
	int level, r;

	if (!root)
		return TDP_FAULT_RETRY; /* no root loaded yet: get one */
	tdp_stat_add(mmu, faults, 1);
	tdp_op_init(&op, mmu, root->as_id, true, true);
	tdp_op_lock(&op);
	if (!tdp_mmu_root_is_valid(root))
		goto out;
	slot = tdp_mmu_lookup_slot(mmu, root->as_id, gfn);
	if (!slot) {
		ret = TDP_FAULT_NO_SLOT;
		goto out;
	}
	if ((write && !slot->attrs.writable) || (exec && !slot->attrs.executable)) {
		ret = TDP_FAULT_ACCESS;
		goto out;
	}
	/* Write tracking comes first: nothing changes, its owner acts. */
	if (write && tdp_gfn_is_tracked(slot, gfn)) {
		tdp_stat_add(mmu, faults_tracked, 1);
		ret = TDP_FAULT_TRACKED;
		goto out;
	}
	logging = tdp_slot_is_logging(slot);
	/* W for this page must never be W for a tracked neighbour under the
	 * same huge leaf: a tracking slot is handled per 4 KiB page too. */
	per_page = logging || tdp_slot_is_tracking(slot);
	level = tdp_slot_max_level(mmu, slot, gfn, slot->base_gfn, tdp_slot_end(slot));

	tdp_for_each_pte(iter, &op, root, gfn, gfn + 1)
	{
	retry:
		if (spte_is_present(iter.old_spte) && !spte_is_leaf(f, iter.old_spte, iter.level)) {
			/* Smaller mappings exist below: map at their size. */
			if (iter.level <= level)
				level = iter.level - 1;
			continue;
		}
		if (spte_is_present(iter.old_spte)) {
			u64 new_spte;

			if ((!write || spte_is_writable(f, iter.old_spte)) &&
			    (!exec || spte_is_executable(f, iter.old_spte))) {
				ret = TDP_FAULT_SPURIOUS;
				tdp_stat_add(mmu, faults_spurious, 1);
				goto out;
			}
			if (!write || !spte_is_host_writable(iter.old_spte)) {
				ret = TDP_FAULT_ACCESS;
				goto out;
			}
			if (per_page && iter.level > TDP_LEVEL_4K) {
				/* Eager splitting ran out of memory, or a huge leaf
				 * write-protected for tracking: split now. */
				r = tdp_mmu_split_huge_page(&op, &iter);
				if (r < 0) {
					ret = TDP_FAULT_NOMEM;
					goto out;
				}
				if (r > 0)
					goto retry;
				continue;
			}
			/* The funnel marks the page dirty (rule (a)). */
			new_spte = spte_make_writable(f, iter.old_spte);
			if (!tdp_mmu_set_spte_atomic(&op, &iter, new_spte))
				goto retry;
			tdp_stat_add(mmu, faults_fixed_dirty, 1);
			ret = TDP_FAULT_FIXED;
			goto out;
		}
		if (iter.level == level) {
			/* In a logged slot W comes only with a write, so that a
			 * read never marks a page dirty; never to a tracked page. */
			bool writable = slot->attrs.writable && (!logging || write) &&
					!tdp_gfn_is_tracked(slot, iter.gfn);
			u64 leaf = spte_make_leaf(f, level, tdp_slot_gfn_to_hfn(slot, iter.gfn),
						  &slot->attrs, writable);

			if (!tdp_mmu_set_spte_atomic(&op, &iter, leaf))
				goto retry;
			ret = TDP_FAULT_FIXED;
			goto out;
		}
		r = tdp_mmu_link_new_table(&op, &iter);
		if (r < 0) {
			ret = TDP_FAULT_NOMEM;
			goto out;
		}
		if (r > 0)
			goto retry;
	}
	PT_ASSERT(false);
out:
	tdp_op_unlock(&op);
	return ret;
}

/* ---- accessed tracking ---- */

u64 tdp_mmu_age_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages, bool *flush)
{
	const struct spte_format *f = &mmu->fmt;
	struct tdp_root_set set;
	struct tdp_op op;
	u64 young = 0;
	unsigned int i;

	*flush = false;
	if (!f->has_ad || as_id >= TDP_MMU_NR_AS || !npages || gfn + npages < gfn)
		return 0;
	tdp_op_init(&op, mmu, as_id, true, true);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, as_id, &set);
	for (i = 0; i < set.n; i++) {
		struct tdp_iter iter;

		tdp_for_each_pte(iter, &op, set.roots[i], gfn, gfn + npages)
		{
			if (tdp_op_cond_yield(&op, &iter))
				continue;
		retry:
			if (!spte_is_present_leaf(f, iter.old_spte, iter.level) ||
			    !(iter.old_spte & f->accessed_mask))
				continue;
			if (!tdp_mmu_set_spte_atomic(&op, &iter, iter.old_spte & ~f->accessed_mask))
				goto retry;
			young += tdp_pages_per_level(iter.level);
			op.flush = true;
		}
	}
	*flush = tdp_mmu_flush_owed(mmu, op.flush);
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	return young;
}

void tdp_mmu_get_stats(struct tdp_mmu *mmu, struct tdp_mmu_stats *out)
{
	const u64 *src = (const u64 *)&mmu->stats;
	u64 *dst = (u64 *)out;
	size_t i;

	_Static_assert(sizeof(struct tdp_mmu_stats) % sizeof(u64) == 0, "stats are u64s");
	for (i = 0; i < sizeof(*out) / sizeof(u64); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
