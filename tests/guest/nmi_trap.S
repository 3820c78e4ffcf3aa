/*
 * Entry stubs of nmi.efi (tests/guest/nmi.c): NMI (vector 2), #BP (3) and #UD (6) call
 * their C handler with a pointer to the frame the CPU pushed, then return with IRETQ.
 *
 * Register contract: entered through IDT interrupt gates at CPL0 with the 64-bit frame
 * (AMD APM Vol. 2, 8.9.3 "Interrupt Stack Frame"): [rsp] = RIP, CS, RFLAGS, RSP, SS (none
 * of these vectors pushes an error code). The caller-saved registers are saved around the
 * call (the C side is SysV ABI, as the rest of the program); RSP is 16-byte aligned at
 * the call (the CPU aligns it to 16 before pushing its 5 quadwords; with the 9 pushes here
 * that is 14 quadwords, plus a 32-byte area); the C handler may change the saved RIP.
 */
	.macro STUB name, handler
	.globl \name
	.hidden \name
\name:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	leaq 72(%rsp), %rdi	/* the CPU's frame: RIP first */
	subq $32, %rsp		/* what an MS-ABI callee may use as home space */
	cld
	call \handler
	addq $32, %rsp
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	iretq
	.endm

	.text
	STUB nmi_entry, nmi_handler
	STUB bp_entry, bp_handler
	STUB ud_entry, ud_handler

	.section .note.GNU-stack, "", @progbits
