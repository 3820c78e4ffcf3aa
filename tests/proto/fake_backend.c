/* SPDX-License-Identifier: MIT */
#include "fake_backend.h"

#include <stdlib.h>
#include <string.h>

static struct fake_slot *slot_by_id(struct fake_vm *vm, u32 id)
{
	for (u32 i = 0; i < vm->nr_slots; i++)
		if (vm->slots[i].s.id == id)
			return &vm->slots[i];
	return NULL;
}

static void add_slot(struct fake_vm *vm, u32 id, gpa_t gpa, u64 size, u8 type)
{
	struct fake_slot *s = &vm->slots[vm->nr_slots++];
	u64 words;

	s->s.id = id;
	s->s.gpa = gpa;
	s->s.size = size;
	s->s.type = type;
	s->s.dirty_mode = PROTO_DIRTY_OFF;
	s->npages = size >> PAGE_SHIFT;
	words = (s->npages + 63) / 64;
	s->mem = type == PROTO_SLOT_MMIO ? NULL : calloc(1, size);
	s->live = calloc(words, 8);
	s->snap = calloc(words, 8);
	s->scratch = calloc(words, 8);
	if ((type != PROTO_SLOT_MMIO && !s->mem) || !s->live || !s->snap || !s->scratch)
		abort();
}

void fake_vm_init(struct fake_vm *vm, u32 ram0_mib)
{
	memset(vm, 0, sizeof(*vm));
	vm->dirty_modes =
	    PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_WP) | PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_DBIT);
	add_slot(vm, 0, 0, (u64)ram0_mib << 20, PROTO_SLOT_RAM);
	add_slot(vm, 1, 0x100000000ull, 4ull << 20, PROTO_SLOT_RAM);
	add_slot(vm, 7, 0xfe000000ull, 64ull << 10, PROTO_SLOT_MMIO);
	fake_vm_log(vm, "pagetrail: fake hypervisor up");
}

void fake_vm_free(struct fake_vm *vm)
{
	for (u32 i = 0; i < vm->nr_slots; i++) {
		free(vm->slots[i].mem);
		free(vm->slots[i].live);
		free(vm->slots[i].snap);
		free(vm->slots[i].scratch);
	}
	memset(vm, 0, sizeof(*vm));
}

void fake_vm_touch(struct fake_vm *vm, u32 slot_id, u64 page)
{
	struct fake_slot *s = slot_by_id(vm, slot_id);

	if (s && page < s->npages && s->s.dirty_mode != PROTO_DIRTY_OFF)
		proto_set_bit(s->live, page);
}

void fake_vm_write(struct fake_vm *vm, gpa_t gpa, const void *buf, u32 len)
{
	for (u32 i = 0; i < vm->nr_slots; i++) {
		struct fake_slot *s = &vm->slots[i];

		if (!s->mem || gpa < s->s.gpa || gpa + len > s->s.gpa + s->s.size)
			continue;
		memcpy(s->mem + (gpa - s->s.gpa), buf, len);
		for (u64 p = (gpa - s->s.gpa) >> PAGE_SHIFT;
		     p <= (gpa - s->s.gpa + len - 1) >> PAGE_SHIFT; p++)
			fake_vm_touch(vm, s->s.id, p);
		return;
	}
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
	out->dirty_modes = vm->dirty_modes;
	out->mem_bytes = vm->slots[0].s.size + vm->slots[1].s.size;
	out->paused = vm->paused;
	return 0;
}

static int fk_slot_get(void *ctx, u32 index, struct mgmt_slot *out)
{
	struct fake_vm *vm = ctx;

	if (index >= vm->nr_slots)
		return -PROTO_E_RANGE;
	*out = vm->slots[index].s;
	return 0;
}

enum { FK_OP_START = 1, FK_OP_STOP, FK_OP_HARVEST };

/*
 * One call of a long operation (struct mgmt_backend): checks the cursor
 * contract and returns the pages this call may work on, or 0 when the call
 * breaks the contract.
 */
static u64 fk_step_begin(struct fake_vm *vm, struct fake_slot *s, int op, u64 pos, u64 budget)
{
	u64 n;

	if (pos == 0 && vm->op == 0) {
		vm->op = op;
		vm->op_slot = s->s.id;
		vm->op_calls = 0;
	} else if (vm->op != op || vm->op_slot != s->s.id || pos != vm->op_pos || pos == 0) {
		vm->contract_broken = true;
		return 0;
	}
	if (budget < 64 || budget % 64 || pos >= s->npages) {
		vm->contract_broken = true;
		return 0;
	}
	n = s->npages - pos < budget ? s->npages - pos : budget;
	if (n > vm->max_step_work)
		vm->max_step_work = n;
	vm->steps++;
	vm->op_calls++;
	return n;
}

/* The end of one call: MGMT_STEP_MORE with the cursor advanced, or done. */
static int fk_step_end(struct fake_vm *vm, struct fake_slot *s, u64 *pos, u64 n)
{
	*pos += n;
	vm->op_pos = *pos;
	if (*pos < s->npages)
		return MGMT_STEP_MORE;
	vm->op = 0;
	return 0;
}

static int fk_dirty_start(void *ctx, u32 slot_id, enum proto_dirty_mode mode, u64 *pos, u64 budget)
{
	struct fake_vm *vm = ctx;
	struct fake_slot *s = slot_by_id(vm, slot_id);
	u64 n;

	if (!s)
		return -PROTO_E_NO_SLOT;
	if (*pos == 0) {
		if (s->s.type == PROTO_SLOT_MMIO || s->s.type == PROTO_SLOT_ROM)
			return -PROTO_E_UNSUPPORTED;
		if (!(vm->dirty_modes & PROTO_DIRTY_MODE_BIT(mode)))
			return -PROTO_E_UNSUPPORTED;
	}
	n = fk_step_begin(vm, s, FK_OP_START, *pos, budget);
	if (!n)
		return -PROTO_E_INTERNAL;
	/* As the real one: the log is ready from the first call on; "logging" is
	 * reported only once the whole slot is armed. */
	if (*pos == 0 && s->s.dirty_mode == PROTO_DIRTY_OFF)
		memset(s->live, 0, (s->npages + 63) / 64 * 8);
	if (fk_step_end(vm, s, pos, n) == MGMT_STEP_MORE)
		return MGMT_STEP_MORE;
	s->s.dirty_mode = (u8)mode;
	return 0;
}

static int fk_dirty_stop(void *ctx, u32 slot_id, u64 *pos, u64 budget)
{
	struct fake_vm *vm = ctx;
	struct fake_slot *s = slot_by_id(vm, slot_id);
	u64 n;

	if (!s)
		return -PROTO_E_NO_SLOT;
	n = fk_step_begin(vm, s, FK_OP_STOP, *pos, budget);
	if (!n)
		return -PROTO_E_INTERNAL;
	/* Not logging from the first call on; later calls "collapse". */
	s->s.dirty_mode = PROTO_DIRTY_OFF;
	return fk_step_end(vm, s, pos, n);
}

static u64 *fk_dirty_snapshot(void *ctx, u32 slot_id)
{
	struct fake_slot *s = slot_by_id(ctx, slot_id);

	return s ? s->snap : NULL;
}

static int fk_dirty_harvest(void *ctx, u32 slot_id, u64 *bitmap, bool clear, u64 *pos, u64 budget)
{
	struct fake_vm *vm = ctx;
	struct fake_slot *s = slot_by_id(vm, slot_id);
	u64 n;

	if (!s)
		return -PROTO_E_NO_SLOT;
	n = fk_step_begin(vm, s, FK_OP_HARVEST, *pos, budget);
	if (!n)
		return -PROTO_E_INTERNAL;
	if (vm->fail_harvest_call && vm->op_calls == vm->fail_harvest_call) {
		/* An mmu error: earlier steps' bits are in bitmap already. */
		vm->op = 0;
		return -PROTO_E_BUSY;
	}
	/* The real one's step: get + clear of the words of [pos, pos + n), ORed in. */
	for (u64 w = *pos / 64; w < (*pos + n + 63) / 64; w++) {
		s->scratch[w] = s->live[w];
		if (clear)
			s->live[w] = 0;
		bitmap[w] |= s->scratch[w];
	}
	if (fk_step_end(vm, s, pos, n) == MGMT_STEP_MORE)
		return MGMT_STEP_MORE;
	vm->harvests++;
	return 0;
}

static s64 fk_dirty_clear(void *ctx, u32 slot_id, u64 first, u64 count, const u64 *mask)
{
	struct fake_vm *vm = ctx;
	struct fake_slot *s = slot_by_id(vm, slot_id);
	s64 n = 0;

	if (!s)
		return -PROTO_E_NO_SLOT;
	/* No other dirty call while a long operation runs (mgmt_backend). */
	if (vm->op) {
		vm->contract_broken = true;
		return -PROTO_E_INTERNAL;
	}
	/* The contract of tdp_mmu_clear_dirty_log, checked. */
	if (first % 64 || first >= s->npages || count > s->npages - first ||
	    (count % 64 && first + count != s->npages))
		return -PROTO_E_INTERNAL;
	for (u64 i = 0; i < count; i++) {
		if (proto_test_bit(mask, i) && proto_test_bit(s->live, first + i)) {
			s->live[(first + i) / 64] &= ~(1ull << ((first + i) % 64));
			n++;
		}
	}
	vm->clears++;
	return n;
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
		*name = "fake.harvests";
		*value = vm->harvests;
		return 0;
	case 3:
		*name = "fake.clears";
		*value = vm->clears;
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
    .slot_get = fk_slot_get,
    .dirty_start = fk_dirty_start,
    .dirty_stop = fk_dirty_stop,
    .dirty_snapshot = fk_dirty_snapshot,
    .dirty_harvest = fk_dirty_harvest,
    .dirty_clear = fk_dirty_clear,
    .pause = fk_pause,
    .resume = fk_resume,
    .mem_read = fk_mem_read,
    .regs = fk_regs,
    .stat = fk_stat,
    .log_read = fk_log_read,
    .now_ns = fk_now_ns,
    .note = fk_note,
};
