/* SPDX-License-Identifier: MIT */
/*
 * The nested-paging entry formats as the manuals define them, written down a
 * second time, independently of mmu/spte.h. The model walks mmu/'s tables with
 * these definitions only: if mmu/ got a bit wrong, the model does not share the
 * mistake, it faults or reports a misconfiguration.
 *
 * EPT: Intel SDM Vol. 3C, chapter "VMX Support for Address Translation",
 *   section "The Extended Page Table Mechanism (EPT)": "EPT Translation
 *   Mechanism" (entry formats, tables 29-1..29-6 in rev. 080), "EPT-Induced VM
 *   Exits" (violations, misconfigurations), "Accessed and Dirty Flags for EPT",
 *   "Page-Modification Logging".
 * NPT: AMD APM Vol. 2 15.25 "Nested Paging" (15.25.5 "Nested Table Walk",
 *   15.25.6 "Nested versus Guest Page Faults, Fault Ordering") over the
 *   long-mode tables of 5.3 "Long-Mode Page Translation" and 5.4
 *   "Page-Translation-Table Entry Fields" (rev. 3.41).
 */
#ifndef PT_TESTS_MODEL_HW_ARCH_H
#define PT_TESTS_MODEL_HW_ARCH_H

#include <pt/types.h>

/* Levels as the manuals count them: 1 = PTE (4 KiB), 2 = PDE, 3 = PDPTE, 4 = PML4E. */
#define HW_LEVELS 4
#define HW_LEVEL_BITS 9
#define HW_ENTRIES_PER_TABLE 512

/* Both formats: physical address of the next table or page in bits 51:12. */
#define HW_ADDR_MASK GENMASK_ULL(51, 12)

/* ---- EPT (SDM Vol. 3C, "EPT Translation Mechanism") ---- */
#define HW_EPT_R BIT_ULL(0)
#define HW_EPT_W BIT_ULL(1)
#define HW_EPT_X BIT_ULL(2)
#define HW_EPT_RWX (HW_EPT_R | HW_EPT_W | HW_EPT_X)
#define HW_EPT_MEMTYPE_MASK GENMASK_ULL(5, 3) /* leaf only */
#define HW_EPT_IPAT BIT_ULL(6)                /* leaf only */
#define HW_EPT_PS BIT_ULL(7)  /* leaf at level 2 and 3; reserved in a PML4E */
#define HW_EPT_A BIT_ULL(8)   /* only when EPTP bit 6 enables A/D */
#define HW_EPT_D BIT_ULL(9)   /* leaf only, only with A/D */
#define HW_EPT_UX BIT_ULL(10) /* mode-based execute; unused */
#define HW_EPT_SVE BIT_ULL(63)
/* Memory types 2, 3 and 7 are reserved: "EPT Misconfigurations". */
#define HW_EPT_MEMTYPE_RESERVED(t) ((t) == 2 || (t) == 3 || (t) == 7)

/* ---- NPT = long-mode tables (APM Vol. 2 5.4) ---- */
#define HW_NPT_P BIT_ULL(0)
#define HW_NPT_RW BIT_ULL(1)
#define HW_NPT_US BIT_ULL(2)
#define HW_NPT_PWT BIT_ULL(3)
#define HW_NPT_PCD BIT_ULL(4)
#define HW_NPT_A BIT_ULL(5)
#define HW_NPT_D BIT_ULL(6)  /* leaf only; ignored in non-leaf entries */
#define HW_NPT_PS BIT_ULL(7) /* leaf at level 2 and 3; MBZ in a PML4E */
#define HW_NPT_G BIT_ULL(8)
#define HW_NPT_NX BIT_ULL(63)
/* Large-page PAT bit; bits 20:13 (2 MiB) or 29:13 (1 GiB) must be zero. */
#define HW_NPT_LARGE_PAT BIT_ULL(12)

/* #NPF EXITINFO1 is a #PF error code (APM Vol. 2 8.4.2 "Page-Fault Error Code"). */
#define HW_PFERR_P BIT_ULL(0)
#define HW_PFERR_W BIT_ULL(1)
#define HW_PFERR_U BIT_ULL(2)
#define HW_PFERR_RSV BIT_ULL(3)
#define HW_PFERR_GUEST_FINAL BIT_ULL(32)

/* EPT violation exit qualification (SDM Vol. 3C 28.2.1 table "Exit
 * Qualification for EPT Violations"): bits 0-2 the access, bits 3-5 the
 * permissions of the translation (AND over the levels walked). */
#define HW_EPT_VIOL_READ BIT_ULL(0)
#define HW_EPT_VIOL_WRITE BIT_ULL(1)
#define HW_EPT_VIOL_FETCH BIT_ULL(2)
#define HW_EPT_VIOL_READABLE BIT_ULL(3)
#define HW_EPT_VIOL_WRITABLE BIT_ULL(4)
#define HW_EPT_VIOL_EXECUTABLE BIT_ULL(5)
#define HW_EPT_VIOL_GLA_VALID BIT_ULL(7)

/* PML: 512 eight-byte entries, index counts down from 511 (SDM Vol. 3C
 * "Page-Modification Logging"). A u16 index out of 0..511 means "full". */
#define HW_PML_ENTRIES 512

static inline int hw_level_shift(int level)
{
	return PAGE_SHIFT + HW_LEVEL_BITS * (level - 1);
}

static inline u64 hw_level_pages(int level)
{
	return 1ull << (HW_LEVEL_BITS * (level - 1));
}

static inline unsigned int hw_index(gpa_t gpa, int level)
{
	return (gpa >> hw_level_shift(level)) & (HW_ENTRIES_PER_TABLE - 1);
}

#endif /* PT_TESTS_MODEL_HW_ARCH_H */
