/* SPDX-License-Identifier: MIT */
/*
 * AMD SVM backend: implements struct vcpu_ops (hv/vcpu.h) with a VMCB.
 *
 * Single vCPU, ASID 1. QEMU TCG offers no NRIP save, no decode assists, no
 * flush-by-ASID and no VMCB clean bits, so this backend uses none of them:
 * instruction lengths are decoded by hv/, TLB flushes are TLB_CONTROL
 * "flush all ASIDs", and vmcb_clean is always 0 (everything reloaded).
 */
#ifndef PT_ARCH_X86_SVM_SVM_H
#define PT_ARCH_X86_SVM_SVM_H

#include "arch/x86/svm/vmcb.h"
#include "hv/vcpu.h"

#define SVM_GUEST_ASID	1
#define SVM_IOPM_PAGES	3 /* APM 15.10.1 "I/O Permissions Map": 12 KiB */
#define SVM_MSRPM_PAGES 2 /* APM 15.11 "MSR Intercepts": 8 KiB */

struct svm_vcpu {
	struct vmcb *vmcb;
	void *host_save_area; /* VM_HSAVE_PA */
	u8 *iopm;
	u8 *msrpm;
	bool tlb_flush_pending;
	/* INTR exit seen: the interrupt goes to the guest, IRET tells us it returned. */
	bool intr_window;
	/* The next VMRUN lets the guest's HLT run, with INTR intercepted. */
	bool guest_halt;
	/*
	 * The last exit was an NMI that woke the guest from its own HLT: RIP
	 * was moved back onto the HLT (the tick must not end the guest's
	 * halt); svm_inject_nmi moves it forward again for an NMI the guest
	 * takes, as hardware returns from an NMI after the HLT.
	 */
	bool nmi_rewound_halt;
	u64 halt_rip;	     /* RIP after that HLT, where a reflected NMI returns */
	u64 halt_shadow;     /* the interrupt shadow the HLT ran under (STI; HLT) */
	u64 nmi_no_host_nmi; /* NMI exits after which the host took no NMI */
	u64 host_nmis;	     /* NMIs the host IDT took on this vCPU's CPU (svm_host_nmi), atomic */
	/*
	 * The guest's NMI blocking, kept here while the hypervisor intercepts
	 * NMIs (svm_nmi_before_run, svm_nmi_after_exit). Per vCPU: each vCPU's
	 * guest blocks its own NMIs. The management tick's NMIs never touch it.
	 */
	bool nmi_pending;   /* an NMI for the guest, not yet injected (a latch: one) */
	bool nmi_masked;    /* an NMI was injected; the guest's IRET has not completed */
	bool nmi_iret_seen; /* that IRET exited; it completes when RIP leaves nmi_iret_rip */
	u64 nmi_iret_rip;
	bool nmi_stepping;  /* RFLAGS.TF set over that IRET, #DB intercepted */
	u64 nmi_step_dr6;   /* the guest's DR6 before the step */
};

/* x86 CPUID bits the backend needs (AMD APM Vol. 3, Appendix E). */
#define CPUID_80000001_ECX_SVM BIT_ULL(2)
#define CPUID_8000000A_EDX_NP  BIT_ULL(0)

void svm_vmrun(u64 vmcb_pa, struct hv_gprs *gprs);

/* Marks `port` intercepted in the I/O permission map. */
void svm_intercept_io_port(struct svm_vcpu *s, u16 port);
void svm_intercept_msr(struct svm_vcpu *s, u32 msr, bool read, bool write);

#endif /* PT_ARCH_X86_SVM_SVM_H */
