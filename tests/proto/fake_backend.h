/* SPDX-License-Identifier: MIT */
/*
 * A fake hypervisor behind struct mgmt_backend: guest memory in a host buffer,
 * three memory slots (two RAM, one MMIO), a dirty log per slot that fake
 * "guest writes" fill, two vCPUs with made-up registers, counters and a log
 * ring. Used by the unit tests, the simulator (ptsim) and the fuzzers.
 */
#ifndef PT_TESTS_FAKE_BACKEND_H
#define PT_TESTS_FAKE_BACKEND_H

#include <hv/mgmt.h>

#define FAKE_NR_SLOTS 3
#define FAKE_LOG_SIZE 4096

struct fake_slot {
	struct mgmt_slot s;
	u8 *mem;      /* NULL for MMIO */
	u64 *live;    /* the "MMU's" dirty log */
	u64 *snap;    /* the snapshot mgmt.c reads */
	u64 *scratch; /* a harvest step: what it took out of live[] */
	u64 npages;
};

struct fake_vm {
	struct fake_slot slots[FAKE_NR_SLOTS];
	u32 nr_slots;
	u32 dirty_modes;
	bool paused;
	u64 exits_cpuid, exits_npf, harvests, clears;
	/*
	 * The long operation in flight (struct mgmt_backend's step contract,
	 * checked: a call that breaks it fails with -PROTO_E_INTERNAL and
	 * contract_broken is set).
	 */
	int op; /* 0, or 1 start, 2 stop, 3 harvest */
	u32 op_slot;
	u64 op_pos;	   /* the cursor the next call must bring */
	u32 op_calls;	   /* calls of this operation so far */
	u64 steps;	   /* step calls, all operations */
	u64 max_step_work; /* most pages one call worked on */
	bool contract_broken;
	/* Test hook: the harvest call number fail_harvest_call (1 = first) fails. */
	u32 fail_harvest_call;
	char log[FAKE_LOG_SIZE];
	u64 log_end; /* absolute offset of the next byte */
};

extern const struct mgmt_backend fake_backend;

/* ram0_mib: size of slot 0 (RAM at gpa 0); slot 1 is 4 MiB RAM at 4 GiB; slot 2 MMIO. */
void fake_vm_init(struct fake_vm *vm, u32 ram0_mib);
void fake_vm_free(struct fake_vm *vm);
/* A guest write: changes memory, logs the page when the slot is logging. */
void fake_vm_write(struct fake_vm *vm, gpa_t gpa, const void *buf, u32 len);
/* Marks a page dirty without changing memory (bitmap patterns for tests). */
void fake_vm_touch(struct fake_vm *vm, u32 slot_id, u64 page);
void fake_vm_log(struct fake_vm *vm, const char *line);
/* Fills slot memory with a mix of zero, repetitive and random pages. */
void fake_vm_fill(struct fake_vm *vm, u32 seed);

#endif /* PT_TESTS_FAKE_BACKEND_H */
