/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the management protocol: the codec (CRC-32C, varints, COBS
 * frames and the streaming decoder, bitmap blocks, memory tokens) and the
 * dispatcher as the hypervisor runs it: hv/control.c, hv/mgmt.c, the dirty-log
 * and copy-on-write sessions, the exit path and the real mmu/ on the simulated
 * machine (tests/hv/host_port.h), through an in-memory 16550 whose receive
 * FIFO holds 16 bytes. Built with ASan+UBSan.
 */
#include "hv/log.h"
#include "hv/page_alloc.h"
#include "tests/hv/host_port.h"
#include "tests/check.h"
#include "tools/ptctl/inflate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static u32 seed = 1;
static u32 rnd(void)
{
	seed ^= seed << 13;
	seed ^= seed >> 17;
	seed ^= seed << 5;
	return seed;
}

/* --- codec ---------------------------------------------------------------------- */

static void test_crc(void)
{
	/* The CRC-32C check value (RFC 3720 B.4 and every CRC catalogue). */
	CHECK(proto_crc32c(0, "123456789", 9) == 0xe3069283);
	CHECK(proto_crc32c(proto_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283);
	CHECK(proto_crc32c(0, "", 0) == 0);
}

static void test_varint(void)
{
	static const u64 vals[] = {0, 1, 127, 128, 16383, 16384, 0xffffffffull, 1ull << 63, ~0ull};
	u8 buf[16];
	struct proto_buf b;

	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		proto_wbuf_init(&b, buf, sizeof(buf));
		proto_put_varint(&b, vals[i]);
		CHECK(!b.err && b.len == proto_varint_len(vals[i]));
		proto_rbuf_init(&b, buf, b.len);
		CHECK(proto_get_varint(&b) == vals[i] && proto_rbuf_done(&b));
	}
	/* Eleven bytes, or a tenth byte above 1: not a u64. */
	memset(buf, 0x80, 11);
	buf[10] = 0;
	proto_rbuf_init(&b, buf, 11);
	proto_get_varint(&b);
	CHECK(b.err);
	memset(buf, 0xff, 9);
	buf[9] = 2;
	proto_rbuf_init(&b, buf, 10);
	proto_get_varint(&b);
	CHECK(b.err);
	/* Truncated. */
	buf[0] = 0x80;
	proto_rbuf_init(&b, buf, 1);
	proto_get_varint(&b);
	CHECK(b.err);
	/* Writer overflow is sticky. */
	proto_wbuf_init(&b, buf, 2);
	proto_put_varint(&b, 1ull << 20);
	CHECK(b.err);
}

static u8 wire[PROTO_MAX_WIRE + 64], payload[PROTO_MAX_PAYLOAD], fbuf[PROTO_MAX_FRAME + 8];

static void test_frames(void)
{
	static const u32 lens[] = {0,	1,   2,	  244, 245, 246, 249,  250,  253, 254,
				   255, 500, 503, 504, 508, 509, 1000, 4095, 4096};

	for (size_t li = 0; li < ARRAY_SIZE(lens); li++) {
		for (int kind = 0; kind < 3; kind++) {
			u32 len = lens[li], wl, pl;
			struct proto_hdr h = {PROTO_VERSION, 0, (u16)rnd(), (u8)rnd()}, rh;
			const u8 *p;
			u8 err;

			for (u32 i = 0; i < len; i++)
				payload[i] = kind == 0 ? 0 : kind == 1 ? 0xff : (u8)rnd();
			wl = proto_frame_encode(wire, sizeof(wire), &h, payload, len);
			CHECK(wl && wl <= PROTO_WIRE_LEN(len + PROTO_MIN_FRAME));
			CHECK(wire[0] == 0 && wire[wl - 1] == 0);
			for (u32 i = 1; i + 1 < wl; i++)
				if (!wire[i]) {
					CHECK(!"zero inside a frame");
					break;
				}
			CHECK(proto_decode_frame(wire, wl, fbuf, sizeof(fbuf), &rh, &p, &pl,
						 &err) == PROTO_RX_GOOD);
			CHECK(rh.id == h.id && rh.cmd == h.cmd && rh.version == PROTO_VERSION);
			CHECK(pl == len && !memcmp(p, payload, len));
			/* Too small an output buffer: refused, not overrun. */
			CHECK(proto_frame_encode(wire, wl - 1, &h, payload, len) == 0);
		}
	}
	CHECK(proto_frame_encode(wire, sizeof(wire), &(struct proto_hdr){1, 0, 1, 1}, payload,
				 PROTO_MAX_PAYLOAD + 1) == 0);
}

/* Feeds bytes; returns the results seen, in order, as a string of G / B<err>. */
static void feed(struct proto_rx *rx, const u8 *p, u32 n, char *log, size_t cap)
{
	for (u32 i = 0; i < n; i++) {
		enum proto_rx_result r = proto_rx_byte(rx, p[i]);
		size_t l = strlen(log);

		if (r == PROTO_RX_GOOD && l + 2 < cap)
			strcat(log, "G");
		if (r == PROTO_RX_BAD && l + 4 < cap)
			snprintf(log + l, cap - l, "B%d", rx->err);
	}
}

static void test_decoder(void)
{
	struct proto_rx rx;
	struct proto_hdr h = {PROTO_VERSION, 0, 7, PROTO_CMD_INFO};
	u8 small[64], garbage[300];
	char log[256];
	u32 wl;

	memset(payload, 0x5a, 40);
	wl = proto_frame_encode(wire, sizeof(wire), &h, payload, 40);

	/* Garbage (with zeros) then a frame: the frame's opening 0x00 resyncs. */
	for (size_t i = 0; i < sizeof(garbage); i++)
		garbage[i] = (u8)rnd();
	proto_rx_init(&rx, small, sizeof(small));
	log[0] = 0;
	feed(&rx, garbage, sizeof(garbage), log, sizeof(log));
	strcpy(log, "");
	feed(&rx, wire, wl, log, sizeof(log));
	CHECK(!strcmp(log, "G") || (log[0] == 'B' && log[strlen(log) - 1] == 'G'));

	/* Back to back, sharing nothing: two frames, two results. */
	proto_rx_init(&rx, small, sizeof(small));
	log[0] = 0;
	feed(&rx, wire, wl, log, sizeof(log));
	feed(&rx, wire, wl, log, sizeof(log));
	CHECK(!strcmp(log, "GG"));

	/* Truncated frame, then a good one. */
	log[0] = 0;
	feed(&rx, wire, wl / 2, log, sizeof(log));
	feed(&rx, wire, wl, log, sizeof(log));
	CHECK(log[0] == 'B' && !strcmp(log + strlen(log) - 1, "G"));

	/* Every single-byte corruption of the body is caught. */
	for (u32 i = 1; i + 1 < wl; i++) {
		u8 w2[128];

		memcpy(w2, wire, wl);
		w2[i] ^= (u8)(1 + rnd() % 255);
		if (!w2[i])
			w2[i] = 1;
		proto_rx_init(&rx, small, sizeof(small));
		log[0] = 0;
		feed(&rx, w2, wl, log, sizeof(log));
		if (strchr(log, 'G')) {
			CHECK(!"a corrupted frame passed");
			break;
		}
	}

	/* Bad CRC, precisely: a payload byte changed to another non-zero value. */
	{
		u8 w2[128];

		memcpy(w2, wire, wl);
		w2[wl / 2] = w2[wl / 2] == 0x5a ? 0x5b : 0x5a;
		proto_rx_init(&rx, small, sizeof(small));
		log[0] = 0;
		feed(&rx, w2, wl, log, sizeof(log));
		CHECK(!strcmp(log, "B4"));
	}
	/* Too short: a 3-byte frame. */
	{
		u8 w2[] = {0, 4, 1, 2, 3, 0};

		proto_rx_init(&rx, small, sizeof(small));
		log[0] = 0;
		feed(&rx, w2, sizeof(w2), log, sizeof(log));
		CHECK(!strcmp(log, "B7"));
	}
	/* Oversize: longer than the receiver's buffer; the next frame passes. */
	{
		u32 big = proto_frame_encode(fbuf, sizeof(fbuf), &h, payload, 100);

		proto_rx_init(&rx, small, sizeof(small));
		log[0] = 0;
		feed(&rx, fbuf, big, log, sizeof(log));
		feed(&rx, wire, wl, log, sizeof(log));
		CHECK(!strcmp(log, "B6G"));
	}
	/* Empty frames (0x00 0x00) are silence, not errors. */
	{
		u8 z[8] = {0};

		proto_rx_init(&rx, small, sizeof(small));
		log[0] = 0;
		feed(&rx, z, sizeof(z), log, sizeof(log));
		CHECK(!strcmp(log, ""));
	}
}

static void bm_roundtrip(const u64 *bm, u64 first, u32 n, u32 *size_out)
{
	u8 buf[PROTO_BITMAP_BLOCK_MAX];
	u64 out[PROTO_BITMAP_BLOCK / 64 + 4] = {0};
	struct proto_buf b;
	s64 k;
	u32 set = 0;

	proto_wbuf_init(&b, buf, sizeof(buf));
	CHECK(proto_bitmap_encode_block(&b, bm, first, n));
	CHECK(b.len <= PROTO_BITMAP_BLOCK_MAX);
	if (size_out)
		*size_out = b.len;
	proto_rbuf_init(&b, buf, b.len);
	k = proto_bitmap_decode_block(&b, out, 0, n);
	CHECK(proto_rbuf_done(&b));
	for (u32 i = 0; i < n; i++) {
		bool a = proto_test_bit(bm, first + i), c = proto_test_bit(out, i);

		set += a;
		if (a != c) {
			CHECK(!"bitmap bit differs");
			break;
		}
	}
	CHECK(k == set);
}

static void test_bitmap(void)
{
	static u64 bm[(PROTO_BITMAP_BLOCK * 3) / 64];
	static const u32 ns[] = {1, 7, 63, 64, 65, 1000, 4095, 4096};
	u32 sz;

	for (int density = 0; density < 6; density++) {
		for (size_t ni = 0; ni < ARRAY_SIZE(ns); ni++) {
			u64 first = rnd() % 200;

			memset(bm, 0, sizeof(bm));
			for (u32 i = 0; i < ns[ni]; i++) {
				bool set;

				switch (density) {
				case 0:
					set = false;
					break;
				case 1:
					set = rnd() % 1000 == 0;
					break;
				case 2:
					set = (i / 64) % 8 == 0;
					break; /* clustered */
				case 3:
					set = rnd() % 2;
					break;
				case 4:
					set = true;
					break;
				default:
					set = rnd() % 20 == 0;
					break;
				}
				if (set)
					proto_set_bit(bm, first + i);
			}
			bm_roundtrip(bm, first, ns[ni], NULL);
		}
	}
	/* The cheapest encoding is chosen. */
	memset(bm, 0, sizeof(bm));
	bm_roundtrip(bm, 0, 4096, &sz);
	CHECK(sz == 1);
	proto_set_bit(bm, 100);
	proto_set_bit(bm, 3000);
	bm_roundtrip(bm, 0, 4096, &sz);
	CHECK(sz <= 6); /* tag, count, two deltas */
	memset(bm, 0, sizeof(bm));
	for (u32 i = 1024; i < 2048; i++)
		proto_set_bit(bm, i);
	bm_roundtrip(bm, 0, 4096, &sz);
	CHECK(sz <= 6); /* tag, count, two runs */
	for (u32 i = 0; i < 4096; i++)
		if (rnd() % 2)
			proto_set_bit(bm, i);
	bm_roundtrip(bm, 0, 4096, &sz);
	CHECK(sz == 1 + 512);

	/* No room: refused, buffer untouched. */
	{
		u8 buf[8];
		struct proto_buf b;

		proto_wbuf_init(&b, buf, sizeof(buf));
		CHECK(!proto_bitmap_encode_block(&b, bm, 0, 4096));
		CHECK(b.len == 0 && !b.err);
	}
	/* Malformed blocks are refused. */
	{
		u64 out[64] = {0};
		struct proto_buf b;
		u8 raw_tail[] = {PROTO_BM_RAW, 0xff};	   /* n = 4: bits 4..7 set */
		u8 delta_far[] = {PROTO_BM_DELTAS, 1, 10}; /* page 10 of 8 */
		u8 delta_zero[] = {PROTO_BM_DELTAS, 0};	   /* "dirty" but none */
		u8 runs_long[] = {PROTO_BM_RUNS, 2, 4, 5}; /* 9 pages of 8 */
		u8 bad_tag[] = {9};

		proto_rbuf_init(&b, raw_tail, sizeof(raw_tail));
		CHECK(proto_bitmap_decode_block(&b, out, 0, 4) < 0);
		proto_rbuf_init(&b, delta_far, sizeof(delta_far));
		CHECK(proto_bitmap_decode_block(&b, out, 0, 8) < 0);
		proto_rbuf_init(&b, delta_zero, sizeof(delta_zero));
		CHECK(proto_bitmap_decode_block(&b, out, 0, 8) < 0);
		proto_rbuf_init(&b, runs_long, sizeof(runs_long));
		CHECK(proto_bitmap_decode_block(&b, out, 0, 8) < 0);
		proto_rbuf_init(&b, bad_tag, sizeof(bad_tag));
		CHECK(proto_bitmap_decode_block(&b, out, 0, 8) < 0);
	}
}

static void lz_check(const u8 *src, u32 len, u32 cap, u32 *wire_len)
{
	static struct proto_lz lz;
	static u8 buf[PAGE_SIZE * 2], out[PAGE_SIZE];
	struct proto_buf b;
	u32 covered;
	u64 olen = 0;

	proto_wbuf_init(&b, buf, cap);
	covered = proto_lz_compress(&lz, &b, src, len);
	CHECK(covered <= len && !b.err && b.len <= cap);
	if (cap >= len + len / 128 + 8)
		CHECK(covered == len);
	if (wire_len)
		*wire_len = b.len;
	proto_rbuf_init(&b, buf, b.len);
	CHECK(proto_tokens_decode(&b, out, &olen, sizeof(out)));
	CHECK(olen == covered && !memcmp(out, src, covered));
}

static void test_lz(void)
{
	static u8 page[PAGE_SIZE];
	u32 wl;

	for (int kind = 0; kind < 5; kind++) {
		for (u32 i = 0; i < PAGE_SIZE; i++) {
			switch (kind) {
			case 0:
				page[i] = 0;
				break;
			case 1:
				page[i] = (u8)rnd();
				break;
			case 2:
				page[i] = (u8)("the quick brown fox "[i % 20]);
				break;
			case 3:
				page[i] = i % 700 < 300 ? 0x11 : (u8)rnd();
				break;
			default:
				page[i] = (u8)(i / 16);
				break;
			}
		}
		for (u32 cap = 2; cap < PAGE_SIZE + 200; cap = cap * 3 / 2 + 1)
			lz_check(page, PAGE_SIZE, cap, NULL);
		lz_check(page, 1 + rnd() % PAGE_SIZE, PAGE_SIZE * 2, NULL);
		lz_check(page, PAGE_SIZE, PAGE_SIZE * 2, &wl);
		if (kind == 0)
			CHECK(wl <= 4);
		if (kind == 2)
			CHECK(wl < PAGE_SIZE / 10);
		if (kind == 1)
			CHECK(wl <= PAGE_SIZE + PAGE_SIZE / 128 + 2);
	}
	/* Malformed token streams. */
	{
		u8 out[64];
		u64 ol = 0;
		struct proto_buf b;
		u8 far[] = {0x00, 'a', PROTO_TOK_MATCH, 5}; /* distance 5 > 1 decoded */
		u8 big[] = {PROTO_TOK_ZERO, 0x80, 0x01};    /* 128 zeros into 64 */
		u8 bad[] = {0xc7};

		proto_rbuf_init(&b, far, sizeof(far));
		CHECK(!proto_tokens_decode(&b, out, &ol, sizeof(out)));
		ol = 0;
		proto_rbuf_init(&b, big, sizeof(big));
		CHECK(!proto_tokens_decode(&b, out, &ol, sizeof(out)));
		ol = 0;
		proto_rbuf_init(&b, bad, sizeof(bad));
		CHECK(!proto_tokens_decode(&b, out, &ol, sizeof(out)));
	}
}

/* --- the dispatcher through the hypervisor's own port ------------------------------- */
/*
 * hv/control.c, hv/mgmt.c, the sessions and the exit path on the simulated
 * machine (tests/hv/host_port.h): its management UART is an in-memory 16550
 * whose receive FIFO holds 16 bytes; one "poll" is one turn of the boot CPU
 * (an exit, or a turn of the paused loop). The guest writes on vCPU 1 through
 * the hardware model's page walk: what mmu/ set up is what logs it.
 */
static struct mgmt *mg;
static struct proto_rx host_rx;
static u8 host_rxbuf[PROTO_MAX_FRAME + 8];
static u16 next_id = 100;
static u32 credits_seen, naks_seen, last_nak_err;
static int last_polls; /* polls transact_wire() made until its reply */

#define DS   (mg->ds)
#define COW  (mg->cow)
#define uart host_port

static bool uart_put(u8 b)
{
	return host_port_put(b);
}

static void poll_once(void)
{
	host_port_poll();
}

static const struct hv_slot *slot(u32 i)
{
	return &host_port.m.vm.slots[i];
}

static gpa_t slot_gpa(u32 i)
{
	return gfn_to_gpa(slot(i)->base_gfn);
}

static u64 slot_size(u32 i)
{
	return slot(i)->npages * PAGE_SIZE;
}

static u8 *slot_mem(u32 i)
{
	return host_machine_mem(&host_port.m, slot_gpa(i));
}

static u8 slot_mode(u32 i)
{
	return (u8)ds_slot_mode(DS, i);
}

/* The session's log of a slot (mmu/'s bitmap), and the protocol's view of it. */
static const u64 *slot_log(u32 i)
{
	return DS->slots[i].log;
}

static const u64 *slot_view(u32 i)
{
	return DS->slots[i].view[DS_CONSUMER_MGMT].bits;
}

/* A guest store on vCPU 1 at @gpa: 0, or -EAGAIN while it waits (host_machine_store). */
static int guest_store(gpa_t gpa, u64 value)
{
	return host_port_store(gpa, value);
}

/* The guest writes the first word of a page of a slot (its write fault, then the log). */
static void touch(u32 i, u64 page)
{
	CHECK(page < slot(i)->npages);
	CHECK(guest_store(slot_gpa(i) + page * PAGE_SIZE, 0x70000000ull + page) == 0);
}

static void dispatcher_setup_mib(u32 ram0_mib)
{
	const struct host_machine_config cfg = {.ram0_mib = ram0_mib, .seed = 7};
	static u8 small[100];
	struct mgmt tmp;

	host_port_init(&cfg);
	mg = host_port_mgmt();
	/* Guest RAM before the guest runs: a mix of zero, random, repetitive and sparse pages. */
	for (u32 i = 0; i < host_port.m.vm.nr_slots; i++)
		if (slot(i)->type == HV_MEM_RAM)
			host_machine_fill(&host_port.m, slot_gpa(i), slot(i)->npages, 99 + i, true);
	proto_rx_init(&host_rx, host_rxbuf, sizeof(host_rxbuf));
	/* Too little memory for its buffers: refused, not overrun. */
	CHECK(mgmt_init(&tmp, small, sizeof(small), mg->be, mg->be_ctx, mg->ds, mg->tp,
			mg->tp_ctx) == -PROTO_E_INTERNAL);
}

static void dispatcher_setup(void)
{
	dispatcher_setup_mib(8);
}

/*
 * The host honoured the window throughout: no byte was put into a full FIFO
 * (the machine is built again by the next setup, host_port_init).
 */
static void dispatcher_teardown(void)
{
	CHECK(host_port.overflows == 0);
}

/*
 * Sends a wire frame the way ptctl does: never more than 16 bytes unread by
 * the hypervisor, counting CREDITs; then polls until the reply with this id.
 * Returns the reply payload length, or -1 (none), or -2 - error code.
 */
static u8 rep[PROTO_MAX_PAYLOAD];
static int transact_wire(const u8 *w, u32 wl, u16 id, u8 cmd)
{
	static u32 rpos;
	u32 sent = 0, acked = 0;

	/* Bytes sent before this request (NAKs) are read first; then start over. */
	if (rpos > uart.tx_len)
		rpos = 0;
	for (int polls = 0; polls < 100000; polls++) {
		while (sent < wl && sent < acked + PROTO_WINDOW) {
			CHECK(uart_put(w[sent]));
			sent++;
		}
		poll_once();
		last_polls = polls + 1;
		for (; rpos < uart.tx_len; rpos++) {
			struct proto_hdr h;
			const u8 *p;
			u32 pl;

			if (proto_rx_byte(&host_rx, uart.tx[rpos]) != PROTO_RX_GOOD)
				continue;
			proto_rx_frame(&host_rx, &h, &p, &pl);
			if (h.cmd == PROTO_CMD_CREDIT) {
				struct proto_buf b;

				proto_rbuf_init(&b, p, pl);
				if (h.id == id) {
					acked = 1 + (u32)proto_get_varint(&b);
					credits_seen++;
				}
				continue;
			}
			if (h.cmd == PROTO_CMD_NAK) {
				naks_seen++;
				last_nak_err = pl ? p[0] : 0;
				continue;
			}
			if (h.id != id || h.cmd != cmd)
				continue;
			rpos++;
			if (rpos == uart.tx_len)
				uart.tx_len = rpos = 0;
			if (h.flags & PROTO_F_ERROR)
				return -2 - p[0];
			memcpy(rep, p, pl);
			return (int)pl;
		}
	}
	return -1;
}

static int transact(u8 cmd, const u8 *req, u32 len)
{
	static u8 w[PROTO_MAX_REQ_WIRE];
	struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, cmd};
	u32 wl = proto_frame_encode(w, sizeof(w), &h, req, len);

	return transact_wire(w, wl, h.id, cmd);
}

#define REQ(...)                                                                                   \
	({                                                                                         \
		u64 _v[] = {__VA_ARGS__};                                                          \
		static u8 _q[64];                                                                  \
		struct proto_buf _b;                                                               \
		proto_wbuf_init(&_b, _q, sizeof(_q));                                              \
		for (size_t _i = 0; _i < ARRAY_SIZE(_v); _i++)                                     \
			proto_put_varint(&_b, _v[_i]);                                             \
		_b;                                                                                \
	})

static int tx_req(u8 cmd, struct proto_buf b)
{
	return transact(cmd, b.p, b.len);
}

static void test_mgmt_basic(void)
{
	struct proto_buf b;
	char s[64];
	int n;

	dispatcher_setup();
	n = tx_req(PROTO_CMD_HELLO, REQ(PROTO_CAPS_ALL, PROTO_MAX_PAYLOAD));
	CHECK(n > 0);
	proto_rbuf_init(&b, rep, n > 0 ? (u32)n : 0);
	CHECK(proto_get_varint(&b) == PROTO_VERSION);
	CHECK(proto_get_varint(&b) == PROTO_VERSION);
	CHECK(proto_get_varint(&b) & PROTO_CAP_CREDIT);
	CHECK(proto_get_varint(&b) == PROTO_MAX_REQ_PAYLOAD);
	CHECK(proto_get_varint(&b) == PROTO_MAX_PAYLOAD);
	CHECK(proto_get_varint(&b) == PROTO_WINDOW);
	proto_get_str(&b, s, sizeof(s));
	CHECK(proto_rbuf_done(&b) && !strcmp(s, "PageTrail"));
	/* A host that cannot take a page-sized reply is refused. */
	CHECK(tx_req(PROTO_CMD_HELLO, REQ(0, 100)) == -2 - PROTO_E_BAD_REQUEST);

	n = transact(PROTO_CMD_INFO, NULL, 0);
	CHECK(n > 0);
	proto_rbuf_init(&b, rep, n > 0 ? (u32)n : 0);
	proto_get_str(&b, s, sizeof(s));
	CHECK(!strcmp(s, "svm"));
	proto_get_str(&b, s, sizeof(s));
	CHECK(proto_get_varint(&b) == 2);
	CHECK(proto_get_varint(&b) == ds_modes_supported(DS));
	CHECK(proto_get_varint(&b) == (8ull << 20) + (4ull << 20));
	CHECK(proto_get_u8(&b) == 0);
	CHECK(proto_get_varint(&b) == 3);
	CHECK(proto_rbuf_done(&b));

	n = tx_req(PROTO_CMD_SLOTS, REQ(0));
	CHECK(n > 0);
	proto_rbuf_init(&b, rep, n > 0 ? (u32)n : 0);
	CHECK(proto_get_u8(&b) == 0 && proto_get_u8(&b) == 3);
	CHECK(proto_get_varint(&b) == 0 && proto_get_varint(&b) == 0);
	CHECK(proto_get_varint(&b) == 8ull << 20);
	CHECK(proto_get_u8(&b) == PROTO_SLOT_RAM && proto_get_u8(&b) == PROTO_DIRTY_OFF);
	CHECK(proto_get_varint(&b) == 1 && proto_get_varint(&b) == 0x100000000ull);

	/* Typed errors. */
	CHECK(transact(0x5e, NULL, 0) == -2 - PROTO_E_UNKNOWN_CMD);
	CHECK(tx_req(PROTO_CMD_INFO, REQ(1)) == -2 - PROTO_E_BAD_REQUEST); /* trailing byte */
	CHECK(tx_req(PROTO_CMD_REGS, REQ(2)) == -2 - PROTO_E_NO_VCPU);
	/* vCPU 1 runs on its CPU: only the registers of its last exit; parked, all of them. */
	CHECK(tx_req(PROTO_CMD_REGS, REQ(1)) == 8 * PROTO_REG_NR_V1 + 2);
	CHECK(transact(PROTO_CMD_PAUSE, NULL, 0) == 0 && host_port_paused());
	CHECK(tx_req(PROTO_CMD_REGS, REQ(1)) == 8 * PROTO_REG_NR + 2);
	CHECK(transact(PROTO_CMD_RESUME, NULL, 0) == 0 && !host_port_paused());
	{
		/* Another version: answered with E_VERSION in our version's header. */
		static u8 w[64];
		struct proto_hdr h = {PROTO_VERSION + 1, 0, ++next_id, PROTO_CMD_INFO};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, NULL, 0);

		CHECK(transact_wire(w, wl, h.id, PROTO_CMD_INFO) == -2 - PROTO_E_VERSION);
		CHECK(mg->c.bad_version == 1);
	}
	/* Stats: own counters first, then the backend's, paged. */
	n = tx_req(PROTO_CMD_STATS, REQ(0));
	CHECK(n > 0 && rep[0] == 0);
	proto_rbuf_init(&b, rep + 1, n > 1 ? (u32)n - 1 : 0);
	proto_get_str(&b, s, sizeof(s));
	CHECK(!strcmp(s, "proto.rx_bytes"));
	/* Log: offsets. */
	n = tx_req(PROTO_CMD_LOG, REQ(0, 100));
	CHECK(n > 3);
	{
		/* The hypervisor's log ring, from its oldest byte (machines before this one wrote
		 * too). */
		static u8 ring[100];
		u64 first, end, rf, re;
		u32 left;

		proto_rbuf_init(&b, rep, n > 0 ? (u32)n : 0);
		rf = proto_get_varint(&b);
		re = proto_get_varint(&b);
		CHECK(proto_get_varint(&b) == rf);
		left = proto_rbuf_left(&b);
		CHECK(hv_log_ring_read(rf, ring, sizeof(ring), &first, &end) == sizeof(ring));
		CHECK(rf == first && re > rf && re <= end);
		CHECK(left == (re - rf < 100 ? re - rf : 100));
		CHECK(!memcmp(proto_get_bytes(&b, left), ring, left));
	}
	CHECK(uart.overflows == 0);
	dispatcher_teardown();
}

static u64 snap(u32 slot, bool clear, u64 *ndirty)
{
	struct proto_buf q, b;
	u8 qq[16];
	u64 gen;
	int n;

	proto_wbuf_init(&q, qq, sizeof(qq));
	proto_put_varint(&q, slot);
	proto_put_u8(&q, clear ? PROTO_SNAP_CLEAR : 0);
	n = tx_req(PROTO_CMD_DIRTY_SNAP, q);
	CHECK(n > 0);
	proto_rbuf_init(&b, rep, n > 0 ? (u32)n : 0);
	gen = proto_get_varint(&b);
	proto_get_varint(&b);
	*ndirty = proto_get_varint(&b);
	return gen;
}

/* Reads a snapshot whole through DIRTY_READ into bm; returns dirty pages or -1. */
static s64 read_snapshot(u32 slot, u64 gen, u64 npages, u64 *bm)
{
	u64 pos = 0;
	s64 total = 0;

	while (pos < npages) {
		struct proto_buf b;
		int n = tx_req(PROTO_CMD_DIRTY_READ, REQ(slot, gen, pos));

		if (n <= 0)
			return n < -1 ? n : -1;
		proto_rbuf_init(&b, rep, (u32)n);
		if (proto_get_varint(&b) != pos)
			return -1;
		while (proto_rbuf_left(&b)) {
			u32 cnt = npages - pos < PROTO_BITMAP_BLOCK ? (u32)(npages - pos)
								    : PROTO_BITMAP_BLOCK;
			s64 k = proto_bitmap_decode_block(&b, bm, pos, cnt);

			if (k < 0)
				return -1;
			total += k;
			pos += cnt;
		}
	}
	return total;
}

static void test_mgmt_dirty(void)
{
	static u64 got[(8 << 20) / PAGE_SIZE / 64], want[(8 << 20) / PAGE_SIZE / 64];
	u64 npages, nd, gen, gen2;
	u8 q[8];
	struct proto_buf b;

	dispatcher_setup();
	npages = slot(0)->npages;
	/* Not logging yet: no snapshot. */
	CHECK(tx_req(PROTO_CMD_DIRTY_SNAP, REQ(0, 0)) == -2 - PROTO_E_STATE);
	/* Unknown mode, unknown slot, mode the CPU lacks. */
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, 0);
	proto_put_varint(&b, 0);
	proto_put_u8(&b, 9);
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == -2 - PROTO_E_BAD_REQUEST);
	q[2] = PROTO_DIRTY_PML;
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == -2 - PROTO_E_UNSUPPORTED);
	q[1] = 5;
	q[2] = PROTO_DIRTY_WP;
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == -2 - PROTO_E_NO_SLOT);
	/* --all: the two RAM slots, not the MMIO one. */
	q[0] = PROTO_START_ALL;
	q[1] = 0;
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == 1 && rep[0] == 2);
	CHECK(slot_mode(2) == PROTO_DIRTY_OFF);

	for (int i = 0; i < 300; i++) {
		u64 p = rnd() % npages;

		touch(0, p);
		proto_set_bit(want, p);
	}
	gen = snap(0, true, &nd);
	memset(got, 0, sizeof(got));
	CHECK(read_snapshot(0, gen, npages, got) == (s64)nd);
	CHECK(!memcmp(got, want, sizeof(got)));

	/*
	 * The reader dies before DIRTY_DONE; new writes come; the next snapshot
	 * still holds the first pages too (nothing lost).
	 */
	touch(0, 5);
	proto_set_bit(want, 5);
	gen2 = snap(0, true, &nd);
	CHECK(gen2 != gen);
	memset(got, 0, sizeof(got));
	CHECK(read_snapshot(0, gen2, npages, got) == (s64)nd);
	CHECK(!memcmp(got, want, sizeof(got)));
	/* The old generation is stale now. */
	CHECK(tx_req(PROTO_CMD_DIRTY_READ, REQ(0, gen, 0)) == -2 - PROTO_E_STALE);
	CHECK(tx_req(PROTO_CMD_DIRTY_DONE, REQ(0, gen)) == -2 - PROTO_E_STALE);
	CHECK(tx_req(PROTO_CMD_DIRTY_READ, REQ(0, gen2, npages)) == -2 - PROTO_E_RANGE);
	/* DONE empties the snapshot; the log itself was cleared by the harvest. */
	CHECK(tx_req(PROTO_CMD_DIRTY_DONE, REQ(0, gen2)) == 0);
	gen = snap(0, true, &nd);
	CHECK(nd == 0);
	CHECK(tx_req(PROTO_CMD_DIRTY_DONE, REQ(0, gen)) == 0);

	/*
	 * Get, then clear a range: only pages the snapshot reported are re-armed;
	 * a page first written after the snapshot keeps its logged bit.
	 */
	touch(0, 100);
	touch(0, 101);
	touch(0, 300);
	gen = snap(0, false, &nd);
	CHECK(nd == 3);
	touch(0, 102); /* after the snapshot */
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, 99, 5)) == 1 && rep[0] == 2);
	CHECK(!proto_test_bit(slot_log(0), 100) && !proto_test_bit(slot_log(0), 101));
	CHECK(proto_test_bit(slot_log(0), 102) && proto_test_bit(slot_log(0), 300));
	CHECK(!proto_test_bit(slot_view(0), 100) && proto_test_bit(slot_view(0), 300));
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, npages - 1, 2)) == -2 - PROTO_E_RANGE);
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, 0, 0)) == -2 - PROTO_E_RANGE);
	/* A range ending at the slot end, unaligned start. */
	touch(0, npages - 1);
	gen = snap(0, false, &nd);
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, 3, npages - 3)) == 1);
	CHECK(!proto_test_bit(slot_log(0), npages - 1) && !proto_test_bit(slot_log(0), 300));

	/* A repeated request (lost reply) is answered from the cache, not run again. */
	{
		static u8 w[64];
		u8 body[] = {0, PROTO_SNAP_CLEAR};
		struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, PROTO_CMD_DIRTY_SNAP};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, body, sizeof(body));
		u64 harvests = mg->c.harvests;
		int n1, n2;
		u8 first[64];

		touch(0, 7);
		n1 = transact_wire(w, wl, h.id, PROTO_CMD_DIRTY_SNAP);
		CHECK(n1 > 0);
		memcpy(first, rep, n1 > 0 ? (size_t)n1 : 0);
		touch(0, 8);
		n2 = transact_wire(w, wl, h.id, PROTO_CMD_DIRTY_SNAP);
		CHECK(n2 == n1 && !memcmp(first, rep, n1 > 0 ? (size_t)n1 : 0));
		CHECK(mg->c.harvests == harvests + 1 && mg->c.dup_requests == 1);
		CHECK(proto_test_bit(slot_log(0), 8)); /* still logged for the next harvest */
	}
	/* Stop. */
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, 0);
	proto_put_varint(&b, 1);
	CHECK(tx_req(PROTO_CMD_DIRTY_STOP, b) == 1 && slot_mode(1) == PROTO_DIRTY_OFF);
	CHECK(uart.overflows == 0);
	dispatcher_teardown();
}

/*
 * One MEM_READ or COW_READ request for @len bytes at @gpa, asking for encoding @enc,
 * and its reply (raw, tokens or DEFLATE) decoded into @out: the bytes it covered, 0 on failure.
 */
static struct pt_inflate *inflater;

/* The encodings a host may ask for, in turn: raw, tokens, DEFLATE. */
static u8 enc_turn(u32 i)
{
	static const u8 e[3] = {0, PROTO_MEM_LZ, PROTO_MEM_LZ | PROTO_MEM_DFL};

	return e[i % 3];
}

static u64 read_reply(u8 cmd, u64 gpa, u64 len, u8 enc, u8 *out)
{
	struct proto_buf b, q;
	u8 qq[32];
	u64 olen = 0;
	int n;

	proto_wbuf_init(&q, qq, sizeof(qq));
	proto_put_varint(&q, gpa);
	proto_put_varint(&q, len);
	proto_put_u8(&q, enc);
	n = tx_req(cmd, q);
	CHECK(n > 0);
	if (n <= 0)
		return 0;
	proto_rbuf_init(&b, rep, (u32)n);
	CHECK(proto_get_varint(&b) == gpa);
	switch (proto_get_u8(&b)) {
	case PROTO_MEM_RAW:
		CHECK(!(enc & (PROTO_MEM_LZ | PROTO_MEM_DFL)));
		olen = proto_rbuf_left(&b);
		memcpy(out, proto_get_bytes(&b, (u32)olen), olen);
		break;
	case PROTO_MEM_DEFLATE:
		CHECK(enc & PROTO_MEM_DFL);
		if (!inflater)
			inflater = pt_inflate_new();
		CHECK(inflater && pt_inflate_reply(inflater, &b, out, &olen, len));
		break;
	default:
		CHECK(proto_tokens_decode(&b, out, &olen, len));
		break;
	}
	CHECK(olen > 0);
	return olen;
}

static void test_mgmt_mem(void)
{
	static u8 out[(8 << 20) + PAGE_SIZE];
	u64 gpa = 0x100000000ull + 123, len = (4 << 20) - 123 - 77, done = 0;
	u32 frames = 0;

	dispatcher_setup();
	/* An all-zero megabyte: zero pages elided into one token. */
	memset(slot_mem(1) + (1 << 20), 0, 1 << 20);
	while (done < len) {
		u64 olen = read_reply(PROTO_CMD_MEM_READ, gpa + done, len - done, enc_turn(frames),
				      out + done);

		if (!olen)
			break;
		done += olen;
		frames++;
	}
	CHECK(done == len && !memcmp(out, slot_mem(1) + 123, len));
	CHECK(credits_seen > 0); /* MEM_READ at 4 GiB does not fit the 16-byte window */
	/* MMIO: typed error. A hole too. */
	CHECK(tx_req(PROTO_CMD_MEM_READ, REQ(0xfe000000, 16, 0)) == -2 - PROTO_E_FAULT);
	CHECK(tx_req(PROTO_CMD_MEM_READ, REQ(0x80000000, 16, 1)) == -2 - PROTO_E_FAULT);
	CHECK(tx_req(PROTO_CMD_MEM_READ, REQ(0, 0, 1)) == -2 - PROTO_E_RANGE);
	/* The zero megabyte in one small reply. */
	{
		int n = tx_req(PROTO_CMD_MEM_READ, REQ(0x100000000ull + (1 << 20), 1 << 20, 1));

		CHECK(n > 0 && n < 16);
	}
	CHECK(uart.overflows == 0);
	dispatcher_teardown();
}

/* COW_READ from @gpa until @len is covered (raw or tokens, replies as they come) into @out. */
static u64 cow_read_all(u64 gpa, u64 len, u8 *out, u32 *frames)
{
	u64 done = 0;

	while (done < len) {
		u64 olen = read_reply(PROTO_CMD_COW_READ, gpa + done, len - done, enc_turn(*frames),
				      out + done);

		if (!olen)
			break;
		done += olen;
		(*frames)++;
		/* The guest writes between replies: behind the stream, ahead of it, again. */
		for (int k = 0; k < 3; k++) {
			u64 stamp = 0x5eed0000ull + done + (u64)k;
			u64 page = (done / PAGE_SIZE + (u64)k * 37) % (len / PAGE_SIZE);

			int rc = guest_store(gpa + page * PAGE_SIZE + 8 * (u64)k, stamp);

			CHECK(rc == 0 || rc == -EAGAIN); /* or it waits for the budget */
		}
	}
	return done;
}

/*
 * The copy-on-write snapshot through the dispatcher: COW_ARM only while
 * paused, its bad requests; after the arm the guest writes all the time and
 * a tiny budget makes writes wait; COW_READ (small replies, so pages go on
 * across replies) gives memory as it was at the arm, each page once; a
 * second vCPU faulting on a page copied already makes no second copy;
 * COW_END reports, and the session is gone.
 */
static void test_mgmt_cow(void)
{
	static u8 want0[8 << 20], want1[4 << 20], got[8 << 20];
	u64 stamp = 0xabcdef, unsent, copies, pool_free0;
	u32 frames = 0;
	int n;

	dispatcher_setup();
	{
		/* A dispatcher without the session (mgmt_set_cow never called) refuses both. */
		struct cow_session *cow = COW;

		mgmt_set_cow(mg, NULL);
		CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(8, 0)) == -2 - PROTO_E_UNSUPPORTED);
		CHECK(tx_req(PROTO_CMD_COW_READ, REQ(0, 4096, 1)) == -2 - PROTO_E_UNSUPPORTED);
		mgmt_set_cow(mg, cow);
	}
	n = tx_req(PROTO_CMD_HELLO, REQ(PROTO_CAPS_ALL, 600)); /* small replies */
	CHECK(n > 2 && (proto_get_varint(&(struct proto_buf){.p = rep + 2, .len = (u32)n - 2}) &
			PROTO_CAP_COW));
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(8, 0)) == -2 - PROTO_E_STATE); /* not paused */
	CHECK(transact(PROTO_CMD_PAUSE, NULL, 0) == 0);
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(0, 0)) == -2 - PROTO_E_RANGE);
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(8, 600001)) == -2 - PROTO_E_RANGE);
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(8, 0, 1)) == -2 - PROTO_E_BAD_REQUEST);
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(1 << 20, 0)) == -2 - PROTO_E_NOMEM);
	/* Refused before anything was taken from the pool for good. */
	CHECK(!COW->slots[0].track && !COW->slots[0].copy_of && !COW->capacity);
	CHECK(tx_req(PROTO_CMD_COW_READ, REQ(0, 4096, 1)) == -2 - PROTO_E_STATE); /* not armed */
	CHECK(transact(PROTO_CMD_COW_END, NULL, 0) == -2 - PROTO_E_STATE);
	memcpy(want0, slot_mem(0), slot_size(0));
	memcpy(want1, slot_mem(1), slot_size(1));
	n = tx_req(PROTO_CMD_COW_ARM, REQ(8, 0));
	CHECK(n > 0);
	{
		struct proto_buf b;

		proto_rbuf_init(&b, rep, (u32)(n > 0 ? n : 0));
		CHECK(proto_get_varint(&b) == 8 &&
		      proto_get_varint(&b) == slot(0)->npages + slot(1)->npages);
	}
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(8, 0)) == -2 - PROTO_E_STATE); /* armed already */
	CHECK(transact(PROTO_CMD_RESUME, NULL, 0) == 0);

	/* Eight writes take the budget; the ninth waits, and writes nothing. */
	for (u64 p = 0; p < 8; p++)
		CHECK(guest_store(slot_gpa(1) + (100 + p) * PAGE_SIZE, stamp) == 0);
	CHECK(guest_store(slot_gpa(1) + 200 * PAGE_SIZE, stamp) == -EAGAIN);
	CHECK(guest_store(slot_gpa(1) + 200 * PAGE_SIZE, stamp) == -EAGAIN);
	CHECK(COW->st.copies == 8 && COW->st.waits == 1 && COW->st.wait_faults >= 2);
	CHECK(memcmp(slot_mem(1) + 200 * PAGE_SIZE, want1 + 200 * PAGE_SIZE, PAGE_SIZE) == 0);
	/* Another vCPU on a page copied already: no second copy, no wait. */
	copies = COW->st.copies;
	CHECK(cow_handle_write(COW, 0, slot_gpa(1) + 100 * PAGE_SIZE) == COW_FAULT_AGAIN);
	CHECK(COW->st.copies == copies);

	/* Slot 1 first: the stream frees the copies as it passes them. */
	CHECK(cow_read_all(slot_gpa(1), slot_size(1), got, &frames) == slot_size(1));
	CHECK(!memcmp(got, want1, slot_size(1)));
	CHECK(guest_store(slot_gpa(1) + 200 * PAGE_SIZE, stamp) == 0); /* sent: no wait */
	CHECK(cow_read_all(slot_gpa(0), slot_size(0), got, &frames) == slot_size(0));
	CHECK(!memcmp(got, want0, slot_size(0)));
	CHECK(memcmp(slot_mem(0), want0, slot_size(0)) != 0); /* the guest did write meanwhile */
	CHECK(frames > 2 * (slot_size(0) + slot_size(1)) / 4096 / 2);
	/* Each page once; MMIO is no memory. */
	CHECK(tx_req(PROTO_CMD_COW_READ, REQ(0, 4096, 1)) == -2 - PROTO_E_STATE);
	CHECK(tx_req(PROTO_CMD_COW_READ, REQ(0xfe000000, 4096, 1)) == -2 - PROTO_E_FAULT);
	pool_free0 = hv_pages_free();
	n = transact(PROTO_CMD_COW_END, NULL, 0);
	CHECK(n > 0);
	{
		struct proto_buf b;

		proto_rbuf_init(&b, rep, (u32)(n > 0 ? n : 0));
		CHECK(proto_get_varint(&b) == COW->st.copies && COW->st.copies >= 8);
		CHECK(proto_get_varint(&b) >= 1); /* waits */
		CHECK(proto_get_varint(&b) == 8); /* the whole budget was used */
		unsent = proto_get_varint(&b);
		CHECK(unsent == 0 && proto_rbuf_done(&b));
	}
	CHECK(transact(PROTO_CMD_COW_END, NULL, 0) == -2 - PROTO_E_STATE);
	CHECK(tx_req(PROTO_CMD_COW_READ, REQ(0x1000, 4096, 1)) == -2 - PROTO_E_STATE);
	/* Tracking is over: writes go straight through, the budget is back in the pool. */
	CHECK(hv_pages_free() >= pool_free0 + 8);
	CHECK(guest_store(slot_gpa(0) + 5 * PAGE_SIZE, stamp) == 0);
	/* Ended early: the pages never sent are counted and released. */
	CHECK(transact(PROTO_CMD_PAUSE, NULL, 0) == 0);
	CHECK(tx_req(PROTO_CMD_COW_ARM, REQ(4, 0)) > 0);
	CHECK(transact(PROTO_CMD_RESUME, NULL, 0) == 0);
	CHECK(guest_store(slot_gpa(0), stamp) == 0);
	CHECK(cow_end(COW, &unsent) == 0 && unsent == slot(0)->npages + slot(1)->npages);
	dispatcher_teardown();
}

static void test_mgmt_abuse(void)
{
	static u8 g[100000];
	u32 naks0;
	int n;

	dispatcher_setup();
	/* Bad CRC: NAK, then the next request works. */
	{
		static u8 w[64];
		struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, PROTO_CMD_INFO};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, payload, 8);

		w[wl - 8] = w[wl - 8] == 0x33 ? 0x34 : 0x33; /* payload or CRC, never a code byte */
		naks0 = naks_seen;
		for (u32 i = 0; i < wl; i++) {
			if (uart.count == 16)
				poll_once();
			uart_put(w[i]);
		}
		for (int i = 0; i < 10; i++)
			poll_once();
		CHECK(mg->c.bad_crc == 1);
		CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
		CHECK(naks_seen == naks0 + 1 && last_nak_err == PROTO_E_BAD_CRC);
	}
	/* A line error (overrun) inside a frame drops the frame, with a NAK. */
	{
		static u8 w[64];
		struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, PROTO_CMD_INFO};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, NULL, 0);

		for (u32 i = 0; i < 5; i++)
			uart_put(w[i]);
		poll_once();
		uart.line_error_next = true;
		for (u32 i = 5; i < wl; i++) {
			if (uart.count == 16)
				poll_once();
			uart_put(w[i]);
		}
		for (int i = 0; i < 10; i++)
			poll_once();
		CHECK(mg->c.line_errors == 1 && mg->c.framing == 1);
		CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
	}
	/* Oversize request: dropped with TOO_BIG. */
	{
		static u8 w[PROTO_MAX_WIRE];
		struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, PROTO_CMD_INFO};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, payload, 1000);

		for (u32 i = 0; i < wl; i++) {
			if (uart.count == 16)
				poll_once();
			uart_put(w[i]);
		}
		for (int i = 0; i < 10; i++)
			poll_once();
		CHECK(mg->c.too_big == 1);
		CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
	}
	/* A flood of random bytes, fed as fast as the FIFO takes them. */
	for (size_t i = 0; i < sizeof(g); i++)
		g[i] = (u8)rnd();
	for (size_t i = 0; i < sizeof(g); i++) {
		if (uart.count == 16)
			poll_once();
		uart_put(g[i]);
	}
	for (int i = 0; i < 100; i++)
		poll_once();
	n = transact(PROTO_CMD_INFO, NULL, 0);
	CHECK(n > 0);
	CHECK(mg->c.naks_sent + mg->c.naks_dropped > 100);

	/* The transmitter is busy: a complete request waits, and no byte is read past it. */
	uart.tx_room = 0;
	{
		static u8 w[64];
		struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, PROTO_CMD_INFO};
		u32 wl = proto_frame_encode(w, sizeof(w), &h, NULL, 0);
		u64 ok0 = mg->c.frames_ok;

		mg->tx_pos = 0; /* pretend the last reply is still going out */
		for (u32 i = 0; i < wl; i++)
			uart_put(w[i]);
		uart_put(0xaa);
		poll_once();
		CHECK(mg->rx_held && uart.count == 1 && mg->c.frames_ok == ok0);
		CHECK(mgmt_wants_poll(mg));
		uart.tx_room = 16;
		for (int i = 0; i < 200; i++)
			poll_once();
		CHECK(!mg->rx_held && mg->c.frames_ok == ok0 + 1);
		uart_put(0);
		poll_once();
	}
	CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
	CHECK(!mgmt_wants_poll(mg));
	dispatcher_teardown();
}

/* --- long commands in steps ----------------------------------------------------------- */

static int start_stop_all(bool start, u8 mode)
{
	struct proto_buf b;
	static u8 q[8];

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, PROTO_START_ALL);
	proto_put_varint(&b, 0);
	if (start)
		proto_put_u8(&b, mode);
	return tx_req(start ? PROTO_CMD_DIRTY_START : PROTO_CMD_DIRTY_STOP, b);
}

/* A request's wire form, for tests that send it by hand (or twice). */
static u32 wire_req(u8 *w, u32 cap, u16 id, u8 cmd, const u8 *payload, u32 len)
{
	struct proto_hdr h = {PROTO_VERSION, 0, id, cmd};

	return proto_frame_encode(w, cap, &h, payload, len);
}

/* Puts a whole (short) frame in the FIFO and polls once: the hypervisor reads it. */
static void send_short(const u8 *w, u32 wl)
{
	CHECK(wl <= 16);
	for (u32 i = 0; i < wl; i++)
		CHECK(uart_put(w[i]));
	poll_once();
}

/*
 * Host side of the line since the last call: counts CREDITs for id and
 * returns 1 if the reply to (id, cmd) came (its payload in rep, length in
 * *len, or *err for an error reply).
 */
static int host_scan(u16 id, u8 cmd, u32 *credits, int *len, int *err)
{
	static u32 pos;
	int got = 0;

	if (pos > uart.tx_len)
		pos = 0;
	for (; pos < uart.tx_len; pos++) {
		struct proto_hdr h;
		const u8 *p;
		u32 pl;

		if (proto_rx_byte(&host_rx, uart.tx[pos]) != PROTO_RX_GOOD)
			continue;
		proto_rx_frame(&host_rx, &h, &p, &pl);
		if (h.cmd == PROTO_CMD_CREDIT && h.id == id)
			(*credits)++;
		if (h.id == id && h.cmd == cmd) {
			got = 1;
			*err = (h.flags & PROTO_F_ERROR) ? p[0] : 0;
			memcpy(rep, p, pl);
			*len = (int)pl;
		}
	}
	uart.tx_len = pos = 0;
	return got;
}

/*
 * One scenario, run with a given step: start --all, a fixed pattern of
 * writes, a harvest with clear, the snapshot read whole. Returns the reply
 * to DIRTY_SNAP (in snap_rep) and the bitmap.
 */
static void harvest_scenario(u64 step_pages, u8 *snap_rep, int *snap_len, u64 *bm, int *steps)
{
	struct proto_buf q;
	u8 qq[8];
	u64 npages, steps0;
	u32 st = 7;

	dispatcher_setup();
	mgmt_set_step_pages(mg, step_pages);
	CHECK(start_stop_all(true, PROTO_DIRTY_WP) == 1 && rep[0] == 2);
	npages = slot(0)->npages;
	for (int i = 0; i < 500; i++) {
		st = st * 1103515245 + 12345;
		touch(0, (st >> 8) % npages);
	}
	touch(0, npages - 1);
	proto_wbuf_init(&q, qq, sizeof(qq));
	proto_put_varint(&q, 0);
	proto_put_u8(&q, PROTO_SNAP_CLEAR);
	steps0 = mg->c.steps;
	*snap_len = tx_req(PROTO_CMD_DIRTY_SNAP, q);
	*steps = (int)(mg->c.steps - steps0);
	CHECK(*snap_len > 0);
	memcpy(snap_rep, rep, *snap_len > 0 ? (size_t)*snap_len : 0);
	memset(bm, 0, npages / 8);
	CHECK(read_snapshot(0, 1, npages, bm) > 0);
	CHECK(DS->stats.max_step_work <= step_pages);
	dispatcher_teardown();
}

static void test_mgmt_steps_same_result(void)
{
	static u64 bm1[(8 << 20) / PAGE_SIZE / 64], bm2[(8 << 20) / PAGE_SIZE / 64];
	u8 r1[64], r2[64];
	int n1, n2, p1, p2;

	harvest_scenario(MGMT_STEP_PAGES_DEFAULT, r1, &n1, bm1, &p1);
	harvest_scenario(64, r2, &n2, bm2, &p2);
	/* The same reply and the same bits, however many steps it took. */
	CHECK(n1 == n2 && n1 > 0 && !memcmp(r1, r2, (size_t)n1));
	CHECK(!memcmp(bm1, bm2, sizeof(bm1)));
	/* One step (one poll) with the default step; 2048 pages in 64-page steps:
	 * 32 polls of mmu work, then one counting the snapshot's 32 words. */
	CHECK(p1 == 1);
	CHECK(p2 == 33);
}

static void test_mgmt_steps_start_stop(void)
{
	u64 c0;

	dispatcher_setup();
	mgmt_set_step_pages(mg, 100); /* rounded up to 128 */
	CHECK(mg->step_pages == 128);
	c0 = mg->c.credits_sent;
	/* 2048 + 1024 pages: 24 steps of 128 pages, one per poll. */
	CHECK(start_stop_all(true, PROTO_DIRTY_DBIT) == 1 && rep[0] == 2);
	CHECK(DS->stats.steps == 24 && DS->stats.max_step_work == 128 && last_polls >= 24);
	CHECK(slot_mode(0) == PROTO_DIRTY_DBIT && slot_mode(1) == PROTO_DIRTY_DBIT);
	CHECK(mg->c.long_cmds == 1 && mg->c.steps >= 24);
	/* Progress: a CREDIT for the running request every MGMT_PROGRESS_STEPS steps. */
	CHECK(mg->c.credits_sent >= c0 + 24 / MGMT_PROGRESS_STEPS);
	CHECK(start_stop_all(false, 0) == 1 && rep[0] == 2);
	CHECK(DS->stats.steps == 48 && slot_mode(0) == PROTO_DIRTY_OFF);
	CHECK(!mgmt_wants_poll(mg) && uart.overflows == 0);
	dispatcher_teardown();
}

static void test_mgmt_steps_busy_and_repeats(void)
{
	static u8 w[64];
	u8 body[] = {0, PROTO_SNAP_CLEAR};
	u16 id = ++next_id;
	u32 wl, credits = 0;
	int len = 0, err = 0, polls = 0, n;
	u64 harvests;

	dispatcher_setup();
	mgmt_set_step_pages(mg, 64);
	CHECK(start_stop_all(true, PROTO_DIRTY_WP) == 1);
	touch(0, 3);
	harvests = mg->c.harvests;
	wl = wire_req(w, sizeof(w), id, PROTO_CMD_DIRTY_SNAP, body, sizeof(body));
	send_short(w, wl);
	CHECK(mg->op.active && DS->op.req.kind == DS_OP_HARVEST && DS->stats.steps > 0);
	CHECK(mgmt_wants_poll(mg));
	/* Other commands are answered meanwhile... */
	CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
	CHECK(tx_req(PROTO_CMD_STATS, REQ(0)) > 0);
	CHECK(mg->op.active && DS->op.req.kind == DS_OP_HARVEST);
	/* ...dirty-log ones get BUSY, and are run once the command is over. */
	CHECK(tx_req(PROTO_CMD_DIRTY_READ, REQ(0, 1, 0)) == -2 - PROTO_E_BUSY);
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, 0, 64)) == -2 - PROTO_E_BUSY);
	CHECK(start_stop_all(false, 0) == -2 - PROTO_E_BUSY);
	CHECK(mg->c.busy == 3);
	/* The host times out and sends the same request again: not run twice. */
	send_short(w, wl);
	CHECK(mg->c.dup_requests == 1);
	while (!host_scan(id, PROTO_CMD_DIRTY_SNAP, &credits, &len, &err) && polls++ < 10000)
		poll_once();
	CHECK(err == 0 && len > 0);
	CHECK(mg->c.harvests == harvests + 1);
	/* A CREDIT answered the repeat at once; more came as progress. */
	CHECK(credits >= 1);
	/* Sent once more after the reply: answered from the kept reply, not run. */
	n = transact_wire(w, wl, id, PROTO_CMD_DIRTY_SNAP);
	CHECK(n == len && mg->c.harvests == harvests + 1 && mg->c.dup_requests == 2);
	/* The BUSY request, sent again now, is run. */
	CHECK(start_stop_all(false, 0) == 1);
	CHECK(!mgmt_wants_poll(mg));
	dispatcher_teardown();
}

/*
 * A harvest whose host goes away half way (a damaged frame, its NAK, a resend,
 * then silence; a new session), with the guest writing between steps: no
 * page written before the next harvest began is missing from the snapshot.
 */
static void test_mgmt_steps_nothing_lost(void)
{
	static u64 want[(8 << 20) / PAGE_SIZE / 64], got[(8 << 20) / PAGE_SIZE / 64];
	static u8 w[64], bad[64];
	u8 body[] = {0, PROTO_SNAP_CLEAR};
	u64 npages, nd, gen;
	u32 wl, bl, credits = 0;
	int len, err;
	u16 id = ++next_id;

	dispatcher_setup();
	npages = slot(0)->npages;
	mgmt_set_step_pages(mg, 64);
	CHECK(start_stop_all(true, PROTO_DIRTY_WP) == 1);
	memset(want, 0, sizeof(want));
	for (int i = 0; i < 200; i++) {
		u64 p = rnd() % npages;

		touch(0, p);
		proto_set_bit(want, p);
	}
	wl = wire_req(w, sizeof(w), id, PROTO_CMD_DIRTY_SNAP, body, sizeof(body));
	send_short(w, wl);
	for (int step = 0; step < 12; step++) {
		/* The guest writes between steps: behind and ahead of the cursor. */
		u64 p = rnd() % npages;

		touch(0, p);
		proto_set_bit(want, p);
		touch(0, npages - 1 - step);
		proto_set_bit(want, npages - 1 - step);
		touch(0, step * 64);
		proto_set_bit(want, step * 64);
		poll_once();
	}
	/* The same request damaged on the line: a NAK; the host resends it. */
	memcpy(bad, w, wl);
	bad[wl - 3] ^= 0x01;
	if (!bad[wl - 3])
		bad[wl - 3] = 0x55;
	bl = wl;
	send_short(bad, bl);
	CHECK(mg->c.bad_crc == 1);
	send_short(w, wl);
	CHECK(mg->c.dup_requests == 1);
	poll_once();
	/* The host dies: nobody reads the line. A new session says HELLO. */
	host_scan(0, 0, &credits, &len, &err);
	CHECK(tx_req(PROTO_CMD_HELLO, REQ(PROTO_CAPS_ALL, PROTO_MAX_PAYLOAD)) > 0);
	CHECK(tx_req(PROTO_CMD_DIRTY_SNAP, REQ(0, 1)) == -2 - PROTO_E_BUSY);
	for (int i = 0; i < 10000 && mgmt_wants_poll(mg); i++)
		poll_once();
	CHECK(!mgmt_wants_poll(mg) && mg->c.harvests == 1);
	/* Writes after the first harvest, then the new session's harvest. */
	touch(0, 17);
	proto_set_bit(want, 17);
	gen = snap(0, true, &nd);
	memset(got, 0, sizeof(got));
	CHECK(read_snapshot(0, gen, npages, got) == (s64)nd);
	CHECK(!memcmp(got, want, sizeof(got)));
	for (u64 wd = 0; wd < npages / 64; wd++)
		CHECK(slot_log(0)[wd] == 0);
	dispatcher_teardown();
}

/*
 * A start that cannot get its bitmaps (the hypervisor's pool is dry): the
 * NOMEM error (not BUSY: the host reports it at once), the slot is not
 * logging, nothing is left half done, and the port goes on answering; a
 * second try meets the same error.
 */
static void test_mgmt_start_without_memory(void)
{
	struct proto_buf b;
	u8 q[8];

	dispatcher_setup();
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, 0);
	proto_put_varint(&b, 1);
	proto_put_u8(&b, PROTO_DIRTY_WP);
	host_machine_drain_pool(&host_port.m, 0);
	CHECK(hv_pages_free() == 0);
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == -2 - PROTO_E_NOMEM);
	CHECK(slot_mode(1) == PROTO_DIRTY_OFF && !ds_busy(DS));
	CHECK(!mgmt_wants_poll(mg));
	CHECK(transact(PROTO_CMD_INFO, NULL, 0) > 0);
	CHECK(tx_req(PROTO_CMD_DIRTY_START, b) == -2 - PROTO_E_NOMEM);
	CHECK(slot_mode(1) == PROTO_DIRTY_OFF && !ds_busy(DS));
	dispatcher_teardown();
}

/* DIRTY_CLEAR of most of a slot in 64-page steps: the result of the one-step clear. */
static void test_mgmt_steps_clear(void)
{
	u64 npages, nd, steps0, want = 0;

	dispatcher_setup();
	npages = slot(0)->npages;
	mgmt_set_step_pages(mg, 64);
	CHECK(start_stop_all(true, PROTO_DIRTY_WP) == 1);
	for (u64 p = 0; p < npages; p += 7)
		touch(0, p);
	touch(0, npages - 1); /* past the range's end */
	snap(0, false, &nd);
	for (u64 p = 0; p < npages; p += 7)
		want += p >= 3 && p < npages - 3;
	touch(0, 1000); /* after the snapshot: keeps its logged bit */
	steps0 = mg->c.steps;
	CHECK(tx_req(PROTO_CMD_DIRTY_CLEAR, REQ(0, 3, npages - 6)) > 0);
	{
		struct proto_buf b;

		proto_rbuf_init(&b, rep, 8);
		CHECK(proto_get_varint(&b) == want);
	}
	CHECK(mg->c.steps - steps0 == npages / 64);
	CHECK(proto_test_bit(slot_log(0), 0) && !proto_test_bit(slot_log(0), 7));
	CHECK(proto_test_bit(slot_log(0), 1000) && proto_test_bit(slot_log(0), npages - 1));
	CHECK(proto_test_bit(slot_view(0), 0) && !proto_test_bit(slot_view(0), 7) &&
	      !proto_test_bit(slot_view(0), 1001) && proto_test_bit(slot_view(0), npages - 1));
	CHECK(!mgmt_wants_poll(mg));
	dispatcher_teardown();
}

/* DIRTY_DONE and the snapshot count of a 64 MiB slot (256 words) with 64-page steps. */
static void test_mgmt_steps_done(void)
{
	u64 nd, gen, steps0;

	dispatcher_setup_mib(64);
	mgmt_set_step_pages(mg, 64);
	CHECK(start_stop_all(true, PROTO_DIRTY_DBIT) == 1);
	for (u64 p = 0; p < slot(0)->npages; p += 3)
		touch(0, p);
	gen = snap(0, true, &nd);
	CHECK(nd == (slot(0)->npages + 2) / 3);
	steps0 = mg->c.steps;
	CHECK(tx_req(PROTO_CMD_DIRTY_DONE, REQ(0, gen)) == 0);
	/* 256 words, 64 a step. */
	CHECK(mg->c.steps - steps0 == 4);
	for (u64 w = 0; w < slot(0)->npages / 64; w++)
		CHECK(slot_view(0)[w] == 0);
	gen = snap(0, true, &nd);
	CHECK(nd == 0);
	CHECK(!mgmt_wants_poll(mg));
	dispatcher_teardown();
}

int main(void)
{
	memset(payload, 0x33, sizeof(payload));
	test_run("proto.crc32c", test_crc);
	test_run("proto.varint", test_varint);
	test_run("proto.frame_roundtrip", test_frames);
	test_run("proto.decoder_resync_and_errors", test_decoder);
	test_run("proto.bitmap_blocks", test_bitmap);
	test_run("proto.mem_tokens", test_lz);
	test_run("mgmt.hello_info_slots_errors", test_mgmt_basic);
	test_run("mgmt.dirty_snapshot_read_clear", test_mgmt_dirty);
	test_run("mgmt.mem_read_window_credit", test_mgmt_mem);
	test_run("mgmt.cow_arm_read_end", test_mgmt_cow);
	test_run("mgmt.abuse_then_recover", test_mgmt_abuse);
	test_run("mgmt.steps_same_reply_as_one_step", test_mgmt_steps_same_result);
	test_run("mgmt.steps_start_stop_all", test_mgmt_steps_start_stop);
	test_run("mgmt.steps_busy_and_repeats", test_mgmt_steps_busy_and_repeats);
	test_run("mgmt.steps_interrupted_harvest_loses_nothing", test_mgmt_steps_nothing_lost);
	test_run("mgmt.start_without_memory_fails_cleanly", test_mgmt_start_without_memory);
	test_run("mgmt.steps_clear_range", test_mgmt_steps_clear);
	test_run("mgmt.steps_done_and_count", test_mgmt_steps_done);
	return test_failures ? 1 : 0;
}
