/* SPDX-License-Identifier: MIT */
#include "hv/control.h"

#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "drivers/uart16550.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/mgmt.h"
#include "hv/page_alloc.h"
#include "hv/smp.h"
#include "hv/vm.h"
#include "mmu/tdp_mmu.h"

#include <pt/assert.h>

/* About two seconds at the 2-3 GHz TSCs of the machines this runs on. */

/* Per-slot dirty-logging state: bitmaps from the pool, kept across stop/start. */
struct ctl_slot {
	enum proto_dirty_mode mode;
	u64 *log;      /* lent to mmu/ while logging */
	u64 *scratch;  /* one harvest */
	u64 *snapshot; /* mgmt.c's, zero at creation */
};

static struct {
	struct mgmt mgmt;
	bool up;
	struct ctl_slot slots[HV_MAX_SLOTS];
} ctl;

/* ---- transport: the 16550 at COM2, polled ---- */

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

static const struct hv_slot *ctl_slot_of(u32 id)
{
	return id < hv.vm->nr_slots ? &hv.vm->slots[id] : NULL;
}

static u64 slot_words(const struct hv_slot *s)
{
	return tdp_dirty_bitmap_words(s->npages);
}

static u64 *bitmap_alloc(const struct hv_slot *s)
{
	return hv_pages_alloc_contig((slot_words(s) * sizeof(u64) + PAGE_SIZE - 1) / PAGE_SIZE);
}

static int be_info(void *ctx, struct mgmt_info *out)
{
	const char *why;

	(void)ctx;
	out->backend = x86_backend ? x86_backend->name : "?";
	out->version = "pagetrail 0.1";
	out->vcpus = __atomic_load_n(&hv.nr_online, __ATOMIC_SEQ_CST);
	out->dirty_modes = PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_WP) |
			   PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_DBIT) |
			   (arch_pml_supported(&why) ? PROTO_DIRTY_MODE_BIT(PROTO_DIRTY_PML) : 0);
	out->mem_bytes = hv.vm->ram_pages * PAGE_SIZE;
	out->paused = hv.vcpu->paused;
	return 0;
}

static u8 proto_slot_type(enum hv_mem_type t)
{
	switch (t) {
	case HV_MEM_RAM:
		return PROTO_SLOT_RAM;
	case HV_MEM_MMIO:
		return PROTO_SLOT_MMIO;
	case HV_MEM_ACPI:
	case HV_MEM_RUNTIME:
	case HV_MEM_RESERVED:
	case HV_MEM_HIDDEN:
	case HV_MEM_NR_TYPES:
		break;
	}
	return PROTO_SLOT_RESERVED;
}

static int be_slot_get(void *ctx, u32 index, struct mgmt_slot *out)
{
	const struct hv_slot *s = ctl_slot_of(index);

	(void)ctx;
	if (!s)
		return -PROTO_E_RANGE;
	out->id = index;
	out->gpa = gfn_to_gpa(s->base_gfn);
	out->size = s->npages * PAGE_SIZE;
	out->type = proto_slot_type(s->type);
	out->dirty_mode = (u8)ctl.slots[index].mode;
	return 0;
}

static void ctl_flush_if(bool flush)
{
	if (flush)
		tdp_mmu_flush_remote_tlbs(hv.vm->mmu);
}

static int mmu_err_to_proto(int rc)
{
	switch (rc) {
	case MMU_ENOMEM:
		return -PROTO_E_BUSY;
	case MMU_EINVAL:
		return -PROTO_E_UNSUPPORTED;
	case MMU_ENOENT:
		return -PROTO_E_NO_SLOT;
	}
	return -PROTO_E_INTERNAL;
}

/*
 * The long operations run in steps (struct mgmt_backend, docs/protocol.md
 * "Long commands"; the argument for why the guest may run between steps is
 * in docs/dirty-logging.md "Harvests in steps"). mgmt.c runs one at a time,
 * so one accumulator is enough: some step of the running operation changed
 * entries, and the one flush at its end is owed.
 */
static bool ctl_op_flush;

/* The pages of this step: [*pos, *pos + budget) cut at the slot's end. */
static u64 ctl_step_pages(const struct hv_slot *s, u64 pos, u64 budget)
{
	return s->npages - pos < budget ? s->npages - pos : budget;
}

/* The operation's end: the one flush that covers all its steps. */
static void ctl_op_end(void)
{
	ctl_flush_if(ctl_op_flush);
	ctl_op_flush = false;
}

/* First step of a start: checks, then logging on with nothing armed yet. */
static int ctl_start_begin(const struct hv_slot *s, struct ctl_slot *cs, u32 id,
			   enum proto_dirty_mode mode)
{
	enum tdp_dirty_mode tmode;
	const char *why = "no PML";
	bool flush = false;
	int rc;

	if (!hv_dirty_logging_allowed()) {
		/* Another CPU writes memory outside the nested page tables. */
		hv_log("dirty logging refused: other CPUs run unvirtualized");
		return -PROTO_E_STATE;
	}
	if (s->type == HV_MEM_MMIO)
		return -PROTO_E_UNSUPPORTED; /* MMIO is mapped, never logged */
	switch (mode) {
	case PROTO_DIRTY_WP:
		tmode = TDP_DIRTY_WP;
		break;
	case PROTO_DIRTY_DBIT:
		tmode = TDP_DIRTY_DBIT;
		break;
	case PROTO_DIRTY_PML:
		if (!arch_pml_supported(&why) || !hv.vcpu->ops->set_pml) {
			hv_log("dirty logging: pml refused: %s", why);
			return -PROTO_E_UNSUPPORTED;
		}
		tmode = TDP_DIRTY_PML;
		break;
	case PROTO_DIRTY_OFF:
	default:
		return -PROTO_E_UNSUPPORTED;
	}
	if (cs->mode != PROTO_DIRTY_OFF)
		return -PROTO_E_STATE;
	if (!cs->log)
		cs->log = bitmap_alloc(s);
	if (!cs->scratch)
		cs->scratch = bitmap_alloc(s);
	if (!cs->log || !cs->scratch)
		return -PROTO_E_BUSY;
	ctl_op_flush = false;
	rc = tdp_mmu_enable_dirty_logging(hv.vm->mmu, (unsigned int)s->mmu_id, tmode,
					  TDP_LOG_MANUAL_PROTECT | TDP_LOG_DEFER_ARM, cs->log,
					  &flush);
	ctl_op_flush |= flush;
	if (rc) {
		ctl_op_end();
		return mmu_err_to_proto(rc);
	}
	/*
	 * PML before the first page is armed: PML logs a page only when the
	 * CPU sets its D bit, and the guest runs between steps. A page armed
	 * (D cleared) while PML was still off and written before it came on
	 * would get D set unlogged, and with D set no later write logs it
	 * either: lost for good. With PML on first, a write to an armed page
	 * is logged; a write to a page not armed yet may be logged too (a
	 * spare bit, never a missing one).
	 */
	if (mode == PROTO_DIRTY_PML && smp_set_pml(hv.vm, true)) {
		/* Nothing is armed or split yet: no collapse to do. */
		rc = tdp_mmu_disable_dirty_logging_deferred(hv.vm->mmu, (unsigned int)s->mmu_id,
							    &flush);
		ctl_op_flush |= flush;
		ctl_op_end();
		if (rc)
			hv_panic("dirty logging: slot %u cannot be turned off again: %d", id, rc);
		return -PROTO_E_UNSUPPORTED;
	}
	return 0;
}

static bool ctl_pml_slots_other_than(u32 id)
{
	unsigned int i;

	for (i = 0; i < hv.vm->nr_slots; i++)
		if (i != id && ctl.slots[i].mode == PROTO_DIRTY_PML)
			return true;
	return false;
}

static int be_dirty_start(void *ctx, u32 id, enum proto_dirty_mode mode, u64 *pos, u64 budget)
{
	const struct hv_slot *s = ctl_slot_of(id);
	struct ctl_slot *cs = &ctl.slots[id];
	bool flush = false;
	u64 n;
	int rc;

	(void)ctx;
	if (!s)
		return -PROTO_E_NO_SLOT;
	if (*pos == 0) {
		rc = ctl_start_begin(s, cs, id, mode);
		if (rc)
			return rc;
	}
	n = ctl_step_pages(s, *pos, budget);
	rc = tdp_mmu_arm_dirty_log_range(hv.vm->mmu, (unsigned int)s->mmu_id, *pos, n, &flush);
	ctl_op_flush |= flush;
	if (rc) {
		/*
		 * A slot half armed must not stay logging: the host was told
		 * the start failed and would not harvest it. Turned off whole
		 * here (one long pass, on this error path only).
		 */
		hv_log("dirty logging: arming slot %u at page %lu failed: %d", id, *pos, rc);
		if (tdp_mmu_disable_dirty_logging(hv.vm->mmu, (unsigned int)s->mmu_id, &flush))
			hv_panic("dirty logging: slot %u cannot be turned off again", id);
		ctl_op_flush |= flush;
		if (mode == PROTO_DIRTY_PML && !ctl_pml_slots_other_than(id))
			smp_set_pml(hv.vm, false);
		ctl_op_end();
		return mmu_err_to_proto(rc);
	}
	*pos += n;
	if (*pos < s->npages)
		return MGMT_STEP_MORE;
	/* Started only now: every page armed, and no stale TLB entry left. */
	ctl_op_end();
	cs->mode = mode;
	hv_log("dirty logging on: slot %u (0x%lx, %lu pages) mode %d", id, gfn_to_gpa(s->base_gfn),
	       s->npages, (int)mode);
	return 0;
}

static int be_dirty_stop(void *ctx, u32 id, u64 *pos, u64 budget)
{
	const struct hv_slot *s = ctl_slot_of(id);
	struct ctl_slot *cs = &ctl.slots[id];
	bool flush = false;
	u64 n;
	int rc;

	(void)ctx;
	if (!s)
		return -PROTO_E_NO_SLOT;
	if (*pos == 0) {
		if (cs->mode == PROTO_DIRTY_OFF)
			return -PROTO_E_STATE;
		ctl_op_flush = false;
		rc = tdp_mmu_disable_dirty_logging_deferred(hv.vm->mmu, (unsigned int)s->mmu_id,
							    &flush);
		ctl_op_flush |= flush;
		if (rc) {
			ctl_op_end();
			return mmu_err_to_proto(rc);
		}
		/* Not logging from here on: the later steps only collapse. */
		if (cs->mode == PROTO_DIRTY_PML && !ctl_pml_slots_other_than(id))
			smp_set_pml(hv.vm, false);
		cs->mode = PROTO_DIRTY_OFF;
		hv_log("dirty logging off: slot %u", id);
	}
	n = ctl_step_pages(s, *pos, budget);
	rc = tdp_mmu_collapse_range(hv.vm->mmu, (unsigned int)s->mmu_id, *pos, n, &flush);
	ctl_op_flush |= flush;
	if (rc) {
		/* Logging is off; what is not collapsed stays 4 KiB: slower only. */
		ctl_op_end();
		return mmu_err_to_proto(rc);
	}
	*pos += n;
	if (*pos < s->npages)
		return MGMT_STEP_MORE;
	ctl_op_end();
	return 0;
}

static u64 *be_dirty_snapshot(void *ctx, u32 id)
{
	const struct hv_slot *s = ctl_slot_of(id);
	struct ctl_slot *cs;

	(void)ctx;
	if (!s || s->type == HV_MEM_MMIO)
		return NULL;
	cs = &ctl.slots[id];
	if (!cs->snapshot)
		cs->snapshot = bitmap_alloc(s);
	return cs->snapshot;
}

/*
 * Harvest in steps: GET a range into the scratch at its word offset, CLEAR
 * (re-arm) exactly the bits taken, then OR them into the snapshot (bitmap)
 * in the same step, so that no step does more than its range (a merge of the
 * whole slot at the end would be 1/64 of a whole-slot pass in one exit). The
 * snapshot does not leave the machine before the operation's end: mgmt.c
 * answers DIRTY_READ with BUSY meanwhile and replies after the flush. A bit
 * taken out of the log is in the snapshot at once: never lost, also when a
 * later step fails.
 */
static int be_dirty_harvest(void *ctx, u32 id, u64 *bitmap, bool clear, u64 *pos, u64 budget)
{
	const struct hv_slot *s = ctl_slot_of(id);
	struct ctl_slot *cs = &ctl.slots[id];
	bool flush = false;
	u64 i, n;
	int rc;

	(void)ctx;
	if (!s)
		return -PROTO_E_NO_SLOT;
	if (cs->mode == PROTO_DIRTY_OFF)
		return -PROTO_E_STATE;
	if (*pos == 0) {
		ctl_op_flush = false;
		/*
		 * PML: what the CPUs logged but have not yet handed over goes
		 * in first, every vCPU's, each drained on its own CPU.
		 */
		if (cs->mode == PROTO_DIRTY_PML)
			smp_drain_pml(hv.vm, hv.vcpu);
	}
	n = ctl_step_pages(s, *pos, budget);
	rc = tdp_mmu_get_dirty_log_range(hv.vm->mmu, (unsigned int)s->mmu_id, *pos, n,
					 cs->scratch + *pos / 64, &flush);
	ctl_op_flush |= flush;
	if (!rc) {
		if (clear) {
			rc = tdp_mmu_clear_dirty_log(hv.vm->mmu, (unsigned int)s->mmu_id, *pos, n,
						     cs->scratch + *pos / 64, &flush);
			ctl_op_flush |= flush;
		}
		/* Also after a failed CLEAR: a spare bit, never a missing one. */
		for (i = *pos / 64; i < tdp_dirty_bitmap_words(*pos + n); i++)
			bitmap[i] |= cs->scratch[i];
	}
	if (!rc) {
		*pos += n;
		if (*pos < s->npages)
			return MGMT_STEP_MORE;
	}
	/* Flush before the bits leave (the reply): no write may slip past a stale TLB entry. */
	ctl_op_end();
	return rc ? mmu_err_to_proto(rc) : 0;
}

static s64 be_dirty_clear(void *ctx, u32 id, u64 first, u64 count, const u64 *mask)
{
	const struct hv_slot *s = ctl_slot_of(id);
	bool flush = false;
	u64 i, n = 0;
	int rc;

	(void)ctx;
	if (!s)
		return -PROTO_E_NO_SLOT;
	if (ctl.slots[id].mode == PROTO_DIRTY_OFF)
		return -PROTO_E_STATE;
	rc = tdp_mmu_clear_dirty_log(hv.vm->mmu, (unsigned int)s->mmu_id, first, count, mask,
				     &flush);
	ctl_flush_if(flush);
	if (rc)
		return rc == MMU_EINVAL ? -PROTO_E_RANGE : mmu_err_to_proto(rc);
	for (i = 0; i < count; i++)
		n += (mask[i / 64] >> (i % 64)) & 1;
	return (s64)n;
}

/*
 * Runs on the boot CPU, outside the guest (hv_control_poll): the answer
 * leaves only once every other vCPU is parked in its host loop, and the
 * boot CPU itself stays in hv_control_poll until RESUME.
 */
static int be_pause(void *ctx)
{
	(void)ctx;
	smp_pause_others(hv.vm, hv.vcpu);
	hv.vcpu->paused = true;
	return 0;
}

static int be_resume(void *ctx)
{
	(void)ctx;
	hv.vcpu->paused = false;
	smp_resume_others(hv.vm);
	return 0;
}

static int be_mem_read(void *ctx, gpa_t gpa, void *buf, u32 len)
{
	const struct hv_slot *s = hv_gpa_to_slot(hv.vm, gpa);
	u8 *out = buf;
	u32 i;

	(void)ctx;
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
	struct hv_guest_sregs sr;
	struct vcpu *v;
	unsigned int i;

	(void)ctx;
	if (vcpu >= hv.vm->nr_vcpus || !hv.vm->vcpus[vcpu] ||
	    !__atomic_load_n(&hv.vm->vcpus[vcpu]->online, __ATOMIC_SEQ_CST))
		return -PROTO_E_NO_VCPU;
	v = hv.vm->vcpus[vcpu];
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
	if (v == hv.vcpu) {
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
static void ctl_exit_stats(struct hv_exit_stats *sum)
{
	u32 i, r;

	*sum = (struct hv_exit_stats){0};
	for (i = 0; i < hv.vm->nr_vcpus; i++) {
		const struct hv_exit_stats *s = hv.vm->vcpus[i] ? &hv.vm->vcpus[i]->stats : NULL;

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

static int ctl_vcpu_stat(u32 i, const char **name, u64 *value)
{
	static char names[HV_MAX_CPUS][VSTAT_NR][32];
	u32 id = i / VSTAT_NR, k = i % VSTAT_NR;
	const struct vcpu *v;

	if (id >= hv.vm->nr_vcpus || !hv.vm->vcpus[id])
		return -PROTO_E_RANGE;
	v = hv.vm->vcpus[id];
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
	struct hv_exit_stats sum;
	const struct hv_exit_stats *es = &sum;
	struct tdp_mmu_stats ms;

	(void)ctx;
	if (index >= STAT_NR)
		return ctl_vcpu_stat(index - STAT_NR, name, value);
	ctl_exit_stats(&sum);
	if (index >= STAT_EXIT_FIRST && index < STAT_EXIT_FIRST + HV_NR_EXIT_REASONS) {
		*name = exit_stat_names[index - STAT_EXIT_FIRST];
		*value = es->by_reason[index - STAT_EXIT_FIRST];
		return 0;
	}
	tdp_mmu_get_stats(hv.vm->mmu, &ms);
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
		*value = hv.footprint_bytes;
		return 0;
	case STAT_HV_POOL_FREE:
		*name = "hv.pool_free_bytes";
		*value = hv_pages_free() * PAGE_SIZE;
		return 0;
	case STAT_SMP_UNVIRT:
		*name = "hv.smp_unvirtualized";
		*value = hv.smp_unvirtualized;
		return 0;
	case STAT_MGMT_TICK:
		/* enum hv_mgmt_tick: 0 = no bound on the answer time (docs/hv.md). */
		*name = "hv.mgmt_tick";
		*value = hv.mgmt_tick;
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
    .slot_get = be_slot_get,
    .dirty_start = be_dirty_start,
    .dirty_stop = be_dirty_stop,
    .dirty_snapshot = be_dirty_snapshot,
    .dirty_harvest = be_dirty_harvest,
    .dirty_clear = be_dirty_clear,
    .pause = be_pause,
    .resume = be_resume,
    .mem_read = be_mem_read,
    .regs = be_regs,
    .stat = be_stat,
    .log_read = be_log_read,
    .note = be_note,
};

int hv_control_init(void)
{
	void *mem;
	int rc;

	if (!hv.mgmt_uart.present) {
		hv_log("management port: none (no UART at 0x%x)", UART_COM2_BASE);
		return 0;
	}
	if (hv.bi->tsc_hz) {
		ctl_ns_mult = (1000000000ull << 32) / hv.bi->tsc_hz;
		ctl_backend.now_ns = be_now_ns;
		hv_log("management: TSC %lu Hz (measured at boot): harvest times in stats",
		       hv.bi->tsc_hz);
	} else {
		hv_log("management: TSC frequency unknown: harvest times are not measured "
		       "(dirty.harvest_ns_* stay 0)");
	}
	mem = hv_pages_alloc_contig((MGMT_MEM_SIZE + PAGE_SIZE - 1) / PAGE_SIZE);
	if (!mem) {
		hv_log("management port: out of pool memory");
		return -1;
	}
	rc = mgmt_init(&ctl.mgmt, mem, MGMT_MEM_SIZE, &ctl_backend, NULL, &ctl_transport,
		       &hv.mgmt_uart);
	if (rc) {
		hv_log("management port: mgmt_init failed: %d", rc);
		return -1;
	}
	/* The TSC since reset, to the cycle: another value on every boot. */
	mgmt_set_boot_id(&ctl.mgmt, x86_rdtsc());
	if (hv.bi->mgmt_step_pages)
		mgmt_set_step_pages(&ctl.mgmt, hv.bi->mgmt_step_pages);
	hv_log("management: long commands in steps of %lu pages", ctl.mgmt.step_pages);
	ctl.up = true;
	hv_log("management port: up on COM2 (0x%x)", UART_COM2_BASE);
	return 0;
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

bool hv_control_wants_poll(void)
{
	return ctl.up && mgmt_wants_poll(&ctl.mgmt);
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
