/*
 * The machinery shared by the guest-contract probes (tests/guest/probe.c on SVM,
 * tests/bochs/vmx_probe.c on VMX): run an instruction that may fault and learn which
 * exception it raised, report "ok NAME" / "not ok NAME why" lines on the console.
 *
 * Faulting instructions run with a private copy of the firmware's IDT whose #UD and #GP
 * gates point at probe_trap.S, which records the vector in probe_fault_vector and
 * resumes at probe_recover_rip (the label right after the instruction). Interrupts stay
 * disabled meanwhile and the firmware's IDT is restored afterwards.
 *
 * Include it from exactly one file of a probe (it defines the variables probe_trap.S
 * uses) after <efi.h> and <efilib.h>, call probe_setup_idt() once, link probe_trap.o.
 */
#ifndef PT_TESTS_GUEST_PROBE_LIB_H
#define PT_TESTS_GUEST_PROBE_LIB_H

#define VEC_NONE 0xffu
#define VEC_UD	 6u
#define VEC_GP	 13u

#define CPUID_HV_BASE	       0x40000000u
#define CPUID_1_ECX_HYPERVISOR (1u << 31)

/* Read and written by probe_trap.S. */
__attribute__((visibility("hidden"))) volatile UINT64 probe_fault_vector;
__attribute__((visibility("hidden"))) volatile UINT64 probe_recover_rip;
__attribute__((visibility("hidden"))) volatile UINT64 probe_fault_rflags;
extern void probe_ud_handler(void) __attribute__((visibility("hidden")));
extern void probe_gp_handler(void) __attribute__((visibility("hidden")));
__attribute__((visibility("hidden"))) volatile UINT64 probe_timer_ticks;
__attribute__((visibility("hidden"))) volatile UINT64 probe_apic_eoi;
extern void probe_timer_handler(void) __attribute__((visibility("hidden")));

struct idt_ptr {
	UINT16 limit;
	UINT64 base;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_ptr) == 10, "sidt/lidt operand is 10 bytes");

/*
 * A 64-bit interrupt gate is two u64s (AMD APM Vol. 2, 4.8.4 "Gate Descriptors"; Intel
 * SDM Vol. 3A, 6.14.1 "64-Bit Mode IDT"): offset[15:0], selector, IST, type/attributes,
 * offset[31:16]; then offset[63:32].
 */
#define GATE_SELECTOR_SHIFT    16
#define GATE_ATTR_SHIFT	       40
#define GATE_ATTR_INTR_PRESENT 0x8eull /* P=1, DPL=0, type 0xE: 64-bit interrupt gate */
#define GATE_OFFSET_MID_SHIFT  48

#define IDT_ENTRIES 256
static UINT64 probe_idt[IDT_ENTRIES * 2] __attribute__((aligned(16)));
static struct idt_ptr fw_idtr, probe_idtr;
static unsigned probe_failures;

static inline void make_gate(UINT64 *gate, void (*handler)(void), UINT16 cs)
{
	UINT64 off = (UINT64)handler;

	gate[0] = (off & 0xffffull) | ((UINT64)cs << GATE_SELECTOR_SHIFT) |
		  (GATE_ATTR_INTR_PRESENT << GATE_ATTR_SHIFT) |
		  (((off >> 16) & 0xffffull) << GATE_OFFSET_MID_SHIFT);
	gate[1] = off >> 32;
}

static inline void probe_setup_idt(void)
{
	UINT16 cs;
	UINTN n;

	__asm__ volatile("sidt %0" : "=m"(fw_idtr));
	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	n = ((UINTN)fw_idtr.limit + 1) / 8;
	if (n > IDT_ENTRIES * 2)
		n = IDT_ENTRIES * 2;
	CopyMem(probe_idt, (void *)fw_idtr.base, n * 8);
	make_gate(&probe_idt[VEC_UD * 2], probe_ud_handler, cs);
	make_gate(&probe_idt[VEC_GP * 2], probe_gp_handler, cs);
	probe_idtr.limit = sizeof(probe_idt) - 1;
	probe_idtr.base = (UINT64)probe_idt;
}

static inline UINT64 irq_save_and_load_probe_idt(void)
{
	UINT64 flags;

	__asm__ volatile("pushfq; pop %0; cli" : "=r"(flags)::"memory");
	__asm__ volatile("lidt %0" ::"m"(probe_idtr) : "memory");
	probe_fault_vector = VEC_NONE;
	probe_fault_rflags = 0;
	return flags;
}

static inline void irq_restore_and_load_fw_idt(UINT64 flags)
{
	__asm__ volatile("lidt %0" ::"m"(fw_idtr) : "memory");
	__asm__ volatile("push %0; popfq" ::"r"(flags) : "memory", "cc");
}

/*
 * Runs INSN with RAX = rax, RCX = rcx, RDX = rdx and returns the vector it raised
 * (VEC_NONE if it completed). The recovery point is the label right after INSN.
 */
#define TRY_INSN(insn, rax, rcx, rdx)                                                              \
	({                                                                                         \
		UINT64 __flags = irq_save_and_load_probe_idt();                                    \
		__asm__ volatile("lea 1f(%%rip), %%rbx\n\t"                                        \
				 "mov %%rbx, %0\n\t" insn "\n1:"                                   \
				 : "=m"(probe_recover_rip)                                         \
				 : "a"(rax), "c"(rcx), "d"(rdx)                                    \
				 : "rbx", "memory", "cc");                                         \
		irq_restore_and_load_fw_idt(__flags);                                              \
		probe_fault_vector;                                                                \
	})

static inline void cpuid(UINT32 leaf, UINT32 *a, UINT32 *b, UINT32 *c, UINT32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(0));
}

static inline UINT64 rdmsr(UINT32 msr)
{
	UINT32 lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((UINT64)hi << 32) | lo;
}

/* RDMSR that may fault: the vector, and *val when it completed. */
static inline UINT64 try_rdmsr(UINT32 msr, UINT64 *val)
{
	UINT64 flags = irq_save_and_load_probe_idt();
	UINT32 lo = 0, hi = 0;

	__asm__ volatile("lea 1f(%%rip), %%rbx\n\t"
			 "mov %%rbx, %0\n\t"
			 "rdmsr\n1:"
			 : "=m"(probe_recover_rip), "+a"(lo), "+d"(hi)
			 : "c"(msr)
			 : "rbx", "memory", "cc");
	irq_restore_and_load_fw_idt(flags);
	*val = ((UINT64)hi << 32) | lo;
	return probe_fault_vector;
}

/* WRMSR that may fault: returns the vector raised, VEC_NONE if it completed. */
static inline UINT64 try_wrmsr(UINT32 msr, UINT64 val)
{
	return TRY_INSN("wrmsr", (UINT32)val, msr, (UINT32)(val >> 32));
}

static inline void report(BOOLEAN ok, const char *name, const CHAR16 *why)
{
	if (ok) {
		Print(L"ok %a\n", name);
	} else {
		probe_failures++;
		Print(L"not ok %a %s\n", name, why);
	}
}

/*
 * The fault the last TRY_INSN caught pushed RFLAGS with RF set, as a CPU does for every
 * fault-class exception (Intel SDM Vol. 3A, 2.3 "System Flags and Fields in the EFLAGS
 * Register"; Vol. 3B, 18.3.1.1 "Instruction-Breakpoint Exception Condition").
 */
#define RFLAGS_RF (1ull << 16)

static inline void report_rf(UINT64 vec, const char *name)
{
	report(vec != VEC_NONE && (probe_fault_rflags & RFLAGS_RF), name,
	       vec == VEC_NONE ? L"no fault was raised"
			       : L"the pushed RFLAGS have RF clear");
}

/* PREFIX then NAME in buf (truncated to fit), for check names built at run time. */
static inline const char *name_prefixed(char *buf, UINTN size, const char *prefix,
					const char *name)
{
	UINTN n = 0;

	for (const char *s = prefix; *s && n + 1 < size; s++)
		buf[n++] = *s;
	for (const char *s = name; *s && n + 1 < size; s++)
		buf[n++] = *s;
	buf[n] = 0;
	return buf;
}

static inline const CHAR16 *vector_name(UINT64 v)
{
	switch (v) {
	case VEC_NONE:
		return L"(no exception: the instruction completed)";
	case VEC_UD:
		return L"#UD";
	case VEC_GP:
		return L"#GP";
	}
	return L"(unexpected vector)";
}

/* The signature in CPUID leaf 0x40000000 EBX, ECX, EDX: "PageTrailHV\0". */
static inline BOOLEAN cpuid_hv_signature_is_pagetrail(UINT32 b, UINT32 c, UINT32 d)
{
	static const char want[12] = "PageTrailHV";

	return CompareMem(&b, want, 4) == 0 && CompareMem(&c, want + 4, 4) == 0 &&
	       CompareMem(&d, want + 8, 4) == 0;
}

/*
 * A HLT returns only on a wake event: an enabled interrupt, NMI, SMI, INIT or RESET
 * (Intel SDM Vol. 2A and AMD APM Vol. 3, "HLT"): the hypervisor's own needs (its management port, its tick) must never end
 * the guest's halt. The local APIC timer is armed one-shot with a class-15 vector, CR8
 * (TPR) = 14 keeps every other maskable interrupt out (the firmware's timer included),
 * and the probe waits in `sti; hlt; cli` until the timer's interrupt has come: the HLT
 * must return exactly once, after the interrupt. A HLT that returns without it is
 * counted (at most HALT_MAX_WAKES). Intel SDM Vol. 3A, 11.5.4 "APIC Timer" and 11.8.3.1
 * "Task and Processor Priorities".
 */
#define MSR_APIC_BASE	     0x1bu
#define APIC_BASE_X2APIC     (1ull << 10)
#define APIC_BASE_ENABLE     (1ull << 11)
#define APIC_BASE_ADDR_MASK  0x000ffffffffff000ull
#define APIC_EOI	     0xb0u
#define APIC_LVT_TIMER	     0x320u
#define APIC_TIMER_INIT	     0x380u
#define APIC_TIMER_CUR	     0x390u
#define APIC_TIMER_DIV	     0x3e0u
#define APIC_LVT_MASKED	     (1u << 16)
#define APIC_TIMER_DIV_BY_1  0xbu
#define APIC_TIMER_DIV_BY_64 0x9u
#define HALT_VECTOR	     0xf6u /* priority class 15: above TPR 14 */
#define HALT_TPR	     14u
#define HALT_CALIB_US	     20000u
#define HALT_MAX_WAKES	     1000u

static UINT64 probe_apic_mmio;

static inline UINT32 apic_read(UINT32 reg)
{
	if (!probe_apic_mmio)
		return (UINT32)rdmsr(0x800u + reg / 16);
	return *(volatile UINT32 *)(UINTN)(probe_apic_mmio + reg);
}

static inline void apic_write(UINT32 reg, UINT32 val)
{
	if (!probe_apic_mmio) {
		__asm__ volatile("wrmsr" ::"c"(0x800u + reg / 16), "a"(val), "d"(0) : "memory");
		return;
	}
	*(volatile UINT32 *)(UINTN)(probe_apic_mmio + reg) = val;
}

static inline UINT64 probe_rdtsc(void)
{
	UINT32 lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((UINT64)hi << 32) | lo;
}

/* Halts about `ms` milliseconds waiting for the APIC timer; reports check `name`. */
static inline void probe_check_halt(const char *name, UINTN ms)
{
	UINT64 apic_base = rdmsr(MSR_APIC_BASE), flags, cr8, per_ms, count, tsc0, tsc1;
	UINT32 lvt, div, init, start, div_cfg = APIC_TIMER_DIV_BY_1;
	UINTN wakes = 0;
	UINT16 cs;

	if (!(apic_base & APIC_BASE_ENABLE)) {
		report(FALSE, name, L"the local APIC is disabled: no timer to wake the HLT");
		return;
	}
	probe_apic_mmio = (apic_base & APIC_BASE_X2APIC) ? 0 : (apic_base & APIC_BASE_ADDR_MASK);
	probe_apic_eoi = probe_apic_mmio ? probe_apic_mmio + APIC_EOI : 0;
	lvt = apic_read(APIC_LVT_TIMER);
	div = apic_read(APIC_TIMER_DIV);
	init = apic_read(APIC_TIMER_INIT);

	/* The timer's rate, counting down masked, against the firmware's Stall. */
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | HALT_VECTOR);
	apic_write(APIC_TIMER_DIV, div_cfg);
	apic_write(APIC_TIMER_INIT, 0xffffffffu);
	start = apic_read(APIC_TIMER_CUR);
	uefi_call_wrapper(BS->Stall, 1, HALT_CALIB_US);
	per_ms = (UINT64)(start - apic_read(APIC_TIMER_CUR)) / (HALT_CALIB_US / 1000);
	count = per_ms * ms;
	if (count > 0xffffffffull) {
		div_cfg = APIC_TIMER_DIV_BY_64;
		count /= 64;
	}
	apic_write(APIC_TIMER_INIT, 0);
	if (per_ms == 0 || count == 0 || count > 0xffffffffull) {
		apic_write(APIC_LVT_TIMER, lvt);
		apic_write(APIC_TIMER_DIV, div);
		apic_write(APIC_TIMER_INIT, init);
		report(FALSE, name, L"the APIC timer's rate could not be measured");
		return;
	}

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	make_gate(&probe_idt[HALT_VECTOR * 2], probe_timer_handler, cs);
	flags = irq_save_and_load_probe_idt();
	__asm__ volatile("mov %%cr8, %0" : "=r"(cr8));
	__asm__ volatile("mov %0, %%cr8" ::"r"((UINT64)HALT_TPR) : "memory");
	probe_timer_ticks = 0;
	apic_write(APIC_TIMER_DIV, div_cfg);
	apic_write(APIC_LVT_TIMER, HALT_VECTOR);
	tsc0 = probe_rdtsc();
	apic_write(APIC_TIMER_INIT, (UINT32)count);
	while (wakes < HALT_MAX_WAKES && !probe_timer_ticks) {
		__asm__ volatile("sti; hlt; cli" ::: "memory");
		wakes++;
	}
	tsc1 = probe_rdtsc();
	apic_write(APIC_LVT_TIMER, APIC_LVT_MASKED | HALT_VECTOR);
	apic_write(APIC_TIMER_INIT, 0);
	__asm__ volatile("mov %0, %%cr8" ::"r"(cr8) : "memory");
	apic_write(APIC_LVT_TIMER, lvt);
	apic_write(APIC_TIMER_DIV, div);
	apic_write(APIC_TIMER_INIT, init);
	irq_restore_and_load_fw_idt(flags);

	Print(L"# %a: %lu ms halt, %lu HLT return(s), timer interrupts %lu, %lu TSC cycles\n",
	      name, (UINT64)ms, (UINT64)wakes, probe_timer_ticks, tsc1 - tsc0);
	report(wakes == 1 && probe_timer_ticks == 1, name,
	       probe_timer_ticks ? L"the HLT returned before the timer's interrupt"
				 : L"the HLT kept returning with no interrupt");
}

#endif /* PT_TESTS_GUEST_PROBE_LIB_H */
