/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the codec's decoders, the ones that read bytes from the
 * line (ptctl and the hypervisor both run them on untrusted input), and the
 * encode/decode round trips. The first byte picks what the rest feeds:
 *   0  the streaming frame decoder, byte by byte
 *   1  dirty-bitmap blocks (page count from the next two bytes)
 *   2  a memory token stream
 *   3  round trip: the rest as a frame payload, encoded and decoded
 *   4  round trip: the rest as a bitmap, encoded in blocks and decoded
 *   5  round trip: the rest as a page, compressed into a bounded buffer
 * and, by the whole first byte (these two take 0xd0 and 0xd1 from the above):
 *   0xd0  a DEFLATE reply body, through the host's decoder (zlib)
 *   0xd1  round trip: the rest as pages, DEFLATE-coded into a bounded room, inflated
 * A failed round trip traps.
 */
#include <hv/proto/proto.h>

#include "tools/ptctl/inflate.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

static u8 frame[PROTO_MAX_FRAME + 8], wire[PROTO_MAX_WIRE + 8];
static u64 bm[PROTO_BITMAP_BLOCK * 2 / 64], bm2[PROTO_BITMAP_BLOCK * 2 / 64];
static u8 out[1 << 16];
static struct proto_lz lz;
static struct proto_deflate dfl;
static struct pt_inflate *inf;

static void decoder(const u8 *d, size_t n)
{
	struct proto_rx rx;

	proto_rx_init(&rx, frame, (u32)(n % 2 ? PROTO_MAX_REQ_FRAME : sizeof(frame)));
	for (size_t i = 0; i < n; i++) {
		if (proto_rx_byte(&rx, d[i]) == PROTO_RX_GOOD) {
			struct proto_hdr h;
			const u8 *p;
			u32 pl;
			struct proto_buf b;
			char s[32];

			proto_rx_frame(&rx, &h, &p, &pl);
			if (pl > rx.cap)
				__builtin_trap();
			proto_rbuf_init(&b, p, pl);
			while (!b.err && proto_rbuf_left(&b)) {
				proto_get_varint(&b);
				proto_get_str(&b, s, sizeof(s));
			}
		}
	}
}

static void bitmap_decode(const u8 *d, size_t n)
{
	struct proto_buf b;
	u32 pages;

	if (n < 2)
		return;
	pages = 1 + ((d[0] | d[1] << 8) % PROTO_BITMAP_BLOCK);
	proto_rbuf_init(&b, d + 2, (u32)(n - 2));
	memset(bm, 0, sizeof(bm));
	while (proto_rbuf_left(&b))
		if (proto_bitmap_decode_block(&b, bm, pages / 3, pages) < 0)
			break;
}

static void tokens_decode(const u8 *d, size_t n)
{
	struct proto_buf b;
	u64 ol = 0;

	proto_rbuf_init(&b, d, (u32)n);
	proto_tokens_decode(&b, out, &ol, sizeof(out));
	if (ol > sizeof(out))
		__builtin_trap();
}

static void frame_roundtrip(const u8 *d, size_t n)
{
	struct proto_hdr h = {PROTO_VERSION, 0, (u16)n, (u8)(n >> 3)}, rh;
	const u8 *p;
	u32 pl, wl;
	u8 err;

	if (n > PROTO_MAX_PAYLOAD)
		n = PROTO_MAX_PAYLOAD;
	wl = proto_frame_encode(wire, sizeof(wire), &h, d, (u32)n);
	if (!wl ||
	    proto_decode_frame(wire, wl, frame, sizeof(frame), &rh, &p, &pl, &err) != PROTO_RX_GOOD)
		__builtin_trap();
	if (pl != n || memcmp(p, d, n) || rh.id != h.id || rh.cmd != h.cmd)
		__builtin_trap();
}

static void bitmap_roundtrip(const u8 *d, size_t n)
{
	u8 enc[PROTO_BITMAP_BLOCK_MAX * 2 + 8];
	struct proto_buf b;
	u32 pages, pos = 0, first;

	if (n < 3)
		return;
	first = d[0] % 64;
	pages = (u32)((n - 1) * 8 - first);
	if (pages > PROTO_BITMAP_BLOCK * 2 - 64)
		pages = PROTO_BITMAP_BLOCK * 2 - 64;
	memset(bm, 0, sizeof(bm));
	memcpy(bm, d + 1, (n - 1) < sizeof(bm) ? n - 1 : sizeof(bm));
	memset(bm2, 0, sizeof(bm2));
	while (pos < pages) {
		u32 cnt = pages - pos < PROTO_BITMAP_BLOCK ? pages - pos : PROTO_BITMAP_BLOCK;

		proto_wbuf_init(&b, enc, sizeof(enc));
		if (!proto_bitmap_encode_block(&b, bm, first + pos, cnt))
			__builtin_trap();
		proto_rbuf_init(&b, enc, b.len);
		if (proto_bitmap_decode_block(&b, bm2, pos, cnt) < 0 || !proto_rbuf_done(&b))
			__builtin_trap();
		pos += cnt;
	}
	for (u32 i = 0; i < pages; i++)
		if (proto_test_bit(bm, first + i) != proto_test_bit(bm2, i))
			__builtin_trap();
}

static void lz_roundtrip(const u8 *d, size_t n)
{
	u8 enc[PAGE_SIZE * 2];
	struct proto_buf b;
	u32 cap, covered;
	u64 ol = 0;

	if (n < 2)
		return;
	cap = 2 + (d[0] * 37u) % sizeof(enc);
	d++;
	n--;
	if (n > PAGE_SIZE)
		n = PAGE_SIZE;
	proto_wbuf_init(&b, enc, cap);
	covered = proto_lz_compress(&lz, &b, d, (u32)n);
	if (covered > n || b.err)
		__builtin_trap();
	proto_rbuf_init(&b, enc, b.len);
	if (!proto_tokens_decode(&b, out, &ol, sizeof(out)) || ol != covered ||
	    memcmp(out, d, covered))
		__builtin_trap();
}

static void deflate_decode(const u8 *d, size_t n)
{
	struct proto_buf b;
	u64 ol = 0;

	if (!inf && !(inf = pt_inflate_new()))
		__builtin_trap();
	proto_rbuf_init(&b, d, (u32)n);
	pt_inflate_reply(inf, &b, out, &ol, sizeof(out));
	if (ol > sizeof(out))
		__builtin_trap();
}

/* The input as consecutive pages (each its own length), one reply's room from d[0]. */
static void deflate_roundtrip(const u8 *d, size_t n)
{
	static u8 enc[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 room, covered = 0;
	u64 ol = 0;

	if (n < 2)
		return;
	if (!inf && !(inf = pt_inflate_new()))
		__builtin_trap();
	if (!dfl.fixed_ready)
		proto_dfl_init(&dfl);
	room = 1 + (d[0] * 61u) % (PROTO_MAX_PAYLOAD - PROTO_DFL_ITEM_OVERHEAD);
	d++;
	n--;
	proto_wbuf_init(&b, enc, sizeof(enc));
	proto_dfl_begin(&dfl);
	while (covered < n) {
		u32 len = n - covered > PAGE_SIZE ? PAGE_SIZE : (u32)(n - covered);
		u32 done = proto_dfl_page(&dfl, d + covered, len, room);

		if (done > len)
			__builtin_trap();
		covered += done;
		if (done < len)
			break;
	}
	if (!proto_dfl_end_item(&dfl, &b) || b.len > room + PROTO_DFL_ITEM_OVERHEAD)
		__builtin_trap();
	proto_rbuf_init(&b, enc, b.len);
	if (!pt_inflate_reply(inf, &b, out, &ol, sizeof(out)) || ol != covered ||
	    memcmp(out, d, covered))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] == 0xd0 || data[0] == 0xd1) {
		if (data[0] == 0xd0)
			deflate_decode(data + 1, size - 1);
		else
			deflate_roundtrip(data + 1, size - 1);
		return 0;
	}
	switch (data[0] % 6) {
	case 0:
		decoder(data + 1, size - 1);
		break;
	case 1:
		bitmap_decode(data + 1, size - 1);
		break;
	case 2:
		tokens_decode(data + 1, size - 1);
		break;
	case 3:
		frame_roundtrip(data + 1, size - 1);
		break;
	case 4:
		bitmap_roundtrip(data + 1, size - 1);
		break;
	default:
		lz_roundtrip(data + 1, size - 1);
		break;
	}
	return 0;
}
