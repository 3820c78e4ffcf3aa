/* SPDX-License-Identifier: MIT */
#ifndef PT_BOOT_EFI_MP_H
#define PT_BOOT_EFI_MP_H
/*
 * EFI_MP_SERVICES_PROTOCOL (UEFI PI spec 1.7, Vol. 2, 13.4 "MP Services
 * Protocol"), which GNU-EFI does not declare: the firmware owns the APs until
 * the OS starts them, and runs procedures on them through it. pagetrail.efi
 * takes each AP through it (boot/efi_main.c); guest test programs use it to
 * keep every CPU busy (tests/guest/irqoff.c). Include after <efi.h>.
 */
#define EFI_MP_SERVICES_PROTOCOL_GUID                                                              \
	{                                                                                          \
		0x3fdda605, 0xa76e, 0x4f46,                                                        \
		{                                                                                  \
			0xad, 0x29, 0x12, 0xf4, 0x53, 0x1b, 0x3d, 0x08                             \
		}                                                                                  \
	}

typedef void(EFIAPI *efi_ap_procedure)(void *arg);

struct efi_cpu_location {
	UINT32 package, core, thread;
};

/* EFI_PROCESSOR_INFORMATION (13.4.2), without ExtendedInformation (not asked for). */
struct efi_processor_info {
	UINT64 processor_id; /* the local APIC ID */
	UINT32 status_flag;  /* BIT0 BSP, BIT1 enabled, BIT2 healthy */
	struct efi_cpu_location location;
	UINT8 extended[64]; /* room for firmware that fills ExtendedInformation anyway */
};

struct efi_mp_services {
	EFI_STATUS(EFIAPI *get_number_of_processors)
	(struct efi_mp_services *self, UINTN *total, UINTN *enabled);
	EFI_STATUS(EFIAPI *get_processor_info)
	(struct efi_mp_services *self, UINTN number, struct efi_processor_info *info);
	EFI_STATUS(EFIAPI *startup_all_aps)
	(struct efi_mp_services *self, efi_ap_procedure proc, BOOLEAN single_thread, EFI_EVENT wait,
	 UINTN timeout_us, void *arg, UINTN **failed);
	EFI_STATUS(EFIAPI *startup_this_ap)
	(struct efi_mp_services *self, efi_ap_procedure proc, UINTN number, EFI_EVENT wait,
	 UINTN timeout_us, void *arg, BOOLEAN *finished);
};

#endif
