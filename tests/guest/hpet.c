/*
 * hpet.efi: a UEFI guest that uses the HPET while PageTrail's management tick owns one of
 * its comparators (docs/hv.md "The guest's HPET"), or, started without the hypervisor, the
 * same checks on the bare HPET (the reference). pagetrail.efi starts it
 * (`pagetrail.efi \EFI\tests\hpet.efi`); it prints "ok NAME" / "not ok NAME why" lines and
 * "hpet: ..." facts on the console (COM1), then "hpet: done, N failed", and powers off.
 *
 * What it does, in order (registers: IA-PC HPET Specification 1.0a, 2.3 "Register
 * Definitions"):
 *   - finds the HPET in the ACPI XSDT, prints its comparator count ("hpet: comparators N",
 *     from NUM_TIM_CAP) and checks the table's Event Timer Block ID agrees;
 *   - starts the main counter, checks it advances (32- and 64-bit reads);
 *   - halts it: reads stay put; writes it, starts it: it goes on from the value written;
 *   - tries to take the first comparator it does not have (the tick's, under PageTrail):
 *     writes its configuration (interrupt on, FSB on), comparator and FSB route, checks
 *     they still read 0; halts the counter, says "hpet: spinning", and spins with
 *     interrupts disabled and no exiting instruction for SPIN_S seconds, while
 *     tests/qemu/test_hpet.sh asks the hypervisor for its tick count twice (only the tick
 *     can answer then); then starts the counter again;
 *   - uses its own last comparator one-shot, level-triggered: after the counter passes the
 *     comparator its General Interrupt Status bit is set, a write of 1 clears it;
 *   - uses comparator 0 periodic (Tn_VAL_SET_CNF, then the period): the comparator
 *     advances by the period and its status bit sets;
 *   - no status bit of a comparator it does not have ever reads 1.
 * No check depends on how fast anything runs: waits are bounded by the TSC only to end
 * a hang, and the counter's progress is what is waited for.
 */
#include <efi.h>
#include <efilib.h>

#include "tests/guest/efi_tsc.h"

#define HPET_GCAP	  0x000u
#define HPET_GEN_CONF	  0x010u
#define HPET_GINTR_STA	  0x020u
#define HPET_COUNTER	  0x0f0u
#define HPET_TN_CONF(n)	  (0x100u + 0x20u * (n))
#define HPET_TN_CMP(n)	  (0x108u + 0x20u * (n))
#define HPET_TN_FSB(n)	  (0x110u + 0x20u * (n))
#define GEN_ENABLE	  1u
#define TN_LEVEL	  (1u << 1)
#define TN_INT_ENB	  (1u << 2)
#define TN_PERIODIC	  (1u << 3)
#define TN_PER_CAP	  (1u << 4)
#define TN_SIZE_CAP	  (1u << 5)
#define TN_VAL_SET	  (1u << 6)
#define TN_32MODE	  (1u << 8)
#define TN_ROUTE_SHIFT	  9
#define TN_FSB_EN	  (1u << 14)
#define NUM_TIM(cap)	  ((((cap) >> 8) & 0x1fu) + 1)
#define HPET_DEFAULT_BASE 0xfed00000ull
#define SPIN_S		  5
#define WAIT_LIMIT_S	  20 /* only to end a hang */

static volatile UINT8 *hpet;
static unsigned failures;
static UINT64 tsc_per_ms;
static EFI_GUID acpi20_guid = ACPI_20_TABLE_GUID;

static UINT32 rd32(UINT32 off)
{
	return *(volatile UINT32 *)(hpet + off);
}

static UINT64 rd64(UINT32 off)
{
	return *(volatile UINT64 *)(hpet + off);
}

static void wr32(UINT32 off, UINT32 v)
{
	*(volatile UINT32 *)(hpet + off) = v;
}

static void report(BOOLEAN ok, const char *name, const CHAR16 *why, UINT64 a, UINT64 b)
{
	if (ok) {
		Print(L"ok %a\n", name);
	} else {
		failures++;
		Print(L"not ok %a %s (0x%lx 0x%lx)\n", name, why, a, b);
	}
}

/* The HPET table of the firmware's ACPI 2.0 XSDT, or NULL. */
static const UINT8 *find_hpet_table(void)
{
	const UINT8 *rsdp = NULL, *xsdt;
	UINT32 len, i;

	if (EFI_ERROR(LibGetSystemConfigurationTable(&acpi20_guid, (void **)&rsdp)) || !rsdp)
		return NULL;
	xsdt = (const UINT8 *)(UINTN) * (const UINT64 *)(rsdp + 24);
	if (!xsdt || CompareMem(xsdt, "XSDT", 4))
		return NULL;
	len = *(const UINT32 *)(xsdt + 4);
	for (i = 36; i + 8 <= len; i += 8) {
		const UINT8 *t = (const UINT8 *)(UINTN) * (const UINT64 *)(xsdt + i);

		if (t && !CompareMem(t, "HPET", 4))
			return t;
	}
	return NULL;
}

/* Waits until the 64-bit counter reaches `until` (a hang ends after WAIT_LIMIT_S). */
static BOOLEAN wait_counter(UINT64 until)
{
	UINT64 end = efi_rdtsc() + WAIT_LIMIT_S * 1000 * tsc_per_ms;

	while ((INT64)(rd64(HPET_COUNTER) - until) < 0)
		if (efi_rdtsc() > end)
			return FALSE;
	return TRUE;
}

static BOOLEAN wait_status(unsigned t)
{
	UINT64 end = efi_rdtsc() + WAIT_LIMIT_S * 1000 * tsc_per_ms;

	while (!(rd32(HPET_GINTR_STA) & (1u << t)))
		if (efi_rdtsc() > end)
			return FALSE;
	return TRUE;
}

/* The highest interrupt route comparator t allows (Tn_INT_ROUTE_CAP), or -1. */
static int route_of(unsigned t)
{
	UINT32 cap = rd32(HPET_TN_CONF(t) + 4);
	int r;

	for (r = 31; r >= 0; r--)
		if (cap & (1u << r))
			return r;
	return -1;
}

static void check_counter(UINT64 ticks_per_ms)
{
	UINT64 a, b, c;
	UINT32 lo;

	wr32(HPET_GEN_CONF, rd32(HPET_GEN_CONF) | GEN_ENABLE);
	a = rd64(HPET_COUNTER);
	lo = rd32(HPET_COUNTER);
	uefi_call_wrapper(BS->Stall, 1, 2000);
	b = rd64(HPET_COUNTER);
	report(b > a && lo != rd32(HPET_COUNTER), "hpet_counter_advances",
	       L"the main counter does not count", a, b);

	wr32(HPET_GEN_CONF, rd32(HPET_GEN_CONF) & ~GEN_ENABLE);
	a = rd64(HPET_COUNTER);
	uefi_call_wrapper(BS->Stall, 1, 2000);
	b = rd64(HPET_COUNTER);
	report(a == b && !(rd32(HPET_GEN_CONF) & GEN_ENABLE), "hpet_halt_stops_counter",
	       L"the halted counter moved, or ENABLE_CNF reads 1", a, b);

	wr32(HPET_COUNTER, 0x1000);
	wr32(HPET_COUNTER + 4, 0);
	a = rd64(HPET_COUNTER);
	wr32(HPET_GEN_CONF, rd32(HPET_GEN_CONF) | GEN_ENABLE);
	uefi_call_wrapper(BS->Stall, 1, 2000);
	b = rd64(HPET_COUNTER);
	c = 0x1000 + 10000 * ticks_per_ms; /* far more than 2 ms of counting */
	report(a == 0x1000 && b > 0x1000 && b < c, "hpet_counter_written_and_restarted",
	       L"the counter did not go on from the value written", a, b);
}

/* The first comparator the guest does not have: the tick's, under PageTrail. */
static void attack_absent(unsigned n)
{
	wr32(HPET_TN_CONF(n), TN_INT_ENB | TN_FSB_EN | TN_PERIODIC);
	wr32(HPET_TN_CMP(n), 0x1234);
	wr32(HPET_TN_CMP(n) + 4, 0);
	wr32(HPET_TN_FSB(n), 0x4ff);
	wr32(HPET_TN_FSB(n) + 4, 0x1000);
	report(rd64(HPET_TN_CONF(n)) == 0 && rd64(HPET_TN_CMP(n)) == 0 && rd64(HPET_TN_FSB(n)) == 0,
	       "hpet_absent_comparator_stays_absent",
	       L"the comparator past NUM_TIM_CAP kept a write", rd64(HPET_TN_CONF(n)),
	       rd64(HPET_TN_CMP(n)));
	/* A foreign FSB route: an address outside the MSI window is a DMA write. */
	Print(L"hpet: wrote comparator %u's configuration, comparator and FSB route\n", n);
}

static void spin_irqs_off(void)
{
	UINT64 end;

	/* The guest's counter is halted meanwhile: the tick's must not be. */
	wr32(HPET_GEN_CONF, rd32(HPET_GEN_CONF) & ~GEN_ENABLE);
	Print(L"hpet: spinning %u s with interrupts disabled and the counter halted\n", SPIN_S);
	end = efi_rdtsc() + SPIN_S * 1000 * tsc_per_ms;
	__asm__ volatile("cli" ::: "memory");
	while (efi_rdtsc() < end)
		__asm__ volatile("pause");
	__asm__ volatile("sti" ::: "memory");
	wr32(HPET_GEN_CONF, rd32(HPET_GEN_CONF) | GEN_ENABLE);
	Print(L"hpet: spin over\n");
}

static void check_one_shot(unsigned t, UINT64 ticks_per_ms)
{
	UINT32 conf = rd32(HPET_TN_CONF(t));
	int route = route_of(t);
	UINT64 when, cmp;
	BOOLEAN fired, cleared;

	if (route < 0) {
		report(FALSE, "hpet_one_shot_fires", L"no interrupt route", t, 0);
		return;
	}
	conf &= ~(TN_INT_ENB | TN_PERIODIC | TN_FSB_EN | TN_32MODE | TN_VAL_SET |
		  (0x1fu << TN_ROUTE_SHIFT));
	conf |= TN_LEVEL | ((UINT32)route << TN_ROUTE_SHIFT);
	wr32(HPET_TN_CONF(t), conf);
	/* Far enough ahead that the programming, an exit per write, ends before the match. */
	when = rd64(HPET_COUNTER) + 200 * ticks_per_ms;
	if (!(conf & TN_SIZE_CAP))
		when &= 0xffffffffull;
	wr32(HPET_TN_CMP(t), (UINT32)when);
	wr32(HPET_TN_CMP(t) + 4, (UINT32)(when >> 32));
	cmp = rd64(HPET_TN_CMP(t));
	wr32(HPET_TN_CONF(t), conf | TN_INT_ENB);
	report(cmp == when, "hpet_comparator_reads_back", L"the comparator reads another value",
	       when, cmp);
	fired = wait_counter(when + ticks_per_ms) && wait_status(t);
	report(fired, "hpet_one_shot_fires",
	       L"no status bit after the counter passed the comparator", rd64(HPET_COUNTER),
	       rd32(HPET_GINTR_STA));
	wr32(HPET_GINTR_STA, 1u << t);
	cleared = !(rd32(HPET_GINTR_STA) & (1u << t));
	report(cleared, "hpet_status_write_clears", L"the status bit stayed set", t,
	       rd32(HPET_GINTR_STA));
	wr32(HPET_TN_CONF(t), conf & ~TN_INT_ENB);
	wr32(HPET_GINTR_STA, 1u << t);
}

static void check_periodic(unsigned t, UINT64 ticks_per_ms)
{
	UINT32 conf = rd32(HPET_TN_CONF(t));
	int route = route_of(t);
	UINT64 period = 2 * ticks_per_ms, first, cmp, end;
	BOOLEAN fired;

	if (!(conf & TN_PER_CAP) || route < 0) {
		Print(L"hpet: comparator %u cannot be periodic: periodic check skipped\n", t);
		return;
	}
	conf &= ~(TN_INT_ENB | TN_FSB_EN | TN_VAL_SET | (0x1fu << TN_ROUTE_SHIFT));
	conf |= TN_LEVEL | TN_PERIODIC | TN_32MODE | ((UINT32)route << TN_ROUTE_SHIFT);
	/*
	 * As Linux's hpet_clkevt_set_state_periodic: accumulator with VAL_SET, then the period.
	 * Until the second write the increment is the first value written (QEMU, and the spec's
	 * "value last written"): the first match lies 200 ms ahead so that it cannot come
	 * between the two writes, each an exit under the hypervisor, on a loaded host.
	 */
	first = (UINT32)(rd32(HPET_COUNTER) + 100 * period);
	wr32(HPET_TN_CONF(t), conf | TN_VAL_SET | TN_INT_ENB);
	wr32(HPET_TN_CMP(t), (UINT32)first);
	wr32(HPET_TN_CMP(t), (UINT32)period);
	fired = wait_counter((rd64(HPET_COUNTER) & ~0xffffffffull) + first + 3 * period) &&
		wait_status(t);
	/*
	 * QEMU moves the accumulator only when its timer callback runs, and not at all when it
	 * runs exactly at the match (then one tick later): on a loaded host the value read
	 * can lag the counter. Wait for it to move (a hang ends after WAIT_LIMIT_S).
	 */
	end = efi_rdtsc() + WAIT_LIMIT_S * 1000 * tsc_per_ms;
	while ((cmp = rd32(HPET_TN_CMP(t))) == (UINT32)first && efi_rdtsc() < end)
		;
	report(fired && (INT32)((UINT32)cmp - (UINT32)first) > 0 &&
		   ((UINT32)cmp - (UINT32)first) % (UINT32)period == 0,
	       "hpet_periodic_advances",
	       L"the periodic comparator did not fire, or did not advance by its period", first,
	       cmp);
	wr32(HPET_TN_CONF(t), conf & ~(TN_INT_ENB | TN_PERIODIC));
	wr32(HPET_GINTR_STA, 1u << t);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	const UINT8 *table;
	UINT64 cap, t0, ticks_per_ms;
	unsigned n;

	InitializeLib(image, systab);
	t0 = efi_rdtsc();
	uefi_call_wrapper(BS->Stall, 1, 100000);
	tsc_per_ms = (efi_rdtsc() - t0) / 100;
	if (!tsc_per_ms)
		tsc_per_ms = 1;
	table = find_hpet_table();
	report(table != NULL, "hpet_acpi_table", L"no HPET table in the XSDT", 0, 0);
	hpet = (volatile UINT8 *)(UINTN)(table ? *(const UINT64 *)(table + 44) : HPET_DEFAULT_BASE);
	cap = rd64(HPET_GCAP);
	n = NUM_TIM(cap);
	Print(L"hpet: base 0x%lx comparators %u period %lu fs\n", (UINT64)(UINTN)hpet, n,
	      cap >> 32);
	if (cap == ~0ull || (cap >> 32) == 0 || (cap >> 32) > 100000000ull) {
		report(FALSE, "hpet_present", L"the capabilities register reads no HPET", cap, 0);
		goto out;
	}
	report(TRUE, "hpet_present", L"", 0, 0);
	report(!table || NUM_TIM(*(const UINT32 *)(table + 36)) == n, "hpet_acpi_block_id_agrees",
	       L"the ACPI table's Event Timer Block ID counts other comparators",
	       table ? *(const UINT32 *)(table + 36) : 0, cap);
	ticks_per_ms = 1000000000000ull / (cap >> 32);

	check_counter(ticks_per_ms);
	attack_absent(n);
	spin_irqs_off();
	report(!(rd32(HPET_GINTR_STA) & ~((1u << n) - 1)), "hpet_status_only_own_comparators",
	       L"a status bit of a comparator the guest does not have", rd32(HPET_GINTR_STA), n);
	check_one_shot(n - 1, ticks_per_ms);
	check_periodic(0, ticks_per_ms);
	report(!(rd32(HPET_GINTR_STA) & ~((1u << n) - 1)), "hpet_status_only_own_comparators_after",
	       L"a status bit of a comparator the guest does not have", rd32(HPET_GINTR_STA), n);
out:
	Print(L"hpet: done, %u failed\n", failures);
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
