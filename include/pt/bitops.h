/* SPDX-License-Identifier: MIT */
/*
 * Bit helpers that are safe in the freestanding image. The image is built
 * with -mgeneral-regs-only, so __builtin_popcountll is a call to libgcc's
 * __popcountdi2, which is not linked (and the link refuses undefined symbols).
 * __builtin_ctzll/clzll compile to BSF/BSR and are fine.
 */
#ifndef PT_BITOPS_H
#define PT_BITOPS_H

#include <pt/types.h>

static inline unsigned int pt_popcount64(u64 x)
{
	x = x - ((x >> 1) & 0x5555555555555555ull);
	x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
	x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
	return (unsigned int)((x * 0x0101010101010101ull) >> 56);
}

#endif /* PT_BITOPS_H */
