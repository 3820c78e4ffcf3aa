/* SPDX-License-Identifier: MIT */
/*
 * `ptctl snapshot -o FILE`: the guest's memory and vCPU state as an ELF core
 * (elfcore.h). Plain: pause, take the vCPU state, copy, resume. --live: the
 * pre-copy engine (precopy.h) copies while the guest runs and pauses only
 * for the last pages. --cow: pause, take the vCPU state, arm the
 * hypervisor's copy-on-write, resume at once, then copy the instant's pages
 * while the guest runs. Either way every slot the core covers is left logging
 * dirty pages, and the file appears under its name only when complete
 * (a temporary file in the same directory, fsync, rename).
 */
#define _GNU_SOURCE /* copy_file_range */
#include "snapshot.h"

#include "elfcore.h"
#include "precopy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <sys/stat.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t snap_cancel;

static void on_signal(int sig)
{
	(void)sig;
	snap_cancel = 1;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

struct snap {
	struct pt_conn *c;
	const struct snapshot_opts *o;
	struct core core;
	struct precopy_stats *st;
	int fd;
	double t0, pass_t0;
	u32 pass_seen;
	bool tty, bar_shown;
	u64 wire0;
};

static bool page_is_zero(const u8 *p)
{
	const u64 *w = (const u64 *)p;

	for (u32 i = 0; i < PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/* Pages go to their place in the file; zero pages of the first pass stay holes. */
static int snap_put(void *ctx, u64 gpa, const u8 *data, u64 len)
{
	struct snap *s = ctx;
	const struct core_range *r = core_find(&s->core, gpa);

	if (!r || gpa + len - r->gpa > r->size) {
		snprintf(s->c->err, sizeof(s->c->err), "page 0x%" PRIx64 " outside the core", gpa);
		return PT_ETRANSPORT;
	}
	for (u64 at = 0; at < len;) {
		u64 n = 0;

		if (s->st->pass == 0 && page_is_zero(data + at)) {
			at += PAGE_SIZE;
			continue;
		}
		while (at + n < len && !(s->st->pass == 0 && page_is_zero(data + at + n)))
			n += PAGE_SIZE;
		for (u64 w = 0; w < n;) {
			ssize_t k = pwrite(s->fd, data + at + w, n - w,
					   (off_t)(r->file_off + gpa + at + w - r->gpa));

			if (k < 0 && errno == EINTR)
				continue;
			if (k <= 0) {
				snprintf(s->c->err, sizeof(s->c->err), "cannot write %s: %s",
					 s->o->out, k < 0 ? strerror(errno) : "short write");
				return PT_EUSAGE;
			}
			w += (u64)k;
		}
		at += n;
	}
	return 0;
}

/*
 * The dirty log's position at the core's instant (guest paused, this
 * command's own harvests done): an incremental snapshot later checks that it
 * has not moved. A hypervisor without DIRTY_EPOCH gives a core that cannot be
 * a base (and says so then).
 */
static int snap_epoch(struct snap *s)
{
	u64 boot, epoch;
	int r;

	if (!(s->c->peer_caps & PROTO_CAP_EPOCH))
		return 0;
	r = pt_dirty_epoch(s->c, &boot, &epoch);
	if (r)
		return r;
	s->core.log_flags = CORE_PT_EPOCH;
	s->core.log_id = boot;
	s->core.log_epoch = epoch;
	return 0;
}

static int snap_regs(void *ctx, struct pt_conn *c)
{
	struct snap *s = ctx;

	int r = snap_epoch(s);

	if (r)
		return r;
	for (u32 i = 0; i < s->core.nvcpus; i++) {
		r = pt_get_regs(c, i, &s->core.regs[i]);

		if (r)
			return r;
		if (s->core.regs[i].count < PROTO_REG_NR) {
			snprintf(c->err, sizeof(c->err),
				 "the hypervisor reports %u registers of vCPU %u, a core needs %d "
				 "(segments, descriptor tables): update the hypervisor",
				 s->core.regs[i].count, i, PROTO_REG_NR);
			return PT_EHV;
		}
	}
	return 0;
}

/* On a terminal: pass, bar, percentage, rate of guest memory covered, ETA of the pass. */
static void snap_progress(void *ctx, const struct precopy_stats *st)
{
	struct snap *s = ctx;
	double t = now_ms(), secs, rate;
	int width = 28, fill;

	if (!s->tty || t - s->t0 < 1000 || !st->pass_total)
		return;
	if (st->pass != s->pass_seen || !s->pass_t0) {
		s->pass_seen = st->pass;
		s->pass_t0 = t;
	}
	secs = (t - s->pass_t0) / 1e3;
	rate = secs > 0 ? (double)st->pass_done * PAGE_SIZE / secs : 0;
	fill = (int)(width * (double)st->pass_done / (double)st->pass_total);
	if (fill > width)
		fill = width;
	fprintf(stderr, "\rsnapshot %s [%.*s%*s] %3d%% %7.1f MiB/s ETA %4.0fs  ",
		st->pass ? "round" : "memory", fill, "############################", width - fill,
		"", (int)(100.0 * st->pass_done / st->pass_total), rate / 1048576.0,
		rate > 0 ? (double)(st->pass_total - st->pass_done) * PAGE_SIZE / rate : 0.0);
	s->bar_shown = true;
}

/*
 * --base OLD: OLD must be a core of this hypervisor run, of the same memory
 * layout, taken at a dirty-log epoch that has not moved since: then every
 * page written after OLD's instant is in the log or its snapshot. Checked
 * before anything is paused or written; failures are PT_EHV (exit 1).
 */
static int base_check(struct snap *s, struct core *old, int *bfd, const struct precopy_range *pr,
		      u32 nr)
{
	struct pt_conn *c = s->c;
	char why[200];
	u64 boot, epoch;
	int r;

	*bfd = open(s->o->base, O_RDONLY);
	if (*bfd < 0) {
		snprintf(c->err, sizeof(c->err), "cannot read the base %s: %s", s->o->base,
			 strerror(errno));
		return PT_EUSAGE;
	}
	if (core_read(*bfd, old, why, sizeof(why))) {
		snprintf(c->err, sizeof(c->err), "%s cannot be a base: %s", s->o->base, why);
		return PT_EHV;
	}
	if (old->nranges != nr) {
		snprintf(c->err, sizeof(c->err),
			 "%s cannot be a base: it has %u memory ranges, the guest has %u now",
			 s->o->base, old->nranges, nr);
		return PT_EHV;
	}
	for (u32 i = 0; i < nr; i++) {
		if (old->ranges[i].gpa != pr[i].gpa || old->ranges[i].size != pr[i].size) {
			snprintf(c->err, sizeof(c->err),
				 "%s cannot be a base: its range %u (0x%" PRIx64 ", %" PRIu64
				 " bytes) differs from the guest's slot now",
				 s->o->base, i, old->ranges[i].gpa, old->ranges[i].size);
			return PT_EHV;
		}
		if (pr[i].log_mode == PROTO_DIRTY_OFF) {
			snprintf(c->err, sizeof(c->err),
				 "%s cannot be a base: slot %" PRIu64 " is not logging (dirty "
				 "stop ended the series); take a full snapshot",
				 s->o->base, pr[i].slot);
			return PT_EHV;
		}
	}
	if (!(old->log_flags & CORE_PT_EPOCH)) {
		snprintf(c->err, sizeof(c->err),
			 "%s cannot be a base: it records no dirty-log epoch", s->o->base);
		return PT_EHV;
	}
	r = pt_dirty_epoch(c, &boot, &epoch);
	if (r)
		return r;
	if (boot != old->log_id) {
		snprintf(c->err, sizeof(c->err),
			 "%s cannot be a base: the hypervisor restarted since it was taken; "
			 "take a full snapshot",
			 s->o->base);
		return PT_EHV;
	}
	if (epoch != old->log_epoch) {
		snprintf(
		    c->err, sizeof(c->err),
		    "%s cannot be a base: the dirty log moved since it was taken (epoch %" PRIu64
		    ", now %" PRIu64 "): another host took dirty pages out of it (dirty get "
		    "--clear, dirty clear) or logging was stopped or started; take a full "
		    "snapshot",
		    s->o->base, old->log_epoch, epoch);
		return PT_EHV;
	}
	return 0;
}

/* OLD's bytes of every range into the new file (then the changed pages over them). */
static int base_copy(struct snap *s, const struct core *old, int bfd)
{
	for (u32 i = 0; i < old->nranges; i++) {
		off_t in = (off_t)old->ranges[i].file_off, out = (off_t)s->core.ranges[i].file_off;
		u64 left = old->ranges[i].size;

		while (left) {
			ssize_t n = copy_file_range(bfd, &in, s->fd, &out, left, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				snprintf(s->c->err, sizeof(s->c->err),
					 "cannot copy the base into %s: %s", s->o->out,
					 n < 0 ? strerror(errno) : "the base is short");
				return PT_EUSAGE;
			}
			left -= (u64)n;
		}
	}
	return 0;
}

static int open_temp(struct snap *s, char **tmp)
{
	size_t n = strlen(s->o->out) + 16;

	*tmp = malloc(n);
	if (!*tmp)
		return -1;
	snprintf(*tmp, n, "%s.tmp.XXXXXX", s->o->out);
	s->fd = mkstemp(*tmp);
	if (s->fd < 0) {
		free(*tmp);
		*tmp = NULL;
		return -1;
	}
	return 0;
}

/* fsync the file, rename it over FILE, fsync the directory: all or nothing. */
static int finish_file(struct snap *s, const char *tmp)
{
	char *d = strdup(s->o->out);
	int dfd;

	if (!d)
		return -1;
	if (fchmod(s->fd, 0644) || fsync(s->fd) || close(s->fd)) {
		s->fd = -1;
		free(d);
		return -1;
	}
	s->fd = -1;
	if (rename(tmp, s->o->out)) {
		free(d);
		return -1;
	}
	dfd = open(dirname(d), O_RDONLY | O_DIRECTORY);
	free(d);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

/* What a copy-on-write snapshot did, for the output. */
struct cow_run {
	u64 budget; /* pages of hidden memory asked for */
	struct pt_cow_result res;
	bool resumed_users_pause; /* the guest was paused before: resumed after arming */
};

/*
 * --cow: PAUSE (unless the guest is paused already), logging started where
 * it is off, the vCPU state, COW_ARM (every page of memory write-protected
 * for the snapshot, TLBs flushed), RESUME at once; then every page of the
 * instant with COW_READ while the guest runs (a page the guest wrote comes
 * from the copy the hypervisor made before the write), COW_END. The core
 * is memory at the PAUSE. On a failure after the arm, COW_END frees the
 * hypervisor's budget (and the lease does, should ptctl die).
 */
static int cow_snapshot(struct snap *s, const struct pt_info *info, const struct precopy_range *pr,
			u32 nr, const struct precopy_sink *sink, struct precopy_stats *st,
			struct cow_run *cow)
{
	struct pt_conn *c = s->c;
	const struct snapshot_opts *o = s->o;
	double t_pause = 0;
	bool leased = false, armed = false, paused = info->paused;
	u64 tracked = 0, k;
	int r = 0;

	st->pages = 0;
	for (u32 i = 0; i < nr; i++)
		st->pages += pr[i].size / PAGE_SIZE;
	st->pass_total = st->pages;
	/* Default budget: 1/50 of the memory covered, at least 1 MiB. */
	cow->budget = o->cow_pages;
	if (!cow->budget)
		cow->budget = st->pages / 50 > 256 ? st->pages / 50 : 256;
	if (!info->paused) {
		r = pt_pause(c, o->lease_ms, &leased);
		st->paused_by_us = !r;
		paused = !r;
		t_pause = now_ms();
	}
	for (u32 i = 0; i < nr && !r; i++)
		if (pr[i].log_mode == PROTO_DIRTY_OFF)
			r = pt_dirty_start_slot(c, pr[i].slot, pt_best_dirty_mode(info->modes), &k);
	if (!r)
		r = snap_regs(s, c);
	if (!r) {
		r = pt_cow_arm(c, cow->budget, o->lease_ms, &tracked);
		armed = !r;
	}
	/* Armed: the guest runs from here on, whoever had paused it. */
	if (!r && st->paused_by_us) {
		r = pt_pause_end(c, leased, false);
		paused = r != 0;
	} else if (!r) {
		r = pt_simple(c, PROTO_CMD_RESUME);
		paused = r != 0;
		cow->resumed_users_pause = !r;
	}
	if (st->paused_by_us)
		st->downtime_ms = now_ms() - t_pause;
	if (!r && tracked < st->pages) {
		snprintf(c->err, sizeof(c->err),
			 "the hypervisor protected %" PRIu64 " pages, the core covers %" PRIu64,
			 tracked, st->pages);
		r = PT_EHV;
	}
	for (u32 i = 0; i < nr && !r; i++)
		r = precopy_copy_cow(c, pr[i].gpa, pr[i].size, sink, st);
	st->rounds = 1;
	if (armed) {
		char keep[sizeof(c->err)];
		int e;

		memcpy(keep, c->err, sizeof(keep));
		e = pt_cow_end(c, &cow->res);
		if (r)
			memcpy(c->err, keep, sizeof(keep));
		else if (e)
			r = e;
		else if (cow->res.unsent) {
			snprintf(c->err, sizeof(c->err),
				 "the hypervisor still held %" PRIu64
				 " pages of the instant at the "
				 "end",
				 cow->res.unsent);
			r = PT_EHV;
		}
	}
	if (r && paused && st->paused_by_us) {
		/* A failure while the guest is paused by this command: it must not stay so. */
		char keep[sizeof(c->err)];

		memcpy(keep, c->err, sizeof(keep));
		if (pt_simple(c, PROTO_CMD_RESUME))
			st->left_paused = true;
		memcpy(c->err, keep, sizeof(keep));
	}
	return r;
}

int snapshot_cmd(struct pt_conn *c, const struct snapshot_opts *o)
{
	struct pt_info info;
	struct pt_slot slots[PROTO_MAX_SLOTS];
	struct precopy_range pr[PROTO_MAX_SLOTS];
	struct precopy_stats st = {0};
	struct snap s = {.c = c, .o = o, .fd = -1, .st = &st};
	struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
	struct precopy_sink sink = {.ctx = &s,
				    .put = snap_put,
				    .at_pause = snap_regs,
				    .progress = snap_progress,
				    .cancel = &snap_cancel};
	char *tmp = NULL;
	struct core old = {0};
	struct cow_run cow = {0};
	u64 *bms[PROTO_MAX_SLOTS] = {0};
	int nslots, r, bfd = -1;
	u32 nr = 0;

	s.t0 = now_ms();
	s.tty = isatty(2);
	s.wire0 = c->wire_rx + c->wire_tx;
	if ((r = pt_get_info(c, &info)) || (r = pt_get_slots(c, slots, PROTO_MAX_SLOTS, &nslots)))
		goto fail_msg;
	/* Every slot that is memory (what dirty logging covers): RAM, ACPI, runtime, reserved. */
	for (int i = 0; i < nslots; i++) {
		if (slots[i].type != PROTO_SLOT_RAM && slots[i].type != PROTO_SLOT_RESERVED)
			continue;
		pr[nr] =
		    (struct precopy_range){slots[i].id, slots[i].gpa, slots[i].size, slots[i].mode};
		nr++;
	}
	if (!nr) {
		snprintf(c->err, sizeof(c->err), "the hypervisor reports no memory slot");
		r = PT_EHV;
		goto fail_msg;
	}
	s.core.nvcpus = (u32)info.vcpus;
	s.core.nranges = nr;
	s.core.regs = calloc(info.vcpus, sizeof(*s.core.regs));
	s.core.ranges = calloc(nr, sizeof(*s.core.ranges));
	if (!s.core.regs || !s.core.ranges) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		r = PT_ETRANSPORT;
		goto fail_msg;
	}
	for (u32 i = 0; i < nr; i++) {
		s.core.ranges[i].gpa = pr[i].gpa;
		s.core.ranges[i].size = pr[i].size;
		s.core.ranges[i].slot = pr[i].slot;
	}
	core_layout(&s.core);
	if (o->base && (r = base_check(&s, &old, &bfd, pr, nr)))
		goto fail_msg;
	if (open_temp(&s, &tmp) || ftruncate(s.fd, (off_t)s.core.file_size)) {
		fprintf(stderr, "ptctl: cannot write %s: %s\n", o->out, strerror(errno));
		if (tmp)
			unlink(tmp);
		free(tmp);
		if (s.fd >= 0)
			close(s.fd);
		core_free(&s.core);
		return PT_EUSAGE;
	}
	if (o->lease_ms && !info.paused && !(c->peer_caps & PROTO_CAP_LEASE))
		fprintf(stderr, "ptctl: snapshot: the hypervisor cannot end a pause on its own (no "
				"clock): if this ptctl dies while the guest is paused, `ptctl "
				"resume` it\n");
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	r = o->base ? base_copy(&s, &old, bfd) : 0;
	if (r) {
		/* the base could not be copied: nothing was paused */
	} else if (o->live) {
		struct precopy_params p = {.max_rounds = (u32)o->max_rounds,
					   .downtime_ms = o->downtime_ms,
					   .stay_paused = o->stay_paused,
					   .guest_was_paused = info.paused,
					   .mode = pt_best_dirty_mode(info.modes),
					   .lease_ms = o->lease_ms};

		r = precopy_run(c, pr, nr, &p, &sink, &st);
	} else if (o->cow) {
		r = cow_snapshot(&s, &info, pr, nr, &sink, &st, &cow);
	} else {
		/* Plain: pause, log from here on, the vCPU state, every page, resume. */
		double t_pause = 0;
		bool leased = false, ended = false;

		st.pages = 0;
		for (u32 i = 0; i < nr; i++)
			st.pages += pr[i].size / PAGE_SIZE;
		st.pass_total = st.pages;
		r = 0;
		if (!info.paused) {
			r = pt_pause(c, o->lease_ms, &leased);
			st.paused_by_us = !r;
			t_pause = now_ms();
		}
		if (o->base) {
			/* What changed since OLD: the log (and its snapshot) since then. */
			u64 total = 0;

			for (u32 i = 0; i < nr && !r; i++) {
				u64 npages = pr[i].size / PAGE_SIZE, nd;

				bms[i] = calloc((npages + 63) / 64 + 1, 8);
				r = bms[i]
					? pt_dirty_harvest(c, pr[i].slot, true, bms[i], npages, &nd)
					: PT_ETRANSPORT;
				total += nd;
			}
			if (!r)
				r = snap_regs(&s, c);
			st.pass = 1; /* pages over OLD's: zero pages are written too */
			st.pass_total = total;
			for (u32 i = 0; i < nr && !r; i++)
				r = precopy_copy_bitmap(c, pr[i].gpa, bms[i],
							pr[i].size / PAGE_SIZE, &sink, &st);
		} else {
			for (u32 i = 0; i < nr && !r; i++) {
				u64 k;

				if (pr[i].log_mode == PROTO_DIRTY_OFF)
					r = pt_dirty_start_slot(c, pr[i].slot,
								pt_best_dirty_mode(info.modes), &k);
			}
			if (!r)
				r = snap_regs(&s, c);
			for (u32 i = 0; i < nr && !r; i++)
				r = precopy_copy(c, pr[i].gpa, pr[i].size, &sink, &st);
		}
		st.rounds = 1;
		if (!r && st.paused_by_us) {
			/* Still paused (the lease held): resume, or keep it paused for good. */
			r = pt_pause_end(c, leased, o->stay_paused);
			ended = !r;
			st.left_paused = !r && o->stay_paused;
		}
		if (st.paused_by_us && !ended) {
			/* A failure after the pause: the guest must not stay paused. */
			char keep[sizeof(c->err)];

			memcpy(keep, c->err, sizeof(keep));
			if (pt_simple(c, PROTO_CMD_RESUME))
				st.left_paused = true;
			memcpy(c->err, keep, sizeof(keep));
		}
		if (st.paused_by_us)
			st.downtime_ms = now_ms() - t_pause;
	}
	if (s.bar_shown)
		fprintf(stderr, "\r%*s\r", 78, "");
	if (!r && core_write_headers(s.fd, &s.core)) {
		snprintf(c->err, sizeof(c->err), "cannot write %s: %s", o->out, strerror(errno));
		r = PT_EUSAGE;
	}
	if (!r && finish_file(&s, tmp)) {
		snprintf(c->err, sizeof(c->err), "cannot write %s: %s", o->out, strerror(errno));
		r = PT_EUSAGE;
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	if (r) {
		if (s.fd >= 0)
			close(s.fd);
		unlink(tmp);
		free(tmp);
		core_free(&s.core);
		goto fail_msg;
	}
	free(tmp);
	{
		u64 wire = c->wire_rx + c->wire_tx - s.wire0;
		double total = now_ms() - s.t0;
		const char *state = cow.resumed_users_pause
					? "paused before, resumed after arming "
					  "(--cow: the guest runs during the copy)"
				    : info.paused    ? "paused before, still paused"
				    : st.left_paused ? "left paused (--stay-paused)"
						     : "resumed";
		bool running = cow.resumed_users_pause || (!info.paused && !st.left_paused);

		if (o->json) {
			printf("{\"file\":");
			pt_json_str(o->out);
			printf(",\"pages\":%" PRIu64 ",\"pages_sent\":%" PRIu64
			       ",\"cow_pages\":%" PRIu64 ",\"wire_bytes\":%" PRIu64
			       ",\"rounds\":%u,\"downtime_ms\":%.1f"
			       ",\"total_ms\":%.1f,\"vcpus\":%u,\"mode\":\"%s\",\"guest\":\"%s\"",
			       st.pages, st.pages_sent, cow.res.copies, wire, st.rounds,
			       st.downtime_ms, total, s.core.nvcpus,
			       o->live	 ? "live"
			       : o->base ? "base"
			       : o->cow	 ? "cow"
					 : "plain",
			       running ? "running" : "paused");
			if (o->cow)
				printf(",\"cow_budget_pages\":%" PRIu64 ",\"cow_waits\":%" PRIu64
				       ",\"cow_max_used\":%" PRIu64 ",\"resumed_users_pause\":%s",
				       cow.budget, cow.res.waits, cow.res.max_used,
				       cow.resumed_users_pause ? "true" : "false");
			printf("}\n");
		} else {
			printf("snapshot %s: %" PRIu64 " pages in %u range(s), %u vCPU(s); %" PRIu64
			       " pages read in %u round(s), %" PRIu64
			       " bytes on the wire; guest paused %.1f ms of %.1f ms (%s)\n",
			       o->out, st.pages, nr, s.core.nvcpus, st.pages_sent, st.rounds, wire,
			       st.downtime_ms, total, state);
			if (o->cow)
				printf("copy-on-write: %" PRIu64
				       " page(s) copied before a guest write, budget %" PRIu64
				       " pages (%" PRIu64 " used at most), %" PRIu64
				       " wait(s) of a vCPU for room\n",
				       cow.res.copies, cow.budget, cow.res.max_used, cow.res.waits);
		}
	}
	core_free(&s.core);
	core_free(&old);
	if (bfd >= 0)
		close(bfd);
	for (u32 i = 0; i < nr; i++)
		free(bms[i]);
	return 0;
fail_msg:
	fprintf(stderr, "ptctl: snapshot: %s%s\n", c->err,
		st.left_paused ? " (the guest is left PAUSED: `ptctl resume`)" : "");
	core_free(&s.core);
	core_free(&old);
	if (bfd >= 0)
		close(bfd);
	for (u32 i = 0; i < nr; i++)
		free(bms[i]);
	return r;
}
