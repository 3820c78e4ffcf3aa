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
#include "hv/page_alloc.h"
#include "hv/vm.h"

#include <pt/assert.h>

struct hv hv;
static struct vm hv_vm;
static struct vcpu hv_bsp;

#define MGMT_UART_BAUD 115200

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

	if (uart_init(&hv.mgmt_uart, UART_COM2_BASE, MGMT_UART_BAUD))
		hv_log("management port: COM2 at 0x%x", UART_COM2_BASE);
	else
		hv_log("management port: no UART at 0x%x", UART_COM2_BASE);

	hv.smp_unvirtualized = bi->nr_cpus > 1;
	if (hv.smp_unvirtualized)
		hv_log("WARNING: %u CPUs present, only the boot CPU is virtualized; the other %u "
		       "run UNVIRTUALIZED and dirty logging is refused",
		       bi->nr_cpus, bi->nr_cpus - 1);

	for (i = 0; i < bi->nr_ranges; i++)
		if (bi->ranges[i].base + bi->ranges[i].pages * PAGE_SIZE > top)
			top = bi->ranges[i].base + bi->ranges[i].pages * PAGE_SIZE;
	top = (top + (1ull << 30) - 1) & ~((1ull << 30) - 1);
	/* Before vm_create: the tick may hide a page (the HPET) from the guest. */
	hv_mgmt_tick_init(bi);
	if (x86_host_prepare(top)) {
		hv_log("out of pool memory for the host page tables");
		return -1;
	}
	if (vm_create(hv.vm, bi))
		return -1;
	if (arch_vcpu_create(hv.vcpu, bi)) {
		hv_log("out of pool memory for the vCPU");
		return -1;
	}
	vm_vcpu_attach(hv.vm, hv.vcpu);
	if (hv_control_init())
		return -1;
	log_footprint(bi);
	return 0;
}

static __attribute__((noreturn)) void hv_run_loop(struct vcpu *v)
{
	struct hv_exit exit;

	for (;;) {
		v->ops->run(v, &exit);
		hv_handle_exit(v, &exit);
	}
}

void hv_start(struct hv_boot_info *bi)
{
	struct vcpu *v = hv.vcpu;

	/* Still the firmware's GDT, IDT and CR3: they become the guest's. */
	arch_host_enter();
	arch_vcpu_capture_live_state(v, &bi->takeover);
	x86_host_enter();
	hv_log("vmrun: guest resumes at rip=0x%lx rsp=0x%lx", v->rip, v->gprs.r[HV_GPR_RSP]);
	hv_run_loop(v);
}
