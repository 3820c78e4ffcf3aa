/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a hostile guest against the exit handling it can reach
 * with its own instructions and memory: hv/exit.c's CPUID, MSR and port I/O
 * policy, the local APIC write emulation (hv/lapic.c, INIT and start-up IPIs
 * caught), the instruction decoder behind the APIC and HPET pages (hv/insn.c,
 * fed through hv/guest_mem.c's fetch) and the guest's view of the HPET while
 * the management tick owns a comparator (hv/mgmt_tick.c, hv/vhpet.c,
 * drivers/hpet.c over a register block in memory, found through an ACPI image
 * as at boot). The CPU is replaced (tests/fuzz/guest_shim.h): CPUID and
 * RDMSR answer with the fuzzer's bytes, WRMSR and the APIC record what the
 * hypervisor asked of the hardware.
 *
 * Input: 4 setup bytes (HPET comparators and which can do FSB, the first
 * CPUID answers), then records of 40 bytes:
 *   [0]  the exit: CPUID, RDMSR, WRMSR, I/O, a fault on the APIC page, on the
 *        HPET page, elsewhere, a virtualization instruction, NMI, INTR, HLT
 *   [1]  bit 0 the vCPU, bits 2:1 CS mode (16, 32, 64, 64), bit 3 the APIC in x2APIC mode
 *   [2..3]   the MSR (picked from the ones the policy names, or raw), port,
 *            I/O size and direction, or the page offset
 *   [4..11]  RAX   [12..19] RCX, RDX's low half and the other registers
 *   [20..21] where RIP is in the guest's two code pages (a fetch may run off)
 *   [22..36] the instruction bytes at RIP   [37..39] CPUID/RDMSR/port answers
 * Checked after every exit (a failed check traps):
 *   - RIP moves by at most 15 bytes (the longest instruction), I/O to next_rip;
 *   - only the registers an exit defines change: CPUID RAX..RDX, RDMSR RAX
 *     and RDX (upper halves zero), IN the bytes it reads (32-bit clears the top);
 *   - CPUID hides VMX, SVM and its leaf 0x8000000A, sets the hypervisor bit;
 *   - no WRMSR reaches the hardware for an MSR the hypervisor keeps (EFER,
 *     VM_CR, VM_HSAVE_PA, feature control, VMX, the x2APIC ICR), the APIC base
 *     never moves, EFER as set keeps LMA and takes only architectural bits;
 *   - INIT and start-up IPIs never reach the hardware for a CPU that is a
 *     vCPU, the APIC's ICR is written only to send, and no APIC write goes to
 *     a register that does not exist (in x2APIC mode: an MSR that would #GP);
 *   - the management tick's comparator keeps its configuration, value and
 *     FSB route, the counter keeps running, its status bit is never written,
 *     and the guest's own comparators deliver FSB only as an MSI to a CPU;
 *   - ASan: no access outside guest memory, the HPET block, the tables.
 * hv_guest_fatal (the guest killed, by design for what cannot be emulated)
 * ends the input.
 */
#include "drivers/hpet.h"
#include "drivers/uart16550.h"
#include "hv/boot.h"
#include "hv/control.h"
#include "hv/hv.h"
#include "hv/log.h"
#include "hv/memslot.h"
#include "hv/mgmt_tick.h"
#include "hv/smp.h"
#include "hv/vcpu.h"
#include "hv/vm.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int LLVMFuzzerTestOneInput(const u8 *data, size_t size);

#define REC_LEN	      40
#define NR_VCPUS      2
#define NR_CPUS	      3 /* CPU 2 is not a vCPU (not taken over) */
#define CODE_PAGES    2
#define MSR_FEAT_CTL  0x0000003au
#define MSR_VMX_FIRST 0x00000480u
#define MSR_VMX_LAST  0x00000491u
/* EFER's architectural bits (AMD APM Vol. 2, 3.1.7): SCE, LME, LMA, NXE, SVME, LMSLE, FFXSR, TCE. */
#define EFER_ARCH (BIT_ULL(0) | BIT_ULL(8) | BIT_ULL(10) | BIT_ULL(11) | GENMASK_ULL(15, 12))

struct hv hv;
/* Guest memory is this process's: physical addresses are host pointers (hv/page_alloc.h). */
uintptr_t hv_host_phys_base;

static struct {
	/* The machine. */
	struct hv_boot_info bi;
	struct vm vm;
	struct hv_slot ram_slot;
	struct vcpu vcpus[NR_VCPUS];
	u8 *code;  /* CODE_PAGES of guest RAM below 4 GiB (paging off: linear = physical) */
	u8 *regs;  /* the HPET's register page */
	u8 *acpi;  /* RSDP, XSDT, HPET table */
	/* What the fuzzer answers with. */
	const u8 *ans;
	bool x2apic;
	/* What the hypervisor did. */
	jmp_buf fatal;
	u64 efer_set, efer_before;
	bool efer_written;
	unsigned int taken; /* the tick's comparator */
	u32 bad;	    /* which check failed, for a debugger */
} m;

static void fail(u32 why)
{
	m.bad = why;
	__builtin_trap();
}

/* ---- the CPU (guest_shim.h) ---- */

static u32 ans32(unsigned int i)
{
	u32 v = 0x9e3779b9u * (i + 1);

	for (unsigned int k = 0; k < 3; k++)
		v = (v ^ m.ans[k]) * 0x01000193u;
	return v;
}

struct x86_cpuid fz_cpuid(u32 leaf, u32 subleaf)
{
	(void)subleaf;
	if (!m.ans) /* setup: APIC ID 0, no x2APIC topology leaf */
		return (struct x86_cpuid){0, 0, 0, 0};
	/* Whatever a CPU reports, with every bit the policy touches set both ways. */
	return (struct x86_cpuid){ans32(0) ^ leaf, ans32(1), ans32(2), ans32(3)};
}

u64 fz_rdmsr(u32 msr)
{
	if (msr == MSR_IA32_APIC_BASE)
		return APIC_DEFAULT_BASE | APIC_BASE_ENABLE | (m.x2apic ? APIC_BASE_EXTD : 0);
	fail(1); /* no other plain RDMSR is expected from the exit path */
	return 0;
}

void fz_wrmsr(u32 msr, u64 val)
{
	(void)val;
	/* Plain WRMSR: only the x2APIC registers through the APIC helpers. */
	if (!m.x2apic || msr < MSR_X2APIC_FIRST || msr > MSR_X2APIC_LAST)
		fail(2);
}

bool fz_x2apic_mode(void)
{
	return m.x2apic;
}

u32 fz_apic_read(u32 off)
{
	(void)off;
	return 0; /* never busy */
}

/* x2APIC MSRs that exist for a write (Intel SDM Vol. 3A, 11.12.1.2, Table 11-6). */
static bool x2apic_writable(u32 msr)
{
	switch (msr) {
	case 0x808: /* TPR */
	case 0x80b: /* EOI */
	case 0x80f: /* SVR */
	case 0x828: /* ESR */
	case 0x82f: /* LVT CMCI */
	case 0x830: /* ICR */
	case 0x832: /* LVT timer */
	case 0x833: /* LVT thermal */
	case 0x834: /* LVT PMC */
	case 0x835: /* LINT0 */
	case 0x836: /* LINT1 */
	case 0x837: /* LVT error */
	case 0x838: /* initial count */
	case 0x83e: /* divide configuration */
	case 0x83f: /* self IPI */
		return true;
	}
	return false;
}

void fz_apic_write(u32 off, u32 val)
{
	(void)val;
	if (off >= 0x1000 || (off & 3))
		fail(3);
	if (m.x2apic) {
		/* x86_apic_write turns the offset into an MSR: one that exists, never the ICR. */
		u32 msr = MSR_X2APIC_FIRST + off / 16;

		if (!x2apic_writable(msr) || msr == MSR_X2APIC_ICR)
			fail(4);
		return;
	}
	if (off == APIC_ICR_LO)
		fail(5); /* an IPI sent around the emulation */
}

void fz_apic_send_ipi(u32 dest, u32 lo)
{
	u32 dm = lo & APIC_ICR_DM_MASK;

	if (dm != APIC_ICR_DM_INIT && dm != APIC_ICR_DM_STARTUP)
		return;
	/* Shorthands and logical destinations reach CPUs the hypervisor cannot list. */
	if ((lo & APIC_ICR_SHORTHAND_MASK) || (lo & APIC_ICR_DEST_LOGICAL))
		fail(6);
	for (unsigned int i = 0; i < NR_VCPUS; i++)
		if (m.vcpus[i].online && dest == m.vcpus[i].apic_id)
			fail(7); /* INIT/SIPI to a vCPU's CPU would take it from the hypervisor */
}

int x86_rdmsr_safe(u32 msr, u64 *val)
{
	/* The answer, or #GP. */
	if (m.ans[2] & 1)
		return -1;
	*val = ((u64)ans32(4) << 32 | ans32(5)) ^ msr;
	return 0;
}

int x86_wrmsr_safe(u32 msr, u64 val)
{
	switch (msr) {
	case MSR_EFER:
	case MSR_VM_CR:
	case MSR_VM_HSAVE_PA:
	case MSR_FEAT_CTL:
	case MSR_X2APIC_ICR:
		fail(8);
		break;
	case MSR_IA32_APIC_BASE:
		if ((val & APIC_BASE_ADDR_MASK) != APIC_DEFAULT_BASE)
			fail(9);
		break;
	}
	if (msr >= MSR_VMX_FIRST && msr <= MSR_VMX_LAST)
		fail(10);
	return m.ans[2] & 2 ? -1 : 0;
}

/* ---- the rest of the hypervisor around the exit path ---- */

void hv_log(const char *fmt, ...)
{
	(void)fmt;
}

void hv_guest_fatal(struct vcpu *v, const char *fmt, ...)
{
	(void)v;
	(void)fmt;
	longjmp(m.fatal, 1);
}

void pt_assert_failed(const char *expr, const char *file, int line)
{
	(void)expr;
	(void)file;
	(void)line;
	__builtin_trap();
}

u8 hv_control_port_read(unsigned int reg)
{
	if (reg >= UART_NR_PORTS)
		fail(11);
	return m.ans[reg % 3];
}

void hv_control_port_write(unsigned int reg, u8 val)
{
	(void)val;
	if (reg >= UART_NR_PORTS)
		fail(12);
}

void hv_control_poll(struct vcpu *v)
{
	if (v->id != 0)
		fail(13); /* the management port is the boot CPU's */
}

bool hv_control_wants_poll(void)
{
	return false;
}

void hv_control_log_stats(void)
{
}

/* Guest RAM is the code pages; 0xa0000-0xfffff is hidden (as the hypervisor's memory is). */
bool hv_gpa_is_hidden(const struct vm *vm, gpa_t gpa)
{
	(void)vm;
	return gpa >= 0xa0000 && gpa < 0x100000;
}

const struct hv_slot *hv_gpa_to_slot(const struct vm *vm, gpa_t gpa)
{
	const struct hv_slot *s = &m.ram_slot;

	(void)vm;
	return gpa_to_gfn(gpa) >= s->base_gfn && gpa_to_gfn(gpa) < s->base_gfn + s->npages ? s
											    : NULL;
}

void vm_handle_tdp_fault(struct vm *vm, struct vcpu *v, const struct hv_exit_tdp_fault *f)
{
	(void)vm;
	(void)v;
	(void)f;
}

bool smp_claim_kick(struct vcpu *v)
{
	(void)v;
	return false;
}

struct vcpu *smp_vcpu_by_apic_id(struct vm *vm, u32 apic_id)
{
	(void)vm;
	for (unsigned int i = 0; i < NR_VCPUS; i++)
		if (m.vcpus[i].apic_id == apic_id)
			return &m.vcpus[i];
	return NULL;
}

void smp_deliver_init(struct vcpu *t)
{
	if (!t->online)
		fail(14);
}

void smp_deliver_sipi(struct vcpu *t, u8 vector)
{
	(void)vector;
	if (!t->online)
		fail(15);
}

void smp_vcpu_init_signal(struct vcpu *v)
{
	(void)v;
}

int arch_own_mgmt_tick(void)
{
	return HV_MGMT_TICK_NONE;
}

bool arch_nmi_tick_supported(void)
{
	return true;
}

static void op_inject_exception(struct vcpu *v, u8 vector, bool has_error, u32 error)
{
	(void)v;
	(void)has_error;
	(void)error;
	if (vector != X86_VEC_GP && vector != X86_VEC_UD)
		fail(16);
}

static void op_set_efer(struct vcpu *v, u64 efer)
{
	if ((efer & ~EFER_ARCH) || ((efer ^ v->ctrl.efer) & EFER_LMA))
		fail(17);
	m.efer_written = true;
	v->ctrl.efer = efer;
}

static void op_nothing(struct vcpu *v)
{
	(void)v;
}

static const struct vcpu_ops ops = {
    .inject_exception = op_inject_exception,
    .set_efer = op_set_efer,
    .halt_in_guest = op_nothing,
    .inject_nmi = op_nothing,
};

/* ---- the machine: guest RAM, an HPET, its ACPI table ---- */

static void put32(u8 *p, u32 v)
{
	memcpy(p, &v, 4);
}

static void put64(u8 *p, u64 v)
{
	memcpy(p, &v, 8);
}

static u64 reg(u32 off)
{
	u64 v;

	memcpy(&v, m.regs + off, 8);
	return v;
}

static void sdt_seal(u8 *t, const char *sig, u32 len)
{
	u8 s = 0;

	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = 1;
	t[9] = 0;
	for (u32 i = 0; i < len; i++)
		s = (u8)(s + t[i]);
	t[9] = (u8)(0 - s);
}

static void machine_once(void)
{
	u8 *rsdp, *xsdt, *tbl, s = 0;

	/* Below 4 GiB: with paging off the guest's linear addresses are 32 bits. */
	m.code = mmap(NULL, CODE_PAGES * PAGE_SIZE, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
	m.regs = aligned_alloc(PAGE_SIZE, PAGE_SIZE);
	m.acpi = calloc(1, 256);
	if (m.code == MAP_FAILED || !m.regs || !m.acpi)
		abort();
	m.ram_slot = (struct hv_slot){
	    .base_gfn = gpa_to_gfn((uintptr_t)m.code), .npages = CODE_PAGES, .type = HV_MEM_RAM};
	rsdp = m.acpi;
	xsdt = m.acpi + 64;
	tbl = m.acpi + 128;
	put64(tbl + 44, (u64)(uintptr_t)m.regs); /* GAS in system memory */
	sdt_seal(tbl, "HPET", 56);
	put64(xsdt + 36, (u64)(uintptr_t)tbl);
	sdt_seal(xsdt, "XSDT", 44);
	memcpy(rsdp, "RSD PTR ", 8);
	rsdp[15] = 2;
	put32(rsdp + 20, 36);
	put64(rsdp + 24, (u64)(uintptr_t)xsdt);
	for (int i = 0; i < 20; i++)
		s = (u8)(s + rsdp[i]);
	rsdp[8] = (u8)(0 - s);
	s = 0;
	for (int i = 0; i < 36; i++)
		s = (u8)(s + rsdp[i]);
	rsdp[32] = (u8)(0 - s);
}

/*
 * A fresh HPET (3 to 10 comparators, 64-bit, 10 ns, comparators from 2 on
 * FSB-capable as setup[0] says) and a fresh tick on it, as at boot.
 */
static void machine_reset(const u8 *setup)
{
	unsigned int nr = 3 + setup[0] % 8;

	memset(m.regs, 0, PAGE_SIZE);
	put64(m.regs + HPET_GCAP_ID, (10000000ull << 32) | (0x8086ull << 16) |
					 HPET_GCAP_COUNT_SIZE_CAP | (u64)(nr - 1) << 8 | 1);
	for (unsigned int n = 0; n < nr; n++)
		put64(m.regs + HPET_TN_CONF(n),
		      HPET_TN_PER_INT_CAP | HPET_TN_SIZE_CAP |
			  ((n >= 2 && ((setup[1] >> (n - 2)) & 1)) || n == nr - 1
			       ? HPET_TN_FSB_INT_DEL_CAP
			       : 0));
	put64(m.regs + HPET_MAIN_COUNTER, (u64)setup[2] << 24);
	memset(&m.bi, 0, sizeof(m.bi));
	m.bi.acpi_rsdp = (u64)(uintptr_t)m.acpi;
	m.bi.nr_cpus = NR_CPUS;
	for (unsigned int i = 0; i < NR_CPUS; i++)
		m.bi.cpus[i].apic_id = i, m.bi.cpus[i].index = i;
	memset(&m.vm, 0, sizeof(m.vm));
	m.vm.lapic_intercept = true;
	memset(&hv, 0, sizeof(hv));
	hv.bi = &m.bi;
	hv.vm = &m.vm;
	/* The default management UART: COM2's eight ports are intercepted (hv/mgmt_uart.h). */
	hv.mgmt_uart =
	    (struct uart16550){.base = UART_COM2_BASE, .space = UART_SPACE_IO, .reg_width = 1};
	hv.next_stats_tsc = ~0ull;
	m.ans = NULL;
	hv_mgmt_poll_choose(&hv.mgmt_poll, 115200, 0);
	hv_mgmt_tick_init(&m.bi, &hv.mgmt_poll);
	if (hv.mgmt_tick != HV_MGMT_TICK_HPET_NMI)
		fail(18); /* this HPET can always be shared */
	hv_mgmt_tick_start();
	/* The tick's comparator: the one started with FSB delivery (no other has it yet). */
	m.taken = 0;
	for (unsigned int n = 2; n < nr; n++)
		if (reg(HPET_TN_CONF(n)) & HPET_TN_FSB_EN_CNF)
			m.taken = n;
	if (!m.taken)
		fail(19);
	for (unsigned int i = 0; i < NR_VCPUS; i++) {
		struct vcpu *v = &m.vcpus[i];

		memset(v, 0, sizeof(*v));
		v->id = i;
		v->apic_id = i;
		v->online = true;
		v->vm = &m.vm;
		v->ops = &ops;
		v->ctrl.cr0 = 0x11; /* PE, ET; paging off */
		v->ctrl.cs_base = (uintptr_t)m.code;
		v->ctrl.efer = (setup[3] & 1) ? EFER_LME | EFER_LMA : 0;
	}
}

/* The MSRs the policy names, and their neighbours: raw numbers rarely hit them. */
static const u32 msrs[] = {
    MSR_EFER,		MSR_VM_HSAVE_PA, MSR_IA32_APIC_BASE, MSR_X2APIC_ICR, MSR_VM_CR,
    MSR_FEAT_CTL,	MSR_VMX_FIRST,	 MSR_VMX_LAST,	     MSR_VMX_LAST + 1, MSR_X2APIC_ICR + 1,
    MSR_IA32_PAT,	MSR_FS_BASE,	 MSR_KERNEL_GS_BASE, 0xc0010115,	 0x00000010,
};

static u64 get64(const u8 *p)
{
	u64 v;

	memcpy(&v, p, 8);
	return v;
}

enum {
	K_CPUID,
	K_RDMSR,
	K_WRMSR,
	K_IO,
	K_APIC,
	K_HPET,
	K_FAULT,
	K_VIRT,
	K_NMI,
	K_INTR,
	K_HLT,
	K_NR,
};

static void one_exit(const u8 *r)
{
	struct vcpu *v = &m.vcpus[r[1] & 1];
	struct hv_exit e = {.name = "fuzz"};
	struct hv_gprs before;
	u64 rip0, conf_t, cmp_t, route_t, delta, mask;
	unsigned int kind = r[0] % K_NR, mode = (r[1] >> 1) & 3, t;
	u16 arg = (u16)(r[2] | r[3] << 8);
	bool modified_ok[HV_NR_GPRS] = {false};

	m.ans = r + 37;
	m.x2apic = r[1] & 8;
	v->ctrl.cs_long = mode >= 2;
	v->ctrl.cs_db = mode == 1;
	v->gprs.r[HV_GPR_RAX] = get64(r + 4);
	v->gprs.r[HV_GPR_RCX] = get64(r + 12);
	for (unsigned int i = HV_GPR_RDX; i < HV_NR_GPRS; i++)
		v->gprs.r[i] = get64(r + 12) * (i + 1) ^ get64(r + 4);
	v->rip = (r[20] | r[21] << 8) % (CODE_PAGES * PAGE_SIZE);
	memcpy(m.code + (v->rip < CODE_PAGES * PAGE_SIZE - 15 ? v->rip : CODE_PAGES * PAGE_SIZE - 15),
	       r + 22, 15);
	before = v->gprs;
	rip0 = v->rip;
	m.efer_before = v->ctrl.efer;
	switch (kind) {
	case K_CPUID:
		e.reason = HV_EXIT_CPUID;
		break;
	case K_RDMSR:
	case K_WRMSR:
		e.reason = kind == K_RDMSR ? HV_EXIT_MSR_READ : HV_EXIT_MSR_WRITE;
		e.msr = arg & 0x8000 ? msrs[arg % (sizeof(msrs) / sizeof(msrs[0]))]
				     : (u32)get64(r + 12) ^ arg;
		break;
	case K_IO:
		e.reason = HV_EXIT_IO;
		e.io.port = arg & 0x8000 ? (u16)(arg & 0xffff) : UART_COM2_BASE + (arg & 7);
		e.io.size = (u8)(1u << ((arg >> 3) % 3));
		e.io.in = arg & 0x40;
		e.io.string = (arg & 0x3000) == 0x3000;
		e.io.next_rip = rip0 + 1 + ((arg >> 8) & 1);
		break;
	case K_APIC:
	case K_HPET:
	case K_FAULT:
		e.reason = HV_EXIT_TDP_FAULT;
		e.tdp.gpa = (kind == K_APIC   ? APIC_DEFAULT_BASE
			     : kind == K_HPET ? (u64)(uintptr_t)m.regs
					      : (u64)r[16] << 12) |
			    (arg & 0xfff);
		e.tdp.present = true;
		e.tdp.write = arg & 0x1000;
		e.tdp.fetch = (arg & 0x6000) == 0x6000;
		break;
	case K_VIRT:
		e.reason = HV_EXIT_VIRT_INSN;
		break;
	case K_NMI:
		e.reason = HV_EXIT_NMI;
		break;
	case K_INTR:
		e.reason = HV_EXIT_INTR;
		break;
	default:
		e.reason = HV_EXIT_HLT;
		break;
	}
	t = m.taken;
	conf_t = reg(HPET_TN_CONF(t));
	cmp_t = reg(HPET_TN_COMPARATOR(t));
	route_t = reg(HPET_TN_FSB_ROUTE(t));
	m.efer_written = false;
	if (setjmp(m.fatal)) {
		/* The guest was killed: by design for what cannot be emulated. */
		return;
	}
	hv_handle_exit(v, &e);

	/* RIP: at most one instruction on, or the I/O exit's next RIP. */
	delta = (v->rip - rip0) & (v->ctrl.cs_long ? ~0ull : 0xffffffffull);
	if (kind == K_IO ? v->rip != rip0 && v->rip != e.io.next_rip : delta > 15)
		fail(20);
	/* Registers: only what the exit defines. */
	switch (kind) {
	case K_CPUID:
		modified_ok[HV_GPR_RAX] = modified_ok[HV_GPR_RBX] = modified_ok[HV_GPR_RCX] =
		    modified_ok[HV_GPR_RDX] = true;
		if (v->rip != rip0) {
			u32 leaf = (u32)before.r[HV_GPR_RAX], ecx = (u32)v->gprs.r[HV_GPR_RCX];

			if (leaf == 1 && (!(ecx & BIT_ULL(31)) || (ecx & BIT_ULL(5))))
				fail(21);
			if (leaf == 0x80000001 && (ecx & BIT_ULL(2)))
				fail(22);
			if (leaf == 0x8000000a && (v->gprs.r[HV_GPR_RAX] | v->gprs.r[HV_GPR_RBX] |
						   v->gprs.r[HV_GPR_RCX] | v->gprs.r[HV_GPR_RDX]))
				fail(23);
			for (unsigned int i = 0; i < 4; i++)
				if (v->gprs.r[i] >> 32)
					fail(24);
		}
		break;
	case K_RDMSR:
		modified_ok[HV_GPR_RAX] = modified_ok[HV_GPR_RDX] = true;
		if (v->rip != rip0 && ((v->gprs.r[HV_GPR_RAX] | v->gprs.r[HV_GPR_RDX]) >> 32))
			fail(25);
		break;
	case K_IO:
		if (!e.io.in || v->rip == rip0)
			break;
		modified_ok[HV_GPR_RAX] = true;
		mask = e.io.size == 4 ? ~0ull : (1ull << (8 * e.io.size)) - 1;
		if ((e.io.size == 4 && (v->gprs.r[HV_GPR_RAX] >> 32)) ||
		    (e.io.size < 4 &&
		     (v->gprs.r[HV_GPR_RAX] & ~mask) != (before.r[HV_GPR_RAX] & ~mask)))
			fail(26);
		break;
	case K_APIC:
	case K_HPET:
	case K_FAULT:
		/* An emulated load writes its destination, whichever it is. */
		for (unsigned int i = 0; i < HV_NR_GPRS; i++)
			modified_ok[i] = true;
		break;
	}
	for (unsigned int i = 0; i < HV_NR_GPRS; i++)
		if (!modified_ok[i] && v->gprs.r[i] != before.r[i])
			fail(27);
	/* EFER: only through the policy. */
	if (v->ctrl.efer != m.efer_before && !m.efer_written)
		fail(28);
	/* The tick's comparator: the guest's exits never touch it (NMI exits re-arm it). */
	if (kind != K_NMI && (reg(HPET_TN_CONF(t)) != conf_t || reg(HPET_TN_COMPARATOR(t)) != cmp_t ||
			      reg(HPET_TN_FSB_ROUTE(t)) != route_t))
		fail(29);
	if (!(reg(HPET_GEN_CONF) & HPET_GEN_ENABLE_CNF))
		fail(30);
	if (reg(HPET_GINTR_STA) & BIT_ULL(t))
		fail(31);
	for (unsigned int n = 0; HPET_TN_CONF(n) < HPET_MMIO_SIZE && n < 32; n++) {
		u64 route = reg(HPET_TN_FSB_ROUTE(n));
		u32 dm = ((u32)route >> 8) & 7;

		if (n == t || !(reg(HPET_TN_CONF(n)) & HPET_TN_FSB_EN_CNF))
			continue;
		if (((route >> 32) & 0xfff00000u) != 0xfee00000u || (dm != 0 && dm != 1 && dm != 4))
			fail(32);
	}
	/* The hardware moves its counter between exits. */
	put64(m.regs + HPET_MAIN_COUNTER, reg(HPET_MAIN_COUNTER) + r[38] * 97u);
}

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
	static bool once;

	if (size < 4)
		return 0;
	if (!once) {
		machine_once();
		once = true;
	}
	machine_reset(data);
	for (size_t i = 4; i + REC_LEN <= size; i += REC_LEN)
		one_exit(data + i);
	return 0;
}
