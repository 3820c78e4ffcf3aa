/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor's own hv/ on a host: hv/control.c (the management port's
 * owner: backend, dirty-log and copy-on-write sessions and their hooks),
 * hv/vm.c (memslots' nested page tables, the fault path), hv/exit.c (exit
 * dispatch), hv/mgmt.c, the real mmu/, the pool allocator and the log ring,
 * with the hardware replaced:
 *
 *   - physical memory: one mapping of this process (hv_host_phys_base), guest
 *     RAM in three slots (as the simulators have always shown them: RAM at 0,
 *     4 MiB of RAM at 4 GiB, 64 KiB of MMIO) and the hidden pool after them;
 *   - the CPU: tests/model/hw_model.c walks mmu/'s tables for every guest
 *     store (TLB, A/D bits, PML when offered); its EPT violations / #NPFs
 *     become HV_EXIT_TDP_FAULT exits given to hv_handle_exit, its PML-full
 *     exits go to the vCPU's pml_drain hook, as arch/x86 does;
 *   - what a CPU keeps of a vCPU (registers made up per vCPU), the other
 *     CPUs (hv/smp.h: one thread runs every vCPU, so a pause finds them out
 *     of the guest), the clock (the TSC, its rate measured at start);
 *   - the management UART: the test defines drivers/uart16550.h's
 *     uart_getc_or_error, uart_tx_room, uart_putc_nowait, uart_putc and
 *     uart_puts (tests/proto/ptsim.c: a 16550 behind a unix socket).
 *
 * Two vCPUs; vCPU 0 is the boot CPU (its exits poll the management port).
 * One machine per process: hv/ keeps its state in globals.
 */
#ifndef PT_TESTS_HV_HOST_MACHINE_H
#define PT_TESTS_HV_HOST_MACHINE_H

#include "hv/hv.h"
#include "hv/memslot.h"
#include "hv/vcpu.h"
#include "tests/model/hw_model.h"

#define HM_NR_VCPUS 2
#define HM_NR_SLOTS 3

struct host_machine_config {
	u32 ram0_mib;	/* slot 0: RAM at gpa 0 */
	bool pml;	/* an Intel CPU with EPT A/D and PML ("vmx"); else AMD NPT ("svm") */
	u64 step_pages; /* --mgmt-step-pages; 0: the default */
	u64 seed;	/* the hardware model's */
	void *ctx;	/* for on_pause */
	bool quiet;	/* hv/'s log in its ring (LOG) only, not on stderr too */
	/* Every vCPU is out of the guest for a pause (smp_pause_others): the test's look. */
	void (*on_pause)(void *ctx);
	/* hv_guest_stop on vCPU `vcpu`, before the boot CPU serves the port for ever. */
	void (*on_guest_stop)(void *ctx, u32 vcpu);
};

struct host_machine {
	struct host_machine_config cfg;
	u8 *phys; /* the machine's physical memory: hv_va(0) */
	u64 phys_size;
	gpa_t pool_base;
	u64 pool_size;
	struct hv_boot_info bi;
	struct vm vm;
	struct vcpu vcpus[HM_NR_VCPUS];
	struct hw_machine hw;
	/* The access in flight on each vCPU: its faults, and an exception it took. */
	struct {
		gpa_t gpa;
		u32 faults;
		bool exception;
	} access[HM_NR_VCPUS];
};

/* Builds the machine and runs hv_control_init; aborts on failure. */
void host_machine_init(struct host_machine *m, const struct host_machine_config *cfg);
/*
 * A guest store of 8 bytes on vCPU `vcpu` through the hardware model (its
 * faults handled by hv_handle_exit). 0 when the store landed; -EAGAIN when
 * the vCPU keeps faulting on the page without progress (a copy-on-write
 * snapshot's budget is out: it waits, and tries again after the next poll),
 * another negative errno when the guest took an exception for it.
 */
int host_machine_store(struct host_machine *m, u32 vcpu, gpa_t gpa, u64 value);
/* An exit taken only for the host's turn (HV_EXIT_INTR): vCPU 0's polls the port. */
void host_machine_intr_exit(struct host_machine *m, u32 vcpu);
/* Leaves `pages` pages free in the hypervisor's pool (the rest held for good). */
void host_machine_drain_pool(struct host_machine *m, u64 pages);
/*
 * Guest RAM from `gpa` for `npages` pages, written directly (before the guest
 * runs: nothing is logged), for tests of the memory encoders: with `mixed` a
 * quarter each of zero, random, repetitive (text-like) and sparse pages, else
 * all random. The same `seed`, the same bytes.
 */
void host_machine_fill(struct host_machine *m, gpa_t gpa, u64 npages, u32 seed, bool mixed);
/* Host pointer to guest-physical memory (a RAM slot's). */
static inline void *host_machine_mem(struct host_machine *m, gpa_t gpa)
{
	return m->phys + gpa;
}

#endif /* PT_TESTS_HV_HOST_MACHINE_H */
