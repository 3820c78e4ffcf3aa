/* SPDX-License-Identifier: MIT */
/*
 * Payload codecs of the management protocol: dirty-bitmap blocks (the cheapest
 * of empty, raw, run lengths and set-bit deltas) and the memory token stream
 * (literals, matches within a page, zero and fill runs). The hypervisor encodes,
 * ptctl decodes; both directions are here so that tests check one against the
 * other. Freestanding.
 */
#include <hv/proto/proto.h>

/* --- Dirty bitmap blocks ------------------------------------------------------- */

struct bm_cost {
	u32 set;    /* dirty pages */
	u32 deltas; /* bytes of the DELTAS body, count included */
	u32 runs;   /* bytes of the RUNS body, count included */
	u32 nr_runs;
};

/* Up to 64 bits of bm from bit pos on (k <= 64 of them, the rest 0); reads no word past them. */
static inline u64 bm_bits(const u64 *bm, u64 pos, u32 k)
{
	u64 w = pos / 64, sh = pos % 64, v = bm[w] >> sh;

	if (sh && k > 64 - sh)
		v |= bm[w + 1] << (64 - sh);
	return k < 64 ? v & ((1ull << k) - 1) : v;
}

/*
 * One walk, 64 pages at a time, serves both the measure (outputs NULL) and the
 * encoders (one output set): run lengths from the transitions and deltas from
 * the set bits, found with count-trailing-zeros, so that a sparse or clustered
 * block costs a few word operations rather than 4096 bit tests.
 */
static void bm_walk(const u64 *bm, u64 first, u32 n, struct bm_cost *c, struct proto_buf *runs,
		    struct proto_buf *deltas)
{
	u32 prev_set = 0, run = 0, delta_bytes = 0, run_bytes = 0;
	bool have_prev = false, cur = false;

	c->nr_runs = 0;
	c->set = 0;
	for (u32 i = 0; i < n; i += 64) {
		u32 k = n - i < 64 ? n - i : 64, done = 0;
		u64 v = bm_bits(bm, first + i, k), x = v;

		while (x) {
			u32 t = (u32)__builtin_ctzll(x), idx = i + t;
			u32 d = have_prev ? idx - prev_set - 1 : idx;

			delta_bytes += proto_varint_len(d);
			if (deltas)
				proto_put_varint(deltas, d);
			prev_set = idx;
			have_prev = true;
			c->set++;
			x &= x - 1;
		}
		while (done < k) {
			/* Ones where the page differs from the current run. */
			u64 diff = (cur ? ~v : v) >> done;
			u32 t;

			if (k - done < 64)
				diff &= (1ull << (k - done)) - 1;
			if (!diff) {
				run += k - done;
				break;
			}
			t = (u32)__builtin_ctzll(diff);
			run += t;
			run_bytes += proto_varint_len(run);
			if (runs)
				proto_put_varint(runs, run);
			c->nr_runs++;
			run = 0;
			cur = !cur;
			done += t;
		}
	}
	/* A trailing set run is written; a trailing clear run is implied. */
	if (cur) {
		run_bytes += proto_varint_len(run);
		if (runs)
			proto_put_varint(runs, run);
		c->nr_runs++;
	}
	c->deltas = proto_varint_len(c->set) + delta_bytes;
	c->runs = proto_varint_len(c->nr_runs) + run_bytes;
}

/* True when pages [first, first+n) are all clean: a word at a time. */
static bool bm_range_empty(const u64 *bm, u64 first, u32 n)
{
	for (u32 i = 0; i < n; i += 64)
		if (bm_bits(bm, first + i, n - i < 64 ? n - i : 64))
			return false;
	return true;
}

bool proto_bitmap_encode_block(struct proto_buf *b, const u64 *bm, u64 first, u32 n)
{
	struct bm_cost c;
	u32 raw = (n + 7) / 8, best;
	enum proto_bm_enc enc;

	if (n == 0 || n > PROTO_BITMAP_BLOCK || b->err)
		return false;
	/* The common case of a sparse log, without the walk. */
	if (bm_range_empty(bm, first, n)) {
		if (!proto_wbuf_room(b))
			return false;
		proto_put_u8(b, PROTO_BM_EMPTY);
		return true;
	}
	bm_walk(bm, first, n, &c, NULL, NULL);
	enc = PROTO_BM_RAW;
	best = raw;
	if (c.deltas < best) {
		enc = PROTO_BM_DELTAS;
		best = c.deltas;
	}
	if (c.runs < best) {
		enc = PROTO_BM_RUNS;
		best = c.runs;
	}
	if (1 + best > proto_wbuf_room(b))
		return false;

	proto_put_u8(b, (u8)enc);
	switch (enc) {
	case PROTO_BM_EMPTY:
		break;
	case PROTO_BM_RAW:
		for (u32 i = 0; i < n; i += 64) {
			u32 k = n - i < 64 ? n - i : 64;
			u64 v = bm_bits(bm, first + i, k);

			for (u32 byte = 0; byte * 8 < k; byte++)
				proto_put_u8(b, (u8)(v >> (8 * byte)));
		}
		break;
	case PROTO_BM_DELTAS:
		proto_put_varint(b, c.set);
		bm_walk(bm, first, n, &c, NULL, b);
		break;
	case PROTO_BM_RUNS:
		proto_put_varint(b, c.nr_runs);
		bm_walk(bm, first, n, &c, b, NULL);
		break;
	}
	return !b->err;
}

s64 proto_bitmap_decode_block(struct proto_buf *b, u64 *bm, u64 first, u32 n)
{
	u8 enc = proto_get_u8(b);
	s64 set = 0;

	if (b->err || n == 0 || n > PROTO_BITMAP_BLOCK)
		return -1;
	switch (enc) {
	case PROTO_BM_EMPTY:
		return 0;
	case PROTO_BM_RAW: {
		u32 raw = (n + 7) / 8;
		const u8 *p = proto_get_bytes(b, raw);

		if (!p)
			return -1;
		/* Bits past the end of the block must be clear: no hidden pages. */
		if (n % 8 && (p[raw - 1] >> (n % 8)))
			return -1;
		for (u32 i = 0; i < n; i++) {
			if (p[i / 8] & (1u << (i % 8))) {
				proto_set_bit(bm, first + i);
				set++;
			}
		}
		return set;
	}
	case PROTO_BM_DELTAS: {
		u64 k = proto_get_varint(b), pos = 0;

		if (b->err || k == 0 || k > n)
			return -1;
		for (u64 j = 0; j < k; j++) {
			u64 d = proto_get_varint(b);

			if (b->err || d >= n)
				return -1;
			pos = j ? pos + d + 1 : d;
			if (pos >= n)
				return -1;
			proto_set_bit(bm, first + pos);
		}
		return (s64)k;
	}
	case PROTO_BM_RUNS: {
		u64 k = proto_get_varint(b), pos = 0;

		if (b->err || k == 0 || k > n + 1u)
			return -1;
		for (u64 j = 0; j < k; j++) {
			u64 r = proto_get_varint(b);

			if (b->err || r > n - pos)
				return -1;
			if (j & 1) {
				for (u64 i = 0; i < r; i++)
					proto_set_bit(bm, first + pos + i);
				set += (s64)r;
			}
			pos += r;
		}
		return set;
	}
	}
	return -1;
}

/* --- Memory token stream ------------------------------------------------------ */

bool proto_put_zero_run(struct proto_buf *b, u64 n)
{
	if (1 + proto_varint_len(n) > proto_wbuf_room(b) || b->err)
		return false;
	proto_put_u8(b, PROTO_TOK_ZERO);
	proto_put_varint(b, n);
	return true;
}

static inline u32 lz_hash(const u8 *p)
{
	u32 v = (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;

	return (v * 2654435761u) >> (32 - PROTO_LZ_HASH_BITS);
}

/* Flushes pending literals src[*lit..end); false when it had to stop short. */
static bool lz_flush_lits(struct proto_buf *b, const u8 *src, u32 *lit, u32 end)
{
	while (*lit < end) {
		u32 n = end - *lit, room = proto_wbuf_room(b);

		if (n > PROTO_TOK_LIT_MAX)
			n = PROTO_TOK_LIT_MAX;
		if (room < 2)
			return false;
		if (n > room - 1)
			n = room - 1;
		proto_put_u8(b, (u8)(n - 1));
		proto_put_bytes(b, src + *lit, n);
		*lit += n;
		if (*lit < end && n < PROTO_TOK_LIT_MAX)
			return false;
	}
	return true;
}

/* A run shorter than this is cheaper as literals or a match. */
#define LZ_MIN_RUN 8

u32 proto_lz_compress(struct proto_lz *lz, struct proto_buf *b, const u8 *src, u32 len)
{
	u32 i = 0, lit = 0;

	if (b->err || len > PAGE_SIZE)
		return 0;
	for (u32 h = 0; h < ARRAY_SIZE(lz->head); h++)
		lz->head[h] = 0;

	while (i < len) {
		u32 run = 1, mlen = 0, dist = 0;

		while (i + run < len && src[i + run] == src[i])
			run++;
		if (run >= LZ_MIN_RUN) {
			u32 need = (src[i] ? 2 : 1) + proto_varint_len(run);

			if (!lz_flush_lits(b, src, &lit, i))
				return lit;
			if (proto_wbuf_room(b) < need)
				return i;
			if (src[i]) {
				proto_put_u8(b, PROTO_TOK_FILL);
				proto_put_u8(b, src[i]);
			} else {
				proto_put_u8(b, PROTO_TOK_ZERO);
			}
			proto_put_varint(b, run);
			i += run;
			lit = i;
			continue;
		}
		if (i + PROTO_TOK_MATCH_MIN <= len) {
			u32 h = lz_hash(src + i), cand = lz->head[h];

			lz->head[h] = (u16)(i + 1);
			if (cand) {
				cand--;
				while (mlen < PROTO_TOK_MATCH_MAX && i + mlen < len &&
				       src[cand + mlen] == src[i + mlen])
					mlen++;
				dist = i - cand;
			}
		}
		if (mlen >= PROTO_TOK_MATCH_MIN) {
			if (!lz_flush_lits(b, src, &lit, i))
				return lit;
			if (proto_wbuf_room(b) < 1 + proto_varint_len(dist))
				return i;
			proto_put_u8(b, (u8)(PROTO_TOK_MATCH | (mlen - PROTO_TOK_MATCH_MIN)));
			proto_put_varint(b, dist);
			for (u32 k = 1; k < mlen && i + k + PROTO_TOK_MATCH_MIN <= len; k++)
				lz->head[lz_hash(src + i + k)] = (u16)(i + k + 1);
			i += mlen;
			lit = i;
			continue;
		}
		i++;
		if (i - lit == PROTO_TOK_LIT_MAX && !lz_flush_lits(b, src, &lit, i))
			return lit;
	}
	if (!lz_flush_lits(b, src, &lit, len))
		return lit;
	return len;
}

bool proto_tokens_decode(struct proto_buf *b, u8 *out, u64 *out_len, u64 cap)
{
	u64 o = *out_len;

	while (proto_rbuf_left(b)) {
		u8 tag = proto_get_u8(b);

		if (tag < PROTO_TOK_MATCH) {
			u32 n = (u32)tag + 1;
			const u8 *p = proto_get_bytes(b, n);

			if (!p || n > cap - o)
				return false;
			for (u32 k = 0; k < n; k++)
				out[o + k] = p[k];
			o += n;
		} else if (tag < PROTO_TOK_ZERO) {
			u64 n = (u64)(tag & 0x3f) + PROTO_TOK_MATCH_MIN;
			u64 dist = proto_get_varint(b);

			if (b->err || dist == 0 || dist > o || n > cap - o)
				return false;
			/* Byte by byte: an overlapping match repeats a pattern. */
			for (u64 k = 0; k < n; k++)
				out[o + k] = out[o + k - dist];
			o += n;
		} else if (tag == PROTO_TOK_ZERO || tag == PROTO_TOK_FILL) {
			u8 v = tag == PROTO_TOK_FILL ? proto_get_u8(b) : 0;
			u64 n = proto_get_varint(b);

			if (b->err || n == 0 || n > cap - o)
				return false;
			for (u64 k = 0; k < n; k++)
				out[o + k] = v;
			o += n;
		} else {
			return false;
		}
	}
	*out_len = o;
	return !b->err;
}
