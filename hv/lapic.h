/* SPDX-License-Identifier: MIT */
/*
 * The guest's local APIC, with more than one vCPU: every CPU's APIC is its
 * own and stays the guest's, except for what would take a CPU away from
 * the hypervisor. An INIT resets a CPU outright (QEMU TCG does so even with
 * GIF = 0, docs/smp.md "INIT and start-up IPIs"; hardware holds it only until the
 * hypervisor's next STGI), and a start-up IPI starts it in real mode
 * outside the guest. So the guest's INIT and start-up IPIs to a vCPU never
 * reach the hardware: they are emulated (hv/smp.c), and the target starts
 * at its SIPI vector as a guest.
 *
 * How they are caught: in xAPIC mode the APIC page is mapped read-only in
 * the nested tables (reads reach the CPU's own APIC, as before), every
 * write exits and is decoded (hv/insn.c) and either forwarded to the APIC
 * or, for the ICR, emulated. In x2APIC mode WRMSR to the ICR (0x830) is
 * intercepted. Other IPIs (fixed, NMI, lowest priority, self) are sent as
 * the guest asked.
 */
#ifndef PT_HV_LAPIC_H
#define PT_HV_LAPIC_H

#include "hv/vcpu.h"

/* A write fault on the APIC page: emulated, RIP moved past the store. */
void lapic_handle_write_fault(struct vcpu *v, gpa_t gpa);
/* WRMSR to the x2APIC ICR: emulated. */
void lapic_write_x2apic_icr(struct vcpu *v, u64 val);
/* The guest writes IA32_APIC_BASE: 0, or -1 for a change that is refused (#GP). */
int lapic_write_apic_base(struct vcpu *v, u64 val);
/* On the vCPU's own CPU, at INIT: the APIC state INIT would reset. */
void lapic_reset_on_init(void);

#endif /* PT_HV_LAPIC_H */
