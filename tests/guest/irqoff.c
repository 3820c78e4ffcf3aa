/*
 * irqoff.efi: a guest that runs with interrupts disabled for a long, fixed time (the
 * management port must still answer). pagetrail.efi starts it (`pagetrail.efi
 * \EFI\tests\irqoff.efi [SECONDS]`, default 40). It measures the TSC against the
 * firmware's Stall (with interrupts still on), prints "irqoff: spinning ..." on the
 * console (COM1), executes CLI and spins on RDTSC (no instruction that exits: no CPUID,
 * no I/O, no HLT) for SECONDS, then STI and "irqoff: done". While it spins, only an
 * event the guest cannot mask gives the hypervisor control: tests/qemu/test_irqoff.sh
 * checks that the management port answers during the spin with the tick, and does not
 * without it.
 *
 * `irqoff.efi SECONDS all`: every CPU spins so, at once: the firmware's MP services run
 * the same spin on each AP (StartupAllAPs, not waited for) while the boot CPU spins; the
 * line then says how many CPUs, and "irqoff: done" comes once the APs have finished too.
 * Whichever CPU the management port is served on, no CPU leaves the guest of its own.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/efi_mp.h"
#include "tests/guest/efi_tsc.h"

#define DEFAULT_SECONDS 40
#define MAX_SECONDS	3600
#define CALIB_US	200000

static volatile UINT64 spin_end;

/* No instruction that exits: CLI, RDTSC and PAUSE only, until spin_end. */
static void EFIAPI spin(void *unused)
{
	(void)unused;
	__asm__ volatile("cli" ::: "memory");
	while (efi_rdtsc() < spin_end)
		__asm__ volatile("pause");
	__asm__ volatile("sti" ::: "memory");
}

/* The image's load options (its command line), as UCS-2 characters; FALSE: none. */
static BOOLEAN load_options(EFI_HANDLE image, const CHAR16 **o, UINTN *n)
{
	EFI_LOADED_IMAGE *li = NULL;

	if (EFI_ERROR(uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol,
					(void **)&li)) ||
	    !li || !li->LoadOptions)
		return FALSE;
	*o = li->LoadOptions;
	*n = li->LoadOptionsSize / sizeof(CHAR16);
	return TRUE;
}

/* The load options after argv[0] contain the word "all". */
static BOOLEAN arg_all(EFI_HANDLE image)
{
	const CHAR16 *o;
	UINTN n, i;

	if (!load_options(image, &o, &n))
		return FALSE;
	for (i = 1; i + 2 < n; i++)
		if (o[i - 1] == L' ' && o[i] == L'a' && o[i + 1] == L'l' && o[i + 2] == L'l' &&
		    (i + 3 == n || o[i + 3] == L' ' || o[i + 3] == 0))
			return TRUE;
	return FALSE;
}

/* SECONDS: the first argument after argv[0] in the load options, if it is a number. */
static UINTN arg_seconds(EFI_HANDLE image)
{
	const CHAR16 *o;
	UINTN n, i = 0, v = 0;
	BOOLEAN digits = FALSE;

	if (!load_options(image, &o, &n))
		return DEFAULT_SECONDS;
	while (i < n && o[i] == L' ')
		i++;
	while (i < n && o[i] && o[i] != L' ')
		i++;
	while (i < n && o[i] == L' ')
		i++;
	for (; i < n && o[i] >= L'0' && o[i] <= L'9' && v < MAX_SECONDS; i++) {
		v = v * 10 + (o[i] - L'0');
		digits = TRUE;
	}
	if (!digits || v == 0 || v > MAX_SECONDS)
		return DEFAULT_SECONDS;
	return v;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_GUID mp_guid = EFI_MP_SERVICES_PROTOCOL_GUID;
	struct efi_mp_services *mp = NULL;
	EFI_EVENT aps_done = NULL;
	UINT64 t0, per_ms;
	UINTN seconds, total = 1, enabled = 1;
	EFI_STATUS st;

	InitializeLib(image, systab);
	seconds = arg_seconds(image);
	t0 = efi_rdtsc();
	uefi_call_wrapper(BS->Stall, 1, CALIB_US);
	per_ms = (efi_rdtsc() - t0) / (CALIB_US / 1000);
	if (per_ms == 0) {
		Print(L"irqoff: the TSC does not advance\n");
		return EFI_DEVICE_ERROR;
	}
	if (arg_all(image)) {
		if (EFI_ERROR(LibLocateProtocol(&mp_guid, (void **)&mp)) ||
		    EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled)) || enabled < 2) {
			Print(L"irqoff: 'all' needs more than one CPU (MP services: %lu enabled)\n",
			      (UINT64)enabled);
			return EFI_UNSUPPORTED;
		}
		st = uefi_call_wrapper(BS->CreateEvent, 5, 0, 0, NULL, NULL, &aps_done);
		if (EFI_ERROR(st)) {
			Print(L"irqoff: CreateEvent: %r\n", st);
			return st;
		}
	}
	Print(L"irqoff: spinning %lu s with interrupts disabled on %lu CPU(s) (%lu TSC/ms)\n",
	      (UINT64)seconds, (UINT64)(mp ? enabled : 1), per_ms);
	spin_end = efi_rdtsc() + (UINT64)seconds * 1000 * per_ms;
	if (mp) {
		/* Not waited for (an event given): the boot CPU spins meanwhile. */
		st = mp->startup_all_aps(mp, spin, FALSE, aps_done, 0, NULL, NULL);
		if (EFI_ERROR(st)) {
			Print(L"irqoff: StartupAllAPs: %r\n", st);
			return st;
		}
	}
	spin(NULL);
	if (mp) {
		/* The APs end their spin at the same TSC; MP services signal the event then. */
		while (uefi_call_wrapper(BS->CheckEvent, 1, aps_done) == EFI_NOT_READY)
			uefi_call_wrapper(BS->Stall, 1, 1000);
		uefi_call_wrapper(BS->CloseEvent, 1, aps_done);
	}
	Print(L"irqoff: done\n");
	return EFI_SUCCESS;
}
