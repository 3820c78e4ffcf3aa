/* SPDX-License-Identifier: MIT */
#include "precopy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One MEM_READ series at most this long: the chunk buffer (reads stop at 1024 pages anyway). */
#define PRECOPY_CHUNK (4ull << 20)

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

static int cancelled(struct pt_conn *c, const struct precopy_sink *s)
{
	if (s->cancel && *s->cancel) {
		snprintf(c->err, sizeof(c->err), "interrupted");
		return PT_ETRANSPORT;
	}
	return 0;
}

struct copy_ctx {
	const struct precopy_sink *s;
	struct precopy_stats *st;
	u64 base_done;
};

static void copy_progress(void *ctx, u64 done)
{
	struct copy_ctx *cc = ctx;

	cc->st->pass_done = cc->base_done + done / PAGE_SIZE;
	if (cc->s->progress)
		cc->s->progress(cc->s->ctx, cc->st);
}

/* Guest memory (MEM_READ) or a copy-on-write snapshot's instant (COW_READ). */
static int copy_range(struct pt_conn *c, bool cow, u64 gpa, u64 len, const struct precopy_sink *s,
		      struct precopy_stats *st)
{
	static u8 *buf;
	int r;

	if (!buf && !(buf = malloc(PRECOPY_CHUNK))) {
		snprintf(c->err, sizeof(c->err), "out of memory");
		return PT_ETRANSPORT;
	}
	while (len) {
		u64 n = len < PRECOPY_CHUNK ? len : PRECOPY_CHUNK;
		struct copy_ctx cc = {s, st, st->pass_done};

		if ((r = cancelled(c, s)))
			return r;
		r = cow ? pt_cow_read(c, gpa, n, buf, copy_progress, &cc)
			: pt_mem_read(c, gpa, n, buf, copy_progress, &cc);
		if (r)
			return r;
		r = s->put(s->ctx, gpa, buf, n);
		if (r)
			return r;
		st->pass_done = cc.base_done + n / PAGE_SIZE;
		st->pages_sent += n / PAGE_SIZE;
		gpa += n;
		len -= n;
	}
	return 0;
}

int precopy_copy(struct pt_conn *c, u64 gpa, u64 len, const struct precopy_sink *s,
		 struct precopy_stats *st)
{
	return copy_range(c, false, gpa, len, s, st);
}

int precopy_copy_cow(struct pt_conn *c, u64 gpa, u64 len, const struct precopy_sink *s,
		     struct precopy_stats *st)
{
	return copy_range(c, true, gpa, len, s, st);
}

int precopy_copy_bitmap(struct pt_conn *c, u64 gpa, const u64 *bm, u64 npages,
			const struct precopy_sink *s, struct precopy_stats *st)
{
	for (u64 i = 0; i < npages;) {
		u64 j;
		int r;

		if (!bm[i / 64] && !(i & 63)) {
			i += 64;
			continue;
		}
		if (!proto_test_bit(bm, i)) {
			i++;
			continue;
		}
		for (j = i + 1;
		     j < npages && proto_test_bit(bm, j) && (j - i) * PAGE_SIZE < PRECOPY_CHUNK;
		     j++)
			;
		r = precopy_copy(c, gpa + i * PAGE_SIZE, (j - i) * PAGE_SIZE, s, st);
		if (r)
			return r;
		i = j;
	}
	return 0;
}

static u64 popcount_bm(const u64 *bm, u64 npages)
{
	u64 n = 0;

	for (u64 w = 0; w < (npages + 63) / 64; w++)
		n += (u64)__builtin_popcountll(bm[w]);
	return n;
}

/* Harvests every range's log (clear) and ORs it into bms[i]; returns the pages set in all. */
static int harvest_all(struct pt_conn *c, const struct precopy_range *r, u32 n, u64 **bms, u64 *tmp,
		       struct precopy_stats *st, u64 *total)
{
	u64 sum = 0, found = 0;

	for (u32 i = 0; i < n; i++) {
		u64 npages = r[i].size / PAGE_SIZE, nd;
		int rc = pt_dirty_harvest(c, r[i].slot, true, tmp, npages, &nd);

		if (rc)
			return rc;
		for (u64 w = 0; w < (npages + 63) / 64; w++)
			bms[i][w] |= tmp[w];
		found += nd;
		sum += popcount_bm(bms[i], npages);
	}
	if (st->harvests < ARRAY_SIZE(st->round_dirty))
		st->round_dirty[st->harvests] = found;
	st->harvests++;
	*total = sum;
	return 0;
}

static int copy_all_bitmaps(struct pt_conn *c, const struct precopy_range *r, u32 n, u64 **bms,
			    const struct precopy_sink *s, struct precopy_stats *st, u64 total)
{
	st->pass++;
	st->pass_done = 0;
	st->pass_total = total;
	for (u32 i = 0; i < n; i++) {
		u64 npages = r[i].size / PAGE_SIZE;
		int rc = precopy_copy_bitmap(c, r[i].gpa, bms[i], npages, s, st);

		if (rc)
			return rc;
		memset(bms[i], 0, (npages + 63) / 64 * 8);
	}
	st->rounds++;
	return 0;
}

int precopy_run(struct pt_conn *c, const struct precopy_range *r, u32 n,
		const struct precopy_params *p, const struct precopy_sink *s,
		struct precopy_stats *st)
{
	u64 **bms = calloc(n ? n : 1, sizeof(*bms)), *tmp = NULL, maxpages = 0, total = 0;
	double t0, per_page_ms, t_pause = 0;
	bool leased = false, ended = false;
	int rc = 0, rr;

	memset(st, 0, sizeof(*st));
	for (u32 i = 0; i < n; i++) {
		u64 npages = r[i].size / PAGE_SIZE;

		st->pages += npages;
		if (npages > maxpages)
			maxpages = npages;
	}
	if (!bms || !(tmp = calloc((maxpages + 63) / 64 + 1, 8))) {
		rc = PT_ETRANSPORT;
		snprintf(c->err, sizeof(c->err), "out of memory");
		goto out;
	}
	for (u32 i = 0; i < n; i++) {
		bms[i] = calloc((r[i].size / PAGE_SIZE + 63) / 64 + 1, 8);
		if (!bms[i]) {
			rc = PT_ETRANSPORT;
			snprintf(c->err, sizeof(c->err), "out of memory");
			goto out;
		}
	}

	/*
	 * Log first, copy after: a page written after its slot's "started"
	 * reply (or after the harvest that empties an older log) is in a later
	 * harvest, so the full copy may see any version of it.
	 */
	for (u32 i = 0; i < n; i++) {
		u64 dummy;

		if (r[i].log_mode == PROTO_DIRTY_OFF)
			rc = pt_dirty_start_slot(c, r[i].slot, p->mode, &dummy);
		else
			rc = pt_dirty_harvest(c, r[i].slot, true, tmp, r[i].size / PAGE_SIZE,
					      &dummy);
		if (rc)
			goto out;
	}

	/* Pass 0: everything, the guest running. */
	st->pass_total = st->pages;
	t0 = now_ms();
	for (u32 i = 0; i < n && !rc; i++)
		rc = precopy_copy(c, r[i].gpa, r[i].size, s, st);
	if (rc)
		goto out;
	st->rounds = 1;
	per_page_ms = (now_ms() - t0) / (double)(st->pages ? st->pages : 1);

	/* Dirty rounds while the guest runs, until the rest fits the downtime. */
	for (;;) {
		u64 before;
		double t1;

		if ((rc = cancelled(c, s)) || (rc = harvest_all(c, r, n, bms, tmp, st, &total)))
			goto out;
		if ((double)total * per_page_ms <= (double)p->downtime_ms ||
		    st->rounds - 1 >= p->max_rounds || p->guest_was_paused)
			break;
		before = st->pages_sent;
		t1 = now_ms();
		if ((rc = copy_all_bitmaps(c, r, n, bms, s, st, total)))
			goto out;
		if (st->pages_sent > before)
			per_page_ms = (now_ms() - t1) / (double)(st->pages_sent - before);
	}

	/* Stop and copy: the pages dirtied since the last harvest, then the vCPU state. */
	if (!p->guest_was_paused) {
		if ((rc = pt_pause(c, p->lease_ms, &leased)))
			goto out;
		st->paused_by_us = true;
		t_pause = now_ms();
	}
	if ((rc = harvest_all(c, r, n, bms, tmp, st, &total)))
		goto out;
	{
		u64 before = st->pages_sent;

		if ((rc = copy_all_bitmaps(c, r, n, bms, s, st, total)))
			goto out;
		st->last_round_pages = st->pages_sent - before;
	}
	rc = s->at_pause(s->ctx, c);
	if (!rc && st->paused_by_us) {
		/* Still paused (the lease held): resume, or keep it paused for good. */
		rc = pt_pause_end(c, leased, p->stay_paused);
		ended = !rc;
		st->left_paused = !rc && p->stay_paused;
	}
out:
	if (st->paused_by_us && !ended) {
		/* A failure after the pause: the guest must not stay paused. */
		char keep[sizeof(c->err)];

		memcpy(keep, c->err, sizeof(keep));
		rr = pt_simple(c, PROTO_CMD_RESUME);
		memcpy(c->err, keep, sizeof(keep));
		if (rr)
			st->left_paused = true;
	}
	if (st->paused_by_us)
		st->downtime_ms = now_ms() - t_pause;
	for (u32 i = 0; bms && i < n; i++)
		free(bms[i]);
	free(bms);
	free(tmp);
	return rc;
}
