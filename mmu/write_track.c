// SPDX-License-Identifier: MIT
/*
 * Write tracking: a second reason to keep a page read-only, next to dirty
 * logging and independent of it (KVM's page-track for writes). The rules
 * that keep W away from a tracked page live where W is granted: the fault
 * path (tdp_mmu.c: TDP_FAULT_TRACKED before anything changes; new leaves
 * read-only), mapping (tdp_mmu_map_leaf_locked) and collapse after logging
 * stops (dirty_log.c); tdp_slot_max_level keeps a tracking slot at 4 KiB.
 * Dirty logging's own passes never add W, so they need no rule.
 */
#include "mmu/tdp_mmu_internal.h"

static struct tdp_memslot *tdp_track_slot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	if (slot_id >= TDP_MMU_MAX_MEMSLOTS || !mmu->slots[slot_id].in_use)
		return NULL;
	return &mmu->slots[slot_id];
}

int tdp_mmu_write_track_enable(struct tdp_mmu *mmu, unsigned int slot_id, u64 *bitmap, bool *flush)
{
	struct tdp_memslot *slot;
	struct tdp_root_set set;
	struct tdp_op op;
	bool changed = false;
	u64 w, words;
	int ret = MMU_OK;
	unsigned int i;

	*flush = false;
	if (!bitmap)
		return MMU_EINVAL;
	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_track_slot(mmu, slot_id);
	if (!slot) {
		ret = MMU_ENOENT;
		goto out;
	}
	if (slot->write_track || !slot->attrs.writable) {
		ret = MMU_EINVAL;
		goto out;
	}
	words = tdp_dirty_bitmap_words(slot->npages);
	for (w = 0; w < words; w++)
		bitmap[w] = ~0ull;
	if (slot->npages % 64)
		bitmap[words - 1] = (1ull << (slot->npages % 64)) - 1;

	/*
	 * For write: no fault is between its tracked check and its W, and
	 * none comes until the bitmap is published; every fault after it
	 * finds the page tracked. Then the pass takes W from what was mapped
	 * writable before (huge leaves stay huge and read-only: the write
	 * fault splits them once their page is no longer tracked).
	 */
	tdp_op_init(&op, mmu, slot->as_id, false, true);
	tdp_op_lock(&op);
	__atomic_store_n(&slot->write_track, bitmap, __ATOMIC_RELEASE);
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (i = 0; i < set.n; i++) {
		changed |= tdp_wrprot_gfn_range(&op, set.roots[i], slot, slot->base_gfn,
						tdp_slot_end(slot));
		if (i + 1 == set.n)
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	changed |= op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
out:
	*flush = tdp_mmu_flush_owed(mmu, changed);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

int tdp_mmu_write_track_disable(struct tdp_mmu *mmu, unsigned int slot_id)
{
	struct tdp_memslot *slot;
	int ret = MMU_OK;

	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_track_slot(mmu, slot_id);
	if (!slot) {
		ret = MMU_ENOENT;
	} else if (!slot->write_track) {
		ret = MMU_EINVAL;
	} else {
		/* For write: no fault still reads the bitmap once it is the caller's. */
		pt_write_lock(&mmu->mmu_lock);
		__atomic_store_n(&slot->write_track, NULL, __ATOMIC_RELEASE);
		pt_write_unlock(&mmu->mmu_lock);
	}
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

/*
 * Without mmu_lock: the bit only goes from set to clear here, and a fault
 * that read it set (under the read lock) changes nothing and its vCPU faults
 * again. The slot's bitmap stays the caller's to free only after disable,
 * which the caller orders after its own untracks.
 */
bool tdp_mmu_write_untrack(struct tdp_mmu *mmu, unsigned int slot_id, u64 page)
{
	struct tdp_memslot *slot = tdp_track_slot(mmu, slot_id);
	u64 *t, bit;

	if (!slot || page >= slot->npages)
		return false;
	t = __atomic_load_n(&slot->write_track, __ATOMIC_ACQUIRE);
	if (!t)
		return false;
	bit = 1ull << (page % 64);
	return (__atomic_fetch_and(&t[page / 64], ~bit, __ATOMIC_RELEASE) & bit) != 0;
}

bool tdp_mmu_write_tracked(struct tdp_mmu *mmu, unsigned int slot_id, u64 page)
{
	struct tdp_memslot *slot = tdp_track_slot(mmu, slot_id);

	if (!slot || page >= slot->npages)
		return false;
	return tdp_gfn_is_tracked(slot, slot->base_gfn + page);
}
