/* SPDX-License-Identifier: MIT */
/*
 * The TSC for the UEFI test programs that time themselves against it (hpet.efi,
 * irqoff.efi, uartblast.efi); each calibrates it against the firmware's Stall.
 * No serialization: these programs time loops of milliseconds, not single
 * instructions.
 */
#ifndef PT_TESTS_GUEST_EFI_TSC_H
#define PT_TESTS_GUEST_EFI_TSC_H

#include <efi.h>

static inline UINT64 efi_rdtsc(void)
{
	UINT32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((UINT64)hi << 32) | lo;
}

#endif
