/* SPDX-License-Identifier: MIT */
/*
 * Typed management commands on top of the client (client.h): INFO, SLOTS,
 * REGS, PAUSE/RESUME, DIRTY_START/STOP, MEM_READ and the dirty-log harvest,
 * each with its reply checked. Used by ptctl's commands, the snapshot,
 * pre-copy and research engines. Failures return an enum pt_status with
 * c->err set. Also the one JSON string writer of their --json output.
 */
#ifndef PT_PTCTL_OPS_H
#define PT_PTCTL_OPS_H

#include "client.h"

struct pt_info {
	char backend[16], version[64];
	u64 vcpus, modes, mem, nslots;
	bool paused;
	bool stopped; /* a fatal error stopped the guest for good (paused is true too) */
};

struct pt_slot {
	u64 id, gpa, size;
	u8 type, mode;
};

struct pt_regs {
	u32 count; /* registers the hypervisor sent (enum proto_reg order) */
	u64 r[PROTO_REGS_MAX];
};

int pt_get_info(struct pt_conn *c, struct pt_info *out);
int pt_get_slots(struct pt_conn *c, struct pt_slot *out, int max, int *n);
int pt_get_regs(struct pt_conn *c, u64 vcpu, struct pt_regs *out);
/* A command without payload whose reply has none (PAUSE, RESUME). */
int pt_simple(struct pt_conn *c, u8 cmd);

/*
 * PAUSE with a lease of lease_ms (0: none) when the hypervisor has leases:
 * it resumes the guest on its own once it hears nothing from the host for
 * that long. *leased says whether the lease was given.
 */
int pt_pause(struct pt_conn *c, u64 lease_ms, bool *leased);
/*
 * End of a leased pause: the guest must still be paused (else the lease ran
 * out and the guest ran: PT_EHV, c->err says so); then RESUME, or with
 * stay_paused a PAUSE without lease (the guest stays paused for good).
 */
int pt_pause_end(struct pt_conn *c, bool leased, bool stay_paused);

/*
 * DIRTY_START (start) or DIRTY_STOP of one slot, or of every slot that is
 * memory (all); mode only for a start. *n = slots the hypervisor changed.
 */
int pt_dirty_start_stop(struct pt_conn *c, bool start, bool all, u64 slot, u8 mode, u64 *n);
static inline int pt_dirty_start_slot(struct pt_conn *c, u64 slot, u8 mode, u64 *n)
{
	return pt_dirty_start_stop(c, true, false, slot, mode, n);
}
static inline int pt_dirty_stop_slot(struct pt_conn *c, u64 slot, u64 *n)
{
	return pt_dirty_start_stop(c, false, false, slot, 0, n);
}
/*
 * DIRTY_EPOCH: the hypervisor's run and the dirty log's epoch (it changes
 * whenever bits may leave the log for good, or logging starts or stops).
 * PT_EHV with c->err set when the hypervisor does not have it.
 */
int pt_dirty_epoch(struct pt_conn *c, u64 *boot_id, u64 *epoch);

/* The cheapest dirty-logging mode the CPU has (pml, then dbit, then wp). */
u8 pt_best_dirty_mode(u64 modes);

/* What a DIRTY_SNAP answered: the snapshot's generation, its size and count. */
struct pt_dirty_snap {
	u64 gen, npages, ndirty;
};

/*
 * DIRTY_SNAP (with CLEAR when clear) of one slot; npages: 0 for any size, else
 * the slot's page count (checked).
 */
int pt_dirty_snap(struct pt_conn *c, u64 slot, bool clear, u64 npages, struct pt_dirty_snap *s);
/*
 * DIRTY_READ of snapshot s, its bits ORed into bm from bit first on (bm is not
 * zeroed), checked against the snapshot's count. PT_EHV with *hv_err
 * PROTO_E_STALE: another reader took a newer snapshot, which holds ours (take
 * a snapshot again). progress (may be NULL) is called after each reply.
 */
int pt_dirty_read(struct pt_conn *c, u64 slot, const struct pt_dirty_snap *s, u64 *bm, u64 first,
		  void (*progress)(void *ctx, u64 done, u64 total), void *ctx, int *hv_err);

/*
 * pt_dirty_snap and pt_dirty_read of the whole bitmap into
 * *bm, allocated here ((npages + 63) / 64 words and one spare; free() it),
 * checked against the hypervisor's count. A snapshot that another reader made
 * stale is taken again, three times at most. No DIRTY_DONE: with clear the
 * hypervisor keeps the bits until pt_dirty_done, so that a caller acknowledges
 * only what it has stored. progress (may be NULL) is called after each reply.
 */
int pt_dirty_get(struct pt_conn *c, u64 slot, bool clear, struct pt_dirty_snap *s, u64 **bm,
		 void (*progress)(void *ctx, u64 done, u64 total), void *ctx);
/* DIRTY_DONE: the bits of snapshot gen are the host's from now on. */
int pt_dirty_done(struct pt_conn *c, u64 slot, u64 gen);

/*
 * pt_dirty_get into the caller's bm (ceil(npages/64) words, zeroed here),
 * then DIRTY_DONE when clear: the bits are the caller's from then on.
 * npages must be the slot's page count (checked).
 */
int pt_dirty_harvest(struct pt_conn *c, u64 slot, bool clear, u64 *bm, u64 npages, u64 *ndirty);

/*
 * One MEM_READ: guest-physical bytes from gpa (len at the most, len > 0),
 * decoded into dst (cap bytes, cap > 0); *out = bytes received (> 0).
 * A transfer is as many of these as it takes.
 */
int pt_mem_read_chunk(struct pt_conn *c, u64 gpa, u64 len, u8 *dst, u64 cap, u64 *out);

/*
 * Reads guest-physical [gpa, gpa + len) into buf, with the token encoding
 * (zero pages cost a few bytes). progress (may be NULL) is called after each
 * reply with the bytes done so far.
 */
int pt_mem_read(struct pt_conn *c, u64 gpa, u64 len, u8 *buf, void (*progress)(void *ctx, u64 done),
		void *ctx);

/*
 * s as a JSON string on stdout: quotes, backslashes and control characters
 * escaped. The --json output of every command writes its strings with it.
 */
void pt_json_str(const char *s);

/*
 * The copy-on-write snapshot (docs/snapshot.md, docs/protocol.md COW_*).
 * COW_ARM while the guest is paused: budget pages of hidden memory, the
 * session ended by the hypervisor after lease_ms of silence (0: never; only
 * with PROTO_CAP_LEASE); *tracked = pages of the instant.
 */
int pt_cow_arm(struct pt_conn *c, u64 budget, u64 lease_ms, u64 *tracked);
/*
 * COW_READ of [gpa, gpa + len) into buf, as pt_mem_read: the instant's
 * bytes; every page read is released in the hypervisor (read once).
 */
int pt_cow_read(struct pt_conn *c, u64 gpa, u64 len, u8 *buf, void (*progress)(void *ctx, u64 done),
		void *ctx);
/* What COW_END reports of the session it ended. */
struct pt_cow_result {
	u64 copies, waits, max_used, unsent;
};
int pt_cow_end(struct pt_conn *c, struct pt_cow_result *out);

#endif /* PT_PTCTL_OPS_H */
