/* SPDX-License-Identifier: MIT */
/*
 * ptctl precopy --send: the pre-copy with the pages really crossing the management
 * line, run by the live snapshot's engine (precopy.h, shared with `ptctl snapshot
 * --live`), its page data counted and dropped. The engine's passes become the rounds
 * of struct research_precopy, so the output, CSV and plot are those of the simulated
 * link's (research.c): the link is now the line itself, its bandwidth measured.
 */
#include "research_send.h"

#include "precopy.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEND_MAX_PASSES 66 /* 1 full pass + up to 64 dirty rounds + the final copy */

struct send_ctx {
	double first[SEND_MAX_PASSES], last[SEND_MAX_PASSES];
	u64 total[SEND_MAX_PASSES]; /* pages the pass had to copy */
	u64 bytes;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The pages are on the host: a migration would send them on; here they are counted. */
static int send_put(void *ctx, u64 gpa, const u8 *data, u64 len)
{
	struct send_ctx *s = ctx;

	(void)gpa;
	(void)data;
	s->bytes += len;
	return 0;
}

static int send_at_pause(void *ctx, struct pt_conn *c)
{
	(void)ctx;
	(void)c;
	return 0;
}

/* After every reply: when each pass was first and last seen moving pages. */
static void send_progress(void *ctx, const struct precopy_stats *st)
{
	struct send_ctx *s = ctx;
	double t = now_s();

	if (st->pass >= SEND_MAX_PASSES)
		return;
	if (!s->first[st->pass])
		s->first[st->pass] = t;
	s->last[st->pass] = t;
	s->total[st->pass] = st->pass_total;
}

int research_precopy_send(struct pt_conn *c, const struct research_precopy_cfg *cfg,
			  volatile sig_atomic_t *cancel, struct research_precopy *out)
{
	struct pt_info info;
	struct pt_slot slots[PROTO_MAX_SLOTS];
	struct precopy_range pr[PROTO_MAX_SLOTS];
	struct precopy_stats st;
	struct send_ctx *s = calloc(1, sizeof(*s));
	struct precopy_sink sink = {.ctx = s,
				    .put = send_put,
				    .at_pause = send_at_pause,
				    .progress = send_progress,
				    .cancel = cancel};
	struct precopy_params p;
	double t0, t_end;
	u32 nr = 0, dirty_rounds, nrounds;
	int nslots, r;

	memset(out, 0, sizeof(*out));
	out->cfg = *cfg;
	out->sent = true;
	if (!s)
		return PT_ETRANSPORT;
	if (cfg->max_rounds < 1 || cfg->max_rounds > SEND_MAX_PASSES - 2) {
		fprintf(stderr, "ptctl: precopy --send: --max-rounds 1 to %d\n",
			SEND_MAX_PASSES - 2);
		free(s);
		return PT_EUSAGE;
	}
	r = pt_get_info(c, &info);
	if (!r)
		r = pt_get_slots(c, slots, PROTO_MAX_SLOTS, &nslots);
	if (r) {
		fprintf(stderr, "ptctl: %s\n", c->err);
		free(s);
		return r;
	}
	if (info.paused) {
		fprintf(stderr,
			"ptctl: the guest is paused; precopy runs it (ptctl resume first)\n");
		free(s);
		return PT_EUSAGE;
	}
	/* Every slot that is memory, as the live snapshot takes them. */
	for (int i = 0; i < nslots; i++)
		if (slots[i].type == PROTO_SLOT_RAM || slots[i].type == PROTO_SLOT_RESERVED)
			pr[nr++] = (struct precopy_range){slots[i].id, slots[i].gpa, slots[i].size,
							  slots[i].mode};
	if (!nr) {
		fprintf(stderr, "ptctl: the hypervisor reports no memory slot\n");
		free(s);
		return PT_EHV;
	}
	p = (struct precopy_params){.max_rounds = cfg->max_rounds - 1,
				    .downtime_ms = (u64)(cfg->downtime_s * 1e3 + 0.5),
				    .mode = pt_best_dirty_mode(info.modes)};
	t0 = now_s();
	r = precopy_run(c, pr, nr, &p, &sink, &st);
	t_end = now_s();
	/* The engine leaves the slots logging; the ones it started stop again. */
	for (u32 i = 0; i < nr; i++) {
		u64 k;
		int r2;

		if (pr[i].log_mode != PROTO_DIRTY_OFF)
			continue;
		r2 = pt_dirty_stop_slot(c, pr[i].slot, &k);
		if (r2 && !r)
			r = r2;
	}
	if (r) {
		fprintf(stderr, "ptctl: precopy --send: %s\n", c->err);
		free(s);
		return r;
	}
	/*
	 * Passes: 0 the full copy, 1 .. rounds - 2 the dirty rounds with the guest
	 * running, rounds - 1 the final copy with the guest paused. The harvest after
	 * pass k found round_dirty[k] pages: what pass k + 1 (or the final copy) sends.
	 */
	nrounds = st.rounds >= 2 ? st.rounds - 1 : st.rounds;
	dirty_rounds = nrounds ? nrounds - 1 : 0;
	out->rounds = calloc(nrounds ? nrounds : 1, sizeof(*out->rounds));
	if (!out->rounds) {
		free(s);
		return PT_ETRANSPORT;
	}
	out->t0 = t0;
	for (u32 k = 0; k < nrounds && k < SEND_MAX_PASSES; k++) {
		struct research_round *rd = &out->rounds[k];
		double start = k ? s->first[k] : t0, end = s->last[k];

		rd->round = k;
		rd->pages_sent = k ? s->total[k] : st.pages;
		if (!s->first[k] || end < start) /* a pass that moved no page */
			start = end = k ? s->last[k - 1] : t0;
		rd->start_s = start - t0;
		rd->run_start_s = rd->start_s;
		rd->duration_s = rd->window_s = end - start;
		rd->pages_dirtied = k < ARRAY_SIZE(st.round_dirty) ? st.round_dirty[k] : 0;
		rd->dirty_rate_pages_s =
		    rd->window_s > 0 ? (double)rd->pages_dirtied / rd->window_s : 0.0;
	}
	out->nrounds = nrounds;
	out->stop = dirty_rounds < p.max_rounds ? RESEARCH_CONVERGED : RESEARCH_MAX_ROUNDS;
	out->pages_remaining = st.last_round_pages;
	out->predicted_downtime_s = st.downtime_ms / 1e3;
	out->total_s = t_end - t0;
	out->pages_sent_total = st.pages_sent;
	out->bytes_sent = s->bytes;
	/* The line's speed for page data, over the copying (the pauses and harvests in). */
	out->cfg.bandwidth = out->total_s > 0 ? (u64)((double)s->bytes / out->total_s) : 0;
	free(s);
	return 0;
}
