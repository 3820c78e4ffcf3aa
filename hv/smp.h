/* SPDX-License-Identifier: MIT */
/*
 * Many vCPUs, one per CPU: how one CPU reaches the others.
 *
 * A kick is an NMI the hypervisor sends to a CPU that runs its vCPU in the
 * guest: NMIs are intercepted, so it exits whatever the guest does
 * (interrupts off included), and the exit path sees why (a TLB flush, a
 * pause, an INIT). The host itself keeps GIF = 0 (SVM), so a kick that
 * reaches a CPU in the host waits until its next VMRUN, which then exits at
 * once: no kick is lost and none needs an answer.
 *
 * Remote TLB flush (KVM's kvm_flush_remote_tlbs, done with a generation
 * instead of a request bit): vm->tlb_gen is bumped; every vCPU compares it
 * with the generation it flushed for (vcpu->tlb_gen) right before each
 * entry, after publishing mode = IN_GUEST; the flusher kicks every vCPU
 * that is IN_GUEST with an older generation and waits until each has left
 * the guest or re-entered with a flush. Both sides use sequentially
 * consistent accesses (a store then a load each: Dekker's pattern), so
 * either the flusher sees the vCPU in the guest, or the vCPU sees the new
 * generation before its entry. Nothing is reported done, and no bitmap
 * leaves, before smp_flush_tlbs returns: docs/smp.md has the argument.
 */
#ifndef PT_HV_SMP_H
#define PT_HV_SMP_H

#include "hv/memslot.h"
#include "hv/vcpu.h"

/* The entry/exit edges of the run loop (hv/hv.c), on the vCPU's own CPU. */
void smp_vcpu_enter(struct vcpu *v);
void smp_vcpu_exit(struct vcpu *v);
/*
 * Before each entry, on the vCPU's own CPU: a pause parks it here, an INIT
 * puts it into wait-for-SIPI, a start-up IPI starts it at its vector.
 */
void smp_vcpu_requests(struct vcpu *v);

/*
 * Hardware dirty logging (VMX PML) is per CPU, and its log and VMCS can only
 * be touched on that CPU. smp_set_pml: every vCPU runs with PML `on` from
 * its next entry; on return none is in the guest with another setting. -1
 * if the backend has no PML. smp_drain_pml: on return every vCPU's log
 * has been drained into the dirty log, each on its own CPU (kicked out of
 * the guest, or at its entry edge or while parked); `self` (the caller's
 * vCPU, outside the guest) is drained here.
 */
int smp_set_pml(struct vm *vm, bool on);
void smp_drain_pml(struct vm *vm, struct vcpu *self);

/* A real INIT reached v (its own CPU): it waits for a start-up IPI at its next entry edge. */
void smp_vcpu_init_signal(struct vcpu *v);

/* Every vCPU's TLB is clean of translations older than this call on return. */
void smp_flush_tlbs(struct vm *vm);

/* Makes `t` leave the guest soon (an NMI, at most one in flight). */
void smp_kick(struct vcpu *t);
/* On an NMI exit: was it (taken for) a kick? Consumes it. */
bool smp_claim_kick(struct vcpu *v);

/*
 * Holds every vCPU but the caller's out of the guest (parked in its host
 * loop) / lets them go. The caller is the management CPU, outside the guest.
 */
void smp_pause_others(struct vm *vm, struct vcpu *self);
/*
 * The guest is stopped for good (vm->stopped): vCPU v, not the boot CPU,
 * parks as for a pause (registers readable, PML drains served) and never
 * leaves. Never returns.
 */
__attribute__((noreturn)) void smp_park_stopped(struct vcpu *v);
void smp_resume_others(struct vm *vm);

/* Architectural INIT and start-up IPIs to a vCPU, emulated (hv/lapic.c). */
void smp_deliver_init(struct vcpu *t);
void smp_deliver_sipi(struct vcpu *t, u8 vector);

/* The vCPU whose local APIC has this ID, or NULL. */
struct vcpu *smp_vcpu_by_apic_id(struct vm *vm, u32 apic_id);

#endif /* PT_HV_SMP_H */
