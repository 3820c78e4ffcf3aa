/* SPDX-License-Identifier: MIT */
/*
 * The management channel, hypervisor side: a vendor-neutral dispatcher that
 * speaks the protocol of docs/protocol.md over a byte transport (the 16550).
 * It only speaks the protocol: dirty-log commands are operations of the
 * dirty-log session (hv/dirty_session.h), the rest calls a backend the
 * hypervisor fills in.
 *
 * Wiring (hv/ core):
 *   1. Fill a struct mgmt_transport (rx one byte, tx room, tx bytes) over the
 *      management UART, and a struct mgmt_backend over the VM, its memslots
 *      and the vCPUs; set up the struct dirty_session.
 *   2. Give mgmt_init() MGMT_MEM_SIZE bytes of memory that stays mapped (page
 *      allocator: the image's .bss is folded into .data by gnu-efi's script).
 *   3. Call mgmt_poll() on EVERY VM exit, before resuming the guest, and in
 *      every loop where the hypervisor waits (paused guest, halted vCPU). It
 *      does bounded work: drains the receive FIFO (<= 16 bytes), runs at most
 *      one command, or one step of a long one (ds_step of step_pages pages),
 *      pushes bytes while tx_room() grants them, at most MGMT_TX_BURST (one
 *      reply and a CREDIT). While mgmt_wants_poll() is true (a
 *      reply is still being sent, a long command runs), arrange an exit soon
 *      (a preemption timer / a short VMCB timer intercept) so the channel
 *      keeps its rate and the command makes progress.
 *   4. While the guest is paused (backend pause()), keep calling mgmt_poll()
 *      in a loop until resume(); the guest must not run in between.
 *
 * Freestanding: no libc, no allocation, no global state; mgmt_poll() is not
 * reentrant: call it from one CPU at a time (the caller's lock, if any).
 */
#ifndef PT_HV_MGMT_H
#define PT_HV_MGMT_H

#include <pt/types.h>
#include <hv/cow_session.h>
#include <hv/dirty_session.h>
#include <hv/proto/proto.h>

/* --- Transport ------------------------------------------------------------ */
#define MGMT_RX_NONE	   (-1) /* no byte waiting */
#define MGMT_RX_LINE_ERROR (-2) /* overrun, parity or framing error: a byte was lost */

struct mgmt_transport {
	/* Next received byte (0..255), MGMT_RX_NONE or MGMT_RX_LINE_ERROR. Never waits. */
	int (*rx_byte)(void *ctx);
	/* How many bytes tx_bytes() can take now without waiting (16550: 16 if THRE). */
	u32 (*tx_room)(void *ctx);
	/* Writes len <= tx_room() bytes. */
	void (*tx_bytes)(void *ctx, const u8 *buf, u32 len);
};

/* --- Backend ----------------------------------------------------------------
 * Every callback returns 0 or a negative -PROTO_E_* code (which goes back to
 * ptctl as a typed error), except where it says otherwise. All are called from
 * mgmt_poll(), so from the exit path, with the guest not running on this CPU.
 */
struct mgmt_info {
	const char *backend; /* "svm" or "vmx" */
	const char *version; /* hypervisor version string */
	u32 vcpus;
	u64 mem_bytes;	 /* guest RAM */
	bool paused;
	bool stopped; /* the guest was stopped for good after a fatal error (paused too) */
};

struct mgmt_regs {
	u64 r[PROTO_REG_NR]; /* indexed by enum proto_reg */
	/*
	 * How many are known (r[0..nr)): 0 means all; PROTO_REG_NR_V1 when
	 * the segment state is not (a vCPU running on another CPU).
	 */
	u32 nr;
};

struct mgmt_backend {
	int (*info)(void *ctx, struct mgmt_info *out);

	int (*pause)(void *ctx);
	int (*resume)(void *ctx);
	/*
	 * Copies guest-physical memory gpa..gpa+len-1 (within one page) into buf.
	 * -PROTO_E_FAULT when it is not RAM (MMIO, hole).
	 */
	int (*mem_read)(void *ctx, gpa_t gpa, void *buf, u32 len);
	int (*regs)(void *ctx, u32 vcpu, struct mgmt_regs *out);
	/*
	 * Counter number index: name (static string, "exit.cpuid",
	 * "fault.npf", "dirty.pml_full", ...) and value; -PROTO_E_RANGE past the last.
	 */
	int (*stat)(void *ctx, u32 index, const char **name, u64 *value);
	/*
	 * Log ring: copies up to len bytes from absolute offset off into buf and
	 * returns the number copied; *first / *end receive the oldest offset still
	 * held and the offset of the next byte to be written.
	 */
	u32 (*log_read)(void *ctx, u64 off, u8 *buf, u32 len, u64 *first, u64 *end);
	/* Monotonic nanoseconds (harvest timing, pause leases); may be NULL. */
	u64 (*now_ns)(void *ctx);
	/* A line for the hypervisor's log (a lease that ended); may be NULL. */
	void (*note)(void *ctx, const char *line);
};

/* --- The dispatcher ----------------------------------------------------------- */
/*
 * Pages of work per poll for long operations: 2^18 pages (1 GiB of 4 KiB
 * pages) is about 2 ms of mmu work at the ~2 s/TiB of a whole-slot pass, so
 * an exit is held up by at most that much. mgmt_set_step_pages() changes it
 * (the hypervisor's --mgmt-step-pages switch; tests force many steps).
 */
#define MGMT_STEP_PAGES_DEFAULT (1ull << 18)
#define MGMT_STEP_PAGES_MIN	64 /* the mmu's range alignment */
/*
 * While a long command runs, a CREDIT for its whole frame goes out every this
 * many steps: a host treats any frame as activity and keeps waiting instead
 * of timing out and sending the request again (steps come at least every few
 * ms: exits are forced while a command runs, mgmt_wants_poll()).
 */
#define MGMT_PROGRESS_STEPS 16
/*
 * Memory mgmt_init() wants: receive frame, reply payload, transmit frame, a
 * page, the copy-on-write stream's page, LZ table, DEFLATE coder (~280 KiB).
 */
#define MGMT_MEM_SIZE                                                                              \
	(PROTO_MAX_REQ_FRAME + PROTO_MAX_PAYLOAD + PROTO_MAX_WIRE + 2 * PAGE_SIZE +                \
	 sizeof(struct proto_lz) + sizeof(struct proto_deflate) + 64)

/* Protocol counters, reported first by STATS ("proto.*"). */
struct mgmt_counters {
	u64 rx_bytes, tx_bytes;
	u64 frames_ok; /* requests executed */
	u64 bad_crc, framing, too_big, too_short;
	u64 bad_version, unknown_cmd, bad_request;
	u64 line_errors;  /* MGMT_RX_LINE_ERROR from the transport */
	u64 dup_requests; /* answered from the reply cache */
	u64 naks_sent, naks_dropped;
	u64 credits_sent;
	u64 harvests, harvest_ns_total, harvest_ns_max, harvest_ns_last;
	u64 busy;		/* BUSY replies: a dirty-log request while a long command ran */
	u64 steps;		/* long-command steps run (one per poll at most) */
	u64 long_cmds;		/* commands that needed more than one step */
	u64 leases_expired;	/* pauses the host's silence ended (PAUSE lease) */
	u64 cow_leases_expired; /* copy-on-write sessions the host's silence ended */
};

/* The long command in flight (docs/protocol.md "Long commands"): a dirty-session operation. */
struct mgmt_op {
	bool active;	      /* begun, reply not yet handed to the transmitter */
	bool finished;	      /* reply built in reply[]; waits for the transmitter */
	bool credit_due;      /* a progress CREDIT waits for the aux buffer */
	struct proto_hdr hdr; /* the request: its reply goes out under this id */
	u32 crc;	      /* with hdr.id: a repeat of the request is recognised */
	u32 raw;	      /* its wire bytes between the delimiters (progress CREDITs) */
	u32 steps;	      /* steps run so far */
	u64 t0;		      /* now_ns() at the start */
	u8 reply[32];	      /* the reply payload, or the error reply when err */
	u32 reply_len;
	int err;
};

struct mgmt {
	const struct mgmt_backend *be;
	void *be_ctx;
	struct dirty_session *ds; /* runs every dirty-log command */
	const struct mgmt_transport *tp;
	void *tp_ctx;

	struct proto_rx rx;
	bool rx_held; /* a complete request waits for the transmitter */

	u8 *payload; /* reply payload being built */
	u8 *tx;	     /* the last reply, wire form, kept for duplicates */
	u32 tx_len, tx_pos;
	u8 aux[32]; /* CREDIT / NAK frame, sent between replies */
	u32 aux_len, aux_pos;
	bool sending_aux;
	u8 aux_cmd;	  /* PROTO_CMD_CREDIT or PROTO_CMD_NAK */
	bool nak_pending; /* a NAK waits for the aux buffer */
	u8 nak[16];	  /* its payload */
	u32 nak_len;

	u8 *page; /* one guest page for MEM_READ */
	/*
	 * The copy-on-write snapshot (COW_ARM/READ/END), NULL without one
	 * (mgmt_set_cow). A page the stream took from the session is gone
	 * there, so the last one is held here until the next is taken: a
	 * page that did not fit one reply goes on in the next.
	 */
	struct cow_session *cow;
	u8 *cow_page;
	gpa_t cow_page_gpa;
	bool cow_page_held;
	/* COW_ARM's lease: the session ends once the host is silent this long. */
	bool cow_lease_on;
	u64 cow_lease_ns, cow_lease_last_ns;
	struct proto_lz *lz;
	struct proto_deflate *dfl; /* DEFLATE replies' coder (PROTO_MEM_DFL) */

	u16 last_id; /* the request answered by tx[] */
	u32 last_crc;
	bool have_last;
	u32 credit_raw;	      /* CREDIT already sent for this many bytes of the frame */
	u32 host_max_payload; /* reply payload limit the host asked for in HELLO */

	u64 step_pages; /* pages of work per poll for a long command */
	/*
	 * The dirty log's epoch (DIRTY_EPOCH): counts the commands that may
	 * take bits out of the log and its snapshots for good (DIRTY_DONE,
	 * DIRTY_CLEAR) or start it again (DIRTY_START, DIRTY_STOP), of any slot.
	 * A host that saw epoch E after its own harvest and sees E again later
	 * knows that every page written since is still in the log or the
	 * snapshot. boot_id tells this hypervisor's run from an earlier one.
	 */
	u64 log_epoch;
	u64 boot_id;
	/*
	 * A PAUSE with a lease (docs/protocol.md, PAUSE): the pause ends on its
	 * own, the guest resumed, once no good frame came from the host for
	 * lease_ns. lease_last_ns: now_ns() of the last one.
	 */
	bool lease_on;
	u64 lease_ns, lease_last_ns;
	struct mgmt_op op;

	struct mgmt_counters c;
};

/* Returns 0, or -PROTO_E_INTERNAL when mem is too small or a callback is missing. */
int mgmt_init(struct mgmt *m, void *mem, size_t mem_size, const struct mgmt_backend *be,
	      void *be_ctx, struct dirty_session *ds, const struct mgmt_transport *tp, void *tp_ctx);

/* Pages of work per poll for long commands (rounded up to a multiple of 64). */
void mgmt_set_step_pages(struct mgmt *m, u64 pages);

/* A value that differs between two runs of the hypervisor (DIRTY_EPOCH). */
/* The copy-on-write session COW_* commands run (none: UNSUPPORTED, no COW cap). */
void mgmt_set_cow(struct mgmt *m, struct cow_session *cs);

void mgmt_set_boot_id(struct mgmt *m, u64 id);

/* Bounded work; call on every exit and in every wait loop (see above). */
void mgmt_poll(struct mgmt *m);

/* True while bytes remain to be sent, a frame is half received or a long
 * command runs. */
bool mgmt_wants_poll(const struct mgmt *m);

/*
 * Runs one decoded request and leaves its wire-form reply in m->tx (for tests
 * and fuzzers; mgmt_poll() calls it). frame/len: the decoded frame, CRC included.
 * A long command may only have begun: its reply comes from later mgmt_poll()s.
 */
void mgmt_handle_frame(struct mgmt *m, const u8 *frame, u32 len);

#endif /* PT_HV_MGMT_H */
