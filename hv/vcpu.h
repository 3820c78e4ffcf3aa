/* SPDX-License-Identifier: MIT */
/*
 * Vendor-neutral virtual CPU and VM exits. The arch backend (arch/x86/svm,
 * later vmx) implements struct vcpu_ops; hv/exit.c decides what each exit
 * means and never sees a VMCB or VMCS.
 *
 * The general-purpose registers live in vcpu->gprs, plus rip and rflags: the
 * backend copies the ones its hardware keeps elsewhere (SVM: RAX, RSP, RIP,
 * RFLAGS in the VMCB) in before the exit is handled and out before the next
 * entry, so the core may read and change them all.
 */
#ifndef PT_HV_VCPU_H
#define PT_HV_VCPU_H

#include <pt/types.h>

/* x86 register-number order (ModRM reg field); offsets in asm_offsets.h. */
enum hv_gpr {
	HV_GPR_RAX,
	HV_GPR_RCX,
	HV_GPR_RDX,
	HV_GPR_RBX,
	HV_GPR_RSP,
	HV_GPR_RBP,
	HV_GPR_RSI,
	HV_GPR_RDI,
	HV_GPR_R8,
	HV_GPR_R9,
	HV_GPR_R10,
	HV_GPR_R11,
	HV_GPR_R12,
	HV_GPR_R13,
	HV_GPR_R14,
	HV_GPR_R15,
	HV_NR_GPRS,
};

struct hv_gprs {
	u64 r[HV_NR_GPRS];
};

/* Guest control state, refreshed by the backend on every exit (read-only). */
struct hv_guest_ctrl {
	u64 cr0, cr2, cr3, cr4, efer;
	u64 cs_base;
	u64 fs_base, gs_base;
	u16 cs_sel, ss_sel, ds_sel, es_sel, fs_sel, gs_sel;
	bool cs_long; /* CS.L: 64-bit code */
	bool cs_db;   /* CS.D/B: 32-bit default operand size */
	u8 cpl;
};

/* One segment register as the CPU holds it (hidden part included). */
struct hv_guest_seg {
	u64 base;
	u32 limit; /* bytes - 1, granularity applied */
	u32 attr;  /* descriptor bits 40..55 at bits 8..23; 0 when unusable */
	u16 sel;
};

/*
 * The state a crash-dump reader needs beyond hv_guest_ctrl: every segment
 * with its hidden part, the descriptor tables and KernelGSBase. Read on
 * demand (vcpu_ops.get_sregs), not on every exit.
 */
struct hv_guest_sregs {
	struct hv_guest_seg cs, ss, ds, es, fs, gs, ldtr, tr;
	u64 gdt_base, idt_base;
	u32 gdt_limit, idt_limit;
	u64 kernel_gs_base;
};

enum hv_exit_reason {
	HV_EXIT_CPUID,
	HV_EXIT_MSR_READ,
	HV_EXIT_MSR_WRITE,
	HV_EXIT_IO,
	HV_EXIT_HLT,
	HV_EXIT_VIRT_INSN, /* a virtualization instruction the guest may not use */
	HV_EXIT_TDP_FAULT, /* nested/extended page fault */
	HV_EXIT_SHUTDOWN,  /* triple fault or shutdown */
	HV_EXIT_ENTRY_FAILED,
	HV_EXIT_UNKNOWN, /* an exit the backend did not ask for */
	HV_EXIT_INTR,	 /* a physical interrupt is about to reach the guest */
	HV_EXIT_IRET,	 /* the guest returns from an interrupt (after an INTR exit) */
	HV_EXIT_NMI,	 /* an NMI reached the guest: the management tick, or reflected */
	HV_EXIT_INIT,	 /* a real INIT signal reached the vCPU (VMX: INIT exit) */
	HV_EXIT_SIPI,	 /* a real start-up IPI (VMX: SIPI exit); raw_info1 bits 7:0 = vector */
	HV_NR_EXIT_REASONS,
};

struct hv_exit_io {
	u16 port;
	u8 size; /* 1, 2 or 4 bytes */
	bool in;
	bool string;
	bool rep;
	u64 next_rip;
};

struct hv_exit_tdp_fault {
	gpa_t gpa;
	bool present; /* a translation existed: a permission fault */
	bool write;
	bool fetch;
	bool user;
};

struct hv_exit {
	enum hv_exit_reason reason;
	u64 raw_code; /* vendor exit code, for reports */
	u64 raw_info1, raw_info2;
	const char *name; /* vendor name of the raw exit */
	union {
		u32 msr;
		struct hv_exit_io io;
		struct hv_exit_tdp_fault tdp;
	};
};

struct vcpu;

struct vcpu_ops {
	/* Enters the guest until the next exit; fills *exit. */
	void (*run)(struct vcpu *v, struct hv_exit *exit);
	/* Queues an exception for the next entry. */
	void (*inject_exception)(struct vcpu *v, u8 vector, bool has_error, u32 error);
	/* Sets the guest's EFER as the guest sees it (backend keeps its bits). */
	void (*set_efer)(struct vcpu *v, u64 efer);
	/* Flushes guest TLB entries derived from the TDP tables before next entry. */
	void (*flush_tlb)(struct vcpu *v);
	void (*set_tdp_root)(struct vcpu *v, hpa_t root);
	/*
	 * The vCPU must exit within `tsc` TSC ticks of each entry even if the
	 * guest computes without exiting, so the management port is polled
	 * (hv/mgmt_poll.h decides: shorter while a reply is going out). Set
	 * once at creation and after every exit of the boot CPU. VMX loads it
	 * into its preemption timer. May be NULL (SVM: hv/ makes its
	 * management tick faster itself, hv_mgmt_tick_fast).
	 */
	void (*set_poll_exit_tsc)(struct vcpu *v, u64 tsc);
	/*
	 * Hardware dirty logging (Intel PML, SDM Vol. 3C 29.3.6): turns the
	 * CPU's logging of EPT D-bit transitions on or off for this vCPU.
	 * 0, or -1 if the CPU has none. NULL where there is no such thing (SVM).
	 */
	int (*set_pml)(struct vcpu *v, bool on);
	/*
	 * Drains the CPU's dirty log into mmu/ (hooks.pml_drain) now: the caller
	 * does it before every harvest so no logged write is left behind in
	 * the buffer. NULL on SVM.
	 */
	void (*pml_flush)(struct vcpu *v);
	/*
	 * Let the guest execute the HLT at RIP itself, once: the CPU sleeps
	 * in the guest until its next interrupt, which exits (HV_EXIT_INTR)
	 * before it is delivered. May be NULL (HLT is then completed at once).
	 */
	void (*halt_in_guest)(struct vcpu *v);
	/*
	 * Delivers an NMI to the guest (one that made it exit, HV_EXIT_NMI,
	 * but was not the hypervisor's tick or a kick). Set wherever NMIs can
	 * exit (SVM; VMX with more than one vCPU).
	 */
	void (*inject_nmi)(struct vcpu *v);
	/*
	 * INIT, then a start-up IPI: the architectural state after INIT, in
	 * real mode at vector:0000 (hv/smp.c). On the vCPU's own CPU.
	 */
	void (*start_at_sipi)(struct vcpu *v, u8 vector);
	/*
	 * Reads the guest's segments, descriptor tables and KernelGSBase, for a
	 * vCPU outside the guest, on its own CPU (SVM leaves FS, GS, TR, LDTR
	 * and KernelGsBase live in the CPU).
	 */
	void (*get_sregs)(struct vcpu *v, struct hv_guest_sregs *out);
};

/*
 * What the backend calls back into hv/ for, and what hv/ asks of it: set by
 * hv/ (hv_init, vm_vcpu_attach), so that arch/ calls no hv/ policy itself (as
 * KVM gives the MMU a CPU-dirty-logging hook).
 */
struct vcpu_hooks {
	void *ctx;
	/*
	 * The vCPU's PML buffer into the dirty log (tdp_mmu_pml_drain): the
	 * valid entries are marked dirty and *index is reset to the last
	 * entry. Called by the backend on a PML-full exit and from pml_flush.
	 */
	void (*pml_drain)(void *ctx, struct vcpu *v, const u64 *buf, u16 *index);
	/* Intercept NMIs (HV_EXIT_NMI): the management tick arrives as one. Set before vcpu_create. */
	bool nmi_exits;
};

struct hv_exit_stats {
	u64 total;
	u64 by_reason[HV_NR_EXIT_REASONS];
	u64 hidden_access; /* guest touched the hypervisor's memory */
	u64 mgmt_port_io;  /* guest touched the management UART */
	u64 injected_ud;
	u64 injected_gp;
	u64 pml_full;	   /* PML-full exits, handled inside the backend (VMX only) */
	u64 nmi_reflected; /* NMI exits that were not the tick, given to the guest */
	u64 kicks;	   /* NMI exits claimed as another CPU's kick (hv/smp.h) */
	u64 tlb_flushes;   /* entries that flushed for a newer VM TLB generation */
};

/* Where a vCPU is, for the CPUs that must reach it (hv/smp.c). */
enum vcpu_mode {
	VCPU_OUTSIDE_GUEST = 0, /* in the host: sees requests before its next entry */
	VCPU_IN_GUEST = 1,	/* from just before VMRUN to just after the exit */
};

/* What a vCPU does with its CPU (owned by the vCPU itself). */
enum vcpu_run_state {
	VCPU_RUNNABLE = 0,
	VCPU_WAIT_FOR_SIPI, /* after an INIT: parked in the host until a start-up IPI */
};

struct vm;

struct vcpu {
	struct hv_gprs gprs;
	u64 rip;
	u64 rflags;
	struct hv_guest_ctrl ctrl;
	const struct vcpu_ops *ops;
	struct vcpu_hooks hooks;
	void *arch; /* backend's per-vCPU state (struct svm_vcpu) */
	struct hv_exit_stats stats;
	struct vm *vm;
	void *tdp_root; /* struct tdp_mmu_root *: this vCPU's reference to the root it runs on */
	u32 id;		/* 0 = the boot CPU; index in hv_boot_info.cpus */
	u32 apic_id;
	bool online; /* taken over: runs hv's loop on its CPU */
	/*
	 * Cross-CPU state (hv/smp.c), read and written with __atomic builtins
	 * by other CPUs: mode, tlb_gen (the VM TLB generation this vCPU's
	 * TLB is clean for), kick_inflight (an NMI kick was sent and has not
	 * been claimed yet), init_pending, sipi (0x100 | vector when a
	 * start-up IPI waits), parked (out of the guest for a pause).
	 */
	u32 mode; /* enum vcpu_mode */
	u64 tlb_gen;
	u32 kick_inflight;
	u32 init_pending;
	u32 sipi;
	u32 parked;
	/*
	 * sregs as the vCPU read them on its own CPU when it parked for a
	 * pause; sregs_valid (atomic) while it stays parked.
	 */
	struct hv_guest_sregs sregs;
	u32 sregs_valid;
	u32 pml_on;	       /* the PML state this vCPU's CPU runs with (its own) */
	u64 pml_drain_gen;     /* the last vm->pml_drain_gen this vCPU drained its PML log for */
	u32 run_state;	       /* enum vcpu_run_state, the vCPU's own */
	u32 icr_high;	       /* the guest's last write to the APIC's ICR high half */
	u64 guest_vm_hsave_pa; /* what the guest last wrote to VM_HSAVE_PA */
	bool paused;
};

static inline u64 vcpu_gpr(struct vcpu *v, enum hv_gpr r)
{
	return v->gprs.r[r];
}

static inline void vcpu_set_gpr(struct vcpu *v, enum hv_gpr r, u64 val)
{
	v->gprs.r[r] = val;
}

const char *hv_exit_reason_name(enum hv_exit_reason r);

#endif /* PT_HV_VCPU_H */
