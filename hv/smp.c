/* SPDX-License-Identifier: MIT */
#include "hv/smp.h"

#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "hv/hv.h"
#include "hv/lapic.h"
#include "hv/log.h"

#include <pt/assert.h>

/*
 * A kicked vCPU normally leaves the guest within microseconds. One that has
 * not after this many TSC cycles (about 10 ms) is sent another NMI: its
 * first may have merged with another NMI that was claimed for something
 * else (an NMI is a latch, not a counter). A stray second NMI is reflected
 * to the guest like any foreign one (docs/smp.md "Kicks").
 */
#define SMP_KICK_RESEND_TSC 25000000ull
#define SMP_WAIT_LOG_TSC    2500000000ull /* about 1 s: say who we wait for */

#define ld(p)	   __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define st(p, v)   __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)
#define xchg(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)

void smp_vcpu_enter(struct vcpu *v)
{
	u32 pml;
	u64 gen;

	/*
	 * The PML setting is read after IN_GUEST is published, as tlb_gen
	 * (smp_set_pml waits like smp_flush_tlbs). Changing it may drain the
	 * log into the mmu, under its lock: never while IN_GUEST, which the
	 * flusher waits out without lock (docs/smp.md), so out and back in.
	 */
	for (;;) {
		st(&v->mode, VCPU_IN_GUEST);
		pml = ld(&v->vm->pml_on);
		if (pml == v->pml_on)
			break;
		st(&v->mode, VCPU_OUTSIDE_GUEST);
		if (v->ops->set_pml)
			v->ops->set_pml(v, pml);
		st(&v->pml_on, pml);
	}
	gen = ld(&v->vm->tlb_gen);
	if (gen != v->tlb_gen) {
		v->stats.tlb_flushes++;
		v->ops->flush_tlb(v);
		st(&v->tlb_gen, gen);
	}
}

void smp_vcpu_exit(struct vcpu *v)
{
	st(&v->mode, VCPU_OUTSIDE_GUEST);
}

void smp_vcpu_init_signal(struct vcpu *v)
{
	st(&v->init_pending, 1);
}

void smp_kick(struct vcpu *t)
{
	if (!xchg(&t->kick_inflight, 1))
		x86_apic_send_ipi(t->apic_id, APIC_ICR_DM_NMI);
}

bool smp_claim_kick(struct vcpu *v)
{
	return xchg(&v->kick_inflight, 0);
}

/*
 * Waits until done(t) for every online vCPU but `self`, kicking those in
 * the guest (again after SMP_KICK_RESEND_TSC). Never gives up: a vCPU in
 * the guest always exits on an NMI (intercepted whatever the guest's
 * RFLAGS.IF or NMI blocking), and one in the host always reaches its
 * entry edge, where every request is seen.
 */
static void smp_wait(struct vm *vm, struct vcpu *self, bool (*done)(struct vcpu *t, u64 arg),
		     u64 arg, const char *what)
{
	u64 start = x86_rdtsc(), last_kick = start, logged = start;
	u32 i;

	for (;;) {
		bool all = true, resend = x86_rdtsc() - last_kick > SMP_KICK_RESEND_TSC;

		for (i = 0; i < vm->nr_vcpus; i++) {
			struct vcpu *t = vm->vcpus[i];

			if (!t || t == self || !ld(&t->online) || done(t, arg))
				continue;
			all = false;
			if (ld(&t->mode) == VCPU_IN_GUEST) {
				if (resend)
					st(&t->kick_inflight, 0);
				smp_kick(t);
			}
			if (x86_rdtsc() - logged > SMP_WAIT_LOG_TSC) {
				logged = x86_rdtsc();
				hv_log("smp: still waiting for vCPU %u (%s), mode %u", t->id, what,
				       ld(&t->mode));
			}
		}
		if (all)
			return;
		if (resend)
			last_kick = x86_rdtsc();
		x86_pause();
	}
}

/* Not in the guest (it applies the setting before it enters again), or applied. */
static bool smp_pml_set(struct vcpu *t, u64 on)
{
	return ld(&t->mode) != VCPU_IN_GUEST || ld(&t->pml_on) == on;
}

/* Only a drain counts: the log lives on in a vCPU that is out of the guest. */
static bool smp_pml_drained(struct vcpu *t, u64 gen)
{
	return ld(&t->pml_drain_gen) >= gen;
}

static bool smp_flushed(struct vcpu *t, u64 gen)
{
	return ld(&t->mode) != VCPU_IN_GUEST || ld(&t->tlb_gen) >= gen;
}

void smp_flush_tlbs(struct vm *vm)
{
	u64 gen = __atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_SEQ_CST);

#ifdef PT_NEGATIVE_CONTROL_NO_SHOOTDOWN
	/*
	 * Only in build/pagetrail-noshootdown.efi, the negative control of
	 * tests/qemu/test_dirty_oracle_smp.sh, never shipped: each vCPU
	 * flushes at its next entry, but nobody makes the ones in the guest
	 * exit, so they go on using what their TLBs hold. The oracle must
	 * see the writes that this loses.
	 */
	return;
#endif
	/* The caller's own vCPU, if any, is in the host: it flushes at its next entry. */
	smp_wait(vm, NULL, smp_flushed, gen, "TLB flush");
}

int smp_set_pml(struct vm *vm, bool on)
{
	u32 i;

	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i] && !vm->vcpus[i]->ops->set_pml)
			return -1;
	st(&vm->pml_on, on);
	smp_wait(vm, NULL, smp_pml_set, on, "PML on/off");
	return 0;
}

/* On the vCPU's own CPU, outside the guest: a drain asked for is done here. */
static void smp_serve_pml_drain(struct vcpu *v)
{
	u64 gen = ld(&v->vm->pml_drain_gen);

	if (gen == ld(&v->pml_drain_gen))
		return;
	if (v->ops->pml_flush)
		v->ops->pml_flush(v);
	st(&v->pml_drain_gen, gen);
}

void smp_drain_pml(struct vm *vm, struct vcpu *self)
{
	u64 gen = __atomic_add_fetch(&vm->pml_drain_gen, 1, __ATOMIC_SEQ_CST);

	if (self)
		smp_serve_pml_drain(self);
	smp_wait(vm, self, smp_pml_drained, gen, "PML drain");
}

static bool smp_parked(struct vcpu *t, u64 unused)
{
	(void)unused;
	return ld(&t->parked);
}

void smp_pause_others(struct vm *vm, struct vcpu *self)
{
	st(&vm->pause_req, 1);
	smp_wait(vm, self, smp_parked, 0, "pause");
}

void smp_resume_others(struct vm *vm)
{
	st(&vm->pause_req, 0);
}

void smp_deliver_init(struct vcpu *t)
{
	st(&t->init_pending, 1);
	smp_kick(t);
}

/*
 * A start-up IPI counts only for a CPU in wait-for-SIPI, or on its way there
 * (an INIT not yet seen); the first one wins, later ones are ignored as on
 * hardware (Intel SDM Vol. 3A, 9.4.4.1 "Typical BSP Initialization
 * Sequence": the second SIPI finds the AP running and is dropped).
 */
void smp_deliver_sipi(struct vcpu *t, u8 vector)
{
	u32 none = 0;

	if (ld(&t->run_state) != VCPU_WAIT_FOR_SIPI && !ld(&t->init_pending))
		return;
	__atomic_compare_exchange_n(&t->sipi, &none, 0x100u | vector, false, __ATOMIC_SEQ_CST,
				    __ATOMIC_SEQ_CST);
}

/* Parked in the host while the management side pauses the VM. */
static void smp_park_while_paused(struct vcpu *v)
{
	if (!ld(&v->vm->pause_req))
		return;
	/* Only this CPU can read them (REGS of a paused vCPU, hv/control.c). */
	v->ops->get_sregs(v, &v->sregs);
	st(&v->sregs_valid, 1);
	st(&v->parked, 1);
	while (ld(&v->vm->pause_req)) {
		smp_serve_pml_drain(v); /* a harvest while paused */
		x86_pause();
	}
	st(&v->sregs_valid, 0);
	st(&v->parked, 0);
}

void smp_park_stopped(struct vcpu *v)
{
	/* pause_req stays set once the VM is stopped (RESUME is refused). */
	for (;;) {
		smp_park_while_paused(v);
		x86_pause();
	}
}

void smp_vcpu_requests(struct vcpu *v)
{
	u32 sipi;

	smp_serve_pml_drain(v);
	if (v->id != 0)
		smp_park_while_paused(v);
	if (ld(&v->init_pending)) {
		if (v->id == 0) {
			/* The BSP does not wait for SIPI after INIT; nobody sends it one. */
			xchg(&v->init_pending, 0);
			hv_log("smp: INIT to the boot CPU ignored");
		} else {
			/*
			 * Wait-for-SIPI first, then the INIT is taken: a start-up
			 * IPI counts while either is visible (smp_deliver_sipi),
			 * so none is dropped while the APIC is being reset.
			 */
			st(&v->run_state, VCPU_WAIT_FOR_SIPI);
			xchg(&v->init_pending, 0);
			/* On its own CPU: what INIT resets in this CPU's local APIC. */
			lapic_reset_on_init();
			hv_log("smp: vCPU %u: INIT, waiting for a start-up IPI", v->id);
		}
	}
	if (ld(&v->run_state) != VCPU_WAIT_FOR_SIPI)
		return;
	/* Parked counts as paused: no guest instruction runs here. */
	st(&v->parked, 1);
	/*
	 * Runnable before the start-up IPI is taken: a later one (Linux sends
	 * two) is then dropped by smp_deliver_sipi instead of staying behind
	 * for this vCPU's next INIT.
	 */
	for (;;) {
		if (ld(&v->sipi)) {
			st(&v->run_state, VCPU_RUNNABLE);
			sipi = xchg(&v->sipi, 0);
			break;
		}
		xchg(&v->init_pending, 0); /* another INIT: still waiting */
		smp_serve_pml_drain(v);
		x86_pause();
	}
	while (ld(&v->vm->pause_req)) {
		smp_serve_pml_drain(v);
		x86_pause();
	}
	st(&v->parked, 0);
	v->ops->start_at_sipi(v, (u8)sipi);
	hv_log("smp: vCPU %u: start-up IPI, starts at 0x%x:0000", v->id, (sipi & 0xffu) << 8);
}

struct vcpu *smp_vcpu_by_apic_id(struct vm *vm, u32 apic_id)
{
	u32 i;

	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i] && vm->vcpus[i]->apic_id == apic_id)
			return vm->vcpus[i];
	return NULL;
}
