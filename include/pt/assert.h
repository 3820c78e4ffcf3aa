/* SPDX-License-Identifier: MIT */
/*
 * Debug checks. Assertions are not error handling: compiled out they still
 * type-check their expression and never evaluate it. A condition that must be
 * handled at run time is an `if` that returns an error, kills the guest
 * (vm_bug_on) or, for corrupt hypervisor state only, calls hv_panic.
 *
 * Two kinds, by what they cost, and PT_DEBUG says which are compiled in:
 *  - PT_ASSERT: a check made once per operation (function entry, lock state,
 *    once per table or per batch of a walk). Cheap next to the work around
 *    it, so the shipped image keeps them: PT_DEBUG=1, the Makefile's default
 *    for pagetrail.efi, and the build that `make bench` measures.
 *  - PT_ASSERT_ENTRY: a check made once per entry inside a walk's inner loop
 *    (re-deriving the fast path's decision, the funnel's sanity checks).
 *    Measured in a full-slot pass it costs as much as the pass itself, so
 *    only the debug build has them: PT_DEBUG=2, which the host tests of mmu/
 *    use (the default when nothing is defined) and which builds a debug image
 *    with `make BUILD=build/debug PT_DEBUG=2`.
 * PT_DEBUG=0 compiles both out.
 */
#ifndef PT_ASSERT_H
#define PT_ASSERT_H

#ifndef PT_DEBUG
#define PT_DEBUG 2
#endif

void pt_assert_failed(const char *expr, const char *file, int line);

#define PT_ASSERT_IF(enabled, cond)                                            \
	do {                                                                   \
		if (enabled) {                                                 \
			if (!(cond))                                           \
				pt_assert_failed(#cond, __FILE__, __LINE__);   \
		} else {                                                       \
			(void)sizeof(!(cond));                                 \
		}                                                              \
	} while (0)

#define PT_ASSERT(cond)       PT_ASSERT_IF(PT_DEBUG >= 1, cond)
#define PT_ASSERT_ENTRY(cond) PT_ASSERT_IF(PT_DEBUG >= 2, cond)

#endif /* PT_ASSERT_H */
