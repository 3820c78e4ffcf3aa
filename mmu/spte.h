/* SPDX-License-Identifier: MIT */
/*
 * The format of a TDP (EPT or NPT) page-table entry, "spte" as in KVM.
 *
 * EPT and NPT are not two copies of the code: an entry is a u64 read and
 * written through the masks of one struct spte_format, chosen at start by the
 * vendor code (arch/x86/vmx or arch/x86/svm) with spte_format_init_ept() or
 * spte_format_init_npt(); only the memory-type encodings are the vendor's to
 * adjust afterwards. mmu/ never includes a vendor header.
 *
 * Hardware layouts (levels: 1 = 4 KiB, 2 = 2 MiB, 3 = 1 GiB, 4 = 512 GiB):
 *   EPT, Intel SDM Vol. 3C 29.3.2 "EPT Translation Mechanism", Tables 29-1..29-6:
 *     bit 0 R, 1 W, 2 X, 5:3 memory type (leaf), 6 ignore PAT (leaf),
 *     7 page size (levels 2, 3), 8 accessed, 9 dirty (leaf; A/D only when
 *     EPTP bit 6 enables them), 51:12 address. Bits 11 and 56:52 are ignored.
 *   NPT = x86-64 long-mode paging, AMD APM Vol. 2 5.3 "Long-Mode Page
 *     Translation" and 15.25.5 "Nested Table Walk": bit 0 P, 1 R/W, 2 U/S (the
 *     nested walk treats every access as a user access, so U must be set),
 *     3 PWT, 4 PCD, 5 A, 6 D (leaf), 7 PS (levels 2, 3; PAT at level 1),
 *     12 PAT (levels 2, 3), 51:12 address, 63 NX. Bits 11:9 and 58:52 are
 *     available to software.
 *
 * Software bits live where both formats ignore them (bit 11, bits 53:52), so
 * one set of software masks serves every format; a _Static_assert below proves
 * they overlap no hardware bit of either.
 */
#ifndef PT_MMU_SPTE_H
#define PT_MMU_SPTE_H

#include <pt/types.h>

/* ---- levels ---- */
#define TDP_LEVEL_4K	   1
#define TDP_LEVEL_2M	   2
#define TDP_LEVEL_1G	   3
#define TDP_ROOT_LEVEL	   4 /* 4-level EPT / 4-level NPT; 5-level is not supported */
#define TDP_MAX_HUGE_LEVEL TDP_LEVEL_1G

#define SPTE_ENT_PER_PAGE 512
#define SPTE_LEVEL_BITS	  9

/* Number of 4 KiB frames one entry maps at @level. */
static inline u64 tdp_pages_per_level(int level)
{
	return 1ull << ((level - 1) * SPTE_LEVEL_BITS);
}

static inline gfn_t tdp_gfn_round_for_level(gfn_t gfn, int level)
{
	return gfn & ~(tdp_pages_per_level(level) - 1);
}

static inline unsigned int tdp_spte_index(gfn_t gfn, int level)
{
	return (gfn >> ((level - 1) * SPTE_LEVEL_BITS)) & (SPTE_ENT_PER_PAGE - 1);
}

/* ---- hardware bits, EPT ---- */
#define EPT_READABLE   BIT_ULL(0)
#define EPT_WRITABLE   BIT_ULL(1)
#define EPT_EXECUTABLE BIT_ULL(2)
#define EPT_MT_SHIFT   3
#define EPT_MT_MASK    GENMASK_ULL(5, 3)
#define EPT_IPAT       BIT_ULL(6)
#define EPT_PAGE_SIZE  BIT_ULL(7)
#define EPT_ACCESSED   BIT_ULL(8)
#define EPT_DIRTY      BIT_ULL(9)
#define EPT_MT_UC      0ull
#define EPT_MT_WB      6ull
/* Every bit EPT gives a meaning to (incl. 10 user-exec, 63:57 optional features). */
#define EPT_HW_MASK (GENMASK_ULL(10, 0) | GENMASK_ULL(51, 12) | GENMASK_ULL(63, 57))

/* ---- hardware bits, NPT (long-mode paging) ---- */
#define NPT_PRESENT   BIT_ULL(0)
#define NPT_WRITABLE  BIT_ULL(1)
#define NPT_USER      BIT_ULL(2)
#define NPT_PWT	      BIT_ULL(3)
#define NPT_PCD	      BIT_ULL(4)
#define NPT_ACCESSED  BIT_ULL(5)
#define NPT_DIRTY     BIT_ULL(6)
#define NPT_PAGE_SIZE BIT_ULL(7)
#define NPT_GLOBAL    BIT_ULL(8)
#define NPT_PAT_HUGE  BIT_ULL(12)
#define NPT_NX	      BIT_ULL(63)
/* Every bit long-mode paging gives a meaning to (incl. 62:59 protection key). */
#define NPT_HW_MASK (GENMASK_ULL(8, 0) | GENMASK_ULL(51, 12) | GENMASK_ULL(63, 59))

/* Address bits 51:12, the architectural maximum of both formats. */
#define SPTE_PA_MASK GENMASK_ULL(51, 12)

/* ---- software bits, common to every format ---- */
/*
 * SPTE_MMU_PRESENT: set in every entry mmu/ installs, so "present" means the
 * same thing in every format (EPT has no single present bit: R, W, X).
 * SPTE_HOST_WRITABLE: the mapping allows writes; W may be missing only because
 * dirty logging removed it, and a write fault may put it back (and must mark
 * the page dirty when it does). SPTE_MMU_WRITABLE: W was granted by the MMU
 * and no write-protection for dirty tracking is pending on this entry (as in
 * KVM: a lockless path may only restore W when both writable bits are set).
 */
#define SPTE_MMU_PRESENT   BIT_ULL(11)
#define SPTE_HOST_WRITABLE BIT_ULL(52)
#define SPTE_MMU_WRITABLE  BIT_ULL(53)
#define SPTE_SW_MASK	   (SPTE_MMU_PRESENT | SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE)

_Static_assert(!(SPTE_SW_MASK & EPT_HW_MASK), "software spte bits overlap EPT bits");
_Static_assert(!(SPTE_SW_MASK & NPT_HW_MASK), "software spte bits overlap NPT bits");
_Static_assert(!(SPTE_SW_MASK & SPTE_PA_MASK), "software spte bits overlap the address");
_Static_assert(EPT_PAGE_SIZE == NPT_PAGE_SIZE, "huge bit differs between formats");

/* ---- the format table ---- */

enum spte_format_kind {
	SPTE_FMT_EPT_AD, /* EPT with accessed/dirty flags (EPTP bit 6) */
	SPTE_FMT_EPT,	 /* EPT without A/D: dirty tracking by write protection only */
	SPTE_FMT_NPT,	 /* AMD nested paging = long-mode page tables; always has A/D */
};

enum tdp_memtype {
	TDP_MEMTYPE_RAM,  /* write-back; guest PAT still applies */
	TDP_MEMTYPE_MMIO, /* uncacheable */
	TDP_MEMTYPE_NR,
};

struct spte_format {
	enum spte_format_kind kind;
	const char *name;
	bool has_ad;	   /* accessed_mask/dirty_mask are real bits */
	u64 present_mask;  /* hardware bits that make an entry present (NPT P, EPT R) */
	u64 readable_mask; /* EPT R; NPT: present implies readable, 0 */
	u64 writable_mask;
	u64 x_mask;	   /* EPT X: set to allow execution */
	u64 nx_mask;	   /* NPT NX: set to forbid execution */
	u64 user_mask;	   /* NPT U: required on every level */
	u64 accessed_mask; /* 0 without A/D */
	u64 dirty_mask;	   /* 0 without A/D */
	u64 huge_mask;	   /* PS, levels 2 and 3 only */
	u64 memtype_mask;  /* all memory-type bits of a leaf (EPT MT+IPAT, NPT PWT/PCD/PAT) */
	u64 memtype[TDP_MEMTYPE_NR]; /* leaf bits for each memory type (vendor may adjust) */
	u64 pa_mask;
	u64 hw_mask;	    /* every bit the hardware interprets */
	int max_huge_level; /* TDP_LEVEL_1G if 1 GiB pages are supported, else TDP_LEVEL_2M */
};

/* EPT; @has_ad selects SPTE_FMT_EPT_AD or SPTE_FMT_EPT. */
void spte_format_init_ept(struct spte_format *f, bool has_ad, bool has_1g);
/* NPT (long-mode paging). */
void spte_format_init_npt(struct spte_format *f, bool has_1g);
/* Human-readable name of a kind, for logs and test names. */
const char *spte_format_kind_name(enum spte_format_kind kind);

/* ---- predicates: every read of an entry goes through these ---- */

static inline bool spte_is_present(u64 spte)
{
	return (spte & SPTE_MMU_PRESENT) != 0;
}

static inline bool spte_is_huge(const struct spte_format *f, u64 spte)
{
	return (spte & f->huge_mask) != 0;
}

/* A leaf maps memory: every present entry at level 1, a PS entry above. */
static inline bool spte_is_leaf(const struct spte_format *f, u64 spte, int level)
{
	return level == TDP_LEVEL_4K || spte_is_huge(f, spte);
}

static inline bool spte_is_present_leaf(const struct spte_format *f, u64 spte, int level)
{
	return spte_is_present(spte) && spte_is_leaf(f, spte, level);
}

static inline bool spte_is_writable(const struct spte_format *f, u64 spte)
{
	return (spte & f->writable_mask) != 0;
}

static inline bool spte_is_executable(const struct spte_format *f, u64 spte)
{
	return (spte & (f->x_mask | f->nx_mask)) == f->x_mask;
}

static inline bool spte_is_host_writable(u64 spte)
{
	return (spte & SPTE_HOST_WRITABLE) != 0;
}

static inline bool spte_is_mmu_writable(u64 spte)
{
	return (spte & SPTE_MMU_WRITABLE) != 0;
}

static inline bool spte_ad_enabled(const struct spte_format *f)
{
	return f->has_ad;
}

/* Accessed; without A/D an entry counts as accessed while it is present. */
static inline bool spte_is_accessed(const struct spte_format *f, u64 spte)
{
	if (!f->has_ad)
		return spte_is_present(spte);
	return (spte & f->accessed_mask) != 0;
}

/*
 * Dirty: the D bit where the format has one; without A/D an entry may have
 * been written through exactly when it is writable (KVM's is_dirty_spte).
 */
static inline bool spte_is_dirty(const struct spte_format *f, u64 spte)
{
	if (!f->has_ad)
		return spte_is_writable(f, spte);
	return (spte & f->dirty_mask) != 0;
}

/* Only the hardware D bit, never the W fallback: for bookkeeping of D itself. */
static inline bool spte_hw_dirty(const struct spte_format *f, u64 spte)
{
	return f->has_ad && (spte & f->dirty_mask) != 0;
}

/*
 * The bits the processor may set in the present leaf @spte at any moment, on
 * its own: A while clear (any access), D while clear on a writable leaf (a
 * write); nothing in a format without A/D. The processor's update is a locked
 * OR of these bits (Intel SDM Vol. 3C 29.3.5 "Accessed and Dirty Flags for
 * EPT"; AMD APM Vol. 2 5.4 "Page-Translation-Table Entry Fields" for the
 * nested tables). So a new value that already has every one of them set loses
 * nothing to the processor when written with a plain store: whichever comes
 * first, the entry ends as the new value. Any other change needs a cmpxchg on
 * the snapshot (KVM: spte_has_volatile_bits).
 */
static inline u64 spte_hw_settable(const struct spte_format *f, u64 spte)
{
	u64 bits = 0;

	if (!f->has_ad)
		return 0;
	if (!(spte & f->accessed_mask))
		bits |= f->accessed_mask;
	if ((spte & f->writable_mask) && !(spte & f->dirty_mask))
		bits |= f->dirty_mask;
	return bits;
}

static inline hpa_t spte_to_hpa(const struct spte_format *f, u64 spte)
{
	return spte & f->pa_mask;
}

static inline hfn_t spte_to_hfn(const struct spte_format *f, u64 spte)
{
	return spte_to_hpa(f, spte) >> PAGE_SHIFT;
}

/* The leaf's memory-type bits (to compare two leaves, e.g. before collapsing). */
static inline u64 spte_memtype_bits(const struct spte_format *f, u64 spte)
{
	return spte & f->memtype_mask;
}

/* ---- encoders (spte.c) ---- */

/* Permissions and memory type of a leaf, as the caller of a map asks for them. */
struct tdp_map_attrs {
	bool writable;
	bool executable;
	enum tdp_memtype memtype;
	int max_level; /* largest page the mapping may use: TDP_LEVEL_4K..TDP_LEVEL_1G */
};

/*
 * A present non-leaf entry pointing at a table at @child_hpa; all permissions
 * granted (the leaves decide), A clear.
 */
u64 spte_make_nonleaf(const struct spte_format *f, hpa_t child_hpa);

/*
 * A present leaf at @level mapping @hfn with @attrs. @writable decides the W
 * bit now (false when dirty logging write-protects it); SPTE_HOST_WRITABLE
 * follows attrs->writable. A and D start clear.
 */
u64 spte_make_leaf(const struct spte_format *f, int level, hfn_t hfn,
		   const struct tdp_map_attrs *attrs, bool writable);

/*
 * The entry for child @index of a huge leaf @huge at @level being split into
 * a table of level - 1: same frame offset, permissions, memory type, A and D
 * (so no dirty state is lost and the split needs no TLB flush).
 */
u64 spte_make_split_child(const struct spte_format *f, u64 huge, int level, unsigned int index);

/*
 * A huge leaf at @level that maps what the 4 KiB..(level-1) leaf @first_child
 * maps, rounded to the huge frame: used when collapsing a table back into a
 * huge page after dirty logging stops. W is restored from SPTE_HOST_WRITABLE;
 * A and D are copied from @first_child.
 */
u64 spte_make_huge_from_child(const struct spte_format *f, u64 first_child, int level);

/* Leaf without W (dirty logging's write protection); keeps HOST_WRITABLE. */
static inline u64 spte_clear_writable(const struct spte_format *f, u64 spte)
{
	return spte & ~(f->writable_mask | SPTE_MMU_WRITABLE);
}

/* Leaf with W restored (only if host-writable). */
static inline u64 spte_make_writable(const struct spte_format *f, u64 spte)
{
	if (!spte_is_host_writable(spte))
		return spte;
	return spte | f->writable_mask | SPTE_MMU_WRITABLE;
}

#endif /* PT_MMU_SPTE_H */
