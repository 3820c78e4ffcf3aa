/* SPDX-License-Identifier: MIT */
/*
 * Compile-time checks that the numbers in asm_offsets.h, used by the
 * assembly stubs, match the C structures.
 */
#include "arch/x86/asm_offsets.h"
#include "arch/x86/host.h"
#include "hv/boot.h"
#include "hv/vcpu.h"

#include <stddef.h>

_Static_assert(offsetof(struct hv_takeover, guest_rip) == TAKEOVER_RIP, "takeover");
_Static_assert(offsetof(struct hv_takeover, guest_rsp) == TAKEOVER_RSP, "takeover");
_Static_assert(offsetof(struct hv_takeover, guest_rflags) == TAKEOVER_RFLAGS, "takeover");

#define CHECK_GPR(name, idx) _Static_assert(offsetof(struct hv_gprs, r[idx]) == GPR_##name, #name)
CHECK_GPR(RAX, HV_GPR_RAX);
CHECK_GPR(RCX, HV_GPR_RCX);
CHECK_GPR(RDX, HV_GPR_RDX);
CHECK_GPR(RBX, HV_GPR_RBX);
CHECK_GPR(RSP, HV_GPR_RSP);
CHECK_GPR(RBP, HV_GPR_RBP);
CHECK_GPR(RSI, HV_GPR_RSI);
CHECK_GPR(RDI, HV_GPR_RDI);
CHECK_GPR(R8, HV_GPR_R8);
CHECK_GPR(R9, HV_GPR_R9);
CHECK_GPR(R10, HV_GPR_R10);
CHECK_GPR(R11, HV_GPR_R11);
CHECK_GPR(R12, HV_GPR_R12);
CHECK_GPR(R13, HV_GPR_R13);
CHECK_GPR(R14, HV_GPR_R14);
CHECK_GPR(R15, HV_GPR_R15);

_Static_assert(offsetof(struct x86_exc_frame, vector) == EXC_FRAME_VECTOR, "frame");
_Static_assert(offsetof(struct x86_exc_frame, r15) == 0, "frame");
_Static_assert(offsetof(struct x86_exc_frame, rax) + 8 == EXC_FRAME_GPRS_SIZE, "frame");
_Static_assert(sizeof(struct x86_exc_frame) % 16 == 0, "frame keeps 16-byte alignment");
