/* SPDX-License-Identifier: MIT */
/*
 * The management port, hypervisor side: the COM2 transport and the backend
 * (struct mgmt_backend, hv/mgmt.h) over this VM, its memslots, the MMU's
 * dirty logging and the vCPU. mgmt.c (the protocol) is called from here only.
 */
#ifndef PT_HV_CONTROL_H
#define PT_HV_CONTROL_H

#include "hv/vcpu.h"

/* Sets up the dispatcher (memory from the pool). 0, or -1 (logged). */
int hv_control_init(void);
/*
 * Bounded work on the management port (at most one step of a long command);
 * called on every exit. While the guest is paused from the port, loops here
 * (polling) until it is resumed.
 */
void hv_control_poll(struct vcpu *v);
/* True while a reply is going out or a long command runs its steps
 * (docs/protocol.md "Long commands"): the vCPU should exit again soon. */
bool hv_control_wants_poll(void);
/* One log line with the protocol counters (with the exit statistics). */
void hv_control_log_stats(void);

#endif /* PT_HV_CONTROL_H */
