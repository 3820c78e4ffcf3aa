/*
 * mptable.efi: an Intel MultiProcessor Specification 1.4 table for the OS, then the rest of
 * its command line started as the next program:
 *
 *   \EFI\tests\mptable.efi \EFI\pagetrail\pagetrail.efi \EFI\Linux\vmlinuz.efi initrd=...
 *
 * Why: OVMF takes its ACPI tables from QEMU's fw_cfg, which Bochs lacks, so under Bochs it
 * publishes no MADT and Linux finds no second CPU ("APIC: ACPI MADT or MP tables are not
 * detected"). Linux still scans for an MP floating pointer on every boot, in the last KiB
 * below 640 KiB among other places (MP Specification 1.4, 4.0 "MP Configuration Table").
 * This program describes the machine the firmware sees: one processor entry per enabled
 * CPU of EFI_MP_SERVICES_PROTOCOL (its local APIC ID, the boot CPU flagged), the local
 * APIC's version, the one I/O APIC at 0xFEC00000 with the ID and version it reports, the
 * ISA bus with IRQ n on pin n except IRQ 0 on pin 2 (Bochs wires the PIT there), the 8259
 * as ExtINT on pin 0, and ExtINT/NMI on LINT0/LINT1 of every local APIC. No PCI bus: the
 * test guests need no PCI interrupt.
 *
 * The page holding the tables (0x9F000) is allocated as EfiReservedMemoryType at that
 * address, so the firmware leaves it alone and the OS sees it reserved. A CPU count the
 * table cannot hold, a page already taken, or no MP services: an error, and nothing is
 * started.
 *
 * Output: "mptable: ..." lines on the console and on port 0xE9.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/efi_mp.h"

#define MP_PAGE		   0x9f000ull
#define MP_FLOAT_ADDR	   0x9fc00ull /* Linux scans 639 KiB..640 KiB */
#define MP_AREA_END	   0xa0000ull
#define IOAPIC_BASE	   0xfec00000u
#define LAPIC_BASE_MASK	   0xfffff000ull
#define MSR_IA32_APIC_BASE 0x1b
#define LAPIC_VERSION_REG  0x30

/* MP Specification 1.4, 4.1 "MP Floating Pointer Structure". */
struct mp_float {
	UINT8 signature[4]; /* "_MP_" */
	UINT32 config_addr;
	UINT8 length;	/* in 16-byte units: 1 */
	UINT8 spec_rev; /* 4: version 1.4 */
	UINT8 checksum;
	UINT8 feature1; /* 0: a configuration table is present */
	UINT8 feature2; /* bit 7 clear: virtual wire mode, no IMCR */
	UINT8 feature_rsvd[3];
} __attribute__((packed));
_Static_assert(sizeof(struct mp_float) == 16, "MP floating pointer is 16 bytes");

/* 4.2 "MP Configuration Table Header". */
struct mp_config {
	UINT8 signature[4]; /* "PCMP" */
	UINT16 base_length;
	UINT8 spec_rev;
	UINT8 checksum;
	UINT8 oem_id[8];
	UINT8 product_id[12];
	UINT32 oem_table;
	UINT16 oem_table_size;
	UINT16 entry_count;
	UINT32 lapic_addr;
	UINT16 ext_length;
	UINT8 ext_checksum;
	UINT8 reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct mp_config) == 44, "MP configuration table header is 44 bytes");

/* 4.3.1 "Processor Entries". */
struct mp_processor {
	UINT8 type; /* 0 */
	UINT8 lapic_id;
	UINT8 lapic_version;
	UINT8 flags; /* bit 0 enabled, bit 1 boot processor */
	UINT32 signature;
	UINT32 features;
	UINT32 reserved[2];
} __attribute__((packed));
_Static_assert(sizeof(struct mp_processor) == 20, "processor entry is 20 bytes");

/* 4.3.2 "Bus Entries". */
struct mp_bus {
	UINT8 type; /* 1 */
	UINT8 bus_id;
	UINT8 bus_type[6];
} __attribute__((packed));

/* 4.3.3 "I/O APIC Entries". */
struct mp_ioapic {
	UINT8 type; /* 2 */
	UINT8 id;
	UINT8 version;
	UINT8 flags; /* bit 0 enabled */
	UINT32 addr;
} __attribute__((packed));

/* 4.3.4 "I/O Interrupt Assignment Entries" and 4.3.5 "Local Interrupt Assignment Entries". */
struct mp_irq {
	UINT8 type; /* 3 I/O, 4 local */
	UINT8 irq_type;
	UINT16 flags; /* 0: polarity and trigger conform to the bus */
	UINT8 src_bus;
	UINT8 src_irq;
	UINT8 dst_apic; /* local: 0xff, every local APIC */
	UINT8 dst_pin;
} __attribute__((packed));
_Static_assert(sizeof(struct mp_bus) == 8 && sizeof(struct mp_ioapic) == 8 &&
		   sizeof(struct mp_irq) == 8,
	       "bus, I/O APIC and interrupt entries are 8 bytes");

enum { MP_ENT_CPU = 0, MP_ENT_BUS = 1, MP_ENT_IOAPIC = 2, MP_ENT_IOINT = 3, MP_ENT_LINT = 4 };
enum { MP_INT = 0, MP_NMI = 1, MP_EXTINT = 3 };
#define MP_CPU_ENABLED 0x01
#define MP_CPU_BSP     0x02
#define ISA_BUS	       0
#define ISA_IRQS       16
/* ISA IRQs 0-15 less IRQ 2 (the cascade), the 8259's ExtINT, and LINT0/LINT1. */
#define MP_FIXED_BYTES                                                                             \
	(sizeof(struct mp_config) + sizeof(struct mp_bus) + sizeof(struct mp_ioapic) +             \
	 ISA_IRQS * sizeof(struct mp_irq) + 2 * sizeof(struct mp_irq))
#define MP_MAX_CPUS                                                                                \
	((MP_AREA_END - MP_FLOAT_ADDR - sizeof(struct mp_float) - MP_FIXED_BYTES) /                \
	 sizeof(struct mp_processor))

static void e9_puts(const char *s)
{
	for (; *s; s++)
		__asm__ volatile("outb %0, $0xe9" : : "a"(*s));
}

/* One line, on the console and on port 0xE9 (ASCII only). */
static void say_line(const CHAR16 *msg)
{
	char line[256];
	UINTN i;

	for (i = 0; msg[i] && i + 1 < sizeof(line); i++)
		line[i] = (char)msg[i];
	line[i] = 0;
	Print(L"%s\n", msg);
	e9_puts(line);
	e9_puts("\n");
}

static CHAR16 say_buf[256];
#define say(...)                                                                                   \
	do {                                                                                       \
		SPrint(say_buf, sizeof(say_buf), __VA_ARGS__);                                     \
		say_line(say_buf);                                                                 \
	} while (0)

static UINT64 rdmsr(UINT32 msr)
{
	UINT32 lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((UINT64)hi << 32) | lo;
}

static UINT32 ioapic_read(UINT32 reg)
{
	volatile UINT32 *base = (volatile UINT32 *)(UINTN)IOAPIC_BASE;

	base[0] = reg;	/* IOREGSEL */
	return base[4]; /* IOWIN, at +0x10 */
}

static UINT8 checksum(const void *p, UINTN len)
{
	const UINT8 *b = p;
	UINT8 sum = 0;

	while (len--)
		sum += *b++;
	return (UINT8)-sum;
}

static void *put(UINT8 **at, const void *entry, UINTN size)
{
	void *dst = *at;

	CopyMem(dst, (void *)entry, size);
	*at += size;
	return dst;
}

/* Builds the tables in the page at MP_PAGE for the enabled CPUs of `mp`, counted in *cpus. */
static EFI_STATUS build(struct efi_mp_services *mp, UINTN total, UINTN *cpus)
{
	struct mp_float *fp = (struct mp_float *)(UINTN)MP_FLOAT_ADDR;
	struct mp_config *cfg = (struct mp_config *)(fp + 1);
	UINT8 *at = (UINT8 *)(cfg + 1);
	UINT32 lapic = (UINT32)(rdmsr(MSR_IA32_APIC_BASE) & LAPIC_BASE_MASK);
	UINT8 lapic_version = *(volatile UINT32 *)(UINTN)(lapic + LAPIC_VERSION_REG) & 0xff;
	UINT8 ioapic_id = (ioapic_read(0) >> 24) & 0xf;
	UINT8 ioapic_version = ioapic_read(1) & 0xff;
	UINT32 sig, ebx, ecx, edx;
	UINT16 entries = 0;
	UINTN n, irq;

	__asm__ volatile("cpuid" : "=a"(sig), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
	ZeroMem((void *)(UINTN)MP_PAGE, EFI_PAGE_SIZE);
	*cpus = 0;
	for (n = 0; n < total; n++) {
		struct efi_processor_info info;
		struct mp_processor e = {.type = MP_ENT_CPU,
					 .lapic_version = lapic_version,
					 .flags = MP_CPU_ENABLED,
					 .signature = sig,
					 .features = edx};

		if (EFI_ERROR(mp->get_processor_info(mp, n, &info))) {
			say(L"mptable: GetProcessorInfo(%d) failed", n);
			return EFI_DEVICE_ERROR;
		}
		if (!(info.status_flag & 2)) /* disabled: the OS must not start it */
			continue;
		if (*cpus == MP_MAX_CPUS || info.processor_id > 0xfe) {
			say(L"mptable: CPU %d (APIC ID %ld) does not fit an MP table (at most %d "
			    L"CPUs, APIC IDs below 255)",
			    n, info.processor_id, MP_MAX_CPUS);
			return EFI_UNSUPPORTED;
		}
		e.lapic_id = (UINT8)info.processor_id;
		if (info.status_flag & 1)
			e.flags |= MP_CPU_BSP;
		put(&at, &e, sizeof(e));
		entries++;
		say(L"mptable: CPU %d: APIC ID %d%s", n, e.lapic_id,
		    (info.status_flag & 1) ? L" (boot CPU)" : L"");
		(*cpus)++;
	}

	struct mp_bus bus = {.type = MP_ENT_BUS, .bus_id = ISA_BUS};
	CopyMem(bus.bus_type, "ISA   ", 6);
	put(&at, &bus, sizeof(bus));
	struct mp_ioapic io = {.type = MP_ENT_IOAPIC,
			       .id = ioapic_id,
			       .version = ioapic_version,
			       .flags = 1,
			       .addr = IOAPIC_BASE};
	put(&at, &io, sizeof(io));
	entries += 2;

	struct mp_irq extint = {.type = MP_ENT_IOINT,
				.irq_type = MP_EXTINT,
				.src_bus = ISA_BUS,
				.dst_apic = ioapic_id,
				.dst_pin = 0};
	put(&at, &extint, sizeof(extint));
	entries++;
	for (irq = 0; irq < ISA_IRQS; irq++) {
		struct mp_irq e = {.type = MP_ENT_IOINT,
				   .irq_type = MP_INT,
				   .src_bus = ISA_BUS,
				   .src_irq = (UINT8)irq,
				   .dst_apic = ioapic_id,
				   .dst_pin = (UINT8)(irq ? irq : 2)};

		if (irq == 2) /* the 8259 cascade: no device raises it */
			continue;
		put(&at, &e, sizeof(e));
		entries++;
	}
	struct mp_irq lint0 = {.type = MP_ENT_LINT,
			       .irq_type = MP_EXTINT,
			       .src_bus = ISA_BUS,
			       .dst_apic = 0xff,
			       .dst_pin = 0};
	struct mp_irq lint1 = {.type = MP_ENT_LINT,
			       .irq_type = MP_NMI,
			       .src_bus = ISA_BUS,
			       .dst_apic = 0xff,
			       .dst_pin = 1};
	put(&at, &lint0, sizeof(lint0));
	put(&at, &lint1, sizeof(lint1));
	entries += 2;

	CopyMem(cfg->signature, "PCMP", 4);
	cfg->base_length = (UINT16)(at - (UINT8 *)cfg);
	cfg->spec_rev = 4;
	CopyMem(cfg->oem_id, "PAGETRL ", 8);
	CopyMem(cfg->product_id, "BOCHS TEST  ", 12);
	cfg->entry_count = entries;
	cfg->lapic_addr = lapic;
	cfg->checksum = checksum(cfg, cfg->base_length);

	CopyMem(fp->signature, "_MP_", 4);
	fp->config_addr = (UINT32)(UINTN)cfg;
	fp->length = 1;
	fp->spec_rev = 4;
	fp->checksum = checksum(fp, sizeof(*fp));
	say(L"mptable: I/O APIC ID %d version 0x%x at 0x%x, local APIC version 0x%x at 0x%x",
	    ioapic_id, ioapic_version, IOAPIC_BASE, lapic_version, lapic);
	say(L"mptable: floating pointer at 0x%lx, configuration table at 0x%lx: %d bytes, "
	    L"%d entries",
	    (UINT64)(UINTN)fp, (UINT64)(UINTN)cfg, cfg->base_length, entries);
	return EFI_SUCCESS;
}

/* Starts the program named by the load options after argv[0], with the rest as its own. */
static EFI_STATUS chain(EFI_HANDLE image, EFI_LOADED_IMAGE *li)
{
	const CHAR16 *o = li->LoadOptions;
	UINTN n = li->LoadOptions ? li->LoadOptionsSize / sizeof(CHAR16) : 0, i = 0, start, end;
	EFI_LOADED_IMAGE *child_li;
	EFI_DEVICE_PATH *dp;
	EFI_HANDLE child;
	CHAR16 *opts, *path;
	EFI_STATUS s;

	while (i < n && o[i] && o[i] != L' ') /* argv[0]: this program */
		i++;
	while (i < n && o[i] == L' ')
		i++;
	start = i;
	for (end = start; end < n && o[end]; end++)
		;
	for (i = start; i < end && o[i] != L' '; i++)
		;
	if (i == start) {
		say(L"mptable: no program to start (usage: mptable.efi PROGRAM [ARGS...])");
		return EFI_INVALID_PARAMETER;
	}
	opts = AllocateZeroPool((end - start + 1) * sizeof(CHAR16));
	path = AllocateZeroPool((i - start + 1) * sizeof(CHAR16));
	if (!opts || !path)
		return EFI_OUT_OF_RESOURCES;
	CopyMem(opts, (void *)(o + start), (end - start) * sizeof(CHAR16));
	CopyMem(path, (void *)(o + start), (i - start) * sizeof(CHAR16));
	dp = FileDevicePath(li->DeviceHandle, path);
	if (!dp)
		return EFI_NOT_FOUND;
	s = uefi_call_wrapper(BS->LoadImage, 6, FALSE, image, dp, NULL, 0, &child);
	if (EFI_ERROR(s)) {
		Print(L"mptable: cannot load %s: %r\n", path, s);
		e9_puts("mptable: cannot load the next program\n");
		return s;
	}
	s = uefi_call_wrapper(BS->HandleProtocol, 3, child, &LoadedImageProtocol,
			      (void **)&child_li);
	if (EFI_ERROR(s))
		return s;
	child_li->LoadOptions = opts;
	child_li->LoadOptionsSize = (UINT32)((end - start + 1) * sizeof(CHAR16));
	say(L"mptable: starting %s", path);
	return uefi_call_wrapper(BS->StartImage, 3, child, NULL, NULL);
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *st)
{
	EFI_GUID mp_guid = EFI_MP_SERVICES_PROTOCOL_GUID;
	EFI_PHYSICAL_ADDRESS page = MP_PAGE;
	struct efi_mp_services *mp = NULL;
	EFI_LOADED_IMAGE *li = NULL;
	UINTN total = 0, enabled = 0, cpus = 0;
	EFI_STATUS s;

	InitializeLib(image, st);
	s = uefi_call_wrapper(BS->HandleProtocol, 3, image, &LoadedImageProtocol, (void **)&li);
	if (EFI_ERROR(s))
		return s;
	if (EFI_ERROR(LibLocateProtocol(&mp_guid, (void **)&mp)) ||
	    EFI_ERROR(mp->get_number_of_processors(mp, &total, &enabled))) {
		say(L"mptable: error: no EFI_MP_SERVICES_PROTOCOL, no CPU list");
		return EFI_UNSUPPORTED;
	}
	s = uefi_call_wrapper(BS->AllocatePages, 4, AllocateAddress, EfiReservedMemoryType, 1,
			      &page);
	if (EFI_ERROR(s)) {
		say(L"mptable: error: page 0x%lx is not free (%r): no MP table", (UINT64)MP_PAGE,
		    s);
		return s;
	}
	s = build(mp, total, &cpus);
	if (EFI_ERROR(s)) {
		ZeroMem((void *)(UINTN)MP_PAGE, EFI_PAGE_SIZE);
		uefi_call_wrapper(BS->FreePages, 2, page, 1);
		say(L"mptable: error: no MP table (%r)", s);
		return s;
	}
	say(L"mptable: ok %d CPUs of %d", cpus, total);
	return chain(image, li);
}
