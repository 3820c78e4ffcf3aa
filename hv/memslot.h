/* SPDX-License-Identifier: MIT */
/*
 * The guest-physical layout, built once from the UEFI memory map that boot/
 * copied: OS RAM, ACPI, runtime and firmware-reserved memory as separate
 * slots, MMIO (listed or in a gap of the map) as slots that are mapped
 * uncacheable and never logged. The hypervisor's own pool is in no slot: it
 * is absent from the nested page tables.
 */
#ifndef PT_HV_MEMSLOT_H
#define PT_HV_MEMSLOT_H

#include "hv/boot.h"

#include <pt/types.h>

/* The layout's limit: a memory map that boot/ took always fits (pt/limits.h). */
#define HV_MAX_SLOTS PT_MAX_SLOTS

struct hv_slot {
	gfn_t base_gfn;
	u64 npages;
	enum hv_mem_type type; /* never HV_MEM_HIDDEN */
	int mmu_id;	       /* tdp_mmu slot id, -1 before it is registered */
};

struct hv_hidden_range {
	gpa_t start, end; /* [start, end) */
};

#define HV_MAX_HIDDEN PT_MAX_HIDDEN

struct vcpu;
struct cow_session;
struct vm {
	struct hv_slot *slots; /* HV_MAX_SLOTS entries, from the pool (vm_create) */
	unsigned int nr_slots;
	struct hv_hidden_range hidden[HV_MAX_HIDDEN];
	unsigned int nr_hidden;
	gpa_t gpa_limit; /* 2^physical-address-bits: everything below is in a slot or hidden */
	struct tdp_mmu *mmu;
	u64 ram_pages;	/* pages in HV_MEM_RAM slots */
	/* The vCPUs, one per CPU boot/ listed; vcpus[0] is the boot CPU (hv/smp.c). */
	struct vcpu *vcpus[HV_MAX_CPUS];
	u32 nr_vcpus;
	u64 tlb_gen;	/* bumped by every remote TLB flush (smp_flush_tlbs) */
	u32 pause_req;	/* the management side holds every vCPU out of the guest */
	/*
	 * The guest is stopped for good after a guest-fatal event
	 * (hv_guest_fatal): no vCPU enters it again; pause_req stays set and
	 * RESUME is refused, the management port keeps answering.
	 */
	u32 stopped;
	u32 pml_on;	/* hardware dirty logging wanted on every vCPU (smp_set_pml) */
	u64 pml_drain_gen; /* bumped by every request to drain the vCPUs' PML logs */
	bool lapic_intercept; /* the APIC page is read-only: INIT/SIPI are emulated (hv/lapic.c) */
	/* The owner of mmu/'s write tracking: the copy-on-write snapshot
	 * (hv/cow_session.h, set up by hv/control.c), NULL without one. */
	struct cow_session *cow;
};

/*
 * Builds vm->slots (room for HV_MAX_SLOTS) from the memory map: sorts,
 * merges neighbours of one type, fills gaps below `gpa_limit` with MMIO,
 * leaves hidden ranges out. A map of up to HV_MAX_MEM_RANGES ranges always
 * fits; -1 (logged) only for one that boot/ could not have made.
 */
int hv_memslots_build(struct vm *vm, const struct hv_boot_info *bi, gpa_t gpa_limit);
bool hv_gpa_is_hidden(const struct vm *vm, gpa_t gpa);
/* The slot holding `gpa`, or NULL (hidden or above gpa_limit). */
const struct hv_slot *hv_gpa_to_slot(const struct vm *vm, gpa_t gpa);
const char *hv_mem_type_name(enum hv_mem_type t);
void hv_memslots_log(const struct vm *vm);

#endif /* PT_HV_MEMSLOT_H */
