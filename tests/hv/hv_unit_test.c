/* SPDX-License-Identifier: MIT */
/*
 * Host unit tests (ASan+UBSan) for the hypervisor logic that needs no CPU:
 * memslots from a memory map (hidden pool in no slot, MMIO gaps, merging, a
 * map of 1,000 ranges registered with the real mmu/), the page allocator
 * over a pool, the bounded formatter, the decoder of the guest's stores to
 * the local APIC page.
 * Prints "ok NAME" / "not ok NAME reason" lines for tests/run.sh.
 */
#include "hv/boot.h"
#include "hv/insn.h"
#include "hv/log.h"
#include "hv/memslot.h"
#include "hv/page_alloc.h"
#include "mmu/tdp_mmu_parity.h"
#include "tests/model/model_platform.h"
#include "tests/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The hypervisor's panic, for the host (hv_log: tests/hv/host_log.c). */
void pt_assert_failed(const char *expr, const char *file, int line)
{
	printf("not ok assertion %s at %s:%d\n", expr, file, line);
	exit(1);
}

void hv_panic(const char *fmt, ...)
{
	printf("not ok hv_panic called: %s\n", fmt);
	exit(1);
}

static void add(struct hv_boot_info *bi, u64 base, u64 end, enum hv_mem_type t)
{
	struct hv_mem_range *r = &bi->ranges[bi->nr_ranges++];

	r->base = base;
	r->pages = (end - base) / PAGE_SIZE;
	r->type = t;
}

static void test_memslots(void)
{
	static struct hv_boot_info bi;
	static struct hv_slot slots[HV_MAX_SLOTS];
	static struct vm vm = {.slots = slots};
	const u64 gib = 1ull << 30;
	const struct hv_slot *s;
	unsigned int i;
	bool sorted = true, covered = true;
	u64 next = 0;

	/* Unsorted, with neighbours of one type, a hole, and the pool inside RAM. */
	add(&bi, 0x100000, 0x800000, HV_MEM_RAM);
	add(&bi, 0, 0xa0000, HV_MEM_RAM);
	add(&bi, 0x800000, 0x900000, HV_MEM_ACPI);
	add(&bi, 0x900000, 0x3d000000, HV_MEM_RAM);
	add(&bi, 0x3d800000, 0x3f000000, HV_MEM_RAM);
	add(&bi, 0x3f000000, 0x3f100000, HV_MEM_RUNTIME);
	add(&bi, 0x3f100000, 0x40000000, HV_MEM_RAM);
	add(&bi, 0xffc00000, 0x100000000, HV_MEM_RESERVED);
	add(&bi, 0x3d000000, 0x3d800000, HV_MEM_HIDDEN);
	vm.hidden[0] = (struct hv_hidden_range){0x3d000000, 0x3d800000};
	vm.nr_hidden = 1;

	CHECK_CASE("memslots.build", hv_memslots_build(&vm, &bi, 1ull << 40) == 0, "(failed)");
	for (i = 0; i < vm.nr_slots; i++) {
		s = &vm.slots[i];
		if (gfn_to_gpa(s->base_gfn) < next)
			sorted = false;
		if (gfn_to_gpa(s->base_gfn) != next &&
		    !(next == 0x3d000000 && gfn_to_gpa(s->base_gfn) == 0x3d800000))
			covered = false;
		next = gfn_to_gpa(s->base_gfn + s->npages);
		if (i && vm.slots[i - 1].type == s->type &&
		    vm.slots[i - 1].base_gfn + vm.slots[i - 1].npages == s->base_gfn)
			sorted = false; /* unmerged neighbours */
	}
	CHECK_CASE("memslots.sorted_merged", sorted, "(slots overlap or neighbours not merged)");
	CHECK_CASE("memslots.cover_all_but_hidden", covered && next == 1ull << 40,
		   "(gap other than the pool, or end 0x%llx)", (unsigned long long)next);
	for (i = 0; i < vm.nr_slots; i++) {
		s = &vm.slots[i];
		if (gfn_to_gpa(s->base_gfn) < 0x3d800000 &&
		    gfn_to_gpa(s->base_gfn + s->npages) > 0x3d000000)
			break;
	}
	CHECK_CASE("memslots.hidden_in_no_slot", i == vm.nr_slots, "(slot %u overlaps the pool)",
		   i);
	CHECK_CASE("memslots.hidden_lookup",
		   !hv_gpa_to_slot(&vm, 0x3d000000) && !hv_gpa_to_slot(&vm, 0x3d7ff000) &&
		       hv_gpa_is_hidden(&vm, 0x3d400123) && !hv_gpa_is_hidden(&vm, 0x3d800000),
		   "(pool found in a slot, or hidden test wrong)");
	s = hv_gpa_to_slot(&vm, 0xa0000);
	CHECK_CASE("memslots.legacy_hole_is_mmio", s && s->type == HV_MEM_MMIO, "(0xa0000)");
	s = hv_gpa_to_slot(&vm, 0x850000);
	CHECK_CASE("memslots.acpi_separate",
		   s && s->type == HV_MEM_ACPI && gfn_to_gpa(s->base_gfn) == 0x800000,
		   "(0x850000)");
	s = hv_gpa_to_slot(&vm, 0x3f000000);
	CHECK_CASE("memslots.runtime_separate", s && s->type == HV_MEM_RUNTIME, "(0x3f000000)");
	s = hv_gpa_to_slot(&vm, 0x100000);
	CHECK_CASE("memslots.ram_merged",
		   s && s->type == HV_MEM_RAM && gfn_to_gpa(s->base_gfn) == 0x100000 &&
		       gfn_to_gpa(s->base_gfn + s->npages) == 0x800000,
		   "(0x100000-0x800000 expected)");
	s = hv_gpa_to_slot(&vm, 5 * gib);
	CHECK_CASE("memslots.high_mmio", s && s->type == HV_MEM_MMIO, "(5 GiB)");
	CHECK_CASE("memslots.ram_pages",
		   vm.ram_pages ==
		       (0xa0000 + 0x700000 + (0x3d000000 - 0x900000) + 0x1800000 + 0xf00000) /
			   PAGE_SIZE,
		   "(%llu)", (unsigned long long)vm.ram_pages);
	CHECK_CASE("memslots.beyond_limit", hv_gpa_to_slot(&vm, 1ull << 40) == NULL, "(found)");

	/* A map longer than boot/ takes is refused, not overrun. */
	memset(&bi, 0, sizeof(bi));
	bi.nr_ranges = HV_MAX_MEM_RANGES + 1;
	CHECK_CASE("memslots.longer_map_than_taken_is_an_error",
		   hv_memslots_build(&vm, &bi, 1ull << 40) == -1, "(accepted %u slots)",
		   vm.nr_slots);
}

/*
 * A big server's memory map: 1,000 ranges, none of which merges (types
 * alternate, every other one followed by a hole: 1,500 slots), a hidden page
 * at the start of one of them, and the largest map boot/ takes with a hole after every range.
 * Every layout must build, and every slot must go into mmu/ (as vm_create
 * does): a long map never stops the hypervisor.
 */
static void test_big_map(void)
{
	static struct hv_boot_info bi;
	static struct hv_slot slots[HV_MAX_SLOTS];
	static struct vm vm = {.slots = slots};
	static const enum hv_mem_type kinds[] = {HV_MEM_RAM, HV_MEM_RESERVED, HV_MEM_ACPI,
						  HV_MEM_RUNTIME};
	struct tdp_map_attrs attrs = {.writable = true, .executable = true,
				      .max_level = TDP_LEVEL_1G};
	struct model_platform plat;
	struct mmu_platform ops;
	struct spte_format fmt;
	struct tdp_mmu *mmu = aligned_alloc(64, (sizeof(*mmu) + 63) & ~(size_t)63);
	const struct hv_slot *s;
	u64 base = 0, pages = 0;
	unsigned int i, registered = 0, mmio = 0;
	bool ok = true;

	memset(&bi, 0, sizeof(bi));
	for (i = 0; i < 1000; i++) {
		u64 n = 1 + i % 37;

		add(&bi, base, base + n * PAGE_SIZE, kinds[i % 4]);
		pages += kinds[i % 4] == HV_MEM_RAM ? n : 0;
		base += (n + (i % 2)) * PAGE_SIZE; /* a hole after every other range */
	}
	vm.nr_hidden = 1;
	vm.hidden[0] = (struct hv_hidden_range){bi.ranges[500].base,
						bi.ranges[500].base + PAGE_SIZE};
	CHECK_CASE("memslots.map_of_1000_ranges_builds",
		   hv_memslots_build(&vm, &bi, 1ull << 40) == 0, "(refused)");
	for (i = 0; i < vm.nr_slots; i++) {
		mmio += vm.slots[i].type == HV_MEM_MMIO;
		if (i && vm.slots[i].base_gfn != vm.slots[i - 1].base_gfn + vm.slots[i - 1].npages &&
		    !hv_gpa_is_hidden(&vm, gfn_to_gpa(vm.slots[i - 1].base_gfn +
						       vm.slots[i - 1].npages)))
			ok = false;
	}
	s = hv_gpa_to_slot(&vm, bi.ranges[777].base);
	CHECK_CASE("memslots.map_of_1000_ranges_layout",
		   ok && vm.nr_slots == 1000 + 500 && mmio == 500 && s &&
		       s->type == kinds[777 % 4] &&
		       vm.ram_pages == pages - (kinds[500 % 4] == HV_MEM_RAM),
		   "(%u slots, %u mmio, contiguous %d)", vm.nr_slots, mmio, ok);

	model_platform_init(&plat, NULL);
	ops = model_platform_ops(&plat);
	spte_format_init_npt(&fmt, true);
	if (!mmu || tdp_mmu_init(mmu, &fmt, &ops)) {
		CHECK_CASE("memslots.map_of_1000_ranges_in_mmu", false, "(no mmu)");
		return;
	}
	for (i = 0; i < vm.nr_slots; i++) {
		attrs.memtype = vm.slots[i].type == HV_MEM_MMIO ? TDP_MEMTYPE_MMIO : TDP_MEMTYPE_RAM;
		registered += tdp_mmu_set_memslot(mmu, 0, vm.slots[i].base_gfn, vm.slots[i].npages,
						  vm.slots[i].base_gfn, &attrs, 0) >= 0;
	}
	/* And a stand-in page in the hidden one, as vm_create maps the HPET's. */
	attrs.writable = false;
	registered += tdp_mmu_set_memslot(mmu, 0, gpa_to_gfn(vm.hidden[0].start), 1,
					  gpa_to_gfn(vm.hidden[0].start), &attrs,
					  TDP_SLOT_READONLY) >= 0;
	CHECK_CASE("memslots.map_of_1000_ranges_in_mmu", registered == vm.nr_slots + 1,
		   "(%u of %u slots taken)", registered, vm.nr_slots + 1);
	tdp_mmu_destroy(mmu);
	free(mmu);
	model_platform_fini(&plat);

	/* The worst map boot/ takes: HV_MAX_MEM_RANGES ranges, a hole after each, hidden splits. */
	memset(&bi, 0, sizeof(bi));
	for (i = 0; i < HV_MAX_MEM_RANGES; i++)
		add(&bi, (u64)(4 * i + 1) * PAGE_SIZE, (u64)(4 * i + 3) * PAGE_SIZE, HV_MEM_RAM);
	vm.nr_hidden = HV_MAX_HIDDEN;
	for (i = 0; i < HV_MAX_HIDDEN; i++)
		vm.hidden[i] = (struct hv_hidden_range){(u64)(4 * i * 100 + 2) * PAGE_SIZE,
							(u64)(4 * i * 100 + 2) * PAGE_SIZE + 1};
	CHECK_CASE("memslots.largest_map_taken_fits",
		   hv_memslots_build(&vm, &bi, 1ull << 40) == 0 && vm.nr_slots <= HV_MAX_SLOTS,
		   "(%u slots)", vm.nr_slots);
}

static void test_page_alloc(void)
{
	const u64 n = 8;
	u8 *pool = aligned_alloc(PAGE_SIZE, n * PAGE_SIZE);
	void *p[8], *q;
	u64 i;
	bool zero = true, distinct = true;

	memset(pool, 0xa5, n * PAGE_SIZE);
	hv_page_alloc_init(hv_pa(pool), hv_pa(pool) + n * PAGE_SIZE);
	for (i = 0; i < n; i++)
		p[i] = hv_page_alloc();
	for (i = 0; i < n; i++) {
		if (!p[i] || ((u8 *)p[i])[0] || ((u8 *)p[i])[PAGE_SIZE - 1])
			zero = false;
		if (i && p[i] == p[i - 1])
			distinct = false;
	}
	CHECK_CASE("page_alloc.zeroed_distinct", zero && distinct,
		   "(pages not zeroed or repeated)");
	CHECK_CASE("page_alloc.exhausted_returns_null", hv_page_alloc() == NULL, "(got a page)");
	memset(p[3], 0x5a, PAGE_SIZE);
	hv_page_free(p[3]);
	q = hv_page_alloc();
	CHECK_CASE("page_alloc.free_then_reuse_zeroed", q == p[3] && ((u8 *)q)[100] == 0,
		   "(q=%p p3=%p)", q, p[3]);
	CHECK_CASE("page_alloc.contig_too_big", hv_pages_alloc_contig(1) == NULL, "(got pages)");
	CHECK_CASE("page_alloc.accounting", hv_pages_in_use() == n && hv_pages_free() == 0,
		   "(in use %llu free %llu)", (unsigned long long)hv_pages_in_use(),
		   (unsigned long long)hv_pages_free());
	free(pool);
}

static void test_format(void)
{
	char b[64];
	int n;

	hv_snprintf(b, sizeof(b), "%s=%d %u 0x%lx %08x %c%%", "a", -42, 7u, (u64)0xdeadbeefcafe,
		    0xbeefu, 'z');
	CHECK_CASE("format.basic", !strcmp(b, "a=-42 7 0xdeadbeefcafe 0000beef z%"), "(%s)", b);
	n = hv_snprintf(b, 8, "%s", "0123456789");
	CHECK_CASE("format.truncates", n == 10 && !strcmp(b, "0123456"), "(n=%d b=%s)", n, b);
	const char *volatile null_str = NULL;

	hv_snprintf(b, sizeof(b), "%5s|%s", "ab", null_str);
	CHECK_CASE("format.width_and_null", !strcmp(b, "   ab|(null)"), "(%s)", b);
}

struct insn_case {
	const char *name;
	enum insn_mode mode;
	u8 bytes[15];
	unsigned int n;
	int rc;
	u8 len, size, reg;
	bool has_imm;
	u64 imm;
};

/*
 * Encodings as GCC and clang emit them for APIC register accesses (Linux's
 * native_apic_mem_write, OVMF's MmioWrite32), in every code size, and the
 * bytes that must be refused: loads, register destinations, C7 /1, REX
 * outside 64-bit mode, and instructions cut short.
 */
static const struct insn_case insn_cases[] = {
    {"insn.mov_abs_sib_eax", INSN_MODE_64, {0x89, 0x04, 0x25, 0x00, 0x03, 0xe0, 0xfe}, 7, 0, 7, 4,
     0, false, 0},
    {"insn.mov_rax_edx", INSN_MODE_64, {0x89, 0x10}, 2, 0, 2, 4, 2, false, 0},
    {"insn.mov_rex_r_disp8", INSN_MODE_64, {0x44, 0x89, 0x78, 0x10}, 4, 0, 4, 4, 15, false, 0},
    {"insn.mov_rsp_sib_disp8", INSN_MODE_64, {0x89, 0x44, 0x24, 0x08}, 4, 0, 4, 4, 0, false, 0},
    {"insn.mov_rip_imm32",
     INSN_MODE_64,
     {0xc7, 0x05, 0x10, 0x00, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12},
     10,
     0,
     10,
     4,
     0,
     true,
     0x12345678},
    {"insn.mov_rex_w_imm_sign",
     INSN_MODE_64,
     {0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff},
     7,
     0,
     7,
     8,
     0,
     true,
     0xffffffffffffffffull},
    {"insn.mov_rex_w_reg", INSN_MODE_64, {0x48, 0x89, 0x08}, 3, 0, 3, 8, 1, false, 0},
    {"insn.mov_disp32_ebx_32bit", INSN_MODE_32, {0x89, 0x1d, 0x00, 0x03, 0xe0, 0xfe}, 6, 0, 6, 4,
     3, false, 0},
    {"insn.mov_addr16_prefix_32bit", INSN_MODE_32, {0x67, 0x89, 0x1e, 0x00, 0x03}, 5, 0, 5, 4, 3,
     false, 0},
    {"insn.mov_opsize_prefix_16bit", INSN_MODE_16, {0x66, 0x89, 0x1e, 0x00, 0x03}, 5, 0, 5, 4, 3,
     false, 0},
    {"insn.mov_imm16_16bit", INSN_MODE_16, {0xc7, 0x06, 0x00, 0x03, 0x34, 0x12}, 6, 0, 6, 2, 0,
     true, 0x1234},
    {"insn.refuse_load", INSN_MODE_64, {0x8b, 0x00}, 2, -1, 0, 0, 0, false, 0},
    {"insn.refuse_register_destination", INSN_MODE_64, {0x89, 0xc0}, 2, -1, 0, 0, 0, false, 0},
    {"insn.refuse_c7_not_slash0", INSN_MODE_64, {0xc7, 0x48, 0x04, 0, 0, 0, 0}, 7, -1, 0, 0, 0,
     false, 0},
    {"insn.refuse_rex_in_32bit", INSN_MODE_32, {0x48, 0x89, 0x08}, 3, -1, 0, 0, 0, false, 0},
    {"insn.refuse_cut_sib", INSN_MODE_64, {0x89, 0x04}, 2, -1, 0, 0, 0, false, 0},
    {"insn.refuse_cut_disp32", INSN_MODE_64, {0x89, 0x80, 0x00, 0x00}, 4, -1, 0, 0, 0, false, 0},
    {"insn.refuse_cut_imm", INSN_MODE_64, {0xc7, 0x00, 0x01, 0x02}, 4, -1, 0, 0, 0, false, 0},
    {"insn.refuse_prefixes_only", INSN_MODE_64, {0x66, 0x66, 0x66}, 3, -1, 0, 0, 0, false, 0},
};

/*
 * Loads (MOV reg, r/m) as Linux's readl/readq and a UEFI program's volatile
 * reads of the HPET compile: insn_decode_mov takes them, insn_decode_store
 * still refuses each (the APIC page's reads never exit).
 */
static void test_insn_loads(void)
{
	static const struct {
		const char *name;
		enum insn_mode mode;
		u8 bytes[8];
		unsigned int n, len, size, reg;
	} loads[] = {
	    {"insn.load_readl", INSN_MODE_64, {0x8b, 0x00}, 2, 2, 4, 0},
	    {"insn.load_disp8_rex_r", INSN_MODE_64, {0x44, 0x8b, 0x47, 0x20}, 4, 4, 4, 8},
	    {"insn.load_readq",
	     INSN_MODE_64,
	     {0x48, 0x8b, 0x87, 0xf0, 0x00, 0x00, 0x00},
	     7,
	     7,
	     8,
	     0},
	    {"insn.load_32bit_abs", INSN_MODE_32, {0x8b, 0x0d, 0xf0, 0x00, 0xd0, 0xfe}, 6, 6, 4, 1},
	    {"insn.load_16bit_opsize", INSN_MODE_16, {0x66, 0x8b, 0x07}, 3, 3, 4, 0},
	};
	unsigned int i;

	for (i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
		struct insn_store st = {0};
		int rc = insn_decode_mov(loads[i].bytes, loads[i].n, loads[i].mode, &st);

		CHECK_CASE(loads[i].name,
			   rc == 0 && st.load && !st.has_imm && st.len == loads[i].len &&
			       st.size == loads[i].size && st.reg == loads[i].reg &&
			       insn_decode_store(loads[i].bytes, loads[i].n, loads[i].mode, &st) == -1,
			   "rc %d load %d len %u size %u reg %u (or taken as a store)", rc, st.load,
			   st.len, st.size, st.reg);
	}
	{
		struct insn_store st = {0};
		const u8 store[] = {0x89, 0x10};

		CHECK_CASE("insn.mov_decoder_store",
			   insn_decode_mov(store, sizeof(store), INSN_MODE_64, &st) == 0 && !st.load,
			   "store decoded as load %d", st.load);
	}
	CHECK_CASE("insn.load_result_32_zero_extends",
		   insn_load_result(0xdeadbeef00000000ull, 0x1234, 4) == 0x1234, "kept the high half");
	CHECK_CASE("insn.load_result_16_keeps_high",
		   insn_load_result(0xdeadbeefcafe0000ull, 0x1234, 2) == 0xdeadbeefcafe1234ull,
		   "16-bit load changed bits 63:16");
	CHECK_CASE("insn.load_result_64",
		   insn_load_result(1, 0x8000000000000000ull, 8) == 0x8000000000000000ull,
		   "64-bit load");
}

static void test_insn_decode(void)
{
	unsigned int i;

	for (i = 0; i < sizeof(insn_cases) / sizeof(insn_cases[0]); i++) {
		const struct insn_case *c = &insn_cases[i];
		struct insn_store st = {0};
		int rc = insn_decode_store(c->bytes, c->n, c->mode, &st);

		if (c->rc)
			CHECK_CASE(c->name, rc == c->rc, "rc %d, want %d", rc, c->rc);
		else
			CHECK_CASE(c->name,
				   rc == 0 && st.len == c->len && st.size == c->size &&
				       st.has_imm == c->has_imm &&
				       (c->has_imm ? st.imm == c->imm : st.reg == c->reg),
				   "rc %d len %u size %u imm %d/%llx reg %u", rc, st.len, st.size,
				   st.has_imm, (unsigned long long)st.imm, st.reg);
	}
	/* Never reads past n, whatever the bytes (ASan checks the reads). */
	for (i = 0; i < 100000; i++) {
		struct insn_store st;
		unsigned int n = (unsigned int)(rand() % 16), j;
		u8 *b = malloc(n ? n : 1);

		for (j = 0; j < n; j++)
			b[j] = (u8)rand();
		if (insn_decode_store(b, n, (enum insn_mode)(rand() % 3), &st) == 0 && st.len > n)
			break;
		free(b);
	}
	CHECK_CASE("insn.random_bytes_stay_in_bounds", i == 100000,
		   "a decode claimed more bytes than given");
	test_insn_loads();
}

int main(void)
{
	test_memslots();
	test_big_map();
	test_page_alloc();
	test_format();
	test_insn_decode();
	return test_failures ? 1 : 0;
}
