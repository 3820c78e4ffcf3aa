/* SPDX-License-Identifier: MIT */
/*
 * The pre-copy engine: copies guest memory while the guest runs, then rounds
 * of the pages it dirtied meanwhile (the hypervisor's dirty log), until what
 * is left fits the downtime target or a round limit; then pauses the guest,
 * copies the last pages, lets the caller take the vCPU state and resumes.
 * What the sink holds at the end equals guest memory at that pause, page for
 * page (docs/snapshot.md "Pre-copy").
 *
 * The engine knows nothing of files: `ptctl snapshot --live` puts the pages
 * into an ELF core, a migration sender would put them on its own stream.
 * Memory of every range must be RAM-like (a slot the hypervisor can log).
 */
#ifndef PT_PTCTL_PRECOPY_H
#define PT_PTCTL_PRECOPY_H

#include "ops.h"

#include <signal.h>

struct precopy_range {
	u64 slot;    /* the hypervisor's slot id (its dirty log) */
	u64 gpa;     /* the slot's first byte */
	u64 size;    /* the slot's bytes (page multiple) */
	u8 log_mode; /* enum proto_dirty_mode of the slot now (SLOTS) */
};

struct precopy_stats {
	u32 rounds;	      /* passes over memory: 1 full + dirty rounds + the final one */
	u64 pages;	      /* pages in the ranges */
	u64 pages_sent;	      /* pages read from the guest, all rounds */
	u64 last_round_pages; /* pages copied while paused */
	u64 round_dirty[64];  /* dirty pages found per harvest (first 64 harvests) */
	u32 harvests;
	double downtime_ms; /* from the PAUSE reply to the RESUME reply (or to the end) */
	bool paused_by_us, left_paused;
	/* progress of the current pass */
	u64 pass_done, pass_total;
	u32 pass; /* 0: full copy, 1..: dirty rounds */
};

struct precopy_sink {
	void *ctx;
	/* Guest bytes [gpa, gpa + len) as read in the current pass (page aligned). */
	int (*put)(void *ctx, u64 gpa, const u8 *data, u64 len);
	/*
	 * Called once, the guest paused and every page final: take the vCPU
	 * state here (REGS). Returns 0 or an enum pt_status.
	 */
	int (*at_pause)(void *ctx, struct pt_conn *c);
	/* Optional: called after every reply with the stats so far. */
	void (*progress)(void *ctx, const struct precopy_stats *st);
	/* Optional: set (by a signal handler) to abandon the run cleanly. */
	volatile sig_atomic_t *cancel;
};

struct precopy_params {
	u32 max_rounds;	       /* dirty rounds while running before the final pause (>= 0) */
	u64 downtime_ms;       /* pause once the rest is estimated to take no longer */
	bool stay_paused;      /* do not resume after the final copy */
	bool guest_was_paused; /* the guest was paused before: it stays paused */
	u8 mode;	       /* dirty-logging mode for slots not logging yet */
	u64 lease_ms;	       /* the pause's lease (0: none; see pt_pause) */
};

/*
 * Runs the whole pre-copy. The ranges' slots are left logging (so a later
 * incremental copy can start from here). On failure after the pause the
 * guest is resumed (unless it was paused before or stay_paused) and the
 * status returned; c->err says what failed.
 */
int precopy_run(struct pt_conn *c, const struct precopy_range *r, u32 n,
		const struct precopy_params *p, const struct precopy_sink *s,
		struct precopy_stats *st);

/*
 * Reads [gpa, gpa + len) in chunks and hands them to the sink; counts pages
 * into st (pages_sent, pass_done). Shared with the plain snapshot.
 */
int precopy_copy(struct pt_conn *c, u64 gpa, u64 len, const struct precopy_sink *s,
		 struct precopy_stats *st);

/* The same from an armed copy-on-write snapshot (COW_READ: each page read once). */
int precopy_copy_cow(struct pt_conn *c, u64 gpa, u64 len, const struct precopy_sink *s,
		     struct precopy_stats *st);

/* Copies the pages whose bits are set in bm (page i = gpa + i * 4 KiB). */
int precopy_copy_bitmap(struct pt_conn *c, u64 gpa, const u64 *bm, u64 npages,
			const struct precopy_sink *s, struct precopy_stats *st);

#endif /* PT_PTCTL_PRECOPY_H */
