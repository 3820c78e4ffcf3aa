// SPDX-License-Identifier: MIT
/*
 * The processor's half of nested paging, for host tests: see hw_model.h.
 *
 * Memory ordering: the tables are shared with mmu/, which changes entries with
 * atomic operations; the walk reads every entry with an acquire load, and sets
 * accessed/dirty flags with a sequentially consistent compare-exchange against
 * the exact value it read, as the processor does with a locked operation
 * (SDM Vol. 3A 4.8 "Accessed and Dirty Flags": "the processor uses locked
 * operations"; AMD APM Vol. 2 5.4.2 "Accessed (A) Bit"). If the entry changed
 * since the walk read it, the update fails and the access walks again: the
 * processor never sets D in an entry it did not see as writable.
 */
#include "hw_model.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enough for a write to survive a fault, a split, a PML-full exit and a few
 * harvests stealing its write access; far below "stuck". */
#define HW_MAX_EXITS 10000
#define HW_MAX_AD_RACES 100000

/* The vCPU whose guest_mode this thread holds, if any. */
static _Thread_local struct hw_vcpu *hw_cur_vcpu;

static u64 hw_rand(struct hw_vcpu *v)
{
	/* xorshift64*: per-vCPU, reproducible from the machine seed. */
	v->rng ^= v->rng >> 12;
	v->rng ^= v->rng << 25;
	v->rng ^= v->rng >> 27;
	return v->rng * 0x2545F4914F6CDD1Dull;
}

int hw_machine_init(struct hw_machine *m, enum hw_format fmt, int nr_vcpus,
		    u64 *(*hpa_to_table)(hpa_t), const struct hw_handlers *h, u64 seed)
{
	memset(m, 0, sizeof(*m));
	m->fmt = fmt;
	m->h = *h;
	m->hpa_to_table = hpa_to_table;
	m->nr_vcpus = nr_vcpus;
	m->vcpus = calloc(nr_vcpus, sizeof(*m->vcpus));
	if (!m->vcpus)
		return -ENOMEM;
	for (int i = 0; i < nr_vcpus; i++) {
		struct hw_vcpu *v = &m->vcpus[i];

		v->m = m;
		v->id = i;
		pthread_mutex_init(&v->guest_mode, NULL);
		pthread_mutex_init(&v->pml_lock, NULL);
		v->pml_index = HW_PML_ENTRIES - 1;
		v->pml_buf = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
		if (!v->pml_buf)
			return -ENOMEM;
		memset(v->pml_buf, 0, PAGE_SIZE);
		v->rng = (seed + 1) * 0x9E3779B97F4A7C15ull + (u64)i * 0xBF58476D1CE4E5B9ull;
		if (!v->rng)
			v->rng = 1;
	}
	return 0;
}

void hw_machine_destroy(struct hw_machine *m)
{
	for (int i = 0; i < m->nr_vcpus; i++) {
		pthread_mutex_destroy(&m->vcpus[i].guest_mode);
		pthread_mutex_destroy(&m->vcpus[i].pml_lock);
		free(m->vcpus[i].pml_buf);
	}
	free(m->vcpus);
	m->vcpus = NULL;
}

static void guest_enter(struct hw_vcpu *v)
{
	pthread_mutex_lock(&v->guest_mode);
	hw_cur_vcpu = v;
}

static void guest_exit(struct hw_vcpu *v)
{
	hw_cur_vcpu = NULL;
	pthread_mutex_unlock(&v->guest_mode);
}

/* ---- TLB ---- */

static unsigned int tlb_set(u64 tag)
{
	return (unsigned int)((tag ^ (tag >> 8) ^ (tag >> 17)) % HW_TLB_SETS);
}

static struct hw_tlb_entry *tlb_lookup(struct hw_vcpu *v, gfn_t gfn)
{
	/* Larger pages first; after a split the mmu must flush the old 2M/1G
	 * translation before it matters (it keeps the same frames, so using
	 * either is correct until permissions change). */
	for (int level = 3; level >= 1; level--) {
		u64 tag = gfn >> (HW_LEVEL_BITS * (level - 1));
		struct hw_tlb_entry *e = &v->tlb[level - 1][tlb_set(tag)];

		if (e->level == level && e->tag == tag)
			return e;
	}
	return NULL;
}

static void tlb_fill(struct hw_vcpu *v, const struct hw_tlb_entry *n)
{
	v->tlb[n->level - 1][tlb_set(n->tag)] = *n;
}

static void tlb_clear(struct hw_vcpu *v)
{
	memset(v->tlb, 0, sizeof(v->tlb));
	memset(v->pde_cache, 0, sizeof(v->pde_cache));
	v->n_flush++;
}

unsigned int hw_tlb_count_writable(struct hw_vcpu *v)
{
	unsigned int n = 0;

	for (int l = 0; l < 3; l++)
		for (int i = 0; i < HW_TLB_SETS; i++)
			n += v->tlb[l][i].level && v->tlb[l][i].writable;
	return n;
}

static bool flush_dropped(struct hw_machine *m)
{
	int n = atomic_load(&m->drop_flushes);

	while (n > 0) {
		if (atomic_compare_exchange_weak(&m->drop_flushes, &n, n - 1)) {
			atomic_fetch_add(&m->flushes_dropped, 1);
			return true;
		}
	}
	return false;
}

static void flush_one(struct hw_vcpu *v)
{
	if (hw_cur_vcpu == v) {
		tlb_clear(v);
		return;
	}
	/* A thread in guest mode of one vCPU that waits for another would
	 * deadlock against that vCPU flushing this one: no handler is ever
	 * called in guest mode, so this cannot happen. */
	if (hw_cur_vcpu) {
		fprintf(stderr, "hw_model: flush of vCPU %d from guest mode of vCPU %d\n",
			v->id, hw_cur_vcpu->id);
		abort();
	}
	pthread_mutex_lock(&v->guest_mode);
	tlb_clear(v);
	pthread_mutex_unlock(&v->guest_mode);
}

void hw_flush_vcpu(struct hw_vcpu *v)
{
	if (flush_dropped(v->m))
		return;
	flush_one(v);
}

void hw_flush_root(struct hw_machine *m, hpa_t root_hpa)
{
	if (flush_dropped(m))
		return;
	for (int i = 0; i < m->nr_vcpus; i++) {
		struct hw_vcpu *v = &m->vcpus[i];

		/* A vCPU that switches roots concurrently empties its TLB in
		 * the same guest_mode section as it stores the new root, so
		 * skipping it on the new value loses nothing. */
		if (!root_hpa || atomic_load(&v->root_hpa) == root_hpa)
			flush_one(v);
	}
}

void hw_vcpu_kick(struct hw_vcpu *v)
{
	if (hw_cur_vcpu == v)
		return;
	pthread_mutex_lock(&v->guest_mode);
	pthread_mutex_unlock(&v->guest_mode);
}

void hw_vcpu_set_root(struct hw_vcpu *v, hpa_t root_hpa)
{
	guest_enter(v);
	atomic_store(&v->root_hpa, root_hpa);
	memset(v->tlb, 0, sizeof(v->tlb));
	memset(v->pde_cache, 0, sizeof(v->pde_cache));
	guest_exit(v);
}

/* ---- the walk ---- */

static u64 entry_load(u64 *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static bool entry_cmpxchg(u64 *p, u64 old, u64 new)
{
	return __atomic_compare_exchange_n(p, &old, new, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

static bool ept_present(u64 e)
{
	return e & HW_EPT_RWX;
}

static bool is_leaf(enum hw_format fmt, u64 e, int level)
{
	if (level == 1)
		return true;
	if (level == 4)
		return false;
	return e & (fmt == HW_FMT_NPT ? HW_NPT_PS : HW_EPT_PS);
}

/*
 * Reserved-bit checks. EPT: "EPT Misconfigurations" lists W without R, bits
 * 7:3 of a non-leaf entry, bit 7 of a PML4E, a reserved memory type, and the
 * address bits below the page size of a large page. NPT (long mode, APM Vol. 2
 * 5.3.1 and 5.4): PS in a PML4E and the low address bits of a large page are
 * MBZ; a violation is a #NPF with RSV set.
 */
static bool entry_reserved(enum hw_format fmt, u64 e, int level)
{
	bool leaf = is_leaf(fmt, e, level);

	if (fmt == HW_FMT_NPT) {
		if (level == 4 && (e & HW_NPT_PS))
			return true;
		if (leaf && level > 1 &&
		    (e & GENMASK_ULL(hw_level_shift(level) - 1, PAGE_SHIFT + 1)))
			return true;
		return false;
	}
	if ((e & (HW_EPT_R | HW_EPT_W)) == HW_EPT_W)
		return true;
	if (level == 4 && (e & HW_EPT_PS))
		return true;
	if (!leaf)
		return e & GENMASK_ULL(7, 3);
	if (HW_EPT_MEMTYPE_RESERVED((e & HW_EPT_MEMTYPE_MASK) >> 3))
		return true;
	if (level > 1 && (e & GENMASK_ULL(hw_level_shift(level) - 1, PAGE_SHIFT)))
		return true;
	return false;
}

static u64 ept_qual(bool write, bool r, bool w, bool x)
{
	return (write ? HW_EPT_VIOL_WRITE : HW_EPT_VIOL_READ) | (r ? HW_EPT_VIOL_READABLE : 0) |
	       (w ? HW_EPT_VIOL_WRITABLE : 0) | (x ? HW_EPT_VIOL_EXECUTABLE : 0);
}

static u64 npt_errcode(bool write, bool present, bool rsv)
{
	/* APM 15.25.5 "Nested Table Walk": nested-table accesses are user
	 * accesses, so U is always set in the error code. */
	return (present ? HW_PFERR_P : 0) | (write ? HW_PFERR_W : 0) | HW_PFERR_U |
	       (rsv ? HW_PFERR_RSV : 0) | HW_PFERR_GUEST_FINAL;
}

enum hw_walk_result hw_walk(struct hw_vcpu *v, gpa_t gpa, enum hw_access acc,
			    struct hw_tlb_entry *out, struct hw_fault *f)
{
	struct hw_machine *m = v->m;
	enum hw_format fmt = m->fmt;
	bool write = acc == HW_WRITE;
	bool ad = hw_format_has_ad(fmt);
	u64 *ptep[HW_LEVELS + 1] = { 0 };
	u64 val[HW_LEVELS + 1] = { 0 };
	bool r = true, w = true, x = true, user = true;
	hpa_t table = atomic_load(&v->root_hpa);
	int level, leaf_level = 0, top = HW_LEVELS;
	hpa_t pde_table = 0;
	u64 pde_tag = (gpa >> 21) + 1;
	unsigned int pde_set = tlb_set(pde_tag);

	memset(f, 0, sizeof(*f));
	f->gpa = gpa;
	f->write = write;

	/* A cached PDE: permissions of the upper levels were all granted when
	 * it was cached (only entries allowing the access are cached, and
	 * mmu/'s non-leaf entries grant everything), A already set there. */
	if (v->pde_cache[pde_set].tag == pde_tag) {
		table = v->pde_cache[pde_set].pt;
		top = 1;
		v->n_pde_hit++;
	}

	for (level = top; level >= 1; level--) {
		u64 *p = m->hpa_to_table(table) + hw_index(gpa, level);
		u64 e = entry_load(p);

		f->level = level;
		f->entry = e;
		if (fmt == HW_FMT_NPT ? !(e & HW_NPT_P) : !ept_present(e)) {
			f->exit_info = fmt == HW_FMT_NPT ? npt_errcode(write, false, false)
							 : ept_qual(write, false, false, false);
			return HW_WALK_VIOLATION;
		}
		if (entry_reserved(fmt, e, level)) {
			f->exit_info = fmt == HW_FMT_NPT ? npt_errcode(write, true, true) : 0;
			return HW_WALK_MISCONFIG;
		}
		ptep[level] = p;
		val[level] = e;
		if (fmt == HW_FMT_NPT) {
			w &= !!(e & HW_NPT_RW);
			user &= !!(e & HW_NPT_US);
			x &= !(e & HW_NPT_NX);
		} else {
			r &= !!(e & HW_EPT_R);
			w &= !!(e & HW_EPT_W);
			x &= !!(e & HW_EPT_X);
		}
		if (is_leaf(fmt, e, level)) {
			leaf_level = level;
			break;
		}
		table = e & HW_ADDR_MASK;
		if (level == 2 && w && (fmt == HW_FMT_NPT ? user : r))
			pde_table = table; /* upper levels grant everything */
	}

	if (fmt == HW_FMT_NPT) {
		if (!user || (write && !w)) {
			f->exit_info = npt_errcode(write, true, false);
			return HW_WALK_VIOLATION;
		}
	} else if (!r || (write && !w)) {
		f->exit_info = ept_qual(write, r, w, x);
		return HW_WALK_VIOLATION;
	}

	u64 a_mask = fmt == HW_FMT_NPT ? HW_NPT_A : HW_EPT_A;
	u64 d_mask = fmt == HW_FMT_NPT ? HW_NPT_D : HW_EPT_D;
	u64 leaf = val[leaf_level];
	bool set_d = ad && write && !(leaf & d_mask);

	if (ad) {
		bool need = set_d;

		for (level = top; level >= leaf_level; level--)
			need |= !(val[level] & a_mask);
		/* SDM "Page-Modification Logging": before setting an accessed or
		 * dirty flag with PML on, an index outside 0..511 is a log-full
		 * VM exit; no flag is set and the access does not happen. */
		if (need && v->pml_enabled && v->pml_index >= HW_PML_ENTRIES)
			return HW_WALK_PML_FULL;
		for (level = top; level > leaf_level; level--) {
			if (val[level] & a_mask)
				continue;
			if (!entry_cmpxchg(ptep[level], val[level], val[level] | a_mask))
				return HW_WALK_AD_RACE;
		}
		u64 nl = leaf | a_mask | (set_d ? d_mask : 0);

		if (nl != leaf) {
			if (!entry_cmpxchg(ptep[leaf_level], leaf, nl))
				return HW_WALK_AD_RACE;
			leaf = nl;
		}
		/* Only a dirty flag going from 0 to 1 is logged. */
		if (set_d && v->pml_enabled) {
			gpa_t logged = m->pml_keep_offset ? gpa : (gpa & PAGE_MASK);

			v->pml_buf[v->pml_index] = logged;
			v->pml_index--;
			v->n_pml_logged++;
		}
	}

	/* Cache the PDE only for a translation that completed (no fault). */
	if (pde_table) {
		v->pde_cache[pde_set].tag = pde_tag;
		v->pde_cache[pde_set].pt = pde_table;
	}

	int shift = hw_level_shift(leaf_level);

	out->level = (u8)leaf_level;
	out->tag = gpa_to_gfn(gpa) >> (HW_LEVEL_BITS * (leaf_level - 1));
	out->hpa = leaf & HW_ADDR_MASK & ~((1ull << shift) - 1);
	out->writable = w;
	out->dirty = !ad || (leaf & d_mask);
	return HW_WALK_OK;
}

/* ---- accesses ---- */

static hpa_t tlb_hpa(const struct hw_tlb_entry *e, gpa_t gpa)
{
	return e->hpa + (gpa & ((1ull << hw_level_shift(e->level)) - 1));
}

static int pml_full_exit(struct hw_vcpu *v)
{
	int ret;

	/* Lock order pml_lock -> guest_mode: leave guest mode first. */
	guest_exit(v);
	ret = hw_pml_drain(v, v->m->h.pml_full, v->m->h.ctx);
	return ret;
}

int hw_pml_drain(struct hw_vcpu *v, int (*drain)(struct hw_vcpu *, const u64 *, u16, void *),
		 void *ctx)
{
	u16 index;
	int ret;

	pthread_mutex_lock(&v->pml_lock);
	guest_enter(v);
	memcpy(v->pml_copy, v->pml_buf, sizeof(v->pml_copy));
	index = v->pml_index;
	v->pml_index = HW_PML_ENTRIES - 1;
	guest_exit(v);
	ret = drain(v, v->pml_copy, index, ctx);
	pthread_mutex_unlock(&v->pml_lock);
	return ret;
}

int hw_access(struct hw_vcpu *v, gpa_t gpa, enum hw_access acc, u64 value)
{
	struct hw_machine *m = v->m;
	bool write = acc == HW_WRITE;
	unsigned int exits = 0, races = 0;
	struct hw_tlb_entry n;
	struct hw_fault f;
	int ret;

	v->n_access++;
	for (;;) {
		guest_enter(v);
		if (m->h.root_ok && !m->h.root_ok(v, m->h.ctx)) {
			guest_exit(v);
			v->n_reload++;
			m->h.reload(v, m->h.ctx);
			if (++exits > HW_MAX_EXITS)
				return -ELOOP;
			continue;
		}
		struct hw_tlb_entry *e = tlb_lookup(v, gpa_to_gfn(gpa));

		if (e) {
			if (!write || (e->writable && e->dirty)) {
				v->n_tlb_hit++;
				if (write)
					m->h.store(v, gpa, tlb_hpa(e, gpa), value, m->h.ctx);
				guest_exit(v);
				return 0;
			}
			/* A write through a read-only or clean translation: the
			 * processor either faults from the TLB (spurious if the
			 * tables allow it now) or walks again to set D. Either way
			 * the cached translation is gone afterwards. */
			bool from_tlb = !e->writable && m->spurious_fault_one_in &&
					hw_rand(v) % m->spurious_fault_one_in == 0;

			e->level = 0;
			if (from_tlb) {
				guest_exit(v);
				memset(&f, 0, sizeof(f));
				f.gpa = gpa;
				f.write = true;
				f.from_tlb = true;
				f.exit_info = m->fmt == HW_FMT_NPT ? npt_errcode(true, true, false)
								   : ept_qual(true, true, false, true);
				v->n_spurious_fault++;
				if (++exits > HW_MAX_EXITS)
					return -ELOOP;
				ret = m->h.fault(v, &f, m->h.ctx);
				if (ret)
					return ret;
				continue;
			}
		}

		v->n_walk++;
		switch (hw_walk(v, gpa, acc, &n, &f)) {
		case HW_WALK_OK:
			tlb_fill(v, &n);
			if (write)
				m->h.store(v, gpa, tlb_hpa(&n, gpa), value, m->h.ctx);
			guest_exit(v);
			return 0;
		case HW_WALK_AD_RACE:
			guest_exit(v);
			v->n_ad_race++;
			if (++races > HW_MAX_AD_RACES)
				return -ELOOP;
			continue;
		case HW_WALK_PML_FULL:
			v->n_pml_full++;
			ret = pml_full_exit(v); /* leaves guest mode */
			if (ret)
				return ret;
			break;
		case HW_WALK_VIOLATION:
			guest_exit(v);
			v->n_fault++;
			ret = m->h.fault(v, &f, m->h.ctx);
			if (ret)
				return ret;
			break;
		case HW_WALK_MISCONFIG:
			guest_exit(v);
			m->h.misconfig(v, &f, m->h.ctx);
			return -EFAULT;
		}
		if (++exits > HW_MAX_EXITS)
			return -ELOOP;
	}
}
