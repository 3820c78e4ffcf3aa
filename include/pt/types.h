/* SPDX-License-Identifier: MIT */
/*
 * Types shared by every part of PageTrail, freestanding or hosted.
 *
 * Guest-physical, host-physical and guest-frame numbers are kept apart by name
 * (gpa_t, hpa_t, gfn_t) so that a signature says which address space it means.
 */
#ifndef PT_TYPES_H
#define PT_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;

typedef u64 gpa_t; /* guest-physical address */
typedef u64 hpa_t; /* host-physical address */
typedef u64 gfn_t; /* guest frame number: gpa >> PAGE_SHIFT */
typedef u64 hfn_t; /* host frame number: hpa >> PAGE_SHIFT */

#define PAGE_SHIFT 12
#define PAGE_SIZE (1ull << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define BIT_ULL(n) (1ull << (n))
/* Bits h..l inclusive, as KVM's GENMASK_ULL. */
#define GENMASK_ULL(h, l) ((~0ull >> (63 - (h))) & (~0ull << (l)))

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static inline gfn_t gpa_to_gfn(gpa_t gpa) { return gpa >> PAGE_SHIFT; }
static inline gpa_t gfn_to_gpa(gfn_t gfn) { return gfn << PAGE_SHIFT; }

#endif /* PT_TYPES_H */
