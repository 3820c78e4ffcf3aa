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

#include "hv/insn.h"
#include "hv/vcpu.h"

/* Guest linear -> guest physical; 0 or -1 (not mapped, or tables not in RAM). */
int hv_guest_linear_to_phys(struct vcpu *v, u64 linear, gpa_t *gpa);
/* Copies `len` bytes at guest linear `linear` into buf; 0 or -1. */
int hv_guest_read_linear(struct vcpu *v, u64 linear, void *buf, size_t len);

/*
 * Up to `n` bytes of the instruction at the guest's CS:RIP into b (fewer when
 * it lies right before an unmapped page); the count, 0 if none can be read.
 */
unsigned int hv_guest_fetch_insn(struct vcpu *v, u8 *b, unsigned int n);
/* The code size of the guest's CS, for hv/insn.c. */
enum insn_mode hv_guest_insn_mode(const struct vcpu *v);
/* RIP past an emulated instruction of `len` bytes (wrapped to 32 bits outside 64-bit code). */
void hv_guest_skip_insn(struct vcpu *v, unsigned int len);

#endif /* PT_HV_GUEST_MEM_H */
