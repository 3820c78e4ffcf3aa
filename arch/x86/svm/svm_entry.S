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
 * GPR offsets: arch/x86/asm_offsets.h, checked in arch/x86/asm_offsets.c;
 * the register moves shared with the VMX stub: arch/x86/gprs_asm.h.
 */
#include "arch/x86/gprs_asm.h"

	.text
	.globl svm_vmrun
	.type svm_vmrun, @function
svm_vmrun:
	HOST_CALLEE_SAVED_PUSH
	pushq %rsi
	movq %rdi, %rax
	GUEST_GPRS_LOAD %rsi
	vmrun %rax
	/* #VMEXIT: RAX = vmcb_pa again, RSP = the host stack above. */
	movq (%rsp), %rax
	GUEST_GPRS_STORE_TO_RAX
	popq %rsi
	HOST_CALLEE_SAVED_POP
	retq
	.size svm_vmrun, . - svm_vmrun

	.section .note.GNU-stack, "", @progbits
