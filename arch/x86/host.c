/* SPDX-License-Identifier: MIT */
#include "arch/x86/host.h"

#include "arch/x86/cpu.h"
#include "hv/log.h"
#include "hv/page_alloc.h"

#include <pt/assert.h>

#define PTE_P	      BIT_ULL(0)
#define PTE_W	      BIT_ULL(1)
#define PTE_PS	      BIT_ULL(7)
#define PTE_ADDR_MASK GENMASK_ULL(51, 12)

/* 64-bit interrupt gate, AMD APM Vol. 2, 4.8.4 "Gate Descriptors". */
struct x86_idt_gate {
	u16 offset_lo;
	u16 selector;
	u8 ist;
	u8 type_attr;
	u16 offset_mid;
	u32 offset_hi;
	u32 reserved;
};
_Static_assert(sizeof(struct x86_idt_gate) == 16, "idt gate");

#define IDT_GATE_INTR_P 0x8e

/* Null, 64-bit code (0x08), data (0x10). */
static const u64 host_gdt_init[] = {
    0,
    0x00af9a000000ffffull,
    0x00cf92000000ffffull,
};

struct host_state {
	u64 *gdt;
	struct x86_idt_gate *idt;
	hpa_t cr3;
	u64 table_pages;
};

static struct host_state host;

volatile u64 x86_host_nmis;
void (*x86_host_nmi_hook)(void);

extern const u64 x86_exc_stubs[X86_VEC_COUNT];
extern const char x86_rdmsr_insn[], x86_rdmsr_fixup[];
extern const char x86_wrmsr_insn[], x86_wrmsr_fixup[];

static u64 *host_table_alloc(void)
{
	u64 *t = hv_page_alloc();

	if (t)
		host.table_pages++;
	return t;
}

int x86_host_prepare(u64 top)
{
	bool gb = x86_has_1g_pages();
	u64 *pml4, *pdpt = NULL, *pd;
	u64 addr;
	unsigned int i;

	pml4 = host_table_alloc();
	if (!pml4)
		return -1;
	/*
	 * Identity map, writable, executable, WB through PAT entry 0; MMIO is
	 * made UC by the MTRRs the firmware programmed. Iterative: one pass
	 * over 1 GiB steps.
	 */
	for (addr = 0; addr < top; addr += 1ull << 30) {
		unsigned int l4 = (addr >> 39) & 511, l3 = (addr >> 30) & 511;

		if (!(pml4[l4] & PTE_P)) {
			pdpt = host_table_alloc();
			if (!pdpt)
				return -1;
			pml4[l4] = (u64)(uintptr_t)pdpt | PTE_P | PTE_W;
		}
		pdpt = (u64 *)(uintptr_t)(pml4[l4] & PTE_ADDR_MASK);
		if (gb) {
			pdpt[l3] = addr | PTE_P | PTE_W | PTE_PS;
			continue;
		}
		pd = host_table_alloc();
		if (!pd)
			return -1;
		for (i = 0; i < 512; i++)
			pd[i] = (addr + ((u64)i << 21)) | PTE_P | PTE_W | PTE_PS;
		pdpt[l3] = (u64)(uintptr_t)pd | PTE_P | PTE_W;
	}
	host.cr3 = (hpa_t)(uintptr_t)pml4;

	host.gdt = hv_page_alloc();
	host.idt = hv_page_alloc();
	if (!host.gdt || !host.idt)
		return -1;
	for (i = 0; i < ARRAY_SIZE(host_gdt_init); i++)
		host.gdt[i] = host_gdt_init[i];
	for (i = 0; i < X86_VEC_COUNT; i++) {
		u64 h = x86_exc_stubs[i];

		host.idt[i].offset_lo = (u16)h;
		host.idt[i].selector = X86_HOST_CS;
		host.idt[i].ist = 0;
		host.idt[i].type_attr = IDT_GATE_INTR_P;
		host.idt[i].offset_mid = (u16)(h >> 16);
		host.idt[i].offset_hi = (u32)(h >> 32);
	}
	return 0;
}

u64 x86_host_table_pages(void)
{
	return host.table_pages + 2;
}

void x86_host_enter(void)
{
	struct x86_dtr gdtr = {sizeof(host_gdt_init) - 1, (u64)(uintptr_t)host.gdt};
	struct x86_dtr idtr = {X86_VEC_COUNT * sizeof(struct x86_idt_gate) - 1,
			       (u64)(uintptr_t)host.idt};

	x86_lgdt(&gdtr);
	/* Reload CS with a far return, then the data segments. */
	__asm__ volatile("pushq %0\n\t"
			 "leaq 1f(%%rip), %%rax\n\t"
			 "pushq %%rax\n\t"
			 "lretq\n"
			 "1:\n\t"
			 "movw %w1, %%ax\n\t"
			 "movw %%ax, %%ss\n\t"
			 "movw %%ax, %%ds\n\t"
			 "movw %%ax, %%es\n\t"
			 :
			 : "i"((u64)X86_HOST_CS), "r"((u32)X86_HOST_DS)
			 : "rax", "memory");
	x86_lidt(&idtr);
	x86_write_cr3(host.cr3);
}

void x86_host_exception(struct x86_exc_frame *f)
{
	/*
	 * An NMI is not a fault: the interrupted code resumes as it was, and
	 * IRETQ (x86_exc_common) ends the CPU's NMI blocking. Whoever opened
	 * the window for it (svm_take_pending_nmi) looks at the count.
	 */
	if (f->vector == X86_VEC_NMI) {
		x86_host_nmis++;
		if (x86_host_nmi_hook)
			x86_host_nmi_hook();
		return;
	}
	if (f->vector == X86_VEC_GP && f->rip == (u64)(uintptr_t)x86_rdmsr_insn) {
		f->rip = (u64)(uintptr_t)x86_rdmsr_fixup;
		f->rax = (u64)-1;
		return;
	}
	if (f->vector == X86_VEC_GP && f->rip == (u64)(uintptr_t)x86_wrmsr_insn) {
		f->rip = (u64)(uintptr_t)x86_wrmsr_fixup;
		f->rax = (u64)-1;
		return;
	}
	hv_panic("host exception %lu err=0x%lx rip=0x%lx rsp=0x%lx cr2=0x%lx rax=0x%lx rcx=0x%lx",
		 f->vector, f->error_code, f->rip, f->rsp, x86_read_cr2(), f->rax, f->rcx);
}
