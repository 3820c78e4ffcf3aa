/* SPDX-License-Identifier: MIT */
/*
 * Is this machine an emulator? Only then may the hypervisor stop it through
 * the emulator's exit devices (QEMU's isa-debug-exit at port 0xF4, the ACPI
 * PM1a control ports QEMU's q35 and i440fx and Bochs decode, hv/log.c): on
 * a real machine those ports belong to whatever chip decodes them there.
 *
 * Independent signs, any one suffices:
 *  - CPUID: leaf 1 ECX bit 31 ("reserved for use by hypervisors", AMD APM
 *    Vol. 3, Appendix E.3.2; Intel SDM Vol. 2A, CPUID, "Feature Information")
 *    and the vendor signature of leaf 0x40000000: QEMU's TCG answers
 *    "TCGTCGTCGTCG", QEMU with KVM "KVMKVMKVM\0\0\0" (Linux
 *    Documentation/virt/kvm/x86/cpuid.rst).
 *  - SMBIOS (DMTF DSP0134 3.x, 7.1 "BIOS Information (Type 0)" and 7.2
 *    "System Information (Type 1)"): the system manufacturer "QEMU" or
 *    "Bochs", or the BIOS vendor naming OVMF, the firmware built only for
 *    virtual machines.
 *  - ACPI: the FADT's OEM ID "BOCHS " or OEM Table ID "BXPC" (QEMU's tables).
 *  - The debug console: port 0xE9 reads back 0xE9 (Bochs + OVMF, whose CPU
 *    has no hypervisor leaf and whose firmware tables do not name it).
 * Nothing here writes a port: a real machine is only read (CPUID, the
 * firmware's tables, one read of port 0xE9).
 */
#include "arch/x86/cpu.h"
#include "boot/boot.h"
#include "hv/acpi.h"
#include "hv/log.h"

#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define SMBIOS_TYPE_BIOS       0
#define SMBIOS_TYPE_SYSTEM     1
#define SMBIOS_TYPE_END	       127
/* A structure table larger than this is not believed (real ones are a few KiB). */
#define SMBIOS_MAX_TABLE (1u << 20)

static bool mem_eq(const void *a, const char *b, UINTN n)
{
	const u8 *p = a;
	UINTN i;

	for (i = 0; i < n; i++)
		if (p[i] != (u8)b[i])
			return false;
	return true;
}

/* `hay` (NUL-terminated, at most max bytes) contains `needle`. */
static bool str_has(const char *hay, UINTN max, const char *needle)
{
	UINTN i, k;

	for (i = 0; i < max && hay[i]; i++) {
		for (k = 0; needle[k] && i + k < max && hay[i + k] == needle[k]; k++)
			;
		if (!needle[k])
			return true;
	}
	return false;
}

static bool boot_cpuid_emulator(char *name, UINTN size)
{
	struct x86_cpuid r = x86_cpuid(1, 0);
	char sig[13];

	if (!(r.ecx & CPUID_1_ECX_HYPERVISOR))
		return false;
	r = x86_cpuid(0x40000000u, 0);
	CopyMem(sig, &r.ebx, 4);
	CopyMem(sig + 4, &r.ecx, 4);
	CopyMem(sig + 8, &r.edx, 4);
	sig[12] = 0;
	if (mem_eq(sig, "TCGTCGTCGTCG", 12)) {
		hv_snprintf(name, size, "QEMU TCG (CPUID 0x40000000)");
		return true;
	}
	if (mem_eq(sig, "KVMKVMKVM\0\0\0", 12)) {
		hv_snprintf(name, size, "QEMU/KVM (CPUID 0x40000000)");
		return true;
	}
	return false;
}

/* String number `n` (1-based) after the formatted area of the structure at p. */
static const char *smbios_string(const u8 *p, const u8 *end, u8 n)
{
	const char *s = (const char *)p + p[1];

	if (!n)
		return NULL;
	while (--n) {
		while ((const u8 *)s < end && *s)
			s++;
		s++;
		if ((const u8 *)s >= end || !*s)
			return NULL;
	}
	return (const u8 *)s < end ? s : NULL;
}

static bool smbios_table(const u8 **table, u32 *len)
{
	void *ep = NULL;
	const u8 *e;

	/* DSP0134 5.2.2 "SMBIOS 3.0 (64-bit) Entry Point", 5.2.1 the 2.1 (32-bit) one. */
	if (!EFI_ERROR(LibGetSystemConfigurationTable(&SMBIOS3TableGuid, &ep)) && ep &&
	    mem_eq(ep, "_SM3_", 5)) {
		e = ep;
		*table = (const u8 *)(uintptr_t)(*(const u64 *)(e + 0x10));
		*len = *(const u32 *)(e + 0x0c);
		return true;
	}
	if (!EFI_ERROR(LibGetSystemConfigurationTable(&SMBIOSTableGuid, &ep)) && ep &&
	    mem_eq(ep, "_SM_", 4)) {
		e = ep;
		*table = (const u8 *)(uintptr_t)(*(const u32 *)(e + 0x18));
		*len = *(const u16 *)(e + 0x16);
		return true;
	}
	return false;
}

static bool boot_smbios_emulator(char *name, UINTN size)
{
	const u8 *p, *end;
	u32 len;

	if (!smbios_table(&p, &len) || !p || len > SMBIOS_MAX_TABLE)
		return false;
	end = p + len;
	while (p + 4 <= end && p[1] >= 4 && p + p[1] <= end && p[0] != SMBIOS_TYPE_END) {
		const u8 *next = p + p[1];
		const char *s = NULL;

		if ((p[0] == SMBIOS_TYPE_BIOS || p[0] == SMBIOS_TYPE_SYSTEM) && p[1] > 4)
			s = smbios_string(p, end, p[4]); /* Vendor / Manufacturer */
		if (s && (str_has(s, (UINTN)(end - (const u8 *)s), "QEMU") ||
			  str_has(s, (UINTN)(end - (const u8 *)s), "Bochs") ||
			  (p[0] == SMBIOS_TYPE_BIOS &&
			   str_has(s, (UINTN)(end - (const u8 *)s), "OVMF")))) {
			char text[41];
			UINTN k;

			for (k = 0; k + 1 < sizeof(text) && s + k < (const char *)end && s[k]; k++)
				text[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
			text[k] = 0;
			hv_snprintf(name, size, "SMBIOS type %u \"%s\"", p[0], text);
			return true;
		}
		/* The strings end with two NULs. */
		while (next + 1 < end && (next[0] || next[1]))
			next++;
		p = next + 2;
	}
	return false;
}

/*
 * The FADT's header (ACPI 6.5, 5.2.6 "System Description Table Header": OEM
 * ID at offset 10, OEM Table ID at 16): QEMU's tables, and the ones Bochs'
 * BIOS wrote, say OEM "BOCHS " and table "BXPC...". Logged either way: what
 * a machine's firmware calls itself is worth a line when detection fails.
 */
static bool boot_acpi_emulator(u64 rsdp, char *name, UINTN size)
{
	u64 t = acpi_find_table(rsdp, "FACP");
	const u8 *h = (const u8 *)(uintptr_t)t;
	char oem[7], table[9];
	UINTN i;

	if (!t)
		return false;
	for (i = 0; i < 6; i++)
		oem[i] = h[10 + i] >= 0x20 && h[10 + i] < 0x7f ? (char)h[10 + i] : '?';
	for (i = 0; i < 8; i++)
		table[i] = h[16 + i] >= 0x20 && h[16 + i] < 0x7f ? (char)h[16 + i] : '?';
	oem[6] = table[8] = 0;
	hv_log("boot: ACPI FADT OEM \"%s\" table \"%s\"", oem, table);
	if (mem_eq(oem, "BOCHS ", 6) || mem_eq(table, "BXPC", 4)) {
		hv_snprintf(name, size, "ACPI FADT OEM \"%s\" table \"%s\"", oem, table);
		return true;
	}
	return false;
}

/*
 * The debug console the hypervisor logs to (port 0xE9) reads back 0xE9:
 * Bochs' port_e9_hack (Bochs User Manual, "port_e9_hack") and QEMU's
 * isa-debugcon (property readback, default 0xe9) both answer so. On a PC
 * nothing decodes that port and a read floats to 0xFF. One read, no write
 * beyond the log lines the hypervisor sends there anyway. It is how Bochs
 * + OVMF is recognised: Bochs' CPU models have no hypervisor leaf, and
 * OVMF there (no fw_cfg) publishes neither SMBIOS nor ACPI naming it.
 */
static bool boot_debugcon_emulator(char *name, UINTN size)
{
	if (x86_inb(HV_DEBUGCON_PORT) != HV_DEBUGCON_PORT)
		return false;
	hv_snprintf(name, size, "port 0x%x reads back 0x%x: Bochs or QEMU debug console",
		    HV_DEBUGCON_PORT, HV_DEBUGCON_PORT);
	return true;
}

bool boot_detect_emulator(u64 rsdp, char *name, UINTN size)
{
	return boot_cpuid_emulator(name, size) || boot_smbios_emulator(name, size) ||
	       boot_acpi_emulator(rsdp, name, size) || boot_debugcon_emulator(name, size);
}
