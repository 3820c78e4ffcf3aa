/* SPDX-License-Identifier: MIT */
/*
 * The dirty-log session (hv/dirty_session.h): per-slot bitmaps, the
 * consumers' views and generations, the long operations in steps, the PML
 * policy, and the one sync of every vCPU before bits leave. Why the steps
 * lose nothing: docs/dirty-logging.md "Harvests in steps".
 */
#include "hv/dirty_session.h"

#include "hv/mmu_err.h"
#include "mmu/tdp_mmu.h"

/* DIRTY_CLEAR: pages per mmu call (one page of mask words). */
#define DS_CLEAR_CHUNK (PAGE_SIZE * 8)

static u64 ds_popcount64(u64 v)
{
	/* No __builtin_popcountll: without SSE it becomes a libgcc call. */
	v = v - ((v >> 1) & 0x5555555555555555ull);
	v = (v & 0x3333333333333333ull) + ((v >> 2) & 0x3333333333333333ull);
	v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (v * 0x0101010101010101ull) >> 56;
}

static void ds_log(const struct dirty_session *ds, const char *msg, u64 a, u64 b)
{
	if (ds->hooks.log)
		ds->hooks.log(ds->hooks.ctx, msg, a, b);
}

static const struct hv_slot *ds_hv_slot(const struct dirty_session *ds, u32 slot)
{
	return slot < ds->nr_slots ? &ds->vm->slots[slot] : NULL;
}

static unsigned int ds_mmu_id(const struct dirty_session *ds, u32 slot)
{
	return (unsigned int)ds->vm->slots[slot].mmu_id;
}

static u64 ds_bitmap_bytes(const struct hv_slot *s)
{
	return tdp_dirty_bitmap_words(s->npages) * sizeof(u64);
}

int ds_init(struct dirty_session *ds, struct vm *vm, const struct ds_hooks *hooks)
{
	u8 *p = (u8 *)ds;

	for (u64 i = 0; i < sizeof(*ds); i++)
		p[i] = 0;
	ds->vm = vm;
	ds->mmu = vm->mmu;
	ds->hooks = *hooks;
	ds->nr_slots = vm->nr_slots;
	if (!hooks->alloc)
		return -PROTO_E_INTERNAL;
	ds->slots = hooks->alloc(hooks->ctx, (u64)vm->nr_slots * sizeof(*ds->slots) + 1);
	ds->mask = hooks->alloc(hooks->ctx, PAGE_SIZE);
	return ds->slots && ds->mask ? 0 : -PROTO_E_INTERNAL;
}

static void ds_free(struct dirty_session *ds, void *p, u64 bytes)
{
	if (p && ds->hooks.free)
		ds->hooks.free(ds->hooks.ctx, p, bytes);
}

static enum proto_dirty_mode ds_proto_mode(enum tdp_dirty_mode m)
{
	switch (m) {
	case TDP_DIRTY_WP:
		return PROTO_DIRTY_WP;
	case TDP_DIRTY_DBIT:
		return PROTO_DIRTY_DBIT;
	case TDP_DIRTY_PML:
		return PROTO_DIRTY_PML;
	}
	return PROTO_DIRTY_OFF;
}

/* The mode mmu/ logs the slot with: the one place a slot's mode is kept. */
static enum proto_dirty_mode ds_mmu_mode(const struct dirty_session *ds, u32 slot)
{
	const struct hv_slot *s = ds_hv_slot(ds, slot);
	const struct tdp_memslot *ms;

	if (!s || s->mmu_id < 0)
		return PROTO_DIRTY_OFF;
	ms = tdp_mmu_memslot(ds->mmu, (unsigned int)s->mmu_id);
	if (!ms || !(ms->flags & TDP_SLOT_LOG_DIRTY))
		return PROTO_DIRTY_OFF;
	return ds_proto_mode(ms->log_mode);
}

enum proto_dirty_mode ds_slot_mode(const struct dirty_session *ds, u32 slot)
{
	/*
	 * Logging in mmu/ from a start's first step on, but started only at its
	 * end: the flush that makes every vCPU see the armed entries is owed to
	 * the end of the operation, and until then a vCPU may still write
	 * through a writable translation it cached before. With --all, so is
	 * every slot this start did before the one it works on (a slot that
	 * logged already makes the start fail: none of those is older).
	 */
	if (ds->op.req.kind == DS_OP_START &&
	    (ds->op.slot == slot || (ds->op.req.all && slot < ds->op.slot)))
		return PROTO_DIRTY_OFF;
	return ds_mmu_mode(ds, slot);
}

void ds_destroy(struct dirty_session *ds)
{
	bool flush = false;

	if (!ds->slots)
		return;
	for (u32 i = 0; i < ds->nr_slots; i++) {
		const struct hv_slot *s = &ds->vm->slots[i];
		struct ds_slot *d = &ds->slots[i];

		if (ds_mmu_mode(ds, i) != PROTO_DIRTY_OFF)
			tdp_mmu_disable_dirty_logging(ds->mmu, ds_mmu_id(ds, i), &flush);
		ds_free(ds, d->log, ds_bitmap_bytes(s));
		ds_free(ds, d->scratch, ds_bitmap_bytes(s));
		for (u32 c = 0; c < DS_NR_CONSUMERS; c++)
			ds_free(ds, d->view[c].bits, ds_bitmap_bytes(s));
	}
	if (flush)
		tdp_mmu_flush_remote_tlbs(ds->mmu);
	ds_free(ds, ds->slots, (u64)ds->nr_slots * sizeof(*ds->slots));
	ds_free(ds, ds->mask, PAGE_SIZE);
	ds->slots = NULL;
}

static bool ds_pml_ok(const struct dirty_session *ds, const char **why)
{
	*why = "this CPU has no page-modification logging";
	return ds->hooks.pml_supported && ds->hooks.set_pml &&
	       ds->hooks.pml_supported(ds->hooks.ctx, why);
}

u32 ds_modes_supported(const struct dirty_session *ds)
{
	const char *why;

	/* D-bit modes need a format with A/D bits (EPT without them has none). */
	if (!ds->mmu->fmt.has_ad)
		return PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_WP);
	return PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_WP) | PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_DBIT) |
	       (ds_pml_ok(ds, &why) ? PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_PML) : 0);
}

static bool ds_is_memory(const struct hv_slot *s)
{
	return s->type != HV_MEM_MMIO; /* MMIO is mapped, never logged */
}

static bool ds_pml_used_by_other_than(const struct dirty_session *ds, u32 slot)
{
	for (u32 i = 0; i < ds->nr_slots; i++)
		if (i != slot && ds_slot_mode(ds, i) == PROTO_DIRTY_PML)
			return true;
	return false;
}

/* The slot stops logging in mode: PML goes off unless another slot still logs with it. */
static void ds_pml_release(struct dirty_session *ds, u32 slot, u8 mode)
{
	if (mode == PROTO_DIRTY_PML && !ds_pml_used_by_other_than(ds, slot))
		ds->hooks.set_pml(ds->hooks.ctx, false);
}

/*
 * THE step before any bit leaves the session (docs/dirty-logging.md "Why
 * the flush before a bitmap leaves is enough"): every vCPU's PML buffer
 * drained into the log, and, if any step of the operation changed an entry,
 * every vCPU's TLB flushed (mmu/'s flush calls the VM's platform flush,
 * which reaches each vCPU). Run at the start of a harvest too, so that what
 * the CPUs logged before it is taken by it. With more vCPUs, this is where
 * they are kicked and waited for.
 */
static void ds_sync_vcpus(struct dirty_session *ds)
{
	ds->stats.syncs++;
	/* Only while some slot logs with PML: a drain kicks every vCPU. */
	if (ds->hooks.drain_pml && ds_pml_used_by_other_than(ds, ds->nr_slots))
		ds->hooks.drain_pml(ds->hooks.ctx);
	if (ds->op.flush_owed)
		tdp_mmu_flush_remote_tlbs(ds->mmu);
	ds->op.flush_owed = false;
}

/* The pages of this step: [op->pos, op->pos + budget) cut at the slot's end. */
static u64 ds_step_pages(const struct dirty_session *ds, u64 budget)
{
	u64 left = ds->vm->slots[ds->op.slot].npages - ds->op.pos;

	return left < budget ? left : budget;
}

/*
 * The end of a step over [op->pos, op->pos + n) of the slot: what mmu/ said
 * of the flush is owed to the end of the operation, its error becomes the
 * protocol's, and without one the step moves on (DS_STEP_MORE while the
 * slot has pages left).
 */
static int ds_step_done(struct dirty_session *ds, u64 n, int mmu_rc, bool flush)
{
	struct ds_op *op = &ds->op;

	op->flush_owed |= flush;
	if (mmu_rc)
		return hv_mmu_err_to_proto(mmu_rc);
	op->pos += n;
	return op->pos < ds->vm->slots[op->slot].npages ? DS_STEP_MORE : 0;
}

static int ds_alloc_bitmap(struct dirty_session *ds, const struct hv_slot *s, u64 **bm)
{
	if (!*bm)
		*bm = ds->hooks.alloc(ds->hooks.ctx, ds_bitmap_bytes(s));
	return *bm ? 0 : -PROTO_E_NOMEM;
}

static int ds_to_tdp_mode(u8 mode, enum tdp_dirty_mode *out)
{
	switch ((enum proto_dirty_mode)mode) {
	case PROTO_DIRTY_WP:
		*out = TDP_DIRTY_WP;
		return 0;
	case PROTO_DIRTY_DBIT:
		*out = TDP_DIRTY_DBIT;
		return 0;
	case PROTO_DIRTY_PML:
		*out = TDP_DIRTY_PML;
		return 0;
	case PROTO_DIRTY_OFF:
		break;
	}
	return -PROTO_E_UNSUPPORTED;
}

/* The checks of a start, before anything changes. */
static int ds_start_check(struct dirty_session *ds, u32 slot, u8 mode)
{
	const struct hv_slot *s = ds_hv_slot(ds, slot);
	enum tdp_dirty_mode tmode = TDP_DIRTY_WP;
	const char *why = "";

	if (!s)
		return -PROTO_E_NO_SLOT;
	if (ds->hooks.logging_allowed && !ds->hooks.logging_allowed(ds->hooks.ctx, &why)) {
		/* Another CPU writes memory outside the nested page tables. */
		ds_log(ds, why, slot, 0);
		return -PROTO_E_STATE;
	}
	if (!ds_is_memory(s) || ds_to_tdp_mode(mode, &tmode) ||
	    !(ds_modes_supported(ds) & PROTO_DIRTY_MODE_BIT(mode)))
		return -PROTO_E_UNSUPPORTED;
	if (mode == PROTO_DIRTY_PML && !ds_pml_ok(ds, &why)) {
		ds_log(ds, why, slot, 0);
		return -PROTO_E_UNSUPPORTED;
	}
	if (ds_mmu_mode(ds, slot) != PROTO_DIRTY_OFF)
		return -PROTO_E_STATE;
	return 0;
}

/* First step of a start: logging on in mmu/, nothing armed yet. */
static int ds_start_begin(struct dirty_session *ds, u32 slot, u8 mode)
{
	const struct hv_slot *s = &ds->vm->slots[slot];
	struct ds_slot *d = &ds->slots[slot];
	enum tdp_dirty_mode tmode = TDP_DIRTY_WP;
	bool flush = false;
	int rc;

	rc = ds_start_check(ds, slot, mode);
	if (rc)
		return rc;
	ds_to_tdp_mode(mode, &tmode);
	if (ds_alloc_bitmap(ds, s, &d->log) || ds_alloc_bitmap(ds, s, &d->scratch))
		return -PROTO_E_NOMEM;
	rc = tdp_mmu_enable_dirty_logging(ds->mmu, ds_mmu_id(ds, slot), tmode,
					  TDP_LOG_MANUAL_PROTECT | TDP_LOG_DEFER_ARM, d->log,
					  &flush);
	ds->op.flush_owed |= flush;
	if (rc)
		return hv_mmu_err_to_proto(rc);
	/*
	 * PML before the first page is armed: PML logs a page only when the
	 * CPU sets its D bit, and the guest runs between steps. A page armed
	 * (D cleared) while PML was still off and written before it came on
	 * would get D set unlogged, and with D set no later write logs it
	 * either: lost for good. With PML on first, a write to an armed page
	 * is logged; a write to a page not armed yet may be logged too (a
	 * spare bit, never a missing one).
	 */
	if (mode == PROTO_DIRTY_PML && ds->hooks.set_pml(ds->hooks.ctx, true)) {
		/* Nothing is armed or split yet: no collapse to do. */
		rc = tdp_mmu_disable_dirty_logging_deferred(ds->mmu, ds_mmu_id(ds, slot), &flush);
		ds->op.flush_owed |= flush;
		return rc ? -PROTO_E_INTERNAL : -PROTO_E_UNSUPPORTED;
	}
	return 0;
}

static int ds_start_step(struct dirty_session *ds, u64 budget)
{
	struct ds_op *op = &ds->op;
	u32 slot = op->slot;
	bool flush = false;
	u64 n;
	int rc;

	if (op->pos == 0) {
		rc = ds_start_begin(ds, slot, op->req.mode);
		if (rc)
			return rc;
	}
	n = ds_step_pages(ds, budget);
	rc = tdp_mmu_arm_dirty_log_range(ds->mmu, ds_mmu_id(ds, slot), op->pos, n, &flush);
	op->flush_owed |= flush;
	if (rc) {
		/*
		 * A slot half armed must not stay logging: the host is told
		 * the start failed and would not harvest it. Turned off whole
		 * here (one long pass, on this error path only).
		 */
		ds_log(ds, "dirty logging: arming failed: slot, page", slot, op->pos);
		if (tdp_mmu_disable_dirty_logging(ds->mmu, ds_mmu_id(ds, slot), &flush))
			return -PROTO_E_INTERNAL;
		op->flush_owed |= flush;
		ds_pml_release(ds, slot, op->req.mode);
		return hv_mmu_err_to_proto(rc);
	}
	return ds_step_done(ds, n, 0, false);
}

static int ds_stop_step(struct dirty_session *ds, u64 budget)
{
	struct ds_op *op = &ds->op;
	u32 slot = op->slot;
	bool flush = false;
	u64 n;
	int rc;

	if (op->pos == 0) {
		enum proto_dirty_mode mode = ds_slot_mode(ds, slot);

		if (mode == PROTO_DIRTY_OFF)
			return -PROTO_E_STATE;
		rc = tdp_mmu_disable_dirty_logging_deferred(ds->mmu, ds_mmu_id(ds, slot), &flush);
		op->flush_owed |= flush;
		if (rc)
			return hv_mmu_err_to_proto(rc);
		/* Not logging from here on: the later steps only collapse. */
		ds_pml_release(ds, slot, mode);
		ds_log(ds, "dirty logging off: slot", slot, 0);
	}
	n = ds_step_pages(ds, budget);
	/* An error here leaves pages mapped 4 KiB: slower only; logging is off. */
	rc = tdp_mmu_collapse_range(ds->mmu, ds_mmu_id(ds, slot), op->pos, n, &flush);
	return ds_step_done(ds, n, rc, flush);
}

/*
 * One harvest step: GET a range into the scratch at its word offset, CLEAR
 * (re-arm) exactly the bits taken, then OR them into every consumer's view
 * in the same step (a merge of the whole slot at the end would be 1/64 of a
 * whole-slot pass in one exit). No view leaves before the operation's end
 * and its sync. A bit taken out of the log is in the views at once: never
 * lost, also when a later step fails.
 */
static int ds_harvest_step(struct dirty_session *ds, u64 budget)
{
	struct ds_op *op = &ds->op;
	u32 slot = op->slot;
	struct ds_slot *d = &ds->slots[slot];
	bool flush = false;
	u64 i, n;
	int rc;

	if (op->pos == 0)
		ds_sync_vcpus(ds); /* PML: what the CPUs logged so far goes in first */
	n = ds_step_pages(ds, budget);
	rc = tdp_mmu_get_dirty_log_range(ds->mmu, ds_mmu_id(ds, slot), op->pos, n,
					 d->scratch + op->pos / 64, &flush);
	op->flush_owed |= flush;
	if (rc)
		return hv_mmu_err_to_proto(rc);
	if (op->req.clear) {
		rc = tdp_mmu_clear_dirty_log(ds->mmu, ds_mmu_id(ds, slot), op->pos, n,
					     d->scratch + op->pos / 64, &flush);
	}
	/* Also after a failed CLEAR: a spare bit, never a missing one. */
	for (u32 c = 0; c < DS_NR_CONSUMERS; c++) {
		u64 *v = d->view[c].bits;

		for (i = op->pos / 64; i < tdp_dirty_bitmap_words(op->pos + n); i++)
			v[i] |= d->scratch[i];
	}
	return ds_step_done(ds, n, rc, flush);
}

/*
 * One DIRTY_CLEAR chunk of at most `budget` pages (and one mask page) from
 * op->pos: only pages the consumer was handed (set in its view) are
 * cleared; a page first written after its harvest keeps its logged bit
 * (KVM_CLEAR_DIRTY_LOG's mask). Their view bits go once mmu/ has re-armed
 * them. Returns the pages of work done, or a negative error.
 */
static s64 ds_clear_chunk(struct dirty_session *ds, u64 budget)
{
	u64 *mask = ds->mask;
	struct ds_op *op = &ds->op;
	u32 slot = op->slot;
	const struct hv_slot *s = &ds->vm->slots[slot];
	u64 *view = ds->slots[slot].view[op->req.consumer].bits;
	u64 first = op->req.first, end = op->req.first + op->req.count;
	u64 base = op->pos, n = end - base, lo, hi, words;
	bool flush = false;
	int rc;

	if (n > DS_CLEAR_CHUNK)
		n = DS_CLEAR_CHUNK;
	if (n > budget)
		n = budget;
	n = (n + 63) & ~63ull;
	if (n > s->npages - base)
		n = s->npages - base;
	words = (n + 63) / 64;
	lo = base > first ? base : first;
	hi = base + n < end ? base + n : end;
	for (u64 w = 0; w < words; w++) {
		u64 p0 = base + w * 64, bits = view[p0 / 64];

		if (p0 < lo)
			bits &= ~0ull << (lo - p0);
		if (p0 + 64 > hi)
			bits &= hi <= p0 ? 0 : hi - p0 >= 64 ? ~0ull : (1ull << (hi - p0)) - 1;
		mask[w] = bits;
	}
	rc = tdp_mmu_clear_dirty_log(ds->mmu, ds_mmu_id(ds, slot), base, n, mask, &flush);
	op->flush_owed |= flush;
	if (rc)
		return hv_mmu_err_to_proto(rc);
	for (u64 w = 0; w < words; w++) {
		view[base / 64 + w] &= ~mask[w];
		op->res.ndirty += ds_popcount64(mask[w]);
	}
	op->pos = base + n;
	return (s64)n;
}

/* The next slot that is memory from op->next_index on; false when none is left. */
static bool ds_next_memory_slot(struct dirty_session *ds)
{
	struct ds_op *op = &ds->op;

	for (u32 i = op->next_index; i < ds->nr_slots; i++) {
		if (!ds_is_memory(&ds->vm->slots[i]))
			continue;
		op->slot = i;
		op->pos = 0;
		op->next_index = i + 1;
		return true;
	}
	return false;
}

int ds_begin(struct dirty_session *ds, const struct ds_request *req)
{
	struct ds_op *op = &ds->op;
	const struct hv_slot *s;
	struct ds_slot *d;
	int rc;

	if (ds_busy(ds))
		return -PROTO_E_BUSY;
	if (req->kind == DS_OP_NONE || req->kind > DS_OP_ACK || req->consumer >= DS_NR_CONSUMERS)
		return -PROTO_E_INTERNAL;
	if (req->kind == DS_OP_START && !(ds_modes_supported(ds) & PROTO_DIRTY_MODE_BIT(req->mode)))
		return -PROTO_E_UNSUPPORTED;
	s = ds_hv_slot(ds, req->slot);
	if (!req->all && !s)
		return -PROTO_E_NO_SLOT;
	d = s ? &ds->slots[req->slot] : NULL;
	switch ((enum ds_op_kind)req->kind) {
	case DS_OP_START:
		/* A single slot's checks answer at once; ALL checks each slot in turn. */
		if (!req->all && (rc = ds_start_check(ds, req->slot, req->mode)))
			return rc;
		break;
	case DS_OP_STOP:
		if (!req->all && ds_slot_mode(ds, req->slot) == PROTO_DIRTY_OFF)
			return -PROTO_E_STATE;
		break;
	case DS_OP_HARVEST:
		if (ds_slot_mode(ds, req->slot) == PROTO_DIRTY_OFF)
			return -PROTO_E_STATE;
		if (ds_alloc_bitmap(ds, s, &d->view[req->consumer].bits))
			return -PROTO_E_NOMEM;
		break;
	case DS_OP_CLEAR:
		if (ds_slot_mode(ds, req->slot) == PROTO_DIRTY_OFF)
			return -PROTO_E_STATE;
		if (req->count == 0 || req->first >= s->npages || req->count > s->npages - req->first)
			return -PROTO_E_RANGE;
		if (ds_alloc_bitmap(ds, s, &d->view[req->consumer].bits))
			return -PROTO_E_NOMEM;
		break;
	case DS_OP_ACK:
		if (!d->view[req->consumer].gen || d->view[req->consumer].gen != req->gen)
			return -PROTO_E_STALE;
		break;
	case DS_OP_NONE:
		return -PROTO_E_INTERNAL;
	}
	for (u64 i = 0; i < sizeof(*op); i++)
		((u8 *)op)[i] = 0;
	op->req = *req;
	op->slot = req->slot;
	if (req->kind == DS_OP_CLEAR)
		op->pos = req->first & ~63ull; /* mmu/ wants 64-page alignment: the mask narrows */
	ds->stats.ops++;
	if (req->all && !ds_next_memory_slot(ds))
		op->slot = ds->nr_slots; /* no memory slot at all: the first step ends it */
	return 0;
}

/* Ends the running operation: sync, then the result may leave. */
static int ds_end(struct dirty_session *ds, int rc, struct ds_result *res)
{
	struct ds_op *op = &ds->op;

	ds_sync_vcpus(ds);
	if (!rc && op->req.kind == DS_OP_HARVEST) {
		struct ds_view *v = &ds->slots[op->slot].view[op->req.consumer];

		v->gen = ++ds->gen_next;
		if (!v->gen)
			v->gen = ++ds->gen_next;
		op->res.gen = v->gen;
		op->res.npages = ds->vm->slots[op->slot].npages;
	}
	if (!rc)
		*res = op->res;
	op->req.kind = DS_OP_NONE;
	return rc;
}

/*
 * The view's bits counted (the harvest's reply), or the view emptied (ACK):
 * a pass over words, `budget` words per step.
 */
static int ds_view_pass(struct dirty_session *ds, u64 budget, bool count)
{
	struct ds_op *op = &ds->op;
	const struct hv_slot *s = &ds->vm->slots[op->slot];
	u64 *v = ds->slots[op->slot].view[op->req.consumer].bits;
	u64 words = tdp_dirty_bitmap_words(s->npages);
	u64 end = words - op->pos < budget ? words : op->pos + budget;

	if (!v) /* ACK of a view never allocated cannot pass the generation check */
		return -PROTO_E_INTERNAL;
	for (; op->pos < end; op->pos++) {
		if (count)
			op->res.ndirty += ds_popcount64(v[op->pos]);
		else
			v[op->pos] = 0;
	}
	return op->pos < words ? DS_STEP_MORE : 0;
}

int ds_step(struct dirty_session *ds, u64 budget, struct ds_result *res)
{
	struct ds_op *op = &ds->op;
	u64 work = 0;
	int rc = 0;

	if (!ds_busy(ds))
		return -PROTO_E_INTERNAL;
	if (budget < 64)
		budget = 64;
	ds->stats.steps++;
	while (budget) {
		u64 before = op->pos, used;

		if (op->slot >= ds->nr_slots) { /* ALL with no slot left */
			rc = 0;
			break;
		}
		switch ((enum ds_op_kind)op->req.kind) {
		case DS_OP_START:
			rc = ds_start_step(ds, budget);
			break;
		case DS_OP_STOP:
			rc = ds_stop_step(ds, budget);
			break;
		case DS_OP_HARVEST:
			rc = op->counting ? ds_view_pass(ds, budget, true) : ds_harvest_step(ds, budget);
			break;
		case DS_OP_CLEAR: {
			s64 n = ds_clear_chunk(ds, budget);

			rc = n < 0 ? (int)n
				   : op->pos < op->req.first + op->req.count ? DS_STEP_MORE : 0;
			break;
		}
		case DS_OP_ACK:
			rc = ds_view_pass(ds, budget, false);
			break;
		case DS_OP_NONE:
			rc = -PROTO_E_INTERNAL;
			break;
		}
		if (rc < 0)
			break;
		/* Charged in whole 64-page units, so the rest stays aligned. */
		used = op->pos > before ? op->pos - before : 0;
		used = used < 64 ? 64 : (used + 63) & ~63ull;
		work += used;
		budget = used >= budget ? 0 : budget - used;
		if (rc == DS_STEP_MORE)
			continue;
		/* This slot's part is done. */
		if (op->req.kind == DS_OP_HARVEST && !op->counting) {
			op->counting = true;
			op->pos = 0;
			rc = DS_STEP_MORE;
			continue;
		}
		if (op->req.kind == DS_OP_START || op->req.kind == DS_OP_STOP) {
			if (op->req.kind == DS_OP_START) {
				/* Started only now: every page armed; the sync comes before the reply. */
				ds_log(ds, "dirty logging on: slot, mode", op->slot, op->req.mode);
			}
			op->res.nr_slots++;
			if (op->req.all && ds_next_memory_slot(ds)) {
				rc = DS_STEP_MORE;
				continue;
			}
			/* op->slot stays the last one done: its mode reads as started. */
			op->req.all = false;
			op->next_index = ds->nr_slots;
		}
		break;
	}
	if (work > ds->stats.max_step_work)
		ds->stats.max_step_work = work;
	if (rc == DS_STEP_MORE)
		return DS_STEP_MORE;
	return ds_end(ds, rc, res);
}

int ds_view_read(const struct dirty_session *ds, enum ds_consumer c, u32 slot, u32 gen,
		 const u64 **bits, u64 *npages)
{
	const struct hv_slot *s = ds_hv_slot(ds, slot);
	const struct ds_view *v;

	if (!s)
		return -PROTO_E_NO_SLOT;
	if ((unsigned int)c >= DS_NR_CONSUMERS)
		return -PROTO_E_INTERNAL;
	if (ds_busy(ds))
		return -PROTO_E_BUSY;
	v = &ds->slots[slot].view[c];
	if (!v->gen || v->gen != gen || !v->bits)
		return -PROTO_E_STALE;
	*bits = v->bits;
	*npages = s->npages;
	return 0;
}
