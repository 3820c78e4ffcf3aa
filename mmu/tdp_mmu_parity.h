/* SPDX-License-Identifier: MIT */
/*
 * The part of mmu/'s API that the hypervisor never calls: the rest of KVM's
 * TDP MMU surface (kvm_tdp_mmu_*, KVM_GET_DIRTY_LOG without manual protect,
 * the slot-wide passes of the seed patch, aging, zapping, slot deletion,
 * teardown), kept implemented and tested for parity with KVM and used by the
 * host tests and benchmarks (tests/mmu, tests/model) to drive and check
 * mmu/. hv/ and arch/ include only mmu/tdp_mmu.h: what they call is the
 * product's API, and a feature declared here is not a feature of the
 * hypervisor until they call it (docs/mmu.md).
 *
 * Flush rules, locks and bitmap layout are those of mmu/tdp_mmu.h.
 */
#ifndef PT_MMU_TDP_MMU_PARITY_H
#define PT_MMU_TDP_MMU_PARITY_H

#include "mmu/tdp_mmu.h"

/* ---- life cycle (the hypervisor's VM lives until the machine resets) ---- */

/*
 * Frees every page-table page (MMU_EBUSY, nothing freed, if a vCPU still
 * holds a root). Afterwards stats.pt_pages is 0.
 */
int tdp_mmu_destroy(struct tdp_mmu *mmu);

/* ---- roots ---- */

/* Mark every root of @as_id invalid: new users get a new root; the old ones
 * are freed at their last put. Caller then makes vCPUs reload their root. */
void tdp_mmu_invalidate_roots(struct tdp_mmu *mmu, unsigned int as_id);

/* ---- memslots (the hypervisor's layout is fixed once it starts) ---- */

/* Remove a memslot and zap its range from every root of its address space
 * (flushes before the freed tables go back to the allocator). */
int tdp_mmu_delete_memslot(struct tdp_mmu *mmu, unsigned int slot_id);
/* The slot containing @gfn, or NULL; O(log n). Caller holds mmu_lock (read or
 * write) or otherwise knows no memslot changes meanwhile. */
const struct tdp_memslot *tdp_mmu_gfn_to_memslot(struct tdp_mmu *mmu, unsigned int as_id,
						 gfn_t gfn);

/* ---- mapping ---- */

/* Unmap [gfn, gfn + npages) in every root of @as_id; flushes internally.
 * Returns true if anything was unmapped. */
bool tdp_mmu_zap_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages);

/* ---- dirty logging without manual protect (the product's harvest is GET of
 * a range + CLEAR, in mmu/tdp_mmu.h) ---- */

/*
 * Harvest: in PML mode, first drain every vCPU's PML buffer (the caller's job,
 * tdp_mmu_pml_drain). In DBIT mode this scans and clears D bits into the
 * bitmap. Then copies the bitmap into @out (@out_words >= words of the slot):
 * without MANUAL_PROTECT it also clears it and re-arms (write-protect or clear
 * D of) every page reported; with it, only copies. Flush (if *flush) before
 * handing @out out.
 */
int tdp_mmu_get_dirty_log(struct tdp_mmu *mmu, unsigned int slot_id, u64 *out, u64 out_words,
			  bool *flush);

/* The passes the above are built from (KVM's kvm_tdp_mmu_*), usable alone. */

/* Remove W from every leaf of the slot at @min_level or above. */
bool tdp_mmu_wrprot_slot(struct tdp_mmu *mmu, unsigned int slot_id, int min_level);
/* Clear the dirty state of every leaf: D where the format has A/D, else W. */
bool tdp_mmu_clear_dirty_slot(struct tdp_mmu *mmu, unsigned int slot_id);
/* Clear the dirty state of the 4 KiB leaves of pages base_gfn + gfn_offset + i
 * for each bit i of @mask: W when @wrprot or the format has no A/D, else D.
 * @gfn_offset is a multiple of 64. */
bool tdp_mmu_clear_dirty_masked(struct tdp_mmu *mmu, unsigned int slot_id, u64 gfn_offset, u64 mask,
				bool wrprot);
/* Set D on every leaf of the slot (PML: the CPU stops logging those pages). */
bool tdp_mmu_set_dirty_slot(struct tdp_mmu *mmu, unsigned int slot_id);
/* DBIT mode: atomically clear D of every leaf and mark the pages that had it. */
bool tdp_mmu_sync_dirty_bits(struct tdp_mmu *mmu, unsigned int slot_id);

/* The hypervisor itself wrote guest page @gfn (emulation, DMA): mark it. */
void tdp_mmu_mark_page_dirty(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn);

/* ---- accessed tracking ---- */

/* Clear A of every leaf in [gfn, gfn + npages) of @as_id; returns the number
 * of 4 KiB pages that had it. A/D formats only (0 otherwise). *flush as above. */
u64 tdp_mmu_age_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages, bool *flush);

#endif /* PT_MMU_TDP_MMU_PARITY_H */
