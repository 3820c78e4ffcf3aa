/* SPDX-License-Identifier: MIT */
/*
 * A model of the CPU's side of nested paging, for host tests of mmu/.
 *
 * Guest accesses walk mmu/'s tables the way the processor does (hw_arch.h, not
 * mmu/spte.h): permissions ANDed over the levels, 2 MiB and 1 GiB leaves,
 * accessed/dirty flags set with a locked compare-exchange against the exact
 * value the walk read (a lost race restarts the walk, as a changed entry does
 * for the processor), PML logging when a dirty flag goes from 0 to 1, a
 * PML-full exit when the index is out of range, and violations / #NPF routed
 * to the handler the test installs.
 *
 * Each vCPU has a TLB that keeps translations together with their writable and
 * dirty state until it is flushed. A write that hits a writable+dirty entry
 * goes straight to memory and touches no table: exactly the window in which a
 * missing flush loses a dirty page. Only hw_flush_vcpu()/hw_flush_root() empty
 * a TLB; the test's platform flush callback calls them.
 *
 * "Guest mode" is a per-vCPU mutex held for the whole of one access (TLB
 * lookup, walk, memory store). A flush takes it, so when the flush returns no
 * vCPU can still use a stale translation: the same guarantee as KVM's
 * kvm_flush_remote_tlbs(), which kicks the vCPUs out of guest mode and waits.
 */
#ifndef PT_TESTS_MODEL_HW_MODEL_H
#define PT_TESTS_MODEL_HW_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "hw_arch.h"

enum hw_format {
	HW_FMT_EPT_AD, /* EPT, EPTP bit 6 set: A/D flags, PML possible */
	HW_FMT_EPT,    /* EPT without A/D */
	HW_FMT_NPT,    /* AMD nested paging: long-mode tables, A/D always */
};

enum hw_access {
	HW_READ,
	HW_WRITE,
};

/* Why a walk stopped. */
enum hw_walk_result {
	HW_WALK_OK,
	HW_WALK_VIOLATION,   /* EPT violation / #NPF: the test's fault handler */
	HW_WALK_MISCONFIG,   /* EPT misconfiguration / #NPF with RSV: mmu/ bug */
	HW_WALK_PML_FULL,    /* PML-full exit: the test's PML handler */
	HW_WALK_AD_RACE,     /* internal: a flag update lost its cmpxchg, rewalk */
};

/* What the fault handler is told: the exit information of the format. */
struct hw_fault {
	gpa_t gpa;
	bool write;
	u64 exit_info; /* EPT exit qualification or #NPF error code */
	int level;     /* level at which the walk stopped (diagnostics) */
	u64 entry;     /* the entry that stopped it (diagnostics) */
	bool from_tlb; /* spurious: raised from a stale read-only TLB entry */
};

struct hw_tlb_entry {
	u64 tag; /* gfn >> (9 * (level - 1)), valid iff level != 0 */
	hpa_t hpa; /* of the first byte of the mapped page */
	u8 level;
	bool writable;
	bool dirty; /* always true without A/D: nothing to set */
};

#define HW_TLB_SETS 256

struct hw_machine;

struct hw_vcpu {
	struct hw_machine *m;
	int id;
	/* Held while "in guest mode": one access, or a flush or PML drain of it. */
	pthread_mutex_t guest_mode;
	/* EPTP / nCR3: the root the mmu handed to this vCPU (hpa of the table). */
	_Atomic hpa_t root_hpa;
	struct hw_tlb_entry tlb[3][HW_TLB_SETS];
	/* Paging-structure cache for PDEs (SDM Vol. 3A 4.10.3 "Paging-Structure
	 * Caches"; for EPT the combined/guest-physical mappings of "Information
	 * That May Be Cached"): gpa >> 21 -> the page table its PDE points to.
	 * A walk that hits starts at level 1; emptied only by a flush, so a
	 * table freed before the flush is walked after its free. */
	struct {
		u64 tag; /* (gpa >> 21) + 1; 0 = invalid */
		hpa_t pt;
	} pde_cache[HW_TLB_SETS];
	/* Serialises draining this vCPU's buffer (its own PML-full exit against a
	 * harvester) from the snapshot until the mmu has the entries, so that a
	 * harvest that drained the buffer has every entry of every write that
	 * completed before it. Lock order: pml_lock, then guest_mode. */
	pthread_mutex_t pml_lock;
	bool pml_enabled;
	u16 pml_index;
	u64 pml_copy[HW_PML_ENTRIES]; /* under pml_lock */
	u64 *pml_buf; /* HW_PML_ENTRIES, page aligned */
	u64 rng;
	/* statistics (read after the threads joined) */
	u64 n_access, n_tlb_hit, n_walk, n_fault, n_spurious_fault, n_pml_full,
		n_pml_logged, n_ad_race, n_flush, n_reload, n_pde_hit;
};

/* Callbacks of the test. Each returns 0 to retry the access, else an error
 * that ends hw_access() with that value. */
struct hw_handlers {
	/* Called without guest_mode held (a VM exit): may flush, fault in, split. */
	int (*fault)(struct hw_vcpu *v, const struct hw_fault *f, void *ctx);
	/* PML-full exit. Called without guest_mode, with v->pml_lock held and a
	 * copy of the full buffer and its index (the vCPU's own buffer is already
	 * reset to 511): hand them to the mmu's drain. */
	int (*pml_full)(struct hw_vcpu *v, const u64 *buf, u16 index, void *ctx);
	/* The store itself: the test checks hpa against the gfn it expects. */
	void (*store)(struct hw_vcpu *v, gpa_t gpa, hpa_t hpa, u64 value, void *ctx);
	/* VM entry check, called in guest mode before every attempt (KVM checks
	 * its requests with vcpu->mode == IN_GUEST_MODE): false if the vCPU's
	 * root was invalidated; then reload() runs outside guest mode and the
	 * access starts again. Both may be NULL. */
	bool (*root_ok)(struct hw_vcpu *v, void *ctx);
	void (*reload)(struct hw_vcpu *v, void *ctx);
	/* Called on the entry-level bug the hardware would report (misconfig). */
	void (*misconfig)(struct hw_vcpu *v, const struct hw_fault *f, void *ctx);
	void *ctx;
};

struct hw_machine {
	enum hw_format fmt;
	struct hw_handlers h;
	/* Turns table hpas into pointers (the test's allocator scheme). */
	u64 *(*hpa_to_table)(hpa_t hpa);
	int nr_vcpus;
	struct hw_vcpu *vcpus;
	/* Bochs logs the GPA with its page offset; real CPUs clear bits 11:0. */
	bool pml_keep_offset;
	/* Probability (1/n, 0 = never) that a write hitting a read-only TLB entry
	 * raises the fault from the TLB instead of re-walking (SDM Vol. 3A 4.10.4.3
	 * "Optional Invalidation": a stale entry may cause a spurious fault). */
	unsigned int spurious_fault_one_in;
	/* Fault injection for negative tests: drop this many upcoming flushes. */
	atomic_int drop_flushes;
	atomic_int flushes_dropped;
};

int hw_machine_init(struct hw_machine *m, enum hw_format fmt, int nr_vcpus,
		    u64 *(*hpa_to_table)(hpa_t), const struct hw_handlers *h, u64 seed);
void hw_machine_destroy(struct hw_machine *m);

static inline bool hw_format_has_ad(enum hw_format fmt)
{
	return fmt != HW_FMT_EPT;
}

/* One guest access of 8 bytes at gpa (a write stores value). Loops through
 * faults and PML-full exits until the access is done; returns 0, a handler's
 * error, or -ELOOP when it cannot make progress (max_exits exits). */
int hw_access(struct hw_vcpu *v, gpa_t gpa, enum hw_access acc, u64 value);

/* Empty v's TLB (INVEPT single-context / INVLPGA-all / a new ASID). Waits for
 * the vCPU to leave guest mode, unless this thread is that vCPU. Honours
 * drop_flushes. */
void hw_flush_vcpu(struct hw_vcpu *v);
/* One flush request: every vCPU whose root is @root_hpa, or all when 0. A
 * dropped flush (drop_flushes) drops the whole request. */
void hw_flush_root(struct hw_machine *m, hpa_t root_hpa);
/* Load a new root into @v (a new EPTP / nCR3: its cached translations go). */
void hw_vcpu_set_root(struct hw_vcpu *v, hpa_t root_hpa);

/* Wait until @v is out of guest mode (an IPI that KVM's
 * kvm_make_all_cpus_request waits for): after it, @v re-checks root_ok before
 * its next guest access. */
void hw_vcpu_kick(struct hw_vcpu *v);

/* Drain v's PML buffer from another thread, as KVM kicks the vCPUs before a
 * harvest: takes pml_lock and guest_mode, copies the buffer and its index into
 * v->pml_copy, resets the index to 511, drops guest_mode and calls
 * drain(v, v->pml_copy, index, ctx) with pml_lock still held. */
int hw_pml_drain(struct hw_vcpu *v, int (*drain)(struct hw_vcpu *, const u64 *, u16, void *),
		 void *ctx);

/* The walk alone, for tests of the format: translate gpa without touching the
 * TLB, setting flags as the access would. */
enum hw_walk_result hw_walk(struct hw_vcpu *v, gpa_t gpa, enum hw_access acc,
			    struct hw_tlb_entry *out, struct hw_fault *f);

/* Count of TLB entries that say writable (diagnostics for the negative test). */
unsigned int hw_tlb_count_writable(struct hw_vcpu *v);

#endif /* PT_TESTS_MODEL_HW_MODEL_H */
