/* SPDX-License-Identifier: MIT */
/*
 * Host test of the research commands' logic (tools/ptctl/research.c, research_plot.c):
 * dirty rate, pre-copy rounds and the writable working set, on a simulated guest whose
 * writer stores at a known rate R to uniformly random pages of a set of W pages, on a
 * simulated clock. The figures must follow W (1 - exp(-R t / W)); a link slower than
 * the writer must not converge and a fast one must; the guest must be paused for every
 * pre-copy harvest and running at the end, also after an error. ASan+UBSan.
 */
#define _GNU_SOURCE
#include "tools/ptctl/client.h"
#include "tools/ptctl/research.h"
#include "tests/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- the simulated guest ------------------------------------------------------------ */
#define FAKE_SLOTS  3
#define FAKE_MAX_IV 8

struct fake {
	struct research_slot slots[FAKE_SLOTS];
	u64 npages;
	u64 *log;
	double clock;
	bool paused;
	/* the writer: rate stores/s to random pages of [wbase, wbase + wpages) */
	double rate, carry;
	u64 wbase, wpages, rng, stores;
	/* or a script: after the log was taken i + 1 times, it writes script[i] */
	int taken;
	int script_len[FAKE_MAX_IV];
	u64 script[FAKE_MAX_IV][16];
	/* the line: a harvest costs harvest_s, PAUSE and RESUME rtt_s each */
	double harvest_s, rtt_s;
	int harvests, harvests_running, fail_at_harvest, interrupt_at_sleep, sleeps;
	u64 truth_slot[FAKE_SLOTS]; /* per slot, what the last harvest took */
};

static u64 xorshift(u64 *s)
{
	u64 x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* The guest runs for dt seconds of the clock (if not paused). */
static void fake_run(struct fake *f, double dt)
{
	if (!f->paused && f->rate > 0) {
		double want = f->carry + f->rate * dt;
		u64 n = (u64)want;

		f->carry = want - (double)n;
		for (u64 i = 0; i < n; i++)
			proto_set_bit(f->log, f->wbase + xorshift(&f->rng) % f->wpages);
		f->stores += n;
	}
	if (!f->paused && f->taken >= 1 && f->taken <= FAKE_MAX_IV)
		for (int i = 0; i < f->script_len[f->taken - 1]; i++)
			proto_set_bit(f->log, f->script[f->taken - 1][i]);
	f->clock += dt;
}

static int fake_harvest(void *ctx, u64 *bm, double *t)
{
	struct fake *f = ctx;
	u64 words = (f->npages + 63) / 64;

	if (++f->harvests == f->fail_at_harvest)
		return PT_ETRANSPORT;
	if (!f->paused)
		f->harvests_running++;
	fake_run(f, f->harvest_s / 2);
	*t = f->clock;
	for (int k = 0; k < FAKE_SLOTS; k++) {
		f->truth_slot[k] = 0;
		for (u64 i = 0; i < f->slots[k].npages; i++)
			f->truth_slot[k] += proto_test_bit(f->log, f->slots[k].first + i);
	}
	for (u64 w = 0; w < words; w++)
		bm[w] |= f->log[w];
	memset(f->log, 0, words * 8);
	f->taken++;
	fake_run(f, f->harvest_s / 2);
	return 0;
}

static int fake_pause(void *ctx)
{
	struct fake *f = ctx;

	fake_run(f, f->rtt_s / 2);
	f->paused = true;
	fake_run(f, f->rtt_s / 2);
	return 0;
}

static int fake_resume(void *ctx)
{
	struct fake *f = ctx;

	fake_run(f, f->rtt_s / 2);
	f->paused = false;
	fake_run(f, f->rtt_s / 2);
	return 0;
}

static double fake_now(void *ctx)
{
	return ((struct fake *)ctx)->clock;
}

static bool fake_sleep(void *ctx, double s)
{
	struct fake *f = ctx;

	if (++f->sleeps == f->interrupt_at_sleep)
		return false;
	fake_run(f, s);
	return true;
}

/* Three slots of odd sizes (no slot starts on a 64-page boundary but the first). */
static void fake_init(struct fake *f, struct research_source *src, u64 slot1_pages)
{
	static const u64 sizes[FAKE_SLOTS] = {159, 0, 7001};

	memset(f, 0, sizeof(*f));
	for (int k = 0; k < FAKE_SLOTS; k++) {
		f->slots[k].id = (u64)k * 3 + 1;
		f->slots[k].gpa = 0x100000ull * (u64)(k + 1);
		f->slots[k].npages = k == 1 ? slot1_pages : sizes[k];
		f->slots[k].first = f->npages;
		f->npages += f->slots[k].npages;
	}
	f->log = calloc((f->npages + 63) / 64 + 1, 8);
	f->rng = 0x9e3779b97f4a7c15ull;
	*src = (struct research_source){
	    .ctx = f,
	    .nslots = FAKE_SLOTS,
	    .slots = f->slots,
	    .npages = f->npages,
	    .harvest = fake_harvest,
	    .pause = fake_pause,
	    .resume = fake_resume,
	    .now = fake_now,
	    .sleep = fake_sleep,
	};
}

static void fake_free(struct fake *f)
{
	free(f->log);
}

/* |measured - expected| within 3 standard deviations of the random count plus 1%. */
static bool near_model(double measured, double expected)
{
	return fabs(measured - expected) <= 3.0 * sqrt(expected) + 0.01 * expected + 1.0;
}

/* --- dirty rate ------------------------------------------------------------------- */
static void test_rate_model(void)
{
	struct fake f;
	struct research_source src;
	struct research_rate r;
	const double w = 20000, rate = 5000, secs = 2;

	fake_init(&f, &src, 100003);
	f.rate = rate;
	f.wbase = 100; /* straddles slots 0 and 1 */
	f.wpages = (u64)w;
	f.harvest_s = 0.01;
	CHECK(research_rate_run(&src, secs, 1, &r) == 0);
	CHECK(r.nsamples == 1);
	if (r.nsamples == 1) {
		const struct research_rate_sample *s = &r.samples[0];

		CHECK(fabs(s->seconds - secs) < 1e-9);
		CHECK(near_model((double)s->dirty_pages, research_model_distinct(w, rate, secs)));
		printf("# rate: %llu distinct pages, model %.0f\n",
		       (unsigned long long)s->dirty_pages, research_model_distinct(w, rate, secs));
		/* The breakdown: exactly what the fake had in each slot. */
		for (int k = 0; k < FAKE_SLOTS; k++)
			CHECK(s->slot_dirty[k] == f.truth_slot[k]);
		CHECK(s->slot_dirty[0] + s->slot_dirty[1] + s->slot_dirty[2] == s->dirty_pages);
		CHECK(s->slot_dirty[0] > 0 && s->slot_dirty[1] > 0 && s->slot_dirty[2] == 0);
	}
	research_rate_free(&r);
	fake_free(&f);
}

static void test_rate_series(void)
{
	struct fake f;
	struct research_source src;
	struct research_rate r;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	fake_init(&f, &src, 5000);
	f.rate = 1000;
	f.wbase = 159 + 10;
	f.wpages = 1000;
	f.harvest_s = 0.05; /* a slow line: the series keeps its pace all the same */
	CHECK(research_rate_run(&src, 0.5, 4, &r) == 0);
	CHECK(r.nsamples == 4);
	for (u32 i = 0; i < r.nsamples; i++) {
		CHECK(fabs(r.samples[i].start_s - 0.5 * i) < 1e-6);
		CHECK(fabs(r.samples[i].seconds - 0.5) < 1e-6);
		CHECK(near_model((double)r.samples[i].dirty_pages,
				 research_model_distinct(1000, 1000, 0.5)));
	}
	out = open_memstream(&buf, &len);
	research_rate_print(out, &src, &r, true, true);
	fclose(out);
	CHECK(strstr(buf, ",\"count\":4,\"samples\":[{\"start_s\":0.000000,\"dirty_pages\":"));
	CHECK(!strncmp(buf, "{\"t0_monotonic_s\":", 18));
	CHECK(strstr(buf, "\"slots\":[{\"id\":1,"));
	free(buf);
	buf = NULL;
	out = open_memstream(&buf, &len);
	research_rate_print(out, &src, &r, true, false);
	fclose(out);
	CHECK(!strncmp(buf, "{\"t0_monotonic_s\":", 18) && strstr(buf, ",\"dirty_pages\":") &&
	      strstr(buf, "\"rate_pages_s\":"));
	free(buf);
	research_rate_free(&r);
	fake_free(&f);
}

static void test_rate_errors(void)
{
	struct fake f;
	struct research_source src;
	struct research_rate r;

	fake_init(&f, &src, 1000);
	f.fail_at_harvest = 2;
	CHECK(research_rate_run(&src, 1, 3, &r) == PT_ETRANSPORT);
	CHECK(r.nsamples == 0);
	research_rate_free(&r);
	fake_free(&f);

	fake_init(&f, &src, 1000);
	f.interrupt_at_sleep = 2;
	CHECK(research_rate_run(&src, 1, 3, &r) == PT_ETRANSPORT);
	CHECK(r.nsamples == 1);
	research_rate_free(&r);
	fake_free(&f);
}

/* --- pre-copy ---------------------------------------------------------------------- */
/* Each round's dirtied pages against the model for the time the guest really ran. */
static void check_rounds_model(const struct research_precopy *p, double w, double rate)
{
	for (u32 i = 0; i < p->nrounds; i++) {
		const struct research_round *rd = &p->rounds[i];
		double model = research_model_distinct(w, rate, rd->window_s);

		printf("# round %u: sent %llu, %.4f s (ran %.4f s), dirtied %llu, model %.1f\n", i,
		       (unsigned long long)rd->pages_sent, rd->duration_s, rd->window_s,
		       (unsigned long long)rd->pages_dirtied, model);
		CHECK(near_model((double)rd->pages_dirtied, model));
		CHECK(rd->round == i);
		if (i)
			CHECK(rd->pages_sent == p->rounds[i - 1].pages_dirtied);
		if (i)
			CHECK(fabs(rd->start_s - p->rounds[i - 1].start_s -
				   p->rounds[i - 1].duration_s) < 1e-9);
		/* The guest ran after the first harvest, each round after the one before. */
		CHECK(rd->run_start_s > 0);
		if (i)
			CHECK(rd->run_start_s >=
			      p->rounds[i - 1].run_start_s + p->rounds[i - 1].window_s);
		CHECK(fabs(rd->duration_s -
			   (double)rd->pages_sent * 4096.0 / (double)p->cfg.bandwidth) < 1e-9);
	}
}

static void test_precopy_fast_link(void)
{
	struct fake f;
	struct research_source src;
	struct research_precopy p;
	struct research_precopy_cfg cfg = {
	    .bandwidth = 16ull << 20, .max_rounds = 30, .downtime_s = 0.010, .min_shrink = 0.05};

	fake_init(&f, &src, 100000 - 159 - 7001);
	f.rate = 2000;
	f.wbase = 300;
	f.wpages = 4096;
	f.harvest_s = 0.4; /* far longer than the late rounds: the guest must be paused */
	f.rtt_s = 0.0005;
	CHECK(research_precopy_run(&src, &cfg, &p) == 0);
	CHECK(p.stop == RESEARCH_CONVERGED);
	CHECK(p.nrounds >= 4 && p.nrounds <= 10);
	CHECK(p.rounds[0].pages_sent == f.npages);
	check_rounds_model(&p, 4096, 2000);
	CHECK(f.harvests_running == 0);
	CHECK(!f.paused);
	CHECK(p.pages_remaining == p.rounds[p.nrounds - 1].pages_dirtied);
	CHECK(p.predicted_downtime_s <= cfg.downtime_s);
	CHECK(fabs(p.predicted_downtime_s - (double)p.pages_remaining * 4096.0 / (16 << 20)) <
	      1e-12);
	{
		u64 sum = p.pages_remaining;
		double t = p.predicted_downtime_s;

		for (u32 i = 0; i < p.nrounds; i++) {
			sum += p.rounds[i].pages_sent;
			t += p.rounds[i].duration_s;
		}
		CHECK(sum == p.pages_sent_total);
		CHECK(fabs(t - p.total_s) < 1e-9);
	}
	research_precopy_free(&p);
	fake_free(&f);
}

/* A writer faster than the link: rounds settle near the fixed point and stop shrinking. */
static void test_precopy_slow_link(void)
{
	struct fake f;
	struct research_source src;
	struct research_precopy p;
	struct research_precopy_cfg cfg = {
	    .bandwidth = 2ull << 20, .max_rounds = 30, .downtime_s = 0.3, .min_shrink = 0.05};

	fake_init(&f, &src, 20000);
	f.rate = 2000; /* 2000 pages/s against a link of 512 pages/s */
	f.wbase = 1000;
	f.wpages = 4096;
	f.rtt_s = 0.002;
	CHECK(research_precopy_run(&src, &cfg, &p) == 0);
	CHECK(p.stop == RESEARCH_NOT_SHRINKING);
	CHECK(p.nrounds >= 2 && p.nrounds < 30);
	check_rounds_model(&p, 4096, 2000);
	CHECK(p.pages_remaining > 3000);
	CHECK(p.predicted_downtime_s > cfg.downtime_s);
	CHECK(!f.paused && f.harvests_running == 0);
	research_precopy_free(&p);
	fake_free(&f);
}

static void test_precopy_limits(void)
{
	struct fake f;
	struct research_source src;
	struct research_precopy p;
	struct research_precopy_cfg cfg = {
	    .bandwidth = 16ull << 20, .max_rounds = 3, .downtime_s = 0.001, .min_shrink = 0.05};
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	fake_init(&f, &src, 50000);
	f.rate = 2000;
	f.wbase = 300;
	f.wpages = 4096;
	CHECK(research_precopy_run(&src, &cfg, &p) == 0);
	CHECK(p.stop == RESEARCH_MAX_ROUNDS && p.nrounds == 3);
	out = open_memstream(&buf, &len);
	research_precopy_print(out, &p, true);
	fclose(out);
	CHECK(!strncmp(buf, "{\"bandwidth\":16777216,", 22));
	CHECK(
	    strstr(buf, "\"converged\":false,\"stop\":\"max_rounds\",\"predicted_downtime_ms\":"));
	CHECK(strstr(buf, "\"rounds\":[{\"round\":0,\"start_s\":0.000000,\"duration_s\":"));
	CHECK(strstr(buf, "\"pages_dirtied\":") && strstr(buf, "\"dirty_rate_pages_s\":"));
	CHECK(strstr(buf, ",\"t0_monotonic_s\":") && strstr(buf, ",\"run_start_s\":"));
	free(buf);
	buf = NULL;
	out = open_memstream(&buf, &len);
	research_precopy_csv(out, &p);
	fclose(out);
	{
		int lines = 0;

		for (char *c = buf; *c; c++)
			lines += *c == '\n';
		CHECK(lines == 4);
		CHECK(!strncmp(buf, "round,start_s,duration_s,window_s,pages_sent,", 45));
	}
	free(buf);
	research_precopy_free(&p);
	fake_free(&f);

	/* Bad configurations are refused before the guest is touched. */
	fake_init(&f, &src, 100);
	cfg.bandwidth = 0;
	CHECK(research_precopy_run(&src, &cfg, &p) == PT_EUSAGE);
	CHECK(f.harvests == 0 && !f.paused);
	research_precopy_free(&p);
	fake_free(&f);
}

/* An error in the middle leaves the guest running, and interruption too. */
static void test_precopy_errors(void)
{
	struct fake f;
	struct research_source src;
	struct research_precopy p;
	struct research_precopy_cfg cfg = {
	    .bandwidth = 1ull << 20, .max_rounds = 30, .downtime_s = 0.001, .min_shrink = 0.05};

	fake_init(&f, &src, 1000);
	f.rate = 500;
	f.wbase = 0;
	f.wpages = 1000;
	f.fail_at_harvest = 3;
	CHECK(research_precopy_run(&src, &cfg, &p) == PT_ETRANSPORT);
	CHECK(!f.paused);
	research_precopy_free(&p);
	fake_free(&f);

	fake_init(&f, &src, 1000);
	f.rate = 500;
	f.wpages = 1000;
	f.interrupt_at_sleep = 2;
	CHECK(research_precopy_run(&src, &cfg, &p) == PT_ETRANSPORT);
	CHECK(!f.paused);
	research_precopy_free(&p);
	fake_free(&f);
}

/* --- writable working set ---------------------------------------------------------- */
static void test_wws_exact(void)
{
	struct fake f;
	struct research_source src;
	struct research_wws w;
	char *buf = NULL;
	size_t len = 0;
	FILE *out;

	fake_init(&f, &src, 300);
	/* interval 0: pages 0-9; 1: 5-14; 2: 0-4 and 400 (slot 2); 3: nothing */
	for (int i = 0; i < 10; i++)
		f.script[0][f.script_len[0]++] = (u64)i;
	for (int i = 5; i < 15; i++)
		f.script[1][f.script_len[1]++] = (u64)i;
	for (int i = 0; i < 5; i++)
		f.script[2][f.script_len[2]++] = (u64)i;
	f.script[2][f.script_len[2]++] = 400;
	f.harvest_s = 0.001;
	CHECK(research_wws_run(&src, 2.0, 0.5, &w) == 0);
	CHECK(w.n == 4);
	if (w.n == 4) {
		CHECK(w.iv[0].dirtied == 10 && w.iv[0].in_previous == 0 &&
		      w.iv[0].seen_before == 0 && w.iv[0].cumulative == 10);
		CHECK(w.iv[1].dirtied == 10 && w.iv[1].in_previous == 5 &&
		      w.iv[1].seen_before == 5 && w.iv[1].cumulative == 15);
		CHECK(w.iv[2].dirtied == 6 && w.iv[2].in_previous == 0 &&
		      w.iv[2].seen_before == 5 && w.iv[2].cumulative == 16);
		CHECK(w.iv[3].dirtied == 0 && w.iv[3].cumulative == 16);
		CHECK(fabs(w.iv[3].start_s - 1.5) < 1e-6 && fabs(w.iv[1].seconds - 0.5) < 1e-6);
	}
	out = open_memstream(&buf, &len);
	research_wws_print(out, &w, true);
	fclose(out);
	CHECK(strstr(buf, "\"distinct_pages\":16,") && !strncmp(buf, "{\"t0_monotonic_s\":", 18));
	CHECK(strstr(
	    buf, "\"dirtied\":6,\"in_previous\":0,\"seen_before\":5,\"new\":1,\"cumulative\":16"));
	free(buf);
	research_wws_free(&w);
	fake_free(&f);
}

/* --- numbers and plots ---------------------------------------------------------------- */
static void test_parse(void)
{
	u64 v = 0;
	double d = 0;

	CHECK(research_parse_bytes("100M", &v) && v == 100ull << 20);
	CHECK(research_parse_bytes("1G", &v) && v == 1ull << 30);
	CHECK(research_parse_bytes("10T", &v) && v == 10ull << 40);
	CHECK(research_parse_bytes("0x10k", &v) && v == 16ull << 10);
	CHECK(research_parse_bytes("12345", &v) && v == 12345);
	CHECK(!research_parse_bytes("1.5G", &v));
	CHECK(!research_parse_bytes("", &v));
	CHECK(!research_parse_bytes("-1", &v));
	CHECK(!research_parse_bytes("1GB", &v));
	CHECK(!research_parse_bytes("16777216T", &v));
	CHECK(!research_parse_bytes("99999999999999999999", &v));
	CHECK(research_parse_seconds("0.5", 10, &d) && d == 0.5);
	CHECK(research_parse_seconds("1e1", 10, &d) && d == 10);
	CHECK(!research_parse_seconds("0", 10, &d));
	CHECK(!research_parse_seconds("11", 10, &d));
	CHECK(!research_parse_seconds("nan", 10, &d));
	CHECK(!research_parse_seconds("inf", 1e300, &d));
	CHECK(!research_parse_seconds("2s", 10, &d));
	CHECK(!research_parse_seconds("", 10, &d));
	CHECK(research_plot_name_ok("out.svg") && research_plot_name_ok("dir/OUT.PNG"));
	CHECK(research_plot_name_ok("out.txt"));
	CHECK(!research_plot_name_ok("out.pdf") && !research_plot_name_ok(".svg"));
	CHECK(!research_plot_name_ok("it's.svg") && !research_plot_name_ok("a\nb.svg"));
	CHECK(fabs(research_model_distinct(100, 100, 1) - 100 * (1 - exp(-1))) < 1e-9);
}

static bool file_starts(const char *path, const char *magic, size_t n)
{
	char buf[2048] = {0};
	FILE *f = fopen(path, "rb");
	size_t got;

	if (!f)
		return false;
	got = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	return got >= n && memmem(buf, got, magic, n);
}

/* gnuplot is a dependency (tools/install-deps.sh): these draw for real. */
static void test_plots(void)
{
	struct fake f;
	struct research_source src;
	struct research_precopy p;
	struct research_wws w;
	struct research_precopy_cfg cfg = {
	    .bandwidth = 16ull << 20, .max_rounds = 30, .downtime_s = 0.010, .min_shrink = 0.05};
	char dir[] = "/tmp/research_test.XXXXXX", svg[96], png[96], wsvg[96], txt[96];

	CHECK(mkdtemp(dir) != NULL);
	snprintf(svg, sizeof(svg), "%s/precopy.svg", dir);
	snprintf(png, sizeof(png), "%s/precopy.png", dir);
	snprintf(wsvg, sizeof(wsvg), "%s/wws.svg", dir);
	snprintf(txt, sizeof(txt), "%s/precopy.txt", dir);
	fake_init(&f, &src, 30000);
	f.rate = 2000;
	f.wpages = 4096;
	CHECK(research_precopy_run(&src, &cfg, &p) == 0);
	CHECK(research_wws_run(&src, 3, 1, &w) == 0);
	unsetenv("PTCTL_GNUPLOT");
	CHECK(research_plot_precopy(svg, &p) == 0);
	CHECK(file_starts(svg, "<svg", 4));
	CHECK(research_plot_precopy(png, &p) == 0);
	CHECK(file_starts(png, "\x89PNG", 4));
	CHECK(research_plot_wws(wsvg, &w) == 0);
	CHECK(file_starts(wsvg, "<svg", 4));
	CHECK(research_plot_precopy(txt, &p) == 0);
	CHECK(file_starts(txt, "Pre-copy over 16 MiB/s", 22));
	/* A plotter that fails, or none: an error, and no file that could pass for a plot. */
	setenv("PTCTL_GNUPLOT", "false", 1);
	CHECK(research_plot_precopy(svg, &p) == PT_EUSAGE);
	CHECK(access(svg, F_OK) != 0);
	setenv("PTCTL_GNUPLOT", "/nonexistent/gnuplot", 1);
	CHECK(research_plot_wws(wsvg, &w) == PT_EUSAGE);
	unsetenv("PTCTL_GNUPLOT");
	unlink(svg);
	unlink(png);
	unlink(wsvg);
	unlink(txt);
	rmdir(dir);
	research_precopy_free(&p);
	research_wws_free(&w);
	fake_free(&f);
}

int main(void)
{
	test_run("research.rate.model", test_rate_model);
	test_run("research.rate.series", test_rate_series);
	test_run("research.rate.errors", test_rate_errors);
	test_run("research.precopy.fast_link_converges", test_precopy_fast_link);
	test_run("research.precopy.slow_link_does_not_converge", test_precopy_slow_link);
	test_run("research.precopy.limits_and_output", test_precopy_limits);
	test_run("research.precopy.errors_leave_guest_running", test_precopy_errors);
	test_run("research.wws.exact", test_wws_exact);
	test_run("research.parse", test_parse);
	test_run("research.plots", test_plots);
	return test_failures ? 1 : 0;
}
