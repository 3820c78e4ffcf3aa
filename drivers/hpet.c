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
	int n, wide = -1, periodic = -1;

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
		if (!(conf & HPET_TN_FSB_INT_DEL_CAP))
			continue;
		/*
		 * Spec 2.3.5: legacy replacement routing overrides timers 0
		 * and 1, and the guest keeps the HPET (hv/vhpet.h): that
		 * route is its to switch on, so never 0 or 1.
		 */
		if (n <= 1)
			continue;
		if ((conf & HPET_TN_SIZE_CAP) && wide < 0)
			wide = n;
		if ((conf & HPET_TN_PER_INT_CAP) && periodic < 0)
			periodic = n;
	}
	if (wide < 0 && periodic < 0) {
		*why = "no HPET comparator can deliver through FSB (Tn_FSB_INT_DEL_CAP) and is "
		       "64-bit or periodic, other than 0 and 1 (QEMU: -global hpet.msi=on)";
		return -1;
	}
	h->periodic = wide < 0;
	h->timer = wide >= 0 ? wide : periodic;
	return h->timer;
}

/*
 * One-shot, 64-bit: interrupt off while the comparator's halves change (a
 * half-written comparator must not fire), then on. Spec 2.3.9.2.1
 * "Non-Periodic Mode": it fires when the counter equals the comparator, so
 * a match already passed may never come (until the 64-bit counter wraps):
 * then arm again further on (QEMU fires a passed match at once: the NMI
 * this may add is accepted once, see late_arm).
 */
static void hpet_arm_one_shot(struct hpet *h, u64 when)
{
	unsigned int n = (unsigned int)h->timer, tries;
	u32 conf = hpet_read32(h, HPET_TN_CONF(n)) & ~(u32)HPET_TN_INT_ENB_CNF;

	for (tries = 0; tries < 4; tries++) {
		u64 now;

		hpet_write32(h, HPET_TN_CONF(n), conf);
		hpet_write32(h, HPET_TN_COMPARATOR(n), (u32)when);
		hpet_write32(h, HPET_TN_COMPARATOR(n) + 4, (u32)(when >> 32));
		hpet_write32(h, HPET_TN_CONF(n), conf | HPET_TN_INT_ENB_CNF);
		h->expected = when;
		now = hpet_read64(h, HPET_MAIN_COUNTER);
		if ((s64)(now - when) < 0)
			return;
		h->late_arm = true;
		when = now + h->period_ticks;
	}
}

void hpet_tick_start(struct hpet *h, u32 period_ticks, u32 msi_addr, u32 msi_data)
{
	unsigned int n = (unsigned int)h->timer;
	u32 conf, gen, first;

	h->period_ticks = period_ticks;
	h->late_arm = false;
	/*
	 * Interrupt off while programming; edge (FSB delivery is edge only).
	 * Periodic runs in 32-bit mode: one register write sets its comparator
	 * and the tick test is a 32-bit wrapping compare (periods are far below
	 * 2^31 ticks).
	 */
	conf = hpet_read32(h, HPET_TN_CONF(n));
	conf &= ~(u32)(HPET_TN_INT_ENB_CNF | HPET_TN_TYPE_PERIODIC | HPET_TN_INT_TYPE_LEVEL |
		       HPET_TN_VAL_SET_CNF | HPET_TN_INT_ROUTE_MASK | HPET_TN_32MODE_CNF);
	conf |= HPET_TN_FSB_EN_CNF | (h->periodic ? HPET_TN_32MODE_CNF : 0);
	hpet_write32(h, HPET_TN_CONF(n), conf);
	/* Spec 2.3.10: FSB_INT_VAL in bits 31:0, FSB_INT_ADDR in bits 63:32. */
	hpet_write32(h, HPET_TN_FSB_ROUTE(n), msi_data);
	hpet_write32(h, HPET_TN_FSB_ROUTE(n) + 4, msi_addr);

	gen = hpet_read32(h, HPET_GEN_CONF);
	if (!(gen & HPET_GEN_ENABLE_CNF))
		hpet_write32(h, HPET_GEN_CONF, gen | HPET_GEN_ENABLE_CNF);

	if (!h->periodic) {
		hpet_arm_one_shot(h, hpet_read64(h, HPET_MAIN_COUNTER) + period_ticks);
		return;
	}
	first = hpet_read32(h, HPET_MAIN_COUNTER) + period_ticks;
	h->expected = first;
	/*
	 * Spec 2.3.9.2.2 "Periodic Mode": with Tn_VAL_SET_CNF the write sets
	 * the next match; the following write (the bit clears itself) sets the
	 * period. Linux's hpet_set_periodic does the same two writes (some
	 * HPETs need the second one).
	 */
	hpet_write32(h, HPET_TN_CONF(n), conf | HPET_TN_TYPE_PERIODIC | HPET_TN_VAL_SET_CNF);
	hpet_write32(h, HPET_TN_COMPARATOR(n), first);
	hpet_write32(h, HPET_TN_COMPARATOR(n), period_ticks);
	hpet_write32(h, HPET_TN_CONF(n), conf | HPET_TN_TYPE_PERIODIC | HPET_TN_INT_ENB_CNF);
}

static bool hpet_claim_periodic(struct hpet *h)
{
	u32 now = hpet_read32(h, HPET_MAIN_COUNTER), due = (u32)h->expected;

	h->last_now = now;
	if ((s32)(now - due) < 0) {
		if (h->ticks && now - (u32)h->last_due < h->period_ticks / HPET_ECHO_FRACTION) {
			h->echoes++;
			return true;
		}
		return false;
	}
	h->ticks++;
	/* Ticks missed while the host was busy were merged into one NMI. */
	while ((s32)(now - due) >= 0)
		due += h->period_ticks;
	h->expected = due;
	h->last_due = due - h->period_ticks; /* the latest match at or before now */
	return true;
}

bool hpet_tick_claim(struct hpet *h)
{
	u64 now;

	if (h->periodic)
		return hpet_claim_periodic(h);
	now = hpet_read64(h, HPET_MAIN_COUNTER);
	h->last_now = now;
	if ((s64)(now - h->expected) < 0) {
		if (!h->late_arm)
			return false;
		h->late_arm = false;
		h->echoes++;
		return true;
	}
	h->ticks++;
	h->late_arm = false;
	h->last_due = h->expected;
	/* The next match must lie ahead of the counter, or it never comes. */
	hpet_arm_one_shot(h, now + h->period_ticks);
	return true;
}
