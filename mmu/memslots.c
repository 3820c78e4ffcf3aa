// SPDX-License-Identifier: MIT
/*
 * Memslots: the guest-physical layout of an address space, kept per address
 * space as ids sorted by base_gfn, so that a lookup by GFN is a binary search
 * (O(log n)) that needs only mmu_lock for read: the sorted arrays change only
 * with it held for write.
 */
#include <pt/bitops.h>

#include "mmu/tdp_mmu_internal.h"

/* 4-level tables reach 2^36 frames; hfns must fit the 52-bit address. */
#define TDP_GFN_LIMIT (1ull << (TDP_ROOT_LEVEL * SPTE_LEVEL_BITS))
#define TDP_HFN_LIMIT (1ull << (52 - PAGE_SHIFT))

/* Index in sorted[as_id] of the last slot with base_gfn <= gfn, or -1. */
static int tdp_slot_search(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn)
{
	const u16 *ids = mmu->sorted[as_id];
	int lo = 0, hi = (int)mmu->nr_sorted[as_id] - 1, found = -1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;

		if (mmu->slots[ids[mid]].base_gfn <= gfn) {
			found = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return found;
}

const struct tdp_memslot *tdp_mmu_lookup_slot(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn)
{
	const struct tdp_memslot *slot;
	int i;

	if (as_id >= TDP_MMU_NR_AS)
		return NULL;
	i = tdp_slot_search(mmu, as_id, gfn);
	if (i < 0)
		return NULL;
	slot = &mmu->slots[mmu->sorted[as_id][i]];
	return gfn < tdp_slot_end(slot) ? slot : NULL;
}

const struct tdp_memslot *tdp_mmu_gfn_to_memslot(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn)
{
	return tdp_mmu_lookup_slot(mmu, as_id, gfn);
}

gfn_t tdp_mmu_next_slot_gfn(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn)
{
	int i = tdp_slot_search(mmu, as_id, gfn) + 1;

	if (i >= (int)mmu->nr_sorted[as_id])
		return ~0ull;
	return mmu->slots[mmu->sorted[as_id][i]].base_gfn;
}

const struct tdp_memslot *tdp_mmu_memslot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	if (slot_id >= TDP_MMU_MAX_MEMSLOTS || !mmu->slots[slot_id].in_use)
		return NULL;
	return &mmu->slots[slot_id];
}

int tdp_slot_max_level(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t gfn, gfn_t lo,
		       gfn_t hi)
{
	int level = slot->attrs.max_level;

	/* Logging and write tracking are per 4 KiB page. */
	if (tdp_slot_is_logging(slot) || tdp_slot_is_tracking(slot))
		return TDP_LEVEL_4K;
	if (level > mmu->fmt.max_huge_level)
		level = mmu->fmt.max_huge_level;
	if (lo < slot->base_gfn)
		lo = slot->base_gfn;
	if (hi > tdp_slot_end(slot))
		hi = tdp_slot_end(slot);
	for (; level > TDP_LEVEL_4K; level--) {
		u64 n = tdp_pages_per_level(level);
		gfn_t base = tdp_gfn_round_for_level(gfn, level);

		if (base < lo || base + n > hi)
			continue;
		if (tdp_slot_gfn_to_hfn(slot, base) & (n - 1))
			continue;
		return level;
	}
	return TDP_LEVEL_4K;
}

void tdp_mark_dirty_range(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t gfn,
			  u64 npages)
{
	u64 *bitmap = slot->dirty_bitmap;
	u64 rel, end;

	if (!bitmap || gfn >= tdp_slot_end(slot) || gfn + npages <= slot->base_gfn)
		return;
	if (gfn < slot->base_gfn) {
		npages -= slot->base_gfn - gfn;
		gfn = slot->base_gfn;
	}
	if (gfn + npages > tdp_slot_end(slot))
		npages = tdp_slot_end(slot) - gfn;
	rel = gfn - slot->base_gfn;
	end = rel + npages;
	tdp_stat_add(mmu, dirty_marked, npages);
	while (rel < end) {
		u64 bit = rel % 64;
		u64 n = 64 - bit < end - rel ? 64 - bit : end - rel;
		u64 mask = (n == 64 ? ~0ull : ((1ull << n) - 1)) << bit;

		__atomic_fetch_or(&bitmap[rel / 64], mask, __ATOMIC_RELEASE);
		rel += n;
	}
}

u64 tdp_mark_dirty_mask(const struct tdp_memslot *slot, gfn_t gfn, u64 mask)
{
	gfn_t end = tdp_slot_end(slot);
	s64 rel;
	u64 shift, lo, hi;
	s64 word;

	if (!slot->dirty_bitmap || gfn >= end || gfn + 64 <= slot->base_gfn)
		return 0;
	if (gfn < slot->base_gfn)
		mask &= ~0ull << (slot->base_gfn - gfn);
	if (end - gfn < 64)
		mask &= (1ull << (end - gfn)) - 1;
	if (!mask)
		return 0;
	/* Bit i is page gfn + i = slot page rel + i: up to two bitmap words. */
	rel = (s64)(gfn - slot->base_gfn);
	word = rel >= 0 ? rel / 64 : -((-rel + 63) / 64);
	shift = (u64)(rel - word * 64);
	lo = mask << shift;
	hi = shift ? mask >> (64 - shift) : 0;
	if (lo) {
		PT_ASSERT(word >= 0);
		__atomic_fetch_or(&slot->dirty_bitmap[word], lo, __ATOMIC_RELEASE);
	}
	if (hi)
		__atomic_fetch_or(&slot->dirty_bitmap[word + 1], hi, __ATOMIC_RELEASE);
	return (u64)pt_popcount64(mask);
}

void tdp_mmu_mark_page_dirty(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn)
{
	const struct tdp_memslot *slot;

	pt_read_lock(&mmu->mmu_lock);
	slot = tdp_mmu_lookup_slot(mmu, as_id, gfn);
	if (slot && tdp_slot_is_logging(slot))
		tdp_mark_dirty_range(mmu, slot, gfn, 1);
	pt_read_unlock(&mmu->mmu_lock);
}

int tdp_mmu_set_memslot(struct tdp_mmu *mmu, unsigned int as_id, gfn_t base_gfn, u64 npages,
			hfn_t base_hfn, const struct tdp_map_attrs *attrs, u64 flags)
{
	struct tdp_memslot *slot = NULL;
	int pos, id, i, ret;

	if (as_id >= TDP_MMU_NR_AS || !attrs || !npages || npages > TDP_GFN_LIMIT ||
	    base_gfn > TDP_GFN_LIMIT - npages || base_hfn >= TDP_HFN_LIMIT ||
	    npages > TDP_HFN_LIMIT - base_hfn)
		return MMU_EINVAL;
	if (attrs->max_level < TDP_LEVEL_4K || attrs->max_level > TDP_MAX_HUGE_LEVEL ||
	    (unsigned int)attrs->memtype >= TDP_MEMTYPE_NR || (flags & ~TDP_SLOT_READONLY))
		return MMU_EINVAL;

	pt_spin_lock(&mmu->mgmt_lock);
	pt_write_lock(&mmu->mmu_lock);
	pos = tdp_slot_search(mmu, as_id, base_gfn);
	/* Overlap: with the slot at or below base_gfn, or the next one up. */
	if (pos >= 0 && tdp_slot_end(&mmu->slots[mmu->sorted[as_id][pos]]) > base_gfn) {
		ret = MMU_EEXIST;
		goto out;
	}
	if (pos + 1 < (int)mmu->nr_sorted[as_id] &&
	    mmu->slots[mmu->sorted[as_id][pos + 1]].base_gfn < base_gfn + npages) {
		ret = MMU_EEXIST;
		goto out;
	}
	for (id = 0; id < TDP_MMU_MAX_MEMSLOTS; id++) {
		if (!mmu->slots[id].in_use) {
			slot = &mmu->slots[id];
			break;
		}
	}
	if (!slot) {
		ret = MMU_ENOSPC;
		goto out;
	}
	*slot = (struct tdp_memslot){
	    .base_gfn = base_gfn,
	    .npages = npages,
	    .base_hfn = base_hfn,
	    .attrs = *attrs,
	    .flags = flags,
	    .id = (u16)id,
	    .as_id = (u8)as_id,
	    .in_use = true,
	};
	if (flags & TDP_SLOT_READONLY)
		slot->attrs.writable = false;
	for (i = mmu->nr_sorted[as_id]; i > pos + 1; i--)
		mmu->sorted[as_id][i] = mmu->sorted[as_id][i - 1];
	mmu->sorted[as_id][pos + 1] = (u16)id;
	mmu->nr_sorted[as_id]++;
	ret = id;
out:
	pt_write_unlock(&mmu->mmu_lock);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

int tdp_mmu_delete_memslot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	struct tdp_memslot *slot;
	struct tdp_root_set set;
	struct tdp_op op;
	unsigned int as_id, i, n;
	gfn_t start, end;

	if (slot_id >= TDP_MMU_MAX_MEMSLOTS)
		return MMU_ENOENT;
	pt_spin_lock(&mmu->mgmt_lock);
	slot = &mmu->slots[slot_id];
	if (!slot->in_use) {
		pt_spin_unlock(&mmu->mgmt_lock);
		return MMU_ENOENT;
	}
	as_id = slot->as_id;
	start = slot->base_gfn;
	end = tdp_slot_end(slot);
	tdp_op_init(&op, mmu, as_id, false, true);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, as_id, &set);
	/* Out of the sorted array first: nothing maps or marks it any more. */
	n = mmu->nr_sorted[as_id];
	for (i = 0; i < n && mmu->sorted[as_id][i] != slot_id; i++)
		;
	PT_ASSERT(i < n);
	for (; i + 1 < n; i++)
		mmu->sorted[as_id][i] = mmu->sorted[as_id][i + 1];
	mmu->nr_sorted[as_id]--;
	tdp_mmu_zap_range_locked(&op, &set, start, end);
	tdp_op_free_pages(&op, NULL);
	if (op.flush)
		tdp_mmu_flush_remote_tlbs(mmu);
	slot->in_use = false;
	slot->dirty_bitmap = NULL;
	slot->write_track = NULL;
	slot->flags = 0;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	pt_spin_unlock(&mmu->mgmt_lock);
	return MMU_OK;
}
