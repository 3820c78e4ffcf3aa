/* SPDX-License-Identifier: MIT */
/*
 * A DEFLATE (RFC 1951) compressor for MEM_READ and COW_READ replies
 * (PROTO_MEM_DEFLATE, docs/protocol.md section 7): LZ77 over the reply's
 * non-zero pages with hash chains of bounded depth, each page's symbols coded
 * as one block, fixed Huffman codes (RFC 1951, 3.2.6) or stored (3.2.4),
 * whichever is shorter. The host decodes with zlib.
 *
 * Written for the hypervisor: no libc, no allocation (the caller gives one
 * struct proto_deflate), no recursion, bounded work per call (one page: at
 * most PROTO_DFL_CHAIN candidates per position). A reply fits the frame:
 * the coder stops where the output would not fit and says how many input
 * bytes its output covers, as proto_lz_compress does.
 */
#include <hv/proto/proto.h>

/* RFC 1951, 3.2.5: the shortest and longest match, the farthest distance. */
#define DFL_MIN_MATCH 3
#define DFL_MAX_MATCH 258
#define DFL_EOB	      256
/* Bits the item's end takes: an empty final fixed block (3 + 7) and the padding. */
#define DFL_END_BITS (3 + 7 + 7)
/* A symbol's most bits with fixed codes: length 8 + 5 extra, distance 5 + 13 extra. */
#define DFL_SYM_MAX_BITS 31

/* head[] holds (generation << PROTO_DFL_POS_BITS) | (position + 1). */
#define DFL_POS_MASK ((1u << PROTO_DFL_POS_BITS) - 1)

_Static_assert(PROTO_DFL_IN_MAX < (1u << PROTO_DFL_POS_BITS), "positions fit head entries");
_Static_assert(PROTO_DFL_WIN <= 32768, "RFC 1951 distances reach 32 KiB back");

static inline u32 dfl_hash(const u8 *p)
{
	u32 v = (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16;

	return (v * 2654435761u) >> (32 - PROTO_DFL_HASH_BITS);
}

/* Huffman codes go on the wire most significant bit first (RFC 1951, 3.1.1). */
static inline u32 dfl_rev(u32 code, u32 len)
{
	u32 r = 0;

	for (u32 i = 0; i < len; i++, code >>= 1)
		r = (r << 1) | (code & 1);
	return r;
}

static void dfl_bits(struct proto_deflate *d, u32 v, u32 n)
{
	d->bitbuf |= (u64)v << d->bitcnt;
	d->bitcnt += n;
	while (d->bitcnt >= 8) {
		if (d->out_len < sizeof(d->out))
			d->out[d->out_len] = (u8)d->bitbuf;
		else
			d->err = true; /* the room checks make this unreachable */
		d->out_len++;
		d->bitbuf >>= 8;
		d->bitcnt -= 8;
	}
}

static void dfl_align(struct proto_deflate *d)
{
	if (d->bitcnt)
		dfl_bits(d, 0, 8 - d->bitcnt);
}

/* Fixed literal/length code of symbol s (RFC 1951, 3.2.6): value and length. */
static inline u32 fixed_lit_len(u32 s)
{
	return s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
}

static void put_fixed_lit(struct proto_deflate *d, u32 s)
{
	u32 code = s < 144   ? 0x30 + s
		   : s < 256 ? 0x190 + (s - 144)
		   : s < 280 ? s - 256
			     : 0xc0 + (s - 280);
	u32 len = fixed_lit_len(s);

	dfl_bits(d, dfl_rev(code, len), len);
}

/* RFC 1951, 3.2.5: a length's code (257..285), extra bits and their value. */
static inline void len_code(u32 l, u32 *code, u32 *nextra, u32 *extra)
{
	u32 x = l - DFL_MIN_MATCH, n;

	if (l == DFL_MAX_MATCH) {
		*code = 285;
		*nextra = 0;
		*extra = 0;
		return;
	}
	if (x < 8) {
		*code = 257 + x;
		*nextra = 0;
		*extra = 0;
		return;
	}
	n = 31 - (u32)__builtin_clz(x);
	*code = 257 + 4 * (n - 1) + ((x >> (n - 2)) & 3);
	*nextra = n - 2;
	*extra = x & ((1u << (n - 2)) - 1);
}

/* RFC 1951, 3.2.5: a distance's code (0..29), extra bits and their value. */
static inline void dist_code(u32 dist, u32 *code, u32 *nextra, u32 *extra)
{
	u32 x = dist - 1, n;

	if (x < 4) {
		*code = x;
		*nextra = 0;
		*extra = 0;
		return;
	}
	n = 31 - (u32)__builtin_clz(x);
	*code = 2 * n + ((x >> (n - 1)) & 1);
	*nextra = n - 1;
	*extra = x & ((1u << (n - 1)) - 1);
}

/* Bits of one symbol with fixed codes. */
static u32 sym_fixed_bits(const struct proto_deflate *d, u32 i)
{
	u32 code, ne, ex, bits;

	if (!d->sym_dist[i])
		return fixed_lit_len(d->sym_lit[i]);
	len_code(d->sym_lit[i], &code, &ne, &ex);
	bits = fixed_lit_len(code) + ne;
	dist_code(d->sym_dist[i], &code, &ne, &ex);
	return bits + 5 + ne;
}

static void put_sym_fixed(struct proto_deflate *d, u32 i)
{
	u32 code, ne, ex;

	if (!d->sym_dist[i]) {
		put_fixed_lit(d, d->sym_lit[i]);
		return;
	}
	len_code(d->sym_lit[i], &code, &ne, &ex);
	put_fixed_lit(d, code);
	if (ne)
		dfl_bits(d, ex, ne);
	dist_code(d->sym_dist[i], &code, &ne, &ex);
	dfl_bits(d, dfl_rev(code, 5), 5);
	if (ne)
		dfl_bits(d, ex, ne);
}

/* Input bytes of symbol i. */
static inline u32 sym_bytes(const struct proto_deflate *d, u32 i)
{
	return d->sym_dist[i] ? d->sym_lit[i] : 1;
}

void proto_dfl_begin(struct proto_deflate *d)
{
	d->in_len = 0;
	d->last_dist = 0;
	d->item_open = false;
	d->full = false;
	d->err = false;
	/* A new generation makes every head entry stale without clearing it. */
	if (++d->gen >= (1u << (32 - PROTO_DFL_POS_BITS))) {
		for (u32 h = 0; h < ARRAY_SIZE(d->head); h++)
			d->head[h] = 0;
		d->gen = 1;
	}
}

/* The latest earlier position with hash h in this reply, or -1. */
static inline s32 head_get(const struct proto_deflate *d, u32 h)
{
	u32 e = d->head[h];

	if (e >> PROTO_DFL_POS_BITS != d->gen || !(e & DFL_POS_MASK))
		return -1;
	return (s32)(e & DFL_POS_MASK) - 1;
}

/* Inserts position p (p + 3 <= end of the input so far). */
static inline void dfl_insert(struct proto_deflate *d, u32 p)
{
	u32 h = dfl_hash(d->in + p);
	s32 c = head_get(d, h);

	d->prev[p] = c >= 0 && p - (u32)c <= PROTO_DFL_WIN ? (u16)(p - (u32)c - 1) : 0xffff;
	d->head[h] = d->gen << PROTO_DFL_POS_BITS | (p + 1);
}

/* Length of the match of in[p..) against in[cand..), at most max. */
static inline u32 match_len(const struct proto_deflate *d, u32 cand, u32 p, u32 max)
{
	u32 l = 0;

	while (l < max && d->in[cand + l] == d->in[p + l])
		l++;
	return l;
}

/*
 * LZ77 over in[p0, p1): symbols into sym_*; matches reach back into this
 * reply's input. Besides the hash chain (the most recent candidates first,
 * PROTO_DFL_CHAIN of them), two candidates the chain would miss behind many
 * nearer short matches: the last match's distance (a copied region goes on at
 * it), and at the segment's start the same offset in each earlier page (a page
 * equal to an earlier one: then 16 matches of 258 bytes code the whole page).
 */
static void dfl_lz77(struct proto_deflate *d, u32 p0, u32 p1)
{
	u32 p = p0;

	d->nsym = 0;
	while (p < p1) {
		u32 best = 0, best_dist = 0, max = p1 - p;

		if (max > DFL_MAX_MATCH)
			max = DFL_MAX_MATCH;
		if (d->last_dist && d->last_dist <= p && d->last_dist <= PROTO_DFL_WIN) {
			best = match_len(d, p - d->last_dist, p, max);
			best_dist = d->last_dist;
		}
		if (p == p0 && best < max) {
			for (u32 k = PAGE_SIZE; k <= p && k <= PROTO_DFL_WIN; k += PAGE_SIZE) {
				u32 l = match_len(d, p - k, p, max);

				if (l > best) {
					best = l;
					best_dist = k;
				}
			}
		}
		if (p + DFL_MIN_MATCH <= p1) {
			s32 c = head_get(d, dfl_hash(d->in + p));
			u32 chain = best == max ? 0 : PROTO_DFL_CHAIN;

			dfl_insert(d, p);
			while (c >= 0 && chain--) {
				u32 cand = (u32)c, dist = p - cand, l;

				if (dist > PROTO_DFL_WIN)
					break;
				if (d->in[cand + best] == d->in[p + best]) {
					l = match_len(d, cand, p, max);
					if (l > best) {
						best = l;
						best_dist = dist;
						if (l == max)
							break;
					}
				}
				if (d->prev[cand] == 0xffff)
					break;
				c = (s32)cand - (s32)d->prev[cand] - 1;
			}
		}
		/* A 3-byte match far back costs more than three literals. */
		if (best > DFL_MIN_MATCH || (best == DFL_MIN_MATCH && best_dist <= 4096)) {
			d->sym_lit[d->nsym] = (u16)best;
			d->sym_dist[d->nsym++] = (u16)best_dist;
			d->last_dist = best_dist;
			for (u32 k = 1; k < best; k++)
				if (p + k + DFL_MIN_MATCH <= p1)
					dfl_insert(d, p + k);
			p += best;
		} else {
			d->sym_lit[d->nsym] = d->in[p];
			d->sym_dist[d->nsym++] = 0;
			p++;
		}
	}
}

/* Bits used so far in the item. */
static inline u32 dfl_used_bits(const struct proto_deflate *d)
{
	return d->out_len * 8 + d->bitcnt;
}

/* Bits a stored block of n bytes takes after used bits: header, padding, LEN, NLEN, data. */
static inline u32 stored_bits(u32 used, u32 n)
{
	u32 after_hdr = used + 3;

	return 3 + (8 - after_hdr % 8) % 8 + 32 + 8 * n;
}

static void put_stored(struct proto_deflate *d, const u8 *src, u32 n)
{
	dfl_bits(d, 0, 3); /* BFINAL 0, BTYPE 00 */
	dfl_align(d);
	dfl_bits(d, n & 0xff, 8);
	dfl_bits(d, n >> 8, 8);
	dfl_bits(d, ~n & 0xff, 8);
	dfl_bits(d, (~n >> 8) & 0xff, 8);
	for (u32 i = 0; i < n; i++)
		dfl_bits(d, src[i], 8);
}

static void put_fixed_block(struct proto_deflate *d, u32 nsym)
{
	dfl_bits(d, 2, 3); /* BFINAL 0, BTYPE 01 */
	for (u32 i = 0; i < nsym; i++)
		put_sym_fixed(d, i);
	put_fixed_lit(d, DFL_EOB);
}

u32 proto_dfl_page(struct proto_deflate *d, const u8 *src, u32 len, u32 room)
{
	u32 p0 = d->in_len, used, budget, fixed = 3 + 7, n, bytes;

	if (d->full || d->err || !len || len > PAGE_SIZE || room > sizeof(d->out) ||
	    PROTO_DFL_IN_MAX - d->in_len < len)
		return 0;
	if (!d->item_open) {
		d->item_open = true;
		d->item_start = d->in_len;
		d->out_len = 0;
		d->bitbuf = 0;
		d->bitcnt = 0;
	}
	used = dfl_used_bits(d);
	if (room * 8 < used + DFL_END_BITS + 3 + 7 + 9) {
		d->full = true;
		return 0;
	}
	budget = room * 8 - DFL_END_BITS; /* the item must still end */
	for (u32 i = 0; i < len; i++)
		d->in[p0 + i] = src[i];
	d->in_len += len;
	dfl_lz77(d, p0, p0 + len);
	for (u32 i = 0; i < d->nsym; i++)
		fixed += sym_fixed_bits(d, i);
	if (used + fixed <= budget && fixed <= stored_bits(used, len)) {
		put_fixed_block(d, d->nsym);
		return len;
	}
	if (used + stored_bits(used, len) <= budget) {
		put_stored(d, d->in + p0, len);
		return len;
	}
	/*
	 * The page does not fit whole: the longest prefix that does, fixed or
	 * stored, ends the reply (the next request starts after it).
	 */
	d->full = true;
	fixed = 3 + 7;
	for (n = 0, bytes = 0; n < d->nsym; n++) {
		u32 b = sym_fixed_bits(d, n);

		if (used + fixed + b > budget)
			break;
		fixed += b;
		bytes += sym_bytes(d, n);
	}
	{
		u32 fixed_bytes = bytes, stored_n = 0, s = stored_bits(used, 0);

		if (used + s <= budget)
			stored_n = (budget - used - s) / 8;
		if (stored_n > len)
			stored_n = len;
		if (stored_n > fixed_bytes) {
			put_stored(d, d->in + p0, stored_n);
			bytes = stored_n;
		} else if (fixed_bytes) {
			put_fixed_block(d, n);
		}
	}
	d->in_len = p0 + bytes;
	return bytes;
}

bool proto_dfl_end_item(struct proto_deflate *d, struct proto_buf *b)
{
	u32 n, need;

	if (!d->item_open)
		return true;
	d->item_open = false;
	n = d->in_len - d->item_start;
	if (d->err)
		return false;
	if (!n)
		return true; /* opened, but its first page did not fit: nothing to send */
	dfl_bits(d, 3, 3);   /* BFINAL 1, BTYPE 01: an empty fixed block ends the stream */
	put_fixed_lit(d, DFL_EOB);
	dfl_align(d);
	if (d->err)
		return false;
	need = 1 + proto_varint_len(n) + proto_varint_len(d->out_len) + d->out_len + 4;
	if (need > proto_wbuf_room(b) || b->err)
		return false;
	proto_put_u8(b, PROTO_DFL_ITEM);
	proto_put_varint(b, n);
	proto_put_varint(b, d->out_len);
	proto_put_bytes(b, d->out, d->out_len);
	{
		u32 crc = proto_crc32c(0, d->in + d->item_start, n);

		proto_put_u8(b, (u8)crc);
		proto_put_u8(b, (u8)(crc >> 8));
		proto_put_u8(b, (u8)(crc >> 16));
		proto_put_u8(b, (u8)(crc >> 24));
	}
	return !b->err;
}
