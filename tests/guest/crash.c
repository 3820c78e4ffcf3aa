/*
 * crash.efi: a guest that triple-faults on purpose (the hypervisor must report it, not
 * hang). pagetrail.efi starts it (`pagetrail.efi \EFI\tests\crash.efi`); it loads an
 * empty IDT and raises #UD, so the #UD, then #DF, cannot be delivered and the CPU shuts
 * down (AMD APM Vol. 2, 8.2.9 "Double-Fault Exception (#DF)": an exception during #DF
 * delivery is a shutdown). Under the hypervisor that is a SHUTDOWN intercept, which
 * must end in a "pagetrail: FATAL" line and a clean stop of QEMU
 * (tests/qemu/test_guest_fault.sh), never a silent hang or a reset.
 */
#include <efi.h>
#include <efilib.h>

struct idt_ptr {
	UINT16 limit;
	UINT64 base;
} __attribute__((packed));

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	static const struct idt_ptr empty_idt = {0, 0};

	InitializeLib(image, systab);
	Print(L"crash: triple faulting now\n");
	__asm__ volatile("cli; lidt %0; ud2" ::"m"(empty_idt) : "memory");
	Print(L"crash: still running after the triple fault\n");
	return EFI_ABORTED;
}
