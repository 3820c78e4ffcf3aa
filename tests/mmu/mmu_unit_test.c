// SPDX-License-Identifier: MIT
/*
 * Unit tests of mmu/ (run with ASan+UBSan): entry formats, the iterator
 * against a recursive reference walk, page-size choice, memslots, each
 * dirty-log operation's effect on entries, bitmaps and its "flush needed"
 * result, eager split and collapse, PML drain, root reference counting and
 * teardown. A "CPU write" here is simulated on the tables directly (no TLB:
 * the hardware model in tests/model has one).
 */
#include <inttypes.h>

#include "tests/mmu/test_platform.h"
#include "mmu/tdp_iter.h"

#define AS 0

struct env {
	struct test_plat tp;
	struct tdp_mmu mmu;
	struct spte_format fmt;
	struct tdp_mmu_root *root;
	/* PML buffer that simulated writes log into (PML mode). */
	u64 pml[TDP_PML_ENTRIES];
	u16 pml_index;
	bool pml_on;
};

static const struct tdp_map_attrs ram_1g = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_1G};
static const struct tdp_map_attrs ram_2m = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_2M};

static void fmt_init(struct spte_format *f, enum spte_format_kind kind, bool has_1g)
{
	if (kind == SPTE_FMT_NPT)
		spte_format_init_npt(f, has_1g);
	else
		spte_format_init_ept(f, kind == SPTE_FMT_EPT_AD, has_1g);
}

static void env_init(struct env *e, enum spte_format_kind kind)
{
	struct mmu_platform ops;

	memset(e, 0, sizeof(*e));
	e->tp.fail_after = -1;
	ops = test_plat_ops(&e->tp);
	fmt_init(&e->fmt, kind, true);
	if (tdp_mmu_init(&e->mmu, &e->fmt, &ops))
		test_fail("tdp_mmu_init");
	e->root = tdp_mmu_get_root(&e->mmu, AS);
	CHECK(e->root, "get_root");
	e->pml_index = TDP_PML_ENTRIES - 1;
}

static void env_fini(struct env *e)
{
	int r;

	if (e->root)
		tdp_mmu_put_root(&e->mmu, e->root);
	r = tdp_mmu_destroy(&e->mmu);
	CHECK(r == MMU_OK, "destroy %d", r);
	CHECK(e->mmu.stats.pt_pages == 0, "pt_pages %" PRIu64, e->mmu.stats.pt_pages);
	CHECK(e->tp.live == 0, "allocator: %ld pages still allocated", e->tp.live);
	CHECK(e->tp.allocs == e->tp.frees, "allocs %ld frees %ld", e->tp.allocs, e->tp.frees);
}

/* The leaf mapping @gfn in the root (or NULL); *level its level. */
static u64 *walk(struct env *e, gfn_t gfn, int *level)
{
	u64 *pt = e->root->pt;
	int l;

	for (l = TDP_ROOT_LEVEL;; l--) {
		u64 *sptep = &pt[tdp_spte_index(gfn, l)];
		u64 spte = __atomic_load_n(sptep, __ATOMIC_ACQUIRE);

		if (!spte_is_present(spte)) {
			*level = l;
			return NULL;
		}
		if (spte_is_leaf(&e->fmt, spte, l)) {
			*level = l;
			return sptep;
		}
		pt = (u64 *)(uintptr_t)spte_to_hpa(&e->fmt, spte);
	}
}

static u64 leaf_of(struct env *e, gfn_t gfn, int *level)
{
	int l;
	u64 *p = walk(e, gfn, level ? level : &l);

	return p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;
}

/*
 * What a CPU does for a write: with a writable leaf, set A and D (logging the
 * GPA when D goes 0 -> 1 with PML on); otherwise take the fault and retry.
 */
static enum tdp_fault_result cpu_write(struct env *e, gfn_t gfn)
{
	const struct spte_format *f = &e->fmt;
	enum tdp_fault_result r = TDP_FAULT_FIXED;
	int tries, level;

	for (tries = 0; tries < 4; tries++) {
		u64 *p = walk(e, gfn, &level);
		u64 old = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;

		if (p && spte_is_writable(f, old)) {
			old = __atomic_fetch_or(p, f->accessed_mask | f->dirty_mask,
						__ATOMIC_ACQ_REL);
			if (e->pml_on && !(old & f->dirty_mask)) {
				e->pml[e->pml_index] =
				    gfn_to_gpa(gfn) | 0x123; /* Bochs-like offset */
				if (e->pml_index == 0)
					e->pml_index = 0xffff;
				else
					e->pml_index--;
			}
			return r;
		}
		r = tdp_mmu_page_fault(&e->mmu, e->root, gfn_to_gpa(gfn) | 0x10,
				       TDP_FAULT_WRITE | (p ? TDP_FAULT_PRESENT : 0));
		if (r != TDP_FAULT_FIXED && r != TDP_FAULT_SPURIOUS)
			return r;
	}
	test_fail("cpu_write: gfn %#llx never became writable", (unsigned long long)gfn);
	return TDP_FAULT_ACCESS;
}

/* What a careful caller does with a "flush needed" result. */
static bool flushed(struct env *e, bool flush)
{
	if (flush)
		tdp_mmu_flush_remote_tlbs(&e->mmu);
	return flush;
}

static bool test_bit(const u64 *bm, u64 i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static u64 popcount_bm(const u64 *bm, u64 words)
{
	u64 n = 0, i;

	for (i = 0; i < words; i++)
		n += (u64)__builtin_popcountll(bm[i]);
	return n;
}

/* ------------------------------------------------------------------ */

static void test_format(enum spte_format_kind kind)
{
	struct spte_format f;
	struct tdp_map_attrs a = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_1G};
	u64 s, c, h;

	fmt_init(&f, kind, true);
	CHECK(!(SPTE_SW_MASK & f.hw_mask), "sw bits in hw mask");
	CHECK(!(f.pa_mask & (f.writable_mask | f.huge_mask | f.dirty_mask | f.accessed_mask)),
	      "pa overlaps");

	s = spte_make_leaf(&f, TDP_LEVEL_4K, 0x12345, &a, true);
	CHECK(spte_is_present(s) && spte_is_leaf(&f, s, 1) && !spte_is_huge(&f, s), "4k leaf");
	CHECK(spte_is_writable(&f, s) && spte_is_host_writable(s) && spte_is_mmu_writable(s), "w");
	CHECK(spte_is_executable(&f, s), "x");
	CHECK(spte_to_hfn(&f, s) == 0x12345, "hfn");
	CHECK(!spte_hw_dirty(&f, s), "fresh leaf not hw-dirty");
	if (kind == SPTE_FMT_NPT) {
		CHECK((s & (NPT_PRESENT | NPT_WRITABLE | NPT_USER)) ==
			  (NPT_PRESENT | NPT_WRITABLE | NPT_USER),
		      "npt P|W|U %#llx", (unsigned long long)s);
		CHECK(!(s & NPT_NX), "npt nx");
		CHECK(!(s & (NPT_PCD | NPT_PWT)), "npt WB");
		CHECK(spte_is_dirty(&f, s | NPT_DIRTY) && !spte_is_dirty(&f, s), "npt D");
		CHECK(spte_is_accessed(&f, s | NPT_ACCESSED) && !spte_is_accessed(&f, s), "npt A");
	} else {
		CHECK((s & (EPT_READABLE | EPT_WRITABLE | EPT_EXECUTABLE)) == 7, "ept RWX");
		CHECK(((s & EPT_MT_MASK) >> EPT_MT_SHIFT) == EPT_MT_WB && !(s & EPT_IPAT), "WB");
		if (kind == SPTE_FMT_EPT_AD) {
			CHECK(spte_is_dirty(&f, s | EPT_DIRTY) && !spte_is_dirty(&f, s), "ept D");
			CHECK(f.accessed_mask == EPT_ACCESSED && f.dirty_mask == EPT_DIRTY, "AD");
		} else {
			/* No D bit: dirty falls back to W. */
			CHECK(spte_is_dirty(&f, s), "ept no-AD: W means dirty");
			CHECK(!spte_is_dirty(&f, spte_clear_writable(&f, s)), "!W means clean");
			CHECK(!f.accessed_mask && !f.dirty_mask && !f.has_ad, "no AD masks");
			CHECK(!spte_hw_dirty(&f, s | EPT_DIRTY), "no hw D without AD");
		}
	}
	c = spte_clear_writable(&f, s);
	CHECK(!spte_is_writable(&f, c) && spte_is_host_writable(c), "wrprot keeps host-writable");
	CHECK(spte_make_writable(&f, c) == s, "restore W");

	/* read-only, no-exec MMIO leaf */
	a.writable = false;
	a.executable = false;
	a.memtype = TDP_MEMTYPE_MMIO;
	s = spte_make_leaf(&f, TDP_LEVEL_2M, 0x200, &a, true);
	CHECK(spte_is_huge(&f, s) && !spte_is_writable(&f, s) && !spte_is_host_writable(s), "ro");
	CHECK(spte_make_writable(&f, s) == s, "cannot make RO writable");
	CHECK(!spte_is_executable(&f, s), "nx");
	if (kind == SPTE_FMT_NPT)
		CHECK((s & (NPT_PCD | NPT_PWT)) == (NPT_PCD | NPT_PWT), "npt UC");
	else
		CHECK(((s & EPT_MT_MASK) >> EPT_MT_SHIFT) == EPT_MT_UC, "ept UC");

	/* split and put back */
	a = ram_1g;
	h = spte_make_leaf(&f, TDP_LEVEL_2M, 0x400, &a, true) | f.dirty_mask | f.accessed_mask;
	c = spte_make_split_child(&f, h, TDP_LEVEL_2M, 17);
	CHECK(!spte_is_huge(&f, c) && spte_to_hfn(&f, c) == 0x400 + 17, "split child");
	CHECK((c & f.dirty_mask) == f.dirty_mask && spte_is_writable(&f, c), "child keeps W, D");
	c = spte_make_split_child(&f, spte_make_leaf(&f, 3, 0x40000, &a, true), 3, 3);
	CHECK(spte_is_huge(&f, c) && spte_to_hfn(&f, c) == 0x40000 + 3 * 512, "1g child is 2m");
	c = spte_clear_writable(&f, spte_make_split_child(&f, h, TDP_LEVEL_2M, 0));
	CHECK(spte_make_huge_from_child(&f, c, TDP_LEVEL_2M) == h, "collapse round trip");

	s = spte_make_nonleaf(&f, 0xabc000);
	CHECK(spte_is_present(s) && !spte_is_leaf(&f, s, 2) && spte_to_hpa(&f, s) == 0xabc000,
	      "nonleaf");
	test_report(kind == SPTE_FMT_NPT      ? "format.npt"
		    : kind == SPTE_FMT_EPT_AD ? "format.ept-ad"
					      : "format.ept");
}

/* ------------------------------------------------------------------ */
/* Iterator against a recursive reference walk. */

struct visit {
	gfn_t gfn;
	int level;
	u64 *sptep;
};

struct visits {
	struct visit v[200000];
	size_t n;
};

static struct visits ref_v, got_v;

static void ref_walk(struct env *e, u64 *pt, int level, gfn_t base, gfn_t s, gfn_t end,
		     int min_level, struct visits *out)
{
	unsigned int i;

	for (i = 0; i < SPTE_ENT_PER_PAGE; i++) {
		u64 n = tdp_pages_per_level(level);
		gfn_t gfn = base + i * n;
		u64 spte = pt[i];

		if (gfn + n <= s || gfn >= end)
			continue;
		out->v[out->n++] = (struct visit){gfn, level, &pt[i]};
		if (level > min_level && spte_is_present(spte) &&
		    !spte_is_leaf(&e->fmt, spte, level))
			ref_walk(e, (u64 *)(uintptr_t)spte_to_hpa(&e->fmt, spte), level - 1, gfn, s,
				 end, min_level, out);
	}
}

static void iter_case(struct env *e, gfn_t s, gfn_t end, int min_level, int yield_every,
		      const char *name)
{
	struct tdp_iter it;
	size_t i, j, yields = 0, k = 0;

	ref_v.n = got_v.n = 0;
	ref_walk(e, e->root->pt, TDP_ROOT_LEVEL, 0, s, end, min_level, &ref_v);
	for_each_tdp_pte_min_level(it, e->root->pt, TDP_ROOT_LEVEL, min_level, s, end, &e->fmt,
				   tp_hpa_to_va, NULL)
	{
		if (yield_every && ++k % yield_every == 0 && tdp_iter_can_yield(&it)) {
			tdp_iter_yield(&it);
			yields++;
			continue; /* not handled: the restart comes back to it */
		}
		CHECK(it.sptep && *it.sptep == it.old_spte, "old_spte snapshot");
		if (got_v.n < ARRAY_SIZE(got_v.v))
			got_v.v[got_v.n++] = (struct visit){it.gfn, it.level, it.sptep};
	}
	if (!yield_every) {
		CHECK(got_v.n == ref_v.n, "%s: %zu visits, want %zu", name, got_v.n, ref_v.n);
		for (i = 0; i < ref_v.n && i < got_v.n; i++) {
			if (got_v.v[i].gfn != ref_v.v[i].gfn ||
			    got_v.v[i].level != ref_v.v[i].level ||
			    got_v.v[i].sptep != ref_v.v[i].sptep) {
				CHECK(false, "%s: visit %zu differs (gfn %#llx level %d)", name, i,
				      (unsigned long long)got_v.v[i].gfn, got_v.v[i].level);
				break;
			}
		}
		return;
	}
	/* With yields: restarts revisit the tables above the resume point, but
	 * in first-visit order the walk is the reference walk, and every entry
	 * the walk does not descend through is handled exactly once. */
	CHECK(yields > 0, "%s: no yield happened", name);
	for (i = 0, j = 0; i < got_v.n; i++) {
		size_t m;
		bool seen = false;

		for (m = i; m-- > 0;) {
			if (got_v.v[m].sptep == got_v.v[i].sptep) {
				seen = true;
				break;
			}
			if (i - m > 8)
				break;
		}
		if (seen) {
			u64 spte = *got_v.v[i].sptep;

			CHECK(got_v.v[i].level > min_level && spte_is_present(spte) &&
				  !spte_is_leaf(&e->fmt, spte, got_v.v[i].level),
			      "%s: leaf handled twice gfn %#llx", name,
			      (unsigned long long)got_v.v[i].gfn);
			continue;
		}
		if (j >= ref_v.n || got_v.v[i].sptep != ref_v.v[j].sptep) {
			CHECK(false, "%s: first visits diverge at %zu", name, j);
			return;
		}
		j++;
	}
	CHECK(j == ref_v.n, "%s: %zu distinct visits, want %zu", name, j, ref_v.n);
}

static void test_iterator(void)
{
	struct env e;
	bool flush;
	int id;

	env_init(&e, SPTE_FMT_NPT);
	/* 4K-mapped run crossing 2M and 1G boundaries, a 2M-mapped run, holes. */
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0x3fe00 - 700, 1500, 0x3fe00 - 700,
				 &(struct tdp_map_attrs){true, true, TDP_MEMTYPE_RAM, 1}, 0);
	CHECK(id >= 0, "slot");
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0x80000, 4 * 512, 0x80000, &ram_2m, 0);
	CHECK(id >= 0, "slot2");
	CHECK(tdp_mmu_map_range(&e.mmu, AS, 0, 1ull << 20, &flush) == MMU_OK, "map");

	iter_case(&e, 0, 1ull << 36, TDP_LEVEL_4K, 0, "all");
	iter_case(&e, 0x3fe00 - 3, 0x3fe00 + 5, TDP_LEVEL_4K, 0, "unaligned");
	iter_case(&e, 0x3fe00 - 700, 0x80000 + 1000, TDP_LEVEL_2M, 0, "min-level-2m");
	iter_case(&e, 0x3ffff, 0x40001, TDP_LEVEL_4K, 0, "1g-edge");
	iter_case(&e, 0x7ffff, 0x80001, TDP_LEVEL_4K, 0, "2m-leaf");
	iter_case(&e, 0, 1ull << 36, TDP_LEVEL_1G, 0, "min-level-1g");
	iter_case(&e, 0x3fe00 - 700, 0x80000 + 2048, TDP_LEVEL_4K, 1, "yield-every-1");
	iter_case(&e, 0x3fe00 - 700, 0x80000 + 2048, TDP_LEVEL_4K, 7, "yield-every-7");
	iter_case(&e, 0, 1ull << 36, TDP_LEVEL_2M, 3, "yield-min-2m");
	env_fini(&e);
	test_report("iter.preorder_minlevel_yield");
}

/* ------------------------------------------------------------------ */
/* Page-size choice. */

static int expect_level(const struct spte_format *f, gfn_t gfn, gfn_t sbase, u64 n, hfn_t hbase,
			int max)
{
	int l = max < f->max_huge_level ? max : f->max_huge_level;

	for (; l > 1; l--) {
		u64 p = tdp_pages_per_level(l);
		gfn_t b = gfn & ~(p - 1);

		if (b >= sbase && b + p <= sbase + n && !((hbase + (b - sbase)) & (p - 1)))
			return l;
	}
	return 1;
}

static void check_slot_levels(struct env *e, gfn_t base, u64 n, hfn_t hbase, int max,
			      const char *name)
{
	gfn_t g = base;
	u64 per_level[4] = {0};

	while (g < base + n) {
		int level, want = expect_level(&e->fmt, g, base, n, hbase, max);
		u64 s = leaf_of(e, g, &level);

		if (!s || level != want || spte_to_hfn(&e->fmt, s) != hbase + (g - base)) {
			CHECK(false, "%s: gfn %#llx level %d want %d hfn %#llx", name,
			      (unsigned long long)g, s ? level : 0, want,
			      (unsigned long long)spte_to_hfn(&e->fmt, s));
			return;
		}
		per_level[level]++;
		g += tdp_pages_per_level(level);
	}
	CHECK(g == base + n, "%s: coverage", name);
}

static void test_map_levels(void)
{
	struct env e;
	struct tdp_mmu_stats st;
	bool flush;
	gfn_t a = 3, an = 2 * 262144 + 5000;
	gfn_t b = 0x100000 + 512, bn = 262144 + 1024;
	gfn_t c = 0x200000, cn = 1024;

	env_init(&e, SPTE_FMT_NPT);
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, a, an, a, &ram_1g, 0) >= 0, "slot a");
	/* hfn 2M-aligned but not 1G-aligned relative to gfn: no 1G page. */
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, b, bn, 0x5000000 + 512 * 3, &ram_1g, 0) >= 0, "b");
	/* per-range max level 4K */
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, c, cn, c,
				  &(struct tdp_map_attrs){true, false, TDP_MEMTYPE_MMIO, 1},
				  0) >= 0,
	      "c");
	/* map in two calls whose boundary is not aligned: no page may cross it */
	CHECK(tdp_mmu_map_range(&e.mmu, AS, 0, 0x40007, &flush) == MMU_OK, "map1");
	CHECK(!flush, "fresh mapping needs no flush");
	CHECK(tdp_mmu_map_range(&e.mmu, AS, 0x40007, 0x300000, &flush) == MMU_OK, "map2");
	/* the split at 0x40007 makes [0x40000,0x40200) 4K and 0x40200.. 2M until 0x80000 */
	{
		int level;

		leaf_of(&e, 0x40006, &level);
		CHECK(level == 1, "range boundary: 4K below 0x40007 (got %d)", level);
		leaf_of(&e, 0x40300, &level);
		CHECK(level == 2, "2M after the boundary (got %d)", level);
	}
	/* Map everything again in one call: now 1G where the slot allows. */
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(tdp_mmu_map_range(&e.mmu, AS, 0, 0x300000, &flush) == MMU_OK, "map3");
	CHECK(e.mmu.stats.flushes > st.flushes && e.mmu.stats.tables_freed > st.tables_freed,
	      "replacing smaller mappings by a huge one flushed before freeing tables");
	check_slot_levels(&e, a, an, a, 3, "identity-1g");
	check_slot_levels(&e, b, bn, 0x5000000 + 512 * 3, 3, "offset-2m");
	check_slot_levels(&e, c, cn, c, 1, "max-4k");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[3] == 1, "1G leaves %" PRIu64, st.leaves[3]);
	{
		int level;
		u64 s = leaf_of(&e, c + 5, &level);

		CHECK(!spte_is_writable(&e.fmt, s) == false && !spte_is_executable(&e.fmt, s),
		      "mmio attrs");
		CHECK((s & (NPT_PCD | NPT_PWT)) == (NPT_PCD | NPT_PWT), "mmio UC");
		CHECK(!leaf_of(&e, c + cn, &level), "nothing mapped past the slot");
		CHECK(!leaf_of(&e, 0, &level) && !leaf_of(&e, 2, &level), "hole before a");
	}
	env_fini(&e);

	/* A format without 1G pages never uses them. */
	env_init(&e, SPTE_FMT_EPT_AD);
	e.mmu.fmt.max_huge_level = TDP_LEVEL_2M;
	e.fmt.max_huge_level = TDP_LEVEL_2M;
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 0, 262144 * 2, 0, &ram_1g, 0) >= 0, "slot");
	CHECK(tdp_mmu_map_range(&e.mmu, AS, 0, 262144 * 2, &flush) == MMU_OK, "map");
	check_slot_levels(&e, 0, 262144 * 2, 0, 3, "no-1g-format");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[3] == 0 && st.leaves[2] == 1024, "2M only");
	env_fini(&e);
	test_report("map.page_sizes");
}

/* ------------------------------------------------------------------ */

static void test_memslots(void)
{
	struct env e;
	const struct tdp_memslot *s;
	int ids[TDP_MMU_MAX_MEMSLOTS], i, r;

	env_init(&e, SPTE_FMT_EPT_AD);
	/* Insert out of order, every 3rd gfn block of 10 pages. */
	for (i = 0; i < 40; i++) {
		gfn_t base = (gfn_t)((i * 17) % 40) * 100;

		ids[i] = tdp_mmu_set_memslot(&e.mmu, AS, base, 10, base + 7, &ram_2m, 0);
		CHECK(ids[i] >= 0, "slot %d", i);
	}
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 105, 2, 0, &ram_2m, 0) == MMU_EEXIST, "inside");
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 95, 6, 0, &ram_2m, 0) == MMU_EEXIST, "overlap lo");
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 109, 100, 0, &ram_2m, 0) == MMU_EEXIST, "overlap hi");
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 90, 10, 0, &ram_2m, 0) >= 0, "adjacent ok");
	CHECK(tdp_mmu_set_memslot(&e.mmu, 1, 105, 2, 0, &ram_2m, 0) >= 0, "other AS ok");
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, 5000, 0, 0, &ram_2m, 0) == MMU_EINVAL, "empty");
	CHECK(tdp_mmu_set_memslot(&e.mmu, AS, (1ull << 36) - 1, 2, 0, &ram_2m, 0) == MMU_EINVAL,
	      "past 4-level reach");
	CHECK(tdp_mmu_set_memslot(&e.mmu, 2, 0, 1, 0, &ram_2m, 0) == MMU_EINVAL, "bad AS");
	for (i = 0; i < 40; i++) {
		gfn_t base = (gfn_t)i * 100;

		s = tdp_mmu_gfn_to_memslot(&e.mmu, AS, base);
		CHECK(s && s->base_gfn == base, "lookup start %d", i);
		s = tdp_mmu_gfn_to_memslot(&e.mmu, AS, base + 9);
		CHECK(s && s->base_gfn == base, "lookup last %d", i);
		s = tdp_mmu_gfn_to_memslot(&e.mmu, AS, base + 10);
		CHECK(!s || (i == 0 && false), "lookup past %d", i);
	}
	s = tdp_mmu_gfn_to_memslot(&e.mmu, AS, 95);
	CHECK(s && s->base_gfn == 90, "adjacent lookup");
	s = tdp_mmu_gfn_to_memslot(&e.mmu, 1, 106);
	CHECK(s && s->as_id == 1, "as 1 lookup");
	CHECK(!tdp_mmu_gfn_to_memslot(&e.mmu, 1, 300), "as 1 has one slot");
	/* delete and look up again */
	s = tdp_mmu_gfn_to_memslot(&e.mmu, AS, 1700);
	CHECK(s, "slot at 1700");
	r = tdp_mmu_delete_memslot(&e.mmu, s->id);
	CHECK(r == MMU_OK, "delete");
	CHECK(!tdp_mmu_gfn_to_memslot(&e.mmu, AS, 1700), "deleted");
	CHECK(tdp_mmu_gfn_to_memslot(&e.mmu, AS, 1800) && tdp_mmu_gfn_to_memslot(&e.mmu, AS, 1600),
	      "neighbours stay");
	CHECK(tdp_mmu_delete_memslot(&e.mmu, s->id) == MMU_ENOENT, "delete twice");
	/* fill up */
	for (i = 0, r = 0; i < TDP_MMU_MAX_MEMSLOTS + 1 && r >= 0; i++)
		r = tdp_mmu_set_memslot(&e.mmu, AS, 100000 + (gfn_t)i * 10, 10, 0, &ram_2m, 0);
	CHECK(r == MMU_ENOSPC, "full: %d", r);
	env_fini(&e);
	test_report("memslots.lookup_overlap_delete");
}

/* ------------------------------------------------------------------ */
/* Dirty logging. */

#define LOG_BASE  0x100000ull /* 4 GiB: 1G-aligned */
#define LOG_PAGES (2 * 512 + 100)

static int log_setup(struct env *e, enum spte_format_kind kind, const struct tdp_map_attrs *a)
{
	bool flush;
	int id;

	env_init(e, kind);
	id = tdp_mmu_set_memslot(&e->mmu, AS, LOG_BASE, LOG_PAGES, LOG_BASE, a, 0);
	CHECK(id >= 0, "slot");
	CHECK(tdp_mmu_map_range(&e->mmu, AS, LOG_BASE, LOG_PAGES, &flush) == MMU_OK, "map");
	return id;
}

static u64 bitmap[4096], out[4096];

static void get_log(struct env *e, int id, bool *flush)
{
	int r;

	memset(out, 0, sizeof(out));
	r = tdp_mmu_get_dirty_log(&e->mmu, id, out, ARRAY_SIZE(out), flush);
	CHECK(r == MMU_OK, "get_dirty_log %d", r);
	flushed(e, *flush);
}

static void test_wp(enum spte_format_kind kind)
{
	struct env e;
	struct tdp_mmu_stats st;
	bool flush;
	int id, level;
	u64 i, s;
	const char *name = kind == SPTE_FMT_NPT	     ? "dirty.wp.npt"
			   : kind == SPTE_FMT_EPT_AD ? "dirty.wp.ept-ad"
						     : "dirty.wp.ept";

	id = log_setup(&e, kind, &ram_2m);
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[2] == 2 && st.leaves[1] == 100, "mapped 2x2M + 100x4K");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush) == MMU_OK,
	      "enable");
	CHECK(flush, "enable write-protected writable leaves: flush needed");
	flushed(&e, flush);
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[2] == 0 && st.leaves[1] == LOG_PAGES && st.splits == 2, "eager split");
	for (i = 0; i < LOG_PAGES; i++) {
		s = leaf_of(&e, LOG_BASE + i, &level);
		if (level != 1 || !s || spte_is_writable(&e.fmt, s) || !spte_is_host_writable(s)) {
			CHECK(false, "page %llu not 4K write-protected", (unsigned long long)i);
			break;
		}
	}
	CHECK(popcount_bm(bitmap, tdp_dirty_bitmap_words(LOG_PAGES)) == 0, "bitmap starts clear");

	/* Writes fault, restore W and mark. */
	CHECK(cpu_write(&e, LOG_BASE + 5) == TDP_FAULT_FIXED, "write fault");
	CHECK(cpu_write(&e, LOG_BASE + 5) == TDP_FAULT_FIXED, "second write: no fault");
	CHECK(cpu_write(&e, LOG_BASE + 700) == TDP_FAULT_FIXED, "write 700");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 5, NULL)), "W restored");
	CHECK(test_bit(bitmap, 5) && test_bit(bitmap, 700) && popcount_bm(bitmap, 18) == 2,
	      "marks");
	/* A read of a write-protected page is not a fault... and a read fault
	 * on a zapped page maps it read-only in a logged slot. */
	tdp_mmu_zap_range(&e.mmu, AS, LOG_BASE + 9, 1);
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, gfn_to_gpa(LOG_BASE + 9), 0) == TDP_FAULT_FIXED,
	      "read fault");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 9, NULL)) && !test_bit(bitmap, 9),
	      "read fault maps read-only, no mark");

	get_log(&e, id, &flush);
	CHECK(test_bit(out, 5) && test_bit(out, 700) && popcount_bm(out, 18) == 2, "harvest");
	CHECK(flush, "harvest re-protected pages: flush needed");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 5, NULL)), "re-armed");
	CHECK(popcount_bm(bitmap, 18) == 0, "bitmap cleared by get");
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, 18) == 0 && !flush, "empty harvest, no flush");

	/* clear_dirty_masked and wrprot_slot by themselves */
	cpu_write(&e, LOG_BASE + 64 + 1);
	cpu_write(&e, LOG_BASE + 64 + 2);
	CHECK(flushed(&e, tdp_mmu_clear_dirty_masked(&e.mmu, id, 64, 1ull << 1, true)),
	      "masked: flush");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 65, NULL)) &&
		  spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 66, NULL)),
	      "only the masked page");
	CHECK(!flushed(&e, tdp_mmu_clear_dirty_masked(&e.mmu, id, 64, 1ull << 1, true)),
	      "masked again: none");
	CHECK(flushed(&e, tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K)),
	      "wrprot slot: 66 was writable");
	CHECK(!flushed(&e, tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K)),
	      "wrprot slot again: nothing");
	if (kind != SPTE_FMT_EPT) {
		/* PML-style D clearing by mask on an A/D format */
		cpu_write(&e, LOG_BASE + 130);
		CHECK(e.fmt.dirty_mask & leaf_of(&e, LOG_BASE + 130, NULL), "D set by write");
		CHECK(flushed(&e, tdp_mmu_clear_dirty_masked(&e.mmu, id, 128, 1ull << 2, false)),
		      "clear D");
		s = leaf_of(&e, LOG_BASE + 130, NULL);
		CHECK(!(s & e.fmt.dirty_mask) && spte_is_writable(&e.fmt, s), "D clear, W kept");
	}
	/* "flush needed" is sticky until a flush: an unpaid one is reported again. */
	cpu_write(&e, LOG_BASE + 200);
	CHECK(tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K), "wrprot: flush owed");
	CHECK(tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K), "nothing changed, flush still owed");
	tdp_mmu_flush_remote_tlbs(&e.mmu);
	CHECK(!tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K), "paid");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[2] == 2 && st.collapses == 2, "collapsed back to 2M (%" PRIu64 ")",
	      st.leaves[2]);
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 1000, NULL)), "W back after stop");
	env_fini(&e);
	test_report(name);
}

static void test_dbit(enum spte_format_kind kind)
{
	struct env e;
	bool flush;
	int id;
	u64 s;
	const char *name = kind == SPTE_FMT_NPT ? "dirty.dbit.npt" : "dirty.dbit.ept-ad";

	id = log_setup(&e, kind, &ram_2m);
	cpu_write(&e, LOG_BASE + 3); /* D set before logging: not reported */
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bitmap, &flush) == MMU_OK,
	      "enable");
	CHECK(flushed(&e, flush), "D bits cleared: flush needed");
	s = leaf_of(&e, LOG_BASE + 3, NULL);
	CHECK(spte_is_writable(&e.fmt, s) && !(s & e.fmt.dirty_mask), "W kept, D cleared");
	e.mmu.stats.faults = 0;
	CHECK(cpu_write(&e, LOG_BASE + 7) == TDP_FAULT_FIXED, "write");
	CHECK(e.mmu.stats.faults == 0, "D-bit mode: a write to a mapped page does not fault");
	CHECK(popcount_bm(bitmap, 18) == 0, "not in the bitmap until synced");
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 7) && popcount_bm(out, 18) == 1 && flush, "harvest finds D");
	CHECK(!(leaf_of(&e, LOG_BASE + 7, NULL) & e.fmt.dirty_mask), "D cleared by harvest");
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, 18) == 0 && !flush, "empty second harvest");

	/* Funnel rule (b): a hardware-set D bit must survive a zap. */
	cpu_write(&e, LOG_BASE + 9);
	CHECK(tdp_mmu_zap_range(&e.mmu, AS, LOG_BASE + 9, 1), "zap");
	CHECK(test_bit(bitmap, 9), "zapped dirty page marked by the funnel");
	/* sync_dirty_bits alone */
	cpu_write(&e, LOG_BASE + 11);
	CHECK(flushed(&e, tdp_mmu_sync_dirty_bits(&e.mmu, id)) && test_bit(bitmap, 11), "sync");
	CHECK(!flushed(&e, tdp_mmu_sync_dirty_bits(&e.mmu, id)), "sync again: nothing");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	env_fini(&e);

	/* D-bit modes need A/D */
	env_init(&e, SPTE_FMT_EPT);
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0, 64, 0, &ram_2m, 0);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bitmap, &flush) ==
		  MMU_EINVAL,
	      "dbit without A/D");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_PML, 0, bitmap, &flush) ==
		  MMU_EINVAL,
	      "pml without A/D");
	/* clear_dirty_slot without A/D clears W */
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush) == MMU_OK,
	      "wp");
	cpu_write(&e, 4);
	CHECK(flushed(&e, tdp_mmu_clear_dirty_slot(&e.mmu, id)) &&
		  !spte_is_writable(&e.fmt, leaf_of(&e, 4, NULL)),
	      "clear_dirty_slot = wrprot without A/D");
	env_fini(&e);
	test_report(name);
}

/* D-bit harvest marks 64 pages per OR: check bit positions on a slot whose
 * base is not 64-aligned and whose end is ragged. */
/*
 * Which re-arms are plain stores and which are cmpxchg (tdp_rearm_can_store):
 * the rule that keeps a pass from losing an A/D update of the processor.
 */
static void rearm_counts(struct env *e, u64 *plain, u64 *atomic)
{
	struct tdp_mmu_stats st;

	tdp_mmu_get_stats(&e->mmu, &st);
	*plain = st.rearm_plain;
	*atomic = st.rearm_atomic;
}

static void test_plain_store_rule(void)
{
	struct env e;
	bool flush;
	int id;
	u64 p0, a0, p1, a1, i;
	const u64 n = LOG_PAGES;

	/* 4 KiB mappings: no split (eager splitting makes children born
	 * re-armed, without a pass). */
	static const struct tdp_map_attrs ram_4k = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_4K};

	id = log_setup(&e, SPTE_FMT_NPT, &ram_4k);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bitmap, &flush) == MMU_OK,
	      "enable dbit");
	flushed(&e, flush);
	/* Never accessed (A clear): the CPU may set A, and D, at any moment. */
	rearm_counts(&e, &p0, &a0);
	CHECK(flushed(&e, tdp_mmu_set_dirty_slot(&e.mmu, id)), "set D");
	rearm_counts(&e, &p1, &a1);
	CHECK(p1 - p0 == n && a1 == a0, "set D on writable leaves: plain (%llu plain, %llu atomic)",
	      (unsigned long long)(p1 - p0), (unsigned long long)(a1 - a0));
	for (i = 0; i < n; i++)
		CHECK((leaf_of(&e, LOG_BASE + i, NULL) & (e.fmt.accessed_mask | e.fmt.dirty_mask)) ==
			  (e.fmt.accessed_mask | e.fmt.dirty_mask),
		      "set D also sets A (gfn +%llu)", (unsigned long long)i);
	/* A and D set: nothing volatile, plain. */
	rearm_counts(&e, &p0, &a0);
	CHECK(flushed(&e, tdp_mmu_clear_dirty_slot(&e.mmu, id)), "clear D");
	rearm_counts(&e, &p1, &a1);
	CHECK(p1 - p0 == n && a1 == a0, "clear D with A/D set: plain");
	/* Clean and writable in DBIT mode: D is the log, the CPU may set it. */
	rearm_counts(&e, &p0, &a0);
	CHECK(flushed(&e, tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K)), "wrprot");
	rearm_counts(&e, &p1, &a1);
	CHECK(a1 - a0 == n && p1 == p0, "wrprot of clean writable leaves in DBIT mode: cmpxchg");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	flushed(&e, flush);

	/* WP mode: D is not the log, so a clean writable leaf with A set is
	 * write-protected plainly; one with A clear is not. Age every leaf
	 * (A clear), then write the even pages (A and D set). */
	tdp_mmu_age_range(&e.mmu, AS, LOG_BASE, n, &flush);
	flushed(&e, flush);
	for (i = 0; i < n; i += 2)
		cpu_write(&e, LOG_BASE + i);
	CHECK(flushed(&e, tdp_mmu_clear_dirty_slot(&e.mmu, id)), "clear D (not logging)");
	rearm_counts(&e, &p0, &a0);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush) == MMU_OK,
	      "enable wp");
	flushed(&e, flush);
	rearm_counts(&e, &p1, &a1);
	CHECK(p1 - p0 == n / 2 && a1 - a0 == n / 2,
	      "WP: A set -> plain (%llu of %llu), A clear -> cmpxchg (%llu of %llu)",
	      (unsigned long long)(p1 - p0), (unsigned long long)(n / 2),
	      (unsigned long long)(a1 - a0), (unsigned long long)(n / 2));
	for (i = 0; i < n; i++)
		CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + i, NULL)),
		      "every leaf write-protected (gfn +%llu)", (unsigned long long)i);
	/* The funnel still marks each write fault. */
	cpu_write(&e, LOG_BASE + 5);
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 5) && popcount_bm(out, 18) == 1, "WP write reported");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable wp");
	env_fini(&e);
	test_report("dirty.plain_store_rule");
}

static void test_dbit_unaligned(void)
{
	struct env e;
	bool flush;
	gfn_t base = 0x2000 + 37;
	u64 n = 1000, i, want = 0;
	int id;

	env_init(&e, SPTE_FMT_NPT);
	id = tdp_mmu_set_memslot(&e.mmu, AS, base, n, base, &ram_2m, 0);
	tdp_mmu_set_memslot(&e.mmu, AS, base + n, 100, base + n, &ram_2m, 0); /* neighbour */
	tdp_mmu_map_range(&e.mmu, AS, base - 37, 2000, &flush);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bitmap, &flush) == MMU_OK,
	      "enable");
	for (i = 0; i < n; i += 1 + i % 5) {
		cpu_write(&e, base + i);
		want++;
	}
	cpu_write(&e, base + n); /* the neighbour: not this slot's */
	cpu_write(&e, base + n + 50);
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, tdp_dirty_bitmap_words(n)) == want, "count %llu want %llu",
	      (unsigned long long)popcount_bm(out, tdp_dirty_bitmap_words(n)),
	      (unsigned long long)want);
	for (i = 0; i < n; i++) {
		bool w = false;
		u64 j;

		for (j = 0; j <= i; j += 1 + j % 5)
			w |= j == i;
		if (test_bit(out, i) != w) {
			CHECK(false, "bit %llu", (unsigned long long)i);
			break;
		}
	}
	CHECK(!(out[n / 64] >> (n % 64)), "no bit past the slot end");
	env_fini(&e);
	test_report("dirty.dbit.unaligned_slot_bits");
}

/*
 * get-dirty-log of a DBIT slot takes the bitmap behind its D-bit walk, word
 * by word, in the last root of the set (dirty_log.c, tdp_take). Every way a
 * word can be reached: a block that is the whole word (aligned base), blocks
 * that straddle words (base 5 past a multiple of 64), words with no table
 * under them (a hole), bits set by the fault path rather than by D, D bits in
 * an older root walked before the taking one, restarts at every entry. The
 * result must be exactly the pages written, D clear in both roots after, and
 * an empty second harvest.
 */
static void take_check(const u64 *want, const char *what)
{
	u64 i;

	for (i = 0; i < 64; i++) {
		if (out[i] != want[i]) {
			CHECK(false, "%s: word %llu: %#llx want %#llx", what, (unsigned long long)i,
			      (unsigned long long)out[i], (unsigned long long)want[i]);
			break;
		}
	}
}

static void test_dbit_take(unsigned int skew, bool yield_all, const char *name)
{
	const u64 n = 4096, hole_lo = 1000, hole_hi = 2100;
	gfn_t base = LOG_BASE + skew;
	struct tdp_mmu_root *old_root, *new_root;
	static u64 want[64];
	struct env e;
	u64 i, marked0;
	bool flush;
	int id, level;

	env_init(&e, SPTE_FMT_EPT_AD);
	id = tdp_mmu_set_memslot(&e.mmu, AS, base, n, base, &ram_2m, 0);
	CHECK(id >= 0, "slot");
	tdp_mmu_map_range(&e.mmu, AS, base, hole_lo, &flush);
	tdp_mmu_map_range(&e.mmu, AS, base + hole_hi, n - hole_hi, &flush);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bitmap, &flush) ==
		  MMU_OK,
	      "enable");
	flushed(&e, flush);
	memset(want, 0, sizeof(want));
	/* Old root: pages written through it before it was replaced. */
	for (i = 0; i < hole_lo; i += 3) {
		cpu_write(&e, base + i);
		want[i / 64] |= 1ull << (i % 64);
	}
	old_root = e.root;
	tdp_mmu_invalidate_roots(&e.mmu, AS);
	new_root = tdp_mmu_get_root(&e.mmu, AS);
	CHECK(new_root && new_root != old_root, "new root");
	e.root = new_root;
	/* New root: filled by write faults (the fault path marks), in the
	 * hole and around it, and written again (D) elsewhere. */
	for (i = 0; i < n; i += 5) {
		cpu_write(&e, base + i);
		want[i / 64] |= 1ull << (i % 64);
	}
	if (yield_all) {
		e.mmu.yield_every = 1;
		e.mmu.yield_uncontended = true;
	}
	get_log(&e, id, &flush);
	CHECK(flush, "D bits cleared: flush owed");
	take_check(want, "round 1 (faults and old-root D)");
	/* Round 2: only D bits, in both roots (W stayed in DBIT mode). */
	memset(want, 0, sizeof(want));
	for (i = 0; i < n; i++) {
		bool mapped = i < hole_lo || i >= hole_hi;

		e.root = old_root;
		if (mapped && !(i % 7) && leaf_of(&e, base + i, &level)) {
			cpu_write(&e, base + i);
			want[i / 64] |= 1ull << (i % 64);
		}
		e.root = new_root;
		if (!(i % 11)) {
			cpu_write(&e, base + i);
			want[i / 64] |= 1ull << (i % 64);
		}
	}
	marked0 = e.mmu.stats.dirty_marked;
	get_log(&e, id, &flush);
	take_check(want, "round 2 (D bits only)");
	CHECK(e.mmu.stats.dirty_marked > marked0, "D bits counted as marks");
	for (i = 0; i < n; i++) {
		u64 spte;

		e.root = old_root;
		spte = leaf_of(&e, base + i, &level);
		e.root = new_root;
		spte |= leaf_of(&e, base + i, &level);
		if (spte & e.fmt.dirty_mask) {
			CHECK(false, "page %llu: D still set after the harvest",
			      (unsigned long long)i);
			break;
		}
	}
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, 64) == 0, "second harvest empty (%llu)",
	      (unsigned long long)popcount_bm(out, 64));
	cpu_write(&e, base + n - 1);
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, 64) == 1 && test_bit(out, n - 1), "last page of the slot");
	tdp_mmu_put_root(&e.mmu, old_root);
	env_fini(&e);
	test_report(name);
}

/*
 * Re-arming by mask on a slot whose base is not 64-aligned: a bitmap word then
 * covers pages of two 4 KiB tables (reported by dirty-oracle: a harvest that
 * re-armed the wrong entries would leave reported pages writable).
 */
static void test_rearm_unaligned(enum tdp_dirty_mode mode, u64 log_flags, const char *name)
{
	struct env e;
	bool flush;
	gfn_t base = 0x2000 + 37;
	u64 n = 2000, i, s, words = tdp_dirty_bitmap_words(n);
	u64 mask[64];
	int id, bad = 0;

	env_init(&e, SPTE_FMT_EPT_AD);
	id = tdp_mmu_set_memslot(&e.mmu, AS, base, n, base, &ram_2m, 0);
	tdp_mmu_map_range(&e.mmu, AS, base, n, &flush);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, mode, log_flags, bitmap, &flush) == MMU_OK,
	      "enable");
	flushed(&e, flush);
	for (i = 0; i < n; i++)
		cpu_write(&e, base + i);
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, words) == n, "all %llu pages reported (%llu)", (unsigned long long)n,
	      (unsigned long long)popcount_bm(out, words));
	if (log_flags & TDP_LOG_MANUAL_PROTECT) {
		memset(mask, 0xff, sizeof(mask));
		CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, n, mask, &flush) == MMU_OK, "CLEAR");
		flushed(&e, flush);
	}
	for (i = 0; i < n && bad < 3; i++) {
		s = leaf_of(&e, base + i, NULL);
		if (mode == TDP_DIRTY_WP ? spte_is_writable(&e.fmt, s)
					 : (s & e.fmt.dirty_mask) != 0) {
			CHECK(false, "page %#llx (bit %llu) not re-armed",
			      (unsigned long long)(base + i), (unsigned long long)i);
			bad++;
		}
	}
	/* and a write after the re-arm is seen again */
	cpu_write(&e, base + 475);
	cpu_write(&e, base + 476);
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 475) && test_bit(out, 476), "writes across the table boundary");
	env_fini(&e);
	test_report(name);
}

static void test_pml_mode(void)
{
	struct env e;
	bool flush;
	int id, level;
	u64 s, i;
	u32 n;

	id = log_setup(&e, SPTE_FMT_EPT_AD, &ram_2m);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_PML, 0, bitmap, &flush) == MMU_OK,
	      "enable");
	e.pml_on = true;
	cpu_write(&e, LOG_BASE + 1);
	cpu_write(&e, LOG_BASE + 1); /* D already set: not logged twice */
	cpu_write(&e, LOG_BASE + 600);
	CHECK(e.pml_index == 509, "two PML entries (index %u)", e.pml_index);
	n = tdp_mmu_pml_drain(&e.mmu, AS, e.pml, &e.pml_index);
	CHECK(n == 2 && e.pml_index == 511, "drained 2");
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 1) && test_bit(out, 600) && popcount_bm(out, 18) == 2 && flush,
	      "harvest");
	CHECK(!(leaf_of(&e, LOG_BASE + 600, NULL) & e.fmt.dirty_mask), "D re-armed");
	cpu_write(&e, LOG_BASE + 600);
	CHECK(e.pml_index == 510, "logged again after re-arm");
	tdp_mmu_pml_drain(&e.mmu, AS, e.pml, &e.pml_index);

	CHECK(flushed(&e, tdp_mmu_set_dirty_slot(&e.mmu, id)), "set D: flush");
	for (i = 0; i < LOG_PAGES; i++) {
		s = leaf_of(&e, LOG_BASE + i, &level);
		if (!(s & e.fmt.dirty_mask)) {
			CHECK(false, "page %llu without D", (unsigned long long)i);
			break;
		}
	}
	CHECK(!flushed(&e, tdp_mmu_set_dirty_slot(&e.mmu, id)), "set D again: nothing");
	CHECK(flushed(&e, tdp_mmu_clear_dirty_slot(&e.mmu, id)), "clear D");
	CHECK(!(leaf_of(&e, LOG_BASE + 5, NULL) & e.fmt.dirty_mask), "D gone");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	CHECK(leaf_of(&e, LOG_BASE + 5, NULL) & e.fmt.dirty_mask, "PML stop sets D");
	env_fini(&e);
	test_report("dirty.pml.ept-ad");
}

static void test_manual(void)
{
	struct env e;
	bool flush;
	int id;
	u64 mask[32], w;

	id = log_setup(&e, SPTE_FMT_EPT_AD, &ram_2m);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, TDP_LOG_INITIALLY_SET, bitmap,
					   &flush) == MMU_EINVAL,
	      "initially-set needs manual");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP,
					   TDP_LOG_MANUAL_PROTECT | TDP_LOG_INITIALLY_SET, bitmap,
					   &flush) == MMU_OK,
	      "enable");
	w = tdp_dirty_bitmap_words(LOG_PAGES);
	CHECK(popcount_bm(bitmap, w) == LOG_PAGES &&
		  bitmap[w - 1] == (1ull << (LOG_PAGES % 64)) - 1,
	      "all set, tail bits clear");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 3, NULL)),
	      "initially-set: nothing write-protected yet");
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, w) == LOG_PAGES && !flush, "GET only copies");
	CHECK(popcount_bm(bitmap, w) == LOG_PAGES, "GET leaves the bitmap");
	memset(mask, 0, sizeof(mask));
	mask[0] = 0xf;
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, 64, mask, &flush) == MMU_OK &&
		  flushed(&e, flush),
	      "CLEAR");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 3, NULL)) &&
		  spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 4, NULL)),
	      "CLEAR re-armed exactly the masked pages");
	CHECK(!test_bit(bitmap, 3) && test_bit(bitmap, 4), "bits");
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, 64, mask, &flush) == MMU_OK && !flush,
	      "CLEAR again: bits were clear, nothing re-armed");
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 1, 64, mask, &flush) == MMU_EINVAL, "unaligned");
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, 65, mask, &flush) == MMU_EINVAL, "ragged");
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, LOG_PAGES + 1, mask, &flush) == MMU_EINVAL,
	      "past end");
	mask[0] = mask[1] = ~0ull;
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 1024, LOG_PAGES - 1024, mask, &flush) == MMU_OK &&
		  flush,
	      "ragged range ending at the slot end");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + LOG_PAGES - 1, NULL)), "last page");
	CHECK(popcount_bm(bitmap, w) == LOG_PAGES - 4 - 100, "bits left %llu",
	      (unsigned long long)popcount_bm(bitmap, w));
	cpu_write(&e, LOG_BASE + 2);
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 2), "write after CLEAR reported");
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 2), "manual GET does not consume");
	env_fini(&e);
	test_report("dirty.manual_protect_initially_set");
}

/*
 * The range forms (DEFER_ARM enable, arm / get / clear / collapse by range):
 * what the hypervisor's management runs in steps, one range per exit.
 */
static void test_ranges(void)
{
	struct env e;
	struct tdp_mmu_stats st;
	bool flush;
	int id, lvl;
	u64 w = tdp_dirty_bitmap_words(LOG_PAGES), i, mask[32];

	id = log_setup(&e, SPTE_FMT_EPT_AD, &ram_2m);
	memset(bitmap, 0xa5, sizeof(bitmap)); /* the caller's memory, not yet set up */
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP,
					   TDP_LOG_MANUAL_PROTECT | TDP_LOG_DEFER_ARM, bitmap,
					   &flush) == MMU_OK,
	      "enable deferred");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE, &lvl)) && lvl == TDP_LEVEL_2M,
	      "deferred: nothing split or write-protected yet");
	CHECK(tdp_mmu_arm_dirty_log_range(&e.mmu, id, 1, 64, &flush) == MMU_EINVAL, "unaligned");
	CHECK(tdp_mmu_arm_dirty_log_range(&e.mmu, id, 0, 65, &flush) == MMU_EINVAL, "ragged");
	CHECK(tdp_mmu_arm_dirty_log_range(&e.mmu, id, 0, 512, &flush) == MMU_OK && flush,
	      "arm the first 2 MiB");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 511, &lvl)) &&
		  lvl == TDP_LEVEL_4K,
	      "armed range: split, write-protected");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 512, &lvl)) && lvl == TDP_LEVEL_2M,
	      "the next range untouched");
	CHECK(popcount_bm(bitmap, 8) == 0 && bitmap[8] == 0xa5a5a5a5a5a5a5a5ull,
	      "bitmap words set up with their range only");
	CHECK(tdp_mmu_arm_dirty_log_range(&e.mmu, id, 512, LOG_PAGES - 512, &flush) == MMU_OK &&
		  flushed(&e, flush),
	      "arm the rest (ragged end)");
	CHECK(popcount_bm(bitmap, w) == 0, "bitmap clear");
	for (i = 0; i < LOG_PAGES; i++)
		CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + i, NULL)),
		      "every page armed (+%llu)", (unsigned long long)i);
	cpu_write(&e, LOG_BASE + 5);
	cpu_write(&e, LOG_BASE + LOG_PAGES - 1);
	memset(out, 0, sizeof(out));
	CHECK(tdp_mmu_get_dirty_log_range(&e.mmu, id, 0, 64, out, &flush) == MMU_OK &&
		  out[0] == 1ull << 5,
	      "get a range");
	CHECK(tdp_mmu_get_dirty_log_range(&e.mmu, id, 1024, LOG_PAGES - 1024, out + 16, &flush) ==
			  MMU_OK &&
		      test_bit(out, LOG_PAGES - 1),
	      "get the ragged last range");
	memcpy(mask, out, sizeof(mask));
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, 64, mask, &flush) == MMU_OK &&
		  flushed(&e, flush) && !spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 5, NULL)) &&
		  spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + LOG_PAGES - 1, NULL)),
	      "clear re-arms its range only");
	CHECK(tdp_mmu_collapse_range(&e.mmu, id, 0, 512, &flush) == MMU_EINVAL,
	      "no collapse while logging");
	CHECK(tdp_mmu_disable_dirty_logging_deferred(&e.mmu, id, &flush) == MMU_OK, "stop");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 600, &lvl)) == false &&
		  lvl == TDP_LEVEL_4K,
	      "deferred stop: still 4 KiB and protected");
	/* (Collapsing frees tables, so it flushes itself first.) */
	CHECK(tdp_mmu_collapse_range(&e.mmu, id, 0, 512, &flush) == MMU_OK,
	      "collapse the first 2 MiB");
	flushed(&e, flush);
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE, &lvl)) && lvl == TDP_LEVEL_2M,
	      "first 2 MiB huge again");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 600, &lvl)) && lvl == TDP_LEVEL_4K,
	      "the rest not yet");
	CHECK(tdp_mmu_collapse_range(&e.mmu, id, 512, LOG_PAGES - 512, &flush) == MMU_OK,
	      "collapse the rest");
	flushed(&e, flush);
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[TDP_LEVEL_2M] == 2 && st.leaves[TDP_LEVEL_4K] == LOG_PAGES - 1024,
	      "back to 2 huge leaves + %d 4 KiB", (int)(LOG_PAGES - 1024));

	/* INITIALLY_SET: each range's bits set as it is armed, none past the end. */
	memset(bitmap, 0, sizeof(bitmap));
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT,
					   TDP_LOG_MANUAL_PROTECT | TDP_LOG_INITIALLY_SET |
					       TDP_LOG_DEFER_ARM,
					   bitmap, &flush) == MMU_OK,
	      "enable deferred, initially set");
	CHECK(tdp_mmu_arm_dirty_log_range(&e.mmu, id, 0, 1024, &flush) == MMU_OK &&
		  tdp_mmu_arm_dirty_log_range(&e.mmu, id, 1024, LOG_PAGES - 1024, &flush) == MMU_OK,
	      "arm in two ranges");
	CHECK(popcount_bm(bitmap, w) == LOG_PAGES &&
		  bitmap[w - 1] == (1ull << (LOG_PAGES % 64)) - 1,
	      "all set, tail bits clear");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	env_fini(&e);
	test_report("dirty.ranges");
}

static void test_split_collapse(void)
{
	struct env e;
	struct tdp_mmu_stats st0, st;
	bool flush;
	int id, level;
	gfn_t base = 0x40000 * 4; /* 1G-aligned */
	u64 n = 2 * 262144 + 512 * 3;
	u64 *bm = calloc(tdp_dirty_bitmap_words(n), 8);
	u64 *o = calloc(tdp_dirty_bitmap_words(n), 8);
	long pages_before;

	env_init(&e, SPTE_FMT_NPT);
	id = tdp_mmu_set_memslot(&e.mmu, AS, base, n, base, &ram_1g, 0);
	tdp_mmu_map_range(&e.mmu, AS, base, n, &flush);
	tdp_mmu_get_stats(&e.mmu, &st0);
	CHECK(st0.leaves[3] == 2 && st0.leaves[2] == 3, "2x1G + 3x2M");
	pages_before = e.tp.live;
	e.mmu.yield_every = 64; /* many batches */
	e.mmu.yield_uncontended = true;
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bm, &flush) == MMU_OK,
	      "enable");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[3] == 0 && st.leaves[2] == 0 && st.leaves[1] == n, "all 4K");
	CHECK(st.yields > 10, "split and wrprot ran in batches (%" PRIu64 " yields)", st.yields);
	CHECK(e.tp.live == pages_before + 2 + 1024 + 3, "tables: %ld", e.tp.live - pages_before);
	cpu_write(&e, base + 262144 + 77);
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[3] == 2 && st.leaves[2] == 3 && st.leaves[1] == 0, "collapsed");
	CHECK(e.tp.live == pages_before, "tables freed: %ld", e.tp.live - pages_before);
	CHECK(st.flushes > st0.flushes, "collapse flushed before freeing");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, base + 5, &level)) && level == 3, "1G, W");

	/* Allocation failure: huge pages stay, write-protected, split on fault. */
	e.tp.fail_after = 0;
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_DBIT, 0, bm, &flush) == MMU_OK,
	      "enable without memory");
	CHECK(flush, "flush");
	CHECK(tdp_mmu_memslot(&e.mmu, id)->split_incomplete, "split incomplete");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, base + 5, &level)) && level == 3,
	      "huge leaf write-protected");
	CHECK(cpu_write(&e, base + 5) == TDP_FAULT_NOMEM, "fault cannot split either");
	CHECK(!test_bit(bm, 5), "no mark without a write");
	e.tp.fail_after = -1;
	CHECK(cpu_write(&e, base + 5) == TDP_FAULT_FIXED, "fault splits");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, base + 5, &level)) && level == 1, "4K, W");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, base + 6, &level)) && level == 1,
	      "neighbour 4K, still protected");
	leaf_of(&e, base + 1024, &level);
	CHECK(level == 2, "rest of the 1G page split to 2M only");
	CHECK(test_bit(bm, 5) && popcount_bm(bm, tdp_dirty_bitmap_words(n)) == 1,
	      "the fault marked the page");
	memset(o, 0, tdp_dirty_bitmap_words(n) * 8);
	tdp_mmu_get_dirty_log(&e.mmu, id, o, tdp_dirty_bitmap_words(n), &flush);
	CHECK(test_bit(o, 5), "harvested");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "disable");
	CHECK(e.tp.live == pages_before, "back to baseline: %ld", e.tp.live - pages_before);
	env_fini(&e);
	free(bm);
	free(o);
	test_report("dirty.split_and_collapse");
}

/*
 * Write tracking, a second reason to keep pages read-only: every leaf loses
 * W, a write to a tracked page changes nothing (TDP_FAULT_TRACKED), an
 * untracked page gets W back at its write (marked in a logged slot, in every
 * mode), and neither dirty logging's passes nor its stop give W to a tracked
 * page; huge leaves stay read-only and split page by page.
 */
static void test_write_track(enum tdp_dirty_mode mode, const char *name)
{
	enum spte_format_kind kind = mode == TDP_DIRTY_WP ? SPTE_FMT_EPT : SPTE_FMT_NPT;
	static u64 track[(LOG_PAGES + 63) / 64];
	struct env e;
	struct tdp_mmu_stats st;
	bool flush;
	int id, level;
	u64 i;

	id = log_setup(&e, kind, &ram_2m);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, mode, 0, bitmap, &flush) == MMU_OK,
	      "logging");
	flushed(&e, flush);
	cpu_write(&e, LOG_BASE + 3); /* writable before tracking (W restored or D mode) */
	CHECK(test_bit(bitmap, 3) || mode != TDP_DIRTY_WP, "logged before");
	CHECK(tdp_mmu_write_track_enable(&e.mmu, id, track, &flush) == MMU_OK, "track");
	CHECK(flushed(&e, flush), "W taken: flush needed");
	CHECK(tdp_mmu_write_track_enable(&e.mmu, id, track, &flush) == MMU_EINVAL, "twice");
	for (i = 0; i < LOG_PAGES; i++) {
		if (!tdp_mmu_write_tracked(&e.mmu, id, i) ||
		    spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + i, NULL))) {
			CHECK(false, "page %llu tracked and read-only", (unsigned long long)i);
			break;
		}
	}
	CHECK(!tdp_mmu_write_tracked(&e.mmu, id, LOG_PAGES), "past the slot");
	CHECK(cpu_write(&e, LOG_BASE + 3) == TDP_FAULT_TRACKED, "write to a tracked page");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 3, NULL)), "nothing changed");
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.faults_tracked == 1, "counted");

	/* A harvest re-arms, never gives W. */
	get_log(&e, id, &flush);
	flushed(&e, flush);
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 3, NULL)), "harvest keeps it");
	CHECK(popcount_bm(bitmap, tdp_dirty_bitmap_words(LOG_PAGES)) == 0, "log empty");

	/* Untracked: exactly one caller wins; the write then gets W and is logged. */
	CHECK(tdp_mmu_write_untrack(&e.mmu, id, 3), "untrack");
	CHECK(!tdp_mmu_write_untrack(&e.mmu, id, 3), "untrack again: already");
	CHECK(cpu_write(&e, LOG_BASE + 3) == TDP_FAULT_FIXED, "write after untrack");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 3, &level)) && level == 1, "W");
	get_log(&e, id, &flush);
	flushed(&e, flush);
	CHECK(test_bit(out, 3) && popcount_bm(out, tdp_dirty_bitmap_words(LOG_PAGES)) == 1,
	      "the write after untrack is in the log");
	CHECK(cpu_write(&e, LOG_BASE + 4) == TDP_FAULT_TRACKED, "neighbour still tracked");

	/* A zapped tracked page comes back read-only on a read and on a write. */
	tdp_mmu_zap_range(&e.mmu, AS, LOG_BASE + 9, 1);
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, gfn_to_gpa(LOG_BASE + 9), 0) == TDP_FAULT_FIXED,
	      "read fault");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 9, NULL)), "mapped read-only");
	tdp_mmu_zap_range(&e.mmu, AS, LOG_BASE + 10, 1);
	CHECK(cpu_write(&e, LOG_BASE + 10) == TDP_FAULT_TRACKED, "write fault, not present");

	/* Logging stops: collapse gives W back only where nothing is tracked. */
	tdp_mmu_write_untrack(&e.mmu, id, 20);
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_OK, "logging off");
	flushed(&e, flush);
	tdp_mmu_get_stats(&e.mmu, &st);
	CHECK(st.leaves[2] == 0, "no huge leaf while tracking");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 21, &level)) && level == 1,
	      "tracked: read-only after stop");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 20, NULL)), "untracked: W back");
	CHECK(cpu_write(&e, LOG_BASE + 21) == TDP_FAULT_TRACKED, "still tracked after stop");

	/* Tracking ends: W comes back at the next write. */
	CHECK(tdp_mmu_write_track_disable(&e.mmu, id) == MMU_OK, "untrack all");
	CHECK(tdp_mmu_write_track_disable(&e.mmu, id) == MMU_EINVAL, "untrack all twice");
	CHECK(!tdp_mmu_write_untrack(&e.mmu, id, 30), "no tracking: nothing to untrack");
	CHECK(cpu_write(&e, LOG_BASE + 21) == TDP_FAULT_FIXED, "write after the end");
	env_fini(&e);

	/* Huge leaves: read-only, and split at the write of an untracked page. */
	env_init(&e, kind);
	id = tdp_mmu_set_memslot(&e.mmu, AS, LOG_BASE, LOG_PAGES, LOG_BASE, &ram_2m, 0);
	tdp_mmu_map_range(&e.mmu, AS, LOG_BASE, LOG_PAGES, &flush);
	leaf_of(&e, LOG_BASE + 5, &level);
	CHECK(level == 2, "2M before");
	CHECK(tdp_mmu_write_track_enable(&e.mmu, id, track, &flush) == MMU_OK && flush, "track");
	flushed(&e, flush);
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 5, &level)) && level == 2,
	      "huge leaf read-only");
	CHECK(cpu_write(&e, LOG_BASE + 5) == TDP_FAULT_TRACKED, "tracked under a huge leaf");
	tdp_mmu_write_untrack(&e.mmu, id, 5);
	CHECK(cpu_write(&e, LOG_BASE + 5) == TDP_FAULT_FIXED, "untracked: fixed");
	CHECK(spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 5, &level)) && level == 1,
	      "split, 4K writable");
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 6, &level)) && level == 1,
	      "neighbour read-only");
	CHECK(cpu_write(&e, LOG_BASE + 6) == TDP_FAULT_TRACKED, "neighbour tracked");
	/* Mapping while tracking maps tracked pages read-only, at 4K. */
	tdp_mmu_zap_range(&e.mmu, AS, LOG_BASE + 1024, 100);
	tdp_mmu_map_range(&e.mmu, AS, LOG_BASE + 1024, 100, &flush);
	CHECK(!spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + 1030, &level)) && level == 1,
	      "mapped read-only");
	CHECK(tdp_mmu_write_track_disable(&e.mmu, id) == MMU_OK, "end");
	CHECK(tdp_mmu_write_track_enable(&e.mmu, 99, track, &flush) == MMU_ENOENT, "no slot");
	env_fini(&e);
	test_report(name);
}

static void test_pml_drain(void)
{
	struct env e;
	int id;
	u64 buf[TDP_PML_ENTRIES];
	u16 idx;
	u32 i, n;

	env_init(&e, SPTE_FMT_EPT_AD);
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0x1000, 1024, 0x1000, &ram_2m, 0);
	tdp_mmu_set_memslot(&e.mmu, AS, 0x9000, 64, 0x9000, &ram_2m, 0); /* not logged */
	{
		bool flush;

		tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_PML, 0, bitmap, &flush);
	}
	for (i = 0; i < TDP_PML_ENTRIES; i++)
		buf[i] = gfn_to_gpa(0x1000 + i) | (i & 0xfff);
	idx = 511;
	CHECK(tdp_mmu_pml_drain(&e.mmu, AS, buf, &idx) == 0 && idx == 511, "empty");
	CHECK(popcount_bm(bitmap, 16) == 0, "nothing marked");
	idx = 509;
	CHECK(tdp_mmu_pml_drain(&e.mmu, AS, buf, &idx) == 2 && idx == 511, "two");
	CHECK(test_bit(bitmap, 510) && test_bit(bitmap, 511) && popcount_bm(bitmap, 16) == 2,
	      "entries 510, 511 (offsets masked)");
	memset(bitmap, 0, sizeof(bitmap));
	idx = 0xffff;
	CHECK(tdp_mmu_pml_drain(&e.mmu, AS, buf, &idx) == 512, "full after wrap");
	CHECK(popcount_bm(bitmap, 16) == 512, "all 512");
	memset(bitmap, 0, sizeof(bitmap));
	idx = 600;
	CHECK(tdp_mmu_pml_drain(&e.mmu, AS, buf, &idx) == 512, "out of range index = full");
	buf[0] = gfn_to_gpa(0x9001);	    /* slot not logged */
	buf[1] = gfn_to_gpa(0x500000);	    /* no slot */
	buf[2] = gfn_to_gpa(0x1000 + 1024); /* just past the slot */
	e.mmu.stats.pml_dropped = 0;
	idx = 0xffff;
	n = tdp_mmu_pml_drain(&e.mmu, AS, buf, &idx);
	CHECK(n == 512 && e.mmu.stats.pml_dropped == 3, "3 dropped (%" PRIu64 ")",
	      e.mmu.stats.pml_dropped);
	env_fini(&e);
	test_report("pml.drain");
}

static void test_roots(void)
{
	struct env e;
	struct tdp_mmu_root *r1, *r2, *r3;
	bool flush;
	long base_pages;
	int id;

	env_init(&e, SPTE_FMT_EPT_AD);
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0, 4096, 0x100, &ram_2m, 0);
	CHECK(id >= 0, "slot");
	tdp_mmu_map_range(&e.mmu, AS, 0, 4096, &flush);
	r1 = e.root;
	r2 = tdp_mmu_get_root(&e.mmu, AS);
	CHECK(r1 == r2 && r1->refcount == 3, "same valid root, refs %u", r1->refcount);
	base_pages = e.tp.live;
	CHECK(base_pages == 1 + 2 + 4096 / 512, "pages %ld", base_pages);
	tdp_mmu_invalidate_roots(&e.mmu, AS);
	CHECK(!tdp_mmu_root_is_valid(r1) && r1->refcount == 2, "invalid, still referenced");
	CHECK(tdp_mmu_page_fault(&e.mmu, r1, 0x5000, TDP_FAULT_WRITE) == TDP_FAULT_RETRY,
	      "fault on an invalid root: reload");
	r3 = tdp_mmu_get_root(&e.mmu, AS);
	CHECK(r3 && r3 != r1 && tdp_mmu_root_is_valid(r3), "new root");
	CHECK(tdp_mmu_page_fault(&e.mmu, r3, 0x5000, TDP_FAULT_WRITE) == TDP_FAULT_FIXED,
	      "new root fills by faults");
	tdp_mmu_put_root(&e.mmu, r2);
	CHECK(r1->in_use && e.tp.live > base_pages, "one ref left: not freed");
	tdp_mmu_put_root(&e.mmu, r1);
	e.root = r3;
	CHECK(!r1->in_use && e.tp.live == 1 + 3, "last put freed every table of the old root");
	r2 = tdp_mmu_get_root(&e.mmu, AS);
	CHECK(tdp_mmu_destroy(&e.mmu) == MMU_EBUSY, "destroy with a vCPU reference");
	tdp_mmu_put_root(&e.mmu, r2);
	CHECK(tdp_mmu_get_root(&e.mmu, TDP_MMU_NR_AS) == NULL, "bad AS");
	env_fini(&e);
	test_report("roots.refcount_teardown");
}

static void test_yield_equivalence(void)
{
	u64 ref[32], got[32];
	unsigned int pass;

	for (pass = 0; pass < 2; pass++) {
		struct env e;
		bool flush;
		int id;
		u64 i;

		id = log_setup(&e, SPTE_FMT_NPT, &ram_1g);
		if (pass) {
			e.mmu.yield_every = 1;
			e.mmu.yield_uncontended = true;
		}
		tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush);
		for (i = 0; i < LOG_PAGES; i += 7)
			cpu_write(&e, LOG_BASE + i);
		get_log(&e, id, &flush);
		memcpy(pass ? got : ref, out, sizeof(ref));
		for (i = 0; i < LOG_PAGES; i++) {
			if (spte_is_writable(&e.fmt, leaf_of(&e, LOG_BASE + i, NULL))) {
				CHECK(false, "pass %u page %llu writable after harvest", pass,
				      (unsigned long long)i);
				break;
			}
		}
		if (pass)
			CHECK(e.mmu.stats.yields > 5, "yields %" PRIu64, e.mmu.stats.yields);
		tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush);
		env_fini(&e);
	}
	CHECK(!memcmp(ref, got, sizeof(ref)), "same bitmap with a yield at every entry");
	CHECK(popcount_bm(ref, 18) == (LOG_PAGES + 6) / 7, "one bit per write");
	test_report("yield.every_entry_same_result");
}

/* While a pass has let go of the lock, tables under it are zapped and freed:
 * the restart must not touch them (ASan would report it). */
static int relax_calls;
static struct env *relax_env;

static void zap_on_relax(struct test_plat *tp)
{
	(void)tp;
	if (++relax_calls % 3 == 0)
		tdp_mmu_zap_range(&relax_env->mmu, AS, LOG_BASE + (u64)(relax_calls * 97) % 4096,
				  600);
}

static void test_zap_during_yield(void)
{
	struct env e;
	bool flush;
	int id, level, zapped = 0;
	u64 i, s, n = 4096;

	env_init(&e, SPTE_FMT_EPT_AD);
	id = tdp_mmu_set_memslot(&e.mmu, AS, LOG_BASE, n, LOG_BASE, &ram_2m, 0);
	tdp_mmu_map_range(&e.mmu, AS, LOG_BASE, n, &flush);
	tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush);
	flushed(&e, flush);
	for (i = 0; i < n; i++)
		cpu_write(&e, LOG_BASE + i);
	e.mmu.yield_every = 8;
	e.mmu.yield_uncontended = true;
	relax_env = &e;
	e.tp.on_relax = zap_on_relax;
	flushed(&e, tdp_mmu_wrprot_slot(&e.mmu, id, TDP_LEVEL_4K));
	CHECK(relax_calls > 3, "zaps happened (%d)", relax_calls);
	for (i = 0; i < n; i++) {
		s = leaf_of(&e, LOG_BASE + i, &level);
		zapped += !s;
		if (s && spte_is_writable(&e.fmt, s)) {
			CHECK(false, "page %llu still writable", (unsigned long long)i);
			break;
		}
	}
	CHECK(zapped > 0, "some pages zapped under the walk");
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, n / 64) == n, "every page was written once");
	for (i = 0; i < n; i += 3)
		cpu_write(&e, LOG_BASE + i);
	get_log(&e, id, &flush);
	CHECK(popcount_bm(out, n / 64) == (n + 2) / 3, "harvest with zaps in its yields: %llu",
	      (unsigned long long)popcount_bm(out, n / 64));
	e.tp.on_relax = NULL;
	for (i = 0; i < n; i++) {
		s = leaf_of(&e, LOG_BASE + i, &level);
		if (s && spte_is_writable(&e.fmt, s)) {
			CHECK(false, "page %llu writable after harvest", (unsigned long long)i);
			break;
		}
	}
	env_fini(&e);
	test_report("yield.tables_freed_while_yielded");
}

/* Bad requests get an error and change nothing. */
static void test_bad_requests(void)
{
	struct env e;
	bool flush;
	int id, ro;
	u64 small[2];

	env_init(&e, SPTE_FMT_NPT);
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0x1000, 1000, 0x1000, &ram_2m, 0);
	ro = tdp_mmu_set_memslot(&e.mmu, AS, 0x8000, 64, 0x8000, &ram_2m, TDP_SLOT_READONLY);
	CHECK(id >= 0 && ro >= 0, "slots");
	CHECK(tdp_mmu_get_dirty_log(&e.mmu, id, out, 4096, &flush) == MMU_EINVAL, "not logging");
	CHECK(tdp_mmu_disable_dirty_logging(&e.mmu, id, &flush) == MMU_EINVAL, "disable: not on");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, 999, TDP_DIRTY_WP, 0, bitmap, &flush) ==
		  MMU_ENOENT,
	      "no slot");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, NULL, &flush) == MMU_EINVAL,
	      "no bitmap");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, (enum tdp_dirty_mode)7, 0, bitmap, &flush) ==
		  MMU_EINVAL,
	      "bad mode");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, ro, TDP_DIRTY_WP, 0, bitmap, &flush) ==
		  MMU_EINVAL,
	      "read-only slot");
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush) == MMU_OK,
	      "enable");
	flushed(&e, flush);
	CHECK(tdp_mmu_enable_dirty_logging(&e.mmu, id, TDP_DIRTY_WP, 0, bitmap, &flush) ==
		  MMU_EINVAL,
	      "enable twice");
	CHECK(tdp_mmu_get_dirty_log(&e.mmu, id, small, 2, &flush) == MMU_EINVAL, "out too small");
	CHECK(tdp_mmu_clear_dirty_log(&e.mmu, id, 0, 64, bitmap, &flush) == MMU_EINVAL,
	      "CLEAR without manual protect");
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, gfn_to_gpa(0x8001), TDP_FAULT_WRITE) ==
		  TDP_FAULT_ACCESS,
	      "write to a read-only slot");
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, gfn_to_gpa(0x8001), 0) == TDP_FAULT_FIXED,
	      "read of a read-only slot");
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, 1ull << 52, TDP_FAULT_WRITE) == TDP_FAULT_NO_SLOT,
	      "gpa past every slot");
	CHECK(tdp_mmu_page_fault(&e.mmu, NULL, 0x1000000, 0) == TDP_FAULT_RETRY, "no root");
	CHECK(tdp_mmu_pml_drain(&e.mmu, AS, NULL, NULL) == 0, "no PML buffer");
	/* the hypervisor's own write to guest memory */
	tdp_mmu_mark_page_dirty(&e.mmu, AS, 0x1000 + 999);
	tdp_mmu_mark_page_dirty(&e.mmu, AS, 0x1000 + 1000); /* past the slot: ignored */
	get_log(&e, id, &flush);
	CHECK(test_bit(out, 999) && popcount_bm(out, 16) == 1, "mark_page_dirty");
	CHECK(tdp_mmu_map_range(&e.mmu, TDP_MMU_NR_AS, 0, 1, &flush) == MMU_EINVAL, "bad AS");
	CHECK(tdp_mmu_map_range(&e.mmu, AS, ~0ull, 2, &flush) == MMU_EINVAL, "wrapping range");
	CHECK(!tdp_mmu_zap_range(&e.mmu, AS, 0, 0), "empty zap");
	env_fini(&e);
	test_report("api.bad_requests");
}

static void test_delete_and_age(void)
{
	struct env e;
	bool flush;
	int id;
	u64 young;

	env_init(&e, SPTE_FMT_NPT);
	id = tdp_mmu_set_memslot(&e.mmu, AS, 0x200, 2048, 0x200, &ram_2m, 0);
	tdp_mmu_map_range(&e.mmu, AS, 0, 0x10000, &flush);
	cpu_write(&e, 0x200);
	cpu_write(&e, 0x401);
	young = tdp_mmu_age_range(&e.mmu, AS, 0, 0x10000, &flush);
	CHECK(young == 2 * 512 && flushed(&e, flush), "two accessed 2M pages (%llu)",
	      (unsigned long long)young);
	CHECK(tdp_mmu_age_range(&e.mmu, AS, 0, 0x10000, &flush) == 0 && !flush, "A cleared");
	CHECK(tdp_mmu_delete_memslot(&e.mmu, id) == MMU_OK, "delete");
	CHECK(e.tp.live == 1 + 2, "only root + upper tables left (%ld)", e.tp.live);
	CHECK(e.mmu.stats.leaves[2] == 0 && e.mmu.stats.leaves[1] == 0, "no leaves");
	CHECK(tdp_mmu_page_fault(&e.mmu, e.root, 0x200000, TDP_FAULT_WRITE) == TDP_FAULT_NO_SLOT,
	      "no slot");
	env_fini(&e);
	test_report("zap.delete_slot_and_age");
}

int main(void)
{
	test_format(SPTE_FMT_EPT_AD);
	test_format(SPTE_FMT_EPT);
	test_format(SPTE_FMT_NPT);
	test_iterator();
	test_map_levels();
	test_memslots();
	test_wp(SPTE_FMT_EPT_AD);
	test_wp(SPTE_FMT_EPT);
	test_wp(SPTE_FMT_NPT);
	test_dbit(SPTE_FMT_EPT_AD);
	test_dbit(SPTE_FMT_NPT);
	test_dbit_unaligned();
	test_dbit_take(0, false, "dirty.dbit.take.aligned");
	test_dbit_take(5, false, "dirty.dbit.take.straddling");
	test_dbit_take(0, true, "dirty.dbit.take.aligned_yield_every_entry");
	test_dbit_take(5, true, "dirty.dbit.take.straddling_yield_every_entry");
	test_plain_store_rule();
	test_rearm_unaligned(TDP_DIRTY_WP, 0, "dirty.wp.unaligned_slot_rearm");
	test_rearm_unaligned(TDP_DIRTY_WP, TDP_LOG_MANUAL_PROTECT, "dirty.wp.unaligned_slot_clear");
	test_rearm_unaligned(TDP_DIRTY_DBIT, TDP_LOG_MANUAL_PROTECT,
			     "dirty.dbit.unaligned_slot_clear");
	test_pml_mode();
	test_manual();
	test_ranges();
	test_split_collapse();
	test_write_track(TDP_DIRTY_WP, "write_track.wp.ept");
	test_write_track(TDP_DIRTY_DBIT, "write_track.dbit.npt");
	test_write_track(TDP_DIRTY_PML, "write_track.pml.npt");
	test_pml_drain();
	test_roots();
	test_yield_equivalence();
	test_zap_during_yield();
	test_delete_and_age();
	test_bad_requests();
	return test_failures ? 1 : 0;
}
