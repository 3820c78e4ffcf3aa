/* SPDX-License-Identifier: MIT */
/*
 * The few ACPI table operations the hypervisor needs (ACPI 6.5, 5.2 "ACPI
 * System Description Tables"): find a table by signature through the RSDP's
 * XSDT (or RSDT), and change the HPET table's block ID. Tables are read and
 * changed in place, at their physical addresses
 * (identity-mapped in the firmware's and the host's page tables). boot/ finds
 * the RSDP (EFI configuration table) and hands its address over in
 * hv_boot_info.acpi_rsdp.
 */
#ifndef PT_HV_ACPI_H
#define PT_HV_ACPI_H

#include <pt/types.h>

/* ACPI 6.5, 5.2.6 "System Description Table Header". */
#define ACPI_SDT_HEADER_LEN 36u

/* The physical address of the first valid table with signature `sig` (4 chars), or 0. */
u64 acpi_find_table(u64 rsdp, const char *sig);
/* HPET description table (IA-PC HPET Specification 1.0a, 3.2.4): its base address. */
int acpi_hpet_base(u64 hpet_table, u64 *base);
/*
 * Sets its Event Timer Block ID (a copy of the General Capabilities and ID
 * register's low half, spec 3.2.4 table 3) and fixes its checksum; 0, or -1
 * if the table is too short.
 */
int acpi_hpet_set_block_id(u64 hpet_table, u32 id);

#endif /* PT_HV_ACPI_H */
