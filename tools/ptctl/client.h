/* SPDX-License-Identifier: MIT */
/*
 * ptctl's side of the management protocol: connects (unix socket, TCP, serial
 * device), sends one request at a time under the hypervisor's flow-control
 * window, waits for the reply, retransmits after a timeout or a NAK. Shared by
 * ptctl, the end-to-end tests and the benchmark.
 */
#ifndef PT_PTCTL_CLIENT_H
#define PT_PTCTL_CLIENT_H

#include <hv/proto/proto.h>

/* ptctl's exit statuses, also the results of client calls. */
enum pt_status {
	PT_OK = 0,
	PT_EHV = 1, /* the hypervisor answered with an error */
	PT_EUSAGE = 2,
	PT_ETRANSPORT = 3, /* connection, timeout, protocol version, garbled replies */
};

struct pt_conn {
	int fd;
	int timeout_ms; /* silence after which a request is sent again */
	int retries;	/* sends of one request before giving up */
	int busy_wait_ms; /* how long a request answered BUSY is sent again */
	u16 next_id;
	u32 window;
	u32 max_reply;
	bool verbose;

	struct proto_rx rx;
	u8 rxbuf[PROTO_MAX_FRAME + 16];
	u8 rd[4096];
	u32 rd_pos, rd_len;
	u8 tail[256]; /* the last bytes received, for error messages */
	size_t tail_pos;

	/* Accounting (bench, --verbose). */
	u64 wire_tx, wire_rx, payload_rx, frames_rx;
	u64 retransmits, naks, credits, stray_frames, bad_frames, busy;
	bool bad_long; /* a long frame failed its checks since the last send */

	/*
	 * MEM_READ/COW_READ replies: PT_CODEC_AUTO takes DEFLATE when the
	 * hypervisor offers it (PROTO_CAP_DEFLATE), else tokens.
	 */
	enum { PT_CODEC_AUTO, PT_CODEC_TOKENS, PT_CODEC_RAW } codec;
	struct pt_inflate *inflate; /* DEFLATE decoder, made at the first such reply */

	/* Filled by pt_hello(). */
	u64 peer_caps;
	char peer_name[64];

	char err[256]; /* the last failure, for the user */
};

/* "unix:PATH", "tcp:HOST:PORT", or a device path ("/dev/ttyS1"), baud for devices. */
int pt_connect(struct pt_conn *c, const char *spec, int baud);
void pt_close(struct pt_conn *c);

/*
 * One request. On PT_OK, reply[0..*reply_len) holds the reply payload (room:
 * PROTO_MAX_PAYLOAD). On PT_EHV, *hv_err is the PROTO_E_* code and c->err a message.
 */
int pt_request(struct pt_conn *c, u8 cmd, const u8 *req, u32 req_len, u8 *reply, u32 *reply_len,
	       int *hv_err);

/* The version handshake; every ptctl session starts with it. */
int pt_hello(struct pt_conn *c);

/* For tests: write raw bytes to the line (garbage, hand-made frames). */
int pt_send_raw(struct pt_conn *c, const u8 *buf, u32 len);
/* For tests: reads frames for up to ms milliseconds; counts NAKs into c->naks. */
void pt_drain(struct pt_conn *c, int ms);

#endif /* PT_PTCTL_CLIENT_H */
