/* SPDX-License-Identifier: MIT */
/*
 * The choice between the two virtualization backends, Intel VMX
 * (arch/x86/vmx) and AMD SVM (arch/x86/svm), made once at start from CPUID.
 *
 * hv/ calls the arch_* hooks declared in hv/hv.h; arch/x86/backend.c
 * implements them by forwarding to the backend that x86_backend_select()
 * picked. Everything else a backend does for hv/ goes through struct
 * vcpu_ops (hv/vcpu.h), which its vcpu_create installs.
 */
#ifndef PT_ARCH_X86_BACKEND_H
#define PT_ARCH_X86_BACKEND_H

#include "hv/boot.h"
#include "hv/vcpu.h"
#include "mmu/spte.h"

#include <pt/types.h>

struct x86_backend {
	const char *name; /* "vmx" or "svm", for the log */
	/*
	 * Can this CPU be virtualized? 0, or -1 with *why a clear sentence.
	 * Runs in the firmware's context and changes nothing.
	 */
	int (*check_cpu)(const char **why);
	/* Allocates the per-vCPU state from the pool and installs v->ops. */
	int (*vcpu_create)(struct vcpu *v, const struct hv_boot_info *bi);
	/* The firmware's live registers become the guest's (host stack, firmware GDT). */
	void (*capture_live_state)(struct vcpu *v, const struct hv_takeover *t);
	/* Turns virtualization on in the calling CPU for v (EFER.SVME / VMXON). */
	void (*host_enter)(struct vcpu *v);
	/* The nested page-table format mmu/ must build for this CPU. */
	void (*tdp_format_init)(struct spte_format *fmt);
	/*
	 * Does the CPU log dirty pages itself (Intel PML)? If not, *why says
	 * why, for the answer to a request for pml dirty logging.
	 */
	bool (*pml_supported)(const char **why);
	/*
	 * The CPU's own periodic exit that the guest cannot mask, as an enum
	 * hv_mgmt_tick (VMX: the preemption timer), or HV_MGMT_TICK_NONE. May
	 * be NULL (none).
	 */
	int (*own_mgmt_tick)(void);
	/*
	 * The backend intercepts NMIs and hands them to hv/ as HV_EXIT_NMI, so
	 * an HPET NMI can be the management tick (hv/mgmt_tick.c).
	 */
	bool nmi_tick;
	/*
	 * More than one vCPU: per-vCPU state from the pool, NMI kicks
	 * intercepted, start_at_sipi (hv/smp.c). Without it, only the boot
	 * CPU is virtualized.
	 */
	bool smp;
	/*
	 * Does this CPU have what `smp` needs? May be NULL (always). If not,
	 * *why says what is missing, and only the boot CPU is virtualized.
	 */
	bool (*smp_supported)(const char **why);
};

extern const struct x86_backend vmx_backend;
extern const struct x86_backend svm_backend;

/*
 * Picks the backend from the CPUID vendor string (GenuineIntel: VMX,
 * AuthenticAMD: SVM). NULL, with *why, for any other vendor.
 */
const struct x86_backend *x86_backend_select(const char **why);

/* The backend chosen by arch_hv_check_cpu; NULL before. */
extern const struct x86_backend *x86_backend;

/* Hooks hv/ calls beyond those in hv/hv.h. */
void arch_tdp_format_init(struct spte_format *fmt);
bool arch_pml_supported(const char **why);
int arch_own_mgmt_tick(void); /* enum hv_mgmt_tick */
bool arch_nmi_tick_supported(void);

#endif /* PT_ARCH_X86_BACKEND_H */
