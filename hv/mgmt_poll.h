/* SPDX-License-Identifier: MIT */
/*
 * How soon the guest must give the management port a turn while it runs:
 * the one place that decides it. The backends only apply the numbers (the
 * VMX preemption timer in TSC ticks through vcpu_ops.set_poll_exit_tsc; the
 * SVM management tick in HPET counter ticks, hv/mgmt_tick.c).
 *
 * Idle, the port needs little: the protocol's credits never let a host send
 * more than the 16-byte receive FIFO holds, and the 10 ms tick serves them
 * (docs/protocol.md). While a reply goes out (hv_control_wants_poll) the
 * transmitter is the limit, and the hypervisor refills it only when it
 * polls. A 16550 says only "the FIFO is empty" (LSR.THRE), and says it one
 * character before the line falls idle: THRE sets when the last byte moves
 * from the FIFO into the transmit shift register, which then takes one
 * character time C to send it (NS16550A data sheet, "Line Status
 * Register", bits 5 and 6). Each poll that finds THRE refills all 16 bytes,
 * 16 C of line time. With a poll every P, THRE may set just after a poll,
 * so the next refill comes up to P later and the line idles up to P - C of
 * every 16 C + (P - C):
 *
 *   busy >= 16 C / (15 C + P)         (P >= C; at P <= C it never idles)
 *
 *   P = 16 C (every FIFO's time, 1.39 ms at 115200)   busy >= 52%
 *   P =  4 C (a quarter of it, 347 us)                busy >= 84%, ~93% on average
 *   P =  2 C (an eighth, 174 us)                      busy >= 94%, ~98.5% on average
 *
 * (on average: THRE's time uniform between two polls, idle (P - C)^2 / 2P).
 * So the port is polled every HV_MGMT_POLL_CHARS = 2 character times while
 * a reply goes out: 173.6 us at 115200 baud, 2 ms at 9600 (10 bits a
 * character: start, 8 data, stop).
 *
 * The cost: 5760 exits a second at 115200 baud, only while a reply is
 * going out. An exit taken for the poll costs about 1-2 us of VM exit and
 * entry on current hardware plus the LSR read (an I/O port read of an
 * LPC Super I/O UART is about 1-2 us): about 2% of the boot CPU.
 * Under QEMU TCG an exit costs 18,000-24,000 TSC cycles of host time
 * (hv/exit.c): about 5%. Faster lines are bounded by HV_MGMT_POLL_MIN_NS
 * (at most 20,000 exits a second, under 6% at 3 us each); slow ones by the
 * idle interval (never slower than idle).
 *
 * Without the line's rate (the UART absent, or a divisor of 0) or, for a
 * timer counting TSC ticks, without the TSC's rate (hv_boot_info.tsc_hz 0)
 * the fixed intervals apply: HV_MGMT_TICK_FAST_US for the HPET tick,
 * HV_MGMT_POLL_TSC_FAST for a TSC-counting timer; hv_init logs which.
 */
#ifndef PT_HV_MGMT_POLL_H
#define PT_HV_MGMT_POLL_H

#include <pt/types.h>

#define HV_MGMT_POLL_CHARS 2u
/* Never faster than this (a line above 460800 baud). */
#define HV_MGMT_POLL_MIN_NS 50000ull
/* Never slower than the idle tick (a line below 9600 baud). */
#define HV_MGMT_POLL_MAX_NS (HV_MGMT_TICK_US * 1000ull)
/* The idle tick and the fixed fast tick when the line's rate is unknown (HPET, SVM). */
#define HV_MGMT_TICK_US	     10000u
#define HV_MGMT_TICK_FAST_US 1000u
/*
 * A timer counting TSC ticks (the VMX preemption timer): its idle interval,
 * whatever the TSC's rate (~1.7 ms at 2.5 GHz), and its fixed fast one when
 * the line's or the TSC's rate is unknown (~100 us at 2.5 GHz).
 */
#define HV_MGMT_POLL_TSC_IDLE (4ull << 20)
#define HV_MGMT_POLL_TSC_FAST (256ull << 10)

/*
 * After the port last wanted fast polls (a reply's last byte taken by the
 * UART), they go on for HV_MGMT_POLL_LINGER more exits of the boot CPU: a
 * host that streams (a snapshot, a long mem read) sends its next request
 * as soon as a reply ends, and its first byte would otherwise wait for an
 * idle-rate poll with the line idle meanwhile (4 Mi TSC ticks of VMX timer:
 * 1.7 ms at 2.5 GHz, 84 ms in Bochs at 50 M ips; 10 ms of SVM tick; once
 * the byte is in, a frame being received keeps the polls fast). 128 polls
 * at 2 characters are 256 character times, 22 ms at 115200 baud: ptctl on
 * a socket answers within a millisecond, a USB serial adapter within its
 * latency timer (1-16 ms). Counted in exits, not time, so it needs no
 * clock; a guest's own exits count too, but those poll anyway (at most
 * every 100 us, hv/exit.c). Cost: 128 exits after each exchange.
 */
#define HV_MGMT_POLL_LINGER 128u

struct hv_mgmt_poll {
	u32 baud;	  /* the line's rate; 0: unknown */
	u64 fast_ns;	  /* from the line; 0 when its rate is unknown */
	u64 fast_tsc;	  /* a TSC-counting timer's fast interval */
	u64 idle_tsc;	  /* and its idle one (HV_MGMT_POLL_TSC_IDLE) */
	bool tsc_derived; /* fast_tsc comes from fast_ns and the TSC's rate */
};

/* The fast interval for a line at `baud` (HV_MGMT_POLL_CHARS, bounded); 0 if baud is 0. */
u64 hv_mgmt_poll_fast_ns(u32 baud);
/* Nanoseconds to ticks of a counter at `hz` (rounded down, at least 1); ns <= 10^7. */
u64 hv_mgmt_poll_ns_to_ticks(u64 ns, u64 hz);
/* Nanoseconds to ticks of an HPET of `period_fs` (rounded down, at least 1, at most 2^32 - 1). */
u32 hv_mgmt_poll_ns_to_hpet(u64 ns, u64 period_fs);
/*
 * After an exit of the boot CPU: whether the next polls come at the fast
 * interval, given that the port wants them (`want`) and the exits left to
 * linger (*linger, reset to HV_MGMT_POLL_LINGER while `want`).
 */
static inline bool hv_mgmt_poll_fast_next(u32 *linger, bool want)
{
	if (want) {
		*linger = HV_MGMT_POLL_LINGER;
		return true;
	}
	if (!*linger)
		return false;
	(*linger)--;
	return true;
}
/* Fills *p for a line at `baud` (0: unknown) and a TSC at `tsc_hz` (0: unknown). */
void hv_mgmt_poll_choose(struct hv_mgmt_poll *p, u32 baud, u64 tsc_hz);

#endif /* PT_HV_MGMT_POLL_H */
