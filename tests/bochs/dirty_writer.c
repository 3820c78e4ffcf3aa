/*
 * dirty_writer.efi: the in-guest writer of the Bochs dirty-log tests and bench.
 * pagetrail.efi starts it; it allocates DW_PAGES pages, prints where they are, then
 * writes forever: in iteration i it stores i into the first 8 bytes of one pseudo-random
 * page. Every write changes the page (i only grows), so a page changed between two reads
 * if and only if it was written in between.
 * The host (tests/bochs/test_dirty_log.sh) reads the values over the management port
 * while the guest is paused, before and after a logging round: every page whose value
 * changed in between must be set in the round's bitmap (KVM's dirty_log_test idea).
 *
 * For `make bench` (tests/bochs/bench_dirty.sh) it also keeps, in a page of its own
 * ("stats"), u64 [DW_ST_ITERS] the iterations done, [DW_ST_BUSY] 1 while an iteration's
 * stores run, [DW_ST_PAGES] the pages each iteration stores to, and at
 * [DW_ST_COST + i % DW_COST_RING] the rdtsc delta over the stores of iteration i (the
 * Stall left out). Bochs with `clock: sync=none` advances the TSC with every emulated
 * instruction, the hypervisor's exits included: the delta is the emulated instruction
 * cost of the iteration's writes. BUSY tells the host which iteration a pause stopped
 * in the middle of: its delta holds the whole pause.
 */
#include <efi.h>
#include <efilib.h>

#include "boot/efi_mp.h"

#define DW_PAGES 32
/* Slow enough that a round of the test sees only some pages written (about 10/s). */
#define DW_STALL_US 100000
/*
 * Besides the tracked page, each iteration writes every page of a scratch area: after a
 * harvest re-armed them, that is DW_SCRATCH_PAGES new dirty pages, more than a PML buffer
 * holds (512), so the PML-full exit and its drain are exercised in every round, with the
 * tracked writes logged in between.
 */
#define DW_SCRATCH_PAGES 1024
#define DW_SWEEP	 DW_SCRATCH_PAGES

#define DW_ST_ITERS  0
#define DW_ST_BUSY   1
#define DW_ST_PAGES  2
#define DW_ST_COST   3
#define DW_COST_RING 256
_Static_assert((DW_ST_COST + DW_COST_RING) * 8 <= 4096, "the stats fit one page");

static inline UINT64 dw_rdtsc(void)
{
	UINT32 lo, hi;

	/* lfence: the stores before are counted in the interval they belong to. */
	__asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
	return ((UINT64)hi << 32) | lo;
}

/* One CPU's writer: its part of the buffer and of the scratch area. */
struct dw_part {
	EFI_PHYSICAL_ADDRESS buf, scratch;
	volatile UINT64 *st; /* NULL on the APs */
	UINT64 seed;
	UINT64 tsc_per_stall; /* the APs' wait, in TSC ticks; 0 on the boot CPU (Stall) */
};

static void dw_iteration(struct dw_part *p, UINT64 i, UINT64 *rnd, UINT64 *next)
{
	volatile UINT64 *page;
	UINT64 t0;

	/* xorshift64: one pseudo-random page per iteration. */
	*rnd ^= *rnd << 13;
	*rnd ^= *rnd >> 7;
	*rnd ^= *rnd << 17;
	page = (volatile UINT64 *)(p->buf + (*rnd % DW_PAGES) * 4096);
	if (p->st)
		p->st[DW_ST_BUSY] = 1;
	t0 = dw_rdtsc();
	*page = i;
	for (int k = 0; k < DW_SWEEP; k++, (*next)++)
		*(volatile UINT64 *)(p->scratch + (*next % DW_SCRATCH_PAGES) * 4096) = i;
	if (p->st) {
		p->st[DW_ST_COST + i % DW_COST_RING] = dw_rdtsc() - t0;
		p->st[DW_ST_ITERS] = i;
		p->st[DW_ST_BUSY] = 0;
	}
}

#define DW_MAX_CPUS 8

static struct dw_part dw_parts[DW_MAX_CPUS];
static UINTN dw_nr_parts;
static UINTN dw_next_ap = 1; /* the part the next AP to start takes */

/* An AP's loop (MP services procedure, every AP at once): never returns. */
static void EFIAPI dw_ap_writer(void *unused)
{
	UINTN k = __atomic_fetch_add(&dw_next_ap, 1, __ATOMIC_SEQ_CST);
	struct dw_part *p;
	UINT64 i, next = 0, rnd, until;

	(void)unused;
	if (k >= dw_nr_parts)
		return; /* more APs than parts: this one does not write */
	p = &dw_parts[k];
	rnd = p->seed;

	for (i = 1;; i++) {
		dw_iteration(p, i, &rnd, &next);
		until = dw_rdtsc() + p->tsc_per_stall;
		while (dw_rdtsc() < until)
			__asm__ volatile("pause");
	}
}

EFI_STATUS efi_main(EFI_HANDLE image, EFI_SYSTEM_TABLE *systab)
{
	EFI_GUID mp_guid = EFI_MP_SERVICES_PROTOCOL_GUID;
	struct efi_mp_services *mp = NULL;
	struct dw_part *parts = dw_parts;
	EFI_EVENT aps_running = NULL;
	EFI_PHYSICAL_ADDRESS buf = 0, scratch = 0, stats = 0;
	volatile UINT64 *st;
	UINT64 i, t0, tsc_per_stall, next = 0, rnd;
	UINTN cpus = 1, total = 1, k;
	EFI_STATUS status;

	InitializeLib(image, systab);
	if (!EFI_ERROR(LibLocateProtocol(&mp_guid, (void **)&mp)) &&
	    !EFI_ERROR(mp->get_number_of_processors(mp, &total, &cpus)) && cpus > 1)
		cpus = cpus > DW_MAX_CPUS ? DW_MAX_CPUS : cpus;
	else
		cpus = 1;
	/*
	 * One allocation: the buffer, the scratch area and the stats page are then in one
	 * memory-map range and so in the one slot the test logs (separate allocations
	 * could land in different ranges, and the scratch sweep then went unlogged).
	 */
	status = uefi_call_wrapper(BS->AllocatePages, 4, AllocateAnyPages, EfiLoaderData,
				   (DW_PAGES + DW_SCRATCH_PAGES) * cpus + 1, &buf);
	if (EFI_ERROR(status)) {
		Print(L"dirty_writer: AllocatePages: %r\n", status);
		return status;
	}
	scratch = buf + DW_PAGES * cpus * 4096;
	stats = scratch + DW_SCRATCH_PAGES * cpus * 4096;
	st = (volatile UINT64 *)stats;
	SetMem((void *)stats, 4096, 0);
	st[DW_ST_PAGES] = 1 + DW_SWEEP;
	SetMem((void *)buf, DW_PAGES * cpus * 4096, 0);
	t0 = dw_rdtsc();
	uefi_call_wrapper(BS->Stall, 1, DW_STALL_US);
	tsc_per_stall = dw_rdtsc() - t0;
	for (k = 0; k < cpus; k++)
		parts[k] = (struct dw_part){
		    .buf = buf + k * DW_PAGES * 4096,
		    .scratch = scratch + k * DW_SCRATCH_PAGES * 4096,
		    .st = k ? NULL : st,
		    .seed = 0x9e3779b97f4a7c15ull + k * 0x632be59bd9b4e019ull,
		    .tsc_per_stall = tsc_per_stall,
		};
	Print(L"dirty_writer: stats 0x%lx\n", stats);
	Print(L"dirty_writer: scratch 0x%lx pages %d\n", scratch, DW_SCRATCH_PAGES * cpus);
	Print(L"dirty_writer: cpus %d\n", cpus);
	Print(L"dirty_writer: buf 0x%lx pages %d\n", buf, DW_PAGES * cpus);
	dw_nr_parts = cpus;
	if (cpus > 1) {
		/* An event makes StartupAllAPs return at once: the APs never finish. */
		status = uefi_call_wrapper(BS->CreateEvent, 5, 0, 0, NULL, NULL, &aps_running);
		if (!EFI_ERROR(status))
			status = mp->startup_all_aps(mp, dw_ap_writer, FALSE, aps_running, 0, NULL,
						     NULL);
		if (EFI_ERROR(status)) {
			Print(L"dirty_writer: starting the APs' writers: %r\n", status);
			return status;
		}
	}
	rnd = parts[0].seed;
	for (i = 1;; i++) {
		dw_iteration(&parts[0], i, &rnd, &next);
		uefi_call_wrapper(BS->Stall, 1, DW_STALL_US);
	}
	return EFI_SUCCESS;
}
