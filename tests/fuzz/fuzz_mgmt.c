/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the hypervisor's command dispatcher (hv/mgmt.c) with the
 * dirty-log session over the real mmu/ (tests/proto/fake_backend.h), fed
 * through an emulated 16-byte UART FIFO. The input is a
 * script of records, so that the fuzzer reaches the commands without having
 * to guess CRCs:
 *   0x00..0x7f  a request: cmd = next byte, length = next byte % 80, payload;
 *               framed with a valid CRC (id = record number)
 *   0x80..0xbf  (b & 0x3f) + 1 raw bytes follow (garbage, cut frames)
 *   0xc0..0xfd  a guest store to page (next byte) of slot (b & 1): its write fault
 *               (a copy while a copy-on-write snapshot is armed), then the log
 *   0xfe        a line error (overrun) on the next read
 *   0xff        the transmitter stalls for a while (tx_room 0)
 * Every frame the dispatcher sends must decode (a bad frame from it traps),
 * it never writes more than tx_room() allows, and it comes back to rest.
 */
#include "../proto/fake_backend.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

static struct {
	u8 fifo[16];
	u32 head, count;
	bool line_error;
	u32 room_stall;
	u32 room_given;
	struct proto_rx rx;
	u8 rxbuf[PROTO_MAX_FRAME + 8];
} u;

static int f_rx(void *ctx)
{
	u8 b;

	(void)ctx;
	if (u.line_error) {
		u.line_error = false;
		return MGMT_RX_LINE_ERROR;
	}
	if (!u.count)
		return MGMT_RX_NONE;
	b = u.fifo[u.head];
	u.head = (u.head + 1) % 16;
	u.count--;
	return b;
}

static u32 f_room(void *ctx)
{
	(void)ctx;
	if (u.room_stall) {
		u.room_stall--;
		u.room_given = 0;
	} else {
		u.room_given = 16;
	}
	return u.room_given;
}

static void f_tx(void *ctx, const u8 *p, u32 n)
{
	(void)ctx;
	if (n > u.room_given)
		__builtin_trap();
	u.room_given -= n;
	for (u32 i = 0; i < n; i++)
		if (proto_rx_byte(&u.rx, p[i]) == PROTO_RX_BAD)
			__builtin_trap(); /* the hypervisor sent a broken frame */
}

static const struct mgmt_transport f_tp = {f_rx, f_room, f_tx};
static struct fake_vm vm;
static struct mgmt m;
static void *mem;

static void put(struct mgmt *mg, u8 b)
{
	/* The host honours the window: it waits (the hypervisor polls) when full. */
	while (u.count == 16)
		mgmt_poll(mg);
	u.fifo[(u.head + u.count++) % 16] = b;
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static u8 wire[PROTO_MAX_REQ_WIRE + 8];
	u16 id = 1;
	size_t i = 0;

	/*
	 * The VM is built once and rebuilt after every input (fake_vm_reset: the
	 * same steps in the same host memory), so every input starts from a fresh
	 * VM; allocating its megabytes anew cost 5 ms an input under ASan.
	 */
	if (!mem) {
		mem = malloc(MGMT_MEM_SIZE);
		fake_vm_init(&vm, 1);
	}
	memset(&u, 0, sizeof(u));
	proto_rx_init(&u.rx, u.rxbuf, sizeof(u.rxbuf));
	if (mgmt_init(&m, mem, MGMT_MEM_SIZE, &fake_backend, &vm, &vm.ds, &f_tp, NULL))
		__builtin_trap();
	/* The copy-on-write snapshot commands too, as the hypervisor has them. */
	mgmt_set_cow(&m, &vm.cow);
	/* Small steps: dirty start/stop/harvest span polls, and requests meet them. */
	mgmt_set_step_pages(&m, 64);

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
				put(&m, wire[j]);
		} else if (k < 0xc0) {
			u32 n = (k & 0x3f) + 1;

			for (u32 j = 0; j < n && i < size; j++)
				put(&m, data[i++]);
		} else if (k < 0xfe) {
			/* A byte stored: the write fault (a copy under a snapshot), then the log. */
			if (i < size)
				(void)fake_vm_write(&vm, vm.slots[k & 1].s.gpa + data[i++] * PAGE_SIZE +
							     (k & 0x3e),
						    &k, 1);
		} else if (k == 0xfe) {
			u.line_error = true;
		} else {
			u.room_stall = 50;
		}
		mgmt_poll(&m);
	}
	put(&m, 0);
	for (int n = 0; n < 20000 && mgmt_wants_poll(&m); n++)
		mgmt_poll(&m);
	if (mgmt_wants_poll(&m))
		__builtin_trap(); /* never came back to rest */
	if (ds_busy(&vm.ds))
		__builtin_trap(); /* the command ended, its session operation did not */
	/* Tears this input's VM down (an mmu root still held traps here) and builds the next. */
	fake_vm_reset(&vm);
	return 0;
}
