/* SPDX-License-Identifier: MIT */
/*
 * The mmu_platform of the mmu/ unit tests: one aligned_alloc() per page-table
 * page (hpa = the address, so ASan catches a table used after it was freed),
 * counters that prove teardown returns every page, allocation-failure
 * injection, and a flush that waits for "vCPU" threads as an IPI would.
 */
#ifndef PT_TESTS_MMU_TEST_PLATFORM_H
#define PT_TESTS_MMU_TEST_PLATFORM_H

#include "tests/check.h"

#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/tdp_mmu_parity.h"

struct test_plat {
	long live; /* pages allocated now */
	long allocs;
	long frees;
	long flushes;
	long fail_after; /* >= 0: that many more allocations succeed; -1: all do */
	/* Called from flush_tlbs (the concurrent test waits for its vCPUs). */
	void (*on_flush)(struct test_plat *tp);
	/* Called from relax, i.e. while a walk has let go of mmu_lock. */
	void (*on_relax)(struct test_plat *tp);
	void *priv;
};

static void *tp_alloc(void *ctx, hpa_t *hpa)
{
	struct test_plat *tp = ctx;
	void *va;

	if (__atomic_load_n(&tp->fail_after, __ATOMIC_RELAXED) >= 0 &&
	    __atomic_fetch_sub(&tp->fail_after, 1, __ATOMIC_RELAXED) <= 0) {
		__atomic_store_n(&tp->fail_after, 0, __ATOMIC_RELAXED);
		return NULL;
	}
	va = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
	if (!va)
		return NULL;
	memset(va, 0, PAGE_SIZE);
	*hpa = (hpa_t)(uintptr_t)va;
	__atomic_fetch_add(&tp->live, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tp->allocs, 1, __ATOMIC_RELAXED);
	return va;
}

static void tp_free(void *ctx, void *va, hpa_t hpa)
{
	struct test_plat *tp = ctx;

	if ((hpa_t)(uintptr_t)va != hpa)
		abort();
	memset(va, 0xa5, PAGE_SIZE); /* poison: a stale walker reads garbage */
	free(va);
	__atomic_fetch_sub(&tp->live, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&tp->frees, 1, __ATOMIC_RELAXED);
}

static void *tp_hpa_to_va(void *ctx, hpa_t hpa)
{
	(void)ctx;
	return (void *)(uintptr_t)hpa;
}

static void tp_flush(void *ctx, const struct tdp_mmu_root *root)
{
	struct test_plat *tp = ctx;

	(void)root;
	__atomic_fetch_add(&tp->flushes, 1, __ATOMIC_RELAXED);
	if (tp->on_flush)
		tp->on_flush(tp);
}

static void tp_relax(void *ctx)
{
	struct test_plat *tp = ctx;

	if (tp->on_relax)
		tp->on_relax(tp);
	else
		sched_yield();
}

static void tp_log(void *ctx, enum mmu_log_level level, const char *msg, u64 a, u64 b)
{
	(void)ctx;
	if (level <= MMU_LOG_WARN)
		fprintf(stderr, "# mmu: %s %#llx %#llx\n", msg, (unsigned long long)a,
			(unsigned long long)b);
}

static inline struct mmu_platform test_plat_ops(struct test_plat *tp)
{
	return (struct mmu_platform){
	    .ctx = tp,
	    .alloc_pt_page = tp_alloc,
	    .free_pt_page = tp_free,
	    .hpa_to_va = tp_hpa_to_va,
	    .flush_tlbs = tp_flush,
	    .relax = tp_relax,
	    .log = tp_log,
	};
}

void pt_assert_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "not ok assertion %s at %s:%d\n", expr, file, line);
	printf("not ok assertion %s at %s:%d\n", expr, file, line);
	fflush(stdout);
	abort();
}

/* ---- reporting ---- */

#endif /* PT_TESTS_MMU_TEST_PLATFORM_H */
