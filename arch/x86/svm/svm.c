/* SPDX-License-Identifier: MIT */
#include "arch/x86/svm/svm.h"

#include "arch/x86/apic.h"
#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "arch/x86/host.h"
#include "arch/x86/svm/svm_insn.h"
#include "hv/guest_mem.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/page_alloc.h"

#include <pt/assert.h>

/* One I/O and one MSR permission map for all vCPUs: the policy is the VM's. */
static u8 *svm_iopm, *svm_msrpm;

static struct svm_vcpu *to_svm(struct vcpu *v)
{
	return v->arch;
}

static int svm_check_cpu(const char **why)
{
	if (x86_cpuid(0x80000000, 0).eax < 0x8000000a) {
		*why = "no CPUID leaf 0x8000000A";
		return -1;
	}
	if (!(x86_cpuid(0x80000001, 0).ecx & CPUID_80000001_ECX_SVM)) {
		*why = "CPU has no SVM (CPUID 0x80000001 ECX bit 2)";
		return -1;
	}
	if (!(x86_cpuid(0x8000000a, 0).edx & CPUID_8000000A_EDX_NP)) {
		*why = "CPU has no nested paging (CPUID 0x8000000A EDX bit 0)";
		return -1;
	}
	/* APM Vol. 2, 15.30.1: SVMDIS makes EFER.SVME writes #GP. */
	if (x86_rdmsr(MSR_VM_CR) & VM_CR_SVMDIS) {
		*why = "SVM disabled by firmware (VM_CR.SVMDIS)";
		return -1;
	}
	if (x86_rdmsr(MSR_EFER) & EFER_SVME) {
		*why = "EFER.SVME already set: another hypervisor owns this CPU";
		return -1;
	}
	return 0;
}

void svm_intercept_io_port(struct svm_vcpu *s, u16 port)
{
	s->iopm[port / 8] |= (u8)(1u << (port % 8));
}

/*
 * APM Vol. 2, 15.11 "MSR Intercepts": two bits per MSR (read, write) in three
 * 2 KiB blocks for 0-1FFFh, C000_0000h-C000_1FFFh and C001_0000h-C001_1FFFh.
 * MSRs outside the blocks are always intercepted.
 */
void svm_intercept_msr(struct svm_vcpu *s, u32 msr, bool read, bool write)
{
	static const u32 block_base[] = {0x00000000u, 0xc0000000u, 0xc0010000u};
	unsigned int b;

	for (b = 0; b < ARRAY_SIZE(block_base); b++) {
		u32 off = msr - block_base[b];
		u32 bit;

		if (msr < block_base[b] || off >= 0x2000)
			continue;
		bit = b * 0x800 * 8 + off * 2;
		if (read)
			s->msrpm[bit / 8] |= (u8)(1u << (bit % 8));
		if (write)
			s->msrpm[bit / 8] |= (u8)(1u << ((bit + 1) % 8));
		return;
	}
}

static void svm_seg_from_desc(struct vmcb_seg *seg, u16 sel, const struct x86_dtr *gdt, bool system)
{
	const u8 *table = (const u8 *)(uintptr_t)gdt->base;
	u64 d, limit;

	seg->selector = sel;
	if ((sel & ~7u) == 0 || (sel & 4) || (sel | 7u) > gdt->limit) {
		/* Null or LDT-relative selector: leave it unusable. */
		seg->attrib = 0;
		seg->limit = 0;
		seg->base = 0;
		return;
	}
	d = *(const u64 *)(table + (sel & ~7u));
	seg->attrib = (u16)(((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 8));
	limit = (d & 0xffff) | ((d >> 32) & 0xf0000);
	if (d & BIT_ULL(55))
		limit = (limit << 12) | 0xfff;
	seg->limit = (u32)limit;
	seg->base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	if (system)
		seg->base |= (u64) * (const u32 *)(table + (sel & ~7u) + 8) << 32;
}

static void svm_capture_live_state(struct vcpu *v, const struct hv_takeover *t)
{
	struct vmcb_save *g = &to_svm(v)->vmcb->save;
	struct x86_dtr gdt = x86_sgdt(), idt = x86_sidt();

	svm_seg_from_desc(&g->cs, x86_read_cs(), &gdt, false);
	svm_seg_from_desc(&g->ss, x86_read_ss(), &gdt, false);
	svm_seg_from_desc(&g->ds, x86_read_ds(), &gdt, false);
	svm_seg_from_desc(&g->es, x86_read_es(), &gdt, false);
	svm_seg_from_desc(&g->fs, x86_read_fs(), &gdt, false);
	svm_seg_from_desc(&g->gs, x86_read_gs(), &gdt, false);
	svm_seg_from_desc(&g->tr, x86_read_tr(), &gdt, true);
	svm_seg_from_desc(&g->ldtr, x86_read_ldtr(), &gdt, true);
	g->fs.base = x86_rdmsr(MSR_FS_BASE);
	g->gs.base = x86_rdmsr(MSR_GS_BASE);
	g->gdtr.base = gdt.base;
	g->gdtr.limit = gdt.limit;
	g->idtr.base = idt.base;
	g->idtr.limit = idt.limit;
	g->cpl = (u8)(x86_read_cs() & 3);
	/* VMRUN requires the guest EFER.SVME set (APM 15.5.1); the guest never sees it. */
	g->efer = x86_rdmsr(MSR_EFER) | EFER_SVME;
	g->cr0 = x86_read_cr0();
	g->cr2 = x86_read_cr2();
	g->cr3 = x86_read_cr3();
	g->cr4 = x86_read_cr4();
	g->dr7 = 0x400;
	g->dr6 = 0xffff0ff0;
	g->g_pat = x86_rdmsr(MSR_IA32_PAT);
	g->rip = t->guest_rip;
	g->rsp = t->guest_rsp;
	g->rflags = t->guest_rflags;
	g->rax = 0;
	v->rip = g->rip;
	v->rflags = g->rflags;
	v->gprs.r[HV_GPR_RSP] = g->rsp;
	v->gprs.r[HV_GPR_RAX] = 0;
}

static void svm_sync_ctrl(struct vcpu *v)
{
	const struct vmcb_save *g = &to_svm(v)->vmcb->save;

	v->ctrl.cr0 = g->cr0;
	v->ctrl.cr2 = g->cr2;
	v->ctrl.cr3 = g->cr3;
	v->ctrl.cr4 = g->cr4;
	v->ctrl.efer = g->efer & ~EFER_SVME;
	v->ctrl.cs_base = g->cs.base;
	v->ctrl.cs_sel = g->cs.selector;
	v->ctrl.ss_sel = g->ss.selector;
	v->ctrl.ds_sel = g->ds.selector;
	v->ctrl.es_sel = g->es.selector;
	/* FS, GS and their bases are never switched (svm_entry.S): read them live. */
	v->ctrl.fs_sel = x86_read_fs();
	v->ctrl.gs_sel = x86_read_gs();
	v->ctrl.fs_base = x86_rdmsr(MSR_FS_BASE);
	v->ctrl.gs_base = x86_rdmsr(MSR_GS_BASE);
	v->ctrl.cs_long = g->cs.attrib & BIT_ULL(9);
	v->ctrl.cs_db = g->cs.attrib & BIT_ULL(10);
	v->ctrl.cpl = g->cpl;
}

static void svm_seg_out(struct hv_guest_seg *out, const struct vmcb_seg *seg)
{
	out->sel = seg->selector;
	out->base = seg->base;
	out->limit = seg->limit;
	/* VMCB attrib: descriptor bits 47:40 in 7:0, 55:52 in 11:8 (APM Vol. 2, 15.5.1). */
	out->attr = ((u32)(seg->attrib & 0xff) << 8) | ((u32)(seg->attrib & 0xf00) << 12);
	if (!(seg->attrib & BIT_ULL(7)))
		out->attr = 0; /* not present: unusable */
}

static void svm_get_sregs(struct vcpu *v, struct hv_guest_sregs *out)
{
	struct vmcb *vmcb = to_svm(v)->vmcb;
	const struct vmcb_save *g = &vmcb->save;

	/*
	 * FS, GS, TR, LDTR and KernelGsBase stay live in the CPU across VMRUN
	 * and #VMEXIT (svm_entry.S): VMSAVE puts the guest's values, hidden
	 * parts included, into its own VMCB, where VMRUN never reads them.
	 */
	svm_vmsave(hv_pa(vmcb));
	svm_seg_out(&out->cs, &g->cs);
	svm_seg_out(&out->ss, &g->ss);
	svm_seg_out(&out->ds, &g->ds);
	svm_seg_out(&out->es, &g->es);
	svm_seg_out(&out->fs, &g->fs);
	svm_seg_out(&out->gs, &g->gs);
	svm_seg_out(&out->ldtr, &g->ldtr);
	svm_seg_out(&out->tr, &g->tr);
	out->gdt_base = g->gdtr.base;
	out->gdt_limit = g->gdtr.limit;
	out->idt_base = g->idtr.base;
	out->idt_limit = g->idtr.limit;
	out->kernel_gs_base = g->kernel_gs_base;
}

static const char *svm_exit_name(u64 code)
{
	switch ((u32)code) {
	case SVM_EXIT_INTR:
		return "INTR";
	case SVM_EXIT_NMI:
		return "NMI";
	case SVM_EXIT_SMI:
		return "SMI";
	case SVM_EXIT_INIT:
		return "INIT";
	case SVM_EXIT_VINTR:
		return "VINTR";
	case SVM_EXIT_IRET:
		return "IRET";
	case SVM_EXIT_CPUID:
		return "CPUID";
	case SVM_EXIT_HLT:
		return "HLT";
	case SVM_EXIT_INVLPGA:
		return "INVLPGA";
	case SVM_EXIT_IOIO:
		return "IOIO";
	case SVM_EXIT_MSR:
		return "MSR";
	case SVM_EXIT_SHUTDOWN:
		return "SHUTDOWN";
	case SVM_EXIT_VMRUN:
		return "VMRUN";
	case SVM_EXIT_VMMCALL:
		return "VMMCALL";
	case SVM_EXIT_VMLOAD:
		return "VMLOAD";
	case SVM_EXIT_VMSAVE:
		return "VMSAVE";
	case SVM_EXIT_STGI:
		return "STGI";
	case SVM_EXIT_CLGI:
		return "CLGI";
	case SVM_EXIT_SKINIT:
		return "SKINIT";
	case SVM_EXIT_NPF:
		return "NPF";
	case SVM_EXIT_INVALID_32:
		return "INVALID";
	}
	return "unexpected";
}

static void svm_decode_exit(struct vcpu *v, struct hv_exit *e)
{
	const struct vmcb_control *c = &to_svm(v)->vmcb->control;
	u64 i1 = c->exit_info1;

	e->raw_code = c->exit_code;
	e->raw_info1 = i1;
	e->raw_info2 = c->exit_info2;
	e->name = svm_exit_name(c->exit_code);
	switch ((u32)c->exit_code) {
	case SVM_EXIT_CPUID:
		e->reason = HV_EXIT_CPUID;
		return;
	case SVM_EXIT_MSR:
		e->reason = i1 ? HV_EXIT_MSR_WRITE : HV_EXIT_MSR_READ;
		e->msr = (u32)v->gprs.r[HV_GPR_RCX];
		return;
	case SVM_EXIT_IOIO:
		e->reason = HV_EXIT_IO;
		e->io.port = (u16)(i1 >> SVM_IOIO_PORT_SHIFT);
		e->io.in = i1 & SVM_IOIO_TYPE_IN;
		e->io.string = i1 & SVM_IOIO_STR;
		e->io.rep = i1 & SVM_IOIO_REP;
		e->io.size = (i1 & SVM_IOIO_SZ32) ? 4 : (i1 & SVM_IOIO_SZ16) ? 2 : 1;
		/* APM 15.10.2: EXITINFO2 holds the rIP of the next instruction. */
		e->io.next_rip = c->exit_info2;
		return;
	case SVM_EXIT_HLT:
		e->reason = HV_EXIT_HLT;
		return;
	case SVM_EXIT_VMRUN:
	case SVM_EXIT_VMMCALL:
	case SVM_EXIT_VMLOAD:
	case SVM_EXIT_VMSAVE:
	case SVM_EXIT_STGI:
	case SVM_EXIT_CLGI:
	case SVM_EXIT_SKINIT:
	case SVM_EXIT_INVLPGA:
		e->reason = HV_EXIT_VIRT_INSN;
		return;
	case SVM_EXIT_NPF:
		e->reason = HV_EXIT_TDP_FAULT;
		e->tdp.gpa = c->exit_info2;
		e->tdp.present = i1 & SVM_NPF_PRESENT;
		e->tdp.write = i1 & SVM_NPF_WRITE;
		e->tdp.user = i1 & SVM_NPF_USER;
		e->tdp.fetch = i1 & SVM_NPF_FETCH;
		return;
	case SVM_EXIT_SHUTDOWN:
		e->reason = HV_EXIT_SHUTDOWN;
		return;
	case SVM_EXIT_INVALID_32:
		e->reason = HV_EXIT_ENTRY_FAILED;
		return;
	case SVM_EXIT_INTR:
		if (c->intercept_misc3 & SVM_INTERCEPT_INTR) {
			e->reason = HV_EXIT_INTR;
			return;
		}
		break;
	case SVM_EXIT_IRET:
		if (c->intercept_misc3 & SVM_INTERCEPT_IRET) {
			e->reason = HV_EXIT_IRET;
			return;
		}
		break;
	case SVM_EXIT_NMI:
		if (c->intercept_misc3 & SVM_INTERCEPT_NMI) {
			e->reason = HV_EXIT_NMI;
			return;
		}
		break;
	}
	/* Not one we asked for: the core reports it and stops the guest. */
	e->reason = HV_EXIT_UNKNOWN;
}

/*
 * The guest is halted on the HLT at RIP, which runs again at the next VMRUN:
 * after the HLT's own intercept (svm_halt_in_guest) or after a tick woke
 * it (nmi_rewound_halt). An interrupt that comes before that HLT has run
 * again must end the halt, as it would have on the bare CPU, where the
 * guest was asleep all along: taken before the HLT, its handler would
 * return onto the HLT and the guest would sleep on with its wake-up
 * handled (Linux's idle task then kept woken tasks waiting for seconds and
 * its 24-bit ACPI PM timer wrapped unread). The interrupt shadow the HLT
 * ran under would hold the interrupt until the HLT ran, but QEMU TCG does
 * not honour the shadow VMRUN loads (APM Vol. 2, 15.21.5 "Interrupt
 * Shadows"). So INTR is intercepted for that VMRUN, and an INTR exit with
 * RIP still on the HLT completes it (svm_run).
 */
static bool svm_halt_pending(const struct svm_vcpu *s)
{
	return s->guest_halt || s->nmi_rewound_halt;
}

/*
 * The host gets a turn on every guest interrupt, without taking interrupts
 * itself (GIF stays 0) and without a preemption timer (SVM has none): INTR
 * is always intercepted; after an INTR exit the next VMRUN does not
 * intercept it, so the pending interrupt is delivered to the guest, and
 * intercepts IRET instead, which exits when the handler returns (before the
 * IRET executes: resuming without the intercept completes it); then INTR is
 * intercepted again. So even a guest that computes without exiting lets the
 * management port be polled at its timer rate (2 exits per interrupt).
 * APM 15.21 "Interrupt and LINT Virtualization", 15.9 "Instruction
 * Intercepts". (V_IRQ + VINTR would do the same, but QEMU 7.2 TCG aborts on
 * it: "tcg_handle_interrupt: assertion failed: qemu_mutex_iothread_locked".)
 * When the guest may sleep in its own HLT (guest_halt), the HLT intercept is
 * off for that one VMRUN, also inside an interrupt window: the guest can
 * reach its HLT before the IRET the window waits for (Linux preempts in its
 * interrupt return and its idle task halts), and an intercepted HLT would
 * then take the pending interrupt with RIP still on the HLT, whose handler
 * returns onto the HLT: the wake-up lost, the guest asleep until its next
 * interrupt. Run in the guest, the HLT is woken by that interrupt, which
 * returns after it.
 */
static void svm_arm_poll_exits(struct svm_vcpu *s)
{
	struct vmcb_control *c = &s->vmcb->control;

	c->intercept_misc3 &= ~(SVM_INTERCEPT_INTR | SVM_INTERCEPT_IRET | SVM_INTERCEPT_HLT);
	if (!s->guest_halt)
		c->intercept_misc3 |= SVM_INTERCEPT_HLT;
	/* The guest's NMI handler returns: see svm_nmi_after_exit. */
	if (s->nmi_masked && !s->nmi_iret_seen)
		c->intercept_misc3 |= SVM_INTERCEPT_IRET;
	c->intercept_exceptions = s->nmi_stepping ? BIT_ULL(X86_VEC_DB) : 0;
	if (s->intr_window)
		c->intercept_misc3 |= SVM_INTERCEPT_IRET;
	/* See svm_halt_pending: an interrupt before the HLT runs again ends the halt. */
	if (!s->intr_window || svm_halt_pending(s))
		c->intercept_misc3 |= SVM_INTERCEPT_INTR;
}

/*
 * The HLT exited before it executed, and runs again in the guest. With
 * RFLAGS.IF set it runs under an interrupt shadow, so that an interrupt
 * pending by then (it came during the exit, or right at the STI of
 * `sti; hlt`) wakes the HLT instead of being taken before it and returning
 * onto it. Always legal: the guest sees its HLT end on an interrupt that
 * came a moment later. (QEMU TCG ignores the shadow: svm_halt_pending.)
 */
static void svm_halt_in_guest(struct vcpu *v)
{
	struct svm_vcpu *s = to_svm(v);

	s->guest_halt = true;
	if (v->rflags & X86_EFLAGS_IF)
		s->vmcb->control.interrupt_shadow = SVM_INTERRUPT_SHADOW;
}

/*
 * RIP after the HLT at RIP: HLT is F4, after any legacy prefixes (Intel SDM
 * Vol. 2A, 2.1.1 "Instruction Prefixes"). The guest stopped on it, so its
 * bytes were fetched; one that cannot be read now is a broken guest.
 */
static u64 svm_hlt_end(struct vcpu *v)
{
	unsigned int i;
	u8 b;

	for (i = 0; i < 15; i++) {
		if (hv_guest_read_linear(v, v->ctrl.cs_base + v->rip + i, &b, 1))
			break;
		if (b == 0xf4)
			return v->rip + i + 1;
		if (b != 0x26 && b != 0x2e && b != 0x36 && b != 0x3e && b != 0x64 && b != 0x65 &&
		    b != 0x66 && b != 0x67 && b != 0xf2 && b != 0xf3 && b != 0xf0)
			break;
	}
	hv_guest_fatal(v, "FATAL: vCPU %u halted at rip=0x%lx, where no HLT can be read", v->id,
		       v->rip);
}

/*
 * EXITINTINFO as EVENTINJ. QEMU TCG (7.2, seg_helper.c do_interrupt_all)
 * records every event that is not INT n as type 3 "exception", external
 * interrupts (vector >= 32) and NMI (vector 2) included, and its VMRUN then
 * refuses type 3 with those vectors (VMEXIT_INVALID; APM 15.20 "Event
 * Injection" makes them invalid too). Give them their real type; on
 * hardware, which reports the right type, this changes nothing.
 */
static u64 svm_reinjectable(u64 info)
{
	u64 vec = info & SVM_EVTINJ_VEC_MASK;

	if ((info & SVM_EVTINJ_TYPE_MASK) != SVM_EVTINJ_TYPE_EXCEPTION)
		return info;
	if (vec >= X86_VEC_COUNT)
		return (info & ~(SVM_EVTINJ_TYPE_MASK | SVM_EVTINJ_EV)) | SVM_EVTINJ_TYPE_INTR;
	if (vec == X86_VEC_NMI)
		return (info & ~(SVM_EVTINJ_TYPE_MASK | SVM_EVTINJ_EV)) | SVM_EVTINJ_TYPE_NMI;
	return info;
}

/* Bounded wait for the pending NMI after STGI (it is taken at once on QEMU TCG). */
#define SVM_NMI_WAIT_SPINS 1000
#define SVM_NMI_LOG_LIMIT  4

static u64 svm_host_rflags(void)
{
	u64 f;

	__asm__ volatile("pushfq\n\tpopq %0" : "=r"(f));
	return f;
}

/*
 * After #VMEXIT(NMI) the NMI has not been taken: it is still pending, held
 * by GIF = 0 (AMD APM Vol. 2, 15.13.2 "NMI Intercept": the intercept
 * replaces the NMI's delivery; 15.17 "Global Interrupt Flag, STGI and CLGI
 * Instructions": with GIF = 0 an NMI is held pending until GIF is set). The
 * host keeps GIF = 0, so the next VMRUN (which sets GIF) would see it again
 * and exit again, forever. Take it here, in the host: STGI with RFLAGS.IF =
 * 0 lets exactly the NMI through (maskable interrupts stay masked by IF),
 * through the host IDT's vector 2 (x86_host_exception counts it, IRETQ ends
 * NMI blocking), then CLGI closes the window. Seen under QEMU 7.2 TCG: the
 * NMI arrives right after STGI (its translator ends the block at STGI).
 */
static u64 svm_host_nmis(const struct svm_vcpu *s)
{
	return __atomic_load_n(&s->host_nmis, __ATOMIC_SEQ_CST);
}

static void svm_take_pending_nmi(struct svm_vcpu *s)
{
	u64 before = svm_host_nmis(s);
	unsigned int i;

	PT_ASSERT(!(svm_host_rflags() & X86_EFLAGS_IF));
	svm_stgi();
	for (i = 0; i < SVM_NMI_WAIT_SPINS && svm_host_nmis(s) == before; i++)
		x86_pause();
	svm_clgi();
	if (svm_host_nmis(s) == before && s->nmi_no_host_nmi++ < SVM_NMI_LOG_LIMIT)
		hv_log("svm: NMI exit, but no NMI reached the host after STGI");
}

/*
 * The host IDT took an NMI (arch/x86/host.c), in the window
 * svm_take_pending_nmi opened on some CPU. Which vCPU's window: the one whose
 * host save area this CPU's VM_HSAVE_PA names (each vCPU's CPU points it at
 * its own, svm_host_enter). Another CPU's NMI must not end this CPU's wait:
 * its own would then still be pending at the next VMRUN, exit again and find
 * nothing to claim. NMI context: one MSR read, one atomic add, no lock.
 */
static struct svm_vcpu *svm_vcpus[HV_MAX_CPUS];

static void svm_host_nmi(void)
{
	hpa_t hsave = x86_rdmsr(MSR_VM_HSAVE_PA);
	u32 i;

	for (i = 0; i < HV_MAX_CPUS; i++)
		if (svm_vcpus[i] && hv_pa(svm_vcpus[i]->host_save_area) == hsave) {
			__atomic_add_fetch(&svm_vcpus[i]->host_nmis, 1, __ATOMIC_SEQ_CST);
			return;
		}
}

/* VMEXIT_INVALID: the state VMRUN's consistency checks saw, for the report. */
static void svm_log_refused_vmcb(const struct vmcb *vmcb)
{
	const struct vmcb_control *c = &vmcb->control;
	const struct vmcb_save *g = &vmcb->save;

	hv_log("svm: VMRUN refused the VMCB: event_inj=0x%lx vintr=0x%lx intercepts=0x%x/0x%x "
	       "cr3=0x%lx n_cr3=0x%lx rflags=0x%lx",
	       c->event_inj, c->vintr, c->intercept_misc3, c->intercept_misc4, g->cr3, c->n_cr3,
	       g->rflags);
	hv_log("svm: efer=0x%lx cr0=0x%lx cr4=0x%lx dr6=0x%lx dr7=0x%lx cs=0x%x/0x%x ss=0x%x/0x%x "
	       "cpl=%u tlb_control=%u asid=%u exit_int_info=0x%lx",
	       g->efer, g->cr0, g->cr4, g->dr6, g->dr7, g->cs.selector, g->cs.attrib,
	       g->ss.selector, g->ss.attrib, g->cpl, c->tlb_control, c->guest_asid,
	       c->exit_int_info);
}

/*
 * The guest's NMI blocking, while NMIs are intercepted (the management
 * tick). A CPU that delivers an NMI blocks further NMIs until the next IRET
 * completes (AMD APM Vol. 2, 8.2.3 "NMI—Non-Maskable-Interrupt Exception
 * (Vector 2)"). With the NMI intercept the CPU does not do that for the
 * guest: every physical NMI exits (15.13.2 "NMI Intercept"), and one injected
 * through EVENTINJ (15.20 "Event Injection") leaves no blocking the CPU
 * would act on, so the hypervisor keeps it, as KVM does without vNMI:
 *  - injecting an NMI sets nmi_masked and intercepts IRET (15.9
 *    "Instruction Intercepts": the intercept is checked before the IRET
 *    executes);
 *  - at the IRET exit the IRET has not run yet: its intercept goes off and
 *    the guest runs it; NMI blocking ends at the first exit with RIP
 *    elsewhere (any IRET unblocks NMIs, as on the CPU: also one that
 *    returns from an exception taken inside the NMI handler);
 *  - an NMI for the guest that arrives meanwhile waits in nmi_pending
 *    (merged, as the CPU's latch holds one). If one waits when the IRET
 *    exits, the IRET is single-stepped (RFLAGS.TF, and RF so that an
 *    instruction breakpoint on it does not fire again; #DB intercepted):
 *    the #DB trap after it is the first instruction boundary with NMIs
 *    unblocked, where the CPU would deliver the held NMI (Intel SDM Vol. 3B,
 *    18.3.1.4 "Single-Step Exception Condition": TF at the start of the
 *    instruction counts, whatever the IRET loads).
 * The tick's NMIs are the host's: taken in the host (svm_take_pending_nmi),
 * never injected, they change nothing here.
 */
static void svm_nmi_before_run(struct vcpu *v, struct svm_vcpu *s)
{
	struct vmcb_control *c = &s->vmcb->control;

	if (!s->nmi_pending || (c->event_inj & SVM_EVTINJ_VALID))
		return;
	if (!s->nmi_masked) {
		c->event_inj = X86_VEC_NMI | SVM_EVTINJ_TYPE_NMI | SVM_EVTINJ_VALID;
		s->nmi_pending = false;
		s->nmi_masked = true;
		return;
	}
	if (s->nmi_iret_seen && !s->nmi_stepping) {
		s->nmi_stepping = true;
		s->nmi_step_dr6 = s->vmcb->save.dr6;
		v->rflags |= X86_EFLAGS_TF | X86_EFLAGS_RF;
	}
}

#define X86_DR6_B0_B3 0xfull

/*
 * After an exit, before anything else looks at it. Returns true for the
 * #DB of the single-step over the guest's IRET, which is handled here
 * (enter again), false for every exit hv/ must see.
 */
static bool svm_nmi_after_exit(struct vcpu *v, struct svm_vcpu *s)
{
	struct vmcb *vmcb = s->vmcb;
	u32 code = (u32)vmcb->control.exit_code;
	u64 bps;

	if (s->nmi_iret_seen && vmcb->save.rip != s->nmi_iret_rip) {
		s->nmi_iret_seen = false;
		s->nmi_masked = false;
	}
	if (code == SVM_EXIT_IRET && s->nmi_masked && !s->nmi_iret_seen) {
		s->nmi_iret_seen = true;
		s->nmi_iret_rip = vmcb->save.rip;
	}
	if (!s->nmi_stepping || s->nmi_masked)
		return false;
	/*
	 * The IRET completed: the step is over. TF and RF now hold what the
	 * IRET loaded, the guest's own. Any other exit ended it as well (the
	 * IRET faulted into a handler, which runs with TF clear).
	 */
	s->nmi_stepping = false;
	if (code != SVM_EXIT_EXCP_BASE + X86_VEC_DB)
		return false;
	/* The step's BS is ours; a data breakpoint the IRET hit is the guest's. */
	bps = vmcb->save.dr6 & ~s->nmi_step_dr6 & X86_DR6_B0_B3;
	vmcb->save.dr6 = s->nmi_step_dr6 | bps;
	if (bps)
		vmcb->control.event_inj = X86_VEC_DB | SVM_EVTINJ_TYPE_EXCEPTION | SVM_EVTINJ_VALID;
	(void)v;
	return true;
}

static void svm_run(struct vcpu *v, struct hv_exit *e)
{
	struct svm_vcpu *s = to_svm(v);
	struct vmcb *vmcb = s->vmcb;
	bool halt_run, halt_pending;
	u64 entry_rip, entry_shadow, halt_end;

again:
	halt_run = s->guest_halt;
	halt_pending = svm_halt_pending(s);
	/* Where the pending HLT ends (0: not known yet, svm_hlt_end reads it). */
	halt_end = s->nmi_rewound_halt ? s->halt_rip : 0;
	entry_rip = v->rip;
	svm_nmi_before_run(v, s);
	/*
	 * hv/ completed an instruction (moved RIP): an interrupt shadow
	 * (STI; HLT, MOV SS) covered that instruction only, so it ends here.
	 * APM 15.21.5 "Interrupt Shadows". A HLT put back after a tick
	 * (nmi_rewound_halt) runs again under the shadow it had: `sti; hlt`
	 * must not take an interrupt between the two, or the wake-up it was
	 * waiting for is handled before the HLT, which then sleeps on.
	 */
	if (vmcb->save.rip != v->rip)
		vmcb->control.interrupt_shadow = s->nmi_rewound_halt ? s->halt_shadow : 0;
	entry_shadow = vmcb->control.interrupt_shadow;
	vmcb->save.rax = v->gprs.r[HV_GPR_RAX];
	vmcb->save.rsp = v->gprs.r[HV_GPR_RSP];
	vmcb->save.rip = v->rip;
	vmcb->save.rflags = v->rflags;
	vmcb->control.tlb_control =
	    s->tlb_flush_pending ? SVM_TLB_CONTROL_FLUSH_ALL_ASIDS : SVM_TLB_CONTROL_DO_NOTHING;
	s->tlb_flush_pending = false;
	svm_arm_poll_exits(s);
	/* TCG has no clean bits; 0 is also always correct on hardware. */
	vmcb->control.vmcb_clean = 0;

	svm_vmrun(hv_pa(vmcb), &v->gprs);

	v->gprs.r[HV_GPR_RAX] = vmcb->save.rax;
	v->gprs.r[HV_GPR_RSP] = vmcb->save.rsp;
	v->rip = vmcb->save.rip;
	v->rflags = vmcb->save.rflags;
	if ((u32)vmcb->control.exit_code == SVM_EXIT_INVALID_32)
		svm_log_refused_vmcb(vmcb);
	vmcb->control.event_inj = 0;
	/*
	 * APM 15.7.2 "Intercepts During IDT Interrupt Delivery": an exit taken
	 * while an event was being delivered leaves it in EXITINTINFO; inject
	 * it again so it is not lost.
	 */
	if (vmcb->control.exit_int_info & SVM_EVTINJ_VALID)
		vmcb->control.event_inj = svm_reinjectable(vmcb->control.exit_int_info);
	if (svm_nmi_after_exit(v, s)) {
		v->rflags = vmcb->save.rflags;
		goto again;
	}
	svm_sync_ctrl(v);
	svm_decode_exit(v, e);
	s->nmi_rewound_halt = false;
	if (halt_pending && v->rip == entry_rip &&
	    (e->reason == HV_EXIT_INTR || e->reason == HV_EXIT_NMI)) {
		/* The HLT has not run again: svm_halt_pending. */
		if (!halt_end)
			halt_end = svm_hlt_end(v);
		if (e->reason == HV_EXIT_INTR) {
			v->rip = halt_end; /* the interrupt ends the halt */
		} else {
			s->halt_rip = halt_end;
			s->halt_shadow =
			    (v->rflags & X86_EFLAGS_IF) ? SVM_INTERRUPT_SHADOW : entry_shadow;
			s->nmi_rewound_halt = true; /* still halted */
		}
		if (e->reason == HV_EXIT_NMI)
			svm_take_pending_nmi(s);
	} else if (e->reason == HV_EXIT_NMI) {
		svm_take_pending_nmi(s);
		/*
		 * The guest executed its HLT (RIP moved past it: at most one
		 * instruction, as every interrupt exits first) and the NMI woke
		 * it. Put it back on the HLT: a tick must not end a halt the
		 * guest did not see end (a `cli; hlt` stop would run on).
		 *
		 * Not when an event was being delivered as the NMI came
		 * (EXITINTINFO): that interrupt ended the halt and returns after
		 * the HLT, where it is re-injected. With RFLAGS.IF set the HLT
		 * runs again under an interrupt shadow, whatever shadow it had,
		 * so that a pending interrupt wakes it (svm_halt_pending).
		 */
		if (halt_run && v->rip != entry_rip && v->rip - entry_rip <= 15 &&
		    !(vmcb->control.exit_int_info & SVM_EVTINJ_VALID)) {
			s->halt_rip = v->rip;
			s->halt_shadow =
			    (v->rflags & X86_EFLAGS_IF) ? SVM_INTERRUPT_SHADOW : entry_shadow;
			v->rip = entry_rip;
			s->nmi_rewound_halt = true;
		}
	}
	/* After an INTR exit the interrupt is still pending: see svm_arm_poll_exits. */
	s->guest_halt = false;
	if (e->reason == HV_EXIT_INTR)
		s->intr_window = true;
	else if (e->reason == HV_EXIT_IRET)
		s->intr_window = false;
}

static void svm_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error)
{
	struct vmcb_control *c = &to_svm(v)->vmcb->control;
	u64 ev = vector | SVM_EVTINJ_TYPE_EXCEPTION | SVM_EVTINJ_VALID;

	if (has_error)
		ev |= SVM_EVTINJ_EV | ((u64)error << SVM_EVTINJ_ERR_SHIFT);
	/*
	 * A CPU delivering a fault pushes RFLAGS with RF set, so that the
	 * handler's IRET re-runs the faulting instruction without an
	 * instruction breakpoint on it firing again (Intel SDM Vol. 3A, 2.3
	 * "System Flags and Fields in the EFLAGS Register", RF; Vol. 3B,
	 * 18.3.1.1 "Instruction-Breakpoint Exception Condition"; AMD APM
	 * Vol. 2, 13.1.3.3 "Resume Flag"). EVENTINJ pushes the guest's RFLAGS
	 * as they are: set RF there for the fault the hypervisor raises.
	 */
	if (x86_vector_is_fault(vector))
		v->rflags |= X86_EFLAGS_RF;
	if (c->event_inj & SVM_EVTINJ_VALID) {
		/*
		 * An interrupted delivery is pending re-injection. The new
		 * exception comes from the instruction that was being entered;
		 * deliver the new one, as the CPU would raise it first.
		 */
		hv_log("inject: vector %u replaces pending event 0x%lx", vector, c->event_inj);
	}
	c->event_inj = ev;
}

/*
 * An NMI that was not the management tick goes to the guest as the NMI it
 * is (APM 15.20 "Event Injection", type 2), at the next entry where the
 * guest does not block NMIs and EVENTINJ is free (an interrupted delivery
 * being re-injected goes first): svm_nmi_before_run.
 */
static void svm_inject_nmi(struct vcpu *v)
{
	struct svm_vcpu *s = to_svm(v);

	/*
	 * Hardware returns from an NMI that woke HLT after the HLT. One the
	 * guest blocks does not wake it: it stays on its HLT.
	 */
	if (s->nmi_rewound_halt && !s->nmi_masked) {
		v->rip = s->halt_rip;
		s->nmi_rewound_halt = false;
	}
	s->nmi_pending = true;
}

static void svm_seg_set(struct vmcb_seg *seg, u16 sel, u64 base, u32 limit, u16 attrib)
{
	seg->selector = sel;
	seg->base = base;
	seg->limit = limit;
	seg->attrib = attrib;
}

/*
 * INIT then a start-up IPI with `vector`: the state a CPU has after INIT
 * (AMD APM Vol. 2, 14.1.3 "Processor Initialization State", Table 14-2;
 * Intel SDM Vol. 3A, 9.1.1 "Processor State After Reset", Table 9-1), in
 * real mode at vector:0000 (SDM Vol. 3A, 9.4.4 "MP Initialization
 * Example"; CS selector vector << 8, base vector << 12). The state the
 * backend leaves live in the CPU (FS, GS, TR, LDTR, the SYSCALL and
 * SYSENTER MSRs, KernelGsBase) is reset with VMLOAD.
 */
static void svm_start_at_sipi(struct vcpu *v, u8 vector)
{
	struct svm_vcpu *s = to_svm(v);
	struct vmcb_save *g = &s->vmcb->save;
	unsigned int i;

	svm_seg_set(&g->cs, (u16)(vector << 8), (u64)vector << 12, 0xffff, 0x9b);
	svm_seg_set(&g->ds, 0, 0, 0xffff, 0x93);
	svm_seg_set(&g->es, 0, 0, 0xffff, 0x93);
	svm_seg_set(&g->ss, 0, 0, 0xffff, 0x93);
	svm_seg_set(&g->fs, 0, 0, 0xffff, 0x93);
	svm_seg_set(&g->gs, 0, 0, 0xffff, 0x93);
	svm_seg_set(&g->gdtr, 0, 0, 0xffff, 0);
	svm_seg_set(&g->idtr, 0, 0, 0xffff, 0);
	svm_seg_set(&g->ldtr, 0, 0, 0xffff, 0x82);
	svm_seg_set(&g->tr, 0, 0, 0xffff, 0x8b);
	g->cpl = 0;
	g->efer = EFER_SVME; /* the guest sees 0; VMRUN needs SVME (APM 15.5.1) */
	g->cr0 = X86_CR0_CD | X86_CR0_NW | X86_CR0_ET;
	g->cr2 = 0;
	g->cr3 = 0;
	g->cr4 = 0;
	g->dr6 = 0xffff0ff0;
	g->dr7 = 0x400;
	g->g_pat = X86_PAT_RESET;
	g->star = g->lstar = g->cstar = g->sfmask = g->kernel_gs_base = 0;
	g->sysenter_cs = g->sysenter_esp = g->sysenter_eip = 0;
	svm_vmload(hv_pa(s->vmcb));
	s->vmcb->control.event_inj = 0;
	s->vmcb->control.interrupt_shadow = 0;
	s->intr_window = false;
	s->guest_halt = false;
	s->nmi_rewound_halt = false;
	/* INIT ends the guest's NMI blocking and any step over its IRET. */
	s->nmi_pending = false;
	s->nmi_masked = false;
	s->nmi_iret_seen = false;
	s->nmi_stepping = false;
	s->tlb_flush_pending = true;
	for (i = 0; i < HV_NR_GPRS; i++)
		v->gprs.r[i] = 0;
	/* EDX holds the processor signature after INIT (CPUID 1 EAX). */
	v->gprs.r[HV_GPR_RDX] = x86_cpuid(1, 0).eax;
	v->rip = 0;
	v->rflags = X86_EFLAGS_FIXED;
	g->rip = 0;
	svm_sync_ctrl(v);
}

static void svm_set_efer(struct vcpu *v, u64 efer)
{
	/* APM 15.5.1: VMRUN requires the guest's EFER.SVME set; the guest never sees it. */
	to_svm(v)->vmcb->save.efer = efer | EFER_SVME;
	v->ctrl.efer = efer & ~EFER_SVME;
}

static void svm_flush_tlb(struct vcpu *v)
{
	to_svm(v)->tlb_flush_pending = true;
}

static void svm_set_tdp_root(struct vcpu *v, hpa_t root)
{
	struct vmcb_control *c = &to_svm(v)->vmcb->control;

	c->n_cr3 = root;
	c->np_control = root ? SVM_NP_ENABLE : 0;
	to_svm(v)->tlb_flush_pending = true;
}

static const struct vcpu_ops svm_vcpu_ops = {
    .run = svm_run,
    .inject_exception = svm_inject_exception,
    .set_efer = svm_set_efer,
    .flush_tlb = svm_flush_tlb,
    .set_tdp_root = svm_set_tdp_root,
    .halt_in_guest = svm_halt_in_guest,
    .inject_nmi = svm_inject_nmi,
    .start_at_sipi = svm_start_at_sipi,
    .get_sregs = svm_get_sregs,
};

_Static_assert(sizeof(struct svm_vcpu) <= PAGE_SIZE, "svm_vcpu fits its page");

static int svm_vcpu_create(struct vcpu *v, const struct hv_boot_info *bi)
{
	struct svm_vcpu *s = hv_page_alloc();
	bool smp = bi->nr_cpus > 1;
	struct vmcb_control *c;
	u16 port;

	if (!s)
		return -1;
	s->vmcb = hv_page_alloc();
	s->host_save_area = hv_page_alloc();
	if (!svm_iopm) {
		svm_iopm = hv_pages_alloc_contig(SVM_IOPM_PAGES);
		svm_msrpm = hv_pages_alloc_contig(SVM_MSRPM_PAGES);
	}
	s->iopm = svm_iopm;
	s->msrpm = svm_msrpm;
	if (!s->vmcb || !s->host_save_area || !s->iopm || !s->msrpm)
		return -1;
	v->arch = s;
	v->ops = &svm_vcpu_ops;
	svm_vcpus[v->id] = s;
	x86_host_nmi_hook = svm_host_nmi;

	/* The management UART's ports (hv/exit.c answers them; hv/mgmt_uart.h). */
	if (hv.mgmt_uart.space == UART_SPACE_IO)
		for (port = 0; port < UART_NR_PORTS; port++)
			svm_intercept_io_port(s, (u16)(hv.mgmt_uart.base + port));
	svm_intercept_msr(s, MSR_EFER, true, true);
	svm_intercept_msr(s, MSR_VM_CR, true, true);
	svm_intercept_msr(s, MSR_VM_HSAVE_PA, true, true);
	/* INIT and start-up IPIs in x2APIC mode, and the APIC staying put (hv/lapic.h). */
	if (smp) {
		svm_intercept_msr(s, MSR_IA32_APIC_BASE, false, true);
		svm_intercept_msr(s, MSR_X2APIC_ICR, false, true);
	}

	c = &s->vmcb->control;
	c->intercept_misc3 = SVM_INTERCEPT_CPUID | SVM_INTERCEPT_HLT | SVM_INTERCEPT_INVLPGA |
			     SVM_INTERCEPT_IOIO_PROT | SVM_INTERCEPT_MSR_PROT |
			     SVM_INTERCEPT_SHUTDOWN;
	/* APM 15.5.1: VMRUN must be intercepted, or VMRUN fails. */
	c->intercept_misc4 = SVM_INTERCEPT_VMRUN | SVM_INTERCEPT_VMMCALL | SVM_INTERCEPT_VMLOAD |
			     SVM_INTERCEPT_VMSAVE | SVM_INTERCEPT_STGI | SVM_INTERCEPT_CLGI |
			     SVM_INTERCEPT_SKINIT;
	/*
	 * The management tick and the kicks between CPUs (hv/smp.h) arrive as
	 * NMIs; without either, NMIs go to the guest untouched.
	 */
	if (v->hooks.nmi_exits)
		c->intercept_misc3 |= SVM_INTERCEPT_NMI;
	c->iopm_base_pa = hv_pa(s->iopm);
	c->msrpm_base_pa = hv_pa(s->msrpm);
	c->guest_asid = SVM_GUEST_ASID;
	/*
	 * V_INTR_MASKING = 0 and no INTR intercept: physical interrupts go
	 * straight to the guest's IDT under the guest's RFLAGS.IF (APM 15.21
	 * "Interrupt and LINT Virtualization"). The host runs with GIF = 0 and
	 * never takes an interrupt itself.
	 */
	c->vintr = 0;
	s->tlb_flush_pending = true;
	return 0;
}

static void svm_host_enter(struct vcpu *v)
{
	x86_wrmsr(MSR_EFER, x86_rdmsr(MSR_EFER) | EFER_SVME);
	/*
	 * APM 15.17 "Global Interrupt Flag": keep GIF = 0 in the host, always
	 * (CLGI needs EFER.SVME, hence after the WRMSR; IF is already 0).
	 */
	svm_clgi();
	x86_wrmsr(MSR_VM_HSAVE_PA, hv_pa(to_svm(v)->host_save_area));
}

/*
 * NPT is long-mode paging; 1 GiB nested pages only where the CPU has 1 GiB
 * pages (qemu64 has not: TCG's nested walk follows the CPU's paging features).
 */
static void svm_tdp_format_init(struct spte_format *fmt)
{
	spte_format_init_npt(fmt, x86_has_1g_pages());
}

static bool svm_pml_supported(const char **why)
{
	*why = "AMD SVM has no page-modification logging";
	return false;
}

const struct x86_backend svm_backend = {
    .name = "svm",
    .check_cpu = svm_check_cpu,
    .vcpu_create = svm_vcpu_create,
    .capture_live_state = svm_capture_live_state,
    .host_enter = svm_host_enter,
    .tdp_format_init = svm_tdp_format_init,
    .pml_supported = svm_pml_supported,
    .nmi_tick = true,
    .smp = true,
};
