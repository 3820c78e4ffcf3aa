/* SPDX-License-Identifier: MIT */
/*
 * triple_fault.efi: a UEFI application that triple-faults the CPU on purpose
 * (empty IDT, then #UD: no handler, #DF, no handler, shutdown). Under
 * PageTrail the SHUTDOWN intercept must turn it into a reported, clean stop.
 */
#include <efi.h>
#include <efilib.h>

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	struct __attribute__((packed)) {
		UINT16 limit;
		UINT64 base;
	} empty_idt = {0, 0};

	InitializeLib(image, systab);
	Print(L"triple_fault: loading an empty IDT and raising #UD\n");
	__asm__ volatile("cli; lidt %0; ud2" : : "m"(empty_idt));
	return EFI_SUCCESS;
}
