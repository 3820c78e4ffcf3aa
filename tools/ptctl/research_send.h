/* SPDX-License-Identifier: MIT */
/*
 * ptctl precopy --send: pre-copy rounds whose pages really cross the management line,
 * through the live snapshot's pre-copy engine (precopy.h). docs/research.md.
 */
#ifndef PT_PTCTL_RESEARCH_SEND_H
#define PT_PTCTL_RESEARCH_SEND_H

#include "client.h"
#include "research.h"

#include <signal.h>

/*
 * Runs it: cfg's max_rounds and downtime_s are the engine's limits (its bandwidth is
 * not used: the line is the link). out gets the rounds as the engine ran them, the
 * measured downtime in predicted_downtime_s and the line's page-data rate in
 * cfg.bandwidth. Slots whose logging it started are stopped again. Returns a ptctl status.
 */
int research_precopy_send(struct pt_conn *c, const struct research_precopy_cfg *cfg,
			  volatile sig_atomic_t *cancel, struct research_precopy *out);

#endif /* PT_PTCTL_RESEARCH_SEND_H */
