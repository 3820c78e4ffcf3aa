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
 * intercepted (#VMEXIT(NMI), HV_EXIT_NMI). The HPET is taken away from the
 * guest first: its ACPI table leaves the XSDT/RSDT and its MMIO page reads
 * as all-ones ("no device") and refuses writes (#GP, counted as hidden
 * accesses).
 */
#ifndef PT_HV_MGMT_TICK_H
#define PT_HV_MGMT_TICK_H

#include "hv/boot.h"

#include <pt/types.h>

/* Tick interval; the protocol's credit flow control needs no faster (docs/protocol.md). */
#define HV_MGMT_TICK_US 10000u
/*
 * While a reply is going out (hv_control_wants_poll): the UART takes 16
 * bytes per poll, so a reply of a few hundred bytes needs many polls.
 */
#define HV_MGMT_TICK_FAST_US 1000u

/*
 * Decides hv.mgmt_tick and logs the decision (hv_init, firmware context,
 * after hv_page_alloc_init, before vm_create). On SVM, unless disabled by
 * --no-mgmt-tick: finds the HPET in ACPI, checks it is free and can deliver
 * through FSB, picks a comparator. Never fails the start: without a tick,
 * the log and hv.mgmt_tick say that no answer-time bound holds.
 */
void hv_mgmt_tick_init(const struct hv_boot_info *bi);
/*
 * The guest-physical page the tick hides (the HPET's MMIO page), and the
 * pool page that stands in for it (read-only, all-ones): false if none.
 */
bool hv_mgmt_tick_hidden_page(gpa_t *gpa, hpa_t *standin);
/*
 * Host entry, GIF = 0, right before the first VMRUN: the HPET table leaves
 * the ACPI root tables and the comparator starts.
 */
void hv_mgmt_tick_start(void);
/*
 * Fast ticks (HV_MGMT_TICK_FAST_US) while `fast`, else HV_MGMT_TICK_US. The
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
