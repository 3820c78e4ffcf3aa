/* SPDX-License-Identifier: MIT */
/*
 * The management channel, hypervisor side: receives request frames from the
 * UART a byte at a time, runs each command against the backend and queues the
 * reply, which mgmt_poll() pushes out as the transmitter has room. Protocol:
 * docs/protocol.md. Freestanding; bounded work per call.
 */
#include <hv/mgmt.h>

#include "hv/memslot.h"

/* A poll reads at most this many bytes: a 16550 FIFO holds 16. */
#define MGMT_RX_BUDGET 64
/* DIRTY_READ: at most this many blocks per reply (bounds the bit scan). */
#define MGMT_READ_MAX_BLOCKS 256
/* MEM_READ: at most this many pages looked at per reply (bounds the copy). */
#define MGMT_MEM_MAX_PAGES 1024
/* Smallest reply payload limit a host may ask for in HELLO. */
#define MGMT_MIN_HOST_PAYLOAD 600

static void *carve(u8 **p, u8 *end, size_t len)
{
	u8 *q = (u8 *)(((uintptr_t)*p + 7) & ~(uintptr_t)7);

	if (q > end || (size_t)(end - q) < len)
		return NULL;
	*p = q + len;
	return q;
}

static void zero_bytes(void *p, size_t len)
{
	u8 *b = p;

	for (size_t i = 0; i < len; i++)
		b[i] = 0;
}

int mgmt_init(struct mgmt *m, void *mem, size_t mem_size, const struct mgmt_backend *be,
	      void *be_ctx, struct dirty_session *ds, const struct mgmt_transport *tp, void *tp_ctx)
{
	u8 *p = mem, *end = (u8 *)mem + mem_size;
	u8 *rxbuf;

	zero_bytes(m, sizeof(*m));
	if (!be || !ds || !tp || !tp->rx_byte || !tp->tx_room || !tp->tx_bytes || !be->info ||
	    !be->pause || !be->resume || !be->mem_read || !be->regs ||
	    !be->stat || !be->log_read)
		return -PROTO_E_INTERNAL;
	rxbuf = carve(&p, end, PROTO_MAX_REQ_FRAME);
	m->payload = carve(&p, end, PROTO_MAX_PAYLOAD);
	m->tx = carve(&p, end, PROTO_MAX_WIRE);
	m->cow_page = carve(&p, end, PAGE_SIZE);
	m->page = carve(&p, end, PAGE_SIZE);
	m->lz = carve(&p, end, sizeof(struct proto_lz));
	m->dfl = carve(&p, end, sizeof(struct proto_deflate));
	if (!rxbuf || !m->payload || !m->tx || !m->page || !m->cow_page || !m->lz || !m->dfl)
		return -PROTO_E_INTERNAL;
	proto_dfl_init(m->dfl);
	m->be = be;
	m->be_ctx = be_ctx;
	m->ds = ds;
	m->tp = tp;
	m->tp_ctx = tp_ctx;
	m->host_max_payload = PROTO_MAX_PAYLOAD;
	m->step_pages = MGMT_STEP_PAGES_DEFAULT;
	proto_rx_init(&m->rx, rxbuf, PROTO_MAX_REQ_FRAME);
	return 0;
}
void mgmt_set_cow(struct mgmt *m, struct cow_session *cs)
{
	m->cow = cs;
}

void mgmt_set_boot_id(struct mgmt *m, u64 id)
{
	m->boot_id = id;
}

void mgmt_set_step_pages(struct mgmt *m, u64 pages)
{
	/* The mmu's ranges start on 64-page boundaries (one bitmap word). */
	if (pages < MGMT_STEP_PAGES_MIN)
		pages = MGMT_STEP_PAGES_MIN;
	if (pages > (1ull << 40))
		pages = 1ull << 40; /* the mmu's largest slot: one step does it all */
	m->step_pages = (pages + 63) & ~63ull;
}

/* --- Transmit ------------------------------------------------------------- */

static bool tx_main_idle(const struct mgmt *m)
{
	return m->tx_pos >= m->tx_len;
}

/*
 * At most this many bytes go out per poll: a whole reply and a CREDIT or NAK.
 * A real 16550 at 115200 baud takes 1.4 ms to empty its FIFO, so THRE is
 * clear again right after the first 16 and the loop ends at once; a UART
 * that empties at once (QEMU's, over a socket) takes a whole reply in one
 * poll instead of 16 bytes per exit.
 */
#define MGMT_TX_BURST (PROTO_MAX_WIRE + 64)

static void tx_pump(struct mgmt *m)
{
	u32 room = m->tp->tx_room(m->tp_ctx), sent = 0;

	while (room) {
		bool main_mid = m->tx_pos > 0 && m->tx_pos < m->tx_len;
		const u8 *src;
		u32 n, *pos;

		/* Frames never interleave: an aux frame goes only between replies. */
		if (m->sending_aux || (!main_mid && m->aux_pos < m->aux_len)) {
			m->sending_aux = true;
			src = m->aux;
			pos = &m->aux_pos;
			n = m->aux_len - m->aux_pos;
		} else if (!tx_main_idle(m)) {
			src = m->tx;
			pos = &m->tx_pos;
			n = m->tx_len - m->tx_pos;
		} else {
			break;
		}
		if (n > room)
			n = room;
		m->tp->tx_bytes(m->tp_ctx, src + *pos, n);
		*pos += n;
		room -= n;
		m->c.tx_bytes += n;
		sent += n;
		if (m->sending_aux && m->aux_pos >= m->aux_len) {
			m->sending_aux = false;
			m->aux_len = 0;
			m->aux_pos = 0;
		}
		if (!room && sent < MGMT_TX_BURST)
			room = m->tp->tx_room(m->tp_ctx);
	}
}

/* Queues a CREDIT or NAK; false when one is already waiting. */
static bool queue_aux(struct mgmt *m, u16 id, u8 cmd, const u8 *payload, u32 len)
{
	struct proto_hdr h = {PROTO_VERSION, PROTO_F_REPLY, id, cmd};

	if (m->aux_len)
		return false;
	m->aux_len = proto_frame_encode(m->aux, sizeof(m->aux), &h, payload, len);
	m->aux_pos = 0;
	m->aux_cmd = cmd;
	return m->aux_len != 0;
}

/* A waiting NAK goes out as soon as the aux buffer is free. */
static void flush_nak(struct mgmt *m)
{
	/* A CREDIT not yet started is stale once its frame has ended: the NAK wins. */
	if (m->nak_pending && m->aux_len && m->aux_cmd == PROTO_CMD_CREDIT && !m->sending_aux)
		m->aux_len = 0;
	if (m->nak_pending && queue_aux(m, 0, PROTO_CMD_NAK, m->nak, m->nak_len)) {
		m->nak_pending = false;
		m->c.naks_sent++;
	}
}

static void send_nak(struct mgmt *m, u8 err)
{
	struct proto_buf b;
	u32 id_guess = 0;

	switch (err) {
	case PROTO_E_BAD_CRC:
		m->c.bad_crc++;
		break;
	case PROTO_E_FRAMING:
		m->c.framing++;
		break;
	case PROTO_E_TOO_BIG:
		m->c.too_big++;
		break;
	case PROTO_E_TOO_SHORT:
		m->c.too_short++;
		break;
	}
	/*
	 * One NAK waits at most: a newer one replaces it (counted), so a flood
	 * of garbage cannot flood the host.
	 */
	if (m->nak_pending)
		m->c.naks_dropped++;
	/* The id bytes may be damaged too: a hint for the host, id + 1, 0 = none. */
	if (m->rx.len >= 4)
		id_guess = (u32)(m->rx.buf[2] | m->rx.buf[3] << 8) + 1;
	proto_wbuf_init(&b, m->nak, sizeof(m->nak));
	proto_put_u8(&b, err);
	proto_put_varint(&b, m->rx.raw);
	proto_put_varint(&b, id_guess);
	m->nak_len = b.len;
	m->nak_pending = true;
	flush_nak(m);
}

static void send_credit(struct mgmt *m)
{
	u8 p[8];
	struct proto_buf b;
	u16 id;

	/* Only once the frame's id is known, so that the host can match it. */
	if (m->rx.state != PROTO_RX_FRAME || m->rx.len < 4 || m->rx.raw <= m->credit_raw)
		return;
	id = (u16)(m->rx.buf[2] | m->rx.buf[3] << 8);
	proto_wbuf_init(&b, p, sizeof(p));
	proto_put_varint(&b, m->rx.raw);
	if (queue_aux(m, id, PROTO_CMD_CREDIT, p, b.len)) {
		m->credit_raw = m->rx.raw;
		m->c.credits_sent++;
	}
}

/* --- Replies --------------------------------------------------------------- */

static void reply(struct mgmt *m, const struct proto_hdr *req, u8 flags, const u8 *payload, u32 len)
{
	struct proto_hdr h = {PROTO_VERSION, (u8)(PROTO_F_REPLY | flags), req->id, req->cmd};

	m->tx_len = proto_frame_encode(m->tx, PROTO_MAX_WIRE, &h, payload, len);
	m->tx_pos = 0;
	if (!m->tx_len)
		m->have_last = false;
}

static void reply_error(struct mgmt *m, const struct proto_hdr *req, int err)
{
	u8 p[24];
	struct proto_buf b;

	if (err < 0)
		err = -err;
	if (err <= PROTO_E_OK || err >= PROTO_E_NR)
		err = PROTO_E_INTERNAL;
	proto_wbuf_init(&b, p, sizeof(p));
	proto_put_u8(&b, (u8)err);
	proto_put_u8(&b, req->cmd);
	if (err == PROTO_E_VERSION) {
		proto_put_varint(&b, PROTO_VERSION); /* oldest spoken */
		proto_put_varint(&b, PROTO_VERSION); /* newest spoken */
	}
	reply(m, req, PROTO_F_ERROR, p, b.len);
}

/* --- Slots ------------------------------------------------------------------ */

/* The layout is the session's VM's (hv/memslot.h): a slot's id is its index. */
static const struct hv_slot *find_slot(const struct mgmt *m, u64 id)
{
	return id < m->ds->nr_slots ? &m->ds->vm->slots[id] : NULL;
}

static u8 proto_slot_type(enum hv_mem_type t)
{
	switch (t) {
	case HV_MEM_RAM:
		return PROTO_SLOT_RAM;
	case HV_MEM_MMIO:
		return PROTO_SLOT_MMIO;
	case HV_MEM_ACPI:
	case HV_MEM_RUNTIME:
	case HV_MEM_RESERVED:
	case HV_MEM_HIDDEN:
	case HV_MEM_NR_TYPES:
		break;
	}
	return PROTO_SLOT_RESERVED;
}

/* --- Commands -------------------------------------------------------------- */

static int cmd_hello(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 host_caps = proto_get_varint(req);
	u64 host_max = proto_get_varint(req);

	(void)host_caps;
	if (!proto_rbuf_done(req) || host_max < MGMT_MIN_HOST_PAYLOAD)
		return -PROTO_E_BAD_REQUEST;
	m->host_max_payload = host_max < PROTO_MAX_PAYLOAD ? (u32)host_max : PROTO_MAX_PAYLOAD;
	/* A new session: its ids may repeat an old one's, so forget the cache. */
	m->have_last = false;
	proto_put_varint(out, PROTO_VERSION);
	proto_put_varint(out, PROTO_VERSION);
	proto_put_varint(out, PROTO_CAPS_ALL & ~(m->be->now_ns ? 0 : PROTO_CAP_LEASE) &
				  ~(m->cow ? 0 : PROTO_CAP_COW));
	proto_put_varint(out, PROTO_MAX_REQ_PAYLOAD);
	proto_put_varint(out, m->host_max_payload);
	proto_put_varint(out, PROTO_WINDOW);
	proto_put_str(out, "PageTrail");
	return 0;
}

static int cmd_info(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	struct mgmt_info info = {0};
	int r;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	r = m->be->info(m->be_ctx, &info);
	if (r)
		return r;
	proto_put_str(out, info.backend);
	proto_put_str(out, info.version);
	proto_put_varint(out, info.vcpus);
	proto_put_varint(out, ds_modes_supported(m->ds));
	proto_put_varint(out, info.mem_bytes);
	proto_put_u8(out, info.stopped	? PROTO_STATE_STOPPED
			  : info.paused ? PROTO_STATE_PAUSED
					: PROTO_STATE_RUNNING);
	proto_put_varint(out, m->ds->nr_slots);
	return 0;
}

static int cmd_slots(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 start = proto_get_varint(req);
	u8 *more, *count;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (start > m->ds->nr_slots)
		return -PROTO_E_RANGE;
	/* Two fixed bytes, filled in at the end: more to come, entries here. */
	more = out->p + out->len;
	proto_put_u8(out, 0);
	count = out->p + out->len;
	proto_put_u8(out, 0);
	if (out->err)
		return -PROTO_E_INTERNAL;
	for (u32 i = (u32)start; i < m->ds->nr_slots; i++) {
		const struct hv_slot *s = find_slot(m, i);

		/* 32 bytes bound one entry (three varints and two bytes); 255 fit a count. */
		if (proto_wbuf_room(out) < 32 || *count == 0xff) {
			*more = 1;
			break;
		}
		proto_put_varint(out, i);
		proto_put_varint(out, gfn_to_gpa(s->base_gfn));
		proto_put_varint(out, s->npages << PAGE_SHIFT);
		proto_put_u8(out, proto_slot_type(s->type));
		proto_put_u8(out, (u8)ds_slot_mode(m->ds, i));
		(*count)++;
	}
	return 0;
}

/* --- Long commands (docs/protocol.md "Long commands") -------------------------- */

/*
 * The dirty-log commands are the session's operations (hv/dirty_session.h):
 * this file parses them, answers BUSY while one runs, gives each poll one
 * step, keeps the host informed (progress CREDITs) and encodes the result.
 */

/* handle_frame: the command has begun as m->op; its reply comes later. */
#define MGMT_OP_BEGUN 1

/* The reply payload of a finished command. */
static void op_finish(struct mgmt *m, int err, const struct ds_result *res)
{
	struct mgmt_op *op = &m->op;
	struct proto_buf out;

	op->finished = true;
	op->err = err;
	if (err)
		return;
	proto_wbuf_init(&out, op->reply, sizeof(op->reply));
	switch (op->hdr.cmd) {
	case PROTO_CMD_DIRTY_SNAP:
		proto_put_varint(&out, res->gen);
		proto_put_varint(&out, res->npages);
		proto_put_varint(&out, res->ndirty);
		if (m->be->now_ns) {
			u64 dt = m->be->now_ns(m->be_ctx) - op->t0;

			m->c.harvest_ns_last = dt;
			m->c.harvest_ns_total += dt;
			if (dt > m->c.harvest_ns_max)
				m->c.harvest_ns_max = dt;
		}
		m->c.harvests++;
		break;
	case PROTO_CMD_DIRTY_CLEAR:
		proto_put_varint(&out, res->ndirty); /* pages re-protected */
		break;
	case PROTO_CMD_DIRTY_DONE:
		break; /* no payload */
	default:
		proto_put_varint(&out, res->nr_slots);
		break;
	}
	op->reply_len = out.len;
	if (out.err)
		op->err = -PROTO_E_INTERNAL;
}

/* Begins a dirty-log operation for the request being handled. */
static int op_begin(struct mgmt *m, const struct ds_request *req)
{
	int r = ds_begin(m->ds, req);

	if (r)
		return r;
	zero_bytes(&m->op, sizeof(m->op));
	m->op.active = true;
	if (m->be->now_ns)
		m->op.t0 = m->be->now_ns(m->be_ctx);
	return MGMT_OP_BEGUN;
}

/* One poll's share of the long command: one session step of step_pages. */
static void op_step(struct mgmt *m)
{
	struct mgmt_op *op = &m->op;
	struct ds_result res = {0};
	int r;

	if (!op->active || op->finished)
		return;
	m->c.steps++;
	if (++op->steps == 2)
		m->c.long_cmds++;
	r = ds_step(m->ds, m->step_pages, &res);
	if (r == DS_STEP_MORE) {
		if (op->steps % MGMT_PROGRESS_STEPS == 0)
			op->credit_due = true;
		return;
	}
	op_finish(m, r, &res);
}

/* The host waits for this command's reply: tell it the command is alive. */
static void op_send_progress(struct mgmt *m)
{
	struct mgmt_op *op = &m->op;
	struct proto_buf b;
	u8 p[8];

	if (!op->active || op->finished || !op->credit_due)
		return;
	proto_wbuf_init(&b, p, sizeof(p));
	proto_put_varint(&b, op->raw);
	if (queue_aux(m, op->hdr.id, PROTO_CMD_CREDIT, p, b.len)) {
		op->credit_due = false;
		m->c.credits_sent++;
	}
}

/* A finished long command's reply goes out once the transmitter is free. */
static void op_emit(struct mgmt *m)
{
	struct mgmt_op *op = &m->op;

	if (!op->active || !op->finished || !tx_main_idle(m))
		return;
	if (op->err)
		reply_error(m, &op->hdr, op->err);
	else
		reply(m, &op->hdr, 0, op->reply, op->reply_len);
	/* Its reply is the kept one now: a repeat of the request gets it again. */
	m->last_id = op->hdr.id;
	m->last_crc = op->crc;
	m->have_last = m->tx_len != 0;
	op->active = false;
}

static int dirty_start_stop(struct mgmt *m, struct proto_buf *req, bool start)
{
	u8 flags = proto_get_u8(req);
	u64 slot = proto_get_varint(req);
	u8 mode = start ? proto_get_u8(req) : PROTO_DIRTY_OFF;
	struct ds_request dr = {0};
	int r;

	if (!proto_rbuf_done(req) || (flags & ~PROTO_START_ALL) || slot > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	if (start && (mode < PROTO_DIRTY_WP || mode > PROTO_DIRTY_PML))
		return -PROTO_E_BAD_REQUEST;
	dr.kind = start ? DS_OP_START : DS_OP_STOP;
	dr.mode = mode;
	dr.all = flags & PROTO_START_ALL;
	if (!dr.all) {
		if (start && !(ds_modes_supported(m->ds) & PROTO_DIRTY_MODE_BIT(mode)))
			return -PROTO_E_UNSUPPORTED;
		if (!find_slot(m, slot))
			return -PROTO_E_NO_SLOT;
		dr.slot = (u32)slot;
	}
	r = op_begin(m, &dr);
	if (r == MGMT_OP_BEGUN)
		m->log_epoch++; /* the log starts or ends: a series cannot span this */
	return r;
}

static int cmd_dirty_snap(struct mgmt *m, struct proto_buf *req)
{
	u64 slot = proto_get_varint(req);
	u8 flags = proto_get_u8(req);
	struct ds_request dr = {.kind = DS_OP_HARVEST, .consumer = DS_CONSUMER_MGMT};

	if (!proto_rbuf_done(req) || (flags & ~PROTO_SNAP_CLEAR) || slot > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	if (!find_slot(m, slot))
		return -PROTO_E_NO_SLOT;
	dr.slot = (u32)slot;
	dr.clear = flags & PROTO_SNAP_CLEAR;
	return op_begin(m, &dr);
}

static int cmd_dirty_read(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 slot = proto_get_varint(req);
	u64 gen = proto_get_varint(req);
	u64 first = proto_get_varint(req);
	const u64 *snap;
	u64 npages;
	int r;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (slot > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	if (!find_slot(m, slot))
		return -PROTO_E_NO_SLOT;
	if (gen > 0xffffffffu)
		return -PROTO_E_STALE;
	r = ds_view_read(m->ds, DS_CONSUMER_MGMT, (u32)slot, (u32)gen, &snap, &npages);
	if (r)
		return r;
	if (first >= npages)
		return -PROTO_E_RANGE;
	proto_put_varint(out, first);
	for (u32 blk = 0; blk < MGMT_READ_MAX_BLOCKS && first < npages; blk++) {
		u32 n = npages - first < PROTO_BITMAP_BLOCK ? (u32)(npages - first)
							    : PROTO_BITMAP_BLOCK;

		if (!proto_bitmap_encode_block(out, snap, first, n))
			break;
		first += n;
	}
	return 0;
}

/* Acknowledges (empties) the snapshot, in steps as well (a TiB slot's is 32 MiB). */
static int cmd_dirty_done(struct mgmt *m, struct proto_buf *req)
{
	u64 slot = proto_get_varint(req);
	u64 gen = proto_get_varint(req);
	struct ds_request dr = {.kind = DS_OP_ACK, .consumer = DS_CONSUMER_MGMT};
	int r;

	if (!proto_rbuf_done(req) || slot > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	if (!find_slot(m, slot))
		return -PROTO_E_NO_SLOT;
	if (gen > 0xffffffffu)
		return -PROTO_E_STALE;
	dr.slot = (u32)slot;
	dr.gen = (u32)gen;
	r = op_begin(m, &dr);
	if (r == MGMT_OP_BEGUN)
		m->log_epoch++; /* bits leave the hypervisor for good */
	return r;
}

static int cmd_dirty_epoch(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	proto_put_varint(out, m->boot_id);
	proto_put_varint(out, m->log_epoch);
	return 0;
}

static int cmd_dirty_clear(struct mgmt *m, struct proto_buf *req)
{
	u64 slot = proto_get_varint(req);
	u64 first = proto_get_varint(req);
	u64 count = proto_get_varint(req);
	struct ds_request dr = {.kind = DS_OP_CLEAR, .consumer = DS_CONSUMER_MGMT};
	int r;

	if (!proto_rbuf_done(req) || slot > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	if (!find_slot(m, slot))
		return -PROTO_E_NO_SLOT;
	dr.slot = (u32)slot;
	dr.first = first;
	dr.count = count;
	r = op_begin(m, &dr);
	if (r == MGMT_OP_BEGUN)
		m->log_epoch++; /* bits leave the log and the snapshot */
	return r;
}

/* Longest lease a host may ask for: 10 minutes. */
#define MGMT_LEASE_MAX_MS 600000

static int cmd_pause_resume(struct mgmt *m, struct proto_buf *req, bool pause)
{
	u64 lease_ms = 0;
	int r;

	/* PAUSE may carry `varint lease_ms` (0: none). */
	if (pause && proto_rbuf_left(req))
		lease_ms = proto_get_varint(req);
	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (lease_ms && !m->be->now_ns)
		return -PROTO_E_UNSUPPORTED;
	if (lease_ms > MGMT_LEASE_MAX_MS)
		return -PROTO_E_RANGE;
	r = pause ? m->be->pause(m->be_ctx) : m->be->resume(m->be_ctx);
	if (r)
		return r;
	/* A later PAUSE without a lease, or RESUME, ends it. */
	m->lease_on = lease_ms != 0;
	if (m->lease_on) {
		m->lease_ns = lease_ms * 1000000;
		m->lease_last_ns = m->be->now_ns(m->be_ctx);
	}
	return 0;
}

/* The host went silent for its lease: resume the guest it paused, and say so. */
static void lease_check(struct mgmt *m)
{
	int r;

	if (!m->lease_on || m->be->now_ns(m->be_ctx) - m->lease_last_ns < m->lease_ns)
		return;
	m->lease_on = false;
	m->c.leases_expired++;
	r = m->be->resume(m->be_ctx);
	if (r == -PROTO_E_GUEST_STOPPED) {
		if (m->be->note)
			m->be->note(m->be_ctx, "the host went silent for its pause lease: lease "
					       "ended, the guest stays stopped (fatal error)");
		return;
	}
	if (r) {
		if (m->be->note)
			m->be->note(m->be_ctx,
				    "the host went silent for its pause lease; resume FAILED");
		return;
	}
	if (m->be->note)
		m->be->note(m->be_ctx,
			    "the host went silent for its pause lease: lease ended, guest resumed");
}
/* The host went silent for its copy-on-write lease: end the session, free the budget. */
static void cow_lease_check(struct mgmt *m)
{
	u64 unsent;

	if (!m->cow_lease_on || m->be->now_ns(m->be_ctx) - m->cow_lease_last_ns < m->cow_lease_ns)
		return;
	m->cow_lease_on = false;
	m->cow_page_held = false;
	m->c.cow_leases_expired++;
	if (cow_end(m->cow, &unsent))
		return; /* ended already */
	m->cow->st.ended_by_lease++;
	if (m->be->note)
		m->be->note(m->be_ctx, "the host went silent for its copy-on-write lease: snapshot "
				       "ended, pages untracked, budget freed");
}

static bool all_zero(const u8 *p, u32 len)
{
	const u64 *w;
	u32 i;

	/* Bytes up to an 8-byte boundary: COW_READ may go on in mid-page. */
	for (; len && ((uintptr_t)p & 7); p++, len--)
		if (*p)
			return false;
	w = (const u64 *)p;
	for (i = 0; i < len / 8; i++)
		if (w[i])
			return false;
	for (i = len & ~7u; i < len; i++)
		if (p[i])
			return false;
	return true;
}

/*
 * Room a reply must have left before COW_READ takes another page from the
 * session: the pending zero run's token (at most 11 bytes) must still fit
 * once that page is taken, whatever it holds, or pages taken would be
 * covered by no reply.
 */
#define MGMT_COW_TAKE_ROOM 32

/*
 * The bytes at @at (up to the page's end) for a reply: from the backend
 * (MEM_READ), or the snapshot's (COW_READ): the held page if @at is in it,
 * else the next page taken from the session (released there, held here).
 */
static int mem_source(struct mgmt *m, bool cow, u64 at, u32 chunk, const u8 **src)
{
	gpa_t page = at & PAGE_MASK;
	int r;

	if (!cow) {
		*src = m->page;
		return m->be->mem_read(m->be_ctx, at, m->page, chunk);
	}
	if (!m->cow_page_held || m->cow_page_gpa != page) {
		r = cow_read_page(m->cow, page, m->cow_page);
		if (r)
			return r;
		m->cow_page_gpa = page;
		m->cow_page_held = true;
	}
	*src = m->cow_page + (at & ~PAGE_MASK);
	return 0;
}

/* True when all len bytes equal p[0]: eight at a time, most pages differ early. */
static bool all_same(const u8 *p, u32 len)
{
	u64 w = 0x0101010101010101ull * p[0], v;
	u32 i = 0;

	for (; i + 8 <= len; i += 8) {
		__builtin_memcpy(&v, p + i, 8);
		if (v != w)
			return false;
	}
	for (; i < len; i++)
		if (p[i] != p[0])
			return false;
	return true;
}

/*
 * A DEFLATE reply (PROTO_MEM_DEFLATE): zero and fill pages as runs (a few
 * bytes, as with tokens), the other bytes in DEFLATE items whose history is
 * the whole reply's (hv/proto/deflate.c). Called with the reply's header
 * written; returns the bytes covered.
 */
static int mem_read_deflate(struct mgmt *m, bool cow, u64 gpa, u64 len, struct proto_buf *out,
			    u64 *covered_out)
{
	struct proto_deflate *d = m->dfl;
	u64 covered = 0, zpend = 0;
	const u8 *src;
	int r = 0;

	proto_dfl_begin(d);
	for (u32 pages = 0; pages < MGMT_MEM_MAX_PAGES && covered + zpend < len; pages++) {
		u64 at = gpa + covered + zpend;
		u32 chunk = (u32)(PAGE_SIZE - (at & (PAGE_SIZE - 1)));
		u32 done, room, pend = proto_dfl_pending(d);
		/* The room left once the open item is ended: it is not in out yet. */
		u32 avail = proto_wbuf_room(out) > pend ? proto_wbuf_room(out) - pend : 0;

		if (chunk > len - covered - zpend)
			chunk = (u32)(len - covered - zpend);
		/* Room for an item's end and a zero run's token, whatever comes. */
		if (avail < PROTO_DFL_ITEM_OVERHEAD + 16)
			break;
		/* A page taken from the session must be covered: see MGMT_COW_TAKE_ROOM. */
		if (cow && (!m->cow_page_held || m->cow_page_gpa != (at & PAGE_MASK)) &&
		    avail < MGMT_COW_TAKE_ROOM + PROTO_DFL_ITEM_OVERHEAD)
			break;
		r = mem_source(m, cow, at, chunk, &src);
		if (r)
			break; /* the host asks again from here and gets the error */
		if (all_zero(src, chunk)) {
			if (!proto_dfl_end_item(d, out))
				return -PROTO_E_INTERNAL; /* room was kept for it */
			zpend += chunk;
			continue;
		}
		if (!proto_dfl_end_item(d, out))
			return -PROTO_E_INTERNAL;
		if (zpend) {
			if (!proto_put_zero_run(out, zpend))
				break;
			covered += zpend;
			zpend = 0;
		}
		if (chunk >= 8 && all_same(src, chunk)) {
			if (2 + proto_varint_len(chunk) > proto_wbuf_room(out))
				break;
			proto_put_u8(out, PROTO_TOK_FILL);
			proto_put_u8(out, src[0]);
			proto_put_varint(out, chunk);
			covered += chunk;
			continue;
		}
		/* After a zero run went in: the item and its end must still fit. */
		if (proto_wbuf_room(out) < PROTO_DFL_ITEM_OVERHEAD + 16)
			break;
		room = proto_wbuf_room(out) - PROTO_DFL_ITEM_OVERHEAD;
		if (room > PROTO_MAX_PAYLOAD)
			room = PROTO_MAX_PAYLOAD;
		done = d->in_len + chunk <= PROTO_DFL_IN_MAX ? proto_dfl_page(d, src, chunk, room) : 0;
		covered += done;
		if (done < chunk)
			break;
	}
	if (!proto_dfl_end_item(d, out))
		return -PROTO_E_INTERNAL;
	if (zpend && proto_put_zero_run(out, zpend))
		covered += zpend;
	*covered_out = covered;
	return covered ? 0 : r ? r : -PROTO_E_INTERNAL;
}

static int cmd_mem_read(struct mgmt *m, struct proto_buf *req, struct proto_buf *out, bool cow)
{
	u64 gpa = proto_get_varint(req);
	u64 len = proto_get_varint(req);
	u8 flags = proto_get_u8(req);
	u64 covered = 0, zpend = 0;
	const u8 *src;
	bool tokens = flags & PROTO_MEM_LZ;
	int r;

	if (!proto_rbuf_done(req) || (flags & ~(PROTO_MEM_LZ | PROTO_MEM_DFL)))
		return -PROTO_E_BAD_REQUEST;
	if (len == 0 || gpa + len < gpa)
		return -PROTO_E_RANGE;
	if (cow && !m->cow)
		return -PROTO_E_UNSUPPORTED;
	proto_put_varint(out, gpa);
	if (flags & PROTO_MEM_DFL) {
		proto_put_u8(out, PROTO_MEM_DEFLATE);
		return mem_read_deflate(m, cow, gpa, len, out, &covered);
	}
	proto_put_u8(out, tokens ? PROTO_MEM_TOKENS : PROTO_MEM_RAW);

	for (u32 pages = 0; pages < MGMT_MEM_MAX_PAGES && covered + zpend < len; pages++) {
		u64 at = gpa + covered + zpend;
		u32 chunk = (u32)(PAGE_SIZE - (at & (PAGE_SIZE - 1)));
		u32 done;

		if (chunk > len - covered - zpend)
			chunk = (u32)(len - covered - zpend);
		if (!tokens && chunk > proto_wbuf_room(out))
			chunk = proto_wbuf_room(out);
		if (!chunk || proto_wbuf_room(out) < 8)
			break;
		if (cow && (!m->cow_page_held || m->cow_page_gpa != (at & PAGE_MASK)) &&
		    proto_wbuf_room(out) < MGMT_COW_TAKE_ROOM)
			break;
		r = mem_source(m, cow, at, chunk, &src);
		if (r) {
			if (covered + zpend == 0)
				return r;
			break; /* the host asks again from here and gets the error */
		}
		if (!tokens) {
			proto_put_bytes(out, src, chunk);
			covered += chunk;
			continue;
		}
		if (all_zero(src, chunk)) {
			zpend += chunk;
			continue;
		}
		if (zpend) {
			if (!proto_put_zero_run(out, zpend))
				break;
			covered += zpend;
			zpend = 0;
		}
		done = proto_lz_compress(m->lz, out, src, chunk);
		covered += done;
		if (done < chunk)
			break;
	}
	if (zpend && proto_put_zero_run(out, zpend))
		covered += zpend;
	return covered ? 0 : -PROTO_E_INTERNAL;
}
/* Longest copy-on-write lease a host may ask for: 10 minutes, as a pause's. */
#define MGMT_COW_LEASE_MAX_MS 600000

static int cmd_cow_arm(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 budget = proto_get_varint(req);
	u64 lease_ms = proto_get_varint(req);
	struct mgmt_info info = {0};
	u64 tracked;
	int r;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (!m->cow || (lease_ms && !m->be->now_ns))
		return -PROTO_E_UNSUPPORTED;
	if (lease_ms > MGMT_COW_LEASE_MAX_MS || !budget || budget > 0xfffffffeull)
		return -PROTO_E_RANGE;
	/* The instant is a pause: the vCPU state was taken in it, and no vCPU
	 * may write while the pages are being protected. */
	r = m->be->info(m->be_ctx, &info);
	if (r)
		return r;
	if (!info.paused)
		return -PROTO_E_STATE;
	r = cow_arm(m->cow, budget, &tracked);
	if (r)
		return r;
	m->cow_page_held = false;
	m->cow_lease_on = lease_ms != 0;
	if (m->cow_lease_on) {
		m->cow_lease_ns = lease_ms * 1000000;
		m->cow_lease_last_ns = m->be->now_ns(m->be_ctx);
	}
	proto_put_varint(out, budget);
	proto_put_varint(out, tracked);
	return 0;
}

static int cmd_cow_end(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 unsent;
	int r;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (!m->cow)
		return -PROTO_E_UNSUPPORTED;
	r = cow_end(m->cow, &unsent);
	if (r)
		return r;
	m->cow_page_held = false;
	m->cow_lease_on = false;
	proto_put_varint(out, m->cow->st.copies);
	proto_put_varint(out, m->cow->st.waits);
	proto_put_varint(out, m->cow->st.max_used);
	proto_put_varint(out, unsent);
	return 0;
}

static int cmd_regs(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 vcpu = proto_get_varint(req);
	struct mgmt_regs regs = {0};
	int r;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	if (vcpu > 0xffffffffu)
		return -PROTO_E_NO_VCPU;
	r = m->be->regs(m->be_ctx, (u32)vcpu, &regs);
	if (r)
		return r;
	proto_put_varint(out, vcpu);
	if (!regs.nr || regs.nr > PROTO_REG_NR)
		regs.nr = PROTO_REG_NR;
	proto_put_varint(out, regs.nr);
	for (u32 i = 0; i < regs.nr; i++)
		proto_put_u64le(out, regs.r[i]);
	return 0;
}

/* The dispatcher's own counters, reported ahead of the backend's. */
#define MGMT_STAT(field)                                                                           \
	{                                                                                          \
		"proto." #field, offsetof(struct mgmt_counters, field)                             \
	}
static const struct {
	const char *name;
	size_t off;
} mgmt_stats[] = {
    MGMT_STAT(rx_bytes),
    MGMT_STAT(tx_bytes),
    MGMT_STAT(frames_ok),
    MGMT_STAT(bad_crc),
    MGMT_STAT(framing),
    MGMT_STAT(too_big),
    MGMT_STAT(too_short),
    MGMT_STAT(bad_version),
    MGMT_STAT(unknown_cmd),
    MGMT_STAT(bad_request),
    MGMT_STAT(line_errors),
    MGMT_STAT(dup_requests),
    MGMT_STAT(naks_sent),
    MGMT_STAT(naks_dropped),
    MGMT_STAT(credits_sent),
    {"dirty.harvests", offsetof(struct mgmt_counters, harvests)},
    {"dirty.harvest_ns_total", offsetof(struct mgmt_counters, harvest_ns_total)},
    {"dirty.harvest_ns_max", offsetof(struct mgmt_counters, harvest_ns_max)},
    {"dirty.harvest_ns_last", offsetof(struct mgmt_counters, harvest_ns_last)},
    MGMT_STAT(busy),
    MGMT_STAT(steps),
    MGMT_STAT(long_cmds),
    MGMT_STAT(leases_expired),
    {"cow.leases_expired", offsetof(struct mgmt_counters, cow_leases_expired)},
};

/* The copy-on-write session's counters, after the dispatcher's. */
#define COW_STAT(field)                                                                            \
	{                                                                                          \
		"cow." #field, offsetof(struct cow_stats, field)                                   \
	}
static const struct {
	const char *name;
	size_t off;
} cow_stats[] = {
    COW_STAT(sessions),	    COW_STAT(copies),	   COW_STAT(waits),	     COW_STAT(wait_faults),
    COW_STAT(sent_copy),    COW_STAT(sent_direct), COW_STAT(max_used),	     COW_STAT(unsent),
    COW_STAT(copies_total), COW_STAT(waits_total), COW_STAT(ended_by_lease),
};

static int cmd_stats(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 start = proto_get_varint(req);
	u32 nr_mgmt = ARRAY_SIZE(mgmt_stats);
	u32 nr_own = nr_mgmt + (m->cow ? ARRAY_SIZE(cow_stats) : 0);
	u8 *more;

	if (!proto_rbuf_done(req) || start > 0xffffffffu)
		return -PROTO_E_BAD_REQUEST;
	more = out->p + out->len;
	proto_put_u8(out, 0);
	for (u64 i = start;; i++) {
		const char *name;
		u64 value;
		u32 n = 0;

		if (i < nr_mgmt) {
			name = mgmt_stats[i].name;
			value = *(const u64 *)((const u8 *)&m->c + mgmt_stats[i].off);
		} else if (i < nr_own) {
			name = cow_stats[i - nr_mgmt].name;
			value = __atomic_load_n(
			    (const u64 *)((const u8 *)&m->cow->st + cow_stats[i - nr_mgmt].off),
			    __ATOMIC_RELAXED);
		} else {
			int r = m->be->stat(m->be_ctx, (u32)(i - nr_own), &name, &value);

			if (r == -PROTO_E_RANGE)
				break;
			if (r)
				return r;
		}
		while (name && name[n] && n < 64)
			n++;
		if (proto_wbuf_room(out) < 1 + 64 + 10) {
			*more = 1;
			break;
		}
		proto_put_varint(out, n);
		proto_put_bytes(out, name, n);
		proto_put_varint(out, value);
	}
	return 0;
}

static int cmd_log(struct mgmt *m, struct proto_buf *req, struct proto_buf *out)
{
	u64 off = proto_get_varint(req);
	u64 max = proto_get_varint(req);
	u64 first = 0, end = 0;
	u32 room, n;

	if (!proto_rbuf_done(req))
		return -PROTO_E_BAD_REQUEST;
	m->be->log_read(m->be_ctx, 0, m->page, 0, &first, &end);
	if (off < first)
		off = first;
	if (off > end)
		off = end;
	proto_put_varint(out, first);
	proto_put_varint(out, end);
	proto_put_varint(out, off);
	room = proto_wbuf_room(out);
	if (max > room)
		max = room;
	if (max > PAGE_SIZE)
		max = PAGE_SIZE;
	n = m->be->log_read(m->be_ctx, off, m->page, (u32)max, &first, &end);
	if (n > max)
		return -PROTO_E_INTERNAL;
	proto_put_bytes(out, m->page, n);
	return 0;
}

void mgmt_handle_frame(struct mgmt *m, const u8 *frame, u32 len)
{
	struct proto_hdr h;
	struct proto_buf req, out;
	u32 crc;
	int r;

	if (len < PROTO_MIN_FRAME)
		return;
	h.version = frame[0];
	h.flags = frame[1];
	h.id = (u16)(frame[2] | frame[3] << 8);
	h.cmd = frame[4];
	crc = (u32)frame[len - 4] | (u32)frame[len - 3] << 8 | (u32)frame[len - 2] << 16 |
	      (u32)frame[len - 1] << 24;
	if (h.version != PROTO_VERSION) {
		m->c.bad_version++;
		reply_error(m, &h, PROTO_E_VERSION);
		return;
	}
	/* Our own replies echoed back (a loop on the line): never answer them. */
	if (h.flags & PROTO_F_REPLY) {
		m->c.bad_request++;
		return;
	}
	/* The host is alive: its pause and copy-on-write leases run from here. */
	if (m->lease_on)
		m->lease_last_ns = m->be->now_ns(m->be_ctx);
	if (m->cow_lease_on)
		m->cow_lease_last_ns = m->be->now_ns(m->be_ctx);
	if (m->op.active) {
		/*
		 * A long command runs. A repeat of it (its host timed out, or
		 * lost a CREDIT) must not run it twice: the running one answers
		 * it, and a CREDIT now tells the host it is alive.
		 */
		if (h.id == m->op.hdr.id && crc == m->op.crc) {
			m->c.dup_requests++;
			m->op.credit_due = true;
			return;
		}
		/*
		 * Dirty-log requests would change or read the state the
		 * command is changing: BUSY, and not kept, so that the same
		 * request sent again after the command ended is run.
		 */
		if (h.cmd >= PROTO_CMD_DIRTY_START && h.cmd <= PROTO_CMD_DIRTY_CLEAR) {
			m->c.busy++;
			reply_error(m, &h, PROTO_E_BUSY);
			m->have_last = false;
			return;
		}
	}
	/*
	 * The host repeats a request whose reply it lost; running it again could
	 * harvest twice, so the kept reply is sent again instead.
	 */
	if (m->have_last && h.id == m->last_id && crc == m->last_crc) {
		m->c.dup_requests++;
		m->tx_pos = 0;
		return;
	}
	proto_rbuf_init(&req, frame + PROTO_HDR_LEN, len - PROTO_MIN_FRAME);
	proto_wbuf_init(&out, m->payload, m->host_max_payload);
	switch (h.cmd) {
	case PROTO_CMD_HELLO:
		r = cmd_hello(m, &req, &out);
		break;
	case PROTO_CMD_INFO:
		r = cmd_info(m, &req, &out);
		break;
	case PROTO_CMD_SLOTS:
		r = cmd_slots(m, &req, &out);
		break;
	case PROTO_CMD_DIRTY_START:
		r = dirty_start_stop(m, &req, true);
		break;
	case PROTO_CMD_DIRTY_STOP:
		r = dirty_start_stop(m, &req, false);
		break;
	case PROTO_CMD_DIRTY_SNAP:
		r = cmd_dirty_snap(m, &req);
		break;
	case PROTO_CMD_DIRTY_READ:
		r = cmd_dirty_read(m, &req, &out);
		break;
	case PROTO_CMD_DIRTY_DONE:
		r = cmd_dirty_done(m, &req);
		break;
	case PROTO_CMD_DIRTY_CLEAR:
		r = cmd_dirty_clear(m, &req);
		break;
	case PROTO_CMD_DIRTY_EPOCH:
		r = cmd_dirty_epoch(m, &req, &out);
		break;
	case PROTO_CMD_PAUSE:
		r = cmd_pause_resume(m, &req, true);
		break;
	case PROTO_CMD_RESUME:
		r = cmd_pause_resume(m, &req, false);
		break;
	case PROTO_CMD_MEM_READ:
		r = cmd_mem_read(m, &req, &out, false);
		break;
	case PROTO_CMD_COW_ARM:
		r = cmd_cow_arm(m, &req, &out);
		break;
	case PROTO_CMD_COW_READ:
		r = cmd_mem_read(m, &req, &out, true);
		break;
	case PROTO_CMD_COW_END:
		r = cmd_cow_end(m, &req, &out);
		break;
	case PROTO_CMD_REGS:
		r = cmd_regs(m, &req, &out);
		break;
	case PROTO_CMD_STATS:
		r = cmd_stats(m, &req, &out);
		break;
	case PROTO_CMD_LOG:
		r = cmd_log(m, &req, &out);
		break;
	default:
		m->c.unknown_cmd++;
		r = -PROTO_E_UNKNOWN_CMD;
		break;
	}
	if (r == MGMT_OP_BEGUN) {
		/*
		 * Its first step runs now: a small slot is done at once and
		 * answered in this poll, as before there were steps.
		 */
		m->c.frames_ok++;
		m->op.hdr = h;
		m->op.crc = crc;
		m->op.raw = m->rx.raw;
		op_step(m);
		op_emit(m);
		return;
	}
	if (!r && out.err)
		r = -PROTO_E_INTERNAL; /* a reply outgrew its frame: a bug here */
	if (r == -PROTO_E_BAD_REQUEST)
		m->c.bad_request++;
	if (r)
		reply_error(m, &h, r);
	else
		reply(m, &h, 0, m->payload, out.len);
	m->c.frames_ok++;
	m->last_id = h.id;
	m->last_crc = crc;
	m->have_last = m->tx_len != 0;
}

/* --- Polling ---------------------------------------------------------------- */

static void dispatch_rx(struct mgmt *m)
{
	mgmt_handle_frame(m, m->rx.buf, m->rx.len);
	m->rx_held = false;
	m->credit_raw = 0;
}

void mgmt_poll(struct mgmt *m)
{
	cow_lease_check(m);
	lease_check(m);
	tx_pump(m);
	flush_nak(m);
	/* At most one step per poll: a command begun below runs its first one. */
	op_step(m);
	op_emit(m);
	if (m->rx_held && tx_main_idle(m))
		dispatch_rx(m);

	for (u32 budget = MGMT_RX_BUDGET; budget && !m->rx_held; budget--) {
		int c = m->tp->rx_byte(m->tp_ctx);
		enum proto_rx_result r;

		if (c == MGMT_RX_NONE)
			break;
		if (c < 0 || c > 0xff) {
			/* A byte was lost: the frame in progress cannot pass. */
			m->c.line_errors++;
			if (m->rx.state == PROTO_RX_FRAME) {
				m->rx.state = PROTO_RX_DISCARD;
				m->rx.err = PROTO_E_FRAMING;
			}
			continue;
		}
		m->c.rx_bytes++;
		r = proto_rx_byte(&m->rx, (u8)c);
		if (r == PROTO_RX_GOOD) {
			/* A finished long command's reply goes first. */
			op_emit(m);
			/* The reply slot is busy: hold the request, read no further. */
			if (tx_main_idle(m))
				dispatch_rx(m);
			else
				m->rx_held = true;
		} else if (r == PROTO_RX_BAD) {
			send_nak(m, m->rx.err);
			m->credit_raw = 0;
		}
	}
	flush_nak(m);
	send_credit(m);
	op_send_progress(m);
	tx_pump(m);
}

bool mgmt_wants_poll(const struct mgmt *m)
{
	return !tx_main_idle(m) || m->aux_len || m->nak_pending || m->rx_held ||
	       m->rx.state != PROTO_RX_IDLE || m->op.active;
}
