// SPDX-License-Identifier: MIT
/*
 * The pre-order TDP iterator (see tdp_iter.h). No recursion: the path from the
 * root is kept in iter->pt_path, so a walk needs a fixed, small stack however
 * much memory it covers.
 */
#include "mmu/tdp_iter.h"
#include <pt/assert.h>

/* GFNs a 4-level table covers: 2^(4 * 9) frames = 256 TiB. */
static inline bool tdp_iter_gfn_in_reach(const struct tdp_iter *iter, gfn_t gfn)
{
	return (gfn >> (iter->root_level * SPTE_LEVEL_BITS)) == 0;
}

static void tdp_iter_refresh_sptep(struct tdp_iter *iter)
{
	iter->sptep = iter->pt_path[iter->level - 1] + tdp_spte_index(iter->gfn, iter->level);
	iter->old_spte = tdp_iter_read_spte(iter->sptep);
}

/* Back to the root, at the entry that covers next_last_level_gfn. */
static void tdp_iter_restart(struct tdp_iter *iter)
{
	iter->yielded = false;
	iter->skip_children = false;
	iter->yielded_gfn = iter->next_last_level_gfn;
	iter->level = iter->root_level;
	iter->valid = tdp_iter_gfn_in_reach(iter, iter->next_last_level_gfn);
	if (!iter->valid)
		return;
	iter->gfn = tdp_gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
}

void tdp_iter_start(struct tdp_iter *iter, u64 *root_pt, int root_level, int min_level, gfn_t start,
		    const struct spte_format *fmt, void *(*hpa_to_va)(void *ctx, hpa_t hpa),
		    void *va_ctx)
{
	PT_ASSERT(root_level >= TDP_LEVEL_4K && root_level <= TDP_ROOT_LEVEL);
	PT_ASSERT(min_level >= TDP_LEVEL_4K && min_level <= root_level);

	iter->fmt = fmt;
	iter->hpa_to_va = hpa_to_va;
	iter->va_ctx = va_ctx;
	iter->root_level = root_level;
	iter->min_level = min_level;
	iter->pt_path[root_level - 1] = root_pt;
	iter->next_last_level_gfn = start;
	iter->yielded_gfn = start;
	tdp_iter_restart(iter);
}

u64 *tdp_iter_child_pt(const struct tdp_iter *iter)
{
	return iter->hpa_to_va(iter->va_ctx, spte_to_hpa(iter->fmt, iter->old_spte));
}

/*
 * Into the table old_spte points to, at the entry covering
 * next_last_level_gfn. The entry is re-read first: the caller may just have
 * replaced a huge leaf by a table (split), or a table by a leaf (collapse).
 */
static bool try_step_down(struct tdp_iter *iter)
{
	u64 *child;

	if (iter->level == iter->min_level)
		return false;
	iter->old_spte = tdp_iter_read_spte(iter->sptep);
	if (!spte_is_present(iter->old_spte) ||
	    spte_is_leaf(iter->fmt, iter->old_spte, iter->level))
		return false;

	child = tdp_iter_child_pt(iter);
	iter->level--;
	iter->pt_path[iter->level - 1] = child;
	iter->gfn = tdp_gfn_round_for_level(iter->next_last_level_gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

static bool try_step_side(struct tdp_iter *iter)
{
	if (tdp_spte_index(iter->gfn, iter->level) == SPTE_ENT_PER_PAGE - 1)
		return false;
	iter->gfn += tdp_pages_per_level(iter->level);
	iter->next_last_level_gfn = iter->gfn;
	iter->sptep++;
	iter->old_spte = tdp_iter_read_spte(iter->sptep);
	return true;
}

static bool try_step_up(struct tdp_iter *iter)
{
	if (iter->level == iter->root_level)
		return false;
	iter->level++;
	iter->gfn = tdp_gfn_round_for_level(iter->gfn, iter->level);
	tdp_iter_refresh_sptep(iter);
	return true;
}

void tdp_iter_next(struct tdp_iter *iter)
{
	if (iter->yielded) {
		tdp_iter_restart(iter);
		return;
	}
	if (iter->skip_children)
		iter->skip_children = false;
	else if (try_step_down(iter))
		return;
	do {
		if (try_step_side(iter))
			return;
	} while (try_step_up(iter));
	iter->valid = false;
}

void tdp_iter_refresh(struct tdp_iter *iter)
{
	iter->old_spte = tdp_iter_read_spte(iter->sptep);
}

void tdp_iter_yield(struct tdp_iter *iter)
{
	PT_ASSERT(iter->gfn <= iter->next_last_level_gfn);
	iter->yielded = true;
}

bool tdp_iter_can_yield(const struct tdp_iter *iter)
{
	return iter->next_last_level_gfn != iter->yielded_gfn;
}
