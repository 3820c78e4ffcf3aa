/* SPDX-License-Identifier: MIT */
/*
 * The dirty-log session: the one owner of the harvest side of dirty logging.
 *
 * It owns, per memslot of the layout (struct vm): the log bitmap lent to
 * mmu/, the scratch a harvest step takes bits into, and one view per
 * consumer (the bits a consumer has been handed and not yet acknowledged,
 * with the generation that names them). The mode of a slot is mmu/'s
 * (struct tdp_memslot): it is not kept twice. It runs the long operations
 * (start, stop, harvest, clear, acknowledge) in bounded steps, and it decides
 * the PML policy (on before the first page is armed; drained before a
 * harvest takes bits; off when no slot uses it).
 *
 * Consumers. The log is one (mmu/'s bitmap, as KVM's); each consumer has its
 * own view over it, as QEMU keeps one dirty bitmap per client over KVM's log:
 * a harvest takes bits out of the log once and ORs them into every
 * consumer's view, so what one consumer acknowledges is never lost to
 * another. Consumer DS_CONSUMER_MGMT is the management protocol's snapshot.
 *
 * The one rule before bits leave (docs/dirty-logging.md): every vCPU's PML
 * buffer drained and every vCPU's TLB flushed. That is one step here,
 * ds_sync_vcpus() in dirty_session.c, run at the end of every operation,
 * before its result is returned, and at the start of a harvest (so that what
 * the CPUs logged before the harvest is in it).
 *
 * Freestanding, no global state: everything comes in through struct
 * dirty_session (the VM's layout and mmu, the vCPU hooks, the allocator).
 * Not reentrant: the caller runs one call at a time (the management port's
 * poll does).
 */
#ifndef PT_HV_DIRTY_SESSION_H
#define PT_HV_DIRTY_SESSION_H

#include "hv/memslot.h"

#include <hv/proto/proto.h>
#include <pt/types.h>

struct tdp_mmu;

/* Who reads the log. A second consumer adds an entry here. */
enum ds_consumer {
	DS_CONSUMER_MGMT, /* the management protocol (DIRTY_SNAP/READ/DONE) */
	DS_NR_CONSUMERS,
};

/* A step that did its share and wants to be called again. */
#define DS_STEP_MORE 1

/*
 * What the session needs from the rest of the hypervisor. Every vCPU hook
 * acts on every vCPU of the VM. TLB flushes go through mmu/
 * (tdp_mmu_flush_remote_tlbs, which calls the VM's platform flush), so that
 * mmu/'s pending-flush state is reset with them.
 */
struct ds_hooks {
	void *ctx;
	/* Zeroed memory that stays mapped (bitmaps and per-slot state), or NULL. */
	void *(*alloc)(void *ctx, u64 bytes);
	/* May be NULL (the hypervisor never frees its bitmaps). */
	void (*free)(void *ctx, void *p, u64 bytes);
	/*
	 * May logging start? False with *why when a writer the nested page
	 * tables do not see exists (another CPU running unvirtualized).
	 */
	bool (*logging_allowed)(void *ctx, const char **why);
	/* Does the CPU log dirty pages itself (Intel PML)? *why if not. */
	bool (*pml_supported)(void *ctx, const char **why);
	/* PML on or off on every vCPU: 0, or -1 (then nothing changed). */
	int (*set_pml)(void *ctx, bool on);
	/* Every vCPU's PML buffer into mmu/'s log (tdp_mmu_pml_drain). May be NULL. */
	void (*drain_pml)(void *ctx);
	/* A line for the hypervisor's log. May be NULL. */
	void (*log)(void *ctx, const char *msg, u64 a, u64 b);
};

/* A consumer's bits for one slot. */
struct ds_view {
	u64 *bits; /* allocated at the first harvest; zero until then */
	u32 gen;   /* names the bits handed out last; 0: none yet */
};

struct ds_slot {
	u64 *log;     /* lent to mmu/ while logging; kept across stop/start */
	u64 *scratch; /* one harvest step's take */
	struct ds_view view[DS_NR_CONSUMERS];
};

enum ds_op_kind {
	DS_OP_NONE,
	DS_OP_START,
	DS_OP_STOP,
	DS_OP_HARVEST, /* harvest steps, then counting the view's bits */
	DS_OP_CLEAR,   /* re-arm what the consumer was handed, in a range */
	DS_OP_ACK,     /* the consumer's view emptied (DIRTY_DONE) */
};

/* What an operation is asked to do. */
struct ds_request {
	u8 kind;	  /* enum ds_op_kind */
	u8 consumer;	  /* enum ds_consumer (HARVEST, CLEAR, ACK) */
	bool all;	  /* START/STOP: every slot that is memory */
	bool clear;	  /* HARVEST: re-arm what is taken (else a copy) */
	u8 mode;	  /* START: enum proto_dirty_mode */
	u32 slot;	  /* index in the layout (ignored with all) */
	u64 first, count; /* CLEAR: pages of the slot */
	u32 gen;	  /* ACK: the generation acknowledged */
};

/* What a finished operation reports. */
struct ds_result {
	u32 nr_slots; /* START/STOP: slots started or stopped */
	u32 gen;      /* HARVEST: the view's new generation */
	u64 npages;   /* HARVEST: pages of the slot */
	u64 ndirty;   /* HARVEST: bits set in the view; CLEAR: pages re-armed */
};

struct ds_op {
	struct ds_request req;
	u32 slot;	 /* the slot being worked on */
	u32 next_index;	 /* ALL: the slot to look at after this one */
	u64 pos;	 /* cursor in the slot (pages; words while counting or acking) */
	bool counting;	 /* HARVEST: mmu work done, counting the view */
	bool flush_owed; /* some step changed entries: a flush before the end */
	struct ds_result res;
};

struct ds_stats {
	u64 ops;	   /* operations begun */
	u64 steps;	   /* ds_step calls that did work */
	u64 max_step_work; /* most pages of mmu work (or words) one step did */
	u64 syncs;	   /* ds_sync_vcpus runs */
};

struct dirty_session {
	struct vm *vm;	     /* the layout (hv_slot) and its mmu */
	struct tdp_mmu *mmu; /* vm->mmu */
	struct ds_hooks hooks;
	struct ds_slot *slots; /* one per vm slot */
	u64 *mask;	       /* one page: a DIRTY_CLEAR chunk's mask */
	u32 nr_slots;
	u32 gen_next;
	struct ds_op op;
	struct ds_stats stats;
};

/* 0, or -PROTO_E_INTERNAL (per-slot state could not be allocated at start). */
int ds_init(struct dirty_session *ds, struct vm *vm, const struct ds_hooks *hooks);
/* Frees the bitmaps (hooks.free) and turns logging off where it is on. */
void ds_destroy(struct dirty_session *ds);

/* The slot's mode as the protocol names it (PROTO_DIRTY_OFF while a start is under way). */
enum proto_dirty_mode ds_slot_mode(const struct dirty_session *ds, u32 slot);
/* PROTO_DIRTY_MODE_BIT of every mode this CPU can log with. */
u32 ds_modes_supported(const struct dirty_session *ds);

/*
 * Begins an operation: checks it (a -PROTO_E_* error: nothing begun) and
 * makes it the running one. Its work is done by ds_step. Only one runs at a
 * time (-PROTO_E_BUSY while another has not ended).
 */
int ds_begin(struct dirty_session *ds, const struct ds_request *req);
/*
 * At most `budget` pages of mmu work (or `budget` bitmap words for the
 * counting and the acknowledging, which are far cheaper) on the running
 * operation. DS_STEP_MORE: call again (the guest may run in between, as
 * docs/dirty-logging.md "Harvests in steps" argues); 0: done, *res filled,
 * and every vCPU synced (ds_sync_vcpus) so the result may leave; < 0: a
 * -PROTO_E_* error, the operation is over (what it leaves behind:
 * docs/protocol.md "Long commands"), also synced.
 */
int ds_step(struct dirty_session *ds, u64 budget, struct ds_result *res);
/* True while an operation has begun and not ended. */
static inline bool ds_busy(const struct dirty_session *ds)
{
	return ds->op.req.kind != DS_OP_NONE;
}

/*
 * A consumer's bits of a slot as of generation `gen` (the generation of its
 * last harvest): -PROTO_E_STALE if another harvest came since (or none yet),
 * -PROTO_E_NO_SLOT, -PROTO_E_BUSY while an operation runs.
 */
int ds_view_read(const struct dirty_session *ds, enum ds_consumer c, u32 slot, u32 gen,
		 const u64 **bits, u64 *npages);

#endif /* PT_HV_DIRTY_SESSION_H */
