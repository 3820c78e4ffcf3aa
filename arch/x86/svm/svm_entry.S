/* SPDX-License-Identifier: MIT */
/*
 * void svm_vmrun(u64 vmcb_pa, struct hv_gprs *gprs)
 *
 * Register contract (SysV AMD64, host context, GIF=0):
 *   in:  rdi = physical address of the guest VMCB, rsi = guest GPRs
 *   The host's callee-saved registers are pushed; every guest GPR except RAX
 *   and RSP (which the VMCB holds: APM Vol. 2, 15.5.1 "Basic Operation") is
 *   loaded from *gprs, VMRUN runs with RAX = vmcb_pa. On #VMEXIT the CPU
 *   restores the host's RSP, RAX, RIP and GIF=0 from the host save area, and
 *   this stores the guest GPRs back into *gprs (found again on the stack),
 *   restores the host registers and returns.
 *   Guest FS, GS, TR, LDTR, KernelGsBase and the SYSCALL/SYSENTER MSRs are
 *   never VMSAVEd or VMLOADed: the host does not touch them, so they stay
 *   live in the CPU across VMRUN and #VMEXIT.
 *
 * GPR offsets: arch/x86/asm_offsets.h, checked in arch/x86/asm_offsets.c.
 */
#include "arch/x86/asm_offsets.h"

	.text
	.globl svm_vmrun
	.type svm_vmrun, @function
svm_vmrun:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	pushq %rsi
	movq %rdi, %rax
	movq GPR_RBX(%rsi), %rbx
	movq GPR_RCX(%rsi), %rcx
	movq GPR_RDX(%rsi), %rdx
	movq GPR_RBP(%rsi), %rbp
	movq GPR_RDI(%rsi), %rdi
	movq GPR_R8(%rsi), %r8
	movq GPR_R9(%rsi), %r9
	movq GPR_R10(%rsi), %r10
	movq GPR_R11(%rsi), %r11
	movq GPR_R12(%rsi), %r12
	movq GPR_R13(%rsi), %r13
	movq GPR_R14(%rsi), %r14
	movq GPR_R15(%rsi), %r15
	movq GPR_RSI(%rsi), %rsi
	vmrun %rax
	/* #VMEXIT: RAX = vmcb_pa again, RSP = the host stack above. */
	movq (%rsp), %rax
	movq %rbx, GPR_RBX(%rax)
	movq %rcx, GPR_RCX(%rax)
	movq %rdx, GPR_RDX(%rax)
	movq %rbp, GPR_RBP(%rax)
	movq %rsi, GPR_RSI(%rax)
	movq %rdi, GPR_RDI(%rax)
	movq %r8, GPR_R8(%rax)
	movq %r9, GPR_R9(%rax)
	movq %r10, GPR_R10(%rax)
	movq %r11, GPR_R11(%rax)
	movq %r12, GPR_R12(%rax)
	movq %r13, GPR_R13(%rax)
	movq %r14, GPR_R14(%rax)
	movq %r15, GPR_R15(%rax)
	popq %rsi
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	retq
	.size svm_vmrun, . - svm_vmrun

	.section .note.GNU-stack, "", @progbits
