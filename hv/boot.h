/* SPDX-License-Identifier: MIT */
/*
 * The hand-off from boot/ (UEFI) to hv/: everything the hypervisor needs to
 * know about the machine, in plain types. boot/ fills it in the hypervisor's
 * own memory pool; hv/ never calls UEFI.
 *
 * The pool is one allocation of EfiReservedMemoryType pages: the OS treats
 * them as reserved (Linux: e820 "reserved") and never uses them, and the
 * firmware never frees them. It holds, in order: the relocated copy of the
 * image (code, data, stacks), this structure, then pages handed out by
 * hv_page_alloc (VMCB, host save area, IOPM/MSRPM, page tables).
 */
#ifndef PT_HV_BOOT_H
#define PT_HV_BOOT_H

#include <pt/limits.h>
#include <pt/types.h>

enum hv_mem_type {
	HV_MEM_RAM,	 /* conventional, loader, boot services, persistent */
	HV_MEM_ACPI,	 /* ACPI reclaim and NVS */
	HV_MEM_RUNTIME,	 /* UEFI runtime services code and data */
	HV_MEM_RESERVED, /* firmware-reserved RAM, unusable */
	HV_MEM_MMIO,	 /* memory-mapped I/O the firmware lists */
	HV_MEM_HIDDEN,	 /* the hypervisor's own pool */
	HV_MEM_NR_TYPES,
};

struct hv_mem_range {
	u64 base;
	u64 pages;
	u32 type; /* enum hv_mem_type */
	u32 efi_type;
	u64 attr;
};

#define HV_MAX_MEM_RANGES PT_MAX_MEM_RANGES
/*
 * Pool for the per-slot state sized for the largest layout (PT_MAX_SLOTS):
 * the layout (24 bytes a slot), mmu/'s memslots (84), the dirty-log
 * session's (32), rounded up.
 */
#define HV_POOL_LAYOUT_BYTES ((u64)PT_MAX_MMU_MEMSLOTS * 160)

/*
 * Filled by x86_takeover (arch/x86/takeover.S) from the firmware's live
 * state at the instant it hands the CPU over: where and how the firmware
 * resumes as a guest.
 */
struct hv_takeover {
	u64 guest_rip;
	u64 guest_rsp;
	u64 guest_rflags;
};

/* hv_boot_info.flags: pagetrail.efi's command-line switches (boot/cmdline.c). */
/*
 * The CPUs the firmware reports (EFI_MP_SERVICES_PROTOCOL), BSP first. boot/
 * fills apic_id and flags before hv_init; hv_init gives every AP a host
 * stack; each AP then takes itself over (hv_ap_start) when boot/ runs it
 * through StartupThisAP, with its own takeover record.
 */
#define HV_MAX_CPUS	   64
#define HV_CPU_BSP	   BIT_ULL(0)
#define HV_CPU_ENABLED	   BIT_ULL(1) /* EFI StatusFlag PROCESSOR_ENABLED_BIT */
#define HV_CPU_HEALTHY	   BIT_ULL(2) /* EFI StatusFlag PROCESSOR_HEALTH_STATUS_BIT */

/* Pool room per AP: its host stack, VMCB/VMCS and host save area, with margin. */
#define HV_AP_STACK_SIZE (32 * 1024)
#define HV_AP_POOL_BYTES (HV_AP_STACK_SIZE + 8 * 4096)

struct hv_cpu {
	struct hv_takeover takeover;
	u64 host_stack_top; /* hv_init: this AP's host stack (the BSP's is bi->host_stack_top) */
	u32 apic_id;
	u32 flags; /* HV_CPU_* */
	u32 index; /* position in hv_boot_info.cpus, = vCPU id */
};

#define HV_BOOT_NO_MGMT_TICK BIT_ULL(0) /* --no-mgmt-tick: SVM takes no HPET tick */
/*
 * The machine is an emulator (detected by boot/platform.c, or said so with
 * --emulator-exit on): hv_machine_stop may write its exit and power-off
 * ports. Never set on a real machine unless asked for.
 */
#define HV_BOOT_EMULATOR_EXIT BIT_ULL(1)

/* --mgmt-uart SPEC, as typed (hv/mgmt_uart.h reads it); "" means COM2. */
#define HV_MGMT_UART_SPEC_LEN 64

struct hv_boot_info {
	u64 pool_base; /* hpa of the whole hidden pool */
	u64 pool_size;
	u64 image_base; /* the relocated copy, inside the pool */
	u64 image_size;
	u64 alloc_base; /* first page hv_page_alloc may hand out */
	u64 host_stack_top;
	u32 nr_cpus;	     /* CPUs the firmware reports, enabled or not */
	u32 nr_ranges;
	struct hv_takeover takeover;
	struct hv_mem_range ranges[HV_MAX_MEM_RANGES];
	u64 acpi_rsdp;	     /* physical address of the ACPI RSDP (EFI configuration table), or 0 */
	u64 flags;	     /* HV_BOOT_* */
	u64 mgmt_step_pages; /* --mgmt-step-pages N: pages of work per poll; 0: the default */
	u64 tsc_hz;	     /* TSC ticks per second measured by boot/ against Stall; 0: unknown */
	char mgmt_uart[HV_MGMT_UART_SPEC_LEN]; /* --mgmt-uart SPEC, or "" */
	struct hv_cpu cpus[HV_MAX_CPUS]; /* the first min(nr_cpus, HV_MAX_CPUS), BSP first */
};

/* Entry points boot/ calls in the relocated copy (hv/hv.c). */
int hv_init(struct hv_boot_info *bi);
__attribute__((noreturn)) void hv_start(void *bi); /* struct hv_boot_info * */

/*
 * arch/x86/takeover.S: saves the firmware's callee-saved registers on its
 * own stack, records where it resumes (a label in the caller's copy of the
 * image, outside the hidden pool) into bi->takeover, switches to
 * `host_stack_top` and calls `host_entry(bi)`, which never returns. The
 * firmware, now a guest, resumes at that label and this returns 0.
 */
/*
 * An AP's own takeover, from boot/'s StartupThisAP procedure on that AP:
 * hv_ap_check says whether this CPU can be virtualized (0, or -1 after
 * logging why), then x86_takeover(&c->takeover, hv_ap_start, c, ...).
 */
int hv_ap_check(struct hv_cpu *c);
__attribute__((noreturn)) void hv_ap_start(void *cpu);

/*
 * Saves the caller's resume point in *t, switches to host_stack_top and
 * calls host_entry(arg), which never returns; the hypervisor resumes the
 * caller as its guest, where x86_takeover returns 0 (arch/x86/takeover.S).
 */
int x86_takeover(struct hv_takeover *t, void (*host_entry)(void *arg), void *arg,
		 u64 host_stack_top);

#endif /* PT_HV_BOOT_H */
