/* SPDX-License-Identifier: MIT */
/*
 * Reading guest memory from the host: a walk of the guest's own page tables
 * (paging off, 32-bit, PAE, 4-level long mode) over guest-physical memory,
 * which is identity-mapped host memory. Every guest-physical address the walk
 * or the read touches must lie in a RAM-like slot: a guest that points its
 * page tables or code at the hypervisor's memory or at MMIO gets an error,
 * never a read of that memory.
 */
#ifndef PT_HV_GUEST_MEM_H
#define PT_HV_GUEST_MEM_H

#include "hv/vcpu.h"

/* Guest linear -> guest physical; 0 or -1 (not mapped, or tables not in RAM). */
int hv_guest_linear_to_phys(struct vcpu *v, u64 linear, gpa_t *gpa);
/* Copies `len` bytes at guest linear `linear` into buf; 0 or -1. */
int hv_guest_read_linear(struct vcpu *v, u64 linear, void *buf, size_t len);

#endif /* PT_HV_GUEST_MEM_H */
