/* SPDX-License-Identifier: MIT */
/*
 * Start of the hypervisor, in the relocated copy of the image.
 *
 * hv_init runs in the firmware's context (its page tables, IDT, stack) and
 * prepares everything; hv_start runs on the host stack after x86_takeover,
 * captures the firmware's state as the guest's, switches to the host's own
 * GDT, IDT and page tables, and enters the guest loop for good.
 */
#include "hv/hv.h"

#include "arch/x86/cpu.h"
#include "arch/x86/host.h"
#include "hv/control.h"
#include "hv/log.h"
#include "hv/mgmt_tick.h"
#include "hv/mgmt_uart.h"
#include "hv/page_alloc.h"
#include "hv/smp.h"
#include "hv/vm.h"

#include <pt/assert.h>

struct hv hv;
static struct vm hv_vm;
static struct vcpu hv_bsp;

static void log_footprint(const struct hv_boot_info *bi)
{
	u64 used = hv_pages_in_use() * PAGE_SIZE + (bi->alloc_base - bi->pool_base);

	hv.footprint_bytes = bi->pool_size;
	hv_log("footprint: pool %lu KiB reserved, %lu KiB used (image %lu KiB, host tables "
	       "%lu KiB, nested tables %lu KiB), %lu KiB free",
	       bi->pool_size >> 10, used >> 10, bi->image_size >> 10,
	       (u64)(x86_host_table_pages() * PAGE_SIZE) >> 10,
	       (u64)(vm_tdp_pages(hv.vm) * PAGE_SIZE) >> 10,
	       (u64)(hv_pages_free() * PAGE_SIZE) >> 10);
}

/* The port's poll intervals (hv/mgmt_poll.h), and where a fixed one applies and why. */
static void log_mgmt_poll(const struct hv_mgmt_poll *p)
{
	u64 fifo_ns;

	if (!p->fast_ns) {
		hv_log("management poll while a reply goes out: the line's rate is unknown: the "
		       "fixed intervals (HPET tick %u us, a TSC-counting timer %lu TSC ticks)",
		       HV_MGMT_TICK_FAST_US, p->fast_tsc);
		return;
	}
	fifo_ns = (u64)UART_FIFO_BYTES * UART_BITS_PER_CHAR * 1000000000ull / p->baud;
	hv_log("management poll while a reply goes out: every %lu.%lu us (%u characters at %u "
	       "baud; the %u-byte FIFO empties in %lu us)",
	       p->fast_ns / 1000, p->fast_ns % 1000 / 100, HV_MGMT_POLL_CHARS, p->baud,
	       UART_FIFO_BYTES, fifo_ns / 1000);
	if (p->tsc_derived)
		hv_log("management poll: a TSC-counting timer waits %lu TSC ticks while a reply "
		       "goes out, %lu idle",
		       p->fast_tsc, p->idle_tsc);
	else
		hv_log("management poll: the TSC's rate is unknown: a TSC-counting timer keeps "
		       "the fixed %lu TSC ticks while a reply goes out, %lu idle",
		       p->fast_tsc, p->idle_tsc);
}

/*
 * One vCPU per CPU the firmware listed and enabled: the boot CPU's now, the
 * APs' ready for their own takeover (hv_ap_start), each with its backend
 * state, a host stack and a reference to the VM's root. A backend without
 * SMP support, or a CPU beyond HV_MAX_CPUS, leaves CPUs unvirtualized:
 * refused, logged, and dirty logging stays off (hv_dirty_logging_allowed).
 */
static int hv_create_vcpus(struct hv_boot_info *bi)
{
	u32 n = bi->nr_cpus < HV_MAX_CPUS ? bi->nr_cpus : HV_MAX_CPUS, i;
	const char *why = "";

	if (bi->nr_cpus > HV_MAX_CPUS)
		hv_log("smp: %u CPUs listed, at most %u are virtualized; the rest are refused",
		       bi->nr_cpus, HV_MAX_CPUS);
	if (n > 1 && !arch_smp_supported(&why)) {
		hv_log("smp: the %s backend virtualizes the boot CPU only (%s): %u CPUs refused",
		       arch_backend_name(), why, n - 1);
		n = 1;
	}
	for (i = 0; i < n; i++) {
		struct hv_cpu *c = &bi->cpus[i];
		struct vcpu *v = i == 0 ? &hv_bsp : hv_page_alloc();

		if (i && !(c->flags & HV_CPU_ENABLED)) {
			hv_log("smp: CPU %u (APIC ID %u) is disabled by the firmware: refused", i,
			       c->apic_id);
			continue;
		}
		if (!v || (i && !(c->host_stack_top = (u64)(uintptr_t)hv_pages_alloc_contig(
					  HV_AP_STACK_SIZE / PAGE_SIZE)))) {
			hv_log("out of pool memory for vCPU %u", i);
			return -1;
		}
		if (i)
			c->host_stack_top += HV_AP_STACK_SIZE;
		v->id = i;
		v->apic_id = c->apic_id;
		/* The management tick and the kicks between CPUs (hv/smp.h) arrive as NMIs. */
		v->hooks.nmi_exits = hv.mgmt_tick == HV_MGMT_TICK_HPET_NMI || bi->nr_cpus > 1;
		if (arch_vcpu_create(v, bi)) {
			hv_log("out of pool memory for vCPU %u", i);
			return -1;
		}
		if (v->ops->set_poll_exit_tsc)
			v->ops->set_poll_exit_tsc(v, hv.mgmt_poll.idle_tsc);
		if (vm_vcpu_attach(hv.vm, v))
			return -1;
	}
	return 0;
}

int hv_init(struct hv_boot_info *bi)
{
	const char *why = "";
	u64 top = 4ull << 30;
	u32 i;

	hv.bi = bi;
	hv.vm = &hv_vm;
	hv.vcpu = &hv_bsp;
	hv_log("hv_init: image 0x%lx-0x%lx, pool 0x%lx-0x%lx", bi->image_base,
	       bi->image_base + bi->image_size, bi->pool_base, bi->pool_base + bi->pool_size);
	if (arch_hv_check_cpu(&why)) {
		hv_log("cannot virtualize: %s", why);
		return -1;
	}
	hv_page_alloc_init(bi->alloc_base, bi->pool_base + bi->pool_size);

	if (hv_mgmt_uart_setup(bi, &hv.mgmt_uart))
		return -1;
	hv_mgmt_poll_choose(&hv.mgmt_poll, hv.mgmt_uart.present ? hv.mgmt_uart.baud : 0,
			    bi->tsc_hz);
	log_mgmt_poll(&hv.mgmt_poll);

	hv_log("cpus: %u listed by the firmware (boot CPU APIC ID %u)", bi->nr_cpus,
	       bi->cpus[0].apic_id);
	hv.smp_unvirtualized = bi->nr_cpus > 1; /* until every AP is taken (hv_ap_start) */

	for (i = 0; i < bi->nr_ranges; i++)
		if (bi->ranges[i].base + bi->ranges[i].pages * PAGE_SIZE > top)
			top = bi->ranges[i].base + bi->ranges[i].pages * PAGE_SIZE;
	/* The host reaches an MMIO management UART through its identity map too. */
	if (hv.mgmt_uart.space == UART_SPACE_MMIO &&
	    hv.mgmt_uart.base + uart_span(&hv.mgmt_uart) > top)
		top = hv.mgmt_uart.base + uart_span(&hv.mgmt_uart);
	top = (top + (1ull << 30) - 1) & ~((1ull << 30) - 1);
	/* Before vm_create: the tick may hide a page (the HPET) from the guest. */
	hv_mgmt_tick_init(bi, &hv.mgmt_poll);
	if (x86_host_prepare(top)) {
		hv_log("out of pool memory for the host page tables");
		return -1;
	}
	if (vm_create(hv.vm, bi))
		return -1;
	if (hv_create_vcpus(bi))
		return -1;
	if (hv_control_init(&hv))
		return -1;
	log_footprint(bi);
	return 0;
}

void hv_guest_stop(struct vcpu *v)
{
	struct vm *vm = v->vm;

	if (!__atomic_exchange_n(&vm->stopped, 1, __ATOMIC_SEQ_CST))
		hv_log("vCPU %u: the guest is stopped for good; the hypervisor stays up", v->id);
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_SEQ_CST);
	if (v->id == 0)
		hv_control_serve_stopped(v);
	/* The boot CPU owns the management port: out of the guest to serve it. */
	smp_kick(vm->vcpus[0]);
	smp_park_stopped(v);
}

static __attribute__((noreturn)) void hv_run_loop(struct vcpu *v)
{
	struct hv_exit exit;

	for (;;) {
		/* Another vCPU stopped the guest (hv_guest_fatal): this one never enters it. */
		if (__atomic_load_n(&v->vm->stopped, __ATOMIC_SEQ_CST))
			hv_guest_stop(v);
		smp_vcpu_requests(v);
		smp_vcpu_enter(v);
		v->ops->run(v, &exit);
		smp_vcpu_exit(v);
		hv_handle_exit(v, &exit);
	}
}

/* Every listed CPU is a vCPU now: nothing writes guest memory unseen. */
static void hv_note_online(struct vcpu *v)
{
	u32 n = __atomic_add_fetch(&hv.nr_online, 1, __ATOMIC_SEQ_CST);

	__atomic_store_n(&v->online, true, __ATOMIC_SEQ_CST);
	if (n == hv.bi->nr_cpus && hv.smp_unvirtualized) {
		__atomic_store_n(&hv.smp_unvirtualized, false, __ATOMIC_SEQ_CST);
		hv_log("smp: all %u CPUs are virtualized", n);
	}
}

void hv_start(void *arg)
{
	struct hv_boot_info *bi = arg;
	struct vcpu *v = hv.vcpu;

	/* Still the firmware's GDT, IDT and CR3: they become the guest's. */
	arch_host_enter(v);
	arch_vcpu_capture_live_state(v, &bi->takeover);
	x86_host_enter();
	/* GIF = 0: the first tick waits for the first VMRUN, where it exits. */
	hv_mgmt_tick_start();
	hv_note_online(v);
	hv_log("vmrun: guest resumes at rip=0x%lx rsp=0x%lx", v->rip, v->gprs.r[HV_GPR_RSP]);
	hv_run_loop(v);
}

/* On the AP, in the firmware's context, before its takeover: can it be a vCPU? */
int hv_ap_check(struct hv_cpu *c)
{
	const char *why = "";

	if (c->index >= hv.vm->nr_vcpus || !hv.vm->vcpus[c->index]) {
		hv_log("smp: CPU %u (APIC ID %u) has no vCPU: not virtualized", c->index, c->apic_id);
		return -1;
	}
	if (arch_hv_check_cpu(&why)) {
		hv_log("smp: CPU %u (APIC ID %u) cannot be virtualized: %s", c->index, c->apic_id,
		       why);
		return -1;
	}
	return 0;
}

void hv_ap_start(void *arg)
{
	struct hv_cpu *c = arg;
	struct vcpu *v = hv.vm->vcpus[c->index];

	arch_host_enter(v);
	arch_vcpu_capture_live_state(v, &c->takeover);
	x86_host_enter();
	hv_log("smp: CPU %u (APIC ID %u) virtualized, guest resumes at rip=0x%lx", c->index,
	       c->apic_id, v->rip);
	hv_note_online(v);
	hv_run_loop(v);
}
