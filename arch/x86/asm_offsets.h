/* SPDX-License-Identifier: MIT */
/*
 * Structure offsets used by the assembly stubs. Each is checked against the C
 * layout with _Static_assert(offsetof(...)) in arch/x86/asm_offsets.c, so a
 * change to a structure breaks the build instead of the stub.
 */
#ifndef PT_ARCH_X86_ASM_OFFSETS_H
#define PT_ARCH_X86_ASM_OFFSETS_H

/* struct hv_takeover (hv/boot.h) */
#define TAKEOVER_RIP	0
#define TAKEOVER_RSP	8
#define TAKEOVER_RFLAGS 16

/* struct hv_gprs (hv/vcpu.h): index * 8, in x86 register-number order */
#define GPR_RAX 0
#define GPR_RCX 8
#define GPR_RDX 16
#define GPR_RBX 24
#define GPR_RSP 32
#define GPR_RBP 40
#define GPR_RSI 48
#define GPR_RDI 56
#define GPR_R8	64
#define GPR_R9	72
#define GPR_R10 80
#define GPR_R11 88
#define GPR_R12 96
#define GPR_R13 104
#define GPR_R14 112
#define GPR_R15 120

/* struct x86_exc_frame (arch/x86/host.h) */
#define EXC_FRAME_VECTOR    120
#define EXC_FRAME_GPRS_SIZE 120

#endif /* PT_ARCH_X86_ASM_OFFSETS_H */
