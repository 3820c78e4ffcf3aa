/* SPDX-License-Identifier: MIT */
/*
 * The management protocol's wire codec: one copy, compiled freestanding into
 * pagetrail.efi and hosted into ptctl, the simulator, the tests and the fuzzers.
 * docs/protocol.md is the specification; this header is its C form.
 *
 * A frame, decoded:
 *
 *   off 0  u8   version   PROTO_VERSION; every version keeps this byte first,
 *                         the COBS framing and the trailing CRC-32C, so that a
 *                         peer of another version can be named, not misparsed
 *   off 1  u8   flags     PROTO_F_REPLY (hypervisor to host), PROTO_F_ERROR
 *   off 2  u16  id        request id (LE), echoed by the reply; 0 = unsolicited
 *   off 4  u8   cmd       PROTO_CMD_*
 *   off 5  ...  payload   0..PROTO_MAX_PAYLOAD bytes
 *   end-4  u32  crc       CRC-32C (Castagnoli, reflected, as iSCSI) of all above, LE
 *
 * On the wire: 0x00, COBS(frame), 0x00. COBS leaves no zero byte inside a frame,
 * so a receiver resynchronises at the next 0x00 after any garbage.
 *
 * Nothing here allocates, calls libc or keeps global state: buffers come from
 * the caller.
 */
#ifndef PT_PROTO_H
#define PT_PROTO_H

#include <pt/limits.h>
#include <pt/types.h>

#define PROTO_VERSION 1

#define PROTO_HDR_LEN 5
#define PROTO_CRC_LEN 4
/* Largest payload of any frame (replies); requests are limited further below. */
#define PROTO_MAX_PAYLOAD 4096
/* Largest request payload the hypervisor accepts (its receive buffer). */
#define PROTO_MAX_REQ_PAYLOAD 256
#define PROTO_MIN_FRAME	      (PROTO_HDR_LEN + PROTO_CRC_LEN)
#define PROTO_MAX_FRAME	      (PROTO_HDR_LEN + PROTO_MAX_PAYLOAD + PROTO_CRC_LEN)
#define PROTO_MAX_REQ_FRAME   (PROTO_HDR_LEN + PROTO_MAX_REQ_PAYLOAD + PROTO_CRC_LEN)
/* COBS adds one byte per 254 and one more; plus the two delimiters. */
#define PROTO_WIRE_LEN(frame_len) ((frame_len) + (frame_len) / 254 + 1 + 2)
#define PROTO_MAX_WIRE		  PROTO_WIRE_LEN(PROTO_MAX_FRAME)
#define PROTO_MAX_REQ_WIRE	  PROTO_WIRE_LEN(PROTO_MAX_REQ_FRAME)

/*
 * Flow control, host to hypervisor: the host never has more than PROTO_WINDOW
 * bytes unread by the hypervisor (a 16550's receive FIFO; the hypervisor reads
 * it only when it has control). Bytes are acknowledged by a CREDIT frame
 * (payload: varint bytes of the current frame consumed after its opening
 * delimiter, id = that frame's request id) or by the reply.
 */
#define PROTO_WINDOW 16

/* Most memory slots a hypervisor reports (SLOTS). */
#define PROTO_MAX_SLOTS PT_MAX_SLOTS

#define PROTO_F_REPLY 0x01
#define PROTO_F_ERROR 0x02

enum proto_cmd {
	PROTO_CMD_HELLO = 0x01,
	PROTO_CMD_INFO = 0x02,
	PROTO_CMD_SLOTS = 0x03,
	PROTO_CMD_DIRTY_START = 0x10,
	PROTO_CMD_DIRTY_STOP = 0x11,
	PROTO_CMD_DIRTY_SNAP = 0x12,
	PROTO_CMD_DIRTY_READ = 0x13,
	PROTO_CMD_DIRTY_DONE = 0x14,
	PROTO_CMD_DIRTY_CLEAR = 0x15,
	PROTO_CMD_DIRTY_EPOCH = 0x16,
	PROTO_CMD_PAUSE = 0x20,
	PROTO_CMD_RESUME = 0x21,
	PROTO_CMD_MEM_READ = 0x22,
	PROTO_CMD_REGS = 0x23,
	PROTO_CMD_COW_ARM = 0x24,
	PROTO_CMD_COW_READ = 0x25,
	PROTO_CMD_COW_END = 0x26,
	PROTO_CMD_STATS = 0x30,
	PROTO_CMD_LOG = 0x31,
	/* Hypervisor to host only, id 0 or the id of the frame in progress. */
	PROTO_CMD_CREDIT = 0x70,
	PROTO_CMD_NAK = 0x71,
};

/* Typed errors: the first payload byte of a PROTO_F_ERROR frame. */
enum proto_err {
	PROTO_E_OK = 0,
	PROTO_E_VERSION = 1,	    /* peer speaks another protocol version */
	PROTO_E_UNKNOWN_CMD = 2,    /* command not known to this hypervisor */
	PROTO_E_BAD_REQUEST = 3,    /* payload malformed or with trailing bytes */
	PROTO_E_BAD_CRC = 4,	    /* NAK: a frame failed its CRC */
	PROTO_E_FRAMING = 5,	    /* NAK: invalid COBS (truncated block) */
	PROTO_E_TOO_BIG = 6,	    /* NAK: frame longer than the receiver's maximum */
	PROTO_E_TOO_SHORT = 7,	    /* NAK: frame shorter than header + CRC */
	PROTO_E_NO_SLOT = 8,	    /* no memory slot with that id */
	PROTO_E_RANGE = 9,	    /* address, page or index out of range */
	PROTO_E_UNSUPPORTED = 10,   /* mode or feature not available on this CPU */
	PROTO_E_STALE = 11,	    /* snapshot generation changed under the reader */
	PROTO_E_BUSY = 12,	    /* try again later */
	PROTO_E_FAULT = 13,	    /* guest memory not readable (MMIO, hole) */
	PROTO_E_STATE = 14,	    /* wrong state (e.g. logging not started) */
	PROTO_E_NO_VCPU = 15,	    /* no vCPU with that index */
	PROTO_E_INTERNAL = 16,	    /* hypervisor-internal failure */
	PROTO_E_NOMEM = 17,	    /* the hypervisor's memory pool is exhausted */
	PROTO_E_GUEST_STOPPED = 18, /* the guest was stopped for good after a fatal error */
	PROTO_E_NR,
};

const char *proto_err_name(int err);
const char *proto_cmd_name(int cmd);

/*
 * INFO's state byte. STOPPED: a guest-fatal event (triple fault, broken
 * state) stopped the guest for good; the hypervisor still answers, RESUME
 * gets GUEST_STOPPED. Hosts that read the byte as "paused" see 2 as true.
 */
#define PROTO_STATE_RUNNING 0
#define PROTO_STATE_PAUSED  1
#define PROTO_STATE_STOPPED 2

/* Capability flags (HELLO). */
#define PROTO_CAP_CREDIT     BIT_ULL(0) /* window + CREDIT flow control */
#define PROTO_CAP_MEM_LZ     BIT_ULL(1) /* MEM_READ token encoding with matches */
#define PROTO_CAP_BITMAP_ENC BIT_ULL(2) /* DIRTY_READ per-block encodings */
#define PROTO_CAP_DEDUP	     BIT_ULL(3) /* a repeated request gets the cached reply */
#define PROTO_CAP_LOG	     BIT_ULL(4)
#define PROTO_CAP_REGS	     BIT_ULL(5)
#define PROTO_CAP_PAUSE	     BIT_ULL(6)
#define PROTO_CAP_EPOCH	     BIT_ULL(7)	 /* DIRTY_EPOCH */
#define PROTO_CAP_LEASE	     BIT_ULL(8)	 /* PAUSE with a lease (needs a clock) */
#define PROTO_CAP_COW	     BIT_ULL(9)	 /* COW_ARM, COW_READ, COW_END */
#define PROTO_CAP_DEFLATE    BIT_ULL(10) /* MEM_READ/COW_READ DEFLATE encoding */
#define PROTO_CAPS_ALL	     GENMASK_ULL(10, 0)

/* Dirty-logging modes (DIRTY_START) and the INFO dirty_modes mask bits. */
enum proto_dirty_mode {
	PROTO_DIRTY_OFF = 0,
	PROTO_DIRTY_WP = 1,   /* write-protect and fault (any CPU) */
	PROTO_DIRTY_DBIT = 2, /* hardware dirty bits, harvested by a table walk */
	PROTO_DIRTY_PML = 3,  /* Intel page-modification logging */
};
#define PROTO_DIRTY_MODE_BIT(m) (1u << (m))

#define PROTO_START_ALL	 0x01 /* DIRTY_START/STOP flags: every slot */
#define PROTO_SNAP_CLEAR 0x01 /* DIRTY_SNAP flags: clear and re-protect */
#define PROTO_MEM_LZ	 0x01 /* MEM_READ flags: token encoding allowed */
#define PROTO_MEM_DFL	 0x02 /* MEM_READ flags: DEFLATE encoding allowed (PROTO_CAP_DEFLATE) */

enum proto_slot_type {
	PROTO_SLOT_RAM = 0,
	PROTO_SLOT_ROM = 1,
	PROTO_SLOT_MMIO = 2,
	PROTO_SLOT_RESERVED = 3,
};

/* vCPU register ids in a REGS reply. */
enum proto_reg {
	PROTO_REG_RAX,
	PROTO_REG_RCX,
	PROTO_REG_RDX,
	PROTO_REG_RBX,
	PROTO_REG_RSP,
	PROTO_REG_RBP,
	PROTO_REG_RSI,
	PROTO_REG_RDI,
	PROTO_REG_R8,
	PROTO_REG_R9,
	PROTO_REG_R10,
	PROTO_REG_R11,
	PROTO_REG_R12,
	PROTO_REG_R13,
	PROTO_REG_R14,
	PROTO_REG_R15,
	PROTO_REG_RIP,
	PROTO_REG_RFLAGS,
	PROTO_REG_CR0,
	PROTO_REG_CR2,
	PROTO_REG_CR3,
	PROTO_REG_CR4,
	PROTO_REG_EFER,
	PROTO_REG_CS,
	PROTO_REG_SS,
	PROTO_REG_DS,
	PROTO_REG_ES,
	PROTO_REG_FS,
	PROTO_REG_GS,
	PROTO_REG_FS_BASE,
	PROTO_REG_GS_BASE,
	/*
	 * Appended later: the rest of the state a crash-dump reader needs
	 * (QEMU's dump-guest-memory CPU note). A reply's count says how many a
	 * hypervisor sends; an older one stops at gs_base. *_attr is the
	 * descriptor's attribute bits 40..55 at bits 8..23 (as QEMU's
	 * SegmentCache flags: type, S, DPL, P, AVL, L, D/B, G), 0 for a segment
	 * that is unusable.
	 */
	PROTO_REG_CS_BASE,
	PROTO_REG_CS_LIMIT,
	PROTO_REG_CS_ATTR,
	PROTO_REG_SS_BASE,
	PROTO_REG_SS_LIMIT,
	PROTO_REG_SS_ATTR,
	PROTO_REG_DS_BASE,
	PROTO_REG_DS_LIMIT,
	PROTO_REG_DS_ATTR,
	PROTO_REG_ES_BASE,
	PROTO_REG_ES_LIMIT,
	PROTO_REG_ES_ATTR,
	PROTO_REG_FS_LIMIT,
	PROTO_REG_FS_ATTR,
	PROTO_REG_GS_LIMIT,
	PROTO_REG_GS_ATTR,
	PROTO_REG_LDTR,
	PROTO_REG_LDTR_BASE,
	PROTO_REG_LDTR_LIMIT,
	PROTO_REG_LDTR_ATTR,
	PROTO_REG_TR,
	PROTO_REG_TR_BASE,
	PROTO_REG_TR_LIMIT,
	PROTO_REG_TR_ATTR,
	PROTO_REG_GDT_BASE,
	PROTO_REG_GDT_LIMIT,
	PROTO_REG_IDT_BASE,
	PROTO_REG_IDT_LIMIT,
	PROTO_REG_KERNEL_GS_BASE,
	PROTO_REG_NR,
};
/* A REGS reply carries at most this many registers (hosts check it). */
#define PROTO_REGS_MAX 64
_Static_assert(PROTO_REG_NR <= PROTO_REGS_MAX, "REGS reply holds every register");
/* The registers before the segment state was appended (the oldest reply). */
#define PROTO_REG_NR_V1 (PROTO_REG_GS_BASE + 1)
const char *proto_reg_name(int reg);

/* --- CRC-32C --------------------------------------------------------------- */
u32 proto_crc32c(u32 crc, const void *buf, size_t len);

/* --- Cursor over a payload: varints (LEB128, <= 10 bytes), bytes, strings --- */
struct proto_buf {
	u8 *p;
	u32 len;  /* bytes written (writer) or total (reader) */
	u32 cap;  /* writer: capacity */
	u32 pos;  /* reader: next byte */
	bool err; /* sticky: overflow (writer) or truncated/malformed (reader) */
};

static inline void proto_wbuf_init(struct proto_buf *b, u8 *p, u32 cap)
{
	b->p = p;
	b->len = 0;
	b->cap = cap;
	b->pos = 0;
	b->err = false;
}

static inline void proto_rbuf_init(struct proto_buf *b, const u8 *p, u32 len)
{
	b->p = (u8 *)p;
	b->len = len;
	b->cap = len;
	b->pos = 0;
	b->err = false;
}

static inline u32 proto_wbuf_room(const struct proto_buf *b)
{
	return b->cap - b->len;
}
static inline u32 proto_rbuf_left(const struct proto_buf *b)
{
	return b->len - b->pos;
}

unsigned int proto_varint_len(u64 v);
void proto_put_u8(struct proto_buf *b, u8 v);
void proto_put_u64le(struct proto_buf *b, u64 v);
void proto_put_varint(struct proto_buf *b, u64 v);
void proto_put_bytes(struct proto_buf *b, const void *p, u32 len);
/* A string: varint length, then bytes (no terminator). NULL is "". */
void proto_put_str(struct proto_buf *b, const char *s);

u8 proto_get_u8(struct proto_buf *b);
u64 proto_get_u64le(struct proto_buf *b);
u64 proto_get_varint(struct proto_buf *b);
/* Returns a pointer into the buffer (NULL and err set when short). */
const u8 *proto_get_bytes(struct proto_buf *b, u32 len);
/* Copies a string into out (NUL-terminated, cut at cap-1); err when malformed. */
void proto_get_str(struct proto_buf *b, char *out, u32 cap);
/* True when every byte was consumed and nothing was malformed. */
static inline bool proto_rbuf_done(const struct proto_buf *b)
{
	return !b->err && b->pos == b->len;
}

/* --- Frames -------------------------------------------------------------- */
struct proto_hdr {
	u8 version;
	u8 flags;
	u16 id;
	u8 cmd;
};

/*
 * Encodes one frame, delimiters included, into out. Returns the wire length, or
 * 0 when it does not fit in cap or payload_len > PROTO_MAX_PAYLOAD.
 */
u32 proto_frame_encode(u8 *out, u32 cap, const struct proto_hdr *hdr, const u8 *payload,
		       u32 payload_len);

/*
 * Streaming decoder: one byte at a time, as bytes leave the UART. The decoded
 * frame (header, payload and CRC) lands in buf.
 */
enum proto_rx_state {
	PROTO_RX_IDLE,	  /* between frames (after a delimiter) */
	PROTO_RX_FRAME,	  /* inside a frame */
	PROTO_RX_DISCARD, /* inside a frame already judged bad: skip to next 0x00 */
};

struct proto_rx {
	u8 *buf;
	u32 cap;
	u32 len;	 /* decoded bytes so far */
	u32 raw;	 /* wire bytes of the current frame after its opening delimiter */
	u8 block_left;	 /* data bytes left in the current COBS block */
	bool zero_after; /* the current block ends with an implied zero */
	u8 state;	 /* enum proto_rx_state */
	u8 err;		 /* PROTO_E_* of the frame being discarded */
};

enum proto_rx_result {
	PROTO_RX_NONE, /* byte consumed, no frame ended */
	PROTO_RX_GOOD, /* a frame ended and passed its checks: proto_rx_frame() */
	PROTO_RX_BAD,  /* a frame ended and was dropped: rx->err says why */
};

void proto_rx_init(struct proto_rx *rx, u8 *buf, u32 cap);
enum proto_rx_result proto_rx_byte(struct proto_rx *rx, u8 byte);

/*
 * After PROTO_RX_GOOD: the header, and the payload as a pointer into rx->buf.
 * A frame of another version is GOOD (its CRC held): the caller checks
 * hdr->version. Valid until the next proto_rx_byte().
 */
void proto_rx_frame(const struct proto_rx *rx, struct proto_hdr *hdr, const u8 **payload,
		    u32 *payload_len);

/* Decodes one complete wire frame from a buffer (host-side convenience). */
enum proto_rx_result proto_decode_frame(const u8 *wire, u32 wire_len, u8 *buf, u32 cap,
					struct proto_hdr *hdr, const u8 **payload, u32 *payload_len,
					u8 *err);

/* --- Dirty bitmaps ----------------------------------------------------------
 * A DIRTY_READ reply carries consecutive blocks of PROTO_BITMAP_BLOCK pages
 * (the last one shorter at the end of the slot). Each block is one tag byte and
 * the cheapest of four encodings:
 *   EMPTY   no page dirty (tag only)
 *   RAW     ceil(n/8) bytes, bit i of byte j = page 8j+i of the block
 *   RUNS    varint count k, then k varint run lengths alternating clear, set,
 *           clear, ... starting with clear (may be 0); the rest are clear
 *   DELTAS  varint count k, then k varints: first set page, then gaps - 1
 */
#define PROTO_BITMAP_BLOCK 4096
enum proto_bm_enc {
	PROTO_BM_EMPTY = 0,
	PROTO_BM_RAW = 1,
	PROTO_BM_RUNS = 2,
	PROTO_BM_DELTAS = 3,
};
/* Worst case of one block: tag + raw. */
#define PROTO_BITMAP_BLOCK_MAX (1 + PROTO_BITMAP_BLOCK / 8)

static inline bool proto_test_bit(const u64 *bm, u64 i)
{
	return (bm[i / 64] >> (i % 64)) & 1;
}

static inline void proto_set_bit(u64 *bm, u64 i)
{
	bm[i / 64] |= 1ull << (i % 64);
}

/*
 * Encodes pages [first, first+n) of bitmap bm (n <= PROTO_BITMAP_BLOCK) as one
 * block into b. Returns false (b untouched) when it does not fit.
 */
bool proto_bitmap_encode_block(struct proto_buf *b, const u64 *bm, u64 first, u32 n);
/*
 * Decodes one block of n pages; sets the dirty pages in bm at bit first+i
 * (bm must have room; bits are ORed in). Returns the number of dirty pages, or
 * -1 when malformed.
 */
s64 proto_bitmap_decode_block(struct proto_buf *b, u64 *bm, u64 first, u32 n);

/* --- Memory reads ------------------------------------------------------------
 * PROTO_MEM_RAW: the bytes verbatim. PROTO_MEM_TOKENS: a token stream
 *   0x00..0x7f  literal: tag+1 bytes follow
 *   0x80..0xbf  match: (tag & 0x3f) + 4 bytes copied from varint distance back
 *               (1 <= distance <= bytes decoded so far in this reply)
 *   0xc0        zero run: varint n zero bytes (elides zero pages)
 *   0xc1        fill run: one byte b, varint n copies of b
 */
enum proto_mem_enc {
	PROTO_MEM_RAW = 0,
	PROTO_MEM_TOKENS = 1,
	PROTO_MEM_DEFLATE = 2,
};
#define PROTO_TOK_LIT_MAX   128
#define PROTO_TOK_MATCH	    0x80
#define PROTO_TOK_MATCH_MIN 4
#define PROTO_TOK_MATCH_MAX (0x3f + PROTO_TOK_MATCH_MIN)
#define PROTO_TOK_ZERO	    0xc0
#define PROTO_TOK_FILL	    0xc1

/* Scratch for the compressor's hash table (caller-provided, no allocation). */
#define PROTO_LZ_HASH_BITS 10
struct proto_lz {
	u16 head[1u << PROTO_LZ_HASH_BITS];
};

/*
 * Compresses src[0..len) into b as tokens, matches only within src. Stops early
 * when b runs short of room; returns the number of source bytes covered (the
 * tokens written decode to exactly src[0..covered)). len <= PAGE_SIZE.
 */
u32 proto_lz_compress(struct proto_lz *lz, struct proto_buf *b, const u8 *src, u32 len);
/* Emits a zero run token of n bytes; false when it does not fit. */
bool proto_put_zero_run(struct proto_buf *b, u64 n);
/*
 * Decodes a token stream, appending to out[*out_len..cap). Returns false when
 * malformed or when it would exceed cap.
 */
bool proto_tokens_decode(struct proto_buf *b, u8 *out, u64 *out_len, u64 cap);

/* --- DEFLATE replies ------------------------------------------------------------
 * PROTO_MEM_DEFLATE (a host that set PROTO_MEM_DFL): a stream of items
 *   0xc0        zero run: varint n zero bytes (as in TOKENS)
 *   0xc1        fill run: one byte b, varint n copies of b
 *   0xd0        varint n, varint clen, clen bytes, u32le adler: a raw DEFLATE
 *               stream (RFC 1951, ending with a final block) that inflates to
 *               exactly n bytes, whose Adler-32 (RFC 1950) is adler. Its preset
 *               dictionary is the last 32 KiB (or fewer) of the bytes this reply's
 *               earlier 0xd0 items inflated to, in order: matches reach across
 *               pages and items.
 * hv/proto/deflate.c encodes (LZ77; dynamic Huffman, fixed Huffman or stored
 * blocks); hosts inflate with zlib (tools/ptctl/inflate.c).
 */
#define PROTO_DFL_ITEM	    0xd0
#define PROTO_DFL_WIN	    32768u /* RFC 1951's window */
#define PROTO_DFL_IN_MAX    65536u /* DEFLATE input per reply (the coder's buffer) */
#define PROTO_DFL_HASH_BITS 14
#define PROTO_DFL_POS_BITS  17
/* Candidates looked at per position: bounds the work per page. */
#define PROTO_DFL_CHAIN 4
/* An item's bytes besides its DEFLATE data: tag, two varints, CRC. */
#define PROTO_DFL_ITEM_OVERHEAD 16

#define PROTO_DFL_NLIT	286 /* literal/length codes */
#define PROTO_DFL_NDIST 30  /* distance codes */
#define PROTO_DFL_NCL	19  /* code length codes */

/* One block's Huffman codes: lengths, and codes bit-reversed for the LSB-first coder. */
struct proto_dfl_codes {
	/* 288: the fixed code is built over 288 symbols (RFC 1951, 3.2.6), 286 and 287 unused. */
	u8 len_l[288], len_d[PROTO_DFL_NDIST];
	u16 code_l[288], code_d[PROTO_DFL_NDIST];
};

struct proto_deflate {
	u8 in[PROTO_DFL_IN_MAX + 8];	     /* this reply's DEFLATE input (+8: word compares) */
	u16 prev[PROTO_DFL_IN_MAX];	     /* distance - 1 to the previous same hash; ffff none */
	u32 head[1u << PROTO_DFL_HASH_BITS]; /* gen << POS_BITS | (position + 1) */
	/* The page's symbols: a literal (dist 0) or a match, and their codes. */
	u16 sym_lit[PAGE_SIZE], sym_dist[PAGE_SIZE], sym_lc[PAGE_SIZE], sym_dextra[PAGE_SIZE];
	u8 sym_dc[PAGE_SIZE], sym_ne[PAGE_SIZE], sym_extra_bits[PAGE_SIZE];
	u8 sym_extra[PAGE_SIZE];
	struct proto_dfl_codes fixed, dyn;
	/* Dynamic header: frequencies, run-length coded lengths, the code length code. */
	u16 freq_l[PROTO_DFL_NLIT], freq_d[PROTO_DFL_NDIST], freq_cl[PROTO_DFL_NCL];
	u8 rle_lens[PROTO_DFL_NLIT + PROTO_DFL_NDIST];
	u8 rle_sym[PROTO_DFL_NLIT + PROTO_DFL_NDIST], rle_extra[PROTO_DFL_NLIT + PROTO_DFL_NDIST];
	u8 len_cl[PROTO_DFL_NCL];
	u16 code_cl[PROTO_DFL_NCL];
	u32 hw_a[PROTO_DFL_NLIT];   /* huff_lengths' work: frequencies, then lengths */
	u16 hw_sym[PROTO_DFL_NLIT]; /* and the symbols in frequency order */
	u32 nrle, hlit, hdist, hclen;
	u8 out[PROTO_MAX_PAYLOAD]; /* the item being coded */
	u64 bitbuf;
	u32 bitcnt, out_len, nsym, in_len, item_start, gen, last_dist;
	bool item_open, full, err, fixed_ready;
};

/* Once, on memory of any content (hidden memory is not zeroed). */
void proto_dfl_init(struct proto_deflate *d);
/* A new reply: forgets the previous reply's input. */
void proto_dfl_begin(struct proto_deflate *d);
/*
 * Codes src[0..len) (len <= PAGE_SIZE) as the next bytes of the current item
 * (opening one), keeping the item's DEFLATE data within room bytes (<=
 * PROTO_MAX_PAYLOAD) with its end included. Returns the bytes covered: len,
 * or fewer when the rest would not fit (the reply is full then: later calls
 * return 0).
 */
u32 proto_dfl_page(struct proto_deflate *d, const u8 *src, u32 len, u32 room);
/* Bytes the open item will take in the reply once ended (0 without one). */
u32 proto_dfl_pending(const struct proto_deflate *d);
/* Ends the open item (if any) and writes it into b; false when it does not fit. */
bool proto_dfl_end_item(struct proto_deflate *d, struct proto_buf *b);

#endif /* PT_PROTO_H */
