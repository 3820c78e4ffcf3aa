/* SPDX-License-Identifier: MIT */
/*
 * The TDP MMU: EPT/NPT tables for one VM, after Linux KVM's x86 TDP MMU
 * (arch/x86/kvm/mmu/tdp_mmu.c), with its dirty logging.
 *
 * Model
 *   A struct tdp_mmu owns, per address space (as_id < TDP_MMU_NR_AS), one
 *   valid root at a time plus any invalidated roots still referenced. The
 *   guest-physical layout is a set of memslots: [base_gfn, base_gfn + npages)
 *   maps to [base_hfn, ...) with one set of attributes (writable, executable,
 *   RAM or MMIO, largest page size). Identity mapping is base_hfn == base_gfn.
 *   Tables are filled eagerly with tdp_mmu_map_range() and lazily by
 *   tdp_mmu_page_fault(); both pick the largest page that alignment of gfn AND
 *   hfn, the slot's bounds, the slot's max_level and dirty logging allow.
 *
 * TLB flushes ("flush needed")
 *   Every operation that changes entries reports whether TLBs must be flushed
 *   (a bool result, or *flush for functions that return an error code). The
 *   caller flushes with tdp_mmu_flush_remote_tlbs() once, after its batch of
 *   operations, and ALWAYS before it hands a dirty bitmap (or anything derived
 *   from it) to anyone: until the flush, a vCPU may keep writing through a
 *   cached writable/dirty translation without faulting or setting D, and the
 *   write would be missing from the bitmap of this round AND the next.
 *   The result is sticky: while a reported flush has not been done (through
 *   tdp_mmu_flush_remote_tlbs or an internal flush), every later operation
 *   reports "flush needed" too, so combining two results with = instead of
 *   |= cannot lose one.
 *   Exceptions, flushed internally because freeing page tables is only safe
 *   after a flush: tdp_mmu_disable_dirty_logging() (collapse),
 *   tdp_mmu_collapse_range(), tdp_mmu_put_root() (last put of an invalid
 *   root), and zap, delete-memslot and destroy of tdp_mmu_parity.h.
 *
 * Locks (details in tdp_mmu.c and docs/mmu.md)
 *   mmu_lock is a reader-writer lock (KVM >= 5.12). Functions here take it
 *   themselves; callers must not hold it. The fault path, PML drain and the
 *   dirty-log passes take it for read and change entries with cmpxchg on a
 *   snapshot; mapping, zapping, memslot changes, collapsing, and harvests
 *   that re-arm by write protection take it for write. Management operations
 *   (memslot changes and every dirty-log operation) are also serialized among
 *   themselves by mgmt_lock, as KVM's slots_lock serializes the ioctls; vCPU
 *   paths never take mgmt_lock. Long walks give up the lock every
 *   `yield_every` entries and restart from the next GFN, holding a reference
 *   on the root they walk.
 *
 * This header is what the hypervisor (hv/, arch/) calls. The rest of KVM's
 * surface that mmu/ implements, for tests and KVM parity but never called by
 * the product, is declared apart in mmu/tdp_mmu_parity.h.
 *
 * Dirty bitmaps are KVM's layout: little-endian u64 words, bit i of the slot's
 * bitmap = page base_gfn + i (word i / 64, bit i % 64). The bitmap memory is
 * the caller's (tdp_dirty_bitmap_words(npages) words), lent to mmu/ from
 * enable to disable.
 */
#ifndef PT_MMU_TDP_MMU_H
#define PT_MMU_TDP_MMU_H

#include <pt/limits.h>
#include <pt/lock.h>
#include <pt/types.h>
#include "mmu/spte.h"
#include "mmu/mmu_platform.h"

#define TDP_MMU_NR_AS	     2	 /* address spaces (e.g. normal and SMM) */
#define TDP_MMU_MAX_ROOTS    8	 /* live roots, valid or awaiting their last put */
/* Every slot a taken memory map can make, and the pages mapped in hidden ranges (pt/limits.h). */
#define TDP_MMU_MAX_MEMSLOTS PT_MAX_MMU_MEMSLOTS

/* Error codes (negative returns). */
enum mmu_err {
	MMU_OK = 0,
	MMU_ENOENT = -2,  /* no such memslot / root */
	MMU_ENOMEM = -12, /* the page allocator ran dry */
	MMU_EBUSY = -16,  /* still referenced */
	MMU_EEXIST = -17, /* memslot overlaps another */
	MMU_EINVAL = -22, /* bad argument (alignment, range, mode the format lacks) */
	MMU_ENOSPC = -28, /* no free memslot / root entry */
};

/* How a logged slot learns that a page was written. */
enum tdp_dirty_mode {
	TDP_DIRTY_WP,	/* write-protect; the write fault marks the page (any format) */
	TDP_DIRTY_DBIT, /* D bits; get-dirty-log scans and clears them (A/D formats) */
	TDP_DIRTY_PML,	/* D bits + Intel PML buffer drained into the bitmap (A/D formats) */
};

/* Memslot flags (tdp_mmu_set_memslot). */
#define TDP_SLOT_READONLY BIT_ULL(0)
/* Memslot state, set by mmu/: dirty logging is on. */
#define TDP_SLOT_LOG_DIRTY BIT_ULL(8)

/* Dirty-log flags (tdp_mmu_enable_dirty_logging). */
/* KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: GET only reads, CLEAR re-arms. */
#define TDP_LOG_MANUAL_PROTECT BIT_ULL(0)
/* KVM_DIRTY_LOG_INITIALLY_SET: start with every bit set and nothing
 * write-protected; CLEAR write-protects lazily. Requires MANUAL_PROTECT. */
#define TDP_LOG_INITIALLY_SET BIT_ULL(1)
/* Logging is on when enable returns (faults map 4 KiB) but nothing is split
 * or re-armed yet, and the bitmap's words are set up range by range: the
 * caller arms the slot in bounded chunks with tdp_mmu_arm_dirty_log_range
 * and may report logging started (or harvest) only after the last chunk and
 * a flush. */
#define TDP_LOG_DEFER_ARM BIT_ULL(2)

struct tdp_memslot {
	gfn_t base_gfn;
	u64 npages;
	hfn_t base_hfn;
	struct tdp_map_attrs attrs;
	u64 flags;     /* TDP_SLOT_* */
	u64 log_flags; /* TDP_LOG_*, while TDP_SLOT_LOG_DIRTY */
	enum tdp_dirty_mode log_mode;
	u64 *dirty_bitmap; /* lent by the caller while logging, else NULL */
	u16 id;
	u8 as_id;
	bool in_use;
	/* Eager splitting ran out of memory: huge leaves remain, write-protected,
	 * and are split by the write fault instead. */
	bool split_incomplete;
	/* Logging stopped in PML mode: collapsing sets D (see disable). */
	bool collapse_set_d;
	/*
	 * Write tracking (tdp_mmu_write_track_enable): bit i set = page
	 * base_gfn + i must stay read-only whatever dirty logging does; lent by
	 * the caller while tracking, else NULL. Same layout as dirty_bitmap.
	 */
	u64 *write_track;
};

struct tdp_mmu_root {
	u64 *pt;      /* the top-level table */
	hpa_t hpa;    /* what goes into EPTP / nCR3 */
	u32 refcount; /* atomic; the MMU holds one while the root is valid */
	u8 as_id;
	bool valid;  /* atomic; false: do not enter with it, get a new root */
	bool in_use; /* this entry of roots[] is allocated */
};

struct tdp_mmu_stats {
	u64 pt_pages;			    /* page-table pages allocated now (incl. roots) */
	u64 pt_pages_max;		    /* high-water mark */
	u64 leaves[TDP_MAX_HUGE_LEVEL + 1]; /* present leaves per level (index = level) */
	u64 faults;
	u64 faults_spurious;	/* already fixed by someone else */
	u64 faults_fixed_dirty; /* write faults that restored W for dirty logging */
	u64 faults_tracked;	/* write faults on write-tracked pages (TDP_FAULT_TRACKED) */
	u64 dirty_marked;	/* bitmap bits set by the funnel or the fault path */
	u64 splits;		/* huge leaves split into a table */
	u64 split_nomem;	/* splits abandoned for lack of memory */
	u64 collapses;		/* tables put back together into a huge leaf */
	u64 tables_freed;
	u64 accessed_dropped; /* leaves with A set zapped or moved (accessed tracking) */
	u64 pml_entries;      /* PML entries drained */
	u64 pml_dropped;      /* ...of which outside a logged slot */
	u64 flushes;	      /* tdp_mmu_flush_remote_tlbs calls */
	u64 yields;	      /* walks that let go of the lock */
	u64 cmpxchg_retries;  /* atomic updates that lost a race and retried */
	u64 rearm_plain;      /* dirty-log re-arms done with a plain store */
	u64 rearm_atomic;     /* ...and with a cmpxchg (the CPU could set A/D meanwhile) */
};

struct tdp_mmu {
	struct spte_format fmt;
	struct mmu_platform plat;
	pt_rwlock_t mmu_lock;
	pt_spinlock_t roots_lock; /* roots[] membership; nests inside mmu_lock */
	pt_spinlock_t mgmt_lock;  /* serializes management operations; outside mmu_lock */
	u32 yield_every;	  /* entries a walk visits between yield checks (>= 1) */
	/* A walk under the read lock yields at a check only if a writer waits
	 * (as KVM's rwlock_needbreak): nothing else is kept out by a reader.
	 * Tests set this to yield at every check and so exercise restarts. */
	bool yield_uncontended;
	struct tdp_mmu_root roots[TDP_MMU_MAX_ROOTS];
	struct tdp_memslot slots[TDP_MMU_MAX_MEMSLOTS];
	/* Per address space: ids of the slots in use, sorted by base_gfn. Changed
	 * only with mmu_lock held for write, so a reader may binary-search it. */
	u16 sorted[TDP_MMU_NR_AS][TDP_MMU_MAX_MEMSLOTS];
	u16 nr_sorted[TDP_MMU_NR_AS];
	/* Entries changed since the last flush (atomic): every "flush needed"
	 * result includes it, so a result dropped by one caller is reported
	 * again by the next operation instead of being lost. */
	u32 flush_pending;
	struct tdp_mmu_stats stats; /* updated with relaxed atomics */
};

/* ---- life cycle ---- */

/* @fmt and @plat are copied. Returns MMU_OK or MMU_EINVAL. */
int tdp_mmu_init(struct tdp_mmu *mmu, const struct spte_format *fmt,
		 const struct mmu_platform *plat);

/* ---- roots ---- */

/*
 * The valid root of @as_id with one more reference, allocated if there is
 * none yet (empty: faults or tdp_mmu_map_range fill it). NULL on MMU_ENOMEM
 * or MMU_ENOSPC. A vCPU holds this reference while it runs on the root and
 * checks tdp_mmu_root_is_valid() before every entry.
 */
struct tdp_mmu_root *tdp_mmu_get_root(struct tdp_mmu *mmu, unsigned int as_id);
/* Drop a reference; the last one of an invalid root frees its tables (after
 * a flush of that root). Caller must not hold mmu_lock. */
void tdp_mmu_put_root(struct tdp_mmu *mmu, struct tdp_mmu_root *root);

static inline hpa_t tdp_mmu_root_hpa(const struct tdp_mmu_root *root)
{
	return root->hpa;
}

static inline bool tdp_mmu_root_is_valid(const struct tdp_mmu_root *root)
{
	return __atomic_load_n(&root->valid, __ATOMIC_ACQUIRE);
}

/* ---- memslots ---- */

/*
 * Add a memslot; returns its id (>= 0) or MMU_EINVAL (npages 0, range past
 * 2^40 pages, bad attrs), MMU_EEXIST (overlap) or MMU_ENOSPC. Maps nothing.
 */
int tdp_mmu_set_memslot(struct tdp_mmu *mmu, unsigned int as_id, gfn_t base_gfn, u64 npages,
			hfn_t base_hfn, const struct tdp_map_attrs *attrs, u64 flags);
/* The slot with id @slot_id, or NULL if that id is not in use. */
const struct tdp_memslot *tdp_mmu_memslot(struct tdp_mmu *mmu, unsigned int slot_id);

static inline u64 tdp_dirty_bitmap_words(u64 npages)
{
	return (npages + 63) / 64;
}

/* ---- mapping ---- */

/*
 * Map every page of [gfn, gfn + npages) that lies in a memslot of @as_id into
 * that address space's valid root (created if needed), each with the largest
 * page allowed (see above); pages outside memslots are skipped. Existing
 * smaller mappings inside a range that gets a huge page are replaced (their
 * tables freed after a flush). Returns MMU_OK or MMU_ENOMEM (what was mapped
 * stays mapped). *flush: a present mapping was changed.
 */
int tdp_mmu_map_range(struct tdp_mmu *mmu, unsigned int as_id, gfn_t gfn, u64 npages, bool *flush);

/* ---- faults (vCPU path) ---- */

/* Fault flags: what the guest access was, from the exit qualification /
 * EXITINFO1. */
#define TDP_FAULT_WRITE	  BIT_ULL(0)
#define TDP_FAULT_EXEC	  BIT_ULL(1)
#define TDP_FAULT_PRESENT BIT_ULL(2) /* a translation existed: permission fault */

enum tdp_fault_result {
	TDP_FAULT_FIXED,    /* entries changed: resume the guest (no flush needed) */
	TDP_FAULT_SPURIOUS, /* already allowed (another vCPU fixed it): resume */
	TDP_FAULT_NO_SLOT,  /* no memslot: MMIO to emulate, or a guest error */
	TDP_FAULT_ACCESS,   /* the slot forbids this access (write to read-only,
			       exec of no-exec): the caller decides (guest error) */
	TDP_FAULT_RETRY,    /* the root is no longer valid: load a new one, resume */
	TDP_FAULT_NOMEM,    /* could not allocate a table: caller may retry later */
	TDP_FAULT_TRACKED,  /* a write to a write-tracked page: nothing changed; the
			       tracker's owner acts (tdp_mmu_write_untrack) and the
			       vCPU faults again */
};

/*
 * Handle an EPT violation / NPF at @gpa on @root (the vCPU's reference).
 * Not-present: map from the memslot (4 KiB inside a logged slot). Write to a
 * write-protected page of a logged slot: split a huge leaf if needed, restore
 * W and mark the page dirty, atomically against harvests. Never needs a flush:
 * it only adds permissions or replaces a huge leaf by an equivalent table.
 */
enum tdp_fault_result tdp_mmu_page_fault(struct tdp_mmu *mmu, struct tdp_mmu_root *root, gpa_t gpa,
					 u64 fault_flags);

/* ---- dirty logging ---- */

/*
 * Start logging @slot_id in @mode with @bitmap (tdp_dirty_bitmap_words words,
 * cleared here, or set when TDP_LOG_INITIALLY_SET). Splits the slot's 1 GiB and
 * 2 MiB leaves to 4 KiB eagerly, in bounded batches; on allocation failure the
 * rest stay huge but write-protected and the write fault splits them.
 * Then: WP write-protects every leaf; DBIT/PML clear D bits (huge leftovers
 * write-protected). INITIALLY_SET skips the 4 KiB pass (CLEAR does it).
 * MMU_EINVAL for DBIT/PML on a format without A/D. *flush as above: flush
 * before the first harvest.
 */
int tdp_mmu_enable_dirty_logging(struct tdp_mmu *mmu, unsigned int slot_id,
				 enum tdp_dirty_mode mode, u64 log_flags, u64 *bitmap, bool *flush);
/*
 * Stop logging: restore W where it was removed, put 4 KiB tables back together
 * into huge leaves where the slot allows (tables freed after an internal flush),
 * and in PML mode set D on the rest so the CPU stops logging them. The bitmap
 * is the caller's again. *flush: flush before the next harvest of anything.
 */
int tdp_mmu_disable_dirty_logging(struct tdp_mmu *mmu, unsigned int slot_id, bool *flush);

/*
 * The same work in bounded chunks, for callers that must not hold a vCPU up
 * behind a whole slot (one management command per exit on a single CPU).
 * Ranges: @first_page a multiple of 64, @npages a multiple of 64 unless the
 * range ends at the slot's end; MMU_EINVAL otherwise.
 *  - after enable with TDP_LOG_DEFER_ARM: arm [first, first + npages) (split
 *    its huge leaves, then write-protect or clear D as enable does);
 *  - disable_deferred stops logging (the bitmap is the caller's again) and
 *    collapse_range puts a range back into huge leaves afterwards;
 *  - get_dirty_log_range is GET for a range of a MANUAL_PROTECT slot (DBIT:
 *    moves the range's D bits into the bitmap first), copying its bitmap
 *    words into @out[0..]; tdp_mmu_clear_dirty_log re-arms a range.
 * Whatever the chunks, flush once after the last one (if any said so) before
 * a bitmap or "started" leaves the machine: the guest may have run between
 * chunks, and a write through a stale TLB entry must land before the flush.
 */
int tdp_mmu_arm_dirty_log_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page,
				u64 npages, bool *flush);
int tdp_mmu_disable_dirty_logging_deferred(struct tdp_mmu *mmu, unsigned int slot_id, bool *flush);
int tdp_mmu_collapse_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page, u64 npages,
			   bool *flush);
int tdp_mmu_get_dirty_log_range(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page,
				u64 npages, u64 *out, bool *flush);

/*
 * KVM_CLEAR_DIRTY_LOG: for each bit set in @mask (bit i = page first_page + i
 * of the slot) that is set in the bitmap: clear it and re-arm the page.
 * @first_page must be a multiple of 64; @npages a multiple of 64 unless the
 * range ends at the slot's end. MMU_EINVAL otherwise.
 */
int tdp_mmu_clear_dirty_log(struct tdp_mmu *mmu, unsigned int slot_id, u64 first_page, u64 npages,
			    const u64 *mask, bool *flush);

/* ---- write tracking ----
 *
 * A second reason to keep a page read-only, independent of dirty logging
 * (KVM's page-track for writes, kvm_write_track_add_gfn): a page whose bit is
 * set in its slot's write_track bitmap gets no W bit from anyone (fault path,
 * mapping, collapse after logging stops), and a write to it returns
 * TDP_FAULT_TRACKED without changing anything. While a slot tracks, it is
 * mapped with 4 KiB pages (as while it logs). Dirty logging goes on exactly
 * as before: its re-arms only ever remove W or D, and when a page's tracking
 * ends, its next write faults and the fault path restores W through the
 * funnel, which marks the page in a logged slot (rule (a)), whatever the
 * logging mode. The copy-on-write snapshot (hv/cow_session.c) is its user.
 */

/*
 * Start tracking every page of @slot_id with @bitmap (tdp_dirty_bitmap_words
 * words; every page's bit is set here): the bitmap is published, then every
 * leaf of the slot in every root loses W (mmu_lock held for write: no fault
 * is half way through restoring W meanwhile). *flush: flush before the guest
 * may rely on the protection (before a vCPU runs again). MMU_ENOENT, or
 * MMU_EINVAL if the slot tracks already or is read-only.
 */
int tdp_mmu_write_track_enable(struct tdp_mmu *mmu, unsigned int slot_id, u64 *bitmap, bool *flush);
/*
 * Stop tracking @slot_id: the bitmap is the caller's again. Entries are not
 * touched: a page still read-only gets W back at its next write fault (and
 * is marked then in a logged slot). MMU_ENOENT, MMU_EINVAL if not tracking.
 */
int tdp_mmu_write_track_disable(struct tdp_mmu *mmu, unsigned int slot_id);
/*
 * End the tracking of page @page of @slot_id: true if this call cleared its
 * bit (exactly one caller wins), false if it was clear or the slot does not
 * track. Release: what the caller did before (a copy of the page) is
 * visible to a vCPU that then finds the page writable.
 */
bool tdp_mmu_write_untrack(struct tdp_mmu *mmu, unsigned int slot_id, u64 page);
/* Whether page @page of @slot_id is tracked now. */
bool tdp_mmu_write_tracked(struct tdp_mmu *mmu, unsigned int slot_id, u64 page);

/* ---- PML ---- */

#define TDP_PML_ENTRIES 512

/*
 * Drain one vCPU's PML buffer into the slot bitmaps (Intel SDM Vol. 3C 29.3.6
 * "Page-Modification Logging"): the CPU writes entry *pml_index then
 * decrements it, so the valid entries are pml_index + 1 .. 511, or all 512 when
 * the index is outside 0..511 (it wrapped past 0: buffer full). Entries are
 * GPAs; the low 12 bits are masked (Bochs leaves the page offset in). GPAs
 * outside a logged slot of @as_id are counted (stats.pml_dropped) and dropped.
 * Resets *pml_index to 511. Returns the number of entries consumed. Call it on
 * PML-full exits and before every harvest.
 */
u32 tdp_mmu_pml_drain(struct tdp_mmu *mmu, unsigned int as_id, const u64 *pml_buf, u16 *pml_index);

/* ---- misc ---- */

/* Flush every vCPU's translations of this MMU (platform flush_tlbs, NULL). */
void tdp_mmu_flush_remote_tlbs(struct tdp_mmu *mmu);
/* A consistent-enough copy of the counters (each read atomically). */
void tdp_mmu_get_stats(struct tdp_mmu *mmu, struct tdp_mmu_stats *out);

#endif /* PT_MMU_TDP_MMU_H */
