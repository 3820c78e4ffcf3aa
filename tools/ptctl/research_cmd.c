/* SPDX-License-Identifier: MIT */
/*
 * ptctl dirty rate | precopy | wws: the research commands (docs/research.md) over the
 * management line. This file is their research_source: the hypervisor's slots, its
 * dirty log harvested with DIRTY_SNAP (clear) / DIRTY_READ / DIRTY_DONE, PAUSE and
 * RESUME; research.c does the rest.
 */
#include "research_cmd.h"

#include "ops.h"
#include "research.h"
#include "research_send.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct {
	const char *seconds, *interval, *bandwidth, *max_rounds, *downtime, *min_shrink;
	const char *csv, *plot;
	bool send;
} ropt;

bool research_option(int argc, char **argv, int *i)
{
	static const struct {
		const char *name;
		const char **val;
	} table[] = {
	    {"--seconds", &ropt.seconds},
	    {"--interval", &ropt.interval},
	    {"--bandwidth", &ropt.bandwidth},
	    {"--max-rounds", &ropt.max_rounds},
	    {"--downtime", &ropt.downtime},
	    {"--min-shrink", &ropt.min_shrink},
	    {"--csv", &ropt.csv},
	    {"--plot", &ropt.plot},
	};

	if (!strcmp(argv[*i], "--send")) {
		ropt.send = true;
		return true;
	}
	for (size_t k = 0; k < ARRAY_SIZE(table); k++) {
		if (strcmp(argv[*i], table[k].name))
			continue;
		/* A missing value reads as empty, which every parser then refuses by name. */
		*table[k].val = *i + 1 < argc ? argv[++*i] : "";
		return true;
	}
	return false;
}

bool research_is_command(const char *cmd, const char *sub, int npos)
{
	if (!strcmp(cmd, "dirty") && !strcmp(sub, "rate"))
		return npos == 2;
	return (!strcmp(cmd, "precopy") || !strcmp(cmd, "wws")) && npos == 1;
}

/* --- the source: the hypervisor over the line ------------------------------------ */
struct line_source {
	struct pt_conn *c;
	struct research_slot slots[PROTO_MAX_SLOTS];
	u32 nslots;
	u64 npages;
	bool started; /* logging was off: we started it and stop it at the end */
	bool paused;  /* we paused the guest */
	bool leased;  /* with a lease (pt_pause) */
};

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static int line_failed(struct pt_conn *c, int r)
{
	fprintf(stderr, "ptctl: %s\n", c->err);
	return r;
}

/* DIRTY_START or DIRTY_STOP of every slot that is memory. */
static int line_start_stop(struct pt_conn *c, bool start, u8 mode)
{
	u64 n;
	int r = pt_dirty_start_stop(c, start, true, 0, mode, &n);

	return r ? line_failed(c, r) : 0;
}

static int parse_mode(const char *s, u8 *mode)
{
	static const char *const names[] = {
	    [PROTO_DIRTY_WP] = "wp", [PROTO_DIRTY_DBIT] = "dbit", [PROTO_DIRTY_PML] = "pml"};

	for (u8 m = PROTO_DIRTY_WP; m <= PROTO_DIRTY_PML; m++)
		if (!strcmp(s, names[m])) {
			*mode = m;
			return 0;
		}
	return -1;
}

/*
 * The slots to harvest: the ones logging now; if none is, every memory slot, logging
 * started here in the given mode (or the cheapest the CPU has) and stopped at the end.
 */
static int line_open(struct line_source *ls, const char *mode_opt, bool *guest_paused)
{
	struct pt_slot s[PROTO_MAX_SLOTS];
	struct pt_info info;
	int n, r;

	r = pt_get_info(ls->c, &info);
	if (!r)
		r = pt_get_slots(ls->c, s, PROTO_MAX_SLOTS, &n);
	if (r)
		return line_failed(ls->c, r);
	*guest_paused = info.paused;
	for (int pass = 0; pass < 2; pass++) {
		ls->nslots = 0;
		ls->npages = 0;
		for (int i = 0; i < n; i++) {
			struct research_slot *rs;

			if (!s[i].mode)
				continue;
			if (s[i].size / PAGE_SIZE > (1ull << 40)) {
				fprintf(stderr,
					"ptctl: slot %" PRIu64 " of %" PRIu64
					" bytes is too large to harvest\n",
					s[i].id, s[i].size);
				return PT_ETRANSPORT;
			}
			rs = &ls->slots[ls->nslots++];
			rs->id = s[i].id;
			rs->gpa = s[i].gpa;
			rs->npages = s[i].size / PAGE_SIZE;
			rs->first = ls->npages;
			ls->npages += rs->npages;
		}
		if (ls->nslots) {
			if (mode_opt && !ls->started)
				fprintf(stderr,
					"ptctl: logging is already on: --mode %s ignored, "
					"the slots keep their mode\n",
					mode_opt);
			return 0;
		}
		if (pass)
			break;
		{
			u8 mode = pt_best_dirty_mode(info.modes);

			if (mode_opt && parse_mode(mode_opt, &mode)) {
				fprintf(stderr, "ptctl: --mode is wp, dbit or pml, not %s\n",
					mode_opt);
				return PT_EUSAGE;
			}
			r = line_start_stop(ls->c, true, mode);
			if (r)
				return r;
			ls->started = true;
		}
		r = pt_get_slots(ls->c, s, PROTO_MAX_SLOTS, &n);
		if (r)
			return line_failed(ls->c, r);
	}
	fprintf(stderr, "ptctl: no slot is logging, and none could be started\n");
	return PT_EHV;
}

/*
 * PAUSE with a lease where the hypervisor has leases: a ptctl that dies while the
 * guest is paused for a harvest leaves it paused for no longer than the lease.
 */
#define RESEARCH_PAUSE_LEASE_MS 30000

static int line_pause(void *ctx)
{
	struct line_source *ls = ctx;
	int r = pt_pause(ls->c, RESEARCH_PAUSE_LEASE_MS, &ls->leased);

	if (r)
		return line_failed(ls->c, r);
	ls->paused = true;
	return 0;
}

/* A leased pause must still hold (else the guest ran while it was counted as paused). */
static int line_resume(void *ctx)
{
	struct line_source *ls = ctx;
	int r = ls->leased ? pt_pause_end(ls->c, true, false) : pt_simple(ls->c, PROTO_CMD_RESUME);

	if (r)
		return line_failed(ls->c, r);
	ls->paused = false;
	return 0;
}

static double line_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool line_sleep(void *ctx, double s)
{
	double end = line_now(ctx) + s;

	while (!stop_requested) {
		double left = end - line_now(ctx);
		struct timespec ts;

		if (left <= 0)
			return true;
		if (left > 0.1)
			left = 0.1;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
	return false;
}

static int line_snap(struct line_source *ls, u32 k, struct pt_dirty_snap *snap)
{
	int r = pt_dirty_snap(ls->c, ls->slots[k].id, true, ls->slots[k].npages, snap);

	return r ? line_failed(ls->c, r) : 0;
}

static void clear_range(u64 *bm, u64 first, u64 n)
{
	for (u64 i = first; i < first + n; i++)
		bm[i / 64] &= ~(1ull << (i % 64));
}

/*
 * Snapshots (with clear) every slot back to back first, so that the slots' windows end
 * within milliseconds of each other, then reads and acknowledges each. The harvest's
 * time is the middle of the snapshots.
 */
static int line_harvest(void *ctx, u64 *bm, double *t)
{
	struct line_source *ls = ctx;
	struct pt_dirty_snap snap[PROTO_MAX_SLOTS];
	double t0 = line_now(ctx);
	int r;

	for (u32 k = 0; k < ls->nslots; k++) {
		r = line_snap(ls, k, &snap[k]);
		if (r)
			return r;
	}
	*t = (t0 + line_now(ctx)) / 2;
	for (u32 k = 0; k < ls->nslots; k++) {
		const struct research_slot *s = &ls->slots[k];
		int tries = 0, hv_err;

		for (;;) {
			hv_err = 0;
			r = pt_dirty_read(ls->c, s->id, &snap[k], bm, s->first, NULL, NULL,
					  &hv_err);
			if (r != PT_EHV || hv_err != PROTO_E_STALE)
				break;
			/* Bits are never lost: the newer snapshot holds ours. Take it. */
			if (++tries > 3) {
				fprintf(stderr,
					"ptctl: slot %" PRIu64 ": the snapshot kept changing "
					"under this reader (another client harvesting?)\n",
					s->id);
				return PT_EHV;
			}
			clear_range(bm, s->first, s->npages);
			r = line_snap(ls, k, &snap[k]);
			if (r)
				return r;
		}
		/* Acknowledge only what is decoded: until then the snapshot keeps the bits. */
		if (!r)
			r = pt_dirty_done(ls->c, s->id, snap[k].gen);
		if (r)
			return line_failed(ls->c, r);
	}
	return 0;
}

/* --- the commands --------------------------------------------------------------- */
static int write_csv(const char *path, void (*fn)(FILE *, const void *), const void *arg)
{
	FILE *f = fopen(path, "w");

	if (!f) {
		fprintf(stderr, "ptctl: cannot write %s: %s\n", path, strerror(errno));
		return PT_EUSAGE;
	}
	fn(f, arg);
	if (fclose(f)) {
		fprintf(stderr, "ptctl: cannot write %s: %s\n", path, strerror(errno));
		return PT_EUSAGE;
	}
	return 0;
}

static void csv_precopy(FILE *f, const void *p)
{
	research_precopy_csv(f, p);
}

static void csv_wws(FILE *f, const void *w)
{
	research_wws_csv(f, w);
}

static int bad(const char *fmt, const char *v)
{
	fprintf(stderr, "ptctl: ");
	fprintf(stderr, fmt, v);
	fprintf(stderr, "\n");
	return PT_EUSAGE;
}

/* Options that belong to other commands are refused, not ignored. */
static int only(const char *cmd, bool seconds, bool interval, bool count, bool precopy, bool out)
{
	if (ropt.seconds && !seconds)
		return bad("%s takes no --seconds", cmd);
	if (ropt.interval && !interval)
		return bad("%s takes no --interval", cmd);
	(void)count;
	if ((ropt.bandwidth || ropt.max_rounds || ropt.downtime || ropt.min_shrink) && !precopy)
		return bad("%s takes no --bandwidth, --max-rounds, --downtime or --min-shrink",
			   cmd);
	if (ropt.send && !precopy)
		return bad("%s takes no --send", cmd);
	if ((ropt.csv || ropt.plot) && !out)
		return bad("%s takes no --csv or --plot", cmd);
	if (ropt.plot && !research_plot_name_ok(ropt.plot))
		return bad(
		    "--plot %s: the file name must end in .svg, .png or .txt (and hold no quote)",
		    ropt.plot);
	return 0;
}

/* What precopy (simulated or --send) prints and writes once it has run. */
static int precopy_report(const struct research_precopy *p, bool json)
{
	int r = 0;

	research_precopy_print(stdout, p, json);
	if (ropt.csv)
		r = write_csv(ropt.csv, csv_precopy, p);
	if (!r && ropt.plot)
		r = research_plot_precopy(ropt.plot, p);
	return r;
}

/* Ctrl-C (or SIGTERM) ends a run cleanly: the guest is resumed, logging stopped if ours. */
struct stop_signals {
	struct sigaction old_int, old_term;
};

static void stop_signals_catch(struct stop_signals *ss)
{
	struct sigaction sa = {.sa_handler = on_stop_signal};

	stop_requested = 0;
	sigaction(SIGINT, &sa, &ss->old_int);
	sigaction(SIGTERM, &sa, &ss->old_term);
}

static void stop_signals_restore(const struct stop_signals *ss)
{
	sigaction(SIGINT, &ss->old_int, NULL);
	sigaction(SIGTERM, &ss->old_term, NULL);
}

static u64 parse_count(const char *s, bool *ok)
{
	char *end;
	unsigned long long v;

	*ok = false;
	if (!s || !*s || *s == '-' || *s == '+')
		return 0;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !v || v > 1000000)
		return 0;
	*ok = true;
	return v;
}

int research_main(struct pt_conn *c, const char *cmd, const struct research_args *a)
{
	struct line_source ls = {.c = c};
	struct research_source src = {
	    .ctx = &ls,
	    .harvest = line_harvest,
	    .pause = line_pause,
	    .resume = line_resume,
	    .now = line_now,
	    .sleep = line_sleep,
	};
	struct stop_signals ss;
	double seconds = 0, interval = 0;
	u64 count = 1;
	bool guest_paused, series = false;
	int r, r2 = 0;
	struct research_precopy_cfg pcfg = {
	    .max_rounds = 30, .downtime_s = 0.3, .min_shrink = 0.05};
	enum {
		RATE,
		PRECOPY,
		WWS
	} what = !strcmp(cmd, "precopy") ? PRECOPY
		 : !strcmp(cmd, "wws")	 ? WWS
					 : RATE;

	/* Check every option before touching the guest. */
	if (what == RATE) {
		bool ok;

		if ((r = only("dirty rate", true, true, true, false, false)))
			return r;
		series = a->count || ropt.interval;
		if (series && ropt.seconds)
			return bad("dirty rate takes --seconds S, or --interval T --count N%s", "");
		if (series) {
			if (!ropt.interval || !a->count)
				return bad("dirty rate needs both --interval T and --count N%s",
					   "");
			count = parse_count(a->count, &ok);
			if (!ok)
				return bad("bad --count %s (1 to 1000000)", a->count);
			if (!research_parse_seconds(ropt.interval, 86400, &seconds))
				return bad("bad --interval %s (seconds, > 0)", ropt.interval);
		} else {
			if (!ropt.seconds)
				return bad(
				    "dirty rate needs --seconds S (or --interval T --count N)%s",
				    "");
			if (!research_parse_seconds(ropt.seconds, 86400, &seconds))
				return bad("bad --seconds %s (seconds, > 0)", ropt.seconds);
		}
	} else if (what == WWS) {
		if ((r = only("wws", true, true, false, false, true)))
			return r;
		if (a->count)
			return bad("wws takes no --count%s", "");
		if (!ropt.seconds || !research_parse_seconds(ropt.seconds, 86400, &seconds))
			return bad("wws needs --seconds S (> 0), not %s",
				   ropt.seconds ? ropt.seconds : "none");
		interval = 1.0;
		if (ropt.interval && !research_parse_seconds(ropt.interval, seconds, &interval))
			return bad("bad --interval %s (seconds, > 0, at most --seconds)",
				   ropt.interval);
		if (seconds / interval > 1000000)
			return bad("wws: more than a million intervals%s", "");
	} else {
		if ((r = only("precopy", false, false, false, true, true)))
			return r;
		if (a->count)
			return bad("precopy takes no --count%s", "");
		if (ropt.send && (ropt.bandwidth || ropt.min_shrink || a->mode))
			return bad(
			    "precopy --send: the link is the management line itself (no "
			    "--bandwidth), the engine's rounds end by the downtime target or "
			    "--max-rounds (no --min-shrink), logging in the cheapest mode (no "
			    "--mode)%s",
			    "");
		if (!ropt.send &&
		    (!ropt.bandwidth || !research_parse_bytes(ropt.bandwidth, &pcfg.bandwidth) ||
		     !pcfg.bandwidth))
			return bad("precopy needs --bandwidth RATE (bytes/s > 0, K/M/G/T "
				   "suffixes), not %s",
				   ropt.bandwidth ? ropt.bandwidth : "none");
		if (ropt.max_rounds) {
			bool ok;
			u64 v = parse_count(ropt.max_rounds, &ok);

			if (!ok || v > 10000)
				return bad("bad --max-rounds %s (1 to 10000)", ropt.max_rounds);
			pcfg.max_rounds = (u32)v;
		}
		if (ropt.downtime) {
			double ms;

			if (!research_parse_seconds(ropt.downtime, 3.6e6, &ms))
				return bad("bad --downtime %s (milliseconds, > 0)", ropt.downtime);
			pcfg.downtime_s = ms / 1e3;
		}
		if (ropt.min_shrink) {
			double pct;

			if (!research_parse_seconds(ropt.min_shrink, 99, &pct))
				return bad("bad --min-shrink %s (percent, > 0 and < 100)",
					   ropt.min_shrink);
			pcfg.min_shrink = pct / 100.0;
		}
	}

	if (what == PRECOPY && ropt.send) {
		struct research_precopy p;

		stop_signals_catch(&ss);
		r = research_precopy_send(c, &pcfg, &stop_requested, &p);
		stop_signals_restore(&ss);
		if (!r)
			r = precopy_report(&p, a->json);
		research_precopy_free(&p);
		return r;
	}
	r = line_open(&ls, a->mode, &guest_paused);
	if (r)
		goto out;
	if (guest_paused && what == PRECOPY) {
		fprintf(stderr,
			"ptctl: the guest is paused; precopy runs it (ptctl resume first)\n");
		r = PT_EUSAGE;
		goto out;
	}
	if (guest_paused)
		fprintf(stderr, "ptctl: note: the guest is paused, it writes nothing\n");
	src.nslots = ls.nslots;
	src.slots = ls.slots;
	src.npages = ls.npages;

	stop_signals_catch(&ss);
	if (what == RATE) {
		struct research_rate rr;

		r = research_rate_run(&src, seconds, (u32)count, &rr);
		if (!r)
			research_rate_print(stdout, &src, &rr, a->json, series);
		research_rate_free(&rr);
	} else if (what == WWS) {
		struct research_wws w;

		r = research_wws_run(&src, seconds, interval, &w);
		if (!r) {
			research_wws_print(stdout, &w, a->json);
			if (ropt.csv)
				r = write_csv(ropt.csv, csv_wws, &w);
			if (!r && ropt.plot)
				r = research_plot_wws(ropt.plot, &w);
		}
		research_wws_free(&w);
	} else {
		struct research_precopy p;

		r = research_precopy_run(&src, &pcfg, &p);
		if (!r)
			r = precopy_report(&p, a->json);
		research_precopy_free(&p);
	}
	stop_signals_restore(&ss);
out:
	if (ls.paused)
		r2 = line_resume(&ls);
	if (ls.started && !r2)
		r2 = line_start_stop(c, false, 0);
	return r ? r : r2;
}
