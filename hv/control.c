/* SPDX-License-Identifier: MIT */
#include "hv/control.h"

#include "arch/x86/backend.h"
#include "hv/dirty_session.h"
#include "arch/x86/cpu.h"
#include "drivers/uart16550.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/mgmt_tick.h"
#include "hv/mgmt.h"
#include "hv/mgmt_uart.h"
#include "hv/page_alloc.h"
#include "hv/smp.h"
#include "hv/vm.h"
#include "mmu/tdp_mmu.h"

#include <pt/assert.h>

/*
 * The management port's owner: the dispatcher, the dirty-log session it
 * drives, and the guest's view of the port's registers. Callbacks get this
 * as their ctx.
 */
struct hv_control {
	struct hv *hv; /* the VM, the vCPU, the boot information */
	struct mgmt mgmt;
	struct dirty_session ds;
	struct cow_session cow;
	bool up;
	/* The registers of the management UART a guest may read back (hv_control_port_*). */
	u8 shadow_reg[UART_NR_PORTS];
	u8 shadow_dll, shadow_dlm;
};

static struct hv_control ctl;

/* ---- transport: the management 16550 (hv/mgmt_uart.h), polled ---- */

static int tp_rx_byte(void *ctx)
{
	int c = uart_getc_or_error(ctx);

	if (c == -2)
		return MGMT_RX_LINE_ERROR;
	if (c < 0)
		return MGMT_RX_NONE;
	return c;
}

static u32 tp_tx_room(void *ctx)
{
	return uart_tx_room(ctx);
}

static void tp_tx_bytes(void *ctx, const u8 *buf, u32 len)
{
	u32 i;

	for (i = 0; i < len; i++)
		uart_putc_nowait(ctx, buf[i]);
}

static const struct mgmt_transport ctl_transport = {
    .rx_byte = tp_rx_byte,
    .tx_room = tp_tx_room,
    .tx_bytes = tp_tx_bytes,
};

/* ---- backend ---- */

static int be_info(void *ctx, struct mgmt_info *out)
{
	struct hv_control *c = ctx;

	out->backend = x86_backend ? x86_backend->name : "?";
	out->version = "pagetrail 0.1";
	out->vcpus = __atomic_load_n(&c->hv->nr_online, __ATOMIC_SEQ_CST);
	out->mem_bytes = c->hv->vm->ram_pages * PAGE_SIZE;
	out->paused = c->hv->vcpu->paused;
	out->stopped = __atomic_load_n(&c->hv->vm->stopped, __ATOMIC_SEQ_CST);
	return 0;
}

/*
 * Runs on the boot CPU, outside the guest (hv_control_poll): the answer
 * leaves only once every other vCPU is parked in its host loop, and the
 * boot CPU itself stays in hv_control_poll until RESUME.
 */
static int be_pause(void *ctx)
{
	struct hv_control *c = ctx;

	smp_pause_others(c->hv->vm, c->hv->vcpu);
	c->hv->vcpu->paused = true;
	return 0;
}

static int be_resume(void *ctx)
{
	struct hv_control *c = ctx;

	/* After a guest-fatal event the guest never runs again (hv_guest_stop). */
	if (__atomic_load_n(&c->hv->vm->stopped, __ATOMIC_SEQ_CST))
		return -PROTO_E_GUEST_STOPPED;
	c->hv->vcpu->paused = false;
	smp_resume_others(c->hv->vm);
	return 0;
}

static int be_mem_read(void *ctx, gpa_t gpa, void *buf, u32 len)
{
	struct hv_control *c = ctx;
	const struct hv_slot *s = hv_gpa_to_slot(c->hv->vm, gpa);
	u8 *out = buf;
	u32 i;

	if (!len || (gpa & ~PAGE_MASK) + len > PAGE_SIZE)
		return -PROTO_E_RANGE;
	/* The hidden pool is in no slot; MMIO is never read on the host's behalf. */
	if (!s || s->type == HV_MEM_MMIO)
		return -PROTO_E_FAULT;
	for (i = 0; i < len; i++)
		out[i] = *(volatile u8 *)hv_va(gpa + i);
	return 0;
}

/* base, limit, attr of one segment at first, first + 1, first + 2 (enum proto_reg). */
static void regs_put_seg(struct mgmt_regs *out, enum proto_reg first, const struct hv_guest_seg *s)
{
	out->r[first] = s->base;
	out->r[first + 1] = s->limit;
	out->r[first + 2] = s->attr;
}

/* As of the vCPU's last exit: exact while the VM is paused. */
static int be_regs(void *ctx, u32 vcpu, struct mgmt_regs *out)
{
	struct hv_control *c = ctx;
	const struct vm *vm = c->hv->vm;
	struct hv_guest_sregs sr;
	struct vcpu *v;
	unsigned int i;

	if (vcpu >= vm->nr_vcpus || !vm->vcpus[vcpu] ||
	    !__atomic_load_n(&vm->vcpus[vcpu]->online, __ATOMIC_SEQ_CST))
		return -PROTO_E_NO_VCPU;
	v = vm->vcpus[vcpu];
	for (i = 0; i < HV_NR_GPRS; i++)
		out->r[PROTO_REG_RAX + i] = v->gprs.r[i];
	out->r[PROTO_REG_RIP] = v->rip;
	out->r[PROTO_REG_RFLAGS] = v->rflags;
	out->r[PROTO_REG_CR0] = v->ctrl.cr0;
	out->r[PROTO_REG_CR2] = v->ctrl.cr2;
	out->r[PROTO_REG_CR3] = v->ctrl.cr3;
	out->r[PROTO_REG_CR4] = v->ctrl.cr4;
	out->r[PROTO_REG_EFER] = v->ctrl.efer;
	out->r[PROTO_REG_CS] = v->ctrl.cs_sel;
	out->r[PROTO_REG_SS] = v->ctrl.ss_sel;
	out->r[PROTO_REG_DS] = v->ctrl.ds_sel;
	out->r[PROTO_REG_ES] = v->ctrl.es_sel;
	out->r[PROTO_REG_FS] = v->ctrl.fs_sel;
	out->r[PROTO_REG_GS] = v->ctrl.gs_sel;
	out->r[PROTO_REG_FS_BASE] = v->ctrl.fs_base;
	out->r[PROTO_REG_GS_BASE] = v->ctrl.gs_base;
	if (v == c->hv->vcpu) {
		/* The boot CPU's own vCPU: in the host right now, read it live. */
		v->ops->get_sregs(v, &sr);
	} else if (__atomic_load_n(&v->sregs_valid, __ATOMIC_ACQUIRE)) {
		sr = v->sregs; /* read by that CPU as it parked */
	} else {
		/* Running on another CPU: only the state of its last exit is known. */
		out->nr = PROTO_REG_NR_V1;
		return 0;
	}
	regs_put_seg(out, PROTO_REG_CS_BASE, &sr.cs);
	regs_put_seg(out, PROTO_REG_SS_BASE, &sr.ss);
	regs_put_seg(out, PROTO_REG_DS_BASE, &sr.ds);
	regs_put_seg(out, PROTO_REG_ES_BASE, &sr.es);
	out->r[PROTO_REG_FS_LIMIT] = sr.fs.limit;
	out->r[PROTO_REG_FS_ATTR] = sr.fs.attr;
	out->r[PROTO_REG_GS_LIMIT] = sr.gs.limit;
	out->r[PROTO_REG_GS_ATTR] = sr.gs.attr;
	out->r[PROTO_REG_LDTR] = sr.ldtr.sel;
	regs_put_seg(out, PROTO_REG_LDTR_BASE, &sr.ldtr);
	out->r[PROTO_REG_TR] = sr.tr.sel;
	regs_put_seg(out, PROTO_REG_TR_BASE, &sr.tr);
	out->r[PROTO_REG_GDT_BASE] = sr.gdt_base;
	out->r[PROTO_REG_GDT_LIMIT] = sr.gdt_limit;
	out->r[PROTO_REG_IDT_BASE] = sr.idt_base;
	out->r[PROTO_REG_IDT_LIMIT] = sr.idt_limit;
	out->r[PROTO_REG_KERNEL_GS_BASE] = sr.kernel_gs_base;
	return 0;
}

enum ctl_stat {
	STAT_EXIT_TOTAL,
	STAT_EXIT_FIRST, /* one per enum hv_exit_reason */
	STAT_HIDDEN = STAT_EXIT_FIRST + HV_NR_EXIT_REASONS,
	STAT_MGMT_PORT_IO,
	STAT_INJ_UD,
	STAT_INJ_GP,
	STAT_EXIT_PML_FULL,
	STAT_MMU_PT_PAGES,
	STAT_MMU_FAULTS,
	STAT_MMU_FAULTS_DIRTY,
	STAT_MMU_DIRTY_MARKED,
	STAT_MMU_SPLITS,
	STAT_MMU_FLUSHES,
	STAT_HV_FOOTPRINT,
	STAT_HV_POOL_FREE,
	STAT_SMP_UNVIRT,
	STAT_MGMT_TICK,
	STAT_MGMT_TICKS,
	STAT_HPET_ACCESS,
	STAT_HPET_REFUSED,
	STAT_HV_TSC,
	STAT_HV_TSC_HZ,
	STAT_NR,
};

static const char *const exit_stat_names[HV_NR_EXIT_REASONS] = {
    [HV_EXIT_CPUID] = "exit.cpuid",
    [HV_EXIT_MSR_READ] = "exit.rdmsr",
    [HV_EXIT_MSR_WRITE] = "exit.wrmsr",
    [HV_EXIT_IO] = "exit.io",
    [HV_EXIT_HLT] = "exit.hlt",
    [HV_EXIT_VIRT_INSN] = "exit.virt_insn",
    [HV_EXIT_TDP_FAULT] = "exit.npf",
    [HV_EXIT_SHUTDOWN] = "exit.shutdown",
    [HV_EXIT_ENTRY_FAILED] = "exit.entry_failed",
    [HV_EXIT_UNKNOWN] = "exit.unknown",
    [HV_EXIT_INTR] = "exit.intr",
    [HV_EXIT_IRET] = "exit.iret",
    [HV_EXIT_NMI] = "exit.nmi",
    [HV_EXIT_INIT] = "exit.init",
    [HV_EXIT_SIPI] = "exit.sipi",
};

/* Exit counts summed over the vCPUs (each counts its own, unlocked: a snapshot). */
static void ctl_exit_stats(const struct vm *vm, struct hv_exit_stats *sum)
{
	u32 i, r;

	*sum = (struct hv_exit_stats){0};
	for (i = 0; i < vm->nr_vcpus; i++) {
		const struct hv_exit_stats *s = vm->vcpus[i] ? &vm->vcpus[i]->stats : NULL;

		if (!s)
			continue;
		sum->total += s->total;
		for (r = 0; r < HV_NR_EXIT_REASONS; r++)
			sum->by_reason[r] += s->by_reason[r];
		sum->hidden_access += s->hidden_access;
		sum->mgmt_port_io += s->mgmt_port_io;
		sum->injected_ud += s->injected_ud;
		sum->injected_gp += s->injected_gp;
		sum->pml_full += s->pml_full;
		sum->nmi_reflected += s->nmi_reflected;
	}
}

/*
 * After the VM's counters, each vCPU's own: "vcpu.N.exit.total" and the rest,
 * where they differ between CPUs (which CPU takes the faults, the kicks).
 */
enum ctl_vcpu_stat {
	VSTAT_EXITS,
	VSTAT_NPF,
	VSTAT_NMI,
	VSTAT_NMI_REFLECTED,
	VSTAT_KICKS,
	VSTAT_TLB_FLUSHES,
	VSTAT_NR,
};

static const char *const vcpu_stat_suffix[VSTAT_NR] = {
    "exit.total", "exit.npf", "exit.nmi", "nmi_reflected", "kicks", "tlb_flushes",
};

static int ctl_vcpu_stat(const struct vm *vm, u32 i, const char **name, u64 *value)
{
	static char names[HV_MAX_CPUS][VSTAT_NR][32];
	u32 id = i / VSTAT_NR, k = i % VSTAT_NR;
	const struct vcpu *v;

	if (id >= vm->nr_vcpus || !vm->vcpus[id])
		return -PROTO_E_RANGE;
	v = vm->vcpus[id];
	if (!names[id][k][0])
		hv_snprintf(names[id][k], sizeof(names[id][k]), "vcpu.%u.%s", id,
			    vcpu_stat_suffix[k]);
	*name = names[id][k];
	switch ((enum ctl_vcpu_stat)k) {
	case VSTAT_EXITS:
		*value = v->stats.total;
		return 0;
	case VSTAT_NPF:
		*value = v->stats.by_reason[HV_EXIT_TDP_FAULT];
		return 0;
	case VSTAT_NMI:
		*value = v->stats.by_reason[HV_EXIT_NMI];
		return 0;
	case VSTAT_NMI_REFLECTED:
		*value = v->stats.nmi_reflected;
		return 0;
	case VSTAT_KICKS:
		*value = v->stats.kicks;
		return 0;
	case VSTAT_TLB_FLUSHES:
		*value = v->stats.tlb_flushes;
		return 0;
	case VSTAT_NR:
		break;
	}
	return -PROTO_E_RANGE;
}

static int be_stat(void *ctx, u32 index, const char **name, u64 *value)
{
	struct hv_control *c = ctx;
	const struct hv *hv = c->hv;
	struct hv_exit_stats sum;
	const struct hv_exit_stats *es = &sum;
	struct tdp_mmu_stats ms;

	if (index >= STAT_NR)
		return ctl_vcpu_stat(hv->vm, index - STAT_NR, name, value);
	ctl_exit_stats(hv->vm, &sum);
	if (index >= STAT_EXIT_FIRST && index < STAT_EXIT_FIRST + HV_NR_EXIT_REASONS) {
		*name = exit_stat_names[index - STAT_EXIT_FIRST];
		*value = es->by_reason[index - STAT_EXIT_FIRST];
		return 0;
	}
	tdp_mmu_get_stats(hv->vm->mmu, &ms);
	switch ((enum ctl_stat)index) {
	case STAT_EXIT_TOTAL:
		*name = "exit.total";
		*value = es->total;
		return 0;
	case STAT_HIDDEN:
		*name = "guest.hidden_access";
		*value = es->hidden_access;
		return 0;
	case STAT_MGMT_PORT_IO:
		*name = "guest.mgmt_port_io";
		*value = es->mgmt_port_io;
		return 0;
	case STAT_INJ_UD:
		*name = "guest.injected_ud";
		*value = es->injected_ud;
		return 0;
	case STAT_INJ_GP:
		*name = "guest.injected_gp";
		*value = es->injected_gp;
		return 0;
	case STAT_EXIT_PML_FULL:
		/* Not in exit.total: the backend handles it without hv/ seeing an exit. */
		*name = "exit.pml_full";
		*value = es->pml_full;
		return 0;
	case STAT_MMU_PT_PAGES:
		*name = "mmu.pt_pages";
		*value = ms.pt_pages;
		return 0;
	case STAT_MMU_FAULTS:
		*name = "mmu.faults";
		*value = ms.faults;
		return 0;
	case STAT_MMU_FAULTS_DIRTY:
		*name = "mmu.faults_fixed_dirty";
		*value = ms.faults_fixed_dirty;
		return 0;
	case STAT_MMU_DIRTY_MARKED:
		*name = "mmu.dirty_marked";
		*value = ms.dirty_marked;
		return 0;
	case STAT_MMU_SPLITS:
		*name = "mmu.splits";
		*value = ms.splits;
		return 0;
	case STAT_MMU_FLUSHES:
		*name = "mmu.flushes";
		*value = ms.flushes;
		return 0;
	case STAT_HV_FOOTPRINT:
		*name = "hv.footprint_bytes";
		*value = hv->footprint_bytes;
		return 0;
	case STAT_HV_POOL_FREE:
		*name = "hv.pool_free_bytes";
		*value = hv_pages_free() * PAGE_SIZE;
		return 0;
	case STAT_SMP_UNVIRT:
		*name = "hv.smp_unvirtualized";
		*value = hv->smp_unvirtualized;
		return 0;
	case STAT_MGMT_TICK:
		/* enum hv_mgmt_tick: 0 = no bound on the answer time (docs/hv.md). */
		*name = "hv.mgmt_tick";
		*value = hv->mgmt_tick;
		return 0;
	case STAT_MGMT_TICKS:
		/* Ticks claimed so far: it grows while the tick runs (none, or the CPU's own: 0).
		 */
		*name = "hv.mgmt_ticks";
		*value = hv_mgmt_tick_count();
		return 0;
	case STAT_HPET_ACCESS:
		/* The guest's HPET accesses emulated beside the tick's comparator (hv/vhpet.h). */
		*name = "guest.hpet_access";
		*value = hv_mgmt_tick_hpet_accesses();
		return 0;
	case STAT_HPET_REFUSED:
		*name = "guest.hpet_refused";
		*value = hv_mgmt_tick_hpet_refused();
		return 0;
	case STAT_HV_TSC:
		/*
		 * The hypervisor's clock when the entry was read, so a host can time
		 * what it asked in the machine's own time: in an emulator that time
		 * need not be the host's (Bochs counts instructions).
		 */
		*name = "hv.tsc";
		*value = x86_rdtsc();
		return 0;
	case STAT_HV_TSC_HZ:
		*name = "hv.tsc_hz"; /* measured at boot; 0: unknown */
		*value = hv->bi->tsc_hz;
		return 0;
	case STAT_EXIT_FIRST:
	case STAT_NR:
		break;
	}
	return -PROTO_E_RANGE;
}

static u32 be_log_read(void *ctx, u64 off, u8 *buf, u32 len, u64 *first, u64 *end)
{
	(void)ctx;
	return hv_log_ring_read(off, buf, len, first, end);
}

/*
 * Nanoseconds from the TSC, scaled by the frequency boot/ measured:
 * ns = tsc * mult >> 32 with mult = 10^9 * 2^32 / tsc_hz, a 64x64->128
 * multiply (no 128-bit division, which would need libgcc).
 */
static u64 ctl_ns_mult;

static void be_note(void *ctx, const char *line)
{
	(void)ctx;
	hv_log("management: %s", line);
}

static u64 be_now_ns(void *ctx)
{
	(void)ctx;
	return (u64)(((unsigned __int128)x86_rdtsc() * ctl_ns_mult) >> 32);
}

/* now_ns is filled in at init, and only if the TSC frequency is known. */
static struct mgmt_backend ctl_backend = {
    .info = be_info,
    .pause = be_pause,
    .resume = be_resume,
    .mem_read = be_mem_read,
    .regs = be_regs,
    .stat = be_stat,
    .log_read = be_log_read,
    .note = be_note,
};

/* ---- the dirty-log session's hooks (hv/dirty_session.h) ---- */

static void *ds_hook_alloc(void *ctx, u64 bytes)
{
	(void)ctx;
	return hv_pages_alloc_contig((bytes + PAGE_SIZE - 1) / PAGE_SIZE);
}

static bool ds_hook_logging_allowed(void *ctx, const char **why)
{
	struct hv_control *c = ctx;

	*why = "dirty logging refused: other CPUs run unvirtualized";
	return !__atomic_load_n(&c->hv->smp_unvirtualized, __ATOMIC_SEQ_CST);
}

static bool ds_hook_pml_supported(void *ctx, const char **why)
{
	struct hv_control *c = ctx;
	const struct vm *vm = c->hv->vm;

	if (!arch_pml_supported(why))
		return false;
	for (u32 i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i] && !vm->vcpus[i]->ops->set_pml) {
			*why = "the vCPU backend has no PML";
			return false;
		}
	}
	return true;
}

/* Every vCPU, each on its own CPU (hv/smp.h). */
static int ds_hook_set_pml(void *ctx, bool on)
{
	struct hv_control *c = ctx;

	return smp_set_pml(c->hv->vm, on);
}

/* Every vCPU's log, each drained on its own CPU; the caller's (the boot vCPU's) here. */
static void ds_hook_drain_pml(void *ctx)
{
	struct hv_control *c = ctx;

	smp_drain_pml(c->hv->vm, c->hv->vcpu);
}

static void ds_hook_log(void *ctx, const char *msg, u64 a, u64 b)
{
	(void)ctx;
	hv_log("%s %lu %lu", msg, a, b);
}

/* ---- the copy-on-write session's hooks (hv/cow_session.h) ---- */

static void *cow_hook_alloc_page(void *ctx)
{
	(void)ctx;
	return hv_page_alloc();
}

static void cow_hook_free_page(void *ctx, void *page)
{
	(void)ctx;
	hv_page_free(page);
}

static u64 cow_hook_pages_free(void *ctx)
{
	(void)ctx;
	return hv_pages_free();
}

/* Guest memory is identity-mapped in the host's tables (hv/page_alloc.h). */
static const void *cow_hook_guest_page(void *ctx, gpa_t gpa)
{
	(void)ctx;
	return hv_va(gpa);
}

/* A CPU running unvirtualized writes around the nested tables, as for logging. */
static bool cow_hook_allowed(void *ctx, const char **why)
{
	struct hv_control *c = ctx;

	*why = "copy-on-write snapshot refused: other CPUs run unvirtualized";
	return !__atomic_load_n(&c->hv->smp_unvirtualized, __ATOMIC_SEQ_CST);
}

int hv_control_init(struct hv *hv)
{
	const struct ds_hooks hooks = {
	    .ctx = &ctl,
	    .alloc = ds_hook_alloc,
	    .logging_allowed = ds_hook_logging_allowed,
	    .pml_supported = ds_hook_pml_supported,
	    .set_pml = ds_hook_set_pml,
	    .drain_pml = ds_hook_drain_pml,
	    .log = ds_hook_log,
	};
	const struct cow_hooks cow_hooks = {
	    .ctx = &ctl,
	    .alloc = ds_hook_alloc,
	    .alloc_page = cow_hook_alloc_page,
	    .free_page = cow_hook_free_page,
	    .pages_free = cow_hook_pages_free,
	    .guest_page = cow_hook_guest_page,
	    .allowed = cow_hook_allowed,
	    .log = ds_hook_log,
	};
	void *mem;
	int rc;

	ctl.hv = hv;
	if (!hv->mgmt_uart.present) {
		hv_log("management port: none (no UART at %s)", hv_mgmt_uart_name());
		return 0;
	}
	if (hv->bi->tsc_hz) {
		ctl_ns_mult = (1000000000ull << 32) / hv->bi->tsc_hz;
		ctl_backend.now_ns = be_now_ns;
		hv_log("management: TSC %lu Hz (measured at boot): harvest times in stats",
		       hv->bi->tsc_hz);
	} else {
		hv_log("management: TSC frequency unknown: harvest times are not measured "
		       "(dirty.harvest_ns_* stay 0)");
	}
	rc = ds_init(&ctl.ds, hv->vm, &hooks);
	if (rc) {
		hv_log("dirty-log session: out of pool memory");
		return -1;
	}
	mem = hv_pages_alloc_contig((MGMT_MEM_SIZE + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!mem) {
		hv_log("management port: out of pool memory");
		return -1;
	}
	rc = mgmt_init(&ctl.mgmt, mem, MGMT_MEM_SIZE, &ctl_backend, &ctl, &ctl.ds, &ctl_transport,
		       &hv->mgmt_uart);
	if (rc) {
		hv_log("management port: mgmt_init failed: %d", rc);
		return -1;
	}
	if (cow_init(&ctl.cow, hv->vm, &cow_hooks)) {
		hv_log("copy-on-write session: out of pool memory");
		return -1;
	}
	mgmt_set_cow(&ctl.mgmt, &ctl.cow);
	/* The fault path hands writes to tracked pages to it (hv/vm.c). */
	hv->vm->cow = &ctl.cow;
	/* The TSC since reset, to the cycle: another value on every boot. */
	mgmt_set_boot_id(&ctl.mgmt, x86_rdtsc());
	if (hv->bi->mgmt_step_pages)
		mgmt_set_step_pages(&ctl.mgmt, hv->bi->mgmt_step_pages);
	hv_log("management: long commands in steps of %lu pages", ctl.mgmt.step_pages);
	ctl.up = true;
	hv_log("management port: up on %s", hv_mgmt_uart_name());
	return 0;
}

/* ---- the guest's view of the management UART ---- */

/*
 * The management UART belongs to the hypervisor. The firmware's serial
 * driver probed it before the takeover and still believes it has it: give
 * it an idle UART with nothing to read, and drop what it writes. Registers
 * a driver reads back (LCR, MCR, SCR, divisor) keep the guest's last write
 * in a shadow, never in the chip.
 */
u8 hv_control_port_read(unsigned int reg)
{
	bool dlab = ctl.shadow_reg[UART_LCR] & UART_LCR_DLAB;

	switch (reg) {
	case UART_RBR_THR:
		return dlab ? ctl.shadow_dll : 0;
	case UART_IER:
		/*
		 * IER reads 0 whatever was written: an OS's UART probe (Linux
		 * 8250 autoconfig writes 0x0f and expects it back) finds no
		 * UART here, so the OS is not offered the port. The firmware's
		 * driver, already bound, checks only the scratch register.
		 */
		return dlab ? ctl.shadow_dlm : 0;
	case UART_IIR_FCR:
		return UART_IIR_NO_INT;
	case UART_LSR:
		return UART_LSR_THRE | UART_LSR_TEMT;
	case UART_MSR:
		return UART_MSR_CTS_DSR_DCD;
	}
	return ctl.shadow_reg[reg % UART_NR_PORTS]; /* LCR, MCR, SCR */
}

void hv_control_port_write(unsigned int reg, u8 val)
{
	bool dlab = ctl.shadow_reg[UART_LCR] & UART_LCR_DLAB;

	if (reg == UART_RBR_THR && dlab)
		ctl.shadow_dll = val;
	else if (reg == UART_IER && dlab)
		ctl.shadow_dlm = val;
	else if (reg != UART_RBR_THR && reg != UART_IIR_FCR && reg != UART_LSR && reg != UART_MSR)
		ctl.shadow_reg[reg % UART_NR_PORTS] = val;
}

void hv_control_log_stats(void)
{
	const struct mgmt_counters *c = &ctl.mgmt.c;

	if (!ctl.up)
		return;
	hv_log("mgmt rx=%lu tx=%lu frames_ok=%lu bad_crc=%lu framing=%lu too_big=%lu "
	       "too_short=%lu line_errors=%lu naks=%lu credits=%lu wants_poll=%d",
	       c->rx_bytes, c->tx_bytes, c->frames_ok, c->bad_crc, c->framing, c->too_big,
	       c->too_short, c->line_errors, c->naks_sent, c->credits_sent,
	       (int)mgmt_wants_poll(&ctl.mgmt));
}

struct mgmt *hv_control_mgmt(void)
{
	return &ctl.mgmt;
}

bool hv_control_wants_poll(void)
{
	return ctl.up && mgmt_wants_poll(&ctl.mgmt);
}

void hv_control_serve_stopped(struct vcpu *v)
{
	smp_pause_others(v->vm, v);
	v->paused = true;
	if (!ctl.up) {
		hv_log("guest stopped; no management port: halting");
		x86_halt_forever();
	}
	hv_log("guest stopped; the management port keeps answering (ptctl info, log, regs, "
	       "mem read, snapshot); resume is refused until the machine is reset");
	for (;;) {
		mgmt_poll(&ctl.mgmt);
		x86_pause();
	}
}

void hv_control_poll(struct vcpu *v)
{
	if (!ctl.up)
		return;
	mgmt_poll(&ctl.mgmt);
	if (v->paused) {
		hv_log("guest paused from the management port");
		while (v->paused) {
			mgmt_poll(&ctl.mgmt);
			x86_pause();
		}
		hv_log("guest resumed");
	}
}
