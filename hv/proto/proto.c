/* SPDX-License-Identifier: MIT */
/*
 * The management protocol's wire codec: CRC-32C, varints, COBS frames with a
 * streaming decoder. Freestanding (in pagetrail.efi) and hosted (ptctl, tests).
 */
#include <hv/proto/proto.h>

/* --- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ------------------- */

/*
 * Nibble-at-a-time table: 64 bytes, no initialisation pass, fast enough for a
 * 115200-baud line (the hypervisor checks at most a few KiB per command).
 */
static const u32 crc32c_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3, 0x61c69362, 0x7198540d,
    0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9, 0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

u32 proto_crc32c(u32 crc, const void *buf, size_t len)
{
	const u8 *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
		crc = (crc >> 4) ^ crc32c_nibble[crc & 15];
	}
	return ~crc;
}

/* --- Names ---------------------------------------------------------------- */

static const char *const err_names[PROTO_E_NR] = {
    [PROTO_E_OK] = "ok",
    [PROTO_E_VERSION] = "protocol version mismatch",
    [PROTO_E_UNKNOWN_CMD] = "unknown command",
    [PROTO_E_BAD_REQUEST] = "malformed request",
    [PROTO_E_BAD_CRC] = "bad checksum",
    [PROTO_E_FRAMING] = "framing error",
    [PROTO_E_TOO_BIG] = "frame too big",
    [PROTO_E_TOO_SHORT] = "frame too short",
    [PROTO_E_NO_SLOT] = "no such memory slot",
    [PROTO_E_RANGE] = "out of range",
    [PROTO_E_UNSUPPORTED] = "not supported",
    [PROTO_E_STALE] = "snapshot is stale",
    [PROTO_E_BUSY] = "busy",
    [PROTO_E_FAULT] = "guest memory not readable",
    [PROTO_E_STATE] = "wrong state",
    [PROTO_E_NO_VCPU] = "no such vCPU",
    [PROTO_E_INTERNAL] = "internal error",
    [PROTO_E_NOMEM] = "out of hypervisor memory",
    [PROTO_E_GUEST_STOPPED] = "the guest is stopped after a fatal error (see the log)",
};

const char *proto_err_name(int err)
{
	if (err < 0)
		err = -err;
	if (err >= PROTO_E_NR)
		return "unknown error";
	return err_names[err];
}

const char *proto_cmd_name(int cmd)
{
	switch (cmd) {
	case PROTO_CMD_HELLO:
		return "hello";
	case PROTO_CMD_INFO:
		return "info";
	case PROTO_CMD_SLOTS:
		return "slots";
	case PROTO_CMD_DIRTY_START:
		return "dirty-start";
	case PROTO_CMD_DIRTY_STOP:
		return "dirty-stop";
	case PROTO_CMD_DIRTY_SNAP:
		return "dirty-snap";
	case PROTO_CMD_DIRTY_READ:
		return "dirty-read";
	case PROTO_CMD_DIRTY_DONE:
		return "dirty-done";
	case PROTO_CMD_DIRTY_CLEAR:
		return "dirty-clear";
	case PROTO_CMD_DIRTY_EPOCH:
		return "dirty-epoch";
	case PROTO_CMD_PAUSE:
		return "pause";
	case PROTO_CMD_RESUME:
		return "resume";
	case PROTO_CMD_MEM_READ:
		return "mem-read";
	case PROTO_CMD_REGS:
		return "regs";
	case PROTO_CMD_COW_ARM:
		return "cow-arm";
	case PROTO_CMD_COW_READ:
		return "cow-read";
	case PROTO_CMD_COW_END:
		return "cow-end";
	case PROTO_CMD_STATS:
		return "stats";
	case PROTO_CMD_LOG:
		return "log";
	case PROTO_CMD_CREDIT:
		return "credit";
	case PROTO_CMD_NAK:
		return "nak";
	}
	return "unknown";
}

static const char *const reg_names[PROTO_REG_NR] = {
    "rax",	 "rcx",	       "rdx",	    "rbx",	"rsp",	     "rbp",
    "rsi",	 "rdi",	       "r8",	    "r9",	"r10",	     "r11",
    "r12",	 "r13",	       "r14",	    "r15",	"rip",	     "rflags",
    "cr0",	 "cr2",	       "cr3",	    "cr4",	"efer",	     "cs",
    "ss",	 "ds",	       "es",	    "fs",	"gs",	     "fs_base",
    "gs_base",	 "cs_base",    "cs_limit",  "cs_attr",	"ss_base",   "ss_limit",
    "ss_attr",	 "ds_base",    "ds_limit",  "ds_attr",	"es_base",   "es_limit",
    "es_attr",	 "fs_limit",   "fs_attr",   "gs_limit", "gs_attr",   "ldtr",
    "ldtr_base", "ldtr_limit", "ldtr_attr", "tr",	"tr_base",   "tr_limit",
    "tr_attr",	 "gdt_base",   "gdt_limit", "idt_base", "idt_limit", "kernel_gs_base",
};

const char *proto_reg_name(int reg)
{
	if (reg < 0 || reg >= PROTO_REG_NR)
		return "?";
	return reg_names[reg];
}

/* --- Payload cursor ------------------------------------------------------- */

unsigned int proto_varint_len(u64 v)
{
	unsigned int n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

void proto_put_u8(struct proto_buf *b, u8 v)
{
	if (b->err || b->len >= b->cap) {
		b->err = true;
		return;
	}
	b->p[b->len++] = v;
}

void proto_put_u64le(struct proto_buf *b, u64 v)
{
	for (int i = 0; i < 8; i++)
		proto_put_u8(b, (u8)(v >> (8 * i)));
}

void proto_put_varint(struct proto_buf *b, u64 v)
{
	while (v >= 0x80) {
		proto_put_u8(b, (u8)(v | 0x80));
		v >>= 7;
	}
	proto_put_u8(b, (u8)v);
}

void proto_put_bytes(struct proto_buf *b, const void *p, u32 len)
{
	const u8 *s = p;

	if (b->err || len > proto_wbuf_room(b)) {
		b->err = true;
		return;
	}
	for (u32 i = 0; i < len; i++)
		b->p[b->len + i] = s[i];
	b->len += len;
}

void proto_put_str(struct proto_buf *b, const char *s)
{
	u32 n = 0;

	if (s)
		while (s[n])
			n++;
	proto_put_varint(b, n);
	proto_put_bytes(b, s, n);
}

u8 proto_get_u8(struct proto_buf *b)
{
	if (b->err || b->pos >= b->len) {
		b->err = true;
		return 0;
	}
	return b->p[b->pos++];
}

u64 proto_get_u64le(struct proto_buf *b)
{
	u64 v = 0;

	for (int i = 0; i < 8; i++)
		v |= (u64)proto_get_u8(b) << (8 * i);
	return v;
}

u64 proto_get_varint(struct proto_buf *b)
{
	u64 v = 0;

	for (unsigned int shift = 0; shift < 64; shift += 7) {
		u8 c = proto_get_u8(b);

		if (b->err)
			return 0;
		/* The tenth byte may carry only the top bit of a u64. */
		if (shift == 63 && c > 1) {
			b->err = true;
			return 0;
		}
		v |= (u64)(c & 0x7f) << shift;
		if (!(c & 0x80))
			return v;
	}
	b->err = true;
	return 0;
}

const u8 *proto_get_bytes(struct proto_buf *b, u32 len)
{
	const u8 *p;

	if (b->err || len > proto_rbuf_left(b)) {
		b->err = true;
		return NULL;
	}
	p = b->p + b->pos;
	b->pos += len;
	return p;
}

void proto_get_str(struct proto_buf *b, char *out, u32 cap)
{
	u64 n = proto_get_varint(b);
	const u8 *s;
	u32 i;

	if (cap)
		out[0] = 0;
	if (b->err || n > proto_rbuf_left(b)) {
		b->err = true;
		return;
	}
	s = proto_get_bytes(b, (u32)n);
	if (!s || !cap)
		return;
	for (i = 0; i < n && i + 1 < cap; i++)
		out[i] = s[i] ? (char)s[i] : '?';
	out[i] = 0;
}

/* --- COBS frames ---------------------------------------------------------- */

/*
 * Streaming COBS encoder: code is the index of the current block's code byte,
 * filled in when the block ends (at a zero, after 254 data bytes, or at the end).
 */
struct cobs_enc {
	u8 *out;
	u32 cap, len, code;
	bool err;
};

static void cobs_emit(struct cobs_enc *e, u8 v)
{
	if (e->len >= e->cap) {
		e->err = true;
		return;
	}
	e->out[e->len++] = v;
}

static void cobs_open_block(struct cobs_enc *e)
{
	e->code = e->len;
	cobs_emit(e, 0); /* placeholder for the code byte */
}

static void cobs_close_block(struct cobs_enc *e)
{
	if (!e->err)
		e->out[e->code] = (u8)(e->len - e->code);
}

static void cobs_put(struct cobs_enc *e, u8 v)
{
	if (e->err)
		return;
	if (v == 0) {
		cobs_close_block(e);
		cobs_open_block(e);
		return;
	}
	cobs_emit(e, v);
	if (e->len - e->code == 0xff) {
		cobs_close_block(e);
		cobs_open_block(e);
	}
}

static void cobs_put_crc(struct cobs_enc *e, u32 *crc, const u8 *p, u32 len)
{
	*crc = proto_crc32c(*crc, p, len);
	for (u32 i = 0; i < len; i++)
		cobs_put(e, p[i]);
}

u32 proto_frame_encode(u8 *out, u32 cap, const struct proto_hdr *hdr, const u8 *payload,
		       u32 payload_len)
{
	struct cobs_enc e = {.out = out, .cap = cap};
	u8 h[PROTO_HDR_LEN] = {hdr->version, hdr->flags, (u8)hdr->id, (u8)(hdr->id >> 8), hdr->cmd};
	u32 crc = 0;
	u8 c[PROTO_CRC_LEN];

	if (payload_len > PROTO_MAX_PAYLOAD)
		return 0;
	/* The opening delimiter ends whatever garbage the receiver holds. */
	cobs_emit(&e, 0);
	cobs_open_block(&e);
	cobs_put_crc(&e, &crc, h, sizeof(h));
	cobs_put_crc(&e, &crc, payload, payload_len);
	for (int i = 0; i < PROTO_CRC_LEN; i++)
		c[i] = (u8)(crc >> (8 * i));
	for (int i = 0; i < PROTO_CRC_LEN; i++)
		cobs_put(&e, c[i]);
	/*
	 * A block that ended exactly at 254 data bytes opened an empty block:
	 * COBS encodes it as code 0x01, which decodes to nothing more, since an
	 * implied zero is only produced when another block follows.
	 */
	cobs_close_block(&e);
	cobs_emit(&e, 0);
	return e.err ? 0 : e.len;
}

void proto_rx_init(struct proto_rx *rx, u8 *buf, u32 cap)
{
	rx->buf = buf;
	rx->cap = cap;
	rx->len = 0;
	rx->raw = 0;
	rx->block_left = 0;
	rx->zero_after = false;
	rx->state = PROTO_RX_IDLE;
	rx->err = PROTO_E_OK;
}

static void rx_discard(struct proto_rx *rx, u8 err)
{
	rx->state = PROTO_RX_DISCARD;
	rx->err = err;
}

static void rx_append(struct proto_rx *rx, u8 v)
{
	if (rx->len >= rx->cap) {
		rx_discard(rx, PROTO_E_TOO_BIG);
		return;
	}
	rx->buf[rx->len++] = v;
}

static enum proto_rx_result rx_end(struct proto_rx *rx)
{
	u32 crc, want;
	u8 *c;

	if (rx->state == PROTO_RX_DISCARD)
		return PROTO_RX_BAD;
	if (rx->block_left) {
		rx->err = PROTO_E_FRAMING; /* the last block was cut short */
		return PROTO_RX_BAD;
	}
	if (rx->len < PROTO_MIN_FRAME) {
		rx->err = PROTO_E_TOO_SHORT;
		return PROTO_RX_BAD;
	}
	c = rx->buf + rx->len - PROTO_CRC_LEN;
	want = (u32)c[0] | (u32)c[1] << 8 | (u32)c[2] << 16 | (u32)c[3] << 24;
	crc = proto_crc32c(0, rx->buf, rx->len - PROTO_CRC_LEN);
	if (crc != want) {
		rx->err = PROTO_E_BAD_CRC;
		return PROTO_RX_BAD;
	}
	rx->err = PROTO_E_OK;
	return PROTO_RX_GOOD;
}

enum proto_rx_result proto_rx_byte(struct proto_rx *rx, u8 byte)
{
	enum proto_rx_result r;

	if (byte == 0) {
		/* Two delimiters in a row are an empty frame: ignored, not an error. */
		if (rx->state == PROTO_RX_IDLE)
			return PROTO_RX_NONE;
		/* raw stays: the caller may report the length of a dropped frame. */
		r = rx_end(rx);
		rx->state = PROTO_RX_IDLE;
		return r;
	}
	if (rx->state == PROTO_RX_IDLE) {
		rx->state = PROTO_RX_FRAME;
		rx->len = 0;
		rx->raw = 0;
		rx->block_left = 0;
		rx->zero_after = false;
		rx->err = PROTO_E_OK;
	}
	if (rx->raw != ~0u)
		rx->raw++;
	if (rx->state == PROTO_RX_DISCARD)
		return PROTO_RX_NONE;
	if (rx->block_left) {
		rx_append(rx, byte);
		rx->block_left--;
		return PROTO_RX_NONE;
	}
	/* A code byte: the previous block (if any) ended with an implied zero. */
	if (rx->zero_after)
		rx_append(rx, 0);
	rx->block_left = byte - 1;
	rx->zero_after = byte != 0xff;
	return PROTO_RX_NONE;
}

void proto_rx_frame(const struct proto_rx *rx, struct proto_hdr *hdr, const u8 **payload,
		    u32 *payload_len)
{
	hdr->version = rx->buf[0];
	hdr->flags = rx->buf[1];
	hdr->id = (u16)(rx->buf[2] | rx->buf[3] << 8);
	hdr->cmd = rx->buf[4];
	*payload = rx->buf + PROTO_HDR_LEN;
	*payload_len = rx->len - PROTO_HDR_LEN - PROTO_CRC_LEN;
}

enum proto_rx_result proto_decode_frame(const u8 *wire, u32 wire_len, u8 *buf, u32 cap,
					struct proto_hdr *hdr, const u8 **payload, u32 *payload_len,
					u8 *err)
{
	struct proto_rx rx;
	enum proto_rx_result r = PROTO_RX_NONE;

	proto_rx_init(&rx, buf, cap);
	for (u32 i = 0; i < wire_len; i++) {
		r = proto_rx_byte(&rx, wire[i]);
		if (r != PROTO_RX_NONE)
			break;
	}
	*err = r == PROTO_RX_NONE ? PROTO_E_FRAMING : rx.err;
	if (r == PROTO_RX_GOOD)
		proto_rx_frame(&rx, hdr, payload, payload_len);
	return r == PROTO_RX_NONE ? PROTO_RX_BAD : r;
}
