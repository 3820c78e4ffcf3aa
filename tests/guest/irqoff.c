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
 */
#include <efi.h>
#include <efilib.h>

#define DEFAULT_SECONDS 40
#define MAX_SECONDS	3600
#define CALIB_US	200000

static UINT64 rdtsc(void)
{
	UINT32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((UINT64)hi << 32) | lo;
}

/* SECONDS: the first argument after argv[0] in the load options, if it is a number. */
static UINTN arg_seconds(EFI_HANDLE image)
{
	EFI_LOADED_IMAGE *li = NULL;
	const CHAR16 *o;
	UINTN n, i = 0, v = 0;
	BOOLEAN digits = FALSE;

	if (EFI_ERROR(uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol,
					(void **)&li)) ||
	    !li || !li->LoadOptions)
		return DEFAULT_SECONDS;
	o = li->LoadOptions;
	n = li->LoadOptionsSize / sizeof(CHAR16);
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
	UINT64 t0, per_ms, end;
	UINTN seconds;

	InitializeLib(image, systab);
	seconds = arg_seconds(image);
	t0 = rdtsc();
	uefi_call_wrapper(BS->Stall, 1, CALIB_US);
	per_ms = (rdtsc() - t0) / (CALIB_US / 1000);
	if (per_ms == 0) {
		Print(L"irqoff: the TSC does not advance\n");
		return EFI_DEVICE_ERROR;
	}
	Print(L"irqoff: spinning %lu s with interrupts disabled (%lu TSC/ms)\n", (UINT64)seconds,
	      per_ms);
	end = rdtsc() + (UINT64)seconds * 1000 * per_ms;
	__asm__ volatile("cli" ::: "memory");
	while (rdtsc() < end)
		__asm__ volatile("pause");
	__asm__ volatile("sti" ::: "memory");
	Print(L"irqoff: done\n");
	return EFI_SUCCESS;
}
