/* SPDX-License-Identifier: MIT */
#include "ops.h"
#include "inflate.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int bad_reply(struct pt_conn *c, u8 cmd)
{
	snprintf(c->err, sizeof(c->err), "malformed %s reply from the hypervisor",
		 proto_cmd_name(cmd));
	return PT_ETRANSPORT;
}

int pt_get_info(struct pt_conn *c, struct pt_info *in)
{
	u8 rep[PROTO_MAX_PAYLOAD], state;
	struct proto_buf b;
	u32 len;
	int r = pt_request(c, PROTO_CMD_INFO, NULL, 0, rep, &len, NULL);

	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	proto_get_str(&b, in->backend, sizeof(in->backend));
	proto_get_str(&b, in->version, sizeof(in->version));
	in->vcpus = proto_get_varint(&b);
	in->modes = proto_get_varint(&b);
	in->mem = proto_get_varint(&b);
	state = proto_get_u8(&b);
	in->paused = state != PROTO_STATE_RUNNING;
	in->stopped = state == PROTO_STATE_STOPPED;
	in->nslots = proto_get_varint(&b);
	if (!proto_rbuf_done(&b) || !in->vcpus || in->vcpus > 4096 || state > PROTO_STATE_STOPPED)
		return bad_reply(c, PROTO_CMD_INFO);
	return 0;
}

int pt_get_slots(struct pt_conn *c, struct pt_slot *out, int max, int *n)
{
	u8 q[16], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	*n = 0;
	for (;;) {
		u8 more, count;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, (u64)*n);
		r = pt_request(c, PROTO_CMD_SLOTS, q, b.len, rep, &len, NULL);
		if (r)
			return r;
		proto_rbuf_init(&b, rep, len);
		more = proto_get_u8(&b);
		count = proto_get_u8(&b);
		for (u8 i = 0; i < count && *n < max; i++) {
			struct pt_slot *s = &out[(*n)++];

			s->id = proto_get_varint(&b);
			s->gpa = proto_get_varint(&b);
			s->size = proto_get_varint(&b);
			s->type = proto_get_u8(&b);
			s->mode = proto_get_u8(&b);
			if ((s->gpa | s->size) & (PAGE_SIZE - 1) || s->gpa + s->size < s->gpa)
				return bad_reply(c, PROTO_CMD_SLOTS);
		}
		if (!proto_rbuf_done(&b) || (more && !count))
			return bad_reply(c, PROTO_CMD_SLOTS);
		if (!more || *n >= max)
			return 0;
	}
}

int pt_get_regs(struct pt_conn *c, u64 vcpu, struct pt_regs *out)
{
	u8 q[16], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	u64 v, n;
	int r;

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, vcpu);
	r = pt_request(c, PROTO_CMD_REGS, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	v = proto_get_varint(&b);
	n = proto_get_varint(&b);
	if (b.err || v != vcpu || n > PROTO_REGS_MAX || proto_rbuf_left(&b) != n * 8)
		return bad_reply(c, PROTO_CMD_REGS);
	memset(out, 0, sizeof(*out));
	out->count = (u32)n;
	for (u64 i = 0; i < n; i++)
		out->r[i] = proto_get_u64le(&b);
	return 0;
}

int pt_simple(struct pt_conn *c, u8 cmd)
{
	u8 rep[PROTO_MAX_PAYLOAD];
	u32 len;
	int r = pt_request(c, cmd, NULL, 0, rep, &len, NULL);

	if (r)
		return r;
	return len ? bad_reply(c, cmd) : 0;
}

int pt_pause(struct pt_conn *c, u64 lease_ms, bool *leased)
{
	u8 q[16], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	*leased = lease_ms && (c->peer_caps & PROTO_CAP_LEASE);
	proto_wbuf_init(&b, q, sizeof(q));
	if (*leased)
		proto_put_varint(&b, lease_ms);
	r = pt_request(c, PROTO_CMD_PAUSE, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	return len ? bad_reply(c, PROTO_CMD_PAUSE) : 0;
}

int pt_pause_end(struct pt_conn *c, bool leased, bool stay_paused)
{
	struct pt_info in;
	int r;

	if (leased) {
		r = pt_get_info(c, &in);
		if (r)
			return r;
		if (!in.paused) {
			snprintf(
			    c->err, sizeof(c->err),
			    "the hypervisor ended the pause on its own (the host was silent "
			    "longer than the pause lease): the guest ran, the copy is not exact");
			return PT_EHV;
		}
	}
	return pt_simple(c, stay_paused ? PROTO_CMD_PAUSE : PROTO_CMD_RESUME);
}

int pt_dirty_start_stop(struct pt_conn *c, bool start, bool all, u64 slot, u8 mode, u64 *n)
{
	u8 cmd = start ? PROTO_CMD_DIRTY_START : PROTO_CMD_DIRTY_STOP;
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, all ? PROTO_START_ALL : 0);
	proto_put_varint(&b, slot);
	if (start)
		proto_put_u8(&b, mode);
	r = pt_request(c, cmd, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	*n = proto_get_varint(&b);
	return proto_rbuf_done(&b) ? 0 : bad_reply(c, cmd);
}

int pt_dirty_epoch(struct pt_conn *c, u64 *boot_id, u64 *epoch)
{
	u8 rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	if (!(c->peer_caps & PROTO_CAP_EPOCH)) {
		snprintf(c->err, sizeof(c->err),
			 "the hypervisor does not report a dirty-log epoch (too old for "
			 "incremental snapshots)");
		return PT_EHV;
	}
	r = pt_request(c, PROTO_CMD_DIRTY_EPOCH, NULL, 0, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	*boot_id = proto_get_varint(&b);
	*epoch = proto_get_varint(&b);
	return proto_rbuf_done(&b) ? 0 : bad_reply(c, PROTO_CMD_DIRTY_EPOCH);
}

u8 pt_best_dirty_mode(u64 modes)
{
	u8 m;

	for (m = PROTO_DIRTY_PML; m > PROTO_DIRTY_WP; m--)
		if (modes & PROTO_DIRTY_MODE_BIT(m))
			break;
	return m;
}

int pt_dirty_snap(struct pt_conn *c, u64 slot, bool clear, u64 npages, struct pt_dirty_snap *s)
{
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, slot);
	proto_put_u8(&b, clear ? PROTO_SNAP_CLEAR : 0);
	r = pt_request(c, PROTO_CMD_DIRTY_SNAP, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	s->gen = proto_get_varint(&b);
	s->npages = proto_get_varint(&b);
	s->ndirty = proto_get_varint(&b);
	if (!proto_rbuf_done(&b) || (npages && s->npages != npages) || s->npages > (1ull << 40) ||
	    s->ndirty > s->npages)
		return bad_reply(c, PROTO_CMD_DIRTY_SNAP);
	return 0;
}

int pt_dirty_read(struct pt_conn *c, u64 slot, const struct pt_dirty_snap *s, u64 *bm, u64 first,
		  void (*progress)(void *ctx, u64 done, u64 total), void *ctx, int *hv_err)
{
	u8 q[48], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u64 got = 0, pos = 0;
	u32 len;
	int r;

	while (pos < s->npages) {
		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, slot);
		proto_put_varint(&b, s->gen);
		proto_put_varint(&b, pos);
		r = pt_request(c, PROTO_CMD_DIRTY_READ, q, b.len, rep, &len, hv_err);
		if (r)
			return r;
		proto_rbuf_init(&b, rep, len);
		if (proto_get_varint(&b) != pos || b.err || !proto_rbuf_left(&b))
			return bad_reply(c, PROTO_CMD_DIRTY_READ);
		while (proto_rbuf_left(&b) && pos < s->npages) {
			u32 k = s->npages - pos < PROTO_BITMAP_BLOCK ? (u32)(s->npages - pos)
								     : PROTO_BITMAP_BLOCK;
			s64 d = proto_bitmap_decode_block(&b, bm, first + pos, k);

			if (d < 0)
				return bad_reply(c, PROTO_CMD_DIRTY_READ);
			got += (u64)d;
			pos += k;
		}
		if (proto_rbuf_left(&b))
			return bad_reply(c, PROTO_CMD_DIRTY_READ);
		if (progress)
			progress(ctx, pos, s->npages);
	}
	/* The count from the snapshot checks the whole transfer end to end. */
	if (got != s->ndirty) {
		snprintf(c->err, sizeof(c->err),
			 "dirty log of slot %llu: received %llu dirty pages, the hypervisor "
			 "counted %llu",
			 (unsigned long long)slot, (unsigned long long)got,
			 (unsigned long long)s->ndirty);
		return PT_ETRANSPORT;
	}
	return 0;
}

/*
 * pt_dirty_snap then pt_dirty_read, again from the snapshot when another
 * reader's snapshot took ours over. The bitmap goes into bm when the caller
 * has one (npages, the slot's size, checked), else into *alloc, allocated here.
 */
static int dirty_fetch(struct pt_conn *c, u64 slot, bool clear, u64 npages, u64 *bm, u64 **alloc,
		       struct pt_dirty_snap *s, void (*progress)(void *ctx, u64 done, u64 total),
		       void *ctx)
{
	int r, restarts = 0;

	for (;;) {
		int hv_err = 0;

		r = pt_dirty_snap(c, slot, clear, npages, s);
		if (r)
			return r;
		if (!bm) {
			*alloc = calloc((s->npages + 63) / 64 + 1, 8);
			if (!*alloc) {
				snprintf(c->err, sizeof(c->err), "out of memory for a bitmap");
				return PT_ETRANSPORT;
			}
		} else {
			memset(bm, 0, (s->npages + 63) / 64 * 8);
		}
		r = pt_dirty_read(c, slot, s, bm ? bm : *alloc, 0, progress, ctx, &hv_err);
		if (!r)
			return 0;
		if (!bm) {
			free(*alloc);
			*alloc = NULL;
		}
		if (r != PT_EHV || hv_err != PROTO_E_STALE || restarts++ >= 3)
			return r;
		/* Another reader took a snapshot: ours is merged into it, start over. */
	}
}

int pt_dirty_get(struct pt_conn *c, u64 slot, bool clear, struct pt_dirty_snap *s, u64 **bm,
		 void (*progress)(void *ctx, u64 done, u64 total), void *ctx)
{
	*bm = NULL;
	return dirty_fetch(c, slot, clear, 0, NULL, bm, s, progress, ctx);
}

int pt_dirty_done(struct pt_conn *c, u64 slot, u64 gen)
{
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, slot);
	proto_put_varint(&b, gen);
	return pt_request(c, PROTO_CMD_DIRTY_DONE, q, b.len, rep, &len, NULL);
}

int pt_dirty_harvest(struct pt_conn *c, u64 slot, bool clear, u64 *bm, u64 npages, u64 *ndirty)
{
	struct pt_dirty_snap s;
	int r = dirty_fetch(c, slot, clear, npages, bm, NULL, &s, NULL, NULL);

	if (r)
		return r;
	*ndirty = s.ndirty;
	return clear ? pt_dirty_done(c, slot, s.gen) : 0;
}

/* One MEM_READ or COW_READ (@cmd): the same request, the same reply. */
static int mem_read_chunk(struct pt_conn *c, u8 cmd, u64 gpa, u64 len, u8 *dst, u64 cap, u64 *out)
{
	u8 q[48], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 rl;
	u8 enc;
	int r;

	if (cap > len)
		cap = len;
	*out = 0;
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, gpa);
	proto_put_varint(&b, len);
	proto_put_u8(&b, c->codec == PT_CODEC_RAW	  ? 0
			 : c->codec == PT_CODEC_TOKENS ? PROTO_MEM_LZ
			 : (c->peer_caps & PROTO_CAP_DEFLATE)
			     ? PROTO_MEM_LZ | PROTO_MEM_DFL
			     : PROTO_MEM_LZ);
	r = pt_request(c, cmd, q, b.len, rep, &rl, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, rl);
	if (proto_get_varint(&b) != gpa)
		return bad_reply(c, cmd);
	enc = proto_get_u8(&b);
	if (b.err)
		return bad_reply(c, cmd);
	if (enc == PROTO_MEM_RAW) {
		*out = proto_rbuf_left(&b);
		if (*out > cap)
			return bad_reply(c, cmd);
		memcpy(dst, proto_get_bytes(&b, (u32)*out), *out);
	} else if (enc == PROTO_MEM_DEFLATE && c->codec == PT_CODEC_AUTO) {
		if (!c->inflate && !(c->inflate = pt_inflate_new()))
			return bad_reply(c, cmd);
		/* A reply that does not decode exactly is refused, never half-used. */
		if (!pt_inflate_reply(c->inflate, &b, dst, out, cap))
			return bad_reply(c, cmd);
	} else if (enc != PROTO_MEM_TOKENS || !proto_tokens_decode(&b, dst, out, cap)) {
		return bad_reply(c, cmd);
	}
	return *out ? 0 : bad_reply(c, cmd);
}

int pt_mem_read_chunk(struct pt_conn *c, u64 gpa, u64 len, u8 *dst, u64 cap, u64 *out)
{
	return mem_read_chunk(c, PROTO_CMD_MEM_READ, gpa, len, dst, cap, out);
}

static int mem_read_all(struct pt_conn *c, u8 cmd, u64 gpa, u64 len, u8 *buf,
			void (*progress)(void *ctx, u64 done), void *ctx)
{
	u64 done = 0;

	while (done < len) {
		u64 out;
		int r =
		    mem_read_chunk(c, cmd, gpa + done, len - done, buf + done, len - done, &out);

		if (r)
			return r;
		done += out;
		if (progress)
			progress(ctx, done);
	}
	return 0;
}

void pt_json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int pt_mem_read(struct pt_conn *c, u64 gpa, u64 len, u8 *buf, void (*progress)(void *ctx, u64 done),
		void *ctx)
{
	return mem_read_all(c, PROTO_CMD_MEM_READ, gpa, len, buf, progress, ctx);
}

int pt_cow_read(struct pt_conn *c, u64 gpa, u64 len, u8 *buf, void (*progress)(void *ctx, u64 done),
		void *ctx)
{
	return mem_read_all(c, PROTO_CMD_COW_READ, gpa, len, buf, progress, ctx);
}

int pt_cow_arm(struct pt_conn *c, u64 budget, u64 lease_ms, u64 *tracked)
{
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r, e = 0;

	if (!(c->peer_caps & PROTO_CAP_COW)) {
		snprintf(c->err, sizeof(c->err),
			 "the hypervisor has no copy-on-write snapshot (COW_ARM): update it, or "
			 "take a plain or --live snapshot");
		return PT_EHV;
	}
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, budget);
	proto_put_varint(&b, (c->peer_caps & PROTO_CAP_LEASE) ? lease_ms : 0);
	r = pt_request(c, PROTO_CMD_COW_ARM, q, b.len, rep, &len, &e);
	if (r == PT_EHV) {
		size_t n = strlen(c->err);
		const char *why =
		    e == PROTO_E_NOMEM	 ? "the hypervisor's pool cannot hold a budget "
					   "of that many pages: a smaller --cow-mib"
		    : e == PROTO_E_STATE ? "the guest is not paused, or another "
					   "copy-on-write snapshot runs"
		    : e == PROTO_E_UNSUPPORTED
			? "refused (other CPUs run unvirtualized, or no clock for the "
			  "lease): see `ptctl log`"
			: NULL;

		if (why)
			snprintf(c->err + n, sizeof(c->err) - n, " (%" PRIu64 " pages: %s)", budget,
				 why);
	}
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	if (proto_get_varint(&b) != budget)
		return bad_reply(c, PROTO_CMD_COW_ARM);
	*tracked = proto_get_varint(&b);
	return proto_rbuf_done(&b) ? 0 : bad_reply(c, PROTO_CMD_COW_ARM);
}

int pt_cow_end(struct pt_conn *c, struct pt_cow_result *out)
{
	u8 rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	r = pt_request(c, PROTO_CMD_COW_END, NULL, 0, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	out->copies = proto_get_varint(&b);
	out->waits = proto_get_varint(&b);
	out->max_used = proto_get_varint(&b);
	out->unsent = proto_get_varint(&b);
	return proto_rbuf_done(&b) ? 0 : bad_reply(c, PROTO_CMD_COW_END);
}
