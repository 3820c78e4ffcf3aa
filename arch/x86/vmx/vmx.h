/* SPDX-License-Identifier: MIT */
/*
 * Intel VMX backend: implements struct vcpu_ops (hv/vcpu.h) with a VMCS.
 *
 * One vCPU per CPU, each with its own VMXON region, VMCS, PML log and host
 * TSS; the I/O and MSR bitmaps are shared (one policy). VPID 1, EPT built by
 * mmu/ in the EPT format (with A/D flags when the CPU has them), unrestricted
 * guest when the CPU has it. Every control is the result of
 * vmx_adjust_controls() against the capability MSRs (the IA32_VMX_TRUE_* ones
 * when IA32_VMX_BASIC bit 55 says they exist).
 *
 * Exits that only exist because of VMX itself (CR0/CR4 fixed bits hidden
 * behind read shadows, XSETBV, INVD, PML-full) are handled here and never
 * reach hv/; the rest are translated into struct hv_exit.
 */
#ifndef PT_ARCH_X86_VMX_VMX_H
#define PT_ARCH_X86_VMX_VMX_H

#include "arch/x86/vmx/vmcs.h"
#include "hv/vcpu.h"

#define VMX_GUEST_VPID	1
#define VMX_PML_ENTRIES 512

/* What the CPU offers, read once from the capability MSRs. */
struct vmx_caps {
	u64 basic;
	u64 cr0_fixed0, cr0_fixed1, cr4_fixed0, cr4_fixed1;
	u64 ept_vpid;
	/* Controls after adjustment (without the optional per-guest ones). */
	u32 pin, proc, proc2, exit, entry;
	/* allowed-1 bits of the secondary controls: what may be turned on later */
	u32 proc2_allowed1;
	bool ept_ad, ept_1g, vpid, unrestricted, pml;
	bool invept_single, invvpid_single;
	bool preempt_timer;
	bool activity_hlt; /* the guest may be entered in the HLT activity state */
	/* NMI exiting, virtual NMIs and NMI-window exiting: all three, or no SMP. */
	bool nmi_ctls;
	u8 preempt_shift; /* the timer counts TSC >> this (IA32_VMX_MISC bits 4:0) */
};

/* Counters of the exits handled inside the backend (never seen by hv/). */
struct vmx_internal_stats {
	u64 cr_access, xsetbv, invd, pml_full, poll_timer, nmi_window, host_nmis;
};

struct vmx_vcpu {
	void *vmxon_region;
	void *vmcs;
	u8 *io_bitmap_a, *io_bitmap_b;
	u8 *msr_bitmap;
	u64 *pml_buf;
	void *host_tss;	    /* for HOST_TR: VM exits need a non-null TR (SDM 26.2.3) */
	u64 fw_cr0, fw_cr4; /* the firmware's CR0/CR4 before VMXON: the guest's view */
	u64 eptp;
	u64 cr0_mask, cr4_mask;
	bool launched;
	bool host_state_written;
	bool eptp_dirty;
	bool tlb_flush_pending;
	bool pml_on;
	/*
	 * The management port is polled on exits (hv/exit.c): a guest that
	 * computes without exiting still exits after this many TSC ticks
	 * (VMX preemption timer), as hv/ sets it (vmx_set_poll_exit_tsc).
	 */
	u64 poll_tsc;
	u64 exit_rip;	/* guest RIP at the last exit: moved on means an instruction completed */
	/* An event for the next entry (VMCS_ENTRY_INTR_INFO format) or 0. */
	u32 inject_info, inject_error, inject_insn_len;
	/*
	 * With more than one vCPU NMIs exit (the kicks, hv/smp.h): nmi_exits.
	 * An NMI for the guest waits in nmi_pending until it can be injected
	 * (NMI-window exiting otherwise). host_nmis counts NMIs this CPU took
	 * in VMX root operation (vmx_host_nmi, from the host IDT), written in
	 * NMI context; host_nmis_seen those already handed to hv/.
	 */
	bool nmi_exits;
	bool nmi_pending;
	bool entered_hlt; /* entered in the HLT activity state */
	u64 entry_rip;
	u32 host_nmis, host_nmis_seen;
	struct vmx_internal_stats istats;
};

enum vmx_enter_result {
	VMX_ENTER_EXITED,
	VMX_ENTER_FAIL_INVALID,
	VMX_ENTER_FAIL_VALID,
};

/* arch/x86/vmx/vmx_entry.S */
int vmx_vmenter(struct hv_gprs *gprs, bool resume);
void vmx_vmexit(void);

#endif /* PT_ARCH_X86_VMX_VMX_H */
