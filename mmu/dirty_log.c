// SPDX-License-Identifier: MIT
/*
 * Dirty logging: the per-root passes of the seed patch (write-protect a slot,
 * clear its dirty state, clear it by 64-page mask, set D), eager splitting and
 * re-collapsing of huge pages, and the harvest operations built on them
 * (KVM_GET_DIRTY_LOG, KVM_CLEAR_DIRTY_LOG with manual protection).
 *
 * The invariant every harvest keeps, for a page P of a logged slot: if the
 * guest can write P without the write reaching the bitmap (W set in WP mode,
 * W set with D set in D-bit modes, counting translations cached in TLBs),
 * then P's bit is set, or P's D bit is set (D-bit modes: the next sync or
 * PML drain moves it to the bitmap). A harvest takes bits out of the bitmap
 * only for pages it re-arms (W or D cleared) in the same pass, and the caller
 * flushes before handing the bits out, so a write after the re-arm either
 * faults (WP), sets D afresh (D-bit modes), or hits a page reported now.
 */
#include <pt/bitops.h>
#include "mmu/tdp_mmu_internal.h"

enum tdp_rearm {
	TDP_REARM_WRPROT,  /* clear W */
	TDP_REARM_CLEAR_D, /* clear D (PML: the CPU logs the next write) */
	TDP_REARM_SYNC_D,  /* clear D and mark the page if D was set (DBIT) */
	TDP_REARM_SET_D,   /* set D (not a re-arm: PML stops logging the page) */
};

static struct tdp_memslot *tdp_logged_slot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	if (slot_id >= TDP_MMU_MAX_MEMSLOTS || !mmu->slots[slot_id].in_use)
		return NULL;
	return &mmu->slots[slot_id];
}

/*
 * The leaf with its dirty state changed per @how; == old if nothing to do.
 * SET_D sets A with D, as the processor's own write would: D without A is a
 * state the processor never makes, and with both set the entry has nothing
 * left for the processor to set (spte_hw_settable), so this and later passes
 * change it with plain stores.
 */
static inline u64 tdp_rearm_spte(const struct spte_format *f, u64 old_spte, enum tdp_rearm how)
{
	if (how == TDP_REARM_SET_D)
		return old_spte | f->dirty_mask | f->accessed_mask;
	if (how == TDP_REARM_WRPROT || !f->has_ad)
		return spte_is_writable(f, old_spte) ? spte_clear_writable(f, old_spte) : old_spte;
	return old_spte & ~f->dirty_mask;
}

/*
 * Whether a D bit the processor sets in @slot is dirty-log state that a plain
 * store must not lose. Only in DBIT mode is D the log itself. In WP mode the
 * write fault marks the page (D is never read); in PML mode the processor
 * writes the log entry as it sets D, so a D overwritten afterwards loses
 * nothing but causes one more log entry; a slot that does not log has no
 * round to lose it from (enabling DBIT clears every D first).
 */
static inline bool tdp_slot_d_is_log(const struct tdp_memslot *slot)
{
	return tdp_slot_is_logging(slot) && slot->log_mode == TDP_DIRTY_DBIT;
}

/*
 * Whether the change @old -> @new of a present leaf may be a plain store:
 *  - the processor: every bit it could set meanwhile is already set in @new
 *    (spte_hw_settable; D only where it is log state), so its update cannot
 *    be lost;
 *  - software: with mmu_lock held for write nobody else changes entries; held
 *    for read, the only other writers of a present 4 KiB..1 GiB leaf are the
 *    fault path, which changes a leaf only to add W (never on a writable
 *    one), and aging, which clears A: a plain store after aging's cmpxchg
 *    puts A back, so aging may see the page young once more (a hint, never
 *    dirty state). Passes that change dirty state are serialized by
 *    mgmt_lock. So under the read lock: only writable leaves.
 * Everything else is a cmpxchg on the snapshot.
 */
static inline bool tdp_rearm_can_store(const struct tdp_op *op, const struct tdp_memslot *slot,
				       u64 old, u64 new)
{
	const struct spte_format *f = &op->mmu->fmt;
	u64 must_keep = spte_hw_settable(f, old);

	if (!tdp_slot_d_is_log(slot))
		must_keep &= ~f->dirty_mask;
	if (must_keep & ~new)
		return false;
	return !op->shared || spte_is_writable(f, old);
}

/*
 * Change one present leaf per @how: a plain store when tdp_rearm_can_store,
 * else a cmpxchg loop on the real value (the CPU may set A/D meanwhile). The
 * funnel runs unless the change is one it has nothing to do for (only W/D/A
 * moved, and no dirty-log rule fires). SYNC_D marks the page if D was set, or
 * leaves that to the caller when @had_d is given (batched marking). Returns
 * true if the entry changed.
 */
static inline bool tdp_rearm_one(struct tdp_op *op, const struct tdp_memslot *slot, u64 *sptep,
				 gfn_t gfn, int level, enum tdp_rearm how, bool *had_d)
{
	const struct spte_format *f = &op->mmu->fmt;
	u64 old = tdp_iter_read_spte(sptep), new;

	for (;;) {
		if (!spte_is_present(old) || !spte_is_leaf(f, old, level))
			return false;
		new = tdp_rearm_spte(f, old, how);
		if (new == old)
			return false;
		if (tdp_rearm_can_store(op, slot, old, new)) {
			__atomic_store_n(sptep, new, __ATOMIC_RELEASE);
			op->rearm_plain++;
			break;
		}
		if (__atomic_compare_exchange_n(sptep, &old, new, false, __ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			op->rearm_atomic++;
			break;
		}
		tdp_stat_add(op->mmu, cmpxchg_retries, 1);
	}
	if (op->record_dirty &&
	    (((new & ~old) & f->writable_mask) || ((old & ~new) & f->dirty_mask)))
		handle_changed_spte(op, gfn, old, new, level);
	if (how == TDP_REARM_SYNC_D && (old & f->dirty_mask)) {
		if (had_d)
			*had_d = true;
		else
			tdp_mark_dirty_range(op->mmu, slot, gfn, tdp_pages_per_level(level));
	}
	op->flush = true;
	return true;
}

/*
 * What a run of 4 KiB leaves needs for its inline fast path: new = (old &
 * ~clr) | set gives tdp_rearm_spte for every present leaf, and an entry with
 * (old & fast_mask) == fast_mask (present, writable, and for W/D clearing
 * also A set, and D where it is log state) is one tdp_rearm_can_store allows
 * and the funnel has nothing to do for. Everything else takes tdp_rearm_one.
 */
struct tdp_rearm_run {
	u64 clr, set, fast_mask;
	bool fast; /* false: every changed entry goes the slow way */
};

static void tdp_rearm_run_init(const struct tdp_op *op, const struct tdp_memslot *slot,
			       enum tdp_rearm how, struct tdp_rearm_run *r)
{
	const struct spte_format *f = &op->mmu->fmt;

	r->fast_mask = SPTE_MMU_PRESENT | f->writable_mask;
	r->set = 0;
	r->fast = true;
	if (how == TDP_REARM_SET_D) {
		/* Adds only bits the processor could add: any A/D state will do. */
		r->clr = 0;
		r->set = f->dirty_mask | f->accessed_mask;
	} else if (how == TDP_REARM_WRPROT || !f->has_ad) {
		r->clr = f->writable_mask | SPTE_MMU_WRITABLE;
		r->fast_mask |= f->accessed_mask;
		if (tdp_slot_d_is_log(slot))
			r->fast_mask |= f->dirty_mask;
	} else {
		r->clr = f->dirty_mask;
		r->fast_mask |= f->accessed_mask | f->dirty_mask;
		/* A D bit that goes away is funnel work when the op records. */
		r->fast = !op->record_dirty;
	}
}

/*
 * One entry of tdp_rearm_block's loop, read as @old, decided alone: a
 * fast-path store, a bit in *slow for the slow path, or nothing to do.
 */
static __attribute__((always_inline)) inline void
tdp_rearm_entry(const struct tdp_op *op, const struct tdp_memslot *slot, u64 *sptep, u64 old,
		unsigned int i, enum tdp_rearm how, u64 keep, u64 set, u64 fm, bool fast,
		u64 *marks, u64 *slow, u64 *n)
{
	u64 new = (old & keep) | set;

	(void)op;
	(void)slot;
	if (new == old)
		return;
	if (fast && (old & fm) == fm) {
		PT_ASSERT_ENTRY(tdp_rearm_can_store(op, slot, old, new));
		__atomic_store_n(sptep, new, __ATOMIC_RELAXED);
		/* SYNC_D's fast path takes only entries with D set
		 * (tdp_rearm_run_init: D is in fm), so each is marked. */
		if (how == TDP_REARM_SYNC_D) {
			PT_ASSERT_ENTRY(old & op->mmu->fmt.dirty_mask);
			*marks |= 1ull << (i % 64);
		}
		(*n)++;
	} else if (spte_is_present(old)) {
		*slow |= 1ull << (i % 64);
	}
}

/* Entries tdp_rearm_block decides together: one test for the whole group. */
#define TDP_REARM_GROUP 8

/*
 * The loop of tdp_rearm_leaf_run over entries [lo, hi] of one 64-entry block,
 * with @how a constant in each caller (always inlined): SYNC_D's marks cost
 * nothing in the other passes. The loop itself calls nothing, so everything
 * it carries stays in registers; entries that need the slow path (a cmpxchg,
 * the funnel) are collected in a mask and handled after it. Returns the
 * block's marks (SYNC_D: pages whose D it took); counts plain stores in
 * *plain and slow-path changes in *changed.
 *
 * Where a pass finds what a running guest leaves (every entry of a group on
 * the fast path), the per-entry branches are the pass's cost, not memory: so
 * the loop reads a group of entries, ANDs them, and when every one has the
 * fast-path bits stores the group's new values without deciding entry by
 * entry. That is the same decision as entry by entry: each entry of the
 * group passes the fast-path test on the value read, and one whose new value
 * equals the old (SET_D on an entry with A and D set) is stored unchanged,
 * which tdp_rearm_can_store allows for the same reason (nothing left that
 * the processor could set). A group in which no entry has a bit to clear
 * (the common case of a harvest: clean pages) is left alone as a whole; any
 * other group goes entry by entry.
 */
static __attribute__((always_inline)) inline u64
tdp_rearm_block(struct tdp_op *op, const struct tdp_memslot *slot, u64 *pt, gfn_t gfn0,
		unsigned int lo, unsigned int hi, enum tdp_rearm how, u64 keep, u64 set, u64 fm,
		bool fast, u64 *plain, bool *changed)
{
	u64 marks = 0, slow = 0, n = 0;
	unsigned int i = lo, k;

	for (; fast && i + TDP_REARM_GROUP <= hi + 1; i += TDP_REARM_GROUP) {
		u64 old[TDP_REARM_GROUP], all = ~0ull, any = 0, *p = &pt[i];

#pragma GCC unroll 8
		for (k = 0; k < TDP_REARM_GROUP; k++) {
			old[k] = __atomic_load_n(&p[k], __ATOMIC_RELAXED);
			all &= old[k];
			any |= old[k];
		}
		if ((all & fm) != fm) {
			/* Re-arms that only clear: no entry has a bit to clear
			 * (a clean or already re-armed group), nothing to do. */
			if (how != TDP_REARM_SET_D && !(any & ~keep))
				continue;
#pragma GCC unroll 8
			for (k = 0; k < TDP_REARM_GROUP; k++)
				tdp_rearm_entry(op, slot, &p[k], old[k], i + k, how, keep, set, fm,
						fast, &marks, &slow, &n);
			continue;
		}
#pragma GCC unroll 8
		for (k = 0; k < TDP_REARM_GROUP; k++) {
			/* Only SET_D sets bits; the others only clear. */
			u64 new = how == TDP_REARM_SET_D ? old[k] | set : old[k] & keep;

			PT_ASSERT_ENTRY(tdp_rearm_can_store(op, slot, old[k], new));
			__atomic_store_n(&p[k], new, __ATOMIC_RELAXED);
			/* Only SET_D can find nothing to change (fm holds the
			 * bit every other re-arm clears). */
			if (how == TDP_REARM_SET_D)
				n += new != old[k];
		}
		if (how != TDP_REARM_SET_D)
			n += TDP_REARM_GROUP;
		if (how == TDP_REARM_SYNC_D)
			marks |= ((1ull << TDP_REARM_GROUP) - 1) << (i % 64);
	}
	for (; i <= hi; i++)
		tdp_rearm_entry(op, slot, &pt[i], __atomic_load_n(&pt[i], __ATOMIC_RELAXED), i, how,
				keep, set, fm, fast, &marks, &slow, &n);
	for (; slow; slow &= slow - 1) {
		unsigned int j = (lo & ~63u) + (unsigned int)__builtin_ctzll(slow);
		bool had_d = false;

		/* tdp_rearm_one re-reads the entry and decides again. */
		*changed |= tdp_rearm_one(op, slot, &pt[j], gfn0 + j, TDP_LEVEL_4K, how, &had_d);
		marks |= (u64)had_d << (j % 64);
	}
	*plain += n;
	return marks;
}

/*
 * get-dirty-log of a DBIT slot in one walk. The pass that moves D bits into
 * the bitmap also takes the bitmap out, word by word, right behind itself: a
 * word is taken (exchanged with 0 into the caller's buffer) once the walk has
 * re-armed every page of it in the last root, so the take-then-re-arm rule of
 * the file comment holds per word as it did for the whole slot when the take
 * was a second loop after the pass. Where a 64-entry block is exactly one
 * word (a slot based on a multiple of 64 pages), its marks go straight into
 * the word's take, not into the bitmap first: one locked operation per word
 * instead of two, and no second pass over the bitmap.
 */
struct tdp_take {
	const struct tdp_memslot *slot;
	u64 *out;
	u64 next;  /* first word of the slot's bitmap not yet taken */
	u64 words; /* the slot's bitmap words */
};

/*
 * Take one word: exchange it with 0, or only read it when it is 0 already. A
 * locked exchange waits for every store before it, here the walk's re-arms
 * of the entries still on their way to memory: one per word would cost the
 * walk its streaming. A word read as 0 is taken as an exchange of 0 with 0 at
 * that moment would be; a bit set after the read stays in the bitmap for the
 * next harvest, as after an exchange. In a DBIT slot most words are 0: D
 * bits go to the take directly, only fault-path and huge-leaf marks go
 * through the bitmap.
 */
static inline u64 tdp_take_word(u64 *word)
{
	if (!__atomic_load_n(word, __ATOMIC_RELAXED))
		return 0;
	return __atomic_exchange_n(word, 0, __ATOMIC_ACQ_REL);
}

/* Take the words [t->next, word_end): every page of them was re-armed. */
static void tdp_take_until(struct tdp_take *t, u64 word_end)
{
	u64 *bitmap = t->slot->dirty_bitmap;

	for (; t->next < word_end; t->next++)
		t->out[t->next] = tdp_take_word(&bitmap[t->next]);
}

/*
 * The walk has re-armed the pages [g_lo, g_hi) of the slot, one block of a
 * 4 KiB table, and took D from those in @marks (bit i: page 64-aligned block
 * start + i). Every page below g_lo was re-armed before (pre-order walks go
 * up in GFN), so the words below it are taken first. A block visited again
 * after a yield restarted the walk lands on words already taken: its marks
 * go into the bitmap, for the next harvest, like any write after the take.
 */
static void tdp_take_block(struct tdp_op *op, const struct tdp_memslot *slot, gfn_t block_gfn,
			   gfn_t g_lo, gfn_t g_hi, u64 marks)
{
	struct tdp_take *t = op->take;
	gfn_t end = tdp_slot_end(slot);
	u64 w = (g_lo - slot->base_gfn) / 64;

	PT_ASSERT(t->slot == slot && g_lo >= slot->base_gfn && g_lo < g_hi && g_hi <= end);
	tdp_take_until(t, w);
	if (block_gfn == g_lo && !((g_lo - slot->base_gfn) % 64) && t->next == w &&
	    (g_hi - g_lo == 64 || g_hi == end)) {
		t->out[w] = tdp_take_word(&slot->dirty_bitmap[w]) | marks;
		t->next = w + 1;
		op->marked += (u64)pt_popcount64(marks);
		return;
	}
	if (marks)
		op->marked += tdp_mark_dirty_mask(slot, block_gfn, marks);
	tdp_take_until(t, g_hi == end ? t->words : (g_hi - slot->base_gfn) / 64);
}

/*
 * @iter is at a 4 KiB entry: handle it and the rest of its table below @end in
 * one tight loop (a full pass is mostly this), then leave the iterator on the
 * last entry handled so that it moves on from there. SYNC_D marks 64 pages
 * per atomic OR.
 */
static bool tdp_rearm_leaf_run(struct tdp_op *op, struct tdp_iter *iter,
			       const struct tdp_memslot *slot, gfn_t end, enum tdp_rearm how)
{
	unsigned int first = tdp_spte_index(iter->gfn, TDP_LEVEL_4K), last = SPTE_ENT_PER_PAGE - 1;
	gfn_t gfn0 = iter->gfn - first;
	u64 *pt = iter->pt_path[0];
	struct tdp_rearm_run r;
	bool changed = false;
	u64 plain = 0, marks;
	unsigned int lo, hi;

	PT_ASSERT(iter->level == TDP_LEVEL_4K && iter->gfn < end);
	tdp_rearm_run_init(op, slot, how, &r);
	if (end - gfn0 < SPTE_ENT_PER_PAGE)
		last = (unsigned int)(end - gfn0 - 1);
	/* 64 entries (one bitmap word) at a time: SYNC_D's marks go out with
	 * one atomic OR per word. */
	for (lo = first; lo <= last; lo = hi + 1) {
		hi = (lo | 63) < last ? (lo | 63) : last;
		marks = 0;
		switch (how) {
		case TDP_REARM_WRPROT:
			marks = tdp_rearm_block(op, slot, pt, gfn0, lo, hi, TDP_REARM_WRPROT,
						~r.clr, r.set, r.fast_mask, r.fast, &plain,
						&changed);
			break;
		case TDP_REARM_CLEAR_D:
			marks = tdp_rearm_block(op, slot, pt, gfn0, lo, hi, TDP_REARM_CLEAR_D,
						~r.clr, r.set, r.fast_mask, r.fast, &plain,
						&changed);
			break;
		case TDP_REARM_SYNC_D:
			marks = tdp_rearm_block(op, slot, pt, gfn0, lo, hi, TDP_REARM_SYNC_D,
						~r.clr, r.set, r.fast_mask, r.fast, &plain,
						&changed);
			break;
		case TDP_REARM_SET_D:
			marks = tdp_rearm_block(op, slot, pt, gfn0, lo, hi, TDP_REARM_SET_D,
						~r.clr, r.set, r.fast_mask, r.fast, &plain,
						&changed);
			break;
		}
		if (how == TDP_REARM_SYNC_D && op->take)
			tdp_take_block(op, slot, gfn0 + (lo & ~63u), gfn0 + lo, gfn0 + hi + 1, marks);
		else if (marks)
			op->marked += tdp_mark_dirty_mask(slot, gfn0 + (lo & ~63u), marks);
	}
	if (plain) {
		changed = true;
		op->flush = true;
		op->rearm_plain += plain;
	}
	tdp_iter_skip_to_index(iter, last);
	tdp_op_charge(op, last - first);
	return changed;
}

/* ---- passes over one root, mmu_lock held for read ---- */

/*
 * Change the dirty state of every leaf at @min_level or above in [start, end):
 * seed's wrprot_gfn_range (WRPROT), clear_dirty_gfn_range (CLEAR_D, or W
 * without A/D), set_dirty_gfn_range (SET_D); SYNC_D also marks the pages that
 * had D.
 */
static bool rearm_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root,
			    const struct tdp_memslot *slot, gfn_t start, gfn_t end, int min_level,
			    enum tdp_rearm how)
{
	struct tdp_iter iter;
	bool changed = false;

	tdp_mmu_assert_held(op->mmu);
	tdp_for_each_pte_min_level(iter, op, root, min_level, start, end)
	{
		if (tdp_op_cond_yield(op, &iter))
			continue;
		if (iter.level == TDP_LEVEL_4K)
			changed |= tdp_rearm_leaf_run(op, &iter, slot, end, how);
		else
			changed |=
			    tdp_rearm_one(op, slot, iter.sptep, iter.gfn, iter.level, how, NULL);
	}
	return changed;
}

/*
 * Re-arm the 4 KiB leaves of the pages gfn + i for each bit i of @mask (seed:
 * clear_dirty_pt_masked). @gfn is where the slot's bitmap word starts, so it
 * is 64-aligned only if the slot's base is: the 64 pages may span two 4 KiB
 * tables. The walk visits the leaf tables over [gfn + first bit, gfn + 64)
 * and handles, in each, the bits that fall inside it. Huge leaves are
 * skipped: in a logged slot they are write-protected until split.
 */
static bool clear_dirty_pt_masked(struct tdp_op *op, struct tdp_mmu_root *root,
				  const struct tdp_memslot *slot, gfn_t gfn, u64 mask,
				  enum tdp_rearm how)
{
	u64 mark_mask = how == TDP_REARM_SYNC_D ? op->mmu->fmt.dirty_mask : 0;
	struct tdp_rearm_run r;
	struct tdp_iter iter;
	bool changed = false;
	u64 plain = 0, marks = 0;

	tdp_rearm_run_init(op, slot, how, &r);
	tdp_for_each_pte(iter, op, root, gfn + (u64)__builtin_ctzll(mask), gfn + 64)
	{
		gfn_t table_end;
		u64 lo, hi, in_table, m;
		u64 *pt;

		if (!mask)
			break;
		if (iter.level > TDP_LEVEL_4K)
			continue;
		/* Bits lo..hi-1 are the pages of this table from iter.gfn on. */
		table_end = tdp_gfn_round_for_level(iter.gfn, TDP_LEVEL_2M) + SPTE_ENT_PER_PAGE;
		lo = iter.gfn - gfn;
		hi = table_end - gfn < 64 ? table_end - gfn : 64;
		PT_ASSERT(iter.gfn >= gfn && lo < hi);
		in_table = (hi - lo == 64 ? ~0ull : ((1ull << (hi - lo)) - 1)) << lo;
		pt = iter.pt_path[0];
		for (m = mask & in_table; m; m &= m - 1) {
			gfn_t g = gfn + (u64)__builtin_ctzll(m);
			u64 *sptep = &pt[tdp_spte_index(g, TDP_LEVEL_4K)];
			u64 old = __atomic_load_n(sptep, __ATOMIC_RELAXED);
			u64 new = (old & ~r.clr) | r.set;

			/* The fast path of tdp_rearm_leaf_run, bit by bit. */
			if (new == old)
				continue;
			if (r.fast && (old & r.fast_mask) == r.fast_mask) {
				PT_ASSERT_ENTRY(tdp_rearm_can_store(op, slot, old, new));
				__atomic_store_n(sptep, new, __ATOMIC_RELAXED);
				/* SYNC_D: D was set, so the page is marked. */
				marks |= (u64)((old & mark_mask) != 0) << (g - gfn);
				plain++;
				continue;
			}
			changed |= tdp_rearm_one(op, slot, sptep, g, TDP_LEVEL_4K, how, NULL);
		}
		mask &= ~in_table;
		tdp_iter_skip_to_index(&iter, tdp_spte_index(gfn + hi - 1, TDP_LEVEL_4K));
	}
	if (marks)
		op->marked += tdp_mark_dirty_mask(slot, gfn, marks);
	if (plain) {
		changed = true;
		op->flush = true;
		op->rearm_plain += plain;
	}
	return changed;
}

/*
 * Split every huge leaf down to 4 KiB. Allocation failure stops the pass and
 * sets *nomem: what is left stays huge (the caller write-protects it).
 */
static void split_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root, gfn_t start, gfn_t end,
			    u64 child_clr, bool *nomem)
{
	const struct spte_format *f = &op->mmu->fmt;
	struct tdp_iter iter;
	int r;

	tdp_for_each_pte_min_level(iter, op, root, TDP_LEVEL_2M, start, end)
	{
		if (tdp_op_cond_yield(op, &iter))
			continue;
	retry:
		if (!spte_is_present_leaf(f, iter.old_spte, iter.level))
			continue;
		r = tdp_mmu_split_huge_page_clr(op, &iter, child_clr);
		if (r < 0) {
			*nomem = true;
			return;
		}
		if (r > 0)
			goto retry;
		/* The iterator steps down into the new table next. */
	}
}

/* ---- passes over one root, mmu_lock held for write ---- */

/*
 * Logging stopped: put tables back into huge leaves wherever the slot allows
 * one (built from the slot, which is what the 4 KiB leaves mapped), restore W
 * on leaves left write-protected, and set D in PML mode (@set_d) so the CPU
 * does not log pages nobody reads. Detached tables go on op->free.
 */
static bool collapse_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root,
			       const struct tdp_memslot *slot, gfn_t start, gfn_t end, bool set_d)
{
	struct tdp_mmu *mmu = op->mmu;
	const struct spte_format *f = &mmu->fmt;
	struct tdp_iter iter;
	bool changed = false;
	u64 new_spte;

	tdp_mmu_assert_held_write(mmu);
	tdp_for_each_pte(iter, op, root, start, end)
	{
		if (tdp_op_cond_yield(op, &iter))
			continue;
	retry:
		if (!spte_is_present(iter.old_spte))
			continue;
		if (!spte_is_leaf(f, iter.old_spte, iter.level)) {
			if (iter.level > TDP_MAX_HUGE_LEVEL ||
			    tdp_slot_max_level(mmu, slot, iter.gfn, iter.gfn, tdp_slot_end(slot)) <
				iter.level)
				continue;
			new_spte =
			    spte_make_leaf(f, iter.level, tdp_slot_gfn_to_hfn(slot, iter.gfn),
					   &slot->attrs, slot->attrs.writable);
			if (set_d)
				new_spte |= f->dirty_mask;
			if (!tdp_mmu_set_spte_atomic(op, &iter, new_spte))
				goto retry;
			tdp_stat_add(mmu, collapses, 1);
			changed = true;
			continue;
		}
		/* A tracked page stays read-only (tdp_mmu_write_track_enable);
		 * so does a huge leaf of a tracking slot, which may cover one
		 * (the write fault splits it and restores W page by page). */
		if (tdp_slot_is_tracking(slot) &&
		    (iter.level > TDP_LEVEL_4K || tdp_gfn_is_tracked(slot, iter.gfn)))
			new_spte = iter.old_spte;
		else
			new_spte = spte_make_writable(f, iter.old_spte);
		if (set_d)
			new_spte |= f->dirty_mask;
		if (new_spte == iter.old_spte)
			continue;
		if (!tdp_mmu_set_spte_atomic(op, &iter, new_spte))
			goto retry;
		changed = true;
	}
	return changed;
}

/* Remove W from every leaf of [start, end) in @root (write tracking's arm). */
bool tdp_wrprot_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root,
			  const struct tdp_memslot *slot, gfn_t start, gfn_t end)
{
	return rearm_gfn_range(op, root, slot, start, end, TDP_LEVEL_4K, TDP_REARM_WRPROT);
}

/* ---- slot-wide passes: every live root, shared ---- */

enum tdp_pass {
	TDP_PASS_WRPROT,
	TDP_PASS_CLEAR_DIRTY,
	TDP_PASS_SYNC_D,
	TDP_PASS_SET_DIRTY,
};

/* One pass over the pages [start, end) of @slot in every live root. */
static bool tdp_range_pass(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t start,
			   gfn_t end, enum tdp_pass pass, int min_level)
{
	struct tdp_root_set set;
	struct tdp_op op;
	bool flush;
	unsigned int i;

	tdp_mmu_assert_mgmt(mmu);
	/* Harvest passes record their own marks; the funnel must not re-mark. */
	tdp_op_init(&op, mmu, slot->as_id, true, pass == TDP_PASS_SET_DIRTY);
	tdp_op_lock(&op);
	/* Roots are taken under the lock; one created while a walk yielded is
	 * picked up by the refresh after the last root and walked too. */
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (i = 0; i < set.n; i++) {
		struct tdp_mmu_root *root = set.roots[i];

		switch (pass) {
		case TDP_PASS_WRPROT:
			rearm_gfn_range(&op, root, slot, start, end, min_level, TDP_REARM_WRPROT);
			break;
		case TDP_PASS_CLEAR_DIRTY:
			rearm_gfn_range(&op, root, slot, start, end, min_level, TDP_REARM_CLEAR_D);
			break;
		case TDP_PASS_SYNC_D:
			rearm_gfn_range(&op, root, slot, start, end, min_level, TDP_REARM_SYNC_D);
			break;
		case TDP_PASS_SET_DIRTY:
			rearm_gfn_range(&op, root, slot, start, end, min_level, TDP_REARM_SET_D);
			break;
		}
		if (i + 1 == set.n)
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	/* What changed since the last flush (a yield pays what it owes). */
	flush = op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	return flush;
}

static bool tdp_slot_pass(struct tdp_mmu *mmu, const struct tdp_memslot *slot, enum tdp_pass pass,
			  int min_level)
{
	return tdp_range_pass(mmu, slot, slot->base_gfn, tdp_slot_end(slot), pass, min_level);
}

/*
 * A range of pages of a slot given by the caller: @first_page a multiple of
 * 64 (a bitmap word), @npages a multiple of 64 unless the range ends at the
 * slot's end (the last word is partial).
 */
static bool tdp_slot_range_ok(const struct tdp_memslot *slot, u64 first_page, u64 npages)
{
	return !(first_page % 64) && npages && first_page < slot->npages &&
	       npages <= slot->npages - first_page &&
	       (!(npages % 64) || first_page + npages == slot->npages);
}

/*
 * One slot-wide pass on slot @slot_id under mgmt_lock (one management
 * operation at a time); with @only_logging, only while the slot logs.
 * Returns whether a flush is owed, this pass's or an earlier one's.
 */
static bool tdp_logged_slot_pass(struct tdp_mmu *mmu, unsigned int slot_id, enum tdp_pass pass,
				 int min_level, bool only_logging)
{
	const struct tdp_memslot *slot;
	bool flush = false;

	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_logged_slot(mmu, slot_id);
	if (slot && (!only_logging || tdp_slot_is_logging(slot)))
		flush = tdp_slot_pass(mmu, slot, pass, min_level);
	pt_spin_unlock(&mmu->mgmt_lock);
	return tdp_mmu_flush_owed(mmu, flush);
}

bool tdp_mmu_wrprot_slot(struct tdp_mmu *mmu, unsigned int slot_id, int min_level)
{
	if (min_level < TDP_LEVEL_4K || min_level > TDP_MAX_HUGE_LEVEL)
		return false;
	return tdp_logged_slot_pass(mmu, slot_id, TDP_PASS_WRPROT, min_level, false);
}

bool tdp_mmu_clear_dirty_slot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	return tdp_logged_slot_pass(mmu, slot_id, TDP_PASS_CLEAR_DIRTY, TDP_LEVEL_4K, false);
}

bool tdp_mmu_set_dirty_slot(struct tdp_mmu *mmu, unsigned int slot_id)
{
	if (!mmu->fmt.has_ad)
		return false;
	return tdp_logged_slot_pass(mmu, slot_id, TDP_PASS_SET_DIRTY, TDP_LEVEL_4K, false);
}

bool tdp_mmu_sync_dirty_bits(struct tdp_mmu *mmu, unsigned int slot_id)
{
	if (!mmu->fmt.has_ad)
		return false;
	return tdp_logged_slot_pass(mmu, slot_id, TDP_PASS_SYNC_D, TDP_LEVEL_4K, true);
}

/* Re-arm the pages of one 64-page word in every root; mmu_lock held (read). */
static bool tdp_rearm_masked(struct tdp_op *op, struct tdp_root_set *set,
			     const struct tdp_memslot *slot, u64 word, u64 mask, enum tdp_rearm how)
{
	bool flush = false;
	unsigned int i;

	for (i = 0; i < set->n; i++)
		flush |= clear_dirty_pt_masked(op, set->roots[i], slot, slot->base_gfn + word * 64,
					       mask, how);
	return flush;
}

/*
 * Re-arm every 4 KiB leaf of @nwords whole bitmap words from @word on, in
 * every root: a CLEAR whose words were all taken whole (every page of a
 * dense range reported). One walk per root with tdp_rearm_leaf_run's tight
 * loop over each table, instead of a walk from the root for every word as
 * clear_dirty_pt_masked does; the same entries change the same way. Huge
 * leaves are skipped, as there, and unlike rearm_gfn_range: a huge leaf also
 * maps pages outside the words taken, whose dirty state is not this CLEAR's
 * to re-arm. A root made while a yield dropped the lock is walked too
 * (tdp_root_set_refresh at the last one, as tdp_range_pass does).
 */
static void tdp_rearm_words(struct tdp_op *op, struct tdp_root_set *set,
			    const struct tdp_memslot *slot, u64 word, u64 nwords,
			    enum tdp_rearm how)
{
	gfn_t start = slot->base_gfn + word * 64, end = start + nwords * 64;
	struct tdp_iter iter;
	unsigned int i;

	for (i = 0; i < set->n; i++) {
		tdp_for_each_pte(iter, op, set->roots[i], start, end)
		{
			if (tdp_op_cond_yield(op, &iter))
				continue;
			if (iter.level == TDP_LEVEL_4K)
				tdp_rearm_leaf_run(op, &iter, slot, end, how);
		}
		if (i + 1 == set->n)
			tdp_root_set_refresh(op->mmu, slot->as_id, set);
	}
}

/*
 * Re-arming by write protection excludes the fault path (mmu_lock for write,
 * as KVM takes it for kvm_arch_mmu_enable_log_dirty_pt_masked). The fault
 * path makes a page writable and then marks it, within one read-side section;
 * another vCPU may write through the new W before the mark lands. A harvest
 * that took the word and re-armed in between would report that write one
 * round late. Excluded, the fault's cmpxchg and mark are both before or both
 * after the harvest's take-and-re-arm. D-bit re-arms need no exclusion: a
 * write through a fresh W sets D (and logs it with PML), which is seen.
 */
static inline bool tdp_rearm_needs_exclusion(enum tdp_rearm how)
{
	return how == TDP_REARM_WRPROT;
}

static enum tdp_rearm tdp_rearm_for_mode(const struct tdp_mmu *mmu, enum tdp_dirty_mode mode)
{
	if (mode == TDP_DIRTY_WP || !mmu->fmt.has_ad)
		return TDP_REARM_WRPROT;
	return mode == TDP_DIRTY_DBIT ? TDP_REARM_SYNC_D : TDP_REARM_CLEAR_D;
}

bool tdp_mmu_clear_dirty_masked(struct tdp_mmu *mmu, unsigned int slot_id, u64 gfn_offset, u64 mask,
				bool wrprot)
{
	const struct tdp_memslot *slot;
	struct tdp_root_set set;
	enum tdp_rearm how;
	struct tdp_op op;
	bool flush = false;

	if (!mask || (gfn_offset % 64))
		return false;
	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_logged_slot(mmu, slot_id);
	if (!slot || gfn_offset >= slot->npages)
		goto out;
	how = wrprot || !mmu->fmt.has_ad ? TDP_REARM_WRPROT : TDP_REARM_CLEAR_D;
	tdp_op_init(&op, mmu, slot->as_id, !tdp_rearm_needs_exclusion(how), false);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, slot->as_id, &set);
	flush = tdp_rearm_masked(&op, &set, slot, gfn_offset / 64, mask, how);
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
out:
	pt_spin_unlock(&mmu->mgmt_lock);
	return tdp_mmu_flush_owed(mmu, flush);
}

/* ---- enabling and disabling ---- */

/*
 * The initial bitmap words of pages [first, first + npages) of a slot of
 * @slot_pages pages (first a multiple of 64): clear, or every page's bit set
 * with INITIALLY_SET (none past the slot's end). Atomic stores: a fault may
 * already mark pages of a deferred slot; such a write comes before logging is
 * reported started, so losing its mark is allowed.
 */
static void tdp_init_bitmap_words(u64 *bitmap, u64 slot_pages, u64 first, u64 npages,
				  u64 log_flags)
{
	bool set = log_flags & TDP_LOG_INITIALLY_SET;
	u64 w, w0 = first / 64, w1 = tdp_dirty_bitmap_words(first + npages);

	for (w = w0; w < w1; w++) {
		u64 v = set ? ~0ull : 0;

		if (set && w == w1 - 1 && (slot_pages % 64) && first + npages == slot_pages)
			v = (1ull << (slot_pages % 64)) - 1;
		__atomic_store_n(&bitmap[w], v, __ATOMIC_RELAXED);
	}
}

/*
 * Split and arm [start, end) of one root in one walk: a 4 KiB run is re-armed
 * per @how (tdp_rearm_leaf_run); a huge leaf is split with its children born
 * re-armed (@child_clr), and the walk steps over a new 4 KiB table instead of
 * reading it again (a 1 GiB split goes on down to split its 2 MiB children).
 * Once the allocator runs dry (*nomem), huge leaves stay huge, write-protected
 * (the write fault splits them) and re-armed per @how.
 */
static bool arm_gfn_range(struct tdp_op *op, struct tdp_mmu_root *root,
			  const struct tdp_memslot *slot, gfn_t start, gfn_t end, enum tdp_rearm how,
			  u64 child_clr, bool *nomem)
{
	const struct spte_format *f = &op->mmu->fmt;
	struct tdp_iter iter;
	bool changed = false;
	int r;

	tdp_mmu_assert_held(op->mmu);
	tdp_for_each_pte(iter, op, root, start, end)
	{
		if (tdp_op_cond_yield(op, &iter))
			continue;
		if (iter.level == TDP_LEVEL_4K) {
			changed |= tdp_rearm_leaf_run(op, &iter, slot, end, how);
			continue;
		}
	retry:
		if (!spte_is_present_leaf(f, iter.old_spte, iter.level))
			continue;
		if (!*nomem) {
			r = tdp_mmu_split_huge_page_clr(op, &iter, child_clr);
			if (r > 0)
				goto retry;
			if (r == 0) {
				changed = true;
				if (iter.level == TDP_LEVEL_2M)
					tdp_iter_skip_children(&iter);
				continue;
			}
			*nomem = true;
		}
		changed |= tdp_rearm_one(op, slot, iter.sptep, iter.gfn, iter.level,
					 TDP_REARM_WRPROT, NULL);
		if (how != TDP_REARM_WRPROT)
			changed |= tdp_rearm_one(op, slot, iter.sptep, iter.gfn, iter.level, how,
						 NULL);
	}
	return changed;
}

/*
 * Arm the pages [start, end) of a logging slot: split its huge leaves (in
 * batches; the walk checks for yielding every yield_every entries) and
 * write-protect (WP, or no A/D) or clear D, in one walk per root; with
 * INITIALLY_SET only split (CLEAR re-arms lazily). Returns whether a flush is
 * owed. mgmt_lock held.
 */
static bool tdp_arm_range(struct tdp_mmu *mmu, struct tdp_memslot *slot, gfn_t start, gfn_t end)
{
	const struct spte_format *f = &mmu->fmt;
	bool initially_set = slot->log_flags & TDP_LOG_INITIALLY_SET;
	bool wp = slot->log_mode == TDP_DIRTY_WP || !f->has_ad;
	enum tdp_rearm how = wp ? TDP_REARM_WRPROT : TDP_REARM_CLEAR_D;
	struct tdp_root_set set;
	struct tdp_op op;
	bool nomem = false, flush;
	unsigned int i;

	tdp_mmu_assert_mgmt(mmu);
	PT_ASSERT(tdp_slot_is_logging(slot));
	/* What the huge leaf had before the slot logged does not count: the
	 * arming takes it away, from the children as from 4 KiB leaves. The
	 * funnel records nothing here (an arming pass, like a harvest's). */
	tdp_op_init(&op, mmu, slot->as_id, true, initially_set);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (i = 0; i < set.n; i++) {
		if (initially_set)
			split_gfn_range(&op, set.roots[i], start, end, 0, &nomem);
		else
			arm_gfn_range(&op, set.roots[i], slot, start, end, how,
				      wp ? f->writable_mask | SPTE_MMU_WRITABLE : f->dirty_mask,
				      &nomem);
		if (i + 1 == set.n)
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	flush = op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	if (nomem) {
		slot->split_incomplete = true;
		tdp_mmu_log(mmu, MMU_LOG_WARN, "tdp_mmu: eager split out of memory, slot/pages",
			    slot->id, slot->npages);
		/* The write fault splits what is left; until then no write
		 * may go through a huge leaf unseen. */
		if (initially_set)
			flush |= tdp_range_pass(mmu, slot, start, end, TDP_PASS_WRPROT,
						TDP_LEVEL_2M);
	}
	return flush;
}

int tdp_mmu_enable_dirty_logging(struct tdp_mmu *mmu, unsigned int slot_id,
				 enum tdp_dirty_mode mode, u64 log_flags, u64 *bitmap, bool *flush)
{
	struct tdp_memslot *slot;
	int ret = MMU_OK;

	*flush = false;
	if (!bitmap ||
	    (log_flags & ~(TDP_LOG_MANUAL_PROTECT | TDP_LOG_INITIALLY_SET | TDP_LOG_DEFER_ARM)) ||
	    ((log_flags & TDP_LOG_INITIALLY_SET) && !(log_flags & TDP_LOG_MANUAL_PROTECT)))
		return MMU_EINVAL;
	if (mode != TDP_DIRTY_WP && mode != TDP_DIRTY_DBIT && mode != TDP_DIRTY_PML)
		return MMU_EINVAL;
	if (mode != TDP_DIRTY_WP && !mmu->fmt.has_ad)
		return MMU_EINVAL;

	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_logged_slot(mmu, slot_id);
	if (!slot) {
		ret = MMU_ENOENT;
		goto out;
	}
	if (tdp_slot_is_logging(slot) || !slot->attrs.writable) {
		ret = MMU_EINVAL;
		goto out;
	}
	/* DEFER_ARM: each range's words are set up as it is armed (no walk
	 * over a whole TiB slot's 32 MiB of bitmap in one call). */
	if (!(log_flags & TDP_LOG_DEFER_ARM))
		tdp_init_bitmap_words(bitmap, slot->npages, 0, slot->npages, log_flags);

	/* From here on faults map this slot with 4 KiB pages only. */
	pt_write_lock(&mmu->mmu_lock);
	slot->dirty_bitmap = bitmap;
	slot->log_mode = mode;
	slot->log_flags = log_flags;
	slot->split_incomplete = false;
	slot->flags |= TDP_SLOT_LOG_DIRTY;
	pt_write_unlock(&mmu->mmu_lock);

	if (!(log_flags & TDP_LOG_DEFER_ARM))
		*flush = tdp_arm_range(mmu, slot, slot->base_gfn, tdp_slot_end(slot));
out:
	*flush = tdp_mmu_flush_owed(mmu, *flush);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

/*
 * Put the pages [start, end) of a slot that no longer logs back together
 * (collapse_gfn_range in every root, mmu_lock for write: tables are removed),
 * flushing before the detached tables are freed. Returns whether a flush is
 * owed. mgmt_lock held.
 */
static bool tdp_collapse_range(struct tdp_mmu *mmu, const struct tdp_memslot *slot, gfn_t start,
			       gfn_t end)
{
	struct tdp_root_set set;
	struct tdp_op op;
	bool flush;
	unsigned int i;

	tdp_mmu_assert_mgmt(mmu);
	PT_ASSERT(!tdp_slot_is_logging(slot));
	tdp_op_init(&op, mmu, slot->as_id, false, true);
	/* Each table collapsed lies inside this slot (tdp_slot_max_level), which
	 * no longer logs: no funnel rule reads the final A/D of its leaves. */
	op.removed_final_ad = false;
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (i = 0; i < set.n; i++)
		collapse_gfn_range(&op, set.roots[i], slot, start, end, slot->collapse_set_d);
	/* Tables were detached: flush, then free (the flush covers the rest). */
	tdp_op_free_pages(&op, NULL);
	flush = op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	return flush;
}

/* Logging off (no collapse yet); the caller holds mgmt_lock. */
static int tdp_stop_logging(struct tdp_mmu *mmu, unsigned int slot_id, struct tdp_memslot **out)
{
	struct tdp_memslot *slot = tdp_logged_slot(mmu, slot_id);

	tdp_mmu_assert_mgmt(mmu);
	if (!slot)
		return MMU_ENOENT;
	if (!tdp_slot_is_logging(slot))
		return MMU_EINVAL;
	/* Under mmu_lock for write: no fault or drain is half way through a
	 * mark into the bitmap that goes back to the caller now. */
	pt_write_lock(&mmu->mmu_lock);
	/* PML: set D on the rest so the CPU stops logging pages nobody reads. */
	slot->collapse_set_d = slot->log_mode == TDP_DIRTY_PML;
	slot->flags &= ~TDP_SLOT_LOG_DIRTY;
	slot->dirty_bitmap = NULL;
	slot->log_flags = 0;
	slot->split_incomplete = false;
	pt_write_unlock(&mmu->mmu_lock);
	*out = slot;
	return MMU_OK;
}

/* Stop logging, and with @collapse put the whole slot back together. */
static int tdp_disable_logging(struct tdp_mmu *mmu, unsigned int slot_id, bool collapse,
			       bool *flush)
{
	struct tdp_memslot *slot;
	bool changed = false;
	int ret;

	pt_spin_lock(&mmu->mgmt_lock);
	ret = tdp_stop_logging(mmu, slot_id, &slot);
	if (!ret && collapse)
		changed = tdp_collapse_range(mmu, slot, slot->base_gfn, tdp_slot_end(slot));
	*flush = tdp_mmu_flush_owed(mmu, changed);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

int tdp_mmu_disable_dirty_logging(struct tdp_mmu *mmu, unsigned int slot_id, bool *flush)
{
	return tdp_disable_logging(mmu, slot_id, true, flush);
}

int tdp_mmu_disable_dirty_logging_deferred(struct tdp_mmu *mmu, unsigned int slot_id, bool *flush)
{
	return tdp_disable_logging(mmu, slot_id, false, flush);
}

/* Arm one range of a DEFER_ARM slot: its bitmap words first, then its pages. */
static bool tdp_arm_slot_range(struct tdp_mmu *mmu, struct tdp_memslot *slot, u64 first_page,
			       u64 npages)
{
	tdp_init_bitmap_words(slot->dirty_bitmap, slot->npages, first_page, npages,
			      slot->log_flags);
	return tdp_arm_range(mmu, slot, slot->base_gfn + first_page,
			     slot->base_gfn + first_page + npages);
}

static bool tdp_collapse_slot_range(struct tdp_mmu *mmu, struct tdp_memslot *slot,
				    u64 first_page, u64 npages)
{
	return tdp_collapse_range(mmu, slot, slot->base_gfn + first_page,
				  slot->base_gfn + first_page + npages);
}

/*
 * The range forms' common part: under mgmt_lock, the slot must exist, log
 * (@logging) or not, have @need_flags, and the range be one of it
 * (tdp_slot_range_ok); then @fn does the work and says whether entries changed.
 */
static int tdp_slot_range_call(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page,
			       u64 npages, bool logging, u64 need_flags,
			       bool (*fn)(struct tdp_mmu *, struct tdp_memslot *, u64, u64),
			       bool *flush)
{
	struct tdp_memslot *slot;
	bool changed = false;
	int ret = MMU_OK;

	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_logged_slot(mmu, slot_id);
	if (!slot)
		ret = MMU_ENOENT;
	else if (tdp_slot_is_logging(slot) != logging ||
		 (slot->log_flags & need_flags) != need_flags ||
		 !tdp_slot_range_ok(slot, first_page, npages))
		ret = MMU_EINVAL;
	else
		changed = fn(mmu, slot, first_page, npages);
	*flush = tdp_mmu_flush_owed(mmu, changed);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

int tdp_mmu_collapse_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page, u64 npages,
			   bool *flush)
{
	return tdp_slot_range_call(mmu, slot_id, first_page, npages, false, 0,
				   tdp_collapse_slot_range, flush);
}

int tdp_mmu_arm_dirty_log_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page,
				u64 npages, bool *flush)
{
	return tdp_slot_range_call(mmu, slot_id, first_page, npages, true, TDP_LOG_DEFER_ARM,
				   tdp_arm_slot_range, flush);
}

/* ---- harvesting ---- */

/*
 * get-dirty-log of a DBIT slot without manual protection: SYNC_D over every
 * live root, the last root of the set taken at the start taking the bitmap
 * into @out behind its walk (tdp_take). The roots before it put their marks
 * into the bitmap ahead of the take; a root added while a walk yielded was
 * created after this harvest began, so writes through it are this round's or
 * the next one's, and its marks after the take go to the next. Returns
 * whether entries changed.
 */
static bool tdp_sync_and_take(struct tdp_mmu *mmu, const struct tdp_memslot *slot, u64 *out)
{
	struct tdp_take take = {
	    .slot = slot, .out = out, .next = 0, .words = tdp_dirty_bitmap_words(slot->npages)};
	struct tdp_root_set set;
	struct tdp_op op;
	unsigned int i, last;
	bool flush;

	tdp_mmu_assert_mgmt(mmu);
	tdp_op_init(&op, mmu, slot->as_id, true, false);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, slot->as_id, &set);
	last = set.n ? set.n - 1 : 0;
	for (i = 0; i < set.n; i++) {
		op.take = i == last ? &take : NULL;
		rearm_gfn_range(&op, set.roots[i], slot, slot->base_gfn, tdp_slot_end(slot),
				TDP_LEVEL_4K, TDP_REARM_SYNC_D);
		if (i == last)
			tdp_take_until(&take, take.words);
		if (i + 1 == set.n)
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	op.take = NULL;
	/* No root at all: nothing to re-arm, the bitmap is all there is. */
	tdp_take_until(&take, take.words);
	flush = op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
	return flush;
}

int tdp_mmu_get_dirty_log(struct tdp_mmu *mmu, unsigned int slot_id, u64 *out, u64 out_words,
			  bool *flush)
{
	struct tdp_memslot *slot;
	struct tdp_root_set set;
	struct tdp_op op;
	enum tdp_rearm how;
	u64 words, w, bits;
	int ret = MMU_OK;

	*flush = false;
	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_logged_slot(mmu, slot_id);
	if (!slot) {
		ret = MMU_ENOENT;
		goto out;
	}
	words = tdp_dirty_bitmap_words(slot->npages);
	if (!tdp_slot_is_logging(slot) || !out || out_words < words) {
		ret = MMU_EINVAL;
		goto out;
	}
	how = tdp_rearm_for_mode(mmu, slot->log_mode);
	/* D-bit mode: the D bits are the log; move them into the bitmap (with
	 * the take, in one walk, when the take is this operation's). */
	if (how == TDP_REARM_SYNC_D && !(slot->log_flags & TDP_LOG_MANUAL_PROTECT)) {
		*flush |= tdp_sync_and_take(mmu, slot, out);
		goto out;
	}
	if (how == TDP_REARM_SYNC_D)
		*flush |= tdp_slot_pass(mmu, slot, TDP_PASS_SYNC_D, TDP_LEVEL_4K);
	if (slot->log_flags & TDP_LOG_MANUAL_PROTECT) {
		/* WP: a fault's cmpxchg and mark must not straddle the copy
		 * (see tdp_rearm_needs_exclusion), or a write through the new
		 * W before the mark would miss this copy. */
		bool excl = tdp_rearm_needs_exclusion(how);

		if (excl)
			pt_write_lock(&mmu->mmu_lock);
		for (w = 0; w < words; w++)
			out[w] = __atomic_load_n(&slot->dirty_bitmap[w], __ATOMIC_ACQUIRE);
		if (excl)
			pt_write_unlock(&mmu->mmu_lock);
		goto out;
	}
	PT_ASSERT(how != TDP_REARM_SYNC_D);
	tdp_op_init(&op, mmu, slot->as_id, !tdp_rearm_needs_exclusion(how), false);
	tdp_op_lock(&op);
	/* Under the lock, and refreshed after every yield: a page's bit is never
	 * taken while a root that maps it is missing from the re-arm. */
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (w = 0; w < words; w++) {
		/* Snapshot and clear in one step: a bit set after this is for
		 * the next round. Then re-arm exactly the pages taken out. */
		bits = __atomic_exchange_n(&slot->dirty_bitmap[w], 0, __ATOMIC_ACQ_REL);
		out[w] = bits;
		if (bits)
			tdp_rearm_masked(&op, &set, slot, w, bits, how);
		if (tdp_op_cond_yield(&op, NULL))
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	*flush |= op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
out:
	*flush = tdp_mmu_flush_owed(mmu, *flush);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

/*
 * The slot of a manual-protect operation on [first_page, first_page + npages)
 * (GET of a range, CLEAR), or NULL with *ret set: MMU_ENOENT, or MMU_EINVAL
 * unless it logs with MANUAL_PROTECT, @buf is given and the range is one of
 * it. mgmt_lock held.
 */
static struct tdp_memslot *tdp_manual_slot(struct tdp_mmu *mmu, unsigned int slot_id,
					   u64 first_page, u64 npages, const void *buf, int *ret)
{
	struct tdp_memslot *slot = tdp_logged_slot(mmu, slot_id);

	tdp_mmu_assert_mgmt(mmu);
	*ret = MMU_OK;
	if (!slot)
		*ret = MMU_ENOENT;
	else if (!tdp_slot_is_logging(slot) || !(slot->log_flags & TDP_LOG_MANUAL_PROTECT) ||
		 !buf || !tdp_slot_range_ok(slot, first_page, npages))
		*ret = MMU_EINVAL;
	return *ret ? NULL : slot;
}

int tdp_mmu_get_dirty_log_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page,
				u64 npages, u64 *out, bool *flush)
{
	const struct tdp_memslot *slot;
	u64 words, w, base;
	bool changed = false, excl;
	int ret = MMU_OK;

	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_manual_slot(mmu, slot_id, first_page, npages, out, &ret);
	if (!slot)
		goto out;
	base = slot->base_gfn + first_page;
	/* D-bit mode: the D bits of the range are its log; move them first. */
	if (slot->log_mode == TDP_DIRTY_DBIT)
		changed = tdp_range_pass(mmu, slot, base, base + npages, TDP_PASS_SYNC_D,
					 TDP_LEVEL_4K);
	/* WP: see tdp_rearm_needs_exclusion (a fault's cmpxchg and mark must
	 * not straddle the copy). */
	excl = tdp_rearm_needs_exclusion(tdp_rearm_for_mode(mmu, slot->log_mode));
	words = tdp_dirty_bitmap_words(npages);
	if (excl)
		pt_write_lock(&mmu->mmu_lock);
	for (w = 0; w < words; w++)
		out[w] = __atomic_load_n(&slot->dirty_bitmap[first_page / 64 + w], __ATOMIC_ACQUIRE);
	if (excl)
		pt_write_unlock(&mmu->mmu_lock);
out:
	*flush = tdp_mmu_flush_owed(mmu, changed);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}

int tdp_mmu_clear_dirty_log(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page, u64 npages,
			    const u64 *mask, bool *flush)
{
	struct tdp_memslot *slot;
	struct tdp_root_set set;
	struct tdp_op op;
	enum tdp_rearm how;
	u64 words, w, bits, cleared, run = 0;
	int ret = MMU_OK;

	*flush = false;
	pt_spin_lock(&mmu->mgmt_lock);
	slot = tdp_manual_slot(mmu, slot_id, first_page, npages, mask, &ret);
	if (!slot)
		goto out;
	how = tdp_rearm_for_mode(mmu, slot->log_mode);
	words = tdp_dirty_bitmap_words(npages);
	tdp_op_init(&op, mmu, slot->as_id, !tdp_rearm_needs_exclusion(how), false);
	tdp_op_lock(&op);
	tdp_root_set_get(mmu, slot->as_id, &set);
	for (w = 0; w < words; w++) {
		bits = mask[w];
		if (w == words - 1 && (npages % 64))
			bits &= (1ull << (npages % 64)) - 1;
		/* Only pages whose bit was set are re-armed (KVM: mask &=
		 * fetch_andnot): a page never reported is not protected. */
		cleared = 0;
		if (bits)
			cleared = __atomic_fetch_and(&slot->dirty_bitmap[first_page / 64 + w], ~bits,
						     __ATOMIC_ACQ_REL) &
				  bits;
		/* Words taken whole are re-armed together, in one walk. */
		if (cleared == ~0ull) {
			run++;
			continue;
		}
		if (run)
			tdp_rearm_words(&op, &set, slot, first_page / 64 + w - run, run, how);
		run = 0;
		if (cleared)
			tdp_rearm_masked(&op, &set, slot, first_page / 64 + w, cleared, how);
		if (tdp_op_cond_yield(&op, NULL))
			tdp_root_set_refresh(mmu, slot->as_id, &set);
	}
	if (run)
		tdp_rearm_words(&op, &set, slot, first_page / 64 + words - run, run, how);
	*flush = op.flush;
	tdp_op_unlock(&op);
	tdp_root_set_put(mmu, &set);
out:
	*flush = tdp_mmu_flush_owed(mmu, *flush);
	pt_spin_unlock(&mmu->mgmt_lock);
	return ret;
}
