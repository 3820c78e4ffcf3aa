/* SPDX-License-Identifier: MIT */
/*
 * A DEFLATE (RFC 1951) compressor for MEM_READ and COW_READ replies
 * (PROTO_MEM_DEFLATE, docs/protocol.md section 7): LZ77 over the reply's
 * non-zero pages with hash chains of bounded depth, each page's symbols coded
 * as one block with dynamic Huffman codes (RFC 1951, 3.2.7), fixed ones
 * (3.2.6) or stored (3.2.4), whichever is shortest. The host decodes with zlib.
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
/* Alphabets (RFC 1951, 3.2.5-3.2.7): literal/length, distance, code length. */
#define DFL_NLIT  PROTO_DFL_NLIT
#define DFL_NDIST PROTO_DFL_NDIST
#define DFL_NCL	  PROTO_DFL_NCL
/* A match this long ends the search: longer ones save too little for the time. */
#define DFL_NICE_MATCH 32
/* Bits the item's end takes: an empty final fixed block (3 + 7) and the padding. */
#define DFL_END_BITS (3 + 7 + 7)

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

/*
 * Per symbol, once after LZ77: its literal/length code, and for a match the
 * distance code and the extra bits of both (count and value), so that costing
 * a block three ways and writing it read tables only.
 */
static void dfl_classify(struct proto_deflate *d)
{
	for (u32 i = 0; i < d->nsym; i++) {
		u32 c, ne, ex, dc, dne, dex;

		if (!d->sym_dist[i]) {
			d->sym_lc[i] = d->sym_lit[i];
			d->sym_extra_bits[i] = 0;
			continue;
		}
		len_code(d->sym_lit[i], &c, &ne, &ex);
		dist_code(d->sym_dist[i], &dc, &dne, &dex);
		d->sym_lc[i] = (u16)c;
		d->sym_dc[i] = (u8)dc;
		d->sym_extra_bits[i] = (u8)(ne + dne);
		/* Written as one field: the length's extra bits, then the distance's. */
		d->sym_extra[i] = ex;
		d->sym_dextra[i] = (u16)dex;
		d->sym_ne[i] = (u8)ne;
	}
}

/* Bits of symbol i with codes c. */
static inline u32 sym_bits(const struct proto_deflate *d, const struct proto_dfl_codes *c, u32 i)
{
	if (!d->sym_dist[i])
		return c->len_l[d->sym_lc[i]];
	return (u32)c->len_l[d->sym_lc[i]] + c->len_d[d->sym_dc[i]] + d->sym_extra_bits[i];
}

static void put_sym(struct proto_deflate *d, const struct proto_dfl_codes *c, u32 i)
{
	u32 lc = d->sym_lc[i];

	dfl_bits(d, c->code_l[lc], c->len_l[lc]);
	if (!d->sym_dist[i])
		return;
	if (d->sym_ne[i])
		dfl_bits(d, d->sym_extra[i], d->sym_ne[i]);
	dfl_bits(d, c->code_d[d->sym_dc[i]], c->len_d[d->sym_dc[i]]);
	if (d->sym_extra_bits[i] - d->sym_ne[i])
		dfl_bits(d, d->sym_dextra[i], d->sym_extra_bits[i] - d->sym_ne[i]);
}

/* Input bytes of symbol i. */
static inline u32 sym_bytes(const struct proto_deflate *d, u32 i)
{
	return d->sym_dist[i] ? d->sym_lit[i] : 1;
}

/*
 * Canonical Huffman codes from code lengths (RFC 1951, 3.2.2), stored bit-
 * reversed: the coder writes the least significant bit first.
 */
static void huff_codes(const u8 *len, u32 n, u16 *code)
{
	u32 count[16] = {0}, next[16], c = 0;

	for (u32 i = 0; i < n; i++)
		count[len[i]]++;
	count[0] = 0;
	for (u32 b = 1; b < 16; b++) {
		c = (c + count[b - 1]) << 1;
		next[b] = c;
	}
	for (u32 i = 0; i < n; i++)
		code[i] = len[i] ? (u16)dfl_rev(next[len[i]]++, len[i]) : 0;
}

/* RFC 1951, 3.2.6: the fixed codes, built once. */
static void fixed_codes(struct proto_deflate *d)
{
	struct proto_dfl_codes *c = &d->fixed;

	/* All 288 take part in the canonical assignment, or codes 144..255 come out wrong. */
	for (u32 s = 0; s < 288; s++)
		c->len_l[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
	for (u32 s = 0; s < DFL_NDIST; s++)
		c->len_d[s] = 5;
	huff_codes(c->len_l, 288, c->code_l);
	huff_codes(c->len_d, DFL_NDIST, c->code_d);
	d->fixed_ready = true;
}

/*
 * Code lengths of at most @limit bits for the n symbols with frequencies
 * freq (0: unused, length 0): minimum-redundancy lengths computed in place
 * (Moffat and Katajainen, "In-Place Calculation of Minimum-Redundancy Codes",
 * 1995: no tree, no recursion), then the longest codes shortened until the
 * lengths fit the limit and still make a complete code (the Kraft sum kept at
 * one). A lone symbol gets length 1.
 */
static void huff_lengths(struct proto_deflate *d, const u16 *freq, u32 n, u32 limit, u8 *len)
{
	u32 *a = d->hw_a, m = 0, num[33] = {0}, total = 0;
	u16 *sym = d->hw_sym;
	s32 root, leaf, next, avbl, used, dpth;

	for (u32 i = 0; i < n; i++) {
		len[i] = 0;
		if (freq[i]) {
			sym[m] = (u16)i;
			a[m++] = freq[i];
		}
	}
	if (!m)
		return;
	if (m == 1) {
		len[sym[0]] = 1;
		return;
	}
	/* Shell sort by frequency, ascending (n <= 286). */
	for (u32 gap = 64; gap; gap /= 4) {
		for (u32 i = gap; i < m; i++) {
			u32 fa = a[i];
			u16 sa = sym[i];
			u32 j = i;

			for (; j >= gap && a[j - gap] > fa; j -= gap) {
				a[j] = a[j - gap];
				sym[j] = sym[j - gap];
			}
			a[j] = fa;
			sym[j] = sa;
		}
	}
	a[0] += a[1];
	root = 0;
	leaf = 2;
	for (next = 1; next < (s32)m - 1; next++) {
		if (leaf >= (s32)m || a[root] < a[leaf]) {
			a[next] = a[root];
			a[root++] = (u32)next;
		} else {
			a[next] = a[leaf++];
		}
		if (leaf >= (s32)m || (root < next && a[root] < a[leaf])) {
			a[next] += a[root];
			a[root++] = (u32)next;
		} else {
			a[next] += a[leaf++];
		}
	}
	a[m - 2] = 0;
	for (next = (s32)m - 3; next >= 0; next--)
		a[next] = a[a[next]] + 1;
	avbl = 1;
	used = dpth = 0;
	root = (s32)m - 2;
	next = (s32)m - 1;
	while (avbl > 0) {
		while (root >= 0 && (s32)a[root] == dpth) {
			used++;
			root--;
		}
		while (avbl > used) {
			a[next--] = (u32)dpth;
			avbl--;
		}
		avbl = 2 * used;
		dpth++;
		used = 0;
	}
	/* a[i]: the length of sym[i]; the most frequent last, shortest. */
	for (u32 i = 0; i < m; i++)
		num[a[i] > 32 ? 32 : a[i]]++;
	for (u32 i = limit + 1; i <= 32; i++) {
		num[limit] += num[i];
		num[i] = 0;
	}
	for (u32 i = limit; i > 0; i--)
		total += num[i] << (limit - i);
	while (total != 1u << limit) {
		num[limit]--;
		for (u32 i = limit - 1; i > 0; i--) {
			if (num[i]) {
				num[i]--;
				num[i + 1] += 2;
				break;
			}
		}
		total--;
	}
	{
		u32 j = m;

		for (u32 i = 1; i <= limit; i++)
			for (u32 k = num[i]; k > 0; k--)
				len[sym[--j]] = (u8)i;
	}
}

/* RFC 1951, 3.2.7: the order the code length code's lengths are sent in. */
static const u8 cl_order[DFL_NCL] = {16, 17, 18, 0, 8,	7, 9,  6, 10, 5,
				     11, 4,  12, 3, 13, 2, 14, 1, 15};

/*
 * Dynamic codes for symbols [0, nsym): frequencies, lengths, the run-length
 * coded lengths and their own code. Returns the bits of the block header
 * (BFINAL and BTYPE included).
 */
static u32 dyn_build(struct proto_deflate *d, u32 nsym)
{
	struct proto_dfl_codes *c = &d->dyn;
	u16 *fl = d->freq_l, *fd = d->freq_d, *fc = d->freq_cl;
	u8 *lens = d->rle_lens;
	u32 total, n = 0, bits, used = 0;

	for (u32 i = 0; i < DFL_NLIT; i++)
		fl[i] = 0;
	for (u32 i = 0; i < DFL_NDIST; i++)
		fd[i] = 0;
	for (u32 i = 0; i < DFL_NCL; i++)
		fc[i] = 0;
	for (u32 i = 0; i < nsym; i++) {
		fl[d->sym_lc[i]]++;
		if (d->sym_dist[i])
			fd[d->sym_dc[i]]++;
	}
	fl[DFL_EOB] = 1;
	/* No match: one distance code all the same, so no decoder sees an empty set. */
	for (used = 0; used < DFL_NDIST && !fd[used]; used++)
		;
	if (used == DFL_NDIST)
		fd[0] = 1;
	huff_lengths(d, fl, DFL_NLIT, 15, c->len_l);
	huff_lengths(d, fd, DFL_NDIST, 15, c->len_d);
	d->hlit = DFL_NLIT;
	while (d->hlit > 257 && !c->len_l[d->hlit - 1])
		d->hlit--;
	d->hdist = DFL_NDIST;
	while (d->hdist > 1 && !c->len_d[d->hdist - 1])
		d->hdist--;
	total = d->hlit + d->hdist;
	for (u32 i = 0; i < d->hlit; i++)
		lens[i] = c->len_l[i];
	for (u32 i = 0; i < d->hdist; i++)
		lens[d->hlit + i] = c->len_d[i];
	/* RFC 1951, 3.2.7: 16 repeats the previous length 3-6 times, 17 and 18 zeros. */
	for (u32 i = 0; i < total;) {
		u32 v = lens[i], run = 1;

		while (i + run < total && lens[i + run] == v)
			run++;
		if (!v && run >= 3) {
			u32 r = run > 138 ? 138 : run;

			d->rle_sym[n] = r >= 11 ? 18 : 17;
			d->rle_extra[n] = (u8)(r >= 11 ? r - 11 : r - 3);
			fc[d->rle_sym[n++]]++;
			i += r;
			continue;
		}
		d->rle_sym[n] = (u8)v;
		fc[v]++;
		n++;
		i++;
		if (v && run >= 4) {
			u32 r = run - 1 > 6 ? 6 : run - 1;

			d->rle_sym[n] = 16;
			d->rle_extra[n] = (u8)(r - 3);
			fc[16]++;
			n++;
			i += r;
		}
	}
	d->nrle = n;
	/* The code length code must be complete (zlib refuses a lone code there). */
	used = 0;
	for (u32 i = 0; i < DFL_NCL; i++)
		used += fc[i] != 0;
	for (u32 i = 0; used < 2; i++)
		if (!fc[i]) {
			fc[i] = 1;
			used++;
		}
	huff_lengths(d, fc, DFL_NCL, 7, d->len_cl);
	huff_codes(d->len_cl, DFL_NCL, d->code_cl);
	d->hclen = DFL_NCL;
	while (d->hclen > 4 && !d->len_cl[cl_order[d->hclen - 1]])
		d->hclen--;
	bits = 3 + 5 + 5 + 4 + 3 * d->hclen;
	for (u32 i = 0; i < n; i++) {
		u32 sy = d->rle_sym[i];

		bits += d->len_cl[sy] + (sy == 16 ? 2 : sy == 17 ? 3 : sy == 18 ? 7 : 0);
	}
	huff_codes(c->len_l, DFL_NLIT, c->code_l);
	huff_codes(c->len_d, DFL_NDIST, c->code_d);
	return bits;
}

static void put_dyn_header(struct proto_deflate *d)
{
	dfl_bits(d, 4, 3); /* BFINAL 0, BTYPE 10 */
	dfl_bits(d, d->hlit - 257, 5);
	dfl_bits(d, d->hdist - 1, 5);
	dfl_bits(d, d->hclen - 4, 4);
	for (u32 i = 0; i < d->hclen; i++)
		dfl_bits(d, d->len_cl[cl_order[i]], 3);
	for (u32 i = 0; i < d->nrle; i++) {
		u32 sy = d->rle_sym[i];

		dfl_bits(d, d->code_cl[sy], d->len_cl[sy]);
		if (sy >= 16)
			dfl_bits(d, d->rle_extra[i], sy == 16 ? 2 : sy == 17 ? 3 : 7);
	}
}

void proto_dfl_init(struct proto_deflate *d)
{
	for (u32 h = 0; h < ARRAY_SIZE(d->head); h++)
		d->head[h] = 0;
	d->gen = 0;
	d->fixed_ready = false;
	d->item_open = false;
	d->full = true; /* until proto_dfl_begin */
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

static inline u64 load64(const u8 *p)
{
	u64 v;

	__builtin_memcpy(&v, p, 8); /* one unaligned load, no call */
	return v;
}

/*
 * Length of the match of in[p..) against in[cand..), at most max: eight bytes
 * at a time (the hypervisor runs this under emulators too, where every load
 * counts). in[] has 8 bytes of slack past PROTO_DFL_IN_MAX.
 */
static inline u32 match_len(const struct proto_deflate *d, u32 cand, u32 p, u32 max)
{
	u32 l = 0;

	while (l < max) {
		u64 x = load64(d->in + cand + l) ^ load64(d->in + p + l);

		if (x) {
			l += (u32)__builtin_ctzll(x) / 8;
			break;
		}
		l += 8;
	}
	return l < max ? l : max;
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
			u32 chain = best >= DFL_NICE_MATCH || best == max ? 0 : PROTO_DFL_CHAIN;

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
						if (l == max || l >= DFL_NICE_MATCH)
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
			/* As zlib's fast levels: a long match's inner positions are not worth the
			 * time. */
			for (u32 k = 1; best <= DFL_NICE_MATCH && k < best; k++)
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

/* A Huffman block of symbols [0, nsym): fixed codes, or the dynamic ones dyn_build made. */
static void put_huff_block(struct proto_deflate *d, bool dyn, u32 nsym)
{
	const struct proto_dfl_codes *c = dyn ? &d->dyn : &d->fixed;

	if (dyn)
		put_dyn_header(d);
	else
		dfl_bits(d, 2, 3); /* BFINAL 0, BTYPE 01 */
	for (u32 i = 0; i < nsym; i++)
		put_sym(d, c, i);
	dfl_bits(d, c->code_l[DFL_EOB], c->len_l[DFL_EOB]);
}

/* Symbols of a prefix that fit in @avail bits with codes c after @hdr bits, and its input bytes. */
static u32 prefix_fit(const struct proto_deflate *d, const struct proto_dfl_codes *c, u32 hdr,
		      u32 avail, u32 *bytes)
{
	u32 bits = hdr + c->len_l[DFL_EOB], n;

	*bytes = 0;
	if (bits > avail)
		return 0;
	for (n = 0; n < d->nsym; n++) {
		u32 b = sym_bits(d, c, n);

		if (bits + b > avail)
			break;
		bits += b;
		*bytes += sym_bytes(d, n);
	}
	return n;
}

u32 proto_dfl_page(struct proto_deflate *d, const u8 *src, u32 len, u32 room)
{
	u32 p0 = d->in_len, used, budget, fixed = 3, dyn_hdr, dyn, stored, bytes;

	if (d->full || d->err || !len || len > PAGE_SIZE || room > sizeof(d->out) ||
	    PROTO_DFL_IN_MAX - d->in_len < len)
		return 0;
	if (!d->fixed_ready)
		fixed_codes(d);
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
	{
		u32 i = 0;

		for (; i + 8 <= len; i += 8) {
			u64 v = load64(src + i);

			__builtin_memcpy(d->in + p0 + i, &v, 8);
		}
		for (; i < len; i++)
			d->in[p0 + i] = src[i];
	}
	d->in_len += len;
	dfl_lz77(d, p0, p0 + len);
	dfl_classify(d);
	dyn_hdr = dyn_build(d, d->nsym);
	dyn = dyn_hdr + d->dyn.len_l[DFL_EOB];
	fixed += d->fixed.len_l[DFL_EOB];
	for (u32 i = 0; i < d->nsym; i++) {
		fixed += sym_bits(d, &d->fixed, i);
		dyn += sym_bits(d, &d->dyn, i);
	}
	stored = stored_bits(used, len);
	if (used + dyn <= budget && dyn <= fixed && dyn <= stored) {
		put_huff_block(d, true, d->nsym);
		return len;
	}
	if (used + fixed <= budget && fixed <= stored) {
		put_huff_block(d, false, d->nsym);
		return len;
	}
	if (used + stored <= budget) {
		put_stored(d, d->in + p0, len);
		return len;
	}
	/*
	 * The page does not fit whole: the longest prefix that does (dynamic
	 * codes, fixed or stored) ends the reply; the next request starts after it.
	 */
	d->full = true;
	{
		u32 dyn_bytes, fixed_bytes, stored_n = 0, s = stored_bits(used, 0);
		u32 dyn_n = prefix_fit(d, &d->dyn, dyn_hdr, budget - used, &dyn_bytes);
		u32 fixed_n = prefix_fit(d, &d->fixed, 3, budget - used, &fixed_bytes);

		if (used + s <= budget)
			stored_n = (budget - used - s) / 8;
		if (stored_n > len)
			stored_n = len;
		bytes = 0;
		if (stored_n > fixed_bytes && stored_n > dyn_bytes) {
			put_stored(d, d->in + p0, stored_n);
			bytes = stored_n;
		} else if (dyn_bytes >= fixed_bytes && dyn_bytes) {
			put_huff_block(d, true, dyn_n);
			bytes = dyn_bytes;
		} else if (fixed_bytes) {
			put_huff_block(d, false, fixed_n);
			bytes = fixed_bytes;
		}
	}
	d->in_len = p0 + bytes;
	return bytes;
}

u32 proto_dfl_pending(const struct proto_deflate *d)
{
	if (!d->item_open)
		return 0;
	return d->out_len + (d->bitcnt + DFL_END_BITS + 7) / 8 + PROTO_DFL_ITEM_OVERHEAD;
}

/*
 * Adler-32 (RFC 1950, 8.2), the check zlib streams carry: cheap per byte (two
 * additions, a modulo per 5552 bytes), where CRC-32C by nibbles costs two
 * table loads per byte.
 */
static u32 dfl_adler32(const u8 *p, u32 n)
{
	u32 a = 1, b = 0;

	while (n) {
		u32 k = n < 5552 ? n : 5552;

		n -= k;
		while (k--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return b << 16 | a;
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
	dfl_bits(d, d->fixed.code_l[DFL_EOB], d->fixed.len_l[DFL_EOB]);
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
		u32 adler = dfl_adler32(d->in + d->item_start, n);

		proto_put_u8(b, (u8)adler);
		proto_put_u8(b, (u8)(adler >> 8));
		proto_put_u8(b, (u8)(adler >> 16));
		proto_put_u8(b, (u8)(adler >> 24));
	}
	return !b->err;
}
