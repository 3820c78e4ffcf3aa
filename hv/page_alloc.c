/* SPDX-License-Identifier: MIT */
#include "hv/page_alloc.h"

#include "hv/log.h"

#include <pt/lock.h>

#ifndef PT_FREESTANDING
uintptr_t hv_host_phys_base;
#endif

struct free_page {
	struct free_page *next;
};

/*
 * One pool for every CPU: the vCPUs' page-fault paths allocate nested
 * tables while the management CPU harvests, so every change of the pool
 * is under pool.lock (a leaf lock: nothing else is taken inside it).
 */
static struct {
	pt_spinlock_t lock;
	hpa_t next, end;
	struct free_page *free_list;
	u64 in_use, nr_free_list;
} pool;

/* The whole pool, nothing handed out: a host test may build its machine again. */
void hv_page_alloc_init(hpa_t start, hpa_t end)
{
	pool.next = (start + PAGE_SIZE - 1) & PAGE_MASK;
	pool.end = end & PAGE_MASK;
	pool.free_list = NULL;
	pool.in_use = 0;
	pool.nr_free_list = 0;
}

static void page_zero(void *p)
{
	u64 *q = p;
	unsigned int i;

	for (i = 0; i < PAGE_SIZE / sizeof(u64); i++)
		q[i] = 0;
}

void *hv_page_alloc(void)
{
	void *p;

	pt_spin_lock(&pool.lock);
	if (pool.free_list) {
		p = pool.free_list;
		pool.free_list = pool.free_list->next;
		pool.nr_free_list--;
	} else if (pool.next < pool.end) {
		p = hv_va(pool.next);
		pool.next += PAGE_SIZE;
	} else {
		pt_spin_unlock(&pool.lock);
		return NULL;
	}
	pool.in_use++;
	pt_spin_unlock(&pool.lock);
	page_zero(p);
	return p;
}

void *hv_pages_alloc_contig(u64 n)
{
	void *p;
	u64 i;

	pt_spin_lock(&pool.lock);
	if (n > (pool.end - pool.next) / PAGE_SIZE) {
		pt_spin_unlock(&pool.lock);
		return NULL;
	}
	p = hv_va(pool.next);
	pool.next += n * PAGE_SIZE;
	pool.in_use += n;
	pt_spin_unlock(&pool.lock);
	for (i = 0; i < n; i++)
		page_zero((char *)p + i * PAGE_SIZE);
	return p;
}

void hv_page_free(void *page)
{
	struct free_page *f = page;

	if (!page)
		return;
	if ((hv_pa(page) & ~PAGE_MASK) || hv_pa(page) >= pool.end)
		hv_panic("hv_page_free: %p is not a pool page", page);
	pt_spin_lock(&pool.lock);
	f->next = pool.free_list;
	pool.free_list = f;
	pool.nr_free_list++;
	pool.in_use--;
	pt_spin_unlock(&pool.lock);
}

u64 hv_pages_in_use(void)
{
	return pool.in_use;
}

u64 hv_pages_free(void)
{
	return (pool.end - pool.next) / PAGE_SIZE + pool.nr_free_list;
}
