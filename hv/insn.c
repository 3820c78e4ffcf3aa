/* SPDX-License-Identifier: MIT */
#include "hv/insn.h"

#define INSN_MAX_LEN 15 /* APM Vol. 3, 1.1 "Instruction Encoding Overview" */

static bool insn_is_legacy_prefix(u8 b)
{
	switch (b) {
	case 0x66: /* operand size */
	case 0x67: /* address size */
	case 0x26: /* segment overrides */
	case 0x2e:
	case 0x36:
	case 0x3e:
	case 0x64:
	case 0x65:
		return true;
	}
	return false;
}

/*
 * Bytes of ModRM, SIB and displacement after the opcode (APM Vol. 3, 1.4
 * "ModRM and SIB Bytes", Tables 1-10 to 1-13), or -1 past n. A register
 * destination (mod = 3) is no store to memory: refused.
 */
static int insn_modrm_len(const u8 *b, unsigned int i, unsigned int n, bool addr16)
{
	unsigned int mod, rm, len = 1;

	if (i >= n)
		return -1;
	mod = b[i] >> 6;
	rm = b[i] & 7;
	if (mod == 3)
		return -1;
	if (addr16) {
		if (mod == 1)
			len += 1;
		else if (mod == 2 || (mod == 0 && rm == 6))
			len += 2;
	} else {
		if (rm == 4) {
			if (i + 1 >= n)
				return -1;
			len += 1; /* SIB */
			if (mod == 0 && (b[i + 1] & 7) == 5)
				len += 4; /* no base: disp32 */
		}
		if (mod == 1)
			len += 1;
		else if (mod == 2 || (mod == 0 && rm == 5))
			len += 4; /* disp32, RIP-relative in 64-bit mode */
	}
	return i + len <= n ? (int)len : -1;
}

int insn_decode_mov(const u8 *b, unsigned int n, enum insn_mode mode, struct insn_store *out)
{
	bool opsize = false, addrsize = false, rex_w = false, rex_r = false;
	unsigned int i = 0, imm_bytes = 0, j;
	int m;
	u8 op;

	if (n > INSN_MAX_LEN)
		n = INSN_MAX_LEN;
	while (i < n && insn_is_legacy_prefix(b[i])) {
		opsize |= b[i] == 0x66;
		addrsize |= b[i] == 0x67;
		i++;
	}
	/* REX only in 64-bit mode, only right before the opcode (APM Vol. 3, 1.2.7). */
	if (mode == INSN_MODE_64 && i < n && (b[i] & 0xf0) == 0x40) {
		rex_w = b[i] & 8;
		rex_r = b[i] & 4;
		i++;
	}
	if (i >= n)
		return -1;
	op = b[i++];
	if (op != 0x89 && op != 0xc7 && op != 0x8b)
		return -1;
	if (op == 0xc7 && (i >= n || ((b[i] >> 3) & 7) != 0))
		return -1; /* C7 /0 only */
	m = insn_modrm_len(b, i, n, mode == INSN_MODE_16 ? !addrsize : (mode == INSN_MODE_32 && addrsize));
	if (m < 0)
		return -1;
	if (rex_w)
		out->size = 8;
	else if (mode == INSN_MODE_16)
		out->size = opsize ? 4 : 2;
	else
		out->size = opsize ? 2 : 4;
	out->reg = (u8)(((b[i] >> 3) & 7) | (rex_r ? 8 : 0));
	out->load = op == 0x8b;
	out->has_imm = op == 0xc7;
	out->imm = 0;
	i += (unsigned int)m;
	if (out->has_imm) {
		imm_bytes = out->size == 2 ? 2 : 4; /* imm32 sign-extended for 64-bit */
		if (i + imm_bytes > n)
			return -1;
		for (j = 0; j < imm_bytes; j++)
			out->imm |= (u64)b[i + j] << (8 * j);
		if (out->size == 8 && (out->imm & BIT_ULL(31)))
			out->imm |= 0xffffffff00000000ull;
		i += imm_bytes;
		out->reg = 0;
	}
	out->len = (u8)i;
	return 0;
}

int insn_decode_store(const u8 *b, unsigned int n, enum insn_mode mode, struct insn_store *out)
{
	if (insn_decode_mov(b, n, mode, out) || out->load)
		return -1;
	return 0;
}

u64 insn_load_result(u64 old, u64 val, unsigned int size)
{
	switch (size) {
	case 2:
		return (old & ~0xffffull) | (val & 0xffff);
	case 4:
		return val & 0xffffffffull;
	}
	return val;
}
