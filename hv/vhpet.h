/* SPDX-License-Identifier: MIT */
/*
 * The guest's view of the HPET while the management tick owns one of its
 * comparators (hv/mgmt_tick.c). The guest keeps the device: the ACPI table
 * stays, and its MMIO page is absent from the nested page tables, so every
 * access exits, is decoded (hv/insn.c) and comes here. The guest sees an HPET
 * with one comparator fewer: the capabilities register's NUM_TIM_CAP says so,
 * and the registers of comparators it does not have (the taken one among
 * them) read 0 and ignore writes. Register layout: IA-PC HPET Specification
 * 1.0a, 2.3 "Register Definitions" (drivers/hpet.h).
 *
 * - Comparators: guest comparator g is physical comparator g, or g + 1 from
 *   the taken one on; the taken one is never 0 or 1 (spec 2.3.5: legacy
 *   replacement routing takes over comparators 0 and 1, and that route is
 *   the guest's to switch). Their registers pass through, translated where
 *   they hold counter values (below).
 * - General Configuration (spec 2.3.5): LEG_RT_CNF is the guest's. ENABLE_CNF
 *   is virtual: the physical counter always runs (the tick needs it). While
 *   the guest has it off, its counter reads frozen and its comparators'
 *   interrupts are held off physically (spec: "halt main count and disable
 *   all timer interrupts").
 * - Main counter (spec 2.3.7): the guest's is the physical one plus an
 *   offset that changes only when the guest writes the counter. Comparator
 *   values are translated by the same offset (spec 2.3.9), the periodic
 *   increment ("the value last written") is not.
 * - General Interrupt Status (spec 2.3.6): bits mapped like the comparators;
 *   the taken comparator's bit is never seen nor cleared by the guest.
 * - FSB delivery (spec 2.3.10): the HPET writes FSB_INT_VAL to FSB_INT_ADDR
 *   in memory, a DMA write the dirty log would never see and that could land
 *   in the hypervisor: only an MSI address (0xFEExxxxx) with a fixed,
 *   lowest-priority or NMI delivery mode is accepted (Intel SDM Vol. 3A,
 *   11.11 "Message Signalled Interrupts"; INIT or SMI would take a CPU away).
 *
 * Writes the policy refuses are dropped (the rest of the register's write
 * applies), counted and logged; the guest goes on as on hardware that
 * ignores a write. All access sizes other than aligned 4 and 8 bytes are
 * refused by the caller (#GP), as are instructions it cannot decode.
 */
#ifndef PT_HV_VHPET_H
#define PT_HV_VHPET_H

#include "drivers/hpet.h"

#include <pt/lock.h>
#include <pt/types.h>

struct vhpet {
	struct hpet *h;
	unsigned int taken;    /* the physical comparator the tick owns */
	unsigned int nr_guest; /* comparators the guest sees */
	u64 counter_mask;      /* ~0, or 0xffffffff for a 32-bit main counter */
	bool enabled;	       /* the guest's ENABLE_CNF */
	u64 offset;	       /* guest counter = physical + offset (while enabled) */
	u64 frozen;	       /* the guest's counter while it has it halted */
	u32 int_enb;	       /* bit g: the guest set Tn_INT_ENB_CNF of its comparator g */
	/* Bit g: Tn_VAL_SET_CNF written, the next comparator write sets the accumulator. */
	u32 val_set;
	/* The value last written to periodic comparator g (its increment), and which are known. */
	u64 period[HPET_MAX_TIMERS];
	u32 period_known;
	pt_spinlock_t lock; /* vCPUs on several CPUs */
	u64 accesses;	    /* guest accesses emulated */
	u64 refused;	    /* guest writes (or parts of them) refused */
};

/*
 * Takes over the guest's view of `h`, whose comparator h->timer the tick is
 * about to program (call before hpet_tick_start, which starts the counter).
 * The guest's ENABLE_CNF and counter start as the firmware left them. -1
 * with *why if the HPET cannot be shared (the taken comparator is 0 or 1,
 * or it is the only one).
 */
int vhpet_init(struct vhpet *vh, struct hpet *h, const char **why);
/* The General Capabilities and ID register's low half as the guest sees it. */
u32 vhpet_guest_gcap_lo(const struct vhpet *vh);
/* A guest read of `size` (4 or 8, aligned) bytes at offset `off` of the HPET page. */
u64 vhpet_read(struct vhpet *vh, u32 off, unsigned int size);
/*
 * A guest write. 0, or 1 if (part of) it was refused, with *why saying what
 * (the caller logs it); the rest of the write applies.
 */
int vhpet_write(struct vhpet *vh, u32 off, unsigned int size, u64 val, const char **why);

#endif /* PT_HV_VHPET_H */
