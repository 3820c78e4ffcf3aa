/*
 * vmx_probe.efi: what a guest of PageTrail sees on Intel VMX (the same contract as on
 * SVM, tests/guest/probe.c), checked from inside the virtualized firmware.
 * pagetrail.efi starts it (`pagetrail.efi \EFI\tests\vmx_probe.efi`); it prints one
 * line per check on the console (COM1), "ok NAME" or "not ok NAME why", then
 * "vmx_probe: done, N failed", and powers the machine off.
 *
 * Bochs' CPU models offer VMX and answer leaf 0x40000000 with nothing of ours, so the
 * same program started without the hypervisor must fail cpuid_hv_signature and
 * cpuid_vmx_hidden (the negative control in tests/bochs/test_vmx_probe.sh).
 *
 * Faulting instructions run through tests/guest/probe_lib.h and probe_trap.S (shared
 * with probe.efi): a private IDT records the vector and resumes after the instruction.
 */
#include <efi.h>
#include <efilib.h>

#include "../guest/probe_lib.h"

#define CPUID_1_ECX_VMX	  (1u << 5)
#define CPUID_1_ECX_XSAVE (1u << 26)

#define MSR_IA32_FEATURE_CONTROL	  0x3au
#define FEATURE_CONTROL_LOCKED		  (1ull << 0)
#define FEATURE_CONTROL_VMXON_OUTSIDE_SMX (1ull << 2)
#define MSR_IA32_VMX_BASIC		  0x480u
#define MSR_IA32_VMX_EPT_VPID_CAP	  0x48cu
#define CR4_VMXE			  (1ull << 13)
#define CR4_OSXSAVE			  (1ull << 18)

/* The management UART (COM2): an idle UART with nothing to read (hv/exit.c). */
#define COM2	 0x2f8u
#define UART_IIR 2u
#define UART_LSR 5u
#define UART_MSR 6u

static UINT64 *scratch_page;

static UINT64 read_cr4(void)
{
	UINT64 v;

	__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}

static UINT8 inb(UINT16 port)
{
	UINT8 v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static void check_cpuid(void)
{
	UINT32 a, b, c, d;

	cpuid(CPUID_HV_BASE, &a, &b, &c, &d);
	Print(L"# cpuid 0x40000000: eax=%08x ebx=%08x ecx=%08x edx=%08x\n", a, b, c, d);
	report(a >= CPUID_HV_BASE && a <= CPUID_HV_BASE + 0xff, "cpuid_hv_max_leaf",
	       L"EAX is not a leaf in 0x40000000..0x400000ff");
	report(cpuid_hv_signature_is_pagetrail(b, c, d), "cpuid_hv_signature",
	       L"EBX/ECX/EDX are not \"PageTrailHV\\0\"");
	cpuid(1, &a, &b, &c, &d);
	report(!!(c & CPUID_1_ECX_HYPERVISOR), "cpuid_1_ecx_hypervisor_bit",
	       L"CPUID.1:ECX[31] is clear");
	report(!(c & CPUID_1_ECX_VMX), "cpuid_vmx_hidden", L"CPUID.1:ECX[5] (VMX) is set");
}

/*
 * The VMX instructions, each given a pointer to a zeroed private page where they take a
 * memory operand (so that one which completed by mistake touches nothing else).
 */
struct vmx_insn {
	const char *name;
	UINT64 (*run)(UINT64 page);
};

static UINT64 run_vmxon(UINT64 p)
{
	return TRY_INSN("vmxon (%%rax)", p, 0, 0);
}
static UINT64 run_vmxoff(UINT64 p)
{
	return TRY_INSN("vmxoff", p, 0, 0);
}
static UINT64 run_vmcall(UINT64 p)
{
	return TRY_INSN("vmcall", p, 0, 0);
}
static UINT64 run_vmclear(UINT64 p)
{
	return TRY_INSN("vmclear (%%rax)", p, 0, 0);
}
static UINT64 run_vmptrld(UINT64 p)
{
	return TRY_INSN("vmptrld (%%rax)", p, 0, 0);
}
static UINT64 run_vmptrst(UINT64 p)
{
	return TRY_INSN("vmptrst (%%rax)", p, 0, 0);
}
static UINT64 run_vmread(UINT64 p)
{
	return TRY_INSN("vmread %%rcx, %%rdx", p, 0x4400, 0);
}
static UINT64 run_vmwrite(UINT64 p)
{
	return TRY_INSN("vmwrite %%rdx, %%rcx", p, 0x681e, 0);
}
static UINT64 run_vmlaunch(UINT64 p)
{
	return TRY_INSN("vmlaunch", p, 0, 0);
}
static UINT64 run_vmresume(UINT64 p)
{
	return TRY_INSN("vmresume", p, 0, 0);
}
static UINT64 run_invept(UINT64 p)
{
	return TRY_INSN("invept (%%rax), %%rcx", p, 2, 0);
}
static UINT64 run_invvpid(UINT64 p)
{
	return TRY_INSN("invvpid (%%rax), %%rcx", p, 2, 0);
}

static const struct vmx_insn vmx_insns[] = {
    {"vmxon", run_vmxon},	{"vmxoff", run_vmxoff},	  {"vmcall", run_vmcall},
    {"vmclear", run_vmclear},	{"vmptrld", run_vmptrld}, {"vmptrst", run_vmptrst},
    {"vmread", run_vmread},	{"vmwrite", run_vmwrite}, {"vmlaunch", run_vmlaunch},
    {"vmresume", run_vmresume}, {"invept", run_invept},	  {"invvpid", run_invvpid},
};

static void check_vmx_insns(void)
{
	for (UINTN i = 0; i < sizeof(vmx_insns) / sizeof(vmx_insns[0]); i++) {
		char name[32], rf_name[40];
		UINTN n = 0;
		UINT64 v;

		SetMem(scratch_page, 4096, 0);
		v = vmx_insns[i].run((UINT64)scratch_page);
		for (const char *s = "ud_"; *s; s++)
			name[n++] = *s;
		for (const char *s = vmx_insns[i].name; *s; s++)
			name[n++] = *s;
		name[n] = 0;
		report(v == VEC_UD, name, vector_name(v));
		report_rf(v, name_prefixed(rf_name, sizeof(rf_name), "rf_", name));
	}
}

static void check_vmx_msrs_and_cr4(void)
{
	UINT64 val = 0, v, cr4 = read_cr4();

	v = try_rdmsr(MSR_IA32_VMX_BASIC, &val);
	report(v == VEC_GP, "gp_rdmsr_vmx_basic", vector_name(v));
	report_rf(v, "rf_gp_rdmsr_vmx_basic");
	v = try_rdmsr(MSR_IA32_VMX_EPT_VPID_CAP, &val);
	report(v == VEC_GP, "gp_rdmsr_vmx_ept_vpid_cap", vector_name(v));
	v = try_rdmsr(MSR_IA32_FEATURE_CONTROL, &val);
	Print(L"# IA32_FEATURE_CONTROL: %s, value %lx\n", v == VEC_NONE ? L"read" : vector_name(v),
	      val);
	report(v == VEC_NONE && (val & FEATURE_CONTROL_LOCKED) &&
		   !(val & FEATURE_CONTROL_VMXON_OUTSIDE_SMX),
	       "feature_control_locked_vmx_off",
	       L"IA32_FEATURE_CONTROL is not read as locked with VMXON disabled");
	v = TRY_INSN("wrmsr", val | FEATURE_CONTROL_VMXON_OUTSIDE_SMX, MSR_IA32_FEATURE_CONTROL, 0);
	report(v == VEC_GP, "gp_wrmsr_feature_control", vector_name(v));
	report_rf(v, "rf_gp_wrmsr_feature_control");

	Print(L"# CR4=%lx\n", cr4);
	report(!(cr4 & CR4_VMXE), "cr4_vmxe_reads_zero", L"CR4.VMXE reads 1");
	v = TRY_INSN("mov %%rax, %%cr4", cr4 | CR4_VMXE, 0, 0);
	report(v == VEC_GP && read_cr4() == cr4, "gp_cr4_vmxe_set",
	       v == VEC_GP ? L"CR4 changed" : vector_name(v));
	report_rf(v, "rf_gp_cr4_vmxe_set");
	if (read_cr4() != cr4)
		__asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
}

/* XSETBV always exits to the hypervisor, which checks and executes it. */
static void check_xsetbv(void)
{
	UINT32 a, b, c, d;
	UINT64 cr4 = read_cr4(), xcr0, v;

	cpuid(1, &a, &b, &c, &d);
	if (!(c & CPUID_1_ECX_XSAVE)) {
		Print(L"# no XSAVE: xsetbv checks not applicable\n");
		return;
	}
	if (!(cr4 & CR4_OSXSAVE))
		__asm__ volatile("mov %0, %%cr4" : : "r"(cr4 | CR4_OSXSAVE) : "memory");
	__asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
	xcr0 = ((UINT64)d << 32) | a;
	v = TRY_INSN("xsetbv", (UINT32)xcr0, 0, xcr0 >> 32);
	report(v == VEC_NONE, "xsetbv_same_value", vector_name(v));
	/* XCR0 bit 0 (x87) must be 1: the hypervisor must refuse, not the host CPU fault. */
	v = TRY_INSN("xsetbv", 0, 0, 0);
	report(v == VEC_GP, "gp_xsetbv_x87_clear", vector_name(v));
	__asm__ volatile("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
	report((((UINT64)d << 32) | a) == xcr0, "xcr0_unchanged_after_gp", L"XCR0 changed");
	if (!(cr4 & CR4_OSXSAVE))
		__asm__ volatile("mov %0, %%cr4" : : "r"(cr4) : "memory");
}

static void check_mgmt_uart(void)
{
	UINT8 lsr = inb(COM2 + UART_LSR), iir = inb(COM2 + UART_IIR), msr = inb(COM2 + UART_MSR);

	Print(L"# COM2 LSR=%x IIR=%x MSR=%x\n", lsr, iir, msr);
	report(lsr == 0x60 && iir == 0x01 && msr == 0xb0, "mgmt_uart_idle",
	       L"COM2 does not read as an idle UART (LSR 60, IIR 01, MSR b0)");
}

/*
 * The hypervisor's pool is EfiReservedMemoryType in the map the firmware hands out and in
 * no EPT mapping: reading or writing it must fault (#GP, hv/exit.c) and change nothing,
 * while the firmware's own reserved ranges read normally. The test script compares the
 * base printed here with the "hidden region" line of the hypervisor's log.
 */
static void check_hidden_memory(void)
{
	UINTN size = 0, key, desc_size, n_hidden = 0;
	UINT32 desc_ver;
	EFI_MEMORY_DESCRIPTOR *map = NULL;
	EFI_STATUS status;

	status = uefi_call_wrapper(BS->GetMemoryMap, 5, &size, map, &key, &desc_size, &desc_ver);
	size += 8 * sizeof(EFI_MEMORY_DESCRIPTOR);
	map = AllocatePool(size);
	if (map)
		status =
		    uefi_call_wrapper(BS->GetMemoryMap, 5, &size, map, &key, &desc_size, &desc_ver);
	if (!map || EFI_ERROR(status)) {
		report(FALSE, "hidden_memory_faults", L"GetMemoryMap failed");
		return;
	}
	for (UINTN off = 0; off < size; off += desc_size) {
		EFI_MEMORY_DESCRIPTOR *d = (EFI_MEMORY_DESCRIPTOR *)((UINT8 *)map + off);
		UINT64 rd, wr, after;

		if (d->Type != EfiReservedMemoryType || d->PhysicalStart < 0x100000)
			continue;
		rd = TRY_INSN("movq (%%rax), %%rcx", d->PhysicalStart, 0, 0);
		if (rd == VEC_NONE)
			continue;
		wr = TRY_INSN("movq %%rdx, (%%rax)", d->PhysicalStart, 0, 0x5a5a5a5a5a5a5a5aull);
		after = TRY_INSN("movq (%%rax), %%rcx", d->PhysicalStart, 0, 0);
		Print(L"# hidden range 0x%lx (%ld pages): read %s, write %s\n", d->PhysicalStart,
		      d->NumberOfPages, vector_name(rd), vector_name(wr));
		Print(L"hidden_base 0x%lx\n", d->PhysicalStart);
		report(rd == VEC_GP && wr == VEC_GP && after == VEC_GP, "hidden_memory_faults",
		       L"a read or write of the hidden range did not raise #GP");
		n_hidden++;
	}
	FreePool(map);
	if (!n_hidden)
		report(FALSE, "hidden_memory_faults", L"no reserved range faults on read");
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_PHYSICAL_ADDRESS page = 0;
	EFI_STATUS status;

	InitializeLib(image, systab);
	Print(L"vmx_probe: start\n");
	status = uefi_call_wrapper(BS->AllocatePages, 4, AllocateAnyPages, EfiLoaderData, 1, &page);
	if (EFI_ERROR(status)) {
		Print(L"not ok vmx_probe_setup AllocatePages: %r\n", status);
		probe_failures++;
		goto out;
	}
	scratch_page = (UINT64 *)page;
	probe_setup_idt();

	check_cpuid();
	check_vmx_insns();
	check_vmx_msrs_and_cr4();
	check_xsetbv();
	check_mgmt_uart();
	check_hidden_memory();
	probe_check_halt("halt_wakes_only_on_interrupt", 500);
	/* Still virtualized and answering after the hostile accesses. */
	check_cpuid();
out:
	Print(L"vmx_probe: done, %d failed\n", probe_failures);
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
