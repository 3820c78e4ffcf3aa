/*
 * hello.efi: proves the Bochs harness (tests/bochs/lib.sh) end to end. It prints one
 * line on the console (COM1 under OVMF), one on port 0xE9 (Bochs' port_e9_hack, where
 * the hypervisor logs), reports the CPU vendor and whether VMX is offered, then asks the
 * firmware to power off.
 */
#include <efi.h>
#include <efilib.h>

#define CPUID_1_ECX_VMX (1u << 5)

static void e9_puts(const char *s)
{
	for (; *s; s++)
		__asm__ volatile("outb %0, $0xe9" : : "a"(*s));
}

static void cpuid(UINT32 leaf, UINT32 *a, UINT32 *b, UINT32 *c, UINT32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
	UINT32 a, b, c, d;
	CHAR8 vendor[13];

	InitializeLib(image, st);
	cpuid(0, &a, &b, &c, &d);
	CopyMem(vendor, &b, 4);
	CopyMem(vendor + 4, &d, 4);
	CopyMem(vendor + 8, &c, 4);
	vendor[12] = 0;
	cpuid(1, &a, &b, &c, &d);
	e9_puts("hello-e9: port 0xe9 works\n");
	Print(L"hello-com1: vendor %a vmx %d\n", vendor, (c & CPUID_1_ECX_VMX) ? 1 : 0);
	uefi_call_wrapper(st->RuntimeServices->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0,
			  NULL);
	return EFI_SUCCESS;
}
