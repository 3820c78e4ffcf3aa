/* SPDX-License-Identifier: MIT */
/*
 * The VMX instructions as typed inline functions. Each reports failure
 * (SDM Vol. 3C 31.2 "Conventions": VMfailInvalid sets CF, VMfailValid sets
 * ZF) instead of ignoring it; INVEPT and INVVPID take an enum, never a bare
 * number, so the wrong invalidation type cannot be passed silently.
 */
#ifndef PT_ARCH_X86_VMX_VMX_INSN_H
#define PT_ARCH_X86_VMX_VMX_INSN_H

#include "arch/x86/vmx/vmcs.h"

#include <pt/types.h>

/* 0 on success, -1 on VMfailInvalid or VMfailValid. */
static inline int vmx_on(hpa_t region)
{
	bool fail;

	__asm__ volatile("vmxon %1; setna %0" : "=qm"(fail) : "m"(region) : "cc", "memory");
	return fail ? -1 : 0;
}

static inline int vmx_vmclear(hpa_t vmcs)
{
	bool fail;

	__asm__ volatile("vmclear %1; setna %0" : "=qm"(fail) : "m"(vmcs) : "cc", "memory");
	return fail ? -1 : 0;
}

static inline int vmx_vmptrld(hpa_t vmcs)
{
	bool fail;

	__asm__ volatile("vmptrld %1; setna %0" : "=qm"(fail) : "m"(vmcs) : "cc", "memory");
	return fail ? -1 : 0;
}

/* The current VMCS's physical address (all ones if none). VMX operation only. */
static inline hpa_t vmx_vmptrst(void)
{
	hpa_t cur = ~0ull;

	__asm__ volatile("vmptrst %0" : "=m"(cur) : : "cc");
	return cur;
}

/* 0 on success; -1 if the field does not exist or no VMCS is current. */
static inline int __vmcs_write(enum vmcs_field field, u64 val)
{
	bool fail;

	__asm__ volatile("vmwrite %2, %1; setna %0"
			 : "=qm"(fail)
			 : "r"((u64)field), "rm"(val)
			 : "cc", "memory");
	return fail ? -1 : 0;
}

static inline int __vmcs_read(enum vmcs_field field, u64 *val)
{
	bool fail;

	__asm__ volatile("vmread %2, %1; setna %0"
			 : "=qm"(fail), "=rm"(*val)
			 : "r"((u64)field)
			 : "cc");
	return fail ? -1 : 0;
}

/* SDM 30.3 "INVEPT", Table 30-1: the invalidation types. */
enum invept_type {
	INVEPT_SINGLE_CONTEXT = 1,
	INVEPT_ALL_CONTEXT = 2,
};

struct invept_desc {
	u64 eptp;
	u64 reserved;
};
_Static_assert(sizeof(struct invept_desc) == 16, "INVEPT descriptor is 128 bits");

static inline int vmx_invept(enum invept_type type, u64 eptp)
{
	struct invept_desc d = {eptp, 0};
	bool fail;

	__asm__ volatile("invept %1, %2; setna %0"
			 : "=qm"(fail)
			 : "m"(d), "r"((u64)type)
			 : "cc", "memory");
	return fail ? -1 : 0;
}

/* SDM 30.3 "INVVPID": the invalidation types. */
enum invvpid_type {
	INVVPID_INDIVIDUAL_ADDRESS = 0,
	INVVPID_SINGLE_CONTEXT = 1,
	INVVPID_ALL_CONTEXT = 2,
	INVVPID_SINGLE_CONTEXT_RETAIN_GLOBALS = 3,
};

struct invvpid_desc {
	u64 vpid; /* bits 15:0; the rest reserved, zero */
	u64 linear_address;
};
_Static_assert(sizeof(struct invvpid_desc) == 16, "INVVPID descriptor is 128 bits");

static inline int vmx_invvpid(enum invvpid_type type, u16 vpid, u64 linear_address)
{
	struct invvpid_desc d = {vpid, linear_address};
	bool fail;

	__asm__ volatile("invvpid %1, %2; setna %0"
			 : "=qm"(fail)
			 : "m"(d), "r"((u64)type)
			 : "cc", "memory");
	return fail ? -1 : 0;
}

static inline void vmx_write_cr0(u64 v)
{
	__asm__ volatile("mov %0, %%cr0" : : "r"(v) : "memory");
}

static inline void vmx_write_cr4(u64 v)
{
	__asm__ volatile("mov %0, %%cr4" : : "r"(v) : "memory");
}

static inline u64 vmx_xgetbv(u32 index)
{
	u32 lo, hi;

	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(index));
	return ((u64)hi << 32) | lo;
}

static inline void vmx_xsetbv(u32 index, u64 val)
{
	__asm__ volatile("xsetbv" : : "c"(index), "a"((u32)val), "d"((u32)(val >> 32)) : "memory");
}

#endif /* PT_ARCH_X86_VMX_VMX_INSN_H */
