/* SPDX-License-Identifier: MIT */
/*
 * The local APIC, from the host: the CPU's own APIC in xAPIC mode (MMIO at
 * the architectural base, identity-mapped in the host page tables, UC by
 * the firmware's MTRRs) or in x2APIC mode (MSRs 0x800 + offset / 16).
 * Intel SDM Vol. 3A, 11.4 "Local APIC" and 11.12 "Extended XAPIC
 * (x2APIC)"; AMD APM Vol. 2, 16.3 "Local APIC".
 *
 * The host uses it to send NMIs (its kicks, hv/smp.c) and to forward the
 * guest's register writes that it does not emulate (hv/lapic.c). The host
 * never sends INIT or start-up IPIs to a virtualized CPU.
 */
#ifndef PT_ARCH_X86_APIC_H
#define PT_ARCH_X86_APIC_H

#include "arch/x86/cpu.h"

#include <pt/types.h>

#define MSR_IA32_APIC_BASE	0x0000001bu
#define APIC_BASE_BSP		BIT_ULL(8)
#define APIC_BASE_EXTD		BIT_ULL(10) /* x2APIC mode */
#define APIC_BASE_ENABLE	BIT_ULL(11)
#define APIC_BASE_ADDR_MASK	GENMASK_ULL(51, 12)
#define APIC_DEFAULT_BASE	((u64)0xfee00000)
#define MSR_X2APIC_FIRST	0x00000800u
#define MSR_X2APIC_LAST		0x000008ffu
#define MSR_X2APIC_ICR		0x00000830u

/* Register offsets in the xAPIC page (SDM Vol. 3A, Table 11-1). */
#define APIC_ID		0x020
#define APIC_TPR	0x080
#define APIC_EOI	0x0b0
#define APIC_SVR	0x0f0
#define APIC_ISR0	0x100 /* 8 registers of 32 bits, 16 bytes apart */
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define APIC_LVT_TIMER	0x320
#define APIC_LVT_ERROR	0x370
#define APIC_TMICT	0x380

/* ICR low half (SDM Vol. 3A, 11.6.1 "Interrupt Command Register (ICR)"). */
#define APIC_ICR_VECTOR_MASK	  0xffu
#define APIC_ICR_DM_SHIFT	  8
#define APIC_ICR_DM_MASK	  (7u << APIC_ICR_DM_SHIFT)
#define APIC_ICR_DM_FIXED	  (0u << APIC_ICR_DM_SHIFT)
#define APIC_ICR_DM_NMI		  (4u << APIC_ICR_DM_SHIFT)
#define APIC_ICR_DM_INIT	  (5u << APIC_ICR_DM_SHIFT)
#define APIC_ICR_DM_STARTUP	  (6u << APIC_ICR_DM_SHIFT)
#define APIC_ICR_DEST_LOGICAL	  BIT_ULL(11)
#define APIC_ICR_BUSY		  BIT_ULL(12)
#define APIC_ICR_LEVEL_ASSERT	  BIT_ULL(14)
#define APIC_ICR_TRIGGER_LEVEL	  BIT_ULL(15)
#define APIC_ICR_SHORTHAND_SHIFT  18
#define APIC_ICR_SHORTHAND_MASK	  (3u << APIC_ICR_SHORTHAND_SHIFT)
#define APIC_ICR_SHORTHAND_NONE	  (0u << APIC_ICR_SHORTHAND_SHIFT)
#define APIC_ICR_SHORTHAND_SELF	  (1u << APIC_ICR_SHORTHAND_SHIFT)
#define APIC_ICR_SHORTHAND_ALL	  (2u << APIC_ICR_SHORTHAND_SHIFT)
#define APIC_ICR_SHORTHAND_OTHERS (3u << APIC_ICR_SHORTHAND_SHIFT)
#define APIC_LVT_MASKED		  BIT_ULL(16)
#define APIC_SVR_ENABLE		  BIT_ULL(8)

static inline bool x86_apic_x2apic_mode(void)
{
	return x86_rdmsr(MSR_IA32_APIC_BASE) & APIC_BASE_EXTD;
}

static inline u32 x86_apic_read(u32 off)
{
	if (x86_apic_x2apic_mode())
		return (u32)x86_rdmsr(MSR_X2APIC_FIRST + off / 16);
	return *(volatile u32 *)(uintptr_t)(APIC_DEFAULT_BASE + off);
}

static inline void x86_apic_write(u32 off, u32 val)
{
	if (x86_apic_x2apic_mode())
		x86_wrmsr(MSR_X2APIC_FIRST + off / 16, val);
	else
		*(volatile u32 *)(uintptr_t)(APIC_DEFAULT_BASE + off) = val;
}

/*
 * Sends an IPI: `dest` is the destination APIC ID (8 bits in xAPIC mode,
 * 32 in x2APIC mode), `lo` the ICR low half. In xAPIC mode the high half
 * is written first, then the low half, which sends; x2APIC writes both at
 * once (SDM Vol. 3A, 11.12.9 "ICR Operation in x2APIC Mode").
 */
static inline void x86_apic_send_ipi(u32 dest, u32 lo)
{
	if (x86_apic_x2apic_mode()) {
		x86_wrmsr(MSR_X2APIC_ICR, ((u64)dest << 32) | lo);
		return;
	}
	while (x86_apic_read(APIC_ICR_LO) & APIC_ICR_BUSY)
		x86_pause();
	*(volatile u32 *)(uintptr_t)(APIC_DEFAULT_BASE + APIC_ICR_HI) = dest << 24;
	*(volatile u32 *)(uintptr_t)(APIC_DEFAULT_BASE + APIC_ICR_LO) = lo;
}

#endif /* PT_ARCH_X86_APIC_H */
