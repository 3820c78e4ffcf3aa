/* SPDX-License-Identifier: MIT */
/*
 * Dirty rate, pre-copy rounds and writable working set from harvests of the exact
 * dirty log (research.h says what each one measures; docs/research.md how to read it).
 */
#include "research.h"

#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static u64 words_of(u64 npages)
{
	return (npages + 63) / 64;
}

/* Set bits of bm in [first, first + n). */
static u64 count_range(const u64 *bm, u64 first, u64 n)
{
	u64 c = 0, i = first, end = first + n;

	while (i < end && (i & 63))
		c += proto_test_bit(bm, i++);
	for (; i + 64 <= end; i += 64)
		c += (u64)__builtin_popcountll(bm[i / 64]);
	while (i < end)
		c += proto_test_bit(bm, i++);
	return c;
}

static u64 count_all(const u64 *bm, u64 npages)
{
	return count_range(bm, 0, npages);
}

static u64 *bitmap_new(u64 npages)
{
	return calloc(words_of(npages) + 1, sizeof(u64));
}

/*
 * *lag (if not NULL) is how long after the call the log was taken: a harvest over a
 * serial line takes a while before its snapshot, and a series keeps its pace by
 * starting the next harvest that much early.
 */
static int harvest_into(const struct research_source *src, u64 *bm, double *t, double *lag)
{
	double t0 = src->now(src->ctx);
	int r;

	memset(bm, 0, words_of(src->npages) * sizeof(u64));
	r = src->harvest(src->ctx, bm, t);
	if (!r && lag)
		*lag = *t > t0 ? *t - t0 : 0;
	return r;
}

/* Sleeps until the source's clock reads `until`; false when interrupted. */
static bool sleep_until(const struct research_source *src, double until)
{
	double left = until - src->now(src->ctx);

	return left <= 0 || src->sleep(src->ctx, left);
}

static int interrupted(void)
{
	fprintf(stderr, "ptctl: interrupted\n");
	return PT_ETRANSPORT;
}

double research_model_distinct(double w, double r, double t)
{
	if (w <= 0)
		return 0;
	return w * (1.0 - exp(-r * t / w));
}

/* --- dirty rate ----------------------------------------------------------------- */
int research_rate_run(const struct research_source *src, double seconds, u32 nsamples,
		      struct research_rate *out)
{
	u64 *bm = bitmap_new(src->npages);
	double t0, t1, tfirst, lag = 0;
	int r;

	memset(out, 0, sizeof(*out));
	out->nslots = src->nslots;
	out->samples = calloc(nsamples ? nsamples : 1, sizeof(*out->samples));
	if (!bm || !out->samples) {
		free(bm);
		return PT_ETRANSPORT;
	}
	/* The first harvest throws away what was written before: the window starts here. */
	r = harvest_into(src, bm, &t0, &lag);
	tfirst = out->t0 = t0;
	for (u32 i = 0; !r && i < nsamples; i++) {
		struct research_rate_sample *s = &out->samples[i];

		if (!sleep_until(src, tfirst + (i + 1) * seconds - lag)) {
			r = interrupted();
			break;
		}
		r = harvest_into(src, bm, &t1, &lag);
		if (r)
			break;
		s->slot_dirty = calloc(src->nslots ? src->nslots : 1, sizeof(u64));
		if (!s->slot_dirty) {
			r = PT_ETRANSPORT;
			break;
		}
		s->start_s = t0 - tfirst;
		s->seconds = t1 - t0;
		s->dirty_pages = count_all(bm, src->npages);
		for (u32 k = 0; k < src->nslots; k++)
			s->slot_dirty[k] =
			    count_range(bm, src->slots[k].first, src->slots[k].npages);
		out->nsamples++;
		t0 = t1;
	}
	free(bm);
	return r;
}

void research_rate_free(struct research_rate *r)
{
	for (u32 i = 0; i < r->nsamples; i++)
		free(r->samples[i].slot_dirty);
	free(r->samples);
	r->samples = NULL;
	r->nsamples = 0;
}

static double rate_of(u64 pages, double secs)
{
	return secs > 0 ? (double)pages / secs : 0.0;
}

static double mib_of(double pages)
{
	return pages * (double)PAGE_SIZE / (1024.0 * 1024.0);
}

static void rate_sample_json(FILE *f, const struct research_source *src,
			     const struct research_rate *r, const struct research_rate_sample *s,
			     bool series)
{
	double rate = rate_of(s->dirty_pages, s->seconds);

	fprintf(f, "{");
	if (series)
		fprintf(f, "\"start_s\":%.6f,", s->start_s);
	else
		fprintf(f, "\"t0_monotonic_s\":%.6f,", r->t0);
	fprintf(f,
		"\"dirty_pages\":%" PRIu64 ",\"seconds\":%.6f,\"rate_pages_s\":%.3f,"
		"\"rate_mib_s\":%.6f,\"slots\":[",
		s->dirty_pages, s->seconds, rate, mib_of(rate));
	for (u32 k = 0; k < src->nslots; k++)
		fprintf(f,
			"%s{\"id\":%" PRIu64 ",\"gpa\":%" PRIu64 ",\"pages\":%" PRIu64
			",\"dirty_pages\":%" PRIu64 ",\"rate_pages_s\":%.3f}",
			k ? "," : "", src->slots[k].id, src->slots[k].gpa, src->slots[k].npages,
			s->slot_dirty[k], rate_of(s->slot_dirty[k], s->seconds));
	fprintf(f, "]}");
}

void research_rate_print(FILE *f, const struct research_source *src, const struct research_rate *r,
			 bool json, bool series)
{
	if (json && !series) {
		if (r->nsamples)
			rate_sample_json(f, src, r, &r->samples[0], false);
		fprintf(f, "\n");
		return;
	}
	if (json) {
		fprintf(f, "{\"t0_monotonic_s\":%.6f,\"count\":%u,\"samples\":[", r->t0,
			r->nsamples);
		for (u32 i = 0; i < r->nsamples; i++) {
			fprintf(f, "%s", i ? "," : "");
			rate_sample_json(f, src, r, &r->samples[i], true);
		}
		fprintf(f, "]}\n");
		return;
	}
	if (series) {
		fprintf(f, "%9s  %8s  %11s  %11s  %9s\n", "START_S", "SECONDS", "DIRTY_PAGES",
			"PAGES/S", "MIB/S");
		for (u32 i = 0; i < r->nsamples; i++) {
			const struct research_rate_sample *s = &r->samples[i];
			double rate = rate_of(s->dirty_pages, s->seconds);

			fprintf(f, "%9.3f  %8.3f  %11" PRIu64 "  %11.1f  %9.3f\n", s->start_s,
				s->seconds, s->dirty_pages, rate, mib_of(rate));
		}
		return;
	}
	for (u32 i = 0; i < r->nsamples; i++) {
		const struct research_rate_sample *s = &r->samples[i];
		double rate = rate_of(s->dirty_pages, s->seconds);

		fprintf(f,
			"%" PRIu64 " distinct pages written in %.3f s: %.1f pages/s, %.3f MiB/s\n",
			s->dirty_pages, s->seconds, rate, mib_of(rate));
		for (u32 k = 0; k < src->nslots; k++)
			fprintf(f,
				"  slot %3" PRIu64 "  0x%016" PRIx64 "  %10" PRIu64
				" pages  %10" PRIu64 " dirty  %11.1f pages/s\n",
				src->slots[k].id, src->slots[k].gpa, src->slots[k].npages,
				s->slot_dirty[k], rate_of(s->slot_dirty[k], s->seconds));
	}
}

/* --- pre-copy ------------------------------------------------------------------- */
const char *research_stop_name(enum research_stop s)
{
	switch (s) {
	case RESEARCH_CONVERGED:
		return "converged";
	case RESEARCH_NOT_SHRINKING:
		return "not_shrinking";
	case RESEARCH_MAX_ROUNDS:
		return "max_rounds";
	}
	return "?";
}

static double send_seconds(u64 pages, u64 bandwidth)
{
	return (double)pages * (double)PAGE_SIZE / (double)bandwidth;
}

/*
 * One round: the guest runs for the round's simulated duration, then is paused and the
 * log harvested. The window is measured from the middle of the RESUME exchange to the
 * middle of the PAUSE one (when each command most likely ran).
 */
static int precopy_round(const struct research_source *src, u64 *bm, double duration,
			 double *run_start, double *window)
{
	double a, b, c, d, t;
	int r;

	a = src->now(src->ctx);
	r = src->resume(src->ctx);
	if (r)
		return r;
	b = src->now(src->ctx);
	if (!sleep_until(src, b + duration))
		return interrupted();
	c = src->now(src->ctx);
	r = src->pause(src->ctx);
	if (r)
		return r;
	d = src->now(src->ctx);
	*run_start = (a + b) / 2;
	*window = (c + d) / 2 - (a + b) / 2;
	return harvest_into(src, bm, &t, NULL);
}

int research_precopy_run(const struct research_source *src, const struct research_precopy_cfg *cfg,
			 struct research_precopy *out)
{
	u64 *bm = bitmap_new(src->npages);
	u64 sent = src->npages, rest = 0;
	double clock = 0;
	int r, r2;

	memset(out, 0, sizeof(*out));
	out->cfg = *cfg;
	if (!cfg->bandwidth || !cfg->max_rounds || cfg->downtime_s < 0 || cfg->min_shrink < 0 ||
	    cfg->min_shrink >= 1) {
		free(bm);
		return PT_EUSAGE;
	}
	out->rounds = calloc(cfg->max_rounds, sizeof(*out->rounds));
	if (!bm || !out->rounds) {
		free(bm);
		return PT_ETRANSPORT;
	}
	/* The migration starts with the guest paused and the log empty. */
	r = src->pause(src->ctx);
	if (!r)
		r = harvest_into(src, bm, &out->t0, NULL);
	while (!r) {
		struct research_round *rd = &out->rounds[out->nrounds];
		double downtime;

		rd->round = out->nrounds;
		rd->start_s = clock;
		rd->pages_sent = sent;
		rd->duration_s = send_seconds(sent, cfg->bandwidth);
		r = precopy_round(src, bm, rd->duration_s, &rd->run_start_s, &rd->window_s);
		if (r)
			break;
		rd->run_start_s -= out->t0;
		rd->pages_dirtied = count_all(bm, src->npages);
		rd->dirty_rate_pages_s = rate_of(rd->pages_dirtied, rd->window_s);
		out->nrounds++;
		clock += rd->duration_s;
		rest = rd->pages_dirtied;
		downtime = send_seconds(rest, cfg->bandwidth);
		if (downtime <= cfg->downtime_s) {
			out->stop = RESEARCH_CONVERGED;
			break;
		}
		if ((double)rest > (double)sent * (1.0 - cfg->min_shrink)) {
			out->stop = RESEARCH_NOT_SHRINKING;
			break;
		}
		if (out->nrounds >= cfg->max_rounds) {
			out->stop = RESEARCH_MAX_ROUNDS;
			break;
		}
		sent = rest;
	}
	/* Whatever happened, the guest goes on running. */
	r2 = src->resume(src->ctx);
	free(bm);
	if (r)
		return r;
	if (r2)
		return r2;
	out->pages_remaining = rest;
	out->predicted_downtime_s = send_seconds(rest, cfg->bandwidth);
	out->total_s = clock + out->predicted_downtime_s;
	out->pages_sent_total = rest;
	for (u32 i = 0; i < out->nrounds; i++)
		out->pages_sent_total += out->rounds[i].pages_sent;
	return 0;
}

void research_precopy_free(struct research_precopy *p)
{
	free(p->rounds);
	p->rounds = NULL;
	p->nrounds = 0;
}

void research_precopy_print(FILE *f, const struct research_precopy *p, bool json)
{
	if (json) {
		fprintf(f,
			"{\"bandwidth\":%" PRIu64 ",\"downtime_target_ms\":%.3f,\"max_rounds\":%u,"
			"\"converged\":%s,\"stop\":\"%s\",\"predicted_downtime_ms\":%.3f,"
			"\"total_s\":%.6f,\"pages_sent_total\":%" PRIu64
			",\"pages_remaining\":%" PRIu64 ",\"t0_monotonic_s\":%.6f,",
			p->cfg.bandwidth, p->cfg.downtime_s * 1e3, p->cfg.max_rounds,
			p->stop == RESEARCH_CONVERGED ? "true" : "false",
			research_stop_name(p->stop), p->predicted_downtime_s * 1e3, p->total_s,
			p->pages_sent_total, p->pages_remaining, p->t0);
		if (p->sent)
			fprintf(f, "\"send\":true,\"downtime_ms\":%.3f,\"bytes_sent\":%" PRIu64 ",",
				p->predicted_downtime_s * 1e3, p->bytes_sent);
		fprintf(f, "\"rounds\":[");
		for (u32 i = 0; i < p->nrounds; i++) {
			const struct research_round *rd = &p->rounds[i];

			fprintf(f,
				"%s{\"round\":%u,\"start_s\":%.6f,\"duration_s\":%.6f,"
				"\"window_s\":%.6f,\"run_start_s\":%.6f,\"pages_sent\":%" PRIu64
				",\"pages_dirtied\":%" PRIu64 ",\"dirty_rate_pages_s\":%.3f}",
				i ? "," : "", rd->round, rd->start_s, rd->duration_s, rd->window_s,
				rd->run_start_s, rd->pages_sent, rd->pages_dirtied,
				rd->dirty_rate_pages_s);
		}
		fprintf(f, "]}\n");
		return;
	}
	fprintf(f, "%s %.3f MiB/s, downtime target %.1f ms, at most %u rounds\n",
		p->sent ? "pages sent over the management line, measured" : "link",
		(double)p->cfg.bandwidth / (1024.0 * 1024.0), p->cfg.downtime_s * 1e3,
		p->cfg.max_rounds);
	fprintf(f, "%5s  %10s  %10s  %10s  %10s  %13s  %12s\n", "ROUND", "START_S", "DURATION_S",
		"WINDOW_S", "PAGES_SENT", "PAGES_DIRTIED", "DIRTY_PAGES/S");
	for (u32 i = 0; i < p->nrounds; i++) {
		const struct research_round *rd = &p->rounds[i];

		fprintf(f, "%5u  %10.4f  %10.4f  %10.4f  %10" PRIu64 "  %13" PRIu64 "  %12.1f\n",
			rd->round, rd->start_s, rd->duration_s, rd->window_s, rd->pages_sent,
			rd->pages_dirtied, rd->dirty_rate_pages_s);
	}
	if (p->stop == RESEARCH_CONVERGED)
		fprintf(f, "converged after %u round(s)", p->nrounds);
	else
		fprintf(f, "NOT converged after %u round(s) (%s)", p->nrounds,
			p->stop == RESEARCH_MAX_ROUNDS ? "round limit reached"
						       : "rounds stopped shrinking");
	fprintf(f,
		": %" PRIu64 " pages left for the stop-and-copy, %s downtime %.1f ms, "
		"total %.3f s, %" PRIu64 " pages sent\n",
		p->pages_remaining, p->sent ? "measured" : "predicted",
		p->predicted_downtime_s * 1e3, p->total_s, p->pages_sent_total);
}

void research_precopy_csv(FILE *f, const struct research_precopy *p)
{
	fprintf(f,
		"round,start_s,duration_s,window_s,pages_sent,pages_dirtied,dirty_rate_pages_s\n");
	for (u32 i = 0; i < p->nrounds; i++) {
		const struct research_round *rd = &p->rounds[i];

		fprintf(f, "%u,%.6f,%.6f,%.6f,%" PRIu64 ",%" PRIu64 ",%.3f\n", rd->round,
			rd->start_s, rd->duration_s, rd->window_s, rd->pages_sent,
			rd->pages_dirtied, rd->dirty_rate_pages_s);
	}
}

/* --- writable working set --------------------------------------------------------- */
int research_wws_run(const struct research_source *src, double seconds, double interval,
		     struct research_wws *out)
{
	u64 words = words_of(src->npages);
	u64 *cur = bitmap_new(src->npages), *prev = bitmap_new(src->npages);
	u64 *seen = bitmap_new(src->npages);
	u32 n = (u32)ceil(seconds / interval - 1e-9);
	double t0, t1, tfirst, lag = 0;
	int r;

	memset(out, 0, sizeof(*out));
	out->interval_s = interval;
	if (n < 1)
		n = 1;
	out->iv = calloc(n, sizeof(*out->iv));
	if (!cur || !prev || !seen || !out->iv) {
		r = PT_ETRANSPORT;
		goto done;
	}
	r = harvest_into(src, cur, &t0, &lag);
	tfirst = out->t0 = t0;
	for (u32 i = 0; !r && i < n; i++) {
		struct research_wws_interval *iv = &out->iv[i];
		u64 *tmp;

		if (!sleep_until(src, tfirst + (i + 1) * interval - lag)) {
			r = interrupted();
			break;
		}
		r = harvest_into(src, cur, &t1, &lag);
		if (r)
			break;
		iv->start_s = t0 - tfirst;
		iv->seconds = t1 - t0;
		for (u64 w = 0; w < words; w++) {
			iv->dirtied += (u64)__builtin_popcountll(cur[w]);
			iv->in_previous += (u64)__builtin_popcountll(cur[w] & prev[w]);
			iv->seen_before += (u64)__builtin_popcountll(cur[w] & seen[w]);
			seen[w] |= cur[w];
			iv->cumulative += (u64)__builtin_popcountll(seen[w]);
		}
		tmp = prev;
		prev = cur;
		cur = tmp;
		out->n++;
		t0 = t1;
	}
done:
	free(cur);
	free(prev);
	free(seen);
	return r;
}

void research_wws_free(struct research_wws *w)
{
	free(w->iv);
	w->iv = NULL;
	w->n = 0;
}

void research_wws_print(FILE *f, const struct research_wws *w, bool json)
{
	if (json) {
		fprintf(f,
			"{\"t0_monotonic_s\":%.6f,\"interval_s\":%.6f,\"count\":%u,"
			"\"distinct_pages\":%" PRIu64 ",\"intervals\":[",
			w->t0, w->interval_s, w->n, w->n ? w->iv[w->n - 1].cumulative : 0);
		for (u32 i = 0; i < w->n; i++) {
			const struct research_wws_interval *iv = &w->iv[i];

			fprintf(f,
				"%s{\"interval\":%u,\"start_s\":%.6f,\"seconds\":%.6f,"
				"\"dirtied\":%" PRIu64 ",\"in_previous\":%" PRIu64
				",\"seen_before\":%" PRIu64 ",\"new\":%" PRIu64
				",\"cumulative\":%" PRIu64 "}",
				i ? "," : "", i, iv->start_s, iv->seconds, iv->dirtied,
				iv->in_previous, iv->seen_before, iv->dirtied - iv->seen_before,
				iv->cumulative);
		}
		fprintf(f, "]}\n");
		return;
	}
	fprintf(f, "%8s  %9s  %8s  %9s  %11s  %11s  %9s  %10s\n", "INTERVAL", "START_S", "SECONDS",
		"DIRTIED", "IN_PREVIOUS", "SEEN_BEFORE", "NEW", "CUMULATIVE");
	for (u32 i = 0; i < w->n; i++) {
		const struct research_wws_interval *iv = &w->iv[i];

		fprintf(f,
			"%8u  %9.3f  %8.3f  %9" PRIu64 "  %11" PRIu64 "  %11" PRIu64 "  %9" PRIu64
			"  %10" PRIu64 "\n",
			i, iv->start_s, iv->seconds, iv->dirtied, iv->in_previous, iv->seen_before,
			iv->dirtied - iv->seen_before, iv->cumulative);
	}
}

void research_wws_csv(FILE *f, const struct research_wws *w)
{
	fprintf(f, "interval,start_s,seconds,dirtied,in_previous,seen_before,new,cumulative\n");
	for (u32 i = 0; i < w->n; i++) {
		const struct research_wws_interval *iv = &w->iv[i];

		fprintf(
		    f, "%u,%.6f,%.6f,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 "\n",
		    i, iv->start_s, iv->seconds, iv->dirtied, iv->in_previous, iv->seen_before,
		    iv->dirtied - iv->seen_before, iv->cumulative);
	}
}

/* --- numbers ------------------------------------------------------------------------- */
bool research_parse_bytes(const char *s, u64 *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return false;
	if (*end) {
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
		case 't':
		case 'T':
			shift = 40;
			break;
		default:
			return false;
		}
		if (end[1] || v > (~0ull >> shift))
			return false;
	}
	*out = (u64)v << shift;
	return true;
}

bool research_parse_seconds(const char *s, double max, double *out)
{
	char *end;
	double v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v > 0) || v > max)
		return false;
	*out = v;
	return true;
}
