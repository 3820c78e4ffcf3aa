/* SPDX-License-Identifier: MIT */
/*
 * The management tick: a periodic event the hypervisor owns and the guest
 * cannot mask, so the management port is polled at a bounded interval even
 * while the guest runs with interrupts disabled (docs/hv.md "How the
 * hypervisor gets control").
 *
 * VMX has one in the CPU (the VMX preemption timer, arch/x86/vmx). SVM has
 * none: the hypervisor takes an HPET comparator and has it send an NMI to
 * the boot CPU through FSB delivery every HV_MGMT_TICK_US; the NMI is
 * intercepted (#VMEXIT(NMI), HV_EXIT_NMI). The guest keeps the rest of the
 * HPET: its MMIO page is absent from the nested page tables and every access
 * is emulated (hv/vhpet.h) as an HPET with one comparator fewer.
 */
#ifndef PT_HV_MGMT_TICK_H
#define PT_HV_MGMT_TICK_H

#include "hv/boot.h"
#include "hv/mgmt_poll.h"

#include <pt/types.h>

/*
 * Intervals (hv/mgmt_poll.h): HV_MGMT_TICK_US idle, the protocol's credit
 * flow control needs no faster (docs/protocol.md); while a reply is going
 * out (hv_control_wants_poll), as the line needs: the UART takes 16 bytes
 * per poll, so a reply of a few hundred bytes needs many polls.
 */

/*
 * Decides hv.mgmt_tick and logs the decision (hv_init, firmware context,
 * after hv_page_alloc_init, before vm_create), its fast interval from
 * *poll. On SVM, unless disabled by
 * --no-mgmt-tick: finds the HPET in ACPI, checks it is free and can deliver
 * through FSB, picks a comparator. Never fails the start: without a tick,
 * the log and hv.mgmt_tick say that no answer-time bound holds.
 */
void hv_mgmt_tick_init(const struct hv_boot_info *bi, const struct hv_mgmt_poll *poll);
/* The guest-physical page of the HPET whose accesses are emulated: false if none. */
bool hv_mgmt_tick_hpet_page(gpa_t *gpa);
struct vcpu;
/*
 * A guest access of `size` bytes to the HPET page at `gpa` (a store of *val,
 * or a load into *val). 0 once emulated (a write the policy refuses is
 * logged and counted, and the guest goes on), -1 if it cannot be: not the
 * HPET page, or not an aligned 4- or 8-byte access (the caller injects #GP).
 */
int hv_mgmt_tick_hpet_access(struct vcpu *v, gpa_t gpa, bool write, unsigned int size, u64 *val);
/* Guest accesses to the HPET emulated, and writes (or parts) refused. */
u64 hv_mgmt_tick_hpet_accesses(void);
u64 hv_mgmt_tick_hpet_refused(void);
/*
 * Host entry, GIF = 0, right before the first VMRUN: the ACPI HPET table's
 * block ID loses the tick's comparator and the comparator starts.
 */
void hv_mgmt_tick_start(void);
/*
 * Fast ticks while `fast` (poll->fast_ns given to hv_mgmt_tick_init, or
 * HV_MGMT_TICK_FAST_US when the line's rate is unknown), else HV_MGMT_TICK_US. The
 * interval changes at the next re-arming (the tick already armed stays: an
 * NMI it may have raised must still be recognized). One-shot comparators
 * only; a periodic one keeps its interval.
 */
void hv_mgmt_tick_fast(bool fast);
/*
 * An NMI made the guest exit: true if it was the tick (the host has taken
 * it), false if it came from elsewhere and belongs to the guest.
 */
bool hv_mgmt_tick_claim_nmi(void);
/* NMIs claimed as ticks so far, and as second NMIs of a tick (HPET_ECHO_FRACTION). */
u64 hv_mgmt_tick_count(void);
u64 hv_mgmt_tick_echoes(void);

#endif /* PT_HV_MGMT_TICK_H */
