/*
 * nmi.efi: a guest's NMIs behave as on the bare CPU. pagetrail.efi starts it
 * (`pagetrail.efi \EFI\tests\nmi.efi`); it prints "ok NAME" / "not ok NAME why" lines on
 * the console (COM1), then "nmi: done, N failed", and powers the machine off.
 *
 * The CPU blocks NMIs from the delivery of one until the next IRET completes (AMD APM
 * Vol. 2, 8.2.3 "NMI—Non-Maskable-Interrupt Exception (Vector 2)"; Intel SDM Vol. 3A,
 * 6.7.1 "Handling Multiple NMIs"); an NMI that comes meanwhile is held and delivered at
 * the first instruction boundary after that IRET. The program sends itself NMIs through
 * its local APIC (ICR, delivery mode NMI, its own APIC ID) with interrupts disabled and
 * its own IDT gates for NMI, #BP and #UD (tests/guest/nmi_trap.S), each case ROUNDS
 * times:
 *  - nested: the NMI handler sends a second NMI and waits HOLD_MS: it must not arrive
 *    inside the handler, and must arrive right after the IRET (its saved RIP is the
 *    first one's: not one instruction of the interrupted code ran between);
 *  - around_iret: the same with the second NMI sent as the handler's last act;
 *  - exception_iret_in_nmi: the NMI handler sends a second NMI, waits (held), then
 *    raises #BP: the #BP handler's IRET ends NMI blocking as any IRET does, so the second
 *    NMI arrives right after it, inside the first handler (nesting the architecture
 *    wants, which also shows that the nesting detector of the other cases works);
 *  - nmi_in_exception: VMMCALL raises #UD (injected by the hypervisor, which hides SVM),
 *    whose handler sends an NMI: it arrives inside the #UD handler (exceptions do not
 *    block NMIs).
 * With the management tick on (SVM), the hypervisor intercepts every NMI and injects the
 * ones that are not its tick: tests/qemu/test_nmi.sh runs this program under it and on
 * bare QEMU (the reference: every case passes there too); tests/bochs/test_nmi.sh under
 * VMX in Bochs.
 *
 * It also prints what an intercepted CPUID costs the guest (min and median TSC cycles of
 * CPUID_SAMPLES CPUIDs of the hypervisor's leaf) for comparison with and without the tick.
 */
#include <efi.h>
#include <efilib.h>

#include "probe_lib.h"

extern void nmi_entry(void) __attribute__((visibility("hidden")));
extern void bp_entry(void) __attribute__((visibility("hidden")));
extern void ud_entry(void) __attribute__((visibility("hidden")));

#define VEC_NMI 2u
#define VEC_BP	3u

#define ROUNDS	 8
#define HOLD_MS	 30  /* a held NMI must not come in this long */
#define WAIT_MS	 500 /* an NMI that is due must come in this long */
#define MAX_RECS 8

/* Intel SDM Vol. 3A, 11.6.1 "Interrupt Command Register (ICR)". */
#define APIC_ID		 0x20u
#define APIC_ICR_LOW	 0x300u
#define APIC_ICR_HIGH	 0x310u
#define MSR_X2APIC_ID	 0x802u
#define MSR_X2APIC_ICR	 0x830u
#define ICR_NMI_ASSERT	 ((4u << 8) | (1u << 14)) /* delivery mode NMI, level assert */
#define VMMCALL_LEN	 3u
#define CPUID_SAMPLES	 101
#define CPUID_LOOP	 20000

enum nmi_mode { MODE_NESTED, MODE_AROUND_IRET, MODE_EXC_IN_NMI, MODE_IN_UD };

struct nmi_rec {
	UINT64 rip;
	unsigned depth, in_ud;
};

static UINT64 tsc_per_ms;
static UINT32 self_apic_id;
static volatile struct nmi_rec recs[MAX_RECS];
static volatile unsigned nmi_count, nmi_depth, ud_depth;
static volatile unsigned count_end_of_hold, count_after_int3;
static volatile enum nmi_mode mode;

static void self_nmi(void)
{
	if (!probe_apic_mmio) {
		__asm__ volatile("wrmsr" ::"c"(MSR_X2APIC_ICR), "a"(ICR_NMI_ASSERT),
				 "d"(self_apic_id)
				 : "memory");
		return;
	}
	*(volatile UINT32 *)(UINTN)(probe_apic_mmio + APIC_ICR_HIGH) = self_apic_id << 24;
	*(volatile UINT32 *)(UINTN)(probe_apic_mmio + APIC_ICR_LOW) = ICR_NMI_ASSERT;
}

/*
 * Spins ms, executing CPUID, which exits to the hypervisor: an NMI held by the guest's
 * blocking then waits across the hypervisor's turns too (should the CPU take it there,
 * the hypervisor must still give it to the guest right after its IRET).
 */
static void spin_ms(UINTN ms)
{
	UINT64 end = probe_rdtsc() + ms * tsc_per_ms;
	UINT32 a, b, c, d;

	while (probe_rdtsc() < end)
		cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
}

/* Waits up to ms for nmi_count to reach want. */
static BOOLEAN wait_count(unsigned want, UINTN ms)
{
	UINT64 end = probe_rdtsc() + ms * tsc_per_ms;

	while (nmi_count < want && probe_rdtsc() < end)
		__asm__ volatile("pause" ::: "memory");
	return nmi_count >= want;
}

void nmi_handler(UINT64 *frame) __attribute__((visibility("hidden")));
void nmi_handler(UINT64 *frame)
{
	unsigned n = nmi_count;

	if (n < MAX_RECS) {
		recs[n].rip = frame[0];
		recs[n].depth = nmi_depth;
		recs[n].in_ud = ud_depth;
	}
	nmi_count = n + 1;
	nmi_depth++;
	if (n == 0 && mode == MODE_NESTED) {
		self_nmi();
		spin_ms(HOLD_MS);
		count_end_of_hold = nmi_count;
	} else if (n == 0 && mode == MODE_AROUND_IRET) {
		self_nmi();
	} else if (n == 0 && mode == MODE_EXC_IN_NMI) {
		self_nmi();
		spin_ms(HOLD_MS);
		count_end_of_hold = nmi_count;
		__asm__ volatile("int3" ::: "memory");
		count_after_int3 = nmi_count;
	}
	nmi_depth--;
}

void bp_handler(UINT64 *frame) __attribute__((visibility("hidden")));
void bp_handler(UINT64 *frame)
{
	(void)frame; /* a trap: the saved RIP is already past the INT3 */
}

void ud_handler(UINT64 *frame) __attribute__((visibility("hidden")));
void ud_handler(UINT64 *frame)
{
	ud_depth++;
	if (mode == MODE_IN_UD) {
		self_nmi();
		wait_count(1, WAIT_MS);
	}
	ud_depth--;
	frame[0] += VMMCALL_LEN;
}

static void reset(enum nmi_mode m)
{
	for (unsigned i = 0; i < MAX_RECS; i++)
		recs[i] = (struct nmi_rec){0, 0, 0};
	nmi_count = nmi_depth = ud_depth = 0;
	count_end_of_hold = count_after_int3 = 0;
	mode = m;
}

/*
 * One round of mode m: NULL if it passed, else why it failed; *lost says that an NMI
 * sent never came (the round proves nothing about blocking then, see check_mode).
 */
static const CHAR16 *run_round(enum nmi_mode m, BOOLEAN *lost)
{
	reset(m);
	*lost = FALSE;
	if (m == MODE_IN_UD) {
		__asm__ volatile("vmmcall" ::: "memory");
		if (nmi_count == 0) {
			*lost = TRUE;
			return L"the NMI sent in the #UD handler never came";
		}
		if (nmi_count != 1)
			return L"more NMIs came than were sent";
		if (recs[0].in_ud != 1)
			return L"the NMI sent in the #UD handler came after it";
		return NULL;
	}
	self_nmi();
	if (!wait_count(2, WAIT_MS)) {
		*lost = TRUE;
		return nmi_count ? L"the second NMI never came" : L"no NMI came";
	}
	spin_ms(HOLD_MS);
	if (nmi_count != 2)
		return L"more NMIs came than were sent";
	if (m == MODE_EXC_IN_NMI) {
		if (count_end_of_hold != 1)
			return L"the second NMI came inside the first handler before any IRET";
		if (count_after_int3 != 2 || recs[1].depth != 1)
			return L"the second NMI did not come right after the #BP handler's IRET";
		return NULL;
	}
	if (recs[1].depth != 0 || (m == MODE_NESTED && count_end_of_hold != 1))
		return L"the second NMI came inside the first NMI's handler (before its IRET)";
	if (recs[1].rip != recs[0].rip)
		return L"the second NMI did not come at once after the IRET (RIPs differ)";
	return NULL;
}

/*
 * ROUNDS rounds that say something about blocking must pass. A round in which an NMI
 * never came is repeated (up to MAX_LOST times in all): with the management tick, an NMI
 * that reaches the hypervisor while its tick is due but not yet delivered is taken for
 * the tick and is lost to the guest (docs/hv.md, "How the hypervisor gets control"),
 * which is no statement about NMI blocking. Every other failure counts.
 */
#define MAX_LOST ROUNDS

static void check_mode(enum nmi_mode m, const char *name)
{
	const CHAR16 *why = NULL;
	unsigned failed = 0, lost = 0, done = 0;
	UINT64 rip0 = 0, rip1 = 0;

	while (done < ROUNDS && lost <= MAX_LOST) {
		BOOLEAN l;
		const CHAR16 *w = run_round(m, &l);

		if (l) {
			lost++;
			continue;
		}
		done++;
		if (w && !why) {
			why = w;
			rip0 = recs[0].rip;
			rip1 = recs[1].rip;
		}
		failed += w != NULL;
	}
	if (lost)
		Print(L"# %a: %u round(s) repeated: an NMI never came\n", name, lost);
	if (!why && done < ROUNDS)
		why = L"NMIs kept getting lost: too few rounds to judge";
	if (why)
		Print(L"# %a: %u of %u rounds failed; first: NMI RIPs %lx %lx\n", name, failed,
		      done, rip0, rip1);
	report(!why, name, why);
}

static void measure_cpuid(void)
{
	UINT64 t[CPUID_SAMPLES];
	UINT32 a, b, c, d;

	for (unsigned i = 0; i < CPUID_SAMPLES; i++) {
		UINT64 t0 = probe_rdtsc();

		cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
		t[i] = probe_rdtsc() - t0;
	}
	for (unsigned i = 1; i < CPUID_SAMPLES; i++)
		for (unsigned j = i; j > 0 && t[j - 1] > t[j]; j--) {
			UINT64 x = t[j];

			t[j] = t[j - 1];
			t[j - 1] = x;
		}
	Print(L"# cpuid 0x40000000: min %lu median %lu TSC cycles\n", t[0],
	      t[CPUID_SAMPLES / 2]);
}

/* The mean over CPUID_LOOP CPUIDs: what the exits the tick adds cost, spread over them. */
static void measure_cpuid_mean(void)
{
	UINT32 a, b, c, d;
	UINT64 t0 = probe_rdtsc();

	for (unsigned i = 0; i < CPUID_LOOP; i++)
		cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
	Print(L"# cpuid 0x40000000: mean %lu TSC cycles over %u\n",
	      (probe_rdtsc() - t0) / CPUID_LOOP, (unsigned)CPUID_LOOP);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	UINT64 apic_base, flags, t0;
	UINT16 cs;

	InitializeLib(image, systab);
	Print(L"nmi: start\n");
	measure_cpuid();
	measure_cpuid_mean();
	t0 = probe_rdtsc();
	uefi_call_wrapper(BS->Stall, 1, 20000);
	tsc_per_ms = (probe_rdtsc() - t0) / 20;
	apic_base = rdmsr(MSR_APIC_BASE);
	if (!tsc_per_ms || !(apic_base & APIC_BASE_ENABLE)) {
		report(FALSE, "nmi_setup", L"no TSC rate or the local APIC is disabled");
		goto out;
	}
	probe_apic_mmio = (apic_base & APIC_BASE_X2APIC) ? 0 : (apic_base & APIC_BASE_ADDR_MASK);
	self_apic_id = probe_apic_mmio ? apic_read(APIC_ID) >> 24 : (UINT32)rdmsr(MSR_X2APIC_ID);
	Print(L"# local APIC %a, ID %u, %lu TSC cycles/ms\n", probe_apic_mmio ? "xAPIC" : "x2APIC",
	      self_apic_id, tsc_per_ms);

	probe_setup_idt();
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	make_gate(&probe_idt[VEC_NMI * 2], nmi_entry, cs);
	make_gate(&probe_idt[VEC_BP * 2], bp_entry, cs);
	make_gate(&probe_idt[VEC_UD * 2], ud_entry, cs);
	flags = irq_save_and_load_probe_idt();
	check_mode(MODE_NESTED, "nested_nmi_after_iret");
	check_mode(MODE_AROUND_IRET, "nmi_sent_before_iret_after_it");
	check_mode(MODE_EXC_IN_NMI, "exception_iret_in_nmi_unblocks");
	check_mode(MODE_IN_UD, "nmi_in_exception_handler");
	irq_restore_and_load_fw_idt(flags);
out:
	Print(L"nmi: done, %d failed\n", probe_failures);
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
