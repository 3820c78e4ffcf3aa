/* SPDX-License-Identifier: MIT */
/*
 * The mmu_platform of host tests and benchmarks: a counting page-table
 * allocator (hpa = the page's address in this process, so the hardware model
 * walks the very pages mmu/ writes), TLB flushes routed to the hardware model,
 * sched_yield() as relax, and a log that prints errors.
 *
 * Two allocators: one page per aligned_alloc() (tests: a table freed too early
 * and still walked is a use-after-free that ASan reports), or a pool carved
 * from one mmap (benchmarks: tens of thousands of pages without malloc's cost).
 */
#ifndef PT_TESTS_MODEL_PLATFORM_H
#define PT_TESTS_MODEL_PLATFORM_H

#include <stdatomic.h>
#include <pthread.h>

#include "mmu/mmu_platform.h"
#include "hw_model.h"

struct model_platform {
	struct hw_machine *hw;   /* flush target; NULL: flushes only counted */
	atomic_long pages;       /* allocated now */
	atomic_long pages_max;
	atomic_long allocs;
	atomic_long frees;
	atomic_long flushes;
	/* Allocation failure injection: when >= 0, allocations succeed this many
	 * more times, then fail. -1: never fail. */
	atomic_long fail_after;
	atomic_long failed;
	bool verbose;
	/* pool allocator (benchmarks) */
	bool use_pool;
	pthread_mutex_t pool_lock;
	u8 *pool;
	size_t pool_pages, pool_next;
	void **pool_free; /* stack of freed pages */
	size_t pool_nfree;
};

void model_platform_init(struct model_platform *p, struct hw_machine *hw);
/* Switch to the pool allocator with room for @max_pages pages. */
int model_platform_use_pool(struct model_platform *p, size_t max_pages);
void model_platform_fini(struct model_platform *p);
/* The struct mmu_platform that routes to @p. */
struct mmu_platform model_platform_ops(struct model_platform *p);
/* hpa -> table, for the hardware model. */
u64 *model_hpa_to_table(hpa_t hpa);

#endif /* PT_TESTS_MODEL_PLATFORM_H */
