/* SPDX-License-Identifier: MIT */
#include "hv/vm.h"

#include "arch/x86/cpu.h"
#include "hv/hv.h"
#include "hv/log.h"

int vm_create(struct vm *vm, const struct hv_boot_info *bi)
{
	gpa_t limit = 1ull << x86_phys_addr_bits();
	unsigned int i;

	vm->nr_hidden = 0;
	for (i = 0; i < bi->nr_ranges; i++) {
		const struct hv_mem_range *r = &bi->ranges[i];

		if (r->type != HV_MEM_HIDDEN)
			continue;
		if (vm->nr_hidden == HV_MAX_HIDDEN) {
			hv_log("too many hidden ranges");
			return -1;
		}
		vm->hidden[vm->nr_hidden++] = (struct hv_hidden_range){
			r->base, r->base + r->pages * PAGE_SIZE
		};
		hv_log("hidden region 0x%lx-0x%lx", r->base, (u64)(r->base + r->pages * PAGE_SIZE));
	}
	if (hv_memslots_build(vm, bi, limit))
		return -1;
	hv_memslots_log(vm);
	return 0;
}

void vm_vcpu_attach(struct vm *vm, struct vcpu *v)
{
	(void)vm;
	v->ops->set_tdp_root(v, 0);
}

void vm_handle_tdp_fault(struct vm *vm, struct vcpu *v, const struct hv_exit_tdp_fault *f)
{
	(void)vm;
	hv_guest_fatal("FATAL: nested page fault gpa=0x%lx rip=0x%lx without nested paging",
		       f->gpa, v->rip);
}

u64 vm_tdp_pages(struct vm *vm)
{
	(void)vm;
	return 0;
}
