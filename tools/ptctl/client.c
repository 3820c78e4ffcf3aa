/* SPDX-License-Identifier: MIT */
#include "client.h"
#include "inflate.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static int fail(struct pt_conn *c, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return status;
}

static u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * 1000 + (u64)ts.tv_nsec / 1000000;
}

static speed_t baud_to_speed(int baud)
{
	switch (baud) {
	case 9600:
		return B9600;
	case 19200:
		return B19200;
	case 38400:
		return B38400;
	case 57600:
		return B57600;
	case 115200:
		return B115200;
	case 230400:
		return B230400;
	case 460800:
		return B460800;
	case 921600:
		return B921600;
	}
	return 0;
}

int pt_connect(struct pt_conn *c, const char *spec, int baud)
{
	int fd = -1;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout_ms = 2000;
	/* A long dirty-log command (start, stop, a harvest: docs/protocol.md
	 * "Long commands") of another host answers BUSY until it is done. */
	c->busy_wait_ms = 60000;
	c->retries = 4;
	c->window = PROTO_WINDOW;
	c->max_reply = PROTO_MAX_PAYLOAD;
	/* Ids start at random: a hypervisor keeps the last reply for repeats. */
	c->next_id = (u16)(getpid() ^ now_ms() ^ (now_ms() >> 16));
	proto_rx_init(&c->rx, c->rxbuf, sizeof(c->rxbuf));

	if (!strncmp(spec, "unix:", 5)) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		if (strlen(spec + 5) >= sizeof(sa.sun_path))
			return fail(c, PT_EUSAGE, "socket path too long: %s", spec + 5);
		strcpy(sa.sun_path, spec + 5);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int e = errno;

			if (fd >= 0)
				close(fd);
			return fail(c, PT_ETRANSPORT, "cannot connect to %s: %s", spec + 5,
				    strerror(e));
		}
	} else if (!strncmp(spec, "tcp:", 4)) {
		char host[256];
		const char *colon = strrchr(spec + 4, ':');
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res, *ai;
		int r;

		if (!colon || colon == spec + 4 || (size_t)(colon - spec - 4) >= sizeof(host))
			return fail(c, PT_EUSAGE, "expected tcp:HOST:PORT, got %s", spec);
		memcpy(host, spec + 4, colon - spec - 4);
		host[colon - spec - 4] = 0;
		r = getaddrinfo(host, colon + 1, &hints, &res);
		if (r)
			return fail(c, PT_ETRANSPORT, "cannot resolve %s: %s", host,
				    gai_strerror(r));
		for (ai = res; ai; ai = ai->ai_next) {
			fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
			if (fd >= 0 && !connect(fd, ai->ai_addr, ai->ai_addrlen))
				break;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		freeaddrinfo(res);
		if (fd < 0)
			return fail(c, PT_ETRANSPORT, "cannot connect to %s: %s", spec + 4,
				    strerror(errno));
	} else {
		struct termios t;
		speed_t sp = baud_to_speed(baud);

		if (!sp)
			return fail(c, PT_EUSAGE, "unsupported baud rate %d", baud);
		fd = open(spec, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return fail(c, PT_ETRANSPORT, "cannot open %s: %s", spec, strerror(errno));
		if (tcgetattr(fd, &t) < 0) {
			close(fd);
			return fail(c, PT_ETRANSPORT, "%s is not a serial device: %s", spec,
				    strerror(errno));
		}
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		t.c_cflag &= ~(CRTSCTS | CSTOPB | PARENB);
		t.c_iflag &= ~(IXON | IXOFF | IXANY);
		t.c_cc[VMIN] = 0;
		t.c_cc[VTIME] = 0;
		cfsetispeed(&t, sp);
		cfsetospeed(&t, sp);
		if (tcsetattr(fd, TCSANOW, &t) < 0) {
			close(fd);
			return fail(c, PT_ETRANSPORT, "cannot configure %s: %s", spec,
				    strerror(errno));
		}
		tcflush(fd, TCIOFLUSH);
	}
	c->fd = fd;
	return PT_OK;
}

void pt_close(struct pt_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	pt_inflate_free(c->inflate);
	c->inflate = NULL;
}

int pt_send_raw(struct pt_conn *c, const u8 *buf, u32 len)
{
	while (len) {
		ssize_t n = write(c->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return fail(c, PT_ETRANSPORT, "write: %s",
				    n < 0 ? strerror(errno) : "closed");
		buf += n;
		len -= (u32)n;
		c->wire_tx += (u64)n;
	}
	return PT_OK;
}

/*
 * Waits up to ms for one good frame. Returns 1 with the frame, 2 after a long
 * frame that failed its checks, 0 on timeout, -1 on a transport error (c->err set).
 */
static int read_frame(struct pt_conn *c, int ms, struct proto_hdr *h, const u8 **payload, u32 *len)
{
	u64 deadline = now_ms() + (u64)ms;

	for (;;) {
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		u64 t;
		ssize_t n;
		int r;

		/* Bytes past a frame's end wait in c->rd for the next call. */
		while (c->rd_pos < c->rd_len) {
			switch (proto_rx_byte(&c->rx, c->rd[c->rd_pos++])) {
			case PROTO_RX_NONE:
				break;
			case PROTO_RX_BAD:
				c->bad_frames++;
				/* Longer than any CREDIT or NAK: a damaged reply, most likely. */
				if (c->rx.raw > 32) {
					c->bad_long = true;
					return 2;
				}
				break;
			case PROTO_RX_GOOD:
				c->frames_rx++;
				proto_rx_frame(&c->rx, h, payload, len);
				return 1;
			}
		}
		t = now_ms();
		if (t >= deadline)
			return 0;
		r = poll(&pfd, 1, (int)(deadline - t));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail(c, PT_ETRANSPORT, "poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			return 0;
		n = read(c->fd, c->rd, sizeof(c->rd));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			fail(c, PT_ETRANSPORT, "connection closed by the peer");
			return -1;
		}
		c->wire_rx += (u64)n;
		/* Plain text on the line (the hypervisor's fatal report) is kept for errors. */
		for (ssize_t k = 0; k < n; k++)
			c->tail[c->tail_pos++ % sizeof(c->tail)] = c->rd[k];
		c->rd_pos = 0;
		c->rd_len = (u32)n;
		/* Activity: a reply is arriving, keep waiting. */
		deadline = now_ms() + (u64)ms;
	}
}

void pt_drain(struct pt_conn *c, int ms)
{
	struct proto_hdr h;
	const u8 *p;
	u32 len;

	int r;

	while ((r = read_frame(c, ms, &h, &p, &len)) > 0)
		if (r == 1 && h.cmd == PROTO_CMD_NAK)
			c->naks++;
}

static int version_error(struct pt_conn *c, const struct proto_hdr *h, const u8 *p, u32 len)
{
	struct proto_buf b;
	u64 lo, hi;

	if (h->version != PROTO_VERSION)
		return fail(c, PT_ETRANSPORT,
			    "the hypervisor speaks management protocol version %u; this ptctl "
			    "speaks version %u: use a ptctl built from the same PageTrail release",
			    h->version, PROTO_VERSION);
	proto_rbuf_init(&b, p + 2, len - 2);
	lo = proto_get_varint(&b);
	hi = proto_get_varint(&b);
	return fail(c, PT_ETRANSPORT,
		    "the hypervisor speaks management protocol versions %llu..%llu; this ptctl "
		    "speaks version %u: use a ptctl built from the same PageTrail release",
		    (unsigned long long)lo, (unsigned long long)hi, PROTO_VERSION);
}

int pt_request(struct pt_conn *c, u8 cmd, const u8 *req, u32 req_len, u8 *reply, u32 *reply_len,
	       int *hv_err)
{
	u8 wire[PROTO_MAX_REQ_WIRE];
	struct proto_hdr h = {PROTO_VERSION, 0, 0, cmd};
	u32 wire_len;

	if (req_len > PROTO_MAX_REQ_PAYLOAD)
		return fail(c, PT_EUSAGE, "request too long");
	if (++c->next_id == 0)
		c->next_id = 1;
	h.id = c->next_id;
	wire_len = proto_frame_encode(wire, sizeof(wire), &h, req, req_len);
	if (!wire_len)
		return fail(c, PT_EUSAGE, "request does not encode");

	int busy_waited = 0, busy_delay = 20;
	bool busy_again = false;

	for (int attempt = 0; attempt < c->retries; attempt++) {
		u32 sent = 0, acked = 0;
		bool resend = false;

		c->bad_long = false;
		if (attempt && !busy_again)
			c->retransmits++;
		busy_again = false;
		while (!resend) {
			struct proto_hdr rh;
			const u8 *p;
			u32 len;
			int r;

			/*
			 * The window: bytes sent but not yet read by the hypervisor
			 * (a CREDIT counts what it has read of this frame after the
			 * opening delimiter) never exceed its receive FIFO.
			 */
			if (sent < wire_len && acked + c->window > sent) {
				u32 n = acked + c->window - sent;

				if (n > wire_len - sent)
					n = wire_len - sent;
				if (pt_send_raw(c, wire + sent, n))
					return PT_ETRANSPORT;
				sent += n;
				continue;
			}
			/*
			 * A damaged reply: the request was read whole (replies come
			 * only then), so sending it again cannot overrun the FIFO;
			 * the hypervisor answers a repeat from its reply cache.
			 */
			if (sent == wire_len && c->bad_long) {
				c->bad_long = false;
				resend = true;
				break;
			}
			r = read_frame(c, c->timeout_ms, &rh, &p, &len);
			if (r < 0)
				return PT_ETRANSPORT;
			if (r == 2)
				continue;
			if (r == 0) {
				if (c->verbose)
					fprintf(stderr,
						"ptctl: no answer to %s (id %u), sending again\n",
						proto_cmd_name(cmd), h.id);
				resend = true;
				break;
			}
			if (rh.version != PROTO_VERSION)
				return version_error(c, &rh, p, len);
			if (!(rh.flags & PROTO_F_REPLY)) {
				c->stray_frames++;
				continue;
			}
			if (rh.cmd == PROTO_CMD_CREDIT) {
				struct proto_buf b;
				u64 k;

				proto_rbuf_init(&b, p, len);
				k = proto_get_varint(&b);
				if (rh.id == h.id && !b.err && k + 1 <= sent && k + 1 > acked) {
					acked = (u32)k + 1;
					c->credits++;
				}
				continue;
			}
			if (rh.cmd == PROTO_CMD_NAK) {
				struct proto_buf b;
				u64 raw, id_guess;

				c->naks++;
				proto_rbuf_init(&b, p, len);
				proto_get_u8(&b);
				raw = proto_get_varint(&b);
				id_guess = proto_get_varint(&b);
				/* Ours, damaged on the way: send it again now. */
				if (sent == wire_len && !b.err && raw == wire_len - 2 &&
				    id_guess == (u64)h.id + 1)
					resend = true;
				continue;
			}
			if (rh.id != h.id || rh.cmd != cmd) {
				c->stray_frames++; /* a late reply to an earlier request */
				continue;
			}
			if (rh.flags & PROTO_F_ERROR) {
				int e = len ? p[0] : PROTO_E_INTERNAL;

				if (e == PROTO_E_VERSION)
					return version_error(c, &rh, p, len);
				/*
				 * BUSY: another command holds the hypervisor (its
				 * BUSY reply is not cached, so the same request, same
				 * id, runs when sent again). Wait, doubling up to
				 * half a second, and send it again; not a lost frame.
				 */
				if (e == PROTO_E_BUSY && busy_waited < c->busy_wait_ms) {
					if (c->verbose)
						fprintf(stderr, "ptctl: %s: busy, again in %d ms\n",
							proto_cmd_name(cmd), busy_delay);
					usleep((useconds_t)busy_delay * 1000);
					busy_waited += busy_delay;
					busy_delay = busy_delay < 250 ? busy_delay * 2 : 500;
					c->busy++;
					attempt--;
					busy_again = true;
					resend = true;
					break;
				}
				if (hv_err)
					*hv_err = e;
				return fail(c, PT_EHV, "%s: %s", proto_cmd_name(cmd),
					    proto_err_name(e));
			}
			if (len > PROTO_MAX_PAYLOAD)
				return fail(c, PT_ETRANSPORT, "reply too long");
			memcpy(reply, p, len);
			*reply_len = len;
			c->payload_rx += len;
			return PT_OK;
		}
	}
	{
		char text[sizeof(c->tail) + 1], *line;
		size_t n = c->tail_pos < sizeof(c->tail) ? c->tail_pos : sizeof(c->tail);

		for (size_t k = 0; k < n; k++) {
			u8 ch = c->tail[(c->tail_pos - n + k) % sizeof(c->tail)];

			text[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : '\n';
		}
		text[n] = 0;
		line = strstr(text, "pagetrail: ");
		if (line) {
			char *eol = strchr(line, '\n');

			if (eol)
				*eol = 0;
			return fail(c, PT_ETRANSPORT,
				    "no reply to %s after %d attempts; the line said \"%s\"",
				    proto_cmd_name(cmd), c->retries, line);
		}
	}
	return fail(c, PT_ETRANSPORT, "no reply to %s after %d attempts (%d ms each)",
		    proto_cmd_name(cmd), c->retries, c->timeout_ms);
}

int pt_hello(struct pt_conn *c)
{
	u8 req[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	u64 lo, hi, max_req, max_reply, window;
	int r;

	proto_wbuf_init(&b, req, sizeof(req));
	proto_put_varint(&b, PROTO_CAPS_ALL);
	proto_put_varint(&b, c->max_reply);
	r = pt_request(c, PROTO_CMD_HELLO, req, b.len, rep, &len, NULL);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	lo = proto_get_varint(&b);
	hi = proto_get_varint(&b);
	c->peer_caps = proto_get_varint(&b);
	max_req = proto_get_varint(&b);
	max_reply = proto_get_varint(&b);
	window = proto_get_varint(&b);
	proto_get_str(&b, c->peer_name, sizeof(c->peer_name));
	if (b.err)
		return fail(c, PT_ETRANSPORT, "malformed hello reply");
	if (lo > PROTO_VERSION || hi < PROTO_VERSION)
		return fail(c, PT_ETRANSPORT,
			    "the hypervisor speaks management protocol versions %llu..%llu; this "
			    "ptctl speaks version %u",
			    (unsigned long long)lo, (unsigned long long)hi, PROTO_VERSION);
	if (!(c->peer_caps & PROTO_CAP_CREDIT) || window < 4 || window > PROTO_WINDOW)
		window = PROTO_WINDOW;
	c->window = (u32)window;
	(void)max_req;
	if (max_reply < c->max_reply)
		c->max_reply = (u32)max_reply;
	return PT_OK;
}
