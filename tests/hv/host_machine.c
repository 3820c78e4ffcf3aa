/* SPDX-License-Identifier: MIT */
/* The hardware under hv/ in host tests: see host_machine.h. */
#include "host_machine.h"

#include "arch/x86/backend.h"
#include "hv/control.h"
#include "hv/log.h"
#include "hv/mgmt_uart.h"
#include "hv/page_alloc.h"
#include "hv/smp.h"
#include "hv/vm.h"
#include "mmu/tdp_mmu.h"
#include "tests/model/hw_arch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/*
 * Faults in a row on one page before a store counts as stuck: a write to a
 * page being copied for a snapshot takes three (tracked, write-protected,
 * then writable), a root reload one more; a vCPU waiting for the snapshot's
 * budget faults for ever.
 */
#define HM_STUCK_FAULTS 16

struct hv hv;

static struct host_machine *hm;
static struct x86_backend hm_backend;
const struct x86_backend *x86_backend;

/* ---- the CPU's side of arch/x86 (arch/x86/backend.h, hv/hv.h) ---- */

bool arch_pml_supported(const char **why)
{
	*why = "the simulated CPU (AMD, nested paging) has no PML";
	return hm->cfg.pml;
}

void arch_tdp_format_init(struct spte_format *fmt)
{
	if (hm->cfg.pml)
		spte_format_init_ept(fmt, true, true);
	else
		spte_format_init_npt(fmt, true);
}

bool arch_smp_supported(const char **why)
{
	(void)why;
	return true;
}

int arch_own_mgmt_tick(void)
{
	return HV_MGMT_TICK_NONE;
}

bool arch_nmi_tick_supported(void)
{
	return false;
}

/* MSRs the exit path forwards (hv/exit.c): the simulated CPU has none, #GP. */
int x86_rdmsr_safe(u32 msr, u64 *val)
{
	(void)msr;
	*val = 0;
	return -1;
}

int x86_wrmsr_safe(u32 msr, u64 val)
{
	(void)msr;
	(void)val;
	return -1;
}

/* hv/log.c's debug console: the process's stderr, unless the test wants quiet. */
void hv_host_debugcon_putc(char c)
{
	if (!hm || !hm->cfg.quiet)
		fputc(c, stderr);
}

/* hv/mgmt_uart.c's choice of the port is the image's (it probes hardware): here COM2. */
const char *hv_mgmt_uart_name(void)
{
	return "COM2 (simulated 16550)";
}

/* ---- the other CPUs (hv/smp.h): one thread runs every vCPU ---- */

void smp_flush_tlbs(struct vm *vm)
{
	__atomic_add_fetch(&vm->tlb_gen, 1, __ATOMIC_SEQ_CST);
	hw_flush_root(&hm->hw, 0);
}

void smp_pause_others(struct vm *vm, struct vcpu *self)
{
	__atomic_store_n(&vm->pause_req, 1, __ATOMIC_SEQ_CST);
	for (u32 i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (v == self)
			continue;
		/* Parked: its segments read on its own CPU, as hv/smp.c has them read. */
		v->ops->get_sregs(v, &v->sregs);
		__atomic_store_n(&v->sregs_valid, 1, __ATOMIC_RELEASE);
		__atomic_store_n(&v->parked, 1, __ATOMIC_SEQ_CST);
	}
	if (hm->cfg.on_pause)
		hm->cfg.on_pause(hm->cfg.ctx);
}

void smp_resume_others(struct vm *vm)
{
	for (u32 i = 0; i < vm->nr_vcpus; i++) {
		__atomic_store_n(&vm->vcpus[i]->sregs_valid, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&vm->vcpus[i]->parked, 0, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&vm->pause_req, 0, __ATOMIC_SEQ_CST);
}

int smp_set_pml(struct vm *vm, bool on)
{
	__atomic_store_n(&vm->pml_on, on, __ATOMIC_SEQ_CST);
	for (u32 i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = vm->vcpus[i];

		if (!v->ops->set_pml || v->ops->set_pml(v, on))
			return -1;
		v->pml_on = on;
	}
	return 0;
}

void smp_drain_pml(struct vm *vm, struct vcpu *self)
{
	(void)self;
	vm->pml_drain_gen++;
	for (u32 i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i]->ops->pml_flush)
			vm->vcpus[i]->ops->pml_flush(vm->vcpus[i]);
}

void smp_kick(struct vcpu *t)
{
	(void)t;
}

bool smp_claim_kick(struct vcpu *v)
{
	(void)v;
	return false;
}

struct vcpu *smp_vcpu_by_apic_id(struct vm *vm, u32 apic_id)
{
	for (u32 i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i]->apic_id == apic_id)
			return vm->vcpus[i];
	return NULL;
}

/* INIT and start-up IPIs: the simulated machine never intercepts the APIC page. */
void smp_vcpu_init_signal(struct vcpu *v)
{
	hv_panic("vCPU %u: INIT signal on the simulated machine", v->id);
}

void smp_deliver_init(struct vcpu *t)
{
	hv_panic("INIT to vCPU %u on the simulated machine", t->id);
}

void smp_deliver_sipi(struct vcpu *t, u8 vector)
{
	hv_panic("start-up IPI (vector 0x%x) to vCPU %u on the simulated machine", vector, t->id);
}

/* hv/hv.c's: the guest stopped for good; the boot CPU serves the port (this thread). */
void hv_guest_stop(struct vcpu *v)
{
	if (!__atomic_exchange_n(&v->vm->stopped, 1, __ATOMIC_SEQ_CST))
		hv_log("vCPU %u: the guest is stopped for good; the hypervisor stays up", v->id);
	__atomic_store_n(&v->vm->pause_req, 1, __ATOMIC_SEQ_CST);
	if (hm->cfg.on_guest_stop)
		hm->cfg.on_guest_stop(hm->cfg.ctx, v->id);
	hv_control_serve_stopped(hv.vcpu);
}

/* ---- a vCPU (struct vcpu_ops) on the hardware model ---- */

static struct hw_vcpu *hwv(struct vcpu *v)
{
	return &hm->hw.vcpus[v->id];
}

static void op_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error)
{
	(void)has_error;
	(void)error;
	hv_log("vCPU %u: exception %u injected", v->id, vector);
	hm->access[v->id].exception = true;
}

static void op_set_efer(struct vcpu *v, u64 efer)
{
	v->ctrl.efer = efer;
}

static void op_flush_tlb(struct vcpu *v)
{
	hw_flush_vcpu(hwv(v));
}

static void op_set_tdp_root(struct vcpu *v, hpa_t root)
{
	hw_vcpu_set_root(hwv(v), root);
}

static int op_set_pml(struct vcpu *v, bool on)
{
	hwv(v)->pml_enabled = on;
	return 0;
}

static int pml_drain_to_hook(struct hw_vcpu *h, const u64 *buf, u16 index, void *ctx)
{
	struct vcpu *v = ctx;

	(void)h;
	v->hooks.pml_drain(v->hooks.ctx, v, buf, &index);
	return 0;
}

static void op_pml_flush(struct vcpu *v)
{
	hw_pml_drain(hwv(v), pml_drain_to_hook, v);
}

static void op_get_sregs(struct vcpu *v, struct hv_guest_sregs *out)
{
	/* A 64-bit kernel's flat segments, and tables that say which vCPU they are. */
	*out = (struct hv_guest_sregs){
	    .cs = {.base = 0, .limit = 0xffffffff, .attr = 0xa09b00, .sel = 0x10},
	    .ss = {.base = 0, .limit = 0xffffffff, .attr = 0xc09300, .sel = 0x18},
	    .ds = {.base = 0, .limit = 0xffffffff, .attr = 0xc09300, .sel = 0x18},
	    .es = {.base = 0, .limit = 0xffffffff, .attr = 0xc09300, .sel = 0x18},
	    .fs = {.base = v->ctrl.fs_base, .limit = 0xffffffff, .attr = 0xc09300},
	    .gs = {.base = v->ctrl.gs_base, .limit = 0xffffffff, .attr = 0xc09300},
	    .tr = {.base = 0xfffffe0000003000ull + v->id * 0x1000ull,
		   .limit = 0x4087,
		   .attr = 0x8b00,
		   .sel = 0x40},
	    .gdt_base = 0xfffffe0000001000ull + v->id * 0x1000ull,
	    .gdt_limit = 0x7f,
	    .idt_base = 0xfffffe0000000000ull,
	    .idt_limit = 0xfff,
	    .kernel_gs_base = 0xffff888000000000ull + v->id,
	};
}

static const struct vcpu_ops hm_vcpu_ops = {
    .inject_exception = op_inject_exception,
    .set_efer = op_set_efer,
    .flush_tlb = op_flush_tlb,
    .set_tdp_root = op_set_tdp_root,
    .get_sregs = op_get_sregs,
};

/* The same, with PML (set_pml and pml_flush present only where the CPU has it). */
static const struct vcpu_ops hm_vcpu_ops_pml = {
    .inject_exception = op_inject_exception,
    .set_efer = op_set_efer,
    .flush_tlb = op_flush_tlb,
    .set_tdp_root = op_set_tdp_root,
    .set_pml = op_set_pml,
    .pml_flush = op_pml_flush,
    .get_sregs = op_get_sregs,
};

/* ---- the hardware model's exits, as arch/x86 turns them into hv/'s ---- */

static u64 *hm_hpa_to_table(hpa_t hpa)
{
	return hv_va(hpa);
}

/* An EPT violation (SDM Vol. 3C 28.2.1) or a #NPF (APM Vol. 2 15.25.6) as HV_EXIT_TDP_FAULT. */
static int hm_fault(struct hw_vcpu *h, const struct hw_fault *f, void *ctx)
{
	struct vcpu *v = &hm->vcpus[h->id];
	typeof(hm->access[0]) *a = &hm->access[h->id];
	struct hv_exit e = {.reason = HV_EXIT_TDP_FAULT};

	(void)ctx;
	if (hm->cfg.pml) {
		e.raw_code = 48; /* EXIT_REASON_EPT_VIOLATION */
		e.name = "ept_violation";
		e.tdp.present = f->exit_info & (HW_EPT_VIOL_READABLE | HW_EPT_VIOL_WRITABLE |
						HW_EPT_VIOL_EXECUTABLE);
	} else {
		e.raw_code = 0x400; /* VMEXIT_NPF */
		e.name = "npf";
		e.tdp.present = f->exit_info & HW_PFERR_P;
	}
	e.raw_info1 = f->exit_info;
	e.raw_info2 = f->gpa;
	e.tdp.gpa = f->gpa;
	e.tdp.write = f->write;
	if ((f->gpa & PAGE_MASK) != (a->gpa & PAGE_MASK))
		a->faults = 0;
	a->gpa = f->gpa;
	if (++a->faults > HM_STUCK_FAULTS)
		return -EAGAIN;
	hv_handle_exit(v, &e);
	return a->exception ? -EFAULT : 0;
}

static int hm_pml_full(struct hw_vcpu *h, const u64 *buf, u16 index, void *ctx)
{
	struct vcpu *v = &hm->vcpus[h->id];

	(void)ctx;
	/* Handled inside the backend, as VMX does: counted, not an hv/ exit. */
	v->stats.pml_full++;
	v->hooks.pml_drain(v->hooks.ctx, v, buf, &index);
	return 0;
}

static void hm_store(struct hw_vcpu *h, gpa_t gpa, hpa_t hpa, u64 value, void *ctx)
{
	(void)h;
	(void)gpa;
	(void)ctx;
	memcpy(hv_va(hpa), &value, sizeof(value));
}

static void hm_misconfig(struct hw_vcpu *h, const struct hw_fault *f, void *ctx)
{
	(void)ctx;
	hv_panic(
	    "vCPU %d: EPT misconfiguration / reserved bit at gpa 0x%lx (level %d, entry 0x%lx)",
	    h->id, f->gpa, f->level, f->entry);
}

int host_machine_store(struct host_machine *m, u32 vcpu, gpa_t gpa, u64 value)
{
	m->access[vcpu].faults = 0;
	m->access[vcpu].exception = false;
	return hw_access(&m->hw.vcpus[vcpu], gpa, HW_WRITE, value);
}

void host_machine_intr_exit(struct host_machine *m, u32 vcpu)
{
	struct hv_exit e = {.reason = HV_EXIT_INTR, .name = "intr"};

	hv_handle_exit(&m->vcpus[vcpu], &e);
}

void host_machine_drain_pool(struct host_machine *m, u64 pages)
{
	(void)m;
	while (hv_pages_free() > pages)
		if (!hv_page_alloc())
			break;
}

static u32 fill_rng(u32 *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 17;
	*st ^= *st << 5;
	return *st;
}

void host_machine_fill(struct host_machine *m, gpa_t gpa, u64 npages, u32 seed, bool mixed)
{
	u32 st = seed | 1;

	for (u64 p = 0; p < npages; p++) {
		u8 *pg = host_machine_mem(m, gpa + p * PAGE_SIZE);
		u32 kind = mixed ? fill_rng(&st) % 4 : 1;

		memset(pg, 0, PAGE_SIZE);
		if (kind == 1) { /* random */
			for (u32 k = 0; k < PAGE_SIZE; k++)
				pg[k] = (u8)fill_rng(&st);
		} else if (kind == 2) { /* text-like, repetitive */
			for (u32 k = 0; k < PAGE_SIZE; k++)
				pg[k] = (u8)("pagetrail dirty page "[k % 21] + (k / 512));
		} else if (kind == 3) { /* sparse words */
			for (u32 k = 0; k < 16; k++)
				pg[fill_rng(&st) % PAGE_SIZE] = (u8)fill_rng(&st);
		}
	}
}

/* ---- the machine ---- */

/* TSC ticks per second over 20 ms of the monotonic clock, as boot/ measures it against Stall. */
static u64 measure_tsc_hz(void)
{
	struct timespec a, b, d = {0, 20000000};
	u64 t0, t1;

	clock_gettime(CLOCK_MONOTONIC, &a);
	t0 = __builtin_ia32_rdtsc();
	nanosleep(&d, NULL);
	t1 = __builtin_ia32_rdtsc();
	clock_gettime(CLOCK_MONOTONIC, &b);
	return (u64)((double)(t1 - t0) /
		     ((double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9));
}

static void add_slot(struct vm *vm, gpa_t gpa, u64 size, enum hv_mem_type type)
{
	vm->slots[vm->nr_slots++] = (struct hv_slot){
	    .base_gfn = gpa_to_gfn(gpa),
	    .npages = size >> PAGE_SHIFT,
	    .type = type,
	    .mmu_id = -1,
	};
	if (type == HV_MEM_RAM)
		vm->ram_pages += size >> PAGE_SHIFT;
}

void host_machine_init(struct host_machine *m, const struct host_machine_config *cfg)
{
	const struct hw_handlers handlers = {
	    .fault = hm_fault,
	    .pml_full = hm_pml_full,
	    .store = hm_store,
	    .misconfig = hm_misconfig,
	};
	u64 ram0 = (u64)cfg->ram0_mib << 20;
	/* Below 4 GiB where RAM leaves room (as on a PC), else after the RAM at 4 GiB. */
	gpa_t mmio = ram0 <= 0xfe000000ull ? 0xfe000000ull : 0x100400000ull;
	struct vm *vm = &m->vm;
	/* A machine built again (host_port_init: a fuzzer's next input) reuses the host memory. */
	static u8 *phys;
	static u64 phys_size, tsc_hz;

	if (hm == m)
		hw_machine_destroy(&m->hw);
	memset(m, 0, sizeof(*m));
	hm = m;
	m->cfg = *cfg;
	hm_backend.name = cfg->pml ? "vmx" : "svm";
	x86_backend = &hm_backend;
	/*
	 * The pool after the last slot: the session's bitmaps, the nested
	 * tables of every slot split to 4 KiB, the management port's memory,
	 * and room for copy-on-write snapshots.
	 */
	m->pool_base = 0x100600000ull;
	m->pool_size = (64ull << 20) + ram0 / 64;
	m->phys_size = m->pool_base + m->pool_size;
	if (phys && phys_size != m->phys_size) {
		munmap(phys, phys_size);
		phys = NULL;
	}
	if (phys) {
		/*
		 * Guest memory (below the pool) reads zero again: private
		 * anonymous memory does after MADV_DONTNEED. The pool keeps
		 * its pages: the allocator zeroes each one it hands out.
		 */
		if (madvise(phys, m->pool_base, MADV_DONTNEED))
			abort();
	} else {
		phys = mmap(NULL, m->phys_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (phys == MAP_FAILED) {
			perror("host_machine: mmap of the physical memory");
			abort();
		}
		phys_size = m->phys_size;
	}
	m->phys = phys;
	if (!tsc_hz) {
		tsc_hz = measure_tsc_hz();
		/* hv/log.c writes a character at a time: one write() a line, not one a byte. */
		if (setvbuf(stderr, NULL, _IOLBF, 0))
			abort();
	}
	hv_host_phys_base = (uintptr_t)m->phys;
	hv_page_alloc_init(m->pool_base, m->pool_base + m->pool_size);

	m->bi = (struct hv_boot_info){
	    .pool_base = m->pool_base,
	    .pool_size = m->pool_size,
	    .alloc_base = m->pool_base,
	    .nr_cpus = HM_NR_VCPUS,
	    .mgmt_step_pages = cfg->step_pages,
	    .tsc_hz = tsc_hz,
	};
	hv = (struct hv){
	    .bi = &m->bi,
	    .vm = vm,
	    .vcpu = &m->vcpus[0],
	    .mgmt_uart = {.base = UART_COM2_BASE,
			  .space = UART_SPACE_IO,
			  .reg_width = 1,
			  .present = true},
	    .footprint_bytes = m->pool_size,
	    .mgmt_tick = HV_MGMT_TICK_NONE,
	};

	vm->slots =
	    hv_pages_alloc_contig((HV_MAX_SLOTS * sizeof(*vm->slots) + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!vm->slots)
		abort();
	add_slot(vm, 0, ram0, HV_MEM_RAM);
	add_slot(vm, 0x100000000ull, 4ull << 20, HV_MEM_RAM);
	add_slot(vm, mmio, 64ull << 10, HV_MEM_MMIO);
	vm->hidden[vm->nr_hidden++] =
	    (struct hv_hidden_range){m->pool_base, m->pool_base + m->pool_size};
	vm->gpa_limit = m->phys_size;
	if (vm_create_tdp(vm))
		abort();
	if (hw_machine_init(&m->hw, cfg->pml ? HW_FMT_EPT_AD : HW_FMT_NPT, HM_NR_VCPUS,
			    hm_hpa_to_table, &handlers, cfg->seed))
		abort();
	for (u32 i = 0; i < HM_NR_VCPUS; i++) {
		struct vcpu *v = &m->vcpus[i];

		v->id = i;
		v->apic_id = i;
		v->ops = cfg->pml ? &hm_vcpu_ops_pml : &hm_vcpu_ops;
		for (u32 r = 0; r < HV_NR_GPRS; r++)
			v->gprs.r[r] = 0x1000ull * (i + 1) + r;
		v->rip = 0xffffffff81000000ull + i;
		v->rflags = 0x246;
		v->ctrl = (struct hv_guest_ctrl){
		    .cr0 = 0x80050033,
		    .cr3 = 0x1000000 + i * PAGE_SIZE,
		    .cr4 = 0x3506f0,
		    .efer = 0xd01,
		    .fs_base = 0x7f0000000000ull + i * PAGE_SIZE,
		    .gs_base = 0xffff888000000000ull + i,
		    .cs_sel = 0x10,
		    .ss_sel = 0x18,
		    .ds_sel = 0x18,
		    .es_sel = 0x18,
		    .cs_long = true,
		};
		if (vm_vcpu_attach(vm, v))
			abort();
		v->online = true;
		hv.nr_online++;
	}
	if (hv_control_init(&hv))
		abort();
}
