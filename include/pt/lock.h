/* SPDX-License-Identifier: MIT */
/*
 * Spinlock and spinning reader-writer lock, built on GCC's __atomic builtins so
 * that the same header serves the freestanding hypervisor (no OS, no
 * scheduler) and the hosted tests (where ThreadSanitizer understands the
 * builtins and so sees every happens-before edge these locks create).
 *
 * pt_rwlock_t prefers writers: a writer announces itself with RW_WAIT, new
 * readers back off until it is done, so a stream of vCPU page faults (readers)
 * cannot starve a management command (writer). Writers are mutually excluded
 * by RW_WAIT itself: only one writer at a time can own it.
 *
 * The "is locked" checks below cannot tell which CPU holds the lock; they back
 * debug-only assertions of lock state at function entry (KVM's
 * lockdep_assert_held*), not decisions.
 */
#ifndef PT_LOCK_H
#define PT_LOCK_H

#include <pt/types.h>

static inline void pt_cpu_relax(void)
{
	__asm__ __volatile__("pause" ::: "memory");
}

/* ---- spinlock ---- */

typedef struct {
	u32 locked;
} pt_spinlock_t;

#define PT_SPINLOCK_INIT                                                                           \
	{                                                                                          \
		0                                                                                  \
	}

static inline void pt_spin_init(pt_spinlock_t *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELAXED);
}

static inline bool pt_spin_trylock(pt_spinlock_t *l)
{
	return !__atomic_exchange_n(&l->locked, 1, __ATOMIC_ACQUIRE);
}

static inline void pt_spin_lock(pt_spinlock_t *l)
{
	while (!pt_spin_trylock(l)) {
		while (__atomic_load_n(&l->locked, __ATOMIC_RELAXED))
			pt_cpu_relax();
	}
}

static inline void pt_spin_unlock(pt_spinlock_t *l)
{
	__atomic_store_n(&l->locked, 0, __ATOMIC_RELEASE);
}

static inline bool pt_spin_is_locked(pt_spinlock_t *l)
{
	return __atomic_load_n(&l->locked, __ATOMIC_RELAXED) != 0;
}

/* ---- reader-writer lock ---- */

#define PT_RW_HELD    0x80000000u /* a writer holds the lock */
#define PT_RW_WAIT    0x40000000u /* a writer owns the right to be next */
#define PT_RW_READERS 0x3fffffffu /* number of readers holding the lock */

typedef struct {
	u32 state;
} pt_rwlock_t;

#define PT_RWLOCK_INIT                                                                             \
	{                                                                                          \
		0                                                                                  \
	}

static inline void pt_rwlock_init(pt_rwlock_t *l)
{
	__atomic_store_n(&l->state, 0, __ATOMIC_RELAXED);
}

static inline bool pt_read_trylock(pt_rwlock_t *l)
{
	u32 s = __atomic_load_n(&l->state, __ATOMIC_RELAXED);

	while (!(s & (PT_RW_HELD | PT_RW_WAIT))) {
		if (__atomic_compare_exchange_n(&l->state, &s, s + 1, true, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return true;
	}
	return false;
}

static inline void pt_read_lock(pt_rwlock_t *l)
{
	while (!pt_read_trylock(l))
		pt_cpu_relax();
}

static inline void pt_read_unlock(pt_rwlock_t *l)
{
	__atomic_fetch_sub(&l->state, 1, __ATOMIC_RELEASE);
}

static inline void pt_write_lock(pt_rwlock_t *l)
{
	u32 s;

	/* Become the one waiting writer (excludes other writers and new readers). */
	for (;;) {
		s = __atomic_load_n(&l->state, __ATOMIC_RELAXED);
		if (!(s & (PT_RW_HELD | PT_RW_WAIT)) &&
		    __atomic_compare_exchange_n(&l->state, &s, s | PT_RW_WAIT, true,
						__ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
			break;
		pt_cpu_relax();
	}
	/* Wait for the readers already inside to leave, then take it. */
	for (;;) {
		s = PT_RW_WAIT;
		if (__atomic_compare_exchange_n(&l->state, &s, PT_RW_HELD, false, __ATOMIC_ACQUIRE,
						__ATOMIC_RELAXED))
			return;
		pt_cpu_relax();
	}
}

static inline void pt_write_unlock(pt_rwlock_t *l)
{
	__atomic_store_n(&l->state, 0, __ATOMIC_RELEASE);
}

/* True when a writer is waiting: a reader doing a long walk should yield. */
static inline bool pt_rwlock_needbreak(pt_rwlock_t *l)
{
	return (__atomic_load_n(&l->state, __ATOMIC_RELAXED) & PT_RW_WAIT) != 0;
}

static inline bool pt_rwlock_is_write_locked(pt_rwlock_t *l)
{
	return (__atomic_load_n(&l->state, __ATOMIC_RELAXED) & PT_RW_HELD) != 0;
}

/* Held for read by someone, or for write: what a "shared or exclusive" path may assume. */
static inline bool pt_rwlock_is_locked(pt_rwlock_t *l)
{
	u32 s = __atomic_load_n(&l->state, __ATOMIC_RELAXED);

	return (s & PT_RW_HELD) || (s & PT_RW_READERS);
}

#endif /* PT_LOCK_H */
