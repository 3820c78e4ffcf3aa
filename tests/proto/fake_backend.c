/* SPDX-License-Identifier: MIT */
#include "fake_backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* mmu/'s and the session's PT_ASSERT: a broken invariant ends the test loudly. */
void pt_assert_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "assertion failed: %s at %s:%d\n", expr, file, line);
	abort();
}

static struct fake_slot *slot_by_id(struct fake_vm *vm, u32 id)
{
	return id < vm->nr_slots ? &vm->slots[id] : NULL;
}

static void add_slot(struct fake_vm *vm, gpa_t gpa, u64 size, u8 type, u8 *mem)
{
	u32 id = vm->nr_slots++;
	struct fake_slot *s = &vm->slots[id];
	struct hv_slot *hs = &vm->layout.slots[id];
	struct tdp_map_attrs attrs = {
	    .writable = true,
	    .executable = true,
	    .memtype = type == PROTO_SLOT_MMIO ? TDP_MEMTYPE_MMIO : TDP_MEMTYPE_RAM,
	    .max_level = TDP_LEVEL_1G,
	};
	bool flush = false;
	int rc;

	s->s.id = id;
	s->s.gpa = gpa;
	s->s.size = size;
	s->s.type = type;
	s->npages = size >> PAGE_SHIFT;
	s->mem = type == PROTO_SLOT_MMIO ? NULL : mem ? mem : calloc(1, size);
	if (type != PROTO_SLOT_MMIO && !s->mem)
		abort();
	*hs = (struct hv_slot){
	    .base_gfn = gpa_to_gfn(gpa),
	    .npages = s->npages,
	    .type = type == PROTO_SLOT_MMIO ? HV_MEM_MMIO : HV_MEM_RAM,
	};
	/* Identity mapped, mapped eagerly: a start splits, a stop collapses. */
	rc = tdp_mmu_set_memslot(vm->mmu, 0, hs->base_gfn, hs->npages, hs->base_gfn, &attrs, 0);
	if (rc < 0 || tdp_mmu_map_range(vm->mmu, 0, hs->base_gfn, hs->npages, &flush))
		abort();
	hs->mmu_id = rc;
	vm->layout.nr_slots = vm->nr_slots;
	if (type == PROTO_SLOT_RAM)
		vm->layout.ram_pages += s->npages;
}

/* ---- the session's hooks: the vCPUs a CPU would have ---- */

static void *fk_alloc(void *ctx, u64 bytes)
{
	struct fake_vm *vm = ctx;

	if (vm->alloc_fail_after == 0)
		return NULL;
	if (vm->alloc_fail_after > 0)
		vm->alloc_fail_after--;
	return calloc(1, bytes);
}

static void fk_free(void *ctx, void *p, u64 bytes)
{
	(void)ctx;
	(void)bytes;
	free(p);
}

static bool fk_pml_supported(void *ctx, const char **why)
{
	struct fake_vm *vm = ctx;

	*why = "the fake CPU has no PML";
	return vm->pml;
}

static int fk_set_pml(void *ctx, bool on)
{
	struct fake_vm *vm = ctx;

	vm->pml_on += on ? 1 : -1u;
	return 0;
}

/* ---- the copy-on-write session's hooks ---- */

static void *fk_alloc_page(void *ctx)
{
	struct fake_vm *vm = ctx;

	if (!vm->cow_pool_pages)
		return NULL;
	vm->cow_pool_pages--;
	return calloc(1, PAGE_SIZE);
}

static void fk_free_page(void *ctx, void *page)
{
	struct fake_vm *vm = ctx;

	vm->cow_pool_pages++;
	free(page);
}

static u64 fk_pages_free(void *ctx)
{
	return ((struct fake_vm *)ctx)->cow_pool_pages;
}

static const void *fk_guest_page(void *ctx, gpa_t gpa)
{
	struct fake_vm *vm = ctx;

	for (u32 i = 0; i < vm->nr_slots; i++) {
		struct fake_slot *s = &vm->slots[i];

		if (s->mem && gpa >= s->s.gpa && gpa - s->s.gpa < s->s.size)
			return s->mem + (gpa - s->s.gpa);
	}
	abort(); /* the session asked for a page of no memory slot */
}

static void fk_cow_log(void *ctx, const char *msg, u64 a, u64 b)
{
	char line[256];

	snprintf(line, sizeof(line), "%s %llu 0x%llx", msg, (unsigned long long)a,
		 (unsigned long long)b);
	fake_vm_log(ctx, line);
}

/*
 * Builds the VM; the host memory it needs (the mmu's struct, the RAM slots'
 * buffers, all zero) comes from the caller when reused (fake_vm_reset), else
 * from calloc.
 */
static void fake_vm_setup(struct fake_vm *vm, u32 ram0_mib, struct tdp_mmu *mmu, u8 *ram[2])
{
	struct spte_format fmt;
	struct mmu_platform plat;
	const struct ds_hooks hooks = {
	    .ctx = vm,
	    .alloc = fk_alloc,
	    .free = fk_free,
	    .pml_supported = fk_pml_supported,
	    .set_pml = fk_set_pml,
	};

	memset(vm, 0, sizeof(*vm));
	vm->ram0_mib = ram0_mib;
	vm->alloc_fail_after = -1;
	model_platform_init(&vm->plat, NULL);
	plat = model_platform_ops(&vm->plat);
	spte_format_init_ept(&fmt, true, true);
	vm->mmu = mmu ? mmu : aligned_alloc(64, (sizeof(*vm->mmu) + 63) & ~(size_t)63);
	if (!vm->mmu || tdp_mmu_init(vm->mmu, &fmt, &plat))
		abort();
	vm->layout.mmu = vm->mmu;
	vm->layout.slots = vm->layout_slots;
	add_slot(vm, 0, (u64)ram0_mib << 20, PROTO_SLOT_RAM, ram[0]);
	add_slot(vm, 0x100000000ull, 4ull << 20, PROTO_SLOT_RAM, ram[1]);
	/* Below 4 GiB where RAM leaves room (as on a PC), else after slot 1. */
	add_slot(vm, ((u64)ram0_mib << 20) <= 0xfe000000ull ? 0xfe000000ull : 0x100400000ull,
		 64ull << 10, PROTO_SLOT_MMIO, NULL);
	const struct cow_hooks cow_hooks = {
	    .ctx = vm,
	    .alloc = fk_alloc,
	    .alloc_page = fk_alloc_page,
	    .free_page = fk_free_page,
	    .pages_free = fk_pages_free,
	    .guest_page = fk_guest_page,
	    .log = fk_cow_log,
	};

	vm->root = tdp_mmu_get_root(vm->mmu, 0);
	if (!vm->root || ds_init(&vm->ds, &vm->layout, &hooks))
		abort();
	vm->cow_pool_pages = 4096 + COW_POOL_FLOOR_PAGES;
	if (cow_init(&vm->cow, &vm->layout, &cow_hooks))
		abort();
	fake_vm_log(vm, "pagetrail: fake hypervisor up");
}

void fake_vm_init(struct fake_vm *vm, u32 ram0_mib)
{
	u8 *ram[2] = {NULL, NULL};

	fake_vm_setup(vm, ram0_mib, NULL, ram);
}

/* Everything but the host memory fake_vm_setup may be handed back. */
static void fake_vm_teardown(struct fake_vm *vm)
{
	u64 unsent;

	cow_end(&vm->cow, &unsent);
	/* cow_init's memory and the kept per-slot state (the pool's, for good). */
	for (u32 i = 0; i < vm->cow.nr_slots; i++) {
		free(vm->cow.slots[i].track);
		free(vm->cow.slots[i].copy_of);
	}
	free(vm->cow.slots);
	free(vm->cow.pages);
	free(vm->cow.free_idx);
	ds_destroy(&vm->ds);
	tdp_mmu_put_root(vm->mmu, vm->root);
	if (tdp_mmu_destroy(vm->mmu))
		abort();
	model_platform_fini(&vm->plat);
}

void fake_vm_free(struct fake_vm *vm)
{
	fake_vm_teardown(vm);
	free(vm->mmu);
	for (u32 i = 0; i < vm->nr_slots; i++)
		free(vm->slots[i].mem);
	memset(vm, 0, sizeof(*vm));
}

/*
 * Zeroes host memory without writing all of it: the whole pages inside go
 * back to the kernel (the next touch maps a zero page), the edges are cleared.
 * A reset then costs what the last input touched, not the slot's size.
 */
static void zero_host_memory(u8 *p, u64 n)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t lo = ((uintptr_t)p + pg - 1) & ~(pg - 1);
	uintptr_t hi = ((uintptr_t)p + n) & ~(pg - 1);

	if (hi <= lo || madvise((void *)lo, hi - lo, MADV_DONTNEED)) {
		memset(p, 0, n);
		return;
	}
	memset(p, 0, lo - (uintptr_t)p);
	memset((void *)hi, 0, (uintptr_t)p + n - hi);
}

void fake_vm_reset(struct fake_vm *vm)
{
	struct tdp_mmu *mmu = vm->mmu;
	u8 *ram[2] = {vm->slots[0].mem, vm->slots[1].mem};

	fake_vm_teardown(vm);
	/* tdp_mmu_init clears the mmu; the guest's RAM is zeroed here, as calloc gives it. */
	zero_host_memory(ram[0], vm->slots[0].s.size);
	zero_host_memory(ram[1], vm->slots[1].s.size);
	fake_vm_setup(vm, vm->ram0_mib, mmu, ram);
}

void fake_vm_touch(struct fake_vm *vm, u32 slot_id, u64 page)
{
	struct fake_slot *s = slot_by_id(vm, slot_id);

	if (s && page < s->npages)
		tdp_mmu_mark_page_dirty(vm->mmu, 0, gpa_to_gfn(s->s.gpa) + page);
}

/* The write fault of one page, as hv/vm.c takes it: true when the page may be written. */
static bool fake_write_fault(struct fake_vm *vm, gpa_t gpa)
{
	for (;;) {
		enum tdp_fault_result r =
		    tdp_mmu_page_fault(vm->mmu, vm->root, gpa, TDP_FAULT_WRITE | TDP_FAULT_PRESENT);

		if (r == TDP_FAULT_FIXED || r == TDP_FAULT_SPURIOUS)
			return true;
		if (r != TDP_FAULT_TRACKED)
			abort(); /* the fake maps every slot it writes */
		/* The second vCPU writes (vCPU 1): the management side is vCPU 0's. */
		if (cow_handle_write(&vm->cow, 1, gpa) == COW_FAULT_WAIT)
			return false;
	}
}

bool fake_vm_write(struct fake_vm *vm, gpa_t gpa, const void *buf, u32 len)
{
	for (u32 i = 0; i < vm->nr_slots; i++) {
		struct fake_slot *s = &vm->slots[i];

		if (!s->mem || gpa < s->s.gpa || gpa + len > s->s.gpa + s->s.size)
			continue;
		for (gpa_t p = gpa & PAGE_MASK; p < gpa + len; p += PAGE_SIZE)
			if (!fake_write_fault(vm, p))
				return false;
		memcpy(s->mem + (gpa - s->s.gpa), buf, len);
		for (u64 p = (gpa - s->s.gpa) >> PAGE_SHIFT;
		     p <= (gpa - s->s.gpa + len - 1) >> PAGE_SHIFT; p++)
			fake_vm_touch(vm, s->s.id, p);
		return true;
	}
	return false;
}

void fake_vm_log(struct fake_vm *vm, const char *line)
{
	for (const char *c = line;; c++) {
		vm->log[vm->log_end % FAKE_LOG_SIZE] = *c ? *c : '\n';
		vm->log_end++;
		if (!*c)
			break;
	}
}

static u32 rng(u32 *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

void fake_vm_fill(struct fake_vm *vm, u32 seed)
{
	u32 st = seed | 1;

	for (u32 i = 0; i < vm->nr_slots; i++) {
		struct fake_slot *s = &vm->slots[i];

		if (!s->mem)
			continue;
		for (u64 p = 0; p < s->npages; p++) {
			u8 *pg = s->mem + p * PAGE_SIZE;
			u32 kind = rng(&st) % 4;

			if (kind == 0) { /* zero */
				memset(pg, 0, PAGE_SIZE);
			} else if (kind == 1) { /* random */
				for (u32 k = 0; k < PAGE_SIZE; k++)
					pg[k] = (u8)rng(&st);
			} else if (kind == 2) { /* text-like, repetitive */
				for (u32 k = 0; k < PAGE_SIZE; k++)
					pg[k] = (u8)("pagetrail dirty page "[k % 21] + (k / 512));
			} else { /* sparse words */
				memset(pg, 0, PAGE_SIZE);
				for (u32 k = 0; k < 16; k++)
					pg[rng(&st) % PAGE_SIZE] = (u8)rng(&st);
			}
		}
	}
}

static int fk_info(void *ctx, struct mgmt_info *out)
{
	struct fake_vm *vm = ctx;

	out->backend = "svm";
	out->version = "pagetrail-fake 0.1";
	out->vcpus = 2;
	out->mem_bytes = vm->slots[0].s.size + vm->slots[1].s.size;
	out->paused = vm->paused;
	return 0;
}

static int fk_pause(void *ctx)
{
	((struct fake_vm *)ctx)->paused = true;
	return 0;
}

static int fk_resume(void *ctx)
{
	((struct fake_vm *)ctx)->paused = false;
	return 0;
}

static int fk_mem_read(void *ctx, gpa_t gpa, void *buf, u32 len)
{
	struct fake_vm *vm = ctx;

	if (len > PAGE_SIZE || (gpa & PAGE_MASK) != ((gpa + len - 1) & PAGE_MASK))
		return -PROTO_E_INTERNAL; /* mgmt.c broke the one-page contract */
	for (u32 i = 0; i < vm->nr_slots; i++) {
		struct fake_slot *s = &vm->slots[i];

		if (gpa < s->s.gpa || gpa - s->s.gpa >= s->s.size)
			continue;
		if (!s->mem)
			return -PROTO_E_FAULT;
		memcpy(buf, s->mem + (gpa - s->s.gpa), len);
		return 0;
	}
	return -PROTO_E_FAULT;
}

static int fk_regs(void *ctx, u32 vcpu, struct mgmt_regs *out)
{
	(void)ctx;
	if (vcpu >= 2)
		return -PROTO_E_NO_VCPU;
	for (int i = 0; i < PROTO_REG_NR; i++)
		out->r[i] = 0x1000ull * (vcpu + 1) + (u64)i;
	out->r[PROTO_REG_RIP] = 0xffffffff81000000ull + vcpu;
	out->r[PROTO_REG_CR0] = 0x80050033;
	return 0;
}

static int fk_stat(void *ctx, u32 index, const char **name, u64 *value)
{
	struct fake_vm *vm = ctx;

	switch (index) {
	case 0:
		*name = "exit.cpuid";
		*value = ++vm->exits_cpuid;
		return 0;
	case 1:
		*name = "exit.npf";
		*value = vm->exits_npf;
		return 0;
	case 2:
		*name = "dirty.session_ops";
		*value = vm->ds.stats.ops;
		return 0;
	case 3:
		*name = "dirty.session_steps";
		*value = vm->ds.stats.steps;
		return 0;
	}
	return -PROTO_E_RANGE;
}

static u32 fk_log_read(void *ctx, u64 off, u8 *buf, u32 len, u64 *first, u64 *end)
{
	struct fake_vm *vm = ctx;
	u64 lo = vm->log_end > FAKE_LOG_SIZE ? vm->log_end - FAKE_LOG_SIZE : 0;
	u32 n = 0;

	*first = lo;
	*end = vm->log_end;
	if (off < lo)
		off = lo;
	while (n < len && off + n < vm->log_end) {
		buf[n] = (u8)vm->log[(off + n) % FAKE_LOG_SIZE];
		n++;
	}
	return n;
}

static u64 fk_now_ns(void *ctx)
{
	static u64 t;

	(void)ctx;
	return t += 1000;
}

static void fk_note(void *ctx, const char *line)
{
	fake_vm_log(ctx, line);
}

const struct mgmt_backend fake_backend = {
    .info = fk_info,
    .pause = fk_pause,
    .resume = fk_resume,
    .mem_read = fk_mem_read,
    .regs = fk_regs,
    .stat = fk_stat,
    .log_read = fk_log_read,
    .now_ns = fk_now_ns,
    .note = fk_note,
};
