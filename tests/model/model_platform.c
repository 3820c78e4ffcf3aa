// SPDX-License-Identifier: MIT
/* The host platform of mmu/ for tests and benchmarks: see model_platform.h. */
#include "model_platform.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "mmu/tdp_mmu.h"

/* mmu/ stores the hpa in bits 51:12 of an entry; user-space addresses of this
 * process are below 2^47, so "hpa = address" fits every format. */
_Static_assert(sizeof(void *) == 8, "hpa = pointer needs 64-bit pointers");

u64 *model_hpa_to_table(hpa_t hpa)
{
	return (u64 *)(uintptr_t)hpa;
}

static void *plat_alloc(void *ctx, hpa_t *hpa)
{
	struct model_platform *p = ctx;
	void *va;

	long left = atomic_load(&p->fail_after);
	while (left >= 0) {
		if (left == 0) {
			atomic_fetch_add(&p->failed, 1);
			return NULL;
		}
		if (atomic_compare_exchange_weak(&p->fail_after, &left, left - 1))
			break;
	}
	if (p->use_pool) {
		pthread_mutex_lock(&p->pool_lock);
		if (p->pool_nfree) {
			va = p->pool_free[--p->pool_nfree];
			pthread_mutex_unlock(&p->pool_lock);
			memset(va, 0, PAGE_SIZE);
		} else if (p->pool_next < p->pool_pages) {
			/* Fresh pages of an anonymous mapping are zero. */
			va = p->pool + (p->pool_next++ << PAGE_SHIFT);
			pthread_mutex_unlock(&p->pool_lock);
		} else {
			pthread_mutex_unlock(&p->pool_lock);
			atomic_fetch_add(&p->failed, 1);
			return NULL;
		}
	} else {
		va = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
		if (!va)
			return NULL;
		memset(va, 0, PAGE_SIZE);
	}
	long n = atomic_fetch_add(&p->pages, 1) + 1;
	long max = atomic_load(&p->pages_max);
	while (n > max && !atomic_compare_exchange_weak(&p->pages_max, &max, n))
		;
	atomic_fetch_add(&p->allocs, 1);
	*hpa = (hpa_t)(uintptr_t)va;
	return va;
}

static void plat_free(void *ctx, void *va, hpa_t hpa)
{
	struct model_platform *p = ctx;

	if ((hpa_t)(uintptr_t)va != hpa) {
		fprintf(stderr, "model_platform: free of va %p with hpa %#llx\n", va,
			(unsigned long long)hpa);
		abort();
	}
	atomic_fetch_sub(&p->pages, 1);
	atomic_fetch_add(&p->frees, 1);
	if (p->use_pool) {
		pthread_mutex_lock(&p->pool_lock);
		p->pool_free[p->pool_nfree++] = va;
		pthread_mutex_unlock(&p->pool_lock);
	} else {
		/* Poison before freeing: a walk through a table freed before the
		 * flush reads garbage under a plain build, a report under ASan. */
		memset(va, 0xa5, PAGE_SIZE);
		free(va);
	}
}

static void *plat_hpa_to_va(void *ctx, hpa_t hpa)
{
	(void)ctx;
	return (void *)(uintptr_t)hpa;
}

static void plat_flush(void *ctx, const struct tdp_mmu_root *root)
{
	struct model_platform *p = ctx;

	atomic_fetch_add(&p->flushes, 1);
	if (p->hw)
		hw_flush_root(p->hw, root ? tdp_mmu_root_hpa(root) : 0);
}

static void plat_relax(void *ctx)
{
	(void)ctx;
	sched_yield();
}

static void plat_log(void *ctx, enum mmu_log_level level, const char *msg, u64 a, u64 b)
{
	struct model_platform *p = ctx;

	if (level <= MMU_LOG_WARN || p->verbose)
		fprintf(stderr, "mmu[%d]: %s %#llx %#llx\n", (int)level, msg, (unsigned long long)a,
			(unsigned long long)b);
}

void model_platform_init(struct model_platform *p, struct hw_machine *hw)
{
	memset(p, 0, sizeof(*p));
	p->hw = hw;
	atomic_store(&p->fail_after, -1);
	pthread_mutex_init(&p->pool_lock, NULL);
}

int model_platform_use_pool(struct model_platform *p, size_t max_pages)
{
	/* Populated up front: a hypervisor's page-table pool is memory it
	 * already owns, so the kernel's first-touch faults are not mmu/'s cost. */
	p->pool = mmap(NULL, max_pages << PAGE_SHIFT, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p->pool == MAP_FAILED)
		return -1;
	/* And written once, page by page: MAP_POPULATE gives the pages, but
	 * under a hypervisor (the bench machines are VMs) the first write to
	 * each still traps to it, which made the first pass that takes fresh
	 * pages (enable's split) cost 20-30x the floor in the bench's
	 * thread CPU time. Zero stays zero: fresh pages are still zeroed. */
	for (size_t i = 0; i < max_pages; i++)
		__atomic_store_n((u64 *)(p->pool + (i << PAGE_SHIFT)), 0, __ATOMIC_RELAXED);
	p->pool_free = calloc(max_pages, sizeof(void *));
	if (!p->pool_free)
		return -1;
	p->pool_pages = max_pages;
	p->use_pool = true;
	return 0;
}

void model_platform_fini(struct model_platform *p)
{
	if (p->use_pool) {
		munmap(p->pool, p->pool_pages << PAGE_SHIFT);
		free(p->pool_free);
	}
	pthread_mutex_destroy(&p->pool_lock);
}

struct mmu_platform model_platform_ops(struct model_platform *p)
{
	return (struct mmu_platform){
		.ctx = p,
		.alloc_pt_page = plat_alloc,
		.free_pt_page = plat_free,
		.hpa_to_va = plat_hpa_to_va,
		.flush_tlbs = plat_flush,
		.relax = plat_relax,
		.log = plat_log,
	};
}
