/* SPDX-License-Identifier: MIT */
/*
 * Just enough x86 instruction decoding to emulate a guest's access to an
 * intercepted MMIO page (the local APIC's stores, hv/lapic.c; the HPET's
 * loads and stores, hv/vhpet.c): MOV r/m, reg (89), MOV r/m, imm (C7 /0) and
 * MOV reg, r/m (8B), with legacy and REX prefixes, in 16-, 32- and 64-bit
 * code. TCG has no decode assists (docs/hv.md "SVM under QEMU TCG"), so
 * the bytes come from guest memory. Pure: no guest access, host-tested.
 * AMD APM Vol. 3, 1 "Instruction Encoding"; Intel SDM Vol. 2A, 2.1-2.2.
 */
#ifndef PT_HV_INSN_H
#define PT_HV_INSN_H

#include <pt/types.h>

/* The code segment's defaults: long mode (CS.L), else CS.D/B, else 16-bit. */
enum insn_mode {
	INSN_MODE_16,
	INSN_MODE_32,
	INSN_MODE_64,
};

struct insn_store {
	u8 len;	      /* bytes, prefixes included */
	u8 size;      /* operand bytes: 2, 4 or 8 */
	bool load;    /* MOV reg, r/m: memory into GPR `reg` (else a store) */
	bool has_imm; /* store whose source is the immediate, else GPR `reg` */
	u8 reg;	      /* source (store) or destination (load) register number (REX.R included) */
	u64 imm;      /* sign-extended to `size` */
};

/*
 * Decodes the store at the start of b[0..n). 0, or -1 if the bytes are not
 * one of the stores above (or run past n).
 */
int insn_decode_store(const u8 *b, unsigned int n, enum insn_mode mode, struct insn_store *out);
/* The same, and also MOV reg, r/m (8B): a load (out->load). */
int insn_decode_mov(const u8 *b, unsigned int n, enum insn_mode mode, struct insn_store *out);
/*
 * The destination register's new value after a load of `size` bytes of
 * `val` into a register that held `old` (APM Vol. 1, 3.1.2.3 "Implicit
 * Zero Extension": a 32-bit result clears bits 63:32, a 16-bit one keeps them).
 */
u64 insn_load_result(u64 old, u64 val, unsigned int size);

#endif /* PT_HV_INSN_H */
