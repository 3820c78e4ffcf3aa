/*
 * probe.efi: what a guest of PageTrail sees on SVM, checked from inside the
 * virtualized firmware. pagetrail.efi starts it (`pagetrail.efi \EFI\tests\probe.efi`);
 * it prints one line per check on the console (COM1), "ok NAME" or "not ok NAME why",
 * then "probe: done, N failed", and powers the machine off.
 *
 * Bare QEMU TCG already sets CPUID.1:ECX[31] and answers leaf 0x40000000 (with
 * "TCGTCGTCGTCG"), so only the signature proves that PageTrail answers; started without
 * the hypervisor, the probe must report "not ok cpuid_hv_signature" (the negative control
 * in tests/qemu/test_probe.sh).
 *
 * The guest's HPET (one comparator fewer beside the management tick's) is hpet.efi's
 * (tests/guest/hpet.c, tests/qemu/test_hpet.sh).
 *
 * The SVM instructions run through TRY_INSN (probe_lib.h, shared with the VMX probe),
 * which catches #UD and #GP with a private copy of the firmware's IDT.
 */
#include <efi.h>
#include <efilib.h>

#include "probe_lib.h"

#define MSR_EFER  0xc0000080u
#define EFER_SVME (1ull << 12)
#define EFER_RESERVED_BIT2 (1ull << 2) /* AMD APM Vol. 2, 3.1.7: reserved, MBZ */

#define CPUID_80000001_ECX_SVM (1u << 2)

static UINT64 *scratch_page;

/* Long enough for the test script to send a management request while the probe halts. */
#define PROBE_HALT_MS 4000

static void check_cpuid(void)
{
	UINT32 a, b, c, d;
	char sig[13];

	cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
	CopyMem(sig, &b, 4);
	CopyMem(sig + 4, &c, 4);
	CopyMem(sig + 8, &d, 4);
	sig[12] = 0;
	for (int i = 0; i < 12; i++)
		if ((unsigned char)sig[i] < 0x20 || (unsigned char)sig[i] > 0x7e)
			sig[i] = sig[i] ? '?' : 0;
	Print(L"# cpuid 0x40000000: eax=%08x ebx=%08x ecx=%08x edx=%08x \"%a\"\n", a, b, c, d, sig);
	report(a >= CPUID_HV_BASE && a <= CPUID_HV_BASE + 0xff, "cpuid_hv_max_leaf",
	       L"EAX is not a leaf in 0x40000000..0x400000ff");
	report(cpuid_hv_signature_is_pagetrail(b, c, d), "cpuid_hv_signature",
	       L"EBX/ECX/EDX are not \"PageTrailHV\\0\"");

	cpuid(1, &a, &b, &c, &d);
	report(!!(c & CPUID_1_ECX_HYPERVISOR), "cpuid_1_ecx_hypervisor_bit",
	       L"CPUID.1:ECX[31] is clear");

	cpuid(0x80000001u, &a, &b, &c, &d);
	report(!(c & CPUID_80000001_ECX_SVM), "cpuid_svm_hidden",
	       L"CPUID.80000001h:ECX[2] (SVM) is set");
}

struct svm_insn {
	const char *name;
	UINT64 (*run)(UINT64 rax);
};

/* RAX points at a private page: should VMSAVE ever complete it writes there, and the
 * following VMLOAD reads back what VMSAVE stored. CLGI runs before STGI for the same
 * reason: whatever one does, the other undoes. */
static UINT64 run_vmsave(UINT64 rax)
{
	return TRY_INSN("vmsave %%rax", rax, 0, 0);
}
static UINT64 run_vmload(UINT64 rax)
{
	return TRY_INSN("vmload %%rax", rax, 0, 0);
}
static UINT64 run_vmrun(UINT64 rax)
{
	return TRY_INSN("vmrun %%rax", rax, 0, 0);
}
static UINT64 run_clgi(UINT64 rax)
{
	return TRY_INSN("clgi", rax, 0, 0);
}
static UINT64 run_stgi(UINT64 rax)
{
	return TRY_INSN("stgi", rax, 0, 0);
}
static UINT64 run_skinit(UINT64 rax)
{
	return TRY_INSN("skinit %%eax", rax, 0, 0);
}
static UINT64 run_invlpga(UINT64 rax)
{
	return TRY_INSN("invlpga %%rax, %%ecx", rax, 0, 0);
}

static const struct svm_insn svm_insns[] = {
    {"vmsave", run_vmsave}, {"vmload", run_vmload}, {"vmrun", run_vmrun},     {"clgi", run_clgi},
    {"stgi", run_stgi},	    {"skinit", run_skinit}, {"invlpga", run_invlpga},
};

static void check_svm_insns(const char *suffix)
{
	for (UINTN i = 0; i < sizeof(svm_insns) / sizeof(svm_insns[0]); i++) {
		char name[64], rf_name[72];
		UINT64 v = svm_insns[i].run((UINT64)scratch_page);
		UINTN n = 0;

		for (const char *s = "ud_"; *s; s++)
			name[n++] = *s;
		for (const char *s = svm_insns[i].name; *s; s++)
			name[n++] = *s;
		for (const char *s = suffix; *s; s++)
			name[n++] = *s;
		name[n] = 0;
		report(v == VEC_UD, name, vector_name(v));
		report_rf(v, name_prefixed(rf_name, sizeof(rf_name), "rf_", name));
	}
}

static void check_efer(void)
{
	UINT64 efer0 = rdmsr(MSR_EFER), efer1, v;

	Print(L"# EFER=%lx\n", efer0);
	report(!(efer0 & EFER_SVME), "efer_svme_reads_zero", L"EFER.SVME reads 1");

	/* The hypervisor may ignore the write or raise #GP (SVM is not offered): both are
	 * harmless if EFER then reads as before and the SVM instructions still fault. */
	v = try_wrmsr(MSR_EFER, efer0 | EFER_SVME);
	efer1 = rdmsr(MSR_EFER);
	Print(L"# wrmsr EFER|SVME: %s, EFER now %lx\n",
	      v == VEC_NONE ? L"completed" : vector_name(v), efer1);
	if (efer1 & EFER_SVME) {
		/* Real SVM is enabled now: VMLOAD and friends would run for real. Undo it
		 * and skip them. */
		try_wrmsr(MSR_EFER, efer0);
		report(FALSE, "efer_svme_write_harmless", L"EFER.SVME reads 1 after the write");
		probe_failures++;
		Print(L"not ok ud_after_svme_write skipped: EFER.SVME could really be set\n");
		return;
	}
	report(v != VEC_UD && efer1 == efer0, "efer_svme_write_harmless",
	       L"EFER changed or the write raised #UD");
	/* A reserved EFER bit: the hypervisor refuses the write with #GP (hv/exit.c). */
	v = try_wrmsr(MSR_EFER, efer0 | EFER_RESERVED_BIT2);
	if (rdmsr(MSR_EFER) != efer0)
		try_wrmsr(MSR_EFER, efer0);
	report(v == VEC_GP, "gp_wrmsr_efer_reserved", vector_name(v));
	report_rf(v, "rf_gp_wrmsr_efer_reserved");
	check_svm_insns("_after_svme_write");
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_PHYSICAL_ADDRESS page = 0;
	EFI_STATUS status;

	InitializeLib(image, systab);
	Print(L"probe: start\n");
	status = uefi_call_wrapper(BS->AllocatePages, 4, AllocateAnyPages, EfiLoaderData, 1, &page);
	if (EFI_ERROR(status)) {
		Print(L"not ok probe_setup AllocatePages: %r\n", status);
		probe_failures++;
		goto out;
	}
	scratch_page = (UINT64 *)page;
	SetMem(scratch_page, 4096, 0);
	probe_setup_idt();

	check_cpuid();
	check_svm_insns("");
	check_efer();
	/* tests/qemu/test_probe.sh talks to the management port during this halt. */
	Print(L"probe: halting %u ms\n", (UINT32)PROBE_HALT_MS);
	probe_check_halt("halt_wakes_only_on_interrupt", PROBE_HALT_MS);
out:
	Print(L"probe: done, %d failed\n", probe_failures);
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
