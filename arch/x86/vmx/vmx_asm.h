/* SPDX-License-Identifier: MIT */
/*
 * Numbers the VMX entry stub (vmx_entry.S) shares with C. Each is checked
 * against its C definition with _Static_assert in vmx.c; GPR offsets come
 * from arch/x86/asm_offsets.h.
 */
#ifndef PT_ARCH_X86_VMX_VMX_ASM_H
#define PT_ARCH_X86_VMX_VMX_ASM_H

/* enum vmcs_field VMCS_HOST_RSP (vmcs.h) */
#define VMX_ASM_FIELD_HOST_RSP 0x6c14

/* Results of vmx_vmenter (enum vmx_enter_result, vmx.h) */
#define VMX_ASM_ENTER_EXITED	   0
#define VMX_ASM_ENTER_FAIL_INVALID 1
#define VMX_ASM_ENTER_FAIL_VALID   2

#endif /* PT_ARCH_X86_VMX_VMX_ASM_H */
