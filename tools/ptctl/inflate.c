/* SPDX-License-Identifier: MIT */
/*
 * The host's decoder of PROTO_MEM_DEFLATE replies (docs/protocol.md section 7):
 * zero and fill runs by hand, DEFLATE items with zlib's raw inflate, each
 * given the reply's earlier item output as its preset dictionary, each checked
 * against its length and Adler-32. Any mismatch fails the reply: a wrong page
 * is never handed on.
 */
#include "inflate.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct pt_inflate {
	z_stream z;
	u8 hist[PROTO_DFL_WIN]; /* the last bytes this reply's items inflated to */
	u32 hist_len;
};

struct pt_inflate *pt_inflate_new(void)
{
	struct pt_inflate *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	/* Negative window bits: raw DEFLATE, no zlib header or trailer. */
	if (inflateInit2(&s->z, -15) != Z_OK) {
		free(s);
		return NULL;
	}
	return s;
}

void pt_inflate_free(struct pt_inflate *s)
{
	if (!s)
		return;
	inflateEnd(&s->z);
	free(s);
}

/* Keeps the last PROTO_DFL_WIN bytes of hist followed by p[0..n). */
static void hist_push(struct pt_inflate *s, const u8 *p, u64 n)
{
	if (n >= PROTO_DFL_WIN) {
		memcpy(s->hist, p + n - PROTO_DFL_WIN, PROTO_DFL_WIN);
		s->hist_len = PROTO_DFL_WIN;
		return;
	}
	if (s->hist_len + n > PROTO_DFL_WIN) {
		u32 drop = (u32)(s->hist_len + n - PROTO_DFL_WIN);

		memmove(s->hist, s->hist + drop, s->hist_len - drop);
		s->hist_len -= drop;
	}
	memcpy(s->hist + s->hist_len, p, n);
	s->hist_len += (u32)n;
}

bool pt_inflate_reply(struct pt_inflate *s, struct proto_buf *b, u8 *out, u64 *out_len, u64 cap)
{
	u64 o = *out_len;

	s->hist_len = 0;
	while (proto_rbuf_left(b)) {
		u8 tag = proto_get_u8(b);

		if (tag == PROTO_TOK_ZERO || tag == PROTO_TOK_FILL) {
			u8 v = tag == PROTO_TOK_FILL ? proto_get_u8(b) : 0;
			u64 n = proto_get_varint(b);

			if (b->err || n == 0 || n > cap - o)
				return false;
			memset(out + o, v, n);
			o += n;
		} else if (tag == PROTO_DFL_ITEM) {
			u64 n = proto_get_varint(b), clen = proto_get_varint(b);
			const u8 *data;
			const u8 *c;
			u32 adler;
			int r;

			if (b->err || n == 0 || n > cap - o || clen == 0 ||
			    clen > proto_rbuf_left(b))
				return false;
			data = proto_get_bytes(b, (u32)clen);
			c = proto_get_bytes(b, 4);
			if (!data || !c)
				return false;
			adler = (u32)c[0] | (u32)c[1] << 8 | (u32)c[2] << 16 | (u32)c[3] << 24;
			if (inflateReset(&s->z) != Z_OK ||
			    (s->hist_len &&
			     inflateSetDictionary(&s->z, s->hist, s->hist_len) != Z_OK))
				return false;
			s->z.next_in = (Bytef *)data;
			s->z.avail_in = (uInt)clen;
			s->z.next_out = out + o;
			s->z.avail_out = (uInt)n;
			r = inflate(&s->z, Z_FINISH);
			/* Exactly n bytes from exactly clen: the stream ends with its data. */
			if (r != Z_STREAM_END || s->z.avail_in || s->z.avail_out)
				return false;
			if (adler32(adler32(0, Z_NULL, 0), out + o, (uInt)n) != adler)
				return false;
			hist_push(s, out + o, n);
			o += n;
		} else {
			return false;
		}
	}
	*out_len = o;
	return !b->err;
}
