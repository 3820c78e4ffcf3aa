/* SPDX-License-Identifier: MIT */
#include "ops.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int bad_reply(struct pt_conn *c, u8 cmd)
{
	snprintf(c->err, sizeof(c->err), "malformed %s reply from the hypervisor",
		 proto_cmd_name(cmd));
	return PT_ETRANSPORT;
}

int pt_get_info(struct pt_conn *c, struct pt_info *in)
{
	u8 rep[PROTO_MAX_PAYLOAD];
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
	in->paused = proto_get_u8(&b);
	in->nslots = proto_get_varint(&b);
	if (!proto_rbuf_done(&b) || !in->vcpus || in->vcpus > 4096)
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

int pt_get_regs(struct pt_conn *c, u32 vcpu, struct pt_regs *out)
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

static int dirty_start_stop(struct pt_conn *c, u8 cmd, u64 slot, u8 mode, u64 *n)
{
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	int r;

	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, 0);
	proto_put_varint(&b, slot);
	if (cmd == PROTO_CMD_DIRTY_START)
		proto_put_u8(&b, mode);
	r = pt_request(c, cmd, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	*n = proto_get_varint(&b);
	return proto_rbuf_done(&b) ? 0 : bad_reply(c, cmd);
}

int pt_dirty_start_slot(struct pt_conn *c, u64 slot, u8 mode, u64 *n)
{
	return dirty_start_stop(c, PROTO_CMD_DIRTY_START, slot, mode, n);
}

int pt_dirty_stop_slot(struct pt_conn *c, u64 slot, u64 *n)
{
	return dirty_start_stop(c, PROTO_CMD_DIRTY_STOP, slot, 0, n);
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

int pt_dirty_harvest(struct pt_conn *c, u64 slot, bool clear, u64 *bm, u64 npages, u64 *ndirty)
{
	u8 q[48], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u64 gen, n, nd, got, pos;
	u32 len;
	int r, restarts = 0;

snapshot:
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, slot);
	proto_put_u8(&b, clear ? PROTO_SNAP_CLEAR : 0);
	r = pt_request(c, PROTO_CMD_DIRTY_SNAP, q, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	gen = proto_get_varint(&b);
	n = proto_get_varint(&b);
	nd = proto_get_varint(&b);
	if (!proto_rbuf_done(&b) || n != npages || nd > n)
		return bad_reply(c, PROTO_CMD_DIRTY_SNAP);
	memset(bm, 0, (npages + 63) / 64 * 8);
	got = 0;
	pos = 0;
	while (pos < npages) {
		int hv_err = 0;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, slot);
		proto_put_varint(&b, gen);
		proto_put_varint(&b, pos);
		r = pt_request(c, PROTO_CMD_DIRTY_READ, q, b.len, rep, &len, &hv_err);
		if (r == PT_EHV && hv_err == PROTO_E_STALE && restarts++ < 3)
			goto snapshot; /* another reader's snapshot holds ours: again */
		if (r)
			return r;
		proto_rbuf_init(&b, rep, len);
		if (proto_get_varint(&b) != pos || b.err || !proto_rbuf_left(&b))
			return bad_reply(c, PROTO_CMD_DIRTY_READ);
		while (proto_rbuf_left(&b) && pos < npages) {
			u32 k = npages - pos < PROTO_BITMAP_BLOCK ? (u32)(npages - pos)
								  : PROTO_BITMAP_BLOCK;
			s64 d = proto_bitmap_decode_block(&b, bm, pos, k);

			if (d < 0)
				return bad_reply(c, PROTO_CMD_DIRTY_READ);
			got += (u64)d;
			pos += k;
		}
		if (proto_rbuf_left(&b))
			return bad_reply(c, PROTO_CMD_DIRTY_READ);
	}
	if (got != nd) {
		snprintf(c->err, sizeof(c->err),
			 "dirty log of slot %llu: received %llu dirty pages, the hypervisor "
			 "counted %llu",
			 (unsigned long long)slot, (unsigned long long)got, (unsigned long long)nd);
		return PT_ETRANSPORT;
	}
	*ndirty = nd;
	if (!clear)
		return 0;
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, slot);
	proto_put_varint(&b, gen);
	r = pt_request(c, PROTO_CMD_DIRTY_DONE, q, b.len, rep, &len, NULL);
	return r;
}

int pt_mem_read(struct pt_conn *c, u64 gpa, u64 len, u8 *buf, void (*progress)(void *ctx, u64 done),
		void *ctx)
{
	u8 q[48], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u64 done = 0;
	u32 rl;
	int r;

	while (done < len) {
		u64 out = 0;
		u8 enc;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, gpa + done);
		proto_put_varint(&b, len - done);
		proto_put_u8(&b, PROTO_MEM_LZ);
		r = pt_request(c, PROTO_CMD_MEM_READ, q, b.len, rep, &rl, NULL);
		if (r)
			return r;
		proto_rbuf_init(&b, rep, rl);
		if (proto_get_varint(&b) != gpa + done)
			return bad_reply(c, PROTO_CMD_MEM_READ);
		enc = proto_get_u8(&b);
		if (b.err)
			return bad_reply(c, PROTO_CMD_MEM_READ);
		if (enc == PROTO_MEM_RAW) {
			out = proto_rbuf_left(&b);
			if (out > len - done)
				return bad_reply(c, PROTO_CMD_MEM_READ);
			memcpy(buf + done, proto_get_bytes(&b, (u32)out), out);
		} else if (enc != PROTO_MEM_TOKENS ||
			   !proto_tokens_decode(&b, buf + done, &out, len - done)) {
			return bad_reply(c, PROTO_CMD_MEM_READ);
		}
		if (!out)
			return bad_reply(c, PROTO_CMD_MEM_READ);
		done += out;
		if (progress)
			progress(ctx, done);
	}
	return 0;
}
