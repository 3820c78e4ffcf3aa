/* SPDX-License-Identifier: MIT */
/*
 * int x86_takeover(struct hv_takeover *t, void (*host_entry)(void *arg),
 *                  void *arg, u64 host_stack_top)
 *
 * Register contract (SysV AMD64, called from boot/ in the ORIGINAL image, on
 * the BSP from efi_main or on an AP from its StartupThisAP procedure):
 *   in:  rdi = t, rsi = host_entry (in the relocated copy), rdx = arg,
 *        rcx = host stack top
 *   The caller's callee-saved registers (rbp rbx r12-r15) are pushed on the
 *   caller's stack; *t gets the caller's RFLAGS, that stack pointer and the
 *   address of the resume label below (RIP-relative, so it is the caller's
 *   copy of this code, outside the hidden pool). Interrupts are then
 *   disabled, the stack switched and host_entry(arg) called; it never
 *   returns. The hypervisor starts the caller as a guest at the label with
 *   that RSP and RFLAGS: it pops the callee-saved registers and returns 0.
 *
 * Offsets into struct hv_takeover are checked by _Static_assert in
 * arch/x86/asm_offsets.c.
 */
#include "arch/x86/asm_offsets.h"

	.text
	.globl x86_takeover
	.type x86_takeover, @function
x86_takeover:
	pushq %rbp
	pushq %rbx
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	pushfq
	popq %rax
	movq %rax, TAKEOVER_RFLAGS(%rdi)
	leaq x86_takeover_resume(%rip), %rax
	movq %rax, TAKEOVER_RIP(%rdi)
	movq %rsp, TAKEOVER_RSP(%rdi)
	cli
	movq %rcx, %rsp
	movq %rdx, %rdi
	callq *%rsi
	ud2

	.globl x86_takeover_resume
x86_takeover_resume:
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %rbx
	popq %rbp
	xorl %eax, %eax
	retq
	.size x86_takeover, . - x86_takeover

	.section .note.GNU-stack, "", @progbits
