/* SPDX-License-Identifier: MIT */
#include "hv/mgmt_poll.h"

#include "drivers/uart16550.h"

#define NS_PER_S   1000000000ull
#define FS_PER_NS  1000000ull
#define U32_MAX_64 0xffffffffull

u64 hv_mgmt_poll_fast_ns(u32 baud)
{
	u64 ns;

	if (!baud)
		return 0;
	ns = (u64)HV_MGMT_POLL_CHARS * UART_BITS_PER_CHAR * NS_PER_S / baud;
	if (ns < HV_MGMT_POLL_MIN_NS)
		return HV_MGMT_POLL_MIN_NS;
	if (ns > HV_MGMT_POLL_MAX_NS)
		return HV_MGMT_POLL_MAX_NS;
	return ns;
}

u64 hv_mgmt_poll_ns_to_ticks(u64 ns, u64 hz)
{
	/* kHz first: ns <= 10^7 keeps the product in 64 bits up to a 1.8 PHz counter. */
	u64 t = hz / 1000 * ns / (NS_PER_S / 1000);

	return t ? t : 1;
}

u32 hv_mgmt_poll_ns_to_hpet(u64 ns, u64 period_fs)
{
	u64 t = period_fs ? ns * FS_PER_NS / period_fs : U32_MAX_64;

	if (t > U32_MAX_64)
		return (u32)U32_MAX_64;
	return t ? (u32)t : 1;
}

void hv_mgmt_poll_choose(struct hv_mgmt_poll *p, u32 baud, u64 tsc_hz)
{
	p->baud = baud;
	p->fast_ns = hv_mgmt_poll_fast_ns(baud);
	p->idle_tsc = HV_MGMT_POLL_TSC_IDLE;
	p->tsc_derived = p->fast_ns && tsc_hz;
	p->fast_tsc =
	    p->tsc_derived ? hv_mgmt_poll_ns_to_ticks(p->fast_ns, tsc_hz) : HV_MGMT_POLL_TSC_FAST;
	/* A slow line on a slow TSC: never longer than the idle interval. */
	if (p->fast_tsc > p->idle_tsc)
		p->fast_tsc = p->idle_tsc;
}
