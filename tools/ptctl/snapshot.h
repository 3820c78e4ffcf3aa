/* SPDX-License-Identifier: MIT */
/* `ptctl snapshot`: ELF cores of the guest (docs/snapshot.md). */
#ifndef PT_PTCTL_SNAPSHOT_H
#define PT_PTCTL_SNAPSHOT_H

#include "client.h"

struct snapshot_opts {
	const char *out;  /* -o FILE */
	bool live;	  /* --live: pre-copy while the guest runs */
	bool cow;	  /* --cow: copy-on-write, exact at the start, the guest running */
	u64 cow_pages;	  /* --cow-mib as pages (0: a share of the memory covered) */
	const char *base; /* --base OLD.core: only what changed since OLD crosses */
	bool stay_paused; /* --stay-paused */
	u64 downtime_ms;  /* --downtime MS (--live) */
	u64 max_rounds;	  /* --max-rounds N (--live) */
	u64 lease_ms;	  /* --lease MS: the hypervisor resumes after this much silence */
	bool json;
};

int snapshot_cmd(struct pt_conn *c, const struct snapshot_opts *o);

#endif /* PT_PTCTL_SNAPSHOT_H */
