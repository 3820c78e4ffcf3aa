/*
 * probe.efi: what a guest of PageTrail sees (issue 2, item 5), checked from inside the
 * virtualized firmware. pagetrail.efi starts it (`pagetrail.efi \EFI\tests\probe.efi`);
 * it prints one line per check on the console (COM1), "ok NAME" or "not ok NAME why",
 * then "probe: done, N failed", and powers the machine off.
 *
 * Bare QEMU TCG already sets CPUID.1:ECX[31] and answers leaf 0x40000000 (with
 * "TCGTCGTCGTCG"), so only the signature proves that PageTrail answers; started without
 * the hypervisor, the probe must report "not ok cpuid_hv_signature" (the negative control
 * in tests/qemu/test_probe.sh).
 *
 * The SVM instructions are run with a private copy of the firmware's IDT whose #UD and
 * #GP gates point at probe_trap.S, which records the vector and resumes after the
 * instruction. Interrupts stay disabled meanwhile, and the firmware's IDT is restored.
 */
#include <efi.h>
#include <efilib.h>

#define MSR_EFER  0xc0000080u
#define EFER_SVME (1ull << 12)

#define CPUID_HV_BASE	       0x40000000u
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_80000001_ECX_SVM (1u << 2)

#define VEC_NONE 0xffu
#define VEC_UD	 6u
#define VEC_GP	 13u

/* Read and written by probe_trap.S. */
__attribute__((visibility("hidden"))) volatile UINT64 probe_fault_vector;
__attribute__((visibility("hidden"))) volatile UINT64 probe_recover_rip;
extern void probe_ud_handler(void) __attribute__((visibility("hidden")));
extern void probe_gp_handler(void) __attribute__((visibility("hidden")));

struct idt_ptr {
	UINT16 limit;
	UINT64 base;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_ptr) == 10, "sidt/lidt operand is 10 bytes");

/*
 * A 64-bit interrupt gate is two u64s (AMD APM Vol. 2, 4.8.4 "Gate Descriptors"):
 * offset[15:0], selector, IST, type/attributes, offset[31:16]; then offset[63:32].
 */
#define GATE_SELECTOR_SHIFT    16
#define GATE_ATTR_SHIFT	       40
#define GATE_ATTR_INTR_PRESENT 0x8eull /* P=1, DPL=0, type 0xE: 64-bit interrupt gate */
#define GATE_OFFSET_MID_SHIFT  48

#define IDT_ENTRIES 256
static UINT64 probe_idt[IDT_ENTRIES * 2] __attribute__((aligned(16)));
static struct idt_ptr fw_idtr, probe_idtr;
static UINT64 *scratch_page;
static unsigned failures;

static void make_gate(UINT64 *gate, void (*handler)(void), UINT16 cs)
{
	UINT64 off = (UINT64)handler;

	gate[0] = (off & 0xffffull) | ((UINT64)cs << GATE_SELECTOR_SHIFT) |
		  (GATE_ATTR_INTR_PRESENT << GATE_ATTR_SHIFT) |
		  (((off >> 16) & 0xffffull) << GATE_OFFSET_MID_SHIFT);
	gate[1] = off >> 32;
}

static void setup_idt(void)
{
	UINT16 cs;
	UINTN n;

	__asm__ volatile("sidt %0" : "=m"(fw_idtr));
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	n = ((UINTN)fw_idtr.limit + 1) / 8;
	if (n > IDT_ENTRIES * 2)
		n = IDT_ENTRIES * 2;
	CopyMem(probe_idt, (void *)fw_idtr.base, n * 8);
	make_gate(&probe_idt[VEC_UD * 2], probe_ud_handler, cs);
	make_gate(&probe_idt[VEC_GP * 2], probe_gp_handler, cs);
	probe_idtr.limit = sizeof(probe_idt) - 1;
	probe_idtr.base = (UINT64)probe_idt;
}

static UINT64 irq_save_and_load_probe_idt(void)
{
	UINT64 flags;

	__asm__ volatile("pushfq; pop %0; cli" : "=r"(flags)::"memory");
	__asm__ volatile("lidt %0" ::"m"(probe_idtr) : "memory");
	probe_fault_vector = VEC_NONE;
	return flags;
}

static void irq_restore_and_load_fw_idt(UINT64 flags)
{
	__asm__ volatile("lidt %0" ::"m"(fw_idtr) : "memory");
	__asm__ volatile("push %0; popfq" ::"r"(flags) : "memory", "cc");
}

/*
 * Runs INSN with RAX = rax, RCX = rcx and returns the vector it raised (VEC_NONE if it
 * completed). The recovery point is the label right after the instruction.
 */
#define TRY_INSN(insn, rax, rcx)                                                                   \
	({                                                                                         \
		UINT64 __flags = irq_save_and_load_probe_idt();                                    \
		__asm__ volatile("lea 1f(%%rip), %%rdx\n\t"                                        \
				 "mov %%rdx, %0\n\t" insn "\n1:"                                   \
				 : "=m"(probe_recover_rip)                                         \
				 : "a"(rax), "c"(rcx)                                              \
				 : "rdx", "memory", "cc");                                         \
		irq_restore_and_load_fw_idt(__flags);                                              \
		probe_fault_vector;                                                                \
	})

static void cpuid(UINT32 leaf, UINT32 *a, UINT32 *b, UINT32 *c, UINT32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static UINT64 rdmsr(UINT32 msr)
{
	UINT32 lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((UINT64)hi << 32) | lo;
}

/* WRMSR that may fault: returns the vector raised, VEC_NONE if it completed. */
static UINT64 try_wrmsr(UINT32 msr, UINT64 val)
{
	UINT64 flags = irq_save_and_load_probe_idt();

	__asm__ volatile("lea 1f(%%rip), %%rbx\n\t"
			 "mov %%rbx, %0\n\t"
			 "wrmsr\n1:"
			 : "=m"(probe_recover_rip)
			 : "a"((UINT32)val), "d"((UINT32)(val >> 32)), "c"(msr)
			 : "rbx", "memory", "cc");
	irq_restore_and_load_fw_idt(flags);
	return probe_fault_vector;
}

static void report(BOOLEAN ok, const CHAR8 *name, const CHAR16 *why)
{
	if (ok) {
		Print(L"ok %a\n", name);
	} else {
		failures++;
		Print(L"not ok %a %s\n", name, why);
	}
}

static const CHAR16 *vector_name(UINT64 v)
{
	switch (v) {
	case VEC_NONE:
		return L"(no exception: the instruction completed)";
	case VEC_UD:
		return L"#UD";
	case VEC_GP:
		return L"#GP";
	}
	return L"(unexpected vector)";
}

static void check_cpuid(void)
{
	static const char want[12] = "PageTrailHV";
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
	report(a >= CPUID_HV_BASE && a <= CPUID_HV_BASE + 0xff, (CHAR8 *)"cpuid_hv_max_leaf",
	       L"EAX is not a leaf in 0x40000000..0x400000ff");
	report(CompareMem(&b, want, 4) == 0 && CompareMem(&c, want + 4, 4) == 0 &&
		   CompareMem(&d, want + 8, 4) == 0,
	       (CHAR8 *)"cpuid_hv_signature", L"EBX/ECX/EDX are not \"PageTrailHV\\0\"");

	cpuid(1, &a, &b, &c, &d);
	report(!!(c & CPUID_1_ECX_HYPERVISOR), (CHAR8 *)"cpuid_1_ecx_hypervisor_bit",
	       L"CPUID.1:ECX[31] is clear");

	cpuid(0x80000001u, &a, &b, &c, &d);
	report(!(c & CPUID_80000001_ECX_SVM), (CHAR8 *)"cpuid_svm_hidden",
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
	return TRY_INSN("vmsave %%rax", rax, 0);
}
static UINT64 run_vmload(UINT64 rax)
{
	return TRY_INSN("vmload %%rax", rax, 0);
}
static UINT64 run_vmrun(UINT64 rax)
{
	return TRY_INSN("vmrun %%rax", rax, 0);
}
static UINT64 run_clgi(UINT64 rax)
{
	return TRY_INSN("clgi", rax, 0);
}
static UINT64 run_stgi(UINT64 rax)
{
	return TRY_INSN("stgi", rax, 0);
}
static UINT64 run_skinit(UINT64 rax)
{
	return TRY_INSN("skinit %%eax", rax, 0);
}
static UINT64 run_invlpga(UINT64 rax)
{
	return TRY_INSN("invlpga %%rax, %%ecx", rax, 0);
}

static const struct svm_insn svm_insns[] = {
    {"vmsave", run_vmsave}, {"vmload", run_vmload}, {"vmrun", run_vmrun},     {"clgi", run_clgi},
    {"stgi", run_stgi},	    {"skinit", run_skinit}, {"invlpga", run_invlpga},
};

static void check_svm_insns(const char *suffix)
{
	for (UINTN i = 0; i < sizeof(svm_insns) / sizeof(svm_insns[0]); i++) {
		CHAR8 name[64];
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
	}
}

static void check_efer(void)
{
	UINT64 efer0 = rdmsr(MSR_EFER), efer1, v;

	Print(L"# EFER=%lx\n", efer0);
	report(!(efer0 & EFER_SVME), (CHAR8 *)"efer_svme_reads_zero", L"EFER.SVME reads 1");

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
		report(FALSE, (CHAR8 *)"efer_svme_write_harmless",
		       L"EFER.SVME reads 1 after the write");
		failures++;
		Print(L"not ok ud_after_svme_write skipped: EFER.SVME could really be set\n");
		return;
	}
	report(v != VEC_UD && efer1 == efer0, (CHAR8 *)"efer_svme_write_harmless",
	       L"EFER changed or the write raised #UD");
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
		failures++;
		goto out;
	}
	scratch_page = (UINT64 *)page;
	SetMem(scratch_page, 4096, 0);
	setup_idt();

	check_cpuid();
	check_svm_insns("");
	check_efer();
out:
	Print(L"probe: done, %d failed\n", failures);
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
