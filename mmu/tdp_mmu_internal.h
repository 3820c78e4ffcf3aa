/* SPDX-License-Identifier: MIT */
/*
 * Shared by the files of mmu/ only: the per-operation context, the funnel,
 * atomic entry updates, yielding, root sets, memslot internals.
 */
#ifndef PT_MMU_TDP_MMU_INTERNAL_H
#define PT_MMU_TDP_MMU_INTERNAL_H

#include <pt/assert.h>
#include "mmu/tdp_mmu_parity.h"
#include "mmu/tdp_iter.h"

#define TDP_MMU_DEFAULT_YIELD_EVERY 1024

#define tdp_stat_add(mmu, field, n) __atomic_fetch_add(&(mmu)->stats.field, (n), __ATOMIC_RELAXED)
#define tdp_stat_sub(mmu, field, n) __atomic_fetch_sub(&(mmu)->stats.field, (n), __ATOMIC_RELAXED)

/* Debug-only lock-state checks at function entry (KVM's lockdep_assert_held*). */
static inline void tdp_mmu_assert_held(struct tdp_mmu *mmu)
{
	PT_ASSERT(pt_rwlock_is_locked(&mmu->mmu_lock));
}

static inline void tdp_mmu_assert_held_write(struct tdp_mmu *mmu)
{
	PT_ASSERT(pt_rwlock_is_write_locked(&mmu->mmu_lock));
}

static inline void tdp_mmu_assert_mgmt(struct tdp_mmu *mmu)
{
	PT_ASSERT(pt_spin_is_locked(&mmu->mgmt_lock));
}

void tdp_mmu_log(struct tdp_mmu *mmu, enum mmu_log_level level, const char *msg, u64 a, u64 b);

/* Page-table pages detached from the tree, freed only after a TLB flush. The
 * list is threaded through the pages themselves (entry 0: next page, entry 1:
 * its hpa); both values have bits 11:0 clear, so a CPU that still walks the
 * page before the flush sees not-present entries. */
struct tdp_free_list {
	u64 *head;
	u64 count;
};

/* One operation on the tables: what lock it holds and what it owes. */
struct tdp_op {
	struct tdp_mmu *mmu;
	unsigned int as_id;
	bool shared;	   /* mmu_lock held for read: every change by cmpxchg */
	bool record_dirty; /* the funnel marks pages dirty (false in harvest passes) */
	bool flush;	   /* an entry changed since the last flush */
	/* Detached tables are emptied with xchg so the funnel sees each leaf's
	 * final A/D (the CPU may set them until the flush). False only where
	 * no rule reads them: collapsing a slot that no longer logs. */
	bool removed_final_ad;
	u32 budget;	   /* entries left before the next yield */
	/* Leaf re-arms by plain store / by cmpxchg, added to the shared stats
	 * when the lock is let go (not one atomic add per entry). */
	u64 rearm_plain, rearm_atomic;
	u64 marked; /* pages marked by the pass (stats.dirty_marked), likewise */
	/* SYNC_D only: the get-dirty-log whose bitmap words this walk takes as
	 * it passes them (dirty_log.c, tdp_take); NULL in every other pass. */
	struct tdp_take *take;
	struct tdp_free_list free;
};

void tdp_op_init(struct tdp_op *op, struct tdp_mmu *mmu, unsigned int as_id, bool shared,
		 bool record_dirty);
void tdp_op_lock(struct tdp_op *op);
void tdp_op_unlock(struct tdp_op *op);
/* Flush, then give back the pages on op->free (no-op if none). */
void tdp_op_free_pages(struct tdp_op *op, const struct tdp_mmu_root *root);
/* Count one unit of work; when the batch is done, flush what is pending,
 * free what was detached, let go of mmu_lock for a moment and take it back.
 * Returns true if it did (the walk then restarts: iterator or caller). */
bool tdp_op_cond_yield(struct tdp_op *op, struct tdp_iter *iter);

/* An operation ends having changed entries (@changed) or not: what it reports
 * as "flush needed" (its own changes, or any earlier ones not yet flushed). */
static inline bool tdp_mmu_flush_owed(struct tdp_mmu *mmu, bool changed)
{
	if (changed) {
		__atomic_store_n(&mmu->flush_pending, 1, __ATOMIC_RELEASE);
		return true;
	}
	return __atomic_load_n(&mmu->flush_pending, __ATOMIC_ACQUIRE) != 0;
}

/* Count @n units of work done in one go (a run of entries of one table). */
static inline void tdp_op_charge(struct tdp_op *op, u32 n)
{
	op->budget = op->budget > n ? op->budget - n : 0;
}

/* The funnel: every change of an entry goes through here, exactly once. */
void handle_changed_spte(struct tdp_op *op, gfn_t gfn, u64 old_spte, u64 new_spte, int level);
/* cmpxchg *iter->sptep from iter->old_spte to @new_spte. On success runs the
 * funnel and returns true; on failure refreshes iter->old_spte and returns
 * false (the caller re-decides from the new snapshot). */
bool tdp_mmu_set_spte_atomic(struct tdp_op *op, struct tdp_iter *iter, u64 new_spte);

/* Allocation with accounting (stats.pt_pages). */
u64 *tdp_mmu_alloc_pt(struct tdp_mmu *mmu, hpa_t *hpa);
void tdp_mmu_free_pt(struct tdp_mmu *mmu, void *va, hpa_t hpa);

/* Replace the huge leaf at @iter by a table of equivalent smaller leaves.
 * 0: done; MMU_ENOMEM; 1: the entry changed under us, re-decide. */
int tdp_mmu_split_huge_page(struct tdp_op *op, struct tdp_iter *iter);
/* The same with @child_clr cleared in every child (W or D: eager splitting
 * while arming, so that the children are born re-armed; flush owed). */
int tdp_mmu_split_huge_page_clr(struct tdp_op *op, struct tdp_iter *iter, u64 child_clr);

#define tdp_for_each_pte_min_level(iter, op, root, min_level, start, end)                          \
	for_each_tdp_pte_min_level(iter, (root)->pt, TDP_ROOT_LEVEL, min_level, start, end,        \
				   &(op)->mmu->fmt, (op)->mmu->plat.hpa_to_va,                     \
				   (op)->mmu->plat.ctx)
#define tdp_for_each_pte(iter, op, root, start, end)                                               \
	tdp_for_each_pte_min_level(iter, op, root, TDP_LEVEL_4K, start, end)

/* References on every live root (valid or not yet freed) of an address space. */
struct tdp_root_set {
	struct tdp_mmu_root *roots[TDP_MMU_MAX_ROOTS];
	unsigned int n;
};

void tdp_root_set_get(struct tdp_mmu *mmu, unsigned int as_id, struct tdp_root_set *set);
/* Add references on live roots not yet in @set; true if any was added. Taken
 * with mmu_lock held (and again after every yield), the set holds every root
 * that exists while the lock is held: new roots need it for write. */
bool tdp_root_set_refresh(struct tdp_mmu *mmu, unsigned int as_id, struct tdp_root_set *set);
/* Drops the references; mmu_lock must not be held (a last put frees). */
void tdp_root_set_put(struct tdp_mmu *mmu, struct tdp_root_set *set);

/* ---- memslots (memslots.c) ---- */

const struct tdp_memslot *tdp_mmu_lookup_slot(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn);
/* First base_gfn of a slot above @gfn, or ~0 if none. */
gfn_t tdp_mmu_next_slot_gfn(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn);

static inline bool tdp_slot_is_logging(const struct tdp_memslot *slot)
{
	return (slot->flags & TDP_SLOT_LOG_DIRTY) != 0;
}

static inline bool tdp_slot_is_tracking(const struct tdp_memslot *slot)
{
	return __atomic_load_n(&slot->write_track, __ATOMIC_ACQUIRE) != NULL;
}

/*
 * Whether @gfn of @slot must stay read-only for write tracking. Acquire:
 * pairs with the release of tdp_mmu_write_untrack, so a vCPU that gets W
 * back sees what the untracker did before (its copy of the page).
 */
static inline bool tdp_gfn_is_tracked(const struct tdp_memslot *slot, gfn_t gfn)
{
	const u64 *t = __atomic_load_n(&slot->write_track, __ATOMIC_ACQUIRE);
	u64 rel = gfn - slot->base_gfn;

	if (!t)
		return false;
	return (__atomic_load_n(&t[rel / 64], __ATOMIC_ACQUIRE) >> (rel % 64)) & 1;
}

static inline gfn_t tdp_slot_end(const struct tdp_memslot *slot)
{
	return slot->base_gfn + slot->npages;
}

static inline hfn_t tdp_slot_gfn_to_hfn(const struct tdp_memslot *slot, gfn_t gfn)
{
	return slot->base_hfn + (gfn - slot->base_gfn);
}

/* Largest level at which the aligned page around @gfn lies in [lo, hi), in
 * the slot, has a matching hfn alignment and the slot allows it. */
int tdp_slot_max_level(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t gfn, gfn_t lo,
		       gfn_t hi);
/* Set the bits of [gfn, gfn + npages) ∩ slot (atomic OR per word). */
void tdp_mark_dirty_range(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t gfn,
			  u64 npages);

/*
 * Set the bit of page @gfn of @slot (in the slot, logging); returns 1 for the
 * caller's count (stats.dirty_marked, added once per batch). A bit already
 * set is left alone, without a locked OR: whichever harvest takes it comes
 * after this read in the word's modification order, so after the write this
 * mark stands for, exactly as if the OR had been done now.
 */
static inline u32 tdp_mark_dirty_one(const struct tdp_memslot *slot, gfn_t gfn)
{
	u64 rel = gfn - slot->base_gfn, bit = 1ull << (rel % 64);
	u64 *word = &slot->dirty_bitmap[rel / 64];

	PT_ASSERT(gfn >= slot->base_gfn && gfn < tdp_slot_end(slot) && slot->dirty_bitmap);
	if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
		__atomic_fetch_or(word, bit, __ATOMIC_RELEASE);
	return 1;
}

/* Set the bits of the pages gfn + i for each bit i of @mask, clipped to the
 * slot (at most two atomic ORs); returns how many, for the caller's op to
 * add to stats.dirty_marked once (tdp_op.marked). */
u64 tdp_mark_dirty_mask(const struct tdp_memslot *slot, gfn_t gfn, u64 mask);

/* Remove W from every leaf (any level) of [start, end) of @slot in @root;
 * true if an entry changed (dirty_log.c). mmu_lock held. */
bool tdp_wrprot_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root,
			  const struct tdp_memslot *slot, gfn_t start, gfn_t end);

/* ---- zapping (tdp_mmu.c), with mmu_lock held for write ---- */
bool tdp_mmu_zap_range_locked(struct tdp_op *op, struct tdp_root_set *set, gfn_t start, gfn_t end);

#endif /* PT_MMU_TDP_MMU_INTERNAL_H */
