/* SPDX-License-Identifier: MIT */
/*
 * The HPET (IA-PC HPET Specification 1.0a, 2.3 "Register Definitions"):
 * the hypervisor takes one comparator for itself and has it send an NMI
 * through FSB (MSI-style) delivery, its management tick on SVM (hv/mgmt_tick.c).
 *
 * Registers are read and written 32 bits at a time, low half first, as
 * Linux's hpet_readl/hpet_writel do: QEMU 7.2's HPET model merges the halves
 * of a 64-bit comparator write wrongly (hw/timer/hpet.c, hpet_ram_write keeps
 * the old high half and ORs the new value in), and 32-bit accesses are what
 * every implementation must support (spec 2.3.1 "Register Overview").
 */
#ifndef PT_DRIVERS_HPET_H
#define PT_DRIVERS_HPET_H

#include <pt/types.h>

#define HPET_MMIO_SIZE 0x400u

/* General Capabilities and ID (offset 0x000), spec 2.3.4. */
#define HPET_GCAP_ID		  0x000u
#define HPET_GCAP_NUM_TIM_SHIFT	  8
#define HPET_GCAP_NUM_TIM_MASK	  0x1fu	      /* NUM_TIM_CAP: the number of the last comparator */
#define HPET_GCAP_COUNT_SIZE_CAP  BIT_ULL(13) /* 64-bit main counter */
#define HPET_GCAP_LEG_RT_CAP	  BIT_ULL(15)
#define HPET_GCAP_VENDOR_SHIFT	  16
#define HPET_GCAP_PERIOD_FS_SHIFT 32 /* COUNTER_CLK_PERIOD, femtoseconds per tick */
/* General Configuration (0x010), spec 2.3.5. */
#define HPET_GEN_CONF	    0x010u
#define HPET_GEN_ENABLE_CNF BIT_ULL(0)
#define HPET_GEN_LEG_RT_CNF BIT_ULL(1)
/* General Interrupt Status (0x020), spec 2.3.6: bit N is timer N's, write 1 to clear. */
#define HPET_GINTR_STA 0x020u
/* Main Counter Value (0x0f0), spec 2.3.7. */
#define HPET_MAIN_COUNTER 0x0f0u

/* Timer N Configuration and Capability (0x100 + 0x20 * N), spec 2.3.8. */
#define HPET_TN_CONF(n)		(0x100u + 0x20u * (n))
#define HPET_TN_INT_TYPE_LEVEL	BIT_ULL(1)
#define HPET_TN_INT_ENB_CNF	BIT_ULL(2)
#define HPET_TN_TYPE_PERIODIC	BIT_ULL(3)
#define HPET_TN_PER_INT_CAP	BIT_ULL(4)
#define HPET_TN_SIZE_CAP	BIT_ULL(5) /* 64-bit comparator */
#define HPET_TN_VAL_SET_CNF	BIT_ULL(6)
#define HPET_TN_32MODE_CNF	BIT_ULL(8)
#define HPET_TN_INT_ROUTE_MASK	GENMASK_ULL(13, 9)
#define HPET_TN_FSB_EN_CNF	BIT_ULL(14)
#define HPET_TN_FSB_INT_DEL_CAP BIT_ULL(15)
/* Timer N Comparator Value (0x108 + 0x20 * N), spec 2.3.9. */
#define HPET_TN_COMPARATOR(n) (0x108u + 0x20u * (n))
/* Timer N FSB Interrupt Route (0x110 + 0x20 * N): value (low), address (high), spec 2.3.10. */
#define HPET_TN_FSB_ROUTE(n) (0x110u + 0x20u * (n))
/* Registers 0x100 + 0x20 * N up to 0x3ff belong to timer N (spec 2.3.1 "Register Overview"). */
#define HPET_TN_FIRST	0x100u
#define HPET_TN_STRIDE	0x20u
#define HPET_MAX_TIMERS 32u

/*
 * Periodic mode only (used when no 64-bit comparator can deliver through
 * FSB): QEMU 7.2's periodic comparator fires twice when its timer callback
 * runs exactly at the match (hw/timer/hpet.c hpet_timer: the comparator
 * advances only once the counter is strictly past it, and a zero distance
 * is re-armed as one tick). The second NMI is raised a counter tick later
 * but reaches the host whenever the guest next runs, which can be
 * milliseconds later (seen: 2.9-8.3 ms during dirty-log harvests): NMIs
 * that arrive within 1/4 period of a claimed tick count as that tick. This
 * is why a 64-bit one-shot comparator, which fires once per arming, is
 * preferred.
 */
#define HPET_ECHO_FRACTION 4

/* The spec's upper bound for COUNTER_CLK_PERIOD (100 ns, spec 2.3.4). */
#define HPET_MAX_PERIOD_FS 100000000ull

struct hpet {
	volatile u8 *regs; /* identity-mapped MMIO (host and firmware page tables alike) */
	u64 period_fs;	   /* femtoseconds per main counter tick */
	unsigned int nr_timers;
	int timer; /* the comparator the hypervisor owns, -1 while none */
	/*
	 * false: 64-bit one-shot, re-armed on each tick (preferred: one NMI
	 * per arming). true: 32-bit periodic, compared on the low 32 bits.
	 */
	bool periodic;
	u32 period_ticks; /* tick interval in counter ticks */
	u64 expected;	  /* counter value at which the next tick is due */
	u64 last_due;	  /* ... and at which the last claimed one was */
	u64 last_now;	  /* the counter when the last NMI was looked at */
	/*
	 * One-shot re-armed after its match had already passed (the host was
	 * held up for a whole period between reading the counter and arming):
	 * hardware may never fire that match, so it was armed again further
	 * on, and an NMI from the first arming (QEMU fires a passed match at
	 * once) may still come: the next early NMI is taken as that one.
	 */
	bool late_arm;
	u64 ticks;  /* NMIs claimed as ticks */
	u64 echoes; /* NMIs claimed as doubles of a tick (periodic echo, late arming) */
};

u32 hpet_read32(const struct hpet *h, u32 reg);
void hpet_write32(const struct hpet *h, u32 reg, u32 val);
u64 hpet_read64(const struct hpet *h, u32 reg);

/*
 * Reads the capabilities of the HPET at `base`. 0, or -1 with *why when
 * nothing sane answers there (all-ones, zero or out-of-spec period).
 */
int hpet_probe(struct hpet *h, u64 base, const char **why);
/*
 * A comparator the hypervisor may take: FSB delivery capable, not in use
 * (interrupts disabled), not 0 or 1 (legacy replacement routing, which the
 * guest may switch on, overrides those), and
 * 64-bit (then run one-shot) or else periodic-capable (then run periodic);
 * the highest-numbered such. -1 with *why when there is none, or when any
 * comparator already has its interrupt enabled (someone else uses the HPET).
 */
int hpet_pick_fsb_timer(struct hpet *h, const char **why);
/*
 * Programs the picked comparator: every `period_ticks` counter ticks an FSB
 * message of `msi_data` to `msi_addr` (one-shot re-armed by hpet_tick_claim,
 * or periodic). Starts the main counter if it was stopped.
 */
void hpet_tick_start(struct hpet *h, u32 period_ticks, u32 msi_addr, u32 msi_data);
/*
 * An NMI arrived: was it this comparator's? True when the main counter has
 * reached the tick that was due; the next due tick is then recorded (and
 * armed, for a one-shot comparator). Also true, counted in `echoes`, for the
 * one NMI a late arming may owe, and in periodic mode for an NMI less than
 * HPET_ECHO_FRACTION of a period after the last claimed tick.
 */
bool hpet_tick_claim(struct hpet *h);

#endif /* PT_DRIVERS_HPET_H */
