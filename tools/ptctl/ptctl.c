/* SPDX-License-Identifier: MIT */
/*
 * ptctl: drives PageTrail over its management serial line (docs/protocol.md).
 *
 * Exit status: 0 ok, 1 the hypervisor answered with an error, 2 usage,
 * 3 transport, timeout or protocol version.
 */
#include "client.h"
#include "ops.h"
#include "research_cmd.h"
#include "snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: ptctl -c CONN [--baud N] [--json] [--timeout MS] [--codec deflate|tokens|raw] [-v]\n"
    "             COMMAND\n"
    "  CONN: unix:PATH (QEMU chardev socket) | tcp:HOST:PORT | /dev/ttyS1 (--baud, default "
    "115200)\n"
    "  COMMAND:\n"
    "    info | slots | stats | pause | resume\n"
    "    regs [--vcpu N]\n"
    "    dirty start|stop [--slot ID | --all] [--mode wp|dbit|pml]\n"
    "    dirty get --slot ID [--clear] [-o FILE]\n"
    "    dirty clear --slot ID --first PAGE --count N\n"
    "    mem read GPA LEN -o FILE\n"
    "    log [--bytes N]\n"
    "    snapshot -o FILE [--live [--downtime MS] [--max-rounds N] | --base OLD.core]\n"
    "             [--stay-paused] [--lease MS]\n"
    "    snapshot -o FILE --cow [--cow-mib MIB] [--lease MS]\n"
    "                       ELF core of the guest (QEMU dump-guest-memory layout)\n"
    "    ping [--count N]   round-trip latency of INFO: p50, p99, max\n"
    "    dirty rate --seconds S | --interval T --count N   distinct pages written, pages/s\n"
    "    precopy --bandwidth RATE [--max-rounds N] [--downtime MS] [--min-shrink PCT]\n"
    "            [--csv FILE] [--plot FILE.svg|.png|.txt]   pre-copy rounds over a simulated link\n"
    "    precopy --send [--max-rounds N] [--downtime MS] [--csv FILE] [--plot FILE]\n"
    "            the same with the pages read over the management line (live snapshot engine)\n"
    "    wws --seconds S [--interval T] [--csv FILE] [--plot FILE]   writable working set\n"
    "  --json: machine-readable output of every command\n"
    "  --codec: guest memory on the wire (mem read, snapshot): deflate (the default when the\n"
    "           hypervisor offers it), tokens (the in-page codec) or raw\n"
    "  exit status: 0 ok, 1 error from the hypervisor, 2 usage, 3 transport or timeout\n";

static struct {
	const char *conn;
	int baud;
	bool json;
	bool verbose;
	int timeout_ms;
	/* command options */
	const char *slot, *mode, *out, *first, *count, *vcpu, *bytes, *downtime, *max_rounds, *base,
	    *lease, *cow_mib, *codec;
	bool all, clear, live, cow, stay_paused;
	const char *pos[8];
	int npos;
} opt = {.baud = 115200, .timeout_ms = 2000};

static struct pt_conn conn;

static int usage(const char *fmt, ...)
{
	va_list ap;

	if (fmt) {
		fprintf(stderr, "ptctl: ");
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fprintf(stderr, "\n");
	}
	fputs(usage_text, stderr);
	return PT_EUSAGE;
}

static int failed(int status)
{
	fprintf(stderr, "ptctl: %s\n", conn.err);
	return status;
}

/* Numbers: decimal or 0x hex, with an optional K, M, G (binary) suffix. */
static bool parse_u64(const char *s, u64 *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return false;
	if (*end) {
		unsigned int shift = 0;

		switch (*end) {
		case 'k':
		case 'K':
			shift = 10;
			break;
		case 'm':
		case 'M':
			shift = 20;
			break;
		case 'g':
		case 'G':
			shift = 30;
			break;
		default:
			return false;
		}
		if (end[1] || v > (~0ull >> shift))
			return false;
		v <<= shift;
	}
	*out = v;
	return true;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* --- Progress bar: on a terminal, for transfers longer than a second ----------- */
struct progress {
	double start;
	bool tty, shown;
	const char *what;
};

static void progress_init(struct progress *p, const char *what)
{
	p->start = now_s();
	p->tty = isatty(2);
	p->shown = false;
	p->what = what;
}

static void progress_update(struct progress *p, u64 done, u64 total)
{
	double t = now_s() - p->start;
	int width = 30, fill;

	if (!p->tty || t < 1.0 || !total)
		return;
	fill = (int)(width * (double)done / (double)total);
	fprintf(stderr, "\r%s [%.*s%*s] %3d%% %.1f KiB/s", p->what, fill,
		"##############################", width - fill, "", (int)(100.0 * done / total),
		conn.wire_rx / 1024.0 / t);
	p->shown = true;
}

static void progress_done(struct progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r%*s\r", 70, "");
}

/* --- Output helpers ------------------------------------------------------------ */
static const char *mode_name(unsigned int m)
{
	switch (m) {
	case PROTO_DIRTY_OFF:
		return "off";
	case PROTO_DIRTY_WP:
		return "wp";
	case PROTO_DIRTY_DBIT:
		return "dbit";
	case PROTO_DIRTY_PML:
		return "pml";
	}
	return "?";
}

static const char *slot_type_name(unsigned int t)
{
	switch (t) {
	case PROTO_SLOT_RAM:
		return "ram";
	case PROTO_SLOT_ROM:
		return "rom";
	case PROTO_SLOT_MMIO:
		return "mmio";
	case PROTO_SLOT_RESERVED:
		return "reserved";
	}
	return "?";
}

static void human_size(u64 v, char *buf, size_t len)
{
	if (v >= (1ull << 30) && !(v & ((1ull << 30) - 1)))
		snprintf(buf, len, "%" PRIu64 " GiB", v >> 30);
	else if (v >= (1ull << 20) && !(v & ((1ull << 20) - 1)))
		snprintf(buf, len, "%" PRIu64 " MiB", v >> 20);
	else if (v >= (1ull << 10) && !(v & ((1ull << 10) - 1)))
		snprintf(buf, len, "%" PRIu64 " KiB", v >> 10);
	else
		snprintf(buf, len, "%" PRIu64 " B", v);
}

static int request(u8 cmd, struct proto_buf *req, u8 *rep, u32 *len)
{
	int r = pt_request(&conn, cmd, req->p, req->len, rep, len, NULL);

	return r ? failed(r) : 0;
}

static int malformed(u8 cmd)
{
	fprintf(stderr, "ptctl: malformed %s reply from the hypervisor\n", proto_cmd_name(cmd));
	return PT_ETRANSPORT;
}

/* --- info ---------------------------------------------------------------------- */
static int cmd_info(void)
{
	struct pt_info in;
	char sz[32];
	bool first = true;
	int r = pt_get_info(&conn, &in);

	if (r)
		return failed(r);
	if (opt.json) {
		printf("{\"version\":");
		pt_json_str(in.version);
		printf(",\"protocol\":%d,\"backend\":", PROTO_VERSION);
		pt_json_str(in.backend);
		printf(",\"vcpus\":%" PRIu64 ",\"dirty_modes\":[", in.vcpus);
		for (unsigned int m = PROTO_DIRTY_WP; m <= PROTO_DIRTY_PML; m++) {
			if (!(in.modes & PROTO_DIRTY_MODE_BIT(m)))
				continue;
			printf("%s\"%s\"", first ? "" : ",", mode_name(m));
			first = false;
		}
		printf("],\"mem_bytes\":%" PRIu64 ",\"slots\":%" PRIu64
		       ",\"paused\":%s,\"stopped\":%s}\n",
		       in.mem, in.nslots, in.paused ? "true" : "false",
		       in.stopped ? "true" : "false");
		return 0;
	}
	human_size(in.mem, sz, sizeof(sz));
	printf("version      %s (protocol %d, %s)\n", in.version, PROTO_VERSION, conn.peer_name);
	printf("backend      %s\n", in.backend);
	printf("vcpus        %" PRIu64 "\n", in.vcpus);
	printf("dirty modes ");
	for (unsigned int m = PROTO_DIRTY_WP; m <= PROTO_DIRTY_PML; m++)
		if (in.modes & PROTO_DIRTY_MODE_BIT(m))
			printf(" %s", mode_name(m));
	printf("\nmemory       %s\n", sz);
	printf("slots        %" PRIu64 "\n", in.nslots);
	printf("state        %s\n", in.stopped
					? "stopped: a fatal error stopped the guest for good "
					  "(`ptctl log` says which); reset the machine"
				    : in.paused ? "paused"
						: "running");
	return 0;
}

/* --- slots --------------------------------------------------------------------- */
static int cmd_slots(void)
{
	struct pt_slot s[PROTO_MAX_SLOTS];
	int n, r = pt_get_slots(&conn, s, PROTO_MAX_SLOTS, &n);

	if (r)
		return failed(r);
	if (opt.json) {
		printf("[");
		for (int i = 0; i < n; i++)
			printf("%s{\"id\":%" PRIu64 ",\"gpa\":%" PRIu64 ",\"size\":%" PRIu64
			       ",\"type\":\"%s\",\"logging\":%s,\"mode\":\"%s\"}",
			       i ? "," : "", s[i].id, s[i].gpa, s[i].size,
			       slot_type_name(s[i].type), s[i].mode ? "true" : "false",
			       mode_name(s[i].mode));
		printf("]\n");
		return 0;
	}
	printf("%4s  %-18s  %-18s  %10s  %-8s  %s\n", "ID", "GPA", "END", "SIZE", "TYPE",
	       "LOGGING");
	for (int i = 0; i < n; i++) {
		char sz[32];

		human_size(s[i].size, sz, sizeof(sz));
		printf("%4" PRIu64 "  0x%016" PRIx64 "  0x%016" PRIx64 "  %10s  %-8s  %s\n",
		       s[i].id, s[i].gpa, s[i].gpa + s[i].size, sz, slot_type_name(s[i].type),
		       mode_name(s[i].mode));
	}
	return 0;
}

/* --- stats, regs, log ---------------------------------------------------------- */
static int cmd_stats(void)
{
	u8 q[16], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len, idx = 0;
	int r;
	bool first = true;

	if (opt.json)
		printf("{");
	for (;;) {
		u8 more;
		u32 before = idx;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, idx);
		r = request(PROTO_CMD_STATS, &b, rep, &len);
		if (r)
			return r;
		proto_rbuf_init(&b, rep, len);
		more = proto_get_u8(&b);
		while (!b.err && proto_rbuf_left(&b)) {
			char name[80];
			u64 v;

			proto_get_str(&b, name, sizeof(name));
			v = proto_get_varint(&b);
			if (b.err)
				break;
			if (opt.json) {
				printf("%s", first ? "" : ",");
				pt_json_str(name);
				printf(":%" PRIu64, v);
			} else {
				printf("%-32s %" PRIu64 "\n", name, v);
			}
			first = false;
			idx++;
		}
		if (b.err || (more && idx == before))
			return malformed(PROTO_CMD_STATS);
		if (!more)
			break;
	}
	if (opt.json)
		printf("}\n");
	return 0;
}

static int cmd_regs(void)
{
	struct pt_regs regs;
	u64 vcpu = 0;
	int r;

	if (opt.vcpu && !parse_u64(opt.vcpu, &vcpu))
		return usage("bad --vcpu %s", opt.vcpu);
	r = pt_get_regs(&conn, vcpu, &regs);
	if (r)
		return failed(r);
	if (opt.json)
		printf("{\"vcpu\":%" PRIu64, vcpu);
	else
		printf("vcpu %" PRIu64 "\n", vcpu);
	for (u32 i = 0; i < regs.count; i++) {
		if (opt.json)
			printf(",\"%s\":%" PRIu64, proto_reg_name((int)i), regs.r[i]);
		else
			printf("%-8s 0x%016" PRIx64 "%s", proto_reg_name((int)i), regs.r[i],
			       i % 3 == 2 || i + 1 == regs.count ? "\n" : "   ");
	}
	if (opt.json)
		printf("}\n");
	return 0;
}

static int cmd_log(void)
{
	u8 q[32], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u32 len;
	u64 want = 4096, first, end, off, pos;
	char *text = NULL;
	size_t tlen = 0;
	int r;

	if (opt.bytes && !parse_u64(opt.bytes, &want))
		return usage("bad --bytes %s", opt.bytes);
	/* First learn where the ring ends, then read the last `want` bytes. */
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, 0);
	proto_put_varint(&b, 0);
	r = request(PROTO_CMD_LOG, &b, rep, &len);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	first = proto_get_varint(&b);
	end = proto_get_varint(&b);
	if (b.err || first > end)
		return malformed(PROTO_CMD_LOG);
	pos = end - first > want ? end - want : first;
	text = malloc(end - pos + 1);
	if (!text)
		return PT_ETRANSPORT;
	while (pos < end) {
		const u8 *d;
		u32 dl;

		proto_wbuf_init(&b, q, sizeof(q));
		proto_put_varint(&b, pos);
		proto_put_varint(&b, end - pos);
		r = request(PROTO_CMD_LOG, &b, rep, &len);
		if (r) {
			free(text);
			return r;
		}
		proto_rbuf_init(&b, rep, len);
		proto_get_varint(&b);
		proto_get_varint(&b);
		off = proto_get_varint(&b);
		dl = proto_rbuf_left(&b);
		d = proto_get_bytes(&b, dl);
		if (b.err || off < pos || dl == 0)
			break; /* the ring moved past us, or nothing more */
		if (dl > end - off)
			dl = (u32)(end - off);
		memcpy(text + tlen, d, dl);
		tlen += dl;
		pos = off + dl;
	}
	text[tlen] = 0;
	if (opt.json) {
		printf("{\"first\":%" PRIu64 ",\"end\":%" PRIu64 ",\"text\":", first, end);
		pt_json_str(text);
		printf("}\n");
	} else {
		fwrite(text, 1, tlen, stdout);
	}
	free(text);
	return 0;
}

/* --- pause, resume ----------------------------------------------------------- */
static int cmd_simple(u8 cmd, const char *done)
{
	int r = pt_simple(&conn, cmd);

	if (r)
		return failed(r);
	if (opt.json)
		printf("{\"ok\":true,\"command\":\"%s\"}\n", proto_cmd_name(cmd));
	else
		printf("%s\n", done);
	return 0;
}

/* --- dirty ---------------------------------------------------------------------- */
static int slot_arg(u64 *slot)
{
	if (!opt.slot)
		return usage("--slot ID is required");
	if (!parse_u64(opt.slot, slot) || *slot > 0xffffffffu)
		return usage("bad --slot %s", opt.slot);
	return 0;
}

static int cmd_dirty_start_stop(bool start)
{
	u64 slot = 0, n;
	u8 mode = 0;
	int r;

	if (!opt.all && !opt.slot)
		return usage("dirty %s needs --slot ID or --all", start ? "start" : "stop");
	if (opt.all && opt.slot)
		return usage("--slot and --all exclude each other");
	if (opt.slot && (r = slot_arg(&slot)))
		return r;
	if (!start && opt.mode)
		return usage("dirty stop takes no --mode");
	if (start && opt.mode) {
		for (mode = PROTO_DIRTY_WP; mode <= PROTO_DIRTY_PML; mode++)
			if (!strcmp(opt.mode, mode_name(mode)))
				break;
		if (mode > PROTO_DIRTY_PML)
			return usage("--mode is wp, dbit or pml, not %s", opt.mode);
	} else if (start) {
		/* No mode given: the cheapest the CPU has. */
		struct pt_info in;

		r = pt_get_info(&conn, &in);
		if (r)
			return failed(r);
		mode = pt_best_dirty_mode(in.modes);
	}
	r = pt_dirty_start_stop(&conn, start, opt.all, slot, mode, &n);
	if (r)
		return failed(r);
	if (opt.json)
		printf("{\"slots\":%" PRIu64 ",\"mode\":\"%s\"}\n", n,
		       start ? mode_name(mode) : "off");
	else if (start)
		printf("dirty logging started on %" PRIu64 " slot(s), mode %s\n", n,
		       mode_name(mode));
	else
		printf("dirty logging stopped on %" PRIu64 " slot(s)\n", n);
	return 0;
}

static int cannot_write(const char *path)
{
	fprintf(stderr, "ptctl: cannot write %s: %s\n", path, strerror(errno));
	return PT_EUSAGE;
}

static int write_file(const char *path, const void *p, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return cannot_write(path);
	if (fwrite(p, 1, len, f) != len) {
		cannot_write(path);
		fclose(f);
		return PT_EUSAGE;
	}
	return fclose(f) ? cannot_write(path) : 0;
}

static void dirty_get_progress(void *ctx, u64 done, u64 total)
{
	progress_update(ctx, done, total);
}

static void print_dirty_runs(const u64 *bm, u64 npages)
{
	u64 shown = 0;

	for (u64 i = 0; i < npages && shown < 64; i++) {
		u64 j = i;

		if (!proto_test_bit(bm, i))
			continue;
		while (j + 1 < npages && proto_test_bit(bm, j + 1))
			j++;
		if (j > i)
			printf("  pages %" PRIu64 "-%" PRIu64 "\n", i, j);
		else
			printf("  page %" PRIu64 "\n", i);
		shown++;
		i = j;
	}
	if (shown == 64)
		printf("  ... (use -o FILE for the whole bitmap)\n");
}

static int cmd_dirty_get(void)
{
	struct progress pr;
	struct pt_dirty_snap s;
	u64 slot, *bm;
	u64 wire0 = conn.wire_rx + conn.wire_tx;
	int r;

	if ((r = slot_arg(&slot)))
		return r;
	progress_init(&pr, "dirty get");
	r = pt_dirty_get(&conn, slot, opt.clear, &s, &bm, dirty_get_progress, &pr);
	progress_done(&pr);
	if (r)
		return failed(r);
	if (opt.out) {
		r = write_file(opt.out, bm, (s.npages + 63) / 64 * 8);
		if (r)
			goto out;
	}
	/* Acknowledge only what is stored: until then the snapshot keeps the bits. */
	if (opt.clear) {
		r = pt_dirty_done(&conn, slot, s.gen);
		if (r) {
			r = failed(r);
			goto out;
		}
	}
	if (opt.json) {
		printf("{\"slot\":%" PRIu64 ",\"generation\":%" PRIu64 ",\"pages\":%" PRIu64
		       ",\"dirty\":%" PRIu64 ",\"cleared\":%s,\"wire_bytes\":%" PRIu64 "}\n",
		       slot, s.gen, s.npages, s.ndirty, opt.clear ? "true" : "false",
		       conn.wire_rx + conn.wire_tx - wire0);
	} else {
		printf("slot %" PRIu64 ": %" PRIu64 " of %" PRIu64 " pages dirty%s\n", slot,
		       s.ndirty, s.npages, opt.clear ? " (cleared)" : "");
		if (!opt.out)
			print_dirty_runs(bm, s.npages);
	}
out:
	free(bm);
	return r;
}

static int cmd_dirty_clear(void)
{
	u8 q[48], rep[PROTO_MAX_PAYLOAD];
	struct proto_buf b;
	u64 slot, first, count, n;
	u32 len;
	int r;

	if ((r = slot_arg(&slot)))
		return r;
	if (!opt.first || !parse_u64(opt.first, &first))
		return usage("dirty clear needs --first PAGE");
	if (!opt.count || !parse_u64(opt.count, &count) || !count)
		return usage("dirty clear needs --count N (N > 0)");
	proto_wbuf_init(&b, q, sizeof(q));
	proto_put_varint(&b, slot);
	proto_put_varint(&b, first);
	proto_put_varint(&b, count);
	r = request(PROTO_CMD_DIRTY_CLEAR, &b, rep, &len);
	if (r)
		return r;
	proto_rbuf_init(&b, rep, len);
	n = proto_get_varint(&b);
	if (!proto_rbuf_done(&b))
		return malformed(PROTO_CMD_DIRTY_CLEAR);
	if (opt.json)
		printf("{\"slot\":%" PRIu64 ",\"reprotected\":%" PRIu64 "}\n", slot, n);
	else
		printf("slot %" PRIu64 ": %" PRIu64 " page(s) re-protected\n", slot, n);
	return 0;
}

/* --- mem read ----------------------------------------------------------------- */
static int cmd_mem_read(void)
{
	struct progress pr;
	u64 gpa, len, done = 0;
	u64 wire0 = conn.wire_rx + conn.wire_tx;
	const u64 chunk_cap = (u64)(1024 + 1) * PAGE_SIZE;
	u8 *chunk;
	FILE *f;
	int r = 0;

	if (opt.npos != 4)
		return usage("mem read GPA LEN -o FILE");
	if (!parse_u64(opt.pos[2], &gpa) || !parse_u64(opt.pos[3], &len) || !len || gpa + len < gpa)
		return usage("bad GPA or LEN");
	if (!opt.out)
		return usage("mem read needs -o FILE");
	f = fopen(opt.out, "wb");
	if (!f)
		return cannot_write(opt.out);
	chunk = malloc(chunk_cap);
	if (!chunk) {
		fclose(f);
		return PT_ETRANSPORT;
	}
	/* Chunk by chunk into the file: LEN may be more than this host's memory. */
	progress_init(&pr, "mem read");
	while (done < len) {
		u64 out;

		r = pt_mem_read_chunk(&conn, gpa + done, len - done, chunk, chunk_cap, &out);
		if (r) {
			r = failed(r);
			break;
		}
		if (fwrite(chunk, 1, out, f) != out) {
			r = cannot_write(opt.out);
			break;
		}
		done += out;
		progress_update(&pr, done, len);
	}
	progress_done(&pr);
	free(chunk);
	if (fclose(f) && !r)
		r = cannot_write(opt.out);
	if (r)
		return r;
	if (opt.json)
		printf("{\"gpa\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"wire_bytes\":%" PRIu64 "}\n",
		       gpa, len, conn.wire_rx + conn.wire_tx - wire0);
	else
		printf("read %" PRIu64 " bytes at 0x%" PRIx64 " into %s (%" PRIu64
		       " bytes on the wire)\n",
		       len, gpa, opt.out, conn.wire_rx + conn.wire_tx - wire0);
	return 0;
}

/* --- ping: command latency (it must stay bounded whatever the guest does) ------- */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int cmd_ping(void)
{
	u64 n = 100;
	double *t;
	int r = 0;

	if (opt.count && (!parse_u64(opt.count, &n) || !n || n > 1000000))
		return usage("bad --count %s", opt.count);
	t = calloc(n, sizeof(*t));
	if (!t)
		return PT_ETRANSPORT;
	for (u64 i = 0; i < n; i++) {
		u8 rep[PROTO_MAX_PAYLOAD];
		u32 len;
		double t0 = now_s();

		r = pt_request(&conn, PROTO_CMD_INFO, NULL, 0, rep, &len, NULL);
		if (r) {
			free(t);
			return failed(r);
		}
		t[i] = (now_s() - t0) * 1e3;
	}
	qsort(t, n, sizeof(*t), cmp_double);
	if (opt.json)
		printf("{\"count\":%" PRIu64 ",\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
		       "\"retransmits\":%" PRIu64 "}\n",
		       n, t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], t[n - 1],
		       conn.retransmits);
	else
		printf("%" PRIu64 " INFO round trips: p50 %.3f ms, p99 %.3f ms, max %.3f ms, "
		       "%" PRIu64 " retransmits\n",
		       n, t[n / 2], t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], t[n - 1],
		       conn.retransmits);
	free(t);
	return 0;
}

/* --- main --------------------------------------------------------------------- */
int main(int argc, char **argv)
{
	const char *cmd, *sub;
	struct snapshot_opts snap = {0};
	int r;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			fputs(usage_text, stdout);
			return 0;
		}
		if (!strcmp(a, "--json")) {
			opt.json = true;
			continue;
		}
		if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
			opt.verbose = true;
			continue;
		}
		if (!strcmp(a, "--all")) {
			opt.all = true;
			continue;
		}
		if (!strcmp(a, "--clear")) {
			opt.clear = true;
			continue;
		}
		/* Shared with the research commands (precopy): both see the value. */
		if (!strcmp(a, "--downtime") || !strcmp(a, "--max-rounds")) {
			const char **mine = a[2] == 'd' ? &opt.downtime : &opt.max_rounds;

			*mine = i + 1 < argc ? argv[i + 1] : "";
			research_option(argc, argv, &i);
			continue;
		}
		if (!strcmp(a, "--live")) {
			opt.live = true;
			continue;
		}
		if (!strcmp(a, "--cow")) {
			opt.cow = true;
			continue;
		}
		if (!strcmp(a, "--stay-paused")) {
			opt.stay_paused = true;
			continue;
		}
		if (!strcmp(a, "-c") || !strcmp(a, "--connect"))
			val = &opt.conn;
		else if (!strcmp(a, "--slot"))
			val = &opt.slot;
		else if (!strcmp(a, "--mode"))
			val = &opt.mode;
		else if (!strcmp(a, "-o"))
			val = &opt.out;
		else if (!strcmp(a, "--first"))
			val = &opt.first;
		else if (!strcmp(a, "--count"))
			val = &opt.count;
		else if (!strcmp(a, "--vcpu"))
			val = &opt.vcpu;
		else if (!strcmp(a, "--base"))
			val = &opt.base;
		else if (!strcmp(a, "--lease"))
			val = &opt.lease;
		else if (!strcmp(a, "--cow-mib"))
			val = &opt.cow_mib;
		else if (!strcmp(a, "--bytes"))
			val = &opt.bytes;
		else if (!strcmp(a, "--codec"))
			val = &opt.codec;
		if (!val && research_option(argc, argv, &i))
			continue;
		if (val) {
			if (i + 1 >= argc)
				return usage("%s needs a value", a);
			*val = argv[++i];
			continue;
		}
		if (!strcmp(a, "--baud") || !strcmp(a, "--timeout")) {
			u64 v;

			if (i + 1 >= argc || !parse_u64(argv[i + 1], &v) || !v || v > 100000000)
				return usage("%s needs a positive number", a);
			if (a[2] == 'b')
				opt.baud = (int)v;
			else
				opt.timeout_ms = (int)v;
			i++;
			continue;
		}
		if (a[0] == '-' && a[1])
			return usage("unknown option %s", a);
		if (opt.npos == (int)ARRAY_SIZE(opt.pos))
			return usage("too many arguments");
		opt.pos[opt.npos++] = a;
	}
	if (!opt.npos)
		return usage(NULL);
	cmd = opt.pos[0];
	sub = opt.npos > 1 ? opt.pos[1] : "";
	if (!opt.conn)
		opt.conn = getenv("PTCTL_CONNECT");
	if (!opt.conn)
		return usage("no connection: -c unix:PATH | tcp:HOST:PORT | /dev/ttyS1");

	/* Check the command line before touching the line. */
	{
		static const char *const simple[] = {"info",  "slots",	"stats", "regs",
						     "pause", "resume", "log",	 "ping"};
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(simple); i++)
			if (!strcmp(cmd, simple[i]))
				known = opt.npos == 1;
		if (!strcmp(cmd, "dirty"))
			known = (opt.npos == 2) && (!strcmp(sub, "start") || !strcmp(sub, "stop") ||
						    !strcmp(sub, "get") || !strcmp(sub, "clear"));
		if (!strcmp(cmd, "mem"))
			known = !strcmp(sub, "read");
		if (research_is_command(cmd, sub, opt.npos))
			known = true;
		if (!strcmp(cmd, "snapshot")) {
			known = opt.npos == 1;
			if (known && !opt.out)
				return usage("snapshot needs -o FILE");
			if (!opt.live && (opt.downtime || opt.max_rounds))
				return usage("--downtime and --max-rounds go with --live");
			snap.out = opt.out;
			snap.live = opt.live;
			snap.base = opt.base;
			if (opt.live && opt.base)
				return usage("--base goes with the plain form, not --live");
			if (opt.cow_mib && !opt.cow)
				return usage("--cow-mib goes with --cow");
			if (opt.cow && (opt.live || opt.base || opt.stay_paused))
				return usage(
				    "--cow goes alone: the guest runs during the copy and the "
				    "core is complete (not with --live, --base or "
				    "--stay-paused)");
			snap.cow = opt.cow;
			if (opt.cow_mib) {
				char *end;
				double mib = strtod(opt.cow_mib, &end);

				if (end == opt.cow_mib || *end || !(mib > 0) || mib > 1048576)
					return usage("bad --cow-mib %s (MiB of hidden memory for "
						     "copies, e.g. 8 or 0.05)",
						     opt.cow_mib);
				snap.cow_pages = (u64)(mib * 256 + 0.999999);
			}
			snap.stay_paused = opt.stay_paused;
			snap.json = opt.json;
			snap.downtime_ms = 300;
			snap.max_rounds = 30;
			snap.lease_ms = 30000;
			if (opt.lease &&
			    (!parse_u64(opt.lease, &snap.lease_ms) || snap.lease_ms > 600000))
				return usage("bad --lease %s (0 to 600000 ms)", opt.lease);
			if (opt.downtime && !parse_u64(opt.downtime, &snap.downtime_ms))
				return usage("bad --downtime %s", opt.downtime);
			if (opt.max_rounds && (!parse_u64(opt.max_rounds, &snap.max_rounds) ||
					       snap.max_rounds > 1000))
				return usage("bad --max-rounds %s (0 to 1000)", opt.max_rounds);
		}
		if (!known)
			return usage("unknown command or wrong arguments: %s %s", cmd, sub);
	}

	if (opt.codec && strcmp(opt.codec, "deflate") && strcmp(opt.codec, "tokens") &&
	    strcmp(opt.codec, "raw"))
		return usage("--codec is deflate, tokens or raw, not %s", opt.codec);
	r = pt_connect(&conn, opt.conn, opt.baud);
	if (r)
		return failed(r);
	/* deflate: the hypervisor's choice between DEFLATE and tokens (PROTO_CAP_DEFLATE). */
	conn.codec = !opt.codec || !strcmp(opt.codec, "deflate") ? PT_CODEC_AUTO
		     : !strcmp(opt.codec, "tokens")		  ? PT_CODEC_TOKENS
								  : PT_CODEC_RAW;
	conn.timeout_ms = opt.timeout_ms;
	conn.verbose = opt.verbose;
	r = pt_hello(&conn);
	if (r) {
		failed(r);
		pt_close(&conn);
		return r;
	}

	if (research_is_command(cmd, sub, opt.npos)) {
		struct research_args ra = {.json = opt.json, .mode = opt.mode, .count = opt.count};

		r = research_main(&conn, cmd, &ra);
	} else if (!strcmp(cmd, "info"))
		r = cmd_info();
	else if (!strcmp(cmd, "slots"))
		r = cmd_slots();
	else if (!strcmp(cmd, "stats"))
		r = cmd_stats();
	else if (!strcmp(cmd, "regs"))
		r = cmd_regs();
	else if (!strcmp(cmd, "log"))
		r = cmd_log();
	else if (!strcmp(cmd, "ping"))
		r = cmd_ping();
	else if (!strcmp(cmd, "snapshot"))
		r = snapshot_cmd(&conn, &snap);
	else if (!strcmp(cmd, "pause"))
		r = cmd_simple(PROTO_CMD_PAUSE, "paused");
	else if (!strcmp(cmd, "resume"))
		r = cmd_simple(PROTO_CMD_RESUME, "resumed");
	else if (!strcmp(sub, "start") || !strcmp(sub, "stop"))
		r = cmd_dirty_start_stop(!strcmp(sub, "start"));
	else if (!strcmp(sub, "get"))
		r = cmd_dirty_get();
	else if (!strcmp(sub, "clear"))
		r = cmd_dirty_clear();
	else
		r = cmd_mem_read();
	if (opt.verbose)
		fprintf(stderr,
			"ptctl: wire tx %" PRIu64 " rx %" PRIu64 " bytes, %" PRIu64
			" frames, %" PRIu64 " retransmits, %" PRIu64 " naks, %" PRIu64
			" credits, %" PRIu64 " bad frames\n",
			conn.wire_tx, conn.wire_rx, conn.frames_rx, conn.retransmits, conn.naks,
			conn.credits, conn.bad_frames);
	/* Every request was answered before this point: closing loses nothing. */
	pt_close(&conn);
	return r;
}
