/* SPDX-License-Identifier: MIT */
/*
 * GAS macros shared by the VM entry stubs (svm/svm_entry.S, vmx/vmx_entry.S):
 * saving the host's callee-saved registers around a guest run, and moving the
 * guest's GPRs between the CPU and a struct hv_gprs. RSP is never moved here
 * (the VMCB or VMCS holds the guest's); RAX is left to the stub, since SVM
 * keeps it in the VMCB and VMX does not. Offsets: arch/x86/asm_offsets.h.
 */
#ifndef PT_ARCH_X86_GPRS_ASM_H
#define PT_ARCH_X86_GPRS_ASM_H

#ifndef __ASSEMBLER__
#error "arch/x86/gprs_asm.h is for assembly stubs only"
#endif

#include "arch/x86/asm_offsets.h"

/* SysV AMD64 callee-saved registers: the C caller expects them back. */
.macro HOST_CALLEE_SAVED_PUSH
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
.endm

.macro HOST_CALLEE_SAVED_POP
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
.endm

/*
 * Loads every guest GPR but RAX and RSP from the struct hv_gprs at \base,
 * which must be %rsi or %rdi: that register is loaded last, as the load
 * overwrites the pointer. Plain MOVs: RFLAGS is left as it was.
 */
.macro GUEST_GPRS_LOAD base
	movq GPR_RBX(\base), %rbx
	movq GPR_RCX(\base), %rcx
	movq GPR_RDX(\base), %rdx
	movq GPR_RBP(\base), %rbp
	movq GPR_R8(\base), %r8
	movq GPR_R9(\base), %r9
	movq GPR_R10(\base), %r10
	movq GPR_R11(\base), %r11
	movq GPR_R12(\base), %r12
	movq GPR_R13(\base), %r13
	movq GPR_R14(\base), %r14
	movq GPR_R15(\base), %r15
	.ifc \base, %rsi
	movq GPR_RDI(\base), %rdi
	movq GPR_RSI(\base), %rsi
	.else
	.ifc \base, %rdi
	movq GPR_RSI(\base), %rsi
	movq GPR_RDI(\base), %rdi
	.else
	.error "GUEST_GPRS_LOAD: base must be %rsi or %rdi"
	.endif
	.endif
.endm

/* Stores every guest GPR but RAX and RSP into the struct hv_gprs at %rax. */
.macro GUEST_GPRS_STORE_TO_RAX
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
.endm

#endif /* PT_ARCH_X86_GPRS_ASM_H */
