/* SPDX-License-Identifier: MIT */
/*
 * The hypervisor runs from a copy of this image in the hidden pool: the
 * firmware frees the loaded image when the application returns. GNU-EFI's
 * crt0 already applied the ELF relocations for the load address
 * (_relocate); the copy gets them again for its own address.
 */
#include "boot/boot.h"

#include "hv/log.h"

/* ELF64 dynamic section and RELA entries (System V gABI, "Dynamic Section"). */
struct elf64_dyn {
	s64 d_tag;
	u64 d_val;
};

struct elf64_rela {
	u64 r_offset;
	u64 r_info;
	s64 r_addend;
};

#define DT_NULL		  0
#define DT_RELA		  7
#define DT_RELASZ	  8
#define DT_RELAENT	  9
#define R_X86_64_RELATIVE 8
#define ELF64_R_TYPE(i)	  ((u32)(i))

extern const char ImageBase[] __attribute__((visibility("hidden")));
extern const char __image_end[] __attribute__((visibility("hidden")));
extern struct elf64_dyn _DYNAMIC[] __attribute__((visibility("hidden")));

static u64 loaded_base;

void boot_image_init(EFI_LOADED_IMAGE *li)
{
	loaded_base = (u64)(uintptr_t)ImageBase;
	if ((u64)(uintptr_t)li->ImageBase != loaded_base)
		hv_log("boot: LoadedImage base %p differs from ImageBase 0x%lx", li->ImageBase,
		       loaded_base);
}

u64 boot_image_size(void)
{
	return (u64)(uintptr_t)__image_end - loaded_base;
}

void boot_relocate_copy(void *dst, u64 size)
{
	u8 *d = dst;
	const u8 *s = (const u8 *)(uintptr_t)loaded_base;
	u64 new_base = (u64)(uintptr_t)dst, rela = 0, relasz = 0, relaent = 0, i, n = 0;
	const struct elf64_dyn *dyn;

	for (i = 0; i < boot_image_size(); i++)
		d[i] = s[i];
	for (; i < size; i++)
		d[i] = 0;
	for (dyn = _DYNAMIC; dyn->d_tag != DT_NULL; dyn++) {
		if (dyn->d_tag == DT_RELA)
			rela = dyn->d_val;
		else if (dyn->d_tag == DT_RELASZ)
			relasz = dyn->d_val;
		else if (dyn->d_tag == DT_RELAENT)
			relaent = dyn->d_val;
	}
	if (!relaent)
		relaent = sizeof(struct elf64_rela);
	for (i = 0; i + relaent <= relasz; i += relaent) {
		const struct elf64_rela *r = (const void *)(s + rela + i);

		if (ELF64_R_TYPE(r->r_info) != R_X86_64_RELATIVE)
			continue;
		/* crt0 left ImageBase + addend in place; rebase it to the copy. */
		*(u64 *)(d + r->r_offset) = *(u64 *)(d + r->r_offset) - loaded_base + new_base;
		n++;
	}
	hv_log("boot: image copied to 0x%lx (%lu bytes, %lu relocations)", new_base,
	       boot_image_size(), n);
}

void *boot_in_copy(const struct hv_boot_info *bi, void *sym)
{
	return (void *)((u64)(uintptr_t)sym - loaded_base + bi->image_base);
}

/*
 * Firmware-reserved ranges are RAM (SMRAM copies, firmware stashes) or MMIO
 * (q35's PCIe MMCONFIG window at 0xB0000000 is listed as reserved): only the
 * ones the firmware says can be cached write-back are RAM.
 */
static enum hv_mem_type efi_reserved_to_hv(UINT64 attr)
{
	return (attr & EFI_MEMORY_WB) ? HV_MEM_RESERVED : HV_MEM_MMIO;
}

static enum hv_mem_type efi_type_to_hv(UINT32 t, UINT64 attr)
{
	switch (t) {
	case EfiLoaderCode:
	case EfiLoaderData:
	case EfiBootServicesCode:
	case EfiBootServicesData:
	case EfiConventionalMemory:
	case 14: /* EfiPersistentMemory (UEFI 2.5), absent from GNU-EFI's enum */
		return HV_MEM_RAM;
	case EfiACPIReclaimMemory:
	case EfiACPIMemoryNVS:
		return HV_MEM_ACPI;
	case EfiRuntimeServicesCode:
	case EfiRuntimeServicesData:
		return HV_MEM_RUNTIME;
	case EfiMemoryMappedIO:
	case EfiMemoryMappedIOPortSpace:
		return HV_MEM_MMIO;
	}
	/* Reserved, unusable, PAL code, and types newer than this code. */
	return efi_reserved_to_hv(attr);
}

static int add_range(struct hv_boot_info *bi, u64 base, u64 end, enum hv_mem_type type,
		     UINT32 efi_type, u64 attr)
{
	struct hv_mem_range *r;

	if (end <= base)
		return 0;
	/*
	 * A neighbour of the same kind grows instead (firmware maps list boot
	 * services code and data, conventional memory... one after the other,
	 * all RAM here), so a server's long map takes few ranges.
	 */
	r = bi->nr_ranges ? &bi->ranges[bi->nr_ranges - 1] : NULL;
	if (r && r->type == (u32)type && r->base + r->pages * PAGE_SIZE == base) {
		r->pages += (end - base) / PAGE_SIZE;
		return 0;
	}
	if (bi->nr_ranges == HV_MAX_MEM_RANGES) {
		hv_log("boot: memory map has more than %u entries", HV_MAX_MEM_RANGES);
		return -1;
	}
	r = &bi->ranges[bi->nr_ranges++];
	r->base = base;
	r->pages = (end - base) / PAGE_SIZE;
	r->type = type;
	r->efi_type = efi_type;
	r->attr = attr;
	return 0;
}

int boot_copy_memory_map(struct hv_boot_info *bi)
{
	UINTN n = 0, key, desc_size, i;
	UINT32 ver;
	EFI_MEMORY_DESCRIPTOR *map = LibMemoryMap(&n, &key, &desc_size, &ver);
	u64 ps = bi->pool_base, pe = bi->pool_base + bi->pool_size;
	int rc = 0;

	if (!map)
		return -1;
	bi->nr_ranges = 0;
	for (i = 0; i < n && !rc; i++) {
		EFI_MEMORY_DESCRIPTOR *d = (void *)((u8 *)map + i * desc_size);
		u64 b = d->PhysicalStart, e = b + d->NumberOfPages * PAGE_SIZE;
		enum hv_mem_type t = efi_type_to_hv(d->Type, d->Attribute);

		/* The pool is carved out of whatever entry holds it (the firmware may merge). */
		rc = add_range(bi, b, e < ps ? e : (b < ps ? ps : b), t, d->Type, d->Attribute);
		if (!rc)
			rc = add_range(bi, b > pe ? b : pe, e, t, d->Type, d->Attribute);
	}
	if (!rc)
		rc = add_range(bi, ps, pe, HV_MEM_HIDDEN, EfiReservedMemoryType, 0);
	FreePool(map);
	return rc;
}
