/* SPDX-License-Identifier: MIT */
/*
 * int vmx_vmenter(struct hv_gprs *gprs, bool resume)
 *
 * Register contract (SysV AMD64, host context, RFLAGS.IF = 0, the vCPU's
 * VMCS current, its host-state area filled except HOST_RSP):
 *   in:  rdi = guest GPRs (struct hv_gprs), esi = 0 for VMLAUNCH, else VMRESUME
 *   The host's callee-saved registers and `gprs` are pushed; HOST_RSP is set
 *   to the stack pointer after those pushes, then every guest GPR except RSP
 *   (the VMCS holds it: SDM Vol. 3C 25.4.1 "Guest Register State") is loaded
 *   from *gprs and VMLAUNCH/VMRESUME runs.
 *   VM exit: the CPU resumes at vmx_vmexit (HOST_RIP) with RSP = HOST_RSP and
 *   RFLAGS = 2; the guest GPRs are stored back into *gprs (found on the
 *   stack), the host registers popped, and 0 (VMX_ASM_ENTER_EXITED) returned.
 *   VM-instruction failure: returns VMX_ASM_ENTER_FAIL_INVALID (CF) or
 *   VMX_ASM_ENTER_FAIL_VALID (ZF: VMCS_INSN_ERROR says why); *gprs unchanged.
 *   CR2, DR0-DR6, XCR0 and the SYSCALL MSRs are never switched: the host does
 *   not use them, so the guest's values stay live in the CPU.
 *
 * Numbers: arch/x86/asm_offsets.h and arch/x86/vmx/vmx_asm.h, checked in C;
 * the register moves shared with the SVM stub: arch/x86/gprs_asm.h.
 */
#include "arch/x86/gprs_asm.h"
#include "arch/x86/vmx/vmx_asm.h"

	.text
	.globl vmx_vmenter
	.type vmx_vmenter, @function
vmx_vmenter:
	HOST_CALLEE_SAVED_PUSH
	pushq %rdi
	movl $VMX_ASM_FIELD_HOST_RSP, %eax
	vmwrite %rsp, %rax
	jbe 3f
	testl %esi, %esi
	/* MOVs leave RFLAGS alone: ZF from the test above selects the instruction. */
	movq GPR_RAX(%rdi), %rax
	GUEST_GPRS_LOAD %rdi
	jnz 1f
	vmlaunch
	jmp 2f
1:	vmresume
2:	/* Still here: the instruction failed; CF or ZF says how. */
3:	movl $VMX_ASM_ENTER_FAIL_INVALID, %eax
	jc 4f
	movl $VMX_ASM_ENTER_FAIL_VALID, %eax
4:	popq %rdi
	HOST_CALLEE_SAVED_POP
	retq
	.size vmx_vmenter, . - vmx_vmenter

	.globl vmx_vmexit
	.type vmx_vmexit, @function
vmx_vmexit:
	/* RSP = HOST_RSP: (%rsp) is gprs. */
	pushq %rax
	movq 8(%rsp), %rax
	GUEST_GPRS_STORE_TO_RAX
	popq GPR_RAX(%rax)
	popq %rdi
	HOST_CALLEE_SAVED_POP
	movl $VMX_ASM_ENTER_EXITED, %eax
	retq
	.size vmx_vmexit, . - vmx_vmexit

	.section .note.GNU-stack, "", @progbits
