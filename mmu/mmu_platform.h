/* SPDX-License-Identifier: MIT */
/*
 * What mmu/ needs from the world around it, and nothing more. The hypervisor
 * (hv/ + arch/x86) fills one struct mmu_platform per VM; host tests and the
 * hardware model (tests/model) fill their own. Locks come from
 * include/pt/lock.h, which needs no platform at all.
 *
 * Every callback may be called with the MMU lock held (for read or for write)
 * and must not call back into mmu/.
 */
#ifndef PT_MMU_PLATFORM_H
#define PT_MMU_PLATFORM_H

#include <pt/types.h>
#include <pt/lock.h>

struct tdp_mmu_root;

enum mmu_log_level {
	MMU_LOG_ERR,
	MMU_LOG_WARN,
	MMU_LOG_INFO,
	MMU_LOG_DEBUG,
};

struct mmu_platform {
	void *ctx; /* passed back to every callback */

	/*
	 * A zeroed, 4 KiB-aligned page for a page table: returns its virtual
	 * address and stores its host-physical address in *hpa; NULL when no
	 * memory is left (mmu/ copes: the operation reports MMU_ENOMEM or falls
	 * back, see tdp_mmu.h). May be called with the MMU lock held for read,
	 * from several CPUs at once.
	 */
	void *(*alloc_pt_page)(void *ctx, hpa_t *hpa);

	/* Give back a page from alloc_pt_page. Called only after a TLB flush
	 * made sure no CPU's paging-structure cache still points at it. */
	void (*free_pt_page)(void *ctx, void *va, hpa_t hpa);

	/* The virtual address at which mmu/ reads a page-table page. */
	void *(*hpa_to_va)(void *ctx, hpa_t hpa);

	/*
	 * Invalidate the guest-physical translations (TLB and paging-structure
	 * caches) derived from @root on every vCPU that may hold them, or from
	 * every root of this MMU when @root is NULL, and return only once that
	 * is done (INVEPT single-context / all-context; on AMD a new ASID or
	 * TLB_CONTROL flush before the next VMRUN, plus an IPI that waits for
	 * running vCPUs to exit). mmu/ calls it with the lock held; the caller
	 * of a tdp_mmu_* operation that returned "flush needed" calls it
	 * through tdp_mmu_flush_remote_tlbs().
	 * It must not wait for a vCPU that is inside the hypervisor (it may be
	 * spinning on mmu_lock, held by the caller): such a vCPU is marked to
	 * flush before its next VM entry instead (KVM's request model).
	 */
	void (*flush_tlbs)(void *ctx, const struct tdp_mmu_root *root);

	/*
	 * Called when a long walk lets go of the MMU lock so that others can
	 * take it (KVM's cond_resched): a few pause loops in the hypervisor,
	 * sched_yield() in host tests. May be NULL.
	 */
	void (*relax)(void *ctx);

	/*
	 * One line of diagnostics: a constant message and two values that the
	 * platform prints in hex (mmu/ has no printf). May be NULL.
	 */
	void (*log)(void *ctx, enum mmu_log_level level, const char *msg, u64 a, u64 b);
};

#endif /* PT_MMU_PLATFORM_H */
