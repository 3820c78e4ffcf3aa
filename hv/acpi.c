/* SPDX-License-Identifier: MIT */
#include "hv/acpi.h"

/* ACPI 6.5, 5.2.5.3 "Root System Description Pointer (RSDP) Structure". */
#define RSDP_V1_LEN	  20u
#define RSDP_OFF_REVISION 15u
#define RSDP_OFF_RSDT	  16u
#define RSDP_OFF_LENGTH	  20u
#define RSDP_OFF_XSDT	  24u
#define RSDP_V2_MIN_LEN	  36u
/* 5.2.6 "System Description Table Header". */
#define SDT_OFF_LENGTH	 4u
#define SDT_OFF_CHECKSUM 9u
/* Root tables larger than this are not believed (a real one holds a few dozen entries). */
#define ROOT_TABLE_MAX_LEN 0x10000u
/* A description table is not believed beyond this length either (the DSDT is the big one). */
#define SDT_MAX_LEN (16u << 20)

/* IA-PC HPET Specification 1.0a, 3.2.4, table 3: the base address is a GAS at offset 40. */
#define HPET_TABLE_MIN_LEN	 56u
#define HPET_TABLE_OFF_BLOCK_ID	 36u
#define HPET_TABLE_OFF_GAS_SPACE 40u
#define HPET_TABLE_OFF_GAS_ADDR	 44u
#define ACPI_GAS_SYSTEM_MEMORY	 0u

static const u8 *pa_ptr(u64 pa)
{
	return (const u8 *)(uintptr_t)pa;
}

static u32 get_u32(const u8 *p)
{
	return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static u64 get_u64(const u8 *p)
{
	return get_u32(p) | (u64)get_u32(p + 4) << 32;
}

static void put_u32(u8 *p, u32 v)
{
	p[0] = (u8)v;
	p[1] = (u8)(v >> 8);
	p[2] = (u8)(v >> 16);
	p[3] = (u8)(v >> 24);
}

/* ACPI checksums: all bytes of the structure sum to 0 modulo 256. */
static u8 sum_bytes(const u8 *p, u32 len)
{
	u8 s = 0;
	u32 i;

	for (i = 0; i < len; i++)
		s = (u8)(s + p[i]);
	return s;
}

static bool sig_is(const u8 *p, const char *sig)
{
	return p[0] == (u8)sig[0] && p[1] == (u8)sig[1] && p[2] == (u8)sig[2] && p[3] == (u8)sig[3];
}

static bool rsdp_valid(const u8 *r)
{
	static const char magic[8] = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
	unsigned int i;

	for (i = 0; i < sizeof(magic); i++)
		if (r[i] != (u8)magic[i])
			return false;
	return sum_bytes(r, RSDP_V1_LEN) == 0;
}

/* A description table at pa with a sane length and a good checksum. */
static bool sdt_valid(u64 pa, u32 max_len)
{
	const u8 *t = pa_ptr(pa);
	u32 len;

	if (!pa)
		return false;
	len = get_u32(t + SDT_OFF_LENGTH);
	return len >= ACPI_SDT_HEADER_LEN && len <= max_len && sum_bytes(t, len) == 0;
}

/* The XSDT (entry size 8) and RSDT (entry size 4) of the RSDP, 0 where absent or invalid. */
static void root_tables(u64 rsdp, u64 *xsdt, u64 *rsdt)
{
	const u8 *r = pa_ptr(rsdp);

	*xsdt = 0;
	*rsdt = 0;
	if (!rsdp || !rsdp_valid(r))
		return;
	*rsdt = get_u32(r + RSDP_OFF_RSDT);
	if (!sdt_valid(*rsdt, ROOT_TABLE_MAX_LEN) || !sig_is(pa_ptr(*rsdt), "RSDT"))
		*rsdt = 0;
	/* Revision 2+ (ACPI 2.0): the extended checksum covers the whole RSDP. */
	if (r[RSDP_OFF_REVISION] >= 2 && get_u32(r + RSDP_OFF_LENGTH) >= RSDP_V2_MIN_LEN &&
	    sum_bytes(r, get_u32(r + RSDP_OFF_LENGTH)) == 0) {
		*xsdt = get_u64(r + RSDP_OFF_XSDT);
		if (!sdt_valid(*xsdt, ROOT_TABLE_MAX_LEN) || !sig_is(pa_ptr(*xsdt), "XSDT"))
			*xsdt = 0;
	}
}

static u64 root_entry(u64 root, u32 esize, u32 i)
{
	const u8 *e = pa_ptr(root) + ACPI_SDT_HEADER_LEN + i * esize;

	return esize == 8 ? get_u64(e) : get_u32(e);
}

static u32 root_nr_entries(u64 root, u32 esize)
{
	return (get_u32(pa_ptr(root) + SDT_OFF_LENGTH) - ACPI_SDT_HEADER_LEN) / esize;
}

static u64 find_in_root(u64 root, u32 esize, const char *sig)
{
	u32 i, n;

	if (!root)
		return 0;
	n = root_nr_entries(root, esize);
	for (i = 0; i < n; i++) {
		u64 t = root_entry(root, esize, i);

		if (sdt_valid(t, SDT_MAX_LEN) && sig_is(pa_ptr(t), sig))
			return t;
	}
	return 0;
}

u64 acpi_find_table(u64 rsdp, const char *sig)
{
	u64 xsdt, rsdt, t;

	root_tables(rsdp, &xsdt, &rsdt);
	t = find_in_root(xsdt, 8, sig);
	return t ? t : find_in_root(rsdt, 4, sig);
}

int acpi_hpet_base(u64 hpet_table, u64 *base)
{
	const u8 *t = pa_ptr(hpet_table);

	if (get_u32(t + SDT_OFF_LENGTH) < HPET_TABLE_MIN_LEN ||
	    t[HPET_TABLE_OFF_GAS_SPACE] != ACPI_GAS_SYSTEM_MEMORY)
		return -1;
	*base = get_u64(t + HPET_TABLE_OFF_GAS_ADDR);
	return *base && !(*base & 0xfff) ? 0 : -1;
}

int acpi_hpet_set_block_id(u64 hpet_table, u32 id)
{
	u8 *t = (u8 *)(uintptr_t)hpet_table;
	u32 len = get_u32(t + SDT_OFF_LENGTH);

	if (len < HPET_TABLE_MIN_LEN || len > SDT_MAX_LEN)
		return -1;
	put_u32(t + HPET_TABLE_OFF_BLOCK_ID, id);
	t[SDT_OFF_CHECKSUM] = 0;
	t[SDT_OFF_CHECKSUM] = (u8)(0 - sum_bytes(t, len));
	return 0;
}
