/* SPDX-License-Identifier: MIT */
/*
 * Plots of the research commands, drawn by gnuplot (a Debian dependency,
 * tools/install-deps.sh): ptctl writes a gnuplot script with the figures inline and
 * runs gnuplot on it. SVG or PNG by the file's extension, or .txt: gnuplot's text
 * rendering (its "dumb" terminal), for a terminal or a document that takes no image.
 */
#include "research.h"

#include "client.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && !strcasecmp(s + n - k, suffix);
}

bool research_plot_name_ok(const char *path)
{
	/* The name goes into a gnuplot string: no quote, backslash or control character. */
	for (const char *p = path; *p; p++)
		if (*p == '\'' || *p == '"' || *p == '\\' || (unsigned char)*p < 0x20)
			return false;
	return ends_with(path, ".svg") || ends_with(path, ".png") || ends_with(path, ".txt");
}

static void plot_header(FILE *f, const char *path, const char *title)
{
	if (ends_with(path, ".png"))
		fprintf(f, "set terminal pngcairo size 1000,600 font 'sans,11'\n");
	else if (ends_with(path, ".txt"))
		fprintf(f, "set terminal dumb size 100,32 noenhanced\n");
	else
		fprintf(f, "set terminal svg size 1000,600 dynamic font 'sans,11' background rgb "
			   "'white'\n");
	fprintf(f, "set output '%s'\n", path);
	fprintf(f, "set title \"%s\" noenhanced\n", title);
	fprintf(f, "set grid\nset key outside top center horizontal noenhanced\n");
}

/* Runs gnuplot with the script in buf; checks that it succeeded and wrote path. */
static int run_gnuplot(const char *path, const char *script, size_t len)
{
	const char *gp = getenv("PTCTL_GNUPLOT");
	char *argv[2];
	posix_spawn_file_actions_t fa;
	int fds[2], status = 0, err;
	void (*old)(int);
	pid_t pid;
	struct stat st;
	size_t off = 0;

	if (!gp || !*gp)
		gp = "gnuplot";
	argv[0] = (char *)gp;
	argv[1] = NULL;
	if (pipe(fds)) {
		fprintf(stderr, "ptctl: --plot: pipe: %s\n", strerror(errno));
		return PT_EUSAGE;
	}
	unlink(path); /* a stale file must not pass for a new plot */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
	posix_spawn_file_actions_addclose(&fa, fds[1]);
	err = posix_spawnp(&pid, gp, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (err) {
		close(fds[1]);
		fprintf(stderr,
			"ptctl: --plot: cannot run %s: %s (Debian: apt-get install gnuplot-nox, or "
			"tools/install-deps.sh)\n",
			gp, strerror(err));
		return PT_EUSAGE;
	}
	/* A gnuplot that dies early must give an error here, not kill ptctl. */
	old = signal(SIGPIPE, SIG_IGN);
	while (off < len) {
		ssize_t w = write(fds[1], script + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fds[1]);
	signal(SIGPIPE, old);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) || off < len || stat(path, &st) ||
	    st.st_size == 0) {
		fprintf(stderr, "ptctl: --plot: %s failed to draw %s (status 0x%x)\n", gp, path,
			status);
		return PT_EUSAGE;
	}
	return 0;
}

/* Closes the script's memstream (which sets *buf and *len) and draws. */
static int finish(const char *path, FILE *f, char **buf, size_t *len)
{
	int r;

	if (fclose(f)) {
		free(*buf);
		return PT_ETRANSPORT;
	}
	r = run_gnuplot(path, *buf, *len);
	free(*buf);
	return r;
}

int research_plot_precopy(const char *path, const struct research_precopy *p)
{
	char *buf = NULL, title[256];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	double budget = p->cfg.downtime_s * (double)p->cfg.bandwidth / (double)PAGE_SIZE;

	if (!f)
		return PT_ETRANSPORT;
	snprintf(title, sizeof(title),
		 "Pre-copy over %.0f MiB/s: %s after %u round(s), predicted downtime %.1f ms",
		 (double)p->cfg.bandwidth / (1024.0 * 1024.0),
		 p->stop == RESEARCH_CONVERGED ? "converged" : "NOT converged", p->nrounds,
		 p->predicted_downtime_s * 1e3);
	plot_header(f, path, title);
	fprintf(f,
		"set xlabel 'time (s, on the simulated link)'\n"
		"set ylabel 'pages (4 KiB)'\nset logscale y\nset format y '%s'\n",
		ends_with(path, ".txt") ? "%g" : "10^{%L}");
	/* start end round sent dirtied: a round sends `sent` pages over [start, end] while
	 * the guest dirties `dirtied`, which the next round must send again. */
	fprintf(f, "$rounds << EOD\n");
	for (u32 i = 0; i < p->nrounds; i++) {
		const struct research_round *rd = &p->rounds[i];

		fprintf(f, "%.6f %.6f %u %" PRIu64 " %" PRIu64 "\n", rd->start_s,
			rd->start_s + rd->duration_s, rd->round, rd->pages_sent, rd->pages_dirtied);
	}
	fprintf(f, "EOD\n");
	fprintf(f, "$final << EOD\n%.6f %.6f %" PRIu64 "\nEOD\n",
		p->total_s - p->predicted_downtime_s, p->total_s, p->pages_remaining);
	fprintf(f,
		"nz(v) = v > 0 ? v : NaN\n"
		"plot $rounds using 1:(nz($4)) with linespoints lw 2 pt 7 title 'pages to send "
		"(round start)', \\\n"
		"     $rounds using 2:(nz($5)) with linespoints lw 2 pt 5 title 'pages dirtied "
		"during the round', \\\n"
		"     $final using 1:(nz($3)) with points pt 9 ps 2 title 'left for the "
		"stop-and-copy', \\\n"
		"     %.3f with lines dt 2 lw 1 title 'downtime target (pages)'\n",
		budget > 1 ? budget : 1.0);
	return finish(path, f, &buf, &len);
}

int research_plot_wws(const char *path, const struct research_wws *w)
{
	char *buf = NULL, title[256];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return PT_ETRANSPORT;
	snprintf(title, sizeof(title), "Writable working set: pages dirtied per %.3g s interval",
		 w->interval_s);
	plot_header(f, path, title);
	fprintf(f, "set xlabel 'time (s)'\nset ylabel 'pages (4 KiB)'\nset yrange [0:*]\n"
		   "set style fill solid 0.5 border\n");
	fprintf(f, "$iv << EOD\n");
	for (u32 i = 0; i < w->n; i++) {
		const struct research_wws_interval *iv = &w->iv[i];

		fprintf(f, "%.6f %.6f %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 "\n",
			iv->start_s + iv->seconds / 2, iv->seconds, iv->dirtied, iv->in_previous,
			iv->seen_before, iv->cumulative);
	}
	fprintf(f, "EOD\n");
	fprintf(f, "plot $iv using 1:3:($2*0.9) with boxes title 'dirtied in the interval', \\\n"
		   "     $iv using 1:4 with linespoints lw 2 pt 7 title 'also dirtied in the "
		   "interval before', \\\n"
		   "     $iv using 1:5 with linespoints lw 2 pt 5 title 'dirtied in some earlier "
		   "interval'\n");
	return finish(path, f, &buf, &len);
}
