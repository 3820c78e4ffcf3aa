/* SPDX-License-Identifier: MIT */
/*
 * The host context: the hypervisor's own GDT, IDT and identity-mapped page
 * tables, all in the hidden pool, so that nothing the host runs on can be
 * freed or changed by the firmware or the OS it boots.
 */
#ifndef PT_ARCH_X86_HOST_H
#define PT_ARCH_X86_HOST_H

#include <pt/types.h>

/* Pushed by the stubs in arch/x86/host_entry.S; offsets in asm_offsets.h. */
struct x86_exc_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8;
	u64 rdi, rsi, rbp, rbx, rdx, rcx, rax;
	u64 vector;
	u64 error_code;
	u64 rip, cs, rflags, rsp, ss;
};

#define X86_HOST_CS 0x08
#define X86_HOST_DS 0x10

/*
 * Builds the host page tables (identity map of [0, top) with 2 MiB or
 * 1 GiB pages), GDT and IDT. Returns 0 or -1 when the pool is exhausted.
 */
int x86_host_prepare(u64 top);
/* Loads the host GDT, IDT and CR3 prepared above (host context only). */
void x86_host_enter(void);
/* Pages the host's own page tables use, for the footprint report. */
u64 x86_host_table_pages(void);

void x86_host_exception(struct x86_exc_frame *f);

/*
 * NMIs the host has taken through its IDT. The host holds GIF = 0 (SVM) or
 * runs outside VMX non-root with NMIs reaching it only when it opens a
 * window on purpose (svm_take_pending_nmi); the handler only counts.
 */
extern volatile u64 x86_host_nmis;
/*
 * Called (in NMI context, on the CPU that took it) for every NMI the host
 * IDT takes, after the count: the VMX backend finds the vCPU of this CPU and
 * hands the NMI to it (vmx_host_nmi). NULL: only counted.
 */
extern void (*x86_host_nmi_hook)(void);

/*
 * Ends the CPU's NMI blocking without an NMI handler: an IRETQ to the next
 * instruction, same CS, SS and stack (Intel SDM Vol. 3A, 6.7.1 "Handling
 * Multiple NMIs": blocking lasts until the next IRET). A VM exit caused by
 * an NMI leaves NMIs blocked (SDM Vol. 3C, 28.1 "Architectural State Before
 * a VM Exit"). An NMI held pending is taken right after, through the host IDT.
 */
static inline void x86_unblock_nmis(void)
{
	__asm__ volatile("movq %%rsp, %%rax\n\t"
			 "movl %%ss, %%ecx\n\t"
			 "pushq %%rcx\n\t"
			 "pushq %%rax\n\t"
			 "pushfq\n\t"
			 "movl %%cs, %%ecx\n\t"
			 "pushq %%rcx\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "iretq\n"
			 "1:"
			 :
			 :
			 : "rax", "rcx", "memory", "cc");
}

#endif /* PT_ARCH_X86_HOST_H */
