/* SPDX-License-Identifier: MIT */
#include "hv/vhpet.h"

/*
 * MSI address and data (Intel SDM Vol. 3A, 11.11.1 "Message Address Register
 * Format", 11.11.2 "Message Data Register Format"): the address window
 * 0xFEExxxxx, delivery mode in data bits 10:8.
 */
#define MSI_ADDR_WINDOW_MASK 0xfff00000u
#define MSI_ADDR_WINDOW	     0xfee00000u
#define MSI_DATA_DM_SHIFT    8
#define MSI_DATA_DM_MASK     7u
#define MSI_DM_FIXED	     0u
#define MSI_DM_LOWEST	     1u
#define MSI_DM_NMI	     4u

#define LO32 0xffffffffull
#define HI32 0xffffffff00000000ull

static unsigned int vhpet_phys(const struct vhpet *vh, unsigned int g)
{
	return g < vh->taken ? g : g + 1;
}

static u32 rd(const struct vhpet *vh, u32 off)
{
	return hpet_read32(vh->h, off);
}

static void wr(const struct vhpet *vh, u32 off, u32 val)
{
	hpet_write32(vh->h, off, val);
}

static u64 phys_counter(const struct vhpet *vh)
{
	return hpet_read64(vh->h, HPET_MAIN_COUNTER);
}

static u64 guest_counter(const struct vhpet *vh)
{
	return (vh->enabled ? phys_counter(vh) + vh->offset : vh->frozen) & vh->counter_mask;
}

/* Spec 2.3.8: a comparator without Tn_SIZE_CAP, or in Tn_32MODE_CNF, compares 32 bits. */
static bool tn_is32(u32 conf)
{
	return !(conf & HPET_TN_SIZE_CAP) || (conf & HPET_TN_32MODE_CNF);
}

static u64 tn_mask(u32 conf)
{
	return tn_is32(conf) ? LO32 : ~0ull;
}

/* Physical comparator p's value in the guest's counter. */
static u64 guest_cmp(const struct vhpet *vh, unsigned int p)
{
	u32 conf = rd(vh, HPET_TN_CONF(p));
	u64 v = rd(vh, HPET_TN_COMPARATOR(p));

	if (!tn_is32(conf))
		v |= (u64)rd(vh, HPET_TN_COMPARATOR(p) + 4) << 32;
	return (v + vh->offset) & tn_mask(conf);
}

/*
 * Guest comparator g to `gval` in the guest's counter: physically
 * gval - offset. Periodic (spec 2.3.9.2.2 "Periodic Mode"): the accumulator
 * through Tn_VAL_SET_CNF, a half at a time (each half needs the bit again:
 * QEMU clears it on every comparator write, as Intel's datasheets program
 * it), then the increment, untranslated, as the value last written.
 */
static void set_cmp(struct vhpet *vh, unsigned int g, u64 gval)
{
	unsigned int p = vhpet_phys(vh, g);
	u32 conf = rd(vh, HPET_TN_CONF(p)) & ~(u32)HPET_TN_VAL_SET_CNF;
	bool is32 = tn_is32(conf);
	u64 pv = (gval - vh->offset) & tn_mask(conf);

	if (!(conf & HPET_TN_TYPE_PERIODIC)) {
		wr(vh, HPET_TN_COMPARATOR(p), (u32)pv);
		if (!is32)
			wr(vh, HPET_TN_COMPARATOR(p) + 4, (u32)(pv >> 32));
		return;
	}
	wr(vh, HPET_TN_CONF(p), conf | (u32)HPET_TN_VAL_SET_CNF);
	wr(vh, HPET_TN_COMPARATOR(p), (u32)pv);
	if (!is32) {
		wr(vh, HPET_TN_CONF(p), conf | (u32)HPET_TN_VAL_SET_CNF);
		wr(vh, HPET_TN_COMPARATOR(p) + 4, (u32)(pv >> 32));
	}
	wr(vh, HPET_TN_COMPARATOR(p), (u32)vh->period[g]);
	if (!is32)
		wr(vh, HPET_TN_COMPARATOR(p) + 4, (u32)(vh->period[g] >> 32));
}

/* A new counter offset: every guest comparator keeps its value in the guest's counter. */
static void set_offset(struct vhpet *vh, u64 off)
{
	u64 gval[HPET_MAX_TIMERS];
	unsigned int g;

	if (!((off ^ vh->offset) & vh->counter_mask))
		return;
	for (g = 0; g < vh->nr_guest; g++)
		gval[g] = guest_cmp(vh, vhpet_phys(vh, g));
	vh->offset = off;
	for (g = 0; g < vh->nr_guest; g++) {
		/*
		 * A periodic comparator whose increment the guest never wrote
		 * (the firmware's) cannot be moved without setting one: left.
		 */
		if ((rd(vh, HPET_TN_CONF(vhpet_phys(vh, g))) & HPET_TN_TYPE_PERIODIC) &&
		    !(vh->period_known & BIT_ULL(g)))
			continue;
		set_cmp(vh, g, gval[g]);
	}
}

/* Physical Tn_INT_ENB_CNF: the guest's, held off while the guest has the counter halted. */
static void apply_int_enb(struct vhpet *vh, unsigned int g)
{
	unsigned int p = vhpet_phys(vh, g);
	u32 conf = rd(vh, HPET_TN_CONF(p)) & ~(u32)(HPET_TN_INT_ENB_CNF | HPET_TN_VAL_SET_CNF);

	if (vh->enabled && (vh->int_enb & BIT_ULL(g)))
		conf |= (u32)HPET_TN_INT_ENB_CNF;
	wr(vh, HPET_TN_CONF(p), conf);
}

static bool fsb_addr_ok(u32 addr)
{
	return (addr & MSI_ADDR_WINDOW_MASK) == MSI_ADDR_WINDOW;
}

static bool fsb_data_ok(u32 data)
{
	u32 dm = (data >> MSI_DATA_DM_SHIFT) & MSI_DATA_DM_MASK;

	return dm == MSI_DM_FIXED || dm == MSI_DM_LOWEST || dm == MSI_DM_NMI;
}

/* Physical status bits of the guest's comparators -> the guest's numbering, and back. */
static u32 sta_to_guest(const struct vhpet *vh, u32 phys)
{
	u32 out = 0;
	unsigned int g;

	for (g = 0; g < vh->nr_guest; g++)
		if (phys & BIT_ULL(vhpet_phys(vh, g)))
			out |= (u32)BIT_ULL(g);
	return out;
}

static u32 sta_to_phys(const struct vhpet *vh, u32 guest)
{
	u32 out = 0;
	unsigned int g;

	for (g = 0; g < vh->nr_guest; g++)
		if (guest & BIT_ULL(g))
			out |= (u32)BIT_ULL(vhpet_phys(vh, g));
	return out;
}

int vhpet_init(struct vhpet *vh, struct hpet *h, const char **why)
{
	unsigned int g;

	*vh = (struct vhpet){0};
	pt_spin_init(&vh->lock);
	if (h->timer < 2 || h->nr_timers < 3 || h->nr_timers > HPET_MAX_TIMERS ||
	    (unsigned int)h->timer >= h->nr_timers) {
		*why = "the HPET cannot be shared: the tick's comparator would be 0 or 1 (legacy "
		       "replacement routing) or the guest would have none";
		return -1;
	}
	vh->h = h;
	vh->taken = (unsigned int)h->timer;
	vh->nr_guest = h->nr_timers - 1;
	vh->counter_mask = (hpet_read64(h, HPET_GCAP_ID) & HPET_GCAP_COUNT_SIZE_CAP) ? ~0ull : LO32;
	/* As the firmware left it: the counter maybe halted, the comparators' interrupts. */
	vh->enabled = rd(vh, HPET_GEN_CONF) & HPET_GEN_ENABLE_CNF;
	if (!vh->enabled)
		vh->frozen = phys_counter(vh) & vh->counter_mask;
	for (g = 0; g < vh->nr_guest; g++)
		if (rd(vh, HPET_TN_CONF(vhpet_phys(vh, g))) & HPET_TN_INT_ENB_CNF)
			vh->int_enb |= (u32)BIT_ULL(g);
	return 0;
}

/* Spec 2.3.4: NUM_TIM_CAP (bits 12:8) is the number of the last comparator. */
u32 vhpet_guest_gcap_lo(const struct vhpet *vh)
{
	u32 cap = rd(vh, HPET_GCAP_ID);

	cap &= ~(u32)(HPET_GCAP_NUM_TIM_MASK << HPET_GCAP_NUM_TIM_SHIFT);
	return cap | (vh->nr_guest - 1) << HPET_GCAP_NUM_TIM_SHIFT;
}

/* Guest comparator g's register `r` (offset in its 0x20-byte block), or -1: not the guest's. */
static int tn_reg(const struct vhpet *vh, u32 off, unsigned int *g, u32 *r)
{
	if (off < HPET_TN_FIRST || off >= HPET_MMIO_SIZE)
		return -1;
	*g = (off - HPET_TN_FIRST) / HPET_TN_STRIDE;
	*r = (off - HPET_TN_FIRST) % HPET_TN_STRIDE;
	return *g < vh->nr_guest ? 0 : -1;
}

static u32 read32(struct vhpet *vh, u32 off)
{
	unsigned int g, p;
	u32 r, conf;

	switch (off) {
	case HPET_GCAP_ID:
		return vhpet_guest_gcap_lo(vh);
	case HPET_GCAP_ID + 4:
		return rd(vh, off);
	case HPET_GEN_CONF:
		return (rd(vh, off) & ~(u32)HPET_GEN_ENABLE_CNF) |
		       (vh->enabled ? (u32)HPET_GEN_ENABLE_CNF : 0);
	case HPET_GINTR_STA:
		return sta_to_guest(vh, rd(vh, off));
	case HPET_MAIN_COUNTER:
		return (u32)guest_counter(vh);
	case HPET_MAIN_COUNTER + 4:
		return (u32)(guest_counter(vh) >> 32);
	}
	/* Reserved registers, absent comparators (the taken one among them), past the block. */
	if (tn_reg(vh, off, &g, &r))
		return 0;
	p = vhpet_phys(vh, g);
	switch (r) {
	case HPET_TN_CONF(0) - HPET_TN_FIRST:
		conf = rd(vh, HPET_TN_CONF(p)) & ~(u32)(HPET_TN_INT_ENB_CNF | HPET_TN_VAL_SET_CNF);
		if (vh->int_enb & BIT_ULL(g))
			conf |= (u32)HPET_TN_INT_ENB_CNF;
		if (vh->val_set & BIT_ULL(g))
			conf |= (u32)HPET_TN_VAL_SET_CNF;
		return conf;
	case HPET_TN_COMPARATOR(0) - HPET_TN_FIRST:
		return (u32)guest_cmp(vh, p);
	case HPET_TN_COMPARATOR(0) - HPET_TN_FIRST + 4:
		return (u32)(guest_cmp(vh, p) >> 32);
	case HPET_TN_CONF(0) - HPET_TN_FIRST + 4: /* Tn_INT_ROUTE_CAP */
	case HPET_TN_FSB_ROUTE(0) - HPET_TN_FIRST:
	case HPET_TN_FSB_ROUTE(0) - HPET_TN_FIRST + 4:
		return rd(vh, HPET_TN_FIRST + p * HPET_TN_STRIDE + r);
	}
	return 0;
}

static void write_gen_conf(struct vhpet *vh, u32 val)
{
	u32 phys = rd(vh, HPET_GEN_CONF);
	bool en = val & HPET_GEN_ENABLE_CNF;
	unsigned int g;

	/* The counter keeps running for the tick; the legacy route is the guest's. */
	wr(vh, HPET_GEN_CONF,
	   (phys & ~(u32)HPET_GEN_LEG_RT_CNF) | (val & (u32)HPET_GEN_LEG_RT_CNF) |
	       (u32)HPET_GEN_ENABLE_CNF);
	if (en == vh->enabled)
		return;
	if (!en) {
		vh->frozen = guest_counter(vh);
		vh->enabled = false;
	} else {
		set_offset(vh, vh->frozen - phys_counter(vh));
		vh->enabled = true;
	}
	for (g = 0; g < vh->nr_guest; g++)
		apply_int_enb(vh, g);
}

/*
 * Spec 2.3.7: the counter should be written only while halted; a write
 * while it runs moves it too (here: at once).
 */
static void write_counter(struct vhpet *vh, u64 val, u64 mask)
{
	u64 nv = ((guest_counter(vh) & ~mask) | (val & mask)) & vh->counter_mask;

	if (!vh->enabled)
		vh->frozen = nv;
	else
		set_offset(vh, nv - phys_counter(vh));
}

static void write_cmp(struct vhpet *vh, unsigned int g, u64 val, u64 mask, bool val_set)
{
	unsigned int p = vhpet_phys(vh, g);
	u32 conf = rd(vh, HPET_TN_CONF(p));

	if (!(conf & HPET_TN_TYPE_PERIODIC)) {
		set_cmp(vh, g, (guest_cmp(vh, p) & ~mask) | (val & mask));
		return;
	}
	vh->period[g] = (vh->period[g] & ~mask) | (val & mask);
	vh->period_known |= (u32)BIT_ULL(g);
	if (val_set) {
		set_cmp(vh, g, (guest_cmp(vh, p) & ~mask) | (val & mask));
		return;
	}
	/* Without Tn_VAL_SET_CNF a periodic comparator's write is its increment. */
	if (mask & LO32)
		wr(vh, HPET_TN_COMPARATOR(p), (u32)val);
	if (mask & HI32)
		wr(vh, HPET_TN_COMPARATOR(p) + 4, (u32)(val >> 32));
}

static int write_tn_conf(struct vhpet *vh, unsigned int g, u32 val, const char **why)
{
	unsigned int p = vhpet_phys(vh, g);
	int refused = 0;

	vh->val_set =
	    (vh->val_set & ~(u32)BIT_ULL(g)) | ((val & HPET_TN_VAL_SET_CNF) ? (u32)BIT_ULL(g) : 0);
	vh->int_enb =
	    (vh->int_enb & ~(u32)BIT_ULL(g)) | ((val & HPET_TN_INT_ENB_CNF) ? (u32)BIT_ULL(g) : 0);
	if ((val & HPET_TN_FSB_EN_CNF) && (!fsb_addr_ok(rd(vh, HPET_TN_FSB_ROUTE(p) + 4)) ||
					   !fsb_data_ok(rd(vh, HPET_TN_FSB_ROUTE(p))))) {
		val &= ~(u32)HPET_TN_FSB_EN_CNF;
		*why = "FSB delivery enabled while its route is not an MSI to a CPU (fixed, "
		       "lowest priority or NMI): Tn_FSB_EN_CNF dropped";
		refused = 1;
	}
	val &= ~(u32)(HPET_TN_INT_ENB_CNF | HPET_TN_VAL_SET_CNF);
	if (vh->enabled && (vh->int_enb & BIT_ULL(g)))
		val |= (u32)HPET_TN_INT_ENB_CNF;
	wr(vh, HPET_TN_CONF(p), val);
	return refused;
}

static int write32(struct vhpet *vh, u32 off, u32 val, const char **why)
{
	unsigned int g, p;
	u32 r;

	switch (off) {
	case HPET_GCAP_ID:
	case HPET_GCAP_ID + 4:
		return 0; /* read-only */
	case HPET_GEN_CONF:
		write_gen_conf(vh, val);
		return 0;
	case HPET_GEN_CONF + 4:
		return 0; /* reserved */
	case HPET_GINTR_STA:
		wr(vh, HPET_GINTR_STA, sta_to_phys(vh, val));
		return 0;
	case HPET_GINTR_STA + 4:
		return 0;
	case HPET_MAIN_COUNTER:
		write_counter(vh, val, LO32);
		return 0;
	case HPET_MAIN_COUNTER + 4:
		write_counter(vh, (u64)val << 32, HI32);
		return 0;
	}
	if (tn_reg(vh, off, &g, &r)) {
		if (off >= HPET_TN_FIRST && off < HPET_MMIO_SIZE) {
			*why = "a comparator the guest's HPET does not have (the management tick's "
			       "is one of them)";
			return 1;
		}
		return 0; /* reserved: ignored, as by the hardware */
	}
	p = vhpet_phys(vh, g);
	switch (r) {
	case HPET_TN_CONF(0) - HPET_TN_FIRST:
		return write_tn_conf(vh, g, val, why);
	case HPET_TN_COMPARATOR(0) - HPET_TN_FIRST:
	case HPET_TN_COMPARATOR(0) - HPET_TN_FIRST + 4: {
		bool vs = vh->val_set & BIT_ULL(g);

		vh->val_set &= ~(u32)BIT_ULL(g);
		if (r & 4)
			write_cmp(vh, g, (u64)val << 32, HI32, vs);
		else
			write_cmp(vh, g, val, LO32, vs);
		return 0;
	}
	case HPET_TN_FSB_ROUTE(0) - HPET_TN_FIRST:
		if (!fsb_data_ok(val)) {
			*why = "FSB interrupt value with a delivery mode other than fixed, lowest "
			       "priority or NMI";
			return 1;
		}
		wr(vh, HPET_TN_FSB_ROUTE(p), val);
		return 0;
	case HPET_TN_FSB_ROUTE(0) - HPET_TN_FIRST + 4:
		if (!fsb_addr_ok(val)) {
			*why = "FSB interrupt address outside the MSI window 0xFEExxxxx (a DMA "
			       "write to memory)";
			return 1;
		}
		wr(vh, HPET_TN_FSB_ROUTE(p) + 4, val);
		return 0;
	}
	return 0; /* Tn_INT_ROUTE_CAP (read-only) and the block's reserved quadword */
}

u64 vhpet_read(struct vhpet *vh, u32 off, unsigned int size)
{
	unsigned int g;
	u64 v;
	u32 r;

	pt_spin_lock(&vh->lock);
	vh->accesses++;
	if (size == 8 && off == HPET_MAIN_COUNTER)
		v = guest_counter(vh); /* one read: no carry between the halves */
	else if (size == 8 && !tn_reg(vh, off, &g, &r) &&
		 r == HPET_TN_COMPARATOR(0) - HPET_TN_FIRST)
		v = guest_cmp(vh, vhpet_phys(vh, g));
	else if (size == 8)
		v = read32(vh, off) | (u64)read32(vh, off + 4) << 32;
	else
		v = read32(vh, off);
	pt_spin_unlock(&vh->lock);
	return v;
}

int vhpet_write(struct vhpet *vh, u32 off, unsigned int size, u64 val, const char **why)
{
	unsigned int g;
	int refused;
	u32 r;

	pt_spin_lock(&vh->lock);
	vh->accesses++;
	if (size == 8 && off == HPET_MAIN_COUNTER) {
		write_counter(vh, val, ~0ull);
		refused = 0;
	} else if (size == 8 && !tn_reg(vh, off, &g, &r) &&
		   r == HPET_TN_COMPARATOR(0) - HPET_TN_FIRST) {
		/* One 64-bit write sets the whole accumulator under Tn_VAL_SET_CNF. */
		bool vs = vh->val_set & BIT_ULL(g);

		vh->val_set &= ~(u32)BIT_ULL(g);
		write_cmp(vh, g, val, ~0ull, vs);
		refused = 0;
	} else if (size == 8) {
		refused = write32(vh, off, (u32)val, why);
		refused |= write32(vh, off + 4, (u32)(val >> 32), why);
	} else {
		refused = write32(vh, off, (u32)val, why);
	}
	vh->refused += (u64)refused;
	pt_spin_unlock(&vh->lock);
	return refused;
}
