/* SPDX-License-Identifier: MIT */
/*
 * The VMCB: AMD APM Vol. 2 (rev. 3.42), Appendix B "Layout of VMCB",
 * tables B-1 "VMCB Layout, Control Area" and B-2 "VMCB Layout, State Save
 * Area". Plain integer fields and mask constants; every offset the hardware
 * defines is checked below.
 */
#ifndef PT_ARCH_X86_SVM_VMCB_H
#define PT_ARCH_X86_SVM_VMCB_H

#include <pt/types.h>
#include <stddef.h>

/* Intercept vector 3 (offset 0x0c). */
#define SVM_INTERCEPT_INTR	BIT_ULL(0)
#define SVM_INTERCEPT_NMI	BIT_ULL(1)
#define SVM_INTERCEPT_INIT	BIT_ULL(3)
#define SVM_INTERCEPT_VINTR	BIT_ULL(4)
#define SVM_INTERCEPT_CPUID	BIT_ULL(18)
#define SVM_INTERCEPT_IRET	BIT_ULL(20)
#define SVM_INTERCEPT_HLT	BIT_ULL(24)
#define SVM_INTERCEPT_INVLPGA	BIT_ULL(26)
#define SVM_INTERCEPT_IOIO_PROT BIT_ULL(27)
#define SVM_INTERCEPT_MSR_PROT	BIT_ULL(28)
#define SVM_INTERCEPT_SHUTDOWN	BIT_ULL(31)
/* Intercept vector 4 (offset 0x10). */
#define SVM_INTERCEPT_VMRUN   BIT_ULL(0)
#define SVM_INTERCEPT_VMMCALL BIT_ULL(1)
#define SVM_INTERCEPT_VMLOAD  BIT_ULL(2)
#define SVM_INTERCEPT_VMSAVE  BIT_ULL(3)
#define SVM_INTERCEPT_STGI    BIT_ULL(4)
#define SVM_INTERCEPT_CLGI    BIT_ULL(5)
#define SVM_INTERCEPT_SKINIT  BIT_ULL(6)

/* TLB_CONTROL (offset 0x5c), APM 15.16.1 "TLB Flush". */
enum svm_tlb_control {
	SVM_TLB_CONTROL_DO_NOTHING = 0,
	SVM_TLB_CONTROL_FLUSH_ALL_ASIDS = 1,
};

#define SVM_NP_ENABLE BIT_ULL(0)

/* VINTR control (offset 0x60), APM 15.21.1 "Virtual Interrupt Control". */
#define SVM_VINTR_V_IRQ		 BIT_ULL(8)
#define SVM_VINTR_V_IGN_TPR	 BIT_ULL(20)
#define SVM_VINTR_V_INTR_MASKING BIT_ULL(24)
/* INTERRUPT_SHADOW bit 0: the guest is in an interrupt shadow (APM Vol. 2, 15.21.5). */
#define SVM_INTERRUPT_SHADOW BIT_ULL(0)

/* EVENTINJ and EXITINTINFO, APM 15.20 "Event Injection". */
#define SVM_EVTINJ_VEC_MASK	  GENMASK_ULL(7, 0)
#define SVM_EVTINJ_TYPE_SHIFT	  8
#define SVM_EVTINJ_TYPE_MASK	  (7ull << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_INTR	  (0ull << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_NMI	  (2ull << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_TYPE_EXCEPTION (3ull << SVM_EVTINJ_TYPE_SHIFT)
#define SVM_EVTINJ_EV		  BIT_ULL(11)
#define SVM_EVTINJ_VALID	  BIT_ULL(31)
#define SVM_EVTINJ_ERR_SHIFT	  32

/* EXITINFO1 for IOIO, APM 15.10.2 "IN and OUT Behavior". */
#define SVM_IOIO_TYPE_IN    BIT_ULL(0)
#define SVM_IOIO_STR	    BIT_ULL(2)
#define SVM_IOIO_REP	    BIT_ULL(3)
#define SVM_IOIO_SZ8	    BIT_ULL(4)
#define SVM_IOIO_SZ16	    BIT_ULL(5)
#define SVM_IOIO_SZ32	    BIT_ULL(6)
#define SVM_IOIO_PORT_SHIFT 16

/* EXITINFO1 for #NPF, APM 15.25.6 "Nested versus Guest Page Faults". */
#define SVM_NPF_PRESENT BIT_ULL(0)
#define SVM_NPF_WRITE	BIT_ULL(1)
#define SVM_NPF_USER	BIT_ULL(2)
#define SVM_NPF_FETCH	BIT_ULL(4)

/* Exit codes, APM Appendix C "SVM Intercept Exit Codes". */
enum svm_exit_code {
	SVM_EXIT_EXCP_BASE = 0x40,
	SVM_EXIT_INTR = 0x60,
	SVM_EXIT_NMI = 0x61,
	SVM_EXIT_SMI = 0x62,
	SVM_EXIT_INIT = 0x63,
	SVM_EXIT_VINTR = 0x64,
	SVM_EXIT_CPUID = 0x72,
	SVM_EXIT_IRET = 0x74,
	SVM_EXIT_HLT = 0x78,
	SVM_EXIT_INVLPGA = 0x7a,
	SVM_EXIT_IOIO = 0x7b,
	SVM_EXIT_MSR = 0x7c,
	SVM_EXIT_SHUTDOWN = 0x7f,
	SVM_EXIT_VMRUN = 0x80,
	SVM_EXIT_VMMCALL = 0x81,
	SVM_EXIT_VMLOAD = 0x82,
	SVM_EXIT_VMSAVE = 0x83,
	SVM_EXIT_STGI = 0x84,
	SVM_EXIT_CLGI = 0x85,
	SVM_EXIT_SKINIT = 0x86,
	SVM_EXIT_NPF = 0x400,
	/*
	 * VMEXIT_INVALID is -1; QEMU TCG writes it as the 32-bit 0xffffffff,
	 * hardware as all ones: compare the low 32 bits only.
	 */
	SVM_EXIT_INVALID_32 = 0xffffffff,
};

struct vmcb_seg {
	u16 selector;
	u16 attrib; /* descriptor bits 47:40 in 7:0, bits 55:52 in 11:8 */
	u32 limit;
	u64 base;
};

struct vmcb_control {
	u32 intercept_cr;
	u32 intercept_dr;
	u32 intercept_exceptions;
	u32 intercept_misc3;
	u32 intercept_misc4;
	u32 intercept_misc5;
	u8 reserved_018[0x3c - 0x18];
	u16 pause_filter_threshold;
	u16 pause_filter_count;
	u64 iopm_base_pa;
	u64 msrpm_base_pa;
	u64 tsc_offset;
	u32 guest_asid;
	u8 tlb_control;
	u8 reserved_05d[3];
	u64 vintr;
	u64 interrupt_shadow;
	u64 exit_code;
	u64 exit_info1;
	u64 exit_info2;
	u64 exit_int_info;
	u64 np_control;
	u64 avic_apic_bar;
	u64 ghcb_pa;
	u64 event_inj;
	u64 n_cr3;
	u64 virt_ext;
	u32 vmcb_clean;
	u32 reserved_0c4;
	u64 next_rip;
	u8 insn_len;
	u8 insn_bytes[15];
	u8 reserved_0e0[0x400 - 0xe0];
};

struct vmcb_save {
	struct vmcb_seg es, cs, ss, ds, fs, gs, gdtr, ldtr, idtr, tr;
	u8 reserved_0a0[0xcb - 0xa0];
	u8 cpl;
	u32 reserved_0cc;
	u64 efer;
	u8 reserved_0d8[0x148 - 0xd8];
	u64 cr4, cr3, cr0, dr7, dr6, rflags, rip;
	u8 reserved_180[0x1d8 - 0x180];
	u64 rsp;
	u8 reserved_1e0[0x1f8 - 0x1e0];
	u64 rax;
	u64 star, lstar, cstar, sfmask, kernel_gs_base;
	u64 sysenter_cs, sysenter_esp, sysenter_eip;
	u64 cr2;
	u8 reserved_248[0x268 - 0x248];
	u64 g_pat;
	u64 dbgctl;
	u64 br_from, br_to, last_excp_from, last_excp_to;
	u8 reserved_298[0xc00 - 0x298];
};

struct vmcb {
	struct vmcb_control control;
	struct vmcb_save save;
};

_Static_assert(sizeof(struct vmcb_seg) == 16, "vmcb_seg");
_Static_assert(offsetof(struct vmcb_control, pause_filter_threshold) == 0x3c, "vmcb");
_Static_assert(offsetof(struct vmcb_control, iopm_base_pa) == 0x40, "vmcb");
_Static_assert(offsetof(struct vmcb_control, guest_asid) == 0x58, "vmcb");
_Static_assert(offsetof(struct vmcb_control, tlb_control) == 0x5c, "vmcb");
_Static_assert(offsetof(struct vmcb_control, vintr) == 0x60, "vmcb");
_Static_assert(offsetof(struct vmcb_control, exit_code) == 0x70, "vmcb");
_Static_assert(offsetof(struct vmcb_control, exit_int_info) == 0x88, "vmcb");
_Static_assert(offsetof(struct vmcb_control, np_control) == 0x90, "vmcb");
_Static_assert(offsetof(struct vmcb_control, event_inj) == 0xa8, "vmcb");
_Static_assert(offsetof(struct vmcb_control, n_cr3) == 0xb0, "vmcb");
_Static_assert(offsetof(struct vmcb_control, vmcb_clean) == 0xc0, "vmcb");
_Static_assert(offsetof(struct vmcb_control, next_rip) == 0xc8, "vmcb");
_Static_assert(sizeof(struct vmcb_control) == 0x400, "vmcb control");
_Static_assert(offsetof(struct vmcb_save, tr) == 0x90, "vmcb");
_Static_assert(offsetof(struct vmcb_save, cpl) == 0xcb, "vmcb");
_Static_assert(offsetof(struct vmcb_save, efer) == 0xd0, "vmcb");
_Static_assert(offsetof(struct vmcb_save, cr4) == 0x148, "vmcb");
_Static_assert(offsetof(struct vmcb_save, rip) == 0x178, "vmcb");
_Static_assert(offsetof(struct vmcb_save, rsp) == 0x1d8, "vmcb");
_Static_assert(offsetof(struct vmcb_save, rax) == 0x1f8, "vmcb");
_Static_assert(offsetof(struct vmcb_save, star) == 0x200, "vmcb");
_Static_assert(offsetof(struct vmcb_save, cr2) == 0x240, "vmcb");
_Static_assert(offsetof(struct vmcb_save, g_pat) == 0x268, "vmcb");
_Static_assert(sizeof(struct vmcb) == 4096, "vmcb is one page");

#endif /* PT_ARCH_X86_SVM_VMCB_H */
