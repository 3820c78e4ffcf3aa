/* SPDX-License-Identifier: MIT */
/*
 * A hypervisor without a CPU behind struct mgmt_backend: guest memory in a
 * host buffer, three memory slots (two RAM, one MMIO), two vCPUs with
 * made-up registers, counters and a log ring. Dirty logging is the
 * product's: the dirty-log session (hv/dirty_session.c) over the real mmu/
 * with the host platform of tests/model; only the CPU is missing, so a
 * "guest write" is logged through mmu/'s funnel (tdp_mmu_mark_page_dirty).
 * Used by the unit tests (proto_test), the benchmark and fuzz_mgmt; ptsim runs
 * hv/control.c itself on a simulated machine (tests/hv/host_machine.h).
 */
#ifndef PT_TESTS_FAKE_BACKEND_H
#define PT_TESTS_FAKE_BACKEND_H

#include <hv/cow_session.h>
#include <hv/dirty_session.h>
#include <hv/mgmt.h>

#include "hv/memslot.h"
#include "mmu/tdp_mmu_parity.h"
#include "tests/model/model_platform.h"

#define FAKE_NR_SLOTS 3
#define FAKE_LOG_SIZE 4096

struct fake_slot {
	struct {
		u32 id;	    /* = the index in vm.layout.slots */
		gpa_t gpa;
		u64 size;
		u8 type;    /* enum proto_slot_type */
	} s;
	u8 *mem; /* NULL for MMIO */
	u64 npages;
};

struct fake_vm {
	struct fake_slot slots[FAKE_NR_SLOTS];
	u32 nr_slots;
	u32 ram0_mib;
	/* The product's own dirty logging: the session over a real mmu/. */
	struct vm layout;
	struct hv_slot layout_slots[FAKE_NR_SLOTS];
	struct tdp_mmu *mmu;
	struct tdp_mmu_root *root; /* the one vCPU's */
	struct model_platform plat;
	struct dirty_session ds;
	/* The product's copy-on-write snapshot over the same mmu/ (mgmt_set_cow). */
	struct cow_session cow;
	u64 cow_pool_pages;    /* pages the fake pool has for a budget */
	bool pml;	       /* the "CPU" offers PML (set before the first start) */
	u32 pml_on;	       /* set_pml(true) calls minus set_pml(false) calls */
	long alloc_fail_after; /* >= 0: the session's allocations fail after this many */
	bool paused;
	u64 exits_cpuid, exits_npf;
	char log[FAKE_LOG_SIZE];
	u64 log_end; /* absolute offset of the next byte */
};

extern const struct mgmt_backend fake_backend;

/*
 * ram0_mib: size of slot 0 (RAM at gpa 0); slot 1 is 4 MiB RAM at 4 GiB;
 * slot 2 is 64 KiB of MMIO at 0xfe000000 (at 0x100400000 when slot 0 reaches it).
 */
void fake_vm_init(struct fake_vm *vm, u32 ram0_mib);
void fake_vm_free(struct fake_vm *vm);
/*
 * The VM fake_vm_init gives (same size, memory zero, nothing logged), built
 * again through the same steps but in the host memory it already has: a
 * fuzzer starts every input from a fresh VM without paying for megabytes of
 * fresh allocations (under ASan each is an mmap, its shadow and page faults).
 */
void fake_vm_reset(struct fake_vm *vm);
/*
 * A guest write: each page's write fault first (mmu/'s tdp_mmu_page_fault, a
 * tracked page handed to the copy-on-write session as hv/vm.c does), then
 * memory changes and the page is logged through mmu/ (tdp_mmu_mark_page_dirty).
 * False, nothing written, while a page waits for the session's budget (the
 * vCPU would fault again): the caller tries again later.
 */
bool fake_vm_write(struct fake_vm *vm, gpa_t gpa, const void *buf, u32 len);
/* Logs a page written without changing memory (bitmap patterns for tests). */
void fake_vm_touch(struct fake_vm *vm, u32 slot_id, u64 page);
void fake_vm_log(struct fake_vm *vm, const char *line);
/* Fills slot memory with a mix of zero, repetitive and random pages. */
void fake_vm_fill(struct fake_vm *vm, u32 seed);

/* The slot's mode as the protocol reports it. */
static inline u8 fake_slot_mode(const struct fake_vm *vm, u32 slot)
{
	return (u8)ds_slot_mode(&vm->ds, slot);
}

/* The session's log of a slot (mmu/'s bitmap), and the protocol's view of it. */
static inline const u64 *fake_log(const struct fake_vm *vm, u32 slot)
{
	return vm->ds.slots[slot].log;
}

static inline const u64 *fake_view(const struct fake_vm *vm, u32 slot)
{
	return vm->ds.slots[slot].view[DS_CONSUMER_MGMT].bits;
}

#endif /* PT_TESTS_FAKE_BACKEND_H */
