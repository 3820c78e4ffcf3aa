// SPDX-License-Identifier: MIT
/*
 * Draining a vCPU's page-modification log into the slot bitmaps.
 *
 * Intel SDM Vol. 3C 29.3.6 "Page-Modification Logging": when the CPU sets a
 * D flag of an EPT leaf (from 0 to 1) with PML enabled, it writes the
 * guest-physical address to entry PML_INDEX of the 4 KiB log and decrements
 * the 16-bit index; with the index outside 0..511 it does not log but exits
 * (PML full). So after the CPU has logged entry 0 the index reads 0xffff, and
 * the valid entries are always index + 1 .. 511 (all 512 when the index is
 * out of range). The SDM says the logged address has bits 11:0 clear; Bochs
 * 2.7 keeps the page offset, so the offset is masked here.
 */
#include "mmu/tdp_mmu_internal.h"

u32 tdp_mmu_pml_drain(struct tdp_mmu *mmu, unsigned int as_id, const u64 *pml_buf, u16 *pml_index)
{
	const struct tdp_memslot *slot = NULL;
	u32 first, i, n = 0, dropped = 0, marked = 0;

	if (!pml_buf || !pml_index)
		return 0;
	first = *pml_index >= TDP_PML_ENTRIES ? 0 : (u32)*pml_index + 1;
	if (first < TDP_PML_ENTRIES) {
		pt_read_lock(&mmu->mmu_lock);
		for (i = first; i < TDP_PML_ENTRIES; i++) {
			gfn_t gfn = gpa_to_gfn(pml_buf[i] & PAGE_MASK);

			n++;
			/* Consecutive entries tend to share a slot. */
			if (!slot || gfn < slot->base_gfn || gfn >= tdp_slot_end(slot))
				slot = tdp_mmu_lookup_slot(mmu, as_id, gfn);
			if (!slot || !tdp_slot_is_logging(slot)) {
				dropped++;
				continue;
			}
			marked += tdp_mark_dirty_one(slot, gfn);
		}
		pt_read_unlock(&mmu->mmu_lock);
	}
	*pml_index = TDP_PML_ENTRIES - 1;
	tdp_stat_add(mmu, pml_entries, n);
	tdp_stat_add(mmu, pml_dropped, dropped);
	tdp_stat_add(mmu, dirty_marked, marked);
	if (dropped)
		tdp_mmu_log(mmu, MMU_LOG_DEBUG, "tdp_mmu: PML entries outside logged slots",
			    dropped, as_id);
	return n;
}
