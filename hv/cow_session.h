/* SPDX-License-Identifier: MIT */
/*
 * The copy-on-write snapshot session: memory exact at one instant while the
 * guest runs (`ptctl snapshot --cow`, docs/snapshot.md).
 *
 * Arming (guest paused): every memory slot is write-tracked in mmu/ (a
 * second reason to keep a page read-only, independent of dirty logging:
 * tdp_mmu_write_track_enable) and every vCPU's TLB is flushed before the
 * reply, so no vCPU can write a page of the instant once the guest resumes.
 * From then on a page is in one of three states:
 *   tracked  - its bit in the slot's track bitmap: guest memory still holds
 *              the instant's bytes, and nobody can write it;
 *   copied   - copy_of[page] != 0: a vCPU wanted to write it, so its bytes
 *              were first copied into one of the budget's pages (hidden
 *              memory), then its tracking ended;
 *   sent     - neither: the stream has it (a page is sent once).
 * A write to a tracked page (TDP_FAULT_TRACKED) comes to cow_handle_write:
 * with room in the budget, copy then untrack, and the vCPU faults again at
 * once (dirty logging then gives it W and logs it as for any write); with no
 * room the vCPU WAITS: it goes back into the guest unchanged and faults
 * again, so the exit path (the management port's poll on the boot CPU,
 * pauses, kicks, flushes) keeps running while it waits, until the stream
 * sends the page or frees a copy. A wait is counted once and logged.
 * The stream (cow_read_page) sends the copy and frees it, or the untouched
 * page read from guest memory and untracked in the same critical section.
 *
 * One lock (a leaf: nothing else is taken inside it, mmu/'s untrack is an
 * atomic) makes "copy or send, then untrack" one step for each page: a
 * second vCPU faulting on the same page finds it copied (or sent) and just
 * faults again; nobody sees a half-made copy.
 *
 * Freestanding, no global state; memory from hooks: the per-slot bitmaps
 * and copy indices are kept from the first arm on (the pool's contiguous
 * allocations are never recycled), the budget's pages are given back at the
 * end of every session.
 */
#ifndef PT_HV_COW_SESSION_H
#define PT_HV_COW_SESSION_H

#include "hv/memslot.h"

#include <pt/lock.h>
#include <pt/types.h>

struct tdp_mmu;

struct cow_hooks {
	void *ctx;
	/* Zeroed memory that stays mapped (kept for good), or NULL. */
	void *(*alloc)(void *ctx, u64 bytes);
	/* One zeroed page for the budget, or NULL; and its return. */
	void *(*alloc_page)(void *ctx);
	void (*free_page)(void *ctx, void *page);
	/* Pages the allocator has left (the budget leaves it a floor). */
	u64 (*pages_free)(void *ctx);
	/* The hypervisor's pointer to the guest page at @gpa (a memory slot). */
	const void *(*guest_page)(void *ctx, gpa_t gpa);
	/* May guest memory be write-tracked? False with *why when a writer
	 * the nested page tables do not see exists. May be NULL. */
	bool (*allowed)(void *ctx, const char **why);
	/* A line for the hypervisor's log. May be NULL. */
	void (*log)(void *ctx, const char *msg, u64 a, u64 b);
};

/* Pages the allocator keeps after a budget is taken (tables, bitmaps). */
#define COW_POOL_FLOOR_PAGES 256

struct cow_slot {
	u64 *track;   /* lent to mmu/ while armed (write_track) */
	u32 *copy_of; /* per page: budget index + 1 of its copy, 0 if none */
	bool armed;
};

struct cow_stats {
	u64 sessions;	  /* arms that succeeded */
	u64 copies;	  /* pages copied before a guest write (this session) */
	u64 waits;	  /* vCPU faults that had to wait for room (this session) */
	u64 wait_faults;  /* faults taken while waiting (this session) */
	u64 sent_copy;	  /* pages the stream sent from a copy (this session) */
	u64 sent_direct;  /* pages the stream read from guest memory (this session) */
	u64 max_used;	  /* most budget pages in use at once (this session) */
	u64 unsent;	  /* pages never sent when the session ended (last end) */
	u64 copies_total; /* over every session */
	u64 waits_total;
	u64 ended_by_lease; /* sessions the host's silence ended */
};

struct cow_session {
	struct vm *vm;
	struct tdp_mmu *mmu;
	struct cow_hooks hooks;
	pt_spinlock_t lock;
	bool armed;
	struct cow_slot *slots; /* one per vm slot */
	u32 nr_slots;
	void **pages;  /* the budget: pages[i] */
	u32 *free_idx; /* stack of free budget indices */
	u32 nr_free;
	u32 budget;		   /* pages in this session's budget */
	u32 capacity;		   /* room in pages[] / free_idx[] */
	u64 tracked;		   /* pages armed in this session */
	u32 last_slot;		   /* the slot the last lookup found (lock held) */
	u64 wait_gfn[HV_MAX_CPUS]; /* gfn + 1 a vCPU waits for, 0 if none */
	struct cow_stats st;
};

/* 0, or -PROTO_E_INTERNAL (no memory for the per-slot state). */
int cow_init(struct cow_session *cs, struct vm *vm, const struct cow_hooks *hooks);

/*
 * Arm (the guest must be paused: the caller checks): every slot that is
 * memory tracked, @budget pages taken from the pool, every vCPU's TLB
 * flushed. *tracked: pages armed. -PROTO_E_STATE armed already;
 * -PROTO_E_RANGE budget 0 or above 2^32 - 1; -PROTO_E_NOMEM the pool cannot
 * give the budget and keep its floor; -PROTO_E_UNSUPPORTED not allowed
 * (hooks.allowed). On error nothing is left armed.
 */
int cow_arm(struct cow_session *cs, u64 budget, u64 *tracked);

/*
 * The instant's bytes of the page at @gpa (page-aligned) into @buf (a page),
 * and the page released (its copy freed, or its tracking ended).
 * -PROTO_E_STATE not armed, or the page was sent already; -PROTO_E_FAULT not
 * in a memory slot.
 */
int cow_read_page(struct cow_session *cs, gpa_t gpa, void *buf);

/* The session ends: every page untracked, the budget given back. *unsent:
 * pages never sent. -PROTO_E_STATE if not armed. */
int cow_end(struct cow_session *cs, u64 *unsent);

enum cow_fault_result {
	COW_FAULT_AGAIN, /* handled (copied, or already copied/sent): fault again now */
	COW_FAULT_WAIT,	 /* no room: resume the guest unchanged, it faults again */
};

/* A vCPU's write to a tracked page (TDP_FAULT_TRACKED); any CPU. */
enum cow_fault_result cow_handle_write(struct cow_session *cs, u32 vcpu, gpa_t gpa);

static inline bool cow_armed(const struct cow_session *cs)
{
	return __atomic_load_n(&cs->armed, __ATOMIC_ACQUIRE);
}

#endif /* PT_HV_COW_SESSION_H */
