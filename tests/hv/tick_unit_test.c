/* SPDX-License-Identifier: MIT */
/*
 * Host unit tests (ASan+UBSan) for the management tick's logic that needs no
 * CPU: hv/acpi.c finding the HPET table and setting its block ID in
 * in-memory RSDP/XSDT/RSDT images, and drivers/hpet.c picking, programming
 * and claiming ticks on a register block that is plain memory, and the
 * guest's view of the shared HPET (hv/vhpet.c) on the same block; the
 * management port's poll intervals from the line's rate (hv/mgmt_poll.c),
 * and a model of a 16550's transmitter fed at those polls.
 * Prints "ok NAME" / "not ok NAME reason" lines for tests/run.sh.
 */
#include "drivers/hpet.h"
#include "drivers/uart16550.h"
#include "hv/acpi.h"
#include "hv/mgmt_poll.h"
#include "hv/vhpet.h"
#include "tests/check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---- ACPI images ---- */

static u8 sum(const u8 *p, u32 n)
{
	u8 s = 0;

	while (n--)
		s = (u8)(s + *p++);
	return s;
}

static void put32(u8 *p, u32 v)
{
	memcpy(p, &v, 4);
}

static void put64(u8 *p, u64 v)
{
	memcpy(p, &v, 8);
}

static u32 get32(const u8 *p)
{
	u32 v;

	memcpy(&v, p, 4);
	return v;
}

/* A description table header of `len` bytes with a good checksum (body already filled). */
static void sdt_seal(u8 *t, const char *sig, u32 len)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = 1;
	t[9] = 0;
	t[9] = (u8)(0 - sum(t, len));
}

struct acpi_image {
	u8 rsdp[36];
	u8 xsdt[36 + 8 * 4];
	u8 rsdt[36 + 4 * 4];
	u8 facp[36], apic[44], hpet[56], bad[56];
};

/* Below 4 GiB (MAP_32BIT), zeroed: RSDT entries are 32-bit physical addresses. */
static struct acpi_image *acpi_image_new(void)
{
	struct acpi_image *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	u64 tables[3];

	if (a == MAP_FAILED) {
		perror("mmap MAP_32BIT");
		exit(1);
	}

	sdt_seal(a->facp, "FACP", sizeof(a->facp));
	sdt_seal(a->apic, "APIC", sizeof(a->apic));
	a->hpet[40] = 0; /* GAS: system memory */
	put64(a->hpet + 44, 0xfed00000ull);
	sdt_seal(a->hpet, "HPET", sizeof(a->hpet));
	tables[0] = (u64)(uintptr_t)a->facp;
	tables[1] = (u64)(uintptr_t)a->hpet;
	tables[2] = (u64)(uintptr_t)a->apic;
	for (int i = 0; i < 3; i++)
		put64(a->xsdt + 36 + 8 * i, tables[i]);
	sdt_seal(a->xsdt, "XSDT", 36 + 8 * 3);
	memcpy(a->rsdp, "RSD PTR ", 8);
	a->rsdp[15] = 2;
	put32(a->rsdp + 16, 0); /* no RSDT unless the test adds one */
	put32(a->rsdp + 20, 36);
	put64(a->rsdp + 24, (u64)(uintptr_t)a->xsdt);
	a->rsdp[8] = (u8)(0 - sum(a->rsdp, 20));
	a->rsdp[32] = (u8)(0 - sum(a->rsdp, 36));
	return a;
}

static void test_acpi(void)
{
	struct acpi_image *a = acpi_image_new();
	u64 rsdp = (u64)(uintptr_t)a->rsdp, base = 0;

	CHECK_CASE("acpi.find_hpet", acpi_find_table(rsdp, "HPET") == (u64)(uintptr_t)a->hpet,
		   "found 0x%llx", (unsigned long long)acpi_find_table(rsdp, "HPET"));
	CHECK_CASE("acpi.hpet_base",
		   acpi_hpet_base(acpi_find_table(rsdp, "HPET"), &base) == 0 &&
		       base == 0xfed00000ull,
		   "base 0x%llx", (unsigned long long)base);
	CHECK_CASE("acpi.find_missing", acpi_find_table(rsdp, "MCFG") == 0,
		   "found a table not there");
	CHECK_CASE("acpi.hpet_block_id",
		   acpi_hpet_set_block_id(acpi_find_table(rsdp, "HPET"), 0x8086a101u) == 0 &&
		       get32(a->hpet + 36) == 0x8086a101u && sum(a->hpet, sizeof(a->hpet)) == 0 &&
		       acpi_find_table(rsdp, "HPET") == (u64)(uintptr_t)a->hpet,
		   "block id 0x%x, checksum sum %u", get32(a->hpet + 36),
		   sum(a->hpet, sizeof(a->hpet)));

	/* A table with the right signature but a bad checksum is not believed. */
	munmap(a, sizeof(*a));
	a = acpi_image_new();
	rsdp = (u64)(uintptr_t)a->rsdp;
	a->hpet[20] ^= 0x55;
	CHECK_CASE("acpi.bad_table_ignored", acpi_find_table(rsdp, "HPET") == 0,
		   "corrupt HPET found");

	/* A bad RSDP checksum: nothing is read. */
	munmap(a, sizeof(*a));
	a = acpi_image_new();
	rsdp = (u64)(uintptr_t)a->rsdp;
	a->rsdp[9] ^= 1;
	CHECK_CASE("acpi.bad_rsdp_refused", acpi_find_table(rsdp, "HPET") == 0,
		   "found a table through a corrupt RSDP");
	CHECK_CASE("acpi.no_rsdp", acpi_find_table(0, "HPET") == 0, "RSDP 0 accepted");
	CHECK_CASE("acpi.hpet_block_id_short_table",
		   acpi_hpet_set_block_id((u64)(uintptr_t)a->apic, 0) == -1,
		   "a 44-byte table taken for an HPET table");

	/* An RSDT (ACPI 1.0) alone: its 32-bit entries are searched. */
	munmap(a, sizeof(*a));
	a = acpi_image_new();
	{
		put32(a->rsdt + 36, (u32)(uintptr_t)a->hpet);
		put32(a->rsdt + 40, (u32)(uintptr_t)a->apic);
		sdt_seal(a->rsdt, "RSDT", 44);
		put32(a->rsdp + 16, (u32)(uintptr_t)a->rsdt);
		a->rsdp[15] = 0; /* ACPI 1.0: no XSDT */
		a->rsdp[8] = 0;
		a->rsdp[8] = (u8)(0 - sum(a->rsdp, 20));
		CHECK_CASE("acpi.rsdt_found",
			   acpi_find_table((u64)(uintptr_t)a->rsdp, "HPET") ==
			       (u64)(uintptr_t)a->hpet,
			   "found 0x%llx",
			   (unsigned long long)acpi_find_table((u64)(uintptr_t)a->rsdp, "HPET"));
	}
	munmap(a, sizeof(*a));
}

/* ---- HPET on a plain memory register block ---- */

static _Alignas(8) u8 regs[HPET_MMIO_SIZE];

static void reg_set(u32 off, u64 v)
{
	memcpy(regs + off, &v, 8);
}

static u64 reg_get(u32 off)
{
	u64 v;

	memcpy(&v, regs + off, 8);
	return v;
}

/*
 * 3 comparators, 10 ns ticks; timer 2 can do FSB when `fsb`, is 64-bit when
 * `wide`; all are periodic-capable.
 */
static void hpet_fake(bool wide, bool fsb)
{
	memset(regs, 0, sizeof(regs));
	reg_set(HPET_GCAP_ID, (10000000ull << 32) | (0x8086ull << 16) | (2u << 8) | 1);
	for (unsigned int n = 0; n < 3; n++)
		reg_set(HPET_TN_CONF(n), HPET_TN_PER_INT_CAP);
	reg_set(HPET_TN_CONF(2), HPET_TN_PER_INT_CAP | (wide ? HPET_TN_SIZE_CAP : 0) |
				     (fsb ? HPET_TN_FSB_INT_DEL_CAP : 0));
}

static void test_hpet(void)
{
	struct hpet h;
	const char *why = "";
	u64 base = (u64)(uintptr_t)regs, at;
	u32 period = 1000000, due;
	int t;

	/* A 32-bit comparator: periodic. */
	hpet_fake(false, true);
	CHECK_CASE("hpet.probe",
		   hpet_probe(&h, base, &why) == 0 && h.nr_timers == 3 && h.period_fs == 10000000,
		   "%s", why);
	t = hpet_pick_fsb_timer(&h, &why);
	CHECK_CASE("hpet.pick_fsb_periodic", t == 2 && h.periodic, "picked %d (%s)", t, why);

	reg_set(HPET_MAIN_COUNTER, 0xffffff00u); /* the first tick is due after a 32-bit wrap */
	hpet_tick_start(&h, period, 0xfee00000u, 0x400u);
	CHECK_CASE("hpet.start_route",
		   reg_get(HPET_TN_FSB_ROUTE(2)) == ((0xfee00000ull << 32) | 0x400u),
		   "route 0x%llx", (unsigned long long)reg_get(HPET_TN_FSB_ROUTE(2)));
	CHECK_CASE("hpet.start_conf",
		   (reg_get(HPET_TN_CONF(2)) &
		    (HPET_TN_32MODE_CNF | HPET_TN_FSB_EN_CNF | HPET_TN_TYPE_PERIODIC |
		     HPET_TN_INT_ENB_CNF | HPET_TN_INT_TYPE_LEVEL | HPET_TN_VAL_SET_CNF)) ==
		       (HPET_TN_32MODE_CNF | HPET_TN_FSB_EN_CNF | HPET_TN_TYPE_PERIODIC |
			HPET_TN_INT_ENB_CNF),
		   "conf 0x%llx", (unsigned long long)reg_get(HPET_TN_CONF(2)));
	CHECK_CASE("hpet.start_counter_enabled", reg_get(HPET_GEN_CONF) & HPET_GEN_ENABLE_CNF,
		   "main counter left stopped");
	due = 0xffffff00u + period;
	CHECK_CASE("hpet.first_due_wraps", (u32)h.expected == due, "expected 0x%x",
		   (u32)h.expected);

	reg_set(HPET_MAIN_COUNTER, 0xffffff80u);
	CHECK_CASE("hpet.early_nmi_not_ours", !hpet_tick_claim(&h),
		   "claimed before the first tick");
	reg_set(HPET_MAIN_COUNTER, due);
	CHECK_CASE("hpet.tick_at_match",
		   hpet_tick_claim(&h) && h.ticks == 1 && (u32)h.expected == due + period,
		   "ticks %llu expected 0x%x", (unsigned long long)h.ticks, (u32)h.expected);
	reg_set(HPET_MAIN_COUNTER, due + 3);
	CHECK_CASE("hpet.echo_claimed", hpet_tick_claim(&h) && h.echoes == 1 && h.ticks == 1,
		   "echoes %llu", (unsigned long long)h.echoes);
	reg_set(HPET_MAIN_COUNTER, due + period / 2);
	CHECK_CASE("hpet.foreign_mid_period", !hpet_tick_claim(&h), "claimed a foreign NMI");
	reg_set(HPET_MAIN_COUNTER, due + 3 * period + period / 2);
	CHECK_CASE("hpet.missed_ticks_merge",
		   hpet_tick_claim(&h) && h.ticks == 2 && (u32)h.expected == due + 4 * period &&
		       (u32)h.last_due == due + 3 * period,
		   "ticks %llu expected 0x%x last 0x%x", (unsigned long long)h.ticks,
		   (u32)h.expected, (u32)h.last_due);

	/* A 64-bit comparator: one-shot, each claim re-arms it ahead of the counter. */
	hpet_fake(true, true);
	hpet_probe(&h, base, &why);
	t = hpet_pick_fsb_timer(&h, &why);
	CHECK_CASE("hpet.pick_one_shot_64", t == 2 && !h.periodic, "picked %d periodic %d", t,
		   h.periodic);
	at = 0xffffff00ull;
	reg_set(HPET_MAIN_COUNTER, at);
	hpet_tick_start(&h, period, 0xfee00000u, 0x400u);
	CHECK_CASE("hpet.one_shot_armed_64",
		   reg_get(HPET_TN_COMPARATOR(2)) == at + period &&
		       (reg_get(HPET_TN_CONF(2)) & (HPET_TN_32MODE_CNF | HPET_TN_TYPE_PERIODIC |
						    HPET_TN_INT_ENB_CNF | HPET_TN_FSB_EN_CNF)) ==
			   (HPET_TN_INT_ENB_CNF | HPET_TN_FSB_EN_CNF),
		   "comparator 0x%llx conf 0x%llx",
		   (unsigned long long)reg_get(HPET_TN_COMPARATOR(2)),
		   (unsigned long long)reg_get(HPET_TN_CONF(2)));
	reg_set(HPET_MAIN_COUNTER, at + period - 1);
	CHECK_CASE("hpet.one_shot_early_not_ours", !hpet_tick_claim(&h),
		   "claimed before the match");
	reg_set(HPET_MAIN_COUNTER, at + period + 77);
	CHECK_CASE("hpet.one_shot_rearmed",
		   hpet_tick_claim(&h) && reg_get(HPET_TN_COMPARATOR(2)) == at + 2 * period + 77 &&
		       (reg_get(HPET_TN_CONF(2)) & HPET_TN_INT_ENB_CNF),
		   "comparator 0x%llx", (unsigned long long)reg_get(HPET_TN_COMPARATOR(2)));
	reg_set(HPET_MAIN_COUNTER, at + period + 80);
	CHECK_CASE("hpet.one_shot_no_echo_rule", !hpet_tick_claim(&h),
		   "one-shot comparators fire once per arming: a second NMI is foreign");

	/* Refusals. */
	hpet_fake(true, false);
	hpet_probe(&h, base, &why);
	CHECK_CASE("hpet.no_fsb_refused", hpet_pick_fsb_timer(&h, &why) < 0 && strstr(why, "FSB"),
		   "why: %s", why);
	hpet_fake(true, true);
	reg_set(HPET_TN_CONF(0), HPET_TN_PER_INT_CAP | HPET_TN_INT_ENB_CNF);
	hpet_probe(&h, base, &why);
	CHECK_CASE("hpet.in_use_refused",
		   hpet_pick_fsb_timer(&h, &why) < 0 && strstr(why, "already"), "why: %s", why);
	hpet_fake(true, true);
	reg_set(HPET_GEN_CONF, HPET_GEN_LEG_RT_CNF);
	reg_set(HPET_TN_CONF(2), 0);
	reg_set(HPET_TN_CONF(1), HPET_TN_FSB_INT_DEL_CAP | HPET_TN_SIZE_CAP);
	hpet_probe(&h, base, &why);
	CHECK_CASE("hpet.legacy_route_skips_0_1", hpet_pick_fsb_timer(&h, &why) < 0,
		   "took timer 1 under legacy replacement routing");
	hpet_fake(true, true);
	reg_set(HPET_TN_CONF(2), HPET_TN_FSB_INT_DEL_CAP);
	hpet_probe(&h, base, &why);
	CHECK_CASE("hpet.neither_64bit_nor_periodic_refused", hpet_pick_fsb_timer(&h, &why) < 0,
		   "took a 32-bit one-shot-only comparator");
	memset(regs, 0xff, sizeof(regs));
	CHECK_CASE("hpet.all_ones_refused", hpet_probe(&h, base, &why) < 0,
		   "probed an absent HPET");
}

/*
 * The guest's view (hv/vhpet.c) of the fake HPET, comparator 2 the tick's:
 * plain memory keeps the last value written (no counting, no
 * write-1-to-clear), which is enough to see what reaches the hardware.
 */
static void test_vhpet(void)
{
	static struct vhpet vh;
	struct hpet h;
	const char *why = "";
	u64 base = (u64)(uintptr_t)regs, v;
	int t;

	hpet_fake(true, true);
	reg_set(HPET_GCAP_ID,
		reg_get(HPET_GCAP_ID) | HPET_GCAP_COUNT_SIZE_CAP | HPET_GCAP_LEG_RT_CAP);
	reg_set(HPET_TN_CONF(0), HPET_TN_PER_INT_CAP | HPET_TN_SIZE_CAP | (4ull << 32));
	reg_set(HPET_MAIN_COUNTER, 0x100000000ull);
	hpet_probe(&h, base, &why);
	t = hpet_pick_fsb_timer(&h, &why);
	CHECK_CASE("vhpet.init", t == 2 && vhpet_init(&vh, &h, &why) == 0 && vh.nr_guest == 2,
		   "picked %d: %s", t, why);
	CHECK_CASE("vhpet.init_counter_halted", !vh.enabled && vh.frozen == 0x100000000ull,
		   "enabled %d frozen 0x%llx", vh.enabled, (unsigned long long)vh.frozen);
	hpet_tick_start(&h, 1000000, 0xfee00000u, 0x400u);

	v = vhpet_read(&vh, HPET_GCAP_ID, 8);
	CHECK_CASE("vhpet.gcap_one_fewer",
		   ((v >> HPET_GCAP_NUM_TIM_SHIFT) & HPET_GCAP_NUM_TIM_MASK) == 1 &&
		       v >> 32 == 10000000u && (v & HPET_GCAP_LEG_RT_CAP),
		   "cap 0x%llx", (unsigned long long)v);
	CHECK_CASE("vhpet.guest_gcap_lo", vhpet_guest_gcap_lo(&vh) == (u32)v, "0x%x",
		   vhpet_guest_gcap_lo(&vh));
	CHECK_CASE("vhpet.taken_reads_absent",
		   vhpet_read(&vh, HPET_TN_CONF(2), 8) == 0 &&
		       vhpet_read(&vh, HPET_TN_COMPARATOR(2), 4) == 0 &&
		       vhpet_read(&vh, HPET_TN_FSB_ROUTE(2) + 4, 4) == 0,
		   "the tick's comparator shows");
	{
		u64 conf = reg_get(HPET_TN_CONF(2)), cmp = reg_get(HPET_TN_COMPARATOR(2)),
		    route = reg_get(HPET_TN_FSB_ROUTE(2));
		int r1 = vhpet_write(&vh, HPET_TN_CONF(2), 4, 0, &why);
		int r2 = vhpet_write(&vh, HPET_TN_COMPARATOR(2), 8, 5, &why);
		int r3 = vhpet_write(&vh, HPET_TN_FSB_ROUTE(2), 8, 0x12345678ull, &why);

		CHECK_CASE("vhpet.taken_write_refused",
			   r1 == 1 && r2 == 1 && r3 == 1 && vh.refused == 3 &&
			       reg_get(HPET_TN_CONF(2)) == conf &&
			       reg_get(HPET_TN_COMPARATOR(2)) == cmp &&
			       reg_get(HPET_TN_FSB_ROUTE(2)) == route && strstr(why, "comparator"),
			   "refused %d %d %d, conf 0x%llx", r1, r2, r3,
			   (unsigned long long)reg_get(HPET_TN_CONF(2)));
	}
	CHECK_CASE("vhpet.past_block_reads_0",
		   vhpet_read(&vh, 0x400, 8) == 0 && vhpet_read(&vh, 0xff8, 8) == 0,
		   "beyond the register block");

	/* The counter: halted in the guest's view, written, started. */
	reg_set(HPET_MAIN_COUNTER, 0x100000500ull);
	CHECK_CASE("vhpet.halted_counter_frozen",
		   (vhpet_read(&vh, HPET_GEN_CONF, 4) & HPET_GEN_ENABLE_CNF) == 0 &&
		       (reg_get(HPET_GEN_CONF) & HPET_GEN_ENABLE_CNF) &&
		       vhpet_read(&vh, HPET_MAIN_COUNTER, 8) == 0x100000000ull,
		   "guest counter 0x%llx",
		   (unsigned long long)vhpet_read(&vh, HPET_MAIN_COUNTER, 8));
	vhpet_write(&vh, HPET_MAIN_COUNTER, 4, 0, &why);
	vhpet_write(&vh, HPET_MAIN_COUNTER + 4, 4, 0, &why);
	vhpet_write(&vh, HPET_GEN_CONF, 4, HPET_GEN_ENABLE_CNF | HPET_GEN_LEG_RT_CNF, &why);
	CHECK_CASE("vhpet.started_from_written_value",
		   vhpet_read(&vh, HPET_MAIN_COUNTER, 8) == 0 &&
		       (vhpet_read(&vh, HPET_GEN_CONF, 4) & 3) == 3 &&
		       (reg_get(HPET_GEN_CONF) & 3) == 3,
		   "guest counter 0x%llx gen 0x%llx",
		   (unsigned long long)vhpet_read(&vh, HPET_MAIN_COUNTER, 8),
		   (unsigned long long)reg_get(HPET_GEN_CONF));
	reg_set(HPET_MAIN_COUNTER, 0x100000600ull);
	CHECK_CASE("vhpet.counter_runs_with_offset",
		   vhpet_read(&vh, HPET_MAIN_COUNTER, 4) == 0x100 &&
		       vhpet_read(&vh, HPET_MAIN_COUNTER + 4, 4) == 0,
		   "low 0x%llx", (unsigned long long)vhpet_read(&vh, HPET_MAIN_COUNTER, 4));
	vhpet_write(&vh, HPET_GEN_CONF, 4, 0, &why);
	CHECK_CASE("vhpet.guest_cannot_stop_counter_or_keep_legacy_from_itself",
		   (reg_get(HPET_GEN_CONF) & 3) == HPET_GEN_ENABLE_CNF, "gen 0x%llx",
		   (unsigned long long)reg_get(HPET_GEN_CONF));
	vhpet_write(&vh, HPET_GEN_CONF, 4, HPET_GEN_ENABLE_CNF, &why);

	/* Comparator 0 (64-bit, one-shot) in the guest's counter. */
	vhpet_write(&vh, HPET_TN_COMPARATOR(0), 4, 0x1100, &why);
	vhpet_write(&vh, HPET_TN_COMPARATOR(0) + 4, 4, 0, &why);
	CHECK_CASE("vhpet.comparator_translated",
		   reg_get(HPET_TN_COMPARATOR(0)) == 0x100001600ull &&
		       vhpet_read(&vh, HPET_TN_COMPARATOR(0), 8) == 0x1100,
		   "physical 0x%llx", (unsigned long long)reg_get(HPET_TN_COMPARATOR(0)));
	vhpet_write(&vh, HPET_TN_COMPARATOR(0), 8, 0x2200, &why);
	CHECK_CASE("vhpet.comparator_64bit_write", reg_get(HPET_TN_COMPARATOR(0)) == 0x100002700ull,
		   "physical 0x%llx", (unsigned long long)reg_get(HPET_TN_COMPARATOR(0)));
	/* Halt, rewrite the counter, start: the comparator stays where it was for the guest. */
	/* Read-modify-write, as drivers do (plain memory does not keep read-only bits). */
	vhpet_write(&vh, HPET_TN_CONF(0), 4,
		    vhpet_read(&vh, HPET_TN_CONF(0), 4) | HPET_TN_INT_ENB_CNF, &why);
	CHECK_CASE("vhpet.int_enb_passes", reg_get(HPET_TN_CONF(0)) & HPET_TN_INT_ENB_CNF,
		   "conf 0x%llx", (unsigned long long)reg_get(HPET_TN_CONF(0)));
	vhpet_write(&vh, HPET_GEN_CONF, 4, 0, &why);
	CHECK_CASE("vhpet.halt_holds_interrupts",
		   !(reg_get(HPET_TN_CONF(0)) & HPET_TN_INT_ENB_CNF) &&
		       (vhpet_read(&vh, HPET_TN_CONF(0), 4) & HPET_TN_INT_ENB_CNF),
		   "conf 0x%llx", (unsigned long long)reg_get(HPET_TN_CONF(0)));
	vhpet_write(&vh, HPET_MAIN_COUNTER, 8, 0x2000, &why);
	reg_set(HPET_MAIN_COUNTER, 0x200000000ull);
	vhpet_write(&vh, HPET_GEN_CONF, 4, HPET_GEN_ENABLE_CNF, &why);
	CHECK_CASE("vhpet.retarget_on_new_offset",
		   vhpet_read(&vh, HPET_MAIN_COUNTER, 8) == 0x2000 &&
		       reg_get(HPET_TN_COMPARATOR(0)) == 0x200000200ull &&
		       vhpet_read(&vh, HPET_TN_COMPARATOR(0), 8) == 0x2200 &&
		       (reg_get(HPET_TN_CONF(0)) & HPET_TN_INT_ENB_CNF),
		   "physical comparator 0x%llx conf 0x%llx counter 0x%llx cmp 0x%llx",
		   (unsigned long long)reg_get(HPET_TN_COMPARATOR(0)),
		   (unsigned long long)reg_get(HPET_TN_CONF(0)),
		   (unsigned long long)vhpet_read(&vh, HPET_MAIN_COUNTER, 8),
		   (unsigned long long)vhpet_read(&vh, HPET_TN_COMPARATOR(0), 8));
	CHECK_CASE("vhpet.taken_untouched_by_retarget",
		   reg_get(HPET_TN_COMPARATOR(2)) == 0x100000000ull + 1000000,
		   "tick comparator 0x%llx", (unsigned long long)reg_get(HPET_TN_COMPARATOR(2)));

	/* Status bits: the tick's is neither seen nor cleared. */
	reg_set(HPET_GINTR_STA, 0x5);
	v = vhpet_read(&vh, HPET_GINTR_STA, 8);
	vhpet_write(&vh, HPET_GINTR_STA, 4, 0xffffffffu, &why);
	CHECK_CASE("vhpet.status_mapped", v == 0x1 && reg_get(HPET_GINTR_STA) == 0x3,
		   "guest read 0x%llx, physical write 0x%llx", (unsigned long long)v,
		   (unsigned long long)reg_get(HPET_GINTR_STA));

	/* FSB routes: an MSI to a CPU, nothing else. */
	{
		int r1, r2, r3, r4;

		reg_set(HPET_TN_FSB_ROUTE(1), 0);
		r1 = vhpet_write(&vh, HPET_TN_FSB_ROUTE(1) + 4, 4, 0x00100000u, &why);
		r2 = vhpet_write(&vh, HPET_TN_FSB_ROUTE(1), 4, 5u << 8, &why);
		r3 = vhpet_write(&vh, HPET_TN_CONF(1), 4, HPET_TN_FSB_EN_CNF, &why);
		CHECK_CASE("vhpet.fsb_dma_refused",
			   r1 == 1 && r2 == 1 && r3 == 1 && reg_get(HPET_TN_FSB_ROUTE(1)) == 0 &&
			       !(reg_get(HPET_TN_CONF(1)) & HPET_TN_FSB_EN_CNF),
			   "refused %d %d %d route 0x%llx conf 0x%llx", r1, r2, r3,
			   (unsigned long long)reg_get(HPET_TN_FSB_ROUTE(1)),
			   (unsigned long long)reg_get(HPET_TN_CONF(1)));
		r1 = vhpet_write(&vh, HPET_TN_FSB_ROUTE(1), 8, (0xfee01000ull << 32) | 0x41, &why);
		r4 = vhpet_write(&vh, HPET_TN_CONF(1), 4, HPET_TN_FSB_EN_CNF, &why);
		CHECK_CASE("vhpet.fsb_msi_accepted",
			   r1 == 0 && r4 == 0 &&
			       reg_get(HPET_TN_FSB_ROUTE(1)) == ((0xfee01000ull << 32) | 0x41) &&
			       (reg_get(HPET_TN_CONF(1)) & HPET_TN_FSB_EN_CNF),
			   "refused %d %d", r1, r4);
	}

	/* A periodic comparator the firmware left, its increment unknown: not moved. */
	reg_set(HPET_TN_CONF(1), reg_get(HPET_TN_CONF(1)) | HPET_TN_TYPE_PERIODIC);
	reg_set(HPET_TN_COMPARATOR(1), 0x777);
	vhpet_write(&vh, HPET_GEN_CONF, 4, 0, &why);
	vhpet_write(&vh, HPET_MAIN_COUNTER, 8, 0x9000, &why);
	vhpet_write(&vh, HPET_GEN_CONF, 4, HPET_GEN_ENABLE_CNF, &why);
	CHECK_CASE("vhpet.unknown_period_left", reg_get(HPET_TN_COMPARATOR(1)) == 0x777,
		   "comparator 0x%llx", (unsigned long long)reg_get(HPET_TN_COMPARATOR(1)));

	h.timer = 1;
	CHECK_CASE("vhpet.refuses_comparator_1", vhpet_init(&vh, &h, &why) == -1,
		   "shared comparator 1");
}

/*
 * A hostile guest: random accesses of every size the emulation takes, at
 * every offset of the page, with random values. Whatever it writes, the
 * tick's comparator keeps its configuration, comparator and route, the
 * counter stays enabled, the tick's status bit is never written, and no
 * comparator of the guest's delivers through FSB to anything but the MSI
 * window with an accepted delivery mode.
 */
static void test_vhpet_hostile(void)
{
	static struct vhpet vh;
	struct hpet h;
	const char *why = "";
	u64 conf2, cmp2, route2;
	unsigned int i, g, bad = 0;

	hpet_fake(true, true);
	reg_set(HPET_GCAP_ID, reg_get(HPET_GCAP_ID) | HPET_GCAP_COUNT_SIZE_CAP);
	hpet_probe(&h, (u64)(uintptr_t)regs, &why);
	hpet_pick_fsb_timer(&h, &why);
	vhpet_init(&vh, &h, &why);
	hpet_tick_start(&h, 1000000, 0xfee00000u, 0x400u);
	conf2 = reg_get(HPET_TN_CONF(2));
	cmp2 = reg_get(HPET_TN_COMPARATOR(2));
	route2 = reg_get(HPET_TN_FSB_ROUTE(2));
	srand(7);
	for (i = 0; i < 200000 && !bad; i++) {
		unsigned int size = rand() % 2 ? 8 : 4;
		u32 off = (u32)(rand() % (0x1000 / size)) * size;
		u64 val = ((u64)rand() << 33) ^ ((u64)rand() << 11) ^ (u64)rand();

		/* Mostly the registers that matter, and the values that matter in them. */
		if (rand() % 2)
			off = (u32)(rand() % (HPET_MMIO_SIZE / size)) * size;
		if (rand() % 4 == 0)
			val = (u64)(rand() % 2 ? 0xfee00000u : 0x1000u) << 32 | (u64)(rand() % 8)
										    << 8;
		if (rand() % 3 == 0)
			(void)vhpet_read(&vh, off, size);
		else
			vhpet_write(&vh, off, size, val, &why);
		/* The hardware moves its counter, and sets status bits, between accesses. */
		reg_set(HPET_MAIN_COUNTER, reg_get(HPET_MAIN_COUNTER) + (u64)(rand() % 1000));
		if (reg_get(HPET_TN_CONF(2)) != conf2 || reg_get(HPET_TN_COMPARATOR(2)) != cmp2 ||
		    reg_get(HPET_TN_FSB_ROUTE(2)) != route2)
			bad = 1;
		if (!(reg_get(HPET_GEN_CONF) & HPET_GEN_ENABLE_CNF))
			bad = 2;
		if (reg_get(HPET_GINTR_STA) & BIT_ULL(2))
			bad = 3;
		for (g = 0; g < 2; g++) {
			u64 route = reg_get(HPET_TN_FSB_ROUTE(g));
			u32 dm = ((u32)route >> 8) & 7;

			if ((reg_get(HPET_TN_CONF(g)) & HPET_TN_FSB_EN_CNF) &&
			    (((route >> 32) & 0xfff00000u) != 0xfee00000u ||
			     (dm != 0 && dm != 1 && dm != 4)))
				bad = 4;
		}
	}
	CHECK_CASE("vhpet.hostile_guest_cannot_touch_the_tick", !bad, "after %u accesses: %s", i,
		   bad == 1   ? "the tick's comparator changed"
		   : bad == 2 ? "the counter was disabled"
		   : bad == 3 ? "the tick's status bit was written"
			      : "FSB delivery enabled to a foreign route");
	CHECK_CASE("vhpet.hostile_guest_refusals_counted", vh.refused > 0 && vh.accesses == i,
		   "refused %llu accesses %llu of %u", (unsigned long long)vh.refused,
		   (unsigned long long)vh.accesses, i);
}

/* ---- The port's poll intervals (hv/mgmt_poll.c) ---- */

static void test_poll_intervals(void)
{
	struct hv_mgmt_poll p;

	/* 2 characters of 10 bits: 20 bit times. */
	CHECK(hv_mgmt_poll_fast_ns(115200) == 173611, ": %llu",
	      (unsigned long long)hv_mgmt_poll_fast_ns(115200));
	CHECK(hv_mgmt_poll_fast_ns(57600) == 347222);
	CHECK(hv_mgmt_poll_fast_ns(9600) == 2083333);
	CHECK(hv_mgmt_poll_fast_ns(0) == 0, ": an unknown rate gives no interval");
	/* Bounds: never under 50 us (a fast line), never over the idle tick (a slow one). */
	CHECK(hv_mgmt_poll_fast_ns(460800) == 50000, ": 43403 ns raised to the bound");
	CHECK(hv_mgmt_poll_fast_ns(921600) == HV_MGMT_POLL_MIN_NS);
	CHECK(hv_mgmt_poll_fast_ns(3000000) == HV_MGMT_POLL_MIN_NS);
	CHECK(hv_mgmt_poll_fast_ns(2400) == 8333333);
	CHECK(hv_mgmt_poll_fast_ns(1200) == HV_MGMT_POLL_MAX_NS);
	CHECK(hv_mgmt_poll_fast_ns(300) == HV_MGMT_POLL_MAX_NS);
	CHECK(hv_mgmt_poll_fast_ns(1) == HV_MGMT_POLL_MAX_NS);
	CHECK(hv_mgmt_poll_fast_ns(0xffffffffu) == HV_MGMT_POLL_MIN_NS);
	test_report("mgmt_poll.fast_interval_is_two_characters_bounded");

	CHECK(hv_mgmt_poll_ns_to_ticks(173611, 2500000000ull) == 434027);
	CHECK(hv_mgmt_poll_ns_to_ticks(173611, 50000000ull) == 8680, ": Bochs at ips=50M");
	CHECK(hv_mgmt_poll_ns_to_ticks(HV_MGMT_POLL_MAX_NS, 1000000000000000ull) ==
		  10000000000000ull,
	      ": a 1 PHz counter over 10 ms stays in 64 bits");
	CHECK(hv_mgmt_poll_ns_to_ticks(1, 1000) == 1, ": never 0");
	/* QEMU's HPET: 10 ns a tick; a 14.318 MHz one: 69841279 fs. */
	CHECK(hv_mgmt_poll_ns_to_hpet(173611, 10000000) == 17361);
	CHECK(hv_mgmt_poll_ns_to_hpet(10000000, 10000000) == 1000000);
	CHECK(hv_mgmt_poll_ns_to_hpet(173611, 69841279) == 2485);
	CHECK(hv_mgmt_poll_ns_to_hpet(10000000, 69841279) == 143181);
	CHECK(hv_mgmt_poll_ns_to_hpet(10000000, 1) == 0xffffffffu, ": clamped to the comparator");
	CHECK(hv_mgmt_poll_ns_to_hpet(1, 100000000) == 1, ": never 0");
	CHECK(hv_mgmt_poll_ns_to_hpet(1000, 0) == 0xffffffffu, ": no period: the longest");
	test_report("mgmt_poll.conversions_to_tsc_and_hpet_ticks");

	hv_mgmt_poll_choose(&p, 115200, 2500000000ull);
	CHECK(p.baud == 115200 && p.fast_ns == 173611 && p.tsc_derived && p.fast_tsc == 434027 &&
	      p.idle_tsc == HV_MGMT_POLL_TSC_IDLE);
	hv_mgmt_poll_choose(&p, 115200, 0);
	CHECK(p.fast_ns == 173611 && !p.tsc_derived && p.fast_tsc == HV_MGMT_POLL_TSC_FAST,
	      ": no TSC rate: the fixed TSC interval");
	hv_mgmt_poll_choose(&p, 0, 2500000000ull);
	CHECK(p.fast_ns == 0 && !p.tsc_derived && p.fast_tsc == HV_MGMT_POLL_TSC_FAST,
	      ": no line rate: the fixed intervals");
	hv_mgmt_poll_choose(&p, 9600, 2500000000ull);
	CHECK(p.fast_tsc == HV_MGMT_POLL_TSC_IDLE, ": never slower than idle (%llu)",
	      (unsigned long long)p.fast_tsc);
	hv_mgmt_poll_choose(&p, 115200, 50000000ull);
	CHECK(p.tsc_derived && p.fast_tsc == 8680 && p.idle_tsc == HV_MGMT_POLL_TSC_IDLE);
	test_report("mgmt_poll.choice_and_fallbacks");

	{
		u32 linger = 0, n, fast_after = 0;

		CHECK(!hv_mgmt_poll_fast_next(&linger, false), ": idle from the start");
		CHECK(hv_mgmt_poll_fast_next(&linger, true) && linger == HV_MGMT_POLL_LINGER);
		for (n = 0; n < 10 * HV_MGMT_POLL_LINGER && hv_mgmt_poll_fast_next(&linger, false);
		     n++)
			fast_after++;
		CHECK(fast_after == HV_MGMT_POLL_LINGER, ": %u fast exits after the last want",
		      fast_after);
		CHECK(!hv_mgmt_poll_fast_next(&linger, false) && linger == 0, ": then idle");
		for (n = 0; n < 5; n++)
			hv_mgmt_poll_fast_next(&linger, false);
		CHECK(hv_mgmt_poll_fast_next(&linger, true) && linger == HV_MGMT_POLL_LINGER,
		      ": a new reply starts it again");
		hv_mgmt_poll_fast_next(&linger, false);
		CHECK(hv_mgmt_poll_fast_next(&linger, true) && linger == HV_MGMT_POLL_LINGER,
		      ": a want in the middle of a linger resets it");
		test_report("mgmt_poll.linger_after_the_last_reply");
	}
}

/*
 * A 16550's transmitter fed by polls (NS16550A: THRE sets when the FIFO's
 * last byte moves into the shift register, one character before the line
 * falls idle). Each poll that finds THRE writes a FIFO's worth. gap(i)
 * gives the time to the next poll, at most max_gap. Returns the line's
 * busy time in parts per 10,000 over `refills` refills.
 */
struct poll_pattern {
	u64 max_gap;
	u64 char_ns;
	u32 seed;
	int kind; /* 0 periodic, 1 random gaps in (0, max_gap], 2 the worst placement */
};

static u64 next_poll(struct poll_pattern *pp, u64 now, u64 thre_at)
{
	switch (pp->kind) {
	case 0:
		return now + pp->max_gap;
	case 1:
		pp->seed = pp->seed * 1103515245u + 12345u;
		return now + 1 + (pp->seed >> 8) % pp->max_gap;
	default:
		/* A poll just before THRE sets, then the longest wait. */
		if (now < thre_at && thre_at - 1 - now <= pp->max_gap && thre_at - 1 > now)
			return thre_at - 1;
		return now + pp->max_gap;
	}
}

static unsigned int line_busy_10k(struct poll_pattern pp, unsigned int refills)
{
	u64 t = 0, line_free = 0, thre_at = 0, first = 0, busy = 0;
	unsigned int n = 0;

	while (n < refills) {
		if (t >= thre_at) {
			u64 start = t > line_free ? t : line_free;

			if (!n)
				first = start;
			thre_at = start + (UART_FIFO_BYTES - 1) * pp.char_ns;
			line_free = start + UART_FIFO_BYTES * pp.char_ns;
			busy += UART_FIFO_BYTES * pp.char_ns;
			n++;
		}
		t = next_poll(&pp, t, thre_at);
	}
	return (unsigned int)(busy * 10000 / (line_free - first));
}

static void test_line_model(void)
{
	static const u32 bauds[] = {9600, 19200, 38400, 57600, 115200};
	unsigned int i, kind, worst = 10000, b;

	for (i = 0; i < ARRAY_SIZE(bauds); i++) {
		u64 c = (u64)UART_BITS_PER_CHAR * 1000000000ull / bauds[i];
		u64 p = hv_mgmt_poll_fast_ns(bauds[i]);
		/* hv/mgmt_poll.h: busy >= 16 C / (15 C + P). */
		unsigned int bound = (unsigned int)(16 * c * 10000 / (15 * c + p));

		for (kind = 0; kind < 3; kind++) {
			b = line_busy_10k((struct poll_pattern){p, c, 1, (int)kind}, 2000);
			CHECK(b + 1 >= bound, ": %u baud, pattern %u: %u/10000 under the bound %u",
			      bauds[i], kind, b, bound);
			if (b < worst)
				worst = b;
		}
		CHECK(bound >= 9400, ": %u baud: bound %u/10000", bauds[i], bound);
	}
	CHECK(worst >= 9400, ": the worst placement: %u/10000", worst);
	test_report("mgmt_poll.line_model_keeps_the_line_94_percent_busy");

	/* The old fixed 1 ms at 115200: the worst placement leaves the line idle. */
	b = line_busy_10k((struct poll_pattern){1000000, 86805, 1, 2}, 2000);
	CHECK(b < 9000, ": 1 ms polls, worst placement: %u/10000", b);
	b = line_busy_10k((struct poll_pattern){1000000, 86805, 1, 0}, 2000);
	CHECK(b < 9000, ": 1 ms polls, periodic: %u/10000", b);
	test_report("mgmt_poll.line_model_negative_control_1ms");
}

int main(void)
{
	test_acpi();
	test_hpet();
	test_vhpet();
	test_vhpet_hostile();
	test_poll_intervals();
	test_line_model();
	return test_failures ? 1 : 0;
}
