/* SPDX-License-Identifier: MIT */
/*
 * Migration-convergence research on top of the exact dirty log (docs/research.md):
 * the dirty rate of a live guest, simulated pre-copy rounds over a link of a given
 * bandwidth, and the writable working set per interval (Clark et al., "Live Migration
 * of Virtual Machines", NSDI 2005).
 *
 * The logic here only sees a struct research_source: a harvest (the pages dirtied since
 * the previous one, with the time it was taken), pause/resume of the guest and a clock.
 * ptctl gives it the hypervisor over the management line (research_cmd.c); the host
 * test gives it a simulated guest with a known writer (tests/research/).
 */
#ifndef PT_PTCTL_RESEARCH_H
#define PT_PTCTL_RESEARCH_H

#include <pt/types.h>

#include <stdbool.h>
#include <stdio.h>

/* One logged slot; its pages are bits [first, first + npages) of a harvest bitmap. */
struct research_slot {
	u64 id, gpa, npages;
	u64 first;
};

struct research_source {
	void *ctx;
	u32 nslots;
	const struct research_slot *slots;
	u64 npages; /* sum of the slots' pages: the bits of a harvest bitmap */
	/*
	 * Takes the log: ORs into bm (npages bits, caller-zeroed) every page written since
	 * the previous harvest, and clears the log, so that the next harvest has the pages
	 * written after this one. *t is when the log was taken (the source's clock).
	 * Returns 0 or a ptctl status (enum pt_status); the source printed why.
	 */
	int (*harvest)(void *ctx, u64 *bm, double *t);
	int (*pause)(void *ctx);
	int (*resume)(void *ctx);
	double (*now)(void *ctx);
	/* Sleeps up to s seconds; false when it was interrupted (the user asked to stop). */
	bool (*sleep)(void *ctx, double s);
};

/* --- dirty rate ----------------------------------------------------------------- */
struct research_rate_sample {
	double start_s;	 /* from the first harvest */
	double seconds;	 /* between the two harvests */
	u64 dirty_pages; /* distinct pages written in between */
	u64 *slot_dirty; /* per slot, nslots entries */
};

struct research_rate {
	double t0; /* the first harvest, on the source's clock (ptctl: CLOCK_MONOTONIC) */
	u32 nslots;
	u32 nsamples;
	struct research_rate_sample *samples;
};

/* nsamples intervals of `seconds` each, back to back (one harvest ends one and starts the next). */
int research_rate_run(const struct research_source *src, double seconds, u32 nsamples,
		      struct research_rate *out);
void research_rate_free(struct research_rate *r);
void research_rate_print(FILE *f, const struct research_source *src, const struct research_rate *r,
			 bool json, bool series);

/* --- pre-copy ------------------------------------------------------------------- */
struct research_precopy_cfg {
	u64 bandwidth;	   /* bytes per second of the simulated link */
	u32 max_rounds;	   /* rounds before giving up (round 0 included) */
	double downtime_s; /* the downtime target: the last copy, guest stopped */
	double min_shrink; /* a round that shrinks the rest by less than this fraction ends it */
};

struct research_round {
	u32 round;
	double start_s;	    /* simulated: the sum of the rounds before */
	double duration_s;  /* pages_sent * 4 KiB / bandwidth */
	double window_s;    /* how long the guest really ran during the round */
	double run_start_s; /* when it started to run, from the first harvest (t0) */
	u64 pages_sent;
	u64 pages_dirtied;	   /* distinct pages written during the round: the next round's */
	double dirty_rate_pages_s; /* pages_dirtied / window_s */
};

enum research_stop {
	RESEARCH_CONVERGED,	/* the rest fits the downtime target */
	RESEARCH_NOT_SHRINKING, /* a round shrank the rest by less than min_shrink */
	RESEARCH_MAX_ROUNDS,	/* max_rounds rounds and the rest still does not fit */
};

struct research_precopy {
	struct research_precopy_cfg cfg;
	double t0; /* the first harvest, on the source's clock */
	u32 nrounds;
	struct research_round *rounds;
	enum research_stop stop;
	u64 pages_remaining; /* for the final stop-and-copy */
	double predicted_downtime_s;
	double total_s;	      /* every round plus the final copy */
	u64 pages_sent_total; /* every round plus the final copy */
	/* --send (research_send.c): the pages crossed the line; predicted_downtime_s is
	 * the measured pause, cfg.bandwidth the line's measured page-data rate */
	bool sent;
	u64 bytes_sent;
};

/*
 * Round 0 sends every page of the logged slots; round k+1 sends what was written while
 * round k was sent. The guest runs only during a round's simulated duration: it is
 * paused while the log is harvested (a harvest over a serial line takes far longer
 * than a round over a fast link), and left running at the end, also after an error.
 */
int research_precopy_run(const struct research_source *src, const struct research_precopy_cfg *cfg,
			 struct research_precopy *out);
void research_precopy_free(struct research_precopy *p);
const char *research_stop_name(enum research_stop s);
void research_precopy_print(FILE *f, const struct research_precopy *p, bool json);
void research_precopy_csv(FILE *f, const struct research_precopy *p);

/* --- writable working set --------------------------------------------------------- */
struct research_wws_interval {
	double start_s, seconds;
	u64 dirtied;	 /* distinct pages written in the interval */
	u64 in_previous; /* of them, also written in the interval just before */
	u64 seen_before; /* of them, written in any earlier interval */
	u64 cumulative;	 /* distinct pages written since the start */
};

struct research_wws {
	double t0; /* the first harvest, on the source's clock */
	double interval_s;
	u32 n;
	struct research_wws_interval *iv;
};

int research_wws_run(const struct research_source *src, double seconds, double interval,
		     struct research_wws *out);
void research_wws_free(struct research_wws *w);
void research_wws_print(FILE *f, const struct research_wws *w, bool json);
void research_wws_csv(FILE *f, const struct research_wws *w);

/* --- numbers, plots ----------------------------------------------------------------- */
/* Bytes (per second): decimal or 0x hex with an optional K, M, G, T binary suffix. */
bool research_parse_bytes(const char *s, u64 *out);
/* Seconds: a positive decimal number ("0.5", "10") no larger than max. */
bool research_parse_seconds(const char *s, double max, double *out);

/* A plot file name ends in .svg, .png or .txt (text rendering). */
bool research_plot_name_ok(const char *path);
/*
 * Draw with gnuplot (the program in $PTCTL_GNUPLOT, default "gnuplot"): pages per round
 * (sent and dirtied) against time, or the WWS intervals. 0, or a message on stderr and
 * PT_EUSAGE when gnuplot is missing or fails.
 */
int research_plot_precopy(const char *path, const struct research_precopy *p);
int research_plot_wws(const char *path, const struct research_wws *w);

/* The expected distinct pages after t seconds of a writer at rate r (pages/s) storing to
 * uniformly random pages of a set of w: w (1 - exp(-r t / w)). */
double research_model_distinct(double w, double r, double t);

#endif /* PT_PTCTL_RESEARCH_H */
