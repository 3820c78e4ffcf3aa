/* SPDX-License-Identifier: MIT */
/*
 * Pages from the hypervisor's hidden pool (hv/boot.h). Physical and virtual
 * addresses are the same in the host (identity map), so a page's pointer is
 * its hpa. Single CPU, no locking: only the host context allocates.
 */
#ifndef PT_HV_PAGE_ALLOC_H
#define PT_HV_PAGE_ALLOC_H

#include <pt/types.h>

void hv_page_alloc_init(hpa_t start, hpa_t end);
/* A zeroed 4 KiB page, or NULL when the pool is exhausted. */
void *hv_page_alloc(void);
/* `n` physically contiguous zeroed pages (never recycled), or NULL. */
void *hv_pages_alloc_contig(u64 n);
void hv_page_free(void *page);
u64 hv_pages_in_use(void);
u64 hv_pages_free(void);

#ifdef PT_FREESTANDING
static inline hpa_t hv_pa(const void *p)
{
	return (hpa_t)(uintptr_t)p;
}
static inline void *hv_va(hpa_t pa)
{
	return (void *)(uintptr_t)pa;
}
#else
/*
 * Host tests: the simulated machine's physical memory (guest RAM and the
 * hidden pool) is one mapping of the test process, at this address
 * (tests/hv/host_machine.c); 0, the identity, where a test keeps host
 * pointers as physical addresses.
 */
extern uintptr_t hv_host_phys_base;

static inline hpa_t hv_pa(const void *p)
{
	return (hpa_t)((uintptr_t)p - hv_host_phys_base);
}
static inline void *hv_va(hpa_t pa)
{
	return (void *)(uintptr_t)(pa + hv_host_phys_base);
}
#endif

#endif /* PT_HV_PAGE_ALLOC_H */
