/* SPDX-License-Identifier: MIT */
#include "hv/lapic.h"

#include "arch/x86/apic.h"
#include "hv/guest_mem.h"
#include "hv/hv.h"
#include "hv/insn.h"
#include "hv/log.h"
#include "hv/smp.h"

#define LAPIC_LOG_LIMIT 16
static u32 lapic_logged;

#define lapic_log(...)                                                                             \
	do {                                                                                       \
		if (__atomic_fetch_add(&lapic_logged, 1, __ATOMIC_RELAXED) < LAPIC_LOG_LIMIT)      \
			hv_log(__VA_ARGS__);                                                       \
	} while (0)

static bool lapic_dest_matches(const struct vcpu *from, u32 apic_id, u32 dest, u32 lo,
			       bool x2apic)
{
	u32 broadcast = x2apic ? 0xffffffffu : 0xffu;

	switch (lo & APIC_ICR_SHORTHAND_MASK) {
	case APIC_ICR_SHORTHAND_SELF:
		return apic_id == from->apic_id;
	case APIC_ICR_SHORTHAND_ALL:
		return true;
	case APIC_ICR_SHORTHAND_OTHERS:
		return apic_id != from->apic_id;
	}
	return dest == broadcast || dest == apic_id;
}

/*
 * The guest's ICR write: INIT and start-up IPIs to vCPUs are emulated; to a
 * CPU that is not a vCPU (not taken over) they go to the hardware, one
 * physical-destination IPI per CPU; every other IPI is sent unchanged.
 */
static void lapic_send(struct vcpu *v, u32 dest, u32 lo, bool x2apic)
{
	struct vm *vm = v->vm;
	const struct hv_boot_info *bi = hv.bi;
	u32 dm = lo & APIC_ICR_DM_MASK, i;

	if (dm != APIC_ICR_DM_INIT && dm != APIC_ICR_DM_STARTUP) {
		x86_apic_send_ipi(dest, lo);
		return;
	}
	/*
	 * INIT level de-assert (level 0, trigger level): only synchronizes
	 * arbitration IDs on P6-era CPUs (Intel SDM Vol. 3A, 11.6.1), no
	 * effect on current ones. Nothing to emulate.
	 */
	if (dm == APIC_ICR_DM_INIT && !(lo & APIC_ICR_LEVEL_ASSERT) && (lo & APIC_ICR_TRIGGER_LEVEL))
		return;
	if ((lo & APIC_ICR_SHORTHAND_MASK) == APIC_ICR_SHORTHAND_NONE &&
	    (lo & APIC_ICR_DEST_LOGICAL)) {
		/* Which CPUs a logical destination names is in their LDRs: not known here. */
		lapic_log("lapic: %s IPI with a logical destination (0x%x) dropped",
			  dm == APIC_ICR_DM_INIT ? "INIT" : "start-up", dest);
		return;
	}
	for (i = 0; i < bi->nr_cpus && i < HV_MAX_CPUS; i++) {
		const struct hv_cpu *c = &bi->cpus[i];
		struct vcpu *t;

		if (!lapic_dest_matches(v, c->apic_id, dest, lo, x2apic))
			continue;
		t = smp_vcpu_by_apic_id(vm, c->apic_id);
		if (!t || !__atomic_load_n(&t->online, __ATOMIC_SEQ_CST)) {
			x86_apic_send_ipi(c->apic_id, (lo & ~APIC_ICR_SHORTHAND_MASK &
						       ~(u32)APIC_ICR_DEST_LOGICAL));
			continue;
		}
		if (dm == APIC_ICR_DM_INIT)
			smp_deliver_init(t);
		else
			smp_deliver_sipi(t, (u8)(lo & APIC_ICR_VECTOR_MASK));
	}
}

void lapic_handle_write_fault(struct vcpu *v, gpa_t gpa)
{
	u32 off = (u32)(gpa & 0xfff), val;
	struct insn_store st;
	u8 b[15];
	unsigned int n = hv_guest_fetch_insn(v, b, sizeof(b));

	/* A guest whose APIC write cannot be emulated cannot go on correctly. */
	if (!n || insn_decode_store(b, n, hv_guest_insn_mode(v), &st) || (off & 3) || st.size < 4)
		hv_guest_fatal(v,
			       "FATAL: vCPU %u: cannot emulate the APIC write at rip=0x%lx "
			       "gpa=0x%lx",
			       v->id, v->rip, gpa);
	val = (u32)(st.has_imm ? st.imm : v->gprs.r[st.reg]);
	/*
	 * In x2APIC mode the memory-mapped interface is gone (Intel SDM Vol. 3A,
	 * 11.12.1 "Detecting and Enabling x2APIC Mode"): the store reaches no
	 * register. Forwarding it would turn its offset into an MSR write
	 * (x86_apic_write): one that does not exist (#GP in the hypervisor), or
	 * the ICR from a reserved offset such as 0x304, an INIT the emulation
	 * never sees.
	 */
	if (x86_apic_x2apic_mode()) {
		lapic_log("lapic: vCPU %u: store to the xAPIC page (offset 0x%x) in x2APIC mode "
			  "dropped",
			  v->id, off);
		hv_guest_skip_insn(v, st.len);
		return;
	}
	switch (off) {
	case APIC_ICR_HI:
		/* Kept for the low half's write; the hardware's is the host's too (kicks). */
		v->icr_high = val;
		x86_apic_write(APIC_ICR_HI, val);
		break;
	case APIC_ICR_LO:
		lapic_send(v, v->icr_high >> 24, val, false);
		break;
	default:
		x86_apic_write(off, val);
		break;
	}
	hv_guest_skip_insn(v, st.len);
}

void lapic_write_x2apic_icr(struct vcpu *v, u64 val)
{
	lapic_send(v, (u32)(val >> 32), (u32)val, true);
}

int lapic_write_apic_base(struct vcpu *v, u64 val)
{
	/* The host reaches the APIC at the architectural base (arch/x86/apic.h). */
	if ((val & APIC_BASE_ADDR_MASK) != APIC_DEFAULT_BASE) {
		lapic_log("lapic: vCPU %u: moving the APIC to 0x%lx refused (#GP)", v->id,
			  (u64)(val & APIC_BASE_ADDR_MASK));
		return -1;
	}
	/* Reserved bits or an invalid mode change: the CPU's #GP becomes the guest's. */
	return x86_wrmsr_safe(MSR_IA32_APIC_BASE, val) ? -1 : 0;
}

/*
 * What INIT resets in the local APIC that the guest's start-up code may not
 * reset itself (Intel SDM Vol. 3A, 11.4.7.1 "Local APIC State After
 * Power-Up or Reset", 11.4.7.3 "Local APIC State After an INIT Reset"):
 * every LVT masked, the timer stopped, TPR 0, software-disabled, and no
 * interrupt left in service. The APIC ID and mode stay.
 */
void lapic_reset_on_init(void)
{
	u32 off, isr, i;

	for (off = APIC_LVT_TIMER; off <= APIC_LVT_ERROR; off += 0x10)
		x86_apic_write(off, APIC_LVT_MASKED);
	x86_apic_write(APIC_TMICT, 0);
	x86_apic_write(APIC_TPR, 0);
	for (i = 0; i < 8 * 32; i++) {
		isr = 0;
		for (off = APIC_ISR0; off < APIC_ISR0 + 0x80; off += 0x10)
			isr |= x86_apic_read(off);
		if (!isr)
			break;
		x86_apic_write(APIC_EOI, 0);
	}
	x86_apic_write(APIC_SVR, x86_apic_read(APIC_SVR) & ~(u32)APIC_SVR_ENABLE);
}
