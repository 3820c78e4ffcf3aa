/* SPDX-License-Identifier: MIT */
/*
 * What each VM exit means, vendor-neutral. Every reason in enum
 * hv_exit_reason has a case; an exit nobody asked for is a guest-fatal,
 * reported event, never silently resumed.
 */
#include "arch/x86/apic.h"
#include "arch/x86/cpu.h"
#include "hv/control.h"
#include "hv/guest_mem.h"
#include "hv/hv.h"
#include "hv/lapic.h"
#include "hv/log.h"
#include "hv/mgmt_tick.h"
#include "hv/mgmt_uart.h"
#include "hv/smp.h"
#include "hv/vm.h"

#include <pt/assert.h>

/* CPUID bits the guest sees changed (AMD APM Vol. 3, Appendix E). */
#define CPUID_1_ECX_HYPERVISOR BIT_ULL(31)
#define CPUID_80000001_ECX_SVM BIT_ULL(2)
#define CPUID_1_ECX_VMX	       BIT_ULL(5)
#define CPUID_1_ECX_OSXSAVE BIT_ULL(27)
#define CPUID_7_ECX_OSPKE BIT_ULL(4)
#define X86_CR4_OSXSAVE_BIT BIT_ULL(18)
#define X86_CR4_PKE_BIT BIT_ULL(22)

/* Intel SDM Vol. 4, "IA32_FEATURE_CONTROL" and the IA32_VMX_* capability MSRs. */
#define MSR_IA32_FEATURE_CONTROL 0x0000003au
#define FEATURE_CONTROL_LOCKED	 BIT_ULL(0)
#define MSR_IA32_VMX_FIRST	 0x00000480u
#define MSR_IA32_VMX_LAST	 0x00000491u

#define HIDDEN_ACCESS_LOG_LIMIT 16
/*
 * Exit statistics go to the log at the first exit and then every this many
 * TSC cycles (about 10 s at the 2-3 GHz TSCs of these machines; the host has
 * no calibrated clock), so rates per reason can be read off the log.
 */
#define STATS_EVERY_TSC 25000000000ull

const char *hv_exit_reason_name(enum hv_exit_reason r)
{
	switch (r) {
	case HV_EXIT_CPUID:
		return "cpuid";
	case HV_EXIT_MSR_READ:
		return "rdmsr";
	case HV_EXIT_MSR_WRITE:
		return "wrmsr";
	case HV_EXIT_IO:
		return "io";
	case HV_EXIT_HLT:
		return "hlt";
	case HV_EXIT_VIRT_INSN:
		return "virt_insn";
	case HV_EXIT_TDP_FAULT:
		return "npf";
	case HV_EXIT_SHUTDOWN:
		return "shutdown";
	case HV_EXIT_ENTRY_FAILED:
		return "entry_failed";
	case HV_EXIT_UNKNOWN:
		return "unknown";
	case HV_EXIT_INTR:
		return "intr";
	case HV_EXIT_IRET:
		return "iret";
	case HV_EXIT_NMI:
		return "nmi";
	case HV_EXIT_INIT:
		return "init";
	case HV_EXIT_SIPI:
		return "sipi";
	case HV_NR_EXIT_REASONS:
		break;
	}
	return "?";
}

void hv_log_exit_stats(struct vcpu *v)
{
	const struct hv_exit_stats *s = &v->stats;

	hv_log("exits total=%lu cpuid=%lu rdmsr=%lu wrmsr=%lu io=%lu hlt=%lu "
	       "virt_insn=%lu npf=%lu hidden_access=%lu mgmt_port_io=%lu "
	       "injected_ud=%lu injected_gp=%lu intr=%lu iret=%lu nmi=%lu nmi_reflected=%lu "
	       "mgmt_ticks=%lu tick_echoes=%lu tsc=%lu",
	       s->total, s->by_reason[HV_EXIT_CPUID], s->by_reason[HV_EXIT_MSR_READ],
	       s->by_reason[HV_EXIT_MSR_WRITE], s->by_reason[HV_EXIT_IO], s->by_reason[HV_EXIT_HLT],
	       s->by_reason[HV_EXIT_VIRT_INSN], s->by_reason[HV_EXIT_TDP_FAULT], s->hidden_access,
	       s->mgmt_port_io, s->injected_ud, s->injected_gp, s->by_reason[HV_EXIT_INTR],
	       s->by_reason[HV_EXIT_IRET], s->by_reason[HV_EXIT_NMI], s->nmi_reflected,
	       hv_mgmt_tick_count(), hv_mgmt_tick_echoes(), x86_rdtsc());
}

static void inject_ud(struct vcpu *v)
{
	v->stats.injected_ud++;
	v->ops->inject_exception(v, X86_VEC_UD, false, 0);
}

static void inject_gp0(struct vcpu *v)
{
	v->stats.injected_gp++;
	v->ops->inject_exception(v, X86_VEC_GP, true, 0);
}

/*
 * Number of legacy and REX prefix bytes at the start of b (at most n - 1).
 * AMD APM Vol. 3, 1.2 "Instruction Prefixes".
 */
static unsigned int insn_prefixes(const struct vcpu *v, const u8 *b, unsigned int n)
{
	unsigned int i;

	for (i = 0; i + 1 < n; i++) {
		switch (b[i]) {
		case 0x66:
		case 0x67:
		case 0xf2:
		case 0xf3:
		case 0xf0:
		case 0x26:
		case 0x2e:
		case 0x36:
		case 0x3e:
		case 0x64:
		case 0x65:
			continue;
		}
		if (v->ctrl.cs_long && (b[i] & 0xf0) == 0x40)
			continue;
		break;
	}
	return i;
}

/*
 * Length of the instruction at RIP, which must be `opcode` (one or two
 * bytes, op2 < 0 for one) after prefixes. TCG has no NRIP save and no decode
 * assists (docs/hv.md "SVM under QEMU TCG"), so the bytes are read from
 * guest memory. Returns 0 if the bytes are not that instruction.
 */
static unsigned int insn_len(struct vcpu *v, u8 op1, int op2)
{
	unsigned int want = op2 < 0 ? 1 : 2, i;
	u8 b[15];

	if (hv_guest_read_linear(v, v->ctrl.cs_base + v->rip, b, want) == 0 && b[0] == op1 &&
	    (op2 < 0 || b[1] == op2))
		return want;
	if (hv_guest_read_linear(v, v->ctrl.cs_base + v->rip, b, sizeof(b)))
		return 0;
	i = insn_prefixes(v, b, sizeof(b));
	if (i + want <= sizeof(b) && b[i] == op1 && (op2 < 0 || b[i + 1] == op2))
		return i + want;
	return 0;
}

static void skip_insn(struct vcpu *v, u8 op1, int op2, const char *what)
{
	unsigned int len = insn_len(v, op1, op2);

	if (!len)
		hv_guest_fatal(v, "FATAL: cannot decode %s at rip=0x%lx (cs.base=0x%lx)", what,
			       v->rip, v->ctrl.cs_base);
	v->rip += len;
	if (!v->ctrl.cs_long)
		v->rip &= 0xffffffffull;
}

static void handle_cpuid(struct vcpu *v)
{
	u32 leaf = (u32)vcpu_gpr(v, HV_GPR_RAX), sub = (u32)vcpu_gpr(v, HV_GPR_RCX);
	struct x86_cpuid r;

	if (leaf >= HV_CPUID_BASE && leaf <= HV_CPUID_RANGE_END) {
		r = (struct x86_cpuid){0, 0, 0, 0};
		if (leaf == HV_CPUID_BASE) {
			r.eax = HV_CPUID_MAX;
			r.ebx = HV_CPUID_SIG_EBX;
			r.ecx = HV_CPUID_SIG_ECX;
			r.edx = HV_CPUID_SIG_EDX;
		} else if (leaf == HV_CPUID_INFO) {
			r.eax = HV_CPUID_VERSION;
			r.ebx = hv.smp_unvirtualized ? HV_CPUID_FLAG_SMP_UNVIRTUALIZED : 0;
		}
	} else {
		r = x86_cpuid(leaf, sub);
		/*
		 * CPUID ran in the host: the bits that mirror CR4 (SDM Vol. 2A
		 * CPUID: OSXSAVE = CR4.OSXSAVE, OSPKE = CR4.PKE) describe the
		 * host's CR4, not the guest's. Give the guest its own, else it
		 * runs XGETBV/RDPKRU with them clear and gets #UD.
		 */
		if (leaf == 1) {
			r.ecx = (r.ecx | CPUID_1_ECX_HYPERVISOR) & ~CPUID_1_ECX_VMX;
			r.ecx = (r.ecx & ~CPUID_1_ECX_OSXSAVE) |
				((v->ctrl.cr4 & X86_CR4_OSXSAVE_BIT) ? CPUID_1_ECX_OSXSAVE : 0);
		}
		if (leaf == 7 && sub == 0)
			r.ecx = (r.ecx & ~CPUID_7_ECX_OSPKE) |
				((v->ctrl.cr4 & X86_CR4_PKE_BIT) ? CPUID_7_ECX_OSPKE : 0);
		if (leaf == 0x80000001)
			r.ecx &= ~CPUID_80000001_ECX_SVM;
		if (leaf == 0x8000000a)
			r = (struct x86_cpuid){0, 0, 0, 0};
	}
	vcpu_set_gpr(v, HV_GPR_RAX, r.eax);
	vcpu_set_gpr(v, HV_GPR_RBX, r.ebx);
	vcpu_set_gpr(v, HV_GPR_RCX, r.ecx);
	vcpu_set_gpr(v, HV_GPR_RDX, r.edx);
	skip_insn(v, 0x0f, 0xa2, "CPUID");
}

/* EFER bits a guest may set (APM Vol. 2, 3.1.7 "Extended Feature Enable Register"). */
#define EFER_GUEST_ALLOWED                                                                         \
	(EFER_SCE | EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME | BIT_ULL(13) | BIT_ULL(14) |       \
	 BIT_ULL(15))

static void handle_msr(struct vcpu *v, bool write, u32 msr)
{
	u64 val = (vcpu_gpr(v, HV_GPR_RDX) << 32) | (u32)vcpu_gpr(v, HV_GPR_RAX);

	switch (msr) {
	case MSR_EFER:
		if (!write) {
			val = v->ctrl.efer; /* SVME is hidden */
			break;
		}
		if (val & ~EFER_GUEST_ALLOWED) {
			inject_gp0(v);
			return;
		}
		/* SVME: writing it is harmless (ignored); LMA: kept as the CPU has it. */
		val = (val & ~(EFER_SVME | EFER_LMA)) | (v->ctrl.efer & EFER_LMA);
		v->ops->set_efer(v, val);
		break;
	case MSR_VM_HSAVE_PA:
		if (write)
			v->guest_vm_hsave_pa = val;
		else
			val = v->guest_vm_hsave_pa;
		break;
	case MSR_IA32_APIC_BASE:
		/* Intercepted (writes only) while the APIC page is (hv/lapic.h). */
		if (write ? lapic_write_apic_base(v, val) : x86_rdmsr_safe(msr, &val)) {
			inject_gp0(v);
			return;
		}
		break;
	case MSR_X2APIC_ICR:
		/* Intercepted (writes only) while the APIC page is: INIT/SIPI are emulated. */
		if (write)
			lapic_write_x2apic_icr(v, val);
		else if (x86_rdmsr_safe(msr, &val)) {
			inject_gp0(v);
			return;
		}
		break;
	case MSR_VM_CR:
		/* SVM reads as disabled and locked by firmware; writes are ignored. */
		val = VM_CR_LOCK | VM_CR_SVMDIS;
		break;
	case MSR_IA32_FEATURE_CONTROL:
		/* Locked with VMXON disabled; writing a locked MSR raises #GP. */
		if (write) {
			inject_gp0(v);
			return;
		}
		val = FEATURE_CONTROL_LOCKED;
		break;
	case MSR_IA32_VMX_FIRST ... MSR_IA32_VMX_LAST:
		/* VMX is hidden: its capability MSRs do not exist. */
		inject_gp0(v);
		return;
	default:
		/* Outside the MSR permission map's ranges: forward, #GP stays #GP. */
		if (write ? x86_wrmsr_safe(msr, val) : x86_rdmsr_safe(msr, &val)) {
			inject_gp0(v);
			return;
		}
		break;
	}
	if (!write) {
		vcpu_set_gpr(v, HV_GPR_RAX, (u32)val);
		vcpu_set_gpr(v, HV_GPR_RDX, val >> 32);
	}
	skip_insn(v, 0x0f, write ? 0x30 : 0x32, write ? "WRMSR" : "RDMSR");
}

static void handle_io(struct vcpu *v, const struct hv_exit_io *io)
{
	unsigned int i, first;

	if (!mgmt_uart_io_reg(&hv.mgmt_uart, io->port, &first)) {
		/* Only the management UART is in the I/O permission map. */
		hv_guest_fatal(v, "FATAL: unexpected I/O exit port=0x%x rip=0x%lx", io->port,
			       v->rip);
	}
	v->stats.mgmt_port_io++;
	if (io->string) {
		/* INS/OUTS at the management port: refused (documented in docs/hv.md). */
		inject_gp0(v);
		return;
	}
	if (io->in) {
		u64 val = 0;

		for (i = 0; i < io->size; i++) {
			unsigned int reg = (first + i) % UART_NR_PORTS;

			val |= (u64)hv_control_port_read(reg) << (8 * i);
		}
		if (io->size == 4)
			vcpu_set_gpr(v, HV_GPR_RAX, val);
		else
			vcpu_set_gpr(v, HV_GPR_RAX,
				     (vcpu_gpr(v, HV_GPR_RAX) & ~((1ull << (8 * io->size)) - 1)) |
					 val);
	} else {
		u64 val = vcpu_gpr(v, HV_GPR_RAX);

		for (i = 0; i < io->size; i++)
			hv_control_port_write((first + i) % UART_NR_PORTS, (u8)(val >> (8 * i)));
	}
	v->rip = io->next_rip;
}

/*
 * The HPET page while the management tick owns one of its comparators: not
 * mapped, every load or store is decoded (hv/insn.c) and emulated
 * (hv/vhpet.h). What cannot be (another instruction, a size or alignment the
 * HPET does not take, an instruction fetch) gets #GP like hidden memory.
 */
static bool handle_hpet_access(struct vcpu *v, const struct hv_exit_tdp_fault *f)
{
	struct insn_store st;
	u8 b[15];
	unsigned int n;
	u64 val;

	if (f->fetch)
		return false;
	n = hv_guest_fetch_insn(v, b, sizeof(b));
	if (!n || insn_decode_mov(b, n, hv_guest_insn_mode(v), &st) || st.load == f->write)
		return false;
	val = st.has_imm ? st.imm : vcpu_gpr(v, (enum hv_gpr)st.reg);
	if (hv_mgmt_tick_hpet_access(v, f->gpa, f->write, st.size, &val))
		return false;
	if (st.load)
		vcpu_set_gpr(v, (enum hv_gpr)st.reg,
			     insn_load_result(vcpu_gpr(v, (enum hv_gpr)st.reg), val, st.size));
	hv_guest_skip_insn(v, st.len);
	return true;
}

static void handle_tdp_fault(struct vcpu *v, const struct hv_exit_tdp_fault *f)
{
	gpa_t hpet_page;

	/* The APIC page is read-only while INIT/SIPI are emulated (hv/lapic.h). */
	if (v->vm->lapic_intercept && (f->gpa & PAGE_MASK) == APIC_DEFAULT_BASE && f->write &&
	    !f->fetch) {
		lapic_handle_write_fault(v, f->gpa);
		return;
	}
	if (hv_mgmt_tick_hpet_page(&hpet_page) && (f->gpa & PAGE_MASK) == hpet_page &&
	    handle_hpet_access(v, f))
		return;
	if (hv_gpa_is_hidden(hv.vm, f->gpa)) {
		/*
		 * The hypervisor's memory is in no slot and absent from the
		 * nested page tables. The guest gets #GP(0) at the access: it
		 * learns nothing and changes nothing (documented in docs/hv.md).
		 */
		if (v->stats.hidden_access++ < HIDDEN_ACCESS_LOG_LIMIT)
			hv_log("hidden access gpa=0x%lx rip=0x%lx %s%s: #GP injected", f->gpa,
			       v->rip, f->write ? "write" : "read", f->fetch ? " fetch" : "");
		inject_gp0(v);
		return;
	}
	vm_handle_tdp_fault(v->vm, v, f);
}

/*
 * A poll of the management port reads the UART's line status register: one
 * port read, which under QEMU TCG goes through its I/O thread's lock and
 * costs 7,000-13,000 TSC cycles, about half of the host's work per exit
 * (measured with a CPUID loop: 18,000-24,000 cycles of host time per exit).
 * Exits the guest takes for its own reasons (a CPUID or nested-page-fault
 * storm) therefore poll at most every HV_POLL_INTERVAL_US; the exits taken
 * to give the host a turn (the tick, INTR, IRET, HLT) always poll, and so do
 * all exits while a reply is going out or a long command runs its steps. The
 * UART's 16-byte receive FIFO takes 1.4 ms to fill at 115200 baud, and the
 * protocol's credits never let a host send more than it holds; the 10 ms
 * tick alone suffices for them (docs/protocol.md). The port is one for all
 * vCPUs: so is the time of its last poll. Without a known TSC rate, every
 * exit polls.
 */
#define HV_POLL_INTERVAL_US 100

static u64 mgmt_last_poll_tsc;
/* Boot-CPU exits left at the fast poll interval after the port last wanted it. */
static u32 mgmt_poll_linger;

static bool mgmt_poll_due(enum hv_exit_reason r)
{
	u64 now = x86_rdtsc();

	if (r != HV_EXIT_NMI && r != HV_EXIT_INTR && r != HV_EXIT_IRET && r != HV_EXIT_HLT &&
	    !hv_control_wants_poll() && hv.bi->tsc_hz &&
	    now - mgmt_last_poll_tsc < hv.bi->tsc_hz / (1000000 / HV_POLL_INTERVAL_US))
		return false;
	mgmt_last_poll_tsc = now;
	return true;
}

void hv_handle_exit(struct vcpu *v, struct hv_exit *e)
{
	bool fast;

	v->stats.total++;
	v->stats.by_reason[e->reason]++;
	switch (e->reason) {
	case HV_EXIT_CPUID:
		handle_cpuid(v);
		break;
	case HV_EXIT_MSR_READ:
		handle_msr(v, false, e->msr);
		break;
	case HV_EXIT_MSR_WRITE:
		handle_msr(v, true, e->msr);
		break;
	case HV_EXIT_IO:
		handle_io(v, &e->io);
		break;
	case HV_EXIT_HLT:
		/*
		 * The guest sleeps in its own HLT until one of the HLT's wake
		 * events (an interrupt it takes, an NMI, INIT, SMI): the
		 * hypervisor never ends a halt the guest would not see end on
		 * the bare CPU, whatever it needs. Its own turns while the guest
		 * sleeps come from the management tick (SVM: the HPET NMI puts
		 * the guest back on its HLT; VMX: the preemption timer exits
		 * from the HLT activity state), faster while a reply is going
		 * out; without a tick the port waits for the guest's next
		 * interrupt, which exits first.
		 */
		v->ops->halt_in_guest(v);
		break;
	case HV_EXIT_INTR:
	case HV_EXIT_IRET:
		/* Exits taken only to poll the management port (below). */
		break;
	case HV_EXIT_NMI:
		/*
		 * The management tick (hv/mgmt_tick.c, boot CPU only): its only
		 * job is the poll below. A kick (hv/smp.h): its job is done by
		 * the exit itself. One NMI is claimed for one of them at most,
		 * the tick first. Any other NMI is the guest's.
		 */
		if (v->id == 0 && hv_mgmt_tick_claim_nmi())
			break;
		if (smp_claim_kick(v)) {
			v->stats.kicks++;
			break;
		}
		v->stats.nmi_reflected++;
		v->ops->inject_nmi(v);
		break;
	case HV_EXIT_INIT:
		/* A real INIT: the vCPU waits for a start-up IPI, as for an emulated one. */
		smp_vcpu_init_signal(v);
		break;
	case HV_EXIT_SIPI:
		smp_deliver_sipi(v, (u8)e->raw_info1);
		break;
	case HV_EXIT_VIRT_INSN:
		/* SVM is hidden: as on a CPU without it, these raise #UD. */
		inject_ud(v);
		break;
	case HV_EXIT_TDP_FAULT:
		handle_tdp_fault(v, &e->tdp);
		break;
	case HV_EXIT_SHUTDOWN:
		hv_guest_fatal(v,
			       "FATAL: guest shutdown (triple fault) rip=0x%lx cr0=0x%lx "
			       "cr3=0x%lx",
			       v->rip, v->ctrl.cr0, v->ctrl.cr3);
	case HV_EXIT_ENTRY_FAILED:
		hv_guest_fatal(v,
			       "FATAL: VMRUN failed (exit code 0x%lx) rip=0x%lx efer=0x%lx "
			       "cr0=0x%lx cr4=0x%lx",
			       e->raw_code, v->rip, v->ctrl.efer, v->ctrl.cr0, v->ctrl.cr4);
	case HV_EXIT_UNKNOWN:
	case HV_NR_EXIT_REASONS:
		hv_guest_fatal(v,
			       "FATAL: unknown exit %s code=0x%lx info1=0x%lx info2=0x%lx "
			       "rip=0x%lx",
			       e->name, e->raw_code, e->raw_info1, e->raw_info2, v->rip);
	}
	/* The management port and its bookkeeping belong to the boot CPU. */
	if (v->id != 0)
		return;
	if (x86_rdtsc() >= hv.next_stats_tsc) {
		hv.next_stats_tsc = x86_rdtsc() + STATS_EVERY_TSC;
		hv_log_exit_stats(v);
		hv_control_log_stats();
	}
	if (mgmt_poll_due(e->reason))
		hv_control_poll(v);
	/* While the management port sends, and a little after (hv/mgmt_poll.h). */
	fast = hv_mgmt_poll_fast_next(&mgmt_poll_linger, hv_control_wants_poll());
	if (v->ops->set_poll_exit_tsc)
		v->ops->set_poll_exit_tsc(v, fast ? hv.mgmt_poll.fast_tsc : hv.mgmt_poll.idle_tsc);
	hv_mgmt_tick_fast(fast);
}
