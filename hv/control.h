/* SPDX-License-Identifier: MIT */
/*
 * The management port's owner, hypervisor side: the COM2 transport, the
 * backend (struct mgmt_backend, hv/mgmt.h) over this VM and its vCPUs, the
 * dirty-log session (hv/dirty_session.h) with its hooks, and the guest's
 * view of the port's registers. mgmt.c (the protocol) is called from here
 * only.
 */
#ifndef PT_HV_CONTROL_H
#define PT_HV_CONTROL_H

#include "hv/vcpu.h"

struct hv;
struct mgmt;

/* Sets up the dispatcher and the session over hv's VM (memory from the pool). 0, or -1 (logged). */
int hv_control_init(struct hv *hv);
/*
 * The guest's accesses to the management UART's registers (reg 0..7 from
 * its base): an idle UART, the registers a driver reads back kept in a
 * shadow. The chip is never touched on the guest's behalf.
 */
u8 hv_control_port_read(unsigned int reg);
void hv_control_port_write(unsigned int reg, u8 val);
/*
 * Bounded work on the management port (at most one step of a long command);
 * called on every exit. While the guest is paused from the port, loops here
 * (polling) until it is resumed.
 */
void hv_control_poll(struct vcpu *v);
/*
 * The guest is stopped for good (hv_guest_stop), on the boot CPU: every
 * other vCPU parked, then the management port served until the machine is
 * reset (halts if there is none). Never returns.
 */
__attribute__((noreturn)) void hv_control_serve_stopped(struct vcpu *v);
/* True while a reply is going out or a long command runs its steps
 * (docs/protocol.md "Long commands"): the vCPU should exit again soon. */
bool hv_control_wants_poll(void);
/*
 * The dispatcher (and through it the dirty-log and copy-on-write sessions):
 * host tests check its counters and state against what went over the line.
 */
struct mgmt *hv_control_mgmt(void);
/* One log line with the protocol counters (with the exit statistics). */
void hv_control_log_stats(void);

#endif /* PT_HV_CONTROL_H */
