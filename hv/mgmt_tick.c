/* SPDX-License-Identifier: MIT */
#include "hv/mgmt_tick.h"

#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "drivers/hpet.h"
#include "hv/acpi.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/page_alloc.h"

/*
 * MSI address and data (Intel SDM Vol. 3A, 11.11.1 "Message Address
 * Register Format" and 11.11.2 "Message Data Register Format"; AMD systems
 * use the same format): physical destination = the boot CPU's APIC ID,
 * delivery mode 100b = NMI (the vector is ignored), edge.
 */
#define MSI_ADDR_BASE		  0xfee00000u
#define MSI_ADDR_DEST_SHIFT	  12
#define MSI_DATA_DELIVERY_NMI	  (4u << 8)
#define CPUID_1_EBX_APIC_ID_SHIFT 24
#define MSI_MAX_DEST_ID		  0xffu
#define CPUID_LEAF_X2APIC_TOPO	  0x0bu /* EDX = the x2APIC ID */

/*
 * The boot CPU's APIC ID as an MSI can address it (8 bits), or -1. CPUID.1
 * EBX[31:24] holds only the low 8 bits of an x2APIC ID; leaf 0Bh has it all
 * (Intel SDM Vol. 2A CPUID; AMD APM Vol. 3 Appendix E, Fn0000_000B).
 */
static int tick_boot_apic_id(void)
{
	u32 id = x86_cpuid(1, 0).ebx >> CPUID_1_EBX_APIC_ID_SHIFT;

	if (x86_cpuid(0, 0).eax >= CPUID_LEAF_X2APIC_TOPO &&
	    x86_cpuid(CPUID_LEAF_X2APIC_TOPO, 0).ebx != 0)
		id = x86_cpuid(CPUID_LEAF_X2APIC_TOPO, 0).edx;
	return id > MSI_MAX_DEST_ID ? -1 : (int)id;
}

static struct {
	struct hpet hpet;
	u64 hpet_base;
	void *standin; /* all-ones page the guest reads in place of the HPET */
	u32 msi_addr;
	u64 rsdp;
	u32 slow_ticks, fast_ticks; /* HV_MGMT_TICK_US, HV_MGMT_TICK_FAST_US in counter ticks */
	u64 foreign;		    /* NMIs given to the guest */
} tick;

#define FOREIGN_NMI_LOG_LIMIT 16

static int tick_setup_hpet(const struct hv_boot_info *bi, const char **why)
{
	u64 table, fs_per_tick;
	int apic_id;

	if (!bi->acpi_rsdp) {
		*why = "the firmware gave no ACPI RSDP";
		return -1;
	}
	table = acpi_find_table(bi->acpi_rsdp, "HPET");
	if (!table) {
		*why = "no HPET table in ACPI";
		return -1;
	}
	if (acpi_hpet_base(table, &tick.hpet_base)) {
		*why = "the ACPI HPET table gives no page-aligned memory address";
		return -1;
	}
	if (hpet_probe(&tick.hpet, tick.hpet_base, why))
		return -1;
	if (hpet_pick_fsb_timer(&tick.hpet, why) < 0)
		return -1;
	fs_per_tick = tick.hpet.period_fs;
	tick.slow_ticks = (u32)((u64)HV_MGMT_TICK_US * 1000000000ull / fs_per_tick);
	tick.fast_ticks = (u32)((u64)HV_MGMT_TICK_FAST_US * 1000000000ull / fs_per_tick);
	apic_id = tick_boot_apic_id();
	if (apic_id < 0) {
		*why = "the boot CPU's APIC ID is above 255: an MSI cannot address it";
		return -1;
	}
	tick.standin = hv_page_alloc();
	if (!tick.standin) {
		*why = "out of pool memory for the HPET stand-in page";
		return -1;
	}
	for (u64 *p = tick.standin; p < (u64 *)tick.standin + PAGE_SIZE / 8; p++)
		*p = ~0ull;
	tick.rsdp = bi->acpi_rsdp;
	tick.msi_addr = MSI_ADDR_BASE | ((u32)apic_id << MSI_ADDR_DEST_SHIFT);
	hv_log("management tick: HPET at 0x%lx (%u comparators, %lu fs/tick), comparator %d "
	       "(%s), NMI every %u us to 0x%x; its MMIO page hidden",
	       tick.hpet_base, tick.hpet.nr_timers, tick.hpet.period_fs, tick.hpet.timer,
	       tick.hpet.periodic ? "32-bit periodic" : "64-bit one-shot, re-armed each tick",
	       HV_MGMT_TICK_US, tick.msi_addr);
	return 0;
}

void hv_mgmt_tick_init(const struct hv_boot_info *bi)
{
	const char *why = "";

	hv.mgmt_tick = arch_own_mgmt_tick();
	if (hv.mgmt_tick != HV_MGMT_TICK_NONE) {
		hv_log("management tick: the CPU's own (%s)",
		       hv.mgmt_tick == HV_MGMT_TICK_VMX_PREEMPT ? "VMX preemption timer" : "?");
		return;
	}
	if (bi->flags & HV_BOOT_NO_MGMT_TICK)
		why = "disabled by --no-mgmt-tick";
	else if (!arch_nmi_tick_supported())
		why = "this backend has neither its own timer nor NMI interception";
	else if (!tick_setup_hpet(bi, &why))
		hv.mgmt_tick = HV_MGMT_TICK_HPET_NMI;
	if (hv.mgmt_tick == HV_MGMT_TICK_NONE) {
		tick.hpet.timer = -1;
		hv_log("management tick: NONE (%s): NO bound on the answer time while the guest "
		       "runs with interrupts disabled",
		       why);
	}
}

bool hv_mgmt_tick_hidden_page(gpa_t *gpa, hpa_t *standin)
{
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		return false;
	*gpa = tick.hpet_base;
	*standin = hv_pa(tick.standin);
	return true;
}

void hv_mgmt_tick_start(void)
{
	int removed;

	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		return;
	/*
	 * Out of ACPI, nobody after us finds the HPET (Linux's hpet_enable
	 * would disable every comparator). Done here, when the firmware is
	 * about to resume as the guest, not in hv_init: a start that fails
	 * after hv_init leaves the firmware's tables as they were. Linux also
	 * evaluates the DSDT's HPET device, whose _STA reads the registers
	 * (QEMU: VEND, PRD): the stand-in page's all-ones make it report "not
	 * present".
	 */
	removed = acpi_remove_table(tick.rsdp, "HPET");
	if (removed > 0)
		hv_log("management tick: HPET table removed from ACPI (%d root table entries)",
		       removed);
	else
		hv_log("WARNING: management tick: the HPET table could not be removed from ACPI "
		       "(%d): the OS sees an HPET whose registers read all-ones",
		       removed);
	hpet_tick_start(&tick.hpet, tick.slow_ticks, tick.msi_addr, MSI_DATA_DELIVERY_NMI);
}

/*
 * Ours when the HPET counter has reached the tick that was due. Residual
 * ambiguity (documented in docs/hv.md): a foreign NMI arriving after a tick
 * fell due but before its NMI is claimed as the tick, and the tick's NMI,
 * which follows, goes to the guest in its place (the guest still gets one
 * NMI); if both are pending at once the CPU merges them into one (an NMI
 * is a latch, not a count) and the foreign one is lost.
 */
bool hv_mgmt_tick_claim_nmi(void)
{
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		return false;
	if (hpet_tick_claim(&tick.hpet))
		return true;
	if (tick.foreign++ < FOREIGN_NMI_LOG_LIMIT)
		hv_log(
		    "NMI that is not the management tick (HPET counter 0x%lx, tick due at 0x%lx, "
		    "last at 0x%lx): given to the guest",
		    tick.hpet.last_now, tick.hpet.expected, tick.hpet.last_due);
	return false;
}

void hv_mgmt_tick_fast(bool fast)
{
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI || tick.hpet.periodic)
		return;
	tick.hpet.period_ticks = fast ? tick.fast_ticks : tick.slow_ticks;
}

u64 hv_mgmt_tick_count(void)
{
	return tick.hpet.ticks;
}

u64 hv_mgmt_tick_echoes(void)
{
	return tick.hpet.echoes;
}
