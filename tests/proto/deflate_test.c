/* SPDX-License-Identifier: MIT */
/*
 * The DEFLATE coder of MEM_READ/COW_READ replies (hv/proto/deflate.c) against
 * zlib, through the host's decoder (tools/ptctl/inflate.c): random, zero, fill,
 * repeated, text-like and memory-like pages; every length of a page; every
 * room a reply may leave (so every place a block is cut); items whose
 * dictionary is an earlier item; damaged replies that must never decode to
 * wrong bytes. ASan+UBSan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hv/proto/proto.h"
#include "tests/check.h"
#include "tools/ptctl/inflate.h"

static struct proto_deflate dfl;
static struct pt_inflate *inf;
static u64 rng = 0x9e3779b97f4a7c15ull;

static u64 rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

enum kind { K_RANDOM, K_ZERO, K_FILL, K_TEXT, K_MEMORY, K_SPARSE, K_NR };
static const char *kind_name[K_NR] = {"random", "zero", "fill", "text", "memory", "sparse"};

static void fill_page(u8 *p, u32 len, enum kind k)
{
	static const char *words[] = {"the ",	"kernel ", "page ",   "dirty ", "snapshot ",
				      "guest ", "write ",  "memory ", "of ",	"\n",
				      "0x",	"struct ", "return ", "= ",	"; "};

	switch (k) {
	case K_RANDOM:
		for (u32 i = 0; i < len; i++)
			p[i] = (u8)rnd();
		break;
	case K_ZERO:
		memset(p, 0, len);
		break;
	case K_FILL:
		memset(p, 0xa5, len);
		break;
	case K_TEXT:
		for (u32 i = 0; i < len;) {
			const char *w = words[rnd() % ARRAY_SIZE(words)];

			for (; *w && i < len; w++)
				p[i++] = (u8)*w;
		}
		break;
	case K_MEMORY:
		/* Kernel-like: pointers into one region, small counters, zero padding. */
		for (u32 i = 0; i + 8 <= len; i += 8) {
			u64 v = 0, r = rnd();

			if (r % 4 == 0)
				v = 0xffff888000000000ull | ((r >> 8) & 0xffffff) << 6;
			else if (r % 4 == 1)
				v = (r >> 32) & 0xff;
			memcpy(p + i, &v, 8);
		}
		for (u32 i = len & ~7u; i < len; i++)
			p[i] = 0x11;
		break;
	case K_SPARSE:
		memset(p, 0, len);
		for (u32 i = 0; i < len / 64; i++)
			p[rnd() % len] = (u8)rnd();
		break;
	case K_NR:
		break;
	}
}

/* Decodes a reply body; true when it decodes and equals want[0..n). */
static bool decodes_to(const u8 *body, u32 blen, const u8 *want, u64 n)
{
	static u8 out[PROTO_DFL_IN_MAX + 4 * PAGE_SIZE];
	struct proto_buf b;
	u64 o = 0;

	proto_rbuf_init(&b, body, blen);
	if (!pt_inflate_reply(inf, &b, out, &o, sizeof(out)))
		return false;
	return o == n && !memcmp(out, want, n);
}

/* One item of src[0..len) with @room: the bytes covered, the reply in rep. */
static u32 one_item(const u8 *src, u32 len, u32 room, u8 *rep, u32 *rlen)
{
	struct proto_buf b;
	u32 done;

	proto_wbuf_init(&b, rep, PROTO_MAX_PAYLOAD);
	proto_dfl_begin(&dfl);
	done = proto_dfl_page(&dfl, src, len, room);
	CHECK(proto_dfl_end_item(&dfl, &b));
	CHECK(b.len <= room + PROTO_DFL_ITEM_OVERHEAD);
	*rlen = b.len;
	return done;
}

/* Every length of a page, every kind: whole when it fits, the prefix exact. */
static void test_every_length(void)
{
	static u8 src[PAGE_SIZE], rep[PROTO_MAX_PAYLOAD];
	u32 room = PROTO_MAX_PAYLOAD - PROTO_DFL_ITEM_OVERHEAD;

	for (int k = 0; k < K_NR; k++) {
		u64 bytes = 0, in = 0;

		fill_page(src, PAGE_SIZE, (enum kind)k);
		for (u32 len = 1; len <= PAGE_SIZE; len++) {
			u32 rlen, done = one_item(src, len, room, rep, &rlen);

			CHECK(done > 0 && done <= len);
			if (k != K_RANDOM)
				CHECK(done == len);
			CHECK(decodes_to(rep, rlen, src, done));
			bytes += rlen;
			in += done;
		}
		printf("  every length, %s: %.3f wire bytes per byte\n", kind_name[k],
		       (double)bytes / (double)in);
	}
	/* Compression that pays: text and memory well under half, a zero page tiny. */
	fill_page(src, PAGE_SIZE, K_TEXT);
	{
		u32 rlen;

		CHECK(one_item(src, PAGE_SIZE, room, rep, &rlen) == PAGE_SIZE);
		CHECK(rlen < PAGE_SIZE / 2);
	}
}

/* Every room from the least to a whole frame: every cut of blocks and symbols. */
static void test_every_room(void)
{
	static u8 src[3 * PAGE_SIZE], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;

	for (int k = 0; k < K_NR; k++) {
		if (k == K_ZERO)
			continue;
		fill_page(src, PAGE_SIZE, (enum kind)k);
		fill_page(src + PAGE_SIZE, PAGE_SIZE, K_MEMORY);
		memcpy(src + 2 * PAGE_SIZE, src, PAGE_SIZE); /* a repeat of the first */
		for (u32 room = 1; room <= PROTO_MAX_PAYLOAD - PROTO_DFL_ITEM_OVERHEAD; room++) {
			u32 covered = 0;

			proto_wbuf_init(&b, rep, PROTO_MAX_PAYLOAD);
			proto_dfl_begin(&dfl);
			for (u32 pg = 0; pg < 3; pg++) {
				u32 d = proto_dfl_page(&dfl, src + pg * PAGE_SIZE, PAGE_SIZE, room);

				covered += d;
				if (d < PAGE_SIZE)
					break;
			}
			CHECK(proto_dfl_end_item(&dfl, &b));
			CHECK(b.len <= room + PROTO_DFL_ITEM_OVERHEAD);
			/* Nothing covered: nothing sent. */
			CHECK(covered || b.len == 0);
			if (covered)
				CHECK(decodes_to(rep, b.len, src, covered));
			/* Past a few hundred bytes of room every kind gets somewhere. */
			if (room >= 600)
				CHECK(covered > 0);
		}
	}
}

/*
 * A reply as the hypervisor builds it: items split by zero runs, the later
 * items matching into the earlier ones (the preset dictionary).
 */
static void test_items_and_dictionary(void)
{
	static u8 mem[6 * PAGE_SIZE], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 room = PROTO_MAX_PAYLOAD - PROTO_DFL_ITEM_OVERHEAD, first_item;

	fill_page(mem, PAGE_SIZE, K_TEXT);
	memset(mem + PAGE_SIZE, 0, 2 * PAGE_SIZE);
	memcpy(mem + 3 * PAGE_SIZE, mem, PAGE_SIZE); /* the first page again */
	memset(mem + 4 * PAGE_SIZE, 0, PAGE_SIZE);
	memcpy(mem + 5 * PAGE_SIZE, mem, PAGE_SIZE);
	mem[5 * PAGE_SIZE + 100] ^= 1;

	proto_wbuf_init(&b, rep, PROTO_MAX_PAYLOAD);
	proto_dfl_begin(&dfl);
	CHECK(proto_dfl_page(&dfl, mem, PAGE_SIZE, room) == PAGE_SIZE);
	CHECK(proto_dfl_end_item(&dfl, &b));
	first_item = b.len;
	CHECK(proto_put_zero_run(&b, 2 * PAGE_SIZE));
	room = proto_wbuf_room(&b) - PROTO_DFL_ITEM_OVERHEAD;
	CHECK(proto_dfl_page(&dfl, mem + 3 * PAGE_SIZE, PAGE_SIZE, room) == PAGE_SIZE);
	CHECK(proto_dfl_end_item(&dfl, &b));
	/* A page equal to one 3 pages back costs a few dozen bytes, not a page. */
	CHECK(b.len - first_item < 80);
	CHECK(proto_put_zero_run(&b, PAGE_SIZE));
	room = proto_wbuf_room(&b) - PROTO_DFL_ITEM_OVERHEAD;
	CHECK(proto_dfl_page(&dfl, mem + 5 * PAGE_SIZE, PAGE_SIZE, room) == PAGE_SIZE);
	CHECK(proto_dfl_end_item(&dfl, &b));
	CHECK(decodes_to(rep, b.len, mem, sizeof(mem)));
	printf("  items: text page %u bytes, 6 pages %u bytes\n", first_item, b.len);

	/* The input buffer's end: a page that does not fit is refused, nothing lost. */
	proto_wbuf_init(&b, rep, PROTO_MAX_PAYLOAD);
	proto_dfl_begin(&dfl);
	{
		u32 n = 0, covered = 0;
		static u8 z[PAGE_SIZE];

		memset(z, 0x5a, sizeof(z));
		z[7] = 1;
		while (n < PROTO_DFL_IN_MAX / PAGE_SIZE + 2) {
			u32 d = proto_dfl_page(&dfl, z, PAGE_SIZE, 2000);

			covered += d;
			n++;
			if (d < PAGE_SIZE)
				break;
		}
		CHECK(covered == PROTO_DFL_IN_MAX);
		CHECK(proto_dfl_end_item(&dfl, &b));
		{
			static u8 want[PROTO_DFL_IN_MAX];

			for (u32 i = 0; i < PROTO_DFL_IN_MAX; i += PAGE_SIZE)
				memcpy(want + i, z, PAGE_SIZE);
			CHECK(decodes_to(rep, b.len, want, covered));
		}
	}
}

/* Damage anywhere: the reply fails to decode, or decodes to exactly the original. */
static void test_damage(void)
{
	static u8 src[2 * PAGE_SIZE], rep[PROTO_MAX_PAYLOAD], bad[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 room = PROTO_MAX_PAYLOAD - PROTO_DFL_ITEM_OVERHEAD, refused = 0, total = 0;

	fill_page(src, PAGE_SIZE, K_MEMORY);
	fill_page(src + PAGE_SIZE, PAGE_SIZE, K_TEXT);
	proto_wbuf_init(&b, rep, PROTO_MAX_PAYLOAD);
	proto_dfl_begin(&dfl);
	CHECK(proto_dfl_page(&dfl, src, PAGE_SIZE, room) == PAGE_SIZE);
	CHECK(proto_dfl_page(&dfl, src + PAGE_SIZE, PAGE_SIZE, room) == PAGE_SIZE);
	CHECK(proto_dfl_end_item(&dfl, &b));
	CHECK(decodes_to(rep, b.len, src, sizeof(src)));
	for (u32 i = 0; i < b.len; i++) {
		for (u32 bit = 0; bit < 8; bit += 3) {
			struct proto_buf r;
			static u8 out[4 * PAGE_SIZE];
			u64 o = 0;

			memcpy(bad, rep, b.len);
			bad[i] ^= (u8)(1u << bit);
			proto_rbuf_init(&r, bad, b.len);
			total++;
			if (!pt_inflate_reply(inf, &r, out, &o, sizeof(out))) {
				refused++;
				continue;
			}
			CHECK(o == sizeof(src) && !memcmp(out, src, sizeof(src)));
		}
		/* Cut short anywhere: refused. */
		{
			struct proto_buf r;
			static u8 out[4 * PAGE_SIZE];
			u64 o = 0;

			proto_rbuf_init(&r, rep, i);
			CHECK(i == 0 || !pt_inflate_reply(inf, &r, out, &o, sizeof(out)));
		}
	}
	printf("  damage: %u of %u flips refused, the rest decoded exactly\n", refused, total);
	CHECK(refused > total * 9 / 10);
}

/* A reply whose length would overflow the host's buffer is refused. */
static void test_caps(void)
{
	static u8 src[PAGE_SIZE], rep[PROTO_MAX_PAYLOAD], out[PAGE_SIZE];
	struct proto_buf r;
	u32 rlen;
	u64 o = 1;

	fill_page(src, PAGE_SIZE, K_TEXT);
	CHECK(one_item(src, PAGE_SIZE, 3000, rep, &rlen) == PAGE_SIZE);
	proto_rbuf_init(&r, rep, rlen);
	CHECK(!pt_inflate_reply(inf, &r, out, &o, sizeof(out)));
	o = 0;
	proto_rbuf_init(&r, rep, rlen);
	CHECK(pt_inflate_reply(inf, &r, out, &o, sizeof(out)) && o == PAGE_SIZE);
}

int main(void)
{
	inf = pt_inflate_new();
	if (!inf)
		return 1;
	memset(&dfl, 0xa5, sizeof(dfl)); /* as hidden memory may hold anything */
	proto_dfl_init(&dfl);
	test_run("deflate.every_length", test_every_length);
	test_run("deflate.every_room", test_every_room);
	test_run("deflate.items_and_dictionary", test_items_and_dictionary);
	test_run("deflate.damage", test_damage);
	test_run("deflate.host_buffer", test_caps);
	pt_inflate_free(inf);
	return test_failures ? 1 : 0;
}
