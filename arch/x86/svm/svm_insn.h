/* SPDX-License-Identifier: MIT */
/*
 * Typed wrappers for the SVM instructions the host itself executes.
 * INVLPGA takes an enum-typed ASID argument so a guest address cannot be
 * passed where the ASID goes (Bareflank's INVEPT wrapper once passed the
 * wrong type this way).
 */
#ifndef PT_ARCH_X86_SVM_SVM_INSN_H
#define PT_ARCH_X86_SVM_SVM_INSN_H

#include <pt/types.h>

enum svm_asid {
	SVM_ASID_HOST = 0,
	SVM_ASID_GUEST = 1,
};

/* AMD APM Vol. 3, "CLGI": GIF = 0, interrupts and NMIs held pending. */
static inline void svm_clgi(void)
{
	__asm__ volatile("clgi" ::: "memory");
}

/*
 * AMD APM Vol. 3, "STGI": GIF = 1; what was held pending is recognized. The
 * host uses it only with RFLAGS.IF = 0, to take one pending NMI
 * (svm_take_pending_nmi).
 */
static inline void svm_stgi(void)
{
	__asm__ volatile("stgi" ::: "memory");
}

/*
 * AMD APM Vol. 3, "VMLOAD": loads FS, GS, TR and LDTR (with their hidden
 * parts), KernelGsBase, STAR/LSTAR/CSTAR/SFMASK and SYSENTER_CS/ESP/EIP from
 * the VMCB at vmcb_pa into the CPU. The host uses it only to put a vCPU's
 * state that it otherwise leaves live in the CPU to its INIT values.
 */
static inline void svm_vmload(u64 vmcb_pa)
{
	__asm__ volatile("vmload %%rax" : : "a"(vmcb_pa) : "memory");
}

/*
 * AMD APM Vol. 3, "VMSAVE": stores FS, GS, TR, LDTR (hidden parts included),
 * KernelGsBase and the SYSCALL/SYSENTER MSRs into the VMCB at vmcb_pa.
 */
static inline void svm_vmsave(u64 vmcb_pa)
{
	__asm__ volatile("vmsave %%rax" : : "a"(vmcb_pa) : "memory");
}

/* AMD APM Vol. 3, "INVLPGA": invalidate one page of one ASID. */
static inline void svm_invlpga(u64 guest_va, enum svm_asid asid)
{
	__asm__ volatile("invlpga %%rax, %%ecx" : : "a"(guest_va), "c"((u32)asid) : "memory");
}

#endif /* PT_ARCH_X86_SVM_SVM_INSN_H */
