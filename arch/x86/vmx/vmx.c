/* SPDX-License-Identifier: MIT */
#include "arch/x86/vmx/vmx.h"

#include "arch/x86/apic.h"
#include "arch/x86/backend.h"
#include "arch/x86/cpu.h"
#include "arch/x86/host.h"
#include "arch/x86/vmx/vmx_asm.h"
#include "arch/x86/vmx/vmx_insn.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/page_alloc.h"

#include <pt/assert.h>

_Static_assert(VMX_ASM_FIELD_HOST_RSP == VMCS_HOST_RSP, "vmx_entry.S HOST_RSP field");
_Static_assert(VMX_ASM_ENTER_EXITED == VMX_ENTER_EXITED, "vmx_entry.S result");
_Static_assert(VMX_ASM_ENTER_FAIL_INVALID == VMX_ENTER_FAIL_INVALID, "vmx_entry.S result");
_Static_assert(VMX_ASM_ENTER_FAIL_VALID == VMX_ENTER_FAIL_VALID, "vmx_entry.S result");

/* PML-full exits logged (the count goes on in istats). */
#define VMX_PML_FULL_LOG_LIMIT 4

/* Host selectors (arch/x86/host.h); TR has no GDT entry, see vmx_write_host_state. */
#define VMX_HOST_TR_SEL 0x18

static struct vmx_caps caps;
/* One I/O and one MSR bitmap for all vCPUs: the policy is the VM's. */
static u8 *vmx_io_bitmap_a, *vmx_io_bitmap_b, *vmx_msr_bitmap;
/* Every vCPU's state, for the host's NMI handler (vmx_host_nmi). */
static struct vmx_vcpu *vmx_vcpus[HV_MAX_CPUS];
static u32 vmx_nr_vcpus;

_Static_assert(sizeof(struct vmx_vcpu) <= PAGE_SIZE, "vmx_vcpu fits its page");

static struct vmx_vcpu *to_vmx(struct vcpu *v)
{
	return v->arch;
}

/* ---- VMCS access: a failed VMREAD/VMWRITE is a hypervisor bug ---- */

static void vmcs_write(enum vmcs_field f, u64 val)
{
	u64 err = 0;

	if (likely(!__vmcs_write(f, val)))
		return;
	__vmcs_read(VMCS_INSN_ERROR, &err);
	hv_panic("VMWRITE of field 0x%04x = 0x%lx failed (VM-instruction error %lu)", f, val, err);
}

static u64 vmcs_read(enum vmcs_field f)
{
	u64 val, err = 0;

	if (likely(!__vmcs_read(f, &val)))
		return val;
	__vmcs_read(VMCS_INSN_ERROR, &err);
	hv_panic("VMREAD of field 0x%04x failed (VM-instruction error %lu)", f, err);
}

/* ---- capabilities ---- */

/*
 * SDM Vol. 3D A.3-A.5: the low 32 bits of a control MSR are the allowed-0
 * settings (a 1 there: the control must be 1), the high 32 bits the allowed-1
 * settings (a 0 there: the control must be 0). @want must all be allowed;
 * @optional are taken where allowed. Returns -1 naming what is missing.
 */
static int vmx_adjust_controls(const char *name, u32 msr, u32 want, u32 optional, u32 *out,
			       const char **why)
{
	static char why_buf[128];
	u64 v = x86_rdmsr(msr);
	u32 must1 = (u32)v, may1 = (u32)(v >> 32);

	if (want & ~may1) {
		hv_snprintf(why_buf, sizeof(why_buf),
			    "VMX %s controls 0x%x not supported (MSR 0x%x allows 0x%x)", name,
			    want & ~may1, msr, may1);
		*why = why_buf;
		return -1;
	}
	*out = want | (optional & may1) | must1;
	return 0;
}

static int vmx_read_caps(const char **why)
{
	bool true_ctls;
	u32 msr_pin, msr_proc, msr_exit, msr_entry;
	u64 proc2_msr;

	caps.basic = x86_rdmsr(MSR_IA32_VMX_BASIC);
	if (VMX_BASIC_REGION_SIZE(caps.basic) > PAGE_SIZE) {
		*why = "VMCS region larger than a page (IA32_VMX_BASIC)";
		return -1;
	}
	/* A.1: bit 55 says the TRUE MSRs exist and may clear default-1 controls. */
	true_ctls = caps.basic & VMX_BASIC_TRUE_CTLS;
	msr_pin = true_ctls ? MSR_IA32_VMX_TRUE_PINBASED_CTLS : MSR_IA32_VMX_PINBASED_CTLS;
	msr_proc = true_ctls ? MSR_IA32_VMX_TRUE_PROCBASED_CTLS : MSR_IA32_VMX_PROCBASED_CTLS;
	msr_exit = true_ctls ? MSR_IA32_VMX_TRUE_EXIT_CTLS : MSR_IA32_VMX_EXIT_CTLS;
	msr_entry = true_ctls ? MSR_IA32_VMX_TRUE_ENTRY_CTLS : MSR_IA32_VMX_ENTRY_CTLS;

	caps.cr0_fixed0 = x86_rdmsr(MSR_IA32_VMX_CR0_FIXED0);
	caps.cr0_fixed1 = x86_rdmsr(MSR_IA32_VMX_CR0_FIXED1);
	caps.cr4_fixed0 = x86_rdmsr(MSR_IA32_VMX_CR4_FIXED0);
	caps.cr4_fixed1 = x86_rdmsr(MSR_IA32_VMX_CR4_FIXED1);

	/*
	 * Physical interrupts and NMIs go straight to the guest's IDT (no
	 * external-interrupt or NMI exiting), as on SVM with V_INTR_MASKING 0:
	 * the host runs with RFLAGS.IF = 0 and never takes one itself.
	 */
	if (vmx_adjust_controls("pin-based", msr_pin, 0, 0, &caps.pin, why))
		return -1;
	/*
	 * With more than one vCPU the kicks between CPUs are NMIs (hv/smp.h):
	 * NMI exiting, and virtual NMIs with NMI-window exiting to give the
	 * guest the NMIs that are its own (vmx_smp_supported).
	 */
	caps.nmi_ctls = ((x86_rdmsr(msr_pin) >> 32) & (PIN_NMI_EXITING | PIN_VIRTUAL_NMIS)) ==
			    (PIN_NMI_EXITING | PIN_VIRTUAL_NMIS) &&
			((x86_rdmsr(msr_proc) >> 32) & PROC_NMI_WINDOW_EXITING);
	/* A.6 "Miscellaneous Data": bits 4:0 give the preemption timer's rate. */
	caps.preempt_timer = (x86_rdmsr(msr_pin) >> 32) & PIN_PREEMPTION_TIMER;
	caps.preempt_shift = x86_rdmsr(MSR_IA32_VMX_MISC) & 0x1f;
	caps.activity_hlt = x86_rdmsr(MSR_IA32_VMX_MISC) & VMX_MISC_ACTIVITY_HLT;
	if (!caps.activity_hlt) {
		*why = "no HLT activity state (IA32_VMX_MISC bit 6): a guest's HLT could not "
		       "sleep in the guest";
		return -1;
	}
	/*
	 * HLT exits so the management port is polled while the guest idles
	 * (hv/exit.c); I/O and MSR bitmaps select the intercepted ports/MSRs.
	 */
	if (vmx_adjust_controls("processor-based", msr_proc,
				PROC_HLT_EXITING | PROC_USE_IO_BITMAPS | PROC_USE_MSR_BITMAPS |
				    PROC_ACTIVATE_SECONDARY,
				0, &caps.proc, why))
		return -1;
	proc2_msr = x86_rdmsr(MSR_IA32_VMX_PROCBASED_CTLS2);
	caps.proc2_allowed1 = (u32)(proc2_msr >> 32);
	/*
	 * EPT is required: it is what hides the hypervisor's memory. RDTSCP,
	 * INVPCID and XSAVES raise #UD in the guest unless enabled here, while
	 * CPUID still offers them: enable them wherever the CPU allows.
	 */
	if (vmx_adjust_controls("secondary", MSR_IA32_VMX_PROCBASED_CTLS2, PROC2_ENABLE_EPT,
				PROC2_ENABLE_VPID | PROC2_UNRESTRICTED_GUEST | PROC2_ENABLE_RDTSCP |
				    PROC2_ENABLE_INVPCID | PROC2_ENABLE_XSAVES,
				&caps.proc2, why))
		return -1;
	/* The guest's EFER and PAT are switched by the CPU on every entry and exit. */
	if (vmx_adjust_controls("VM-exit", msr_exit,
				EXIT_HOST_ADDR_SPACE_SIZE | EXIT_SAVE_IA32_EFER |
				    EXIT_LOAD_IA32_EFER | EXIT_SAVE_IA32_PAT | EXIT_LOAD_IA32_PAT,
				EXIT_SAVE_DEBUG_CONTROLS, &caps.exit, why))
		return -1;
	if (vmx_adjust_controls("VM-entry", msr_entry, ENTRY_LOAD_IA32_EFER | ENTRY_LOAD_IA32_PAT,
				ENTRY_LOAD_DEBUG_CONTROLS, &caps.entry, why))
		return -1;
	/* The guest's long mode is a per-entry setting (vmx_sync_efer). */
	if (caps.entry & ENTRY_IA32E_MODE_GUEST) {
		*why = "VM-entry control 'IA-32e mode guest' is fixed to 1";
		return -1;
	}

	caps.ept_vpid = x86_rdmsr(MSR_IA32_VMX_EPT_VPID_CAP);
	if (!(caps.ept_vpid & EPT_CAP_WALK_4) || !(caps.ept_vpid & EPT_CAP_MEMTYPE_WB)) {
		*why = "EPT without 4-level walks or write-back paging structures";
		return -1;
	}
	if (!(caps.ept_vpid & EPT_CAP_INVEPT) ||
	    !(caps.ept_vpid & (EPT_CAP_INVEPT_SINGLE | EPT_CAP_INVEPT_ALL))) {
		*why = "CPU has EPT but no INVEPT";
		return -1;
	}
	caps.invept_single = caps.ept_vpid & EPT_CAP_INVEPT_SINGLE;
	caps.ept_ad = caps.ept_vpid & EPT_CAP_AD;
	caps.ept_1g = caps.ept_vpid & EPT_CAP_1G;
	/* VPID without INVVPID could never be flushed: leave it off then. */
	caps.vpid = (caps.proc2 & PROC2_ENABLE_VPID) && (caps.ept_vpid & VPID_CAP_INVVPID) &&
		    (caps.ept_vpid & (VPID_CAP_INVVPID_SINGLE | VPID_CAP_INVVPID_ALL));
	if (!caps.vpid)
		caps.proc2 &= ~PROC2_ENABLE_VPID;
	caps.invvpid_single = caps.ept_vpid & VPID_CAP_INVVPID_SINGLE;
	caps.unrestricted = caps.proc2 & PROC2_UNRESTRICTED_GUEST;
	/* PML logs through the EPT dirty flags: it needs A/D (SDM 29.3.6). */
	caps.pml = (caps.proc2_allowed1 & PROC2_ENABLE_PML) && caps.ept_ad;
	return 0;
}

static int vmx_check_cpu(const char **why)
{
	static bool logged; /* every CPU is checked (hv_ap_check); one line is enough */
	u64 fc;

	if (!(x86_cpuid(1, 0).ecx & CPUID_1_ECX_VMX)) {
		*why = "CPU has no VMX (CPUID.1:ECX bit 5)";
		return -1;
	}
	/*
	 * SDM Vol. 3C 24.7 "Enabling and Entering VMX Operation": VMXON #GPs
	 * unless IA32_FEATURE_CONTROL is locked with "VMXON outside SMX" set.
	 * Unlocked: vmx_host_enter sets and locks it. Locked without the bit:
	 * only the firmware setup can change it.
	 */
	fc = x86_rdmsr(MSR_IA32_FEATURE_CONTROL);
	if ((fc & FEATURE_CONTROL_LOCKED) && !(fc & FEATURE_CONTROL_VMXON_OUTSIDE_SMX)) {
		*why = "VMX disabled by firmware: IA32_FEATURE_CONTROL is locked with "
		       "'VMXON outside SMX' clear (enable VT-x in the firmware setup)";
		return -1;
	}
	if (x86_read_cr4() & X86_CR4_VMXE) {
		*why = "CR4.VMXE already set: another hypervisor owns this CPU";
		return -1;
	}
	if (vmx_read_caps(why))
		return -1;
	if (logged)
		return 0;
	logged = true;
	hv_log("vmx: controls pin 0x%x proc 0x%x proc2 0x%x exit 0x%x entry 0x%x; EPT A/D %s, "
	       "1G %s, VPID %s, unrestricted guest %s, PML %s, preemption timer %s",
	       caps.pin, caps.proc, caps.proc2, caps.exit, caps.entry, caps.ept_ad ? "yes" : "no",
	       caps.ept_1g ? "yes" : "no", caps.vpid ? "yes" : "no",
	       caps.unrestricted ? "yes" : "no", caps.pml ? "yes" : "no",
	       caps.preempt_timer ? "yes" : "no");
	return 0;
}

/*
 * More than one vCPU needs a real-mode start at the SIPI vector (unrestricted
 * guest) and NMIs that exit (the kicks), with the guest's own NMIs held back
 * until it can take them (virtual NMIs, NMI-window exiting).
 */
static bool vmx_smp_supported(const char **why)
{
	if (!caps.unrestricted) {
		*why = "no unrestricted guest: an AP started by a start-up IPI runs in real mode";
		return false;
	}
	if (!caps.nmi_ctls) {
		*why = "no NMI exiting with virtual NMIs and NMI-window exiting: kicks between "
		       "CPUs are NMIs";
		return false;
	}
	return true;
}

static bool vmx_pml_supported(const char **why)
{
	if (caps.pml)
		return true;
	if (!(caps.proc2_allowed1 & PROC2_ENABLE_PML))
		*why = "this CPU has no PML (IA32_VMX_PROCBASED_CTLS2 allowed-1 bit 17 clear)";
	else
		*why = "this CPU has PML but no EPT A/D flags, which PML needs";
	return false;
}

static void vmx_tdp_format_init(struct spte_format *fmt)
{
	spte_format_init_ept(fmt, caps.ept_ad, caps.ept_1g);
}

/* ---- intercept bitmaps ---- */

static void vmx_intercept_io_port(struct vmx_vcpu *x, u16 port)
{
	/* SDM 25.6.4 "I/O-Bitmap Addresses": A covers 0-7FFFh, B 8000h-FFFFh. */
	u8 *bm = port < 0x8000 ? x->io_bitmap_a : x->io_bitmap_b;
	u16 bit = port & 0x7fff;

	bm[bit / 8] |= (u8)(1u << (bit % 8));
}

/*
 * SDM 25.6.9 "MSR-Bitmap Address": four 1 KiB maps, read-low (0-1FFFh),
 * read-high (C0000000h-C0001FFFh), write-low, write-high. MSRs outside both
 * ranges always exit.
 */
static void vmx_intercept_msr(struct vmx_vcpu *x, u32 msr, bool read, bool write)
{
	u32 base, bit;

	if (msr <= 0x1fff) {
		base = 0;
		bit = msr;
	} else if (msr >= 0xc0000000u && msr <= 0xc0001fffu) {
		base = 1024;
		bit = msr - 0xc0000000u;
	} else {
		return;
	}
	if (read)
		x->msr_bitmap[base + bit / 8] |= (u8)(1u << (bit % 8));
	if (write)
		x->msr_bitmap[2048 + base + bit / 8] |= (u8)(1u << (bit % 8));
}

/* ---- guest state from the live CPU ---- */

struct vmx_seg_fields {
	enum vmcs_field sel, base, limit, ar;
};

static const struct vmx_seg_fields seg_es = {VMCS_GUEST_ES_SEL, VMCS_GUEST_ES_BASE,
					     VMCS_GUEST_ES_LIMIT, VMCS_GUEST_ES_AR};
static const struct vmx_seg_fields seg_cs = {VMCS_GUEST_CS_SEL, VMCS_GUEST_CS_BASE,
					     VMCS_GUEST_CS_LIMIT, VMCS_GUEST_CS_AR};
static const struct vmx_seg_fields seg_ss = {VMCS_GUEST_SS_SEL, VMCS_GUEST_SS_BASE,
					     VMCS_GUEST_SS_LIMIT, VMCS_GUEST_SS_AR};
static const struct vmx_seg_fields seg_ds = {VMCS_GUEST_DS_SEL, VMCS_GUEST_DS_BASE,
					     VMCS_GUEST_DS_LIMIT, VMCS_GUEST_DS_AR};
static const struct vmx_seg_fields seg_fs = {VMCS_GUEST_FS_SEL, VMCS_GUEST_FS_BASE,
					     VMCS_GUEST_FS_LIMIT, VMCS_GUEST_FS_AR};
static const struct vmx_seg_fields seg_gs = {VMCS_GUEST_GS_SEL, VMCS_GUEST_GS_BASE,
					     VMCS_GUEST_GS_LIMIT, VMCS_GUEST_GS_AR};
static const struct vmx_seg_fields seg_tr = {VMCS_GUEST_TR_SEL, VMCS_GUEST_TR_BASE,
					     VMCS_GUEST_TR_LIMIT, VMCS_GUEST_TR_AR};
static const struct vmx_seg_fields seg_ldtr = {VMCS_GUEST_LDTR_SEL, VMCS_GUEST_LDTR_BASE,
					       VMCS_GUEST_LDTR_LIMIT, VMCS_GUEST_LDTR_AR};

/*
 * Loads one segment register's hidden part from its GDT descriptor, as the
 * CPU did when the firmware loaded it. SDM 25.4.1 "Guest Register State":
 * access rights are descriptor bits 47:40 and 55:52 at bits 7:0 and 15:12,
 * bit 16 "unusable". A usable code/data segment is entered with its type's
 * accessed bit set (26.3.1.2 requires it; the CPU set it in the descriptor
 * when the selector was loaded anyway).
 */
static void vmx_seg_from_desc(const struct vmx_seg_fields *f, u16 sel, const struct x86_dtr *gdt,
			      bool system)
{
	const u8 *table = (const u8 *)(uintptr_t)gdt->base;
	u64 d, limit, base, ar;

	vmcs_write(f->sel, sel);
	if ((sel & ~7u) == 0 || (sel & 4) || (sel | 7u) > gdt->limit) {
		/* Null or LDT-relative selector: unusable. */
		vmcs_write(f->base, 0);
		vmcs_write(f->limit, 0);
		vmcs_write(f->ar, VMX_AR_UNUSABLE);
		return;
	}
	d = *(const u64 *)(table + (sel & ~7u));
	ar = ((d >> 40) & 0xff) | (((d >> 52) & 0xf) << 12);
	if (ar & VMX_AR_S)
		ar |= VMX_AR_TYPE_ACCESSED;
	limit = (d & 0xffff) | ((d >> 32) & 0xf0000);
	if (d & BIT_ULL(55))
		limit = (limit << 12) | 0xfff;
	base = ((d >> 16) & 0xffffff) | (((d >> 56) & 0xff) << 24);
	if (system)
		base |= (u64) * (const u32 *)(table + (sel & ~7u) + 8) << 32;
	vmcs_write(f->base, base);
	vmcs_write(f->limit, limit);
	vmcs_write(f->ar, ar);
}

static void vmx_sync_entry_ia32e(u64 efer)
{
	u64 entry = vmcs_read(VMCS_ENTRY_CONTROLS);

	/* SDM 26.3.1.1: "IA-32e mode guest" must equal the guest's EFER.LMA. */
	if (efer & EFER_LMA)
		entry |= ENTRY_IA32E_MODE_GUEST;
	else
		entry &= ~ENTRY_IA32E_MODE_GUEST;
	vmcs_write(VMCS_ENTRY_CONTROLS, entry);
}

static void vmx_capture_live_state(struct vcpu *v, const struct hv_takeover *t)
{
	struct vmx_vcpu *x = to_vmx(v);
	struct x86_dtr gdt = x86_sgdt(), idt = x86_sidt();
	u16 tr = x86_read_tr();
	u64 efer = x86_rdmsr(MSR_EFER);

	vmx_seg_from_desc(&seg_cs, x86_read_cs(), &gdt, false);
	vmx_seg_from_desc(&seg_ss, x86_read_ss(), &gdt, false);
	vmx_seg_from_desc(&seg_ds, x86_read_ds(), &gdt, false);
	vmx_seg_from_desc(&seg_es, x86_read_es(), &gdt, false);
	vmx_seg_from_desc(&seg_fs, x86_read_fs(), &gdt, false);
	vmx_seg_from_desc(&seg_gs, x86_read_gs(), &gdt, false);
	vmx_seg_from_desc(&seg_ldtr, x86_read_ldtr(), &gdt, true);
	if (tr) {
		vmx_seg_from_desc(&seg_tr, tr, &gdt, true);
	} else {
		/*
		 * The firmware never loaded a TR, but VM entry requires a
		 * usable busy TSS (26.3.1.2). Nothing uses it until the guest
		 * loads its own: an empty one at 0 is what a CPU holds after
		 * reset.
		 */
		vmcs_write(VMCS_GUEST_TR_SEL, 0);
		vmcs_write(VMCS_GUEST_TR_BASE, 0);
		vmcs_write(VMCS_GUEST_TR_LIMIT, 0xffff);
		vmcs_write(VMCS_GUEST_TR_AR, VMX_AR_TSS64_BUSY);
	}
	/* FS/GS bases are MSRs in 64-bit mode, not the descriptor's. */
	vmcs_write(VMCS_GUEST_FS_BASE, x86_rdmsr(MSR_FS_BASE));
	vmcs_write(VMCS_GUEST_GS_BASE, x86_rdmsr(MSR_GS_BASE));
	vmcs_write(VMCS_GUEST_GDTR_BASE, gdt.base);
	vmcs_write(VMCS_GUEST_GDTR_LIMIT, gdt.limit);
	vmcs_write(VMCS_GUEST_IDTR_BASE, idt.base);
	vmcs_write(VMCS_GUEST_IDTR_LIMIT, idt.limit);

	/* The CPU runs with the fixed bits; the guest reads its own values. */
	vmcs_write(VMCS_GUEST_CR0, x86_read_cr0());
	vmcs_write(VMCS_CR0_SHADOW, x->fw_cr0);
	vmcs_write(VMCS_GUEST_CR4, x86_read_cr4());
	vmcs_write(VMCS_CR4_SHADOW, x->fw_cr4);
	vmcs_write(VMCS_GUEST_CR3, x86_read_cr3());
	vmcs_write(VMCS_GUEST_DR7, x86_read_dr7());
	vmcs_write(VMCS_GUEST_IA32_DEBUGCTL, 0);
	vmcs_write(VMCS_GUEST_IA32_PAT, x86_rdmsr(MSR_IA32_PAT));
	vmcs_write(VMCS_GUEST_IA32_EFER, efer);
	vmx_sync_entry_ia32e(efer);
	vmcs_write(VMCS_GUEST_SYSENTER_CS, x86_rdmsr(MSR_IA32_SYSENTER_CS));
	vmcs_write(VMCS_GUEST_SYSENTER_ESP, x86_rdmsr(MSR_IA32_SYSENTER_ESP));
	vmcs_write(VMCS_GUEST_SYSENTER_EIP, x86_rdmsr(MSR_IA32_SYSENTER_EIP));
	vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
	vmcs_write(VMCS_GUEST_ACTIVITY_STATE, 0);
	vmcs_write(VMCS_GUEST_PENDING_DBG, 0);
	/* SDM 26.3.1.5: no shadow VMCS; the link pointer must be all ones. */
	vmcs_write(VMCS_LINK_POINTER, ~0ull);

	v->rip = t->guest_rip;
	v->rflags = t->guest_rflags;
	v->gprs.r[HV_GPR_RSP] = t->guest_rsp;
	v->gprs.r[HV_GPR_RAX] = 0;
}

/*
 * Host state, written once on the first entry: by then hv/ switched to the
 * host's own GDT, IDT and page tables (x86_host_enter), which are what a VM
 * exit must load.
 */
static void vmx_write_host_state(struct vmx_vcpu *x)
{
	struct x86_dtr gdt = x86_sgdt(), idt = x86_sidt();
	u64 cr4 = x86_read_cr4();

	/* XSETBV exits are emulated with XSETBV in the host (vmx_handle_xsetbv). */
	if (x86_cpuid(1, 0).ecx & CPUID_1_ECX_XSAVE)
		cr4 |= X86_CR4_OSXSAVE;
	vmx_write_cr4(cr4);
	vmcs_write(VMCS_HOST_CR0, x86_read_cr0());
	vmcs_write(VMCS_HOST_CR3, x86_read_cr3());
	vmcs_write(VMCS_HOST_CR4, cr4);
	vmcs_write(VMCS_HOST_CS_SEL, x86_read_cs() & ~7u);
	vmcs_write(VMCS_HOST_SS_SEL, x86_read_ss() & ~7u);
	vmcs_write(VMCS_HOST_DS_SEL, x86_read_ds() & ~7u);
	vmcs_write(VMCS_HOST_ES_SEL, x86_read_es() & ~7u);
	vmcs_write(VMCS_HOST_FS_SEL, 0);
	vmcs_write(VMCS_HOST_GS_SEL, 0);
	vmcs_write(VMCS_HOST_FS_BASE, 0);
	vmcs_write(VMCS_HOST_GS_BASE, 0);
	/*
	 * SDM 26.2.3 "Checks on Host Segment and Descriptor-Table Registers":
	 * the TR selector may not be 0. A VM exit loads TR from these fields
	 * alone (28.5.2) and never reads the GDT for it; the host takes no
	 * privilege change and uses no IST, so the TSS is never read either.
	 */
	vmcs_write(VMCS_HOST_TR_SEL, VMX_HOST_TR_SEL);
	vmcs_write(VMCS_HOST_TR_BASE, hv_pa(x->host_tss));
	vmcs_write(VMCS_HOST_GDTR_BASE, gdt.base);
	vmcs_write(VMCS_HOST_IDTR_BASE, idt.base);
	vmcs_write(VMCS_HOST_SYSENTER_CS, 0);
	vmcs_write(VMCS_HOST_SYSENTER_ESP, 0);
	vmcs_write(VMCS_HOST_SYSENTER_EIP, 0);
	vmcs_write(VMCS_HOST_IA32_EFER, x86_rdmsr(MSR_EFER));
	vmcs_write(VMCS_HOST_IA32_PAT, x86_rdmsr(MSR_IA32_PAT));
	vmcs_write(VMCS_HOST_RIP, (u64)(uintptr_t)vmx_vmexit);
	x->host_state_written = true;
}

static u32 vmx_proc2(const struct vmx_vcpu *x)
{
	u32 proc2 = caps.proc2;

	if (!x->eptp)
		proc2 &= ~(PROC2_ENABLE_EPT | PROC2_UNRESTRICTED_GUEST);
	if (x->pml_on)
		proc2 |= PROC2_ENABLE_PML;
	return proc2;
}

/* After set_tdp_root or set_pml: the secondary controls and the EPT pointer. */
static void vmx_update_secondary(struct vmx_vcpu *x)
{
	vmcs_write(VMCS_PROC_CONTROLS2, vmx_proc2(x));
	if (x->eptp)
		vmcs_write(VMCS_EPT_POINTER, x->eptp);
	x->eptp_dirty = false;
}

/* Once, right after VMPTRLD (vmx_host_enter). */
static void vmx_write_controls(struct vmx_vcpu *x)
{
	u32 proc2 = vmx_proc2(x);

	vmcs_write(VMCS_PIN_CONTROLS, caps.pin | (caps.preempt_timer ? PIN_PREEMPTION_TIMER : 0) |
					  (x->nmi_exits ? PIN_NMI_EXITING | PIN_VIRTUAL_NMIS : 0));
	vmcs_write(VMCS_PROC_CONTROLS, caps.proc);
	vmcs_write(VMCS_PROC_CONTROLS2, proc2);
	vmcs_write(VMCS_EXIT_CONTROLS, caps.exit);
	vmcs_write(VMCS_ENTRY_CONTROLS, caps.entry);
	vmcs_write(VMCS_EXCEPTION_BITMAP, 0);
	vmcs_write(VMCS_PF_ERROR_MASK, 0);
	vmcs_write(VMCS_PF_ERROR_MATCH, 0);
	vmcs_write(VMCS_CR3_TARGET_COUNT, 0);
	vmcs_write(VMCS_EXIT_MSR_STORE_COUNT, 0);
	vmcs_write(VMCS_EXIT_MSR_LOAD_COUNT, 0);
	vmcs_write(VMCS_ENTRY_MSR_LOAD_COUNT, 0);
	vmcs_write(VMCS_ENTRY_INTR_INFO, 0);
	vmcs_write(VMCS_TSC_OFFSET, 0);
	vmcs_write(VMCS_IO_BITMAP_A, hv_pa(x->io_bitmap_a));
	vmcs_write(VMCS_IO_BITMAP_B, hv_pa(x->io_bitmap_b));
	vmcs_write(VMCS_MSR_BITMAP, hv_pa(x->msr_bitmap));
	if (proc2 & PROC2_ENABLE_XSAVES)
		vmcs_write(VMCS_XSS_EXIT_BITMAP, 0);
	if (caps.vpid)
		vmcs_write(VMCS_VPID, VMX_GUEST_VPID);
	if (x->eptp)
		vmcs_write(VMCS_EPT_POINTER, x->eptp);
	if (x->pml_buf) {
		vmcs_write(VMCS_PML_ADDRESS, hv_pa(x->pml_buf));
		vmcs_write(VMCS_GUEST_PML_INDEX, VMX_PML_ENTRIES - 1);
	}
	/*
	 * CR0/CR4 bits the guest may not change behind our back: the fixed
	 * ones (A.7, A.8), with PE and PG free under unrestricted guest, and
	 * CR4.VMXE, which the guest must read as 0 (VMX is hidden).
	 */
	x->cr0_mask = (caps.cr0_fixed0 | ~caps.cr0_fixed1) & 0xffffffffull;
	if (proc2 & PROC2_UNRESTRICTED_GUEST)
		x->cr0_mask &= ~(X86_CR0_PE | X86_CR0_PG);
	x->cr4_mask = (caps.cr4_fixed0 | ~caps.cr4_fixed1) & 0xffffffffull;
	vmcs_write(VMCS_CR0_MASK, x->cr0_mask);
	vmcs_write(VMCS_CR4_MASK, x->cr4_mask);
	x->eptp_dirty = false;
}

static void vmx_host_enter(struct vcpu *v)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 fc = x86_rdmsr(MSR_IA32_FEATURE_CONTROL);
	u64 cr0;

	/* vmx_check_cpu refused the locked-disabled case. */
	if (!(fc & FEATURE_CONTROL_LOCKED))
		x86_wrmsr(MSR_IA32_FEATURE_CONTROL,
			  fc | FEATURE_CONTROL_LOCKED | FEATURE_CONTROL_VMXON_OUTSIDE_SMX);
	x->fw_cr0 = x86_read_cr0();
	x->fw_cr4 = x86_read_cr4();
	/* SDM 24.8 "Restrictions on VMX Operation": CR0 and CR4 fixed bits. */
	cr0 = (x->fw_cr0 | caps.cr0_fixed0) & caps.cr0_fixed1;
	if (cr0 != x->fw_cr0)
		vmx_write_cr0(cr0);
	vmx_write_cr4(((x->fw_cr4 | caps.cr4_fixed0) & caps.cr4_fixed1) | X86_CR4_VMXE);
	*(u32 *)x->vmxon_region = (u32)(caps.basic & VMX_BASIC_REVISION_MASK);
	*(u32 *)x->vmcs = (u32)(caps.basic & VMX_BASIC_REVISION_MASK);
	if (vmx_on(hv_pa(x->vmxon_region)))
		hv_panic("VMXON failed (cr0=0x%lx cr4=0x%lx feature_control=0x%lx)", x86_read_cr0(),
			 x86_read_cr4(), x86_rdmsr(MSR_IA32_FEATURE_CONTROL));
	if (vmx_vmclear(hv_pa(x->vmcs)) || vmx_vmptrld(hv_pa(x->vmcs)))
		hv_panic("VMCLEAR/VMPTRLD of the VMCS failed");
	vmx_write_controls(x);
	hv_log("vmx: VMXON done, VMCS 0x%lx loaded", hv_pa(x->vmcs));
}

/* ---- TLB ---- */

static void vmx_flush_now(struct vmx_vcpu *x)
{
	/*
	 * INVEPT drops guest-physical and combined mappings of this EPTP
	 * (SDM 29.4.3.1 "Operations that Invalidate Cached Mappings"); INVVPID
	 * the linear mappings tagged with the guest's VPID.
	 */
	if (x->eptp &&
	    vmx_invept(caps.invept_single ? INVEPT_SINGLE_CONTEXT : INVEPT_ALL_CONTEXT, x->eptp))
		hv_panic("INVEPT failed (eptp 0x%lx)", x->eptp);
	if (caps.vpid &&
	    vmx_invvpid(caps.invvpid_single ? INVVPID_SINGLE_CONTEXT : INVVPID_ALL_CONTEXT,
			VMX_GUEST_VPID, 0))
		hv_panic("INVVPID failed");
	x->tlb_flush_pending = false;
}

static void vmx_flush_tlb(struct vcpu *v)
{
	to_vmx(v)->tlb_flush_pending = true;
}

static void vmx_set_tdp_root(struct vcpu *v, hpa_t root)
{
	struct vmx_vcpu *x = to_vmx(v);

	/* SDM 25.6.11: WB paging structures, 4-level walk, A/D when we have it. */
	x->eptp =
	    root ? root | EPTP_MEMTYPE_WB | EPTP_WALK_LENGTH_4 | (caps.ept_ad ? EPTP_AD_ENABLE : 0)
		 : 0;
	x->eptp_dirty = true;
	x->tlb_flush_pending = true;
}

/* ---- events ---- */

static void vmx_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error)
{
	struct vmx_vcpu *x = to_vmx(v);
	u32 info = vector | (INTR_TYPE_HW_EXCEPTION << INTR_INFO_TYPE_SHIFT) | INTR_INFO_VALID;

	if (has_error)
		info |= INTR_INFO_DELIVER_CODE;
	/*
	 * RF in the pushed RFLAGS, as the CPU sets it for every fault (Intel
	 * SDM Vol. 3A, 2.3 "System Flags and Fields in the EFLAGS Register",
	 * RF; Vol. 3B, 18.3.1.1 "Instruction-Breakpoint Exception Condition"):
	 * event injection pushes the guest RFLAGS field as it is (SDM Vol. 3C,
	 * 27.6.1 "Vectored-Event Injection"), so the hypervisor sets it.
	 */
	if (x86_vector_is_fault(vector))
		v->rflags |= X86_EFLAGS_RF;
	if (x->inject_info & INTR_INFO_VALID) {
		/* As on SVM: the new exception comes first, as the CPU would raise it. */
		hv_log("inject: vector %u replaces pending event 0x%x", vector, x->inject_info);
	}
	x->inject_info = info;
	x->inject_error = error;
	x->inject_insn_len = 0;
}

static void vmx_set_efer(struct vcpu *v, u64 efer)
{
	vmcs_write(VMCS_GUEST_IA32_EFER, efer);
	vmx_sync_entry_ia32e(efer);
	v->ctrl.efer = efer;
}

/* ---- exits handled here ---- */

static u64 guest_cr0_view(struct vmx_vcpu *x)
{
	return (vmcs_read(VMCS_GUEST_CR0) & ~x->cr0_mask) |
	       (vmcs_read(VMCS_CR0_SHADOW) & x->cr0_mask);
}

static u64 guest_cr4_view(struct vmx_vcpu *x)
{
	return (vmcs_read(VMCS_GUEST_CR4) & ~x->cr4_mask) |
	       (vmcs_read(VMCS_CR4_SHADOW) & x->cr4_mask);
}

static u8 guest_cpl(void)
{
	return (u8)((vmcs_read(VMCS_GUEST_SS_AR) >> 5) & 3);
}

static void vmx_skip_insn(struct vcpu *v)
{
	v->rip += vmcs_read(VMCS_EXIT_INSN_LEN);
	if (!(vmcs_read(VMCS_GUEST_CS_AR) & BIT_ULL(13)))
		v->rip &= 0xffffffffull;
}

static void vmx_inject_gp0(struct vcpu *v)
{
	v->stats.injected_gp++;
	vmx_inject_exception(v, X86_VEC_GP, true, 0);
}

/* MOV to CR0, LMSW: the guest's new view of CR0 is @val (Intel SDM 2.5 "Control Registers"). */
static void vmx_set_cr0(struct vcpu *v, u64 val)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 old = guest_cr0_view(x), efer = vmcs_read(VMCS_GUEST_IA32_EFER);
	u64 real;

	if ((val >> 32) || ((val & X86_CR0_PG) && !(val & X86_CR0_PE)) ||
	    ((val & X86_CR0_NW) && !(val & X86_CR0_CD))) {
		vmx_inject_gp0(v);
		return;
	}
	if ((val & X86_CR0_PG) && !(old & X86_CR0_PG) && (efer & EFER_LME)) {
		if (!(guest_cr4_view(x) & X86_CR4_PAE)) {
			vmx_inject_gp0(v);
			return;
		}
		vmx_set_efer(v, efer | EFER_LMA);
	} else if (!(val & X86_CR0_PG) && (old & X86_CR0_PG) && (efer & EFER_LMA)) {
		vmx_set_efer(v, efer & ~EFER_LMA);
	}
	real = (val | (caps.cr0_fixed0 & x->cr0_mask)) & caps.cr0_fixed1;
	vmcs_write(VMCS_GUEST_CR0, real);
	vmcs_write(VMCS_CR0_SHADOW, val);
	if ((val ^ old) & X86_CR0_PG)
		x->tlb_flush_pending = true;
	vmx_skip_insn(v);
}

static void vmx_set_cr4(struct vcpu *v, u64 val)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 efer = vmcs_read(VMCS_GUEST_IA32_EFER);

	/* VMXE is reserved on a CPU without VMX, which is what the guest sees. */
	if ((val >> 32) || (val & X86_CR4_VMXE) || (val & ~caps.cr4_fixed1) ||
	    ((efer & EFER_LMA) && !(val & X86_CR4_PAE))) {
		vmx_inject_gp0(v);
		return;
	}
	vmcs_write(VMCS_GUEST_CR4, val | caps.cr4_fixed0);
	vmcs_write(VMCS_CR4_SHADOW, val);
	/* PGE, PAE, PSE, PCIDE, SMEP...: simplest correct answer is a flush. */
	x->tlb_flush_pending = true;
	vmx_skip_insn(v);
}

static void vmx_handle_cr_access(struct vcpu *v, u64 qual, struct hv_exit *e)
{
	struct vmx_vcpu *x = to_vmx(v);
	unsigned int cr = CR_QUAL_NUMBER(qual), gpr = CR_QUAL_GPR(qual);
	u64 val = v->gprs.r[gpr];

	x->istats.cr_access++;
	switch (CR_QUAL_TYPE(qual)) {
	case CR_ACCESS_MOV_TO_CR:
		if (cr == 0) {
			vmx_set_cr0(v, val);
			return;
		}
		if (cr == 4) {
			vmx_set_cr4(v, val);
			return;
		}
		if (cr == 3) {
			/* CR3-load exiting forced by the CPU: load it, flush as MOV CR3 does. */
			vmcs_write(VMCS_GUEST_CR3, val & ~BIT_ULL(63));
			x->tlb_flush_pending = true;
			vmx_skip_insn(v);
			return;
		}
		break;
	case CR_ACCESS_MOV_FROM_CR:
		if (cr == 3) {
			v->gprs.r[gpr] = vmcs_read(VMCS_GUEST_CR3);
			vmx_skip_insn(v);
			return;
		}
		break;
	case CR_ACCESS_CLTS:
		vmcs_write(VMCS_GUEST_CR0, vmcs_read(VMCS_GUEST_CR0) & ~X86_CR0_TS);
		vmcs_write(VMCS_CR0_SHADOW, vmcs_read(VMCS_CR0_SHADOW) & ~X86_CR0_TS);
		vmx_skip_insn(v);
		return;
	case CR_ACCESS_LMSW: {
		/* LMSW loads PE, MP, EM, TS and cannot clear PE. */
		u64 old = guest_cr0_view(x), data = CR_QUAL_LMSW_DATA(qual) & 0xf;

		vmx_set_cr0(v, (old & ~0xeull) | data);
		return;
	}
	}
	/* An access we never asked to intercept. */
	e->reason = HV_EXIT_UNKNOWN;
}

/*
 * XSETBV always exits (SDM 26.1.2). Checks of the SDM's XSETBV "Operation"
 * section, then the host executes it: the host never uses the extended
 * state, so the guest's XCR0 simply stays live.
 */
static void vmx_handle_xsetbv(struct vcpu *v)
{
	struct vmx_vcpu *x = to_vmx(v);
	u32 index = (u32)v->gprs.r[HV_GPR_RCX];
	u64 val = ((v->gprs.r[HV_GPR_RDX] & 0xffffffffull) << 32) |
		  (v->gprs.r[HV_GPR_RAX] & 0xffffffffull);
	struct x86_cpuid d = x86_cpuid(0xd, 0);
	u64 supported = ((u64)d.edx << 32) | d.eax;
	u64 avx512 = GENMASK_ULL(7, 5);

	x->istats.xsetbv++;
	if (guest_cpl() != 0 || index != 0 || !(val & 1) || (val & ~supported) ||
	    ((val & BIT_ULL(2)) && !(val & BIT_ULL(1))) ||
	    ((val & avx512) && ((val & avx512) != avx512 || !(val & BIT_ULL(2)))) ||
	    (!!(val & BIT_ULL(3)) != !!(val & BIT_ULL(4)))) {
		vmx_inject_gp0(v);
		return;
	}
	vmx_xsetbv(0, val);
	vmx_skip_insn(v);
}

/* ---- PML ---- */

static void vmx_pml_flush(struct vcpu *v)
{
	struct vmx_vcpu *x = to_vmx(v);
	u16 index;

	if (!x->pml_buf)
		return;
	index = (u16)vmcs_read(VMCS_GUEST_PML_INDEX);
	/* 511: nothing logged since the last drain. */
	if (index == VMX_PML_ENTRIES - 1)
		return;
	v->hooks.pml_drain(v->hooks.ctx, v, x->pml_buf, &index);
	vmcs_write(VMCS_GUEST_PML_INDEX, index);
}

static int vmx_set_pml(struct vcpu *v, bool on)
{
	struct vmx_vcpu *x = to_vmx(v);

	if (!caps.pml || !x->pml_buf || !x->eptp)
		return -1;
	if (on == x->pml_on)
		return 0;
	/* Turning it off: what is logged so far still counts. */
	vmx_pml_flush(v);
	if (on)
		vmcs_write(VMCS_GUEST_PML_INDEX, VMX_PML_ENTRIES - 1);
	x->pml_on = on;
	x->eptp_dirty = true;
	hv_log("vmx: PML %s", on ? "on" : "off");
	return 0;
}

/* ---- NMIs (more than one vCPU: NMI exiting, virtual NMIs) ---- */

/*
 * The host IDT took an NMI (arch/x86/host.c), in VMX root operation: a kick
 * or a guest NMI that arrived while this CPU was out of the guest. The
 * vCPU of this CPU is the one whose VMCS is current here (VMPTRST: every
 * vCPU keeps its VMCS current on its own CPU). vmx_run hands it to hv/ as
 * an NMI exit before its next entry. NMI context: one atomic add, no lock.
 */
static void vmx_host_nmi(void)
{
	hpa_t cur = vmx_vmptrst();
	u32 i;

	for (i = 0; i < vmx_nr_vcpus; i++)
		if (vmx_vcpus[i] && hv_pa(vmx_vcpus[i]->vmcs) == cur) {
			__atomic_add_fetch(&vmx_vcpus[i]->host_nmis, 1, __ATOMIC_SEQ_CST);
			return;
		}
}

static void vmx_set_nmi_window(bool on)
{
	vmcs_write(VMCS_PROC_CONTROLS, caps.proc | (on ? PROC_NMI_WINDOW_EXITING : 0));
}

/*
 * The guest's NMI (hv/ reflected one that was not a kick) is injected when
 * the guest can take it: no event being injected, no virtual-NMI blocking
 * (its handler has not returned yet), no STI or MOV SS shadow (SDM Vol. 3C,
 * 27.3.1.5 "Checks on Guest Non-Register State" for NMI injection). Else
 * NMI-window exiting says when (SDM 26.7.6 "NMI-Window Exiting"). An NMI
 * wakes a HLT: RIP is already past it (vmx_halt_in_guest), so the handler
 * returns after the HLT, as on the bare CPU.
 */
static void vmx_nmi_before_entry(struct vmx_vcpu *x)
{
	u64 intr = vmcs_read(VMCS_GUEST_INTERRUPTIBILITY);

	if ((x->inject_info & INTR_INFO_VALID) ||
	    (intr & (VMX_INTR_BLOCK_STI | VMX_INTR_BLOCK_MOV_SS | VMX_INTR_BLOCK_NMI))) {
		vmx_set_nmi_window(true);
		return;
	}
	x->inject_info = X86_VEC_NMI | (INTR_TYPE_NMI << INTR_INFO_TYPE_SHIFT) | INTR_INFO_VALID;
	x->inject_error = 0;
	x->inject_insn_len = 0;
	x->nmi_pending = false;
	if (vmcs_read(VMCS_GUEST_ACTIVITY_STATE) == VMX_ACTIVITY_HLT)
		vmcs_write(VMCS_GUEST_ACTIVITY_STATE, VMX_ACTIVITY_ACTIVE);
}

static void vmx_inject_nmi(struct vcpu *v)
{
	/* NMIs latch: one pending at most. */
	to_vmx(v)->nmi_pending = true;
}

/*
 * An NMI exit from a guest asleep in HLT: a kick is no wake event of the
 * guest's, so it sleeps on. (The SDM records the HLT activity state for an
 * exit from it; an emulator that records "active" would wake the guest
 * here: put the state back when no instruction ran since the entry.)
 */
static void vmx_nmi_keep_halt(struct vcpu *v, struct vmx_vcpu *x)
{
	if (x->entered_hlt && v->rip == x->entry_rip && !(x->inject_info & INTR_INFO_VALID))
		vmcs_write(VMCS_GUEST_ACTIVITY_STATE, VMX_ACTIVITY_HLT);
}

/* ---- exit decoding ---- */

static const char *vmx_exit_name(u32 basic)
{
	switch (basic) {
	case VMX_EXIT_EXCEPTION_NMI:
		return "EXCEPTION_NMI";
	case VMX_EXIT_EXTERNAL_INTR:
		return "EXTERNAL_INTR";
	case VMX_EXIT_TRIPLE_FAULT:
		return "TRIPLE_FAULT";
	case VMX_EXIT_INIT:
		return "INIT";
	case VMX_EXIT_SIPI:
		return "SIPI";
	case VMX_EXIT_TASK_SWITCH:
		return "TASK_SWITCH";
	case VMX_EXIT_CPUID:
		return "CPUID";
	case VMX_EXIT_GETSEC:
		return "GETSEC";
	case VMX_EXIT_HLT:
		return "HLT";
	case VMX_EXIT_INVD:
		return "INVD";
	case VMX_EXIT_VMCALL:
		return "VMCALL";
	case VMX_EXIT_VMCLEAR:
		return "VMCLEAR";
	case VMX_EXIT_VMLAUNCH:
		return "VMLAUNCH";
	case VMX_EXIT_VMPTRLD:
		return "VMPTRLD";
	case VMX_EXIT_VMPTRST:
		return "VMPTRST";
	case VMX_EXIT_VMREAD:
		return "VMREAD";
	case VMX_EXIT_VMRESUME:
		return "VMRESUME";
	case VMX_EXIT_VMWRITE:
		return "VMWRITE";
	case VMX_EXIT_VMXOFF:
		return "VMXOFF";
	case VMX_EXIT_VMXON:
		return "VMXON";
	case VMX_EXIT_CR_ACCESS:
		return "CR_ACCESS";
	case VMX_EXIT_IO:
		return "IO";
	case VMX_EXIT_RDMSR:
		return "RDMSR";
	case VMX_EXIT_WRMSR:
		return "WRMSR";
	case VMX_EXIT_INVALID_GUEST_STATE:
		return "ENTRY_INVALID_GUEST_STATE";
	case VMX_EXIT_MSR_LOAD_FAIL:
		return "ENTRY_MSR_LOAD";
	case VMX_EXIT_MCE_DURING_ENTRY:
		return "ENTRY_MACHINE_CHECK";
	case VMX_EXIT_EPT_VIOLATION:
		return "EPT_VIOLATION";
	case VMX_EXIT_EPT_MISCONFIG:
		return "EPT_MISCONFIG";
	case VMX_EXIT_INVEPT:
		return "INVEPT";
	case VMX_EXIT_INVVPID:
		return "INVVPID";
	case VMX_EXIT_VMFUNC:
		return "VMFUNC";
	case VMX_EXIT_XSETBV:
		return "XSETBV";
	case VMX_EXIT_PREEMPTION_TIMER:
		return "PREEMPTION_TIMER";
	case VMX_EXIT_PML_FULL:
		return "PML_FULL";
	}
	return "unexpected";
}

static void vmx_sync_ctrl(struct vcpu *v)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 cs_ar = vmcs_read(VMCS_GUEST_CS_AR);

	v->ctrl.cr0 = guest_cr0_view(x);
	v->ctrl.cr2 = x86_read_cr2();
	v->ctrl.cr3 = vmcs_read(VMCS_GUEST_CR3);
	v->ctrl.cr4 = guest_cr4_view(x);
	v->ctrl.efer = vmcs_read(VMCS_GUEST_IA32_EFER);
	v->ctrl.cs_base = vmcs_read(VMCS_GUEST_CS_BASE);
	v->ctrl.cs_sel = (u16)vmcs_read(VMCS_GUEST_CS_SEL);
	v->ctrl.cs_long = cs_ar & BIT_ULL(13);
	v->ctrl.cs_db = cs_ar & BIT_ULL(14);
	v->ctrl.cpl = guest_cpl();
}

static void vmx_seg_out(struct hv_guest_seg *out, const struct vmx_seg_fields *f)
{
	u64 ar = vmcs_read(f->ar);

	out->sel = (u16)vmcs_read(f->sel);
	out->base = vmcs_read(f->base);
	out->limit = (u32)vmcs_read(f->limit);
	/* Access rights: descriptor bits 47:40 in 7:0, 55:52 in 15:12 (SDM Vol. 3C, 24.4.1). */
	out->attr = ar & VMX_AR_UNUSABLE ? 0 : (u32)(((ar & 0xff) << 8) | ((ar & 0xf000) << 8));
}

static void vmx_get_sregs(struct vcpu *v, struct hv_guest_sregs *out)
{
	(void)v;
	vmx_seg_out(&out->cs, &seg_cs);
	vmx_seg_out(&out->ss, &seg_ss);
	vmx_seg_out(&out->ds, &seg_ds);
	vmx_seg_out(&out->es, &seg_es);
	vmx_seg_out(&out->fs, &seg_fs);
	vmx_seg_out(&out->gs, &seg_gs);
	vmx_seg_out(&out->ldtr, &seg_ldtr);
	vmx_seg_out(&out->tr, &seg_tr);
	out->gdt_base = vmcs_read(VMCS_GUEST_GDTR_BASE);
	out->gdt_limit = (u32)vmcs_read(VMCS_GUEST_GDTR_LIMIT);
	out->idt_base = vmcs_read(VMCS_GUEST_IDTR_BASE);
	out->idt_limit = (u32)vmcs_read(VMCS_GUEST_IDTR_LIMIT);
	/* Not in the VMCS and never touched by the host: still the guest's. */
	out->kernel_gs_base = x86_rdmsr(MSR_KERNEL_GS_BASE);
}

/*
 * Fills *e for hv/, or handles the exit here and returns false (run again).
 * Every basic exit reason we can get has a case; anything else is reported
 * as HV_EXIT_UNKNOWN, which hv/ turns into a guest-fatal report.
 */
static bool vmx_decode_exit(struct vcpu *v, u64 reason, struct hv_exit *e)
{
	u32 basic = (u32)(reason & VMX_EXIT_REASON_BASIC_MASK);
	u64 qual = vmcs_read(VMCS_EXIT_QUALIFICATION);
	struct vmx_vcpu *x = to_vmx(v);

	e->raw_code = reason;
	e->raw_info1 = qual;
	e->raw_info2 = 0;
	e->name = vmx_exit_name(basic);
	if (reason & VMX_EXIT_REASON_ENTRY_FAILED) {
		e->reason = HV_EXIT_ENTRY_FAILED;
		return true;
	}
	switch (basic) {
	case VMX_EXIT_EXCEPTION_NMI: {
		u64 info = vmcs_read(VMCS_EXIT_INTR_INFO);

		/* The exception bitmap is 0: only an NMI (NMI exiting) comes here. */
		e->raw_info2 = info;
		if (!x->nmi_exits || !(info & INTR_INFO_VALID) ||
		    ((info & INTR_INFO_TYPE_MASK) >> INTR_INFO_TYPE_SHIFT) != INTR_TYPE_NMI) {
			e->reason = HV_EXIT_UNKNOWN;
			return true;
		}
		/*
		 * The exit consumed the NMI (it is not delivered, SDM Vol. 3C
		 * 26.2 "Other Causes of VM Exits", NMIs) and left NMIs blocked
		 * in the host until an IRET (28.1): unblock them, so the next
		 * one reaches this CPU (in the guest: an exit; in the host:
		 * vmx_host_nmi) instead of waiting for an IRET that may never
		 * come.
		 */
		x86_unblock_nmis();
		vmx_nmi_keep_halt(v, x);
		e->reason = HV_EXIT_NMI;
		return true;
	}
	case VMX_EXIT_NMI_WINDOW:
		/* The guest can take its NMI now: vmx_run injects it. */
		x->istats.nmi_window++;
		vmx_set_nmi_window(false);
		return false;
	case VMX_EXIT_INIT:
		/*
		 * A real INIT (held while in VMX root operation, an exit in the
		 * guest: SDM Vol. 3C 26.2): hv/ parks the vCPU in wait-for-SIPI
		 * as for an emulated one. The guest's INITs never reach the
		 * hardware (hv/lapic.c), so this is someone else's.
		 */
		e->reason = HV_EXIT_INIT;
		return true;
	case VMX_EXIT_SIPI:
		/* Only from the wait-for-SIPI activity state, which is never entered. */
		e->reason = HV_EXIT_SIPI;
		return true;
	case VMX_EXIT_CPUID:
		e->reason = HV_EXIT_CPUID;
		return true;
	case VMX_EXIT_RDMSR:
	case VMX_EXIT_WRMSR:
		e->reason = basic == VMX_EXIT_WRMSR ? HV_EXIT_MSR_WRITE : HV_EXIT_MSR_READ;
		e->msr = (u32)v->gprs.r[HV_GPR_RCX];
		return true;
	case VMX_EXIT_IO:
		e->reason = HV_EXIT_IO;
		e->io.port = (u16)(qual >> IO_QUAL_PORT_SHIFT);
		e->io.size = (u8)((qual & IO_QUAL_SIZE_MASK) + 1);
		e->io.in = qual & IO_QUAL_IN;
		e->io.string = qual & IO_QUAL_STRING;
		e->io.rep = qual & IO_QUAL_REP;
		e->io.next_rip = v->rip + vmcs_read(VMCS_EXIT_INSN_LEN);
		return true;
	case VMX_EXIT_HLT:
		e->reason = HV_EXIT_HLT;
		return true;
	case VMX_EXIT_VMCALL:
	case VMX_EXIT_VMCLEAR:
	case VMX_EXIT_VMLAUNCH:
	case VMX_EXIT_VMPTRLD:
	case VMX_EXIT_VMPTRST:
	case VMX_EXIT_VMREAD:
	case VMX_EXIT_VMRESUME:
	case VMX_EXIT_VMWRITE:
	case VMX_EXIT_VMXOFF:
	case VMX_EXIT_VMXON:
	case VMX_EXIT_INVEPT:
	case VMX_EXIT_INVVPID:
	case VMX_EXIT_VMFUNC:
	case VMX_EXIT_GETSEC:
		/* VMX (and SMX) are hidden: #UD, as on a CPU without them. */
		e->reason = HV_EXIT_VIRT_INSN;
		return true;
	case VMX_EXIT_EPT_VIOLATION:
		/*
		 * An IRET that faulted had already ended virtual-NMI blocking;
		 * it runs again, so the blocking comes back (SDM Vol. 3C,
		 * 28.2.3 "Information About NMI Unblocking Due to IRET").
		 */
		if (x->nmi_exits && (qual & EPT_QUAL_NMI_UNBLOCKING) &&
		    !(vmcs_read(VMCS_IDT_VECTORING_INFO) & INTR_INFO_VALID))
			vmcs_write(VMCS_GUEST_INTERRUPTIBILITY,
				   vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) | VMX_INTR_BLOCK_NMI);
		e->reason = HV_EXIT_TDP_FAULT;
		e->raw_info2 = vmcs_read(VMCS_GUEST_PHYSICAL_ADDRESS);
		e->tdp.gpa = e->raw_info2;
		e->tdp.present = qual & EPT_QUAL_PERM_MASK;
		e->tdp.write = qual & EPT_QUAL_WRITE;
		e->tdp.fetch = qual & EPT_QUAL_FETCH;
		e->tdp.user = guest_cpl() == 3;
		return true;
	case VMX_EXIT_TRIPLE_FAULT:
		e->reason = HV_EXIT_SHUTDOWN;
		return true;
	case VMX_EXIT_PREEMPTION_TIMER:
		/* Taken only so hv/ polls the management port. */
		x->istats.poll_timer++;
		e->reason = HV_EXIT_INTR;
		return true;
	case VMX_EXIT_CR_ACCESS:
		e->reason = HV_NR_EXIT_REASONS;
		vmx_handle_cr_access(v, qual, e);
		return e->reason == HV_EXIT_UNKNOWN;
	case VMX_EXIT_XSETBV:
		vmx_handle_xsetbv(v);
		return false;
	case VMX_EXIT_INVD:
		/* INVD would drop dirty cache lines of memory that is not the guest's. */
		x->istats.invd++;
		__asm__ volatile("wbinvd" ::: "memory");
		vmx_skip_insn(v);
		return false;
	case VMX_EXIT_PML_FULL:
		/*
		 * SDM 29.3.6: the write that found the log full was not done
		 * (nor its D bit set); it runs again after the drain.
		 */
		v->stats.pml_full++;
		if (x->istats.pml_full++ < VMX_PML_FULL_LOG_LIMIT)
			hv_log("vmx: PML full exit at gpa 0x%lx: buffer drained",
			       vmcs_read(VMCS_GUEST_PHYSICAL_ADDRESS));
		vmx_pml_flush(v);
		return false;
	case VMX_EXIT_EPT_MISCONFIG:
		/* Our own tables are wrong: say where, then hv/ stops the guest. */
		e->raw_info2 = vmcs_read(VMCS_GUEST_PHYSICAL_ADDRESS);
		hv_log("vmx: EPT misconfiguration at gpa 0x%lx (eptp 0x%lx)", e->raw_info2,
		       x->eptp);
		e->reason = HV_EXIT_UNKNOWN;
		return true;
	}
	e->reason = HV_EXIT_UNKNOWN;
	return true;
}

/* SDM 31.4 "VM Instruction Error Numbers". */
static const char *vmx_insn_error_name(u64 err)
{
	switch (err) {
	case 2:
		return "VMCLEAR with invalid physical address";
	case 4:
		return "VMLAUNCH with non-clear VMCS";
	case 5:
		return "VMRESUME with non-launched VMCS";
	case VMX_INSN_ERR_ENTRY_INVALID_CONTROL:
		return "VM entry with invalid control field(s)";
	case VMX_INSN_ERR_ENTRY_INVALID_HOST:
		return "VM entry with invalid host-state field(s)";
	case 9:
		return "VMPTRLD with invalid physical address";
	case 12:
		return "VMREAD/VMWRITE from/to unsupported VMCS component";
	case 26:
		return "VM entry with events blocked by MOV SS";
	}
	return "see SDM 31.4";
}

/*
 * The VM entry failed: name the first field that breaks a check we can
 * evaluate in software (SDM 26.2 and 26.3), so the report says which
 * field, not only which class of check.
 */
static void vmx_report_entry_failure(struct vcpu *v, int r, u64 reason)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 cr0 = vmcs_read(VMCS_GUEST_CR0), cr4 = vmcs_read(VMCS_GUEST_CR4);
	u64 efer = vmcs_read(VMCS_GUEST_IA32_EFER), entry = vmcs_read(VMCS_ENTRY_CONTROLS);
	u64 cr0_fixed0 = caps.cr0_fixed0;
	const char *field = "none found by the software checks";

	if (vmcs_read(VMCS_PROC_CONTROLS2) & PROC2_UNRESTRICTED_GUEST)
		cr0_fixed0 &= ~(X86_CR0_PE | X86_CR0_PG);
	if ((cr0 & cr0_fixed0) != cr0_fixed0 || (cr0 & ~caps.cr0_fixed1))
		field = "GUEST_CR0 (fixed bits)";
	else if ((cr4 & caps.cr4_fixed0) != caps.cr4_fixed0 || (cr4 & ~caps.cr4_fixed1))
		field = "GUEST_CR4 (fixed bits)";
	else if (!!(entry & ENTRY_IA32E_MODE_GUEST) != !!(efer & EFER_LMA))
		field = "GUEST_IA32_EFER.LMA vs entry control IA-32e mode guest";
	else if (vmcs_read(VMCS_GUEST_TR_AR) & VMX_AR_UNUSABLE)
		field = "GUEST_TR_AR (unusable)";
	else if ((vmcs_read(VMCS_GUEST_CS_AR) & VMX_AR_UNUSABLE))
		field = "GUEST_CS_AR (unusable)";
	else if (!(vmcs_read(VMCS_GUEST_RFLAGS) & X86_EFLAGS_FIXED))
		field = "GUEST_RFLAGS (bit 1)";
	else if (vmcs_read(VMCS_LINK_POINTER) != ~0ull)
		field = "VMCS_LINK_POINTER";
	else if (!x->host_state_written)
		field = "host state (never written)";

	if (r == VMX_ENTER_FAIL_INVALID) {
		hv_log("vmx: VM entry failed: VMfailInvalid (no current VMCS)");
	} else if (r == VMX_ENTER_FAIL_VALID) {
		u64 err = vmcs_read(VMCS_INSN_ERROR);

		hv_log("vmx: VM entry failed: VM-instruction error %lu (%s); suspect field: %s",
		       err, vmx_insn_error_name(err), field);
	} else {
		hv_log("vmx: VM entry failed: exit reason 0x%lx (%s) qualification 0x%lx; "
		       "suspect field: %s",
		       reason, vmx_exit_name((u32)(reason & VMX_EXIT_REASON_BASIC_MASK)),
		       vmcs_read(VMCS_EXIT_QUALIFICATION), field);
	}
	hv_log("vmx: guest cr0=0x%lx cr4=0x%lx efer=0x%lx entry=0x%lx rip=0x%lx "
	       "cs=0x%lx/0x%lx ss=0x%lx/0x%lx tr=0x%lx/0x%lx",
	       cr0, cr4, efer, entry, v->rip, vmcs_read(VMCS_GUEST_CS_SEL),
	       vmcs_read(VMCS_GUEST_CS_AR), vmcs_read(VMCS_GUEST_SS_SEL),
	       vmcs_read(VMCS_GUEST_SS_AR), vmcs_read(VMCS_GUEST_TR_SEL),
	       vmcs_read(VMCS_GUEST_TR_AR));
}

/*
 * SDM 28.2.4 "Information for VM Exits During Event Delivery": an exit
 * taken while an event was being delivered leaves it in the IDT-vectoring
 * information; inject it again so it is not lost.
 */
static void vmx_requeue_vectoring(struct vmx_vcpu *x)
{
	u64 info = vmcs_read(VMCS_IDT_VECTORING_INFO);
	u32 type;

	x->inject_info = 0;
	if (!(info & INTR_INFO_VALID))
		return;
	type = (u32)((info & INTR_INFO_TYPE_MASK) >> INTR_INFO_TYPE_SHIFT);
	/* Bit 12 is "undefined" here and reserved in the entry field. */
	x->inject_info = (u32)(info & (INTR_INFO_VALID | INTR_INFO_DELIVER_CODE |
				       INTR_INFO_TYPE_MASK | INTR_INFO_VECTOR_MASK));
	x->inject_error = (u32)vmcs_read(VMCS_IDT_VECTORING_ERROR);
	x->inject_insn_len = (type == INTR_TYPE_SOFT_INTR || type == INTR_TYPE_PRIV_SW_EXCEPTION ||
			      type == INTR_TYPE_SOFT_EXCEPTION)
				 ? (u32)vmcs_read(VMCS_EXIT_INSN_LEN)
				 : 0;
}

/*
 * The preemption timer's 32-bit field counts down once every 2^preempt_shift
 * TSC ticks (SDM Vol. 3C, 26.5.1 "VMX-Preemption Timer"; A.6 "Miscellaneous
 * Data"). At least 1: a 0 exits before the guest runs an instruction.
 */
static u32 vmx_preempt_timer_value(u64 tsc)
{
	u64 t = tsc >> caps.preempt_shift;

	if (t > 0xffffffffull)
		return 0xffffffffu;
	return t ? (u32)t : 1;
}

static void vmx_run(struct vcpu *v, struct hv_exit *e)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 reason;
	int r;

	if (!x->host_state_written)
		vmx_write_host_state(x);
	for (;;) {
		/* An NMI the host took on this CPU (vmx_host_nmi): hv/ sees it as an NMI exit. */
		if (x->nmi_exits &&
		    __atomic_load_n(&x->host_nmis, __ATOMIC_SEQ_CST) != x->host_nmis_seen) {
			x->host_nmis_seen++;
			x->istats.host_nmis++;
			e->reason = HV_EXIT_NMI;
			e->raw_code = VMX_EXIT_EXCEPTION_NMI;
			e->raw_info1 = e->raw_info2 = 0;
			e->name = "NMI (taken in the host)";
			break;
		}
		if (x->eptp_dirty)
			vmx_update_secondary(x);
		if (x->tlb_flush_pending)
			vmx_flush_now(x);
		/*
		 * hv/ completed the instruction that exited: the STI or MOV SS
		 * shadow it may have been in ends with it (SDM 25.4.2, Table 25-3).
		 */
		if (v->rip != x->exit_rip && x->launched)
			vmcs_write(VMCS_GUEST_INTERRUPTIBILITY,
				   vmcs_read(VMCS_GUEST_INTERRUPTIBILITY) &
				       ~(VMX_INTR_BLOCK_STI | VMX_INTR_BLOCK_MOV_SS));
		if (x->nmi_pending)
			vmx_nmi_before_entry(x);
		x->entered_hlt = !(x->inject_info & INTR_INFO_VALID) &&
				 vmcs_read(VMCS_GUEST_ACTIVITY_STATE) == VMX_ACTIVITY_HLT;
		x->entry_rip = v->rip;
		vmcs_write(VMCS_GUEST_RIP, v->rip);
		vmcs_write(VMCS_GUEST_RSP, v->gprs.r[HV_GPR_RSP]);
		vmcs_write(VMCS_GUEST_RFLAGS, v->rflags);
		if (caps.preempt_timer)
			vmcs_write(VMCS_PREEMPTION_TIMER, vmx_preempt_timer_value(x->poll_tsc));
		vmcs_write(VMCS_ENTRY_INTR_INFO, x->inject_info);
		if (x->inject_info & INTR_INFO_VALID) {
			vmcs_write(VMCS_ENTRY_EXCEPTION_ERROR, x->inject_error);
			vmcs_write(VMCS_ENTRY_INSN_LEN, x->inject_insn_len);
		}

		r = vmx_vmenter(&v->gprs, x->launched);
		if (r != VMX_ENTER_EXITED) {
			vmx_report_entry_failure(v, r, 0);
			vmx_sync_ctrl(v);
			e->reason = HV_EXIT_ENTRY_FAILED;
			e->raw_code = (u64)r;
			e->raw_info1 = r == VMX_ENTER_FAIL_VALID ? vmcs_read(VMCS_INSN_ERROR) : 0;
			e->raw_info2 = 0;
			e->name = "VMLAUNCH/VMRESUME failed";
			return;
		}
		reason = vmcs_read(VMCS_EXIT_REASON);
		if (reason & VMX_EXIT_REASON_ENTRY_FAILED) {
			/* SDM 26.8 "VM-Entry Failures During or After Loading Guest State". */
			vmx_report_entry_failure(v, r, reason);
		} else {
			x->launched = true;
		}
		v->rip = vmcs_read(VMCS_GUEST_RIP);
		x->exit_rip = v->rip;
		v->rflags = vmcs_read(VMCS_GUEST_RFLAGS);
		v->gprs.r[HV_GPR_RSP] = vmcs_read(VMCS_GUEST_RSP);
		vmx_requeue_vectoring(x);
		if (vmx_decode_exit(v, reason, e))
			break;
	}
	vmx_sync_ctrl(v);
}

static void vmx_set_poll_exit_tsc(struct vcpu *v, u64 tsc)
{
	to_vmx(v)->poll_tsc = tsc;
}

/*
 * The guest's HLT completes and the guest enters in the HLT activity state
 * (SDM 25.4.2): it sleeps in VMX non-root operation until an interrupt wakes
 * it (delivered through its own IDT: no external-interrupt exiting) or the
 * preemption timer exits so hv/ polls the management port (a preemption
 * timer exit from the HLT state saves the HLT state: the guest sleeps on).
 * Without the HLT activity state the HLT could only complete at once, a
 * wake-up the guest never asked for: vmx_read_caps requires it.
 */
static void vmx_halt_in_guest(struct vcpu *v)
{
	v->rip += vmcs_read(VMCS_EXIT_INSN_LEN);
	vmcs_write(VMCS_GUEST_ACTIVITY_STATE, VMX_ACTIVITY_HLT);
}

/* The MSRs a VM exit leaves live in the CPU (the guest's), reset at INIT. */
#define MSR_STAR	   0xc0000081u
#define MSR_LSTAR	   0xc0000082u
#define MSR_CSTAR	   0xc0000083u
#define MSR_SFMASK	   0xc0000084u

static void vmx_seg_real(const struct vmx_seg_fields *f, u16 sel, u64 base, u32 ar)
{
	vmcs_write(f->sel, sel);
	vmcs_write(f->base, base);
	vmcs_write(f->limit, 0xffff);
	vmcs_write(f->ar, ar);
}

/*
 * INIT then a start-up IPI with `vector`, on the vCPU's own CPU (hv/smp.c):
 * the state after INIT (Intel SDM Vol. 3A, 9.1.1 "Processor State After
 * Reset", Table 9-1: INIT column) in real mode at vector:0000 (9.4.4 "MP
 * Initialization Example": CS selector vector << 8, base vector << 12).
 * Real mode runs as an unrestricted guest (SDM Vol. 3C, 27.3.1.1: CR0.PE
 * and PG free; vmx_smp_supported requires it); the CR0/CR4 bits VMX fixes
 * stay set behind the read shadows. What a VM exit leaves live in the CPU
 * (CR2, DR6, the SYSCALL MSRs, KernelGSbase) is reset here directly.
 */
static void vmx_start_at_sipi(struct vcpu *v, u8 vector)
{
	struct vmx_vcpu *x = to_vmx(v);
	u64 cr0 = X86_CR0_CD | X86_CR0_NW | X86_CR0_ET;
	unsigned int i;

	vmx_seg_real(&seg_cs, (u16)(vector << 8), (u64)vector << 12, 0x9b);
	vmx_seg_real(&seg_ss, 0, 0, 0x93);
	vmx_seg_real(&seg_ds, 0, 0, 0x93);
	vmx_seg_real(&seg_es, 0, 0, 0x93);
	vmx_seg_real(&seg_fs, 0, 0, 0x93);
	vmx_seg_real(&seg_gs, 0, 0, 0x93);
	vmx_seg_real(&seg_ldtr, 0, 0, VMX_AR_LDT);
	/* Busy 16/32-bit TSS: VM entry needs a usable TR (27.3.1.2); nothing reads it. */
	vmx_seg_real(&seg_tr, 0, 0, 0x8b);
	vmcs_write(VMCS_GUEST_GDTR_BASE, 0);
	vmcs_write(VMCS_GUEST_GDTR_LIMIT, 0xffff);
	vmcs_write(VMCS_GUEST_IDTR_BASE, 0);
	vmcs_write(VMCS_GUEST_IDTR_LIMIT, 0xffff);
	vmcs_write(VMCS_GUEST_CR0, (cr0 | (caps.cr0_fixed0 & x->cr0_mask)) & caps.cr0_fixed1);
	vmcs_write(VMCS_CR0_SHADOW, cr0);
	vmcs_write(VMCS_GUEST_CR4, caps.cr4_fixed0);
	vmcs_write(VMCS_CR4_SHADOW, 0);
	vmcs_write(VMCS_GUEST_CR3, 0);
	vmcs_write(VMCS_GUEST_DR7, 0x400);
	vmcs_write(VMCS_GUEST_IA32_DEBUGCTL, 0);
	vmcs_write(VMCS_GUEST_IA32_PAT, X86_PAT_RESET);
	vmx_set_efer(v, 0);
	vmcs_write(VMCS_GUEST_SYSENTER_CS, 0);
	vmcs_write(VMCS_GUEST_SYSENTER_ESP, 0);
	vmcs_write(VMCS_GUEST_SYSENTER_EIP, 0);
	vmcs_write(VMCS_GUEST_INTERRUPTIBILITY, 0);
	vmcs_write(VMCS_GUEST_ACTIVITY_STATE, VMX_ACTIVITY_ACTIVE);
	vmcs_write(VMCS_GUEST_PENDING_DBG, 0);
	x86_wrmsr(MSR_STAR, 0);
	x86_wrmsr(MSR_LSTAR, 0);
	x86_wrmsr(MSR_CSTAR, 0);
	x86_wrmsr(MSR_SFMASK, 0);
	x86_wrmsr(MSR_KERNEL_GS_BASE, 0);
	__asm__ volatile("mov %0, %%cr2" : : "r"(0ull) : "memory");
	__asm__ volatile("mov %0, %%dr6" : : "r"(0xffff0ff0ull) : "memory");
	x->inject_info = 0;
	x->nmi_pending = false;
	if (x->nmi_exits)
		vmx_set_nmi_window(false);
	x->tlb_flush_pending = true;
	for (i = 0; i < HV_NR_GPRS; i++)
		v->gprs.r[i] = 0;
	/* EDX holds the processor signature after INIT (CPUID 1 EAX). */
	v->gprs.r[HV_GPR_RDX] = x86_cpuid(1, 0).eax;
	v->rip = 0;
	v->rflags = X86_EFLAGS_FIXED;
	vmx_sync_ctrl(v);
}

static const struct vcpu_ops vmx_vcpu_ops = {
    .run = vmx_run,
    .inject_exception = vmx_inject_exception,
    .set_efer = vmx_set_efer,
    .flush_tlb = vmx_flush_tlb,
    .set_tdp_root = vmx_set_tdp_root,
    .set_poll_exit_tsc = vmx_set_poll_exit_tsc,
    .set_pml = vmx_set_pml,
    .pml_flush = vmx_pml_flush,
    .halt_in_guest = vmx_halt_in_guest,
    .get_sregs = vmx_get_sregs,
    .inject_nmi = vmx_inject_nmi,
    .start_at_sipi = vmx_start_at_sipi,
};

/*
 * Everything a vCPU needs from the pool, for the CPU that takes it later
 * (hv_ap_start): the VMXON region and VMCS are per CPU by definition, the
 * PML log per vCPU, the host TSS per CPU (HOST_TR_BASE). Host RSP is set
 * at every entry on the CPU's own host stack (vmx_entry.S); the host GDT,
 * IDT and page tables are shared.
 */
static int vmx_vcpu_create(struct vcpu *v, const struct hv_boot_info *bi)
{
	struct vmx_vcpu *x = hv_page_alloc();
	const char *why = "";
	bool smp = bi->nr_cpus > 1 && vmx_smp_supported(&why);
	u32 msr;
	u16 port;

	if (!x || v->id >= HV_MAX_CPUS)
		return -1;
	x->vmxon_region = hv_page_alloc();
	x->vmcs = hv_page_alloc();
	x->host_tss = hv_page_alloc();
	if (!vmx_msr_bitmap) {
		vmx_io_bitmap_a = hv_page_alloc();
		vmx_io_bitmap_b = hv_page_alloc();
		vmx_msr_bitmap = hv_page_alloc();
	}
	x->io_bitmap_a = vmx_io_bitmap_a;
	x->io_bitmap_b = vmx_io_bitmap_b;
	x->msr_bitmap = vmx_msr_bitmap;
	if (!x->vmxon_region || !x->vmcs || !x->io_bitmap_a || !x->io_bitmap_b || !x->msr_bitmap ||
	    !x->host_tss)
		return -1;
	if (caps.pml) {
		x->pml_buf = hv_page_alloc();
		if (!x->pml_buf)
			return -1;
	}
	/*
	 * NMI exiting with one vCPU too, where the CPU allows it: an NMI that
	 * reaches the host in VMX root operation is then handed to the guest
	 * (vmx_run, hv/exit.c) instead of being lost.
	 */
	x->nmi_exits = smp || caps.nmi_ctls;
	v->arch = x;
	v->ops = &vmx_vcpu_ops;
	vmx_vcpus[v->id] = x;
	if (v->id >= vmx_nr_vcpus)
		vmx_nr_vcpus = v->id + 1;
	x86_host_nmi_hook = vmx_host_nmi;

	/* The management UART's ports, as on SVM (hv/exit.c answers them; hv/mgmt_uart.h). */
	if (hv.mgmt_uart.space == UART_SPACE_IO)
		for (port = 0; port < UART_NR_PORTS; port++)
			vmx_intercept_io_port(x, (u16)(hv.mgmt_uart.base + port));
	/* VMX is hidden: its MSRs behave as on a CPU without it (hv/exit.c). */
	vmx_intercept_msr(x, MSR_IA32_FEATURE_CONTROL, true, true);
	for (msr = MSR_IA32_VMX_BASIC; msr <= MSR_IA32_VMX_VMFUNC; msr++)
		vmx_intercept_msr(x, msr, true, true);
	/* INIT and start-up IPIs in x2APIC mode, and the APIC staying put (hv/lapic.h). */
	if (smp) {
		vmx_intercept_msr(x, MSR_IA32_APIC_BASE, false, true);
		vmx_intercept_msr(x, MSR_X2APIC_ICR, false, true);
	}
	return 0;
}

/* The preemption timer bounds the management port's answer time (docs/hv.md). */
static int vmx_own_mgmt_tick(void)
{
	return caps.preempt_timer ? HV_MGMT_TICK_VMX_PREEMPT : HV_MGMT_TICK_NONE;
}

const struct x86_backend vmx_backend = {
    .name = "vmx",
    .check_cpu = vmx_check_cpu,
    .vcpu_create = vmx_vcpu_create,
    .capture_live_state = vmx_capture_live_state,
    .host_enter = vmx_host_enter,
    .tdp_format_init = vmx_tdp_format_init,
    .pml_supported = vmx_pml_supported,
    .own_mgmt_tick = vmx_own_mgmt_tick,
    .smp_supported = vmx_smp_supported,
    .smp = true,
};
