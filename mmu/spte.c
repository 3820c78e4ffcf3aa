// SPDX-License-Identifier: MIT
/*
 * Building entries. The two families of formats differ only in masks: EPT
 * (Intel SDM Vol. 3C 29.3.2 "EPT Translation Mechanism") has separate R/W/X
 * bits and no present bit; NPT (AMD APM Vol. 2 15.25 "Nested Paging") uses
 * the long-mode page-table format with P, R/W, U and NX.
 */
#include "mmu/spte.h"

void spte_format_init_ept(struct spte_format *f, bool has_ad, bool has_1g)
{
	*f = (struct spte_format){
	    .kind = has_ad ? SPTE_FMT_EPT_AD : SPTE_FMT_EPT,
	    .name = has_ad ? "ept-ad" : "ept",
	    .has_ad = has_ad,
	    .present_mask = EPT_READABLE,
	    .readable_mask = EPT_READABLE,
	    .writable_mask = EPT_WRITABLE,
	    .x_mask = EPT_EXECUTABLE,
	    .nx_mask = 0,
	    .user_mask = 0,
	    .accessed_mask = has_ad ? EPT_ACCESSED : 0,
	    .dirty_mask = has_ad ? EPT_DIRTY : 0,
	    .huge_mask = EPT_PAGE_SIZE,
	    .memtype_mask = EPT_MT_MASK | EPT_IPAT,
	    /*
	     * RAM: WB without IPAT, so the guest's PAT can still make a
	     * frame buffer WC/UC (SDM 29.3.7.2 "Memory Type Used for
	     * Translated Guest-Physical Addresses"). MMIO: UC.
	     */
	    .memtype = {[TDP_MEMTYPE_RAM] = EPT_MT_WB << EPT_MT_SHIFT,
			[TDP_MEMTYPE_MMIO] = EPT_MT_UC << EPT_MT_SHIFT},
	    .pa_mask = SPTE_PA_MASK,
	    .hw_mask = EPT_HW_MASK,
	    .max_huge_level = has_1g ? TDP_LEVEL_1G : TDP_LEVEL_2M,
	};
}

void spte_format_init_npt(struct spte_format *f, bool has_1g)
{
	*f = (struct spte_format){
	    .kind = SPTE_FMT_NPT,
	    .name = "npt",
	    .has_ad = true,
	    .present_mask = NPT_PRESENT,
	    .readable_mask = 0,
	    .writable_mask = NPT_WRITABLE,
	    .x_mask = 0,
	    .nx_mask = NPT_NX,
	    .user_mask = NPT_USER,
	    .accessed_mask = NPT_ACCESSED,
	    .dirty_mask = NPT_DIRTY,
	    .huge_mask = NPT_PAGE_SIZE,
	    /* PAT index from PAT:PCD:PWT; PAT itself is never set by mmu/ (at
	     * level 1 it would be bit 7, which is PS above). */
	    .memtype_mask = NPT_PWT | NPT_PCD | NPT_PAT_HUGE,
	    /*
	     * Index 0 (WB) for RAM, index 3 (UC with the power-on PAT) for
	     * MMIO; combined with the guest's own type as in APM Vol. 2
	     * 15.25.8 "Combining Memory Types, MTRRs".
	     */
	    .memtype = {[TDP_MEMTYPE_RAM] = 0, [TDP_MEMTYPE_MMIO] = NPT_PCD | NPT_PWT},
	    .pa_mask = SPTE_PA_MASK,
	    .hw_mask = NPT_HW_MASK,
	    .max_huge_level = has_1g ? TDP_LEVEL_1G : TDP_LEVEL_2M,
	};
}

const char *spte_format_kind_name(enum spte_format_kind kind)
{
	switch (kind) {
	case SPTE_FMT_EPT_AD:
		return "ept-ad";
	case SPTE_FMT_EPT:
		return "ept";
	case SPTE_FMT_NPT:
		return "npt";
	}
	return "?";
}

u64 spte_make_nonleaf(const struct spte_format *f, hpa_t child_hpa)
{
	return SPTE_MMU_PRESENT | f->present_mask | f->readable_mask | f->writable_mask |
	       f->x_mask | f->user_mask | (child_hpa & f->pa_mask);
}

u64 spte_make_leaf(const struct spte_format *f, int level, hfn_t hfn,
		   const struct tdp_map_attrs *attrs, bool writable)
{
	u64 spte = SPTE_MMU_PRESENT | f->present_mask | f->readable_mask | f->user_mask;

	spte |= attrs->executable ? f->x_mask : f->nx_mask;
	spte |= f->memtype[attrs->memtype];
	if (level > TDP_LEVEL_4K)
		spte |= f->huge_mask;
	if (attrs->writable) {
		spte |= SPTE_HOST_WRITABLE;
		if (writable)
			spte |= f->writable_mask | SPTE_MMU_WRITABLE;
	}
	spte |= (hfn << PAGE_SHIFT) & f->pa_mask;
	return spte;
}

u64 spte_make_split_child(const struct spte_format *f, u64 huge, int level, unsigned int index)
{
	int child_level = level - 1;
	hfn_t hfn = spte_to_hfn(f, huge) + (u64)index * tdp_pages_per_level(child_level);
	u64 child = huge & ~f->pa_mask;

	if (child_level == TDP_LEVEL_4K)
		child &= ~f->huge_mask;
	return child | ((hfn << PAGE_SHIFT) & f->pa_mask);
}

u64 spte_make_huge_from_child(const struct spte_format *f, u64 first_child, int level)
{
	hfn_t hfn = spte_to_hfn(f, first_child) & ~(tdp_pages_per_level(level) - 1);
	u64 spte = (first_child & ~f->pa_mask) | f->huge_mask;

	spte = spte_make_writable(f, spte);
	return spte | ((hfn << PAGE_SHIFT) & f->pa_mask);
}
