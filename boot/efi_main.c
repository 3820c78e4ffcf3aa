/* SPDX-License-Identifier: MIT */
/*
 * pagetrail.efi entry: the only code that calls UEFI.
 *
 * Invocation (UEFI shell, or LoadOptions set by a loader, shell-style with
 * argv[0] first):
 *
 *     pagetrail.efi [--no-mgmt-tick] [--mgmt-step-pages N] [--] [PATH [ARGS...]]
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
 * make every command take many steps).
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
#include "hv/boot.h"
#include "hv/hv.h"
#include "hv/log.h"

#define HOST_STACK_SIZE (64 * 1024)
/* Pool beyond the image: host tables, VMCB and friends, then nested tables. */
#define POOL_FIXED_BYTES (4ull << 20)

static EFI_GUID mp_services_guid = {
    0x3fdda605, 0xa76e, 0x4f46, {0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08}};

/* EFI_MP_SERVICES_PROTOCOL (PI spec Vol. 2, 13.4): only the first member. */
struct efi_mp_services {
	EFI_STATUS(EFIAPI *get_number_of_processors)
	(struct efi_mp_services *self, UINTN *total, UINTN *enabled);
};

static u32 boot_count_cpus(void)
{
	struct efi_mp_services *mp = NULL;
	UINTN total = 1, enabled = 1;

	if (EFI_ERROR(LibLocateProtocol(&mp_services_guid, (void **)&mp)) || !mp)
		return 1;
	if (EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled)))
		return 1;
	return (u32)enabled;
}

static EFI_GUID acpi20_guid = ACPI_20_TABLE_GUID;
static EFI_GUID acpi10_guid = ACPI_TABLE_GUID;

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
	u64 image_size, ram_bytes = 0, pool_size, bi_size, off;
	struct hv_boot_info *bi;
	int (*init)(struct hv_boot_info *);
	void (*start)(struct hv_boot_info *);
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
	bi_size = (sizeof(*bi) + PAGE_SIZE - 1) & PAGE_MASK;
	pool_size = image_size + bi_size + HOST_STACK_SIZE + POOL_FIXED_BYTES +
		    ((ram_bytes / 512 + (2ull << 20)) & PAGE_MASK);
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
	bi->nr_cpus = boot_count_cpus();
	bi->acpi_rsdp = boot_find_rsdp();
	bi->tsc_hz = boot_measure_tsc_hz();
	bi->flags = cmd->no_mgmt_tick ? HV_BOOT_NO_MGMT_TICK : 0;
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
	x86_takeover(bi, start, bi->host_stack_top);
	/* From here on the firmware, and this code, run as the guest. */
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
		Print(L"usage: pagetrail.efi [--no-mgmt-tick] [--mgmt-step-pages N] [--] "
		      L"[PATH [ARGS...]]\n");
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
