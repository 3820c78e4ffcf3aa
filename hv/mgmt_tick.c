/* SPDX-License-Identifier: MIT */
#include "hv/mgmt_tick.h"

#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "drivers/hpet.h"
#include "hv/acpi.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/vcpu.h"
#include "hv/vhpet.h"

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
	u64 hpet_table;	    /* its ACPI table (the guest keeps it) */
	struct vhpet vhpet; /* the guest's view: one comparator fewer */
	u32 msi_addr;
	u32 slow_ticks, fast_ticks; /* HV_MGMT_TICK_US, the fast interval in counter ticks */
	u64 fast_ns;		    /* the fast interval */
	u64 foreign;		    /* NMIs given to the guest */
} tick;

#define FOREIGN_NMI_LOG_LIMIT 16

static int tick_setup_hpet(const struct hv_boot_info *bi, const struct hv_mgmt_poll *poll,
			   const char **why)
{
	u64 table;
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
	tick.hpet_table = table;
	if (acpi_hpet_base(table, &tick.hpet_base)) {
		*why = "the ACPI HPET table gives no page-aligned memory address";
		return -1;
	}
	if (hpet_probe(&tick.hpet, tick.hpet_base, why))
		return -1;
	if (hpet_pick_fsb_timer(&tick.hpet, why) < 0)
		return -1;
	/* hv/mgmt_poll.h: from the line's rate, or the fixed interval without it. */
	tick.fast_ns = poll->fast_ns ? poll->fast_ns : HV_MGMT_TICK_FAST_US * 1000ull;
	tick.slow_ticks = hv_mgmt_poll_ns_to_hpet(HV_MGMT_TICK_US * 1000ull, tick.hpet.period_fs);
	tick.fast_ticks = hv_mgmt_poll_ns_to_hpet(tick.fast_ns, tick.hpet.period_fs);
	apic_id = tick_boot_apic_id();
	if (apic_id < 0) {
		*why = "the boot CPU's APIC ID is above 255: an MSI cannot address it";
		return -1;
	}
	/* The guest's view as the firmware leaves it, before the tick starts the counter. */
	if (vhpet_init(&tick.vhpet, &tick.hpet, why))
		return -1;
	tick.msi_addr = MSI_ADDR_BASE | ((u32)apic_id << MSI_ADDR_DEST_SHIFT);
	hv_log("management tick: HPET at 0x%lx (%u comparators, %lu fs/tick), comparator %d "
	       "(%s), NMI every %u us to 0x%x; the guest keeps the HPET with %u comparators",
	       tick.hpet_base, tick.hpet.nr_timers, tick.hpet.period_fs, tick.hpet.timer,
	       tick.hpet.periodic ? "32-bit periodic" : "64-bit one-shot, re-armed each tick",
	       HV_MGMT_TICK_US, tick.msi_addr, tick.vhpet.nr_guest);
	if (tick.hpet.periodic)
		hv_log("management tick: periodic: it stays at %u us while a reply goes out",
		       HV_MGMT_TICK_US);
	else
		hv_log("management tick: every %lu.%lu us while a reply goes out (%u HPET ticks%s)",
		       tick.fast_ns / 1000, tick.fast_ns % 1000 / 100, tick.fast_ticks,
		       poll->fast_ns ? ", from the line's rate" : ": the line's rate is unknown");
	return 0;
}

void hv_mgmt_tick_init(const struct hv_boot_info *bi, const struct hv_mgmt_poll *poll)
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
	else if (!tick_setup_hpet(bi, poll, &why))
		hv.mgmt_tick = HV_MGMT_TICK_HPET_NMI;
	if (hv.mgmt_tick == HV_MGMT_TICK_NONE) {
		tick.hpet.timer = -1;
		hv_log("management tick: NONE (%s): NO bound on the answer time while the guest "
		       "runs with interrupts disabled",
		       why);
	}
}

bool hv_mgmt_tick_hpet_page(gpa_t *gpa)
{
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		return false;
	*gpa = tick.hpet_base;
	return true;
}

void hv_mgmt_tick_start(void)
{
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		return;
	/*
	 * The ACPI table stays (the guest keeps the HPET); its Event Timer
	 * Block ID copies the capabilities' low half (IA-PC HPET 1.0a, 3.2.4
	 * "The ACPI 2.0 HPET Description Table (HPET)"), so it too counts one
	 * comparator fewer. Done here, when the firmware is about to resume as
	 * the guest: a start that fails after hv_init leaves the table as it was.
	 */
	if (acpi_hpet_set_block_id(tick.hpet_table, vhpet_guest_gcap_lo(&tick.vhpet)))
		hv_log("WARNING: management tick: the ACPI HPET table's block ID could not be "
		       "changed: it still counts the tick's comparator (the registers do not)");
	hpet_tick_start(&tick.hpet, tick.slow_ticks, tick.msi_addr, MSI_DATA_DELIVERY_NMI);
}

#define HPET_REFUSAL_LOG_LIMIT 16

int hv_mgmt_tick_hpet_access(struct vcpu *v, gpa_t gpa, bool write, unsigned int size, u64 *val)
{
	u32 off = (u32)(gpa & (PAGE_SIZE - 1));
	const char *why = "";

	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI || (gpa & PAGE_MASK) != tick.hpet_base)
		return -1;
	/* IA-PC HPET 1.0a, 2.3.1 "Register Overview": 32- and 64-bit accesses, aligned. */
	if ((size != 4 && size != 8) || (off & (size - 1)))
		return -1;
	if (!write) {
		*val = vhpet_read(&tick.vhpet, off, size);
		return 0;
	}
	if (vhpet_write(&tick.vhpet, off, size, *val, &why) &&
	    __atomic_load_n(&tick.vhpet.refused, __ATOMIC_RELAXED) <= HPET_REFUSAL_LOG_LIMIT)
		hv_log("HPET write refused: vCPU %u rip=0x%lx offset 0x%x value 0x%lx: %s", v->id,
		       v->rip, off, *val, why);
	return 0;
}

u64 hv_mgmt_tick_hpet_accesses(void)
{
	return __atomic_load_n(&tick.vhpet.accesses, __ATOMIC_RELAXED);
}

u64 hv_mgmt_tick_hpet_refused(void)
{
	return __atomic_load_n(&tick.vhpet.refused, __ATOMIC_RELAXED);
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
