/*
 * Exception stubs of the probe (tests/guest/probe.c): #UD and #GP handlers that record
 * which exception was taken and resume at the address the C side left in
 * probe_recover_rip, so that a faulting instruction is skipped and the fault observed.
 *
 * Register contract: entered by the CPU through an IDT interrupt gate at CPL0 with the
 * usual 64-bit frame (AMD APM Vol. 2, 8.9.3 "Interrupt Stack Frame"):
 *   #UD (vector 6):  [rsp] = RIP, CS, RFLAGS, RSP, SS            (no error code)
 *   #GP (vector 13): [rsp] = error code, RIP, CS, RFLAGS, RSP, SS
 * Every general-purpose register is preserved; only the saved RIP is replaced.
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
	movq probe_recover_rip(%rip), %rax
	movq %rax, 8(%rsp)	/* the saved RIP, under the pushed RAX */
	popq %rax
	iretq

	.section .note.GNU-stack, "", @progbits
