/* SPDX-License-Identifier: MIT */
/*
 * `make bench` step: bytes on the management line. Runs the hypervisor's
 * management port as it runs (hv/control.c, hv/mgmt.c, the dirty-log session,
 * the exit path, the real mmu/) on the simulated machine (tests/hv/host_port.h:
 * the guest's writes go through the hardware model), with a host that follows ptctl's rules
 * (16-byte window, CREDITs, one request at a time), and counts every byte
 * on the wire both ways: framing, requests, credits and replies.
 *
 *   proto.dirty.<set>.wire_per_dirty_page   a whole snapshot-and-clear of a
 *       4 GiB slot (SNAP + DIRTY_READs + DONE), per dirty page, next to the
 *       raw bitmap (KVM's layout: one bit per page) per dirty page
 *   proto.mem.<kind>.efficiency   guest bytes delivered per wire byte (MEM_READ)
 *   proto.mem.random.rate_115200  what that makes of a 115200-baud line
 *
 * Prints JSON lines (tools/bench.sh).
 */
#include "tests/hv/host_port.h"

#include "hv/dirty_session.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double poll_s; /* time in the boot CPU's turns (an exit and its poll of the port) */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct {
	u64 wire_in, wire_out;
} u;

static struct proto_rx host_rx;
static u8 host_buf[PROTO_MAX_FRAME + 8];
static u8 rep[PROTO_MAX_PAYLOAD];
static u32 rep_len;
static int reply_state; /* 0 waiting, 1 got reply, 2 got error */
static u16 want_id;
static u32 acked;

/* What the hypervisor sent since the last look, read as ptctl reads it. */
static void host_read(void)
{
	u.wire_out += host_port.tx_len;
	for (u32 i = 0; i < host_port.tx_len; i++) {
		struct proto_hdr h;
		const u8 *pl;
		u32 len;

		if (proto_rx_byte(&host_rx, host_port.tx[i]) != PROTO_RX_GOOD)
			continue;
		proto_rx_frame(&host_rx, &h, &pl, &len);
		if (h.cmd == PROTO_CMD_CREDIT && h.id == want_id) {
			struct proto_buf b;

			proto_rbuf_init(&b, pl, len);
			acked = 1 + (u32)proto_get_varint(&b);
		} else if (h.id == want_id && h.cmd != PROTO_CMD_NAK) {
			memcpy(rep, pl, len);
			rep_len = len;
			reply_state = (h.flags & PROTO_F_ERROR) ? 2 : 1;
		}
	}
	host_port.tx_len = 0;
}

static struct mgmt *mg;
static u16 next_id = 1;

static bool request(u8 cmd, const u8 *q, u32 qlen)
{
	static u8 w[PROTO_MAX_REQ_WIRE];
	struct proto_hdr h = {PROTO_VERSION, 0, ++next_id, cmd};
	u32 wl = proto_frame_encode(w, sizeof(w), &h, q, qlen), sent = 0;

	want_id = h.id;
	acked = 0;
	reply_state = 0;
	while (!reply_state) {
		while (sent < wl && sent < acked + PROTO_WINDOW && host_port_put(w[sent])) {
			sent++;
			u.wire_in++;
		}
		double t0 = now_s();

		host_port_poll();
		poll_s += now_s() - t0;
		host_read();
	}
	return reply_state == 1;
}

static void setup(u32 ram_mib)
{
	const struct host_machine_config cfg = {.ram0_mib = ram_mib, .seed = 3, .quiet = true};

	memset(&u, 0, sizeof(u));
	proto_rx_init(&host_rx, host_buf, sizeof(host_buf));
	host_port_init(&cfg);
	mg = host_port_mgmt();
}

static gpa_t slot_gpa(u32 i)
{
	return gfn_to_gpa(host_port.m.vm.slots[i].base_gfn);
}

/* The guest writes page i of slot 0 (vCPU 1, through the hardware model). */
static void touch(u64 i)
{
	if (host_port_store(slot_gpa(0) + i * PAGE_SIZE, i)) {
		fprintf(stderr, "bench_proto: the guest's store to page %llu failed\n",
			(unsigned long long)i);
		exit(1);
	}
}

static u32 rng_s = 77;
static u32 rnd(void)
{
	rng_s ^= rng_s << 13;
	rng_s ^= rng_s >> 17;
	rng_s ^= rng_s << 5;
	return rng_s;
}

static void dirty_set(const char *name, int kind)
{
	u8 q[32];
	struct proto_buf b;
	u64 gen, npages, ndirty, pos = 0, got = 0, wire;
	static u64 bm[(4ull << 30) / PAGE_SIZE / 64];

	setup(4096);
	npages = host_port.m.vm.slots[0].npages;
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_u8(&b, 0);
	proto_put_varint(&b, 0);
	proto_put_u8(&b, PROTO_DIRTY_DBIT);
	if (!request(PROTO_CMD_DIRTY_START, q, b.len))
		exit(1);
	for (u64 i = 0; i < npages; i++) {
		bool set = false;

		switch (kind) {
		case 0:
			set = rnd() % 1000 == 0;
			break; /* sparse: 0.1 % */
		case 1:
			set = (i / 64) % 50 == 7;
			break; /* clustered: 64-page runs, 2 % */
		default:
			set = rnd() % 2;
			break; /* dense: 50 % */
		}
		if (set)
			touch(i);
	}
	u.wire_in = u.wire_out = 0;
	poll_s = 0;
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, 0);
	proto_put_u8(&b, PROTO_SNAP_CLEAR);
	if (!request(PROTO_CMD_DIRTY_SNAP, q, b.len))
		exit(1);
	proto_rbuf_init(&b, rep, rep_len);
	gen = proto_get_varint(&b);
	proto_get_varint(&b);
	ndirty = proto_get_varint(&b);
	memset(bm, 0, sizeof(bm));
	while (pos < npages) {
		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, 0);
		proto_put_varint(&b, gen);
		proto_put_varint(&b, pos);
		if (!request(PROTO_CMD_DIRTY_READ, q, b.len))
			exit(1);
		proto_rbuf_init(&b, rep, rep_len);
		proto_get_varint(&b);
		while (proto_rbuf_left(&b)) {
			u32 n = npages - pos < PROTO_BITMAP_BLOCK ? (u32)(npages - pos)
								  : PROTO_BITMAP_BLOCK;
			s64 k = proto_bitmap_decode_block(&b, bm, pos, n);

			if (k < 0)
				exit(1);
			got += (u64)k;
			pos += n;
		}
	}
	if (got != ndirty || memcmp(bm, mg->ds->slots[0].view[DS_CONSUMER_MGMT].bits, sizeof(bm))) {
		fprintf(stderr, "bench_proto: %s: transfer mismatch\n", name);
		exit(1);
	}
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, 0);
	proto_put_varint(&b, gen);
	if (!request(PROTO_CMD_DIRTY_DONE, q, b.len)) {
		fprintf(stderr, "bench_proto: %s: transfer mismatch\n", name);
		exit(1);
	}
	wire = u.wire_in + u.wire_out;
	printf(
	    "{\"name\": \"proto.dirty.%s.wire_per_dirty_page\", \"value\": %.4f, \"unit\": "
	    "\"B/page\", \"ref\": %.4f, \"ref_name\": \"raw bitmap\", \"ratio\": %.4f, \"note\": "
	    "\"4 GiB slot, %llu of %llu pages dirty, %llu wire bytes (both ways, framing "
	    "included) vs %llu bitmap bytes\"}\n",
	    name, (double)wire / ndirty, npages / 8.0 / ndirty, wire / (npages / 8.0),
	    (unsigned long long)ndirty, (unsigned long long)npages, (unsigned long long)wire,
	    (unsigned long long)(npages / 8));
	printf("{\"name\": \"proto.dirty.%s.hv_cpu_per_gib\", \"value\": %.1f, \"unit\": "
	       "\"us/GiB\", \"note\": \"time in the boot CPU's turns (an exit polling the port: "
	       "harvest by the dirty-log session over mmu/, snapshot count, block encoding, "
	       "framing) for the whole transfer, on this host CPU\"}\n",
	       name, poll_s * 1e6 / 4.0);
}

static void mem_kind(const char *name, int kind)
{
	u64 gpa, len = 4ull << 20, done = 0, wire;
	u8 *mem;
	static u8 out[4 << 20];

	setup(1);
	gpa = slot_gpa(1);
	mem = host_machine_mem(&host_port.m, gpa);
	/* random; zero (as built); mixed: zero, random, text-like and sparse, a quarter each */
	if (kind != 1)
		host_machine_fill(&host_port.m, gpa, len / PAGE_SIZE, 5, kind == 2);
	u.wire_in = u.wire_out = 0;
	while (done < len) {
		u8 q[32];
		struct proto_buf b;
		u64 ol = 0;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, gpa + done);
		proto_put_varint(&b, len - done);
		proto_put_u8(&b, PROTO_MEM_LZ);
		if (!request(PROTO_CMD_MEM_READ, q, b.len))
			exit(1);
		proto_rbuf_init(&b, rep, rep_len);
		proto_get_varint(&b);
		if (proto_get_u8(&b) != PROTO_MEM_TOKENS ||
		    !proto_tokens_decode(&b, out + done, &ol, len - done) || !ol)
			exit(1);
		done += ol;
	}
	if (memcmp(out, mem, len)) {
		fprintf(stderr, "bench_proto: mem %s mismatch\n", name);
		exit(1);
	}
	wire = u.wire_in + u.wire_out;
	printf("{\"name\": \"proto.mem.%s.efficiency\", \"value\": %.4f, \"unit\": "
	       "\"guest B/wire B\", \"ref\": 1.0, \"ref_name\": \"raw line (every wire byte a "
	       "guest byte)\", \"ratio\": %.4f, \"note\": \"MEM_READ of 4 MiB, %llu wire bytes "
	       "both ways\"}\n",
	       name, (double)len / wire, (double)len / wire, (unsigned long long)wire);
	if (kind == 0)
		printf("{\"name\": \"proto.mem.random.rate_115200\", \"value\": %.3f, \"unit\": "
		       "\"KiB/s\", \"ref\": 11.25, \"ref_name\": \"115200 baud 8N1 line rate\", "
		       "\"ratio\": %.4f, \"note\": \"incompressible memory: payload / wire bytes "
		       "times the line rate (the hypervisor polling often enough)\"}\n",
		       11.25 * len / wire, (double)len / wire);
}

int main(void)
{
	dirty_set("sparse", 0);
	dirty_set("clustered", 1);
	dirty_set("dense", 2);
	mem_kind("random", 0);
	mem_kind("zero", 1);
	mem_kind("mixed", 2);
	return 0;
}
