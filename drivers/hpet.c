/* SPDX-License-Identifier: MIT */
#include "drivers/hpet.h"

u32 hpet_read32(const struct hpet *h, u32 reg)
{
	return *(volatile const u32 *)(h->regs + reg);
}

void hpet_write32(const struct hpet *h, u32 reg, u32 val)
{
	*(volatile u32 *)(h->regs + reg) = val;
}

/*
 * A 64-bit register read as two halves. The main counter may carry from
 * the low into the high half between the reads: read high, low, high again
 * and retry if the high half moved (bounded: it moves at most once per 2^32
 * ticks).
 */
u64 hpet_read64(const struct hpet *h, u32 reg)
{
	u32 hi, lo, hi2;
	unsigned int tries;

	for (tries = 0; tries < 4; tries++) {
		hi = hpet_read32(h, reg + 4);
		lo = hpet_read32(h, reg);
		hi2 = hpet_read32(h, reg + 4);
		if (hi == hi2)
			break;
	}
	return ((u64)hi2 << 32) | lo;
}

int hpet_probe(struct hpet *h, u64 base, const char **why)
{
	u64 cap;

	h->regs = (volatile u8 *)(uintptr_t)base;
	h->timer = -1;
	h->ticks = 0;
	cap = hpet_read64(h, HPET_GCAP_ID);
	if (cap == ~0ull || cap == 0) {
		*why = "nothing answers at the HPET's address";
		return -1;
	}
	h->period_fs = cap >> HPET_GCAP_PERIOD_FS_SHIFT;
	/* Spec 2.3.4: the period is non-zero and at most 100 ns. */
	if (h->period_fs == 0 || h->period_fs > HPET_MAX_PERIOD_FS) {
		*why = "HPET counter period out of the spec's range";
		return -1;
	}
	h->nr_timers =
	    (unsigned int)((cap >> HPET_GCAP_NUM_TIM_SHIFT) & HPET_GCAP_NUM_TIM_MASK) + 1;
	return 0;
}

int hpet_pick_fsb_timer(struct hpet *h, const char **why)
{
	bool legacy = hpet_read32(h, HPET_GEN_CONF) & HPET_GEN_LEG_RT_CNF;
	int n, pick = -1;

	for (n = (int)h->nr_timers - 1; n >= 0; n--) {
		u32 conf = hpet_read32(h, HPET_TN_CONF(n));

		/*
		 * An enabled comparator means the firmware (or whoever ran
		 * before) uses the HPET: taking it, or hiding the HPET from
		 * its owner, would break that user.
		 */
		if (conf & HPET_TN_INT_ENB_CNF) {
			*why = "the firmware already uses the HPET (a comparator has its interrupt "
			       "enabled)";
			return -1;
		}
		if (pick >= 0 || !(conf & HPET_TN_FSB_INT_DEL_CAP))
			continue;
		/* Spec 2.3.5: legacy replacement routing overrides timers 0 and 1. */
		if (legacy && n <= 1)
			continue;
		pick = n;
	}
	if (pick < 0) {
		*why = "no HPET comparator can deliver through FSB (Tn_FSB_INT_DEL_CAP; QEMU: "
		       "-global hpet.msi=on)";
		return -1;
	}
	h->timer = pick;
	h->periodic = hpet_read32(h, HPET_TN_CONF(pick)) & HPET_TN_PER_INT_CAP;
	return pick;
}

void hpet_tick_start(struct hpet *h, u32 period_ticks, u32 msi_addr, u32 msi_data)
{
	unsigned int n = (unsigned int)h->timer;
	u32 conf, gen, first;

	h->period_ticks = period_ticks;
	/*
	 * 32-bit mode: one register write sets the comparator, and the tick
	 * test is a 32-bit wrapping compare (periods are far below 2^31 ticks).
	 * Interrupt off while programming; edge (FSB delivery is edge only).
	 */
	conf = hpet_read32(h, HPET_TN_CONF(n));
	conf &= ~(u32)(HPET_TN_INT_ENB_CNF | HPET_TN_TYPE_PERIODIC | HPET_TN_INT_TYPE_LEVEL |
		       HPET_TN_VAL_SET_CNF | HPET_TN_INT_ROUTE_MASK);
	conf |= HPET_TN_32MODE_CNF | HPET_TN_FSB_EN_CNF;
	hpet_write32(h, HPET_TN_CONF(n), conf);
	/* Spec 2.3.10: FSB_INT_VAL in bits 31:0, FSB_INT_ADDR in bits 63:32. */
	hpet_write32(h, HPET_TN_FSB_ROUTE(n), msi_data);
	hpet_write32(h, HPET_TN_FSB_ROUTE(n) + 4, msi_addr);

	gen = hpet_read32(h, HPET_GEN_CONF);
	if (!(gen & HPET_GEN_ENABLE_CNF))
		hpet_write32(h, HPET_GEN_CONF, gen | HPET_GEN_ENABLE_CNF);

	first = hpet_read32(h, HPET_MAIN_COUNTER) + period_ticks;
	h->expected = first;
	if (h->periodic) {
		/*
		 * Spec 2.3.9.2.2 "Periodic Mode": with Tn_VAL_SET_CNF the write
		 * sets the next match; the following write (the bit clears
		 * itself) sets the period. Linux's hpet_set_periodic does the
		 * same two writes (some HPETs need the second one).
		 */
		hpet_write32(h, HPET_TN_CONF(n),
			     conf | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET_CNF);
		hpet_write32(h, HPET_TN_COMPARATOR(n), first);
		hpet_write32(h, HPET_TN_COMPARATOR(n), period_ticks);
		conf |= HPET_TN_TYPE_PERIODIC;
	} else {
		hpet_write32(h, HPET_TN_COMPARATOR(n), first);
	}
	hpet_write32(h, HPET_TN_CONF(n), conf | HPET_TN_INT_ENB_CNF);
}

bool hpet_tick_claim(struct hpet *h)
{
	u32 now = hpet_read32(h, HPET_MAIN_COUNTER);

	h->last_now = now;
	if ((s32)(now - h->expected) < 0) {
		if (h->periodic && h->ticks &&
		    now - h->last_due < h->period_ticks / HPET_ECHO_FRACTION) {
			h->echoes++;
			return true;
		}
		return false;
	}
	h->ticks++;
	h->last_due = h->expected;
	if (h->periodic) {
		/* Ticks missed while the host was busy were merged into one NMI. */
		while ((s32)(now - h->expected) >= 0)
			h->expected += h->period_ticks;
		h->last_due = h->expected - h->period_ticks; /* the latest match at or before now */
		return true;
	}
	/* One-shot: the next match must lie ahead of the counter, or it never comes. */
	h->last_due = now;
	h->expected = now + h->period_ticks;
	hpet_write32(h, HPET_TN_COMPARATOR((unsigned int)h->timer), h->expected);
	return true;
}
