/* SPDX-License-Identifier: MIT */
/*
 * x86-64 CPU primitives: CPUID, MSRs, control registers, descriptor tables,
 * port I/O. Thin inline wrappers; nothing here decides policy.
 */
#ifndef PT_ARCH_X86_CPU_H
#define PT_ARCH_X86_CPU_H

#include <pt/types.h>

#define X86_CR0_PE  BIT_ULL(0)
#define X86_CR0_ET  BIT_ULL(4)
#define X86_CR0_NW  BIT_ULL(29)
#define X86_CR0_CD  BIT_ULL(30)
/* IA32_PAT after reset: WB, WT, UC-, UC, twice (Intel SDM Vol. 3A, 12.12.4). */
#define X86_PAT_RESET 0x0007040600070406ull
#define X86_CR0_PG  BIT_ULL(31)
#define X86_CR4_PAE BIT_ULL(5)

#define X86_EFLAGS_TF	 BIT_ULL(8)
#define X86_EFLAGS_IF	 BIT_ULL(9)
#define X86_EFLAGS_DF	 BIT_ULL(10)
#define X86_EFLAGS_RF	 BIT_ULL(16)
#define X86_EFLAGS_FIXED BIT_ULL(1)

#define MSR_IA32_PAT	   0x00000277u
#define MSR_EFER	   0xc0000080u
#define MSR_FS_BASE	   0xc0000100u
#define MSR_GS_BASE	   0xc0000101u
#define MSR_KERNEL_GS_BASE 0xc0000102u
#define MSR_VM_CR	   0xc0010114u
#define MSR_VM_HSAVE_PA	   0xc0010117u

#define EFER_SCE  BIT_ULL(0)
#define EFER_LME  BIT_ULL(8)
#define EFER_LMA  BIT_ULL(10)
#define EFER_NXE  BIT_ULL(11)
#define EFER_SVME BIT_ULL(12)

/* AMD APM Vol. 2, 15.30.1 "VM_CR MSR (C001_0114h)". */
#define VM_CR_LOCK   BIT_ULL(3)
#define VM_CR_SVMDIS BIT_ULL(4)

/* Exception vectors (AMD APM Vol. 2, 8.2 "Vectors"). */
enum x86_vector {
	X86_VEC_DE = 0,
	X86_VEC_DB = 1,
	X86_VEC_NMI = 2,
	X86_VEC_BP = 3,
	X86_VEC_OF = 4,
	X86_VEC_UD = 6,
	X86_VEC_DF = 8,
	X86_VEC_GP = 13,
	X86_VEC_PF = 14,
	X86_VEC_MC = 18,
	X86_VEC_COUNT = 32,
};

/*
 * Fault-class exceptions: the saved RIP is the faulting instruction, which
 * runs again after the handler. Not faults: NMI (an interrupt), #DB as the
 * hypervisor would raise it (a trap), #BP and #OF (traps), #DF and #MC
 * (aborts). Intel SDM Vol. 3A, 6.15 "Exception and Interrupt Reference";
 * reserved vectors count as faults.
 */
static inline bool x86_vector_is_fault(u8 vec)
{
	return vec < X86_VEC_COUNT && vec != X86_VEC_DB && vec != X86_VEC_NMI &&
	       vec != X86_VEC_BP && vec != X86_VEC_OF && vec != X86_VEC_DF && vec != X86_VEC_MC;
}

struct x86_cpuid {
	u32 eax, ebx, ecx, edx;
};

static inline struct x86_cpuid x86_cpuid(u32 leaf, u32 subleaf)
{
	struct x86_cpuid r;

	__asm__ volatile("cpuid"
			 : "=a"(r.eax), "=b"(r.ebx), "=c"(r.ecx), "=d"(r.edx)
			 : "a"(leaf), "c"(subleaf));
	return r;
}

static inline u64 x86_rdmsr(u32 msr)
{
	u32 lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}

static inline void x86_wrmsr(u32 msr, u64 val)
{
	__asm__ volatile("wrmsr" : : "c"(msr), "a"((u32)val), "d"((u32)(val >> 32)) : "memory");
}

/*
 * RDMSR/WRMSR that survive a #GP: the host IDT's #GP handler resumes at the
 * fixup (arch/x86/host.c). Used only to forward a guest's access to an MSR
 * the hypervisor does not know; 0 on success, -1 if the CPU raised #GP.
 */
int x86_rdmsr_safe(u32 msr, u64 *val);
int x86_wrmsr_safe(u32 msr, u64 val);

#define X86_READ_REG(name, insn)                                                                   \
	static inline u64 name(void)                                                               \
	{                                                                                          \
		u64 v;                                                                             \
		__asm__ volatile(insn : "=r"(v));                                                  \
		return v;                                                                          \
	}
X86_READ_REG(x86_read_cr0, "mov %%cr0, %0")
X86_READ_REG(x86_read_cr2, "mov %%cr2, %0")
X86_READ_REG(x86_read_cr3, "mov %%cr3, %0")
X86_READ_REG(x86_read_cr4, "mov %%cr4, %0")
X86_READ_REG(x86_read_dr7, "mov %%dr7, %0")
X86_READ_REG(x86_read_rflags, "pushfq; popq %0")
#undef X86_READ_REG

static inline void x86_write_cr3(u64 v)
{
	__asm__ volatile("mov %0, %%cr3" : : "r"(v) : "memory");
}

#define X86_READ_SEG(name, seg)                                                                    \
	static inline u16 name(void)                                                               \
	{                                                                                          \
		u16 v;                                                                             \
		__asm__ volatile("mov %%" seg ", %0" : "=r"(v));                                   \
		return v;                                                                          \
	}
X86_READ_SEG(x86_read_cs, "cs")
X86_READ_SEG(x86_read_ss, "ss")
X86_READ_SEG(x86_read_ds, "ds")
X86_READ_SEG(x86_read_es, "es")
X86_READ_SEG(x86_read_fs, "fs")
X86_READ_SEG(x86_read_gs, "gs")
#undef X86_READ_SEG

static inline u16 x86_read_tr(void)
{
	u16 v;

	__asm__ volatile("str %0" : "=r"(v));
	return v;
}

static inline u16 x86_read_ldtr(void)
{
	u16 v;

	__asm__ volatile("sldt %0" : "=r"(v));
	return v;
}

struct __attribute__((packed)) x86_dtr {
	u16 limit;
	u64 base;
};

static inline struct x86_dtr x86_sgdt(void)
{
	struct x86_dtr d;

	__asm__ volatile("sgdt %0" : "=m"(d));
	return d;
}

static inline struct x86_dtr x86_sidt(void)
{
	struct x86_dtr d;

	__asm__ volatile("sidt %0" : "=m"(d));
	return d;
}

static inline void x86_lgdt(const struct x86_dtr *d)
{
	__asm__ volatile("lgdt %0" : : "m"(*d) : "memory");
}

static inline void x86_lidt(const struct x86_dtr *d)
{
	__asm__ volatile("lidt %0" : : "m"(*d) : "memory");
}

static inline void x86_outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 x86_inb(u16 port)
{
	u8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline void x86_outw(u16 port, u16 v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void x86_outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline u32 x86_inl(u16 port)
{
	u32 v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u64 x86_rdtsc(void)
{
	u32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}

static inline void x86_cli(void)
{
	__asm__ volatile("cli" ::: "memory");
}

static inline void x86_pause(void)
{
	__asm__ volatile("pause");
}

static inline __attribute__((noreturn)) void x86_halt_forever(void)
{
	for (;;)
		__asm__ volatile("cli; hlt");
}

/* Physical address width from CPUID 0x80000008 EAX[7:0]. */
static inline unsigned int x86_phys_addr_bits(void)
{
	if (x86_cpuid(0x80000000, 0).eax < 0x80000008)
		return 36;
	return x86_cpuid(0x80000008, 0).eax & 0xff;
}

static inline bool x86_has_1g_pages(void)
{
	return x86_cpuid(0x80000001, 0).edx & BIT_ULL(26);
}

#endif /* PT_ARCH_X86_CPU_H */
