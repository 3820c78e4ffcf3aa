/* SPDX-License-Identifier: MIT */
#include "hv/guest_mem.h"

#include "arch/x86/cpu.h"
#include "hv/hv.h"
#include "hv/page_alloc.h"

#define GPTE_P	     BIT_ULL(0)
#define GPTE_PS	     BIT_ULL(7)
#define GPTE_ADDR    GENMASK_ULL(51, 12)
#define X86_CR4_PSE  BIT_ULL(4)
#define X86_CR4_LA57 BIT_ULL(12)

/* True when [gpa, gpa + len) is in one slot backed by RAM (not MMIO). */
static bool gpa_readable(gpa_t gpa, u64 len)
{
	const struct hv_slot *s = hv_gpa_to_slot(hv.vm, gpa);

	if (!s || s->type == HV_MEM_MMIO)
		return false;
	return gpa_to_gfn(gpa + len - 1) < s->base_gfn + s->npages;
}

static int read_gpte(gpa_t gpa, bool wide, u64 *out)
{
	if (!gpa_readable(gpa, wide ? 8 : 4))
		return -1;
	*out = wide ? *(volatile u64 *)hv_va(gpa) : *(volatile u32 *)hv_va(gpa);
	return 0;
}

int hv_guest_linear_to_phys(struct vcpu *v, u64 linear, gpa_t *gpa)
{
	const struct hv_guest_ctrl *c = &v->ctrl;
	u64 e;
	int level;

	if (!(c->cr0 & X86_CR0_PG)) {
		*gpa = linear & 0xffffffffull;
		return 0;
	}
	if (c->efer & EFER_LMA) {
		u64 table = c->cr3 & GPTE_ADDR;

		level = (c->cr4 & X86_CR4_LA57) ? 5 : 4;
		for (; level >= 1; level--) {
			unsigned int shift = 12 + 9 * (level - 1);

			if (read_gpte(table + ((linear >> shift) & 511) * 8, true, &e) ||
			    !(e & GPTE_P))
				return -1;
			if (level == 1 || ((level == 2 || level == 3) && (e & GPTE_PS))) {
				u64 mask = (1ull << shift) - 1;

				*gpa = ((e & GPTE_ADDR) & ~mask) | (linear & mask);
				return 0;
			}
			table = e & GPTE_ADDR;
		}
		return -1;
	}
	linear &= 0xffffffffull;
	if (c->cr4 & X86_CR4_PAE) {
		if (read_gpte((c->cr3 & 0xffffffe0ull) + (linear >> 30) * 8, true, &e) ||
		    !(e & GPTE_P))
			return -1;
		if (read_gpte((e & GPTE_ADDR) + ((linear >> 21) & 511) * 8, true, &e) ||
		    !(e & GPTE_P))
			return -1;
		if (e & GPTE_PS) {
			*gpa = (e & GPTE_ADDR & ~0x1fffffull) | (linear & 0x1fffff);
			return 0;
		}
		if (read_gpte((e & GPTE_ADDR) + ((linear >> 12) & 511) * 8, true, &e) ||
		    !(e & GPTE_P))
			return -1;
		*gpa = (e & GPTE_ADDR) | (linear & 0xfff);
		return 0;
	}
	if (read_gpte((c->cr3 & 0xfffff000ull) + (linear >> 22) * 4, false, &e) || !(e & GPTE_P))
		return -1;
	if ((e & GPTE_PS) && (c->cr4 & X86_CR4_PSE)) {
		*gpa = (e & 0xffc00000ull) | (linear & 0x3fffff);
		return 0;
	}
	if (read_gpte((e & 0xfffff000ull) + ((linear >> 12) & 1023) * 4, false, &e) ||
	    !(e & GPTE_P))
		return -1;
	*gpa = (e & 0xfffff000ull) | (linear & 0xfff);
	return 0;
}

int hv_guest_read_linear(struct vcpu *v, u64 linear, void *buf, size_t len)
{
	u8 *out = buf;

	while (len) {
		size_t chunk = PAGE_SIZE - (linear & (PAGE_SIZE - 1));
		gpa_t gpa;
		size_t i;

		if (chunk > len)
			chunk = len;
		if (hv_guest_linear_to_phys(v, linear, &gpa) || !gpa_readable(gpa, chunk))
			return -1;
		for (i = 0; i < chunk; i++)
			out[i] = *(volatile u8 *)hv_va(gpa + i);
		out += chunk;
		linear += chunk;
		len -= chunk;
	}
	return 0;
}

unsigned int hv_guest_fetch_insn(struct vcpu *v, u8 *b, unsigned int n)
{
	u64 lin = v->ctrl.cs_base + v->rip, room = PAGE_SIZE - (lin & (PAGE_SIZE - 1));

	if (!hv_guest_read_linear(v, lin, b, n))
		return n;
	/* The instruction may end right before an unmapped page: read up to it. */
	n = room < n ? (unsigned int)room : 0;
	if (n && hv_guest_read_linear(v, lin, b, n))
		n = 0;
	return n;
}

enum insn_mode hv_guest_insn_mode(const struct vcpu *v)
{
	if (v->ctrl.cs_long)
		return INSN_MODE_64;
	return v->ctrl.cs_db ? INSN_MODE_32 : INSN_MODE_16;
}

void hv_guest_skip_insn(struct vcpu *v, unsigned int len)
{
	v->rip += len;
	if (!v->ctrl.cs_long)
		v->rip &= 0xffffffffull;
}
