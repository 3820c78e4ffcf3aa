/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the hypervisor's management port as it runs: hv/control.c,
 * the dispatcher (hv/mgmt.c), the dirty-log and copy-on-write sessions, the
 * exit path and the real mmu/ on the simulated machine (tests/hv/host_port.h),
 * fed through its 16-byte UART FIFO. The input is a script of records, so
 * that the fuzzer reaches the commands without having to guess CRCs:
 *   0x00..0x7f  a request: cmd = next byte, length = next byte % 80, payload;
 *               framed with a valid CRC (id = record number)
 *   0x80..0xbf  (b & 0x3f) + 1 raw bytes follow (garbage, cut frames)
 *   0xc0..0xfd  a guest store on vCPU 1 to page (next byte) of slot (b & 1),
 *               through the hardware model: its write fault (a copy while a
 *               copy-on-write snapshot is armed), then the log; none while
 *               the guest is paused
 *   0xfe        a line error (overrun) on the next read
 *   0xff        the transmitter stalls for a while (no room)
 * Each record is followed by one turn of the boot CPU (an exit that polls the
 * port, or a turn of the paused loop). Every frame the hypervisor sends must
 * decode (a bad frame from it traps), it never writes more than the
 * transmitter's room (host_port aborts), and it comes back to rest.
 */
#include "tests/hv/host_port.h"

#include "hv/dirty_session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

static struct {
	struct proto_rx rx;
	u8 rxbuf[PROTO_MAX_FRAME + 8];
	u32 pos;	/* bytes of host_port.tx decoded */
	u32 room_stall; /* turns left with the transmitter stalled */
} host;

/* One turn of the boot CPU, then what it sent is decoded as ptctl would. */
static void turn(void)
{
	if (host.room_stall && !--host.room_stall)
		host_port.tx_room = HOST_PORT_FIFO;
	host_port_poll();
	for (; host.pos < host_port.tx_len; host.pos++)
		if (proto_rx_byte(&host.rx, host_port.tx[host.pos]) == PROTO_RX_BAD)
			__builtin_trap(); /* the hypervisor sent a broken frame */
	host_port.tx_len = host.pos = 0;
}

static void put(u8 b)
{
	/* The host honours the window: it waits (the hypervisor polls) when full. */
	while (!host_port_put(b))
		turn();
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 wire[PROTO_MAX_REQ_WIRE + 8];
	/* Small steps: dirty start/stop/harvest span turns, and requests meet them. */
	static const struct host_machine_config cfg = {
	    .ram0_mib = 1, .step_pages = 64, .seed = 1, .quiet = true};
	struct mgmt *mg;
	u16 id = 1;
	size_t i = 0;

	/* A fresh machine for every input, built again in the same host memory. */
	host_port_init(&cfg);
	mg = host_port_mgmt();
	memset(&host, 0, sizeof(host));
	proto_rx_init(&host.rx, host.rxbuf, sizeof(host.rxbuf));

	while (i < size) {
		u8 k = data[i++];

		if (k < 0x80) {
			struct proto_hdr h = {PROTO_VERSION, 0, id++, 0};
			u32 len, wl;

			if (i + 2 > size)
				break;
			h.cmd = data[i++];
			len = data[i++] % 80;
			if (len > size - i)
				len = (u32)(size - i);
			/* Low bits of k vary the header: flags and, rarely, the version. */
			if (k & 0x40)
				h.flags = k & 3;
			if ((k & 0x3f) == 0x3f)
				h.version = 2;
			wl = proto_frame_encode(wire, sizeof(wire), &h, data + i, len);
			i += len;
			for (u32 j = 0; j < wl; j++)
				put(wire[j]);
		} else if (k < 0xc0) {
			u32 n = (k & 0x3f) + 1;

			for (u32 j = 0; j < n && i < size; j++)
				put(data[i++]);
		} else if (k < 0xfe) {
			/* A store: the write fault (a copy under a snapshot), then the log. */
			if (i < size) {
				const struct hv_slot *s = &host_port.m.vm.slots[k & 1];
				int rc =
				    host_port_store(gfn_to_gpa(s->base_gfn) +
							(u64)data[i++] * PAGE_SIZE + (k & 0x38),
						    k);

				/* Landed, waits for the snapshot's budget, or the guest is paused.
				 */
				if (rc && rc != -EAGAIN && rc != -EBUSY)
					__builtin_trap();
			}
		} else if (k == 0xfe) {
			host_port.line_error_next = true;
		} else {
			host_port.tx_room = 0;
			host.room_stall = 50;
		}
		turn();
	}
	put(0);
	host_port.tx_room = HOST_PORT_FIFO;
	host.room_stall = 0;
	for (int n = 0; n < 20000 && mgmt_wants_poll(mg); n++)
		turn();
	if (mgmt_wants_poll(mg))
		__builtin_trap(); /* never came back to rest */
	if (ds_busy(mg->ds))
		__builtin_trap(); /* the command ended, its session operation did not */
	return 0;
}
