/* SPDX-License-Identifier: MIT */
/*
 * The one VM: memslots, and its nested page tables built by mmu/ (the TDP
 * MMU) through the platform callbacks implemented in hv/vm.c.
 */
#ifndef PT_HV_VM_H
#define PT_HV_VM_H

#include "hv/memslot.h"
#include "hv/vcpu.h"

/*
 * Builds the slots from the boot memory map and the nested page tables
 * (identity map of every slot). Returns 0 or -1 (logged).
 */
int vm_create(struct vm *vm, const struct hv_boot_info *bi);
/*
 * vm_create's second half: mmu/ over vm->slots, laid out already (each
 * slot's mmu_id set here), the nested page tables of the first 4 GiB built.
 * Host tests lay out a machine's slots themselves. 0 or -1 (logged).
 */
int vm_create_tdp(struct vm *vm);
/*
 * Makes v one of the VM's vCPUs (vm->vcpus[v->id]) running on its own
 * reference to the VM's root, with its hooks (PML drain) set. 0, or -1
 * (logged) without memory for a root.
 */
int vm_vcpu_attach(struct vm *vm, struct vcpu *v);
/* A TDP fault outside the hidden ranges. */
void vm_handle_tdp_fault(struct vm *vm, struct vcpu *v, const struct hv_exit_tdp_fault *f);
/* Pages the nested page tables use now. */
u64 vm_tdp_pages(struct vm *vm);

#endif /* PT_HV_VM_H */
