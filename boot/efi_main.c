/* SPDX-License-Identifier: MIT */
/*
 * pagetrail.efi entry: the only code that calls UEFI.
 *
 * Invocation (UEFI shell, or LoadOptions set by a loader, shell-style with
 * argv[0] first):
 *
 *     pagetrail.efi [--no-mgmt-tick] [--mgmt-step-pages N] [--cow-reserve-mib N]
 *                   [--mgmt-uart SPEC] [--emulator-exit auto|on|off] [--] [PATH [ARGS...]]
 *
 * pagetrail.efi virtualizes the CPU it runs on; the firmware continues as its
 * guest. Without PATH it then returns EFI_SUCCESS to its caller. With PATH
 * (a file on the same volume as pagetrail.efi, e.g. \EFI\Linux\vmlinuz.efi)
 * it loads and starts that program, as the guest, with LoadOptions
 * "PATH ARGS..." (argv[0] first, as the shell does), and returns its status.
 * --no-mgmt-tick: on SVM, take no HPET for the management tick (docs/hv.md
 * "How the hypervisor gets control"; the negative control of
 * tests/qemu/test_irqoff.sh). --mgmt-step-pages N: long management commands
 * (dirty start/stop/get/clear) do at most N pages of nested-table work per
 * exit (default 2^18; docs/protocol.md "Long commands"; tests use small N to
 * make every command take many steps). --mgmt-uart SPEC: the management
 * UART (default COM2; syntax in hv/mgmt_uart.h and docs/hv.md).
 * --emulator-exit: whether a fatal stop may write QEMU's and Bochs' exit and
 * power-off ports (auto: only when boot/platform.c detects an emulator).
 *
 * Steps: allocate the hidden pool (EfiReservedMemoryType, see hv/boot.h),
 * copy this image into it and relocate the copy (boot/reloc.c), copy the
 * memory map, call hv_init in the copy, then x86_takeover: the copy's
 * hv_start takes the CPU and resumes the firmware as a guest right here.
 */
#include <efi.h>
#include <efilib.h>

#include "arch/x86/cpu.h"
#include "boot/boot.h"
#include "boot/efi_mp.h"
#include "hv/boot.h"
#include "hv/hv.h"
#include "hv/log.h"

#define HOST_STACK_SIZE (64 * 1024)
/* Pool beyond the image: host tables, VMCB and friends, then nested tables. */
#define POOL_FIXED_BYTES (4ull << 20)

static struct efi_mp_services *boot_mp_services(void)
{
	struct efi_mp_services *mp = NULL;
	EFI_GUID mp_services_guid = EFI_MP_SERVICES_PROTOCOL_GUID;

	if (EFI_ERROR(LibLocateProtocol(&mp_services_guid, (void **)&mp)))
		return NULL;
	return mp;
}

/* APs the pool must have room for (hv/boot.h HV_AP_POOL_BYTES each). */
static u64 boot_count_aps(void)
{
	struct efi_mp_services *mp = boot_mp_services();
	UINTN total = 1, enabled = 1;

	if (!mp || EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled)) || total < 1)
		return 0;
	return total > HV_MAX_CPUS ? HV_MAX_CPUS - 1 : total - 1;
}

/* What an AP's takeover procedure needs; in boot/'s memory, which stays visible. */
struct boot_ap {
	struct hv_cpu *cpu; /* in the hidden pool: touched only before the AP's takeover */
	int (*check)(struct hv_cpu *c);
	void (*start)(void *c);
	UINTN efi_number;
	bool virtualized; /* set by the AP, as the guest, when CPUID says PageTrail */
};

/*
 * Filled before the BSP's takeover: afterwards boot/ runs as the guest and
 * can no longer read the hidden pool (bi, the copy's addresses).
 */
static struct boot_ap boot_aps[HV_MAX_CPUS];
static u32 boot_nr_aps; /* boot_aps[1 .. boot_nr_aps] are in use */

/*
 * Fills bi->cpus from the firmware's processor list, the BSP first. Without
 * MP services the machine is taken as the one CPU running this code.
 */
static void boot_list_cpus(struct hv_boot_info *bi)
{
	struct efi_mp_services *mp = boot_mp_services();
	struct efi_processor_info info;
	UINTN total = 1, enabled = 1, n;
	u32 i = 1;

	bi->nr_cpus = 1;
	bi->cpus[0] = (struct hv_cpu){.apic_id = x86_cpuid(1, 0).ebx >> 24,
				      .flags = HV_CPU_BSP | HV_CPU_ENABLED | HV_CPU_HEALTHY};
	if (!mp || EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled)))
		return;
	bi->nr_cpus = (u32)total;
	for (n = 0; n < total; n++) {
		struct hv_cpu *c;

		if (EFI_ERROR(mp->get_processor_info(mp, n, &info))) {
			hv_log("boot: no information on processor %lu", (u64)n);
			continue;
		}
		if (info.status_flag & HV_CPU_BSP) {
			bi->cpus[0].apic_id = (u32)info.processor_id;
			continue;
		}
		if (i == HV_MAX_CPUS)
			continue; /* hv_init counts and refuses the rest */
		c = &bi->cpus[i];
		*c = (struct hv_cpu){.apic_id = (u32)info.processor_id,
				     .flags = info.status_flag & (HV_CPU_ENABLED | HV_CPU_HEALTHY),
				     .index = i};
		boot_aps[i] = (struct boot_ap){.cpu = c,
					       .check = boot_in_copy(bi, (void *)hv_ap_check),
					       .start = boot_in_copy(bi, (void *)hv_ap_start),
					       .efi_number = n};
		boot_nr_aps = i;
		i++;
	}
}

static bool hypervisor_signature_is_ours(void);

/*
 * Runs on the AP, in the firmware's context, as StartupThisAP's procedure.
 * Before x86_takeover the AP is not yet a guest and may read the pool; after
 * it, it is one, and proves it with CPUID like the BSP.
 */
static void EFIAPI boot_ap_procedure(void *arg)
{
	struct boot_ap *ap = arg;

	if (ap->check(ap->cpu) == 0)
		x86_takeover(&ap->cpu->takeover, ap->start, ap->cpu, ap->cpu->host_stack_top);
	ap->virtualized = hypervisor_signature_is_ours();
}

/*
 * With the BSP already a guest, each enabled AP runs boot_ap_procedure and
 * becomes a vCPU (hv/hv.c hv_ap_start). hv/ counts and logs the CPUs that
 * were taken and refuses dirty logging unless all were (hv_dirty_logging_allowed).
 */
static void boot_virtualize_aps(void)
{
	struct efi_mp_services *mp = boot_mp_services();
	u32 i;

	if (!mp)
		return;
	for (i = 1; i <= boot_nr_aps; i++) {
		struct boot_ap *ap = &boot_aps[i];
		EFI_STATUS st;

		ap->virtualized = false;
		st = mp->startup_this_ap(mp, boot_ap_procedure, ap->efi_number, NULL, 0, ap, NULL);
		if (EFI_ERROR(st))
			hv_log(
			    "boot: StartupThisAP(processor %u): %lx: that CPU is not virtualized",
			    i, (u64)st);
		else if (!ap->virtualized)
			hv_log("boot: processor %u ran the takeover but is not PageTrail's guest",
			       i);
	}
}

static EFI_GUID acpi20_guid = ACPI_20_TABLE_GUID;
static EFI_GUID acpi10_guid = ACPI_TABLE_GUID;

/* May hv_machine_stop write the emulator's exit ports (hv/log.c)? Logged either way. */
static bool boot_emulator_exit(const struct boot_cmdline *cmd, u64 rsdp)
{
	char name[96];

	if (cmd->emulator_exit == BOOT_EMULATOR_EXIT_ON) {
		hv_log("boot: emulator exit ports on (--emulator-exit on)");
		return true;
	}
	if (cmd->emulator_exit == BOOT_EMULATOR_EXIT_OFF) {
		hv_log("boot: emulator exit ports off (--emulator-exit off)");
		return false;
	}
	if (boot_detect_emulator(rsdp, name, sizeof(name))) {
		hv_log("boot: emulator detected (%s): its exit ports stop the machine", name);
		return true;
	}
	hv_log("boot: no emulator detected: a fatal stop halts, no exit or power-off port is "
	       "written");
	return false;
}

/*
 * The ACPI RSDP from the EFI configuration table (UEFI 2.10, 4.6 "EFI
 * Configuration Table & Properties Table"): the ACPI 2.0+ one (with the
 * XSDT), else the 1.0 one. 0 if the firmware publishes neither.
 */
static u64 boot_find_rsdp(void)
{
	void *p = NULL;

	if (!EFI_ERROR(LibGetSystemConfigurationTable(&acpi20_guid, &p)) && p)
		return (u64)(uintptr_t)p;
	if (!EFI_ERROR(LibGetSystemConfigurationTable(&acpi10_guid, &p)) && p)
		return (u64)(uintptr_t)p;
	return 0;
}

/*
 * TSC ticks per second, measured against the firmware's Stall (a timer the
 * firmware calibrated: OVMF uses the ACPI PM timer), so that the hypervisor
 * can report times (harvest durations) without a clock of its own. 0 if the
 * measurement makes no sense (Stall failed, or the TSC did not move).
 */
#define BOOT_TSC_CAL_US 20000
static u64 boot_measure_tsc_hz(void)
{
	u64 t0, t1;

	t0 = x86_rdtsc();
	if (EFI_ERROR(BS->Stall(BOOT_TSC_CAL_US)))
		return 0;
	t1 = x86_rdtsc();
	if (t1 <= t0)
		return 0;
	return (t1 - t0) * (1000000 / BOOT_TSC_CAL_US);
}

static bool hypervisor_signature_is_ours(void)
{
	struct x86_cpuid r = x86_cpuid(HV_CPUID_BASE, 0);

	return r.ebx == HV_CPUID_SIG_EBX && r.ecx == HV_CPUID_SIG_ECX && r.edx == HV_CPUID_SIG_EDX;
}

static EFI_STATUS boot_virtualize(EFI_HANDLE image, EFI_LOADED_IMAGE *li,
				  const struct boot_cmdline *cmd)
{
	EFI_MEMORY_DESCRIPTOR *map;
	UINTN map_size = 0, map_key, desc_size;
	UINT32 desc_version;
	EFI_PHYSICAL_ADDRESS pool = 0;
	u64 image_size, ram_bytes = 0, pool_size, bi_size, off, nr_aps, cow_reserve;
	struct hv_boot_info *bi;
	int (*init)(struct hv_boot_info *);
	void (*start)(void *);
	EFI_STATUS st;
	UINTN i;

	(void)image;
	/* Size the pool: image + fixed part + 4 KiB tables for all of RAM split to 4 KiB. */
	map = LibMemoryMap(&map_size, &map_key, &desc_size, &desc_version);
	if (!map)
		return EFI_OUT_OF_RESOURCES;
	for (i = 0; i < map_size; i++) {
		EFI_MEMORY_DESCRIPTOR *d = (void *)((u8 *)map + i * desc_size);

		if (d->Type == EfiConventionalMemory || d->Type == EfiBootServicesData ||
		    d->Type == EfiBootServicesCode || d->Type == EfiLoaderCode ||
		    d->Type == EfiLoaderData)
			ram_bytes += d->NumberOfPages * PAGE_SIZE;
	}
	FreePool(map);

	image_size = (boot_image_size() + PAGE_SIZE - 1) & PAGE_MASK;
	nr_aps = boot_count_aps();
	bi_size = (sizeof(*bi) + PAGE_SIZE - 1) & PAGE_MASK;
	/*
	 * Hidden memory for the copy-on-write snapshot's copies (`ptctl
	 * snapshot --cow`, whose default budget is 1/50 of memory): taken from
	 * the guest here, since the guest cannot give RAM back later.
	 */
	cow_reserve = cmd->cow_reserve_mib == BOOT_COW_RESERVE_DEFAULT
			  ? (ram_bytes / 32) & PAGE_MASK
			  : cmd->cow_reserve_mib << 20;
	pool_size = image_size + bi_size + HOST_STACK_SIZE + POOL_FIXED_BYTES +
		    HV_POOL_LAYOUT_BYTES + nr_aps * HV_AP_POOL_BYTES +
		    ((ram_bytes / 512 + (2ull << 20)) & PAGE_MASK) + cow_reserve;
	st = BS->AllocatePages(AllocateAnyPages, EfiReservedMemoryType, pool_size / PAGE_SIZE,
			       &pool);
	if (EFI_ERROR(st)) {
		hv_log("boot: cannot allocate %lu KiB for the hypervisor: %lx", pool_size >> 10,
		       (u64)st);
		return st;
	}
	boot_relocate_copy((void *)(uintptr_t)pool, image_size);

	off = image_size;
	bi = (struct hv_boot_info *)(uintptr_t)(pool + off);
	off += bi_size;
	bi->pool_base = pool;
	bi->pool_size = pool_size;
	bi->image_base = pool;
	bi->image_size = image_size;
	off += HOST_STACK_SIZE;
	bi->host_stack_top = pool + off;
	bi->alloc_base = pool + off;
	boot_list_cpus(bi);
	bi->acpi_rsdp = boot_find_rsdp();
	bi->tsc_hz = boot_measure_tsc_hz();
	bi->flags = cmd->no_mgmt_tick ? HV_BOOT_NO_MGMT_TICK : 0;
	if (boot_emulator_exit(cmd, bi->acpi_rsdp))
		bi->flags |= HV_BOOT_EMULATOR_EXIT;
	CopyMem(bi->mgmt_uart, cmd->mgmt_uart, sizeof(bi->mgmt_uart));
	bi->mgmt_step_pages = cmd->mgmt_step_pages;
	if (boot_copy_memory_map(bi)) {
		BS->FreePages(pool, pool_size / PAGE_SIZE);
		return EFI_BUFFER_TOO_SMALL;
	}

	init = boot_in_copy(bi, (void *)hv_init);
	start = boot_in_copy(bi, (void *)hv_start);
	if (init(bi)) {
		hv_log("boot: hypervisor initialization failed; not virtualizing");
		BS->FreePages(pool, pool_size / PAGE_SIZE);
		return EFI_UNSUPPORTED;
	}
	(void)li;
	x86_takeover(&bi->takeover, start, bi, bi->host_stack_top);
	/* From here on the firmware, and this code, run as the guest. */
	boot_virtualize_aps();
	return EFI_SUCCESS;
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_LOADED_IMAGE *li = NULL;
	struct boot_cmdline cmd;
	EFI_STATUS st;

	InitializeLib(image, systab);
	hv_log("boot: pagetrail.efi started");
	st = BS->HandleProtocol(image, &LoadedImageProtocol, (void **)&li);
	if (EFI_ERROR(st)) {
		hv_log("boot: no LoadedImage protocol: %lx", (u64)st);
		return st;
	}
	boot_image_init(li);
	if (boot_parse_cmdline(li, &cmd)) {
		Print(L"usage: pagetrail.efi [--no-mgmt-tick] [--mgmt-step-pages N] "
		      L"[--cow-reserve-mib N] [--mgmt-uart SPEC] [--emulator-exit auto|on|off] "
		      L"[--] [PATH [ARGS...]]\n");
		return EFI_INVALID_PARAMETER;
	}

	if (hypervisor_signature_is_ours()) {
		hv_log("boot: already running under PageTrail; not virtualizing again");
	} else {
		st = boot_virtualize(image, li, &cmd);
		if (EFI_ERROR(st)) {
			Print(L"pagetrail: not virtualizing (%r)\n", st);
			return st;
		}
		if (!hypervisor_signature_is_ours()) {
			hv_log("boot: FATAL: resumed but CPUID 0x40000000 is not PageTrail's");
			return EFI_DEVICE_ERROR;
		}
		hv_log("guest running");
		Print(L"pagetrail: hypervisor running, firmware is its guest\n");
	}
	if (!cmd.path)
		return EFI_SUCCESS;
	return boot_chain(image, li, &cmd);
}
