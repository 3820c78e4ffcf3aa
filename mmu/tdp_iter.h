/* SPDX-License-Identifier: MIT */
/*
 * A pre-order walk over the entries that map GFNs [start, end) under one root,
 * without recursion: the iterator keeps the table of every level it has
 * descended through (pt_path) and steps down into a present non-leaf entry
 * (unless at min_level), else sideways to the next entry of the same table,
 * else up. At each stop it exposes gfn (first GFN the entry maps), level, the
 * entry pointer and old_spte, a snapshot that atomic updates compare against
 * and refresh.
 *
 * Yielding: a walk that has done its batch (checked at the top of its loop,
 * before it handles the current entry) marks the iterator yielded
 * (tdp_iter_yield) and lets go of the lock; the next tdp_iter_next() restarts
 * from the root at next_last_level_gfn, the first GFN not yet handled, so
 * tables changed or freed meanwhile are never touched through stale pointers.
 * Entries above it on the way down are visited again (every pass is
 * idempotent on them). A walk may yield again only once it has made progress
 * (tdp_iter_can_yield), so even a batch of one entry always terminates.
 */
#ifndef PT_MMU_TDP_ITER_H
#define PT_MMU_TDP_ITER_H

#include <pt/types.h>
#include "mmu/spte.h"

struct tdp_iter {
	/* Where a restart resumes: the lowest GFN not yet fully handled. */
	gfn_t next_last_level_gfn;
	/* next_last_level_gfn at the last (re)start: no progress since, no yield. */
	gfn_t yielded_gfn;
	/* Table at each level on the way down: pt_path[level - 1]. */
	u64 *pt_path[TDP_ROOT_LEVEL];
	u64 *sptep;
	u64 old_spte;
	gfn_t gfn;
	int level;
	int min_level;
	int root_level;
	bool valid;
	bool yielded;
	bool skip_children; /* the next step does not go down (tdp_iter_skip_children) */
	const struct spte_format *fmt;
	/* hpa -> pointer of a child table (the platform's hpa_to_va). */
	void *(*hpa_to_va)(void *ctx, hpa_t hpa);
	void *va_ctx;
};

static inline u64 tdp_iter_read_spte(const u64 *sptep)
{
	return __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
}

void tdp_iter_start(struct tdp_iter *iter, u64 *root_pt, int root_level, int min_level, gfn_t start,
		    const struct spte_format *fmt, void *(*hpa_to_va)(void *ctx, hpa_t hpa),
		    void *va_ctx);
void tdp_iter_next(struct tdp_iter *iter);
/* Re-read *sptep into old_spte (after a failed cmpxchg did not refresh it). */
void tdp_iter_refresh(struct tdp_iter *iter);
/* Mark the walk yielded: the next tdp_iter_next() restarts from the root. */
void tdp_iter_yield(struct tdp_iter *iter);
/* The walk made progress since it (re)started, so yielding now cannot loop. */
bool tdp_iter_can_yield(const struct tdp_iter *iter);

/*
 * Move to entry @index of the current table (at or after the current one),
 * as if the walk had stepped sideways there: for loops that handle a run of
 * entries of one table themselves.
 */
static inline void tdp_iter_skip_to_index(struct tdp_iter *iter, unsigned int index)
{
	unsigned int cur = tdp_spte_index(iter->gfn, iter->level);

	iter->gfn += (u64)(index - cur) * tdp_pages_per_level(iter->level);
	iter->sptep += index - cur;
	iter->next_last_level_gfn = iter->gfn;
	iter->old_spte = tdp_iter_read_spte(iter->sptep);
}

/*
 * The walk has handled everything below the current entry itself (a split
 * whose children are born in their final state): the next step goes sideways
 * or up, not down into them.
 */
static inline void tdp_iter_skip_children(struct tdp_iter *iter)
{
	iter->skip_children = true;
}

/* The table at iter->level - 1 that a present non-leaf old_spte points to. */
u64 *tdp_iter_child_pt(const struct tdp_iter *iter);

#define for_each_tdp_pte_min_level(iter, root_pt, root_level, min_level, start, end, fmt, h2v,     \
				   ctx)                                                            \
	for (tdp_iter_start(&(iter), root_pt, root_level, min_level, start, fmt, h2v, ctx);        \
	     (iter).valid && (iter).gfn < (end); tdp_iter_next(&(iter)))

#define for_each_tdp_pte(iter, root_pt, root_level, start, end, fmt, h2v, ctx)                     \
	for_each_tdp_pte_min_level(iter, root_pt, root_level, TDP_LEVEL_4K, start, end, fmt, h2v,  \
				   ctx)

#endif /* PT_MMU_TDP_ITER_H */
