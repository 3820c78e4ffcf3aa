/* SPDX-License-Identifier: MIT */
/*
 * ptctl's research commands (docs/research.md): `dirty rate`, `precopy`, `wws`.
 * ptctl.c hands them the options it does not know and the connection.
 */
#ifndef PT_PTCTL_RESEARCH_CMD_H
#define PT_PTCTL_RESEARCH_CMD_H

#include "client.h"

/* The options ptctl.c parses that the research commands use too. */
struct research_args {
	bool json;
	const char *mode;  /* --mode, when logging must be started */
	const char *count; /* --count (dirty rate series) */
};

/* argv[*i] is one of the research commands' options: takes it (and its value). */
bool research_option(int argc, char **argv, int *i);
/* "dirty rate", "precopy", "wws" with npos positional words. */
bool research_is_command(const char *cmd, const char *sub, int npos);
/* Runs it on a connection that has said HELLO; returns ptctl's exit status. */
int research_main(struct pt_conn *c, const char *cmd, const struct research_args *a);

#endif /* PT_PTCTL_RESEARCH_CMD_H */
