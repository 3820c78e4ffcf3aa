/*
 * Exception stubs of the probe (tests/guest/probe.c): #UD and #GP handlers that record
 * which exception was taken and resume at the address the C side left in
 * probe_recover_rip, so that a faulting instruction is skipped and the fault observed.
 *
 * Register contract: entered by the CPU through an IDT interrupt gate at CPL0 with the
 * usual 64-bit frame (AMD APM Vol. 2, 8.9.3 "Interrupt Stack Frame"):
 *   #UD (vector 6):  [rsp] = RIP, CS, RFLAGS, RSP, SS            (no error code)
 *   #GP (vector 13): [rsp] = error code, RIP, CS, RFLAGS, RSP, SS
 * Every general-purpose register is preserved; only the saved RIP is replaced. The
 * pushed RFLAGS go to probe_fault_rflags (their RF bit is checked).
 */
	.text
	.globl probe_ud_handler
	.hidden probe_ud_handler
probe_ud_handler:
	movq $6, probe_fault_vector(%rip)
	jmp 1f

	.globl probe_gp_handler
	.hidden probe_gp_handler
probe_gp_handler:
	movq $13, probe_fault_vector(%rip)
	addq $8, %rsp		/* drop the error code: iretq wants RIP on top */
1:	pushq %rax
	movq 24(%rsp), %rax	/* the pushed RFLAGS (RF: a fault's is set) */
	movq %rax, probe_fault_rflags(%rip)
	movq probe_recover_rip(%rip), %rax
	movq %rax, 8(%rsp)	/* the saved RIP, under the pushed RAX */
	popq %rax
	iretq

/*
 * The local APIC timer's interrupt during probe_check_halt (probe_lib.h): counts it in
 * probe_timer_ticks and ends it with an EOI, through the MMIO register at
 * probe_apic_eoi or, when that is 0 (x2APIC mode), through MSR 0x80B. Preserves every
 * register.
 */
	.globl probe_timer_handler
	.hidden probe_timer_handler
probe_timer_handler:
	pushq %rax
	pushq %rcx
	pushq %rdx
	incq probe_timer_ticks(%rip)
	movq probe_apic_eoi(%rip), %rax
	testq %rax, %rax
	jz 2f
	movl $0, (%rax)
	jmp 3f
2:	movl $0x80b, %ecx
	xorl %eax, %eax
	xorl %edx, %edx
	wrmsr
3:	popq %rdx
	popq %rcx
	popq %rax
	iretq

	.section .note.GNU-stack, "", @progbits
