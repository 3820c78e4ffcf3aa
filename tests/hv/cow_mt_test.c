// SPDX-License-Identifier: MIT
/*
 * The copy-on-write session under concurrency (ThreadSanitizer): vCPU
 * threads write stamps all over guest memory while a stream thread reads the
 * instant page by page, with a budget small enough that writes wait. The
 * real mmu/ (write tracking, the fault path) and hv/cow_session.c; a "CPU
 * write" is the fault path until the page is writable (as hv/vm.c loops:
 * TRACKED -> cow_handle_write -> fault again), then a store. Checks: every
 * page streamed equals memory at the arm (a copy made after a write, or half
 * a copy, would differ), each page is streamed once, a page is copied at
 * most once however many vCPUs fault on it (copies == sent from a copy), the
 * budget ran out (waits) and came back, and the dirty log (wp mode) holds
 * every page written after the arm. The guest memory is the hypervisor's
 * hv_va, here a host buffer.
 */
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hv/cow_session.h"
#include "hv/proto/proto.h"
#include "mmu/tdp_mmu_parity.h"
#include "tests/check.h"
#include "tests/model/model_platform.h"

void pt_assert_failed(const char *expr, const char *file, int line)
{
	fprintf(stderr, "assertion failed: %s at %s:%d\n", expr, file, line);
	abort();
}

#define NPAGES	 2048 /* 8 MiB of guest memory at gpa 0 */
#define NVCPUS	 3
#define BUDGET	 16
#define WRITES	 6000 /* per vCPU */
#define HOTPAGES 64   /* every vCPU also hammers these: the same page at once */
#define ROUNDS	 8    /* sessions, one after the other, on the same memory */
/* The fake pool: the budget, the floor it must leave, the per-slot state. */
#define POOL (BUDGET + COW_POOL_FLOOR_PAGES + 64)

static u8 *guest;   /* guest memory: gpa = offset */
static u8 *instant; /* its copy at the arm */
static struct vm vm;
static struct hv_slot slot;
static struct tdp_mmu *mmu;
static struct tdp_mmu_root *root;
static struct model_platform plat;
static struct cow_session cs;
static atomic_long pool_pages = POOL;
static atomic_int stop;
static atomic_ulong written[NPAGES / 64]; /* pages stored to after the arm */

static void *h_alloc(void *ctx, u64 bytes)
{
	(void)ctx;
	return calloc(1, bytes);
}

static void *h_alloc_page(void *ctx)
{
	(void)ctx;
	atomic_fetch_sub(&pool_pages, 1);
	return calloc(1, PAGE_SIZE);
}

static void h_free_page(void *ctx, void *p)
{
	(void)ctx;
	atomic_fetch_add(&pool_pages, 1);
	free(p);
}

static u64 h_pages_free(void *ctx)
{
	(void)ctx;
	return (u64)atomic_load(&pool_pages);
}

static const void *h_guest_page(void *ctx, gpa_t gpa)
{
	(void)ctx;
	return guest + gpa;
}

/* One store of vCPU @v: fault until the page may be written (hv/vm.c's loop), then store. */
static void cpu_store(u32 v, u64 page, u64 val)
{
	gpa_t gpa = page * PAGE_SIZE;

	for (;;) {
		enum tdp_fault_result r = tdp_mmu_page_fault(mmu, root, gpa, TDP_FAULT_WRITE);

		if (r == TDP_FAULT_FIXED || r == TDP_FAULT_SPURIOUS)
			break;
		if (r != TDP_FAULT_TRACKED) {
			test_fail("fault result %d at page %" PRIu64, (int)r, page);
			return;
		}
		if (cow_handle_write(&cs, v, gpa) == COW_FAULT_WAIT)
			sched_yield(); /* back into the "guest", fault again */
	}
	atomic_fetch_or(&written[page / 64], 1ul << (page % 64));
	/* Stores the stream must never see: relaxed atomics, word by word. */
	for (u32 k = 0; k < 8; k++)
		__atomic_store_n((u64 *)(guest + gpa) + (val + k) % 512, val, __ATOMIC_RELAXED);
}

static void *vcpu_thread(void *arg)
{
	u32 v = (u32)(uintptr_t)arg, s = 0x9e3779b9u * (v + 1);

	for (u32 i = 0; i < WRITES && !atomic_load(&stop); i++) {
		s ^= s << 13;
		s ^= s >> 17;
		s ^= s << 5;
		cpu_store(v, i % 3 == 0 ? s % HOTPAGES : s % NPAGES, ((u64)v << 32) | i);
	}
	return NULL;
}

static void one_session(int id, u8 *buf);

static void test_concurrent(void)
{
	struct tdp_map_attrs attrs = {true, true, TDP_MEMTYPE_RAM, TDP_LEVEL_2M};
	struct mmu_platform ops;
	struct spte_format fmt;
	const struct cow_hooks hooks = {
	    .alloc = h_alloc,
	    .alloc_page = h_alloc_page,
	    .free_page = h_free_page,
	    .pages_free = h_pages_free,
	    .guest_page = h_guest_page,
	};
	static u64 log[NPAGES / 64];
	u8 *buf = malloc(PAGE_SIZE);
	bool flush;
	int id;

	guest = aligned_alloc(PAGE_SIZE, NPAGES * PAGE_SIZE);
	instant = malloc(NPAGES * PAGE_SIZE);
	for (u64 i = 0; i < NPAGES * PAGE_SIZE / 8; i++)
		((u64 *)guest)[i] = i * 0x9e3779b97f4a7c15ull;
	model_platform_init(&plat, NULL);
	ops = model_platform_ops(&plat);
	spte_format_init_npt(&fmt, true);
	mmu = aligned_alloc(64, (sizeof(*mmu) + 63) & ~(size_t)63);
	CHECK(mmu && tdp_mmu_init(mmu, &fmt, &ops) == MMU_OK);
	id = tdp_mmu_set_memslot(mmu, 0, 0, NPAGES, 0, &attrs, 0);
	CHECK(id >= 0 && tdp_mmu_map_range(mmu, 0, 0, NPAGES, &flush) == MMU_OK);
	root = tdp_mmu_get_root(mmu, 0);
	slot = (struct hv_slot){.base_gfn = 0, .npages = NPAGES, .type = HV_MEM_RAM, .mmu_id = id};
	vm = (struct vm){.slots = &slot, .nr_slots = 1, .mmu = mmu};
	CHECK(cow_init(&cs, &vm, &hooks) == 0);
	CHECK(tdp_mmu_enable_dirty_logging(mmu, id, TDP_DIRTY_WP, 0, log, &flush) == MMU_OK);
	tdp_mmu_flush_remote_tlbs(mmu);

	for (int round = 0; round < ROUNDS; round++)
		one_session(id, buf);
	/* After the end: writes go straight through. */
	cpu_store(0, 7, 1);
	CHECK(tdp_mmu_disable_dirty_logging(mmu, id, &flush) == MMU_OK);
	tdp_mmu_put_root(mmu, root);
	CHECK(tdp_mmu_destroy(mmu) == MMU_OK);
	for (u32 i = 0; i < cs.nr_slots; i++) {
		free(cs.slots[i].track);
		free(cs.slots[i].copy_of);
	}
	free(cs.slots);
	free(cs.pages);
	free(cs.free_idx);
	model_platform_fini(&plat);
	free(mmu);
	free(guest);
	free(instant);
	free(buf);
}

/* One session: the instant (nobody runs), arm, then the vCPUs and the stream. */
static void one_session(int id, u8 *buf)
{
	static u64 out[NPAGES / 64];
	pthread_t th[NVCPUS];
	u64 tracked, unsent, sent = 0;
	bool flush;

	memset(written, 0, sizeof(written));
	memcpy(instant, guest, NPAGES * PAGE_SIZE);
	CHECK(cow_arm(&cs, BUDGET, &tracked) == 0 && tracked == NPAGES);
	/* What was logged before the arm is not the point here. */
	tdp_mmu_get_dirty_log(mmu, id, out, NPAGES / 64, &flush);
	tdp_mmu_flush_remote_tlbs(mmu);
	for (u32 v = 0; v < NVCPUS; v++)
		pthread_create(&th[v], NULL, vcpu_thread, (void *)(uintptr_t)v);
	/* The stream: in order, slowly enough that the budget runs out. */
	for (u64 p = 0; p < NPAGES; p++) {
		int r = cow_read_page(&cs, p * PAGE_SIZE, buf);

		if (r) {
			CHECK(r == 0, ": page %" PRIu64 " read %d", p, r);
			break;
		}
		if (memcmp(buf, instant + p * PAGE_SIZE, PAGE_SIZE)) {
			CHECK(false, ": page %" PRIu64 " is not the instant's", p);
			break;
		}
		sent++;
		if (p % 8 == 0)
			sched_yield();
	}
	CHECK(cow_read_page(&cs, 5 * PAGE_SIZE, buf) == -PROTO_E_STATE, ": a page is sent once");
	for (u32 v = 0; v < NVCPUS; v++)
		pthread_join(th[v], NULL);
	CHECK(sent == NPAGES);
	CHECK(cs.st.sent_copy == cs.st.copies, ": copies %" PRIu64 " sent from a copy %" PRIu64,
	      cs.st.copies, cs.st.sent_copy);
	CHECK(cs.st.sent_copy + cs.st.sent_direct == NPAGES);
	CHECK(cs.st.copies > 0 && cs.st.waits > 0 && cs.st.max_used == BUDGET,
	      ": copies %" PRIu64 " waits %" PRIu64 " max_used %" PRIu64, cs.st.copies, cs.st.waits,
	      cs.st.max_used);
	CHECK(cow_end(&cs, &unsent) == 0 && unsent == 0);
	CHECK(atomic_load(&pool_pages) == POOL, ": budget back");
	/* Every page stored to after the arm is in the log. */
	tdp_mmu_get_dirty_log(mmu, id, out, NPAGES / 64, &flush);
	tdp_mmu_flush_remote_tlbs(mmu);
	for (u64 w = 0; w < NPAGES / 64; w++)
		if (atomic_load(&written[w]) & ~out[w]) {
			CHECK(false, ": written pages missing from the log in word %" PRIu64, w);
			break;
		}
}

int main(void)
{
	test_run("cow.concurrent_writers_stream_exact", test_concurrent);
	return test_failures ? 1 : 0;
}
