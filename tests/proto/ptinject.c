/* SPDX-License-Identifier: MIT */
/*
 * ptinject: abuses a management line, then proves that it still works.
 *
 *   ptinject -c CONN MODE   MODE: garbage | truncated | badcrc | oversize | unknown |
 *                                 version | flood | nowindow | reserved-flags
 *   ptinject --fake-peer VERSION --socket PATH
 *       a "hypervisor" that answers every frame with an error frame of protocol
 *       VERSION (to test ptctl's message for a peer of another version)
 *
 * Each mode prints "ok inject.MODE" or "not ok inject.MODE REASON" and exits
 * 0 or 1. After the abuse it checks the reaction it can be sure of (a NAK of
 * the right type, a typed error) and that HELLO + INFO then succeed.
 */
#include "../../tools/ptctl/client.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static struct pt_conn c;
static const char *mode;

static int result(bool ok, const char *why)
{
	if (ok)
		printf("ok inject.%s\n", mode);
	else
		printf("not ok inject.%s %s (%s)\n", mode, why, c.err);
	return ok ? 0 : 1;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/* Sends like a careful host without credits: 16 bytes, then a pause. */
static void send_paced(const u8 *w, u32 n)
{
	for (u32 i = 0; i < n; i += PROTO_WINDOW) {
		pt_send_raw(&c, w + i, n - i < PROTO_WINDOW ? n - i : PROTO_WINDOW);
		sleep_ms(30);
	}
}

static u32 rnd_state = 2463534242u;
static u8 rnd8(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return (u8)rnd_state;
}

/* Reads frames for up to ms; returns the first NAK's error code, or -1. */
static int wait_nak(int ms)
{
	u64 naks = c.naks;

	pt_drain(&c, ms);
	return c.naks > naks ? 0 : -1;
}

static bool works(void)
{
	u8 rep[PROTO_MAX_PAYLOAD];
	u32 len;

	return pt_hello(&c) == PT_OK &&
	       pt_request(&c, PROTO_CMD_INFO, NULL, 0, rep, &len, NULL) == PT_OK && len > 4;
}

static int fake_peer(int version, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	static u8 buf[PROTO_MAX_FRAME], wire[PROTO_MAX_WIRE];

	strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
	unlink(path);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 1)) {
		perror("ptinject: listen");
		return 1;
	}
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		struct proto_rx rx;
		u8 b;

		if (fd < 0)
			return 1;
		proto_rx_init(&rx, buf, sizeof(buf));
		while (read(fd, &b, 1) == 1) {
			struct proto_hdr h;
			const u8 *p;
			u32 pl, wl;
			u8 err[2];

			if (proto_rx_byte(&rx, b) != PROTO_RX_GOOD)
				continue;
			proto_rx_frame(&rx, &h, &p, &pl);
			err[0] = PROTO_E_VERSION;
			err[1] = h.cmd;
			h.version = (u8)version;
			h.flags = PROTO_F_REPLY | PROTO_F_ERROR;
			wl = proto_frame_encode(wire, sizeof(wire), &h, err, sizeof(err));
			if (write(fd, wire, wl) != (ssize_t)wl)
				break;
		}
		close(fd);
	}
}

int main(int argc, char **argv)
{
	static u8 w[PROTO_MAX_WIRE + 16], pay[PROTO_MAX_PAYLOAD];
	struct proto_hdr h = {PROTO_VERSION, 0, 0x7777, PROTO_CMD_INFO};
	u32 wl;

	if (argc == 5 && !strcmp(argv[1], "--fake-peer"))
		return fake_peer(atoi(argv[2]), argv[4]);
	if (argc != 4 || strcmp(argv[1], "-c")) {
		fprintf(stderr,
			"usage: ptinject -c CONN MODE | --fake-peer VERSION --socket PATH\n");
		return 2;
	}
	mode = argv[3];
	if (pt_connect(&c, argv[2], 115200))
		return result(false, "connect");
	c.timeout_ms = 1000;
	if (!works())
		return result(false, "line not working before the abuse");
	memset(pay, 0x5a, sizeof(pay));

	if (!strcmp(mode, "garbage")) {
		u8 g[64];

		for (size_t i = 0; i < sizeof(g); i++)
			g[i] = rnd8();
		send_paced(g, sizeof(g));
		return result(works(), "no answer after garbage");
	}
	if (!strcmp(mode, "truncated")) {
		wl = proto_frame_encode(w, sizeof(w), &h, pay, 8);
		send_paced(w, wl - 6); /* no end, the CRC cut */
		sleep_ms(50);
		/* The next frame's opening delimiter ends the stub: a NAK. */
		return result(works() && c.naks >= 1,
			      "no NAK or no answer after a truncated frame");
	}
	if (!strcmp(mode, "badcrc")) {
		u64 naks = c.naks;

		wl = proto_frame_encode(w, sizeof(w), &h, pay, 8);
		w[wl - 8] = w[wl - 8] == 0x5a ? 0x5b : 0x5a;
		send_paced(w, wl);
		wait_nak(500);
		return result(c.naks > naks && works(), "no NAK or no answer after a bad CRC");
	}
	if (!strcmp(mode, "oversize")) {
		u64 naks = c.naks;

		/* Past the hypervisor's 256-byte request limit, short enough for slow lines. */
		wl = proto_frame_encode(w, sizeof(w), &h, pay, PROTO_MAX_REQ_PAYLOAD + 150);
		send_paced(w, wl);
		wait_nak(500);
		return result(c.naks > naks && works(),
			      "no NAK or no answer after an oversize frame");
	}
	if (!strcmp(mode, "unknown")) {
		u8 rep[PROTO_MAX_PAYLOAD];
		u32 len;
		int e = 0, r = pt_request(&c, 0x5e, NULL, 0, rep, &len, &e);

		return result(r == PT_EHV && e == PROTO_E_UNKNOWN_CMD && works(),
			      "no typed error for an unknown command");
	}
	if (!strcmp(mode, "reserved-flags")) {
		/* A frame that claims to be a reply: never answered, never harmful. */
		h.flags = PROTO_F_REPLY;
		wl = proto_frame_encode(w, sizeof(w), &h, NULL, 0);
		send_paced(w, wl);
		return result(works(), "no answer after a reply-flagged request");
	}
	if (!strcmp(mode, "version")) {
		struct proto_hdr rh;
		const u8 *p;
		u32 pl;
		u8 buf[PROTO_MAX_FRAME], err = 0;
		int got = 0;

		h.version = PROTO_VERSION + 1;
		wl = proto_frame_encode(w, sizeof(w), &h, NULL, 0);
		send_paced(w, wl);
		/* Read raw frames: the client would take this one for itself. */
		for (int i = 0; i < 20 && !got; i++) {
			u8 rb[256];
			struct pollfd pfd = {.fd = c.fd, .events = POLLIN};
			ssize_t n;

			if (poll(&pfd, 1, 100) <= 0)
				continue;
			n = read(c.fd, rb, sizeof(rb));
			for (ssize_t k = 0; k < n; k++) {
				static struct proto_rx rx;
				static bool init;

				if (!init) {
					proto_rx_init(&rx, buf, sizeof(buf));
					init = true;
				}
				if (proto_rx_byte(&rx, rb[k]) == PROTO_RX_GOOD) {
					proto_rx_frame(&rx, &rh, &p, &pl);
					if (rh.id == 0x7777 && (rh.flags & PROTO_F_ERROR) && pl) {
						err = p[0];
						got = 1;
					}
				}
			}
		}
		return result(got && err == PROTO_E_VERSION && works(),
			      "no E_VERSION for a frame of another version");
	}
	if (!strcmp(mode, "flood")) {
		static u8 g[1 << 16];
		/* PTINJECT_FLOOD: fewer bytes where the line is slow (QEMU applies back-pressure).
		 */
		const char *env = getenv("PTINJECT_FLOOD");
		size_t n = env ? (size_t)atol(env) : sizeof(g);

		if (n > sizeof(g))
			n = sizeof(g);
		for (size_t i = 0; i < n; i++)
			g[i] = rnd8();
		pt_send_raw(&c, g, (u32)n);
		sleep_ms(200);
		pt_drain(&c, 200);
		return result(works(), "no answer after a flood");
	}
	if (!strcmp(mode, "nowindow")) {
		/* A careless host: a long request in one go, ignoring the window. */
		u8 q[64];
		struct proto_buf b;

		proto_wbuf_init(&b, q, sizeof(q));
		for (int i = 0; i < 6; i++)
			proto_put_varint(&b, ~0ull);
		h.cmd = PROTO_CMD_MEM_READ;
		wl = proto_frame_encode(w, sizeof(w), &h, q, b.len);
		pt_send_raw(&c, w, wl);
		pt_drain(&c, 300);
		return result(works(), "no answer after a request that ignored the window");
	}
	fprintf(stderr, "ptinject: unknown mode %s\n", mode);
	return 2;
}
