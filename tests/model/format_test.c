// SPDX-License-Identifier: MIT
/*
 * mmu/'s entries as the processor reads them: for each format and page size,
 * map a slot with mmu/, then walk it with the hardware model (hw_arch.h's own
 * bit definitions) and check that
 *   - reads and writes translate to the slot's frames with a leaf of the
 *     expected level, and no entry is a misconfiguration;
 *   - the processor's accessed/dirty updates land where mmu/'s predicates
 *     look (spte_is_accessed / spte_is_dirty agree with the architectural
 *     bits), and a format without A/D gets no such bits at all;
 *   - write protection for dirty logging makes the next write fault, the
 *     fault handler marks the page and restores W, and the retried write
 *     succeeds (the write-protect round trip of dirty logging, on the real
 *     bit layout);
 *   - PML: the index counts down from 511, a full buffer is a PML-full exit
 *     with no flag set, and draining a buffer whose entries carry page
 *     offsets sets exactly the pages written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/tdp_mmu_parity.h"
#include "hw_model.h"
#include "model_platform.h"

#define GUEST_HFN_BASE (1ull << (47 - PAGE_SHIFT))

struct ft {
	struct tdp_mmu mmu;
	struct model_platform plat;
	struct hw_machine hw;
	struct tdp_mmu_root *root;
	gfn_t base;
	hfn_t base_hfn;
	u64 npages;
	int slot;
	int errors;
	char err[256];
	u64 stores, misconfigs;
};

static void ft_fail(struct ft *t, const char *msg, u64 a, u64 b)
{
	if (!t->errors++)
		snprintf(t->err, sizeof(t->err), "%s (%#" PRIx64 ", %#" PRIx64 ")", msg, a, b);
}

static int ft_fault(struct hw_vcpu *v, const struct hw_fault *f, void *ctx)
{
	struct ft *t = ctx;
	bool present = v->m->fmt == HW_FMT_NPT
			       ? (f->exit_info & HW_PFERR_P)
			       : (f->exit_info & (HW_EPT_VIOL_READABLE | HW_EPT_VIOL_WRITABLE |
						  HW_EPT_VIOL_EXECUTABLE));
	enum tdp_fault_result r = tdp_mmu_page_fault(
		&t->mmu, t->root, f->gpa,
		(f->write ? TDP_FAULT_WRITE : 0) | (present ? TDP_FAULT_PRESENT : 0));

	if (r == TDP_FAULT_FIXED || r == TDP_FAULT_SPURIOUS)
		return 0;
	ft_fail(t, "fault not fixed (gpa, result)", f->gpa, r);
	return -EFAULT;
}

static int ft_drain(struct hw_vcpu *v, const u64 *buf, u16 index, void *ctx)
{
	struct ft *t = ctx;
	u16 idx = index;

	(void)v;
	tdp_mmu_pml_drain(&t->mmu, 0, buf, &idx);
	return 0;
}

static void ft_store(struct hw_vcpu *v, gpa_t gpa, hpa_t hpa, u64 value, void *ctx)
{
	struct ft *t = ctx;
	hpa_t want = ((t->base_hfn + (gpa_to_gfn(gpa) - t->base)) << PAGE_SHIFT) |
		     (gpa & ~PAGE_MASK);

	(void)v;
	(void)value;
	t->stores++;
	if (hpa != want)
		ft_fail(t, "store landed on the wrong frame (hpa, want)", hpa, want);
}

static void ft_misconfig(struct hw_vcpu *v, const struct hw_fault *f, void *ctx)
{
	struct ft *t = ctx;

	(void)v;
	t->misconfigs++;
	ft_fail(t, "misconfigured entry (entry, level)", f->entry, f->level);
}

/* The entries the processor uses for @gpa, read with the model's own bits. */
static int arch_walk(struct ft *t, gpa_t gpa, u64 *ptes[HW_LEVELS + 1])
{
	hpa_t table = tdp_mmu_root_hpa(t->root);
	enum hw_format fmt = t->hw.fmt;

	for (int level = HW_LEVELS; level >= 1; level--) {
		u64 *p = model_hpa_to_table(table) + hw_index(gpa, level);
		u64 e = __atomic_load_n(p, __ATOMIC_ACQUIRE);

		ptes[level] = p;
		if (fmt == HW_FMT_NPT ? !(e & HW_NPT_P) : !(e & HW_EPT_RWX))
			return -level;
		if (level == 1 || (level < 4 && (e & HW_EPT_PS))) /* PS: bit 7 in both */
			return level;
		table = e & HW_ADDR_MASK;
	}
	return 0;
}

static bool run_format(enum hw_format fmt, int size_level)
{
	static const char *const names[] = { "ept-ad", "ept", "npt" };
	static const char *const sizes[] = { "", "4k", "2m", "1g" };
	struct ft *t = calloc(1, sizeof(*t));
	struct spte_format f;
	struct hw_handlers h = {
		.fault = ft_fault,
		.pml_full = ft_drain,
		.store = ft_store,
		.misconfig = ft_misconfig,
		.ctx = t,
	};
	struct tdp_map_attrs a = {
		.writable = true,
		.executable = true,
		.memtype = TDP_MEMTYPE_RAM,
		.max_level = size_level,
	};
	u64 *ptes[HW_LEVELS + 1];
	bool ad = hw_format_has_ad(fmt);
	u64 a_bit = fmt == HW_FMT_NPT ? HW_NPT_A : HW_EPT_A;
	u64 d_bit = fmt == HW_FMT_NPT ? HW_NPT_D : HW_EPT_D;
	u64 w_bit = fmt == HW_FMT_NPT ? HW_NPT_RW : HW_EPT_W;
	bool flush = false;
	int ret;

	hw_machine_init(&t->hw, fmt, 1, model_hpa_to_table, &h, 1);
	model_platform_init(&t->plat, &t->hw);
	if (fmt == HW_FMT_NPT)
		spte_format_init_npt(&f, true);
	else
		spte_format_init_ept(&f, fmt == HW_FMT_EPT_AD, true);
	struct mmu_platform ops = model_platform_ops(&t->plat);
	tdp_mmu_init(&t->mmu, &f, &ops);
	t->base = 1ull << 18; /* 1 GiB */
	t->base_hfn = GUEST_HFN_BASE;
	t->npages = size_level == 3 ? 2 * hw_level_pages(3) : 4096;
	t->slot = tdp_mmu_set_memslot(&t->mmu, 0, t->base, t->npages, t->base_hfn, &a, 0);
	if (t->slot < 0)
		ft_fail(t, "set_memslot", t->slot, 0);
	ret = tdp_mmu_map_range(&t->mmu, 0, t->base, t->npages, &flush);
	if (ret)
		ft_fail(t, "map_range", ret, 0);
	t->root = tdp_mmu_get_root(&t->mmu, 0);
	hw_vcpu_set_root(&t->hw.vcpus[0], tdp_mmu_root_hpa(t->root));
	struct hw_vcpu *v = &t->hw.vcpus[0];

	/* 1. A read: translation, leaf level, A on every level, D clear. */
	gpa_t gpa = gfn_to_gpa(t->base + 3) + 0x128;
	if (hw_access(v, gpa, HW_READ, 0))
		ft_fail(t, "read failed", gpa, 0);
	int leaf = arch_walk(t, gpa, ptes);
	if (leaf != size_level)
		ft_fail(t, "leaf at the wrong level (got, want)", (u64)leaf, size_level);
	for (int l = HW_LEVELS; l >= leaf && leaf > 0 && !t->errors; l--) {
		u64 e = *ptes[l];

		if (ad && !(e & a_bit))
			ft_fail(t, "A not set by the walk (level, entry)", l, e);
		if (!ad && (e & (HW_EPT_A | HW_EPT_D)))
			ft_fail(t, "bits 8/9 set in EPT without A/D (level, entry)", l, e);
		if (l == leaf && spte_is_accessed(&f, e) != true)
			ft_fail(t, "mmu does not see the processor's A (entry)", e, 0);
		if (l == leaf && ad && ((e & d_bit) || spte_hw_dirty(&f, e)))
			ft_fail(t, "D after a read (entry)", e, 0);
	}

	/* 2. A write: D set where mmu/ looks for it. */
	if (hw_access(v, gpa, HW_WRITE, 1))
		ft_fail(t, "write failed", gpa, 0);
	leaf = arch_walk(t, gpa, ptes);
	if (leaf > 0) {
		u64 e = *ptes[leaf];

		if (ad && !(e & d_bit))
			ft_fail(t, "processor did not set D (entry)", e, 0);
		if (!spte_is_dirty(&f, e))
			ft_fail(t, "mmu's spte_is_dirty misses the processor's D (entry)", e, 0);
	}

	/* 3. Write protection for dirty logging: fault, mark, retry. */
	u64 words = tdp_dirty_bitmap_words(t->npages);
	u64 *bitmap = calloc(words, 8), *out = calloc(words, 8);
	flush = false;
	ret = tdp_mmu_enable_dirty_logging(&t->mmu, t->slot, TDP_DIRTY_WP, 0, bitmap, &flush);
	if (ret)
		ft_fail(t, "enable wp logging", ret, 0);
	if (flush)
		tdp_mmu_flush_remote_tlbs(&t->mmu);
	leaf = arch_walk(t, gpa, ptes);
	if (leaf != 1)
		ft_fail(t, "logging left a huge leaf (level)", (u64)leaf, 0);
	else if (*ptes[1] & w_bit)
		ft_fail(t, "logging left W set (entry)", *ptes[1], 0);
	u64 faults0 = v->n_fault;
	gpa_t gpa2 = gpa + 5 * PAGE_SIZE;
	if (hw_access(v, gpa2, HW_WRITE, 2))
		ft_fail(t, "logged write failed", gpa2, 0);
	if (v->n_fault == faults0)
		ft_fail(t, "write to a write-protected page did not fault", gpa2, 0);
	flush = false;
	tdp_mmu_get_dirty_log(&t->mmu, t->slot, out, words, &flush);
	if (flush)
		tdp_mmu_flush_remote_tlbs(&t->mmu);
	for (u64 i = 0; i < t->npages; i++) {
		bool want = i == gpa_to_gfn(gpa2) - t->base;

		if (((out[i / 64] >> (i % 64)) & 1) != want)
			ft_fail(t, "bitmap bit wrong after one write (page, want)", i, want);
	}
	flush = false;
	tdp_mmu_disable_dirty_logging(&t->mmu, t->slot, &flush);
	if (flush)
		tdp_mmu_flush_remote_tlbs(&t->mmu);

	/* 4. PML (EPT with A/D only). */
	if (fmt == HW_FMT_EPT_AD && !t->errors) {
		u64 n_writes = 600, seen = 0;

		v->pml_enabled = true;
		t->hw.pml_keep_offset = true;
		memset(bitmap, 0, words * 8);
		flush = false;
		ret = tdp_mmu_enable_dirty_logging(&t->mmu, t->slot, TDP_DIRTY_PML, 0, bitmap,
						   &flush);
		if (ret)
			ft_fail(t, "enable pml logging", ret, 0);
		if (flush)
			tdp_mmu_flush_remote_tlbs(&t->mmu);
		for (u64 i = 0; i < n_writes; i++) {
			u16 before = v->pml_index;
			u64 full0 = v->n_pml_full;
			gpa_t g = gfn_to_gpa(t->base + 2 * i) + 8 * (i % 512);

			if (hw_access(v, g, HW_WRITE, i))
				ft_fail(t, "pml write failed", g, 0);
			/* The index counts down; after 512 entries it is out of
			 * range and the next logging write exits first. */
			if (v->n_pml_full == full0 && v->pml_index != (u16)(before - 1))
				ft_fail(t, "pml index did not count down (before, after)", before,
					v->pml_index);
			if (i == 511 && v->pml_index != 0xffff)
				ft_fail(t, "pml index after 512 entries", v->pml_index, 0);
		}
		if (v->n_pml_full != 1)
			ft_fail(t, "pml-full exits (got, want 1)", v->n_pml_full, 1);
		hw_pml_drain(v, ft_drain, t);
		flush = false;
		tdp_mmu_get_dirty_log(&t->mmu, t->slot, out, words, &flush);
		if (flush)
			tdp_mmu_flush_remote_tlbs(&t->mmu);
		for (u64 i = 0; i < t->npages; i++) {
			bool bit = (out[i / 64] >> (i % 64)) & 1;
			bool want = i % 2 == 0 && i / 2 < n_writes;

			seen += bit;
			if (bit != want) {
				ft_fail(t, "pml bitmap wrong (page, want)", i, want);
				break;
			}
		}
		flush = false;
		tdp_mmu_disable_dirty_logging(&t->mmu, t->slot, &flush);
		if (flush)
			tdp_mmu_flush_remote_tlbs(&t->mmu);
		(void)seen;
	}

	tdp_mmu_put_root(&t->mmu, t->root);
	if (tdp_mmu_destroy(&t->mmu))
		ft_fail(t, "destroy", 0, 0);
	if (atomic_load(&t->plat.pages))
		ft_fail(t, "page-table pages leaked", atomic_load(&t->plat.pages), 0);

	bool ok = !t->errors;
	if (ok)
		printf("ok format.%s.%s faults=%" PRIu64 " pml_full=%" PRIu64 "\n", names[fmt],
		       sizes[size_level], v->n_fault, v->n_pml_full);
	else
		printf("not ok format.%s.%s %s\n", names[fmt], sizes[size_level], t->err);
	hw_machine_destroy(&t->hw);
	model_platform_fini(&t->plat);
	free(bitmap);
	free(out);
	free(t);
	return ok;
}

int format_tests(void)
{
	int failed = 0;

	for (int fmt = HW_FMT_EPT_AD; fmt <= HW_FMT_NPT; fmt++)
		for (int level = 1; level <= 3; level++)
			failed += !run_format((enum hw_format)fmt, level);
	return failed;
}
