/* SPDX-License-Identifier: MIT */
/*
 * codec_bytes FILE: the bytes MEM_READ would put on the wire for guest memory
 * FILE (a raw image, e.g. QMP pmemsave of a guest's RAM from address 0), with
 * each encoding the hypervisor has (RAW, TOKENS, DEFLATE), through the
 * hypervisor's own dispatcher and backend (hv/mgmt.c, hv/control.c on the
 * simulated machine of tests/hv/host_port.h, the image as its RAM), fed the
 * requests as ptctl sends them (decoded frames: no line, the figure is bytes). Every reply is
 * decoded as ptctl decodes it and compared with the image: a figure comes only from exact replies.
 * Prints one JSON object per encoding (wire bytes with frames, replies, host CPU seconds in the
 * dispatcher). For docs/snapshot.md and tests/snapshot/bench_line.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/hv/host_port.h"
#include "tools/ptctl/inflate.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		u8 flags;
	} enc[] = {{"raw", 0}, {"tokens", PROTO_MEM_LZ}, {"deflate", PROTO_MEM_LZ | PROTO_MEM_DFL}};
	struct pt_inflate *inf = pt_inflate_new();
	/* A reply covers at most 1024 pages (hv/mgmt.c MGMT_MEM_MAX_PAGES) and one more begun. */
	static u8 chunk[(1024 + 1) * PAGE_SIZE];
	FILE *f;
	long size;
	u64 mib, nonzero = 0;
	struct mgmt *m;
	u8 *ram;
	u16 id = 1;

	if (argc != 2 || !inf) {
		fprintf(stderr, "usage: codec_bytes FILE (raw guest memory from address 0)\n");
		return 2;
	}
	f = fopen(argv[1], "rb");
	if (!f || fseek(f, 0, SEEK_END) || (size = ftell(f)) <= 0 || size % (1 << 20)) {
		fprintf(stderr, "codec_bytes: %s: not a whole number of MiB\n", argv[1]);
		return 2;
	}
	rewind(f);
	mib = (u64)size >> 20;
	host_port_init(&(struct host_machine_config){.ram0_mib = (u32)mib, .quiet = true});
	m = host_port_mgmt();
	ram = host_machine_mem(&host_port.m, 0);
	if (fread(ram, 1, (size_t)size, f) != (size_t)size) {
		fprintf(stderr, "codec_bytes: cannot read %s\n", argv[1]);
		return 2;
	}
	fclose(f);
	for (u64 p = 0; p < (u64)size; p += PAGE_SIZE)
		for (u32 i = 0; i < PAGE_SIZE; i++)
			if (ram[p + i]) {
				nonzero++;
				break;
			}
	for (u32 e = 0; e < ARRAY_SIZE(enc); e++) {
		u64 done = 0, wire = 0, replies = 0;
		double cpu = 0;

		while (done < (u64)size) {
			u8 q[32], frame[PROTO_MAX_REQ_FRAME], buf[PROTO_MAX_FRAME];
			struct proto_buf b;
			struct proto_hdr h = {PROTO_VERSION, 0, id++, PROTO_CMD_MEM_READ}, rh;
			const u8 *p;
			u32 ql, wl, pl;
			u8 err;
			u64 out = 0, gpa;
			double t0;

			proto_wbuf_init(&b, q, sizeof(q));
			proto_put_varint(&b, done);
			proto_put_varint(&b, (u64)size - done);
			proto_put_u8(&b, enc[e].flags);
			ql = b.len;
			/* The decoded request frame: header, payload, CRC. */
			memcpy(frame, (u8[]){h.version, h.flags, (u8)h.id, (u8)(h.id >> 8), h.cmd},
			       5);
			memcpy(frame + 5, q, ql);
			{
				u32 crc = proto_crc32c(0, frame, 5 + ql);

				memcpy(frame + 5 + ql, &crc, 4);
			}
			wire += PROTO_WIRE_LEN(5 + ql + 4);
			t0 = now_s();
			mgmt_handle_frame(m, frame, 5 + ql + 4);
			cpu += now_s() - t0;
			wl = m->tx_len;
			wire += wl;
			replies++;
			if (proto_decode_frame(m->tx, wl, buf, sizeof(buf), &rh, &p, &pl, &err) !=
				PROTO_RX_GOOD ||
			    (rh.flags & PROTO_F_ERROR)) {
				fprintf(stderr, "codec_bytes: %s: bad reply at %#llx\n",
					enc[e].name, (unsigned long long)done);
				return 1;
			}
			proto_rbuf_init(&b, p, pl);
			gpa = proto_get_varint(&b);
			u8 kind = proto_get_u8(&b);
			bool ok = gpa == done && !b.err;

			if (ok && kind == PROTO_MEM_RAW) {
				out = proto_rbuf_left(&b);
				memcpy(chunk, p + b.pos, out);
			} else if (ok && kind == PROTO_MEM_TOKENS) {
				ok = proto_tokens_decode(&b, chunk, &out, sizeof(chunk));
			} else if (ok && kind == PROTO_MEM_DEFLATE) {
				ok = pt_inflate_reply(inf, &b, chunk, &out, sizeof(chunk));
			} else {
				ok = false;
			}
			if (!ok || !out || out > (u64)size - done ||
			    memcmp(chunk, ram + done, out)) {
				fprintf(stderr,
					"codec_bytes: %s: reply at %#llx does not decode to "
					"the memory\n",
					enc[e].name, (unsigned long long)done);
				return 1;
			}
			done += out;
		}
		printf("{\"encoding\":\"%s\",\"memory_bytes\":%ld,\"pages\":%llu,"
		       "\"nonzero_pages\":%llu,\"wire_bytes\":%llu,\"replies\":%llu,"
		       "\"cpu_s\":%.3f}\n",
		       enc[e].name, size, (unsigned long long)(size / PAGE_SIZE),
		       (unsigned long long)nonzero, (unsigned long long)wire,
		       (unsigned long long)replies, cpu);
		fflush(stdout);
	}
	pt_inflate_free(inf);
	return 0;
}
