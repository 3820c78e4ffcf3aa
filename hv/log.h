/* SPDX-License-Identifier: MIT */
/*
 * Hypervisor log: lines on the debugcon port 0xE9 (QEMU isa-debugcon, Bochs
 * port_e9_hack), each prefixed "pagetrail: ". Fatal events go to the
 * management UART too (hv_report_fatal).
 *
 * Error policy (Xen's, KVM's KVM_BUG_ON): return an error where the caller
 * can cope; kill the guest, not the machine (vm_bug_on -> hv_guest_fatal)
 * where guest state is broken: the guest stops for good and the hypervisor
 * stays up, serving the management port for a post-mortem; hv_panic only
 * where the hypervisor's own state is corrupt (the machine stops).
 */
#ifndef PT_HV_LOG_H
#define PT_HV_LOG_H

#include <pt/types.h>
#include <stdarg.h>

#define HV_DEBUGCON_PORT 0xe9

__attribute__((format(printf, 1, 2))) void hv_log(const char *fmt, ...);
void hv_vlog(const char *fmt, va_list ap);

/*
 * Copies up to len bytes of the log ring from absolute offset off; *first
 * and *end: the oldest offset still held, the next to be written.
 */
u32 hv_log_ring_read(u64 off, u8 *buf, u32 len, u64 *first, u64 *end);

/* Bounded formatter: %s %c %d %u %x %p with l/ll, '0' flag and width. */
int hv_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4))) int hv_snprintf(char *buf, size_t size, const char *fmt, ...);

/*
 * The hypervisor's own state is corrupt: log, report on the management port,
 * stop the machine (never returns).
 */
__attribute__((noreturn, format(printf, 1, 2))) void hv_panic(const char *fmt, ...);

struct vcpu;
/*
 * The guest's state is broken beyond repair (or it asked to die: shutdown,
 * triple fault), seen by vCPU v on its own CPU: report it on the log and the
 * management UART, then stop the guest for good: every vCPU leaves it and
 * never enters it again (hv_guest_stop). The machine is not stopped: the
 * hypervisor keeps answering on the management port (INFO says "stopped",
 * RESUME is refused with GUEST_STOPPED; LOG, REGS, MEM_READ and snapshots
 * read the dead guest). Never returns.
 */
__attribute__((noreturn, format(printf, 2, 3))) void hv_guest_fatal(struct vcpu *v, const char *fmt,
								    ...);

/* vCPU v found the guest's state broken: the guest is stopped, the hypervisor lives on. */
#define vm_bug_on(v, cond)                                                                         \
	do {                                                                                       \
		if (unlikely(cond))                                                                \
			hv_guest_fatal(v, "FATAL: vm_bug_on(%s) at %s:%d", #cond, __FILE__,        \
				       __LINE__);                                                  \
	} while (0)

/*
 * On an emulator (hv_boot_info HV_BOOT_EMULATOR_EXIT) stops it: QEMU's
 * isa-debug-exit, then ACPI S5. Otherwise, and if that fails, halts this
 * CPU. Never returns.
 */
__attribute__((noreturn)) void hv_machine_stop(int code);

#endif /* PT_HV_LOG_H */
