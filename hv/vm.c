/* SPDX-License-Identifier: MIT */
/*
 * The VM's memory: memslots from the boot memory map, and the nested page
 * tables, which mmu/ builds and changes. This file is mmu/'s platform: page
 * allocation from the hidden pool, identity hpa<->pointer, TLB flushes
 * through the vCPU (TLB_CONTROL on SVM), logging.
 */
#include "hv/vm.h"

#include "arch/x86/apic.h"
#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "hv/cow_session.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/mgmt_tick.h"
#include "hv/page_alloc.h"
#include "hv/smp.h"
#include "mmu/tdp_mmu.h"

#include <pt/assert.h>

/* Address space 0: the only one (no SMM address space). */
#define VM_AS 0

static void *plat_alloc_pt_page(void *ctx, hpa_t *hpa)
{
	void *p = hv_page_alloc();

	(void)ctx;
	if (p)
		*hpa = hv_pa(p);
	return p;
}

static void plat_free_pt_page(void *ctx, void *va, hpa_t hpa)
{
	(void)ctx;
	PT_ASSERT(hv_pa(va) == hpa);
	hv_page_free(va);
}

static void *plat_hpa_to_va(void *ctx, hpa_t hpa)
{
	(void)ctx;
	return hv_va(hpa);
}

/*
 * Every vCPU's TLB, on return: the ones in the guest are kicked and waited
 * for, the others flush before their next entry (hv/smp.h). All vCPUs run
 * on the one root, so `root` does not narrow it.
 */
static void plat_flush_tlbs(void *ctx, const struct tdp_mmu_root *root)
{
	(void)root;
	smp_flush_tlbs(ctx);
}

static void plat_log(void *ctx, enum mmu_log_level level, const char *msg, u64 a, u64 b)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};

	(void)ctx;
	if (level == MMU_LOG_DEBUG)
		return;
	hv_log("mmu %s: %s 0x%lx 0x%lx", names[level], msg, a, b);
}

static int vm_collect_hidden(struct vm *vm, const struct hv_boot_info *bi)
{
	unsigned int i;
	gpa_t gpa, end;

	vm->nr_hidden = 0;
	for (i = 0; i < bi->nr_ranges; i++) {
		const struct hv_mem_range *r = &bi->ranges[i];
		u64 end = r->base + r->pages * PAGE_SIZE;

		if (r->type != HV_MEM_HIDDEN)
			continue;
		if (vm->nr_hidden == HV_MAX_HIDDEN) {
			hv_log("too many hidden ranges");
			return -1;
		}
		vm->hidden[vm->nr_hidden++] = (struct hv_hidden_range){r->base, end};
		hv_log("hidden region 0x%lx-0x%lx", r->base, end);
	}
	if (vm->lapic_intercept) {
		if (vm->nr_hidden == HV_MAX_HIDDEN) {
			hv_log("too many hidden ranges");
			return -1;
		}
		vm->hidden[vm->nr_hidden++] =
		    (struct hv_hidden_range){APIC_DEFAULT_BASE, APIC_DEFAULT_BASE + PAGE_SIZE};
		hv_log("local APIC page 0x%lx-0x%lx read-only for the guest: its writes are "
		       "emulated (INIT and start-up IPIs to vCPUs)",
		       APIC_DEFAULT_BASE, APIC_DEFAULT_BASE + (u64)PAGE_SIZE);
	}
	if (hv.mgmt_uart.space == UART_SPACE_MMIO) {
		/* The management UART's registers: the guest must not reach them (hv/mgmt_uart.h).
		 */
		gpa = hv.mgmt_uart.base & PAGE_MASK;
		end = (hv.mgmt_uart.base + uart_span(&hv.mgmt_uart) + PAGE_SIZE - 1) & PAGE_MASK;
		if (vm->nr_hidden == HV_MAX_HIDDEN) {
			hv_log("too many hidden ranges");
			return -1;
		}
		vm->hidden[vm->nr_hidden++] = (struct hv_hidden_range){gpa, end};
		hv_log("hidden region 0x%lx-0x%lx (the management UART's registers)", gpa, end);
	}
	if (hv_mgmt_tick_hpet_page(&gpa)) {
		if (vm->nr_hidden == HV_MAX_HIDDEN) {
			hv_log("too many hidden ranges");
			return -1;
		}
		vm->hidden[vm->nr_hidden++] = (struct hv_hidden_range){gpa, gpa + PAGE_SIZE};
		/* Not "hidden region": that line means "every access faults" to its readers. */
		hv_log("HPET page 0x%lx-0x%lx emulated for the guest: every access exits "
		       "(one comparator is the management tick's)",
		       gpa, gpa + (u64)PAGE_SIZE);
	}
	return 0;
}

/*
 * With more than one CPU, the local APIC's page is mapped read-only (still
 * uncacheable, never executable) in place of its MMIO slot's mapping, so
 * that the guest's writes exit and its INIT and start-up IPIs are emulated
 * (hv/lapic.h). It is left out of the MMIO slots like a hidden range
 * (vm_collect_hidden) but hv/exit.c hands its faults to hv/lapic.c.
 */
static int vm_map_lapic(struct vm *vm)
{
	struct tdp_map_attrs attrs = {
	    .writable = false,
	    .executable = false,
	    .memtype = TDP_MEMTYPE_MMIO,
	    .max_level = TDP_LEVEL_4K,
	};
	int rc;

	if (!vm->lapic_intercept)
		return 0;
	rc = tdp_mmu_set_memslot(vm->mmu, VM_AS, gpa_to_gfn(APIC_DEFAULT_BASE), 1,
				 gpa_to_gfn(APIC_DEFAULT_BASE), &attrs, TDP_SLOT_READONLY);
	if (rc < 0) {
		hv_log("tdp_mmu_set_memslot(local APIC at 0x%lx): %d", APIC_DEFAULT_BASE, rc);
		return -1;
	}
	return 0;
}

int vm_create_tdp(struct vm *vm)
{
	struct spte_format fmt;
	struct mmu_platform plat = {
	    .ctx = vm,
	    .alloc_pt_page = plat_alloc_pt_page,
	    .free_pt_page = plat_free_pt_page,
	    .hpa_to_va = plat_hpa_to_va,
	    .flush_tlbs = plat_flush_tlbs,
	    .relax = NULL,
	    .log = plat_log,
	};
	u64 pages = (sizeof(struct tdp_mmu) + PAGE_SIZE - 1) / PAGE_SIZE;
	struct tdp_mmu_root *root;
	unsigned int i;
	bool flush = false;
	int rc;

	vm->mmu = hv_pages_alloc_contig(pages);
	if (!vm->mmu)
		return -1;
	arch_tdp_format_init(&fmt);
	rc = tdp_mmu_init(vm->mmu, &fmt, &plat);
	if (rc) {
		hv_log("tdp_mmu_init: %d", rc);
		return -1;
	}
	for (i = 0; i < vm->nr_slots; i++) {
		struct hv_slot *s = &vm->slots[i];
		struct tdp_map_attrs attrs = {
		    .writable = true,
		    .executable = true,
		    .memtype = s->type == HV_MEM_MMIO ? TDP_MEMTYPE_MMIO : TDP_MEMTYPE_RAM,
		    .max_level = TDP_LEVEL_1G,
		};

		rc = tdp_mmu_set_memslot(vm->mmu, VM_AS, s->base_gfn, s->npages, s->base_gfn,
					 &attrs, 0);
		if (rc < 0) {
			hv_log("tdp_mmu_set_memslot(0x%lx, %lu pages): %d", s->base_gfn, s->npages,
			       rc);
			return -1;
		}
		s->mmu_id = rc;
	}
	if (vm_map_lapic(vm))
		return -1;
	/* A valid root outlives its references: the vCPUs take their own (vm_vcpu_attach). */
	root = tdp_mmu_get_root(vm->mmu, VM_AS);
	if (!root) {
		hv_log("no memory for the nested page table root");
		return -1;
	}
	tdp_mmu_put_root(vm->mmu, root);
	/*
	 * Eagerly map the first 4 GiB (RAM, ACPI, firmware, low MMIO); MMIO
	 * above is mapped when first touched (tdp_mmu_page_fault).
	 */
	rc = tdp_mmu_map_range(vm->mmu, VM_AS, 0, gpa_to_gfn(4ull << 30), &flush);
	if (rc) {
		hv_log("tdp_mmu_map_range: %d", rc);
		return -1;
	}
	return 0;
}

int vm_create(struct vm *vm, const struct hv_boot_info *bi)
{
	vm->slots = hv_pages_alloc_contig((HV_MAX_SLOTS * sizeof(*vm->slots) + PAGE_SIZE - 1) /
					  PAGE_SIZE);
	if (!vm->slots) {
		hv_log("out of pool memory for the memory layout");
		return -1;
	}
	vm->lapic_intercept = bi->nr_cpus > 1 && arch_smp_supported(NULL);
	if (vm->lapic_intercept &&
	    (x86_rdmsr(MSR_IA32_APIC_BASE) & APIC_BASE_ADDR_MASK) != APIC_DEFAULT_BASE) {
		hv_log("smp: the local APIC is not at 0x%lx: only the boot CPU is virtualized",
		       APIC_DEFAULT_BASE);
		vm->lapic_intercept = false;
	}
	if (vm_collect_hidden(vm, bi))
		return -1;
	if (hv_memslots_build(vm, bi, 1ull << x86_phys_addr_bits()))
		return -1;
	hv_memslots_log(vm);
	return vm_create_tdp(vm);
}

/* The backend's PML-full exit and pml_flush (struct vcpu_hooks). */
static void vm_pml_drain(void *ctx, struct vcpu *v, const u64 *buf, u16 *index)
{
	struct vm *vm = ctx;

	(void)v;
	tdp_mmu_pml_drain(vm->mmu, VM_AS, buf, index);
}

int vm_vcpu_attach(struct vm *vm, struct vcpu *v)
{
	struct tdp_mmu_root *root = tdp_mmu_get_root(vm->mmu, VM_AS);

	if (!root) {
		hv_log("no memory for vCPU %u's nested page table root", v->id);
		return -1;
	}
	v->vm = vm;
	v->hooks.ctx = vm;
	v->hooks.pml_drain = vm_pml_drain;
	v->tdp_root = root;
	v->ops->set_tdp_root(v, tdp_mmu_root_hpa(root));
	vm->vcpus[v->id] = v;
	if (v->id >= vm->nr_vcpus)
		vm->nr_vcpus = v->id + 1;
	return 0;
}

/* The vCPU's root was invalidated: it moves to the valid one (its own reference). */
static void vm_reload_root(struct vm *vm, struct vcpu *v)
{
	struct tdp_mmu_root *old = v->tdp_root, *root = tdp_mmu_get_root(vm->mmu, VM_AS);

	if (!root)
		hv_guest_fatal(v, "FATAL: no memory for a new nested page table root");
	v->tdp_root = root;
	v->ops->set_tdp_root(v, tdp_mmu_root_hpa(root));
	tdp_mmu_put_root(vm->mmu, old);
}

void vm_handle_tdp_fault(struct vm *vm, struct vcpu *v, const struct hv_exit_tdp_fault *f)
{
	u64 flags = (f->write ? TDP_FAULT_WRITE : 0) | (f->fetch ? TDP_FAULT_EXEC : 0) |
		    (f->present ? TDP_FAULT_PRESENT : 0);
	enum tdp_fault_result r;

	if (!tdp_mmu_root_is_valid(v->tdp_root)) {
		vm_reload_root(vm, v);
		return;
	}
	r = tdp_mmu_page_fault(vm->mmu, v->tdp_root, f->gpa, flags);
	switch (r) {
	case TDP_FAULT_FIXED:
	case TDP_FAULT_SPURIOUS:
		return;
	case TDP_FAULT_RETRY:
		vm_reload_root(vm, v);
		return;
	case TDP_FAULT_NO_SLOT:
	case TDP_FAULT_ACCESS:
		/* Slots cover every address below gpa_limit but the hidden pool. */
		hv_log("npf outside any slot or forbidden: gpa=0x%lx rip=0x%lx result=%d: #GP",
		       f->gpa, v->rip, (int)r);
		v->stats.injected_gp++;
		v->ops->inject_exception(v, X86_VEC_GP, true, 0);
		return;
	case TDP_FAULT_NOMEM:
		hv_guest_fatal(v, "FATAL: out of pool memory for nested page tables (gpa=0x%lx)",
			       f->gpa);
	case TDP_FAULT_TRACKED:
		/*
		 * A page of a copy-on-write snapshot's instant: copied (or
		 * found sent) and untracked, or no room yet. Either way the
		 * guest goes back unchanged and faults again: then W comes
		 * back through dirty logging's path, or the vCPU goes on
		 * waiting through the normal exit path (polls, pauses, kicks).
		 */
		if (!vm->cow)
			hv_panic("a write-tracked page (gpa=0x%lx) and no tracker", f->gpa);
		cow_handle_write(vm->cow, v->id, f->gpa);
		return;
	}
	hv_panic("tdp_mmu_page_fault returned %d", (int)r);
}

u64 vm_tdp_pages(struct vm *vm)
{
	struct tdp_mmu_stats st;

	if (!vm->mmu)
		return 0;
	tdp_mmu_get_stats(vm->mmu, &st);
	return st.pt_pages;
}
