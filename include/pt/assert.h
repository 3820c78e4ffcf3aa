/* SPDX-License-Identifier: MIT */
/*
 * Debug-only checks. Assertions are not error handling: compiled out
 * (PT_DEBUG=0) they still type-check their expression and never evaluate it.
 * A condition that must be handled at run time is an `if` that returns an
 * error, kills the guest (vm_bug_on) or, for corrupt hypervisor state only,
 * calls hv_panic.
 */
#ifndef PT_ASSERT_H
#define PT_ASSERT_H

#ifndef PT_DEBUG
#define PT_DEBUG 1
#endif

void pt_assert_failed(const char *expr, const char *file, int line);

#define PT_ASSERT(cond)                                                        \
	do {                                                                   \
		if (PT_DEBUG) {                                                \
			if (!(cond))                                           \
				pt_assert_failed(#cond, __FILE__, __LINE__);   \
		} else {                                                       \
			(void)sizeof(!(cond));                                 \
		}                                                              \
	} while (0)

#endif /* PT_ASSERT_H */
