/* SPDX-License-Identifier: MIT */
#include "hv/memslot.h"

#include "hv/log.h"

#include <pt/assert.h>

const char *hv_mem_type_name(enum hv_mem_type t)
{
	switch (t) {
	case HV_MEM_RAM:
		return "ram";
	case HV_MEM_ACPI:
		return "acpi";
	case HV_MEM_RUNTIME:
		return "runtime";
	case HV_MEM_RESERVED:
		return "reserved";
	case HV_MEM_MMIO:
		return "mmio";
	case HV_MEM_HIDDEN:
		return "hidden";
	case HV_MEM_NR_TYPES:
		break;
	}
	return "?";
}

/* Appends [gfn, gfn + n) of type t, merging with the previous slot if it touches. */
static int slot_append(struct vm *vm, gfn_t gfn, u64 n, enum hv_mem_type t)
{
	struct hv_slot *prev = vm->nr_slots ? &vm->slots[vm->nr_slots - 1] : NULL;

	if (!n)
		return 0;
	if (prev && prev->type == t && prev->base_gfn + prev->npages == gfn) {
		prev->npages += n;
		return 0;
	}
	if (vm->nr_slots == HV_MAX_SLOTS) {
		/* Cannot happen for a map of HV_MAX_MEM_RANGES ranges (pt/limits.h). */
		hv_log("memslots: more than %u slots needed", HV_MAX_SLOTS);
		return -1;
	}
	vm->slots[vm->nr_slots++] =
	    (struct hv_slot){.base_gfn = gfn, .npages = n, .type = t, .mmu_id = -1};
	return 0;
}

/*
 * Adds [gfn, end) of type t minus the hidden ranges (the pool is a single
 * range, so at most one hole per call in practice; handled generally).
 */
static int slot_add_visible(struct vm *vm, gfn_t gfn, gfn_t end, enum hv_mem_type t)
{
	while (gfn < end) {
		gfn_t stop = end;
		unsigned int i;
		bool skipped = false;

		for (i = 0; i < vm->nr_hidden; i++) {
			gfn_t hs = gpa_to_gfn(vm->hidden[i].start);
			gfn_t he = gpa_to_gfn(vm->hidden[i].end);

			if (gfn >= hs && gfn < he) {
				gfn = he;
				skipped = true;
				break;
			}
			if (hs > gfn && hs < stop)
				stop = hs;
		}
		if (skipped)
			continue;
		if (slot_append(vm, gfn, stop - gfn, t))
			return -1;
		gfn = stop;
	}
	return 0;
}

int hv_memslots_build(struct vm *vm, const struct hv_boot_info *bi, gpa_t gpa_limit)
{
	u32 order[HV_MAX_MEM_RANGES];
	gfn_t next = 0, limit = gpa_to_gfn(gpa_limit);
	u32 i, j, n = bi->nr_ranges;

	if (n > HV_MAX_MEM_RANGES) {
		hv_log("memslots: %u map ranges, at most %u", n, HV_MAX_MEM_RANGES);
		return -1;
	}

	vm->nr_slots = 0;
	vm->gpa_limit = gpa_limit;
	vm->ram_pages = 0;
	/* Insertion sort of indices by base: the map has at most a few hundred entries. */
	for (i = 0; i < n; i++) {
		for (j = i; j > 0 && bi->ranges[order[j - 1]].base > bi->ranges[i].base; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	for (i = 0; i < n; i++) {
		const struct hv_mem_range *r = &bi->ranges[order[i]];
		gfn_t gfn = gpa_to_gfn(r->base), end = gfn + r->pages;

		if (r->type == HV_MEM_HIDDEN)
			continue; /* hidden ranges were recorded by the caller */
		if (gfn < next) {
			hv_log("memslots: overlapping map entry 0x%lx (+%lu pages), trimmed",
			       r->base, r->pages);
			gfn = next;
		}
		if (end > limit)
			end = limit;
		if (gfn >= end)
			continue;
		if (gfn > next && slot_add_visible(vm, next, gfn, HV_MEM_MMIO))
			return -1;
		if (slot_add_visible(vm, gfn, end, (enum hv_mem_type)r->type))
			return -1;
		next = end;
	}
	if (next < limit && slot_add_visible(vm, next, limit, HV_MEM_MMIO))
		return -1;
	for (i = 0; i < vm->nr_slots; i++)
		if (vm->slots[i].type == HV_MEM_RAM)
			vm->ram_pages += vm->slots[i].npages;
	return 0;
}

bool hv_gpa_is_hidden(const struct vm *vm, gpa_t gpa)
{
	unsigned int i;

	for (i = 0; i < vm->nr_hidden; i++)
		if (gpa >= vm->hidden[i].start && gpa < vm->hidden[i].end)
			return true;
	return false;
}

const struct hv_slot *hv_gpa_to_slot(const struct vm *vm, gpa_t gpa)
{
	gfn_t gfn = gpa_to_gfn(gpa);
	unsigned int lo = 0, hi = vm->nr_slots;

	while (lo < hi) {
		unsigned int mid = (lo + hi) / 2;
		const struct hv_slot *s = &vm->slots[mid];

		if (gfn < s->base_gfn)
			hi = mid;
		else if (gfn >= s->base_gfn + s->npages)
			lo = mid + 1;
		else
			return s;
	}
	return NULL;
}

void hv_memslots_log(const struct vm *vm)
{
	unsigned int i;

	for (i = 0; i < vm->nr_slots; i++) {
		const struct hv_slot *s = &vm->slots[i];

		hv_log("slot %u: 0x%lx-0x%lx %s", i, gfn_to_gpa(s->base_gfn),
		       gfn_to_gpa(s->base_gfn + s->npages), hv_mem_type_name(s->type));
	}
}
