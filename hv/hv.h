/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor's global state: one VM (the firmware and the OS it boots),
 * one vCPU (the boot CPU), the management UART.
 */
#ifndef PT_HV_HV_H
#define PT_HV_HV_H

#include "drivers/uart16550.h"
#include "hv/boot.h"
#include "hv/memslot.h"
#include "hv/mgmt_poll.h"
#include "hv/vcpu.h"

#include <pt/types.h>

/* CPUID leaves 0x40000000-0x400000ff belong to the hypervisor. */
#define HV_CPUID_BASE	   0x40000000u
#define HV_CPUID_INFO	   0x40000001u
#define HV_CPUID_MAX	   HV_CPUID_INFO
#define HV_CPUID_RANGE_END 0x400000ffu
/* "PageTrailHV\0" in EBX, ECX, EDX (little-endian bytes). */
#define HV_CPUID_SIG_EBX 0x65676150u /* "Page" */
#define HV_CPUID_SIG_ECX 0x69617254u /* "Trai" */
#define HV_CPUID_SIG_EDX 0x0056486cu /* "lHV\0" */
/* Leaf 0x40000001: EAX = interface version, EBX = flags. */
#define HV_CPUID_VERSION		1u
#define HV_CPUID_FLAG_SMP_UNVIRTUALIZED BIT_ULL(0)

/*
 * What gives the hypervisor control at a bounded interval whatever the guest
 * does (docs/hv.md "How the hypervisor gets control"). NONE: the guest can
 * starve the management port (e.g. spinning with interrupts disabled).
 */
enum hv_mgmt_tick {
	HV_MGMT_TICK_NONE = 0,
	HV_MGMT_TICK_HPET_NMI = 1,    /* SVM: HPET comparator, FSB delivery as NMI */
	HV_MGMT_TICK_VMX_PREEMPT = 2, /* VMX preemption timer */
};

struct hv {
	struct hv_boot_info *bi;
	struct uart16550 mgmt_uart;
	struct vm *vm;
	struct vcpu *vcpu;
	/*
	 * More CPUs exist than the one virtualized: their writes bypass the
	 * nested page tables, so dirty logging must refuse to start.
	 */
	bool smp_unvirtualized;
	u32 nr_online; /* vCPUs running their loop (hv_note_online) */
	u64 footprint_bytes;
	u64 next_stats_tsc;	       /* when the exit statistics go to the log next */
	u8 mgmt_tick;		       /* enum hv_mgmt_tick */
	struct hv_mgmt_poll mgmt_poll; /* how soon the guest gives the port a turn */
};

extern struct hv hv;

/* True when dirty logging may run (every CPU is virtualized). */
static inline bool hv_dirty_logging_allowed(void)
{
	return !__atomic_load_n(&hv.smp_unvirtualized, __ATOMIC_SEQ_CST);
}

/*
 * Stops the guest for good, on vCPU v's own CPU, outside the guest (after
 * hv_guest_fatal's report): marks the VM stopped and holds every vCPU out
 * of it. The boot CPU then serves the management port until the machine
 * is reset (hv_control_serve_stopped); another vCPU kicks the boot CPU out
 * of the guest and parks. Never returns.
 */
__attribute__((noreturn)) void hv_guest_stop(struct vcpu *v);

/* hv/exit.c: handles one exit; returns when the vCPU may run again. */
void hv_handle_exit(struct vcpu *v, struct hv_exit *exit);
void hv_log_exit_stats(struct vcpu *v);

/* arch backend hooks the core calls (arch/x86/svm/svm.c). */
int arch_hv_check_cpu(const char **why);
int arch_vcpu_create(struct vcpu *v, const struct hv_boot_info *bi);
void arch_vcpu_capture_live_state(struct vcpu *v, const struct hv_takeover *t);
/* Turns virtualization on in the calling CPU, for vCPU v. */
void arch_host_enter(struct vcpu *v);
/* Can the backend run more than one vCPU on this CPU? If not, *why (may be NULL) says why. */
bool arch_smp_supported(const char **why);
const char *arch_backend_name(void);

#endif /* PT_HV_HV_H */
