/* SPDX-License-Identifier: MIT */
/* boot/ internals: the image copy, the memory map copy, the command line, chaining. */
#ifndef PT_BOOT_BOOT_H
#define PT_BOOT_BOOT_H

#include <efi.h>
#include <efilib.h>

#include "hv/boot.h"

/* Records where the firmware loaded this image. */
void boot_image_init(EFI_LOADED_IMAGE *li);
/* Bytes from ImageBase to __image_end (what the copy needs). */
u64 boot_image_size(void);
/*
 * Copies the running image to `dst` and applies its R_X86_64_RELATIVE
 * relocations again for the new base, so that the copy's pointers (function
 * tables, string tables) point into the copy.
 */
void boot_relocate_copy(void *dst, u64 size);
/* The copy's address of a symbol of this image. */
void *boot_in_copy(const struct hv_boot_info *bi, void *sym);
/* Fills bi->ranges from GetMemoryMap, the pool marked HV_MEM_HIDDEN. 0 or -1. */
int boot_copy_memory_map(struct hv_boot_info *bi);

/* No --cow-reserve-mib: 1/32 of RAM (boot/efi_main.c). */
#define BOOT_COW_RESERVE_DEFAULT (~0ull)

enum boot_emulator_exit {
	BOOT_EMULATOR_EXIT_AUTO, /* the emulator's exit ports only if one is detected */
	BOOT_EMULATOR_EXIT_ON,
	BOOT_EMULATOR_EXIT_OFF,
};

struct boot_cmdline {
	bool no_mgmt_tick;   /* --no-mgmt-tick */
	u64 mgmt_step_pages; /* --mgmt-step-pages N, 0 without it */
	u64 cow_reserve_mib; /* --cow-reserve-mib N, BOOT_COW_RESERVE_DEFAULT without it */
	u8 emulator_exit;    /* enum boot_emulator_exit: --emulator-exit */
	char mgmt_uart[HV_MGMT_UART_SPEC_LEN]; /* --mgmt-uart SPEC, "" without it */
	CHAR16 *path;	     /* next program, or NULL */
	CHAR16 *child_opts;  /* "PATH ARGS...", its LoadOptions */
	UINT32 child_opts_size;
};

/*
 * CPUID and SMBIOS say this is QEMU or Bochs (boot/platform.c): true, and
 * `name` says which sign. Reads only; writes no port.
 */
bool boot_detect_emulator(u64 rsdp, char *name, UINTN size);

/* 0, or -1 after logging an unknown option. */
int boot_parse_cmdline(EFI_LOADED_IMAGE *li, struct boot_cmdline *cmd);
EFI_STATUS boot_chain(EFI_HANDLE image, EFI_LOADED_IMAGE *li, const struct boot_cmdline *cmd);

#endif /* PT_BOOT_BOOT_H */
