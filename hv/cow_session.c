// SPDX-License-Identifier: MIT
/*
 * The copy-on-write snapshot session (hv/cow_session.h): arming, the write
 * fault's copy or wait, the stream's read, the end.
 */
#include "hv/cow_session.h"

#include "hv/mmu_err.h"
#include "mmu/tdp_mmu.h"

#include <hv/proto/proto.h>
#include <pt/assert.h>

/* Waits logged one by one; after that one line in this many. */
#define COW_WAIT_LOG_FIRST 8
#define COW_WAIT_LOG_EVERY 1024

static void cow_log(struct cow_session *cs, const char *msg, u64 a, u64 b)
{
	if (cs->hooks.log)
		cs->hooks.log(cs->hooks.ctx, msg, a, b);
}

static void cow_copy_page(void *dst, const void *src)
{
	u64 *d = dst;
	const volatile u64 *s = src;

	for (u32 i = 0; i < PAGE_SIZE / 8; i++)
		d[i] = s[i];
}

static void cow_zero(void *p, u64 bytes)
{
	u8 *b = p;

	for (u64 i = 0; i < bytes; i++)
		b[i] = 0;
}

static u64 cow_popcount64(u64 v)
{
	/* No __builtin_popcountll: without SSE it becomes a libgcc call. */
	v = v - ((v >> 1) & 0x5555555555555555ull);
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (v * 0x0101010101010101ull) >> 56;
}

static bool cow_is_memory(const struct hv_slot *s)
{
	return s->type != HV_MEM_MMIO && s->mmu_id >= 0;
}

int cow_init(struct cow_session *cs, struct vm *vm, const struct cow_hooks *hooks)
{
	cow_zero(cs, sizeof(*cs));
	if (!hooks->alloc || !hooks->alloc_page || !hooks->free_page || !hooks->pages_free ||
	    !hooks->guest_page)
		return -PROTO_E_INTERNAL;
	cs->vm = vm;
	cs->mmu = vm->mmu;
	cs->hooks = *hooks;
	pt_spin_init(&cs->lock);
	cs->nr_slots = vm->nr_slots;
	cs->slots = hooks->alloc(hooks->ctx, (u64)vm->nr_slots * sizeof(*cs->slots) + 1);
	return cs->slots ? 0 : -PROTO_E_INTERNAL;
}

/* The per-slot state, allocated at the first arm and kept. */
static int cow_slot_state(struct cow_session *cs, u32 i)
{
	struct cow_slot *c = &cs->slots[i];
	u64 npages = cs->vm->slots[i].npages;

	if (!c->track)
		c->track = cs->hooks.alloc(cs->hooks.ctx, tdp_dirty_bitmap_words(npages) * 8);
	if (!c->copy_of)
		c->copy_of = cs->hooks.alloc(cs->hooks.ctx, npages * sizeof(u32));
	return c->track && c->copy_of ? 0 : -PROTO_E_NOMEM;
}

static u64 cow_bytes_to_pages(u64 bytes)
{
	return (bytes + PAGE_SIZE - 1) / PAGE_SIZE;
}

/* Pages the first arm (or a larger budget) takes for good besides the budget. */
static u64 cow_state_pages(const struct cow_session *cs, u64 budget)
{
	u64 n = 0;

	for (u32 i = 0; i < cs->nr_slots; i++) {
		const struct hv_slot *s = &cs->vm->slots[i];

		if (!cow_is_memory(s))
			continue;
		if (!cs->slots[i].track)
			n += cow_bytes_to_pages(tdp_dirty_bitmap_words(s->npages) * 8);
		if (!cs->slots[i].copy_of)
			n += cow_bytes_to_pages(s->npages * sizeof(u32));
	}
	if (budget > cs->capacity)
		n += cow_bytes_to_pages(budget * sizeof(void *)) +
		     cow_bytes_to_pages(budget * sizeof(u32));
	return n;
}

static void cow_free_budget(struct cow_session *cs)
{
	for (u32 i = 0; i < cs->budget; i++) {
		cs->hooks.free_page(cs->hooks.ctx, cs->pages[i]);
		cs->pages[i] = NULL;
	}
	cs->budget = 0;
	cs->nr_free = 0;
}

/* Tracking off on every armed slot; the pages left tracked are counted. */
static u64 cow_untrack_all(struct cow_session *cs)
{
	u64 unsent = 0;

	for (u32 i = 0; i < cs->nr_slots; i++) {
		struct cow_slot *c = &cs->slots[i];
		const struct hv_slot *s = &cs->vm->slots[i];

		if (!c->armed)
			continue;
		/* After this no fault reads the bitmap (mmu/ takes its lock for write). */
		tdp_mmu_write_track_disable(cs->mmu, (unsigned int)s->mmu_id);
		for (u64 w = 0; w < tdp_dirty_bitmap_words(s->npages); w++)
			unsent += cow_popcount64(c->track[w]);
		c->armed = false;
	}
	return unsent;
}

int cow_arm(struct cow_session *cs, u64 budget, u64 *tracked)
{
	const char *why = NULL;
	bool flush = false;
	int rc = 0;
	u32 i;

	*tracked = 0;
	if (budget == 0 || budget >= 0xffffffffull)
		return -PROTO_E_RANGE;
	if (cs->hooks.allowed && !cs->hooks.allowed(cs->hooks.ctx, &why)) {
		cow_log(cs, why ? why : "copy-on-write refused", 0, 0);
		return -PROTO_E_UNSUPPORTED;
	}
	pt_spin_lock(&cs->lock);
	if (cs->armed) {
		rc = -PROTO_E_STATE;
		goto out;
	}
	/*
	 * Everything this arm takes from the pool, checked before any of it
	 * is taken: what is kept for good (per-slot state, a larger page
	 * array) must not leave the nested page tables without memory when
	 * the budget then does not fit.
	 */
	if (cs->hooks.pages_free(cs->hooks.ctx) <
	    cow_state_pages(cs, budget) + budget + COW_POOL_FLOOR_PAGES) {
		cow_log(cs, "copy-on-write: the pool cannot give the budget (pages wanted/free)",
			cow_state_pages(cs, budget) + budget, cs->hooks.pages_free(cs->hooks.ctx));
		rc = -PROTO_E_NOMEM;
		goto out;
	}
	for (i = 0; i < cs->nr_slots && !rc; i++)
		if (cow_is_memory(&cs->vm->slots[i]))
			rc = cow_slot_state(cs, i);
	if (rc)
		goto out;
	if (budget > cs->capacity) {
		/* Grows only: the pool's contiguous memory is never given back. */
		void **pages = cs->hooks.alloc(cs->hooks.ctx, budget * sizeof(void *));
		u32 *idx = cs->hooks.alloc(cs->hooks.ctx, budget * sizeof(u32));

		if (!pages || !idx) {
			rc = -PROTO_E_NOMEM;
			goto out;
		}
		cs->pages = pages;
		cs->free_idx = idx;
		cs->capacity = (u32)budget;
	}
	for (cs->budget = 0; cs->budget < budget; cs->budget++) {
		cs->pages[cs->budget] = cs->hooks.alloc_page(cs->hooks.ctx);
		if (!cs->pages[cs->budget]) {
			cow_free_budget(cs);
			rc = -PROTO_E_NOMEM;
			goto out;
		}
		cs->free_idx[cs->budget] = cs->budget;
	}
	cs->nr_free = cs->budget;

	for (i = 0; i < cs->nr_slots; i++) {
		const struct hv_slot *s = &cs->vm->slots[i];
		struct cow_slot *c = &cs->slots[i];
		bool f = false;
		int r;

		if (!cow_is_memory(s))
			continue;
		cow_zero(c->copy_of, s->npages * sizeof(u32));
		r = tdp_mmu_write_track_enable(cs->mmu, (unsigned int)s->mmu_id, c->track, &f);
		flush |= f;
		if (r) {
			rc = hv_mmu_err_to_proto(r);
			cow_log(cs, "copy-on-write: cannot track slot (slot, mmu error)", i,
				(u64)(s64)r);
			break;
		}
		c->armed = true;
		*tracked += s->npages;
	}
	if (rc) {
		cow_untrack_all(cs);
		cow_free_budget(cs);
		*tracked = 0;
	} else {
		cs->armed = true;
		cs->tracked = *tracked;
		cs->st.sessions++;
		cs->st.copies = cs->st.waits = cs->st.wait_faults = 0;
		cs->st.sent_copy = cs->st.sent_direct = cs->st.max_used = 0;
		for (i = 0; i < HV_MAX_CPUS; i++)
			cs->wait_gfn[i] = 0;
	}
	/*
	 * Every vCPU's TLB, before the reply (and so before the RESUME that
	 * follows it): a writable translation cached from before the arm
	 * would let a write change a page of the instant without a fault.
	 * Also after a failure: entries may have changed.
	 */
	if (flush || !rc)
		tdp_mmu_flush_remote_tlbs(cs->mmu);
out:
	pt_spin_unlock(&cs->lock);
	return rc;
}

/*
 * The slot holding @gfn, or NULL: the last one found first (the stream reads
 * in order), then every slot (no order assumed: a few hundred at most).
 */
static const struct hv_slot *cow_find_slot(struct cow_session *cs, gfn_t gfn)
{
	const struct vm *vm = cs->vm;
	const struct hv_slot *s = &vm->slots[cs->last_slot < vm->nr_slots ? cs->last_slot : 0];

	if (vm->nr_slots && gfn >= s->base_gfn && gfn - s->base_gfn < s->npages)
		return s;
	for (u32 i = 0; i < vm->nr_slots; i++) {
		s = &vm->slots[i];
		if (gfn >= s->base_gfn && gfn - s->base_gfn < s->npages) {
			cs->last_slot = i;
			return s;
		}
	}
	return NULL;
}

/* The armed slot and page of @gpa, or false. Lock held. */
static bool cow_locate(struct cow_session *cs, gpa_t gpa, u32 *slot, u64 *page)
{
	const struct hv_slot *s = cow_find_slot(cs, gpa_to_gfn(gpa));

	if (!s || !cow_is_memory(s))
		return false;
	*slot = (u32)(s - cs->vm->slots);
	if (!cs->slots[*slot].armed)
		return false;
	*page = gpa_to_gfn(gpa) - s->base_gfn;
	return true;
}

int cow_read_page(struct cow_session *cs, gpa_t gpa, void *buf)
{
	struct cow_slot *c;
	u32 slot, idx;
	u64 page;
	int rc = 0;

	gpa &= PAGE_MASK;
	pt_spin_lock(&cs->lock);
	if (!cs->armed) {
		rc = -PROTO_E_STATE;
		goto out;
	}
	if (!cow_locate(cs, gpa, &slot, &page)) {
		rc = -PROTO_E_FAULT;
		goto out;
	}
	c = &cs->slots[slot];
	idx = c->copy_of[page];
	if (idx) {
		/* Written since the instant: the copy made before that write. */
		cow_copy_page(buf, cs->pages[idx - 1]);
		c->copy_of[page] = 0;
		cs->free_idx[cs->nr_free++] = idx - 1;
		cs->st.sent_copy++;
	} else if (tdp_mmu_write_tracked(cs->mmu, (unsigned int)cs->vm->slots[slot].mmu_id, page)) {
		/* Untouched: nobody can write it before the untrack below. */
		cow_copy_page(buf, cs->hooks.guest_page(cs->hooks.ctx, gpa));
		tdp_mmu_write_untrack(cs->mmu, (unsigned int)cs->vm->slots[slot].mmu_id, page);
		cs->st.sent_direct++;
	} else {
		rc = -PROTO_E_STATE; /* sent already: its instant's bytes are gone */
	}
out:
	pt_spin_unlock(&cs->lock);
	return rc;
}

enum cow_fault_result cow_handle_write(struct cow_session *cs, u32 vcpu, gpa_t gpa)
{
	enum cow_fault_result res = COW_FAULT_AGAIN;
	u64 *waiting = vcpu < HV_MAX_CPUS ? &cs->wait_gfn[vcpu] : NULL;
	gfn_t gfn = gpa_to_gfn(gpa);
	u32 slot, idx;
	u64 page, used;
	unsigned int mmu_id;

	pt_spin_lock(&cs->lock);
	/* Ended, or not one of ours: mmu/ decides again on the next fault. */
	if (!cs->armed || !cow_locate(cs, gpa & PAGE_MASK, &slot, &page))
		goto done;
	mmu_id = (unsigned int)cs->vm->slots[slot].mmu_id;
	/* Copied or sent by someone else meanwhile (another vCPU, the stream). */
	if (!tdp_mmu_write_tracked(cs->mmu, mmu_id, page))
		goto done;
	if (!cs->nr_free) {
		res = COW_FAULT_WAIT;
		cs->st.wait_faults++;
		if (waiting && *waiting == gfn + 1)
			goto out;
		if (waiting)
			*waiting = gfn + 1;
		cs->st.waits++;
		cs->st.waits_total++;
		if (cs->st.waits <= COW_WAIT_LOG_FIRST || !(cs->st.waits % COW_WAIT_LOG_EVERY))
			cow_log(cs,
				"copy-on-write: budget full, a vCPU waits for the stream (waits "
				"so far, gpa)",
				cs->st.waits, gpa & PAGE_MASK);
		goto out;
	}
	idx = cs->free_idx[--cs->nr_free];
	cow_copy_page(cs->pages[idx], cs->hooks.guest_page(cs->hooks.ctx, gpa & PAGE_MASK));
	cs->slots[slot].copy_of[page] = idx + 1;
	/* After the copy (release): the vCPU that finds W may write. */
	tdp_mmu_write_untrack(cs->mmu, mmu_id, page);
	cs->st.copies++;
	cs->st.copies_total++;
	used = cs->budget - cs->nr_free;
	if (used > cs->st.max_used)
		cs->st.max_used = used;
done:
	if (waiting)
		*waiting = 0;
out:
	pt_spin_unlock(&cs->lock);
	return res;
}

int cow_end(struct cow_session *cs, u64 *unsent)
{
	*unsent = 0;
	pt_spin_lock(&cs->lock);
	if (!cs->armed) {
		pt_spin_unlock(&cs->lock);
		return -PROTO_E_STATE;
	}
	cs->armed = false;
	*unsent = cow_untrack_all(cs) + (cs->budget - cs->nr_free);
	/* Copies never sent: their slots' indices are cleared at the next arm. */
	cow_free_budget(cs);
	cs->st.unsent = *unsent;
	for (u32 i = 0; i < HV_MAX_CPUS; i++)
		cs->wait_gfn[i] = 0;
	pt_spin_unlock(&cs->lock);
	return 0;
}
