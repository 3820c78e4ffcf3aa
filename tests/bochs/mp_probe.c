/*
 * mp_probe.efi: the firmware's own AP start-up, run after pagetrail.efi took every CPU.
 *
 * For each AP, EFI_MP_SERVICES_PROTOCOL.StartupThisAP runs a procedure that reads CPUID
 * 0x40000000 on that AP. OVMF wakes an AP from its HLT loop with INIT-SIPI-SIPI (its
 * MpInitLib), and the AP is a vCPU now: the hypervisor must emulate them (the vCPU
 * parks, then starts at the SIPI vector in real mode) for the procedure to run at all,
 * and the signature says it ran as PageTrail's guest. Then ExitBootServices, where OVMF
 * sends every AP INIT-SIPI-SIPI again and waits for each to check in from its new loop.
 *
 * Output: "ok NAME" / "not ok NAME ..." lines on the console (COM1) and on port 0xE9,
 * then "mp_probe: done" on 0xE9 and a power-off.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/efi_mp.h"

#define HV_SIG_EBX 0x65676150u /* "Page" */
#define HV_SIG_ECX 0x69617254u /* "Trai" */
#define HV_SIG_EDX 0x0056486cu /* "lHV\0" */
#define MAX_CPUS   64

struct ap_result {
	volatile UINT32 ran;
	volatile UINT32 sig_ok;
};

static struct ap_result results[MAX_CPUS];

static void e9_puts(const char *s)
{
	for (; *s; s++)
		__asm__ volatile("outb %0, $0xe9" : : "a"(*s));
}

static void e9_line(const char *a, UINTN n, const char *b)
{
	char num[24];
	int i = 0, j;
	char tmp[24];

	do {
		tmp[i++] = (char)('0' + n % 10);
		n /= 10;
	} while (n);
	for (j = 0; j < i; j++)
		num[j] = tmp[i - 1 - j];
	num[i] = 0;
	e9_puts(a);
	e9_puts(num);
	e9_puts(b);
}

static BOOLEAN signature_is_pagetrail(void)
{
	UINT32 a, b, c, d;

	__asm__ volatile("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(0x40000000u), "c"(0));
	return b == HV_SIG_EBX && c == HV_SIG_ECX && d == HV_SIG_EDX;
}

static void EFIAPI ap_procedure(void *arg)
{
	struct ap_result *r = arg;

	r->sig_ok = signature_is_pagetrail();
	r->ran = 1;
}

static void report(BOOLEAN ok, const char *what, UINTN n)
{
	Print(L"%a %a%d\n", ok ? "ok" : "not ok", what, n);
	e9_line(ok ? "mp_probe: ok " : "mp_probe: not ok ", n, "");
	e9_puts(" ");
	e9_puts(what);
	e9_puts("\n");
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
	EFI_GUID mp_guid = EFI_MP_SERVICES_PROTOCOL_GUID;
	struct efi_mp_services *mp = NULL;
	struct efi_processor_info info;
	UINTN total = 0, enabled = 0, n, map_size = 0, map_key, desc_size, round;
	UINT32 desc_version;
	EFI_MEMORY_DESCRIPTOR *map = NULL;
	EFI_STATUS s;

	InitializeLib(image, st);
	if (EFI_ERROR(LibLocateProtocol(&mp_guid, (void **)&mp)) ||
	    EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled))) {
		Print(L"not ok mp_services (no EFI_MP_SERVICES_PROTOCOL)\n");
		e9_puts("mp_probe: not ok mp_services\nmp_probe: done\n");
		return EFI_UNSUPPORTED;
	}
	e9_line("mp_probe: processors ", total, "\n");
	report(signature_is_pagetrail(), "bsp_signature cpu", 0);
	/* Twice: each round wakes every AP from the loop the last one left it in. */
	for (round = 0; round < 2; round++) {
		for (n = 0; n < total && n < MAX_CPUS; n++) {
			if (EFI_ERROR(mp->get_processor_info(mp, n, &info)) ||
			    (info.status_flag & 1))
				continue;
			results[n].ran = results[n].sig_ok = 0;
			s = mp->startup_this_ap(mp, ap_procedure, n, NULL, 0, &results[n], NULL);
			if (EFI_ERROR(s))
				Print(L"mp_probe: StartupThisAP(%d): %r\n", n, s);
			report(!EFI_ERROR(s) && results[n].ran, "ap_ran cpu", n);
			report(results[n].sig_ok, "ap_signature cpu", n);
		}
	}
	/* ExitBootServices: OVMF moves every AP to a new loop with INIT-SIPI-SIPI. */
	e9_puts("mp_probe: ExitBootServices\n");
	for (round = 0; round < 4; round++) {
		map = LibMemoryMap(&map_size, &map_key, &desc_size, &desc_version);
		if (!map)
			break;
		s = uefi_call_wrapper(BS->ExitBootServices, 2, image, map_key);
		if (!EFI_ERROR(s)) {
			e9_puts("mp_probe: ok exit_boot_services\n");
			break;
		}
		FreePool(map);
	}
	if (round == 4 || !map)
		e9_puts("mp_probe: not ok exit_boot_services\n");
	e9_puts("mp_probe: done\n");
	uefi_call_wrapper(RT->ResetSystem, 4, EfiResetShutdown, EFI_SUCCESS, 0, NULL);
	return EFI_SUCCESS;
}
