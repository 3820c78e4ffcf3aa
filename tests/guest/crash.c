/*
 * crash.efi: a guest that triple-faults on purpose (the hypervisor must report it, not
 * hang). pagetrail.efi starts it (`pagetrail.efi \EFI\tests\crash.efi [--ap]`); it loads
 * an empty IDT and raises #UD, so the #UD, then #DF, cannot be delivered and the CPU
 * shuts down (AMD APM Vol. 2, 8.2.9 "Double-Fault Exception (#DF)": an exception during
 * #DF delivery is a shutdown). Under the hypervisor that is a SHUTDOWN intercept, which
 * must end in a "pagetrail: FATAL" line and the guest stopped for good with the
 * hypervisor still answering (tests/qemu/test_guest_fault.sh), never a silent hang or a
 * reset. With --ap the first AP triple-faults (EFI_MP_SERVICES_PROTOCOL StartupThisAP)
 * while the boot CPU waits for it: the vCPU that dies is not the one that owns the
 * management port.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/efi_mp.h"

struct idt_ptr {
	UINT16 limit;
	UINT64 base;
} __attribute__((packed));

static void triple_fault(void)
{
	static const struct idt_ptr empty_idt = {0, 0};

	__asm__ volatile("cli; lidt %0; ud2" ::"m"(empty_idt) : "memory");
}

static void EFIAPI ap_triple_fault(void *arg)
{
	(void)arg;
	triple_fault();
}

/* The load options ("crash.efi --ap") hold --ap. */
static BOOLEAN want_ap(EFI_LOADED_IMAGE *li)
{
	const CHAR16 *o = li ? li->LoadOptions : NULL;
	UINTN n = li ? li->LoadOptionsSize / sizeof(CHAR16) : 0, i;

	for (i = 0; o && i + 4 <= n; i++)
		if (o[i] == L'-' && o[i + 1] == L'-' && o[i + 2] == L'a' && o[i + 3] == L'p')
			return TRUE;
	return FALSE;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_LOADED_IMAGE *li = NULL;
	EFI_GUID mp_guid = EFI_MP_SERVICES_PROTOCOL_GUID;
	struct efi_mp_services *mp = NULL;
	UINTN total = 0, enabled = 0;
	EFI_STATUS st;

	InitializeLib(image, systab);
	uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li);
	if (want_ap(li)) {
		st = uefi_call_wrapper(BS->LocateProtocol, 3, &mp_guid, NULL, (void **)&mp);
		if (EFI_ERROR(st) ||
		    EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled)) || enabled < 2) {
			Print(L"crash: no AP to triple-fault (MP services %r, %u CPUs)\n", st,
			      enabled);
			return EFI_UNSUPPORTED;
		}
		Print(L"crash: triple faulting now on AP 1\n");
		st = mp->startup_this_ap(mp, ap_triple_fault, 1, NULL, 0, NULL, NULL);
		Print(L"crash: still running after the triple fault (StartupThisAP %r)\n", st);
		return EFI_ABORTED;
	}
	Print(L"crash: triple faulting now\n");
	triple_fault();
	Print(L"crash: still running after the triple fault\n");
	return EFI_ABORTED;
}
