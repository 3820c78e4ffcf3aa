/* SPDX-License-Identifier: MIT */
/*
 * Forced first (-include) into every file of the fuzz_guest target: the CPU
 * primitives hv/ reaches the hardware with (CPUID, RDMSR/WRMSR, the local
 * APIC) become calls into the fuzzer (tests/fuzz/fuzz_guest.c), which answers
 * with the fuzzer's bytes and checks what the hypervisor asked of the
 * hardware. The real headers stay the source of every constant; their inline
 * functions are renamed away unused.
 */
#ifndef PT_TESTS_FUZZ_GUEST_SHIM_H
#define PT_TESTS_FUZZ_GUEST_SHIM_H

#define x86_cpuid(l, s)		pt_hw_cpuid_unused(l, s)
#define x86_rdmsr(m)		pt_hw_rdmsr_unused(m)
#define x86_wrmsr(m, v)		pt_hw_wrmsr_unused(m, v)
#define x86_apic_x2apic_mode pt_hw_x2apic_mode_unused
#define x86_apic_read(o)	pt_hw_apic_read_unused(o)
#define x86_apic_write(o, v)	pt_hw_apic_write_unused(o, v)
#define x86_apic_send_ipi(d, l) pt_hw_apic_send_ipi_unused(d, l)
#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#undef x86_cpuid
#undef x86_rdmsr
#undef x86_wrmsr
#undef x86_apic_x2apic_mode
#undef x86_apic_read
#undef x86_apic_write
#undef x86_apic_send_ipi

struct x86_cpuid fz_cpuid(u32 leaf, u32 subleaf);
u64 fz_rdmsr(u32 msr);
void fz_wrmsr(u32 msr, u64 val);
bool fz_x2apic_mode(void);
u32 fz_apic_read(u32 off);
void fz_apic_write(u32 off, u32 val);
void fz_apic_send_ipi(u32 dest, u32 lo);

#define x86_cpuid(l, s)		fz_cpuid(l, s)
#define x86_rdmsr(m)		fz_rdmsr(m)
#define x86_wrmsr(m, v)		fz_wrmsr(m, v)
#define x86_apic_x2apic_mode fz_x2apic_mode
#define x86_apic_read(o)	fz_apic_read(o)
#define x86_apic_write(o, v)	fz_apic_write(o, v)
#define x86_apic_send_ipi(d, l) fz_apic_send_ipi(d, l)

#endif /* PT_TESTS_FUZZ_GUEST_SHIM_H */
