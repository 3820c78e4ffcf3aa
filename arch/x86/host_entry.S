/* SPDX-License-Identifier: MIT */
/*
 * Host exception entry stubs (vectors 0-31) and the #GP-safe MSR accessors.
 *
 * Register contract of the stubs: entered by the CPU through the host IDT
 * (64-bit interrupt gates, no IST, CPL 0 -> 0, so no stack switch). Each
 * pushes a zero error code where the CPU does not, then the vector and all
 * fifteen GPRs, forming a struct x86_exc_frame (arch/x86/host.h, offsets in
 * asm_offsets.h), and calls x86_host_exception(frame). If that returns (a
 * fixed-up fault) the registers are restored from the frame and IRETQ
 * resumes at frame->rip. The frame is 16-byte aligned at the call.
 *
 * int x86_rdmsr_safe(u32 msr [edi], u64 *val [rsi]) / x86_wrmsr_safe(u32
 * msr [edi], u64 val [rsi]): 0, or -1 when the instruction raised #GP
 * (x86_host_exception moves RIP to the fixup label and sets RAX = -1).
 */
#include "arch/x86/asm_offsets.h"

	.text
.macro EXC_STUB vec, has_error
	.globl x86_exc_stub_\vec
x86_exc_stub_\vec:
	.if \has_error == 0
	pushq $0
	.endif
	pushq $\vec
	jmp x86_exc_common
.endm

EXC_STUB 0, 0
EXC_STUB 1, 0
EXC_STUB 2, 0
EXC_STUB 3, 0
EXC_STUB 4, 0
EXC_STUB 5, 0
EXC_STUB 6, 0
EXC_STUB 7, 0
EXC_STUB 8, 1
EXC_STUB 9, 0
EXC_STUB 10, 1
EXC_STUB 11, 1
EXC_STUB 12, 1
EXC_STUB 13, 1
EXC_STUB 14, 1
EXC_STUB 15, 0
EXC_STUB 16, 0
EXC_STUB 17, 1
EXC_STUB 18, 0
EXC_STUB 19, 0
EXC_STUB 20, 0
EXC_STUB 21, 1
EXC_STUB 22, 0
EXC_STUB 23, 0
EXC_STUB 24, 0
EXC_STUB 25, 0
EXC_STUB 26, 0
EXC_STUB 27, 0
EXC_STUB 28, 0
EXC_STUB 29, 1
EXC_STUB 30, 1
EXC_STUB 31, 0

x86_exc_common:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rbx
	pushq %rbp
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	movq %rsp, %rdi
	cld
	call x86_host_exception
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rbp
	popq %rbx
	popq %rdx
	popq %rcx
	popq %rax
	addq $16, %rsp
	iretq

	.data
	.globl x86_exc_stubs
	.balign 8
x86_exc_stubs:
	.irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
	.quad x86_exc_stub_\vec
	.endr

	.text
	.globl x86_rdmsr_safe
	.globl x86_rdmsr_insn
	.globl x86_rdmsr_fixup
x86_rdmsr_safe:
	movl %edi, %ecx
x86_rdmsr_insn:
	rdmsr
	shlq $32, %rdx
	movl %eax, %eax
	orq %rdx, %rax
	movq %rax, (%rsi)
	xorl %eax, %eax
x86_rdmsr_fixup:
	retq

	.globl x86_wrmsr_safe
	.globl x86_wrmsr_insn
	.globl x86_wrmsr_fixup
x86_wrmsr_safe:
	movl %edi, %ecx
	movl %esi, %eax
	movq %rsi, %rdx
	shrq $32, %rdx
x86_wrmsr_insn:
	wrmsr
	xorl %eax, %eax
x86_wrmsr_fixup:
	retq

	.section .note.GNU-stack, "", @progbits
